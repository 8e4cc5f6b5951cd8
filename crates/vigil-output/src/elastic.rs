//! Elasticsearch and OpenSearch: the `_bulk` API, NDJSON of an action line
//! (`{"create":{"_index":...}}`) and the event (with its time added as `@timestamp`) per
//! event, ending with a newline.
//!
//! A 2xx answer is read item by item: an item with a 2xx status is sent; 429 and 5xx
//! items are retried (alone: the others are not sent twice); any other status (a 400
//! mapping error, a 409 conflict) refuses the event for good, counted and logged with
//! the server's reason. A request answered 413 is split; 401, 403, 429 and 5xx for the
//! request are retried; other 4xx refuse the batch.

use crate::config::{BulkAction, ElasticConfig};
use crate::event::Head;
use crate::http::{Client, Url};
use crate::net::Endpoint;
use crate::queue::{Deliver, Item, Outcome};
use std::time::Duration;

/// Sends to a cluster.
pub(crate) struct BulkDeliver {
    client: Client,
    path: String,
    /// The action line, with its newline.
    action: String,
    /// `{"@timestamp":` (the configured field), or `None`.
    stamp: Option<String>,
    auth: Option<String>,
    body: Vec<u8>,
}

impl BulkDeliver {
    /// A sender for this output.
    pub fn new(c: &ElasticConfig) -> Result<Self, (&'static str, String)> {
        let url = Url::parse(&c.url).map_err(|m| ("url", m))?;
        let tls = if url.tls {
            Some((crate::tls::client_config(&c.common())?, url.host.clone()))
        } else {
            None
        };
        let verb = match c.action {
            BulkAction::Create => "create",
            BulkAction::Index => "index",
        };
        let q = |s: &str| serde_json::Value::from(s).to_string();
        let auth = match (&c.username, &c.password, &c.api_key) {
            (Some(u), Some(p), _) => Some(format!(
                "Basic {}",
                vigil_event::encode::base64(format!("{u}:{p}").as_bytes())
            )),
            (_, _, Some(k)) => Some(format!("ApiKey {k}")),
            _ => None,
        };
        let endpoint = Endpoint {
            host: url.host.clone(),
            port: url.port,
            tls,
        };
        Ok(BulkDeliver {
            client: Client::new(
                endpoint,
                url.host_header(),
                Duration::from_millis(c.timeout_ms),
            ),
            path: format!("{}/_bulk", url.path),
            action: format!("{{\"{verb}\":{{\"_index\":{}}}}}\n", q(&c.index)),
            stamp: (!c.timestamp_field.is_empty()).then(|| format!("{{{}:", q(&c.timestamp_field))),
            auth,
            body: Vec::new(),
        })
    }

    fn body(&mut self, batch: &[Vec<u8>]) {
        self.body.clear();
        for e in batch {
            self.body.extend_from_slice(self.action.as_bytes());
            match (&self.stamp, e.strip_prefix(b"{")) {
                (Some(stamp), Some(rest)) => {
                    let t = vigil_event::time::format_ms(Head::of(e).time_ms());
                    self.body.extend_from_slice(stamp.as_bytes());
                    self.body.push(b'"');
                    self.body.extend_from_slice(t.as_bytes());
                    self.body.push(b'"');
                    if !rest.trim_ascii_start().starts_with(b"}") {
                        self.body.push(b',');
                    }
                    self.body.extend_from_slice(rest);
                }
                _ => self.body.extend_from_slice(e),
            }
            self.body.push(b'\n');
        }
    }
}

impl Deliver for BulkDeliver {
    fn deliver(&mut self, batch: &[Vec<u8>]) -> Outcome {
        self.body(batch);
        let mut headers = vec![("Content-Type", "application/x-ndjson")];
        if let Some(a) = &self.auth {
            headers.push(("Authorization", a.as_str()));
        }
        let r = match self.client.post(&self.path, &headers, &self.body) {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let excerpt = || String::from_utf8_lossy(&r.body[..r.body.len().min(300)]).into_owned();
        match r.status {
            200..=299 => items(&r.body, batch.len()),
            413 => Outcome::TooLarge,
            401 | 403 | 429 | 500..=599 => {
                Outcome::Failed(format!("bulk {}: {}", r.status, excerpt()))
            }
            s => Outcome::Rejected(format!("bulk {s}: {}", excerpt())),
        }
    }
}

/// The fate of each event from a bulk response.
fn items(body: &[u8], n: usize) -> Outcome {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Outcome::Failed("a bulk response that is not JSON".into());
    };
    if v["errors"] == serde_json::Value::Bool(false) {
        return Outcome::Sent;
    }
    let Some(list) = v["items"].as_array() else {
        return Outcome::Failed("a bulk response with errors but no items".into());
    };
    if list.len() != n {
        return Outcome::Failed(format!(
            "a bulk response of {} items for {n} events",
            list.len()
        ));
    }
    Outcome::Items(
        list.iter()
            .map(|it| {
                // Each item is `{ACTION: {status, error?}}`.
                let inner = it
                    .as_object()
                    .and_then(|o| o.values().next())
                    .cloned()
                    .unwrap_or_default();
                let status = inner["status"].as_u64().unwrap_or(0);
                let why = || {
                    let e = &inner["error"];
                    format!(
                        "{status} {}: {}",
                        e["type"].as_str().unwrap_or("?"),
                        e["reason"].as_str().unwrap_or("")
                    )
                };
                match status {
                    200..=299 => Item::Sent,
                    429 | 500..=599 => Item::Retry(why()),
                    _ => Item::Reject(why()),
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_items_are_sent_retried_or_refused_by_status() {
        let body = br#"{"took":3,"errors":true,"items":[
            {"create":{"_index":"x","status":201}},
            {"create":{"_index":"x","status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}},
            {"create":{"_index":"x","status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [time]"}}},
            {"create":{"_index":"x","status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}}]}"#;
        let Outcome::Items(items) = items(body, 4) else {
            panic!("items")
        };
        assert_eq!(items[0], Item::Sent);
        assert!(matches!(&items[1], Item::Retry(r) if r.starts_with("429 es_rejected")));
        assert_eq!(
            items[2],
            Item::Reject("400 mapper_parsing_exception: failed to parse field [time]".into())
        );
        assert!(matches!(&items[3], Item::Retry(_)));
        assert!(matches!(
            super::items(br#"{"errors":false,"items":[]}"#, 2),
            Outcome::Sent
        ));
        assert!(matches!(
            super::items(br#"{"errors":true,"items":[]}"#, 2),
            Outcome::Failed(_)
        ));
        assert!(matches!(super::items(b"<html>", 2), Outcome::Failed(_)));
    }
}
