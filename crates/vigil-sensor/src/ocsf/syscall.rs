//! Syscall records to OCSF: file, network, DNS, process-access, identity and
//! kernel-extension events.

use super::open_writes::O_CLOEXEC;
use super::{dns, file_of, Converter, FEATURE};
use crate::abi::{self, nr, RawHeader, RawSock, RawSyscall};
use serde_json::{json, Map, Value as Json};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use vigil_event::model::*;
use vigil_event::OcsfEvent;

const AT_FDCWD: i32 = -100;
const AT_REMOVEDIR: u64 = 0x200;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const EINPROGRESS: i64 = -115;
const ECONNREFUSED: i64 = -111;

fn errno_name(ret: i64) -> String {
    match -ret {
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

    /// Converts a syscall record; `None` for calls that turn out not to be reportable.
    pub(super) fn syscall(&mut self, s: RawSyscall) -> Option<OcsfEvent> {
        let n = s.nr;
        let a = s.args;
        let mut x = Map::new();
        if s.flags & abi::SYS_STR0_TRUNCATED != 0 {
            x.insert("path_truncated".into(), json!(true));
        }
        // Files.
        if n == nr::CLOSE {
            self.open_writes.closed(s.header.pid, a[0] as i32);
            x.insert("close_write".into(), json!(true));
            return Some(self.file_event(&s.header, 3, file_of(&s.str0), x));
        }
        if n == nr::OPEN || n == nr::OPENAT || n == nr::CREAT || n == nr::OPENAT2 {
            let created = s.flags & abi::SYS_FILE_CREATED != 0;
            let flags = if n == nr::OPEN {
                a[1]
            } else if n == nr::OPENAT {
                a[2]
            } else {
                0
            };
            if flags != 0 {
                x.insert("open_flags".into(), json!(format!("{flags:#o}")));
            }
            if let Ok(fd) = i32::try_from(s.ret) {
                self.open_writes
                    .opened(s.header.pid, fd, &s.str0, flags & O_CLOEXEC != 0);
            }
            let activity = if created { 1 } else { 14 };
            return Some(self.file_event(&s.header, activity, file_of(&s.str0), x));
        }
        if n == nr::RENAME || n == nr::RENAMEAT || n == nr::RENAMEAT2 {
            let (old_dir, new_dir) = if n == nr::RENAME {
                (None, None)
            } else {
                (Some(a[0]), Some(a[2]))
            };
            let old = self.user_file(&s, old_dir, old_dir, &s.str0, &mut x);
            let new = self.user_file(&s, new_dir, old_dir, &s.str1, &mut x);
            let mut file = old;
            let mut ev_x = x;
            file.xattributes = None;
            ev_x.remove("path_truncated");
            let mut out = self.file_event(&s.header, 5, file, ev_x);
            if let OcsfEvent::File(f) = &mut out {
                f.file_result = Some(new);
            }
            return Some(out);
        }
        if n == nr::UNLINK || n == nr::UNLINKAT || n == nr::RMDIR {
            let dir = (n == nr::UNLINKAT).then_some(a[0]);
            let mut file = self.user_file(&s, dir, dir, &s.str0, &mut x);
            if n == nr::RMDIR || (n == nr::UNLINKAT && a[2] & AT_REMOVEDIR != 0) {
                file.type_id = file_type::FOLDER;
                file.kind = Some(file_type::name(file_type::FOLDER).into());
            }
            return Some(self.file_event(&s.header, 4, file, x));
        }
        if n == nr::CHMOD || n == nr::FCHMOD || n == nr::FCHMODAT || n == nr::FCHMODAT2 {
            let (file, mode) = if n == nr::FCHMOD {
                (file_of(&s.str0), a[1])
            } else if n == nr::CHMOD {
                (self.user_file(&s, None, None, &s.str0, &mut x), a[1])
            } else {
                (
                    self.user_file(&s, Some(a[0]), Some(a[0]), &s.str0, &mut x),
                    a[2],
                )
            };
            let mode = (mode & 0o7777) as i32;
            let mut file = file;
            file.attributes = Some(mode);
            x.insert("mode".into(), json!(format!("{mode:04o}")));
            if mode & 0o4000 != 0 {
                x.insert("setuid".into(), json!(true));
            }
            if mode & 0o2000 != 0 {
                x.insert("setgid".into(), json!(true));
            }
            return Some(self.file_event(&s.header, 6, file, x));
        }
        if n == nr::CHOWN || n == nr::LCHOWN || n == nr::FCHOWN || n == nr::FCHOWNAT {
            let (file, uid, gid) = if n == nr::FCHOWN {
                (file_of(&s.str0), a[1], a[2])
            } else if n == nr::FCHOWNAT {
                (
                    self.user_file(&s, Some(a[0]), Some(a[0]), &s.str0, &mut x),
                    a[2],
                    a[3],
                )
            } else {
                (self.user_file(&s, None, None, &s.str0, &mut x), a[1], a[2])
            };
            let mut file = file;
            if uid as u32 != u32::MAX {
                file.owner = Some(User {
                    uid: Some((uid as u32).to_string()),
                    ..User::default()
                });
            }
            if gid as u32 != u32::MAX {
                x.insert("gid".into(), json!(gid as u32));
            }
            return Some(self.file_event(&s.header, 7, file, x));
        }
        if n == nr::SYMLINK || n == nr::SYMLINKAT || n == nr::LINK || n == nr::LINKAT {
            let symlink = n == nr::SYMLINK || n == nr::SYMLINKAT;
            // The kernel recorded the base of symlinkat's newdirfd and linkat's olddirfd.
            let (link_dir, base_dir) = if n == nr::SYMLINKAT {
                (Some(a[1]), Some(a[1]))
            } else if n == nr::LINKAT {
                (Some(a[2]), Some(a[0]))
            } else {
                (None, None)
            };
            let mut link = self.user_file(&s, link_dir, base_dir, &s.str1, &mut x);
            let target = if symlink {
                s.str0.clone()
            } else {
                let old_dir = (n == nr::LINKAT).then_some(a[0]);
                self.resolve(&s, old_dir, old_dir, &s.str0).0
            };
            if symlink {
                link.type_id = file_type::SYMBOLIC_LINK;
                link.kind = Some(file_type::name(file_type::SYMBOLIC_LINK).into());
            }
            x.insert(
                "link_type".into(),
                json!(if symlink { "symlink" } else { "hardlink" }),
            );
            x.insert("link_target".into(), json!(target));
            return Some(self.file_event(&s.header, 1, link, x));
        }
        if n == nr::MEMFD_CREATE {
            let name = format!("memfd:{}", s.str0);
            let mut file = file_of(&name);
            file.parent_folder = None;
            x.insert("memfd_flags".into(), json!(a[1]));
            return Some(self.file_event(&s.header, 1, file, x));
        }
        if n == nr::MOUNT {
            let mut target = self.user_file(&s, None, None, &s.str0, &mut x);
            target.type_id = file_type::FOLDER;
            target.kind = Some(file_type::name(file_type::FOLDER).into());
            x.insert("source".into(), json!(s.str1));
            let fstype = String::from_utf8_lossy(s.data.split(|&b| b == 0).next().unwrap_or(&[]))
                .into_owned();
            x.insert("fstype".into(), json!(fstype));
            x.insert("flags".into(), json!(a[3]));
            let mut out = self.file_event(&s.header, 12, target, x);
            set_status(&mut out, s.ret);
            return Some(out);
        }
        // Network.
        if n == nr::CONNECT || n == nr::ACCEPT || n == nr::ACCEPT4 || n == nr::LISTEN {
            let sock = s.sock.clone()?;
            let local_ip = ip(sock.family, &sock.laddr);
            let mut remote_ip = ip(sock.family, &sock.raddr);
            let mut rport = sock.rport;
            if n == nr::CONNECT && rport == 0 {
                if let Some((addr, port)) = user_sockaddr(&s.addr) {
                    remote_ip = Some(addr);
                    rport = port;
                }
            }
            let local = endpoint(local_ip, sock.lport);
            let remote = endpoint(remote_ip, rport);
            let (activity, dir) = if n == nr::LISTEN {
                (7, direction::UNKNOWN)
            } else if n == nr::CONNECT {
                let activity = match s.ret {
                    0 | EINPROGRESS => 1,
                    ECONNREFUSED => 5,
                    _ => 4,
                };
                (
                    activity,
                    if is_local(remote_ip) {
                        direction::LOCAL
                    } else {
                        direction::OUTBOUND
                    },
                )
            } else {
                (
                    1,
                    if is_local(remote_ip) {
                        direction::LOCAL
                    } else {
                        direction::INBOUND
                    },
                )
            };
            let mut ev = NetworkActivity::new(activity, self.header_time(&s.header), FEATURE);
            if n == nr::CONNECT {
                ev.src_endpoint = local;
                ev.dst_endpoint = remote;
            } else if n == nr::LISTEN {
                ev.src_endpoint = local;
            } else {
                ev.src_endpoint = remote;
                ev.dst_endpoint = local;
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
            return Some(ev.into());
        }
        if n == nr::SENDTO || n == nr::SENDMSG || n == nr::SENDMMSG {
            let sock = s.sock.clone()?;
            let q = dns::parse_question(&s.data)?;
            let (server_ip, server_port) = user_sockaddr(&s.addr)
                .map(|(i, p)| (Some(i), p))
                .unwrap_or((ip(sock.family, &sock.raddr), sock.rport));
            let mut ev = DnsActivity::new(1, self.header_time(&s.header), FEATURE);
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
            return Some(ev.into());
        }
        // Processes.
        if n == nr::PTRACE || n == nr::PROCESS_VM_WRITEV {
            let (target_pid, activity) = if n == nr::PTRACE {
                let req = a[0];
                let target = if req == 0 { s.header.ppid } else { a[1] as u32 };
                x.insert("ptrace_request".into(), json!(ptrace_request(req)));
                (target, 3)
            } else {
                (a[0] as u32, 4)
            };
            let target = self.target_process(target_pid);
            let mut ev =
                ProcessActivity::new(activity, self.header_time(&s.header), FEATURE, target);
            if activity == 4 {
                ev.injection_type_id = Some(99);
                ev.injection_type = Some("process_vm_writev".into());
            }
            if !x.is_empty() {
                ev.unmapped = Some(x);
            }
            ev.actor = Some(self.actor_for(&s.header));
            ev.device = Some(self.device.clone());
            let mut out: OcsfEvent = ev.into();
            set_status(&mut out, s.ret);
            return Some(out);
        }
        if [
            nr::SETUID,
            nr::SETGID,
            nr::SETREUID,
            nr::SETREGID,
            nr::SETRESUID,
            nr::SETRESGID,
            nr::CAPSET,
        ]
        .contains(&n)
        {
            let name = match n {
                _ if n == nr::SETUID => "setuid",
                _ if n == nr::SETGID => "setgid",
                _ if n == nr::SETREUID => "setreuid",
                _ if n == nr::SETREGID => "setregid",
                _ if n == nr::SETRESUID => "setresuid",
                _ if n == nr::SETRESGID => "setresgid",
                _ => "capset",
            };
            x.insert("syscall".into(), json!(name));
            let argc = match name {
                "setuid" | "setgid" => 1,
                "setreuid" | "setregid" => 2,
                "capset" => 0,
                _ => 3,
            };
            let ids: Vec<i64> = a[..argc]
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
            let activity = if name == "capset" { 99 } else { 5 };
            let mut ev =
                ProcessActivity::new(activity, self.header_time(&s.header), FEATURE, target);
            if activity == 99 {
                ev.activity_name = Some("Set Capabilities".into());
            }
            ev.unmapped = Some(x);
            ev.actor = Some(actor);
            ev.device = Some(self.device.clone());
            let mut out: OcsfEvent = ev.into();
            set_status(&mut out, s.ret);
            return Some(out);
        }
        if n == nr::BPF || n == nr::INIT_MODULE || n == nr::FINIT_MODULE {
            let module = if n == nr::BPF {
                Module {
                    kind: Some("bpf program".into()),
                    function_name: Some(if s.str0.is_empty() {
                        "(unnamed)".into()
                    } else {
                        s.str0.clone()
                    }),
                    load_type_id: Some(module_load_type::STANDARD),
                    load_type: Some(module_load_type::name(module_load_type::STANDARD).into()),
                    ..Module::default()
                }
            } else {
                Module {
                    kind: Some("kernel module".into()),
                    file: (n == nr::FINIT_MODULE && !s.str0.is_empty()).then(|| file_of(&s.str0)),
                    load_type_id: Some(module_load_type::STANDARD),
                    load_type: Some(module_load_type::name(module_load_type::STANDARD).into()),
                    ..Module::default()
                }
            };
            let mut ev = ModuleActivity::new(1, self.header_time(&s.header), FEATURE, module);
            ev.actor = Some(self.actor_for(&s.header));
            ev.device = Some(self.device.clone());
            let mut out: OcsfEvent = ev.into();
            set_status(&mut out, s.ret);
            return Some(out);
        }
        tracing::debug!(
            nr = n,
            "syscall record of a call this version does not convert"
        );
        None
    }
}

fn ptrace_request(req: u64) -> &'static str {
    match req {
        0 => "PTRACE_TRACEME",
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
