//! Event search: an analyst's query (the `vigil query` languages: the pipe language or
//! SQL) over the organisation's own lake. The engine is not in this crate (it would
//! bring DataFusion into every build of the server's library and its tests): the binary
//! that runs the server plugs one in ([`Search`]; `vigil server run` gives vigil-query's,
//! read only). The route (`api::search`) chooses the lake a query reads from the
//! caller's organisation, never from the request.

use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// The most rows a search returns.
pub const MAX_ROWS: usize = 1000;
/// How long a search may run.
pub const TIMEOUT: Duration = Duration::from_secs(20);
/// The longest query text.
pub const MAX_QUERY: usize = 4096;
/// How many searches run at once in one server process (each uses a core while it
/// runs); more are answered 429.
pub const CONCURRENT: usize = 2;

/// A search's rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    /// The column names (nested fields as dotted paths).
    pub columns: Vec<String>,
    /// The rows, one value per column.
    pub rows: Vec<Vec<Value>>,
    /// Whether rows were left out (the row limit or the time limit).
    pub truncated: bool,
    /// What ran (the SQL a pipe query compiled to).
    pub sql: String,
}

/// A query engine over a lake directory.
pub trait Search: Send + Sync + std::fmt::Debug {
    /// Runs `query` over the lake in `dir`: at most `max_rows` rows, for at most
    /// `timeout`; blocking (called on a thread of its own). `Err`: what is wrong with
    /// the query, in a sentence the analyst can act on (no path of the server's).
    fn search(
        &self,
        dir: &Path,
        query: &str,
        max_rows: usize,
        timeout: Duration,
    ) -> Result<Found, String>;
}
