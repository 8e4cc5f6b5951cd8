//! The agent's metrics in the Prometheus text format (version 0.0.4), served over HTTP
//! by a thread of their own (`vigil agent --metrics ADDR`, path `/metrics`).
//!
//! The numbers live on the pipeline's thread, which is never shared. A scrape asks for
//! a fresh snapshot ([`Exporter::wanted`]); the agent's loop, which wakes at least every
//! 25 ms, renders one ([`Exporter::publish`]); the scrape waits for it up to 250 ms and
//! otherwise serves the last one, whose age it reports
//! (`vigil_metrics_snapshot_age_seconds`): a stalled pipeline still answers scrapes,
//! and says that it is stalled.
//!
//! The server answers one connection at a time, each bounded in time (2 s to read the
//! request, 2 s to write the answer) and in size (8 KiB of request head): a client that
//! misbehaves can delay a scrape, never the agent. Only `GET /metrics` (and `HEAD`)
//! gets the numbers; other paths get 404, other methods 405.

use crate::latency::Histogram;
use crate::pipeline::Pipeline;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};
use vigil_event::model::severity;
use vigil_sensor::{abi, SensorBackend};

/// How long a scrape waits for a fresh snapshot before it serves the last one.
const FRESH_WAIT: Duration = Duration::from_millis(250);
/// How long a client may take to send its request, and to take the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest request head read.
const MAX_HEAD: usize = 8 * 1024;

/// The last snapshot and when it was made.
struct Snapshot {
    text: Arc<String>,
    made: Instant,
    generation: u64,
}

struct Shared {
    wanted: AtomicBool,
    snapshot: Mutex<Snapshot>,
    fresh: Condvar,
}

/// The metrics server: a listening socket and its thread. The thread ends with the
/// process (it holds only the shared snapshot).
pub struct Exporter {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl Exporter {
    /// Listens on `addr` and serves scrapes from a thread of its own.
    pub fn bind(addr: SocketAddr) -> std::io::Result<Exporter> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            wanted: AtomicBool::new(false),
            snapshot: Mutex::new(Snapshot {
                text: Arc::new(String::new()),
                made: Instant::now(),
                generation: 0,
            }),
            fresh: Condvar::new(),
        });
        let theirs = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("vigil-metrics".into())
            .spawn(move || serve(&listener, &theirs))?;
        Ok(Exporter { shared, addr })
    }

    /// The address it listens on (the port the system chose, for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether a scrape waits for a snapshot, or none was published yet.
    pub fn wanted(&self) -> bool {
        self.shared.wanted.load(Ordering::Relaxed)
    }

    /// Publishes a snapshot and wakes the scrapes that wait for it.
    pub fn publish(&self, text: String) {
        self.shared.wanted.store(false, Ordering::Relaxed);
        let mut s = self
            .shared
            .snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        s.text = Arc::new(text);
        s.made = Instant::now();
        s.generation += 1;
        self.shared.fresh.notify_all();
    }
}

fn serve(listener: &TcpListener, shared: &Shared) {
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                if let Err(e) = answer(stream, shared) {
                    tracing::debug!("metrics request failed: {e}");
                }
            }
            Err(e) => {
                tracing::warn!("metrics: cannot accept a connection: {e}");
                // Out of descriptors: do not spin.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Reads one request head and answers it.
fn answer(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let started = Instant::now();
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "",
                false,
            );
        }
        if started.elapsed() > IO_TIMEOUT {
            return refuse(&mut stream, "408 Request Timeout");
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return respond(&mut stream, "405 Method Not Allowed", "", false);
    }
    if path != "/metrics" {
        return respond(&mut stream, "404 Not Found", "see /metrics\n", head_only);
    }
    let body = fresh_snapshot(shared);
    respond(&mut stream, "200 OK", &body, head_only)
}

/// The newest snapshot, after asking for a fresh one and waiting for it a little, with
/// its age appended.
fn fresh_snapshot(shared: &Shared) -> String {
    shared.wanted.store(true, Ordering::Relaxed);
    let s = shared
        .snapshot
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let generation = s.generation;
    let (s, _) = shared
        .fresh
        .wait_timeout_while(s, FRESH_WAIT, |s| s.generation == generation)
        .unwrap_or_else(PoisonError::into_inner);
    let (text, made) = (Arc::clone(&s.text), s.made);
    drop(s);
    let mut body = String::with_capacity(text.len() + 200);
    body.push_str(&text);
    let mut w = Writer(&mut body);
    w.family(
        "vigil_metrics_snapshot_age_seconds",
        "gauge",
        "How old these numbers are: above a fraction of a second, the agent's loop is stalled.",
    );
    w.sample(
        "vigil_metrics_snapshot_age_seconds",
        &[],
        made.elapsed().as_secs_f64(),
    );
    body
}

