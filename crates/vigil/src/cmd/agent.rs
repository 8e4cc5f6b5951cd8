//! `vigil agent`: runs the sensor and writes what it sees as OCSF events.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde::Deserialize;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use vigil_sensor::{SensorBackend, SensorConfig};

/// `vigil agent` arguments.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Agent configuration (TOML; see config/agent.toml for every setting).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Where to write events (`-` for standard output).
    #[arg(short, long, default_value = "-")]
    output: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    format: Format,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// One OCSF event per line, as JSON.
    Jsonl,
}

/// The agent's configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// The eBPF sensor's settings.
    pub sensor: SensorConfig,
}

/// Reads and checks a configuration file.
pub fn load_config(path: &Path) -> Result<AgentConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let config: AgentConfig = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| {
            text.as_bytes()[..s.start.min(text.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1
        });
        anyhow::anyhow!(
            "{}:{}: {}",
            path.display(),
            line.map_or_else(|| "?".to_string(), |l| l.to_string()),
            e.message()
        )
    })?;
    config
        .sensor
        .validate()
        .with_context(|| format!("{}: invalid setting", path.display()))?;
    Ok(config)
}

/// Runs the agent until SIGINT or SIGTERM.
pub fn run(args: AgentArgs) -> Result<ExitCode> {
    let config = match &args.config {
        Some(path) => load_config(path)?,
        None => AgentConfig::default(),
    };
    let Format::Jsonl = args.format;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).context("cannot handle signals")?;
    }
    let out: Box<dyn Write> = if args.output.as_os_str() == "-" {
        Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout().lock()))
    } else {
        let f = std::fs::File::create(&args.output)
            .with_context(|| format!("cannot create {}", args.output.display()))?;
        Box::new(BufWriter::with_capacity(1 << 20, f))
    };
    let mut w = EventWriter {
        out,
        error: None,
        line: Vec::with_capacity(16 * 1024),
    };
    let mut sensor = SensorBackend::start(config.sensor).context("cannot start the sensor")?;
    tracing::info!(mode = sensor.mode_name(), "agent running");
    w.write(sensor.start_event());
    // Readers see at once that the agent runs, even on a quiet host.
    w.flush()?;
    // The kernel wakes the reader only when 256 KiB wait: the poll timeout bounds how long
    // a quiet host's events wait (25 ms).
    while !stop.load(Ordering::Relaxed) {
        let n = sensor
            .poll(std::time::Duration::from_millis(25), &mut |ev| w.write(ev))
            .context("sensor failed")?;
        if n > 0 {
            w.flush()?;
        }
    }
    sensor
        .finish(&mut |ev| w.write(ev))
        .context("sensor failed")?;
    w.write(sensor.stop_event());
    w.flush()?;
    let s = sensor.stats();
    tracing::info!(
        received = s.received,
        lost = s.lost(),
        emitted = s.emitted,
        "agent stopped"
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes events as JSON lines, keeping the first write error for the caller.
struct EventWriter {
    out: Box<dyn Write>,
    error: Option<std::io::Error>,
    /// One event's line, serialized here first: one write per event instead of one per
    /// JSON token through the output's dynamic writer.
    line: Vec<u8>,
}

impl EventWriter {
    fn write(&mut self, ev: vigil_event::OcsfEvent) {
        if self.error.is_some() {
            return;
        }
        self.line.clear();
        let r = serde_json::to_writer(&mut self.line, &ev)
            .map_err(std::io::Error::from)
            .and_then(|()| {
                self.line.push(b'\n');
                self.out.write_all(&self.line)
            });
        if let Err(e) = r {
            self.error = Some(e);
        }
    }

    fn flush(&mut self) -> Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e).context("cannot write events");
        }
        self.out.flush().context("cannot write events")
    }
}
