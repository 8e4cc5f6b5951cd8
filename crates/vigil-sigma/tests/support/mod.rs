//! Test support: finding the shared corpora through the one `VIGIL_DATA` setting.

#![allow(dead_code)]

use std::path::PathBuf;

/// The shared data directory: `$VIGIL_DATA`, else `../shared/data` relative to the
/// workspace root. `None` (after printing that the test skips) when it is missing, unless
/// `CI=true`, where a missing corpus fails the test.
pub fn data_dir(test: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("VIGIL_DATA") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    };
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{test}: corpus directory {} is missing (set VIGIL_DATA); CI=true requires it",
            dir.display()
        );
    }
    eprintln!(
        "{test}: SKIPPED: corpus directory {} not found (set VIGIL_DATA)",
        dir.display()
    );
    None
}

/// Every `*.yml` file under `dir`, sorted.
pub fn yaml_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
