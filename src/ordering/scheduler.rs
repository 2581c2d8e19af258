//! The plan: the next few picks (shown on /status) and the history they
//! follow, behind the mutex the mixer, the planner, the plugin watcher and
//! the status snapshot share.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::pick::{pick, tour_pick};
use super::plugin::{Clock, Plugin, PluginError};
use super::rules::{self, Rules};
use super::tour::Library;
use super::{BUILTIN, FALLBACK, HISTORY, REQUESTED, UPCOMING};
use crate::catalog::Track;

/// Local time as shown on /status: RFC 3339 to the second.
fn timestamp(t: chrono::DateTime<chrono::Local>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// A planned pick and who chose it.
#[derive(Debug, Clone)]
pub struct Planned {
    pub track: Arc<Track>,
    /// The plugin's name, or the tour when it stood in.
    pub by: String,
}

/// The last plugin failure, for /status.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorReport {
    pub plugin: String,
    pub message: String,
    pub line: Option<usize>,
    /// `load`, `reload` or `pick`.
    pub during: &'static str,
    pub at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct UpcomingEntry {
    pub id: i64,
    pub title: String,
    pub artist: String,
    pub bpm: f64,
    pub camelot: String,
    pub energy: f64,
    pub by: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TourStatus {
    pub tracks: usize,
    pub length: f64,
    /// Mean distance between neighbours on the tour.
    pub mean_step: f64,
}

/// The `ordering` section of /status.
#[derive(Debug, Clone, Serialize)]
pub struct OrderingStatus {
    /// The configured plugin.
    pub plugin: String,
    /// Content hash of the active script; null while none has loaded.
    pub version: Option<String>,
    pub loaded_at: Option<String>,
    /// Plugins swapped in while running.
    pub reloads: u64,
    /// Failures: rejected reloads plus picks that failed at run time.
    pub errors: u64,
    /// Picks the tour made because the plugin failed.
    pub fallbacks: u64,
    pub error: Option<ErrorReport>,
    pub upcoming: Vec<UpcomingEntry>,
    /// Requests waiting to play, in order.
    pub requests: Vec<RequestEntry>,
    pub requests_played: u64,
    pub tour: TourStatus,
}

/// A listener's (or an admin's) request, waiting to be played.
#[derive(Debug, Clone)]
pub struct Request {
    pub track: Arc<Track>,
    /// Who asked: a client address, or `admin`.
    pub from: String,
    pub at: String,
}

/// A request as shown on /status, /events and /admin/requests.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RequestEntry {
    pub id: i64,
    pub title: String,
    pub artist: String,
    pub from: String,
    pub at: String,
    /// Place in the plan (0: the next track), or null while the host rules
    /// keep it out for now.
    pub position: Option<usize>,
}

/// Why a request was not queued.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum RequestError {
    #[error("no playable track has id {0}")]
    NoSuchTrack(i64),
    #[error("that track is already requested")]
    AlreadyRequested,
    #[error("{0} requests are waiting already; try again after the next track")]
    QueueFull(usize),
    #[error("the station's rules keep that track out of the next {0} tracks (it played recently, or its artist did); try later")]
    NotAllowedNow(usize),
}

/// Upcoming picks and the history they follow.
pub struct Scheduler {
    library: Arc<Library>,
    rules: Rules,
    /// The configured plugin name (shown even while it fails to load).
    configured: String,
    plugin: Option<Arc<Plugin>>,
    upcoming: VecDeque<Planned>,
    /// Tracks handed to the mixer, newest first.
    played: VecDeque<Arc<Track>>,
    /// Where the path of each track taken is kept, so a restart resumes the
    /// running order after it.
    resume_file: Option<PathBuf>,
    last_taken: Option<Planned>,
    reloads: u64,
    errors: u64,
    fallbacks: u64,
    error: Option<ErrorReport>,
    /// Local time a given number of seconds from now.
    clock: Box<dyn Fn(Duration) -> Clock + Send>,
    /// Wakes the planner thread, once one keeps the plan full; until then
    /// (tools, tests) the plan is refilled under the lock.
    planner: Option<crossbeam_channel::Sender<()>>,
    /// Bumped whenever the plan is cut or cleared: a pick made outside the
    /// lock for an older plan is thrown away.
    generation: u64,
    /// Requests not yet taken, in the order they play.
    requests: Vec<Request>,
    /// Requests handed to the mixer so far.
    requests_played: u64,
}

