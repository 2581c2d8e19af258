//! Synthesised music with known answers: drums, bass and chords at an exact
//! tempo, in a known key, with beats on an exact grid. It feeds the built-in
//! demo library (so a fresh clone plays at once) and the tests (known BPM,
//! beats and key). Rendering is additive, event by event, so a three-minute
//! track takes well under a second in a release build.

pub mod demo;
pub mod faults;
pub mod testset;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use std::sync::Arc;

use crate::catalog::Track;
use crate::units::SampleRate;

const TAU: f32 = std::f32::consts::TAU;

pub use crate::analysis::key::PITCH_NAMES;

/// How a track is played: meter, groove and production details. The
/// default is straight 4/4 with four-on-the-floor kicks.
#[derive(Debug, Clone, PartialEq)]
pub struct Style {
    /// Beats per bar: 4 or 3.
    pub meter: u8,
    /// Delay of the off-beat eighth as a fraction of half a beat (0 = straight, 1/3 = triplet swing).
    pub swing: f64,
    /// Kicks and bass push onto off-beats ("and of 2").
    pub syncopation: bool,
    /// Half-time feel: kick on 1, snare on 3 (4/4 only).
    pub half_time: bool,
    /// Peak relative tempo deviation of a slow sinusoidal drift (0.02 = ±2%).
    pub drift: f64,
    /// White noise amplitude relative to full scale (0 = none).
    pub noise: f32,
    /// Digital silence before the music and after it, seconds.
    pub lead_in_s: f64,
    pub lead_out_s: f64,
    /// Scale to this integrated loudness (EBU R128); `None`: peak at -3 dBFS.
    pub target_lufs: Option<f64>,
    /// An 8-bar breakdown without kick in the middle of tracks over 32 bars.
    pub breakdown: bool,
    /// Bars of hi-hats alone before the arrangement starts (a count-in):
    /// the track's phrases start that many bars after its first downbeat.
    pub pickup_bars: usize,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            meter: 4,
            swing: 0.0,
            syncopation: false,
            half_time: false,
            drift: 0.0,
            noise: 0.0,
            lead_in_s: 0.0,
            lead_out_s: 0.0,
            target_lufs: None,
            breakdown: true,
            pickup_bars: 0,
        }
    }
}

/// What to render.
#[derive(Debug, Clone)]
pub struct TrackSpec {
    pub title: String,
    pub artist: String,
    /// Nominal tempo (the centre of any drift).
    pub bpm: f64,
    /// Tonic pitch class, C = 0.
    pub key_root: u8,
    pub minor: bool,
    /// Length of the music in seconds (rounded to whole bars), silence excluded.
    pub seconds: f64,
    pub seed: u64,
    pub style: Style,
}

impl TrackSpec {
    pub fn key_name(&self) -> String {
        format!("{} {}", PITCH_NAMES[self.key_root as usize % 12], if self.minor { "minor" } else { "major" })
    }

    pub fn beat_seconds(&self) -> f64 {
        60.0 / self.bpm
    }

    /// Whole bars in the track (at least 4).
    pub fn bars(&self) -> usize {
        let meter = self.style.meter.max(1) as f64;
        ((self.seconds / (meter * self.beat_seconds())).round() as usize).max(4)
    }

    /// Exact beat times in seconds (silence included): the ground truth.
    /// With drift the tempo follows one slow sine cycle over the track.
    pub fn beat_times(&self) -> Vec<f64> {
        let n = self.bars() * self.style.meter as usize;
        let length = n as f64 * self.beat_seconds();
        let mut t = 0.0;
        let mut beats = Vec::with_capacity(n + 1);
        for _ in 0..=n {
            beats.push(self.style.lead_in_s + t);
            // Midpoint tempo over the step: accurate to well under 0.1 ms.
            let mid = t + 0.5 * self.beat_seconds();
            let bpm = self.bpm * (1.0 + self.style.drift * (std::f64::consts::TAU * mid / length).sin());
            t += 60.0 / bpm;
        }
        beats
    }

