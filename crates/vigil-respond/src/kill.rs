//! Killing a process branch: the process and every descendant, frozen first so none can
//! fork away, then killed at once.
//!
//! With SIGSTOP (the default) each process is stopped as it is found and its children
//! are read; when a pass finds no new child, the stops are awaited (a stop lands when
//! its process next runs) and every child is read again: a child found then means
//! another pass. Then SIGKILL to each. With a cgroup v2 the branch is moved into a
//! cgroup of its own that is frozen from the start, the same passes run, and
//! `cgroup.kill` ends them all (race-free against fork); what cannot be moved (another
//! cgroup namespace, a threaded cgroup) is stopped with SIGSTOP. Processes the guard
//! spares are left running, and so is what they started. A process re-parented away
//! before the freeze is not in the tree: the agent adds those it knows from events.

use crate::config::FreezeMethod;
use crate::procs::{children_of, Guard, ProcInfo, Spared, Target};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A process of the branch, as it was when it was frozen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frozen {
    /// Its identity.
    pub target: Target,
    /// Its parent's pid.
    pub ppid: i32,
    /// Its `comm`.
    pub comm: String,
    /// How it was frozen: `cgroup` or `sigstop`.
    pub how: &'static str,
}

/// How a branch kill went.
#[derive(Debug, Clone, Default)]
pub struct KillReport {
    /// The processes frozen and killed, the flagged one first.
    pub killed: Vec<Frozen>,
    /// Processes of the branch left alone, and why.
    pub spared: Vec<(ProcInfo, Spared)>,
    /// The flagged process did not exist (any more) when the kill began (its
    /// descendants known from events may still have been killed).
    pub gone: bool,
    /// Processes still alive when `settle` ran out.
    pub survivors: Vec<Target>,
    /// What failed on the way (a cgroup that could not be made or removed, a signal
    /// refused), each a sentence.
    pub errors: Vec<String>,
    /// Passes over the branch until no new child appeared.
    pub passes: u32,
    /// From the start to the whole branch frozen.
    pub frozen_after: Duration,
    /// From the start to every process killed (signalled).
    pub killed_after: Duration,
    /// From the start to every process gone.
    pub gone_after: Option<Duration>,
}

impl KillReport {
    /// Whether every process of the branch is gone and none was spared.
    pub fn complete(&self) -> bool {
        self.survivors.is_empty() && self.spared.is_empty() && self.errors.is_empty()
    }
}

/// Passes over a branch at most (a fork storm outrunning the freeze is reported).
const MAX_PASSES: u32 = 256;

/// What became of one process asked to freeze.
#[derive(Debug, PartialEq, Eq)]
enum Freeze {
    /// Moved into the frozen cgroup.
    Cgroup,
    /// Sent SIGSTOP.
    Sigstop,
    /// It no longer exists (it ended after it was found): not an error.
    Gone,
    /// Refused, as a sentence.
    Failed(String),
}

/// Freezes `pid`: into the cgroup if there is one and the move works, else with SIGSTOP.
fn freeze_one(cg: Option<&FreezeGroup>, pid: i32) -> Freeze {
    if let Some(g) = cg {
        match g.add(pid) {
            Ok(()) => return Freeze::Cgroup,
            Err(e) if e.raw_os_error() == Some(nix::libc::ESRCH) => return Freeze::Gone,
            Err(e) => tracing::debug!(pid, "cannot move into the freeze cgroup: {e}"),
        }
    }
    match kill(Pid::from_raw(pid), Signal::SIGSTOP) {
        Ok(()) => Freeze::Sigstop,
        Err(nix::errno::Errno::ESRCH) => Freeze::Gone,
        Err(e) => Freeze::Failed(format!("SIGSTOP to {pid}: {e}")),
    }
}

/// The cgroup v2 mount point, if there is one.
pub fn cgroup2_root() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        if post.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        pre.split_whitespace().nth(4).map(PathBuf::from)
    })
}

