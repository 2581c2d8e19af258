//! The `/status` document: one consistent-enough snapshot of every stage.
//!
//! One publisher task builds it four times a second — the only reader of
//! the scheduler's lock and of SQLite (catalogue counts, read when the
//! library changed or every few seconds) on behalf of HTTP — and publishes
//! it, serialised once, on a watch channel. `/status`, `/admin/status`,
//! `/events` and the track search read the latest copy: a thousand clients
//! cost the pipeline nothing.
//!
//! The public document is what a listener may see: file paths, error texts
//! and the outputs' addresses are only in the admin one.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::watch;

use crate::broadcast::Hub;
use crate::catalog::{Catalog, CatalogError, FailedFile, Track};
use crate::config::Config;
use crate::ordering::Scheduler;
use crate::stats::Stats;

#[derive(Clone)]
pub struct StatusSource {
    pub config: Arc<Config>,
    pub stats: Arc<Stats>,
    pub hub: Arc<Hub>,
    pub scheduler: Arc<Mutex<Scheduler>>,
    pub catalog: Arc<Catalog>,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub station: StationStatus,
    pub now_playing: Option<NowPlaying>,
    pub upcoming: Vec<TrackSummary>,
    pub queues: Queues,
    pub broadcast: BroadcastStatus,
    pub listeners: Listeners,
    /// Icecast servers the stream is pushed to.
    pub outputs: Vec<crate::broadcast::icecast::OutputReport>,
    /// Further mounts: the same mix at other bitrates.
    pub mounts: Vec<crate::broadcast::mount::MountReport>,
    pub library: Library,
    pub mixer: MixerStatus,
    pub ordering: crate::ordering::OrderingStatus,
    /// Each supervised stage: alive, restarts, last error with its time.
    pub components: std::collections::BTreeMap<&'static str, crate::supervise::HealthReport>,
}

#[derive(Debug, Serialize)]
pub struct StationStatus {
    pub name: String,
    pub uptime_s: f64,
    pub bitrate_kbps: u32,
    pub sample_rate: u32,
    /// Whether listeners may request tracks (`POST /api/requests`).
    pub requests_open: bool,
}

#[derive(Debug, Serialize)]
pub struct NowPlaying {
    pub id: i64,
    pub title: String,
    pub artist: String,
    pub album: String,
    /// Media time (samples since the stream started) at which it became audible.
    pub started_at: u64,
    pub started_at_s: f64,
}

#[derive(Debug, Serialize)]
pub struct TrackSummary {
    pub id: i64,
    pub title: String,
    pub artist: String,
    pub duration_s: f64,
}

impl From<&Track> for TrackSummary {
    fn from(t: &Track) -> Self {
        TrackSummary { id: t.id, title: t.title.clone(), artist: t.artist.clone(), duration_s: t.duration_s }
    }
}

#[derive(Debug, Serialize)]
pub struct Queues {
    pub pcm: Queue,
    pub frames: Queue,
}

#[derive(Debug, Serialize)]
pub struct Queue {
    pub depth_s: f64,
    pub capacity_s: f64,
}

