//! Event time: reading timestamps in the forms logs write them.

use serde_json::Value;

pub use vigil_event::time::{epoch_number, format_ms, parse_timestamp};

/// The time of a JSON value: an RFC 3339 string or an epoch number.
pub fn value_time(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => parse_timestamp(s),
        Value::Number(n) => n.as_f64().and_then(epoch_number),
        Value::Object(o) => {
            // `TimeCreated` as the evtx crate renders it.
            o.get("#attributes")
                .and_then(|a| a.get("SystemTime"))
                .and_then(value_time)
        }
        _ => None,
    }
}
