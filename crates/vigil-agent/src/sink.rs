//! Where the agent's events go: JSON lines to a file or standard output, each output
//! written by a thread of its own ([`Threaded`]), so that a slow disk never holds up the
//! sensor, detection or response; and the network outputs ([`NetSink`]), which never
//! hold it up either.

use crate::latency::Histogram;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{
    sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError,
};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use vigil_event::OcsfEvent;

/// Why a sink stopped the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Writing the events output failed: nothing after this could be written either.
    #[error("cannot write {name}: {source}")]
    Write {
        /// The sink.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// An event could not be turned into JSON.
    #[error("cannot serialize an event: {0}")]
    Serialize(String),
}

/// A consumer of the pipeline's events.
pub trait Sink {
    /// A short name, for logs and statistics.
    fn name(&self) -> &str;
    /// Which events this sink takes.
    fn select(&self) -> Select;
    /// Whether this sink takes the event.
    fn accepts(&self, event: &OcsfEvent) -> bool {
        let finding = || {
            matches!(event, OcsfEvent::Finding(_) | OcsfEvent::Incident(_))
                || event.is_remediation()
        };
        match self.select() {
            Select::All => true,
            Select::Findings => finding(),
            Select::NotFindings => !finding(),
        }
    }
    /// Writes `count` complete JSON lines (one event each, with its newline).
    fn write(&mut self, lines: &[u8], count: u64) -> Result<(), SinkError>;
    /// Writes out what is buffered.
    fn flush(&mut self) -> Result<(), SinkError>;
    /// Writes out what is buffered, then counts in `latency` the time from each of
    /// `exec_ns` (kernel times of execs whose findings were just written, ns since boot)
    /// to now.
    fn flush_timed(
        &mut self,
        exec_ns: Vec<u64>,
        latency: &Arc<Mutex<Histogram>>,
    ) -> Result<(), SinkError> {
        self.flush()?;
        record_latency(&exec_ns, latency);
        Ok(())
    }
    /// Writes out everything and stops; the last chance to report an error.
    fn close(&mut self) -> Result<(), SinkError> {
        self.flush()
    }
    /// Writes out everything and waits until it is written, so that the counters are
    /// up to date.
    fn sync(&mut self) -> Result<(), SinkError> {
        self.flush()
    }
    /// Counters for the agent's statistics.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
    /// Values that go up and down (lines queued, bytes buffered), for the metrics.
    fn gauges(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
    /// Whether a flush writes what this sink holds, so that the time from an exec to
    /// its finding can be measured at it (not so for a network output, which batches on
    /// its own clock).
    fn writes_on_flush(&self) -> bool {
        true
    }
    /// Nothing came for a while (a tenth of a second, on a [`Threaded`] sink's thread):
    /// finish what was put off (a deferred fsync).
    fn idle(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Counts the time from each kernel time to now in the histogram (µs).
pub(crate) fn record_latency(exec_ns: &[u64], latency: &Mutex<Histogram>) {
    if exec_ns.is_empty() {
        return;
    }
    let now = vigil_sensor::boot_ns();
    let mut h = latency.lock().unwrap_or_else(PoisonError::into_inner);
    for t in exec_ns {
        h.record(now.saturating_sub(*t) / 1000);
    }
}

/// Which events a sink takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// Every event.
    All,
    /// Detection and Incident Findings (2004, 2005) and what was done about them:
    /// Remediation Activity (7002, 7003, 7004).
    Findings,
    /// Every event but those [`Select::Findings`] takes.
    NotFindings,
}

/// What a sink does when a write fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Stop the agent: this output must not lose events (the main events output).
    Fail,
    /// Count the lost line, report it (at most every few seconds) and go on: the rest of
    /// the pipeline must not stop for this output (a findings file on a full disk).
    Count,
}

/// JSON lines to a file or to standard output.
pub struct JsonlSink {
    name: String,
    place: String,
    out: Box<dyn Write + Send>,
    select: Select,
    on_error: OnError,
    written: u64,
    dropped: u64,
    /// Whether the last write failed part-way: the next line starts on a new line.
    torn: bool,
    /// When a loss was last reported, and the count then.
    reported: Option<(Instant, u64)>,
}

impl JsonlSink {
    /// A sink named `name` (`events`, `findings`) writing to `path` (`-` for standard
    /// output), created or appended to: an agent restarted (by its service manager,
    /// after a kill) never wipes what it wrote before, and a file truncated under it
    /// (logrotate's copytruncate) is written from its start again, without a hole.
    pub fn create(
        name: &str,
        path: &Path,
        select: Select,
        on_error: OnError,
    ) -> std::io::Result<Self> {
        // Unbuffered: lines come in batches ([`Threaded`]), one write each.
        let out: Box<dyn Write + Send> = if path.as_os_str() == "-" {
            Box::new(std::io::stdout())
        } else {
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )
        };
        Ok(Self::new(
            name,
            &path.display().to_string(),
            out,
            select,
            on_error,
        ))
    }

