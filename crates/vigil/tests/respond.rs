//! Response under the real agent and by hand: a finding's branch, forking in a loop, is
//! frozen and killed with no process escaping; the flagged executable and the files its
//! story wrote go into the vault and come back byte for byte; detect mode only records;
//! a policy naming an unknown rule stops the agent with its file and line; `vigil
//! respond` kills, quarantines and plans with the same records and guard rails. Needs
//! root; with `CI=true` not being root fails the run.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
mod support;

use support::{lines, start_agent, stop_agent, tmp, wait_for};

/// One agent at a time: each sees every event of the host.
static ONE_AGENT: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn vigil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
}

/// A configuration keeping every piece of response state under `dir`.
fn config(dir: &Path, extra: &str) -> PathBuf {
    let p = dir.join("agent.toml");
    std::fs::write(
        &p,
        format!(
            "[respond]\nstate_dir = \"{d}/state\"\n{extra}\n[respond.quarantine]\nvault_dir = \"{d}/vault\"\n\
             [respond.rollback]\njournal_dir = \"{d}/journal\"\n",
            d = dir.display()
        ),
    )
    .expect("config");
    p
}

/// A high rule on a marker in a command line.
fn rule(dir: &Path, marker: &str, id: &str) -> PathBuf {
    rule_on(dir, "CommandLine|contains", marker, id)
}

/// A high rule on a marker in one field of process creations.
fn rule_on(dir: &Path, field: &str, marker: &str, id: &str) -> PathBuf {
    let p = dir.join("rules.yml");
    std::fs::write(
        &p,
        format!(
            "title: Marker {marker}\nid: {id}\nstatus: test\nlevel: high\n\
             tags: [attack.execution, attack.t1059.004]\n\
             logsource: {{product: linux, category: process_creation}}\n\
             detection:\n    selection:\n        {field}: '{marker}'\n    condition: selection\n"
        ),
    )
    .expect("rule");
    p
}

/// Processes whose command line holds `marker` (and are not zombies).
fn with_marker(marker: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(marker) {
            out.push(pid);
        }
    }
    out
}

/// Kills what a failed test leaves running.
struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        for _ in 0..3 {
            for p in with_marker(&self.0) {
                let _ = Command::new("kill").args(["-9", &p.to_string()]).status();
            }
        }
    }
}

fn agent_cmd(dir: &Path, cfg: &Path, rules: &Path, extra: &[&str]) -> Command {
    let mut c = vigil();
    c.args(["agent", "--no-builtin-rules", "--output"])
        .arg(dir.join("events.jsonl"))
        .arg("--findings")
        .arg(dir.join("findings.jsonl"))
        .arg("--config")
        .arg(cfg)
        .arg("--rules")
        .arg(rules)
        .args(extra);
    c
}

