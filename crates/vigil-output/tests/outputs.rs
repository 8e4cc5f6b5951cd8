//! Each output against a real loopback server the test starts: the wire format each
//! product documents, an outage survived without losing what fit in the buffer (what did
//! not is counted), partial failures, misbehaving servers, TLS.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{counter, event, http, octet_frames, outage, tmp, wait_for, Answer, Request, Server};
use vigil_output::{Output, OutputsConfig};

/// Short timers for tests: batches of up to 20 events after 20 ms, retries from 20 ms
/// doubling to 200 ms, timeouts of 500 ms.
fn fast(mut v: Value) -> Value {
    let o = v.as_object_mut().unwrap();
    for (k, d) in [
        ("batch_events", 20),
        ("flush_ms", 20),
        ("retry_initial_ms", 20),
        ("retry_max_ms", 200),
        ("timeout_ms", 500),
        ("shutdown_ms", 2000),
    ] {
        o.entry(k).or_insert(json!(d));
    }
    v
}

fn start(kind: &str, settings: Value) -> Output {
    let config: OutputsConfig =
        serde_json::from_value(json!({ kind: [fast(settings)] })).expect("settings");
    vigil_output::start(&config).expect("starts").pop().unwrap()
}

/// Checks the accounting: every event offered is sent, dropped or still held.
fn balanced(out: &Output) {
    let c = out.counters();
    let get = |k: &str| c.iter().find(|(n, _)| *n == k).unwrap().1;
    assert_eq!(
        get("offered"),
        get("sent") + get("dropped") + get("buffered_events"),
        "{c:?}"
    );
}

