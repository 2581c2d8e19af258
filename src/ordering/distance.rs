//! How far apart two tracks are, as neighbours in the running order.
//!
//! The distance is a weighted sum of seven terms, each scaled so that 1.0 is
//! "a mismatch a listener notices":
//!
//! | term     | 0 when                          | 1 when                                   |
//! |----------|---------------------------------|------------------------------------------|
//! | tempo    | same tempo, or exactly ½× / 2×  | the mixer's stretch limit apart (8%)     |
//! | key      | same Camelot key                | 3+ steps around the wheel (see below)    |
//! | energy   | same energy                     | 0.2 apart (energy is 0..1)               |
//! | loudness | same integrated loudness        | 6 LU apart                               |
//! | genre    | same genre tag                  | different tags (0.5 when one is unknown) |
//! | artist   | different artists               | the same artist                          |
//! | steadiness | as steady as each other       | one on a steady tempo throughout, the other nowhere |
//!
//! Tempo is octave-aware because the mixer beatmatches 70 BPM against 140
//! at half/double time. Past the mixer's stretch limit (`mixer.max_tempo_change`)
//! a pair can only be crossfaded, so the term jumps by 1 there: the tour
//! then prefers a run of mixable steps and one big jump to a zigzag of
//! steps that are all just too far. Key steps count moves on the Camelot wheel: one
//! number round the wheel or a switch between A and B at the same number is
//! one step. 0 steps costs 0, 1 step (a harmonic mix) 0.2, 2 steps 0.6, more
//! 1.0; an unknown key costs 0.5. Steadiness is the share of a track's
//! beats on a steady tempo: the mixer beatmatches only where both tracks
//! keep a steady pulse, so steady tracks next to steady ones get more
//! beatmatched transitions (a live band or a classical piece between two
//! of them costs two crossfades). The sum is symmetric, so the tour can be
//! walked in either direction.

use serde::Deserialize;

use crate::catalog::Track;

const ENERGY_UNIT: f64 = 0.2;
const LOUDNESS_UNIT_LU: f64 = 6.0;
const KEY_COST: [f64; 4] = [0.0, 0.2, 0.6, 1.0];

/// Weights of the distance terms (`[ordering.weights]`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Weights {
    pub tempo: f64,
    pub key: f64,
    pub energy: f64,
    pub loudness: f64,
    pub genre: f64,
    pub artist: f64,
    pub steadiness: f64,
    /// The tempo change that costs 1.0: the mixer's stretch limit
    /// (`mixer.max_tempo_change`), not a key of this section.
    #[serde(skip)]
    pub tempo_limit: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights { tempo: 1.0, key: 0.6, energy: 0.5, loudness: 0.2, genre: 0.3, artist: 0.5, steadiness: 0.5, tempo_limit: 0.08 }
    }
}

impl Weights {
    /// The first weight that is negative or not finite, by config key.
    pub fn invalid(&self) -> Option<(&'static str, f64)> {
        [
            ("ordering.weights.tempo", self.tempo),
            ("ordering.weights.key", self.key),
            ("ordering.weights.energy", self.energy),
            ("ordering.weights.loudness", self.loudness),
            ("ordering.weights.genre", self.genre),
            ("ordering.weights.artist", self.artist),
            ("ordering.weights.steadiness", self.steadiness),
        ]
        .into_iter()
        .find(|(_, w)| !w.is_finite() || *w < 0.0)
    }
}

/// A Camelot key: wheel number 1..=12 and letter (A minor, B major).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Camelot {
    pub number: u8,
    pub minor: bool,
}

impl Camelot {
    /// Parses `8A`, `12B` (case-insensitive); `None` for anything else.
    pub fn parse(s: &str) -> Option<Camelot> {
        let s = s.trim();
        let (num, letter) = s.split_at(s.len().checked_sub(1)?);
        let number: u8 = num.parse().ok().filter(|n| (1..=12).contains(n))?;
        let minor = match letter {
            "A" | "a" => true,
            "B" | "b" => false,
            _ => return None,
        };
        Some(Camelot { number, minor })
    }

    /// Moves on the wheel from `self` to `other`.
    pub fn steps(self, other: Camelot) -> u32 {
        let d = (self.number as i32 - other.number as i32).rem_euclid(12) as u32;
        d.min(12 - d) + u32::from(self.minor != other.minor)
    }
}

/// What the distance needs of a track, parsed once.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// log2 of the tempo; `None` when unknown.
    log_bpm: Option<f64>,
    camelot: Option<Camelot>,
    energy: f64,
    loudness: f64,
    genre: String,
    artist: String,
    steadiness: f64,
}

impl Features {
    pub fn of(t: &Track) -> Features {
        Features {
            log_bpm: (t.bpm.is_finite() && t.bpm > 0.0).then(|| t.bpm.log2()),
            camelot: Camelot::parse(&t.camelot),
            energy: t.energy,
            loudness: t.loudness_lufs,
            genre: t.genre.trim().to_lowercase(),
            artist: t.artist.trim().to_lowercase(),
            steadiness: t.steadiness.clamp(0.0, 1.0),
        }
    }
}

