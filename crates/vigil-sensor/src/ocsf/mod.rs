//! Turns decoded kernel records into OCSF events, with lineage from the process table.

mod dns;
pub mod ids;
mod open_writes;
mod syscall;

use crate::abi::{self, RawCreds, RawExec, RawExit, RawFork, RawHeader, Record};
use crate::config::SensorConfig;
use crate::hash::{user_dev, FileKey, HashCache};
use crate::host::{ticks, Host};
use crate::proc::{join_argv, Limits, ProcInfo, ProcTable, Views};
use crate::stats::{Malformed, Stats};
use ids::{event_log_activity, file_activity, launch_type, process_activity};
use serde_json::{json, Map};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use vigil_event::model::*;
use vigil_event::OcsfEvent;

/// Bytes of an ancestor's command line kept in `ancestry` (the parent's is whole in
/// `parent_process`).
pub const ANCESTRY_CMDLINE_MAX: usize = 256;

/// `s` cut to at most `max` bytes, on a character boundary.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Forks held back at most (see [`Converter::convert`]); past this a fork is reported at
/// once.
const PENDING_FORKS_MAX: usize = 16_384;

/// Users kept in the converter's cache at most (it starts over when full).
const USERS_MAX: usize = 4096;

/// The feature name in `metadata.product.feature`.
pub(crate) const FEATURE: &str = "sensor";

/// Converts records to events; owns the process table and the hash cache.
#[derive(Debug)]
pub struct Converter {
    host: Host,
    device: Shared<Device>,
    table: ProcTable,
    hashes: HashCache,
    cgroups: crate::container::CgroupCache,
    users: HashMap<u32, Shared<User>>,
    config: SensorConfig,
    passwd: HashMap<u32, String>,
    /// Forks not reported yet, by child pid, with when they arrived.
    pending_forks: HashMap<u32, (RawFork, Instant)>,
    /// Files open for writing, to report the closes of exit and exec.
    open_writes: open_writes::OpenWrites,
    /// `exclude_file_prefixes`, shared with the event filter of [`Converter::convert`].
    file_excludes: std::sync::Arc<[String]>,
    /// Malformed inputs: /proc files, syscall records, and those the backend notes.
    malformed: Malformed,
    /// `watched_reads`: the whole-path check of read-only opens the kernel let through.
    watch: crate::watch::WatchList,
}

pub(crate) fn file_of(path: &str) -> File {
    let (parent, name) = match path.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((parent, name)) => (parent, name),
        None => ("", path),
    };
    File {
        name: name.to_string(),
        type_id: file_type::REGULAR,
        kind: Some(file_type::name(file_type::REGULAR).into()),
        path: Some(path.to_string()),
        parent_folder: (!parent.is_empty()).then(|| parent.to_string()),
        ..File::default()
    }
}

/// Whether a file event is only about excluded paths (a rename: both of them).
fn file_excluded(ev: &OcsfEvent, prefixes: &[String]) -> bool {
    let OcsfEvent::File(f) = ev else {
        return false;
    };
    let excluded = |file: &File| {
        file.path
            .as_deref()
            .is_some_and(|p| prefixes.iter().any(|x| p.starts_with(x.as_str())))
    };
    excluded(&f.file) && f.file_result.as_ref().is_none_or(excluded)
}

/// Milliseconds since the epoch of an inode's mtime as the kernel keeps it: seconds
/// (`time64_t`, negative before 1970, here as its bits) and nanoseconds; `None` past
/// what milliseconds in an `i64` hold.
fn mtime_ms(sec: u64, nsec: u32) -> Option<i64> {
    (sec as i64)
        .checked_mul(1000)?
        .checked_add(i64::from(nsec / 1_000_000))
}

/// A count for OCSF's 32-bit `count`: `i32::MAX` when it does not fit.
fn saturate_count(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The actor of a launch: the parent process, or just its pid when the table missed it.
fn launcher(parent: Option<Shared<Process>>, ppid: u32) -> Actor {
    let process = parent.unwrap_or_else(|| {
        Shared::new(Process {
            pid: i32::try_from(ppid).ok(),
            ..Process::default()
        })
    });
    Actor {
        process: Some(process),
        ..Actor::default()
    }
}

fn read_passwd() -> HashMap<u32, String> {
    let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?.parse().ok()?;
            Some((uid, name.to_string()))
        })
        .collect()
}

