//! The control API, behind a bearer token (`server.admin_token` or
//! `NONSTOP_ADMIN_TOKEN`). Without a token configured every admin route
//! answers 403: nothing is open by default. No CORS headers: a web page
//! elsewhere cannot call these with a visitor's browser. Every action is
//! logged.
//!
//! - `GET /admin/status`: the whole status (failed files with their errors,
//!   components' errors, outputs) plus `connections`, the listeners table
//!   (address, user agent, connected for, bytes, lag).
//! - `GET /admin/history`: the dashboard's plots (a sample every 5 s, 6 h).
//! - `POST /admin/skip`: mix out of the current track early — at the next
//!   downbeat the mixer reaches, on the beat, not a cut.
//! - `POST /admin/rescan`: sync the library now.
//! - `GET /admin/plugin`: the active plugin and those in the folder;
//!   `POST /admin/plugin {"name": N}`: switch, after the same compile and
//!   dry run as a saved edit (`422` with the error and line if it fails;
//!   the active plugin stays).
//! - `GET /admin/requests`; `POST /admin/requests {"track_id": N}` (no
//!   cooldown); `POST /admin/requests/order {"ids": [..]}`;
//!   `DELETE /admin/requests/ID`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::{json, json_status, read_json, text, Body, HttpState};

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

pub async fn route(state: &Arc<HttpState>, req: Request<Incoming>) -> Response<Body> {
    let Some(token) = state.config.server.admin_token.as_deref().filter(|t| !t.is_empty()) else {
        return text(StatusCode::FORBIDDEN, "admin endpoints are disabled: set server.admin_token (or NONSTOP_ADMIN_TOKEN)\n");
    };
    if !authorised(token, &req) {
        let mut r = text(StatusCode::UNAUTHORIZED, "an admin token is needed: Authorization: Bearer TOKEN\n");
        r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"nonstop\""));
        return r;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    match (&method, path.as_str()) {
        (&Method::GET, "/admin/status") => {
            let published = state.published();
            let mut value = serde_json::to_value(&published.status).expect("status serialises");
            value["connections"] = serde_json::to_value(state.hub.listeners()).unwrap_or_default();
            json(&value)
        }
        (&Method::GET, "/admin/history") => {
            let history = state.history.lock().unwrap_or_else(|p| p.into_inner());
            json(&json!({ "every_s": super::status::HISTORY_EVERY.as_secs(), "samples": *history }))
        }
        (&Method::POST, "/admin/skip") => {
            state.status.stats.skip.store(true, Ordering::Relaxed);
            tracing::info!("admin: skip requested");
            json_status(StatusCode::ACCEPTED, &json!({ "skip": "requested", "note": "the mixer mixes out at the next downbeat it reaches" }))
        }
        (&Method::POST, "/admin/rescan") => match &state.rescan {
            Some(wake) => {
                let _ = wake.try_send(());
                tracing::info!("admin: rescan requested");
                json_status(StatusCode::ACCEPTED, &json!({ "rescan": "requested" }))
            }
            None => text(StatusCode::SERVICE_UNAVAILABLE, "no indexer is running\n"),
        },
        (&Method::GET, "/admin/plugin") => match &state.plugins {
            Some(p) => {
                let ordering = &state.published().status.ordering;
                json(&json!({ "active": ordering.plugin, "version": ordering.version, "error": ordering.error, "available": p.available() }))
            }
            None => text(StatusCode::SERVICE_UNAVAILABLE, "plugins cannot be switched here\n"),
        },
        (&Method::POST, "/admin/plugin") => switch_plugin(state, req).await,
        (&Method::GET, "/admin/requests") => json(&json!({ "requests": state.published().status.ordering.requests })),
        (&Method::POST, "/admin/requests") => super::api::queue(state, req, "admin").await,
        (&Method::POST, "/admin/requests/order") => {
            let body = match read_json(req).await {
                Ok(v) => v,
                Err(r) => return r,
            };
            let Some(ids) = body.get("ids").and_then(|v| v.as_array()).map(|a| a.iter().filter_map(|v| v.as_i64()).collect::<Vec<_>>())
            else {
                return text(StatusCode::BAD_REQUEST, "the new order: {\"ids\": [track ids]}\n");
            };
            let requests = {
                let mut sched = state.status.scheduler.lock().unwrap_or_else(|p| p.into_inner());
                sched.reorder_requests(&ids);
                sched.requests()
            };
            tracing::info!("admin: requests reordered to {ids:?}");
            state.refreshed().await;
            json(&json!({ "requests": requests }))
        }
        (&Method::DELETE, p) if p.starts_with("/admin/requests/") => {
            let Ok(id) = p["/admin/requests/".len()..].parse::<i64>() else {
                return text(StatusCode::BAD_REQUEST, "DELETE /admin/requests/TRACK_ID\n");
            };
            let requests = {
                let mut sched = state.status.scheduler.lock().unwrap_or_else(|p| p.into_inner());
                sched.drop_request(id).then(|| sched.requests())
            };
            match requests {
                Some(requests) => {
                    tracing::info!("admin: request for track {id} dropped");
                    state.refreshed().await;
                    json(&json!({ "requests": requests }))
                }
                None => text(StatusCode::NOT_FOUND, &format!("no request for track {id}\n")),
            }
        }
        (_, "/admin/status" | "/admin/history" | "/admin/skip" | "/admin/rescan" | "/admin/plugin" | "/admin/requests" | "/admin/requests/order") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "wrong method\n")
        }
        _ => text(StatusCode::NOT_FOUND, "no such admin endpoint\n"),
    }
}

async fn switch_plugin(state: &Arc<HttpState>, req: Request<Incoming>) -> Response<Body> {
    let Some(switch) = state.plugins.clone() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "plugins cannot be switched here\n");
    };
    let body = match read_json(req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(name) = body.get("name").and_then(|v| v.as_str()).map(str::to_string) else {
        return text(StatusCode::BAD_REQUEST, "name the plugin: {\"name\": \"harmonic\"}\n");
    };
    let target = name.clone();
    // Compiling and the dry run take a while: off the async threads.
    let result = tokio::task::spawn_blocking(move || switch.switch(&target)).await.expect("plugin switch panicked");
    match result {
        Ok(version) => {
            tracing::info!("admin: plugin {name} (version {version}) is active");
            state.refreshed().await;
            json(&json!({ "active": name, "version": version }))
        }
        Err(e) => json_status(StatusCode::UNPROCESSABLE_ENTITY, &json!({ "error": e.message, "line": e.line, "active": "unchanged" })),
    }
}
