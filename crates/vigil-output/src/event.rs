//! What the outputs read of an event: its time, severity and class, from its JSON.

use serde::Deserialize;

/// The few fields of an OCSF event the outputs' envelopes carry.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Head {
    /// ms since the epoch.
    pub time: Option<i64>,
    /// OCSF severity id.
    pub severity_id: Option<i64>,
    /// OCSF class name ("Detection Finding").
    pub class_name: Option<String>,
}

impl Head {
    /// The head of an event; an event that is not a JSON object (never the agent's) has
    /// an empty one.
    pub fn of(event: &[u8]) -> Head {
        // The agent writes these fields first, before any nested object: read only the
        // members before the first one (a tenth of a typical event), and the whole event
        // when that prefix does not have them all.
        if let Some(prefix) = scalar_prefix(event) {
            if let Ok(h) = serde_json::from_slice::<Head>(&prefix) {
                if h.time.is_some() && h.severity_id.is_some() && h.class_name.is_some() {
                    return h;
                }
            }
        }
        serde_json::from_slice(event).unwrap_or_default()
    }

    /// The event's time, or now.
    pub fn time_ms(&self) -> i64 {
        self.time.unwrap_or_else(vigil_event::time::now_ms)
    }
}

/// The event's leading members, up to the one whose value is the first object or
/// array, closed as an object of their own; `None` when there is no such cut. A cut
/// found inside a string leaves text that is not JSON (an open string, or a `\}`), so
/// the caller's parse fails and it reads the whole event.
fn scalar_prefix(event: &[u8]) -> Option<Vec<u8>> {
    let at = event
        .windows(3)
        .position(|w| w == b"\":{" || w == b"\":[")?;
    // Back to the comma before that member's key (keys hold no quotes or commas).
    let key_start = event[..at].iter().rposition(|&b| b == b'"')?;
    let comma = event[..key_start].iter().rposition(|&b| b == b',')?;
    let mut prefix = event[..comma].to_vec();
    prefix.push(b'}');
    Some(prefix)
}

/// This host's name (the kernel's), or `-` when it cannot be read.
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(e: &[u8]) -> (Option<i64>, Option<i64>, Option<String>) {
        let h: Head = serde_json::from_slice(e).unwrap_or_default();
        (h.time, h.severity_id, h.class_name)
    }

    fn fast(e: &[u8]) -> (Option<i64>, Option<i64>, Option<String>) {
        let h = Head::of(e);
        (h.time, h.severity_id, h.class_name)
    }

    #[test]
    fn the_prefix_read_agrees_with_the_whole_event() {
        let mut events: Vec<Vec<u8>> = vigil_event::example::attack_story(1_714_564_800_000)
            .iter()
            .map(|e| serde_json::to_vec(e).expect("json"))
            .collect();
        // Hostile strings before the first object, and fields after it.
        events.extend(
            [
                &br#"{"class_name":"a\":{b","severity_id":2,"time":5,"x":{"y":1}}"#[..],
                br#"{"class_name":"a\\","severity_id":2,"time":5,"x":[1]}"#,
                br#"{"class_name":"c","x":{"time":1},"severity_id":3,"time":7}"#,
                br#"{"n":1}"#,
                br#"not json"#,
            ]
            .map(<[u8]>::to_vec),
        );
        for e in &events {
            assert_eq!(fast(e), full(e), "{}", String::from_utf8_lossy(e));
        }
        assert!(fast(&events[0]).0.is_some());
    }
}
