//! Evaluation against annotations, by the usual conventions (mir_eval,
//! MIREX): beat and downbeat F-measure (beats in the first 5 s ignored, an
//! estimate within ±70 ms of an annotation is a hit, each annotation
//! matches at most one estimate); tempo Acc1 (within 4 %) and Acc2 (within
//! 4 % of ½, ⅓, 1, 2 or 3 times the reference); the weighted key score (1
//! same key, 0.5 a fifth apart in the same mode, 0.3 relative, 0.2
//! parallel, else 0).

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

/// Timing of `estimated` against `reference` beyond the F-measure's
/// ±70 ms: the median signed offset (estimate − annotation, ms) of the
/// beats it matches, and the share of annotations (after `SKIP_S`) with an
/// estimate within 20 ms. A transition lines two tracks' beats up, so a
/// clip's offset is what it brings into every pair it is in. `None` when
/// nothing matches.
/// The one of `times` nearest to `t` (the first of equals); None for none.
pub fn nearest(times: &[f64], t: f64) -> Option<f64> {
    times.iter().copied().min_by(|x, y| (x - t).abs().total_cmp(&(y - t).abs()))
}

pub fn timing(reference: &[f64], estimated: &[f64]) -> Option<(f64, f64)> {
    let r: Vec<f64> = reference.iter().copied().filter(|t| *t >= SKIP_S).collect();
    let mut offsets: Vec<f64> = r
        .iter()
        .filter_map(|t| nearest(estimated, *t).map(|e| e - t))
        .filter(|d| d.abs() <= WINDOW_S)
        .map(|d| d * 1000.0)
        .collect();
    if offsets.is_empty() {
        return None;
    }
    let within = offsets.iter().filter(|d| d.abs() <= 20.0).count() as f64 / r.len() as f64;
    offsets.sort_by(f64::total_cmp);
    Some((offsets[offsets.len() / 2], within))
}

/// Reads a `.beats` annotation: one beat time in seconds per line,
/// optionally followed by its position in the bar. Blank lines and `#`
/// comments are skipped. Errors name the line.
pub fn read_annotations(path: &Path) -> Result<Vec<f64>, String> {
    read_beats(path).map(|b| b.beats)
}

/// Annotated beats and, where bar positions are given, downbeats (position 1).
#[derive(Debug, Clone, Default)]
pub struct AnnotatedBeats {
    pub beats: Vec<f64>,
    /// Empty when the file gives no bar positions.
    pub downbeats: Vec<f64>,
}

pub fn read_beats(path: &Path) -> Result<AnnotatedBeats, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = AnnotatedBeats::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        let t: f64 = first.parse().map_err(|_| format!("{}:{}: not a time in seconds: {first:?}", path.display(), n + 1))?;
        out.beats.push(t);
        if fields.next().and_then(|p| p.parse::<f64>().ok()).is_some_and(|p| p == 1.0) {
            out.downbeats.push(t);
        }
    }
    out.beats.sort_by(f64::total_cmp);
    out.downbeats.sort_by(f64::total_cmp);
    Ok(out)
}

/// Tempo accuracy: (Acc1, Acc2) of `estimate` against `reference` BPM.
pub fn tempo_accuracy(estimate: f64, reference: f64) -> (bool, bool) {
    let close = |r: f64| (estimate / r - 1.0).abs() <= 0.04;
    (close(reference), [1.0 / 3.0, 0.5, 1.0, 2.0, 3.0].iter().any(|m| close(reference * m)))
}

/// A key name ("A minor", "F# major", "Bb minor", "a:min") as (tonic
/// pitch class, minor).
pub fn parse_key(name: &str) -> Option<(u8, bool)> {
    let name = name.trim().replace(':', " ");
    let mut parts = name.split_whitespace();
    let tonic = parts.next()?;
    let mode = parts.next().unwrap_or("major").to_ascii_lowercase();
    let minor = mode.starts_with("min");
    let mut chars = tonic.chars();
    let letter = chars.next()?.to_ascii_uppercase();
    let base: i32 = match letter {
        'C' => 0,
        'D' => 2,
        'E' => 4,
        'F' => 5,
        'G' => 7,
        'A' => 9,
        'B' => 11,
        _ => return None,
    };
    let shift: i32 = chars.map(|c| match c {
        '#' | '♯' => 1,
        'b' | '♭' => -1,
        _ => 0,
    }).sum();
    Some(((base + shift).rem_euclid(12) as u8, minor))
}

/// The MIREX weighted key score of `estimate` against `reference`.
pub fn key_score(estimate: (u8, bool), reference: (u8, bool)) -> f64 {
    let ((et, em), (rt, rm)) = (estimate, reference);
    let up = |n: u8| (rt + n) % 12 == et;
    if em == rm {
        if et == rt {
            1.0
        } else if up(7) || up(5) {
            0.5
        } else {
            0.0
        }
    } else if (rm && !em && up(3)) || (!rm && em && up(9)) {
        // Relative: A minor and C major share their notes.
        0.3
    } else if et == rt {
        0.2
    } else {
        0.0
    }
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
    fn timing_gives_the_offset_and_the_share_within_20_ms() {
        let r = grid(0.0, 0.5, 100);
        // Every beat 12 ms late, every fourth 30 ms late instead.
        let e: Vec<f64> = r.iter().enumerate().map(|(i, t)| t + if i % 4 == 0 { 0.030 } else { 0.012 }).collect();
        let (offset, within) = timing(&r, &e).unwrap();
        assert!((offset - 12.0).abs() < 1e-6, "{offset}");
        assert!((within - 0.75).abs() < 0.02, "{within}");
        // Half a beat off: nothing matches.
        let off: Vec<f64> = r.iter().map(|t| t + 0.25).collect();
        assert_eq!(timing(&r, &off), None);
    }

    #[test]
    fn double_tempo_halves_precision() {
        let r = grid(0.0, 0.5, 100);
        let double = grid(0.0, 0.25, 200);
        let f = f_measure(&r, &double);
        assert!((f - 2.0 / 3.0).abs() < 0.01, "{f}");
    }

    #[test]
    fn key_names_and_scores() {
        assert_eq!(parse_key("A minor"), Some((9, true)));
        assert_eq!(parse_key("A# minor"), parse_key("Bb minor"));
        assert_eq!(parse_key("Gb major"), Some((6, false)));
        let k = |s| parse_key(s).unwrap();
        assert_eq!(key_score(k("C major"), k("C major")), 1.0);
        assert_eq!(key_score(k("G major"), k("C major")), 0.5);
        assert_eq!(key_score(k("F major"), k("C major")), 0.5);
        assert_eq!(key_score(k("A minor"), k("C major")), 0.3);
        assert_eq!(key_score(k("C major"), k("A minor")), 0.3);
        assert_eq!(key_score(k("C minor"), k("C major")), 0.2);
        assert_eq!(key_score(k("D major"), k("C major")), 0.0);
        assert_eq!(tempo_accuracy(121.0, 120.0), (true, true));
        assert_eq!(tempo_accuracy(60.5, 120.0), (false, true));
        assert_eq!(tempo_accuracy(90.0, 120.0), (false, false));
    }

    #[test]
    fn first_five_seconds_are_ignored() {
        let r = grid(0.0, 0.5, 40);
        let mut e = r.clone();
        e.retain(|t| *t >= 5.0);
        assert_eq!(f_measure(&r, &e), 1.0);
    }
}
