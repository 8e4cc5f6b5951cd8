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
    /// Indicator files (lists, STIX 2.1 bundles, MISP events) or directories of them
    /// (repeatable; added to the configuration's `intel.paths`).
    #[arg(long = "intel", value_name = "DIR_OR_FILE")]
    intel: Vec<PathBuf>,
    /// YARA rule files or directories of them (repeatable; added to the configuration's
    /// `yara.paths`): each executable at exec and each file closed after writing is
    /// scanned, off the event thread.
    #[arg(long = "yara", value_name = "DIR_OR_FILE")]
    yara: Vec<PathBuf>,
    /// Keep every event in the telemetry store in DIR (a checksummed log compacted into
    /// Parquet by class and hour; sets the configuration's `store.dir`).
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Leave Vigil's own Linux rule pack (compiled in) out.
    #[arg(long)]
    no_builtin_rules: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    format: Format,
    /// Response, in one switch: `protect` kills and quarantines on high and critical
    /// findings (the recommended set; with the configuration's policy rules if it has
    /// any); `detect` records what every action would do; `off` does nothing. Without
    /// it, the configuration's `[respond.modes]` decide (by default: detect).
    #[arg(long, value_enum, value_name = "MODE")]
    policy: Option<PolicySwitch>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464; port 0
    /// lets the system choose, and the log says which). Metrics name no file, user or
    /// command, but bind to loopback unless a firewall stands in front.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Enrol this host with a Vigil server and exit: a key pair is made here, a CSR is
    /// sent with the enrolment TOKEN, and the certificate the server's CA signs is kept
    /// (with the key, mode 0600, and the CA) under the state directory's `server/`;
    /// from then on the agent sends its heartbeat there over mutual TLS.
    #[arg(long, num_args = 2, value_names = ["URL", "TOKEN"])]
    enroll: Option<Vec<String>>,
    /// The CA certificate (PEM) the server's certificate is checked against at
    /// enrolment (default: the system's authorities); `vigil server init` writes it as
    /// DATA/ca.pem.
    #[arg(long, value_name = "FILE", requires = "enroll")]
    enroll_ca: Option<PathBuf>,
}

/// `--policy` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PolicySwitch {
    /// No action, no record.
    Off,
    /// Record what would be done.
    Detect,
    /// Kill and quarantine on high and critical findings.
    Protect,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// One OCSF event per line, as JSON.
    Jsonl,
}