#[derive(Debug, Serialize)]
pub struct BroadcastStatus {
    pub frames_sent: u64,
    pub underruns: u64,
    /// How late the newest frame left relative to its wall-clock deadline.
    pub drift_ms: f64,
    pub burst_s: f64,
    pub media_time_s: f64,
    /// The main encoder's CPU time over the uptime, percent of a core.
    pub encoder_cpu_percent: f64,
    /// What the title says while there is no music on air for a reason
    /// listeners are told (a stage restarting); null otherwise.
    pub note: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct Listeners {
    pub count: usize,
    pub max: usize,
    pub total: u64,
    pub dropped_slow: u64,
    pub refused_full: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Library {
    pub tracks: u64,
    /// Analysed, playable tracks.
    pub playable: u64,
    pub analysed: u64,
    pub pending: u64,
    pub failed: u64,
    /// Analysed, but shorter than `library.min_track_s`: clips, not scheduled.
    pub too_short: u64,
    pub min_track_s: f64,
    pub analysis_version: i64,
    pub failed_files: Vec<FailedFile>,
}

#[derive(Debug, Serialize)]
pub struct MixerStatus {
    pub crossfade_s: f64,
    pub overlap_bars: u32,
    pub transitions_beatmatched: u64,
    pub transitions_crossfade: u64,
    /// The latest transition: mode, tempos, stretch ratio, overlap bars,
    /// the fallback reason if any, the measured alignment.
    pub transition: Option<crate::transition::TransitionInfo>,
    /// The last transitions, newest first.
    pub recent_transitions: Vec<crate::transition::TransitionInfo>,
    /// Crossfades by why they fell back.
    pub fallbacks: std::collections::BTreeMap<&'static str, u64>,
    pub tracks_started: u64,
    pub track_failures: u64,
    pub last_error: Option<String>,
}

/// Failed files listed on the admin status (the count covers them all).
const FAILED_LISTED: usize = 200;

impl StatusSource {
    /// The library section: SQL, so on a blocking thread.
    async fn library(&self) -> Result<Library, CatalogError> {
        let catalog = self.catalog.clone();
        let (counts, mut failed_files) = tokio::task::spawn_blocking(move || Ok::<_, CatalogError>((catalog.counts()?, catalog.failed()?)))
            .await
            .expect("catalogue read panicked")?;
        failed_files.truncate(FAILED_LISTED);
        Ok(Library {
            tracks: counts.tracks,
            playable: counts.playable,
            analysed: counts.playable + counts.short,
            pending: counts.pending,
            failed: counts.failed,
            too_short: counts.short,
            min_track_s: self.config.library.min_track_s,
            analysis_version: crate::analysis::ANALYSIS_VERSION,
            failed_files,
        })
    }

    /// Everything but the library section, which is passed in; also the
    /// scheduler's library, for searches.
    fn build(&self, library: Library) -> (Status, Arc<crate::ordering::tour::Library>) {
        let s = &self.stats;
        let rate = s.rate.0 as f64;
        let frame_s = crate::units::MP3_FRAME_SAMPLES as f64 / rate;
        let (upcoming, ordering, tracks) = {
            let sched = self.scheduler.lock().unwrap_or_else(|p| p.into_inner());
            (sched.upcoming().iter().map(|p| TrackSummary::from(&*p.track)).collect(), sched.status(), sched.library())
        };
        let on_air = self.hub.on_air();
        let note = on_air.as_ref().and_then(|a| a.note);
        let now_playing = on_air.and_then(|on_air| {
            on_air.track.as_ref().map(|t| NowPlaying {
                id: t.id,
                title: t.title.clone(),
                artist: t.artist.clone(),
                album: t.album.clone(),
                started_at: on_air.started_at.0,
                started_at_s: on_air.started_at.0 as f64 / rate,
            })
        });
        let frames_sent = s.frames_sent.load(Ordering::Relaxed);
        let status = Status {
            station: StationStatus {
                name: self.config.server.station_name.clone(),
                uptime_s: s.started.elapsed().as_secs_f64(),
                bitrate_kbps: self.config.stream.bitrate_kbps,
                sample_rate: self.config.stream.sample_rate,
                requests_open: self.config.requests.enabled,
            },
            now_playing,
            upcoming,
            queues: Queues {
                pcm: Queue {
                    depth_s: s.pcm_queued.load(Ordering::Relaxed).max(0) as f64 / rate,
                    capacity_s: s.pcm_capacity as f64 / rate,
                },
                frames: Queue {
                    depth_s: s.frames_queued.load(Ordering::Relaxed).max(0) as f64 * frame_s,
                    capacity_s: s.frames_capacity as f64 * frame_s,
                },
            },
            broadcast: BroadcastStatus {
                frames_sent,
                underruns: s.underruns.load(Ordering::Relaxed),
                drift_ms: s.drift_us.load(Ordering::Relaxed) as f64 / 1000.0,
                burst_s: self.hub.burst_s(),
                media_time_s: frames_sent as f64 * frame_s,
                encoder_cpu_percent: s.encoder_cpu_percent(),
                note,
            },
            listeners: Listeners {
                count: self.hub.listener_count(),
                max: self.config.server.max_listeners,
                total: s.listeners_total.load(Ordering::Relaxed),
                dropped_slow: s.listeners_dropped.load(Ordering::Relaxed),
                refused_full: s.listeners_refused.load(Ordering::Relaxed),
            },
            outputs: s.outputs.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|o| o.report()).collect(),
            mounts: s.mounts.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|m| m.report()).collect(),
            library,
            mixer: MixerStatus {
                crossfade_s: self.config.mixer.crossfade_s,
                overlap_bars: self.config.mixer.overlap_bars,
                transitions_beatmatched: s.transitions_beatmatched.load(Ordering::Relaxed),
                transitions_crossfade: s.transitions_crossfade.load(Ordering::Relaxed),
                transition: s.transition.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                recent_transitions: s.transitions.lock().unwrap_or_else(|p| p.into_inner()).iter().rev().take(10).cloned().collect(),
                fallbacks: s.fallbacks.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (k.name(), *v)).collect(),
                tracks_started: s.tracks_started.load(Ordering::Relaxed),
                track_failures: s.track_failures.load(Ordering::Relaxed),
                last_error: s.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            },
            ordering,
            components: s.components.report(),
        };
        (status, tracks)
    }
}

/// The latest snapshot, serialised for each audience.
pub struct Published {
    pub status: Status,
    /// `/status`: without paths, error texts and outputs.
    pub public: Bytes,
    /// `/admin/status`: everything.
    pub admin: Bytes,
    /// The playable tracks, for `/api/tracks` searches.
    pub tracks: Arc<crate::ordering::tour::Library>,
    /// The data of the `/events` events that follow the plan (`upcoming`,
    /// `requests`, `plugin`), made once here for every event stream.
    pub upcoming_event: serde_json::Value,
    pub requests_event: serde_json::Value,
    pub plugin_event: serde_json::Value,
}