/// One pick to make outside the lock: everything it depends on, copied.
pub struct PickJob {
    generation: u64,
    library: Arc<Library>,
    rules: Rules,
    plugin: Option<Arc<Plugin>>,
    history: Vec<Arc<Track>>,
    clock: Clock,
}

/// A finished pick: the plan's next entry, and the plugin's error if the
/// tour had to stand in.
pub struct PickResult {
    planned: Option<Planned>,
    error: Option<PluginError>,
}

impl PickResult {
    /// Whether nothing could be picked (nothing playable).
    pub fn is_empty(&self) -> bool {
        self.planned.is_none()
    }
}

impl PickJob {
    /// Runs the plugin (or the tour). May take up to the plugin's time limit.
    pub fn run(&self) -> PickResult {
        let tour = |by: &str| {
            tour_pick(&self.library, &self.rules, &self.history).map(|track| Planned { track, by: by.to_string() })
        };
        match &self.plugin {
            Some(p) => match pick(&self.library, &self.rules, p, &self.history, self.clock) {
                Ok(track) => PickResult { planned: Some(Planned { track, by: p.name.clone() }), error: None },
                Err(e) => PickResult { planned: tour(FALLBACK), error: Some(e) },
            },
            None => PickResult { planned: tour(BUILTIN), error: None },
        }
    }
}

/// Writes `path` to `file` (through a temporary file, so a kill leaves
/// the old point or the new one). Best effort: a failure only costs the
/// resume point.
fn save_resume_point(file: &Path, path: &Path) {
    let tmp = file.with_extension("tmp");
    let written = std::fs::write(&tmp, crate::catalog::path_key(path)).and_then(|_| std::fs::rename(&tmp, file));
    if let Err(e) = written {
        tracing::debug!("cannot keep the resume point in {}: {e}", file.display());
    }
}

impl Scheduler {
    /// `plugin` is the configured plugin as loaded; if it failed, the tour
    /// plays until a working version is saved.
    pub fn new(library: Arc<Library>, rules: Rules, configured: &str, plugin: Result<Plugin, PluginError>) -> Scheduler {
        let mut s = Scheduler {
            library,
            rules,
            configured: configured.to_string(),
            plugin: None,
            upcoming: VecDeque::new(),
            played: VecDeque::new(),
            last_taken: None,
            reloads: 0,
            errors: 0,
            fallbacks: 0,
            error: None,
            clock: Box::new(Clock::local_in),
            planner: None,
            generation: 0,
            resume_file: None,
            requests: Vec::new(),
            requests_played: 0,
        };
        match plugin {
            Ok(p) => {
                p.set_library(s.library.clone());
                s.plugin = Some(Arc::new(p));
            }
            Err(e) => s.record(e, "load"),
        }
        s.refill();
        s
    }

    /// The library the picks come from (clone it to update off the lock).
    pub fn library(&self) -> Arc<Library> {
        self.library.clone()
    }

    /// Installs an updated library. Planned picks that are no longer
    /// playable leave the plan, with everything after them (it followed
    /// them). While the library is small or grows by more than a tenth (the
    /// first scan), the whole plan is made again so new tracks get their
    /// chance at once; a large library keeps its plan and new tracks join
    /// at the next picks.
    pub fn set_library(&mut self, library: Arc<Library>) {
        let (old, new) = (self.library.len(), library.len());
        let replan = old < 4 * UPCOMING || new * 10 > old * 11;
        self.library = library;
        let library = &self.library;
        self.requests.retain(|r| library.track(r.track.id).is_some());
        if let Some(p) = &self.plugin {
            p.set_library(self.library.clone());
        }
        if replan {
            self.upcoming.clear();
        } else if let Some(stale) =
            self.upcoming.iter().position(|p| self.library.track(p.track.id).is_none_or(|t| **t != *p.track))
        {
            self.upcoming.truncate(stale);
        }
        self.plan_changed();
    }

