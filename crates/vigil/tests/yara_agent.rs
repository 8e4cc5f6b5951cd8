//! File verdicts under the real agent: YARA rules judge each executable at its exec and
//! each file closed after writing, off the event thread, once per unchanged file; a
//! match is a Detection Finding about the process, in its story, and the policy answers
//! it (a dropped file blocked before it ever runs, or moved into the vault). Needs root.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
mod support;

use support::{lines, start_agent, stop_agent, tmp, wait_for};

/// One agent at a time: each watches the whole host.
static ONE_AGENT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A marker no other file has: this run's own.
fn marker(what: &str) -> String {
    format!("VIGIL-YARA-{what}-{}-MARK", std::process::id())
}

/// A rule directory: a rule matching `marker` (score 85: high), and a file that does
/// not compile (refused with its place; the good one still loads).
fn rules(dir: &Path, marker: &str) -> PathBuf {
    let d = dir.join("yara");
    std::fs::create_dir_all(&d).expect("rules dir");
    std::fs::write(
        d.join("dropper.yar"),
        format!(
            "rule Vigil_Test_Dropper : test dropper\n{{\n  meta:\n    description = \"a test marker\"\n    score = 85\n  strings:\n    $m = \"{marker}\"\n  condition:\n    $m\n}}\n"
        ),
    )
    .expect("rule");
    std::fs::write(
        d.join("broken.yar"),
        "rule ok_so_far { condition: true }\n\nrule broken {\n  condition: $undefined\n}\n",
    )
    .expect("broken rule");
    d
}

/// A copy of touch with `marker` after its code: a program of its own the rule matches.
fn program(path: &Path, marker: &str) {
    let mut bytes = std::fs::read("/usr/bin/touch").expect("touch");
    bytes.extend_from_slice(marker.as_bytes());
    std::fs::write(path, &bytes).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn agent(dir: &Path, cfg: Option<&Path>, yara: &Path) -> support::Agent {
    let events = dir.join("events.jsonl");
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.args(["agent", "--no-builtin-rules", "--output"])
        .arg(&events)
        .arg("--findings")
        .arg(dir.join("findings.jsonl"))
        .arg("--yara")
        .arg(yara);
    if let Some(cfg) = cfg {
        c.arg("--config").arg(cfg);
    }
    start_agent(c, &events, &dir.join("agent.log"))
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
}

fn is_yara_finding(f: &serde_json::Value) -> bool {
    f["class_uid"] == 2004
        && f["finding_info"]["types"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "YARA"))
}

/// The agent's last Statistics event's counter `name`.
fn last_counter(events: &Path, name: &str) -> u64 {
    lines(events)
        .expect("events")
        .iter()
        .rev()
        .find(|e| e["class_uid"] == 1008 && e["activity_name"] == "Statistics")
        .and_then(|e| e["unmapped"][name].as_u64())
        .unwrap_or_else(|| panic!("no {name} in the last Statistics event"))
}

