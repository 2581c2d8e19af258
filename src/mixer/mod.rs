//! The mixer worker: plays each track at its loudness-matched gain and
//! hands over to the next with a planned transition (beatmatched where the
//! beats allow, a silence-trimming crossfade otherwise), pushing fixed-size
//! PCM blocks into the bounded PCM queue. A full queue blocks it
//! (backpressure), so it never runs more than `queues.pcm_s` ahead.
//!
//! Runs on its own OS thread. When a track starts, the next pick is taken
//! from the scheduler and the hand-over planned from both analyses. The
//! track streams (decoded as it goes) up to the planned mix-out; then A's
//! overlap and B's head are decoded into memory, the transition rendered,
//! and B continues from where the render left it (a short crossfade covers
//! the change from stretched to native audio). A track that fails to open
//! or decode is skipped and marked failed; with nothing playable it sends
//! silence. It never stops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{SendTimeoutError, Sender};

use crate::analysis::Analysis;
use crate::audio::TrackReader;
use crate::catalog::{Catalog, Track};
use crate::ordering::Scheduler;
use crate::stats::Stats;
use crate::transition::{self, track_gain_db, Fallback, Mode, Plan, TransitionInfo, TransitionSettings};
use crate::units::{MediaTime, SampleRate};

/// How many failing picks in a row the mixer tries before sending a block
/// of silence and trying again.
const MAX_OPEN_ATTEMPTS: usize = 8;
/// Crossfade from the rendered transition's tail into B's own audio.
const HANDOVER_S: f64 = 0.05;
/// Extra B decoded past the render, for the stretcher's look-ahead.
const B_MARGIN_S: f64 = 1.0;
/// The next pick is taken and the hand-over planned this long before the
/// track's own mix-out (as planned into a copy of itself): as late as
/// possible, so the pick sees the latest catalogue and ordering.
const PLAN_AHEAD_S: f64 = 10.0;

/// What is audible on air from `started_at` on.
#[derive(Debug)]
pub struct OnAir {
    /// `None` while the station sends silence.
    pub track: Option<Arc<Track>>,
    pub started_at: MediaTime,
    /// Why there is silence, when listeners should be told (the title
    /// says so): a stage is restarting.
    pub note: Option<&'static str>,
}

/// The title while the broadcaster bridges a gap in the music.
pub const INTERRUPTION: &str = "Technical break - back in a moment";

impl OnAir {
    pub fn silence(started_at: MediaTime) -> OnAir {
        OnAir { track: None, started_at, note: None }
    }

    pub fn interruption(started_at: MediaTime) -> OnAir {
        OnAir { track: None, started_at, note: Some(INTERRUPTION) }
    }

    /// The ICY `StreamTitle` text: `Artist - Title`, or the note.
    pub fn stream_title(&self) -> String {
        match (&self.track, self.note) {
            (Some(t), _) => t.display(),
            (None, Some(note)) => note.to_string(),
            (None, None) => String::new(),
        }
    }
}

/// A run of mixed audio, all of it under one label.
#[derive(Debug, Clone)]
pub struct PcmBlock {
    pub start: MediaTime,
    /// Interleaved stereo at the station rate.
    pub samples: Vec<f32>,
    pub on_air: Arc<OnAir>,
}

#[derive(Debug, Clone, Copy)]
pub struct MixerSettings {
    pub rate: SampleRate,
    pub transition: TransitionSettings,
    /// Frames per PCM block.
    pub block: usize,
}

/// The next track and the planned hand-over to it.
struct Next {
    track: Arc<Track>,
    analysis: Analysis,
    plan: Plan,
}

/// A track on air: its decoder, the decoded frames not yet sent, its gain.
struct Playing {
    reader: TrackReader,
    track: Arc<Track>,
    analysis: Analysis,
    on_air: Arc<OnAir>,
    gain: f32,
    /// Interleaved stereo decoded but not yet emitted.
    buf: Vec<f32>,
    /// Source frame of `buf[0]`.
    at: usize,
    ended: bool,
    next: Option<Next>,
    /// Where this track's mix-out will be, before the next track is known.
    mix_out_estimate_s: f64,
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
    /// Tracks being played or prepared: the suspects if the worker panics.
    on_hand: Vec<Arc<Track>>,
    /// Panics each track was on hand for.
    suspects: std::collections::HashMap<i64, u32>,
    /// Buffers kept from one transition for the next (a track's decoded
    /// audio, a render): a transition needs tens of megabytes, and
    /// allocating and freeing them each time would make the resident
    /// memory swing with every hand-over instead of holding a fixed
    /// working set.
    spare_track: Vec<f32>,
    spare_render: Vec<f32>,
}

