//! Compaction: a closed log segment into Parquet files, one per class and hour, exactly
//! once.
//!
//! Each file is written under a temporary name in its partition, fsynced, renamed to
//! `<first-seq>-<last-seq>.parquet` and its directory fsynced. When every file of a
//! segment is in place, the compaction mark (`wal/compacted`, the segment's last
//! sequence) is written the same way, and only then is the segment deleted. After a
//! crash at any point: a segment at or below the mark is deleted without compacting; a
//! segment above it is compacted again, and since the same segment always makes the same
//! files (same classes, hours and sequence ranges), a file already in place is kept and
//! not written twice. No sequence ends up in two files.

use crate::convert::{BatchBuilder, Head};
use crate::ids::IdIndexBuilder;
use crate::layout::{self, Hour};
use crate::schema::Class;
use crate::wal::{self, sync_dir, Segment};
use crate::{Anomalies, Problem};
use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, SchemaRef};
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Rows per Parquet row group (and per Arrow batch while building).
pub const ROW_GROUP: usize = 64 * 1024;

/// What compacting a segment did.
#[derive(Debug, Default)]
pub struct Compacted {
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Files already in place from an earlier, interrupted compaction (kept).
    pub existing: Vec<PathBuf>,
    /// Events stored.
    pub events: u64,
    /// The segment's last sequence.
    pub last_seq: Option<u64>,
    /// Records that are not events of a stored class (not JSON, no known `class_uid`,
    /// no `time`): each reported, none stored.
    pub rejected: Vec<Problem>,
    /// Records rejected beyond the ones listed.
    pub rejected_more: u64,
    /// What did not fit the schemas.
    pub anomalies: Anomalies,
    /// The segment's damage, if any (the records before it were compacted).
    pub damage: Option<Problem>,
}

/// The writer settings: zstd, dictionary encoding (on by default for every column: the
/// repetitive strings, hosts, users, paths, become small dictionaries), row groups of
/// [`ROW_GROUP`] rows.
pub fn writer_properties() -> WriterProperties {
    base_properties().build()
}

fn base_properties() -> WriterPropertiesBuilder {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_max_row_group_row_count(Some(ROW_GROUP))
        .set_dictionary_enabled(true)
}

/// The id columns that get a Bloom filter in every file of a class that has them, so a
/// lookup of one story (`metadata.correlation_uid`), one event (`metadata.uid`) or one
/// process (`process.uid`, `actor.process.uid`) skips every row group that does not hold
/// it without reading its pages.
pub const BLOOM_COLUMNS: &[&str] = &[
    "metadata.correlation_uid",
    "metadata.uid",
    "process.uid",
    "actor.process.uid",
];

/// The Bloom filters' false positive probability (each filter is sized for its row
/// group's distinct values, then folded to the smallest size that keeps it).
pub const BLOOM_FPP: f64 = 0.01;

/// The settings of a file of `class` whose first batch is `first`: [`writer_properties`],
/// with a Bloom filter on each of the [`BLOOM_COLUMNS`] the class has, and no compression
/// for the leaf columns that hold no value in `first` (most of a class's columns, for an
/// agent's events: compressing their pages, a few bytes of levels each, saves nothing,
/// and each compressed column costs a zstd context at every row group).
pub fn file_properties(class: &Class, first: &RecordBatch) -> WriterProperties {
    let mut b = base_properties();
    let Ok(desc) = ArrowSchemaConverter::new().convert(&class.schema()) else {
        return b.build();
    };
    let mut empty = Vec::with_capacity(desc.num_columns());
    for col in first.columns() {
        leaves_empty(col.as_ref(), &mut empty);
    }
    // The last column is the store's sequence, never empty; the leaves line up with the
    // Parquet schema's columns in order (depth first) when their numbers agree.
    let aligned = empty.len() == desc.num_columns();
    for (i, col) in desc.columns().iter().enumerate() {
        let path = col.path();
        if BLOOM_COLUMNS.contains(&path.string().as_str()) {
            b = b
                .set_column_bloom_filter_enabled(path.clone(), true)
                .set_column_bloom_filter_fpp(path.clone(), BLOOM_FPP);
        }
        if aligned && empty[i] {
            b = b.set_column_compression(path.clone(), Compression::UNCOMPRESSED);
        }
    }
    b.build()
}