#[test]
fn a_dropped_file_a_yara_rule_matches_is_found_at_its_close_and_blocked_before_it_runs() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let _one = ONE_AGENT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tmp("yara-agent", "drop");
    let work = dir.join("work");
    std::fs::create_dir_all(&work).expect("work");
    let mark = marker("DROP");
    let yara = rules(&dir, &mark);
    // The payload is made before the agent runs; the drop is its copy into `work`.
    let staged = dir.join("staged");
    program(&staged, &mark);
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[respond]\nstate_dir = \"{d}/state\"\npolicy = [{{ min_level = \"high\", actions = [\"block\"] }}]\n\
             [respond.modes]\nblock = \"protect\"\n[respond.block]\nall_mounts = false\nwatch = [\"{w}\"]\n\
             [respond.quarantine]\nvault_dir = \"{d}/vault\"\n",
            d = dir.display(),
            w = work.display()
        ),
    )
    .expect("config");
    let mut a = agent(&dir, Some(&cfg), &yara);
    let dropped = work.join("payload");
    let st = Command::new("cp")
        .arg(&staged)
        .arg(&dropped)
        .status()
        .expect("cp");
    assert!(st.success());
    let findings = dir.join("findings.jsonl");
    let f = wait_for(&findings, 30, |f| {
        is_yara_finding(f) && f["evidences"][0]["file"]["path"] == dropped.to_str().unwrap()
    })
    .unwrap_or_else(|| panic!("no YARA finding for the dropped file\n{}", log(&dir)));
    assert_eq!(f["finding_info"]["analytic"]["name"], "Vigil_Test_Dropper");
    assert_eq!(
        f["finding_info"]["analytic"]["uid"],
        format!("{}:Vigil_Test_Dropper", yara.join("dropper.yar").display())
    );
    assert_eq!(f["severity"], "High", "score 85");
    // The process that wrote it, in its story; the triggering event after the file.
    let writer = f["actor"]["process"]["file"]["path"].as_str().unwrap_or("");
    assert!(writer.ends_with("/cp"), "{f}");
    assert!(f["metadata"]["correlation_uid"].is_string(), "{f}");
    assert_eq!(f["evidences"][1]["name"], "triggering event");
    let sha = f["evidences"][0]["file"]["hashes"][0]["value"]
        .as_str()
        .expect("the file's SHA-256")
        .to_string();
    assert_eq!(
        sha,
        vigil_respond::vault::sha256_of(std::fs::File::open(&dropped).expect("open"))
            .expect("hash")
    );
    // The policy blocks the file itself (not cp): it never runs.
    let blocked = wait_for(&dir.join("events.jsonl"), 30, |e| {
        e["unmapped"]["action"] == "block" && e["status"] == "Success"
    })
    .unwrap_or_else(|| panic!("no block record\n{}", log(&dir)));
    assert_eq!(blocked["unmapped"]["sha256"], sha.as_str());
    let ran = dir.join("ran");
    let e = Command::new(&dropped)
        .arg(&ran)
        .status()
        .expect_err("refused before it runs");
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(!ran.exists());
    assert_eq!(stop_agent(&mut a), Some(0), "{}", log(&dir));
    let log = log(&dir);
    assert!(
        log.contains(&format!("{}:4:", yara.join("broken.yar").display())),
        "the refused rule file is named with its line: {log}"
    );
    assert!(log.contains("YARA rules loaded"), "{log}");
    let events = dir.join("events.jsonl");
    assert!(last_counter(&events, "yara_scanned") >= 1);
    assert!(last_counter(&events, "yara_matched") >= 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn one_new_program_run_many_times_is_scanned_once_and_every_run_is_a_finding() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let _one = ONE_AGENT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tmp("yara-agent", "exec");
    let mark = marker("EXEC");
    let yara = rules(&dir, &mark);
    let prog = dir.join("marked-touch");
    program(&prog, &mark);
    // Executables under this test's directory only: the files the runs touch, and the
    // host's other programs, are not this test's business.
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[yara]\nwritten = false\ninclude = [\"{}\"]\n",
            dir.display()
        ),
    )
    .expect("config");
    let mut a = agent(&dir, Some(&cfg), &yara);
    let runs = 20;
    for i in 0..runs {
        let st = Command::new(&prog)
            .arg(dir.join(format!("touched-{i}")))
            .status()
            .expect("runs");
        assert!(st.success());
    }
    let findings = dir.join("findings.jsonl");
    let want = |fs: &[serde_json::Value]| {
        fs.iter()
            .filter(|f| is_yara_finding(f) && f["activity_id"] == 1)
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while want(&lines(&findings).unwrap_or_default()) < runs && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(stop_agent(&mut a), Some(0), "{}", log(&dir));
    let all = lines(&findings).expect("findings");
    assert_eq!(want(&all), runs, "one finding per run\n{}", log(&dir));
    // Each about the process that ran it.
    let mut pids: Vec<i64> = all
        .iter()
        .filter(|f| is_yara_finding(f) && f["activity_id"] == 1)
        .map(|f| {
            assert_eq!(
                f["actor"]["process"]["file"]["path"],
                prog.to_str().unwrap()
            );
            f["actor"]["process"]["pid"].as_i64().expect("pid")
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), runs);
    // One scan: every other run judged from the cache or beside the pending scan.
    let events = dir.join("events.jsonl");
    assert_eq!(last_counter(&events, "yara_scanned"), 1);
    assert_eq!(
        last_counter(&events, "yara_cache_hits") + last_counter(&events, "yara_joined"),
        runs as u64 - 1
    );
    assert_eq!(last_counter(&events, "yara_dropped"), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_fileless_program_run_from_memory_is_judged_through_its_process() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let _one = ONE_AGENT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tmp("yara-agent", "memfd");
    let mark = marker("MEMFD");
    let yara = rules(&dir, &mark);
    // The payload: a copy of sleep with the marker after its code, loaded into a memfd
    // and run from there (no path on any filesystem names it).
    let staged = dir.join("staged-sleep");
    let mut bytes = std::fs::read("/usr/bin/sleep").expect("sleep");
    bytes.extend_from_slice(mark.as_bytes());
    std::fs::write(&staged, &bytes).expect("stage");
    let mut a = agent(&dir, None, &yara);
    let memfd_name = format!("vigil-yara-mem-{}", std::process::id());
    let st = Command::new("perl")
        .arg("-e")
        .arg(format!(
            r#"my $fd = syscall(319, my $n = "{memfd_name}", 0); die "memfd_create: $!" if $fd < 0;
               open(my $src, "<:raw", "{staged}") or die; open(my $dst, ">&=", $fd) or die;
               my $data = do {{ local $/; <$src> }}; syswrite($dst, $data) == length($data) or die;
               exec {{"/proc/self/fd/$fd"}} "vigil-fileless", "1" or die "exec: $!";"#,
            staged = staged.display()
        ))
        .status()
        .expect("perl");
    assert!(st.success(), "the memfd program ran");
    let path = format!("/memfd:{memfd_name}");
    let f = wait_for(&dir.join("findings.jsonl"), 30, |f| {
        is_yara_finding(f) && f["evidences"][0]["file"]["path"] == path.as_str()
    })
    .unwrap_or_else(|| panic!("no YARA finding for the fileless program\n{}", log(&dir)));
    assert_eq!(f["finding_info"]["analytic"]["name"], "Vigil_Test_Dropper");
    assert_eq!(f["actor"]["process"]["cmd_line"], "vigil-fileless 1");
    assert_eq!(stop_agent(&mut a), Some(0), "{}", log(&dir));
    let _ = std::fs::remove_dir_all(&dir);
}
