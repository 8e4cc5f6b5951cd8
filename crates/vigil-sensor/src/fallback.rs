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

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// Decodes the events of one datagram (which may hold several netlink messages).
fn decode_datagram(mut buf: &[u8], out: &mut Vec<ProcEvent>) {
    while buf.len() >= NLMSG_HDRLEN {
        let Some(len) = u32_at(buf, 0).map(|l| l as usize) else {
            return;
        };
        if len < NLMSG_HDRLEN || len > buf.len() {
            return;
        }
        let ev = &buf[NLMSG_HDRLEN + CN_MSG_LEN..len.max(NLMSG_HDRLEN + CN_MSG_LEN)];
        let data = 16; // what, cpu, timestamp_ns
        match u32_at(ev, 0) {
            Some(PROC_EVENT_FORK) => {
                if let (Some(parent), Some(pid), Some(tgid)) = (
                    u32_at(ev, data + 4),
                    u32_at(ev, data + 8),
                    u32_at(ev, data + 12),
                ) {
                    if pid == tgid {
                        out.push(ProcEvent::Fork {
                            parent,
                            child: tgid,
                        });
                    }
                }
            }
            Some(PROC_EVENT_EXEC) => {
                if let Some(tgid) = u32_at(ev, data + 4) {
                    out.push(ProcEvent::Exec { pid: tgid });
                }
            }
            Some(PROC_EVENT_EXIT) => {
                if let (Some(pid), Some(tgid), Some(status)) =
                    (u32_at(ev, data), u32_at(ev, data + 4), u32_at(ev, data + 8))
                {
                    if pid == tgid {
                        out.push(ProcEvent::Exit { pid: tgid, status });
                    }
                }
            }
            _ => {}
        }
        let aligned = (len + 3) & !3;
        buf = buf.get(aligned..).unwrap_or(&[]);
    }
}

/// Kernel `s_dev` encoding of a user-space `st_dev`.
fn kernel_dev(dev: u64) -> u32 {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    ((major << 20) | (minor & 0xf_ffff)) as u32
}

fn status_fields(pid: u32) -> (Vec<u32>, Vec<u32>, [u64; 3]) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let ids = |key: &str| -> Vec<u32> {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| {
                v.split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let cap = |key: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0)
    };
    (
        ids("Uid:"),
        ids("Gid:"),
        [cap("CapEff:"), cap("CapPrm:"), cap("CapInh:")],
    )
}

/// A header for `pid` read from /proc (`None` once the process is gone).
fn header_from_proc(pid: u32, host: &Host) -> Option<RawHeader> {
    let info = crate::proc::read_proc(pid)?;
    let tick_ns = 1_000_000_000 / USER_HZ;
    let parent_start = crate::proc::read_proc(info.ppid).map_or(0, |p| p.start_ticks * tick_ns);
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let now_boot = now_boot_ns(host);
    Some(RawHeader {
        ktime: now_boot,
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

fn creds_from_proc(pid: u32) -> RawCreds {
    let (uids, gids, caps) = status_fields(pid);
    let at = |v: &Vec<u32>, i: usize| v.get(i).copied().unwrap_or(u32::MAX);
    let read_u32 = |f: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/{f}"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(u32::MAX)
    };
    RawCreds {
        uid: at(&uids, 0),
        euid: at(&uids, 1),
        suid: at(&uids, 2),
        fsuid: at(&uids, 3),
        gid: at(&gids, 0),
        egid: at(&gids, 1),
        sgid: at(&gids, 2),
        fsgid: at(&gids, 3),
        loginuid: read_u32("loginuid"),
        sessionid: read_u32("sessionid"),
        cap_effective: caps[0],
        cap_permitted: caps[1],
        cap_inheritable: caps[2],
    }
}

/// An exec record built from /proc, as complete as the process's lifetime allows.
fn exec_from_proc(pid: u32, host: &Host) -> Option<RawExec> {
    let header = header_from_proc(pid, host)?;
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
        creds: creds_from_proc(pid),
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
    events: Vec<ProcEvent>,
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

fn open_fanotify() -> Result<Fanotify, SensorError> {
    let fan = Fanotify::init(
        InitFlags::FAN_CLASS_NOTIF | InitFlags::FAN_CLOEXEC | InitFlags::FAN_NONBLOCK,
        EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE | EventFFlags::O_CLOEXEC,
    )
    .map_err(|e| io_err("open fanotify")(std::io::Error::from(e)))?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut marked = 0;
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(_), Some(dir), Some(fstype)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if !WATCHED_FS.contains(&fstype) {
            continue;
        }
        let dir = dir.replace("\\040", " ");
        let r = fan.mark(
            MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_FILESYSTEM,
            MaskFlags::FAN_CLOSE_WRITE,
            nix::fcntl::AT_FDCWD,
            Some(dir.as_str()),
        );
        if r.is_ok() {
            marked += 1;
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
        let fanotify = match open_fanotify() {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!("fallback sensor without file events: {e}");
                None
            }
        };
        let loss_check = Duration::from_millis(config.loss_check_ms);
        let config_stats_secs = config.stats_interval_secs;
        let converter = Converter::new(Host::detect(), config);
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

    /// The `Start` event.
    pub fn start_event(&self) -> OcsfEvent {
        self.converter.sensor_event(
            6,
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
            7,
            "netlink+fanotify",
            format!(
                "fallback sensor stopped: {} records received, at least {} lost",
                self.stats.received, self.lost
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
        self.drain(sink)
    }

    /// Hands every pending event to `sink` without waiting.
    pub fn drain(&mut self, sink: &mut dyn FnMut(OcsfEvent)) -> Result<usize, SensorError> {
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
                        if let Some(record) = self.record_of(*ev) {
                            emitted += self.converter.convert(record, sink);
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
        emitted += self.drain_files(sink)?;
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
        let host = self.converter.host();
        let record = match ev {
            ProcEvent::Exec { pid } if pid != self.me => {
                Record::Exec(Box::new(exec_from_proc(pid, host).unwrap_or_else(|| {
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
                let header = header_from_proc(child, host).unwrap_or(RawHeader::bare(
                    child,
                    parent,
                    now_boot_ns(host),
                ));
                Record::Fork(RawFork {
                    header,
                    creds: creds_from_proc(child),
                })
            }
            ProcEvent::Exit { pid, status } if pid != self.me => {
                let known = self.converter.table().get(pid).cloned();
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
                if let Ok(path) = std::fs::read_link(link) {
                    written.push((pid, path.to_string_lossy().into_owned()));
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
        let host = self.converter.host();
        let header =
            header_from_proc(pid, host).unwrap_or(RawHeader::bare(pid, 0, now_boot_ns(host)));
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
                99,
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

    #[test]
    fn garbage_datagrams_decode_to_nothing() {
        let mut out = Vec::new();
        decode_datagram(&[], &mut out);
        decode_datagram(&[0xff; 15], &mut out);
        decode_datagram(&[0xff; 64], &mut out);
        let mut short = vec![0u8; 40];
        short[..4].copy_from_slice(&40u32.to_ne_bytes());
        short[36..40].copy_from_slice(&PROC_EVENT_EXEC.to_ne_bytes());
        decode_datagram(&short, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }
}
