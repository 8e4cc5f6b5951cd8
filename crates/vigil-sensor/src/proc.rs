//! The process table: every live process (and recently exited ones), seeded from /proc
//! at start and kept current from exec, fork and exit records, so each event can carry
//! its process's lineage even when the process is already gone.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use vigil_event::model::{Process, ProcessEntity, Shared};

/// What the table keeps per process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Start time in clock ticks since boot.
    pub start_ticks: u64,
    /// Executable path.
    pub exe: String,
    /// Command line, arguments joined by spaces.
    pub cmdline: String,
    /// Real uid.
    pub uid: u32,
    /// When the process exited, if it has.
    pub exited: Option<Instant>,
    /// Its children still running: an exited process stays in the table while it has
    /// any, for their lineage.
    pub live_children: u32,
    /// This process as events show it, built once per process image.
    pub views: Views,
}

/// The forms in which events show a process of the table (as a parent, an ancestor),
/// built on first use and shared by every later event: an exec or fork replaces the
/// table entry, and with it these.
#[derive(Default, Clone)]
pub struct Views {
    /// Without lineage: `parent_process`, an actor.
    pub brief: OnceCell<Shared<Process>>,
    /// An `ancestry` element.
    pub entity: OnceCell<Shared<ProcessEntity>>,
}

impl PartialEq for Views {
    /// Views are caches derived from the entry: they never make two entries differ.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Views {}

impl std::fmt::Debug for Views {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Views")
            .field("brief", &self.brief.get().is_some())
            .field("entity", &self.entity.get().is_some())
            .finish()
    }
}

/// Bounds of the table.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Processes kept at most; past this the oldest exited ones go first.
    pub max_entries: usize,
    /// How long an exited process stays for late events (longer while it has children
    /// running, for their lineage).
    pub linger: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 65_536,
            linger: Duration::from_secs(10),
        }
    }
}

/// The table.
#[derive(Debug, Default)]
pub struct ProcTable {
    procs: HashMap<u32, ProcInfo>,
    limits: Limits,
}

/// Joins argv the way a shell would show it.
pub fn join_argv(argv: &[String]) -> String {
    argv.join(" ")
}

/// A /proc file that does not read as the kernel writes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {what}")]
pub struct ProcError {
    /// The file.
    pub path: String,
    /// What is wrong, and where in the file.
    pub what: String,
}

/// What Vigil reads from `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Field 4: the parent's pid.
    pub ppid: u32,
    /// Field 22: the start time in clock ticks since boot.
    pub start_ticks: u64,
}

/// Parses `/proc/PID/stat`. The command name (field 2) may hold spaces and parentheses:
/// the fields after it start after the last `)`.
pub fn parse_stat(text: &str) -> Result<Stat, String> {
    let close = text
        .rfind(')')
        .ok_or("no `)` closing the command name (field 2)")?;
    // Fields 3 (state) and on; get(): a `)` may be the last byte.
    let rest = text.get(close + 1..).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize, name: &str| -> Result<&str, String> {
        fields.get(n - 3).copied().ok_or_else(|| {
            format!(
                "field {n} ({name}) missing: {} fields after the command name",
                fields.len()
            )
        })
    };
    let number = |n: usize, name: &str| -> Result<u64, String> {
        let v = field(n, name)?;
        v.parse()
            .map_err(|_| format!("field {n} ({name}) `{v}` is not a number"))
    };
    let ppid = number(4, "ppid")?;
    Ok(Stat {
        ppid: u32::try_from(ppid).map_err(|_| format!("field 4 (ppid) {ppid} is not a pid"))?,
        start_ticks: number(22, "starttime")?,
    })
}

/// What Vigil reads from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Real, effective, saved and filesystem uid.
    pub uid: [u32; 4],
    /// Real, effective, saved and filesystem gid.
    pub gid: [u32; 4],
    /// Effective, permitted and inheritable capabilities.
    pub caps: [u64; 3],
}

