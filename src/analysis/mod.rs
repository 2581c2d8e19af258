//! Track analysis: tempo, beat grid, downbeats, loudness, key, energy and
//! cue points. Pure functions over decoded audio; the catalogue runs them on
//! a pool of worker threads and caches the result per file.
//!
//! Pipeline: decode (symphonia) → EBU R128 loudness and true peak on the
//! original stereo → mono at 22.05 kHz (rubato) → one STFT pass
//! ([`features`]) → tempo ([`tempo`]) → beats ([`beats`]) → bars
//! ([`downbeats`]) → key ([`key`]) → cues and energy (here).

pub mod beats;
pub mod downbeats;
pub mod eval;
pub mod features;
pub mod grid;
pub mod key;
pub mod pitch;
pub mod structure;
pub mod tempo;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::audio::{AudioError, Decoder, Resampler, Tags};
use crate::units::SampleRate;
use features::Features;

/// Bumped whenever results would change; the catalogue re-analyses
/// every file analysed by an older version.
pub const ANALYSIS_VERSION: i64 = 21;

/// Beat confidence (`tempo::estimate`) below which a track has no pulse:
/// a sustained pad scores 0.002; the least periodic real recordings we
/// have (a solo trumpet, rubato classical) 0.14 and up.
const NO_PULSE: f64 = 0.05;

/// Frames more than this far below the track's median frame energy are
/// silence for cue points (-40 dB).
const SILENCE_BELOW_MEDIAN: f32 = 1e-4;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Analysis {
    pub duration_s: f64,
    pub bpm: f64,
    pub beats: Vec<f64>,
    pub downbeats: Vec<f64>,
    /// 0..1: how periodic the onsets are at the chosen tempo.
    pub beat_confidence: f64,
    /// Beats per bar (4, or 3 where clear).
    pub meter: u8,
    pub loudness_lufs: f64,
    pub true_peak_dbtp: f64,
    pub key: String,
    pub camelot: String,
    /// 0..1, for ordering: loudness, onset density and brightness combined.
    pub energy: f64,
    /// First and last musically active beat, seconds.
    pub cue_in_s: f64,
    pub cue_out_s: f64,
    /// Bars from the cue-in until the bass comes in, and from the bass
    /// dropping out to the cue-out.
    pub intro_bars: u32,
    pub outro_bars: u32,
    /// The downbeat (index into `downbeats`, 0..8) where the 8-bar phrases
    /// start, from where the arrangement changes; `None` where that is not
    /// clear (and in catalogues analysed before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phrase_offset: Option<u8>,
    /// Where the beats keep one tempo (the grid's steady sections: first
    /// and last beat, seconds). A beatmatched transition needs a steady
    /// pulse where the two tracks meet. `None` in catalogues analysed
    /// before it was kept: not known, not held against the track.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steady: Option<Vec<(f64, f64)>>,
}

impl Analysis {
    /// Share of the track's beats on a steady section (see `steady_share`).
    pub fn steadiness(&self) -> f64 {
        self.steady_share(&self.beats)
    }

    /// Share of `beats` (seconds) on a steady section, 0..1; 1 where the
    /// sections are not known. A section counts up to a beat beyond its
    /// ends (the end beats the grid adds where the tracker stopped short
    /// are on its line).
    pub fn steady_share(&self, beats: &[f64]) -> f64 {
        let Some(spans) = &self.steady else { return 1.0 };
        if beats.is_empty() {
            return 0.0;
        }
        let beat = 60.0 / self.bpm.max(1.0);
        let on = beats.iter().filter(|t| spans.iter().any(|(a, b)| **t >= a - beat - 1e-3 && **t <= b + beat + 1e-3)).count();
        on as f64 / beats.len() as f64
    }
}

/// What the catalogue learns from one file: its tags and its analysis.
#[derive(Debug, Clone)]
pub struct FileAnalysis {
    pub tags: Tags,
    pub analysis: Analysis,
}

/// Bounds on what analysis will take on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnalysisLimits {
    /// Longer files are refused (analysis memory grows with the length,
    /// about 13 KB per second measured: the features and the tracker's
    /// per-frame arrays; 71 MB peak for an hour). Default: `3600.0` (an
    /// hour).
    pub max_seconds: f64,
}

impl Default for AnalysisLimits {
    fn default() -> Self {
        AnalysisLimits { max_seconds: 3600.0 }
    }
}

/// Decodes `path` and analyses it.
pub fn analyze_file(path: &Path) -> Result<Analysis, AudioError> {
    analyze_file_with_tags(path, AnalysisLimits::default()).map(|f| f.analysis)
}