/// Why the worker stopped emitting.
struct Stopped;

/// Panics a track may be caught up in before it is taken off the schedule
/// (one could be the mixer's fault, two are the track's).
const SUSPECT_PANICS: u32 = 2;

/// Spawns the mixer thread. It runs until `stop` is set or the PCM queue's
/// receiver is gone. Supervised: after a panic the worker starts again
/// with the next pick, at the same place on the media clock (the queue
/// drains meanwhile and the broadcaster bridges with silence); a track
/// that was on hand at two panics is marked failed.
pub fn spawn(
    settings: MixerSettings,
    scheduler: Arc<Mutex<Scheduler>>,
    catalog: Arc<Catalog>,
    out: Sender<PcmBlock>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("mixer".into()).spawn(move || {
        let health = stats.components.mixer.clone();
        let mut w = Worker {
            settings,
            scheduler,
            catalog,
            out,
            stats,
            stop: stop.clone(),
            now: MediaTime(0),
            on_hand: Vec::new(),
            suspects: std::collections::HashMap::new(),
            spare_track: Vec::new(),
            spare_render: Vec::new(),
        };
        crate::supervise::run(&health, &stop, || {
            w.after_restart();
            let Err(Stopped) = w.run();
            crate::supervise::Exit::<&str>::Done
        });
    })
}

fn seconds_to_frames(t: f64, rate: SampleRate) -> usize {
    (t * rate.0 as f64).round().max(0.0) as usize
}

impl Worker {
    /// Called before every start: a track on hand at a panic becomes a
    /// suspect, and after `SUSPECT_PANICS` it is failed.
    fn after_restart(&mut self) {
        for track in std::mem::take(&mut self.on_hand) {
            let n = self.suspects.entry(track.id).or_insert(0);
            *n += 1;
            if *n >= SUSPECT_PANICS {
                self.fail(&track, "the mixer failed on this track twice");
            }
        }
    }

