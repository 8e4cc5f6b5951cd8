//! The API through the Router (no socket), on a real PostgreSQL server
//! (`scripts/postgres`): login with TOTP, sessions, CSRF, rate limits, roles, every route
//! across organisations, enrolment tokens, injection strings, bad bodies, headers.

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tower::ServiceExt;
use vigil_server::auth::{Access, Role, CSRF_HEADER};
use vigil_server::server::{init, InitOptions};
use vigil_server::state::{AgentIdentity, ConnInfo};
use vigil_server::testing::{fresh_database, TempDir};
use vigil_server::{app, routes, totp, AppState, Settings};

struct Fx {
    router: Router,
    state: AppState,
    _data: TempDir,
    org: i64,
    admin_password: String,
}

#[derive(Clone)]
struct Session {
    cookie: String,
    csrf: String,
}

enum Auth<'a> {
    None,
    Session(&'a Session),
    SessionNoCsrf(&'a Session),
    Bearer(&'a str),
}

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

async fn fixture(settings: Settings) -> Fx {
    let db = fresh_database().await.expect("a PostgreSQL database");
    let data = TempDir::new("server-data");
    let report = init(&InitOptions {
        data: data.path().to_path_buf(),
        db: db.clone(),
        org: "alpha".into(),
        admin: "alice".into(),
        names: vec!["localhost".into(), "127.0.0.1".into()],
    })
    .await
    .expect("init");
    let mut client = vigil_server::db::connect(&db).await.expect("connect");
    vigil_server::db::migrate(&mut client)
        .await
        .expect("migrate");
    let ca = vigil_server::ca::Ca::load(data.path()).expect("CA");
    let settings = Settings {
        lake: Some(data.path().join("lake")),
        ..settings
    };
    let state = AppState::new(client, ca, settings);
    Fx {
        router: app(state.clone()),
        state,
        _data: data,
        org: report.org,
        admin_password: report.password,
    }
}

async fn call_from(
    fx: &Fx,
    peer: &str,
    method: Method,
    path: &str,
    auth: Auth<'_>,
    body: Option<String>,
) -> Resp {
    let mut req = Request::builder().method(method).uri(path);
    match auth {
        Auth::None => {}
        Auth::Session(s) => {
            req = req
                .header(header::COOKIE, &s.cookie)
                .header(CSRF_HEADER, &s.csrf)
        }
        Auth::SessionNoCsrf(s) => req = req.header(header::COOKIE, &s.cookie),
        Auth::Bearer(t) => req = req.header(header::AUTHORIZATION, format!("Bearer {t}")),
    }
    let mut req = req
        .body(body.map(Body::from).unwrap_or_else(Body::empty))
        .expect("request");
    req.extensions_mut().insert(ConnInfo {
        peer: Some(peer.parse::<SocketAddr>().expect("peer")),
        agent: None,
    });
    let resp = fx.router.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        json,
    }
}

async fn call(fx: &Fx, method: Method, path: &str, auth: Auth<'_>, body: Option<Value>) -> Resp {
    call_from(
        fx,
        "192.0.2.1:40000",
        method,
        path,
        auth,
        body.map(|b| b.to_string()),
    )
    .await
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A TOTP code the server will accept for `user` now (a step it has not seen), waiting
/// for the next step when the window's are used.
async fn next_code(fx: &Fx, user: &str) -> String {
    let row = fx
        .state
        .db()
        .query_one(
            "SELECT totp_secret, totp_last_step FROM users WHERE name = $1",
            &[&user],
        )
        .await
        .expect("user");
    let key: Vec<u8> = row.get(0);
    let last = row.get::<_, i64>(1) as u64;
    loop {
        let now = totp::step_of(unix_now());
        if let Some(step) = [now.saturating_sub(1), now, now + 1]
            .into_iter()
            .find(|s| *s > last)
        {
            return totp::code(&key, step);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn login(fx: &Fx, user: &str, password: &str) -> Resp {
    let code = next_code(fx, user).await;
    call(
        fx,
        Method::POST,
        "/api/v1/login",
        Auth::None,
        Some(json!({ "user": user, "password": password, "totp": code })),
    )
    .await
}

fn session_of(r: &Resp) -> Session {
    let cookie = r
        .headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie");
    Session {
        cookie: cookie.split(';').next().expect("cookie").to_string(),
        csrf: r.json["csrf_token"].as_str().expect("csrf").to_string(),
    }
}

/// Signs `user` in and sets a new password (the one-time one must be changed).
async fn ready_session(fx: &Fx, user: &str, one_time: &str) -> Session {
    let r = login(fx, user, one_time).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let s = session_of(&r);
    let r = call(
        fx,
        Method::POST,
        "/api/v1/me/password",
        Auth::Session(&s),
        Some(json!({ "current": one_time, "new": format!("{user}-new-password-123") })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    s
}

async fn audit_rows(fx: &Fx, org: i64) -> Vec<(String, String, String)> {
    fx.state
        .db()
        .query(
            "SELECT action, target, result FROM audit_log WHERE org_id = $1 ORDER BY id",
            &[&org],
        )
        .await
        .expect("audit")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn audit_count(fx: &Fx) -> i64 {
    fx.state
        .db()
        .query_one("SELECT count(*) FROM audit_log", &[])
        .await
        .expect("count")
        .get(0)
}

fn csr() -> String {
    let key = rcgen::KeyPair::generate().expect("key");
    rcgen::CertificateParams::default()
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("pem")
}

async fn api_token(fx: &Fx, s: &Session, org: i64) -> String {
    let r = call(
        fx,
        Method::POST,
        &format!("/api/v1/orgs/{org}/api-tokens"),
        Auth::Session(s),
        Some(json!({ "name": "script" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    r.json["token"].as_str().expect("token").to_string()
}

#[tokio::test]
async fn login_needs_password_and_totp_and_sessions_expire() {
    let fx = fixture(Settings {
        session_ttl: Duration::from_secs(3),
        ..Settings::default()
    })
    .await;
    let pw = fx.admin_password.clone();
    let code = next_code(&fx, "alice").await;
    // Wrong password, wrong code, unknown user: 401 alike, audited.
    for (user, password, totp) in [
        ("alice", "wrong", code.as_str()),
        ("alice", pw.as_str(), "000000"),
        ("nobody", pw.as_str(), code.as_str()),
    ] {
        let r = call(
            &fx,
            Method::POST,
            "/api/v1/login",
            Auth::None,
            Some(json!({ "user": user, "password": password, "totp": totp })),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.json, json!({ "error": "unauthorized" }));
    }
    let denied = audit_rows(&fx, fx.org)
        .await
        .into_iter()
        .filter(|(a, _, r)| a == "login" && r == "denied")
        .count();
    assert_eq!(
        denied, 2,
        "both refusals of alice are in her organisation's log"
    );

    let r = call(
        &fx,
        Method::POST,
        "/api/v1/login",
        Auth::None,
        Some(json!({ "user": "alice", "password": pw, "totp": code })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let cookie = r.headers[header::SET_COOKIE].to_str().expect("ascii");
    for flag in [
        "__Host-vigil_session=",
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Max-Age=3",
        "Path=/",
    ] {
        assert!(cookie.contains(flag), "{cookie} lacks {flag}");
    }
    assert_eq!(r.json["password_change_required"], json!(true));
    let s = session_of(&r);

    // The same code again: refused (used once).
    let again = call(
        &fx,
        Method::POST,
        "/api/v1/login",
        Auth::None,
        Some(json!({ "user": "alice", "password": pw, "totp": code })),
    )
    .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);

    let agents = format!("/api/v1/orgs/{}/agents", fx.org);
    let r = call(&fx, Method::GET, &agents, Auth::Session(&s), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json["error"], "password_change_required");
    let r = call(&fx, Method::GET, "/api/v1/me", Auth::Session(&s), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["name"], "alice");

    // Changing it: CSRF token required (double-checked: without, 403 and audited).
    let change = json!({ "current": pw, "new": "a much better password" });
    let r = call(
        &fx,
        Method::POST,
        "/api/v1/me/password",
        Auth::SessionNoCsrf(&s),
        Some(change.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(audit_rows(&fx, fx.org)
        .await
        .iter()
        .any(|(a, _, r)| a == "POST /api/v1/me/password" && r == "denied: csrf"));
    let r = call(
        &fx,
        Method::POST,
        "/api/v1/me/password",
        Auth::Session(&s),
        Some(change),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(&fx, Method::GET, &agents, Auth::Session(&s), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json, json!({ "agents": [] }));

    // Logout ends a session on the server.
    let r2 = login(&fx, "alice", "a much better password").await;
    assert_eq!(r2.status, StatusCode::OK);
    let s2 = session_of(&r2);
    let r = call(
        &fx,
        Method::POST,
        "/api/v1/logout",
        Auth::Session(&s2),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(&fx, Method::GET, "/api/v1/me", Auth::Session(&s2), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Sessions expire.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let r = call(&fx, Method::GET, "/api/v1/me", Auth::Session(&s), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn failed_logins_are_limited_per_account_and_per_address() {
    let fx = fixture(Settings::default()).await;
    let pw = fx.admin_password.clone();
    // Five failures for alice, each from another address: her account is locked, even
    // for the right password from a new address.
    for i in 0..5 {
        let r = call_from(
            &fx,
            &format!("198.51.100.{i}:1000"),
            Method::POST,
            "/api/v1/login",
            Auth::None,
            Some(json!({ "user": "alice", "password": "wrong", "totp": "123456" }).to_string()),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let code = next_code(&fx, "alice").await;
    let right = json!({ "user": "alice", "password": pw, "totp": code }).to_string();
    let r = call_from(
        &fx,
        "198.51.100.99:1000",
        Method::POST,
        "/api/v1/login",
        Auth::None,
        Some(right.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(audit_rows(&fx, fx.org).await.len() >= 5);

    // Five failures from one address, for unknown names: that address is locked for
    // every account.
    let fx = fixture(Settings::default()).await;
    for i in 0..5 {
        let r = call_from(
            &fx,
            "203.0.113.7:1000",
            Method::POST,
            "/api/v1/login",
            Auth::None,
            Some(
                json!({ "user": format!("nobody{i}"), "password": "x", "totp": "123456" })
                    .to_string(),
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let code = next_code(&fx, "alice").await;
    let right = json!({ "user": "alice", "password": fx.admin_password, "totp": code }).to_string();
    let r = call_from(
        &fx,
        "203.0.113.7:1000",
        Method::POST,
        "/api/v1/login",
        Auth::None,
        Some(right.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let r = call_from(
        &fx,
        "203.0.113.8:1000",
        Method::POST,
        "/api/v1/login",
        Auth::None,
        Some(right),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "another address is not locked");
}

/// Two organisations with an admin each, a viewer in the first, and objects of every
/// kind in the first.
struct World {
    fx: Fx,
    alpha: i64,
    beta: i64,
    alice: Session,
    bob_token: String,
    viewer_token: String,
    ids: BTreeMap<&'static str, String>,
}

async fn world() -> World {
    let fx = fixture(Settings::default()).await;
    let alpha = fx.org;
    let alice = ready_session(&fx, "alice", &fx.admin_password.clone()).await;
    // A second organisation, with its admin bob.
    let beta: i64 = fx
        .state
        .db()
        .query_one(
            "INSERT INTO organisations (name) VALUES ('beta') RETURNING id",
            &[],
        )
        .await
        .expect("org")
        .get(0);
    let bob = vigil_server::api::create_user(&fx.state.db(), beta, "bob", Role::Admin)
        .await
        .expect("bob");
    let bob_s = ready_session(&fx, "bob", &bob.password).await;
    let bob_token = api_token(&fx, &bob_s, beta).await;
    // Alpha's objects: a viewer, a group, an enrolment token, an API token, an agent.
    let r = call(
        &fx,
        Method::POST,
        &format!("/api/v1/orgs/{alpha}/users"),
        Auth::Session(&alice),
        Some(json!({ "name": "vera", "role": "viewer" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let vera_id = r.json["id"].to_string();
    let vera_s = ready_session(&fx, "vera", r.json["password"].as_str().expect("pw")).await;
    let viewer_token = api_token(&fx, &vera_s, alpha).await;
    let r = call(
        &fx,
        Method::POST,
        &format!("/api/v1/orgs/{alpha}/host-groups"),
        Auth::Session(&alice),
        Some(json!({ "name": "servers" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let group = r.json["id"].as_i64().expect("group");
    let r = call(
        &fx,
        Method::POST,
        &format!("/api/v1/orgs/{alpha}/enrolment-tokens"),
        Auth::Session(&alice),
        Some(json!({ "group_id": group, "expires_in_secs": 3600, "uses": 5 })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let enrol_id = r.json["id"].to_string();
    let enrol_token = r.json["token"].as_str().expect("token").to_string();
    let r = call(
        &fx,
        Method::POST,
        &format!("/api/v1/orgs/{alpha}/api-tokens"),
        Auth::Session(&alice),
        Some(json!({ "name": "ci" })),
    )
    .await;
    let api_id = r.json["id"].to_string();
    let r = call(
        &fx,
        Method::POST,
        "/agent/v1/enroll",
        Auth::None,
        Some(json!({ "token": enrol_token, "csr": csr(), "hostname": "web-1" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let agent = r.json["agent_id"].as_str().expect("agent").to_string();
    let ids = BTreeMap::from([
        ("org", alpha.to_string()),
        ("user", vera_id),
        ("token", enrol_id),
        ("api_token", api_id),
        ("agent", agent),
        ("group", group.to_string()),
    ]);
    World {
        fx,
        alpha,
        beta,
        alice,
        bob_token,
        viewer_token,
        ids,
    }
}

/// A request body each route accepts when the caller is allowed.
fn body_for(method: &Method, path: &str, ids: &BTreeMap<&str, String>) -> Option<Value> {
    if *method != Method::POST {
        return None;
    }
    let group: i64 = ids["group"].parse().expect("group id");
    Some(match path {
        p if p.ends_with("/users") => json!({ "name": "mallory", "role": "admin" }),
        p if p.ends_with("/host-groups") => json!({ "name": "stolen" }),
        p if p.ends_with("/enrolment-tokens") => {
            json!({ "group_id": group, "expires_in_secs": 60, "uses": 1 })
        }
        p if p.ends_with("/api-tokens") => json!({ "name": "x" }),
        p if p.ends_with("/findings/status") => json!({ "uids": ["f1"], "status": "resolved" }),
        p if p.ends_with("/status") => json!({ "status": "resolved" }),
        p if p.ends_with("/assign") => json!({ "assignee": "alice" }),
        p if p.ends_with("/notes") => json!({ "text": "looked at it" }),
        p if p.ends_with("/actions") && p.starts_with("/api/") => json!({ "kind": "isolate" }),
        "/agent/v1/actions" => json!({ "wait_ms": 0 }),
        p if p.ends_with("/search") => json!({ "query": "process_activity | take 1" }),
        p if p.ends_with("/content") => json!({ "files": { "bundle.toml": "version = \"x\"" } }),
        p if p.ends_with("/rollouts") => json!({ "version": "v1", "canary_group": "servers" }),
        "/api/v1/me/password" => json!({ "current": "x", "new": "yyyyyyyyyyyyyyyy" }),
        "/api/v1/login" => json!({ "user": "alice", "password": "x", "totp": "000000" }),
        "/agent/v1/enroll" => json!({ "token": "vet_forged", "csr": "x", "hostname": "h" }),
        "/agent/v1/heartbeat" => json!({ "hostname": "h", "version": "1" }),
        _ => json!({}),
    })
}

/// The route's path with alpha's ids in it.
fn concrete(path: &str, org: &str, ids: &BTreeMap<&str, String>) -> String {
    let token = if path.contains("/api-tokens/") {
        &ids["api_token"]
    } else {
        &ids["token"]
    };
    path.replace("{org}", org)
        .replace("{user}", &ids["user"])
        .replace("{token}", token)
        .replace("{agent}", &ids["agent"])
        .replace("{stream}", "events")
        .replace("{uid}", "f1")
        .replace("{first}", "1")
        .replace("{story}", "story-1")
        .replace("{rollout}", "1")
        .replace("{version}", "v1")
}

/// Every route of the Router, tried by beta's admin on alpha's objects: an organisation
/// route with alpha in the path is not found; with beta in the path but alpha's object
/// id, not found too; each refusal is in beta's audit log; alpha's objects are
/// unchanged. Routes that are not about an organisation are listed with why.
#[tokio::test]
async fn every_route_refuses_other_organisations() {
    let w = world().await;
    let fx = &w.fx;
    // Routes about the caller alone, or whose organisation a secret decides.
    let not_org: BTreeMap<(&str, &str), &str> = BTreeMap::from([
        (
            ("POST", "/api/v1/login"),
            "public: the account decides the organisation",
        ),
        (("POST", "/api/v1/logout"), "the caller's own session"),
        (("GET", "/api/v1/me"), "the caller's own identity"),
        (("POST", "/api/v1/me/password"), "the caller's own password"),
        (
            ("POST", "/agent/v1/enroll"),
            "public: the enrolment token decides the organisation",
        ),
        (
            ("POST", "/agent/v1/heartbeat"),
            "the agent's certificate decides the organisation",
        ),
        (
            ("POST", "/agent/v1/batches/{stream}/{first}"),
            "the agent's certificate decides the organisation",
        ),
        (
            ("POST", "/agent/v1/actions"),
            "the agent's certificate decides the organisation",
        ),
        (
            ("GET", "/agent/v1/content/{version}"),
            "the agent's certificate decides the organisation",
        ),
        (("GET", "/"), "public: the console's page"),
        (("GET", "/console/app.js"), "public: the console's script"),
        (
            ("GET", "/console/app.css"),
            "public: the console's style sheet",
        ),
        (("GET", "/console/icon.svg"), "public: the console's icon"),
    ]);
    let before: i64 = fx
        .state
        .db()
        .query_one("SELECT count(*) FROM users WHERE org_id = $1", &[&w.alpha])
        .await
        .expect("n")
        .get(0);
    for spec in routes() {
        let key = (spec.method.as_str(), spec.path);
        match spec.access {
            Access::Org(_) => {
                assert!(!not_org.contains_key(&key));
                // Alpha's organisation in the path.
                let path = concrete(spec.path, &w.alpha.to_string(), &w.ids);
                let n = audit_count(fx).await;
                let r = call(
                    fx,
                    spec.method.clone(),
                    &path,
                    Auth::Bearer(&w.bob_token),
                    body_for(&spec.method, spec.path, &w.ids),
                )
                .await;
                assert_eq!(r.status, StatusCode::NOT_FOUND, "{} {path}", spec.method);
                assert_eq!(r.json, json!({ "error": "not_found" }));
                assert_eq!(
                    audit_count(fx).await,
                    n + 1,
                    "{} {path} audited",
                    spec.method
                );
                let last = audit_rows(fx, w.beta).await.pop().expect("an entry");
                assert_eq!(
                    last,
                    (
                        format!("{} {}", spec.method, spec.path),
                        path.clone(),
                        "not_found: organisation".into()
                    )
                );
                // Beta's organisation in the path, alpha's object id.
                if spec.path.contains("/{") && spec.path.matches('{').count() > 1 {
                    let path = concrete(spec.path, &w.beta.to_string(), &w.ids);
                    let n = audit_count(fx).await;
                    let r = call(
                        fx,
                        spec.method.clone(),
                        &path,
                        Auth::Bearer(&w.bob_token),
                        body_for(&spec.method, spec.path, &w.ids),
                    )
                    .await;
                    assert_eq!(r.status, StatusCode::NOT_FOUND, "{} {path}", spec.method);
                    assert_eq!(
                        audit_count(fx).await,
                        n + 1,
                        "{} {path} audited",
                        spec.method
                    );
                }
            }
            _ => {
                assert!(not_org.contains_key(&key), "route {key:?} is neither an organisation route nor listed here: add it to this test");
            }
        }
    }
    // An enrolment token for alpha's group, asked in beta's organisation: not found.
    let r = call(
        fx,
        Method::POST,
        &format!("/api/v1/orgs/{}/enrolment-tokens", w.beta),
        Auth::Bearer(&w.bob_token),
        body_for(&Method::POST, "/enrolment-tokens", &w.ids),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Nothing of alpha's changed.
    let after: i64 = fx
        .state
        .db()
        .query_one(
            "SELECT count(*) FROM users WHERE org_id = $1 AND NOT disabled",
            &[&w.alpha],
        )
        .await
        .expect("n")
        .get(0);
    assert_eq!(before, after);
    let revoked: i64 = fx
        .state
        .db()
        .query_one(
            "SELECT count(*) FROM agents WHERE revoked OR org_id <> $1",
            &[&w.alpha],
        )
        .await
        .expect("n")
        .get(0);
    assert_eq!(revoked, 0);
    // Beta's lists show nothing of alpha's.
    for list in [
        "agents",
        "host-groups",
        "api-tokens",
        "users",
        "enrolment-tokens",
    ] {
        let r = call(
            fx,
            Method::GET,
            &format!("/api/v1/orgs/{}/{list}", w.beta),
            Auth::Bearer(&w.bob_token),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        let text = r.json.to_string();
        for secret in ["web-1", "servers", "vera", "\"ci\""] {
            assert!(
                !text.contains(secret),
                "{list} of beta shows {secret}: {text}"
            );
        }
    }
    // Alpha's own admin still sees its agent (the refusals changed nothing).
    let r = call(
        fx,
        Method::GET,
        &format!("/api/v1/orgs/{}/agents", w.alpha),
        Auth::Session(&w.alice),
        None,
    )
    .await;
    assert_eq!(r.json["agents"].as_array().map(Vec::len), Some(1));
}

/// Every route that needs a role above viewer refuses a viewer (403, audited), and
/// every route refuses no credentials (401).
#[tokio::test]
async fn roles_are_enforced_on_every_route() {
    let w = world().await;
    let fx = &w.fx;
    for spec in routes() {
        let path = concrete(spec.path, &w.alpha.to_string(), &w.ids);
        let body = body_for(&spec.method, spec.path, &w.ids);
        let role = match spec.access {
            Access::Org(role) | Access::User(role) => role,
            Access::Public => continue,
            Access::Agent => {
                let n = audit_count(fx).await;
                let r = call(fx, spec.method.clone(), &path, Auth::None, body).await;
                assert_eq!(
                    r.status,
                    StatusCode::UNAUTHORIZED,
                    "{path} without a client certificate"
                );
                assert_eq!(audit_count(fx).await, n + 1);
                continue;
            }
        };
        let r = call(fx, spec.method.clone(), &path, Auth::None, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{} {path}", spec.method);
        let r = call(
            fx,
            spec.method.clone(),
            &path,
            Auth::Bearer("vat_0000"),
            body.clone(),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{} {path} with a forged token",
            spec.method
        );
        if role > Role::Viewer {
            let n = audit_count(fx).await;
            let r = call(
                fx,
                spec.method.clone(),
                &path,
                Auth::Bearer(&w.viewer_token),
                body,
            )
            .await;
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{} {path} as a viewer",
                spec.method
            );
            assert_eq!(audit_count(fx).await, n + 1);
            let last = audit_rows(fx, w.alpha).await.pop().expect("entry");
            assert_eq!(last.2, "denied: role");
        }
    }
    // The viewer reads what viewers may.
    let r = call(
        fx,
        Method::GET,
        &format!("/api/v1/orgs/{}/agents", w.alpha),
        Auth::Bearer(&w.viewer_token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

const INJECTIONS: &[&str] = &[
    "'; DROP TABLE users; --",
    "Robert'); DELETE FROM agents;--",
    "<script>alert(document.cookie)</script>",
    "\"><img src=x onerror=alert(1)>",
    "{{7*7}} ${7*7} #{7*7}",
    "$(id) `id` | id; id",
    "../../../../etc/passwd",
    "%00%0d%0aSet-Cookie: x=1",
    "' OR '1'='1",
    "\\\"\\u0000",
    "ñ 中文 🦀 \u{202e}txt.exe",
];

#[tokio::test]
async fn injection_strings_are_stored_and_returned_verbatim() {
    let w = world().await;
    let fx = &w.fx;
    let org = w.alpha;
    for (i, s) in INJECTIONS.iter().enumerate() {
        let r = call(
            fx,
            Method::POST,
            &format!("/api/v1/orgs/{org}/host-groups"),
            Auth::Session(&w.alice),
            Some(json!({ "name": s })),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{s}");
        assert_eq!(r.json["name"], json!(s));
        let r = call(
            fx,
            Method::POST,
            &format!("/api/v1/orgs/{org}/api-tokens"),
            Auth::Session(&w.alice),
            Some(json!({ "name": s })),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{s}");
        let user = format!("{s}{i}");
        let r = call(
            fx,
            Method::POST,
            &format!("/api/v1/orgs/{org}/users"),
            Auth::Session(&w.alice),
            Some(json!({ "name": user, "role": "viewer" })),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{s}");
        assert!(r.json["totp_uri"]
            .as_str()
            .is_some_and(|u| !u.contains(' ')));
        // As a login name: refused like any wrong login, nothing else.
        let r = call_from(
            fx,
            &format!("192.0.2.{}:1", 100 + i),
            Method::POST,
            "/api/v1/login",
            Auth::None,
            Some(json!({ "user": s, "password": s, "totp": "000000" }).to_string()),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        // In a path id: not found.
        let enc: String = s.bytes().map(|b| format!("%{b:02X}")).collect();
        let r = call(
            fx,
            Method::POST,
            &format!("/api/v1/orgs/{org}/agents/{enc}/revoke"),
            Auth::Session(&w.alice),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{s}");
    }
    let groups = call(
        fx,
        Method::GET,
        &format!("/api/v1/orgs/{org}/host-groups"),
        Auth::Session(&w.alice),
        None,
    )
    .await;
    let tokens = call(
        fx,
        Method::GET,
        &format!("/api/v1/orgs/{org}/api-tokens"),
        Auth::Session(&w.alice),
        None,
    )
    .await;
    let users = call(
        fx,
        Method::GET,
        &format!("/api/v1/orgs/{org}/users"),
        Auth::Session(&w.alice),
        None,
    )
    .await;
    for (i, s) in INJECTIONS.iter().enumerate() {
        assert!(
            groups.json["host_groups"]
                .as_array()
                .expect("groups")
                .iter()
                .any(|g| g["name"] == json!(s)),
            "{s}"
        );
        assert!(
            tokens.json["api_tokens"]
                .as_array()
                .expect("tokens")
                .iter()
                .any(|g| g["name"] == json!(s)),
            "{s}"
        );
        let user = format!("{s}{i}");
        assert!(
            users.json["users"]
                .as_array()
                .expect("users")
                .iter()
                .any(|g| g["name"] == json!(user)),
            "{s}"
        );
    }
    // The audit log has them verbatim too, and the tables are all there.
    let audit = call(
        fx,
        Method::GET,
        &format!("/api/v1/orgs/{org}/audit?limit=1000"),
        Auth::Session(&w.alice),
        None,
    )
    .await;
    assert!(audit.json["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .any(|e| e["target"] == json!(INJECTIONS[0])));
    for table in ["users", "agents", "organisations", "audit_log", "sessions"] {
        fx.state
            .db()
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .expect("table still there");
    }
    // Control characters (NUL among them, which PostgreSQL's text refuses) are refused
    // with 400, not stored, never a 500.
    for bad in ["a\u{0}b", "line\nbreak", ""] {
        let r = call(
            fx,
            Method::POST,
            &format!("/api/v1/orgs/{org}/host-groups"),
            Auth::Session(&w.alice),
            Some(json!({ "name": bad })),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}");
    }
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_refused_with_4xx() {
    let w = world().await;
    let fx = &w.fx;
    let big = format!("{{\"name\":\"{}\"}}", "x".repeat(70 * 1024));
    let bodies: Vec<(&str, String)> = vec![
        ("not json", "{not json".into()),
        ("empty", String::new()),
        ("array", "[1,2,3]".into()),
        (
            "unknown field",
            "{\"name\":\"a\",\"role\":\"viewer\",\"is_admin\":true}".into(),
        ),
        (
            "wrong types",
            "{\"name\":1,\"role\":[],\"group_id\":\"x\",\"uses\":-1}".into(),
        ),
        (
            "deep",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
        ),
        ("invalid utf-8 escape", "{\"name\":\"\\ud800\"}".into()),
        ("oversized", big),
    ];
    let mut tried = 0;
    // The routes that read a JSON body (the others, as logout and revocations, take none).
    let with_body = routes()
        .into_iter()
        .filter(|s| body_for(&s.method, s.path, &w.ids).is_some_and(|b| b != json!({})));
    for spec in with_body {
        let path = concrete(spec.path, &w.alpha.to_string(), &w.ids);
        for (what, body) in &bodies {
            let r = call_from(
                fx,
                "192.0.2.9:1",
                Method::POST,
                &path,
                Auth::Session(&w.alice),
                Some(body.clone()),
            )
            .await;
            assert!(r.status.is_client_error(), "{what} to {path}: {}", r.status);
            assert!(
                r.json["error"].is_string(),
                "{what} to {path}: a JSON error body"
            );
            // (Content bundles have a limit of their own, tried in the rollout test.)
            if *what == "oversized" && spec.access != Access::Agent && !path.ends_with("/content") {
                assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
            }
            tried += 1;
        }
    }
    assert!(tried > 50);
    // Bad enums and ranges in otherwise valid bodies.
    let org = w.alpha;
    for (path, body) in [
        (
            format!("/api/v1/orgs/{org}/users"),
            json!({ "name": "x", "role": "root" }),
        ),
        (
            format!("/api/v1/orgs/{org}/enrolment-tokens"),
            json!({ "group_id": 1, "expires_in_secs": 0, "uses": 1 }),
        ),
        (
            format!("/api/v1/orgs/{org}/enrolment-tokens"),
            json!({ "group_id": 1, "expires_in_secs": 60, "uses": 0 }),
        ),
        (
            format!("/api/v1/orgs/{org}/api-tokens"),
            json!({ "name": "x", "expires_in_secs": 0 }),
        ),
    ] {
        let r = call(fx, Method::POST, &path, Auth::Session(&w.alice), Some(body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
    }
    for q in ["limit=0", "limit=-1", "limit=x", "limit=1000000", "other=1"] {
        let r = call(
            fx,
            Method::GET,
            &format!("/api/v1/orgs/{org}/audit?{q}"),
            Auth::Session(&w.alice),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
    }
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let w = world().await;
    let fx = &w.fx;
    let org = w.alpha;
    let cases = [
        (
            Method::GET,
            format!("/api/v1/orgs/{org}/agents"),
            Auth::Session(&w.alice),
        ),
        (Method::GET, "/no/such/route".to_string(), Auth::None),
        (
            Method::DELETE,
            "/api/v1/me".to_string(),
            Auth::Session(&w.alice),
        ),
        (Method::GET, "/api/v1/me".to_string(), Auth::None),
        (Method::POST, "/api/v1/login".to_string(), Auth::None),
    ];
    for (method, path, auth) in cases {
        let r = call(fx, method.clone(), &path, auth, None).await;
        for (name, want) in [
            ("content-security-policy", "default-src 'self'"),
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("strict-transport-security", "max-age="),
            ("referrer-policy", "no-referrer"),
        ] {
            let v = r
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            assert!(v.contains(want), "{method} {path}: {name} is {v:?}");
        }
        assert!(
            r.json["error"].is_string() || r.status.is_success(),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn enrolment_tokens_refuse_expired_exhausted_revoked_and_forged() {
    let w = world().await;
    let fx = &w.fx;
    let org = w.alpha;
    let group: i64 = w.ids["group"].parse().expect("group");
    let new_token = |uses: i32| {
        let s = w.alice.clone();
        async move {
            let r = call(
                fx,
                Method::POST,
                &format!("/api/v1/orgs/{org}/enrolment-tokens"),
                Auth::Session(&s),
                Some(json!({ "group_id": group, "expires_in_secs": 3600, "uses": uses })),
            )
            .await;
            (
                r.json["id"].as_i64().expect("id"),
                r.json["token"].as_str().expect("token").to_string(),
            )
        }
    };
    let enroll = |token: String, csr_pem: String| async move {
        call(
            fx,
            Method::POST,
            "/agent/v1/enroll",
            Auth::None,
            Some(json!({ "token": token, "csr": csr_pem, "hostname": "h" })),
        )
        .await
    };
    let agents = || async {
        fx.state
            .db()
            .query_one("SELECT count(*) FROM agents", &[])
            .await
            .expect("n")
            .get::<_, i64>(0)
    };
    let refusals = || async {
        fx.state.db().query_one("SELECT count(*) FROM audit_log WHERE action = 'agent.enroll' AND result = 'denied: token'", &[]).await.expect("n").get::<_, i64>(0)
    };
    let n0 = agents().await;
    // Exhausted: one use.
    let (_, once) = new_token(1).await;
    assert_eq!(enroll(once.clone(), csr()).await.status, StatusCode::OK);
    let r = enroll(once, csr()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json, json!({ "error": "forbidden" }));
    // Expired.
    let (id, expired) = new_token(5).await;
    fx.state
        .db()
        .execute(
            "UPDATE enrolment_tokens SET expires_at = now() - interval '1 second' WHERE id = $1",
            &[&id],
        )
        .await
        .expect("expire");
    assert_eq!(enroll(expired, csr()).await.status, StatusCode::FORBIDDEN);
    // Revoked, through the API.
    let (id, revoked) = new_token(5).await;
    let r = call(
        fx,
        Method::POST,
        &format!("/api/v1/orgs/{org}/enrolment-tokens/{id}/revoke"),
        Auth::Session(&w.alice),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(enroll(revoked, csr()).await.status, StatusCode::FORBIDDEN);
    // Forged: a well-formed token the server never issued.
    assert_eq!(
        enroll(format!("vet_{}", "ab".repeat(32)), csr())
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(refusals().await, 4);
    assert_eq!(agents().await, n0 + 1, "only the first use enrolled");
    // A bad CSR spends no use of a good token.
    let (id, good) = new_token(1).await;
    for bad_csr in [
        "",
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        "x'; DROP TABLE agents; --",
    ] {
        assert_eq!(
            enroll(good.clone(), bad_csr.to_string()).await.status,
            StatusCode::BAD_REQUEST
        );
    }
    // A CSR whose signature does not match its key.
    let mut tampered = csr();
    let mid = tampered.len() / 2;
    let c = if tampered.as_bytes()[mid] == b'A' {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(mid..mid + 1, c);
    assert_eq!(
        enroll(good.clone(), tampered).await.status,
        StatusCode::BAD_REQUEST
    );
    let uses: i32 = fx
        .state
        .db()
        .query_one(
            "SELECT uses_left FROM enrolment_tokens WHERE id = $1",
            &[&id],
        )
        .await
        .expect("row")
        .get(0);
    assert_eq!(uses, 1);
    let r = enroll(good, csr()).await;
    assert_eq!(r.status, StatusCode::OK);
    // The certificate names the agent and its organisation, whatever the CSR asked.
    let cert = r.json["certificate"].as_str().expect("cert");
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(r.json["org_id"], json!(org));
}

#[tokio::test]
async fn api_tokens_act_as_their_user_until_revoked() {
    let w = world().await;
    let fx = &w.fx;
    let org = w.alpha;
    let r = call(
        fx,
        Method::POST,
        &format!("/api/v1/orgs/{org}/api-tokens"),
        Auth::Session(&w.alice),
        Some(json!({ "name": "deploy", "expires_in_secs": 3600 })),
    )
    .await;
    let token = r.json["token"].as_str().expect("token").to_string();
    let id = r.json["id"].as_i64().expect("id");
    assert!(token.starts_with("vat_"));
    // Stored hashed: the token is nowhere in the database.
    let found: i64 = fx.state.db().query_one("SELECT count(*) FROM api_tokens WHERE encode(token_hash, 'escape') LIKE '%' || $1 || '%'", &[&token]).await.expect("n").get(0);
    assert_eq!(found, 0);
    // No CSRF token needed with a Bearer token; the role is the user's.
    let r = call(
        fx,
        Method::POST,
        &format!("/api/v1/orgs/{org}/host-groups"),
        Auth::Bearer(&token),
        Some(json!({ "name": "by-token" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(fx, Method::GET, "/api/v1/me", Auth::Bearer(&token), None).await;
    assert_eq!(r.json["name"], "alice");
    let r = call(
        fx,
        Method::POST,
        &format!("/api/v1/orgs/{org}/api-tokens/{id}/revoke"),
        Auth::Session(&w.alice),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(fx, Method::GET, "/api/v1/me", Auth::Bearer(&token), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // A disabled user's tokens stop working.
    let user = &w.ids["user"];
    let r = call(
        fx,
        Method::POST,
        &format!("/api/v1/orgs/{org}/users/{user}/disable"),
        Auth::Session(&w.alice),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(
        fx,
        Method::GET,
        "/api/v1/me",
        Auth::Bearer(&w.viewer_token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn migrations_apply_once_and_refuse_a_newer_database() {
    let db = fresh_database().await.expect("db");
    let mut client = vigil_server::db::connect(&db).await.expect("connect");
    let latest = vigil_server::db::latest_version();
    assert_eq!(
        vigil_server::db::migrate(&mut client).await.expect("first"),
        latest
    );
    assert_eq!(
        vigil_server::db::migrate(&mut client).await.expect("again"),
        latest
    );
    client
        .execute(
            "INSERT INTO vigil_schema (version) VALUES ($1)",
            &[&(latest + 1)],
        )
        .await
        .expect("newer");
    match vigil_server::db::migrate(&mut client).await {
        Err(vigil_server::ServerError::NewerSchema { database, binary }) => {
            assert_eq!((database, binary), (latest + 1, latest));
        }
        other => panic!("a newer schema must be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn init_refuses_a_second_run() {
    let db = fresh_database().await.expect("db");
    let data = TempDir::new("init-twice");
    let opts = InitOptions {
        data: data.path().join("d"),
        db,
        org: "o".into(),
        admin: "a".into(),
        names: vec!["localhost".into()],
    };
    let report = init(&opts).await.expect("first init");
    assert!(report.totp_uri.starts_with("otpauth://totp/"));
    assert!(report.password.len() >= 20);
    use std::os::unix::fs::PermissionsExt;
    for (file, mode) in [("ca.key", 0o600), ("server.key", 0o600)] {
        let m = std::fs::metadata(opts.data.join(file))
            .expect(file)
            .permissions()
            .mode();
        assert_eq!(m & 0o777, mode, "{file}");
    }
    assert!(matches!(
        init(&opts).await,
        Err(vigil_server::ServerError::AlreadyInitialised(_))
    ));
}

/// A call from an agent (the identity its certificate gave, as the TLS layer sets it).
async fn agent_call(router: &Router, agent: &AgentIdentity, path: &str, body: Value) -> Resp {
    agent_request(router, agent, Method::POST, path, Some(body)).await
}

/// A request from an agent with any method.
async fn agent_request(
    router: &Router,
    agent: &AgentIdentity,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Resp {
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .body(body)
        .expect("request");
    req.extensions_mut().insert(ConnInfo {
        peer: Some("192.0.2.9:40000".parse().expect("peer")),
        agent: Some(agent.clone()),
    });
    let resp = router.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .expect("body");
    Resp {
        status,
        headers,
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

async fn action_state(fx: &Fx, id: i64) -> (String, String) {
    let row = fx
        .state
        .db()
        .query_one(
            "SELECT state, result FROM response_actions WHERE id = $1",
            &[&id],
        )
        .await
        .expect("action");
    (row.get(0), row.get(1))
}

/// Remote response end to end through the Router: an analyst's action is checked,
/// queued and audited; the agent collects it once (a long poll woken by the request),
/// answers it, and the host's isolation state follows; an unanswered action is handed
/// out again; another organisation's agent cannot answer it; bad actions are refused.
#[tokio::test]
async fn remote_response_is_queued_collected_answered_and_audited() {
    let w = world().await;
    let fx = &w.fx;
    let alpha = w.alpha;
    let agent_id = w.ids["agent"].clone();
    let group: i64 = w.ids["group"].parse().expect("group");
    let agent = AgentIdentity {
        id: agent_id.clone(),
        org: alpha,
        group,
    };
    let actions = format!("/api/v1/orgs/{alpha}/agents/{agent_id}/actions");
    // Alice asks; the agent collects (and answers).
    let ask = |body: Value| {
        call(
            fx,
            Method::POST,
            &actions,
            Auth::Session(&w.alice),
            Some(body),
        )
    };
    let collect = |body: Value| agent_call(&fx.router, &agent, "/agent/v1/actions", body);
    // Bad actions: refused, audited, nothing queued.
    for bad in [
        json!({ "kind": "reboot" }),
        json!({ "kind": "isolate", "target": "10.0.0.1" }),
        json!({ "kind": "kill", "target": "1; rm -rf /" }),
        json!({ "kind": "kill" }),
        json!({ "kind": "quarantine", "target": "relative/path" }),
        json!({ "kind": "quarantine", "target": "/tmp/../etc/shadow" }),
        json!({ "kind": "isolate", "finding": "" }),
        json!({ "kind": "isolate", "extra": 1 }),
    ] {
        let n = audit_count(fx).await;
        let r = ask(bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        if bad.get("extra").is_none() {
            assert_eq!(audit_count(fx).await, n + 1, "{bad} audited");
        }
    }
    let queued: i64 = fx
        .state
        .db()
        .query_one("SELECT count(*) FROM response_actions", &[])
        .await
        .expect("n")
        .get(0);
    assert_eq!(queued, 0);
    // Nothing waiting: an immediate collection is empty.
    let r = collect(json!({ "wait_ms": 0 })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["actions"], json!([]));
    // Isolate: queued, audited with who asked.
    let r = ask(json!({ "kind": "isolate", "finding": "f-7" })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let isolate = r.json["id"].as_i64().expect("id");
    let last = audit_rows(fx, alpha).await.pop().expect("entry");
    assert_eq!(
        last,
        (
            "response.isolate".into(),
            format!("{agent_id} (action {isolate})"),
            "queued".into()
        )
    );
    // The agent collects it once.
    let r = collect(json!({ "wait_ms": 0 })).await;
    assert_eq!(
        r.json["actions"],
        json!([{ "id": isolate, "kind": "isolate", "target": "" }])
    );
    assert_eq!(action_state(fx, isolate).await.0, "sent");
    let r = collect(json!({ "wait_ms": 0 })).await;
    assert_eq!(r.json["actions"], json!([]), "not handed out twice at once");
    // Another organisation's agent cannot answer it.
    let stranger = AgentIdentity {
        id: "agent-of-beta".into(),
        org: w.beta,
        group: 0,
    };
    let r = agent_call(
        &fx.router,
        &stranger,
        "/agent/v1/actions",
        json!({ "results": [{ "id": isolate, "ok": false, "detail": "forged" }] }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(action_state(fx, isolate).await.0, "sent");
    // The agent's answer: done, and the host shown isolated.
    let r = collect(json!({ "results": [{ "id": isolate, "ok": true, "detail": "isolated the host", "isolated": true }] })).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        action_state(fx, isolate).await,
        ("done".into(), "isolated the host".into())
    );
    let r = call(
        fx,
        Method::GET,
        &format!("/api/v1/orgs/{alpha}/agents"),
        Auth::Bearer(&w.viewer_token),
        None,
    )
    .await;
    assert_eq!(r.json["agents"][0]["isolated"], json!(true));
    let r = call(
        fx,
        Method::GET,
        &actions,
        Auth::Bearer(&w.viewer_token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["actions"][0]["state"], "done");
    assert_eq!(r.json["actions"][0]["finding"], "f-7");
    assert_eq!(r.json["actions"][0]["requested_by"], "user:alice");
    // A long poll waiting when the next action is asked for gets it.
    let waiting = {
        let router = fx.router.clone();
        let agent = agent.clone();
        tokio::spawn(async move {
            agent_call(
                &router,
                &agent,
                "/agent/v1/actions",
                json!({ "wait_ms": 20000 }),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = ask(json!({ "kind": "kill", "target": "4242" })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let kill = r.json["id"].as_i64().expect("id");
    let r = waiting.await.expect("the long poll");
    assert_eq!(
        r.json["actions"],
        json!([{ "id": kill, "kind": "kill", "target": "4242" }])
    );
    // Unanswered past the resend delay (an agent that died holding it): handed out
    // again.
    fx.state
        .db()
        .execute(
            "UPDATE response_actions SET sent_at = now() - interval '2 minutes' WHERE id = $1",
            &[&kill],
        )
        .await
        .expect("age");
    let r = collect(json!({ "wait_ms": 0 })).await;
    assert_eq!(r.json["actions"][0]["id"], json!(kill));
    // A failed answer is kept as failed, with the agent's sentence.
    let r = collect(json!({ "results": [{ "id": kill, "ok": false, "detail": "process 4242 had already exited" }] })).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        action_state(fx, kill).await,
        ("failed".into(), "process 4242 had already exited".into())
    );
    // Too many outcomes at once, or a NUL in one: refused.
    let many: Vec<Value> = (0..65)
        .map(|i| json!({ "id": i, "ok": true, "detail": "x" }))
        .collect();
    let r = collect(json!({ "results": many })).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = collect(json!({ "results": [{ "id": kill, "ok": true, "detail": "a\u{0}b" }] })).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // An agent of another organisation is not found.
    let r = call(
        fx,
        Method::POST,
        &format!("/api/v1/orgs/{alpha}/agents/agent-of-beta/actions"),
        Auth::Session(&w.alice),
        Some(json!({ "kind": "isolate" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// Triage beyond one status, through the Router: a status set on many findings at
/// once, assignment to a user of the organisation only, notes on an incident; the
/// queue shows assignee, techniques and notes; another organisation changes nothing
/// of alpha's, and bad values are refused.
#[tokio::test]
async fn bulk_triage_assignment_and_notes_stay_within_the_organisation() {
    let w = world().await;
    let fx = &w.fx;
    let alpha = w.alpha;
    let agent = w.ids["agent"].clone();
    for (uid, attacks) in [
        ("f1", json!([{ "technique": { "uid": "T1059.004" } }])),
        (
            "f2",
            json!([{ "technique": { "uid": "T1105" } }, { "technique": { "uid": "T1059.004" } }]),
        ),
    ] {
        let event =
            json!({ "class_uid": 2004, "finding_info": { "title": uid, "attacks": attacks } });
        fx.state
            .db()
            .execute(
                "INSERT INTO findings (org_id, uid, agent_id, class_uid, time, severity_id, title,
                                       story, event)
                 VALUES ($1, $2, $3, 2004, now(), 4, $2, 'story-1', $4)",
                &[&alpha, &uid, &agent, &event.to_string()],
            )
            .await
            .expect("finding");
    }
    let alice = &w.alice;
    let post = |path: String, body: Value| async move {
        call(fx, Method::POST, &path, Auth::Session(alice), Some(body)).await
    };
    let org = format!("/api/v1/orgs/{alpha}");
    // Bulk status: the two of alpha's change; an unknown uid changes nothing.
    let r = post(
        format!("{org}/findings/status"),
        json!({ "uids": ["f1", "f2", "nope"], "status": "in_progress" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["updated"], 2);
    for bad in [
        json!({ "uids": [], "status": "resolved" }),
        json!({ "uids": ["f1"], "status": "closed" }),
        json!({ "uids": vec!["f1"; 501], "status": "resolved" }),
        json!({ "uids": ["a\u{0}b"], "status": "resolved" }),
    ] {
        let r = post(format!("{org}/findings/status"), bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    // Beta's admin names alpha's findings in beta's organisation: not found, unchanged.
    let r = call(
        fx,
        Method::POST,
        &format!("/api/v1/orgs/{}/findings/status", w.beta),
        Auth::Bearer(&w.bob_token),
        Some(json!({ "uids": ["f1", "f2"], "status": "false_positive" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Assignment: to alpha's users only.
    let r = post(
        format!("{org}/findings/f1/assign"),
        json!({ "assignee": "vera" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    for who in ["bob", "nobody-here", "'; DROP TABLE users; --"] {
        let r = post(
            format!("{org}/findings/f2/assign"),
            json!({ "assignee": who }),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{who}");
    }
    let r = post(
        format!("{org}/findings/f9/assign"),
        json!({ "assignee": "vera" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Notes on the incident, stored verbatim, read by a viewer.
    let text = "Checked with the owner: <b>not</b> expected.\nEscalated.";
    let r = post(
        format!("{org}/stories/story-1/notes"),
        json!({ "text": text }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    for bad in ["", "   ", "a\u{0}b", &"x".repeat(4001)] {
        let r = post(
            format!("{org}/stories/story-1/notes"),
            json!({ "text": bad }),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}");
    }
    let r = post(
        format!("{org}/stories/story-9/notes"),
        json!({ "text": "x" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(
        fx,
        Method::GET,
        &format!("{org}/stories/story-1/notes"),
        Auth::Bearer(&w.viewer_token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["notes"][0]["text"], text);
    assert_eq!(r.json["notes"][0]["author"], "alice");
    // The queue: status, assignee, techniques, notes.
    let r = call(
        fx,
        Method::GET,
        &format!("{org}/findings"),
        Auth::Bearer(&w.viewer_token),
        None,
    )
    .await;
    let findings = r.json["findings"].as_array().expect("findings").clone();
    let f = |uid: &str| {
        findings
            .iter()
            .find(|f| f["uid"] == uid)
            .cloned()
            .expect("row")
    };
    assert_eq!(f("f1")["status"], "in_progress");
    assert_eq!(f("f1")["assignee"], "vera");
    assert_eq!(f("f2")["assignee"], Value::Null);
    assert_eq!(f("f2")["techniques"], json!(["T1105", "T1059.004"]));
    assert_eq!(f("f1")["notes"], 1);
    // Unassigned again.
    let r = post(
        format!("{org}/findings/f1/assign"),
        json!({ "assignee": null }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let actions: Vec<String> = audit_rows(fx, alpha)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    for a in ["finding.status.bulk", "finding.assign", "story.note"] {
        assert!(actions.iter().any(|x| x == a), "{a} audited: {actions:?}");
    }
}

/// A GET from an agent.
async fn agent_get(router: &Router, agent: &AgentIdentity, path: &str) -> Resp {
    agent_request(router, agent, Method::GET, path, None).await
}

/// A content bundle's files (the agent's format): one Sigma rule, the manifest with its
/// SHA-256.
fn bundle(version: &str, rule: &str) -> Value {
    use sha2::Digest;
    let hash: String = sha2::Sha256::digest(rule.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let manifest = format!("version = \"{version}\"\n\n[files]\n\"sigma/r.yml\" = \"{hash}\"\n");
    json!({ "files": { "bundle.toml": manifest, "sigma/r.yml": rule } })
}

/// A heartbeat with `stats` (a running agent's: started at `started`, `cpu` ms of CPU
/// at `sent`), running `content`; the answer's `content`.
async fn beat(fx: &Fx, agent: &AgentIdentity, content: &str, extra: Value) -> Value {
    let mut stats = json!({
        "content_version": content,
        "agent_started_ms": 1_000,
        "sent_ms": 100_000,
        "cpu_ms": 1_000,
        "sensor_lost": 0,
        "sensor_received": 10_000,
    });
    if let (Some(s), Value::Object(e)) = (stats.as_object_mut(), extra) {
        s.extend(e);
    }
    let r = agent_call(
        &fx.router,
        agent,
        "/agent/v1/heartbeat",
        json!({ "hostname": format!("host-{}", &agent.id[..6]), "version": "1", "stats": stats }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    r.json["content"].clone()
}

async fn rollout_state(fx: &Fx, org: i64, session: &Session) -> Value {
    let r = call(
        fx,
        Method::GET,
        &format!("/api/v1/orgs/{org}/rollouts"),
        Auth::Session(session),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    r.json["rollouts"][0].clone()
}

/// The latest rollout, checked to be halted for a reason that says `why`.
async fn halted(fx: &Fx, org: i64, session: &Session, why: &str) {
    let state = rollout_state(fx, org, session).await;
    assert_eq!(state["state"], "halted", "{state}");
    let reason = state["reason"].as_str().expect("reason");
    assert!(reason.contains(why), "{state}");
}

/// A staged content rollout through the API and agents' heartbeats: bundles checked at
/// upload; the canary group's agent offered the bundle first, the other agent only once
/// the canary has run it for the canary time, then complete; a canary refusing the next
/// bundle halts that rollout (the other agent never offered it), and a canary that
/// restarts while running the one after halts it and is told to leave it. Each step is
/// audited; another organisation's agent cannot fetch the bundle.
#[tokio::test]
async fn a_rollout_reaches_the_canaries_first_and_halts_on_their_health() {
    let w = world().await;
    let fx = &w.fx;
    let org = w.alpha;
    let db = fx.state.db();
    let canary = AgentIdentity {
        id: w.ids["agent"].clone(),
        org,
        group: w.ids["group"].parse().expect("group"),
    };
    // A second agent of alpha, in another group, and one of beta.
    let mut others = Vec::new();
    for (id, o, name) in [
        ("agent-db", org, "databases"),
        ("agent-beta", w.beta, "beta-servers"),
    ] {
        let g: i64 = db
            .query_one(
                "INSERT INTO host_groups (org_id, name) VALUES ($1, $2) RETURNING id",
                &[&o, &name],
            )
            .await
            .expect("group")
            .get(0);
        db.execute(
            "INSERT INTO agents (id, org_id, group_id, cert_serial, cert_sha256, hostname)
             VALUES ($1, $2, $3, $1, sha256(convert_to($1, 'UTF8')), $1)",
            &[&id, &o, &g],
        )
        .await
        .expect("agent");
        others.push(AgentIdentity {
            id: id.into(),
            org: o,
            group: g,
        });
    }
    let (rest, stranger) = (&others[0], &others[1]);
    let (content_path, rollouts_path) = (
        format!("/api/v1/orgs/{org}/content"),
        format!("/api/v1/orgs/{org}/rollouts"),
    );
    let upload = |b: Value| {
        call(
            fx,
            Method::POST,
            &content_path,
            Auth::Session(&w.alice),
            Some(b),
        )
    };
    let start = |v: &str, secs: i32| {
        call(
            fx,
            Method::POST,
            &rollouts_path,
            Auth::Session(&w.alice),
            Some(json!({ "version": v, "canary_group": "servers", "canary_secs": secs })),
        )
    };
    // Upload: good, the same version again, a file changed after sealing, a path out of
    // the bundle, a viewer.
    let rule = "title: r\nlogsource: {product: linux}\ndetection: {s: {a: b}, condition: s}\n";
    assert_eq!(upload(bundle("v1", rule)).await.status, StatusCode::OK);
    assert_eq!(
        upload(bundle("v1", rule)).await.status,
        StatusCode::CONFLICT
    );
    let mut tampered = bundle("v9", rule);
    tampered["files"]["sigma/r.yml"] = json!("title: other\n");
    assert_eq!(upload(tampered).await.status, StatusCode::BAD_REQUEST);
    let mut escape = bundle("v9", rule);
    escape["files"]["../../etc/cron.d/x"] = json!("x");
    assert_eq!(upload(escape).await.status, StatusCode::BAD_REQUEST);
    let r = call(
        fx,
        Method::POST,
        &format!("/api/v1/orgs/{org}/content"),
        Auth::Bearer(&w.viewer_token),
        Some(bundle("v9", rule)),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let huge = bundle("v9", &"x".repeat(33 << 20));
    assert_eq!(upload(huge).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    for v in ["v2", "v3"] {
        assert_eq!(upload(bundle(v, rule)).await.status, StatusCode::OK);
    }
    // No canary seen yet: refused.
    assert_eq!(start("v1", 1).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(beat(fx, &canary, "base", json!({})).await, Value::Null);
    assert_eq!(beat(fx, rest, "base", json!({})).await, Value::Null);
    let r = start("v1", 1).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["agents"], 2);
    assert_eq!(start("v2", 1).await.status, StatusCode::CONFLICT);
    // The canary is offered v1; the rest waits.
    assert_eq!(
        beat(fx, &canary, "base", json!({})).await,
        json!({ "version": "v1" })
    );
    assert_eq!(beat(fx, rest, "base", json!({})).await, Value::Null);
    let got = agent_get(&fx.router, &canary, "/agent/v1/content/v1").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json["files"], bundle("v1", rule)["files"]);
    assert_eq!(
        agent_get(&fx.router, stranger, "/agent/v1/content/v1")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        agent_get(&fx.router, &canary, "/agent/v1/content/..")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // It runs it; after the canary time, healthy, the rest is offered it.
    assert_eq!(beat(fx, &canary, "v1", json!({})).await, Value::Null);
    assert_eq!(rollout_state(fx, org, &w.alice).await["state"], "canary");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    beat(
        fx,
        &canary,
        "v1",
        json!({ "sent_ms": 101_000, "cpu_ms": 1_010 }),
    )
    .await;
    assert_eq!(rollout_state(fx, org, &w.alice).await["state"], "rollout");
    assert_eq!(
        beat(fx, rest, "base", json!({})).await,
        json!({ "version": "v1" })
    );
    beat(fx, rest, "v1", json!({})).await;
    let state = rollout_state(fx, org, &w.alice).await;
    assert_eq!(state["state"], "complete", "{state}");
    // An agent enrolled after v1's rollout: it runs what the fleet runs.
    db.execute(
        "INSERT INTO agents (id, org_id, group_id, cert_serial, cert_sha256, hostname)
         VALUES ('agent-new', $1, $2, 'agent-new', sha256('new'::bytea), 'new')",
        &[&org, &rest.group],
    )
    .await
    .expect("agent");
    let late = AgentIdentity {
        id: "agent-new".into(),
        org,
        group: rest.group,
    };
    assert_eq!(
        beat(fx, &late, "base", json!({})).await,
        json!({ "version": "v1" })
    );
    beat(fx, &late, "v1", json!({})).await;
    assert_eq!(beat(fx, &late, "v1", json!({})).await, Value::Null);

    // v2: the canary refuses it; halted, and the rest never offered it.
    assert_eq!(start("v2", 1).await.status, StatusCode::OK);
    assert_eq!(
        beat(fx, &canary, "v1", json!({})).await,
        json!({ "version": "v2" })
    );
    beat(
        fx,
        &canary,
        "v1",
        json!({ "content_refused": "v2: sigma/r.yml: the trial took 9 s" }),
    )
    .await;
    halted(fx, org, &w.alice, "refused the bundle").await;
    assert_eq!(beat(fx, rest, "v1", json!({})).await, Value::Null);

    // v3: the canary runs it, then restarts: halted, and told to leave v3.
    assert_eq!(start("v3", 60).await.status, StatusCode::OK);
    assert_eq!(
        beat(fx, &canary, "v1", json!({})).await,
        json!({ "version": "v3" })
    );
    assert_eq!(beat(fx, &canary, "v3", json!({})).await, Value::Null);
    let again = beat(
        fx,
        &canary,
        "v3",
        json!({ "agent_started_ms": 150_000, "sent_ms": 151_000 }),
    )
    .await;
    halted(fx, org, &w.alice, "restarted").await;
    assert_eq!(again, json!({ "leave": "v3" }));
    assert_eq!(beat(fx, &canary, "v1", json!({})).await, Value::Null);
    let state = rollout_state(fx, org, &w.alice).await;
    let states: Vec<(&str, &str)> = state["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| {
            (
                a["state"].as_str().unwrap_or(""),
                a["before"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![("back", "v1"), ("waiting", "v1"), ("waiting", "v1")]
    );
    // Audited: uploads (and the refusals), three rollouts, two halts.
    let actions: Vec<String> = db
        .query(
            "SELECT action || ' ' || result FROM audit_log WHERE org_id = $1 AND action LIKE 'content.%' ORDER BY id",
            &[&org],
        )
        .await
        .expect("audit")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let count = |p: &str| actions.iter().filter(|a| a.starts_with(p)).count();
    assert_eq!(count("content.upload ok"), 3, "{actions:?}");
    assert_eq!(count("content.upload invalid"), 2, "{actions:?}");
    assert_eq!(count("content.rollout ok"), 3, "{actions:?}");
    assert_eq!(count("content.rollout.halt"), 2, "{actions:?}");
}
