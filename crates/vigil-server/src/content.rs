//! Staged content rollout: content bundles (the agent's format, `vigil content`)
//! uploaded by an admin, offered to a canary host group first, and to every other agent
//! of the organisation only once every canary has run the bundle, healthy, for the
//! rollout's canary time; halted by itself when a canary's health gets worse, and the
//! agents that took the bundle told to go back to what they ran before.
//!
//! * **Upload** (`POST /api/v1/orgs/{org}/content`, admin): `{"files": {PATH: TEXT}}`,
//!   the manifest `bundle.toml` among them. The manifest is checked here (version,
//!   every file listed with its SHA-256, nothing unlisted, paths inside the bundle's
//!   parts); the full check (rules compiled and tried, YARA timed, memory bound) is the
//!   agent's own, before it swaps anything in, as for a bundle applied by hand.
//! * **Rollout** (`POST /api/v1/orgs/{org}/rollouts`, admin): a bundle, a canary host
//!   group and a canary time. Its agents seen in the last [`LIVE_BEATS`] heartbeats are
//!   the canaries; every other agent of the organisation waits. One rollout at a time
//!   per organisation.
//! * **Delivery** rides on the heartbeat: its answer names the version to fetch
//!   (`GET /agent/v1/content/{version}`) or, after a halt, the version to leave; the
//!   agent reports what it runs, and what it refused, in its next heartbeats.
//! * **Health.** Each heartbeat of an agent running the bundle is held against its
//!   statistics when it started running it and when the rollout began: a refusal of the
//!   bundle, a restart of the agent (its start time changed), sensor losses growing past
//!   [`LOSS_MIN`] events and [`LOSS_SHARE`] of its events (and twice its own share
//!   before), CPU up by [`CPU_POINTS`] points of a core and twice its own before, or a
//!   canary silent for [`LIVE_BEATS`] heartbeats: the rollout is halted with the reason,
//!   audited, and goes no further.

use crate::auth::Caller;
use crate::body::{self, JsonBody};
use crate::error::ApiError;
use crate::state::{AgentIdentity, AppState};
use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::Digest;
use std::collections::BTreeMap;

/// The largest bundle accepted (its files' text, in bytes).
pub const MAX_BUNDLE: usize = 16 << 20;
/// The most files in a bundle.
pub const MAX_FILES: usize = 10_000;
/// Heartbeats a canary may miss before the rollout halts (and within which an agent
/// must have been seen to be a canary); 10 s at the least.
pub const LIVE_BEATS: u64 = 3;
/// Sensor losses (events) since a canary ran the bundle below which losses are not
/// held against it.
pub const LOSS_MIN: i64 = 100;
/// The share of a canary's events lost since it ran the bundle past which it is
/// unhealthy (when also twice its share before).
pub const LOSS_SHARE: f64 = 0.01;
/// Points of a core a canary's CPU may grow by (when also twice what it was).
pub const CPU_POINTS: f64 = 10.0;
/// The shortest stretch of time (ms) over which a canary's CPU is judged.
const CPU_WINDOW_MS: i64 = 5_000;

/// The manifest, as far as the server reads it (the agent's `content::Manifest`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    version: String,
    #[serde(default)]
    description: String,
    files: BTreeMap<String, String>,
}

/// `POST /api/v1/orgs/{org}/content`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upload {
    /// Every file of the bundle by its path inside it, the manifest included.
    pub files: BTreeMap<String, String>,
}

