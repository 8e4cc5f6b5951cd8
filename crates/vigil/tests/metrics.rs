//! `vigil agent --metrics ADDR`: Prometheus metrics scraped from the real agent while it
//! sees real activity; the numbers follow what the agent writes. Needs root; with
//! `CI=true` not being root fails the run.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
mod support;

/// One sample: metric name and labels (sorted), and its value.
type Samples = BTreeMap<(String, Vec<(String, String)>), f64>;

/// Parses the text format strictly: every sample belongs to a family declared by a
/// `# TYPE` line before it, labels are well formed, values are numbers, no series twice.
fn parse(text: &str) -> Result<Samples, String> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut out = Samples::new();
    for (i, line) in text.lines().enumerate() {
        let at = |m: &str| format!("line {}: {m}: {line}", i + 1);
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or_else(|| at("bad TYPE"))?;
            if !["counter", "gauge", "histogram", "untyped", "summary"].contains(&kind) {
                return Err(at("unknown type"));
            }
            if types.insert(name.to_string(), kind.to_string()).is_some() {
                return Err(at("family declared twice"));
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| at("no value"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| at("value is not a number"))?,
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.strip_suffix('}').ok_or_else(|| at("unclosed labels"))?),
            None => (series, ""),
        };
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            return Err(at("bad metric name"));
        }
        let family = types.contains_key(name).then_some(name).or_else(|| {
            ["_bucket", "_sum", "_count"].iter().find_map(|s| {
                let f = name.strip_suffix(s)?;
                (types.get(f).map(String::as_str) == Some("histogram")).then_some(f)
            })
        });
        if family.is_none() {
            return Err(at("sample of an undeclared family"));
        }
        let mut parsed = Vec::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (k, v) = rest.split_once("=\"").ok_or_else(|| at("bad label"))?;
            let mut value = String::new();
            let mut chars = v.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => return Err(at("bad escape")),
                    },
                    Some((j, '"')) => break j,
                    Some((_, c)) => value.push(c),
                    None => return Err(at("unterminated label value")),
                }
            };
            parsed.push((k.to_string(), value));
            rest = v[end + 1..].strip_prefix(',').unwrap_or(&v[end + 1..]);
        }
        parsed.sort();
        if out.insert((name.to_string(), parsed), value).is_some() {
            return Err(at("series twice"));
        }
    }
    Ok(out)
}

/// The value of a series, by its name and some of its labels (the one series that has
/// them all).
fn value(s: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = s.iter().filter(|((n, l), _)| {
        n == name
            && labels
                .iter()
                .all(|(k, v)| l.iter().any(|(a, b)| a == k && b == v))
    });
    let first = found.next().map(|(_, v)| *v);
    assert!(
        found.next().is_none(),
        "{name} {labels:?} names more than one series"
    );
    first
}

fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: vigil\r\n\r\n").expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

fn scrape(addr: SocketAddr) -> Samples {
    let r = get(addr, "/metrics");
    let (head, body) = r.split_once("\r\n\r\n").expect("head and body");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    parse(body).unwrap_or_else(|e| panic!("not the text format: {e}\n{body}"))
}

/// A loopback port free a moment ago.
fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// Checks a histogram family: buckets cumulative, `+Inf` equal to the count.
fn check_histogram(s: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let bucket = format!("{name}_bucket");
    let mut buckets: Vec<(f64, f64)> = s
        .iter()
        .filter(|((n, l), _)| {
            *n == bucket
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(a, b)| a == k && b == v))
        })
        .map(|((_, l), v)| {
            let le = &l.iter().find(|(k, _)| k == "le").expect("le").1;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("le")
            };
            (le, *v)
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(buckets.len() > 5, "{name}: {buckets:?}");
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "{name} not cumulative: {buckets:?}"
    );
    let count = value(s, &format!("{name}_count"), labels).expect("count");
    assert_eq!(
        buckets.last().map(|b| b.1),
        Some(count),
        "{name}: +Inf is the count"
    );
    count
}

fn rule(marker: &str) -> String {
    format!(
        "title: Marker {marker}\nid: 3d1c6c7e-0000-4000-8000-00000000a001\nstatus: test\n\
         level: high\nlogsource: {{product: linux, category: process_creation}}\n\
         detection:\n    selection:\n        CommandLine|contains: '{marker}'\n        \
         ParentImage|endswith: ['/sh', '/dash', '/bash']\n    condition: selection\n"
    )
}

