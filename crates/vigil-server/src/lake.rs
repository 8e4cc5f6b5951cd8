//! The organisations' lakes on the server: one `vigil_store::Store` per organisation
//! under `LAKE_DIR/org=<id>` (the agent store's own log and Parquet layout, so `vigil
//! query --store` reads it as it reads a host's store), opened on first use, with the
//! batches a crash left pending settled against the lake's durable sequence at open
//! (`ingest` writes them).
//!
//! One writer per lake, across processes: a lake is opened only under an exclusive lock
//! (flock) on `LAKE_DIR/org=<id>.lock`, held while it is open and released by the kernel
//! when its process ends, however it ends. Another server process on the same
//! directory (`--nats`: the lake's owner stores what every front door queues) is told
//! the lake is busy and never touches its log.

use crate::error::ApiError;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_postgres::Client;

/// One organisation's lake and whether a write of it may have been left unresolved.
pub(crate) struct OrgLake {
    pub(crate) store: Arc<vigil_store::Store>,
    /// The lake's lock, held while it is open.
    _lock: std::fs::File,
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

    /// The lake of `org`, opened (and locked) on first use; 503 when another process
    /// holds it.
    pub(crate) async fn get(
        &self,
        db: &Client,
        org: i64,
    ) -> Result<Arc<tokio::sync::Mutex<OrgLake>>, ApiError> {
        self.try_get(db, org).await?.ok_or_else(|| {
            ApiError::Unavailable(format!(
                "the lake of organisation {org} is written by another server process"
            ))
        })
    }

    /// Whether this process holds `org`'s lake open.
    pub async fn holds(&self, org: i64) -> bool {
        self.open.lock().await.contains_key(&org)
    }

    /// The lake of `org`, opened (and locked) on first use; `None` when another process
    /// holds its lock.
    pub(crate) async fn try_get(
        &self,
        db: &Client,
        org: i64,
    ) -> Result<Option<Arc<tokio::sync::Mutex<OrgLake>>>, ApiError> {
        let mut open = self.open.lock().await;
        if let Some(l) = open.get(&org) {
            return Ok(Some(Arc::clone(l)));
        }
        let root = self
            .dir
            .clone()
            .ok_or_else(|| ApiError::Unavailable("this server keeps no lake".into()))?;
        let dir = root.join(format!("org={org}"));
        let cfg = vigil_store::StoreConfig::new(dir.clone());
        let opened = tokio::task::spawn_blocking(move || {
            // The lock first: the store's recovery cuts a log's tail, which only its one
            // writer may do.
            std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
            let path = root.join(format!("org={org}.lock"));
            let lock = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            match lock.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(format!("{}: {e}", path.display()))
                }
            }
            let (store, problems) = vigil_store::Store::open(cfg, vigil_event::time::now_ms())
                .map_err(|p| p.to_string())?;
            Ok(Some((store, problems, lock)))
        })
        .await
        .map_err(|e| ApiError::Internal(format!("lake open: {e}")))?
        .map_err(|p: String| ApiError::Unavailable(format!("lake of organisation {org}: {p}")))?;
        let Some((store, problems, lock)) = opened else {
            return Ok(None);
        };
        for p in problems {
            tracing::warn!(org, "lake recovery: {p}");
        }
        let store = Arc::new(store);
        resolve(db, org, &store).await?;
        tracing::info!(org, dir = %dir.display(), durable = store.durable(), "lake open");
        let lake = Arc::new(tokio::sync::Mutex::new(OrgLake {
            store,
            _lock: lock,
            unresolved: false,
        }));
        open.insert(org, Arc::clone(&lake));
        Ok(Some(lake))
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
