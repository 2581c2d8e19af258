//! The indexer thread keeps the catalogue current while the station plays:
//! it syncs the library folder and analyses pending files (on its own pool
//! of worker threads), then sleeps until the library watcher (notify) or a
//! rescan request wakes it. After every analysed file it calls `on_change`,
//! which refreshes what the scheduler may play.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use notify::{RecursiveMode, Watcher};

use super::{analyse_pending, Catalog};

/// Quiet time after the last file-system event before a sync: a file being
/// copied produces many events.
const DEBOUNCE: Duration = Duration::from_millis(750);

pub struct Indexer {
    wake: Sender<()>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    // Dropping the watcher stops its thread; kept for the indexer's lifetime.
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Indexer {
    /// Starts indexing `library`; `on_change` runs after each sync and each
    /// analysed file.
    pub fn spawn(
        catalog: Arc<Catalog>,
        library: PathBuf,
        workers: usize,
        on_change: impl Fn() + Send + 'static,
    ) -> std::io::Result<Indexer> {
        // Wake-ups: a bounded channel of one, as a "something changed" flag.
        let (wake, wakes) = crossbeam_channel::bounded(1);
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = watch(&library, wake.clone());
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("indexer".into())
            .spawn(move || run(&catalog, &library, workers, &thread_stop, &wakes, on_change))?;
        Ok(Indexer { wake, stop, thread: Some(thread), _watcher: watcher })
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

fn watch(library: &std::path::Path, wake: Sender<()>) -> Option<notify::RecommendedWatcher> {
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
            tracing::warn!("cannot watch {}: {e}; changes are picked up on rescan only", library.display());
            return None;
        }
    };
    if let Err(e) = watcher.watch(library, RecursiveMode::Recursive) {
        tracing::warn!("cannot watch {}: {e}; changes are picked up on rescan only", library.display());
        return None;
    }
    Some(watcher)
}

fn run(
    catalog: &Catalog,
    library: &std::path::Path,
    workers: usize,
    stop: &AtomicBool,
    wakes: &Receiver<()>,
    on_change: impl Fn(),
) {
    loop {
        match catalog.sync(library) {
            Ok(r) if r.added + r.removed > 0 => {
                tracing::info!("library: {} files, {} to analyse, {} removed", r.files, r.added, r.removed);
                on_change();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("{e}"),
        }
        match analyse_pending(catalog, workers, stop, |_, _| on_change()) {
            Ok(r) if r.analysed + r.failed > 0 => {
                tracing::info!("analysed {} files ({:.0} s of audio), {} failed", r.analysed, r.audio_s, r.failed)
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("{e}"),
        }
        // Sleep until something changes, then let the burst of events settle.
        if wakes.recv().is_err() || stop.load(Ordering::Relaxed) {
            return;
        }
        loop {
            match wakes.recv_timeout(DEBOUNCE) {
                Ok(()) if !stop.load(Ordering::Relaxed) => continue,
                Err(RecvTimeoutError::Timeout) => break,
                _ => return,
            }
        }
    }
}
