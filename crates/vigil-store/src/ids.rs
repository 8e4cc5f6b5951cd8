//! The id index beside each Parquet file: `<first-seq>-<last-seq>.ids` holds, for each
//! of the [`INDEXED_COLUMNS`] the file's class has, a Bloom filter of the values in the
//! file. A lookup of one story or one process (`metadata.correlation_uid = '...'`) reads
//! these small files and opens only the Parquet files that may hold the value, instead of
//! decoding every file's footer (hundreds of column chunks each) to reach its Parquet
//! Bloom filters.
//!
//! # Format (little-endian)
//!
//! A split-block Bloom filter per column: each value sets 8 bits within one 64-byte
//! block, so a lookup reads the header and one block of each file (two small reads)
//! instead of the whole index, and each block carries its own checksum.
//!
//! ```text
//! "VIGILID2"                       magic, 8 bytes
//! u32                              H, the header's length in bytes
//! header (H bytes):
//!   u32                            number of columns
//!   per column:
//!     u16 + bytes                  the column's dotted path (UTF-8)
//!     u64                          distinct values added
//!     u32                          number of blocks (0 when no value was added)
//! u32                              CRC-32 of the magic, H and the header
//! blocks, column after column, each:
//!   8 x u64                        512 bits
//!   u32                            CRC-32 of the block's number in the file (u32) and
//!                                  its 64 bytes
//! ```
//!
//! A value's 64-bit hash picks its block from its high 32 bits (`hi * blocks >> 32`)
//! and one bit in each of the block's eight words from its low 32 bits (multiplied by
//! the word's odd salt, the top 6 bits of the product). At 16 bits a value (a block per
//! 32 values) about 0.1% of absent values are reported as "may hold".
//!
//! # Invariants
//!
//! * **No false negatives.** A file whose index says a value is absent does not hold it:
//!   every non-null value of an indexed column of every row written to the file was
//!   added to its filter, and the hash ([`hash`]) is fixed by this format (FNV-1a 64 then
//!   a 64-bit finalizer), never a hasher that may change between builds.
//! * **An index that cannot be trusted is ignored, never believed.** A missing index (a
//!   store written before indexes, a crash between the two renames), one with a bad
//!   magic, length or header checksum (a torn write: it is not fsynced; an index of an
//!   earlier format), or one without the column asked about, means "may hold": the file
//!   is read. So does a block whose checksum fails, for the values that fall in it.
//! * An index is written and renamed into place before its Parquet file, and names the
//!   same sequence range, whose rows are always the same; a leftover index of a file
//!   never renamed is overwritten by the next attempt and never read alone.
//! * A file without a readable index (a store written before indexes existed, or before
//!   this format) gets one at the next merge pass over its closed hour
//!   ([`index_existing`]: its id columns alone).

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

const MAGIC: &[u8; 8] = b"VIGILID2";
/// Bits per distinct value: a block of [`BLOCK_BITS`] per 32 values.
const BITS_PER_VALUE: u64 = 16;
/// The bits of one block: eight 64-bit words, one bit set in each per value.
const BLOCK_BITS: u64 = 512;
/// One block on disk: its 64 bytes of bits and their CRC-32.
const BLOCK_LEN: usize = 64 + 4;
/// The longest header read back (three paths take about 120 bytes).
const MAX_HEADER: u32 = 64 * 1024;
/// What the first read of an index takes: the magic, the header and its checksum of any
/// index of [`INDEXED_COLUMNS`], in one read.
const FIRST_READ: usize = 512;

/// The odd multipliers that pick a value's bit in each word of its block, fixed by the
/// format: the finalizer of [`hash`] applied to the word's number.
const SALTS: [u32; 8] = salts();

const fn salts() -> [u32; 8] {
    let mut out = [0u32; 8];
    let mut i = 0;
    while i < 8 {
        out[i] = (fmix64(i as u64 + 1) as u32) | 1;
        i += 1;
    }
    out
}

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

const fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// The block of `h` in a filter of `blocks` blocks.
fn block_of(h: u64, blocks: u32) -> u32 {
    (((h >> 32) * u64::from(blocks)) >> 32) as u32
}

