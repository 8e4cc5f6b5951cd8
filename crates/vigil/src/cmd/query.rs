//! `vigil query`: SQL or the pipe language over the telemetry store or Parquet and JSON
//! lines files, and shortcuts for the questions asked most (a story's tree, what a
//! process did, who touched an indicator).

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use vigil_query::output::Format;
use vigil_query::{Engine, Language, QueryError, Sources, Stopped};

/// Exit code for a query that is wrong (syntax, unknown field or table).
const EXIT_BAD_QUERY: u8 = 2;
/// Exit code when there is nothing to query.
const EXIT_NO_INPUT: u8 = 3;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Aligned columns (nested objects as dotted columns); cut at --limit rows.
    Table,
    /// One JSON object per row, nested objects kept.
    Jsonl,
    /// Comma-separated values with a header (nested objects as dotted columns).
    Csv,
}

/// Where the events come from and how a query is bounded (shared by the shortcuts).
#[derive(Debug, Args)]
pub struct InputArgs {
    /// A store directory (the agent's `[store] dir`): its Parquet files and the events
    /// still in its log.
    #[arg(long, value_name = "DIR", global = true)]
    pub(crate) store: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = FormatArg::Table, global = true)]
    pub(crate) format: FormatArg,
    /// At most this many rows (0: no limit). Default: 1000 for the table format, no limit
    /// for jsonl and csv. Said on stderr when it cuts.
    #[arg(long, value_name = "N", global = true)]
    pub(crate) limit: Option<u64>,
    /// Stop a query after this many seconds (0: never) and print what was found so far,
    /// saying so on stderr.
    #[arg(long, value_name = "SECONDS", default_value_t = 300.0, global = true)]
    pub(crate) timeout: f64,
    /// Threads (default: one per CPU).
    #[arg(short = 'j', long, value_name = "N", global = true)]
    pub(crate) threads: Option<usize>,
}

/// `vigil query` arguments.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "\
Queries are SQL or the pipe language (told apart by their start: `SELECT ...` is SQL,
`TABLE | ...` is the pipe language). Tables are the OCSF classes (process_activity,
file_activity, network_activity, dns_activity, detection_finding, ...); columns are
OCSF field names, nested objects by dotted path (actor.process.file.name) in both.

Pipe language stages: where EXPR | project F, .. | count [by F, ..] |
summarize count(), dcount(F), min(F), max(F), sum(F), avg(F) [by F, ..] |
sort by F [desc], .. | take N | distinct F, .. | since 1h | between \"T1\" and \"T2\"
EXPR: and, or, not, ( ), == != < <= > >=, contains, startswith, endswith, matches
(a regular expression), in (..), not in (..).

Examples:
  vigil query --store /var/lib/vigil/store \\
    'process_activity | where actor.process.file.name == \"curl\" | count by device.hostname'
  vigil query --sql 'SELECT process.cmd_line FROM process_activity LIMIT 5' events.jsonl
  vigil query story b1d0c0de-4100-1796595512371 --store DIR

Exit codes: 0 success; 2 the query is wrong (position and hint on stderr) or bad
arguments; 3 nothing could be read. Unreadable Parquet files are reported and left out."
)]
pub struct QueryArgs {
    /// A shortcut instead of a query.
    #[command(subcommand)]
    shortcut: Option<Shortcut>,
    /// The query (SQL or the pipe language), then Parquet or JSON lines files or
    /// directories to query (besides --store).
    #[arg(value_name = "QUERY_THEN_PATHS")]
    args: Vec<String>,
    /// A SQL query (all positional arguments are then paths).
    #[arg(long, value_name = "SQL", conflicts_with = "pipe")]
    sql: Option<String>,
    /// A pipe-language query (all positional arguments are then paths).
    #[arg(long, value_name = "QUERY")]
    pipe: Option<String>,
    /// Print the SQL a pipe-language query compiles to and DataFusion's plan, and run
    /// nothing.
    #[arg(long)]
    explain: bool,
    #[command(flatten)]
    input: InputArgs,
}

/// Shortcuts for the questions asked most.
#[derive(Debug, Subcommand)]
pub enum Shortcut {
    /// A story's whole process tree (STORY: `metadata.correlation_uid`).
    Story {
        /// The story id.
        id: String,
        /// Files or directories besides --store.
        paths: Vec<PathBuf>,
    },
    /// Everything a process did, in time order (UID: `process.uid`).
    Process {
        /// The process uid.
        uid: String,
        /// Files or directories besides --store.
        paths: Vec<PathBuf>,
    },
    /// Every host and process that touched an indicator: a hash (MD5, SHA-1,
    /// SHA-256), an IP address or a domain (told apart by its shape).
    Ioc {
        /// The hash, address or domain.
        value: String,
        /// Files or directories besides --store.
        paths: Vec<PathBuf>,
    },
}

