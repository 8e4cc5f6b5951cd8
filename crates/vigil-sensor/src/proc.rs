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

fn parse_stat(stat: &str) -> Option<(u32, u64)> {
    // The comm field may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): ppid is field 4, starttime field 22.
    Some((fields.get(1)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

/// Reads one process from /proc, if it still exists.
pub fn read_proc(pid: u32) -> Option<ProcInfo> {
    let base = format!("/proc/{pid}");
    let (ppid, start_ticks) = parse_stat(&std::fs::read_to_string(format!("{base}/stat")).ok()?)?;
    let cmdline = std::fs::read(format!("{base}/cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    let exe = std::fs::read_link(format!("{base}/exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let uid = std::fs::read_to_string(format!("{base}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().and_then(|u| u.parse().ok()))
        })
        .unwrap_or(u32::MAX);
    Some(ProcInfo {
        pid,
        ppid,
        start_ticks,
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

    /// Fills the table from /proc.
    pub fn seed(&mut self) -> usize {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return 0;
        };
        for entry in dir.flatten() {
            if let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            {
                if let Some(info) = read_proc(pid) {
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
        assert_eq!(parse_stat(stat), Some((7, 12345)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn seeds_from_proc_and_walks_lineage() {
        let mut t = ProcTable::new(Limits::default());
        assert!(t.seed() > 1);
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
