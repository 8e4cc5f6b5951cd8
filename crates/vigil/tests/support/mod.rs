//! What the tests that run `vigil agent` as a process share.

use std::path::Path;
use std::process::Child;

/// The complete lines the agent wrote to `path` so far (a line still being written is
/// left out), each parsed as one JSON event; a line that is not JSON is an error naming
/// its number.
pub fn lines(path: &Path) -> Result<Vec<serde_json::Value>, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    complete
        .lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| format!("{}:{}: not one JSON event: {e}", path.display(), i + 1))
        })
        .collect()
}

/// A running agent, killed if a test fails before stopping it.
pub struct Agent(pub Child);

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
