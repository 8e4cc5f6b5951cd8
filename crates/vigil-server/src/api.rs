//! The organisation's API: users, host groups, enrolment tokens, API tokens, agents,
//! the audit log. Every handler runs behind the guard (`auth::guard`), which has checked
//! the caller's role and that the organisation in the path is the caller's; every query
//! carries that organisation in its WHERE clause, so an id of another organisation is
//! not found (and the refusal audited).

use crate::auth::{self, Caller, Role};
use crate::body::{self, JsonBody};
use crate::error::ApiError;
use crate::search;
use crate::secret;
use crate::state::{AppState, Revocation};
use crate::totp;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type Reply = Result<Json<Value>, ApiError>;

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn unix_opt(t: Option<SystemTime>) -> Value {
    t.map(|t| json!(unix(t))).unwrap_or(Value::Null)
}

/// Audits and returns "not found": an id that is not in the caller's organisation.
async fn not_found(state: &AppState, caller: &Caller, action: &str, target: &str) -> ApiError {
    caller.audit(state, action, target, "not_found").await;
    ApiError::NotFound
}

/// Updates one row of the caller's organisation named by the id in the path: `sql`
/// takes the id as `$1`, then `more` (the organisation, and the caller where it must own
/// the row). An id that does not parse, or matches no row, is "not found", audited.
async fn update_by_id(
    state: &AppState,
    c: &Caller,
    action: &str,
    raw: &str,
    sql: &str,
    more: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<i64, ApiError> {
    let Ok(id) = body::id(raw) else {
        return Err(not_found(state, c, action, raw).await);
    };
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&id];
    params.extend_from_slice(more);
    if state.db().execute(sql, &params).await? == 0 {
        return Err(not_found(state, c, action, raw).await);
    }
    Ok(id)
}

/// Audits and returns "bad request".
async fn invalid(state: &AppState, caller: &Caller, action: &str, target: &str) -> ApiError {
    caller.audit(state, action, target, "invalid").await;
    ApiError::BadRequest
}

// ---- users ----------------------------------------------------------------------

/// `GET /api/v1/orgs/{org}/users`.
pub async fn list_users(State(state): State<AppState>, Extension(c): Extension<Caller>) -> Reply {
    let rows = state
        .db()
        .query(
            "SELECT id, name, role, disabled, must_change_password, created_at
             FROM users WHERE org_id = $1 ORDER BY id",
            &[&c.org],
        )
        .await?;
    let users: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.get::<_, i64>(0),
                "name": r.get::<_, String>(1),
                "role": r.get::<_, String>(2),
                "disabled": r.get::<_, bool>(3),
                "password_change_required": r.get::<_, bool>(4),
                "created_at": unix(r.get(5)),
            })
        })
        .collect();
    Ok(Json(json!({ "users": users })))
}

/// `POST /api/v1/orgs/{org}/users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// The user name (unique across the server: it signs in with it).
    pub name: String,
    /// The role.
    pub role: Role,
}

/// A new user: created with a one-time password and a TOTP key, both shown once.
pub struct Credentials {
    /// The user id.
    pub id: i64,
    /// The one-time password (to change at first login).
    pub password: String,
    /// The TOTP key.
    pub totp_key: Vec<u8>,
    /// The key as an `otpauth://` URI.
    pub totp_uri: String,
}

/// Creates a user in `org` (shared by the API and `vigil server init`).
pub async fn create_user(
    db: &tokio_postgres::Client,
    org: i64,
    name: &str,
    role: Role,
) -> Result<Credentials, ApiError> {
    let password = secret::password();
    let hash = auth::hash_password(password.clone()).await?;
    let key = secret::random::<20>().to_vec();
    let row = db
        .query_one(
            "INSERT INTO users (org_id, name, password_hash, totp_secret, role)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[&org, &name, &hash, &key, &role.as_str()],
        )
        .await?;
    Ok(Credentials {
        id: row.get(0),
        totp_uri: totp::uri("Vigil", name, &key),
        password,
        totp_key: key,
    })
}

