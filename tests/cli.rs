//! The command-line tools, run as a user would run them.

use std::process::Command;

use nonstop::encoder::{encode_file, FileTags, LameSettings};
use nonstop::synth::{analysis_test_set, render};
use nonstop::units::SampleRate;

fn nonstop(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nonstop")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Writes test-set case `i` as MP3 and its beats as `<stem>.beats`.
/// Returns the path, the spec, and the generator's calibrated loudness.
fn write_case(dir: &std::path::Path, i: usize) -> (std::path::PathBuf, nonstop::synth::TrackSpec, f64) {
    let spec = analysis_test_set(30.0).swap_remove(i);
    let pcm = render(&spec, SampleRate::CD);
    let lufs = nonstop::synth::loudness_lufs(&pcm, SampleRate::CD);
    // 320 kbps: at lower rates LAME's low-pass (about 17 kHz) removes a
    // measurable share of the hi-hats' K-weighted loudness.
    let settings = LameSettings { sample_rate: 44_100, bitrate_kbps: 320, quality: 2 };
    let mp3 = encode_file(settings, FileTags { title: &spec.title, artist: &spec.artist, album: "" }, &pcm).unwrap();
    let path = dir.join(format!("case{i}.mp3"));
    std::fs::write(&path, mp3).unwrap();
    let beats: Vec<String> = spec.beat_times()[..spec.beat_times().len() - 1]
        .iter()
        .enumerate()
        .map(|(k, t)| format!("{t:.4} {}", k % spec.style.meter as usize + 1))
        .collect();
    std::fs::write(dir.join(format!("case{i}.beats")), beats.join("\n")).unwrap();
    (path, spec, lufs)
}

#[test]
fn analyze_json_reports_every_field_and_errors_per_file() {
    let dir = tempfile::tempdir().unwrap();
    // A case without white noise: LAME's low-pass would take some of the noise's loudness.
    let (path, spec, lufs) = write_case(dir.path(), 11);
    std::fs::write(dir.path().join("junk.mp3"), b"not audio at all").unwrap();
    let (code, out, _) = nonstop(&["analyze", "--json", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "one file analysed: {out}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    let good = lines.iter().find(|l| l["path"] == path.to_str().unwrap()).unwrap();
    for key in [
        "path", "duration_s", "bpm", "beats", "downbeats", "beat_confidence", "loudness_lufs", "true_peak_dbtp", "key", "camelot",
        "energy", "cue_in_s", "cue_out_s",
    ] {
        assert!(!good[key].is_null(), "{key} missing: {good}");
    }
    assert!((good["bpm"].as_f64().unwrap() / spec.bpm - 1.0).abs() < 0.02, "{}", good["bpm"]);
    assert_eq!(good["key"], spec.key_name());
    // Through MP3 and back, the loudness is the generator's calibrated value.
    assert!((good["loudness_lufs"].as_f64().unwrap() - lufs).abs() < 0.5, "{} vs {lufs}", good["loudness_lufs"]);
    let bad = lines.iter().find(|l| l["path"].as_str().unwrap().ends_with("junk.mp3")).unwrap();
    assert!(bad["error"].as_str().is_some_and(|e| !e.is_empty()), "{bad}");

    let (code, out, _) = nonstop(&["analyze", dir.path().join("junk.mp3").to_str().unwrap()]);
    assert_eq!(code, 1, "every file failed: {out}");
    assert!(out.contains("junk.mp3: error:"), "{out}");
}

#[test]
fn eval_scores_against_annotations() {
    let dir = tempfile::tempdir().unwrap();
    let (path, spec, _) = write_case(dir.path(), 4);
    std::fs::write(dir.path().join("case4.bpm"), format!("{}\n", spec.bpm)).unwrap();
    std::fs::write(dir.path().join("case4.key"), format!("{}\n", spec.key_name())).unwrap();
    let (code, out, err) = nonstop(&["eval", "--json", "--annotations", dir.path().to_str().unwrap(), path.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert!(summary["beat_f"].as_f64().unwrap() >= 0.95, "{out}");
    assert!(summary["downbeat_f"].as_f64().unwrap() >= 0.95, "{out}");
    assert_eq!(summary["tempo_acc1"], 1.0, "{out}");
    assert_eq!(summary["key_score"], 1.0, "{out}");
    // With --cuts, a line for the clip as it is and one for each cut.
    let (code, out, err) = nonstop(&["eval", "--json", "--cuts", "--annotations", dir.path().to_str().unwrap(), path.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let cuts: Vec<f64> = out.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["cut_s"].as_f64()).collect();
    let expected = [0.0, 0.9, 1.7, 2.4, 3.0, 3.7, 5.1];
    assert!(cuts.len() == expected.len() && cuts.iter().zip(expected).all(|(c, e)| (c - e).abs() < 1e-3), "{out}");
    // A missing annotation is an error for that file, named.
 for ext in ["beats", "bpm", "key"] {
        std::fs::remove_file(dir.path().join(format!("case4.{ext}"))).unwrap();
    }
    let (code, out, _) = nonstop(&["eval", "--annotations", dir.path().to_str().unwrap(), path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.contains("case4.beats"), "{out}");
}

#[test]
fn eval_mix_finds_the_marks_where_the_annotations_put_them() {
    // Two steady synthetic tracks 3% apart in tempo, annotated at their
    // true beats: both transitions beatmatch, and the marks at those beats
    // land on each other in the rendered overlap. At 22.05 kHz, as the
    // annotated clips are: nothing of the music where the marks are.
    let rate = SampleRate(22_050);
    let dir = tempfile::tempdir().unwrap();
    let (audio, annotations) = (dir.path().join("audio"), dir.path().join("annotations"));
    std::fs::create_dir_all(&audio).unwrap();
    std::fs::create_dir_all(&annotations).unwrap();
    for i in [11, 12] {
        let spec = analysis_test_set(30.0).swap_remove(i);
        std::fs::write(audio.join(format!("case{i}.wav")), nonstop::synth::faults::wav16(rate.0, 2, render(&spec, rate))).unwrap();
        let beats: Vec<String> = spec.beat_times().iter().map(|t| format!("{t:.5}")).collect();
        std::fs::write(annotations.join(format!("case{i}.beats")), beats.join("\n")).unwrap();
        std::fs::write(annotations.join(format!("case{i}.bpm")), format!("{}\n", spec.bpm)).unwrap();
    }
    let (code, out, err) = nonstop(&["eval-mix", "--json", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let ms = |key: &str| summary[key].as_f64().unwrap_or(f64::NAN);
    assert_eq!((summary["pairs"].as_u64(), summary["beatmatched"].as_u64()), (Some(2), Some(2)), "{out}");
    assert!(ms("median_ms") <= 3.0 && ms("p95_ms") <= 5.0, "{out}");
    assert_eq!((summary["pairs_95pct_on_beat"].as_u64(), summary["pairs_95pct_within_70ms"].as_u64()), (Some(2), Some(2)), "{out}");
    // Each track's beats sit within a few ms of its annotations where the
    // tracks meet, and the render puts the marks where those offsets say.
    assert!(ms("overlap_annotation_offsets_lag_median_ms") <= 3.0, "{out}");
    assert!(ms("lag_beyond_overlap_annotation_offsets_median_ms") <= 0.5, "{out}");
    // The station's own measurement of the lag, from the music alone,
    // agrees with the marks': here the annotations are the true beats, so
    // the marks' lag itself is the truth (the offsets above are the
    // analysis's own error, 1.5 ms, which the music does not share), and
    // the offsets taken out it is still within a couple of ms.
    assert!(ms("self_lag_off_median_ms") <= 1.0, "{out}");
    assert!(ms("self_lag_off_beyond_overlap_annotation_offsets_median_ms") <= 2.0, "{out}");
}

#[test]
fn mix_json_reports_the_alignment_measured_at_every_beat_of_the_overlap() {
    // A steady synthetic track, written at 22.05 kHz, into a copy of itself,
    // mixed at the station's 44.1 kHz: the report carries the measured
    // alignment and how many of the overlap's beats it was measured at (the
    // drift of a mistimed envelope is `transition::align`'s unit test: here
    // both tracks play one rhythm, which hides it).
    let dir = tempfile::tempdir().unwrap();
    let spec = analysis_test_set(150.0).swap_remove(0);
    let wav = nonstop::synth::faults::wav16(22_050, 2, render(&spec, SampleRate(22_050)));
    let paths: Vec<String> = ["a", "b"]
        .iter()
        .map(|name| {
            let path = dir.path().join(format!("{name}.wav"));
            std::fs::write(&path, &wav).unwrap();
            path.to_str().unwrap().to_owned()
        })
        .collect();
    let out_wav = dir.path().join("mix.wav");
    let (code, out, err) = nonstop(&["mix", &paths[0], &paths[1], "--out", out_wav.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!((report["mode"].as_str(), report["overlap_bars"].as_u64()), (Some("beatmatched"), Some(16)), "{out}");
    let al = &report["alignment_ms"];
    let (windows, tried) = (al["windows"].as_u64().unwrap(), al["tried"].as_u64().unwrap());
    assert!(tried >= 48 && windows * 10 >= tried * 9, "{out}");
    assert!(al["lag"].as_f64().unwrap().abs() <= 1.0, "{out}");
}

#[test]
fn bad_config_names_the_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[stream]\nbitrate_kbps = 100\n").unwrap();
    let (code, _, err) = nonstop(&["serve", "--config", cfg.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert_ne!(code, 0);
    assert!(err.contains("bad.toml") && err.contains("stream.bitrate_kbps"), "{err}");
    let (code, out, _) = nonstop(&["--help"]);
    assert_eq!(code, 0);
    for cmd in ["serve", "analyze", "scan", "eval"] {
        assert!(out.contains(cmd), "{out}");
    }
}

#[test]
fn plugin_check_prints_picks_or_the_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let (data, lib) = (dir.path().join("data"), dir.path().join("lib"));
    crate::util::write_tone_library(&lib, &crate::util::TONES);
    let (data, lib) = (data.to_str().unwrap(), lib.to_str().unwrap());
    let (code, out, err) = nonstop(&["scan", "--data", data, "--library", lib]);
    assert_eq!(code, 0, "{out}{err}");
    for plugin in ["tour", "harmonic", "energy_arc"] {
        let path = format!("{}/plugins/{plugin}.rhai", env!("CARGO_MANIFEST_DIR"));
        let (code, out, err) = nonstop(&["plugin", "check", &path, "--data", data]);
        assert_eq!(code, 0, "{plugin}: {out}{err}");
        let picks: Vec<&str> = out.lines().filter(|l| l.trim_start().split('.').next().is_some_and(|n| n.parse::<u32>().is_ok())).collect();
        assert_eq!(picks.len(), 20, "{plugin}: {out}");
        assert!(picks.iter().all(|l| ["Low", "Mid", "High"].iter().any(|t| l.contains(t))), "{out}");
    }
    let broken = dir.path().join("broken.rhai");
    std::fs::write(&broken, "fn next_track(ctx) {\n    ctx.candidates[0].id +\n}\n").unwrap();
    let (code, _, err) = nonstop(&["plugin", "check", broken.to_str().unwrap(), "--data", data]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("broken.rhai: line 3: syntax error"), "{err}");
    std::fs::write(&broken, "fn next_track(ctx) {\n    let t = ctx.candidates[0];\n    t.nope.len()\n}\n").unwrap();
    let (code, _, err) = nonstop(&["plugin", "check", broken.to_str().unwrap(), "--data", data]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("line 3") && err.contains("pick 1"), "{err}");
}
