//! Stored events read back as the JSON lines the agent wrote, for the retro-hunt: the
//! hunt's own JSON reader and Sigma engine then see what they see in a live log.
//!
//! Each row goes through the store's own [`vigil_store::write_row_json`] (the text of
//! [`vigil_store::row_to_json`]'s value, written straight from the columns): timestamps back to
//! epoch milliseconds (the OCSF shape), absent fields left out as the agent leaves them
//! out, free-form objects stored as JSON text parsed back, the store's sequence column
//! dropped.

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::io::{self, Read};
use std::path::Path;

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
        let mut batch = batch.map_err(to_io)?;
        if let Some((from, to)) = self.range {
            batch = within(&batch, from, to).map_err(to_io)?;
        }
        for row in 0..batch.num_rows() {
            vigil_store::write_row_json(&batch, row, &mut self.buf);
            self.buf.push(b'\n');
        }
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