fn creds_xattributes(c: &RawCreds) -> ProcessXattributes {
    ProcessXattributes {
        gid: Some(c.gid),
        euid: Some(c.euid),
        egid: Some(c.egid),
        suid: Some(c.suid),
        sgid: Some(c.sgid),
        fsuid: Some(c.fsuid),
        fsgid: Some(c.fsgid),
        loginuid: (c.loginuid != u32::MAX).then_some(c.loginuid),
        cap_effective: Some(Caps(c.cap_effective)),
        cap_permitted: Some(Caps(c.cap_permitted)),
        cap_inheritable: Some(Caps(c.cap_inheritable)),
        ..ProcessXattributes::default()
    }
}

impl Converter {
    /// A converter for this host, with the table seeded from /proc.
    pub fn new(host: Host, config: SensorConfig) -> Self {
        let mut table = ProcTable::new(Limits {
            max_entries: config.process_table_max,
            linger: Duration::from_secs(config.process_linger_secs),
        });
        let malformed = Malformed::default();
        let seeded = table.seed(&mut |e| malformed.note(&e));
        tracing::debug!(seeded, "process table seeded from /proc");
        Converter {
            device: Shared::new(host.device()),
            host,
            table,
            hashes: HashCache::new(config.hash_cache_max),
            cgroups: crate::container::CgroupCache::default(),
            users: HashMap::new(),
            passwd: read_passwd(),
            pending_forks: HashMap::new(),
            open_writes: open_writes::OpenWrites::new(config.process_table_max),
            file_excludes: config.exclude_file_prefixes.clone().into(),
            // SensorConfig::validate (Sensor::start) has refused a bad list already.
            watch: crate::watch::WatchList::parse(&config.watched_reads).unwrap_or_else(|e| {
                tracing::error!(%e, "watched_reads: no read-only open is reported");
                crate::watch::WatchList::default()
            }),
            config,
            malformed,
        }
    }

    /// Counts a malformed input and logs what was wrong with it.
    pub(crate) fn note_malformed(&self, what: &dyn std::fmt::Display) {
        self.malformed.note(what);
    }

    /// Malformed inputs so far: the ones the converter met (/proc files, syscall records)
    /// and the ones the backend noted ([`Stats::malformed`]).
    pub fn malformed(&self) -> u64 {
        self.malformed.count()
    }

    /// `/proc/PID` read into a table entry; a malformed file is counted.
    pub(crate) fn read_proc(&self, pid: u32) -> Option<ProcInfo> {
        crate::proc::read_proc(pid, &mut |e| self.malformed.note(&e))
    }

    /// A converter for this host ([`Host::detect_with`]); a /proc file that does not
    /// parse while detecting it is counted as malformed.
    pub fn for_this_host(config: SensorConfig) -> Self {
        let mut problems = Vec::new();
        let host = Host::detect_with(&mut |e| problems.push(e));
        let conv = Converter::new(host, config);
        for p in &problems {
            conv.note_malformed(p);
        }
        conv
    }

    /// The host this converter describes.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The process table.
    pub fn table(&self) -> &ProcTable {
        &self.table
    }

    /// The user `uid`, built once and shared.
    fn user(&mut self, uid: u32) -> Shared<User> {
        if let Some(u) = self.users.get(&uid) {
            return u.clone();
        }
        if self.users.len() >= USERS_MAX {
            self.users.clear();
        }
        let ty = if uid == 0 {
            user_type::ADMIN
        } else {
            user_type::USER
        };
        let user = Shared::new(User {
            name: self.passwd.get(&uid).cloned(),
            uid: Some(uid.to_string()),
            type_id: Some(ty),
            kind: Some(user_type::name(ty).into()),
            ..User::default()
        });
        self.users.insert(uid, user.clone());
        user
    }

    /// A process object for a table entry, without parents.
    fn process_from_table(&mut self, p: &ProcInfo) -> Process {
        let name = p
            .exe
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .map(String::from);
        Process {
            pid: i32::try_from(p.pid).ok(),
            uid: Some(self.host.process_uid(p.pid, p.start_ticks)),
            name,
            cmd_line: Some(p.cmdline.clone()),
            file: (!p.exe.is_empty()).then(|| file_of(&p.exe)),
            user: (p.uid != u32::MAX).then(|| self.user(p.uid)),
            created_time: Some(
                self.host
                    .epoch_ms(p.start_ticks * (1_000_000_000 / crate::host::USER_HZ)),
            ),
            ..Process::default()
        }
    }

    /// The table's process `pid` without lineage (as a parent or an actor), built once
    /// per process image ([`Views`]).
    fn brief(&mut self, pid: u32) -> Option<Shared<Process>> {
        let p = self.table.get(pid)?;
        if let Some(b) = p.views.brief.get() {
            return Some(b.clone());
        }
        let p = p.clone();
        let built = Shared::new(self.process_from_table(&p));
        if let Some(entry) = self.table.get(pid) {
            let _ = entry.views.brief.set(built.clone());
        }
        Some(built)
    }

