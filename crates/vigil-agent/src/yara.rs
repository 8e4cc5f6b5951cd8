//! File verdicts in the agent: each executable at its exec and each file closed after
//! being written is judged with YARA rules, without ever holding up an event.
//!
//! ```text
//!  event thread: exec / close-after-write ──▶ lstat ──▶ cache ──hit──▶ finding now
//!                                                         │ miss
//!                                                         ▼
//!  scan threads:              bounded queue ──▶ FileScanner (read, match, timeout)
//!                                                         │ verdict (into the cache)
//!                                                         ▼
//!  event thread, next poll:   a finding per matching rule, per waiting event
//! ```
//!
//! The event thread does one `lstat` and one cache lookup per candidate event (the
//! cache is keyed by device, inode, modification and change times, size and the
//! per-file external values, so an unchanged file is judged once). A miss becomes a
//! request on a bounded queue; a full queue drops the request (counted), it never
//! waits. Events about a file whose scan is already asked for wait beside it (bounded)
//! rather than asking again, so 1,600 execs of one new binary are one scan. Verdicts
//! come back through a channel the pipeline polls; each matching rule becomes a
//! finding about each waiting event's process, through the detector
//! ([`Detector::report_finding`]), so it joins its story's incident and the response
//! policy sees it like a rule's.

use crate::config::YaraConfig;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vigil_detect::Detector;
use vigil_event::OcsfEvent;
use vigil_yara::{
    cache_key, Cache, CacheKey, FileScanner, Outcome, Owners, RuleSet, ScanConfig, Verdict,
    VerdictCache, Walk,
};

/// OCSF File System Activity's Update: what the sensor reports a close after writing
/// as (with `close_write` among the file's attributes).
const FILE_UPDATE: i32 = 3;

/// Events held beside one file's pending scan at most (more are counted, not judged).
const MAX_WAITING: usize = 256;

/// A file to scan.
struct Job {
    path: PathBuf,
    key: CacheKey,
    /// Scan the program this process runs (`/proc/PID/exe`) rather than `path`: its
    /// executable is deleted or has no path (a `memfd`).
    process: Option<i32>,
}

/// A scan's result.
struct Done {
    path: PathBuf,
    key: CacheKey,
    outcome: Outcome,
    /// How long the scan took (reading and matching).
    took: Duration,
}

/// What the agent's file verdicts counted.
#[derive(Debug, Clone, Copy, Default)]
pub struct YaraStats {
    /// Events that named a file to judge (exec, close after write).
    pub asked: u64,
    /// Judged from the cache, without a scan.
    pub cache_hits: u64,
    /// Files sent to the scan threads.
    pub queued: u64,
    /// Events that waited beside a scan already asked for.
    pub joined: u64,
    /// Requests not scanned because the queue was full, or too many events waited.
    pub dropped: u64,
    /// Files scanned.
    pub scanned: u64,
    /// Files not scanned: gone, changed, too large, special, unreadable.
    pub skipped: u64,
    /// Scans ended by the timeout.
    pub timeouts: u64,
    /// Files excluded by `include` / `exclude` before anything was read.
    pub excluded: u64,
    /// Verdicts with at least one matching rule (cached or scanned), per event.
    pub matched: u64,
    /// Microseconds of the slowest scan.
    pub scan_us_max: u64,
    /// Microseconds of all scans.
    pub scan_us_total: u64,
}

/// The rule set and everything a verdict needs, shared with the scan threads.
struct Shared {
    rules: RuleSet,
    cache: Cache,
    owners: Owners,
    scan: ScanConfig,
}

/// The agent's file verdicts: the event-thread side (filter, cache, queue) and its scan
/// threads.
pub struct FileVerdicts {
    shared: Arc<Shared>,
    config: YaraConfig,
    exclude: Walk,
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    /// Events waiting for the verdict of a file being scanned.
    waiting: HashMap<CacheKey, Vec<OcsfEvent>>,
    /// The cache key last made for each path, with the metadata it was made from: an
    /// unchanged file's next event reuses it instead of hashing its names again.
    recent: HashMap<Box<str>, (Ident, CacheKey)>,
    stats: YaraStats,
}

/// What a cache key is made of besides the path: the metadata fields it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ident {
    dev: u64,
    ino: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    size: u64,
    uid: u32,
}

