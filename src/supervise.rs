//! Supervision: every long-running stage (mixer, encoder, indexer,
//! broadcaster, plugin watcher) runs its body under `run`, which contains a
//! panic or an error where it happened, records it on the stage's
//! [`Health`], waits a moment and starts the body again. Nothing a track,
//! a tag or a plugin does can end the process; `/status` shows each stage's
//! restarts and its last error.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::audio::panic_message;

/// First wait before a restart; doubled for each failure within
/// `STABLE_AFTER` of the previous restart, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A body that ran this long before failing starts again at once.
const STABLE_AFTER: Duration = Duration::from_secs(30);

/// One stage's health, as `/status` shows it.
#[derive(Debug)]
pub struct Health {
    pub name: &'static str,
    alive: AtomicBool,
    restarts: AtomicU64,
    last_error: Mutex<Option<LastError>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastError {
    pub message: String,
    /// Local time, RFC 3339.
    pub at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    pub alive: bool,
    pub restarts: u64,
    pub last_error: Option<LastError>,
}

impl Health {
    pub fn new(name: &'static str) -> Arc<Health> {
        Arc::new(Health { name, alive: AtomicBool::new(false), restarts: AtomicU64::new(0), last_error: Mutex::new(None) })
    }

    pub fn set_alive(&self, alive: bool) {
        self.alive.store(alive, Ordering::Relaxed);
    }

    /// Records an error that the stage handled itself (no restart).
    pub fn error(&self, message: impl Into<String>) {
        let message = message.into();
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(LastError { message, at: chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false) });
    }

    /// Records a failure after which the stage starts again.
    pub fn restarted(&self, message: String) {
        tracing::error!("{}: {message}; restarting", self.name);
        self.restarts.fetch_add(1, Ordering::Relaxed);
        self.error(message);
    }

    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    pub fn report(&self) -> HealthReport {
        HealthReport {
            alive: self.alive.load(Ordering::Relaxed),
            restarts: self.restarts(),
            last_error: self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}

/// How a supervised body ended.
pub enum Exit<E> {
    /// Asked to stop (or its input closed): do not restart.
    Done,
    /// Failed: restart after recording the error.
    Failed(E),
}

/// Runs `body` until it returns `Exit::Done`, restarting it (with backoff)
/// when it fails or panics. `stop` is checked between attempts. Call on the
/// stage's own thread.
pub fn run<E: std::fmt::Display>(health: &Health, stop: &AtomicBool, mut body: impl FnMut() -> Exit<E>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        health.set_alive(true);
        let started = std::time::Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut body));
        health.set_alive(false);
        let message = match outcome {
            Ok(Exit::Done) => return,
            Ok(Exit::Failed(e)) => e.to_string(),
            Err(payload) => format!("panicked: {}", panic_message(&*payload)),
        };
        health.restarted(message);
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if started.elapsed() >= STABLE_AFTER {
            backoff = FIRST_BACKOFF;
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Resolves once `shutdown` turns true (or its sender is gone). The watch
/// guard is dropped inside, so the future stays `Send`.
pub async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// Test switches that make a stage fail on purpose, to show that the
/// supervision works (the fault tests flip them on a running station).
#[derive(Debug, Default)]
pub struct Faults {
    pub mixer_panic: AtomicBool,
    pub encoder_error: AtomicBool,
}

impl Faults {
    /// Whether `switch` was on (it is turned off: one fault per flip).
    pub fn take(switch: &AtomicBool) -> bool {
        switch.swap(false, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_and_errors_restart_until_done() {
        let health = Health::new("test");
        let stop = AtomicBool::new(false);
        let mut calls = 0;
        run(&health, &stop, || {
            calls += 1;
            match calls {
                1 => panic!("boom"),
                2 => Exit::Failed("bad"),
                _ => Exit::Done,
            }
        });
        assert_eq!(calls, 3);
        let r = health.report();
        assert_eq!(r.restarts, 2);
        assert_eq!(r.last_error.unwrap().message, "bad");
        assert!(!r.alive);
    }
}
