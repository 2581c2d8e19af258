//! Beat-tracking evaluation: the standard F-measure (as in mir_eval): beats
//! in the first 5 s are ignored, an estimate within ±70 ms of an annotation
//! is a hit, each annotation matches at most one estimate.

use std::path::Path;

pub const WINDOW_S: f64 = 0.07;
pub const SKIP_S: f64 = 5.0;

/// F-measure of `estimated` against `reference` (seconds, ascending).
pub fn f_measure(reference: &[f64], estimated: &[f64]) -> f64 {
    let r: Vec<f64> = reference.iter().copied().filter(|t| *t >= SKIP_S).collect();
    let e: Vec<f64> = estimated.iter().copied().filter(|t| *t >= SKIP_S).collect();
    if r.is_empty() && e.is_empty() {
        return 1.0;
    }
    if r.is_empty() || e.is_empty() {
        return 0.0;
    }
    // Both sequences are sorted and beats are far more than 2·WINDOW apart,
    // so a greedy two-pointer matching is the maximum matching.
    let (mut i, mut j, mut hits) = (0, 0, 0usize);
    while i < r.len() && j < e.len() {
        let d = e[j] - r[i];
        if d.abs() <= WINDOW_S {
            hits += 1;
            i += 1;
            j += 1;
        } else if d < 0.0 {
            j += 1;
        } else {
            i += 1;
        }
    }
    let p = hits as f64 / e.len() as f64;
    let rc = hits as f64 / r.len() as f64;
    if p + rc == 0.0 {
        0.0
    } else {
        2.0 * p * rc / (p + rc)
    }
}

/// Reads a `.beats` annotation: one beat time in seconds per line,
/// optionally followed by its position in the bar. Blank lines and `#`
/// comments are skipped. Errors name the line.
pub fn read_annotations(path: &Path) -> Result<Vec<f64>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut beats = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let first = line.split_whitespace().next().unwrap_or("");
        let t: f64 = first.parse().map_err(|_| format!("{}:{}: not a time in seconds: {first:?}", path.display(), n + 1))?;
        beats.push(t);
    }
    beats.sort_by(f64::total_cmp);
    Ok(beats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(start: f64, period: f64, n: usize) -> Vec<f64> {
        (0..n).map(|i| start + i as f64 * period).collect()
    }

    #[test]
    fn perfect_is_one_and_shifted_is_zero() {
        let r = grid(0.0, 0.5, 100);
        assert_eq!(f_measure(&r, &r), 1.0);
        let shifted: Vec<f64> = r.iter().map(|t| t + 0.08).collect();
        assert!(f_measure(&r, &shifted) < 0.01);
        let within: Vec<f64> = r.iter().map(|t| t + 0.06).collect();
        assert_eq!(f_measure(&r, &within), 1.0);
    }

    #[test]
    fn double_tempo_halves_precision() {
        let r = grid(0.0, 0.5, 100);
        let double = grid(0.0, 0.25, 200);
        let f = f_measure(&r, &double);
        assert!((f - 2.0 / 3.0).abs() < 0.01, "{f}");
    }

    #[test]
    fn first_five_seconds_are_ignored() {
        let r = grid(0.0, 0.5, 40);
        let mut e = r.clone();
        e.retain(|t| *t >= 5.0);
        assert_eq!(f_measure(&r, &e), 1.0);
    }
}
