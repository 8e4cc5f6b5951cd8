//! `vigil ocsf`: the event model from the command line.

use anyhow::{Context, Result};
use clap::Subcommand;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `vigil ocsf` subcommands.
#[derive(Debug, Subcommand)]
pub enum OcsfCommand {
    /// Write an example intrusion on a Linux host as OCSF events (JSON lines).
    Example {
        /// Where to write (`-` for standard output).
        #[arg(short, long, default_value = "-")]
        output: PathBuf,
        /// Time of the first event, in milliseconds since the Unix epoch (default: now).
        #[arg(long)]
        start: Option<i64>,
    },
    /// Validate OCSF events (JSON lines) against the OCSF schema source.
    Validate {
        /// The OCSF schema source directory (with dictionary.json, objects/, events/).
        #[arg(long, env = "VIGIL_OCSF_SCHEMA")]
        schema: PathBuf,
        /// Files of JSON lines (`-` or nothing for standard input).
        files: Vec<PathBuf>,
    },
}

/// Runs a `vigil ocsf` subcommand.
pub fn run(cmd: OcsfCommand) -> Result<ExitCode> {
    match cmd {
        OcsfCommand::Example { output, start } => example(output, start),
        OcsfCommand::Validate { schema, files } => validate(&schema, files),
    }
}

fn open_output(path: &Path) -> Result<Box<dyn Write>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(BufWriter::new(std::io::stdout().lock())));
    }
    let f =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(Box::new(BufWriter::new(f)))
}

fn example(output: PathBuf, start: Option<i64>) -> Result<ExitCode> {
    let events =
        vigil_event::example::attack_story(start.unwrap_or_else(vigil_event::time::now_ms));
    let mut out = open_output(&output)?;
    for e in &events {
        serde_json::to_writer(&mut out, e).context("cannot serialize an event")?;
        out.write_all(b"\n").context("cannot write")?;
    }
    out.flush().context("cannot write")?;
    tracing::info!(events = events.len(), output = %output.display(), "wrote example events");
    Ok(ExitCode::SUCCESS)
}

fn validate(schema_dir: &Path, files: Vec<PathBuf>) -> Result<ExitCode> {
    let schema = vigil_ocsf_schema::Schema::load(schema_dir)
        .with_context(|| format!("cannot load the OCSF schema from {}", schema_dir.display()))?;
    let files = if files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        files
    };
    let (mut checked, mut invalid) = (0usize, 0usize);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for file in &files {
        let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
            Box::new(BufReader::new(std::io::stdin().lock()))
        } else {
            let f = std::fs::File::open(file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            Box::new(BufReader::new(f))
        };
        let name = if file.as_os_str() == "-" {
            "<stdin>".to_string()
        } else {
            file.display().to_string()
        };
        for (idx, line) in reader.lines().enumerate() {
            let line = line.with_context(|| format!("cannot read {name}"))?;
            if line.trim().is_empty() {
                continue;
            }
            checked += 1;
            let problems: Vec<String> = match serde_json::from_str::<serde_json::Value>(&line) {
                Ok(event) => schema
                    .validate(&event)
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                Err(e) => vec![format!("not JSON: {e}")],
            };
            if !problems.is_empty() {
                invalid += 1;
            }
            for p in problems {
                writeln!(out, "{name}:{}: {p}", idx + 1).context("cannot write")?;
            }
        }
    }
    writeln!(
        out,
        "checked {checked} events against OCSF {}, {invalid} invalid",
        schema.version
    )
    .context("cannot write")?;
    Ok(if invalid == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_CHECK_FAILED)
    })
}
