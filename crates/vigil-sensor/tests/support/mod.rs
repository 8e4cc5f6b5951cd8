//! What the sensor tests share.

use serde_json::Value;
use std::time::{Duration, Instant};
use vigil_sensor::Source;

/// Polls until `done` says the events so far are enough, or `limit` passes.
pub fn collect(
    source: &mut Source,
    limit: Duration,
    mut done: impl FnMut(&[Value]) -> bool,
) -> Vec<Value> {
    let mut events = Vec::new();
    let start = Instant::now();
    while start.elapsed() < limit {
        source
            .poll(Duration::from_millis(50), &mut |e| events.push(e.to_json()))
            .expect("poll");
        if done(&events) {
            break;
        }
    }
    events
}

/// The Terminate event of process `pid`.
pub fn exit_of(events: &[Value], pid: u32) -> Option<&Value> {
    events
        .iter()
        .find(|e| e["class_uid"] == 1007 && e["activity_id"] == 2 && e["process"]["pid"] == pid)
}
