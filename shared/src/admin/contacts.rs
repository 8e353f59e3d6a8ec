use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;

use super::{AdminApi, REQUESTED_BY, enqueue, error, ok, queued, unavailable};
use crate::contact::ContactId;
use crate::engine::Event;
use crate::ports::{ContactRecord, StoreError};

#[derive(Deserialize)]
pub struct SegmentQuery {
    tag: Option<String>,
    next: Option<String>,
    limit: Option<usize>,
}

const PAGE_DEFAULT: usize = 50;
const PAGE_MAX: usize = 500;
/// Contact records a segment page loads at once.
const LOADS_AT_ONCE: usize = 16;

fn summary(record: &ContactRecord) -> serde_json::Value {
    let address = record.state.profile.address.as_ref();
    json!({
        "id": record.state.contact,
        "channel": address.map(|a| a.channel.as_str()),
        "channel_user": address.map(|a| a.user_id.as_str()),
        "name": record.state.profile.name,
        "tags": record.state.profile.tags,
    })
}

/// GET /admin/contacts?tag=TAG&next=CURSOR&limit=N: a segment, a page at a time.
pub async fn segment(State(api): State<AdminApi>, Query(query): Query<SegmentQuery>) -> Response {
    let Some(tag) = query.tag.filter(|t| !t.trim().is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "`tag` is required: a segment is the contacts with a tag",
        );
    };
    let limit = query.limit.unwrap_or(PAGE_DEFAULT).clamp(1, PAGE_MAX);
    let (ids, next) = match api
        .store
        .segment_page(&tag, query.next.as_deref(), limit)
        .await
    {
        Ok(page) => page,
        Err(e) => return unavailable(e),
    };
    // Loaded a few at a time, in the page's order: on DynamoDB each is a round trip.
    let loaded: Vec<_> = futures_util::stream::iter(ids)
        .map(|id| {
            let store = api.store.clone();
            async move { store.load(&id).await }
        })
        .buffered(LOADS_AT_ONCE)
        .collect()
        .await;
    let mut contacts = Vec::with_capacity(loaded.len());
    for result in loaded {
        match result {
            Ok(loaded) => contacts.extend(loaded.record.as_ref().map(summary)),
            Err(e) => return unavailable(e),
        }
    }
    ok(json!({"tag": tag, "contacts": contacts, "next": next}))
}

/// GET /admin/contacts/{id}: profile, tags, fields, the open conversation and its run.
pub async fn show(State(api): State<AdminApi>, Path(id): Path<String>) -> Response {
    let id = ContactId::from_stored(id);
    let record = match api.store.load(&id).await {
        Ok(loaded) => loaded.record,
        Err(e) => return unavailable(e),
    };
    let Some(record) = record else {
        return error(StatusCode::NOT_FOUND, "no such contact");
    };
    let mut body = summary(&record);
    body["fields"] = json!(record.state.profile.fields);
    body["conversation"] = json!(record.state.conversation);
    body["last_closed_conversation"] = json!(record.state.last_closed);
    body["pending_effects"] = json!(record.outbox.len());
    ok(body)
}

/// POST /admin/contacts/{id}/resume: tries the contact's pending effects again, for a
/// contact parked after a channel outage that outlasted its retries (on AWS; locally the
/// runner keeps retrying by itself). 202 when there are effects to try, 200 when none.
pub async fn resume(State(api): State<AdminApi>, Path(id): Path<String>) -> Response {
    let id = ContactId::from_stored(id);
    match resume_contact(&api, &id).await {
        Ok(Resumed::Queued) => queued(&id),
        Ok(Resumed::NothingPending) => ok(json!({"contact": id, "status": "nothing pending"})),
        Ok(Resumed::NoContact) => error(StatusCode::NOT_FOUND, "no such contact"),
        Err(e) => unavailable(e),
    }
}

pub(super) enum Resumed {
    Queued,
    NothingPending,
    NoContact,
}

/// Queues an event that decides nothing, so that the contact's steps perform its pending
/// effects, if it has any. Either way the contact leaves the parked list: it is either
/// being tried again or has nothing left to try.
pub(super) async fn resume_contact(api: &AdminApi, id: &ContactId) -> Result<Resumed, StoreError> {
    let resumed = match api.store.load(id).await?.record {
        None => Resumed::NoContact,
        Some(record) if record.outbox.is_empty() => Resumed::NothingPending,
        Some(_) => {
            let event = Event::Resume {
                requested_by: REQUESTED_BY.into(),
            };
            enqueue(api, id, "resume", event).await?;
            Resumed::Queued
        }
    };
    api.store.unpark(id).await?;
    Ok(resumed)
}

/// DELETE /admin/contacts/{id}: erasure (docs/privacy.md: the ledger stays).
pub async fn erase(State(api): State<AdminApi>, Path(id): Path<String>) -> Response {
    let contact = ContactId::from_stored(id);
    match api.store.erase(&contact).await {
        Ok(true) => {
            // The channel's own copy: the local web chat keeps messages in memory.
            if let Err(e) = api.runtime.channels().forget(&contact).await {
                tracing::warn!(contact = %contact.log_ref(), error = %e, "could not forget a contact's waiting messages");
            }
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => error(StatusCode::NOT_FOUND, "no such contact"),
        Err(e) => unavailable(e),
    }
}