    /// Ground-truth downbeats: every `meter`-th beat from the first.
    pub fn downbeat_times(&self) -> Vec<f64> {
        let beats = self.beat_times();
        beats[..beats.len() - 1].iter().step_by(self.style.meter as usize).copied().collect()
    }
}

/// Renders `spec` as interleaved stereo at `rate`: normalised to
/// `style.target_lufs` if set (peaks stay below full scale), otherwise
/// peak-normalised to -3 dBFS.
pub fn render(spec: &TrackSpec, rate: SampleRate) -> Vec<f32> {
    let mut channels = Default::default();
    render_planar(spec, rate, &mut channels);
    interleave(channels)
}

/// Interleaved stereo, built in the left channel's buffer (a three-minute
/// track is 30 MB a channel: no third buffer).
fn interleave([mut l, r]: [Vec<f32>; 2]) -> Vec<f32> {
    let n = l.len();
    l.reserve_exact(n);
    l.resize(2 * n, 0.0);
    // Backwards, so frame i is read before anything is written over it
    // (frame i lands at 2i and 2i + 1, never below i).
    for i in (0..n).rev() {
        l[2 * i + 1] = r[i];
        l[2 * i] = l[i];
    }
    l
}

/// `render` into two planar buffers, left and right (their allocations
/// are reused: rendering many tracks in a row then holds one track's
/// channels at a time, never an interleaved copy as well).
pub fn render_planar(spec: &TrackSpec, rate: SampleRate, channels: &mut [Vec<f32>; 2]) {
    let st = &spec.style;
    let sr = rate.0 as f32;
    let meter = st.meter.max(1) as usize;
    let beats = spec.beat_times();
    let music_end = *beats.last().expect("at least one beat");
    let total = ((music_end + 0.5 + st.lead_out_s) * sr as f64) as usize;
    let [mut l, mut r] = std::mem::take(channels);
    for c in [&mut l, &mut r] {
        if c.capacity() < total {
            // Given back before the larger one is taken: growing in place
            // would hold both at once.
            *c = Vec::new();
        }
        c.clear();
        c.resize(total, 0.0);
    }
    let mut out = Mix { l, r, sr };
    let mut rng = SmallRng::seed_from_u64(spec.seed);
    let bars = spec.bars();

    // One chord per bar; the tonic chord on every other bar, so the key is
    // unambiguous (i iv i v in minor, I IV I V in major).
    let progression: [(u8, bool); 4] = if spec.minor {
        [(0, true), (5, true), (0, true), (7, true)]
    } else {
        [(0, false), (5, false), (0, false), (7, false)]
    };
    // Bass on eighths: 1 = play.
    let bass_pattern: [u8; 8] = if st.syncopation {
        [1, 0, 0, 1, 0, 1, 1, 0]
    } else {
        match spec.seed % 3 {
            0 => [1, 0, 1, 1, 0, 1, 1, 0],
            1 => [1, 1, 0, 1, 1, 0, 1, 1],
            _ => [1, 0, 0, 1, 0, 0, 1, 0],
        }
    };

    for k in 0..bars {
        let k0 = k * meter;
        let bar_start = beats[k0] as f32;
        let bar_len = (beats[k0 + meter] - beats[k0]) as f32;
        // The count-in: hi-hats on the beats alone.
        let Some(bar) = k.checked_sub(st.pickup_bars) else {
            for b in 0..meter {
                out.hat(beats[k0 + b] as f32, 0.12, (bar_len / meter as f32 / 4.0).min(0.06), &mut rng);
            }
            continue;
        };
        let bars = bars - st.pickup_bars;
        // Arrangement: drums alone for the intro, a breakdown without kick
        // in the middle of long tracks, drums and chords in the outro.
        let intro = bar < 8.min(bars / 4);
        let breakdown = st.breakdown && bars > 32 && (bars / 2..bars / 2 + 8).contains(&bar);
        let outro = bar + 4.min(bars / 8) >= bars;
        let (degree, chord_minor) = progression[bar % 4];
        let root = (spec.key_root + degree) % 12;

        for b in 0..meter {
            let t = beats[k0 + b] as f32;
            let beat_len = (beats[k0 + b + 1] - beats[k0 + b]) as f32;
            let off = t + beat_len * 0.5 * (1.0 + st.swing as f32);
            if !breakdown {
                let kick = match (meter, st.half_time, st.syncopation) {
                    (3, _, _) => b == 0,
                    (_, true, _) => b == 0,
                    (_, false, true) => b == 0 || b == 2,
                    _ => true,
                };
                if kick {
                    out.kick(t, if b == 0 { 0.95 } else { 0.8 });
                }
                if st.syncopation && meter == 4 && b == 1 {
                    out.kick(off, 0.7);
                }
            }
            if !intro && !breakdown {
                let snare = match (meter, st.half_time) {
                    (3, _) => b > 0,
                    (_, true) => b == 2,
                    _ => b == 1 || b == 3,
                };
                if snare {
                    out.snare(t, if meter == 3 { 0.25 } else { 0.45 }, &mut rng);
                }
            }
            out.hat(t, 0.08, (beat_len / 4.0).min(0.06), &mut rng);
            out.hat(off, 0.16, (beat_len / 4.0).min(0.06), &mut rng);
            if !intro && !outro {
                for (half, at) in [(0, t), (1, off)] {
                    if bass_pattern[(b * 2 + half) % 8] == 1 {
                        let accent = if b == 0 && half == 0 { 0.42 } else { 0.32 };
                        out.bass(at, beat_len / 2.0 * 0.9, midi_hz(36 + root as i32), accent);
                    }
                }
            }
        }
        if !intro || bar * 2 >= 8.min(bars / 4) {
            let third = if chord_minor { 3 } else { 4 };
            let base = 60 + root as i32;
            let base = if base > 66 { base - 12 } else { base };
            for (i, interval) in [0, third, 7].into_iter().enumerate() {
                let pan = [-0.4, 0.0, 0.4][i];
                out.pad(bar_start, bar_len, midi_hz(base + interval), 0.07, pan);
            }
        }
    }
    if st.noise > 0.0 {
        let start = (st.lead_in_s * sr as f64) as usize;
        let end = ((music_end + 0.5) * sr as f64) as usize;
        for i in start..end.min(total) {
            let n: f32 = rng.random_range(-1.0..1.0);
            out.l[i] += n * st.noise * 1.7;
            let n: f32 = rng.random_range(-1.0..1.0);
            out.r[i] += n * st.noise * 1.7;
        }
    }
    let mut planar = [out.l, out.r];
    let gain = match st.target_lufs {
        Some(lufs) => loudness_gain(&planar, rate, lufs),
        None => peak_gain(&planar, 0.708),
    };
    planar.iter_mut().flatten().for_each(|v| *v *= gain);
    *channels = planar;
}

