//! Splunk HTTP Event Collector: batches of JSON envelopes (`time`, `host`, `source`,
//! `sourcetype`, `index`, `event`) POSTed to `/services/collector/event` with
//! `Authorization: Splunk TOKEN`.
//!
//! A 2xx answer acknowledges the batch (the collector has taken it; indexer
//! acknowledgement, `/services/collector/ack`, is not polled: a channel is sent, so
//! tokens that require one work). 400 refuses the batch for good, except that an
//! `invalid-event-number` says the events before it were taken (they count as sent) and
//! the ones after it are retried; 413 splits the batch; 401/403 (a token refused or
//! disabled), 429 and 5xx are retried, so fixing the token loses nothing that fit in the
//! buffer.

use crate::config::SplunkConfig;
use crate::event::Head;
use crate::http::{Client, Url};
use crate::net::Endpoint;
use crate::queue::{Deliver, Item, Outcome};
use std::time::Duration;

/// Sends to a collector.
pub(crate) struct HecDeliver {
    client: Client,
    path: String,
    auth: String,
    channel: String,
    /// `,"host":..,"source":..,"sourcetype":..[,"index":..],"event":` rendered once.
    envelope: String,
    body: Vec<u8>,
}

impl HecDeliver {
    /// A sender for this output.
    pub fn new(c: &SplunkConfig) -> Result<Self, (&'static str, String)> {
        let url = Url::parse(&c.url).map_err(|m| ("url", m))?;
        let tls = if url.tls {
            Some((crate::tls::client_config(&c.common())?, url.host.clone()))
        } else {
            None
        };
        let path = if url.path.is_empty() {
            "/services/collector/event".to_string()
        } else {
            url.path.clone()
        };
        let host = c.host.clone().unwrap_or_else(crate::event::hostname);
        let q = |s: &str| serde_json::Value::from(s).to_string();
        let mut envelope = format!(
            ",\"host\":{},\"source\":{},\"sourcetype\":{}",
            q(&host),
            q(&c.source),
            q(&c.sourcetype)
        );
        if let Some(i) = &c.index {
            envelope.push_str(&format!(",\"index\":{}", q(i)));
        }
        envelope.push_str(",\"event\":");
        let endpoint = Endpoint {
            host: url.host.clone(),
            port: url.port,
            tls,
        };
        Ok(HecDeliver {
            client: Client::new(
                endpoint,
                url.host_header(),
                Duration::from_millis(c.timeout_ms),
            ),
            path,
            auth: format!("Splunk {}", c.token),
            channel: channel_id(),
            envelope,
            body: Vec::new(),
        })
    }
}

/// A random channel id, shaped as a UUID (what HEC expects).
fn channel_id() -> String {
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()).rotate_left(40);
    let mut bytes = [0u8; 16];
    for b in &mut bytes {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *b = (seed >> 33) as u8;
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

impl Deliver for HecDeliver {
    fn deliver(&mut self, batch: &[Vec<u8>]) -> Outcome {
        self.body.clear();
        for e in batch {
            let t = Head::of(e).time_ms();
            let (s, ms) = (t.div_euclid(1000), t.rem_euclid(1000));
            self.body
                .extend_from_slice(format!("{{\"time\":{s}.{ms:03}").as_bytes());
            self.body.extend_from_slice(self.envelope.as_bytes());
            self.body.extend_from_slice(e);
            self.body.extend_from_slice(b"}\n");
        }
        let headers = [
            ("Authorization", self.auth.as_str()),
            ("Content-Type", "application/json"),
            ("X-Splunk-Request-Channel", self.channel.as_str()),
        ];
        let r = match self.client.post(&self.path, &headers, &self.body) {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let answer = || {
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let text = v["text"].as_str().unwrap_or("").to_string();
            (text, v["code"].as_i64(), v["invalid-event-number"].as_u64())
        };
        match r.status {
            200..=299 => Outcome::Sent,
            413 => Outcome::TooLarge,
            400 => {
                let (text, code, bad) = answer();
                let why = format!("HEC 400: {text} (code {})", code.unwrap_or(-1));
                match bad.and_then(|n| usize::try_from(n).ok()) {
                    Some(n) if n < batch.len() => Outcome::Items(
                        (0..batch.len())
                            .map(|i| match i.cmp(&n) {
                                std::cmp::Ordering::Less => Item::Sent,
                                std::cmp::Ordering::Equal => Item::Reject(why.clone()),
                                std::cmp::Ordering::Greater => {
                                    Item::Retry("after an invalid event".into())
                                }
                            })
                            .collect(),
                    ),
                    _ => Outcome::Rejected(why),
                }
            }
            401 | 403 | 429 | 500..=599 => {
                let (text, code, _) = answer();
                Outcome::Failed(format!(
                    "HEC {}: {text} (code {})",
                    r.status,
                    code.unwrap_or(-1)
                ))
            }
            s => Outcome::Rejected(format!("HEC {s}: {}", answer().0)),
        }
    }
}
