//! Files each process holds open for writing, so that those it never closes itself are
//! still reported closed: all of them when it exits, the close-on-exec ones when it
//! execs (the exec record says which descriptors are still open; past the ones it
//! covers, the `O_CLOEXEC` flag of the open decides). (The kernel reports a `close(2)` of a file opened for writing; a process that
//! exits or execs closes its files without one.)
//!
//! Kept from the sensor's own open and close records, so it knows what they know: a
//! descriptor closed by `dup2` or `close_range` is still taken for open, and a file a
//! child inherited is reported closed when the process that opened it exits.

use std::collections::HashMap;

/// `O_CLOEXEC` (the same value on every Linux architecture Vigil builds for).
pub const O_CLOEXEC: u64 = 0o2_000_000;

/// One descriptor open for writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenWrite {
    /// The descriptor.
    pub fd: i32,
    /// The file's path when it was opened.
    pub path: String,
    /// Opened with `O_CLOEXEC`: closed by the next exec.
    pub cloexec: bool,
}

/// The open-for-writing descriptors of every process, bounded.
#[derive(Debug)]
pub struct OpenWrites {
    by_pid: HashMap<u32, Vec<OpenWrite>>,
    len: usize,
    max: usize,
    /// Opens not tracked because the table was full (their implicit close is not
    /// reported).
    pub untracked: u64,
}

impl OpenWrites {
    /// A tracker of at most `max` descriptors in all.
    pub fn new(max: usize) -> Self {
        OpenWrites {
            by_pid: HashMap::new(),
            len: 0,
            max,
            untracked: 0,
        }
    }

    /// `pid` opened `path` for writing as `fd`.
    pub fn opened(&mut self, pid: u32, fd: i32, path: &str, cloexec: bool) {
        let fds = self.by_pid.entry(pid).or_default();
        // The same number again: its earlier file was closed in a way not seen.
        if let Some(i) = fds.iter().position(|w| w.fd == fd) {
            fds.swap_remove(i);
            self.len -= 1;
        }
        if self.len >= self.max {
            self.untracked += 1;
            return;
        }
        fds.push(OpenWrite {
            fd,
            path: path.to_string(),
            cloexec,
        });
        self.len += 1;
    }

    /// `pid` closed `fd`.
    pub fn closed(&mut self, pid: u32, fd: i32) {
        if let Some(fds) = self.by_pid.get_mut(&pid) {
            if let Some(i) = fds.iter().position(|w| w.fd == fd) {
                fds.swap_remove(i);
                self.len -= 1;
            }
            if fds.is_empty() {
                self.by_pid.remove(&pid);
            }
        }
    }

    /// What `pid` still holds (it exits), in descriptor order.
    pub fn take_all(&mut self, pid: u32) -> Vec<OpenWrite> {
        let mut fds = self.by_pid.remove(&pid).unwrap_or_default();
        self.len -= fds.len();
        fds.sort_by_key(|w| w.fd);
        fds
    }

    /// What `pid` no longer holds after an exec (`closed` says, for each descriptor), in
    /// descriptor order.
    pub fn take_closed(&mut self, pid: u32, closed: impl Fn(&OpenWrite) -> bool) -> Vec<OpenWrite> {
        let Some(fds) = self.by_pid.get_mut(&pid) else {
            return Vec::new();
        };
        let mut gone: Vec<OpenWrite> = Vec::new();
        fds.retain(|w| {
            let is_closed = closed(w);
            if is_closed {
                gone.push(w.clone());
            }
            !is_closed
        });
        if fds.is_empty() {
            self.by_pid.remove(&pid);
        }
        self.len -= gone.len();
        gone.sort_by_key(|w| w.fd);
        gone
    }

    /// Descriptors tracked now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none are tracked.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_takes_all_exec_takes_cloexec_close_takes_one() {
        let mut t = OpenWrites::new(100);
        t.opened(7, 4, "/tmp/a", false);
        t.opened(7, 3, "/tmp/b", true);
        t.opened(7, 5, "/tmp/c", false);
        t.opened(8, 3, "/tmp/d", false);
        t.closed(7, 5);
        assert_eq!(t.len(), 3);
        let at_exec = t.take_closed(7, |w| w.cloexec);
        assert_eq!(at_exec.len(), 1);
        assert_eq!(at_exec[0].path, "/tmp/b");
        let at_exit = t.take_all(7);
        assert_eq!(
            at_exit.iter().map(|w| w.path.as_str()).collect::<Vec<_>>(),
            ["/tmp/a"]
        );
        assert_eq!(t.len(), 1);
        assert!(t.take_all(7).is_empty());
    }

    #[test]
    fn a_reused_descriptor_replaces_and_the_bound_holds() {
        let mut t = OpenWrites::new(2);
        t.opened(1, 3, "/old", false);
        t.opened(1, 3, "/new", false);
        assert_eq!(t.len(), 1);
        t.opened(1, 4, "/x", false);
        t.opened(1, 5, "/y", false);
        assert_eq!(t.len(), 2);
        assert_eq!(t.untracked, 1);
        let all = t.take_all(1);
        assert_eq!(all[0].path, "/new");
        assert!(t.is_empty());
    }
}
