//! The response stage: after detection, it follows the stream and answers each new
//! finding with what the `[respond]` policy calls for ([`vigil_respond::Responder`]).
//! Its records (Remediation Activity) go on to the sinks like every event.

use crate::content::Content;
use crate::pipeline::Stage;
use crate::server::actions::{ActionOutcome, RemoteCommand};
use std::sync::mpsc::Receiver;
use vigil_event::OcsfEvent;
use vigil_respond::config::PolicyRule;
use vigil_respond::Responder;

/// Answers findings ([`Responder`]).
pub struct RespondStage {
    responder: Responder,
    started: bool,
    /// The configuration's policy rules: what runs when content brings none.
    configured: Vec<PolicyRule>,
    /// Actions a person asked for at the server (`crate::server::actions`).
    remote: Option<Receiver<RemoteCommand>>,
}

impl RespondStage {
    /// A stage around a responder.
    pub fn new(responder: Responder) -> Self {
        RespondStage {
            configured: responder.config().policy.clone(),
            responder,
            started: false,
            remote: None,
        }
    }

    /// Also carries out the actions that arrive on `remote` (from the server).
    pub fn with_remote(mut self, remote: Receiver<RemoteCommand>) -> Self {
        self.remote = Some(remote);
        self
    }

    /// Carries out the actions from the server waiting on the channel.
    fn remote_actions(&mut self, now_ms: i64, emit: &mut Vec<OcsfEvent>) {
        let Some(rx) = &self.remote else { return };
        let commands: Vec<RemoteCommand> = rx.try_iter().collect();
        for RemoteCommand { action, reply } in commands {
            let cause = format!("server action {} ({})", action.id, action.kind);
            let (ok, detail) = self.responder.remote(
                &action.kind,
                &action.target,
                &vigil_respond::record::Cause::Manual(&cause),
                now_ms,
                emit,
            );
            let config = self.responder.config();
            let isolated =
                vigil_respond::isolate::Isolation::new(&config.isolate.nft, &config.state_dir)
                    .asked();
            // The collector may have given up waiting: nothing to do then.
            let _ = reply.send(ActionOutcome {
                id: action.id,
                ok,
                detail,
                isolated: Some(isolated),
            });
        }
    }

    /// Answers with the policy of content: its own rules, or the configuration's when
    /// it has none.
    pub fn set_content_policy(&mut self, policy: Option<&[PolicyRule]>) {
        let rules = policy.map_or_else(|| self.configured.clone(), <[PolicyRule]>::to_vec);
        self.responder.set_policy(rules);
    }
}

impl Stage for RespondStage {
    fn name(&self) -> &'static str {
        "respond"
    }
    fn process(&mut self, event: &mut OcsfEvent, now_ms: i64, emit: &mut Vec<OcsfEvent>) {
        if !self.started {
            // The agent's first event (its Start): what response does at start.
            self.started = true;
            self.responder.startup(now_ms, emit);
        }
        if let OcsfEvent::Finding(_) = event {
            self.responder.on_finding(event, now_ms, emit);
        } else {
            self.responder.observe(event, now_ms, emit);
        }
        // Refused execs are reported as they happen, not at the next tick.
        self.responder.drain_guard(now_ms, emit);
    }
    fn tick(&mut self, now_ms: i64, emit: &mut Vec<OcsfEvent>) {
        self.responder.tick(now_ms, emit);
    }
    fn poll(&mut self, now_ms: i64, emit: &mut Vec<OcsfEvent>) {
        self.remote_actions(now_ms, emit);
    }
    fn replace_content(&mut self, content: &mut Content, _now_ms: i64, _emit: &mut Vec<OcsfEvent>) {
        self.set_content_policy(content.policy.as_deref());
    }
    fn finish(&mut self, now_ms: i64, emit: &mut Vec<OcsfEvent>) {
        self.responder.tick(now_ms, emit);
        self.responder.tamper_stop();
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        let s = self.responder.stats();
        let mut c = vec![
            ("respond_findings", s.findings),
            ("respond_done", s.done),
            ("respond_recorded", s.recorded),
            ("respond_repeats", s.repeats),
            ("respond_failed", s.failed),
            ("respond_late_kills", s.late_kills),
            ("journal_skipped", s.journal_skipped),
            ("tamper_findings", s.tamper_findings),
        ];
        c.extend(self.responder.guard_counters());
        c
    }
}
