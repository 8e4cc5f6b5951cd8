//! Prevention and repair under the real agent: a flagged program is blocked by its
//! SHA-256 and never runs again (under any name); a stopped agent never hangs an exec
//! (its helper answers); a story that rewrote and renamed 500 files is rolled back, every
//! file identical to before (hash, owner, mode), by the policy and by `vigil rollback`.
//! Only the test's own directories are watched. Needs root.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
mod support;

use support::{lines, start_agent, stop_agent, tmp, wait_for};

static ONE_AGENT: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn vigil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
}

/// A configuration keeping response's state under `dir`, plus `extra` TOML.
fn config(dir: &Path, respond: &str, extra: &str) -> PathBuf {
    let p = dir.join("agent.toml");
    std::fs::write(
        &p,
        format!(
            "[respond]\nstate_dir = \"{d}/state\"\n{respond}\n[respond.quarantine]\nvault_dir = \"{d}/vault\"\n{extra}\n",
            d = dir.display()
        ),
    )
    .expect("config");
    p
}

fn rule(dir: &Path, field: &str, value: &str, id: &str) -> PathBuf {
    let p = dir.join("rules.yml");
    std::fs::write(
        &p,
        format!(
            "title: Marker {value}\nid: {id}\nstatus: test\nlevel: critical\n\
             tags: [attack.impact, attack.t1486]\n\
             logsource: {{product: linux, category: process_creation}}\n\
             detection:\n    selection:\n        {field}: '{value}'\n    condition: selection\n"
        ),
    )
    .expect("rule");
    p
}

fn agent(dir: &Path, cfg: &Path, rules: &Path) -> support::Agent {
    let events = dir.join("events.jsonl");
    let mut c = vigil();
    c.args(["agent", "--no-builtin-rules", "--output"])
        .arg(&events)
        .arg("--config")
        .arg(cfg)
        .arg("--rules")
        .arg(rules);
    start_agent(c, &events, &dir.join("agent.log"))
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
}

