//! The write-ahead log: the agent's JSON lines, each framed with its sequence number
//! and a checksum, appended to segment files and made durable by group commit.
//!
//! A segment (`wal/<first-seq>.wal`) starts with the 8-byte magic `VIGILWL1`, then
//! records, each:
//!
//! ```text
//! u32 LE  payload length (1 ..= MAX_RECORD)
//! u32 LE  CRC-32 of the next 8 bytes and the payload
//! u64 LE  sequence number (one more than the record before it)
//! payload the event's JSON line, without its newline
//! ```
//!
//! Reading stops at the first record that is cut short, fails its checksum or breaks
//! the sequence: in the segment being written that is a torn tail (a crash part-way
//! through a write), cut off at open and reported; in an older segment it is damage,
//! reported, and the rest of that segment skipped.

use crate::{layout, Problem};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The first bytes of every segment.
pub const MAGIC: &[u8; 8] = b"VIGILWL1";
/// Bytes before a record's payload.
pub const RECORD_HEADER: usize = 16;
/// The largest payload a record may have (a larger length is damage).
pub const MAX_RECORD: usize = 16 << 20;

/// Why a segment's reading stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Byte offset of the first record not read.
    pub offset: u64,
    /// What is wrong there.
    pub what: String,
    /// Whether the bytes simply ended part-way through a record (a torn tail, or the
    /// end of a piece read from a segment), rather than holding a bad record.
    pub cut: bool,
}

/// What reading a segment found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scan {
    /// Records read.
    pub records: u64,
    /// First and last sequence numbers read.
    pub seqs: Option<(u64, u64)>,
    /// Where the good records end.
    pub good_end: u64,
    /// Why reading stopped early, if it did.
    pub damage: Option<Damage>,
}

/// Reads the records of a segment's bytes, calling `each(seq, payload)` for every good
/// one; never panics, whatever the bytes.
pub fn scan(bytes: &[u8], each: impl FnMut(u64, &[u8])) -> Scan {
    let mut out = Scan::default();
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        out.damage = Some(Damage {
            offset: 0,
            cut: bytes.len() < MAGIC.len(),
            what: if bytes.len() < MAGIC.len() {
                format!("header cut short ({} bytes)", bytes.len())
            } else {
                "not a Vigil log segment (bad magic)".to_string()
            },
        });
        return out;
    }
    scan_records(bytes, MAGIC.len(), each)
}

/// Reads the records of `bytes` from byte `start` on (a segment's bytes past its magic,
/// or a piece of a segment read from a record's start), calling `each(seq, payload)` for
/// every good one; offsets in the result are within `bytes`. A record cut short at the
/// end of a piece is reported as damage there, as in a torn tail.
pub fn scan_records(bytes: &[u8], start: usize, mut each: impl FnMut(u64, &[u8])) -> Scan {
    let mut out = Scan::default();
    let mut at = start.min(bytes.len());
    out.good_end = at as u64;
    let mut prev: Option<u64> = None;
    while at < bytes.len() {
        let stop = |what: String, cut: bool| Damage {
            offset: at as u64,
            what,
            cut,
        };
        let rest = &bytes[at..];
        if rest.len() < RECORD_HEADER {
            out.damage = Some(stop(
                format!("record header cut short ({} bytes)", rest.len()),
                true,
            ));
            break;
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let mut seq_bytes = [0u8; 8];
        seq_bytes.copy_from_slice(&rest[8..16]);
        let seq = u64::from_le_bytes(seq_bytes);
        if len == 0 || len > MAX_RECORD {
            out.damage = Some(stop(format!("record length {len} out of range"), false));
            break;
        }
        if rest.len() - RECORD_HEADER < len {
            out.damage = Some(stop(
                format!(
                    "record cut short ({} of {len} payload bytes)",
                    rest.len() - RECORD_HEADER
                ),
                true,
            ));
            break;
        }
        let payload = &rest[RECORD_HEADER..RECORD_HEADER + len];
        let mut h = crc32fast::Hasher::new();
        h.update(&seq_bytes);
        h.update(payload);
        if h.finalize() != crc {
            out.damage = Some(stop(
                format!("checksum mismatch (record of seq {seq}?)"),
                false,
            ));
            break;
        }
        if let Some(p) = prev {
            if seq != p + 1 {
                out.damage = Some(stop(format!("sequence jumps from {p} to {seq}"), false));
                break;
            }
        }
        each(seq, payload);
        prev = Some(seq);
        out.records += 1;
        out.seqs = Some((out.seqs.map_or(seq, |s| s.0), seq));
        at += RECORD_HEADER + len;
        out.good_end = at as u64;
    }
    out
}

/// Appends one framed record to `buf`.
pub fn frame(buf: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    let seq_bytes = seq.to_le_bytes();
    let mut h = crc32fast::Hasher::new();
    h.update(&seq_bytes);
    h.update(payload);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&h.finalize().to_le_bytes());
    buf.extend_from_slice(&seq_bytes);
    buf.extend_from_slice(payload);
}

