//! Syscall records to OCSF: file, network, DNS, process-access, identity and
//! kernel-extension events.
//!
//! [`SYSCALLS`] has one row per watched syscall: its number, its name, the OCSF class
//! and activities of its event, and how its record is converted ([`Conv`], with where
//! its arguments are). Watching one more syscall whose event is like an existing one's
//! is one row here (and its capture on the kernel side); see `notes/sensor.md`.

use super::ids::{
    dns_activity, file_activity as fa, injection_type, module_activity, network_activity as na,
    process_activity as pa,
};
use super::open_writes::O_CLOEXEC;
use super::{dns, file_of, Converter, FEATURE};
use crate::abi::{self, nr, RawHeader, RawSock, RawSyscall};
use serde_json::{json, Map, Value as Json};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use vigil_event::model::OcsfClass;
use vigil_event::model::*;
use vigil_event::OcsfEvent;

const AT_FDCWD: i32 = -100;
const AT_REMOVEDIR: u64 = 0x200;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const EINPROGRESS: i64 = -115;
const ECONNREFUSED: i64 = -111;

/// The name of the errno of a failed call's result (`-errno`); unsigned_abs: a result
/// of `i64::MIN` has no negation.
fn errno_name(ret: i64) -> String {
    match ret.unsigned_abs() {
        1 => "EPERM".into(),
        2 => "ENOENT".into(),
        13 => "EACCES".into(),
        22 => "EINVAL".into(),
        101 => "ENETUNREACH".into(),
        110 => "ETIMEDOUT".into(),
        111 => "ECONNREFUSED".into(),
        113 => "EHOSTUNREACH".into(),
        n => format!("errno {n}"),
    }
}

fn ip(family: u16, bytes: &[u8; 16]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        AF_INET6 => {
            let v6 = Ipv6Addr::from(*bytes);
            // Report IPv4-mapped addresses as the IPv4 address they are.
            Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
        }
        _ => None,
    }
}

/// A socket address as the user passed it: family, port, address.
fn user_sockaddr(addr: &[u8]) -> Option<(IpAddr, u16)> {
    let family = u16::from_ne_bytes([*addr.first()?, *addr.get(1)?]);
    let port = u16::from_be_bytes([*addr.get(2)?, *addr.get(3)?]);
    match family {
        AF_INET => {
            let a = addr.get(4..8)?;
            Some((IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])), port))
        }
        AF_INET6 => {
            let a: [u8; 16] = addr.get(8..24)?.try_into().ok()?;
            Some((IpAddr::V6(Ipv6Addr::from(a)), port))
        }
        _ => None,
    }
}

fn endpoint(ip: Option<IpAddr>, port: u16) -> Option<NetworkEndpoint> {
    let ip = ip?;
    Some(NetworkEndpoint {
        ip: Some(ip.to_string()),
        port: Some(i32::from(port)),
        ..NetworkEndpoint::default()
    })
}

fn connection(sock: &RawSock, direction_id: i32) -> NetworkConnectionInfo {
    let (name, ver) = match (sock.protocol, sock.family) {
        (6, AF_INET6) => ("tcp", protocol_version::IPV6),
        (6, _) => ("tcp", protocol_version::IPV4),
        (17, AF_INET6) => ("udp", protocol_version::IPV6),
        (17, _) => ("udp", protocol_version::IPV4),
        (_, AF_INET6) => ("ip", protocol_version::IPV6),
        _ => ("ip", protocol_version::IPV4),
    };
    NetworkConnectionInfo {
        direction_id,
        direction: Some(direction::name(direction_id).into()),
        protocol_name: Some(name.into()),
        protocol_num: Some(i32::from(sock.protocol)),
        protocol_ver_id: Some(ver),
        protocol_ver: Some(protocol_version::name(ver).into()),
        ..NetworkConnectionInfo::default()
    }
}

fn is_local(addr: Option<IpAddr>) -> bool {
    addr.is_some_and(|a| a.is_loopback())
}

/// One watched syscall: how its record becomes an event.
#[derive(Debug, Clone, Copy)]
pub struct Watched {
    /// Its number on this architecture (`nr::*`, from `bpf/syscalls.h`; -1: none here).
    pub nr: i64,
    /// Its name (`NR_<name>` in `bpf/syscalls.h`).
    pub name: &'static str,
    /// The `class_uid` of its event.
    pub class: i32,
    /// The `activity_id`s its event can have (which one can depend on the result).
    pub activities: &'static [i32],
    /// How its record is converted.
    pub conv: Conv,
}

