//! The one way a rule that fired, or an indicator an event named, becomes an OCSF
//! Detection Finding (class 2004): the rule's identity, level and ATT&CK tags, or the
//! indicator and its source, the same for `vigil hunt` and the agent.

use vigil_event::model::{
    analytic_type, severity, Analytic, Attack, DetectionFinding, FindingInfo, SubTechnique, Tactic,
    Technique,
};
use vigil_sigma::{Level, RuleKind, RuleMeta};

/// Rank of a level, 0 (informational) ..= 4 (critical); a rule without a level ranks as
/// informational.
pub fn level_rank(level: Option<Level>) -> usize {
    match level {
        None | Some(Level::Informational) => 0,
        Some(Level::Low) => 1,
        Some(Level::Medium) => 2,
        Some(Level::High) => 3,
        Some(Level::Critical) => 4,
    }
}

/// Level names by rank.
pub const LEVELS: [&str; 5] = ["informational", "low", "medium", "high", "critical"];

/// The OCSF `severity_id` of a rule's level.
pub fn severity_of(level: Option<Level>) -> i32 {
    match level {
        None => severity::UNKNOWN,
        Some(Level::Informational) => severity::INFORMATIONAL,
        Some(Level::Low) => severity::LOW,
        Some(Level::Medium) => severity::MEDIUM,
        Some(Level::High) => severity::HIGH,
        Some(Level::Critical) => severity::CRITICAL,
    }
}

/// MITRE ATT&CK Enterprise tactics: Sigma tag suffix, name, id.
const TACTICS: [(&str, &str, &str); 14] = [
    ("reconnaissance", "Reconnaissance", "TA0043"),
    ("resource_development", "Resource Development", "TA0042"),
    ("initial_access", "Initial Access", "TA0001"),
    ("execution", "Execution", "TA0002"),
    ("persistence", "Persistence", "TA0003"),
    ("privilege_escalation", "Privilege Escalation", "TA0004"),
    ("defense_evasion", "Defense Evasion", "TA0005"),
    ("credential_access", "Credential Access", "TA0006"),
    ("discovery", "Discovery", "TA0007"),
    ("lateral_movement", "Lateral Movement", "TA0008"),
    ("collection", "Collection", "TA0009"),
    ("command_and_control", "Command and Control", "TA0011"),
    ("exfiltration", "Exfiltration", "TA0010"),
    ("impact", "Impact", "TA0040"),
];

/// The tactic a tag names (`attack.defense-evasion`, `attack.defense_evasion`).
fn tactic_of(tag: &str) -> Option<&'static (&'static str, &'static str, &'static str)> {
    let t = tag.strip_prefix("attack.").unwrap_or(tag);
    TACTICS.iter().find(|(s, _, _)| {
        s.len() == t.len()
            && s.bytes()
                .zip(t.bytes())
                .all(|(a, b)| a == b.to_ascii_lowercase() || (a == b'_' && b == b'-'))
    })
}

/// The ATT&CK tactic names of a rule's tags (`attack.execution` -> `Execution`).
pub fn tactics(rule: &RuleMeta) -> impl Iterator<Item = &'static str> + '_ {
    rule.attack_tags()
        .filter_map(|t| tactic_of(t).map(|(_, name, _)| *name))
}

/// The ATT&CK Enterprise tactic names in kill-chain order (Reconnaissance first, Impact
/// last).
pub fn tactic_names() -> impl Iterator<Item = &'static str> {
    TACTICS.iter().map(|(_, name, _)| *name)
}

/// The ATT&CK techniques of a rule's tags, each with the sub-technique the tag names
/// (`attack.t1059.001` -> `("T1059", Some("T1059.001"))`), upper-cased.
pub fn techniques(rule: &RuleMeta) -> impl Iterator<Item = (String, Option<String>)> + '_ {
    rule.attack_tags().filter_map(technique_of)
}

