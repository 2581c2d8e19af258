//! Measuring a transition's beat alignment from the audio alone, without
//! the beat tracker that placed the beats: A's and B's attacks through the
//! overlap are found at full rate in the rendered audio, each timed where
//! its energy crosses halfway in dB from the floor to the peak (a click, a
//! noise burst and a swelling kick all come out at their first sample). At
//! each of A's beats the loudest attack of each track nearby is taken, and
//! B's lag behind A's is measured there; a B whose loud attacks fall
//! between the beats (half a beat off) is caught by comparing its
//! strength on and between them.
//!
//! The envelopes are taken below 8 kHz (hi-hat air and any marker clicks
//! above it do not decide), with 1 ms smoothing, every 0.25 ms or the
//! nearest whole number of samples to it (11 at 44.1 kHz): an envelope
//! carries its own hop, so that its times are the audio's.

use serde::Serialize;

use super::dsp::Biquad;
use crate::analysis::grid::half_rise;
use crate::units::SampleRate;

/// Envelope resolution, seconds (rounded to whole samples).
const HOP_S: f64 = 0.00025;
/// Energy smoothing, seconds.
const SMOOTH_S: f64 = 0.001;
/// Attack rise window, seconds.
const RISE_S: f64 = 0.002;
/// An attack rises by at least this much (ln energy: 6 dB).
const MIN_RISE: f32 = 1.386;
/// A window whose lag is within this is "on the beat".
pub const ON_BEAT_MS: f64 = 20.0;

/// What the measurement found.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Alignment {
    /// The alignment: how far B's beats sit after A's (negative: before),
    /// the median of the signed lags beat by beat, ms.
    pub lag_ms: f64,
    /// Median and 95th percentile of |lag| beat by beat, ms: how far apart
    /// the two songs' loudest attacks at each beat are. Not the alignment:
    /// where the grids coincide, one beat's loudest attack is A's snare,
    /// the next B's kick, and two songs' instruments are some
    /// milliseconds apart anyway.
    pub scatter_ms: f64,
    pub scatter_p95_ms: f64,
    /// 90th percentile of the lags' distance from their median, ms: how
    /// consistent the lag is.
    pub spread_ms: f64,
    /// Share of measured beats with B on A's beat (|lag| ≤ 20 ms); 0 when
    /// B is half a beat off.
    pub on_beat: f64,
    /// B's loud attacks fall between its beats, not on them: half a beat
    /// off.
    pub half_beat_off: bool,
    /// Beats measured (both tracks had an attack there), of those tried.
    pub windows: usize,
    pub tried: usize,
    /// The shift already taken out of B before this measurement, ms (B was
    /// this late; 0 when none was).
    pub corrected_ms: f64,
}

impl Alignment {
    /// The shift that would put B on A, if the lag is consistent enough to
    /// trust: at least four windows, nine in ten within 2 ms of the median.
    pub fn correction_ms(&self) -> Option<f64> {
        (self.windows >= 4 && self.spread_ms <= 2.0 && self.lag_ms.is_finite()).then_some(self.lag_ms)
    }

    /// Whether it may air as beatmatched: B not half a beat off, and no
    /// more than `max_ms` late or early overall. The share of beats within
    /// `ON_BEAT_MS` is no gate: beat by beat the loudest attacks of two
    /// songs differ by 10–30 ms even where their beats coincide (one beat's
    /// loudest is A's snare, the next B's kick) — on real pairs whose
    /// marker clicks agree to 0.1 ms, 33–50% of beats measured within
    /// 20 ms (`nonstop eval-mix`).
    pub fn acceptable(&self, max_ms: f64) -> bool {
        self.windows * 2 >= self.tried && self.lag_ms.abs() <= max_ms && !self.half_beat_off
    }
}

/// A log-energy envelope and its time step.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub log: Vec<f32>,
    /// Seconds per value: whole samples, so `HOP_S` only roughly.
    pub hop_s: f64,
}

