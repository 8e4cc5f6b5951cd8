//! What each server process does on NATS (`crate::bus`): it applies the control
//! messages every process sends (revocations, wake-ups) to its own connections, and it
//! takes the lakes no process holds (`crate::lake`'s lock) and stores their queued
//! batches through `crate::ingest`, findings and events each from a consumer of their
//! own.

use crate::bus::{Bus, Control, STREAMS};
use crate::error::{ApiError, ServerError};
use crate::state::{AppState, Revocation};
use async_nats::jetstream;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::time::Duration;

/// How often a process looks for lakes no process holds.
const CLAIM_EVERY: Duration = Duration::from_secs(1);

/// Starts this process's part: the control subscriber and the ingest workers. Returns
/// their tasks (aborted when the server stops).
pub async fn start(
    state: &AppState,
    bus: &Bus,
) -> Result<Vec<tokio::task::JoinHandle<()>>, ServerError> {
    let mut sub = bus.control_messages().await?;
    let st = state.clone();
    let control = tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            match serde_json::from_slice::<Control>(&m.payload) {
                Ok(Control::RevokeAgents(ids)) => st.revoke_here(Revocation::Agents(ids)),
                Ok(Control::RevokeOrg(org)) => st.revoke_here(Revocation::Org(org)),
                Ok(Control::Wake(agent)) => st.wake_here(&agent),
                Err(e) => tracing::warn!("NATS: a control message not understood: {e}"),
            }
        }
    });
    let st = state.clone();
    let b = bus.clone();
    let claim = tokio::spawn(async move { claim_lakes(st, b).await });
    Ok(vec![control, claim])
}

/// Each [`CLAIM_EVERY`]: takes the lakes of organisations no process holds and starts
/// their workers; restarts a worker that ended.
async fn claim_lakes(state: AppState, bus: Bus) {
    let mut workers = Workers::default();
    loop {
        workers.0.retain(|_, w| !w.is_finished());
        let db = state.db();
        // Organisations with agents: a lake is a store with threads of its own, not
        // opened for an organisation that has nothing to ship.
        let orgs: Vec<i64> = match db.query("SELECT DISTINCT org_id FROM agents", &[]).await {
            Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
            Err(e) => {
                tracing::debug!("ingest: cannot list organisations: {e}");
                Vec::new()
            }
        };
        for org in orgs {
            if STREAMS.iter().all(|s| workers.0.contains_key(&(org, *s))) {
                continue;
            }
            let held = state.lakes().holds(org).await;
            match state.lakes().try_get(&db, org).await {
                Ok(Some(_)) => {
                    if !held {
                        tracing::info!(org, "ingest: this process holds the lake");
                    }
                    for stream in STREAMS {
                        if workers.0.contains_key(&(org, stream)) {
                            continue;
                        }
                        let (st, b) = (state.clone(), bus.clone());
                        let w = tokio::spawn(async move { work(st, b, org, stream).await });
                        workers.0.insert((org, stream), w);
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(org, "ingest: {e:?}"),
            }
        }
        tokio::time::sleep(CLAIM_EVERY).await;
    }
}

/// The workers of the lakes a process holds, stopped with the claim loop that started
/// them (a JoinHandle dropped leaves its task running).
#[derive(Default)]
struct Workers(HashMap<(i64, &'static str), tokio::task::JoinHandle<()>>);

impl Drop for Workers {
    fn drop(&mut self) {
        for w in self.0.values() {
            w.abort();
        }
    }
}

/// Stores `org`'s queued batches of `stream`, one at a time, until an error of NATS ends it (the
/// claim loop starts it again).
async fn work(state: AppState, bus: Bus, org: i64, stream: &'static str) {
    let consumer = match bus.consumer(org, stream).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(org, "ingest: no consumer: {e}");
            return;
        }
    };
    loop {
        let batch = consumer
            .fetch()
            .max_messages(16)
            .expires(Duration::from_secs(1))
            .messages()
            .await;
        let mut batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(org, "ingest: NATS: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                return;
            }
        };
        while let Some(m) = batch.next().await {
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(org, "ingest: NATS: {e}");
                    break;
                }
            };
            let q = crate::bus::Queued::from_headers(org, m.headers.as_ref())
                .filter(|q| q.stream == stream);
            let Some(q) = q else {
                // Not a front door's message (nothing of this server publishes one):
                // never delivered again, and said loudly.
                tracing::error!(org, subject = %m.subject, "ingest: a message without a batch's headers is set aside");
                let _ = m.ack_with(jetstream::AckKind::Term).await;
                continue;
            };
            match crate::ingest::store_queued(&state, &q, m.payload.to_vec()).await {
                Ok(n) => {
                    tracing::debug!(org, agent = %q.agent, stream = %q.stream, first = q.first, stored = n, "ingest: stored");
                    if let Err(e) = m.double_ack().await {
                        // Delivered again after ACK_WAIT and recognised as stored.
                        tracing::warn!(org, "ingest: acknowledgement not confirmed: {e}");
                    }
                }
                Err(ApiError::BadRequest | ApiError::TooLarge) => {
                    tracing::error!(org, agent = %q.agent, first = q.first, "ingest: a queued batch that cannot be stored (malformed) is set aside");
                    let _ = m.ack_with(jetstream::AckKind::Term).await;
                }
                Err(e) => {
                    tracing::warn!(org, agent = %q.agent, first = q.first, "ingest: not stored yet: {e:?}");
                    let _ = m
                        .ack_with(jetstream::AckKind::Nak(Some(Duration::from_millis(500))))
                        .await;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}
