//! Shipping to the server: the pipeline writes into the on-disk queue ([`super::spool`])
//! through two sinks ([`ShipSink`], one per stream), and a thread of its own
//! ([`Shipper`]) sends the queue's durable records in batches over the mutual TLS link,
//! findings first, and moves the queue's mark only when the server answers that it has
//! stored them.
//!
//! The protocol: `POST /agent/v1/batches/{stream}/{first}`, the body the batch's JSON
//! lines compressed with zstd (`Content-Encoding: zstd`); the server answers 200 with
//! `{"acked": LAST}` once the records are durable on its side. A batch sent twice (an
//! acknowledgement lost) is recognised by the server and not stored again.

use super::spool::{Batch, SpoolReader, SpoolShared, SpoolWriter, Stream};
use super::{https, Link};
use crate::sink::{Select, Sink, SinkError};
use rustls::{ClientConnection, StreamOwned};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes of JSON lines in one batch at most (before compression).
pub const BATCH_BYTES: usize = 1 << 20;
/// How long a request may take.
const TIMEOUT: Duration = Duration::from_secs(15);
/// The longest wait between two attempts while the server cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long the last pass, at the agent's stop, may send for.
const DRAIN: Duration = Duration::from_secs(5);
/// How long events (not findings) may wait on disk for more to join their batch: a
/// request every few milliseconds would cost the agent more than the events themselves
/// (measured: 2.5 points of a core at 100 exec/s with no wait). Findings go at once.
const LINGER: Duration = Duration::from_millis(1000);
/// Events that go at once whatever `LINGER` says.
const LINGER_RECORDS: u64 = 2000;

/// How long appended events may wait for their fsync (a group commit): one per pipeline
/// flush (every 25 ms) cost the agent more than shipping the events. Findings are
/// fsynced at once.
const EVENTS_SYNC: Duration = Duration::from_millis(200);

/// One stream of the queue as a sink of the pipeline.
pub struct ShipSink {
    writer: SpoolWriter,
    name: &'static str,
    /// The last fsync.
    synced_at: Instant,
    /// Records appended since it.
    unsynced: bool,
}

impl ShipSink {
    /// The sink writing `writer`'s stream.
    pub fn new(writer: SpoolWriter) -> ShipSink {
        let name = match writer.stream() {
            Stream::Findings => "ship_findings",
            Stream::Events => "ship_events",
        };
        ShipSink {
            writer,
            name,
            synced_at: Instant::now(),
            unsynced: false,
        }
    }

    /// Fsyncs what was appended: always when `now`, else when the stream's group commit
    /// is due (findings: always).
    fn sync(&mut self, now: bool) -> Result<(), SinkError> {
        let due = now
            || self.writer.stream() == Stream::Findings
            || self.synced_at.elapsed() >= EVENTS_SYNC;
        if self.unsynced && due {
            self.writer.sync().map_err(|e| write_err(self.name, e))?;
            self.synced_at = Instant::now();
            self.unsynced = false;
        }
        Ok(())
    }
}

fn write_err(name: &str, source: std::io::Error) -> SinkError {
    SinkError::Write {
        name: name.to_string(),
        source,
    }
}

impl Sink for ShipSink {
    fn name(&self) -> &str {
        self.name
    }

    fn select(&self) -> Select {
        match self.writer.stream() {
            Stream::Findings => Select::Findings,
            Stream::Events => Select::NotFindings,
        }
    }

    /// Appends, and fsyncs as the group commit says: findings at once (the sink's
    /// thread gets them at each pipeline flush), events every `EVENTS_SYNC` (what waits
    /// is synced when the thread is idle, within a tenth of a second after).
    fn write(&mut self, lines: &[u8], count: u64) -> Result<(), SinkError> {
        self.writer
            .append(lines, count, vigil_event::time::now_ms())
            .map_err(|e| write_err(self.name, e))?;
        self.unsynced = true;
        self.sync(false)
    }

    fn flush_timed(
        &mut self,
        exec_ns: Vec<u64>,
        latency: &std::sync::Arc<std::sync::Mutex<crate::latency::Histogram>>,
    ) -> Result<(), SinkError> {
        self.sync(false)?;
        crate::sink::record_latency(&exec_ns, latency);
        Ok(())
    }

