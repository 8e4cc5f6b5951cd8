//! Ingest into the store from the agent's own event shapes (the example intrusion's
//! events, every class the agent writes, replayed with shifted times), measured in CPU
//! time (user + system of the whole process, every thread: `getrusage`), so the
//! throughputs printed are events per CPU-second, whatever else the machine runs:
//!
//! * `wal_append`: the log append alone (framing, checksums, one write per 256 KiB batch)
//!   with an fsync after every batch: the worst case, a group commit of one batch (an
//!   agent writing so little that every batch has its own fsync);
//! * `store_append`: the agent's path, the same batches handed to a [`Store`] whose
//!   writer thread fsyncs by group commit every `sync_ms` (100 ms, the default), then a
//!   final `sync`: the copy into the batch, the channel, the framing, the writes and the
//!   fsyncs;
//! * `compact`: one log segment into Parquet;
//! * `wal_append_and_compact`, `store_append_and_compact`: both, one after the other.
//!
//! Prints the size on disk against the same events as JSON lines, and after each
//! benchmark the user and system CPU time it measured.
//!
//! `cargo bench -p vigil-store --bench ingest`

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{criterion_main, Criterion, Throughput};
use nix::sys::resource::{getrusage, UsageWho};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use vigil_store::{compact, wal, Store, StoreConfig};

/// CPU time (user + system) of this process, all threads.
struct CpuTime;

/// User and system CPU time measured since the last report, in microseconds.
static USER_US: AtomicU64 = AtomicU64::new(0);
static SYS_US: AtomicU64 = AtomicU64::new(0);

fn cpu_now() -> (u64, u64) {
    let u = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let us = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
    (us(u.user_time()), us(u.system_time()))
}

impl Measurement for CpuTime {
    type Intermediate = (u64, u64);
    type Value = Duration;
    fn start(&self) -> (u64, u64) {
        cpu_now()
    }
    fn end(&self, (u0, s0): (u64, u64)) -> Duration {
        let (u1, s1) = cpu_now();
        USER_US.fetch_add(u1 - u0, Ordering::Relaxed);
        SYS_US.fetch_add(s1 - s0, Ordering::Relaxed);
        Duration::from_micros((u1 - u0) + (s1 - s0))
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

/// Values are CPU nanoseconds: shown as CPU milliseconds, throughputs as events per
/// CPU-second.
struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, _typical: f64, values: &mut [f64]) -> &'static str {
        for v in values {
            *v /= 1e6;
        }
        "ms CPU"
    }
    fn scale_throughputs(&self, _typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        let n = match t {
            Throughput::Elements(n) | Throughput::Bytes(n) | Throughput::BytesDecimal(n) => *n,
        };
        for v in values {
            *v = n as f64 * 1e9 / *v;
        }
        "events/CPU-s"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns CPU"
    }
}

/// The events, as the JSON lines the agent writes.
fn lines(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut k = 0;
    let mut i = 0i64;
    while k < n {
        for e in vigil_event::example::attack_story(1_709_300_700_000 + i * 7_919) {
            serde_json::to_writer(&mut out, &e).expect("json");
            out.push(b'\n');
            k += 1;
            if k == n {
                break;
            }
        }
        i += 1;
    }
    out
}

fn fresh(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vigil-store-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("dir");
    d
}

/// `text` in batches of about 256 KiB of whole lines (as the agent's store sink makes
/// them).
fn batches(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= text.len() {
            return None;
        }
        let mut end = (start + 256 * 1024).min(text.len());
        while end < text.len() && text[end - 1] != b'\n' {
            end += 1;
        }
        let b = &text[start..end];
        start = end;
        Some(b)
    })
}

/// The log append with an fsync after every batch.
fn append(root: &Path, text: &[u8]) -> wal::Segment {
    let (mut w, _) = wal::Writer::open(root, 0, 0).expect("open");
    for b in batches(text) {
        w.append_lines(b).expect("append");
        w.sync().expect("sync");
    }
    w.roll(0).expect("roll")
}

