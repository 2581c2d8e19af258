//! Renders a planned transition from two decoded tracks (interleaved stereo
//! at the station rate): A as it is, B time-stretched beat by beat onto A's
//! beats (Signalsmith Stretch: pitch preserved) and then gliding to its own
//! tempo, an equal-power crossfade on the high band, a bass swap on a
//! downbeat in the middle of the overlap, loudness gains, and a look-ahead
//! limiter on the sum.

use ssstretch::Stretch;

use super::align::{self, Alignment};
use super::dsp::{limit, BandSplit};
use super::plan::{Mode, Plan, TransitionSettings};
use crate::units::SampleRate;

/// Crossover of the bass swap.
const BASS_HZ: f32 = 200.0;
/// The largest shift of B that the measured alignment may apply, seconds.
const MAX_CORRECTION_S: f64 = 0.015;
/// Lags smaller than this are left alone, seconds.
const MIN_CORRECTION_S: f64 = 0.00025;
/// Limiter look-ahead and release.
const LIMIT_LOOKAHEAD_S: f64 = 0.005;
const LIMIT_RELEASE_S: f64 = 0.15;

/// A rendered transition.
pub struct Rendered {
    /// The mix, interleaved stereo.
    pub pcm: Vec<f32>,
    /// A and B alone, as placed in the mix (gained, stretched, faded, before
    /// the limiter): for measuring; empty unless asked for.
    pub a_part: Vec<f32>,
    pub b_part: Vec<f32>,
    /// Output frames where the overlap starts and ends.
    pub overlap_start: usize,
    pub overlap_end: usize,
    /// A's time (seconds) at output frame 0.
    pub a_offset_s: f64,
    /// B's source frame that follows the render's last frame: where B
    /// continues at its own speed.
    pub b_next_frame: usize,
    /// A beatmatched render's alignment, measured from the audio of A and
    /// stretched B through the overlap (see `align`).
    pub alignment: Option<Alignment>,
}

fn frame(t: f64, rate: SampleRate) -> usize {
    (t * rate.0 as f64).round().max(0.0) as usize
}

/// Planar copy of frames [start, start + n) of interleaved stereo, zero
/// outside the buffer (before its start or past its end).
fn planar(x: &[f32], start: isize, n: usize) -> [Vec<f32>; 2] {
    let mut out = [vec![0.0; n], vec![0.0; n]];
    let [left, right] = &mut out;
    for (i, (l, r)) in left.iter_mut().zip(right.iter_mut()).enumerate() {
        let f = start + i as isize;
        if f >= 0 && (f as usize) * 2 + 1 < x.len() {
            *l = x[f as usize * 2];
            *r = x[f as usize * 2 + 1];
        }
    }
    out
}

/// B through the stretcher: each (source start, source end, output frames)
/// segment in turn, output aligned so that each segment's first source
/// frame comes out at the segment's first output frame.
///
/// The stretcher's output reflects its input `input_latency` frames ago
/// and appears `output_latency` frames late: so the input is fed that far
/// ahead of the segment it belongs to, and the output's first
/// `output_latency` frames are dropped.
fn stretch_segments(b: &[f32], segments: &[(usize, usize, usize)], rate: SampleRate, first_speed: f64, out: &mut [f32]) {
    let mut st = Stretch::new();
    st.preset_default(2, rate.0 as f32);
    let in_lat = st.input_latency().max(0) as usize;
    let out_lat = st.output_latency().max(0) as usize;
    let Some(&(s0, _, _)) = segments.first() else { return };
    // Pre-roll: the input up to where feeding starts (in_lat ahead of s0).
    let pre = planar(b, s0 as isize, in_lat);
    st.seek_vec(&pre, in_lat as i32, first_speed);
    let mut outbuf = [Vec::new(), Vec::new()];
    // Output frame `pos` (counting the latency) goes to out[pos - out_lat].
    let mut pos = 0usize;
    let mut push = |outbuf: &[Vec<f32>; 2], n: usize| {
        for (i, (l, r)) in outbuf[0][..n].iter().zip(&outbuf[1][..n]).enumerate() {
            if let Some(k) = (pos + i).checked_sub(out_lat) {
                if k * 2 + 1 < out.len() {
                    out[k * 2] = *l;
                    out[k * 2 + 1] = *r;
                }
            }
        }
        pos += n;
    };
    for &(src_start, src_end, n_out) in segments {
        let n_in = src_end - src_start;
        let input = planar(b, (src_start + in_lat) as isize, n_in);
        st.process_vec(&input, n_in as i32, &mut outbuf, n_out as i32);
        push(&outbuf, n_out);
    }
    // Run on past the end at the last speed to cover the output latency.
    if let Some(&(src_start, src_end, n_out)) = segments.last() {
        let speed = (src_end - src_start) as f64 / n_out.max(1) as f64;
        let n_in = (out_lat as f64 * speed).round() as usize;
        let input = planar(b, (src_end + in_lat) as isize, n_in);
        st.process_vec(&input, n_in as i32, &mut outbuf, out_lat as i32);
        push(&outbuf, out_lat);
    }
}

