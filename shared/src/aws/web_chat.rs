//! The web chat on AWS. It is on when `WEB_SESSION_SECRET` is set (in the channel secret,
//! with `web` in `ASSENT_CHANNELS`): the webhook function then serves the demo page, the
//! widget, sessions and polls beside the webhooks, and the step function puts the chat's
//! messages in the table, where the polls read them (`store::dynamodb::mailbox`).

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::{Env, SetupError};
use crate::channels::Channels;
use crate::channels::web::{SessionKey, WebChat, routes};
use crate::runtime::Runtime;
use crate::store::DynamoStore;
use crate::store::dynamodb::SharedSessionLimit;

/// The chat as the environment configures it, or `None` when it is off.
pub fn from_env(env: &dyn Env) -> Result<Option<WebChat>, SetupError> {
    let Some(secret) = env.var("WEB_SESSION_SECRET") else {
        return Ok(None);
    };
    WebChat::from_env(&|name| env.var(name), SessionKey::new(secret.as_bytes()))
        .map(Some)
        .map_err(|message| SetupError::Invalid {
            name: "WEB_SESSIONS_PER_MINUTE",
            message,
        })
}

/// The chat as the step function needs it, only to put messages in the mailbox, or
/// `None` when it is off.
pub fn sender_from_env(env: &dyn Env) -> Option<WebChat> {
    let secret = env.var("WEB_SESSION_SECRET")?;
    Some(WebChat::new(SessionKey::new(secret.as_bytes()), Vec::new()))
}

/// `channels` and, when it is on, the chat with its mailbox and its session counts in the
/// table (which is also returned, for the routes).
pub fn added(
    channels: Channels,
    web: Option<WebChat>,
    store: &DynamoStore,
) -> (Channels, Option<Arc<WebChat>>) {
    match web {
        Some(web) => {
            let sessions = SharedSessionLimit::new(store.clone(), web.sessions_per_minute());
            let web = Arc::new(
                web.with_mailbox(Arc::new(store.clone()))
                    .with_session_counter(Arc::new(sessions)),
            );
            (channels.with(web.clone()), Some(web))
        }
        None => (channels, None),
    }
}

/// The webhook function's routes: the channels' webhooks, and the chat's when it is on.
pub fn router(runtime: Arc<Runtime>, web: Option<Arc<WebChat>>) -> axum::Router {
    let router = crate::http::router(runtime);
    match web {
        Some(web) => routes::added_to(router, web).layer(axum::middleware::from_fn(source_address)),
        None => router,
    }
}

/// Hands the chat's session limit the address API Gateway or the function URL saw the
/// request come from, as a TCP peer address would be locally. A header could be set by
/// the client; the request context cannot.
async fn source_address(mut request: Request, next: Next) -> Response {
    if let Some(ip) = source_ip(&request) {
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(ip, 0)));
    }
    next.run(request).await
}

fn source_ip(request: &Request) -> Option<IpAddr> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context.http.source_ip.as_deref()?.parse().ok(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}