impl Envelope {
    /// Steps of this envelope in `seconds`.
    fn hops(&self, seconds: f64) -> f64 {
        seconds / self.hop_s
    }

    /// The attack rise window in steps.
    fn rise(&self) -> usize {
        (self.hops(RISE_S).round() as usize).max(1)
    }
}

/// Log energy (below 8 kHz, 1 ms smoothing) of interleaved stereo from
/// frame `from` for `frames` frames, one value every `HOP_S` rounded to
/// whole samples. (Taken as exactly `HOP_S`, the 11 samples of 44.1 kHz
/// put every time 0.23 % late: 70 ms by the end of a 30-second overlap,
/// where the attacks were then looked for beside their beats.)
pub fn log_energy(stereo: &[f32], from: usize, frames: usize, rate: SampleRate) -> Envelope {
    let hop = ((HOP_S * rate.0 as f64).round() as usize).max(1);
    let alpha = (1.0 - (-1.0 / (SMOOTH_S * rate.0 as f64)).exp()) as f32;
    let mut lp = [Biquad::lowpass(rate.0 as f32, 8_000.0), Biquad::lowpass(rate.0 as f32, 8_000.0)];
    let mut energy = 0.0f32;
    let end = (from + frames).min(stereo.len() / 2);
    let mut out = Vec::with_capacity(frames / hop + 1);
    for f in from..end.max(from) {
        let x = lp[0].run(0.5 * (stereo[f * 2] + stereo[f * 2 + 1]));
        let x = lp[1].run(x);
        energy += alpha * (x * x - energy);
        if (f - from) % hop == 0 {
            out.push((energy + 1e-10).ln());
        }
    }
    Envelope { log: out, hop_s: hop as f64 / rate.0 as f64 }
}

/// Attack strength for the coarse lag: the rise of the amplitude over
/// 2 ms, positive part. In amplitude, not dB: the loud attacks (kick,
/// snare) lead; a hi-hat out of digital silence would rise as much in dB.
fn attack_strength(log_e: &[f32], r: usize) -> Vec<f32> {
    let amp: Vec<f32> = log_e.iter().map(|l| (0.5 * l).exp()).collect();
    (0..amp.len()).map(|i| if i >= r { (amp[i] - amp[i - r]).max(0.0) } else { 0.0 }).collect()
}

/// The rise of the log energy over 2 ms (`r` steps), positive part: where
/// attacks are.
fn log_rise(log_e: &[f32], r: usize) -> Vec<f32> {
    (0..log_e.len()).map(|i| if i >= r { (log_e[i] - log_e[i - r]).max(0.0) } else { 0.0 }).collect()
}

/// Attacks: (time in hops, strength), at local maxima of the strength that
/// rise at least 6 dB, each timed at its half-rise crossing (`r`: the rise
/// window in steps).
fn attacks(log_e: &[f32], strength: &[f32], r: usize) -> Vec<(f64, f32)> {
    let r = r as isize;
    let at = |k: isize| log_e[k.clamp(0, log_e.len() as isize - 1) as usize];
    let mut out = Vec::new();
    for i in 1..strength.len().saturating_sub(1) {
        let s = strength[i];
        // The largest within ±8 ms.
        let lo = i.saturating_sub(4 * r as usize);
        let hi = (i + 4 * r as usize + 1).min(strength.len());
        if s < MIN_RISE || strength[lo..hi].iter().any(|&v| v > s) || (lo..i).any(|k| strength[k] == s) {
            continue;
        }
        let i = i as isize;
        let floor = (i - 3 * r..=i - r).map(at).fold(f32::MAX, f32::min);
        // The attack's peak within 10 ms: a stretched, smeared attack
        // keeps rising after its steepest point.
        let top = (i..=i + 5 * r).max_by(|&x, &y| at(x).total_cmp(&at(y))).unwrap_or(i);
        let peak = at(top);
        let half = half_rise(floor, peak);
        // The crossing may come after the steepest rise: a lossy codec's
        // pre-echo (Vorbis smears a click over the few ms before it) rises
        // further in dB out of digital silence than the click itself does
        // out of the pre-echo; the attack is where the click is.
        let Some(k) = (i - r..=top).find(|&k| at(k) >= half) else { continue };
        let (a, b) = (at(k - 1), at(k));
        let frac = if b > a { ((half - a) / (b - a)).clamp(0.0, 1.0) } else { 0.0 };
        out.push(((k - 1) as f64 + frac as f64, s));
    }
    out
}

