//! The policy, pure: which actions a Detection Finding calls for, and in which mode.
//! No I/O: the same code decides in the agent and in `vigil respond plan` over recorded
//! findings.

pub use crate::config::{is_sha256, Tag};
use crate::config::{Action, Mode, RespondConfig};
use std::collections::HashSet;
use vigil_event::model::{DetectionFinding, File, Process};
use vigil_event::OcsfEvent;

impl Tag {
    fn matches(&self, f: &FindingFacts) -> bool {
        match self {
            Tag::Technique(t) => f.techniques.iter().any(|x| {
                x == t
                    || (x.len() > t.len()
                        && x.starts_with(t.as_str())
                        && x.as_bytes()[t.len()] == b'.')
            }),
            Tag::TacticId(t) => f.tactic_ids.iter().any(|x| x == t),
            Tag::TacticName(t) => f.tactic_names.iter().any(|x| x == t),
        }
    }
}

/// What the policy needs of a Detection Finding, and what the actions act on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FindingFacts {
    /// `finding_info.uid`.
    pub uid: String,
    /// The rule's id (`finding_info.analytic.uid`).
    pub rule_uid: Option<String>,
    /// The rule's title.
    pub title: Option<String>,
    /// `severity_id`.
    pub severity_id: i32,
    /// The story (`metadata.correlation_uid`).
    pub story: Option<String>,
    /// Technique and sub-technique ids, upper case.
    pub techniques: Vec<String>,
    /// Tactic ids.
    pub tactic_ids: Vec<String>,
    /// Tactic names, lower case.
    pub tactic_names: Vec<String>,
    /// The flagged process (`actor.process`), with its lineage.
    pub process: Option<Process>,
    /// Whether the finding is new (activity Create): only new findings are acted on;
    /// their Updates repeat what was already answered.
    pub is_new: bool,
    /// The file a file verdict judged (a YARA match: `finding_info.types` has `YARA`,
    /// the file is the first evidence), with its SHA-256: what block and quarantine act
    /// on instead of the process's executable.
    pub file: Option<File>,
}

impl FindingFacts {
    /// The facts of an event, if it is a Detection Finding.
    pub fn of_event(ev: &OcsfEvent) -> Option<FindingFacts> {
        match ev {
            OcsfEvent::Finding(f) => Some(Self::of(f)),
            _ => None,
        }
    }

    /// The facts of a Detection Finding.
    pub fn of(f: &DetectionFinding) -> FindingFacts {
        let info = &f.finding_info;
        let mut facts = FindingFacts {
            uid: info.uid.clone(),
            rule_uid: info.analytic.as_ref().and_then(|a| a.uid.clone()),
            title: info.title.clone(),
            severity_id: f.severity_id,
            story: f.metadata.correlation_uid.clone(),
            process: f.actor.as_ref().and_then(|a| a.process.as_deref().cloned()),
            is_new: f.activity_id == 1,
            file: info
                .types
                .iter()
                .any(|t| t == "YARA")
                .then(|| f.evidences.first().and_then(|e| e.file.clone()))
                .flatten(),
            ..FindingFacts::default()
        };
        for a in &info.attacks {
            if let Some(uid) = a.technique.as_ref().and_then(|t| t.uid.as_ref()) {
                facts.techniques.push(uid.to_ascii_uppercase());
            }
            if let Some(uid) = a.sub_technique.as_ref().and_then(|t| t.uid.as_ref()) {
                facts.techniques.push(uid.to_ascii_uppercase());
            }
            if let Some(t) = &a.tactic {
                if let Some(uid) = &t.uid {
                    facts.tactic_ids.push(uid.to_ascii_uppercase());
                }
                if let Some(name) = &t.name {
                    facts
                        .tactic_names
                        .push(name.to_ascii_lowercase().replace(['-', '_'], " "));
                }
            }
        }
        facts
    }
}

/// One action the policy calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    /// The action.
    pub action: Action,
    /// Its mode (never `Off`: those are left out of the plan).
    pub mode: Mode,
    /// Which policy rule asked for it first (1-based).
    pub rule: usize,
}

/// The compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<CompiledRule>,
    modes: crate::config::Modes,
}

#[derive(Debug, Clone)]
struct CompiledRule {
    rules: HashSet<String>,
    min_severity: Option<i32>,
    tags: Vec<Tag>,
    stories: HashSet<String>,
    actions: Vec<Action>,
}

impl Policy {
    /// The policy of a configuration (validated: tags that do not parse are left out
    /// here, [`RespondConfig::validate`] refuses them).
    pub fn new(config: &RespondConfig) -> Policy {
        let rules = config
            .policy
            .iter()
            .map(|r| CompiledRule {
                rules: r.rules.iter().map(|s| s.get_ref().clone()).collect(),
                min_severity: r.min_level.map(|l| l.severity_id()),
                tags: r.tags.iter().filter_map(|t| Tag::parse(t)).collect(),
                stories: r.stories.iter().cloned().collect(),
                actions: r.actions.clone(),
            })
            .collect();
        Policy {
            rules,
            modes: config.modes.clone(),
        }
    }

