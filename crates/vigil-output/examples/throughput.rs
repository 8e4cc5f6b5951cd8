//! Events per second through each output to a loopback server that accepts everything,
//! and the pipeline's cost of handing one event over (`Output::offer`).
//!
//! `cargo run --release -p vigil-output --example throughput [EVENTS]`

#![allow(clippy::unwrap_used)]

use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::Instant;

/// A loopback HTTP server answering every request `reply` (a bulk or HEC success).
fn http_server(reply: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for sock in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut r = BufReader::new(sock);
                let mut body = Vec::new();
                loop {
                    let mut len = 0;
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line.trim().is_empty() {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    body.resize(len, 0);
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    let text = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{reply}",
                        reply.len()
                    );
                    if r.get_mut().write_all(text.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// A loopback syslog server (TCP) that reads and discards.
fn syslog_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut sock in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = vec![0; 1 << 16];
                while sock.read(&mut buf).unwrap_or(0) > 0 {}
            });
        }
    });
    port
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    // The example intrusion's events, as the agent writes them, over and over.
    let lines: Vec<Vec<u8>> = vigil_event::example::attack_story(1_714_564_800_000)
        .iter()
        .map(|e| serde_json::to_vec(e).unwrap())
        .collect();
    let avg = lines.iter().map(Vec::len).sum::<usize>() / lines.len();
    println!("{n} events, {avg} bytes on average (the example intrusion's)");
    let common = json!({"select": "all", "buffer_events": n, "buffer_bytes": 1u64 << 31,
                        "batch_events": 500, "flush_ms": 100, "shutdown_ms": 600_000});
    let with = |mut v: serde_json::Value| {
        for (k, x) in common.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    let outputs = [
        (
            "splunk",
            with(
                json!({"url": format!("http://127.0.0.1:{}", http_server(r#"{"text":"Success","code":0}"#)), "token": "t"}),
            ),
        ),
        (
            "elasticsearch",
            with(
                json!({"url": format!("http://127.0.0.1:{}", http_server(r#"{"took":1,"errors":false,"items":[]}"#))}),
            ),
        ),
        (
            "syslog",
            with(json!({"address": format!("tcp://127.0.0.1:{}", syslog_server())})),
        ),
    ];
    for (kind, settings) in outputs {
        let config: vigil_output::OutputsConfig =
            serde_json::from_value(json!({ kind: [settings] })).unwrap();
        let mut out = vigil_output::start(&config).unwrap().pop().unwrap();
        // Steady state, as in the agent, where the output keeps up: bursts of 500
        // events, each sent before the next.
        let mut busy = std::time::Duration::ZERO;
        for burst in 0..220 {
            let t = Instant::now();
            for i in 0..500 {
                out.offer(&lines[(burst + i) % lines.len()]);
            }
            // The first 20 bursts warm up (threads, allocator, connection).
            if burst >= 20 {
                busy += t.elapsed();
            }
            out.sync();
        }
        println!(
            "{kind:>13}: steady: offer {:.0} ns/event (100000 events in bursts of 500)",
            busy.as_nanos() as f64 / 100_000.0
        );
        let get = |k: &str| out.counters().iter().find(|(c, _)| *c == k).unwrap().1;
        let (sent0, bytes0) = (get("sent"), get("sent_bytes"));
        let t = Instant::now();
        for i in 0..n {
            out.offer(&lines[i % lines.len()]);
        }
        let offered = t.elapsed();
        out.sync();
        let done = t.elapsed();
        let sent = get("sent") - sent0;
        println!(
            "{kind:>13}: {sent} sent in {:.2} s = {:.0} events/s ({:.1} MB/s); offer {:.0} ns/event; dropped {}",
            done.as_secs_f64(),
            sent as f64 / done.as_secs_f64(),
            (get("sent_bytes") - bytes0) as f64 / done.as_secs_f64() / 1e6,
            offered.as_nanos() as f64 / n as f64,
            get("dropped"),
        );
        out.close();
    }
}
