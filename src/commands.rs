//! The command-line tools besides `serve`: `analyze`, `scan` and
//! `eval-beats`. Each reports per file as `"{path}: {error}"` and goes on.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use nonstop::analysis::{self, eval, Analysis};
use nonstop::audio::is_audio_path;
use nonstop::catalog::{analyse_pending, Catalog};
use nonstop::config::Config;

fn workers() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

/// Files named on the command line, folders expanded to their audio files.
fn expand(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = walkdir::WalkDir::new(p)
                .follow_links(true)
                .into_iter()
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_file() && is_audio_path(e.path()))
                .map(|e| e.into_path())
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    files
}

/// Runs `f` over `files` on all cores, calling `report` (serialised) with
/// each result as it completes.
fn parallel<T: Send>(files: &[PathBuf], f: impl Fn(&Path) -> T + Sync, report: impl FnMut(&Path, T) + Send) {
    let next = AtomicUsize::new(0);
    let report = Mutex::new(report);
    std::thread::scope(|s| {
        for _ in 0..workers().min(files.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = files.get(i) else { break };
                let result = f(path);
                (report.lock().unwrap_or_else(|p| p.into_inner()))(path, result);
            });
        }
    });
}

fn summary_line(a: &Analysis) -> String {
    format!(
        "{:.1} BPM ({}/4, confidence {:.2}), {} ({}), {:.1} LUFS, {:.1} dBTP, energy {:.2}, cue {:.2}–{:.2} s, intro {} bars, outro {} bars, {:.1} s",
        a.bpm, a.meter, a.beat_confidence, a.key, a.camelot, a.loudness_lufs, a.true_peak_dbtp, a.energy, a.cue_in_s, a.cue_out_s,
        a.intro_bars, a.outro_bars, a.duration_s
    )
}

/// `nonstop analyze [--json] PATH...`. Returns whether any file succeeded.
pub fn analyze(paths: &[PathBuf], json: bool) -> anyhow::Result<bool> {
    let files = expand(paths);
    if files.is_empty() {
        anyhow::bail!("no audio files in {}", paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
    }
    let ok = AtomicBool::new(false);
    parallel(&files, analysis::analyze_file, |path, result| {
        let line = match (&result, json) {
            (Ok(a), true) => {
                let mut v = serde_json::to_value(a).expect("analysis serialises");
                v.as_object_mut().expect("an object").insert("path".into(), path.display().to_string().into());
                serde_json::to_string(&v).expect("json")
            }
            (Ok(a), false) => format!("{}: {}", path.display(), summary_line(a)),
            (Err(e), true) => serde_json::json!({ "path": path.display().to_string(), "error": e.to_string() }).to_string(),
            (Err(e), false) => format!("{}: error: {e}", path.display()),
        };
        if result.is_ok() {
            ok.store(true, Ordering::Relaxed);
        }
        println!("{line}");
    });
    Ok(ok.load(Ordering::Relaxed))
}

/// `nonstop scan`: analyses the library with a progress bar and a summary.
pub fn scan(config: &Config) -> anyhow::Result<()> {
    let library = config.paths.library();
    let catalog = Catalog::open(&config.paths.catalog_db())?;
    let sync = catalog.sync(&library)?;
    println!(
        "{}: {} audio files, {} unchanged, {} to analyse, {} removed",
        library.display(),
        sync.files,
        sync.unchanged,
        sync.added,
        sync.removed
    );
    let bar = indicatif::ProgressBar::new(sync.added as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} files, {elapsed} elapsed, eta {eta} {wide_msg}")
            .expect("valid template"),
    );
    let started = Instant::now();
    let stop = AtomicBool::new(false);
    let mut failures = Vec::new();
    let report = analyse_pending(&catalog, workers(), &stop, |path, result| {
        bar.inc(1);
        bar.set_message(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        if let Err(e) = result {
            failures.push(format!("{}: {e}", path.display()));
        }
    })?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "analysed {} files ({:.0} s of audio) in {:.1} s: {:.0}x real time on {} threads; {} failed",
        report.analysed,
        report.audio_s,
        secs,
        report.audio_s / secs.max(1e-9),
        workers(),
        report.failed
    );
    for f in &failures {
        println!("  {f}");
    }
    let counts = catalog.counts()?;
    println!("catalogue: {} tracks, {} playable, {} failed, {} pending", counts.tracks, counts.playable, counts.failed, counts.pending);
    Ok(())
}

/// `nonstop eval-beats --annotations DIR PATH...`: F-measure per file and
/// the mean. Returns whether any file was scored.
pub fn eval_beats(annotations: &Path, paths: &[PathBuf]) -> anyhow::Result<bool> {
    let files = expand(paths);
    let scores = Mutex::new(Vec::new());
    parallel(
        &files,
        |path| {
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let reference = eval::read_annotations(&annotations.join(format!("{stem}.beats")))?;
            let a = analysis::analyze_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok::<_, String>((eval::f_measure(&reference, &a.beats), reference.len(), a.beats.len(), a.bpm))
        },
        |path, result| match result {
            Ok((f, n_ref, n_est, bpm)) => {
                println!("{}: F = {f:.3} ({n_ref} annotated, {n_est} estimated beats, {bpm:.1} BPM)", path.display());
                scores.lock().unwrap_or_else(|p| p.into_inner()).push(f);
            }
            Err(e) => println!("{}: error: {e}", path.display()),
        },
    );
    let scores = scores.into_inner().unwrap_or_else(|p| p.into_inner());
    if scores.is_empty() {
        println!("no file scored");
        return Ok(false);
    }
    println!("mean F = {:.3} over {} files", scores.iter().sum::<f64>() / scores.len() as f64, scores.len());
    Ok(true)
}