    fn idle(&mut self) -> Result<(), SinkError> {
        self.sync(true)
    }

    /// Everything appended, fsynced (the pipeline's sync and its end).
    fn flush(&mut self) -> Result<(), SinkError> {
        self.sync(true)
    }

    fn close(&mut self) -> Result<(), SinkError> {
        self.writer.close().map_err(|e| write_err(self.name, e))
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let s = self.writer.shared().stats(self.writer.stream());
        vec![
            ("durable_seq", s.durable),
            ("acked_seq", s.acked),
            ("sent", s.sent),
            ("dropped", s.dropped),
            ("rejected", s.rejected),
        ]
    }

    fn gauges(&self) -> Vec<(&'static str, u64)> {
        let s = self.writer.shared().stats(self.writer.stream());
        vec![
            ("backlog", s.durable.saturating_sub(s.acked)),
            ("spool_bytes", self.writer.shared().bytes()),
        ]
    }

    fn writes_on_flush(&self) -> bool {
        false
    }
}

/// What sending one batch came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// Stored by the server.
    Acked,
    /// Refused for good (malformed: 400, 413): it will never be taken.
    Rejected(u16),
    /// Not now (the server down, overloaded, the link refused): try again later.
    Retry(String),
}

/// A connection to the server for batches, kept open between them (the shipper's; the
/// load generator's simulated agents use it too).
pub struct Conn {
    link: Link,
    stream: Option<StreamOwned<ClientConnection, TcpStream>>,
}

impl Conn {
    /// A connection over `link`, opened at the first batch.
    pub fn new(link: Link) -> Conn {
        Conn { link, stream: None }
    }

    fn send(&mut self, batch: &Batch) -> Sent {
        let body = match zstd::bulk::compress(&batch.lines, 3) {
            Ok(b) => b,
            Err(e) => return Sent::Retry(format!("cannot compress a batch: {e}")),
        };
        self.post(batch.stream, batch.first, batch.last(), &body)
    }

    /// Sends records `first..=last` of `stream`, `body` their JSON lines compressed
    /// with zstd.
    pub fn post(&mut self, stream: Stream, first: u64, last: u64, body: &[u8]) -> Sent {
        let path = format!("/agent/v1/batches/{}/{first}", stream.name());
        let headers = [("Content-Encoding", "zstd")];
        // One retry on a fresh connection: the kept one may have been closed by the
        // server in the meantime.
        let mut failure = String::new();
        for _ in 0..2 {
            if self.stream.is_none() {
                match https::connect(self.link.client_config(), self.link.base(), TIMEOUT) {
                    Ok(s) => self.stream = Some(s),
                    Err(e) => return Sent::Retry(format!("{}: {e}", self.link.info.url)),
                }
            }
            let Some(s) = self.stream.as_mut() else {
                continue;
            };
            let res =
                https::write_request(s, self.link.base(), "POST", &path, &headers, body, true)
                    .and_then(|()| https::read_response(s));
            match res {
                Ok(r) => {
                    if r.header("connection") == Some("close") {
                        self.stream = None;
                    }
                    return match r.status {
                        200 => match serde_json::from_slice::<serde_json::Value>(&r.body)
                            .ok()
                            .and_then(|v| v.get("acked").and_then(serde_json::Value::as_u64))
                        {
                            Some(a) if a >= last => Sent::Acked,
                            _ => {
                                self.stream = None;
                                Sent::Retry(
                                    "the server's acknowledgement does not cover the batch".into(),
                                )
                            }
                        },
                        400 | 413 => Sent::Rejected(r.status),
                        s => {
                            self.stream = None;
                            Sent::Retry(format!("{}: HTTP {s}", self.link.info.url))
                        }
                    };
                }
                Err(e) => {
                    self.stream = None;
                    failure = format!("{}: {e}", self.link.info.url);
                }
            }
        }
        Sent::Retry(failure)
    }
}

