//! Global tempo, octave-aware.
//!
//! Method: the onset envelope (full band, plus the low band weighted in, so
//! kick and bass patterns have a say) is detrended and autocorrelated. Each
//! candidate period L scores the autocorrelation at L and its multiples
//! (2L, 3L, 4L: a true beat period repeats at every multiple), times a
//! log-normal tempo prior centred on 120 BPM. That comb favours the beat
//! over its subdivisions (whose multiples include off-beats), and the prior
//! breaks the remaining tie between the beat and half-time. Finally the
//! best candidate is compared with its octave neighbours (×2, ×½) and with
//! ×3/2, ×2/3 by the same score. The result is refined by parabolic
//! interpolation of the autocorrelation peak.

use super::features::FPS;

pub const MIN_BPM: f64 = 50.0;
pub const MAX_BPM: f64 = 220.0;
/// Centre and width (octaves) of the tempo prior.
const PRIOR_BPM: f64 = 120.0;
const PRIOR_OCTAVES: f64 = 1.0;

/// Octave correction thresholds: shares of on-grid onset strength found at
/// a level's midpoints and quarter points (see `estimate`).
const DEMOTE_MID: f64 = 0.3;
const DEMOTE_QUARTER: f64 = 0.05;
const PROMOTE_MID: f64 = 0.6;
const PROMOTE_QUARTER: f64 = 0.15;
/// Window for the phase-aligned strength measurements, seconds.
const LEVEL_WINDOW_S: f64 = 8.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tempo {
    pub bpm: f64,
    /// Normalised autocorrelation at the beat period, 0..1.
    pub confidence: f64,
}

/// Subtracts a moving average of about one second and half-wave rectifies.
pub fn detrend(x: &[f32]) -> Vec<f32> {
    let w = FPS as usize;
    let mut out = Vec::with_capacity(x.len());
    let mut prefix = vec![0.0f64; x.len() + 1];
    for (i, v) in x.iter().enumerate() {
        prefix[i + 1] = prefix[i] + *v as f64;
    }
    for i in 0..x.len() {
        let (a, b) = (i.saturating_sub(w / 2), (i + w / 2 + 1).min(x.len()));
        let mean = (prefix[b] - prefix[a]) / (b - a) as f64;
        out.push((x[i] as f64 - mean).max(0.0) as f32);
    }
    out
}

/// Unbiased autocorrelation for lags 0..max_lag, via FFT.
pub fn autocorrelation(x: &[f32], max_lag: usize) -> Vec<f64> {
    let n = (x.len() * 2).next_power_of_two();
    let mut planner = realfft::RealFftPlanner::<f64>::new();
    let fwd = planner.plan_fft_forward(n);
    let inv = planner.plan_fft_inverse(n);
    let mut buf = fwd.make_input_vec();
    for (b, v) in buf.iter_mut().zip(x) {
        *b = *v as f64;
    }
    let mut spec = fwd.make_output_vec();
    fwd.process(&mut buf, &mut spec).expect("fft sizes match");
    for c in spec.iter_mut() {
        *c = realfft::num_complex::Complex::new(c.norm_sqr(), 0.0);
    }
    inv.process(&mut spec, &mut buf).expect("fft sizes match");
    (0..=max_lag.min(x.len().saturating_sub(1)))
        .map(|l| buf[l] / n as f64 / (x.len() - l) as f64)
        .collect()
}

fn interp(acf: &[f64], lag: f64) -> f64 {
    let i = lag.floor() as usize;
    if i + 1 >= acf.len() {
        return 0.0;
    }
    let f = lag - i as f64;
    acf[i] * (1.0 - f) + acf[i + 1] * f
}

fn prior(bpm: f64) -> f64 {
    let z = (bpm / PRIOR_BPM).log2() / PRIOR_OCTAVES;
    (-0.5 * z * z).exp()
}

/// Comb score of a period (in frames): the ACF at the period and its
/// multiples, each normalised by the zero-lag energy.
fn comb(acf: &[f64], lag: f64) -> f64 {
    let mut s = 0.0;
    let mut n = 0.0;
    for k in 1..=4 {
        let l = lag * k as f64;
        if l + 1.0 < acf.len() as f64 {
            s += interp(acf, l);
            n += 1.0;
        }
    }
    if n == 0.0 {
        0.0
    } else {
        s / n
    }
}

/// Onset strength at the midpoints and quarter points of a grid of
/// `period` frames, relative to the strength on the grid, with the grid's
/// phase fitted per window (so slow drift does not smear it). Each point
/// takes the maximum over ±2 frames.
struct LevelRatios {
    mid: f64,
    quarter: f64,
}

fn level_ratios(env: &[f32], period: f64) -> LevelRatios {
    let at = |x: f64| {
        let c = x.round() as isize;
        (c - 2..=c + 2).filter_map(|i| env.get(i as usize).filter(|_| i >= 0)).fold(0.0f32, |m, v| m.max(*v)) as f64
    };
    let window = (LEVEL_WINDOW_S * FPS) as usize;
    let (mut on, mut mid, mut quarter) = (0.0, 0.0, 0.0);
    let mut start = 0;
    while start + window <= env.len().max(window) {
        let end = (start + window).min(env.len());
        let beats = ((end - start) as f64 / period).floor() as usize;
        if beats < 2 {
            break;
        }
        // Fit period (within ±3%, for drift) and phase per window.
        let sum_at = |period: f64, phase: f64, offset: f64| {
            (0..beats).map(|k| at(start as f64 + phase + offset + k as f64 * period)).sum::<f64>()
        };
        let mut fit = (period, 0.0, f64::MIN);
        for step in -6..=6 {
            let p = period * (1.0 + 0.005 * step as f64);
            for phase in 0..p.ceil() as usize {
                let s = sum_at(p, phase as f64, 0.0);
                if s > fit.2 {
                    fit = (p, phase as f64, s);
                }
            }
        }
        let (p, phase, on_sum) = fit;
        on += on_sum;
        mid += sum_at(p, phase, p / 2.0);
        quarter += 0.5 * (sum_at(p, phase, p / 4.0) + sum_at(p, phase, 3.0 * p / 4.0));
        start += window;
    }
    if on <= 0.0 {
        return LevelRatios { mid: 0.0, quarter: 0.0 };
    }
    LevelRatios { mid: mid / on, quarter: quarter / on }
}