impl Ident {
    fn of(m: &std::fs::Metadata) -> Ident {
        use std::os::unix::fs::MetadataExt;
        Ident {
            dev: m.dev(),
            ino: m.ino(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            size: m.size(),
            uid: m.uid(),
        }
    }
}

/// Paths whose key is remembered at most (then the memo starts again).
const MAX_RECENT: usize = 4096;

impl FileVerdicts {
    /// Starts the scan threads for `rules` (already compiled) with `config`.
    pub fn start(rules: RuleSet, config: YaraConfig) -> Result<FileVerdicts, String> {
        let exclude = Walk::new(&config.exclude).map_err(|e| format!("yara.exclude: {e}"))?;
        let shared = Arc::new(Shared {
            rules,
            cache: Mutex::new(VerdictCache::new(config.cache_entries)),
            owners: Owners::system(),
            scan: ScanConfig {
                max_size: config.max_size,
                timeout: Duration::from_secs(config.timeout_secs),
                fixed: Vec::new(),
                // One file's content is held at a time per thread; a buffer past 8 MiB
                // is given back after its file.
                keep_buffer: 8 << 20,
            },
        });
        let (jobs, job_rx) = mpsc::sync_channel::<Job>(config.queue);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (done_tx, done) = mpsc::channel::<Done>();
        let mut workers = Vec::new();
        for i in 0..config.threads {
            let shared = Arc::clone(&shared);
            let job_rx = Arc::clone(&job_rx);
            let done_tx = done_tx.clone();
            let w = std::thread::Builder::new()
                .name(format!("yara-{i}"))
                .spawn(move || scan_thread(&shared, &job_rx, &done_tx))
                .map_err(|e| format!("cannot start a YARA scan thread: {e}"))?;
            workers.push(w);
        }
        Ok(FileVerdicts {
            shared,
            config,
            exclude,
            jobs: Some(jobs),
            done,
            workers,
            waiting: HashMap::new(),
            recent: HashMap::new(),
            stats: YaraStats::default(),
        })
    }

    /// The counters.
    pub fn stats(&self) -> YaraStats {
        self.stats
    }

    /// Files whose verdict is awaited.
    pub fn pending(&self) -> usize {
        self.waiting.len()
    }

    /// The file an event asks to judge, if any: the executable of an exec (with the
    /// process when only `/proc/PID/exe` reaches it: deleted, or a `memfd`), the file of
    /// a close after writing.
    fn candidate<'v>(&self, ev: &'v OcsfEvent) -> Option<(&'v Path, Option<i32>)> {
        let path = match ev {
            OcsfEvent::Process(p) if p.activity_id == 1 && self.config.exec => {
                let file = p.process.file.as_ref()?;
                let path = file.path.as_deref()?;
                let unnamed = file.is_deleted == Some(true) || path.starts_with("/memfd:");
                if unnamed {
                    return Some((Path::new(path), Some(p.process.pid?)));
                }
                path
            }
            OcsfEvent::File(f)
                if f.activity_id == FILE_UPDATE
                    && self.config.written
                    && f.file
                        .xattributes
                        .as_ref()
                        .and_then(|x| x.get("close_write"))
                        .and_then(serde_json::Value::as_bool)
                        == Some(true) =>
            {
                f.file.path.as_deref()?
            }
            _ => return None,
        };
        Some((Path::new(path), None))
    }

    fn wanted(&self, path: &Path) -> bool {
        (self.config.include.is_empty() || self.config.include.iter().any(|d| path.starts_with(d)))
            && !self.exclude.is_excluded(path)
    }

    /// Looks at one event (after the rules saw it): a cached verdict is reported now
    /// (its findings through `detector`), a file not judged yet is queued.
    pub fn check(
        &mut self,
        ev: &OcsfEvent,
        detector: &mut Detector,
        now_ms: i64,
        out: &mut Vec<OcsfEvent>,
    ) {
        let Some((path, process)) = self.candidate(ev) else {
            return;
        };
        self.stats.asked += 1;
        if !self.wanted(path) {
            self.stats.excluded += 1;
            return;
        }
        // The scanner judges what lstat says (a symlink is not followed, a special
        // file never opened); here the lstat only makes the key. A program with no path
        // is reached through its process (the link is followed on purpose).
        let meta = match process {
            Some(pid) => std::fs::metadata(format!("/proc/{pid}/exe")),
            None => std::fs::symlink_metadata(path),
        };
        let Ok(meta) = meta else {
            self.stats.skipped += 1;
            return;
        };
        if !meta.file_type().is_file() {
            self.stats.skipped += 1;
            return;
        }
        if meta.len() > self.config.max_size {
            self.stats.skipped += 1;
            return;
        }
        let key = self.key(path, &meta);
        if let Some(list) = self.waiting.get_mut(&key) {
            if list.len() < MAX_WAITING {
                list.push(ev.clone());
                self.stats.joined += 1;
            } else {
                self.stats.dropped += 1;
            }
            return;
        }
        let cached = self
            .shared
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key);
        if let Some(verdict) = cached {
            self.stats.cache_hits += 1;
            if !verdict.hits.is_empty() {
                self.report(&verdict, path, &meta, ev, detector, now_ms, out);
            }
            return;
        }
        let Some(jobs) = &self.jobs else { return };
        match jobs.try_send(Job {
            path: path.to_path_buf(),
            key,
            process,
        }) {
            Ok(()) => {
                self.stats.queued += 1;
                self.waiting.insert(key, vec![ev.clone()]);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.stats.dropped += 1,
        }
    }

