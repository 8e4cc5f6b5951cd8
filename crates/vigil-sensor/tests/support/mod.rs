//! What the sensor tests share.

use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vigil_sensor::SensorBackend;

/// Polls until `done` says the events so far are enough, or `limit` passes.
pub fn collect(
    sensor: &mut SensorBackend,
    limit: Duration,
    mut done: impl FnMut(&[Value]) -> bool,
) -> Vec<Value> {
    let mut events = Vec::new();
    let start = Instant::now();
    while start.elapsed() < limit {
        sensor
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

/// A name no other test, run or process uses: this process's pid, a counter, and the
/// wall clock in ns. (Regression: it was `Instant::now().elapsed()`, about zero, so two
/// tests could share a temporary directory and one delete the other's.)
pub fn nonce() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("vigil-{}-{n}-{ns}", std::process::id())
}
