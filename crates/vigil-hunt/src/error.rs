//! Errors: what went wrong, and where.

use std::fmt;
use std::path::PathBuf;

/// Where in an input a problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The file as a whole (it could not be opened, or its format is not recognised).
    File,
    /// A byte offset (EVTX chunks, gzip streams, JSON documents).
    Offset(u64),
    /// An EVTX record: the chunk's byte offset and the record id.
    Record {
        /// Byte offset of the chunk holding the record.
        offset: u64,
        /// The record's `EventRecordID`.
        record: u64,
    },
    /// A 1-based line (JSON lines).
    Line(u64),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File => Ok(()),
            Location::Offset(o) => write!(f, ":offset {o}"),
            Location::Record { offset, record } => write!(f, ":offset {offset}:record {record}"),
            Location::Line(l) => write!(f, ":{l}"),
        }
    }
}

/// A problem with one input file (or a part of it). The hunt reports it and goes on with
/// the rest of the file when it can, and with the other files in any case.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{location}: {reason}", path.display())]
pub struct InputError {
    /// The input file.
    pub path: PathBuf,
    /// Where in it.
    pub location: Location,
    /// What is wrong.
    pub reason: String,
    /// True when the rest of the file could not be read (it was cut short or unreadable),
    /// false when only the part at `location` was skipped.
    pub fatal: bool,
}

/// Why a hunt could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum HuntError {
    /// A rule path does not exist or cannot be read.
    #[error("cannot read rules at {}: {reason}", path.display())]
    Rules {
        /// The path given.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The rule paths hold no rule file, or no rule in them loaded.
    #[error("no Sigma rule loaded from {0}")]
    NoRules(String),
    /// An input path does not exist or cannot be listed.
    #[error("cannot read input {}: {reason}", path.display())]
    Input {
        /// The path given.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A bad `--logsource` declaration.
    #[error("bad logsource {0:?}: expected product=..,category=..,service=..")]
    LogSource(String),
    /// The output could not be written.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    /// The temporary files of the correlation buffer could not be written or read.
    #[error("correlation buffer: {0}")]
    Spill(std::io::Error),
    /// A worker thread panicked (a bug: reported, not hidden).
    #[error("a hunt worker failed: {0}")]
    Worker(String),
}
