//! The records the eBPF programs write, mirrored from `bpf/vigil.h`, and their decoding.
//!
//! The `#[repr(C)]` structs below exist to pin the layout: their sizes are asserted
//! against the C side's, and fields are read at `offset_of!` positions from the ring
//! buffer's bytes, so decoding needs no `unsafe` and a short or garbled record is an
//! error, not undefined behaviour.

use std::mem::{offset_of, size_of};

/// `VIGIL_ARGV_LEN`: bytes of argv kept per exec.
pub const ARGV_LEN: usize = 4096;
/// `VIGIL_PATH_LEN`: bytes of an executable's or working directory's path.
pub const PATH_LEN: usize = 2048;
/// `VIGIL_OPEN_FDS_WORDS`: words of the open-descriptor bitmap of an exec record.
pub const OPEN_FDS_WORDS: usize = 4;
/// `VIGIL_FILENAME_LEN`: bytes of the name given to execve.
pub const FILENAME_LEN: usize = 512;

const KIND_EXEC: u32 = 1;
const KIND_FORK: u32 = 2;
const KIND_EXIT: u32 = 3;
const KIND_SYSCALL: u32 = 4;

/// Syscall numbers of the target architecture, from `bpf/syscalls.h`.
pub mod nr {
    include!(concat!(env!("OUT_DIR"), "/syscalls.rs"));
}

/// `VIGIL_STR_LEN`: bytes of a string argument of a syscall record.
pub const STR_LEN: usize = 2048;
/// `VIGIL_ADDR_LEN`: bytes of a user socket address.
pub const ADDR_LEN: usize = 128;
/// `VIGIL_DATA_LEN`: bytes of payload kept.
pub const DATA_LEN: usize = 512;

/// `str0` is a kernel path walk (leaf first), not a user string.
pub const SYS_STR0_COMPONENTS: u32 = 1 << 0;
/// `str0`'s path was deeper or longer than the kernel walks.
pub const SYS_STR0_TRUNCATED: u32 = 1 << 1;
/// `sock` holds the socket's state.
pub const SYS_SOCK: u32 = 1 << 2;
/// The open created the file.
pub const SYS_FILE_CREATED: u32 = 1 << 3;
/// The payload was longer than [`DATA_LEN`].
pub const SYS_DATA_TRUNCATED: u32 = 1 << 4;
/// `base` holds the directory relative path arguments start from.
pub const SYS_BASE: u32 = 1 << 5;
/// A read-only open the kernel let through because the file is on the watch list
/// (`sensor.watched_reads`); user space matches its whole path.
pub const SYS_WATCHED_READ: u32 = 1 << 6;
/// `VIGIL_WATCH_MAX`: patterns of the watch list at most.
pub const WATCH_MAX: usize = 16;
/// `VIGIL_KIND_MAX`: size of the drop-counter array.
pub const KIND_MAX: u32 = 16;

/// The name of a record kind, for loss counters.
pub fn kind_name(kind: u32) -> &'static str {
    match kind {
        KIND_EXEC => "exec",
        KIND_FORK => "fork",
        KIND_EXIT => "exit",
        KIND_SYSCALL => "syscall",
        _ => "other",
    }
}

/// argv was longer than [`ARGV_LEN`].
pub const EXEC_ARGV_TRUNCATED: u32 = 1 << 0;
/// The executable's path was deeper or longer than the kernel walks.
pub const EXEC_EXE_TRUNCATED: u32 = 1 << 1;
/// The working directory's path was deeper or longer than the kernel walks.
pub const EXEC_CWD_TRUNCATED: u32 = 1 << 2;
/// argv could not be read from the new image's memory.
pub const EXEC_ARGV_FAULT: u32 = 1 << 3;
/// The executable has no links (deleted, or a memfd): fileless execution.
pub const EXEC_EXE_UNLINKED: u32 = 1 << 4;

#[repr(C)]
#[allow(
    dead_code,
    reason = "layout mirror of the C ABI, read through offset_of!"
)]
struct Header {
    kind: u32,
    size: u32,
    ktime: u64,
    pid: u32,
    tid: u32,
    ppid: u32,
    pad: u32,
    start_boottime: u64,
    parent_start_boottime: u64,
    cgroup_id: u64,
    comm: [u8; 16],
}

#[repr(C)]
#[allow(
    dead_code,
    reason = "layout mirror of the C ABI, read through offset_of!"
)]
struct Creds {
    uid: u32,
    gid: u32,
    euid: u32,
    egid: u32,
    suid: u32,
    sgid: u32,
    fsuid: u32,
    fsgid: u32,
    loginuid: u32,
    sessionid: u32,
    cap_effective: u64,
    cap_permitted: u64,
    cap_inheritable: u64,
}

#[repr(C)]
#[allow(
    dead_code,
    reason = "layout mirror of the C ABI, read through offset_of!"
)]
struct Exec {
    h: Header,
    creds: Creds,
    exe_ino: u64,
    exe_mtime_sec: u64,
    exe_mtime_nsec: u32,
    exe_dev: u32,
    exe_nlink: u32,
    flags: u32,
    old_pid: u32,
    open_fds_max: u32,
    open_fds: [u64; OPEN_FDS_WORDS],
    exe_len: u16,
    cwd_len: u16,
    filename_len: u16,
    argv_len: u16,
    tty: [u8; 16],
    exe: [u8; PATH_LEN],
    cwd: [u8; PATH_LEN],
    filename: [u8; FILENAME_LEN],
    argv: [u8; ARGV_LEN],
}

#[repr(C)]
#[allow(
    dead_code,
    reason = "layout mirror of the C ABI, read through offset_of!"
)]
struct Fork {
    h: Header,
    creds: Creds,
}

#[repr(C)]
#[allow(
    dead_code,
    reason = "layout mirror of the C ABI, read through offset_of!"
)]
struct Exit {
    h: Header,
    exit_code: u32,
    pad: u32,
}