    /// The table's process `pid` as an `ancestry` element (pid, uid, name, path, start,
    /// and the command line cut at [`ANCESTRY_CMDLINE_MAX`] bytes), built once per
    /// process image.
    fn entity(&self, pid: u32) -> Option<Shared<ProcessEntity>> {
        let p = self.table.get(pid)?;
        let view = p.views.entity.get_or_init(|| {
            Shared::new(ProcessEntity {
                pid: i32::try_from(p.pid).ok(),
                uid: Some(self.host.process_uid(p.pid, p.start_ticks)),
                name: p
                    .exe
                    .rsplit('/')
                    .next()
                    .filter(|n| !n.is_empty())
                    .map(String::from),
                path: (!p.exe.is_empty()).then(|| p.exe.clone()),
                cmd_line: Some(truncate(&p.cmdline, ANCESTRY_CMDLINE_MAX)),
                created_time: Some(
                    self.host
                        .epoch_ms(p.start_ticks * (1_000_000_000 / crate::host::USER_HZ)),
                ),
            })
        });
        Some(view.clone())
    }

    /// The lineage of `pid`: its parent as `parent_process` (without its own lineage),
    /// and the flat `ancestry` list, nearest first, up to `lineage_depth` ancestors.
    fn lineage(&mut self, pid: u32) -> (Option<Shared<Process>>, Vec<Shared<ProcessEntity>>) {
        let chain = self.table.ancestors(pid, self.config.lineage_depth);
        let ancestry: Vec<Shared<ProcessEntity>> =
            chain.iter().filter_map(|p| self.entity(p.pid)).collect();
        let parent = ancestry
            .first()
            .and_then(|a| a.pid)
            .and_then(|ppid| self.brief(ppid.unsigned_abs()));
        (parent, ancestry)
    }

    /// The process a record is about, with its lineage: from the table when it knows
    /// this process (same pid and start time), else from /proc when `read_proc` (and the
    /// process is still there), else just its pid and stable uid.
    fn subject(&mut self, h: &RawHeader, read_proc: bool) -> Process {
        let start_ticks = ticks(h.start_boottime);
        let mut known = self
            .table
            .get(h.pid)
            .is_some_and(|p| p.start_ticks == start_ticks);
        if !known && read_proc {
            if let Some(p) = self
                .read_proc(h.pid)
                .filter(|p| p.start_ticks == start_ticks)
            {
                self.table.upsert(p);
                known = true;
            }
        }
        let brief = if known { self.brief(h.pid) } else { None };
        let mut process = match brief {
            Some(b) => (*b).clone(),
            None => Process {
                pid: i32::try_from(h.pid).ok(),
                uid: Some(self.host.process_uid(h.pid, start_ticks)),
                ..Process::default()
            },
        };
        process.name = Some(h.comm.clone());
        process.tid = i32::try_from(h.tid).ok();
        let (parent, ancestry) = self.lineage(h.pid);
        process.parent_process = parent;
        process.ancestry = ancestry;
        process
    }

    /// The actor of an event caused by the record's process (read from /proc if the
    /// table missed it).
    fn actor_for(&mut self, h: &RawHeader) -> Actor {
        let process = self.subject(h, true);
        Actor {
            user: process.user.clone(),
            process: Some(Shared::new(process)),
            ..Actor::default()
        }
    }

    /// A process object for a pid that is the target of an action (ptrace, injection).
    fn target_process(&mut self, pid: u32) -> Process {
        let info = self.table.get(pid).cloned().or_else(|| self.read_proc(pid));
        match info {
            Some(p) => self.process_from_table(&p),
            None => Process {
                pid: i32::try_from(pid).ok(),
                ..Process::default()
            },
        }
    }

    fn header_time(&self, h: &RawHeader) -> i64 {
        self.host.epoch_ms(h.ktime)
    }

