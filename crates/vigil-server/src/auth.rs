//! Access: passwords (Argon2id), login with TOTP, sessions (cookie) and API tokens
//! (Bearer), CSRF, roles, and the guard every route passes through.
//!
//! **CSRF**: a synchronizer token. Login returns a random `csrf_token` stored with the
//! session; every state-changing request (any method but GET and HEAD) authenticated by
//! the session cookie must carry it in `X-CSRF-Token`. A forged cross-site request
//! carries the cookie (were SameSite=Strict bypassed) but cannot read the token. API
//! tokens are sent by scripts in `Authorization`, which a browser never adds by itself,
//! so they need no CSRF token.

use crate::body::{self, JsonBody};
use crate::db::Audit;
use crate::error::ApiError;
use crate::secret;
use crate::state::{AppState, ConnInfo};
use crate::totp;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// The session cookie (the `__Host-` prefix: Secure, Path=/, no Domain, enforced by
/// browsers).
pub const SESSION_COOKIE: &str = "__Host-vigil_session";
/// The CSRF header.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A user's role; each includes the rights of those below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads.
    Viewer,
    /// Reads and triages.
    Analyst,
    /// Everything in its organisation: users, tokens, agents, the audit log.
    Admin,
}

impl Role {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }

    /// The role of a stored name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "analyst" => Some(Role::Analyst),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Who a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (login, enrolment: they check their own secret).
    Public,
    /// An agent over mutual TLS.
    Agent,
    /// A signed-in user with at least this role, on routes about the caller.
    User(Role),
    /// A signed-in user with at least this role, of the organisation in the path
    /// (`/api/v1/orgs/{org}/...`).
    Org(Role),
}

/// How the caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A session cookie (the session's id and CSRF token).
    Session {
        /// The session id.
        id: i64,
        /// Its CSRF token.
        csrf: String,
    },
    /// An API token (its id).
    Token(i64),
}

/// The authenticated caller of a route.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user id.
    pub user: i64,
    /// The user name.
    pub name: String,
    /// The organisation.
    pub org: i64,
    /// The role.
    pub role: Role,
    /// Session or token.
    pub via: Via,
    /// Whether the user must change the one-time password first.
    pub must_change_password: bool,
    /// The peer's address.
    pub source: String,
}

impl Caller {
    /// The actor recorded in the audit log.
    pub fn actor(&self) -> String {
        match self.via {
            Via::Session { .. } => format!("user:{}", self.name),
            Via::Token(id) => format!("user:{} token:{id}", self.name),
        }
    }

    /// Writes an audit entry for this caller in its organisation.
    pub async fn audit(&self, state: &AppState, action: &str, target: &str, result: &str) {
        state
            .audit(Audit {
                org: Some(self.org),
                actor: &self.actor(),
                action,
                target,
                source: &self.source,
                result,
            })
            .await;
    }
}

/// Hashes a password with Argon2id (the PHC string, salt included), off the runtime's
/// threads.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(&secret::random::<16>())
            .map_err(|e| ApiError::Internal(format!("salt: {e}")))?;
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::Internal(format!("argon2: {e}")))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("hashing task: {e}")))?
}

/// Checks a password against its stored hash, off the runtime's threads.
pub async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        match PasswordHash::new(&hash) {
            Ok(parsed) => argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    })
    .await
    .unwrap_or(false)
}

