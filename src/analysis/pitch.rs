//! The track's pitch content for key finding: a histogram of the tonal
//! spectral peaks at 10-cent resolution, accumulated over the whole track
//! frame by frame (so nothing per frame is kept), then folded into a
//! chroma vector after the track's tuning is found from it.
//!
//! Frames are long (8192 samples at 22.05 kHz, 0.37 s; bins 2.7 Hz apart)
//! so bass notes are resolved; only peaks standing well above their
//! spectral neighbourhood count (drums and noise are broad, not peaked),
//! less the notes' fifth harmonics (they would add a major third to every
//! note); each frame has the same weight whatever its loudness.

use super::features::{Fft, RATE};

/// Frame length and hop, samples at `RATE`.
pub const FRAME: usize = 8192;
pub const HOP: usize = 2048;
/// Range of the peaks that count, Hz.
const MIN_HZ: f32 = 70.0;
const MAX_HZ: f32 = 4_000.0;
/// A peak counts when it is this many times the mean of its neighbourhood.
const PROMINENCE: f32 = 2.5;
/// Neighbourhood half-width, bins.
const NEIGHBOURS: usize = 8;
/// Histogram resolution: bins per semitone (10 cents).
pub const PER_SEMITONE: usize = 10;
pub const BINS: usize = 12 * PER_SEMITONE;

/// Accumulates the histogram from frames handed to it.
pub struct PitchHistogram {
    fft: Fft,
    mag: Vec<f32>,
    /// Pitch class histogram, bin 0 centred on C (at A = 440 Hz).
    pub histogram: [f64; BINS],
}

impl Default for PitchHistogram {
    fn default() -> Self {
        PitchHistogram::new()
    }
}

impl PitchHistogram {
    pub fn new() -> PitchHistogram {
        PitchHistogram { fft: Fft::new(FRAME), mag: vec![0.0; FRAME / 2 + 1], histogram: [0.0; BINS] }
    }

    /// Adds one frame: `sample(i)` for i in 0..FRAME.
    pub fn add_frame(&mut self, sample: impl Fn(usize) -> f32) {
        for (m, c) in self.mag.iter_mut().zip(self.fft.run(sample)) {
            *m = c.norm();
        }
        let bin_hz = RATE as f32 / FRAME as f32;
        let (lo, hi) = (((MIN_HZ / bin_hz) as usize).max(NEIGHBOURS + 1), ((MAX_HZ / bin_hz) as usize).min(self.mag.len() - NEIGHBOURS - 1));
        let mag = &self.mag;
        let mut peaks: Vec<(f32, f32)> = Vec::new();
        for b in lo..hi {
            let (l, c, r) = (mag[b - 1], mag[b], mag[b + 1]);
            if c <= l || c < r || c < 1e-4 {
                continue;
            }
            let around: f32 = (b - NEIGHBOURS..=b + NEIGHBOURS).filter(|&k| k.abs_diff(b) > 1).map(|k| mag[k]).sum::<f32>()
                / (2 * NEIGHBOURS - 2) as f32;
            if c < PROMINENCE * around {
                continue;
            }
            let (la, lc, lr) = (l.max(1e-12).ln(), c.ln(), r.max(1e-12).ln());
            let denom = la - 2.0 * lc + lr;
            let delta = if denom.abs() > 1e-12 { (0.5 * (la - lr) / denom).clamp(-0.5, 0.5) } else { 0.0 };
            peaks.push(((b as f32 + delta) * bin_hz, c));
        }
        drop_fifth_harmonics(&mut peaks);
        // Compressed, and each frame weighs the same.
        let total: f32 = peaks.iter().map(|p| p.1.sqrt()).sum();
        if total < 1e-6 {
            return;
        }
        for (hz, m) in peaks {
            let semis = 12.0 * (hz / 440.0).log2() + 9.0; // C = 0
            let bin = (semis * PER_SEMITONE as f32).round() as i64;
            self.histogram[bin.rem_euclid(BINS as i64) as usize] += (m.sqrt() / total) as f64;
        }
    }

    /// The tuning: how far (in bins, −5..5) the histogram's mass sits from
    /// the equal-tempered semitones at A = 440 Hz (a circular mean).
    pub fn tuning(histogram: &[f64; BINS]) -> f64 {
        let (mut re, mut im) = (0.0, 0.0);
        for (i, w) in histogram.iter().enumerate() {
            let phase = std::f64::consts::TAU * (i % PER_SEMITONE) as f64 / PER_SEMITONE as f64;
            re += w * phase.cos();
            im += w * phase.sin();
        }
        im.atan2(re) / std::f64::consts::TAU * PER_SEMITONE as f64
    }