/// The bit of `h` in each of a block's eight words.
fn word_bits(h: u64) -> [u64; 8] {
    let lo = h as u32;
    SALTS.map(|salt| 1u64 << (lo.wrapping_mul(salt) >> 26))
}

/// The checksum of block number `n` of a file (counted over all its columns).
fn block_crc(n: u32, bits: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&n.to_le_bytes());
    crc.update(bits);
    crc.finalize()
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
        let mut header = Vec::new();
        header.extend_from_slice(&(self.columns.len() as u32).to_le_bytes());
        let mut filters = Vec::with_capacity(self.columns.len());
        for (path, set) in &self.columns {
            let n = set.len() as u64;
            // A block per 32 values, rounded up; past u32::MAX blocks (2^37 values) the
            // filter only gets fuller, never wrong.
            let blocks = n
                .saturating_mul(BITS_PER_VALUE)
                .div_ceil(BLOCK_BITS)
                .min(u64::from(u32::MAX)) as u32;
            let mut words = vec![[0u64; 8]; blocks as usize];
            for &h in set {
                let block = &mut words[block_of(h, blocks) as usize];
                for (w, bit) in block.iter_mut().zip(word_bits(h)) {
                    *w |= bit;
                }
            }
            header.extend_from_slice(&(path.len() as u16).to_le_bytes());
            header.extend_from_slice(path.as_bytes());
            header.extend_from_slice(&n.to_le_bytes());
            header.extend_from_slice(&blocks.to_le_bytes());
            filters.push(words);
        }
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        let mut number = 0u32;
        for words in filters {
            for block in words {
                let start = out.len();
                for w in block {
                    out.extend_from_slice(&w.to_le_bytes());
                }
                let crc = block_crc(number, &out[start..]);
                out.extend_from_slice(&crc.to_le_bytes());
                number = number.wrapping_add(1);
            }
        }
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

/// One column's filter, as the header describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Filter {
    path: String,
    values: u64,
    blocks: u32,
    /// The number of its first block in the file.
    first: u64,
}

/// Where the blocks are read from.
#[derive(Debug)]
enum Blocks {
    /// The whole index in memory, every block checked.
    Memory(Vec<u8>),
    /// The open index file: each block is read and checked when asked.
    File(std::fs::File),
}

/// A Parquet file's id index, read back: its header at once, each block when a lookup
/// needs it.
#[derive(Debug)]
pub struct IdIndex {
    filters: Vec<Filter>,
    /// The offset of the first block.
    data: u64,
    blocks: Blocks,
}