/// Whether `v` is a bundle version: 1 to 64 of letters, digits, `.`, `_`, `-`, not
/// starting with `.`.
pub fn valid_version(v: &str) -> bool {
    (1..=64).contains(&v.len())
        && !v.starts_with('.')
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether `p` may name a file of a bundle: the manifest, the policy, or a file under
/// one of its parts, with plain components only.
fn valid_path(p: &str) -> bool {
    if p == "bundle.toml" || p == "policy.toml" {
        return true;
    }
    let mut parts = p.split('/');
    let top = parts.next().unwrap_or("");
    let rest: Vec<&str> = parts.collect();
    ["sigma", "yara", "intel"].contains(&top)
        && !rest.is_empty()
        && p.len() <= 256
        && rest.iter().all(|c| {
            !c.is_empty()
                && *c != "."
                && *c != ".."
                && !c.chars().any(|ch| ch.is_control() || ch == '\\')
        })
}

/// Checks an uploaded bundle; its manifest, or why it is refused (for the audit log).
fn check(files: &BTreeMap<String, String>) -> Result<Manifest, String> {
    if files.is_empty() || files.len() > MAX_FILES {
        return Err(format!("{} files (1 to {MAX_FILES})", files.len()));
    }
    let size: usize = files.values().map(String::len).sum();
    if size > MAX_BUNDLE {
        return Err(format!("{size} bytes (at most {MAX_BUNDLE})"));
    }
    if let Some(bad) = files.keys().find(|p| !valid_path(p)) {
        return Err(format!(
            "path {:?} is not a bundle's",
            bad.chars().take(64).collect::<String>()
        ));
    }
    let text = files.get("bundle.toml").ok_or("no bundle.toml")?;
    let m: Manifest = toml::from_str(text).map_err(|e| format!("bundle.toml: {}", e.message()))?;
    if !valid_version(&m.version) {
        return Err("bundle.toml: the version is not 1-64 letters, digits, '.', '_', '-'".into());
    }
    if body::text(&m.description, 1024).is_err() && !m.description.is_empty() {
        return Err("bundle.toml: the description".into());
    }
    for (path, text) in files.iter().filter(|(p, _)| *p != "bundle.toml") {
        let want = m
            .files
            .get(path)
            .ok_or_else(|| format!("{path} is not in bundle.toml"))?;
        let got = hex(&sha2::Sha256::digest(text.as_bytes()));
        if !want.eq_ignore_ascii_case(&got) {
            return Err(format!("{path}: its SHA-256 is not bundle.toml's"));
        }
    }
    if let Some(missing) = m.files.keys().find(|p| !files.contains_key(*p)) {
        return Err(format!("{missing} is in bundle.toml but not in the upload"));
    }
    Ok(m)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Uploads a bundle; audited as `content.upload`.
pub async fn upload(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
    JsonBody(body): JsonBody<Upload>,
) -> Result<Json<Value>, ApiError> {
    let m = match check(&body.files) {
        Ok(m) => m,
        Err(why) => {
            c.audit(
                &state,
                "content.upload",
                "a bundle",
                &format!("invalid: {why}"),
            )
            .await;
            return Err(ApiError::BadRequest);
        }
    };
    let bytes: usize = body.files.values().map(String::len).sum();
    let files = json!({ "files": body.files }).to_string();
    let row = state
        .db()
        .query_opt(
            "INSERT INTO content_bundles (org_id, version, description, files, bytes, uploaded_by)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (org_id, version) DO NOTHING RETURNING id",
            &[
                &c.org,
                &m.version,
                &m.description,
                &files,
                &(bytes as i64),
                &c.actor(),
            ],
        )
        .await?;
    let target = format!("bundle {}", m.version);
    let Some(row) = row else {
        c.audit(&state, "content.upload", &target, "conflict").await;
        return Err(ApiError::Conflict);
    };
    let id: i64 = row.get(0);
    c.audit(
        &state,
        "content.upload",
        &format!("{target} ({} files, {bytes} bytes)", body.files.len()),
        "ok",
    )
    .await;
    Ok(Json(
        json!({ "id": id, "version": m.version, "files": body.files.len(), "bytes": bytes }),
    ))
}

/// The organisation's bundles, newest first.
pub async fn list(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let rows = state
        .db()
        .query(
            "SELECT id, version, description, bytes, uploaded_by,
                    (extract(epoch FROM uploaded_at) * 1000)::int8
             FROM content_bundles WHERE org_id = $1 ORDER BY id DESC LIMIT 200",
            &[&c.org],
        )
        .await?;
    let bundles: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.get::<_, i64>(0),
                "version": r.get::<_, String>(1),
                "description": r.get::<_, String>(2),
                "bytes": r.get::<_, i64>(3),
                "uploaded_by": r.get::<_, String>(4),
                "uploaded_at": r.get::<_, i64>(5),
            })
        })
        .collect();
    Ok(Json(json!({ "bundles": bundles })))
}

/// `POST /api/v1/orgs/{org}/rollouts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRollout {
    /// The bundle's version.
    pub version: String,
    /// The canary host group's name.
    pub canary_group: String,
    /// Seconds every canary must run the bundle, healthy, before the rest get it (1 s
    /// to 7 days; 600 by default).
    #[serde(default = "default_canary_secs")]
    pub canary_secs: i32,
}