/// How a syscall record is converted, with where the call's arguments are (`usize`: an
/// index into the record's `args`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conv {
    /// `close(2)` of a file open for writing: File Update (`close_write`).
    Close,
    /// An open for writing: File Create or Open; `flags`: the open flags, if an argument.
    Open {
        /// The argument with the open flags.
        flags: Option<usize>,
    },
    /// A rename: File Rename, the target in `file_result`; `dirs`: the old and new
    /// directory descriptors, for the `*at` forms.
    Rename {
        /// The old and new `dirfd` arguments.
        dirs: Option<(usize, usize)>,
    },
    /// An unlink or rmdir: File Delete.
    Delete {
        /// The `dirfd` argument.
        dir: Option<usize>,
        /// Whether the path is a folder.
        folder: Folder,
    },
    /// A mode change: File Set Attributes.
    Chmod {
        /// The file.
        target: Target,
        /// The argument with the mode.
        mode: usize,
    },
    /// An owner change: File Set Security.
    Chown {
        /// The file.
        target: Target,
        /// The argument with the uid.
        uid: usize,
        /// The argument with the gid.
        gid: usize,
    },
    /// A symbolic or hard link: File Create of the link. The kernel records the new
    /// path's directory (`base`) relative to `base_dir` (`symlinkat`'s newdirfd,
    /// `linkat`'s olddirfd); a hard link's target is relative to `base_dir` too.
    Link {
        /// A symbolic link (else a hard link).
        symbolic: bool,
        /// The `dirfd` argument of the new link's path.
        link_dir: Option<usize>,
        /// The `dirfd` argument the kernel recorded the base of.
        base_dir: Option<usize>,
    },
    /// `memfd_create(2)`: File Create of `memfd:<name>`.
    Memfd,
    /// `mount(2)`: File Mount of the target.
    Mount,
    /// A TCP/UDP socket call: Network Open, Fail, Refuse or Listen.
    Socket(SocketCall),
    /// A UDP send to port 53: DNS Query.
    DnsSend,
    /// `ptrace(2)`: Process Open of the tracee.
    Ptrace,
    /// `process_vm_readv(2)`: Process Open of the process read.
    VmRead,
    /// `process_vm_writev(2)`: Process Inject.
    VmWrite,
    /// A set*id call: Process Set User ID, with the first `ids` arguments.
    SetIds {
        /// How many id arguments.
        ids: usize,
    },
    /// `capset(2)`: Process Other (`Set Capabilities`).
    Capset,
    /// `bpf(BPF_PROG_LOAD)`: Module Load of a BPF program.
    BpfLoad,
    /// A kernel module load: Module Load; `from_file`: `finit_module`, whose file the
    /// kernel recorded.
    ModuleLoad {
        /// The module came from a file descriptor.
        from_file: bool,
    },
}

#[cfg(test)]
impl Conv {
    /// Whether the conversion reads what the kernel side captures at the call's exit
    /// (a path, a string, the socket, a payload), not only the call's arguments and
    /// result.
    pub fn reads_captured_data(&self) -> bool {
        !matches!(
            self,
            Conv::Ptrace
                | Conv::VmRead
                | Conv::VmWrite
                | Conv::SetIds { .. }
                | Conv::Capset
                | Conv::ModuleLoad { from_file: false }
        )
    }
}

/// The file a call acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A descriptor (argument 0): the kernel recorded its path.
    Fd,
    /// A path argument, relative to this `dirfd` argument (or the cwd).
    Path(Option<usize>),
}

/// Whether a deleted path is a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folder {
    /// Never (`unlink`).
    No,
    /// Always (`rmdir`).
    Yes,
    /// When this argument has `AT_REMOVEDIR` (`unlinkat`).
    IfRemoveDir(usize),
}

/// Which socket call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketCall {
    /// `connect(2)`: from the local end to the remote one.
    Connect,
    /// `accept(2)`, `accept4(2)`: from the peer to the local end.
    Accept,
    /// `listen(2)`.
    Listen,
}

const FILE: i32 = FileActivity::CLASS_UID;
const NET: i32 = NetworkActivity::CLASS_UID;
const DNS: i32 = DnsActivity::CLASS_UID;
const PROC: i32 = ProcessActivity::CLASS_UID;
const MODULE: i32 = ModuleActivity::CLASS_UID;

const fn row(
    nr: i64,
    name: &'static str,
    class: i32,
    activities: &'static [i32],
    conv: Conv,
) -> Watched {
    Watched {
        nr,
        name,
        class,
        activities,
        conv,
    }
}

