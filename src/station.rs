//! Wiring: builds every stage from a validated `Config` and an already
//! bound listener, and tears them down in order. `main` and the integration
//! tests both start the station through here.
//!
//! Threads: planner, mixer and encoder ([`Pipeline`]), indexer, plugin
//! watcher (OS threads, each supervised); catalogue reads at start-up
//! (blocking pool). Tasks: broadcaster and HTTP (tokio).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broadcast::{self, Hub};
use crate::catalog::{self, Catalog, CatalogError, IndexerSettings, ScanReport, Track};
use crate::config::Config;
use crate::encoder::{self, Frame, LameError, LameSettings};
use crate::http::{self, HttpState, StatusSource};
use crate::mixer::{self, MixerSettings};
use crate::ordering::plugin::Plugin;
use crate::ordering::tour::Library;
use crate::ordering::{self, Planner, PluginSwitch, PluginWatcher, ReloadSettings, Scheduler};
use crate::stats::Stats;
use crate::units::MP3_FRAME_SAMPLES;

/// Nominal length of each synthesised demo track, seconds.
pub const DEMO_TRACK_SECONDS: f64 = 150.0;

/// In the data folder: the path of the last track the station took, so a
/// restart continues the running order after it.
pub const RESUME_FILE: &str = "resume";

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

