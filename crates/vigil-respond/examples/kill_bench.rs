//! Measures branch kills: a shell with children, one of which forks in a loop, frozen
//! and killed again and again by each freeze method, interleaved. Prints each method's
//! times (to the branch frozen, killed, gone) as p50/p90/p99/max in microseconds.
//! Root. Usage: `kill_bench [ROUNDS] [CHILDREN]`.

use std::process::Command;
use std::time::Duration;
use vigil_respond::config::{FreezeMethod, Protected};
use vigil_respond::kill::kill_branch;
use vigil_respond::procs::{children, Guard, ProcInfo, Target};

fn pct(v: &mut [u128], p: f64) -> u128 {
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let kids: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let guard = Guard::new(Protected::default(), Vec::new());
    let methods = [
        (FreezeMethod::Sigstop, "sigstop"),
        (FreezeMethod::Cgroup, "cgroup"),
    ];
    let mut times: Vec<[Vec<u128>; 4]> = vec![Default::default(), Default::default()];
    let script = format!(
        "for i in $(seq {kids}); do /bin/sleep 600 & done; while :; do /bin/sleep 600 & /bin/sleep 0.01; done"
    );
    for round in 0..rounds {
        for (m, (method, _)) in methods.iter().enumerate() {
            let mut child = Command::new("/bin/sh")
                .args(["-c", &script])
                .spawn()
                .expect("sh");
            let pid = child.id() as i32;
            // Let the branch grow to its children.
            while children(pid).len() < kids {
                std::thread::sleep(Duration::from_millis(1));
            }
            let t = Target {
                pid,
                start_ticks: ProcInfo::read(pid).expect("alive").start_ticks,
            };
            let r = kill_branch(t, &[], &guard, *method, Duration::from_secs(2));
            let _ = child.wait();
            assert!(r.complete(), "round {round}: {r:?}");
            let k = &mut times[m];
            k[0].push(r.frozen_after.as_micros());
            k[1].push(r.killed_after.as_micros());
            k[2].push(r.gone_after.map_or(u128::MAX, |g| g.as_micros()));
            k[3].push(r.killed.len() as u128);
        }
    }
    for (m, (_, name)) in methods.iter().enumerate() {
        let k = &mut times[m];
        let line = |v: &mut Vec<u128>| {
            format!(
                "p50 {} p90 {} p99 {} max {}",
                pct(v, 0.5),
                pct(v, 0.9),
                pct(v, 0.99),
                pct(v, 1.0)
            )
        };
        println!(
            "{name}: {rounds} branches of {}..{} processes; frozen us: {}; killed us: {}; gone us: {}",
            pct(&mut k[3], 0.0),
            pct(&mut k[3], 1.0),
            line(&mut k[0]),
            line(&mut k[1]),
            line(&mut k[2])
        );
    }
}
