//! Inputs: finding the files under the given paths, telling their format, and cutting them
//! into units of work (EVTX chunks, blocks of JSON lines, batches of JSON values) that the
//! workers match in parallel.

use crate::error::{HuntError, InputError, Location};
use flate2::read::MultiGzDecoder;
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde_json::Value;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The format of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A Windows XML event log (`.evtx`).
    Evtx,
    /// One JSON object, a JSON array of objects, or objects one after another (`.json`).
    Json,
    /// One JSON object per line (`.jsonl`, `.ndjson`).
    JsonLines,
}

impl Format {
    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Evtx => "evtx",
            Format::Json => "json",
            Format::JsonLines => "jsonl",
        }
    }
}

/// One input file to hunt through.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// Its path.
    pub path: Arc<Path>,
    /// Its format.
    pub format: Format,
    /// Whether it is gzip-compressed.
    pub gzip: bool,
    /// Its size on disk, in bytes.
    pub size: u64,
}

/// The format a file name tells: `(format, gzip)`.
pub fn format_of_name(path: &Path) -> Option<(Format, bool)> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let (stem, gzip) = match name.strip_suffix(".gz") {
        Some(s) => (s.to_string(), true),
        None => (name, false),
    };
    let ext = stem.rsplit_once('.')?.1;
    let format = match ext {
        "evtx" => Format::Evtx,
        "json" => Format::Json,
        "jsonl" | "ndjson" => Format::JsonLines,
        _ => return None,
    };
    Some((format, gzip))
}

/// The format of a file named explicitly whose name says nothing: from its first bytes.
fn sniff(path: &Path) -> io::Result<Option<(Format, bool)>> {
    let mut head = [0u8; 8];
    let mut f = File::open(path)?;
    let n = read_full(&mut f, &mut head)?;
    let head = &head[..n];
    if head.starts_with(&[0x1f, 0x8b]) {
        let mut gz = MultiGzDecoder::new(File::open(path)?);
        let mut inner = [0u8; 8];
        let n = read_full(&mut gz, &mut inner).unwrap_or(0);
        return Ok(sniff_bytes(&inner[..n]).map(|f| (f, true)));
    }
    Ok(sniff_bytes(head).map(|f| (f, false)))
}

fn sniff_bytes(head: &[u8]) -> Option<Format> {
    if head.starts_with(b"ElfFile\0") {
        return Some(Format::Evtx);
    }
    match head.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{' | b'[') => Some(Format::Json),
        _ => None,
    }
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
pub(crate) fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Every input file under `paths`: files as given (their format from the name, else from
/// their first bytes), directories walked recursively for `.evtx`, `.json`, `.jsonl`,
/// `.ndjson` and the `.gz` forms of each. Sorted by path within each directory.
///
/// A path that does not exist is an error; a file given explicitly whose format cannot be
/// told is reported in the second list and skipped.
pub fn discover(paths: &[PathBuf]) -> Result<(Vec<InputFile>, Vec<InputError>), HuntError> {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| HuntError::Input {
            path: p.clone(),
            reason: e.to_string(),
        })?;
        if meta.is_dir() {
            walk(p, &mut files, &mut skipped, &mut Vec::new());
            continue;
        }
        let format = match format_of_name(p) {
            Some(f) => Some(f),
            None => sniff(p).unwrap_or(None),
        };
        match format {
            Some((format, gzip)) => files.push(InputFile {
                path: Arc::from(p.as_path()),
                format,
                gzip,
                size: meta.len(),
            }),
            None => skipped.push(InputError {
                path: p.clone(),
                location: Location::File,
                reason: "not an EVTX, JSON or JSON lines file (by name or content)".into(),
                fatal: true,
            }),
        }
    }
    Ok((files, skipped))
}

fn walk(
    dir: &Path,
    files: &mut Vec<InputFile>,
    errors: &mut Vec<InputError>,
    open: &mut Vec<PathBuf>,
) {
    // Symbolic links are followed; a link back to a directory being walked is not.
    let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if open.contains(&real) {
        return;
    }
    open.push(real);
    walk_entries(dir, files, errors, open);
    open.pop();
}

fn walk_entries(
    dir: &Path,
    files: &mut Vec<InputFile>,
    errors: &mut Vec<InputError>,
    open: &mut Vec<PathBuf>,
) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(InputError {
                path: dir.to_path_buf(),
                location: Location::File,
                reason: format!("cannot list directory: {e}"),
                fatal: true,
            });
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            walk(&p, files, errors, open);
        } else if let Some((format, gzip)) = format_of_name(&p) {
            files.push(InputFile {
                path: Arc::from(p.as_path()),
                format,
                gzip,
                size: meta.len(),
            });
        }
    }
}

