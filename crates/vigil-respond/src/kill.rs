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
//!
//! Each process is held by a pidfd from when it is found (up to [`MAX_PIDFDS`] a kill):
//! its SIGSTOP and SIGKILL go through it, so they reach that process even if its pid
//! were taken by another, and the kill waits for the ends by polling the pidfds, which
//! costs no CPU while the killed processes exit (reading /proc in a loop took CPU from
//! them on a busy host). Without pidfds (kernels before 5.3) signals go by pid and ends
//! are read from /proc.
//!
//! The killing thread runs in the real-time class while it freezes and signals the
//! branch (`Urgent`; back in its own class to wait for the ends): each signal wakes its
//! process, and in the normal class the woken processes preempted the killer after
//! nearly every signal (at any nice value: the scheduler's deadlines favour a task just
//! woken), so a branch of 40 took milliseconds to signal. Real-time, the killer signals
//! the branch in one go while the processes stop and end on the other CPUs.

use crate::config::FreezeMethod;
use crate::procs::{children_of, Guard, ProcInfo, Spared, Target};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::collections::HashSet;
use std::os::fd::{AsFd, OwnedFd};
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

/// Pidfds held by one kill at most: past this (a fork storm) processes are signalled by
/// pid, so a kill never takes more than this many of the agent's descriptors.
pub const MAX_PIDFDS: usize = 512;

/// A pidfd for `pid`: `Ok(None)` where none can be had (no pidfds in this kernel, no
/// descriptor left), `Err(())` when the process no longer exists.
fn open_pidfd(pid: i32) -> Result<Option<OwnedFd>, ()> {
    let Some(p) = rustix::process::Pid::from_raw(pid) else {
        return Err(());
    };
    match rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(rustix::io::Errno::SRCH) => Err(()),
        Err(e) => {
            tracing::debug!(pid, "no pidfd: {e}");
            Ok(None)
        }
    }
}

/// Sends `sig` to the process: through its pidfd when it has one, else by pid.
fn signal(pid: i32, fd: Option<&OwnedFd>, sig: Signal) -> Result<(), nix::errno::Errno> {
    match fd {
        Some(fd) if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) => {
            let s = if sig == Signal::SIGKILL {
                rustix::process::Signal::KILL
            } else {
                rustix::process::Signal::STOP
            };
            rustix::process::pidfd_send_signal(fd, s)
                .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error()))
        }
        _ => kill(Pid::from_raw(pid), sig),
    }
}

/// Freezes `pid`: into the cgroup if there is one and the move works, else with SIGSTOP
/// (through `fd`, its pidfd, when it has one).
fn freeze_one(cg: Option<&FreezeGroup>, pid: i32, fd: Option<&OwnedFd>) -> Freeze {
    if let Some(g) = cg {
        match g.add(pid) {
            Ok(()) => return Freeze::Cgroup,
            Err(e) if e.raw_os_error() == Some(nix::libc::ESRCH) => return Freeze::Gone,
            Err(e) => tracing::debug!(pid, "cannot move into the freeze cgroup: {e}"),
        }
    }
    match signal(pid, fd, Signal::SIGSTOP) {
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

/// The calling thread in the real-time class (`SCHED_FIFO` at the lowest real-time
/// priority) until dropped, then back in the class it was in. A kill is bounded (its
/// passes, its waits), and the kernel keeps 5% of each second for the normal class.
/// Where it may not be raised (no `CAP_SYS_NICE`, or already real-time) the kill runs
/// as the thread is.
struct Urgent {
    /// The policy and priority to go back to, when raised.
    before: Option<(i32, nix::libc::sched_param)>,
}

impl Urgent {
    #[allow(
        unsafe_code,
        reason = "sched_getscheduler(2), sched_getparam(2), sched_setscheduler(2): no safe binding in nix or rustix"
    )]
    fn raise() -> Urgent {
        use nix::libc;
        // SAFETY: no arguments but pid 0 (the calling thread); it only returns a value.
        let policy = unsafe { libc::sched_getscheduler(0) };
        if policy != libc::SCHED_OTHER && policy != libc::SCHED_BATCH {
            return Urgent { before: None };
        }
        let mut before = libc::sched_param { sched_priority: 0 };
        // SAFETY: `before` is a valid, writable sched_param for the length of the call.
        if unsafe { libc::sched_getparam(0, &mut before) } != 0 {
            return Urgent { before: None };
        }
        let fifo = libc::sched_param { sched_priority: 1 };
        // SAFETY: `fifo` is a valid sched_param, read during the call only.
        let raised = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &fifo) } == 0;
        Urgent {
            before: raised.then_some((policy, before)),
        }
    }
}