fn default_canary_secs() -> i32 {
    600
}

/// How long without a heartbeat makes an agent silent, in seconds.
fn live_secs(state: &AppState) -> f64 {
    // At least 10 s: with heartbeats every second, a busy host's late beat is not an
    // agent gone.
    (state.settings().heartbeat_secs * LIVE_BEATS).max(10) as f64
}

/// Starts a rollout; audited as `content.rollout`.
pub async fn start(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
    JsonBody(body): JsonBody<NewRollout>,
) -> Result<Json<Value>, ApiError> {
    let target = format!(
        "bundle {} to canary group {}",
        body.version.chars().take(64).collect::<String>(),
        body.canary_group.chars().take(128).collect::<String>()
    );
    if !valid_version(&body.version)
        || body::text(&body.canary_group, 128).is_err()
        || !(1..=7 * 86_400).contains(&body.canary_secs)
    {
        c.audit(&state, "content.rollout", &target, "invalid").await;
        return Err(ApiError::BadRequest);
    }
    let db = state.db();
    let found = db
        .query_opt(
            "SELECT b.id, g.id FROM content_bundles b, host_groups g
             WHERE b.org_id = $1 AND b.version = $2 AND g.org_id = $1 AND g.name = $3",
            &[&c.org, &body.version, &body.canary_group],
        )
        .await?;
    let Some(found) = found else {
        c.audit(&state, "content.rollout", &target, "not_found")
            .await;
        return Err(ApiError::NotFound);
    };
    let (bundle, group): (i64, i64) = (found.get(0), found.get(1));
    let live = live_secs(&state);
    let rollout = db
        .query_opt(
            "INSERT INTO rollouts (org_id, bundle_id, canary_group, canary_secs, created_by)
             SELECT $1, $2, $3, $4, $5
             WHERE EXISTS (SELECT 1 FROM agents WHERE org_id = $1 AND group_id = $3
                           AND NOT revoked
                           AND last_seen > now() - make_interval(secs => $6))
             ON CONFLICT DO NOTHING
             RETURNING id",
            &[
                &c.org,
                &bundle,
                &group,
                &body.canary_secs,
                &c.actor(),
                &live,
            ],
        )
        .await?;
    let Some(rollout) = rollout else {
        // Another rollout under way, or no live canary.
        let busy = db
            .query_opt(
                "SELECT 1 FROM rollouts WHERE org_id = $1 AND state IN ('canary', 'rollout')",
                &[&c.org],
            )
            .await?
            .is_some();
        c.audit(
            &state,
            "content.rollout",
            &target,
            if busy {
                "conflict"
            } else {
                "invalid: no canary seen lately"
            },
        )
        .await;
        return Err(if busy {
            ApiError::Conflict
        } else {
            ApiError::BadRequest
        });
    };
    let id: i64 = rollout.get(0);
    let n = db
        .execute(
            "INSERT INTO rollout_agents (rollout_id, agent_id, canary, baseline, before)
             SELECT $1, id,
                    group_id = $3 AND last_seen > now() - make_interval(secs => $4),
                    stats, COALESCE(stats::jsonb ->> 'content_version', '')
             FROM agents WHERE org_id = $2 AND NOT revoked",
            &[&id, &c.org, &group, &live],
        )
        .await?;
    c.audit(
        &state,
        "content.rollout",
        &format!("{target} (rollout {id}, {n} agents)"),
        "ok",
    )
    .await;
    Ok(Json(json!({ "id": id, "state": "canary", "agents": n })))
}