/// The loudest attack within `radius` hops of `at`, nearer ones preferred:
/// (time in hops, amplitude rise over the `r` steps after it).
fn loudest_near(attacks: &[(f64, f32)], strength: &[f32], r: usize, at: f64, radius: f64) -> Option<(f64, f32)> {
    attacks
        .iter()
        .filter(|(t, _)| (t - at).abs() <= radius)
        .map(|&(t, _)| {
            let i = (t.round() as usize + r).min(strength.len().saturating_sub(1));
            let loud = strength[i.saturating_sub(r)..=i].iter().copied().fold(0.0f32, f32::max);
            (t, loud * (-0.5 * ((t - at) / (radius / 2.0)).powi(2)).exp() as f32)
        })
        .max_by(|x, y| x.1.total_cmp(&y.1))
}

/// Mean of the loudest amplitude rise within `radius` hops of each point.
fn strength_at(strength: &[f32], points: impl Iterator<Item = f64>, radius: f64) -> f64 {
    let (mut sum, mut n) = (0.0f64, 0.0f64);
    for p in points {
        let (lo, hi) = ((p - radius).max(0.0) as usize, ((p + radius) as usize + 1).min(strength.len()));
        if lo < hi {
            sum += strength[lo..hi].iter().copied().fold(0.0f32, f32::max) as f64;
            n += 1.0;
        }
    }
    sum / n.max(1.0)
}

/// `points` with `parts - 1` points evenly between each neighbouring two.
fn subdivide(points: &[f64], parts: usize) -> Vec<f64> {
    let mut out: Vec<f64> = points
        .windows(2)
        .flat_map(|w| (0..parts).map(move |k| w[0] + (w[1] - w[0]) * k as f64 / parts as f64))
        .collect();
    out.extend(points.last());
    out
}

