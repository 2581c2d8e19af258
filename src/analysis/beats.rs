//! Beat tracking by dynamic programming (Ellis 2007), which follows tempo
//! drift: every frame's score is its onset strength plus the best score of
//! a predecessor between half and twice the period before it, penalised by
//! the squared log-ratio of that interval to the period. Backtracking from
//! the best final beat gives the beat sequence, trimmed to the audible
//! part. The frame-level beats (±12 ms) then go to [`super::grid`].

use super::features::FPS;

/// The onset function peaks where the analysis window's rising slope
/// (a quarter window before its centre) meets an attack: a quarter window
/// before the attack. Beat times are attack times.
pub const ONSET_LAG_S: f64 = super::features::N_FFT as f64 / 4.0 / super::features::RATE as f64;
/// Penalty weight on tempo deviation between consecutive beats: loose, to
/// see where the onsets lead at a candidate tempo (which level is the
/// beat), and tight, for the beats themselves (most music keeps its tempo,
/// and a loose tracker slips onto off-beats through a busy stretch).
pub const LOOSE: f64 = 100.0;
pub const TIGHT: f64 = 800.0;
/// Tracks beats in `onset` at about `bpm`; returns beat times in seconds.
/// `active` tells which frames are audible (beats elsewhere are dropped).
pub fn track(onset: &[f32], bpm: f64, active: &[bool], tightness: f64) -> Vec<f64> {
    track_periods(onset, &vec![60.0 * FPS / bpm; onset.len()], active, tightness)
}

/// Tracks beats in `onset` with the beat period (frames) given for every
/// frame (`tempo::local_periods`): an interval ending at frame t is
/// judged against the period at t.
pub fn track_periods(onset: &[f32], periods: &[f64], active: &[bool], tightness: f64) -> Vec<f64> {
    let n = onset.len().min(periods.len());
    if n < 4 {
        return Vec::new();
    }
    let (onset, periods) = (&onset[..n], &periods[..n]);
    let period = periods.iter().sum::<f64>() / n as f64;
    let longest = periods.iter().copied().fold(0.0f64, f64::max);
    // Local score: onset normalised by its spread, smoothed with a Gaussian
    // about a 32nd of the period wide (as librosa does).
    let mean = onset.iter().map(|v| *v as f64).sum::<f64>() / n as f64;
    let sd = (onset.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n as f64).sqrt().max(1e-9);
    let sigma = (period / 32.0).max(0.5);
    let half = (sigma * 4.0).ceil() as isize;
    let kernel: Vec<f64> = (-half..=half).map(|k| (-0.5 * (k as f64 / sigma).powi(2)).exp()).collect();
    let local: Vec<f64> = (0..n as isize)
        .map(|i| {
            let mut s = 0.0;
            for (j, w) in kernel.iter().enumerate() {
                let k = i + j as isize - half;
                if k >= 0 && (k as usize) < n {
                    s += w * onset[k as usize] as f64;
                }
            }
            s / sd
        })
        .collect();

    let hi = (longest * 2.0).round() as usize;
    let ln_d: Vec<f64> = (0..=hi).map(|d| (d.max(1) as f64).ln()).collect();
    let mut score = vec![0.0f64; n];
    let mut back = vec![usize::MAX; n];
    for t in 0..n {
        let mut best = 0.0;
        let mut arg = usize::MAX;
        let ln_p = periods[t].ln();
        let (lo_t, hi_t) = ((periods[t] / 2.0).round().max(1.0) as usize, (periods[t] * 2.0).round() as usize);
        for d in lo_t..=hi_t.min(t) {
            let s = score[t - d] - tightness * (ln_d[d] - ln_p).powi(2);
            if s > best {
                best = s;
                arg = t - d;
            }
        }
        score[t] = local[t] + best;
        back[t] = arg;
    }
    // The last beat: the best-scoring frame within the final period that is
    // a local maximum of the score.
    let tail = n.saturating_sub(period.ceil() as usize + 1);
    let mut end = (tail..n).max_by(|&a, &b| score[a].total_cmp(&score[b])).unwrap_or(n - 1);
    // Prefer the last frame of any audible music: walk back over silence.
    while end > 0 && !active.get(end).copied().unwrap_or(true) && back[end] != usize::MAX {
        end = back[end];
    }
    let mut frames = vec![end];
    while back[*frames.last().expect("non-empty")] != usize::MAX {
        let prev = back[*frames.last().expect("non-empty")];
        frames.push(prev);
    }
    frames.reverse();
    // Beats in silence are dropped at the ends only: a stop in the middle
    // (a beat or a bar of silence before a drop) keeps its beats, so the
    // bars are counted on through it.
    let audible = |f: &usize| active.get(*f).copied().unwrap_or(false);
    let (first, last) = (frames.iter().position(audible), frames.iter().rposition(audible));
    let mut frames: Vec<usize> = match (first, last) {
        (Some(a), Some(b)) => frames[a..=b].to_vec(),
        _ => Vec::new(),
    };
    // Trim weak beats at both ends (the tracker runs on through fades and
    // tails): below a tenth of the RMS onset strength of all beats.
    let rms = (frames.iter().map(|&f| local[f].powi(2)).sum::<f64>() / frames.len().max(1) as f64).sqrt();
    let strong = |f: &usize| local[*f] >= 0.1 * rms;
    let first = frames.iter().position(strong).unwrap_or(0);
    let last = frames.iter().rposition(strong).map(|i| i + 1).unwrap_or(frames.len());
    frames.truncate(last);
    frames.drain(..first.min(frames.len()));
    // Sub-frame: the peak of the local score near each beat frame, by
    // parabolic interpolation (a frame is 11.6 ms; this gets to a few).
    frames
        .iter()
        .map(|&f| {
            let peak = (f.saturating_sub(1)..=(f + 1).min(n - 1)).max_by(|&a, &b| local[a].total_cmp(&local[b])).unwrap_or(f);
            let offset = if peak > 0 && peak + 1 < n {
                let (a, b, c) = (local[peak - 1], local[peak], local[peak + 1]);
                let d = a - 2.0 * b + c;
                if d.abs() > 1e-12 { (0.5 * (a - c) / d).clamp(-0.5, 0.5) } else { 0.0 }
            } else {
                0.0
            };
            (peak as f64 + offset) / FPS + ONSET_LAG_S
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_a_click_train_through_silence_edges() {
        let n = (40.0 * FPS) as usize;
        let mut onset = vec![0.0f32; n];
        let mut active = vec![false; n];
        let period = 0.5;
        let mut truth = Vec::new();
        let mut t = 5.0;
        while t < 35.0 {
            onset[(t * FPS).round() as usize] = 1.0;
            truth.push(t);
            t += period;
        }
        for (i, a) in active.iter_mut().enumerate() {
            *a = (5.0 * FPS) as usize - 2 <= i && i <= (35.0 * FPS) as usize;
        }
        let beats = track(&onset, 120.0, &active, TIGHT);
        assert_eq!(beats.len(), truth.len(), "{beats:?}");
        for (b, t) in beats.iter().zip(&truth) {
            // The pulses stand for an onset function: its peaks come a
            // quarter window before the attacks.
            assert!((b - ONSET_LAG_S - t).abs() < 0.012, "{b} vs {t}");
        }
    }
}
