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
    /// Upload a bundle to the fleet server, once it passes the same check as `check`
    /// (the agents check it again before they run it).
    Push {
        /// The bundle's directory.
        dir: PathBuf,
        #[command(flatten)]
        agent: AgentSettings,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Start a staged rollout of an uploaded bundle: the canary host group's agents
    /// first; every other agent of the organisation once every canary has run it,
    /// healthy, for the canary time; halted by the server when a canary refuses it,
    /// restarts, loses events, takes more CPU or goes silent.
    Rollout {
        /// The bundle's version.
        #[arg(value_name = "VERSION")]
        bundle_version: String,
        /// The canary host group's name.
        #[arg(long, value_name = "NAME")]
        canary_group: String,
        /// Seconds every canary must run the bundle before the rest get it.
        #[arg(long, value_name = "SECS", default_value_t = 600)]
        canary_secs: u32,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show the organisation's rollouts, newest first, and each agent's state.
    Rollouts {
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// The fleet server and an admin's API token (`vigil server token --api-user NAME`).
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The server (`https://HOST:PORT`).
    #[arg(long, value_name = "URL")]
    server: String,
    /// The server's CA certificate (`DATA/ca.pem`).
    #[arg(long, value_name = "FILE")]
    ca: PathBuf,
    /// The API token.
    #[arg(long, env = "VIGIL_API_TOKEN", hide_env_values = true)]
    token: String,
}

impl ServerArgs {
    /// Calls the API: `method` on `path` (`{org}` replaced by the token's organisation)
    /// with `body`; the JSON answer, or why not.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value> {
        use vigil_agent::server::https;
        let config = vigil_agent::server::trusting(&self.ca)?;
        let base = https::BaseUrl::parse(&self.server).map_err(anyhow::Error::msg)?;
        let auth = format!("Bearer {}", self.token);
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ];
        let timeout = std::time::Duration::from_secs(60);
        let send = |m: &str, p: &str, b: &[u8]| {
            https::request(&config, &base, m, p, &headers, b, timeout)
                .with_context(|| format!("{m} {}{p}", self.server))
        };
        let me = send("GET", "/api/v1/me", b"")?;
        let me: serde_json::Value = serde_json::from_slice(&me.body).unwrap_or_default();
        let org = me["org"]
            .as_i64()
            .with_context(|| format!("{}: the token is not accepted", self.server))?;
        let path = path.replace("{org}", &org.to_string());
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let resp = send(method, &path, body.as_bytes())?;
        let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
        if resp.status != 200 {
            anyhow::bail!(
                "{method} {}{path}: HTTP {} {} (the server's audit log has the reason)",
                self.server,
                resp.status,
                v["error"].as_str().unwrap_or("")
            );
        }
        Ok(v)
    }
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
        ContentCommand::Push { dir, agent, server } => {
            let (settings, _) = agent.load()?;
            let c = match content::load(&dir, &settings) {
                Ok(c) => c,
                Err(r) => return refused(&mut out, &r),
            };
            let manifest = content::verify(&dir).map_err(|r| anyhow::anyhow!("{r}"))?;
            let mut files = serde_json::Map::new();
            for name in manifest
                .files
                .keys()
                .map(String::as_str)
                .chain([content::MANIFEST])
            {
                let path = dir.join(name);
                let text = std::fs::read_to_string(&path).with_context(|| {
                    format!("{}: the server takes bundles of text files", path.display())
                })?;
                files.insert(name.to_string(), serde_json::Value::String(text));
            }
            let v = server.call(
                "POST",
                "/api/v1/orgs/{org}/content",
                Some(&serde_json::json!({ "files": files })),
            )?;
            writeln!(
                out,
                "bundle {} uploaded to {} ({} files, {} bytes); {}",
                c.version,
                server.server,
                v["files"],
                v["bytes"],
                describe(&dir, &c)
            )?;
            Ok(ExitCode::SUCCESS)
        }
        ContentCommand::Rollout {
            bundle_version,
            canary_group,
            canary_secs,
            server,
        } => {
            let body = serde_json::json!({
                "version": bundle_version,
                "canary_group": canary_group,
                "canary_secs": canary_secs,
            });
            let v = server.call("POST", "/api/v1/orgs/{org}/rollouts", Some(&body))?;
            writeln!(
                out,
                "rollout {} of bundle {bundle_version}: canary group {canary_group} first ({} agents in all)",
                v["id"], v["agents"]
            )?;
            Ok(ExitCode::SUCCESS)
        }
        ContentCommand::Rollouts { server } => {
            let v = server.call("GET", "/api/v1/orgs/{org}/rollouts", None)?;
            for r in v["rollouts"].as_array().into_iter().flatten() {
                writeln!(
                    out,
                    "rollout {} bundle {} canary group {} ({} s): {}{}",
                    r["id"],
                    r["version"].as_str().unwrap_or("?"),
                    r["canary_group"].as_str().unwrap_or("?"),
                    r["canary_secs"],
                    r["state"].as_str().unwrap_or("?"),
                    r["reason"]
                        .as_str()
                        .filter(|s| !s.is_empty())
                        .map(|s| format!(": {s}"))
                        .unwrap_or_default()
                )?;
                for a in r["agents"].as_array().into_iter().flatten() {
                    writeln!(
                        out,
                        "  {} {}{}: {} (ran {}){}",
                        a["hostname"].as_str().unwrap_or("?"),
                        a["agent"].as_str().unwrap_or("?"),
                        if a["canary"] == true { " (canary)" } else { "" },
                        a["state"].as_str().unwrap_or("?"),
                        a["before"].as_str().unwrap_or(""),
                        a["detail"]
                            .as_str()
                            .filter(|s| !s.is_empty())
                            .map(|s| format!(": {s}"))
                            .unwrap_or_default()
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
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