#[test]
fn a_branch_forking_in_a_loop_is_frozen_and_killed_whole_when_its_finding_is_made() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let _one = ONE_AGENT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tmp("respond", "kill");
    let marker = format!("vigil-kill-{}", std::process::id());
    // Each sleep's argument (a number of seconds no other process uses) marks the
    // branch's processes for the scan afterwards.
    let seconds = format!("{}.{}", 7000 + std::process::id() % 1000, 4242);
    let _cleanup = Cleanup(seconds.clone());
    let flagged = format!("{marker}-flagged");
    let rules = rule(&dir, &flagged, "0f5e2c1a-0000-4000-8000-0000000000a1");
    let cfg = config(&dir, "");
    let events = dir.join("events.jsonl");
    let mut agent = start_agent(
        agent_cmd(&dir, &cfg, &rules, &["--policy", "protect"]),
        &events,
        &dir.join("agent.log"),
    );
    // The shell starts two loops that fork sleeps (as their children, and through a
    // subshell that exits at once: re-parented away from the branch), then becomes the
    // flagged program by exec (same pid, same children): the kill finds a branch that
    // is forking. Only the exec'd command line holds the flagged marker (`${m}` stands
    // for it before).
    let script = format!(
        "m={marker}\n\
         for i in 1 2; do (while :; do /bin/sleep {seconds} & ( /bin/sleep {seconds} & ) ; \
         /bin/sleep 0.005; done) & done\n\
         /bin/sleep 0.2; exec /bin/sh -c \"# ${{m}}-flagged\n/bin/sleep {seconds}\""
    );
    let mut sh = Command::new("/bin/sh")
        .args(["-c", &script])
        .spawn()
        .expect("sh");
    let kill = wait_for(&events, 30, |e| {
        e["class_uid"] == 7003
            && e["unmapped"]["action"] == "kill"
            && e["unmapped"]["late"].is_null()
    });
    let status = sh.wait().expect("the shell ends");
    let kill = kill.unwrap_or_else(|| {
        panic!(
            "no kill record:\n{}",
            std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
        )
    });
    assert_eq!(status.signal(), Some(9), "the shell was killed");
    // Late children (forked just before the freeze, reported after) are killed within
    // the watch window; then nothing of the branch is left.
    std::thread::sleep(Duration::from_millis(2500));
    let left = with_marker(&seconds);
    assert!(left.is_empty(), "escaped the kill: {left:?}\n{kill:#}");
    assert_eq!(stop_agent(&mut agent), Some(0));
    let finding = lines(&dir.join("findings.jsonl"))
        .expect("findings")
        .into_iter()
        .find(|f| f["class_uid"] == 2004)
        .expect("the finding");
    assert_eq!(
        kill["unmapped"]["finding_uid"],
        finding["finding_info"]["uid"]
    );
    assert_eq!(
        kill["unmapped"]["rule_uid"],
        "0f5e2c1a-0000-4000-8000-0000000000a1"
    );
    assert_eq!(
        kill["metadata"]["correlation_uid"],
        finding["metadata"]["correlation_uid"]
    );
    assert_eq!(kill["process"]["pid"], sh.id());
    assert_eq!(kill["status"], "Success", "{kill:#}");
    assert_eq!(kill["unmapped"]["mode"], "protect");
    assert_eq!(kill["activity_name"], "Evict");
    let killed = kill["unmapped"]["killed"].as_array().expect("killed");
    assert!(killed.len() >= 2, "{kill:#}");
    assert_eq!(killed[0]["pid"], sh.id());
    let elapsed = kill["unmapped"]["elapsed_us"].as_u64().expect("elapsed");
    eprintln!(
        "kill: {} processes, frozen after {} us, killed after {} us, whole record after {elapsed} us",
        killed.len(),
        kill["unmapped"]["frozen_us"],
        kill["unmapped"]["killed_us"]
    );
    // Reported once: one kill record for the shell, whatever else fired.
    let records = lines(&events).expect("events");
    let shell_kills = records
        .iter()
        .filter(|e| e["class_uid"] == 7003 && e["command_uid"] == kill["command_uid"])
        .count();
    assert_eq!(shell_kills, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

use std::os::unix::process::ExitStatusExt;

#[test]
fn the_flagged_executable_and_the_files_its_story_wrote_go_to_the_vault_and_come_back() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let _one = ONE_AGENT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tmp("respond", "quarantine");
    let marker = format!("vigil-quar-{}", std::process::id());
    let rules = rule_on(
        &dir,
        "Image|endswith",
        &format!("/payload-{marker}"),
        "0f5e2c1a-0000-4000-8000-0000000000a2",
    );
    let cfg = config(&dir, "");
    let events = dir.join("events.jsonl");
    // A dropped program (a shell script; its interpreter is the flagged process's
    // executable only when run by name): a copy of /bin/sleep under a name of its own.
    let work = dir.join("work");
    std::fs::create_dir_all(&work).expect("work");
    let payload = work.join(format!("payload-{marker}"));
    std::fs::copy("/bin/sleep", &payload).expect("copy");
    std::os::unix::fs::chown(&payload, Some(65534), Some(65534)).expect("chown");
    std::fs::set_permissions(&payload, std::fs::Permissions::from_mode(0o4755)).expect("chmod");
    let original = std::fs::read(&payload).expect("read");
    let mut agent = start_agent(
        agent_cmd(&dir, &cfg, &rules, &["--policy", "protect"]),
        &events,
        &dir.join("agent.log"),
    );
    // The story writes a file, then runs the payload (flagged by its name).
    let note = work.join("note.txt");
    let script = format!(
        "echo 'pay up' > {note}; {payload} 30",
        note = note.display(),
        payload = payload.display()
    );
    let mut sh = Command::new("/bin/sh")
        .args(["-c", &script])
        .spawn()
        .expect("sh");
    let moved = wait_for(&events, 30, |e| {
        e["class_uid"] == 7002 && e["file"]["path"] == payload.to_str().expect("utf-8")
    })
    .expect("the payload's quarantine record");
    let _ = sh.wait();
    let note_rec = wait_for(&events, 10, |e| {
        e["class_uid"] == 7002 && e["file"]["path"] == note.to_str().expect("utf-8")
    })
    .expect("the note's quarantine record");
    assert_eq!(stop_agent(&mut agent), Some(0));
    assert_eq!(moved["status"], "Success", "{moved:#}");
    assert_eq!(note_rec["status"], "Success", "{note_rec:#}");
    assert!(
        !payload.exists() && !note.exists(),
        "both left their places"
    );
    assert_eq!(moved["file"]["owner"]["uid"], "65534");
    assert_eq!(moved["file"]["attributes"], 0o4755);
    let id = moved["unmapped"]["vault_id"]
        .as_str()
        .expect("vault id")
        .to_string();
    // `vigil quarantine list` shows both, with their metadata.
    let out = vigil()
        .args(["quarantine", "list", "--format", "jsonl", "--config"])
        .arg(&cfg)
        .output()
        .expect("list");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let items: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(items.len(), 2, "{items:?}");
    let item = items
        .iter()
        .find(|i| i["id"] == id.as_str())
        .expect("the payload");
    assert_eq!(
        item["provenance"]["rule_uid"],
        "0f5e2c1a-0000-4000-8000-0000000000a2"
    );
    assert_eq!(item["mode"], 0o4755);
    // `vigil quarantine restore ID`: byte for byte, owner and mode (set-uid kept).
    let out = vigil()
        .args(["quarantine", "restore", &id, "--config"])
        .arg(&cfg)
        .output()
        .expect("restore");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a record");
    assert_eq!(rec["class_uid"], 7002);
    assert_eq!(rec["activity_name"], "Restore");
    assert_eq!(rec["status"], "Success");
    assert_eq!(std::fs::read(&payload).expect("back"), original);
    let m = std::fs::metadata(&payload).expect("meta");
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777),
        (65534, 65534, 0o4755)
    );
    // `purge --all` empties the vault.
    let out = vigil()
        .args(["quarantine", "purge", "--all", "--config"])
        .arg(&cfg)
        .output()
        .expect("purge");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    let out = vigil()
        .args(["quarantine", "list", "--config"])
        .arg(&cfg)
        .output()
        .expect("list");
    assert!(out.stdout.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn in_detect_mode_records_say_what_would_be_done_and_nothing_is_touched() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let _one = ONE_AGENT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tmp("respond", "detect");
    let marker = format!("vigil-det-{}", std::process::id());
    let _cleanup = Cleanup(marker.clone());
    let rules = rule(
        &dir,
        &format!("{marker}-flagged"),
        "0f5e2c1a-0000-4000-8000-0000000000a3",
    );
    let cfg = config(&dir, "");
    let events = dir.join("events.jsonl");
    let mut agent = start_agent(
        agent_cmd(&dir, &cfg, &rules, &[]),
        &events,
        &dir.join("agent.log"),
    );
    // The flagged shell has its child before it is flagged: it starts a sleep, then
    // becomes the shell whose command line holds the flagged marker (the first command
    // line has `${m}` in its place, so its own exec is not the one flagged).
    let mut sh = Command::new("/bin/sh")
        .args([
            "-c",
            &format!(
                "m={marker}; /bin/sleep 30 & exec /bin/sh -c \"# ${{m}}-flagged\n/bin/sleep 30\""
            ),
        ])
        .spawn()
        .expect("sh");
    let would = wait_for(&events, 30, |e| {
        e["class_uid"] == 7003 && e["unmapped"]["action"] == "kill"
    })
    .expect("a detect-mode kill record");
    assert_eq!(would["unmapped"]["mode"], "detect");
    assert_eq!(would["status_id"], 99);
    assert!(would["remediation"]["desc"]
        .as_str()
        .expect("desc")
        .starts_with("would have: freeze and kill process"));
    let branch = would["unmapped"]["branch"].as_array().expect("branch");
    assert_eq!(branch[0]["pid"], sh.id());
    // Its child: the sleep, or (on a busy host) the fork that has not run sleep yet.
    assert!(
        branch
            .iter()
            .any(|p| p["pid"] != sh.id() && (p["name"] == "sleep" || p["name"] == "sh")),
        "{would:#}"
    );
    assert_eq!(sh.try_wait().expect("wait"), None, "the shell runs on");
    assert_eq!(stop_agent(&mut agent), Some(0));
    assert!(!dir.join("vault").exists(), "no vault made in detect mode");
    let _ = sh.kill();
    let _ = sh.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_policy_naming_an_unknown_rule_stops_the_agent_with_the_file_and_line() {
    let dir = tmp("respond", "badpolicy");
    let rules = rule(&dir, "x-marker", "0f5e2c1a-0000-4000-8000-0000000000a4");
    let cfg = config(
        &dir,
        "policy = [\n  { rules = [\"0f5e2c1a-0000-4000-8000-0000000000a4\"], actions = [\"kill\"] },\n  { rules = [\"no-such-rule\"], actions = [\"kill\"] },\n]",
    );
    let out = vigil()
        .args(["agent", "--no-builtin-rules", "--output"])
        .arg(dir.join("events.jsonl"))
        .arg("--config")
        .arg(&cfg)
        .arg("--rules")
        .arg(&rules)
        .output()
        .expect("agent");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:5: respond.policy names rule `no-such-rule`, which no loaded rule has",
            cfg.display()
        )),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn run(cmd: &mut Command) -> (Output, Vec<serde_json::Value>) {
    let out = cmd.output().expect("vigil");
    let records = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .collect();
    (out, records)
}

