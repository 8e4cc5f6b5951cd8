//! Remote response: an analyst asks for an action on one agent's host (kill a process
//! or a story, quarantine a file, isolate the host, lift its isolation); the action
//! waits in `response_actions` until the agent collects it with a long poll
//! (`POST /agent/v1/actions`), and the agent's outcome comes back on its next
//! collection. Every request is audited; the agent's own Remediation Activity records
//! reach the lake like every event it ships.
//!
//! Delivery is at least once: an action handed out and not answered within
//! [`RESEND_AFTER`] is handed out again (an agent that died with it in hand), and the
//! agent answers an id it has already carried out from its memory, not by acting again.

use crate::auth::Caller;
use crate::body::{self, JsonBody};
use crate::error::ApiError;
use crate::state::{AgentIdentity, AppState};
use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How long an action handed to an agent may go unanswered before it is handed out
/// again.
pub const RESEND_AFTER: Duration = Duration::from_secs(60);
/// The longest an agent's collection waits for an action.
pub const MAX_WAIT: Duration = Duration::from_secs(25);
/// The most outcomes one collection may carry.
pub const MAX_RESULTS: usize = 64;

/// The actions an analyst may ask for.
pub const KINDS: &[&str] = &["kill", "quarantine", "isolate", "lift"];

/// `POST /api/v1/orgs/{org}/agents/{agent}/actions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAction {
    /// `kill`, `quarantine`, `isolate` or `lift`.
    pub kind: String,
    /// What to act on: for `kill` a pid, or a process or story uid as the agent's
    /// events carry them (`BOOTID-PID-STARTTICKS`); for `quarantine` an
    /// absolute path; nothing for `isolate` and `lift`.
    #[serde(default)]
    pub target: String,
    /// The finding this answers, if any (recorded, shown on the incident).
    #[serde(default)]
    pub finding: Option<String>,
}

/// Whether `target` suits an action of `kind`.
pub fn valid_target(kind: &str, target: &str) -> bool {
    match kind {
        "isolate" | "lift" => target.is_empty(),
        "kill" => {
            !target.is_empty()
                && target.len() <= 128
                && target
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':'))
        }
        "quarantine" => {
            target.starts_with('/')
                && body::text(target, 4096).is_ok()
                && !target.split('/').any(|c| c == "..")
        }
        _ => false,
    }
}

/// Queues an action for an agent of the caller's organisation; audited as
/// `response.KIND`.
pub async fn request(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
    Path((_, agent)): Path<(String, String)>,
    JsonBody(body): JsonBody<NewAction>,
) -> Result<Json<Value>, ApiError> {
    let agent_shown: String = agent.chars().take(64).collect();
    let action = format!(
        "response.{}",
        if KINDS.contains(&body.kind.as_str()) {
            body.kind.as_str()
        } else {
            "unknown"
        }
    );
    let shown_target: String = body.target.chars().take(256).collect();
    let target = if shown_target.is_empty() {
        agent_shown.clone()
    } else {
        format!("{agent_shown}: {shown_target}")
    };
    let finding_ok = body
        .finding
        .as_deref()
        .is_none_or(|f| body::text(f, 512).is_ok());
    if !KINDS.contains(&body.kind.as_str())
        || !valid_target(&body.kind, &body.target)
        || !finding_ok
    {
        c.audit(&state, &action, &target, "invalid").await;
        return Err(ApiError::BadRequest);
    }
    let row = state
        .db()
        .query_opt(
            "INSERT INTO response_actions (org_id, agent_id, kind, target, finding_uid,
                                           requested_by)
             SELECT $1, id, $3, $4, $5, $6 FROM agents
             WHERE id = $2 AND org_id = $1 AND NOT revoked
             RETURNING id",
            &[
                &c.org,
                &agent,
                &body.kind,
                &body.target,
                &body.finding,
                &c.actor(),
            ],
        )
        .await?;
    let Some(row) = row else {
        c.audit(&state, &action, &target, "not_found").await;
        return Err(ApiError::NotFound);
    };
    let id: i64 = row.get(0);
    c.audit(
        &state,
        &action,
        &format!("{target} (action {id})"),
        "queued",
    )
    .await;
    state.wake_agent(&agent);
    Ok(Json(json!({ "id": id, "state": "queued" })))
}

fn action_json(r: &tokio_postgres::Row) -> Value {
    json!({
        "id": r.get::<_, i64>(0),
        "kind": r.get::<_, String>(1),
        "target": r.get::<_, String>(2),
        "finding": r.get::<_, Option<String>>(3),
        "requested_by": r.get::<_, String>(4),
        "requested_at": r.get::<_, i64>(5),
        "state": r.get::<_, String>(6),
        "finished_at": r.get::<_, Option<i64>>(7),
        "result": r.get::<_, String>(8),
    })
}