/// A segment on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Its file.
    pub path: PathBuf,
    /// The first sequence number (from its name).
    pub first: u64,
}

/// The segments of a store, oldest first.
pub fn segments(root: &Path) -> std::io::Result<Vec<Segment>> {
    let dir = layout::wal_dir(root);
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if let Some(first) = name.to_str().and_then(layout::segment_first) {
            out.push(Segment {
                path: entry.path(),
                first,
            });
        }
    }
    out.sort_by_key(|s| s.first);
    Ok(out)
}

/// Reads a whole segment file and scans it.
pub fn read_segment(path: &Path, each: impl FnMut(u64, &[u8])) -> Result<Scan, std::io::Error> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    Ok(scan(&bytes, each))
}

/// The segment being written.
pub struct Writer {
    root: PathBuf,
    file: File,
    path: PathBuf,
    first: u64,
    next: u64,
    bytes: u64,
    synced: u64,
    opened_ms: i64,
    buf: Vec<u8>,
}

/// What opening the log found and did.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Torn tails cut and damaged segments skipped.
    pub problems: Vec<Problem>,
    /// Bytes cut off the last segment.
    pub cut_bytes: u64,
    /// The last sequence number in the log (0: none).
    pub last_seq: u64,
}

impl Writer {
    /// Opens the log under `root` for appending: scans every segment, cuts a torn tail
    /// off the last one (reported), and starts a new segment whose first sequence follows
    /// everything already stored (`floor`: the highest sequence the lake or the
    /// compaction mark knows).
    pub fn open(root: &Path, floor: u64, now_ms: i64) -> Result<(Writer, Recovery), Problem> {
        let dir = layout::wal_dir(root);
        std::fs::create_dir_all(&dir).map_err(|e| Problem::io(&dir, e))?;
        let segs = segments(root).map_err(|e| Problem::io(&dir, e))?;
        let mut rec = Recovery {
            last_seq: floor,
            ..Recovery::default()
        };
        for (i, seg) in segs.iter().enumerate() {
            let scan = read_segment(&seg.path, |_, _| {}).map_err(|e| Problem::io(&seg.path, e))?;
            if let Some((_, last)) = scan.seqs {
                rec.last_seq = rec.last_seq.max(last);
            }
            let last_one = i + 1 == segs.len();
            if let Some(d) = &scan.damage {
                let len = std::fs::metadata(&seg.path).map_or(0, |m| m.len());
                let cut = len.saturating_sub(d.offset);
                if last_one {
                    rec.problems.push(Problem {
                        path: seg.path.clone(),
                        offset: Some(d.offset),
                        what: format!(
                            "torn tail cut: {cut} bytes after {} good records ({})",
                            scan.records, d.what
                        ),
                    });
                    rec.cut_bytes += cut;
                    let f = OpenOptions::new()
                        .write(true)
                        .open(&seg.path)
                        .map_err(|e| Problem::io(&seg.path, e))?;
                    f.set_len(scan.good_end.max(MAGIC.len() as u64))
                        .and_then(|()| f.sync_all())
                        .map_err(|e| Problem::io(&seg.path, e))?;
                } else {
                    rec.problems.push(Problem {
                        path: seg.path.clone(),
                        offset: Some(d.offset),
                        what: format!(
                            "damaged segment: {cut} bytes skipped after {} good records ({})",
                            scan.records, d.what
                        ),
                    });
                }
            }
            if last_one && scan.damage.is_none() {
                // Written before a crash but perhaps never fsynced: durable from now on.
                File::open(&seg.path)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| Problem::io(&seg.path, e))?;
            }
            if scan.records == 0 && (scan.damage.is_none() || last_one) {
                // An empty segment (created just before a crash): nothing to keep.
                let _ = std::fs::remove_file(&seg.path);
            }
        }
        let first = rec.last_seq + 1;
        let w = Writer::create(root, first, now_ms)?;
        Ok((w, rec))
    }

    fn create(root: &Path, first: u64, now_ms: i64) -> Result<Writer, Problem> {
        let path = layout::segment_path(root, first);
        // Append mode: after a failed write the file is cut back to its last whole
        // record and the next write lands there.
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Problem::io(&path, e))?;
        file.set_len(0)
            .and_then(|()| file.write_all(MAGIC))
            .map_err(|e| Problem::io(&path, e))?;
        file.sync_all().map_err(|e| Problem::io(&path, e))?;
        sync_dir(&layout::wal_dir(root)).map_err(|e| Problem::io(&path, e))?;
        Ok(Writer {
            root: root.to_path_buf(),
            file,
            path,
            first,
            next: first,
            bytes: MAGIC.len() as u64,
            synced: first - 1,
            opened_ms: now_ms,
            buf: Vec::with_capacity(1 << 20),
        })
    }

    /// Appends every non-empty line of `lines` (JSON lines, each ending in `\n` but
    /// perhaps the last) as one record each, in one write. Returns how many.
    pub fn append_lines(&mut self, lines: &[u8]) -> std::io::Result<u64> {
        self.buf.clear();
        let start = self.next;
        self.buf
            .reserve(lines.len() + lines.len() / 64 + RECORD_HEADER);
        let mut from = 0;
        for end in memchr::memchr_iter(b'\n', lines).chain([lines.len()]) {
            let line = &lines[from..end];
            from = end + 1;
            if line.is_empty() {
                continue;
            }
            frame(&mut self.buf, self.next, line);
            self.next += 1;
        }
        if let Err(e) = self.file.write_all(&self.buf) {
            // The records are not counted; what reached the file is cut off again, so
            // the records after them do not follow a torn one.
            self.next = start;
            let _ = self.file.set_len(self.bytes);
            return Err(e);
        }
        self.bytes += self.buf.len() as u64;
        Ok(self.next - start)
    }

    /// Makes everything appended durable (fdatasync); returns the durable sequence.
    pub fn sync(&mut self) -> std::io::Result<u64> {
        if self.synced + 1 < self.next {
            self.file.sync_data()?;
            self.synced = self.next - 1;
        }
        Ok(self.synced)
    }

    /// The last sequence made durable.
    pub fn durable(&self) -> u64 {
        self.synced
    }

    /// The last sequence appended (durable or not).
    pub fn last_appended(&self) -> u64 {
        self.next - 1
    }

    /// Bytes in the segment being written.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// When the segment was started (ms since the epoch).
    pub fn opened_ms(&self) -> i64 {
        self.opened_ms
    }

    /// Whether the segment holds records.
    pub fn has_records(&self) -> bool {
        self.next > self.first
    }

    /// Syncs and closes this segment and starts the next one: returns the closed
    /// segment, ready for compaction.
    pub fn roll(&mut self, now_ms: i64) -> Result<Segment, Problem> {
        self.sync().map_err(|e| Problem::io(&self.path, e))?;
        let next = Writer::create(&self.root, self.next, now_ms)?;
        let old = std::mem::replace(self, next);
        Ok(Segment {
            path: old.path,
            first: old.first,
        })
    }
}

