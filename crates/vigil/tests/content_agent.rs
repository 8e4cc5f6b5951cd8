//! Content updates under the real agent: a bundle applied while it runs is checked and
//! swapped in (a rule only the new bundle has fires; the statistics name the new
//! version); a bad bundle the `current` link is pointed at is refused with its reason
//! in an Event Log Activity, and the old rules keep firing; a rollback brings the first
//! bundle back. Needs root.

use std::path::{Path, PathBuf};
use std::process::Command;
mod support;

use support::{start_agent, stop_agent, tmp, wait_for};

/// The marker a bundle's rule looks for in command lines: this run's own.
fn marker(version: &str) -> String {
    format!("vigil-content-{version}-{}-mark", std::process::id())
}

fn rule_id(version: &str) -> String {
    format!("0c0ffee0-0000-4000-8000-00000000000{version}")
}

/// A bundle whose one Sigma rule fires on `marker(version)`, with `intel` (a SHA-256)
/// as its one indicator if given.
fn bundle(root: &Path, version: &str, intel: Option<&str>) -> PathBuf {
    let dir = root.join(format!("bundle-{version}"));
    std::fs::create_dir_all(dir.join("sigma")).expect("dir");
    std::fs::write(
        dir.join("sigma/marker.yml"),
        format!(
            "title: Content {version} marker\nid: {}\nlevel: medium\n\
             logsource: {{product: linux, category: process_creation}}\n\
             detection:\n    selection:\n        CommandLine|contains: '{}'\n    condition: selection\n",
            rule_id(version),
            marker(version)
        ),
    )
    .expect("rule");
    // A YARA rule of its own: the file verdicts change with the bundle too.
    std::fs::create_dir_all(dir.join("yara")).expect("dir");
    std::fs::write(
        dir.join("yara/marker.yar"),
        format!(
            "rule content_{version} {{ meta: score = 85 strings: $m = \"{}-file\" condition: $m }}\n",
            marker(version)
        ),
    )
    .expect("yara rule");
    if let Some(sha) = intel {
        std::fs::create_dir_all(dir.join("intel")).expect("dir");
        std::fs::write(dir.join("intel/hashes.txt"), format!("{sha}\n")).expect("intel");
    }
    if version == "2" {
        // A policy of its own: bundle 2's rule (medium, below the configuration's
        // policy) asks for a kill (recorded only: the modes stay the host's, detect).
        std::fs::write(
            dir.join("policy.toml"),
            format!(
                "policy = [{{ rules = [\"{}\"], actions = [\"kill\"] }}]\n",
                rule_id(version)
            ),
        )
        .expect("policy");
    }
    content(&["seal"], &[&dir, Path::new(version)]);
    dir
}

/// Writes files carrying `marker(version)` into `work` every 300 ms until a YARA
/// finding of `version`'s rule is written (up to `secs`).
fn file_judged(findings: &Path, work: &Path, version: &str, secs: u64) -> bool {
    let name = format!("content_{version}");
    let judged = || {
        support::lines(findings)
            .unwrap_or_default()
            .iter()
            .filter(|f| {
                f["class_uid"] == 2004
                    && f["activity_id"] == 1
                    && f["finding_info"]["analytic"]["name"] == name.as_str()
            })
            .count()
    };
    let before = judged();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut n = 0;
    while std::time::Instant::now() < deadline {
        n += 1;
        let path = work.join(format!("dropped-{version}-{n}-{}", before));
        std::fs::write(&path, format!("payload {}-file\n", marker(version))).expect("write");
        std::thread::sleep(std::time::Duration::from_millis(300));
        if judged() > before {
            return true;
        }
    }
    false
}

