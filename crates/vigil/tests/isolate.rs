//! Network isolation for real, in network namespaces the test makes (never the host's):
//! a "host" namespace and a "peer" namespace joined by a veth pair, the peer holding a
//! management address and another one. Isolated, the host reaches the management
//! endpoint and its own loopback, and nothing else; the isolation outlasts an agent
//! stopped, and an agent starting after it was lost (a reboot) puts it back; lifted,
//! everything passes again. Needs root, `ip` and `nft`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
mod support;

/// The two namespaces, removed (with everything in them) when dropped.
struct Namespaces {
    host: String,
    peer: String,
    servers: Vec<Child>,
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        for ns in [&self.host, &self.peer] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A command run inside namespace `ns`.
fn in_ns(ns: &str, program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, program]);
    c
}

const MGMT: &str = "10.231.7.2";
const OTHER: &str = "10.231.7.3";
const PORT: u16 = 8443;

/// A TCP server answering `ok` on every connection.
fn server(ns: &str, addr: &str, port: u16) -> Child {
    let code = format!(
        "import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('{addr}', {port})); s.listen(16)\nwhile True:\n    c,_=s.accept(); c.sendall(b'ok'); c.close()\n"
    );
    in_ns(ns, "python3")
        .args(["-c", &code])
        .stdout(Stdio::null())
        .spawn()
        .expect("python3 server")
}

/// Whether a TCP connection from `ns` to `addr:port` gets its `ok` within a second.
fn reaches(ns: &str, addr: &str, port: u16) -> bool {
    let code = format!(
        "import socket,sys\ntry:\n    s=socket.create_connection(('{addr}', {port}), timeout=1)\n    sys.exit(0 if s.recv(2)==b'ok' else 1)\nexcept Exception:\n    sys.exit(1)\n"
    );
    in_ns(ns, "python3")
        .args(["-c", &code])
        .status()
        .expect("python3 client")
        .success()
}

fn setup() -> Option<Namespaces> {
    for tool in ["ip", "nft", "python3"] {
        if Command::new(tool).arg("--version").output().is_err() {
            vigil_testdata::skip(&format!(
                "{tool} is not installed (scripts/setup installs it)"
            ));
            return None;
        }
    }
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n =
        (std::process::id() % 10_000) * 10 + N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ns = Namespaces {
        host: format!("vigil-iso-h{n}"),
        peer: format!("vigil-iso-p{n}"),
        servers: Vec::new(),
    };
    ip(&["netns", "add", &ns.host]);
    ip(&["netns", "add", &ns.peer]);
    // The pair is made inside the namespaces: the host's own network is never touched.
    let (a, b) = (format!("vh{n}"), format!("vp{n}"));
    ip(&[
        "link", "add", &a, "netns", &ns.host, "type", "veth", "peer", "name", &b, "netns", &ns.peer,
    ]);
    ip(&["-n", &ns.host, "addr", "add", "10.231.7.1/24", "dev", &a]);
    ip(&[
        "-n",
        &ns.peer,
        "addr",
        "add",
        &format!("{MGMT}/24"),
        "dev",
        &b,
    ]);
    ip(&[
        "-n",
        &ns.peer,
        "addr",
        "add",
        &format!("{OTHER}/24"),
        "dev",
        &b,
    ]);
    for (space, dev) in [(&ns.host, &a), (&ns.peer, &b)] {
        ip(&["-n", space, "link", "set", dev, "up"]);
        ip(&["-n", space, "link", "set", "lo", "up"]);
    }
    Some(ns)
}

fn config(dir: &Path) -> PathBuf {
    let p = dir.join("agent.toml");
    std::fs::write(
        &p,
        format!(
            "[respond]\nstate_dir = \"{d}/state\"\n[respond.isolate]\nmanagement = [\"{MGMT}:{PORT}\"]\n\
             [respond.quarantine]\nvault_dir = \"{d}/vault\"\n[respond.rollback]\njournal_dir = \"{d}/journal\"\n",
            d = dir.display()
        ),
    )
    .expect("config");
    p
}

