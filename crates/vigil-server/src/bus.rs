//! NATS between server processes (`vigil server run --nats URL`), the connection and
//! its messages (what each process does with them: the `relay` module): JetStream carries
//! agents' batches from any process's front door to the process that owns the
//! organisation's lake, and a plain subject carries revocations and wake-ups to every
//! process.
//!
//! * **The ingest stream** `VIGIL_INGEST` (file storage, work-queue retention: a
//!   message is deleted once stored) takes subjects `vigil.ingest.<org>.<stream>`
//!   (`events`, `findings`). A front door
//!   publishes a checked batch with its agent, stream and sequences in headers and its
//!   `Nats-Msg-Id` (`agent/stream/first/last`, so a batch sent again within the
//!   stream's duplicate window is held once), and answers the agent only when the
//!   stream has acknowledged it. When NATS cannot be reached, or the stream is full
//!   (discard new), the agent is answered 503 and keeps the batch in its queue.
//! * **Ingest workers.** Every process looks each second for organisations (with
//!   agents) whose lake no process holds (the lake's lock) and takes them. For
//!   each lake it owns it reads two durable pull consumers, `ingest-<org>-findings`
//!   and `ingest-<org>-events` (each filtered on its subject, one message in flight, so
//!   an agent's batches of a stream are stored in the order it sent them; findings
//!   never wait behind a backlog of events, only behind the one events batch being
//!   written), stores each batch through `ingest` (exactly once, whatever is
//!   redelivered) and acknowledges it after. A process killed mid-batch releases its
//!   locks with its life; another process takes the lake, its recovery settles what
//!   the dead one left, and the unacknowledged batch is delivered again after
//!   [`ACK_WAIT`].
//! * **Control** (`vigil.control`): revocations and wake-ups of an agent's waiting
//!   action collection, published by the process that makes them and applied by every
//!   process, so a connection held by any process closes, and an action queued through
//!   any process reaches its agent at once.

use crate::error::{ApiError, ServerError};
use async_nats::jetstream::{self, consumer, stream};
use std::time::Duration;

/// The JetStream stream of agents' batches.
pub const STREAM: &str = "VIGIL_INGEST";
/// The subject of control messages.
pub const CONTROL: &str = "vigil.control";
/// How long a batch delivered to a worker may stay unacknowledged before it is delivered
/// again (to whichever process holds the lake by then).
pub const ACK_WAIT: Duration = Duration::from_secs(10);
/// The streams of agents' records, each with its subject and consumer per organisation.
pub const STREAMS: [&str; 2] = ["findings", "events"];

/// A batch on its way through JetStream: whose it is and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// The agent's organisation.
    pub org: i64,
    /// The agent.
    pub agent: String,
    /// Its stream (`events`, `findings`).
    pub stream: String,
    /// The batch's first sequence.
    pub first: u64,
    /// Its last.
    pub last: u64,
}

const H_AGENT: &str = "Vigil-Agent";
const H_STREAM: &str = "Vigil-Stream";
const H_FIRST: &str = "Vigil-First";
const H_LAST: &str = "Vigil-Last";

impl Queued {
    fn headers(&self) -> async_nats::HeaderMap {
        let mut h = async_nats::HeaderMap::new();
        h.insert(H_AGENT, self.agent.as_str());
        h.insert(H_STREAM, self.stream.as_str());
        h.insert(H_FIRST, self.first.to_string().as_str());
        h.insert(H_LAST, self.last.to_string().as_str());
        h.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!(
                "{}/{}/{}/{}",
                self.agent, self.stream, self.first, self.last
            )
            .as_str(),
        );
        h
    }

    /// The batch a message of `org`'s subject describes; `None` for headers that are
    /// missing or wrong (no front door of this server publishes such a message).
    pub(crate) fn from_headers(org: i64, h: Option<&async_nats::HeaderMap>) -> Option<Queued> {
        let h = h?;
        let get = |k: &str| h.get(k).map(|v| v.as_str().to_string());
        let stream = get(H_STREAM)?;
        if stream != "events" && stream != "findings" {
            return None;
        }
        let q = Queued {
            org,
            agent: get(H_AGENT)?,
            stream,
            first: get(H_FIRST)?.parse().ok()?,
            last: get(H_LAST)?.parse().ok()?,
        };
        (q.first >= 1 && q.last >= q.first).then_some(q)
    }
}

/// A control message.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Control {
    /// Close these agents' connections.
    RevokeAgents(Vec<String>),
    /// Close every connection of this organisation's agents.
    RevokeOrg(i64),
    /// Wake this agent's waiting action collection.
    Wake(String),
}

/// The connection to NATS.
#[derive(Debug, Clone)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
}

