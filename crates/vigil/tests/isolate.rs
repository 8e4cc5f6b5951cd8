//! Network isolation for real, in network namespaces the test makes (never the host's):
//! a "host" namespace and a "peer" namespace joined by a veth pair, the peer holding a
//! management address and another one. Isolated, the host reaches the management
//! endpoint and its own loopback, and nothing else; the isolation outlasts an agent
//! stopped, and an agent starting after it was lost (a reboot) puts it back; lifted,
//! everything passes again. Needs root, `ip` and `nft`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
mod support;
use support::netns::{in_ns, pair, reaches, tools_or_skip, Namespaces};

const MGMT: &str = "10.231.7.2";
const OTHER: &str = "10.231.7.3";
const PORT: u16 = 8443;

/// A TCP server answering `ok` on every connection.
fn server(ns: &str, addr: &str, port: u16) -> std::process::Child {
    support::netns::answering(ns, addr, port)
}

fn setup() -> Option<Namespaces> {
    if !tools_or_skip() {
        return None;
    }
    Some(pair(
        "iso",
        "10.231.7.1/24",
        &[&format!("{MGMT}/24"), &format!("{OTHER}/24")],
    ))
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
