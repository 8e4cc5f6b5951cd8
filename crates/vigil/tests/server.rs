//! `vigil server` and `vigil agent --enroll` as built: a real PostgreSQL server
//! (`scripts/postgres`), the server binary on a loopback port, the agent binary
//! enrolling over TLS, then its heartbeat and revocation over mutual TLS.

use serde_json::{json, Value};
use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vigil_agent::server::https::{self, BaseUrl};
use vigil_agent::server::Link;
use vigil_server::testing::{fresh_database, TempDir};
use vigil_server::totp;

mod support;
mod webdriver;

fn vigil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[expect(deprecated, reason = "the workspace's provider")]
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca: &Path) -> rustls::RootCertStore {
    use rustls::pki_types::pem::PemObject;
    let mut store = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca).expect("ca") {
        store.add(c.expect("cert")).expect("add");
    }
    store
}

/// A client that trusts the server's CA, with no certificate of its own.
fn console_config(ca: &Path) -> Arc<rustls::ClientConfig> {
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots(ca))
            .with_no_client_auth(),
    )
}

struct Api {
    config: Arc<rustls::ClientConfig>,
    base: BaseUrl,
    headers: Vec<(String, String)>,
}

impl Api {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let r = https::request(
            &self.config,
            &self.base,
            method,
            path,
            &headers,
            body.as_bytes(),
            Duration::from_secs(10),
        )
        .expect("request");
        (
            r.status,
            serde_json::from_slice(&r.body).unwrap_or(Value::Null),
        )
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Appends `text` to the agent configuration `config`.
fn add_config(config: &Path, text: &str) {
    let mut all = std::fs::read_to_string(config).expect("config");
    all.push_str(text);
    std::fs::write(config, all).expect("config");
}

/// `vigil server init` on `data` and `db` (organisation alpha, admin alice, a
/// certificate for 127.0.0.1); what it printed.
fn init_server(data: &Path, db: &str) -> String {
    let out = vigil()
        .args(["server", "init", "--data"])
        .arg(data)
        .args([
            "--db",
            db,
            "--org",
            "alpha",
            "--admin",
            "alice",
            "--name",
            "127.0.0.1",
        ])
        .output()
        .expect("vigil server init");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `vigil server run` on `data` and `db` at 127.0.0.1:`port`, once it accepts
/// connections (heartbeats asked every second).
fn run_server(data: &Path, db: &str, port: u16) -> Server {
    run_server_with(data, db, port, &[])
}

/// `run_server` with more arguments.
fn run_server_with(data: &Path, db: &str, port: u16, more: &[&str]) -> Server {
    let server = Server(
        vigil()
            .args(["server", "run", "--data"])
            .arg(data)
            .args([
                "--db",
                db,
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--heartbeat-secs",
                "1",
            ])
            .args(more)
            .stdout(Stdio::null())
            .spawn()
            .expect("vigil server run"),
    );
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the server did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

/// Signs `api` in as alice with her password and a TOTP code (the session's cookie and
/// CSRF token kept in `api`), and changes the one-time password when `change`; returns
/// her organisation.
fn sign_in(api: &mut Api, password: &str, key: &[u8], change: bool) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let code = totp::code(key, totp::step_of(now));
    let r = https::request(
        &api.config,
        &api.base,
        "POST",
        "/api/v1/login",
        &[],
        json!({ "user": "alice", "password": password, "totp": code })
            .to_string()
            .as_bytes(),
        Duration::from_secs(10),
    )
    .expect("login");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    let cookie = r
        .header("set-cookie")
        .expect("cookie")
        .split(';')
        .next()
        .expect("kv")
        .to_string();
    let login: Value = serde_json::from_slice(&r.body).expect("json");
    api.headers = vec![
        ("Cookie".into(), cookie),
        (
            "X-CSRF-Token".into(),
            login["csrf_token"].as_str().expect("csrf").into(),
        ),
    ];
    if change {
        let (s, _) = api.call(
            "POST",
            "/api/v1/me/password",
            Some(json!({ "current": password, "new": "correct horse battery staple" })),
        );
        assert_eq!(s, 200);
    }
    login["org"].as_i64().expect("org")
}

fn line_after<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in {text}"))
        .trim()
}

/// Waits until `stream` is closed by the server (EOF or an error); how long it took.
fn closed_within(stream: &mut impl Read, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 256];
    while start.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

/// A client with a certificate the server's own CA signed for a key the server never
/// saw (no enrolment), valid from `from` to `to` (years).
fn ca_signed(data: &Path, ca: &Path, from: i32, to: i32) -> Arc<rustls::ClientConfig> {
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(data.join("ca.key")).expect("ca.key"))
            .expect("CA key");
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(&std::fs::read_to_string(ca).expect("ca.pem"), ca_key)
            .expect("issuer");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["stray".to_string()]).expect("params");
    params.not_before = rcgen::date_time_ymd(from, 1, 1);
    params.not_after = rcgen::date_time_ymd(to, 1, 1);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).expect("signed");
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots(ca))
            .with_client_auth_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("key"),
            )
            .expect("client auth"),
    )
}

fn enroll(state: &Path, url: &str, token: &str, ca: &Path) -> std::process::Output {
    let config = state.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[respond]\nstate_dir = {:?}\n",
            state.join("state").display().to_string()
        ),
    )
    .expect("config");
    vigil()
        .args(["agent", "--config"])
        .arg(&config)
        .args(["--enroll", url, token, "--enroll-ca"])
        .arg(ca)
        .output()
        .expect("vigil agent --enroll")
}

