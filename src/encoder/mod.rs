//! The encoder thread: mixed PCM blocks in, whole MP3 frames out. Each frame
//! is tagged with its sequence number, its media time and what is audible in
//! it, so metadata travels with the audio all the way to the listener.
//!
//! Runs on its own OS thread (LAME is CPU-bound and its handle is built on
//! that thread); blocks on the bounded frame queue when the broadcaster is
//! behind, which in turn backs the PCM queue up into the mixer.

mod lame;

pub use lame::{encode_file, encode_file_planar, FileTags, Lame, LameError, LameSettings};

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;

use crate::mixer::{OnAir, PcmBlock};
use crate::mp3::FrameSplitter;
use crate::stats::Stats;
use crate::supervise::{self, Exit, Faults};
use crate::units::{MediaTime, MP3_FRAME_SAMPLES};

/// LAME's encoder delay plus the MP3 decoder delay, in samples: frame k's
/// audio is the mixer's output from `k * 1152 - LAME_DELAY` on.
pub const LAME_DELAY: u64 = 576 + 529;

/// One MP3 frame as it goes on air. Shared by every listener (`Arc`); the
/// payload is `Bytes`, so slicing it for ICY costs no copy.
#[derive(Debug, Clone)]
pub struct Frame {
    pub seq: u64,
    pub media_time: MediaTime,
    pub on_air: Arc<OnAir>,
    pub data: Bytes,
    /// The encoder's number for the audio in it (`None`: silence the
    /// broadcaster filled in). On air `seq` counts frames sent; a second
    /// mount follows `source`, so both carry the same audio at the same
    /// moment.
    pub source: Option<u64>,
}

/// A second encoder fed the same PCM (a mount): its queue and its counters.
/// Fed with `try_send`: a mount that falls behind loses blocks (counted),
/// it never holds up the station.
#[derive(Clone)]
pub struct Tap {
    pub tx: crossbeam_channel::Sender<PcmBlock>,
    pub stats: Arc<Stats>,
}

/// Spawns the encoder thread. It ends when the PCM queue closes (after
/// draining it), when the frame queue's receiver is gone, or on `stop`.
/// Supervised: an encoder error or panic is recorded and a fresh LAME
/// carries on from the next PCM block, the frame numbers continuing.
pub fn spawn(
    settings: LameSettings,
    pcm_rx: crossbeam_channel::Receiver<PcmBlock>,
    frames_tx: tokio::sync::mpsc::Sender<Frame>,
    taps: Vec<Tap>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("encoder".into()).spawn(move || {
        let health = stats.components.encoder.clone();
        let mut seq = 0u64;
        supervise::run(&health, &stop, || match encode(settings, &pcm_rx, &frames_tx, &taps, &stats, &mut seq) {
            Ok(()) => Exit::Done,
            Err(e) => Exit::Failed(e),
        });
    })
}

