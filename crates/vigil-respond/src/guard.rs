//! The permission guard: one fanotify group (`FAN_CLASS_CONTENT`) whose events the
//! kernel holds until Vigil answers. Two jobs:
//!
//! * **Block before exec** (`FAN_OPEN_EXEC_PERM`): an executable on the blocklist (by
//!   path, or by SHA-256, remembered per device, inode, size and times) is refused: the
//!   `execve` fails with EPERM and the program never runs. In detect mode it runs, and
//!   the guard says it would have refused it.
//! * **The rollback journal** (`FAN_OPEN_PERM` on journaled directories): an open for
//!   writing waits while [`Journal`] copies the file.
//!
//! **Never hang the host.** A verdict has a deadline: hashing that runs past it lets the
//! program run (counted). A heartbeat thread writes to a pipe while the verdict thread is
//! idle or within its deadline (a journal copy gets [`COPY_LIMIT`]); a helper process,
//! spawned with the group on its standard input and the pipe on its standard output,
//! takes over when the heartbeat stops (the agent stopped, stuck, or busy past its
//! deadline): it answers "allow" for every event the agent holds (by descriptor number,
//! from `/proc/AGENT/fd`) and for every new one, until the heartbeat comes back. When the
//! agent exits, the pipe closes, the helper exits, and the group (and its marks) goes.
//! Without a helper (tests of this crate), only the deadline protects.
//!
//! **No round trip for what is already judged.** Once an executable is judged allowed
//! (hashed and not on the list, or too large to hash), the guard puts an *ignore mark*
//! for `FAN_OPEN_EXEC_PERM` on its inode (`FAN_MARK_IGNORED_MASK`, deliberately without
//! `FAN_MARK_IGNORED_SURV_MODIFY`): the next exec of the same file raises no event and
//! never waits for the agent. Soundness:
//! * *The file changes*: the kernel drops the ignore mark on the first modification
//!   (write, truncate), so the next exec is judged again. (Writes through a shared
//!   writable mapping raise no modify event; whoever can do that can as well write a
//!   new file, which is judged, so nothing is gained over the digest check.)
//! * *The list changes* (a digest added by the block action, a new configuration):
//!   [`PermGuard::set_blocklist`] swaps the list and flushes every inode mark of the
//!   group under one lock, then puts back the directory marks (exec `watch` directories
//!   and journaled directories; between the two, for microseconds, those directories
//!   are unwatched). A verdict judged against the old list cannot put a stale ignore
//!   mark afterwards: it marks only if the list generation it read is still current,
//!   checked under the same lock.
//! * *Renames*: the path blocklist judges a path, and a file renamed onto a blocklisted
//!   path keeps its inode (and would keep its ignore mark). So while the path blocklist
//!   is non-empty, no ignore marks are put at all: every exec is judged.

use crate::config::{BlockConfig, Mode};
use crate::journal::{open_kind, writer_of, Journal, Noted, OpenKind};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::fanotify::{
    EventFFlags, Fanotify, FanotifyEvent, FanotifyResponse, InitFlags, MarkFlags, MaskFlags,
    Response,
};
use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a journal copy may hold the verdict thread before the helper takes over.
pub const COPY_LIMIT: Duration = Duration::from_secs(5);

/// Why the guard could not start or watch.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// fanotify could not be set up (not root, no fanotify in the kernel).
    #[error("fanotify: {what}: {source}")]
    Fanotify {
        /// What was being done.
        what: String,
        /// Why.
        source: nix::errno::Errno,
    },
    /// The helper process could not be started.
    #[error("cannot start the guard's helper {}: {source}", path.display())]
    Helper {
        /// The program.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What the guard saw worth a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardEvent {
    /// An exec of a blocklisted executable: refused (protect) or let run (detect).
    Exec {
        /// The process that called exec.
        pid: i32,
        /// The executable.
        path: PathBuf,
        /// Its SHA-256, when hashed.
        sha256: Option<String>,
        /// What matched: `sha256` or `path`.
        matched: &'static str,
        /// Whether it was refused.
        refused: bool,
    },
    /// A verdict past its deadline: the program ran unchecked.
    Deadline {
        /// The executable.
        path: PathBuf,
        /// How long the verdict took.
        elapsed: Duration,
    },
    /// A journaled file not copied, and why.
    JournalSkip {
        /// Why.
        why: String,
    },
}