/// Decodes `path` once for its tags and its analysis. Whatever happens
/// inside — a decoder's or an analysis's panic included — is this file's
/// error and nobody else's.
pub fn analyze_file_with_tags(path: &Path, limits: AnalysisLimits) -> Result<FileAnalysis, AudioError> {
    crate::audio::contain("analysis", || {
        let mut decoder = Decoder::open(path)?;
        let limit = limits.max_seconds;
        // Counted as decoded: a header may claim any length.
        let too_long = || AudioError::TooLong { limit_min: limit / 60.0 };
        let max_frames = (limit + 1.0) * decoder.sample_rate().0 as f64;
        let mut input = Input::new(decoder.sample_rate())?;
        // Sized from the declared length, within the limit: a header may
        // claim anything.
        if let Some(seconds) = decoder.declared_seconds() {
            input.features.reserve_seconds(seconds.min(limit + 1.0));
        }
        while let Some(block) = decoder.next_block()? {
            input.push(&block)?;
            if input.frames as f64 > max_frames {
                return Err(too_long());
            }
        }
        if input.frames == 0 {
            return Err(AudioError::Corrupt("no decodable audio".into()));
        }
        // A few corrupt words play as silence; a file of them is not music.
        let (invalid, samples) = (decoder.invalid_samples, input.frames * 2);
        let what = || format!("{invalid} of {samples} samples not audio (NaN, infinite or beyond ±{})", crate::audio::MAX_SAMPLE);
        if invalid * 100 > samples {
            return Err(AudioError::Corrupt(what()));
        }
        if invalid > 0 {
            tracing::warn!("{}: {}: they play as silence", path.display(), what());
        }
        Ok(FileAnalysis { tags: decoder.tags().clone(), analysis: input.analyze()? })
    })
}

/// Analyses interleaved stereo at `rate` (for tests and `nonstop mix`).
pub fn analyze_pcm(stereo: &[f32], rate: SampleRate) -> Result<Analysis, AudioError> {
    let mut input = Input::new(rate)?;
    input.push(stereo)?;
    input.analyze()
}

/// Stereo blocks in: loudness measured on the original, and a mono copy at
/// the analysis rate, downmixed block by block and streamed through the
/// feature pass, so no copy of the audio is ever kept whole: memory grows
/// with the features (about 12.5 KB per second), not with the audio.
struct Input {
    rate: SampleRate,
    meter: Loudness,
    resampler: Option<Resampler>,
    /// Resampled stereo not yet downmixed.
    stereo: Vec<f32>,
    /// Scratch for one block's downmix.
    mono: Vec<f32>,
    features: features::Extractor,
    /// Stereo frames pushed, at the original rate.
    frames: u64,
}

impl Input {
    fn new(rate: SampleRate) -> Result<Input, AudioError> {
        let target = SampleRate(features::RATE);
        let resampler = if rate == target { None } else { Some(Resampler::new(rate, target)?) };
        Ok(Input {
            rate,
            meter: Loudness::new(rate)?,
            resampler,
            stereo: Vec::new(),
            mono: Vec::new(),
            features: features::Extractor::new(),
            frames: 0,
        })
    }

    fn push(&mut self, block: &[f32]) -> Result<(), AudioError> {
        self.frames += block.len() as u64 / 2;
        self.meter.add(block)?;
        match &mut self.resampler {
            Some(r) => r.push(block, &mut self.stereo)?,
            None => self.stereo.extend_from_slice(block),
        }
        self.downmix();
        Ok(())
    }

    fn downmix(&mut self) {
        self.mono.clear();
        self.mono.extend(self.stereo.chunks_exact(2).map(|f| 0.5 * (f[0] + f[1])));
        self.stereo.clear();
        self.features.push(&self.mono);
    }

    fn analyze(mut self) -> Result<Analysis, AudioError> {
        if let Some(r) = &mut self.resampler {
            r.finish(&mut self.stereo)?;
            self.downmix();
        }
        let (lufs, peak) = self.meter.finish()?;
        let duration_s = self.frames as f64 / self.rate.0 as f64;
        Ok(analyze_features(self.features.finish(), duration_s, lufs, peak))
    }
}

/// EBU R128 integrated loudness and true peak (the `ebur128` crate).
struct Loudness {
    meter: ebur128::EbuR128,
}

impl Loudness {
    fn new(rate: SampleRate) -> Result<Loudness, AudioError> {
        let meter = ebur128::EbuR128::new(2, rate.0, ebur128::Mode::I | ebur128::Mode::TRUE_PEAK)
            .map_err(|e| AudioError::Unsupported(format!("loudness meter: {e}")))?;
        Ok(Loudness { meter })
    }

    fn add(&mut self, stereo: &[f32]) -> Result<(), AudioError> {
        self.meter.add_frames_f32(stereo).map_err(|e| AudioError::Corrupt(format!("loudness meter: {e}")))
    }

    /// (integrated LUFS, true peak dBTP); silence gives -70 LUFS.
    fn finish(self) -> Result<(f64, f64), AudioError> {
        let lufs = self.meter.loudness_global().unwrap_or(-70.0).max(-70.0);
        let peak = (0..2).filter_map(|c| self.meter.true_peak(c).ok()).fold(0.0f64, f64::max);
        Ok((lufs, 20.0 * peak.max(1e-7).log10()))
    }
}

/// Everything after decoding, on mono at the analysis rate.
pub fn analyze_mono(mono: &[f32], duration_s: f64, loudness_lufs: f64, true_peak_dbtp: f64) -> Analysis {
    analyze_features(features::compute(mono), duration_s, loudness_lufs, true_peak_dbtp)
}

/// A tempo level considered for the one a listener taps.
struct Level {
    bpm: f64,
    /// `tempo::level_score`.
    score: f64,
    /// `tempo::evenness` of its beats.
    evenness: f64,
    /// Every other beat carries next to nothing (`tempo::MAX_HOLLOWNESS`).
    hollow: bool,
    /// Halfway between its beats the onsets are as strong as on them
    /// (`tempo::MAX_FULLNESS`).
    full: bool,
}

