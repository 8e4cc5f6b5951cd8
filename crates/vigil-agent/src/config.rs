//! The agent's configuration file (TOML): every table and setting documented, unknown
//! ones refused. `config/agent.toml` in the repository lists every setting at its
//! default.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use vigil_detect::{DetectConfig, StoryConfig};
use vigil_output::{ElasticConfig, OutputsConfig, SplunkConfig, SyslogConfig};
use vigil_respond::RespondConfig;
use vigil_sensor::SensorConfig;

/// The agent's configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// The sensor (`[sensor]`).
    pub sensor: SensorConfig,
    /// Which rules the agent runs (`[rules]`).
    pub rules: RulesConfig,
    /// Threat-intelligence indicators matched against every event (`[intel]`).
    pub intel: IntelConfig,
    /// File verdicts with YARA: executables at exec, files closed after writing
    /// (`[yara]`).
    pub yara: YaraConfig,
    /// Storylines (`[story]`).
    pub story: StoryConfig,
    /// Detection (`[detect]`).
    pub detect: DetectConfig,
    /// Where the agent writes (`[output]`).
    pub output: OutputConfig,
    /// Response: the policy and its actions (`[respond]`).
    pub respond: RespondConfig,
    /// Content bundles: where applied ones live, how updates are checked (`[content]`).
    pub content: ContentConfig,
    /// The telemetry store on the host: every event kept as OCSF in Parquet (`[store]`).
    pub store: StoreSettings,
    /// Shipping to the Vigil server the agent is enrolled with (`[server]`).
    pub server: ServerSettings,
}

/// Shipping to the server (when the agent is enrolled: `vigil agent --enroll`): every
/// event goes through a queue on disk under the state directory (`server/spool`) and is
/// deleted from it only once the server has stored it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Whether an enrolled agent ships its events (the heartbeat goes on either way).
    pub ship: bool,
    /// MiB the queue may take on disk; when full, events are dropped first and
    /// findings last, each counted (`ship_events_dropped`, `ship_findings_dropped`).
    pub queue_mib: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            ship: true,
            queue_mib: 1024,
        }
    }
}

/// The telemetry store (`vigil-store`): every event the agent writes is appended to a
/// checksummed log under `dir`, fsynced in groups, and compacted into Parquet files by
/// class and hour (`dir/lake/class=.../date=.../hour=...`), which `vigil query` and any
/// Parquet reader read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// The store's directory; empty: no store (`--store DIR` sets it).
    pub dir: PathBuf,
    /// Milliseconds between two fsyncs of the log at most: an event counts as written
    /// (`store_durable_seq` in the statistics) once fsynced.
    pub sync_ms: u64,
    /// A log segment is closed and compacted into Parquet past this many MiB...
    pub segment_mib: u64,
    /// ...or this many seconds after it was started.
    pub segment_secs: u64,
    /// Batches of 256 KiB of events waiting for the store's writer at most; past it
    /// events are dropped and counted (`store_dropped`), the pipeline never waits.
    pub queue: usize,
    /// MiB the Parquet files may take; past it the oldest hours are deleted (each
    /// deletion logged). 0: no limit.
    pub max_size_mib: u64,
    /// Hours of history kept; older hours are deleted (each deletion logged). 0: no
    /// limit.
    pub max_age_hours: u64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            dir: PathBuf::new(),
            sync_ms: 100,
            segment_mib: 64,
            segment_secs: 600,
            queue: 64,
            max_size_mib: 10_240,
            max_age_hours: 720,
        }
    }
}

impl StoreSettings {
    /// The store's configuration, when one is configured.
    pub fn store_config(&self) -> Option<vigil_store::StoreConfig> {
        if self.dir.as_os_str().is_empty() {
            return None;
        }
        let mut c = vigil_store::StoreConfig::new(self.dir.clone());
        c.sync_ms = self.sync_ms;
        c.segment_bytes = self.segment_mib << 20;
        c.segment_secs = self.segment_secs;
        c.queue = self.queue;
        c.limits = vigil_store::retention::Limits {
            max_bytes: self.max_size_mib << 20,
            max_age_hours: self.max_age_hours,
        };
        Some(c)
    }
}

