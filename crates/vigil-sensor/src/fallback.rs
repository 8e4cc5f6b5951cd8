//! The sensor without eBPF (no BTF, a locked-down kernel): processes from the netlink
//! proc connector, enriched from /proc; files written, from fanotify.
//!
//! What it cannot do that the eBPF sensor does: see argv, cwd and credentials of a
//! process that exits before /proc is read (the event then says `argv_unreadable`),
//! network, DNS and the other syscall events, and filter in the kernel. Losses are
//! reported as for eBPF: a proc connector overrun (`ENOBUFS`) or a fanotify queue
//! overflow counts one lost record at least, and emits a `Drop` event.

use crate::abi::{self, RawCreds, RawExec, RawExit, RawFork, RawHeader, Record};
use crate::config::SensorConfig;
use crate::error::SensorError;
use crate::host::{Host, USER_HZ};
use crate::ocsf::ids::event_log_activity;
use crate::ocsf::Converter;
use crate::stats::{Stats, StatsReport};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::fanotify::{EventFFlags, Fanotify, InitFlags, MarkFlags, MaskFlags};
use std::io::{Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};
use vigil_event::OcsfEvent;

const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_EVENT_FORK: u32 = 0x1;
const PROC_EVENT_EXEC: u32 = 0x2;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;
const NLMSG_HDRLEN: usize = 16;
const CN_MSG_LEN: usize = 20;

fn io_err(what: &str) -> impl FnOnce(std::io::Error) -> SensorError + '_ {
    move |e| SensorError::Fallback {
        what: what.to_string(),
        source: e,
    }
}

/// Opens a netlink socket on the proc connector and subscribes to process events.
#[allow(
    unsafe_code,
    reason = "socket(2)/bind(2) for NETLINK_CONNECTOR: no safe binding offers this protocol"
)]
fn proc_connector() -> Result<std::fs::File, SensorError> {
    // SAFETY: socket(2) with constant arguments; the result is checked below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            libc::NETLINK_CONNECTOR,
        )
    };
    if fd < 0 {
        return Err(io_err("open the netlink proc connector")(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns; OwnedFd closes it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain old data, all-zero is a valid value; the fields that
    // matter are set, and bind(2) gets the struct's true size.
    let rc = unsafe {
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = CN_IDX_PROC;
        addr.nl_pid = 0;
        libc::bind(
            fd,
            std::ptr::from_ref(&addr).cast::<libc::sockaddr>(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io_err("bind the netlink proc connector")(
            std::io::Error::last_os_error(),
        ));
    }
    let mut sock = std::fs::File::from(owned);
    // nlmsghdr + cn_msg + the listen op.
    let total = (NLMSG_HDRLEN + CN_MSG_LEN + 4) as u32;
    let mut msg = Vec::with_capacity(total as usize);
    msg.extend_from_slice(&total.to_ne_bytes());
    msg.extend_from_slice(&3u16.to_ne_bytes()); // NLMSG_DONE
    msg.extend_from_slice(&0u16.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&std::process::id().to_ne_bytes());
    msg.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    msg.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&4u16.to_ne_bytes());
    msg.extend_from_slice(&0u16.to_ne_bytes());
    msg.extend_from_slice(&PROC_CN_MCAST_LISTEN.to_ne_bytes());
    sock.write_all(&msg)
        .map_err(io_err("subscribe to process events"))?;
    Ok(sock)
}

/// A process event from the proc connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProcEvent {
    Fork { parent: u32, child: u32 },
    Exec { pid: u32 },
    Exit { pid: u32, status: u32 },
}

/// `NLMSG_NOOP`: a netlink message to skip.
const NLMSG_NOOP: u16 = 1;
/// `NLMSG_ERROR`: an error (or, with error 0, an acknowledgement).
const NLMSG_ERROR: u16 = 2;
/// Bytes of a `proc_event` before its event data: `what`, `cpu`, `timestamp_ns`.
const PROC_EVENT_HDR: usize = 16;

/// Why a message of the proc connector could not be decoded. `at` is the message's
/// offset in its datagram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum NetlinkError {
    /// The message's length field is shorter than the headers it must hold.
    #[error(
        "netlink message at offset {at}: length {len} is shorter than its headers ({need} bytes)"
    )]
    ShortMessage {
        /// Offset of the message.
        at: usize,
        /// Its `nlmsg_len`.
        len: usize,
        /// Bytes of `nlmsghdr` (and `cn_msg`, for a connector message).
        need: usize,
    },
    /// The message's length field runs past the datagram.
    #[error("netlink message at offset {at}: length {len} runs past the {available} bytes left in the datagram")]
    PastEnd {
        /// Offset of the message.
        at: usize,
        /// Its `nlmsg_len`.
        len: usize,
        /// Bytes from `at` to the end of the datagram.
        available: usize,
    },
    /// Bytes after the last message, too few for a netlink header.
    #[error("{len} bytes at offset {at} after the last netlink message, fewer than a header (16)")]
    Trailing {
        /// Offset of the bytes.
        at: usize,
        /// How many.
        len: usize,
    },
    /// The kernel answered with an error.
    #[error("netlink message at offset {at}: the kernel reports error {errno}")]
    Kernel {
        /// Offset of the message.
        at: usize,
        /// The (negative) errno.
        errno: i32,
    },
    /// A connector message of another connector than the proc connector.
    #[error("netlink message at offset {at}: connector {idx}:{val}, not the proc connector (1:1)")]
    Foreign {
        /// Offset of the message.
        at: usize,
        /// `cn_msg.id.idx`.
        idx: u32,
        /// `cn_msg.id.val`.
        val: u32,
    },
    /// The connector's payload length runs past the message.
    #[error("netlink message at offset {at}: connector payload of {len} bytes runs past the message's {available}")]
    PayloadPastEnd {
        /// Offset of the message.
        at: usize,
        /// `cn_msg.len`.
        len: usize,
        /// Bytes after `cn_msg` in the message.
        available: usize,
    },
    /// A process event shorter than its kind needs.
    #[error("netlink message at offset {at}: proc event {what:#x} has {len} bytes, needs {need}")]
    ShortEvent {
        /// Offset of the message.
        at: usize,
        /// `proc_event.what` (0 when even that is missing).
        what: u32,
        /// Bytes of the event.
        len: usize,
        /// Bytes its kind needs.
        need: usize,
    },
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