#[repr(C)]
#[allow(
    dead_code,
    reason = "layout mirror of the C ABI, read through offset_of!"
)]
struct Sock {
    family: u16,
    protocol: u16,
    kind: u16,
    lport: u16,
    rport: u16,
    pad: [u16; 3],
    laddr: [u8; 16],
    raddr: [u8; 16],
}

#[repr(C)]
#[allow(
    dead_code,
    reason = "layout mirror of the C ABI, read through offset_of!"
)]
struct Syscall {
    h: Header,
    nr: u32,
    flags: u32,
    ret: i64,
    args: [u64; 6],
    str0_len: u16,
    str1_len: u16,
    addr_len: u16,
    data_len: u16,
    base_len: u16,
    pad: [u16; 3],
    sock: Sock,
    str0: [u8; STR_LEN],
    str1: [u8; STR_LEN],
    base: [u8; STR_LEN],
    addr: [u8; ADDR_LEN],
    data: [u8; DATA_LEN],
}

/// `struct vigil_watch_rule`: one pattern of the watch list as the kernel checks it.
#[repr(C)]
#[allow(
    dead_code,
    reason = "layout mirror of the C ABI, written through offset_of!"
)]
pub(crate) struct WatchRule {
    pub(crate) prefix: [u64; 2],
    pub(crate) prefix_mask: [u64; 2],
    pub(crate) suffix: u64,
    pub(crate) suffix_mask: u64,
    pub(crate) min_len: u32,
    pub(crate) max_len: u32,
    pub(crate) parent: [u64; 2],
    pub(crate) parent_mask: [u64; 2],
}

/// `struct vigil_watch`: the watch list, the one entry of the `vigil_watch` map.
#[repr(C)]
#[allow(
    dead_code,
    reason = "layout mirror of the C ABI, written through offset_of!"
)]
pub(crate) struct Watch {
    pub(crate) count: u32,
    pad: u32,
    pub(crate) first_len: [u64; 256],
    pub(crate) rules: [WatchRule; WATCH_MAX],
}

// The same sizes bpf/vigil.h asserts.
const _: () = assert!(size_of::<Header>() == 72);
const _: () = assert!(size_of::<Creds>() == 64);
const _: () = assert!(size_of::<Exec>() == 8936);
const _: () = assert!(size_of::<WatchRule>() == 88);
const _: () = assert!(size_of::<Watch>() == 8 + 256 * 8 + 16 * 88);
const _: () = assert!(size_of::<Fork>() == 136);
const _: () = assert!(size_of::<Exit>() == 80);
const _: () = assert!(size_of::<Sock>() == 48);
const _: () = assert!(size_of::<Syscall>() == 6984);

/// Fields every record has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawHeader {
    /// When, in ns since boot (CLOCK_BOOTTIME).
    pub ktime: u64,
    /// The process (tgid).
    pub pid: u32,
    /// The thread that caused the event.
    pub tid: u32,
    /// The real parent (tgid).
    pub ppid: u32,
    /// The process's start, ns since boot.
    pub start_boottime: u64,
    /// The parent's start, ns since boot.
    pub parent_start_boottime: u64,
    /// The cgroup (v2) id.
    pub cgroup_id: u64,
    /// The thread's comm.
    pub comm: String,
}

impl RawHeader {
    /// A header that knows only the process and the time (what a source without the
    /// kernel's view, like the fallback sensor, has once a process is gone).
    pub fn bare(pid: u32, ppid: u32, ktime: u64) -> Self {
        RawHeader {
            ktime,
            pid,
            tid: pid,
            ppid,
            start_boottime: 0,
            parent_start_boottime: 0,
            cgroup_id: 0,
            comm: String::new(),
        }
    }
}

/// Credentials of a process.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawCreds {
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// Effective uid.
    pub euid: u32,
    /// Effective gid.
    pub egid: u32,
    /// Saved uid.
    pub suid: u32,
    /// Saved gid.
    pub sgid: u32,
    /// Filesystem uid.
    pub fsuid: u32,
    /// Filesystem gid.
    pub fsgid: u32,
    /// Audit login uid (`u32::MAX`: unset).
    pub loginuid: u32,
    /// Audit session id (`u32::MAX`: unset).
    pub sessionid: u32,
    /// Effective capabilities.
    pub cap_effective: u64,
    /// Permitted capabilities.
    pub cap_permitted: u64,
    /// Inheritable capabilities.
    pub cap_inheritable: u64,
}

impl RawExec {
    /// Whether `fd` is still open after the exec: `None` when the record does not say
    /// (a descriptor past `open_fds_max`).
    pub fn fd_open(&self, fd: i32) -> Option<bool> {
        let fd = u32::try_from(fd).ok()?;
        if fd >= self.open_fds_max {
            return None;
        }
        let word = self.open_fds.get(usize::try_from(fd / 64).ok()?)?;
        Some(word & (1 << (fd % 64)) != 0)
    }
}

/// A decoded exec record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawExec {
    /// Common fields.
    pub header: RawHeader,
    /// Credentials after the exec.
    pub creds: RawCreds,
    /// Inode of the executable.
    pub exe_ino: u64,
    /// Kernel device number (`s_dev`) of the executable's filesystem.
    pub exe_dev: u32,
    /// Modification time of the executable (seconds since the epoch).
    pub exe_mtime_sec: u64,
    /// Nanoseconds part of the modification time.
    pub exe_mtime_nsec: u32,
    /// Link count of the executable (0: deleted or memfd).
    pub exe_nlink: u32,
    /// `EXEC_*` flags.
    pub flags: u32,
    /// The thread id that called execve (differs from pid when a thread execs).
    pub old_pid: u32,
    /// How many descriptors `open_fds` covers (0, 64, ... 256).
    pub open_fds_max: u32,
    /// After the exec, bit `fd % 64` of word `fd / 64` is set when `fd` is open.
    pub open_fds: [u64; OPEN_FDS_WORDS],
    /// Path of the executable, from the kernel's dentries.
    pub exe: String,
    /// Working directory.
    pub cwd: String,
    /// The file name given to execve.
    pub filename: String,
    /// Controlling terminal name (empty: none).
    pub tty: String,
    /// Arguments.
    pub argv: Vec<String>,
}