    /// Converts one record and hands the events it makes to `sink` (none for a record
    /// that is filtered out or held back); returns how many.
    ///
    /// Fork coalescing (`coalesce_fork_ms` > 0): a fork is held back until its child
    /// does something. If that is an exec, the two are reported once, as the exec's
    /// event with launch type `Spawn` (OCSF: both steps of Unix process creation in one
    /// event; the process's `created_time` is the fork's). If it is anything else (an
    /// exit, a syscall), the fork is reported first, as `Fork`. A fork whose child does
    /// nothing for `coalesce_fork_ms` is reported by [`Converter::expire_forks`]. The
    /// process table learns of every fork at once, so lineage never waits.
    pub fn convert(&mut self, record: Record, sink: &mut dyn FnMut(OcsfEvent)) -> usize {
        let pid = match &record {
            Record::Exec(e) => e.header.pid,
            Record::Fork(f) => f.header.pid,
            Record::Exit(x) => x.header.pid,
            Record::Syscall(s) => s.header.pid,
        };
        // A held fork: folded into its child's exec, released before anything else.
        let (spawned, mut n) = if matches!(record, Record::Exec(_)) {
            (self.pending_forks.remove(&pid).is_some(), 0)
        } else {
            (false, self.release_fork(pid, sink))
        };
        let excluded = std::sync::Arc::clone(&self.file_excludes);
        let mut emit = |ev: OcsfEvent| {
            if !excluded.is_empty() && file_excluded(&ev, &excluded) {
                return;
            }
            sink(ev);
            n += 1;
        };
        match record {
            Record::Exec(e) => {
                let closed = self
                    .open_writes
                    .take_closed(pid, |w| e.fd_open(w.fd).map_or(w.cloexec, |open| !open));
                for w in closed {
                    emit(self.implicit_close(&e.header, w, "exec"));
                }
                if let Some(ev) = self.exec(*e, spawned) {
                    emit(ev);
                }
            }
            Record::Fork(f) => {
                self.track_fork(&f);
                if self.config.coalesce_fork_ms == 0
                    || self.pending_forks.len() >= PENDING_FORKS_MAX
                {
                    emit(self.fork_event(f));
                } else {
                    self.pending_forks.insert(pid, (f, Instant::now()));
                }
            }
            Record::Exit(x) => {
                for w in self.open_writes.take_all(pid) {
                    emit(self.implicit_close(&x.header, w, "exit"));
                }
                emit(self.exit(x));
            }
            Record::Syscall(s) => {
                if let Some(ev) = self.syscall(*s) {
                    emit(ev);
                }
            }
        }
        n
    }

    /// The close of a file open for writing that the process closed by exiting or
    /// exec'ing (`closed_by`), not by `close(2)`.
    fn implicit_close(
        &mut self,
        h: &RawHeader,
        w: open_writes::OpenWrite,
        closed_by: &'static str,
    ) -> OcsfEvent {
        let mut x = Map::new();
        x.insert("close_write".into(), json!(true));
        x.insert("closed_by".into(), json!(closed_by));
        x.insert("fd".into(), json!(w.fd));
        self.file_event(h, file_activity::UPDATE, file_of(&w.path), x)
    }

    /// Reports the fork of `pid` if it is held back (the process is about to be seen
    /// doing something other than an exec); returns how many events (0 or 1).
    pub fn release_fork(&mut self, pid: u32, sink: &mut dyn FnMut(OcsfEvent)) -> usize {
        match self.pending_forks.remove(&pid) {
            Some((fork, _)) => {
                sink(self.fork_event(fork));
                1
            }
            None => 0,
        }
    }

    /// Reports the held-back forks whose child did nothing for `coalesce_fork_ms` (all
    /// of them when `all`, as when the sensor stops), oldest first; returns how many.
    pub fn expire_forks(&mut self, all: bool, sink: &mut dyn FnMut(OcsfEvent)) -> usize {
        if self.pending_forks.is_empty() {
            return 0;
        }
        let hold = Duration::from_millis(self.config.coalesce_fork_ms);
        let mut due: Vec<u32> = self
            .pending_forks
            .iter()
            .filter(|(_, (_, since))| all || since.elapsed() >= hold)
            .map(|(&pid, _)| pid)
            .collect();
        due.sort_by_key(|pid| self.pending_forks[pid].0.header.ktime);
        for pid in &due {
            if let Some((fork, _)) = self.pending_forks.remove(pid) {
                sink(self.fork_event(fork));
            }
        }
        due.len()
    }