/// Estimates the global tempo from the full-band and low-band onset envelopes.
pub fn estimate(onset: &[f32], low_onset: &[f32]) -> Tempo {
    // Fewer than a few beats at the slowest tempo: no tempo to speak of.
    if (onset.len() as f64) < 4.0 * 60.0 / MIN_BPM * FPS {
        return Tempo { bpm: PRIOR_BPM, confidence: 0.0 };
    }
    let full = detrend(onset);
    let low = detrend(low_onset);
    let norm = |v: Vec<f32>| {
        let m = (v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt() as f32;
        if m > 0.0 {
            v.into_iter().map(|x| x / m).collect()
        } else {
            v
        }
    };
    let env: Vec<f32> = norm(full).iter().zip(norm(low)).map(|(a, b)| a + 0.5 * b).collect();
    let max_lag = (60.0 * FPS / MIN_BPM * 4.0) as usize + 2;
    let acf = autocorrelation(&env, max_lag);
    if acf.is_empty() || acf[0] <= 0.0 {
        return Tempo { bpm: PRIOR_BPM, confidence: 0.0 };
    }
    let acf: Vec<f64> = acf.iter().map(|v| v / acf[0]).collect();
    let lag_of = |bpm: f64| 60.0 * FPS / bpm;
    let score = |bpm: f64| comb(&acf, lag_of(bpm)) * prior(bpm);

    // Coarse search on a 0.5% log grid.
    let mut best = (PRIOR_BPM, f64::MIN);
    let mut bpm = MIN_BPM;
    while bpm <= MAX_BPM {
        let s = score(bpm);
        if s > best.1 {
            best = (bpm, s);
        }
        bpm *= 1.005;
    }
    // Octave correction by metrical structure, around the prior-weighted
    // best. Half tempo, if the best's beats alternate strong and empty (its
    // own midpoints carry little): then the best is a subdivision. Double
    // tempo, if the best's midpoints are as strong as its beats or its
    // quarter points carry a regular subdivision (a half-time feel).
    let b = best.0;
    let half = b / 2.0;
    let chosen = if half >= MIN_BPM && {
        let r = level_ratios(&env, lag_of(half));
        r.mid < DEMOTE_MID && r.quarter < DEMOTE_QUARTER
    } {
        half
    } else if b * 2.0 <= MAX_BPM && {
        let r = level_ratios(&env, lag_of(b));
        r.mid >= PROMOTE_MID || r.quarter >= PROMOTE_QUARTER
    } {
        b * 2.0
    } else {
        b
    };
    // Refine on the raw ACF peak near the chosen period.
    let lag = lag_of(chosen);
    let lo = (lag * 0.97).floor() as usize;
    let hi = ((lag * 1.03).ceil() as usize).min(acf.len() - 2);
    let Some(peak) = (lo.max(1)..=hi).max_by(|&a, &b| acf[a].total_cmp(&acf[b])) else {
        return Tempo { bpm: chosen, confidence: comb(&acf, lag).clamp(0.0, 1.0) };
    };
    let (a, b, c) = (acf[peak - 1], acf[peak], acf[peak + 1]);
    let denom = a - 2.0 * b + c;
    let offset = if denom.abs() > 1e-12 { (0.5 * (a - c) / denom).clamp(-0.5, 0.5) } else { 0.0 };
    let refined = 60.0 * FPS / (peak as f64 + offset);
    let bpm = if (refined / chosen - 1.0).abs() < 0.03 { refined } else { chosen };
    Tempo { bpm, confidence: comb(&acf, lag_of(bpm)).clamp(0.0, 1.0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pulses(bpm: f64, seconds: f64) -> Vec<f32> {
        let n = (seconds * FPS) as usize;
        let mut x = vec![0.0f32; n];
        let mut t = 0.0;
        while t < seconds {
            let i = (t * FPS).round() as usize;
            if i < n {
                x[i] = 1.0;
            }
            t += 60.0 / bpm;
        }
        x
    }

    #[test]
    fn finds_pulse_tempo() {
        for bpm in [90.0, 120.0, 128.0, 140.0, 174.0] {
            let x = pulses(bpm, 60.0);
            let t = estimate(&x, &x);
            assert!((t.bpm / bpm - 1.0).abs() < 0.01, "{bpm}: {t:?}");
        }
    }

    #[test]
    fn acf_of_periodic_signal_peaks_at_period() {
        let x: Vec<f32> = (0..1000).map(|i| if i % 50 == 0 { 1.0 } else { 0.0 }).collect();
        let acf = autocorrelation(&x, 120);
        let peak = (20..120).max_by(|&a, &b| acf[a].total_cmp(&acf[b])).unwrap();
        assert_eq!(peak, 50);
    }
}
