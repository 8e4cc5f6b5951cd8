//! `vigil respond`: response by hand (kill a process or a story's branch, quarantine a
//! file) with the same guard rails and the same records as the agent's; and `plan`, what
//! the policy would do over recorded findings.

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vigil_agent::AgentConfig;
use vigil_event::model::remediation_status;
use vigil_event::OcsfEvent;
use vigil_respond::config::{Action, Mode, RespondConfig};
use vigil_respond::record::Cause;
use vigil_respond::{FindingFacts, Policy, Responder};

/// Where response's settings come from: the agent's configuration file.
#[derive(Debug, Args, Clone)]
pub struct ConfigArg {
    /// The agent's configuration (its `[respond]` table: vault, state directory,
    /// protected lists, policy). Default: every setting at its default.
    #[arg(short, long)]
    pub config: Option<PathBuf>,
}

impl ConfigArg {
    /// The `[respond]` settings.
    pub fn load(&self) -> Result<RespondConfig> {
        Ok(match &self.config {
            Some(p) => AgentConfig::load(p)?.respond,
            None => RespondConfig::default(),
        })
    }
}

/// `vigil respond` subcommands.
#[derive(Debug, Subcommand)]
pub enum RespondCommand {
    /// Freeze and kill a process and its descendants (PID), or a story's first process
    /// and its descendants (STORY: the story id, `metadata.correlation_uid`).
    Kill {
        /// A pid, or a story id.
        target: String,
        #[command(flatten)]
        config: ConfigArg,
        /// Say what would be killed, and kill nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Move a file into the quarantine vault.
    Quarantine {
        /// The file.
        path: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
        /// Say what would be quarantined, and move nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// What the policy would do over recorded findings (the agent's events or findings
    /// output, as JSON lines; `-` for standard input), touching nothing.
    Plan {
        /// The files.
        #[arg(required = true)]
        findings: Vec<PathBuf>,
        #[command(flatten)]
        config: ConfigArg,
        /// The `--policy` switch of `vigil agent`, applied to the configuration.
        #[arg(long, value_enum, value_name = "MODE")]
        policy: Option<Switch>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
    },
}

/// `--policy` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// No action.
    Off,
    /// Record only.
    Detect,
    /// Kill and quarantine on high and critical findings.
    Protect,
}

impl Switch {
    /// The mode it sets.
    pub fn mode(self) -> Mode {
        match self {
            Switch::Off => Mode::Off,
            Switch::Detect => Mode::Detect,
            Switch::Protect => Mode::Protect,
        }
    }
}

/// `plan` output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// A line per finding and action.
    Text,
    /// One JSON object per finding with its actions.
    Jsonl,
}

/// The command line, for records of what a person asked.
pub fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// Prints records as JSON lines; the exit code is 0 when each succeeded (or is only a
/// plan), 3 when one did not.
pub fn print_records(records: &[OcsfEvent]) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let mut ok = true;
    for r in records {
        serde_json::to_writer(&mut out, r)?;
        out.write_all(b"\n")?;
        let json = r.to_json();
        let status = json["status_id"].as_i64().unwrap_or(0) as i32;
        if status != remediation_status::SUCCESS && status != remediation_status::OTHER {
            ok = false;
            tracing::warn!("{}", json["status_detail"].as_str().unwrap_or("failed"));
        }
    }
    out.flush()?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_RUNTIME_ERROR)
    })
}

/// A responder for one person's request.
pub fn responder(config: &ConfigArg) -> Result<Responder> {
    let rc = config.load()?;
    let own: Vec<PathBuf> = std::env::current_exe()
        .into_iter()
        .chain(config.config.iter().cloned())
        .collect();
    Ok(Responder::new(rc, own))
}

/// Runs a `vigil respond` subcommand.
pub fn run(cmd: RespondCommand) -> Result<ExitCode> {
    let now = vigil_event::time::now_ms();
    let line = command_line();
    let cause = Cause::Manual(&line);
    match cmd {
        RespondCommand::Kill {
            target,
            config,
            dry_run,
        } => {
            let mode = if dry_run { Mode::Detect } else { Mode::Protect };
            let mut r = responder(&config)?;
            let mut out = Vec::new();
            if let Ok(pid) = target.parse::<i32>() {
                if pid <= 0 {
                    anyhow::bail!("{target}: not a process id");
                }
                let process =
                    vigil_respond::record::process_of(pid, &vigil_respond::procs::boot_id());
                r.kill_process(process, mode, &cause, now, &mut out);
            } else if vigil_respond::procs::parse_uid(&target).is_some() {
                r.kill_story(&target, mode, &cause, now, &mut out);
            } else {
                anyhow::bail!(
                    "{target}: neither a pid nor a story id (boot-id-pid-start, as in metadata.correlation_uid)"
                );
            }
            print_records(&out)
        }
        RespondCommand::Quarantine {
            path,
            config,
            dry_run,
        } => {
            let mode = if dry_run { Mode::Detect } else { Mode::Protect };
            let mut r = responder(&config)?;
            let mut out = Vec::new();
            // The path as given, made absolute (not resolved: a symbolic link is
            // refused, not followed).
            let abs = std::path::absolute(&path)
                .with_context(|| format!("{}: cannot make the path absolute", path.display()))?;
            r.quarantine(&abs, mode, &cause, now, &mut out);
            print_records(&out)
        }
        RespondCommand::Plan {
            findings,
            config,
            policy,
            format,
        } => {
            let mut rc = config.load()?;
            if let Some(s) = policy {
                rc.apply_switch(s.mode());
            }
            plan(&findings, &rc, format)
        }
    }
}

