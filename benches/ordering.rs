//! Ordering at library scale: building the similarity graph and tour, the
//! tour's length against random orders, an incremental update, and the time
//! each shipped plugin takes per pick with every track a candidate.
//!
//! Run: `cargo bench --bench ordering`

use std::sync::Arc;
use std::time::Instant;

use nonstop::ordering::distance::tempo_change;
use nonstop::ordering::plugin::{Clock, Limits, PickContext, Plugin};
use nonstop::ordering::tour::Library;
use nonstop::ordering::SHIPPED_PLUGINS;
use nonstop::synth::catalogue;
use rand::seq::SliceRandom;
use rand::SeedableRng;

fn main() {
    for n in [1_000, 5_000, 10_000] {
        let tracks = catalogue(n, 42);
        let t0 = Instant::now();
        let library = Arc::new(Library::build(&tracks, Default::default()));
        let build_s = t0.elapsed().as_secs_f64();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let mut ids: Vec<i64> = tracks.iter().map(|t| t.id).collect();
        ids.shuffle(&mut rng);
        let random = library.order_length(&ids).unwrap();
        // 1% new tracks arrive.
        let mut more = tracks.clone();
        more.extend(catalogue(n / 100, 7).into_iter().map(|t| Arc::new(nonstop::catalog::Track { id: t.id + n as i64, ..(*t).clone() })));
        let mut updated = (*library).clone();
        let t1 = Instant::now();
        updated.update(&more);
        let update_s = t1.elapsed().as_secs_f64();
        // Steps the mixer can beatmatch (tempo within its 8% stretch limit).
        let mixable = |order: &[i64]| {
            let ok = (0..order.len())
                .filter(|&i| {
                    let (a, b) = (library.track(order[i]).unwrap(), library.track(order[(i + 1) % order.len()]).unwrap());
                    tempo_change(a.bpm, b.bpm) <= 0.08
                })
                .count();
            100.0 * ok as f64 / order.len() as f64
        };
        println!(
            "{n:>6} tracks: graph + tour built in {build_s:.2} s; tour/random length {:.3}; steps within 8% tempo: tour {:.1}%, random {:.1}%; +1% tracks updated in {:.0} ms",
            library.tour_length() / random,
            mixable(&library.tour()),
            mixable(&ids),
            update_s * 1000.0
        );
        for (file, source) in SHIPPED_PLUGINS.iter().filter(|(f, _)| f.ends_with(".rhai")) {
            let plugin = Plugin::compile(file, source, Limits::default(), 1).unwrap();
            plugin.set_library(library.clone());
            let history: Vec<i64> = vec![tracks[0].id];
            let picks = 20;
            let t2 = Instant::now();
            for i in 0..picks {
                plugin
                    .pick(&PickContext {
                        current: Some(&tracks[i]),
                        candidates: &tracks[1..],
                        history: &history,
                        clock: Clock { hour: 12, minute: (i * 3) as u32, weekday: 0 },
                    })
                    .unwrap();
            }
            println!("        {file:<16} {:.1} ms per pick over {} candidates", t2.elapsed().as_secs_f64() * 1000.0 / picks as f64, n - 1);
        }
    }
}