/// The agent's path: a [`Store`] with group commit every 100 ms (its default), every
/// batch taken (none dropped), all durable at the end. Returns the log's segment.
fn store_append(root: &Path, text: &[u8], events: u64) -> wal::Segment {
    let mut cfg = StoreConfig::new(root.to_path_buf());
    cfg.sync_ms = 100;
    cfg.segment_bytes = u64::MAX;
    cfg.segment_secs = 1 << 30;
    cfg.queue = 4096;
    let (mut store, _) = Store::open(cfg, vigil_event::time::now_ms()).expect("open");
    for b in batches(text) {
        let mut buf = store.buffer();
        buf.extend_from_slice(b);
        assert!(store.append(buf, 0), "batch dropped");
    }
    store.sync();
    let s = store.stats();
    store.close();
    assert_eq!((s.durable_seq, s.dropped), (events, 0), "{s:?}");
    wal::segments(root).expect("segments").remove(0)
}

fn size_of(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let m = e.metadata().expect("meta");
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

/// Prints the user and system CPU time measured since the last report.
fn report(name: &str) {
    let u = USER_US.swap(0, Ordering::Relaxed) as f64 / 1e6;
    let s = SYS_US.swap(0, Ordering::Relaxed) as f64 / 1e6;
    eprintln!("{name}: measured CPU user {u:.2} s, system {s:.2} s");
}

fn ingest(c: &mut Criterion<CpuTime>) {
    const N: usize = 50_000;
    let text = lines(N);
    // Size on disk.
    {
        let root = fresh("size");
        let seg = append(&root, &text);
        let done = compact::compact_segment(&root, &seg, 0).expect("compact");
        let parquet = size_of(&vigil_store::layout::lake_dir(&root));
        eprintln!(
            "{N} events: {} bytes as JSON lines, {parquet} bytes as Parquet in {} files: 1/{:.1}",
            text.len(),
            done.files.len(),
            text.len() as f64 / parquet as f64
        );
        let _ = std::fs::remove_dir_all(&root);
    }
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    report("setup");
    g.bench_function("wal_append", |b| {
        b.iter_with_setup(
            || fresh("wal"),
            |root| {
                append(&root, &text);
                let _ = std::fs::remove_dir_all(&root);
            },
        )
    });
    report("wal_append");
    g.bench_function("store_append", |b| {
        b.iter_with_setup(
            || fresh("store"),
            |root| {
                store_append(&root, &text, N as u64);
                let _ = std::fs::remove_dir_all(&root);
            },
        )
    });
    report("store_append");
    g.bench_function("compact", |b| {
        b.iter_with_setup(
            || {
                let root = fresh("compact");
                let seg = append(&root, &text);
                (root, seg)
            },
            |(root, seg)| {
                compact::compact_segment(&root, &seg, 0).expect("compact");
                let _ = std::fs::remove_dir_all(&root);
            },
        )
    });
    report("compact");
    g.bench_function("wal_append_and_compact", |b| {
        b.iter_with_setup(
            || fresh("both"),
            |root| {
                let seg = append(&root, &text);
                compact::compact_segment(&root, &seg, 0).expect("compact");
                let _ = std::fs::remove_dir_all(&root);
            },
        )
    });
    report("wal_append_and_compact");
    g.bench_function("store_append_and_compact", |b| {
        b.iter_with_setup(
            || fresh("storeboth"),
            |root| {
                let seg = store_append(&root, &text, N as u64);
                compact::compact_segment(&root, &seg, 0).expect("compact");
                let _ = std::fs::remove_dir_all(&root);
            },
        )
    });
    report("store_append_and_compact");
    g.finish();
}

fn config() -> Criterion<CpuTime> {
    Criterion::default().with_measurement(CpuTime)
}

// criterion_group! makes an undocumented public function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group! {
        name = benches;
        config = super::config();
        targets = super::ingest
    }
}
use group::benches;
criterion_main!(benches);