    /// The cache key of `path` with metadata `meta`: the one made last time when the
    /// metadata it was made from is the same.
    fn key(&mut self, path: &Path, meta: &std::fs::Metadata) -> CacheKey {
        let ident = Ident::of(meta);
        let name = path.to_string_lossy();
        if let Some((i, k)) = self.recent.get(name.as_ref()) {
            if *i == ident {
                return *k;
            }
        }
        let key = cache_key(path, meta, &self.shared.owners);
        if self.recent.len() >= MAX_RECENT {
            self.recent.clear();
        }
        self.recent.insert(name.into(), (ident, key));
        key
    }

    /// Reports the verdicts that came back since the last call.
    pub fn poll(&mut self, detector: &mut Detector, now_ms: i64, out: &mut Vec<OcsfEvent>) {
        while let Ok(d) = self.done.try_recv() {
            self.finished(d, detector, now_ms, out);
        }
    }

    /// Waits up to `wait` for the scans asked for, reporting their verdicts, then stops
    /// the scan threads (a scan still running past it is counted as dropped).
    pub fn finish(
        &mut self,
        wait: Duration,
        detector: &mut Detector,
        now_ms: i64,
        out: &mut Vec<OcsfEvent>,
    ) {
        let deadline = Instant::now() + wait;
        while !self.waiting.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.done.recv_timeout(left) {
                Ok(d) => self.finished(d, detector, now_ms, out),
                Err(_) => break,
            }
        }
        for (_, list) in self.waiting.drain() {
            self.stats.dropped += list.len() as u64;
        }
        // The threads end when the queue closes and their scan (bounded by the
        // timeout) ends; they are not waited for past `wait`.
        self.jobs = None;
        let workers = std::mem::take(&mut self.workers);
        if Instant::now() < deadline {
            for w in workers {
                let _ = w.join();
            }
        }
    }

    fn finished(
        &mut self,
        d: Done,
        detector: &mut Detector,
        now_ms: i64,
        out: &mut Vec<OcsfEvent>,
    ) {
        let events = self.waiting.remove(&d.key).unwrap_or_default();
        let us = u64::try_from(d.took.as_micros()).unwrap_or(u64::MAX);
        match d.outcome {
            Outcome::Scanned {
                verdict,
                meta,
                cached,
            } => {
                if cached {
                    self.stats.cache_hits += 1;
                } else {
                    self.stats.scanned += 1;
                    self.stats.scan_us_total += us;
                    self.stats.scan_us_max = self.stats.scan_us_max.max(us);
                }
                if !verdict.hits.is_empty() {
                    for ev in &events {
                        self.report(&verdict, &d.path, &meta, ev, detector, now_ms, out);
                    }
                }
            }
            Outcome::Skipped(skip) => {
                if skip == vigil_yara::Skip::Timeout {
                    self.stats.timeouts += 1;
                } else {
                    self.stats.skipped += 1;
                }
                tracing::debug!(path = %d.path.display(), "not scanned: {skip}");
            }
        }
    }

    /// One finding per matching rule, about `ev`'s process.
    #[allow(
        clippy::too_many_arguments,
        reason = "the verdict, what it is about, and where its findings go"
    )]
    fn report(
        &mut self,
        verdict: &Verdict,
        path: &Path,
        meta: &std::fs::Metadata,
        ev: &OcsfEvent,
        detector: &mut Detector,
        now_ms: i64,
        out: &mut Vec<OcsfEvent>,
    ) {
        use std::os::unix::fs::MetadataExt;
        self.stats.matched += 1;
        let owner = self.shared.owners.name(meta.uid());
        let findings = vigil_yara::finding::findings(
            verdict,
            path,
            meta,
            &owner,
            |ns| self.shared.rules.file_of(ns).map(Path::to_path_buf),
            now_ms,
        );
        for (hit, f) in verdict.hits.iter().zip(findings) {
            // The same rule on the same file again, for the same process, is a repeat.
            let handle = format!(
                "yara:{}:{}:{}:{}",
                self.shared
                    .rules
                    .file_of(&hit.namespace)
                    .map_or_else(|| hit.namespace.clone(), |p| p.display().to_string()),
                hit.identifier,
                meta.dev(),
                meta.ino()
            );
            detector.report_finding(&handle, f, ev, now_ms, out);
        }
    }

    /// Judges files with `rules` from now on: new scan threads and a fresh cache (the
    /// old verdicts were the old rules'); the old threads end after their current scan,
    /// and what they find is not reported. Files waiting for a verdict are asked of the
    /// new rules. The counters go on.
    pub fn replace_rules(&mut self, rules: RuleSet) -> Result<(), String> {
        let mut fresh = FileVerdicts::start(rules, self.config.clone())?;
        fresh.stats = self.stats;
        let waiting = std::mem::take(&mut self.waiting);
        *self = fresh;
        for (key, events) in waiting {
            let Some((path, process)) = events.first().and_then(|ev| self.candidate(ev)) else {
                continue;
            };
            let job = Job {
                path: path.to_path_buf(),
                key,
                process,
            };
            let sent = self
                .jobs
                .as_ref()
                .is_some_and(|jobs| jobs.try_send(job).is_ok());
            if sent {
                self.waiting.insert(key, events);
            } else {
                self.stats.dropped += events.len() as u64;
            }
        }
        Ok(())
    }

    /// The counters, named for the agent's statistics.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let s = self.stats;
        vec![
            ("yara_asked", s.asked),
            ("yara_cache_hits", s.cache_hits),
            ("yara_queued", s.queued),
            ("yara_joined", s.joined),
            ("yara_dropped", s.dropped),
            ("yara_scanned", s.scanned),
            ("yara_skipped", s.skipped),
            ("yara_timeouts", s.timeouts),
            ("yara_excluded", s.excluded),
            ("yara_matched", s.matched),
            ("yara_scan_us_max", s.scan_us_max),
            ("yara_scan_us_total", s.scan_us_total),
            ("yara_pending", self.waiting.len() as u64),
        ]
    }
}

