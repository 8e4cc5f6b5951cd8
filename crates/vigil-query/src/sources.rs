//! What a query reads: Parquet files and JSON lines, gathered into one table per OCSF
//! class.
//!
//! Parquet files are grouped by the `class=NAME` directory they sit in (the store's
//! layout), else by their file name. Each file's footer is read first: a file whose
//! footer is unreadable is reported in [`Sources::skipped`] and left out, and the rest
//! is still queried. JSON lines are split by `class_name` into one table per class, the
//! schema of each inferred from all its lines.

use crate::error::QueryError;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::json::reader::{infer_json_schema_from_iterator, ReaderBuilder};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::parquet_to_arrow_schema;
use datafusion::parquet::file::metadata::ParquetMetaDataReader;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file left out of a query, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

/// One table: Parquet files and in-memory batches (from JSON lines or the store's log)
/// with one schema.
#[derive(Debug, Default)]
pub struct Table {
    /// Parquet files.
    pub files: Vec<PathBuf>,
    /// Rows already in memory.
    pub batches: Vec<RecordBatch>,
    /// The schema (merged across the files and batches).
    pub schema: Option<SchemaRef>,
}

/// The inputs of a query, by table name.
#[derive(Debug, Default)]
pub struct Sources {
    /// Tables by name.
    pub tables: BTreeMap<String, Table>,
    /// Files left out, with the reason.
    pub skipped: Vec<Skipped>,
}

