//! `vigil agent` as a process: starts, writes OCSF events as JSON lines, stops cleanly
//! on SIGTERM and SIGINT with everything flushed; bad config and missing privileges are
//! clear errors. Needs root; with `CI=true` not being root fails the run.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
mod support;

use support::Agent;

/// The complete lines written so far (a line still being written is left out).
fn lines(path: &Path) -> Vec<serde_json::Value> {
    support::lines(path).expect("every line is one JSON event")
}

/// Starts the agent writing to `out` and waits for its Start event.
fn start_agent(out: &Path, extra: &[&str]) -> Agent {
    let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["agent", "--output"])
        .arg(out)
        .args(extra)
        .stderr(Stdio::null())
        .spawn()
        .expect("agent starts");
    let child = Agent(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if lines(out)
            .iter()
            .any(|e| e["class_uid"] == 1008 && e["activity_name"] == "Start")
        {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the agent did not start within 20 s");
}

fn signal(agent: &Agent, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &agent.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("vigil-agent-{}-{name}", std::process::id()))
}

#[test]
fn streams_events_and_flushes_everything_on_sigterm_and_sigint() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    for sig in ["-TERM", "-INT"] {
        let out = tmp(&format!("stream{sig}.jsonl"));
        let mut agent = start_agent(&out, &[]);
        let marker = format!("vigil-agent-marker{sig}");
        let st = Command::new("/bin/echo")
            .arg(&marker)
            .stdout(Stdio::null())
            .status()
            .expect("echo");
        assert!(st.success());
        // Stop right away: the exec must still be in the file, flushed at exit.
        signal(&agent, sig);
        let status = agent.0.wait().expect("agent exits");
        assert_eq!(status.code(), Some(0), "clean exit on {sig}");
        let events = lines(&out);
        assert_eq!(
            events.first().map(|e| e["activity_name"].clone()),
            Some("Start".into())
        );
        assert_eq!(
            events.last().map(|e| e["activity_name"].clone()),
            Some("Stop".into())
        );
        let echo = events
            .iter()
            .find(|e| {
                e["launch_type"] == "Spawn"
                    && e["process"]["cmd_line"] == format!("/bin/echo {marker}")
            })
            .unwrap_or_else(|| panic!("exec of echo not in {} events", events.len()));
        assert_eq!(echo["process"]["parent_process"]["pid"], std::process::id());
        assert!(
            !events
                .iter()
                .any(|e| e["process"]["pid"] == agent.0.id() && e["class_uid"] == 1007),
            "the agent's own activity is filtered in the kernel"
        );
        let _ = std::fs::remove_file(out);
    }
}

#[test]
fn config_errors_name_file_and_line() {
    let cfg = tmp("bad.toml");
    // Runs the agent on `config`; it must refuse with exit code 3. Returns stderr.
    let refused = |config: &str| {
        std::fs::write(&cfg, config).expect("write");
        let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["agent", "--config"])
            .arg(&cfg)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(3));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = refused("[sensor]\nring_buffer_mib = 16\nbogus = 1\n");
    assert!(
        err.contains(&format!("{}:3: unknown field `bogus`", cfg.display())),
        "{err}"
    );
    let err = refused("[sensor]\nring_buffer_mib = 3\n");
    assert!(
        err.contains("ring_buffer_mib = 3: must be a power of two"),
        "{err}"
    );
    let _ = std::fs::remove_file(cfg);
}

#[test]
fn without_root_it_says_so() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    // Drop to nobody with util-linux's setpriv (part of every Debian system).
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_vigil"))
        .args(["agent", "--output", "/dev/null"])
        .output()
        .expect("setpriv runs");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the sensor needs root (CAP_BPF") && err.contains("running as uid 65534"),
        "{err}"
    );
}