/// The last 100 actions asked of an agent of the caller's organisation.
pub async fn list(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
    Path((_, agent)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let rows = state
        .db()
        .query(
            "SELECT r.id, r.kind, r.target, r.finding_uid, r.requested_by,
                    (extract(epoch FROM r.requested_at) * 1000)::int8, r.state,
                    (extract(epoch FROM r.finished_at) * 1000)::int8, r.result
             FROM response_actions r
             WHERE r.org_id = $1 AND r.agent_id = $2
             ORDER BY r.id DESC LIMIT 100",
            &[&c.org, &agent],
        )
        .await?;
    if rows.is_empty() {
        // Not found and empty look alike unless the agent is the caller's.
        let known = state
            .db()
            .query_opt(
                "SELECT 1 FROM agents WHERE id = $1 AND org_id = $2",
                &[&agent, &c.org],
            )
            .await?;
        if known.is_none() {
            let shown: String = agent.chars().take(64).collect();
            c.audit(&state, "response.list", &shown, "not_found").await;
            return Err(ApiError::NotFound);
        }
    }
    let actions: Vec<Value> = rows.iter().map(action_json).collect();
    Ok(Json(json!({ "actions": actions })))
}

/// An outcome the agent reports.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// The action's id.
    pub id: i64,
    /// Whether it was done.
    pub ok: bool,
    /// What happened, in a sentence.
    pub detail: String,
    /// The host's isolation state after it, when the agent knows it.
    #[serde(default)]
    pub isolated: Option<bool>,
}

/// `POST /agent/v1/actions`: outcomes in, actions out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Collect {
    /// Outcomes of actions handed out before.
    #[serde(default)]
    pub results: Vec<Outcome>,
    /// How long to wait for an action when none is waiting, in milliseconds (at most
    /// [`MAX_WAIT`]); 0 answers at once.
    #[serde(default)]
    pub wait_ms: u64,
}

/// Records the agent's outcomes, then hands it the actions waiting for it, waiting up
/// to `wait_ms` for one when none is.
pub async fn collect(
    State(state): State<AppState>,
    Extension(agent): Extension<AgentIdentity>,
    JsonBody(body): JsonBody<Collect>,
) -> Result<Json<Value>, ApiError> {
    if body.results.len() > MAX_RESULTS
        || body
            .results
            .iter()
            .any(|r| r.detail.len() > 4096 || r.detail.contains('\0'))
    {
        return Err(ApiError::BadRequest);
    }
    for r in &body.results {
        // One statement: the outcome and the host's isolation state are seen together
        // (a page showing the action done shows the host as it left it).
        state
            .db()
            .execute(
                "WITH done AS (
                   UPDATE response_actions SET state = $1, result = $2, finished_at = now()
                   WHERE id = $3 AND agent_id = $4 AND org_id = $5
                     AND state IN ('queued', 'sent')
                   RETURNING id)
                 UPDATE agents SET isolated = COALESCE($6, isolated)
                 WHERE id = $4 AND org_id = $5 AND EXISTS (SELECT 1 FROM done)",
                &[
                    &if r.ok { "done" } else { "failed" },
                    &r.detail,
                    &r.id,
                    &agent.id,
                    &agent.org,
                    &r.isolated,
                ],
            )
            .await?;
    }
    let deadline = Instant::now() + Duration::from_millis(body.wait_ms).min(MAX_WAIT);
    let wake = state.agent_waker(&agent.id);
    loop {
        // Registered before the query, so an action queued meanwhile is not missed.
        let notified = wake.notified();
        let resend = RESEND_AFTER.as_secs_f64();
        let rows = state
            .db()
            .query(
                "UPDATE response_actions SET state = 'sent', sent_at = now()
                 WHERE id IN (
                   SELECT id FROM response_actions
                   WHERE agent_id = $1 AND org_id = $2
                     AND (state = 'queued'
                          OR (state = 'sent'
                              AND sent_at < now() - make_interval(secs => $3)))
                   ORDER BY id LIMIT 16 FOR UPDATE SKIP LOCKED)
                 RETURNING id, kind, target",
                &[&agent.id, &agent.org, &resend],
            )
            .await?;
        if !rows.is_empty() {
            let mut actions: Vec<Value> = rows
                .iter()
                .map(|r| {
                    json!({
                        "id": r.get::<_, i64>(0),
                        "kind": r.get::<_, String>(1),
                        "target": r.get::<_, String>(2),
                    })
                })
                .collect();
            actions.sort_by_key(|a| a["id"].as_i64());
            return Ok(Json(json!({ "actions": actions })));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(Json(json!({ "actions": [] })));
        }
        // Woken by an action queued in this process, or in another through NATS
        // (`crate::bus`); without NATS another process's is seen at the next look, at
        // most a second later.
        let nap = (deadline - now).min(Duration::from_secs(1));
        let _ = tokio::time::timeout(nap, notified).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_fit_their_kind() {
        assert!(valid_target("isolate", ""));
        assert!(!valid_target("isolate", "x"));
        assert!(valid_target("lift", ""));
        assert!(valid_target("kill", "4242"));
        assert!(valid_target(
            "kill",
            "0f3c9c1e-5d2a-4b7e-9a51-2f1d6c8e4b10-4242-1234567"
        ));
        assert!(!valid_target("kill", ""));
        assert!(!valid_target("kill", "1; rm -rf /"));
        assert!(valid_target("quarantine", "/tmp/dropper"));
        assert!(!valid_target("quarantine", "tmp/dropper"));
        assert!(!valid_target("quarantine", "/tmp/../etc/shadow"));
        assert!(!valid_target("quarantine", "/tmp/a\nb"));
        assert!(!valid_target("reboot", ""));
    }
}
