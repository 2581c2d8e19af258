//! The paced broadcaster and the listener hub.
//!
//! One tokio task releases MP3 frame k at `t0 + k·1152/rate`, computed from
//! k against an absolute start instant (`sleep_until`), so it never drifts
//! from the wall clock; if it wakes late it releases every overdue frame at
//! once. An empty frame queue at a deadline sends pre-encoded silence and
//! counts an underrun: the stream never stops.
//!
//! Released frames go into the hub's frame log: a ring of the last
//! `burst_s + max_lag_s` seconds of `Arc<Frame>`, one allocation per frame
//! whatever the number of listeners. Listeners are served by a few
//! delivery shards ([`delivery`]), one task each: every few frames (about
//! a tenth of a second) a shard walks its listeners and hands each socket
//! everything it has not yet taken in one vectored, non-blocking write. No
//! task, wake-up or allocation per listener per frame. A new listener gets
//! the last `burst_s` seconds at once; one whose socket will not take its
//! bytes falls behind on its own and is dropped past `max_lag_s`.

mod delivery;
pub mod hls;
pub mod icecast;
pub mod mount;
pub mod ts;

pub use delivery::{Conn, ListenerInfo};

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::encoder::Frame;
use crate::mixer::OnAir;
use crate::stats::Stats;
use crate::units::{MediaTime, SampleRate, MP3_FRAME_SAMPLES};

/// Why a listener could not be subscribed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeError {
    /// `max_listeners` reached.
    Full,
    /// The station is shutting down.
    Closed,
}

/// The recent frames, by sequence number.
struct FrameLog {
    frames: VecDeque<Arc<Frame>>,
    /// Sequence number of `frames[0]`.
    first: u64,
}

/// Shared between the broadcaster task, the delivery shards and the HTTP
/// front.
pub struct Hub {
    rate: SampleRate,
    /// The frame log; the broadcaster writes once per frame, shards read
    /// once per flush.
    log: RwLock<FrameLog>,
    log_capacity: usize,
    /// Sequence number of the newest frame on air + 1 (0: nothing yet);
    /// shards wait on it.
    head: watch::Sender<u64>,
    /// New listeners for each shard, handed out round-robin.
    shards: Vec<mpsc::UnboundedSender<Conn>>,
    next_shard: AtomicUsize,
    /// Listeners subscribed (including those still being set up).
    count: AtomicUsize,
    next_id: AtomicU64,
    closed: AtomicBool,
    burst_frames: usize,
    max_lag_frames: u64,
    /// Each shard's listeners as last published (for the admin view).
    pub(crate) tables: Mutex<Vec<Vec<ListenerInfo>>>,
    stats: Arc<Stats>,
}

/// A listener's place, held while it is connected: its id and the frame it
/// starts from. Dropping it frees the place.
pub struct Subscription {
    hub: Arc<Hub>,
    pub id: u64,
    /// The first frame this listener gets (the burst's first).
    pub start: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How many delivery shards: one per worker thread, at most 4.
fn shard_count() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(1, 4)
}

