//! The id index beside each Parquet file: `<first-seq>-<last-seq>.ids` holds, for each
//! of the [`INDEXED_COLUMNS`] the file's class has, a Bloom filter of the values in the
//! file. A lookup of one story or one process (`metadata.correlation_uid = '...'`) reads
//! these small files and opens only the Parquet files that may hold the value, instead of
//! decoding every file's footer (hundreds of column chunks each) to reach its Parquet
//! Bloom filters.
//!
//! # Format (little-endian)
//!
//! ```text
//! "VIGILID1"                       magic, 8 bytes
//! u32                              number of columns
//! per column:
//!   u16 + bytes                    the column's dotted path (UTF-8)
//!   u8                             k, the number of bit probes per value
//!   u8                             log2 of the number of bits (6..=32)
//!   u64                            distinct values added
//!   bytes                          the bits (2^log2 / 8 bytes)
//! u32                              CRC-32 of everything before it
//! ```
//!
//! # Invariants
//!
//! * **No false negatives.** A file whose index says a value is absent does not hold it:
//!   every non-null value of an indexed column of every row written to the file was
//!   added to its filter, and the hash ([`hash`]) is fixed by this format (FNV-1a 64 then
//!   a 64-bit finalizer), never a hasher that may change between builds.
//! * **An index that cannot be trusted is ignored, never believed.** A missing index (a
//!   store written before indexes, a crash between the two renames), one with a bad
//!   magic, length or checksum (a torn write: it is not fsynced), or one without the
//!   column asked about, means "may hold": the file is read.
//! * An index is written and renamed into place before its Parquet file, and names the
//!   same sequence range, whose rows are always the same; a leftover index of a file
//!   never renamed is overwritten by the next attempt and never read alone.
//! * A file without an index (a store written before indexes existed) gets one at the
//!   next merge pass over its closed hour ([`index_existing`]: its id columns alone).

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch, StructArray};
use arrow_schema::{DataType, Schema};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The columns with an id index: a story (`metadata.correlation_uid`) and a process (as
/// the subject of a process event, `process.uid`, and as the actor of every other event,
/// `actor.process.uid`). Not `metadata.uid`: one value per event would make the index a
/// tenth of the file for lookups analysts rarely make.
pub const INDEXED_COLUMNS: &[&str] = &[
    "metadata.correlation_uid",
    "process.uid",
    "actor.process.uid",
];

const MAGIC: &[u8; 8] = b"VIGILID1";
/// Bits per distinct value, at least (the size is then rounded up to a power of two):
/// with [`PROBES`] probes, a false positive rate of about 0.05% at 16 bits a value.
const BITS_PER_VALUE: u64 = 16;
/// Bit probes per value.
const PROBES: u8 = 11;
/// The smallest filter, in log2 bits (64 bits).
const MIN_LOG2: u8 = 6;
/// The largest filter, in log2 bits (512 MiB: far past any file's ids).
const MAX_LOG2: u8 = 32;

/// The id index of a Parquet file at `parquet` (`X.parquet` -> `X.ids`).
pub fn index_path(parquet: &Path) -> PathBuf {
    parquet.with_extension("ids")
}

/// The 64-bit hash of an id, fixed by the index format: FNV-1a, then the MurmurHash3
/// finalizer to spread FNV's weak low bits.
pub fn hash(value: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in value {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    fmix64(h)
}

fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// The bit positions of `h` in a filter of `2^log2` bits (double hashing).
fn probes(h: u64, log2: u8, k: u8) -> impl Iterator<Item = u64> {
    let mask = (1u64 << log2) - 1;
    let h2 = fmix64(h ^ 0x9e37_79b9_7f4a_7c15) | 1;
    (0..u64::from(k)).map(move |i| h.wrapping_add(i.wrapping_mul(h2)) & mask)
}

/// The values of the indexed columns of the batches written to one Parquet file.
#[derive(Debug, Default)]
pub struct IdIndexBuilder {
    columns: Vec<(&'static str, HashSet<u64>)>,
}

impl IdIndexBuilder {
    /// A builder for files of `schema`: one filter for each [`INDEXED_COLUMNS`] path the
    /// schema has as a string column.
    pub fn new(schema: &Schema) -> IdIndexBuilder {
        let columns = INDEXED_COLUMNS
            .iter()
            .filter(|path| is_string(field_type(schema, path)))
            .map(|&path| (path, HashSet::new()))
            .collect();
        IdIndexBuilder { columns }
    }

    /// Adds the values of a batch about to be written to the file.
    pub fn add(&mut self, batch: &RecordBatch) {
        for (path, set) in &mut self.columns {
            let Some(col) = column(batch, path) else {
                continue;
            };
            for_each_str(col.as_ref(), |s| {
                set.insert(hash(s.as_bytes()));
            });
        }
    }

    /// The index's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.columns.len() as u32).to_le_bytes());
        for (path, set) in &self.columns {
            let n = set.len() as u64;
            let want = n.saturating_mul(BITS_PER_VALUE).max(1);
            let log2 =
                (64 - (want - 1).leading_zeros()).clamp(MIN_LOG2.into(), MAX_LOG2.into()) as u8;
            let mut bits = vec![0u8; (1usize << log2) / 8];
            for &h in set {
                for bit in probes(h, log2, PROBES) {
                    bits[(bit / 8) as usize] |= 1 << (bit % 8);
                }
            }
            out.extend_from_slice(&(path.len() as u16).to_le_bytes());
            out.extend_from_slice(path.as_bytes());
            out.push(PROBES);
            out.push(log2);
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(&bits);
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Writes the index of the Parquet file `parquet` (under a temporary name, then
    /// renamed; not fsynced: a torn index fails its checksum and is ignored).
    pub fn write_for(&self, parquet: &Path) -> std::io::Result<()> {
        let fin = index_path(parquet);
        let tmp = fin.with_extension("ids.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&self.to_bytes())?;
        drop(f);
        std::fs::rename(&tmp, &fin)
    }
}

/// Builds the id index of a Parquet file already written without one (a store written
/// before indexes existed), reading only its indexed columns, and writes it beside it.
/// `schema`: the file's class schema.
pub fn index_existing(parquet: &Path, schema: &Schema) -> Result<(), String> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::ProjectionMask;
    let file = std::fs::File::open(parquet).map_err(|e| e.to_string())?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| e.to_string())?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), INDEXED_COLUMNS.iter().copied());
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| e.to_string())?;
    let mut ids = IdIndexBuilder::new(schema);
    for batch in reader {
        ids.add(&batch.map_err(|e| e.to_string())?);
    }
    ids.write_for(parquet).map_err(|e| e.to_string())
}

fn field_type<'a>(schema: &'a Schema, path: &str) -> Option<&'a DataType> {
    let mut parts = path.split('.');
    let mut dt = schema.field_with_name(parts.next()?).ok()?.data_type();
    for p in parts {
        let DataType::Struct(fields) = dt else {
            return None;
        };
        dt = fields.iter().find(|f| f.name() == p)?.data_type();
    }
    Some(dt)
}

