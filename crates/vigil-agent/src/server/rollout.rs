//! Content from the server's staged rollouts (`vigil_server::content`): the heartbeat's
//! answer names a bundle version to run (`{"version": V}`) or, after the rollout was
//! halted, one to leave (`{"leave": V}`). A thread of its own (one job at a time, never
//! the heartbeat's) fetches the bundle (`GET /agent/v1/content/V`), writes it into a
//! private staging directory under the content directory, and applies it exactly as
//! `vigil content apply` does (checked completely first; refused, nothing changes); the
//! agent's content watcher then swaps it in. Leaving is `vigil content rollback`. What
//! runs, what was refused and why, go back in the next heartbeats (`content_version`,
//! `content_refused`), which is what the server judges the rollout by.

use super::Link;
use crate::content::{self, store, Settings};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long fetching a bundle may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Job {
    /// A fetch, apply or rollback runs now.
    busy: bool,
    /// The last version fetched and applied or refused: not fetched again.
    tried: Option<String>,
    /// `VERSION: problems` of the last bundle refused.
    refused: Option<String>,
}

/// The agent's side of rollouts: where its content lives and how bundles are checked.
#[derive(Debug, Clone)]
pub struct Rollouts {
    dir: PathBuf,
    settings: Settings,
    job: Arc<Mutex<Job>>,
}

/// Whether `p` may name a file of a bundle: the manifest, the policy, or a file under
/// one of its parts, plain components only (a server's answer is checked like any
/// input before anything is written).
fn bundle_path(p: &str) -> bool {
    if p == content::MANIFEST || p == content::POLICY {
        return true;
    }
    let mut parts = p.split('/');
    let top = parts.next().unwrap_or("");
    let rest: Vec<&str> = parts.collect();
    content::PARTS.contains(&top)
        && !rest.is_empty()
        && p.len() <= 256
        && rest
            .iter()
            .all(|c| !c.is_empty() && *c != "." && *c != ".." && !c.chars().any(char::is_control))
}