/// Parses `/proc/PID/status`: the `Uid:`, `Gid:`, `CapEff:`, `CapPrm:` and `CapInh:`
/// lines, each of which must be there. One pass, which stops once it has them all.
pub fn parse_status(text: &str) -> Result<Status, String> {
    const KEYS: [&str; 5] = ["Uid:", "Gid:", "CapEff:", "CapPrm:", "CapInh:"];
    let mut found: [Option<(usize, &str)>; 5] = [None; 5];
    let mut missing = KEYS.len();
    for (i, line) in text.lines().enumerate() {
        for (k, key) in KEYS.iter().enumerate() {
            if let (None, Some(v)) = (found[k], line.strip_prefix(key)) {
                found[k] = Some((i + 1, v));
                missing -= 1;
            }
        }
        if missing == 0 {
            break;
        }
    }
    let line = |k: usize| found[k].ok_or_else(|| format!("no `{}` line", KEYS[k]));
    let ids = |k: usize| -> Result<[u32; 4], String> {
        let ((n, v), key) = (line(k)?, KEYS[k]);
        let mut out = [0u32; 4];
        let mut words = v.split_whitespace();
        for slot in &mut out {
            let w = words
                .next()
                .ok_or_else(|| format!("line {n}: `{key}` has fewer than 4 ids"))?;
            *slot = w
                .parse()
                .map_err(|_| format!("line {n}: `{key}` id `{w}` is not a number"))?;
        }
        Ok(out)
    };
    let cap = |k: usize| -> Result<u64, String> {
        let ((n, v), key) = (line(k)?, KEYS[k]);
        let v = v.trim();
        u64::from_str_radix(v, 16)
            .map_err(|_| format!("line {n}: `{key}` `{v}` is not a hex capability set"))
    };
    Ok(Status {
        uid: ids(0)?,
        gid: ids(1)?,
        caps: [cap(2)?, cap(3)?, cap(4)?],
    })
}

/// Reads and parses `/proc/PID/status`: `None` when it cannot be read (the process is
/// gone); a file that does not parse is handed to `malformed`.
pub fn read_status(pid: u32, malformed: &mut dyn FnMut(ProcError)) -> Option<Status> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).ok()?;
    parse_status(&text)
        .map_err(|what| malformed(ProcError { path, what }))
        .ok()
}

/// The effective uid of this process (`u32::MAX` when /proc does not say).
pub fn euid() -> u32 {
    read_status(std::process::id(), &mut |e| {
        tracing::warn!("malformed /proc file: {e}");
    })
    .map_or(u32::MAX, |s| s.uid[1])
}