/// Content bundles (`vigil content apply`): rules, YARA sets, indicators and policy as
/// one versioned, checked whole. While a bundle is applied in `dir`, its Sigma rules,
/// YARA rules, indicators and policy (when it has one) run instead of `rules.paths`,
/// `yara.paths`, `intel.paths` and `respond.policy`; the built-in pack still follows
/// `rules.builtin`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContentConfig {
    /// Where applied bundles are kept (`versions/`) and which one runs (the `current`
    /// link). Root-only.
    pub dir: PathBuf,
    /// Seconds between two looks at `current` while the agent runs (one readlink); a
    /// new bundle is checked off the event thread and swapped in between two events.
    /// 0: only at start.
    pub check_secs: u64,
    /// Milliseconds a bundle's YARA rules may take to scan one sample buffer (about
    /// 1 MiB: an executable, a script, text, random bytes) before the bundle is refused.
    pub yara_trial_ms: u64,
    /// MiB of memory loading a bundle may take (the growth of the agent's resident
    /// memory while it loads, or the bundle's size if larger) before it is refused.
    pub max_memory_mib: u64,
}

impl Default for ContentConfig {
    fn default() -> Self {
        ContentConfig {
            dir: PathBuf::from("/var/lib/vigil/content"),
            check_secs: 2,
            yara_trial_ms: 1000,
            max_memory_mib: 2048,
        }
    }
}

/// Which rules the agent runs.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Whether Vigil's own Linux rule pack (compiled into the binary) runs.
    pub builtin: bool,
    /// More rule files, or directories searched recursively for `*.yml` / `*.yaml`.
    pub paths: Vec<PathBuf>,
    /// Milliseconds a rule file may take to match one sample event, in the trial at load,
    /// before it is refused as too slow for a live host.
    pub trial_budget_ms: f64,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            builtin: true,
            paths: Vec::new(),
            trial_budget_ms: 5.0,
        }
    }
}

/// Threat-intelligence indicators matched against every event: each one an event names
/// (an executable's or a file's hash, a connection's address, a DNS name) is a finding.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntelConfig {
    /// Indicator files (plain lists, STIX 2.1 bundles, MISP events; the format is
    /// recognised from the text), or directories whose files are all read.
    pub paths: Vec<PathBuf>,
    /// The level of an indicator's finding.
    pub level: vigil_respond::config::Level,
}

impl Default for IntelConfig {
    fn default() -> Self {
        IntelConfig {
            paths: Vec::new(),
            level: vigil_respond::config::Level::High,
        }
    }
}

/// File verdicts with YARA rules: each executable at its exec and each file closed
/// after being written, scanned off the event thread, verdicts cached by device, inode,
/// times and size; a match is a Detection Finding like a rule's, answered by the policy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct YaraConfig {
    /// YARA rule files (`.yar`, `.yara`) or directories searched for them. None: no
    /// scanning.
    pub paths: Vec<PathBuf>,
    /// Scan each executable when it is executed.
    pub exec: bool,
    /// Scan each file when it is closed after being written.
    pub written: bool,
    /// Only files under these directories are scanned (empty: files anywhere).
    pub include: Vec<PathBuf>,
    /// Files whose path matches one of these globs are not scanned (`*` within a path
    /// component, `**` across components).
    pub exclude: Vec<String>,
    /// Files larger than this many bytes are not scanned (counted as skipped).
    pub max_size: u64,
    /// Seconds the rules may take on one file; past it the scan ends, counted as a
    /// timeout, and the file is not judged.
    pub timeout_secs: u64,
    /// Threads that scan (each holds one file's content at a time).
    pub threads: usize,
    /// Files waiting for a scan at most; a file past it is not scanned (counted as
    /// dropped), the events never wait.
    pub queue: usize,
    /// Verdicts remembered (an unchanged file is judged once).
    pub cache_entries: usize,
}

impl Default for YaraConfig {
    fn default() -> Self {
        YaraConfig {
            paths: Vec::new(),
            exec: true,
            written: true,
            include: Vec::new(),
            exclude: Vec::new(),
            max_size: 64 << 20,
            timeout_secs: 10,
            threads: 1,
            queue: 4096,
            cache_entries: 65_536,
        }
    }
}

