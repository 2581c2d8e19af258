//! The paced broadcaster and the listener hub.
//!
//! One tokio task releases MP3 frame k at `t0 + k·1152/rate`, computed from
//! k against an absolute start instant (`sleep_until`), so it never drifts
//! from the wall clock; if it wakes late it releases every overdue frame at
//! once. An empty frame queue at a deadline sends pre-encoded silence and
//! counts an underrun: the stream never stops.
//!
//! Fan-out is a `tokio::sync::broadcast` channel of `Arc<Frame>`: one
//! allocation per frame whatever the number of listeners, and a listener
//! that lags only loses its own place. A ring of the last `burst_s`
//! seconds gives new listeners audio at once. A listener whose position is
//! more than `max_lag_s` behind live is kicked; nobody else notices.

mod listener;

pub use listener::Listener;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, watch, Notify};
use tokio::time::Instant;

use crate::encoder::Frame;
use crate::mixer::OnAir;
use crate::stats::Stats;
use crate::units::{MediaTime, SampleRate, MP3_FRAME_SAMPLES};

/// Per-listener state the broadcaster can see: how far it has got, and the
/// switch that closes its connection.
#[derive(Debug)]
pub struct ListenerSlot {
    /// Sequence number of the last frame handed to this listener's socket.
    pub position: AtomicU64,
    pub kicked: AtomicBool,
    /// Wakes the connection task so it drops the socket.
    pub kick: Arc<Notify>,
}

/// Why a listener could not be subscribed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeError {
    /// `max_listeners` reached.
    Full,
    /// The station is shutting down.
    Closed,
}

/// Shared between the broadcaster task and every listener.
pub struct Hub {
    rate: SampleRate,
    /// Burst ring and fan-out sender under one lock, so a new listener's
    /// burst and its subscription meet exactly: no frame missed or doubled.
    live: Mutex<Live>,
    listeners: Mutex<HashMap<u64, Arc<ListenerSlot>>>,
    next_listener: AtomicU64,
    /// Sequence number of the newest frame on air (+1; 0 = nothing yet).
    head: AtomicU64,
    burst_frames: usize,
    max_lag_frames: u64,
    stats: Arc<Stats>,
}

struct Live {
    ring: VecDeque<Arc<Frame>>,
    tx: Option<broadcast::Sender<Arc<Frame>>>,
}

