//! A table of Parquet files that leaves out, before the scan, the files whose id index
//! ([`vigil_store::ids`]) says they cannot hold a row the query asks for: a lookup of one
//! story or process (`metadata.correlation_uid = '...'`, `actor.process.uid IN (...)`)
//! opens the few files that may hold it, not every file's footer.
//!
//! Pruning is only ever on what the index proves: a filter it does not understand, a
//! column it does not cover, a file with no index or a damaged one all keep the file.
//! The filters stay in the plan (`Inexact`), so the rows are filtered as before; the
//! index only saves reading files.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{project_schema, ScalarValue};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::Result;
use datafusion::logical_expr::{
    BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::ExecutionPlan;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use vigil_store::ids::{IdIndex, INDEXED_COLUMNS};

/// How many files the id indexes left out, and how many were scanned, over the scans
/// of a query (shared by every table of an engine).
#[derive(Debug, Default)]
pub struct IndexStats {
    /// Files left out because their index proved they hold no matching row.
    pub pruned: AtomicU64,
    /// Files scanned.
    pub scanned: AtomicU64,
}

impl IndexStats {
    /// (pruned, scanned) so far, and zero again.
    pub fn take(&self) -> (u64, u64) {
        (
            self.pruned.swap(0, Ordering::Relaxed),
            self.scanned.swap(0, Ordering::Relaxed),
        )
    }
}

/// Parquet files of one schema, pruned by their id indexes at each scan.
#[derive(Debug)]
pub struct IndexedLake {
    schema: SchemaRef,
    files: Vec<PathBuf>,
    stats: Arc<IndexStats>,
}

impl IndexedLake {
    /// A table of `files` (absolute paths), read with `schema`.
    pub fn new(schema: SchemaRef, files: Vec<PathBuf>, stats: Arc<IndexStats>) -> IndexedLake {
        IndexedLake {
            schema,
            files,
            stats,
        }
    }

    /// The files a scan with `filters` (a conjunction) must read. The filters are read
    /// once into what the indexes can answer; each file's index is then asked.
    fn files_for(&self, filters: &[Expr]) -> Vec<PathBuf> {
        let asks: Vec<Ask> = filters.iter().filter_map(Ask::of).collect();
        if asks.is_empty() {
            return self.files.clone();
        }
        self.files
            .iter()
            .filter(|f| match IdIndex::read_for(f) {
                Some(index) => asks.iter().all(|a| a.may_hold(&index) != Some(false)),
                None => true,
            })
            .cloned()
            .collect()
    }
}

/// A listing table over exactly `files`.
fn listing_table(files: &[PathBuf], schema: SchemaRef) -> Result<ListingTable> {
    let urls = files
        .iter()
        .map(|p| ListingTableUrl::parse(p.to_string_lossy()))
        .collect::<Result<Vec<_>, _>>()?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    ListingTable::try_new(config)
}

#[async_trait::async_trait]
impl TableProvider for IndexedLake {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Every filter comes to `scan` (to prune files and the Parquet row groups) and is
        // still applied to the rows after it.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let files = self.files_for(filters);
        let pruned = (self.files.len() - files.len()) as u64;
        self.stats.pruned.fetch_add(pruned, Ordering::Relaxed);
        self.stats
            .scanned
            .fetch_add(files.len() as u64, Ordering::Relaxed);
        if files.is_empty() {
            let schema = project_schema(&self.schema, projection)?;
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        listing_table(&files, Arc::clone(&self.schema))?
            .scan(state, projection, filters, limit)
            .await
    }
}

/// The dotted column path an expression reads (`metadata.correlation_uid`), through
/// field accesses of struct columns and casts between string types.
fn column_path(e: &Expr) -> Option<String> {
    match e {
        Expr::Column(c) => Some(c.name.clone()),
        Expr::Cast(c) if is_string_type(c.field.data_type()) => column_path(&c.expr),
        Expr::TryCast(c) if is_string_type(c.field.data_type()) => column_path(&c.expr),
        // `get_field(base, 'a', 'b', ...)`: DataFusion folds a chain of field accesses
        // into one call.
        Expr::ScalarFunction(f) if f.func.name() == "get_field" && f.args.len() >= 2 => {
            let mut path = column_path(&f.args[0])?;
            for name in &f.args[1..] {
                path.push('.');
                path.push_str(string_literal(name)?);
            }
            Some(path)
        }
        _ => None,
    }
}

fn is_string_type(t: &datafusion::arrow::datatypes::DataType) -> bool {
    use datafusion::arrow::datatypes::DataType;
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn string_literal(e: &Expr) -> Option<&str> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Some(s),
        Expr::Cast(c) if is_string_type(c.field.data_type()) => string_literal(&c.expr),
        _ => None,
    }
}

/// `path = 'literal'` (either way round) on an indexed column: the path and the value.
fn indexed_equality(left: &Expr, right: &Expr) -> Option<(String, String)> {
    let (path, value) = match (column_path(left), string_literal(right)) {
        (Some(p), Some(v)) => (p, v),
        _ => (column_path(right)?, string_literal(left)?),
    };
    INDEXED_COLUMNS
        .contains(&path.as_str())
        .then(|| (path, value.to_string()))
}

/// What a filter asks that an id index can answer: a row whose indexed id is a value,
/// or all / any of several such asks.
#[derive(Debug)]
enum Ask {
    Id { path: String, value: String },
    All(Vec<Ask>),
    Any(Vec<Ask>),
}

impl Ask {
    /// What `e` asks of the indexes; `None` when they cannot answer it (a row may match
    /// `e` whatever they say).
    fn of(e: &Expr) -> Option<Ask> {
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
                Operator::Eq => {
                    let (path, value) = indexed_equality(left, right)?;
                    Some(Ask::Id { path, value })
                }
                // False when either side is: one side the indexes answer is enough.
                Operator::And => match (Ask::of(left), Ask::of(right)) {
                    (Some(a), Some(b)) => Some(Ask::All(vec![a, b])),
                    (a, b) => a.or(b),
                },
                // False only when both sides are.
                Operator::Or => Some(Ask::Any(vec![Ask::of(left)?, Ask::of(right)?])),
                _ => None,
            },
            Expr::InList(l) if !l.negated => {
                let path = column_path(&l.expr)?;
                if !INDEXED_COLUMNS.contains(&path.as_str()) {
                    return None;
                }
                let ids = l
                    .list
                    .iter()
                    .map(|item| {
                        Some(Ask::Id {
                            path: path.clone(),
                            value: string_literal(item)?.to_string(),
                        })
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(Ask::Any(ids))
            }
            _ => None,
        }
    }

    /// Whether a file with `index` may hold a row that answers: `Some(false)` only when
    /// the index proves no row can; `None` when it cannot tell.
    fn may_hold(&self, index: &IdIndex) -> Option<bool> {
        match self {
            Ask::Id { path, value } => index.may_hold(path, value),
            Ask::All(asks) => asks
                .iter()
                .any(|a| a.may_hold(index) == Some(false))
                .then_some(false),
            Ask::Any(asks) => asks
                .iter()
                .all(|a| a.may_hold(index) == Some(false))
                .then_some(false),
        }
    }
}
