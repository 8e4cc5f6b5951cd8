//! `vigil bench ship` (hidden): simulated agents shipping to a server, for
//! `scripts/bench-ship`. Each simulated agent is enrolled with the token like a real one
//! (its own key pair and certificate, kept under `--state` and reused by later runs) and
//! keeps its own mutual TLS connection open for the whole run; batches are the generator's
//! realistic events, sent through the agent's own batch client (`ship::Conn`).

use crate::cmd::bench_gen::{story, Host, Rng};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil_agent::server::ship::{Conn, Sent};
use vigil_agent::server::spool::Stream;
use vigil_agent::server::Link;

/// `vigil bench ship` arguments.
#[derive(Debug, Args)]
pub struct ShipArgs {
    /// The server (`https://127.0.0.1:8443`).
    #[arg(long)]
    url: String,
    /// The server's CA certificate (`DATA/ca.pem`).
    #[arg(long, value_name = "FILE")]
    ca: PathBuf,
    /// An enrolment token with a use per agent not enrolled yet (`vigil server token`).
    #[arg(long, default_value = "")]
    token: String,
    /// Where the simulated agents' credentials are kept (one directory each).
    #[arg(long, value_name = "DIR")]
    state: PathBuf,
    /// Simulated agents, each with its own connection.
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Events per batch.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Threads sending (each takes its share of the agents, in turn).
    #[arg(long, default_value_t = 8)]
    threads: usize,
    /// Events per second to offer in all (0: as fast as the server takes them).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// An API token (`vigil server token --api-user`): the findings list of
    /// organisation --org is asked for every 100 ms during the load, and its answer
    /// times reported.
    #[arg(long, requires = "org")]
    api_token: Option<String>,
    /// The organisation of --api-token.
    #[arg(long)]
    org: Option<i64>,
}

