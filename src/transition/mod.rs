//! Beatmatched transitions: plan where track A hands over to track B
//! ([`plan`]), then render the hand-over ([`render`]) — B time-stretched
//! onto A's beats with its downbeats on A's, the tempo gliding to B's own,
//! an equal-power crossfade with a bass swap, loudness matching and a
//! limiter. Falls back to a silence-trimming crossfade when beats cannot be
//! trusted. Runs on the mixer thread or in `nonstop mix`; never on the
//! async runtime.

pub mod dsp;
mod plan;
mod render;

pub use plan::{plan, track_gain_db, Mode, Plan, TransitionSettings};
pub use render::{render, Rendered};

/// A transition as it aired, as /status shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TransitionInfo {
    pub from: String,
    pub to: String,
    #[serde(flatten)]
    pub plan: Plan,
    /// Media time (seconds) at which it started.
    pub at_s: f64,
}
