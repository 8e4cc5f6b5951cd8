//! Load generator for the per-syscall cost of the sensor's `sys_enter`/`sys_exit`
//! programs, which run on every syscall of every process of the host: N read-only
//! open+close pairs of one file (dropped in the kernel unless the file is on the watch
//! list), then N `getppid` calls (a syscall the sensor does not watch).
//!
//! `cargo run --release -p vigil-sensor --example syscall_load -- N [FILE]` prints
//! `open_close_ns=T getppid_ns=T` (wall time per iteration).

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let file = args.next().unwrap_or_else(|| "/etc/hostname".into());
    let start = Instant::now();
    for _ in 0..n {
        if let Err(e) = std::fs::File::open(&file) {
            eprintln!("{file}: {e}");
            std::process::exit(1);
        }
    }
    let opened = start.elapsed();
    let mut sum = 0u64;
    for _ in 0..n {
        sum = sum.wrapping_add(u64::from(std::os::unix::process::parent_id()));
    }
    let called = start.elapsed() - opened;
    std::hint::black_box(sum);
    let per = |d: std::time::Duration| d.as_nanos() as f64 / f64::from(n.max(1));
    println!(
        "open_close_ns={:.1} getppid_ns={:.1}",
        per(opened),
        per(called)
    );
}