/// A decoded fork record: `header.pid` is the child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFork {
    /// Common fields (`pid`: the child, `ppid`: the parent).
    pub header: RawHeader,
    /// The child's credentials.
    pub creds: RawCreds,
}

/// A decoded exit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawExit {
    /// Common fields.
    pub header: RawHeader,
    /// Wait status: `(code << 8) | signal`.
    pub exit_code: u32,
}

/// A socket's state as the kernel had it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawSock {
    /// Address family (2: IPv4, 10: IPv6).
    pub family: u16,
    /// IP protocol (6: TCP, 17: UDP).
    pub protocol: u16,
    /// Socket type (1: stream, 2: datagram).
    pub kind: u16,
    /// Local port.
    pub lport: u16,
    /// Remote port.
    pub rport: u16,
    /// Local address (4 or 16 bytes used).
    pub laddr: [u8; 16],
    /// Remote address.
    pub raddr: [u8; 16],
}

/// A decoded syscall record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSyscall {
    /// Common fields.
    pub header: RawHeader,
    /// Syscall number (see [`nr`]).
    pub nr: i64,
    /// `SYS_*` flags.
    pub flags: u32,
    /// Return value (negative: -errno).
    pub ret: i64,
    /// Raw arguments.
    pub args: [u64; 6],
    /// First string: a path (resolved by the kernel when `SYS_STR0_COMPONENTS`), a name.
    pub str0: String,
    /// Second string: the target of a rename or link, a mount source.
    pub str1: String,
    /// The user's socket address, raw.
    pub addr: Vec<u8>,
    /// The payload kept (a DNS message), or a mount's filesystem type.
    pub data: Vec<u8>,
    /// The socket, when `SYS_SOCK`.
    pub sock: Option<RawSock>,
    /// The directory relative paths start from (the cwd or a dirfd's), when `SYS_BASE`.
    pub base: Option<String>,
}

/// Any record from the ring buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A successful exec.
    Exec(Box<RawExec>),
    /// A new process.
    Fork(RawFork),
    /// A process exited.
    Exit(RawExit),
    /// A watched syscall returned.
    Syscall(Box<RawSyscall>),
}

impl Record {
    /// The kernel's time of the record (ns since boot, `CLOCK_BOOTTIME`).
    pub fn ktime(&self) -> u64 {
        match self {
            Record::Exec(r) => r.header.ktime,
            Record::Fork(r) => r.header.ktime,
            Record::Exit(r) => r.header.ktime,
            Record::Syscall(r) => r.header.ktime,
        }
    }
}

/// Why a ring buffer record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the record's kind needs.
    #[error("record of kind {kind} is {len} bytes, needs at least {need}")]
    Short {
        /// The record kind.
        kind: u32,
        /// Bytes received.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// A kind this version does not know.
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
    /// The header's size field is not the record's length.
    #[error("record of kind {kind} is {len} bytes, its header says {size}")]
    Size {
        /// The record kind.
        kind: u32,
        /// The header's `size`.
        size: u32,
        /// Bytes received.
        len: usize,
    },
    /// A length field larger than the slot it measures.
    #[error("record of kind {kind}: {field} is {len}, past its {cap}-byte slot")]
    Length {
        /// The record kind.
        kind: u32,
        /// The length field.
        field: &'static str,
        /// Its value.
        len: u16,
        /// The slot's size.
        cap: usize,
    },
}

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u16(&self, off: usize) -> u16 {
        let mut b = [0u8; 2];
        b.copy_from_slice(&self.0[off..off + 2]);
        u16::from_ne_bytes(b)
    }
    fn u32(&self, off: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.0[off..off + 4]);
        u32::from_ne_bytes(b)
    }
    fn u64(&self, off: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[off..off + 8]);
        u64::from_ne_bytes(b)
    }
    fn array<const N: usize>(&self, off: usize) -> [u8; N] {
        let mut b = [0u8; N];
        b.copy_from_slice(&self.0[off..off + N]);
        b
    }
    /// A NUL-terminated string in a fixed field.
    fn cstr(&self, off: usize, cap: usize) -> String {
        let field = &self.0[off..off + cap];
        let end = field.iter().position(|&c| c == 0).unwrap_or(cap);
        String::from_utf8_lossy(&field[..end]).into_owned()
    }
    /// `len` bytes (clamped to `cap`) of NUL-separated strings.
    fn strings(&self, off: usize, len: usize, cap: usize) -> Vec<String> {
        let len = len.min(cap);
        let field = &self.0[off..off + len];
        let field = field.strip_suffix(&[0]).unwrap_or(field);
        if field.is_empty() {
            return Vec::new();
        }
        field
            .split(|&c| c == 0)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }
}

fn header(b: &Bytes<'_>) -> RawHeader {
    RawHeader {
        ktime: b.u64(offset_of!(Header, ktime)),
        pid: b.u32(offset_of!(Header, pid)),
        tid: b.u32(offset_of!(Header, tid)),
        ppid: b.u32(offset_of!(Header, ppid)),
        start_boottime: b.u64(offset_of!(Header, start_boottime)),
        parent_start_boottime: b.u64(offset_of!(Header, parent_start_boottime)),
        cgroup_id: b.u64(offset_of!(Header, cgroup_id)),
        comm: b.cstr(offset_of!(Header, comm), 16),
    }
}

