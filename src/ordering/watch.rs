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

/// Switches the active plugin (the admin API): the same compile and dry
/// run as a saved edit, then the watcher follows the new file.
#[derive(Clone)]
pub struct PluginSwitch {
    settings: Arc<Mutex<ReloadSettings>>,
    scheduler: Arc<Mutex<Scheduler>>,
}

impl PluginSwitch {
    pub fn new(settings: ReloadSettings, scheduler: Arc<Mutex<Scheduler>>) -> PluginSwitch {
        PluginSwitch { settings: Arc::new(Mutex::new(settings)), scheduler }
    }

    fn settings(&self) -> ReloadSettings {
        self.settings.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn dir(&self) -> PathBuf {
        self.settings().file.parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."))
    }

    /// The plugins in the folder, sorted.
    pub fn available(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir())
            .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".rhai").map(str::to_string)).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Makes `name` the active plugin if it compiles and passes its dry run
    /// against the live catalogue; otherwise the active one stays. Blocks
    /// for the dry run: call it off the async threads.
    pub fn switch(&self, name: &str) -> Result<String, PluginError> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)) {
            return Err(PluginError { message: format!("{name:?} is not a plugin name (letters, digits, - and _)"), line: None });
        }
        if !self.available().iter().any(|n| n == name) {
            let message = format!("there is no plugin {name:?} (plugins: {})", self.available().join(", "));
            return Err(PluginError { message, line: None });
        }
        let mut settings = self.settings();
        settings.file = self.dir().join(format!("{name}.rhai"));
        check_and_install(&settings, &self.scheduler, true)?;
        let version = self.scheduler.lock().unwrap_or_else(|p| p.into_inner()).plugin_version().unwrap_or_default().to_string();
        *self.settings.lock().unwrap_or_else(|p| p.into_inner()) = settings;
        Ok(version)
    }
}

pub struct PluginWatcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _watcher: notify::RecommendedWatcher,
}

impl PluginWatcher {
    /// Watches the active plugin's folder; a change to whichever file
    /// `switch` names active is checked and swapped in.
    pub fn spawn(switch: PluginSwitch, health: Arc<Health>) -> std::io::Result<PluginWatcher> {
        let dir = switch.dir();
        let (tx, rx) = crossbeam_channel::unbounded::<PathBuf>();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(e) = event {
                if !e.kind.is_access() {
                    for p in e.paths {
                        let _ = tx.send(p);
                    }
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
                        Ok(path) if path.file_name() == switch.settings().file.file_name() => changed_at = Some(Instant::now()),
                        Ok(_) => {}
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return Exit::<&str>::Done,
                    }
                    if changed_at.is_some_and(|t| t.elapsed() >= SETTLE) {
                        changed_at = None;
                        let _ = check_and_install(&switch.settings(), &switch.scheduler, false);
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

/// Checks the file's current version and swaps it in, or records why not
/// (and returns it). `switching`: a different plugin than the active one
/// is asked for, so an identical version is not "unchanged".
fn check_and_install(settings: &ReloadSettings, scheduler: &Mutex<Scheduler>, switching: bool) -> Result<(), PluginError> {
    let lock = || scheduler.lock().unwrap_or_else(|p| p.into_inner());
    let source = match std::fs::read_to_string(&settings.file) {
        Ok(s) => s,
        Err(e) => {
            let message = format!("cannot read {}: {e}; the previous plugin stays active", settings.file.display());
            let error = PluginError { message, line: None };
            if !switching {
                lock().reload_failed(error.clone());
            }
            return Err(error);
        }
    };
    let (library, history, rules, active) = {
        let s = lock();
        (s.library(), s.history(), *s.rules(), s.plugin_version().map(str::to_string))
    };
    if !switching && active.as_deref() == Some(version_of(&source).as_str()) {
        // Saved without changes, or back to the version that is playing.
        lock().clear_error();
        return Ok(());
    }
    let name = super::plugin::name_of(&settings.file);
    let checked = Plugin::compile(&name, &source, settings.limits, settings.seed)
        .and_then(|p| dry_run(&p, &library, &rules, &history, DRY_RUN_PICKS).map(|_| p));
    match checked {
        Ok(p) => {
            lock().install(p);
            Ok(())
        }
        // A rejected edit is the active plugin's error; a rejected switch
        // is only the caller's (the active plugin is fine).
        Err(e) if switching => {
            tracing::warn!("switch to plugin {name} refused: {e}");
            Err(e)
        }
        Err(e) => {
            lock().reload_failed(e.clone());
            Err(e)
        }
    }
}