    /// From now on a planner thread keeps the plan full: nothing runs the
    /// plugin under the lock any more.
    pub fn attach_planner(&mut self, wake: crossbeam_channel::Sender<()>) {
        self.planner = Some(wake);
    }

    /// The plan was cut or cleared: picks in flight are stale; refill.
    fn plan_changed(&mut self) {
        self.generation += 1;
        self.place_requests();
        self.wake_planner_or_refill();
    }

    fn wake_planner_or_refill(&mut self) {
        match &self.planner {
            Some(w) => {
                let _ = w.try_send(());
            }
            None => self.refill(),
        }
    }

    /// The next pick to make, if the plan has room.
    pub fn pick_job(&self) -> Option<PickJob> {
        if self.library.is_empty() || self.upcoming.len() >= UPCOMING {
            return None;
        }
        let ahead: f64 = self.upcoming.iter().map(|p| p.track.duration_s).sum();
        Some(PickJob {
            generation: self.generation,
            library: self.library.clone(),
            rules: self.rules,
            plugin: self.plugin.clone(),
            history: self.history(),
            clock: (self.clock)(Duration::from_secs_f64(ahead)),
        })
    }

    /// Adds a finished pick to the plan, unless the plan changed meanwhile.
    pub fn complete(&mut self, job: PickJob, result: PickResult) {
        if job.generation != self.generation || self.upcoming.len() >= UPCOMING {
            return;
        }
        if let Some(e) = result.error {
            self.fallbacks += 1;
            self.record(e, "pick");
        }
        if let Some(p) = result.planned {
            self.upcoming.push_back(p);
        }
        self.place_requests();
    }

    /// The mixer's next track, at once: the planned pick, or — if the plan
    /// is empty (the planner is behind) — the tour's. The plugin never runs
    /// here.
    pub fn take(&mut self) -> Option<Arc<Track>> {
        if self.upcoming.is_empty() {
            if self.planner.is_none() {
                self.refill();
            }
            let history = self.history();
            if let Some(track) = tour_pick(&self.library, &self.rules, &history) {
                self.upcoming.push_back(Planned { track, by: FALLBACK.to_string() });
                // A pick in flight follows a history without this track
                // (it could be this very track): it is made again.
                self.generation += 1;
            }
        }
        let p = self.upcoming.pop_front()?;
        // A requested track plays: the request is served, even if the
        // plan had it for another reason.
        if let Some(i) = self.requests.iter().position(|r| r.track.id == p.track.id) {
            self.requests.remove(i);
            self.requests_played += 1;
        }
        if let Some(file) = &self.resume_file {
            save_resume_point(file, &p.track.path);
        }
        self.played.push_front(p.track.clone());
        self.played.truncate(HISTORY);
        self.last_taken = Some(p.clone());
        self.place_requests();
        self.wake_planner_or_refill();
        Some(p.track)
    }

    /// Continues the running order after the track whose path `file`
    /// holds (the last one taken before a restart), or — on a first start,
    /// or when that track is gone — after a track chosen at random, so that
    /// no two starts open alike. Every track taken from now on is recorded
    /// in `file`.
    pub fn resume_from(&mut self, file: PathBuf, random: &mut impl rand::Rng) {
        let saved = std::fs::read(&file).ok().map(crate::catalog::path_from_key);
        let tracks = self.library.tracks();
        let last = saved
            .and_then(|path| tracks.iter().find(|t| t.path == path).cloned())
            .or_else(|| (!tracks.is_empty()).then(|| tracks[random.random_range(0..tracks.len())].clone()));
        self.resume_file = Some(file);
        if let Some(last) = last {
            tracing::info!("the running order continues after {}", last.display());
            self.played.clear();
            self.played.push_front(last);
            self.upcoming.clear();
            self.generation += 1;
            self.refill();
        }
    }

