use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

use super::{AdminApi, error, ok, unavailable};
use crate::workflow::template::{self, TemplateError};
use crate::workflow::{Problem, Problems, PublishedWorkflow, Workflow};

/// 422 with a problem per field, as the definition format reports them.
fn invalid(problems: Vec<Problem>) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({"error": "invalid workflow definition", "problems": problems})),
    )
        .into_response()
}

async fn published(api: &AdminApi, id: &str) -> Result<Vec<PublishedWorkflow>, Response> {
    let mut versions: Vec<PublishedWorkflow> = api
        .store
        .published()
        .await
        .map_err(unavailable)?
        .into_iter()
        .filter(|p| p.id == id)
        .collect();
    versions.sort_by_key(|p| p.version);
    Ok(versions)
}

async fn draft(api: &AdminApi, id: &str) -> Result<Option<Value>, Response> {
    let drafts = api.store.drafts().await.map_err(unavailable)?;
    Ok(drafts.into_iter().find(|(d, _)| d == id).map(|(_, v)| v))
}

fn active_version(api: &AdminApi, id: &str) -> Option<u32> {
    api.runtime
        .active_workflow()
        .filter(|(active, _)| active == id)
        .map(|(_, v)| v)
}

/// GET /admin/workflows: every workflow with a published version or a draft.
pub async fn list(State(api): State<AdminApi>) -> Response {
    let mut rows: BTreeMap<String, (Option<u32>, bool)> = BTreeMap::new();
    match api.store.published().await {
        Ok(all) => all.iter().for_each(|p| {
            let row = rows.entry(p.id.clone()).or_default();
            row.0 = row.0.max(Some(p.version));
        }),
        Err(e) => return unavailable(e),
    }
    match api.store.drafts().await {
        Ok(drafts) => drafts
            .into_iter()
            .for_each(|(id, _)| rows.entry(id).or_default().1 = true),
        Err(e) => return unavailable(e),
    }
    let workflows: Vec<Value> = rows
        .into_iter()
        .map(|(id, (latest, has_draft))| {
            json!({"id": id, "latest_version": latest, "active_version": active_version(&api, &id), "has_draft": has_draft})
        })
        .collect();
    ok(json!({ "workflows": workflows }))
}

/// GET /admin/workflows/{id}: the draft (if any) and the latest published version.
pub async fn show(State(api): State<AdminApi>, Path(id): Path<String>) -> Response {
    let (versions, draft) = match (published(&api, &id).await, draft(&api, &id).await) {
        (Ok(v), Ok(d)) => (v, d),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    if versions.is_empty() && draft.is_none() {
        return error(StatusCode::NOT_FOUND, "no such workflow");
    }
    let latest = versions.last();
    ok(json!({
        "id": id,
        "draft": draft,
        "latest_version": latest.map(|p| p.version),
        "latest": latest.map(|p| &p.definition),
        "active_version": active_version(&api, &id),
    }))
}

/// PUT /admin/workflows/{id}: saves a draft, if it is valid.
pub async fn save_draft(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    Json(definition): Json<Value>,
) -> Response {
    let workflow = match Workflow::from_value(definition) {
        Ok(w) => w,
        Err(Problems(problems)) => return invalid(problems),
    };
    if workflow.id != id {
        return invalid(vec![Problem {
            step: None,
            field: "id".into(),
            message: format!("`{}` does not match the URL's `{id}`", workflow.id),
        }]);
    }
    match api.store.put_draft(&id, &workflow.to_value()).await {
        Ok(()) => ok(json!({"id": id, "draft": workflow.to_value()})),
        Err(e) => unavailable(e),
    }
}

#[derive(Deserialize)]
pub struct FromTemplate {
    template: String,
    #[serde(default)]
    params: BTreeMap<String, Value>,
}

/// POST /admin/workflows {"template": NAME, "params": {...}}: a draft from a template.
pub async fn from_template(
    State(api): State<AdminApi>,
    Json(body): Json<FromTemplate>,
) -> Response {
    let params: BTreeMap<String, String> = body
        .params
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect();
    let workflow = match template::build(&body.template, &params) {
        Ok(w) => w,
        Err(TemplateError::Invalid(Problems(problems))) => return invalid(problems),
        Err(TemplateError::UnknownTemplate(name)) => {
            return error(StatusCode::NOT_FOUND, format!("no template `{name}`"));
        }
        Err(other) => {
            let field = match &other {
                TemplateError::UnknownParam { param, .. }
                | TemplateError::BadParam { param, .. } => param.to_string(),
                TemplateError::MissingParam(param) => param.to_string(),
                _ => String::new(),
            };
            return invalid(vec![Problem {
                step: None,
                field: format!("params.{field}"),
                message: other.to_string(),
            }]);
        }
    };
    match api
        .store
        .put_draft(&workflow.id, &workflow.to_value())
        .await
    {
        Ok(()) => (
            StatusCode::CREATED,
            Json(json!({"id": workflow.id, "draft": workflow.to_value()})),
        )
            .into_response(),
        Err(e) => unavailable(e),
    }
}

/// POST /admin/workflows/{id}/publish: the draft becomes a new immutable version, and
/// what new conversations start. Runs under way stay on their version.
pub async fn publish(State(api): State<AdminApi>, Path(id): Path<String>) -> Response {
    let draft = match draft(&api, &id).await {
        Ok(Some(d)) => d,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no draft to publish"),
        Err(r) => return r,
    };
    let workflow = match Workflow::from_value(draft) {
        Ok(w) => w,
        Err(Problems(problems)) => return invalid(problems),
    };
    match api.runtime.publish_and_activate(&workflow).await {
        Ok(published) => ok(
            json!({"id": published.id, "version": published.version, "published_at": published.published_at.to_rfc3339()}),
        ),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// GET /admin/workflows/{id}/versions.
pub async fn versions(State(api): State<AdminApi>, Path(id): Path<String>) -> Response {
    let versions = match published(&api, &id).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if versions.is_empty() {
        return error(StatusCode::NOT_FOUND, "no published version");
    }
    let rows: Vec<Value> = versions
        .iter()
        .map(|p| json!({"version": p.version, "published_at": p.published_at.to_rfc3339(), "digest": p.digest}))
        .collect();
    ok(json!({"id": id, "versions": rows, "active_version": active_version(&api, &id)}))
}
