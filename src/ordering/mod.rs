//! Which track plays next.
//!
//! - [`distance`]: how far apart two tracks are (tempo, key, energy,
//!   loudness, genre, artist; weights in config).
//! - [`tour`]: the similarity graph (petgraph) and an approximately
//!   shortest cycle through the playable catalogue.
//! - [`rules`]: what no plugin can break (repeats, artist separation).
//! - [`plugin`]: the Rhai host; a plugin chooses among the candidates.
//! - [`pick`]: one pick — rules, then the plugin or the tour.
//! - [`scheduler`]: the plan of upcoming picks and the history they follow.
//! - [`planner`]: the thread that makes the picks ahead of time.
//! - [`watch`]: hot reload of the active plugin when its file changes.
//! - [`shipped`]: the plugins that come with nonstop.
//!
//! The `Scheduler` lives behind a mutex shared by the mixer thread (which
//! takes planned picks ~10 s before each mix-out), the planner thread (which
//! runs the plugin, outside the lock, to keep the plan full), the plugin
//! watcher (which swaps plugins) and the status snapshot. Slow work —
//! building the tour, a plugin's pick, compiling and dry-running a new
//! plugin — happens outside the lock.

pub mod distance;
pub mod pick;
pub mod planner;
pub mod plugin;
pub mod rules;
pub mod scheduler;
pub mod shipped;
pub mod tour;
mod watch;

pub use pick::{dry_run, pick, tour_pick};
pub use planner::Planner;
pub use scheduler::{OrderingStatus, Planned, RequestEntry, RequestError, Scheduler};
pub use shipped::{ensure_plugins, SHIPPED_PLUGINS};
pub use watch::{PluginSwitch, PluginWatcher, ReloadSettings};

/// How many picks ahead the scheduler plans.
pub const UPCOMING: usize = 5;
/// Picks a new plugin must make cleanly, against the live catalogue, before
/// it replaces the active one (and that `nonstop plugin check` prints).
pub const DRY_RUN_PICKS: usize = 20;
/// Tracks of history kept for the rules and shown to plugins.
pub(crate) const HISTORY: usize = 200;
/// Label of picks made by the built-in tour walk.
pub(crate) const BUILTIN: &str = "tour (built-in)";
pub(crate) const FALLBACK: &str = "tour (fallback)";
/// Label of requested tracks in the plan.
pub(crate) const REQUESTED: &str = "request";

