//! The listeners' API: search the library, ask for a track.
//!
//! - `GET /api/tracks?q=WORDS`: playable tracks whose title, artist or
//!   album hold every word (case-insensitive), at most 25; from the
//!   published snapshot, so a search takes no lock.
//! - `POST /api/requests` with `{"track_id": N}`: queue a request (when
//!   `requests.enabled`). One accepted request per client address per
//!   `requests.cooldown_s`; `429` with `Retry-After` inside it, `409` when
//!   the queue is full or the rules keep the track out for now.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::{json, json_status, read_json, text, Body, HttpState};
use crate::ordering::RequestError;

/// Results a search returns at most.
const SEARCH_LIMIT: usize = 25;

fn query_param(req: &Request<Incoming>, key: &str) -> Option<String> {
    form_urlencoded::parse(req.uri().query()?.as_bytes()).find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

pub fn tracks(state: &HttpState, req: &Request<Incoming>) -> Response<Body> {
    let q = query_param(req, "q").unwrap_or_default().to_lowercase();
    let words: Vec<&str> = q.split_whitespace().collect();
    if words.is_empty() {
        return text(StatusCode::BAD_REQUEST, "search with ?q=WORDS (title, artist or album)\n");
    }
    let published = state.published();
    let found: Vec<serde_json::Value> = published
        .tracks
        .tracks()
        .iter()
        .filter(|t| {
            let hay = format!("{} {} {}", t.title, t.artist, t.album).to_lowercase();
            words.iter().all(|w| hay.contains(w))
        })
        .take(SEARCH_LIMIT)
        .map(|t| {
            json!({ "id": t.id, "title": t.title, "artist": t.artist, "album": t.album,
                    "duration_s": (t.duration_s * 10.0).round() / 10.0, "bpm": (t.bpm * 10.0).round() / 10.0, "camelot": t.camelot })
        })
        .collect();
    json(&json!({ "query": q, "tracks": found }))
}

/// `GET /api/artwork/ID`: the cover picture in the track's tags.
pub async fn artwork(state: &HttpState, id: &str) -> Response<Body> {
    let track = id.parse::<i64>().ok().and_then(|id| state.published().tracks.track(id).cloned());
    let Some(track) = track else { return text(StatusCode::NOT_FOUND, "no such track\n") };
    let path = track.path.clone();
    match tokio::task::spawn_blocking(move || crate::audio::artwork(&path)).await {
        Ok(Ok(Some((kind, data)))) => http::Response::builder()
            .header(header::CONTENT_TYPE, super::header_safe(&kind))
            .header(header::CACHE_CONTROL, "public, max-age=3600")
            .body(http_body_util::BodyExt::boxed(http_body_util::Full::new(bytes::Bytes::from(data))))
            .expect("valid response"),
        _ => text(StatusCode::NOT_FOUND, "no artwork in this track's tags\n"),
    }
}

/// Queues a request for the track a body names; `from` labels who asked.
pub(super) async fn queue(state: &HttpState, req: Request<Incoming>, from: &str) -> Response<Body> {
    let body = match read_json(req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(id) = body.get("track_id").and_then(|v| v.as_i64()) else {
        return text(StatusCode::BAD_REQUEST, "name the track: {\"track_id\": N} (ids from /api/tracks?q=)\n");
    };
    let limit = state.config.requests.queue_limit;
    let queued = state.status.scheduler.lock().unwrap_or_else(|p| p.into_inner()).request(id, from, limit);
    match queued {
        Ok(entry) => {
            state.refreshed().await;
            json_status(StatusCode::CREATED, &json!({ "request": entry }))
        }
        Err(e @ RequestError::NoSuchTrack(_)) => text(StatusCode::NOT_FOUND, &format!("{e}\n")),
        Err(e) => text(StatusCode::CONFLICT, &format!("{e}\n")),
    }
}

/// Who is asking: the peer, or — when the peer is a trusted proxy — the
/// nearest address in `X-Forwarded-For` that is not one of the proxies.
fn client_of(trusted: &[IpAddr], req: &Request<Incoming>, peer: IpAddr) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded = req.headers().get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(",");
    forwarded
        .rsplit(',')
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .find(|a| !trusted.contains(a))
        .unwrap_or(peer)
}

/// `POST /api/requests` from a listener.
pub async fn request(state: &Arc<HttpState>, req: Request<Incoming>, peer: IpAddr) -> Response<Body> {
    let client = client_of(&state.config.server.trusted_proxies, &req, peer);
    let settings = &state.config.requests;
    if !settings.enabled {
        return text(StatusCode::FORBIDDEN, "requests are not open on this station (requests.enabled)\n");
    }
    let cooldown = Duration::from_secs_f64(settings.cooldown_s);
    // Reserved before queueing, so a burst of simultaneous requests gets
    // one through, not several.
    let wait = {
        let mut times = state.request_times.lock().unwrap_or_else(|p| p.into_inner());
        times.retain(|_, at| at.elapsed() < cooldown);
        let wait = times.get(&client).map(|at| cooldown.saturating_sub(at.elapsed()));
        if wait.is_none() {
            times.insert(client, Instant::now());
        }
        wait
    };
    if let Some(wait) = wait {
        let secs = wait.as_secs_f64().ceil() as u64;
        let mut r = text(StatusCode::TOO_MANY_REQUESTS, &format!("one request per {} s: the next in {secs} s\n", settings.cooldown_s));
        r.headers_mut().insert(header::RETRY_AFTER, secs.into());
        return r;
    }
    let response = queue(state, req, &client.to_string()).await;
    if response.status() != StatusCode::CREATED {
        // Refused: the cooldown starts with a request that was taken.
        state.request_times.lock().unwrap_or_else(|p| p.into_inner()).remove(&client);
    }
    response
}
