//! The query crate's errors.

use std::path::PathBuf;

/// Why a query could not run.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query text is wrong: already rendered with its position, caret and hint.
    #[error("{0}")]
    Syntax(String),
    /// A file could not be read while the query ran (it passed the footer check).
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An input could not be opened or read at all.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A JSON line that is not an object of a known shape.
    #[error("{}:{line}: {reason}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Arrow could not hold the rows.
    #[error("{0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// The engine failed.
    #[error("{0}")]
    Engine(#[from] datafusion::error::DataFusionError),
    /// The async runtime could not start.
    #[error("starting the query runtime: {0}")]
    Runtime(std::io::Error),
}