/// A writer of a lake file: `props`, and no copy of the Arrow schema in the footer
/// (`ARROW:schema`, a third of a footer of an OCSF class's hundreds of columns): every
/// type of the classes' schemas reads back the same from the Parquet schema alone, and
/// each reader of the lake would otherwise decode it again for every file it opens.
pub fn new_writer(
    file: File,
    schema: SchemaRef,
    props: WriterProperties,
) -> Result<ArrowWriter<File>, parquet::errors::ParquetError> {
    let options = ArrowWriterOptions::new()
        .with_properties(props)
        .with_skip_arrow_metadata(true);
    ArrowWriter::try_new_with_options(file, schema, options)
}

/// Whether each leaf column of `a` holds no value, depth first.
fn leaves_empty(a: &dyn Array, out: &mut Vec<bool>) {
    match a.data_type() {
        DataType::Struct(_) => {
            for c in a.as_struct().columns() {
                leaves_empty(c.as_ref(), out);
            }
        }
        DataType::List(_) => leaves_empty(a.as_list::<i32>().values().as_ref(), out),
        _ => out.push(a.null_count() == a.len()),
    }
}

struct Group {
    class: &'static Class,
    builder: BatchBuilder,
    writer: Option<(PathBuf, ArrowWriter<File>)>,
    /// The id index of the file being written ([`crate::ids`]).
    ids: IdIndexBuilder,
    first: u64,
    last: u64,
    rows: u64,
}

impl Group {
    fn spill(&mut self, root: &Path, hour: Hour, tag: u64) -> Result<(), Problem> {
        if self.builder.rows() == 0 {
            return Ok(());
        }
        let batch = self.builder.finish();
        if self.writer.is_none() {
            let dir = layout::partition_dir(root, self.class.table, hour);
            std::fs::create_dir_all(&dir).map_err(|e| Problem::io(&dir, e))?;
            let tmp = dir.join(format!(".{tag:020}.tmp"));
            let file = File::create(&tmp).map_err(|e| Problem::io(&tmp, e))?;
            let props = file_properties(self.class, &batch);
            let w = new_writer(file, self.class.schema(), props)
                .map_err(|e| parquet_problem(&tmp, e))?;
            self.writer = Some((tmp, w));
        }
        if let Some((tmp, w)) = &mut self.writer {
            self.ids.add(&batch);
            w.write(&batch).map_err(|e| parquet_problem(tmp, e))?;
        }
        Ok(())
    }
}

fn parquet_problem(path: &Path, e: parquet::errors::ParquetError) -> Problem {
    Problem {
        path: path.to_path_buf(),
        offset: None,
        what: e.to_string(),
    }
}

/// The class and time of one event line, or why it is not storable. Only the line's
/// head is read when it starts as the model writes events ([`Head::quick`]); the rest
/// is read, and checked, when the event goes into the columns
/// ([`BatchBuilder::push_json`]). Otherwise the whole line is parsed ([`Head::of`]).
pub fn classify(line: &[u8]) -> Result<(&'static Class, i64), String> {
    let head = match Head::quick(line) {
        Some(h) => h,
        None => Head::of(line)?,
    };
    class_of(&head)
}

/// [`classify`] reading the whole line first (checked to be whole JSON).
pub fn classify_strict(line: &[u8]) -> Result<(&'static Class, i64), String> {
    class_of(&Head::of(line)?)
}