/// Counters of the guard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardStats {
    /// Exec verdicts given.
    pub exec_verdicts: u64,
    /// Execs refused.
    pub refused: u64,
    /// Execs that would have been refused (detect mode).
    pub would_refuse: u64,
    /// Verdicts past their deadline (let run).
    pub past_deadline: u64,
    /// Digests computed (cache misses).
    pub hashed: u64,
    /// Open verdicts for the journal.
    pub open_verdicts: u64,
    /// Longest exec verdict, microseconds.
    pub exec_verdict_us_max: u64,
}

/// Verdict times, in a log-linear histogram (microseconds), for percentiles.
#[derive(Debug, Clone)]
pub struct Histogram {
    buckets: Vec<u64>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; 512],
        }
    }
}

impl Histogram {
    fn bucket(us: u64) -> usize {
        // 0..64 exact, then 8 buckets per power of two.
        if us < 64 {
            return us as usize;
        }
        let p = 63 - us.leading_zeros() as usize; // >= 6
        let frac = ((us >> (p - 3)) & 7) as usize;
        (64 + (p - 6) * 8 + frac).min(511)
    }

    fn lower(b: usize) -> u64 {
        if b < 64 {
            return b as u64;
        }
        let p = (b - 64) / 8 + 6;
        let frac = ((b - 64) % 8) as u64;
        (1u64 << p) + (frac << (p - 3))
    }

    /// Adds one time.
    pub fn add(&mut self, us: u64) {
        self.buckets[Self::bucket(us)] += 1;
    }

    /// Adds another histogram's times.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
    }

    /// Times recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The `p` quantile (0..=1), as its bucket's lower bound.
    pub fn quantile(&self, p: f64) -> u64 {
        let n = self.count();
        if n == 0 {
            return 0;
        }
        let want = ((n as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= want {
                return Self::lower(b);
            }
        }
        0
    }
}

/// The blocklist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blocklist {
    /// SHA-256 digests, lower-case hex.
    pub sha256: HashSet<String>,
    /// Executable paths.
    pub paths: HashSet<PathBuf>,
}

impl Blocklist {
    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.sha256.is_empty() && self.paths.is_empty()
    }
}

struct Shared {
    blocklist: Mutex<Arc<Blocklist>>,
    mode: Mutex<Mode>,
    stats: Mutex<GuardStats>,
    histogram: Mutex<Histogram>,
    stop: AtomicBool,
    /// When the verdict thread started its current verdict (ms since `epoch`), 0 idle.
    busy_since: AtomicU64,
    /// What it is doing: 0 an exec verdict, 1 a journal copy.
    busy_kind: AtomicU8,
    epoch: Instant,
    /// The list's generation, bumped (with the ignore marks flushed) at each change;
    /// held while an ignore mark is put.
    generation: Mutex<u64>,
    /// Ignore marks put (exec verdicts spared from then on).
    ignore_marks: AtomicU64,
}

/// The guard.
pub struct PermGuard {
    fan: Arc<Fanotify>,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    events: Receiver<GuardEvent>,
    helper: Option<Child>,
    exec_marked: bool,
    journal_dirs: HashSet<PathBuf>,
    config: BlockConfig,
}

/// Filesystems never watched for execs (no programs run from them, or marks fail).
const PSEUDO_FS: [&str; 20] = [
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "devpts",
    "mqueue",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "configfs",
    "fusectl",
    "hugetlbfs",
    "autofs",
    "binfmt_misc",
    "nsfs",
    "rpc_pipefs",
    "efivarfs",
    "selinuxfs",
];