fn creds(b: &Bytes<'_>, base: usize) -> RawCreds {
    let at = |off: usize| base + off;
    RawCreds {
        uid: b.u32(at(offset_of!(Creds, uid))),
        gid: b.u32(at(offset_of!(Creds, gid))),
        euid: b.u32(at(offset_of!(Creds, euid))),
        egid: b.u32(at(offset_of!(Creds, egid))),
        suid: b.u32(at(offset_of!(Creds, suid))),
        sgid: b.u32(at(offset_of!(Creds, sgid))),
        fsuid: b.u32(at(offset_of!(Creds, fsuid))),
        fsgid: b.u32(at(offset_of!(Creds, fsgid))),
        loginuid: b.u32(at(offset_of!(Creds, loginuid))),
        sessionid: b.u32(at(offset_of!(Creds, sessionid))),
        cap_effective: b.u64(at(offset_of!(Creds, cap_effective))),
        cap_permitted: b.u64(at(offset_of!(Creds, cap_permitted))),
        cap_inheritable: b.u64(at(offset_of!(Creds, cap_inheritable))),
    }
}

fn sock(b: &Bytes<'_>, off: usize) -> RawSock {
    RawSock {
        family: b.u16(off + offset_of!(Sock, family)),
        protocol: b.u16(off + offset_of!(Sock, protocol)),
        kind: b.u16(off + offset_of!(Sock, kind)),
        lport: b.u16(off + offset_of!(Sock, lport)),
        rport: b.u16(off + offset_of!(Sock, rport)),
        laddr: b.array(off + offset_of!(Sock, laddr)),
        raddr: b.array(off + offset_of!(Sock, raddr)),
    }
}

/// Joins path components written leaf first (`true\0bin\0usr\0`) into `/usr/bin/true`.
fn leaf_first_path(components: Vec<String>) -> String {
    if components.is_empty() {
        return "/".to_string();
    }
    let mut path = String::new();
    for c in components.iter().rev() {
        if c == "/" || c.is_empty() {
            continue;
        }
        path.push('/');
        path.push_str(c);
    }
    if path.is_empty() {
        path.push('/');
    }
    path
}

/// Decodes one ring buffer record. A record shorter than its kind, whose header's size
/// is not its length, or with a length field past its slot is an error: the kernel side
/// writes none of these, so one means the two sides disagree.
pub fn decode(data: &[u8]) -> Result<Record, DecodeError> {
    let short = |kind, need| DecodeError::Short {
        kind,
        len: data.len(),
        need,
    };
    if data.len() < size_of::<Header>() {
        return Err(short(0, size_of::<Header>()));
    }
    let b = Bytes(data);
    let kind = b.u32(offset_of!(Header, kind));
    let fixed = match kind {
        KIND_EXEC => offset_of!(Exec, argv),
        KIND_FORK => size_of::<Fork>(),
        KIND_EXIT => size_of::<Exit>(),
        KIND_SYSCALL => size_of::<Syscall>(),
        other => return Err(DecodeError::UnknownKind(other)),
    };
    if data.len() < fixed {
        return Err(short(kind, fixed));
    }
    let size = b.u32(offset_of!(Header, size));
    if usize::try_from(size).ok() != Some(data.len()) {
        return Err(DecodeError::Size {
            kind,
            size,
            len: data.len(),
        });
    }
    // A length field, checked against its slot.
    let len = |field: &'static str, off: usize, cap: usize| {
        let len = b.u16(off);
        if usize::from(len) > cap {
            return Err(DecodeError::Length {
                kind,
                field,
                len,
                cap,
            });
        }
        Ok(usize::from(len))
    };
    match kind {
        KIND_EXEC => {
            let argv_len = len("argv_len", offset_of!(Exec, argv_len), ARGV_LEN)?;
            if data.len() < fixed + argv_len {
                return Err(short(kind, fixed + argv_len));
            }
            let exe_len = len("exe_len", offset_of!(Exec, exe_len), PATH_LEN)?;
            let cwd_len = len("cwd_len", offset_of!(Exec, cwd_len), PATH_LEN)?;
            len("filename_len", offset_of!(Exec, filename_len), FILENAME_LEN)?;
            Ok(Record::Exec(Box::new(RawExec {
                header: header(&b),
                creds: creds(&b, offset_of!(Exec, creds)),
                exe_ino: b.u64(offset_of!(Exec, exe_ino)),
                exe_dev: b.u32(offset_of!(Exec, exe_dev)),
                exe_mtime_sec: b.u64(offset_of!(Exec, exe_mtime_sec)),
                exe_mtime_nsec: b.u32(offset_of!(Exec, exe_mtime_nsec)),
                exe_nlink: b.u32(offset_of!(Exec, exe_nlink)),
                flags: b.u32(offset_of!(Exec, flags)),
                old_pid: b.u32(offset_of!(Exec, old_pid)),
                open_fds_max: b.u32(offset_of!(Exec, open_fds_max)),
                open_fds: std::array::from_fn(|i| b.u64(offset_of!(Exec, open_fds) + 8 * i)),
                exe: leaf_first_path(b.strings(offset_of!(Exec, exe), exe_len, PATH_LEN)),
                cwd: leaf_first_path(b.strings(offset_of!(Exec, cwd), cwd_len, PATH_LEN)),
                filename: b.cstr(offset_of!(Exec, filename), FILENAME_LEN),
                tty: b.cstr(offset_of!(Exec, tty), 16),
                argv: b.strings(offset_of!(Exec, argv), argv_len, ARGV_LEN),
            })))
        }
        KIND_FORK => Ok(Record::Fork(RawFork {
            header: header(&b),
            creds: creds(&b, offset_of!(Fork, creds)),
        })),
        KIND_EXIT => Ok(Record::Exit(RawExit {
            header: header(&b),
            exit_code: b.u32(offset_of!(Exit, exit_code)),
        })),
        _ => {
            let flags = b.u32(offset_of!(Syscall, flags));
            let str0_len = len("str0_len", offset_of!(Syscall, str0_len), STR_LEN)?;
            len("str1_len", offset_of!(Syscall, str1_len), STR_LEN)?;
            let base_len = len("base_len", offset_of!(Syscall, base_len), STR_LEN)?;
            let addr_len = len("addr_len", offset_of!(Syscall, addr_len), ADDR_LEN)?;
            let data_len = len("data_len", offset_of!(Syscall, data_len), DATA_LEN)?;
            let str0_off = offset_of!(Syscall, str0);
            let str0 = if flags & SYS_STR0_COMPONENTS != 0 {
                leaf_first_path(b.strings(str0_off, str0_len, STR_LEN))
            } else {
                b.cstr(str0_off, STR_LEN)
            };
            let sock = (flags & SYS_SOCK != 0).then(|| sock(&b, offset_of!(Syscall, sock)));
            let args_off = offset_of!(Syscall, args);
            let mut args = [0u64; 6];
            for (i, a) in args.iter_mut().enumerate() {
                *a = b.u64(args_off + 8 * i);
            }
            Ok(Record::Syscall(Box::new(RawSyscall {
                header: header(&b),
                nr: i64::from(b.u32(offset_of!(Syscall, nr))),
                flags,
                ret: b.u64(offset_of!(Syscall, ret)) as i64,
                args,
                str0,
                str1: b.cstr(offset_of!(Syscall, str1), STR_LEN),
                addr: b.0[offset_of!(Syscall, addr)..][..addr_len].to_vec(),
                data: b.0[offset_of!(Syscall, data)..][..data_len].to_vec(),
                sock,
                base: (flags & SYS_BASE != 0).then(|| {
                    leaf_first_path(b.strings(offset_of!(Syscall, base), base_len, STR_LEN))
                }),
            })))
        }
    }
}

