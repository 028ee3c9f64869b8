//! The one layer around every request: a request id (the client's
//! `x-request-id` when it is a plain token, else a new one, echoed in the
//! response), a `request` span the handler runs in (so its events carry the
//! id), one log event per request, and the security headers.
//!
//! Logged: method, path, status, latency. Never the query string (a
//! decision link carries the approver's token in `?t=`), headers (bearer
//! tokens, session cookies) or bodies.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;
use tracing::Instrument;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A client's id is kept only if it cannot forge log content: 1 to 64
/// characters of `[A-Za-z0-9._-]`.
fn client_id(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?;
    let plain = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    plain.then_some(text)
}

pub async fn layer(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(client_id)
        .map_or_else(|| uuid::Uuid::now_v7().simple().to_string(), str::to_owned);
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
    );
    let mut response = next.run(req).instrument(span.clone()).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, latency_ms, "request");
        } else {
            tracing::info!(status, latency_ms, "request");
        }
    });
    crate::security_headers(response)
}