/// Asks for the findings list every 100 ms until `deadline`; the answer times (µs),
/// and for each timed finding of the load first seen in a list, how long after it was
/// made (ms, to within the polling's 100 ms: through NATS, acknowledged is not yet
/// stored).
fn poll_api(
    a: &ShipArgs,
    token: &str,
    org: i64,
    deadline: Instant,
) -> Result<(Vec<u64>, Vec<u64>)> {
    use vigil_agent::server::https;
    let config = vigil_agent::server::trusting(&a.ca)?;
    let base = https::BaseUrl::parse(&a.url).map_err(anyhow::Error::msg)?;
    let auth = format!("Bearer {token}");
    let path = format!("/api/v1/orgs/{org}/findings");
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut visible = Vec::new();
    // A little past the load, so that its last findings are seen too.
    let deadline = deadline + Duration::from_secs(2);
    while Instant::now() < deadline {
        let t = Instant::now();
        let r = https::request(
            &config,
            &base,
            "GET",
            &path,
            &[("Authorization", auth.as_str())],
            b"",
            Duration::from_secs(10),
        )?;
        if r.status != 200 {
            bail!("GET {path}: HTTP {}", r.status);
        }
        out.push(t.elapsed().as_micros() as u64);
        let now = vigil_event::time::now_ms();
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        for f in v["findings"].as_array().into_iter().flatten() {
            let (Some(uid), Some(time)) = (f["uid"].as_str(), f["time"].as_i64()) else {
                continue;
            };
            if uid.starts_with("load-") && seen.insert(uid.to_string()) {
                visible.push(u64::try_from(now - time).unwrap_or(0));
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok((out, visible))
}

/// Percentiles of microsecond samples.
fn pct(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

/// Enrols agent `i` (or loads it, enrolled by an earlier run).
fn agent(a: &ShipArgs, i: usize) -> Result<Link> {
    let dir = a.state.join(format!("agent-{i:05}"));
    if let Some(link) = Link::load(&dir)? {
        return Ok(link);
    }
    if a.token.is_empty() {
        bail!("agent {i} is not enrolled yet: give --token");
    }
    vigil_agent::server::enroll(&a.url, &a.token, Some(&a.ca), &dir, &format!("load-{i:05}"))
        .with_context(|| format!("enrolling simulated agent {i}"))?;
    Link::load(&dir)?.context("enrolled, but no link")
}

/// Compressed batches of realistic events (their contents do not depend on the
/// sequence, which is in the path).
fn bodies(batch: usize) -> Result<Vec<Vec<u8>>> {
    let mut rng = Rng::new(7);
    let start = 1_796_083_200_000i64;
    let mut hosts: Vec<Host> = (0..16).map(|i| Host::new(i, start - 86_400_000)).collect();
    let mut out = Vec::new();
    let mut lines = Vec::new();
    let (mut n, mut t) = (0usize, start);
    while out.len() < 16 {
        let h = rng.below(16) as usize;
        story(&mut rng, &mut hosts[h], t, start - 86_400_000, &mut |e| {
            lines.extend_from_slice(e.to_string().as_bytes());
            lines.push(b'\n');
            n += 1;
        });
        t += 60_000;
        if n >= batch {
            // Whole lines up to `batch` of them.
            let mut cut = 0;
            for _ in 0..batch {
                cut += lines[cut..].iter().position(|b| *b == b'\n').unwrap_or(0) + 1;
            }
            out.push(zstd::bulk::compress(&lines[..cut], 3)?);
            lines.drain(..cut);
            n -= batch;
        }
    }
    Ok(out)
}

/// Runs the load; prints what the server took and how fast it answered.
pub fn ship(a: &ShipArgs) -> Result<ExitCode> {
    if a.agents == 0 || a.threads == 0 || a.batch == 0 {
        bail!("--agents, --threads and --batch must be at least 1");
    }
    let t0 = Instant::now();
    let next = AtomicU64::new(0);
    let links: Vec<Result<Vec<(usize, Link)>>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..a.threads.min(16))
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                        if i >= a.agents {
                            return Ok(mine);
                        }
                        mine.push((i, agent(a, i)?));
                    }
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| bail!("an enrolment thread failed"))
            })
            .collect()
    });
    let mut all = Vec::new();
    for l in links {
        all.extend(l?);
    }
    all.sort_by_key(|(i, _)| *i);
    eprintln!(
        "{} agents ready in {:.1} s",
        all.len(),
        t0.elapsed().as_secs_f64()
    );
    let bodies = Arc::new(bodies(a.batch)?);
    let acked = AtomicU64::new(0);
    let failures = AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let started = Instant::now();
    let per_thread_rate = a.rate as f64 / a.threads as f64;
    let mut shares: Vec<Vec<(Conn, u64)>> = (0..a.threads).map(|_| Vec::new()).collect();
    for (i, link) in all {
        shares[i % a.threads].push((Conn::new(link), 0));
    }
    let api = std::thread::scope(|s| {
        let poller = match (&a.api_token, a.org) {
            (Some(t), Some(org)) => Some(s.spawn(move || poll_api(a, t, org, deadline))),
            _ => None,
        };
        let results = run_load(
            a,
            shares,
            &bodies,
            &acked,
            &failures,
            deadline,
            started,
            per_thread_rate,
        );
        (results, poller.map(|p| p.join()))
    });
    let (results, api) = api;
    let (mut api_lat, mut visible) = match api {
        Some(Ok(Ok(v))) => v,
        Some(Ok(Err(e))) => return Err(e.context("the API poller")),
        Some(Err(_)) => bail!("the API poller failed"),
        None => (Vec::new(), Vec::new()),
    };
    report(a, results, &acked, &failures, started, &mut api_lat);
    if !visible.is_empty() {
        println!(
            "findings visible through the API after they were made: p50 {} ms, p99 {} ms, max {} ms ({} seen; polled every 100 ms)",
            pct(&mut visible, 0.5),
            pct(&mut visible, 0.99),
            pct(&mut visible, 1.0),
            visible.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

type Share = Vec<(Conn, u64)>;

#[expect(
    clippy::too_many_arguments,
    reason = "the run's shared counters and clocks"
)]
fn run_load(
    a: &ShipArgs,
    shares: Vec<Share>,
    bodies: &Arc<Vec<Vec<u8>>>,
    acked: &AtomicU64,
    failures: &AtomicU64,
    deadline: Instant,
    started: Instant,
    per_thread_rate: f64,
) -> Vec<(Vec<u64>, Vec<u64>, usize)> {
    std::thread::scope(|s| {
        let hs: Vec<_> = shares
            .into_iter()
            .enumerate()
            .map(|(t, mut conns)| {
                let bodies = Arc::clone(bodies);
                s.spawn(move || {
                    let mut lat = Vec::new();
                    let mut finding_lat = Vec::new();
                    let mut sent_events = 0f64;
                    let mut k = t;
                    let mut last_finding = Instant::now();
                    let mut finding_seq = 0u64;
                    // Open every connection first: all agents are connected at once.
                    for (c, _) in conns.iter_mut() {
                        let body = &bodies[k % bodies.len()];
                        k += 1;
                        if c.post(Stream::Events, 1, a.batch as u64, body) == Sent::Acked {
                            acked.fetch_add(a.batch as u64, Ordering::Relaxed);
                        }
                    }
                    for (_, seq) in conns.iter_mut() {
                        *seq = a.batch as u64 + 1;
                    }
                    let opened = conns.len();
                    'run: while Instant::now() < deadline {
                        for (c, seq) in conns.iter_mut() {
                            if Instant::now() >= deadline {
                                break 'run;
                            }
                            if per_thread_rate > 0.0 {
                                let due = started
                                    + Duration::from_secs_f64(sent_events / per_thread_rate);
                                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                                    std::thread::sleep(wait);
                                }
                            }
                            // One finding a second per thread, timed: once acknowledged
                            // it is in the findings the console reads.
                            if last_finding.elapsed() >= Duration::from_secs(1) {
                                last_finding = Instant::now();
                                finding_seq += 1;
                                let f = format!(
                                    "{{\"class_uid\":2004,\"activity_id\":1,\"time\":{},\"severity_id\":4,\"metadata\":{{\"uid\":\"load-{t}-{finding_seq}-{}\"}},\"finding_info\":{{\"title\":\"load test finding\",\"uid\":\"load\"}}}}\n",
                                    vigil_event::time::now_ms(),
                                    std::process::id()
                                );
                                let body = zstd::bulk::compress(f.as_bytes(), 3).unwrap_or_default();
                                let t1 = Instant::now();
                                if c.post(Stream::Findings, finding_seq, finding_seq, &body) == Sent::Acked {
                                    finding_lat.push(t1.elapsed().as_micros() as u64);
                                }
                            }
                            let body = &bodies[k % bodies.len()];
                            k += 1;
                            let t1 = Instant::now();
                            let last = *seq + a.batch as u64 - 1;
                            match c.post(Stream::Events, *seq, last, body) {
                                Sent::Acked => {
                                    lat.push(t1.elapsed().as_micros() as u64);
                                    acked.fetch_add(a.batch as u64, Ordering::Relaxed);
                                    *seq = last + 1;
                                    sent_events += a.batch as f64;
                                }
                                _ => {
                                    failures.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                    (lat, finding_lat, opened)
                })
            })
            .collect();
        hs.into_iter().filter_map(|h| h.join().ok()).collect()
    })
}

fn report(
    a: &ShipArgs,
    results: Vec<(Vec<u64>, Vec<u64>, usize)>,
    acked: &AtomicU64,
    failures: &AtomicU64,
    started: Instant,
    api_lat: &mut [u64],
) {
    let secs = started.elapsed().as_secs_f64();
    let (mut lat, mut flat) = (Vec::new(), Vec::new());
    let mut connected = 0;
    for (l, f, n) in results {
        lat.extend(l);
        flat.extend(f);
        connected += n;
    }
    let acked = acked.load(Ordering::Relaxed);
    println!(
        "agents {connected}, {:.0} events/s acknowledged ({acked} in {secs:.1} s), batch of {} events: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; findings acknowledged p50 {:.1} ms, p99 {:.1} ms ({} timed); failed requests {}",
        acked as f64 / secs,
        a.batch,
        pct(&mut lat, 0.5) as f64 / 1000.0,
        pct(&mut lat, 0.99) as f64 / 1000.0,
        pct(&mut lat, 1.0) as f64 / 1000.0,
        pct(&mut flat, 0.5) as f64 / 1000.0,
        pct(&mut flat, 0.99) as f64 / 1000.0,
        flat.len(),
        failures.load(Ordering::Relaxed)
    );
    if !api_lat.is_empty() {
        println!(
            "API (GET findings, a new connection each): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} requests)",
            pct(api_lat, 0.5) as f64 / 1000.0,
            pct(api_lat, 0.99) as f64 / 1000.0,
            pct(api_lat, 1.0) as f64 / 1000.0,
            api_lat.len()
        );
    }
}
