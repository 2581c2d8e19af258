//! The beat grid. Most recorded music is played to a click, so where the
//! tracked beats keep one tempo the grid is a straight line — time against
//! beat number — fitted to the beats' attacks at 0.5 ms resolution, as DJ
//! software does (tempo and phase per steady section, with a new section
//! where the music really changes tempo). Where no line fits (a live band
//! that drifts, rubato), the tracked beats are kept, moved onto their
//! attacks and smoothed by a local quadratic fit so they bend with the
//! music but not with the scatter of single hits.
//!
//! A line through n attacks each found to within ±1 ms is placed to well
//! under a millisecond: a regular click track comes out regular.

use super::features::{Features, FINE_HOP, FINE_SCALE, RATE};

/// Search radius for a beat's attack around the tracked beat, seconds.
const ATTACK_RADIUS_S: f64 = 0.025;
/// Attacks further from the tracked beat count for less: a rise's weight
/// falls to 0.6 at this distance (Gaussian), so a strong hit a few tens of
/// ms away does not win over the beat's own attack.
const ATTACK_SPREAD_S: f64 = 0.010;
/// Rise window of the attack detector, fine frames (2 ms).
const RISE: isize = 4;
/// The usual scatter of the attacks' local fit about a steady grid line
/// (single attacks scatter by some 8 ms; a fit through 7 of them by a
/// third of that): the unit of the residuals.
const SCATTER_S: f64 = 0.003;
/// What a new run costs, in squared scatters: a tempo change must take
/// out this much residual to be believed.
const RUN_COST: f64 = 50.0;
/// A run is steady when its attacks' local fit strays no more than this
/// (RMS) from its line.
const STEADY_RMS_S: f64 = 0.0045;
/// How far (beats) the meeting point of two runs may move when it is
/// settled on the attacks.
const BOUNDARY_SLACK: usize = 3;
/// Longest run considered, beats (a longer steady stretch becomes two
/// runs, fitted apart).
const MAX_RUN: usize = 2048;
/// ln of the fine envelope's silence (its 1e-9 floor).
const SILENCE: f32 = -20.7;
/// Fewest beats in a steady section.
const MIN_SECTION: usize = 8;
/// Fewest beats in a steady stretch split off the start or end of an
/// unsteady run: 8 bars. (From 8 or 16 beats, pieces of drifting real
/// clips came out steady: in `nonstop eval-mix` 41 more pairs
/// beatmatched, with B's clicks 61 ms from A's at the 95th percentile
/// instead of 44.)
const MIN_SPLIT: usize = 32;
/// Beats each side in the local fit of unsteady stretches.
const FIT_HALF_WIDTH: usize = 3;
/// An attack further than this from the lines through its neighbours on
/// both sides is not the beat's attack.
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
pub fn attacks(env: &[i16], beats: &[f64]) -> Vec<Option<f64>> {
    if env.len() < 8 {
        return vec![None; beats.len()];
    }
    let fps = RATE as f64 / FINE_HOP as f64;
    let radius = (ATTACK_RADIUS_S * fps) as isize;
    // Before the start is silence.
    let at = |k: isize| if k < 0 { SILENCE } else { env[(k as usize).min(env.len() - 1)] as f32 / FINE_SCALE };
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
            let half = half_rise(floor, peak);
            let k = (best - RISE..=best).find(|&k| at(k) >= half)?;
            let (lo, hi) = (at(k - 1), at(k));
            let frac = if hi > lo { ((half - lo) / (hi - lo)).clamp(0.0, 1.0) } else { 0.0 };
            // Fine frame k covers [k, k + 1) fine hops; the crossing between
            // frames k - 1 and k is the attack's first sample.
            Some(((k - 1) as f64 + frac as f64 + 0.5).max(0.0) / fps)
        })
        .collect()
}

/// The level (ln energy) at which an attack from `floor` to `peak` is
/// timed: halfway in dB, but within 12 dB of the peak (ln energy: 2.76),
/// since over silence halfway would be down in a resampler's pre-ringing.
pub fn half_rise(floor: f32, peak: f32) -> f32 {
    (0.5 * (floor + peak)).max(peak - 2.76)
}

