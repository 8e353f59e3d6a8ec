//! Parked contacts: on AWS, a contact whose effects kept failing for an hour (a channel
//! outage, a revoked token) is parked so that it stops blocking its stream shard. Its
//! pending effects wait in its record; these routes find such contacts and try them again
//! once the cause is fixed. Locally nothing is parked: the runner retries by itself.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::contacts::{Resumed, resume_contact};
use super::{AdminApi, ok, unavailable};

#[derive(Deserialize)]
pub struct PageQuery {
    next: Option<String>,
    limit: Option<usize>,
}

const PAGE_DEFAULT: usize = 50;
const PAGE_MAX: usize = 500;
/// How many parked contacts a bulk resume reads at a time.
const RESUME_PAGE: usize = 100;

/// GET /admin/parked?next=CURSOR&limit=N: parked contacts with pending effects, a page at a
/// time, each with when and why it was parked. A contact that has nothing pending any more
/// (its next message ran what was waiting) or no record (erased) leaves the list here.
pub async fn list(State(api): State<AdminApi>, Query(query): Query<PageQuery>) -> Response {
    let limit = query.limit.unwrap_or(PAGE_DEFAULT).clamp(1, PAGE_MAX);
    let (page, next) = match api.store.parked_page(query.next.as_deref(), limit).await {
        Ok(page) => page,
        Err(e) => return unavailable(e),
    };
    let mut contacts = Vec::with_capacity(page.len());
    for parked in page {
        let pending = match api.store.load(&parked.contact).await {
            Ok(loaded) => loaded.record.map_or(0, |r| r.outbox.len()),
            Err(e) => return unavailable(e),
        };
        if pending == 0 {
            if let Err(e) = api.store.unpark(&parked.contact).await {
                return unavailable(e);
            }
            continue;
        }
        contacts.push(json!({
            "id": parked.contact,
            "parked_at": parked.at.millis(),
            "error": parked.error,
            "pending_effects": pending,
        }));
    }
    ok(json!({"contacts": contacts, "next": next}))
}

/// POST /admin/parked/resume: resumes every parked contact, as
/// `POST /admin/contacts/{id}/resume` does one. 202 with the number queued, or 200 when
/// none had anything pending.
pub async fn resume_all(State(api): State<AdminApi>) -> Response {
    let (mut queued, mut cleared) = (0usize, 0usize);
    let mut cursor: Option<String> = None;
    loop {
        let (page, next) = match api.store.parked_page(cursor.as_deref(), RESUME_PAGE).await {
            Ok(page) => page,
            Err(e) => return unavailable(e),
        };
        for parked in page {
            match resume_contact(&api, &parked.contact).await {
                Ok(Resumed::Queued) => queued += 1,
                Ok(Resumed::NothingPending | Resumed::NoContact) => cleared += 1,
                Err(e) => return unavailable(e),
            }
        }
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let status = if queued > 0 {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let body = json!({"queued": queued, "cleared": cleared});
    (status, axum::Json(body)).into_response()
}