/// Everything after the feature pass.
fn analyze_features(f: Features, duration_s: f64, loudness_lufs: f64, true_peak_dbtp: f64) -> Analysis {
    let median = median_energy(&f);
    let active = activity(&f, median, SILENCE_BELOW_MEDIAN);
    let tempo = tempo::estimate(&f.onset, &f.low_onset);
    // The level a listener taps: of the periodicity and its octaves, the
    // one where kick and snare take turns beat by beat — leaving out a
    // level whose beats come long-short, long-short (swung eighths), one
    // whose every other beat falls on nothing (twice a pulse's tempo), and
    // one with hits as strong as its beats halfway between them (half a
    // pulse's tempo).
    let floor = tempo::accent_floor(&f.onset);
    let levels: Vec<Level> = tempo::octaves(tempo.bpm)
        .map(|bpm| {
            let beats = beats::track(&f.onset, bpm, &active, beats::LOOSE);
            let evenness = tempo::evenness(&f.onset, &beats);
            let score = tempo::level_score(bpm, tempo::alternation(&f, &beats), evenness);
            Level {
                bpm,
                score,
                evenness,
                hollow: tempo::hollowness(&f, &beats, floor) > tempo::MAX_HOLLOWNESS,
                full: tempo::fullness(&f, &beats) > tempo::MAX_FULLNESS,
            }
        })
        .collect();
    // Uneven levels are out, unless none is even: then those clearly less
    // even than the most even one. Hollow and full levels are out unless
    // all are.
    let most_even = levels.iter().map(|l| l.evenness).fold(0.0, f64::max);
    let even_enough = (most_even - tempo::EVEN_MARGIN).min(tempo::MIN_EVENNESS);
    let all_hollow = levels.iter().all(|l| l.hollow);
    let all_full = levels.iter().all(|l| l.full);
    let level = levels
        .iter()
        .filter(|l| l.evenness >= even_enough && (all_hollow || !l.hollow) && (all_full || !l.full))
        .max_by(|a, b| a.score.total_cmp(&b.score))
        .map_or(tempo.bpm, |l| l.bpm);
    // The beats themselves, against a period that follows the music's
    // drift around that level.
    let tracked = beats::track_periods(&f.onset, &tempo::local_periods(&f.onset, level), &active, beats::TIGHT);
    let tracked = on_the_beat(&f, tracked);
    let mut grid = grid::fit(&tracked, &grid::attacks(&f.fine, &tracked), &f.onset);
    grid::settle_clean_attacks(&f.fine, &mut grid);
    let mut beats = grid.beats.clone();
    extend_into_music(&f, &mut beats);
    // The tempo the beats keep (the longest steady section's, else the
    // median interval) is the answer; the global estimate only seeded the
    // tracker.
    // Without a pulse in the onsets, whatever regularity the grid found in
    // the envelope is not the music's beat (a sustained chord's partials
    // beating against each other dip and rise like clockwork).
    let sections = if tempo.confidence >= NO_PULSE { grid.sections.clone() } else { Vec::new() };
    let steady = if grid.steadiness() >= 0.5 { grid.steady_bpm() } else { None };
    let bpm = steady.or_else(|| median_interval(&beats).map(|p| 60.0 / p)).unwrap_or(tempo.bpm);
    let bars = downbeats::estimate(&f, &beats);
    let downbeats: Vec<f64> = bars.downbeats.iter().map(|&i| beats[i]).collect();
    let key = key::estimate(&pitch::PitchHistogram::chroma(&f.pitch.clone().try_into().unwrap_or([0.0; pitch::BINS])));
    let (cue_in_s, cue_out_s) = match (beats.first(), beats.last()) {
        (Some(a), Some(b)) => (*a, *b),
        _ => first_last_active(&active),
    };
    let (cue_in_s, cue_out_s) = longest_part(&activity(&f, median, GAP_BELOW_MEDIAN), &beats, (cue_in_s, cue_out_s));
    // A grid line can put the first beat a moment before the file starts.
    let cue_in_s = cue_in_s.max(0.0);
    let (intro_bars, outro_bars) = intro_outro_bars(&f, &downbeats);
    let phrase_offset = structure::phrase_offset(&f, &downbeats);
    let energy = energy(&f, loudness_lufs);
    // To 10 µs: the grid is good to a fraction of a millisecond.
    let round1 = |t: f64| (t * 1e5).round() / 1e5;
    let round = |v: Vec<f64>| v.into_iter().map(round1).collect();
    Analysis {
        duration_s,
        bpm,
        beats: round(beats),
        downbeats: round(downbeats),
        beat_confidence: tempo.confidence,
        meter: bars.meter,
        loudness_lufs,
        true_peak_dbtp,
        key: key.name(),
        camelot: key.camelot(),
        energy,
        cue_in_s,
        cue_out_s,
        intro_bars,
        outro_bars,
        phrase_offset,
        steady: Some(sections.iter().map(|&(first, end, _)| (round1(grid.beats[first]), round1(grid.beats[end - 1]))).collect()),
    }
}

