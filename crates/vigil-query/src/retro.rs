//! Stored events for the retro-hunt: each batch of a Parquet file (or of the store's log)
//! handed to the hunt as records already parsed ([`vigil_hunt::Rows`]), matched straight
//! on their columns ([`vigil_store::RowBatch`]). A row's JSON text, the line the agent
//! wrote ([`vigil_store::write_row_json`]: times as epoch milliseconds, absent fields
//! left out, free-form objects parsed back, the store's sequence column dropped), is
//! written only for the rows a rule fires on.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::error::ArrowError;
use std::io;
use std::path::Path;
use vigil_event::Event;
use vigil_hunt::{Rows, RowsIter};
use vigil_store::RowBatch;

/// Rows per batch decoded at a time.
const BATCH_ROWS: usize = 4096;

/// One batch of stored rows, for the hunt.
struct StoredRows {
    rows: RowBatch,
    /// The bytes of the input it stands for.
    bytes: u64,
}

impl Rows for StoredRows {
    fn len(&self) -> usize {
        self.rows.num_rows()
    }

    fn bytes(&self) -> u64 {
        self.bytes
    }

    fn with_event(&self, i: usize, lineage: bool, f: &mut dyn FnMut(&dyn Event)) {
        f(&self.rows.event(i, lineage))
    }

    fn write_json(&self, i: usize, out: &mut Vec<u8>) {
        vigil_store::write_row_json(self.rows.batch(), i, out)
    }
}

fn stored(
    batch: Result<RecordBatch, ArrowError>,
    range: Option<(i64, i64)>,
    bytes_per_row: f64,
) -> io::Result<Box<dyn Rows>> {
    let to_io = |e: ArrowError| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
    let mut batch = batch.map_err(to_io)?;
    let read = batch.num_rows();
    if let Some((from, to)) = range {
        batch = within(&batch, from, to).map_err(to_io)?;
    }
    Ok(Box::new(StoredRows {
        rows: RowBatch::new(batch),
        bytes: (read as f64 * bytes_per_row) as u64,
    }))
}

/// The rows of a Parquet file, batch by batch; with `range`, only the rows whose `time`
/// is in it (epoch ms, inclusive). `schema`: the store's schema of the file's table, whose
/// field metadata (which text columns hold JSON) the rows are read with; the store's
/// files do not repeat it (they carry the Parquet schema only). A file whose columns are
/// not that schema's (written by another version) is read with its own.
pub fn parquet(
    path: &Path,
    range: Option<(i64, i64)>,
    schema: Option<SchemaRef>,
) -> io::Result<RowsIter> {
    let size = std::fs::metadata(path)?.len();
    let unreadable = |e: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unreadable Parquet: {e}"),
        )
    };
    let builder = vigil_store::read::open_with_schema(path, schema.as_ref()).map_err(unreadable)?;
    let rows = builder.metadata().file_metadata().num_rows().max(1);
    let per_row = size as f64 / rows as f64;
    let reader = builder
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| unreadable(e.to_string()))?;
    Ok(Box::new(reader.map(move |b| stored(b, range, per_row))))
}

/// The rows of batches already in memory (the store's log), whose size in memory is
/// `bytes`.
pub fn batches(batches: Vec<RecordBatch>, range: Option<(i64, i64)>, bytes: u64) -> RowsIter {
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let per_row = bytes as f64 / rows.max(1) as f64;
    Box::new(
        batches
            .into_iter()
            .map(move |b| stored(Ok(b), range, per_row)),
    )
}

/// The rows of a batch (times as epoch ms) whose `time` is in `from..=to`.
fn within(b: &RecordBatch, from: i64, to: i64) -> Result<RecordBatch, ArrowError> {
    use datafusion::arrow::array::{Array, BooleanArray, Int64Array};
    let Some(t) = b.column_by_name("time") else {
        return Ok(b.clone());
    };
    let t = datafusion::arrow::compute::cast(t, &DataType::Int64)?;
    let t = t
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| ArrowError::CastError("time is not a number".into()))?;
    let keep: BooleanArray = t
        .iter()
        .map(|v| Some(v.is_some_and(|v| v >= from && v <= to)))
        .collect();
    datafusion::arrow::compute::filter_record_batch(b, &keep)
}