#[test]
fn enrol_heartbeat_and_revoke_with_the_real_binaries() {
    let db = vigil_server::server::block_on(fresh_database())
        .expect("runtime")
        .expect("a PostgreSQL database");
    let dir = TempDir::new("server-e2e");
    let data = dir.path().join("data");

    // init: the CA, its key 0600, the admin's one-time credentials.
    let stdout = init_server(&data, &db);
    let password = line_after(&stdout, "one-time password:").to_string();
    let key = totp::key_of_uri(line_after(&stdout, "totp:")).expect("a TOTP key");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("ca.key"))
        .expect("ca.key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = vigil()
        .args(["server", "init", "--data"])
        .arg(&data)
        .args(["--db", &db])
        .output()
        .expect("init again");
    assert!(!again.status.success(), "a second init is refused");

    // run.
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let _server = run_server(&data, &db, port);
    let base = BaseUrl::parse(&url).expect("url");
    let ca = data.join("ca.pem");
    let mut api = Api {
        config: console_config(&ca),
        base: base.clone(),
        headers: vec![],
    };

    // An API token from the server's host: refused while alice's one-time password
    // stands, given once she has changed it, and taken by the API.
    let api_token = || {
        vigil()
            .args([
                "server",
                "token",
                "--db",
                &db,
                "--org",
                "alpha",
                "--api-user",
                "alice",
            ])
            .output()
            .expect("vigil server token")
    };
    let out = api_token();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("one-time password"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Sign in with password and TOTP, change the one-time password.
    let org = sign_in(&mut api, &password, &key, true);
    let out = api_token();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bearer = format!("Bearer {}", String::from_utf8_lossy(&out.stdout).trim());
    let r = https::request(
        &api.config,
        &api.base,
        "GET",
        &format!("/api/v1/orgs/{org}/agents"),
        &[("Authorization", bearer.as_str())],
        b"",
        Duration::from_secs(10),
    )
    .expect("request");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let (s, v) = api.call(
        "POST",
        &format!("/api/v1/orgs/{org}/host-groups"),
        Some(json!({ "name": "servers" })),
    );
    assert_eq!(s, 200);
    let group = v["id"].as_i64().expect("group");
    let (s, v) = api.call(
        "POST",
        &format!("/api/v1/orgs/{org}/enrolment-tokens"),
        Some(json!({ "group_id": group, "expires_in_secs": 600, "uses": 2 })),
    );
    assert_eq!(s, 200);
    let token = v["token"].as_str().expect("token").to_string();

    // A forged token: refused, nothing written.
    let bad_dir = TempDir::new("agent-bad");
    let out = enroll(
        bad_dir.path(),
        &url,
        &format!("vet_{}", "00".repeat(32)),
        &ca,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HTTP 403"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!bad_dir.path().join("state/server/agent.pem").exists());

    // Enrol the agent binary: key 0600, certificate, CA, and a first heartbeat.
    let agent_dir = TempDir::new("agent-1");
    let out = enroll(agent_dir.path(), &url, &token, &ca);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let state = agent_dir.path().join("state");
    let creds = state.join("server");
    let mode = std::fs::metadata(creds.join("agent.key"))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let link = Link::load(&state).expect("link").expect("enrolled");
    assert_eq!(link.info.org_id, org);
    let (s, v) = api.call("GET", &format!("/api/v1/orgs/{org}/agents"), None);
    assert_eq!(s, 200);
    let agents = v["agents"].as_array().expect("agents");
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0]["id"], json!(link.info.agent_id));
    assert!(
        agents[0]["last_seen"].is_u64(),
        "the first heartbeat was recorded: {v}"
    );
    assert_eq!(agents[0]["version"], json!(env!("CARGO_PKG_VERSION")));

    // A heartbeat with statistics updates the agent.
    let mut stats = serde_json::Map::new();
    stats.insert("events_written".into(), json!(42));
    link.heartbeat("web-1", &stats, false)
        .expect("heartbeat over mutual TLS");
    let (_, v) = api.call("GET", &format!("/api/v1/orgs/{org}/agents"), None);
    assert_eq!(v["agents"][0]["hostname"], "web-1");
    assert_eq!(v["agents"][0]["stats"]["events_written"], 42);

    // Without a client certificate the agents' route refuses; with a certificate from
    // another CA the handshake fails.
    let r = https::request(
        &api.config,
        &base,
        "POST",
        "/agent/v1/heartbeat",
        &[],
        b"{\"hostname\":\"h\",\"version\":\"1\"}",
        Duration::from_secs(5),
    )
    .expect("request");
    assert_eq!(r.status, 401);
    let rogue_key = rcgen::KeyPair::generate().expect("key");
    let rogue = rcgen::CertificateParams::new(vec!["rogue".to_string()])
        .expect("params")
        .self_signed(&rogue_key)
        .expect("cert");
    let rogue_config = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots(&ca))
            .with_client_auth_cert(
                vec![rogue.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(rogue_key.serialize_der()).expect("key"),
            )
            .expect("client auth"),
    );
    let forged = https::request(
        &rogue_config,
        &base,
        "POST",
        "/agent/v1/heartbeat",
        &[],
        b"{}",
        Duration::from_secs(5),
    );
    assert!(forged.is_err() || forged.is_ok_and(|r| r.status != 200));

    // The CA's own certificates are refused when expired, or when no enrolment made them.
    let heartbeat = br#"{"hostname":"h","version":"1"}"#;
    for (what, from, to) in [("expired", 2020, 2021), ("never enrolled", 2020, 4000)] {
        let config = ca_signed(&data, &ca, from, to);
        let r = https::request(
            &config,
            &base,
            "POST",
            "/agent/v1/heartbeat",
            &[],
            heartbeat,
            Duration::from_secs(5),
        );
        assert!(
            r.as_ref().map_or(true, |r| r.status != 200),
            "{what}: {:?}",
            r.map(|r| r.status)
        );
    }

    // Malformed and oversized heartbeats over mutual TLS: 4xx, the agent stays.
    for (body, want) in [
        (b"{not json".to_vec(), 400),
        (b"[\"h\",\"1\"]".to_vec(), 400),
        (br#"{"hostname":"a\u0000b","version":"1"}"#.to_vec(), 400),
        (br#"{"hostname":"h","version":"1","extra":1}"#.to_vec(), 400),
        (
            format!(
                r#"{{"hostname":"h","version":"1","stats":{{"x":"{}"}}}}"#,
                "y".repeat(100_000)
            )
            .into_bytes(),
            413,
        ),
    ] {
        let r = https::request(
            link.client_config(),
            link.base(),
            "POST",
            "/agent/v1/heartbeat",
            &[],
            &body,
            Duration::from_secs(5),
        )
        .expect("answer");
        assert_eq!(
            r.status,
            want,
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(60)])
        );
    }
    link.heartbeat("web-1", &stats, false)
        .expect("still enrolled");

    // Revocation closes a connection held open within 1 s, and refuses new ones.
    let mut held = https::connect(
        link.client_config(),
        link.base(),
        Duration::from_millis(100),
    )
    .expect("connect");
    https::write_request(
        &mut held,
        link.base(),
        "POST",
        "/agent/v1/heartbeat",
        &[],
        b"{\"hostname\":\"web-1\",\"version\":\"1\"}",
        true,
    )
    .expect("write");
    held.sock
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    assert_eq!(https::read_response(&mut held).expect("answer").status, 200);
    held.sock
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let t = Instant::now();
    let (s, _) = api.call(
        "POST",
        &format!("/api/v1/orgs/{org}/agents/{}/revoke", link.info.agent_id),
        None,
    );
    assert_eq!(s, 200);
    let closed = closed_within(&mut held, Duration::from_secs(3)).map(|_| t.elapsed());
    eprintln!("open connection closed {closed:?} after the revocation was asked");
    assert!(
        closed.is_some_and(|d| d < Duration::from_secs(1)),
        "closed after {closed:?}"
    );
    assert!(
        link.heartbeat("web-1", &stats, false).is_err(),
        "a revoked certificate is refused"
    );

    // A whole organisation: the second agent's open connection closes too.
    let agent2 = TempDir::new("agent-2");
    let out = enroll(agent2.path(), &url, &token, &ca);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link2 = Link::load(&agent2.path().join("state"))
        .expect("link")
        .expect("enrolled");
    let mut held = https::connect(link2.client_config(), link2.base(), Duration::from_secs(5))
        .expect("connect");
    https::write_request(
        &mut held,
        link2.base(),
        "POST",
        "/agent/v1/heartbeat",
        &[],
        b"{\"hostname\":\"db-1\",\"version\":\"1\"}",
        true,
    )
    .expect("write");
    assert_eq!(https::read_response(&mut held).expect("answer").status, 200);
    held.sock
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let t = Instant::now();
    let (s, v) = api.call(
        "POST",
        &format!("/api/v1/orgs/{org}/agents/revoke-all"),
        None,
    );
    assert_eq!((s, &v["revoked"]), (200, &json!(1)));
    let closed = closed_within(&mut held, Duration::from_secs(3)).map(|_| t.elapsed());
    eprintln!("open connection closed {closed:?} after the revocation was asked");
    assert!(
        closed.is_some_and(|d| d < Duration::from_secs(1)),
        "closed after {closed:?}"
    );
    assert!(link2.heartbeat("db-1", &stats, false).is_err());
    // The token was revoked with the organisation: no third enrolment.
    let out = enroll(TempDir::new("agent-3").path(), &url, &token, &ca);
    assert!(!out.status.success());

    // The audit log: enrolments, refusals, revocations.
    let (s, v) = api.call("GET", &format!("/api/v1/orgs/{org}/audit?limit=1000"), None);
    assert_eq!(s, 200);
    let entries = v["entries"].as_array().expect("entries");
    let has = |action: &str, result: &str| {
        entries.iter().any(|e| {
            e["action"] == action && e["result"].as_str().is_some_and(|r| r.starts_with(result))
        })
    };
    assert!(has("agent.enroll", "ok"));
    assert!(has("agent.revoke", "ok"));
    assert!(has("agent.revoke_all", "ok"));
    assert!(has("login", "ok"));
    assert!(
        has("agent.connect", "denied: revoked"),
        "the revoked certificate's attempt is in the log"
    );
}