/// Where the kick band and the snare band both hit this much harder
/// halfway between the tracked beats than on them, the tracker is on the
/// off-beats. (On evaldev the most either does alone on a right track is
/// 1.45, the kick of a metal clip's double-time drumming, 1.09 in pop;
/// both together at most 0.9. Compressed hard, as a pumping master is, a
/// pop clip was tracked on its off-beats at 1.34 and 1.40.)
const OFF_BEAT_RATIO: f64 = 1.2;

/// The tracked beats, or the points halfway between them where the beats
/// are the off-beats: the kick and the snare fall on the beat, whatever
/// the hi-hats, a guitar's upstrokes or a compressor's pumping put
/// between.
fn on_the_beat(f: &Features, beats: Vec<f64>) -> Vec<f64> {
    if beats.len() < 8 {
        return beats;
    }
    let between: Vec<f64> = beats.windows(2).map(|w| 0.5 * (w[0] + w[1])).collect();
    let ratio = |band: &[f32]| Features::mean_accent(band, &between) / Features::mean_accent(band, &beats[..beats.len() - 1]).max(1e-9);
    if ratio(&f.low_onset).min(ratio(&f.mid_onset)) > OFF_BEAT_RATIO {
        between
    } else {
        beats
    }
}

/// The tracker drops end beats whose onsets are masked (a hi-hat under
/// noise, a pad-only last beat). Extends the grid by one beat at each end
/// where that beat still carries music: at least a tenth of the median
/// beat's energy.
fn extend_into_music(f: &Features, beats: &mut Vec<f64>) {
    if beats.len() < 8 {
        return;
    }
    let beat_energy = |a: f64, b: f64| Features::mean_over(&f.energy, a, b);
    let mut energies: Vec<f64> = beats.windows(2).map(|w| beat_energy(w[0], w[1])).collect();
    let mid = energies.len() / 2;
    let median = *energies.select_nth_unstable_by(mid, f64::total_cmp).1;
    let n = beats.len();
    // The first half of a beat after it, kept clear of the next beat's
    // onset (analysis frames reach 46 ms to either side).
    let carries_music = |t: f64, period: f64| beat_energy(t + 0.05 * period, t + 0.5 * period) >= 0.1 * median;
    let period_end = beats[n - 1] - beats[n - 2];
    let next = beats[n - 1] + period_end;
    if carries_music(next, period_end) {
        beats.push(next);
    }
    let period_start = beats[1] - beats[0];
    let prev = beats[0] - period_start;
    if prev >= 0.0 && carries_music(prev, period_start) {
        beats.insert(0, prev);
    }
}

/// The median energy of the non-silent frames; `None` if all are silent.
fn median_energy(f: &Features) -> Option<f32> {
    let mut loud: Vec<f32> = f.energy.iter().copied().filter(|e| *e > 1e-10).collect();
    if loud.is_empty() {
        return None;
    }
    let mid = loud.len() / 2;
    Some(*loud.select_nth_unstable_by(mid, f32::total_cmp).1)
}

/// Which frames are audible: energy above `below_median` times the median
/// of the non-silent frames (`median_energy`; `SILENCE_BELOW_MEDIAN`,
/// -40 dB, for the music's extent; `GAP_BELOW_MEDIAN`, -60 dB, for gaps
/// that part it).
fn activity(f: &Features, median: Option<f32>, below_median: f32) -> Vec<bool> {
    let Some(median) = median else {
        return vec![false; f.energy.len()];
    };
    let threshold = median * below_median;
    f.energy.iter().map(|e| *e > threshold).collect()
}

fn first_last_active(active: &[bool]) -> (f64, f64) {
    let first = active.iter().position(|a| *a).unwrap_or(0);
    let last = active.iter().rposition(|a| *a).unwrap_or(0);
    (Features::time(first), Features::time(last))
}

/// Silence longer than this inside a track (seconds) parts it: a hidden
/// track after minutes of silence, a gap between movements. On air it
/// would be dead air.
const MAX_GAP_S: f64 = 10.0;
/// ...silence there being 60 dB below the median frame (digital silence,
/// tape hiss): a long pianissimo, 40 dB down in a wide orchestral
/// recording, is music.
const GAP_BELOW_MEDIAN: f32 = 1e-6;