/// Decodes the messages of one datagram (it may hold several) into `out`: one entry per
/// process event Vigil reports, and one error per message that is malformed. Events of
/// other kinds (uid, comm, ptrace changes, ...) are skipped. After a message whose length
/// cannot be trusted the rest of the datagram cannot be framed: one error covers it.
fn decode_datagram(buf: &[u8], out: &mut Vec<Result<ProcEvent, NetlinkError>>) {
    let mut at = 0;
    while at < buf.len() {
        let rest = &buf[at..];
        let (Some(len), Some(kind), true) =
            (u32_at(rest, 0), u16_at(rest, 4), rest.len() >= NLMSG_HDRLEN)
        else {
            out.push(Err(NetlinkError::Trailing {
                at,
                len: rest.len(),
            }));
            return;
        };
        let len = len as usize;
        if len < NLMSG_HDRLEN {
            let need = NLMSG_HDRLEN;
            out.push(Err(NetlinkError::ShortMessage { at, len, need }));
            return;
        }
        if len > rest.len() {
            let available = rest.len();
            out.push(Err(NetlinkError::PastEnd { at, len, available }));
            return;
        }
        if let Some(item) = decode_message(at, kind, &rest[..len]) {
            out.push(item);
        }
        // Messages start 4-byte aligned.
        at += (len + 3) & !3;
    }
}

/// One netlink message (`msg`: exactly `nlmsg_len` bytes, of type `kind`): `None` for
/// one that carries nothing Vigil reports.
fn decode_message(at: usize, kind: u16, msg: &[u8]) -> Option<Result<ProcEvent, NetlinkError>> {
    let payload = &msg[NLMSG_HDRLEN..];
    match kind {
        NLMSG_NOOP => return None,
        NLMSG_ERROR => {
            // nlmsgerr: the errno, then the message it answers; 0 acknowledges.
            let Some(errno) = u32_at(payload, 0) else {
                let (len, need) = (msg.len(), NLMSG_HDRLEN + 4);
                return Some(Err(NetlinkError::ShortMessage { at, len, need }));
            };
            let errno = errno as i32;
            return (errno != 0).then_some(Err(NetlinkError::Kernel { at, errno }));
        }
        _ => {}
    }
    let need = NLMSG_HDRLEN + CN_MSG_LEN;
    if msg.len() < need {
        let len = msg.len();
        return Some(Err(NetlinkError::ShortMessage { at, len, need }));
    }
    // cn_msg: id.idx, id.val, seq, ack, len (u16), flags (u16).
    let (idx, val) = (u32_at(payload, 0)?, u32_at(payload, 4)?);
    if (idx, val) != (CN_IDX_PROC, CN_VAL_PROC) {
        return Some(Err(NetlinkError::Foreign { at, idx, val }));
    }
    let cn_len = usize::from(u16_at(payload, 16)?);
    let data = &payload[CN_MSG_LEN..];
    let Some(ev) = data.get(..cn_len) else {
        let available = data.len();
        return Some(Err(NetlinkError::PayloadPastEnd {
            at,
            len: cn_len,
            available,
        }));
    };
    let what = u32_at(ev, 0).unwrap_or(0);
    // Bytes each kind needs: its fields as decode_event reads them.
    let need = PROC_EVENT_HDR
        + match what {
            PROC_EVENT_FORK => 16,
            PROC_EVENT_EXEC => 8,
            PROC_EVENT_EXIT => 12,
            _ => 0,
        };
    if ev.len() < need {
        let len = ev.len();
        return Some(Err(NetlinkError::ShortEvent {
            at,
            what,
            len,
            need,
        }));
    }
    decode_event(what, &ev[PROC_EVENT_HDR..]).map(Ok)
}