/// Every event in a lake (its log and Parquet files), as JSON, sorted.
fn lake_events(root: &Path) -> Vec<String> {
    let snap = vigil_store::snapshot(root, None, None);
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
    let mut batches: Vec<_> = snap.log.into_values().flatten().collect();
    for f in snap.files.into_values().flatten() {
        batches.extend(vigil_store::read_parquet(&f.path).expect("parquet"));
    }
    let mut out = Vec::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            out.push(vigil_store::row_to_json(b, i).to_string());
        }
    }
    out.sort();
    out
}

/// Every line of the agent's events output, as the lake gives it back, sorted.
fn written_events(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| v.to_string())
        .collect();
    out.sort();
    out
}

/// Stops the agent as an operator does (SIGINT), checks that it exits cleanly, and
/// returns every event it wrote, as `written_events` gives them.
fn stop_agent(agent: &mut Server, events: &Path, log: &Path) -> Vec<String> {
    signal(&agent.0, "-INT");
    let status = agent.0.wait().expect("agent exit");
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    written_events(events)
}

fn signal(child: &Child, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
}

/// Runs `n` short processes (activity for the sensor).
fn activity(n: usize) {
    for _ in 0..n {
        let st = Command::new("/bin/true").status().expect("true");
        assert!(st.success());
    }
}

/// One process whose command line names `marker`: the marker rule fires once.
fn trigger(marker: &str) {
    let st = Command::new("/bin/true")
        .arg(marker)
        .status()
        .expect("true");
    assert!(st.success());
}

/// The organisation's Detection Findings whose title names `marker` (both triggers set
/// off the same rule).
fn findings_of(api: &Api, org: i64, marker: &str) -> Vec<Value> {
    let (s, v) = api.call("GET", &format!("/api/v1/orgs/{org}/findings"), None);
    if s != 200 {
        return Vec::new();
    }
    v["findings"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|f| {
            f["class_uid"] == 2004 && f["title"].as_str().is_some_and(|t| t.contains(marker))
        })
        .collect()
}

fn wait_until(secs: u64, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    ok()
}

/// A server set up for a test: `init` (organisation alpha, admin alice), `run` on a free
/// port, alice signed in with her password changed, and an enrolled agent's directory.
struct Fleet {
    dir: TempDir,
    db: String,
    data: std::path::PathBuf,
    port: u16,
    url: String,
    ca: std::path::PathBuf,
    api: Api,
    org: i64,
    key: Vec<u8>,
    server: Option<Server>,
    agent_dir: std::path::PathBuf,
}

fn fleet(name: &str) -> Fleet {
    let db = vigil_server::server::block_on(fresh_database())
        .expect("runtime")
        .expect("a PostgreSQL database");
    let dir = TempDir::new(name);
    let data = dir.path().join("data");
    let stdout = init_server(&data, &db);
    let password = line_after(&stdout, "one-time password:").to_string();
    let key = totp::key_of_uri(line_after(&stdout, "totp:")).expect("a TOTP key");
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let server = Some(run_server(&data, &db, port));
    let ca = data.join("ca.pem");
    let mut api = Api {
        config: console_config(&ca),
        base: BaseUrl::parse(&url).expect("url"),
        headers: vec![],
    };
    let org = sign_in(&mut api, &password, &key, true);
    // The token from the server's host, as a provisioning script makes it.
    let out = vigil()
        .args([
            "server", "token", "--db", &db, "--org", "alpha", "--group", "web", "--uses", "1",
        ])
        .output()
        .expect("vigil server token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(token.starts_with("vet_"), "{token}");
    let agent_dir = dir.path().join("agent");
    std::fs::create_dir_all(&agent_dir).expect("agent dir");
    let out = enroll(&agent_dir, &url, &token, &ca);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Fleet {
        dir,
        db,
        data,
        port,
        url,
        ca,
        api,
        org,
        key,
        server,
        agent_dir,
    }
}

/// The real agent of `agent_dir` (enrolled by `fleet`), with one rule that `marker` in a
/// command line sets off (tagged T1059.004); its events output and its log.
fn marker_agent(
    agent_dir: &Path,
    marker: &str,
) -> (Server, std::path::PathBuf, std::path::PathBuf) {
    let rules = agent_dir.join("marker.yml");
    std::fs::write(
        &rules,
        format!(
            "title: Marker {marker} run\nid: 0f5e2c1a-0000-4000-8000-0000000000aa\n\
             status: test\nlevel: high\ntags:\n    - attack.execution\n    - attack.t1059.004\n\
             logsource: {{product: linux, category: process_creation}}\n\
             detection:\n    selection:\n        CommandLine|contains: '{marker}'\n    \
             condition: selection\n"
        ),
    )
    .expect("rule");
    let events = agent_dir.join("events.jsonl");
    let log = agent_dir.join("agent.log");
    let agent = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["agent", "--config"])
        .arg(agent_dir.join("agent.toml"))
        .arg("--output")
        .arg(&events)
        .args(["--no-builtin-rules", "--rules"])
        .arg(&rules)
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("vigil agent");
    (Server(agent), events, log)
}

/// `marker_agent`, once its log says it runs and ships to the server.
fn shipping_agent(
    agent_dir: &Path,
    marker: &str,
) -> (Server, std::path::PathBuf, std::path::PathBuf) {
    let (agent, events, log) = marker_agent(agent_dir, marker);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_until(30, || log_text().contains("shipping to the server")
            && log_text().contains("agent running")),
        "{}",
        log_text()
    );
    (agent, events, log)
}

/// The real agent, with its eBPF sensor, enrolled and shipping to the real server: the
/// server is killed (SIGKILL) mid-stream and started again while the agent goes on;
/// afterwards the server's lake holds every event the agent wrote exactly once (compared
/// as a multiset with the agent's own events output), and the findings made while the
/// server was up and while it was down are each in the organisation's findings once.
#[test]
fn an_agent_ships_every_event_once_through_a_server_killed_mid_stream() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let mut f = fleet("ship-e2e");
    let mut server = f.server.take();
    let (db, data, port, url) = (f.db.clone(), f.data.clone(), f.port, f.url.clone());
    let (ca, org, key, agent_dir) = (f.ca.clone(), f.org, f.key.clone(), f.agent_dir.clone());
    let api = &f.api;
    // The agent, with one rule that a marker in a command line sets off.
    let marker = format!("vigil-ship-{}", std::process::id());
    let (mut agent, events, log) = shipping_agent(&agent_dir, &marker);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();

    // Server up: activity and a finding, seen through the API.
    activity(100);
    let up = format!("{marker}-up");
    let t = Instant::now();
    trigger(&up);
    assert!(
        wait_until(20, || findings_of(api, org, &marker).len() == 1),
        "the finding made while the server is up reaches it: {:?} {}\n{}",
        api.call("GET", &format!("/api/v1/orgs/{org}/findings"), None),
        std::fs::read_to_string(&events)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"class_uid\":2004"))
            .collect::<Vec<_>>()
            .join("\n"),
        log_text()
    );
    eprintln!(
        "finding visible through the API {:?} after its trigger",
        t.elapsed()
    );

    // The server killed mid-stream; the agent goes on, queueing on disk.
    activity(50);
    drop(server.take());
    activity(100);
    let down = format!("{marker}-down");
    trigger(&down);
    activity(100);
    std::thread::sleep(Duration::from_millis(500));
    let _server = run_server(&data, &db, port);
    let api = {
        let mut a = Api {
            config: console_config(&ca),
            base: BaseUrl::parse(&url).expect("url"),
            headers: vec![],
        };
        // A new step: the code of the first sign-in may not be used twice.
        let step = |t: u64| totp::step_of(t);
        let now = || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock")
                .as_secs()
        };
        let first = step(now());
        while step(now()) == first {
            std::thread::sleep(Duration::from_millis(200));
        }
        sign_in(&mut a, "correct horse battery staple", &key, false);
        a
    };
    activity(50);
    assert!(
        wait_until(30, || findings_of(&api, org, &marker).len() == 2),
        "the finding made while the server was down arrives: {}",
        log_text()
    );
    let lake = data.join("lake").join(format!("org={org}"));
    the_lake_holds_every_event_once(&mut agent, &events, &log, &lake);
    // One finding per trigger, each once: the rule's title names the marker.
    assert_eq!(findings_of(&api, org, &marker).len(), 2);
}