/// `POST /api/v1/orgs/{org}/users`.
pub async fn new_user(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
    JsonBody(body): JsonBody<NewUser>,
) -> Reply {
    if body::text(&body.name, 128).is_err() {
        return Err(invalid(&state, &c, "user.create", "").await);
    }
    match create_user(&state.db(), c.org, &body.name, body.role).await {
        Ok(cred) => {
            c.audit(&state, "user.create", &body.name, "ok").await;
            Ok(Json(json!({
                "id": cred.id,
                "name": body.name,
                "role": body.role,
                "password": cred.password,
                "totp_uri": cred.totp_uri,
            })))
        }
        Err(e) => {
            c.audit(&state, "user.create", &body.name, e.code()).await;
            Err(e)
        }
    }
}

/// `POST /api/v1/orgs/{org}/users/{user}/disable`: the user's sessions and tokens end.
pub async fn disable_user(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
    Path((_, user)): Path<(String, String)>,
) -> Reply {
    let id = update_by_id(
        &state,
        &c,
        "user.disable",
        &user,
        "UPDATE users SET disabled = true WHERE id = $1 AND org_id = $2",
        &[&c.org],
    )
    .await?;
    state
        .db()
        .execute(
            "UPDATE sessions SET revoked = true WHERE user_id = $1 AND org_id = $2",
            &[&id, &c.org],
        )
        .await?;
    state
        .db()
        .execute(
            "UPDATE api_tokens SET revoked = true WHERE user_id = $1 AND org_id = $2",
            &[&id, &c.org],
        )
        .await?;
    c.audit(&state, "user.disable", &user, "ok").await;
    Ok(Json(json!({ "ok": true })))
}

// ---- host groups ----------------------------------------------------------------

/// `GET /api/v1/orgs/{org}/host-groups`.
pub async fn list_groups(State(state): State<AppState>, Extension(c): Extension<Caller>) -> Reply {
    let rows = state
        .db()
        .query(
            "SELECT id, name FROM host_groups WHERE org_id = $1 ORDER BY id",
            &[&c.org],
        )
        .await?;
    let groups: Vec<Value> = rows
        .iter()
        .map(|r| json!({ "id": r.get::<_, i64>(0), "name": r.get::<_, String>(1) }))
        .collect();
    Ok(Json(json!({ "host_groups": groups })))
}

/// `POST /api/v1/orgs/{org}/host-groups`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    /// The group's name (unique in the organisation).
    pub name: String,
}

/// `POST /api/v1/orgs/{org}/host-groups`.
pub async fn new_group(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
    JsonBody(body): JsonBody<NewGroup>,
) -> Reply {
    if body::text(&body.name, 128).is_err() {
        return Err(invalid(&state, &c, "host_group.create", "").await);
    }
    let r = state
        .db()
        .query_one(
            "INSERT INTO host_groups (org_id, name) VALUES ($1, $2) RETURNING id",
            &[&c.org, &body.name],
        )
        .await;
    match r {
        Ok(row) => {
            c.audit(&state, "host_group.create", &body.name, "ok").await;
            Ok(Json(
                json!({ "id": row.get::<_, i64>(0), "name": body.name }),
            ))
        }
        Err(e) => {
            let e = ApiError::from(e);
            c.audit(&state, "host_group.create", &body.name, e.code())
                .await;
            Err(e)
        }
    }
}

// ---- enrolment tokens -----------------------------------------------------------

/// `GET /api/v1/orgs/{org}/enrolment-tokens` (never the tokens themselves: only their
/// hashes are stored).
pub async fn list_enrolment_tokens(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
) -> Reply {
    let rows = state
        .db()
        .query(
            "SELECT id, group_id, expires_at, uses_left, revoked, created_at
             FROM enrolment_tokens WHERE org_id = $1 ORDER BY id",
            &[&c.org],
        )
        .await?;
    let tokens: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.get::<_, i64>(0),
                "group_id": r.get::<_, i64>(1),
                "expires_at": unix(r.get(2)),
                "uses_left": r.get::<_, i32>(3),
                "revoked": r.get::<_, bool>(4),
                "created_at": unix(r.get(5)),
            })
        })
        .collect();
    Ok(Json(json!({ "enrolment_tokens": tokens })))
}

