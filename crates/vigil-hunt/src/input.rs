//! Reading inputs: cutting each file into units of work (EVTX chunks, blocks of whole JSON
//! lines, blocks of the values of a `.json` file) that the matching threads take in turn.
//!
//! Lines and values are bounded: one longer than [`crate::HuntConfig::max_record`] is
//! reported (file, line or offset) and skipped, and the rest of the file is read. The
//! reader looks for line ends only in bytes it has not looked at yet, so a long line costs
//! time in proportion to its length.

use crate::discover::{read_full, Format, InputFile, Opener, Rows};
use crate::error::{InputError, Location};
use crate::split::{Mark, Splitter};
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{self, BufReader, Read};

/// Size of an EVTX file header block.
pub(crate) const EVTX_HEADER: usize = 4096;
/// Size of an EVTX chunk.
pub(crate) const EVTX_CHUNK: usize = 65536;
/// Bytes read at a time from JSON inputs, and about the size of a unit of them.
pub(crate) const BLOCK: usize = 256 << 10;

/// Buffers handed back by the matching threads for the readers to fill again, so that each
/// unit does not cost an allocation and a free on two threads (nor, for blocks this large,
/// fresh pages from the kernel).
#[derive(Default)]
pub(crate) struct Pool(std::sync::Mutex<Vec<Vec<u8>>>);

impl Pool {
    /// Buffers kept at most.
    const MAX: usize = 64;

    /// An empty buffer (with the capacity it had).
    pub(crate) fn take(&self) -> Vec<u8> {
        let mut v = self
            .0
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_default();
        v.clear();
        v
    }

    /// A zeroed buffer of `len` bytes.
    pub(crate) fn get(&self, len: usize) -> Vec<u8> {
        let mut v = self.take();
        v.resize(len, 0);
        v
    }

    /// Gives a buffer back. Buffers grown far past a block (by a long line) are dropped.
    pub(crate) fn put(&self, v: Vec<u8>) {
        if v.capacity() > 4 * BLOCK {
            return;
        }
        if let Ok(mut p) = self.0.lock() {
            if p.len() < Self::MAX {
                p.push(v);
            }
        }
    }
}

/// Where a value of a `.json` file is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ValueAt {
    /// Its 1-based index among the file's values.
    pub(crate) index: u64,
    /// Its byte offset in the (decompressed) file.
    pub(crate) offset: u64,
    /// The end of its text in the unit's `data`.
    pub(crate) end: u32,
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
    /// Whole lines of a JSON lines file (the last may lack its newline at the end of the
    /// file); `first_line` is the 1-based number of the first, `offset` its byte offset.
    Lines {
        file: u32,
        first_line: u64,
        offset: u64,
        data: Vec<u8>,
    },
    /// Values of a `.json` file, their texts one after another in `data`.
    Values {
        file: u32,
        data: Vec<u8>,
        values: Vec<ValueAt>,
    },
    /// Records already parsed ([`Rows`]); `first` is the 1-based number of the first
    /// among the input's records.
    Rows {
        file: u32,
        first: u64,
        rows: Box<dyn Rows>,
    },
}

impl Work {
    /// The bytes of input this unit covers (for progress).
    pub(crate) fn bytes(&self) -> u64 {
        match self {
            Work::Evtx { data, .. } | Work::Lines { data, .. } | Work::Values { data, .. } => {
                data.len() as u64
            }
            Work::Rows { rows, .. } => rows.bytes(),
        }
    }

    /// The input file it is from.
    pub(crate) fn file(&self) -> u32 {
        match self {
            Work::Evtx { file, .. }
            | Work::Lines { file, .. }
            | Work::Values { file, .. }
            | Work::Rows { file, .. } => *file,
        }
    }