/// The tempo change between two tracks as a fraction (0.03 = 3%), after
/// folding to the nearest octave (70 and 140 BPM: 0). Infinite if unknown.
pub fn tempo_change(a_bpm: f64, b_bpm: f64) -> f64 {
    if !(a_bpm > 0.0 && b_bpm > 0.0) {
        return f64::INFINITY;
    }
    folded_change(a_bpm.log2(), b_bpm.log2())
}

fn folded_change(log_a: f64, log_b: f64) -> f64 {
    let r = log_b - log_a;
    (r - r.round()).abs().exp2() - 1.0
}

/// Tempo term: the change in units of the stretch limit, plus 1 beyond it.
fn tempo_term(change: f64, limit: f64) -> f64 {
    let t = change / limit.max(1e-6);
    if t > 1.0 {
        t + 1.0
    } else {
        t
    }
}

/// Key term alone, from Camelot codes.
pub fn key_term(a: Option<Camelot>, b: Option<Camelot>) -> f64 {
    match (a, b) {
        (Some(a), Some(b)) => KEY_COST[(a.steps(b) as usize).min(KEY_COST.len() - 1)],
        _ => 0.5,
    }
}

/// The weighted distance between two tracks.
pub fn distance(w: &Weights, a: &Features, b: &Features) -> f64 {
    let tempo = match (a.log_bpm, b.log_bpm) {
        (Some(x), Some(y)) => tempo_term(folded_change(x, y), w.tempo_limit),
        _ => 1.0,
    };
    let genre = match (a.genre.is_empty(), b.genre.is_empty()) {
        (false, false) => f64::from(u8::from(a.genre != b.genre)),
        _ => 0.5,
    };
    let artist = f64::from(u8::from(!a.artist.is_empty() && a.artist == b.artist));
    w.tempo * tempo
        + w.key * key_term(a.camelot, b.camelot)
        + w.energy * (a.energy - b.energy).abs() / ENERGY_UNIT
        + w.loudness * (a.loudness - b.loudness).abs() / LOUDNESS_UNIT_LU
        + w.genre * genre
        + w.artist * artist
        + w.steadiness * (a.steadiness - b.steadiness).abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camelot_wheel_steps() {
        let c = |s| Camelot::parse(s).unwrap();
        assert_eq!(c("8A").steps(c("8A")), 0);
        assert_eq!(c("8A").steps(c("9A")), 1);
        assert_eq!(c("8A").steps(c("8B")), 1, "relative major");
        assert_eq!(c("12A").steps(c("1A")), 1, "the wheel wraps");
        assert_eq!(c("1B").steps(c("7A")), 7);
        assert!(Camelot::parse("13A").is_none() && Camelot::parse("A").is_none() && Camelot::parse("").is_none());
    }

    #[test]
    fn tempo_is_octave_aware() {
        assert!(tempo_change(70.0, 140.0) < 1e-9);
        assert!((tempo_change(120.0, 129.6) - 0.08).abs() < 1e-9);
        assert!((tempo_change(129.6, 120.0) - 0.08).abs() < 1e-9, "symmetric");
        assert!((tempo_term(0.08, 0.08) - 1.0).abs() < 1e-9, "the limit costs 1");
        assert!(tempo_term(0.0801, 0.08) > 2.0, "past the limit only a crossfade: +1");
        assert!(tempo_change(120.0, 90.0) > 0.3, "a fourth apart is far");
    }

    #[test]
    fn distance_is_symmetric_and_zero_on_itself() {
        let t = |bpm: f64, cam: &str, e: f64, artist: &str, steadiness: f64| Track {
            id: 1,
            path: "/x.mp3".into(),
            title: "t".into(),
            artist: artist.into(),
            album: String::new(),
            genre: "house".into(),
            duration_s: 200.0,
            bpm,
            key: String::new(),
            camelot: cam.into(),
            energy: e,
            loudness_lufs: -10.0,
            steadiness,
        };
        let w = Weights::default();
        let (a, b) = (Features::of(&t(124.0, "8A", 0.6, "x", 1.0)), Features::of(&t(128.0, "3B", 0.3, "y", 0.2)));
        assert!((distance(&w, &a, &b) - distance(&w, &b, &a)).abs() < 1e-12);
        let own = Features::of(&t(124.0, "8A", 0.6, "", 1.0));
        assert_eq!(distance(&w, &own, &own), 0.0);
        let same_artist = Features::of(&t(124.0, "8A", 0.6, "x", 1.0));
        assert_eq!(distance(&w, &a, &same_artist), w.artist);
        let wandering = Features::of(&t(124.0, "8A", 0.6, "", 0.25));
        assert!((distance(&w, &own, &wandering) - 0.75 * w.steadiness).abs() < 1e-12, "steadiness counts");
    }
}
