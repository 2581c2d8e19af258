//! Synthesised music with known answers: drums, bass and chords at an exact
//! tempo, in a known key, with beats on an exact grid. It feeds the built-in
//! demo library (so a fresh clone plays at once) and the tests (known BPM,
//! beats and key). Rendering is additive, event by event, so a three-minute
//! track takes well under a second in a release build.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::units::SampleRate;

const TAU: f32 = std::f32::consts::TAU;

/// Pitch class names, C = 0.
pub const PITCH_NAMES: [&str; 12] = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"];

/// What to render.
#[derive(Debug, Clone)]
pub struct TrackSpec {
    pub title: String,
    pub artist: String,
    pub bpm: f64,
    /// Tonic pitch class, C = 0.
    pub key_root: u8,
    pub minor: bool,
    /// Length in seconds (rounded to whole bars).
    pub seconds: f64,
    pub seed: u64,
}

impl TrackSpec {
    pub fn key_name(&self) -> String {
        format!("{} {}", PITCH_NAMES[self.key_root as usize % 12], if self.minor { "minor" } else { "major" })
    }

    pub fn beat_seconds(&self) -> f64 {
        60.0 / self.bpm
    }

    /// Whole 4/4 bars in the track (at least 4).
    pub fn bars(&self) -> usize {
        ((self.seconds / (4.0 * self.beat_seconds())).round() as usize).max(4)
    }

    /// Exact beat times in seconds: the ground truth for analysis tests.
    pub fn beat_times(&self) -> Vec<f64> {
        (0..self.bars() * 4).map(|i| i as f64 * self.beat_seconds()).collect()
    }
}

/// Renders `spec` as interleaved stereo at `rate`, peak-normalised to -3 dBFS.
pub fn render(spec: &TrackSpec, rate: SampleRate) -> Vec<f32> {
    let sr = rate.0 as f32;
    let beat = spec.beat_seconds() as f32;
    let bars = spec.bars();
    let total = ((bars * 4) as f32 * beat * sr) as usize + (sr * 0.5) as usize;
    let mut out = Mix { l: vec![0.0; total], r: vec![0.0; total], sr };
    let mut rng = SmallRng::seed_from_u64(spec.seed);

    // Chord progression in scale degrees (semitones above the tonic, minor/major triad).
    let progression: [(u8, bool); 4] = if spec.minor {
        [(0, true), (8, false), (3, false), (10, false)] // i VI III VII
    } else {
        [(0, false), (7, false), (9, true), (5, false)] // I V vi IV
    };
    let bass_pattern: [f32; 8] = match spec.seed % 3 {
        0 => [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0],
        1 => [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0],
        _ => [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0],
    };

    for bar in 0..bars {
        // Arrangement: 8-bar intro of drums, breakdown without kick in the
        // middle, 4-bar outro of drums and chords.
        let section_intro = bar < 8;
        let breakdown = bars > 32 && (bars / 2..bars / 2 + 8).contains(&bar);
        let outro = bar + 4 >= bars;
        let (degree, chord_minor) = progression[(bar / 2) % 4];
        let root = (spec.key_root + degree) % 12;
        let bar_start = bar as f32 * 4.0 * beat;

        for b in 0..4 {
            let t = bar_start + b as f32 * beat;
            if !breakdown {
                out.kick(t, 0.9);
            }
            if !section_intro && !breakdown && (b == 1 || b == 3) {
                out.snare(t, 0.45, &mut rng);
            }
        }
        for e in 0..8 {
            let t = bar_start + e as f32 * beat / 2.0;
            let accent = if e % 2 == 1 { 0.16 } else { 0.08 };
            out.hat(t, accent, (beat / 4.0).min(0.06), &mut rng);
            if !section_intro && !outro && bass_pattern[e] > 0.0 {
                let midi = 36 + root as i32;
                out.bass(t, beat / 2.0 * 0.9, midi_hz(midi), 0.35);
            }
        }
        if !section_intro || bar >= 4 {
            let third = if chord_minor { 3 } else { 4 };
            let base = 60 + root as i32;
            let base = if base > 66 { base - 12 } else { base };
            for (i, interval) in [0, third, 7].into_iter().enumerate() {
                let pan = [-0.4, 0.0, 0.4][i];
                out.pad(bar_start, 4.0 * beat, midi_hz(base + interval), 0.07, pan);
            }
        }
    }
    normalise(out.interleave(), 0.708)
}

