//! Ingest into the store from the agent's own event shapes (the example intrusion's
//! events, every class the agent writes, replayed with shifted times): the log append
//! (framing, checksums, one write per 256 KiB batch, an fsync per batch as group commit
//! makes it), compaction of a segment into Parquet, and both together. Prints the size on
//! disk against the same events as JSON lines.
//!
//! `cargo bench -p vigil-store --bench ingest`

use criterion::{criterion_main, Criterion, Throughput};
use std::path::{Path, PathBuf};
use vigil_store::{compact, wal};

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

fn append(root: &Path, text: &[u8]) -> wal::Segment {
    let (mut w, _) = wal::Writer::open(root, 0, 0).expect("open");
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + 256 * 1024).min(text.len());
        while end < text.len() && text[end - 1] != b'\n' {
            end += 1;
        }
        w.append_lines(&text[start..end]).expect("append");
        w.sync().expect("sync");
        start = end;
    }
    w.roll(0).expect("roll")
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

fn ingest(c: &mut Criterion) {
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
    g.bench_function("wal_append", |b| {
        b.iter_with_setup(
            || fresh("wal"),
            |root| {
                append(&root, &text);
                let _ = std::fs::remove_dir_all(&root);
            },
        )
    });
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
    g.finish();
}

// criterion_group! makes an undocumented public function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::ingest);
}
use group::benches;
criterion_main!(benches);
