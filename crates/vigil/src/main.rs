//! `vigil`: endpoint detection and response for Linux.
//!
//! Exit codes (also in `vigil --help`):
//! * 0: success (for `hunt` and `scan`: whether or not anything was found);
//! * 1: a check failed (`ocsf validate` found invalid events, `rules check` bad rules);
//! * 2: usage error (bad arguments);
//! * 3: runtime error (input that could not be read at all, an I/O failure).

mod cmd;
mod logging;

use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

/// Exit code for a check that found problems.
pub const EXIT_CHECK_FAILED: u8 = 1;
/// Exit code for a runtime error.
pub const EXIT_RUNTIME_ERROR: u8 = 3;

const EXIT_CODES: &str = "\
Exit codes:
  0  success (hunt, scan: whether or not anything was found)
  1  a check failed (invalid events, invalid rules; scan: a rule file refused;
     content: a bundle refused)
  2  usage error
  3  runtime error (unreadable input, I/O failure)";

/// Vigil: endpoint detection and response for Linux.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about, after_help = EXIT_CODES, propagate_version = true)]
struct Cli {
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,
    /// Only errors in the log.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Text)]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the sensor (eBPF or its fallback) and detection; write OCSF events, findings
    /// and incidents (root).
    Agent(cmd::agent::AgentArgs),
    /// Content bundles (Sigma and YARA rules, indicators, policy as one versioned whole):
    /// seal, check, apply where the agent follows it, roll back, status.
    #[command(subcommand)]
    Content(cmd::content::ContentCommand),
    /// Watch a harmless scripted intrusion on this host and print the incident the agent
    /// found (root).
    Demo(cmd::demo::DemoArgs),
    /// Hunt through EVTX and JSON logs with Sigma rules, offline.
    Hunt(cmd::hunt::HuntArgs),
    /// Print the incidents in the agent's output, each as a process tree.
    Incidents(cmd::incidents::IncidentsArgs),
    /// Cut the host off the network but for loopback and its management endpoints, or
    /// let it back on (root).
    #[command(subcommand)]
    Isolate(cmd::isolate::IsolateCommand),
    /// OCSF events: write an example attack story, validate events against the schema.
    #[command(subcommand)]
    Ocsf(cmd::ocsf::OcsfCommand),
    /// The quarantine vault: list its items, give one back, delete them (root).
    #[command(subcommand)]
    Quarantine(cmd::quarantine::QuarantineCommand),
    /// Response by hand: kill a process or story branch, quarantine a file; what the
    /// policy would do over recorded findings.
    #[command(subcommand)]
    Respond(cmd::respond::RespondCommand),
    /// Query stored events: SQL or a pipe language over the store or Parquet and JSON
    /// lines files; shortcuts for a story's tree, a process's doings, an indicator.
    Query(cmd::query::QueryArgs),
    /// Put back the files a story rewrote, from the rollback journal (root).
    Rollback(cmd::rollback::RollbackArgs),
    /// The agent's exec-guard helper (the agent runs it; it answers for a stalled
    /// agent). Not for use by hand.
    #[command(hide = true)]
    PermWatchdog {
        /// Milliseconds without a heartbeat before it answers for the agent.
        #[arg(long)]
        deadline_ms: u64,
    },
    /// Sigma rules: check that rules load.
    #[command(subcommand)]
    Rules(cmd::rules::RulesCommand),
    /// Scan files and folders with YARA rules, offline.
    Scan(cmd::scan::ScanArgs),
    /// The fleet server: set one up (`init`), run it (`run`).
    #[command(subcommand)]
    Server(cmd::server::ServerCommand),
    /// Inputs for the whole-process benchmarks (scripts/bench-query).
    #[command(subcommand, hide = true)]
    Bench(cmd::bench::BenchCommand),
    /// Print the shell completion script for SHELL (for packagers: scripts/build-deb).
    #[command(hide = true)]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages, vigil.1 and one per subcommand, into DIR (for packagers:
    /// scripts/build-deb).
    #[command(hide = true)]
    Man {
        /// The directory (created if missing).
        dir: std::path::PathBuf,
    },
}

/// `vigil perm-watchdog`: stop signals are ignored (it ends when the agent's heartbeat
/// pipe closes, so a group stop of the agent's unit does not leave the agent
/// unguarded), then the helper loop.
fn perm_watchdog(deadline_ms: u64) -> anyhow::Result<ExitCode> {
    let ignored = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for s in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(s, std::sync::Arc::clone(&ignored))?;
    }
    vigil_respond::guard::watchdog(std::time::Duration::from_millis(deadline_ms))?;
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints for a reader; its log says only what went wrong, unless asked.
    let quiet = cli.quiet || (matches!(cli.command, Command::Demo(_)) && cli.verbose == 0);
    logging::init(cli.verbose, quiet, cli.log_format);
    let result = match cli.command {
        Command::Agent(a) => cmd::agent::run(a),
        Command::Server(c) => cmd::server::run(c),
        Command::Content(c) => cmd::content::run(c),
        Command::Demo(a) => cmd::demo::run(a),
        Command::Hunt(a) => cmd::hunt::run(a, cli.quiet),
        Command::Incidents(a) => cmd::incidents::run(a),
        Command::Isolate(c) => cmd::isolate::run(c),
        Command::Ocsf(c) => cmd::ocsf::run(c),
        Command::Quarantine(c) => cmd::quarantine::run(c),
        Command::Respond(c) => cmd::respond::run(c),
        Command::Query(a) => cmd::query::run(a),
        Command::Bench(c) => cmd::bench::run(c),
        Command::Rollback(a) => cmd::rollback::run(a),
        Command::PermWatchdog { deadline_ms } => perm_watchdog(deadline_ms),
        Command::Rules(c) => cmd::rules::run(c),
        Command::Scan(a) => cmd::scan::run(a, cli.quiet),
        Command::Completions { shell } => cmd::docs::completions(Cli::command(), shell),
        Command::Man { dir } => cmd::docs::man(Cli::command(), &dir),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::from(EXIT_RUNTIME_ERROR)
        }
    }
}
