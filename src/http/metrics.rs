//! `GET /metrics`: the station's counters and gauges for Prometheus, in the
//! OpenMetrics text format (prometheus-client), named and unit-suffixed by
//! Prometheus conventions. Read from the same atomics `/status` reads:
//! no SQL and no lock of the mixer or the scheduler per scrape.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::broadcast::Hub;
use crate::stats::Stats;
use crate::transition::Fallback;
use crate::units::MP3_FRAME_SAMPLES;

type Labels = Vec<(&'static str, &'static str)>;
type FloatGauge = Gauge<f64, AtomicU64>;
type FloatCounter = Counter<f64, AtomicU64>;

fn counter(registry: &mut Registry, name: &str, help: &str, unit: Option<Unit>, value: u64) {
    let c: Counter = Counter::default();
    c.inc_by(value);
    match unit {
        Some(u) => registry.register_with_unit(name, help, u, c),
        None => registry.register(name, help, c),
    }
}

fn gauge(registry: &mut Registry, name: &str, help: &str, unit: Option<Unit>, value: f64) {
    let g = FloatGauge::default();
    g.set(value);
    match unit {
        Some(u) => registry.register_with_unit(name, help, u, g),
        None => registry.register(name, help, g),
    }
}

/// The text of one scrape.
pub fn render(stats: &Stats, hub: &Hub, bitrate_kbps: u32) -> String {
    let mut r = Registry::with_prefix("nonstop");
    let rate = stats.rate.0 as f64;
    let frame_s = MP3_FRAME_SAMPLES as f64 / rate;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);

    gauge(&mut r, "uptime", "Time since the station started", Some(Unit::Seconds), stats.started.elapsed().as_secs_f64());
    gauge(&mut r, "listeners", "Listeners connected now", None, hub.listener_count() as f64);
    counter(&mut r, "listeners_connected", "Listeners who connected", None, load(&stats.listeners_total));
    counter(&mut r, "listeners_dropped_slow", "Listeners disconnected for falling too far behind", None, load(&stats.listeners_dropped));
    counter(&mut r, "listeners_refused", "Listeners refused at max_listeners", None, load(&stats.listeners_refused));

    let frames = load(&stats.frames_sent);
    counter(&mut r, "frames_sent", "MP3 frames released on air, silence included", None, frames);
    let sent: FloatCounter = FloatCounter::default();
    sent.inc_by(frames as f64 * frame_s);
    r.register_with_unit("audio_sent", "Audio released on air", Unit::Seconds, sent);
    gauge(&mut r, "stream_rate", "The stream's constant bitrate", Some(Unit::Other("bytes_per_second".into())), bitrate_kbps as f64 * 125.0);
    counter(&mut r, "underruns", "Frame deadlines met with silence (nothing encoded in time)", None, load(&stats.underruns));
    gauge(&mut r, "drift", "How late the last frame went out after its deadline", Some(Unit::Seconds), stats.drift_us.load(Ordering::Relaxed) as f64 / 1e6);

    let pcm_s = stats.pcm_queued.load(Ordering::Relaxed).max(0) as f64 / rate;
    let frames_s = stats.frames_queued.load(Ordering::Relaxed).max(0) as f64 * frame_s;
    let queue = Family::<Labels, FloatGauge>::default();
    queue.get_or_create(&vec![("queue", "pcm")]).set(pcm_s);
    queue.get_or_create(&vec![("queue", "frames")]).set(frames_s);
    r.register_with_unit("queue_depth", "Audio waiting in each bounded queue", Unit::Seconds, queue);
    let capacity = Family::<Labels, FloatGauge>::default();
    capacity.get_or_create(&vec![("queue", "pcm")]).set(stats.pcm_capacity as f64 / rate);
    capacity.get_or_create(&vec![("queue", "frames")]).set(stats.frames_capacity as f64 * frame_s);
    r.register_with_unit("queue_capacity", "Capacity of each bounded queue", Unit::Seconds, capacity);

    counter(&mut r, "tracks_started", "Tracks started on air", None, load(&stats.tracks_started));
    counter(&mut r, "track_failures", "Tracks that failed on air and were skipped", None, load(&stats.track_failures));
    let transitions = Family::<Labels, Counter>::default();
    transitions.get_or_create(&vec![("mode", "beatmatched")]).inc_by(load(&stats.transitions_beatmatched));
    transitions.get_or_create(&vec![("mode", "crossfade")]).inc_by(load(&stats.transitions_crossfade));
    r.register("transitions", "Transitions aired, by mode", transitions);
    let fallbacks = Family::<Labels, Counter>::default();
    {
        let counts = stats.fallbacks.lock().unwrap_or_else(|p| p.into_inner());
        for reason in Fallback::ALL {
            fallbacks.get_or_create(&vec![("reason", reason.name())]).inc_by(counts.get(&reason).copied().unwrap_or(0));
        }
    }
    r.register("transition_fallbacks", "Crossfades aired instead of a beatmatched transition, by reason", fallbacks);
    let last_alignment = stats.transition.lock().unwrap_or_else(|p| p.into_inner()).as_ref().and_then(|t| t.alignment);
    if let Some(a) = last_alignment {
        gauge(&mut r, "transition_alignment", "How far B's beats sat from A's (the median lag, either way) in the last measured transition", Some(Unit::Seconds), a.lag_ms.abs() / 1000.0);
    }

    let cpu = Family::<Labels, FloatCounter>::default();
    for (stage, ns) in [("decode", &stats.decode_ns), ("mix", &stats.mix_ns), ("encode", &stats.encode_ns)] {
        cpu.get_or_create(&vec![("stage", stage)]).inc_by(load(ns) as f64 / 1e9);
    }
    r.register_with_unit("stage_cpu", "Time spent in each audio stage", Unit::Seconds, cpu);

    let up = Family::<Labels, FloatGauge>::default();
    let restarts = Family::<Labels, Counter>::default();
    for h in stats.components.all() {
        let report = h.report();
        up.get_or_create(&vec![("component", h.name)]).set(if report.alive { 1.0 } else { 0.0 });
        restarts.get_or_create(&vec![("component", h.name)]).inc_by(report.restarts);
    }
    r.register("component_up", "1 while the component runs", up);
    r.register("component_restarts", "Restarts of each supervised component", restarts);

    let mut out = String::new();
    encode(&mut out, &r).expect("writing to a String cannot fail");
    out
}

/// The same scrape in Prometheus's classic text format (0.0.4), for
/// scrapers that do not ask for OpenMetrics (promtool, older agents): a
/// counter's HELP and TYPE name the `_total` sample, and the UNIT and EOF
/// lines go.
pub fn classic(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "].into_iter().find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let name = if counters.contains(name) { format!("{name}_total") } else { name.to_string() };
                out.push_str(&format!("{prefix}{name} {tail}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}