    fn exec(&mut self, e: RawExec, spawned: bool) -> Option<OcsfEvent> {
        let h = &e.header;
        let start_ticks = ticks(h.start_boottime);
        let cmdline = join_argv(&e.argv);
        // A process re-parented between its fork and this exec (its parent exited
        // first: a double fork) keeps the parent that forked it, for its lineage and
        // story; the kernel's real parent is init by now.
        let ppid = self
            .table
            .get(h.pid)
            .filter(|p| p.start_ticks == start_ticks)
            .map_or(h.ppid, |p| p.ppid);
        // The table learns of the exec even when the event itself is excluded.
        self.table.upsert(ProcInfo {
            pid: h.pid,
            ppid,
            start_ticks,
            exe: e.exe.clone(),
            cmdline: cmdline.clone(),
            uid: e.creds.uid,
            exited: None,
            live_children: 0,
            views: Views::default(),
        });
        if self
            .config
            .exclude_exe_prefixes
            .iter()
            .any(|p| e.exe.starts_with(p.as_str()))
        {
            return None;
        }
        let mut exe = file_of(&e.exe);
        exe.uid = Some(format!("{}:{}", user_dev(e.exe_dev), e.exe_ino));
        if e.exe_mtime_sec != 0 {
            exe.modified_time = mtime_ms(e.exe_mtime_sec, e.exe_mtime_nsec);
        }
        if e.flags & abi::EXEC_EXE_UNLINKED != 0 {
            exe.is_deleted = Some(true);
        }
        if self.config.hash_executables {
            let key = FileKey {
                dev: user_dev(e.exe_dev),
                ino: e.exe_ino,
                mtime_sec: e.exe_mtime_sec,
                mtime_nsec: e.exe_mtime_nsec,
            };
            let paths = || [format!("/proc/{}/exe", h.pid), e.exe.clone()];
            if let Some(sha) = self.hashes.sha256(key, paths) {
                exe.hashes = vec![Fingerprint {
                    algorithm_id: hash_algorithm::SHA256,
                    algorithm: Some(hash_algorithm::name(hash_algorithm::SHA256).into()),
                    value: sha,
                }];
            }
        }
        let mut xattr = creds_xattributes(&e.creds);
        xattr.filename = Some(e.filename);
        xattr.cgroup_id = Some(h.cgroup_id);
        let (cgroup, container) = match self.cgroups.lookup(h.cgroup_id, h.pid) {
            Some((path, container)) => (Some(path.clone()), container.clone()),
            None => (None, None),
        };
        xattr.cgroup = cgroup;
        for (bit, name) in [
            (abi::EXEC_ARGV_TRUNCATED, "argv_truncated"),
            (abi::EXEC_EXE_TRUNCATED, "exe_path_truncated"),
            (abi::EXEC_CWD_TRUNCATED, "cwd_truncated"),
            (abi::EXEC_ARGV_FAULT, "argv_unreadable"),
            (abi::EXEC_EXE_UNLINKED, "fileless"),
        ] {
            if e.flags & bit != 0 {
                xattr.flags.push(Text::Borrowed(name));
            }
        }
        let (parent, ancestry) = self.lineage(h.pid);
        let process = Process {
            pid: i32::try_from(h.pid).ok(),
            tid: i32::try_from(e.old_pid).ok(),
            uid: Some(self.host.process_uid(h.pid, start_ticks)),
            name: Some(h.comm.clone()),
            cmd_line: Some(cmdline),
            file: Some(exe),
            parent_process: parent.clone(),
            ancestry,
            user: Some(self.user(e.creds.uid)),
            working_directory: Some(e.cwd.clone()),
            created_time: Some(self.host.epoch_ms(h.start_boottime)),
            session: Some(Session {
                uid: (e.creds.sessionid != u32::MAX).then(|| e.creds.sessionid.to_string()),
                terminal: (!e.tty.is_empty()).then(|| e.tty.clone()),
                ..Session::default()
            })
            .filter(|s| s.uid.is_some() || s.terminal.is_some()),
            xattributes: Some(xattr),
            ..Process::default()
        };
        let in_container = container.is_some();
        let mut process = process;
        process.container = container;
        let mut ev = ProcessActivity::new(
            process_activity::LAUNCH,
            self.header_time(h),
            FEATURE,
            process,
        );
        if in_container {
            ev.metadata.profiles.push("container".into());
        }
        let launch = if spawned {
            launch_type::SPAWN
        } else {
            launch_type::EXEC
        };
        ev.launch_type_id = Some(launch);
        ev.launch_type = Some(launch_type::name(launch).into());
        ev.actor = Some(launcher(parent, ppid));
        ev.device = Some(self.device.clone());
        Some(ev.into())
    }

    /// The table learns of a new process: a copy of its parent's image.
    fn track_fork(&mut self, f: &RawFork) {
        let h = &f.header;
        let start_ticks = ticks(h.start_boottime);
        let (exe, cmdline) = self
            .table
            .get(h.ppid)
            .map(|p| (p.exe.clone(), p.cmdline.clone()))
            .unwrap_or_default();
        self.table.forked(ProcInfo {
            pid: h.pid,
            ppid: h.ppid,
            start_ticks,
            exe,
            cmdline,
            uid: f.creds.uid,
            exited: None,
            views: Views::default(),
            live_children: 0,
        });
    }

