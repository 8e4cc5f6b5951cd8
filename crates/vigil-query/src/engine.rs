//! Runs a query (SQL or the pipe language) over [`Sources`] on DataFusion, bounded by a
//! row limit and a timeout.

use crate::compile::{self, Tables};
use crate::error::QueryError;
use crate::lake::{IndexStats, IndexedLake};
use crate::pipe;
use crate::sources::{Skipped, Sources};
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::context::{SQLOptions, SessionContext};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionConfig;
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The language of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// SQL (DataFusion's dialect, dotted paths into nested objects).
    Sql,
    /// The pipe language ([`crate::pipe`]).
    Pipe,
}

impl Language {
    /// The pipe language when the text starts with a table name followed by `|` or by
    /// nothing, SQL otherwise.
    pub fn guess(text: &str) -> Language {
        let t = text.trim_start();
        let word: String = t
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let rest = t[word.len()..].trim_start();
        let sql_start = ["select", "with", "explain", "show", "describe", "values"];
        if sql_start.iter().any(|k| word.eq_ignore_ascii_case(k)) {
            Language::Sql
        } else if !word.is_empty() && (rest.is_empty() || rest.starts_with('|')) {
            Language::Pipe
        } else {
            Language::Sql
        }
    }
}

/// Why a query stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It ran to the end.
    No,
    /// More rows than the limit: the first `limit` are kept.
    Limit(u64),
    /// The timeout passed: the rows so far are kept.
    Timeout(Duration),
}

/// A query's result.
#[derive(Debug)]
pub struct QueryOutcome {
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// The SQL that ran (for the pipe language, what it compiled to).
    pub sql: String,
    /// Whether the rows are all of them.
    pub stopped: Stopped,
    /// Files that failed while this query read them and were left out (it was run
    /// again without them).
    pub failed_files: Vec<Skipped>,
    /// How long it took.
    pub elapsed: Duration,
    /// Parquet files scanned (a file scanned by two parts of a query counts twice).
    pub files_scanned: u64,
    /// Parquet files left out of scans because their id index proved they hold no row
    /// the query asks for (a story or process lookup: [`crate::lake`]).
    pub files_pruned: u64,
}

/// The query engine over a set of sources.
pub struct Engine {
    rt: tokio::runtime::Runtime,
    ctx: SessionContext,
    sources: Sources,
    index_stats: Arc<IndexStats>,
}

