//! The bounded buffer between the agent's pipeline and an output's thread, and the
//! thread's loop: batches by size and age, delivery, retries with exponential backoff and
//! jitter, and the count of every event's fate.
//!
//! The pipeline side ([`Output::offer`]) never waits on the network: it takes a lock the
//! thread holds only to move events in and out of the queue (never across I/O), and an
//! event that does not fit (`buffer_bytes`, `buffer_events`, counting the events in
//! flight) is dropped, the newest: what was accepted before goes out first, so an outage
//! loses nothing that fit. Every event offered ends as exactly one of: `sent` (the
//! server acknowledged it), `overflow_dropped`, `rejected_dropped` (the server refused it
//! for good: counted and logged, never retried forever), `exit_dropped` (still held when
//! the agent stopped and `shutdown_ms` ran out), or still held (`buffered_events`).

use crate::config::{Common, Selection};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// What the server made of a batch.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// All of it acknowledged.
    Sent,
    /// Nothing acknowledged (unreachable, timed out, 5xx, 429 ...): retry it all.
    Failed(String),
    /// All of it refused for good (a 400 for the request).
    Rejected(String),
    /// The request is too large for the server: split it.
    TooLarge,
    /// One fate per event, in order (a bulk response, or a stream cut part-way).
    Items(Vec<Item>),
}

/// One event's fate in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// Acknowledged.
    Sent,
    /// Not acknowledged, may succeed later.
    Retry(String),
    /// Refused for good.
    Reject(String),
}

/// Sends batches to one server.
pub(crate) trait Deliver: Send {
    /// Sends `batch` (events as JSON, without newlines), once, bounded by the timeouts.
    fn deliver(&mut self, batch: &[Vec<u8>]) -> Outcome;
}

#[derive(Default)]
struct State {
    /// Events waiting, with when they came.
    queue: VecDeque<(Instant, Vec<u8>)>,
    queued_bytes: u64,
    /// Waiting and in flight.
    held_bytes: u64,
    held_events: u64,
    /// Stop when everything is delivered or `deadline` passes.
    closing: bool,
    /// Send what waits without waiting for a batch to fill (a sync).
    drain: bool,
    deadline: Option<Instant>,
}

#[derive(Default)]
struct Counters {
    offered: AtomicU64,
    sent: AtomicU64,
    sent_bytes: AtomicU64,
    batches: AtomicU64,
    retried: AtomicU64,
    failures: AtomicU64,
    overflow_dropped: AtomicU64,
    rejected_dropped: AtomicU64,
    exit_dropped: AtomicU64,
    buffered_events: AtomicU64,
    buffered_bytes: AtomicU64,
}

struct Shared {
    name: String,
    state: Mutex<State>,
    /// The thread waits on it for events, and sleeps on it between retries.
    wake: Condvar,
    /// Syncs wait on it for the buffer to empty.
    idle: Condvar,
    c: Counters,
    limits: Limits,
    /// When the pipeline side last logged an overflow (ms since `born`).
    overflow_logged: AtomicU64,
    born: Instant,
}

#[derive(Clone, Copy)]
struct Limits {
    buffer_bytes: u64,
    buffer_events: u64,
    batch_events: usize,
    batch_bytes: u64,
    flush: Duration,
    retry_initial: Duration,
    retry_max: Duration,
    shutdown: Duration,
}

/// How often the same kind of trouble is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// One output: the pipeline's handle on the buffer and the thread that sends it.
pub struct Output {
    shared: Arc<Shared>,
    select: Selection,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Output {
    /// Starts the thread that sends to `deliver`.
    pub(crate) fn start(
        name: String,
        c: &Common,
        deliver: Box<dyn Deliver>,
    ) -> std::io::Result<Output> {
        let ms = Duration::from_millis;
        let shared = Arc::new(Shared {
            name: name.clone(),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            idle: Condvar::new(),
            c: Counters::default(),
            limits: Limits {
                buffer_bytes: c.buffer_bytes,
                buffer_events: c.buffer_events,
                batch_events: usize::try_from(c.batch_events).unwrap_or(usize::MAX).max(1),
                batch_bytes: c.batch_bytes.max(1),
                flush: ms(c.flush_ms),
                retry_initial: ms(c.retry_initial_ms.max(1)),
                retry_max: ms(c.retry_max_ms.max(1)),
                shutdown: ms(c.shutdown_ms),
            },
            overflow_logged: AtomicU64::new(u64::MAX),
            born: Instant::now(),
        });
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("vigil-out-{name}"))
            .spawn(move || Worker::new(theirs, deliver).run())?;
        Ok(Output {
            shared,
            select: c.select,
            thread: Some(thread),
        })
    }

