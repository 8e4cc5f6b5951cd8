//! The store's CPU at the agent's pace: the agent's event shapes (the example intrusion's
//! events) handed to a [`Store`] at RATE events a second for SECONDS, in batches every
//! 25 ms as the agent's pipeline flushes, with segments closed every SEGMENT_SECS (so
//! compaction runs too); prints the process's CPU time (all threads: the log writer, the
//! fsyncs, the compactor) as a share of one core.
//!
//! `cargo run --release -p vigil-store --example paced -- 3200 20 5`

use std::time::{Duration, Instant};
use vigil_store::{Store, StoreConfig};

fn cpu_secs() -> f64 {
    // utime + stime of the whole process, in clock ticks (100 a second on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers: RATE SECONDS SEGMENT_SECS"))
        .collect();
    let (rate, secs, seg) = match args[..] {
        [r, s, g] => (r, s, g),
        _ => (3200, 20, 5),
    };
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for i in 0..200 {
        for e in vigil_event::example::attack_story(vigil_event::time::now_ms() + i * 7_919) {
            let mut l = serde_json::to_vec(&e).expect("json");
            l.push(b'\n');
            lines.push(l);
        }
    }
    let dir = std::env::temp_dir().join(format!("vigil-store-paced-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = StoreConfig::new(dir.clone());
    cfg.segment_secs = seg;
    let (mut store, _) = Store::open(cfg, vigil_event::time::now_ms()).expect("open");
    let per_tick = (rate / 40).max(1) as usize;
    let start = Instant::now();
    let c0 = cpu_secs();
    let mut k = 0;
    let mut sent = 0u64;
    for tick in 0..secs * 40 {
        let mut batch = store.buffer();
        for _ in 0..per_tick {
            batch.extend_from_slice(&lines[k % lines.len()]);
            k += 1;
        }
        store.append(batch, per_tick as u64);
        sent += per_tick as u64;
        let due = start + Duration::from_millis((tick + 1) * 25);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    store.sync();
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_secs() - c0;
    let s = store.stats();
    store.close();
    println!(
        "rate {rate}/s for {wall:.1} s: {sent} events, durable {}, compacted {}, dropped {}: \
         CPU {:.2}% of one core ({:.1} us an event)",
        s.durable_seq,
        s.compacted,
        s.dropped,
        100.0 * cpu / wall,
        1e6 * cpu / sent as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
}