/// Seconds of the short-term loudness window (EBU R128 "S").
const SHORT_TERM_S: f64 = 3.0;
/// Largest loudness correction through the overlap, dB.
const MAX_LEVEL_DB: f32 = 6.0;

/// Short-term loudness (LUFS) of the 3 s ending at each multiple of `step`
/// frames, for every step whose window lies in the buffer.
fn short_term(pcm: &[f32], rate: SampleRate, step: usize) -> Vec<(usize, f64)> {
    let mut meter = ebur128::EbuR128::new(2, rate.0, ebur128::Mode::S).expect("valid meter settings");
    let window = frame(SHORT_TERM_S, rate);
    let n = pcm.len() / 2;
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + step <= n {
        let _ = meter.add_frames_f32(&pcm[pos * 2..(pos + step) * 2]);
        pos += step;
        if pos >= window {
            out.push((pos, meter.loudness_shortterm().unwrap_or(-70.0).max(-70.0)));
        }
    }
    out
}

/// Keeps the mix's short-term loudness on a straight line (in LU) from
/// where the overlap starts to where it ends, correcting by at most ±6 dB:
/// sections of different density (an intro under an outro) would
/// otherwise make the hand-over dip or swell.
fn level_overlap(pcm: &mut [f32], ov_start: usize, ov_end: usize, rate: SampleRate) {
    let step = frame(0.1, rate);
    let half = frame(SHORT_TERM_S / 2.0, rate);
    let st = short_term(pcm, rate, step);
    // Loudness centred on frame f (window [f − 1.5 s, f + 1.5 s]).
    let at = |f: usize| st.iter().min_by_key(|(end, _)| end.abs_diff(f + half)).map(|(_, l)| *l);
    let (Some(before), Some(after)) = (at(ov_start.saturating_sub(half)), at(ov_end + half)) else { return };
    if before < -60.0 || after < -60.0 || ov_end <= ov_start {
        return;
    }
    // Correction in dB at each step centre inside the overlap.
    let points: Vec<(usize, f32)> = st
        .iter()
        .filter_map(|&(end, l)| {
            let centre = end.checked_sub(half)?;
            (ov_start..=ov_end).contains(&centre).then(|| {
                let x = (centre - ov_start) as f64 / (ov_end - ov_start) as f64;
                let target = before + (after - before) * x;
                (centre, ((target - l) as f32).clamp(-MAX_LEVEL_DB, MAX_LEVEL_DB))
            })
        })
        .collect();
    if points.is_empty() {
        return;
    }
    // Piecewise-linear gain through the points, easing to 0 dB at both ends.
    let mut knots = vec![(ov_start, 0.0f32)];
    knots.extend(points);
    knots.push((ov_end, 0.0));
    for w in knots.windows(2) {
        let ((f0, d0), (f1, d1)) = (w[0], w[1]);
        for f in f0..f1.min(pcm.len() / 2) {
            let x = (f - f0) as f32 / (f1 - f0).max(1) as f32;
            let g = 10f32.powf((d0 + (d1 - d0) * x) / 20.0);
            pcm[f * 2] *= g;
            pcm[f * 2 + 1] *= g;
        }
    }
}