/// `Process Activity` -> `process_activity`, the store's table name of a class.
pub fn snake_case(class_name: &str) -> String {
    let mut out = String::with_capacity(class_name.len());
    for c in class_name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

impl Sources {
    /// Adds files and directories (searched recursively): `.parquet` files, and
    /// `.jsonl`/`.ndjson`/`.json` files of one JSON object per line.
    pub fn add_path(&mut self, path: &Path) -> Result<(), QueryError> {
        let meta = std::fs::metadata(path).map_err(|source| QueryError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|source| QueryError::Io {
                    path: path.to_path_buf(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for e in entries {
                let is_dir = e.is_dir();
                let ext = e.extension().and_then(|x| x.to_str()).unwrap_or("");
                if is_dir || matches!(ext, "parquet" | "jsonl" | "ndjson" | "json") {
                    self.add_path(&e)?;
                }
            }
            return Ok(());
        }
        match path.extension().and_then(|x| x.to_str()) {
            Some("parquet") => {
                let table = table_of_parquet(path);
                self.add_parquet(&table, path);
                Ok(())
            }
            _ => self.add_jsonl(path),
        }
    }

    /// Adds one Parquet file to `table` if its footer reads; else records it as skipped.
    pub fn add_parquet(&mut self, table: &str, path: &Path) {
        match read_footer(path) {
            Ok(schema) => {
                let t = self.tables.entry(table.to_string()).or_default();
                t.files.push(path.to_path_buf());
                merge_schema(t, schema);
            }
            Err(reason) => self.skipped.push(Skipped {
                path: path.to_path_buf(),
                reason,
            }),
        }
    }

    /// Adds a Parquet file whose schema is known without reading it (a store's file: the
    /// store writes every file of a table with the table's schema). Its footer is read
    /// once, when a query scans it; a file that fails then is named and left out by the
    /// engine, which runs the query again without it.
    ///
    /// Only its frame is checked now (magic at both ends, a footer length that fits in
    /// the file): a file that fails it is skipped and named (a bad footer length would
    /// otherwise reach the Parquet reader's arithmetic).
    pub fn add_parquet_with_schema(&mut self, table: &str, path: &Path, schema: SchemaRef) {
        if let Err(reason) = check_frame(path) {
            self.skipped.push(Skipped {
                path: path.to_path_buf(),
                reason,
            });
            return;
        }
        let t = self.tables.entry(table.to_string()).or_default();
        t.files.push(path.to_path_buf());
        merge_schema(t, schema);
    }

    /// Adds rows already in memory to `table`.
    pub fn add_batches(&mut self, table: &str, batches: Vec<RecordBatch>) {
        let t = self.tables.entry(table.to_string()).or_default();
        for b in &batches {
            merge_schema(t, b.schema());
        }
        t.batches.extend(batches);
    }

    /// Reads a file of JSON lines into one table per `class_name`.
    pub fn add_jsonl(&mut self, path: &Path) -> Result<(), QueryError> {
        let io = |source| QueryError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut by_class: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(io)?;
            if line.trim().is_empty() {
                continue;
            }
            let bad = |reason: String| QueryError::Json {
                path: path.to_path_buf(),
                line: i + 1,
                reason,
            };
            let v: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
            let class = match v.get("class_name").and_then(|c| c.as_str()) {
                // OCSF's name for 1001 is not its caption's (the store's table name).
                Some(_) if v.get("class_uid").and_then(serde_json::Value::as_i64) == Some(1001) => {
                    "file_activity".to_string()
                }
                Some(c) => snake_case(c),
                None if v.is_object() => "events".to_string(),
                None => return Err(bad("not a JSON object".into())),
            };
            by_class.entry(class).or_default().push(v);
        }
        for (class, rows) in by_class {
            let schema = infer_json_schema_from_iterator(rows.iter().map(Ok)).map_err(|e| {
                QueryError::Json {
                    path: path.to_path_buf(),
                    line: 0,
                    reason: format!("the {class} lines have no common shape: {e}"),
                }
            })?;
            let schema = Arc::new(schema);
            let mut decoder = ReaderBuilder::new(Arc::clone(&schema))
                .with_batch_size(8192)
                .build_decoder()?;
            let mut batches = Vec::new();
            for chunk in rows.chunks(8192) {
                decoder.serialize(chunk)?;
                if let Some(b) = decoder.flush()? {
                    batches.push(b);
                }
            }
            self.add_batches(&class, batches);
        }
        Ok(())
    }

    /// Leaves a file out (it failed while a query read it).
    pub fn remove_file(&mut self, path: &Path, reason: String) {
        for t in self.tables.values_mut() {
            t.files.retain(|p| p != path);
        }
        self.tables
            .retain(|_, t| !t.files.is_empty() || !t.batches.is_empty());
        self.skipped.push(Skipped {
            path: path.to_path_buf(),
            reason,
        });
    }
}

fn merge_schema(t: &mut Table, schema: SchemaRef) {
    t.schema = Some(match t.schema.take() {
        None => schema,
        Some(old) if old == schema => old,
        Some(old) => match Schema::try_merge([old.as_ref().clone(), schema.as_ref().clone()]) {
            Ok(m) => Arc::new(m),
            Err(_) => old,
        },
    });
}

/// The table of a Parquet file: the `class=NAME` directory above it, else its stem.
fn table_of_parquet(path: &Path) -> String {
    for a in path.ancestors().skip(1) {
        if let Some(name) = a.file_name().and_then(|n| n.to_str()) {
            if let Some(class) = name.strip_prefix("class=") {
                return class.to_string();
            }
        }
    }
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("parquet");
    snake_case(stem)
}

/// Checks a Parquet file's frame without parsing its metadata: `PAR1` at the start and
/// the end, and a footer length that fits between them.
pub fn check_frame(path: &Path) -> Result<(), String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    if len < 12 {
        return Err(format!("not a Parquet file ({len} bytes)"));
    }
    let mut head = [0u8; 4];
    let mut tail = [0u8; 8];
    file.read_exact(&mut head)
        .and_then(|()| file.seek(SeekFrom::End(-8)).map(drop))
        .and_then(|()| file.read_exact(&mut tail))
        .map_err(|e| e.to_string())?;
    if &head != b"PAR1" || &tail[4..] != b"PAR1" {
        return Err("not a Parquet file (no PAR1 magic at both ends)".into());
    }
    let footer = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer + 12 > len {
        return Err(format!(
            "unreadable Parquet footer: its length {footer} does not fit in the file ({len} bytes)"
        ));
    }
    Ok(())
}

/// Reads a Parquet file's footer: its Arrow schema, or what is wrong.
pub fn read_footer(path: &Path) -> Result<SchemaRef, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let meta = ParquetMetaDataReader::new()
        .parse_and_finish(&file)
        .map_err(|e| format!("unreadable Parquet footer: {e}"))?;
    let fm = meta.file_metadata();
    let schema = parquet_to_arrow_schema(fm.schema_descr(), fm.key_value_metadata())
        .map_err(|e| format!("unreadable Parquet schema: {e}"))?;
    Ok(Arc::new(schema))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_become_table_names() {
        assert_eq!(snake_case("Process Activity"), "process_activity");
        assert_eq!(snake_case("File System Activity"), "file_system_activity");
        assert_eq!(snake_case("DNS Activity"), "dns_activity");
        assert_eq!(snake_case("Detection Finding"), "detection_finding");
    }

    #[test]
    fn parquet_tables_follow_the_class_directory() {
        assert_eq!(
            table_of_parquet(Path::new(
                "/s/lake/class=dns_activity/date=2026-01-01/hour=03/1-9.parquet"
            )),
            "dns_activity"
        );
        assert_eq!(
            table_of_parquet(Path::new("/tmp/Process Activity.parquet")),
            "process_activity"
        );
    }
}
