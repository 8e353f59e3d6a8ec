//! The webhook use case: authenticate over the raw bytes, parse, and put each inbound
//! message in its contact's inbox once (a provider retry hits the same key). Answers fast;
//! the steps run later, woken by the doorbell.

use axum::http::{HeaderMap, Method, StatusCode};
use bytes::Bytes;
use serde_json::json;

use crate::channels::{Channel, InboundError, limits};
use crate::contact::ContactId;
use crate::ports::{Appended, InboxItem};

use super::Runtime;

pub struct WebhookRequest {
    pub method: Method,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Debug)]
pub struct WebhookResponse {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: String,
    /// Contacts with new inbox items: the host rings the doorbell for each.
    pub contacts: Vec<ContactId>,
}

impl WebhookResponse {
    fn json(status: StatusCode, body: serde_json::Value) -> Self {
        WebhookResponse {
            status,
            content_type: "application/json",
            body: body.to_string(),
            contacts: Vec::new(),
        }
    }

    fn error(status: StatusCode, message: impl std::fmt::Display) -> Self {
        Self::json(status, json!({"error": message.to_string()}))
    }
}

impl Runtime {
    pub async fn accept_webhook(&self, channel: &str, request: WebhookRequest) -> WebhookResponse {
        let Some(channel) = self.channels.get(channel).cloned() else {
            return WebhookResponse::error(
                StatusCode::NOT_FOUND,
                "no such channel is configured here",
            );
        };
        match request.method {
            Method::GET => handshake(channel.as_ref(), request.query.as_deref().unwrap_or("")),
            Method::POST => self.inbound(channel.as_ref(), request).await,
            _ => WebhookResponse::error(StatusCode::METHOD_NOT_ALLOWED, "use POST"),
        }
    }

    async fn inbound(&self, channel: &dyn Channel, request: WebhookRequest) -> WebhookResponse {
        if let Err(e) = channel.authenticate(&request.headers, &request.body) {
            tracing::warn!(channel = channel.name(), reason = %e, "webhook rejected");
            return rejection(e);
        }
        let parsed = match channel.parse(&request.headers, &request.body) {
            Ok(parsed) => limits::fit(parsed),
            Err(e) => {
                tracing::warn!(channel = channel.name(), reason = %e, "webhook rejected");
                return rejection(e);
            }
        };
        let now = self.clock.now();
        let (mut accepted, mut duplicates) = (0, 0);
        let mut contacts: Vec<ContactId> = Vec::new();
        let failures = parsed.failures.len();
        // `accepted` counts new messages; delivery reports are counted as `failures`.
        let items = parsed
            .messages
            .into_iter()
            .map(|m| (m.from.contact_id(), InboxItem::inbound(m, now), true))
            .chain(
                parsed
                    .failures
                    .into_iter()
                    .map(|f| (f.to.contact_id(), InboxItem::delivery_report(f, now), false)),
            );
        for (contact, item, is_message) in items {
            match self.store.append(&contact, item).await {
                Ok(Appended::New) => {
                    accepted += usize::from(is_message);
                    if !contacts.contains(&contact) {
                        contacts.push(contact);
                    }
                }
                Ok(Appended::Duplicate) => duplicates += 1,
                Err(e) => {
                    // Not acknowledged, so the provider sends the body again; what was
                    // stored already is then recognised as a duplicate.
                    tracing::error!(channel = channel.name(), error = %e, "could not store an inbound message");
                    let mut response =
                        WebhookResponse::error(StatusCode::SERVICE_UNAVAILABLE, "try again");
                    response.contacts = contacts;
                    return response;
                }
            }
        }
        tracing::info!(
            channel = channel.name(),
            accepted,
            duplicates,
            statuses = parsed.statuses,
            failures,
            skipped = parsed.skipped,
            "webhook accepted"
        );
        let mut response = match parsed.reply {
            Some(reply) => WebhookResponse {
                status: StatusCode::OK,
                content_type: reply.content_type,
                body: reply.body,
                contacts: Vec::new(),
            },
            None => WebhookResponse::json(
                StatusCode::OK,
                json!({"accepted": accepted, "duplicates": duplicates, "statuses": parsed.statuses, "failures": failures, "skipped": parsed.skipped}),
            ),
        };
        response.contacts = contacts;
        response
    }
}

fn handshake(channel: &dyn Channel, query: &str) -> WebhookResponse {
    match channel.handshake(query) {
        Some(Ok(challenge)) => WebhookResponse {
            status: StatusCode::OK,
            content_type: "text/plain",
            body: challenge,
            contacts: Vec::new(),
        },
        Some(Err(e)) => rejection(e),
        None => WebhookResponse::error(StatusCode::METHOD_NOT_ALLOWED, "use POST"),
    }
}

fn rejection(e: InboundError) -> WebhookResponse {
    let status = match e {
        InboundError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        InboundError::Forbidden(_) => StatusCode::FORBIDDEN,
        InboundError::Malformed(_) => StatusCode::BAD_REQUEST,
    };
    WebhookResponse::error(status, e)
}
