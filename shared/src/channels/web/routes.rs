//! The browser's side of the web chat: the demo page, the widget, sessions and the
//! long-poll. Messages from the browser go to `POST /webhooks/web` like any channel's.

use axum::Router;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::WebChat;

/// A long-poll answers after this long with nothing, so that proxies never cut it first.
pub const POLL_PATIENCE: Duration = Duration::from_secs(25);

const DEMO_PAGE: &str = include_str!("demo.html");
const WIDGET: &str = include_str!("widget.js");

/// `router` with the web chat's routes added and its CORS rules over all of them (the
/// widget on an allowed page posts to `/webhooks/web`).
pub fn added_to(router: Router, web: Arc<WebChat>) -> Router {
    router
        .merge(self::router(web.clone()))
        .layer(axum::middleware::from_fn_with_state(web, cors))
}

pub fn router(web: Arc<WebChat>) -> Router {
    Router::new()
        .route("/", get(demo))
        .route("/widget.js", get(widget))
        .route("/web/session", post(session))
        .route("/web/messages", get(messages))
        .layer(axum::middleware::from_fn(crate::http::json_errors))
        .with_state(web)
}

async fn demo() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        DEMO_PAGE,
    )
        .into_response()
}

async fn widget() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        WIDGET,
    )
        .into_response()
}

async fn session(State(web): State<Arc<WebChat>>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if let Err(wait) = web.start_session(request.headers(), peer).await {
        // Rounded up: a client that waits exactly this long finds a session free.
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        tracing::info!("web chat: session refused, too many from one address");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, seconds.to_string())],
            axum::Json(
                json!({"error": "too many new sessions from this address; try again later"}),
            ),
        )
            .into_response();
    }
    match web.key().issue() {
        Ok((_, token)) => {
            (StatusCode::CREATED, axum::Json(json!({"token": token}))).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "web chat: no randomness for a session");
            try_again()
        }
    }
}

#[derive(Deserialize)]
struct After {
    #[serde(default)]
    after: u64,
}

async fn messages(
    State(web): State<Arc<WebChat>>,
    headers: HeaderMap,
    Query(after): Query<After>,
) -> Response {
    let Some(visitor) = web.visitor(&headers) else {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "missing or unknown session token"})),
        )
            .into_response();
    };
    let mailbox = web.mailbox();
    let messages = match mailbox.after(&visitor, after.after, POLL_PATIENCE).await {
        Ok(messages) => messages,
        Err(e) => {
            tracing::warn!(error = %e, "web chat: could not read a mailbox");
            return try_again();
        }
    };
    let mut body = json!({"messages": messages});
    if let Some(pause) = mailbox.poll_pause() {
        // The browser waits between polls instead of the server during one.
        body["poll_again_ms"] = json!(pause.as_millis() as u64);
    }
    axum::Json(body).into_response()
}

/// 503: nothing went wrong that the browser's next try cannot get past.
fn try_again() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({"error": "try again"})),
    )
        .into_response()
}

/// Lets pages on the allowed origins embed the widget: answers preflights and marks
/// answers readable cross-origin. Other origins get no CORS headers (browsers then refuse).
pub async fn cors(State(web): State<Arc<WebChat>>, request: Request, next: Next) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .filter(|o| web.allows_origin(o))
        .and_then(|o| HeaderValue::from_str(o).ok());
    let Some(origin) = origin else {
        return next.run(request).await;
    };
    let mut response = if request.method() == Method::OPTIONS {
        let mut preflight = StatusCode::NO_CONTENT.into_response();
        let h = preflight.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        preflight
    } else {
        next.run(request).await
    };
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    response
}