impl Engine {
    /// Registers the sources' tables. `threads`: DataFusion's partitions and the
    /// runtime's workers (0: the number of cores).
    pub fn new(sources: Sources, threads: usize) -> Result<Engine, QueryError> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            threads
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_time()
            .build()
            .map_err(QueryError::Runtime)?;
        let engine = Engine {
            rt,
            ctx: new_context(threads),
            sources,
            index_stats: Arc::default(),
        };
        engine.register()?;
        Ok(engine)
    }

    /// The sources (with the files skipped so far).
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    fn register(&self) -> Result<(), QueryError> {
        for (name, table) in &self.sources.tables {
            let _ = self.ctx.deregister_table(name.as_str())?;
            let Some(schema) = table.schema.clone() else {
                continue;
            };
            let lake: Option<Arc<dyn datafusion::catalog::TableProvider>> =
                if table.files.is_empty() {
                    None
                } else {
                    let files = table.files.iter().map(|p| absolute(p)).collect();
                    Some(Arc::new(IndexedLake::new(
                        Arc::clone(&schema),
                        files,
                        Arc::clone(&self.index_stats),
                    )))
                };
            let log: Option<Arc<dyn datafusion::catalog::TableProvider>> =
                if table.batches.is_empty() {
                    None
                } else {
                    let batches = table
                        .batches
                        .iter()
                        .map(|b| conform(b, &schema))
                        .collect::<Result<Vec<_>, _>>()?;
                    Some(Arc::new(MemTable::try_new(
                        Arc::clone(&schema),
                        vec![batches],
                    )?))
                };
            match (lake, log) {
                (Some(t), None) | (None, Some(t)) => {
                    self.ctx.register_table(name.as_str(), t)?;
                }
                (Some(lake), Some(log)) => {
                    let (l, w) = (format!("__lake_{name}"), format!("__log_{name}"));
                    self.ctx.register_table(l.as_str(), lake)?;
                    self.ctx.register_table(w.as_str(), log)?;
                    let view = format!(
                        "CREATE OR REPLACE VIEW {} AS SELECT * FROM {} UNION ALL SELECT * FROM {}",
                        compile::quote_ident(name),
                        compile::quote_ident(&l),
                        compile::quote_ident(&w)
                    );
                    self.rt
                        .block_on(async { self.ctx.sql(&view).await?.collect().await })?;
                }
                (None, None) => {}
            }
        }
        Ok(())
    }

    /// Compiles a query to SQL (the pipe language) or checks it (SQL), with errors
    /// rendered at their position.
    pub fn to_sql(
        &self,
        text: &str,
        language: Language,
    ) -> Result<(String, Option<(i64, i64)>), QueryError> {
        match language {
            Language::Sql => Ok((text.to_string(), None)),
            Language::Pipe => {
                let p = pipe::parse(text).map_err(|e| QueryError::Syntax(e.render(text)))?;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                let c = compile::compile(&p, self, now)
                    .map_err(|e| QueryError::Syntax(e.render(text)))?;
                let range = match (c.from_ms, c.to_ms) {
                    (None, None) => None,
                    (f, t) => Some((f.unwrap_or(i64::MIN), t.unwrap_or(i64::MAX))),
                };
                Ok((c.sql, range))
            }
        }
    }

    /// Runs a query: at most `limit` rows (then [`Stopped::Limit`]), for at most
    /// `timeout` (then [`Stopped::Timeout`] with the rows so far). A Parquet file that
    /// fails while the query reads it is found, left out and reported in
    /// [`QueryOutcome::failed_files`], and the query runs again without it.
    pub fn run(
        &mut self,
        text: &str,
        language: Language,
        limit: Option<u64>,
        timeout: Option<Duration>,
    ) -> Result<QueryOutcome, QueryError> {
        let start = Instant::now();
        let (sql, _range) = self.to_sql(text, language)?;
        let mut failed_files = Vec::new();
        self.index_stats.take();
        loop {
            let deadline = timeout.map(|t| start + t);
            match self.execute(text, &sql, language, limit, deadline) {
                Ok((batches, stopped)) => {
                    let stopped = match stopped {
                        Stopped::Timeout(_) => Stopped::Timeout(timeout.unwrap_or_default()),
                        s => s,
                    };
                    let (files_pruned, files_scanned) = self.index_stats.take();
                    return Ok(QueryOutcome {
                        batches,
                        sql,
                        stopped,
                        failed_files,
                        elapsed: start.elapsed(),
                        files_scanned,
                        files_pruned,
                    });
                }
                Err(Failure::Plan(e)) if !reads_files(&e) => return Err(e),
                Err(Failure::Plan(e) | Failure::Execute(e)) => {
                    let bad = self.find_bad_files();
                    if bad.is_empty() {
                        return Err(e);
                    }
                    for s in &bad {
                        self.sources.remove_file(&s.path, s.reason.clone());
                    }
                    failed_files.extend(bad);
                    self.index_stats.take();
                    self.register()?;
                }
            }
        }
    }

    fn execute(
        &self,
        text: &str,
        sql: &str,
        language: Language,
        limit: Option<u64>,
        deadline: Option<Instant>,
    ) -> Result<(Vec<RecordBatch>, Stopped), Failure> {
        self.rt.block_on(async {
            // Read only: no DDL (an external table over any path), no DML or COPY (files
            // written), no SET: a query reads the sources it was given and nothing else.
            let read_only = SQLOptions::new()
                .with_allow_ddl(false)
                .with_allow_dml(false)
                .with_allow_statements(false);
            let df = self
                .ctx
                .sql_with_options(sql, read_only)
                .await
                .map_err(|e| Failure::Plan(self.explain_error(text, sql, language, e)))?;
            let df = match limit {
                Some(n) => df
                    .limit(0, Some(n as usize + 1))
                    .map_err(|e| Failure::Plan(e.into()))?,
                None => df,
            };
            let mut stream = df
                .execute_stream()
                .await
                .map_err(|e| Failure::Plan(self.explain_error(text, sql, language, e)))?;
            let mut batches = Vec::new();
            let mut rows = 0u64;
            loop {
                let next = match deadline {
                    Some(d) => match tokio::time::timeout_at(d.into(), stream.next()).await {
                        Ok(n) => n,
                        Err(_) => return Ok((batches, Stopped::Timeout(Duration::ZERO))),
                    },
                    None => stream.next().await,
                };
                let Some(batch) = next else { break };
                let batch = batch.map_err(|e| Failure::Execute(e.into()))?;
                rows += batch.num_rows() as u64;
                batches.push(batch);
                if let Some(n) = limit {
                    if rows > n {
                        let mut keep = n;
                        let mut out = Vec::new();
                        for b in batches {
                            let take = (b.num_rows() as u64).min(keep);
                            if take > 0 {
                                out.push(b.slice(0, take as usize));
                            }
                            keep -= take;
                        }
                        return Ok((out, Stopped::Limit(n)));
                    }
                }
            }
            Ok((batches, Stopped::No))
        })
    }

    /// A planning error made readable: a missing field or table gets "did you mean" and a
    /// caret, a SQL syntax error its position.
    fn explain_error(
        &self,
        text: &str,
        sql: &str,
        language: Language,
        e: DataFusionError,
    ) -> QueryError {
        let msg = e.strip_backtrace();
        let shown = if language == Language::Sql { text } else { sql };
        if let Some(err) = crate::error_pos::explain(self, shown, &msg) {
            return QueryError::Syntax(err);
        }
        QueryError::Engine(e)
    }

    /// Reads every Parquet file of the sources to the end; the ones that fail, with why.
    fn find_bad_files(&self) -> Vec<Skipped> {
        let mut bad = Vec::new();
        for t in self.sources.tables.values() {
            for path in &t.files {
                if let Err(reason) = read_all(path) {
                    bad.push(Skipped {
                        path: path.clone(),
                        reason,
                    });
                }
            }
        }
        bad
    }

    /// The table names registered.
    pub fn table_names(&self) -> Vec<String> {
        self.sources.tables.keys().cloned().collect()
    }
}