/// A hash no password matches, verified for unknown users so that they take as long as
/// known ones (no user enumeration by timing).
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Y2Fubm90IG1hdGNoIGFueXRoaW5nIGF0IGFsbA";

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Authenticates a request by its session cookie or its Bearer token.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    source: String,
) -> Result<Caller, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(token) = bearer {
        let row = state
            .db()
            .query_opt(
                "SELECT t.id, u.org_id, u.id, u.name, u.role, u.must_change_password
                 FROM api_tokens t JOIN users u ON u.id = t.user_id AND u.org_id = t.org_id
                 WHERE t.token_hash = $1 AND NOT t.revoked AND NOT u.disabled
                   AND (t.expires_at IS NULL OR t.expires_at > now())",
                &[&secret::digest(token.trim())],
            )
            .await?
            .ok_or(ApiError::Unauthorized)?;
        return Ok(Caller {
            via: Via::Token(row.get(0)),
            org: row.get(1),
            user: row.get(2),
            name: row.get(3),
            role: Role::parse(row.get(4)).ok_or(ApiError::Unauthorized)?,
            must_change_password: row.get(5),
            source,
        });
    }
    let token = cookie_value(headers, SESSION_COOKIE).ok_or(ApiError::Unauthorized)?;
    let row = state
        .db()
        .query_opt(
            "SELECT s.id, s.csrf_token, u.org_id, u.id, u.name, u.role, u.must_change_password
             FROM sessions s JOIN users u ON u.id = s.user_id AND u.org_id = s.org_id
             WHERE s.token_hash = $1 AND NOT s.revoked AND s.expires_at > now()
               AND NOT u.disabled",
            &[&secret::digest(token)],
        )
        .await?
        .ok_or(ApiError::Unauthorized)?;
    Ok(Caller {
        via: Via::Session {
            id: row.get(0),
            csrf: row.get(1),
        },
        org: row.get(2),
        user: row.get(3),
        name: row.get(4),
        role: Role::parse(row.get(5)).ok_or(ApiError::Unauthorized)?,
        must_change_password: row.get(6),
        source,
    })
}

/// The organisation id of an `/api/v1/orgs/{org}/...` path.
fn path_org(path: &str) -> Option<i64> {
    let rest = path.strip_prefix("/api/v1/orgs/")?;
    let org = rest.split('/').next()?;
    body::id(org).ok()
}

/// Routes a user may call before changing a one-time password.
const BEFORE_PASSWORD_CHANGE: &[&str] = &[
    "GET /api/v1/me",
    "POST /api/v1/me/password",
    "POST /api/v1/logout",
];