fn is_string(dt: Option<&DataType>) -> bool {
    matches!(
        dt,
        Some(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
    )
}

/// The array at a dotted path of struct columns.
fn column(batch: &RecordBatch, path: &str) -> Option<std::sync::Arc<dyn Array>> {
    let mut parts = path.split('.');
    let mut col = std::sync::Arc::clone(batch.column_by_name(parts.next()?)?);
    for p in parts {
        let s: &StructArray = col.as_struct_opt()?;
        col = std::sync::Arc::clone(s.column_by_name(p)?);
    }
    Some(col)
}

/// Calls `f` with every non-null string of a string array. A value under a null parent
/// struct is passed too: an extra value in a filter is only a wider "may hold".
fn for_each_str(a: &dyn Array, mut f: impl FnMut(&str)) {
    if let Some(s) = a.as_string_opt::<i32>() {
        s.iter().flatten().for_each(f);
    } else if let Some(s) = a.as_string_opt::<i64>() {
        s.iter().flatten().for_each(f);
    } else if let Some(s) = a.as_string_view_opt() {
        s.iter().flatten().for_each(&mut f);
    }
}

/// One column's filter, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Filter {
    path: String,
    probes: u8,
    log2: u8,
    values: u64,
    bits: Vec<u8>,
}

/// A Parquet file's id index, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdIndex {
    filters: Vec<Filter>,
}

impl IdIndex {
    /// Reads the index of the Parquet file `parquet`. `None` when there is none or it
    /// cannot be trusted (see the module's invariants): the file must then be read.
    pub fn read_for(parquet: &Path) -> Option<IdIndex> {
        let bytes = std::fs::read(index_path(parquet)).ok()?;
        IdIndex::from_bytes(&bytes).ok()
    }

    /// Parses an index; the error says what is wrong with it.
    pub fn from_bytes(bytes: &[u8]) -> Result<IdIndex, String> {
        let body_len = bytes
            .len()
            .checked_sub(4)
            .ok_or("shorter than its checksum")?;
        let (body, crc) = bytes.split_at(body_len);
        let crc = u32::from_le_bytes(crc.try_into().map_err(|_| "no checksum")?);
        if crc32fast::hash(body) != crc {
            return Err("checksum mismatch".into());
        }
        let mut r = Reader { rest: body };
        if r.take(8)? != MAGIC {
            return Err("not an id index (bad magic)".into());
        }
        let n = u32::from_le_bytes(r.array()?);
        let mut filters = Vec::new();
        for _ in 0..n {
            let len = u16::from_le_bytes(r.array()?);
            let path = std::str::from_utf8(r.take(len.into())?)
                .map_err(|_| "a column path is not UTF-8")?
                .to_string();
            let [probes] = r.array()?;
            let [log2] = r.array()?;
            let values = u64::from_le_bytes(r.array()?);
            if !(MIN_LOG2..=MAX_LOG2).contains(&log2) || probes == 0 {
                return Err(format!("{path}: bad filter size or probe count"));
            }
            let bits = r.take((1usize << log2) / 8)?.to_vec();
            filters.push(Filter {
                path,
                probes,
                log2,
                values,
                bits,
            });
        }
        if !r.rest.is_empty() {
            return Err("bytes after the last column".into());
        }
        Ok(IdIndex { filters })
    }