/// An open's activities: Create when it created the file, else Open.
const OPENED: &[i32] = &[fa::CREATE, fa::OPEN];
/// Every watched syscall, one row each: number, name, class, activities, conversion
/// (with its arguments: `Some(i)` names `args[i]`; a path without a `dirfd` argument is
/// relative to the cwd).
#[rustfmt::skip]
pub const SYSCALLS: &[Watched] = &[
    // Files.
    row(nr::CLOSE,        "close",        FILE, &[fa::UPDATE], Conv::Close),
    row(nr::OPEN,         "open",         FILE, OPENED, Conv::Open { flags: Some(1) }),
    row(nr::OPENAT,       "openat",       FILE, OPENED, Conv::Open { flags: Some(2) }),
    row(nr::CREAT,        "creat",        FILE, OPENED, Conv::Open { flags: None }),
    // The kernel side puts openat2's flags (of its struct open_how) in args[2].
    row(nr::OPENAT2,      "openat2",      FILE, OPENED, Conv::Open { flags: Some(2) }),
    row(nr::RENAME,       "rename",       FILE, &[fa::RENAME], Conv::Rename { dirs: None }),
    row(nr::RENAMEAT,     "renameat",     FILE, &[fa::RENAME], Conv::Rename { dirs: Some((0, 2)) }),
    row(nr::RENAMEAT2,    "renameat2",    FILE, &[fa::RENAME], Conv::Rename { dirs: Some((0, 2)) }),
    row(nr::UNLINK,       "unlink",       FILE, &[fa::DELETE], Conv::Delete { dir: None, folder: Folder::No }),
    row(nr::UNLINKAT,     "unlinkat",     FILE, &[fa::DELETE], Conv::Delete { dir: Some(0), folder: Folder::IfRemoveDir(2) }),
    row(nr::RMDIR,        "rmdir",        FILE, &[fa::DELETE], Conv::Delete { dir: None, folder: Folder::Yes }),
    row(nr::CHMOD,        "chmod",        FILE, &[fa::SET_ATTRIBUTES], Conv::Chmod { target: Target::Path(None), mode: 1 }),
    row(nr::FCHMOD,       "fchmod",       FILE, &[fa::SET_ATTRIBUTES], Conv::Chmod { target: Target::Fd, mode: 1 }),
    row(nr::FCHMODAT,     "fchmodat",     FILE, &[fa::SET_ATTRIBUTES], Conv::Chmod { target: Target::Path(Some(0)), mode: 2 }),
    row(nr::FCHMODAT2,    "fchmodat2",    FILE, &[fa::SET_ATTRIBUTES], Conv::Chmod { target: Target::Path(Some(0)), mode: 2 }),
    row(nr::CHOWN,        "chown",        FILE, &[fa::SET_SECURITY], Conv::Chown { target: Target::Path(None), uid: 1, gid: 2 }),
    row(nr::LCHOWN,       "lchown",       FILE, &[fa::SET_SECURITY], Conv::Chown { target: Target::Path(None), uid: 1, gid: 2 }),
    row(nr::FCHOWN,       "fchown",       FILE, &[fa::SET_SECURITY], Conv::Chown { target: Target::Fd, uid: 1, gid: 2 }),
    row(nr::FCHOWNAT,     "fchownat",     FILE, &[fa::SET_SECURITY], Conv::Chown { target: Target::Path(Some(0)), uid: 2, gid: 3 }),
    row(nr::SYMLINK,      "symlink",      FILE, &[fa::CREATE], Conv::Link { symbolic: true, link_dir: None, base_dir: None }),
    row(nr::SYMLINKAT,    "symlinkat",    FILE, &[fa::CREATE], Conv::Link { symbolic: true, link_dir: Some(1), base_dir: Some(1) }),
    row(nr::LINK,         "link",         FILE, &[fa::CREATE], Conv::Link { symbolic: false, link_dir: None, base_dir: None }),
    row(nr::LINKAT,       "linkat",       FILE, &[fa::CREATE], Conv::Link { symbolic: false, link_dir: Some(2), base_dir: Some(0) }),
    row(nr::MEMFD_CREATE, "memfd_create", FILE, &[fa::CREATE], Conv::Memfd),
    row(nr::MOUNT,        "mount",        FILE, &[fa::MOUNT], Conv::Mount),
    // Network.
    row(nr::CONNECT,      "connect",      NET, &[na::OPEN, na::REFUSE, na::FAIL], Conv::Socket(SocketCall::Connect)),
    row(nr::ACCEPT,       "accept",       NET, &[na::OPEN], Conv::Socket(SocketCall::Accept)),
    row(nr::ACCEPT4,      "accept4",      NET, &[na::OPEN], Conv::Socket(SocketCall::Accept)),
    row(nr::LISTEN,       "listen",       NET, &[na::LISTEN], Conv::Socket(SocketCall::Listen)),
    row(nr::SENDTO,       "sendto",       DNS, &[dns_activity::QUERY], Conv::DnsSend),
    row(nr::SENDMSG,      "sendmsg",      DNS, &[dns_activity::QUERY], Conv::DnsSend),
    row(nr::SENDMMSG,     "sendmmsg",     DNS, &[dns_activity::QUERY], Conv::DnsSend),
    // Processes.
    row(nr::PTRACE,       "ptrace",       PROC, &[pa::OPEN], Conv::Ptrace),
    row(nr::PROCESS_VM_READV,  "process_vm_readv",  PROC, &[pa::OPEN], Conv::VmRead),
    row(nr::PROCESS_VM_WRITEV, "process_vm_writev", PROC, &[pa::INJECT], Conv::VmWrite),
    row(nr::SETUID,       "setuid",       PROC, &[pa::SET_USER_ID], Conv::SetIds { ids: 1 }),
    row(nr::SETGID,       "setgid",       PROC, &[pa::SET_USER_ID], Conv::SetIds { ids: 1 }),
    row(nr::SETREUID,     "setreuid",     PROC, &[pa::SET_USER_ID], Conv::SetIds { ids: 2 }),
    row(nr::SETREGID,     "setregid",     PROC, &[pa::SET_USER_ID], Conv::SetIds { ids: 2 }),
    row(nr::SETRESUID,    "setresuid",    PROC, &[pa::SET_USER_ID], Conv::SetIds { ids: 3 }),
    row(nr::SETRESGID,    "setresgid",    PROC, &[pa::SET_USER_ID], Conv::SetIds { ids: 3 }),
    row(nr::CAPSET,       "capset",       PROC, &[pa::OTHER], Conv::Capset),
    // Kernel extensions.
    row(nr::BPF,          "bpf",          MODULE, &[module_activity::LOAD], Conv::BpfLoad),
    row(nr::INIT_MODULE,  "init_module",  MODULE, &[module_activity::LOAD], Conv::ModuleLoad { from_file: false }),
    row(nr::FINIT_MODULE, "finit_module", MODULE, &[module_activity::LOAD], Conv::ModuleLoad { from_file: true }),
];

impl Watched {
    /// Whether `ev` is of the class and one of the activities this row lists.
    pub fn made(&self, ev: &OcsfEvent) -> bool {
        let activity = match ev {
            OcsfEvent::Process(e) => e.activity_id,
            OcsfEvent::File(e) => e.activity_id,
            OcsfEvent::Module(e) => e.activity_id,
            OcsfEvent::Network(e) => e.activity_id,
            OcsfEvent::Dns(e) => e.activity_id,
            _ => return false,
        };
        ev.class_uid() == self.class && self.activities.contains(&activity)
    }
}

