//! `vigil rollback STORY`: every file the story rewrote put back as it was before, from
//! the rollback journal (owner, mode and times too, each checked against its hash); the
//! story's renames undone. A File Remediation record per file on standard output.

use crate::cmd::respond::{command_line, print_records, ConfigArg};
use anyhow::Result;
use clap::Args;
use std::collections::HashSet;
use std::process::ExitCode;
use vigil_respond::config::Mode;
use vigil_respond::record::Cause;

/// `vigil rollback` arguments.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The story id (`metadata.correlation_uid` of its events and findings), or the uid
    /// of one of its processes.
    story: String,
    #[command(flatten)]
    config: ConfigArg,
    /// Say what would be put back, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also remove the files the story created.
    #[arg(long)]
    remove_created: bool,
}

/// Rolls a story back.
pub fn run(args: RollbackArgs) -> Result<ExitCode> {
    if vigil_respond::procs::parse_uid(&args.story).is_none() {
        anyhow::bail!(
            "{}: not a story id (boot-id-pid-start, as in metadata.correlation_uid)",
            args.story
        );
    }
    let rc = args.config.load()?;
    let line = command_line();
    let mode = if args.dry_run {
        Mode::Detect
    } else {
        Mode::Protect
    };
    let records = vigil_respond::prevent::rollback_records(
        &rc.rollback,
        &args.story,
        &HashSet::new(),
        mode,
        &Cause::Manual(&line),
        args.remove_created,
        vigil_event::time::now_ms(),
        &mut HashSet::new(),
    );
    print_records(&records)
}
