//! [`Store`]: the writing side, as the agent runs it. Lines are handed over in batches
//! without waiting; a writer thread appends them to the log and fsyncs at most every
//! `sync_ms` (group commit); a compactor thread turns closed segments into Parquet and
//! applies retention.

use crate::compact::{self, compact_segment, finish_segment};
use crate::layout;
use crate::merge::{self, MergeLimits};
use crate::read::lake_files;
use crate::retention::{self, Limits};
use crate::schema::CLASSES;
use crate::wal::{self, Segment, Writer};
use crate::Problem;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{
    channel, sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError,
};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How a store is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The store's directory.
    pub dir: PathBuf,
    /// Milliseconds between two fsyncs of the log at most (group commit): an event
    /// counts as written once fsynced.
    pub sync_ms: u64,
    /// A log segment is closed (and compacted) past this many bytes...
    pub segment_bytes: u64,
    /// ...or this many seconds after it was started, whichever comes first.
    pub segment_secs: u64,
    /// Batches of lines waiting for the writer at most; past it a batch is dropped and
    /// its lines counted (`dropped`): the caller never waits.
    pub queue: usize,
    /// Retention limits.
    pub limits: Limits,
    /// When and how closed hours' files are merged ([`crate::merge`]).
    pub merge: MergeLimits,
}

impl StoreConfig {
    /// The defaults for a store in `dir`.
    pub fn new(dir: PathBuf) -> StoreConfig {
        StoreConfig {
            dir,
            sync_ms: 100,
            segment_bytes: 64 << 20,
            segment_secs: 600,
            queue: 256,
            limits: Limits::default(),
            merge: MergeLimits::default(),
        }
    }
}

/// The store's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// The last sequence made durable (fsynced): every event up to it is in the store.
    pub durable_seq: u64,
    /// Events made durable since the store was opened.
    pub written: u64,
    /// Events lost: queue full or a failed write.
    pub dropped: u64,
    /// Events compacted into Parquet since open.
    pub compacted: u64,
    /// Parquet files written since open.
    pub files: u64,
    /// Records not stored at compaction (not an event of a stored class), reported.
    pub rejected: u64,
    /// Partitions deleted by retention, and their bytes.
    pub retention_deleted: u64,
    /// See `retention_deleted`.
    pub retention_bytes: u64,
    /// Merged files made of closed hours' small files since open ([`crate::merge`]).
    pub merged: u64,
    /// Bytes cut off the log's torn tail when it was opened.
    pub recovered_cut_bytes: u64,
    /// Write, sync or compaction errors (each logged).
    pub errors: u64,
}

#[derive(Default)]
struct Counters {
    durable: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    compacted: AtomicU64,
    files: AtomicU64,
    rejected: AtomicU64,
    retention_deleted: AtomicU64,
    retention_bytes: AtomicU64,
    merged: AtomicU64,
    errors: AtomicU64,
}

enum Msg {
    Lines(Vec<u8>, u64),
    Sync(SyncSender<u64>),
}