/// Integrated loudness (EBU R128) of interleaved stereo, LUFS.
pub fn loudness_lufs(pcm: &[f32], rate: SampleRate) -> f64 {
    integrated_lufs(rate, |meter| meter.add_frames_f32(pcm))
}

/// Integrated loudness (EBU R128) of the stereo frames `feed` gives the
/// meter, LUFS.
fn integrated_lufs(rate: SampleRate, feed: impl FnOnce(&mut ebur128::EbuR128) -> Result<(), ebur128::Error>) -> f64 {
    let mut meter = ebur128::EbuR128::new(2, rate.0, ebur128::Mode::I).expect("valid meter settings");
    feed(&mut meter).expect("stereo frames");
    meter.loudness_global().unwrap_or(f64::NEG_INFINITY)
}

/// The gain to `lufs`, measured with the same EBU R128 meter the analysis
/// uses; if that would clip, the gain to a -1 dBFS peak instead.
fn loudness_gain(channels: &[Vec<f32>; 2], rate: SampleRate, lufs: f64) -> f32 {
    let measured = integrated_lufs(rate, |meter| meter.add_frames_planar_f32(&[&channels[0], &channels[1]]));
    (10f64.powf((lufs - measured) / 20.0) as f32).min(peak_gain(channels, 0.89))
}

