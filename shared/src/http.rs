//! The HTTP surface every host serves: webhooks under `/webhooks/{channel}` and a health
//! check. The local runner serves it with axum; the webhook Lambda function runs the same
//! router under lambda_http.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use async_trait::async_trait;
use serde_json::json;
use std::sync::Arc;

use crate::runtime::{Runtime, WebhookRequest, WebhookResponse};

/// Providers send small JSON bodies; anything over 1 MiB is refused with 413 unread.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// What a host does with a webhook: the runtime's use case, plus whatever wakes its steps.
#[async_trait]
pub trait WebhookHost: Send + Sync + 'static {
    async fn accept_webhook(&self, channel: &str, request: WebhookRequest) -> WebhookResponse;
}

/// On AWS the table's stream wakes the steps: accepting is all there is to do.
#[async_trait]
impl WebhookHost for Runtime {
    async fn accept_webhook(&self, channel: &str, request: WebhookRequest) -> WebhookResponse {
        Runtime::accept_webhook(self, channel, request).await
    }
}

pub fn router<H: WebhookHost>(host: Arc<H>) -> Router {
    Router::new()
        .route("/webhooks/{channel}", get(webhook::<H>).post(webhook::<H>))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(json_errors))
        .with_state(host)
}

/// axum answers what never reaches a handler in plain text or with no body: a body over
/// the limit, a body that is not JSON, a path or query that does not parse, a method the
/// route does not take, a path that is no route. Every other error here is
/// `{"error": "..."}`, so this gives those answers the same shape and keeps their status
/// and headers (`Allow`, say).
pub async fn json_errors(request: axum::extract::Request, next: Next) -> Response {
    let response = next.run(request).await;
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let from_axum = content_type.is_none_or(|t| t.starts_with("text/plain"));
    if !response.status().is_client_error() || !from_axum {
        return response;
    }
    let (parts, body) = response.into_parts();
    // A rejection's text is one short line about the client's own request (a JSON error
    // may quote a value of the body it sent back to it); it is answered, never logged.
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let message = match String::from_utf8_lossy(&text).trim() {
        "" => parts
            .status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_string(),
        text => text.to_string(),
    };
    let mut answer = (parts.status, axum::Json(json!({ "error": message }))).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().insert(name, value.clone());
        }
    }
    answer
}

async fn webhook<H: WebhookHost>(
    State(host): State<Arc<H>>,
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
    let response = host.accept_webhook(&channel, request).await;
    (
        response.status,
        [(header::CONTENT_TYPE, response.content_type)],
        response.body,
    )
        .into_response()
}
