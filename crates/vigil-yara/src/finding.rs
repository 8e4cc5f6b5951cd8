//! A YARA match as an OCSF Detection Finding (class 2004): the rule as the analytic
//! (type Rule; `uid` and `category` name its rule file, `name` the rule), its tags and
//! metadata as `finding_info.tags`, the file as the evidence with its size, owner, times
//! and SHA-256; severity from the rule's `score` metadata (signature-base's convention,
//! 0-100) when it has one.

use crate::scan::{RuleHit, Verdict};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use vigil_event::model::{
    analytic_type, file_type, hash_algorithm, severity, Analytic, DetectionFinding, Evidences,
    File, FindingInfo, Fingerprint, KeyValue, User,
};

/// The feature name findings carry in `metadata.product.feature`.
pub const FEATURE: &str = "vigil scan";

/// The OCSF severity of a rule: from its `score` metadata (>= 90 critical, >= 70 high,
/// >= 50 medium, >= 30 low, else informational), or medium without one.
pub fn severity_of(hit: &RuleHit) -> i32 {
    let score = hit
        .metadata
        .iter()
        .find(|(k, _)| k == "score")
        .and_then(|(_, v)| v.trim().parse::<i64>().ok());
    match score {
        None => severity::MEDIUM,
        Some(s) if s >= 90 => severity::CRITICAL,
        Some(s) if s >= 70 => severity::HIGH,
        Some(s) if s >= 50 => severity::MEDIUM,
        Some(s) if s >= 30 => severity::LOW,
        Some(_) => severity::INFORMATIONAL,
    }
}

fn ms(secs: i64, nsec: i64) -> i64 {
    secs * 1000 + nsec / 1_000_000
}

/// The file as an OCSF `file`: name, path, folder, size, `dev:inode`, owner, times,
/// mode, and its SHA-256 when known.
pub fn file_object(
    path: &Path,
    meta: &std::fs::Metadata,
    owner: &str,
    sha256: Option<&str>,
) -> File {
    File {
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        type_id: file_type::REGULAR,
        kind: Some(file_type::name(file_type::REGULAR).into()),
        path: Some(path.to_string_lossy().into_owned()),
        parent_folder: path.parent().map(|p| p.to_string_lossy().into_owned()),
        hashes: sha256
            .map(|h| Fingerprint {
                algorithm_id: hash_algorithm::SHA256,
                algorithm: Some(hash_algorithm::name(hash_algorithm::SHA256).into()),
                value: h.to_string(),
            })
            .into_iter()
            .collect(),
        size: i64::try_from(meta.size()).ok(),
        uid: Some(format!("{}:{}", meta.dev(), meta.ino())),
        owner: Some(User {
            name: Some(owner.to_string()),
            uid: Some(meta.uid().to_string()),
            ..User::default()
        }),
        modified_time: Some(ms(meta.mtime(), meta.mtime_nsec())),
        accessed_time: Some(ms(meta.atime(), meta.atime_nsec())),
        attributes: i32::try_from(meta.mode() & 0o7777).ok(),
        ..File::default()
    }
}

/// One Detection Finding for one rule that matched one file. `rule_file` is the file
/// the rule was compiled from; `uid` the finding's id; `now_ms` the time of the scan.
pub fn yara_finding(
    hit: &RuleHit,
    rule_file: Option<&Path>,
    file: File,
    uid: String,
    now_ms: i64,
) -> DetectionFinding {
    let rule_file = rule_file.map(|p| p.to_string_lossy().into_owned());
    let meta = |key: &str| {
        hit.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let mut tags = Vec::new();
    if !hit.tags.is_empty() {
        tags.push(KeyValue {
            name: "yara.tags".into(),
            values: hit.tags.clone(),
            ..KeyValue::default()
        });
    }
    for (k, v) in &hit.metadata {
        tags.push(KeyValue {
            name: format!("yara.meta.{k}"),
            value: Some(v.clone()),
            ..KeyValue::default()
        });
    }
    let title = format!("YARA rule {} matched {}", hit.identifier, file.name);
    let info = FindingInfo {
        uid,
        title: Some(title),
        desc: meta("description"),
        analytic: Some(Analytic {
            type_id: analytic_type::RULE,
            kind: Some(analytic_type::name(analytic_type::RULE).into()),
            uid: Some(match &rule_file {
                Some(f) => format!("{f}:{}", hit.identifier),
                None => hit.identifier.clone(),
            }),
            name: Some(hit.identifier.clone()),
            category: Some("yara".into()),
            desc: meta("description"),
            version: meta("date").or_else(|| meta("version")),
        }),
        types: vec!["YARA".into()],
        src_url: rule_file.clone(),
        created_time: Some(now_ms),
        data_sources: rule_file.into_iter().collect(),
        tags,
        ..FindingInfo::default()
    };
    let mut f = DetectionFinding::new(1, now_ms, FEATURE, info);
    f.severity_id = severity_of(hit);
    f.is_alert = Some(true);
    f.evidences = vec![Evidences {
        file: Some(file),
        ..Evidences::default()
    }];
    f
}

/// The findings of one file's verdict, one per matching rule.
pub fn findings(
    verdict: &Verdict,
    path: &Path,
    meta: &std::fs::Metadata,
    owner: &str,
    rule_file: impl Fn(&str) -> Option<std::path::PathBuf>,
    now_ms: i64,
) -> Vec<DetectionFinding> {
    verdict
        .hits
        .iter()
        .enumerate()
        .map(|(i, hit)| {
            let file = file_object(path, meta, owner, verdict.sha256.as_deref());
            let uid = format!(
                "yara-{}-{}-{}",
                verdict.sha256.as_deref().map_or("", |h| &h[..16]),
                meta.ino(),
                i
            );
            yara_finding(hit, rule_file(&hit.namespace).as_deref(), file, uid, now_ms)
        })
        .collect()
}
