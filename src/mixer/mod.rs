//! The mixer worker: pulls picks from the scheduler, decodes and resamples
//! each track, joins neighbours with an equal-power crossfade and pushes
//! fixed-size PCM blocks into the bounded PCM queue. A full queue blocks it
//! (backpressure), so it never runs more than `queues.pcm_s` ahead.
//!
//! Runs on its own OS thread. It keeps a look-ahead of one crossfade length
//! of the current track, so when the track ends its tail is at hand to be
//! overlapped with the next track's head: no need to know lengths in advance.
//! A track that fails to open or decode is skipped (and marked failed in
//! the catalogue); with nothing playable it sends silence. It never stops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{SendTimeoutError, Sender};

use crate::audio::TrackReader;
use crate::catalog::{Catalog, Track};
use crate::ordering::Scheduler;
use crate::stats::Stats;
use crate::units::{MediaTime, SampleRate};

/// How many failing picks in a row the mixer tries before sending a block
/// of silence and trying again.
const MAX_OPEN_ATTEMPTS: usize = 8;

/// What is audible on air from `started_at` on.
#[derive(Debug)]
pub struct OnAir {
    /// `None` while the station sends silence (nothing playable).
    pub track: Option<Arc<Track>>,
    pub started_at: MediaTime,
}

impl OnAir {
    pub fn silence(started_at: MediaTime) -> OnAir {
        OnAir { track: None, started_at }
    }

    /// The ICY `StreamTitle` text: `Artist - Title`.
    pub fn stream_title(&self) -> String {
        self.track.as_ref().map(|t| t.display()).unwrap_or_default()
    }
}

/// A run of mixed audio, all of it under one label.
#[derive(Debug)]
pub struct PcmBlock {
    pub start: MediaTime,
    /// Interleaved stereo at the station rate.
    pub samples: Vec<f32>,
    pub on_air: Arc<OnAir>,
}

#[derive(Debug, Clone, Copy)]
pub struct MixerSettings {
    pub rate: SampleRate,
    /// Crossfade length in sample frames.
    pub crossfade: usize,
    /// Frames per PCM block.
    pub block: usize,
}

/// A track being played: its decoder and the decoded frames not yet sent.
struct Playing {
    reader: TrackReader,
    on_air: Arc<OnAir>,
    /// Interleaved stereo decoded but not yet emitted.
    buf: Vec<f32>,
    ended: bool,
}

impl Playing {
    fn frames(&self) -> usize {
        self.buf.len() / 2
    }
}

struct Worker {
    settings: MixerSettings,
    scheduler: Arc<Mutex<Scheduler>>,
    catalog: Arc<Catalog>,
    out: Sender<PcmBlock>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    /// Media time of the next sample to emit.
    now: MediaTime,
}

/// Why the worker stopped emitting.
struct Stopped;

/// Spawns the mixer thread. It runs until `stop` is set or the PCM queue's
/// receiver is gone.
pub fn spawn(
    settings: MixerSettings,
    scheduler: Arc<Mutex<Scheduler>>,
    catalog: Arc<Catalog>,
    out: Sender<PcmBlock>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("mixer".into()).spawn(move || {
        let mut w = Worker { settings, scheduler, catalog, out, stats, stop, now: MediaTime(0) };
        let _ = w.run();
    })
}

