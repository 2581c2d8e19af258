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

/// `x` to `decimals` places, for figures people read.
fn round_to(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

fn summary_line(a: &Analysis) -> String {
    format!(
        "{:.1} BPM ({}/4, confidence {:.2}), {} ({}), {:.1} LUFS, {:.1} dBTP, energy {:.2}, cue {:.2}–{:.2} s, intro {} bars, outro {} bars, {}, {:.1} s",
        a.bpm, a.meter, a.beat_confidence, a.key, a.camelot, a.loudness_lufs, a.true_peak_dbtp, a.energy, a.cue_in_s, a.cue_out_s,
        a.intro_bars, a.outro_bars,
        match a.phrase_offset.and_then(|o| a.downbeats.get(o as usize)) {
            Some(t) => format!("phrases from {t:.2} s"),
            None => "phrases not clear".to_string(),
        },
        a.duration_s
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
                let o = v.as_object_mut().expect("an object");
                // Figures people read, to the precision they carry.
                for (key, decimals) in [
                    ("bpm", 3),
                    ("beat_confidence", 3),
                    ("energy", 3),
                    ("loudness_lufs", 2),
                    ("true_peak_dbtp", 2),
                    ("duration_s", 3),
                    ("cue_in_s", 3),
                    ("cue_out_s", 3),
                ] {
                    if let Some(x) = o.get(key).and_then(|x| x.as_f64()) {
                        o.insert(key.into(), round_to(x, decimals).into());
                    }
                }
                o.insert("path".into(), path.display().to_string().into());
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
    let (catalog, _, sync) = nonstop::station::open_catalog(config)?;
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
    let report = analyse_pending(&catalog, workers(), config.library.limits(), &stop, |path, result| {
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

/// `nonstop plugin check PATH`: compiles the plugin and runs `picks` picks
/// against the catalogue with the host rules, printing each. Returns false
/// (exit status 1) when the plugin fails.
pub fn plugin_check(config: &Config, path: &Path, picks: usize) -> anyhow::Result<bool> {
    use nonstop::ordering::{dry_run, plugin::Plugin, tour::Library};
    let catalog = Catalog::open(&config.paths.catalog_db())?;
    let playable = catalog.playable()?;
    anyhow::ensure!(
        !playable.is_empty(),
        "the catalogue {} has no analysed tracks: run `nonstop scan` (or the station) first",
        config.paths.catalog_db().display()
    );
    let o = &config.ordering;
    let library = std::sync::Arc::new(Library::build(&playable, o.weights(&config.mixer)));
    let checked = Plugin::load(path, o.limits, o.seed.unwrap_or(1))
        .and_then(|p| dry_run(&p, &library, &o.rules(), &[], picks).map(|t| (p, t)));
    let (plugin, tracks) = match checked {
        Ok(ok) => ok,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return Ok(false);
        }
    };
    println!(
        "{} (version {}): {} picks over {} playable tracks",
        path.display(),
        plugin.version,
        tracks.len(),
        library.len()
    );
    let mut total = 0.0;
    for (i, t) in tracks.iter().enumerate() {
        let step = i.checked_sub(1).and_then(|j| library.distance(tracks[j].id, t.id));
        total += step.unwrap_or(0.0);
        println!(
            "{:>3}. {:<48} {:>6.1} BPM {:>4} energy {:.2}{}",
            i + 1,
            t.display(),
            t.bpm,
            t.camelot,
            t.energy,
            step.map(|d| format!("  distance {d:.2}")).unwrap_or_default()
        );
    }
    if tracks.len() > 1 {
        println!(
            "mean distance between picks {:.2} (the tour's mean step: {:.2})",
            total / (tracks.len() - 1) as f64,
            library.tour_length() / library.len() as f64
        );
    }
    Ok(true)
}

/// One clip's scores: each `None` where the annotation is missing.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct ClipScore {
    path: String,
    /// Seconds cut off the clip's start (`--cuts`); 0 as it is.
    cut_s: f64,
    beat_f: Option<f64>,
    downbeat_f: Option<f64>,
    /// Median signed offset of our beats from the annotations (ms).
    beat_offset_ms: Option<f64>,
    /// Share of annotated beats with one of ours within 20 ms.
    beats_within_20ms: Option<f64>,
    bpm: f64,
    ref_bpm: Option<f64>,
    tempo_acc1: Option<bool>,
    tempo_acc2: Option<bool>,
    key: String,
    ref_key: Option<String>,
    key_score: Option<f64>,
    duration_s: f64,
    cpu_s: f64,
}

/// Where `nonstop eval --cuts` cuts each clip: the seconds cut off its
/// start. Uneven, so that no two fall a whole number of beats apart at
/// common tempos.
const CUTS_S: [f64; 6] = [0.9, 1.7, 2.4, 3.0, 3.7, 5.1];

/// One analysis scored against a clip's annotations, `shift_s` seconds of
/// the clip cut off its start (the annotations move with it).
fn score_clip(path: &Path, a: &Analysis, cpu_s: f64, reference: &Reference, shift_s: f64) -> ClipScore {
    let mut c = ClipScore { path: path.display().to_string(), cut_s: shift_s, bpm: a.bpm, key: a.key.clone(), duration_s: a.duration_s, cpu_s, ..Default::default() };
    if let Some(r) = &reference.beats {
        let moved = |v: &[f64]| -> Vec<f64> { v.iter().map(|t| t - shift_s).filter(|t| *t >= 0.0).collect() };
        let (beats, downbeats) = (moved(&r.beats), moved(&r.downbeats));
        c.beat_f = Some(eval::f_measure(&beats, &a.beats));
        (c.beat_offset_ms, c.beats_within_20ms) = eval::timing(&beats, &a.beats).unzip();
        if !r.downbeats.is_empty() {
            c.downbeat_f = Some(eval::f_measure(&downbeats, &a.downbeats));
        }
    }
    if let Some(bpm) = reference.bpm {
        let (acc1, acc2) = eval::tempo_accuracy(a.bpm, bpm);
        (c.ref_bpm, c.tempo_acc1, c.tempo_acc2) = (Some(bpm), Some(acc1), Some(acc2));
    }
    if let Some(key) = &reference.key {
        c.key_score = eval::parse_key(key).zip(eval::parse_key(&a.key)).map(|(r, e)| eval::key_score(e, r));
        c.ref_key = Some(key.clone());
    }
    c
}

/// A clip's annotations, as far as it has them.
struct Reference {
    beats: Option<eval::AnnotatedBeats>,
    bpm: Option<f64>,
    key: Option<String>,
}

/// The means of the scores over `scores`, with how many files had each.
struct Means {
    files: usize,
    beat_f: Option<(f64, usize)>,
    downbeat_f: Option<(f64, usize)>,
    acc1: Option<(f64, usize)>,
    acc2: Option<(f64, usize)>,
    key: Option<(f64, usize)>,
}

impl Means {
    fn of(scores: &[ClipScore]) -> Means {
        let mean = |v: Vec<f64>| if v.is_empty() { None } else { Some((v.iter().sum::<f64>() / v.len() as f64, v.len())) };
        let of = |f: fn(&ClipScore) -> Option<f64>| mean(scores.iter().filter_map(f).collect());
        fn as_f(b: Option<bool>) -> Option<f64> {
            b.map(|b| if b { 1.0 } else { 0.0 })
        }
        Means {
            files: scores.len(),
            beat_f: of(|c| c.beat_f),
            downbeat_f: of(|c| c.downbeat_f),
            acc1: of(|c| as_f(c.tempo_acc1)),
            acc2: of(|c| as_f(c.tempo_acc2)),
            key: of(|c| c.key_score),
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "files": self.files,
            "beat_f": self.beat_f.map(|m| m.0),
            "downbeat_f": self.downbeat_f.map(|m| m.0),
            "tempo_acc1": self.acc1.map(|m| m.0),
            "tempo_acc2": self.acc2.map(|m| m.0),
            "key_score": self.key.map(|m| m.0),
        })
    }
}

/// `nonstop eval [--annotations DIR] [--cuts] [--json] PATH...`: scores the
/// analysis against `<stem>.beats` (beats and downbeats), `<stem>.bpm` and
/// `<stem>.key` annotations, per clip and on average, with the analysis
/// speed. A folder holding `audio/` and `annotations/` is taken as a whole.
/// With `cuts`, each clip is also analysed cut 0.9–5.1 s later (`CUTS_S`)
/// and the means over all seven starts are printed too: a clip's figures
/// swing with where it starts (downbeat F over evaldev from 0.50 to 0.67
/// across the seven once), so a change is judged on all of them.
/// Returns whether any file was scored.
pub fn eval(annotations: Option<&Path>, paths: &[PathBuf], cuts: bool, json: bool) -> anyhow::Result<bool> {
    let (annotations, paths): (PathBuf, Vec<PathBuf>) = match (annotations, paths) {
        (Some(a), _) => (a.to_owned(), paths.to_vec()),
        (None, [dir]) if dir.join("annotations").is_dir() && dir.join("audio").is_dir() => {
            (dir.join("annotations"), vec![dir.join("audio")])
        }
        (None, _) => anyhow::bail!("--annotations DIR is needed (or one folder with audio/ and annotations/)"),
    };
    let files = expand(&paths);
    let scores = Mutex::new(Vec::new());
    let cut_scores = Mutex::new(Vec::new());
    let read = |stem: &str, ext: &str| std::fs::read_to_string(annotations.join(format!("{stem}.{ext}"))).ok();
    parallel(
        &files,
        |path| {
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            if !["beats", "bpm", "key"].iter().any(|ext| annotations.join(format!("{stem}.{ext}")).exists()) {
                return Err(format!("no annotation {stem}.beats, {stem}.bpm or {stem}.key in {}", annotations.display()));
            }
            let beats_file = annotations.join(format!("{stem}.beats"));
            let reference = Reference {
                beats: if beats_file.exists() { Some(eval::read_beats(&beats_file)?) } else { None },
                bpm: read(&stem, "bpm").and_then(|t| t.trim().parse::<f64>().ok()),
                key: read(&stem, "key").map(|k| k.trim().to_string()).filter(|k| !k.is_empty()),
            };
            let cpu0 = nonstop::cpu::thread_seconds();
            let a = analysis::analyze_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let c = score_clip(path, &a, nonstop::cpu::thread_seconds() - cpu0, &reference, 0.0);
            let mut cut = Vec::new();
            if cuts {
                // At the file's own rate, cut to the sample as an editor would.
                let rate = nonstop::audio::Decoder::open(path).map_err(|e| format!("{}: {e}", path.display()))?.sample_rate();
                let pcm = decode_all(path, rate).map_err(|e| e.to_string())?;
                for shift in CUTS_S {
                    let from = ((shift * rate.0 as f64) as usize * 2).min(pcm.len());
                    let a = analysis::analyze_pcm(&pcm[from..], rate).map_err(|e| format!("{}: {e}", path.display()))?;
                    cut.push(score_clip(path, &a, 0.0, &reference, from as f64 / 2.0 / rate.0 as f64));
                }
            }
            Ok::<_, String>((c, cut))
        },
        |path, result| match result {
            Ok((c, cut)) => {
                if json {
                    // The clip as it is, then each cut of it.
                    for score in std::iter::once(&c).chain(&cut) {
                        println!("{}", serde_json::to_string(score).expect("json"));
                    }
                } else {
                    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
                    let yes = |v: Option<bool>| v.map_or("-", |v| if v { "yes" } else { "no" });
                    println!(
                        "{}: beat F {} (offset {}, {} within 20 ms), downbeat F {}, tempo {:.1} (ref {}) acc1 {} acc2 {}, key {} (ref {}) {}",
                        path.display(),
                        f(c.beat_f),
                        c.beat_offset_ms.map_or("-".to_string(), |v| format!("{v:+.1} ms")),
                        c.beats_within_20ms.map_or("-".to_string(), |v| format!("{:.0}%", v * 100.0)),
                        f(c.downbeat_f),
                        c.bpm,
                        c.ref_bpm.map_or("-".to_string(), |b| format!("{b:.1}")),
                        yes(c.tempo_acc1),
                        yes(c.tempo_acc2),
                        c.key,
                        c.ref_key.as_deref().unwrap_or("-"),
                        f(c.key_score)
                    );
                }
                scores.lock().unwrap_or_else(|p| p.into_inner()).push(c);
                cut_scores.lock().unwrap_or_else(|p| p.into_inner()).extend(cut);
            }
            Err(e) => println!("{}: error: {e}", path.display()),
        },
    );
    let scores = scores.into_inner().unwrap_or_else(|p| p.into_inner());
    if scores.is_empty() {
        println!("no file scored");
        return Ok(false);
    }
    let show = |m: Option<(f64, usize)>| m.map_or("-".to_string(), |(v, n)| format!("{v:.3} ({n})"));
    let (audio, cpu): (f64, f64) = scores.iter().fold((0.0, 0.0), |(a, c), s| (a + s.duration_s, c + s.cpu_s));
    let means = Means::of(&scores);
    let mut all = cut_scores.into_inner().unwrap_or_else(|p| p.into_inner());
    all.extend(scores.iter().cloned());
    let over_cuts = cuts.then(|| Means::of(&all));
    if json {
        let mut summary = means.json();
        summary["speed_x_realtime_per_cpu_s"] = serde_json::json!(audio / cpu.max(1e-9));
        if let Some(m) = &over_cuts {
            summary["over_seven_starts"] = m.json();
        }
        println!("{summary}");
    } else {
        let line = |m: &Means| {
            format!(
                "beat F {}, downbeat F {}, tempo acc1 {} acc2 {}, key {}",
                show(m.beat_f),
                show(m.downbeat_f),
                show(m.acc1),
                show(m.acc2),
                show(m.key)
            )
        };
        println!("mean over {} files: {}; analysis {:.0}x real time per CPU second", means.files, line(&means), audio / cpu.max(1e-9));
        if let Some(m) = &over_cuts {
            println!("mean over the {} files each cut 0, 0.9, 1.7, 2.4, 3.0, 3.7 and 5.1 s later: {}", means.files, line(m));
        }
    }
    Ok(true)
}

/// Decodes a whole file at the station rate.
fn decode_all(path: &Path, rate: nonstop::units::SampleRate) -> anyhow::Result<Vec<f32>> {
    let mut reader = nonstop::audio::TrackReader::open(path, rate).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut pcm = Vec::new();
    while reader.read(&mut pcm, 1 << 16).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))? > 0 {}
    Ok(pcm)
}