fn content_version(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let at = text.find("content_version=")? + "content_version=".len();
    Some(text[at..].split_whitespace().next()?.to_string())
}

#[test]
fn metrics_are_served_in_the_text_format_and_follow_what_the_agent_does() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let dir = support::tmp("metrics", "scrape");
    let marker = format!("vigil-metrics-{}", std::process::id());
    let rules = dir.join("marker.yml");
    std::fs::write(&rules, rule(&marker)).expect("rule");
    let (out, log, findings) = (
        dir.join("events.jsonl"),
        dir.join("agent.log"),
        dir.join("findings.jsonl"),
    );
    let addr = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.args([
        "agent",
        "--no-builtin-rules",
        "--metrics",
        &addr.to_string(),
    ])
    .arg("--rules")
    .arg(&rules)
    .arg("--output")
    .arg(&out)
    .arg("--findings")
    .arg(&findings);
    let mut agent = support::start_agent(cmd, &out, &log);

    let first = scrape(addr);
    assert_eq!(value(&first, "vigil_rules_loaded", &[]), Some(1.0));
    let version = content_version(&log).expect("the log names the content version");
    assert!(version.starts_with("sha256:"), "{version}");
    assert_eq!(
        value(&first, "vigil_content_info", &[("version", &version)]),
        Some(1.0),
        "the metrics name the content version the log names"
    );
    assert_eq!(
        value(&first, "vigil_build_info", &[("sensor", "ebpf")]),
        Some(1.0)
    );
    assert!(value(&first, "vigil_process_table_size", &[]).expect("table") > 10.0);
    // The agent may report findings of its own at start (a gap in its heartbeat).
    let high_before = value(&first, "vigil_findings_total", &[("level", "high")]).expect("high");
    assert_eq!(
        value(&first, "vigil_sensor_lost_total", &[("kind", "exec")]),
        Some(0.0)
    );
    let execs_before = value(&first, "vigil_events_total", &[("class_uid", "1007")]).unwrap_or(0.0);

    let st = Command::new("/bin/sh")
        .args(["-c", &format!("/bin/echo {marker} >/dev/null; /bin/true")])
        .status()
        .expect("sh");
    assert!(st.success());
    support::wait_for(&findings, 20, |f| f["class_uid"] == 2004).expect("the finding");

    let second = scrape(addr);
    assert_eq!(
        value(&second, "vigil_findings_total", &[("level", "high")]),
        Some(high_before + 1.0)
    );
    assert_eq!(
        value(&second, "vigil_findings_total", &[("level", "low")]),
        value(&first, "vigil_findings_total", &[("level", "low")]),
    );
    let execs = value(&second, "vigil_events_total", &[("class_uid", "1007")]).expect("1007");
    assert!(
        execs >= execs_before + 3.0,
        "sh, echo and true: {execs_before} -> {execs}"
    );
    assert_eq!(
        value(&second, "vigil_events_total", &[("class_uid", "2004")]),
        Some(value(&first, "vigil_events_total", &[("class_uid", "2004")]).unwrap_or(0.0) + 1.0)
    );
    assert!(check_histogram(&second, "vigil_exec_to_finding_seconds", &[]) >= 1.0);
    let evaluated = check_histogram(&second, "vigil_rule_evaluation_seconds", &[]);
    assert!(
        evaluated >= execs,
        "every event is matched: {evaluated} < {execs}"
    );
    check_histogram(&second, "vigil_stage_event_seconds", &[("stage", "story")]);
    for sink in ["events", "findings"] {
        assert!(
            value(&second, "vigil_sink_queue_lines", &[("sink", sink)]).is_some(),
            "{sink}"
        );
    }
    assert_eq!(
        value(
            &second,
            "vigil_sink_counter_total",
            &[("sink", "findings"), ("name", "dropped")]
        ),
        Some(0.0)
    );
    let age = value(&second, "vigil_metrics_snapshot_age_seconds", &[]).expect("age");
    assert!(age < 1.0, "a running agent's numbers are fresh: {age}");
    assert!(get(addr, "/").starts_with("HTTP/1.1 404 "));

    assert_eq!(support::stop_agent(&mut agent), Some(0));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_metrics_address_that_cannot_be_used_is_refused_at_start() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "agent",
            "--no-builtin-rules",
            "--metrics",
            &addr.to_string(),
        ])
        .output()
        .expect("vigil");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("--metrics {addr}: cannot listen")),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["agent", "--metrics", "localhost"])
        .output()
        .expect("vigil");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--metrics"), "{err}");
}
