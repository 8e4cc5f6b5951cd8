//! Realistic stored history for the query benchmarks: many hosts' sessions (a story each:
//! a login or service shell and the commands it runs), with the files, connections and
//! DNS lookups each command makes, in the agent's own event shapes (those of
//! `vigil_event::example`, which the sensor emits: process, actor with parent and
//! ancestry, device, story id in `metadata.correlation_uid`). Deterministic for a seed.

use serde_json::{json, Value};

/// A small, fast, deterministic generator (SplitMix64).
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// What a command does when it runs: its executable, argument shapes, and how much file,
/// DNS and network activity it makes.
struct Program {
    path: &'static str,
    args: &'static [&'static str],
    files: u64,
    net: u64,
}

const PROGRAMS: &[Program] = &[
    Program {
        path: "/usr/bin/ls",
        args: &["-la /var/log", "-l /etc", "/home/{user}", "-lh /tmp"],
        files: 2,
        net: 0,
    },
    Program {
        path: "/usr/bin/cat",
        args: &[
            "/etc/os-release",
            "/var/log/syslog",
            "/etc/hosts",
            "/home/{user}/.bashrc",
        ],
        files: 1,
        net: 0,
    },
    Program {
        path: "/usr/bin/grep",
        args: &[
            "-r error /var/log",
            "-i {word} /etc/passwd",
            "-n TODO src/{word}.rs",
        ],
        files: 4,
        net: 0,
    },
    Program {
        path: "/usr/bin/curl",
        args: &[
            "-fsSL https://{domain}/install.sh",
            "-s https://{domain}/api/v1/status",
            "-o /tmp/{word}.tar.gz https://{domain}/{word}",
        ],
        files: 1,
        net: 2,
    },
    Program {
        path: "/usr/bin/python3",
        args: &[
            "manage.py runserver",
            "-m pip install {word}",
            "/opt/{word}/app.py --port 8080",
            "-c 'import {word}'",
        ],
        files: 12,
        net: 1,
    },
    Program {
        path: "/usr/bin/git",
        args: &[
            "pull --rebase",
            "status",
            "fetch origin",
            "clone https://{domain}/{word}.git",
        ],
        files: 8,
        net: 1,
    },
    Program {
        path: "/usr/bin/apt-get",
        args: &["update", "install -y {word}", "upgrade -y"],
        files: 10,
        net: 2,
    },
    Program {
        path: "/usr/bin/systemctl",
        args: &["status {word}", "restart {word}", "daemon-reload"],
        files: 3,
        net: 0,
    },
    Program {
        path: "/usr/bin/ssh",
        args: &["deploy@10.0.{n}.{m}", "-i ~/.ssh/id_ed25519 git@{domain}"],
        files: 2,
        net: 1,
    },
    Program {
        path: "/usr/bin/tar",
        args: &["czf /tmp/{word}.tgz /var/www", "xzf {word}.tar.gz"],
        files: 9,
        net: 0,
    },
    Program {
        path: "/usr/bin/find",
        args: &[
            "/ -name '*.{word}' -mtime -1",
            "/var/www -type f -perm -o+w",
        ],
        files: 6,
        net: 0,
    },
    Program {
        path: "/usr/bin/ps",
        args: &["aux", "-ef --forest"],
        files: 5,
        net: 0,
    },
    Program {
        path: "/usr/bin/vim",
        args: &["/etc/nginx/nginx.conf", "/home/{user}/{word}.py"],
        files: 3,
        net: 0,
    },
    Program {
        path: "/usr/bin/gcc",
        args: &["-O2 -o {word} {word}.c", "-c {word}.c -Wall"],
        files: 7,
        net: 0,
    },
    Program {
        path: "/usr/bin/node",
        args: &["server.js", "/opt/{word}/index.js"],
        files: 9,
        net: 2,
    },
    Program {
        path: "/usr/bin/docker",
        args: &["ps", "pull {domain}/{word}:latest", "run --rm {word}"],
        files: 4,
        net: 2,
    },
    Program {
        path: "/usr/bin/wget",
        args: &[
            "-q https://{domain}/{word}.sh -O /tmp/{word}.sh",
            "https://{domain}/release.zip",
        ],
        files: 1,
        net: 2,
    },
    Program {
        path: "/usr/bin/crontab",
        args: &["-l", "-e"],
        files: 2,
        net: 0,
    },
    Program {
        path: "/usr/bin/sudo",
        args: &[
            "-n systemctl restart {word}",
            "apt-get install -y {word}",
            "-u postgres psql",
        ],
        files: 3,
        net: 0,
    },
    Program {
        path: "/usr/sbin/nginx",
        args: &["-s reload", "-t"],
        files: 6,
        net: 1,
    },
];

