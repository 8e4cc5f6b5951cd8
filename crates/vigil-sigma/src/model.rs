//! The public description of a loaded rule: its metadata and logsource.

use std::fmt;
use std::sync::Arc;

/// A rule's severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// `informational`.
    Informational,
    /// `low`.
    Low,
    /// `medium`.
    Medium,
    /// `high`.
    High,
    /// `critical`.
    Critical,
}

impl Level {
    /// Parses a Sigma level name.
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s {
            "informational" => Level::Informational,
            "low" => Level::Low,
            "medium" => Level::Medium,
            "high" => Level::High,
            "critical" => Level::Critical,
            _ => return None,
        })
    }

    /// The Sigma name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Informational => "informational",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Sigma logsource: which events a rule looks at. Values are lowercased.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LogSource {
    /// `product` (`windows`, `linux`, ...).
    pub product: Option<String>,
    /// `category` (`process_creation`, ...).
    pub category: Option<String>,
    /// `service` (`security`, `sysmon`, `auditd`, ...).
    pub service: Option<String>,
}

impl LogSource {
    /// A logsource from its three optional parts (lowercased here).
    pub fn new(product: Option<&str>, category: Option<&str>, service: Option<&str>) -> Self {
        LogSource {
            product: product.map(str::to_ascii_lowercase),
            category: category.map(str::to_ascii_lowercase),
            service: service.map(str::to_ascii_lowercase),
        }
    }

    /// Whether a rule with logsource `self` applies to events declared as `events`: every
    /// part the rule names must be named the same by the events.
    pub fn covers(&self, events: &LogSource) -> bool {
        fn part(rule: &Option<String>, ev: &Option<String>) -> bool {
            match rule {
                None => true,
                Some(r) => ev.as_ref() == Some(r),
            }
        }
        part(&self.product, &events.product)
            && part(&self.category, &events.category)
            && part(&self.service, &events.service)
    }
}

impl fmt::Display for LogSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = |o: &Option<String>| o.clone().unwrap_or_else(|| "*".into());
        write!(
            f,
            "{}/{}/{}",
            p(&self.product),
            p(&self.category),
            p(&self.service)
        )
    }
}

/// What kind of Sigma document a rule is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// A detection rule (`detection:` and `condition:`).
    Detection,
    /// A correlation rule (`correlation:`).
    Correlation,
    /// A filter (meta filter, `filter:`), applied to other rules.
    Filter,
}

/// Everything a finding tells about the rule that made it.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleMeta {
    /// `title`.
    pub title: String,
    /// `id` (a UUID in SigmaHQ).
    pub id: Option<String>,
    /// `name`, the handle correlations may use instead of the id.
    pub name: Option<String>,
    /// `level`.
    pub level: Option<Level>,
    /// `status`.
    pub status: Option<String>,
    /// `tags`, as written (`attack.t1059.001`, `attack.execution`, `cve.2021-44228`, ...).
    pub tags: Vec<String>,
    /// `logsource` (empty for correlations).
    pub logsource: LogSource,
    /// The source name the rule was loaded from.
    pub source: Arc<str>,
    /// 1-based line the rule's document starts on.
    pub line: usize,
    /// Detection, correlation or filter.
    pub kind: RuleKind,
}

impl RuleMeta {
    /// The MITRE ATT&CK tags (`attack.*`).
    pub fn attack_tags(&self) -> impl Iterator<Item = &str> {
        self.tags
            .iter()
            .map(String::as_str)
            .filter(|t| t.starts_with("attack."))
    }

    /// The id if there is one, else the name, else the title: how messages name the rule.
    pub fn handle(&self) -> &str {
        self.id
            .as_deref()
            .or(self.name.as_deref())
            .unwrap_or(&self.title)
    }
}