#[test]
fn syslog_over_tcp_is_rfc5424_with_octet_counting_and_survives_an_outage() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut server = Server::start(None, octet_frames(Arc::clone(&got)));
    let out = start(
        "syslog",
        json!({"address": format!("tcp://127.0.0.1:{}", server.port), "hostname": "web-01", "facility": "auth", "buffer_events": 50}),
    );
    for n in 0..30 {
        assert!(out.offer(&event(n, (n % 7) as i64)));
    }
    wait_for(10, "30 messages", || got.lock().unwrap().len() == 30);
    let pid = std::process::id();
    for (n, m) in got.lock().unwrap().iter().enumerate() {
        let sev = [6, 6, 5, 4, 3, 2, 1][n % 7];
        let want = format!(
            "<{}>1 2024-05-01T12:00:00.{n:03}Z web-01 vigil {pid} DetectionFinding - {}",
            4 * 8 + sev,
            String::from_utf8(event(n, (n % 7) as i64)).unwrap()
        );
        assert_eq!(m, &want);
    }
    assert_eq!(counter(&out, "sent"), 30);

    // Down: 50 events fit in the buffer, 20 more do not.
    server.stop();
    for n in 30..100 {
        out.offer(&event(n, 3));
    }
    assert_eq!(counter(&out, "overflow_dropped"), 20);
    std::thread::sleep(outage());
    assert!(
        counter(&out, "failures") > 0,
        "it tried while the server was down"
    );
    assert_eq!(counter(&out, "buffered_events"), 50);
    server.restart();
    wait_for(20, "the 50 held", || got.lock().unwrap().len() == 80);
    let got = got.lock().unwrap();
    for (i, m) in got[30..].iter().enumerate() {
        assert!(
            m.ends_with(&format!(r#""n":{}}}"#, 30 + i)),
            "in order: {m}"
        );
    }
    wait_for(5, "the counters", || counter(&out, "sent") == 80);
    balanced(&out);
}

/// A HEC server that takes batches only while `mode` is 0; 1: answers 500; 2: closes
/// mid-request; 3: never answers; 4: answers a byte every 100 ms. Events of accepted batches go to `got`.
fn hec(
    got: Arc<Mutex<Vec<Value>>>,
    mode: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Request>>>,
) -> Server {
    Server::start(
        None,
        http(Arc::new(move |req: &Request| {
            seen.lock().unwrap().push(req.clone());
            match mode.load(Ordering::Relaxed) {
                1 => {
                    return Answer::Reply(
                        500,
                        r#"{"text":"Internal Server Error","code":8}"#.into(),
                    )
                }
                2 => return Answer::Close,
                3 => return Answer::Silence,
                4 => return Answer::Trickle,
                _ => {}
            }
            if req.header("Authorization") != Some("Splunk 11111111-2222") {
                return Answer::Reply(401, r#"{"text":"Invalid authorization","code":3}"#.into());
            }
            let body = std::str::from_utf8(&req.body).unwrap();
            let events: Vec<Value> = serde_json::Deserializer::from_str(body)
                .into_iter::<Value>()
                .map(|v| v.expect("concatenated JSON objects"))
                .collect();
            if let Some(i) = events.iter().position(|e| e["event"]["bad"] == true) {
                // As HEC does: the events before the bad one are taken.
                got.lock().unwrap().extend(events[..i].iter().cloned());
                return Answer::Reply(
                    400,
                    format!(
                        r#"{{"text":"Invalid data format","code":6,"invalid-event-number":{i}}}"#
                    ),
                );
            }
            got.lock().unwrap().extend(events);
            Answer::Reply(200, r#"{"text":"Success","code":0}"#.into())
        })),
    )
}

#[test]
fn splunk_hec_gets_envelopes_and_survives_outages_500s_cut_connections_and_silence() {
    let (got, mode, seen) = (
        Arc::default(),
        Arc::new(AtomicUsize::new(0)),
        Arc::default(),
    );
    let mut server = hec(Arc::clone(&got), Arc::clone(&mode), Arc::clone(&seen));
    let out = start(
        "splunk",
        json!({"url": format!("http://127.0.0.1:{}", server.port), "token": "11111111-2222",
               "index": "sec", "host": "web-01", "buffer_events": 200}),
    );
    let got_n = || got.lock().unwrap().len();
    for n in 0..10 {
        out.offer(&event(n, 4));
    }
    wait_for(10, "10 events", || got_n() == 10);
    {
        let seen = seen.lock().unwrap();
        let r = &seen[0];
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", "/services/collector/event")
        );
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.header("X-Splunk-Request-Channel").map(str::len), Some(36));
        let first = &got.lock().unwrap()[0];
        assert_eq!(first["time"], json!(1714564800.0));
        assert_eq!(first["host"], "web-01");
        assert_eq!(first["source"], "vigil");
        assert_eq!(first["sourcetype"], "vigil:ocsf");
        assert_eq!(first["index"], "sec");
        let original: Value = serde_json::from_slice(&event(0, 4)).unwrap();
        assert_eq!(first["event"], original);
    }
    // Each kind of trouble in turn, for a share of the outage, events coming all along;
    // then the server is stopped outright for the rest.
    let quarter = outage() / 5;
    let mut n = 10;
    for m in [1, 2, 3, 4] {
        mode.store(m, Ordering::Relaxed);
        let until = Instant::now() + quarter;
        while Instant::now() < until {
            out.offer(&event(n, 4));
            n += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    server.stop();
    mode.store(0, Ordering::Relaxed);
    let until = Instant::now() + quarter;
    while Instant::now() < until {
        out.offer(&event(n, 4));
        n += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let dropped = counter(&out, "overflow_dropped");
    assert!(counter(&out, "failures") >= 3, "{:?}", out.counters());
    server.restart();
    wait_for(30, "everything that fit", || {
        counter(&out, "buffered_events") == 0
    });
    assert_eq!(
        counter(&out, "sent") + dropped,
        n as u64,
        "{:?}",
        out.counters()
    );
    // Every event acknowledged arrived; none that was kept is missing.
    let mut ns: Vec<u64> = got
        .lock()
        .unwrap()
        .iter()
        .map(|e| e["event"]["n"].as_u64().unwrap())
        .collect();
    ns.sort_unstable();
    ns.dedup();
    assert_eq!(ns.len() as u64, counter(&out, "sent"));
    balanced(&out);
}

#[test]
fn splunk_hec_takes_the_events_before_an_invalid_one_and_drops_only_that_one() {
    let (got, mode, seen) = (
        Arc::default(),
        Arc::new(AtomicUsize::new(0)),
        Arc::default(),
    );
    let server = hec(Arc::clone(&got), mode, seen);
    let out = start(
        "splunk",
        json!({"url": format!("http://127.0.0.1:{}/services/collector/event", server.port), "token": "11111111-2222", "flush_ms": 300}),
    );
    for n in 0..10 {
        if n == 4 {
            out.offer(br#"{"bad":true,"time":1}"#);
        } else {
            out.offer(&event(n, 1));
        }
    }
    wait_for(10, "9 events", || got.lock().unwrap().len() == 9);
    wait_for(5, "counters", || counter(&out, "sent") == 9);
    assert_eq!(counter(&out, "rejected_dropped"), 1);
    let ns: Vec<u64> = got
        .lock()
        .unwrap()
        .iter()
        .map(|e| e["event"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, [0, 1, 2, 3, 5, 6, 7, 8, 9]);
    balanced(&out);
}

#[test]
fn a_wrong_token_is_retried_not_dropped() {
    let (got, mode, seen) = (
        Arc::default(),
        Arc::new(AtomicUsize::new(0)),
        Arc::<Mutex<Vec<Request>>>::default(),
    );
    let server = hec(Arc::clone(&got), mode, Arc::clone(&seen));
    let out = start(
        "splunk",
        json!({"url": format!("http://127.0.0.1:{}", server.port), "token": "wrong"}),
    );
    out.offer(&event(0, 1));
    wait_for(10, "retries", || seen.lock().unwrap().len() >= 3);
    assert_eq!(counter(&out, "sent"), 0);
    assert_eq!(counter(&out, "dropped"), 0);
    assert_eq!(counter(&out, "buffered_events"), 1);
}

#[test]
fn elasticsearch_bulk_is_ndjson_and_partial_failures_are_retried_or_counted() {
    // Events with "mapping" are refused (400); those with "busy" get 429 the first time.
    let stored = Arc::new(Mutex::new(Vec::<Value>::new()));
    let bodies = Arc::new(Mutex::new(Vec::<Request>::new()));
    let busy_seen = Arc::new(Mutex::new(std::collections::HashSet::<u64>::new()));
    let (s2, b2, bs) = (
        Arc::clone(&stored),
        Arc::clone(&bodies),
        Arc::clone(&busy_seen),
    );
    let server = Server::start(
        None,
        http(Arc::new(move |req: &Request| {
            b2.lock().unwrap().push(req.clone());
            let text = std::str::from_utf8(&req.body).unwrap();
            assert!(text.ends_with('\n'), "NDJSON ends with a newline");
            let lines: Vec<&str> = text.lines().collect();
            let mut items = Vec::new();
            for pair in lines.chunks(2) {
                let action: Value = serde_json::from_str(pair[0]).unwrap();
                assert_eq!(action, json!({"create": {"_index": "logs-vigil-test"}}));
                let doc: Value = serde_json::from_str(pair[1]).unwrap();
                let n = doc["n"].as_u64().unwrap();
                let item = if doc["message"] == "mapping" {
                    json!({"create": {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "failed to parse"}}})
                } else if doc["message"] == "busy" && bs.lock().unwrap().insert(n) {
                    json!({"create": {"status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "busy"}}})
                } else {
                    s2.lock().unwrap().push(doc);
                    json!({"create": {"_index": ".ds-logs-vigil-test", "status": 201, "result": "created"}})
                };
                items.push(item);
            }
            let errors = items.iter().any(|i| i["create"]["status"] != 201);
            Answer::Reply(
                200,
                json!({"took": 1, "errors": errors, "items": items}).to_string(),
            )
        })),
    );
    let out = start(
        "elasticsearch",
        json!({"url": format!("http://127.0.0.1:{}", server.port), "index": "logs-vigil-test",
               "username": "vigil", "password": "pw", "flush_ms": 200}),
    );
    for n in 0..30u64 {
        let message = match n % 5 {
            1 => "mapping",
            2 => "busy",
            _ => "ok",
        };
        out.offer(format!(r#"{{"time":1714564800000,"n":{n},"message":"{message}"}}"#).as_bytes());
    }
    wait_for(10, "24 stored", || stored.lock().unwrap().len() == 24);
    wait_for(5, "counters", || counter(&out, "sent") == 24);
    assert_eq!(counter(&out, "rejected_dropped"), 6);
    assert!(counter(&out, "retried") >= 6);
    let stored = stored.lock().unwrap();
    let mut ns: Vec<u64> = stored.iter().map(|d| d["n"].as_u64().unwrap()).collect();
    ns.sort_unstable();
    let want: Vec<u64> = (0..30).filter(|n| n % 5 != 1).collect();
    assert_eq!(ns, want, "each stored once, the refused ones not at all");
    assert_eq!(stored[0]["@timestamp"], "2024-05-01T12:00:00.000Z");
    let r = &bodies.lock().unwrap()[0];
    assert_eq!(r.path, "/_bulk");
    assert_eq!(r.header("Content-Type"), Some("application/x-ndjson"));
    assert_eq!(r.header("Authorization"), Some("Basic dmlnaWw6cHc="));
    balanced(&out);
}

#[test]
fn a_server_that_never_answers_never_slows_the_pipeline_nor_grows_the_buffer() {
    let got = Arc::default();
    let mode = Arc::new(AtomicUsize::new(3));
    let server = hec(got, Arc::clone(&mode), Arc::default());
    let buffer = 256 * 1024u64;
    let out = start(
        "splunk",
        json!({"url": format!("http://127.0.0.1:{}", server.port), "token": "11111111-2222",
               "buffer_bytes": buffer, "batch_bytes": 65536, "timeout_ms": 2000, "select": "all"}),
    );
    let pad = "x".repeat(1000);
    let started = Instant::now();
    let mut most = 0;
    for n in 0..20_000 {
        out.offer(format!(r#"{{"n":{n},"pad":"{pad}"}}"#).as_bytes());
        most = most.max(counter(&out, "buffered_bytes"));
    }
    // 20 000 offers while every request waits 2 s for an answer: were the pipeline to
    // wait on the network, this would take minutes.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        most <= buffer,
        "held {most} bytes, more than the {buffer} configured"
    );
    assert!(counter(&out, "overflow_dropped") > 19_000);
    balanced(&out);
}

#[test]
fn what_is_held_at_exit_is_delivered_or_counted() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut server = Server::start(None, octet_frames(Arc::clone(&got)));
    server.stop();
    let mut out = start(
        "syslog",
        json!({"address": format!("tcp://127.0.0.1:{}", server.port), "shutdown_ms": 300}),
    );
    for n in 0..5 {
        out.offer(&event(n, 1));
    }
    let t = Instant::now();
    out.close();
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "closing is bounded by shutdown_ms"
    );
    assert_eq!(counter(&out, "exit_dropped"), 5);
    balanced(&out);
}

#[test]
fn syslog_to_a_local_datagram_socket_and_a_stream_socket() {
    use std::os::unix::net::{UnixDatagram, UnixListener};
    let dir = tmp("unix");
    let path = dir.join("log");
    let sock = UnixDatagram::bind(&path).unwrap();
    let out = start(
        "syslog",
        json!({"address": format!("unix:{}", path.display()), "hostname": "h"}),
    );
    for n in 0..3 {
        out.offer(&event(n, 5));
    }
    let mut buf = vec![0; 65536];
    for n in 0..3 {
        let len = sock.recv(&mut buf).unwrap();
        let m = String::from_utf8(buf[..len].to_vec()).unwrap();
        // local0 (16) * 8 + critical (2).
        assert!(
            m.starts_with(&format!("<130>1 2024-05-01T12:00:00.00{n}Z h vigil ")),
            "{m}"
        );
        assert!(m.ends_with(&String::from_utf8(event(n, 5)).unwrap()));
    }
    drop(out);
    // A stream socket: messages end with a newline.
    let path = dir.join("log-stream");
    let listener = UnixListener::bind(&path).unwrap();
    let out = start(
        "syslog",
        json!({"address": format!("unix:{}", path.display())}),
    );
    out.offer(&event(7, 1));
    out.offer(&event(8, 1));
    let read_lines = |listener: &UnixListener, ns: &[usize]| {
        let (s, _) = listener.accept().unwrap();
        let mut r = std::io::BufReader::new(s);
        for n in ns {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut r, &mut line).unwrap();
            assert!(
                line.ends_with(&format!("{}\n", String::from_utf8(event(*n, 1)).unwrap())),
                "{line}"
            );
        }
        r
    };
    let conn = read_lines(&listener, &[7, 8]);
    // The daemon restarts: its socket is made anew; the output notices and reconnects.
    drop((conn, listener));
    std::fs::remove_file(&path).unwrap();
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    out.offer(&event(9, 1));
    read_lines(&listener, &[9]);
    wait_for(5, "counters", || counter(&out, "sent") == 3);
    balanced(&out);
}

#[test]
fn tls_syslog_and_https_hec_check_the_server_certificate() {
    let dir = tmp("tls");
    let (ca, server_tls) = support::tls_server(&dir);
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut server = Server::start(
        Some(Arc::clone(&server_tls)),
        octet_frames(Arc::clone(&got)),
    );
    let out = start(
        "syslog",
        json!({"address": format!("tls://localhost:{}", server.port), "ca_file": ca}),
    );
    for n in 0..5 {
        out.offer(&event(n, 1));
    }
    wait_for(10, "5 messages over TLS", || got.lock().unwrap().len() == 5);
    assert!(got.lock().unwrap()[0].contains(" vigil "));
    // An outage over TLS too.
    server.stop();
    for n in 5..10 {
        out.offer(&event(n, 1));
    }
    std::thread::sleep(Duration::from_millis(500));
    server.restart();
    wait_for(20, "the held 5 over TLS", || {
        got.lock().unwrap().len() == 10
    });

    // HEC over https.
    let hec_got = Arc::new(Mutex::new(0usize));
    let g2 = Arc::clone(&hec_got);
    let hec_server = Server::start(
        Some(server_tls),
        http(Arc::new(move |req: &Request| {
            *g2.lock().unwrap() += req.body.iter().filter(|&&b| b == b'\n').count();
            Answer::Reply(200, r#"{"text":"Success","code":0}"#.into())
        })),
    );
    let out = start(
        "splunk",
        json!({"url": format!("https://127.0.0.1:{}", hec_server.port), "token": "t", "ca_file": ca}),
    );
    for n in 0..4 {
        out.offer(&event(n, 1));
    }
    wait_for(10, "4 events over https", || *hec_got.lock().unwrap() == 4);

    // A server whose certificate does not chain to the configured CA gets nothing.
    let other = support::tls_server(&dir.join("other")).0;
    let out = start(
        "splunk",
        json!({"url": format!("https://127.0.0.1:{}", hec_server.port), "token": "t", "ca_file": other}),
    );
    out.offer(&event(9, 1));
    wait_for(10, "failed attempts", || counter(&out, "failures") >= 2);
    assert_eq!(counter(&out, "sent"), 0);
    assert_eq!(*hec_got.lock().unwrap(), 4);
}