/// Size of an EVTX file header block.
pub(crate) const EVTX_HEADER: usize = 4096;
/// Size of an EVTX chunk.
pub(crate) const EVTX_CHUNK: usize = 65536;
/// Target size of a block of JSON lines handed to a worker.
const LINES_BLOCK: usize = 256 << 10;
/// JSON values per batch read from a `.json` file.
const VALUES_BATCH: usize = 256;

/// Chunk buffers handed back by the matching threads for the readers to fill again, so
/// that each 64 KiB chunk does not cost an allocation and a free on two threads.
#[derive(Default)]
pub(crate) struct Pool(std::sync::Mutex<Vec<Vec<u8>>>);

impl Pool {
    /// Buffers kept at most.
    const MAX: usize = 64;

    /// A zeroed buffer of `len` bytes.
    pub(crate) fn get(&self, len: usize) -> Vec<u8> {
        let mut v = self
            .0
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_default();
        v.clear();
        v.resize(len, 0);
        v
    }

    /// Gives a buffer back.
    pub(crate) fn put(&self, v: Vec<u8>) {
        if let Ok(mut p) = self.0.lock() {
            if p.len() < Self::MAX {
                p.push(v);
            }
        }
    }
}

/// A unit of work for a matching thread.
pub(crate) enum Work {
    /// One EVTX chunk (64 KiB; zero-padded when the file was cut short inside it).
    Evtx {
        file: u32,
        number: u64,
        offset: u64,
        data: Vec<u8>,
    },
    /// Whole lines of a JSON lines file; `first_line` is the 1-based number of the first.
    Lines {
        file: u32,
        first_line: u64,
        data: Vec<u8>,
    },
    /// JSON values of a `.json` file; `first` is the 1-based index of the first; `bytes`
    /// how much of the (decompressed) file they took.
    Values {
        file: u32,
        first: u64,
        values: Vec<Value>,
        bytes: u64,
    },
}

impl Work {
    /// The bytes of input this unit covers (for progress).
    pub(crate) fn bytes(&self) -> u64 {
        match self {
            Work::Evtx { data, .. } | Work::Lines { data, .. } => data.len() as u64,
            Work::Values { bytes, .. } => *bytes,
        }
    }
}

/// Counts the bytes read through it, for progress.
struct Counting<R> {
    inner: R,
    n: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.set(self.n.get() + k as u64);
        Ok(k)
    }
}

/// Opens a file for reading, decompressing gzip on the fly.
fn open(file: &InputFile) -> io::Result<Box<dyn Read + Send>> {
    let mut f = File::open(&file.path)?;
    // Gzip by content too: a compressed file whose name does not say so.
    let mut magic = [0u8; 2];
    let n = read_full(&mut f, &mut magic)?;
    io::Seek::seek(&mut f, io::SeekFrom::Start(0))?;
    if file.gzip || (n == 2 && magic == [0x1f, 0x8b]) {
        Ok(Box::new(MultiGzDecoder::new(BufReader::with_capacity(
            1 << 16,
            f,
        ))))
    } else {
        Ok(Box::new(f))
    }
}

