//! Wiring: builds every stage from a validated `Config` and an already
//! bound listener, and tears them down in order. `main` and the integration
//! tests both start the station through here.
//!
//! Threads: mixer and encoder (OS threads), scan and catalogue reads
//! (blocking pool). Tasks: broadcaster and HTTP (tokio).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broadcast::{self, Hub};
use crate::catalog::{self, Catalog, CatalogError, ScanReport};
use crate::config::Config;
use crate::encoder::{self, LameError, LameSettings};
use crate::http::{self, HttpState, StatusSource};
use crate::mixer::{self, MixerSettings};
use crate::catalog::Track;
use crate::ordering::plugin::Plugin;
use crate::ordering::tour::Library;
use crate::ordering::{self, PluginWatcher, ReloadSettings, Scheduler};
use crate::stats::Stats;
use crate::units::MP3_FRAME_SAMPLES;

/// Nominal length of each synthesised demo track, seconds.
pub const DEMO_TRACK_SECONDS: f64 = 150.0;

/// PCM block length: four MP3 frames, about 0.1 s.
const PCM_BLOCK_FRAMES: usize = 4 * MP3_FRAME_SAMPLES as usize;

#[derive(Debug, thiserror::Error)]
pub enum StationError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Lame(#[from] LameError),
    #[error("cannot start thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Resolves once `shutdown` turns true (or its sender is gone). The watch
/// guard is dropped inside, so the future stays `Send`.
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// The encoder's settings from the configuration (server and render alike).
fn lame_settings(config: &Config) -> LameSettings {
    LameSettings {
        sample_rate: config.stream.sample_rate,
        bitrate_kbps: config.stream.bitrate_kbps,
        quality: config.stream.lame_quality,
    }
}

/// The mixer's settings from the configuration (server and render alike).
fn mixer_settings(config: &Config) -> MixerSettings {
    MixerSettings { rate: config.stream.rate(), transition: config.mixer.transition(), block: PCM_BLOCK_FRAMES }
}

/// The scheduler from the configuration: the library (graph and tour) over
/// `playable`, the configured plugin (shipped plugins written first if the
/// plugins folder is missing) and the host rules. Builds the tour: call off
/// the async runtime.
pub fn scheduler(config: &Config, playable: &[Arc<Track>], seed: u64) -> Scheduler {
    let o = &config.ordering;
    if let Err(e) = ordering::ensure_plugins(&o.plugins_dir) {
        tracing::warn!("cannot create {}: {e}", o.plugins_dir.display());
    }
    let library = Arc::new(Library::build(playable, o.weights(&config.mixer)));
    let plugin = Plugin::load(&o.plugin_path(), o.limits, seed);
    Scheduler::new(library, o.rules(), &o.plugin, plugin)
}

/// Brings the scheduler's library to `tracks`: the graph and tour are
/// updated on a copy, outside the lock, and swapped in.
fn update_library(scheduler: &Mutex<Scheduler>, tracks: &[Arc<Track>]) {
    let current = scheduler.lock().unwrap_or_else(|p| p.into_inner()).library();
    if let Some(next) = current.with_tracks(tracks) {
        scheduler.lock().unwrap_or_else(|p| p.into_inner()).set_library(Arc::new(next));
    }
}

/// A running station.
pub struct Station {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    stop_mixer: Arc<AtomicBool>,
    mixer: Option<JoinHandle<()>>,
    encoder: Option<JoinHandle<Result<(), LameError>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    indexer: Option<catalog::Indexer>,
    _plugins: Option<PluginWatcher>,
    pub scan: ScanReport,
    pub status: StatusSource,
}

impl Station {
    /// Opens the catalogue, makes the demo library if the library is empty,
    /// scans, and starts every stage. Serves on `listener`.
    pub async fn start(config: Config, listener: TcpListener) -> Result<Station, StationError> {
        let config = Arc::new(config);
        let addr = listener.local_addr()?;
        let rate = config.stream.rate();

        let cfg = config.clone();
        let (catalog, scan) = tokio::task::spawn_blocking(move || -> Result<_, CatalogError> {
            let library = cfg.paths.library();
            catalog::ensure_demo_library(&library, DEMO_TRACK_SECONDS, || {
                tracing::info!("library {} holds no audio: synthesising the demo library", library.display())
            })?;
            let catalog = Catalog::open(&cfg.paths.catalog_db())?;
            let scan = catalog.sync(&library)?;
            Ok((Arc::new(catalog), scan))
        })
        .await
        .expect("library sync panicked")?;
        tracing::info!(
            "library: {} files, {} unchanged, {} new or changed, {} removed",
            scan.files,
            scan.unchanged,
            scan.added,
            scan.removed
        );
        let playable = {
            let c = catalog.clone();
            tokio::task::spawn_blocking(move || c.playable()).await.expect("catalogue read panicked")?
        };
        if playable.is_empty() {
            tracing::info!("no analysed tracks yet: the stream starts with the first one");
        }
        let seed = config.ordering.seed.unwrap_or_else(rand::random);
        let cfg = config.clone();
        let scheduler = tokio::task::spawn_blocking(move || scheduler(&cfg, &playable, seed))
            .await
            .expect("building the tour panicked");
        let scheduler = Arc::new(Mutex::new(scheduler));
        // Analysis runs in the background; each analysed file joins the schedule.
        let (c, sched) = (catalog.clone(), scheduler.clone());
        let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let indexer = catalog::Indexer::spawn(catalog.clone(), config.paths.library(), workers, move || {
            match c.playable() {
                Ok(tracks) => update_library(&sched, &tracks),
                Err(e) => tracing::warn!("{e}"),
            }
        })?;
        let reload = ReloadSettings { file: config.ordering.plugin_path(), limits: config.ordering.limits, seed };
        let plugins = PluginWatcher::spawn(reload, scheduler.clone())
            .inspect_err(|e| {
                tracing::warn!("cannot watch {}: {e}; plugin changes need a restart", config.ordering.plugins_dir.display())
            })
            .ok();

        let pcm_capacity_frames = rate.frames_in(config.queues.pcm_s);
        let pcm_blocks = (pcm_capacity_frames as usize / PCM_BLOCK_FRAMES).max(1);
        let frame_slots = rate.mp3_frames_in(config.queues.frames_s);
        let stats = Arc::new(Stats::new(rate, (pcm_blocks * PCM_BLOCK_FRAMES) as u64, frame_slots as u64));

        // Bounded in blocks (fixed size, so capacity in seconds is exact);
        // crossbeam for a blocking send with timeout from the mixer thread.
        let (pcm_tx, pcm_rx) = crossbeam_channel::bounded(pcm_blocks);
        // tokio mpsc: the encoder thread blocks on it, the broadcaster task
        // polls it without blocking the runtime.
        let (frames_tx, frames_rx) = tokio::sync::mpsc::channel(frame_slots);

        let lame = lame_settings(&config);
        let silence = encoder::silence_frames(lame)?;
        let stop_mixer = Arc::new(AtomicBool::new(false));
        let mixer_settings = mixer_settings(&config);
        let mixer = mixer::spawn(
            mixer_settings,
            scheduler.clone(),
            catalog.clone(),
            pcm_tx,
            stats.clone(),
            stop_mixer.clone(),
        )?;
        let encoder = encoder::spawn(lame, pcm_rx, frames_tx, stats.clone())?;

        let hub = Hub::new(rate, config.stream.burst_s, config.stream.max_lag_s, stats.clone());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let status = StatusSource { config: config.clone(), stats, hub: hub.clone(), scheduler, catalog };
        let broadcaster = tokio::spawn(broadcast::run(hub.clone(), frames_rx, silence, shutdown_rx.clone()));
        let state = Arc::new(HttpState { config, hub, status: status.clone() });
        let server = tokio::spawn(http::serve(listener, state, shutdown_rx));
        Ok(Station {
            addr,
            shutdown,
            stop_mixer,
            mixer: Some(mixer),
            encoder: Some(encoder),
            tasks: vec![broadcaster, server],
            indexer: Some(indexer),
            _plugins: plugins,
            scan,
            status,
        })
    }

    /// Asks the indexer to sync the library and analyse anything new.
    pub fn rescan(&self) {
        if let Some(i) = &self.indexer {
            i.rescan();
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, ends every listener's stream, stops the pipeline and
    /// joins its threads. The catalogue is closed when the last handle drops.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        self.stop_mixer.store(true, Ordering::Relaxed);
        let (mixer, encoder, indexer) = (self.mixer.take(), self.encoder.take(), self.indexer.take());
        let _ = tokio::task::spawn_blocking(move || {
            // Stops after the files in flight; the rest stay pending.
            drop(indexer);
            if let Some(m) = mixer {
                let _ = m.join();
            }
            if let Some(e) = encoder {
                match e.join() {
                    Ok(Err(err)) => tracing::warn!("encoder: {err}"),
                    Err(_) => tracing::warn!("encoder thread panicked"),
                    Ok(Ok(())) => {}
                }
            }
        })
        .await;
    }
}

impl Drop for Station {
    fn drop(&mut self) {
        // Dropped without shutdown(): at least stop the threads.
        let _ = self.shutdown.send(true);
        self.stop_mixer.store(true, Ordering::Relaxed);
    }
}

/// What `render_offline` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RenderReport {
    pub audio_s: f64,
    pub wall_s: f64,
    /// Process CPU time (all threads).
    pub cpu_s: f64,
    /// Seconds of CPU in each stage.
    pub decode_s: f64,
    pub transition_s: f64,
    pub encode_s: f64,
    pub transitions_beatmatched: u64,
    pub transitions_crossfade: u64,
}


/// Renders `minutes` of the station's stream unpaced into `out` (MP3): the
/// same catalogue, scheduler, mixer and encoder as the server, with the
/// broadcaster and HTTP replaced by a file.
pub fn render_offline(config: &Config, minutes: f64, out: &std::path::Path) -> Result<RenderReport, StationError> {
    use std::io::Write;
    let rate = config.stream.rate();
    let library = config.paths.library();
    catalog::ensure_demo_library(&library, DEMO_TRACK_SECONDS, || {
        tracing::info!("library {} holds no audio: synthesising the demo library", library.display())
    })?;
    let catalog = Arc::new(Catalog::open(&config.paths.catalog_db())?);
    catalog.sync(&library)?;
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    catalog::analyse_pending(&catalog, workers, &AtomicBool::new(false), |_, _| {})?;
    let seed = config.ordering.seed.unwrap_or(1);
    let scheduler = Arc::new(Mutex::new(scheduler(config, &catalog.playable()?, seed)));
    let stats = Arc::new(Stats::new(rate, 0, 0));
    let (pcm_tx, pcm_rx) = crossbeam_channel::bounded(64);
    let (frames_tx, mut frames_rx) = tokio::sync::mpsc::channel(256);
    let lame = lame_settings(config);
    let stop = Arc::new(AtomicBool::new(false));
    let settings = mixer_settings(config);
    let (cpu0, wall0) = (crate::cpu::process_seconds(), std::time::Instant::now());
    let mixer = mixer::spawn(settings, scheduler, catalog, pcm_tx, stats.clone(), stop.clone())?;
    let encoder = encoder::spawn(lame, pcm_rx, frames_tx, stats.clone())?;
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(out).map_err(|source| CatalogError::Io { path: out.to_owned(), source })?,
    );
    let want = (minutes * 60.0 * rate.0 as f64 / MP3_FRAME_SAMPLES as f64).ceil() as u64;
    let mut frames = 0u64;
    while frames < want {
        let Some(frame) = frames_rx.blocking_recv() else { break };
        file.write_all(&frame.data).map_err(|source| CatalogError::Io { path: out.to_owned(), source })?;
        frames += 1;
    }
    file.flush().map_err(|source| CatalogError::Io { path: out.to_owned(), source })?;
    stop.store(true, Ordering::Relaxed);
    drop(frames_rx);
    let _ = mixer.join();
    let _ = encoder.join();
    let ns = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e9;
    Ok(RenderReport {
        audio_s: frames as f64 * MP3_FRAME_SAMPLES as f64 / rate.0 as f64,
        wall_s: wall0.elapsed().as_secs_f64(),
        cpu_s: crate::cpu::process_seconds() - cpu0,
        decode_s: ns(&stats.decode_ns),
        transition_s: ns(&stats.mix_ns),
        encode_s: ns(&stats.encode_ns),
        transitions_beatmatched: stats.transitions_beatmatched.load(Ordering::Relaxed),
        transitions_crossfade: stats.transitions_crossfade.load(Ordering::Relaxed),
    })
}
