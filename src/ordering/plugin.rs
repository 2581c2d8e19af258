//! The plugin host: track-ordering scripts in Rhai.
//!
//! A plugin is `plugins/NAME.rhai` defining `fn next_track(ctx)` that
//! returns the id of the next track (see `plugins/README.md` for the
//! curator's side). The host compiles it with hard limits — operations, call
//! depth, string/array/map sizes and wall time per pick — so a script can
//! fail but never hang or starve the station; every failure becomes a
//! `PluginError` with the script line when there is one.
//!
//! Host functions reach the library through a shared `Host` (the similarity
//! graph and tour of the moment, a seeded random generator). The engine is
//! built with Rhai's `sync` feature, so a compiled plugin can be checked on
//! the watcher thread and then handed to the scheduler.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, Scope, AST, FLOAT, INT};
use serde::{Deserialize, Serialize};

use super::distance::{key_term, tempo_change, Camelot};
use super::tour::Library;
use crate::catalog::Track;

/// The entry point every plugin defines.
pub const ENTRY: &str = "next_track";

/// Resource limits for one pick (`[ordering.limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Rhai operations per pick (an endless loop hits this first).
    pub max_operations: u64,
    /// Nested function calls.
    pub max_call_depth: usize,
    /// Bytes in one string.
    pub max_string_size: usize,
    /// Elements in one array or object map.
    pub max_array_size: usize,
    /// Wall time per pick, milliseconds.
    pub timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 2_000_000,
            max_call_depth: 32,
            max_string_size: 64 * 1024,
            max_array_size: 100_000,
            timeout_ms: 500,
        }
    }
}

/// What went wrong in a plugin, and where.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginError {
    pub message: String,
    /// 1-based line in the script, when the error has one.
    pub line: Option<usize>,
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl PluginError {
    fn new(message: impl Into<String>, line: Option<usize>) -> PluginError {
        PluginError { message: message.into(), line }
    }
}

/// Local time of day as a plugin sees it: when the pick will go on air.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub hour: u32,
    pub minute: u32,
    /// 0 = Monday.
    pub weekday: u32,
}

impl Clock {
    /// Local time `ahead` from now.
    pub fn local_in(ahead: Duration) -> Clock {
        use chrono::{Datelike, Timelike};
        let t = chrono::Local::now() + chrono::Duration::from_std(ahead).unwrap_or_default();
        Clock { hour: t.hour(), minute: t.minute(), weekday: t.weekday().num_days_from_monday() }
    }
}

/// Everything a plugin is told for one pick.
pub struct PickContext<'a> {
    /// The track the pick will follow (playing now, or planned last).
    pub current: Option<&'a Arc<Track>>,
    /// Tracks the host rules allow; never empty.
    pub candidates: &'a [Arc<Track>],
    /// Ids played or planned before the pick, newest first.
    pub history: &'a [i64],
    pub clock: Clock,
}

/// State the host functions share with the station.
struct Host {
    library: Arc<Library>,
    rng: SmallRng,
}

/// A compiled plugin, ready to pick.
pub struct Plugin {
    pub name: String,
    /// First 12 hex digits of the FNV-1a hash of the source.
    pub version: String,
    pub loaded_at: chrono::DateTime<chrono::Local>,
    engine: Engine,
    /// The same engine stepping through the script, recording the line it
    /// is on in `tracer_line`: used only to locate a pick that hit a limit.
    tracer: Engine,
    tracer_line: Arc<AtomicUsize>,
    ast: AST,
    host: Arc<Mutex<Host>>,
    /// Nanoseconds after `epoch` at which the running pick is cut off.
    deadline: Arc<AtomicU64>,
    epoch: Instant,
    timeout: Duration,
    /// Line of `fn next_track`, for errors about what it returned.
    entry_line: Option<usize>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("name", &self.name).field("version", &self.version).finish()
    }
}