/// Waits until the lake holds what the agent has written by now (it goes on writing
/// meanwhile, a second or so ahead of its shipping), stops the agent, waits for its last
/// events, and checks that the lake holds every event the agent wrote exactly once
/// (compared as multisets; what is missing or extra named).
fn the_lake_holds_every_event_once(agent: &mut Server, events: &Path, log: &Path, lake: &Path) {
    let log_text = || std::fs::read_to_string(log).unwrap_or_default();
    let by_now = written_events(events).len();
    assert!(
        wait_until(60, || {
            let l = lake_events(lake).len();
            eprintln!("written {by_now} by then, in the lake {l}");
            l >= by_now
        }),
        "the backlog reaches the lake: {}",
        log_text()
    );
    let written = stop_agent(agent, events, log);
    assert!(
        wait_until(30, || lake_events(lake).len() >= written.len()),
        "{}",
        log_text()
    );
    // Nothing more arrives late.
    std::thread::sleep(Duration::from_secs(1));
    let stored = lake_events(lake);
    assert!(written.len() > 500, "{} events", written.len());
    if stored != written {
        let missing: Vec<_> = written
            .iter()
            .filter(|e| !stored.contains(e))
            .take(3)
            .collect();
        let extra: Vec<_> = stored
            .iter()
            .filter(|e| !written.contains(e))
            .take(3)
            .collect();
        panic!(
            "the lake ({}) is not the agent's events ({}): missing {missing:#?} extra {extra:#?}",
            stored.len(),
            written.len()
        );
    }
}

/// Whether some process holds the lock of `org`'s lake (`vigil_server::lake`).
fn lake_held(data: &Path, org: i64) -> bool {
    let path = data.join("lake").join(format!("org={org}.lock"));
    let Ok(f) = std::fs::OpenOptions::new().write(true).open(path) else {
        return false;
    };
    matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

/// Two `vigil server run --nats` processes on one database, one data directory and one
/// NATS (`scripts/nats`), the real agent shipping through one of them (A) while the
/// other (B) holds the organisation's lake and stores what A queues: B is killed
/// (SIGKILL) mid-stream, and NATS killed and restarted. A takes the lake; afterwards it
/// holds every event the agent wrote exactly once (compared as a multiset with the
/// agent's own events output), and each finding is in the organisation's findings once.
#[test]
fn two_servers_and_nats_lose_and_double_nothing_when_one_is_killed_mid_stream() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let nats = vigil_server::testing::Nats::start().expect("NATS");
    let mut f = fleet("nats-e2e");
    drop(f.server.take());
    let (db, data, org) = (f.db.clone(), f.data.clone(), f.org);
    let with_nats = ["--nats", nats.url.as_str()];
    // B first, so that it is B that holds the lake.
    let mut b = Some(run_server_with(&data, &db, free_port(), &with_nats));
    assert!(wait_until(20, || lake_held(&data, org)), "B takes the lake");
    let _a = run_server_with(&data, &db, f.port, &with_nats);
    let api = &f.api;
    let marker = format!("vigil-nats-{}", std::process::id());
    let (mut agent, events, log) = shipping_agent(&f.agent_dir, &marker);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    activity(100);
    let t = Instant::now();
    trigger(&format!("{marker}-before"));
    assert!(
        wait_until(20, || findings_of(api, org, &marker).len() == 1),
        "the finding reaches the console through A, NATS and B: {}",
        log_text()
    );
    eprintln!(
        "finding visible through A, NATS and B {:?} after its trigger",
        t.elapsed()
    );
    let lake = data.join("lake").join(format!("org={org}"));
    activity(50);
    assert!(
        wait_until(20, || lake_events(&lake).len() >= 100),
        "B stores what A queues"
    );
    activity(50);
    // B killed mid-stream: its lock released with it, A takes the lake.
    drop(b.take());
    activity(100);
    trigger(&format!("{marker}-after"));
    activity(100);
    // NATS killed and started again: A answers 503 meanwhile, the agent keeps its queue.
    nats.restart().expect("NATS restart");
    activity(50);
    assert!(
        wait_until(60, || findings_of(api, org, &marker).len() == 2),
        "the finding made after B's death arrives: {}",
        log_text()
    );
    the_lake_holds_every_event_once(&mut agent, &events, &log, &lake);
    assert_eq!(findings_of(api, org, &marker).len(), 2);
}

/// A content bundle in `root/bundle-VERSION` whose one Sigma rule fires on `marker` (or,
/// `broken`, a rule whose condition names no selection: the manifest is sound, the
/// agent's check refuses it), sealed with `vigil content seal`; its files as the
/// server's upload takes them.
fn rollout_bundle(
    root: &Path,
    version: &str,
    marker: &str,
    broken: bool,
) -> (std::path::PathBuf, Value) {
    let dir = root.join(format!("bundle-{version}"));
    std::fs::create_dir_all(dir.join("sigma")).expect("dir");
    let condition = if broken { "nothing_here" } else { "selection" };
    let rule = format!(
        "title: Rollout {version} {marker}\nid: 0f5e2c1a-0000-4000-8000-0000000001{:02}\n\
         status: test\nlevel: high\nlogsource: {{product: linux, category: process_creation}}\n\
         detection:\n    selection:\n        CommandLine|contains: '{marker}-{version}'\n    \
         condition: {condition}\n",
        version.len() + usize::from(broken)
    );
    std::fs::write(dir.join("sigma/rule.yml"), rule).expect("rule");
    let out = vigil()
        .args(["content", "seal"])
        .arg(&dir)
        .arg(version)
        .output()
        .expect("vigil content seal");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files = serde_json::Map::new();
    for name in ["bundle.toml", "sigma/rule.yml"] {
        let text = std::fs::read_to_string(dir.join(name)).expect("bundle file");
        files.insert(name.into(), Value::String(text));
    }
    (dir, json!({ "files": files }))
}

/// The organisation's latest rollout.
fn latest_rollout(api: &Api, org: i64) -> Value {
    let (s, v) = api.call("GET", &format!("/api/v1/orgs/{org}/rollouts"), None);
    assert_eq!(s, 200, "{v}");
    v["rollouts"][0].clone()
}

