//! The beat grid. Most recorded music is played to a click, so where the
//! tracked beats keep one tempo the grid is a straight line — time against
//! beat number — fitted to the beats' attacks at 0.5 ms resolution, as DJ
//! software does (tempo and phase per steady section, with a new section
//! where the music really changes tempo). Where no line fits (a live band
//! that drifts, rubato), the tracked beats are kept, moved onto their
//! attacks and smoothed by a local fit so they bend but never jitter.
//!
//! A line through n attacks each found to within ±1 ms is placed to well
//! under a millisecond: a regular click track comes out regular.

use super::features::{FINE_HOP, RATE};

/// Search radius for a beat's attack around the tracked beat, seconds.
const ATTACK_RADIUS_S: f64 = 0.025;
/// Attacks further from the tracked beat count for less: a rise's weight
/// falls to 0.6 at this distance (Gaussian), so a strong hit a few tens of
/// ms away does not win over the beat's own attack.
const ATTACK_SPREAD_S: f64 = 0.010;
/// Rise window of the attack detector, fine frames (2 ms).
const RISE: isize = 4;
/// A section is steady when its attacks sit within this of one line.
const STEADY_TOL_S: f64 = 0.006;
/// Share of a section's beats allowed off the line (a fill, a flam, a
/// pushed chord), at most `MAX_OUTLIER_RUN` in a row and never at either
/// end: a change of tempo is not an outlier.
const OUTLIER_SHARE: f64 = 0.25;
const MAX_OUTLIER_RUN: usize = 3;
/// ln of the fine envelope's silence (its 1e-9 floor).
const SILENCE: f32 = -20.7;
/// Fewest beats in a steady section.
const MIN_SECTION: usize = 8;
/// Beats each side in the local fit of unsteady stretches.
const FIT_HALF_WIDTH: usize = 3;
/// An unsteady beat's attack further than this from its local fit is not
/// its attack.
const LOOSE_TOL_S: f64 = 0.025;

/// The fitted grid and what it is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub beats: Vec<f64>,
    /// Steady sections: first beat, end beat (exclusive), period in seconds.
    pub sections: Vec<(usize, usize, f64)>,
}

impl Grid {
    /// Share of beats on steady sections, 0..1.
    pub fn steadiness(&self) -> f64 {
        let on: usize = self.sections.iter().map(|s| s.1 - s.0).sum();
        on as f64 / self.beats.len().max(1) as f64
    }

    /// Tempo of the longest steady section, if any.
    pub fn steady_bpm(&self) -> Option<f64> {
        self.sections.iter().max_by_key(|s| s.1 - s.0).map(|s| 60.0 / s.2)
    }
}

/// The attack nearest each tracked beat. The steepest rise of the fine
/// log-energy envelope `env` (`Features::fine`) within ±35 ms finds it;
/// its time is where the envelope crosses halfway (in dB) from the floor
/// before the rise to the peak after it (at most 12 dB below the peak),
/// interpolated between fine frames.
/// Half-rise in dB lands near the first sample of an attack whatever its
/// shape (a click, a noise burst or a slowly swelling kick), where the
/// steepest rise alone would put a soft attack a millisecond or two late.
/// `None` where the envelope rises by less than 3 dB.
pub fn attacks(env: &[f32], beats: &[f64]) -> Vec<Option<f64>> {
    if env.len() < 8 {
        return vec![None; beats.len()];
    }
    let fps = RATE as f64 / FINE_HOP as f64;
    let radius = (ATTACK_RADIUS_S * fps) as isize;
    // Before the start is silence.
    let at = |k: isize| if k < 0 { SILENCE } else { env[(k as usize).min(env.len() - 1)] };
    let rise = |i: isize| at(i) - at(i - RISE);
    beats
        .iter()
        .map(|&b| {
            let c = (b * fps).round() as isize;
            let spread = ATTACK_SPREAD_S * fps;
            let weight = |i: isize| rise(i) * (-0.5 * ((i - c) as f64 / spread).powi(2)).exp() as f32;
            let best = (c - radius..=c + radius).max_by(|&x, &y| weight(x).total_cmp(&weight(y)))?;
            let floor = (best - 3 * RISE..=best - RISE).map(at).fold(f32::MAX, f32::min);
            let peak = (best..=best + RISE).map(at).fold(f32::MIN, f32::max);
            // ln energy: 3 dB is ln 2.
            if peak - floor < std::f32::consts::LN_2 {
                return None;
            }
            // Halfway, but within 12 dB of the peak: over silence, halfway
            // would be down in a resampler's pre-ringing. (ln energy:
            // 12 dB is 2.76.)
            let half = (0.5 * (floor + peak)).max(peak - 2.76);
            let k = (best - RISE..=best).find(|&k| at(k) >= half)?;
            let (lo, hi) = (at(k - 1), at(k));
            let frac = if hi > lo { ((half - lo) / (hi - lo)).clamp(0.0, 1.0) } else { 0.0 };
            // Fine frame k covers [k, k + 1) fine hops; the crossing between
            // frames k - 1 and k is the attack's first sample.
            Some(((k - 1) as f64 + frac as f64 + 0.5).max(0.0) / fps)
        })
        .collect()
}

