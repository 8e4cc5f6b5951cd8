//! The agent's queue for its server: what the agent writes, kept on disk until the server
//! says it has stored it, so that a server down for an hour, or an agent restarted,
//! loses nothing while the queue has room.
//!
//! Two streams, each a log in the store's format (`vigil_store::wal`: framed,
//! checksummed records with increasing sequence numbers, a torn tail cut at open):
//!
//! ```text
//! DIR/findings/wal/<first-seq>.wal   findings, incidents and remediation records
//! DIR/findings/acked                 the last sequence the server acknowledged
//! DIR/events/wal/<first-seq>.wal     every other event
//! DIR/events/acked
//! ```
//!
//! * A record is sent only once it is durable (fsynced), and is deleted only once the
//!   server has acknowledged it; an acknowledgement lost in a crash means a batch sent
//!   twice, which the server recognises by (agent, stream, sequence).
//! * Both streams share one budget of bytes on disk. When it is used up, new events are
//!   dropped; a finding makes room by deleting the oldest segment of events not yet sent,
//!   and is dropped only when no such segment is left: findings are lost last. Every
//!   record lost is counted (`dropped`, per stream).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use vigil_store::wal::{self, Segment, Writer, MAGIC, RECORD_HEADER};
use vigil_store::Problem;

/// One of the two streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Detection and Incident Findings and Remediation Activity: sent first, lost last.
    Findings,
    /// Every other event.
    Events,
}

impl Stream {
    /// Both streams, in the order they are sent.
    pub const ALL: [Stream; 2] = [Stream::Findings, Stream::Events];

    /// Its name (in paths and in the server's route).
    pub fn name(self) -> &'static str {
        match self {
            Stream::Findings => "findings",
            Stream::Events => "events",
        }
    }

    /// The stream of a name.
    pub fn parse(name: &str) -> Option<Stream> {
        Stream::ALL.into_iter().find(|s| s.name() == name)
    }

    fn index(self) -> usize {
        match self {
            Stream::Findings => 0,
            Stream::Events => 1,
        }
    }
}

/// Where the queue lives and how large it may grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Its directory (`STATE_DIR/server/spool`).
    pub dir: PathBuf,
    /// Bytes on disk at most, both streams together.
    pub max_bytes: u64,
    /// A segment is closed past this many bytes (the unit of deletion).
    pub segment_bytes: u64,
}

impl SpoolConfig {
    /// The defaults: 1 GiB, in segments of 8 MiB.
    pub fn new(dir: PathBuf) -> SpoolConfig {
        SpoolConfig {
            dir,
            max_bytes: 1 << 30,
            segment_bytes: 8 << 20,
        }
    }
}

/// What the writers, the shipper and the statistics share.
#[derive(Debug, Default)]
pub struct SpoolShared {
    /// Bytes of every segment on disk.
    bytes: AtomicU64,
    /// Per stream: the last sequence fsynced.
    durable: [AtomicU64; 2],
    /// Per stream: the last sequence the server acknowledged.
    acked: [AtomicU64; 2],
    /// Per stream: the first sequence of the segment being written.
    current: [AtomicU64; 2],
    /// Per stream: records lost (no room, or deleted to make room, before being sent).
    dropped: [AtomicU64; 2],
    /// Per stream: records the server acknowledged.
    sent: [AtomicU64; 2],
    /// Per stream: records the server refused for good (a malformed batch), logged.
    rejected: [AtomicU64; 2],
    /// Writers closed (the shipper's last pass waits for both).
    closed: AtomicU64,
}

/// A stream's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamStats {
    /// The last sequence fsynced.
    pub durable: u64,
    /// The last sequence acknowledged.
    pub acked: u64,
    /// Records lost.
    pub dropped: u64,
    /// Records acknowledged by the server.
    pub sent: u64,
    /// Records refused by the server for good.
    pub rejected: u64,
}