fn class_of(head: &Head) -> Result<(&'static Class, i64), String> {
    let class = Class::by_uid(head.class_uid)
        .ok_or_else(|| format!("class_uid {} is not stored", head.class_uid))?;
    Ok((class, head.time))
}

/// Compacts `seg` into the lake under `root`, leaving out sequences up to `mark` (in
/// the lake already). Does not write the mark or delete the segment
/// ([`finish_segment`] does, once the caller has the result).
///
/// Lines are classified by their head only ([`classify`]); should one turn out not to
/// be whole JSON when its columns are read, the columns built so far are not whole:
/// they are thrown away and the segment compacted again with every line read whole
/// first ([`classify_strict`]), so that line is rejected (reported) like any other.
pub fn compact_segment(root: &Path, seg: &Segment, mark: u64) -> Result<Compacted, Problem> {
    match attempt(root, seg, mark, false)? {
        Some(out) => Ok(out),
        None => attempt(root, seg, mark, true)?.ok_or_else(|| Problem {
            path: seg.path.clone(),
            offset: None,
            what: "a line read whole could not be stored".into(),
        }),
    }
}

/// One compaction of `seg`: `None` when a line was found malformed part-way through
/// its columns (only when not `strict`; its temporary files are deleted).
fn attempt(
    root: &Path,
    seg: &Segment,
    mark: u64,
    strict: bool,
) -> Result<Option<Compacted>, Problem> {
    let mut out = Compacted::default();
    let mut groups: BTreeMap<(i32, Hour), Group> = BTreeMap::new();
    let mut failed: Option<Problem> = None;
    let mut malformed = false;
    let classify = if strict { classify_strict } else { classify };
    let scan = wal::read_segment(&seg.path, |seq, line| {
        out.last_seq = Some(seq);
        if failed.is_some() || malformed || seq <= mark {
            return;
        }
        let (class, time) = match classify(line) {
            Ok(x) => x,
            Err(what) => {
                if out.rejected.len() < 16 {
                    out.rejected.push(Problem {
                        path: seg.path.clone(),
                        offset: None,
                        what: format!("seq {seq}: {what}; not stored"),
                    });
                } else {
                    out.rejected_more += 1;
                }
                return;
            }
        };
        let hour = Hour::of(time);
        let g = groups.entry((class.uid, hour)).or_insert_with(|| Group {
            class,
            builder: BatchBuilder::new(class),
            ids: IdIndexBuilder::new(&class.schema()),
            writer: None,
            first: seq,
            last: seq,
            rows: 0,
        });
        if let Err(what) = g.builder.push_json(seq, line) {
            if !strict {
                malformed = true;
                return;
            }
            // Cannot happen after `classify_strict` read the whole line; if it did, the
            // batch is not whole: the segment is not compacted (reported, kept).
            failed = Some(Problem {
                path: seg.path.clone(),
                offset: None,
                what: format!("seq {seq}: {what}"),
            });
            return;
        }
        g.last = seq;
        g.rows += 1;
        if g.builder.rows() >= ROW_GROUP {
            if let Err(p) = g.spill(root, hour, seg.first) {
                failed = Some(p);
            }
        }
    })
    .map_err(|e| Problem::io(&seg.path, e))?;
    if malformed || failed.is_some() {
        for g in groups.into_values() {
            if let Some((tmp, w)) = g.writer {
                drop(w);
                let _ = std::fs::remove_file(tmp);
            }
        }
        return match failed {
            Some(p) => Err(p),
            None => Ok(None),
        };
    }
    if let Some(d) = scan.damage {
        out.damage = Some(Problem {
            path: seg.path.clone(),
            offset: Some(d.offset),
            what: format!("damaged segment: the rest is skipped ({})", d.what),
        });
    }
    let mut dirs = Vec::new();
    for ((_, hour), mut g) in groups {
        let dir = layout::partition_dir(root, g.class.table, hour);
        let fin = dir.join(layout::parquet_name(g.first, g.last));
        let a = g.builder.anomalies().clone();
        out.anomalies.unknown += a.unknown;
        out.anomalies.mistyped += a.mistyped;
        for e in a.examples {
            if out.anomalies.examples.len() < 8 {
                out.anomalies
                    .examples
                    .push(format!("{}: {e}", g.class.table));
            }
        }
        if fin.exists() {
            // Written by an interrupted compaction of this very segment: kept as is.
            if let Some((tmp, _)) = g.writer.take() {
                let _ = std::fs::remove_file(tmp);
            }
            out.existing.push(fin);
            continue;
        }
        g.spill(root, hour, seg.first)?;
        let Some((tmp, w)) = g.writer.take() else {
            continue;
        };
        let file = w.into_inner().map_err(|e| parquet_problem(&tmp, e))?;
        file.sync_all().map_err(|e| Problem::io(&tmp, e))?;
        drop(file);
        // The index goes first: a Parquet file in place always has its index, unless
        // writing the index failed (then queries read the file: the index only saves
        // reading it).
        if let Err(e) = g.ids.write_for(&fin) {
            tracing::warn!(file = %fin.display(), error = %e, "store: the file's id index was not written; lookups will read the file");
        }
        std::fs::rename(&tmp, &fin).map_err(|e| Problem::io(&fin, e))?;
        out.events += g.rows;
        out.files.push(fin);
        dirs.push(dir);
    }
    dirs.sort();
    dirs.dedup();
    for d in &dirs {
        sync_dir(d).map_err(|e| Problem::io(d, e))?;
        // New partition directories must survive a power cut too.
        for up in d.ancestors().skip(1).take(3) {
            sync_dir(up).map_err(|e| Problem::io(up, e))?;
        }
    }
    Ok(Some(out))
}