fn midi_hz(note: i32) -> f32 {
    440.0 * 2f32.powf((note - 69) as f32 / 12.0)
}

/// The gain that brings the higher peak of `channels` to `peak_target`
/// (1 for silence).
fn peak_gain(channels: &[Vec<f32>; 2], peak_target: f32) -> f32 {
    let peak = channels.iter().flatten().fold(0.0f32, |m, v| m.max(v.abs()));
    if peak > 0.0 {
        peak_target / peak
    } else {
        1.0
    }
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
}

/// The built-in demo library: eight tracks, 100–140 BPM, different keys.
pub fn demo_specs(seconds: f64) -> Vec<TrackSpec> {
    const TRACKS: [(&str, &str, f64, u8, bool); 8] = [
        // Artists alternate along the tempo ladder, so tempo neighbours can
        // follow each other under the artist-separation rule.
        ("Morning Signal", "Carrier Wave", 100.0, 9, true),
        ("Tape Loop Garden", "The Relays", 106.0, 0, false),
        ("Night Bus", "Low Orbit", 112.0, 2, true),
        ("Glass Harbour", "Mirror Room", 118.0, 7, false),
        ("Open Circuit", "Carrier Wave", 124.0, 4, true),
        ("Second Sunrise", "The Relays", 128.0, 5, false),
        ("Crosstown", "Low Orbit", 134.0, 11, true),
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
            style: Style::default(),
        })
        .collect()
}

/// The analysis test set: known tempo, beats, downbeats, key and loudness
/// across the cases beat trackers get wrong — tempos from 60 to 180 BPM,
/// swing, syncopation, noise, ±2% drift, half-time feels, 3/4, and silence
/// at both ends. `seconds` is each track's musical length.
pub fn analysis_test_set(seconds: f64) -> Vec<TrackSpec> {
    /// bpm, key, minor, meter, swing, syncopation, half_time, drift, noise,
    /// silence, lufs.
    type Case = (f64, u8, bool, u8, f64, bool, bool, f64, f32, f64, f64);
    #[rustfmt::skip]
    const CASES: [Case; 24] = [
        // bpm, key, minor, meter, swing, syncopation, half_time, drift, noise, silence, lufs
        (60.0,  0, false, 4, 0.0,  false, false, 0.0,  0.0,  0.0, -16.0),
        (68.0,  7, true,  4, 0.0,  false, false, 0.0,  0.02, 2.0, -20.0),
        (76.0,  2, false, 4, 0.33, false, false, 0.0,  0.0,  0.0, -18.0),
        (84.0,  9, true,  4, 0.0,  true,  false, 0.0,  0.0,  1.5, -14.0),
        (92.0,  4, false, 4, 0.33, false, false, 0.02, 0.0,  0.0, -23.0),
        (96.0, 11, true,  3, 0.0,  false, false, 0.0,  0.0,  0.0, -16.0),
        (100.0, 5, false, 4, 0.0,  false, false, 0.0,  0.05, 3.0, -12.0),
        (105.0, 0, true,  4, 0.0,  true,  false, 0.02, 0.0,  0.0, -18.0),
        (110.0, 10, false, 4, 0.0, false, false, 0.0,  0.0,  0.0, -14.0),
        (116.0, 3, true,  4, 0.2,  false, false, 0.0,  0.02, 0.0, -20.0),
        (120.0, 8, false, 4, 0.0,  false, false, 0.02, 0.0,  2.0, -16.0),
        (124.0, 1, true,  4, 0.0,  true,  false, 0.0,  0.0,  0.0, -10.0),
        (128.0, 6, false, 4, 0.0,  false, false, 0.0,  0.05, 0.0, -14.0),
        (132.0, 5, true,  3, 0.0,  false, false, 0.0,  0.0,  1.0, -18.0),
        (136.0, 2, true,  4, 0.0,  false, false, -0.02, 0.0, 0.0, -16.0),
        (140.0, 9, false, 4, 0.0,  false, true,  0.0,  0.0,  0.0, -14.0),
        (145.0, 4, true,  4, 0.0,  false, false, 0.0,  0.02, 2.5, -20.0),
        (150.0, 7, false, 4, 0.0,  false, true,  0.02, 0.0,  0.0, -16.0),
        (156.0, 11, false, 4, 0.0, true,  false, 0.0,  0.0,  0.0, -12.0),
        (160.0, 1, false, 4, 0.0,  false, false, 0.0,  0.0,  0.0, -18.0),
        (165.0, 6, true,  4, 0.0,  false, true,  0.0,  0.05, 0.0, -14.0),
        (170.0, 3, false, 4, 0.33, false, false, 0.0,  0.0,  1.0, -16.0),
        (174.0, 8, true,  4, 0.0,  false, true,  0.0,  0.0,  0.0, -22.0),
        (180.0, 10, true, 3, 0.0,  false, false, 0.0,  0.0,  0.0, -16.0),
    ];
    CASES
        .iter()
        .enumerate()
        .map(|(i, &(bpm, key, minor, meter, swing, syncopation, half_time, drift, noise, silence, lufs))| TrackSpec {
            title: format!("case {i:02}: {bpm} BPM {}{}", if meter == 3 { "3/4 " } else { "" }, PITCH_NAMES[key as usize]),
            artist: "nonstop test set".into(),
            bpm,
            key_root: key,
            minor,
            seconds,
            seed: 500 + i as u64,
            style: Style {
                meter,
                swing,
                syncopation,
                half_time,
                drift,
                noise,
                lead_in_s: silence,
                lead_out_s: silence,
                target_lufs: Some(lufs),
                breakdown: true,
                pickup_bars: 0,
            },
        })
        .collect()
}