impl Drop for Urgent {
    #[allow(
        unsafe_code,
        reason = "sched_setscheduler(2): no safe binding in nix or rustix"
    )]
    fn drop(&mut self) {
        if let Some((policy, param)) = self.before {
            // SAFETY: `param` is a valid sched_param, read during the call only.
            let _ = unsafe { nix::libc::sched_setscheduler(0, policy, &param) };
        }
    }
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
    let urgent = Urgent::raise();
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
    // The pidfd of each process frozen that has one.
    let mut fds: HashMap<i32, OwnedFd> = HashMap::new();
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
            // Opened just after the read that named the process, so it is that process
            // (a pid is not reused within microseconds: the kernel cycles through them).
            let fd = if fds.len() < MAX_PIDFDS {
                match open_pidfd(t.pid) {
                    Ok(fd) => fd,
                    // Ended between its read and now: nothing left to kill.
                    Err(()) => continue,
                }
            } else {
                None
            };
            let how = match freeze_one(cg.as_ref(), t.pid, fd.as_ref()) {
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
            if let Some(fd) = fd {
                fds.insert(t.pid, fd);
            }
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
        // A process held by its pidfd, or seen stopped (it cannot have ended by itself
        // since, nor its pid gone to another), is killed without reading it again.
        // Others are checked first.
        let fd = fds.get(&t.pid);
        if fd.is_some() || confirmed.contains(&t.pid) || t.live().is_some() {
            if let Err(e) = signal(t.pid, fd, Signal::SIGKILL) {
                if e != nix::errno::Errno::ESRCH {
                    report.errors.push(format!("SIGKILL to {}: {e}", t.pid));
                }
            }
        }
    }
    report.killed_after = start.elapsed();
    // Waiting for the ends needs no priority: real-time, each end's wake-up would take
    // the CPU from the processes still ending.
    drop(urgent);
    // Settle: every killed process gone (a zombie waiting for its parent is gone). Those
    // held by a pidfd are waited for in poll(2); the others are read from /proc, each
    // round only those not seen gone yet.
    let deadline = start + report.killed_after + settle;
    let mut held: Vec<(Target, OwnedFd)> = Vec::new();
    let mut alive: Vec<Target> = Vec::new();
    for f in &report.killed {
        match fds.remove(&f.target.pid) {
            Some(fd) => held.push((f.target, fd)),
            None => alive.push(f.target),
        }
    }
    loop {
        alive.retain(|t| t.live().is_some());
        let now = Instant::now();
        // Without /proc reads to make, wait in poll(2) for the next end.
        let wait = if alive.is_empty() {
            deadline.saturating_duration_since(now)
        } else {
            Duration::ZERO
        };
        if let Err(e) = drop_ended(&mut held, wait) {
            report
                .errors
                .push(format!("cannot wait for the killed processes: {e}"));
            alive.extend(held.drain(..).map(|(t, _)| t));
        }
        if alive.is_empty() && held.is_empty() {
            report.gone_after = Some(start.elapsed());
            break;
        }
        if Instant::now() >= deadline {
            report.survivors = alive;
            report.survivors.extend(held.iter().map(|(t, _)| *t));
            break;
        }
        if !alive.is_empty() {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    if let Some(g) = cg.take() {
        if let Err(e) = g.remove(settle) {
            report.errors.push(e);
        }
    }
    report
}

/// Waits up to `wait` for one of the processes in `held` to end (its pidfd readable), then
/// drops every one that has ended.
fn drop_ended(held: &mut Vec<(Target, OwnedFd)>, wait: Duration) -> nix::Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    if held.is_empty() {
        return Ok(());
    }
    // Milliseconds, rounded up (poll's unit); a process's end wakes it at once.
    let ms = wait.as_micros().div_ceil(1000);
    let timeout = PollTimeout::try_from(ms.min(60_000)).unwrap_or(PollTimeout::MAX);
    let ended: Vec<bool> = {
        let mut pfds: Vec<PollFd<'_>> = held
            .iter()
            .map(|(_, fd)| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
            .collect();
        match poll(&mut pfds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(()),
            Err(e) => return Err(e),
        }
        pfds.iter()
            .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
            .collect()
    };
    let mut i = 0;
    held.retain(|_| {
        i += 1;
        !ended[i - 1]
    });
    Ok(())
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
        assert_eq!(freeze_one(None, NO_SUCH_PID, None), Freeze::Gone);
        // With a cgroup to move into (root, cgroup v2), the move's ESRCH is read alike.
        if let Ok(g) = FreezeGroup::create() {
            assert_eq!(freeze_one(Some(&g), NO_SUCH_PID, None), Freeze::Gone);
            g.remove(Duration::from_secs(1)).unwrap();
        }
    }

    #[test]
    fn a_pidfd_is_refused_for_a_process_that_does_not_exist() {
        assert!(open_pidfd(NO_SUCH_PID).is_err());
    }

    /// The settle waits in poll(2) on pidfds: an end is seen as it happens, a live
    /// process stays held, and a reaped process is not signalled through its pidfd even
    /// though its pid may since be another's.
    #[test]
    fn pidfds_tell_a_killed_process_from_a_live_one() {
        let mut live = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let mut doomed = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let target = |c: &std::process::Child| {
            let pid = c.id() as i32;
            Target {
                pid,
                start_ticks: ProcInfo::read(pid).expect("running").start_ticks,
            }
        };
        let (lt, dt) = (target(&live), target(&doomed));
        let Some(lfd) = open_pidfd(lt.pid).expect("running") else {
            eprintln!("skipped: this kernel has no pidfds");
            for mut c in [live, doomed] {
                c.kill().unwrap();
                c.wait().unwrap();
            }
            return;
        };
        let dfd = open_pidfd(dt.pid).expect("running").expect("pidfd");
        let mut held = vec![(lt, lfd), (dt, dfd)];
        drop_ended(&mut held, Duration::from_millis(20)).unwrap();
        assert_eq!(held.len(), 2, "nothing has ended yet");
        signal(dt.pid, Some(&held[1].1), Signal::SIGKILL).unwrap();
        let t = Instant::now();
        while held.len() == 2 && t.elapsed() < Duration::from_secs(5) {
            drop_ended(&mut held, Duration::from_secs(5)).unwrap();
        }
        assert_eq!(held.len(), 1, "the killed one is seen gone");
        assert_eq!(held[0].0, lt, "the live one stays held");
        // Reaped: the pidfd names nothing now, whatever took the pid.
        let dfd = open_pidfd(lt.pid).expect("running").expect("pidfd");
        doomed.wait().unwrap();
        live.kill().unwrap();
        live.wait().unwrap();
        assert_eq!(
            signal(lt.pid, Some(&dfd), Signal::SIGKILL),
            Err(nix::errno::Errno::ESRCH)
        );
    }

    #[test]
    #[allow(
        unsafe_code,
        reason = "sched_getscheduler(2) to see the thread's class"
    )]
    fn the_killing_thread_is_real_time_for_the_kill_and_itself_after() {
        // SAFETY: no arguments but pid 0 (the calling thread); it only returns a value.
        let class = || unsafe { nix::libc::sched_getscheduler(0) };
        let before = class();
        {
            let u = Urgent::raise();
            if u.before.is_some() {
                assert_eq!(class(), nix::libc::SCHED_FIFO);
            } else {
                eprintln!("not raised (no CAP_SYS_NICE): the kill runs in class {before}");
                assert_eq!(class(), before);
            }
        }
        assert_eq!(class(), before);
    }
}
