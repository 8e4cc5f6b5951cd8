//! Retention: whole partitions (one class, one hour) deleted, oldest hour first, when the
//! lake is older than its age limit or larger than its size limit. Every deletion is
//! returned with what and why, for the caller to report.

use crate::layout::{self, Hour};
use crate::read::lake_files;
use crate::schema::CLASSES;
use crate::Problem;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The limits (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Bytes the lake may take (its Parquet files).
    pub max_bytes: u64,
    /// Hours of history kept: a partition whose hour ended longer ago is deleted.
    pub max_age_hours: u64,
}

/// One partition deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// The partition's directory (`.../class=X/date=D/hour=H`).
    pub path: PathBuf,
    /// Bytes freed.
    pub bytes: u64,
    /// Files deleted.
    pub files: usize,
    /// Why: `age` or `size`.
    pub reason: String,
}

/// Applies `limits` to the lake under `root` at `now_ms`.
pub fn apply(root: &Path, limits: Limits, now_ms: i64) -> (Vec<Deletion>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut deleted = Vec::new();
    if limits.max_bytes == 0 && limits.max_age_hours == 0 {
        return (deleted, problems);
    }
    // Partitions, oldest hour first: (hour, table) -> (bytes, files).
    let mut parts: BTreeMap<(Hour, &'static str), (u64, usize)> = BTreeMap::new();
    let mut total = 0;
    for class in CLASSES {
        for f in lake_files(root, class, None, &mut problems) {
            let e = parts.entry((f.hour, class.table)).or_default();
            e.0 += f.bytes;
            e.1 += 1;
            total += f.bytes;
        }
    }
    let oldest_kept = if limits.max_age_hours == 0 {
        i64::MIN
    } else {
        now_ms.saturating_sub(limits.max_age_hours.saturating_mul(3_600_000) as i64)
    };
    for ((hour, table), (bytes, files)) in parts {
        let too_old = hour.start_ms() + 3_600_000 <= oldest_kept;
        let too_big = limits.max_bytes > 0 && total > limits.max_bytes;
        if !too_old && !too_big {
            // Oldest first: nothing younger is due either.
            break;
        }
        let dir = layout::partition_dir(root, table, hour);
        let reason = if too_old {
            format!("older than {} hours (the age limit)", limits.max_age_hours)
        } else {
            format!(
                "the lake holds {total} bytes, over its limit of {}",
                limits.max_bytes
            )
        };
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {
                total = total.saturating_sub(bytes);
                tracing::info!(partition = %dir.display(), bytes, files, "store retention: deleted ({reason})");
                deleted.push(Deletion {
                    path: dir.clone(),
                    bytes,
                    files,
                    reason,
                });
                // The date directory goes too once its last hour is gone.
                if let Some(date) = dir.parent() {
                    let _ = std::fs::remove_dir(date);
                }
            }
            Err(e) => problems.push(Problem::io(&dir, e)),
        }
    }
    (deleted, problems)
}
