//! `vigil content`: content bundles (Sigma rules, YARA rules, indicators, policy as one
//! versioned whole): seal one, check one, apply it where the agent follows it, roll back,
//! show what runs.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vigil_agent::content::{self, store, Content, Refused, Settings};
use vigil_agent::AgentConfig;

/// `vigil content` subcommands.
#[derive(Debug, Subcommand)]
pub enum ContentCommand {
    /// Check a bundle completely, as the agent does before it runs one: the manifest and
    /// every file's SHA-256, the Sigma rules compiled and tried on sample events, the
    /// YARA rules compiled and timed on sample files, the indicators, the policy and
    /// the rule ids it names, the memory loading takes. Prints one line per problem
    /// (`file:line: reason`); exit code 1 if the bundle is refused.
    Check {
        /// The bundle's directory.
        dir: PathBuf,
        #[command(flatten)]
        agent: AgentSettings,
    },
    /// Check a bundle, copy it into the content directory and make it the one the agent
    /// runs (atomically; the running agent swaps it in within `content.check_secs`). A
    /// refused bundle changes nothing (exit code 1).
    Apply {
        /// The bundle's directory.
        dir: PathBuf,
        #[command(flatten)]
        agent: AgentSettings,
    },
    /// Go back to the content that ran before the last apply (checked again first).
    Rollback {
        #[command(flatten)]
        agent: AgentSettings,
    },
    /// Show which content runs, which ran before, and every version applied.
    Status {
        #[command(flatten)]
        agent: AgentSettings,
    },
    /// Write a bundle's manifest (`bundle.toml`): every file under sigma/, yara/,
    /// intel/ and policy.toml with its SHA-256, under a version. Run it once the
    /// content is final: a file changed after it is refused.
    Seal {
        /// The bundle's directory.
        dir: PathBuf,
        /// The bundle's version (letters, digits, `.`, `_`, `-`; at most 64).
        #[arg(value_name = "VERSION")]
        bundle_version: String,
        /// What the bundle is, for people.
        #[arg(long, default_value = "")]
        description: String,
    },
}

/// The agent settings a check uses (the trial budgets, the memory bound, whether the
/// built-in pack runs beside the bundle) and where applied bundles are kept.
#[derive(Debug, Args)]
pub struct AgentSettings {
    /// The agent's configuration (default: the built-in defaults).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// The content directory (default: the configuration's `content.dir`).
    #[arg(long, value_name = "DIR")]
    content_dir: Option<PathBuf>,
}

impl AgentSettings {
    fn load(&self) -> Result<(Settings, PathBuf)> {
        let config = match &self.config {
            Some(p) => AgentConfig::load(p)?,
            None => AgentConfig::default(),
        };
        let dir = self
            .content_dir
            .clone()
            .unwrap_or_else(|| config.content.dir.clone());
        Ok((Settings::of(&config), dir))
    }
}

/// Runs a `vigil content` subcommand.
pub fn run(cmd: ContentCommand) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match cmd {
        ContentCommand::Check { dir, agent } => {
            let (settings, _) = agent.load()?;
            match content::load(&dir, &settings) {
                Ok(c) => {
                    writeln!(out, "{}", describe(&dir, &c))?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(r) => refused(&mut out, &r),
            }
        }
        ContentCommand::Apply { dir, agent } => {
            let (settings, store_dir) = agent.load()?;
            match store::apply(&dir, &store_dir, &settings) {
                Ok(s) => {
                    writeln!(out, "{}", describe(&dir, &s.content))?;
                    writeln!(
                        out,
                        "content {} applied in {} (was {})",
                        s.content.version,
                        store_dir.display(),
                        s.previous.as_deref().unwrap_or("none")
                    )?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(store::StoreError::Refused(r)) => refused(&mut out, &r),
                Err(e @ store::StoreError::VersionTaken { .. }) => {
                    tracing::error!("{e}");
                    Ok(ExitCode::from(crate::EXIT_CHECK_FAILED))
                }
                Err(e) => Err(e).context("content apply"),
            }
        }
        ContentCommand::Rollback { agent } => {
            let (settings, store_dir) = agent.load()?;
            match store::rollback(&store_dir, &settings) {
                Ok(s) => {
                    writeln!(
                        out,
                        "content {} runs again in {} (was {})",
                        s.content.version,
                        store_dir.display(),
                        s.previous.as_deref().unwrap_or("none")
                    )?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(store::StoreError::Refused(r)) => refused(&mut out, &r),
                Err(e) => Err(e).context("content rollback"),
            }
        }
        ContentCommand::Status { agent } => {
            let (_, store_dir) = agent.load()?;
            let s = store::status(&store_dir);
            writeln!(out, "content directory: {}", store_dir.display())?;
            writeln!(out, "current: {}", s.current.as_deref().unwrap_or("none"))?;
            writeln!(out, "previous: {}", s.previous.as_deref().unwrap_or("none"))?;
            writeln!(out, "applied: {}", s.versions.join(" "))?;
            Ok(ExitCode::SUCCESS)
        }
        ContentCommand::Seal {
            dir,
            bundle_version,
            description,
        } => match content::seal(&dir, &bundle_version, &description) {
            Ok(m) => {
                writeln!(
                    out,
                    "{}: version {}, {} files",
                    dir.join(content::MANIFEST).display(),
                    m.version,
                    m.files.len()
                )?;
                Ok(ExitCode::SUCCESS)
            }
            Err(r) => refused(&mut out, &r),
        },
    }
}

/// One line on content that passed its check.
fn describe(dir: &Path, c: &Content) -> String {
    format!(
        "{}: content {} passes: {} rules, {} indicators, {} YARA files (slowest trial \
         sample {:.1} ms), {}, {} MiB loaded",
        dir.display(),
        c.version,
        c.rules.loaded,
        c.intel.len(),
        c.yara_files,
        c.yara_trial_ms,
        match &c.policy {
            Some(p) => format!("a policy of {} rules", p.len()),
            None => "no policy (the configuration's runs)".into(),
        },
        c.memory_bytes >> 20
    )
}

/// Prints every problem of a refused bundle, one per line; exit code 1.
fn refused(out: &mut impl Write, r: &Refused) -> Result<ExitCode> {
    for p in &r.problems {
        writeln!(out, "{p}")?;
    }
    tracing::error!(
        "content bundle {}{} refused: {} problem{}",
        r.dir.display(),
        r.version
            .as_deref()
            .map(|v| format!(" (version {v})"))
            .unwrap_or_default(),
        r.problems.len(),
        if r.problems.len() == 1 { "" } else { "s" }
    );
    Ok(ExitCode::from(crate::EXIT_CHECK_FAILED))
}