/// Measures how B's attacks sit on A's through an overlap: `a` and `b` are
/// log energies (see `log_energy`) over the same output span at one rate
/// (`None` for envelopes of two rates, or under four beats), `grid` the
/// beat times (seconds from the span's start) on which both should land.
/// At each grid point the loudest attack of each track nearby is found (in
/// the audio, not taken from the grid); their difference is the lag there.
/// A track whose loud attacks fall between its beats rather than on them
/// is half a beat off, and counts as off the beat throughout. B plays
/// `b_per_beat` beats per grid interval (2 where B is counted at twice A's
/// tempo: its own beats between the grid points are not off-beats).
pub fn measure(a: &Envelope, b: &Envelope, grid: &[f64], b_per_beat: usize) -> Option<Alignment> {
    if grid.len() < 4 || a.hop_s != b.hop_s {
        return None;
    }
    let r = a.rise();
    let beat = a.hops((grid[grid.len() - 1] - grid[0]) / (grid.len() - 1) as f64);
    let radius = a.hops(0.060).min(beat / 3.0);
    let (sa, sb) = (attack_strength(&a.log, r), attack_strength(&b.log, r));
    let (att_a, att_b) = (attacks(&a.log, &log_rise(&a.log, r), r), attacks(&b.log, &log_rise(&b.log, r), r));
    let points: Vec<f64> = grid.iter().map(|t| a.hops(*t)).filter(|p| *p >= radius && *p + radius < sa.len().min(sb.len()) as f64).collect();
    let tried = points.len();
    let mut lags = Vec::new();
    for &p in &points {
        if let (Some((ta, _)), Some((tb, _))) = (loudest_near(&att_a, &sa, r, p, radius), loudest_near(&att_b, &sb, r, p, radius)) {
            lags.push((tb - ta) * a.hop_s * 1000.0);
        }
    }
    // Half a beat off: loud attacks between a track's beats, not on them.
    let near = a.hops(0.015);
    let off_grid = |s: &[f32], beats: &[f64]| {
        let mids = beats.windows(2).map(|w| 0.5 * (w[0] + w[1]));
        strength_at(s, mids, near) > 1.3 * strength_at(s, beats.iter().copied(), near)
    };
    let b_beats = subdivide(&points, b_per_beat.max(1));
    let b_off = off_grid(&sb, &b_beats) && !off_grid(&sa, &points);
    if lags.is_empty() {
        return Some(Alignment {
            lag_ms: f64::NAN,
            scatter_ms: f64::NAN,
            scatter_p95_ms: f64::NAN,
            spread_ms: f64::NAN,
            on_beat: 0.0,
            half_beat_off: b_off,
            windows: 0,
            tried,
            corrected_ms: 0.0,
        });
    }
    let mut signed = lags.clone();
    signed.sort_by(f64::total_cmp);
    let mut abs: Vec<f64> = lags.iter().map(|l| l.abs()).collect();
    abs.sort_by(f64::total_cmp);
    let on_beat =
        if b_off { 0.0 } else { abs.iter().filter(|l| **l <= ON_BEAT_MS).count() as f64 / abs.len() as f64 };
    let lag_ms = crate::quantile(&signed, 0.5);
    let mut spread: Vec<f64> = lags.iter().map(|l| (l - lag_ms).abs()).collect();
    spread.sort_by(f64::total_cmp);
    Some(Alignment {
        lag_ms,
        scatter_ms: crate::quantile(&abs, 0.5),
        scatter_p95_ms: crate::quantile(&abs, 0.95),
        spread_ms: crate::quantile(&spread, 0.9),
        on_beat,
        half_beat_off: b_off,
        windows: abs.len(),
        tried,
        corrected_ms: 0.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kicks(beat_s: f64, offset_s: f64, seconds: f64, hz: f32) -> Vec<f32> {
        let rate = 44_100.0;
        let mut x = vec![0.0f32; (seconds * rate) as usize * 2];
        let mut t = offset_s;
        while t < seconds {
            let s = (t * rate) as usize;
            for i in 0..2000 {
                let v = 0.6 * (std::f32::consts::TAU * hz * i as f32 / rate as f32).sin() * (-(i as f32) / 300.0).exp();
                if let Some(p) = x.get_mut((s + i) * 2..(s + i) * 2 + 2) {
                    p[0] += v;
                    p[1] += v;
                }
            }
            t += beat_s;
        }
        x
    }

    #[test]
    fn finds_the_offset_between_two_pulse_trains() {
        let rate = SampleRate::CD;
        let a = kicks(0.5, 0.1, 20.0, 60.0);
        for (shift_ms, expect) in [(0.0, 0.0), (3.0, 3.0), (-7.0, 7.0)] {
            let b = kicks(0.5, 0.1 + shift_ms / 1000.0, 20.0, 180.0);
            let n = 44_100 * 20;
            let grid: Vec<f64> = (0..40).map(|k| 0.1 + 0.5 * k as f64).collect();
            let m = measure(&log_energy(&a, 0, n, rate), &log_energy(&b, 0, n, rate), &grid, 1).unwrap();
            assert!((m.scatter_ms - expect).abs() < 0.6, "shift {shift_ms}: {m:?}");
            assert_eq!(m.on_beat, 1.0, "{m:?}");
        }
    }

    #[test]
    fn a_minute_long_overlap_at_44_1_khz_is_measured_to_its_end() {
        // 0.25 ms is 11.025 samples at 44.1 kHz: the envelope's 11-sample
        // steps must be timed as such, or a beat a minute in is looked for
        // 136 ms from its attacks.
        let rate = SampleRate::CD;
        let seconds = 62.0;
        let a = kicks(0.9, 0.1, seconds, 60.0);
        let b = kicks(0.9, 0.103, seconds, 60.0);
        let n = (44_100.0 * seconds) as usize;
        let grid: Vec<f64> = (0..68).map(|k| 0.1 + 0.9 * k as f64).collect();
        let (ea, eb) = (log_energy(&a, 0, n, rate), log_energy(&b, 0, n, rate));
        assert!((ea.hop_s - 11.0 / 44_100.0).abs() < 1e-12, "{}", ea.hop_s);
        let m = measure(&ea, &eb, &grid, 1).unwrap();
        assert!(m.tried >= 66 && m.windows == m.tried && (m.lag_ms - 3.0).abs() < 0.3 && m.spread_ms < 0.5, "{m:?}");
    }

    #[test]
    fn a_codecs_pre_echo_out_of_digital_silence_is_not_the_attack() {
        // A's clicks out of digital silence, each after the noise a Vorbis
        // encoder smears over the 6 ms ahead of a transient, swelling from
        // 45 to 25 dB under the click: in dB that rises further out of the
        // silence than the click does out of it.
        let rate = SampleRate::CD;
        let mut a = kicks(0.5, 0.1, 20.0, 1000.0);
        let mut seed = 1u32;
        for k in 0..40 {
            let s = ((0.1 + 0.5 * k as f64) * 44_100.0) as usize;
            for i in s - 265..s {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let db = -45.0 + 20.0 * (i + 265 - s) as f32 / 265.0;
                let v = 0.6 * 10f32.powf(db / 20.0) * 2.0 * ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5);
                a[i * 2] += v;
                a[i * 2 + 1] += v;
            }
        }
        let b = kicks(0.5, 0.103, 20.0, 180.0);
        let n = 44_100 * 20;
        let grid: Vec<f64> = (0..40).map(|k| 0.1 + 0.5 * k as f64).collect();
        let m = measure(&log_energy(&a, 0, n, rate), &log_energy(&b, 0, n, rate), &grid, 1).unwrap();
        assert!(m.windows * 10 >= m.tried * 9 && (m.lag_ms - 3.0).abs() < 0.6, "{m:?}");
    }

    /// Kicks every `beat_s` with a louder, brighter hit between them.
    fn kick_snare(beat_s: f64, offset_s: f64, seconds: f64) -> Vec<f32> {
        let mut x = kicks(beat_s, offset_s, seconds, 60.0);
        let snare = kicks(beat_s, offset_s + beat_s / 2.0, seconds, 900.0);
        for (v, s) in x.iter_mut().zip(&snare) {
            *v += 2.0 * s;
        }
        x
    }

    #[test]
    fn b_at_twice_the_grids_tempo_is_not_half_a_beat_off() {
        let rate = SampleRate::CD;
        let n = 44_100 * 20;
        // A: a kick every second; B: kick and (louder) snare, one each per second.
        let a = kicks(1.0, 0.1, 20.0, 60.0);
        let grid: Vec<f64> = (0..19).map(|k| 0.1 + k as f64).collect();
        let (ea, on, off) = (log_energy(&a, 0, n, rate), kick_snare(1.0, 0.1, 20.0), kick_snare(1.0, 0.35, 20.0));
        let counted_double = measure(&ea, &log_energy(&on, 0, n, rate), &grid, 2).unwrap();
        assert!(counted_double.on_beat > 0.9 && counted_double.lag_ms.abs() < 1.0, "{counted_double:?}");
        // Counted at A's tempo, the same B has its loud hits between A's beats.
        let counted_single = measure(&ea, &log_energy(&on, 0, n, rate), &grid, 1).unwrap();
        assert!(counted_single.half_beat_off && !counted_single.acceptable(15.0), "{counted_single:?}");
        // A quarter of a second late is half of B's beat off.
        let late = measure(&ea, &log_energy(&off, 0, n, rate), &grid, 2).unwrap();
        assert!(late.half_beat_off && late.on_beat == 0.0 && !late.acceptable(15.0), "{late:?}");
        assert!(counted_double.acceptable(15.0));
    }
}
