//! Test support shared by the integration tests: rule and EVTX files of the shared
//! corpora (found through `vigil_testdata`).

#![allow(dead_code)]

pub mod random;

use std::path::{Path, PathBuf};

/// Every `*.yml` file under `dir`, sorted.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    files_with(dir, &["yml", "yaml"])
}

/// Every `*.evtx` file under `dir`, sorted.
pub fn evtx_files(dir: &Path) -> Vec<PathBuf> {
    files_with(dir, &["evtx"])
}

fn files_with(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
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
            } else if p
                .extension()
                .is_some_and(|x| extensions.iter().any(|e| x == *e))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The records of an EVTX file rendered as JSON text, as `vigil hunt` renders them (the
/// `evtx` crate's shape: `{"Event": {"System": .., "EventData": ..}}`), one per record.
/// A record the parser cannot read fails the test, naming the file.
pub fn evtx_records(path: &Path) -> Vec<String> {
    let settings = evtx::ParserSettings::new().num_threads(1).indent(false);
    let mut parser = evtx::EvtxParser::from_path(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .with_configuration(settings);
    parser
        .records_json()
        .map(|r| match r {
            Ok(r) => r.data,
            Err(e) => panic!("{}: {e}", path.display()),
        })
        .collect()
}

/// A loader holding every rule file under `dirs` (relative to the SigmaHQ corpus root
/// `sigma`), each named by its path relative to `sigma`.
pub fn load_rules(sigma: &Path, dirs: &[&str]) -> vigil_sigma::Loader {
    load_rules_with(sigma, dirs, vigil_sigma::Config::default())
}

/// [`load_rules`] with a configuration.
pub fn load_rules_with(
    sigma: &Path,
    dirs: &[&str],
    config: vigil_sigma::Config,
) -> vigil_sigma::Loader {
    let mut loader = vigil_sigma::Loader::with_config(config).expect("configuration");
    for d in dirs {
        let files = yaml_files(&sigma.join(d));
        assert!(
            !files.is_empty(),
            "no rules under {}",
            sigma.join(d).display()
        );
        for f in files {
            let text =
                std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let name = f.strip_prefix(sigma).unwrap_or(&f).display().to_string();
            loader.add(&name, &text);
        }
    }
    loader
}