const WORDS: &[&str] = &[
    "alpha", "bravo", "nginx", "redis", "postgres", "backup", "report", "metrics", "worker",
    "billing", "auth", "search", "cache", "ingest", "export", "images", "static", "deploy",
    "audit", "queue",
];
const DOMAINS: &[&str] = &[
    "github.com",
    "pypi.org",
    "deb.debian.org",
    "registry.npmjs.org",
    "api.example.com",
    "cdn.example.net",
    "updates.example-cdn.net",
    "s3.amazonaws.com",
    "auth.example.org",
    "grafana.internal",
];
const USERS: &[(&str, &str)] = &[
    ("deploy", "1001"),
    ("alice", "1002"),
    ("bob", "1003"),
    ("root", "0"),
    ("www-data", "33"),
];
const PORTS: &[i64] = &[443, 443, 443, 80, 22, 5432, 6379, 53, 8080];
const FILE_DIRS: &[&str] = &[
    "/etc",
    "/var/log",
    "/tmp",
    "/home/{user}",
    "/var/www/html",
    "/opt/{word}",
    "/usr/lib/python3/dist-packages",
    "/var/lib/{word}",
];
const FILE_ACTS: &[(i64, &str)] = &[
    (1, "Create"),
    (2, "Read"),
    (2, "Read"),
    (2, "Read"),
    (3, "Update"),
    (4, "Delete"),
    (14, "Open"),
    (14, "Open"),
];

fn fill(rng: &mut Rng, template: &str, user: &str) -> String {
    let mut s = template.replace("{user}", user);
    while let Some(i) = s.find("{word}") {
        let word = *rng.pick::<&str>(WORDS);
        s.replace_range(i..i + 6, word);
    }
    while let Some(i) = s.find("{domain}") {
        let domain = *rng.pick::<&str>(DOMAINS);
        s.replace_range(i..i + 8, domain);
    }
    while let Some(i) = s.find("{n}") {
        s.replace_range(i..i + 3, &rng.below(256).to_string());
    }
    while let Some(i) = s.find("{m}") {
        s.replace_range(i..i + 3, &rng.below(256).to_string());
    }
    s
}

fn name_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn folder_of(path: &str) -> &str {
    path.rsplit_once('/')
        .map_or("/", |(d, _)| if d.is_empty() { "/" } else { d })
}

fn hash_of(path: &str) -> String {
    // A stable, plausible SHA-256 per executable (FNV-1a spread over 32 bytes).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x1000_0000_01b3);
    }
    let mut r = Rng::new(h);
    (0..4).map(|_| format!("{:016x}", r.next())).collect()
}

/// A process as the sensor reports one.
#[derive(Clone)]
struct Proc {
    pid: i64,
    uid: String,
    path: String,
    cmd: String,
    user: (&'static str, &'static str),
    created: i64,
}

impl Proc {
    fn file(&self) -> Value {
        json!({"name": name_of(&self.path), "type_id": 1, "type": "Regular File", "path": self.path,
               "parent_folder": folder_of(&self.path),
               "hashes": [{"algorithm_id": 3, "algorithm": "SHA-256", "value": hash_of(&self.path)}]})
    }

    fn user(&self) -> Value {
        let admin = self.user.1 == "0";
        json!({"name": self.user.0, "uid": self.user.1, "type_id": if admin { 2 } else { 1 },
               "type": if admin { "Admin" } else { "User" }})
    }

    /// The `process` object, with its parent one level deep.
    fn object(&self, parent: Option<&Proc>, session: &Value) -> Value {
        let mut v = json!({"pid": self.pid, "uid": self.uid, "name": name_of(&self.path), "cmd_line": self.cmd,
                           "file": self.file(), "user": self.user(), "working_directory": format!("/home/{}", self.user.0),
                           "created_time": self.created, "session": session});
        if let Some(p) = parent {
            v["parent_process"] = json!({"pid": p.pid, "uid": p.uid, "name": name_of(&p.path), "cmd_line": p.cmd,
                                          "file": p.file(), "user": p.user(), "created_time": p.created});
        }
        v
    }

    fn ancestry_entry(&self) -> Value {
        json!({"pid": self.pid, "uid": self.uid, "name": name_of(&self.path), "path": self.path,
               "cmd_line": self.cmd, "created_time": self.created})
    }
}

