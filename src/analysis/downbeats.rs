//! Bar position and meter, from the whole track. Each beat gets the
//! kick-band accent (the onset below 150 Hz at the beat: kick drums and
//! bass notes land on the one); for each meter (4, then 3) and phase, the
//! mean accent of the beats at that phase against the others', over every
//! bar of the track. 3/4 is chosen only where it clearly beats 4/4.
//!
//! Tried on real recordings with annotated downbeats, the snare's backbeat
//! and the chroma change across bar lines added nothing to this: the first
//! is as strong on 1 and 3 as on 2 and 4 once hi-hats and voices share its
//! band, the second changes on half bars as often as on bar lines.

use super::beats::ONSET_LAG_S;
use super::features::Features;

#[derive(Debug, Clone, PartialEq)]
pub struct Bars {
    /// Beats per bar (4, or 3 where clearly so).
    pub meter: u8,
    /// Index (into the beats) of the first downbeat.
    pub phase: usize,
    /// How much more accent the chosen phase carries than the others,
    /// in standard deviations.
    pub confidence: f64,
}

fn standardise(v: &mut [f64]) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    for x in v.iter_mut() {
        *x = if sd > 1e-12 { (*x - mean) / sd } else { 0.0 };
    }
}

/// The standardised kick-band accent of each beat.
fn low_accents(f: &Features, beats: &[f64]) -> Vec<f64> {
    let mut low: Vec<f64> = beats
        .iter()
        .map(|&t| {
            // Beats are attack times; the onset function peaks a little before.
            let c = Features::frame_at((t - ONSET_LAG_S).max(0.0));
            (c.saturating_sub(2)..(c + 3).min(f.low_onset.len())).map(|i| f.low_onset[i] as f64).fold(0.0, f64::max)
        })
        .collect();
    standardise(&mut low);
    low
}

/// Finds meter and downbeat phase for `beats`.
pub fn estimate(f: &Features, beats: &[f64]) -> Bars {
    if beats.len() < 8 {
        return Bars { meter: 4, phase: 0, confidence: 0.0 };
    }
    let low = low_accents(f, beats);
    // For each meter: the phase whose beats carry the most, and by how much.
    let best = |meter: usize| {
        let on = |p: usize| {
            let v: Vec<f64> = (p..low.len()).step_by(meter).map(|i| low[i]).collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        };
        let mut s: Vec<(usize, f64)> = (0..meter).map(|p| (p, on(p))).collect();
        s.sort_by(|x, y| y.1.total_cmp(&x.1));
        let rest = s[1..].iter().map(|x| x.1).sum::<f64>() / (meter - 1) as f64;
        (s[0].0, s[0].1 - rest)
    };
    let (p4, c4) = best(4);
    let (p3, c3) = best(3);
    if c3 > 1.3 * c4 && c3 > 0.8 {
        Bars { meter: 3, phase: p3, confidence: c3 }
    } else {
        Bars { meter: 4, phase: p4, confidence: c4 }
    }
}