    /// The `Fork` event of a fork the table already knows ([`Converter::track_fork`]).
    fn fork_event(&mut self, f: RawFork) -> OcsfEvent {
        let h = &f.header;
        let start_ticks = ticks(h.start_boottime);
        let known = self
            .table
            .get(h.pid)
            .is_some_and(|p| p.start_ticks == start_ticks);
        let mut child = match known.then(|| self.brief(h.pid)).flatten() {
            Some(b) => (*b).clone(),
            None => Process {
                pid: i32::try_from(h.pid).ok(),
                uid: Some(self.host.process_uid(h.pid, start_ticks)),
                ..Process::default()
            },
        };
        let (parent, ancestry) = self.lineage(h.pid);
        child.name = Some(h.comm.clone());
        child.created_time = Some(self.host.epoch_ms(h.start_boottime));
        child.parent_process = parent.clone();
        child.ancestry = ancestry;
        child.xattributes = Some(creds_xattributes(&f.creds));
        let mut ev = ProcessActivity::new(
            process_activity::LAUNCH,
            self.header_time(h),
            FEATURE,
            child,
        );
        ev.launch_type_id = Some(launch_type::FORK);
        ev.launch_type = Some(launch_type::name(launch_type::FORK).into());
        ev.actor = Some(launcher(parent, h.ppid));
        ev.device = Some(self.device.clone());
        ev.into()
    }

    fn exit(&mut self, x: RawExit) -> OcsfEvent {
        let h = &x.header;
        let start_ticks = ticks(h.start_boottime);
        // The process is gone: what the table knows is all there is.
        let mut process = self.subject(h, false);
        let time = self.header_time(h);
        process.terminated_time = Some(time);
        // The actor is the exiting process itself, without the lineage `process` has.
        let known = self
            .table
            .get(h.pid)
            .is_some_and(|p| p.start_ticks == start_ticks);
        let actor = known
            .then(|| self.brief(h.pid))
            .flatten()
            .unwrap_or_else(|| {
                Shared::new(Process {
                    pid: process.pid,
                    uid: process.uid.clone(),
                    name: process.name.clone(),
                    ..Process::default()
                })
            });
        self.table.exited(h.pid, start_ticks);
        let status = x.exit_code;
        let signal = status & 0x7f;
        let code = (status >> 8) & 0xff;
        let mut ev = ProcessActivity::new(process_activity::TERMINATE, time, FEATURE, process);
        if signal == 0 {
            ev.exit_code = i32::try_from(code).ok();
        } else {
            ev.status_detail = Some(format!("killed by signal {signal}"));
            ev.process.xattributes = Some(ProcessXattributes {
                signal: i32::try_from(signal).ok(),
                core_dumped: (status & 0x80 != 0).then_some(true),
                ..ProcessXattributes::default()
            });
        }
        ev.actor = Some(Actor {
            user: actor.user.clone(),
            process: Some(actor),
            ..Actor::default()
        });
        ev.device = Some(self.device.clone());
        ev.into()
    }

    /// An Event Log Activity about the sensor itself: `activity_id` start, stop, or other
    /// for lost records (`Drop`, with the count) ([`event_log_activity`]).
    pub fn sensor_event(
        &self,
        activity_id: i32,
        provider: &str,
        detail: String,
        count: Option<u64>,
    ) -> OcsfEvent {
        let now = vigil_event::time::now_ms();
        let mut ev = EventLogActivity::new(activity_id, now, FEATURE);
        if activity_id == event_log_activity::OTHER {
            ev.activity_name = Some("Drop".into());
            ev.severity_id = severity::HIGH;
            ev.status_id = Some(status::FAILURE);
        } else {
            ev.status_id = Some(status::SUCCESS);
        }
        // OCSF's `count` is a 32-bit integer: a larger count saturates (the detail text
        // carries the exact number).
        ev.count = count.map(saturate_count);
        ev.log_name = Some("vigil-sensor".into());
        ev.log_provider = Some(provider.to_string());
        ev.status_detail = Some(detail);
        ev.actor = Some(Actor {
            process: Some(Shared::new(Process {
                pid: i32::try_from(std::process::id()).ok(),
                name: Some("vigil".into()),
                ..Process::default()
            })),
            ..Actor::default()
        });
        ev.device = Some(self.device.clone());
        ev.into()
    }