/// A steady section's beat-averaged attack is clean when its peak stands
/// this far above the most the average reaches before the beat (ln
/// energy: 12 dB). Drum machines, click tracks and kicks alone rise 12–83
/// dB; full mixes at most 10 dB (evaldev and its copies with the bass up,
/// low-passed, slowed, sped up, as MP3, with reverb), where the averaged
/// attack is smeared by the instruments' own spread and moved by a few ms
/// either way from one copy of a clip to the next: there the beats stay on
/// the per-beat attacks.
const CLEAN_RISE: f32 = 2.763;
/// Reach of the beat-averaged envelope either side of the beat, seconds.
const SETTLE_REACH_S: f64 = 0.03;
/// The averaged envelope's level before the beat is taken from 25 ms to
/// this long before it, seconds: the per-beat attacks of a rippling hit
/// are at most some 6 ms late.
const SETTLE_BEFORE_S: f64 = 0.009;
/// The averaged attack moves the section's beats when it is at least this
/// far from them (the two timings agree to 0.3 ms on a clean hit the
/// per-beat attacks get right), and at most `SETTLE_MAX_S`, seconds.
const SETTLE_MIN_S: f64 = 0.0005;
const SETTLE_MAX_S: f64 = 0.012;

/// Moves each steady section's beats onto the first rise of their
/// averaged attack, where that attack is clean (`CLEAN_RISE`). Beat by
/// beat, the steepest rise of a hit whose body ripples (a kick's sweep
/// from 150 down to 45 Hz peaks in energy every few milliseconds) can be
/// the second or third ripple's, and the same hit every beat puts the
/// whole line 1–6 ms late. Averaged over the section's beats, the
/// envelope is the hit's own shape, and the first time it comes halfway
/// (in dB, and within 12 dB of the peak, as `attacks`) from its level
/// before the beat to the peak of its first rise is the hit's first
/// sample. (On the synthetic test set's mixes the beats went from 0.4–5.7
/// ms late to −0.3..+1.2 ms; 808-style kicks alone at 88–158 BPM with
/// long tails from 0.0–2.9 to 0.0–0.8 ms.)
pub fn settle_clean_attacks(env: &[i16], grid: &mut Grid) {
    let fps = RATE as f64 / FINE_HOP as f64;
    let reach = (SETTLE_REACH_S * fps) as isize;
    let at = |k: isize| if k < 0 || k as usize >= env.len() { None } else { Some(env[k as usize] as f32 / FINE_SCALE) };
    // Index into the averaged envelope of `s` seconds from the beat.
    let index = |s: f64| ((s * fps).round() as isize + reach) as usize;
    for &(first, end, _) in &grid.sections {
        // The envelope around each beat, averaged, and the beats' mean
        // distance from the frames they are averaged at.
        let mut sum = vec![0.0f32; (2 * reach + 1) as usize];
        let (mut n, mut rounding) = (0usize, 0.0f64);
        for &b in &grid.beats[first..end] {
            let c = (b * fps).round() as isize;
            if let Some(window) = (c - reach..=c + reach).map(at).collect::<Option<Vec<f32>>>() {
                sum.iter_mut().zip(&window).for_each(|(s, v)| *s += v);
                n += 1;
                rounding += c as f64 / fps - b;
            }
        }
        if n < MIN_SECTION {
            continue;
        }
        let avg: Vec<f32> = sum.iter().map(|s| s / n as f32).collect();
        let from = index(-SETTLE_BEFORE_S);
        let before = avg[index(-0.025)..from].iter().copied().fold(f32::MIN, f32::max);
        let Some(top) = (from..=index(0.015)).max_by(|&x, &y| avg[x].total_cmp(&avg[y])) else {
            continue;
        };
        if avg[top] - before < CLEAN_RISE {
            continue;
        }
        let level = |peak: f32| half_rise(before, peak);
        let first_at = |level: f32| (from..=top).find(|&k| avg[k] >= level).unwrap_or(top);
        let peak_after = |k: usize| avg[k..=(k + 4).min(avg.len() - 1)].iter().copied().fold(f32::MIN, f32::max);
        // Halfway to the overall peak finds the first rise; halfway to
        // that rise's own peak (its next 2 ms) times it.
        let k = first_at(level(peak_after(first_at(level(avg[top])))));
        let half = level(peak_after(k));
        let (lo, hi) = (avg[k - 1], avg[k]);
        let frac = if hi > lo { ((half - lo) / (hi - lo)).clamp(0.0, 1.0) } else { 0.0 };
        // As in `attacks`: the crossing between frames k - 1 and k.
        let shift = ((k as isize - reach - 1) as f64 + frac as f64 + 0.5) / fps + rounding / n as f64;
        if (SETTLE_MIN_S..=SETTLE_MAX_S).contains(&shift.abs()) {
            grid.beats[first..end].iter_mut().for_each(|b| *b += shift);
        }
    }
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

/// Running sums over the beats' usable attacks t and their local fit s
/// (both against the beat number k), so that the least-squares line of
/// any run of beats and its residuals cost O(1).
struct Sums(Vec<[f64; 9]>);

impl Sums {
    fn new(points: &[Option<f64>], smooth: &[f64]) -> Sums {
        let mut acc = [0.0f64; 9];
        let mut v = vec![acc];
        for (k, p) in points.iter().enumerate() {
            if let Some(t) = *p {
                let (x, s) = (k as f64, smooth[k]);
                for (a, d) in acc.iter_mut().zip([1.0, x, t, x * x, x * t, t * t, s, x * s, s * s]) {
                    *a += d;
                }
            }
            v.push(acc);
        }
        Sums(v)
    }

    /// The line t = a + b·k through the attacks of beats [i, j), the sums
    /// of the squared residuals about it of the attacks and of their local
    /// fit, and how many attacks there were.
    fn line(&self, i: usize, j: usize) -> Option<Line> {
        let d: [f64; 9] = std::array::from_fn(|q| self.0[j][q] - self.0[i][q]);
        let [n, sx, sy, sxx, sxy, syy, ss, sxs, sss] = d;
        let det = n * sxx - sx * sx;
        if n < 3.0 || det.abs() < 1e-9 {
            return None;
        }
        let b = (n * sxy - sx * sy) / det;
        let a = (sy - b * sx) / n;
        let ssr = |y: f64, xy: f64, yy: f64| (yy - 2.0 * a * y - 2.0 * b * xy + n * a * a + 2.0 * a * b * sx + b * b * sxx).max(0.0);
        Some(Line { a, b, attacks_ssr: ssr(sy, sxy, syy), smooth_ssr: ssr(ss, sxs, sss), n })
    }
}

struct Line {
    a: f64,
    b: f64,
    attacks_ssr: f64,
    smooth_ssr: f64,
    n: f64,
}

/// Fits the grid to `tracked` beats with their `attacks` (see `attacks`).
///
/// The beats are split into runs, each a straight line through its
/// attacks, by the split that minimises the squared residuals plus a fixed
/// cost per run (an optimal partition by dynamic programming). The
/// residuals are those of the attacks' local fit (7 beats): the scatter of
/// single attacks averages out there, a drift or a change of tempo does
/// not. Attacks far off their local fit (a fill, a pushed chord) are left
/// out first. A run whose local fit still strays more than
/// `STEADY_RMS_S` (RMS) from its line is not steady: its beats stay on
/// their attacks, smoothed.
pub fn fit(tracked: &[f64], attacks: &[Option<f64>], onset: &[f32]) -> Grid {
    let n = tracked.len();
    let raw: Vec<f64> = (0..n).map(|k| attacks[k].unwrap_or(tracked[k])).collect();
    let smooth = local_fit(&raw);
    // An attack far off the lines through its neighbours on both sides
    // is something else (one side alone: it may be where the tempo
    // changes).
    let side = |k: usize, range: std::ops::Range<usize>| {
        line(range.filter(|&j| j != k).map(|j| (j as f64, raw[j]))).map_or(raw[k], |(a, b)| a + b * k as f64)
    };
    let points: Vec<Option<f64>> = (0..n)
        .map(|k| {
            let w = 2 * FIT_HALF_WIDTH;
            let (left, right) = (side(k, k.saturating_sub(w)..k), side(k, k + 1..(k + 1 + w).min(n)));
            attacks[k].filter(|a| (a - left).abs().min((a - right).abs()) <= LOOSE_TOL_S)
        })
        .collect();
    let sums = Sums::new(&points, &smooth);
    let sigma2 = SCATTER_S * SCATTER_S;
    // A beat without a usable attack costs one squared scatter.
    let missing = 1.0;
    let cost = |i: usize, j: usize| -> f64 {
        let len = (j - i) as f64;
        RUN_COST
            + match sums.line(i, j) {
                Some(l) => l.smooth_ssr / sigma2 + (len - l.n) * missing,
                None => len * missing,
            }
    };
    let mut best = vec![f64::INFINITY; n + 1];
    let mut from = vec![0usize; n + 1];
    best[0] = 0.0;
    for j in 1..=n {
        for i in j.saturating_sub(MAX_RUN)..j {
            // Short runs only at the ends (a pickup, a last beat or two).
            if j - i < MIN_SECTION && i != 0 && j != n {
                continue;
            }
            let c = best[i] + cost(i, j);
            if c < best[j] {
                best[j] = c;
                from[j] = i;
            }
        }
    }
    let mut runs = Vec::new();
    let mut j = n;
    while j > 0 {
        runs.push((from[j], j));
        j = from[j];
    }
    runs.reverse();
    // The local fit rounds a change of tempo off over a few beats: where
    // two runs meet is settled on the attacks themselves.
    let raw_ssr = |i: usize, j: usize| sums.line(i, j).map_or(0.0, |l| l.attacks_ssr);
    for r in 1..runs.len() {
        let ((i, b), (_, j)) = (runs[r - 1], runs[r]);
        let lo = (b.saturating_sub(BOUNDARY_SLACK)).max(i + 3);
        let hi = (b + BOUNDARY_SLACK).min(j.saturating_sub(3));
        if let Some(best) = (lo..=hi).min_by(|&x, &y| (raw_ssr(i, x) + raw_ssr(x, j)).total_cmp(&(raw_ssr(i, y) + raw_ssr(y, j)))) {
            runs[r - 1].1 = best;
            runs[r].0 = best;
        }
    }
    // A run the partition carried on into a stretch without a steady pulse
    // (a breakdown whose stray attacks the local fit spreads over its
    // neighbours) is split where the steady part of it ends: its longest
    // steady first and last stretches of `MIN_SPLIT` beats or more stand
    // on their own.
    let steady_line = |i: usize, j: usize| sums.line(i, j).filter(|l| j - i >= MIN_SECTION && (l.smooth_ssr / l.n).sqrt() <= STEADY_RMS_S);
    let is_steady = |i: usize, j: usize| steady_line(i, j).is_some();
    let runs: Vec<(usize, usize)> = runs
        .into_iter()
        .flat_map(|(i, j)| {
            if is_steady(i, j) {
                return vec![(i, j)];
            }
            let head = (i + MIN_SPLIT..j).rev().find(|&x| is_steady(i, x));
            let tail = (head.unwrap_or(i + 1)..=j.saturating_sub(MIN_SPLIT)).find(|&x| is_steady(x, j));
            let cuts: Vec<usize> = [Some(i), head, tail, Some(j)].into_iter().flatten().collect();
            cuts.windows(2).filter(|w| w[1] > w[0]).map(|w| (w[0], w[1])).collect()
        })
        .collect();
    let steady: Vec<Option<Line>> = runs.iter().map(|&(i, j)| steady_line(i, j)).collect();
    // Each beat on its attack, or on the local fit where it has none.
    let on_attacks: Vec<f64> = (0..n).map(|k| points[k].unwrap_or(smooth[k])).collect();
    let curve = local_curve(&on_attacks);
    let mut beats = Vec::with_capacity(n);
    let mut sections = Vec::new();
    for (r, &(i, j)) in runs.iter().enumerate() {
        match &steady[r] {
            Some(l) => {
                beats.extend((i..j).map(|k| l.a + l.b * k as f64));
                sections.push((i, j, l.b));
            }
            // Unsteady: on the attacks' local curve, which bends with the
            // music but not with the scatter of single attacks (some 8 ms)
            // — except within the curve's reach of a steady neighbour,
            // where it would round off the change of tempo between them:
            // there on the attacks (an attack far off the local fit was
            // something else, and the fit stands in).
            None => {
                let after_steady = r > 0 && steady[r - 1].is_some();
                let before_steady = steady.get(r + 1).is_some_and(|s| s.is_some());
                beats.extend((i..j).map(|k| {
                    let near = (after_steady && k < i + CURVE_HALF_WIDTH) || (before_steady && k + CURVE_HALF_WIDTH >= j);
                    if near {
                        on_attacks[k]
                    } else {
                        curve[k]
                    }
                }));
            }
        }
    }
    // Where runs meet, keep the beats in order.
    for k in 1..n {
        if beats[k] <= beats[k - 1] {
            beats[k] = beats[k - 1] + 1e-3;
        }
    }
    let (beats, sections) = bridge(&beats, &sections, onset);
    Grid { beats, sections }
}

/// Two steady sections this close in tempo (relative) may be one grid.
const BRIDGE_TEMPO: f64 = 0.01;
/// ...if the line of one meets the other within this share of a beat.
const BRIDGE_PHASE: f64 = 0.2;
/// ...unless the tracked beats between them are on onsets at least this
/// share of the sections' own (and stronger than the line's).
const BRIDGE_PULSE: f64 = 0.5;
/// Most sections a bridge crosses (a breakdown's inner runs; it bounds
/// the pairs tried on an hour-long mix of many sections).
const MAX_BRIDGED: usize = 16;

/// The grid through a stretch without a steady pulse between two steady
/// sections of one tempo whose lines meet (a breakdown without drums,
/// where the tracker's beats wander off or lose count): evenly spaced
/// beats from the one section to the other, as a DJ's grid runs on through
/// it — so the bars are counted on both sides alike. The stretch may hold
/// shorter "steady" sections of its own: a sustained chord's partials
/// beat against each other and make regular dips and rises the tracker
/// follows at some other rate. Those go where a longer pair on both sides
/// meets; the longest pairs are joined first. The stretch's tracked beats
/// stay where they are as many as the grid's and either within a fifth of
/// a beat of it (a band's own breathing) or on a pulse the line misses: on
/// onsets (`onset`, the analysis's onset function) at least as strong as
/// the line's, and at least half as strong as the sections' own (a live
/// band that slowed and caught up again; in a breakdown the tracked beats
/// find only stray attacks, weaker than the drums either side). Sections
/// are returned with their indices into the new beats.
fn bridge(beats: &[f64], sections: &[(usize, usize, f64)], onset: &[f32]) -> (Vec<f64>, Vec<(usize, usize, f64)>) {
    let strength = |v: &[f64]| Features::mean_accent(onset, v);
    let len = |s: usize| sections[s].1 - sections[s].0;
    // The evenly spaced beats strictly between the last beat of section
    // `m` and the first of `k`, where their tempos and lines meet.
    let line = |m: usize, k: usize| -> Option<Vec<f64>> {
        let ((_, end, before), (start, _, after)) = (sections[m], sections[k]);
        let (t0, t1) = (beats[end - 1], beats[start]);
        let p = 0.5 * (before + after);
        let n = ((t1 - t0) / p).round();
        let meets = (after / before - 1.0).abs() <= BRIDGE_TEMPO && (t1 - t0 - n * p).abs() <= BRIDGE_PHASE * p;
        (start > end && n >= 2.0 && meets).then(|| (1..n as usize).map(|q| t0 + (t1 - t0) / n * q as f64).collect())
    };
    // Which sections stay, joined by which lines: pairs by their shorter
    // section, longest first; a pair is joined where every section still
    // between them is shorter than both.
    let mut pairs: Vec<(usize, usize)> = (0..sections.len()).flat_map(|k| (k.saturating_sub(MAX_BRIDGED)..k).map(move |m| (m, k))).collect();
    pairs.sort_by_key(|&(m, k)| std::cmp::Reverse(len(m).min(len(k))));
    let mut kept = vec![true; sections.len()];
    let mut joined: Vec<Option<Vec<f64>>> = vec![None; sections.len()];
    for (m, k) in pairs {
        if !kept[m] || !kept[k] || joined[k].is_some() {
            continue;
        }
        let Some(grid) = line(m, k) else { continue };
        let between: Vec<usize> = (m + 1..k).filter(|&x| kept[x]).collect();
        if between.iter().any(|&x| len(x) >= len(m).min(len(k))) {
            continue;
        }
        let tracked = &beats[sections[m].1..sections[k].0];
        let p = 0.5 * (sections[m].2 + sections[k].2);
        let breathing = || grid.iter().zip(tracked).all(|(g, b)| (g - b).abs() <= BRIDGE_PHASE * p);
        let on_a_pulse = || {
            let (own, line) = (strength(tracked), strength(&grid));
            let sides = 0.5 * (strength(&beats[sections[m].0..sections[m].1]) + strength(&beats[sections[k].0..sections[k].1]));
            own > 0.0 && own >= line && own >= BRIDGE_PULSE * sides
        };
        let kept_count = grid.len() == tracked.len();
        if !(kept_count && (breathing() || on_a_pulse())) {
            between.iter().for_each(|&x| kept[x] = false);
            joined[k] = Some(grid);
        }
    }
    let mut out = Vec::with_capacity(beats.len());
    let mut out_sections = Vec::with_capacity(sections.len());
    // Old beats before `from` are in `out`; the rest follow unchanged.
    let mut from = 0;
    let mut last_end = 0;
    for (k, &(i, j, period)) in sections.iter().enumerate() {
        if !kept[k] {
            continue;
        }
        if let Some(grid) = joined[k].take() {
            out.extend_from_slice(&beats[from..last_end]);
            out.extend(grid);
            from = i;
        }
        let start = out.len() + (i - from);
        out_sections.push((start, start + (j - i), period));
        last_end = j;
    }
    out.extend_from_slice(&beats[from..]);
    (out, out_sections)
}

/// Beats each side in the local curve of unsteady stretches.
const CURVE_HALF_WIDTH: usize = 4;

/// For each beat, a quadratic fit (time against index) over its
/// neighbours, evaluated at the beat: a tempo that speeds up or slows down
/// bends a straight local fit by several ms (half the change of the beat
/// period across the window, times the window's spread in beats); a
/// quadratic follows it, and still averages out single beats' scatter
/// (to half its spread over 9 beats).
fn local_curve(beats: &[f64]) -> Vec<f64> {
    let n = beats.len();
    (0..n)
        .map(|i| {
            let (a, b) = (i.saturating_sub(CURVE_HALF_WIDTH), (i + CURVE_HALF_WIDTH + 1).min(n));
            // Normal equations of t = c0 + c1 x + c2 x² with x = j - i.
            let mut m = [[0.0f64; 4]; 3];
            for j in a..b {
                let x = j as f64 - i as f64;
                let p = [1.0, x, x * x];
                for r in 0..3 {
                    for c in 0..3 {
                        m[r][c] += p[r] * p[c];
                    }
                    m[r][3] += p[r] * (beats[j] - beats[i]);
                }
            }
            solve3(m).map_or(beats[i], |c| beats[i] + c[0])
        })
        .collect()
}

/// Solves a 3×3 linear system given as its augmented matrix (Gaussian
/// elimination with partial pivoting); `None` if singular.
fn solve3(mut m: [[f64; 4]; 3]) -> Option<[f64; 3]> {
    for col in 0..3 {
        let pivot = (col..3).max_by(|&x, &y| m[x][col].abs().total_cmp(&m[y][col].abs()))?;
        if m[pivot][col].abs() < 1e-9 {
            return None;
        }
        m.swap(col, pivot);
        for row in col + 1..3 {
            let (f, pivot_row) = (m[row][col] / m[col][col], m[col]);
            for (x, p) in m[row][col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= f * p;
            }
        }
    }
    let mut x = [0.0; 3];
    for row in (0..3).rev() {
        let s: f64 = (row + 1..3).map(|c| m[row][c] * x[c]).sum();
        x[row] = (m[row][3] - s) / m[row][row];
    }
    Some(x)
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
        let f = compute(&clicks(&truth, 31.0, 1000.0));
        // Tracked beats off by up to ±9 ms, as a frame-level tracker leaves them.
        let tracked: Vec<f64> = truth.iter().enumerate().map(|(k, t)| t + 0.009 * ((k * 7 % 5) as f64 - 2.0) / 2.0).collect();
        let g = fit(&tracked, &attacks(&f.fine, &tracked), &f.onset);
        assert_eq!(g.sections.len(), 1, "{:?}", g.sections);
        assert!((60.0 / g.sections[0].2 - 126.0).abs() < 0.01, "{}", 60.0 / g.sections[0].2);
        let offsets: Vec<f64> = g.beats.iter().zip(&truth).map(|(b, t)| (b - t) * 1000.0).collect();
        let spread = offsets.iter().cloned().fold(f64::MIN, f64::max) - offsets.iter().cloned().fold(f64::MAX, f64::min);
        assert!(spread < 0.2, "grid not regular: {spread} ms");
        assert!(offsets[0].abs() < 1.0, "grid phase off by {} ms", offsets[0]);
    }

    #[test]
    fn a_kick_whose_body_ripples_is_timed_at_its_first_sample() {
        // An 808-style kick, a sine sweeping from 200 to 45 Hz with a long
        // tail, at 158 BPM: each beat starts over the last one's tail, and
        // the steepest rise of its energy is a later ripple of its body.
        let period = 60.0 / 158.0;
        let truth: Vec<f64> = (0..150).map(|k| 0.4 + k as f64 * period).collect();
        let mut x = vec![0.0f32; (58.0 * RATE as f64) as usize];
        for &t in &truth {
            let s = (t * RATE as f64).ceil() as usize;
            let mut phase = 0.0f64;
            for (i, v) in x[s..].iter_mut().take((0.6 * RATE as f64) as usize).enumerate() {
                let ti = (i as f64 + s as f64 - t * RATE as f64) / RATE as f64;
                phase += std::f64::consts::TAU * (45.0 + 155.0 * (-ti / 0.02).exp()) / RATE as f64;
                *v += 0.5 * (phase.sin() * (-ti / 0.3).exp()) as f32;
            }
        }
        let f = compute(&x);
        // Tracked beats off by up to ±9 ms, as a frame-level tracker leaves them.
        let tracked: Vec<f64> = truth.iter().enumerate().map(|(k, t)| t + 0.009 * ((k * 7 % 5) as f64 - 2.0) / 2.0).collect();
        let mut g = fit(&tracked, &attacks(&f.fine, &tracked), &f.onset);
        let late = |g: &Grid| g.beats.iter().zip(&truth).map(|(b, t)| (b - t) * 1000.0).sum::<f64>() / truth.len() as f64;
        let per_beat = late(&g);
        settle_clean_attacks(&f.fine, &mut g);
        assert!(late(&g).abs() < 0.7, "{:.2} ms off, {per_beat:.2} ms by the per-beat attacks", late(&g));
    }

    #[test]
    fn a_tempo_change_makes_two_sections() {
        let mut truth: Vec<f64> = (0..40).map(|k| 0.5 + k as f64 * 0.5).collect();
        let last = *truth.last().unwrap();
        truth.extend((1..40).map(|k| last + k as f64 * 0.45));
        let f = compute(&clicks(&truth, 40.0, 2000.0));
        let g = fit(&truth, &attacks(&f.fine, &truth), &f.onset);
        assert_eq!(g.sections.len(), 2, "{:?}", g.sections);
        let errs: Vec<String> = g.beats.iter().zip(&truth).enumerate().filter(|(_, (b, t))| (*b - *t).abs() >= 0.002).map(|(k, (b, t))| format!("{k}:{:.1}", (b - t) * 1e3)).collect();
        assert!(errs.is_empty(), "{errs:?} {:?}", g.sections);
    }

    #[test]
    fn the_grid_runs_on_through_a_breakdown_that_lost_count() {
        // 100 beats at 120 BPM; beats 40..56 have no attack (a breakdown
        // without drums), and the tracker put 15 beats there, not 16.
        let truth: Vec<f64> = (0..100).map(|k| 0.5 + k as f64 * 0.5).collect();
        let heard: Vec<f64> = truth.iter().enumerate().filter(|(k, _)| !(40..56).contains(k)).map(|(_, t)| *t).collect();
        let f = compute(&clicks(&heard, 52.0, 1000.0));
        let step = (truth[56] - truth[39]) / 16.0;
        let tracked: Vec<f64> = truth[..40].iter().copied().chain((1..16).map(|m| truth[39] + step * m as f64)).chain(truth[56..].iter().copied()).collect();
        let g = fit(&tracked, &attacks(&f.fine, &tracked), &f.onset);
        assert_eq!(g.beats.len(), truth.len(), "{:?}", g.sections);
        let worst = g.beats.iter().zip(&truth).map(|(b, t)| (b - t).abs()).fold(0.0, f64::max);
        assert!(worst < 0.001, "worst {worst} s; sections {:?}", g.sections);
        assert!(g.sections.iter().all(|&(i, j, _)| j <= g.beats.len() && i < j), "{:?}", g.sections);
    }

    #[test]
    fn the_grid_runs_on_through_a_breakdown_where_the_tracker_wandered() {
        // As above, but the tracker kept count and wandered up to 0.3 of a
        // beat off through the silent bars: the line, not the wandering.
        let truth: Vec<f64> = (0..100).map(|k| 0.5 + k as f64 * 0.5).collect();
        let heard: Vec<f64> = truth.iter().enumerate().filter(|(k, _)| !(40..56).contains(k)).map(|(_, t)| *t).collect();
        let f = compute(&clicks(&heard, 52.0, 1000.0));
        let tracked: Vec<f64> = truth
            .iter()
            .enumerate()
            .map(|(k, t)| if (40..56).contains(&k) { t + 0.15 * (std::f64::consts::PI * (k - 39) as f64 / 17.0).sin() } else { *t })
            .collect();
        let g = fit(&tracked, &attacks(&f.fine, &tracked), &f.onset);
        let worst = g.beats.iter().zip(&truth).map(|(b, t)| (b - t).abs()).fold(0.0, f64::max);
        assert!(worst < 0.001, "worst {worst} s; sections {:?}", g.sections);
    }

    #[test]
    fn a_band_that_drifts_between_two_steady_stretches_keeps_its_beats() {
        // 30 beats at 120 BPM, 40 where the band slows and catches up again
        // (up to 0.3 of a beat behind the line), 30 back on the line: the
        // lines of both ends meet, but the middle is not where the line is.
        let truth: Vec<f64> = (0..100)
            .map(|k| {
                let drift = if (30..70).contains(&k) { 0.15 * (std::f64::consts::PI * (k - 30) as f64 / 40.0).sin() } else { 0.0 };
                0.5 + 0.5 * k as f64 + drift
            })
            .collect();
        let f = compute(&clicks(&truth, 52.0, 1000.0));
        let g = fit(&truth, &attacks(&f.fine, &truth), &f.onset);
        assert_eq!(g.beats.len(), truth.len(), "{:?}", g.sections);
        let worst = g.beats.iter().zip(&truth).map(|(b, t)| (b - t).abs()).fold(0.0, f64::max);
        // (The line is 150 ms off in the middle.)
        assert!(worst < 0.01, "worst {worst} s; sections {:?}", g.sections);
    }

    /// 80 beats of a tempo wandering ±4 % over a few bars: no line fits
    /// for long.
    fn wandering_pulse() -> Vec<f64> {
        let mut pulse = vec![0.5];
        for k in 1..80 {
            let period = 0.5 * (1.0 + 0.04 * (k as f64 / 6.0).sin());
            pulse.push(pulse[k - 1] + period);
        }
        pulse
    }

    #[test]
    fn a_wandering_pulse_is_not_called_steady() {
        // ±4 % over some 38 beats, as a band without a click breathes: the
        // beats follow it, but no stretch of it is one tempo.
        let pulse = wandering_pulse();
        let f = compute(&clicks(&pulse, 45.0, 1500.0));
        let g = fit(&pulse, &attacks(&f.fine, &pulse), &f.onset);
        assert!(g.steadiness() < 0.5, "steadiness {:.2}: {:?}", g.steadiness(), g.sections);
    }

    #[test]
    fn a_drifting_performance_keeps_its_beats() {
        let truth = wandering_pulse();
        let f = compute(&clicks(&truth, 45.0, 1500.0));
        let g = fit(&truth, &attacks(&f.fine, &truth), &f.onset);
        let worst = g.beats.iter().zip(&truth).map(|(b, t)| (b - t).abs()).fold(0.0, f64::max);
        // Within the steadiness tolerance where a line was fitted, on the
        // attacks' local curve elsewhere.
        assert!(worst < 0.007, "worst {worst} s; sections {:?}", g.sections);
    }

    #[test]
    fn a_drifting_performance_does_not_jitter_with_its_attacks() {
        // The same wandering tempo, each hit up to ±7 ms off the pulse (as
        // a drummer plays): the beats follow the pulse, not the hits.
        let pulse = wandering_pulse();
        let hits: Vec<f64> = pulse.iter().enumerate().map(|(k, t)| t + 0.007 * (((k * 37) % 11) as f64 / 5.0 - 1.0)).collect();
        let f = compute(&clicks(&hits, 45.0, 1500.0));
        let g = fit(&hits, &attacks(&f.fine, &hits), &f.onset);
        let rms = |x: &[f64]| (x.iter().zip(&pulse).map(|(b, t)| (b - t).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
        let (beats, scatter) = (rms(&g.beats), rms(&hits));
        assert!(beats < 0.5 * scatter, "beats {:.1} ms from the pulse, hits {:.1} ms; {:?}", beats * 1e3, scatter * 1e3, g.sections);
    }
}
