//! `vigil quarantine`: the vault's items listed, given back byte for byte with their
//! owner, mode and times, or deleted for good. Each restore and purge is a File
//! Remediation Activity record on standard output.

use crate::cmd::respond::{command_line, print_records, ConfigArg};
use anyhow::Result;
use clap::{Subcommand, ValueEnum};
use serde_json::{json, Map};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use vigil_event::model::{hash_algorithm, remediation_status, Fingerprint, User};
use vigil_respond::config::{Action, Mode};
use vigil_respond::record::{self, Cause, Common, Outcome};
use vigil_respond::vault::{Item, Vault};

/// `vigil quarantine` subcommands.
#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// The items in the vault, oldest first.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// Gives an item back where it was (or to `--to`), with its owner, group, mode and
    /// times, checked against its SHA-256; it then leaves the vault.
    Restore {
        /// The item id (from `list`).
        id: String,
        /// Where to put it instead of its original path.
        #[arg(long)]
        to: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Deletes items for good.
    Purge {
        /// Item ids.
        ids: Vec<String>,
        /// Every item.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// `list` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// One line per item.
    Table,
    /// Each item's metadata as one JSON object per line.
    Jsonl,
}

fn record(item: &Item, restore: bool, outcome: Outcome, line: &str) -> vigil_event::OcsfEvent {
    let mut file = record::file_of(&item.path);
    file.size = Some(item.size as i64);
    file.attributes = Some(item.mode as i32);
    file.owner = Some(User {
        uid: Some(item.uid.to_string()),
        ..User::default()
    });
    file.hashes = vec![Fingerprint {
        algorithm_id: hash_algorithm::SHA256,
        algorithm: Some(hash_algorithm::name(hash_algorithm::SHA256).into()),
        value: item.sha256.clone(),
    }];
    let mut extra = Map::new();
    extra.insert("vault_id".into(), json!(item.id));
    record::file(
        Common {
            action: Action::Quarantine,
            restore,
            mode: Mode::Protect,
            cause: Cause::Manual(line),
            command_uid: format!("{}:{}", if restore { "restore" } else { "purge" }, item.id),
            outcome,
            extra,
            time: vigil_event::time::now_ms(),
        },
        file,
    )
}

/// Runs a `vigil quarantine` subcommand.
pub fn run(cmd: QuarantineCommand) -> Result<ExitCode> {
    let line = command_line();
    match cmd {
        QuarantineCommand::List { config, format } => {
            let vault = Vault::open(&config.load()?.quarantine.vault_dir)?;
            let (items, bad) = vault.list()?;
            for b in &bad {
                tracing::warn!("{b}");
            }
            let mut out = std::io::stdout().lock();
            for i in &items {
                match format {
                    ListFormat::Jsonl => {
                        serde_json::to_writer(&mut out, i)?;
                        out.write_all(b"\n")?;
                    }
                    ListFormat::Table => writeln!(
                        out,
                        "{}  {}  {} bytes  uid {} gid {} mode {:04o}  sha256 {}  {}",
                        i.id,
                        vigil_event::time::format_ms(i.quarantined_ms),
                        i.size,
                        i.uid,
                        i.gid,
                        i.mode,
                        i.sha256,
                        i.path.display()
                    )?,
                }
            }
            out.flush()?;
            Ok(if bad.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(crate::EXIT_RUNTIME_ERROR)
            })
        }
        QuarantineCommand::Restore { id, to, config } => {
            let vault = Vault::open(&config.load()?.quarantine.vault_dir)?;
            let item = vault.get(&id)?;
            let rec = match vault.restore(&id, to.as_deref()) {
                Ok(restored) => record(
                    &restored,
                    true,
                    Outcome::success(format!(
                        "restored {} from the vault ({} bytes, SHA-256 checked, owner {}:{}, mode {:04o})",
                        restored.path.display(),
                        restored.size,
                        restored.uid,
                        restored.gid,
                        restored.mode
                    )),
                    &line,
                ),
                Err(e) => {
                    let (status, msg) = e.to_string_with_kind();
                    record(&item, true, Outcome::failed(status, msg), &line)
                }
            };
            print_records(&[rec])
        }
        QuarantineCommand::Purge { ids, all, config } => {
            let vault = Vault::open(&config.load()?.quarantine.vault_dir)?;
            let ids: Vec<String> = if all {
                let (items, bad) = vault.list()?;
                for b in &bad {
                    tracing::warn!("{b}: left in place");
                }
                items.into_iter().map(|i| i.id).collect()
            } else {
                if ids.is_empty() {
                    anyhow::bail!("name the items to purge, or --all");
                }
                ids
            };
            let mut records = Vec::new();
            for id in ids {
                let item = vault.get(&id)?;
                let outcome = match vault.purge(&id) {
                    Ok(_) => Outcome::success(format!(
                        "deleted {} ({}) from the vault for good",
                        item.id,
                        item.path.display()
                    )),
                    Err(e) => Outcome::failed(remediation_status::ERROR, e.to_string()),
                };
                records.push(record(&item, false, outcome, &line));
            }
            print_records(&records)
        }
    }
}
