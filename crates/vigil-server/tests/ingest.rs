//! Agents' batches through the Router (no socket), on a real PostgreSQL server and a real
//! lake on disk: stored once, replays and overlaps recognised, bad batches refused with
//! nothing stored, findings kept for triage per organisation, and a batch left pending
//! by a crash between the lake and the database settled at the next start.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tower::ServiceExt;
use vigil_server::ca::Ca;
use vigil_server::state::{AgentIdentity, ConnInfo};
use vigil_server::testing::{fresh_database, TempDir};
use vigil_server::{app, AppState, Settings};

struct World {
    db: String,
    data: TempDir,
    orgs: [i64; 2],
    agents: [AgentIdentity; 2],
}

async fn world() -> World {
    world_on(fresh_database().await.expect("a PostgreSQL database")).await
}

async fn world_on(db: String) -> World {
    let data = TempDir::new("ingest");
    let report = vigil_server::server::init(&vigil_server::server::InitOptions {
        data: data.path().to_path_buf(),
        db: db.clone(),
        org: "alpha".into(),
        admin: "alice".into(),
        names: vec!["127.0.0.1".into()],
    })
    .await
    .expect("init");
    let client = vigil_server::db::connect(&db).await.expect("connect");
    let beta: i64 = client
        .query_one(
            "INSERT INTO organisations (name) VALUES ('beta') RETURNING id",
            &[],
        )
        .await
        .expect("beta")
        .get(0);
    let mut agents = Vec::new();
    for (i, org) in [report.org, beta].into_iter().enumerate() {
        let group: i64 = client
            .query_one(
                "INSERT INTO host_groups (org_id, name) VALUES ($1, 'servers') RETURNING id",
                &[&org],
            )
            .await
            .expect("group")
            .get(0);
        let id = format!("agent-{i}");
        client
            .execute(
                "INSERT INTO agents (id, org_id, group_id, cert_serial, cert_sha256, hostname)
                 VALUES ($1, $2, $3, $1, $4, $5)",
                &[&id, &org, &group, &vec![i as u8; 32], &format!("host-{i}")],
            )
            .await
            .expect("agent");
        agents.push(AgentIdentity { id, org, group });
    }
    let agents: [AgentIdentity; 2] = agents.try_into().expect("two");
    World {
        db,
        data,
        orgs: [report.org, beta],
        agents,
    }
}

async fn router(w: &World) -> (Router, AppState) {
    let mut client = vigil_server::db::connect(&w.db).await.expect("connect");
    vigil_server::db::migrate(&mut client)
        .await
        .expect("migrate");
    router_on(w, vigil_server::db::Db::fixed(client))
}

fn router_on(w: &World, db: std::sync::Arc<vigil_server::db::Db>) -> (Router, AppState) {
    let ca = Ca::load(w.data.path()).expect("CA");
    let settings = Settings {
        lake: Some(lake_root(w.data.path())),
        ..Settings::default()
    };
    let state = AppState::with_db(db, ca, settings);
    (app(state.clone()), state)
}

fn lake_root(data: &Path) -> PathBuf {
    data.join("lake")
}

fn event(n: u64) -> String {
    json!({ "class_uid": 1007, "activity_id": 1, "time": 1_765_000_000_000i64 + n as i64,
            "metadata": { "uid": format!("e{n}") }, "n": n })
    .to_string()
}

fn finding(n: u64) -> String {
    json!({ "class_uid": 2004, "activity_id": 1, "time": 1_765_000_000_000i64 + n as i64,
            "severity_id": 4, "metadata": { "uid": format!("f{n}"), "correlation_uid": "story-1" },
            "finding_info": { "title": format!("finding {n}"), "uid": "r" } })
    .to_string()
}

fn lines(items: &[String]) -> Vec<u8> {
    let mut b = items.join("\n").into_bytes();
    b.push(b'\n');
    b
}