/// A host of the fleet.
pub struct Host {
    name: String,
    uid: String,
    ip: String,
    boot: String,
    next_pid: i64,
}

impl Host {
    /// Host number `i` of the fleet.
    pub fn new(i: usize, boot_ms: i64) -> Host {
        let role = ["web", "db", "app", "ci", "ws", "cache"][i % 6];
        Host {
            name: format!("{role}-{:04}", i),
            uid: format!(
                "4c4c4544-{:04x}-3510-8052-b7c04f4e{:04x}",
                i % 65_536,
                (i * 7919) % 65_536
            ),
            ip: format!(
                "10.{}.{}.{}",
                (i >> 16) & 255,
                (i >> 8) & 255,
                (i & 255).max(1)
            ),
            boot: format!(
                "{:08x}",
                (boot_ms as u64 ^ (i as u64).wrapping_mul(0x9E37)) & 0xffff_ffff
            ),
            next_pid: 1000,
        }
    }

    fn device(&self, boot_ms: i64) -> Value {
        json!({"type_id": 1, "type": "Server", "hostname": self.name, "uid": self.uid, "ip": self.ip,
               "os": {"name": "Debian GNU/Linux 12", "type_id": 200, "type": "Linux", "kernel_release": "6.1.0-27-amd64"},
               "boot_time": boot_ms})
    }

    fn spawn(
        &mut self,
        rng: &mut Rng,
        path: &str,
        cmd: String,
        user: (&'static str, &'static str),
        t: i64,
    ) -> Proc {
        self.next_pid = if self.next_pid > 4_000_000 {
            1000
        } else {
            self.next_pid + 1 + rng.below(40) as i64
        };
        Proc {
            pid: self.next_pid,
            uid: format!("{}-{}-{}", self.boot, self.next_pid, t),
            path: path.to_string(),
            cmd,
            user,
            created: t,
        }
    }
}

fn base(
    class_uid: i64,
    class_name: &str,
    category: (i64, &str),
    activity: (i64, &str),
    t: i64,
    story: &str,
    device: &Value,
) -> Value {
    json!({"activity_id": activity.0, "activity_name": activity.1, "category_uid": category.0, "category_name": category.1,
           "class_uid": class_uid, "class_name": class_name, "type_uid": class_uid * 100 + activity.0,
           "type_name": format!("{class_name}: {}", activity.1), "severity_id": 1, "severity": "Informational", "time": t,
           "metadata": {"version": "1.8.0", "product": {"name": "Vigil", "vendor_name": "Vigil", "version": "0.1.0",
                        "feature": {"name": "sensor"}}, "profiles": ["host"], "correlation_uid": story},
           "device": device})
}