    /// Whether the file may hold a row whose `column` is `value`: `Some(false)` only
    /// when it certainly does not; `None` when the index does not cover `column`.
    pub fn may_hold(&self, column: &str, value: &str) -> Option<bool> {
        let f = self.filters.iter().find(|f| f.path == column)?;
        if f.values == 0 {
            return Some(false);
        }
        let h = hash(value.as_bytes());
        Some(
            probes(h, f.log2, f.probes)
                .all(|bit| f.bits[(bit / 8) as usize] & (1 << (bit % 8)) != 0),
        )
    }

    /// The columns it covers.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.filters.iter().map(|f| f.path.as_str())
    }
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            return Err("cut short".into());
        }
        let (a, b) = self.rest.split_at(n);
        self.rest = b;
        Ok(a)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, StringArray};
    use arrow_schema::{Field, Fields};
    use std::sync::Arc;

    fn batch(stories: &[Option<&str>], procs: &[Option<&str>]) -> RecordBatch {
        let meta_fields = Fields::from(vec![Field::new("correlation_uid", DataType::Utf8, true)]);
        let proc_fields = Fields::from(vec![Field::new("uid", DataType::Utf8, true)]);
        let meta = StructArray::new(
            meta_fields.clone(),
            vec![Arc::new(StringArray::from(stories.to_vec())) as ArrayRef],
            None,
        );
        let process = StructArray::new(
            proc_fields.clone(),
            vec![Arc::new(StringArray::from(procs.to_vec())) as ArrayRef],
            None,
        );
        let schema = Schema::new(vec![
            Field::new("metadata", DataType::Struct(meta_fields), true),
            Field::new("process", DataType::Struct(proc_fields), true),
        ]);
        RecordBatch::try_new(Arc::new(schema), vec![Arc::new(meta), Arc::new(process)])
            .expect("batch")
    }

    #[test]
    fn every_value_written_is_found_and_absent_values_mostly_are_not() {
        let stories: Vec<String> = (0..5000).map(|i| format!("story-{i}")).collect();
        let procs: Vec<String> = (0..5000).map(|i| format!("proc-{i}")).collect();
        let b = batch(
            &stories.iter().map(|s| Some(s.as_str())).collect::<Vec<_>>(),
            &procs
                .iter()
                .enumerate()
                .map(|(i, s)| (i % 2 == 0).then_some(s.as_str()))
                .collect::<Vec<_>>(),
        );
        let mut builder = IdIndexBuilder::new(&b.schema());
        builder.add(&b);
        let index = IdIndex::from_bytes(&builder.to_bytes()).expect("reads back");
        assert_eq!(
            index.columns().collect::<Vec<_>>(),
            ["metadata.correlation_uid", "process.uid"]
        );
        for s in &stories {
            assert_eq!(
                index.may_hold("metadata.correlation_uid", s),
                Some(true),
                "{s}"
            );
        }
        for (i, p) in procs.iter().enumerate() {
            if i % 2 == 0 {
                assert_eq!(index.may_hold("process.uid", p), Some(true), "{p}");
            }
        }
        // Not covered: the caller must read the file.
        assert_eq!(index.may_hold("actor.process.uid", "proc-1"), None);
        let false_hits = (0..100_000)
            .filter(|i| {
                index.may_hold("metadata.correlation_uid", &format!("other-{i}")) == Some(true)
            })
            .count();
        // About 0.05% by design; well under 1%.
        assert!(false_hits < 1000, "{false_hits} false positives in 100,000");
    }

    #[test]
    fn a_column_with_no_value_holds_nothing() {
        let b = batch(&[None, None], &[Some("p"), None]);
        let mut builder = IdIndexBuilder::new(&b.schema());
        builder.add(&b);
        let index = IdIndex::from_bytes(&builder.to_bytes()).expect("reads back");
        assert_eq!(
            index.may_hold("metadata.correlation_uid", "anything"),
            Some(false)
        );
        assert_eq!(index.may_hold("process.uid", "p"), Some(true));
    }

    #[test]
    fn a_damaged_index_is_refused_at_every_byte() {
        let b = batch(&[Some("s1"), Some("s2")], &[Some("p1"), None]);
        let mut builder = IdIndexBuilder::new(&b.schema());
        builder.add(&b);
        let bytes = builder.to_bytes();
        for cut in 0..bytes.len() {
            assert!(IdIndex::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(IdIndex::from_bytes(&bad).is_err(), "byte {i} flipped");
        }
        assert!(IdIndex::from_bytes(&vec![0; bytes.len()]).is_err());
    }

    #[test]
    fn the_hash_is_the_formats_own() {
        // Fixed by the on-disk format: a change here makes old indexes lie.
        assert_eq!(hash(b""), fmix64(0xcbf2_9ce4_8422_2325));
        assert_eq!(hash(b"a"), fmix64(0xaf63_dc4c_8601_ec8c));
    }
}
