//! Hot reload: notify watches the plugins folder; when the active plugin's
//! file changes (and has settled), it is compiled and dry-run against the
//! live catalogue on this thread, then swapped into the scheduler — or
//! rejected, with the previous plugin still playing and the error on
//! /status.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;
use notify::{RecursiveMode, Watcher};

use super::plugin::{version_of, Limits, Plugin, PluginError};
use crate::supervise::{self, Exit, Health};
use super::{dry_run, Scheduler, DRY_RUN_PICKS};

/// Quiet time after the last event before reloading: editors write a file
/// in several steps (truncate, write, rename).
const SETTLE: Duration = Duration::from_millis(200);

/// What the watcher needs to check a new version.
#[derive(Debug, Clone)]
pub struct ReloadSettings {
    /// The active plugin's file.
    pub file: PathBuf,
    pub limits: Limits,
    pub seed: u64,
}

pub struct PluginWatcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _watcher: notify::RecommendedWatcher,
}

impl PluginWatcher {
    pub fn spawn(settings: ReloadSettings, scheduler: Arc<Mutex<Scheduler>>, health: Arc<Health>) -> std::io::Result<PluginWatcher> {
        let dir = settings.file.parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        let name = settings.file.file_name().map(|n| n.to_owned());
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(e) = event {
                if !e.kind.is_access() && e.paths.iter().any(|p| p.file_name() == name.as_deref()) {
                    let _ = tx.send(());
                }
            }
        })
        .map_err(std::io::Error::other)?;
        watcher.watch(&dir, RecursiveMode::NonRecursive).map_err(std::io::Error::other)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new().name("plugins".into()).spawn(move || {
            let mut changed_at: Option<Instant> = None;
            supervise::run(&health, &thread_stop, || {
                while !thread_stop.load(Ordering::Relaxed) {
                    match rx.recv_timeout(Duration::from_millis(50)) {
                        Ok(()) => changed_at = Some(Instant::now()),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return Exit::<&str>::Done,
                    }
                    if changed_at.is_some_and(|t| t.elapsed() >= SETTLE) {
                        changed_at = None;
                        reload(&settings, &scheduler);
                    }
                }
                Exit::Done
            })
        })?;
        Ok(PluginWatcher { stop, thread: Some(thread), _watcher: watcher })
    }
}

impl Drop for PluginWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Checks the file's current version and swaps it in, or records why not.
fn reload(settings: &ReloadSettings, scheduler: &Mutex<Scheduler>) {
    let lock = || scheduler.lock().unwrap_or_else(|p| p.into_inner());
    let source = match std::fs::read_to_string(&settings.file) {
        Ok(s) => s,
        Err(e) => {
            let message = format!("cannot read {}: {e}; the previous plugin stays active", settings.file.display());
            lock().reload_failed(PluginError { message, line: None });
            return;
        }
    };
    let (library, history, rules, active) = {
        let s = lock();
        (s.library(), s.history(), *s.rules(), s.plugin_version().map(str::to_string))
    };
    if active.as_deref() == Some(version_of(&source).as_str()) {
        // Saved without changes, or back to the version that is playing.
        lock().clear_error();
        return;
    }
    let name = super::plugin::name_of(&settings.file);
    let checked = Plugin::compile(&name, &source, settings.limits, settings.seed)
        .and_then(|p| dry_run(&p, &library, &rules, &history, DRY_RUN_PICKS).map(|_| p));
    match checked {
        Ok(p) => lock().install(p),
        Err(e) => lock().reload_failed(e),
    }
}
