//! Measures what block-before-exec adds to the exec of an allowed program: a copy of
//! /bin/true in a directory the guard watches (with a blocklist that does not hold it,
//! so every exec is checked: its digest looked up in the cache), spawned and waited for,
//! in rounds alternating with the guard and without it. Prints the spawn-to-exit
//! percentiles of each side and their difference, and the guard's own verdict times.
//! The same file run again is spared by the guard's ignore mark after its first exec, so
//! the first exec is measured too: a fresh copy per exec (copied outside the timing),
//! hashed by the guard each time.
//! Root. Usage: `exec_bench [ROUNDS] [EXECS_PER_ROUND]`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;
use vigil_respond::config::{BlockConfig, Mode};
use vigil_respond::guard::{Blocklist, PermGuard};

fn pct(v: &mut [u64], p: f64) -> u64 {
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let per: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let dir = std::env::temp_dir().join(format!("vigil-exec-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let prog: PathBuf = dir.join("true");
    std::fs::copy("/bin/true", &prog).expect("copy");
    let cfg = BlockConfig {
        all_mounts: false,
        watch: vec![dir.clone()],
        ..BlockConfig::default()
    };
    let list = Blocklist {
        sha256: ["0".repeat(64)].into(),
        ..Blocklist::default()
    };
    let (mut with, mut without) = (Vec::new(), Vec::new());
    let (mut fresh_with, mut fresh_without) = (Vec::new(), Vec::new());
    let mut copies = 0usize;
    let mut run_fresh = |out: &mut Vec<u64>| {
        for _ in 0..per / 4 {
            copies += 1;
            let p = dir.join(format!("true-{copies}"));
            std::fs::copy(&prog, &p).expect("copy");
            let t = Instant::now();
            let ok = Command::new(&p).status().expect("spawn").success();
            out.push(t.elapsed().as_micros() as u64);
            assert!(ok);
            let _ = std::fs::remove_file(&p);
        }
    };
    let mut verdicts = vigil_respond::guard::Histogram::default();
    let run = |out: &mut Vec<u64>| {
        for _ in 0..per {
            let t = Instant::now();
            let ok = Command::new(&prog).status().expect("spawn").success();
            out.push(t.elapsed().as_micros() as u64);
            assert!(ok);
        }
    };
    for r in 0..rounds {
        // Alternate which side goes first, against drift.
        for side in [r % 2 == 0, r % 2 == 1] {
            if side {
                let mut g = PermGuard::start(
                    &cfg,
                    Mode::Protect,
                    Blocklist::default(),
                    None,
                    None,
                    "b".into(),
                )
                .expect("guard");
                g.set_blocklist(list.clone()).expect("watch");
                run(&mut with);
                run_fresh(&mut fresh_with);
                verdicts.merge(&g.histogram());
                assert_eq!(g.stats().refused, 0);
            } else {
                run(&mut without);
                run_fresh(&mut fresh_without);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let n = with.len();
    let (w50, w99) = (pct(&mut with, 0.5), pct(&mut with, 0.99));
    let (o50, o99) = (pct(&mut without, 0.5), pct(&mut without, 0.99));
    println!(
        "exec of an allowed program, spawn to exit, {n} each side ({rounds} alternating rounds):"
    );
    println!("  without the guard: p50 {o50} us, p99 {o99} us");
    println!("  with the guard:    p50 {w50} us, p99 {w99} us");
    println!(
        "  added: p50 {} us, p99 {} us",
        w50 as i64 - o50 as i64,
        w99 as i64 - o99 as i64
    );
    let nf = fresh_with.len();
    let (f50, f99) = (pct(&mut fresh_with, 0.5), pct(&mut fresh_with, 0.99));
    let (g50, g99) = (pct(&mut fresh_without, 0.5), pct(&mut fresh_without, 0.99));
    println!("first exec of a fresh copy (hashed), {nf} each side:");
    println!("  without the guard: p50 {g50} us, p99 {g99} us");
    println!("  with the guard:    p50 {f50} us, p99 {f99} us");
    println!(
        "  added: p50 {} us, p99 {} us",
        f50 as i64 - g50 as i64,
        f99 as i64 - g99 as i64
    );
    println!(
        "  the guard's verdict (event read to answer written): p50 {} us, p99 {} us, over {} execs",
        verdicts.quantile(0.5),
        verdicts.quantile(0.99),
        verdicts.count()
    );
}
