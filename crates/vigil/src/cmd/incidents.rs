//! `vigil incidents`: the incidents in the agent's output, each as a process tree.

use anyhow::Result;
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// `vigil incidents` arguments.
#[derive(Debug, Args)]
pub struct IncidentsArgs {
    /// The agent's output: its events file, or its findings file, as JSON lines (`-` for
    /// standard input).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Each incident as text: a header, its techniques, its flagged process branch.
    Table,
    /// One JSON object per incident, its tree nested.
    Jsonl,
}

/// Reads the files and prints their incidents, worst first.
pub fn run(args: IncidentsArgs) -> Result<ExitCode> {
    let mut all = vigil_detect::Incidents::new();
    super::lines::for_each_json(&args.files, "a JSON event", |v| {
        all.add(&v);
        Ok(())
    })?;
    let incidents = all.incidents();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match args.format {
        Format::Table => {
            if incidents.is_empty() {
                writeln!(out, "no incidents")?;
            }
            for (i, inc) in incidents.iter().enumerate() {
                if i > 0 {
                    writeln!(out)?;
                }
                out.write_all(inc.to_text().as_bytes())?;
            }
        }
        Format::Jsonl => {
            for inc in &incidents {
                serde_json::to_writer(&mut out, &inc.to_json())?;
                writeln!(out)?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
