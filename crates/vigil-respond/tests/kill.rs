//! Killing real process branches: trees that fork in a loop are frozen and killed with
//! none of their processes left, by either freeze method; what the guard spares is
//! spared; a process that is already gone is reported as gone. Needs root (cgroups).

use std::process::{Child, Command};
use std::time::{Duration, Instant};
use vigil_respond::config::{FreezeMethod, Protected};
use vigil_respond::kill::kill_branch;
use vigil_respond::procs::{Guard, ProcInfo, Target};

/// Processes whose command line holds `marker`.
fn with_marker(marker: &str) -> Vec<i32> {
    vigil_respond::procs::all_pids()
        .into_iter()
        .filter(|&p| {
            ProcInfo::read(p).is_some_and(|i| !i.ended())
                && vigil_respond::procs::cmd_line(p).is_some_and(|c| c.contains(marker))
        })
        .collect()
}

/// A shell tree that forks in a loop: the root and three child shells each start a
/// `sleep MARKER` child every few milliseconds, all through the kill (each sleep's
/// argument is the marker, a number of seconds no other process uses). Without the
/// pause between forks the tree reaches thousands of processes before the kill and
/// starves the host.
fn forking_tree(marker: &str) -> Child {
    let inner = format!("while :; do /bin/sleep {marker} & /bin/sleep 0.002; done");
    let script = format!("for i in 1 2 3; do /bin/sh -c '{inner}' & done; {inner}");
    Command::new("/bin/sh")
        .args(["-c", &script])
        .spawn()
        .expect("sh")
}

/// Kills what a failed test leaves behind.
struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        for _ in 0..3 {
            for p in with_marker(&self.0) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

fn target(pid: u32) -> Target {
    let pid = pid as i32;
    Target {
        pid,
        start_ticks: ProcInfo::read(pid).expect("alive").start_ticks,
    }
}

fn marker(n: u32) -> String {
    format!("{}.{:06}", 90000 + n, std::process::id() % 1_000_000)
}

fn kill_a_forking_tree(method: FreezeMethod, n: u32) {
    let m = marker(n);
    let _cleanup = Cleanup(m.clone());
    let mut child = forking_tree(&m);
    // Let it grow.
    let deadline = Instant::now() + Duration::from_secs(10);
    while with_marker(&m).len() < 40 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let before = with_marker(&m).len();
    assert!(before >= 40, "the tree grew to {before} processes only");
    let guard = Guard::new(Protected::default(), Vec::new());
    let report = kill_branch(
        target(child.id()),
        &[],
        &guard,
        method,
        Duration::from_secs(2),
    );
    let _ = child.wait();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.spared.is_empty(), "{:?}", report.spared);
    assert!(report.survivors.is_empty(), "{:?}", report.survivors);
    assert!(!report.gone);
    assert!(report.gone_after.is_some());
    assert!(report.killed.len() >= 4, "{}", report.killed.len());
    assert_eq!(report.killed[0].target.pid, child.id() as i32);
    let want = match method {
        FreezeMethod::Cgroup => "cgroup",
        FreezeMethod::Sigstop => "sigstop",
    };
    assert!(
        report.killed.iter().all(|k| k.how == want),
        "{:?}",
        report.killed
    );
    // Nothing of the tree is left: not a sleep, not a shell.
    std::thread::sleep(Duration::from_millis(50));
    let left = with_marker(&m);
    assert!(left.is_empty(), "escaped: {left:?}");
    eprintln!(
        "{want}: {} processes in {} passes; frozen after {:?}, killed after {:?}, gone after {:?}",
        report.killed.len(),
        report.passes,
        report.frozen_after,
        report.killed_after,
        report.gone_after
    );
}

#[test]
fn a_tree_forking_in_a_loop_is_frozen_in_a_cgroup_and_killed_whole() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    if vigil_respond::kill::cgroup2_root().is_none() {
        vigil_testdata::skip("no cgroup v2 hierarchy mounted");
        return;
    }
    kill_a_forking_tree(FreezeMethod::Cgroup, 1);
}

#[test]
fn a_tree_forking_in_a_loop_is_stopped_with_sigstop_and_killed_whole() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    kill_a_forking_tree(FreezeMethod::Sigstop, 2);
}

#[test]
fn a_process_gone_before_the_kill_is_reported_gone() {
    let mut child = Command::new("/bin/true").spawn().expect("true");
    let t = target(child.id());
    child.wait().expect("reaped");
    let guard = Guard::new(Protected::default(), Vec::new());
    let r = kill_branch(
        t,
        &[],
        &guard,
        FreezeMethod::Sigstop,
        Duration::from_millis(100),
    );
    assert!(r.gone);
    assert!(r.killed.is_empty());
}

#[test]
fn a_reused_pid_is_not_the_process_asked_for() {
    let mut child = Command::new("/bin/sleep").arg("5").spawn().expect("sleep");
    let mut t = target(child.id());
    t.start_ticks += 1;
    let guard = Guard::new(Protected::default(), Vec::new());
    let r = kill_branch(
        t,
        &[],
        &guard,
        FreezeMethod::Sigstop,
        Duration::from_millis(100),
    );
    assert!(r.gone, "another start time: not the same process");
    assert_eq!(child.try_wait().expect("wait"), None, "the sleep runs on");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn pid_1_the_agent_and_protected_executables_are_spared() {
    let guard = Guard::new(Protected::default(), Vec::new());
    let init = target(1);
    let r = kill_branch(
        init,
        &[],
        &guard,
        FreezeMethod::Sigstop,
        Duration::from_millis(100),
    );
    assert_eq!(r.spared.len(), 1);
    assert!(r.killed.is_empty());
    assert_eq!(r.spared[0].1.to_string(), "pid 1 is never acted on");
    let me = target(std::process::id());
    let r = kill_branch(
        me,
        &[],
        &guard,
        FreezeMethod::Sigstop,
        Duration::from_millis(100),
    );
    assert!(r.killed.is_empty());
    assert_eq!(r.spared[0].1, vigil_respond::procs::Spared::Agent);
    // A protected executable in the branch is left running, with what it started.
    let mut child = Command::new("/bin/sh")
        .args(["-c", "/bin/sleep 30 & wait"])
        .spawn()
        .expect("sh");
    std::thread::sleep(Duration::from_millis(100));
    let protected = Protected {
        executables: vec![std::fs::canonicalize("/bin/sleep").expect("sleep")],
        ..Protected::default()
    };
    let guard = Guard::new(protected, Vec::new());
    let r = kill_branch(
        target(child.id()),
        &[],
        &guard,
        FreezeMethod::Sigstop,
        Duration::from_secs(1),
    );
    assert_eq!(r.killed.len(), 1, "{:?}", r.killed);
    assert_eq!(r.spared.len(), 1, "{:?}", r.spared);
    assert!(!r.complete());
    let sleep = r.spared[0].0.pid;
    assert!(
        ProcInfo::read(sleep).is_some_and(|i| !i.ended()),
        "the sleep runs on"
    );
    let _ = child.wait();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sleep),
        nix::sys::signal::Signal::SIGKILL,
    );
}