/// The cue points `cues` narrowed to the longest part of the track between
/// silences longer than `MAX_GAP_S`: its first and last beat (its first
/// and last audible frame where it has fewer than two beats).
fn longest_part(active: &[bool], beats: &[f64], cues: (f64, f64)) -> (f64, f64) {
    let gap = (MAX_GAP_S * features::FPS) as usize;
    let (from, to) = (Features::frame_at(cues.0), Features::frame_at(cues.1).min(active.len()));
    // Audible parts: (first, last audible frame).
    let mut parts: Vec<(usize, usize)> = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for i in (from..to).filter(|&i| active[i]) {
        current = match current {
            Some((first, last)) if i - last <= gap => Some((first, i)),
            Some(part) => {
                parts.push(part);
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    parts.extend(current);
    if parts.len() < 2 {
        return cues;
    }
    let (a, b) = parts.into_iter().max_by_key(|p| p.1 - p.0).map_or((from, to), |p| p);
    let (t0, t1) = (Features::time(a), Features::time(b + 1));
    let inside: Vec<f64> = beats.iter().copied().filter(|t| *t >= t0 - 0.05 && *t <= t1).collect();
    match (inside.first(), inside.last()) {
        (Some(x), Some(y)) if inside.len() >= 2 => (*x, *y),
        _ => (t0, t1),
    }
}

/// The median interval between `beats`; `None` with fewer than five.
pub(crate) fn median_interval(beats: &[f64]) -> Option<f64> {
    let mut d: Vec<f64> = beats.windows(2).map(|w| w[1] - w[0]).collect();
    if d.len() < 4 {
        return None;
    }
    let mid = d.len() / 2;
    Some(*d.select_nth_unstable_by(mid, f64::total_cmp).1)
}

/// Mean and standard deviation of `v` (0 and 0 when empty).
fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    (mean, (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt())
}

/// Standard scores in place (all 0 where `v` does not vary).
fn standardise(v: &mut [f64]) {
    let (mean, sd) = mean_sd(v);
    for x in v.iter_mut() {
        *x = if sd > 1e-12 { (*x - mean) / sd } else { 0.0 };
    }
}

/// Intro: bars from the first downbeat until the first bar whose bass
/// energy reaches half the median bar's; outro likewise from the end.
fn intro_outro_bars(f: &Features, downbeats: &[f64]) -> (u32, u32) {
    if downbeats.len() < 4 {
        return (0, 0);
    }
    let bass: Vec<f64> = downbeats.windows(2).map(|w| Features::mean_over(&f.low_energy, w[0], w[1])).collect();
    let mut sorted = bass.clone();
    sorted.sort_by(f64::total_cmp);
    let full = sorted[sorted.len() / 2] * 0.5;
    let intro = bass.iter().position(|b| *b >= full).unwrap_or(0);
    let outro = bass.iter().rev().position(|b| *b >= full).unwrap_or(0);
    (intro as u32, outro as u32)
}

/// 0..1 energy: half loudness (-30..-6 LUFS), three tenths onset density,
/// two tenths brightness (share of energy above 2 kHz, 0..0.3).
fn energy(f: &Features, lufs: f64) -> f64 {
    let loud = ((lufs + 30.0) / 24.0).clamp(0.0, 1.0);
    let n = f.onset.len().max(1) as f64;
    let density = (f.onset.iter().map(|v| *v as f64).sum::<f64>() / n / 2.0).clamp(0.0, 1.0);
    let bright = (f.brightness.iter().map(|v| *v as f64).sum::<f64>() / n / 0.3).clamp(0.0, 1.0);
    (0.5 * loud + 0.3 * density + 0.2 * bright).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{render, Style, TrackSpec};

    /// An A minor triad of sines at `level`, at `t` seconds: a sustained
    /// chord, whose partials beat against each other.
    fn chord(level: f32, t: f32) -> f32 {
        level * [220.0f32, 261.6, 329.6].iter().map(|hz| (std::f32::consts::TAU * hz * t).sin()).sum::<f32>() / 3.0
    }

    /// A synthetic track at `bpm` of `seconds` whose beats from 64 to
    /// 64 + `beats` are replaced by `fill` (time in seconds → sample),
    /// analysed; the downbeats off the track's bars (before and after that
    /// stretch) are the error.
    fn bars_around(bpm: f64, seconds: f64, beats: usize, fill: impl Fn(f32) -> f32) -> (Analysis, Vec<f64>, Vec<f64>) {
        let spec = TrackSpec {
            title: "stretch".into(),
            artist: "test".into(),
            bpm,
            key_root: 0,
            minor: true,
            seconds,
            seed: 3,
            style: Style { breakdown: false, ..Style::default() },
        };
        let rate = features::RATE as usize;
        let mut pcm = render(&spec, SampleRate(features::RATE));
        let truth = spec.beat_times();
        let (from, to) = ((truth[64] * rate as f64) as usize - 200, (truth[64 + beats] * rate as f64) as usize - 200);
        for i in from..to {
            let v = fill(i as f32 / rate as f32);
            pcm[i * 2..i * 2 + 2].fill(v);
        }
        let mono: Vec<f32> = pcm.chunks_exact(2).map(|f| 0.5 * (f[0] + f[1])).collect();
        let a = analyze_mono(&mono, mono.len() as f64 / rate as f64, -10.0, -1.0);
        let bars = spec.downbeat_times();
        let near = |t: f64, v: &[f64]| v.iter().any(|x| (x - t).abs() < 0.02);
        let outside = |d: &f64| *d < truth[64] || *d >= truth[64 + beats];
        let wrong = a.downbeats.iter().copied().filter(|d| outside(d) && !near(*d, &bars)).collect();
        (a, truth, wrong)
    }

    #[test]
    fn a_stop_in_the_middle_keeps_the_bars_counting() {
        // Two beats of digital silence from a downbeat, as before a drop:
        // the beats go on through it and the bars on both sides are the
        // track's own (dropping the silent beats once shifted every bar
        // before the stop by two beats).
        let (a, truth, wrong) = bars_around(124.0, 60.0, 2, |_| 0.0);
        let near = |t: f64| a.beats.iter().any(|x| (x - t).abs() < 0.02);
        assert!(near(truth[64]) && near(truth[65]), "no beats in the stop");
        assert!(wrong.is_empty(), "downbeats off the bars: {wrong:?}");
        assert!(a.downbeats.len() >= 28, "{} downbeats", a.downbeats.len());
    }

    #[test]
    fn a_bar_cut_short_moves_the_bars_from_there_on() {
        // Beats cut out of the audio at a bar line: a bar of 2 (or 3, or
        // 1) beats, after which the one is that much later in the count.
        // With one phase for the track, the bars on one side of it were
        // all off.
        for (bpm, at, cut_beats) in [(124.0, 48, 2), (97.0, 80, 1), (140.0, 64, 3)] {
            let spec = TrackSpec {
                title: "short bar".into(),
                artist: "test".into(),
                bpm,
                key_root: 0,
                minor: true,
                seconds: 90.0,
                seed: 5,
                style: Style { breakdown: false, ..Style::default() },
            };
            let rate = features::RATE as f64;
            let pcm = render(&spec, SampleRate(features::RATE));
            let mono: Vec<f32> = pcm.chunks_exact(2).map(|f| 0.5 * (f[0] + f[1])).collect();
            let truth = spec.beat_times();
            let (cut, resume) = ((truth[at] * rate) as usize, (truth[at + cut_beats] * rate) as usize);
            let mut audio = mono[..cut].to_vec();
            audio.extend_from_slice(&mono[resume..]);
            let shift = (resume - cut) as f64 / rate;
            let cut = cut as f64 / rate;
            let bars: Vec<f64> = spec.downbeat_times().into_iter().map(|d| if d < cut + 0.01 { d } else { d - shift }).collect();
            let a = analyze_mono(&audio, audio.len() as f64 / rate, -10.0, -1.0);
            // The short bar itself may be counted either way.
            let checked = |t: f64| (t < cut - 0.1 || t > cut + 240.0 / bpm) && t > 2.0 && t < a.cue_out_s - 2.0;
            let near = |t: f64, v: &[f64]| v.iter().any(|x| (x - t).abs() < 0.02);
            let wrong: Vec<f64> = a.downbeats.iter().copied().filter(|d| checked(*d) && !near(*d, &bars)).collect();
            let missed = bars.iter().filter(|d| checked(**d) && !near(**d, &a.downbeats)).count();
            assert!(wrong.is_empty() && missed == 0, "{bpm} BPM, {cut_beats} cut: downbeats off the bars {wrong:?}, {missed} missed");
        }
    }

    #[test]
    fn a_breakdown_without_drums_keeps_the_bars_counting() {
        // 16 bars of a quiet sustained chord: the tracker's beats lose
        // count there; the grid runs on from the bars before to those after.
        let (a, truth, wrong) = bars_around(124.0, 120.0, 64, |t| chord(0.05, t));
        assert!(wrong.is_empty(), "downbeats off the bars: {wrong:?}");
        let on_grid = truth.iter().filter(|t| a.beats.iter().any(|x| (x - **t).abs() < 0.02)).count();
        assert!(on_grid + 2 >= truth.len(), "{on_grid} of {} beats", truth.len());
    }

    #[test]
    fn a_loud_or_long_breakdown_keeps_the_bars_counting() {
        // A sustained chord's partials beat against each other: the dips
        // and rises make "steady" stretches of their own at some other
        // rate, between the sections before and after the breakdown (the
        // grid ran on only between neighbouring sections); and at 97 BPM
        // the partition ran the section before into 8 bars of a quiet
        // chord, so nothing before it was steady. Either way the bars
        // before the breakdown came out two beats off.
        for (bpm, level, bars) in [(97.0, 0.05f32, 8), (110.0, 0.3, 16), (124.0, 0.3, 16), (140.0, 0.3, 16)] {
            let (a, truth, wrong) = bars_around(bpm, 150.0, bars * 4, |t| chord(level, t));
            assert!(wrong.is_empty(), "{bpm} BPM, {bars} bars at {level}: downbeats off the bars: {wrong:?}");
            let on_grid = truth.iter().filter(|t| a.beats.iter().any(|x| (x - **t).abs() < 0.02)).count();
            assert!(on_grid + 2 >= truth.len(), "{bpm} BPM, {bars} bars at {level}: {on_grid} of {} beats", truth.len());
        }
    }

    #[test]
    fn a_beatless_pad_has_no_steady_pulse() {
        // A sustained chord: its partials beat against each other and the
        // envelope dips and rises regularly, which a grid could be fitted
        // to; there is no pulse to beatmatch or to order by.
        let rate = features::RATE as usize;
        let mono: Vec<f32> = (0..60 * rate).map(|i| chord(0.2, i as f32 / rate as f32)).collect();
        let a = analyze_mono(&mono, 60.0, -20.0, -10.0);
        assert!(a.steadiness() < 0.01, "steadiness {:.2} (confidence {:.3}): {:?}", a.steadiness(), a.beat_confidence, a.steady);
    }

    #[test]
    fn a_quieter_master_analyses_the_same() {
        // The same music 12 dB down (an older master, a quiet recording):
        // the same tempo, beats, bars and key. With the onsets compressed
        // against a fixed magnitude rather than the track's level, tempo,
        // bars or beats changed on some of these, and on real recordings
        // 12 dB down evaldev's tempo acc1 fell from 0.833 to 0.733.
        for spec in crate::synth::analysis_test_set(30.0).into_iter().step_by(3) {
            let pcm = render(&spec, SampleRate::CD);
            let quiet: Vec<f32> = pcm.iter().map(|v| v * 0.25).collect();
            let (a, b) = (analyze_pcm(&pcm, SampleRate::CD).unwrap(), analyze_pcm(&quiet, SampleRate::CD).unwrap());
            assert!((a.bpm - b.bpm).abs() < 0.05, "{}: {} BPM, {} BPM 12 dB down", spec.title, a.bpm, b.bpm);
            assert_eq!(a.beats.len(), b.beats.len(), "{}: beats", spec.title);
            let moved = a.beats.iter().zip(&b.beats).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
            assert!(moved < 0.0005, "{}: a beat moved {:.2} ms", spec.title, moved * 1000.0);
            assert_eq!(a.downbeats.len(), b.downbeats.len(), "{}: bars", spec.title);
            assert!(a.downbeats.iter().zip(&b.downbeats).all(|(x, y)| (x - y).abs() < 0.0005), "{}: bars", spec.title);
            assert_eq!(a.key, b.key, "{}: key", spec.title);
        }
    }

    /// Onsets per frame with a peak of `strength` at each of `times`.
    fn peaks(frames: usize, times: impl Iterator<Item = f64>, strength: f32) -> Vec<f32> {
        let mut v = vec![0.0f32; frames];
        for t in times {
            if let Some(x) = v.get_mut(Features::frame_at(t - beats::ONSET_LAG_S)) {
                *x += strength;
            }
        }
        v
    }

    #[test]
    fn beats_tracked_on_the_off_beats_are_moved_onto_the_kick_and_snare() {
        let beat = 60.0 / 124.0;
        let on: Vec<f64> = (0..60).map(|k| 1.0 + k as f64 * beat).collect();
        let off: Vec<f64> = on.iter().map(|t| t + beat / 2.0).collect();
        let frames = Features::frame_at(35.0);
        // Kick on 1 and 3, snare on 2 and 4, loud hi-hats (with everything
        // else a compressor lets through between the hits) on the off-beats.
        let f = Features {
            low_onset: peaks(frames, on.iter().step_by(2).copied(), 1.0),
            mid_onset: peaks(frames, on.iter().skip(1).step_by(2).copied(), 1.0),
            onset: peaks(frames, off.iter().copied(), 3.0),
            ..Features::default()
        };
        let moved = on_the_beat(&f, off.clone());
        assert_eq!(moved.len(), off.len() - 1);
        assert!(moved.iter().zip(&on[1..]).all(|(m, t)| (m - t).abs() < 1e-9), "still on the off-beats");
        // Beats on the kick and snare stay where they are.
        assert_eq!(on_the_beat(&f, on.clone()), on);
        // An off-beat skank in the snare's band alone (reggae) is no reason.
        let skank = Features { mid_onset: peaks(frames, off.iter().copied(), 1.0), ..f.clone() };
        assert_eq!(on_the_beat(&skank, on.clone()), on);
    }

    /// Adds a hit of `length` seconds to `mono` (at the analysis rate)
    /// every `step` seconds from `first` until half a second before its
    /// end: `hit(k, s)` is hit k's sample `s` seconds in. Returns where
    /// each starts, seconds.
    fn add_hits(mono: &mut [f32], first: f64, step: f64, length: f64, mut hit: impl FnMut(usize, f32) -> f32) -> Vec<f64> {
        let rate = features::RATE as usize;
        let end = mono.len() as f64 / rate as f64 - 0.5;
        let mut starts = Vec::new();
        let mut t = first;
        while t < end {
            let at = (t * rate as f64) as usize;
            let k = starts.len();
            for (i, x) in mono[at..at + (length * rate as f64) as usize].iter_mut().enumerate() {
                *x += hit(k, i as f32 / rate as f32);
            }
            starts.push(at as f64 / rate as f64);
            t += step;
        }
        starts
    }

    /// A sine at `hz` decaying by e every `decay` seconds, `s` seconds in.
    fn tone(hz: f32, decay: f32, s: f32) -> f32 {
        (-s / decay).exp() * (std::f32::consts::TAU * hz * s).sin()
    }

    #[test]
    fn a_pulse_over_a_noise_floor_is_counted_at_its_own_tempo() {
        // Claps (noise around 1.5 kHz, 8 ms decay) or clicks (1 kHz, 3 ms
        // decay) on every beat, a noise floor 40 dB under them, nothing
        // else. At twice the tempo every other beat falls on the floor
        // alone: no level anyone taps, and hits against nothing are no
        // kick against snare.
        use rand::{rngs::SmallRng, Rng, SeedableRng};
        let rate = features::RATE as usize;
        for (bpm, clap) in [(90.0, true), (100.0, true), (64.0, false)] {
            let mut rng = SmallRng::seed_from_u64(7);
            let mut mono: Vec<f32> = (0..40 * rate).map(|_| 0.01 * rng.random_range(-1.0f32..1.0)).collect();
            let truth = add_hits(&mut mono, 0.3, 60.0 / bpm, 0.05, |_, s| {
                if clap {
                    rng.random_range(-1.0f32..1.0) * tone(1500.0, 0.008, s)
                } else {
                    tone(1000.0, 0.003, s)
                }
            });
            let a = analyze_mono(&mono, 40.0, -20.0, -1.0);
            assert!((a.bpm / bpm - 1.0).abs() < 0.01, "{bpm} BPM read at {:.1}", a.bpm);
            let off = a.beats.iter().filter(|b| truth.iter().all(|t| (*b - t).abs() > 0.01)).count();
            assert_eq!(off, 0, "{bpm} BPM: {off} beats off the hits");
        }
    }

    #[test]
    fn a_metronome_accented_on_the_one_is_counted_at_its_clicks() {
        // 1 kHz clicks with the one at 1.5 kHz; or 2 kHz clicks with a
        // thump on the one (a tone gliding down from 120 Hz, as a kick
        // does): at half the tempo the accents take turns with plain
        // clicks like a kick with a snare, and a plain click sits halfway
        // between every two beats.
        for (bpm, thump) in [(120.0, false), (140.0, false), (160.0, false), (120.0, true), (160.0, true)] {
            let mut mono = vec![0.0f32; 60 * features::RATE as usize];
            add_hits(&mut mono, 0.31, 60.0 / bpm, 0.06, |k, s| {
                0.4 * match (k % 4, thump) {
                    (0, false) => tone(1500.0, 0.003, s),
                    (0, true) => (std::f32::consts::TAU * 120.0 * (-s / 0.02).exp() * s).sin() * (-s / 0.03).exp(),
                    (_, false) => tone(1000.0, 0.003, s),
                    (_, true) => tone(2000.0, 0.003, s),
                }
            });
            let a = analyze_mono(&mono, 60.0, -20.0, -1.0);
            assert!((a.bpm / bpm - 1.0).abs() < 0.01, "{bpm} BPM (thump: {thump}) read at {:.1}", a.bpm);
        }
    }

    #[test]
    fn a_metronome_louder_on_the_one_or_with_quieter_eighths_is_counted_at_its_beat() {
        // 1 kHz clicks: the one twice as loud, or a click at a quarter of
        // the level halfway between every two. At half (or twice) the
        // tempo the beats take turns loud and soft, but all in one band:
        // no kick against snare.
        for (bpm, eighths) in [(160.0, false), (90.0, true), (120.0, true)] {
            let mut mono = vec![0.0f32; 60 * features::RATE as usize];
            let step = if eighths { 30.0 / bpm } else { 60.0 / bpm };
            add_hits(&mut mono, 0.31, step, 0.05, |k, s| {
                let level = match (eighths, k % if eighths { 2 } else { 4 }) {
                    (false, 0) => 0.8,
                    (true, 1) => 0.1,
                    _ => 0.4,
                };
                level * tone(1000.0, 0.003, s)
            });
            let a = analyze_mono(&mono, 60.0, -20.0, -1.0);
            assert!((a.bpm / bpm - 1.0).abs() < 0.01, "{bpm} BPM (eighths: {eighths}) read at {:.1}", a.bpm);
        }
    }

    #[test]
    fn a_hidden_track_after_a_long_silence_is_not_aired_as_dead_air() {
        // 60 s of a song, a minute of silence, 20 s of a hidden track; and
        // the other way round. The cue points hold the longer part.
        let spec = |seconds| TrackSpec {
            title: "part".into(),
            artist: "test".into(),
            bpm: 120.0,
            key_root: 0,
            minor: false,
            seconds,
            seed: 5,
            style: Style::default(),
        };
        let rate = features::RATE as usize;
        let mono = |seconds: f64| -> Vec<f32> { render(&spec(seconds), SampleRate(features::RATE)).chunks_exact(2).map(|f| 0.5 * (f[0] + f[1])).collect() };
        let (song, hidden, silence) = (mono(60.0), mono(20.0), vec![0.0f32; 60 * rate]);
        for (parts, range) in [([&song, &silence, &hidden], (0.0, 60.0)), ([&hidden, &silence, &song], (80.0, 140.0))] {
            let pcm: Vec<f32> = parts.iter().flat_map(|p| p.iter().copied()).collect();
            let a = analyze_mono(&pcm, pcm.len() as f64 / rate as f64, -10.0, -1.0);
            assert!(a.cue_in_s >= range.0 && a.cue_in_s < range.0 + 2.0, "cue-in {:.1} s, the song {range:?}", a.cue_in_s);
            assert!(a.cue_out_s > range.1 - 2.0 && a.cue_out_s <= range.1 + 0.5, "cue-out {:.1} s, the song {range:?}", a.cue_out_s);
        }
        // A few seconds of silence (a stop, a gap between songs on a live
        // recording) part nothing.
        let pcm: Vec<f32> = [&song, &silence[..5 * rate].to_vec(), &hidden].iter().flat_map(|p| p.iter().copied()).collect();
        let a = analyze_mono(&pcm, pcm.len() as f64 / rate as f64, -10.0, -1.0);
        assert!(a.cue_in_s < 2.0 && a.cue_out_s > 83.0, "cues {:.1}..{:.1} s", a.cue_in_s, a.cue_out_s);
        // Nor do 15 s of music 54 dB down (a pianissimo; parted with the
        // station's 40 dB silence threshold).
        let quiet: Vec<f32> = song[..15 * rate].iter().map(|x| x * 0.002).collect();
        let pcm: Vec<f32> = [&song, &quiet, &hidden].iter().flat_map(|p| p.iter().copied()).collect();
        let a = analyze_mono(&pcm, pcm.len() as f64 / rate as f64, -10.0, -1.0);
        assert!(a.cue_in_s < 2.0 && a.cue_out_s > 93.0, "cues {:.1}..{:.1} s", a.cue_in_s, a.cue_out_s);
    }
}
