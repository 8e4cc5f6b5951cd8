//! Event search for `vigil server run`: vigil-query's engine (read only) over an
//! organisation's lake, plugged into the server as its [`Search`].

use crate::cmd::query_store::add_store;
use std::path::Path;
use std::time::Duration;
use vigil_query::output::{flatten, write, Format};
use vigil_query::{Engine, Language, Sources, Stopped};
use vigil_server::search::{Found, Search};

/// Searches a lake with vigil-query, on one thread (the server serves many at once).
#[derive(Debug, Default)]
pub struct LakeSearch;

impl Search for LakeSearch {
    fn search(
        &self,
        dir: &Path,
        query: &str,
        max_rows: usize,
        timeout: Duration,
    ) -> Result<Found, String> {
        // The lake's own path is the server's business, not the analyst's.
        let scrub = |e: String| e.replace(&dir.display().to_string(), "<lake>");
        let mut sources = Sources::default();
        add_store(&mut sources, dir, None).map_err(|e| scrub(format!("{e:#}")))?;
        if sources.tables.is_empty() {
            return Ok(Found::default());
        }
        let mut engine = Engine::new(sources, 1).map_err(|e| scrub(e.to_string()))?;
        let outcome = engine
            .run(
                query,
                Language::guess(query),
                Some(max_rows as u64),
                Some(timeout),
            )
            .map_err(|e| scrub(e.to_string()))?;
        let flat = outcome
            .batches
            .iter()
            .map(flatten)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let mut text = Vec::new();
        write(&mut text, &flat, Format::Jsonl).map_err(|e| e.to_string())?;
        let objects: Vec<serde_json::Map<String, serde_json::Value>> = text
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect();
        // The columns of the result, less those empty in every row (an OCSF table is
        // hundreds of columns wide, most of them empty for any one question).
        let columns: Vec<String> = flat
            .first()
            .map(|b| {
                b.schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .filter(|c| {
                        objects
                            .iter()
                            .any(|o| o.get(c).is_some_and(|v| !v.is_null()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let rows = objects
            .iter()
            .map(|o| {
                columns
                    .iter()
                    .map(|c| o.get(c).cloned().unwrap_or(serde_json::Value::Null))
                    .collect()
            })
            .collect();
        Ok(Found {
            columns,
            rows,
            truncated: !matches!(outcome.stopped, Stopped::No),
            sql: outcome.sql,
        })
    }
}