/// Records as the kernel writes them, for tests: the encoder mirrors [`decode`], and
/// random records drive the bounded random tests of the decoder and the converter.
#[cfg(test)]
pub(crate) mod testgen {
    use super::*;
    use crate::fuzz::Rng;

    fn put(buf: &mut [u8], off: usize, bytes: &[u8]) {
        buf[off..off + bytes.len()].copy_from_slice(bytes);
    }

    fn put_str(buf: &mut [u8], off: usize, s: &str) {
        put(buf, off, s.as_bytes());
    }

    /// A path as the kernel walks it: components leaf first, each NUL-terminated.
    fn components(path: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for c in path.rsplit('/').filter(|c| !c.is_empty()) {
            out.extend_from_slice(c.as_bytes());
            out.push(0);
        }
        out
    }

    fn header(buf: &mut [u8], kind: u32, h: &RawHeader) {
        let size = u32::try_from(buf.len()).expect("a record is small");
        put(buf, offset_of!(Header, kind), &kind.to_ne_bytes());
        put(buf, offset_of!(Header, size), &size.to_ne_bytes());
        put(buf, offset_of!(Header, ktime), &h.ktime.to_ne_bytes());
        put(buf, offset_of!(Header, pid), &h.pid.to_ne_bytes());
        put(buf, offset_of!(Header, tid), &h.tid.to_ne_bytes());
        put(buf, offset_of!(Header, ppid), &h.ppid.to_ne_bytes());
        let start = h.start_boottime.to_ne_bytes();
        put(buf, offset_of!(Header, start_boottime), &start);
        let parent_start = h.parent_start_boottime.to_ne_bytes();
        put(
            buf,
            offset_of!(Header, parent_start_boottime),
            &parent_start,
        );
        put(
            buf,
            offset_of!(Header, cgroup_id),
            &h.cgroup_id.to_ne_bytes(),
        );
        put_str(buf, offset_of!(Header, comm), &h.comm);
    }

    fn creds(buf: &mut [u8], base: usize, c: &RawCreds) {
        let words = [
            (offset_of!(Creds, uid), c.uid),
            (offset_of!(Creds, gid), c.gid),
            (offset_of!(Creds, euid), c.euid),
            (offset_of!(Creds, egid), c.egid),
            (offset_of!(Creds, suid), c.suid),
            (offset_of!(Creds, sgid), c.sgid),
            (offset_of!(Creds, fsuid), c.fsuid),
            (offset_of!(Creds, fsgid), c.fsgid),
            (offset_of!(Creds, loginuid), c.loginuid),
            (offset_of!(Creds, sessionid), c.sessionid),
        ];
        for (off, v) in words {
            put(buf, base + off, &v.to_ne_bytes());
        }
        put(
            buf,
            base + offset_of!(Creds, cap_effective),
            &c.cap_effective.to_ne_bytes(),
        );
        put(
            buf,
            base + offset_of!(Creds, cap_permitted),
            &c.cap_permitted.to_ne_bytes(),
        );
        let inh = c.cap_inheritable.to_ne_bytes();
        put(buf, base + offset_of!(Creds, cap_inheritable), &inh);
    }

    fn put_sock(buf: &mut [u8], off: usize, k: &RawSock) {
        put(buf, off + offset_of!(Sock, family), &k.family.to_ne_bytes());
        put(
            buf,
            off + offset_of!(Sock, protocol),
            &k.protocol.to_ne_bytes(),
        );
        put(buf, off + offset_of!(Sock, kind), &k.kind.to_ne_bytes());
        put(buf, off + offset_of!(Sock, lport), &k.lport.to_ne_bytes());
        put(buf, off + offset_of!(Sock, rport), &k.rport.to_ne_bytes());
        put(buf, off + offset_of!(Sock, laddr), &k.laddr);
        put(buf, off + offset_of!(Sock, raddr), &k.raddr);
    }

    fn len16(v: &[u8]) -> [u8; 2] {
        u16::try_from(v.len()).expect("fits a slot").to_ne_bytes()
    }