/// Encodes PCM blocks until the PCM queue closes or the frame queue's
/// receiver is gone (`Ok`), or LAME fails (`Err`). `seq` is the next
/// frame's sequence number, kept across restarts.
fn encode(
    settings: LameSettings,
    pcm_rx: &crossbeam_channel::Receiver<PcmBlock>,
    frames_tx: &tokio::sync::mpsc::Sender<Frame>,
    taps: &[Tap],
    stats: &Stats,
    seq: &mut u64,
) -> Result<(), LameError> {
    let mut lame = Lame::new(settings, None)?;
    let mut splitter = FrameSplitter::default();
    let mut labels = Labels::default();
    let mut mp3 = Vec::new();
    while let Ok(block) = pcm_rx.recv() {
        let frames = block.samples.len() as u64 / 2;
        stats.pcm_queued.fetch_sub(frames as i64, Ordering::Relaxed);
        for tap in taps {
            match tap.tx.try_send(block.clone()) {
                Ok(()) => {
                    tap.stats.pcm_queued.fetch_add(frames as i64, Ordering::Relaxed);
                }
                Err(crossbeam_channel::TrySendError::Full(_)) => {
                    tap.stats.pcm_dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(crossbeam_channel::TrySendError::Disconnected(_)) => {}
            }
        }
        if Faults::take(&stats.faults.encoder_error) {
            return Err(LameError::Encode("injected fault (test switch)".into()));
        }
        labels.push(block.start, block.on_air.clone());
        mp3.clear();
        let started = std::time::Instant::now();
        lame.encode(&block.samples, &mut mp3)?;
        stats.encode_ns.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        splitter.push(&mp3);
        while let Some((_, bytes)) = splitter.next_frame() {
            let media_time = MediaTime(*seq * MP3_FRAME_SAMPLES);
            // What the listener hears in the middle of this frame.
            let heard_at = (*seq * MP3_FRAME_SAMPLES + MP3_FRAME_SAMPLES / 2).saturating_sub(LAME_DELAY);
            let on_air = labels.at(MediaTime(heard_at));
            let frame = Frame { seq: *seq, media_time, on_air, data: Bytes::from(bytes), source: Some(*seq) };
            *seq += 1;
            if frames_tx.blocking_send(frame).is_err() {
                return Ok(());
            }
            stats.frames_queued.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// Media-time ranges and what is audible in each, oldest first.
#[derive(Default)]
struct Labels {
    changes: VecDeque<(MediaTime, Arc<OnAir>)>,
}

impl Labels {
    fn push(&mut self, start: MediaTime, on_air: Arc<OnAir>) {
        match self.changes.back() {
            Some((_, last)) if Arc::ptr_eq(last, &on_air) => {}
            _ => self.changes.push_back((start, on_air)),
        }
    }

    /// The label at `t`; labels older than it are forgotten (frames are
    /// asked for in order).
    fn at(&mut self, t: MediaTime) -> Arc<OnAir> {
        while self.changes.len() > 1 && self.changes[1].0 <= t {
            self.changes.pop_front();
        }
        self.changes.front().map(|(_, l)| l.clone()).unwrap_or_else(|| Arc::new(OnAir::silence(t)))
    }
}

/// Pre-encoded frames of digital silence, sent by the broadcaster when the
/// frame queue runs dry. Taken from the middle of an encoded second so they
/// are steady-state frames, not LAME's start-up frames.
pub fn silence_frames(settings: LameSettings) -> Result<Vec<Bytes>, LameError> {
    let mut lame = Lame::new(settings, None)?;
    let mut out = Vec::new();
    lame.encode(&vec![0.0f32; settings.sample_rate as usize * 2], &mut out)?;
    let mut splitter = FrameSplitter::default();
    splitter.push(&out);
    let frames: Vec<Bytes> = std::iter::from_fn(|| splitter.next_frame()).map(|(_, f)| Bytes::from(f)).collect();
    let mid = frames.len() / 2;
    Ok(frames[mid..mid + 2.min(frames.len() - mid)].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mp3::FrameHeader;

    #[test]
    fn silence_frames_are_valid_cbr_frames() {
        let settings = LameSettings { sample_rate: 44_100, bitrate_kbps: 128, quality: 3 };
        let frames = silence_frames(settings).unwrap();
        assert!(!frames.is_empty());
        for f in frames {
            let h = FrameHeader::parse(&f).unwrap();
            assert_eq!(h.bitrate_kbps, 128);
            assert_eq!(h.len(), f.len());
        }
    }

    #[test]
    fn labels_follow_media_time() {
        let a = Arc::new(OnAir::silence(MediaTime(0)));
        let b = Arc::new(OnAir::silence(MediaTime(1000)));
        let mut l = Labels::default();
        l.push(MediaTime(0), a.clone());
        l.push(MediaTime(500), a.clone());
        l.push(MediaTime(1000), b.clone());
        assert!(Arc::ptr_eq(&l.at(MediaTime(999)), &a));
        assert!(Arc::ptr_eq(&l.at(MediaTime(1000)), &b));
        assert!(Arc::ptr_eq(&l.at(MediaTime(5000)), &b));
    }
}