/// Mount points of real filesystems, from /proc/self/mountinfo.
pub fn mount_points() -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    for l in text.lines() {
        let Some((pre, post)) = l.split_once(" - ") else {
            continue;
        };
        let Some(fs) = post.split_whitespace().next() else {
            continue;
        };
        if PSEUDO_FS.contains(&fs) {
            continue;
        }
        if let Some(mp) = pre.split_whitespace().nth(4) {
            // mountinfo escapes spaces and such as octal.
            let mp = mp
                .replace("\\040", " ")
                .replace("\\011", "\t")
                .replace("\\134", "\\");
            let p = PathBuf::from(mp);
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

fn is_mount_point(p: &Path) -> bool {
    mount_points().iter().any(|m| m == p)
}

impl PermGuard {
    /// Starts the guard (no marks yet). `helper`: the program to run as the watchdog
    /// helper (`vigil`, which runs it as `vigil perm-watchdog`), `None` for none.
    /// `journal`: the rollback journal, if journaled directories are to be watched.
    pub fn start(
        config: &BlockConfig,
        mode: Mode,
        blocklist: Blocklist,
        journal: Option<Journal>,
        helper: Option<&Path>,
        boot_id: String,
    ) -> Result<PermGuard, GuardError> {
        let fan = Fanotify::init(
            InitFlags::FAN_CLASS_CONTENT
                | InitFlags::FAN_CLOEXEC
                | InitFlags::FAN_NONBLOCK
                | InitFlags::FAN_UNLIMITED_QUEUE
                | InitFlags::FAN_REPORT_TID,
            EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE | EventFFlags::O_CLOEXEC,
        )
        .map_err(|source| GuardError::Fanotify {
            what: "cannot make a permission group".into(),
            source,
        })?;
        let fan = Arc::new(fan);
        let shared = Arc::new(Shared {
            blocklist: Mutex::new(Arc::new(blocklist)),
            mode: Mutex::new(mode),
            stats: Mutex::new(GuardStats::default()),
            histogram: Mutex::new(Histogram::default()),
            stop: AtomicBool::new(false),
            busy_since: AtomicU64::new(0),
            busy_kind: AtomicU8::new(0),
            epoch: Instant::now(),
            generation: Mutex::new(0),
            ignore_marks: AtomicU64::new(0),
        });
        let (tx, rx) = channel();
        let mut threads = Vec::new();
        let mut helper_child = None;
        if let Some(path) = helper {
            let (read, write) = std::io::pipe().map_err(|source| GuardError::Helper {
                path: path.to_path_buf(),
                source,
            })?;
            let group: OwnedFd =
                fan.as_fd()
                    .try_clone_to_owned()
                    .map_err(|source| GuardError::Helper {
                        path: path.to_path_buf(),
                        source,
                    })?;
            let child = Command::new(path)
                .args([
                    "perm-watchdog",
                    "--deadline-ms",
                    &config.deadline_ms.to_string(),
                ])
                .stdin(Stdio::from(group))
                .stdout(Stdio::from(OwnedFd::from(read)))
                // Its own process group: a stop sent to the agent's group spares it.
                .process_group(0)
                .spawn()
                .map_err(|source| GuardError::Helper {
                    path: path.to_path_buf(),
                    source,
                })?;
            helper_child = Some(child);
            let s = Arc::clone(&shared);
            let deadline = Duration::from_millis(config.deadline_ms);
            threads.push(std::thread::spawn(move || heartbeat(s, write, deadline)));
        }
        let s = Arc::clone(&shared);
        let f = Arc::clone(&fan);
        let cfg = config.clone();
        threads.push(std::thread::spawn(move || {
            verdicts(f, s, cfg, journal, tx, boot_id);
        }));
        Ok(PermGuard {
            fan,
            shared,
            threads,
            events: rx,
            helper: helper_child,
            exec_marked: false,
            journal_dirs: HashSet::new(),
            config: config.clone(),
        })
    }

    /// The helper's pid, if one runs (the agent's own: never acted on).
    pub fn helper_pid(&self) -> Option<u32> {
        self.helper.as_ref().map(Child::id)
    }

    /// Replaces the blocklist; the first non-empty list starts the exec watch.
    /// Every ignore mark (on files judged allowed) is dropped: each file is judged again
    /// against the new list at its next exec.
    pub fn set_blocklist(&mut self, list: Blocklist) -> Result<(), GuardError> {
        let empty = list.is_empty();
        {
            let shared = Arc::clone(&self.shared);
            let mut generation = shared.generation.lock().unwrap_or_else(|e| e.into_inner());
            if let Ok(mut b) = self.shared.blocklist.lock() {
                *b = Arc::new(list);
            }
            *generation += 1;
            self.flush_ignore_marks()?;
        }
        if !empty && !self.exec_marked {
            self.watch_exec()?;
        }
        Ok(())
    }

    /// Flushes the group's inode marks (the ignore marks among them) and puts back the
    /// directory marks.
    fn flush_ignore_marks(&mut self) -> Result<(), GuardError> {
        if self.shared.ignore_marks.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        self.fan
            .mark::<_, Path>(
                MarkFlags::FAN_MARK_FLUSH,
                MaskFlags::empty(),
                nix::fcntl::AT_FDCWD,
                None,
            )
            .map_err(|source| GuardError::Fanotify {
                what: "cannot flush the ignore marks".into(),
                source,
            })?;
        self.shared.ignore_marks.store(0, Ordering::Relaxed);
        if self.exec_marked {
            for w in self.config.watch.clone() {
                if !is_mount_point(&w) {
                    self.mark_exec_place(&w, false)?;
                }
            }
        }
        let dirs: Vec<PathBuf> = self.journal_dirs.drain().collect();
        self.watch_journal_dirs(&dirs)?;
        Ok(())
    }

    /// Ignore marks put since the last list change.
    pub fn ignore_marks(&self) -> u64 {
        self.shared.ignore_marks.load(Ordering::Relaxed)
    }

    /// Sets the block mode (detect: let run and report; protect: refuse).
    pub fn set_mode(&self, mode: Mode) {
        if let Ok(mut m) = self.shared.mode.lock() {
            *m = mode;
        }
    }

    /// Marks what the configuration says for exec checks: every real mount's
    /// filesystem when `all_mounts`, and each `watch` entry (a mount point: its whole
    /// filesystem; a directory: the files in it). Filesystem marks, not mount marks: a
    /// mark on a mount sees only the execs made through that very mount object, and
    /// the agent's mounts are copies when it runs in a mount namespace of its own (the
    /// packaged unit's ProtectSystem=) or the exec comes from another one (a container).
    pub fn watch_exec(&mut self) -> Result<(), GuardError> {
        let mut places: Vec<(PathBuf, bool)> = Vec::new();
        if self.config.all_mounts {
            places.extend(mount_points().into_iter().map(|m| (m, true)));
        }
        for w in &self.config.watch {
            places.push((w.clone(), is_mount_point(w)));
        }
        for (p, mount) in places {
            self.mark_exec_place(&p, mount)?;
        }
        self.exec_marked = true;
        Ok(())
    }

    fn mark_exec_place(&self, p: &Path, mount: bool) -> Result<(), GuardError> {
        {
            let (flags, mask) = if mount {
                (
                    MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_FILESYSTEM,
                    MaskFlags::FAN_OPEN_EXEC_PERM,
                )
            } else {
                (
                    MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_ONLYDIR,
                    MaskFlags::FAN_OPEN_EXEC_PERM | MaskFlags::FAN_EVENT_ON_CHILD,
                )
            };
            if let Err(e) = self.fan.mark(flags, mask, nix::fcntl::AT_FDCWD, Some(p)) {
                // A mount that vanished or refuses marks is skipped; the rest are watched.
                tracing::warn!("cannot watch {} for execs: {e}", p.display());
                if !self.config.all_mounts {
                    return Err(GuardError::Fanotify {
                        what: format!("cannot watch {}", p.display()),
                        source: e,
                    });
                }
            }
        }
        Ok(())
    }

    /// Watches these directories' files for opens for writing (the journal); returns
    /// how many were new.
    pub fn watch_journal_dirs(&mut self, dirs: &[PathBuf]) -> Result<usize, GuardError> {
        let mut added = 0;
        for d in dirs {
            if self.journal_dirs.contains(d) {
                continue;
            }
            match self.fan.mark(
                MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_ONLYDIR,
                MaskFlags::FAN_OPEN_PERM | MaskFlags::FAN_EVENT_ON_CHILD,
                nix::fcntl::AT_FDCWD,
                Some(d),
            ) {
                Ok(()) => {
                    self.journal_dirs.insert(d.clone());
                    added += 1;
                }
                Err(nix::errno::Errno::ENOENT) => {}
                Err(e) => {
                    return Err(GuardError::Fanotify {
                        what: format!("cannot watch {} for writes", d.display()),
                        source: e,
                    })
                }
            }
        }
        Ok(added)
    }

    /// What happened since the last call.
    pub fn drain(&self) -> Vec<GuardEvent> {
        self.events.try_iter().collect()
    }

    /// The counters.
    pub fn stats(&self) -> GuardStats {
        self.shared.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// The exec verdict times.
    pub fn histogram(&self) -> Histogram {
        self.shared
            .histogram
            .lock()
            .map(|h| h.clone())
            .unwrap_or_default()
    }
}

impl Drop for PermGuard {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // The heartbeat pipe is closed with its thread: the helper sees the end.
        if let Some(mut h) = self.helper.take() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = h.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = h.kill();
            let _ = h.wait();
        }
    }
}

fn now_ms_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis() as u64 + 1
}