    /// The bytes the kernel writes for `record` (paths as absolute paths, strings
    /// without NULs, each within its slot).
    pub(crate) fn encode(record: &Record) -> Vec<u8> {
        match record {
            Record::Exec(e) => {
                let mut argv = Vec::new();
                for a in &e.argv {
                    argv.extend_from_slice(a.as_bytes());
                    argv.push(0);
                }
                let mut buf = vec![0u8; offset_of!(Exec, argv) + argv.len()];
                header(&mut buf, KIND_EXEC, &e.header);
                creds(&mut buf, offset_of!(Exec, creds), &e.creds);
                put(
                    &mut buf,
                    offset_of!(Exec, exe_ino),
                    &e.exe_ino.to_ne_bytes(),
                );
                let mtime = e.exe_mtime_sec.to_ne_bytes();
                put(&mut buf, offset_of!(Exec, exe_mtime_sec), &mtime);
                let nsec = e.exe_mtime_nsec.to_ne_bytes();
                put(&mut buf, offset_of!(Exec, exe_mtime_nsec), &nsec);
                put(
                    &mut buf,
                    offset_of!(Exec, exe_dev),
                    &e.exe_dev.to_ne_bytes(),
                );
                put(
                    &mut buf,
                    offset_of!(Exec, exe_nlink),
                    &e.exe_nlink.to_ne_bytes(),
                );
                put(&mut buf, offset_of!(Exec, flags), &e.flags.to_ne_bytes());
                put(
                    &mut buf,
                    offset_of!(Exec, old_pid),
                    &e.old_pid.to_ne_bytes(),
                );
                let max = e.open_fds_max.to_ne_bytes();
                put(&mut buf, offset_of!(Exec, open_fds_max), &max);
                for (i, w) in e.open_fds.iter().enumerate() {
                    put(
                        &mut buf,
                        offset_of!(Exec, open_fds) + 8 * i,
                        &w.to_ne_bytes(),
                    );
                }
                let (exe, cwd) = (components(&e.exe), components(&e.cwd));
                put(&mut buf, offset_of!(Exec, exe_len), &len16(&exe));
                put(&mut buf, offset_of!(Exec, cwd_len), &len16(&cwd));
                let filename = e.filename.as_bytes();
                put(&mut buf, offset_of!(Exec, filename_len), &len16(filename));
                put(&mut buf, offset_of!(Exec, argv_len), &len16(&argv));
                put_str(&mut buf, offset_of!(Exec, tty), &e.tty);
                put(&mut buf, offset_of!(Exec, exe), &exe);
                put(&mut buf, offset_of!(Exec, cwd), &cwd);
                put(&mut buf, offset_of!(Exec, filename), filename);
                put(&mut buf, offset_of!(Exec, argv), &argv);
                buf
            }
            Record::Fork(f) => {
                let mut buf = vec![0u8; size_of::<Fork>()];
                header(&mut buf, KIND_FORK, &f.header);
                creds(&mut buf, offset_of!(Fork, creds), &f.creds);
                buf
            }
            Record::Exit(x) => {
                let mut buf = vec![0u8; size_of::<Exit>()];
                header(&mut buf, KIND_EXIT, &x.header);
                put(
                    &mut buf,
                    offset_of!(Exit, exit_code),
                    &x.exit_code.to_ne_bytes(),
                );
                buf
            }
            Record::Syscall(s) => {
                let mut buf = vec![0u8; size_of::<Syscall>()];
                header(&mut buf, KIND_SYSCALL, &s.header);
                let nr = u32::try_from(s.nr).expect("a u32 syscall number");
                put(&mut buf, offset_of!(Syscall, nr), &nr.to_ne_bytes());
                put(&mut buf, offset_of!(Syscall, flags), &s.flags.to_ne_bytes());
                put(&mut buf, offset_of!(Syscall, ret), &s.ret.to_ne_bytes());
                for (i, a) in s.args.iter().enumerate() {
                    put(
                        &mut buf,
                        offset_of!(Syscall, args) + 8 * i,
                        &a.to_ne_bytes(),
                    );
                }
                let str0 = if s.flags & SYS_STR0_COMPONENTS != 0 {
                    components(&s.str0)
                } else {
                    s.str0.as_bytes().to_vec()
                };
                let base = s.base.as_deref().map(components).unwrap_or_default();
                put(&mut buf, offset_of!(Syscall, str0_len), &len16(&str0));
                put(
                    &mut buf,
                    offset_of!(Syscall, str1_len),
                    &len16(s.str1.as_bytes()),
                );
                put(&mut buf, offset_of!(Syscall, addr_len), &len16(&s.addr));
                put(&mut buf, offset_of!(Syscall, data_len), &len16(&s.data));
                put(&mut buf, offset_of!(Syscall, base_len), &len16(&base));
                if let Some(k) = &s.sock {
                    put_sock(&mut buf, offset_of!(Syscall, sock), k);
                }
                put(&mut buf, offset_of!(Syscall, str0), &str0);
                put_str(&mut buf, offset_of!(Syscall, str1), &s.str1);
                put(&mut buf, offset_of!(Syscall, base), &base);
                put(&mut buf, offset_of!(Syscall, addr), &s.addr);
                put(&mut buf, offset_of!(Syscall, data), &s.data);
                buf
            }
        }
    }

    /// A short string of letters, digits, punctuation, spaces and non-ASCII characters
    /// (no NUL, no `/`).
    pub(crate) fn word(rng: &mut Rng, max: usize) -> String {
        (0..rng.below(max + 1))
            .map(|_| rng.pick(&['a', 'Z', '0', '.', '-', ' ', ':', '\u{e9}', '\u{2603}']))
            .collect()
    }