/// The host's name, as the kernel has it.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// `vigil agent --enroll URL TOKEN`: enrols, proves the mutual TLS link with a first
/// heartbeat, and says where the credentials are.
fn enroll(
    config: &AgentConfig,
    url: &str,
    token: &str,
    ca: Option<&std::path::Path>,
) -> Result<ExitCode> {
    let state = &config.respond.state_dir;
    let info = vigil_agent::server::enroll(url, token, ca, state, &hostname())
        .with_context(|| format!("enrolment with {url} failed"))?;
    let link = vigil_agent::server::Link::load(state)?
        .context("the credentials just written cannot be read back")?;
    let isolated =
        vigil_respond::isolate::Isolation::new(&config.respond.isolate.nft, state).asked();
    link.heartbeat(&hostname(), &serde_json::Map::new(), isolated)
        .context("enrolled, but the first heartbeat over mutual TLS failed")?;
    println!(
        "enrolled: agent {} (organisation {}, host group {}) with {}; credentials in {}",
        info.agent_id,
        info.org_id,
        info.group_id,
        info.url,
        state.join(vigil_agent::server::DIR).display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs the agent until SIGINT or SIGTERM.
pub fn run(args: AgentArgs) -> Result<ExitCode> {
    let (mut config, text) = match &args.config {
        Some(path) => {
            let config = AgentConfig::load(path)?;
            (config, std::fs::read_to_string(path).ok())
        }
        None => (AgentConfig::default(), None),
    };
    if let Some([url, token]) = args.enroll.as_deref() {
        return enroll(&config, url, token, args.enroll_ca.as_deref());
    }
    if let Some(p) = args.policy {
        config.respond.apply_switch(match p {
            PolicySwitch::Off => vigil_respond::Mode::Off,
            PolicySwitch::Detect => vigil_respond::Mode::Detect,
            PolicySwitch::Protect => vigil_respond::Mode::Protect,
        });
    }
    let Format::Jsonl = args.format;
    config.rules.paths.extend(args.rules.iter().cloned());
    config.intel.paths.extend(args.intel.iter().cloned());
    config.yara.paths.extend(args.yara.iter().cloned());
    if let Some(dir) = args.store {
        config.store.dir = dir;
    }
    if args.no_builtin_rules {
        config.rules.builtin = false;
    }
    // Signals are read with their sender (anti-tamper); SIGINT and SIGTERM stop. First,
    // before any thread starts: threads inherit the blocked mask.
    let stop = Arc::new(AtomicBool::new(false));
    vigil_respond::tamper::listen_signals(Arc::clone(&stop)).context("cannot handle signals")?;
    let content = initial_content(&config);
    let report = &content.rules;
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
        content_version = %content.version,
        "rules loaded"
    );
    if report.loaded == 0 {
        tracing::warn!("no rule loaded: the agent records events but detects nothing");
    }
    if content.policy.is_none() {
        // The configuration's policy runs: the rule ids it names must be loaded.
        let known: std::collections::HashSet<&str> = content
            .engine
            .rules()
            .iter()
            .flat_map(|r| r.id.as_deref().into_iter().chain(r.name.as_deref()))
            .collect();
        config.check_policy_rules(
            args.config
                .as_deref()
                .unwrap_or(std::path::Path::new("(default configuration)")),
            text.as_deref(),
            &|id| known.contains(id),
        )?;
    }
    let modes = &config.respond.modes;
    tracing::info!(
        kill = modes.kill.name(),
        block = modes.block.name(),
        rollback = modes.rollback.name(),
        quarantine = modes.quarantine.name(),
        isolate = modes.isolate.name(),
        policy_rules = content
            .policy
            .as_ref()
            .map_or(config.respond.policy.len(), Vec::len),
        "response policy"
    );
    let metrics = match args.metrics {
        Some(addr) => {
            let exporter = vigil_agent::metrics::Exporter::bind(addr)
                .with_context(|| format!("--metrics {addr}: cannot listen"))?;
            tracing::info!("metrics served at http://{}/metrics", exporter.local_addr());
            let start_time = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            Some(vigil_agent::metrics::Metrics {
                exporter,
                facts: vigil_agent::metrics::AgentFacts {
                    content_version: content.version.clone(),
                    rules_loaded: content.rules.loaded,
                    rules_failed: content.rules.problems.len(),
                    start_time,
                },
            })
        }
        None => None,
    };
    // Enrolled with a server: a heartbeat over mutual TLS carries the statistics.
    let link = vigil_agent::server::Link::load(&config.respond.state_dir)
        .context("the server link under the state directory cannot be loaded")?;
    let stats_board = link
        .as_ref()
        .map(|_| vigil_agent::server::StatsBoard::default());
    let server = link.clone();
    // An isolated host still reaches its server: that is how it hears of the lift.
    if let Some(endpoint) = link.as_ref().and_then(|l| l.management_endpoint()) {
        if !config.respond.isolate.management.contains(&endpoint) {
            config.respond.isolate.management.push(endpoint);
        }
    }
    let heartbeat = match (link, &stats_board) {
        (Some(link), Some(board)) => {
            tracing::info!(server = %link.info.url, agent = %link.info.agent_id, "heartbeat to the server");
            Some(
                vigil_agent::server::spawn_heartbeat(
                    link,
                    hostname(),
                    Arc::clone(board),
                    vigil_respond::isolate::Isolation::new(
                        &config.respond.isolate.nft,
                        &config.respond.state_dir,
                    ),
                    Some(vigil_agent::server::rollout::Rollouts::new(
                        config.content.dir.clone(),
                        vigil_agent::content::Settings::of(&config),
                    )),
                    Arc::clone(&stop),
                )
                .context("cannot start the heartbeat thread")?,
            )
        }
        _ => None,
    };
    let outputs = Outputs {
        events: args.output,
        findings: args.findings,
        config: args.config.clone(),
        stats_board,
        server,
    };
    let summary =
        vigil_agent::run_with_metrics(config, content, &outputs, &stop, metrics.as_ref())?;
    if let Some(h) = heartbeat {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = h.join();
    }
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
    // Each network output: what it was given, what the server acknowledged, what it lost.
    for (k, offered) in summary
        .counters
        .iter()
        .filter(|(k, _)| k.ends_with("_offered"))
    {
        let name = k.trim_end_matches("_offered");
        tracing::info!(
            output = name,
            offered,
            sent = find(&format!("{name}_sent")),
            overflow_dropped = find(&format!("{name}_overflow_dropped")),
            rejected_dropped = find(&format!("{name}_rejected_dropped")),
            exit_dropped = find(&format!("{name}_exit_dropped")),
            "output stopped"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What the agent starts with: the bundle `content.dir/current` names, checked, if
/// there is one and it passes; else the configuration's rules and indicators.
fn initial_content(config: &AgentConfig) -> vigil_agent::content::Content {
    use vigil_agent::content::{self, store};
    let dir = &config.content.dir;
    if let Some(version) = store::linked(dir, store::CURRENT) {
        let settings = content::Settings::of(config);
        match content::load(&store::version_dir(dir, &version), &settings) {
            Ok(c) => {
                if !(config.rules.paths.is_empty()
                    && config.intel.paths.is_empty()
                    && config.yara.paths.is_empty())
                {
                    tracing::info!(
                        "content bundle {version} runs instead of rules.paths, intel.paths \
                         and yara.paths"
                    );
                }
                return c;
            }
            Err(r) => tracing::error!("{r}; the configured rules and indicators run instead"),
        }
    }
    let (engine, report) = vigil_agent::rules::load(&config.rules, &vigil_sigma::Config::default());
    content::configured(config, std::sync::Arc::new(engine), report)
}