    /// The actions a finding calls for, each once, in [`Action::ALL`]'s order, with
    /// their modes; actions whose mode is `off` are left out. Updates of a finding call
    /// for nothing (the finding was answered when it was new).
    pub fn plan(&self, f: &FindingFacts) -> Vec<Planned> {
        if !f.is_new {
            return Vec::new();
        }
        let mut out: Vec<Planned> = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            if !r.matches(f) {
                continue;
            }
            for &action in &r.actions {
                let mode = self.modes.of(action);
                if mode != Mode::Off && !out.iter().any(|p| p.action == action) {
                    out.push(Planned {
                        action,
                        mode,
                        rule: i + 1,
                    });
                }
            }
        }
        out.sort_by_key(|p| Action::ALL.iter().position(|a| *a == p.action));
        out
    }
}

impl CompiledRule {
    fn matches(&self, f: &FindingFacts) -> bool {
        if !self.rules.is_empty()
            && !f
                .rule_uid
                .as_deref()
                .is_some_and(|r| self.rules.contains(r))
        {
            return false;
        }
        if self.min_severity.is_some_and(|min| {
            // OCSF's Fatal (6) is above Critical; Unknown (0) and Other (99) rank nowhere.
            !(f.severity_id >= min && f.severity_id <= 6)
        }) {
            return false;
        }
        if !self.tags.is_empty() && !self.tags.iter().any(|t| t.matches(f)) {
            return false;
        }
        if !self.stories.is_empty() && !f.story.as_deref().is_some_and(|s| self.stories.contains(s))
        {
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Level, Modes, PolicyRule};
    use serde_spanned::Spanned;

    fn facts(rule: &str, severity: i32, techniques: &[&str], tactic: &str) -> FindingFacts {
        FindingFacts {
            uid: "f1".into(),
            rule_uid: Some(rule.into()),
            severity_id: severity,
            story: Some("story-1".into()),
            techniques: techniques.iter().map(|s| s.to_string()).collect(),
            tactic_ids: vec!["TA0040".into()],
            tactic_names: vec![tactic.into()],
            is_new: true,
            ..FindingFacts::default()
        }
    }

    fn config(rules: Vec<PolicyRule>, modes: Modes) -> RespondConfig {
        RespondConfig {
            policy: rules,
            modes,
            ..RespondConfig::default()
        }
    }

    fn actions(p: &[Planned]) -> Vec<(Action, Mode)> {
        p.iter().map(|p| (p.action, p.mode)).collect()
    }

    #[test]
    fn the_default_policy_answers_high_and_critical_findings_in_detect_mode() {
        let policy = Policy::new(&RespondConfig::default());
        for (severity, want) in [(1, 0), (3, 0), (4, 2), (5, 2), (0, 0), (99, 0)] {
            let plan = policy.plan(&facts("r", severity, &[], "impact"));
            assert_eq!(plan.len(), want, "severity {severity}");
            assert!(plan.iter().all(|p| p.mode == Mode::Detect));
        }
        let mut c = RespondConfig::default();
        c.apply_switch(Mode::Protect);
        let plan = Policy::new(&c).plan(&facts("r", 4, &[], "impact"));
        assert_eq!(
            actions(&plan),
            [
                (Action::Kill, Mode::Protect),
                (Action::Quarantine, Mode::Protect)
            ]
        );
        c.apply_switch(Mode::Off);
        assert!(Policy::new(&c)
            .plan(&facts("r", 5, &[], "impact"))
            .is_empty());
    }

    #[test]
    fn rules_match_on_every_criterion_they_give_and_actions_are_merged_in_order() {
        let modes = Modes {
            kill: Mode::Protect,
            isolate: Mode::Off,
            ..Modes::default()
        };
        let c = config(
            vec![
                PolicyRule {
                    tags: vec!["attack.impact".into()],
                    min_level: Some(Level::Medium),
                    actions: vec![Action::Quarantine, Action::Rollback, Action::Isolate],
                    ..PolicyRule::default()
                },
                PolicyRule {
                    rules: vec![Spanned::new(0..0, "ransom".into())],
                    actions: vec![Action::Kill, Action::Quarantine],
                    ..PolicyRule::default()
                },
            ],
            modes,
        );
        let p = Policy::new(&c);
        let plan = p.plan(&facts("ransom", 3, &["T1486"], "impact"));
        // Kill first, then rollback, then quarantine; isolate is off.
        assert_eq!(
            actions(&plan),
            [
                (Action::Kill, Mode::Protect),
                (Action::Rollback, Mode::Detect),
                (Action::Quarantine, Mode::Detect)
            ]
        );
        assert_eq!(plan[1].rule, 1);
        assert_eq!(plan[0].rule, 2);
        // Too low for the first rule, another rule id for the second.
        assert!(p.plan(&facts("other", 2, &[], "impact")).is_empty());
        // An Update is not acted on.
        let mut update = facts("ransom", 5, &[], "impact");
        update.is_new = false;
        assert!(p.plan(&update).is_empty());
    }

    #[test]
    fn tags_match_techniques_with_their_sub_techniques_and_tactics_by_name_or_id() {
        let f = facts("r", 4, &["T1059", "T1059.004"], "command and control");
        for (tag, hit) in [
            ("attack.t1059", true),
            ("T1059.004", true),
            ("t1059.001", false),
            ("attack.t1486", false),
            ("attack.command-and-control", true),
            ("Command_and_Control", true),
            ("ta0040", true),
            ("attack.impact", false),
        ] {
            let t = Tag::parse(tag).expect(tag);
            assert_eq!(t.matches(&f), hit, "{tag}");
        }
        // A technique does not match a longer id that only starts like it.
        let g = facts("r", 4, &["T10590"], "impact");
        assert!(!Tag::parse("t1059").expect("tag").matches(&g));
        for bad in ["attack.t10", "t1059.4", "attack.g0032", "exfil", ""] {
            assert_eq!(Tag::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn stories_pin_a_rule_to_one_story() {
        let c = config(
            vec![PolicyRule {
                stories: vec!["story-2".into()],
                actions: vec![Action::Kill],
                ..PolicyRule::default()
            }],
            Modes::default(),
        );
        let p = Policy::new(&c);
        assert!(p.plan(&facts("r", 1, &[], "impact")).is_empty());
        let mut f = facts("r", 1, &[], "impact");
        f.story = Some("story-2".into());
        assert_eq!(actions(&p.plan(&f)), [(Action::Kill, Mode::Detect)]);
    }

    #[test]
    fn validation_refuses_rules_without_criterion_or_action_and_bad_tags() {
        let check = |r: PolicyRule| config(vec![r], Modes::default()).validate();
        let e = check(PolicyRule {
            actions: vec![Action::Kill],
            ..PolicyRule::default()
        })
        .expect_err("no criterion");
        assert!(e.starts_with("respond.policy rule 1: no criterion"), "{e}");
        let e = check(PolicyRule {
            min_level: Some(Level::Low),
            ..PolicyRule::default()
        })
        .expect_err("no action");
        assert_eq!(e, "respond.policy rule 1: no actions");
        let e = check(PolicyRule {
            tags: vec!["attack.t10".into()],
            actions: vec![Action::Kill],
            ..PolicyRule::default()
        })
        .expect_err("bad tag");
        assert!(e.contains("tag `attack.t10` names no ATT&CK"), "{e}");
        let mut c = RespondConfig::default();
        c.block.sha256 = vec!["abc".into()];
        assert!(c.validate().expect_err("digest").contains("64 hexadecimal"));
        RespondConfig::default()
            .validate()
            .expect("the defaults are valid");
    }

    #[test]
    fn unknown_rule_ids_are_named_with_their_place() {
        let c = config(
            vec![PolicyRule {
                rules: vec![
                    Spanned::new(10..15, "known".into()),
                    Spanned::new(20..25, "typo".into()),
                ],
                actions: vec![Action::Kill],
                ..PolicyRule::default()
            }],
            Modes::default(),
        );
        let unknown = c.unknown_rules(&|id| id == "known");
        assert_eq!(unknown.len(), 1);
        assert_eq!(unknown[0].id, "typo");
        assert_eq!(unknown[0].span, 20..25);
    }

    #[test]
    fn a_file_verdict_names_its_file_and_other_findings_do_not() {
        use vigil_event::model::{Evidences, FindingInfo};
        let finding = |types: Vec<String>| {
            let info = FindingInfo {
                types,
                ..FindingInfo::default()
            };
            let mut f = DetectionFinding::new(1, 0, "test", info);
            f.evidences = vec![Evidences {
                file: Some(File {
                    name: "payload".into(),
                    path: Some("/tmp/payload".into()),
                    ..File::default()
                }),
                ..Evidences::default()
            }];
            f
        };
        let yara = FindingFacts::of(&finding(vec!["YARA".into()]));
        assert_eq!(
            yara.file.and_then(|f| f.path).as_deref(),
            Some("/tmp/payload")
        );
        // A rule's finding on a file event has the file as evidence too: what it flags
        // is its process's executable, not that file.
        assert!(FindingFacts::of(&finding(Vec::new())).file.is_none());
    }
}