    /// Where it starts, for an error about it as a whole.
    pub(crate) fn location(&self) -> Location {
        match self {
            Work::Evtx { offset, .. } => Location::Offset(*offset),
            Work::Lines { first_line, .. } => Location::Line(*first_line),
            Work::Values { values, .. } => Location::Offset(values.first().map_or(0, |v| v.offset)),
            Work::Rows { first, .. } => Location::Line(*first),
        }
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

/// What reading a file needs besides the file.
pub(crate) struct Reading<'a> {
    /// Buffers to fill.
    pub(crate) pool: &'a Pool,
    /// The longest line or value kept (see [`crate::HuntConfig::max_record`]).
    pub(crate) max_record: usize,
}

/// Reads `file` (index `id`) into units of work, handing each to `send`, which returns
/// false when the hunt is being stopped. Problems are handed to `error`; reading stops at
/// the first fatal one.
pub(crate) fn read_file(
    id: u32,
    file: &InputFile,
    how: &Reading<'_>,
    send: &mut dyn FnMut(Work) -> bool,
    error: &mut dyn FnMut(InputError),
) {
    let path = &file.path;
    let mut report = |location: Location, reason: String, fatal: bool| {
        error(InputError {
            path: path.to_path_buf(),
            location,
            reason,
            fatal,
        })
    };
    if let Some(opener) = &file.opener {
        if let Err((loc, reason)) = read_rows(id, opener, send) {
            report(loc, reason, true);
        }
        return;
    }
    let mut r = match open(file) {
        Ok(r) => r,
        Err(e) => {
            report(Location::File, format!("cannot open: {e}"), true);
            return;
        }
    };
    let result = match file.format {
        Format::Evtx => read_evtx(id, &mut *r, how.pool, send, &mut report),
        Format::JsonLines => read_lines(id, &mut *r, how, send, &mut report),
        Format::Json => read_values(id, &mut *r, how, send, &mut report),
    };
    if let Err((loc, reason)) = result {
        report(loc, reason, true);
    }
}

type ReadResult = Result<(), (Location, String)>;
type Report<'a> = dyn FnMut(Location, String, bool) + 'a;

/// Hands on the batches of records an [`Opener`] gives, each a unit of work.
fn read_rows(id: u32, opener: &Opener, send: &mut dyn FnMut(Work) -> bool) -> ReadResult {
    let batches = (opener.0)().map_err(|e| (Location::File, format!("cannot open: {e}")))?;
    let mut first = 1;
    for rows in batches {
        let rows = rows.map_err(|e| (Location::Line(first), format!("cannot read: {e}")))?;
        if rows.is_empty() {
            continue;
        }
        let n = rows.len() as u64;
        if !send(Work::Rows {
            file: id,
            first,
            rows,
        }) {
            return Ok(());
        }
        first += n;
    }
    Ok(())
}

fn read_evtx(
    id: u32,
    r: &mut dyn Read,
    pool: &Pool,
    send: &mut dyn FnMut(Work) -> bool,
    error: &mut Report<'_>,
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
            pool.put(data);
            return Ok(());
        }
        if data.iter().all(|b| *b == 0) {
            // An empty chunk, as dirty logs have.
            pool.put(data);
            number += 1;
            continue;
        }
        let is_chunk = data.starts_with(b"ElfChnk\0");
        if !is_chunk && number >= declared {
            // Past the chunks the header declares, anything but a chunk is slack space.
            pool.put(data);
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
            pool.put(data);
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

/// The reason given for a line or value longer than the limit.
pub(crate) fn too_long(what: &str, offset: u64, max: usize) -> String {
    format!(
        "{what} at offset {offset} is longer than the limit of {} bytes, skipped",
        max
    )
}

/// Reads into `buf` past its length, up to `BLOCK` bytes more (fewer only at the end of
/// the input); returns how many. A file is read straight into the buffer's spare
/// capacity, without zeroing it first.
fn read_more(r: &mut dyn Read, buf: &mut Vec<u8>) -> io::Result<usize> {
    buf.reserve(BLOCK);
    r.take(BLOCK as u64).read_to_end(buf)
}

fn read_lines(
    id: u32,
    r: &mut dyn Read,
    how: &Reading<'_>,
    send: &mut dyn FnMut(Work) -> bool,
    error: &mut Report<'_>,
) -> ReadResult {
    let max = how.max_record.max(1);
    // `buf` holds the start of a line whose end is not read yet (no newline), then what
    // was just read: only that is searched for newlines.
    let mut buf = how.pool.take();
    // The 1-based number and the offset of the first line in `buf`.
    let mut line = 1u64;
    let mut offset = 0u64;
    // Skipping a line longer than `max`: nothing is kept until its end.
    let mut skipping = false;
    loop {
        let start = buf.len();
        let n = read_more(r, &mut buf).map_err(|e| {
            (
                Location::Offset(offset + start as u64),
                format!("read error (at line {line}): {e}"),
            )
        })?;
        if n == 0 {
            if !buf.is_empty() && !skipping {
                send(Work::Lines {
                    file: id,
                    first_line: line,
                    offset,
                    data: buf,
                });
            } else {
                how.pool.put(buf);
            }
            return Ok(());
        }
        if skipping {
            // The long line ends at the first newline read.
            match memchr::memchr(b'\n', &buf) {
                Some(end) => {
                    skipping = false;
                    offset += end as u64 + 1;
                    line += 1;
                    buf.drain(..=end);
                }
                None => {
                    offset += buf.len() as u64;
                    buf.clear();
                    continue;
                }
            }
        }
        // Send the whole lines; keep the start of the last one for the next block.
        let from = start.min(buf.len());
        if let Some(i) = memchr::memrchr(b'\n', &buf[from..]) {
            let end = from + i + 1;
            let mut rest = how.pool.take();
            rest.extend_from_slice(&buf[end..]);
            buf.truncate(end);
            let lines = memchr::memchr_iter(b'\n', &buf).count() as u64;
            let (first_line, first_offset) = (line, offset);
            line += lines;
            offset += end as u64;
            if !send(Work::Lines {
                file: id,
                first_line,
                offset: first_offset,
                data: std::mem::replace(&mut buf, rest),
            }) {
                return Ok(());
            }
        }
        if buf.len() > max {
            // One line, no end in sight: report it, and skip to its end.
            error(
                Location::Line(line),
                too_long(&format!("line {line}"), offset, max),
                false,
            );
            skipping = true;
            offset += buf.len() as u64;
            buf.clear();
        }
    }
}

/// The values of a `.json` file being gathered into units.
struct Values<'a> {
    id: u32,
    how: &'a Reading<'a>,
    data: Vec<u8>,
    values: Vec<ValueAt>,
    /// The 1-based index of the next value.
    next: u64,
    /// The value being read: its offset, where its text starts in `data`, and whether it
    /// is too long (and no longer copied).
    open: Option<(u64, usize, bool)>,
}

impl Values<'_> {
    /// Copies more of the open value's text.
    fn copy(&mut self, bytes: &[u8]) {
        let max = self.how.max_record.max(1);
        if let Some((_, start, long)) = &mut self.open {
            if !*long {
                if self.data.len() - *start + bytes.len() > max {
                    *long = true;
                    self.data.truncate(*start);
                } else {
                    self.data.extend_from_slice(bytes);
                }
            }
        }
    }