/// Reads `file` (index `id`) into units of work, handing each to `send`, which returns
/// false when the hunt is being stopped. Problems are handed to `error`; reading stops at
/// the first fatal one.
pub(crate) fn read_file(
    id: u32,
    file: &InputFile,
    pool: &Pool,
    send: &mut dyn FnMut(Work) -> bool,
    error: &mut dyn FnMut(InputError),
) {
    let err = |location: Location, reason: String, fatal: bool| InputError {
        path: file.path.to_path_buf(),
        location,
        reason,
        fatal,
    };
    let mut r = match open(file) {
        Ok(r) => r,
        Err(e) => {
            error(err(Location::File, format!("cannot open: {e}"), true));
            return;
        }
    };
    let result = match file.format {
        Format::Evtx => read_evtx(id, &mut *r, pool, send, &mut |loc, reason, fatal| {
            error(err(loc, reason, fatal))
        }),
        Format::JsonLines => read_lines(id, &mut *r, send),
        Format::Json => read_json(id, r, send),
    };
    if let Err((loc, reason)) = result {
        error(err(loc, reason, true));
    }
}

type ReadResult = Result<(), (Location, String)>;

fn read_evtx(
    id: u32,
    r: &mut dyn Read,
    pool: &Pool,
    send: &mut dyn FnMut(Work) -> bool,
    error: &mut dyn FnMut(Location, String, bool),
) -> ReadResult {
    let mut header = vec![0u8; EVTX_HEADER];
    let n = read_full(r, &mut header).map_err(|e| (Location::Offset(0), e.to_string()))?;
    if n >= 8 && !header.starts_with(b"ElfFile\0") {
        return Err((
            Location::Offset(0),
            "not an EVTX file (no ElfFile signature)".into(),
        ));
    }
    if n < EVTX_HEADER {
        return Err((
            Location::Offset(n as u64),
            format!("truncated EVTX file: {n} bytes, shorter than the {EVTX_HEADER}-byte header"),
        ));
    }
    let header = evtx::EvtxFileHeader::from_bytes(&header)
        .map_err(|e| (Location::Offset(0), format!("not an EVTX file: {e}")))?;
    let declared = u64::from(header.chunk_count);
    let mut number = 0u64;
    loop {
        let offset = EVTX_HEADER as u64 + number * EVTX_CHUNK as u64;
        let mut data = pool.get(EVTX_CHUNK);
        let n = read_full(r, &mut data).map_err(|e| (Location::Offset(offset), e.to_string()))?;
        if n == 0 {
            return Ok(());
        }
        if data.iter().all(|b| *b == 0) {
            // An empty chunk, as dirty logs have.
            number += 1;
            continue;
        }
        let is_chunk = data.starts_with(b"ElfChnk\0");
        if !is_chunk && number >= declared {
            // Past the chunks the header declares, anything but a chunk is slack space.
            number += 1;
            if n < EVTX_CHUNK {
                return Ok(());
            }
            continue;
        }
        if n < EVTX_CHUNK {
            // Cut short: hunt the records that are whole, then report the cut.
            if is_chunk
                && !send(Work::Evtx {
                    file: id,
                    number,
                    offset,
                    data,
                })
            {
                return Ok(());
            }
            return Err((
                Location::Offset(offset + n as u64),
                format!(
                    "truncated EVTX file: chunk {number} at offset {offset} has {n} of \
                     {EVTX_CHUNK} bytes (its whole records were hunted)"
                ),
            ));
        }
        if !is_chunk {
            error(
                Location::Offset(offset),
                format!("chunk {number}: bad chunk signature, chunk skipped"),
                false,
            );
        } else if !send(Work::Evtx {
            file: id,
            number,
            offset,
            data,
        }) {
            return Ok(());
        }
        number += 1;
    }
}

fn read_lines(id: u32, r: &mut dyn Read, send: &mut dyn FnMut(Work) -> bool) -> ReadResult {
    let mut carry: Vec<u8> = Vec::new();
    let mut line = 1u64;
    let mut offset = 0u64;
    loop {
        let mut buf = std::mem::take(&mut carry);
        let start = buf.len();
        buf.resize(start + LINES_BLOCK, 0);
        let n = read_full(r, &mut buf[start..]).map_err(|e| {
            (
                Location::Offset(offset),
                format!("read error (at line {line}): {e}"),
            )
        })?;
        offset += n as u64;
        buf.truncate(start + n);
        if n == 0 {
            if !buf.is_empty() {
                send(Work::Lines {
                    file: id,
                    first_line: line,
                    data: buf,
                });
            }
            return Ok(());
        }
        // Hand over whole lines; keep the partial last one for the next block.
        match buf.iter().rposition(|b| *b == b'\n') {
            Some(end) => {
                carry = buf[end + 1..].to_vec();
                buf.truncate(end + 1);
                let lines = buf.iter().filter(|b| **b == b'\n').count() as u64;
                if !send(Work::Lines {
                    file: id,
                    first_line: line,
                    data: buf,
                }) {
                    return Ok(());
                }
                line += lines;
            }
            None => carry = buf,
        }
    }
}