/// A store being written: see the module docs.
pub struct Store {
    tx: Option<SyncSender<Msg>>,
    counters: Arc<Counters>,
    cut_bytes: u64,
    writer: Option<std::thread::JoinHandle<()>>,
    compactor: Option<std::thread::JoinHandle<()>>,
    spare: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// The highest sequence the lake holds (from its file names).
fn lake_max_seq(root: &Path, problems: &mut Vec<Problem>) -> u64 {
    CLASSES
        .iter()
        .flat_map(|c| lake_files(root, c, None, problems))
        .map(|f| f.last)
        .max()
        .unwrap_or(0)
}

impl Store {
    /// Opens (or creates) the store: recovers the log (a torn tail is cut and reported
    /// in the returned problems), queues the segments left by an earlier run for
    /// compaction, and starts the writer and compactor threads.
    pub fn open(cfg: StoreConfig, now_ms: i64) -> Result<(Store, Vec<Problem>), Problem> {
        let root = cfg.dir.clone();
        std::fs::create_dir_all(layout::lake_dir(&root))
            .map_err(|e| Problem::io(&layout::lake_dir(&root), e))?;
        let mut problems = Vec::new();
        let mark = compact::read_mark(&root);
        let floor = mark.max(lake_max_seq(&root, &mut problems));
        let (w, rec) = Writer::open(&root, floor, now_ms)?;
        problems.extend(rec.problems);
        let counters = Arc::new(Counters::default());
        counters.durable.store(rec.last_seq, Ordering::Relaxed);
        // Segments of earlier runs (all but the new one): compacted first.
        let old: Vec<Segment> = wal::segments(&root)
            .map_err(|e| Problem::io(&layout::wal_dir(&root), e))?
            .into_iter()
            .filter(|s| s.first < w.last_appended() + 1)
            .collect();
        let (ctx, crx) = channel::<Segment>();
        for s in old {
            let _ = ctx.send(s);
        }
        let compactor = {
            let theirs = root.clone();
            let counters = Arc::clone(&counters);
            let (limits, merge) = (cfg.limits, cfg.merge);
            std::thread::Builder::new()
                .name("vigil-store-compact".into())
                .spawn(move || compactor(&theirs, &crx, &counters, limits, merge))
                .map_err(|e| Problem::io(&root, e))?
        };
        let (tx, rx) = sync_channel::<Msg>(cfg.queue.max(1));
        let spare: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let writer = {
            let counters = Arc::clone(&counters);
            let cfg = cfg.clone();
            let spare = Arc::clone(&spare);
            std::thread::Builder::new()
                .name("vigil-store-wal".into())
                .spawn(move || writer(w, &cfg, &rx, &counters, ctx, &spare))
                .map_err(|e| Problem::io(&root, e))?
        };
        Ok((
            Store {
                tx: Some(tx),
                counters,
                cut_bytes: rec.cut_bytes,
                writer: Some(writer),
                compactor: Some(compactor),
                spare,
            },
            problems,
        ))
    }

