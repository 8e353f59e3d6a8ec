//! The consent funnel, computed from the ledger. Definitions, per workflow version:
//! conversations = runs with a ledger record; link_sent = runs that reached the question
//! (the link goes out just before it, in the same decision); asked = questions sent
//! (first asks and re-asks); accepted = runs accepted; invalid_answers = invalid answers;
//! jumps = re-asks (asked − runs asked); failed_after_invalid = runs whose last decision
//! was an invalid answer; timeouts; delivery_failures; median_seconds_to_consent = median
//! of (accepted − first asked) over accepted runs.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

use super::{AdminApi, error, ok, unavailable};
use crate::clock::Timestamp;
use crate::engine::{ConsentKind, ConsentRecord};

#[derive(Deserialize)]
pub struct ReportQuery {
    workflow: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

#[derive(Default)]
struct Run<'a> {
    records: Vec<&'a ConsentRecord>,
}

/// GET /admin/reports/consent?workflow=ID&from=RFC3339&to=RFC3339
pub async fn consent(State(api): State<AdminApi>, Query(query): Query<ReportQuery>) -> Response {
    let Some(workflow) = query.workflow else {
        return error(StatusCode::BAD_REQUEST, "`workflow` is required");
    };
    let parse = |t: &Option<String>, default: Timestamp| match t {
        None => Some(default),
        Some(text) => Timestamp::parse_rfc3339(text),
    };
    let (Some(from), Some(to)) = (
        parse(&query.from, Timestamp(i64::MIN)),
        parse(&query.to, Timestamp(i64::MAX)),
    ) else {
        return error(
            StatusCode::BAD_REQUEST,
            "`from` and `to` must be RFC 3339 times",
        );
    };
    let records = match api.store.records_since(from).await {
        Ok(r) => r,
        Err(e) => return unavailable(e),
    };
    let mut runs: BTreeMap<(u32, String, u64), Run<'_>> = BTreeMap::new();
    for record in records
        .iter()
        .filter(|r| r.workflow_id.as_deref() == Some(&workflow) && r.recorded_at < to)
    {
        let key = (
            record.workflow_version.unwrap_or(0),
            record.contact.to_string(),
            record.run.unwrap_or(0),
        );
        runs.entry(key).or_default().records.push(record);
    }
    let mut versions: BTreeMap<u32, Vec<&Run<'_>>> = BTreeMap::new();
    for ((version, _, _), run) in &runs {
        versions.entry(*version).or_default().push(run);
    }
    let rows: Vec<Value> = versions
        .into_iter()
        .map(|(version, runs)| funnel(version, &runs))
        .collect();
    ok(json!({"workflow": workflow, "versions": rows}))
}

fn funnel(version: u32, runs: &[&Run<'_>]) -> Value {
    let count = |run: &Run<'_>, kind| run.records.iter().filter(|r| r.kind == kind).count();
    let asked: usize = runs.iter().map(|r| count(r, ConsentKind::Asked)).sum();
    let runs_asked = runs
        .iter()
        .filter(|r| count(r, ConsentKind::Asked) > 0)
        .count();
    let accepted: Vec<&&Run<'_>> = runs
        .iter()
        .filter(|r| count(r, ConsentKind::Accepted) > 0)
        .collect();
    let last_is = |run: &Run<'_>, kind| {
        run.records
            .iter()
            .max_by_key(|r| r.seq)
            .is_some_and(|r| r.kind == kind)
    };
    let mut seconds: Vec<f64> = accepted
        .iter()
        .filter_map(|run| {
            let first_ask = run
                .records
                .iter()
                .filter(|r| r.kind == ConsentKind::Asked)
                .map(|r| r.recorded_at)
                .min()?;
            let yes = run
                .records
                .iter()
                .find(|r| r.kind == ConsentKind::Accepted)?
                .recorded_at;
            Some((yes.millis() - first_ask.millis()) as f64 / 1000.0)
        })
        .collect();
    seconds.sort_by(f64::total_cmp);
    let median = match seconds.len() {
        0 => None,
        n if n % 2 == 1 => Some(seconds[n / 2]),
        n => Some((seconds[n / 2 - 1] + seconds[n / 2]) / 2.0),
    };
    json!({
        "version": version,
        "conversations": runs.len(),
        "link_sent": runs_asked,
        "asked": asked,
        "accepted": accepted.len(),
        "invalid_answers": runs.iter().map(|r| count(r, ConsentKind::InvalidAnswer)).sum::<usize>(),
        "jumps": asked - runs_asked,
        "failed_after_invalid": runs.iter().filter(|r| last_is(r, ConsentKind::InvalidAnswer)).count(),
        "timeouts": runs.iter().map(|r| count(r, ConsentKind::TimedOut)).sum::<usize>(),
        "delivery_failures": runs.iter().map(|r| count(r, ConsentKind::DeliveryFailed)).sum::<usize>(),
        "withdrawals": runs.iter().map(|r| count(r, ConsentKind::Withdrawn)).sum::<usize>(),
        "median_seconds_to_consent": median,
    })
}