/// Runs `vigil query`.
pub fn run(args: QueryArgs) -> Result<ExitCode> {
    let (query, paths, language) = match (&args.shortcut, &args.sql, &args.pipe) {
        (Some(_), _, _) => (None, Vec::new(), Language::Sql),
        (None, Some(q), _) => (Some(q.clone()), args.args.clone(), Language::Sql),
        (None, None, Some(q)) => (Some(q.clone()), args.args.clone(), Language::Pipe),
        (None, None, None) => match args.args.split_first() {
            Some((q, rest)) => (Some(q.clone()), rest.to_vec(), Language::guess(q)),
            None => {
                tracing::error!("no query: give one (SQL or the pipe language), or a shortcut (story, process, ioc)");
                return Ok(ExitCode::from(EXIT_BAD_QUERY));
            }
        },
    };
    let shortcut_paths = match &args.shortcut {
        Some(
            Shortcut::Story { paths, .. }
            | Shortcut::Process { paths, .. }
            | Shortcut::Ioc { paths, .. },
        ) => paths.clone(),
        None => paths.iter().map(PathBuf::from).collect(),
    };
    let Some(mut engine) = open(&args.input, &shortcut_paths, None)? else {
        return Ok(ExitCode::from(EXIT_NO_INPUT));
    };
    if let Some(s) = args.shortcut {
        return crate::cmd::query_views::run(s, &mut engine, &args.input);
    }
    let query = query.unwrap_or_default();
    if args.explain {
        return match engine.to_sql(&query, language) {
            Ok((sql, _)) => {
                println!("{sql}");
                match engine.run(&format!("EXPLAIN {sql}"), Language::Sql, None, None) {
                    Ok(o) => {
                        let mut out = std::io::stdout().lock();
                        vigil_query::output::write(&mut out, &o.batches, Format::Table)?;
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(e) => bad_query(e),
                }
            }
            Err(e) => bad_query(e),
        };
    }
    run_and_print(&mut engine, &query, language, &args.input)
}

/// Prints a wrong query's error and returns its exit code (other errors go up).
pub fn bad_query(e: QueryError) -> Result<ExitCode> {
    match e {
        QueryError::Syntax(text) => {
            eprintln!("error: {text}");
            Ok(ExitCode::from(EXIT_BAD_QUERY))
        }
        QueryError::Engine(e) => {
            let msg = e.strip_backtrace();
            // Planning errors (types, functions) are the query's fault, not the machine's.
            eprintln!("error: {msg}");
            Ok(ExitCode::from(EXIT_BAD_QUERY))
        }
        other => Err(other.into()),
    }
}

/// Opens the store and the paths; `None` when there is nothing to query (said).
/// `range`: only the store's Parquet files that can hold events in (from, to) ms.
pub fn open(
    input: &InputArgs,
    paths: &[PathBuf],
    range: Option<(i64, i64)>,
) -> Result<Option<Engine>> {
    let mut sources = Sources::default();
    if let Some(dir) = &input.store {
        crate::cmd::query_store::add_store(&mut sources, dir, range)?;
    }
    for p in paths {
        sources
            .add_path(p)
            .with_context(|| format!("cannot read {}", p.display()))?;
    }
    for s in &sources.skipped {
        tracing::warn!("{}: {} (left out)", s.path.display(), s.reason);
    }
    if sources.tables.is_empty() {
        if input.store.is_none() && paths.is_empty() {
            tracing::error!("nothing to query: give --store DIR or Parquet / JSON lines files");
        } else {
            tracing::error!("nothing to query: no readable events in the store or the paths given");
        }
        return Ok(None);
    }
    Ok(Some(Engine::new(sources, input.threads.unwrap_or(0))?))
}

/// Runs a query with the input's bounds and prints its rows; said on stderr what cut it.
pub fn run_and_print(
    engine: &mut Engine,
    query: &str,
    language: Language,
    input: &InputArgs,
) -> Result<ExitCode> {
    let format = match input.format {
        FormatArg::Table => Format::Table,
        FormatArg::Jsonl => Format::Jsonl,
        FormatArg::Csv => Format::Csv,
    };
    let limit = match (input.limit, format) {
        (Some(0), _) => None,
        (Some(n), _) => Some(n),
        (None, Format::Table) => Some(1000),
        (None, _) => None,
    };
    let timeout = (input.timeout > 0.0).then(|| Duration::from_secs_f64(input.timeout));
    let outcome = match engine.run(query, language, limit, timeout) {
        Ok(o) => o,
        Err(e) => return bad_query(e),
    };
    for f in &outcome.failed_files {
        tracing::warn!(
            "{}: {} (failed while the query read it; left out, and the query ran again without it)",
            f.path.display(),
            f.reason
        );
    }
    let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    vigil_query::output::write(&mut out, &outcome.batches, format)
        .context("writing the results")?;
    out.flush().context("writing the results")?;
    let rows: usize = outcome.batches.iter().map(|b| b.num_rows()).sum();
    match outcome.stopped {
        Stopped::No => tracing::info!(
            rows,
            seconds = format!("{:.3}", outcome.elapsed.as_secs_f64()),
            files_scanned = outcome.files_scanned,
            files_skipped_by_id_index = outcome.files_pruned,
            "query done"
        ),
        Stopped::Limit(n) => eprintln!("note: only the first {n} rows are shown (--limit; --limit 0 for all)"),
        Stopped::Timeout(t) => eprintln!(
            "note: the query was stopped after {:.1}s (--timeout) with {rows} rows so far; narrow it (a time range: since 1h) or raise --timeout",
            t.as_secs_f64()
        ),
    }
    Ok(ExitCode::SUCCESS)
}