/// The event data of a `proc_event` of kind `what`, long enough for it: `None` for the
/// kinds Vigil does not report and for threads (not processes).
fn decode_event(what: u32, d: &[u8]) -> Option<ProcEvent> {
    match what {
        PROC_EVENT_FORK => {
            // parent_pid, parent_tgid, child_pid, child_tgid
            let (parent, pid, tgid) = (u32_at(d, 4)?, u32_at(d, 8)?, u32_at(d, 12)?);
            (pid == tgid).then_some(ProcEvent::Fork {
                parent,
                child: tgid,
            })
        }
        // process_pid, process_tgid
        PROC_EVENT_EXEC => Some(ProcEvent::Exec { pid: u32_at(d, 4)? }),
        PROC_EVENT_EXIT => {
            // process_pid, process_tgid, exit_code, ...
            let (pid, tgid, status) = (u32_at(d, 0)?, u32_at(d, 4)?, u32_at(d, 8)?);
            (pid == tgid).then_some(ProcEvent::Exit { pid: tgid, status })
        }
        _ => None,
    }
}

/// Kernel `s_dev` encoding of a user-space `st_dev`.
fn kernel_dev(dev: u64) -> u32 {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    ((major << 20) | (minor & 0xf_ffff)) as u32
}

/// A header for `pid` read from /proc (`None` once the process is gone).
fn header_from_proc(pid: u32, conv: &Converter) -> Option<RawHeader> {
    let info = conv.read_proc(pid)?;
    let tick_ns = 1_000_000_000 / USER_HZ;
    let parent_start = conv
        .read_proc(info.ppid)
        .map_or(0, |p| p.start_ticks * tick_ns);
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    Some(RawHeader {
        ktime: now_boot_ns(conv.host()),
        pid,
        tid: pid,
        ppid: info.ppid,
        start_boottime: info.start_ticks * tick_ns,
        parent_start_boottime: parent_start,
        cgroup_id: 0,
        comm: comm.trim_end().to_string(),
    })
}

fn now_boot_ns(host: &Host) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    now.saturating_sub(host.boot_epoch_ns)
}

/// A number in a /proc file of one (`loginuid`, `sessionid`): `u32::MAX` when it cannot
/// be read; one that does not parse is counted as malformed.
fn proc_u32(pid: u32, file: &str, conv: &Converter) -> u32 {
    let path = format!("/proc/{pid}/{file}");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return u32::MAX;
    };
    text.trim().parse().unwrap_or_else(|_| {
        conv.note_malformed(&crate::proc::ProcError {
            path,
            what: format!("`{}` is not a number", text.trim()),
        });
        u32::MAX
    })
}

fn creds_from_proc(pid: u32, conv: &Converter) -> RawCreds {
    let status = crate::proc::read_status(pid, &mut |e| conv.note_malformed(&e));
    let (uid, gid, caps) = status.map_or(([u32::MAX; 4], [u32::MAX; 4], [0; 3]), |s| {
        (s.uid, s.gid, s.caps)
    });
    RawCreds {
        uid: uid[0],
        euid: uid[1],
        suid: uid[2],
        fsuid: uid[3],
        gid: gid[0],
        egid: gid[1],
        sgid: gid[2],
        fsgid: gid[3],
        loginuid: proc_u32(pid, "loginuid", conv),
        sessionid: proc_u32(pid, "sessionid", conv),
        cap_effective: caps[0],
        cap_permitted: caps[1],
        cap_inheritable: caps[2],
    }
}