impl Hub {
    /// The hub and the receiving ends of its shards' queues (spawn
    /// `delivery::run` on each).
    pub fn new(
        rate: SampleRate,
        burst_s: f64,
        max_lag_s: f64,
        stats: Arc<Stats>,
    ) -> (Arc<Hub>, Vec<mpsc::UnboundedReceiver<Conn>>) {
        let burst_frames = rate.mp3_frames_in(burst_s);
        let max_lag_frames = rate.mp3_frames_in(max_lag_s) as u64;
        let log_capacity = burst_frames.max(max_lag_frames as usize) + 64;
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..shard_count()).map(|_| mpsc::unbounded_channel()).unzip();
        let hub = Arc::new(Hub {
            rate,
            log: RwLock::new(FrameLog { frames: VecDeque::with_capacity(log_capacity + 1), first: 0 }),
            log_capacity,
            head: watch::channel(0).0,
            shards: txs,
            next_shard: AtomicUsize::new(0),
            count: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            burst_frames,
            max_lag_frames,
            tables: Mutex::new(vec![Vec::new(); rxs.len()]),
            stats,
        });
        (hub, rxs)
    }

    /// Takes a listener's place (`max_listeners` at most): it will start
    /// with the last `burst_s` seconds, or at frame `from` if the log still
    /// holds it (a player in sync mode asks for the frame it wants to know
    /// the media time of).
    pub fn subscribe(self: &Arc<Self>, max_listeners: usize, from: Option<u64>) -> Result<Subscription, SubscribeError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(SubscribeError::Closed);
        }
        if self.count.fetch_add(1, Ordering::Relaxed) >= max_listeners {
            self.count.fetch_sub(1, Ordering::Relaxed);
            self.stats.listeners_refused.fetch_add(1, Ordering::Relaxed);
            return Err(SubscribeError::Full);
        }
        let head = *self.head.borrow();
        let first = self.log.read().unwrap_or_else(|p| p.into_inner()).first;
        let start = from.unwrap_or(head.saturating_sub(self.burst_frames as u64)).clamp(first, head);
        self.stats.listeners_total.fetch_add(1, Ordering::Relaxed);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        Ok(Subscription { hub: self.clone(), id, start })
    }

    /// Hands a connected listener to a delivery shard.
    pub fn attach(&self, conn: Conn) {
        let i = self.next_shard.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        // A closed shard (shutting down) drops the connection: fine.
        let _ = self.shards[i].send(conn);
    }

    /// What is audible right now (the label of the newest frame on air).
    pub fn on_air(&self) -> Option<Arc<OnAir>> {
        self.log.read().unwrap_or_else(|p| p.into_inner()).frames.back().map(|f| f.on_air.clone())
    }

    pub fn burst_s(&self) -> f64 {
        (self.burst_frames as u64 * MP3_FRAME_SAMPLES) as f64 / self.rate.0 as f64
    }

    pub fn listener_count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// The listeners as the shards last saw them.
    pub fn listeners(&self) -> Vec<ListenerInfo> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner()).iter().flatten().cloned().collect()
    }

    fn publish(&self, frame: Arc<Frame>) {
        let seq = frame.seq;
        {
            let mut log = self.log.write().unwrap_or_else(|p| p.into_inner());
            if log.frames.is_empty() {
                log.first = seq;
            }
            log.frames.push_back(frame);
            while log.frames.len() > self.log_capacity {
                log.frames.pop_front();
                log.first += 1;
            }
        }
        self.head.send_replace(seq + 1);
    }

    /// Ends the live feed: shards finish the frame each listener is in and
    /// close its connection.
    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        // Wake the shards.
        self.head.send_modify(|_| {});
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// The frames from `from` (or the oldest kept, if later) to the
    /// newest, cloned out of the log — one reference count each — and the
    /// sequence number of the first.
    pub(crate) fn frames_since(&self, from: u64) -> (Vec<Arc<Frame>>, u64) {
        let log = self.log.read().unwrap_or_else(|p| p.into_inner());
        let first = from.max(log.first);
        let skip = (first - log.first) as usize;
        (log.frames.iter().skip(skip).cloned().collect(), first)
    }

    pub(crate) fn head(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }
}

/// Spawns the delivery shards for `receivers` (from `Hub::new`).
pub fn spawn_delivery(hub: &Arc<Hub>, receivers: Vec<mpsc::UnboundedReceiver<Conn>>) -> Vec<tokio::task::JoinHandle<()>> {
    receivers.into_iter().enumerate().map(|(i, rx)| tokio::spawn(delivery::run(hub.clone(), i, rx))).collect()
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
        let (data, source) = match next {
            Some(f) => {
                stats.frames_queued.fetch_sub(1, Ordering::Relaxed);
                clock.label = f.on_air;
                clock.underrun_run = 0;
                (f.data, f.source)
            }
            None => {
                stats.underruns.fetch_add(1, Ordering::Relaxed);
                clock.underrun_run += 1;
                if clock.underrun_run == INTERRUPTION_FRAMES {
                    clock.label = Arc::new(OnAir::interruption(MediaTime(k * MP3_FRAME_SAMPLES)));
                }
                (silence[k as usize % silence.len()].clone(), None)
            }
        };
        let frame = Frame { seq: k, media_time: MediaTime(k * MP3_FRAME_SAMPLES), on_air: clock.label.clone(), data, source };
        hub.publish(Arc::new(frame));
        stats.frames_sent.fetch_add(1, Ordering::Relaxed);
        clock.k += 1;
    }
}