/// Hands each element of a top-level array to a callback as it is parsed.
struct ArraySeed<'a> {
    f: &'a mut dyn FnMut(Value) -> bool,
}

impl<'de> DeserializeSeed<'de> for ArraySeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ArraySeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(v) = seq.next_element::<Value>()? {
            if !(self.f)(v) {
                // Stopping: drain nothing more.
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                return Ok(());
            }
        }
        Ok(())
    }
}

fn read_json(id: u32, r: Box<dyn Read + Send>, send: &mut dyn FnMut(Work) -> bool) -> ReadResult {
    let count = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let mut counted = 0u64;
    let r = Counting {
        inner: r,
        n: count.clone(),
    };
    let mut r = BufReader::with_capacity(1 << 16, r);
    // Is the top level an array? Peek at the first non-blank byte.
    let first = loop {
        let buf = io::BufRead::fill_buf(&mut r)
            .map_err(|e| (Location::Offset(0), format!("read error: {e}")))?;
        if buf.is_empty() {
            return Ok(());
        }
        let bom = usize::from(buf.starts_with(b"\xEF\xBB\xBF")) * 3;
        if bom > 0 {
            io::BufRead::consume(&mut r, bom);
            continue;
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                let b = buf[i];
                io::BufRead::consume(&mut r, i);
                break b;
            }
            None => {
                let n = buf.len();
                io::BufRead::consume(&mut r, n);
            }
        }
    };
    let mut batch = Vec::with_capacity(VALUES_BATCH);
    let mut next = 1u64;
    let mut stopped = false;
    let mut flush = |batch: &mut Vec<Value>, next: &mut u64| -> bool {
        if batch.is_empty() {
            return true;
        }
        let values = std::mem::replace(batch, Vec::with_capacity(VALUES_BATCH));
        let first = *next;
        *next += values.len() as u64;
        let bytes = count.get() - counted;
        counted = count.get();
        send(Work::Values {
            file: id,
            first,
            values,
            bytes,
        })
    };
    let json_err = |e: serde_json::Error, what: &str| {
        (
            Location::Line(e.line() as u64),
            format!("{what} (column {}): {e}", e.column()),
        )
    };
    if first == b'[' {
        let mut de = serde_json::Deserializer::from_reader(r);
        let mut push = |v: Value| {
            batch.push(v);
            if batch.len() >= VALUES_BATCH && !flush(&mut batch, &mut next) {
                stopped = true;
                return false;
            }
            true
        };
        let res = ArraySeed { f: &mut push }.deserialize(&mut de);
        let done = res.and_then(|()| de.end());
        if !stopped {
            flush(&mut batch, &mut next);
        }
        return done.map_err(|e| json_err(e, "invalid JSON"));
    }
    let stream = serde_json::Deserializer::from_reader(r).into_iter::<Value>();
    for v in stream {
        match v {
            Ok(v) => {
                batch.push(v);
                if batch.len() >= VALUES_BATCH && !flush(&mut batch, &mut next) {
                    return Ok(());
                }
            }
            Err(e) => {
                flush(&mut batch, &mut next);
                return Err(json_err(e, "invalid JSON"));
            }
        }
    }
    flush(&mut batch, &mut next);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let f = |s: &str| format_of_name(Path::new(s));
        assert_eq!(f("a/Security.evtx"), Some((Format::Evtx, false)));
        assert_eq!(f("x.EVTX.gz"), Some((Format::Evtx, true)));
        assert_eq!(f("x.ndjson"), Some((Format::JsonLines, false)));
        assert_eq!(f("x.json.gz"), Some((Format::Json, true)));
        assert_eq!(f("x.txt"), None);
        assert_eq!(f("gz"), None);
    }
}