/// The row of syscall `nr`, if it is watched.
pub fn watched(nr: i64) -> Option<&'static Watched> {
    SYSCALLS.iter().find(|w| w.nr == nr && nr >= 0)
}

impl Converter {
    /// Resolves a path a process passed relative to `dirfd` (or its cwd) to an absolute
    /// one: from the directory the kernel recorded (`base`, for the record's own dirfd),
    /// else through /proc while the process is alive. Returns the path and whether it
    /// could be resolved.
    fn resolve(
        &self,
        s: &RawSyscall,
        dirfd: Option<u64>,
        base_dirfd: Option<u64>,
        path: &str,
    ) -> (String, bool) {
        if path.starts_with('/') || path.is_empty() {
            return (path.to_string(), true);
        }
        let same_base = dirfd.map(|d| d as i32) == base_dirfd.map(|d| d as i32)
            || (dirfd.is_none_or(|d| d as i32 == AT_FDCWD)
                && base_dirfd.is_none_or(|d| d as i32 == AT_FDCWD));
        if let (Some(base), true) = (&s.base, same_base) {
            return (format!("{}/{path}", base.trim_end_matches('/')), true);
        }
        let pid = s.header.pid;
        let proc_base = match dirfd.map(|d| d as i32) {
            None | Some(AT_FDCWD) => format!("/proc/{pid}/cwd"),
            Some(fd) => format!("/proc/{pid}/fd/{fd}"),
        };
        match std::fs::read_link(&proc_base) {
            Ok(dir) => (
                format!("{}/{path}", dir.to_string_lossy().trim_end_matches('/')),
                true,
            ),
            Err(_) => (path.to_string(), false),
        }
    }

    pub(super) fn file_event(
        &mut self,
        h: &RawHeader,
        activity: i32,
        mut file: File,
        xattr: Map<String, Json>,
    ) -> OcsfEvent {
        if !xattr.is_empty() {
            file.xattributes = Some(xattr);
        }
        let mut ev = FileActivity::new(activity, self.header_time(h), FEATURE, file);
        ev.actor = Some(self.actor_for(h));
        ev.device = Some(self.device.clone());
        ev.into()
    }

    /// A user-supplied path, resolved, as a file object; notes unresolved ones.
    fn user_file(
        &self,
        s: &RawSyscall,
        dirfd: Option<u64>,
        base_dirfd: Option<u64>,
        path: &str,
        xattr: &mut Map<String, Json>,
    ) -> File {
        let (resolved, ok) = self.resolve(s, dirfd, base_dirfd, path);
        if !ok {
            xattr.insert("path_unresolved".into(), json!(true));
        }
        file_of(&resolved)
    }

    /// Converts a syscall record by its row of [`SYSCALLS`]; `None` for a call that
    /// turns out not to be reportable, or a record that is malformed (counted).
    pub(super) fn syscall(&mut self, s: RawSyscall) -> Option<OcsfEvent> {
        let Some(row) = watched(s.nr) else {
            self.note_malformed(&format_args!(
                "syscall record of call {} (pid {}), which this version does not watch",
                s.nr, s.header.pid
            ));
            return None;
        };
        let mut x = Map::new();
        if s.flags & abi::SYS_STR0_TRUNCATED != 0 {
            x.insert("path_truncated".into(), json!(true));
        }
        let a = s.args;
        let arg = |i: Option<usize>| i.map(|i| a[i]);
        let out = match row.conv {
            Conv::Close => {
                self.open_writes.closed(s.header.pid, a[0] as i32);
                x.insert("close_write".into(), json!(true));
                Some(self.file_event(&s.header, fa::UPDATE, file_of(&s.str0), x))
            }
            Conv::Open { flags } => self.open(&s, arg(flags).unwrap_or(0), x),
            Conv::Rename { dirs } => {
                let (old_dir, new_dir) = (arg(dirs.map(|d| d.0)), arg(dirs.map(|d| d.1)));
                Some(self.rename(&s, old_dir, new_dir, x))
            }
            Conv::Delete { dir, folder } => {
                let dir = arg(dir);
                let mut file = self.user_file(&s, dir, dir, &s.str0, &mut x);
                let is_folder = match folder {
                    Folder::No => false,
                    Folder::Yes => true,
                    Folder::IfRemoveDir(i) => a[i] & AT_REMOVEDIR != 0,
                };
                if is_folder {
                    file.type_id = file_type::FOLDER;
                    file.kind = Some(file_type::name(file_type::FOLDER).into());
                }
                Some(self.file_event(&s.header, fa::DELETE, file, x))
            }
            Conv::Chmod { target, mode } => {
                let file = self.target_file(&s, target, &mut x);
                Some(self.chmod(&s, file, a[mode], x))
            }
            Conv::Chown { target, uid, gid } => {
                let file = self.target_file(&s, target, &mut x);
                Some(self.chown(&s, file, a[uid], a[gid], x))
            }
            Conv::Link {
                symbolic,
                link_dir,
                base_dir,
            } => Some(self.link(&s, symbolic, arg(link_dir), arg(base_dir), x)),
            Conv::Memfd => {
                let name = format!("memfd:{}", s.str0);
                let mut file = file_of(&name);
                file.parent_folder = None;
                x.insert("memfd_flags".into(), json!(a[1]));
                Some(self.file_event(&s.header, fa::CREATE, file, x))
            }
            Conv::Mount => Some(self.mount(&s, x)),
            Conv::Socket(call) => self.socket_call(&s, call, x),
            Conv::DnsSend => self.dns_send(&s, row),
            Conv::Ptrace | Conv::VmRead | Conv::VmWrite => Some(self.process_access(&s, row, x)),
            Conv::SetIds { ids } => Some(self.identity(&s, row, ids, x)),
            Conv::Capset => Some(self.identity(&s, row, 0, x)),
            Conv::BpfLoad | Conv::ModuleLoad { .. } => Some(self.module_load(&s, row.conv)),
        };
        debug_assert!(
            out.as_ref().is_none_or(|ev| row.made(ev)),
            "{} made an event its row does not list: {out:?}",
            row.name
        );
        out
    }