    /// Removes one track (it failed on air).
    pub fn remove(&mut self, id: i64) {
        let tracks: Vec<Arc<Track>> = self.library.tracks().iter().filter(|t| t.id != id).cloned().collect();
        if let Some(library) = self.library.with_tracks(&tracks) {
            self.set_library(Arc::new(library));
        }
    }

    /// Takes the next pick, refilling the plan under the lock first (tools
    /// and tests; the mixer uses `take`). `None` when nothing is playable.
    pub fn take_next(&mut self) -> Option<Arc<Track>> {
        self.refill();
        self.take()
    }

    /// Puts a pick back at the head of the plan (its transition could not
    /// happen; it will start next).
    pub fn push_front(&mut self, track: Arc<Track>) {
        if self.played.front().is_some_and(|t| t.id == track.id) {
            self.played.pop_front();
        }
        let by = match &self.last_taken {
            Some(p) if p.track.id == track.id => p.by.clone(),
            _ => "requeued".to_string(),
        };
        self.upcoming.push_front(Planned { track, by });
        self.upcoming.truncate(UPCOMING);
        self.generation += 1;
    }

    pub fn upcoming(&self) -> Vec<Planned> {
        self.upcoming.iter().cloned().collect()
    }

    /// Played and planned tracks, newest first: what the next pick follows.
    pub fn history(&self) -> Vec<Arc<Track>> {
        self.history_before(self.upcoming.len())
    }