/// Where the agent writes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Seconds between the agent's own Statistics events (detection and output
    /// counters; the sensor's come at `sensor.stats_interval_secs`). 0: none.
    pub stats_interval_secs: u64,
    /// Syslog outputs (`[[output.syslog]]`: RFC 5424 to the local socket, TCP or TLS).
    pub syslog: Vec<SyslogConfig>,
    /// Splunk HTTP Event Collector outputs (`[[output.splunk]]`).
    pub splunk: Vec<SplunkConfig>,
    /// Elasticsearch / OpenSearch bulk API outputs (`[[output.elasticsearch]]`).
    pub elasticsearch: Vec<ElasticConfig>,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            stats_interval_secs: 60,
            syslog: Vec::new(),
            splunk: Vec::new(),
            elasticsearch: Vec::new(),
        }
    }
}

impl OutputConfig {
    /// The network outputs.
    pub fn network(&self) -> OutputsConfig {
        OutputsConfig {
            syslog: self.syslog.clone(),
            splunk: self.splunk.clone(),
            elasticsearch: self.elasticsearch.clone(),
        }
    }
}

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or names a setting that does not exist, or gives a
    /// setting a value of the wrong type.
    #[error("{}:{line}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A response policy rule names a rule id no loaded rule has.
    #[error("{}:{line}: respond.policy names rule `{id}`, which no loaded rule has (a typo, or a rule that failed to load)", path.display())]
    UnknownRule {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// The id.
        id: String,
    },
    /// A network output's setting is wrong (a bad URL, an empty token, an unreadable CA
    /// file, a zero buffer), named as `output.KIND[N].KEY`.
    #[error("{}:{line}: {source}", path.display())]
    Output {
        /// The file.
        path: PathBuf,
        /// 1-based line of the setting, or of its output's table (0 when unknown).
        line: usize,
        /// The setting and what is wrong.
        source: vigil_output::Invalid,
    },
    /// A setting has a value out of its range.
    #[error("{}: invalid setting: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl AgentConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses and checks a configuration text (`path` names it in errors).
    pub fn parse(path: &Path, text: &str) -> Result<AgentConfig, ConfigError> {
        let config: AgentConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(0, |s| line_at(text, s.start));
            ConfigError::Syntax {
                path: path.to_path_buf(),
                line,
                message: e.message().to_string(),
            }
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        config
            .output
            .network()
            .validate()
            .map_err(|source| ConfigError::Output {
                path: path.to_path_buf(),
                line: output_line(text, source.kind, source.index, source.key),
                source,
            })?;
        Ok(config)
    }

    /// Checks that every rule id the response policy names is one `known` knows (the
    /// rules loaded); `text` is the configuration file's text, for the line of an
    /// unknown id (`None`: the configuration is the default).
    pub fn check_policy_rules(
        &self,
        path: &Path,
        text: Option<&str>,
        known: &dyn Fn(&str) -> bool,
    ) -> Result<(), ConfigError> {
        match self.respond.unknown_rules(known).into_iter().next() {
            None => Ok(()),
            Some(u) => Err(ConfigError::UnknownRule {
                path: path.to_path_buf(),
                line: text.map_or(0, |t| {
                    if u.span.is_empty() {
                        0
                    } else {
                        line_at(t, u.span.start)
                    }
                }),
                id: u.id,
            }),
        }
    }

    /// Checks the ranges of settings the types do not bound.
    pub fn validate(&self) -> Result<(), String> {
        self.sensor.validate().map_err(|e| e.to_string())?;
        let d = &self.detect;
        if d.update_interval_ms < 0 {
            return Err("detect.update_interval_ms must not be negative".into());
        }
        if self.rules.trial_budget_ms.is_nan() || self.rules.trial_budget_ms <= 0.0 {
            return Err("rules.trial_budget_ms must be a positive number".into());
        }
        if self.story.linger_ms < 0 {
            return Err("story.linger_ms must not be negative".into());
        }
        let y = &self.yara;
        if y.threads == 0 || y.threads > 64 {
            return Err("yara.threads must be between 1 and 64".into());
        }
        if y.queue == 0 || y.cache_entries == 0 {
            return Err("yara.queue and yara.cache_entries must be at least 1".into());
        }
        if y.timeout_secs == 0 {
            return Err("yara.timeout_secs must be at least 1".into());
        }
        if self.content.yara_trial_ms == 0 || self.content.max_memory_mib == 0 {
            return Err(
                "content.yara_trial_ms and content.max_memory_mib must be at least 1".into(),
            );
        }
        self.respond.validate()?;
        Ok(())
    }
}

