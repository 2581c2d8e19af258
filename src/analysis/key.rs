//! Musical key from the track's chroma (tonal peaks, tuning taken out:
//! see `pitch`), correlated with key profiles rotated to all 24 keys. Reported as a
//! name ("A minor") and on the Camelot wheel ("8A").

/// Pitch-class names, C = 0.
pub const PITCH_NAMES: [&str; 12] = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"];

/// Albrecht & Shanahan's key profiles (2013), pitch-class distributions
/// measured on a corpus of popular and classical music: unlike the
/// Krumhansl–Kessler probe-tone ratings they give the third and the
/// leading tone their real weight, which is what tells major from minor.
const MAJOR: [f64; 12] = [0.238, 0.006, 0.111, 0.006, 0.137, 0.094, 0.016, 0.214, 0.009, 0.080, 0.008, 0.081];
const MINOR: [f64; 12] = [0.220, 0.006, 0.104, 0.123, 0.019, 0.103, 0.012, 0.214, 0.062, 0.022, 0.061, 0.052];

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// Tonic pitch class, C = 0.
    pub tonic: u8,
    pub minor: bool,
    /// Correlation with the winning profile, -1..1.
    pub strength: f64,
}

impl Key {
    pub fn name(&self) -> String {
        format!("{} {}", PITCH_NAMES[self.tonic as usize], if self.minor { "minor" } else { "major" })
    }

    /// Camelot notation: 1–12 with A (minor) or B (major).
    pub fn camelot(&self) -> String {
        let t = self.tonic as u32;
        let n = if self.minor { (7 * t + 5) % 12 } else { (7 * t + 8) % 12 };
        format!("{}{}", if n == 0 { 12 } else { n }, if self.minor { 'A' } else { 'B' })
    }
}

fn correlation(a: &[f64; 12], b: &[f64; 12]) -> f64 {
    let ma = a.iter().sum::<f64>() / 12.0;
    let mb = b.iter().sum::<f64>() / 12.0;
    let (mut num, mut da, mut db) = (0.0, 0.0, 0.0);
    for i in 0..12 {
        num += (a[i] - ma) * (b[i] - mb);
        da += (a[i] - ma).powi(2);
        db += (b[i] - mb).powi(2);
    }
    if da <= 0.0 || db <= 0.0 {
        0.0
    } else {
        num / (da * db).sqrt()
    }
}

/// Estimates the key from the track's chroma (C = 0).
pub fn estimate(total: &[f64; 12]) -> Key {
    let total = *total;
    let mut best = Key { tonic: 0, minor: false, strength: f64::MIN };
    for tonic in 0..12u8 {
        for (minor, profile) in [(false, &MAJOR), (true, &MINOR)] {
            let rotated: [f64; 12] = std::array::from_fn(|i| profile[(i + 12 - tonic as usize) % 12]);
            let r = correlation(&total, &rotated);
            if r > best.strength {
                best = Key { tonic, minor, strength: r };
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camelot_wheel() {
        let k = |tonic, minor| Key { tonic, minor, strength: 1.0 }.camelot();
        assert_eq!(k(9, true), "8A");
        assert_eq!(k(0, false), "8B");
        assert_eq!(k(7, false), "9B");
        assert_eq!(k(4, true), "9A");
        assert_eq!(k(0, true), "5A");
        assert_eq!(k(11, false), "1B");
        assert_eq!(k(8, true), "1A");
    }

    #[test]
    fn profile_itself_is_recognised() {
        let chroma: [f64; 12] = std::array::from_fn(|i| MINOR[(i + 12 - 9) % 12]);
        let key = estimate(&chroma);
        assert_eq!(key.name(), "A minor");
    }
}
