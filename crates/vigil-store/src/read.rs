//! Reading a store: the Parquet files of a class (by time range, from the partitions),
//! and the events still in the log as Arrow batches of the same schema.

use crate::compact::classify;
use crate::convert::BatchBuilder;
use crate::layout::{self, Hour};
use crate::schema::{Class, CLASSES};
use crate::wal;
use crate::Problem;
use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// One Parquet file of the lake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeFile {
    /// The file.
    pub path: PathBuf,
    /// Its class's table name.
    pub table: &'static str,
    /// The UTC hour of its events.
    pub hour: Hour,
    /// The smallest and largest sequence in it (from its name).
    pub first: u64,
    /// See `first`.
    pub last: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

fn dir_entries(dir: &Path, problems: &mut Vec<Problem>) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            for e in rd {
                match e {
                    Ok(e) => {
                        if let Some(n) = e.file_name().to_str() {
                            out.push((n.to_string(), e.path()));
                        }
                    }
                    Err(e) => problems.push(Problem::io(dir, e)),
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => problems.push(Problem::io(dir, e)),
    }
    out.sort();
    out
}

/// The Parquet files of `class` whose hour overlaps `range` (ms since the epoch,
/// `from..until`; `None`: all), oldest hour first. Unreadable directories are reported
/// in `problems`; temporary files of a compaction or merge under way are left out, and
/// so are the inputs of a finished merge still there ([`superseded`]: see
/// the `merge` module).
pub fn lake_files(
    root: &Path,
    class: &'static Class,
    range: Option<(i64, i64)>,
    problems: &mut Vec<Problem>,
) -> Vec<LakeFile> {
    let mut out = Vec::new();
    let cdir = layout::lake_dir(root).join(format!("class={}", class.table));
    for (h, hpath) in partition_dirs(&cdir, range, problems) {
        let files = list_partition(&hpath, class, h, problems);
        let gone = superseded(&files);
        out.extend(
            files
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !gone.contains(i))
                .map(|(_, f)| f),
        );
    }
    out
}

/// The hours of a class's partitions (under its directory `cdir`) overlapping `range`,
/// oldest first.
pub fn partitions(
    cdir: &Path,
    range: Option<(i64, i64)>,
    problems: &mut Vec<Problem>,
) -> Vec<Hour> {
    partition_dirs(cdir, range, problems)
        .into_iter()
        .map(|(h, _)| h)
        .collect()
}

fn partition_dirs(
    cdir: &Path,
    range: Option<(i64, i64)>,
    problems: &mut Vec<Problem>,
) -> Vec<(Hour, PathBuf)> {
    let mut out = Vec::new();
    for (date, dpath) in dir_entries(cdir, problems) {
        for (hour, hpath) in dir_entries(&dpath, problems) {
            let Some(h) = Hour::parse(&date, &hour) else {
                continue;
            };
            if let Some((from, until)) = range {
                if h.start_ms() + 3_600_000 <= from || h.start_ms() >= until {
                    continue;
                }
            }
            out.push((h, hpath));
        }
    }
    out
}

/// Every Parquet file in one partition directory (of `class` and `hour`), by first
/// sequence, inputs of a finished merge included.
pub fn list_partition(
    dir: &Path,
    class: &'static Class,
    hour: Hour,
    problems: &mut Vec<Problem>,
) -> Vec<LakeFile> {
    let mut out = Vec::new();
    for (name, path) in dir_entries(dir, problems) {
        let Some((first, last)) = layout::parquet_range(&name) else {
            continue;
        };
        let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        out.push(LakeFile {
            path,
            table: class.table,
            hour,
            first,
            last,
            bytes,
        });
    }
    out.sort_by_key(|f| (f.first, f.last));
    out
}

/// The indices of the files of one partition whose sequence range lies within another
/// file's: inputs of a merge whose merged file is in place (the naming rule of
/// the `merge` module), never to be read.
pub fn superseded(files: &[LakeFile]) -> Vec<usize> {
    (0..files.len())
        .filter(|&i| {
            let f = &files[i];
            files.iter().enumerate().any(|(j, g)| {
                j != i
                    && g.first <= f.first
                    && f.last <= g.last
                    && (g.first, g.last) != (f.first, f.last)
            })
        })
        .collect()
}

/// Every batch of a Parquet file; a file that cannot be read is a [`Problem`] naming it
/// and what is wrong. A file of the lake (under a `class=<table>` directory) is read with
/// its class's schema ([`open_with_schema`]).
pub fn read_parquet(path: &Path) -> Result<Vec<RecordBatch>, Problem> {
    let bad = |what: String| Problem {
        path: path.to_path_buf(),
        offset: None,
        what,
    };
    let reader = open_with_schema(path, class_schema_of(path).as_ref())
        .and_then(|b| b.build().map_err(|e| e.to_string()))
        .map_err(bad)?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))
}

