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
use crate::procs::{children, Guard, ProcInfo, Spared, Target};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
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
    let mut frontier: Vec<Target> = std::iter::once(root).chain(more.iter().copied()).collect();
    let mut stopped: Vec<Target> = Vec::new();
    let mut group_members: Vec<Target> = Vec::new();
    while !frontier.is_empty() && report.passes < MAX_PASSES {
        report.passes += 1;
        let mut next = Vec::new();
        for t in frontier.drain(..) {
            if !seen.insert(t.pid) {
                continue;
            }
            let Some(p) = t.live() else { continue };
            if let Some(why) = guard.spare(&p) {
                report.spared.push((p, why));
                continue;
            }
            let how = match cg.as_mut().map(|g| g.add(t.pid)) {
                Some(Ok(())) => {
                    group_members.push(t);
                    "cgroup"
                }
                other => {
                    if let Some(Err(e)) = other {
                        tracing::debug!(pid = t.pid, "cannot move into the freeze cgroup: {e}");
                    }
                    match kill(Pid::from_raw(t.pid), Signal::SIGSTOP) {
                        Ok(()) => stopped.push(t),
                        Err(e) => {
                            report.errors.push(format!("SIGSTOP to {}: {e}", t.pid));
                            continue;
                        }
                    }
                    "sigstop"
                }
            };
            report.killed.push(Frozen {
                target: t,
                ppid: p.ppid,
                comm: p.comm.clone(),
                how,
            });
            next.push(t.pid);
        }
        for pid in next {
            push_children(pid, &seen, &mut frontier);
        }
        if frontier.is_empty() {
            // No new child this pass. A freeze takes effect when its process next runs
            // (on a busy host, milliseconds later), and a fork it was making may still
            // complete: once everything is frozen, every child is read again; a child
            // found then means another pass.
            wait_frozen(cg.as_ref(), &stopped);
            for k in &report.killed {
                push_children(k.target.pid, &seen, &mut frontier);
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
        if t.live().is_some() {
            if let Err(e) = kill(Pid::from_raw(t.pid), Signal::SIGKILL) {
                if e != nix::errno::Errno::ESRCH {
                    report.errors.push(format!("SIGKILL to {}: {e}", t.pid));
                }
            }
        }
    }
    report.killed_after = start.elapsed();
    // Settle: every killed process gone (a zombie waiting for its parent is gone).
    let deadline = start + report.killed_after + settle;
    let all: Vec<Target> = report.killed.iter().map(|f| f.target).collect();
    loop {
        let alive: Vec<Target> = all.iter().copied().filter(|t| t.live().is_some()).collect();
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

/// Adds the children of `pid` not seen yet to `frontier`.
fn push_children(pid: i32, seen: &HashSet<i32>, frontier: &mut Vec<Target>) {
    for c in children(pid) {
        if !seen.contains(&c) {
            if let Some(ci) = ProcInfo::read(c) {
                frontier.push(Target {
                    pid: c,
                    start_ticks: ci.start_ticks,
                });
            }
        }
    }
}

/// Waits (briefly) until what was frozen is frozen: the cgroup says so, each stopped
/// process shows state `T` (or has ended).
fn wait_frozen(cg: Option<&FreezeGroup>, stopped: &[Target]) {
    let deadline = Instant::now() + Duration::from_millis(250);
    loop {
        let group_done = cg.is_none_or(FreezeGroup::frozen);
        let stops_done = stopped.iter().all(|t| {
            ProcInfo::read(t.pid)
                .filter(|i| i.start_ticks == t.start_ticks)
                .is_none_or(|i| {
                    matches!(i.state, 'T' | 't' | 'Z' | 'X' | 'x')
                        || (i.state == 'D' && in_vfork(t.pid))
                })
        });
        if (group_done && stops_done) || Instant::now() >= deadline {
            return;
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

    fn add(&mut self, pid: i32) -> std::io::Result<()> {
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