    /// The file a chmod or chown acts on.
    fn target_file(&self, s: &RawSyscall, target: Target, x: &mut Map<String, Json>) -> File {
        match target {
            Target::Fd => file_of(&s.str0),
            Target::Path(dir) => {
                let dir = dir.map(|i| s.args[i]);
                self.user_file(s, dir, dir, &s.str0, x)
            }
        }
    }

    /// An open: one for writing, or a read-only one of a file on the watch list (the
    /// kernel side checks names only: `None` for a path the whole list does not match).
    fn open(&mut self, s: &RawSyscall, flags: u64, mut x: Map<String, Json>) -> Option<OcsfEvent> {
        let watched_read = s.flags & abi::SYS_WATCHED_READ != 0;
        if watched_read {
            // A process reading its own memory reads no one else's (as process_vm_readv
            // of the caller's own pid, which the kernel side drops).
            if !self.watch.matches(&s.str0) || own_proc_mem(&s.str0, s.header.pid) {
                return None;
            }
            // Read-only: the flags say so even when they are 0 (O_RDONLY).
            x.insert("open_flags".into(), json!(format!("{flags:#o}")));
            x.insert("watched_read".into(), json!(true));
        } else if flags != 0 {
            x.insert("open_flags".into(), json!(format!("{flags:#o}")));
        }
        if let (Ok(fd), false) = (i32::try_from(s.ret), watched_read) {
            self.open_writes
                .opened(s.header.pid, fd, &s.str0, flags & O_CLOEXEC != 0);
        }
        let activity = if s.flags & abi::SYS_FILE_CREATED != 0 {
            fa::CREATE
        } else {
            fa::OPEN
        };
        Some(self.file_event(&s.header, activity, file_of(&s.str0), x))
    }

    fn rename(
        &mut self,
        s: &RawSyscall,
        old_dir: Option<u64>,
        new_dir: Option<u64>,
        mut x: Map<String, Json>,
    ) -> OcsfEvent {
        let mut file = self.user_file(s, old_dir, old_dir, &s.str0, &mut x);
        let new = self.user_file(s, new_dir, old_dir, &s.str1, &mut x);
        file.xattributes = None;
        x.remove("path_truncated");
        let mut out = self.file_event(&s.header, fa::RENAME, file, x);
        if let OcsfEvent::File(f) = &mut out {
            f.file_result = Some(new);
        }
        out
    }

    fn chmod(
        &mut self,
        s: &RawSyscall,
        mut file: File,
        mode: u64,
        mut x: Map<String, Json>,
    ) -> OcsfEvent {
        let mode = (mode & 0o7777) as i32;
        file.attributes = Some(mode);
        x.insert("mode".into(), json!(format!("{mode:04o}")));
        if mode & 0o4000 != 0 {
            x.insert("setuid".into(), json!(true));
        }
        if mode & 0o2000 != 0 {
            x.insert("setgid".into(), json!(true));
        }
        self.file_event(&s.header, fa::SET_ATTRIBUTES, file, x)
    }

    fn chown(
        &mut self,
        s: &RawSyscall,
        mut file: File,
        uid: u64,
        gid: u64,
        mut x: Map<String, Json>,
    ) -> OcsfEvent {
        if uid as u32 != u32::MAX {
            file.owner = Some(User {
                uid: Some((uid as u32).to_string()),
                ..User::default()
            });
        }
        if gid as u32 != u32::MAX {
            x.insert("gid".into(), json!(gid as u32));
        }
        self.file_event(&s.header, fa::SET_SECURITY, file, x)
    }

    fn link(
        &mut self,
        s: &RawSyscall,
        symbolic: bool,
        link_dir: Option<u64>,
        base_dir: Option<u64>,
        mut x: Map<String, Json>,
    ) -> OcsfEvent {
        let mut link = self.user_file(s, link_dir, base_dir, &s.str1, &mut x);
        let target = if symbolic {
            // A symbolic link's target is stored as written.
            s.str0.clone()
        } else {
            self.resolve(s, base_dir, base_dir, &s.str0).0
        };
        if symbolic {
            link.type_id = file_type::SYMBOLIC_LINK;
            link.kind = Some(file_type::name(file_type::SYMBOLIC_LINK).into());
        }
        x.insert(
            "link_type".into(),
            json!(if symbolic { "symlink" } else { "hardlink" }),
        );
        x.insert("link_target".into(), json!(target));
        self.file_event(&s.header, fa::CREATE, link, x)
    }