/// Whether an error can come from a file the query read (rather than from the query).
fn reads_files(e: &QueryError) -> bool {
    match e {
        QueryError::Engine(e) => matches!(
            e.find_root(),
            DataFusionError::ParquetError(_)
                | DataFusionError::ArrowError(_, _)
                | DataFusionError::IoError(_)
                | DataFusionError::ObjectStore(_)
                | DataFusionError::External(_)
        ),
        QueryError::Arrow(_) | QueryError::Io { .. } => true,
        _ => false,
    }
}

enum Failure {
    Plan(QueryError),
    Execute(QueryError),
}

impl Tables for Engine {
    fn table_schema(&self, name: &str) -> Option<Schema> {
        self.sources
            .tables
            .get(name)
            .and_then(|t| t.schema.as_ref())
            .map(|s| s.as_ref().clone())
    }

    fn table_names(&self) -> Vec<String> {
        Engine::table_names(self)
    }

    fn query_schema(&self, sql: &str) -> Result<Schema, String> {
        self.rt.block_on(async {
            let plan = self
                .ctx
                .state()
                .create_logical_plan(sql)
                .await
                .map_err(|e| e.strip_backtrace())?;
            Ok(plan.schema().as_arrow().clone())
        })
    }
}

fn new_context(threads: usize) -> SessionContext {
    let mut config = SessionConfig::new()
        .with_target_partitions(threads)
        .with_information_schema(true);
    let opts = config.options_mut();
    // Late materialization: a selective filter (one story, one process) decodes the other
    // columns only for the rows it keeps; page indexes and bloom filters prune the rest.
    opts.execution.parquet.pushdown_filters = true;
    opts.execution.parquet.reorder_filters = true;
    // No statistics gathered at planning: that reads every file's footer once more before
    // the scan reads it again, and an OCSF table's footers are wide (hundreds of leaf
    // columns); measured on 10 million events, planning cost more than the scan.
    opts.execution.collect_statistics = false;
    opts.sql_parser.enable_ident_normalization = false;
    // No footer cache: a query process reads each file's footer once, and caching the
    // wide footers of hundreds of files costs their size computation, evictions past
    // the cache's limit and freeing them all at exit (7-9% of the CPU time of a count
    // over every file of 10 million events, 412 files).
    let cache = CacheManagerConfig::default().with_metadata_cache_limit(0);
    match RuntimeEnvBuilder::new()
        .with_cache_manager(cache)
        .build_arc()
    {
        Ok(rt) => SessionContext::new_with_config_rt(config, rt),
        Err(_) => SessionContext::new_with_config(config),
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// A batch with the table's (merged) schema: missing columns null, same-named columns
/// cast.
fn conform(b: &RecordBatch, schema: &Arc<Schema>) -> Result<RecordBatch, DataFusionError> {
    if b.schema().as_ref() == schema.as_ref() {
        return Ok(b.clone());
    }
    let mut cols = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        let col = match b.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Arc::clone(c),
            Some(c) => datafusion::arrow::compute::cast(c, f.data_type())?,
            None => datafusion::arrow::array::new_null_array(f.data_type(), b.num_rows()),
        };
        cols.push(col);
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), cols)?)
}

/// Decodes a whole Parquet file; the first error, if any.
fn read_all(path: &Path) -> Result<(), String> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| format!("unreadable Parquet: {e}"))?
        .build()
        .map_err(|e| format!("unreadable Parquet: {e}"))?;
    for b in reader {
        b.map_err(|e| format!("unreadable data: {e}"))?;
    }
    Ok(())
}
