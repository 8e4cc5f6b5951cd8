//! What the tests that run `vigil agent` as a process share.

pub mod netns;

use std::path::Path;
use std::process::Child;

/// The complete lines the agent wrote to `path` so far (a line still being written is
/// left out), each parsed as one JSON event; a line that is not JSON is an error naming
/// its number.
#[allow(dead_code)]
pub fn lines(path: &Path) -> Result<Vec<serde_json::Value>, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    complete
        .lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| format!("{}:{}: not one JSON event: {e}", path.display(), i + 1))
        })
        .collect()
}

/// A running agent, killed if a test fails before stopping it.
#[allow(dead_code)]
pub struct Agent(pub Child);

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A fresh, empty directory for one test, removed after it:
/// `<tmp>/vigil-<prefix>-<pid>-<n>-<name>`.
#[allow(dead_code)]
pub fn tmp(prefix: &str, name: &str) -> Tmp {
    vigil_testdata::TempDir::new(prefix, name)
}

/// See [`tmp`].
#[allow(dead_code)]
pub type Tmp = vigil_testdata::TempDir;

/// Waits up to `secs` for a line of `path` for which `want` holds.
#[allow(dead_code)]
pub fn wait_for(
    path: &Path,
    secs: u64,
    want: impl Fn(&serde_json::Value) -> bool,
) -> Option<serde_json::Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if let Some(v) = lines(path).unwrap_or_default().into_iter().find(&want) {
            return Some(v);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    None
}

/// Starts `vigil agent` (the command given, its output `out`, its log `log`) and waits
/// up to 60 s for its Start event; panics with its log if it does not start.
#[allow(dead_code)]
pub fn start_agent(mut cmd: std::process::Command, out: &Path, log: &Path) -> Agent {
    let child = cmd
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("agent starts");
    let mut agent = Agent(child);
    let started = wait_for(out, 60, |e| {
        e["class_uid"] == 1008 && e["activity_name"] == "Start"
    });
    if started.is_none() {
        let _ = agent.0.kill();
        let _ = agent.0.wait();
        panic!(
            "the agent did not start within 60 s:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
    agent
}

/// Stops an agent with SIGINT and returns its exit code.
#[allow(dead_code)]
pub fn stop_agent(agent: &mut Agent) -> Option<i32> {
    let ok = std::process::Command::new("kill")
        .args(["-INT", &agent.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    agent.0.wait().expect("agent exits").code()
}

/// The commands `vigil --help` lists (not `help`).
#[allow(dead_code)]
pub fn help_commands(help: &str) -> Vec<&str> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A command's line is indented by two spaces; wrapped descriptions by more.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect()
}