    fn mount(&mut self, s: &RawSyscall, mut x: Map<String, Json>) -> OcsfEvent {
        let mut target = self.user_file(s, None, None, &s.str0, &mut x);
        target.type_id = file_type::FOLDER;
        target.kind = Some(file_type::name(file_type::FOLDER).into());
        x.insert("source".into(), json!(s.str1));
        let fstype =
            String::from_utf8_lossy(s.data.split(|&b| b == 0).next().unwrap_or(&[])).into_owned();
        x.insert("fstype".into(), json!(fstype));
        x.insert("flags".into(), json!(s.args[3]));
        let mut out = self.file_event(&s.header, fa::MOUNT, target, x);
        set_status(&mut out, s.ret);
        out
    }

    fn socket_call(
        &mut self,
        s: &RawSyscall,
        call: SocketCall,
        mut x: Map<String, Json>,
    ) -> Option<OcsfEvent> {
        let sock = self.socket_of(s)?;
        let local_ip = ip(sock.family, &sock.laddr);
        let mut remote_ip = ip(sock.family, &sock.raddr);
        let mut rport = sock.rport;
        if call == SocketCall::Connect && rport == 0 {
            if let Some((addr, port)) = user_sockaddr(&s.addr) {
                remote_ip = Some(addr);
                rport = port;
            }
        }
        let local = endpoint(local_ip, sock.lport);
        let remote = endpoint(remote_ip, rport);
        let (activity, dir) = match call {
            SocketCall::Listen => (na::LISTEN, direction::UNKNOWN),
            SocketCall::Connect => {
                let activity = match s.ret {
                    0 | EINPROGRESS => na::OPEN,
                    ECONNREFUSED => na::REFUSE,
                    _ => na::FAIL,
                };
                let dir = if is_local(remote_ip) {
                    direction::LOCAL
                } else {
                    direction::OUTBOUND
                };
                (activity, dir)
            }
            SocketCall::Accept => {
                let dir = if is_local(remote_ip) {
                    direction::LOCAL
                } else {
                    direction::INBOUND
                };
                (na::OPEN, dir)
            }
        };
        let mut ev = NetworkActivity::new(activity, self.header_time(&s.header), FEATURE);
        match call {
            SocketCall::Connect => {
                ev.src_endpoint = local;
                ev.dst_endpoint = remote;
            }
            SocketCall::Listen => ev.src_endpoint = local,
            SocketCall::Accept => {
                ev.src_endpoint = remote;
                ev.dst_endpoint = local;
            }
        }
        ev.connection_info = Some(connection(&sock, dir));
        if s.ret < 0 && s.ret != EINPROGRESS {
            ev.status_id = Some(status::FAILURE);
            ev.status_detail = Some(errno_name(s.ret));
        } else {
            ev.status_id = Some(status::SUCCESS);
        }
        if s.ret == EINPROGRESS {
            x.insert("nonblocking".into(), json!(true));
        }
        if !x.is_empty() {
            ev.unmapped = Some(x);
        }
        ev.actor = Some(self.actor_for(&s.header));
        ev.device = Some(self.device.clone());
        Some(ev.into())
    }

    fn dns_send(&mut self, s: &RawSyscall, row: &Watched) -> Option<OcsfEvent> {
        let sock = self.socket_of(s)?;
        let q = match dns::parse_question(&s.data) {
            Ok(q) => q,
            Err(e) if e.is_malformed() => {
                self.note_malformed(&format_args!(
                    "{} (pid {}): payload to port 53: {e}",
                    row.name, s.header.pid
                ));
                return None;
            }
            Err(e) => {
                tracing::debug!(pid = s.header.pid, "payload to port 53 not reported: {e}");
                return None;
            }
        };
        let (server_ip, server_port) = user_sockaddr(&s.addr)
            .map(|(i, p)| (Some(i), p))
            .unwrap_or((ip(sock.family, &sock.raddr), sock.rport));
        let mut ev = DnsActivity::new(dns_activity::QUERY, self.header_time(&s.header), FEATURE);
        ev.query = Some(DnsQuery {
            hostname: q.name,
            kind: Some(dns::type_name(q.qtype)),
            class: Some(dns::class_name(q.qclass)),
            packet_uid: Some(i32::from(q.id)),
            opcode_id: Some(i32::from(q.opcode)),
            opcode: Some(dns_opcode::name(i32::from(q.opcode)).into()),
        });
        ev.src_endpoint = endpoint(ip(sock.family, &sock.laddr), sock.lport);
        ev.dst_endpoint = endpoint(server_ip, server_port);
        let dir = if is_local(server_ip) {
            direction::LOCAL
        } else {
            direction::OUTBOUND
        };
        ev.connection_info = Some(connection(&sock, dir));
        ev.actor = Some(self.actor_for(&s.header));
        ev.device = Some(self.device.clone());
        Some(ev.into())
    }