/// The organisation's rollouts, newest first, with their agents' states.
pub async fn rollouts(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let db = state.db();
    let rows = db
        .query(
            "SELECT r.id, b.version, g.name, r.canary_secs, r.state, r.reason, r.created_by,
                    (extract(epoch FROM r.created_at) * 1000)::int8,
                    (extract(epoch FROM r.finished_at) * 1000)::int8
             FROM rollouts r JOIN content_bundles b ON b.id = r.bundle_id
                             JOIN host_groups g ON g.id = r.canary_group
             WHERE r.org_id = $1 ORDER BY r.id DESC LIMIT 50",
            &[&c.org],
        )
        .await?;
    let mut out = Vec::new();
    for r in &rows {
        let id: i64 = r.get(0);
        let agents = db
            .query(
                "SELECT ra.agent_id, a.hostname, ra.canary, ra.state, ra.detail, ra.before
                 FROM rollout_agents ra JOIN agents a ON a.id = ra.agent_id
                 WHERE ra.rollout_id = $1 ORDER BY ra.canary DESC, a.hostname",
                &[&id],
            )
            .await?;
        out.push(json!({
            "id": id,
            "version": r.get::<_, String>(1),
            "canary_group": r.get::<_, String>(2),
            "canary_secs": r.get::<_, i32>(3),
            "state": r.get::<_, String>(4),
            "reason": r.get::<_, String>(5),
            "created_by": r.get::<_, String>(6),
            "created_at": r.get::<_, i64>(7),
            "finished_at": r.get::<_, Option<i64>>(8),
            "agents": agents.iter().map(|a| json!({
                "agent": a.get::<_, String>(0),
                "hostname": a.get::<_, String>(1),
                "canary": a.get::<_, bool>(2),
                "state": a.get::<_, String>(3),
                "detail": a.get::<_, String>(4),
                "before": a.get::<_, String>(5),
            })).collect::<Vec<_>>(),
        }));
    }
    Ok(Json(json!({ "rollouts": out })))
}

