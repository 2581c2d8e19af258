//! Bar position. Each beat gets an accent: its low-band onset (kicks and
//! bass notes land on downbeats) plus the harmonic change into it (chords
//! change on bar lines), both standardised. For each meter (4, then 3) and
//! phase, the contrast between the accents of beats at that phase and all
//! others is the evidence; 3/4 is chosen only where it clearly beats 4/4.

use super::features::{Features, FPS};

#[derive(Debug, Clone, PartialEq)]
pub struct Bars {
    /// Beats per bar (4, or 3 where clearly so).
    pub meter: u8,
    /// Index (into the beats) of the first downbeat.
    pub phase: usize,
    /// Contrast of the chosen meter and phase, in standard deviations.
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

fn chroma_between(f: &Features, a: f64, b: f64) -> [f32; 12] {
    let (i, j) = (Features::frame_at(a), Features::frame_at(b).min(f.chroma.len()));
    let mut c = [0.0f32; 12];
    for frame in &f.chroma[i.min(j)..j] {
        for k in 0..12 {
            c[k] += frame[k];
        }
    }
    c
}

fn cosine_distance(a: &[f32; 12], b: &[f32; 12]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| (*x * *y) as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    if na < 1e-9 || nb < 1e-9 {
        0.0
    } else {
        1.0 - dot / (na * nb)
    }
}

/// Per-beat accent: standardised low onset plus standardised harmonic change.
fn accents(f: &Features, beats: &[f64]) -> Vec<f64> {
    let n = beats.len();
    let mut low: Vec<f64> = beats
        .iter()
        .map(|&t| {
            let c = Features::frame_at(t);
            (c.saturating_sub(2)..(c + 3).min(f.low_onset.len())).map(|i| f.low_onset[i] as f64).fold(0.0, f64::max)
        })
        .collect();
    let spans: Vec<[f32; 12]> = (0..n)
        .map(|i| {
            let end = if i + 1 < n { beats[i + 1] } else { beats[i] + 60.0 / FPS };
            chroma_between(f, beats[i], end)
        })
        .collect();
    let mut change: Vec<f64> = (0..n).map(|i| if i == 0 { 0.0 } else { cosine_distance(&spans[i - 1], &spans[i]) }).collect();
    standardise(&mut low);
    standardise(&mut change);
    low.iter().zip(&change).map(|(a, b)| a + b).collect()
}

fn contrast(acc: &[f64], meter: usize, phase: usize) -> f64 {
    let (mut on, mut n_on, mut off, mut n_off) = (0.0, 0.0, 0.0, 0.0);
    for (i, a) in acc.iter().enumerate() {
        if i % meter == phase {
            on += a;
            n_on += 1.0;
        } else {
            off += a;
            n_off += 1.0;
        }
    }
    if n_on == 0.0 || n_off == 0.0 {
        return 0.0;
    }
    on / n_on - off / n_off
}

/// Finds meter and downbeat phase for `beats`.
pub fn estimate(f: &Features, beats: &[f64]) -> Bars {
    if beats.len() < 8 {
        return Bars { meter: 4, phase: 0, confidence: 0.0 };
    }
    let acc = accents(f, beats);
    let best = |meter: usize| {
        (0..meter)
            .map(|p| (p, contrast(&acc, meter, p)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .expect("meter > 0")
    };
    let (p4, c4) = best(4);
    let (p3, c3) = best(3);
    if c3 > c4 * 1.3 && c3 > 0.8 {
        Bars { meter: 3, phase: p3, confidence: c3 }
    } else {
        Bars { meter: 4, phase: p4, confidence: c4 }
    }
}