/// The plugin name of a path: `plugins/tour.rhai` -> `tour`.
pub fn name_of(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Content hash shown as the plugin version.
pub fn version_of(source: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in source.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")[..12].to_string()
}

impl Plugin {
    /// Reads and compiles `path`.
    pub fn load(path: &Path, limits: Limits, seed: u64) -> Result<Plugin, PluginError> {
        let source = std::fs::read_to_string(path)
            .map_err(|e| PluginError::new(format!("cannot read {}: {e}", path.display()), None))?;
        Plugin::compile(&name_of(path), &source, limits, seed)
    }

    /// Compiles `source`. Syntax errors and a missing `fn next_track(ctx)`
    /// are reported here; the rest shows when it runs (see `dry_run`).
    pub fn compile(name: &str, source: &str, limits: Limits, seed: u64) -> Result<Plugin, PluginError> {
        let host = Arc::new(Mutex::new(Host {
            library: Arc::new(Library::new(Default::default())),
            rng: SmallRng::seed_from_u64(seed),
        }));
        let deadline = Arc::new(AtomicU64::new(u64::MAX));
        let epoch = Instant::now();
        let engine = build_engine(name, limits, host.clone(), deadline.clone(), epoch, None);
        let tracer_line = Arc::new(AtomicUsize::new(0));
        let tracer = build_engine(name, limits, host.clone(), deadline.clone(), epoch, Some(tracer_line.clone()));
        let ast = engine
            .compile(source)
            .map_err(|e| PluginError::new(format!("syntax error: {}", e.err_type()), e.position().line()))?;
        if !ast.iter_functions().any(|f| f.name == ENTRY && f.params.len() == 1) {
            return Err(PluginError::new(format!("no `fn {ENTRY}(ctx)` defined"), None));
        }
        let entry_line = source.lines().position(|l| l.trim_start().starts_with(&format!("fn {ENTRY}"))).map(|i| i + 1);
        Ok(Plugin {
            name: name.to_string(),
            version: version_of(source),
            loaded_at: chrono::Local::now(),
            engine,
            tracer,
            tracer_line,
            ast,
            host,
            deadline,
            epoch,
            timeout: Duration::from_millis(limits.timeout_ms),
            entry_line,
        })
    }

    /// Points the host functions at a new library (tracks, graph, tour).
    pub fn set_library(&self, library: Arc<Library>) {
        self.host.lock().unwrap_or_else(|p| p.into_inner()).library = library;
    }

    /// Asks the plugin for the next track. The id it returns must be one of
    /// the candidates.
    pub fn pick(&self, ctx: &PickContext<'_>) -> Result<i64, PluginError> {
        // Made per call (the argument is moved into the script, which may
        // change its copy freely); a second call happens only to locate a
        // cut-off, so a successful pick builds the context once.
        let arg = || {
            let as_map = |t: &Arc<Track>| Dynamic::from_map(track_map(t));
            let mut m = Map::new();
            m.insert("current".into(), ctx.current.map(as_map).unwrap_or(Dynamic::UNIT));
            m.insert("candidates".into(), Dynamic::from_array(ctx.candidates.iter().map(as_map).collect()));
            m.insert("history".into(), Dynamic::from_array(ctx.history.iter().map(|id| Dynamic::from_int(*id)).collect()));
            let mut clock = Map::new();
            clock.insert("hour".into(), Dynamic::from_int(ctx.clock.hour as INT));
            clock.insert("minute".into(), Dynamic::from_int(ctx.clock.minute as INT));
            clock.insert("weekday".into(), Dynamic::from_int(ctx.clock.weekday as INT));
            m.insert("clock".into(), Dynamic::from_map(clock));
            Dynamic::from_map(m)
        };
        let value = match self.call(&self.engine, arg()) {
            Ok(v) => v,
            Err(e) => {
                let mut error = self.runtime_error(&e);
                if error.line.is_none() {
                    // Limits stop a script without a position: run the pick
                    // again, stepping, to learn where it was cut off.
                    error.line = self.last_line(arg());
                }
                return Err(error);
            }
        };
        let Ok(id) = value.as_int() else {
            return Err(PluginError::new(
                format!("{ENTRY} must return a track id (an integer), but returned {} `{value}`", value.type_name()),
                self.last_line(arg()).or(self.entry_line),
            ));
        };
        if !ctx.candidates.iter().any(|t| t.id == id) {
            return Err(PluginError::new(
                format!("{ENTRY} returned {id}, which is not among the candidates (unknown, not analysed, or blocked by the host rules)"),
                self.last_line(arg()).or(self.entry_line),
            ));
        }
        Ok(id)
    }

    /// The line the script was on when it stopped (cut off by a limit, or
    /// returning), found by running the pick again on the stepping engine.
    fn last_line(&self, arg: Dynamic) -> Option<usize> {
        self.tracer_line.store(0, Ordering::Relaxed);
        let _ = self.call(&self.tracer, arg);
        Some(self.tracer_line.load(Ordering::Relaxed)).filter(|l| *l > 0)
    }

    /// Calls the entry point under the wall-time limit.
    fn call(&self, engine: &Engine, arg: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        let cutoff = self.epoch.elapsed() + self.timeout;
        self.deadline.store(cutoff.as_nanos() as u64, Ordering::Relaxed);
        let result = engine.call_fn::<Dynamic>(&mut Scope::new(), &self.ast, ENTRY, (arg,));
        self.deadline.store(u64::MAX, Ordering::Relaxed);
        result
    }

    fn runtime_error(&self, e: &EvalAltResult) -> PluginError {
        let inner = e.unwrap_inner();
        let line = inner.position().line().or_else(|| e.position().line());
        let message = match inner {
            EvalAltResult::ErrorTerminated(..) => format!("took longer than {} ms (the wall-time limit)", self.timeout.as_millis()),
            EvalAltResult::ErrorTooManyOperations(..) => "exceeded the operations limit (an endless loop?)".to_string(),
            _ => {
                let text = inner.to_string();
                // Rhai appends " (line L, position P)"; the line is reported apart.
                let text = text.rsplit_once(" (line ").map_or(text.as_str(), |(head, _)| head);
                format!("runtime error: {}", text.replace('\n', " "))
            }
        };
        PluginError::new(message, line)
    }
}

/// A track as the map plugins see.
fn track_map(t: &Track) -> Map {
    let mut m = Map::new();
    m.insert("id".into(), Dynamic::from_int(t.id));
    m.insert("title".into(), t.title.clone().into());
    m.insert("artist".into(), t.artist.clone().into());
    m.insert("album".into(), t.album.clone().into());
    m.insert("genre".into(), t.genre.clone().into());
    m.insert("bpm".into(), Dynamic::from_float(t.bpm));
    m.insert("key".into(), t.key.clone().into());
    m.insert("camelot".into(), t.camelot.clone().into());
    m.insert("energy".into(), Dynamic::from_float(t.energy));
    m.insert("loudness".into(), Dynamic::from_float(t.loudness_lufs));
    m.insert("duration".into(), Dynamic::from_float(t.duration_s));
    m.insert("steadiness".into(), Dynamic::from_float(t.steadiness));
    m
}

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// A track argument: an id, or a track map (its `id`).
fn id_arg(v: &Dynamic, func: &str) -> RhaiResult<INT> {
    if let Ok(id) = v.as_int() {
        return Ok(id);
    }
    if let Some(id) = v.read_lock::<Map>().and_then(|m| m.get("id").and_then(|id| id.as_int().ok())) {
        return Ok(id);
    }
    Err(format!("{func}: expected a track or a track id, got {}", v.type_name()).into())
}

fn build_engine(
    name: &str,
    limits: Limits,
    host: Arc<Mutex<Host>>,
    deadline: Arc<AtomicU64>,
    epoch: Instant,
    trace: Option<Arc<AtomicUsize>>,
) -> Engine {
    let mut e = Engine::new();
    if let Some(line) = trace {
        // The debugger API is marked volatile, not deprecated.
        #[allow(deprecated)]
        e.register_debugger(
            |_, debugger| debugger,
            move |_, event, _, _, pos| {
                if let (rhai::debugger::DebuggerEvent::Step, Some(l)) = (event, pos.line()) {
                    line.store(l, Ordering::Relaxed);
                }
                Ok(rhai::debugger::DebuggerCommand::StepInto)
            },
        );
    }
    e.set_max_operations(limits.max_operations);
    e.set_max_call_levels(limits.max_call_depth);
    e.set_max_expr_depths(64, 64);
    e.set_max_string_size(limits.max_string_size);
    e.set_max_array_size(limits.max_array_size);
    e.set_max_map_size(limits.max_array_size);
    e.set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
    e.disable_symbol("eval");
    e.on_progress(move |ops| {
        // Reading the clock every operation would dominate; every 256 is plenty.
        (ops % 256 == 0 && epoch.elapsed().as_nanos() as u64 > deadline.load(Ordering::Relaxed))
            .then(|| Dynamic::from("time limit".to_string()))
    });
    let who = name.to_string();
    e.on_print(move |s| tracing::info!(target: "nonstop::plugin", "{who}: {s}"));
    let who = name.to_string();
    e.on_debug(move |s, _, pos| tracing::info!(target: "nonstop::plugin", "{who} (line {:?}): {s}", pos.line()));
    let who = name.to_string();
    e.register_fn("log", move |msg: &str| tracing::info!(target: "nonstop::plugin", "{who}: {msg}"));

    let lookup = |host: &Host, v: &Dynamic, func: &str| -> RhaiResult<Arc<Track>> {
        let id = id_arg(v, func)?;
        host.library.track(id).cloned().ok_or_else(|| format!("{func}: no playable track with id {id}").into())
    };
    let h = host.clone();
    e.register_fn("distance", move |a: Dynamic, b: Dynamic| -> RhaiResult<FLOAT> {
        let host = h.lock().unwrap_or_else(|p| p.into_inner());
        let (a, b) = (lookup(&host, &a, "distance")?, lookup(&host, &b, "distance")?);
        Ok(host.library.distance(a.id, b.id).unwrap_or(f64::INFINITY))
    });
    let h = host.clone();
    e.register_fn("tour_next", move |a: Dynamic| -> RhaiResult<INT> {
        let host = h.lock().unwrap_or_else(|p| p.into_inner());
        let id = id_arg(&a, "tour_next")?;
        // A track no longer playable (removed, or the demo after one's own
        // music arrived) continues from the start of the tour.
        match host.library.tour_next(id).or_else(|| host.library.tour().first().copied()) {
            Some(next) => Ok(next),
            None => Err(format!("tour_next: no playable track with id {id}").into()),
        }
    });
    let h = host.clone();
    e.register_fn("similar", move |a: Dynamic, k: INT| -> RhaiResult<Array> {
        let host = h.lock().unwrap_or_else(|p| p.into_inner());
        let a = lookup(&host, &a, "similar")?;
        Ok(host.library.neighbours(a.id).into_iter().take(k.max(0) as usize).map(|(id, _)| Dynamic::from_int(id)).collect())
    });
    let h = host.clone();
    e.register_fn("key_steps", move |a: Dynamic, b: Dynamic| -> RhaiResult<INT> {
        let host = h.lock().unwrap_or_else(|p| p.into_inner());
        let (a, b) = (lookup(&host, &a, "key_steps")?, lookup(&host, &b, "key_steps")?);
        Ok(match (Camelot::parse(&a.camelot), Camelot::parse(&b.camelot)) {
            (Some(x), Some(y)) => x.steps(y) as INT,
            _ => -1,
        })
    });
    let h = host.clone();
    e.register_fn("key_cost", move |a: Dynamic, b: Dynamic| -> RhaiResult<FLOAT> {
        let host = h.lock().unwrap_or_else(|p| p.into_inner());
        let (a, b) = (lookup(&host, &a, "key_cost")?, lookup(&host, &b, "key_cost")?);
        Ok(key_term(Camelot::parse(&a.camelot), Camelot::parse(&b.camelot)))
    });
    let h = host.clone();
    e.register_fn("tempo_change", move |a: Dynamic, b: Dynamic| -> RhaiResult<FLOAT> {
        let host = h.lock().unwrap_or_else(|p| p.into_inner());
        let (a, b) = (lookup(&host, &a, "tempo_change")?, lookup(&host, &b, "tempo_change")?);
        Ok(tempo_change(a.bpm, b.bpm))
    });
    let h = host;
    e.register_fn("random", move || -> FLOAT { h.lock().unwrap_or_else(|p| p.into_inner()).rng.random::<f64>() });
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn library() -> Arc<Library> {
        let tracks: Vec<Arc<Track>> = (1..=6)
            .map(|i| {
                Arc::new(Track {
                    id: i,
                    path: format!("/{i}.mp3").into(),
                    title: format!("t{i}"),
                    artist: format!("a{i}"),
                    album: String::new(),
                    genre: String::new(),
                    duration_s: 200.0,
                    bpm: 118.0 + i as f64,
                    key: String::new(),
                    camelot: format!("{i}A"),
                    energy: 0.1 * i as f64,
                    loudness_lufs: -10.0,
                    steadiness: 1.0,
                })
            })
            .collect();
        Arc::new(Library::build(&tracks, Default::default()))
    }

    fn run(source: &str) -> Result<i64, PluginError> {
        let lib = library();
        let p = Plugin::compile("t", source, Limits { timeout_ms: 200, ..Limits::default() }, 1)?;
        p.set_library(lib.clone());
        let history = [1];
        p.pick(&PickContext {
            current: lib.track(1),
            candidates: &lib.tracks()[1..],
            history: &history,
            clock: Clock { hour: 12, minute: 30, weekday: 0 },
        })
    }

    #[test]
    fn host_functions_and_context() {
        assert_eq!(run("fn next_track(ctx) { tour_next(ctx.current) }").map(|id| id != 1), Ok(true));
        assert_eq!(run("fn next_track(ctx) { ctx.candidates[ctx.candidates.len() - 1].id }"), Ok(6));
        assert_eq!(run("fn next_track(ctx) { if ctx.clock.minute == 30 && ctx.history[0] == 1 { 3 } else { 4 } }"), Ok(3));
        assert_eq!(run("fn next_track(ctx) { if key_steps(1, 2) == 1 && distance(1, 2) > 0.0 { 2 } else { 5 } }"), Ok(2));
        assert_eq!(run("fn next_track(ctx) { let r = random(); if r >= 0.0 && r < 1.0 { similar(1, 1)[0] } else { 0 } }"), Ok(2));
        assert_eq!(run("fn next_track(ctx) { log(`picking after ${ctx.current.title}`); 5 }"), Ok(5));
    }

    #[test]
    fn every_failure_names_its_line() {
        let cases = [
            ("fn next_track(ctx) {\n  let x = ;\n}", "syntax error", 2..=2),
            ("fn next_track(ctx) {\n  let x = 1;\n  x.nope()\n}", "runtime error", 3..=3),
            // Cut off somewhere in the loop: its head or its body.
            ("fn next_track(ctx) {\n  loop {\n    let y = 1;\n  }\n}", "operations limit", 2..=3),
            // The line of the value returned, not of the `fn`.
            ("fn next_track(ctx) {\n  \"seven\"\n}", "must return a track id", 2..=2),
            ("\nfn next_track(ctx) {\n  99\n}", "not among the candidates", 3..=3),
            // Stack and size limits carry the line too.
            ("fn f(n) { f(n + 1) }\nfn next_track(ctx) {\n  f(0)\n}", "runtime error", 1..=3),
            ("fn next_track(ctx) {\n  let s = \"x\";\n  loop { s += s; }\n}", "runtime error", 3..=3),
        ];
        for (src, want, lines) in cases {
            let e = run(src).unwrap_err();
            assert!(e.message.contains(want), "{src}: {e}");
            assert!(e.line.is_some_and(|l| lines.contains(&l)), "{src}: {e}");
        }
        let e = run("fn pick(ctx) { 1 }").unwrap_err();
        assert!(e.message.contains("no `fn next_track(ctx)`"), "{e}");
    }

    #[test]
    fn wall_time_limit_stops_slow_scripts() {
        // Few operations each, but slow: sorting a big array repeatedly.
        let src = "fn next_track(ctx) {\n  let a = [];\n  for i in 0..50000 { a.push(50000 - i); }\n  loop { a.sort(); a.reverse(); }\n}";
        let p = Plugin::compile("slow", src, Limits { timeout_ms: 50, max_operations: 0, ..Limits::default() }, 1).unwrap();
        let lib = library();
        p.set_library(lib.clone());
        let t0 = Instant::now();
        let e = p
            .pick(&PickContext { current: None, candidates: lib.tracks(), history: &[], clock: Clock { hour: 0, minute: 0, weekday: 0 } })
            .unwrap_err();
        assert!(e.message.contains("wall-time"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
}