/// A script that creates `effect` when it runs, with a marker making its digest its own.
fn script(path: &Path, effect: &Path) {
    std::fs::write(
        path,
        format!(
            "#!/bin/sh\n# {}\ntouch {}\nsleep 0.2\n",
            path.display(),
            effect.display()
        ),
    )
    .expect("script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A copy of touch at `path` with `marker`'s bytes at the end: a digest of its own.
fn program_of_its_own(path: &Path, marker: &str) {
    let mut bytes = std::fs::read("/usr/bin/touch").expect("touch");
    bytes.extend_from_slice(marker.as_bytes());
    std::fs::write(path, &bytes).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn a_flagged_program_is_blocked_by_its_digest_and_never_runs_again() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let _one = ONE_AGENT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tmp("prevent", "block");
    let work = dir.join("work");
    std::fs::create_dir_all(&work).expect("work");
    // A program of its own (a copy of touch with bytes of its own at the end: its own
    // digest); its side effect: the file it is given.
    let marker = format!("dropper-{}", std::process::id());
    let prog = work.join(&marker);
    program_of_its_own(&prog, &marker);
    let ran = dir.join("ran");
    let rules = rule(
        &dir,
        "Image|endswith",
        &format!("/{marker}"),
        "0f5e2c1a-0000-4000-8000-0000000000c1",
    );
    let cfg = config(
        &dir,
        "policy = [{ min_level = \"high\", actions = [\"block\"] }]\n[respond.modes]\nblock = \"protect\"",
        &format!(
            "[respond.block]\nall_mounts = false\nwatch = [\"{}\"]",
            work.display()
        ),
    );
    let mut a = agent(&dir, &cfg, &rules);
    let events = dir.join("events.jsonl");
    // The first run is what gets it flagged: it runs.
    assert!(Command::new(&prog)
        .arg(&ran)
        .status()
        .expect("runs")
        .success());
    assert!(ran.exists());
    let blocked = wait_for(&events, 30, |e| {
        e["class_uid"] == 7003 && e["unmapped"]["action"] == "block" && e["status"] == "Success"
    })
    .unwrap_or_else(|| panic!("no block record\n{}", log(&dir)));
    let sha = blocked["unmapped"]["sha256"]
        .as_str()
        .expect("sha")
        .to_string();
    assert_eq!(
        sha,
        vigil_respond::vault::sha256_of(std::fs::File::open(&prog).expect("open")).expect("hash")
    );
    // Never again, under its name or another.
    std::fs::remove_file(&ran).expect("rm");
    let e = Command::new(&prog).arg(&ran).status().expect_err("refused");
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
    let renamed = work.join("innocent-name");
    std::fs::copy(&prog, &renamed).expect("copy");
    assert!(Command::new(&renamed).arg(&ran).status().is_err());
    assert!(!ran.exists(), "its side effect never happened");
    let refusal = wait_for(&events, 10, |e| {
        e["class_uid"] == 7003
            && e["unmapped"]["action"] == "block"
            && e["unmapped"]["executable"] == renamed.to_str().expect("utf-8")
    })
    .expect("the refusal's record");
    assert_eq!(refusal["unmapped"]["mode"], "protect");
    assert_eq!(refusal["unmapped"]["matched"], "sha256");
    // The blocklist is kept: a restarted agent refuses it too.
    assert_eq!(stop_agent(&mut a), Some(0));
    let kept = std::fs::read_to_string(dir.join("state/blocklist.json")).expect("kept");
    assert!(kept.contains(&sha));
    std::fs::rename(&events, dir.join("events-1.jsonl")).expect("mv");
    let mut a = agent(&dir, &cfg, &rules);
    assert!(
        Command::new(&prog).arg(&ran).status().is_err(),
        "still refused after a restart"
    );
    assert!(!ran.exists());
    assert_eq!(stop_agent(&mut a), Some(0));
    // Without the agent, nothing is watched.
    assert!(Command::new(&prog)
        .arg(&ran)
        .status()
        .expect("runs")
        .success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stopped_agent_never_hangs_an_exec() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let _one = ONE_AGENT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tmp("prevent", "stall");
    let work = dir.join("work");
    std::fs::create_dir_all(&work).expect("work");
    let prog = work.join("allowed");
    let ran = dir.join("ran");
    script(&prog, &ran);
    let rules = rule(
        &dir,
        "Image|endswith",
        "/never-run-anywhere",
        "0f5e2c1a-0000-4000-8000-0000000000c2",
    );
    let cfg = config(
        &dir,
        "[respond.modes]\nblock = \"protect\"",
        &format!(
            "[respond.block]\nall_mounts = false\nwatch = [\"{}\"]\nsha256 = [\"{}\"]\ndeadline_ms = 100",
            work.display(),
            "ab".repeat(32)
        ),
    );
    let mut a = agent(&dir, &cfg, &rules);
    let pid = a.0.id().to_string();
    // Watched, answered: runs.
    assert!(Command::new(&prog).status().expect("runs").success());
    // The agent stopped: its helper answers after the deadline.
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .expect("kill")
        .success());
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    std::fs::remove_file(&ran).expect("rm");
    let st = Command::new(&prog).status();
    let took = started.elapsed();
    assert!(Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .expect("kill")
        .success());
    assert!(st.expect("runs").success());
    assert!(ran.exists());
    assert!(took < Duration::from_secs(3), "the exec waited {took:?}");
    eprintln!("an exec under a stopped agent took {took:?}");
    // Back: the agent answers again, and stops cleanly.
    assert!(Command::new(&prog).status().expect("runs").success());
    assert_eq!(stop_agent(&mut a), Some(0));
    let l = log(&dir);
    assert!(l.contains("no heartbeat from the agent"), "{l}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// 500 files of varied content, owners and modes; (hash, uid, gid, mode) of each.
fn victims(data: &Path) -> Vec<(PathBuf, String, u32, u32, u32)> {
    let mut out = Vec::new();
    for i in 0..500u32 {
        let d = data.join(format!("d{}", i % 10));
        std::fs::create_dir_all(&d).expect("dir");
        let p = d.join(format!("doc{i}.txt"));
        let body: Vec<u8> = (0..(100 + i * 37)).map(|j| (j * 31 + i) as u8).collect();
        std::fs::write(&p, &body).expect("write");
        std::os::unix::fs::chown(&p, Some(1000 + i % 7), Some(100 + i % 3)).expect("chown");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600 | (i % 8) << 3))
            .expect("chmod");
        out.push((
            p,
            vigil_respond::vault::sha256_of(&body[..]).expect("hash"),
            1000 + i % 7,
            100 + i % 3,
            0o600 | (i % 8) << 3,
        ));
    }
    out
}

fn check_restored(files: &[(PathBuf, String, u32, u32, u32)]) {
    for (p, sha, uid, gid, mode) in files {
        let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let got =
            vigil_respond::vault::sha256_of(std::fs::File::open(p).expect("open")).expect("hash");
        assert_eq!(&got, sha, "{}", p.display());
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (*uid, *gid, *mode),
            "{}",
            p.display()
        );
        let locked = PathBuf::from(format!("{}.locked", p.display()));
        assert!(!locked.exists(), "{}", locked.display());
    }
}

/// The "ransomware": rewrites every file, makes it 0000, renames every other one.
fn encrypt(data: &Path, marker: &str) -> std::process::ExitStatus {
    let script = format!(
        "n=0; for f in $(find {} -name '*.txt' | sort); do n=$((n+1)); echo \"locked $f\" > \"$f\"; chmod 000 \"$f\"; \
         if [ $((n % 2)) = 0 ]; then mv \"$f\" \"$f.locked\"; fi; done; a={a}; /bin/true \"${{a}}{b}\"",
        data.display(),
        a = &marker[..4],
        b = &marker[4..],
    );
    Command::new("/bin/sh")
        .args(["-c", &script])
        .status()
        .expect("sh")
}

#[test]
fn a_story_that_rewrote_500_files_is_rolled_back_to_identical_files() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let _one = ONE_AGENT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tmp("prevent", "rollback");
    let data = dir.join("data");
    let files = victims(&data);
    let marker = format!("encryption-done-{}", std::process::id());
    let rules = rule(
        &dir,
        "CommandLine|contains",
        &marker,
        "0f5e2c1a-0000-4000-8000-0000000000c3",
    );
    let rollback = format!(
        "[respond.rollback]\npaths = [\"{}\"]\njournal_dir = \"{}/journal\"",
        data.display(),
        dir.display()
    );
    let cfg = config(
        &dir,
        "policy = [{ tags = [\"attack.t1486\"], actions = [\"rollback\"] }]\n[respond.modes]\nrollback = \"protect\"",
        &rollback,
    );
    let mut a = agent(&dir, &cfg, &rules);
    let events = dir.join("events.jsonl");
    assert!(encrypt(&data, &marker).success());
    // The finding on the last command rolls the story back.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut restored = 0;
    while Instant::now() < deadline {
        restored = lines(&events)
            .unwrap_or_default()
            .iter()
            .filter(|e| {
                e["class_uid"] == 7002
                    && e["unmapped"]["action"] == "rollback"
                    && e["unmapped"]["journal_entry"].is_string()
            })
            .count();
        if restored >= 500 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(stop_agent(&mut a), Some(0));
    let recs: Vec<serde_json::Value> = lines(&events)
        .expect("events")
        .into_iter()
        .filter(|e| e["class_uid"] == 7002 && e["unmapped"]["action"] == "rollback")
        .collect();
    let failed: Vec<_> = recs.iter().filter(|r| r["status"] != "Success").collect();
    assert!(failed.is_empty(), "{failed:#?}\n{}", log(&dir));
    assert_eq!(restored, 500, "{}", log(&dir));
    check_restored(&files);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn vigil_rollback_puts_back_a_story_recorded_in_detect_mode() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let _one = ONE_AGENT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tmp("prevent", "cli");
    let data = dir.join("data");
    let files = victims(&data);
    let marker = format!("encryption-done-{}", std::process::id());
    let rules = rule(
        &dir,
        "CommandLine|contains",
        &marker,
        "0f5e2c1a-0000-4000-8000-0000000000c4",
    );
    let rollback = format!(
        "[respond.rollback]\npaths = [\"{}\"]\njournal_dir = \"{}/journal\"",
        data.display(),
        dir.display()
    );
    let cfg = config(
        &dir,
        "policy = [{ tags = [\"attack.t1486\"], actions = [\"rollback\"] }]",
        &rollback,
    );
    let mut a = agent(&dir, &cfg, &rules);
    let events = dir.join("events.jsonl");
    assert!(encrypt(&data, &marker).success());
    let would = wait_for(&events, 60, |e| {
        e["class_uid"] == 7002 && e["unmapped"]["action"] == "rollback"
    })
    .unwrap_or_else(|| panic!("no rollback record\n{}", log(&dir)));
    assert_eq!(would["unmapped"]["mode"], "detect");
    let story = would["metadata"]["correlation_uid"]
        .as_str()
        .expect("story")
        .to_string();
    // Let the agent note the last renames, then stop it.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(stop_agent(&mut a), Some(0));
    // Nothing was put back in detect mode.
    for (p, sha, ..) in &files[..4] {
        let cur = if p.exists() {
            p.clone()
        } else {
            PathBuf::from(format!("{}.locked", p.display()))
        };
        let got = vigil_respond::vault::sha256_of(std::fs::File::open(&cur).expect("open"))
            .expect("hash");
        assert_ne!(&got, sha, "{}", cur.display());
    }
    // A dry run says what; the real one does it.
    let out = vigil()
        .args(["rollback", &story, "--dry-run", "--config"])
        .arg(&cfg)
        .output()
        .expect("vigil");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 500);
    let out = vigil()
        .args(["rollback", &story, "--config"])
        .arg(&cfg)
        .output()
        .expect("vigil");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect();
    assert_eq!(
        recs.iter()
            .filter(|r| r["unmapped"]["journal_entry"].is_string())
            .count(),
        500
    );
    assert_eq!(
        recs.iter()
            .filter(|r| r["status_detail"]
                .as_str()
                .is_some_and(|d| d.contains("renamed back")))
            .count(),
        250
    );
    check_restored(&files);
    // A story with nothing journaled: Does Not Exist, exit 3.
    let out = vigil()
        .args([
            "rollback",
            "6a97c9bc-0000-0000-0000-000000000000-1-1",
            "--config",
        ])
        .arg(&cfg)
        .output()
        .expect("vigil");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("the journal holds nothing"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The packaged unit runs the agent in a mount namespace of its own (ProtectSystem=,
/// ReadWritePaths=): its copies of the host's mounts are other mount objects than the
/// ones the host's programs run through. Exec marks on mounts (FAN_MARK_MOUNT) then saw
/// no exec outside the agent's namespace, and a blocked program ran; marks on the
/// filesystem see every exec of it, whatever the mount.
#[test]
fn exec_blocking_sees_execs_from_outside_the_agents_mount_namespace() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let _one = ONE_AGENT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tmp("prevent", "mountns");
    // A filesystem of the test's own, watched as a whole (a mount point).
    let fs = dir.join("fs");
    std::fs::create_dir_all(&fs).expect("fs");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "vigil-test"])
        .arg(&fs)
        .status()
        .expect("mount");
    assert!(mounted.success());
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(fs.clone());
    let marker = format!("blocked-{}", std::process::id());
    let prog = fs.join(&marker);
    program_of_its_own(&prog, &marker);
    let sha =
        vigil_respond::vault::sha256_of(std::fs::File::open(&prog).expect("open")).expect("hash");
    let rules = rule(
        &dir,
        "Image",
        "/nothing/runs/this",
        "0f5e2c1a-0000-4000-8000-0000000000c2",
    );
    let cfg = config(
        &dir,
        "[respond.modes]\nblock = \"protect\"",
        &format!(
            "[respond.block]\nall_mounts = false\nwatch = [\"{}\"]\nsha256 = [\"{sha}\"]",
            fs.display()
        ),
    );
    // The agent in a mount namespace of its own, as systemd starts the unit.
    let events = dir.join("events.jsonl");
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "slave", "--"])
        .arg(env!("CARGO_BIN_EXE_vigil"))
        .args(["agent", "--no-builtin-rules", "--output"])
        .arg(&events)
        .arg("--config")
        .arg(&cfg)
        .arg("--rules")
        .arg(&rules);
    let mut a = start_agent(c, &events, &dir.join("agent.log"));
    let ran = dir.join("ran");
    let refused = Command::new(&prog).arg(&ran).status();
    assert!(
        refused.is_err(),
        "the blocked program ran from the host's namespace\n{}",
        log(&dir)
    );
    assert!(!ran.exists());
    assert_eq!(stop_agent(&mut a), Some(0));
    drop(_unmount);
    let _ = std::fs::remove_dir_all(&dir);
}