/// Renders `plan` from `pre_s` seconds before the overlap to `post_s`
/// seconds after it. `keep_parts` keeps A and B as placed in the mix, for
/// measuring (it triples the memory a render takes).
///
/// Memory: besides the inputs, one buffer of the output's length. B is
/// stretched straight into it, A is mixed in place, the band split runs
/// sample by sample, and the limiter keeps only its look-ahead.
#[allow(clippy::too_many_arguments)]
pub fn render(
    a: &[f32],
    b: &[f32],
    plan: &Plan,
    s: &TransitionSettings,
    rate: SampleRate,
    pre_s: f64,
    post_s: f64,
    keep_parts: bool,
) -> Rendered {
    render_into(Vec::new(), a, b, plan, s, rate, pre_s, post_s, keep_parts)
}

/// `render` into `recycled`'s allocation (its contents are discarded): a
/// caller that renders transition after transition keeps one output
/// buffer instead of allocating and freeing tens of megabytes each time.
#[allow(clippy::too_many_arguments)]
pub fn render_into(
    recycled: Vec<f32>,
    a: &[f32],
    b: &[f32],
    plan: &Plan,
    s: &TransitionSettings,
    rate: SampleRate,
    pre_s: f64,
    post_s: f64,
    keep_parts: bool,
) -> Rendered {
    let a_offset_s = (plan.a_out_s - pre_s).max(0.0);
    let a0 = frame(a_offset_s, rate);
    let ov_start = frame(plan.a_out_s, rate) - a0;
    let ov_end = frame(plan.a_end_s, rate) - a0;
    let total = ov_end + frame(post_s, rate);
    let a_gain = 10f32.powf(plan.a_gain_db as f32 / 20.0);
    let b_gain = 10f32.powf(plan.b_gain_db as f32 / 20.0);

    // B, from the start of the overlap on, into the output buffer; a
    // beatmatched B gets `spare` frames more, to be shifted by up to that
    // much once its alignment is measured.
    let spare = match plan.mode {
        Mode::Beatmatched => frame(MAX_CORRECTION_S, rate),
        Mode::Crossfade => 0,
    };
    let mut pcm = recycled;
    pcm.clear();
    pcm.reserve_exact((total + spare) * 2);
    pcm.resize((total + spare) * 2, 0.0);
    let b_next_frame;
    match plan.mode {
        Mode::Beatmatched => {
            let mut segments = Vec::new();
            for (ab, bb) in plan.a_beats.windows(2).zip(plan.b_beats.windows(2)) {
                let n_out = frame(ab[1], rate) - frame(ab[0], rate);
                segments.push((frame(bb[0], rate), frame(bb[1], rate), n_out));
            }
            // The glide: beat lengths move from A's tempo to B's own.
            let g = plan.b_glide_beats.len().saturating_sub(1);
            for (k, w) in plan.b_glide_beats.windows(2).enumerate() {
                let speed = plan.stretch_ratio + (1.0 - plan.stretch_ratio) * (k as f64 + 0.5) / g as f64;
                let (s0, s1) = (frame(w[0], rate), frame(w[1], rate));
                segments.push((s0, s1, ((s1 - s0) as f64 / speed).round() as usize));
            }
            // Then B's own tempo to the end of the render.
            let mut pos = segments.last().map(|s| s.1).unwrap_or(frame(plan.b_in_s, rate));
            let done: usize = segments.iter().map(|s| s.2).sum();
            let mut left = (total + spare - ov_start).saturating_sub(done);
            while left > 0 {
                let n = left.min(4096);
                segments.push((pos, pos + n, n));
                pos += n;
                left -= n;
            }
            // The source frame at output frame `total` (B is at its own speed there).
            b_next_frame = pos - spare;
            stretch_segments(b, &segments, rate, plan.stretch_ratio, &mut pcm[ov_start * 2..]);
        }
        Mode::Crossfade => {
            // B may hold less than planned (a read error, a file replaced
            // after analysis): what is missing is silence.
            let b0 = frame(plan.b_in_s, rate).min(b.len() / 2);
            let n = (total - ov_start).min(b.len() / 2 - b0);
            b_next_frame = b0 + n;
            pcm[ov_start * 2..(ov_start + n) * 2].copy_from_slice(&b[b0 * 2..(b0 + n) * 2]);
        }
    }

    // Before A joins it: how B's attacks sit on A's through the overlap.
    // A consistent lag (the stretcher smears some attacks late, an attack
    // may have been timed a little off) is taken out by shifting B, and
    // the result measured again.
    let mut b_next_frame = b_next_frame;
    let alignment = match plan.mode {
        Mode::Beatmatched => {
            let n = ov_end - ov_start;
            let start_s = (a0 + ov_start) as f64 / rate.0 as f64;
            // On the beats both tracks play: where B's beats were split in
            // two to meet A's tempo, only every other one of A's beats has
            // one of B's on it; where B is counted at twice A's tempo, B
            // has beats of its own between A's.
            let (a_per_b, b_per_beat) = plan.beat_ratio();
            let grid: Vec<f64> = plan.a_beats.iter().step_by(a_per_b).map(|t| t - start_s).collect();
            let env_a = align::log_energy(a, a0 + ov_start, n, rate);
            let measure = |pcm: &[f32]| align::measure(&env_a, &align::log_energy(pcm, ov_start, n, rate), &grid, b_per_beat);
            let first = measure(&pcm);
            match first.and_then(|m| m.correction_ms()) {
                Some(lag_ms) if (MIN_CORRECTION_S * 1000.0..=MAX_CORRECTION_S * 1000.0).contains(&lag_ms.abs()) => {
                    let d = frame(lag_ms.abs() / 1000.0, rate).min(spare);
                    let b_region = &mut pcm[ov_start * 2..];
                    if lag_ms > 0.0 {
                        // B late: everything d frames earlier.
                        b_region.copy_within(d * 2.., 0);
                        b_next_frame += d;
                    } else {
                        // B early: everything d frames later.
                        let len = b_region.len();
                        b_region.copy_within(..len - d * 2, d * 2);
                        b_region[..d * 2].fill(0.0);
                        b_next_frame -= d;
                    }
                    measure(&pcm).map(|m| Alignment { corrected_ms: lag_ms, ..m })
                }
                _ => first,
            }
        }
        Mode::Crossfade => None,
    };
    pcm.truncate(total * 2);

    // A, up to the end of the overlap, mixed in with the envelopes.
    let a_at = |i: usize| -> [f32; 2] {
        let f = a0 + i;
        if i < ov_end && f * 2 + 1 < a.len() {
            [a[f * 2], a[f * 2 + 1]]
        } else {
            [0.0, 0.0]
        }
    };
    let mut parts = keep_parts.then(|| (vec![0.0f32; total * 2], vec![0.0f32; total * 2]));
    let len = (ov_end - ov_start).max(1);
    let fade = |i: usize| ((i.saturating_sub(ov_start)) as f32 / len as f32).clamp(0.0, 1.0) * std::f32::consts::FRAC_PI_2;
    match plan.mode {
        Mode::Beatmatched => {
            // Bass swap on the plan's downbeat, ramped over one beat: each
            // part is split into its low band (a Linkwitz–Riley low-pass)
            // and the rest, sample by sample.
            let middle = (plan.a_out_s + plan.a_end_s) / 2.0;
            let swap = frame(plan.bass_swap_s.unwrap_or(middle), rate).saturating_sub(a0);
            let beat = (frame(plan.a_beats[1], rate) - frame(plan.a_beats[0], rate)).max(1);
            let mut split_a = [BandSplit::new(rate.0, BASS_HZ), BandSplit::new(rate.0, BASS_HZ)];
            let mut split_b = [BandSplit::new(rate.0, BASS_HZ), BandSplit::new(rate.0, BASS_HZ)];
            for i in 0..total {
                let x = fade(i);
                let bass_in = ((i as f32 - swap as f32) / beat as f32).clamp(0.0, 1.0);
                let (ga_hi, gb_hi) = (x.cos(), x.sin());
                let av = a_at(i);
                for c in 0..2 {
                    let j = i * 2 + c;
                    let (a_low, a_high) = split_a[c].run(av[c]);
                    let (b_low, b_high) = split_b[c].run(pcm[j]);
                    let a = (a_high * ga_hi + a_low * (1.0 - bass_in)) * a_gain;
                    let b = (b_high * gb_hi + b_low * bass_in) * b_gain;
                    if let Some((pa, pb)) = &mut parts {
                        pa[j] = a;
                        pb[j] = b;
                    }
                    pcm[j] = a + b;
                }
            }
        }
        Mode::Crossfade => {
            for i in 0..total {
                let x = fade(i);
                for (c, a_in) in a_at(i).into_iter().enumerate() {
                    let j = i * 2 + c;
                    let a = a_in * x.cos() * a_gain;
                    let b = pcm[j] * x.sin() * b_gain;
                    if let Some((pa, pb)) = &mut parts {
                        pa[j] = a;
                        pb[j] = b;
                    }
                    pcm[j] = a + b;
                }
            }
        }
    }
    level_overlap(&mut pcm, ov_start, ov_end, rate);
    // 0.1 dB below the ceiling: our 4× true-peak estimate can read a little
    // under a BS.1770 meter's.
    let ceiling = 10f32.powf((s.ceiling_db as f32 - 0.1) / 20.0);
    limit(&mut pcm, ceiling, frame(LIMIT_LOOKAHEAD_S, rate), frame(LIMIT_RELEASE_S, rate));
    let (a_part, b_part) = parts.unwrap_or_default();
    Rendered { pcm, a_part, b_part, overlap_start: ov_start, overlap_end: ov_end, a_offset_s, b_next_frame, alignment }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clicks every 0.5 s through the stretcher at `speed`: where do they land?
    fn click_offsets(speed: f64) -> Vec<f64> {
        let rate = SampleRate::CD;
        let n = 44_100 * 12;
        let mut b = vec![0.0f32; n * 2];
        let clicks: Vec<usize> = (1..22).map(|k| k * 22_050).collect();
        for &c in &clicks {
            for i in 0..60 {
                let v = (1.0 - i as f32 / 60.0) * if i % 2 == 0 { 0.8 } else { -0.8 };
                b[(c + i) * 2] = v;
                b[(c + i) * 2 + 1] = v;
            }
        }
        // Beat-wise segments from click 2 on, each stretched by 1/speed.
        let segs: Vec<(usize, usize, usize)> =
            clicks[2..18].windows(2).map(|w| (w[0], w[1], ((w[1] - w[0]) as f64 / speed).round() as usize)).collect();
        let mut out = vec![0.0f32; segs.iter().map(|s| s.2).sum::<usize>() * 2];
        stretch_segments(&b, &segs, rate, speed, &mut out);
        let env: Vec<f32> = out.iter().step_by(2).map(|v| v.abs()).collect();
        let mut expected = 0usize;
        segs.iter()
            .map(|s| {
                let e = expected;
                expected += s.2;
                let lo = e.saturating_sub(4000);
                let hi = (e + 4000).min(env.len());
                let peak = (lo..hi).max_by(|&a, &b| env[a].total_cmp(&env[b])).unwrap();
                (peak as f64 - e as f64) / 44.1
            })
            .collect()
    }

    #[test]
    fn stretched_clicks_land_where_planned() {
        // Within a millisecond at speeds 0.95, 1 and 1.05.
        for speed in [1.0, 0.95, 1.05] {
            let offs = click_offsets(speed);
            println!("speed {speed}: offsets ms {offs:.1?}");
            assert!(offs.iter().all(|o| o.abs() <= 1.0), "speed {speed}: {offs:?}");
        }
    }
}