impl Worker {
    fn run(&mut self) -> Result<(), Stopped> {
        let mut current: Option<Playing> = None;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Err(Stopped);
            }
            let Some(mut p) = current.take() else {
                current = self.open_next();
                if current.is_none() {
                    if self.now == MediaTime(0) {
                        // Nothing analysed yet: the stream starts with the
                        // first playable track, not with silence.
                        std::thread::sleep(Duration::from_millis(100));
                    } else {
                        let label = Arc::new(OnAir::silence(self.now));
                        self.emit(vec![0.0; self.settings.block * 2], label)?;
                    }
                }
                continue;
            };
            let (xf, block) = (self.settings.crossfade, self.settings.block);
            self.fill(&mut p, xf + block);
            // Keep one crossfade length in hand until the track ends.
            let keep = if p.ended { xf.min(p.frames()) } else { xf };
            let ready = p.frames().saturating_sub(keep).min(block);
            if ready > 0 {
                let samples: Vec<f32> = p.buf.drain(..ready * 2).collect();
                self.emit(samples, p.on_air.clone())?;
                current = Some(p);
            } else if p.ended {
                current = self.transition(p)?;
            } else {
                current = Some(p);
            }
        }
    }

    /// Decodes until `p` holds `frames` frames or its track ends.
    fn fill(&self, p: &mut Playing, frames: usize) {
        let started = Instant::now();
        while !p.ended && p.frames() < frames {
            let want = frames - p.frames();
            match p.reader.read(&mut p.buf, want) {
                Ok(0) => p.ended = true,
                Ok(_) => {}
                Err(e) => {
                    // The file broke mid-play: end it here, crossfade from
                    // what we have, and keep it off the schedule.
                    let track = p.on_air.track.clone();
                    self.fail(track.as_deref(), &e.to_string());
                    p.ended = true;
                }
            }
        }
        self.stats.decode_ns.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// Crossfades the ended track's tail into the next track's head.
    fn transition(&mut self, mut prev: Playing) -> Result<Option<Playing>, Stopped> {
        let tail = std::mem::take(&mut prev.buf);
        let Some(mut next) = self.open_next() else {
            if !tail.is_empty() {
                self.emit(tail, prev.on_air)?;
            }
            return Ok(None);
        };
        let n = tail.len() / 2;
        self.fill(&mut next, n);
        let started = Instant::now();
        let overlap = n.min(next.frames());
        let mut mixed = tail;
        equal_power_crossfade(&mut mixed[..overlap * 2], &next.buf[..overlap * 2]);
        // A next track shorter than the tail: the rest of the tail fades out alone.
        let rest = n - overlap;
        if rest > 0 {
            fade_out(&mut mixed[overlap * 2..]);
        }
        next.buf.drain(..overlap * 2);
        self.stats.mix_ns.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        // The next track is audible from the first sample of the overlap.
        self.emit(mixed, next.on_air.clone())?;
        Ok(Some(next))
    }

    /// Opens the scheduler's next pick, skipping files that fail to open.
    fn open_next(&mut self) -> Option<Playing> {
        for _ in 0..MAX_OPEN_ATTEMPTS {
            let track = self.scheduler.lock().unwrap_or_else(|p| p.into_inner()).next()?;
            match TrackReader::open(&track.path, self.settings.rate) {
                Ok(reader) => {
                    self.stats.tracks_started.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("next: {} ({})", track.display(), track.path.display());
                    let on_air = Arc::new(OnAir { track: Some(track), started_at: self.now });
                    return Some(Playing { reader, on_air, buf: Vec::new(), ended: false });
                }
                Err(e) => self.fail(Some(&track), &e.to_string()),
            }
        }
        None
    }

    fn fail(&self, track: Option<&Track>, error: &str) {
        self.stats.track_failures.fetch_add(1, Ordering::Relaxed);
        let Some(track) = track else { return };
        let message = format!("{}: {error}", track.path.display());
        tracing::warn!("{message}");
        self.stats.set_error(message);
        if let Err(e) = self.catalog.mark_failed(track.id, error) {
            tracing::warn!("{e}");
        }
        self.scheduler.lock().unwrap_or_else(|p| p.into_inner()).remove(track.id);
    }

    /// Sends `samples` as blocks of at most one block length, blocking while
    /// the queue is full (checking for stop).
    fn emit(&mut self, samples: Vec<f32>, on_air: Arc<OnAir>) -> Result<(), Stopped> {
        let max = self.settings.block * 2;
        if samples.len() <= max {
            return self.send(samples, on_air);
        }
        for chunk in samples.chunks(max) {
            self.send(chunk.to_vec(), on_air.clone())?;
        }
        Ok(())
    }

    fn send(&mut self, samples: Vec<f32>, on_air: Arc<OnAir>) -> Result<(), Stopped> {
        let frames = samples.len() / 2;
        if frames == 0 {
            return Ok(());
        }
        let mut block = PcmBlock { start: self.now, samples, on_air };
        loop {
            match self.out.send_timeout(block, Duration::from_millis(200)) {
                Ok(()) => break,
                Err(SendTimeoutError::Timeout(b)) if !self.stop.load(Ordering::Relaxed) => block = b,
                Err(_) => return Err(Stopped),
            }
        }
        self.stats.pcm_queued.fetch_add(frames as i64, Ordering::Relaxed);
        self.now = self.now + frames as u64;
        Ok(())
    }
}

/// Mixes `incoming` into `outgoing` (both interleaved stereo, same length)
/// with equal-power gains: cos/sin of a quarter turn, so the summed power
/// of uncorrelated material stays constant across the fade.
pub fn equal_power_crossfade(outgoing: &mut [f32], incoming: &[f32]) {
    let n = outgoing.len() / 2;
    for i in 0..n {
        let x = (i as f32 + 0.5) / n as f32 * std::f32::consts::FRAC_PI_2;
        let (gain_in, gain_out) = x.sin_cos();
        for c in 0..2 {
            let j = i * 2 + c;
            outgoing[j] = outgoing[j] * gain_out + incoming[j] * gain_in;
        }
    }
}

fn fade_out(samples: &mut [f32]) {
    let n = samples.len() / 2;
    for i in 0..n {
        let g = ((n - i) as f32 / n as f32 * std::f32::consts::FRAC_PI_2).sin();
        samples[i * 2] *= g;
        samples[i * 2 + 1] *= g;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_power_keeps_power_of_uncorrelated_signals() {
        let n = 44_100;
        let a: Vec<f32> = (0..n * 2).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let b: Vec<f32> = (0..n * 2).map(|i| ((i * 104_729 + 13) % 997) as f32 / 498.5 - 1.0).collect();
        let mut mixed = a.clone();
        equal_power_crossfade(&mut mixed, &b);
        let power = |s: &[f32]| s.iter().map(|v| v * v).sum::<f32>() / s.len() as f32;
        let p_in = power(&a);
        for w in mixed.chunks(n / 5 * 2) {
            let ratio = power(w) / p_in;
            assert!((0.85..1.15).contains(&ratio), "power ratio {ratio}");
        }
        // Starts at the outgoing signal, ends at the incoming one.
        assert!((mixed[0] - a[0]).abs() < 0.01);
        assert!((mixed[n * 2 - 1] - b[n * 2 - 1]).abs() < 0.01);
    }
}