    /// Another process's memory or execution reached: `ptrace` (Open of the tracee),
    /// `process_vm_readv` (Open of the process read), `process_vm_writev` (Inject). The
    /// event names the call (`unmapped.syscall`) and its flags or ptrace request.
    fn process_access(
        &mut self,
        s: &RawSyscall,
        row: &Watched,
        mut x: Map<String, Json>,
    ) -> OcsfEvent {
        let a = s.args;
        x.insert("syscall".into(), json!(row.name));
        let (target_pid, activity) = if row.conv == Conv::Ptrace {
            let req = a[0];
            // PTRACE_TRACEME: the tracer-to-be is the parent.
            let target = if req == 0 { s.header.ppid } else { a[1] as u32 };
            x.insert("ptrace_request".into(), json!(ptrace_request(req)));
            if req == PTRACE_SEIZE {
                x.insert("ptrace_options".into(), json!(format!("{:#x}", a[3])));
            }
            (target, pa::OPEN)
        } else {
            // process_vm_readv/writev(pid, local_iov, liovcnt, remote_iov, riovcnt, flags)
            x.insert("flags".into(), json!(a[5]));
            x.insert("remote_iovecs".into(), json!(a[4]));
            let activity = if row.conv == Conv::VmRead {
                pa::OPEN
            } else {
                pa::INJECT
            };
            (a[0] as u32, activity)
        };
        let target = self.target_process(target_pid);
        let mut ev = ProcessActivity::new(activity, self.header_time(&s.header), FEATURE, target);
        if activity == pa::INJECT {
            ev.injection_type_id = Some(injection_type::OTHER);
            ev.injection_type = Some("process_vm_writev".into());
        }
        if !x.is_empty() {
            ev.unmapped = Some(x);
        }
        ev.actor = Some(self.actor_for(&s.header));
        ev.device = Some(self.device.clone());
        let mut out: OcsfEvent = ev.into();
        set_status(&mut out, s.ret);
        out
    }

    /// A set*id call (Set User ID, with its `ids` id arguments) or capset (Other, `Set
    /// Capabilities`): the process changes itself.
    fn identity(
        &mut self,
        s: &RawSyscall,
        row: &Watched,
        ids: usize,
        mut x: Map<String, Json>,
    ) -> OcsfEvent {
        x.insert("syscall".into(), json!(row.name));
        let ids: Vec<i64> = s.args[..ids]
            .iter()
            .map(|&v| i64::from(v as u32 as i32))
            .collect();
        if !ids.is_empty() {
            x.insert("ids".into(), json!(ids));
        }
        let actor = self.actor_for(&s.header);
        let target = actor
            .process
            .as_ref()
            .map(|p| (**p).clone())
            .unwrap_or_default();
        let activity = if row.conv == Conv::Capset {
            pa::OTHER
        } else {
            pa::SET_USER_ID
        };
        let mut ev = ProcessActivity::new(activity, self.header_time(&s.header), FEATURE, target);
        if activity == pa::OTHER {
            ev.activity_name = Some("Set Capabilities".into());
        }
        ev.unmapped = Some(x);
        ev.actor = Some(actor);
        ev.device = Some(self.device.clone());
        let mut out: OcsfEvent = ev.into();
        set_status(&mut out, s.ret);
        out
    }

    /// A BPF program or a kernel module loaded.
    fn module_load(&mut self, s: &RawSyscall, conv: Conv) -> OcsfEvent {
        let standard = || {
            (
                Some(module_load_type::STANDARD),
                Some(module_load_type::name(module_load_type::STANDARD).into()),
            )
        };
        let (load_type_id, load_type) = standard();
        let module = match conv {
            Conv::ModuleLoad { from_file } => Module {
                kind: Some("kernel module".into()),
                file: (from_file && !s.str0.is_empty()).then(|| file_of(&s.str0)),
                load_type_id,
                load_type,
                ..Module::default()
            },
            _ => Module {
                kind: Some("bpf program".into()),
                function_name: Some(if s.str0.is_empty() {
                    "(unnamed)".into()
                } else {
                    s.str0.clone()
                }),
                load_type_id,
                load_type,
                ..Module::default()
            },
        };
        let mut ev = ModuleActivity::new(
            module_activity::LOAD,
            self.header_time(&s.header),
            FEATURE,
            module,
        );
        ev.actor = Some(self.actor_for(&s.header));
        ev.device = Some(self.device.clone());
        let mut out: OcsfEvent = ev.into();
        set_status(&mut out, s.ret);
        out
    }

    /// The socket of a socket call's record; a record without one is malformed (the
    /// kernel side reports these calls only on sockets).
    fn socket_of(&self, s: &RawSyscall) -> Option<RawSock> {
        if s.sock.is_none() {
            self.note_malformed(&format_args!(
                "syscall record of call {} (pid {}) without its socket",
                s.nr, s.header.pid
            ));
        }
        s.sock.clone()
    }
}

/// Whether `path` is `/proc/PID/mem` or `/proc/PID/task/TID/mem` of process `pid`.
fn own_proc_mem(path: &str, pid: u32) -> bool {
    let Some(rest) = path.strip_prefix("/proc/") else {
        return false;
    };
    let Some((n, tail)) = rest.split_once('/') else {
        return false;
    };
    n.parse::<u32>() == Ok(pid)
        && (tail == "mem"
            || tail
                .strip_prefix("task/")
                .and_then(|t| t.split_once('/'))
                .is_some_and(|(tid, m)| m == "mem" && tid.parse::<u32>().is_ok()))
}

/// `PTRACE_SEIZE`, whose `data` argument is the tracing options.
const PTRACE_SEIZE: u64 = 0x4206;

fn ptrace_request(req: u64) -> &'static str {
    match req {
        0 => "PTRACE_TRACEME",
        1 => "PTRACE_PEEKTEXT",
        2 => "PTRACE_PEEKDATA",
        3 => "PTRACE_PEEKUSER",
        4 => "PTRACE_POKETEXT",
        5 => "PTRACE_POKEDATA",
        6 => "PTRACE_POKEUSER",
        13 => "PTRACE_SETREGS",
        16 => "PTRACE_ATTACH",
        0x4206 => "PTRACE_SEIZE",
        _ => "other",
    }
}

