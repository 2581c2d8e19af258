//! A second mount: the same mixed PCM encoded again (another bitrate) by
//! its own encoder thread with its own queues, served to its own listeners
//! from its own hub (burst, lag limit, ICY, delivery shards as for the main
//! stream).
//!
//! It has no clock of its own: as the main broadcaster releases a frame, the
//! mount releases its frame of the same audio (the same encoder number), so
//! every output reads one media clock and a mount never drifts from the
//! main stream. A frame the mount's encoder has not made in time (it lost
//! PCM, or is restarting) goes out as silence, counted as an underrun of
//! that mount only.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use super::Hub;
use crate::encoder::Frame;
use crate::stats::Stats;
use crate::units::{MediaTime, MP3_FRAME_SAMPLES};

/// A mount as the HTTP front and /status see it.
pub struct Mount {
    /// Its path, e.g. `/low.mp3`.
    pub path: String,
    pub bitrate_kbps: u32,
    pub hub: Arc<Hub>,
    pub stats: Arc<Stats>,
}

/// A mount on /status.
#[derive(Debug, Clone, Serialize)]
pub struct MountReport {
    pub path: String,
    pub bitrate_kbps: u32,
    pub listeners: usize,
    pub listeners_total: u64,
    pub frames_sent: u64,
    /// Frames sent as silence because the mount's encoder had not made them.
    pub underruns: u64,
    /// PCM blocks its encoder could not take in time.
    pub pcm_dropped: u64,
    /// Its encoder's CPU time over the station's uptime, percent of a core.
    pub encoder_cpu_percent: f64,
}

impl std::fmt::Debug for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mount").field("path", &self.path).field("bitrate_kbps", &self.bitrate_kbps).finish()
    }
}

impl Mount {
    pub fn report(&self) -> MountReport {
        let s = &self.stats;
        MountReport {
            path: self.path.clone(),
            bitrate_kbps: self.bitrate_kbps,
            listeners: self.hub.listener_count(),
            listeners_total: s.listeners_total.load(Ordering::Relaxed),
            frames_sent: s.frames_sent.load(Ordering::Relaxed),
            underruns: s.underruns.load(Ordering::Relaxed),
            pcm_dropped: s.pcm_dropped.load(Ordering::Relaxed),
            encoder_cpu_percent: s.encoder_cpu_percent(),
        }
    }
}

/// Releases the mount's frames in step with `main`'s until `main` closes or
/// `shutdown`; then closes the mount's hub.
pub async fn run(mount: Arc<Hub>, main: Arc<Hub>, mut frames: mpsc::Receiver<Frame>, silence: Vec<Bytes>, mut shutdown: watch::Receiver<bool>) {
    let stats = mount.stats.clone();
    let mut head = main.head();
    let mut next = *head.borrow();
    let mut ready: VecDeque<Frame> = VecDeque::new();
    loop {
        tokio::select! {
            changed = head.changed() => if changed.is_err() { break },
            _ = crate::supervise::stopped(&mut shutdown) => break,
        }
        if main.is_closed() {
            break;
        }
        while let Ok(f) = frames.try_recv() {
            stats.frames_queued.fetch_add(1, Ordering::Relaxed);
            ready.push_back(f);
        }
        let (released, first) = main.frames_since(next);
        for (i, air) in released.iter().enumerate() {
            let k = first + i as u64;
            // This mount's encoding of the same audio, if it has it.
            let own = air.source.and_then(|source| {
                while ready.front().is_some_and(|f| f.seq < source) {
                    ready.pop_front();
                    stats.frames_queued.fetch_sub(1, Ordering::Relaxed);
                }
                ready.front().filter(|f| f.seq == source)?;
                stats.frames_queued.fetch_sub(1, Ordering::Relaxed);
                ready.pop_front()
            });
            // The label is the main stream's: titles change on both at once.
            let data = match own {
                Some(f) => f.data,
                None => {
                    stats.underruns.fetch_add(1, Ordering::Relaxed);
                    silence[k as usize % silence.len()].clone()
                }
            };
            let frame = Frame { seq: k, media_time: MediaTime(k * MP3_FRAME_SAMPLES), on_air: air.on_air.clone(), data, source: air.source };
            mount.publish(Arc::new(frame));
            stats.frames_sent.fetch_add(1, Ordering::Relaxed);
        }
        next = first + released.len() as u64;
    }
    mount.close();
}