/// Least-squares line t = a + b·k through `points` (k, t).
fn line(points: impl Iterator<Item = (f64, f64)>) -> Option<(f64, f64)> {
    let (mut n, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (x, y) in points {
        n += 1.0;
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
    }
    let d = n * sxx - sx * sx;
    if n < 2.0 || d.abs() < 1e-12 {
        return None;
    }
    let b = (n * sxy - sx * sy) / d;
    Some(((sy - b * sx) / n, b))
}

/// A robust line over beats [i, j): fitted to the attacks, refitted
/// without those off it. Returns (a, b) and whether the section is steady.
fn fit_section(points: &[Option<f64>], i: usize, j: usize) -> Option<((f64, f64), bool)> {
    let pts = || (i..j).filter_map(|k| points[k].map(|t| (k as f64, t)));
    let first = line(pts())?;
    let off = |(a, b): (f64, f64), k: usize, t: f64| (t - (a + b * k as f64)).abs();
    // Refit on the points near the first line (a wrong attack pulls it).
    let near: Vec<(f64, f64)> = pts().filter(|&(k, t)| off(first, k as usize, t) <= 2.0 * STEADY_TOL_S).collect();
    let fit = line(near.iter().copied()).unwrap_or(first);
    let flags: Vec<bool> = pts().map(|(k, t)| off(fit, k as usize, t) > STEADY_TOL_S).collect();
    let have = flags.len();
    let outliers = flags.iter().filter(|o| **o).count();
    let ends_on = have >= 4 && !flags[..2].iter().chain(&flags[have - 2..]).any(|o| *o);
    let no_runs = !flags.windows(MAX_OUTLIER_RUN + 1).any(|w| w.iter().all(|o| *o));
    let steady = have >= MIN_SECTION.min(j - i) * 3 / 4
        && (outliers as f64) <= OUTLIER_SHARE * have as f64
        && ends_on
        && no_runs;
    Some((fit, steady))
}

/// Fits the grid to `tracked` beats with their `attacks` (see `attacks`).
pub fn fit(tracked: &[f64], attacks: &[Option<f64>]) -> Grid {
    let n = tracked.len();
    let mut beats = Vec::with_capacity(n);
    let mut sections = Vec::new();
    let mut loose: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < n {
        let steady_at = |j: usize| fit_section(attacks, i, j).is_some_and(|(_, s)| s);
        if i + MIN_SECTION > n || !steady_at(i + MIN_SECTION) {
            loose.push(i);
            beats.push(f64::NAN);
            i += 1;
            continue;
        }
        // Grow while it stays steady: doubling, then bisection.
        let mut good = i + MIN_SECTION;
        let mut step = MIN_SECTION;
        while good < n && steady_at((good + step).min(n)) {
            good = (good + step).min(n);
            step *= 2;
        }
        let mut bad = (good + step).min(n + 1);
        while bad - good > 1 {
            let mid = (good + bad) / 2;
            if mid <= n && steady_at(mid) {
                good = mid;
            } else {
                bad = mid;
            }
        }
        let ((a, b), _) = fit_section(attacks, i, good).expect("steady sections have a line");
        beats.extend((i..good).map(|k| a + b * k as f64));
        sections.push((i, good, b));
        i = good;
    }
    if !loose.is_empty() {
        // Unsteady beats: on their attacks, unless an attack is far off
        // the local fit (it was something else); else on the fit.
        let raw: Vec<f64> = (0..n).map(|k| attacks[k].unwrap_or(tracked[k])).collect();
        let smooth = local_fit(&raw);
        for k in loose {
            beats[k] = match attacks[k] {
                Some(a) if (a - smooth[k]).abs() <= LOOSE_TOL_S => a,
                _ => smooth[k],
            };
        }
    }
    // Where a steady section meets a loose stretch, keep the beats in order.
    for k in 1..n {
        if beats[k] <= beats[k - 1] {
            beats[k] = beats[k - 1] + 1e-3;
        }
    }
    Grid { beats, sections }
}

/// For each beat, a linear fit (time against index) over its neighbours,
/// evaluated at the beat, leaving out neighbours more than 25 ms off a
/// first fit.
fn local_fit(beats: &[f64]) -> Vec<f64> {
    let pass = |use_beat: &[bool]| -> Vec<f64> {
        let n = beats.len();
        (0..n)
            .map(|i| {
                let (a, b) = (i.saturating_sub(FIT_HALF_WIDTH), (i + FIT_HALF_WIDTH + 1).min(n));
                match line((a..b).filter(|&j| use_beat[j]).map(|j| (j as f64, beats[j]))) {
                    Some((c, s)) if (a..b).filter(|&j| use_beat[j]).count() >= 3 => c + s * i as f64,
                    _ => beats[i],
                }
            })
            .collect()
    };
    let first = pass(&vec![true; beats.len()]);
    let inliers: Vec<bool> = beats.iter().zip(&first).map(|(b, f)| (b - f).abs() <= LOOSE_TOL_S).collect();
    pass(&inliers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::features::compute;

    /// Mono at the analysis rate with decaying-sine clicks at `times`.
    fn clicks(times: &[f64], seconds: f64, hz: f32) -> Vec<f32> {
        let mut x = vec![0.0f32; (seconds * RATE as f64) as usize];
        for &t in times {
            let s = (t * RATE as f64).round() as usize;
            for i in 0..(0.012 * RATE as f64) as usize {
                if let Some(v) = x.get_mut(s + i) {
                    *v += 0.5 * (std::f32::consts::TAU * hz * i as f32 / RATE as f32).sin() * (-(i as f32) / 60.0).exp();
                }
            }
        }
        x
    }

    #[test]
    fn a_click_track_comes_out_regular_to_a_fraction_of_a_millisecond() {
        let period = 60.0 / 126.0;
        let truth: Vec<f64> = (0..60).map(|k| 0.3 + k as f64 * period).collect();
        let env = compute(&clicks(&truth, 31.0, 1000.0)).fine;
        // Tracked beats off by up to ±9 ms, as a frame-level tracker leaves them.
        let tracked: Vec<f64> = truth.iter().enumerate().map(|(k, t)| t + 0.009 * ((k * 7 % 5) as f64 - 2.0) / 2.0).collect();
        let g = fit(&tracked, &attacks(&env, &tracked));
        assert_eq!(g.sections.len(), 1, "{:?}", g.sections);
        assert!((60.0 / g.sections[0].2 - 126.0).abs() < 0.01, "{}", 60.0 / g.sections[0].2);
        let offsets: Vec<f64> = g.beats.iter().zip(&truth).map(|(b, t)| (b - t) * 1000.0).collect();
        let spread = offsets.iter().cloned().fold(f64::MIN, f64::max) - offsets.iter().cloned().fold(f64::MAX, f64::min);
        assert!(spread < 0.2, "grid not regular: {spread} ms");
        assert!(offsets[0].abs() < 1.0, "grid phase off by {} ms", offsets[0]);
    }

    #[test]
    fn a_tempo_change_makes_two_sections() {
        let mut truth: Vec<f64> = (0..40).map(|k| 0.5 + k as f64 * 0.5).collect();
        let last = *truth.last().unwrap();
        truth.extend((1..40).map(|k| last + k as f64 * 0.45));
        let env = compute(&clicks(&truth, 40.0, 2000.0)).fine;
        let g = fit(&truth, &attacks(&env, &truth));
        assert_eq!(g.sections.len(), 2, "{:?}", g.sections);
        assert!(g.beats.iter().zip(&truth).all(|(b, t)| (b - t).abs() < 0.002));
    }

    #[test]
    fn a_drifting_performance_keeps_its_beats() {
        // Tempo wandering ±4 % over a few bars: no line fits for long.
        let mut truth = vec![0.5];
        for k in 1..80 {
            let period = 0.5 * (1.0 + 0.04 * (k as f64 / 6.0).sin());
            truth.push(truth[k - 1] + period);
        }
        let env = compute(&clicks(&truth, 45.0, 1500.0)).fine;
        let g = fit(&truth, &attacks(&env, &truth));
        let worst = g.beats.iter().zip(&truth).map(|(b, t)| (b - t).abs()).fold(0.0, f64::max);
        // Within the steadiness tolerance where a line was fitted, on the attacks elsewhere.
        assert!(worst < STEADY_TOL_S + 0.001, "worst {worst} s; sections {:?}", g.sections);
    }
}
