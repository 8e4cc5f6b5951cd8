//! Stored events read back as the JSON lines the agent wrote, for the retro-hunt: the
//! hunt's own JSON reader and Sigma engine then see what they see in a live log.
//!
//! Timestamps (stored as Arrow timestamps) go back to epoch milliseconds, the OCSF
//! shape; null fields are left out, as the agent leaves out absent ones.

use datafusion::arrow::array::{Array, ArrayRef, ListArray, RecordBatch, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::error::ArrowError;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

/// Rows per batch decoded at a time.
const BATCH_ROWS: usize = 4096;

/// A reader of JSON lines over record batches.
pub struct JsonLines {
    batches: Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>,
    range: Option<(i64, i64)>,
    buf: Vec<u8>,
    pos: usize,
}

impl JsonLines {
    /// JSON lines of the rows of a Parquet file; with `range`, only the rows whose
    /// `time` is in it (epoch ms, inclusive).
    pub fn parquet(path: &Path, range: Option<(i64, i64)>) -> io::Result<JsonLines> {
        let file = std::fs::File::open(path)?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.with_batch_size(BATCH_ROWS).build())
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unreadable Parquet: {e}"),
                )
            })?;
        Ok(JsonLines {
            batches: Box::new(reader),
            range,
            buf: Vec::new(),
            pos: 0,
        })
    }

    /// JSON lines of batches already in memory (the store's log).
    pub fn batches(batches: Vec<RecordBatch>, range: Option<(i64, i64)>) -> JsonLines {
        JsonLines {
            batches: Box::new(batches.into_iter().map(Ok)),
            range,
            buf: Vec::new(),
            pos: 0,
        }
    }

    fn refill(&mut self) -> io::Result<bool> {
        self.buf.clear();
        self.pos = 0;
        let Some(batch) = self.batches.next() else {
            return Ok(false);
        };
        let to_io = |e: ArrowError| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
        let mut batch = epoch_ms(&batch.map_err(to_io)?).map_err(to_io)?;
        if let Some((from, to)) = self.range {
            batch = within(&batch, from, to).map_err(to_io)?;
        }
        let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut self.buf);
        w.write(&batch).map_err(to_io)?;
        w.finish().map_err(to_io)?;
        Ok(true)
    }
}

impl Read for JsonLines {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.buf.len() {
            if !self.refill()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The rows of a batch (times as epoch ms) whose `time` is in `from..=to`.
fn within(b: &RecordBatch, from: i64, to: i64) -> Result<RecordBatch, ArrowError> {
    use datafusion::arrow::array::{BooleanArray, Int64Array};
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

/// The batch with every timestamp (nested ones too) as epoch milliseconds (Int64).
pub fn epoch_ms(b: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    if !b
        .schema()
        .fields()
        .iter()
        .any(|f| has_timestamp(f.data_type()))
    {
        return Ok(b.clone());
    }
    let mut fields = Vec::new();
    let mut cols = Vec::new();
    for (f, c) in b.schema().fields().iter().zip(b.columns()) {
        let c = convert(c)?;
        fields.push(Field::new(f.name(), c.data_type().clone(), f.is_nullable()));
        cols.push(c);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
}

fn has_timestamp(t: &DataType) -> bool {
    match t {
        DataType::Timestamp(_, _) => true,
        DataType::Struct(fs) => fs.iter().any(|f| has_timestamp(f.data_type())),
        DataType::List(f) => has_timestamp(f.data_type()),
        _ => false,
    }
}

fn convert(c: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    if !has_timestamp(c.data_type()) {
        return Ok(Arc::clone(c));
    }
    match c.data_type() {
        DataType::Timestamp(unit, _) => {
            use datafusion::arrow::datatypes::TimeUnit;
            let ms = datafusion::arrow::compute::cast(
                c,
                &DataType::Timestamp(TimeUnit::Millisecond, None),
            )?;
            let _ = unit;
            datafusion::arrow::compute::cast(&ms, &DataType::Int64)
        }
        DataType::Struct(_) => {
            let s = c
                .as_any()
                .downcast_ref::<StructArray>()
                .ok_or_else(|| ArrowError::CastError("not a struct array".into()))?;
            let mut fields = Vec::new();
            let mut cols = Vec::new();
            for (f, child) in s.fields().iter().zip(s.columns()) {
                let child = convert(child)?;
                fields.push(Arc::new(Field::new(
                    f.name(),
                    child.data_type().clone(),
                    f.is_nullable(),
                )));
                cols.push(child);
            }
            Ok(Arc::new(StructArray::try_new(
                fields.into(),
                cols,
                s.nulls().cloned(),
            )?))
        }
        DataType::List(f) => {
            let l = c
                .as_any()
                .downcast_ref::<ListArray>()
                .ok_or_else(|| ArrowError::CastError("not a list array".into()))?;
            let values = convert(l.values())?;
            let field = Arc::new(Field::new(
                f.name(),
                values.data_type().clone(),
                f.is_nullable(),
            ));
            Ok(Arc::new(ListArray::try_new(
                field,
                l.offsets().clone(),
                values,
                l.nulls().cloned(),
            )?))
        }
        _ => Ok(Arc::clone(c)),
    }
}
