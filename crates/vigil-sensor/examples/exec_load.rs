//! Load generator for the sensor benchmark: executes `/bin/true` at a fixed rate (or as
//! fast as possible with rate 0) for a number of seconds, reaping children as they exit.
//!
//! `cargo run --release -p vigil-sensor --example exec_load -- RATE SECONDS [THREADS]`
//! prints `execs=N seconds=S rate=R`. The threads (default 4) run the same schedule, so
//! execs come in bursts of THREADS; with 1 they come evenly spaced.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One worker: `rate` execs per second (0: unpaced) until `end`; returns how many.
fn worker(rate: u64, start: Instant, end: Instant) -> u64 {
    let mut children: Vec<Child> = Vec::new();
    let mut n: u64 = 0;
    while Instant::now() < end {
        // Rate 0: unpaced.
        if let Some(offset) = (n * 1_000_000_000).checked_div(rate) {
            let due = start + Duration::from_nanos(offset);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        match Command::new("/bin/true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => children.push(c),
            Err(e) => {
                eprintln!("spawn failed: {e}");
                std::process::exit(1);
            }
        }
        n += 1;
        if children.len() > 64 {
            children.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
        }
    }
    for mut c in children {
        let _ = c.wait();
    }
    n
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rate: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let secs: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    // Several spawning threads, so one slow fork does not hold the schedule back.
    let threads: u64 = args
        .get(3)
        .and_then(|a| a.parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(4);
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let per_thread = rate.div_ceil(threads);
    let handles: Vec<_> = (0..threads)
        .map(|_| std::thread::spawn(move || worker(per_thread, start, end)))
        .collect();
    let n: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    let took = start.elapsed().as_secs_f64();
    println!("execs={n} seconds={took:.2} rate={:.0}", n as f64 / took);
}