/// Kills the branch of `root` (and of `more`: processes known from events to descend
/// from it, which may have been re-parented away from it).
pub fn kill_branch(
    root: Target,
    more: &[Target],
    guard: &Guard,
    method: FreezeMethod,
    settle: Duration,
) -> KillReport {
    let start = Instant::now();
    let mut report = KillReport::default();
    match root.live() {
        // Gone already: its descendants known from events may still run.
        None if more.is_empty() => {
            report.gone = true;
            return report;
        }
        None => report.gone = true,
        Some(info) => {
            if let Some(why) = guard.spare(&info) {
                report.spared.push((info, why));
                return report;
            }
        }
    }
    let mut cg = match method {
        FreezeMethod::Cgroup => match FreezeGroup::create() {
            Ok(g) => Some(g),
            Err(e) => {
                report.errors.push(e);
                None
            }
        },
        FreezeMethod::Sigstop => None,
    };
    let mut seen: HashSet<i32> = HashSet::new();
    // Each process with what was read of it when it was found (children are read with
    // their /proc/PID/stat, which need not be read again when their turn comes).
    let mut frontier: Vec<(Target, Option<ProcInfo>)> = std::iter::once(root)
        .chain(more.iter().copied())
        .map(|t| (t, None))
        .collect();
    let mut stopped: Vec<Target> = Vec::new();
    let mut group_members: Vec<Target> = Vec::new();
    // Threads of each process frozen, as last read (the children files to read).
    let mut threads: HashMap<i32, u32> = HashMap::new();
    let mut confirmed: HashSet<i32> = HashSet::new();
    while !frontier.is_empty() && report.passes < MAX_PASSES {
        report.passes += 1;
        let mut next = Vec::new();
        for (t, info) in frontier.drain(..) {
            if !seen.insert(t.pid) {
                continue;
            }
            let p = match info {
                Some(i) if i.start_ticks == t.start_ticks && !i.ended() => i,
                Some(_) => continue,
                None => match t.live() {
                    Some(i) => i,
                    None => continue,
                },
            };
            if let Some(why) = guard.spare(&p) {
                report.spared.push((p, why));
                continue;
            }
            let how = match freeze_one(cg.as_ref(), t.pid) {
                Freeze::Cgroup => {
                    group_members.push(t);
                    "cgroup"
                }
                Freeze::Sigstop => {
                    stopped.push(t);
                    "sigstop"
                }
                // Ended between its read and its freeze: nothing left to kill.
                Freeze::Gone => continue,
                Freeze::Failed(e) => {
                    report.errors.push(e);
                    continue;
                }
            };
            threads.insert(t.pid, p.threads);
            report.killed.push(Frozen {
                target: t,
                ppid: p.ppid,
                comm: p.comm.clone(),
                how,
            });
            next.push(t.pid);
        }
        for pid in next {
            push_children(
                pid,
                threads.get(&pid).copied().unwrap_or(0),
                &seen,
                &mut frontier,
            );
        }
        if frontier.is_empty() {
            // No new child this pass. A freeze takes effect when its process next runs
            // (on a busy host, milliseconds later), and a fork it was making may still
            // complete: once everything is frozen, every child is read again; a child
            // found then means another pass.
            let fresh = wait_frozen(cg.as_ref(), &stopped, &mut confirmed, &mut threads);
            // What was read when a process was found may predate its exec: the read
            // that saw it stopped names it as it is.
            for k in &mut report.killed {
                if let Some(i) = fresh.get(&k.target.pid) {
                    k.comm.clone_from(&i.comm);
                    k.ppid = i.ppid;
                }
            }
            for k in &report.killed {
                let pid = k.target.pid;
                // A process whose stop was seen has the threads read then; others (in
                // the frozen cgroup) may have made threads since: all are listed.
                let n = if confirmed.contains(&pid) {
                    threads.get(&pid).copied().unwrap_or(0)
                } else {
                    0
                };
                push_children(pid, n, &seen, &mut frontier);
            }
        }
    }
    if !frontier.is_empty() {
        report.errors.push(format!(
            "the branch kept forking through {MAX_PASSES} passes; what was frozen is killed"
        ));
    }
    report.frozen_after = start.elapsed();
    if let Some(g) = &cg {
        if let Err(e) = g.kill() {
            report.errors.push(e.clone());
            // The group could not kill: signal its members one by one.
            for t in &group_members {
                if t.live().is_some() {
                    let _ = kill(Pid::from_raw(t.pid), Signal::SIGKILL);
                }
            }
        }
    }
    for t in &stopped {
        // A process seen stopped cannot have ended by itself since, nor its pid gone to
        // another: it is killed without reading it again. Others are checked first.
        if confirmed.contains(&t.pid) || t.live().is_some() {
            if let Err(e) = kill(Pid::from_raw(t.pid), Signal::SIGKILL) {
                if e != nix::errno::Errno::ESRCH {
                    report.errors.push(format!("SIGKILL to {}: {e}", t.pid));
                }
            }
        }
    }
    report.killed_after = start.elapsed();
    // Settle: every killed process gone (a zombie waiting for its parent is gone); each
    // round reads only those not seen gone yet.
    let deadline = start + report.killed_after + settle;
    let mut alive: Vec<Target> = report.killed.iter().map(|f| f.target).collect();
    loop {
        alive.retain(|t| t.live().is_some());
        if alive.is_empty() {
            report.gone_after = Some(start.elapsed());
            break;
        }
        if Instant::now() >= deadline {
            report.survivors = alive;
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    if let Some(g) = cg.take() {
        if let Err(e) = g.remove(settle) {
            report.errors.push(e);
        }
    }
    report
}

/// Adds the children of `pid` (a process of `threads` threads, 0 if unknown) not seen
/// yet to `frontier`, each with what was read of it.
fn push_children(
    pid: i32,
    threads: u32,
    seen: &HashSet<i32>,
    frontier: &mut Vec<(Target, Option<ProcInfo>)>,
) {
    for c in children_of(pid, threads) {
        if !seen.contains(&c) {
            if let Some(ci) = ProcInfo::read(c) {
                let t = Target {
                    pid: c,
                    start_ticks: ci.start_ticks,
                };
                frontier.push((t, Some(ci)));
            }
        }
    }
}

/// Waits (briefly) until what was frozen is frozen: the cgroup says so, each stopped
/// process shows state `T` (or has ended). Each process seen stopped is read no more,
/// and goes into `confirmed` with its threads as read then; returns what was read of
/// the processes seen stopped this time.
fn wait_frozen(
    cg: Option<&FreezeGroup>,
    stopped: &[Target],
    confirmed: &mut HashSet<i32>,
    threads: &mut HashMap<i32, u32>,
) -> HashMap<i32, ProcInfo> {
    let mut fresh = HashMap::new();
    let deadline = Instant::now() + Duration::from_millis(250);
    let mut pending: Vec<Target> = stopped
        .iter()
        .filter(|t| !confirmed.contains(&t.pid))
        .copied()
        .collect();
    loop {
        let group_done = cg.is_none_or(FreezeGroup::frozen);
        pending.retain(|t| {
            match ProcInfo::read(t.pid).filter(|i| i.start_ticks == t.start_ticks) {
                None => false,
                Some(i) if matches!(i.state, 'T' | 't' | 'Z' | 'X' | 'x') => {
                    confirmed.insert(t.pid);
                    threads.insert(t.pid, i.threads);
                    fresh.insert(t.pid, i);
                    false
                }
                Some(i) => !(i.state == 'D' && in_vfork(t.pid)),
            }
        });
        if (group_done && pending.is_empty()) || Instant::now() >= deadline {
            return fresh;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// Whether a process waits for its vfork child (to exec or exit): it can do nothing
/// else, and its child is in the branch; the stop reaches it when the wait ends.
fn in_vfork(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/wchan"))
        .is_ok_and(|w| w.contains("kernel_clone") || w.contains("vfork"))
}

/// A frozen cgroup v2 of the branch's own, under the hierarchy's root.
struct FreezeGroup {
    dir: PathBuf,
}

static GROUPS: AtomicU32 = AtomicU32::new(0);

impl FreezeGroup {
    fn create() -> Result<FreezeGroup, String> {
        let root =
            cgroup2_root().ok_or("no cgroup v2 hierarchy: each process is stopped with SIGSTOP")?;
        let n = GROUPS.fetch_add(1, Ordering::Relaxed);
        let dir = root.join(format!("vigil-kill-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir)
            .map_err(|e| format!("cannot make the freeze cgroup {}: {e}", dir.display()))?;
        let g = FreezeGroup { dir };
        // Frozen before anything enters: a process moved in stops at once.
        if let Err(e) = std::fs::write(g.dir.join("cgroup.freeze"), "1") {
            let _ = std::fs::remove_dir(&g.dir);
            return Err(format!("cannot freeze the cgroup {}: {e}", g.dir.display()));
        }
        Ok(g)
    }

    fn add(&self, pid: i32) -> std::io::Result<()> {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
    }

    fn events(&self) -> String {
        std::fs::read_to_string(self.dir.join("cgroup.events")).unwrap_or_default()
    }

    fn frozen(&self) -> bool {
        let ev = self.events();
        ev.contains("frozen 1") || ev.contains("populated 0")
    }

    fn kill(&self) -> Result<(), String> {
        std::fs::write(self.dir.join("cgroup.kill"), "1")
            .map_err(|e| format!("cannot kill the cgroup {}: {e}", self.dir.display()))
    }

    /// Removes the (empty) cgroup, waiting up to `settle` for it to empty.
    fn remove(self, settle: Duration) -> Result<(), String> {
        let deadline = Instant::now() + settle;
        loop {
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    // Thaw what is left so nothing stays frozen for ever.
                    let _ = std::fs::write(self.dir.join("cgroup.freeze"), "0");
                    return Err(format!(
                        "cannot remove the cgroup {}: {e}",
                        self.dir.display()
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    }
}

/// Whether `dir` is a freeze cgroup this module makes (for cleaning up after a crash).
pub fn is_freeze_group(dir: &Path) -> bool {
    dir.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("vigil-kill-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No process ever has this pid (above any `pid_max`): it stands for one that ended
    /// between being found and being frozen.
    const NO_SUCH_PID: i32 = i32::MAX;

    /// CI run of 2026-12-06: a process of a forking tree ended between its read and its
    /// freeze, and "SIGSTOP to PID: ESRCH" was reported as a failed kill.
    #[test]
    fn a_process_ending_before_its_freeze_is_gone_not_an_error() {
        assert_eq!(freeze_one(None, NO_SUCH_PID), Freeze::Gone);
        // With a cgroup to move into (root, cgroup v2), the move's ESRCH is read alike.
        if let Ok(g) = FreezeGroup::create() {
            assert_eq!(freeze_one(Some(&g), NO_SUCH_PID), Freeze::Gone);
            g.remove(Duration::from_secs(1)).unwrap();
        }
    }
}
