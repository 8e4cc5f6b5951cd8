//! The store directory as query sources: its Parquet files by class (pruned by the
//! date/hour partitions to a time range) and the events still in its log.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use vigil_query::Sources;

/// The hour partitions (`date=YYYY-MM-DD/hour=HH`) of the store's lake, per class, that
/// can hold events in `range` (epoch ms, inclusive), each with its Parquet files.
pub fn lake_files(dir: &Path, range: Option<(i64, i64)>) -> Result<Vec<(String, PathBuf)>> {
    let lake = dir.join("lake");
    let mut out = Vec::new();
    if !lake.is_dir() {
        return Ok(out);
    }
    for class in sorted_dirs(&lake)? {
        let Some(table) =
            name_of(&class).and_then(|n| n.strip_prefix("class=").map(str::to_string))
        else {
            continue;
        };
        for date in sorted_dirs(&class)? {
            let Some(day) = name_of(&date)
                .and_then(|n| n.strip_prefix("date="))
                .and_then(vigil_query::pipe::parse_time)
            else {
                continue;
            };
            for hour in sorted_dirs(&date)? {
                let Some(h) = name_of(&hour)
                    .and_then(|n| n.strip_prefix("hour="))
                    .and_then(|h| h.parse::<i64>().ok())
                else {
                    continue;
                };
                let start = day + h * 3_600_000;
                let end = start + 3_600_000 - 1;
                if let Some((from, to)) = range {
                    if end < from || start > to {
                        continue;
                    }
                }
                let mut files: Vec<PathBuf> = std::fs::read_dir(&hour)
                    .with_context(|| format!("cannot list {}", hour.display()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
                    .collect();
                files.sort();
                out.extend(files.into_iter().map(|f| (table.clone(), f)));
            }
        }
    }
    Ok(out)
}

/// Adds a store's Parquet files (within `range`) and its log's events to `sources`.
pub fn add_store(sources: &mut Sources, dir: &Path, range: Option<(i64, i64)>) -> Result<()> {
    if !dir.is_dir() {
        anyhow::bail!(
            "{}: not a store directory (no such directory)",
            dir.display()
        );
    }
    for (table, file) in lake_files(dir, range)? {
        sources.add_parquet(&table, &file);
    }
    Ok(())
}

fn name_of(p: &Path) -> Option<&str> {
    p.file_name().and_then(|n| n.to_str())
}

fn sorted_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    Ok(v)
}
