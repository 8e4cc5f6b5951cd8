//! Merging a closed hour's small files: each compaction writes one file per class and
//! hour, so an agent compacting every few minutes leaves many small files in each
//! partition, which every query engine reads slowly. Once an hour is closed (its end is
//! older than a grace period), its files are merged into one, or a few of a bounded
//! size. Files arriving later for a merged hour are merged among themselves first, and
//! into the larger file only once they add up to its size (size-tiered).
//!
//! # Exactly once, across crashes: the naming rule
//!
//! A merged file is named like any other, `<first-seq>-<last-seq>.parquet`, the range
//! of its inputs together; the inputs are consecutive in sequence order, so their ranges
//! lie within the merged file's. Compaction never makes two files of one partition whose
//! ranges overlap (each segment's sequences are its own), so **a file whose range lies
//! within another file's range in the same partition is an input of a finished merge**:
//! listings ([`crate::read::lake_files`], hence [`crate::snapshot`] and retention) leave
//! it out, and the next merge pass deletes it.
//!
//! The steps: the inputs are read and written to a temporary file in the partition
//! (`.merge-<first-seq>.tmp`, never listed), which is fsynced and renamed to its name,
//! and the directory fsynced; then the inputs are deleted. A crash before the rename
//! leaves a temporary file (deleted by the next pass) and the inputs, still the ones
//! read; a crash after it leaves inputs that the listing already leaves out. Either way
//! no event is read twice or lost.

use crate::compact::{self, file_properties, ROW_GROUP};
use crate::ids::{self, IdIndexBuilder};
use crate::layout::{self, Hour};
use crate::read::{list_partition, superseded, LakeFile};
use crate::schema::{Class, CLASSES};
use crate::wal::sync_dir;
use crate::Problem;
use parquet::arrow::ArrowWriter;
use std::fs::File;
use std::path::{Path, PathBuf};

/// How merging is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeLimits {
    /// An hour is merged once its end is this many milliseconds in the past.
    pub grace_ms: i64,
    /// A merged file is made of inputs of this many bytes at most (together); more
    /// make several merged files.
    pub max_bytes: u64,
}

impl Default for MergeLimits {
    fn default() -> MergeLimits {
        MergeLimits {
            grace_ms: 15 * 60 * 1000,
            max_bytes: 256 << 20,
        }
    }
}

/// One merged file made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The merged file.
    pub path: PathBuf,
    /// The files it replaces (deleted).
    pub inputs: usize,
    /// Its rows.
    pub rows: u64,
}

/// What a merge pass did.
#[derive(Debug, Default)]
pub struct MergePass {
    /// Merged files made.
    pub merged: Vec<Merged>,
    /// Inputs of merges finished before a crash, deleted now.
    pub leftovers: usize,
    /// Files of closed hours without an id index (written before indexes existed, or
    /// whose index could not be written) indexed now.
    pub indexed: usize,
    /// What could not be merged (left as it was).
    pub problems: Vec<Problem>,
}

/// Merges the files of every closed hour of every class under `root` at `now_ms`.
pub fn merge_closed(root: &Path, limits: MergeLimits, now_ms: i64) -> MergePass {
    let mut pass = MergePass::default();
    for class in CLASSES {
        let cdir = layout::lake_dir(root).join(format!("class={}", class.table));
        for hour in crate::read::partitions(&cdir, None, &mut pass.problems) {
            if hour.start_ms() + 3_600_000 + limits.grace_ms > now_ms {
                continue;
            }
            merge_hour(root, class, hour, limits, &mut pass);
        }
    }
    pass
}

/// Merges the files of one partition (whatever its hour's age).
pub fn merge_hour(
    root: &Path,
    class: &'static Class,
    hour: Hour,
    limits: MergeLimits,
    pass: &mut MergePass,
) {
    let dir = layout::partition_dir(root, class.table, hour);
    let mut all = list_partition(&dir, class, hour, &mut pass.problems);
    // 1. Finish what a crash interrupted: temporary files, and inputs of a merged file.
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".merge-") || name.ends_with(".ids.tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let gone = superseded(&all);
    if !gone.is_empty() {
        for &i in &gone {
            match std::fs::remove_file(&all[i].path) {
                Ok(()) => {
                    pass.leftovers += 1;
                    if let Err(e) = remove_index(&all[i].path) {
                        pass.problems.push(Problem::io(&all[i].path, e));
                    }
                }
                Err(e) => pass.problems.push(Problem::io(&all[i].path, e)),
            }
        }
        let _ = sync_dir(&dir);
        let mut i = 0;
        all.retain(|_| {
            i += 1;
            !gone.contains(&(i - 1))
        });
    }
    // 2. Runs of consecutive files within the size bound, each of two files or more.
    let mut runs: Vec<Vec<&LakeFile>> = Vec::new();
    let mut run: Vec<&LakeFile> = Vec::new();
    let mut bytes = 0;
    for f in &all {
        if !run.is_empty() && bytes + f.bytes > limits.max_bytes {
            runs.push(std::mem::take(&mut run));
            bytes = 0;
        }
        bytes += f.bytes;
        run.push(f);
    }
    runs.push(run);
    for run in &mut runs {
        // A file larger than all the files after it in the run together (an earlier
        // merge's output, with events arriving late for its hour: a server's lake fed
        // from agents' backlogs) is not rewritten to take them in; they are merged among
        // themselves until they add up to it. Each event is then rewritten a logarithmic
        // number of times, not once per late file.
        while run.len() >= 2 && run[0].bytes > run[1..].iter().map(|f| f.bytes).sum::<u64>() {
            run.remove(0);
        }
    }
    let mut merged: Vec<&Path> = Vec::new();
    for run in runs.into_iter().filter(|r| r.len() >= 2) {
        match merge_run(&dir, class, &run) {
            Ok(m) => {
                merged.extend(run.iter().map(|f| f.path.as_path()));
                pass.merged.push(m);
            }
            Err(p) => pass.problems.push(p),
        }
    }
    // 3. An id index for each file left without a readable one (`crate::ids`): a store
    //    written before indexes, or before their current format, gets them, reading only
    //    the id columns of each file.
    for f in all.iter().filter(|f| !merged.contains(&f.path.as_path())) {
        if ids::has_index(&f.path) {
            continue;
        }
        match ids::index_existing(&f.path, &class.schema()) {
            Ok(()) => pass.indexed += 1,
            Err(what) => pass.problems.push(Problem {
                path: f.path.clone(),
                offset: None,
                what: format!("its id index could not be made: {what}"),
            }),
        }
    }
}