/// A reader of the Parquet file at `path` whose batches have `schema` (a class's: with
/// the field metadata that marks JSON text columns, which the lake's files do not carry,
/// holding the Parquet schema only), or the file's own schema when it has other columns
/// than `schema` (a file written by another version) or `schema` is `None`.
pub fn open_with_schema(
    path: &Path,
    schema: Option<&arrow_schema::SchemaRef>,
) -> Result<ParquetRecordBatchReaderBuilder<File>, String> {
    use parquet::arrow::arrow_reader::ArrowReaderOptions;
    let open = || File::open(path).map_err(|e| e.to_string());
    if let Some(schema) = schema {
        let options = ArrowReaderOptions::new().with_schema(schema.clone());
        if let Ok(b) = ParquetRecordBatchReaderBuilder::try_new_with_options(open()?, options) {
            return Ok(b);
        }
    }
    ParquetRecordBatchReaderBuilder::try_new(open()?).map_err(|e| e.to_string())
}

/// The schema of the class whose partition directory (`class=<table>`) holds `path`.
fn class_schema_of(path: &Path) -> Option<arrow_schema::SchemaRef> {
    path.ancestors()
        .filter_map(|d| d.file_name()?.to_str()?.strip_prefix("class="))
        .find_map(crate::schema_of)
}

/// What a query sees of a store at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Per table: its Parquet files (within the range asked for).
    pub files: BTreeMap<&'static str, Vec<LakeFile>>,
    /// Per table: the events still in the log (not yet in a listed file), as batches of
    /// the table's schema ([`crate::schema_of`]).
    pub log: BTreeMap<&'static str, Vec<RecordBatch>>,
    /// What could not be read, and was skipped.
    pub problems: Vec<Problem>,
}

/// Everything written to the store under `root` so far, for `tables` (`None`: all)
/// within `range` (ms, `from..until`; `None`: all time).
///
/// The log is read before the lake is listed, and a log event whose sequence lies in a
/// listed file's range is left out: an event compacted meanwhile (by an agent writing
/// the store) is seen once, never twice nor not at all.
pub fn snapshot(root: &Path, tables: Option<&[&str]>, range: Option<(i64, i64)>) -> Snapshot {
    let mut snap = Snapshot::default();
    let wanted = |c: &Class| tables.is_none_or(|t| t.contains(&c.table));
    // 1. The log.
    let mut logged: BTreeMap<i32, Vec<(u64, Vec<u8>)>> = BTreeMap::new();
    let mark = crate::compact::read_mark(root);
    match wal::segments(root) {
        Ok(segs) => {
            let newest = segs.last().map(|s| s.first);
            for seg in segs {
                let r = wal::read_segment(&seg.path, |seq, line| {
                    if seq <= mark {
                        return;
                    }
                    if let Ok((class, time)) = classify(line) {
                        let in_range = range.is_none_or(|(a, b)| time >= a && time < b);
                        if wanted(class) && in_range {
                            logged
                                .entry(class.uid)
                                .or_default()
                                .push((seq, line.to_vec()));
                        }
                    }
                });
                match r {
                    // A torn tail of the segment being written is normal while the agent
                    // writes; older damage is reported.
                    Ok(scan) => {
                        let torn = |d: &wal::Damage| {
                            Some(seg.first) == newest && d.what.contains("cut short")
                        };
                        if let Some(d) = scan.damage.filter(|d| !torn(d)) {
                            snap.problems.push(Problem {
                                path: seg.path.clone(),
                                offset: Some(d.offset),
                                what: format!("log read stopped: {}", d.what),
                            });
                        }
                    }
                    // Compacted and deleted since it was listed: in the lake now.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => snap.problems.push(Problem::io(&seg.path, e)),
                }
            }
        }
        Err(e) => snap.problems.push(Problem::io(&layout::wal_dir(root), e)),
    }
    // 2. The lake.
    for class in CLASSES.iter().filter(|c| wanted(c)) {
        let files = lake_files(root, class, range, &mut snap.problems);
        if let Some(events) = logged.remove(&class.uid) {
            let mut b = BatchBuilder::new(class);
            let mut batches = Vec::new();
            // The events in `b`, to build it again without a malformed one.
            let mut pending: Vec<usize> = Vec::new();
            for (i, (seq, ev)) in events.iter().enumerate() {
                if files.iter().any(|f| (f.first..=f.last).contains(seq)) {
                    continue;
                }
                if let Err(what) = b.push_json(*seq, ev) {
                    // `classify` read only the line's head: the rest is not whole JSON.
                    // The batch is not whole then: built again without it (reported).
                    snap.problems.push(Problem {
                        path: layout::wal_dir(root),
                        offset: None,
                        what: format!("seq {seq}: {what}; left out"),
                    });
                    b = BatchBuilder::new(class);
                    for &j in &pending {
                        let (seq, ev) = &events[j];
                        // It went in before, so it does again.
                        let _ = b.push_json(*seq, ev);
                    }
                    continue;
                }
                pending.push(i);
                if b.rows() >= crate::compact::ROW_GROUP {
                    batches.push(b.finish());
                    pending.clear();
                }
            }
            if b.rows() > 0 {
                batches.push(b.finish());
            }
            if !batches.is_empty() {
                snap.log.insert(class.table, batches);
            }
        }
        if !files.is_empty() {
            snap.files.insert(class.table, files);
        }
    }
    snap
}
