//! The admin API under `/admin` (docs/admin-api.yaml): segments, contacts, the consent
//! ledger, withdrawal, parked contacts and resuming their pending effects, erasure,
//! export, workflows and reports. The same router serves `assent-local` (bearer token)
//! and the admin Lambda function (IAM auth at the gateway).

mod consent;
mod contacts;
mod parked;
mod reports;
mod workflows;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::sync::Arc;
use subtle::ConstantTimeEq;

use crate::contact::ContactId;
use crate::engine::Event;
use crate::ports::{AdminStore, Doorbell, InboxItem, Store, StoreError};
use crate::runtime::Runtime;

/// Every admin route, as docs/admin-api.yaml documents them (a test keeps the two in step).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/admin/contacts"),
    ("GET", "/admin/contacts/{id}"),
    ("DELETE", "/admin/contacts/{id}"),
    ("GET", "/admin/contacts/{id}/consent"),
    ("POST", "/admin/contacts/{id}/consent/withdraw"),
    ("POST", "/admin/contacts/{id}/resume"),
    ("GET", "/admin/parked"),
    ("POST", "/admin/parked/resume"),
    ("GET", "/admin/consent/export"),
    ("GET", "/admin/workflows"),
    ("POST", "/admin/workflows"),
    ("GET", "/admin/workflows/{id}"),
    ("PUT", "/admin/workflows/{id}"),
    ("POST", "/admin/workflows/{id}/publish"),
    ("GET", "/admin/workflows/{id}/versions"),
    ("GET", "/admin/reports/consent"),
];

/// A store that serves both the runtime and the admin API.
pub trait AdminBackend: Store + AdminStore {}
impl<T: Store + AdminStore> AdminBackend for T {}

#[derive(Clone)]
pub struct AdminApi {
    pub runtime: Arc<Runtime>,
    pub store: Arc<dyn AdminBackend>,
    /// Wakes a contact's steps after a withdrawal is queued (a no-op where a stream does).
    pub doorbell: Arc<dyn Doorbell>,
}

/// The admin routes; with `token`, every request must carry `Authorization: Bearer {token}`.
pub fn router(api: AdminApi, token: Option<String>) -> Router {
    let routes = Router::new()
        .route("/admin/contacts", get(contacts::segment))
        .route(
            "/admin/contacts/{id}",
            get(contacts::show).delete(contacts::erase),
        )
        .route("/admin/contacts/{id}/consent", get(consent::ledger))
        .route(
            "/admin/contacts/{id}/consent/withdraw",
            post(consent::withdraw),
        )
        .route("/admin/contacts/{id}/resume", post(contacts::resume))
        .route("/admin/parked", get(parked::list))
        .route("/admin/parked/resume", post(parked::resume_all))
        .route("/admin/consent/export", get(consent::export))
        .route(
            "/admin/workflows",
            get(workflows::list).post(workflows::from_template),
        )
        .route(
            "/admin/workflows/{id}",
            get(workflows::show).put(workflows::save_draft),
        )
        .route("/admin/workflows/{id}/publish", post(workflows::publish))
        .route("/admin/workflows/{id}/versions", get(workflows::versions))
        .route("/admin/reports/consent", get(reports::consent))
        .layer(middleware::from_fn(crate::http::json_errors))
        .with_state(api);
    match token {
        // On the admin routes only: a path that is none of them is a 404, token or not.
        Some(token) => routes.route_layer(middleware::from_fn_with_state(Arc::new(token), bearer)),
        None => routes,
    }
}

async fn bearer(State(token): State<Arc<String>>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
        next.run(request).await
    } else {
        let mut response = error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        response
    }
}

pub(crate) fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, axum::Json(json!({"error": message.to_string()}))).into_response()
}

/// Who the events the admin API queues say asked for them.
pub(crate) const REQUESTED_BY: &str = "admin-api";

/// Queues `event` in the contact's inbox, like anything that comes in, and wakes its
/// steps: the engine applies it in order with the rest.
pub(crate) async fn enqueue(
    api: &AdminApi,
    id: &ContactId,
    kind: &str,
    event: Event,
) -> Result<(), StoreError> {
    let now = api.runtime.now();
    let item = InboxItem {
        key: format!("{kind}:{}", now.millis()),
        received_at: now,
        event,
    };
    api.store.append(id, item).await?;
    api.doorbell.ring(id);
    Ok(())
}

/// [`enqueue`], answered with [`queued`].
pub(crate) async fn queue(api: &AdminApi, id: &ContactId, kind: &str, event: Event) -> Response {
    match enqueue(api, id, kind, event).await {
        Ok(()) => queued(id),
        Err(e) => unavailable(e),
    }
}

/// 202: an event for the contact is in its inbox.
pub(crate) fn queued(id: &ContactId) -> Response {
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"contact": id, "status": "queued"})),
    )
        .into_response()
}

pub(crate) fn ok(value: Value) -> Response {
    (StatusCode::OK, axum::Json(value)).into_response()
}

/// Store trouble is the server's, and may pass: 503.
pub(crate) fn unavailable(e: StoreError) -> Response {
    tracing::error!(error = %e, "admin: store error");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the store is unavailable, try again",
    )
}