/// Keys of the status a listener does not see: file paths, error texts,
/// where the stream is pushed.
const PRIVATE: [&[&str]; 5] = [
    &["library", "failed_files"],
    &["mixer", "last_error"],
    &["ordering", "error"],
    &["outputs"],
    &["components", "*", "last_error"],
];

fn strip(value: &mut serde_json::Value, path: &[&str]) {
    match path {
        [] => {}
        [last] => {
            if let Some(o) = value.as_object_mut() {
                o.remove(*last);
            }
        }
        ["*", rest @ ..] => value.as_object_mut().into_iter().flat_map(|o| o.values_mut()).for_each(|v| strip(v, rest)),
        [key, rest @ ..] => {
            if let Some(v) = value.get_mut(*key) {
                strip(v, rest)
            }
        }
    }
}

fn serialise(value: &serde_json::Value) -> Bytes {
    let mut body = serde_json::to_vec_pretty(value).expect("status serialises");
    body.push(b'\n');
    Bytes::from(body)
}

impl Published {
    fn new(status: Status, tracks: Arc<crate::ordering::tour::Library>) -> Published {
        let mut value = serde_json::to_value(&status).expect("status serialises");
        let admin = serialise(&value);
        let o = &value["ordering"];
        let upcoming_event = serde_json::json!({ "tracks": o["upcoming"] });
        let requests_event = serde_json::json!({ "requests": o["requests"], "played": o["requests_played"] });
        let plugin_event = serde_json::json!({ "plugin": o["plugin"], "version": o["version"], "reloads": o["reloads"],
                                               "errors": o["errors"], "fallbacks": o["fallbacks"] });
        for path in PRIVATE {
            strip(&mut value, path);
        }
        Published { public: serialise(&value), admin, status, tracks, upcoming_event, requests_event, plugin_event }
    }
}

/// How often the snapshot is rebuilt.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// The library section is read again at least this often (and whenever
/// the library changed).
const LIBRARY_EVERY: Duration = Duration::from_secs(5);
/// Dashboard plots: one sample this often, for this long.
pub const HISTORY_EVERY: Duration = Duration::from_secs(5);
const HISTORY_KEPT: Duration = Duration::from_secs(6 * 3600);

/// One point of the dashboard's plots.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    /// Unix time, seconds.
    pub t: f64,
    pub listeners: usize,
    pub pcm_queue_s: f64,
    pub frame_queue_s: f64,
    pub underruns: u64,
    pub drift_ms: f64,
}

pub type History = Arc<Mutex<VecDeque<Sample>>>;

/// Builds the first snapshot (so `/status` answers from the start).
pub async fn first(source: &StatusSource) -> Result<watch::Sender<Arc<Published>>, CatalogError> {
    let library = source.library().await?;
    let (status, tracks) = source.build(library);
    Ok(watch::channel(Arc::new(Published::new(status, tracks))).0)
}

/// Rebuilds and publishes the snapshot until `shutdown`; keeps the plots'
/// history.
pub async fn publish(
    source: StatusSource,
    tx: watch::Sender<Arc<Published>>,
    history: History,
    now: Arc<tokio::sync::Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut library = tx.borrow().status.library.clone();
    let mut library_read = (Instant::now(), source.stats.library_changes.load(Ordering::Relaxed));
    let mut sampled = Instant::now() - HISTORY_EVERY;
    let mut tick = tokio::time::interval(PUBLISH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = now.notified() => {}
            _ = crate::supervise::stopped(&mut shutdown) => return,
        }
        let changes = source.stats.library_changes.load(Ordering::Relaxed);
        if changes != library_read.1 || library_read.0.elapsed() >= LIBRARY_EVERY {
            match source.library().await {
                Ok(l) => library = l,
                Err(e) => tracing::warn!("status: {e}"),
            }
            library_read = (Instant::now(), changes);
        }
        let (status, tracks) = source.build(library.clone());
        if sampled.elapsed() >= HISTORY_EVERY {
            sampled = Instant::now();
            let mut h = history.lock().unwrap_or_else(|p| p.into_inner());
            if h.len() as u32 >= (HISTORY_KEPT.as_secs() / HISTORY_EVERY.as_secs()) as u32 {
                h.pop_front();
            }
            h.push_back(Sample {
                t: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64(),
                listeners: status.listeners.count,
                pcm_queue_s: status.queues.pcm.depth_s,
                frame_queue_s: status.queues.frames.depth_s,
                underruns: status.broadcast.underruns,
                drift_ms: status.broadcast.drift_ms,
            });
        }
        // Serialising 20-odd kB twice: off the async threads' critical path.
        let published = tokio::task::spawn_blocking(move || Published::new(status, tracks)).await.expect("serialising panicked");
        tx.send_replace(Arc::new(published));
    }
}