/// Writes a heartbeat every quarter deadline while the verdict thread is healthy.
fn heartbeat(s: Arc<Shared>, mut pipe: std::io::PipeWriter, deadline: Duration) {
    use std::io::Write;
    let every = (deadline / 4).max(Duration::from_millis(1));
    while !s.stop.load(Ordering::Relaxed) {
        let since = s.busy_since.load(Ordering::Relaxed);
        let healthy = since == 0 || {
            let busy = Duration::from_millis(now_ms_since(s.epoch).saturating_sub(since));
            let limit = if s.busy_kind.load(Ordering::Relaxed) == 1 {
                COPY_LIMIT
            } else {
                deadline
            };
            busy < limit
        };
        if healthy && pipe.write_all(b".").is_err() {
            return;
        }
        std::thread::sleep(every);
    }
}

/// The digest cache: (device, inode, size, mtime, ctime) -> SHA-256.
type CacheKey = (u64, u64, i64, i64, i64, i64, i64);

fn cache_key(st: &nix::sys::stat::FileStat) -> CacheKey {
    (
        st.st_dev,
        st.st_ino,
        st.st_size,
        st.st_mtime,
        st.st_mtime_nsec,
        st.st_ctime,
        st.st_ctime_nsec,
    )
}

/// The path of an event's descriptor.
fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default()
}

