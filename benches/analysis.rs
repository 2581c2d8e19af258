//! Analysis speed: × real time per core for full analysis (decoding
//! included) on a generated set of MP3 files, measured in thread CPU time
//! on one thread, with decoding alone for comparison. Also scores the
//! synthesised test set (accuracy at a glance).
//!
//! Run: `cargo bench --bench analysis`

use std::time::Instant;

use nonstop::analysis::analyze_file;
use nonstop::synth::testset;
use nonstop::audio::Decoder;
use nonstop::encoder::{encode_file, FileTags, LameSettings};
use nonstop::synth::{analysis_test_set, demo_specs, render};
use nonstop::units::SampleRate;


fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut specs = demo_specs(120.0);
    specs.extend(analysis_test_set(60.0).into_iter().step_by(3));
    let settings = LameSettings { sample_rate: 44_100, bitrate_kbps: 192, quality: 5 };
    let mut files = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let pcm = render(spec, SampleRate::CD);
        let mp3 = encode_file(settings, FileTags { title: &spec.title, artist: &spec.artist, album: "bench" }, &pcm).unwrap();
        let path = dir.path().join(format!("{i:02}.mp3"));
        std::fs::write(&path, mp3).unwrap();
        files.push(path);
    }

    let (cpu0, wall0) = (nonstop::cpu::thread_seconds(), Instant::now());
    let mut audio_s = 0.0;
    for f in &files {
        let mut d = Decoder::open(f).unwrap();
        let mut frames = 0usize;
        while let Some(b) = d.next_block().unwrap() {
            frames += b.len() / 2;
        }
        audio_s += frames as f64 / 44_100.0;
    }
    let decode_cpu = (nonstop::cpu::thread_seconds() - cpu0).max(0.01);
    let decode_wall = wall0.elapsed().as_secs_f64();

    let (cpu0, wall0) = (nonstop::cpu::thread_seconds(), Instant::now());
    for f in &files {
        analyze_file(f).unwrap();
    }
    let full_cpu = (nonstop::cpu::thread_seconds() - cpu0).max(0.01);
    let full_wall = wall0.elapsed().as_secs_f64();

    println!("{} MP3 files (192 kbps), {audio_s:.0} s of audio, one thread:", files.len());
    println!("  decoding only:   {:7.0}x real time per CPU second ({:.0}x wall)", audio_s / decode_cpu, audio_s / decode_wall);
    println!("  full analysis:   {:7.0}x real time per CPU second ({:.0}x wall)", audio_s / full_cpu, audio_s / full_wall);
    println!("  analysis share:  {:7.0}% of the CPU time is analysis, the rest decoding", 100.0 * (1.0 - decode_cpu / full_cpu));

    let s = testset::run(40.0);
    println!(
        "synthesised test set ({} tracks): tempo within 2% on {:.1}%, mean beat F-measure {:.3}, downbeat F {:.3}, key {:.1}%, max loudness error {:.2} LU",
        s.tracks,
        100.0 * s.tempo_accuracy,
        s.mean_f_measure,
        s.mean_downbeat_f,
        100.0 * s.key_accuracy,
        s.max_loudness_error_lu
    );
}
