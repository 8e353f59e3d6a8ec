use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{AdminApi, REQUESTED_BY, error, ok, queue, unavailable};
use crate::clock::Timestamp;
use crate::contact::ContactId;
use crate::engine::{ConsentRecord, Event, ledger};

/// GET /admin/contacts/{id}/consent: the ledger and whether its chain verifies.
pub async fn ledger(State(api): State<AdminApi>, Path(id): Path<String>) -> Response {
    let id = ContactId::from_stored(id);
    let records = match api.store.records(&id).await {
        Ok(records) => records,
        Err(e) => return unavailable(e),
    };
    if records.is_empty() {
        match api.store.load(&id).await {
            Ok(loaded) if loaded.record.is_none() => {
                return error(StatusCode::NOT_FOUND, "no such contact");
            }
            Err(e) => return unavailable(e),
            Ok(_) => {}
        }
    }
    let verdict = ledger::verify(&records);
    ok(json!({
        "contact": id,
        "records": records,
        "chain_valid": verdict.is_ok(),
        "chain_break": verdict.err(),
    }))
}

/// POST /admin/contacts/{id}/consent/withdraw: queued like any event, so the engine
/// removes the tag, records the withdrawal and confirms to the contact. 202.
pub async fn withdraw(State(api): State<AdminApi>, Path(id): Path<String>) -> Response {
    let id = ContactId::from_stored(id);
    match api.store.load(&id).await {
        Ok(loaded) if loaded.record.is_none() => {
            return error(StatusCode::NOT_FOUND, "no such contact");
        }
        Err(e) => return unavailable(e),
        Ok(_) => {}
    }
    let event = Event::Withdraw {
        requested_by: REQUESTED_BY.into(),
    };
    queue(&api, &id, "withdraw", event).await
}

#[derive(Deserialize)]
pub struct ExportQuery {
    format: Option<String>,
    since: Option<String>,
}

/// GET /admin/consent/export?format=csv|jsonl&since=RFC3339: every record since then,
/// oldest first, streamed a line at a time.
pub async fn export(State(api): State<AdminApi>, Query(query): Query<ExportQuery>) -> Response {
    let since = match query.since.as_deref() {
        None => Timestamp(i64::MIN),
        Some(text) => match Timestamp::parse_rfc3339(text) {
            Some(t) => t,
            None => return error(StatusCode::BAD_REQUEST, "`since` must be an RFC 3339 time"),
        },
    };
    let csv = match query.format.as_deref().unwrap_or("jsonl") {
        "csv" => true,
        "jsonl" => false,
        _ => return error(StatusCode::BAD_REQUEST, "`format` is csv or jsonl"),
    };
    let mut records = match api.store.records_since(since).await {
        Ok(records) => records,
        Err(e) => return unavailable(e),
    };
    records.sort_by(|a, b| {
        (a.recorded_at, &a.contact, a.seq).cmp(&(b.recorded_at, &b.contact, b.seq))
    });
    let header_line = csv.then(|| format!("{}\n", CSV_COLUMNS.join(",")));
    let lines = header_line
        .into_iter()
        .chain(records.into_iter().map(move |r| {
            if csv {
                csv_line(&r)
            } else {
                format!("{}\n", serde_json::to_string(&r).unwrap_or_default())
            }
        }));
    let stream = line_stream(lines);
    let content_type = if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/x-ndjson"
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response()
}

/// The body as a stream of lines, so large exports go out as they are written.
fn line_stream(
    lines: impl Iterator<Item = String> + Send + Unpin + 'static,
) -> impl futures_core::Stream<Item = Result<String, std::convert::Infallible>> + Send {
    struct Lines<I>(I);
    impl<I: Iterator<Item = String> + Unpin> futures_core::Stream for Lines<I> {
        type Item = Result<String, std::convert::Infallible>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next().map(Ok))
        }
    }
    Lines(lines)
}

const CSV_COLUMNS: &[&str] = &[
    "recorded_at",
    "contact",
    "seq",
    "kind",
    "channel",
    "channel_user",
    "workflow_id",
    "workflow_version",
    "run",
    "question",
    "options",
    "policy_url",
    "policy_version",
    "provider_message_id",
    "payload",
    "text",
    "requested_by",
    "provider_at",
    "prev_hash",
    "hash",
];

fn csv_line(r: &ConsentRecord) -> String {
    let kind = serde_json::to_value(r.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let fields: Vec<String> = vec![
        r.recorded_at.to_rfc3339(),
        r.contact.to_string(),
        r.seq.to_string(),
        kind,
        r.channel.clone(),
        r.channel_user.clone(),
        r.workflow_id.clone().unwrap_or_default(),
        r.workflow_version
            .map(|v| v.to_string())
            .unwrap_or_default(),
        r.run.map(|v| v.to_string()).unwrap_or_default(),
        r.question.clone().unwrap_or_default(),
        r.options.join(" | "),
        r.policy_url.clone().unwrap_or_default(),
        r.policy_version.clone().unwrap_or_default(),
        r.provider_message_id.clone().unwrap_or_default(),
        r.payload.clone().unwrap_or_default(),
        r.text.clone().unwrap_or_default(),
        r.requested_by.clone().unwrap_or_default(),
        r.provider_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
        r.prev_hash.clone(),
        r.hash.clone(),
    ];
    let cells: Vec<String> = fields.iter().map(|f| csv_cell(f)).collect();
    format!("{}\n", cells.join(","))
}

/// Quotes a cell, and defuses text a spreadsheet would run as a formula (a contact's
/// answer is untrusted input).
fn csv_cell(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(super::csv_cell("plain"), "plain");
        assert_eq!(super::csv_cell("a,b"), "\"a,b\"");
        assert_eq!(super::csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(
            super::csv_cell("=HYPERLINK(\"x\")"),
            "\"'=HYPERLINK(\"\"x\"\")\""
        );
        assert_eq!(super::csv_cell("-1"), "'-1");
    }
}