/// The compaction mark: the last sequence compacted (0: none).
pub fn read_mark(root: &Path) -> u64 {
    let p = layout::wal_dir(root).join("compacted");
    std::fs::read_to_string(p)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// Records that everything up to `last` is in the lake (atomically), then deletes the
/// segment.
pub fn finish_segment(root: &Path, seg: &Segment, last: u64) -> Result<(), Problem> {
    let dir = layout::wal_dir(root);
    if last > read_mark(root) {
        let tmp = dir.join("compacted.tmp");
        let fin = dir.join("compacted");
        std::fs::write(&tmp, format!("{last}\n"))
            .and_then(|()| File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &fin))
            .map_err(|e| Problem::io(&fin, e))?;
    }
    std::fs::remove_file(&seg.path).map_err(|e| Problem::io(&seg.path, e))?;
    sync_dir(&dir).map_err(|e| Problem::io(&dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::CLASSES;
    use arrow_schema::{Field, Fields, Schema};

    /// A schema with every field's metadata left out, recursively.
    fn bare(schema: &Schema) -> Schema {
        fn field(f: &Field) -> Field {
            let dt = match f.data_type() {
                DataType::Struct(fs) => {
                    DataType::Struct(fs.iter().map(|f| field(f)).collect::<Fields>())
                }
                DataType::List(item) => DataType::List(std::sync::Arc::new(field(item))),
                other => other.clone(),
            };
            Field::new(f.name(), dt, f.is_nullable())
        }
        Schema::new(schema.fields().iter().map(|f| field(f)).collect::<Fields>())
    }

    #[test]
    fn every_class_reads_back_from_the_parquet_schema_alone() {
        // The lake's files carry no ARROW:schema (`new_writer`): each class's columns
        // must come back as the same Arrow types from the Parquet schema.
        for class in CLASSES {
            let schema = class.schema();
            let parquet = ArrowSchemaConverter::new()
                .convert(&schema)
                .expect("converts");
            let back = parquet::arrow::parquet_to_arrow_schema(&parquet, None).expect("back");
            assert_eq!(bare(&back), bare(&schema), "{}", class.table);
        }
    }
}