fn vigil_in(ns: &str, args: &[&str], cfg: &Path) -> (Option<i32>, String, String) {
    let out = in_ns(ns, env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .arg("--config")
        .arg(cfg)
        .output()
        .expect("vigil");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn isolation_lets_only_loopback_and_management_through_outlasts_the_agent_and_lifts() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let Some(mut ns) = setup() else { return };
    let dir = support::tmp("isolate", "netns");
    let cfg = config(&dir);
    ns.servers.push(server(&ns.peer, "0.0.0.0", PORT));
    ns.servers.push(server(&ns.host, "127.0.0.1", 9000));
    wait_until("the servers listen", || {
        reaches(&ns.host, MGMT, PORT)
            && reaches(&ns.host, OTHER, PORT)
            && reaches(&ns.host, "127.0.0.1", 9000)
    });
    // On: a Network Remediation record, success.
    let (code, out, err) = vigil_in(&ns.host, &["isolate", "on"], &cfg);
    assert_eq!(code, Some(0), "{err}");
    let rec: serde_json::Value = serde_json::from_str(out.trim()).expect("a record");
    assert_eq!(rec["class_uid"], 7004);
    assert_eq!(rec["activity_name"], "Isolate");
    assert_eq!(rec["status"], "Success", "{rec:#}");
    assert!(reaches(&ns.host, MGMT, PORT), "the management endpoint");
    assert!(reaches(&ns.host, "127.0.0.1", 9000), "loopback");
    assert!(
        !reaches(&ns.host, OTHER, PORT),
        "another address is cut off"
    );
    // The management address on another port is cut off too: only the endpoint passes.
    ns.servers.push(server(&ns.peer, MGMT, PORT + 1));
    assert!(!reaches(&ns.host, MGMT, PORT + 1));
    let (code, out, _) = vigil_in(&ns.host, &["isolate", "status"], &cfg);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("isolated since "), "{out}");
    assert!(out.contains(&format!("management: {MGMT}:{PORT}")), "{out}");
    // The host's own namespace is not isolated.
    let host_tables = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .expect("nft");
    assert!(!String::from_utf8_lossy(&host_tables.stdout).contains("vigil_isolate"));

    // An agent started and stopped in the namespace leaves the isolation in place.
    let events = dir.join("events.jsonl");
    let mut cmd = in_ns(&ns.host, env!("CARGO_BIN_EXE_vigil"));
    cmd.args(["agent", "--no-builtin-rules", "--output"])
        .arg(&events)
        .arg("--config")
        .arg(&cfg);
    let mut agent = support::start_agent(cmd, &events, &dir.join("agent.log"));
    assert_eq!(support::stop_agent(&mut agent), Some(0));
    assert!(
        !reaches(&ns.host, OTHER, PORT),
        "still isolated after the agent stopped"
    );
    assert!(reaches(&ns.host, MGMT, PORT));

    // Lost from the kernel (as in a reboot): status says so, and the next agent puts it
    // back, with a record.
    let del = in_ns(&ns.host, "nft")
        .args(["delete", "table", "inet", "vigil_isolate"])
        .status()
        .expect("nft");
    assert!(del.success());
    assert!(reaches(&ns.host, OTHER, PORT));
    let (code, out, _) = vigil_in(&ns.host, &["isolate", "status"], &cfg);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("not in the kernel"), "{out}");
    let events2 = dir.join("events2.jsonl");
    let mut cmd = in_ns(&ns.host, env!("CARGO_BIN_EXE_vigil"));
    cmd.args(["agent", "--no-builtin-rules", "--output"])
        .arg(&events2)
        .arg("--config")
        .arg(&cfg);
    let mut agent = support::start_agent(cmd, &events2, &dir.join("agent2.log"));
    let put_back = support::wait_for(&events2, 10, |e| e["class_uid"] == 7004)
        .expect("the agent's record of the isolation put back");
    assert_eq!(put_back["status"], "Success", "{put_back:#}");
    assert!(put_back["status_detail"]
        .as_str()
        .expect("detail")
        .starts_with("put back the isolation"));
    assert!(!reaches(&ns.host, OTHER, PORT), "isolated again");
    assert!(reaches(&ns.host, MGMT, PORT));
    assert_eq!(support::stop_agent(&mut agent), Some(0));

    // Off: everything passes again.
    let (code, out, err) = vigil_in(&ns.host, &["isolate", "off"], &cfg);
    assert_eq!(code, Some(0), "{err}");
    let rec: serde_json::Value = serde_json::from_str(out.trim()).expect("a record");
    assert_eq!(rec["activity_name"], "Restore");
    assert_eq!(rec["status"], "Success");
    assert!(reaches(&ns.host, OTHER, PORT), "lifted");
    assert!(reaches(&ns.host, MGMT, PORT + 1));
    let (code, out, _) = vigil_in(&ns.host, &["isolate", "status"], &cfg);
    assert_eq!(code, Some(1));
    assert_eq!(out.trim(), "not isolated");
    // Lifting twice is no error: nothing to lift.
    let (code, out, _) = vigil_in(&ns.host, &["isolate", "off"], &cfg);
    assert_eq!(code, Some(0));
    assert!(out.contains("the host was not isolated"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_management_endpoint_is_refused_before_anything_changes() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    // In a namespace of its own all the same: a regression must never cut off the host.
    let Some(ns) = setup() else { return };
    let dir = support::tmp("isolate", "bad");
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        "[respond.isolate]\nmanagement = [\"mgmt.example:443\"]\n",
    )
    .expect("cfg");
    let (code, _, err) = vigil_in(&ns.host, &["isolate", "on"], &cfg);
    assert_eq!(code, Some(3));
    assert!(
        err.contains(
            "respond.isolate.management: `mgmt.example:443`: `mgmt.example` is not an IP address"
        ),
        "{err}"
    );
    let tables = in_ns(&ns.host, "nft")
        .args(["list", "tables"])
        .output()
        .expect("nft");
    assert!(tables.stdout.is_empty(), "nothing changed");
    let _ = std::fs::remove_dir_all(&dir);
}
