//! Hunting queries over Vigil's telemetry store: SQL and a pipe language, both planned
//! and run by Apache DataFusion.
//!
//! * [`pipe`] parses the pipe language (`process_activity | where ... | count by ...`);
//!   [`compile`] turns it into SQL, checking every field against the tables' schemas.
//! * [`Sources`] gathers what a query reads: Parquet files (each footer checked first;
//!   a corrupt file is reported and left out) and JSON lines (split into one table per
//!   OCSF class), and registers one table per class.
//! * [`lake`] scans a table's Parquet files, leaving out before the scan the files whose
//!   id index (`vigil_store::ids`) proves they hold no row of a story or process lookup.
//! * [`Engine`] runs a query with a row limit and a timeout and names a file that fails
//!   to read while the query runs, so the caller can run it again without it.
//! * [`retro`] hands the store's rows to `vigil hunt --store` as records already parsed,
//!   matched on their columns.
//!
//! OCSF field names are the columns; nested objects are structs, reached by dotted path
//! (`actor.process.file.name`) in both languages.

pub mod compile;
mod engine;
mod error;
mod error_pos;
pub mod lake;
pub mod output;
pub mod pipe;
pub mod retro;
mod sources;

pub use datafusion;
pub use engine::{Engine, Language, QueryOutcome, Stopped};
pub use error::QueryError;
pub use sources::{snake_case, Skipped, Sources};
