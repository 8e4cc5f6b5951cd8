//! The agents' side: enrolment (a token and a CSR in, a certificate out) and the
//! heartbeat over mutual TLS.

use crate::body::{self, JsonBody};
use crate::db::Audit;
use crate::error::ApiError;
use crate::secret;
use crate::state::{AgentIdentity, AppState, ConnInfo};
use axum::extract::State;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

/// `POST /agent/v1/enroll`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enroll {
    /// The enrolment token.
    pub token: String,
    /// The agent's certificate signing request (PEM).
    pub csr: String,
    /// The host's name.
    pub hostname: String,
}

/// Enrols an agent: the token is checked and used once (atomically: expired, exhausted,
/// revoked or unknown tokens are refused alike, with no detail, and audited), the CSR's
/// key is certified by the CA, and the agent recorded.
pub async fn enroll(
    State(state): State<AppState>,
    conn: Option<Extension<ConnInfo>>,
    JsonBody(body): JsonBody<Enroll>,
) -> Result<Json<Value>, ApiError> {
    let source = conn.map(|c| c.source()).unwrap_or_else(|| "unknown".into());
    let refuse = |org: Option<i64>, result: &'static str, err: ApiError| {
        let state = state.clone();
        let source = source.clone();
        async move {
            state
                .audit(Audit {
                    org,
                    actor: "anonymous",
                    action: "agent.enroll",
                    target: "",
                    source: &source,
                    result,
                })
                .await;
            err
        }
    };
    if body::text(&body.hostname, 255).is_err() || body.token.len() > 128 || body.csr.len() > 16384
    {
        return Err(refuse(None, "invalid", ApiError::BadRequest).await);
    }
    // The CSR is checked before the token is used: a bad request spends no use.
    let agent_id = secret::hex(&secret::random::<16>());
    if state.ca().sign_agent(&body.csr, &agent_id, 0).is_none() {
        return Err(refuse(None, "invalid: csr", ApiError::BadRequest).await);
    }
    let row = state
        .db()
        .query_opt(
            "UPDATE enrolment_tokens SET uses_left = uses_left - 1
             WHERE token_hash = $1 AND NOT revoked AND uses_left > 0 AND expires_at > now()
             RETURNING id, org_id, group_id",
            &[&secret::digest(&body.token)],
        )
        .await?;
    let Some(row) = row else {
        return Err(refuse(None, "denied: token", ApiError::Forbidden).await);
    };
    let (token_id, org, group): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    let issued = state
        .ca()
        .sign_agent(&body.csr, &agent_id, org)
        .ok_or_else(|| ApiError::Internal("signing a checked CSR failed".into()))?;
    state
        .db()
        .execute(
            "INSERT INTO agents (id, org_id, group_id, cert_serial, cert_sha256, hostname)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &agent_id,
                &org,
                &group,
                &issued.serial,
                &issued.sha256,
                &body.hostname,
            ],
        )
        .await?;
    state
        .audit(Audit {
            org: Some(org),
            actor: &format!("agent:{agent_id}"),
            action: "agent.enroll",
            target: &format!("{} (token {token_id}, group {group})", body.hostname),
            source: &source,
            result: "ok",
        })
        .await;
    Ok(Json(json!({
        "agent_id": agent_id,
        "org_id": org,
        "group_id": group,
        "certificate": issued.pem,
        "ca": state.ca().cert_pem(),
        "heartbeat_secs": state.settings().heartbeat_secs,
    })))
}

/// `POST /agent/v1/heartbeat`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The host's name now.
    pub hostname: String,
    /// The agent's version.
    pub version: String,
    /// The sensor's statistics (counters), as the agent reports them.
    #[serde(default)]
    pub stats: serde_json::Map<String, Value>,
    /// Whether the host is isolated now (agents before remote response leave it out).
    #[serde(default)]
    pub isolated: Option<bool>,
}

/// Records an agent's heartbeat: last seen, host name, version, statistics.
pub async fn heartbeat(
    State(state): State<AppState>,
    Extension(agent): Extension<AgentIdentity>,
    JsonBody(body): JsonBody<Heartbeat>,
) -> Result<Json<Value>, ApiError> {
    if body::text(&body.hostname, 255).is_err() || body::text(&body.version, 64).is_err() {
        return Err(ApiError::BadRequest);
    }
    let stats_map = body.stats;
    let stats = Value::Object(stats_map.clone()).to_string();
    if stats.len() > 16384 || stats.contains("\\u0000") {
        return Err(ApiError::BadRequest);
    }
    let n = state
        .db()
        .execute(
            "UPDATE agents SET last_seen = now(), hostname = $1, version = $2, stats = $3
             WHERE id = $4 AND org_id = $5 AND NOT revoked",
            &[&body.hostname, &body.version, &stats, &agent.id, &agent.org],
        )
        .await?;
    if n == 0 {
        return Err(ApiError::Forbidden);
    }
    if let Some(isolated) = body.isolated {
        set_isolated(&state, &agent, isolated).await?;
    }
    // Content rollout: what this agent should run. A failure here never fails the
    // heartbeat (the next one asks again).
    let content =
        match crate::content::on_heartbeat(&state, &agent, &body.hostname, &stats_map).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(agent = %agent.id, "content rollout: {e:?}");
                None
            }
        };
    let mut answer = json!({
        "ok": true,
        "heartbeat_secs": state.settings().heartbeat_secs,
    });
    if let Some(c) = content {
        answer["content"] = c;
    }
    Ok(Json(answer))
}

/// Records whether an agent's host is isolated, as the agent said.
pub async fn set_isolated(
    state: &AppState,
    agent: &AgentIdentity,
    isolated: bool,
) -> Result<(), ApiError> {
    state
        .db()
        .execute(
            "UPDATE agents SET isolated = $1 WHERE id = $2 AND org_id = $3",
            &[&isolated, &agent.id, &agent.org],
        )
        .await?;
    Ok(())
}