/// Answers a request refused before it was read whole, then reads (a little of) what
/// the client still sends, so that closing does not reset the connection before the
/// client has read the answer.
fn refuse(stream: &mut TcpStream, status: &str) -> std::io::Result<()> {
    respond(stream, status, "", false)?;
    stream.shutdown(std::net::Shutdown::Write)?;
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buf = [0u8; 4096];
    let mut left: usize = 64 * 1024;
    while left > 0 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
    Ok(())
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    body: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        out.push_str(body);
    }
    stream.write_all(out.as_bytes())?;
    stream.flush()
}

/// Writes samples in the text format.
struct Writer<'s>(&'s mut String);

impl Writer<'_> {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(
            self.0,
            "# HELP {name} {}",
            help.replace('\\', "\\\\").replace('\n', "\\n")
        );
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.0.push_str("\\\\"),
                        '"' => self.0.push_str("\\\""),
                        '\n' => self.0.push_str("\\n"),
                        c => self.0.push(c),
                    }
                }
                self.0.push('"');
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", number(value));
    }

    /// A histogram of whole `unit`s (µs: 1e-6) in seconds, with buckets at powers of two.
    fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        h: &Histogram,
        unit: f64,
        powers: std::ops::RangeInclusive<u32>,
    ) {
        let bucket = format!("{name}_bucket");
        for p in powers {
            // Whole units: below 2^p means at most 2^p - 1.
            let le = number(((1u64 << p) - 1) as f64 * unit);
            let mut l = labels.to_vec();
            l.push(("le", &le));
            self.sample(&bucket, &l, h.count_below_power_of_two(p) as f64);
        }
        let mut l = labels.to_vec();
        l.push(("le", "+Inf"));
        self.sample(&bucket, &l, h.count() as f64);
        self.sample(&format!("{name}_sum"), labels, h.sum() as f64 * unit);
        self.sample(&format!("{name}_count"), labels, h.count() as f64);
    }
}

/// A sample value as the text format writes it.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// What the metrics are made of besides the pipeline: fixed at start.
#[derive(Debug, Clone)]
pub struct AgentFacts {
    /// The rule content's version ([`crate::RuleReport::content_version`]).
    pub content_version: String,
    /// Rule documents loaded.
    pub rules_loaded: usize,
    /// Rule files or rules that failed to load or were refused.
    pub rules_failed: usize,
    /// When the agent started (seconds since the epoch).
    pub start_time: f64,
}

/// The metrics the agent serves: the server and the facts fixed at start.
pub struct Metrics {
    /// The server.
    pub exporter: Exporter,
    /// The facts fixed at start.
    pub facts: AgentFacts,
}