async fn send(
    r: &Router,
    agent: Option<&AgentIdentity>,
    path: &str,
    body: Vec<u8>,
    zstd: bool,
) -> (StatusCode, Value) {
    let body = if zstd {
        zstd::bulk::compress(&body, 3).expect("zstd")
    } else {
        body
    };
    let mut req = Request::builder().method(Method::POST).uri(path);
    if zstd {
        req = req.header(header::CONTENT_ENCODING, "zstd");
    }
    let mut req = req.body(Body::from(body)).expect("request");
    req.extensions_mut().insert(ConnInfo {
        peer: Some("127.0.0.1:40000".parse().expect("addr")),
        agent: agent.cloned(),
    });
    let resp = r.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Sends `items` as the events batch starting at `first`; it must be acknowledged.
async fn events_ok(r: &Router, agent: &AgentIdentity, first: u64, items: &[String]) -> Value {
    let path = format!("/agent/v1/batches/events/{first}");
    let (s, v) = send(r, Some(agent), &path, lines(items), true).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

/// Sends an events batch until it is acknowledged, as the shipper does (a 503 while
/// the database is away is sent again; anything else fails the test, as does a minute
/// of refusals); how many times it was refused.
async fn send_until_acked(r: &Router, agent: &AgentIdentity, first: u64, items: &[String]) -> u32 {
    let path = format!("/agent/v1/batches/events/{first}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut refused = 0;
    loop {
        let (s, v) = send(r, Some(agent), &path, lines(items), true).await;
        if s == StatusCode::OK {
            return refused;
        }
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        refused += 1;
        assert!(std::time::Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The `metadata.uid` of every event in an organisation's lake (its log and its
/// Parquet files alike), in the lake's order.
fn lake_uids(data: &Path, org: i64) -> Vec<String> {
    let root = lake_root(data).join(format!("org={org}"));
    let snap = vigil_store::snapshot(&root, None, None);
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
    let mut batches: Vec<_> = snap.log.into_values().flatten().collect();
    for f in snap.files.into_values().flatten() {
        batches.extend(vigil_store::read_parquet(&f.path).expect("parquet"));
    }
    let mut rows = Vec::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            let v = vigil_store::row_to_json(b, i);
            let seq = vigil_store::row_seq(b, i).expect("seq");
            rows.push((
                seq,
                v["metadata"]["uid"].as_str().unwrap_or("?").to_string(),
            ));
        }
    }
    rows.sort();
    rows.into_iter().map(|(_, u)| u).collect()
}

fn uids(items: &[String]) -> Vec<String> {
    items
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("json");
            v["metadata"]["uid"].as_str().expect("uid").to_string()
        })
        .collect()
}

async fn acked(state: &AppState, agent: &str, stream: &str) -> i64 {
    state
        .db()
        .query_opt(
            "SELECT acked FROM ship_streams WHERE agent_id = $1 AND stream = $2",
            &[&agent, &stream],
        )
        .await
        .expect("query")
        .map_or(0, |r| r.get(0))
}

#[tokio::test]
async fn batches_are_stored_once_whatever_is_replayed() {
    let w = world().await;
    let (r, state) = router(&w).await;
    let a = &w.agents[0];
    let all: Vec<String> = (1..=10).map(event).collect();
    // (first, records, compressed, acked, stored)
    let steps: [(usize, std::ops::Range<usize>, bool, u64, u64); 4] = [
        (1, 0..4, true, 4, 4),
        // The same batch again (its answer was lost): acknowledged, not stored again.
        (1, 0..4, true, 4, 0),
        // A batch overlapping what is stored: only the new records.
        (3, 2..7, false, 7, 3),
        // A gap (records the agent dropped): taken, counted.
        (10, 9..10, true, 10, 1),
    ];
    for (first, range, zstd, acked, stored) in steps {
        let path = format!("/agent/v1/batches/events/{first}");
        let (s, v) = send(&r, Some(a), &path, lines(&all[range]), zstd).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(
            v,
            json!({ "acked": acked, "stored": stored }),
            "batch at {first}"
        );
    }
    let stored = lake_uids(w.data.path(), w.orgs[0]);
    let want: Vec<String> = all[..7].iter().chain(&all[9..]).cloned().collect();
    assert_eq!(stored, uids(&want));
    let row = state
        .db()
        .query_one(
            "SELECT records, duplicates, gaps FROM ship_streams WHERE agent_id = $1",
            &[&a.id],
        )
        .await
        .expect("row");
    assert_eq!(
        (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2)
        ),
        (8, 4, 2)
    );
    // Nothing went to the other organisation's lake.
    assert!(lake_uids(w.data.path(), w.orgs[1]).is_empty());
}

#[tokio::test]
async fn bad_batches_are_refused_and_nothing_is_stored() {
    let w = world().await;
    let (r, state) = router(&w).await;
    let a = &w.agents[0];
    let good = lines(&[event(1)]);
    let cases: Vec<(&str, Vec<u8>, bool, StatusCode)> = vec![
        (
            "/agent/v1/batches/events/1",
            b"not json\n".to_vec(),
            true,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/agent/v1/batches/events/1",
            b"[1,2,3]\n".to_vec(),
            true,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/agent/v1/batches/events/1",
            lines(&[event(1), "{\"no_class\":1}".into()]),
            true,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/agent/v1/batches/events/1",
            Vec::new(),
            true,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/agent/v1/batches/other/1",
            good.clone(),
            true,
            StatusCode::NOT_FOUND,
        ),
        (
            "/agent/v1/batches/events/0",
            good.clone(),
            true,
            StatusCode::NOT_FOUND,
        ),
        (
            "/agent/v1/batches/events/-5",
            good.clone(),
            true,
            StatusCode::NOT_FOUND,
        ),
        (
            "/agent/v1/batches/events/x",
            good.clone(),
            true,
            StatusCode::NOT_FOUND,
        ),
        (
            "/agent/v1/batches/events/1",
            vec![b'x'; 9 << 20],
            false,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (path, body, zstd, want) in cases {
        let (s, v) = send(&r, Some(a), path, body, zstd).await;
        assert_eq!(s, want, "{path}: {v}");
        assert!(v["error"].is_string(), "{v}");
    }
    // Not zstd, though it says so.
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/agent/v1/batches/events/1")
        .header(header::CONTENT_ENCODING, "zstd")
        .body(Body::from(good.clone()))
        .expect("request");
    req.extensions_mut().insert(ConnInfo {
        peer: None,
        agent: Some(a.clone()),
    });
    assert_eq!(
        r.clone().oneshot(req).await.expect("ok").status(),
        StatusCode::BAD_REQUEST
    );
    // Without a client certificate.
    let (s, _) = send(&r, None, "/agent/v1/batches/events/1", good, true).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(lake_uids(w.data.path(), w.orgs[0]).is_empty());
    assert_eq!(acked(&state, &a.id, "events").await, 0);
}

#[tokio::test]
async fn findings_are_kept_once_per_organisation_for_triage() {
    let w = world().await;
    let (r, state) = router(&w).await;
    let batch = lines(&[finding(1), finding(2)]);
    for a in &w.agents {
        let (s, v) = send(
            &r,
            Some(a),
            "/agent/v1/batches/findings/1",
            batch.clone(),
            true,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    // A replay by the first agent under new sequences (its queue lost its mark): the
    // lake takes the records again, the findings table does not.
    let (s, _) = send(
        &r,
        Some(&w.agents[0]),
        "/agent/v1/batches/findings/3",
        batch,
        true,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // An incident, then its update (same uid, later): one row, the newer event.
    let incident = |t: i64, sev: i32| {
        json!({ "class_uid": 2005, "activity_id": 1, "time": t, "severity_id": sev,
                "metadata": { "uid": "incident@story-1#1" }, "desc": "two findings",
                "finding_info_list": [{ "title": "finding 1", "uid": "r" }] })
        .to_string()
    };
    for (seq, (t, sev)) in [(5, (10, 3)), (6, (20, 5))] {
        let path = format!("/agent/v1/batches/findings/{seq}");
        let (s, _) = send(
            &r,
            Some(&w.agents[0]),
            &path,
            lines(&[incident(t, sev)]),
            true,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
    }
    let row = state
        .db()
        .query_one(
            "SELECT title, severity_id, count(*) OVER () FROM findings
             WHERE org_id = $1 AND class_uid = 2005",
            &[&w.orgs[0]],
        )
        .await
        .expect("incident");
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, i32>(1),
            row.get::<_, i64>(2)
        ),
        ("two findings".to_string(), 5, 1)
    );
    for (i, org) in w.orgs.iter().enumerate() {
        let rows = state
            .db()
            .query(
                "SELECT uid, agent_id, title, story, severity_id FROM findings
                 WHERE org_id = $1 AND class_uid = 2004 ORDER BY uid",
                &[org],
            )
            .await
            .expect("rows");
        let got: Vec<(String, String, String, Option<String>, i32)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect();
        let agent = w.agents[i].id.clone();
        assert_eq!(
            got,
            vec![
                (
                    "f1".into(),
                    agent.clone(),
                    "finding 1".into(),
                    Some("story-1".into()),
                    4
                ),
                (
                    "f2".into(),
                    agent,
                    "finding 2".into(),
                    Some("story-1".into()),
                    4
                ),
            ]
        );
    }
}

#[tokio::test]
async fn a_batch_left_pending_by_a_crash_is_settled_from_the_lake() {
    let w = world().await;
    let a = &w.agents[0];
    let all: Vec<String> = (1..=6).map(event).collect();
    {
        let (r, state) = router(&w).await;
        events_ok(&r, a, 1, &all[..3]).await;
        events_ok(&r, a, 4, &all[3..]).await;
        // As if the server had died after the lake's fsync of the second batch and
        // before the database recorded it: the second batch is pending, acked at 3.
        state
            .db()
            .execute(
                "UPDATE ship_streams SET acked = 3, records = 3, pending_first = 4,
                        pending_count = 3, pending_lake_seq = 4
                 WHERE agent_id = $1",
                &[&a.id],
            )
            .await
            .expect("update");
        state.lakes().close().await;
    }
    // The server again: the agent, never answered, sends the second batch again.
    let (r, state) = router(&w).await;
    let (s, v) = send(
        &r,
        Some(a),
        "/agent/v1/batches/events/4",
        lines(&all[3..]),
        true,
    )
    .await;
    assert_eq!((s, v), (StatusCode::OK, json!({ "acked": 6, "stored": 0 })));
    assert_eq!(lake_uids(w.data.path(), w.orgs[0]), uids(&all));
    assert_eq!(acked(&state, &a.id, "events").await, 6);
    // And a pending batch the lake never got: stored when sent again.
    state
        .db()
        .execute(
            "UPDATE ship_streams SET pending_first = 7, pending_count = 2,
                    pending_lake_seq = 7 WHERE agent_id = $1",
            &[&a.id],
        )
        .await
        .expect("update");
    state.lakes().close().await;
    let (r, _) = router(&w).await;
    let more: Vec<String> = (7..=8).map(event).collect();
    let (s, v) = send(
        &r,
        Some(a),
        "/agent/v1/batches/events/7",
        lines(&more),
        true,
    )
    .await;
    assert_eq!((s, v), (StatusCode::OK, json!({ "acked": 8, "stored": 2 })));
    let mut want = all.clone();
    want.extend(more);
    assert_eq!(lake_uids(w.data.path(), w.orgs[0]), uids(&want));
}

/// The database connection lost mid-stream (every backend of the database ended, as a
/// PostgreSQL restart does): batches get 503 until the connection is replaced, the
/// agent's retries are then taken, and every record is stored once.
#[tokio::test]
async fn a_lost_database_connection_is_replaced_and_nothing_is_stored_twice() {
    let w = world().await;
    let db = vigil_server::db::Db::connect(&w.db).await.expect("connect");
    let (r, state) = router_on(&w, db);
    let a = &w.agents[0];
    let all: Vec<String> = (1..=9).map(event).collect();
    events_ok(&r, a, 1, &all[..3]).await;
    let admin = vigil_server::db::connect(&w.db).await.expect("connect");
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .expect("terminate");
    // The agent sends each batch until it is acknowledged, as the shipper does.
    let mut refused = 0;
    for (first, chunk) in [(4, &all[3..6]), (7, &all[6..9])] {
        refused += send_until_acked(&r, a, first, chunk).await;
    }
    // Without the reconnection every batch after the loss would be refused until the
    // deadline; how many were refused before it depends on timing.
    eprintln!("{refused} batches refused while the connection was replaced");
    assert_eq!(lake_uids(w.data.path(), w.orgs[0]), uids(&all));
    assert_eq!(acked(&state, &a.id, "events").await, 9);
}

/// PostgreSQL itself restarted, twice, while an agent sends batches without pause (a
/// cluster of this test's own, `scripts/postgres restart`: a fast shutdown and a new
/// server process): batches meanwhile are refused with 503 and sent again, as the
/// shipper does, and afterwards every record is in the lake exactly once, in order.
#[tokio::test]
async fn a_postgresql_restart_mid_stream_loses_and_doubles_nothing() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/postgres");
    let out = std::process::Command::new(&script)
        .args(["start", "--owner-pid", &std::process::id().to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("scripts/postgres");
    assert!(out.status.success());
    let base = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let dir = base
        .strip_prefix("host=")
        .and_then(|r| r.split(' ').next())
        .expect("the cluster's directory")
        .to_string();
    let admin = vigil_server::db::connect(&base).await.expect("connect");
    admin
        .batch_execute("CREATE DATABASE vigil_restart")
        .await
        .expect("database");
    drop(admin);
    let w = world_on(base.replace("dbname=postgres", "dbname=vigil_restart")).await;
    let db = vigil_server::db::Db::connect(&w.db).await.expect("connect");
    let (r, state) = router_on(&w, db);
    let started = |state: AppState| async move {
        match state
            .db()
            .query_one("SELECT pg_postmaster_start_time()::text", &[])
            .await
        {
            Ok(row) => Some(row.get::<_, String>(0)),
            Err(_) => None,
        }
    };
    let first_start = started(state.clone()).await.expect("the server's start");
    // The agent: 3 events a batch, each batch sent until it is acknowledged.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let (r, a, stop) = (r.clone(), w.agents[0].clone(), stop.clone());
        tokio::spawn(async move {
            let (mut sent, mut refused, mut seq) = (Vec::new(), 0u32, 1u64);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || sent.len() < 30 {
                let batch: Vec<String> = (seq..seq + 3).map(event).collect();
                refused += send_until_acked(&r, &a, seq, &batch).await;
                sent.extend(batch);
                seq += 3;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            (sent, refused)
        })
    };
    for _ in 0..2 {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        let (script, dir) = (script.clone(), dir.clone());
        let st = tokio::task::spawn_blocking(move || {
            std::process::Command::new(script)
                .args(["restart", &dir])
                .status()
                .expect("restart")
        })
        .await
        .expect("join");
        assert!(st.success(), "scripts/postgres restart");
    }
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, refused) = sender.await.expect("the sender");
    eprintln!(
        "{} records in {} batches, {refused} refusals across two restarts",
        sent.len(),
        sent.len() / 3
    );
    let now_start = started(state.clone()).await.expect("the server's start");
    assert_ne!(first_start, now_start, "PostgreSQL was restarted");
    assert_eq!(lake_uids(w.data.path(), w.orgs[0]), uids(&sent));
    assert_eq!(
        acked(&state, &w.agents[0].id, "events").await,
        sent.len() as i64
    );
}

/// A Router and its state on `w`'s database and lake, with NATS at `nats` (as `vigil
/// server run --nats` wires it: the control subscriber and the ingest workers running);
/// the tasks, to stop it as a killed process stops.
async fn process_on_nats(
    w: &World,
    nats: &str,
) -> (Router, AppState, Vec<tokio::task::JoinHandle<()>>) {
    let (r, state) = router(w).await;
    let bus = vigil_server::bus::Bus::connect(nats).await.expect("NATS");
    let tasks = vigil_server::relay::start(&state, &bus)
        .await
        .expect("bus tasks");
    state.set_bus(bus);
    (r, state, tasks)
}

async fn until(secs: u64, mut ok: impl AsyncFnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if ok().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    ok().await
}

/// Sends `all`'s records in batches of 100, the `batches`th ones, until each is
/// acknowledged.
async fn hundreds(r: &Router, a: &AgentIdentity, all: &[String], batches: std::ops::Range<u64>) {
    for i in batches {
        let at = i as usize * 100;
        send_until_acked(r, a, i * 100 + 1, &all[at..at + 100]).await;
    }
}

/// Two server processes on one database, one data directory and one NATS: batches taken
/// by one front door are stored by the process holding the lake; when that process
/// ends (its lake's lock released), the other takes the lake within seconds and stores
/// the rest; NATS killed and restarted mid-stream refuses batches with 503 meanwhile
/// (the agent keeps them) and loses none. Afterwards the lake holds every record once,
/// in the agent's order, and the finding is in PostgreSQL once.
#[tokio::test]
async fn two_processes_and_jetstream_store_every_batch_once_through_a_process_end_and_a_nats_restart(
) {
    let nats = vigil_server::testing::Nats::start().expect("NATS");
    let w = world().await;
    let a = &w.agents[0];
    let org = w.orgs[0];
    // B first: it holds the lake.
    let (_rb, sb, tb) = process_on_nats(&w, &nats.url).await;
    assert!(
        until(10, async || sb.lakes().holds(org).await).await,
        "B takes the lake"
    );
    let (ra, sa, _ta) = process_on_nats(&w, &nats.url).await;
    let all: Vec<String> = (1..=3000).map(event).collect();
    // 10 batches of 100 through A's front door: queued, stored by B.
    for i in 0..10 {
        let v = events_ok(
            &ra,
            a,
            i * 100 + 1,
            &all[i as usize * 100..(i as usize + 1) * 100],
        )
        .await;
        assert_eq!(v, json!({ "acked": (i + 1) * 100, "queued": 100 }));
    }
    assert!(
        until(20, async || lake_uids(w.data.path(), org).len() == 1000).await,
        "B stores what A queued: {}",
        lake_uids(w.data.path(), org).len()
    );
    assert!(!sa.lakes().holds(org).await, "A never opened the lake");
    // A replay of a stored batch (its answer lost): acknowledged, not stored again.
    events_ok(&ra, a, 101, &all[100..200]).await;
    // B ends mid-stream: its tasks stopped where they were, its lakes dropped (their
    // locks released) as at a process's death.
    hundreds(&ra, a, &all, 10..15).await;
    for t in tb {
        t.abort();
    }
    drop(_rb);
    drop(sb);
    hundreds(&ra, a, &all, 15..20).await;
    assert!(
        until(30, async || sa.lakes().holds(org).await).await,
        "A takes the lake"
    );
    // NATS killed and started again: the front door refuses (503) until it is back.
    nats.restart().expect("NATS restart");
    hundreds(&ra, a, &all, 20..30).await;
    let (s, v) = send(
        &ra,
        Some(a),
        "/agent/v1/batches/findings/1",
        lines(&[finding(1)]),
        true,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        until(60, async || lake_uids(w.data.path(), org).len() >= 3001).await,
        "everything is stored: {}",
        lake_uids(w.data.path(), org).len()
    );
    // Nothing more arrives late.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let mut want = uids(&all);
    want.push("f1".into());
    let mut got = lake_uids(w.data.path(), org);
    // The findings stream is its own: its record is somewhere in the lake's order.
    let at = got
        .iter()
        .position(|u| u == "f1")
        .expect("the finding is in the lake");
    let f = got.remove(at);
    got.push(f);
    assert_eq!(got.len(), want.len(), "every record once");
    assert_eq!(got, want, "in the agent's order");
    assert_eq!(acked(&sa, &a.id, "events").await, 3000);
    let n: i64 = sa
        .db()
        .query_one("SELECT count(*) FROM findings WHERE uid = 'f1'", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 1);
}

/// A revocation and a wake-up made through one process reach the other through NATS
/// within a second.
#[tokio::test]
async fn revocations_and_wake_ups_reach_every_process() {
    let nats = vigil_server::testing::Nats::start().expect("NATS");
    let w = world().await;
    let (_ra, sa, _ta) = process_on_nats(&w, &nats.url).await;
    let (_rb, sb, _tb) = process_on_nats(&w, &nats.url).await;
    let mut revocations = sb.revocations();
    let waker = sb.agent_waker("agent-0");
    let woken = waker.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    // The subscriptions are live once a message makes the round trip.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let t = std::time::Instant::now();
    sa.revoke(vigil_server::state::Revocation::Org(w.orgs[1]));
    let r = tokio::time::timeout(std::time::Duration::from_secs(1), revocations.recv())
        .await
        .expect("the revocation reaches B within a second")
        .expect("received");
    assert!(matches!(r, vigil_server::state::Revocation::Org(o) if o == w.orgs[1]));
    eprintln!("revocation across processes in {:?}", t.elapsed());
    sa.wake_agent("agent-0");
    tokio::time::timeout(std::time::Duration::from_secs(1), woken)
        .await
        .expect("the wake-up reaches B within a second");
}

/// Two processes without NATS on one data directory: the lake is written by one only;
/// the other answers 503 (the agent keeps its batch) instead of touching its log.
#[tokio::test]
async fn a_second_process_never_writes_a_lake_another_holds() {
    let w = world().await;
    let (ra, _sa) = router(&w).await;
    let (rb, _sb) = router(&w).await;
    let a = &w.agents[0];
    events_ok(&ra, a, 1, &[event(1)]).await;
    let (s, _) = send(
        &rb,
        Some(a),
        "/agent/v1/batches/events/2",
        lines(&[event(2)]),
        true,
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    events_ok(&ra, a, 2, &[event(2)]).await;
    assert_eq!(lake_uids(w.data.path(), w.orgs[0]), vec!["e1", "e2"]);
}
