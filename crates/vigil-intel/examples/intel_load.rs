//! Loads a large synthetic indicator list and reports the time, the memory it takes
//! and the cost of matching an event against it (issue 13's goal: 1,000,000 indicators
//! in under 2 s and 150 MiB, and no measurable cost per event).
//!
//!   cargo run --release -p vigil-intel --example intel_load [COUNT]
//!
//! The list is 60% SHA-256, 10% SHA-1, 10% MD5, 10% IPv4 addresses, 5% networks and 5%
//! domains, made from a fixed seed, as text (the load parses it like a feed file).

use std::time::Instant;
use vigil_intel::{Format, IntelSet};

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A small, fixed pseudo-random sequence (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn hex(&mut self, digits: usize) -> String {
        let mut s = String::with_capacity(digits);
        while s.len() < digits {
            s.push_str(&format!("{:016x}", self.next()));
        }
        s.truncate(digits);
        s
    }
}

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut text = String::with_capacity(count * 50);
    let mut probe_sha = String::new();
    for i in 0..count {
        let line = match i % 20 {
            0..=11 => rng.hex(64),
            12 | 13 => rng.hex(40),
            14 | 15 => rng.hex(32),
            16 | 17 => {
                let a = rng.next();
                format!(
                    "{}.{}.{}.{}",
                    a >> 24 & 255,
                    a >> 16 & 255,
                    a >> 8 & 255,
                    a & 255
                )
            }
            18 => {
                let a = rng.next();
                format!("{}.{}.{}.0/24", a >> 16 & 255, a >> 8 & 255, a & 255)
            }
            _ => format!("{}.example", rng.hex(12)),
        };
        if i == count / 2 {
            probe_sha = line.clone();
        }
        text.push_str(&line);
        text.push('\n');
    }
    let before = rss_kib();
    let t = Instant::now();
    let mut set = IntelSet::new();
    let report = set.add("synthetic.txt", &text, Format::List);
    let load = t.elapsed();
    let after = rss_kib();
    drop(text);
    assert_eq!(report.problem_count(), 0, "{:?}", report.problems.first());
    println!(
        "indicators: {} loaded ({} duplicates) in {:.3} s; memory {:.1} MiB",
        report.added,
        report.duplicates,
        load.as_secs_f64(),
        (after.saturating_sub(before)) as f64 / 1024.0
    );
    // Matching: an exec whose executable's hash is not listed (the common case), and one
    // that is, each timed over many rounds.
    let event = |sha: &str| {
        vigil_event::OcsfEvent::from_json(serde_json::json!({
            "class_uid": 1007, "activity_id": 1, "time": 1,
            "metadata": {"version": "1.8.0", "product": {"name": "bench"}},
            "process": {"pid": 1, "file": {"name": "x", "type_id": 1,
                "hashes": [{"algorithm_id": 3, "value": sha}]}}
        }))
        .expect("event")
    };
    let miss = event(&"0".repeat(64));
    let hit = event(&probe_sha);
    let mut hits = Vec::new();
    for (name, ev, want) in [("an unlisted exec", &miss, 0), ("a listed exec", &hit, 1)] {
        let rounds = 1_000_000;
        let t = Instant::now();
        for _ in 0..rounds {
            hits.clear();
            set.match_event(std::hint::black_box(ev), &mut hits);
        }
        assert_eq!(hits.len(), want);
        println!(
            "match {name}: {:.0} ns per event",
            t.elapsed().as_nanos() as f64 / f64::from(rounds)
        );
    }
}