/// A staged content rollout to the real agent, enrolled in the canary group: a good
/// bundle is fetched, checked, applied and swapped in (its rule fires) and the rollout
/// completes; a bundle the agent's check refuses halts its rollout and the agent keeps
/// running what it ran; a bundle running when the agent is killed and started again
/// halts its rollout, and the agent is told to leave it and goes back to the bundle
/// before.
#[test]
fn a_content_rollout_reaches_the_real_agent_and_halts_on_its_health() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let f = fleet("rollout-e2e");
    let (org, api, agent_dir) = (f.org, &f.api, f.agent_dir.clone());
    let marker = format!("vigil-rollout-{}", std::process::id());
    let store = agent_dir.join("content");
    let config = agent_dir.join("agent.toml");
    add_config(
        &config,
        &format!(
            "[content]\ndir = {:?}\ncheck_secs = 1\n",
            store.display().to_string()
        ),
    );
    // v1 applied by hand, as a host is set up; v2 good, v3 refused by the agent, v4 good.
    let (b1, _) = rollout_bundle(&agent_dir, "v1", &marker, false);
    let out = vigil()
        .args(["content", "apply", "--config"])
        .arg(&config)
        .arg(&b1)
        .output()
        .expect("vigil content apply");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (v, broken) in [("v2", false), ("v3", true)] {
        let (_, files) = rollout_bundle(&agent_dir, v, &marker, broken);
        let (s, r) = api.call("POST", &format!("/api/v1/orgs/{org}/content"), Some(files));
        assert_eq!(s, 200, "upload {v}: {r}");
    }
    // v4 through the command line, as an admin's script does: `vigil content push`,
    // with an API token made on the server's host.
    let (b4, _) = rollout_bundle(&agent_dir, "v4", &marker, false);
    let out = vigil()
        .args([
            "server",
            "token",
            "--db",
            &f.db,
            "--org",
            "alpha",
            "--api-user",
            "alice",
        ])
        .output()
        .expect("vigil server token");
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(token.starts_with("vat_"), "{out:?}");
    let ca = f.ca.to_str().expect("utf-8").to_string();
    let admin = |args: &[&str]| {
        let out = vigil()
            .arg("content")
            .args(args)
            .args(["--server", &f.url, "--ca", &ca])
            .env("VIGIL_API_TOKEN", &token)
            .output()
            .expect("vigil content");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let said = admin(&["push", b4.to_str().expect("utf-8")]);
    assert!(said.contains("bundle v4 uploaded"), "{said}");
    let (agent, events, log) = marker_agent(&agent_dir, &marker);
    let mut agent = Some(agent);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let start = |v: &str, secs: u32| {
        let body = json!({ "version": v, "canary_group": "web", "canary_secs": secs });
        let (s, r) = api.call("POST", &format!("/api/v1/orgs/{org}/rollouts"), Some(body));
        (s, r)
    };
    // A canary must have been seen: the agent's first heartbeat.
    assert!(
        wait_until(30, || start("v2", 1).0 == 200),
        "the rollout of v2 starts once the agent is seen: {}",
        log_text()
    );
    assert!(
        wait_until(60, || latest_rollout(api, org)["state"] == "complete"),
        "v2 reaches the agent and the rollout completes: {}\n{}",
        latest_rollout(api, org),
        log_text()
    );
    let fired = |v: &str| {
        std::fs::read_to_string(&events)
            .unwrap_or_default()
            .lines()
            .any(|l| {
                l.contains("\"class_uid\":2004") && l.contains(&format!("Rollout {v} {marker}"))
            })
    };
    assert!(
        wait_until(20, || {
            trigger(&format!("{marker}-v2"));
            fired("v2")
        }),
        "v2's rule runs in the agent: {}",
        log_text()
    );
    // v3: the agent's check refuses it; the rollout halts by itself.
    assert_eq!(start("v3", 1).0, 200);
    assert!(
        wait_until(60, || latest_rollout(api, org)["state"] == "halted"),
        "a refused bundle halts its rollout: {}\n{}",
        latest_rollout(api, org),
        log_text()
    );
    let r = latest_rollout(api, org);
    assert!(
        r["reason"]
            .as_str()
            .unwrap_or("")
            .contains("refused the bundle"),
        "{r}"
    );
    assert!(
        wait_until(20, || {
            trigger(&format!("{marker}-v2"));
            fired("v2")
        }),
        "v2 still runs"
    );
    // v4 runs (the canary time long enough to still be under way); then the agent is
    // killed and started again: halted, and v4 left for v2.
    let said = admin(&[
        "rollout",
        "v4",
        "--canary-group",
        "web",
        "--canary-secs",
        "600",
    ]);
    assert!(
        said.contains("of bundle v4: canary group web first"),
        "{said}"
    );
    assert!(
        wait_until(60, || latest_rollout(api, org)["agents"][0]["state"]
            == "running"),
        "v4 runs: {}\n{}",
        latest_rollout(api, org),
        log_text()
    );
    drop(agent.take());
    let (again, events2, log2) = marker_agent(&agent_dir, &marker);
    let mut again = again;
    let log2_text = || std::fs::read_to_string(&log2).unwrap_or_default();
    assert!(
        wait_until(60, || latest_rollout(api, org)["agents"][0]["state"]
            == "back"),
        "the restarted agent is told to leave v4 and goes back: {}\n{}",
        latest_rollout(api, org),
        log2_text()
    );
    let r = latest_rollout(api, org);
    assert_eq!(r["state"], "halted", "{r}");
    let reason = r["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("restarted") || reason.contains("silent"),
        "{r}"
    );
    assert_eq!(r["agents"][0]["before"], "v2", "{r}");
    assert!(
        log2_text().contains("back to the previous content"),
        "{}",
        log2_text()
    );
    let said = admin(&["rollouts"]);
    assert!(
        said.lines()
            .next()
            .unwrap_or("")
            .contains("bundle v4 canary group web (600 s): halted"),
        "{said}"
    );
    assert!(said.contains("(canary): back (ran v2)"), "{said}");
    let _ = stop_agent(&mut again, &events2, &log2);
}

/// Waits for the next TOTP step: each step's code is taken once per user.
fn next_totp_step() -> u64 {
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs()
    };
    let first = totp::step_of(now());
    while totp::step_of(now()) == first {
        std::thread::sleep(Duration::from_millis(200));
    }
    totp::step_of(now())
}

/// Signs alice in through the console's page at `url`, with the code of the next TOTP
/// step (each step's code is taken once).
fn page_sign_in(b: &webdriver::Browser, url: &str, key: &[u8]) {
    b.open(&format!("{url}/"));
    assert!(wait_until(10, || b.visible("#login")), "the sign-in form");
    let step = next_totp_step();
    b.type_into("#user", "alice");
    b.type_into("#password", "correct horse battery staple");
    b.type_into("#totp", &totp::code(key, step));
    b.click("#signin");
}

