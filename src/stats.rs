//! Counters and gauges the pipeline stages update and /status reads.
//! Plain atomics: every stage writes its own fields, readers only need a
//! recent value, so `Relaxed` suffices everywhere.

use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::supervise::{Faults, Health, HealthReport};
use crate::units::SampleRate;

/// Transitions kept for /status and the dashboard.
pub const TRANSITION_LOG: usize = 50;

/// The supervised stages, each with its health.
#[derive(Debug)]
pub struct Components {
    pub mixer: Arc<Health>,
    pub encoder: Arc<Health>,
    pub broadcaster: Arc<Health>,
    pub indexer: Arc<Health>,
    pub planner: Arc<Health>,
    pub plugins: Arc<Health>,
}

impl Default for Components {
    fn default() -> Self {
        Components {
            mixer: Health::new("mixer"),
            encoder: Health::new("encoder"),
            broadcaster: Health::new("broadcaster"),
            indexer: Health::new("indexer"),
            planner: Health::new("planner"),
            plugins: Health::new("plugin watcher"),
        }
    }
}

impl Components {
    pub fn all(&self) -> [&Arc<Health>; 6] {
        [&self.mixer, &self.encoder, &self.broadcaster, &self.indexer, &self.planner, &self.plugins]
    }

    /// Name → health, for /status.
    pub fn report(&self) -> std::collections::BTreeMap<&'static str, HealthReport> {
        self.all().into_iter().map(|h| (h.name, h.report())).collect()
    }
}

#[derive(Debug)]
pub struct Stats {
    pub started: Instant,
    pub rate: SampleRate,
    /// Sample frames in the PCM queue (mixer -> encoder). Signed: the
    /// consumer may count a block out before the producer counts it in.
    pub pcm_queued: AtomicI64,
    pub pcm_capacity: u64,
    /// MP3 frames in the frame queue (encoder -> broadcaster). Signed, as above.
    pub frames_queued: AtomicI64,
    pub frames_capacity: u64,
    /// Frames released on air, silence included.
    pub frames_sent: AtomicU64,
    /// Deadlines at which the frame queue was empty (silence sent).
    pub underruns: AtomicU64,
    /// How late the last frame went out relative to its deadline, microseconds.
    pub drift_us: AtomicI64,
    pub listeners_total: AtomicU64,
    /// Listeners disconnected for falling too far behind.
    pub listeners_dropped: AtomicU64,
    /// Listeners refused because `max_listeners` was reached.
    pub listeners_refused: AtomicU64,
    pub tracks_started: AtomicU64,
    /// Tracks that failed while on air (opened or decoded badly) and were skipped.
    pub track_failures: AtomicU64,
    /// CPU time spent in each stage, nanoseconds (for render benchmarks).
    pub decode_ns: AtomicU64,
    pub mix_ns: AtomicU64,
    pub encode_ns: AtomicU64,
    /// Last mixer error shown on /status.
    pub last_error: Mutex<Option<String>>,
    pub transitions_beatmatched: AtomicU64,
    /// Fallback crossfades (the reason is logged and kept with the transition).
    pub transitions_crossfade: AtomicU64,
    /// The latest transition.
    pub transition: Mutex<Option<crate::transition::TransitionInfo>>,
    /// The last `TRANSITION_LOG` transitions, oldest first.
    pub transitions: Mutex<std::collections::VecDeque<crate::transition::TransitionInfo>>,
    /// Crossfades by why they fell back.
    pub fallbacks: Mutex<std::collections::HashMap<crate::transition::Fallback, u64>>,
    pub components: Components,
    /// Test switches for injected failures.
    pub faults: Faults,
    /// An admin asked to mix out of the current track early (on the beat).
    pub skip: std::sync::atomic::AtomicBool,
    /// PCM blocks a mount's encoder could not take in time (lost on that
    /// mount only).
    pub pcm_dropped: AtomicU64,
    /// Bumped whenever the catalogue's playable set changed (the status
    /// publisher then reads its counts again).
    pub library_changes: AtomicU64,
    /// The further mounts (`[[mounts]]`), for /status.
    pub mounts: Mutex<Vec<Arc<crate::broadcast::mount::Mount>>>,
    /// The outputs beyond the station's own listeners (Icecast servers).
    pub outputs: Mutex<Vec<Arc<crate::broadcast::icecast::OutputState>>>,
}

impl Stats {
    pub fn new(rate: SampleRate, pcm_capacity: u64, frames_capacity: u64) -> Stats {
        Stats {
            started: Instant::now(),
            rate,
            pcm_queued: AtomicI64::new(0),
            pcm_capacity,
            frames_queued: AtomicI64::new(0),
            frames_capacity,
            frames_sent: AtomicU64::new(0),
            underruns: AtomicU64::new(0),
            drift_us: AtomicI64::new(0),
            listeners_total: AtomicU64::new(0),
            listeners_dropped: AtomicU64::new(0),
            listeners_refused: AtomicU64::new(0),
            tracks_started: AtomicU64::new(0),
            track_failures: AtomicU64::new(0),
            decode_ns: AtomicU64::new(0),
            mix_ns: AtomicU64::new(0),
            encode_ns: AtomicU64::new(0),
            last_error: Mutex::new(None),
            transitions_beatmatched: AtomicU64::new(0),
            transitions_crossfade: AtomicU64::new(0),
            transition: Mutex::new(None),
            transitions: Mutex::new(Default::default()),
            fallbacks: Mutex::new(Default::default()),
            components: Components::default(),
            faults: Faults::default(),
            skip: std::sync::atomic::AtomicBool::new(false),
            library_changes: AtomicU64::new(0),
            pcm_dropped: AtomicU64::new(0),
            mounts: Mutex::new(Vec::new()),
            outputs: Mutex::new(Vec::new()),
        }
    }

    /// Keeps a transition that just aired (the latest, the log, the counts).
    pub fn record_transition(&self, info: crate::transition::TransitionInfo) {
        if let Some(kind) = info.plan.fallback {
            *self.fallbacks.lock().unwrap_or_else(|p| p.into_inner()).entry(kind).or_insert(0) += 1;
        }
        let mut log = self.transitions.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() == TRANSITION_LOG {
            log.pop_front();
        }
        log.push_back(info.clone());
        *self.transition.lock().unwrap_or_else(|p| p.into_inner()) = Some(info);
    }

    /// The encoder's CPU time over the uptime, percent of a core.
    pub fn encoder_cpu_percent(&self) -> f64 {
        let uptime = self.started.elapsed().as_secs_f64().max(1e-9);
        self.encode_ns.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e9 / uptime * 100.0
    }

    pub fn set_error(&self, message: String) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(message);
    }
}