/// `POST /api/v1/orgs/{org}/enrolment-tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEnrolmentToken {
    /// The host group enrolled agents join (of the caller's organisation).
    pub group_id: i64,
    /// Seconds until it expires (1 to 30 days).
    pub expires_in_secs: u64,
    /// How many agents may enrol with it (1 to 100,000).
    pub uses: i32,
}

/// `POST /api/v1/orgs/{org}/enrolment-tokens`: the token is shown once.
pub async fn new_enrolment_token(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
    JsonBody(body): JsonBody<NewEnrolmentToken>,
) -> Reply {
    let target = format!("group {}", body.group_id);
    if !(1..=30 * 86_400).contains(&body.expires_in_secs) || !(1..=100_000).contains(&body.uses) {
        return Err(invalid(&state, &c, "enrolment_token.create", &target).await);
    }
    let group = state
        .db()
        .query_opt(
            "SELECT id FROM host_groups WHERE id = $1 AND org_id = $2",
            &[&body.group_id, &c.org],
        )
        .await?;
    if group.is_none() {
        return Err(not_found(&state, &c, "enrolment_token.create", &target).await);
    }
    let token = secret::token("vet_");
    let expires = SystemTime::now() + Duration::from_secs(body.expires_in_secs);
    let row = state
        .db()
        .query_one(
            "INSERT INTO enrolment_tokens (org_id, group_id, token_hash, expires_at, uses_left, created_by)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[&c.org, &body.group_id, &secret::digest(&token), &expires, &body.uses, &c.user],
        )
        .await?;
    let id: i64 = row.get(0);
    c.audit(
        &state,
        "enrolment_token.create",
        &format!("{id} ({target})"),
        "ok",
    )
    .await;
    Ok(Json(json!({
        "id": id,
        "token": token,
        "group_id": body.group_id,
        "expires_at": unix(expires),
        "uses": body.uses,
    })))
}

/// `POST /api/v1/orgs/{org}/enrolment-tokens/{token}/revoke`.
pub async fn revoke_enrolment_token(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
    Path((_, token)): Path<(String, String)>,
) -> Reply {
    update_by_id(
        &state,
        &c,
        "enrolment_token.revoke",
        &token,
        "UPDATE enrolment_tokens SET revoked = true WHERE id = $1 AND org_id = $2",
        &[&c.org],
    )
    .await?;
    c.audit(&state, "enrolment_token.revoke", &token, "ok")
        .await;
    Ok(Json(json!({ "ok": true })))
}

// ---- API tokens -----------------------------------------------------------------

/// `GET /api/v1/orgs/{org}/api-tokens`: the caller's own.
pub async fn list_api_tokens(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
) -> Reply {
    let rows = state
        .db()
        .query(
            "SELECT id, name, created_at, expires_at, revoked FROM api_tokens
             WHERE org_id = $1 AND user_id = $2 ORDER BY id",
            &[&c.org, &c.user],
        )
        .await?;
    let tokens: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.get::<_, i64>(0),
                "name": r.get::<_, String>(1),
                "created_at": unix(r.get(2)),
                "expires_at": unix_opt(r.get(3)),
                "revoked": r.get::<_, bool>(4),
            })
        })
        .collect();
    Ok(Json(json!({ "api_tokens": tokens })))
}

/// `POST /api/v1/orgs/{org}/api-tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApiToken {
    /// What it is for.
    pub name: String,
    /// Seconds until it expires (none: until revoked).
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
}

/// `POST /api/v1/orgs/{org}/api-tokens`: a token acting as the caller (with the
/// caller's role, as it is at each use), shown once.
pub async fn new_api_token(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
    JsonBody(body): JsonBody<NewApiToken>,
) -> Reply {
    if body::text(&body.name, 128).is_err()
        || body
            .expires_in_secs
            .is_some_and(|s| !(1..=366 * 86_400).contains(&s))
    {
        return Err(invalid(&state, &c, "api_token.create", "").await);
    }
    let token = secret::token("vat_");
    let expires = body
        .expires_in_secs
        .map(|s| SystemTime::now() + Duration::from_secs(s));
    let row = state
        .db()
        .query_one(
            "INSERT INTO api_tokens (org_id, user_id, name, token_hash, expires_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                &c.org,
                &c.user,
                &body.name,
                &secret::digest(&token),
                &expires,
            ],
        )
        .await?;
    let id: i64 = row.get(0);
    c.audit(
        &state,
        "api_token.create",
        &format!("{id} {}", body.name),
        "ok",
    )
    .await;
    Ok(Json(json!({
        "id": id,
        "name": body.name,
        "token": token,
        "expires_at": unix_opt(expires),
    })))
}

