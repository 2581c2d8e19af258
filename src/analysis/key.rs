//! Musical key from the track's mean chroma, correlated with the
//! Krumhansl–Kessler key profiles rotated to all 24 keys. Reported as a
//! name ("A minor") and on the Camelot wheel ("8A").

/// Pitch-class names, C = 0.
pub const PITCH_NAMES: [&str; 12] = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"];

const MAJOR: [f64; 12] = [6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88];
const MINOR: [f64; 12] = [6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17];

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

/// Estimates the key from per-frame chroma (frames with little energy count little).
pub fn estimate(chroma: &[[f32; 12]]) -> Key {
    let mut total = [0.0f64; 12];
    for frame in chroma {
        // Each frame normalised to unit sum (a loud passage does not outvote
        // the rest), with square-root compression within the frame.
        let compressed: [f64; 12] = std::array::from_fn(|k| (frame[k] as f64).sqrt());
        let sum: f64 = compressed.iter().sum();
        if sum > 1e-9 {
            for k in 0..12 {
                total[k] += compressed[k] / sum;
            }
        }
    }
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
        let chroma: Vec<[f32; 12]> = vec![std::array::from_fn(|i| MINOR[(i + 12 - 9) % 12].powi(2) as f32); 10];
        let key = estimate(&chroma);
        assert_eq!(key.name(), "A minor");
    }
}