fn content(args: &[&str], paths: &[&Path]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("content")
        .args(args)
        .args(paths)
        .env_remove("RUST_LOG")
        .output()
        .expect("vigil runs");
    assert!(o.status.success(), "vigil content {args:?}: {o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs a shell whose command line carries `marker(version)`.
fn fire(version: &str) {
    let st = Command::new("/bin/sh")
        .args(["-c", &format!(": {}", marker(version))])
        .status()
        .expect("sh");
    assert!(st.success());
}

/// Fires `version`'s marker every 200 ms until a new finding of its rule is written
/// (up to `secs`).
fn fires(findings: &Path, version: &str, secs: u64) -> bool {
    let before = count(findings, version);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        fire(version);
        std::thread::sleep(std::time::Duration::from_millis(200));
        if count(findings, version) > before {
            return true;
        }
    }
    false
}

fn count(findings: &Path, version: &str) -> usize {
    let id = rule_id(version);
    support::lines(findings)
        .unwrap_or_default()
        .iter()
        .filter(|f| {
            f["class_uid"] == 2004
                && f["activity_id"] == 1
                && f["finding_info"]["analytic"]["uid"] == id.as_str()
        })
        .count()
}

/// The agent's metrics, as text.
fn scrape(addr: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    write!(s, "GET /metrics HTTP/1.1\r\nHost: vigil\r\n\r\n").expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

/// Response records of `action` answering a finding of `version`'s rule.
fn answers(events: &Path, action: &str, version: &str) -> usize {
    let id = rule_id(version);
    support::lines(events)
        .unwrap_or_default()
        .iter()
        .filter(|e| e["unmapped"]["action"] == action && e["unmapped"]["rule_uid"] == id.as_str())
        .count()
}

fn content_update(events: &Path, version: &str, secs: u64) -> Option<serde_json::Value> {
    wait_for(events, secs, |e| {
        e["class_uid"] == 1008
            && e["activity_name"] == "Content Update"
            && e["unmapped"]["content_version"] == version
    })
}

#[test]
fn a_bundle_applied_while_the_agent_runs_is_swapped_in_a_bad_one_refused_and_rolled_back() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let root = tmp("content-agent", "swap");
    let store = root.join("store");
    let events = root.join("events.jsonl");
    let findings = root.join("findings.jsonl");
    // A program of its own (true with this run's bytes after it): an indicator of
    // bundle 2 only.
    let probe = root.join("vigil-content-probe");
    let mut bytes = std::fs::read("/bin/true").expect("true");
    bytes.extend_from_slice(marker("probe").as_bytes());
    std::fs::write(&probe, &bytes).expect("probe");
    std::fs::set_permissions(&probe, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let sum = Command::new("sha256sum")
        .arg(&probe)
        .output()
        .expect("sha256sum");
    let sha = String::from_utf8_lossy(&sum.stdout)[..64].to_string();
    let (b1, b2) = (bundle(&root, "1", None), bundle(&root, "2", Some(&sha)));
    let indicated = || {
        support::lines(&findings)
            .unwrap_or_default()
            .iter()
            .filter(|f| f["class_uid"] == 2004 && f["osint"][0]["value"] == sha.as_str())
            .count()
    };
    let run_probe = || {
        let st = Command::new(&probe).status().expect("probe");
        assert!(st.success());
    };
    let work = root.join("work");
    std::fs::create_dir_all(&work).expect("work");
    let cfg = root.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[rules]\nbuiltin = false\n[output]\nstats_interval_secs = 1\n\
             [respond]\nstate_dir = \"{d}/state\"\npolicy = [{{ rules = [\"{r1}\"], actions = [\"quarantine\"] }}]\n[respond.quarantine]\nvault_dir = \"{d}/vault\"\n\
             [yara]\ninclude = [\"{w}\"]\n[content]\ndir = \"{s}\"\ncheck_secs = 1\n",
            d = root.display(),
            s = store.display(),
            w = work.display(),
            r1 = rule_id("1")
        ),
    )
    .expect("config");
    let cfg_arg = ["--config", cfg.to_str().expect("utf-8")];
    content(&["apply", cfg_arg[0], cfg_arg[1]], &[&b1]);
    let log = root.join("agent.log");
    let metrics = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.args(["agent", "--metrics", &metrics.to_string(), "--config"])
        .arg(&cfg)
        .arg("--output")
        .arg(&events)
        .arg("--findings")
        .arg(&findings);
    let mut agent = start_agent(c, &events, &log);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();

    // Bundle 1 runs from the start.
    assert!(
        fires(&findings, "1", 20),
        "bundle 1's rule fires\n{}",
        log_text()
    );
    assert!(
        file_judged(&findings, &work, "1", 20),
        "bundle 1's YARA rule judges files\n{}",
        log_text()
    );
    run_probe();
    // The configuration's policy (bundle 1 has none) answers bundle 1's rule.
    let started = wait_for(&events, 20, |e| {
        e["unmapped"]["action"] == "quarantine"
            && e["unmapped"]["rule_uid"] == rule_id("1").as_str()
    });
    assert!(
        started.is_some(),
        "the configuration's policy answers\n{}",
        log_text()
    );

    // Bundle 2, applied while the agent runs: swapped in, its rule fires, 1's no more.
    content(&["apply", cfg_arg[0], cfg_arg[1]], &[&b2]);
    let update = content_update(&events, "2", 30)
        .unwrap_or_else(|| panic!("no Content Update to 2\n{}", log_text()));
    assert_eq!(update["status"], "Success", "{update}");
    assert_eq!(update["unmapped"]["previous_version"], "1", "{update}");
    assert!(
        fires(&findings, "2", 20),
        "bundle 2's rule fires\n{}",
        log_text()
    );
    let kill = wait_for(&events, 20, |e| {
        e["unmapped"]["action"] == "kill" && e["unmapped"]["rule_uid"] == rule_id("2").as_str()
    })
    .unwrap_or_else(|| panic!("bundle 2's policy answers its rule\n{}", log_text()));
    assert_eq!(kill["unmapped"]["mode"], "detect", "{kill}");
    assert!(
        file_judged(&findings, &work, "2", 20),
        "bundle 2's YARA rules judge files\n{}",
        log_text()
    );
    assert_eq!(indicated(), 0, "bundle 1 has no indicators");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while indicated() == 0 && std::time::Instant::now() < deadline {
        run_probe();
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        indicated() > 0,
        "bundle 2's indicator is matched\n{}",
        log_text()
    );
    let ones = count(&findings, "1");
    fire("1");
    // A later process's finding: the one before it was matched.
    assert!(fires(&findings, "2", 20), "{}", log_text());
    assert_eq!(count(&findings, "1"), ones, "bundle 1's rule runs no more");
    let stats = wait_for(&events, 10, |e| {
        e["activity_name"] == "Statistics" && e["unmapped"]["content_version"] == "2"
    });
    assert!(stats.is_some(), "the statistics name the content that runs");
    let scraped = scrape(metrics);
    assert!(
        scraped.contains("vigil_content_info{version=\"2\"} 1"),
        "the metrics name the content that runs:\n{scraped}"
    );

    // A bad bundle the link is pointed at by hand (as a corrupted store would be): a
    // copy of 2 as version 3 whose rule file no longer matches the manifest.
    let v3 = store.join("versions/3");
    std::fs::create_dir_all(v3.join("sigma")).expect("v3");
    let manifest = std::fs::read_to_string(store.join("versions/2/bundle.toml"))
        .expect("manifest")
        .replace("version = \"2\"", "version = \"3\"");
    std::fs::write(v3.join("bundle.toml"), manifest).expect("manifest");
    std::fs::write(v3.join("sigma/marker.yml"), "title: tampered\n").expect("rule");
    let tmp_link = store.join("current.new");
    std::os::unix::fs::symlink("versions/3", &tmp_link).expect("link");
    std::fs::rename(&tmp_link, store.join("current")).expect("switch");
    let refused = content_update(&events, "3", 30)
        .unwrap_or_else(|| panic!("no Content Update refusing 3\n{}", log_text()));
    assert_eq!(refused["status"], "Failure", "{refused}");
    assert_eq!(refused["unmapped"]["running_version"], "2", "{refused}");
    let problems = refused["unmapped"]["problems"].to_string();
    assert!(
        problems.contains("sigma/marker.yml: changed: its SHA-256 is "),
        "{refused}"
    );
    // The old content still runs: 2's rule fires on a new process.
    assert!(
        fires(&findings, "2", 20),
        "bundle 2's rule still fires after the refusal\n{}",
        log_text()
    );

    let before_rollback = answers(&events, "quarantine", "1");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let indicated_before = indicated();
    // Rollback: the previous bundle (1) runs again.
    let out = content(&["rollback", cfg_arg[0], cfg_arg[1]], &[]);
    assert!(out.contains("content 1 runs again"), "{out}");
    let back = content_update(&events, "1", 30)
        .unwrap_or_else(|| panic!("no Content Update back to 1\n{}", log_text()));
    assert_eq!(back["status"], "Success", "{back}");
    assert!(
        fires(&findings, "1", 20),
        "bundle 1's rule fires again\n{}",
        log_text()
    );
    assert!(
        file_judged(&findings, &work, "1", 20),
        "bundle 1's YARA rule judges files again\n{}",
        log_text()
    );
    // The configuration's policy runs again (bundle 1 has none): its rule asks for a
    // quarantine of what bundle 1's rule flags, as at the start.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while answers(&events, "quarantine", "1") <= before_rollback
        && std::time::Instant::now() < deadline
    {
        fire("1");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        answers(&events, "quarantine", "1") > before_rollback,
        "the configuration's policy answers again after the rollback\n{}",
        log_text()
    );
    run_probe();
    assert!(fires(&findings, "1", 20), "{}", log_text());
    assert_eq!(indicated(), indicated_before, "bundle 1 has no indicators");
    assert_eq!(stop_agent(&mut agent), Some(0), "{}", log_text());
    assert!(log_text().contains("new content runs"), "{}", log_text());
    let _ = std::fs::remove_dir_all(root);
}
