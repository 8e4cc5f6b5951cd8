//! Loading Sigma rules from files and directories.

use crate::error::HuntError;
use std::path::{Path, PathBuf};
use vigil_sigma::{Built, Loader};

/// Rules loaded for a hunt.
pub struct RuleSet {
    /// The engine and the rules that failed to load.
    pub built: Built,
    /// Rule files read.
    pub files: usize,
    /// Where the loading time went.
    pub timing: RuleTiming,
}

/// Time spent loading rules, by phase.
#[derive(Debug, Clone, Copy, Default)]
pub struct RuleTiming {
    /// Reading rule files.
    pub read: std::time::Duration,
    /// Parsing them ([`vigil_sigma::Loader::add`]).
    pub parse: std::time::Duration,
    /// Compiling and indexing ([`vigil_sigma::Loader::build`]).
    pub build: std::time::Duration,
}

fn is_rule_file(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml"))
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>, open: &mut Vec<PathBuf>) -> Result<(), HuntError> {
    // Symbolic links are followed; a link back to a directory being walked is not.
    let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if open.contains(&real) {
        return Ok(());
    }
    open.push(real);
    let r = collect_entries(dir, out, open);
    open.pop();
    r
}

fn collect_entries(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    open: &mut Vec<PathBuf>,
) -> Result<(), HuntError> {
    let entries = std::fs::read_dir(dir).map_err(|e| HuntError::Rules {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            collect(&p, out, open)?;
        } else if is_rule_file(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// Loads every rule file (`.yml`, `.yaml`) under `paths` (files, or directories walked
/// recursively) and builds the engine. Rules that fail to load are in
/// `built.errors`; it is an error only when a path cannot be read or nothing loads.
pub fn load_rules(paths: &[PathBuf]) -> Result<RuleSet, HuntError> {
    load_rules_with(paths, vigil_sigma::Config::default())
}

/// [`load_rules`] with an engine configuration (placeholder values for `expand`).
pub fn load_rules_with(
    paths: &[PathBuf],
    config: vigil_sigma::Config,
) -> Result<RuleSet, HuntError> {
    // Loading allocates (and frees) much more than the engine keeps. Done on a thread of
    // its own, that memory is left in an allocator arena that the first hunt thread then
    // takes over, instead of staying with the calling thread and unused.
    std::thread::scope(|s| {
        s.spawn(|| load_rules_here(paths, config))
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

fn load_rules_here(paths: &[PathBuf], config: vigil_sigma::Config) -> Result<RuleSet, HuntError> {
    let mut files = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| HuntError::Rules {
            path: p.clone(),
            reason: e.to_string(),
        })?;
        if meta.is_dir() {
            collect(p, &mut files, &mut Vec::new())?;
        } else {
            files.push(p.clone());
        }
    }
    let names = || {
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if files.is_empty() {
        return Err(HuntError::NoRules(names()));
    }
    let started = std::time::Instant::now();
    let mut loader = Loader::with_config(config).map_err(|e| HuntError::Rules {
        path: PathBuf::from(&e.source_name),
        reason: e.to_string(),
    })?;
    let mut read = std::time::Duration::ZERO;
    for f in &files {
        let t = std::time::Instant::now();
        let text = std::fs::read_to_string(f).map_err(|e| HuntError::Rules {
            path: f.clone(),
            reason: e.to_string(),
        })?;
        read += t.elapsed();
        loader.add(&f.display().to_string(), &text);
    }
    let parsed = started.elapsed();
    let built = loader.build();
    let timing = RuleTiming {
        read,
        parse: parsed.saturating_sub(read),
        build: started.elapsed().saturating_sub(parsed),
    };
    if built.loaded == 0 {
        return Err(HuntError::NoRules(names()));
    }
    Ok(RuleSet {
        built,
        files: files.len(),
        timing,
    })
}