/// `nonstop mix A B --out FILE.wav [--json]`: renders the transition from
/// 30 s before the mix-out to 30 s after the overlap (and B's tempo glide).
pub fn mix(config: &Config, a_path: &Path, b_path: &Path, out: &Path, json: bool) -> anyhow::Result<()> {
    use nonstop::transition::{plan, render_checked, Mode};
    let rate = config.stream.rate();
    let settings = config.mixer.transition();
    let (a, b) = (decode_all(a_path, rate)?, decode_all(b_path, rate)?);
    // Analysed from the files, as the station does.
    let analyse = |path: &Path| analysis::analyze_file(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    let (aa, ab) = (analyse(a_path)?, analyse(b_path)?);
    let planned = plan(&aa, &ab, &settings);
    let started = Instant::now();
    let post_s = |p: &nonstop::transition::Plan| if p.mode == Mode::Beatmatched { p.glide_out_s() + 30.0 } else { 30.0 };
    let (r, p) = render_checked(&a, &b, &planned, (&aa, &ab), &settings, rate, 30.0, post_s, false, Vec::new());
    let render_s = started.elapsed().as_secs_f64();
    // As measured from the rendered audio (see `transition::align`).
    let alignment = r.alignment.map(|al| {
        serde_json::json!({
            "lag": round_to(al.lag_ms, 2),
            "scatter": round_to(al.scatter_ms, 2),
            "scatter_p95": round_to(al.scatter_p95_ms, 2),
            "on_beat": round_to(al.on_beat, 3),
            "corrected": round_to(al.corrected_ms, 2),
            "windows": al.windows,
            "tried": al.tried,
        })
    });

    let spec = hound::WavSpec { channels: 2, sample_rate: rate.0, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(out, spec)?;
    for v in &r.pcm {
        w.write_sample((v.clamp(-1.0, 1.0) * i16::MAX as f32).round() as i16)?;
    }
    w.finalize()?;

    let duration_s = r.pcm.len() as f64 / 2.0 / rate.0 as f64;
    let report = serde_json::json!({
        "mode": p.mode,
        "reason": p.reason,
        "tempo_a": round_to(p.tempo_a, 2),
        "tempo_b": round_to(p.tempo_b, 2),
        "stretch_ratio": round_to(p.stretch_ratio, 4),
        "overlap_bars": p.overlap_bars,
        "a_out_s": round_to(p.a_out_s, 3),
        "b_in_s": round_to(p.b_in_s, 3),
        "alignment_ms": alignment,
        "out": out.display().to_string(),
        "duration_s": round_to(duration_s, 2),
        "render_x_real_time": (duration_s / render_s.max(1e-9)).round(),
    });
    if json {
        println!("{report}");
    } else {
        println!(
            "{} -> {}: {:?}{} ({:.1} -> {:.1} BPM, stretch {:.4}, {} bars), A out at {:.2} s, B in at {:.2} s; wrote {} ({:.1} s)",
            a_path.display(),
            b_path.display(),
            p.mode,
            p.reason.as_deref().map(|r| format!(" because {r}")).unwrap_or_default(),
            p.tempo_a,
            p.tempo_b,
            p.stretch_ratio,
            p.overlap_bars,
            p.a_out_s,
            p.b_in_s,
            out.display(),
            duration_s
        );
        if let Some(a) = alignment {
            println!(
                "measured beat alignment in the overlap: median {} ms, p95 {} ms, {}% of windows on the beat (B shifted by {} ms)",
                a["median"],
                a["p95"],
                (a["on_beat"].as_f64().unwrap_or(0.0) * 100.0).round(),
                a["corrected"]
            );
        }
    }
    Ok(())
}

/// `nonstop render --minutes N --out FILE.mp3 [--memory-log FILE.csv]`:
/// the station's stream, unpaced, with the speed, where the time goes and
/// the peak memory; the memory log gets `audio_s,rss_bytes` once a second.
pub fn render(config: &Config, minutes: f64, out: &Path, memory_log: Option<&Path>) -> anyhow::Result<()> {
    use std::io::Write;
    let mut log = match memory_log {
        Some(p) => {
            let mut f = std::fs::File::create(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            writeln!(f, "audio_s,rss_bytes")?;
            Some(f)
        }
        None => None,
    };
    let r = nonstop::station::render_offline(config, minutes, out, |audio_s| {
        if let Some(f) = &mut log {
            let _ = writeln!(f, "{audio_s:.0},{}", nonstop::cpu::rss_bytes());
        }
    })?;
    let pct = |x: f64| 100.0 * x / r.cpu_s.max(1e-9);
    let before_encoder = r.decode_s + r.transition_s;
    println!(
        "rendered {:.0} s of audio to {} in {:.1} s wall, {:.1} s CPU: {:.1}x real time per CPU second ({:.1}x wall)",
        r.audio_s,
        out.display(),
        r.wall_s,
        r.cpu_s,
        r.audio_s / r.cpu_s.max(1e-9),
        r.audio_s / r.wall_s.max(1e-9)
    );
    println!(
        "stages: decode+resample {:.1}% ({:.2} s), transitions (stretch, mix, limiter) {:.1}% ({:.2} s), encode {:.1}% ({:.2} s), other {:.1}%",
        pct(r.decode_s),
        r.decode_s,
        pct(r.transition_s),
        r.transition_s,
        pct(r.encode_s),
        r.encode_s,
        (100.0 - pct(r.decode_s + r.transition_s + r.encode_s)).max(0.0)
    );
    println!(
        "stages before the encoder alone: {:.0}x real time per CPU second; transitions: {} beatmatched, {} crossfade",
        r.audio_s / before_encoder.max(1e-9),
        r.transitions_beatmatched,
        r.transitions_crossfade
    );
    println!("peak memory (RSS): {:.1} MiB", r.peak_rss_bytes as f64 / (1024.0 * 1024.0));
    Ok(())
}

/// Marker click frequencies for A and B: above the analysis band (11 kHz),
/// so the analysis cannot see them.
const MARK_A_HZ: f32 = 12_500.0;
const MARK_B_HZ: f32 = 15_500.0;

/// Adds a faint 4 ms Hann-windowed sine burst at `hz` at each of `times`.
fn add_marks(pcm: &mut [f32], rate: nonstop::units::SampleRate, times: &[f64], hz: f32) {
    let n = (0.004 * rate.0 as f64) as usize;
    for &t in times {
        let start = (t * rate.0 as f64).round() as usize;
        for i in 0..n {
            let w = 0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / n as f32).cos();
            let v = 0.02 * w * (std::f32::consts::TAU * hz * i as f32 / rate.0 as f32).sin();
            if let Some(s) = pcm.get_mut((start + i) * 2..(start + i) * 2 + 2) {
                s[0] += v;
                s[1] += v;
            }
        }
    }
}

/// Onsets of the marker clicks at `hz` in interleaved stereo: where a
/// narrow-band envelope rises through half its local peak.
fn mark_onsets(pcm: &[f32], rate: nonstop::units::SampleRate, hz: f32) -> Vec<f64> {
    // Demodulated at `hz` (the phase in f64: in f32 it is noise after a
    // few seconds), then two one-pole low-passes of 0.4 ms.
    let w = std::f64::consts::TAU * hz as f64 / rate.0 as f64;
    let a = 1.0 - (-1.0f64 / (0.0004 * rate.0 as f64)).exp();
    let (mut re, mut im, mut re2, mut im2) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let env: Vec<f32> = pcm
        .iter()
        .step_by(2)
        .enumerate()
        .map(|(i, x)| {
            let phase = (w * i as f64) % std::f64::consts::TAU;
            re += a * (*x as f64 * phase.cos() - re);
            im += a * (*x as f64 * phase.sin() - im);
            re2 += a * (re - re2);
            im2 += a * (im - im2);
            (re2 * re2 + im2 * im2).sqrt() as f32
        })
        .collect();
    let peak = env.iter().copied().fold(0.0f32, f32::max);
    let threshold = 0.3 * peak;
    let mut out = Vec::new();
    let mut i = 1;
    let hold = (0.05 * rate.0 as f64) as usize;
    while i < env.len() {
        if env[i] >= threshold && env[i - 1] < threshold {
            // Half of this click's own peak, walking back.
            let top = env[i..(i + 400).min(env.len())].iter().copied().fold(0.0f32, f32::max);
            let mut j = i;
            while j > 0 && env[j - 1] >= 0.5 * top {
                j -= 1;
            }
            out.push(j as f64 / rate.0 as f64);
            i += hold;
        } else {
            i += 1;
        }
    }
    out
}

/// `nonstop eval-mix DIR`: transitions between real recordings, checked by
/// marker clicks the analysis cannot see. For every pair of clips in `DIR`
/// (`audio/` and `annotations/`) whose annotated tempos are within the
/// stretch limit (half and double tempo allowed), a faint click above
/// 11 kHz is added at each annotated beat (12.5 kHz on A, 15.5 kHz on B),
/// the transition is planned from the clicked files' analysis (as one
/// transition, `nonstop mix`: the room a short B keeps on air for its own
/// mix-out is not reserved) and rendered as the station would; then both
/// click trains are found in the rendered overlap and B's are compared
/// with A's. Prints each pair and a summary, with what the annotations'
/// own offsets from the beats account for (over each clip, and where the
/// clips meet) and what the render adds beyond them.
pub fn eval_mix(config: &Config, dir: &Path, json: bool) -> anyhow::Result<bool> {
    use nonstop::transition::{plan, render_checked, Mode};
    let rate = config.stream.rate();
    let settings = config.mixer.transition();
    let files = expand(&[dir.join("audio")]);
    struct Clip {
        name: String,
        pcm: Vec<f32>,
        analysis: Analysis,
        beats: Vec<f64>,
        bpm: f64,
        /// Median offset of the analysis's beats from the annotations, ms.
        offset_ms: f64,
    }
    let clips: Mutex<Vec<Clip>> = Mutex::new(Vec::new());
    parallel(
        &files,
        |path| -> anyhow::Result<Clip> {
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let beats = eval::read_beats(&dir.join("annotations").join(format!("{stem}.beats"))).map_err(anyhow::Error::msg)?.beats;
            let bpm: f64 = std::fs::read_to_string(dir.join("annotations").join(format!("{stem}.bpm")))?.trim().parse()?;
            let pcm = decode_all(path, rate)?;
            // Analysed from the file, as the station does (not from the
            // audio at the station rate: resampled twice, that moves
            // near-tied decisions of the analysis).
            let analysis = analysis::analyze_file(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let offset_ms = eval::timing(&beats, &analysis.beats).map_or(f64::NAN, |t| t.0);
            Ok(Clip { name: stem, pcm, analysis, beats, bpm, offset_ms })
        },
        |path, r| match r {
            Ok(c) => clips.lock().unwrap_or_else(|p| p.into_inner()).push(c),
            Err(e) => eprintln!("{}: {e}", path.display()),
        },
    );
    let mut clips = clips.into_inner().unwrap_or_else(|p| p.into_inner());
    clips.sort_by(|a, b| a.name.cmp(&b.name));
    let mut pairs = Vec::new();
    for (i, a) in clips.iter().enumerate() {
        for (j, b) in clips.iter().enumerate() {
            let close = [0.5, 1.0, 2.0].iter().any(|m| (a.bpm / (b.bpm * m) - 1.0).abs() <= settings.max_tempo_change);
            if i != j && close {
                pairs.push((i, j));
            }
        }
    }
    let (mut all_errors, mut beatmatched, mut fell_back, mut on_beat_pairs) = (Vec::new(), 0, 0, 0);
    // Pairs with 95% of B's clicks within the ±70 ms that beat trackers
    // are scored by: none half a beat off, however loosely on it.
    let mut within_70_pairs = 0;
    let mut fallback_reasons: Vec<String> = Vec::new();
    let mut lag_differences: Vec<f64> = Vec::new();
    // What the clips' own offsets from their annotations alone put between
    // the click trains (B's beats on A's, each clip's marks off its beats),
    // and how far the clicks' lag is from that.
    let (mut offset_lags, mut beyond_offsets): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    // The same from the annotations where the clips meet (A's through the
    // overlap, B's where it comes in), beat by beat against the beats the
    // plan put together: what the render itself adds is the rest.
    let (mut local_lags, mut beyond_local): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    // And how far the station's own measurement is from the clicks' lag
    // once those offsets are taken out: what the music itself shows.
    let mut self_beyond_offsets: Vec<f64> = Vec::new();
    // The same with the annotations' offsets where the clips meet.
    let mut self_beyond_local: Vec<f64> = Vec::new();
    for (i, j) in pairs {
        let (a, b) = (&clips[i], &clips[j]);
        // Each clip's clicks at its own frequency, and only there: a click
        // train of B at A's frequency would be found as A's.
        let (mut a_pcm, mut b_pcm) = (a.pcm.clone(), b.pcm.clone());
        add_marks(&mut a_pcm, rate, &a.beats, MARK_A_HZ);
        add_marks(&mut b_pcm, rate, &b.beats, MARK_B_HZ);
        let planned = plan(&a.analysis, &b.analysis, &settings);
        let post = |p: &nonstop::transition::Plan| if p.mode == Mode::Beatmatched { p.glide_out_s() } else { 0.5 };
        let (r, aired) = render_checked(&a_pcm, &b_pcm, &planned, (&a.analysis, &b.analysis), &settings, rate, 0.0, post, false, Vec::new());
        let line = if aired.mode == Mode::Beatmatched {
            beatmatched += 1;
            let overlap = &r.pcm[r.overlap_start * 2..r.overlap_end * 2];
            let (ta, tb) = (mark_onsets(overlap, rate, MARK_A_HZ), mark_onsets(overlap, rate, MARK_B_HZ));
            // Each of B's clicks against the nearest of A's — at the pulse
            // the two share: where one clip is annotated at twice the
            // other's tempo (the same music counted in eighths), every
            // other click of the denser train is an off-beat of the other
            // by annotation, so the sparser train is matched against the
            // denser one.
            let b_denser = b.bpm > 1.5 * a.bpm;
            let (sparse, dense) = if b_denser { (&ta, &tb) } else { (&tb, &ta) };
            let sign = if b_denser { -1.0 } else { 1.0 };
            let beat = 60.0 / a.bpm.min(b.bpm);
            // Only where the denser train runs: past its first or last
            // click (a clip's annotations can stop before its audio does)
            // a click has nothing to be on or off.
            let dense_beat = 60.0 / a.bpm.max(b.bpm);
            let span = dense.first().zip(dense.last()).map_or(0.0..=0.0, |(f, l)| f - 0.5 * dense_beat..=l + 0.5 * dense_beat);
            let mut signed: Vec<f64> = sparse
                .iter()
                .filter(|t| span.contains(t))
                .filter_map(|t| eval::nearest(dense, *t).map(|x| sign * (t - x) * 1000.0))
                .filter(|e| e.abs() <= beat * 500.0)
                .collect();
            signed.sort_by(f64::total_cmp);
            // The systematic lag, as the clicks show it and as the station
            // measured it from the music alone.
            let clicks_lag = nonstop::quantile(&signed, 0.5);
            let self_lag = r.alignment.map_or(f64::NAN, |al| al.lag_ms);
            let self_on_beat = r.alignment.map_or(f64::NAN, |al| al.on_beat);
            if (clicks_lag - self_lag).is_finite() {
                lag_differences.push((clicks_lag - self_lag).abs());
            }
            let offsets_lag = a.offset_ms - b.offset_ms;
            let local_lag = overlap_offsets_lag(&aired, &a.beats, &b.beats);
            if (clicks_lag - local_lag).is_finite() {
                local_lags.push(local_lag.abs());
                beyond_local.push((clicks_lag - local_lag).abs());
                if self_lag.is_finite() {
                    self_beyond_local.push((clicks_lag - local_lag - self_lag).abs());
                }
            }
            if (clicks_lag - offsets_lag).is_finite() {
                offset_lags.push(offsets_lag.abs());
                beyond_offsets.push((clicks_lag - offsets_lag).abs());
                if self_lag.is_finite() {
                    self_beyond_offsets.push((clicks_lag - offsets_lag - self_lag).abs());
                }
            }
            let mut errors: Vec<f64> = signed.iter().map(|e| e.abs()).collect();
            errors.sort_by(f64::total_cmp);
            let q = |p: f64| nonstop::quantile(&errors, p);
            let within = |ms: f64| errors.iter().filter(|e| **e <= ms).count() as f64 / errors.len().max(1) as f64;
            let on_beat = within(20.0);
            if on_beat >= 0.95 {
                on_beat_pairs += 1;
            }
            if within(70.0) >= 0.95 {
                within_70_pairs += 1;
            }
            all_errors.extend(errors.iter().copied());
            format!(
                "{} -> {}: beatmatched, {} clicks: median {:.1} ms, p95 {:.1} ms, {:.0}% on A's beats; lag {:+.1} ms (self-measured {:+.1} ms, {:.0}% of beats within 20 ms)",
                a.name,
                b.name,
                errors.len(),
                q(0.5),
                q(0.95),
                on_beat * 100.0,
                clicks_lag,
                self_lag,
                self_on_beat * 100.0
            )
        } else {
            fell_back += 1;
            let reason = aired.reason.clone().unwrap_or_default();
            fallback_reasons.push(reason.clone());
            format!("{} -> {}: crossfade: {reason}", a.name, b.name)
        };
        if !json {
            println!("{line}");
        }
    }
    all_errors.sort_by(f64::total_cmp);
    let median_p95 = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (nonstop::quantile(v, 0.5), nonstop::quantile(v, 0.95))
    };
    let (lag_agreement, lag_agreement_p95) = median_p95(&mut lag_differences);
    let offsets_within_20 = offset_lags.iter().filter(|l| **l <= 20.0).count() as f64 / offset_lags.len().max(1) as f64;
    let (offsets_lag, offsets_lag_p95) = median_p95(&mut offset_lags);
    let (beyond, beyond_p95) = median_p95(&mut beyond_offsets);
    let (self_beyond, self_beyond_p95) = median_p95(&mut self_beyond_offsets);
    let (local, local_p95) = median_p95(&mut local_lags);
    let (beyond_here, beyond_here_p95) = median_p95(&mut beyond_local);
    let (self_here, self_here_p95) = median_p95(&mut self_beyond_local);
    let q = |p: f64| nonstop::quantile(&all_errors, p);
    let summary = serde_json::json!({
        "pairs": beatmatched + fell_back,
        "beatmatched": beatmatched,
        "crossfaded": fell_back,
        "median_ms": (q(0.5) * 10.0).round() / 10.0,
        "p95_ms": (q(0.95) * 10.0).round() / 10.0,
        "pairs_95pct_on_beat": on_beat_pairs,
        "pairs_95pct_within_70ms": within_70_pairs,
        "on_beat": all_errors.iter().filter(|e| **e <= 20.0).count() as f64 / all_errors.len().max(1) as f64,
        "self_lag_off_median_ms": (lag_agreement * 10.0).round() / 10.0,
        "self_lag_off_p95_ms": (lag_agreement_p95 * 10.0).round() / 10.0,
        "annotation_offsets_lag_median_ms": (offsets_lag * 10.0).round() / 10.0,
        "annotation_offsets_lag_p95_ms": (offsets_lag_p95 * 10.0).round() / 10.0,
        "lag_beyond_annotation_offsets_median_ms": (beyond * 10.0).round() / 10.0,
        "self_lag_off_beyond_annotation_offsets_median_ms": (self_beyond * 10.0).round() / 10.0,
        "overlap_annotation_offsets_lag_median_ms": (local * 10.0).round() / 10.0,
        "overlap_annotation_offsets_lag_p95_ms": (local_p95 * 10.0).round() / 10.0,
        "lag_beyond_overlap_annotation_offsets_median_ms": (beyond_here * 10.0).round() / 10.0,
        "lag_beyond_overlap_annotation_offsets_p95_ms": (beyond_here_p95 * 10.0).round() / 10.0,
        "self_lag_off_beyond_annotation_offsets_p95_ms": (self_beyond_p95 * 10.0).round() / 10.0,
        "self_lag_off_beyond_overlap_annotation_offsets_median_ms": (self_here * 10.0).round() / 10.0,
        "self_lag_off_beyond_overlap_annotation_offsets_p95_ms": (self_here_p95 * 10.0).round() / 10.0,
    });
    if json {
        println!("{summary}");
    } else {
        println!(
            "{} pairs within the stretch limit: {} beatmatched ({} with ≥95% of B's beats on A's, {} with ≥95% within 70 ms), {} crossfaded; B's clicks on A's: median {:.1} ms, p95 {:.1} ms, {:.1}% within 20 ms, over {} clicks",
            beatmatched + fell_back,
            beatmatched,
            on_beat_pairs,
            within_70_pairs,
            fell_back,
            q(0.5),
            q(0.95),
            summary["on_beat"].as_f64().unwrap_or(0.0) * 100.0,
            all_errors.len()
        );
        println!(
            "the station's own measurement of the lag (from the music, not the clicks) was within {lag_agreement:.1} ms of the clicks' at the median pair, {lag_agreement_p95:.1} ms at the 95th percentile; within {self_beyond:.1} ms ({self_beyond_p95:.1} ms) of the clicks' lag less the clips' annotation offsets, within {self_here:.1} ms ({self_here_p95:.1} ms) less their offsets where the clips meet"
        );
        println!(
            "each clip's beats sit at their own offset from its annotations; those offsets alone would put B's clicks {offsets_lag:.1} ms from A's at the median pair, {offsets_lag_p95:.1} ms at the 95th percentile ({:.0}% of pairs within 20 ms); the clicks' lag was {beyond:.1} ms from that at the median pair, {beyond_p95:.1} ms at the 95th percentile",
            offsets_within_20 * 100.0
        );
        println!(
            "where the clips meet, the annotations' offsets from the beats the plan put together would put B's clicks {local:.1} ms from A's at the median pair, {local_p95:.1} ms at the 95th percentile; the clicks' lag was {beyond_here:.1} ms from that at the median pair, {beyond_here_p95:.1} ms at the 95th percentile: what the render itself adds"
        );
    }
    Ok(beatmatched + fell_back > 0)
}

/// Where the marks of a beatmatched transition should land against each
/// other, ms (B's less A's), from the annotations alone: for each of A's
/// beats in the overlap and the beat of B the plan puts on it, each one's
/// offset from its nearest annotation (within 50 ms), B's at the speed it
/// is played; the median over the overlap. NaN where no pair has both.
fn overlap_offsets_lag(plan: &nonstop::transition::Plan, a_marks: &[f64], b_marks: &[f64]) -> f64 {
    let offset = |marks: &[f64], t: f64| eval::nearest(marks, t).map(|m| t - m).filter(|d| d.abs() <= 0.05);
    let mut lags: Vec<f64> = plan
        .a_beats
        .iter()
        .zip(&plan.b_beats)
        .filter_map(|(&ta, &tb)| Some((offset(a_marks, ta)? - offset(b_marks, tb)? / plan.stretch_ratio) * 1000.0))
        .collect();
    lags.sort_by(f64::total_cmp);
    nonstop::quantile(&lags, 0.5)
}

/// `nonstop loadtest`: listeners (or connect/disconnect churn) against a stream.
pub fn loadtest(options: &nonstop::loadtest::Options, churn: Option<usize>, json: bool) -> anyhow::Result<()> {
    nonstop::raise_open_files_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match churn {
            Some(cycles) => {
                let report = nonstop::loadtest::churn(&options.url, cycles, 64, options.pid).await?;
                if json {
                    println!("{}", serde_json::to_string(&report)?);
                } else {
                    let mib = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.1} MiB"));
                    println!(
                        "churn           {} cycles, {} failed; server RSS {} before, {} after",
                        report.cycles,
                        report.failed,
                        mib(report.server_rss_before_mib),
                        mib(report.server_rss_after_mib)
                    );
                }
            }
            None => {
                let report = nonstop::loadtest::run(options).await?;
                if json {
                    println!("{}", serde_json::to_string(&report)?);
                } else {
                    println!("{report}");
                }
            }
        }
        anyhow::Ok(())
    })
}

