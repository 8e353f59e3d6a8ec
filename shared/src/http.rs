//! The HTTP surface every host serves: webhooks under `/webhooks/{channel}` and a health
//! check. The local runner serves it with axum; the webhook Lambda function runs the same
//! router under lambda_http.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use async_trait::async_trait;
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
        .with_state(host)
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
