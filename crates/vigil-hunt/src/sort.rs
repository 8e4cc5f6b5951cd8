//! An external merge sort: items are kept in memory up to a byte budget, then sorted and
//! written to a temporary run file; reading merges the runs. Memory stays bounded by the
//! budget whatever the number of items (used for correlation inputs and timeline rows).

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// What an item of an [`ExternalSort`] must tell.
pub(crate) trait Sortable: Serialize + DeserializeOwned {
    /// The sort key.
    type Key: Ord;
    /// Its key.
    fn key(&self) -> Self::Key;
    /// Approximately how many bytes it takes in memory.
    fn bytes(&self) -> usize;
}

static RUN_SEQ: AtomicU64 = AtomicU64::new(0);

/// Items sorted with bounded memory.
pub(crate) struct ExternalSort<T> {
    mem: Vec<T>,
    mem_bytes: usize,
    budget: usize,
    runs: Vec<PathBuf>,
    /// Items written to run files.
    pub spilled: u64,
}

impl<T: Sortable> ExternalSort<T> {
    /// Keeps up to `budget` bytes in memory.
    pub(crate) fn new(budget: usize) -> Self {
        ExternalSort {
            mem: Vec::new(),
            mem_bytes: 0,
            budget: budget.max(1),
            runs: Vec::new(),
            spilled: 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.mem.is_empty() && self.runs.is_empty()
    }

    pub(crate) fn push(&mut self, item: T) -> io::Result<()> {
        self.mem_bytes += item.bytes();
        self.mem.push(item);
        if self.mem_bytes > self.budget {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> io::Result<()> {
        self.mem.sort_by_key(T::key);
        let path = std::env::temp_dir().join(format!(
            "vigil-hunt-{}-{}.run",
            std::process::id(),
            RUN_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        // Registered first, so that it is removed even if writing fails.
        self.runs.push(path.clone());
        let mut w = BufWriter::new(File::create(&path)?);
        for item in self.mem.drain(..) {
            serde_json::to_writer(&mut w, &item)?;
            w.write_all(b"\n")?;
            self.spilled += 1;
        }
        w.flush()?;
        self.mem_bytes = 0;
        Ok(())
    }

    /// Every item, in key order (equal keys in no particular order).
    pub(crate) fn sorted(&mut self) -> io::Result<Merged<T>> {
        self.mem.sort_by_key(T::key);
        let mut sources: Vec<Source<T>> = Vec::new();
        for p in &self.runs {
            sources.push(Source::Run(BufReader::new(File::open(p)?).lines()));
        }
        sources.push(Source::Mem(std::mem::take(&mut self.mem).into_iter()));
        self.mem_bytes = 0;
        let mut merged = Merged {
            heads: Vec::with_capacity(sources.len()),
            heap: BinaryHeap::new(),
            sources,
        };
        for i in 0..merged.sources.len() {
            let head = merged.sources[i].next().transpose()?;
            if let Some(h) = &head {
                merged.heap.push(Reverse((h.key(), i)));
            }
            merged.heads.push(head);
        }
        Ok(merged)
    }
}

impl<T> Drop for ExternalSort<T> {
    fn drop(&mut self) {
        for p in &self.runs {
            let _ = std::fs::remove_file(p);
        }
    }
}

enum Source<T> {
    Run(std::io::Lines<BufReader<File>>),
    Mem(std::vec::IntoIter<T>),
}

impl<T: DeserializeOwned> Iterator for Source<T> {
    type Item = io::Result<T>;
    fn next(&mut self) -> Option<io::Result<T>> {
        match self {
            Source::Mem(it) => it.next().map(Ok),
            Source::Run(lines) => Some(
                lines
                    .next()?
                    .and_then(|l| serde_json::from_str(&l).map_err(io::Error::other)),
            ),
        }
    }
}

/// The merge of an [`ExternalSort`]'s runs.
pub(crate) struct Merged<T: Sortable> {
    sources: Vec<Source<T>>,
    heads: Vec<Option<T>>,
    heap: BinaryHeap<Reverse<(T::Key, usize)>>,
}

impl<T: Sortable> Iterator for Merged<T> {
    type Item = io::Result<T>;
    fn next(&mut self) -> Option<io::Result<T>> {
        let Reverse((_, i)) = self.heap.pop()?;
        let item = self.heads[i].take()?;
        match self.sources[i].next().transpose() {
            Ok(Some(n)) => {
                self.heap.push(Reverse((n.key(), i)));
                self.heads[i] = Some(n);
            }
            Ok(None) => {}
            Err(e) => return Some(Err(e)),
        }
        Some(Ok(item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct N(i64, String);
    impl Sortable for N {
        type Key = i64;
        fn key(&self) -> i64 {
            self.0
        }
        fn bytes(&self) -> usize {
            24 + self.1.len()
        }
    }

    #[test]
    fn merges_runs_in_order_and_cleans_up() {
        for budget in [1, 100, 1 << 20] {
            let mut s = ExternalSort::new(budget);
            let mut x = 7i64;
            let mut want = Vec::new();
            for _ in 0..500 {
                x = (x * 1_103_515_245 + 12_345) % 1_000_003;
                want.push(x);
                s.push(N(x, format!("v{x}"))).expect("push");
            }
            want.sort();
            let got: Vec<i64> = s
                .sorted()
                .expect("sorted")
                .map(|n| n.expect("read").0)
                .collect();
            assert_eq!(got, want);
            let runs = s.runs.clone();
            assert_eq!(runs.is_empty(), budget == 1 << 20);
            drop(s);
            assert!(runs.iter().all(|p| !p.exists()));
        }
    }
}