/// One finding's plan, for output.
#[derive(serde::Serialize)]
struct PlanLine<'a> {
    finding_uid: &'a str,
    rule_uid: Option<&'a str>,
    title: Option<&'a str>,
    severity_id: i32,
    story: Option<&'a str>,
    actions: Vec<PlanAction>,
}

#[derive(serde::Serialize)]
struct PlanAction {
    action: &'static str,
    mode: &'static str,
    policy_rule: usize,
    targets: Vec<String>,
}

fn plan(files: &[PathBuf], config: &RespondConfig, format: PlanFormat) -> Result<ExitCode> {
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid [respond] settings: {e}"))?;
    let policy = Policy::new(config);
    let mut story_files: HashMap<String, Vec<String>> = HashMap::new();
    let mut findings: Vec<FindingFacts> = Vec::new();
    let bad = super::lines::for_each_json(files, "an OCSF event Vigil reads", |v| {
        let ev = match v["class_uid"].as_i64() {
            Some(2004) | Some(1001) => OcsfEvent::from_json(v).map_err(|e| e.to_string())?,
            _ => return Ok(()),
        };
        match ev {
            OcsfEvent::File(f) => {
                let path = match f.activity_id {
                    1 | 3 => f.file.path.clone(),
                    5 => f.file_result.as_ref().and_then(|r| r.path.clone()),
                    _ => None,
                };
                if let (Some(story), Some(p)) = (f.metadata.correlation_uid.clone(), path) {
                    let list = story_files.entry(story).or_default();
                    if !list.contains(&p) {
                        list.push(p);
                    }
                }
            }
            ev => findings.extend(FindingFacts::of_event(&ev)),
        }
        Ok(())
    })?;
    let mut out = std::io::stdout().lock();
    let mut planned = 0usize;
    for f in &findings {
        let plan = policy.plan(f);
        if plan.is_empty() {
            continue;
        }
        planned += 1;
        let actions: Vec<PlanAction> = plan
            .iter()
            .map(|p| PlanAction {
                action: p.action.name(),
                mode: p.mode.name(),
                policy_rule: p.rule,
                targets: targets(p.action, f, &story_files, config),
            })
            .collect();
        let line = PlanLine {
            finding_uid: &f.uid,
            rule_uid: f.rule_uid.as_deref(),
            title: f.title.as_deref(),
            severity_id: f.severity_id,
            story: f.story.as_deref(),
            actions,
        };
        match format {
            PlanFormat::Jsonl => {
                serde_json::to_writer(&mut out, &line)?;
                out.write_all(b"\n")?;
            }
            PlanFormat::Text => {
                writeln!(
                    out,
                    "finding {} ({}, {}) in story {}:",
                    line.finding_uid,
                    line.title.unwrap_or("untitled"),
                    vigil_event::model::severity::name(line.severity_id),
                    line.story.unwrap_or("-")
                )?;
                for a in &line.actions {
                    writeln!(
                        out,
                        "  {} ({}, policy rule {}): {}",
                        a.action,
                        a.mode,
                        a.policy_rule,
                        if a.targets.is_empty() {
                            "no target".to_string()
                        } else {
                            a.targets.join(", ")
                        }
                    )?;
                }
            }
        }
    }
    out.flush()?;
    tracing::info!(
        findings = findings.len(),
        acted_on = planned,
        unreadable = bad,
        "plan done"
    );
    Ok(ExitCode::SUCCESS)
}

/// What an action would act on, as text.
fn targets(
    action: Action,
    f: &FindingFacts,
    story_files: &HashMap<String, Vec<String>>,
    config: &RespondConfig,
) -> Vec<String> {
    let exe = f
        .process
        .as_ref()
        .and_then(|p| p.file.as_ref())
        .and_then(|file| file.path.clone());
    match action {
        Action::Kill => f
            .process
            .as_ref()
            .map(|p| {
                format!(
                    "process {} ({}) and its branch",
                    p.pid.map_or("?".into(), |n| n.to_string()),
                    p.name.as_deref().unwrap_or("?")
                )
            })
            .into_iter()
            .collect(),
        Action::Quarantine => {
            let mut t: Vec<String> = exe.into_iter().collect();
            if config.quarantine.story_files {
                if let Some(files) = f.story.as_ref().and_then(|s| story_files.get(s)) {
                    for p in files.iter().take(config.quarantine.max_story_files) {
                        if !t.contains(p) {
                            t.push(p.clone());
                        }
                    }
                }
            }
            let guard = vigil_respond::procs::Guard::new(config.protected.clone(), Vec::new());
            t.into_iter()
                .map(|p| match guard.spare_path(Path::new(&p)) {
                    Some(why) => format!("{p} (spared: {why})"),
                    None => p,
                })
                .collect()
        }
        Action::Block => exe.map(|e| format!("executable {e}")).into_iter().collect(),
        Action::Rollback => f
            .story
            .as_ref()
            .map(|s| format!("files story {s} rewrote"))
            .into_iter()
            .collect(),
        Action::Isolate => vec![format!(
            "the host (management endpoints: {})",
            if config.isolate.management.is_empty() {
                "none".to_string()
            } else {
                config.isolate.management.join(", ")
            }
        )],
    }
}