/// Writes `files` (path -> text) under `to`, a new private directory.
fn write_bundle(to: &Path, files: &Map<String, Value>) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    let _ = std::fs::remove_dir_all(to);
    let mkdir = |d: &Path| {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(d)
            .map_err(|e| format!("{}: {e}", d.display()))
    };
    mkdir(to)?;
    for (name, text) in files {
        let text = text.as_str().ok_or_else(|| format!("{name}: not text"))?;
        if !bundle_path(name) {
            return Err(format!("{name:?}: not a path inside a bundle"));
        }
        let path = to.join(name);
        if let Some(parent) = path.parent() {
            mkdir(parent)?;
        }
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

impl Rollouts {
    /// Rollouts into the content directory `dir`, bundles checked with `settings`.
    pub fn new(dir: PathBuf, settings: Settings) -> Rollouts {
        Rollouts {
            dir,
            settings,
            job: Arc::default(),
        }
    }

    fn job(&self) -> std::sync::MutexGuard<'_, Job> {
        self.job.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds what the server judges a rollout by to a heartbeat's statistics: the last
    /// bundle refused and why.
    pub fn report(&self, stats: &mut Map<String, Value>) {
        if let Some(r) = &self.job().refused {
            stats.insert("content_refused".into(), Value::String(r.clone()));
        }
    }

    /// Acts on a heartbeat answer's `content`, on a thread of its own; returns at once.
    pub fn act(&self, link: &Link, content: &Value) {
        let current = store::linked(&self.dir, store::CURRENT);
        let (run, leave) = (
            content.get("version").and_then(Value::as_str),
            content.get("leave").and_then(Value::as_str),
        );
        {
            let mut job = self.job();
            if job.busy {
                return;
            }
            match (run, leave) {
                (Some(v), _)
                    if current.as_deref() != Some(v) && job.tried.as_deref() != Some(v) => {}
                (_, Some(v)) if current.as_deref() == Some(v) => {}
                _ => return,
            }
            job.busy = true;
        }
        let (me, link) = (self.clone(), link.clone());
        let (run, leave) = (run.map(str::to_string), leave.map(str::to_string));
        let spawned = std::thread::Builder::new()
            .name("vigil-rollout".into())
            // Checking a bundle compiles rules recursively, as the content watcher does.
            .stack_size(64 << 20)
            .spawn(move || {
                if let Some(v) = run {
                    me.run(&link, &v);
                } else if let Some(v) = leave {
                    me.leave(&v);
                }
                me.job().busy = false;
            });
        if let Err(e) = spawned {
            tracing::warn!("content rollout: no thread: {e}");
            self.job().busy = false;
        }
    }

    /// Fetches, checks and applies version `v`.
    fn run(&self, link: &Link, v: &str) {
        if !content::valid_version(v) {
            tracing::warn!("content rollout: the server named an invalid version {v:?}");
            return;
        }
        let answer = match link.get_json(&format!("/agent/v1/content/{v}"), FETCH_TIMEOUT) {
            Ok(a) => a,
            Err(e) => {
                // Not refused: asked again at the next heartbeat.
                tracing::warn!("content rollout: cannot fetch bundle {v}: {e}");
                return;
            }
        };
        let staging = self
            .dir
            .join("incoming")
            .join(format!(".{v}-{}", std::process::id()));
        let outcome = match answer.get("files").and_then(Value::as_object) {
            None => Err(vec!["the server's answer has no files".to_string()]),
            Some(files) => write_bundle(&staging, files)
                .map_err(|e| vec![e])
                .and_then(|()| {
                    store::apply(&staging, &self.dir, &self.settings).map_err(|e| match e {
                        store::StoreError::Refused(r) => r.problems,
                        other => vec![other.to_string()],
                    })
                }),
        };
        let _ = std::fs::remove_dir_all(&staging);
        let mut job = self.job();
        job.tried = Some(v.to_string());
        match outcome {
            Ok(s) => {
                tracing::info!(version = v, previous = ?s.previous, "content rollout: bundle applied");
                job.refused = None;
            }
            Err(problems) => {
                let why = problems.join("; ");
                tracing::error!(version = v, "content rollout: bundle refused: {why}");
                job.refused = Some(format!("{v}: {why}"));
            }
        }
    }

    /// Goes back from version `v` to what ran before it.
    fn leave(&self, v: &str) {
        match store::rollback(&self.dir, &self.settings) {
            Ok(s) => tracing::warn!(
                left = v,
                now = %s.content.version,
                "content rollout halted by the server: back to the previous content"
            ),
            Err(e) => tracing::error!(
                left = v,
                "content rollout halted by the server, but the previous content cannot run: {e}"
            ),
        }
    }
}

/// The process's CPU time so far (user and system), in milliseconds.
pub fn cpu_ms() -> Option<i64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command name (which may hold spaces and parentheses): fields 3 on.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<i64>().ok()? + f.get(12)?.parse::<i64>().ok()?;
    // USER_HZ: 100 on every architecture Linux exposes to user space.
    Some(ticks * 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_inside_a_bundle_are_written() {
        for good in [
            "bundle.toml",
            "policy.toml",
            "sigma/a.yml",
            "yara/x/y.yar",
            "intel/ips.txt",
        ] {
            assert!(bundle_path(good), "{good}");
        }
        for bad in [
            "../x",
            "/etc/passwd",
            "sigma/../../x",
            "sigma/",
            "sigma//a",
            "other/a",
            "sigma/a\nb",
            "sigma",
        ] {
            assert!(!bundle_path(bad), "{bad}");
        }
        let dir = std::env::temp_dir().join(format!("vigil-rollout-{}", std::process::id()));
        let mut files = Map::new();
        files.insert("sigma/a.yml".into(), Value::String("title: a\n".into()));
        write_bundle(&dir, &files).expect("written");
        assert_eq!(
            std::fs::read_to_string(dir.join("sigma/a.yml")).expect("read"),
            "title: a\n"
        );
        files.insert("../escape".into(), Value::String("x".into()));
        assert!(write_bundle(&dir, &files).is_err());
        assert!(!dir.join("../escape").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_process_cpu_time_is_read() {
        let a = cpu_ms().expect("cpu");
        let mut x = 0u64;
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_millis(60) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        assert!(cpu_ms().expect("cpu") > a, "spinning shows as CPU time");
    }
}