/// An exec record built from /proc, as complete as the process's lifetime allows.
fn exec_from_proc(pid: u32, conv: &Converter) -> Option<RawExec> {
    let header = header_from_proc(pid, conv)?;
    let base = format!("/proc/{pid}");
    let exe = std::fs::read_link(format!("{base}/exe")).map(|p| p.to_string_lossy().into_owned());
    let meta = std::fs::metadata(format!("{base}/exe")).ok();
    let argv: Vec<String> = std::fs::read(format!("{base}/cmdline"))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    let mut flags = 0;
    if argv.is_empty() {
        flags |= abi::EXEC_ARGV_FAULT;
    }
    let exe = exe.unwrap_or_default();
    if exe.ends_with(" (deleted)") || exe.starts_with("/memfd:") {
        flags |= abi::EXEC_EXE_UNLINKED;
    }
    Some(RawExec {
        creds: creds_from_proc(pid, conv),
        exe_ino: meta.as_ref().map_or(0, MetadataExt::ino),
        exe_dev: meta.as_ref().map_or(0, |m| kernel_dev(m.dev())),
        exe_mtime_sec: meta
            .as_ref()
            .map_or(0, |m| u64::try_from(m.mtime()).unwrap_or(0)),
        exe_mtime_nsec: meta
            .as_ref()
            .map_or(0, |m| u32::try_from(m.mtime_nsec()).unwrap_or(0)),
        exe_nlink: meta
            .as_ref()
            .map_or(1, |m| u32::try_from(m.nlink()).unwrap_or(1)),
        flags,
        old_pid: pid,
        open_fds_max: 0,
        open_fds: [0; abi::OPEN_FDS_WORDS],
        exe: exe.trim_end_matches(" (deleted)").to_string(),
        cwd: std::fs::read_link(format!("{base}/cwd"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
        filename: argv.first().cloned().unwrap_or_default(),
        tty: String::new(),
        argv,
        header,
    })
}

/// The fallback sensor.
pub struct Fallback {
    netlink: std::fs::File,
    fanotify: Option<Fanotify>,
    converter: Converter,
    stats: Stats,
    lost: u64,
    lost_reported: u64,
    last_loss_check: Instant,
    loss_check: Duration,
    report: StatsReport,
    buf: Vec<u8>,
    events: Vec<Result<ProcEvent, NetlinkError>>,
    me: u32,
}

impl std::fmt::Debug for Fallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fallback")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Filesystem types whose writes fanotify reports.
const WATCHED_FS: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "overlay", "f2fs", "vfat", "zfs",
];

/// A mount point of `/proc/self/mounts`: the directory and the filesystem type.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount<'a> {
    dir: std::path::PathBuf,
    fstype: &'a str,
}

/// A field of `/proc/self/mounts` with the kernel's octal escapes (`\040` for a space,
/// `\011`, `\012`, `\134`) decoded; `None` for an escape the kernel does not write.
fn unescape_mount_field(field: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let digits = b.get(i + 1..i + 4)?;
            if !digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                return None;
            }
            let v = digits.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
            out.push(u8::try_from(v).ok()?);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(std::ffi::OsString::from_vec(out).into())
}

/// The mount points of a `/proc/self/mounts` text, one per line, or what is wrong with
/// the line (`line N: ...`).
fn mount_points(text: &str) -> impl Iterator<Item = Result<Mount<'_>, String>> {
    text.lines().enumerate().map(|(i, line)| {
        let n = i + 1;
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(dir), Some(fstype)) = (f.get(1), f.get(2)) else {
            return Err(format!("line {n}: {} fields, needs at least 3", f.len()));
        };
        let dir = unescape_mount_field(dir)
            .ok_or_else(|| format!("line {n}: mount point `{dir}` has a broken escape"))?;
        Ok(Mount { dir, fstype })
    })
}

/// fanotify, watching writes on every local filesystem; a malformed line of
/// `/proc/self/mounts` is counted by `conv`.
fn open_fanotify(conv: &Converter) -> Result<Fanotify, SensorError> {
    let fan = Fanotify::init(
        InitFlags::FAN_CLASS_NOTIF | InitFlags::FAN_CLOEXEC | InitFlags::FAN_NONBLOCK,
        EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE | EventFFlags::O_CLOEXEC,
    )
    .map_err(|e| io_err("open fanotify")(std::io::Error::from(e)))?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut marked = 0;
    for mount in mount_points(&mounts) {
        let mount = match mount {
            Ok(m) => m,
            Err(what) => {
                conv.note_malformed(&format_args!("/proc/self/mounts: {what}"));
                continue;
            }
        };
        if !WATCHED_FS.contains(&mount.fstype) {
            continue;
        }
        let r = fan.mark(
            MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_FILESYSTEM,
            MaskFlags::FAN_CLOSE_WRITE,
            nix::fcntl::AT_FDCWD,
            Some(mount.dir.as_path()),
        );
        match r {
            Ok(()) => marked += 1,
            Err(e) => tracing::debug!(dir = %mount.dir.display(), "fanotify cannot watch: {e}"),
        }
    }
    tracing::debug!(filesystems = marked, "fanotify watching writes");
    Ok(fan)
}

