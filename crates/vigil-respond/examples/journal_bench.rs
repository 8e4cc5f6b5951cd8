//! Measures the rollback journal. Part one: 500 files of varied content, owners and
//! modes are rewritten in place and made 0000 by another process, then rolled back:
//! every file is checked (SHA-256, owner, group, mode) and the times printed (rewrite
//! without and with the journal, rollback). Part two: the journal's cost on an ordinary
//! workload in a journaled directory (log appends by short-lived processes, files saved
//! in place, new files, reads), without and with the journal in alternating rounds:
//! the workload's time, the guard's CPU time and the bytes copied. Root.
//! Usage: `journal_bench [ROUNDS]`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use vigil_respond::config::{BlockConfig, Mode, RollbackConfig};
use vigil_respond::guard::{Blocklist, PermGuard};
use vigil_respond::journal::Journal;
use vigil_respond::vault::sha256_of;

/// CPU time of every thread of this process (ns; schedstat is exact).
fn cpu_ns() -> u64 {
    let mut n = 0;
    for t in std::fs::read_dir("/proc/self/task")
        .expect("tasks")
        .flatten()
    {
        if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
            n += s
                .split_whitespace()
                .next()
                .and_then(|x| x.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    n
}

fn guard(data: &Path, journal: &Path) -> (PermGuard, RollbackConfig) {
    let rb = RollbackConfig {
        paths: vec![data.to_path_buf()],
        journal_dir: journal.to_path_buf(),
        ..RollbackConfig::default()
    };
    let j = Journal::open(&rb).expect("journal");
    let mut g = PermGuard::start(
        &BlockConfig::default(),
        Mode::Off,
        Blocklist::default(),
        Some(j),
        None,
        vigil_respond::procs::boot_id(),
    )
    .expect("guard");
    g.watch_journal_dirs(&vigil_respond::journal::dirs_under(&rb.paths, 10_000))
        .expect("watch");
    (g, rb)
}

fn victims(data: &Path) -> Vec<(PathBuf, String, u32, u32, u32)> {
    let mut out = Vec::new();
    for i in 0..500u32 {
        let d = data.join(format!("d{}", i % 10));
        std::fs::create_dir_all(&d).expect("dir");
        let p = d.join(format!("doc{i}.bin"));
        let body: Vec<u8> = (0..(1000 + i * 97)).map(|j| (j * 31 + i) as u8).collect();
        std::fs::write(&p, &body).expect("write");
        std::os::unix::fs::chown(&p, Some(1000 + i % 7), Some(100 + i % 3)).expect("chown");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600 | (i % 8) << 3))
            .expect("chmod");
        out.push((
            p,
            sha256_of(&body[..]).expect("hash"),
            1000 + i % 7,
            100 + i % 3,
            0o600 | (i % 8) << 3,
        ));
    }
    out
}

fn rewrite(data: &Path) -> Duration {
    let t = Instant::now();
    let ok = Command::new("/bin/sh")
        .args([
            "-c",
            &format!(
                "for f in $(find {} -type f); do echo encrypted > \"$f\"; chmod 000 \"$f\"; done",
                data.display()
            ),
        ])
        .status()
        .expect("sh")
        .success();
    assert!(ok);
    t.elapsed()
}

const WORKLOAD: &str = r#"
import os, sys, random
root, it = sys.argv[1], int(sys.argv[2])
random.seed(it)
for i in range(50):
    with open(f"{root}/logs/app{i}.log", "a") as f:
        f.write(f"iteration {it} line for log {i}\n" * 5)
for i in random.sample(range(400), 20):
    p = f"{root}/docs/doc{i}.txt"
    with open(p, "r+") as f:
        body = f.read()
        f.seek(0)
        f.write(body.replace("a", "b", 1))
for i in range(20):
    with open(f"{root}/new/it{it}-{i}.txt", "w") as f:
        f.write("fresh\n" * 100)
for i in random.sample(range(400), 200):
    with open(f"{root}/docs/doc{i}.txt") as f:
        f.read()
"#;