    /// A sink over any writer; `place` names where it writes, in error messages.
    pub fn new(
        name: &str,
        place: &str,
        out: Box<dyn Write + Send>,
        select: Select,
        on_error: OnError,
    ) -> Self {
        JsonlSink {
            name: name.to_string(),
            place: place.to_string(),
            out,
            select,
            on_error,
            written: 0,
            dropped: 0,
            torn: false,
            reported: None,
        }
    }

    /// Lines lost to write errors.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn failed(&mut self, e: std::io::Error, lines: u64) -> Result<(), SinkError> {
        match self.on_error {
            OnError::Fail => Err(SinkError::Write {
                name: self.place.clone(),
                source: e,
            }),
            OnError::Count => {
                self.dropped += lines;
                self.torn = true;
                let due = self
                    .reported
                    .is_none_or(|(at, _)| at.elapsed() >= Duration::from_secs(10));
                if due {
                    tracing::error!(
                        output = %self.place,
                        dropped = self.dropped,
                        "cannot write ({e}); lines are counted and dropped, other outputs go on"
                    );
                    self.reported = Some((Instant::now(), self.dropped));
                }
                Ok(())
            }
        }
    }
}

impl Sink for JsonlSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn select(&self) -> Select {
        self.select
    }

    fn write(&mut self, lines: &[u8], n: u64) -> Result<(), SinkError> {
        if self.torn {
            // A line cut short by an earlier failure ends here, alone and invalid,
            // instead of running into this one.
            if let Err(e) = self.out.write_all(b"\n") {
                return self.failed(e, n);
            }
            self.torn = false;
        }
        match self.out.write_all(lines) {
            Ok(()) => {
                self.written += n;
                Ok(())
            }
            Err(e) => self.failed(e, n),
        }
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        match self.out.flush() {
            Ok(()) => Ok(()),
            Err(e) => self.failed(e, 0),
        }
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![("written", self.written), ("dropped", self.dropped)]
    }
}

/// A network output (syslog, Splunk HEC, Elasticsearch: [`vigil_output::Output`]) as a
/// sink. It never makes the pipeline wait: each event goes into the output's bounded
/// buffer, or is counted as dropped when the buffer is full; the output's own thread
/// batches, sends and retries. A flush leaves batching to the output (`flush_ms`); a
/// sync or close waits for delivery at most `shutdown_ms`.
pub struct NetSink(pub vigil_output::Output);

/// The output's values that go up and down: [`Sink::gauges`], not counters.
const GAUGES: [&str; 2] = ["buffered_events", "buffered_bytes"];

impl Sink for NetSink {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn select(&self) -> Select {
        match self.0.select() {
            vigil_output::Selection::All => Select::All,
            vigil_output::Selection::Findings => Select::Findings,
        }
    }

    fn write(&mut self, lines: &[u8], _count: u64) -> Result<(), SinkError> {
        for line in lines.split_inclusive(|&b| b == b'\n') {
            self.0.offer(line);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        self.0.close();
        Ok(())
    }

    fn sync(&mut self) -> Result<(), SinkError> {
        self.0.sync();
        Ok(())
    }

    /// Every counter of the output ([`vigil_output::Output::counters`]) but its gauges.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        let mut c = self.0.counters();
        c.retain(|(k, _)| !GAUGES.contains(k));
        c
    }

    /// Events held (`queued_lines`: waiting or in flight) and their bytes
    /// (`buffered_bytes`).
    fn gauges(&self) -> Vec<(&'static str, u64)> {
        let c = self.0.counters();
        let get = |k: &str| c.iter().find(|(n, _)| *n == k).map_or(0, |(_, v)| *v);
        vec![
            ("queued_lines", get("buffered_events")),
            ("buffered_bytes", get("buffered_bytes")),
        ]
    }

    fn writes_on_flush(&self) -> bool {
        false
    }
}

/// The telemetry store ([`vigil_store::Store`]) as a sink: lines are gathered into
/// batches of 256 KiB and handed to the store's writer thread without waiting (a batch
/// the store's queue has no room for is dropped and counted, `store_dropped`); the
/// writer appends them to its log and fsyncs in groups; `store_durable_seq` is the last
/// event fsynced, `store_written` how many were this run.
pub struct StoreSink {
    store: vigil_store::Store,
    pending: Vec<u8>,
    pending_lines: u64,
}

