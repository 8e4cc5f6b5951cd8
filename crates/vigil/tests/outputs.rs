//! `vigil agent` with network outputs: a finding reaches a loopback Splunk HEC server and
//! a loopback syslog server the test runs; a bad output setting is refused at start with
//! the setting and its line. The live test needs root (eBPF); with `CI=true` not being
//! root fails the run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
mod support;

/// A HEC server on loopback: answers every request 200 and keeps each event envelope.
fn hec_server(got: Arc<Mutex<Vec<serde_json::Value>>>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for sock in l.incoming().flatten() {
            let got = Arc::clone(&got);
            std::thread::spawn(move || {
                let mut r = BufReader::new(sock);
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h.trim().is_empty() {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().expect("length");
                        }
                    }
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    let events = serde_json::Deserializer::from_slice(&body)
                        .into_iter::<serde_json::Value>()
                        .map(|v| v.expect("JSON envelopes"));
                    got.lock().expect("lock").extend(events);
                    let reply = "HTTP/1.1 200 OK\r\nContent-Length: 27\r\n\r\n{\"text\":\"Success\",\"code\":0}";
                    if r.get_mut().write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// A syslog server on loopback (TCP, octet counting): keeps each message.
fn syslog_server(got: Arc<Mutex<Vec<String>>>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for sock in l.incoming().flatten() {
            let got = Arc::clone(&got);
            std::thread::spawn(move || {
                let mut r = BufReader::new(sock);
                loop {
                    let mut len = Vec::new();
                    if r.read_until(b' ', &mut len).unwrap_or(0) == 0 {
                        return;
                    }
                    let n: usize = std::str::from_utf8(&len[..len.len() - 1])
                        .expect("digits")
                        .parse()
                        .expect("an octet count");
                    let mut msg = vec![0; n];
                    if r.read_exact(&mut msg).is_err() {
                        return;
                    }
                    got.lock()
                        .expect("lock")
                        .push(String::from_utf8(msg).expect("UTF-8"));
                }
            });
        }
    });
    port
}

#[test]
fn a_finding_reaches_a_splunk_hec_and_a_syslog_server() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let dir = support::tmp("outputs", "live");
    let marker = format!("vigil-out-{}", std::process::id());
    std::fs::write(
        dir.join("marker.yml"),
        format!(
            "title: Marker {marker}\nid: 0f5e2c1a-0000-4000-8000-0000000000a1\nstatus: test\n\
             level: high\nlogsource: {{product: linux, category: process_creation}}\n\
             detection:\n    selection:\n        CommandLine|contains: '{marker}'\n    \
             condition: selection\n"
        ),
    )
    .expect("rule");
    let hec = Arc::new(Mutex::new(Vec::new()));
    let syslog = Arc::new(Mutex::new(Vec::new()));
    let hec_port = hec_server(Arc::clone(&hec));
    let syslog_port = syslog_server(Arc::clone(&syslog));
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[output]\nstats_interval_secs = 1\n\n[[output.splunk]]\nurl = \"http://127.0.0.1:{hec_port}\"\n\
             token = \"test-token\"\nflush_ms = 50\n\n[[output.syslog]]\n\
             address = \"tcp://127.0.0.1:{syslog_port}\"\nflush_ms = 50\n"
        ),
    )
    .expect("config");
    let out = dir.join("events.jsonl");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.args(["agent", "--no-builtin-rules", "--config"])
        .arg(&config)
        .arg("--rules")
        .arg(dir.join("marker.yml"))
        .arg("--output")
        .arg(&out);
    let mut agent = support::start_agent(cmd, &out, &dir.join("agent.log"));
    let st = Command::new("/bin/echo")
        .arg(&marker)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("echo");
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let cmd_line = format!("/bin/echo {marker}");
    let at_hec = || {
        hec.lock().expect("lock").iter().any(|e| {
            e["event"]["class_uid"] == 2004
                && e["event"]["actor"]["process"]["cmd_line"] == cmd_line.as_str()
                && e["sourcetype"] == "vigil:ocsf"
        })
    };
    // local0 (16) * 8 + error (3, a high finding) = 131.
    let at_syslog = || {
        syslog
            .lock()
            .expect("lock")
            .iter()
            .any(|m| m.starts_with("<131>1 ") && m.contains(" vigil ") && m.contains(&cmd_line))
    };
    while !(at_hec() && at_syslog()) {
        assert!(
            Instant::now() < deadline,
            "the finding did not arrive (HEC {}, syslog {}):\n{}",
            at_hec(),
            at_syslog(),
            std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Only findings (the default selection): no process event went out.
    assert!(hec
        .lock()
        .expect("lock")
        .iter()
        .all(|e| [2004, 2005, 7002, 7003, 7004]
            .contains(&e["event"]["class_uid"].as_i64().unwrap_or(0))));
    assert_eq!(support::stop_agent(&mut agent), Some(0));
    let stats = support::lines(&out)
        .expect("events")
        .into_iter()
        .rev()
        .find(|e| e["activity_name"] == "Statistics" && e["log_provider"] == "pipeline")
        .expect("the agent's statistics");
    assert!(
        stats["unmapped"]["splunk_sent"].as_u64() >= Some(1),
        "{stats}"
    );
    assert!(
        stats["unmapped"]["syslog_sent"].as_u64() >= Some(1),
        "{stats}"
    );
    assert_eq!(stats["unmapped"]["splunk_dropped"], 0, "{stats}");
}

#[test]
fn a_bad_output_setting_is_refused_at_start_with_its_line() {
    let dir = support::tmp("outputs", "bad");
    let config = dir.join("agent.toml");
    for (text, want) in [
        (
            "[[output.splunk]]\nurl = \"splunk:8088\"\ntoken = \"t\"\n",
            ":2: output.splunk[1].url: `splunk:8088` is not a usable URL",
        ),
        (
            "[[output.elasticsearch]]\nurl = \"https://es:9200\"\nca_file = \"/nonexistent.pem\"\n",
            ":3: output.elasticsearch[1].ca_file: /nonexistent.pem: cannot read",
        ),
        (
            "[[output.syslog]]\naddress = \"tcp://h:514\"\n\nbuffer_events = 0\n",
            ":4: output.syslog[1].buffer_events: must be at least 1",
        ),
        (
            "[[output.splunk]]\nurl = \"http://h:8088\"\n",
            ":1: missing field `token`",
        ),
    ] {
        std::fs::write(&config, text).expect("config");
        let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["agent", "--config"])
            .arg(&config)
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(
            err.contains(&format!("{}{want}", config.display())),
            "{err}"
        );
    }
}
