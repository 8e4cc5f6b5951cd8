//! `vigil hunt`: offline threat hunting with Sigma rules over Windows event logs (EVTX) and
//! JSON logs, fast and in bounded memory.
//!
//! # Use
//!
//! ```no_run
//! use vigil_hunt::{discover, hunt, load_rules, HuntConfig, JsonlSink};
//! # fn main() -> Result<(), vigil_hunt::HuntError> {
//! let rules = load_rules(&["rules/windows".into()])?;
//! let (files, skipped) = discover(&["logs".into()])?;
//! let mut sink = JsonlSink::new(std::io::stdout().lock());
//! let report = hunt(&rules.built.engine, &files, &HuntConfig::default(), &mut sink, None)?;
//! eprintln!("{} findings, {} files with errors", report.findings,
//!     report.files.iter().filter(|f| f.errors > 0).count() + skipped.len());
//! # Ok(()) }
//! ```
//!
//! # Design
//!
//! * **Inputs** ([`discover`]): files and directories (recursive); `.evtx`, `.json` (one
//!   object, an array, or objects one after another), `.jsonl`/`.ndjson`, and the `.gz`
//!   form of each. A file named explicitly is recognised by its content when its name says
//!   nothing.
//! * **Units of work** (`input`): each file is cut into independent
//!   units: one 64 KiB EVTX chunk (gzip-compressed EVTX is read as a stream, chunk after
//!   chunk), about 256 KiB of whole JSON lines, or about 256 KiB of the values of a
//!   `.json` file, cut out by their brackets and strings without parsing them (`split`),
//!   so a large array is never held whole and a bad value is reported alone. A line or
//!   value longer than [`HuntConfig::max_record`] (16 MiB) is reported and skipped, and
//!   the rest of the file read. An input with an [`Opener`] (the store's rows, in the
//!   retro-hunt) hands over batches of records already parsed ([`Rows`]), matched as
//!   events without JSON text; a record's text is written only for its findings.
//! * **Threads** ([`hunt()`]): with one matching thread the calling thread reads, matches
//!   and writes, unit after unit, with no thread beside it (on one core, threads handing
//!   units to each other only cost switches). With more, reader threads send units
//!   through a bounded channel to the matching threads, so small files and one huge file
//!   alike keep every core busy, and memory is bounded by the channel capacity (a few
//!   units per thread), not by the input size; the calling thread collects.
//! * **Matching** (`matcher`): a JSON record (a line, a value, an EVTX record rendered to
//!   JSON by the `evtx` crate) is parsed once into a borrowed table
//!   ([`vigil_sigma::JsonEvent`]) and matched with the shared, immutable
//!   [`vigil_sigma::Engine`]. Routing follows what an event is: EVTX records and
//!   EVTX-shaped JSON (`Event.System`, or flat `Channel` + `EventID`) are Windows records;
//!   JSON with an integer `class_uid` and `activity_id` is one of Vigil's OCSF events
//!   (read as a `serde_json::Value`, whose keyword searches leave out the lineage
//!   context); any other JSON takes the logsource declared in [`HuntConfig::logsource`].
//!   Most records match nothing and are done with then. When a rule fires, the matching
//!   thread renders what the sink needs ([`HuntConfig::render`]): the OCSF line, written
//!   from a per-rule template with the record's own text as the event (`render`), or the
//!   timeline row.
//! * **Correlations** run after detection, on event time: the base findings of
//!   correlation rules (a small subset of all findings) are buffered in memory up to
//!   [`HuntConfig::correlation_buffer`] bytes, then spilled to sorted temporary files; at
//!   the end they are merged in event-time order and fed to
//!   [`vigil_sigma::CorrelationState`], whose own state is bounded by its
//!   [`vigil_sigma::Limits`]. Memory stays bounded and nothing is dropped.
//! * **Errors**: a corrupt or truncated file is reported (file, offset or line, reason) in
//!   [`Report::errors`] and everything else is still hunted; the records of a truncated
//!   EVTX chunk that are whole are still matched. A panic of the EVTX parser on hostile
//!   input (or any panic while matching) is caught and reported as an error about that
//!   part of the input.
//! * **Output** ([`Sink`]): [`JsonlSink`] streams OCSF Detection Findings (class 2004);
//!   [`CsvSink`] and [`TableSink`] keep one short row per finding and sort them by time
//!   with an external merge sort ([`ROW_BUFFER`] bytes in memory, the rest in sorted
//!   temporary files); [`HtmlSink`] writes a self-contained HTML report (summary, chart,
//!   ATT&CK matrix, a searchable table; `html`) and [`TimelineSink`] a timeline that
//!   Timesketch imports (`timeline`); [`Tee`] feeds several sinks at once.
//!
//! Peak memory is the compiled rules plus a bounded working set: on 2 threads with all
//! 3,754 SigmaHQ rules, under ~100 MiB from 100 MiB to 3 GiB of EVTX (BENCHMARKS.md).

mod collect;
mod config;
mod correlate;
mod detection;
mod discover;
mod error;
mod html;
mod hunt;
mod input;
mod intel;
mod matcher;
mod output;
mod render;
mod report;
mod rules;
mod sort;
mod split;
mod timeline;

pub use config::{parse_logsource, HuntConfig, Render, MAX_RECORD};
pub use detection::{Correlated, Detection, EventRef};
pub use discover::{discover, format_of_name, Format, InputFile, Opener, Rows, RowsIter};
pub use error::{HuntError, InputError, Location};
pub use html::{
    content_security_policy, technique_name, HtmlSink, ReportMeta, MAX_TABLE_ROWS, TABLE_BUDGET,
    TABLE_DETAILS,
};
pub use hunt::hunt;
pub use intel::HuntIntel;
pub use output::{CsvSink, JsonlSink, TableSink, Tee, ROW_BUFFER};
pub use report::{FileReport, Progress, Report, RuleCount, Sink};
pub use rules::{load_rules, load_rules_with, RuleSet, RuleTiming};
pub use timeline::{TimelineFormat, TimelineSink, TIMELINE_COLUMNS};
pub use vigil_detect::finding::{attacks, level_rank, LEVELS};
pub use vigil_sigma::{Engine, Level, LogSource};
