//! The permission guard on real execs and writes (fanotify permission events on a test
//! directory only; nothing else on the host is watched): a blocklisted program never
//! runs (its side effect never happens) while others do; detect mode lets it run and
//! says so; a verdict past its deadline lets the program run; files rewritten by another
//! process come back from the journal byte for byte with owner, mode and times. Root.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use vigil_respond::config::{BlockConfig, Mode, RollbackConfig};
use vigil_respond::guard::{Blocklist, GuardEvent, PermGuard};
use vigil_respond::journal::Journal;
use vigil_respond::vault::sha256_of;

fn tmp(name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("vigil-guard-{}-{n}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A script that creates `effect` when it runs.
fn script(dir: &Path, name: &str, effect: &Path) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!("#!/bin/sh\n# {name}\ntouch {}\n", effect.display()),
    )
    .expect("script");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p
}

fn config(dir: &Path) -> BlockConfig {
    BlockConfig {
        all_mounts: false,
        watch: vec![dir.to_path_buf()],
        ..BlockConfig::default()
    }
}

fn run(p: &Path) -> std::io::Result<std::process::ExitStatus> {
    Command::new(p).status()
}

#[test]
fn a_blocklisted_program_never_runs_and_others_do() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let dir = tmp("block");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let (bad_fx, good_fx, path_fx) = (
        dir.join("bad-ran"),
        dir.join("good-ran"),
        dir.join("path-ran"),
    );
    let bad = script(&bin, "bad", &bad_fx);
    let good = script(&bin, "good", &good_fx);
    let by_path = script(&bin, "by-path", &path_fx);
    let sha = sha256_of(std::fs::File::open(&bad).expect("open")).expect("hash");
    let list = Blocklist {
        sha256: [sha.clone()].into(),
        paths: [by_path.clone()].into(),
    };
    let mut guard = PermGuard::start(
        &config(&bin),
        Mode::Protect,
        Blocklist::default(),
        None,
        None,
        "boot".into(),
    )
    .expect("guard");
    guard.set_blocklist(list).expect("watch");
    let e = run(&bad).expect_err("refused");
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
    assert!(!bad_fx.exists(), "its side effect never happened");
    let e = run(&by_path).expect_err("refused by path");
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(!path_fx.exists());
    assert!(run(&good).expect("runs").success());
    assert!(good_fx.exists(), "an allowed program runs");
    // A copy of the blocked program under another name is refused too: by its digest.
    let copy = bin.join("renamed-copy");
    std::fs::copy(&bad, &copy).expect("copy");
    assert!(run(&copy).is_err());
    assert!(!bad_fx.exists());
    std::thread::sleep(Duration::from_millis(50));
    let events = guard.drain();
    let refused: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            GuardEvent::Exec {
                path,
                matched,
                refused: true,
                sha256,
                ..
            } => Some((path.clone(), *matched, sha256.clone())),
            _ => None,
        })
        .collect();
    assert!(
        refused.contains(&(bad.clone(), "sha256", Some(sha.clone()))),
        "{events:?}"
    );
    assert!(
        refused
            .iter()
            .any(|(p, m, _)| p == &by_path && *m == "path"),
        "{events:?}"
    );
    assert!(refused.iter().any(|(p, _, _)| p == &copy), "{events:?}");
    let s = guard.stats();
    assert_eq!(s.refused, 3);
    assert!(s.exec_verdicts >= 4);
    assert!(guard.histogram().count() >= 4);
    // Gone with the guard: the marks go with the group.
    drop(guard);
    assert!(run(&bad).expect("runs").success());
    assert!(bad_fx.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn in_detect_mode_the_program_runs_and_the_guard_says_it_would_have_refused_it() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let dir = tmp("detect");
    let fx = dir.join("ran");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let bad = script(&bin, "bad", &fx);
    let sha = sha256_of(std::fs::File::open(&bad).expect("open")).expect("hash");
    let mut guard = PermGuard::start(
        &config(&bin),
        Mode::Detect,
        Blocklist::default(),
        None,
        None,
        "b".into(),
    )
    .expect("guard");
    guard
        .set_blocklist(Blocklist {
            sha256: [sha].into(),
            ..Blocklist::default()
        })
        .expect("watch");
    assert!(run(&bad).expect("runs").success());
    assert!(fx.exists());
    std::thread::sleep(Duration::from_millis(50));
    assert!(guard
        .drain()
        .iter()
        .any(|e| matches!(e, GuardEvent::Exec { refused: false, .. })));
    assert_eq!(guard.stats().would_refuse, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_verdict_past_its_deadline_lets_the_program_run() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let dir = tmp("deadline");
    let fx = dir.join("ran");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    // A script whose tail is 400 MiB of (sparse) zeros: hashing it takes far longer
    // than the 1 ms deadline.
    let big = script(&bin, "big", &fx);
    {
        let mut text = std::fs::read(&big).expect("read");
        text.extend_from_slice(b"exit 0\n");
        std::fs::write(&big, &text).expect("write");
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&big)
            .expect("open");
        f.set_len(400 << 20).expect("grow");
    }
    let cfg = BlockConfig {
        deadline_ms: 1,
        max_hash_bytes: 1 << 30,
        ..config(&bin)
    };
    let mut guard = PermGuard::start(
        &cfg,
        Mode::Protect,
        Blocklist::default(),
        None,
        None,
        "b".into(),
    )
    .expect("guard");
    // Something else is blocklisted: this program is not, but must be hashed to know.
    guard
        .set_blocklist(Blocklist {
            sha256: ["0".repeat(64)].into(),
            ..Blocklist::default()
        })
        .expect("watch");
    let started = std::time::Instant::now();
    assert!(run(&big).expect("runs").success());
    assert!(fx.exists());
    assert!(started.elapsed() < Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(50));
    assert!(guard
        .drain()
        .iter()
        .any(|e| matches!(e, GuardEvent::Deadline { .. })));
    assert_eq!(guard.stats().past_deadline, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn files_rewritten_by_another_process_come_back_from_the_journal() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let dir = tmp("journal");
    let data = dir.join("data");
    let sub = data.join("sub");
    std::fs::create_dir_all(&sub).expect("data");
    let mut files = Vec::new();
    for i in 0..60 {
        let p = if i % 2 == 0 {
            data.join(format!("f{i}.txt"))
        } else {
            sub.join(format!("g{i}.txt"))
        };
        std::fs::write(&p, format!("original {i} ").repeat(i + 1)).expect("write");
        std::os::unix::fs::chown(&p, Some(1000 + i as u32), Some(2000)).expect("chown");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600 + (i as u32 % 8)))
            .expect("chmod");
        files.push(p);
    }
    let before: Vec<(String, u32, u32, u32, i64)> = files
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).expect("meta");
            (
                sha256_of(std::fs::File::open(p).expect("open")).expect("hash"),
                m.uid(),
                m.gid(),
                m.mode() & 0o7777,
                m.mtime(),
            )
        })
        .collect();
    let rb = RollbackConfig {
        paths: vec![data.clone()],
        journal_dir: dir.join("journal"),
        ..RollbackConfig::default()
    };
    let journal = Journal::open(&rb).expect("journal");
    let mut guard = PermGuard::start(
        &BlockConfig::default(),
        Mode::Off,
        Blocklist::default(),
        Some(journal),
        None,
        vigil_respond::procs::boot_id(),
    )
    .expect("guard");
    let dirs = vigil_respond::journal::dirs_under(&rb.paths, 100);
    assert_eq!(dirs.len(), 2);
    guard.watch_journal_dirs(&dirs).expect("watch");
    // Another process rewrites every file (truncating, in place) and reads some.
    let list: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let out = Command::new("/bin/sh")
        .args([
            "-c",
            &format!(
                "for f in {}; do cat $f >/dev/null; echo ENCRYPTED > $f; done",
                list.join(" ")
            ),
        ])
        .status()
        .expect("sh");
    assert!(out.success());
    for p in &files {
        assert_eq!(std::fs::read_to_string(p).expect("read"), "ENCRYPTED\n");
    }
    drop(guard);
    let j = vigil_respond::journal::open_existing(&rb).expect("journal");
    let (entries, bad) = j.entries();
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(
        entries.len(),
        files.len(),
        "one copy per file: reads are not copied"
    );
    // The story: the shell's uid (its first process).
    let story = entries[0].writer.uid.clone();
    assert!(entries.iter().all(|e| e.writer.uid == story));
    assert!(entries[0].writer.ancestors[0].contains(&format!("-{}-", std::process::id())));
    let plan = j.plan(&story, &Default::default());
    assert_eq!(plan.restores.len(), files.len());
    let steps = j.rollback(&plan, false);
    assert!(steps.iter().all(|s| s.outcome.is_ok()), "{steps:?}");
    for (p, (sha, uid, gid, mode, mtime)) in files.iter().zip(&before) {
        let m = std::fs::metadata(p).expect("meta");
        let got = sha256_of(std::fs::File::open(p).expect("open")).expect("hash");
        assert_eq!(&got, sha, "{}", p.display());
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777, m.mtime()),
            (*uid, *gid, *mode, *mtime)
        );
    }
    // Another story has nothing to roll back.
    assert!(j.plan("b-1-1", &Default::default()).restores.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A guard on `bin` with a digest list that matches nothing there yet.
fn guard_on(bin: &Path, sha256: &[String]) -> PermGuard {
    let mut guard = PermGuard::start(
        &config(bin),
        Mode::Protect,
        Blocklist::default(),
        None,
        None,
        "boot".into(),
    )
    .expect("guard");
    guard
        .set_blocklist(Blocklist {
            sha256: sha256.iter().cloned().collect(),
            ..Blocklist::default()
        })
        .expect("watch");
    guard
}

/// The guard's exec verdicts, once the last one is counted.
fn verdicts_now(guard: &PermGuard) -> u64 {
    std::thread::sleep(Duration::from_millis(50));
    guard.stats().exec_verdicts
}

#[test]
fn an_allowed_program_run_again_raises_no_permission_event() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let dir = tmp("ignore");
    let good = script(&dir, "good", &dir.join("good-ran"));
    let guard = guard_on(&dir, &["00".repeat(32)]);
    assert!(run(&good).expect("runs").success());
    let first = verdicts_now(&guard);
    assert_eq!(first, 1, "the first exec is judged");
    assert_eq!(guard.ignore_marks(), 1);
    for _ in 0..3 {
        assert!(run(&good).expect("runs").success());
    }
    assert_eq!(verdicts_now(&guard), first, "no event for the same file");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_digest_added_after_an_allowed_exec_is_refused_at_the_next_exec() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let dir = tmp("ignore-list");
    let fx = dir.join("ran");
    let prog = script(&dir, "prog", &fx);
    let mut guard = guard_on(&dir, &["00".repeat(32)]);
    assert!(run(&prog).expect("runs").success());
    assert_eq!(verdicts_now(&guard), 1);
    std::fs::remove_file(&fx).expect("effect");
    let sha = sha256_of(std::fs::File::open(&prog).expect("open")).expect("hash");
    guard
        .set_blocklist(Blocklist {
            sha256: [sha].into(),
            ..Blocklist::default()
        })
        .expect("list");
    let e = run(&prog).expect_err("refused");
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
    assert!(!fx.exists(), "it never ran");
    assert_eq!(guard.stats().refused, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_modified_after_being_allowed_is_judged_again() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let dir = tmp("ignore-modify");
    let fx = dir.join("ran");
    let prog = script(&dir, "prog", &fx);
    // What the file will become: a blocklisted program.
    let bad_text = format!("#!/bin/sh\n# bad\ntouch {}\n", fx.display());
    let bad_sha = {
        use sha2::Digest;
        let d = sha2::Sha256::digest(bad_text.as_bytes());
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let guard = guard_on(&dir, &[bad_sha]);
    assert!(run(&prog).expect("runs").success());
    assert_eq!(verdicts_now(&guard), 1);
    assert_eq!(guard.ignore_marks(), 1);
    std::fs::remove_file(&fx).expect("effect");
    let ino = std::fs::metadata(&prog).expect("meta").ino();
    // Rewritten in place: the same inode, new content.
    std::fs::write(&prog, &bad_text).expect("rewrite");
    assert_eq!(std::fs::metadata(&prog).expect("meta").ino(), ino);
    let e = run(&prog).expect_err("refused");
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
    assert!(!fx.exists(), "it never ran");
    assert_eq!(verdicts_now(&guard), 2, "judged again");
    let _ = std::fs::remove_dir_all(&dir);
}
