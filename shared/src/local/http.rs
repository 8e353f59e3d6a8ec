//! The local HTTP surface: webhooks under `/webhooks/{channel}` and a health check.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::LocalApp;
use crate::runtime::WebhookRequest;

/// Providers send small JSON bodies; anything over 1 MiB is refused with 413 unread.
pub const MAX_BODY_BYTES: usize = 1 << 20;

pub fn router(app: LocalApp) -> Router {
    Router::new()
        .route("/webhooks/{channel}", get(webhook).post(webhook))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app)
}

async fn webhook(
    State(app): State<LocalApp>,
    Path(channel): Path<String>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = WebhookRequest {
        method,
        query,
        headers,
        body,
    };
    let response = app.accept_webhook(&channel, request).await;
    let status =
        StatusCode::from_u16(response.status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, response.content_type)],
        response.body,
    )
        .into_response()
}