    /// Ends the open value; false if the hunt is being stopped.
    fn close(&mut self, send: &mut dyn FnMut(Work) -> bool, error: &mut Report<'_>) -> bool {
        let Some((offset, _, long)) = self.open.take() else {
            return true;
        };
        let index = self.next;
        self.next += 1;
        if long {
            let reason = too_long(&format!("value {index}"), offset, self.how.max_record);
            error(Location::Offset(offset), reason, false);
            return true;
        }
        self.values.push(ValueAt {
            index,
            offset,
            end: self.data.len() as u32,
        });
        self.data.len() < BLOCK || self.send(send)
    }

    /// Sends the values gathered; false if the hunt is being stopped.
    fn send(&mut self, send: &mut dyn FnMut(Work) -> bool) -> bool {
        if self.values.is_empty() {
            return true;
        }
        let data = std::mem::replace(&mut self.data, self.how.pool.take());
        send(Work::Values {
            file: self.id,
            data,
            values: std::mem::take(&mut self.values),
        })
    }
}

fn read_values(
    id: u32,
    r: &mut dyn Read,
    how: &Reading<'_>,
    send: &mut dyn FnMut(Work) -> bool,
    error: &mut Report<'_>,
) -> ReadResult {
    let mut splitter = Splitter::default();
    let mut marks = Vec::new();
    let mut chunk = how.pool.take();
    let mut v = Values {
        id,
        how,
        data: how.pool.take(),
        values: Vec::new(),
        next: 1,
        open: None,
    };
    let mut offset = 0u64;
    loop {
        chunk.clear();
        let n = read_more(r, &mut chunk)
            .map_err(|e| (Location::Offset(offset), format!("read error: {e}")))?;
        if n == 0 {
            how.pool.put(chunk);
            let end = splitter.finish();
            if end == Ok(true) && !v.close(send, error) {
                return Ok(());
            }
            v.send(send);
            return end
                .map(|_| ())
                .map_err(|r| (Location::Offset(offset), r.into()));
        }
        marks.clear();
        splitter.scan(&chunk, &mut marks);
        // Bytes of `chunk` from `from` on belong to the open value, if any.
        let mut from = 0usize;
        for mark in &marks {
            match *mark {
                Mark::Start(at) => {
                    v.open = Some((offset + at as u64, v.data.len(), false));
                    from = at;
                }
                Mark::End(at) => {
                    v.copy(&chunk[from..at]);
                    if !v.close(send, error) {
                        return Ok(());
                    }
                }
                Mark::Error(at, reason) => {
                    v.send(send);
                    return Err((Location::Offset(offset + at as u64), reason.into()));
                }
            }
        }
        if v.open.is_some() {
            v.copy(&chunk[from..]);
        }
        offset += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `text` as a JSON lines or `.json` file; the units' lines or values (with
    /// their numbers) and the errors.
    fn read(text: &[u8], format: Format, max: usize) -> (Vec<(u64, String)>, Vec<String>) {
        let dir = std::env::temp_dir().join(format!("vigil-hunt-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join(format!("t{}.{}", text.len(), format.name()));
        std::fs::write(&path, text).expect("write");
        let file = InputFile {
            opener: None,
            path: std::sync::Arc::from(path.as_path()),
            format,
            gzip: false,
            size: text.len() as u64,
        };
        let pool = Pool::default();
        let how = Reading {
            pool: &pool,
            max_record: max,
        };
        let mut got = Vec::new();
        let mut errors = Vec::new();
        read_file(
            0,
            &file,
            &how,
            &mut |w| {
                match w {
                    Work::Lines {
                        first_line, data, ..
                    } => {
                        let text = String::from_utf8(data).expect("utf8");
                        for (i, l) in text.split_terminator('\n').enumerate() {
                            got.push((first_line + i as u64, l.to_string()));
                        }
                    }
                    Work::Values { data, values, .. } => {
                        let mut start = 0;
                        for v in &values {
                            let t = String::from_utf8(data[start..v.end as usize].to_vec());
                            got.push((v.index, t.expect("utf8")));
                            start = v.end as usize;
                        }
                    }
                    Work::Evtx { .. } | Work::Rows { .. } => unreachable!(),
                }
                true
            },
            &mut |e| errors.push(e.to_string()),
        );
        let _ = std::fs::remove_file(&path);
        // The last test out removes the directory (it is not empty while others run).
        let _ = std::fs::remove_dir(&dir);
        (got, errors)
    }

    #[test]
    fn a_line_with_no_newline_is_capped_and_the_rest_is_read() {
        // The bug: a line with no newline grew without bound, rescanned at every block.
        let long = "x".repeat(3 * BLOCK + 17);
        let text = format!("{{\"a\":1}}\n{long}\n{{\"b\":2}}\n{long}");
        let (got, errors) = read(text.as_bytes(), Format::JsonLines, BLOCK);
        let lines: Vec<_> = got.iter().map(|(n, l)| (*n, l.as_str())).collect();
        assert_eq!(lines, [(1, "{\"a\":1}"), (3, "{\"b\":2}")]);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].contains(":2: line 2 at offset 8 is longer than the limit"),
            "{errors:?}"
        );
        let second = 8 + long.len() as u64 + 1 + 8;
        assert!(
            errors[1].contains(&format!(":4: line 4 at offset {second} is longer")),
            "{errors:?}"
        );
    }

    #[test]
    fn lines_split_across_blocks_keep_their_numbers() {
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&format!(
                "{{\"i\":{i},\"pad\":\"{}\"}}\n",
                "p".repeat(i % 97)
            ));
        }
        text.push_str("{\"last\":true}");
        let (got, errors) = read(text.as_bytes(), Format::JsonLines, 1000);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(got.len(), 20_001);
        for (i, (n, l)) in got.iter().enumerate().take(20_000) {
            assert_eq!(*n, i as u64 + 1);
            assert!(l.starts_with(&format!("{{\"i\":{i},")), "{l}");
        }
        assert_eq!(got[20_000], (20_001, "{\"last\":true}".to_string()));
    }

    #[test]
    fn values_of_a_json_file_are_cut_out_and_long_ones_skipped() {
        let long = format!("{{\"s\":\"{}\"}}", "y".repeat(2 * BLOCK));
        let text = format!(" [ {{\"a\":[1,{{\"b\":\"]}}\\\"\"}}]}},\n{long} , 5,\"s\" ,{{}} ]  ");
        let (got, errors) = read(text.as_bytes(), Format::Json, BLOCK);
        let values: Vec<_> = got.iter().map(|(n, l)| (*n, l.as_str())).collect();
        assert_eq!(
            values,
            [
                (1, "{\"a\":[1,{\"b\":\"]}\\\"\"}]}"),
                (3, "5"),
                (4, "\"s\""),
                (5, "{}")
            ]
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains(":offset 27: value 2 at offset 27 is longer"),
            "{errors:?}"
        );
        // Objects one after another.
        let (got, errors) = read(b"{\"a\":1}{\"b\":2}\n  {\"c\":3}", Format::Json, 100);
        assert!(errors.is_empty(), "{errors:?}");
        let values: Vec<_> = got.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(values, ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]);
        // A file cut short inside a value: what came before is read, the cut reported.
        let (got, errors) = read(b"[{\"a\":1},{\"b\":", Format::Json, 100);
        assert_eq!(got.len(), 1);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains(":offset 14: "), "{errors:?}");
    }
}