    /// An absolute path of a few components.
    pub(crate) fn path(rng: &mut Rng) -> String {
        let parts: Vec<String> = (0..rng.below(6))
            .map(|_| {
                let w = word(rng, 12);
                if w.is_empty() {
                    "x".into()
                } else {
                    w
                }
            })
            .collect();
        format!("/{}", parts.join("/"))
    }

    /// A string argument: a path, absolute or relative, or any word.
    fn string(rng: &mut Rng) -> String {
        match rng.below(3) {
            0 => path(rng),
            1 => path(rng).trim_start_matches('/').to_string(),
            _ => word(rng, 40),
        }
    }

    pub(crate) fn random_header(rng: &mut Rng) -> RawHeader {
        // Mostly pids that cannot exist (above the kernel's pid limit), sometimes this
        // process, whose /proc entries are there to read.
        let pid = if rng.one_in(8) {
            std::process::id()
        } else {
            (1 << 22) + rng.below(1 << 20) as u32
        };
        RawHeader {
            ktime: rng.edgy(),
            pid,
            tid: if rng.one_in(2) {
                pid
            } else {
                rng.edgy() as u32
            },
            ppid: match rng.below(4) {
                0 => 0,
                1 => 1,
                2 => pid,
                _ => rng.edgy() as u32,
            },
            start_boottime: rng.edgy(),
            parent_start_boottime: rng.edgy(),
            cgroup_id: rng.edgy(),
            comm: word(rng, 5),
        }
    }

    fn random_creds(rng: &mut Rng) -> RawCreds {
        let mut id = || rng.pick(&[0, 1000, 65534, u32::MAX]);
        RawCreds {
            uid: id(),
            gid: id(),
            euid: id(),
            egid: id(),
            suid: id(),
            sgid: id(),
            fsuid: id(),
            fsgid: id(),
            loginuid: id(),
            sessionid: id(),
            cap_effective: rng.edgy(),
            cap_permitted: rng.edgy(),
            cap_inheritable: rng.edgy(),
        }
    }

    /// A socket's state: IPv4, IPv6, UNIX or another family, any ports and addresses.
    fn random_sock(rng: &mut Rng) -> RawSock {
        RawSock {
            family: rng.pick(&[2, 10, 1, u16::MAX]),
            protocol: rng.pick(&[6, 17, 0, u16::MAX]),
            kind: rng.pick(&[1, 2, 3]),
            lport: rng.edgy() as u16,
            rport: match rng.below(3) {
                0 => 0,
                1 => 53,
                _ => rng.edgy() as u16,
            },
            laddr: rng.bytes(16).try_into().unwrap_or_default(),
            raddr: rng.bytes(16).try_into().unwrap_or_default(),
        }
    }

    /// A socket address as a process passes it: IPv4, IPv6, or other bytes.
    fn sockaddr(rng: &mut Rng) -> Vec<u8> {
        let port = rng.pick(&[0u16, 53, 443, 65535]).to_be_bytes();
        let mut a = match rng.below(3) {
            0 => [2u16.to_ne_bytes().as_slice(), &port, &rng.bytes(4), &[0; 8]].concat(),
            1 => [
                10u16.to_ne_bytes().as_slice(),
                &port,
                &[0; 4],
                &rng.bytes(16),
                &[0; 4],
            ]
            .concat(),
            _ => {
                let n = rng.below(ADDR_LEN + 1);
                rng.bytes(n)
            }
        };
        let cut = rng.below(a.len() + 1);
        if rng.one_in(4) {
            a.truncate(cut);
        }
        a
    }

    /// A payload: a DNS query (maybe cut short), a mount's filesystem type, or bytes.
    fn payload(rng: &mut Rng) -> Vec<u8> {
        let mut d = match rng.below(3) {
            0 => {
                let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
                for w in path(rng).split('/').filter(|w| !w.is_empty()) {
                    m.push(u8::try_from(w.len()).unwrap_or(0));
                    m.extend_from_slice(w.as_bytes());
                }
                m.extend_from_slice(&[0, 0, 1, 0, 1]);
                m
            }
            1 => b"tmpfs\0".to_vec(),
            _ => {
                let n = rng.below(DATA_LEN + 1);
                rng.bytes(n)
            }
        };
        if rng.one_in(4) {
            d.truncate(rng.below(d.len() + 1));
        }
        d
    }

    /// A record of any kind with random (often boundary) values: syscall records mostly
    /// of the calls the kernel side watches.
    pub(crate) fn random_record(rng: &mut Rng) -> Record {
        let header = random_header(rng);
        match rng.below(8) {
            0 | 1 => Record::Exec(Box::new(RawExec {
                header,
                creds: random_creds(rng),
                exe_ino: rng.edgy(),
                exe_dev: rng.edgy() as u32,
                exe_mtime_sec: rng.edgy(),
                exe_mtime_nsec: rng.edgy() as u32,
                exe_nlink: rng.pick(&[0, 1, 2]),
                flags: rng.next() as u32 & 0x1f,
                old_pid: rng.edgy() as u32,
                open_fds_max: rng.pick(&[0, 64, 256, u32::MAX]),
                open_fds: std::array::from_fn(|_| rng.edgy()),
                exe: path(rng),
                cwd: path(rng),
                filename: string(rng),
                tty: word(rng, 5),
                argv: (0..rng.below(6))
                    .map(|_| {
                        let w = string(rng);
                        if w.is_empty() {
                            "-".into()
                        } else {
                            w
                        }
                    })
                    .collect(),
            })),
            2 => Record::Fork(RawFork {
                header,
                creds: random_creds(rng),
            }),
            3 => Record::Exit(RawExit {
                header,
                exit_code: rng.edgy() as u32,
            }),
            _ => Record::Syscall(Box::new(random_syscall(rng, header))),
        }
    }