fn clip(s: &str) -> &str {
    match s.char_indices().nth(512) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The guard in front of every route: authenticates, checks CSRF, the password state,
/// the organisation in the path and the role; a refusal is answered without detail and
/// written to the audit log. The caller (or agent) goes to the handler as an extension.
pub async fn guard(
    State((state, access)): State<(AppState, Access)>,
    mut req: Request,
    next: Next,
) -> Response {
    let conn = req
        .extensions()
        .get::<ConnInfo>()
        .cloned()
        .unwrap_or_default();
    let source = conn.source();
    let action = format!(
        "{} {}",
        req.method(),
        req.extensions()
            .get::<MatchedPath>()
            .map(|m| m.as_str())
            .unwrap_or("?")
    );
    let path = req.uri().path().to_string();
    let refuse = |org: Option<i64>, actor: String, result: &'static str, err: ApiError| {
        let state = state.clone();
        let action = action.clone();
        let path = path.clone();
        let source = source.clone();
        async move {
            state
                .audit(Audit {
                    org,
                    actor: &actor,
                    action: &action,
                    target: clip(&path),
                    source: &source,
                    result,
                })
                .await;
            err.into_response()
        }
    };
    let role = match access {
        Access::Public => return next.run(req).await,
        Access::Agent => {
            return match conn.agent {
                Some(agent) => {
                    req.extensions_mut().insert(agent);
                    next.run(req).await
                }
                None => refuse(None, "anonymous".into(), "denied", ApiError::Unauthorized).await,
            };
        }
        Access::User(role) | Access::Org(role) => role,
    };
    let caller = match authenticate(&state, req.headers(), source.clone()).await {
        Ok(c) => c,
        Err(ApiError::Unauthorized) => {
            return refuse(None, "anonymous".into(), "denied", ApiError::Unauthorized).await
        }
        Err(e) => return e.into_response(),
    };
    let safe = matches!(*req.method(), Method::GET | Method::HEAD);
    if let (false, Via::Session { csrf, .. }) = (safe, &caller.via) {
        let given = req
            .headers()
            .get(CSRF_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !secret::equal(given, csrf.as_bytes()) {
            return refuse(
                Some(caller.org),
                caller.actor(),
                "denied: csrf",
                ApiError::Forbidden,
            )
            .await;
        }
    }
    if caller.must_change_password && !BEFORE_PASSWORD_CHANGE.contains(&action.as_str()) {
        return refuse(
            Some(caller.org),
            caller.actor(),
            "denied: password change required",
            ApiError::PasswordChangeRequired,
        )
        .await;
    }
    if let Access::Org(_) = access {
        if path_org(&path) != Some(caller.org) {
            return refuse(
                Some(caller.org),
                caller.actor(),
                "not_found: organisation",
                ApiError::NotFound,
            )
            .await;
        }
    }
    if caller.role < role {
        return refuse(
            Some(caller.org),
            caller.actor(),
            "denied: role",
            ApiError::Forbidden,
        )
        .await;
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// `POST /api/v1/login`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
    /// The current TOTP code.
    pub totp: String,
}

/// The login's answer (the session itself is in the cookie).
#[derive(Debug, Serialize)]
pub struct LoginReply {
    /// The CSRF token to send in `X-CSRF-Token` on state-changing requests.
    pub csrf_token: String,
    /// The organisation.
    pub org: i64,
    /// The role.
    pub role: Role,
    /// Whether the password must be changed before anything else.
    pub password_change_required: bool,
    /// When the session ends (seconds from now).
    pub expires_in: u64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Signs in with password and TOTP; failures are limited per account and per address.
pub async fn login(
    State(state): State<AppState>,
    conn: Option<Extension<ConnInfo>>,
    JsonBody(body): JsonBody<Login>,
) -> Result<Response, ApiError> {
    let source = conn.map(|c| c.source()).unwrap_or_else(|| "unknown".into());
    if body.user.chars().count() > 256 || body.password.len() > 1024 || body.totp.len() > 16 {
        return Err(ApiError::BadRequest);
    }
    let settings = state.settings().clone();
    let user_key = format!("user:{}", body.user);
    let addr_key = format!("addr:{source}");
    let keys = [user_key.as_str(), addr_key.as_str()];
    let failed = |state: AppState, org: Option<i64>, result: &'static str, err: ApiError| {
        let user = body.user.clone();
        let source = source.clone();
        let keys = [user_key.clone(), addr_key.clone()];
        async move {
            state
                .limiter()
                .fail(&[&keys[0], &keys[1]], state.settings().login_window);
            state
                .audit(Audit {
                    org,
                    actor: &format!("user:{}", clip(&user)),
                    action: "login",
                    target: clip(&user),
                    source: &source,
                    result,
                })
                .await;
            Err(err)
        }
    };
    if state
        .limiter()
        .blocked(&keys, settings.login_failures, settings.login_window)
    {
        state
            .audit(Audit {
                org: None,
                actor: &format!("user:{}", clip(&body.user)),
                action: "login",
                target: clip(&body.user),
                source: &source,
                result: "denied: rate limited",
            })
            .await;
        return Err(ApiError::TooManyRequests);
    }
    let row = state
        .db()
        .query_opt(
            "SELECT id, org_id, password_hash, totp_secret, totp_last_step, role,
                    must_change_password, disabled
             FROM users WHERE name = $1",
            &[&body.user],
        )
        .await?;
    let Some(row) = row else {
        verify_password(body.password.clone(), DUMMY_HASH.into()).await;
        return failed(state, None, "denied", ApiError::Unauthorized).await;
    };
    let (user, org): (i64, i64) = (row.get(0), row.get(1));
    let hash: String = row.get(2);
    let key: Vec<u8> = row.get(3);
    let last_step: i64 = row.get(4);
    let disabled: bool = row.get(7);
    let password_ok = verify_password(body.password.clone(), hash).await;
    let step = totp::verify(&key, body.totp.trim(), unix_now(), last_step.max(0) as u64);
    let (true, Some(step), false) = (password_ok, step, disabled) else {
        return failed(state, Some(org), "denied", ApiError::Unauthorized).await;
    };
    // The code is used: the same step cannot sign in again (a race loses here).
    let step = step as i64;
    let used = state
        .db()
        .execute(
            "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND org_id = $3
               AND totp_last_step < $1",
            &[&step, &user, &org],
        )
        .await?;
    if used != 1 {
        return failed(
            state,
            Some(org),
            "denied: code reused",
            ApiError::Unauthorized,
        )
        .await;
    }
    let role = Role::parse(row.get(5)).ok_or(ApiError::Internal("stored role".into()))?;
    let must_change: bool = row.get(6);
    let token = secret::token("");
    let csrf = secret::token("");
    let ttl = settings.session_ttl;
    let expires = SystemTime::now() + ttl;
    state
        .db()
        .execute(
            "INSERT INTO sessions (org_id, user_id, token_hash, csrf_token, source, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &org,
                &user,
                &secret::digest(&token),
                &csrf,
                &source,
                &expires,
            ],
        )
        .await?;
    state.limiter().clear(&user_key);
    state
        .audit(Audit {
            org: Some(org),
            actor: &format!("user:{}", body.user),
            action: "login",
            target: &body.user,
            source: &source,
            result: "ok",
        })
        .await;
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        ttl.as_secs()
    );
    let reply = LoginReply {
        csrf_token: csrf,
        org,
        role,
        password_change_required: must_change,
        expires_in: ttl.as_secs(),
    };
    let mut resp = Json(reply).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|_| ApiError::Internal("cookie".into()))?,
    );
    Ok(resp)
}

