//! `vigil rules`: Sigma rules from the command line.

use anyhow::{Context, Result};
use clap::Subcommand;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `vigil rules` subcommands.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Load and validate Sigma rules: print each failure as `file:line: reason`, then
    /// `loaded N, failed M`. Exit code 1 if any rule failed.
    Check {
        /// Rule files, or directories searched recursively for `*.yml` / `*.yaml`.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Values of an `expand` placeholder: `NAME=VALUE[,VALUE...]` (`%NAME%` in rules);
        /// may be repeated.
        #[arg(long = "placeholder", value_name = "NAME=VALUES", value_parser = parse_placeholder)]
        placeholders: Vec<(String, Vec<String>)>,
    },
}

/// Parses `NAME=VALUE[,VALUE...]` (the name with or without its `%` signs).
pub fn parse_placeholder(s: &str) -> Result<(String, Vec<String>), String> {
    let (name, values) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE[,VALUE...]"))?;
    let name = name.trim().trim_matches('%');
    if name.is_empty() {
        return Err(format!("`{s}` names no placeholder"));
    }
    Ok((
        name.to_string(),
        values.split(',').map(|v| v.to_string()).collect(),
    ))
}

/// The rule engine's configuration for these placeholders.
pub fn engine_config(placeholders: Vec<(String, Vec<String>)>) -> vigil_sigma::Config {
    let mut config = vigil_sigma::Config::default();
    for (name, values) in placeholders {
        config.placeholders.entry(name).or_default().extend(values);
    }
    config
}

/// Logs what loading rules found worth knowing, as every command that loads rules does:
/// each rule that loaded with a warning (a placeholder without values), at `warn` (unless
/// `listed`: the command lists them itself), and each logsource of rules that no built-in
/// source reaches (they see only events of a declared logsource), at `info`.
pub fn log_load_warnings(built: &vigil_sigma::Built, listed: bool) {
    if !listed {
        for w in &built.warnings {
            tracing::warn!("{w}");
        }
    }
    for w in built.engine.warnings() {
        tracing::info!("{w}");
    }
}

/// Runs a `vigil rules` subcommand.
pub fn run(cmd: RulesCommand) -> Result<ExitCode> {
    match cmd {
        RulesCommand::Check {
            paths,
            placeholders,
        } => check(&paths, engine_config(placeholders)),
    }
}

/// Rule files under `path` (itself if it is a file), sorted; unreadable directories are
/// reported as failures.
fn collect(path: &Path, files: &mut Vec<PathBuf>, unreadable: &mut Vec<String>) {
    if !path.is_dir() {
        files.push(path.to_path_buf());
        return;
    }
    let entries = match std::fs::read_dir(path) {
        Ok(rd) => rd,
        Err(e) => {
            unreadable.push(format!("{}:0: cannot read directory: {e}", path.display()));
            return;
        }
    };
    let mut children: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    children.sort();
    for c in children {
        if c.is_dir() {
            collect(&c, files, unreadable);
        } else if c.extension().is_some_and(|x| x == "yml" || x == "yaml") {
            files.push(c);
        }
    }
}

fn check(paths: &[PathBuf], config: vigil_sigma::Config) -> Result<ExitCode> {
    let mut files = Vec::new();
    let mut io_failures = Vec::new();
    for p in paths {
        collect(p, &mut files, &mut io_failures);
    }
    let mut loader =
        vigil_sigma::Loader::with_config(config).context("invalid rule engine configuration")?;
    for f in &files {
        match std::fs::read_to_string(f) {
            Ok(text) => {
                loader.add(&f.display().to_string(), &text);
            }
            Err(e) => io_failures.push(format!("{}:0: cannot read: {e}", f.display())),
        }
    }
    let built = loader.build();
    // The rules' own warnings are listed below, with the failures.
    log_load_warnings(&built, true);
    let failed = built.errors.len() + io_failures.len();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in &io_failures {
        writeln!(out, "{line}")?;
    }
    for e in &built.errors {
        writeln!(out, "{e}")?;
    }
    // Rules that loaded, with something to know (a placeholder without values).
    for w in &built.warnings {
        writeln!(out, "{w}")?;
    }
    writeln!(out, "loaded {}, failed {failed}", built.loaded)?;
    out.flush()?;
    Ok(if failed > 0 {
        ExitCode::from(crate::EXIT_CHECK_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
