//! The control API, behind a bearer token (`server.admin_token` or
//! `NONSTOP_ADMIN_TOKEN`). Without a token configured every admin route
//! answers 403: nothing is open by default. No CORS headers: a web page
//! elsewhere cannot call these with a visitor's browser.
//!
//! - `GET /admin/status`: `/status` plus the listeners table (address,
//!   user agent, connected for, bytes, lag).
//! - `POST /admin/skip`: mix out of the current track early — at the next
//!   phrase boundary the mixer reaches, on the beat, not a cut.
//! - `POST /admin/rescan`: sync the library now.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::{json, text, Body, HttpState};

/// Whether `req` carries the configured token (compared in constant time).
fn authorised(expected: &str, req: &Request<Incoming>) -> bool {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    constant_time_eq::constant_time_eq(given.trim().as_bytes(), expected.as_bytes())
}

fn accepted(value: serde_json::Value) -> Response<Body> {
    let mut r = json(&value);
    *r.status_mut() = StatusCode::ACCEPTED;
    r
}

pub async fn route(state: &Arc<HttpState>, req: &Request<Incoming>) -> Response<Body> {
    let Some(token) = state.config.server.admin_token.as_deref().filter(|t| !t.is_empty()) else {
        return text(StatusCode::FORBIDDEN, "admin endpoints are disabled: set server.admin_token (or NONSTOP_ADMIN_TOKEN)\n");
    };
    if !authorised(token, req) {
        let mut r = text(StatusCode::UNAUTHORIZED, "an admin token is needed: Authorization: Bearer TOKEN\n");
        r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"nonstop\""));
        return r;
    }
    let mut response = match (req.method(), req.uri().path()) {
        (&Method::GET, "/admin/status") => match state.status.snapshot().await {
            Ok(s) => json(&json!({ "status": s, "listeners": state.hub.listeners() })),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
        },
        (&Method::POST, "/admin/skip") => {
            state.status.stats.skip.store(true, Ordering::Relaxed);
            tracing::info!("admin: skip requested");
            accepted(json!({ "skip": "requested", "note": "the mixer mixes out at the next phrase boundary it reaches" }))
        }
        (&Method::POST, "/admin/rescan") => match &state.rescan {
            Some(wake) => {
                let _ = wake.try_send(());
                tracing::info!("admin: rescan requested");
                accepted(json!({ "rescan": "requested" }))
            }
            None => text(StatusCode::SERVICE_UNAVAILABLE, "no indexer is running\n"),
        },
        (_, "/admin/status" | "/admin/skip" | "/admin/rescan") => text(StatusCode::METHOD_NOT_ALLOWED, "wrong method\n"),
        _ => text(StatusCode::NOT_FOUND, "no such admin endpoint\n"),
    };
    // `json` allows any origin for the public status; admin answers do not.
    response.headers_mut().remove(header::ACCESS_CONTROL_ALLOW_ORIGIN);
    response
}
