//! Remediation Activity records: every action on the host, whoever asked for it, as an
//! OCSF event naming the finding it answers, the target and the outcome.

use crate::config::{Action, Mode};
use crate::policy::FindingFacts;
use serde_json::{json, Map, Value as Json};
use vigil_event::model::{
    remediation_activity, remediation_status, severity, D3fTactic, D3fTechnique, D3fend, File,
    FileRemediationActivity, NetworkConnectionInfo, NetworkRemediationActivity, Process,
    ProcessRemediationActivity, Remediation,
};
use vigil_event::OcsfEvent;

/// The feature name Vigil reports response under.
pub const FEATURE: &str = "respond";

/// Who asked for an action.
#[derive(Debug, Clone)]
pub enum Cause<'a> {
    /// A finding, through the policy (rule number in the policy).
    Finding(&'a FindingFacts, usize),
    /// A person, with `vigil respond`, `vigil quarantine`, `vigil isolate` or `vigil
    /// rollback` (the command line).
    Manual(&'a str),
}

/// How an action went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `status_id` ([`remediation_status`]); for detect mode, Other.
    pub status_id: i32,
    /// What happened, in a sentence.
    pub detail: String,
}

impl Outcome {
    /// Done.
    pub fn success(detail: impl Into<String>) -> Outcome {
        Outcome {
            status_id: remediation_status::SUCCESS,
            detail: detail.into(),
        }
    }
    /// Not done: `status_id` says why (Failure, Does Not Exist, Partial, Unsupported,
    /// Error).
    pub fn failed(status_id: i32, detail: impl Into<String>) -> Outcome {
        Outcome {
            status_id,
            detail: detail.into(),
        }
    }
}

/// The D3FEND tactic, technique id and name of an action (`restore`: the inverse
/// actions: a file out of the vault, isolation lifted).
fn countermeasure(
    action: Action,
    restore: bool,
) -> (i32, &'static str, &'static str, &'static str) {
    use remediation_activity::{EVICT, ISOLATE, RESTORE};
    match (action, restore) {
        (Action::Kill, _) => (EVICT, "Evict", "D3-PT", "Process Termination"),
        (Action::Quarantine, false) => (EVICT, "Evict", "D3-FEV", "File Eviction"),
        (Action::Isolate, false) => (ISOLATE, "Isolate", "D3-NI", "Network Isolation"),
        (Action::Block, false) => (ISOLATE, "Isolate", "D3-EDL", "Executable Denylisting"),
        (Action::Rollback, _) | (Action::Quarantine, true) => {
            (RESTORE, "Restore", "D3-RF", "Restore File")
        }
        (Action::Isolate, true) => (RESTORE, "Restore", "D3-RNA", "Restore Network Access"),
        (Action::Block, true) => (RESTORE, "Restore", "D3-RE", "Restore Access"),
    }
}

/// What every record shares.
pub struct Common<'a> {
    /// The action.
    pub action: Action,
    /// Whether it is the inverse (restore from the vault, isolation lifted, unblock).
    pub restore: bool,
    /// Detect (recorded only) or protect (done).
    pub mode: Mode,
    /// Who asked.
    pub cause: Cause<'a>,
    /// The command id: one per action and target.
    pub command_uid: String,
    /// The outcome (for detect mode: what would have been done, status Other).
    pub outcome: Outcome,
    /// More of what happened, for `unmapped` (processes killed, vault id, ...).
    pub extra: Map<String, Json>,
    /// When (ms since the epoch).
    pub time: i64,
}

macro_rules! fill {
    ($e:ident, $c:ident) => {{
        let (activity, tactic, tech_uid, tech_name) = countermeasure($c.action, $c.restore);
        $e.activity_id = activity;
        $e.command_uid = $c.command_uid;
        $e.countermeasures = vec![D3fend {
            d3f_tactic: Some(D3fTactic {
                name: Some(tactic.into()),
                uid: None,
            }),
            d3f_technique: Some(D3fTechnique {
                name: Some(tech_name.into()),
                uid: Some(tech_uid.into()),
            }),
            version: None,
        }];
        let mut unmapped = $c.extra;
        unmapped.insert("action".into(), json!($c.action.name()));
        unmapped.insert("mode".into(), json!($c.mode.name()));
        let verb = if $c.mode == Mode::Detect {
            "would have"
        } else {
            "did"
        };
        $e.remediation = Some(Remediation {
            desc: format!("{verb}: {}", $c.outcome.detail),
        });
        match &$c.cause {
            Cause::Finding(f, rule) => {
                $e.severity_id = f.severity_id.clamp(severity::UNKNOWN, severity::FATAL);
                $e.metadata.correlation_uid = f.story.clone();
                unmapped.insert("finding_uid".into(), json!(f.uid));
                if let Some(r) = &f.rule_uid {
                    unmapped.insert("rule_uid".into(), json!(r));
                }
                if let Some(t) = &f.title {
                    unmapped.insert("rule_title".into(), json!(t));
                }
                unmapped.insert("policy_rule".into(), json!(rule));
            }
            Cause::Manual(command) => {
                $e.severity_id = severity::INFORMATIONAL;
                unmapped.insert("requested_by".into(), json!(command));
            }
        }
        $e.status_id = Some(if $c.mode == Mode::Detect {
            remediation_status::OTHER
        } else {
            $c.outcome.status_id
        });
        $e.status_detail = Some($c.outcome.detail);
        $e.message = Some(format!(
            "{} ({}): {}",
            $c.action.name(),
            $c.mode.name(),
            $e.status_detail.as_deref().unwrap_or_default()
        ));
        $e.unmapped = Some(unmapped);
    }};
}

/// A Process Remediation Activity record.
pub fn process(c: Common<'_>, target: Process) -> OcsfEvent {
    let mut e = ProcessRemediationActivity::new(0, c.time, FEATURE, target);
    fill!(e, c);
    e.into()
}

/// A File Remediation Activity record.
pub fn file(c: Common<'_>, target: File) -> OcsfEvent {
    let mut e = FileRemediationActivity::new(0, c.time, FEATURE, target);
    fill!(e, c);
    e.into()
}

/// A Network Remediation Activity record (the host's traffic, both ways).
pub fn network(c: Common<'_>) -> OcsfEvent {
    let info = NetworkConnectionInfo {
        direction_id: vigil_event::model::direction::OTHER,
        direction: Some("Inbound and Outbound".into()),
        ..NetworkConnectionInfo::default()
    };
    let mut e = NetworkRemediationActivity::new(0, c.time, FEATURE, info);
    fill!(e, c);
    e.into()
}

/// A process object for a record, from what /proc says of a pid.
pub fn process_of(pid: i32, boot_id: &str) -> Process {
    let info = crate::procs::ProcInfo::read(pid);
    let exe = crate::procs::exe(pid);
    Process {
        pid: Some(pid),
        uid: info
            .as_ref()
            .map(|i| crate::procs::process_uid(boot_id, pid, i.start_ticks)),
        name: info.map(|i| i.comm),
        cmd_line: crate::procs::cmd_line(pid),
        file: exe.map(|p| file_of(&p)),
        ..Process::default()
    }
}

/// A file object for a record: its name and path.
pub fn file_of(path: &std::path::Path) -> File {
    File {
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        type_id: vigil_event::model::file_type::REGULAR,
        path: Some(path.to_string_lossy().into_owned()),
        parent_folder: path.parent().map(|p| p.to_string_lossy().into_owned()),
        ..File::default()
    }
}