    /// Hands `count` JSON lines over to the writer without waiting; when its queue is
    /// full they are dropped and counted. Returns whether they were taken.
    pub fn append(&self, lines: Vec<u8>, count: u64) -> bool {
        let Some(tx) = &self.tx else { return false };
        match tx.try_send(Msg::Lines(lines, count)) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(count, Ordering::Relaxed);
                false
            }
        }
    }

    /// A buffer for the next batch (one the writer is done with, when there is one).
    pub fn buffer(&self) -> Vec<u8> {
        self.spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default()
    }

    /// Waits until everything handed over is durable; returns the durable sequence.
    pub fn sync(&self) -> u64 {
        if let Some(tx) = &self.tx {
            let (done, wait) = sync_channel(1);
            if tx.send(Msg::Sync(done)).is_ok() {
                if let Ok(seq) = wait.recv() {
                    return seq;
                }
            }
        }
        self.durable()
    }

    /// The last sequence made durable.
    pub fn durable(&self) -> u64 {
        self.counters.durable.load(Ordering::Relaxed)
    }

    /// The counters.
    pub fn stats(&self) -> StoreStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StoreStats {
            durable_seq: get(&c.durable),
            written: get(&c.written),
            dropped: get(&c.dropped),
            compacted: get(&c.compacted),
            files: get(&c.files),
            rejected: get(&c.rejected),
            retention_deleted: get(&c.retention_deleted),
            retention_bytes: get(&c.retention_bytes),
            merged: get(&c.merged),
            recovered_cut_bytes: self.cut_bytes,
            errors: get(&c.errors),
        }
    }

    /// Makes everything durable and stops both threads (a compaction under way is
    /// finished; closed segments not compacted yet are compacted at the next open).
    pub fn close(&mut self) {
        self.tx = None;
        if let Some(t) = self.writer.take() {
            let _ = t.join();
        }
        if let Some(t) = self.compactor.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

fn error(counters: &Counters, p: &Problem) {
    counters.errors.fetch_add(1, Ordering::Relaxed);
    tracing::error!("store: {p}");
}

fn writer(
    mut w: Writer,
    cfg: &StoreConfig,
    rx: &Receiver<Msg>,
    counters: &Counters,
    compact: std::sync::mpsc::Sender<Segment>,
    spare: &Mutex<Vec<Vec<u8>>>,
) {
    let sync_every = Duration::from_millis(cfg.sync_ms.max(1));
    let mut last_sync = Instant::now();
    let mut failing_since: Option<Instant> = None;
    let sync = |w: &mut Writer, counters: &Counters| {
        let before = w.durable();
        match w.sync() {
            Ok(d) => {
                counters.durable.store(d, Ordering::Relaxed);
                counters.written.fetch_add(d - before, Ordering::Relaxed);
            }
            Err(e) => error(counters, &Problem::io(Path::new("wal"), e)),
        }
    };
    loop {
        let wait = sync_every.saturating_sub(last_sync.elapsed());
        let pending = w.last_appended() > w.durable();
        let msg = if pending {
            rx.recv_timeout(wait)
        } else {
            rx.recv_timeout(Duration::from_secs(1))
        };
        match msg {
            Ok(Msg::Lines(mut lines, n)) => {
                match w.append_lines(&lines) {
                    Ok(_) => failing_since = None,
                    Err(e) => {
                        counters.dropped.fetch_add(n, Ordering::Relaxed);
                        // Reported once per failing stretch, not per batch.
                        if failing_since.is_none() {
                            error(counters, &Problem::io(Path::new(&cfg.dir), e));
                            failing_since = Some(Instant::now());
                        }
                    }
                }
                lines.clear();
                let mut spare = spare.lock().unwrap_or_else(PoisonError::into_inner);
                if spare.len() < 4 {
                    spare.push(lines);
                }
            }
            Ok(Msg::Sync(done)) => {
                sync(&mut w, counters);
                last_sync = Instant::now();
                let _ = done.send(w.durable());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                sync(&mut w, counters);
                return;
            }
        }
        if w.last_appended() > w.durable() && last_sync.elapsed() >= sync_every {
            sync(&mut w, counters);
            last_sync = Instant::now();
        }
        let now = vigil_event::time::now_ms();
        let old = now.saturating_sub(w.opened_ms()) >= (cfg.segment_secs as i64) * 1000;
        if w.has_records() && (w.bytes() >= cfg.segment_bytes || old) {
            let before = w.durable();
            match w.roll(now) {
                Ok(seg) => {
                    counters.durable.store(seg_last(&w), Ordering::Relaxed);
                    counters
                        .written
                        .fetch_add(seg_last(&w) - before, Ordering::Relaxed);
                    let _ = compact.send(seg);
                }
                Err(p) => error(counters, &p),
            }
        }
    }
}

/// The last sequence of the segment just closed: the one before the new one's first.
fn seg_last(w: &Writer) -> u64 {
    w.last_appended()
}

/// Merges the closed hours' files (see [`crate::merge`]), reporting what it did.
fn merge_pass(root: &Path, counters: &Counters, limits: MergeLimits) {
    let pass = merge::merge_closed(root, limits, vigil_event::time::now_ms());
    for m in &pass.merged {
        tracing::info!(file = %m.path.display(), inputs = m.inputs, rows = m.rows, "store: merged a closed hour's files");
    }
    if pass.indexed > 0 {
        tracing::info!(
            files = pass.indexed,
            "store: id indexes made for files of closed hours that had none"
        );
    }
    counters
        .merged
        .fetch_add(pass.merged.len() as u64, Ordering::Relaxed);
    for p in &pass.problems {
        error(counters, p);
    }
}

fn compactor(
    root: &Path,
    rx: &Receiver<Segment>,
    counters: &Counters,
    limits: Limits,
    merge: MergeLimits,
) {
    merge_pass(root, counters, merge);
    for seg in rx {
        let mark = compact::read_mark(root);
        match compact_segment(root, &seg, mark) {
            Ok(done) => {
                for p in done.rejected.iter().chain(done.damage.iter()) {
                    tracing::warn!("store compaction: {p}");
                }
                if !done.anomalies.is_empty() {
                    tracing::warn!(
                        unknown = done.anomalies.unknown,
                        mistyped = done.anomalies.mistyped,
                        examples = ?done.anomalies.examples,
                        "store compaction: attributes that do not fit the schema"
                    );
                }
                counters.rejected.fetch_add(
                    done.rejected.len() as u64 + done.rejected_more,
                    Ordering::Relaxed,
                );
                counters.compacted.fetch_add(done.events, Ordering::Relaxed);
                counters
                    .files
                    .fetch_add(done.files.len() as u64, Ordering::Relaxed);
                let last = done.last_seq.unwrap_or(0).max(mark);
                if let Err(p) = finish_segment(root, &seg, last) {
                    error(counters, &p);
                }
            }
            Err(p) => error(counters, &p),
        }
        let (deleted, problems) = retention::apply(root, limits, vigil_event::time::now_ms());
        for d in &deleted {
            counters.retention_deleted.fetch_add(1, Ordering::Relaxed);
            counters
                .retention_bytes
                .fetch_add(d.bytes, Ordering::Relaxed);
        }
        for p in &problems {
            error(counters, p);
        }
        merge_pass(root, counters, merge);
    }
}