/// The thread sending the queue to the server.
pub struct Shipper {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Shipper {
    /// Starts sending `readers`' records over `link` until [`Shipper::stop`] is called;
    /// then, for a few seconds at most, whatever the closed writers made durable last.
    pub fn spawn(
        link: Link,
        readers: [SpoolReader; 2],
        shared: Arc<SpoolShared>,
    ) -> std::io::Result<Shipper> {
        let stop = Arc::new(AtomicBool::new(false));
        let theirs = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("vigil-ship".into())
            .spawn(move || run(link, readers, &shared, &theirs))?;
        Ok(Shipper {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread (after its last pass) and waits for it.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(link: Link, mut readers: [SpoolReader; 2], shared: &SpoolShared, stop: &AtomicBool) {
    let mut conn = Conn::new(link);
    let mut backoff = Duration::from_millis(100);
    let mut retry_at = Instant::now();
    let mut drain_until: Option<Instant> = None;
    let mut last_warn: Option<Instant> = None;
    // Since when events have been waiting (`LINGER`).
    let mut events_waiting: Option<Instant> = None;
    loop {
        if stop.load(Ordering::Relaxed) && drain_until.is_none() {
            drain_until = Some(Instant::now() + DRAIN);
        }
        if let Some(d) = drain_until {
            if shared.writers_closed() && shared.backlog() == 0 {
                return;
            }
            if Instant::now() >= d {
                // Kept in the on-disk queue, sent at the next start: said, not dropped.
                tracing::warn!(
                    records = shared.backlog(),
                    "server queue: stopping with records not acknowledged yet; they stay queued for the next start"
                );
                return;
            }
        }
        let mut sent_any = false;
        let mut failed = false;
        if Instant::now() >= retry_at {
            // Findings first: a batch of events goes only when no finding waits.
            'streams: for r in &mut readers {
                if r.stream() == Stream::Events && drain_until.is_none() {
                    let st = shared.stats(Stream::Events);
                    let pending = st.durable.saturating_sub(st.acked);
                    if pending == 0 {
                        events_waiting = None;
                        continue;
                    }
                    let since = *events_waiting.get_or_insert_with(Instant::now);
                    if pending < LINGER_RECORDS && since.elapsed() < LINGER {
                        continue;
                    }
                }
                loop {
                    let batch = match r.next_batch(BATCH_BYTES) {
                        Ok(Some(b)) => b,
                        Ok(None) => break,
                        Err(p) => {
                            tracing::error!("server queue: {p}");
                            failed = true;
                            break 'streams;
                        }
                    };
                    match conn.send(&batch) {
                        Sent::Acked => {
                            r.count_sent(&batch);
                            if let Err(e) = r.ack(&batch) {
                                tracing::warn!("server queue: cannot keep the mark: {e}");
                            }
                            if batch.stream == Stream::Events {
                                // A backlog goes on at once; new events wait again.
                                let st = shared.stats(Stream::Events);
                                events_waiting = (st.durable > st.acked)
                                    .then(|| Instant::now().checked_sub(LINGER))
                                    .flatten();
                            }
                            sent_any = true;
                            backoff = Duration::from_millis(100);
                        }
                        Sent::Rejected(status) => {
                            tracing::error!(
                                stream = batch.stream.name(),
                                first = batch.first,
                                count = batch.count,
                                status,
                                "the server refused a batch as malformed; its records are counted rejected"
                            );
                            r.count_rejected(&batch);
                            if let Err(e) = r.ack(&batch) {
                                tracing::warn!("server queue: cannot keep the mark: {e}");
                            }
                        }
                        Sent::Retry(why) => {
                            if last_warn.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                                tracing::warn!(
                                    backlog = shared.backlog(),
                                    "cannot ship to the server (queued on disk, retrying): {why}"
                                );
                                last_warn = Some(Instant::now());
                            }
                            failed = true;
                            break 'streams;
                        }
                    }
                    if batch.stream == Stream::Events && r.stream() == Stream::Events {
                        // Back to the findings after each batch of events.
                        continue 'streams;
                    }
                }
            }
        }
        if failed {
            retry_at = Instant::now() + backoff;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            if drain_until.is_some() {
                return;
            }
        }
        if !sent_any {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
