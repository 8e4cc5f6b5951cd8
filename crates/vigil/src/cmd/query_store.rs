//! The store directory as query sources, through the store's own reader
//! ([`vigil_store::snapshot`]): its Parquet files by class (pruned by the date/hour
//! partitions to a time range) and the events still in its log, each event seen once even
//! while an agent compacts the log meanwhile.

use anyhow::Result;
use std::path::Path;
use std::sync::Arc;
use vigil_query::Sources;

/// What a query or a retro-hunt reads of a store: the snapshot, its problems already
/// reported (each unreadable file or damaged log segment is named and left out).
pub fn snapshot(dir: &Path, range: Option<(i64, i64)>) -> Result<vigil_store::Snapshot> {
    if !dir.is_dir() {
        anyhow::bail!(
            "{}: not a store directory (no such directory)",
            dir.display()
        );
    }
    // The store's ranges are `from..until`; ours are inclusive.
    let range = range.map(|(from, to)| (from, to.saturating_add(1)));
    let snap = vigil_store::snapshot(dir, None, range);
    for p in &snap.problems {
        tracing::warn!("{p} (left out)");
    }
    Ok(snap)
}

/// Adds a store's Parquet files (within `range`, epoch ms inclusive) and its log's events
/// to `sources`.
pub fn add_store(sources: &mut Sources, dir: &Path, range: Option<(i64, i64)>) -> Result<()> {
    let snap = snapshot(dir, range)?;
    for (table, files) in &snap.files {
        // The store's schema for the table: no footer is read before the query.
        let schema = vigil_store::schema_of(table);
        for f in files {
            match &schema {
                Some(schema) => sources.add_parquet_with_schema(table, &f.path, Arc::clone(schema)),
                None => sources.add_parquet(table, &f.path),
            }
        }
    }
    for (table, batches) in snap.log {
        if !batches.is_empty() {
            sources.add_batches(table, batches);
        }
    }
    Ok(())
}
