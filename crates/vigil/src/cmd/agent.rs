//! `vigil agent`: runs the sensor, gives every event its story, matches it against the
//! rules, and writes events, findings and incidents.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use vigil_agent::{AgentConfig, Outputs};

/// `vigil agent` arguments.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Agent configuration (TOML; see config/agent.toml for every setting).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Where to write events, findings among them (`-` for standard output).
    #[arg(short, long, default_value = "-")]
    output: PathBuf,
    /// Also write the findings and incidents, alone, to this file.
    #[arg(long, value_name = "FILE")]
    findings: Option<PathBuf>,
    /// More Sigma rules: a file, or a directory searched recursively (repeatable; added
    /// to the configuration's `rules.paths`).
    #[arg(long = "rules", value_name = "DIR_OR_FILE")]
    rules: Vec<PathBuf>,
    /// Leave Vigil's own Linux rule pack (compiled in) out.
    #[arg(long)]
    no_builtin_rules: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    format: Format,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// One OCSF event per line, as JSON.
    Jsonl,
}

/// Runs the agent until SIGINT or SIGTERM.
pub fn run(args: AgentArgs) -> Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => AgentConfig::load(path)?,
        None => AgentConfig::default(),
    };
    let Format::Jsonl = args.format;
    config.rules.paths.extend(args.rules.iter().cloned());
    if args.no_builtin_rules {
        config.rules.builtin = false;
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).context("cannot handle signals")?;
    }
    let (engine, report) = vigil_agent::rules::load(&config.rules, &vigil_sigma::Config::default());
    for p in &report.problems {
        tracing::warn!("rule not loaded: {p}");
    }
    for w in &report.warnings {
        tracing::info!("rule note: {w}");
    }
    tracing::info!(
        loaded = report.loaded,
        files = report.files,
        builtin_files = report.builtin_files,
        failed = report.problems.len(),
        refused = report.refused.len(),
        trial_us_per_event = format!("{:.1}", report.trial_us_per_event),
        trial_us_max = format!("{:.1}", report.trial_us_max),
        "rules loaded"
    );
    if report.loaded == 0 {
        tracing::warn!("no rule loaded: the agent records events but detects nothing");
    }
    let outputs = Outputs {
        events: args.output,
        findings: args.findings,
    };
    let summary = vigil_agent::run(config, &engine, &outputs, &stop)?;
    let find = |k: &str| {
        summary
            .counters
            .iter()
            .find(|(n, _)| n == k)
            .map_or(0, |(_, v)| *v)
    };
    tracing::info!(
        received = summary.received,
        lost = summary.lost,
        written = find("events_written"),
        findings = find("findings"),
        incidents = find("incidents"),
        findings_dropped = find("findings_dropped"),
        "agent stopped"
    );
    Ok(ExitCode::SUCCESS)
}