/// The console in Debian's headless chromium over WebDriver, against the real server
/// binary: a finding and an incident shipped by an enrolled agent's link, sign-in with
/// password and TOTP in the page, the queue showing both, a triage status set from the
/// page and seen through the API and the audit log; no console error (the CSP holds);
/// a screenshot kept in `target/test-artefacts/console-queue.png`.
#[test]
fn the_console_signs_in_with_totp_shows_the_queue_and_triages() {
    let Some(b) = webdriver::browser_or_skip() else {
        return;
    };
    let Fleet {
        url,
        api,
        org,
        key,
        agent_dir,
        server: _server,
        dir: _dir,
        ..
    } = fleet("console-e2e");
    // A finding and its incident, as the agent ships them; the title carries markup,
    // which the page must show as text.
    let link = Link::load(&agent_dir.join("state"))
        .expect("link")
        .expect("enrolled");
    let now = vigil_event::time::now_ms();
    let lines = format!(
        "{}\n{}\n",
        json!({"class_uid": 2004, "activity_id": 1, "time": now, "severity_id": 5,
               "metadata": {"uid": "f-console-1", "correlation_uid": "story-42"},
               "finding_info": {"title": "Reverse shell <b>bash</b>", "uid": "r1"}}),
        json!({"class_uid": 2005, "activity_id": 1, "time": now, "severity_id": 5,
               "metadata": {"uid": "incident@story-42#1", "correlation_uid": "story-42"},
               "desc": "Reverse shell then persistence", "finding_info_list": []})
    );
    let body = zstd::bulk::compress(lines.as_bytes(), 3).expect("zstd");
    let mut conn = vigil_agent::server::ship::Conn::new(link);
    assert_eq!(
        conn.post(vigil_agent::server::spool::Stream::Findings, 1, 2, &body),
        vigil_agent::server::ship::Sent::Acked
    );

    page_sign_in(&b, &url, &key);
    let visible = |css: &str| b.visible(css);
    assert!(
        wait_until(10, || visible("#queue") && !visible("#login")),
        "signed in: {:?}",
        b.run("return document.getElementById('login-error').textContent")
    );
    let rows = || {
        b.run(
            "return [...document.querySelectorAll('#rows tr')].map(r => \
             [...r.children].map(c => c.textContent))",
        )
    };
    assert!(
        wait_until(10, || rows().as_array().is_some_and(|r| r.len() == 2)),
        "{}",
        rows()
    );
    let text = rows().to_string();
    assert!(
        text.contains("Reverse shell <b>bash</b>"),
        "markup shown as text: {text}"
    );
    assert!(text.contains("Reverse shell then persistence"), "{text}");
    assert!(
        text.contains("incident") && text.contains("Critical"),
        "{text}"
    );
    assert_eq!(
        b.run("return document.querySelectorAll('#rows b').length"),
        json!(0),
        "no markup from the data"
    );
    let png = b.screenshot();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    let artefacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artefacts");
    std::fs::create_dir_all(&artefacts).expect("artefacts");
    std::fs::write(artefacts.join("console-queue.png"), &png).expect("screenshot");

    // Triage from the page: the finding's status to "in progress".
    b.run(
        "const s = document.querySelector('tr[data-uid=\"f-console-1\"] select.status'); \
         s.value = 'in_progress'; s.dispatchEvent(new Event('change')); return true;",
    );
    let status_of = |uid: &str| {
        let (_, v) = api.call("GET", &format!("/api/v1/orgs/{org}/findings"), None);
        v["findings"]
            .as_array()
            .and_then(|f| f.iter().find(|x| x["uid"] == uid).cloned())
            .map(|x| x["status"].clone())
    };
    // The page's sign-in ended the API client's session? No: a sign-in adds a session.
    assert!(
        wait_until(10, || status_of("f-console-1")
            == Some(json!("in_progress"))),
        "{:?}",
        status_of("f-console-1")
    );
    assert_eq!(status_of("incident@story-42#1"), Some(json!("new")));
    let (_, v) = api.call("GET", &format!("/api/v1/orgs/{org}/audit?limit=100"), None);
    assert!(
        v["entries"].as_array().is_some_and(|e| e
            .iter()
            .any(|x| x["action"] == "finding.status" && x["result"] == "ok")),
        "{v}"
    );
    // Keyboard: j moves to the incident, 3 resolves it.
    b.run("document.activeElement.blur(); return true;");
    b.run(
        "for (const k of ['j', '3']) document.dispatchEvent(new KeyboardEvent('keydown', {key: k})); \
         return true;",
    );
    assert!(
        wait_until(10, || status_of("incident@story-42#1")
            == Some(json!("resolved"))),
        "{:?}",
        status_of("incident@story-42#1")
    );
    // Bulk: both selected, marked false positives at once, assigned to alice.
    assert!(b.click_now("#select-all"), "the select-all box");
    assert!(
        wait_until(5, || b.visible("#bulk")),
        "the bulk bar with two selected"
    );
    assert_eq!(b.text_of("#bulk-count"), json!("2 selected"));
    b.run(
        "const s = document.getElementById('bulk-status'); s.value = 'false_positive'; \
         return true;",
    );
    assert!(b.click_now("#bulk-apply"));
    assert!(
        wait_until(10, || status_of("f-console-1")
            == Some(json!("false_positive"))
            && status_of("incident@story-42#1")
                == Some(json!("false_positive"))),
        "{:?} {:?}",
        status_of("f-console-1"),
        status_of("incident@story-42#1")
    );
    assert!(b.click_now("#bulk-mine"));
    let assignees = || {
        let (_, v) = api.call("GET", &format!("/api/v1/orgs/{org}/findings"), None);
        v["findings"]
            .as_array()
            .map(|a| a.iter().map(|f| f["assignee"].clone()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert!(
        wait_until(10, || assignees() == vec![json!("alice"), json!("alice")]),
        "{:?}",
        assignees()
    );
    let severe: Vec<Value> = b
        .console()
        .into_iter()
        .filter(|m| m["level"] == "SEVERE")
        .collect();
    assert!(
        severe.is_empty(),
        "console errors (a CSP violation?): {severe:?}"
    );
}

/// Two network namespaces this test makes (`support::netns`): the calling thread is
/// moved into `host` (so the server, the agent, chromedriver and chromium it starts
/// live there, on that namespace's own loopback), and `peer` holds an address answering
/// `ok` on a TCP port: what an isolated host must no longer reach. The host's own
/// network is never touched. On drop the thread goes back and both namespaces go.
struct Netns {
    original: std::fs::File,
    _spaces: support::netns::Namespaces,
}

const PEER_ADDR: &str = "10.232.9.3";
const PEER_PORT: u16 = 8443;

impl Drop for Netns {
    fn drop(&mut self) {
        // Before the namespaces go (the fields are dropped after this).
        let _ = nix::sched::setns(&self.original, nix::sched::CloneFlags::CLONE_NEWNET);
    }
}

/// The namespaces, or `None` (a skip that says why) without `ip`, `nft` or `python3`.
fn enter_netns() -> Option<Netns> {
    if !support::netns::tools_or_skip() {
        return None;
    }
    let mut spaces = support::netns::pair("con", "10.232.9.1/24", &[&format!("{PEER_ADDR}/24")]);
    spaces.servers.push(support::netns::answering(
        &spaces.peer,
        PEER_ADDR,
        PEER_PORT,
    ));
    let original = std::fs::File::open("/proc/thread-self/ns/net").expect("this thread's netns");
    let target = std::fs::File::open(format!("/run/netns/{}", spaces.host)).expect("the new netns");
    nix::sched::setns(&target, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
    Some(Netns {
        original,
        _spaces: spaces,
    })
}

/// Whether this thread's namespace reaches the peer's address (its `ok` within 1 s).
fn reaches_peer() -> bool {
    let addr = std::net::SocketAddr::from(([10, 232, 9, 3], PEER_PORT));
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 2];
    s.read_exact(&mut buf).is_ok() && &buf == b"ok"
}

/// Remote response from the console, for real: the server, an enrolled agent with its
/// eBPF sensor, and headless chromium all run in a network namespace the test makes.
/// A process sets off a rule; its incident reaches the queue; the analyst (signed in
/// with TOTP in the page) triages it, opens the incident (the process tree with the
/// flagged branch), kills the flagged branch, isolates the host from the incident page
/// (the peer address then unreachable, the server still reached), lifts the isolation
/// from the hosts page (the peer reachable again), each confirmed in the page and
/// carried out by the agent; the audit log page lists the actions, the agent's
/// Remediation Activity records reach the organisation's lake, and the page logs no
/// error. Screenshots: `target/test-artefacts/console-incident.png`,
/// `console-hosts.png`.
#[test]
fn the_console_kills_isolates_and_lifts_through_a_real_agent() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let Some(_ns) = enter_netns() else { return };
    assert!(
        wait_until(10, reaches_peer),
        "the peer answers before any isolation"
    );
    let Some(b) = webdriver::browser_or_skip() else {
        return;
    };
    let f = fleet("console-response");
    let (api, org, key, agent_dir) = (&f.api, f.org, f.key.clone(), f.agent_dir.clone());
    let marker = format!("vigil-console-{}", std::process::id());
    // The quarantine vault in the test's directory.
    let config = agent_dir.join("agent.toml");
    let vault = agent_dir.join("vault");
    add_config(
        &config,
        &format!(
            "[respond.quarantine]\nvault_dir = {:?}\n",
            vault.display().to_string()
        ),
    );
    let (agent, _, log) = marker_agent(&agent_dir, &marker);
    let _agent = agent;
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_until(30, || log_text().contains("agent running")),
        "{}",
        log_text()
    );
    // The intruder: a dropped copy of a shell whose command line names the marker,
    // with a child.
    let dropper = agent_dir.join("dropper");
    std::fs::copy("/bin/sh", &dropper).expect("the dropper");
    let dropped = dropper.display().to_string();
    let mut shell = Command::new(&dropper)
        .args(["-c", &format!("sleep 300; : {marker}")])
        .spawn()
        .expect("sh");
    assert!(
        wait_until(20, || findings_of(api, org, &marker).len() == 1),
        "the finding reaches the server\n{}",
        log_text()
    );
    let finding = findings_of(api, org, &marker).remove(0);
    let uid = finding["uid"].as_str().expect("uid").to_string();

    page_sign_in(&b, &f.url, &key);
    let visible = |css: &str| b.visible(css);
    let click_now = |css: &str| b.click_now(css);
    let text_of = |css: &str| b.text_of(css);
    let row = format!("tr[data-uid={uid:?}]");
    assert!(
        wait_until(10, || visible(&row)),
        "the agent's finding in the queue: {:?}",
        text_of("#rows")
    );
    // Triage: in progress.
    b.run(&format!(
        "const s = document.querySelector('{row} select.status'); \
         s.value = 'in_progress'; s.dispatchEvent(new Event('change')); return true;"
    ));
    let status = || {
        let (_, v) = api.call("GET", &format!("/api/v1/orgs/{org}/findings"), None);
        v["findings"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["uid"] == uid.as_str()).cloned())
            .map(|x| x["status"].clone())
    };
    assert!(
        wait_until(10, || status() == Some(json!("in_progress"))),
        "{:?}",
        status()
    );

    // The incident: the flagged shell in its process tree, the technique named.
    assert!(click_now(&format!("{row} a.open")), "the incident's link");
    assert!(
        wait_until(10, || visible("#story")
            && b.run(
                "return document.querySelectorAll('#tree li.flagged').length"
            )
            .as_u64()
            .is_some_and(|n| n >= 1)),
        "the incident page: {:?} {:?}",
        text_of("#story-error"),
        text_of("#tree")
    );
    let flagged = b.run(
        "return [...document.querySelectorAll('#tree li.flagged > .proc .name')].map(e => e.textContent)",
    );
    assert!(
        flagged
            .as_array()
            .is_some_and(|a| a.iter().any(|n| n.as_str() == Some(dropped.as_str()))),
        "{flagged}"
    );
    let techniques = text_of("#story-techniques").to_string();
    assert!(techniques.contains("T1059.004"), "{techniques}");
    // A note for the team, kept as text.
    b.type_into(
        "#note-text",
        "Shell from the test <i>harness</i>: contain it.",
    );
    b.click("#note-add");
    assert!(
        wait_until(10, || text_of("#notes")
            .to_string()
            .contains("Shell from the test <i>harness</i>: contain it.")),
        "the note on the incident page: {:?}",
        text_of("#notes")
    );
    assert_eq!(
        b.run("return document.querySelectorAll('#notes i').length"),
        json!(0)
    );

    // Kill the flagged branch: confirmed in the page, done by the agent.
    let action_done = |table: &str, kind: &str| {
        b.run(&format!(
            "return [...document.querySelectorAll('#{table} tr')].some(r => \
             r.children[1].textContent === '{kind}' && r.children[4].textContent === 'done')"
        )) == json!(true)
    };
    let on_dropper = |button: &str| {
        b.run(&format!(
            "const li = [...document.querySelectorAll('#tree li.flagged')]\
               .find(l => l.querySelector(':scope > .proc .name').textContent === {dropped:?}); \
             li.querySelector(':scope > .proc button.{button}').click(); return true;"
        ))
    };
    // Each action asked on the incident page: confirmed in the page (the question
    // naming what it does, where given), then carried out by the agent.
    let confirm_and_wait = |says: Option<&str>, kind: &str| {
        assert!(wait_until(5, || visible("#confirm")), "a confirmation");
        if let Some(says) = says {
            let question = text_of("#confirm-text").to_string();
            assert!(question.contains(says), "{question}");
        }
        b.click("#confirm-yes");
        assert!(
            wait_until(20, || action_done("story-actions", kind)),
            "the {kind} carried out: {:?}\n{}",
            text_of("#story-actions"),
            log_text()
        );
    };
    on_dropper("kill");
    confirm_and_wait(Some("Kill"), "kill");
    assert!(
        wait_until(10, || shell.try_wait().ok().flatten().is_some()),
        "the shell was killed"
    );
    // Quarantine its executable: the dropped file leaves the disk for the vault.
    on_dropper("quarantine");
    confirm_and_wait(Some("quarantine vault"), "quarantine");
    assert!(!dropper.exists(), "the dropped file is gone");
    assert!(
        std::fs::read_dir(&vault).map(|d| d.count()).unwrap_or(0) > 0,
        "and kept in the vault"
    );

    // Isolate from the incident page.
    b.click("#story-isolate");
    confirm_and_wait(None, "isolate");
    assert!(!reaches_peer(), "isolated: the peer is cut off");
    assert!(
        wait_until(10, || visible("#story-lift")),
        "the page shows the host isolated"
    );
    let artefacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artefacts");
    std::fs::create_dir_all(&artefacts).expect("artefacts");
    std::fs::write(artefacts.join("console-incident.png"), b.screenshot()).expect("png");

    // Lift from the hosts page: the server was reached all along.
    b.run("location.hash = '#/hosts'; return true;");
    assert!(
        wait_until(10, || visible("#hosts") && visible("button.act-lift")),
        "the hosts page shows the isolated host: {:?}",
        text_of("#host-rows")
    );
    // Its health, from the agent's first heartbeat: the sensor's count of events seen.
    let seen = || {
        b.run("return document.querySelector('#host-rows tr').children[5].textContent")
            .as_str()
            .and_then(|t| t.parse::<u64>().ok())
    };
    assert!(
        seen().is_some_and(|n| n > 0),
        "events seen on the hosts page: {:?}",
        text_of("#host-rows")
    );
    assert!(click_now("button.act-lift"), "the lift button");
    assert!(wait_until(5, || visible("#confirm")), "a confirmation");
    b.click("#confirm-yes");
    assert!(
        wait_until(20, || action_done("host-actions", "lift")),
        "the lift carried out: {:?}",
        text_of("#host-actions")
    );
    assert!(reaches_peer(), "lifted: the peer answers again");
    assert!(
        wait_until(10, || visible("button.act-isolate")),
        "the hosts page shows the host open"
    );
    std::fs::write(artefacts.join("console-hosts.png"), b.screenshot()).expect("png");

    // Event search over the organisation's lake: the shell's process events.
    b.run("location.hash = '#/search'; return true;");
    assert!(wait_until(10, || visible("#search")), "the search page");
    b.type_into(
        "#query",
        &format!(
            "process_activity | where process.cmd_line contains \"{marker}\" \
             | project process.pid, process.cmd_line | take 20"
        ),
    );
    let found = || {
        b.run("return [...document.querySelectorAll('#result-rows tr')].map(r => r.textContent)")
    };
    assert!(
        wait_until(30, || {
            click_now("#run");
            std::thread::sleep(Duration::from_millis(500));
            found().as_array().is_some_and(|r| {
                r.iter()
                    .any(|t| t.as_str().is_some_and(|t| t.contains(&marker)))
            })
        }),
        "the shell's events found: {:?} {:?}",
        found(),
        text_of("#search-error")
    );
    assert_eq!(
        b.run("return [...document.querySelectorAll('#result-head th')].map(h => h.textContent)"),
        json!(["process.pid", "process.cmd_line"])
    );
    std::fs::write(artefacts.join("console-search.png"), b.screenshot()).expect("png");
    // A bad query is told why, with no path of the server's; DDL is refused.
    let search = format!("/api/v1/orgs/{org}/search");
    let (s, v) = api.call(
        "POST",
        &search,
        Some(json!({ "query": "process_activity | wher x" })),
    );
    assert_eq!(s, 400, "{v}");
    let message = v["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("wher"), "{v}");
    assert!(!message.contains(&f.data.display().to_string()), "{v}");
    let (s, v) = api.call(
        "POST",
        &search,
        Some(json!({ "query": "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/tmp'" })),
    );
    assert_eq!(s, 400, "{v}");

    // The audit log page.
    b.run("location.hash = '#/audit'; return true;");
    let audit = || text_of("#audit-rows").to_string();
    assert!(
        wait_until(10, || [
            "response.kill",
            "response.quarantine",
            "response.isolate",
            "response.lift",
            "search"
        ]
        .iter()
        .all(|a| audit().contains(a))),
        "{}",
        audit()
    );
    // The agent's records of what it did, in the organisation's lake.
    let lake = f.data.join("lake").join(format!("org={org}"));
    let remediations = || {
        // Read while the server writes: a snapshot with problems counts as none yet.
        let snap = vigil_store::snapshot(&lake, None, None);
        if !snap.problems.is_empty() {
            return 0;
        }
        let mut batches: Vec<_> = snap.log.into_values().flatten().collect();
        for f in snap.files.into_values().flatten() {
            batches.extend(vigil_store::read_parquet(&f.path).unwrap_or_default());
        }
        batches
            .iter()
            .flat_map(|b| (0..b.num_rows()).map(move |i| vigil_store::row_to_json(b, i)))
            .filter(|e| matches!(e["class_uid"].as_i64(), Some(7002 | 7003)))
            .count()
    };
    assert!(
        wait_until(30, || remediations() >= 3),
        "kill, isolate and lift records in the lake: {}",
        remediations()
    );
    let severe: Vec<Value> = b
        .console()
        .into_iter()
        .filter(|m| m["level"] == "SEVERE")
        .collect();
    assert!(severe.is_empty(), "console errors: {severe:?}");
    let _ = shell.kill();
    let _ = shell.wait();
}

/// The agent's queue full while its server is down (`[server] queue_mib = 1`): events
/// beyond the queue's room are dropped and counted, the finding made meanwhile is kept
/// (it evicts old events before it is ever dropped); when the server is back, the
/// backlog is delivered, and afterwards the lake holds each event the agent wrote at
/// most once, every event it wrote but for exactly as many as it counted dropped, and
/// the finding once.
#[test]
fn a_full_agent_queue_drops_only_what_it_counts_and_keeps_the_finding() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let mut f = fleet("ship-full");
    let (db, data, port) = (f.db.clone(), f.data.clone(), f.port);
    let (org, agent_dir) = (f.org, f.agent_dir.clone());
    drop(f.server.take());
    let config = agent_dir.join("agent.toml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str("[server]\nqueue_mib = 1\n[output]\nstats_interval_secs = 1\n");
    std::fs::write(&config, text).expect("config");
    let marker = format!("vigil-full-{}", std::process::id());
    let (mut agent, events, log) = marker_agent(&agent_dir, &marker);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_until(30, || log_text().contains("agent running")),
        "{}",
        log_text()
    );
    // Far more than a MiB of events while the server is away, then the finding.
    let dropped_so_far = || {
        support::lines(&events)
            .unwrap_or_default()
            .iter()
            .rev()
            .find(|e| e["class_uid"] == 1008 && e["unmapped"]["ship_events_dropped"].is_u64())
            .and_then(|e| e["unmapped"]["ship_events_dropped"].as_u64())
            .unwrap_or(0)
    };
    let mut rounds = 0;
    while dropped_so_far() == 0 {
        activity(500);
        std::thread::sleep(Duration::from_millis(1100));
        rounds += 1;
        assert!(rounds < 30, "the queue never filled: {}", log_text());
    }
    trigger(&marker);
    activity(100);
    std::thread::sleep(Duration::from_millis(1500));
    // The server back: the backlog goes out; then the agent stops.
    let _server = run_server(&data, &db, port);
    let lake = data.join("lake").join(format!("org={org}"));
    let api = {
        let mut a = Api {
            config: console_config(&f.ca),
            base: BaseUrl::parse(&f.url).expect("url"),
            headers: vec![],
        };
        next_totp_step();
        sign_in(&mut a, "correct horse battery staple", &f.key, false);
        a
    };
    assert!(
        wait_until(60, || findings_of(&api, org, &marker).len() == 1),
        "the finding kept through the full queue arrives: {}",
        log_text()
    );
    // The backlog delivered (what was written by now, less what was counted dropped;
    // the agent goes on writing meanwhile, a second or so ahead of its shipping)...
    let by_now = written_events(&events).len() as u64;
    assert!(
        wait_until(60, || lake_events(&lake).len() as u64 + dropped_so_far()
            >= by_now),
        "the backlog reaches the server: {}",
        log_text()
    );
    // ... then the agent stops; its last events go out before it exits.
    let written = stop_agent(&mut agent, &events, &log);
    let last_stats = support::lines(&events)
        .unwrap_or_default()
        .into_iter()
        .rev()
        .find(|e| e["class_uid"] == 1008 && e["unmapped"]["ship_events_dropped"].is_u64())
        .expect("the agent's last statistics");
    let dropped = last_stats["unmapped"]["ship_events_dropped"]
        .as_u64()
        .expect("counted")
        + last_stats["unmapped"]["ship_findings_dropped"]
            .as_u64()
            .unwrap_or(0);
    assert!(dropped > 0);
    assert_eq!(last_stats["unmapped"]["ship_findings_dropped"], 0);
    // Every batch the agent sent was acknowledged, so stored, before it exited.
    let stored = lake_events(&lake);
    eprintln!(
        "{} written, {} stored, {dropped} counted dropped",
        written.len(),
        stored.len()
    );
    // Each stored event is one the agent wrote, none twice.
    let mut pool = written.clone();
    for e in &stored {
        let Ok(i) = pool.binary_search(e) else {
            panic!("stored but not written, or stored twice: {e}");
        };
        pool.remove(i);
    }
    // What is missing is what was counted dropped (the last Statistics event and the
    // Stop event after it are written after the count, and shipped), and what the agent
    // said it left queued for its next start when its drain time at exit ran out (a
    // loaded machine).
    let queued: u64 = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("stay queued for the next start"))
        .filter_map(|l| {
            l.split("records=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    let missing = pool.len() as u64;
    // The missing events written at or after the last count (a failure's message).
    let kinds: Vec<String> = pool
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter(|e| e["time"].as_i64() >= last_stats["time"].as_i64())
        .map(|e| format!("class {} at {}", e["class_uid"], e["time"]))
        .collect();
    assert!(
        missing >= dropped && missing <= dropped + queued,
        "{missing} missing, {dropped} counted dropped, {queued} left queued; {} written, {} stored; missing since the last count: {kinds:?}",
        written.len(),
        stored.len()
    );
    assert_eq!(findings_of(&api, org, &marker).len(), 1);
}