impl StoreSink {
    /// Opens the store (recovering its log: what was cut or skipped is logged) and
    /// starts its threads.
    pub fn open(config: vigil_store::StoreConfig) -> Result<Self, vigil_store::Problem> {
        let dir = config.dir.clone();
        let (store, problems) = vigil_store::Store::open(config, vigil_event::time::now_ms())?;
        for p in &problems {
            tracing::warn!("store recovery: {p}");
        }
        tracing::info!(
            dir = %dir.display(),
            durable_seq = store.durable(),
            "store open"
        );
        Ok(StoreSink {
            pending: store.buffer(),
            store,
            pending_lines: 0,
        })
    }

    fn hand_over(&mut self) {
        if self.pending_lines == 0 {
            return;
        }
        let next = self.store.buffer();
        let full = std::mem::replace(&mut self.pending, next);
        self.store
            .append(full, std::mem::take(&mut self.pending_lines));
    }
}

impl Sink for StoreSink {
    fn name(&self) -> &str {
        "store"
    }

    fn select(&self) -> Select {
        Select::All
    }

    fn write(&mut self, lines: &[u8], count: u64) -> Result<(), SinkError> {
        self.pending.extend_from_slice(lines);
        self.pending_lines += count;
        if self.pending.len() >= BATCH {
            self.hand_over();
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.hand_over();
        Ok(())
    }

    fn sync(&mut self) -> Result<(), SinkError> {
        self.hand_over();
        self.store.sync();
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        self.hand_over();
        self.store.close();
        Ok(())
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let s = self.store.stats();
        vec![
            ("durable_seq", s.durable_seq),
            ("written", s.written),
            ("dropped", s.dropped),
            ("compacted", s.compacted),
            ("parquet_files", s.files),
            ("rejected", s.rejected),
            ("retention_deleted", s.retention_deleted),
            ("retention_bytes", s.retention_bytes),
            ("recovered_cut_bytes", s.recovered_cut_bytes),
            ("errors", s.errors),
        ]
    }

    fn gauges(&self) -> Vec<(&'static str, u64)> {
        vec![("queued_lines", self.pending_lines)]
    }

    fn writes_on_flush(&self) -> bool {
        false
    }
}

/// What goes to a sink's thread.
enum Msg {
    /// Complete lines, and how many.
    Lines(Vec<u8>, u64),
    /// Flush, then time these execs' findings.
    Flush(Vec<u64>, Arc<Mutex<Histogram>>),
    /// Flush, then say so.
    Sync(SyncSender<()>),
}

/// What a sink's thread shares with the pipeline.
#[derive(Default)]
struct Shared {
    counters: Mutex<Vec<(&'static str, u64)>>,
    /// Lines handed to the thread and not written yet.
    queued: AtomicU64,
    /// The first error of a sink that must not lose lines.
    error: Mutex<Option<SinkError>>,
}

/// Bytes of lines gathered before they go to the sink's thread.
const BATCH: usize = 256 * 1024;
/// How long a sink's thread waits for work before it calls [`Sink::idle`].
const IDLE: Duration = Duration::from_millis(100);

/// A sink run on a thread of its own, behind a bounded queue of batches of lines, so a
/// slow output (a disk in writeback, a full disk) does not hold up the pipeline. When
/// the queue is full, an output that must not lose lines ([`OnError::Fail`]) makes the
/// pipeline wait; one that may ([`OnError::Count`]) drops the batch and counts its lines
/// (`queue_dropped`).
pub struct Threaded {
    name: String,
    select: Select,
    /// The inner sink's: whether a flush writes what it holds.
    writes_on_flush: bool,
    on_error: OnError,
    tx: Option<SyncSender<Msg>>,
    /// Batches the thread has written, back for reuse.
    spare: Receiver<Vec<u8>>,
    pending: Vec<u8>,
    pending_lines: u64,
    shared: Arc<Shared>,
    queue_dropped: u64,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Threaded {
    /// Runs `sink` on its own thread, with room for `queue` batches of 256 KiB waiting.
    pub fn new<S: Sink + Send + 'static>(
        mut sink: S,
        on_error: OnError,
        queue: usize,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<Msg>(queue.max(1));
        let (back_tx, spare) = sync_channel::<Vec<u8>>(queue.max(1) + 1);
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        let name = sink.name().to_string();
        let select = sink.select();
        let writes_on_flush = sink.writes_on_flush();
        let thread = std::thread::Builder::new()
            .name(format!("vigil-sink-{name}"))
            .spawn(move || {
                loop {
                    let msg = match rx.recv_timeout(IDLE) {
                        Ok(m) => m,
                        Err(RecvTimeoutError::Timeout) => {
                            if let Err(e) = sink.idle() {
                                let mut slot =
                                    theirs.error.lock().unwrap_or_else(PoisonError::into_inner);
                                slot.get_or_insert(e);
                            }
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    };
                    let r = match msg {
                        Msg::Lines(mut buf, n) => {
                            let r = sink.write(&buf, n);
                            theirs.queued.fetch_sub(n, Ordering::Relaxed);
                            buf.clear();
                            let _ = back_tx.try_send(buf);
                            r
                        }
                        Msg::Flush(exec_ns, latency) => sink.flush_timed(exec_ns, &latency),
                        Msg::Sync(done) => {
                            let r = sink.flush();
                            *theirs
                                .counters
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner) = sink.counters();
                            let _ = done.send(());
                            r
                        }
                    };
                    *theirs
                        .counters
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = sink.counters();
                    if let Err(e) = r {
                        let mut slot = theirs.error.lock().unwrap_or_else(PoisonError::into_inner);
                        slot.get_or_insert(e);
                    }
                }
                let r = sink.flush();
                *theirs
                    .counters
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = sink.counters();
                if let Err(e) = r {
                    let mut slot = theirs.error.lock().unwrap_or_else(PoisonError::into_inner);
                    slot.get_or_insert(e);
                }
            })?;
        Ok(Threaded {
            name,
            select,
            writes_on_flush,
            on_error,
            tx: Some(tx),
            spare,
            pending: Vec::with_capacity(BATCH),
            pending_lines: 0,
            shared,
            queue_dropped: 0,
            thread: Some(thread),
        })
    }

