//! Beatmatched transitions: plan where track A hands over to track B
//! ([`plan`]), then render the hand-over ([`render`]) — B time-stretched
//! onto A's beats with its downbeats on A's, the tempo gliding to B's own,
//! an equal-power crossfade with a bass swap, loudness matching and a
//! limiter. Falls back to a silence-trimming crossfade when beats cannot be
//! trusted. Runs on the mixer thread or in `nonstop mix`; never on the
//! async runtime.

pub mod align;
pub mod dsp;
mod plan;
mod render;

pub use plan::{plan, plan_after, skip_cut, track_gain_db, Fallback, Mode, Plan, TransitionSettings};
pub use align::Alignment;
pub use render::{render, render_into, Rendered};

/// A transition as it aired, as /status shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TransitionInfo {
    pub from: String,
    pub to: String,
    #[serde(flatten)]
    pub plan: Plan,
    /// Media time (seconds) at which it started.
    pub at_s: f64,
    /// A beatmatched render's alignment as measured from its audio (also
    /// kept when the measurement sent it back to a crossfade).
    pub alignment: Option<Alignment>,
}

/// A beatmatched render measured worse than this (median, ms) is not aired
/// as beatmatched: a DJ hears 10 ms as a flam.
pub const MAX_MISALIGNMENT_MS: f64 = 15.0;

/// Renders `plan` (see `render`); a beatmatched render whose measured
/// alignment is not acceptable is rendered again as a plain crossfade from
/// the same place, saying why. `post_s` gives the seconds to render after
/// the overlap for a plan. Returns the render and the plan rendered; the
/// render's `alignment` is the beatmatched attempt's in either case.
/// `recycled`: an allocation to render into (see `render_into`).
#[allow(clippy::too_many_arguments)]
pub fn render_checked(
    a: &[f32],
    b: &[f32],
    plan: &Plan,
    analyses: (&crate::analysis::Analysis, &crate::analysis::Analysis),
    s: &TransitionSettings,
    rate: crate::units::SampleRate,
    pre_s: f64,
    post_s: impl Fn(&Plan) -> f64,
    keep_parts: bool,
    recycled: Vec<f32>,
) -> (Rendered, Plan) {
    let r = render_into(recycled, a, b, plan, s, rate, pre_s, post_s(plan), keep_parts);
    let Some(al) = r.alignment.filter(|al| !al.acceptable(MAX_MISALIGNMENT_MS)) else {
        return (r, plan.clone());
    };
    let recycled = r.pcm;
    let reason = if al.half_beat_off {
        "beats did not line up when rendered (B half a beat off A)".to_string()
    } else if al.windows * 2 < al.tried {
        format!("beats did not line up when rendered (attacks measurable at only {} of {} beats)", al.windows, al.tried)
    } else {
        format!("beats did not line up when rendered (B's beats {:+.1} ms from A's)", al.lag_ms)
    };
    let len = s.crossfade_s.min(plan.a_end_s - plan.a_out_s);
    let fallback = Plan::crossfade(analyses.0, analyses.1, s, plan.a_out_s, plan.a_out_s + len, Fallback::Misaligned, reason);
    let mut again = render_into(recycled, a, b, &fallback, s, rate, pre_s, post_s(&fallback), keep_parts);
    again.alignment = Some(al);
    (again, fallback)
}