/// Makes a directory's entries (a new or renamed file) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(records: &[(u64, &str)]) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        for (s, p) in records {
            frame(&mut b, *s, p.as_bytes());
        }
        b
    }

    #[test]
    fn records_read_back_in_order() {
        let b = segment(&[(5, "{\"a\":1}"), (6, "{\"b\":2}")]);
        let mut got = Vec::new();
        let s = scan(&b, |seq, p| got.push((seq, p.to_vec())));
        assert_eq!(s.records, 2);
        assert_eq!(s.seqs, Some((5, 6)));
        assert_eq!(s.good_end, b.len() as u64);
        assert_eq!(s.damage, None);
        assert_eq!(got[1], (6, b"{\"b\":2}".to_vec()));
    }

    #[test]
    fn every_cut_and_every_flipped_byte_stops_reading_with_its_offset() {
        let b = segment(&[(1, "{\"a\":1}"), (2, "{\"bb\":22}"), (3, "{\"c\":3}")]);
        let second = (MAGIC.len() + RECORD_HEADER + 7) as u64;
        for cut in 0..b.len() {
            let s = scan(&b[..cut], |_, _| {});
            assert!(s.good_end <= cut as u64);
            assert!(s.damage.is_some() || s.good_end == cut as u64, "cut {cut}");
        }
        for i in second as usize..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x40;
            let s = scan(&bad, |_, _| {});
            let d = s.damage.expect("damage found");
            assert!(d.offset >= second, "byte {i}: {d:?}");
            assert!(s.records >= 1 && s.records < 3, "byte {i}");
        }
    }

    #[test]
    fn a_sequence_that_jumps_is_damage() {
        let b = segment(&[(1, "x"), (3, "y")]);
        let s = scan(&b, |_, _| {});
        assert_eq!(s.records, 1);
        assert!(s.damage.expect("damage").what.contains("jumps from 1 to 3"));
    }
}