/// The technique (`T1059`) and sub-technique (`T1059.004`) a tag names, upper-cased.
fn technique_of(tag: &str) -> Option<(String, Option<String>)> {
    let t = tag.strip_prefix("attack.").unwrap_or(tag);
    let digits = t.get(1..5)?;
    if !(t.starts_with(['t', 'T']) && digits.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let uid = t.to_ascii_uppercase();
    Some(match uid.split_once('.') {
        Some((tech, _)) => (tech.to_string(), Some(uid.clone())),
        None => (uid, None),
    })
}

/// `attacks[]` from a rule's `attack.*` tags: one entry per technique (with the rule's
/// tactic when it names exactly one), else one per tactic.
pub fn attacks(rule: &RuleMeta) -> Vec<Attack> {
    let mut tactic_list = Vec::new();
    let mut techniques = Vec::new();
    for tag in rule.attack_tags() {
        if let Some((_, name, uid)) = tactic_of(tag) {
            tactic_list.push(Tactic {
                name: Some((*name).to_string()),
                uid: Some((*uid).to_string()),
            });
        } else if let Some(t) = technique_of(tag) {
            techniques.push(t);
        }
    }
    let as_attacks = |list: Vec<Tactic>| {
        list.into_iter().map(|t| Attack {
            tactic: Some(t),
            ..Attack::default()
        })
    };
    if techniques.is_empty() {
        return as_attacks(tactic_list).collect();
    }
    let one_tactic = (tactic_list.len() == 1).then(|| tactic_list[0].clone());
    let mut out: Vec<Attack> = techniques
        .into_iter()
        .map(|(tech, sub)| Attack {
            tactic: one_tactic.clone(),
            technique: Some(Technique {
                name: None,
                uid: Some(tech),
            }),
            sub_technique: sub.map(|s| SubTechnique {
                name: None,
                uid: Some(s),
            }),
            ..Attack::default()
        })
        .collect();
    if one_tactic.is_none() {
        out.extend(as_attacks(tactic_list));
    }
    out
}

/// The rule as an OCSF `analytic`: type Rule, the Sigma id, title and logsource (or
/// `correlation`).
pub fn analytic(rule: &RuleMeta) -> Analytic {
    Analytic {
        type_id: analytic_type::RULE,
        kind: Some(analytic_type::name(analytic_type::RULE).into()),
        uid: rule.id.clone(),
        name: Some(rule.title.clone()),
        category: match rule.kind {
            RuleKind::Correlation => Some("correlation".into()),
            _ => Some(rule.logsource.to_string()),
        },
        ..Analytic::default()
    }
}

/// The part of a finding's `finding_info` the rule decides: its uid as given, title,
/// analytic, ATT&CK tags, type `Sigma`, and where the rule is (`file:line`).
pub fn finding_info(rule: &RuleMeta, uid: String) -> FindingInfo {
    FindingInfo {
        uid,
        title: Some(rule.title.clone()),
        analytic: Some(analytic(rule)),
        attacks: attacks(rule),
        types: vec!["Sigma".into()],
        src_url: Some(format!("{}:{}", rule.source, rule.line)),
        ..FindingInfo::default()
    }
}

/// A new Detection Finding (activity Create) for a rule, at `time`, reported by
/// `feature`: [`finding_info`] with `created_time` `now_ms`, severity from the rule's
/// level, an alert. The caller adds what it found the rule in (evidences, actor, times).
pub fn detection_finding(
    rule: &RuleMeta,
    uid: String,
    time: i64,
    now_ms: i64,
    feature: &str,
) -> DetectionFinding {
    let mut info = finding_info(rule, uid);
    info.created_time = Some(now_ms);
    let mut f = DetectionFinding::new(1, time, feature, info);
    f.severity_id = severity_of(rule.level);
    f.is_alert = Some(true);
    f
}

/// A new Detection Finding (activity Create) for an indicator of compromise an event
/// named: titled with the indicator and its source, the indicator as `osint` (with its
/// id, name and STIX pattern when its source gave them), severity `level`. The
/// caller adds what it was found in, as for a rule's finding.
pub fn indicator_finding(
    hit: &vigil_intel::Hit<'_>,
    uid: String,
    level: i32,
    time: i64,
    now_ms: i64,
    feature: &str,
) -> DetectionFinding {
    use vigil_event::model::{detection_pattern_type, osint_type, Osint};
    use vigil_intel::IndicatorKind;
    let (type_id, what) = match hit.kind {
        IndicatorKind::Sha256 => (osint_type::HASH, "SHA-256"),
        IndicatorKind::Sha1 => (osint_type::HASH, "SHA-1"),
        IndicatorKind::Md5 => (osint_type::HASH, "MD5"),
        IndicatorKind::Ip => (osint_type::IP_ADDRESS, "address"),
        IndicatorKind::Domain => (osint_type::DOMAIN, "domain"),
    };
    let meta = hit.meta;
    let title = format!("Known-bad {what} {} ({})", hit.indicator, meta.source);
    let info = FindingInfo {
        uid,
        title: Some(title),
        analytic: Some(Analytic {
            type_id: analytic_type::EXACT_DATA_MATCH,
            kind: Some(analytic_type::name(analytic_type::EXACT_DATA_MATCH).into()),
            uid: meta.uid.clone(),
            name: Some(meta.name.clone().unwrap_or_else(|| meta.source.clone())),
            category: Some(format!("indicator/{}", hit.kind.name())),
            ..Analytic::default()
        }),
        types: vec!["Indicator".into()],
        src_url: Some(meta.source.clone()),
        created_time: Some(now_ms),
        ..FindingInfo::default()
    };
    let mut f = DetectionFinding::new(1, time, feature, info);
    f.severity_id = level;
    f.is_alert = Some(true);
    f.osint = vec![Osint {
        value: hit.indicator.clone(),
        type_id,
        kind: Some(osint_type::name(type_id).into()),
        uid: meta.uid.clone(),
        name: meta.name.clone(),
        src_url: Some(meta.source.clone()),
        comment: (hit.observed != hit.indicator).then(|| format!("matched {}", hit.observed)),
        detection_pattern_type_id: meta.pattern.as_ref().map(|_| detection_pattern_type::STIX),
        detection_pattern_type: meta
            .pattern
            .as_ref()
            .map(|_| detection_pattern_type::name(detection_pattern_type::STIX).into()),
        detection_pattern: meta.pattern.clone(),
    }];
    if !f.metadata.profiles.iter().any(|p| p == "osint") {
        f.metadata.profiles.push("osint".into());
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(tags: &str) -> RuleMeta {
        let mut loader = vigil_sigma::Loader::new();
        loader.add(
            "r.yml",
            &format!(
                "title: T\nid: 0b9e3a3c-0000-4000-8000-000000000001\nlevel: high\n\
                 tags: [{tags}]\nlogsource: {{product: linux, category: process_creation}}\n\
                 detection: {{s: {{Image: /x}}, condition: s}}\n"
            ),
        );
        let built = loader.build();
        assert!(built.errors.is_empty(), "{:?}", built.errors);
        built.engine.rules()[0].clone()
    }

    #[test]
    fn one_tactic_goes_with_every_technique_and_sub_techniques_name_their_parent() {
        let r = rule("attack.execution, attack.t1059.004, attack.t1204");
        let a = attacks(&r);
        assert_eq!(a.len(), 2);
        for x in &a {
            assert_eq!(
                x.tactic.as_ref().and_then(|t| t.uid.as_deref()),
                Some("TA0002")
            );
        }
        assert_eq!(
            a[0].technique.as_ref().and_then(|t| t.uid.as_deref()),
            Some("T1059")
        );
        assert_eq!(
            a[0].sub_technique.as_ref().and_then(|t| t.uid.as_deref()),
            Some("T1059.004")
        );
        assert_eq!(a[1].sub_technique, None);
    }

    #[test]
    fn several_tactics_are_listed_apart_and_odd_tags_are_ignored() {
        let r = rule("attack.persistence, attack.privilege-escalation, attack.t1053.003, attack.g0032, cve.2021-1");
        let a = attacks(&r);
        let tactic_ids: Vec<_> = a
            .iter()
            .filter(|x| x.technique.is_none())
            .filter_map(|x| x.tactic.as_ref()?.uid.as_deref())
            .collect();
        assert_eq!(tactic_ids, ["TA0003", "TA0004"]);
        assert_eq!(a.iter().filter(|x| x.technique.is_some()).count(), 1);
        assert!(
            a[0].tactic.is_none(),
            "two tactics: the technique names none"
        );
        assert_eq!(
            tactics(&r).collect::<Vec<_>>(),
            ["Persistence", "Privilege Escalation"]
        );
    }

    #[test]
    fn a_finding_carries_the_rule_level_and_place() {
        let r = rule("attack.execution");
        let f = detection_finding(&r, "u1".into(), 5, 9, "agent");
        assert_eq!(f.severity_id, severity::HIGH);
        assert_eq!(f.finding_info.uid, "u1");
        assert_eq!(f.finding_info.created_time, Some(9));
        assert_eq!(f.finding_info.src_url.as_deref(), Some("r.yml:1"));
        assert_eq!(
            f.finding_info
                .analytic
                .as_ref()
                .and_then(|a| a.uid.as_deref()),
            Some("0b9e3a3c-0000-4000-8000-000000000001")
        );
        assert_eq!(level_rank(r.level), 3);
        assert_eq!(LEVELS[level_rank(r.level)], "high");
    }
}