impl IdIndex {
    /// Opens the index of the Parquet file `parquet`, reading and checking its header
    /// (and its length); blocks are read when asked. `None` when there is none or it
    /// cannot be trusted (see the module's invariants): the file must then be read.
    pub fn read_for(parquet: &Path) -> Option<IdIndex> {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(index_path(parquet)).ok()?;
        let mut first = vec![0u8; FIRST_READ];
        let mut got = 0;
        while got < first.len() {
            match file.read_at(&mut first[got..], got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        first.truncate(got);
        let need = header_end(&first).ok()?;
        let have = first.len();
        if need > have {
            first.resize(need, 0);
            file.read_exact_at(&mut first[have..], have as u64).ok()?;
        }
        let (filters, data) = parse_header(&first).ok()?;
        let len = file.metadata().ok()?.len();
        if len != data + total_blocks(&filters) * BLOCK_LEN as u64 {
            return None;
        }
        Some(IdIndex {
            filters,
            data,
            blocks: Blocks::File(file),
        })
    }

    /// Parses a whole index, checking every block; the error says what is wrong with it.
    pub fn from_bytes(bytes: &[u8]) -> Result<IdIndex, String> {
        let (filters, data) = parse_header(bytes)?;
        let want = total_blocks(&filters)
            .checked_mul(BLOCK_LEN as u64)
            .and_then(|b| b.checked_add(data))
            .ok_or("too many blocks")?;
        match (bytes.len() as u64).cmp(&want) {
            std::cmp::Ordering::Less => return Err("cut short".into()),
            std::cmp::Ordering::Greater => return Err("bytes after the last block".into()),
            std::cmp::Ordering::Equal => {}
        }
        for (n, block) in bytes[data as usize..].chunks_exact(BLOCK_LEN).enumerate() {
            if !block_ok(n as u32, block) {
                return Err(format!("block {n}: checksum mismatch"));
            }
        }
        Ok(IdIndex {
            filters,
            data,
            blocks: Blocks::Memory(bytes.to_vec()),
        })
    }

    /// Whether the file may hold a row whose `column` is `value`: `Some(false)` only
    /// when it certainly does not; `None` when the index does not cover `column`. A
    /// block that cannot be read or fails its checksum answers "may hold".
    pub fn may_hold(&self, column: &str, value: &str) -> Option<bool> {
        let f = self.filters.iter().find(|f| f.path == column)?;
        if f.values == 0 || f.blocks == 0 {
            return Some(false);
        }
        let h = hash(value.as_bytes());
        let n = f.first + u64::from(block_of(h, f.blocks));
        let Some(words) = self.block(n) else {
            return Some(true);
        };
        Some(words.iter().zip(word_bits(h)).all(|(w, bit)| w & bit != 0))
    }

    /// Block `n`'s words, when it reads back whole and checks.
    fn block(&self, n: u64) -> Option<[u64; 8]> {
        let at = self.data + n * BLOCK_LEN as u64;
        let mut buf = [0u8; BLOCK_LEN];
        match &self.blocks {
            Blocks::Memory(bytes) => {
                buf.copy_from_slice(bytes.get(at as usize..at as usize + BLOCK_LEN)?);
            }
            Blocks::File(file) => {
                use std::os::unix::fs::FileExt;
                file.read_exact_at(&mut buf, at).ok()?;
            }
        }
        if !block_ok(n as u32, &buf) {
            tracing::debug!(
                block = n,
                "store: an id index block fails its checksum; the file will be read"
            );
            return None;
        }
        let mut words = [0u64; 8];
        for (w, b) in words.iter_mut().zip(buf.chunks_exact(8)) {
            *w = u64::from_le_bytes(b.try_into().ok()?);
        }
        Some(words)
    }

    /// The columns it covers.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.filters.iter().map(|f| f.path.as_str())
    }
}

/// Whether a parquet file has an index of this format with a sound header (a merge pass
/// rebuilds the others).
pub fn has_index(parquet: &Path) -> bool {
    IdIndex::read_for(parquet).is_some()
}

fn block_ok(n: u32, block: &[u8]) -> bool {
    let (bits, crc) = block.split_at(64);
    crc.try_into()
        .is_ok_and(|c: [u8; 4]| u32::from_le_bytes(c) == block_crc(n, bits))
}

fn total_blocks(filters: &[Filter]) -> u64 {
    filters.iter().map(|f| u64::from(f.blocks)).sum()
}

/// Where the header's checksum ends (the offset of the first block), from the start of
/// an index.
fn header_end(bytes: &[u8]) -> Result<usize, String> {
    let mut r = Reader { rest: bytes };
    if r.take(8)? != MAGIC {
        return Err("not an id index of this format (bad magic)".into());
    }
    let h = u32::from_le_bytes(r.array()?);
    if h > MAX_HEADER {
        return Err(format!("a header of {h} bytes"));
    }
    Ok(8 + 4 + h as usize + 4)
}

/// The filters an index's header describes and the offset of its first block; the
/// header's checksum is checked.
fn parse_header(bytes: &[u8]) -> Result<(Vec<Filter>, u64), String> {
    let end = header_end(bytes)?;
    let all = bytes.get(..end).ok_or("cut short in its header")?;
    let (body, crc) = all.split_at(end - 4);
    let crc = u32::from_le_bytes(crc.try_into().map_err(|_| "no checksum")?);
    if crc32fast::hash(body) != crc {
        return Err("header checksum mismatch".into());
    }
    let mut r = Reader { rest: &body[12..] };
    let n = u32::from_le_bytes(r.array()?);
    let mut filters: Vec<Filter> = Vec::new();
    let mut first = 0u64;
    for _ in 0..n {
        let len = u16::from_le_bytes(r.array()?);
        let path = std::str::from_utf8(r.take(len.into())?)
            .map_err(|_| "a column path is not UTF-8")?
            .to_string();
        let values = u64::from_le_bytes(r.array()?);
        let blocks = u32::from_le_bytes(r.array()?);
        if (values == 0) != (blocks == 0) {
            return Err(format!("{path}: {values} values in {blocks} blocks"));
        }
        filters.push(Filter {
            path,
            values,
            blocks,
            first,
        });
        first += u64::from(blocks);
    }
    if !r.rest.is_empty() {
        return Err("bytes after the last column".into());
    }
    Ok((filters, end as u64))
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
        // About 0.1% by design; well under 1%.
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
    fn an_index_read_from_its_file_reads_what_it_needs_and_never_believes_a_damaged_block() {
        let stories: Vec<String> = (0..3000).map(|i| format!("story-{i}")).collect();
        let b = batch(
            &stories.iter().map(|s| Some(s.as_str())).collect::<Vec<_>>(),
            &stories.iter().map(|_| None).collect::<Vec<_>>(),
        );
        let mut builder = IdIndexBuilder::new(&b.schema());
        builder.add(&b);
        let dir = std::env::temp_dir().join(format!("vigil-ids-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let parquet = dir.join("1-2.parquet");
        builder.write_for(&parquet).expect("write");
        let bytes = std::fs::read(index_path(&parquet)).expect("read");
        // 3000 values: 94 blocks of 68 bytes after the header; none for process.uid.
        let index = IdIndex::read_for(&parquet).expect("reads back");
        assert!(has_index(&parquet));
        for s in &stories {
            assert_eq!(index.may_hold("metadata.correlation_uid", s), Some(true));
        }
        assert_eq!(index.may_hold("process.uid", "p"), Some(false));
        let data = bytes.len() - 94 * BLOCK_LEN;
        // A byte flipped anywhere: the index is refused (header) or the damaged block
        // answers "may hold" for every value (blocks); it never denies a value written.
        for i in (0..bytes.len()).step_by(7) {
            let mut bad = bytes.clone();
            bad[i] ^= 0x04;
            std::fs::write(index_path(&parquet), &bad).expect("write");
            match IdIndex::read_for(&parquet) {
                None => assert!(
                    i < data,
                    "byte {i}: a block's damage refuses the whole index"
                ),
                Some(index) => {
                    assert!(i >= data, "byte {i} of the header flipped, yet read");
                    for s in &stories {
                        assert_eq!(
                            index.may_hold("metadata.correlation_uid", s),
                            Some(true),
                            "byte {i}: {s}"
                        );
                    }
                }
            }
        }
        // Cut short or grown: refused.
        for len in [bytes.len() - 1, data, 10] {
            std::fs::write(index_path(&parquet), &bytes[..len]).expect("write");
            assert!(IdIndex::read_for(&parquet).is_none(), "cut to {len}");
        }
        std::fs::write(index_path(&parquet), [bytes.as_slice(), &[0]].concat()).expect("write");
        assert!(IdIndex::read_for(&parquet).is_none());
        std::fs::remove_dir_all(&dir).expect("clean");
    }

    #[test]
    fn the_hash_is_the_formats_own() {
        // Fixed by the on-disk format: a change here makes old indexes lie.
        assert_eq!(hash(b""), fmix64(0xcbf2_9ce4_8422_2325));
        assert_eq!(hash(b"a"), fmix64(0xaf63_dc4c_8601_ec8c));
        // The whole layout (block choice, salts, checksums) for a fixed input: a change
        // here needs a new magic, or the indexes already written would lie.
        let b = batch(&[Some("s1"), Some("s2")], &[Some("p1"), None]);
        let mut builder = IdIndexBuilder::new(&b.schema());
        builder.add(&b);
        assert_eq!(crc32fast::hash(&builder.to_bytes()), 0x8f4f_8c88);
    }
}