/// `POST /api/v1/logout`: ends the session (server-side) or does nothing for a token.
pub async fn logout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    if let Via::Session { id, .. } = &caller.via {
        state
            .db()
            .execute(
                "UPDATE sessions SET revoked = true WHERE id = $1 AND org_id = $2",
                &[id, &caller.org],
            )
            .await?;
    }
    caller.audit(&state, "logout", &caller.name, "ok").await;
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0");
    let mut resp = Json(serde_json::json!({ "ok": true })).into_response();
    if let Ok(v) = HeaderValue::from_str(&clear) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// `GET /api/v1/me`.
pub async fn me(Extension(caller): Extension<Caller>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "user": caller.user,
        "name": caller.name,
        "org": caller.org,
        "role": caller.role,
        "password_change_required": caller.must_change_password,
    }))
}

/// `POST /api/v1/me/password`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The current password.
    pub current: String,
    /// The new one (12 to 1024 characters).
    pub new: String,
}

/// Changes the caller's password; every other session and token of the user ends.
pub async fn change_password(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<PasswordChange>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let n = body.new.chars().count();
    if !(12..=1024).contains(&n) || body.current.len() > 1024 {
        caller
            .audit(&state, "password.change", &caller.name, "invalid")
            .await;
        return Err(ApiError::BadRequest);
    }
    let row = state
        .db()
        .query_one(
            "SELECT password_hash FROM users WHERE id = $1 AND org_id = $2",
            &[&caller.user, &caller.org],
        )
        .await?;
    if !verify_password(body.current, row.get(0)).await {
        caller
            .audit(&state, "password.change", &caller.name, "denied")
            .await;
        return Err(ApiError::Forbidden);
    }
    let hash = hash_password(body.new).await?;
    state
        .db()
        .execute(
            "UPDATE users SET password_hash = $1, must_change_password = false
             WHERE id = $2 AND org_id = $3",
            &[&hash, &caller.user, &caller.org],
        )
        .await?;
    let keep = match &caller.via {
        Via::Session { id, .. } => *id,
        Via::Token(_) => 0,
    };
    state
        .db()
        .execute(
            "UPDATE sessions SET revoked = true WHERE user_id = $1 AND org_id = $2 AND id <> $3",
            &[&caller.user, &caller.org, &keep],
        )
        .await?;
    caller
        .audit(&state, "password.change", &caller.name, "ok")
        .await;
    Ok(Json(serde_json::json!({ "ok": true })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_org_reads_the_org_segment() {
        assert_eq!(path_org("/api/v1/orgs/12/agents"), Some(12));
        assert_eq!(path_org("/api/v1/orgs/12"), Some(12));
        assert_eq!(path_org("/api/v1/orgs/x/agents"), None);
        assert_eq!(path_org("/api/v1/me"), None);
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; __Host-vigil_session=abc; b=2"),
        );
        assert_eq!(cookie_value(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie_value(&h, "c"), None);
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Viewer < Role::Analyst && Role::Analyst < Role::Admin);
        for r in [Role::Viewer, Role::Analyst, Role::Admin] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
    }
}