    /// The output's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Which events it takes.
    pub fn select(&self) -> Selection {
        self.select
    }

    /// Hands one event (a JSON object; a trailing newline is left out) to the output;
    /// never waits for the network. `false`: it did not fit and was counted as dropped.
    pub fn offer(&self, event: &[u8]) -> bool {
        let event = event.strip_suffix(b"\n").unwrap_or(event);
        let len = event.len() as u64;
        let l = &self.shared.limits;
        self.shared.c.offered.fetch_add(1, Relaxed);
        let mut st = self.shared.lock();
        if st.held_events + 1 > l.buffer_events || st.held_bytes + len > l.buffer_bytes {
            drop(st);
            self.shared.c.overflow_dropped.fetch_add(1, Relaxed);
            self.log_overflow();
            return false;
        }
        let was_empty = st.queue.is_empty();
        st.queue.push_back((Instant::now(), event.to_vec()));
        st.queued_bytes += len;
        st.held_bytes += len;
        st.held_events += 1;
        self.shared.gauges(&st);
        // Wake the thread when its timer must start, or a batch is full.
        if was_empty || st.queue.len() == l.batch_events || st.queued_bytes >= l.batch_bytes {
            self.shared.wake.notify_one();
        }
        true
    }

    fn log_overflow(&self) {
        let now = self.shared.born.elapsed().as_millis() as u64;
        let last = self.shared.overflow_logged.load(Relaxed);
        if last == u64::MAX || now.saturating_sub(last) >= LOG_EVERY.as_millis() as u64 {
            self.shared.overflow_logged.store(now, Relaxed);
            tracing::warn!(
                output = %self.shared.name,
                dropped = self.shared.c.overflow_dropped.load(Relaxed),
                buffer_bytes = self.shared.limits.buffer_bytes,
                buffer_events = self.shared.limits.buffer_events,
                "output buffer full: new events are counted and dropped until it drains"
            );
        }
    }

    /// Sends everything held now and waits until it is delivered, or `shutdown_ms`
    /// after the first sync or close (the agent's exit path: this bounds it).
    pub fn sync(&self) {
        let mut st = self.shared.lock();
        let deadline = *st
            .deadline
            .get_or_insert_with(|| Instant::now() + self.shared.limits.shutdown);
        st.drain = true;
        self.shared.wake.notify_all();
        while st.held_events > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self
                .shared
                .idle
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        // Events offered from now on are batched as usual.
        st.drain = false;
    }