/// Halts a rollout by hand; audited as `content.rollout.halt`.
pub async fn halt_request(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
    Path((_, rollout)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id = body::id(&rollout)?;
    let reason = format!("halted by {}", c.actor());
    let n = state
        .db()
        .execute(
            "UPDATE rollouts SET state = 'halted', reason = $3, finished_at = now()
             WHERE id = $1 AND org_id = $2 AND state IN ('canary', 'rollout')",
            &[&id, &c.org, &reason],
        )
        .await?;
    let target = format!("rollout {id}");
    if n == 0 {
        c.audit(&state, "content.rollout.halt", &target, "not_found")
            .await;
        return Err(ApiError::NotFound);
    }
    c.audit(&state, "content.rollout.halt", &target, "ok").await;
    Ok(Json(json!({ "id": id, "state": "halted" })))
}

/// `GET /agent/v1/content/{version}`: a bundle offered to this agent.
pub async fn fetch(
    State(state): State<AppState>,
    Extension(agent): Extension<AgentIdentity>,
    Path(version): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !valid_version(&version) {
        return Err(ApiError::NotFound);
    }
    let row = state
        .db()
        .query_opt(
            "SELECT b.files FROM content_bundles b
             WHERE b.org_id = $1 AND b.version = $2
               AND EXISTS (SELECT 1 FROM rollouts r JOIN rollout_agents ra ON ra.rollout_id = r.id
                           WHERE r.bundle_id = b.id AND ra.agent_id = $3)",
            &[&agent.org, &version, &agent.id],
        )
        .await?
        .ok_or(ApiError::NotFound)?;
    let files: Value = serde_json::from_str(&row.get::<_, String>(0))
        .map_err(|e| ApiError::Internal(format!("bundle {version}: {e}")))?;
    Ok(Json(json!({ "version": version, "files": files["files"] })))
}

/// A number of a heartbeat's statistics.
fn num(stats: &Map<String, Value>, key: &str) -> Option<i64> {
    stats.get(key).and_then(Value::as_i64)
}

fn parse(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Why an agent running the bundle is unhealthy now, held against its statistics when
/// it began running it (`at_run`) and when the rollout began (`baseline`); `None`:
/// healthy, as far as these say.
pub fn unhealthy(
    baseline: &Map<String, Value>,
    at_run: &Map<String, Value>,
    now: &Map<String, Value>,
) -> Option<String> {
    let started = |m: &Map<String, Value>| num(m, "agent_started_ms");
    if let (Some(a), Some(b)) = (started(at_run), started(now)) {
        if a != b {
            return Some("the agent restarted".into());
        }
    }
    let delta = |k: &str| Some(num(now, k)? - num(at_run, k)?);
    if let (Some(lost), Some(recv)) = (delta("sensor_lost"), delta("sensor_received")) {
        let share = lost as f64 / (lost + recv).max(1) as f64;
        let before = num(baseline, "sensor_lost").unwrap_or(0) as f64
            / (num(baseline, "sensor_lost").unwrap_or(0)
                + num(baseline, "sensor_received").unwrap_or(0))
            .max(1) as f64;
        if lost > LOSS_MIN && share > LOSS_SHARE && share > 2.0 * before {
            return Some(format!(
                "sensor losses grew: {lost} events ({:.1}% of its events, {:.1}% before)",
                share * 100.0,
                before * 100.0
            ));
        }
    }
    if let (Some(cpu), Some(wall)) = (delta("cpu_ms"), delta("sent_ms")) {
        let base_wall = num(baseline, "sent_ms")
            .zip(num(baseline, "agent_started_ms"))
            .map(|(s, a)| s - a);
        if wall >= CPU_WINDOW_MS {
            let after = 100.0 * cpu as f64 / wall as f64;
            let before = match (num(baseline, "cpu_ms"), base_wall) {
                (Some(c), Some(w)) if w > 0 => 100.0 * c as f64 / w as f64,
                _ => 0.0,
            };
            if after > before + CPU_POINTS && after > 2.0 * before {
                return Some(format!(
                    "CPU grew: {after:.1}% of a core ({before:.1}% before)"
                ));
            }
        }
    }
    None
}

/// The rollout an agent's heartbeat is about: the organisation's latest.
struct Rollout {
    id: i64,
    version: String,
    state: String,
    canary_secs: i32,
}

/// Halts `r` for `reason` (if it is still under way: a complete rollout is not halted,
/// nor judged); audited.
async fn halt(state: &AppState, org: i64, r: &Rollout, reason: &str) -> Result<(), ApiError> {
    let n = state
        .db()
        .execute(
            "UPDATE rollouts SET state = 'halted', reason = $2, finished_at = now()
             WHERE id = $1 AND state IN ('canary', 'rollout')",
            &[&r.id, &reason],
        )
        .await?;
    if n > 0 {
        tracing::warn!(org, rollout = r.id, version = %r.version, "content rollout halted: {reason}");
        crate::db::audit(
            &state.db(),
            &crate::db::Audit {
                org: Some(org),
                actor: "vigil server",
                action: "content.rollout.halt",
                target: &format!("rollout {} (bundle {})", r.id, r.version),
                source: "local",
                result: reason,
            },
        )
        .await;
    }
    Ok(())
}

/// What a heartbeat's answer says about content: the rollout's bookkeeping for this
/// agent and its statistics (`stats`), the rollout moved on or halted as they say, and
/// then `{"version": V}` to fetch and run, `{"leave": V}` to go back from, or nothing.
pub async fn on_heartbeat(
    state: &AppState,
    agent: &AgentIdentity,
    host: &str,
    stats: &Map<String, Value>,
) -> Result<Option<Value>, ApiError> {
    let db = state.db();
    let Some(r) = db
        .query_opt(
            "SELECT r.id, b.version, r.state, r.canary_secs FROM rollouts r
             JOIN content_bundles b ON b.id = r.bundle_id
             WHERE r.org_id = $1 ORDER BY r.id DESC LIMIT 1",
            &[&agent.org],
        )
        .await?
    else {
        return Ok(None);
    };
    let mut r = Rollout {
        id: r.get(0),
        version: r.get(1),
        state: r.get(2),
        canary_secs: r.get(3),
    };
    let select = "SELECT canary, state, baseline, at_run FROM rollout_agents
                  WHERE rollout_id = $1 AND agent_id = $2";
    let mut row = db.query_opt(select, &[&r.id, &agent.id]).await?;
    if row.is_none() && r.state != "halted" {
        // An agent enrolled since the rollout began: one of the rest (never a canary),
        // so that a new host runs what the fleet runs.
        let stats_text = Value::Object(stats.clone()).to_string();
        let before = stats
            .get("content_version")
            .and_then(Value::as_str)
            .unwrap_or("");
        db.execute(
            "INSERT INTO rollout_agents (rollout_id, agent_id, canary, baseline, before)
             VALUES ($1, $2, false, $3, $4) ON CONFLICT DO NOTHING",
            &[&r.id, &agent.id, &stats_text, &before],
        )
        .await?;
        row = db.query_opt(select, &[&r.id, &agent.id]).await?;
    }
    let Some(row) = row else {
        return Ok(None);
    };
    let canary: bool = row.get(0);
    let mut mine: String = row.get(1);
    let baseline = parse(&row.get::<_, String>(2));
    let runs = stats.get("content_version").and_then(Value::as_str) == Some(r.version.as_str());
    let refused = stats
        .get("content_refused")
        .and_then(Value::as_str)
        .filter(|s| {
            s.strip_prefix(r.version.as_str())
                .is_some_and(|t| t.starts_with(':'))
        });
    let now_text = Value::Object(stats.clone()).to_string();
    let who = if canary { "canary" } else { "agent" };
    if r.state != "halted" {
        if let Some(why) = refused.filter(|_| mine != "refused") {
            mine = "refused".into();
            db.execute(
                "UPDATE rollout_agents SET state = 'refused', detail = $3
                 WHERE rollout_id = $1 AND agent_id = $2",
                &[
                    &r.id,
                    &agent.id,
                    &why.chars().take(2048).collect::<String>(),
                ],
            )
            .await?;
            halt(
                state,
                agent.org,
                &r,
                &format!("{who} {host} refused the bundle: {why}"),
            )
            .await?;
        } else if runs && mine != "running" {
            mine = "running".into();
            db.execute(
                "UPDATE rollout_agents SET state = 'running', at_run = $3, running_at = now()
                 WHERE rollout_id = $1 AND agent_id = $2",
                &[&r.id, &agent.id, &now_text],
            )
            .await?;
        } else if runs && r.state != "complete" {
            let at_run = parse(&row.get::<_, Option<String>>(3).unwrap_or_default());
            if let Some(why) = unhealthy(&baseline, &at_run, stats) {
                db.execute(
                    "UPDATE rollout_agents SET detail = $3 WHERE rollout_id = $1 AND agent_id = $2",
                    &[&r.id, &agent.id, &why],
                )
                .await?;
                halt(
                    state,
                    agent.org,
                    &r,
                    &format!("{who} {host} running the bundle: {why}"),
                )
                .await?;
            }
        }
        if r.state != "complete" {
            advance(state, agent.org, &r).await?;
            r.state = db
                .query_one("SELECT state FROM rollouts WHERE id = $1", &[&r.id])
                .await?
                .get(0);
        }
    }
    if r.state == "halted" {
        if !runs && (mine == "offered" || mine == "running") {
            db.execute(
                "UPDATE rollout_agents SET state = 'back' WHERE rollout_id = $1 AND agent_id = $2",
                &[&r.id, &agent.id],
            )
            .await?;
            return Ok(None);
        }
        return Ok(runs.then(|| json!({ "leave": r.version })));
    }
    let offer = (r.state == "canary" && canary) || r.state == "rollout" || r.state == "complete";
    if offer && mine == "waiting" {
        db.execute(
            "UPDATE rollout_agents SET state = 'offered' WHERE rollout_id = $1 AND agent_id = $2",
            &[&r.id, &agent.id],
        )
        .await?;
        mine = "offered".into();
    }
    Ok((mine == "offered").then(|| json!({ "version": r.version })))
}

/// Moves a rollout on: canaries silent for too long halt it; when every canary runs the
/// bundle, the canary time starts; when it is over, the rest are offered it; when every
/// agent runs it, it is complete.
async fn advance(state: &AppState, org: i64, r: &Rollout) -> Result<(), ApiError> {
    let db = state.db();
    let live = live_secs(state);
    if r.state == "canary" {
        let silent = db
            .query_opt(
                "SELECT a.hostname FROM rollout_agents ra JOIN agents a ON a.id = ra.agent_id
                 WHERE ra.rollout_id = $1 AND ra.canary
                   AND (a.last_seen IS NULL OR a.last_seen < now() - make_interval(secs => $2))
                 LIMIT 1",
                &[&r.id, &live],
            )
            .await?;
        if let Some(s) = silent {
            let host: String = s.get(0);
            return halt(state, org, r, &format!("canary {host} went silent")).await;
        }
        db.execute(
            "UPDATE rollouts SET canaries_at = now()
             WHERE id = $1 AND state = 'canary' AND canaries_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM rollout_agents
                               WHERE rollout_id = $1 AND canary AND state <> 'running')",
            &[&r.id],
        )
        .await?;
        let n = db
            .execute(
                "UPDATE rollouts SET state = 'rollout'
                 WHERE id = $1 AND state = 'canary'
                   AND canaries_at <= now() - make_interval(secs => $2)",
                &[&r.id, &f64::from(r.canary_secs)],
            )
            .await?;
        if n > 0 {
            tracing::info!(org, rollout = r.id, version = %r.version, "content rollout: the canaries are healthy; every agent is offered the bundle");
        }
    }
    db.execute(
        "UPDATE rollouts SET state = 'complete', finished_at = now()
         WHERE id = $1 AND state = 'rollout'
           AND NOT EXISTS (SELECT 1 FROM rollout_agents WHERE rollout_id = $1 AND state <> 'running')",
        &[&r.id],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(extra: &[(&str, &str)], manifest_extra: &str) -> BTreeMap<String, String> {
        let rule = "title: t\n";
        let mut m = format!(
            "version = \"v1\"\n\n[files]\n\"sigma/a.yml\" = \"{}\"\n{manifest_extra}",
            hex(&sha2::Sha256::digest(rule.as_bytes()))
        );
        if manifest_extra.contains("NOFILES") {
            m = "version = \"v1\"\n".into();
        }
        let mut f = BTreeMap::from([
            ("bundle.toml".to_string(), m),
            ("sigma/a.yml".to_string(), rule.to_string()),
        ]);
        for (p, t) in extra {
            f.insert((*p).to_string(), (*t).to_string());
        }
        f
    }

    #[test]
    fn a_bundle_is_checked_against_its_manifest() {
        assert_eq!(check(&files(&[], "")).expect("good").version, "v1");
        // A file not in the manifest, a changed file, a listed file missing, a path
        // out of the bundle's parts, no manifest.
        assert!(check(&files(&[("sigma/b.yml", "x")], "")).is_err());
        let mut changed = files(&[], "");
        changed.insert("sigma/a.yml".into(), "title: u\n".into());
        assert!(check(&changed).unwrap_err().contains("SHA-256"));
        assert!(check(&files(&[], "\"yara/x.yar\" = \"00\"\n"))
            .unwrap_err()
            .contains("not in the upload"));
        for bad in [
            "../etc/passwd",
            "sigma/../../x",
            "sigma/",
            "other/x",
            "/sigma/x",
            "sigma/a\\b",
        ] {
            let mut f = files(&[], "");
            f.insert(bad.into(), "x".into());
            assert!(check(&f).unwrap_err().contains("path"), "{bad}");
        }
        let mut none = files(&[], "");
        none.remove("bundle.toml");
        assert!(check(&none).is_err());
        assert!(check(&files(&[], "NOFILES")).is_err());
    }

    fn m(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn health_is_held_against_the_agent_itself() {
        let base = m(
            json!({"agent_started_ms": 1000, "sent_ms": 101_000, "cpu_ms": 2000,
                             "sensor_lost": 0, "sensor_received": 10_000}),
        );
        let at = m(
            json!({"agent_started_ms": 1000, "sent_ms": 200_000, "cpu_ms": 4000,
                           "sensor_lost": 0, "sensor_received": 20_000}),
        );
        // 2% of a core before; the same after: healthy.
        let same = m(
            json!({"agent_started_ms": 1000, "sent_ms": 210_000, "cpu_ms": 4200,
                             "sensor_lost": 5, "sensor_received": 21_000}),
        );
        assert_eq!(unhealthy(&base, &at, &same), None);
        let restarted = m(json!({"agent_started_ms": 205_000, "sent_ms": 210_000}));
        assert!(unhealthy(&base, &at, &restarted)
            .expect("restart")
            .contains("restarted"));
        let lossy = m(
            json!({"agent_started_ms": 1000, "sent_ms": 210_000, "cpu_ms": 4200,
                              "sensor_lost": 500, "sensor_received": 21_000}),
        );
        assert!(unhealthy(&base, &at, &lossy)
            .expect("losses")
            .contains("losses"));
        let hot = m(
            json!({"agent_started_ms": 1000, "sent_ms": 210_000, "cpu_ms": 7000,
                            "sensor_lost": 0, "sensor_received": 21_000}),
        );
        assert!(unhealthy(&base, &at, &hot).expect("cpu").contains("CPU"));
        // Too short a stretch to judge CPU by.
        let early = m(json!({"agent_started_ms": 1000, "sent_ms": 201_000, "cpu_ms": 4900}));
        assert_eq!(unhealthy(&base, &at, &early), None);
    }
}