    fn check(&self) -> Result<(), SinkError> {
        match self
            .shared
            .error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn send(&mut self, msg: Msg) -> Result<(), SinkError> {
        let Some(tx) = &self.tx else { return Ok(()) };
        let name = &self.name;
        let gone = || SinkError::Write {
            name: name.clone(),
            source: std::io::Error::other("the output's thread has stopped"),
        };
        if let Msg::Lines(_, n) = &msg {
            // Counted before the send: the thread may write them before it returns.
            self.shared.queued.fetch_add(*n, Ordering::Relaxed);
        }
        match self.on_error {
            OnError::Fail => tx.send(msg).map_err(|_| gone()),
            OnError::Count => match tx.try_send(msg) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(Msg::Lines(_, n))) => {
                    self.shared.queued.fetch_sub(n, Ordering::Relaxed);
                    self.queue_dropped += n;
                    Ok(())
                }
                Err(TrySendError::Full(Msg::Flush(..) | Msg::Sync(_))) => Ok(()),
                Err(TrySendError::Disconnected(_)) => Err(gone()),
            },
        }
    }

    fn send_pending(&mut self) -> Result<(), SinkError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let next = match self.spare.try_recv() {
            Ok(buf) => buf,
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => Vec::with_capacity(BATCH),
        };
        let full = std::mem::replace(&mut self.pending, next);
        let n = std::mem::take(&mut self.pending_lines);
        self.send(Msg::Lines(full, n))
    }

    fn stop(&mut self) -> Result<(), SinkError> {
        self.send_pending()?;
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.check()
    }
}

impl Sink for Threaded {
    fn name(&self) -> &str {
        &self.name
    }

    fn select(&self) -> Select {
        self.select
    }

    /// As the sink it runs: the queue for the server, which fsyncs on its own thread's
    /// clock, is not where the time from an exec to its finding is measured.
    fn writes_on_flush(&self) -> bool {
        self.writes_on_flush
    }