    /// Delivers what is held (for `shutdown_ms` at most, counted from the first sync or
    /// close), counts what is left as `exit_dropped`, and stops the thread.
    pub fn close(&mut self) {
        {
            let mut st = self.shared.lock();
            st.deadline
                .get_or_insert_with(|| Instant::now() + self.shared.limits.shutdown);
            st.closing = true;
            self.shared.wake.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Counters: events `offered`, `sent` (acknowledged) and `sent_bytes`, `batches`
    /// acknowledged (whole or in part), events `retried` (once per retry), `failures`
    /// (attempts that failed), `overflow_dropped`, `rejected_dropped`, `exit_dropped`,
    /// `dropped` (their sum), and the gauges `buffered_events` and `buffered_bytes`.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let c = &self.shared.c;
        let g = |a: &AtomicU64| a.load(Relaxed);
        vec![
            ("offered", g(&c.offered)),
            ("sent", g(&c.sent)),
            ("sent_bytes", g(&c.sent_bytes)),
            ("batches", g(&c.batches)),
            ("retried", g(&c.retried)),
            ("failures", g(&c.failures)),
            ("overflow_dropped", g(&c.overflow_dropped)),
            ("rejected_dropped", g(&c.rejected_dropped)),
            ("exit_dropped", g(&c.exit_dropped)),
            (
                "dropped",
                g(&c.overflow_dropped) + g(&c.rejected_dropped) + g(&c.exit_dropped),
            ),
            ("buffered_events", g(&c.buffered_events)),
            ("buffered_bytes", g(&c.buffered_bytes)),
        ]
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.close();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn gauges(&self, st: &State) {
        self.c.buffered_events.store(st.held_events, Relaxed);
        self.c.buffered_bytes.store(st.held_bytes, Relaxed);
    }

    /// Events leave the buffer (delivered, or dropped for good).
    fn release(&self, events: &[Vec<u8>]) {
        let bytes: u64 = events.iter().map(|e| e.len() as u64).sum();
        let mut st = self.lock();
        st.held_bytes -= bytes;
        st.held_events -= events.len() as u64;
        self.gauges(&st);
        if st.held_events == 0 {
            self.idle.notify_all();
        }
    }
}

/// What happens to a batch's events.
enum Fate {
    Sent,
    Rejected,
    AtExit,
}

struct Worker {
    shared: Arc<Shared>,
    deliver: Box<dyn Deliver>,
    rng: u64,
    /// When failures and rejections were last logged.
    failure_logged: Option<Instant>,
    reject_logged: Option<Instant>,
}

impl Worker {
    fn new(shared: Arc<Shared>, deliver: Box<dyn Deliver>) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ (u64::from(std::process::id()) << 32)
            ^ (Arc::as_ptr(&shared) as u64);
        Worker {
            shared,
            deliver,
            rng: seed | 1,
            failure_logged: None,
            reject_logged: None,
        }
    }

    fn run(mut self) {
        while let Some(batch) = self.take_batch() {
            self.send(batch);
        }
    }

    /// Waits for a batch: full, or its oldest event `flush_ms` old, or a sync or close
    /// asking for everything. `None`: closing and nothing left (or the time is up).
    fn take_batch(&self) -> Option<Vec<Vec<u8>>> {
        let sh = &self.shared;
        let l = sh.limits;
        let mut st = sh.lock();
        loop {
            if st.closing && st.deadline.is_some_and(|d| Instant::now() >= d) {
                let left: Vec<Vec<u8>> = st.queue.drain(..).map(|(_, e)| e).collect();
                st.queued_bytes = 0;
                drop(st);
                self.finish(&left, Fate::AtExit);
                return None;
            }
            let Some((first, _)) = st.queue.front() else {
                if st.closing {
                    return None;
                }
                st.drain = false;
                st = sh.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            let age = first.elapsed();
            let due = st.queue.len() >= l.batch_events
                || st.queued_bytes >= l.batch_bytes
                || st.closing
                || st.drain
                || age >= l.flush;
            if !due {
                st = sh
                    .wake
                    .wait_timeout(st, l.flush - age)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                continue;
            }
            let mut batch = Vec::new();
            let mut bytes = 0u64;
            while batch.len() < l.batch_events {
                let Some((_, e)) = st.queue.front() else {
                    break;
                };
                let n = e.len() as u64;
                if !batch.is_empty() && bytes + n > l.batch_bytes {
                    break;
                }
                bytes += n;
                if let Some((_, e)) = st.queue.pop_front() {
                    batch.push(e);
                }
            }
            st.queued_bytes -= bytes;
            return Some(batch);
        }
    }

    /// Delivers a batch, retrying what may succeed later until it does or the agent
    /// stops and `shutdown_ms` runs out.
    fn send(&mut self, mut pending: Vec<Vec<u8>>) {
        let l = self.shared.limits;
        let mut delay = l.retry_initial;
        loop {
            let why = match self.deliver.deliver(&pending) {
                Outcome::Sent => {
                    self.finish(&pending, Fate::Sent);
                    return;
                }
                Outcome::Rejected(why) => {
                    self.log_rejected(pending.len(), &why);
                    self.finish(&pending, Fate::Rejected);
                    return;
                }
                Outcome::TooLarge if pending.len() > 1 => {
                    // The second half goes back to the front of the queue, in order.
                    let back = pending.split_off(pending.len() / 2);
                    let mut st = self.shared.lock();
                    for e in back.into_iter().rev() {
                        st.queued_bytes += e.len() as u64;
                        st.queue.push_front((Instant::now(), e));
                    }
                    continue;
                }
                Outcome::TooLarge => {
                    self.log_rejected(1, "one event is larger than the server takes");
                    self.finish(&pending, Fate::Rejected);
                    return;
                }
                Outcome::Items(items) if items.len() == pending.len() => {
                    let mut keep = Vec::new();
                    let (mut sent, mut rejected) = (Vec::new(), Vec::new());
                    let (mut why, mut refused) = (None, None);
                    for (e, item) in pending.into_iter().zip(items) {
                        match item {
                            Item::Sent => sent.push(e),
                            Item::Reject(r) => {
                                refused.get_or_insert(r);
                                rejected.push(e);
                            }
                            Item::Retry(r) => {
                                why.get_or_insert(r);
                                keep.push(e);
                            }
                        }
                    }
                    if let Some(r) = refused {
                        self.log_rejected(rejected.len(), &r);
                        self.finish(&rejected, Fate::Rejected);
                    }
                    if !sent.is_empty() {
                        self.finish(&sent, Fate::Sent);
                    }
                    pending = keep;
                    match why {
                        None => return,
                        Some(w) => w,
                    }
                }
                Outcome::Items(items) => format!(
                    "a response of {} items for {} events",
                    items.len(),
                    pending.len()
                ),
                Outcome::Failed(why) => why,
            };
            self.shared.c.failures.fetch_add(1, Relaxed);
            self.log_failure(&why, pending.len());
            // Back off: half to all of `delay`, at random, then twice as long next time.
            let half = delay / 2;
            let jitter = Duration::from_nanos(self.next_random() % (half.as_nanos() as u64 + 1));
            if !self.sleep(half + jitter) {
                self.finish(&pending, Fate::AtExit);
                return;
            }
            delay = (delay * 2).min(l.retry_max);
            self.shared
                .c
                .retried
                .fetch_add(pending.len() as u64, Relaxed);
        }
    }

    /// Sleeps `d`, unless the agent is stopping and its time is up: `false` then.
    fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        let mut st = self.shared.lock();
        loop {
            let now = Instant::now();
            if st.closing && st.deadline.is_some_and(|dl| now >= dl) {
                return false;
            }
            if now >= until {
                return true;
            }
            let mut wait = until - now;
            if let (true, Some(dl)) = (st.closing, st.deadline) {
                wait = wait.min(dl.saturating_duration_since(now));
            }
            st = self
                .shared
                .wake
                .wait_timeout(st, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn finish(&self, events: &[Vec<u8>], fate: Fate) {
        if events.is_empty() {
            return;
        }
        let c = &self.shared.c;
        let n = events.len() as u64;
        match fate {
            Fate::Sent => {
                c.sent.fetch_add(n, Relaxed);
                c.sent_bytes
                    .fetch_add(events.iter().map(|e| e.len() as u64).sum(), Relaxed);
                c.batches.fetch_add(1, Relaxed);
            }
            Fate::Rejected => {
                c.rejected_dropped.fetch_add(n, Relaxed);
            }
            Fate::AtExit => {
                c.exit_dropped.fetch_add(n, Relaxed);
                tracing::warn!(
                    output = %self.shared.name,
                    dropped = n,
                    "the agent is stopping and the output's time is up: held events dropped"
                );
            }
        }
        self.shared.release(events);
    }

    fn log_failure(&mut self, why: &str, events: usize) {
        if self.failure_logged.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            self.failure_logged = Some(Instant::now());
            tracing::warn!(
                output = %self.shared.name,
                events,
                failures = self.shared.c.failures.load(Relaxed),
                buffered = self.shared.c.buffered_events.load(Relaxed),
                "cannot deliver ({why}); retrying with backoff, held events are kept"
            );
        }
    }

    fn log_rejected(&mut self, events: usize, why: &str) {
        if self.reject_logged.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            self.reject_logged = Some(Instant::now());
            tracing::error!(
                output = %self.shared.name,
                events,
                rejected = self.shared.c.rejected_dropped.load(Relaxed) + events as u64,
                "the server refused events for good ({why}); they are counted and dropped"
            );
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: jitter needs spread, not secrecy.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}
