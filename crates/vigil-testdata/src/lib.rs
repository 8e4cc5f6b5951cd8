//! Where tests find the shared corpora: the SigmaHQ rules, the EVTX samples and the OCSF
//! schema source. One setting decides: the `VIGIL_DATA` environment variable, by default
//! `../shared/data` beside the workspace.
//!
//! With `CI=true` a missing corpus fails the test (CI must never pass by skipping);
//! elsewhere the test prints that it skips, and why, and returns. A skipped test still
//! counts as passed for libtest, so every skip is also recorded (see [`skip`]) where
//! `scripts/test` can count it: the suite's total reports real skips.

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
    skip(&msg);
    None
}

/// Records that the calling test skips, and why: prints `SKIP: <test>\t<why>` and, when
/// `VIGIL_SKIP_LOG` names a file, appends that line to it (`scripts/test` sets it and
/// counts the lines as skipped, not passed). The test then returns.
pub fn skip(why: &str) {
    let thread = std::thread::current();
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    // `<test binary> <test name>\t<why>`: scripts/test counts distinct tests by the part
    // before the tab.
    let line = format!("{binary} {}\t{why}", thread.name().unwrap_or("?"));
    eprintln!("SKIP: {line}");
    if let Some(path) = std::env::var_os("VIGIL_SKIP_LOG").filter(|p| !p.is_empty()) {
        use std::io::Write;
        // One short write per line with O_APPEND: lines of parallel tests do not mix.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            eprintln!("cannot record the skip in {}: {e}", path.to_string_lossy());
        }
    }
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
        skip("this test needs root");
    }
    root
}

/// A fresh, empty directory for one test (`<tmp>/vigil-<prefix>-<pid>-<n>-<name>`),
/// removed when dropped, so that test runs leave nothing behind (kept with
/// `VIGIL_KEEP_TMP=1`, to look at after a failure). Derefs to its path.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Makes the directory (removing what an earlier run of the same process id left).
    pub fn new(prefix: &str, name: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d =
            std::env::temp_dir().join(format!("vigil-{prefix}-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        if let Err(e) = std::fs::create_dir_all(&d) {
            panic!("cannot make the test directory {}: {e}", d.display());
        }
        TempDir(d)
    }
}

impl std::ops::Deref for TempDir {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl AsRef<std::path::Path> for TempDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("VIGIL_KEEP_TMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
