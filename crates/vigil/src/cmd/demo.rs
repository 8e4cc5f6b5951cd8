//! `vigil demo`: live detection on this host, on embedded defaults. The agent runs with
//! Vigil's rule pack while a harmless scripted intrusion plays (`demo.sh`), then the
//! incident it found is printed as a process tree.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use vigil_agent::{AgentConfig, Outputs};

/// The intrusion the demo plays.
const SCRIPT: &str = include_str!("demo.sh");

/// What the demo's web server hands out: a stage that only says it ran.
const STAGE: &str = "echo vigil demo stage ran\n";

/// `vigil demo` arguments.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the agent's events and findings in this directory (default: a temporary
    /// directory, removed at the end).
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
}

/// Serves `stage.sh` over HTTP on 127.0.0.1 to whoever asks, until `stop`.
fn serve_stage(listener: TcpListener, stop: &AtomicBool) {
    let _ = listener.set_nonblocking(true);
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((mut conn, _)) => {
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 2048];
                let _ = conn.read(&mut buf);
                let _ = write!(
                    conn,
                    "HTTP/1.0 200 OK\r\nContent-Type: text/x-sh\r\nContent-Length: {}\r\n\r\n{STAGE}",
                    STAGE.len()
                );
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Answers a reverse shell on 127.0.0.1 with `exit`, until `stop`.
fn answer_shell(listener: TcpListener, stop: &AtomicBool) {
    let _ = listener.set_nonblocking(true);
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((mut conn, _)) => {
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = conn.write_all(b"echo vigil demo reverse shell\nexit\n");
                let mut sink = Vec::new();
                let _ = conn.read_to_end(&mut sink);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Whether the agent has written its Start event to `events`.
fn started(events: &Path) -> bool {
    std::fs::read_to_string(events).is_ok_and(|t| t.contains("\"activity_name\":\"Start\""))
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> Result<ExitCode> {
    let keep = args.keep.is_some();
    let (dir, temporary) = match &args.keep {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            (d.clone(), false)
        }
        None => {
            let d = std::env::temp_dir().join(format!("vigil-demo-{}", std::process::id()));
            std::fs::create_dir_all(&d)
                .with_context(|| format!("cannot create {}", d.display()))?;
            (d, true)
        }
    };
    let result = play(&dir, keep);
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn play(dir: &Path, keep: bool) -> Result<ExitCode> {
    let mut config = AgentConfig::default();
    // Response's state is the demo's own, never the installed service's
    // (/var/lib/vigil): its heartbeat, blocklist, isolation state, vault and journal.
    let state = dir.join("state");
    config.respond.quarantine.vault_dir = state.join("vault");
    config.respond.rollback.journal_dir = state.join("journal");
    config.respond.state_dir = state;
    let (engine, report) = vigil_agent::rules::load(&config.rules, &vigil_sigma::Config::default());
    for p in &report.problems {
        tracing::warn!("rule not loaded: {p}");
    }
    // The agent appends to its outputs; the demo's story starts afresh (`--keep` may
    // name the directory of an earlier run).
    for f in ["events.jsonl", "findings.jsonl"] {
        match std::fs::remove_file(dir.join(f)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove {}", dir.join(f).display()))
            }
            _ => {}
        }
    }
    let outputs = Outputs {
        events: dir.join("events.jsonl"),
        findings: Some(dir.join("findings.jsonl")),
        config: None,
        stats_board: None,
        server: None,
    };
    let work = dir.join("work");
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let http = TcpListener::bind("127.0.0.1:0").context("cannot listen on 127.0.0.1")?;
    let listen = TcpListener::bind("127.0.0.1:0").context("cannot listen on 127.0.0.1")?;
    let (http_port, listen_port) = (http.local_addr()?.port(), listen.local_addr()?.port());
    let stop_agent = AtomicBool::new(false);
    let started_at = Instant::now();
    let stop_servers = AtomicBool::new(false);
    println!(
        "vigil demo: starting the agent with Vigil's rule pack ({} rules)...",
        report.loaded
    );
    let (script_pid, summary) = std::thread::scope(|s| -> Result<_> {
        let agent = s.spawn(|| {
            vigil_agent::run(
                config.clone(),
                std::sync::Arc::new(engine),
                &outputs,
                &stop_agent,
            )
        });
        s.spawn(|| serve_stage(http, &stop_servers));
        s.spawn(|| answer_shell(listen, &stop_servers));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !started(&outputs.events) {
            if agent.is_finished() || Instant::now() > deadline {
                stop_servers.store(true, Ordering::Relaxed);
                stop_agent.store(true, Ordering::Relaxed);
                return match agent.join() {
                    Ok(Err(e)) => Err(e).context("the agent did not start"),
                    _ => bail!("the agent did not start within 60 s"),
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        println!("the agent is watching; playing a harmless intrusion on this host:");
        let script = work.join("intrusion.sh");
        std::fs::write(&script, SCRIPT)
            .with_context(|| format!("cannot write {}", script.display()))?;
        let child = Command::new("/bin/bash")
            .arg(&script)
            .current_dir(&work)
            .env("HTTP_PORT", http_port.to_string())
            .env("LISTEN_PORT", listen_port.to_string())
            .spawn();
        let played = child.and_then(|mut c| {
            let pid = c.id();
            c.wait().map(|_| pid)
        });
        // Late events (exits, the last connection) and the correlation windows.
        std::thread::sleep(Duration::from_secs(2));
        stop_servers.store(true, Ordering::Relaxed);
        stop_agent.store(true, Ordering::Relaxed);
        let summary = match agent.join() {
            Ok(r) => r.context("the agent failed")?,
            Err(_) => bail!("the agent's thread panicked"),
        };
        Ok((played.context("cannot run the demo intrusion")?, summary))
    })?;
    let mut incidents = vigil_detect::Incidents::new();
    let text = std::fs::read_to_string(dir.join("findings.jsonl")).unwrap_or_default();
    for line in text.lines() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
            incidents.add(&v);
        }
    }
    let found: Vec<_> = incidents
        .incidents()
        .into_iter()
        .filter(|i| i.involves_pid(i64::from(script_pid)))
        .collect();
    println!();
    if found.is_empty() {
        println!(
            "the agent found no incident in the demo (events: {})",
            outputs.events.display()
        );
        return Ok(ExitCode::from(crate::EXIT_CHECK_FAILED));
    }
    for inc in &found {
        print!("{}", inc.to_text());
    }
    println!();
    print!(
        "the agent saw {} events of this host in {:.1} s and lost {}",
        summary.received,
        started_at.elapsed().as_secs_f64(),
        summary.lost
    );
    match outputs.findings.as_deref().filter(|_| keep) {
        Some(f) => println!(
            "; `vigil incidents {}` shows the findings again",
            f.display()
        ),
        None => println!("; `vigil demo --keep DIR` keeps its output"),
    }
    Ok(ExitCode::SUCCESS)
}
