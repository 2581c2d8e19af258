//! Which track plays next. The `Orderer` trait is the seam the plugin host
//! fills later; the built-in `Shuffle` plays every track once, in random
//! order, before any repeats. The `Scheduler` keeps a short list of upcoming
//! picks (shown on /status) in front of the orderer.
//!
//! Lives behind a mutex shared by the mixer thread (which takes picks) and
//! the HTTP status handler (which reads the upcoming list).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::SeedableRng;

use crate::catalog::Track;

/// How many picks ahead the scheduler plans.
pub const UPCOMING: usize = 5;

/// A track-ordering strategy.
pub trait Orderer: Send {
    /// Picks the track to follow `previous`, from `tracks` (never empty).
    /// `planned` are the picks already planned ahead of this one (oldest
    /// first); they are tentative until taken.
    fn next(&mut self, tracks: &[Arc<Track>], previous: Option<&Track>, planned: &[i64]) -> Arc<Track>;
    /// A pick was handed to the mixer: it is going on air.
    fn taken(&mut self, _id: i64) {}
    fn name(&self) -> &str;
}

/// Random order without repeating a track until all have played. Tracks
/// added mid-round join the current round.
pub struct Shuffle {
    rng: SmallRng,
    /// Ids that went on air in this round.
    played: HashSet<i64>,
    /// Size of the playable set at the last pick (a round's length).
    known: usize,
}

impl Shuffle {
    pub fn new(seed: Option<u64>) -> Shuffle {
        let rng = match seed {
            Some(s) => SmallRng::seed_from_u64(s),
            None => SmallRng::from_os_rng(),
        };
        Shuffle { rng, played: HashSet::new(), known: 0 }
    }
}

impl Orderer for Shuffle {
    fn next(&mut self, tracks: &[Arc<Track>], previous: Option<&Track>, planned: &[i64]) -> Arc<Track> {
        self.known = tracks.len();
        let not_in = |skip: &dyn Fn(i64) -> bool| -> Vec<&Arc<Track>> { tracks.iter().filter(|t| !skip(t.id)).collect() };
        let mut left = not_in(&|id| self.played.contains(&id) || planned.contains(&id));
        if left.is_empty() {
            // This round is fully played or planned: the next round starts.
            left = not_in(&|id| planned.contains(&id));
        }
        if left.is_empty() {
            left = tracks.iter().collect();
        }
        // Never the same track twice in a row (unless it is the only one).
        if left.len() > 1 {
            left.retain(|t| Some(t.id) != previous.map(|p| p.id));
        }
        (*left.choose(&mut self.rng).expect("tracks is not empty")).clone()
    }

    fn taken(&mut self, id: i64) {
        if self.played.len() >= self.known || self.played.contains(&id) {
            self.played.clear();
        }
        self.played.insert(id);
    }

    fn name(&self) -> &str {
        "shuffle"
    }
}

/// Upcoming picks in front of an orderer, over the current playable set.
pub struct Scheduler {
    orderer: Box<dyn Orderer>,
    tracks: Vec<Arc<Track>>,
    upcoming: VecDeque<Arc<Track>>,
    /// The last track handed to the mixer.
    last_taken: Option<Arc<Track>>,
}

impl Scheduler {
    pub fn new(orderer: Box<dyn Orderer>, tracks: Vec<Arc<Track>>) -> Scheduler {
        let mut s = Scheduler { orderer, tracks, upcoming: VecDeque::new(), last_taken: None };
        s.refill();
        s
    }

    /// Replaces the playable set (after a scan or an analysis). The plan is
    /// made again, so new tracks get their chance at once.
    pub fn set_tracks(&mut self, tracks: Vec<Arc<Track>>) {
        let same = tracks.len() == self.tracks.len() && tracks.iter().zip(&self.tracks).all(|(a, b)| a.id == b.id);
        self.tracks = tracks;
        if !same {
            self.upcoming.clear();
        }
        self.refill();
    }

    /// Removes one track (it failed on air).
    pub fn remove(&mut self, id: i64) {
        let tracks = self.tracks.iter().filter(|t| t.id != id).cloned().collect();
        self.set_tracks(tracks);
    }

    /// Takes the next pick, or `None` when nothing is playable.
    pub fn next(&mut self) -> Option<Arc<Track>> {
        self.refill();
        let t = self.upcoming.pop_front();
        if let Some(t) = &t {
            self.orderer.taken(t.id);
            self.last_taken = Some(t.clone());
        }
        self.refill();
        t
    }

    /// Puts a pick back at the head of the plan (its transition could not
    /// happen; it will start next).
    pub fn push_front(&mut self, track: Arc<Track>) {
        self.upcoming.push_front(track);
        self.upcoming.truncate(UPCOMING);
    }

    pub fn upcoming(&self) -> Vec<Arc<Track>> {
        self.upcoming.iter().cloned().collect()
    }

    pub fn orderer_name(&self) -> &str {
        self.orderer.name()
    }

    fn refill(&mut self) {
        while !self.tracks.is_empty() && self.upcoming.len() < UPCOMING {
            let previous = self.upcoming.back().or(self.last_taken.as_ref()).cloned();
            let planned: Vec<i64> = self.upcoming.iter().map(|t| t.id).collect();
            let pick = self.orderer.next(&self.tracks, previous.as_deref(), &planned);
            self.upcoming.push_back(pick);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracks(n: i64) -> Vec<Arc<Track>> {
        (1..=n)
            .map(|id| {
                Arc::new(Track {
                    id,
                    path: format!("/{id}.mp3").into(),
                    title: format!("t{id}"),
                    artist: String::new(),
                    album: String::new(),
                    duration_s: 100.0,
                    bpm: 120.0,
                    key: "A minor".into(),
                    camelot: "8A".into(),
                    energy: 0.5,
                    loudness_lufs: -14.0,
                })
            })
            .collect()
    }

    #[test]
    fn shuffle_plays_all_before_repeating() {
        let mut s = Scheduler::new(Box::new(Shuffle::new(Some(1))), tracks(7));
        let mut prev = None;
        for _round in 0..20 {
            let mut seen: Vec<i64> = (0..7).map(|_| s.next().unwrap().id).collect();
            assert_ne!(prev, Some(seen[0]), "same track twice in a row");
            prev = seen.last().copied();
            seen.sort();
            assert_eq!(seen, (1..=7).collect::<Vec<_>>());
        }
    }

    #[test]
    fn tracks_that_arrive_later_are_planned_at_once() {
        let all = tracks(6);
        let mut s = Scheduler::new(Box::new(Shuffle::new(Some(3))), all[..1].to_vec());
        assert_eq!(s.next().unwrap().id, 1);
        s.set_tracks(all.clone());
        let next: Vec<i64> = s.upcoming().iter().map(|t| t.id).collect();
        assert!(!next.contains(&1) || next.iter().filter(|&&i| i == 1).count() == 1, "{next:?}");
        assert_ne!(next[0], 1, "{next:?}");
        let mut round: Vec<i64> = (0..5).map(|_| s.next().unwrap().id).collect();
        round.sort();
        assert_eq!(round, vec![2, 3, 4, 5, 6], "the rest of the round, track 1 already played");
    }

    #[test]
    fn removed_tracks_leave_the_schedule() {
        let mut s = Scheduler::new(Box::new(Shuffle::new(Some(2))), tracks(4));
        s.remove(3);
        for _ in 0..40 {
            assert_ne!(s.next().unwrap().id, 3);
        }
        s.set_tracks(Vec::new());
        assert!(s.next().is_none());
    }
}
