//! Live detection in `vigil agent`: real eBPF events matched as they happen, findings with
//! their story and lineage, `vigil incidents` over the output, and what bad rules and a
//! full findings disk do. Needs root; with `CI=true` not being root fails the run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
mod support;

/// The complete lines written so far.
fn lines(path: &Path) -> Vec<serde_json::Value> {
    support::lines(path).expect("every line is one JSON event")
}

/// A running agent (killed if a test fails before stopping it), the file it logs to,
/// and its turn to run.
struct Agent {
    agent: support::Agent,
    stderr: PathBuf,
    _one: std::sync::MutexGuard<'static, ()>,
}

impl Agent {
    /// Stops the agent with SIGINT; returns its exit code and what it logged.
    fn stop(mut self) -> (Option<i32>, String) {
        let ok = Command::new("kill")
            .args(["-INT", &self.agent.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
        let status = self.agent.0.wait().expect("agent exits");
        let log = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        (status.code(), log)
    }
}

/// A fresh directory for one test, removed after it.
fn tmp(name: &str) -> support::Tmp {
    support::tmp("detect", name)
}

/// One agent at a time: each sees every event of the host, and tests running side by
/// side would each read the others' load.
static ONE_AGENT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Starts the agent writing events to `dir/events.jsonl` and waits for its Start event.
fn start_agent(dir: &Path, extra: &[&str]) -> Agent {
    let one = ONE_AGENT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = dir.join("events.jsonl");
    let stderr = dir.join("agent.log");
    let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["agent", "--output"])
        .arg(&out)
        .args(extra)
        .stderr(std::fs::File::create(&stderr).expect("log file"))
        .spawn()
        .expect("agent starts");
    let agent = Agent {
        agent: support::Agent(child),
        stderr,
        _one: one,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if lines(&out)
            .iter()
            .any(|e| e["class_uid"] == 1008 && e["activity_name"] == "Start")
        {
            return agent;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(&agent.stderr).unwrap_or_default();
    panic!("the agent did not start within 60 s:\n{log}");
}

/// Waits until `path` has a line for which `want` holds.
fn wait_for(path: &Path, want: impl Fn(&serde_json::Value) -> bool) -> Option<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(v) = lines(path).into_iter().find(&want) {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn rule(marker: &str, id: &str) -> String {
    format!(
        "title: Marker {marker} run by a shell\nid: {id}\nstatus: test\nlevel: high\n\
         description: A test rule\ntags: [attack.execution, attack.t1059.004]\n\
         logsource: {{product: linux, category: process_creation}}\n\
         detection:\n    selection:\n        CommandLine|contains: '{marker}'\n        \
         ParentImage|endswith: ['/sh', '/dash', '/bash']\n    condition: selection\nfalsepositives: [none]\n"
    )
}

#[test]
fn a_finding_is_written_while_the_agent_runs_with_its_story_and_lineage() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let dir = tmp("live");
    let marker = format!("vigil-live-{}", std::process::id());
    std::fs::write(
        dir.join("marker.yml"),
        rule(&marker, "0f5e2c1a-0000-4000-8000-000000000001"),
    )
    .expect("rule");
    let findings = dir.join("findings.jsonl");
    let rules = dir.join("marker.yml");
    let agent = start_agent(
        &dir,
        &[
            "--no-builtin-rules",
            "--rules",
            rules.to_str().expect("utf-8"),
            "--findings",
            findings.to_str().expect("utf-8"),
        ],
    );
    let st = Command::new("/bin/sh")
        .args([
            "-c",
            &format!("/bin/echo {marker} >/dev/null; /bin/true {marker}"),
        ])
        .status()
        .expect("sh");
    assert!(st.success());
    // Found live: the finding is in its file before the agent stops.
    let finding = wait_for(&findings, |f| {
        f["class_uid"] == 2004 && f["actor"]["process"]["cmd_line"] == format!("/bin/echo {marker}")
    })
    .expect("the finding, written while the agent runs");
    let (code, log) = agent.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("rules loaded loaded=1 files=1 builtin_files=0 failed=0 refused=0"),
        "{log}"
    );
    assert_eq!(finding["activity_id"], 1);
    assert_eq!(finding["severity"], "High");
    assert_eq!(
        finding["finding_info"]["analytic"]["uid"],
        "0f5e2c1a-0000-4000-8000-000000000001"
    );
    assert_eq!(
        finding["finding_info"]["src_url"],
        format!("{}:1", rules.display())
    );
    assert_eq!(
        finding["finding_info"]["attacks"][0]["sub_technique"]["uid"],
        "T1059.004"
    );
    let process = &finding["actor"]["process"];
    assert_eq!(process["parent_process"]["file"]["path"], "/usr/bin/dash");
    assert_eq!(
        process["ancestry"][1]["pid"],
        std::process::id(),
        "the test is the shell's parent"
    );
    assert_eq!(
        finding["evidences"][0]["data"]["process"]["uid"],
        process["uid"]
    );
    // Its story: the one the sensor's events of the same processes carry.
    let story = finding["metadata"]["correlation_uid"]
        .as_str()
        .expect("a story");
    let events = lines(&dir.join("events.jsonl"));
    let echo = events
        .iter()
        .find(|e| e["class_uid"] == 1007 && e["process"]["uid"] == process["uid"])
        .expect("the echo's launch");
    assert_eq!(echo["metadata"]["correlation_uid"], story);
    let sh = events
        .iter()
        .find(|e| e["class_uid"] == 1007 && e["process"]["uid"] == process["parent_process"]["uid"])
        .expect("the shell's launch");
    assert_eq!(sh["metadata"]["correlation_uid"], story);
    // The agent timed it from the exec's kernel record to its writing.
    let stats = events
        .iter()
        .rev()
        .find(|e| e["class_uid"] == 1008 && e["metadata"]["product"]["feature"]["name"] == "agent")
        .expect("the agent's statistics");
    // The echo and the true: two execs, each with its finding.
    assert_eq!(stats["unmapped"]["exec_findings"], 2, "{stats}");
    let p50 = stats["unmapped"]["exec_to_finding_p50_us"]
        .as_u64()
        .expect("p50");
    let max = stats["unmapped"]["exec_to_finding_max_us"]
        .as_u64()
        .expect("max");
    assert!(p50 > 0 && p50 <= max && max < 20_000_000, "{stats}");
    // The finding is in the events output too, and the incident in both.
    assert!(events
        .iter()
        .any(|e| e["class_uid"] == 2004
            && e["finding_info"]["uid"] == finding["finding_info"]["uid"]));
    let incident = lines(&findings)
        .into_iter()
        .find(|e| e["class_uid"] == 2005)
        .expect("an incident");
    assert_eq!(incident["metadata"]["correlation_uid"], story);
    // `vigil incidents` shows the flagged branch.
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("incidents")
        .arg(&findings)
        .output()
        .expect("vigil incidents");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with(&format!("incident {story} on ")), "{text}");
    assert!(text.contains("! "), "{text}");
    assert!(text.contains(&format!("/bin/echo {marker}")), "{text}");
    assert!(
        text.contains(&format!("-> Marker {marker} run by a shell (high)")),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_rules_are_reported_and_the_agent_runs_with_the_rest() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let dir = tmp("bad");
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).expect("dir");
    let marker = format!("vigil-bad-{}", std::process::id());
    std::fs::write(
        rules.join("a_good.yml"),
        rule(&marker, "0f5e2c1a-0000-4000-8000-000000000002"),
    )
    .expect("rule");
    std::fs::write(
        rules.join("b_broken.yml"),
        "title: Broken\nlogsource: {product: linux}\ndetection:\n  s: [unclosed\n",
    )
    .expect("rule");
    std::fs::write(
        rules.join("c_modifier.yml"),
        "title: Unknown modifier\nlogsource: {product: linux, category: process_creation}\n\
         detection:\n    s:\n        Image|sparkles: x\n    condition: s\n",
    )
    .expect("rule");
    let made = Command::new("mkfifo")
        .arg(rules.join("d_pipe.yml"))
        .status()
        .expect("mkfifo");
    assert!(made.success());
    // Costly without being wrong: 100 patterns with no literal to skip them by, against
    // a budget of 2 ms per event (set below).
    let mut slow = String::from(
        "title: Slow\nlogsource: {product: linux, category: process_creation}\n\
         detection:\n    s:\n        CommandLine|re:\n",
    );
    for i in 0..100 {
        slow.push_str(&format!(
            "            - '\\w{{{}}}\\W{{{}}}\\w{{{}}}\\s{{{}}}'\n",
            5 + i % 40,
            2 + i % 7,
            3 + i % 11,
            2 + i % 5
        ));
    }
    slow.push_str("    condition: s\n");
    std::fs::write(rules.join("e_slow.yml"), slow).expect("rule");
    let missing = dir.join("no-such-rules");
    let config = dir.join("agent.toml");
    std::fs::write(&config, "[rules]\ntrial_budget_ms = 2.0\n").expect("config");
    let agent = start_agent(
        &dir,
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--no-builtin-rules",
            "--rules",
            rules.to_str().expect("utf-8"),
            "--rules",
            missing.to_str().expect("utf-8"),
        ],
    );
    let st = Command::new("/bin/sh")
        .args(["-c", &format!("/bin/echo {marker} >/dev/null")])
        .status()
        .expect("sh");
    assert!(st.success());
    let events = dir.join("events.jsonl");
    let found = wait_for(&events, |f| f["class_uid"] == 2004);
    let (code, log) = agent.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(found.is_some(), "the good rule still detects:\n{log}");
    let r = rules.display();
    for expected in [
        // The parser notices the unclosed sequence at the end of the text.
        format!("rule not loaded: {r}/b_broken.yml:5: invalid YAML: "),
        format!("rule not loaded: {r}/c_modifier.yml:5: "),
        format!("rule not loaded: {r}/d_pipe.yml: not a regular file"),
        format!("rule not loaded: {r}/e_slow.yml: refused: matching one sample event took "),
        format!("rule not loaded: {}: cannot read: ", missing.display()),
        "rules loaded loaded=1 files=4 builtin_files=0 failed=5 refused=1".to_string(),
    ] {
        assert!(log.contains(&expected), "`{expected}` in:\n{log}");
    }
    assert!(log.contains("sparkles"), "the modifier is named:\n{log}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_full_findings_disk_drops_findings_but_not_events() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let dir = tmp("full");
    let marker = format!("vigil-full-{}", std::process::id());
    let rules = dir.join("marker.yml");
    std::fs::write(
        &rules,
        rule(&marker, "0f5e2c1a-0000-4000-8000-000000000003"),
    )
    .expect("rule");
    // /dev/full: every write fails with ENOSPC.
    let agent = start_agent(
        &dir,
        &[
            "--no-builtin-rules",
            "--rules",
            rules.to_str().expect("utf-8"),
            "--findings",
            "/dev/full",
        ],
    );
    for i in 0..3 {
        let st = Command::new("/bin/sh")
            .args(["-c", &format!("/bin/echo {marker}-{i} >/dev/null")])
            .status()
            .expect("sh");
        assert!(st.success());
    }
    let events = dir.join("events.jsonl");
    let found = wait_for(&events, |f| {
        f["class_uid"] == 2004
            && f["actor"]["process"]["cmd_line"] == format!("/bin/echo {marker}-2")
    });
    let (code, log) = agent.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        found.is_some(),
        "findings still reach the events output:\n{log}"
    );
    assert!(log.contains("output=/dev/full"), "{log}");
    assert!(log.contains("No space left on device"), "{log}");
    let all = lines(&events);
    assert_eq!(
        all.last().map(|e| e["activity_name"].clone()),
        Some("Stop".into()),
        "events flowed to the end"
    );
    let stats = all
        .iter()
        .rev()
        .find(|e| e["class_uid"] == 1008 && e["metadata"]["product"]["feature"]["name"] == "agent")
        .expect("the agent's statistics");
    let dropped = stats["unmapped"]["findings_dropped"]
        .as_u64()
        .expect("counted");
    // Three findings and their incident's Create and Updates: each line lost, counted.
    assert!(dropped >= 4, "{stats}");
    assert_eq!(stats["unmapped"]["events_dropped"], 0);
    assert!(
        log.contains(&format!("findings_dropped={dropped}")),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_executable_on_an_indicator_list_is_a_finding_naming_the_indicator_and_its_list() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let dir = tmp("intel");
    // A program of its own (a copy of true with bytes of this run after it: same code,
    // a hash no other file has).
    let exe = dir.join("vigil-ioc-probe");
    let mut bytes = std::fs::read("/bin/true").expect("true");
    bytes.extend_from_slice(format!("vigil-intel-{}", std::process::id()).as_bytes());
    std::fs::write(&exe, &bytes).expect("copy");
    std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let sum = Command::new("sha256sum")
        .arg(&exe)
        .output()
        .expect("sha256sum");
    let sha = String::from_utf8_lossy(&sum.stdout)[..64].to_string();
    let feed = dir.join("feed.txt");
    std::fs::write(
        &feed,
        format!("# test feed\n{}\nnot-an-indicator!\n", sha.to_uppercase()),
    )
    .expect("feed");
    let findings = dir.join("findings.jsonl");
    let agent = start_agent(
        &dir,
        &[
            "--no-builtin-rules",
            "--intel",
            feed.to_str().expect("utf-8"),
            "--findings",
            findings.to_str().expect("utf-8"),
        ],
    );
    let st = Command::new(&exe).status().expect("probe");
    assert!(st.success());
    let finding = wait_for(&findings, |f| {
        f["class_uid"] == 2004 && !f["osint"].is_null()
    })
    .expect("the indicator's finding, written while the agent runs");
    let (code, log) = agent.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(finding["osint"][0]["value"], sha);
    assert_eq!(finding["osint"][0]["type"], "Hash");
    assert_eq!(finding["osint"][0]["src_url"], feed.display().to_string());
    assert_eq!(finding["severity"], "High");
    assert_eq!(
        finding["actor"]["process"]["file"]["path"],
        exe.display().to_string()
    );
    assert!(
        log.contains(&format!(
            "{}:3: \"not-an-indicator!\" is not a hash",
            feed.display()
        )),
        "the bad line is reported with its place: {log}"
    );
    assert!(
        log.contains("indicators loaded indicators=1 files=1"),
        "{log}"
    );
}