fn workload_dir(base: &Path) -> PathBuf {
    let d = base.join("work");
    let _ = std::fs::remove_dir_all(&d);
    for sub in ["logs", "docs", "new"] {
        std::fs::create_dir_all(d.join(sub)).expect("dir");
    }
    for i in 0..400 {
        std::fs::write(
            d.join(format!("docs/doc{i}.txt")),
            "a paragraph of text\n".repeat(200),
        )
        .expect("doc");
    }
    for i in 0..50 {
        std::fs::write(
            d.join(format!("logs/app{i}.log")),
            "earlier line\n".repeat(500),
        )
        .expect("log");
    }
    d
}

fn run_workload(d: &Path, iterations: u32) -> Duration {
    let t = Instant::now();
    for it in 0..iterations {
        let ok = Command::new("python3")
            .args(["-c", WORKLOAD, &d.display().to_string(), &it.to_string()])
            .status()
            .expect("python3")
            .success();
        assert!(ok);
    }
    t.elapsed()
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let base = std::env::temp_dir().join(format!("vigil-journal-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).expect("base");

    // Part one: 500 files.
    let plain = base.join("plain");
    victims(&plain);
    let without = rewrite(&plain);
    let data = base.join("data");
    let files = victims(&data);
    let (g, rb) = guard(&data, &base.join("journal"));
    let with = rewrite(&data);
    drop(g);
    let j = vigil_respond::journal::open_existing(&rb).expect("journal");
    let (entries, _) = j.entries();
    let story = entries[0].writer.uid.clone();
    let t = Instant::now();
    let plan = j.plan(&story, &Default::default());
    let steps = j.rollback(&plan, false);
    let rolled = t.elapsed();
    let failed = steps.iter().filter(|s| s.outcome.is_err()).count();
    let mut identical = 0;
    for (p, sha, uid, gid, mode) in &files {
        let m = std::fs::metadata(p).expect("meta");
        let got = sha256_of(std::fs::File::open(p).expect("open")).expect("hash");
        if &got == sha && m.uid() == *uid && m.gid() == *gid && m.mode() & 0o7777 == *mode {
            identical += 1;
        }
    }
    println!("500 files rewritten in place and made 0000 by one shell:");
    println!(
        "  rewrite without the journal {:.0} ms, with it {:.0} ms",
        without.as_secs_f64() * 1e3,
        with.as_secs_f64() * 1e3
    );
    println!(
        "  journal: {} entries, {} bytes; rollback of {} files in {:.0} ms, {failed} failed; identical (SHA-256, owner, group, mode): {identical}/500",
        entries.len(),
        entries.iter().map(|e| e.size).sum::<u64>(),
        plan.restores.len(),
        rolled.as_secs_f64() * 1e3
    );

    // Part two: an ordinary workload.
    let iterations = 10;
    let (mut t_off, mut t_on, mut cpu_on, mut bytes, mut copies) =
        (Duration::ZERO, Duration::ZERO, 0u64, 0u64, 0usize);
    for r in 0..rounds {
        for on in [r % 2 == 0, r % 2 == 1] {
            let d = workload_dir(&base);
            if on {
                let jdir = base.join(format!("journal-w{r}"));
                let (g, rb) = guard(&d, &jdir);
                let c0 = cpu_ns();
                t_on += run_workload(&d, iterations);
                cpu_on += cpu_ns() - c0;
                drop(g);
                let j = vigil_respond::journal::open_existing(&rb).expect("journal");
                let (e, _) = j.entries();
                copies += e.iter().filter(|e| !e.new).count();
                bytes += e.iter().map(|e| e.size).sum::<u64>();
            } else {
                t_off += run_workload(&d, iterations);
            }
        }
    }
    let r = rounds as f64;
    println!(
        "ordinary workload ({iterations} runs of: 50 log appends, 20 files saved in place, 20 new files, 200 reads; {rounds} alternating rounds):"
    );
    println!(
        "  time without the journal {:.0} ms, with it {:.0} ms ({:+.1}%)",
        t_off.as_secs_f64() * 1e3 / r,
        t_on.as_secs_f64() * 1e3 / r,
        100.0 * (t_on.as_secs_f64() - t_off.as_secs_f64()) / t_off.as_secs_f64()
    );
    println!(
        "  the guard's CPU {:.1} ms a round; copies {:.0} a round, {:.2} MiB a round",
        cpu_on as f64 / 1e6 / r,
        copies as f64 / r,
        bytes as f64 / r / (1 << 20) as f64
    );
    let _ = std::fs::remove_dir_all(&base);
}