impl Hub {
    pub fn new(rate: SampleRate, burst_s: f64, max_lag_s: f64, stats: Arc<Stats>) -> Arc<Hub> {
        let burst_frames = rate.mp3_frames_in(burst_s);
        let max_lag_frames = rate.mp3_frames_in(max_lag_s) as u64;
        // The channel holds more than max_lag: a receiver that overflows it
        // is beyond the lag limit anyway.
        let (tx, _) = broadcast::channel(max_lag_frames as usize + burst_frames + 64);
        Arc::new(Hub {
            rate,
            live: Mutex::new(Live { ring: VecDeque::with_capacity(burst_frames + 1), tx: Some(tx) }),
            listeners: Mutex::new(HashMap::new()),
            next_listener: AtomicU64::new(0),
            head: AtomicU64::new(0),
            burst_frames,
            max_lag_frames,
            stats,
        })
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscribes a listener: the burst frames, then the live feed. `kick`
    /// is notified if the listener falls too far behind.
    pub fn subscribe(self: &Arc<Self>, max_listeners: usize, kick: Arc<Notify>) -> Result<Listener, SubscribeError> {
        let mut listeners = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        if listeners.len() >= max_listeners {
            self.stats.listeners_refused.fetch_add(1, Ordering::Relaxed);
            return Err(SubscribeError::Full);
        }
        let (burst, rx) = {
            let live = self.live();
            let rx = live.tx.as_ref().ok_or(SubscribeError::Closed)?.subscribe();
            (live.ring.iter().cloned().collect::<VecDeque<_>>(), rx)
        };
        let start = burst.front().map(|f| f.seq).unwrap_or_else(|| self.head.load(Ordering::Relaxed));
        let slot = Arc::new(ListenerSlot { position: AtomicU64::new(start), kicked: AtomicBool::new(false), kick });
        let id = self.next_listener.fetch_add(1, Ordering::Relaxed);
        listeners.insert(id, slot.clone());
        self.stats.listeners_total.fetch_add(1, Ordering::Relaxed);
        Ok(Listener::new(burst, rx, slot, self.clone(), id))
    }

    fn unregister(&self, id: u64) {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    /// What is audible right now (the label of the newest frame on air).
    pub fn on_air(&self) -> Option<Arc<OnAir>> {
        self.live().ring.back().map(|f| f.on_air.clone())
    }

    pub fn burst_s(&self) -> f64 {
        (self.burst_frames as u64 * MP3_FRAME_SAMPLES) as f64 / self.rate.0 as f64
    }

    pub fn listener_count(&self) -> usize {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn publish(&self, frame: Arc<Frame>) {
        let mut live = self.live();
        if live.ring.len() == self.burst_frames {
            live.ring.pop_front();
        }
        if self.burst_frames > 0 {
            live.ring.push_back(frame.clone());
        }
        self.head.store(frame.seq + 1, Ordering::Relaxed);
        if let Some(tx) = &live.tx {
            // No receivers is not an error: the station plays to nobody.
            let _ = tx.send(frame);
        }
    }

    /// Kicks every listener further behind live than the limit.
    fn reap(&self) {
        let head = self.head.load(Ordering::Relaxed);
        let listeners = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        for slot in listeners.values() {
            let behind = head.saturating_sub(slot.position.load(Ordering::Relaxed) + 1);
            if behind > self.max_lag_frames && !slot.kicked.swap(true, Ordering::Relaxed) {
                self.stats.listeners_dropped.fetch_add(1, Ordering::Relaxed);
                slot.kick.notify_one();
            }
        }
    }

    /// Ends the live feed: every listener's stream finishes after what it
    /// already has.
    fn close(&self) {
        self.live().tx = None;
    }
}

/// Frames of underrun in a row after which the title says the music is
/// interrupted (about half a second).
const INTERRUPTION_FRAMES: u64 = 20;

/// Where the paced clock stands: frame `k` leaves at `t0 + k·frame`.
struct Clock {
    t0: Instant,
    k: u64,
    label: Arc<OnAir>,
    underrun_run: u64,
    feed_open: bool,
}

/// Runs the paced broadcaster until `shutdown` turns true or the encoder's
/// frame queue closes and drains. Supervised: a panic inside is recorded
/// and pacing resumes on the same clock (no frame number skipped or
/// repeated).
pub async fn run(hub: Arc<Hub>, mut frames: mpsc::Receiver<Frame>, silence: Vec<Bytes>, mut shutdown: watch::Receiver<bool>) {
    use futures_util::FutureExt;
    let health = hub.stats.components.broadcaster.clone();
    // The clock starts with the first real frame, not at process start.
    health.set_alive(true);
    let first = tokio::select! {
        f = frames.recv() => f,
        _ = crate::supervise::stopped(&mut shutdown) => None,
    };
    let Some(first) = first else {
        health.set_alive(false);
        hub.close();
        return;
    };
    let mut clock =
        Clock { t0: Instant::now(), k: 0, label: first.on_air.clone(), underrun_run: 0, feed_open: true };
    let mut pending = Some(first);
    loop {
        health.set_alive(true);
        let paced = std::panic::AssertUnwindSafe(pace(&hub, &mut frames, &mut pending, &silence, &mut shutdown, &mut clock));
        let outcome = paced.catch_unwind().await;
        health.set_alive(false);
        match outcome {
            Ok(()) => break,
            Err(payload) => health.restarted(format!("panicked: {}", crate::audio::panic_message(&*payload))),
        }
        // The frame that was being released when it panicked is skipped.
        clock.k += 1;
    }
    hub.close();
}

async fn pace(
    hub: &Hub,
    frames: &mut mpsc::Receiver<Frame>,
    pending: &mut Option<Frame>,
    silence: &[Bytes],
    shutdown: &mut watch::Receiver<bool>,
    clock: &mut Clock,
) {
    let stats = hub.stats.clone();
    let frame_time = |k: u64| hub.rate.duration_of(k * MP3_FRAME_SAMPLES);
    let reap_every = hub.rate.mp3_frames_in(1.0) as u64;
    loop {
        let k = clock.k;
        let deadline = clock.t0 + frame_time(k);
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {}
            _ = crate::supervise::stopped(shutdown) => return,
        }
        let late = Instant::now().saturating_duration_since(deadline);
        stats.drift_us.store(late.as_micros() as i64, Ordering::Relaxed);
        let next = match pending.take() {
            Some(f) => Some(f),
            None if clock.feed_open => match frames.try_recv() {
                Ok(f) => Some(f),
                Err(mpsc::error::TryRecvError::Empty) => None,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    clock.feed_open = false;
                    None
                }
            },
            None => None,
        };
        let data = match next {
            Some(f) => {
                stats.frames_queued.fetch_sub(1, Ordering::Relaxed);
                clock.label = f.on_air;
                clock.underrun_run = 0;
                f.data
            }
            None => {
                stats.underruns.fetch_add(1, Ordering::Relaxed);
                clock.underrun_run += 1;
                if clock.underrun_run == INTERRUPTION_FRAMES {
                    clock.label = Arc::new(OnAir::interruption(MediaTime(k * MP3_FRAME_SAMPLES)));
                }
                silence[k as usize % silence.len()].clone()
            }
        };
        let frame = Frame { seq: k, media_time: MediaTime(k * MP3_FRAME_SAMPLES), on_air: clock.label.clone(), data };
        hub.publish(Arc::new(frame));
        stats.frames_sent.fetch_add(1, Ordering::Relaxed);
        if k % reap_every == 0 {
            hub.reap();
        }
        clock.k += 1;
    }
}