/// The encoder's settings from the configuration (server and render alike).
fn lame_settings(config: &Config) -> LameSettings {
    LameSettings {
        sample_rate: config.stream.sample_rate,
        bitrate_kbps: config.stream.bitrate_kbps,
        quality: config.stream.lame_quality,
    }
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

fn workers() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

/// Opens the catalogue and brings it in line with the library: the demo
/// library is made first if the library holds no audio, and the catalogue
/// is told where it is. Blocking.
pub fn open_catalog(config: &Config) -> Result<(Arc<Catalog>, Vec<PathBuf>, ScanReport), CatalogError> {
    let library = config.paths.library();
    let demo = config.paths.demo();
    let has_demo = crate::synth::demo::ensure_demo_library(&library, &demo, DEMO_TRACK_SECONDS, || {
        tracing::info!(
            "library {} holds no audio: synthesising the demo library into {} (about 10 s)",
            library.display(),
            demo.display()
        )
    })?;
    let catalog = Catalog::open(&config.paths.catalog_db())?;
    catalog.set_min_track_s(config.library.min_track_s);
    let mut roots = vec![library];
    if has_demo {
        // Stored paths are canonical: so is the folder they are told apart by.
        catalog.set_demo(demo.canonicalize().unwrap_or_else(|_| demo.clone()));
        roots.push(demo);
    }
    let refs: Vec<&std::path::Path> = roots.iter().map(|p| p.as_path()).collect();
    let scan = catalog.sync_roots(&refs)?;
    Ok((Arc::new(catalog), roots, scan))
}

/// The audio path from the scheduler to MP3 frames: the planner, mixer and
/// encoder threads, each supervised, with the bounded PCM queue between
/// mixer and encoder and the bounded frame queue after the encoder. The
/// server and `nonstop render` build it the same way, from the same config.
pub struct Pipeline {
    stop: Arc<AtomicBool>,
    mixer: Option<JoinHandle<()>>,
    encoder: Option<JoinHandle<()>>,
    /// The further mounts' encoders (fed by the main encoder).
    mount_encoders: Vec<JoinHandle<()>>,
    _planner: Planner,
}

/// A further mount's encoder output, for its release task.
pub struct MountFeed {
    pub config: crate::config::MountConfig,
    pub stats: Arc<Stats>,
    pub frames: tokio::sync::mpsc::Receiver<Frame>,
}

/// Queue capacities from the configuration: PCM blocks, MP3 frame slots.
fn queue_sizes(config: &Config) -> (usize, usize) {
    let rate = config.stream.rate();
    let pcm_blocks = (rate.frames_in(config.queues.pcm_s) as usize / PCM_BLOCK_FRAMES).max(1);
    (pcm_blocks, rate.mp3_frames_in(config.queues.frames_s))
}

impl Pipeline {
    /// The counters every stage reports into, sized for `config`'s queues.
    pub fn stats(config: &Config) -> Arc<Stats> {
        let (pcm_blocks, frame_slots) = queue_sizes(config);
        Arc::new(Stats::new(config.stream.rate(), (pcm_blocks * PCM_BLOCK_FRAMES) as u64, frame_slots as u64))
    }

    /// Starts the stages; the frames come out of the returned receiver.
    pub fn start(
        config: &Config,
        scheduler: Arc<Mutex<Scheduler>>,
        catalog: Arc<Catalog>,
        stats: Arc<Stats>,
        mounts: &[crate::config::MountConfig],
    ) -> Result<(Pipeline, tokio::sync::mpsc::Receiver<Frame>, Vec<MountFeed>), StationError> {
        let (pcm_blocks, frame_slots) = queue_sizes(config);
        // Bounded in blocks (fixed size, so capacity in seconds is exact);
        // crossbeam for a blocking send with timeout from the mixer thread.
        let (pcm_tx, pcm_rx) = crossbeam_channel::bounded(pcm_blocks);
        // tokio mpsc: the encoder thread blocks on it, the broadcaster task
        // polls it without blocking the runtime.
        let (frames_tx, frames_rx) = tokio::sync::mpsc::channel(frame_slots);
        let planner = Planner::spawn(scheduler.clone(), stats.components.planner.clone())?;
        let stop = Arc::new(AtomicBool::new(false));
        let settings = MixerSettings { rate: config.stream.rate(), transition: config.mixer.transition(), block: PCM_BLOCK_FRAMES };
        let mixer = mixer::spawn(settings, scheduler, catalog, pcm_tx, stats.clone(), stop.clone())?;
        // Each further mount: its own PCM queue (fed by the main encoder),
        // encoder thread and frame queue (room for the main encoder's lead
        // twice over: it releases in step with the main stream).
        let mut taps = Vec::new();
        let mut feeds = Vec::new();
        let mut mount_encoders = Vec::new();
        for m in mounts {
            let mount_stats = Arc::new(Stats::new(config.stream.rate(), (pcm_blocks * PCM_BLOCK_FRAMES) as u64, 2 * frame_slots as u64));
            let (tx, rx) = crossbeam_channel::bounded(pcm_blocks);
            let (ftx, frx) = tokio::sync::mpsc::channel(2 * frame_slots);
            let settings = LameSettings { bitrate_kbps: m.bitrate_kbps, ..lame_settings(config) };
            mount_encoders.push(encoder::spawn(settings, rx, ftx, Vec::new(), mount_stats.clone(), stop.clone())?);
            taps.push(encoder::Tap { tx, stats: mount_stats.clone() });
            feeds.push(MountFeed { config: m.clone(), stats: mount_stats, frames: frx });
        }
        let encoder = encoder::spawn(lame_settings(config), pcm_rx, frames_tx, taps, stats, stop.clone())?;
        let pipeline = Pipeline { stop, mixer: Some(mixer), encoder: Some(encoder), mount_encoders, _planner: planner };
        Ok((pipeline, frames_rx, feeds))
    }

    /// Stops the mixer (the encoder follows when the PCM queue closes) and
    /// joins both. Blocking.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let mounts = std::mem::take(&mut self.mount_encoders);
        for t in [self.mixer.take(), self.encoder.take()].into_iter().flatten().chain(mounts) {
            if t.join().is_err() {
                tracing::warn!("a pipeline thread panicked");
            }
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A running station.
pub struct Station {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    pipeline: Option<Pipeline>,
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

        let cfg = config.clone();
        let (catalog, roots, scan) = tokio::task::spawn_blocking(move || open_catalog(&cfg))
            .await
            .map_err(|e| StationError::Thread(std::io::Error::other(e.to_string())))??;
        tracing::info!(
            "library: {} files, {} unchanged, {} new or changed, {} removed",
            scan.files,
            scan.unchanged,
            scan.added,
            scan.removed
        );
        let c = catalog.clone();
        let playable = tokio::task::spawn_blocking(move || c.playable())
            .await
            .map_err(|e| StationError::Thread(std::io::Error::other(e.to_string())))??;
        if playable.is_empty() {
            tracing::info!("no analysed tracks yet: the stream starts with the first one");
        }
        let seed = config.ordering.seed.unwrap_or_else(rand::random);
        let cfg = config.clone();
        let scheduler = tokio::task::spawn_blocking(move || {
            let mut s = scheduler(&cfg, &playable, seed);
            // Carry on where the running order was, or somewhere at random.
            let mut random = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
            s.resume_from(cfg.paths.data_dir.join(RESUME_FILE), &mut random);
            s
        })
        .await
            .map_err(|e| StationError::Thread(std::io::Error::other(e.to_string())))?;
        let scheduler = Arc::new(Mutex::new(scheduler));
        let stats = Pipeline::stats(&config);
        // Analysis runs in the background; analysed files join the schedule.
        let (c, sched, st) = (catalog.clone(), scheduler.clone(), stats.clone());
        let indexer_settings = IndexerSettings {
            roots,
            workers: workers(),
            limits: config.library.limits(),
            rescan_every: Duration::from_secs_f64(config.library.rescan_minutes * 60.0),
        };
        let indexer = catalog::Indexer::spawn(catalog.clone(), indexer_settings, stats.components.indexer.clone(), move || {
            match c.playable() {
                Ok(tracks) => update_library(&sched, &tracks),
                Err(e) => tracing::warn!("{e}"),
            }
            st.library_changes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })?;
        let reload = ReloadSettings { file: config.ordering.plugin_path(), limits: config.ordering.limits, seed };
        let switch = PluginSwitch::new(reload, scheduler.clone());
        let plugins = PluginWatcher::spawn(switch.clone(), stats.components.plugins.clone())
            .inspect_err(|e| {
                tracing::warn!("cannot watch {}: {e}; plugin changes need a restart", config.ordering.plugins_dir.display())
            })
            .ok();

        let silence = encoder::silence_frames(lame_settings(&config))?;
        let (pipeline, frames_rx, mount_feeds) =
            Pipeline::start(&config, scheduler.clone(), catalog.clone(), stats.clone(), &config.mounts)?;
        let (hub, shards) = Hub::new(config.stream.rate(), config.stream.burst_s, config.stream.max_lag_s, stats.clone());
        let delivery = broadcast::spawn_delivery(&hub, shards);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let status = StatusSource { config: config.clone(), stats, hub: hub.clone(), scheduler, catalog };
        let broadcaster = tokio::spawn(broadcast::run(hub.clone(), frames_rx, silence, shutdown_rx.clone()));
        // Further mounts, released in step with the main stream.
        let mut mounts = Vec::new();
        let mut mount_tasks = Vec::new();
        for feed in mount_feeds {
            let (mount_hub, mount_shards) =
                Hub::new(config.stream.rate(), config.stream.burst_s, config.stream.max_lag_s, feed.stats.clone());
            mount_tasks.extend(broadcast::spawn_delivery(&mount_hub, mount_shards));
            let silence = encoder::silence_frames(LameSettings { bitrate_kbps: feed.config.bitrate_kbps, ..lame_settings(&config) })?;
            mount_tasks.push(tokio::spawn(broadcast::mount::run(mount_hub.clone(), hub.clone(), feed.frames, silence, shutdown_rx.clone())));
            tracing::info!("mount {} at {} kbps", feed.config.path, feed.config.bitrate_kbps);
            mounts.push(Arc::new(broadcast::mount::Mount {
                path: feed.config.path,
                bitrate_kbps: feed.config.bitrate_kbps,
                hub: mount_hub,
                stats: feed.stats,
            }));
        }
        *status.stats.mounts.lock().unwrap_or_else(|p| p.into_inner()) = mounts.clone();
        // Icecast servers fed as their source, each on its own.
        let info = broadcast::icecast::StreamInfo {
            station_name: config.server.station_name.clone(),
            bitrate_kbps: config.stream.bitrate_kbps,
            sample_rate: config.stream.sample_rate,
        };
        let outputs: Vec<tokio::task::JoinHandle<()>> = config
            .outputs
            .icecast
            .iter()
            .map(|out| {
                let state = broadcast::icecast::OutputState::new(&out.url);
                status.stats.outputs.lock().unwrap_or_else(|p| p.into_inner()).push(state.clone());
                tokio::spawn(broadcast::icecast::run(hub.clone(), out.clone(), info.clone(), state, shutdown_rx.clone()))
            })
            .collect();
        let rescan = Some(indexer.rescan_handle());
        let hls = broadcast::hls::Hls::new();
        let segmenter = tokio::spawn(broadcast::hls::run(hub.clone(), hls.clone(), shutdown_rx.clone()));
        let published = http::status::first(&status).await?;
        let history = http::status::History::default();
        let republish = Arc::new(tokio::sync::Notify::new());
        let publisher =
            tokio::spawn(http::status::publish(status.clone(), published.clone(), history.clone(), republish.clone(), shutdown_rx.clone()));
        let state = Arc::new(HttpState {
            config,
            hub,
            status: status.clone(),
            published: published.subscribe(),
            republish,
            history,
            mounts,
            rescan,
            plugins: Some(switch),
            request_times: Default::default(),
            hls,
        });
        let server = tokio::spawn(http::serve(listener, state, shutdown_rx));
        Ok(Station {
            addr,
            shutdown,
            pipeline: Some(pipeline),
            tasks: [broadcaster, server, segmenter, publisher].into_iter().chain(delivery).chain(outputs).chain(mount_tasks).collect(),
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

    /// The test switches for injected failures.
    pub fn faults(&self) -> &crate::supervise::Faults {
        &self.status.stats.faults
    }

    /// Stops accepting, ends every listener's stream, stops the pipeline and
    /// joins its threads. The catalogue is closed when the last handle drops.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        let (pipeline, indexer) = (self.pipeline.take(), self.indexer.take());
        let _ = tokio::task::spawn_blocking(move || {
            // Stops after the files in flight; the rest stay pending.
            drop(indexer);
            if let Some(p) = pipeline {
                p.stop();
            }
        })
        .await;
    }
}

impl Drop for Station {
    fn drop(&mut self) {
        // Dropped without shutdown(): at least stop the threads.
        let _ = self.shutdown.send(true);
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
    /// Peak resident memory of the process (VmHWM), bytes; 0 where unknown.
    pub peak_rss_bytes: u64,
}

/// Renders `minutes` of the station's stream unpaced into `out` (MP3): the
/// same catalogue, scheduler and pipeline as the server, with the
/// broadcaster and HTTP replaced by a file. `on_progress` is called about
/// once per second of wall time with the seconds of audio written.
pub fn render_offline(
    config: &Config,
    minutes: f64,
    out: &std::path::Path,
    mut on_progress: impl FnMut(f64),
) -> Result<RenderReport, StationError> {
    use std::io::Write;
    let rate = config.stream.rate();
    let (catalog, _, _) = open_catalog(config)?;
    catalog::analyse_pending(&catalog, workers(), config.library.limits(), &AtomicBool::new(false), |_, _| {})?;
    let seed = config.ordering.seed.unwrap_or(1);
    let scheduler = Arc::new(Mutex::new(scheduler(config, &catalog.playable()?, seed)));
    let stats = Pipeline::stats(config);
    let (cpu0, wall0) = (crate::cpu::process_seconds(), std::time::Instant::now());
    let (pipeline, mut frames_rx, _) = Pipeline::start(config, scheduler, catalog, stats.clone(), &[])?;
    let io = |source| CatalogError::Io { path: out.to_owned(), source };
    let mut file = std::io::BufWriter::new(std::fs::File::create(out).map_err(io)?);
    let want = (minutes * 60.0 * rate.0 as f64 / MP3_FRAME_SAMPLES as f64).ceil() as u64;
    let mut frames = 0u64;
    let mut last_progress = std::time::Instant::now();
    while frames < want {
        let Some(frame) = frames_rx.blocking_recv() else { break };
        stats.frames_queued.fetch_sub(1, Ordering::Relaxed);
        file.write_all(&frame.data).map_err(io)?;
        frames += 1;
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = std::time::Instant::now();
            on_progress(frames as f64 * MP3_FRAME_SAMPLES as f64 / rate.0 as f64);
        }
    }
    file.flush().map_err(io)?;
    drop(frames_rx);
    pipeline.stop();
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
        peak_rss_bytes: crate::cpu::peak_rss_bytes(),
    })
}