    fn run(&mut self) -> Result<std::convert::Infallible, Stopped> {
        let mut current: Option<Playing> = None;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Err(Stopped);
            }
            if crate::supervise::Faults::take(&self.stats.faults.mixer_panic) {
                panic!("injected fault (test switch)");
            }
            self.on_hand.clear();
            self.on_hand.extend(current.iter().flat_map(|p| std::iter::once(p.track.clone()).chain(p.next.as_ref().map(|n| n.track.clone()))));
            let Some(mut p) = current.take() else {
                current = self.open_next().map(|(track, analysis, reader)| {
                    // A track that starts cold starts at its cue-in.
                    let cue = seconds_to_frames(analysis.cue_in_s, self.settings.rate);
                    let mut p = self.playing(track, analysis, reader, Vec::new(), 0);
                    self.skip_to(&mut p, cue);
                    p
                });
                if current.is_none() {
                    self.idle()?;
                }
                continue;
            };
            if self.stats.skip.swap(false, Ordering::Relaxed) {
                // An admin's skip: plan (again) with A cut short.
                let cut = self.skip_cut(&p);
                p.next = match p.next.take() {
                    Some(n) => Some(Next { plan: self.plan_pair(&p, &cut, &n.analysis), ..n }),
                    None => self.plan_next(&p, &cut),
                };
                // A pair that will not beatmatch crossfades from the next
                // downbeat, not from the end of an overlap it will not have.
                if let Some(n) = p.next.take() {
                    let plan = if n.plan.mode == transition::Mode::Beatmatched {
                        n.plan
                    } else {
                        self.plan_pair(&p, &self.skip_crossfade_cut(&p), &n.analysis)
                    };
                    p.next = Some(Next { plan, ..n });
                }
                tracing::info!("skip: mixing out of {} at {:.1} s", p.track.display(), p.next.as_ref().map_or(0.0, |n| n.plan.a_out_s));
            }
            let plan_from = seconds_to_frames(p.mix_out_estimate_s - PLAN_AHEAD_S, self.settings.rate);
            if p.next.is_none() && p.at >= plan_from {
                p.next = self.plan_next(&p, &p.analysis);
            }
            let mix_out = match &p.next {
                Some(n) => seconds_to_frames(n.plan.a_out_s, self.settings.rate),
                // Not planned yet: play on until it is time to plan; if
                // nothing could be planned, to the end.
                None if p.at < plan_from => plan_from,
                None => usize::MAX,
            };
            if p.at < mix_out {
                let block = self.settings.block.min(mix_out - p.at);
                self.fill(&mut p, block);
                let n = block.min(p.frames());
                if n == 0 {
                    // Ended before its mix-out (or nothing planned): the
                    // next track starts cold.
                    if let Some(next) = p.next.take() {
                        self.scheduler.lock().unwrap_or_else(|e| e.into_inner()).push_front(next.track);
                    }
                    continue;
                }
                let mut samples: Vec<f32> = p.buf.drain(..n * 2).collect();
                samples.iter_mut().for_each(|v| *v *= p.gain);
                p.at += n;
                self.emit(samples, p.on_air.clone())?;
                current = Some(p);
            } else {
                current = self.transition(p)?;
            }
        }
    }

    /// Nothing playable: wait for the first track, or keep the stream
    /// going with silence once it has started.
    fn idle(&mut self) -> Result<(), Stopped> {
        if self.now == MediaTime(0) {
            std::thread::sleep(Duration::from_millis(100));
            Ok(())
        } else {
            let label = Arc::new(OnAir::silence(self.now));
            self.emit(vec![0.0; self.settings.block * 2], label)
        }
    }

    fn playing(&self, track: Arc<Track>, analysis: Analysis, reader: TrackReader, buf: Vec<f32>, at: usize) -> Playing {
        let gain = 10f32.powf(track_gain_db(&analysis, &self.settings.transition) as f32 / 20.0);
        let on_air = Arc::new(OnAir { track: Some(track.clone()), started_at: self.now, note: None });
        let mix_out_estimate_s = transition::plan(&analysis, &analysis, &self.settings.transition).a_out_s;
        Playing { reader, track, analysis, on_air, gain, buf, at, ended: false, next: None, mix_out_estimate_s }
    }

    /// Decodes until `p` holds `frames` frames or its track ends.
    fn fill(&self, p: &mut Playing, frames: usize) {
        let started = Instant::now();
        // A transition asks for tens of seconds at once: room for exactly
        // that (doubling growth would reserve up to twice as much).
        if frames * 2 > p.buf.capacity() {
            p.buf.reserve_exact(frames * 2 - p.buf.len());
        }
        while !p.ended && p.frames() < frames {
            let want = frames - p.frames();
            match p.reader.read(&mut p.buf, want) {
                Ok(0) => p.ended = true,
                Ok(_) => {}
                Err(e) => {
                    // The file broke mid-play: end it here and keep it off
                    // the schedule.
                    self.fail(&p.track, &e.to_string());
                    p.ended = true;
                }
            }
        }
        self.stats.decode_ns.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// Decodes and drops frames until `p.at` reaches `frame`.
    fn skip_to(&self, p: &mut Playing, frame: usize) {
        while p.at < frame && !(p.ended && p.buf.is_empty()) {
            self.fill(p, (frame - p.at).min(1 << 16));
            let n = (frame - p.at).min(p.frames());
            p.buf.drain(..n * 2);
            p.at += n;
        }
    }

    /// `p`'s analysis arranged for a skip (see `transition::skip_cut`);
    /// with no bars to count, a crossfade from a few seconds on.
    fn skip_cut(&self, p: &Playing) -> Analysis {
        let now_s = p.at as f64 / self.settings.rate.0 as f64;
        transition::skip_cut(&p.analysis, now_s, &self.settings.transition).unwrap_or_else(|| Analysis {
            cue_out_s: p.analysis.cue_out_s.min(now_s + 2.0 * self.settings.transition.crossfade_s),
            ..p.analysis.clone()
        })
    }

    /// `p`'s analysis with its cue-out a crossfade's length after the next
    /// downbeat (or after now, without bars): a skip's crossfade starts there.
    fn skip_crossfade_cut(&self, p: &Playing) -> Analysis {
        let now_s = p.at as f64 / self.settings.rate.0 as f64;
        let mut a = p.analysis.clone();
        let from = a.downbeats.iter().copied().find(|d| *d >= now_s).unwrap_or(now_s);
        a.cue_out_s = a.cue_out_s.min(from + self.settings.transition.crossfade_s);
        a
    }

    /// The hand-over from `p` (analysed as `a`) to a track analysed as `b`;
    /// a crossfade from now if the planned mix-out has already passed.
    fn plan_pair(&self, p: &Playing, a: &Analysis, b: &Analysis) -> Plan {
        let s = &self.settings.transition;
        let now_s = p.at as f64 / self.settings.rate.0 as f64;
        let plan = transition::plan_after(a, b, s, now_s);
        if plan.a_out_s < now_s {
            return Plan::crossfade_now(now_s, a, b, s, Fallback::Late, "mix-out point already passed".into());
        }
        plan
    }

    /// Takes the next pick and plans the hand-over from `p` (analysed as `a`).
    fn plan_next(&mut self, p: &Playing, a: &Analysis) -> Option<Next> {
        for _ in 0..MAX_OPEN_ATTEMPTS {
            let track = self.scheduler.lock().unwrap_or_else(|e| e.into_inner()).take()?;
            self.on_hand.push(track.clone());
            let analysis = match self.catalog.analysis(track.id) {
                Ok(Some(a)) => a,
                Ok(None) => {
                    self.fail(&track, "no stored analysis");
                    continue;
                }
                Err(e) => {
                    tracing::warn!("{e}");
                    continue;
                }
            };
            let plan = self.plan_pair(p, a, &analysis);
            return Some(Next { track, analysis, plan });
        }
        None
    }

    /// Renders the hand-over from `p` to its planned next track; returns
    /// the next track, playing.
    fn transition(&mut self, mut p: Playing) -> Result<Option<Playing>, Stopped> {
        let next = p.next.take().expect("a transition has a next track");
        let rate = self.settings.rate;
        let s = self.settings.transition;
        let a_out = p.at;
        // A's overlap, decoded ahead.
        let a_end = seconds_to_frames(next.plan.a_end_s, rate);
        self.fill(&mut p, a_end.saturating_sub(a_out) + 1);
        let plan = next.plan.shift_a(a_out as f64 / rate.0 as f64);
        // B's head, up to the end of the glide and a margin.
        let reader = match TrackReader::open(&next.track.path, rate) {
            Ok(r) => r,
            Err(e) => {
                self.fail(&next.track, &e.to_string());
                // Plan again with another pick (as a crossfade from here).
                p.next = None;
                return Ok(Some(p));
            }
        };
        let post_s = |plan: &Plan| match plan.mode {
            Mode::Beatmatched => plan.glide_out_s() + HANDOVER_S,
            Mode::Crossfade => HANDOVER_S,
        };
        let b_last_s = plan.b_glide_beats.last().copied().unwrap_or(plan.b_in_s + (plan.a_end_s - plan.a_out_s));
        let b_need = seconds_to_frames(b_last_s + post_s(&plan) + B_MARGIN_S, rate);
        let mut b_buf = std::mem::take(&mut self.spare_track);
        b_buf.clear();
        let mut b = self.playing(next.track.clone(), next.analysis, reader, b_buf, 0);
        self.fill(&mut b, b_need);
        let started = Instant::now();
        // Rendered, measured, and if B's beats did not land on A's, a
        // crossfade instead.
        let (r, aired) =
            transition::render_checked(
                &p.buf,
                &b.buf,
                &plan,
                (&p.analysis, &b.analysis),
                &s,
                rate,
                0.0,
                post_s,
                false,
                std::mem::take(&mut self.spare_render),
            );
        self.stats.mix_ns.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.stats.tracks_started.fetch_add(1, Ordering::Relaxed);
        tracing::info!("next: {} ({:?})", next.track.display(), aired.mode);
        tracing::debug!(
            "transition buffers: A {:.1} s, B {:.1} s, render {:.1} s, peak RSS {} MiB",
            p.buf.len() as f64 / 2.0 / rate.0 as f64,
            b.buf.len() as f64 / 2.0 / rate.0 as f64,
            r.pcm.len() as f64 / 2.0 / rate.0 as f64,
            crate::cpu::peak_rss_bytes() >> 20
        );
        self.record(&p, &next.track, &aired.shift_a(-(a_out as f64) / rate.0 as f64), r.alignment);

        // A's part and B's head are in the render now: let them go before
        // the render plays out (tens of seconds), keeping B from where its
        // own audio takes over. A's buffer becomes the next B's head; B's
        // keeps its room for when it is A.
        self.spare_track = std::mem::take(&mut p.buf);
        drop(p);
        // B is audible from the first frame of the render.
        let handover = seconds_to_frames(HANDOVER_S, rate).min(r.pcm.len() / 2);
        let b_from = r.b_next_frame.saturating_sub(handover);
        b.buf.drain(..(b_from * 2).min(b.buf.len()));
        b.at = b_from;
        let body = r.pcm.len() / 2 - handover;
        self.emit_slice(&r.pcm[..body * 2], &b.on_air)?;
        // Crossfade the render's tail into B's own audio at the same place.
        self.fill(&mut b, r.b_next_frame - b_from + 1);
        let mut tail = r.pcm[body * 2..].to_vec();
        self.spare_render = r.pcm;
        for i in 0..handover {
            let x = (i as f32 + 0.5) / handover as f32;
            for c in 0..2 {
                let native = b.buf.get(i * 2 + c).copied().unwrap_or(0.0) * b.gain;
                tail[i * 2 + c] = tail[i * 2 + c] * (1.0 - x) + native * x;
            }
        }
        self.emit(tail, b.on_air.clone())?;
        b.buf.drain(..((r.b_next_frame - b_from) * 2).min(b.buf.len()));
        b.at = r.b_next_frame;
        Ok(Some(b))
    }

    fn record(&self, a: &Playing, to: &Track, plan: &Plan, alignment: Option<transition::Alignment>) {
        match plan.mode {
            Mode::Beatmatched => self.stats.transitions_beatmatched.fetch_add(1, Ordering::Relaxed),
            Mode::Crossfade => {
                tracing::info!("crossfade {} -> {}: {}", a.track.display(), to.display(), plan.reason.as_deref().unwrap_or(""));
                self.stats.transitions_crossfade.fetch_add(1, Ordering::Relaxed)
            }
        };
        let info = TransitionInfo {
            from: a.track.display(),
            to: to.display(),
            plan: plan.clone(),
            at_s: self.now.seconds(self.settings.rate),
            alignment,
        };
        self.stats.record_transition(info);
    }

    /// Opens the scheduler's next pick, skipping files that fail to open or
    /// have no analysis.
    fn open_next(&mut self) -> Option<(Arc<Track>, Analysis, TrackReader)> {
        for _ in 0..MAX_OPEN_ATTEMPTS {
            let track = self.scheduler.lock().unwrap_or_else(|e| e.into_inner()).take()?;
            self.on_hand.push(track.clone());
            let analysis = match self.catalog.analysis(track.id) {
                Ok(Some(a)) => a,
                _ => {
                    self.fail(&track, "no stored analysis");
                    continue;
                }
            };
            match TrackReader::open(&track.path, self.settings.rate) {
                Ok(reader) => {
                    self.stats.tracks_started.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("next: {} ({})", track.display(), track.path.display());
                    return Some((track, analysis, reader));
                }
                Err(e) => self.fail(&track, &e.to_string()),
            }
        }
        None
    }

    fn fail(&self, track: &Track, error: &str) {
        self.stats.track_failures.fetch_add(1, Ordering::Relaxed);
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
        if samples.len() <= self.settings.block * 2 {
            return self.send(samples, on_air);
        }
        self.emit_slice(&samples, &on_air)
    }

    /// `emit` from a borrowed buffer: only one block is copied at a time.
    fn emit_slice(&mut self, samples: &[f32], on_air: &Arc<OnAir>) -> Result<(), Stopped> {
        for chunk in samples.chunks(self.settings.block * 2) {
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
