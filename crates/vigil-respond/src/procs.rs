//! Processes as /proc shows them: identity (pid and start time, as the sensor's process
//! uid `boot_id-pid-start_ticks`), parent, children, executable; and the guard rails that
//! say which processes response never touches.

use crate::config::Protected;
use std::path::{Path, PathBuf};

/// `PF_KTHREAD` in `/proc/PID/stat`'s flags: a kernel thread.
const PF_KTHREAD: u64 = 0x0020_0000;

/// One process, as read from `/proc/PID/stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    /// Process id.
    pub pid: i32,
    /// Parent process id.
    pub ppid: i32,
    /// Start time in clock ticks after boot.
    pub start_ticks: u64,
    /// `comm`.
    pub comm: String,
    /// State letter (`R`, `S`, `T`, `Z`, ...).
    pub state: char,
    /// Kernel thread.
    pub kthread: bool,
    /// Threads of the process (`num_threads`).
    pub threads: u32,
}

impl ProcInfo {
    /// Reads `/proc/PID/stat`; `None` when the process does not exist (any more).
    pub fn read(pid: i32) -> Option<ProcInfo> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        parse_stat(pid, &text)
    }

    /// Whether the process has ended (gone, or a zombie waiting for its parent).
    pub fn ended(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses a `/proc/PID/stat` line. `comm` is in parentheses and may itself hold spaces
/// and parentheses: the fields after it start after the last `)`.
pub fn parse_stat(pid: i32, text: &str) -> Option<ProcInfo> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state); field N is rest[N - 3].
    let field = |n: usize| rest.get(n - 3).copied();
    Some(ProcInfo {
        pid,
        ppid: field(4)?.parse().ok()?,
        start_ticks: field(22)?.parse().ok()?,
        comm,
        state: field(3)?.chars().next()?,
        kthread: field(9)?.parse::<u64>().ok()? & PF_KTHREAD != 0,
        threads: field(20)?.parse().ok()?,
    })
}