/// A catalogue of `n` analysed tracks without audio, for ordering tests and
/// benchmarks: tempos 80–160, all keys, energies 0.1–0.9, n/4 artists, a few
/// genres, 150–400 s long.
pub fn catalogue(n: usize, seed: u64) -> Vec<Arc<Track>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            Arc::new(Track {
                id: i as i64 + 1,
                path: format!("/{i}.mp3").into(),
                title: format!("t{i}"),
                artist: format!("artist {}", rng.random_range(0..n / 4 + 1)),
                album: String::new(),
                genre: ["house", "techno", "disco", ""][rng.random_range(0..4)].into(),
                duration_s: rng.random_range(150.0..400.0),
                bpm: rng.random_range(80.0..160.0),
                key: String::new(),
                camelot: format!("{}{}", rng.random_range(1..=12), if rng.random_bool(0.5) { "A" } else { "B" }),
                energy: rng.random_range(0.1..0.9),
                loudness_lufs: rng.random_range(-16.0..-6.0),
                steadiness: 1.0,
            })
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
            style: Style::default(),
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
        assert_eq!(s.beat_times().len(), 41);
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
        for &t in &s.beat_times()[1..40] {
            let i = (t * 44_100.0) as usize;
            let after: f32 = left[i..i + 441].iter().map(|v| v * v).sum();
            let before: f32 = left[i - 441..i].iter().map(|v| v * v).sum();
            assert!(after > 2.0 * before, "beat at {t}: {after} vs {before}");
        }
    }

    #[test]
    fn drift_moves_beats_but_keeps_the_count() {
        let mut s = spec(120.0);
        s.style.drift = 0.02;
        let beats = s.beat_times();
        assert_eq!(beats.len(), 41);
        let periods: Vec<f64> = beats.windows(2).map(|w| w[1] - w[0]).collect();
        let (min, max) = periods.iter().fold((f64::MAX, 0.0f64), |(a, b), &p| (a.min(p), b.max(p)));
        assert!(max / min > 1.03 && max / min < 1.05, "{min} {max}");
    }

    #[test]
    fn loudness_target_is_met() {
        let mut s = spec(100.0);
        s.style.target_lufs = Some(-20.0);
        let pcm = render(&s, SampleRate::CD);
        assert!((loudness_lufs(&pcm, SampleRate::CD) + 20.0).abs() < 0.05);
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
