//! Test support: a throwaway PostgreSQL server (`scripts/postgres`, one per test
//! process, stopped when the process exits) and a fresh database per test; throwaway
//! NATS servers (`scripts/nats`).
//! For tests only; nothing here runs in a server.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
static NEXT: AtomicU32 = AtomicU32::new(0);

fn script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/postgres")
}

/// The connection string of this process's PostgreSQL server (started at first use;
/// the script's watchdog stops it when the process exits).
pub fn postgres() -> Result<&'static str, String> {
    SERVER
        .get_or_init(|| {
            let out = std::process::Command::new(script())
                .args(["start", "--owner-pid", &std::process::id().to_string()])
                .stderr(std::process::Stdio::inherit())
                .output()
                .map_err(|e| format!("scripts/postgres: {e}"))?;
            if !out.status.success() {
                return Err(format!("scripts/postgres start failed: {}", out.status));
            }
            let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if url.is_empty() {
                return Err("scripts/postgres printed no connection string".into());
            }
            Ok(url)
        })
        .as_ref()
        .map(String::as_str)
        .map_err(Clone::clone)
}

/// A new, empty database on this process's server; its connection string.
pub async fn fresh_database() -> Result<String, String> {
    let base = postgres()?;
    let name = format!(
        "vigil_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let client = crate::db::connect(base).await.map_err(|e| e.to_string())?;
    // A name made here from numbers: no quoting issue (CREATE DATABASE takes no
    // parameters).
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .map_err(|e| format!("CREATE DATABASE: {e}"))?;
    Ok(base.replace("dbname=postgres", &format!("dbname={name}")))
}

/// A throwaway NATS server with JetStream (`scripts/nats`), one per call (each test its
/// own stream and consumers), stopped when dropped or when the test process exits.
#[derive(Debug)]
pub struct Nats {
    /// Its URL (`nats://127.0.0.1:PORT`).
    pub url: String,
    dir: String,
}

impl Nats {
    fn script() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/nats")
    }

    /// Starts one.
    pub fn start() -> Result<Nats, String> {
        let out = std::process::Command::new(Self::script())
            .args(["start", "--owner-pid", &std::process::id().to_string()])
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("scripts/nats: {e}"))?;
        if !out.status.success() {
            return Err(format!("scripts/nats start failed: {}", out.status));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let (url, dir) = text
            .trim()
            .split_once(' ')
            .ok_or_else(|| format!("scripts/nats printed {text:?}"))?;
        Ok(Nats {
            url: url.to_string(),
            dir: dir.to_string(),
        })
    }

    /// Kills it (SIGKILL) and starts it again on the same port and store.
    pub fn restart(&self) -> Result<(), String> {
        let st = std::process::Command::new(Self::script())
            .args(["restart", &self.dir])
            .status()
            .map_err(|e| format!("scripts/nats: {e}"))?;
        st.success()
            .then_some(())
            .ok_or_else(|| format!("scripts/nats restart failed: {st}"))
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = std::process::Command::new(Self::script())
            .args(["stop", &self.dir])
            .status();
    }
}

/// A temporary directory removed on drop.
#[derive(Debug)]
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// A new directory under the system's temporary directory.
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "vigil-{tag}-{}-{}",
            std::process::id(),
            crate::secret::hex(&crate::secret::random::<6>())
        ));
        let _ = std::fs::create_dir_all(&p);
        TempDir(p)
    }

    /// Its path.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