impl SpoolShared {
    /// A stream's counters.
    pub fn stats(&self, s: Stream) -> StreamStats {
        let i = s.index();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StreamStats {
            durable: get(&self.durable[i]),
            acked: get(&self.acked[i]),
            dropped: get(&self.dropped[i]),
            sent: get(&self.sent[i]),
            rejected: get(&self.rejected[i]),
        }
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Records durable and not acknowledged yet (in both streams).
    pub fn backlog(&self) -> u64 {
        Stream::ALL
            .iter()
            .map(|s| {
                let st = self.stats(*s);
                st.durable.saturating_sub(st.acked)
            })
            .sum()
    }

    /// Whether both writers have closed.
    pub fn writers_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed) >= 2
    }

    fn sub_bytes(&self, n: u64) {
        let _ = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(n))
            });
    }
}

fn stream_root(dir: &Path, s: Stream) -> PathBuf {
    dir.join(s.name())
}

fn mark_path(root: &Path) -> PathBuf {
    root.join("acked")
}

fn read_mark(root: &Path) -> u64 {
    std::fs::read_to_string(mark_path(root))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// Writes the acknowledged mark (through a rename; not fsynced: a mark lost in a crash
/// only means a batch sent again, which the server recognises).
fn write_mark(root: &Path, seq: u64) -> std::io::Result<()> {
    let tmp = root.join("acked.tmp");
    std::fs::write(&tmp, format!("{seq}\n"))?;
    std::fs::rename(&tmp, mark_path(root))
}

/// Deletes the closed segments (those before `current`) whose records are all at or
/// below `acked` (their bytes taken off the queue's count).
fn delete_acked(root: &Path, acked: u64, current: u64, shared: &SpoolShared) {
    let Ok(segs) = wal::segments(root) else {
        return;
    };
    for (i, s) in segs.iter().enumerate() {
        let next = segs.get(i + 1).map_or(current, |n| n.first);
        if s.first >= current || next > acked + 1 {
            break;
        }
        remove(s, shared);
    }
}

fn remove(s: &Segment, shared: &SpoolShared) -> bool {
    let size = std::fs::metadata(&s.path).map_or(0, |m| m.len());
    if std::fs::remove_file(&s.path).is_ok() {
        shared.sub_bytes(size);
        true
    } else {
        false
    }
}

/// An opened queue.
pub struct Opened {
    /// What the writers, the shipper and the statistics share.
    pub shared: Arc<SpoolShared>,
    /// A writer per stream, in [`Stream::ALL`]'s order.
    pub writers: [SpoolWriter; 2],
    /// A reader per stream, in the same order.
    pub readers: [SpoolReader; 2],
    /// Torn tails cut and damaged segments found at open.
    pub problems: Vec<Problem>,
}

/// Opens the queue: both streams' logs (a torn tail is cut and reported), acknowledged
/// segments deleted.
pub fn open(cfg: &SpoolConfig, now_ms: i64) -> Result<Opened, Problem> {
    let shared = Arc::new(SpoolShared::default());
    let mut problems = Vec::new();
    let mut open_one = |s: Stream| -> Result<(SpoolWriter, SpoolReader), Problem> {
        let root = stream_root(&cfg.dir, s);
        let acked = read_mark(&root);
        let (w, rec) = Writer::open(&root, acked, now_ms)?;
        problems.extend(rec.problems);
        let i = s.index();
        shared.acked[i].store(acked, Ordering::Relaxed);
        shared.durable[i].store(w.last_appended(), Ordering::Relaxed);
        let current = w.last_appended() + 1;
        shared.current[i].store(current, Ordering::Relaxed);
        delete_acked(&root, acked, current, &shared);
        let bytes: u64 = wal::segments(&root)
            .map_err(|e| Problem::io(&root, e))?
            .iter()
            .map(|s| std::fs::metadata(&s.path).map_or(0, |m| m.len()))
            .sum();
        shared.bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok((
            SpoolWriter {
                stream: s,
                root: root.clone(),
                dir: cfg.dir.clone(),
                writer: w,
                shared: Arc::clone(&shared),
                max_bytes: cfg.max_bytes,
                segment_bytes: cfg.segment_bytes,
                unsynced: false,
                closed: false,
            },
            SpoolReader {
                stream: s,
                root,
                shared: Arc::clone(&shared),
                pos: None,
            },
        ))
    };
    let (wf, rf) = open_one(Stream::Findings)?;
    let (we, re) = open_one(Stream::Events)?;
    Ok(Opened {
        shared,
        writers: [wf, we],
        readers: [rf, re],
        problems,
    })
}

/// Appends one stream's records (owned by that stream's sink thread).
pub struct SpoolWriter {
    stream: Stream,
    root: PathBuf,
    dir: PathBuf,
    writer: Writer,
    shared: Arc<SpoolShared>,
    max_bytes: u64,
    segment_bytes: u64,
    unsynced: bool,
    closed: bool,
}

impl SpoolWriter {
    /// The stream.
    pub fn stream(&self) -> Stream {
        self.stream
    }

    /// The shared state.
    pub fn shared(&self) -> &Arc<SpoolShared> {
        &self.shared
    }

    /// Appends `count` JSON lines, or counts them dropped when the queue has no room
    /// (see the module docs). Returns whether they were queued.
    pub fn append(&mut self, lines: &[u8], count: u64, now_ms: i64) -> std::io::Result<bool> {
        let need = lines.len() as u64 + count * RECORD_HEADER as u64;
        if self.shared.bytes() + need > self.max_bytes
            && !(self.stream == Stream::Findings && self.evict_events(need))
        {
            self.shared.dropped[self.stream.index()].fetch_add(count, Ordering::Relaxed);
            return Ok(false);
        }
        let before = self.writer.bytes();
        let res = self.writer.append_lines(lines);
        self.shared.bytes.fetch_add(
            self.writer.bytes().saturating_sub(before),
            Ordering::Relaxed,
        );
        if let Err(e) = res {
            self.shared.dropped[self.stream.index()].fetch_add(count, Ordering::Relaxed);
            return Err(e);
        }
        self.unsynced = true;
        if self.writer.bytes() >= self.segment_bytes {
            self.writer
                .roll(now_ms)
                .map_err(|p| std::io::Error::other(p.to_string()))?;
            // The new segment's magic.
            self.shared
                .bytes
                .fetch_add(self.writer.bytes(), Ordering::Relaxed);
            let i = self.stream.index();
            self.shared.durable[i].store(self.writer.durable(), Ordering::Relaxed);
            self.shared.current[i].store(self.writer.last_appended() + 1, Ordering::Relaxed);
            self.unsynced = false;
        }
        Ok(true)
    }

    /// Deletes the oldest closed segments of events until `need` more bytes fit (for a
    /// finding); what they held that was not sent yet is counted dropped.
    fn evict_events(&self, need: u64) -> bool {
        let root = stream_root(&self.dir, Stream::Events);
        let i = Stream::Events.index();
        let current = self.shared.current[i].load(Ordering::Relaxed);
        let Ok(segs) = wal::segments(&root) else {
            return false;
        };
        for (k, s) in segs.iter().enumerate() {
            if self.shared.bytes() + need <= self.max_bytes {
                return true;
            }
            if s.first >= current {
                break;
            }
            let next = segs.get(k + 1).map_or(current, |n| n.first);
            let acked = self.shared.acked[i].load(Ordering::Relaxed);
            if remove(s, &self.shared) {
                let lost = next.saturating_sub(s.first.max(acked + 1));
                self.shared.dropped[i].fetch_add(lost, Ordering::Relaxed);
                tracing::warn!(
                    segment = %s.path.display(),
                    lost,
                    "server queue full: unsent events deleted to keep a finding"
                );
            }
        }
        self.shared.bytes() + need <= self.max_bytes
    }

    /// Makes what was appended durable, and so ready to send.
    pub fn sync(&mut self) -> std::io::Result<()> {
        if self.unsynced {
            let seq = self.writer.sync()?;
            self.shared.durable[self.stream.index()].store(seq, Ordering::Relaxed);
            self.unsynced = false;
        }
        Ok(())
    }

    /// Syncs and says the writer is done (the shipper's last pass waits for it).
    pub fn close(&mut self) -> std::io::Result<()> {
        let r = self.sync();
        if !self.closed {
            self.closed = true;
            self.shared.closed.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    /// The stream's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// Where the next record to send is: its segment, byte offset and sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    segment: u64,
    offset: u64,
    seq: u64,
}

/// A batch of one stream's records, contiguous in sequence, from one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The stream.
    pub stream: Stream,
    /// The first record's sequence.
    pub first: u64,
    /// How many records.
    pub count: u64,
    /// The records as JSON lines, each ending in a newline.
    pub lines: Vec<u8>,
    end: Pos,
}

impl Batch {
    /// The last record's sequence.
    pub fn last(&self) -> u64 {
        self.first + self.count - 1
    }
}

/// Reads one stream's durable, unacknowledged records in order (owned by the shipper).
pub struct SpoolReader {
    stream: Stream,
    root: PathBuf,
    shared: Arc<SpoolShared>,
    pos: Option<Pos>,
}

impl SpoolReader {
    /// The stream.
    pub fn stream(&self) -> Stream {
        self.stream
    }

    /// The next batch after the acknowledged mark, of about `max_bytes` of lines at most
    /// (at least one record), or `None` when everything durable is acknowledged.
    /// Records lost to a damaged segment are counted dropped and skipped.
    pub fn next_batch(&mut self, max_bytes: usize) -> Result<Option<Batch>, Problem> {
        let i = self.stream.index();
        loop {
            let acked = self.shared.acked[i].load(Ordering::Relaxed);
            let durable = self.shared.durable[i].load(Ordering::Relaxed);
            if durable <= acked {
                return Ok(None);
            }
            let want = acked + 1;
            let segs = wal::segments(&self.root).map_err(|e| Problem::io(&self.root, e))?;
            // The segment holding `want`, or the first after it (what came before was
            // deleted to make room).
            let Some(k) = segs
                .iter()
                .rposition(|s| s.first <= want)
                .or_else(|| (!segs.is_empty()).then_some(0))
            else {
                return Ok(None);
            };
            let seg = &segs[k];
            let next_first = segs.get(k + 1).map(|s| s.first);
            let offset = match self.pos {
                Some(p) if p.segment == seg.first && p.seq == want => p.offset,
                _ => MAGIC.len() as u64,
            };
            match self.read(seg, offset, want, durable, max_bytes, next_first.is_some()) {
                Ok(Piece::Batch(b)) => return Ok(Some(b)),
                Ok(Piece::NotYet) => return Ok(None),
                Ok(Piece::End) => match next_first {
                    // Everything in this segment is acknowledged: on to the next.
                    Some(n) => {
                        let lost = n.saturating_sub(want);
                        self.skip_to(n, lost);
                    }
                    None => return Ok(None),
                },
                Ok(Piece::Damaged(what)) => {
                    let Some(n) = next_first else {
                        return Ok(None);
                    };
                    let lost = n.saturating_sub(want);
                    tracing::error!(
                        segment = %seg.path.display(),
                        lost,
                        "server queue: damaged segment skipped: {what}"
                    );
                    self.skip_to(n, lost);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // Deleted to make room while being read: list again.
                    self.pos = None;
                }
                Err(e) => return Err(Problem::io(&seg.path, e)),
            }
        }
    }

    /// Moves the mark to just before `next` (records skipped: `lost` counted dropped).
    fn skip_to(&mut self, next: u64, lost: u64) {
        let i = self.stream.index();
        let acked = self.shared.acked[i].load(Ordering::Relaxed);
        if next > acked + 1 {
            self.shared.acked[i].store(next - 1, Ordering::Relaxed);
            self.shared.dropped[i].fetch_add(lost, Ordering::Relaxed);
        }
        self.pos = None;
    }

    /// Reads the records of `seg` from byte `offset` on: those before `want` are
    /// passed over, then up to `max_bytes` of durable ones, contiguous, are taken.
    fn read(
        &self,
        seg: &Segment,
        mut offset: u64,
        want: u64,
        durable: u64,
        max_bytes: usize,
        closed: bool,
    ) -> std::io::Result<Piece> {
        let mut f = File::open(&seg.path)?;
        let len = f.metadata()?.len();
        loop {
            if offset >= len {
                return Ok(Piece::End);
            }
            f.seek(SeekFrom::Start(offset))?;
            // At least one whole record: its length is in its header.
            let mut head = [0u8; RECORD_HEADER];
            let first_len = match f.read_exact(&mut head) {
                Ok(()) => u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize,
                Err(_) => 0,
            };
            let size = (max_bytes + RECORD_HEADER)
                .max(first_len.min(wal::MAX_RECORD) + RECORD_HEADER)
                .min(usize::try_from(len - offset).unwrap_or(usize::MAX));
            f.seek(SeekFrom::Start(offset))?;
            let mut bytes = Vec::with_capacity(size);
            (&mut f).take(size as u64).read_to_end(&mut bytes)?;
            let mut lines = Vec::with_capacity(bytes.len());
            let (mut first, mut count, mut end) = (0u64, 0u64, offset);
            let (mut done, mut not_durable) = (false, false);
            let scan = wal::scan_records(&bytes, 0, |seq, payload| {
                if done {
                    return;
                }
                let step = (RECORD_HEADER + payload.len()) as u64;
                if seq < want {
                    end += step;
                    return;
                }
                if seq > durable {
                    not_durable = true;
                    done = true;
                    return;
                }
                if count > 0 && (seq != first + count || lines.len() >= max_bytes) {
                    done = true;
                    return;
                }
                if count == 0 {
                    first = seq;
                }
                lines.extend_from_slice(payload);
                lines.push(b'\n');
                count += 1;
                end += step;
            });
            if count > 0 {
                return Ok(Piece::Batch(Batch {
                    stream: self.stream,
                    first,
                    count,
                    lines,
                    end: Pos {
                        segment: seg.first,
                        offset: end,
                        seq: first + count,
                    },
                }));
            }
            if not_durable {
                return Ok(Piece::NotYet);
            }
            if end > offset {
                // Only records already acknowledged in this piece: read on.
                offset = end;
                continue;
            }
            return Ok(match scan.damage {
                Some(d) if !d.cut || closed => Piece::Damaged(d.what),
                // A record being written in the open segment.
                Some(_) => Piece::NotYet,
                None => Piece::End,
            });
        }
    }

    /// Records that the server acknowledged `batch`: the mark moves past it (kept on
    /// disk) and segments wholly acknowledged are deleted.
    pub fn ack(&mut self, batch: &Batch) -> std::io::Result<()> {
        let i = self.stream.index();
        let last = batch.last();
        if last > self.shared.acked[i].load(Ordering::Relaxed) {
            self.shared.acked[i].store(last, Ordering::Relaxed);
        }
        self.pos = Some(batch.end);
        write_mark(&self.root, last)?;
        let current = self.shared.current[i].load(Ordering::Relaxed);
        delete_acked(&self.root, last, current, &self.shared);
        Ok(())
    }

    /// Counts a batch acknowledged by the server.
    pub fn count_sent(&self, batch: &Batch) {
        self.shared.sent[self.stream.index()].fetch_add(batch.count, Ordering::Relaxed);
    }

    /// Counts a batch the server refused for good.
    pub fn count_rejected(&self, batch: &Batch) {
        self.shared.rejected[self.stream.index()].fetch_add(batch.count, Ordering::Relaxed);
    }
}

enum Piece {
    Batch(Batch),
    /// The next record is not durable yet.
    NotYet,
    /// Nothing more to send in this segment.
    End,
    /// A bad record: the rest of the segment cannot be read.
    Damaged(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory removed at the end of the test.
    struct Dir(PathBuf);
    impl Dir {
        fn new(name: &str) -> Dir {
            let d = std::env::temp_dir().join(format!("vigil-spool-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            Dir(d)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn cfg(dir: &Dir, max: u64, seg: u64) -> SpoolConfig {
        SpoolConfig {
            dir: dir.0.clone(),
            max_bytes: max,
            segment_bytes: seg,
        }
    }

    fn lines(from: u64, n: u64) -> Vec<u8> {
        let mut b = Vec::new();
        for i in from..from + n {
            b.extend_from_slice(format!("{{\"class_uid\":1007,\"n\":{i}}}\n").as_bytes());
        }
        b
    }

    /// Every record of the stream, in batches of `max` bytes, each acknowledged.
    fn drain(r: &mut SpoolReader, max: usize) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        while let Some(b) = r.next_batch(max).expect("read") {
            let text = String::from_utf8(b.lines.clone()).expect("utf8");
            let got: Vec<&str> = text.lines().collect();
            assert_eq!(got.len() as u64, b.count);
            for (k, l) in got.iter().enumerate() {
                out.push((b.first + k as u64, (*l).to_string()));
            }
            r.ack(&b).expect("ack");
        }
        out
    }

    #[test]
    fn records_go_out_in_order_once_durable_and_stay_until_acknowledged() {
        let d = Dir::new("order");
        let Opened {
            shared,
            writers: [_, mut w],
            readers: [_, mut r],
            problems: p,
        } = open(&cfg(&d, 1 << 30, 4096), 0).expect("open");
        assert!(p.is_empty(), "{p:?}");
        w.append(&lines(0, 10), 10, 0).expect("append");
        // Not fsynced yet: nothing to send.
        assert!(r.next_batch(1 << 20).expect("read").is_none());
        w.append(&lines(10, 90), 90, 0).expect("append");
        w.sync().expect("sync");
        assert_eq!(shared.backlog(), 100);
        let first = r.next_batch(700).expect("read").expect("a batch");
        assert_eq!(first.first, 1);
        assert!(first.count > 1 && first.count < 100, "{}", first.count);
        // Not acknowledged (the server did not answer): the same batch again.
        let again = r.next_batch(700).expect("read").expect("a batch");
        assert_eq!((again.first, again.count), (first.first, first.count));
        r.ack(&first).expect("ack");
        let rest = drain(&mut r, 700);
        assert_eq!(rest.first().map(|x| x.0), Some(first.last() + 1));
        assert_eq!(rest.last().map(|x| x.0), Some(100));
        assert!(rest.windows(2).all(|x| x[1].0 == x[0].0 + 1));
        assert_eq!(shared.backlog(), 0);
        // Closed segments wholly acknowledged are gone; the open one stays.
        let segs = wal::segments(&d.0.join("events")).expect("list");
        assert_eq!(segs.len(), 1, "{segs:?}");
    }

    #[test]
    fn unacknowledged_records_survive_a_restart_and_sequences_never_repeat() {
        let d = Dir::new("restart");
        {
            let Opened {
                writers: [mut wf, mut we],
                readers: [mut rf, _],
                ..
            } = open(&cfg(&d, 1 << 30, 2048), 0).expect("open");
            we.append(&lines(0, 50), 50, 0).expect("append");
            wf.append(&lines(1000, 3), 3, 0).expect("append");
            we.close().expect("close");
            wf.close().expect("close");
            // The findings are sent; the events are not.
            assert_eq!(drain(&mut rf, 1 << 20).len(), 3);
        }
        let Opened {
            shared,
            writers: [mut wf, mut we],
            readers: [mut rf, mut re],
            problems: p,
        } = open(&cfg(&d, 1 << 30, 2048), 0).expect("reopen");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(shared.stats(Stream::Events).acked, 0);
        assert_eq!(shared.stats(Stream::Findings).acked, 3);
        let events = drain(&mut re, 1 << 20);
        assert_eq!(events.len(), 50);
        assert_eq!(events[0], (1, "{\"class_uid\":1007,\"n\":0}".to_string()));
        assert!(drain(&mut rf, 1 << 20).is_empty());
        // New records take new sequences.
        wf.append(&lines(2000, 1), 1, 0).expect("append");
        wf.sync().expect("sync");
        we.append(&lines(3000, 1), 1, 0).expect("append");
        we.sync().expect("sync");
        assert_eq!(drain(&mut rf, 1 << 20)[0].0, 4);
        assert_eq!(drain(&mut re, 1 << 20)[0].0, 51);
    }

    #[test]
    fn a_full_queue_drops_events_first_and_findings_last_and_counts_them() {
        let d = Dir::new("full");
        // Room for about 40 records of ~40 bytes; segments of ~10 records.
        let Opened {
            shared,
            writers: [mut wf, mut we],
            readers: [mut rf, mut re],
            ..
        } = open(&cfg(&d, 2400, 600), 0).expect("open");
        let mut queued = 0;
        for i in 0..100 {
            if we.append(&lines(i, 1), 1, 0).expect("append") {
                queued += 1;
            }
        }
        we.sync().expect("sync");
        let ev = shared.stats(Stream::Events);
        assert!(queued > 10 && queued < 100, "{queued}");
        assert_eq!(ev.dropped, 100 - queued);
        assert!(shared.bytes() <= 2400, "{}", shared.bytes());
        // Findings still get in, by deleting the oldest unsent events.
        for i in 0..20 {
            assert!(
                wf.append(&lines(5000 + i, 1), 1, 0).expect("append"),
                "finding {i}"
            );
        }
        wf.sync().expect("sync");
        assert!(shared.bytes() <= 2400, "{}", shared.bytes());
        let ev = shared.stats(Stream::Events);
        assert!(
            ev.dropped > 100 - queued,
            "events deleted for findings are counted"
        );
        assert_eq!(shared.stats(Stream::Findings).dropped, 0);
        assert_eq!(drain(&mut rf, 1 << 20).len(), 20);
        // Every event is either sent or counted dropped.
        let sent = drain(&mut re, 1 << 20);
        assert_eq!(
            sent.len() as u64 + shared.stats(Stream::Events).dropped,
            100
        );
        // The events sent are the newest ones, in order.
        assert!(sent.windows(2).all(|x| x[1].0 > x[0].0));
    }

    #[test]
    fn a_damaged_segment_is_skipped_and_its_records_counted() {
        let d = Dir::new("damage");
        {
            let Opened {
                writers: [_, mut we],
                ..
            } = open(&cfg(&d, 1 << 30, 300), 0).expect("open");
            for i in 0..30 {
                we.append(&lines(i, 1), 1, 0).expect("append");
            }
            we.close().expect("close");
        }
        let segs = wal::segments(&d.0.join("events")).expect("list");
        assert!(segs.len() >= 3, "{segs:?}");
        // Flip a byte in the middle of the second segment's first record.
        let mut bytes = std::fs::read(&segs[1].path).expect("read");
        bytes[MAGIC.len() + RECORD_HEADER + 2] ^= 0xff;
        std::fs::write(&segs[1].path, &bytes).expect("write");
        let Opened {
            shared,
            readers: [_, mut re],
            ..
        } = open(&cfg(&d, 1 << 30, 300), 0).expect("reopen");
        let sent = drain(&mut re, 1 << 20);
        let lost = segs[2].first - segs[1].first;
        assert_eq!(sent.len() as u64 + lost, 30);
        assert_eq!(shared.stats(Stream::Events).dropped, lost);
        assert!(sent
            .iter()
            .all(|(s, _)| *s < segs[1].first || *s >= segs[2].first));
    }
}