impl Bus {
    /// Connects to `url` and makes sure the ingest stream exists.
    pub async fn connect(url: &str) -> Result<Bus, ServerError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            ServerError::Invalid(format!("NATS at {url}: {what}: {e}"))
        };
        let client = async_nats::ConnectOptions::new()
            .name("vigil-server")
            .connection_timeout(Duration::from_secs(5))
            // Kept trying for ever: a NATS restart is an outage, not the server's end.
            .max_reconnects(None)
            .connect(url)
            .await
            .map_err(|e| bad("cannot connect", &e))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(Duration::from_secs(5));
        let max = client.server_info().max_payload;
        js.get_or_create_stream(stream::Config {
            name: STREAM.to_string(),
            subjects: vec!["vigil.ingest.>".to_string()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::WorkQueue,
            // Full: new batches are refused (the agents keep them), none dropped.
            discard: stream::DiscardPolicy::New,
            duplicate_window: Duration::from_secs(120),
            max_message_size: i32::try_from(max).unwrap_or(i32::MAX),
            ..Default::default()
        })
        .await
        .map_err(|e| bad("cannot make the ingest stream", &e))?;
        Ok(Bus { client, js })
    }

    /// Publishes a checked batch (`payload`: its JSON lines, zstd) and waits until the
    /// stream holds it.
    pub async fn publish(&self, q: &Queued, payload: Vec<u8>) -> Result<(), ApiError> {
        let unavailable = |e: &dyn std::fmt::Display| {
            ApiError::Unavailable(format!("NATS: the batch was not queued: {e}"))
        };
        if payload.len() + 512 > self.client.server_info().max_payload {
            return Err(ApiError::TooLarge);
        }
        let ack = self
            .js
            .publish_with_headers(
                format!("vigil.ingest.{}.{}", q.org, q.stream),
                q.headers(),
                payload.into(),
            )
            .await
            .map_err(|e| unavailable(&e))?
            .await
            .map_err(|e| unavailable(&e))?;
        if ack.duplicate {
            tracing::debug!(agent = %q.agent, first = q.first, "a batch queued again");
        }
        Ok(())
    }

    /// Sends a control message to every process (this one included).
    pub fn control(&self, c: &Control) {
        let Ok(body) = serde_json::to_vec(c) else {
            return;
        };
        let client = self.client.clone();
        tokio::spawn(async move {
            if let Err(e) = client.publish(CONTROL, body.into()).await {
                tracing::warn!("NATS: a control message was not sent: {e}");
            }
        });
    }

    /// The control messages every process sends.
    pub async fn control_messages(&self) -> Result<async_nats::Subscriber, ServerError> {
        self.client
            .subscribe(CONTROL)
            .await
            .map_err(|e| ServerError::Invalid(format!("NATS: cannot subscribe to {CONTROL}: {e}")))
    }

    /// The durable consumer of `org`'s batches of `stream` (made when missing): one
    /// message in flight, so that an agent's batches are stored in the order it sent
    /// them.
    pub async fn consumer(
        &self,
        org: i64,
        stream: &str,
    ) -> Result<consumer::Consumer<consumer::pull::Config>, String> {
        let name = format!("ingest-{org}-{stream}");
        let js_stream = self
            .js
            .get_stream(STREAM)
            .await
            .map_err(|e| e.to_string())?;
        js_stream
            .get_or_create_consumer::<consumer::pull::Config>(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: format!("vigil.ingest.{org}.{stream}"),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: ACK_WAIT,
                    max_ack_pending: 1,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_goes_through_its_headers_and_back() {
        let q = Queued {
            org: 7,
            agent: "a1".into(),
            stream: "events".into(),
            first: 10,
            last: 19,
        };
        let h = q.headers();
        assert_eq!(
            h.get(async_nats::header::NATS_MESSAGE_ID)
                .map(|v| v.as_str()),
            Some("a1/events/10/19")
        );
        assert_eq!(Queued::from_headers(7, Some(&h)), Some(q.clone()));
        assert_eq!(Queued::from_headers(7, None), None);
        for (k, v) in [
            (H_STREAM, "other"),
            (H_FIRST, "x"),
            (H_FIRST, "0"),
            (H_LAST, "9"),
        ] {
            let mut bad = q.headers();
            bad.insert(k, v);
            assert_eq!(Queued::from_headers(7, Some(&bad)), None, "{k}: {v}");
        }
    }

    #[test]
    fn control_messages_are_strict_json() {
        let m = serde_json::to_string(&Control::RevokeOrg(3)).expect("json");
        assert_eq!(m, r#"{"revoke_org":3}"#);
        assert!(serde_json::from_str::<Control>(r#"{"revoke_all":1}"#).is_err());
        assert!(matches!(
            serde_json::from_str::<Control>(r#"{"wake":"a"}"#),
            Ok(Control::Wake(a)) if a == "a"
        ));
    }
}
