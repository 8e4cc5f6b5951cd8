//! Remote response: the actions a person asks for in the console (kill, quarantine,
//! isolate, lift), collected from the server with a long poll and carried out by the
//! pipeline's response stage, whose Remediation Activity records go out like every
//! event. The outcome goes back to the server with the next collection.
//!
//! The collector thread never acts itself: it hands each action to the response stage
//! through a channel and waits for the answer, so an action and the events around it
//! are recorded in one order. An action id carried out already (the server hands an
//! unanswered action out again after a while) is answered from memory, not done twice.

use super::{Link, LinkError};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

/// How long one collection waits at the server for an action.
const WAIT: Duration = Duration::from_secs(20);
/// How long the response stage may take to answer an action.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);
/// How many answered ids are remembered.
const REMEMBER: usize = 1024;

/// An action, as the server hands it out.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RemoteAction {
    /// Its id at the server.
    pub id: i64,
    /// `kill`, `quarantine`, `isolate` or `lift`.
    pub kind: String,
    /// What to act on (empty for `isolate` and `lift`).
    #[serde(default)]
    pub target: String,
}

/// What became of an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionOutcome {
    /// The action's id.
    pub id: i64,
    /// Whether it was done.
    pub ok: bool,
    /// What happened.
    pub detail: String,
    /// Whether the host is isolated afterwards (`None`: not known).
    pub isolated: Option<bool>,
}

/// An action handed to the response stage, and where its outcome goes.
#[derive(Debug)]
pub struct RemoteCommand {
    /// The action.
    pub action: RemoteAction,
    /// The answer.
    pub reply: Sender<ActionOutcome>,
}

#[derive(Debug, Deserialize)]
struct Collected {
    actions: Vec<RemoteAction>,
}

fn outcome_json(o: &ActionOutcome) -> Value {
    json!({ "id": o.id, "ok": o.ok, "detail": o.detail, "isolated": o.isolated })
}

/// Reports `results` and collects the actions waiting (waiting up to `wait` for one).
pub fn collect(
    link: &Link,
    results: &[ActionOutcome],
    wait: Duration,
) -> Result<Vec<RemoteAction>, LinkError> {
    let body = json!({
        "results": results.iter().map(outcome_json).collect::<Vec<_>>(),
        "wait_ms": wait.as_millis() as u64,
    });
    let answer = link.post_json("/agent/v1/actions", &body, wait + Duration::from_secs(10))?;
    serde_json::from_value::<Collected>(answer)
        .map(|c| c.actions)
        .map_err(|e| LinkError::Protocol {
            url: link.info.url.clone(),
            reason: e.to_string(),
        })
}

/// Collects actions from the server until `stop` is set, on a thread of its own, and
/// hands each to `to_stage` (the response stage's end is [`channel`]'s receiver).
pub fn spawn(
    link: Link,
    to_stage: Sender<RemoteCommand>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("vigil-actions".into())
        .spawn(move || {
            let mut answered: VecDeque<ActionOutcome> = VecDeque::new();
            let mut unsent: Vec<ActionOutcome> = Vec::new();
            let mut backoff = Duration::from_millis(250);
            while !stop.load(Ordering::Relaxed) {
                let actions = match collect(&link, &unsent, WAIT) {
                    Ok(a) => {
                        unsent.clear();
                        backoff = Duration::from_millis(250);
                        a
                    }
                    Err(e) => {
                        tracing::warn!("collecting response actions: {e}");
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                        continue;
                    }
                };
                for action in actions {
                    if let Some(done) = answered.iter().find(|o| o.id == action.id) {
                        unsent.push(done.clone());
                        continue;
                    }
                    tracing::info!(id = action.id, kind = %action.kind, target = %action.target, "response action from the server");
                    let outcome = carry_out(&to_stage, action);
                    if answered.len() >= REMEMBER {
                        answered.pop_front();
                    }
                    answered.push_back(outcome.clone());
                    unsent.push(outcome);
                }
            }
        })
}

/// Hands one action to the response stage and waits for its outcome.
fn carry_out(to_stage: &Sender<RemoteCommand>, action: RemoteAction) -> ActionOutcome {
    let id = action.id;
    let failed = |detail: &str| ActionOutcome {
        id,
        ok: false,
        detail: detail.to_string(),
        isolated: None,
    };
    let (reply, answer) = mpsc::channel();
    if to_stage.send(RemoteCommand { action, reply }).is_err() {
        return failed("the agent is stopping");
    }
    answer
        .recv_timeout(ANSWER_WITHIN)
        .unwrap_or_else(|_| failed("the agent did not carry the action out in time"))
}

/// The two ends between the collector and the response stage.
pub fn channel() -> (Sender<RemoteCommand>, Receiver<RemoteCommand>) {
    mpsc::channel()
}