    /// Chroma (C = 0) from the histogram, each pitch class gathering the
    /// bins within half a semitone of it after the tuning is taken out.
    pub fn chroma(histogram: &[f64; BINS]) -> [f64; 12] {
        let shift = PitchHistogram::tuning(histogram);
        let mut c = [0.0; 12];
        for (i, w) in histogram.iter().enumerate() {
            let semis = (i as f64 - shift) / PER_SEMITONE as f64;
            c[(semis.round() as i64).rem_euclid(12) as usize] += w;
        }
        c
    }
}

/// A peak within this many semitones of five times another's frequency is
/// taken for that note's fifth harmonic.
const HARMONIC_TOLERANCE_SEMIS: f32 = 0.2;

/// Drops the peaks that are a stronger (at least half as strong) peak's
/// fifth harmonic. Every note's fifth harmonic sounds two octaves and a
/// major third above it: counted as a note, it fills in the major third of
/// whatever is played, and minor keys come out major (five of the six mode
/// errors on the development set were minor keys read as major). The
/// other harmonics land on the note itself (2, 4, 8) or its fifth (3, 6),
/// which major and minor share. `peaks` (Hz, magnitude) in rising
/// frequency.
fn drop_fifth_harmonics(peaks: &mut Vec<(f32, f32)>) {
    let ratio = 2f32.powf(HARMONIC_TOLERANCE_SEMIS / 12.0);
    let harmonic: Vec<bool> = peaks
        .iter()
        .map(|&(hz, m)| {
            let (lo, hi) = (hz / 5.0 / ratio, hz / 5.0 * ratio);
            let start = peaks.partition_point(|p| p.0 < lo);
            peaks[start..].iter().take_while(|p| p.0 <= hi).any(|p| p.1 >= 0.5 * m)
        })
        .collect();
    let mut flags = harmonic.into_iter();
    peaks.retain(|_| !flags.next().unwrap_or(false));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone_frame(hz: &[f32]) -> impl Fn(usize) -> f32 + '_ {
        move |i| hz.iter().map(|f| (std::f32::consts::TAU * f * i as f32 / RATE as f32).sin()).sum::<f32>()
    }

    #[test]
    fn notes_land_on_their_pitch_classes_and_tuning_is_found() {
        let mut h = PitchHistogram::new();
        // An A minor triad, 30 cents sharp.
        let sharp = 2f32.powf(0.3 / 12.0);
        let notes: Vec<f32> = [220.0, 261.63, 329.63].iter().map(|f| f * sharp).collect();
        h.add_frame(tone_frame(&notes));
        let tuning = PitchHistogram::tuning(&h.histogram);
        assert!((tuning - 3.0).abs() < 0.5, "{tuning}");
        let c = PitchHistogram::chroma(&h.histogram);
        let mut order: Vec<usize> = (0..12).collect();
        order.sort_by(|a, b| c[*b].total_cmp(&c[*a]));
        let mut top: Vec<usize> = order[..3].to_vec();
        top.sort();
        assert_eq!(top, vec![0, 4, 9], "{c:?}");
    }

    #[test]
    fn bass_notes_are_resolved() {
        let mut h = PitchHistogram::new();
        h.add_frame(tone_frame(&[82.41])); // E2
        let c = PitchHistogram::chroma(&h.histogram);
        let best = (0..12).max_by(|a, b| c[*a].total_cmp(&c[*b])).unwrap();
        assert_eq!(best, 4, "{c:?}");
    }

    /// Notes as instruments play them: harmonics 1–8 at 1/k amplitude.
    fn rich_frame(notes: &[f32]) -> impl Fn(usize) -> f32 + '_ {
        move |i| {
            let t = i as f32 / RATE as f32;
            notes.iter().flat_map(|f| (1..=8).map(move |k| (std::f32::consts::TAU * f * k as f32 * t).sin() / (k as f32).sqrt())).sum::<f32>()
        }
    }

    #[test]
    fn a_notes_fifth_harmonic_is_not_a_major_third() {
        // A2 and A3 as an instrument plays them: the fifth harmonic
        // (C#5, C#6) is as loud as a note and no other note's harmonic;
        // counted, it put a major third into everything.
        let mut h = PitchHistogram::new();
        h.add_frame(rich_frame(&[110.0, 220.0]));
        let c = PitchHistogram::chroma(&h.histogram);
        assert!(c[1] < 0.05 * c[9], "C# {:.3} against A {:.3}: {c:?}", c[1], c[9]);
        // The third harmonic (the fifth, E) stays: major and minor share it.
        assert!(c[4] > 0.1 * c[9], "{c:?}");
    }
}