fn midi_hz(note: i32) -> f32 {
    440.0 * 2f32.powf((note - 69) as f32 / 12.0)
}

fn normalise(mut samples: Vec<f32>, peak_target: f32) -> Vec<f32> {
    let peak = samples.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if peak > 0.0 {
        let g = peak_target / peak;
        samples.iter_mut().for_each(|v| *v *= g);
    }
    samples
}

/// Two planar buffers that instruments add into.
struct Mix {
    l: Vec<f32>,
    r: Vec<f32>,
    sr: f32,
}

impl Mix {
    fn span(&self, t: f32, len_s: f32) -> std::ops::Range<usize> {
        let start = (t * self.sr) as usize;
        let end = (start + (len_s * self.sr) as usize).min(self.l.len());
        start.min(end)..end
    }

    fn add(&mut self, i: usize, v: f32, pan: f32) {
        self.l[i] += v * (1.0 - pan).min(1.0);
        self.r[i] += v * (1.0 + pan).min(1.0);
    }

    /// Sine with a falling pitch sweep and exponential decay.
    fn kick(&mut self, t: f32, gain: f32) {
        let range = self.span(t, 0.35);
        let mut phase = 0.0f32;
        for (k, i) in range.clone().enumerate() {
            let x = k as f32 / self.sr;
            let f = 45.0 + 110.0 * (-x * 30.0).exp();
            phase += TAU * f / self.sr;
            let env = (-x * 9.0).exp() * (k as f32 / 40.0).min(1.0);
            self.add(i, phase.sin() * env * gain, 0.0);
        }
    }

    /// Noise burst plus a 190 Hz body.
    fn snare(&mut self, t: f32, gain: f32, rng: &mut SmallRng) {
        let range = self.span(t, 0.2);
        for (k, i) in range.enumerate() {
            let x = k as f32 / self.sr;
            let noise: f32 = rng.random_range(-1.0..1.0);
            let body = (TAU * 190.0 * x).sin() * (-x * 30.0).exp();
            let v = (noise * (-x * 22.0).exp() * 0.8 + body * 0.5) * gain;
            self.add(i, v, 0.1);
        }
    }

    /// High-passed noise (first difference), short decay.
    fn hat(&mut self, t: f32, gain: f32, len: f32, rng: &mut SmallRng) {
        let range = self.span(t, len);
        let mut prev = 0.0f32;
        for (k, i) in range.enumerate() {
            let x = k as f32 / self.sr;
            let n: f32 = rng.random_range(-1.0..1.0);
            let hp = n - prev;
            prev = n;
            self.add(i, hp * (-x * 70.0).exp() * gain, 0.3);
        }
    }

    /// Saw-ish bass through a one-pole low-pass.
    fn bass(&mut self, t: f32, len: f32, hz: f32, gain: f32) {
        let range = self.span(t, len);
        let n = range.len() as f32;
        let mut lp = 0.0f32;
        for (k, i) in range.enumerate() {
            let x = k as f32 / self.sr;
            let saw = 2.0 * (x * hz).fract() - 1.0;
            lp += 0.08 * (saw - lp);
            let env = (k as f32 / 60.0).min(1.0) * ((n - k as f32) / 300.0).min(1.0);
            self.add(i, (lp + (TAU * hz * x).sin() * 0.6) * env * gain, 0.0);
        }
    }

