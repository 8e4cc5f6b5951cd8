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
        serde_json::from_slice(event).unwrap_or_default()
    }

    /// The event's time, or now.
    pub fn time_ms(&self) -> i64 {
        self.time.unwrap_or_else(vigil_event::time::now_ms)
    }
}

/// This host's name (the kernel's), or `-` when it cannot be read.
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "-".into())
}