/// Merges `run` (consecutive files of one partition) into one file, then deletes them.
fn merge_run(dir: &Path, class: &'static Class, run: &[&LakeFile]) -> Result<Merged, Problem> {
    let (first, last) = (run[0].first, run[run.len() - 1].last);
    let tmp = dir.join(format!(".merge-{first:020}.tmp"));
    let fin = dir.join(layout::parquet_name(first, last));
    let result = write_merged(&tmp, class, run);
    let rows = match result {
        Ok((rows, ids)) => {
            // The index before its file (see `crate::ids`).
            if let Err(e) = ids.write_for(&fin) {
                tracing::warn!(file = %fin.display(), error = %e, "store: the merged file's id index was not written; lookups will read the file");
            }
            rows
        }
        Err(p) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(p);
        }
    };
    std::fs::rename(&tmp, &fin).map_err(|e| Problem::io(&fin, e))?;
    sync_dir(dir).map_err(|e| Problem::io(dir, e))?;
    // From here the inputs are left out of every listing; deleting them is tidying.
    for f in run {
        std::fs::remove_file(&f.path).map_err(|e| Problem::io(&f.path, e))?;
        remove_index(&f.path).map_err(|e| Problem::io(&ids::index_path(&f.path), e))?;
    }
    sync_dir(dir).map_err(|e| Problem::io(dir, e))?;
    Ok(Merged {
        path: fin,
        inputs: run.len(),
        rows,
    })
}

/// Deletes the id index of a Parquet file, if it has one.
fn remove_index(parquet: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(ids::index_path(parquet)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Writes every row of `run`, in order, to `tmp` (fsynced); returns the rows and the
/// merged file's id index.
fn write_merged(
    tmp: &Path,
    class: &'static Class,
    run: &[&LakeFile],
) -> Result<(u64, IdIndexBuilder), Problem> {
    let bad = |path: &Path, what: String| Problem {
        path: path.to_path_buf(),
        offset: None,
        what,
    };
    let schema = class.schema();
    let mut writer: Option<ArrowWriter<File>> = None;
    let mut ids = IdIndexBuilder::new(&schema);
    let mut rows = 0;
    for f in run {
        let builder =
            crate::read::open_with_schema(&f.path, Some(&schema)).map_err(|e| bad(&f.path, e))?;
        if builder.schema().fields() != schema.fields() {
            return Err(bad(
                &f.path,
                format!("not merged: its schema is not {}'s", class.table),
            ));
        }
        let reader = builder
            .with_batch_size(ROW_GROUP)
            .build()
            .map_err(|e| bad(&f.path, e.to_string()))?;
        for batch in reader {
            // Read with the class's schema (`open_with_schema`, checked above).
            let batch = batch.map_err(|e| bad(&f.path, e.to_string()))?;
            if writer.is_none() {
                let out = File::create(tmp).map_err(|e| Problem::io(tmp, e))?;
                let props = file_properties(class, &batch);
                writer = Some(
                    compact::new_writer(out, schema.clone(), props)
                        .map_err(|e| bad(tmp, e.to_string()))?,
                );
            }
            if let Some(w) = &mut writer {
                ids.add(&batch);
                w.write(&batch).map_err(|e| bad(tmp, e.to_string()))?;
            }
            rows += batch.num_rows() as u64;
        }
    }
    let w = writer.ok_or_else(|| bad(tmp, "nothing to merge".into()))?;
    let file = w.into_inner().map_err(|e| bad(tmp, e.to_string()))?;
    file.sync_all().map_err(|e| Problem::io(tmp, e))?;
    Ok((rows, ids))
}