/// Renders every metric of the agent.
pub fn render(facts: &AgentFacts, pipeline: &Pipeline<'_>, sensor: &SensorBackend) -> String {
    let mut text = String::with_capacity(16 * 1024);
    let mut w = Writer(&mut text);
    w.family(
        "vigil_build_info",
        "gauge",
        "The running agent: its version and sensor mode.",
    );
    w.sample(
        "vigil_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("sensor", sensor.mode_name()),
        ],
        1.0,
    );
    w.family(
        "vigil_start_time_seconds",
        "gauge",
        "When the agent started, in seconds since the epoch.",
    );
    w.sample("vigil_start_time_seconds", &[], facts.start_time);
    w.family(
        "vigil_content_info",
        "gauge",
        "The version of the rule content the agent runs.",
    );
    w.sample(
        "vigil_content_info",
        &[("version", &facts.content_version)],
        1.0,
    );
    w.family("vigil_rules_loaded", "gauge", "Rules loaded and running.");
    w.sample("vigil_rules_loaded", &[], facts.rules_loaded as f64);
    w.family(
        "vigil_rules_failed",
        "gauge",
        "Rule files or rules that failed to load or were refused by the trial.",
    );
    w.sample("vigil_rules_failed", &[], facts.rules_failed as f64);

    let stats = sensor.stats();
    w.family(
        "vigil_sensor_records_total",
        "counter",
        "Records the sensor read from the kernel.",
    );
    w.sample("vigil_sensor_records_total", &[], stats.received as f64);
    w.family(
        "vigil_sensor_lost_total",
        "counter",
        "Records the kernel could not queue, by kind.",
    );
    let mut lost: Vec<(&str, u64)> = Vec::new();
    for (k, &n) in stats.lost_by_kind.iter().enumerate() {
        let name = abi::kind_name(u32::try_from(k).unwrap_or(u32::MAX));
        match lost.iter_mut().find(|(m, _)| *m == name) {
            Some((_, total)) => *total += n,
            None => lost.push((name, n)),
        }
    }
    for kind in ["exec", "fork", "exit", "syscall", "other"] {
        if !lost.iter().any(|(m, _)| *m == kind) {
            lost.push((kind, 0));
        }
    }
    for (kind, n) in &lost {
        w.sample("vigil_sensor_lost_total", &[("kind", kind)], *n as f64);
    }
    w.family(
        "vigil_sensor_malformed_total",
        "counter",
        "Sensor inputs that could not be decoded (each logged).",
    );
    w.sample("vigil_sensor_malformed_total", &[], stats.malformed as f64);
    w.family(
        "vigil_process_table_size",
        "gauge",
        "Processes in the sensor's process table.",
    );
    w.sample("vigil_process_table_size", &[], sensor.processes() as f64);

    let t = pipeline.tallies();
    w.family(
        "vigil_events_total",
        "counter",
        "Events through the pipeline, by OCSF class.",
    );
    for (uid, name, n) in t.classes {
        w.sample(
            "vigil_events_total",
            &[("class_uid", &uid.to_string()), ("class_name", name)],
            *n as f64,
        );
    }
    for (metric, what, tally) in [
        (
            "vigil_findings_total",
            "New detection findings, by level.",
            t.findings_by_level,
        ),
        (
            "vigil_incidents_total",
            "New incidents, by level.",
            t.incidents_by_level,
        ),
    ] {
        w.family(metric, "counter", what);
        for (i, n) in tally.iter().enumerate() {
            let id = if i == 7 {
                severity::OTHER
            } else {
                i32::try_from(i).unwrap_or(0)
            };
            let level = severity::name(id).to_ascii_lowercase();
            w.sample(metric, &[("level", &level)], *n as f64);
        }
    }
    let times = pipeline.stage_times();
    if !times.is_empty() {
        w.family(
            "vigil_stage_event_seconds",
            "histogram",
            "Time each event spent in each pipeline stage; the detect stage's is rule evaluation.",
        );
        for (stage, h) in &times {
            w.histogram(
                "vigil_stage_event_seconds",
                &[("stage", stage)],
                h,
                1e-9,
                8..=30,
            );
        }
        if let Some((_, h)) = times.iter().find(|(s, _)| *s == "detect") {
            w.family(
                "vigil_rule_evaluation_seconds",
                "histogram",
                "Time matching one event against every rule.",
            );
            w.histogram("vigil_rule_evaluation_seconds", &[], h, 1e-9, 8..=30);
        }
    }
    w.family(
        "vigil_exec_to_finding_seconds",
        "histogram",
        "From the kernel's record of an exec to its finding being written out.",
    );
    w.histogram(
        "vigil_exec_to_finding_seconds",
        &[],
        &pipeline.exec_to_finding(),
        1e-6,
        6..=25,
    );

    w.family(
        "vigil_sink_queue_lines",
        "gauge",
        "Lines waiting for an output's thread.",
    );
    for (sink, gauges) in pipeline.sink_gauges() {
        for (name, v) in gauges {
            if name == "queued_lines" {
                w.sample("vigil_sink_queue_lines", &[("sink", sink)], v as f64);
            }
        }
    }
    w.family(
        "vigil_sink_gauge",
        "gauge",
        "Other values of the outputs that go up and down.",
    );
    for (sink, gauges) in pipeline.sink_gauges() {
        for (name, v) in gauges {
            if name != "queued_lines" {
                w.sample(
                    "vigil_sink_gauge",
                    &[("sink", sink), ("name", name)],
                    v as f64,
                );
            }
        }
    }
    w.family(
        "vigil_sink_counter_total",
        "counter",
        "Every counter of each output (lines written, dropped, ...), by name.",
    );
    for (sink, counters) in pipeline.sink_counters() {
        for (name, v) in counters {
            w.sample(
                "vigil_sink_counter_total",
                &[("sink", sink), ("name", name)],
                v as f64,
            );
        }
    }
    w.family(
        "vigil_stage_counter",
        "untyped",
        "Every counter of the pipeline's stages, as in the agent's Statistics events.",
    );
    for (stage, counters) in pipeline.stage_counters() {
        for (name, v) in counters {
            w.sample(
                "vigil_stage_counter",
                &[("stage", stage), ("name", name)],
                v as f64,
            );
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(request.as_bytes()).expect("send");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("answer");
        out
    }

    #[test]
    fn numbers_and_labels_are_written_as_the_text_format_wants() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NAN), "NaN");
        let mut text = String::new();
        let mut w = Writer(&mut text);
        w.sample("m", &[("a", "x\"y\\z\nw")], 1.0);
        assert_eq!(text, "m{a=\"x\\\"y\\\\z\\nw\"} 1\n");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_the_count() {
        let mut h = Histogram::default();
        for us in [1, 3, 700, 1500, 40_000_000] {
            h.record(us);
        }
        let mut text = String::new();
        Writer(&mut text).histogram("t_seconds", &[], &h, 1e-6, 0..=12);
        let buckets: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with("t_seconds_bucket"))
            .map(|l| {
                l.rsplit(' ')
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("value")
            })
            .collect();
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{text}");
        // le 1023 µs: 1, 3 and 700; le 4095 µs adds 1500; +Inf all five.
        assert!(
            text.contains("t_seconds_bucket{le=\"0.001023\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{le=\"0.004095\"} 4\n"),
            "{text}"
        );
        assert!(text.contains("t_seconds_bucket{le=\"+Inf\"} 5\n"), "{text}");
        assert!(text.contains("t_seconds_count 5\n"), "{text}");
        let sum: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("t_seconds_sum "))
            .and_then(|v| v.parse().ok())
            .expect("sum");
        assert!((sum - 40.002204).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn a_scrape_asks_for_a_fresh_snapshot_and_gets_it() {
        let e = Exporter::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = e.local_addr();
        // The agent's side: publishes whenever asked, as its loop does.
        let stop = Arc::new(AtomicBool::new(false));
        let publisher = {
            let stop = Arc::clone(&stop);
            let shared = Arc::clone(&e.shared);
            std::thread::spawn(move || {
                let e = Exporter { shared, addr };
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    if e.wanted() {
                        n += 1;
                        e.publish(format!("# TYPE x counter\nx_total {n}\n"));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        let first = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let second = get(addr, "GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
        stop.store(true, Ordering::Relaxed);
        publisher.join().expect("publisher");
        assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
        assert!(first.contains("text/plain; version=0.0.4"), "{first}");
        assert!(
            first.contains("\r\n\r\n# TYPE x counter\nx_total 1\n"),
            "{first}"
        );
        assert!(
            second.contains("x_total 2\n"),
            "each scrape is fresh: {second}"
        );
        assert!(
            second.contains("vigil_metrics_snapshot_age_seconds "),
            "{second}"
        );
    }

    #[test]
    fn a_stalled_agent_still_answers_with_the_age_of_its_numbers() {
        let e = Exporter::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        e.publish("old_total 7\n".into());
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        let out = get(e.local_addr(), "GET /metrics HTTP/1.0\r\n\r\n");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(out.contains("old_total 7\n"), "{out}");
        let age: f64 = out
            .lines()
            .find_map(|l| l.strip_prefix("vigil_metrics_snapshot_age_seconds "))
            .and_then(|v| v.parse().ok())
            .expect("age");
        assert!(age >= 0.3, "{age}");
    }

    #[test]
    fn other_paths_methods_and_oversized_requests_are_refused() {
        let e = Exporter::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = e.local_addr();
        let r = get(addr, "GET /secret HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 404 "), "{r}");
        let r = get(addr, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 405 "), "{r}");
        let big = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
        let mut s = TcpStream::connect(addr).expect("connect");
        let _ = s.write_all(big.as_bytes());
        let mut r = String::new();
        let _ = s.read_to_string(&mut r);
        assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
        // A client that connects and says nothing holds the server at most 2 s.
        let _idle = TcpStream::connect(addr).expect("connect");
        let t = Instant::now();
        let r = get(addr, "HEAD /metrics HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\n"), "no body for HEAD: {r}");
        assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    }
}