/// One story on `host` starting at `t`: a shell and its commands with what they did.
/// Calls `emit` with each event (time-ordered within the story); returns the number.
pub fn story(
    rng: &mut Rng,
    host: &mut Host,
    t: i64,
    boot_ms: i64,
    emit: &mut dyn FnMut(Value),
) -> u64 {
    let device = host.device(boot_ms);
    let user = *rng.pick(USERS);
    let session = json!({"uid": rng.below(1000).to_string(), "terminal": format!("pts/{}", rng.below(8)), "is_remote": true});
    let sshd = Proc {
        pid: 600 + rng.below(50) as i64,
        uid: format!("{}-612-{}", host.boot, boot_ms + 4000),
        path: "/usr/sbin/sshd".into(),
        cmd: "sshd: /usr/sbin/sshd -D".into(),
        user: ("root", "0"),
        created: boot_ms + 4000,
    };
    let shell = host.spawn(rng, "/usr/bin/bash", "-bash".into(), user, t);
    let story_id = shell.uid.clone();
    let mut n = 0;
    let launch =
        |p: &Proc, parent: &Proc, grand: Option<&Proc>, t: i64, emit: &mut dyn FnMut(Value)| {
            let mut e = base(
                1007,
                "Process Activity",
                (1, "System Activity"),
                (1, "Launch"),
                t,
                &story_id,
                &device,
            );
            let mut actor =
                json!({"process": parent.object(grand, &session), "user": parent.user()});
            actor["process"]["session"] = session.clone();
            e["actor"] = actor;
            e["process"] = p.object(Some(parent), &session);
            emit(e);
        };
    launch(&shell, &sshd, None, t, emit);
    n += 1;
    let mut now = t;
    let commands = 2 + rng.below(9);
    for _ in 0..commands {
        now += 200 + rng.below(20_000) as i64;
        let prog = rng.pick(PROGRAMS);
        let template = rng.pick(prog.args);
        let args = fill(rng, template, user.0);
        let cmd = format!("{} {args}", name_of(prog.path));
        let p = host.spawn(rng, prog.path, cmd, user, now);
        launch(&p, &shell, Some(&sshd), now, emit);
        n += 1;
        let actor = json!({"process": p.object(Some(&shell), &session), "user": p.user()});
        let ancestry = json!([shell.ancestry_entry(), sshd.ancestry_entry()]);
        let mut at = now;
        for _ in 0..rng.below(prog.files * 2 + 1) {
            at += 1 + rng.below(50) as i64;
            let template = rng.pick(FILE_DIRS);
            let dir = fill(rng, template, user.0);
            let path = format!(
                "{dir}/{}.{}",
                rng.pick(WORDS),
                ["conf", "log", "py", "json", "txt", "so"][rng.below(6) as usize]
            );
            let act = *rng.pick(FILE_ACTS);
            let mut e = base(
                1001,
                "File System Activity",
                (1, "System Activity"),
                act,
                at,
                &story_id,
                &device,
            );
            e["actor"] = actor.clone();
            e["actor"]["process"]["ancestry"] = ancestry.clone();
            e["file"] = json!({"name": name_of(&path), "type_id": 1, "type": "Regular File", "path": path, "parent_folder": folder_of(&path)});
            emit(e);
            n += 1;
        }
        for _ in 0..rng.below(prog.net * 2 + 1) {
            at += 1 + rng.below(30) as i64;
            let domain = *rng.pick(DOMAINS);
            let mut e = base(
                4003,
                "DNS Activity",
                (4, "Network Activity"),
                (1, "Query"),
                at,
                &story_id,
                &device,
            );
            e["actor"] = actor.clone();
            e["actor"]["process"]["ancestry"] = ancestry.clone();
            e["query"] = json!({"hostname": domain, "type": "A", "class": "IN", "packet_uid": rng.below(65_536), "opcode_id": 0, "opcode": "Query"});
            e["src_endpoint"] = json!({"ip": host.ip, "port": 30_000 + rng.below(30_000)});
            e["dst_endpoint"] = json!({"ip": "10.0.0.2", "port": 53});
            emit(e);
            n += 1;
            at += 1 + rng.below(20) as i64;
            let ip = format!(
                "{}.{}.{}.{}",
                [198, 203, 192, 151][rng.below(4) as usize],
                rng.below(256),
                rng.below(256),
                1 + rng.below(254)
            );
            let mut e = base(
                4001,
                "Network Activity",
                (4, "Network Activity"),
                (1, "Open"),
                at,
                &story_id,
                &device,
            );
            e["actor"] = actor.clone();
            e["actor"]["process"]["ancestry"] = ancestry.clone();
            e["src_endpoint"] = json!({"ip": host.ip, "port": 30_000 + rng.below(30_000)});
            e["dst_endpoint"] = json!({"ip": ip, "port": *rng.pick(PORTS)});
            e["connection_info"] = json!({"direction_id": 2, "direction": "Outbound", "protocol_name": "tcp", "protocol_num": 6,
                                          "protocol_ver_id": 4, "protocol_ver": "Internet Protocol version 4 (IPv4)"});
            emit(e);
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_story_is_one_tree_under_one_id_in_time_order() {
        let mut rng = Rng::new(7);
        let mut host = Host::new(3, 1_796_500_000_000);
        let mut events = Vec::new();
        let n = story(
            &mut rng,
            &mut host,
            1_796_594_400_000,
            1_796_500_000_000,
            &mut |e| events.push(e),
        );
        assert_eq!(n as usize, events.len());
        let story_id = events[0]["metadata"]["correlation_uid"]
            .as_str()
            .expect("story")
            .to_string();
        assert_eq!(events[0]["process"]["uid"], story_id);
        let mut last = 0;
        for e in &events {
            assert_eq!(e["metadata"]["correlation_uid"], story_id.as_str());
            assert_eq!(e["device"]["hostname"], "ci-0003");
            let t = e["time"].as_i64().expect("time");
            assert!(t >= last);
            last = t;
            if e["class_uid"] == 1007 && e["process"]["uid"] != story_id.as_str() {
                assert_eq!(e["process"]["parent_process"]["uid"], story_id.as_str());
            }
        }
        // Each event parses as the event model's class (the agent's shapes).
        for e in &events {
            vigil_event::OcsfEvent::from_json(e.clone()).unwrap_or_else(|err| panic!("{err}: {e}"));
        }
    }
}