impl Fallback {
    /// Subscribes to the proc connector and fanotify and seeds the process table.
    pub fn start(config: SensorConfig) -> Result<Fallback, SensorError> {
        config.validate()?;
        let netlink = proc_connector()?;
        let loss_check = Duration::from_millis(config.loss_check_ms);
        let config_stats_secs = config.stats_interval_secs;
        let converter = Converter::for_this_host(config);
        let fanotify = match open_fanotify(&converter) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!("fallback sensor without file events: {e}");
                None
            }
        };
        tracing::info!(
            files = fanotify.is_some(),
            processes = converter.table().len(),
            "fallback sensor running (netlink proc connector + fanotify)"
        );
        Ok(Fallback {
            netlink,
            fanotify,
            converter,
            stats: Stats::default(),
            lost: 0,
            lost_reported: 0,
            last_loss_check: Instant::now(),
            loss_check,
            report: StatsReport::every(config_stats_secs),
            buf: vec![0u8; 64 * 1024],
            events: Vec::new(),
            me: std::process::id(),
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Processes in the sensor's process table.
    pub fn processes(&self) -> usize {
        self.converter.table().len()
    }

    /// The `Start` event.
    pub fn start_event(&self) -> OcsfEvent {
        self.converter.sensor_event(
            event_log_activity::START,
            "netlink+fanotify",
            format!(
                "fallback sensor started: processes from the netlink proc connector{}",
                if self.fanotify.is_some() {
                    ", written files from fanotify"
                } else {
                    "; no file events (fanotify unavailable)"
                }
            ),
            None,
        )
    }

    /// The `Stop` event.
    pub fn stop_event(&self) -> OcsfEvent {
        self.converter.sensor_event(
            event_log_activity::STOP,
            "netlink+fanotify",
            format!(
                "fallback sensor stopped: {} records received, at least {} lost, {} malformed",
                self.stats.received, self.lost, self.stats.malformed
            ),
            Some(self.lost),
        )
    }

    /// Waits up to `timeout` for activity and hands the events to `sink`.
    pub fn poll(
        &mut self,
        timeout: Duration,
        sink: &mut dyn FnMut(OcsfEvent),
    ) -> Result<usize, SensorError> {
        self.poll_timed(timeout, &mut |ev, _| sink(ev))
    }

    /// [`Fallback::poll`] with the times of the events' messages (see
    /// [`Fallback::drain_timed`]).
    pub fn poll_timed(
        &mut self,
        timeout: Duration,
        sink: &mut dyn FnMut(OcsfEvent, Option<u64>),
    ) -> Result<usize, SensorError> {
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        {
            let mut fds = vec![PollFd::new(self.netlink.as_fd(), PollFlags::POLLIN)];
            if let Some(f) = &self.fanotify {
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
            }
            match nix::poll::poll(&mut fds, PollTimeout::from(ms)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(io_err("wait for events")(std::io::Error::from(e))),
            }
        }
        self.drain_timed(sink)
    }

    /// Hands every pending event to `sink` without waiting.
    pub fn drain(&mut self, sink: &mut dyn FnMut(OcsfEvent)) -> Result<usize, SensorError> {
        self.drain_timed(&mut |ev, _| sink(ev))
    }

    /// [`Fallback::drain`], handing each event with the time its message was received
    /// (ns since boot; `None` for the sensor's own events).
    pub fn drain_timed(
        &mut self,
        sink: &mut dyn FnMut(OcsfEvent, Option<u64>),
    ) -> Result<usize, SensorError> {
        let mut emitted = 0;
        loop {
            match self.netlink.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => {
                    self.events.clear();
                    decode_datagram(&self.buf[..n], &mut self.events);
                    let events = std::mem::take(&mut self.events);
                    for ev in &events {
                        self.stats.received += 1;
                        match ev {
                            Ok(ev) => {
                                if let Some(record) = self.record_of(*ev) {
                                    let t = record.ktime();
                                    emitted +=
                                        self.converter.convert(record, &mut |ev| sink(ev, Some(t)));
                                }
                            }
                            Err(e) => self
                                .converter
                                .note_malformed(&format_args!("proc connector: {e}")),
                        }
                    }
                    self.events = events;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.lost += 1; // the kernel dropped messages: at least one
                }
                Err(e) => return Err(io_err("read the proc connector")(e)),
            }
        }
        let sink = &mut |ev| sink(ev, None);
        emitted += self.drain_files(sink)?;
        self.stats.malformed = self.converter.malformed();
        emitted += self.converter.expire_forks(false, sink);
        if self.last_loss_check.elapsed() >= self.loss_check {
            emitted += self.check_loss(sink)?;
            self.converter.sweep();
        }
        // The kernel's queues lose whole messages, of no known kind.
        self.stats.lost_by_kind = vec![self.lost];
        if let Some(lost_since) = self.report.due(&self.stats) {
            sink(
                self.converter
                    .stats_event("netlink+fanotify", &self.stats, lost_since),
            );
            emitted += 1;
        }
        self.stats.emitted += emitted as u64;
        Ok(emitted)
    }

    /// At stop: hands every pending event to `sink`, reports the forks still held back,
    /// and checks for losses a last time.
    pub fn finish(&mut self, sink: &mut dyn FnMut(OcsfEvent)) -> Result<usize, SensorError> {
        let drained = self.drain(sink)?;
        let more = self.converter.expire_forks(true, sink) + self.check_loss(sink)?;
        self.stats.emitted += more as u64;
        Ok(drained + more)
    }

    /// The sensor record for a proc connector event (`None` for the agent's own and for
    /// kinds Vigil does not report).
    fn record_of(&self, ev: ProcEvent) -> Option<Record> {
        let conv = &self.converter;
        let host = conv.host();
        let record = match ev {
            ProcEvent::Exec { pid } if pid != self.me => {
                Record::Exec(Box::new(exec_from_proc(pid, conv).unwrap_or_else(|| {
                    RawExec {
                        header: RawHeader::bare(pid, 0, now_boot_ns(host)),
                        creds: RawCreds::default(),
                        exe_ino: 0,
                        exe_dev: 0,
                        exe_mtime_sec: 0,
                        exe_mtime_nsec: 0,
                        exe_nlink: 1,
                        flags: abi::EXEC_ARGV_FAULT,
                        old_pid: pid,
                        open_fds_max: 0,
                        open_fds: [0; abi::OPEN_FDS_WORDS],
                        exe: String::new(),
                        cwd: String::new(),
                        filename: String::new(),
                        tty: String::new(),
                        argv: Vec::new(),
                    }
                })))
            }
            ProcEvent::Fork { parent, child } if parent != self.me => {
                let header = header_from_proc(child, conv).unwrap_or(RawHeader::bare(
                    child,
                    parent,
                    now_boot_ns(host),
                ));
                Record::Fork(RawFork {
                    header,
                    creds: creds_from_proc(child, conv),
                })
            }
            ProcEvent::Exit { pid, status } if pid != self.me => {
                let known = conv.table().get(pid).cloned();
                let tick_ns = 1_000_000_000 / USER_HZ;
                Record::Exit(RawExit {
                    header: RawHeader {
                        ktime: now_boot_ns(host),
                        pid,
                        tid: pid,
                        ppid: known.as_ref().map_or(0, |p| p.ppid),
                        start_boottime: known.as_ref().map_or(0, |p| p.start_ticks * tick_ns),
                        parent_start_boottime: 0,
                        cgroup_id: 0,
                        comm: known
                            .as_ref()
                            .and_then(|p| p.exe.rsplit('/').next().map(String::from))
                            .unwrap_or_default(),
                    },
                    exit_code: status,
                })
            }
            _ => return None,
        };
        Some(record)
    }

    fn drain_files(&mut self, sink: &mut dyn FnMut(OcsfEvent)) -> Result<usize, SensorError> {
        let Some(fan) = &self.fanotify else {
            return Ok(0);
        };
        let mut written: Vec<(u32, String)> = Vec::new();
        let mut received = 0u64;
        let mut overflows = 0u64;
        loop {
            let events = match fan.read_events() {
                Ok(e) => e,
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(io_err("read fanotify")(std::io::Error::from(e))),
            };
            if events.is_empty() {
                break;
            }
            for ev in events {
                received += 1;
                if ev.mask().contains(MaskFlags::FAN_Q_OVERFLOW) {
                    overflows += 1;
                    continue;
                }
                let pid = u32::try_from(ev.pid()).unwrap_or(0);
                let Some(fd) = ev.fd() else { continue };
                if pid == self.me {
                    continue;
                }
                let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
                match std::fs::read_link(&link) {
                    Ok(path) => written.push((pid, path.to_string_lossy().into_owned())),
                    Err(e) => self.converter.note_malformed(&format_args!(
                        "fanotify event of pid {pid}: the written file's path ({link}): {e}"
                    )),
                }
            }
        }
        self.stats.received += received;
        self.lost += overflows;
        let mut n = written.len();
        for (pid, path) in written {
            n += self.converter.release_fork(pid, sink);
            let out = self.file_written(pid, &path);
            sink(out);
        }
        Ok(n)
    }

    fn file_written(&mut self, pid: u32, path: &str) -> OcsfEvent {
        let header = header_from_proc(pid, &self.converter).unwrap_or(RawHeader::bare(
            pid,
            0,
            now_boot_ns(self.converter.host()),
        ));
        self.converter.file_closed_after_write(&header, path)
    }

    /// Emits a `Drop` event for losses since the last report.
    pub fn check_loss(&mut self, sink: &mut dyn FnMut(OcsfEvent)) -> Result<usize, SensorError> {
        self.last_loss_check = Instant::now();
        self.stats.lost_by_kind = vec![self.lost];
        if self.lost > self.lost_reported {
            let new = self.lost - self.lost_reported;
            self.lost_reported = self.lost;
            tracing::warn!(
                lost = new,
                "fallback sensor lost records (kernel queue overrun)"
            );
            sink(self.converter.sensor_event(
                event_log_activity::OTHER,
                "netlink+fanotify",
                format!("at least {new} records lost (kernel queue overrun)"),
                Some(new),
            ));
            return Ok(1);
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_encodings_round_trip() {
        for (major, minor) in [(8u32, 1u32), (259, 3), (0, 0x45), (1, 0x1234)] {
            let kernel = (major << 20) | minor;
            assert_eq!(kernel_dev(crate::hash::user_dev(kernel)), kernel);
        }
    }

    /// One proc connector message as the kernel writes it: `what` and its event data
    /// (padded to the kernel's 24-byte union).
    fn message(what: u32, data: &[u32]) -> Vec<u8> {
        let mut ev = Vec::new();
        ev.extend_from_slice(&what.to_ne_bytes());
        ev.extend_from_slice(&0u32.to_ne_bytes()); // cpu
        ev.extend_from_slice(&123_456u64.to_ne_bytes()); // timestamp_ns
        for d in data {
            ev.extend_from_slice(&d.to_ne_bytes());
        }
        ev.resize(PROC_EVENT_HDR + 24, 0);
        let total = NLMSG_HDRLEN + CN_MSG_LEN + ev.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(total as u32).to_ne_bytes());
        m.extend_from_slice(&3u16.to_ne_bytes()); // NLMSG_DONE
        m.extend_from_slice(&[0; 10]); // flags, seq, pid
        m.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
        m.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
        m.extend_from_slice(&[0; 8]); // seq, ack
        m.extend_from_slice(&(ev.len() as u16).to_ne_bytes());
        m.extend_from_slice(&[0; 2]); // flags
        m.extend_from_slice(&ev);
        m
    }

    fn decode(buf: &[u8]) -> Vec<Result<ProcEvent, NetlinkError>> {
        let mut out = Vec::new();
        decode_datagram(buf, &mut out);
        out
    }

    #[test]
    fn decodes_fork_exec_exit_and_skips_threads_and_other_kinds() {
        let mut d = message(PROC_EVENT_FORK, &[10, 10, 11, 11]);
        d.extend(message(PROC_EVENT_FORK, &[10, 10, 12, 11])); // a thread of 11
        d.extend(message(PROC_EVENT_EXEC, &[11, 11]));
        d.extend(message(0x4, &[11, 11, 0, 0])); // PROC_EVENT_UID
        d.extend(message(PROC_EVENT_EXIT, &[12, 11, 0, 0, 10, 10])); // the thread
        d.extend(message(PROC_EVENT_EXIT, &[11, 11, 3 << 8, 0, 10, 10]));
        assert_eq!(
            decode(&d),
            [
                Ok(ProcEvent::Fork {
                    parent: 10,
                    child: 11
                }),
                Ok(ProcEvent::Exec { pid: 11 }),
                Ok(ProcEvent::Exit {
                    pid: 11,
                    status: 3 << 8
                }),
            ]
        );
    }

    /// Regression: a message of 16 to 35 bytes whose length field said so (at least a
    /// netlink header, less than the connector's headers) panicked on `buf[36..]`.
    #[test]
    fn netlink_message_shorter_than_header_is_an_error() {
        for len in NLMSG_HDRLEN..NLMSG_HDRLEN + CN_MSG_LEN {
            let mut m = message(PROC_EVENT_EXEC, &[5, 5]);
            m.truncate(len);
            m[..4].copy_from_slice(&(len as u32).to_ne_bytes());
            assert_eq!(
                decode(&m),
                [Err(NetlinkError::ShortMessage {
                    at: 0,
                    len,
                    need: 36
                })],
                "{len}"
            );
        }
        // After a good message, too.
        let mut d = message(PROC_EVENT_EXEC, &[5, 5]);
        let at = d.len();
        d.extend_from_slice(&20u32.to_ne_bytes());
        d.extend_from_slice(&[0; 16]);
        assert_eq!(
            decode(&d),
            [
                Ok(ProcEvent::Exec { pid: 5 }),
                Err(NetlinkError::ShortMessage {
                    at,
                    len: 20,
                    need: 36
                })
            ]
        );
    }

    #[test]
    fn garbage_datagrams_are_errors_not_events() {
        assert_eq!(decode(&[]), []);
        assert_eq!(
            decode(&[0xff; 15]),
            [Err(NetlinkError::Trailing { at: 0, len: 15 })]
        );
        assert_eq!(
            decode(&[0xff; 64]),
            [Err(NetlinkError::PastEnd {
                at: 0,
                len: u32::MAX as usize,
                available: 64
            })]
        );
        let mut zero_len = message(PROC_EVENT_EXEC, &[5, 5]);
        zero_len[..4].copy_from_slice(&0u32.to_ne_bytes());
        assert_eq!(
            decode(&zero_len),
            [Err(NetlinkError::ShortMessage {
                at: 0,
                len: 0,
                need: 16
            })]
        );
        // An exec event cut short inside the message (its length fields agree).
        let mut short = message(PROC_EVENT_EXEC, &[5, 5]);
        short.truncate(NLMSG_HDRLEN + CN_MSG_LEN + 20);
        let len = short.len() as u32;
        short[..4].copy_from_slice(&len.to_ne_bytes());
        short[32..34].copy_from_slice(&20u16.to_ne_bytes());
        assert_eq!(
            decode(&short),
            [Err(NetlinkError::ShortEvent {
                at: 0,
                what: PROC_EVENT_EXEC,
                len: 20,
                need: 24
            })]
        );
        let mut past = message(PROC_EVENT_EXEC, &[5, 5]);
        past[32..34].copy_from_slice(&41u16.to_ne_bytes());
        assert_eq!(
            decode(&past),
            [Err(NetlinkError::PayloadPastEnd {
                at: 0,
                len: 41,
                available: 40
            })]
        );
        let mut foreign = message(PROC_EVENT_EXEC, &[5, 5]);
        foreign[16..20].copy_from_slice(&7u32.to_ne_bytes());
        assert_eq!(
            decode(&foreign),
            [Err(NetlinkError::Foreign {
                at: 0,
                idx: 7,
                val: 1
            })]
        );
        let mut error = message(0, &[]);
        error[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        error[16..20].copy_from_slice(&(-105i32).to_ne_bytes());
        assert_eq!(
            decode(&error),
            [Err(NetlinkError::Kernel { at: 0, errno: -105 })]
        );
        error[16..20].copy_from_slice(&0i32.to_ne_bytes());
        assert_eq!(decode(&error), [], "an acknowledgement");
    }

    /// Random datagrams of valid messages decode to exactly their events; mutated ones
    /// decode to events and errors, never a panic.
    #[test]
    fn random_datagrams_decode_exactly_or_fail_cleanly() {
        let mut rng = crate::fuzz::Rng::for_test(1);
        for i in 0..crate::fuzz::iterations() {
            let mut d = Vec::new();
            let mut want = Vec::new();
            for _ in 0..=rng.below(4) {
                let (p, t) = (rng.next() as u32, rng.next() as u32);
                let thread = rng.one_in(4);
                let tid = if thread { t ^ 1 } else { t };
                match rng.below(4) {
                    0 => {
                        d.extend(message(PROC_EVENT_FORK, &[p, p, tid, t]));
                        if !thread {
                            want.push(Ok(ProcEvent::Fork {
                                parent: p,
                                child: t,
                            }));
                        }
                    }
                    1 => {
                        d.extend(message(PROC_EVENT_EXEC, &[tid, t]));
                        want.push(Ok(ProcEvent::Exec { pid: t }));
                    }
                    2 => {
                        let status = rng.next() as u32;
                        d.extend(message(PROC_EVENT_EXIT, &[tid, t, status, 0, p, p]));
                        if !thread {
                            want.push(Ok(ProcEvent::Exit { pid: t, status }));
                        }
                    }
                    _ => d.extend(message(rng.pick(&[0, 0x4, 0x40, 0x80, 0x200]), &[t, t])),
                }
            }
            assert_eq!(decode(&d), want, "iteration {i}");
            let bad = if rng.one_in(8) {
                let n = rng.below(200);
                rng.bytes(n)
            } else {
                rng.mutate(&d)
            };
            let out = crate::fuzz::no_panic("decode_datagram", i, &bad, || decode(&bad));
            // A message is 16 bytes at least: no more results than that allows.
            assert!(out.len() <= bad.len() / NLMSG_HDRLEN + 1, "iteration {i}");
        }
    }

    #[test]
    fn mount_points_decode_octal_escapes_and_report_broken_lines() {
        let text = "sysfs /sys sysfs rw 0 0\n\
                    /dev/sda1 /mnt/a\\040b\\011c\\134d ext4 rw 0 0\n\
                    only-two fields\n\
                    x /bad\\04 ext4 rw 0 0\n\
                    x /bad\\400 ext4 rw 0 0\n";
        let got: Vec<_> = mount_points(text).collect();
        assert_eq!(
            got[0],
            Ok(Mount {
                dir: "/sys".into(),
                fstype: "sysfs"
            })
        );
        assert_eq!(
            got[1],
            Ok(Mount {
                dir: "/mnt/a b\tc\\d".into(),
                fstype: "ext4"
            })
        );
        assert_eq!(got[2], Err("line 3: 2 fields, needs at least 3".into()));
        assert_eq!(
            got[3],
            Err("line 4: mount point `/bad\\04` has a broken escape".into())
        );
        assert!(got[4].is_err(), "\\400 is past a byte");
        let real = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
        assert!(mount_points(&real).all(|m| m.is_ok()), "{real}");
        let mut rng = crate::fuzz::Rng::for_test(2);
        for i in 0..crate::fuzz::iterations() {
            let bad = rng.mutate_text(&real);
            crate::fuzz::no_panic("mount_points", i, bad.as_bytes(), || {
                mount_points(&bad).count()
            });
        }
    }
}