    /// Soft chord tone: two detuned sines and an octave, slow attack/release.
    fn pad(&mut self, t: f32, len: f32, hz: f32, gain: f32, pan: f32) {
        let range = self.span(t, len);
        let n = range.len() as f32;
        let attack = 0.08 * self.sr;
        let release = 0.15 * self.sr;
        for (k, i) in range.enumerate() {
            let x = k as f32 / self.sr;
            let env = (k as f32 / attack).min(1.0) * ((n - k as f32) / release).min(1.0);
            let v = (TAU * hz * x).sin() + 0.6 * (TAU * hz * 1.003 * x).sin() + 0.25 * (TAU * hz * 2.0 * x).sin();
            self.add(i, v * env * gain, pan);
        }
    }

    fn interleave(self) -> Vec<f32> {
        self.l.iter().zip(&self.r).flat_map(|(l, r)| [*l, *r]).collect()
    }
}

/// The built-in demo library: eight tracks, 100–140 BPM, different keys.
pub fn demo_specs(seconds: f64) -> Vec<TrackSpec> {
    const TRACKS: [(&str, &str, f64, u8, bool); 8] = [
        ("Morning Signal", "Carrier Wave", 100.0, 9, true),
        ("Tape Loop Garden", "Carrier Wave", 106.0, 0, false),
        ("Night Bus", "The Relays", 112.0, 2, true),
        ("Glass Harbour", "The Relays", 118.0, 7, false),
        ("Open Circuit", "Low Orbit", 124.0, 4, true),
        ("Second Sunrise", "Low Orbit", 128.0, 5, false),
        ("Crosstown", "Mirror Room", 134.0, 11, true),
        ("Last Transmission", "Mirror Room", 140.0, 10, false),
    ];
    TRACKS
        .iter()
        .enumerate()
        .map(|(i, (title, artist, bpm, key, minor))| TrackSpec {
            title: title.to_string(),
            artist: artist.to_string(),
            bpm: *bpm,
            key_root: *key,
            minor: *minor,
            // Vary lengths a little so tracks do not all end in lockstep.
            seconds: seconds * (1.0 + 0.05 * (i % 4) as f64),
            seed: 1000 + i as u64,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(bpm: f64) -> TrackSpec {
        TrackSpec {
            title: "t".into(),
            artist: "a".into(),
            bpm,
            key_root: 9,
            minor: true,
            seconds: 20.0,
            seed: 7,
        }
    }

    #[test]
    fn render_is_deterministic_bounded_and_whole_bars() {
        let s = spec(120.0);
        let a = render(&s, SampleRate::CD);
        let b = render(&s, SampleRate::CD);
        assert_eq!(a, b);
        assert!(a.iter().all(|v| v.abs() <= 0.709));
        assert_eq!(s.bars(), 10);
        assert_eq!(s.beat_times().len(), 40);
        // 10 bars of 2 s plus the 0.5 s tail.
        assert_eq!(a.len() / 2, 20 * 44_100 + 22_050);
    }

    #[test]
    fn kicks_land_on_the_beat_grid() {
        let s = spec(120.0);
        let pcm = render(&s, SampleRate::CD);
        let left: Vec<f32> = pcm.iter().step_by(2).copied().collect();
        // Energy in the 10 ms after each beat far exceeds the 10 ms before it
        // (past the intro, where the pad starts).
        for &t in &s.beat_times()[1..] {
            let i = (t * 44_100.0) as usize;
            let after: f32 = left[i..i + 441].iter().map(|v| v * v).sum();
            let before: f32 = left[i - 441..i].iter().map(|v| v * v).sum();
            assert!(after > 2.0 * before, "beat at {t}: {after} vs {before}");
        }
    }

    #[test]
    fn demo_specs_spread_tempo_and_key() {
        let specs = demo_specs(150.0);
        assert_eq!(specs.len(), 8);
        assert!(specs.iter().all(|s| (100.0..=140.0).contains(&s.bpm)));
        let keys: std::collections::HashSet<_> = specs.iter().map(|s| s.key_name()).collect();
        assert_eq!(keys.len(), 8);
    }
}