/// The line of `key` in the `index`th (from 1) `[[output.KIND]]` table, or of the table
/// itself when the key is not written there; 0 when the table is not found (written
/// inline, say).
fn output_line(text: &str, kind: &str, index: usize, key: &str) -> usize {
    let header = format!("[[output.{kind}]]");
    let mut seen = 0;
    let mut table = None;
    for (i, l) in text.lines().enumerate() {
        let l = l.trim();
        if l.starts_with('[') {
            if table.is_some() {
                break;
            }
            if l.starts_with(&header) {
                seen += 1;
                if seen == index {
                    table = Some(i + 1);
                }
            }
            continue;
        }
        if table.is_some()
            && l.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        {
            return i + 1;
        }
    }
    table.unwrap_or(0)
}

/// The 1-based line of a byte offset.
pub(crate) fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
        if let serde_json::Value::Object(m) = v {
            for (k, v) in m {
                let path = format!("{prefix}{k}");
                if v.is_object() {
                    keys(v, &format!("{path}."), out);
                } else {
                    out.push(path);
                }
            }
        }
    }

    #[test]
    fn the_shipped_file_is_every_setting_at_its_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/agent.toml");
        let config = AgentConfig::load(&path).expect("config/agent.toml loads");
        assert_eq!(config, AgentConfig::default());
        let text = std::fs::read_to_string(&path).expect("readable");
        let shipped: toml::Table = toml::from_str(&text).expect("TOML");
        let shipped = serde_json::to_value(&shipped).expect("as JSON");
        let defaults = serde_json::to_value(AgentConfig::default()).expect("as JSON");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        keys(&shipped, "", &mut a);
        keys(&defaults, "", &mut b);
        a.sort();
        b.sort();
        assert_eq!(
            a, b,
            "config/agent.toml lists exactly the settings there are"
        );
        // Each setting has a comment line above it (or above its group of lines).
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if l.contains(" = ") && !l.starts_with('#') {
                assert!(
                    i > 0 && lines[i - 1].starts_with('#'),
                    "line {}: `{l}` is not documented",
                    i + 1
                );
            }
        }
    }

    #[test]
    fn bad_settings_are_refused_with_file_and_line() {
        let p = Path::new("agent.toml");
        let e = AgentConfig::parse(p, "[detect]\nupdate_interval_ms = 5\nflood = true\n")
            .expect_err("unknown field");
        assert_eq!(
            e.to_string(),
            "agent.toml:3: unknown field `flood`, expected one of `update_interval_ms`, \
             `max_open_findings`, `max_incidents`, `correlation_events`, `correlation_groups`, \
             `assignee_group`"
        );
        let e = AgentConfig::parse(p, "[rules]\npaths = 7\n").expect_err("wrong type");
        assert!(
            e.to_string().starts_with("agent.toml:2: invalid type"),
            "{e}"
        );
        let e = AgentConfig::parse(p, "[rules]\ntrial_budget_ms = -1.0\n").expect_err("range");
        assert_eq!(
            e.to_string(),
            "agent.toml: invalid setting: rules.trial_budget_ms must be a positive number"
        );
    }

    #[test]
    fn a_policy_with_an_unknown_action_or_rule_is_refused_with_its_line() {
        let p = Path::new("agent.toml");
        let text = "[respond]\npolicy = [\n  { min_level = \"high\", actions = [\"kil\"] },\n]\n";
        let e = AgentConfig::parse(p, text).expect_err("unknown action");
        assert!(
            e.to_string()
                .starts_with("agent.toml:3: unknown variant `kil`, expected one of `kill`"),
            "{e}"
        );
        let text = "[respond]\npolicy = [\n  { rules = [\"r-1\",\n    \"r-typo\"], actions = [\"kill\"] },\n]\n";
        let c = AgentConfig::parse(p, text).expect("parses");
        let e = c
            .check_policy_rules(p, Some(text), &|id| id == "r-1")
            .expect_err("unknown rule");
        assert_eq!(
            e.to_string(),
            "agent.toml:4: respond.policy names rule `r-typo`, which no loaded rule has \
             (a typo, or a rule that failed to load)"
        );
        c.check_policy_rules(p, Some(text), &|_| true)
            .expect("every rule known");
        let e = AgentConfig::parse(p, "[respond]\npolicy = [{ actions = [\"kill\"] }]\n")
            .expect_err("no criterion");
        assert!(
            e.to_string()
                .starts_with("agent.toml: invalid setting: respond.policy rule 1: no criterion"),
            "{e}"
        );
        let e = AgentConfig::parse(p, "[respond.isolate]\nmanagement = [\"10.0.0.1:http\"]\n")
            .expect_err("bad endpoint");
        assert!(e.to_string().contains("`http` is not a port"), "{e}");
    }

    #[test]
    fn the_shipped_output_examples_name_every_default_right() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/agent.toml");
        let text = std::fs::read_to_string(&path).expect("readable");
        for (kind, required) in [
            ("syslog", ""),
            ("splunk", "url = \"http://h:8088\"\ntoken = \"t\"\n"),
            ("elasticsearch", "url = \"http://h:9200\"\n"),
        ] {
            let header = format!("# [[output.{kind}]]");
            let block: String = text
                .lines()
                .skip_while(|l| *l != header)
                .take_while(|l| !l.is_empty())
                .filter_map(|l| l.strip_prefix("# "))
                .map(|l| format!("{l}\n"))
                .collect();
            assert!(!block.is_empty(), "no example of {kind}");
            // Every key of the example exists (unknown ones are refused) ...
            let example: AgentConfig = toml::from_str(&block).expect("the example parses");
            let minimal: AgentConfig =
                toml::from_str(&format!("[[output.{kind}]]\n{required}")).expect("parses");
            let pick =
                |c: &AgentConfig| serde_json::to_value(&c.output).expect("json")[kind][0].clone();
            let (example, minimal) = (pick(&example), pick(&minimal));
            // ... and every setting that has a default is shown at it.
            for (k, v) in minimal.as_object().expect("table") {
                if required.contains(&format!("{k} =")) {
                    continue;
                }
                assert_eq!(&example[k], v, "output.{kind}.{k} in config/agent.toml");
            }
        }
    }

    #[test]
    fn a_bad_output_is_refused_with_the_setting_and_its_line() {
        let p = Path::new("agent.toml");
        let refused = |text: &str| {
            AgentConfig::parse(p, text)
                .expect_err("refused")
                .to_string()
        };
        assert_eq!(
            refused("[[output.splunk]]\nurl = \"htp://h\"\ntoken = \"t\"\n"),
            "agent.toml:2: output.splunk[1].url: `htp://h` is not a usable URL: it must start \
             with http:// or https://"
        );
        assert_eq!(
            refused("[[output.splunk]]\nurl = \"http://h\"\ntoken = \"\"\n"),
            "agent.toml:3: output.splunk[1].token: is empty"
        );
        let e = refused("[[output.splunk]]\nurl = \"http://h\"\n");
        assert!(e.starts_with("agent.toml:1: missing field `token`"), "{e}");
        assert_eq!(
            refused("[[output.syslog]]\n[[output.syslog]]\naddress = \"tcp://h:514\"\nbuffer_bytes = 0\n"),
            "agent.toml:4: output.syslog[2].buffer_bytes: must be at least 1"
        );
        let e = refused(
            "[[output.elasticsearch]]\nurl = \"https://h:9200\"\nca_file = \"/nonexistent/ca.pem\"\n",
        );
        assert!(
            e.starts_with(
                "agent.toml:3: output.elasticsearch[1].ca_file: /nonexistent/ca.pem: cannot read: "
            ),
            "{e}"
        );
        assert_eq!(
            refused("[[output.syslog]]\n[[output.syslog]]\n"),
            "agent.toml:2: output.syslog[2].name: `syslog` is taken by another output; give \
             each output its own name"
        );
        let e = refused("[[output.syslog]]\nfacility = \"local9\"\n");
        assert!(
            e.starts_with("agent.toml:2: unknown variant `local9`"),
            "{e}"
        );
    }
}