/// SHA-256 of an open file, from offset 0, unless it takes past `until`.
fn hash_fd(fd: BorrowedFd<'_>, until: Instant) -> Option<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut off = 0i64;
    loop {
        let n = nix::sys::uio::pread(fd, &mut buf, off).ok()?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        off += n as i64;
        if Instant::now() > until {
            return None;
        }
    }
    Some(crate::vault::hex(&h.finalize()))
}

fn respond(fan: &Fanotify, ev: &FanotifyEvent, allow: bool) {
    if let Some(fd) = ev.fd() {
        let r = if allow {
            Response::FAN_ALLOW
        } else {
            Response::FAN_DENY
        };
        // ENOENT: the helper answered it already (the agent was late).
        let _ = fan.write_response(FanotifyResponse::new(fd, r));
    }
}

struct Verdicts {
    fan: Arc<Fanotify>,
    s: Arc<Shared>,
    cfg: BlockConfig,
    journal: Option<Journal>,
    tx: Sender<GuardEvent>,
    cache: HashMap<CacheKey, String>,
    /// Writers seen, by pid and start.
    writers: HashMap<(i32, u64), crate::journal::Writer>,
    boot_id: String,
    own_pid: i32,
}

/// The verdict thread: reads the group's events and answers each.
fn verdicts(
    fan: Arc<Fanotify>,
    s: Arc<Shared>,
    cfg: BlockConfig,
    journal: Option<Journal>,
    tx: Sender<GuardEvent>,
    boot_id: String,
) {
    let mut v = Verdicts {
        fan,
        s,
        cfg,
        journal,
        tx,
        cache: HashMap::new(),
        writers: HashMap::new(),
        boot_id,
        own_pid: std::process::id() as i32,
    };
    while !v.s.stop.load(Ordering::Relaxed) {
        let ready = {
            let mut fds = [PollFd::new(v.fan.as_fd(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::from(50u16)).unwrap_or(0)
        };
        if ready == 0 {
            continue;
        }
        let events = match v.fan.read_events() {
            Ok(e) => e,
            Err(nix::errno::Errno::EAGAIN) => continue,
            Err(e) => {
                tracing::warn!("the permission guard cannot read its events: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        for ev in events {
            v.one(&ev);
        }
    }
}

impl Verdicts {
    fn one(&mut self, ev: &FanotifyEvent) {
        let mask = ev.mask();
        let Some(fd) = ev.fd() else { return };
        // With FAN_REPORT_TID the event names the thread.
        let tid = ev.pid();
        if mask.contains(MaskFlags::FAN_OPEN_EXEC_PERM) {
            let start = Instant::now();
            self.s
                .busy_since
                .store(now_ms_since(self.s.epoch), Ordering::Relaxed);
            self.s.busy_kind.store(0, Ordering::Relaxed);
            let allow = self.exec(fd, tid, start);
            respond(&self.fan, ev, allow);
            self.s.busy_since.store(0, Ordering::Relaxed);
            let us = start.elapsed().as_micros() as u64;
            if let Ok(mut h) = self.s.histogram.lock() {
                h.add(us);
            }
            if let Ok(mut st) = self.s.stats.lock() {
                st.exec_verdicts += 1;
                st.exec_verdict_us_max = st.exec_verdict_us_max.max(us);
            }
        }
        if mask.contains(MaskFlags::FAN_OPEN_PERM) {
            if let Ok(mut st) = self.s.stats.lock() {
                st.open_verdicts += 1;
            }
            self.s
                .busy_since
                .store(now_ms_since(self.s.epoch), Ordering::Relaxed);
            self.s.busy_kind.store(1, Ordering::Relaxed);
            self.before_write(fd, tid);
            respond(&self.fan, ev, true);
            self.s.busy_since.store(0, Ordering::Relaxed);
        }
    }

    /// Whether the exec may go on.
    fn exec(&mut self, fd: BorrowedFd<'_>, tid: i32, start: Instant) -> bool {
        let generation = self.s.generation.lock().map(|g| *g).unwrap_or(u64::MAX);
        let list = self
            .s
            .blocklist
            .lock()
            .map(|b| Arc::clone(&b))
            .unwrap_or_default();
        if list.is_empty() {
            return true;
        }
        let mode = self.s.mode.lock().map(|m| *m).unwrap_or(Mode::Detect);
        let mut matched = None;
        let mut path = None;
        if !list.paths.is_empty() {
            let p = fd_path(fd);
            if list.paths.contains(&p) {
                matched = Some(("path", None));
            }
            path = Some(p);
        }
        if matched.is_none() && !list.sha256.is_empty() {
            let Ok(st) = nix::sys::stat::fstat(fd) else {
                return true;
            };
            if st.st_size.max(0) as u64 > self.cfg.max_hash_bytes {
                self.ignore(fd, &list, generation);
                return true;
            }
            let key = cache_key(&st);
            let sha = match self.cache.get(&key) {
                Some(s) => s.clone(),
                None => {
                    let until = start + Duration::from_millis(self.cfg.deadline_ms);
                    let Some(sha) = hash_fd(fd, until) else {
                        if let Ok(mut s) = self.s.stats.lock() {
                            s.past_deadline += 1;
                        }
                        let _ = self.tx.send(GuardEvent::Deadline {
                            path: path.unwrap_or_else(|| fd_path(fd)),
                            elapsed: start.elapsed(),
                        });
                        return true;
                    };
                    if let Ok(mut s) = self.s.stats.lock() {
                        s.hashed += 1;
                    }
                    if self.cache.len() >= self.cfg.hash_cache.max(1) {
                        self.cache.clear();
                    }
                    self.cache.insert(key, sha.clone());
                    sha
                }
            };
            if list.sha256.contains(&sha) {
                matched = Some(("sha256", Some(sha)));
            }
        }
        let Some((what, sha256)) = matched else {
            self.ignore(fd, &list, generation);
            return true;
        };
        let refused = mode == Mode::Protect;
        if let Ok(mut s) = self.s.stats.lock() {
            if refused {
                s.refused += 1;
            } else {
                s.would_refuse += 1;
            }
        }
        let pid = tgid_of(tid);
        let _ = self.tx.send(GuardEvent::Exec {
            pid,
            path: path.unwrap_or_else(|| fd_path(fd)),
            sha256,
            matched: what,
            refused,
        });
        !refused
    }

    /// Puts an ignore mark on a file judged allowed, unless the path blocklist is in use
    /// or the list changed since `generation` was read (see the module doc).
    fn ignore(&self, fd: BorrowedFd<'_>, list: &Blocklist, generation: u64) {
        if !list.paths.is_empty() {
            return;
        }
        let Ok(current) = self.s.generation.lock() else {
            return;
        };
        if *current != generation {
            return;
        }
        let put = self.fan.mark::<_, Path>(
            MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_IGNORED_MASK,
            MaskFlags::FAN_OPEN_EXEC_PERM,
            fd,
            None,
        );
        if put.is_ok() {
            self.s.ignore_marks.fetch_add(1, Ordering::Relaxed);
        }
        drop(current);
    }

    /// Journals the file before a write, when the open is one.
    fn before_write(&mut self, fd: BorrowedFd<'_>, tid: i32) {
        if self.journal.is_none() {
            return;
        }
        // The open's flags first: most opens read, and pass at once.
        let OpenKind::Write { creat } = open_kind(tid) else {
            return;
        };
        let Some(writer) = self.writer(tid) else {
            return;
        };
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        if let Some(exe) = &writer.exe {
            if journal_trusts(journal, exe) {
                return;
            }
        }
        let path = fd_path(fd);
        let noted = journal.snapshot(fd, &path, &writer, creat, vigil_event::time::now_ms());
        if let Noted::Skipped(why) = noted {
            let _ = self.tx.send(GuardEvent::JournalSkip { why });
        }
    }

    /// The writing process (with its ancestors), remembered per process; `None` for
    /// the agent itself.
    fn writer(&mut self, tid: i32) -> Option<crate::journal::Writer> {
        let tgid = tgid_of(tid);
        if tgid == self.own_pid {
            return None;
        }
        let start = crate::procs::ProcInfo::read(tgid).map_or(0, |p| p.start_ticks);
        if let Some(w) = self.writers.get(&(tgid, start)) {
            return Some(w.clone());
        }
        let w = writer_of(tgid, &self.boot_id);
        if self.writers.len() >= 4096 {
            self.writers.clear();
        }
        self.writers.insert((tgid, start), w.clone());
        Some(w)
    }
}

fn journal_trusts(j: &Journal, exe: &Path) -> bool {
    j.trusted().iter().any(|t| exe.starts_with(t))
}

/// The process (thread group) of a thread.
pub fn tgid_of(tid: i32) -> i32 {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(tid)
}

/// The helper's loop (`vigil perm-watchdog`): the group on standard input, the
/// agent's heartbeat on standard output (a pipe's read end). While heartbeats come
/// within `deadline`, it does nothing; when they stop, it answers "allow" for every
/// event the agent holds and every new one, until they come back. It ends when the pipe
/// closes (the agent exited).
pub fn watchdog(deadline: Duration) -> std::io::Result<()> {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let group = stdin.as_fd();
    let beat = stdout.as_fd();
    let agent = nix::unistd::getppid().as_raw();
    let mut buf = [0u8; 4096];
    let timeout =
        PollTimeout::try_from(deadline.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::NONE);
    loop {
        let mut fds = [PollFd::new(beat, PollFlags::POLLIN)];
        let n = poll(&mut fds, timeout).map_err(std::io::Error::from)?;
        if n > 0 {
            match nix::unistd::read(beat, &mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        // No heartbeat for `deadline`: take over until one comes.
        eprintln!(
            "vigil perm-watchdog: no heartbeat from the agent (pid {agent}) for {} ms: allowing what it holds",
            deadline.as_millis()
        );
        let mut allowed = 0u64;
        loop {
            allowed += allow_held(group, agent);
            allowed += allow_queued(group, &mut buf);
            let mut fds = [
                PollFd::new(beat, PollFlags::POLLIN),
                PollFd::new(group, PollFlags::POLLIN),
            ];
            let _ = poll(&mut fds, PollTimeout::from(10u16));
            let beat_ready = fds[0]
                .revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP));
            if beat_ready {
                match nix::unistd::read(beat, &mut buf) {
                    Ok(0) => {
                        allow_queued(group, &mut buf);
                        return Ok(());
                    }
                    Ok(_) => {
                        eprintln!("vigil perm-watchdog: the agent answers again ({allowed} allowed meanwhile)");
                        break;
                    }
                    Err(_) => {}
                }
            }
        }
    }
}

/// Answers "allow" for every descriptor number the agent has open: those that are
/// events it holds are let go, the others are refused by the kernel (ENOENT).
fn allow_held(group: BorrowedFd<'_>, agent: i32) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(format!("/proc/{agent}/fd"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Some(fd) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
            if write_allow(group, fd) {
                n += 1;
            }
        }
    }
    n
}

/// Reads the events waiting in the group and allows each.
fn allow_queued(group: BorrowedFd<'_>, buf: &mut [u8]) -> u64 {
    let mut n = 0;
    loop {
        let len = match nix::unistd::read(group, buf) {
            Ok(len) if len > 0 => len,
            _ => return n,
        };
        let mut off = 0;
        // struct fanotify_event_metadata: event_len u32, vers u8, reserved u8,
        // metadata_len u16, mask u64, fd i32, pid i32.
        while off + 24 <= len {
            let event_len =
                u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
            let fd =
                i32::from_ne_bytes([buf[off + 16], buf[off + 17], buf[off + 18], buf[off + 19]]);
            if fd >= 0 {
                if write_allow(group, fd) {
                    n += 1;
                }
                let _ = nix::unistd::close(fd);
            }
            if event_len < 24 {
                break;
            }
            off += event_len;
        }
    }
}

/// Writes a `struct fanotify_response { fd, FAN_ALLOW }`; whether the kernel took it.
fn write_allow(group: BorrowedFd<'_>, fd: i32) -> bool {
    let mut r = [0u8; 8];
    r[..4].copy_from_slice(&fd.to_ne_bytes());
    r[4..].copy_from_slice(&Response::FAN_ALLOW.bits().to_ne_bytes());
    nix::unistd::write(group, &r).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_gives_quantiles_within_an_eighth() {
        let mut h = Histogram::default();
        for us in 1..=1000u64 {
            h.add(us);
        }
        assert_eq!(h.count(), 1000);
        let p50 = h.quantile(0.5);
        assert!((448..=500).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99);
        assert!((896..=990).contains(&p99), "{p99}");
        assert_eq!(Histogram::default().quantile(0.99), 0);
        for us in [0, 63, 64, 65, 1 << 20, u64::MAX] {
            let b = Histogram::bucket(us);
            assert!(Histogram::lower(b) <= us, "{us}");
        }
    }

    #[test]
    fn real_mounts_are_listed_and_pseudo_filesystems_left_out() {
        let m = mount_points();
        assert!(m.contains(&PathBuf::from("/")), "{m:?}");
        assert!(!m.contains(&PathBuf::from("/proc")), "{m:?}");
    }
}
