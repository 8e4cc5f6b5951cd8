//! The agent's side of content updates: a thread reads the `current` link every few
//! seconds (one `readlink`); when it names another version, the thread loads and
//! checks that bundle with the same code as `vigil content check` ([`super::load`]),
//! off the event thread, and hands the result to the run loop, which swaps the content
//! in between two events or reports the refusal. The old content runs until then, and
//! goes on running after a refusal.

use super::store::{linked, version_dir, CURRENT};
use super::{load, Content, Refused, Settings};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::Duration;

/// What the watcher found.
#[derive(Debug)]
pub enum Update {
    /// A new bundle, checked: to run from the next event on.
    Ready(Box<Content>),
    /// A new bundle that failed its check: the old content keeps running.
    Refused(Refused),
}

/// The watching thread; it ends when this is dropped.
pub struct Watcher {
    updates: Receiver<Update>,
    closed: Arc<AtomicBool>,
}

impl Watcher {
    /// Watches `dir/current` every `every`; `running` is the version that runs now (a
    /// link to it is no news).
    pub fn start(
        dir: PathBuf,
        settings: Settings,
        running: Option<String>,
        every: Duration,
    ) -> std::io::Result<Watcher> {
        let (tx, updates) = mpsc::channel();
        let closed = Arc::new(AtomicBool::new(false));
        let done = Arc::clone(&closed);
        std::thread::Builder::new()
            .name("content".into())
            // Loading compiles rules recursively: room for what the checks allow.
            .stack_size(64 << 20)
            .spawn(move || {
                let mut seen = running;
                let step = Duration::from_millis(50).min(every);
                let mut waited = Duration::ZERO;
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(step);
                    waited += step;
                    if waited < every {
                        continue;
                    }
                    waited = Duration::ZERO;
                    let now = linked(&dir, CURRENT);
                    if now == seen {
                        continue;
                    }
                    seen.clone_from(&now);
                    let Some(version) = now else { continue };
                    tracing::info!(version, "new content: checking it");
                    let update = match load(&version_dir(&dir, &version), &settings) {
                        Ok(c) => Update::Ready(Box::new(c)),
                        Err(r) => Update::Refused(r),
                    };
                    if tx.send(update).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Watcher { updates, closed })
    }

    /// The next update, if one is ready (never waits).
    pub fn try_next(&self) -> Option<Update> {
        self.updates.try_recv().ok()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}
