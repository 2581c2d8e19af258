//! What LAME's quality setting costs: encodes one minute of synthesised
//! music at 128 kbps CBR for each quality 0..=9 and prints the speed as
//! × real time per CPU second (thread CPU time, so a busy machine does not
//! skew it), plus each setting's cost relative to quality 5.
//!
//! Run: `cargo bench --bench lame_quality`

use std::time::Instant;

use nonstop::encoder::{Lame, LameSettings};
use nonstop::synth::{demo_specs, render};
use nonstop::units::SampleRate;


fn main() {
    let spec = &demo_specs(60.0)[4];
    let pcm = render(spec, SampleRate::CD);
    let seconds = pcm.len() as f64 / 2.0 / 44_100.0;
    println!("LAME 128 kbps CBR, {seconds:.0} s of synthesised music, per quality setting:");
    println!("quality  x real time (CPU)  x real time (wall)  cost vs q5");
    let mut results = Vec::new();
    for q in 0..=9u8 {
        let settings = LameSettings { sample_rate: 44_100, bitrate_kbps: 128, quality: q };
        let mut lame = Lame::new(settings, None).unwrap();
        let mut out = Vec::new();
        let (cpu0, wall0) = (nonstop::cpu::thread_seconds(), Instant::now());
        for chunk in pcm.chunks(4608 * 2) {
            out.clear();
            lame.encode(chunk, &mut out).unwrap();
        }
        let cpu = (nonstop::cpu::thread_seconds() - cpu0).max(0.01);
        let wall = wall0.elapsed().as_secs_f64();
        results.push((q, seconds / cpu, seconds / wall));
    }
    let q5 = results[5].1;
    for (q, cpu, wall) in &results {
        println!("{q:>7}  {cpu:>17.1}  {wall:>18.1}  {:>9.2}x", q5 / cpu);
    }
}
