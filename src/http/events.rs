//! `GET /events`: Server-Sent Events for pages and dashboards, pushed
//! instead of polled.
//!
//! - `now_playing` when the track on air changes — at the frame where it
//!   becomes audible (the broadcaster's frame log), with its media time;
//! - `transition` when a hand-over has been rendered, with its plan and
//!   measured alignment;
//! - `upcoming` when the plan of next tracks changes (who picked each);
//! - `requests` when the requests waiting change (a new one is announced);
//! - `plugin` when the active plugin, its version or its error count changes;
//! - `tick` once a second: listeners, queue depths, frames sent, underruns,
//!   and the station clock — `media_time_s` on air at `unix_ms` — so a page
//!   can map any media time to its own wall clock.
//!
//! Everything comes from the hub's frame log, the status atomics and the
//! published status snapshot: an event stream never touches SQLite or the
//! mixer's and scheduler's locks.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::json;

use super::{Body, HttpState};
use crate::units::MP3_FRAME_SAMPLES;

/// How often the on-air track is looked at.
const POLL: Duration = Duration::from_millis(250);
/// Ticks every this many polls (one second).
const TICK_EVERY: u32 = 4;

/// What a stream has told its client so far.
struct Cursor {
    state: Arc<HttpState>,
    /// (track id, start) of the last `now_playing` sent.
    on_air: Option<(Option<i64>, u64)>,
    /// Transitions counted when the last `transition` was sent.
    transitions: u64,
    /// The last `upcoming`, `requests` and `plugin` payloads sent.
    upcoming: serde_json::Value,
    requests: serde_json::Value,
    plugin: serde_json::Value,
    polls: u32,
}

/// Milliseconds since the Unix epoch.
fn unix_ms() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64() * 1000.0
}

fn event(name: &str, data: &serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

impl Cursor {
    /// The events due now (possibly none).
    fn poll(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let stats = &self.state.status.stats;
        let rate = stats.rate.0 as f64;
        if let Some(on_air) = self.state.hub.on_air() {
            let key = (on_air.track.as_ref().map(|t| t.id), on_air.started_at.0);
            if self.on_air != Some(key) {
                self.on_air = Some(key);
                let track = on_air.track.as_ref().map(|t| {
                    json!({ "id": t.id, "title": t.title, "artist": t.artist, "album": t.album, "duration_s": t.duration_s })
                });
                out.extend_from_slice(&event(
                    "now_playing",
                    &json!({ "track": track, "started_at_s": on_air.started_at.0 as f64 / rate, "note": on_air.note }),
                ));
            }
        }
        let transitions =
            stats.transitions_beatmatched.load(Ordering::Relaxed) + stats.transitions_crossfade.load(Ordering::Relaxed);
        if transitions != self.transitions {
            self.transitions = transitions;
            let last = stats.transition.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(t) = last {
                out.extend_from_slice(&event("transition", &serde_json::to_value(&t).unwrap_or_default()));
            }
        }
        let published = self.state.published();
        for (name, last, now) in [
            ("upcoming", &mut self.upcoming, &published.upcoming_event),
            ("requests", &mut self.requests, &published.requests_event),
            ("plugin", &mut self.plugin, &published.plugin_event),
        ] {
            if last != now {
                *last = now.clone();
                out.extend_from_slice(&event(name, now));
            }
        }
        if self.polls % TICK_EVERY == 0 {
            let frame_s = MP3_FRAME_SAMPLES as f64 / rate;
            let frames_sent = stats.frames_sent.load(Ordering::Relaxed);
            out.extend_from_slice(&event(
                "tick",
                &json!({
                    "listeners": self.state.hub.listener_count(),
                    "media_time_s": frames_sent as f64 * frame_s,
                    "unix_ms": unix_ms(),
                    // Frame `k` of the stream holds media time from
                    // `k * frame_s - lame_delay_s` (`?at=k` starts there).
                    "frame_s": frame_s,
                    "lame_delay_s": crate::encoder::LAME_DELAY as f64 / rate,
                    "pcm_queue_s": stats.pcm_queued.load(Ordering::Relaxed).max(0) as f64 / rate,
                    "frame_queue_s": stats.frames_queued.load(Ordering::Relaxed).max(0) as f64 * frame_s,
                    "frames_sent": frames_sent,
                    "underruns": stats.underruns.load(Ordering::Relaxed),
                }),
            ));
        }
        self.polls += 1;
        out
    }
}

/// The body of a `/events` response: runs until the client goes away or
/// the station shuts down.
pub fn body(state: Arc<HttpState>) -> Body {
    let cursor = Cursor {
        state,
        on_air: None,
        transitions: u64::MAX,
        upcoming: serde_json::Value::Null,
        requests: serde_json::Value::Null,
        plugin: serde_json::Value::Null,
        polls: 0,
    };
    // A comment first, so proxies and browsers see the stream open.
    let first = Bytes::from_static(b": nonstop events\nretry: 2000\n\n");
    let events = stream::unfold((cursor, Some(first)), |(mut cursor, pending)| async move {
        if let Some(bytes) = pending {
            return Some((Ok::<_, Infallible>(Frame::data(bytes)), (cursor, None)));
        }
        loop {
            if cursor.polls > 0 {
                tokio::time::sleep(POLL).await;
            }
            if cursor.state.hub.is_closed() {
                return None;
            }
            let due = cursor.poll();
            if !due.is_empty() {
                return Some((Ok(Frame::data(Bytes::from(due))), (cursor, None)));
            }
        }
    });
    StreamBody::new(events).boxed()
}