/// Sets `status_id` (and the errno) from a syscall's return value.
fn set_status(ev: &mut OcsfEvent, ret: i64) {
    let (id, detail) = if ret < 0 {
        (status::FAILURE, Some(errno_name(ret)))
    } else {
        (status::SUCCESS, None)
    };
    macro_rules! apply {
        ($e:expr) => {{
            $e.status_id = Some(id);
            $e.status = Some(status::name(id).into());
            $e.status_detail = detail;
        }};
    }
    match ev {
        OcsfEvent::Process(e) => apply!(e),
        OcsfEvent::File(e) => apply!(e),
        OcsfEvent::Module(e) => apply!(e),
        OcsfEvent::Network(e) => apply!(e),
        OcsfEvent::Dns(e) => apply!(e),
        OcsfEvent::Authentication(e) => apply!(e),
        OcsfEvent::EventLog(e) => apply!(e),
        OcsfEvent::Finding(e) => apply!(e),
        OcsfEvent::Incident(e) => apply!(e),
        OcsfEvent::FileRemediation(e) => apply!(e),
        OcsfEvent::ProcessRemediation(e) => apply!(e),
        OcsfEvent::NetworkRemediation(e) => apply!(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::testgen::{random_header, random_syscall};
    use crate::config::SensorConfig;
    use crate::host::Host;

    #[test]
    fn own_proc_mem_is_the_process_memory_files_of_that_pid_only() {
        assert!(own_proc_mem("/proc/42/mem", 42));
        assert!(own_proc_mem("/proc/42/task/43/mem", 42));
        for (path, pid) in [
            ("/proc/42/mem", 43),
            ("/proc/420/mem", 42),
            ("/proc/42/maps", 42),
            ("/proc/42/task/mem", 42),
            ("/proc/42/task/x/mem", 42),
            ("/proc/42/task/43/mem/x", 42),
            ("/proc/self/mem", 42),
            ("/dev/mem", 42),
            ("/proc/42", 42),
        ] {
            assert!(!own_proc_mem(path, pid), "{path} {pid}");
        }
    }

    /// The table and `bpf/syscalls.h` list the same syscalls, with the same numbers: a
    /// syscall added on one side and not the other fails here.
    #[test]
    fn every_syscall_of_syscalls_h_has_one_row() {
        for &(name, number) in nr::ALL {
            let rows: Vec<&Watched> = SYSCALLS.iter().filter(|w| w.name == name).collect();
            assert_eq!(rows.len(), 1, "{name}: {} rows", rows.len());
            assert_eq!(rows[0].nr, number, "{name}");
        }
        assert_eq!(
            SYSCALLS.len(),
            nr::ALL.len(),
            "a row of no syscall of syscalls.h"
        );
        for w in SYSCALLS.iter().filter(|w| w.nr >= 0) {
            assert_eq!(
                watched(w.nr).map(|r| r.name),
                Some(w.name),
                "{} twice",
                w.nr
            );
        }
        assert!(watched(-1).is_none(), "a syscall this architecture lacks");
    }

    /// The kernel side watches every syscall of `syscalls.h` (build.rs generates its
    /// `is_watched`); a row whose conversion reads what the kernel captures at the call's
    /// exit (paths, strings, the socket, a payload) must be named in `syscalls.bpf.h`,
    /// where it is captured.
    #[test]
    fn rows_that_read_captured_data_are_captured_by_the_kernel_side() {
        let exit = include_str!("../bpf/probes/syscalls.bpf.h");
        for w in SYSCALLS.iter().filter(|w| w.conv.reads_captured_data()) {
            let name = format!("NR_{}", w.name);
            let named = exit.match_indices(&name).any(|(i, _)| {
                exit[i + name.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| !c.is_alphanumeric() && c != '_')
            });
            assert!(
                named,
                "{name}: its record is converted from data sys_exit does not capture"
            );
        }
    }

    /// Random records of each row's syscall convert to events of the row's class and
    /// activities (the conversion asserts it in debug builds), and each row makes events.
    #[test]
    fn each_row_makes_events_of_its_class_and_activities() {
        let mut rng = crate::fuzz::Rng::for_test(9);
        let config = SensorConfig {
            hash_executables: false,
            ..SensorConfig::default()
        };
        let mut conv = Converter::new(Host::detect(), config);
        let per_row = (crate::fuzz::iterations() / 10).max(50);
        for w in SYSCALLS.iter().filter(|w| w.nr >= 0) {
            let mut made = 0;
            for _ in 0..per_row {
                let header = random_header(&mut rng);
                let mut s = random_syscall(&mut rng, header);
                s.nr = w.nr;
                if let Some(ev) = conv.syscall(s) {
                    assert!(w.made(&ev), "{}: {ev:?}", w.name);
                    made += 1;
                }
            }
            assert!(made > 0, "{}: no event from {per_row} records", w.name);
        }
    }

    /// Regression: the errno was `-ret`, which overflowed (a panic in debug builds) for a
    /// result of `i64::MIN`.
    #[test]
    fn a_result_of_i64_min_names_an_errno_number_without_panicking() {
        assert_eq!(errno_name(-13), "EACCES");
        assert_eq!(errno_name(-4095), "errno 4095");
        assert_eq!(errno_name(i64::MIN), "errno 9223372036854775808");
    }
}