/// `POST /api/v1/orgs/{org}/api-tokens/{token}/revoke`: the caller's own.
pub async fn revoke_api_token(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
    Path((_, token)): Path<(String, String)>,
) -> Reply {
    update_by_id(
        &state,
        &c,
        "api_token.revoke",
        &token,
        "UPDATE api_tokens SET revoked = true WHERE id = $1 AND org_id = $2 AND user_id = $3",
        &[&c.org, &c.user],
    )
    .await?;
    c.audit(&state, "api_token.revoke", &token, "ok").await;
    Ok(Json(json!({ "ok": true })))
}

// ---- agents ---------------------------------------------------------------------

/// `GET /api/v1/orgs/{org}/agents`.
pub async fn list_agents(State(state): State<AppState>, Extension(c): Extension<Caller>) -> Reply {
    let rows = state
        .db()
        .query(
            "SELECT id, group_id, hostname, version, cert_serial, enrolled_at, last_seen,
                    revoked, stats, isolated
             FROM agents WHERE org_id = $1 ORDER BY enrolled_at, id",
            &[&c.org],
        )
        .await?;
    let agents: Vec<Value> = rows
        .iter()
        .map(|r| {
            let stats: String = r.get(8);
            json!({
                "id": r.get::<_, String>(0),
                "group_id": r.get::<_, i64>(1),
                "hostname": r.get::<_, String>(2),
                "version": r.get::<_, String>(3),
                "cert_serial": r.get::<_, String>(4),
                "enrolled_at": unix(r.get(5)),
                "last_seen": unix_opt(r.get(6)),
                "revoked": r.get::<_, bool>(7),
                "stats": serde_json::from_str::<Value>(&stats).unwrap_or(Value::Null),
                "isolated": r.get::<_, bool>(9),
            })
        })
        .collect();
    Ok(Json(json!({ "agents": agents })))
}

/// `POST /api/v1/orgs/{org}/agents/{agent}/revoke`: its certificate is refused from
/// now on and its open connections close.
pub async fn revoke_agent(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
    Path((_, agent)): Path<(String, String)>,
) -> Reply {
    let row = state
        .db()
        .query_opt(
            "UPDATE agents SET revoked = true WHERE id = $1 AND org_id = $2 RETURNING id",
            &[&agent, &c.org],
        )
        .await?;
    if row.is_none() {
        return Err(not_found(&state, &c, "agent.revoke", &agent).await);
    }
    state.revoke(Revocation::Agents(vec![agent.clone()]));
    c.audit(&state, "agent.revoke", &agent, "ok").await;
    Ok(Json(json!({ "ok": true })))
}

/// `POST /api/v1/orgs/{org}/agents/revoke-all`: every agent of the organisation and
/// every enrolment token it has.
pub async fn revoke_org_agents(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
) -> Reply {
    let n = state
        .db()
        .execute(
            "UPDATE agents SET revoked = true WHERE org_id = $1 AND NOT revoked",
            &[&c.org],
        )
        .await?;
    state
        .db()
        .execute(
            "UPDATE enrolment_tokens SET revoked = true WHERE org_id = $1",
            &[&c.org],
        )
        .await?;
    state.revoke(Revocation::Org(c.org));
    c.audit(&state, "agent.revoke_all", &format!("{n} agents"), "ok")
        .await;
    Ok(Json(json!({ "ok": true, "revoked": n })))
}

// ---- audit ----------------------------------------------------------------------

/// `GET /api/v1/orgs/{org}/audit?limit=N`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// At most this many entries, newest first (default 100, at most 1,000).
    pub limit: Option<i64>,
}