    /// The sensor's `Statistics` event (Event Log Activity, activity Other): its counters
    /// so far, in `unmapped`, and the records lost since the previous one in `count`.
    pub fn stats_event(&self, provider: &str, stats: &Stats, lost_since: u64) -> OcsfEvent {
        let mut ev = self.sensor_event(
            event_log_activity::OTHER,
            provider,
            format!(
                "{} records received, {} lost ({lost_since} since the last report), {} malformed; \
                 {} events written; {} processes tracked",
                stats.received,
                stats.lost(),
                stats.malformed,
                stats.emitted,
                self.table.len()
            ),
            Some(lost_since),
        );
        if let OcsfEvent::EventLog(e) = &mut ev {
            e.activity_name = Some("Statistics".into());
            e.type_name = Some("Event Log Activity: Statistics".into());
            e.severity_id = if lost_since > 0 {
                severity::MEDIUM
            } else {
                severity::INFORMATIONAL
            };
            e.severity = Some(severity::name(e.severity_id).into());
            e.status_id = Some(status::SUCCESS);
            e.status = Some(status::name(status::SUCCESS).into());
            let lost_by_kind: Map<String, serde_json::Value> = stats
                .lost_by_kind
                .iter()
                .enumerate()
                .filter(|(_, &n)| n > 0)
                .map(|(k, &n)| {
                    let kind = u32::try_from(k).unwrap_or(u32::MAX);
                    (abi::kind_name(kind).to_string(), json!(n))
                })
                .collect();
            let mut m = Map::new();
            m.insert("received".into(), json!(stats.received));
            m.insert("lost".into(), json!(stats.lost()));
            m.insert("lost_by_kind".into(), json!(lost_by_kind));
            m.insert("malformed".into(), json!(stats.malformed));
            m.insert("emitted".into(), json!(stats.emitted));
            m.insert("processes".into(), json!(self.table.len()));
            e.unmapped = Some(m);
        }
        ev
    }

    /// A file closed after being written (the fallback sensor's fanotify event).
    pub fn file_closed_after_write(&mut self, h: &RawHeader, path: &str) -> OcsfEvent {
        let mut file = file_of(path);
        let mut x = Map::new();
        x.insert("close_write".into(), json!(true));
        file.xattributes = Some(x);
        let mut ev = FileActivity::new(file_activity::UPDATE, self.header_time(h), FEATURE, file);
        ev.actor = Some(self.actor_for(h));
        ev.device = Some(self.device.clone());
        ev.into()
    }

