//! Where the agent's events go: JSON lines to a file or standard output.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};
use vigil_event::OcsfEvent;

/// Why a sink stopped the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Writing the events output failed: nothing after this could be written either.
    #[error("cannot write {name}: {source}")]
    Write {
        /// The sink.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// An event could not be turned into JSON.
    #[error("cannot serialize an event: {0}")]
    Serialize(String),
}

/// A consumer of the pipeline's events.
pub trait Sink {
    /// A short name, for logs and statistics.
    fn name(&self) -> &str;
    /// Whether this sink takes the event.
    fn accepts(&self, event: &OcsfEvent) -> bool;
    /// Writes one event's JSON line (with its newline).
    fn write(&mut self, line: &[u8]) -> Result<(), SinkError>;
    /// Writes out what is buffered.
    fn flush(&mut self) -> Result<(), SinkError>;
    /// Counters for the agent's statistics.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// Which events a sink takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// Every event.
    All,
    /// Detection and Incident Findings (2004, 2005) and what was done about them:
    /// Remediation Activity (7002, 7003, 7004).
    Findings,
}

/// What a sink does when a write fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Stop the agent: this output must not lose events (the main events output).
    Fail,
    /// Count the lost line, report it (at most every few seconds) and go on: the rest of
    /// the pipeline must not stop for this output (a findings file on a full disk).
    Count,
}

/// JSON lines to a file or to standard output.
pub struct JsonlSink {
    name: String,
    place: String,
    out: Box<dyn Write>,
    select: Select,
    on_error: OnError,
    written: u64,
    dropped: u64,
    /// Whether the last write failed part-way: the next line starts on a new line.
    torn: bool,
    /// When a loss was last reported, and the count then.
    reported: Option<(Instant, u64)>,
}

impl JsonlSink {
    /// A sink named `name` (`events`, `findings`) writing to `path` (`-` for standard
    /// output), created or truncated.
    pub fn create(
        name: &str,
        path: &Path,
        select: Select,
        on_error: OnError,
    ) -> std::io::Result<Self> {
        let out: Box<dyn Write> = if path.as_os_str() == "-" {
            Box::new(std::io::BufWriter::with_capacity(
                1 << 20,
                std::io::stdout().lock(),
            ))
        } else {
            Self::writer(std::fs::File::create(path)?, on_error)
        };
        Ok(Self::new(
            name,
            &path.display().to_string(),
            out,
            select,
            on_error,
        ))
    }

    /// A sink over any writer; `place` names where it writes, in error messages.
    pub fn new(
        name: &str,
        place: &str,
        out: Box<dyn Write>,
        select: Select,
        on_error: OnError,
    ) -> Self {
        JsonlSink {
            name: name.to_string(),
            place: place.to_string(),
            out,
            select,
            on_error,
            written: 0,
            dropped: 0,
            torn: false,
            reported: None,
        }
    }

    /// A file of lossy output is written a line at a time (findings are few), so a
    /// failed write loses that line only; the main output is buffered.
    fn writer(f: std::fs::File, on_error: OnError) -> Box<dyn Write> {
        match on_error {
            OnError::Fail => Box::new(std::io::BufWriter::with_capacity(1 << 20, f)),
            OnError::Count => Box::new(f),
        }
    }

    /// Lines lost to write errors.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn failed(&mut self, e: std::io::Error) -> Result<(), SinkError> {
        match self.on_error {
            OnError::Fail => Err(SinkError::Write {
                name: self.place.clone(),
                source: e,
            }),
            OnError::Count => {
                self.dropped += 1;
                self.torn = true;
                let due = self
                    .reported
                    .is_none_or(|(at, _)| at.elapsed() >= Duration::from_secs(10));
                if due {
                    tracing::error!(
                        output = %self.place,
                        dropped = self.dropped,
                        "cannot write ({e}); lines are counted and dropped, other outputs go on"
                    );
                    self.reported = Some((Instant::now(), self.dropped));
                }
                Ok(())
            }
        }
    }
}

impl Sink for JsonlSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn accepts(&self, event: &OcsfEvent) -> bool {
        match self.select {
            Select::All => true,
            Select::Findings => {
                matches!(event, OcsfEvent::Finding(_) | OcsfEvent::Incident(_))
                    || event.is_remediation()
            }
        }
    }

    fn write(&mut self, line: &[u8]) -> Result<(), SinkError> {
        if self.torn {
            // A line cut short by an earlier failure ends here, alone and invalid,
            // instead of running into this one.
            if let Err(e) = self.out.write_all(b"\n") {
                return self.failed(e);
            }
            self.torn = false;
        }
        match self.out.write_all(line) {
            Ok(()) => {
                self.written += 1;
                Ok(())
            }
            Err(e) => self.failed(e),
        }
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        match self.out.flush() {
            Ok(()) => Ok(()),
            Err(e) => self.failed(e),
        }
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![("written", self.written), ("dropped", self.dropped)]
    }
}