    fn write(&mut self, lines: &[u8], count: u64) -> Result<(), SinkError> {
        self.check()?;
        self.pending.extend_from_slice(lines);
        self.pending_lines += count;
        if self.pending.len() >= BATCH {
            self.send_pending()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.check()?;
        self.send_pending()
    }

    fn flush_timed(
        &mut self,
        exec_ns: Vec<u64>,
        latency: &Arc<Mutex<Histogram>>,
    ) -> Result<(), SinkError> {
        self.flush()?;
        self.send(Msg::Flush(exec_ns, Arc::clone(latency)))
    }

    fn close(&mut self) -> Result<(), SinkError> {
        self.stop()
    }

    fn sync(&mut self) -> Result<(), SinkError> {
        self.flush()?;
        let (tx, rx) = sync_channel(1);
        let Some(sender) = &self.tx else {
            return self.check();
        };
        // Waits even behind a full queue: the caller asked for the counters to be exact.
        if sender.send(Msg::Sync(tx)).is_ok() {
            let _ = rx.recv();
        }
        self.check()
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let mut c = self
            .shared
            .counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(d) = c.iter_mut().find(|(k, _)| *k == "dropped") {
            d.1 += self.queue_dropped;
        }
        c.push(("queue_dropped", self.queue_dropped));
        c
    }

    fn gauges(&self) -> Vec<(&'static str, u64)> {
        let queued = self.shared.queued.load(Ordering::Relaxed);
        vec![("queued_lines", queued + self.pending_lines)]
    }
}

impl Drop for Threaded {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A writer that holds every write until released, keeping what it was given.
    struct Gate {
        open: Arc<AtomicBool>,
        got: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            while !self.open.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1));
            }
            self.got.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn gated(on_error: OnError, queue: usize) -> (Threaded, Arc<AtomicBool>, Arc<Mutex<Vec<u8>>>) {
        let open = Arc::new(AtomicBool::new(false));
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = JsonlSink::new(
            "t",
            "gate",
            Box::new(Gate {
                open: Arc::clone(&open),
                got: Arc::clone(&got),
            }),
            Select::All,
            on_error,
        );
        (
            Threaded::new(sink, on_error, queue).expect("thread"),
            open,
            got,
        )
    }

    fn line(i: usize) -> Vec<u8> {
        // About 1 KiB: 256 of them make a batch.
        format!("{{\"n\":{i},\"pad\":\"{}\"}}\n", "x".repeat(1000)).into_bytes()
    }

    #[test]
    fn a_stalled_output_that_may_lose_drops_and_counts_without_waiting() {
        let (mut sink, open, got) = gated(OnError::Count, 2);
        let started = Instant::now();
        for i in 0..2000 {
            sink.write(&line(i), 1).expect("never fails");
        }
        sink.flush().expect("flush");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the pipeline never waits for it"
        );
        open.store(true, Ordering::Relaxed);
        sink.close().expect("close");
        let written = got
            .lock()
            .expect("lock")
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        let c = sink.counters();
        let get = |k: &str| c.iter().find(|(n, _)| *n == k).map_or(0, |(_, v)| *v);
        assert!(get("queue_dropped") > 0, "{c:?}");
        assert_eq!(
            written + get("dropped"),
            2000,
            "every line written or counted: {c:?}"
        );
        assert_eq!(get("written"), written);
    }

    #[test]
    fn a_stalled_output_that_must_not_lose_is_waited_for_and_gets_everything() {
        let (mut sink, open, got) = gated(OnError::Fail, 2);
        let opener = {
            let open = Arc::clone(&open);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                open.store(true, Ordering::Relaxed);
            })
        };
        for i in 0..2000 {
            sink.write(&line(i), 1).expect("write");
        }
        sink.close().expect("close");
        let _ = opener.join();
        let text = got.lock().expect("lock").clone();
        let lines: Vec<&[u8]> = text
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), 2000);
        for (i, l) in lines.iter().enumerate() {
            assert!(
                l.starts_with(format!("{{\"n\":{i},").as_bytes()),
                "in order"
            );
        }
    }

    #[test]
    fn a_failing_output_that_must_not_lose_stops_the_pipeline() {
        let sink = JsonlSink::new(
            "events",
            "/dev/full",
            Box::new(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/full")
                    .expect("/dev/full"),
            ),
            Select::All,
            OnError::Fail,
        );
        let mut sink = Threaded::new(sink, OnError::Fail, 2).expect("thread");
        let mut failed = None;
        for i in 0..2000 {
            if let Err(e) = sink.write(&line(i), 1).and_then(|()| sink.flush()) {
                failed = Some(e);
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let e = failed
            .or_else(|| sink.close().err())
            .expect("the error comes back");
        assert!(e.to_string().starts_with("cannot write /dev/full: "), "{e}");
    }

    #[test]
    fn latency_is_timed_when_the_thread_has_written() {
        let (mut sink, open, _) = gated(OnError::Fail, 4);
        let h = Arc::new(Mutex::new(Histogram::default()));
        sink.write(&line(0), 1).expect("write");
        let t = vigil_sensor::boot_ns();
        sink.flush_timed(vec![t], &h).expect("flush");
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(h.lock().expect("lock").count(), 0, "not written yet");
        open.store(true, Ordering::Relaxed);
        sink.close().expect("close");
        let h = h.lock().expect("lock");
        assert_eq!(h.count(), 1);
        assert!(h.max() >= 50_000, "{} us", h.max());
    }
}
