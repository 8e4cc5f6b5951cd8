//! Vigil's telemetry store: every event the agent writes, kept on the host as OCSF in
//! Apache Parquet, readable by any Parquet reader (DuckDB, Spark, Athena, DataFusion).
//!
//! # Layout (stable)
//!
//! ```text
//! DIR/wal/<first-seq>.wal                     the write-ahead log: segments of framed,
//!                                             checksummed JSON lines ([`wal`])
//! DIR/wal/compacted                           the last sequence compacted into the lake
//! DIR/lake/class=<table>/date=YYYY-MM-DD/hour=HH/<first-seq>-<last-seq>.parquet
//! DIR/lake/class=<table>/date=YYYY-MM-DD/hour=HH/<first-seq>-<last-seq>.ids
//! ```
//!
//! * `<table>` is the class's snake_case OCSF name (`process_activity`, `file_activity`,
//!   `network_activity`, `dns_activity`, `detection_finding`, ...: [`CLASSES`]); it is
//!   the table name queries use. Partitions are Hive-style (`key=value` directories), so
//!   every Parquet reader prunes by class, date and hour; the hour is the event's `time`
//!   in UTC.
//! * Sequence numbers (one per event, increasing, never reused) are zero-padded to 20
//!   digits in file names. A Parquet file holds the events of one class and hour from
//!   one log segment; its name is the smallest and largest sequence in it.
//! * A closed hour's files are merged ([`merge`]): the merged file is named by the range
//!   of its inputs, so **a file whose sequence range lies within another file's range in
//!   the same partition is the input of a finished merge**, never read (listings leave it
//!   out) and deleted by the next merge pass. Compaction never makes two overlapping
//!   ranges in one partition, so this rule is all a reader needs; other readers (DuckDB,
//!   Spark) globbing the directory during the moment between a merge's rename and the
//!   deletion of its inputs would see those events twice.
//! * The id columns `metadata.correlation_uid`, `metadata.uid`, `process.uid` and
//!   `actor.process.uid` have Parquet Bloom filters (false positive rate 1%,
//!   [`compact::BLOOM_COLUMNS`]): a lookup of one story or one process skips the row
//!   groups that do not hold it.
//! * Beside each Parquet file, `<first-seq>-<last-seq>.ids` is its id index ([`ids`]):
//!   Bloom filters of the story and process ids in it, so a lookup opens only the files
//!   that may hold the id without decoding every file's footer. A file without an index
//!   (or with a damaged one) is read: the index never hides a row.
//! * Every class has one Arrow schema ([`schema_of`]), derived from the event model
//!   (`vigil_event::model::Shaped`): nested objects are nested struct columns, lists are
//!   list columns, free-form maps (`unmapped`, a file's `xattributes`, evidence `data`)
//!   are JSON text columns (field metadata `vigil.json = true`), `time` and `*_time` are
//!   UTC millisecond timestamps. One column is the store's own, last in every table:
//!   `vigil_seq`, the event's sequence number.
//!
//! # Reading
//!
//! [`read::snapshot`] gives what a query needs to see everything written so far: the
//! Parquet files of each class (within a time range, by partition) and the events still
//! in the log as Arrow batches of the same schema, with events already compacted left
//! out. Damaged log segments and unreadable Parquet files are reported ([`Problem`]:
//! path, offset, what) and skipped. [`RowBatch`] reads a batch's rows as events for the
//! rule engine, straight from the columns (the retro-hunt).
//!
//! # Writing
//!
//! [`Store`] appends the agent's JSON lines to the log on a thread of its own, makes them
//! durable by group commit (an event counts as written once fsynced: [`Store::durable`]),
//! and compacts closed segments into Parquet on another thread, exactly once, then
//! applies retention (by total size and by age, oldest hours first, each deletion
//! reported) and merges the files of hours closed for longer than a grace period.

pub mod compact;
pub mod convert;
pub mod ids;
pub mod layout;
pub mod merge;
pub mod read;
pub mod retention;
pub mod row;
pub mod schema;
mod store;
pub mod wal;

pub use convert::{row_seq, row_to_json, write_row_json, Anomalies, BatchBuilder};
pub use read::{read_parquet, snapshot, LakeFile, Snapshot};
pub use row::{RowBatch, RowEvent};
pub use schema::{schema_of, Class, CLASSES, SEQ_COLUMN};
pub use store::{Store, StoreConfig, StoreStats};

use std::path::{Path, PathBuf};

/// Something in a store that could not be read or written: where, and what is wrong.
/// Reading goes on past it; it is reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {what}", path.display(), offset.map(|o| format!(" at byte {o}")).unwrap_or_default())]
pub struct Problem {
    /// The file or directory.
    pub path: PathBuf,
    /// The byte offset in it, when known.
    pub offset: Option<u64>,
    /// What is wrong.
    pub what: String,
}

impl Problem {
    /// An I/O error on `path`.
    pub fn io(path: &Path, e: std::io::Error) -> Problem {
        Problem {
            path: path.to_path_buf(),
            offset: None,
            what: e.to_string(),
        }
    }
}