    /// What a track placed at `at` in the plan follows, newest first.
    fn history_before(&self, at: usize) -> Vec<Arc<Track>> {
        self.upcoming.iter().take(at).rev().map(|p| &p.track).chain(self.played.iter()).take(HISTORY).cloned().collect()
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Replaces the wall clock plugins see (tests simulate hours of play).
    pub fn set_clock(&mut self, clock: impl Fn(Duration) -> Clock + Send + 'static) {
        self.clock = Box::new(clock);
    }

    /// Version of the active plugin.
    pub fn plugin_version(&self) -> Option<&str> {
        self.plugin.as_ref().map(|p| p.version.as_str())
    }

    /// Swaps in a plugin that passed its dry run; everything planned (the
    /// transition already rendering has left the plan) is planned again.
    pub fn install(&mut self, plugin: Plugin) {
        plugin.set_library(self.library.clone());
        tracing::info!("plugin {} version {} is active", plugin.name, plugin.version);
        self.configured = plugin.name.clone();
        self.plugin = Some(Arc::new(plugin));
        self.reloads += 1;
        self.error = None;
        self.upcoming.clear();
        self.plan_changed();
    }

    /// A saved plugin was rejected; the active one stays.
    pub fn reload_failed(&mut self, error: PluginError) {
        self.record(error, "reload");
    }

    /// The saved file is the active version again: nothing to report.
    pub fn clear_error(&mut self) {
        self.error = None;
    }

    fn record(&mut self, error: PluginError, during: &'static str) {
        tracing::warn!("plugin {} ({during}): {error}", self.configured);
        self.errors += 1;
        self.error = Some(ErrorReport {
            plugin: self.configured.clone(),
            message: error.message,
            line: error.line,
            during,
            at: timestamp(chrono::Local::now()),
        });
    }

    /// Fills the plan under the lock (until a planner takes over).
    fn refill(&mut self) {
        while let Some(job) = self.pick_job() {
            let result = job.run();
            if result.planned.is_none() {
                break;
            }
            self.complete(job, result);
        }
    }

    /// Queues a request for `track_id` (at most `limit` waiting). It is
    /// placed at the earliest point of the plan where the host rules allow
    /// it (the picks after that point are made again, to follow it); a
    /// track the rules keep out of the whole plan is refused.
    pub fn request(&mut self, track_id: i64, from: &str, limit: usize) -> Result<RequestEntry, RequestError> {
        let track = self.library.track(track_id).cloned().ok_or(RequestError::NoSuchTrack(track_id))?;
        if self.requests.iter().any(|r| r.track.id == track_id) {
            return Err(RequestError::AlreadyRequested);
        }
        if self.requests.len() >= limit {
            return Err(RequestError::QueueFull(self.requests.len()));
        }
        let after = self.last_request_position().map_or(0, |p| p + 1);
        if self.allowed_position(&track, after).is_none() {
            return Err(RequestError::NotAllowedNow(UPCOMING));
        }
        tracing::info!("request from {from}: {}", track.display());
        self.requests.push(Request { track, from: from.to_string(), at: timestamp(chrono::Local::now()) });
        self.place_requests();
        self.wake_planner_or_refill();
        Ok(self.requests().pop().expect("just queued"))
    }

    /// Drops the request for `track_id`; whether there was one.
    pub fn drop_request(&mut self, track_id: i64) -> bool {
        let Some(i) = self.requests.iter().position(|r| r.track.id == track_id) else { return false };
        self.requests.remove(i);
        self.unplace_requests();
        true
    }

    /// Puts the requests in the order of `ids` (those not named keep their
    /// order, after the named ones).
    pub fn reorder_requests(&mut self, ids: &[i64]) {
        let rank = |r: &Request| ids.iter().position(|id| *id == r.track.id).unwrap_or(ids.len());
        self.requests.sort_by_key(rank);
        self.unplace_requests();
    }

    /// The waiting requests, in the order they play.
    pub fn requests(&self) -> Vec<RequestEntry> {
        self.requests
            .iter()
            .map(|r| RequestEntry {
                id: r.track.id,
                title: r.track.title.clone(),
                artist: r.track.artist.clone(),
                from: r.from.clone(),
                at: r.at.clone(),
                position: self.upcoming.iter().position(|p| p.by == REQUESTED && p.track.id == r.track.id),
            })
            .collect()
    }

    pub fn requests_played(&self) -> u64 {
        self.requests_played
    }

    /// Takes every request out of the plan (with the picks after the first
    /// one, which followed it) and places them again in their order.
    fn unplace_requests(&mut self) {
        if let Some(first) = self.upcoming.iter().position(|p| p.by == REQUESTED) {
            self.upcoming.truncate(first);
        }
        self.generation += 1;
        self.place_requests();
        self.wake_planner_or_refill();
    }

    fn last_request_position(&self) -> Option<usize> {
        self.upcoming.iter().rposition(|p| p.by == REQUESTED)
    }

    /// The earliest place in the plan, from `from` on, where the host rules
    /// allow `track` to follow what plays before it.
    fn allowed_position(&self, track: &Arc<Track>, from: usize) -> Option<usize> {
        (from..=self.upcoming.len().min(UPCOMING - 1)).find(|&at| {
            rules::candidates(self.library.tracks(), &self.history_before(at), &self.rules).0.iter().any(|t| t.id == track.id)
        })
    }

    /// Places the requests not in the plan yet, in order, each after the
    /// one before it, as early as the rules allow; the picks after a request
    /// placed inside the plan are dropped (they are made again to follow it).
    fn place_requests(&mut self) {
        for i in 0..self.requests.len() {
            let track = self.requests[i].track.clone();
            if self.upcoming.iter().any(|p| p.by == REQUESTED && p.track.id == track.id) {
                continue;
            }
            let after = self.last_request_position().map_or(0, |p| p + 1);
            let Some(at) = self.allowed_position(&track, after) else { break };
            if at < self.upcoming.len() {
                self.upcoming.truncate(at);
                self.generation += 1;
            }
            self.upcoming.push_back(Planned { track, by: REQUESTED.to_string() });
        }
    }

    pub fn status(&self) -> OrderingStatus {
        let n = self.library.len();
        let length = self.library.tour_length();
        OrderingStatus {
            plugin: self.configured.clone(),
            version: self.plugin.as_ref().map(|p| p.version.clone()),
            loaded_at: self.plugin.as_ref().map(|p| timestamp(p.loaded_at)),
            reloads: self.reloads,
            errors: self.errors,
            fallbacks: self.fallbacks,
            error: self.error.clone(),
            upcoming: self
                .upcoming
                .iter()
                .map(|p| UpcomingEntry {
                    id: p.track.id,
                    title: p.track.title.clone(),
                    artist: p.track.artist.clone(),
                    bpm: p.track.bpm,
                    camelot: p.track.camelot.clone(),
                    energy: p.track.energy,
                    by: p.by.clone(),
                })
                .collect(),
            requests: self.requests(),
            requests_played: self.requests_played,
            tour: TourStatus { tracks: n, length, mean_step: if n > 0 { length / n as f64 } else { 0.0 } },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ordering::plugin::Limits;
    use crate::ordering::{rules, SHIPPED_PLUGINS};

    fn tracks(n: i64) -> Vec<Arc<Track>> {
        (1..=n)
            .map(|id| {
                Arc::new(Track {
                    id,
                    path: format!("/{id}.mp3").into(),
                    title: format!("t{id}"),
                    artist: format!("artist {}", id % 3),
                    album: String::new(),
                    genre: String::new(),
                    duration_s: 100.0,
                    bpm: 110.0 + id as f64,
                    key: "A minor".into(),
                    camelot: "8A".into(),
                    energy: 0.5,
                    loudness_lufs: -14.0,
                    steadiness: 1.0,
                })
            })
            .collect()
    }

    fn scheduler(n: i64, source: &str) -> Scheduler {
        let lib = Arc::new(Library::build(&tracks(n), Default::default()));
        Scheduler::new(lib, Rules::default(), "test", Plugin::compile("test", source, Limits::default(), 1))
    }

    #[test]
    fn a_pick_made_before_the_tour_stood_in_is_made_again() {
        // The planner starts a pick with nothing played; before it is back,
        // the mixer takes the tour's pick (the plan was empty): the planner's
        // pick followed a history without it, and could be that very track.
        let mut s = scheduler(2, "fn next_track(ctx) { ctx.candidates[0].id }");
        let (wake, _woken) = crossbeam_channel::bounded(1);
        s.attach_planner(wake);
        // The library arrives (the first analyses): the plan is empty.
        s.set_library(s.library());
        let job = s.pick_job().unwrap();
        let on_air = s.take().unwrap();
        let result = job.run();
        assert_eq!(result.planned.as_ref().map(|p| p.track.id), Some(on_air.id), "the stale pick repeats the track");
        s.complete(job, result);
        s.refill();
        assert_ne!(s.take().unwrap().id, on_air.id, "the same track twice in a row");
    }

    #[test]
    fn requests_are_placed_early_within_the_rules() {
        let mut s = scheduler(30, "fn next_track(ctx) { ctx.candidates[0].id }");
        let played = s.take_next().unwrap();
        // A track by the artist just played waits a track (separation 2).
        let same_artist = tracks(30).into_iter().find(|t| t.artist == played.artist && t.id != played.id
            && !s.upcoming().iter().any(|p| p.track.id == t.id)).unwrap();
        let other = tracks(30).into_iter().find(|t| t.artist != played.artist && t.artist != s.upcoming()[0].track.artist
            && !s.upcoming().iter().any(|p| p.track.id == t.id)).unwrap();
        let e = s.request(same_artist.id, "10.0.0.1", 3).unwrap();
        assert!(e.position.is_some_and(|p| (1..=2).contains(&p)), "{e:?}");
        assert_eq!(s.request(same_artist.id, "10.0.0.2", 3), Err(RequestError::AlreadyRequested));
        assert_eq!(s.request(played.id, "x", 3), Err(RequestError::NotAllowedNow(UPCOMING)), "just played");
        assert_eq!(s.request(9999, "x", 3), Err(RequestError::NoSuchTrack(9999)));
        let e2 = s.request(other.id, "10.0.0.3", 3).unwrap();
        assert!(e2.position > e.position, "requests keep their order: {e:?} {e2:?}");
        assert_eq!(s.upcoming().len(), UPCOMING, "the plan is refilled after the requests");
        // Reordered: the second goes first; the plan still obeys the rules.
        s.reorder_requests(&[other.id]);
        let r = s.requests();
        assert_eq!(r[0].id, other.id);
        assert!(r[0].position < r[1].position, "{r:?}");
        let mut history: Vec<Arc<Track>> = vec![played.clone()];
        for p in s.upcoming() {
            assert_eq!(rules::violation(&p.track, &history, s.rules()), None, "{:?}", p.track.title);
            history.insert(0, p.track.clone());
        }
        // Taken in order; each counts once.
        let taken: Vec<i64> = (0..UPCOMING).map(|_| s.take().unwrap().id).collect();
        let (a, b) = (taken.iter().position(|id| *id == other.id), taken.iter().position(|id| *id == same_artist.id));
        assert!(a.is_some() && a < b, "{taken:?}");
        assert_eq!((s.requests_played(), s.requests().len()), (2, 0));
        assert!(!s.drop_request(other.id));
    }

    #[test]
    fn failing_plugin_falls_back_to_the_tour_and_counts() {
        let mut s = scheduler(12, "fn next_track(ctx) { if ctx.history.len() > 2 { throw \"boom\"; } ctx.candidates[0].id }");
        let picks: Vec<i64> = (0..8).map(|_| s.take_next().unwrap().id).collect();
        let st = s.status();
        assert!(st.errors > 0 && st.fallbacks == st.errors, "{st:?}");
        let e = st.error.unwrap();
        assert!(e.message.contains("boom") && e.line == Some(1) && e.during == "pick", "{e:?}");
        assert!(st.upcoming.iter().all(|u| u.by == FALLBACK), "{:?}", st.upcoming);
        let mut distinct = picks.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), picks.len(), "no repeats within the window: {picks:?}");
    }

    #[test]
    fn install_replans_and_broken_load_uses_the_tour() {
        let mut s = scheduler(12, "fn next_track(ctx) {");
        assert_eq!(s.status().errors, 1);
        assert!(s.upcoming().iter().all(|p| p.by == BUILTIN));
        let p = Plugin::compile("pick7", "fn next_track(ctx) { for c in ctx.candidates { if c.id == 7 { return 7; } } ctx.candidates[0].id }", Limits::default(), 1).unwrap();
        s.install(p);
        let st = s.status();
        assert_eq!((st.reloads, st.errors), (1, 1));
        assert!(st.error.is_none());
        assert_eq!(st.upcoming[0].id, 7, "{:?}", st.upcoming);
        assert!(st.upcoming.iter().all(|u| u.by == "pick7"));
    }

    fn correlation(xy: &[(f64, f64)]) -> f64 {
        let n = xy.len() as f64;
        let (mx, my) = (xy.iter().map(|p| p.0).sum::<f64>() / n, xy.iter().map(|p| p.1).sum::<f64>() / n);
        let cov: f64 = xy.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
        let (vx, vy): (f64, f64) = (xy.iter().map(|p| (p.0 - mx).powi(2)).sum(), xy.iter().map(|p| (p.1 - my).powi(2)).sum());
        cov / (vx * vy).sqrt()
    }

    #[test]
    fn shipped_plugins_make_valid_picks_over_a_long_run() {
        let tracks = crate::synth::catalogue(80, 11);
        let library = Arc::new(Library::build(&tracks, Default::default()));
        let rules = Rules::default();
        let random_step = {
            let ids: Vec<i64> = tracks.iter().map(|t| t.id).collect();
            library.order_length(&ids).unwrap() / ids.len() as f64
        };
        for (file, source) in SHIPPED_PLUGINS.iter().filter(|(f, _)| f.ends_with(".rhai")) {
            let name = file.trim_end_matches(".rhai");
            let plugin = Plugin::compile(name, source, Limits::default(), 5);
            let mut s = Scheduler::new(library.clone(), rules, name, plugin);
            // Simulated time: the clock moves on by each track taken.
            let elapsed = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let e = elapsed.clone();
            s.set_clock(move |ahead| {
                let t = (e.load(std::sync::atomic::Ordering::Relaxed) + ahead.as_secs()) / 60;
                Clock { hour: (t / 60 % 24) as u32, minute: (t % 60) as u32, weekday: 0 }
            });
            let mut played: Vec<Arc<Track>> = Vec::new();
            let mut steps = 0.0;
            let mut arc = Vec::new();
            for _ in 0..400 {
                let history: Vec<Arc<Track>> = played.iter().rev().cloned().collect();
                let minute = elapsed.load(std::sync::atomic::Ordering::Relaxed) / 60 % 60;
                let t = s.take_next().expect("a pick");
                elapsed.fetch_add(t.duration_s as u64, std::sync::atomic::Ordering::Relaxed);
                arc.push((if minute < 45 { minute as f64 / 45.0 } else { (60 - minute) as f64 / 15.0 }, t.energy));
                assert_eq!(rules::violation(&t, &history, &rules), None, "{name}");
                if let Some(prev) = played.last() {
                    steps += library.distance(prev.id, t.id).unwrap();
                }
                played.push(t);
            }
            let st = s.status();
            assert_eq!((st.errors, st.fallbacks), (0, 0), "{name}: {:?}", st.error);
            assert!(st.upcoming.iter().all(|u| u.by == name), "{name}: {:?}", st.upcoming);
            let mut seen: Vec<i64> = played.iter().map(|t| t.id).collect();
            seen.sort();
            seen.dedup();
            let mean = steps / (played.len() - 1) as f64;
            println!("{name}: {} distinct tracks in 400 picks, mean step {mean:.2} (random order {random_step:.2})", seen.len());
            assert!(seen.len() >= 40, "{name} plays only {} tracks", seen.len());
            if *file == "energy_arc.rhai" {
                let r = correlation(&arc);
                println!("energy_arc: correlation of energy with the hour's arc {r:.2}");
                assert!(r > 0.5, "energy does not follow the arc: r = {r:.2}");
            } else {
                assert!(mean < 0.75 * random_step, "{name}: mean step {mean:.2} vs random {random_step:.2}");
            }
        }
    }

    #[test]
    fn a_large_library_keeps_its_plan_when_one_track_arrives() {
        let all = crate::synth::catalogue(60, 3);
        let source = "fn next_track(ctx) { ctx.candidates[0].id }";
        let lib = Arc::new(Library::build(&all[..59], Default::default()));
        let mut s = Scheduler::new(lib.clone(), Rules::default(), "t", Plugin::compile("t", source, Limits::default(), 1));
        let plan: Vec<i64> = s.upcoming().iter().map(|p| p.track.id).collect();
        let mut grown = (*lib).clone();
        grown.update(&all);
        s.set_library(Arc::new(grown.clone()));
        assert_eq!(plan, s.upcoming().iter().map(|p| p.track.id).collect::<Vec<_>>());
        // A planned track that is gone takes the rest of the plan with it.
        let gone = plan[2];
        let rest: Vec<Arc<Track>> = all.iter().filter(|t| t.id != gone).cloned().collect();
        grown.update(&rest);
        s.set_library(Arc::new(grown));
        let now: Vec<i64> = s.upcoming().iter().map(|p| p.track.id).collect();
        assert_eq!(now[..2], plan[..2]);
        assert!(!now.contains(&gone) && now.len() == UPCOMING, "{now:?}");
    }

    #[test]
    fn removed_tracks_leave_the_schedule() {
        let mut s = scheduler(6, "fn next_track(ctx) { ctx.candidates[0].id }");
        s.remove(3);
        for _ in 0..40 {
            assert_ne!(s.take_next().unwrap().id, 3);
        }
        s.set_library(Arc::new(Library::new(Default::default())));
        assert!(s.take_next().is_none());
    }
}
