//! Triage beyond one finding's status: a status set on many findings at once, a
//! finding assigned to a user of the organisation, and notes on an incident (a story).
//! Each change is audited; every query carries the caller's organisation.

use crate::auth::Caller;
use crate::body::{self, JsonBody};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

type Reply = Result<Json<Value>, ApiError>;

/// The statuses a finding may have.
pub const STATUSES: &[&str] = &["new", "in_progress", "resolved", "false_positive"];
/// The most findings one bulk change names.
pub const MAX_BULK: usize = 500;
/// The longest note, in characters.
pub const MAX_NOTE: usize = 4000;

fn shown(s: &str) -> String {
    s.chars().take(128).collect()
}

/// Whether `s` is a finding uid or story id as the agents send them: printable, short.
fn id_like(s: &str) -> bool {
    body::text(s, 512).is_ok()
}

/// `POST /api/v1/orgs/{org}/findings/status`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkStatus {
    /// The findings (1 to [`MAX_BULK`]).
    pub uids: Vec<String>,
    /// Their new status.
    pub status: String,
}

/// Sets the status of many findings of the caller's organisation; audited once, with
/// how many changed. Uids of other organisations (or none) change nothing; if none of
/// them is the caller's, "not found".
pub async fn bulk_status(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
    JsonBody(body): JsonBody<BulkStatus>,
) -> Reply {
    let target = format!("{} findings -> {}", body.uids.len(), shown(&body.status));
    if !STATUSES.contains(&body.status.as_str())
        || body.uids.is_empty()
        || body.uids.len() > MAX_BULK
        || !body.uids.iter().all(|u| id_like(u))
    {
        c.audit(&state, "finding.status.bulk", &target, "invalid")
            .await;
        return Err(ApiError::BadRequest);
    }
    let rows = state
        .db()
        .query(
            "UPDATE findings SET status = $1 WHERE org_id = $2 AND uid = ANY($3) RETURNING uid",
            &[&body.status, &c.org, &body.uids],
        )
        .await?;
    if rows.is_empty() {
        c.audit(&state, "finding.status.bulk", &target, "not_found")
            .await;
        return Err(ApiError::NotFound);
    }
    let target = format!("{} of {target}", rows.len());
    c.audit(&state, "finding.status.bulk", &target, "ok").await;
    Ok(Json(
        json!({ "updated": rows.len(), "status": body.status }),
    ))
}

/// `POST /api/v1/orgs/{org}/findings/{uid}/assign`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assign {
    /// A user of the organisation, or `null` to unassign.
    pub assignee: Option<String>,
}

/// Assigns a finding to a user of the caller's organisation (not a disabled one), or
/// unassigns it; audited.
pub async fn assign(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
    Path((_, uid)): Path<(String, String)>,
    JsonBody(body): JsonBody<Assign>,
) -> Reply {
    let target = format!(
        "{} -> {}",
        shown(&uid),
        body.assignee.as_deref().map_or("nobody".to_string(), shown)
    );
    let known = id_like(&uid)
        && state
            .db()
            .query_opt(
                "SELECT 1 FROM findings WHERE org_id = $1 AND uid = $2",
                &[&c.org, &uid],
            )
            .await?
            .is_some();
    if !known {
        c.audit(&state, "finding.assign", &target, "not_found")
            .await;
        return Err(ApiError::NotFound);
    }
    if let Some(name) = &body.assignee {
        let user = state
            .db()
            .query_opt(
                "SELECT 1 FROM users WHERE org_id = $1 AND name = $2 AND NOT disabled",
                &[&c.org, name],
            )
            .await?;
        if user.is_none() {
            c.audit(&state, "finding.assign", &target, "invalid: user")
                .await;
            return Err(ApiError::BadRequest);
        }
    }
    let row = state
        .db()
        .query_opt(
            "UPDATE findings SET assignee = $1 WHERE org_id = $2 AND uid = $3 RETURNING uid",
            &[&body.assignee, &c.org, &uid],
        )
        .await?;
    if row.is_none() {
        c.audit(&state, "finding.assign", &target, "not_found")
            .await;
        return Err(ApiError::NotFound);
    }
    c.audit(&state, "finding.assign", &target, "ok").await;
    Ok(Json(json!({ "uid": uid, "assignee": body.assignee })))
}

/// Whether the caller's organisation has findings in `story`.
async fn story_known(state: &AppState, c: &Caller, story: &str) -> Result<bool, ApiError> {
    Ok(state
        .db()
        .query_opt(
            "SELECT 1 FROM findings WHERE org_id = $1 AND story = $2 LIMIT 1",
            &[&c.org, &story],
        )
        .await?
        .is_some())
}

/// `GET /api/v1/orgs/{org}/stories/{story}/notes`: the incident's notes, oldest first.
pub async fn notes(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
    Path((_, story)): Path<(String, String)>,
) -> Reply {
    if !id_like(&story) || !story_known(&state, &c, &story).await? {
        c.audit(&state, "story.notes", &shown(&story), "not_found")
            .await;
        return Err(ApiError::NotFound);
    }
    let rows = state
        .db()
        .query(
            "SELECT id, author, (extract(epoch FROM at) * 1000)::int8, text FROM story_notes
             WHERE org_id = $1 AND story = $2 ORDER BY id LIMIT 1000",
            &[&c.org, &story],
        )
        .await?;
    let notes: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.get::<_, i64>(0),
                "author": r.get::<_, String>(1),
                "at": r.get::<_, i64>(2),
                "text": r.get::<_, String>(3),
            })
        })
        .collect();
    Ok(Json(json!({ "notes": notes })))
}

/// `POST /api/v1/orgs/{org}/stories/{story}/notes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNote {
    /// The note: up to [`MAX_NOTE`] characters, lines and tabs allowed.
    pub text: String,
}

/// Adds a note to an incident of the caller's organisation; audited.
pub async fn add_note(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
    Path((_, story)): Path<(String, String)>,
    JsonBody(body): JsonBody<NewNote>,
) -> Reply {
    let target = shown(&story);
    let bad_text = body::lines(&body.text, MAX_NOTE).is_err();
    if !id_like(&story) || !story_known(&state, &c, &story).await? {
        c.audit(&state, "story.note", &target, "not_found").await;
        return Err(ApiError::NotFound);
    }
    if bad_text {
        c.audit(&state, "story.note", &target, "invalid").await;
        return Err(ApiError::BadRequest);
    }
    let row = state
        .db()
        .query_one(
            "INSERT INTO story_notes (org_id, story, author, text) VALUES ($1, $2, $3, $4)
             RETURNING id",
            &[&c.org, &story, &c.name, &body.text],
        )
        .await?;
    let id: i64 = row.get(0);
    c.audit(&state, "story.note", &format!("{target} (note {id})"), "ok")
        .await;
    Ok(Json(json!({ "id": id })))
}