/// `GET /api/v1/orgs/{org}/audit`.
pub async fn audit_log(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Reply {
    let Ok(Query(q)) = query else {
        return Err(ApiError::BadRequest);
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest);
    }
    let rows = state
        .db()
        .query(
            "SELECT id, at, actor, action, target, source, result FROM audit_log
             WHERE org_id = $1 ORDER BY id DESC LIMIT $2",
            &[&c.org, &limit],
        )
        .await?;
    let entries: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.get::<_, i64>(0),
                "at": unix(r.get(1)),
                "actor": r.get::<_, String>(2),
                "action": r.get::<_, String>(3),
                "target": r.get::<_, String>(4),
                "source": r.get::<_, String>(5),
                "result": r.get::<_, String>(6),
            })
        })
        .collect();
    Ok(Json(json!({ "entries": entries })))
}

/// The ATT&CK technique uids a finding or incident names (`finding_info.attacks`,
/// `attacks`), each once, in order.
fn techniques(event: &str) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<Value>(event) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for list in [&v["finding_info"]["attacks"], &v["attacks"]] {
        for a in list.as_array().into_iter().flatten() {
            if let Some(t) = a["technique"]["uid"].as_str() {
                if !out.iter().any(|o| o == t) {
                    out.push(t.to_string());
                }
            }
        }
    }
    out
}

/// `GET /api/v1/orgs/{org}/findings`: the organisation's latest findings (100 at
/// most), newest first, with the host that made each, their assignee, techniques and
/// the number of notes on their incident.
pub async fn list_findings(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let rows = state
        .db()
        .query(
            "SELECT f.uid, f.agent_id, a.hostname, f.class_uid,
                    (extract(epoch FROM f.time) * 1000)::int8, f.severity_id, f.title,
                    f.story, f.status, f.assignee, f.event,
                    (SELECT count(*) FROM story_notes n
                     WHERE n.org_id = f.org_id AND n.story = f.story)
             FROM findings f JOIN agents a ON a.id = f.agent_id AND a.org_id = f.org_id
             WHERE f.org_id = $1 ORDER BY f.time DESC, f.uid LIMIT 100",
            &[&c.org],
        )
        .await?;
    let findings: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "uid": r.get::<_, String>(0),
                "agent_id": r.get::<_, String>(1),
                "hostname": r.get::<_, String>(2),
                "class_uid": r.get::<_, i32>(3),
                "time": r.get::<_, i64>(4),
                "severity_id": r.get::<_, i32>(5),
                "title": r.get::<_, String>(6),
                "story": r.get::<_, Option<String>>(7),
                "status": r.get::<_, String>(8),
                "assignee": r.get::<_, Option<String>>(9),
                "techniques": techniques(r.get::<_, &str>(10)),
                "notes": r.get::<_, i64>(11),
            })
        })
        .collect();
    Ok(Json(json!({ "findings": findings })))
}

/// `POST /api/v1/orgs/{org}/findings/{uid}/status`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingStatus {
    /// `new`, `in_progress`, `resolved` or `false_positive`.
    pub status: String,
}

/// Sets a finding's or incident's triage status (analysts and admins), audited.
pub async fn set_finding_status(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
    Path((_, uid)): Path<(String, String)>,
    JsonBody(body): JsonBody<FindingStatus>,
) -> Reply {
    let target = format!(
        "{} -> {}",
        uid.chars().take(128).collect::<String>(),
        body.status
    );
    let known = ["new", "in_progress", "resolved", "false_positive"];
    if !known.contains(&body.status.as_str()) || body::text(&uid, 512).is_err() {
        return Err(invalid(&state, &c, "finding.status", &target).await);
    }
    let row = state
        .db()
        .query_opt(
            "UPDATE findings SET status = $1 WHERE org_id = $2 AND uid = $3 RETURNING uid",
            &[&body.status, &c.org, &uid],
        )
        .await?;
    if row.is_none() {
        return Err(not_found(&state, &c, "finding.status", &target).await);
    }
    c.audit(&state, "finding.status", &target, "ok").await;
    Ok(Json(json!({ "uid": uid, "status": body.status })))
}