#[test]
fn by_hand_a_branch_is_killed_a_file_quarantined_and_the_guard_rails_hold() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let dir = tmp("respond", "manual");
    let cfg = config(&dir, "");
    let seconds = format!("{}.{}", 6000 + std::process::id() % 1000, 4343);
    let _cleanup = Cleanup(seconds.clone());
    let mut sh = Command::new("/bin/sh")
        .args([
            "-c",
            &format!("/bin/sleep {seconds} & /bin/sleep {seconds} & wait"),
        ])
        .spawn()
        .expect("sh");
    let deadline = Instant::now() + Duration::from_secs(5);
    while with_marker(&seconds).len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (out, recs) = run(vigil()
        .args(["respond", "kill", &sh.id().to_string(), "--config"])
        .arg(&cfg));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["class_uid"], 7003);
    assert_eq!(recs[0]["status"], "Success", "{:#}", recs[0]);
    assert_eq!(
        recs[0]["unmapped"]["killed"].as_array().map(Vec::len),
        Some(3)
    );
    assert!(recs[0]["unmapped"]["requested_by"]
        .as_str()
        .expect("who")
        .contains("respond kill"));
    assert_eq!(sh.wait().expect("wait").signal(), Some(9));
    assert!(with_marker(&seconds).is_empty());
    // pid 1 and the caller's own shell (an ancestor) are never killed.
    let (out, recs) = run(vigil().args(["respond", "kill", "1", "--config"]).arg(&cfg));
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(recs[0]["status"], "Failure");
    assert_eq!(
        recs[0]["status_detail"],
        "process 1 was not killed: pid 1 is never acted on"
    );
    let (out, recs) = run(vigil()
        .args([
            "respond",
            "kill",
            &std::process::id().to_string(),
            "--config",
        ])
        .arg(&cfg));
    assert_eq!(out.status.code(), Some(3));
    assert!(recs[0]["status_detail"]
        .as_str()
        .expect("detail")
        .ends_with("the agent, its helper and its ancestors are never acted on"));
    // A gone process: Does Not Exist, not an error of vigil's.
    let (out, recs) = run(vigil()
        .args(["respond", "kill", "2147483000", "--config"])
        .arg(&cfg));
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(recs[0]["status"], "Does Not Exist", "{:#}", recs[0]);
    // Quarantine by hand: a file in, a missing file reported, a protected one refused.
    let f = dir.join("dropped.bin");
    std::fs::write(&f, b"\x7fELF not really").expect("write");
    let (out, recs) = run(vigil()
        .args(["respond", "quarantine"])
        .arg(&f)
        .arg("--config")
        .arg(&cfg));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(recs[0]["class_uid"], 7002);
    assert_eq!(recs[0]["status"], "Success");
    assert!(!f.exists());
    let (out, recs) = run(vigil()
        .args(["respond", "quarantine"])
        .arg(&f)
        .arg("--config")
        .arg(&cfg));
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(recs[0]["status"], "Does Not Exist");
    let (out, recs) = run(vigil()
        .args(["respond", "quarantine", "/usr/bin/true", "--config"])
        .arg(&cfg));
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(recs[0]["status"], "Failure");
    assert!(Path::new("/usr/bin/true").exists());
    // Bad input: neither a pid nor a story.
    let out = vigil()
        .args(["respond", "kill", "nonsense"])
        .output()
        .expect("vigil");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a pid nor a story id"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plan_says_what_the_policy_would_do_over_recorded_findings() {
    let dir = tmp("respond", "plan");
    let findings = dir.join("findings.jsonl");
    let finding = |uid: &str, sev: i32, rule: &str, tactic: &str| {
        serde_json::json!({
            "class_uid": 2004, "category_uid": 2, "activity_id": 1, "type_uid": 200401,
            "severity_id": sev, "time": 1, "metadata": {"version": "1.8.0", "product": {"name": "Vigil"},
            "correlation_uid": "boot-7-100"},
            "finding_info": {"uid": uid, "title": "T", "analytic": {"type_id": 1, "uid": rule},
              "attacks": [{"tactic": {"name": tactic, "uid": "TA0040"}, "technique": {"uid": "T1486"}}]},
            "actor": {"process": {"pid": 4242, "uid": "boot-4242-9", "name": "enc",
              "file": {"name": "enc", "type_id": 1, "path": "/tmp/enc"}}}
        })
        .to_string()
    };
    let write = serde_json::json!({
        "class_uid": 1001, "category_uid": 1, "activity_id": 1, "type_uid": 100101, "severity_id": 1,
        "time": 1, "metadata": {"version": "1.8.0", "product": {"name": "Vigil"}, "correlation_uid": "boot-7-100"},
        "file": {"name": "README.locked", "type_id": 1, "path": "/srv/README.locked"}
    });
    std::fs::write(
        &findings,
        format!(
            "{}\n{}\nnot json\n{write}\n",
            finding("f-high", 4, "r-1", "Impact"),
            finding("f-low", 2, "r-2", "Impact")
        ),
    )
    .expect("findings");
    let cfg = config(
        &dir,
        "policy = [\n  { min_level = \"high\", actions = [\"kill\", \"quarantine\"] },\n  { tags = [\"attack.t1486\"], actions = [\"rollback\", \"isolate\"] },\n]",
    );
    let out = vigil()
        .args(["respond", "plan", "--policy", "protect", "--config"])
        .arg(&cfg)
        .arg(&findings)
        .output()
        .expect("plan");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("finding f-high (T, High) in story boot-7-100:"),
        "{text}"
    );
    assert!(
        text.contains("  kill (protect, policy rule 1): process 4242 (enc) and its branch"),
        "{text}"
    );
    assert!(
        text.contains("  quarantine (protect, policy rule 1): /tmp/enc, /srv/README.locked"),
        "{text}"
    );
    assert!(
        text.contains("  rollback (detect, policy rule 2): files story boot-7-100 rewrote"),
        "{text}"
    );
    assert!(
        text.contains("finding f-low (T, Low) in story boot-7-100:\n  rollback (detect"),
        "{text}"
    );
    assert!(
        !text.contains("f-low (T, Low) in story boot-7-100:\n  kill"),
        "{text}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:3: not an OCSF event Vigil reads",
            findings.display()
        )),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
