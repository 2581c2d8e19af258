//! One pick: the host rules narrow the playable set to candidates; the
//! plugin (or the tour, standing in) chooses among them. Pure functions of
//! the library, the rules and the history, so they run anywhere — the
//! planner thread, a plugin's dry run, `nonstop plugin check`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::plugin::{Clock, PickContext, Plugin, PluginError};
use super::rules::{self, Rules};
use super::tour::Library;
use super::HISTORY;
use crate::catalog::Track;

/// One pick after `history` (newest first): the rules narrow the playable
/// set to candidates, the plugin chooses among them.
pub fn pick(library: &Library, rules: &Rules, plugin: &Plugin, history: &[Arc<Track>], clock: Clock) -> Result<Arc<Track>, PluginError> {
    let (candidates, _) = rules::candidates(library.tracks(), history, rules);
    let ids: Vec<i64> = history.iter().map(|t| t.id).collect();
    let id = plugin.pick(&PickContext { current: history.first(), candidates: &candidates, history: &ids, clock })?;
    Ok(candidates.into_iter().find(|t| t.id == id).expect("Plugin::pick returns a candidate"))
}

/// The built-in choice: the first candidate after the current track along
/// the tour. `None` only when nothing is playable.
pub fn tour_pick(library: &Library, rules: &Rules, history: &[Arc<Track>]) -> Option<Arc<Track>> {
    let (candidates, _) = rules::candidates(library.tracks(), history, rules);
    let allowed: HashSet<i64> = candidates.iter().map(|t| t.id).collect();
    if let Some(mut id) = history.first().map(|t| t.id) {
        for _ in 0..library.len() {
            let Some(next) = library.tour_next(id) else { break };
            if allowed.contains(&next) {
                return library.track(next).cloned();
            }
            id = next;
        }
    }
    candidates.into_iter().next()
}

/// Runs `picks` picks of `plugin` after `history` against `library` with
/// the host rules, as the station would; the first failure is returned with
/// the pick it happened at.
pub fn dry_run(
    plugin: &Plugin,
    library: &Arc<Library>,
    rules: &Rules,
    history: &[Arc<Track>],
    picks: usize,
) -> Result<Vec<Arc<Track>>, PluginError> {
    plugin.set_library(library.clone());
    let mut history = history.to_vec();
    let mut out = Vec::new();
    let mut ahead = 0.0;
    for i in 0..picks {
        if library.is_empty() {
            break;
        }
        let clock = Clock::local_in(Duration::from_secs_f64(ahead));
        let t = pick(library, rules, plugin, &history, clock)
            .map_err(|e| PluginError { message: format!("pick {}: {}", i + 1, e.message), line: e.line })?;
        ahead += t.duration_s;
        history.insert(0, t.clone());
        history.truncate(HISTORY);
        out.push(t);
    }
    Ok(out)
}

