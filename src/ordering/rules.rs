//! The rules no plugin can break: which tracks are candidates for a pick.
//!
//! Only playable (analysed) tracks are candidates; a track played within the
//! last `no_repeat_tracks` tracks or `no_repeat_minutes` minutes is not; nor
//! is a track by an artist heard in the last `artist_separation` tracks.
//! "Played" includes the picks already planned ahead, since they play first.
//!
//! A small library cannot always satisfy all three. Rather than stop the
//! music, the rules relax in a fixed order until someone qualifies: artist
//! separation goes first, then the time rule, and the track rule shrinks to
//! half the library; in the end, anything but the track playing now.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::catalog::Track;

/// The rule settings (keys of `[ordering]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    pub no_repeat_tracks: usize,
    pub no_repeat_minutes: f64,
    pub artist_separation: usize,
}

impl Default for Rules {
    fn default() -> Self {
        Rules { no_repeat_tracks: 10, no_repeat_minutes: 60.0, artist_separation: 2 }
    }
}

/// How far the rules had to bend for a pick (0: not at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Relaxed {
    None,
    ArtistSeparation,
    RepeatWindow,
    OnlyNotCurrent,
}

/// When a track last played, seen from the pick.
struct Last {
    /// Tracks since (0: it is the one playing just before the pick).
    tracks_ago: usize,
    /// Seconds of music since it ended.
    seconds_ago: f64,
}

/// The candidates for the pick that follows `history` (newest first).
pub fn candidates(tracks: &[Arc<Track>], history: &[Arc<Track>], rules: &Rules) -> (Vec<Arc<Track>>, Relaxed) {
    let mut last: HashMap<i64, Last> = HashMap::new();
    let mut seconds = 0.0;
    for (i, t) in history.iter().enumerate() {
        last.entry(t.id).or_insert(Last { tracks_ago: i, seconds_ago: seconds });
        seconds += t.duration_s;
    }
    let recent_artists: HashSet<String> = history
        .iter()
        .take(rules.artist_separation)
        .map(|t| t.artist.trim().to_lowercase())
        .filter(|a| !a.is_empty())
        .collect();
    let window_ok = |t: &Track, n: usize, minutes: f64| {
        last.get(&t.id).is_none_or(|l| l.tracks_ago >= n && l.seconds_ago >= minutes * 60.0)
    };
    let artist_ok = |t: &Track| !recent_artists.contains(&t.artist.trim().to_lowercase());
    let current = history.first().map(|t| t.id);
    let half = (tracks.len() / 2).min(rules.no_repeat_tracks);
    type Rule<'a> = &'a dyn Fn(&Track) -> bool;
    let ladder: [(Relaxed, Rule); 4] = [
        (Relaxed::None, &|t| window_ok(t, rules.no_repeat_tracks, rules.no_repeat_minutes) && artist_ok(t)),
        (Relaxed::ArtistSeparation, &|t| window_ok(t, rules.no_repeat_tracks, rules.no_repeat_minutes)),
        (Relaxed::RepeatWindow, &|t| window_ok(t, half, 0.0)),
        (Relaxed::OnlyNotCurrent, &|t| Some(t.id) != current),
    ];
    for (level, ok) in ladder {
        let c: Vec<Arc<Track>> = tracks.iter().filter(|t| ok(t)).cloned().collect();
        if !c.is_empty() {
            return (c, level);
        }
    }
    (tracks.to_vec(), Relaxed::OnlyNotCurrent)
}

/// Whether `pick` following `history` keeps every rule (for tests and
/// checks: the scheduler never needs to ask, candidates already do).
pub fn violation(pick: &Track, history: &[Arc<Track>], rules: &Rules) -> Option<String> {
    let mut seconds = 0.0;
    for (i, t) in history.iter().enumerate() {
        if t.id == pick.id {
            if i < rules.no_repeat_tracks {
                return Some(format!("{} repeats after {i} tracks", pick.display()));
            }
            if seconds < rules.no_repeat_minutes * 60.0 {
                return Some(format!("{} repeats after {:.1} minutes", pick.display(), seconds / 60.0));
            }
            break;
        }
        if i < rules.artist_separation && !t.artist.is_empty() && t.artist.eq_ignore_ascii_case(&pick.artist) {
            return Some(format!("{} follows its artist after {i} tracks", pick.display()));
        }
        seconds += t.duration_s;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(id: i64, artist: &str) -> Arc<Track> {
        Arc::new(Track {
            id,
            path: format!("/{id}.mp3").into(),
            title: format!("t{id}"),
            artist: artist.into(),
            album: String::new(),
            genre: String::new(),
            duration_s: 180.0,
            bpm: 120.0,
            key: String::new(),
            camelot: "8A".into(),
            energy: 0.5,
            loudness_lufs: -10.0,
            steadiness: 1.0,
        })
    }

    #[test]
    fn recent_tracks_and_artists_are_not_candidates() {
        let tracks: Vec<Arc<Track>> = (1..=30).map(|i| track(i, &format!("a{}", i % 10))).collect();
        let rules = Rules { no_repeat_tracks: 5, no_repeat_minutes: 0.0, artist_separation: 2 };
        // Newest first: 7 just played, 8 before it.
        let history: Vec<Arc<Track>> = [7, 8, 9, 10, 11, 12].iter().map(|i| tracks[*i as usize - 1].clone()).collect();
        let (c, relaxed) = candidates(&tracks, &history, &rules);
        assert_eq!(relaxed, Relaxed::None);
        let ids: HashSet<i64> = c.iter().map(|t| t.id).collect();
        for blocked in [7, 8, 9, 10, 11, 17, 18, 27, 28] {
            assert!(!ids.contains(&blocked), "{blocked} should be blocked");
        }
        assert!(ids.contains(&12), "six tracks ago is allowed");
        for t in &c {
            assert_eq!(violation(t, &history, &rules), None);
        }
    }

    #[test]
    fn minutes_rule_counts_music_in_between() {
        let tracks: Vec<Arc<Track>> = (1..=40).map(|i| track(i, "")).collect();
        let rules = Rules { no_repeat_tracks: 1, no_repeat_minutes: 10.0, artist_separation: 0 };
        let history: Vec<Arc<Track>> = (1..=5).map(|i| tracks[i - 1].clone()).collect();
        let (c, _) = candidates(&tracks, &history, &rules);
        let ids: HashSet<i64> = c.iter().map(|t| t.id).collect();
        // 3 min each: track 4 ended 9 min ago (blocked), track 5 ended 12 min ago.
        assert!(!ids.contains(&4) && ids.contains(&5));
    }

    #[test]
    fn small_libraries_relax_instead_of_stopping() {
        let tracks = vec![track(1, "x"), track(2, "x")];
        let rules = Rules::default();
        let history = vec![tracks[0].clone(), tracks[1].clone()];
        let (c, relaxed) = candidates(&tracks, &history, &rules);
        assert_eq!(c.iter().map(|t| t.id).collect::<Vec<_>>(), vec![2]);
        assert!(relaxed > Relaxed::ArtistSeparation);
        let one = vec![track(1, "x")];
        let (c, _) = candidates(&one, &one, &rules);
        assert_eq!(c.len(), 1, "a one-track library repeats that track");
    }
}
