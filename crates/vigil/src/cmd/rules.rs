//! `vigil rules`: Sigma rules from the command line.

use anyhow::Result;
use clap::Subcommand;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// `vigil rules` subcommands.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Load and validate Sigma rules: print each failure as `file:line: reason`, then
    /// `loaded N, failed M`. Exit code 1 if any rule failed.
    Check {
        /// Rule files, or directories searched recursively for `*.yml` / `*.yaml`.
        #[arg(required_unless_present = "builtin")]
        paths: Vec<PathBuf>,
        /// Check Vigil's own rule pack, compiled into this binary, too.
        #[arg(long)]
        builtin: bool,
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

/// Runs a `vigil rules` subcommand.
pub fn run(cmd: RulesCommand) -> Result<ExitCode> {
    match cmd {
        RulesCommand::Check {
            paths,
            builtin,
            placeholders,
        } => check(&paths, builtin, engine_config(placeholders)),
    }
}

fn check(paths: &[PathBuf], builtin: bool, config: vigil_sigma::Config) -> Result<ExitCode> {
    let sources = vigil_rules::Sources {
        builtin,
        paths: paths.to_vec(),
    };
    let loaded = vigil_rules::load(&sources, config)?;
    let failed = loaded.built.errors.len() + loaded.unreadable.len();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    report_load(&loaded, &mut out)?;
    writeln!(out, "loaded {}, failed {failed}", loaded.built.loaded)?;
    out.flush()?;
    Ok(if failed > 0 {
        ExitCode::from(crate::EXIT_CHECK_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints what went wrong or is worth knowing while rules loaded, one line each: paths
/// that could not be read, then [`report_built`]'s lines. Every command that loads rules
/// prints these.
pub fn report_load(loaded: &vigil_rules::Loaded, out: &mut dyn Write) -> std::io::Result<()> {
    for e in &loaded.unreadable {
        writeln!(out, "{e}")?;
    }
    report_built(&loaded.built, out)
}

/// Prints what the engine said of the rules it was given, one line each: rules that
/// failed (`file:line: reason`), rules that loaded with a warning (a placeholder without
/// values), and rules no built-in logsource routes events to.
pub fn report_built(built: &vigil_sigma::Built, out: &mut dyn Write) -> std::io::Result<()> {
    for e in &built.errors {
        writeln!(out, "{e}")?;
    }
    for w in &built.warnings {
        writeln!(out, "{w}")?;
    }
    for w in built.engine.warnings() {
        writeln!(out, "warning: {w}")?;
    }
    Ok(())
}
