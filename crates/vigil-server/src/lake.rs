//! The organisations' lakes on the server: one `vigil_store::Store` per organisation
//! under `LAKE_DIR/org=<id>` (the agent store's own log and Parquet layout, so `vigil
//! query --store` reads it as it reads a host's store), opened on first use, with the
//! batches a crash left pending settled against the lake's durable sequence at open
//! (`ingest` writes them).

use crate::error::ApiError;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_postgres::Client;

/// One organisation's lake and whether a write of it may have been left unresolved.
pub(crate) struct OrgLake {
    pub(crate) store: Arc<vigil_store::Store>,
    /// A batch's write failed part-way: the pending records are resolved before the
    /// next write.
    pub(crate) unresolved: bool,
}

/// The organisations' lakes, opened on first use.
#[derive(Default)]
pub struct Lakes {
    dir: Option<PathBuf>,
    open: tokio::sync::Mutex<HashMap<i64, Arc<tokio::sync::Mutex<OrgLake>>>>,
}

impl std::fmt::Debug for Lakes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lakes").field("dir", &self.dir).finish()
    }
}

impl Lakes {
    /// The lakes under `dir` (`None`: this server stores no events; batches get a 503).
    pub fn new(dir: Option<PathBuf>) -> Lakes {
        Lakes {
            dir,
            open: tokio::sync::Mutex::default(),
        }
    }

    /// The directory of an organisation's lake.
    pub fn org_dir(&self, org: i64) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("org={org}")))
    }

    /// Closes every open lake (their logs fsynced).
    pub async fn close(&self) {
        let lakes: Vec<_> = self.open.lock().await.drain().map(|(_, l)| l).collect();
        for l in lakes {
            let l = l.lock().await;
            let store = Arc::clone(&l.store);
            let _ = tokio::task::spawn_blocking(move || store.sync()).await;
        }
    }

    pub(crate) async fn get(
        &self,
        db: &Client,
        org: i64,
    ) -> Result<Arc<tokio::sync::Mutex<OrgLake>>, ApiError> {
        let mut open = self.open.lock().await;
        if let Some(l) = open.get(&org) {
            return Ok(Arc::clone(l));
        }
        let dir = self
            .org_dir(org)
            .ok_or_else(|| ApiError::Unavailable("this server keeps no lake".into()))?;
        let cfg = vigil_store::StoreConfig::new(dir.clone());
        let (store, problems) = tokio::task::spawn_blocking(move || {
            vigil_store::Store::open(cfg, vigil_event::time::now_ms())
        })
        .await
        .map_err(|e| ApiError::Internal(format!("lake open: {e}")))?
        .map_err(|p| ApiError::Unavailable(format!("lake of organisation {org}: {p}")))?;
        for p in problems {
            tracing::warn!(org, "lake recovery: {p}");
        }
        let store = Arc::new(store);
        resolve(db, org, &store).await?;
        tracing::info!(org, dir = %dir.display(), durable = store.durable(), "lake open");
        let lake = Arc::new(tokio::sync::Mutex::new(OrgLake {
            store,
            unresolved: false,
        }));
        open.insert(org, Arc::clone(&lake));
        Ok(lake)
    }
}

/// Settles the batches of `org` left pending (a crash or a failed write between the lake
/// and the database): what the lake holds durably counts as stored.
pub(crate) async fn resolve(
    db: &Client,
    org: i64,
    store: &Arc<vigil_store::Store>,
) -> Result<(), ApiError> {
    let s = Arc::clone(store);
    let durable = tokio::task::spawn_blocking(move || s.sync())
        .await
        .map_err(|e| ApiError::Internal(format!("lake sync: {e}")))?;
    let durable = i64::try_from(durable).unwrap_or(i64::MAX);
    let rows = db
        .query(
            "SELECT agent_id, stream, pending_first, pending_count, pending_lake_seq
             FROM ship_streams WHERE org_id = $1 AND pending_lake_seq IS NOT NULL",
            &[&org],
        )
        .await?;
    for r in rows {
        let (agent, stream): (String, String) = (r.get(0), r.get(1));
        let (first, count, at): (i64, i64, i64) = (r.get(2), r.get(3), r.get(4));
        // How many of the batch's records the lake holds.
        let held = (durable - at + 1).clamp(0, count);
        db.execute(
            "UPDATE ship_streams
             SET acked = GREATEST(acked, $3), records = records + $4,
                 pending_first = NULL, pending_count = NULL, pending_lake_seq = NULL,
                 updated_at = now()
             WHERE agent_id = $1 AND stream = $2",
            &[&agent, &stream, &(first + held - 1), &held],
        )
        .await?;
        tracing::info!(
            org,
            agent,
            stream,
            first,
            count,
            held,
            "a batch left pending was settled against the lake"
        );
    }
    Ok(())
}
