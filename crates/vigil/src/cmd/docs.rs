//! `vigil completions SHELL` and `vigil man DIR` (hidden: for packagers): shell
//! completions and man pages generated from the CLI's own clap definition, so what the
//! Debian package installs (`scripts/build-deb`) always matches the binary.

use anyhow::{Context, Result};
use clap::Command;
use std::path::Path;
use std::process::ExitCode;

/// Writes the completion script for `shell` to standard output.
pub fn completions(mut cli: Command, shell: clap_complete::Shell) -> Result<ExitCode> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cli, "vigil", &mut out);
    use std::io::Write;
    std::io::stdout()
        .write_all(&out)
        .context("cannot write the completion script")?;
    Ok(ExitCode::SUCCESS)
}

/// Writes `vigil.1` and one page per visible subcommand, nested ones included
/// (`vigil-agent.1`, `vigil-rules-check.1`), into `dir`; prints each file's path.
pub fn man(mut cli: Command, dir: &Path) -> Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Built, so every subcommand knows how it is invoked ("vigil rules check").
    cli.build();
    let mut written = Vec::new();
    page(&cli, "vigil", dir, &mut written)?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn page(
    cmd: &Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<std::path::PathBuf>,
) -> Result<()> {
    let path = dir.join(format!("{name}.1"));
    let mut text = Vec::new();
    clap_mangen::Man::new(cmd.clone().display_name(name))
        .render(&mut text)
        .with_context(|| format!("cannot render the man page {name}(1)"))?;
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    written.push(path);
    // Not the hidden commands, nor clap's own `help` (every page says --help already).
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        page(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}
