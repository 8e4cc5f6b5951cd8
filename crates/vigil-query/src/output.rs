//! Query results written as an aligned table, JSON lines or CSV.
//!
//! JSON lines keep nested objects nested (the OCSF shape); CSV and the table flatten them
//! into dotted columns (`actor.process.file.name`), lists shown as `[a, b]`.

use datafusion::arrow::array::{Array, ArrayRef, StringBuilder, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use std::io::Write;
use std::sync::Arc;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns, nested objects flattened.
    Table,
    /// One JSON object per row, nested objects kept.
    Jsonl,
    /// Comma-separated values with a header, nested objects flattened.
    Csv,
}

/// Writes `batches` to `out` in `format`.
pub fn write(
    out: &mut dyn Write,
    batches: &[RecordBatch],
    format: Format,
) -> Result<(), ArrowError> {
    match format {
        Format::Jsonl => {
            let mut w = datafusion::arrow::json::LineDelimitedWriter::new(out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()
        }
        Format::Csv => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            for b in batches {
                w.write(&flatten(b)?)?;
            }
            Ok(())
        }
        Format::Table => {
            let flat = batches.iter().map(flatten).collect::<Result<Vec<_>, _>>()?;
            if flat.iter().all(|b| b.num_rows() == 0) {
                return Ok(());
            }
            let table = datafusion::arrow::util::pretty::pretty_format_batches(&flat)?;
            writeln!(out, "{table}")?;
            Ok(())
        }
    }
}

/// The batch with nested structs spread into dotted columns and lists (and other
/// non-scalar columns) as text.
pub fn flatten(b: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let mut fields = Vec::new();
    let mut cols = Vec::new();
    for (f, c) in b.schema().fields().iter().zip(b.columns()) {
        spread(f.name(), c, None, &mut fields, &mut cols)?;
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
}

fn spread(
    name: &str,
    col: &ArrayRef,
    parent_nulls: Option<&datafusion::arrow::buffer::NullBuffer>,
    fields: &mut Vec<Field>,
    cols: &mut Vec<ArrayRef>,
) -> Result<(), ArrowError> {
    match col.data_type() {
        DataType::Struct(_) => {
            let s = col.as_any().downcast_ref::<StructArray>().ok_or_else(|| {
                ArrowError::InvalidArgumentError(format!("{name}: not a struct array"))
            })?;
            let nulls = datafusion::arrow::buffer::NullBuffer::union(parent_nulls, s.nulls());
            for (child_field, child) in s.fields().iter().zip(s.columns()) {
                spread(
                    &format!("{name}.{}", child_field.name()),
                    child,
                    nulls.as_ref(),
                    fields,
                    cols,
                )?;
            }
        }
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::Map(_, _)
        | DataType::FixedSizeList(_, _) => {
            let opts = FormatOptions::default();
            let fmt = ArrayFormatter::try_new(col.as_ref(), &opts)?;
            let mut out = StringBuilder::new();
            for i in 0..col.len() {
                if col.is_null(i) || parent_nulls.is_some_and(|n| n.is_null(i)) {
                    out.append_null();
                } else {
                    out.append_value(fmt.value(i).to_string());
                }
            }
            fields.push(Field::new(name, DataType::Utf8, true));
            cols.push(Arc::new(out.finish()));
        }
        _ => {
            let col = match parent_nulls {
                Some(n) if n.null_count() > 0 => {
                    let merged = datafusion::arrow::buffer::NullBuffer::union(Some(n), col.nulls());
                    let data = col.to_data().into_builder().nulls(merged).build()?;
                    datafusion::arrow::array::make_array(data)
                }
                _ => Arc::clone(col),
            };
            fields.push(Field::new(name, col.data_type().clone(), true));
            cols.push(col);
        }
    }
    Ok(())
}