/// Reads one process from /proc: `None` once it is gone, or when its `stat` does not
/// parse; a file that does not parse is handed to `malformed` (a `status` that does not
/// leaves the uid unknown, `u32::MAX`).
pub fn read_proc(pid: u32, malformed: &mut dyn FnMut(ProcError)) -> Option<ProcInfo> {
    let base = format!("/proc/{pid}");
    let stat_path = format!("{base}/stat");
    let stat = std::fs::read_to_string(&stat_path).ok()?;
    let stat = match parse_stat(&stat) {
        Ok(s) => s,
        Err(what) => {
            malformed(ProcError {
                path: stat_path,
                what,
            });
            return None;
        }
    };
    let cmdline = std::fs::read(format!("{base}/cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    let exe = std::fs::read_link(format!("{base}/exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let uid = read_status(pid, malformed).map_or(u32::MAX, |s| s.uid[0]);
    Some(ProcInfo {
        pid,
        ppid: stat.ppid,
        start_ticks: stat.start_ticks,
        exe,
        cmdline: join_argv(&args),
        uid,
        exited: None,
        live_children: 0,
        views: Views::default(),
    })
}

impl ProcTable {
    /// An empty table with these bounds.
    pub fn new(limits: Limits) -> Self {
        ProcTable {
            procs: HashMap::new(),
            limits,
        }
    }

    /// Fills the table from /proc; a /proc file that does not parse is handed to
    /// `malformed`. Returns how many processes it holds.
    pub fn seed(&mut self, malformed: &mut dyn FnMut(ProcError)) -> usize {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return 0;
        };
        for entry in dir.flatten() {
            if let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            {
                if let Some(info) = read_proc(pid, malformed) {
                    self.procs.insert(pid, info);
                }
            }
        }
        let parents: Vec<u32> = self.procs.values().map(|p| p.ppid).collect();
        for ppid in parents {
            if let Some(parent) = self.procs.get_mut(&ppid) {
                parent.live_children += 1;
            }
        }
        self.procs.len()
    }

    /// The process with this pid, if known.
    pub fn get(&self, pid: u32) -> Option<&ProcInfo> {
        self.procs.get(&pid)
    }

    /// Records a process's new image (an exec) or a process read from /proc; replaces an
    /// older process of the same pid. An exec keeps the count of live children.
    pub fn upsert(&mut self, mut info: ProcInfo) {
        if let Some(old) = self.procs.get(&info.pid) {
            if old.start_ticks == info.start_ticks {
                info.live_children = old.live_children;
            }
        }
        self.procs.insert(info.pid, info);
        self.evict();
    }

    /// Records a new process (a fork): its parent has one more live child.
    pub fn forked(&mut self, info: ProcInfo) {
        if let Some(parent) = self.procs.get_mut(&info.ppid) {
            parent.live_children += 1;
        }
        self.upsert(info);
    }

    /// Marks a process exited (it stays for [`Limits::linger`], for late events and its
    /// children's lineage) and drops its views: most exited processes are never named
    /// again, and at thousands of exits a second their views would be most of the
    /// table's memory. A child's event builds them again if it needs them.
    pub fn exited(&mut self, pid: u32, start_ticks: u64) {
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        if p.start_ticks != start_ticks || p.exited.is_some() {
            return;
        }
        p.exited = Some(Instant::now());
        p.views = Views::default();
        let ppid = p.ppid;
        if let Some(parent) = self.procs.get_mut(&ppid) {
            parent.live_children = parent.live_children.saturating_sub(1);
        }
    }

    /// Whether an entry stays: a running process, a recently exited one, or one whose
    /// children still run.
    fn keep(p: &ProcInfo, linger: Duration) -> bool {
        p.exited
            .is_none_or(|t| p.live_children > 0 || t.elapsed() < linger)
    }

    /// The ancestors of `pid`, nearest first, at most `depth` of them.
    pub fn ancestors(&self, pid: u32, depth: usize) -> Vec<&ProcInfo> {
        let mut out = Vec::with_capacity(depth.min(16));
        let mut cur = self.procs.get(&pid).map(|p| p.ppid);
        while let Some(ppid) = cur {
            if out.len() >= depth || ppid == 0 {
                break;
            }
            let Some(p) = self.procs.get(&ppid) else {
                break;
            };
            if out.iter().any(|q: &&ProcInfo| q.pid == p.pid) {
                break; // a cycle through pid reuse: stop
            }
            out.push(p);
            cur = Some(p.ppid);
        }
        out
    }

    /// Number of processes in the table.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    fn evict(&mut self) {
        let linger = self.limits.linger;
        if self.procs.len() > self.limits.max_entries {
            self.procs.retain(|_, p| Self::keep(p, linger));
        }
        if self.procs.len() > self.limits.max_entries {
            // Still over: drop exited processes first (childless ones first), then the
            // oldest.
            let mut by_age: Vec<(bool, bool, u64, u32)> = self
                .procs
                .values()
                .map(|p| {
                    (
                        p.exited.is_none(),
                        p.live_children > 0,
                        p.start_ticks,
                        p.pid,
                    )
                })
                .collect();
            by_age.sort_unstable();
            let excess = self.procs.len() - self.limits.max_entries;
            for (_, _, _, pid) in by_age.into_iter().take(excess) {
                self.procs.remove(&pid);
            }
        }
    }

    /// Drops exited processes older than the linger time that have no children running.
    pub fn sweep(&mut self) {
        let linger = self.limits.linger;
        self.procs.retain(|_, p| Self::keep(p, linger));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_hostile_comm() {
        let stat = "42 (a) b (c) S 7 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 12345 0 0";
        assert_eq!(
            parse_stat(stat),
            Ok(Stat {
                ppid: 7,
                start_ticks: 12345
            })
        );
        assert!(parse_stat("garbage").is_err());
    }

    /// Regression: the fields were sliced from two bytes past the last `)`, which panicked
    /// when the `)` was the file's last byte.
    #[test]
    fn proc_stat_ending_in_the_command_name_is_an_error() {
        for stat in ["42 (sh)", "42 (sh) ", ")", "42 (sh) S"] {
            let err = parse_stat(stat).expect_err(stat);
            assert!(err.contains("field 4 (ppid) missing"), "{stat}: {err}");
        }
        assert_eq!(
            parse_stat("1 (x) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 abc"),
            Err("field 22 (starttime) `abc` is not a number".into())
        );
        assert_eq!(
            parse_stat("1 (x) S 99999999999 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5"),
            Err("field 4 (ppid) 99999999999 is not a pid".into())
        );
    }

    #[test]
    fn status_of_this_process_and_broken_ones() {
        let text = std::fs::read_to_string("/proc/self/status").expect("status");
        let s = parse_status(&text).expect("the kernel's own status parses");
        assert_eq!(s.uid[1], euid());
        let without = |key: &str| {
            text.lines()
                .filter(|l| !l.starts_with(key))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(parse_status(&without("Gid:")), Err("no `Gid:` line".into()));
        let short_uid = text.replace(
            text.lines().find(|l| l.starts_with("Uid:")).expect("Uid"),
            "Uid:\t0\t0",
        );
        let err = parse_status(&short_uid).expect_err("3 ids missing");
        assert!(err.ends_with("`Uid:` has fewer than 4 ids"), "{err}");
        let bad_cap = text.replace(
            text.lines()
                .find(|l| l.starts_with("CapEff:"))
                .expect("CapEff"),
            "CapEff:\tzz",
        );
        let err = parse_status(&bad_cap).expect_err("not hex");
        assert!(err.contains("`CapEff:` `zz` is not a hex"), "{err}");
    }

    /// Stat lines as the kernel writes them, with hostile command names, give back their
    /// ppid and start time; mutated stat and status files parse or fail, never panic.
    #[test]
    fn random_stat_and_status_files() {
        let mut rng = crate::fuzz::Rng::for_test(3);
        let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        assert!(parse_stat(&stat).is_ok() && parse_status(&status).is_ok());
        for i in 0..crate::fuzz::iterations() {
            let comm: String = (0..rng.below(16))
                .map(|_| rng.pick(&['a', ')', '(', ' ', '\n', 'S', '1', '\u{e9}']))
                .collect();
            let ppid = rng.next() as u32;
            let start = rng.next();
            let line = format!(
                "{} ({comm}) S {ppid} 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0",
                rng.next() as u32
            );
            assert_eq!(
                parse_stat(&line),
                Ok(Stat {
                    ppid,
                    start_ticks: start
                }),
                "iteration {i}: {line}"
            );
            // Cut anywhere (a read that raced the process's exit).
            let cut =
                String::from_utf8_lossy(&line.as_bytes()[..rng.below(line.len() + 1)]).into_owned();
            let _ = crate::fuzz::no_panic("parse_stat", i, cut.as_bytes(), || parse_stat(&cut));
            let bad = rng.mutate_text(&stat);
            let _ = crate::fuzz::no_panic("parse_stat", i, bad.as_bytes(), || parse_stat(&bad));
            let bad = rng.mutate_text(&status);
            let _ = crate::fuzz::no_panic("parse_status", i, bad.as_bytes(), || parse_status(&bad));
        }
    }

    #[test]
    fn seeds_from_proc_and_walks_lineage() {
        let mut t = ProcTable::new(Limits::default());
        let mut malformed = Vec::new();
        assert!(t.seed(&mut |e| malformed.push(e)) > 1);
        assert!(malformed.is_empty(), "{malformed:?}");
        let me = std::process::id();
        let info = t.get(me).expect("this test process");
        assert!(info.exe.contains("vigil_sensor"), "{}", info.exe);
        let chain = t.ancestors(me, 64);
        assert!(!chain.is_empty());
        assert_eq!(chain[0].pid, info.ppid);
    }

    fn proc_info(pid: u32, ppid: u32, exe: &str) -> ProcInfo {
        ProcInfo {
            pid,
            ppid,
            start_ticks: u64::from(pid),
            exe: exe.into(),
            cmdline: String::new(),
            uid: 0,
            exited: None,
            live_children: 0,
            views: Views::default(),
        }
    }

    #[test]
    fn an_exited_parent_stays_while_its_children_run() {
        let mut t = ProcTable::new(Limits {
            max_entries: 100,
            linger: Duration::ZERO,
        });
        t.upsert(proc_info(10, 1, "/bin/sh"));
        t.forked(proc_info(11, 10, "/bin/sh"));
        // The child execs: still the same process, still a live child.
        t.upsert(proc_info(11, 10, "/usr/sbin/daemon"));
        t.exited(10, 10);
        t.sweep();
        assert!(t.get(10).is_some(), "kept for its child's lineage");
        assert_eq!(t.ancestors(11, 8)[0].exe, "/bin/sh");
        t.exited(11, 11);
        // Exiting twice (a late duplicate) does not count twice.
        t.exited(11, 11);
        t.sweep();
        assert!(t.get(10).is_none() && t.get(11).is_none(), "both gone");
    }

    #[test]
    fn bounded_and_exited_go_first() {
        let mut t = ProcTable::new(Limits {
            max_entries: 3,
            linger: Duration::from_secs(3600),
        });
        for pid in 1..=3 {
            t.upsert(proc_info(pid, pid - 1, ""));
        }
        t.exited(3, 3);
        t.upsert(proc_info(4, 1, ""));
        assert_eq!(t.len(), 3);
        assert!(t.get(3).is_none(), "the exited process went first");
        assert!(t.get(1).is_some() && t.get(4).is_some());
    }
}