impl Drop for FileVerdicts {
    fn drop(&mut self) {
        // Closing the queue ends the threads after their current scan; they are not
        // joined here (a scan may run up to its timeout).
        self.jobs = None;
    }
}

fn scan_thread(shared: &Shared, jobs: &Mutex<Receiver<Job>>, done: &mpsc::Sender<Done>) {
    let mut scanner = FileScanner::new(
        &shared.rules,
        &shared.scan,
        &shared.owners,
        Some(&shared.cache),
    );
    loop {
        let job = {
            let rx = jobs.lock().unwrap_or_else(PoisonError::into_inner);
            rx.recv()
        };
        let Ok(job) = job else { return };
        let started = Instant::now();
        // A fresh lstat: the file may have changed since the event (then its key
        // differs, and the verdict is cached under the new one).
        let outcome = match job.process {
            Some(pid) => scanner.scan_process_exe(pid, &job.path),
            None => scanner.scan_path(&job.path, None),
        };
        let d = Done {
            path: job.path,
            key: job.key,
            outcome,
            took: started.elapsed(),
        };
        if done.send(d).is_err() {
            return;
        }
    }
}

/// Compiles YARA rule files on a thread of its own. The compiler's many short-lived
/// allocations then stay in that thread's malloc arena: made on the event thread, they
/// left its heap fragmented, and every later allocation there slower (at 1,600 exec/s
/// with signature-base loaded, about 1.3 points of a core more in the C library's
/// allocator, `unlink_chunk` above all; `scripts/bench-yara-agent`).
pub fn load_apart(
    paths: &[std::path::PathBuf],
) -> Result<(RuleSet, vigil_yara::LoadReport), vigil_yara::LoadError> {
    let owned = paths.to_vec();
    match std::thread::Builder::new()
        .name("vigil-yara-load".into())
        .spawn(move || RuleSet::load(&owned))
    {
        Ok(thread) => thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
        // No thread to be had: compiled here, the same rules (only the heap pays).
        Err(_) => RuleSet::load(paths),
    }
}

/// Compiles the configured YARA rules and starts the scan threads; `None` when no rules
/// are configured or none load. Every rule file refused is logged with its `file:line`
/// and reason; the agent runs without file verdicts rather than not at all.
pub fn load(config: &YaraConfig) -> Option<FileVerdicts> {
    if config.paths.is_empty() {
        return None;
    }
    let (rules, report) = match load_apart(&config.paths) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("YARA rules not loaded, files are not scanned: {e}");
            return None;
        }
    };
    for r in &report.refused {
        tracing::warn!("YARA rule file refused: {r}");
    }
    tracing::info!(
        files = report.loaded.len(),
        refused = report.refused.len(),
        rules = report.rules,
        seconds = report.seconds,
        "YARA rules loaded"
    );
    match FileVerdicts::start(rules, config.clone()) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::error!("files are not scanned: {e}");
            None
        }
    }
}
