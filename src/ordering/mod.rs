//! Which track plays next. The `Orderer` trait is the seam the plugin host
//! fills later; the built-in `Shuffle` plays every track once, in random
//! order, before any repeats. The `Scheduler` keeps a short list of upcoming
//! picks (shown on /status) in front of the orderer.
//!
//! Lives behind a mutex shared by the mixer thread (which takes picks) and
//! the HTTP status handler (which reads the upcoming list).

use std::collections::VecDeque;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::catalog::Track;

/// How many picks ahead the scheduler plans.
pub const UPCOMING: usize = 5;

/// A track-ordering strategy.
pub trait Orderer: Send {
    /// Picks the next track from `tracks` (never empty), given what was
    /// picked before it (`previous`, if any).
    fn next(&mut self, tracks: &[Arc<Track>], previous: Option<&Track>) -> Arc<Track>;
    fn name(&self) -> &str;
}

/// Random order without repeating a track until all have played.
pub struct Shuffle {
    rng: SmallRng,
    /// Ids still to play in this round.
    bag: Vec<i64>,
}

impl Shuffle {
    pub fn new(seed: Option<u64>) -> Shuffle {
        let rng = match seed {
            Some(s) => SmallRng::seed_from_u64(s),
            None => SmallRng::from_os_rng(),
        };
        Shuffle { rng, bag: Vec::new() }
    }
}

impl Orderer for Shuffle {
    fn next(&mut self, tracks: &[Arc<Track>], previous: Option<&Track>) -> Arc<Track> {
        // Drop ids that left the catalogue; refill when the round is over.
        self.bag.retain(|id| tracks.iter().any(|t| t.id == *id));
        if self.bag.is_empty() {
            self.bag = tracks.iter().map(|t| t.id).collect();
            self.bag.shuffle(&mut self.rng);
            // Never the same track twice in a row across a round boundary.
            if self.bag.len() > 1 && previous.map(|p| p.id) == self.bag.last().copied() {
                let last = self.bag.len() - 1;
                self.bag.swap(0, last);
            }
        }
        let id = self.bag.pop().expect("bag refilled from a non-empty list");
        tracks.iter().find(|t| t.id == id).cloned().expect("bag holds only present ids")
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
    last_picked: Option<Arc<Track>>,
}

impl Scheduler {
    pub fn new(orderer: Box<dyn Orderer>, tracks: Vec<Arc<Track>>) -> Scheduler {
        let mut s = Scheduler { orderer, tracks, upcoming: VecDeque::new(), last_picked: None };
        s.refill();
        s
    }

    /// Replaces the playable set (after a scan); planned picks that are no
    /// longer playable are dropped.
    pub fn set_tracks(&mut self, tracks: Vec<Arc<Track>>) {
        self.upcoming.retain(|u| tracks.iter().any(|t| t.id == u.id));
        self.tracks = tracks;
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
        self.refill();
        t
    }

    pub fn upcoming(&self) -> Vec<Arc<Track>> {
        self.upcoming.iter().cloned().collect()
    }

    pub fn orderer_name(&self) -> &str {
        self.orderer.name()
    }

    pub fn playable(&self) -> usize {
        self.tracks.len()
    }

    fn refill(&mut self) {
        while !self.tracks.is_empty() && self.upcoming.len() < UPCOMING {
            let pick = self.orderer.next(&self.tracks, self.last_picked.as_deref());
            self.last_picked = Some(pick.clone());
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
