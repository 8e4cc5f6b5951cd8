//! Where tests find the shared corpora: the SigmaHQ rules, the EVTX samples and the OCSF
//! schema source. One setting decides: the `VIGIL_DATA` environment variable, by default
//! `../shared/data` beside the workspace.
//!
//! With `CI=true` a missing corpus fails the test (CI must never pass by skipping);
//! elsewhere the test prints that it skips, and why, and returns.

use std::path::PathBuf;

/// The data root: `$VIGIL_DATA`, or `<workspace>/../shared/data`.
pub fn data_root() -> PathBuf {
    match std::env::var_os("VIGIL_DATA") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    }
}

/// Whether this is a CI run (`CI=true`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The corpus at `sub` under the data root, if it exists.
///
/// # Panics
/// When the corpus is missing and `CI=true`: the test must fail, not skip.
pub fn corpus(sub: &str) -> Option<PathBuf> {
    let path = data_root().join(sub);
    if path.exists() {
        return Some(path);
    }
    let msg = format!(
        "corpus {} not found (set VIGIL_DATA to the shared data directory)",
        path.display()
    );
    assert!(
        !in_ci(),
        "{msg}; CI=true, so this fails instead of skipping"
    );
    eprintln!("SKIP: {msg}");
    None
}

/// Like [`corpus`] for use at the top of a test: returns from the test when skipping.
#[macro_export]
macro_rules! corpus_or_skip {
    ($sub:expr) => {
        match $crate::corpus($sub) {
            Some(p) => p,
            None => return,
        }
    };
}

/// Whether this test runs as root (the sensor tests load eBPF programs). When not, it
/// prints that it skips; with `CI=true` (which runs as root) it fails instead.
///
/// # Panics
/// When not root and `CI=true`.
pub fn root_or_skip() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1))
        == Some("0");
    if !root {
        assert!(!in_ci(), "this test needs root, and CI=true runs as root");
        eprintln!("SKIP: this test needs root");
    }
    root
}
