//! The indexer thread keeps the catalogue current while the station plays:
//! it syncs the library folders and analyses pending files (on its own pool
//! of worker threads), then sleeps until the library watcher (notify), a
//! rescan request, a file's retry time or the periodic rescan wakes it. The
//! periodic rescan catches whatever a watcher missed (a network mount, a
//! watcher that died) and re-creates a watcher that failed.
//!
//! `on_change` refreshes what the scheduler may play. It rebuilds the
//! similarity graph, so it runs at most every `CHANGE_EVERY` during a long
//! analysis run (not after every file: that would be quadratic over a first
//! scan), first after the second file, and once at the end.
//!
//! Supervised: a panic in one cycle is recorded and the next cycle starts.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use notify::{RecursiveMode, Watcher};

use super::{analyse_pending, Catalog};
use crate::analysis::AnalysisLimits;
use crate::supervise::{self, Exit, Health};

/// Quiet time after the last file-system event before a sync: a file being
/// copied produces many events.
const DEBOUNCE: Duration = Duration::from_millis(750);
/// Least time between two schedule refreshes during an analysis run.
const CHANGE_EVERY: Duration = Duration::from_secs(2);

/// What the indexer works on.
#[derive(Debug, Clone)]
pub struct IndexerSettings {
    /// The library first; then the demo library, if any.
    pub roots: Vec<PathBuf>,
    pub workers: usize,
    pub limits: AnalysisLimits,
    /// Full rescan this often, watcher or not.
    pub rescan_every: Duration,
}

pub struct Indexer {
    wake: Sender<()>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Indexer {
    /// A handle that asks for a rescan (the admin API's `rescan`).
    pub fn rescan_handle(&self) -> Sender<()> {
        self.wake.clone()
    }

    /// Starts indexing; `on_change` runs after each sync that changed
    /// something and during and after analysis runs.
    pub fn spawn(
        catalog: Arc<Catalog>,
        settings: IndexerSettings,
        health: Arc<Health>,
        on_change: impl Fn() + Send + 'static,
    ) -> std::io::Result<Indexer> {
        // Wake-ups: a bounded channel of one, as a "something changed" flag.
        let (wake, wakes) = crossbeam_channel::bounded(1);
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread_wake = wake.clone();
        let thread = std::thread::Builder::new().name("indexer".into()).spawn(move || {
            // Dropping the watcher stops its thread: it lives as long as this one.
            let watcher = Mutex::new(None);
            let mut first = true;
            supervise::run(&health, &thread_stop, || {
                let mut w = watcher.lock().unwrap_or_else(|p| p.into_inner());
                let cycle = Cycle { catalog: &catalog, settings: &settings, stop: &thread_stop, health: &health };
                cycle.run(&mut w, &thread_wake, &wakes, first, &on_change);
                first = false;
                Exit::<&str>::Done
            })
        })?;
        Ok(Indexer { wake, stop, thread: Some(thread) })
    }

    /// Asks for a sync and analysis of anything new.
    pub fn rescan(&self) {
        let _ = self.wake.try_send(());
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.wake.try_send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Cycle<'a> {
    catalog: &'a Catalog,
    settings: &'a IndexerSettings,
    stop: &'a AtomicBool,
    health: &'a Health,
}

impl Cycle<'_> {
    /// Loops sync → analyse → sleep until stopped. Returns on stop.
    fn run(
        &self,
        watcher: &mut Option<notify::RecommendedWatcher>,
        wake: &Sender<()>,
        wakes: &Receiver<()>,
        mut first: bool,
        on_change: &dyn Fn(),
    ) {
        loop {
            if watcher.is_none() {
                *watcher = watch(&self.settings.roots, wake.clone(), first);
            }
            first = false;
            self.sync_and_analyse(on_change);
            // Sleep until something changes, a retry is due or the periodic
            // rescan, then let a burst of events settle.
            let retry = self.catalog.next_retry_in().ok().flatten().map(|s| Duration::from_secs(s.max(1)));
            let sleep = retry.map_or(self.settings.rescan_every, |r| r.min(self.settings.rescan_every));
            match wakes.recv_timeout(sleep) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            loop {
                match wakes.recv_timeout(DEBOUNCE) {
                    Ok(()) if !self.stop.load(Ordering::Relaxed) => continue,
                    Err(RecvTimeoutError::Timeout) => break,
                    _ => return,
                }
            }
        }
    }

    fn sync_and_analyse(&self, on_change: &dyn Fn()) {
        let roots: Vec<&std::path::Path> = self.settings.roots.iter().map(|p| p.as_path()).collect();
        match self.catalog.sync_roots(&roots) {
            Ok(r) if r.added + r.removed > 0 => {
                tracing::info!("library: {} files, {} to analyse, {} removed", r.files, r.added, r.removed);
                on_change();
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("{e}");
                self.health.error(e.to_string());
            }
        }
        let mut last_change = Instant::now() - CHANGE_EVERY;
        let mut unreported = false;
        // The first change waits for a second result (or the end of the
        // run): on a first start the stream opens with the first track,
        // and the pick after it, made within a second, should have
        // another to choose.
        let mut results = 0usize;
        let result = analyse_pending(self.catalog, self.settings.workers, self.settings.limits, self.stop, |_, _| {
            results += 1;
            if results >= 2 && last_change.elapsed() >= CHANGE_EVERY {
                on_change();
                last_change = Instant::now();
                unreported = false;
            } else {
                unreported = true;
            }
        });
        if unreported {
            on_change();
        }
        match result {
            Ok(r) if r.analysed + r.failed + r.retrying > 0 => tracing::info!(
                "analysed {} files ({:.0} s of audio), {} failed, {} to retry",
                r.analysed,
                r.audio_s,
                r.failed,
                r.retrying
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("{e}");
                self.health.error(e.to_string());
            }
        }
    }
}

/// A watcher on every root that exists. `None` (logged once, on the first
/// try) if none can be watched: the periodic rescan still finds changes.
fn watch(roots: &[PathBuf], wake: Sender<()>, log: bool) -> Option<notify::RecommendedWatcher> {
    let handler = move |event: notify::Result<notify::Event>| {
        if let Ok(e) = event {
            if !e.kind.is_access() {
                let _ = wake.try_send(());
            }
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            if log {
                tracing::warn!("cannot watch the library: {e}; changes are found by the periodic rescan");
            }
            return None;
        }
    };
    let mut any = false;
    for root in roots.iter().filter(|r| r.exists()) {
        match watcher.watch(root, RecursiveMode::Recursive) {
            Ok(()) => any = true,
            Err(e) if log => {
                tracing::warn!("cannot watch {}: {e}; changes are found by the periodic rescan", root.display())
            }
            Err(_) => {}
        }
    }
    any.then_some(watcher)
}
