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
//!   per `metadata.uid` in the organisation (without one: per agent, stream and
//!   sequence), for the incident queue; an incident's later updates (same uid, a later
//!   time) replace its event, never its triage status.
//! * **Through NATS** (`vigil server run --nats URL`, [`crate::bus`]): the front door
//!   checks a batch as above, publishes it to JetStream and answers `{"acked": LAST}`
//!   once the stream holds it; the server process that owns the organisation's lake
//!   takes it from there and stores it exactly as above.
//! * **Bad input** (a stream that does not exist, a body that is not zstd, JSON lines that
//!   are not event objects, too many records) is a 400 or 413, and nothing of the batch
//!   is stored.

use crate::body::RawBody;
use crate::error::ApiError;
use crate::lake::resolve;
use crate::state::{AgentIdentity, AppState};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use serde_json::{json, Value};
use std::io::Read;
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

/// What every line must have (the rest is checked to be JSON and passed over).
#[derive(serde::Deserialize)]
struct Head {
    class_uid: i32,
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
        // Checked whole, without building it: an object with an integer class.
        // (serde would also read the struct from an array of its fields.)
        if line.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::BadRequest);
        }
        let head: Head = serde_json::from_slice(line).map_err(|_| ApiError::BadRequest)?;
        let class = head.class_uid;
        if class == 2004 || class == 2005 {
            let v: Value = serde_json::from_slice(line).map_err(|_| ApiError::BadRequest)?;
            let text = |s: &str| {
                s.chars()
                    .filter(|c| *c != '\0')
                    .take(512)
                    .collect::<String>()
            };
            // A finding's rule title; an incident's sentence, or its first finding's.
            let title = str_at(&v, &["finding_info", "title"])
                .or_else(|| str_at(&v, &["desc"]))
                .or_else(|| {
                    v.get("finding_info_list")
                        .and_then(|l| l.get(0))
                        .and_then(|f| f.get("title"))
                        .and_then(Value::as_str)
                })
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
         ON CONFLICT (org_id, uid) DO UPDATE
         SET event = EXCLUDED.event, time = EXCLUDED.time, title = EXCLUDED.title,
             severity_id = EXCLUDED.severity_id, story = EXCLUDED.story
         WHERE findings.time <= EXCLUDED.time AND findings.event <> EXCLUDED.event",
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
    let zstd = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"zstd");
    let lines = body_lines(&headers, &body)?;
    let agent_id = agent.id.clone();
    let (count, findings, lines, stream) = tokio::task::spawn_blocking(move || {
        check_lines(&lines, &agent_id, &stream, first).map(|(n, f)| (n, f, lines, stream))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("batch check: {e}")))??;
    let last = first + count as u64 - 1;
    if let Some(bus) = state.bus() {
        // Through JetStream: acknowledged once the stream holds it; an ingest worker
        // stores it (`crate::bus`).
        let payload = if zstd {
            body.to_vec()
        } else {
            zstd::bulk::compress(&lines, 1)
                .map_err(|e| ApiError::Internal(format!("batch compression: {e}")))?
        };
        let batch = crate::bus::Queued {
            org: agent.org,
            agent: agent.id.clone(),
            stream,
            first,
            last,
        };
        bus.publish(&batch, payload).await?;
        return Ok(Json(json!({ "acked": last, "queued": count })));
    }
    let stored = store(
        &state, agent.org, &agent.id, &stream, first, count, &findings, &lines,
    )
    .await?;
    Ok(Json(json!({ "acked": last, "stored": stored })))
}

/// A batch taken from NATS (`crate::bus`): its lines decompressed and checked as at the
/// front door, then stored as [`batch`] stores it. Returns the records stored (0 for a
/// batch stored already).
pub(crate) async fn store_queued(
    state: &AppState,
    q: &crate::bus::Queued,
    payload: Vec<u8>,
) -> Result<u64, ApiError> {
    let mut h = HeaderMap::new();
    h.insert(
        "content-encoding",
        axum::http::HeaderValue::from_static("zstd"),
    );
    let (agent, stream, first) = (q.agent.clone(), q.stream.clone(), q.first);
    let (count, findings, lines) = tokio::task::spawn_blocking(move || {
        let lines = body_lines(&h, &payload)?;
        check_lines(&lines, &agent, &stream, first).map(|(n, f)| (n, f, lines))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("batch check: {e}")))??;
    if first + count as u64 - 1 != q.last {
        return Err(ApiError::BadRequest);
    }
    store(
        state, q.org, &q.agent, &q.stream, first, count, &findings, &lines,
    )
    .await
}

/// Stores the checked batch `lines` (`count` records from `first` of `agent`'s `stream`)
/// in `org`'s lake and its findings in the database, exactly once (see the module docs).
/// Returns the records stored now.
#[allow(
    clippy::too_many_arguments,
    reason = "one batch's parts, named at the two callers"
)]
async fn store(
    state: &AppState,
    org: i64,
    agent: &str,
    stream: &str,
    first: u64,
    count: usize,
    findings: &[FindingRow],
    lines: &[u8],
) -> Result<u64, ApiError> {
    let last = first + count as u64 - 1;
    let (first_i, last_i) = (first as i64, last as i64);
    let db = state.db();
    let lake = state.lakes().get(&db, org).await?;
    let mut lake = lake.lock().await;
    if lake.unresolved {
        resolve(&db, org, &lake.store).await?;
        lake.unresolved = false;
    }
    let acked: i64 = db
        .query_opt(
            "SELECT acked FROM ship_streams WHERE agent_id = $1 AND stream = $2",
            &[&agent, &stream],
        )
        .await?
        .map_or(0, |r| r.get(0));
    if last_i <= acked {
        db.execute(
            "UPDATE ship_streams SET duplicates = duplicates + $3
             WHERE agent_id = $1 AND stream = $2",
            &[&agent, &stream, &(count as i64)],
        )
        .await?;
        return Ok(0);
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
    insert_findings(&db, org, agent, findings).await?;
    // From the pending record on until the batch is recorded as stored, any way out of
    // this function leaves the lake to be settled before its next write: a pending
    // record left behind must not be read against what later batches add to the lake.
    lake.unresolved = true;
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
        &[&agent, &stream, &org, &gap, &from, &(n as i64), &at],
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
            &[&agent, &stream, &last_i, &(n as i64)],
        )
        .await;
    if let Err(e) = done {
        return Err(ApiError::Unavailable(format!("database: {e}")));
    }
    lake.unresolved = false;
    Ok(n)
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
            b"[2004]\n",
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