/// The executable of a process (`/proc/PID/exe`), if readable.
pub fn exe(pid: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// The command line of a process, arguments joined by spaces.
pub fn cmd_line(pid: i32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (!args.is_empty()).then(|| args.join(" "))
}

/// The children of a process: every thread's `children` list (a thread may be the
/// parent). Falls back to a scan of /proc when the kernel has no `children` files.
pub fn children(pid: i32) -> Vec<i32> {
    children_of(pid, 0)
}

/// [`children`] of a process known to have `threads` threads (from its
/// [`ProcInfo::threads`]; 0 when unknown): a process of one thread has one `children`
/// file, read without listing its threads.
pub fn children_of(pid: i32, threads: u32) -> Vec<i32> {
    if threads == 1 {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
            let mut out: Vec<i32> = text
                .split_whitespace()
                .filter_map(|s| s.parse().ok())
                .collect();
            out.sort_unstable();
            out.dedup();
            return out;
        }
    }
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    let mut found_file = false;
    for t in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
            found_file = true;
            out.extend(
                text.split_whitespace()
                    .filter_map(|s| s.parse::<i32>().ok()),
            );
        }
    }
    if !found_file {
        out = all_pids()
            .into_iter()
            .filter(|&p| ProcInfo::read(p).is_some_and(|i| i.ppid == pid))
            .collect();
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Every process id in /proc.
pub fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`), the first part of process uids.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The sensor's process uid: `boot_id-pid-start_ticks`.
pub fn process_uid(boot_id: &str, pid: i32, start_ticks: u64) -> String {
    format!("{boot_id}-{pid}-{start_ticks}")
}

/// The pid and start ticks of a process uid (`boot_id-pid-start_ticks`; the boot id
/// holds dashes itself).
pub fn parse_uid(uid: &str) -> Option<(i32, u64)> {
    let mut parts = uid.rsplitn(3, '-');
    let start = parts.next()?.parse().ok()?;
    let pid = parts.next()?.parse().ok()?;
    parts.next()?;
    Some((pid, start))
}

/// A process as response targets it: its pid and its start, so a pid reused by another
/// process is never mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// Process id.
    pub pid: i32,
    /// Start time in clock ticks.
    pub start_ticks: u64,
}

impl Target {
    /// The process now running under this pid, if it is still the same one.
    pub fn live(&self) -> Option<ProcInfo> {
        ProcInfo::read(self.pid).filter(|i| i.start_ticks == self.start_ticks && !i.ended())
    }
}

/// Why response leaves a process alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spared {
    /// pid 1, the service manager.
    Init,
    /// A kernel thread.
    KernelThread,
    /// The agent, its helper, or one of its ancestors.
    Agent,
    /// A protected executable.
    Protected(PathBuf),
}

impl std::fmt::Display for Spared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Spared::Init => f.write_str("pid 1 is never acted on"),
            Spared::KernelThread => f.write_str("a kernel thread is never acted on"),
            Spared::Agent => {
                f.write_str("the agent, its helper and its ancestors are never acted on")
            }
            Spared::Protected(p) => write!(f, "{} is a protected executable", p.display()),
        }
    }
}

/// The guard rails: processes and paths response never touches.
#[derive(Debug, Clone)]
pub struct Guard {
    own: Vec<i32>,
    protected: Protected,
    own_paths: Vec<PathBuf>,
}

impl Guard {
    /// The guard for this process (the agent or the CLI): itself and its ancestors, and
    /// the protected lists; `own_paths` are files and directories of the agent's own
    /// (its binary, configuration, vault, journal, state) never quarantined.
    pub fn new(protected: Protected, own_paths: Vec<PathBuf>) -> Guard {
        let mut own = Vec::new();
        let mut pid = std::process::id() as i32;
        while pid > 1 && own.len() < 64 {
            own.push(pid);
            pid = ProcInfo::read(pid).map_or(0, |i| i.ppid);
        }
        Guard {
            own,
            protected,
            own_paths,
        }
    }

    /// Adds a process of the agent's own (its exec-guard helper).
    pub fn add_own(&mut self, pid: i32) {
        self.own.push(pid);
    }

    /// Whether `pid` is the agent, its helper or one of its ancestors.
    pub fn is_own(&self, pid: i32) -> bool {
        self.own.contains(&pid)
    }

    /// Whether `path` is one of the agent's own files (or under its directories).
    pub fn is_own_path(&self, path: &Path) -> bool {
        self.own_paths.iter().any(|p| path.starts_with(p))
    }

    /// Why `p` must be left alone, if it must.
    pub fn spare(&self, p: &ProcInfo) -> Option<Spared> {
        if p.pid == 1 {
            return Some(Spared::Init);
        }
        if p.kthread || p.pid == 2 || p.ppid == 2 {
            return Some(Spared::KernelThread);
        }
        if self.own.contains(&p.pid) {
            return Some(Spared::Agent);
        }
        // Read only when there is a list to hold it against (a kill reads no more of
        // each process than it needs).
        if self.protected.executables.is_empty() {
            return None;
        }
        if let Some(exe) = exe(p.pid) {
            if self.protected.executables.iter().any(|e| e == &exe) {
                return Some(Spared::Protected(exe));
            }
        }
        None
    }

    /// Why a file must be left alone (never quarantined, blocked or rolled back), if
    /// it must: under a protected prefix, or one of the agent's own files.
    pub fn spare_path(&self, path: &Path) -> Option<String> {
        if let Some(p) = self.protected.paths.iter().find(|p| path.starts_with(p)) {
            return Some(format!(
                "{} is under the protected path {}",
                path.display(),
                p.display()
            ));
        }
        if let Some(p) = self.own_paths.iter().find(|p| path.starts_with(p)) {
            return Some(format!(
                "{} is the agent's own ({})",
                path.display(),
                p.display()
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names_parse() {
        let line =
            "4242 (a (b) c) S 17 4242 4242 0 -1 4194560 1 0 0 0 3 4 0 0 20 0 1 0 987654 1 2 3";
        let p = parse_stat(4242, line).expect("parses");
        assert_eq!(p.comm, "a (b) c");
        assert_eq!(p.ppid, 17);
        assert_eq!(p.state, 'S');
        assert_eq!(p.start_ticks, 987654);
        assert_eq!(p.threads, 1);
        assert!(!p.kthread);
        let kthread = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0";
        assert!(parse_stat(2, kthread).expect("parses").kthread);
        assert_eq!(parse_stat(1, "1 (init S 0"), None);
        assert_eq!(parse_stat(1, ""), None);
    }

    #[test]
    fn children_of_a_one_thread_process_are_read_from_its_one_file() {
        let mut sh = std::process::Command::new("/bin/sh")
            .args(["-c", "/bin/sleep 30 & /bin/sleep 30 & wait"])
            .spawn()
            .expect("sh");
        let pid = sh.id() as i32;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while children(pid).len() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let all = children(pid);
        assert_eq!(all.len(), 2, "{all:?}");
        let info = ProcInfo::read(pid).expect("sh");
        assert_eq!(info.threads, 1);
        assert_eq!(children_of(pid, info.threads), all);
        for c in all {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = sh.kill();
        let _ = sh.wait();
    }

    #[test]
    fn uids_give_back_pid_and_start() {
        let uid = process_uid("6a97c9bc-9ade-42a8-91ff-710e2a46daaf", 812, 99120);
        assert_eq!(parse_uid(&uid), Some((812, 99120)));
        assert_eq!(parse_uid("812-99120"), None);
        assert_eq!(parse_uid("boot-x-1"), None);
    }

    #[test]
    fn this_process_is_read_and_guarded_as_the_agent() {
        let me = ProcInfo::read(std::process::id() as i32).expect("self");
        let g = Guard::new(Protected::default(), vec![PathBuf::from("/var/lib/vigil")]);
        assert_eq!(g.spare(&me), Some(Spared::Agent));
        let init = ProcInfo::read(1).expect("pid 1");
        assert_eq!(g.spare(&init), Some(Spared::Init));
        assert!(g.spare_path(Path::new("/usr/bin/bash")).is_some());
        assert!(g.spare_path(Path::new("/var/lib/vigil/vault/x")).is_some());
        assert!(
            g.spare_path(Path::new("/usr/binary")).is_none(),
            "whole components"
        );
        assert!(g.spare_path(Path::new("/tmp/x")).is_none());
    }
}
