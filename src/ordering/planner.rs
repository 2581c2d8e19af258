//! The planner thread keeps the scheduler's plan full: it copies what a
//! pick needs under the lock, runs the plugin outside it (up to the
//! plugin's time limit), and adds the result if the plan has not changed
//! meanwhile. Picks are made minutes before they air, so a slow or failing
//! plugin never holds up the mixer, which only takes what is planned (or,
//! with an empty plan, the tour's next track).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::Scheduler;
use crate::supervise::{self, Exit, Health};

/// Longest sleep with nothing to do; a change in the plan wakes it sooner.
const IDLE: Duration = Duration::from_millis(500);

pub struct Planner {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Planner {
    pub fn spawn(scheduler: Arc<Mutex<Scheduler>>, health: Arc<Health>) -> std::io::Result<Planner> {
        // A "plan changed" flag: one pending wake-up is enough.
        let (wake, wakes) = crossbeam_channel::bounded(1);
        scheduler.lock().unwrap_or_else(|p| p.into_inner()).attach_planner(wake);
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new().name("planner".into()).spawn(move || {
            let lock = || scheduler.lock().unwrap_or_else(|p| p.into_inner());
            supervise::run(&health, &thread_stop, || loop {
                if thread_stop.load(Ordering::Relaxed) {
                    return Exit::<&str>::Done;
                }
                let job = lock().pick_job();
                match job {
                    Some(job) => {
                        let result = job.run();
                        let empty = result.is_empty();
                        lock().complete(job, result);
                        if empty {
                            let _ = wakes.recv_timeout(IDLE);
                        }
                    }
                    None => {
                        let _ = wakes.recv_timeout(IDLE);
                    }
                }
            })
        })?;
        Ok(Planner { stop, thread: Some(thread) })
    }
}

impl Drop for Planner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
