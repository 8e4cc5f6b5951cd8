//! What agents ship: `POST /agent/v1/batches/{stream}/{first}` takes a batch of one
//! stream's records (JSON lines, zstd-compressed), stores them in the organisation's
//! lake and answers `{"acked": LAST}` only once they are durable there.
//!
//! * **The lake** of an organisation is a `vigil_store::Store` under
//!   `LAKE_DIR/org=<id>`: the agent store's own log and Parquet layout, so `vigil query
//!   --store` reads it as it reads a host's store. One writer per organisation: batches
//!   of one organisation are written one at a time.
//! * **Exactly once.** `ship_streams` holds, per agent and stream, the last sequence
//!   stored (`acked`). Records at or below it are acknowledged again without being
//!   stored (a batch replayed after a lost answer). Before a batch goes to the lake, its
//!   place there is recorded (`pending_*`: its first sequence, its count and the lake
//!   sequence its first record takes); after the lake's fsync, `acked` moves and the
//!   pending record is cleared. A crash between the two is resolved from the lake's own
//!   durable sequence when the lake is next opened (or after a failed write): the records
//!   the lake holds count as stored, the others are not, so a retry stores each record
//!   once.
//! * **Findings** (Detection and Incident Findings) are also kept in PostgreSQL, once
//!   per `metadata.uid` in the organisation, for the incident queue.
//! * **Bad input** (a stream that does not exist, a body that is not zstd, JSON lines that
//!   are not event objects, too many records) is a 400 or 413, and nothing of the batch
//!   is stored.

use crate::body::RawBody;
use crate::error::ApiError;
use crate::state::{AgentIdentity, AppState};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_postgres::Client;

/// The largest batch body accepted (compressed), in bytes.
pub const MAX_BODY: usize = 8 << 20;
/// The largest batch once decompressed.
pub const MAX_LINES_BYTES: usize = 32 << 20;
/// The most records in one batch.
pub const MAX_RECORDS: usize = 100_000;
/// The longest line (one event).
pub const MAX_LINE: usize = 1 << 20;

/// One organisation's lake and whether a write of it may have been left unresolved.
struct OrgLake {
    store: Arc<vigil_store::Store>,
    /// A batch's write failed part-way: the pending records are resolved before the
    /// next write.
    unresolved: bool,
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