    /// Periodic housekeeping.
    pub fn sweep(&mut self) {
        self.table.sweep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{nr, RawSock};

    /// A converter that does not hash (random records name no real executables).
    fn converter() -> Converter {
        let config = SensorConfig {
            hash_executables: false,
            ..SensorConfig::default()
        };
        Converter::new(Host::detect(), config)
    }

    /// Random records of every kind, with boundary values (times, ids, lengths, flags,
    /// arguments), and mutated records that still decode, convert without panicking
    /// into events that serialize.
    #[test]
    fn random_records_convert_without_panicking() {
        use crate::abi::testgen::{encode, random_record};
        let mut rng = crate::fuzz::Rng::for_test(7);
        let mut conv = converter();
        let mut events = 0usize;
        for i in 0..crate::fuzz::iterations() {
            let record = random_record(&mut rng);
            let bytes = encode(&record);
            let record = if rng.one_in(4) {
                match abi::decode(&rng.mutate(&bytes)) {
                    Ok(r) => r,
                    Err(_) => record,
                }
            } else {
                record
            };
            crate::fuzz::no_panic("Converter::convert", i, &bytes, || {
                let mut sink = |ev: OcsfEvent| {
                    serde_json::to_string(&ev).expect("an event serializes");
                    events += 1;
                };
                conv.convert(record, &mut sink);
                if rng.one_in(64) {
                    conv.expire_forks(true, &mut sink);
                }
            });
        }
        assert!(events > crate::fuzz::iterations() / 2, "{events} events");
    }

    /// An exec record of a process that is not there, for `pid` and with `mtime`.
    fn exec_record(pid: u32, mtime_sec: u64) -> Record {
        Record::Exec(Box::new(RawExec {
            header: RawHeader::bare(pid, 1, 1_000_000),
            creds: RawCreds::default(),
            exe_ino: 1,
            exe_dev: 1,
            exe_mtime_sec: mtime_sec,
            exe_mtime_nsec: 999_999_999,
            exe_nlink: 1,
            flags: 0,
            old_pid: pid,
            open_fds_max: 0,
            open_fds: [0; abi::OPEN_FDS_WORDS],
            exe: "/usr/bin/x".into(),
            cwd: "/".into(),
            filename: "/usr/bin/x".into(),
            tty: String::new(),
            argv: vec!["x".into()],
        }))
    }

    /// Regression: the executable's mtime in ms was computed in u64, which overflowed
    /// (a panic in debug builds, a wrong time in release) for an mtime before 1970 or
    /// past what ms hold.
    #[test]
    fn exec_with_an_mtime_before_1970_or_past_i64_ms_converts() {
        let mut conv = converter();
        for (sec, want) in [
            (1_700_000_000u64, Some(1_700_000_000_999i64)),
            ((-86_400i64) as u64, Some(-86_400_000 + 999)),
            (u64::MAX, Some(-1000 + 999)),
            (1 << 62, None),
            (i64::MAX as u64, None),
        ] {
            let mut events = Vec::new();
            conv.convert(exec_record(1 << 23, sec), &mut |e| events.push(e.to_json()));
            let [ev] = events.as_slice() else {
                panic!("one exec event: {events:?}")
            };
            let got = ev["process"]["file"]["modified_time"].as_i64();
            assert_eq!(got, want, "mtime {sec}");
        }
    }

    /// A syscall record of `nr` by a process that is not there.
    fn syscall_record(nr: i64, sock: Option<RawSock>, data: &[u8]) -> Record {
        Record::Syscall(Box::new(abi::RawSyscall {
            header: RawHeader::bare(1 << 23, 1, 1_000_000),
            nr,
            flags: if sock.is_some() { abi::SYS_SOCK } else { 0 },
            ret: 0,
            args: [0; 6],
            str0: String::new(),
            str1: String::new(),
            addr: Vec::new(),
            data: data.to_vec(),
            sock,
            base: None,
        }))
    }

    /// A syscall record that does not say what its call needs is counted as malformed,
    /// not dropped silently; a DNS message that only asks nothing is not malformed.
    #[test]
    fn malformed_syscall_records_are_counted() {
        let mut conv = converter();
        let mut events = 0;
        let mut convert = |conv: &mut Converter, r| conv.convert(r, &mut |_| events += 1);
        let udp = RawSock {
            family: 2,
            protocol: 17,
            kind: 2,
            lport: 40000,
            rport: 53,
            laddr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            raddr: [127, 0, 0, 53, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        };
        let query = [
            0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1,
        ];
        assert_eq!(
            convert(
                &mut conv,
                syscall_record(nr::SENDTO, Some(udp.clone()), &query)
            ),
            1
        );
        assert_eq!(conv.malformed(), 0);
        // Unknown call, socket call without its socket, truncated DNS question.
        assert_eq!(convert(&mut conv, syscall_record(4000, None, &[])), 0);
        assert_eq!(conv.malformed(), 1);
        assert_eq!(
            convert(&mut conv, syscall_record(nr::CONNECT, None, &[])),
            0
        );
        assert_eq!(conv.malformed(), 2);
        let cut = syscall_record(nr::SENDTO, Some(udp.clone()), &query[..15]);
        assert_eq!(convert(&mut conv, cut), 0);
        assert_eq!(conv.malformed(), 3);
        // A response is no query, and not malformed either.
        let mut response = query;
        response[2] |= 0x80;
        assert_eq!(
            convert(&mut conv, syscall_record(nr::SENDTO, Some(udp), &response)),
            0
        );
        assert_eq!(conv.malformed(), 3);
        assert_eq!(events, 1);
    }

    /// Regression: a count above `i32::MAX` was dropped from the event (`count` absent), so
    /// a huge loss looked like none.
    #[test]
    fn loss_counts_above_i32_max_saturate() {
        let conv = converter();
        let big = u64::from(u32::MAX) + 7;
        for (lost, count) in [
            (0, 0),
            (5, 5),
            (i32::MAX as u64, i32::MAX),
            (i32::MAX as u64 + 1, i32::MAX),
            (big, i32::MAX),
            (u64::MAX, i32::MAX),
        ] {
            let ev = conv
                .sensor_event(
                    event_log_activity::OTHER,
                    "ebpf",
                    format!("{lost} lost"),
                    Some(lost),
                )
                .to_json();
            assert_eq!(ev["count"], count, "{lost}");
            assert_eq!(
                ev["status_detail"],
                format!("{lost} lost"),
                "exact in the text"
            );
            let stats = Stats {
                lost_by_kind: vec![lost],
                ..Stats::default()
            };
            let ev = conv.stats_event("ebpf", &stats, lost).to_json();
            assert_eq!(ev["count"], count, "{lost}");
            assert_eq!(ev["unmapped"]["lost"], lost, "exact in unmapped");
        }
    }
}