/// `GET /api/v1/orgs/{org}/stories/{story}`: a story's incident as the console shows
/// it: the process tree of its flagged branches (from the findings' lineage, built as
/// `vigil incidents` builds it), its techniques and findings, and the agent it is on.
pub async fn story(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
    Path((_, story)): Path<(String, String)>,
) -> Reply {
    let shown: String = story.chars().take(128).collect();
    if body::text(&story, 512).is_err() {
        return Err(not_found(&state, &c, "story.read", &shown).await);
    }
    let rows = state
        .db()
        .query(
            "SELECT f.event, f.agent_id, a.hostname, a.isolated
             FROM findings f JOIN agents a ON a.id = f.agent_id AND a.org_id = f.org_id
             WHERE f.org_id = $1 AND f.story = $2 ORDER BY f.time LIMIT 2000",
            &[&c.org, &story],
        )
        .await?;
    let Some(first) = rows.first() else {
        return Err(not_found(&state, &c, "story.read", &shown).await);
    };
    let mut incidents = vigil_detect::incidents::Incidents::new();
    for r in &rows {
        if let Ok(ev) = serde_json::from_str::<Value>(r.get::<_, &str>(0)) {
            incidents.add(&ev);
        }
    }
    let incident = incidents
        .incidents()
        .into_iter()
        .find(|i| i.story() == story)
        .map(|i| i.to_json())
        .unwrap_or(Value::Null);
    Ok(Json(json!({
        "story": story,
        "agent_id": first.get::<_, String>(1),
        "hostname": first.get::<_, String>(2),
        "isolated": first.get::<_, bool>(3),
        "incident": incident,
    })))
}

// ---- event search ---------------------------------------------------------------

/// `POST /api/v1/orgs/{org}/search`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The query: the pipe language (`process_activity | where ...`) or SQL.
    pub query: String,
    /// At most this many rows (1 to `search::MAX_ROWS`, default 200).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Runs a search over the caller's organisation's lake; audited (`search`, with the
/// query's start). A query the engine refuses is a 400 with its reason.
pub async fn search(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
    JsonBody(body): JsonBody<SearchRequest>,
) -> Result<Response, ApiError> {
    let shown: String = body.query.chars().take(200).collect();
    let limit = body.limit.unwrap_or(200);
    let bad = body::lines(&body.query, search::MAX_QUERY).is_err()
        || !(1..=search::MAX_ROWS).contains(&limit);
    if bad {
        c.audit(&state, "search", &shown, "invalid").await;
        return Err(ApiError::BadRequest);
    }
    let Some(engine) = state.settings().search.clone() else {
        return Err(ApiError::Unavailable(
            "no search engine in this server".into(),
        ));
    };
    let Some(dir) = state.lakes().org_dir(c.org) else {
        return Err(ApiError::Unavailable("no lake configured".into()));
    };
    // A bounded number at once (each takes a core while it runs): more is "try later".
    let Ok(permit) = state.searches().try_acquire_owned() else {
        c.audit(&state, "search", &shown, "denied: busy").await;
        return Err(ApiError::TooManyRequests);
    };
    let query = body.query.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    // A thread of its own: the engine runs its own runtime, which may not start inside
    // this one's workers.
    std::thread::Builder::new()
        .name("vigil-search".into())
        .spawn(move || {
            let found = if dir.is_dir() {
                engine.search(&dir, &query, limit, search::TIMEOUT)
            } else {
                // Nothing shipped yet: no rows, not an error.
                Ok(search::Found::default())
            };
            drop(permit);
            let _ = tx.send(found);
        })
        .map_err(|e| ApiError::Internal(format!("search thread: {e}")))?;
    let found = rx
        .await
        .map_err(|_| ApiError::Internal("the search thread ended without an answer".into()))?;
    match found {
        Ok(f) => {
            c.audit(&state, "search", &shown, "ok").await;
            Ok(Json(json!({
                "columns": f.columns,
                "rows": f.rows,
                "truncated": f.truncated,
                "sql": f.sql,
            }))
            .into_response())
        }
        Err(reason) => {
            c.audit(&state, "search", &shown, "invalid: query").await;
            let reason: String = reason.chars().take(2000).collect();
            Ok((
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": "bad_query", "message": reason })),
            )
                .into_response())
        }
    }
}