    /// A syscall record with random (often boundary) values: mostly of the calls the
    /// kernel side watches.
    pub(crate) fn random_syscall(rng: &mut Rng, header: RawHeader) -> RawSyscall {
        let watched: Vec<i64> = nr::ALL
            .iter()
            .map(|&(_, n)| n)
            .filter(|&n| n >= 0)
            .collect();
        let nr = if rng.one_in(16) {
            i64::from(rng.next() as u32)
        } else {
            rng.pick(&watched)
        };
        let flags = rng.next() as u32 & 0x7f;
        let ret = match rng.below(3) {
            0 => -(rng.below(134) as i64),
            1 => rng.below(1024) as i64,
            _ => rng.edgy() as i64,
        };
        RawSyscall {
            header,
            nr,
            flags,
            ret,
            args: std::array::from_fn(|_| match rng.below(4) {
                0 => (-100i64) as u64, // AT_FDCWD
                1 => rng.below(8) as u64,
                _ => rng.edgy(),
            }),
            str0: if flags & SYS_STR0_COMPONENTS != 0 {
                path(rng)
            } else {
                string(rng)
            },
            str1: string(rng),
            addr: sockaddr(rng),
            data: payload(rng),
            sock: (flags & SYS_SOCK != 0).then(|| random_sock(rng)),
            base: (flags & SYS_BASE != 0).then(|| path(rng)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testgen::{encode, random_record};
    use super::*;

    #[test]
    fn paths_are_rebuilt_root_first() {
        let c = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        assert_eq!(leaf_first_path(c(&["true", "bin", "usr"])), "/usr/bin/true");
        assert_eq!(leaf_first_path(c(&[])), "/");
        assert_eq!(leaf_first_path(c(&["memfd:x"])), "/memfd:x");
    }

    #[test]
    fn short_and_unknown_records_are_errors_not_panics() {
        assert!(matches!(decode(&[]), Err(DecodeError::Short { .. })));
        let mut rec = vec![0u8; size_of::<Header>()];
        rec[0] = 1; // exec, but only a header's worth of bytes
        assert!(matches!(
            decode(&rec),
            Err(DecodeError::Short { kind: 1, .. })
        ));
        rec[0] = 9;
        assert_eq!(decode(&rec), Err(DecodeError::UnknownKind(9)));
        rec[0] = 3;
        assert!(matches!(
            decode(&rec),
            Err(DecodeError::Short { kind: 3, .. })
        ));
    }

    /// Regression: length fields past their slots were clamped silently, and a header
    /// whose size disagreed with the record went unnoticed: both are records the kernel
    /// side never writes, now errors (counted as malformed).
    #[test]
    fn exec_with_lengths_past_their_slots_is_an_error() {
        let mut rec = vec![0xffu8; offset_of!(Exec, argv) + 10];
        rec[..4].copy_from_slice(&KIND_EXEC.to_ne_bytes());
        assert!(matches!(
            decode(&rec),
            Err(DecodeError::Size {
                kind: 1,
                size: u32::MAX,
                ..
            })
        ));
        let size = u32::try_from(rec.len()).expect("small");
        rec[4..8].copy_from_slice(&size.to_ne_bytes());
        let off = offset_of!(Exec, argv_len);
        rec[off..off + 2].copy_from_slice(&5u16.to_ne_bytes());
        assert_eq!(
            decode(&rec),
            Err(DecodeError::Length {
                kind: 1,
                field: "exe_len",
                len: u16::MAX,
                cap: PATH_LEN
            })
        );
        for field in [offset_of!(Exec, exe_len), offset_of!(Exec, cwd_len)] {
            rec[field..field + 2].copy_from_slice(&(PATH_LEN as u16).to_ne_bytes());
        }
        let off = offset_of!(Exec, filename_len);
        rec[off..off + 2].copy_from_slice(&0u16.to_ne_bytes());
        let Ok(Record::Exec(e)) = decode(&rec) else {
            panic!("slots full to the brim decode")
        };
        assert_eq!(e.argv.len(), 1);
        let off = offset_of!(Exec, argv_len);
        rec[off..off + 2].copy_from_slice(&11u16.to_ne_bytes());
        assert!(matches!(
            decode(&rec),
            Err(DecodeError::Short { kind: 1, need, .. }) if need == offset_of!(Exec, argv) + 11
        ));
    }

    /// Random records of every kind decode to exactly what was encoded.
    #[test]
    fn random_records_round_trip() {
        let mut rng = crate::fuzz::Rng::for_test(5);
        for i in 0..crate::fuzz::iterations() {
            let record = random_record(&mut rng);
            assert_eq!(
                decode(&encode(&record)).as_ref(),
                Ok(&record),
                "iteration {i}"
            );
        }
    }

    /// Mutated records (length fields and sizes included) and random bytes decode or
    /// fail with an error, never panic.
    #[test]
    fn mutated_records_decode_or_fail_cleanly() {
        let mut rng = crate::fuzz::Rng::for_test(6);
        let len_fields = [
            offset_of!(Exec, exe_len),
            offset_of!(Exec, cwd_len),
            offset_of!(Exec, argv_len),
            offset_of!(Syscall, str0_len),
            offset_of!(Syscall, base_len),
            offset_of!(Syscall, addr_len),
            offset_of!(Syscall, data_len),
            offset_of!(Header, size),
        ];
        for i in 0..crate::fuzz::iterations() {
            let mut bytes = encode(&random_record(&mut rng));
            if rng.one_in(2) {
                let off = rng.pick(&len_fields);
                let v = rng.edgy().to_ne_bytes();
                if let Some(field) = bytes.get_mut(off..off + 2) {
                    field.copy_from_slice(&v[..2]);
                }
            }
            let bytes = match rng.below(4) {
                0 => bytes,
                1 => {
                    let n = rng.below(9000);
                    rng.bytes(n)
                }
                _ => rng.mutate(&bytes),
            };
            let _ = crate::fuzz::no_panic("abi::decode", i, &bytes, || decode(&bytes));
        }
    }
}