    async fn get(
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
async fn resolve(db: &Client, org: i64, store: &Arc<vigil_store::Store>) -> Result<(), ApiError> {
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

/// A finding's row.
struct FindingRow {
    uid: String,
    class_uid: i32,
    time_ms: i64,
    severity_id: i32,
    title: String,
    story: Option<String>,
    event: String,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// Checks a batch's lines: each a JSON object with an integer `class_uid`, no line too
/// long, not too many. Returns the line count and the findings among them.
fn check_lines(
    lines: &[u8],
    agent: &str,
    stream: &str,
    first: u64,
) -> Result<(usize, Vec<FindingRow>), ApiError> {
    let mut n = 0usize;
    let mut findings = Vec::new();
    for line in lines.split(|b| *b == b'\n') {
        if line.is_empty() {
            continue;
        }
        if line.len() > MAX_LINE {
            return Err(ApiError::TooLarge);
        }
        let seq = first + n as u64;
        n += 1;
        if n > MAX_RECORDS {
            return Err(ApiError::TooLarge);
        }
        let v: Value = serde_json::from_slice(line).map_err(|_| ApiError::BadRequest)?;
        let class = v
            .get("class_uid")
            .and_then(Value::as_i64)
            .and_then(|c| i32::try_from(c).ok())
            .ok_or(ApiError::BadRequest)?;
        if !v.is_object() {
            return Err(ApiError::BadRequest);
        }
        if class == 2004 || class == 2005 {
            let text = |s: &str| {
                s.chars()
                    .filter(|c| *c != '\0')
                    .take(512)
                    .collect::<String>()
            };
            let title = str_at(&v, &["finding_info", "title"])
                .or_else(|| str_at(&v, &["message"]))
                .unwrap_or("(untitled)");
            findings.push(FindingRow {
                uid: str_at(&v, &["metadata", "uid"])
                    .map(text)
                    .unwrap_or_else(|| format!("{agent}:{stream}:{seq}")),
                class_uid: class,
                time_ms: v.get("time").and_then(Value::as_i64).unwrap_or(0),
                severity_id: v
                    .get("severity_id")
                    .and_then(Value::as_i64)
                    .and_then(|s| i32::try_from(s).ok())
                    .unwrap_or(0),
                title: text(title),
                story: str_at(&v, &["metadata", "correlation_uid"]).map(text),
                // PostgreSQL's text takes no NUL: the escaped form stays as the agent
                // wrote it, a raw one cannot occur in JSON text.
                event: String::from_utf8_lossy(line).into_owned(),
            });
        }
    }
    if n == 0 {
        return Err(ApiError::BadRequest);
    }
    Ok((n, findings))
}

/// The body, decompressed when it says it is zstd, within [`MAX_LINES_BYTES`].
fn body_lines(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let encoding = headers
        .get("content-encoding")
        .map(|v| v.to_str().unwrap_or("?"))
        .unwrap_or("identity");
    match encoding {
        "identity" => {
            if body.len() > MAX_LINES_BYTES {
                return Err(ApiError::TooLarge);
            }
            Ok(body.to_vec())
        }
        "zstd" => {
            let mut out = Vec::new();
            let dec = zstd::stream::read::Decoder::new(body).map_err(|_| ApiError::BadRequest)?;
            dec.take(MAX_LINES_BYTES as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|_| ApiError::BadRequest)?;
            if out.len() > MAX_LINES_BYTES {
                return Err(ApiError::TooLarge);
            }
            Ok(out)
        }
        _ => Err(ApiError::BadRequest),
    }
}

async fn insert_findings(
    db: &Client,
    org: i64,
    agent: &str,
    rows: &[FindingRow],
) -> Result<(), ApiError> {
    if rows.is_empty() {
        return Ok(());
    }
    let uids: Vec<&str> = rows.iter().map(|r| r.uid.as_str()).collect();
    let classes: Vec<i32> = rows.iter().map(|r| r.class_uid).collect();
    let times: Vec<i64> = rows.iter().map(|r| r.time_ms).collect();
    let sev: Vec<i32> = rows.iter().map(|r| r.severity_id).collect();
    let titles: Vec<&str> = rows.iter().map(|r| r.title.as_str()).collect();
    let stories: Vec<Option<&str>> = rows.iter().map(|r| r.story.as_deref()).collect();
    let events: Vec<&str> = rows.iter().map(|r| r.event.as_str()).collect();
    db.execute(
        "INSERT INTO findings (org_id, uid, agent_id, class_uid, time, severity_id, title,
                               story, event)
         SELECT $1, u, $2, c, to_timestamp(t::double precision / 1000), s, ti, st, e
         FROM unnest($3::text[], $4::int4[], $5::int8[], $6::int4[], $7::text[],
                     $8::text[], $9::text[]) AS x(u, c, t, s, ti, st, e)
         ON CONFLICT (org_id, uid) DO NOTHING",
        &[
            &org, &agent, &uids, &classes, &times, &sev, &titles, &stories, &events,
        ],
    )
    .await?;
    Ok(())
}

/// `POST /agent/v1/batches/{stream}/{first}`: see the module docs.
pub async fn batch(
    State(state): State<AppState>,
    Extension(agent): Extension<AgentIdentity>,
    Path((stream, first)): Path<(String, String)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    if stream != "findings" && stream != "events" {
        return Err(ApiError::NotFound);
    }
    let first: u64 = match first.parse() {
        Ok(n) if n > 0 && !first.starts_with('+') && n < i64::MAX as u64 / 2 => n,
        _ => return Err(ApiError::NotFound),
    };
    let lines = body_lines(&headers, &body)?;
    let (agent_id, org) = (agent.id.clone(), agent.org);
    let (count, findings, lines) = tokio::task::spawn_blocking(move || {
        check_lines(&lines, &agent_id, &stream, first).map(|(n, f)| (n, f, (lines, stream)))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("batch check: {e}")))??;
    let (lines, stream) = lines;
    let last = first + count as u64 - 1;
    let (first_i, last_i) = (first as i64, last as i64);
    let db = state.db();
    let lake = state.lakes().get(db, org).await?;
    let mut lake = lake.lock().await;
    if lake.unresolved {
        resolve(db, org, &lake.store).await?;
        lake.unresolved = false;
    }
    let acked: i64 = db
        .query_opt(
            "SELECT acked FROM ship_streams WHERE agent_id = $1 AND stream = $2",
            &[&agent.id, &stream],
        )
        .await?
        .map_or(0, |r| r.get(0));
    if last_i <= acked {
        db.execute(
            "UPDATE ship_streams SET duplicates = duplicates + $3
             WHERE agent_id = $1 AND stream = $2",
            &[&agent.id, &stream, &(count as i64)],
        )
        .await?;
        return Ok(Json(json!({ "acked": last, "stored": 0 })));
    }
    // Records up to `acked` are stored already: the rest goes on.
    let skip = usize::try_from((acked + 1 - first_i).max(0)).unwrap_or(0);
    let gap = (first_i - acked - 1).max(0);
    let mut rest = Vec::with_capacity(lines.len());
    let mut n = 0u64;
    for line in lines
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .skip(skip)
    {
        rest.extend_from_slice(line);
        rest.push(b'\n');
        n += 1;
    }
    insert_findings(db, org, &agent.id, &findings).await?;
    let store = Arc::clone(&lake.store);
    let at = i64::try_from(store.durable() + 1).unwrap_or(i64::MAX);
    let from = first_i + skip as i64;
    db.execute(
        "INSERT INTO ship_streams (agent_id, stream, org_id, gaps, pending_first,
                                   pending_count, pending_lake_seq)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (agent_id, stream) DO UPDATE
         SET gaps = ship_streams.gaps + $4, pending_first = $5, pending_count = $6,
             pending_lake_seq = $7, updated_at = now()",
        &[&agent.id, &stream, &org, &gap, &from, &(n as i64), &at],
    )
    .await?;
    let want = store.durable() + n;
    let durable = tokio::task::spawn_blocking(move || {
        if store.append(rest, n) {
            store.sync()
        } else {
            store.durable()
        }
    })
    .await
    .map_err(|e| ApiError::Internal(format!("lake write: {e}")))?;
    if durable < want {
        lake.unresolved = true;
        return Err(ApiError::Unavailable(format!(
            "the lake of organisation {org} did not take a batch (durable {durable} < {want})"
        )));
    }
    let done = db
        .execute(
            "UPDATE ship_streams
             SET acked = $3, records = records + $4, pending_first = NULL,
                 pending_count = NULL, pending_lake_seq = NULL, updated_at = now()
             WHERE agent_id = $1 AND stream = $2",
            &[&agent.id, &stream, &last_i, &(n as i64)],
        )
        .await;
    if let Err(e) = done {
        lake.unresolved = true;
        return Err(ApiError::Unavailable(format!("database: {e}")));
    }
    Ok(Json(json!({ "acked": last, "stored": n })))
}

/// `GET /api/v1/orgs/{org}/findings`: the organisation's latest findings (100 at
/// most), newest first, with the host that made each.
pub async fn list_findings(
    State(state): State<AppState>,
    Extension(c): Extension<crate::auth::Caller>,
) -> Result<Json<Value>, ApiError> {
    let rows = state
        .db()
        .query(
            "SELECT f.uid, f.agent_id, a.hostname, f.class_uid,
                    (extract(epoch FROM f.time) * 1000)::int8, f.severity_id, f.title,
                    f.story, f.status
             FROM findings f JOIN agents a ON a.id = f.agent_id AND a.org_id = f.org_id
             WHERE f.org_id = $1 ORDER BY f.time DESC, f.uid LIMIT 100",
            &[&c.org],
        )
        .await?;
    let findings: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "uid": r.get::<_, String>(0),
                "agent_id": r.get::<_, String>(1),
                "hostname": r.get::<_, String>(2),
                "class_uid": r.get::<_, i32>(3),
                "time": r.get::<_, i64>(4),
                "severity_id": r.get::<_, i32>(5),
                "title": r.get::<_, String>(6),
                "story": r.get::<_, Option<String>>(7),
                "status": r.get::<_, String>(8),
            })
        })
        .collect();
    Ok(Json(json!({ "findings": findings })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_must_be_event_objects() {
        let ok = b"{\"class_uid\":1007,\"time\":1}\n{\"class_uid\":2004,\"time\":5,\"severity_id\":4,\"metadata\":{\"uid\":\"u1\",\"correlation_uid\":\"s1\"},\"finding_info\":{\"title\":\"T\"}}\n";
        let (n, f) = check_lines(ok, "a", "events", 1).expect("good");
        assert_eq!(n, 2);
        assert_eq!(f.len(), 1);
        assert_eq!(
            (
                f[0].uid.as_str(),
                f[0].title.as_str(),
                f[0].story.as_deref()
            ),
            ("u1", "T", Some("s1"))
        );
        for bad in [
            &b""[..],
            b"\n\n",
            b"not json\n",
            b"[1,2]\n",
            b"{\"class_uid\":\"x\"}\n",
            b"{\"time\":1}\n",
            b"{\"class_uid\":1007}\n{\"class_uid\":1007\n",
        ] {
            assert!(
                check_lines(bad, "a", "events", 1).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_finding_without_a_uid_gets_one_from_its_place() {
        let (_, f) = check_lines(b"{\"class_uid\":2005}\n", "ag", "findings", 7).expect("good");
        assert_eq!(f[0].uid, "ag:findings:7");
        assert_eq!(f[0].title, "(untitled)");
    }

    #[test]
    fn bodies_are_bounded_when_decompressed() {
        let mut h = HeaderMap::new();
        h.insert("content-encoding", "zstd".parse().expect("value"));
        let bomb = zstd::bulk::compress(&vec![b'x'; MAX_LINES_BYTES + 10], 19).expect("zstd");
        assert!(bomb.len() < MAX_BODY);
        assert!(matches!(body_lines(&h, &bomb), Err(ApiError::TooLarge)));
        assert!(matches!(
            body_lines(&h, b"not zstd"),
            Err(ApiError::BadRequest)
        ));
        let good = zstd::bulk::compress(b"{\"class_uid\":1}\n", 3).expect("zstd");
        assert_eq!(body_lines(&h, &good).expect("good"), b"{\"class_uid\":1}\n");
        h.insert("content-encoding", "gzip".parse().expect("value"));
        assert!(matches!(body_lines(&h, &good), Err(ApiError::BadRequest)));
    }
}