/// What `nonstop ctl` does.
pub enum Ctl {
    /// One admin request (method, path, JSON body).
    Call(&'static str, &'static str, Option<serde_json::Value>),
    /// Search the library and request the best match.
    Request(String),
}

/// `nonstop ctl`: admin requests to a running station, with the token
/// from the configuration (or `NONSTOP_ADMIN_TOKEN`); prints the answer.
pub fn ctl(config: &Config, url: Option<&str>, action: Ctl) -> anyhow::Result<()> {
    let token = config.server.admin_token.as_deref().filter(|t| !t.is_empty()).ok_or_else(|| {
        anyhow::anyhow!("no admin token: set server.admin_token in the configuration or NONSTOP_ADMIN_TOKEN")
    })?;
    let authority = match url {
        Some(u) => {
            let uri: http::Uri = u.parse().map_err(|e| anyhow::anyhow!("bad URL {u}: {e}"))?;
            uri.authority().map(|a| a.to_string()).ok_or_else(|| anyhow::anyhow!("URL without a host: {u}"))?
        }
        None => {
            let mut addr = config.server.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            addr.to_string()
        }
    };
    let call = |method: &str, path: &str, body: Option<&serde_json::Value>| admin_call(&authority, token, method, path, body);
    let answer = match action {
        Ctl::Call(method, path, body) => call(method, path, body.as_ref())?,
        Ctl::Request(query) => {
            let q: String = form_urlencoded::byte_serialize(query.as_bytes()).collect();
            let found: serde_json::Value = serde_json::from_str(&call("GET", &format!("/api/tracks?q={q}"), None)?)?;
            let tracks = found["tracks"].as_array().cloned().unwrap_or_default();
            let Some(best) = tracks.first() else { anyhow::bail!("no track matches {query:?}") };
            if tracks.len() > 1 {
                eprintln!("{} tracks match; requesting the first: {} - {}", tracks.len(), best["artist"].as_str().unwrap_or(""), best["title"].as_str().unwrap_or(""));
            }
            call("POST", "/admin/requests", Some(&serde_json::json!({ "track_id": best["id"] })))?
        }
    };
    println!("{}", answer.trim_end());
    Ok(())
}

/// One request to the station's admin API; the body of a 2xx answer.
fn admin_call(authority: &str, token: &str, method: &str, path: &str, body: Option<&serde_json::Value>) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(authority)
        .map_err(|e| anyhow::anyhow!("cannot reach the station at {authority}: {e}"))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply)?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let body_at = match response.parse(&reply) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => anyhow::bail!("{authority} did not answer with HTTP"),
    };
    let code = response.code.unwrap_or(0);
    let body = String::from_utf8_lossy(&reply[body_at..]).into_owned();
    if !(200..300).contains(&code) {
        anyhow::bail!("{method} {path}: HTTP {code}: {}", body.trim());
    }
    Ok(body)
}
