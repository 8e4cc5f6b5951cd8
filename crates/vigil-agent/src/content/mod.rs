//! Content bundles: the rules, YARA sets, indicator feeds and response policy an agent
//! runs, as one versioned directory that is validated whole before it runs.
//!
//! ```text
//!  BUNDLE/
//!    bundle.toml      version, description, the SHA-256 of every other file
//!    sigma/           Sigma rules (*.yml, *.yaml)
//!    yara/            YARA rules (*.yar, *.yara)
//!    intel/           indicator files (lists, STIX 2.1 bundles, MISP events)
//!    policy.toml      optional: `policy = [...]`, the `[respond]` policy rules
//! ```
//!
//! [`load`] checks a bundle completely and either returns the [`Content`] to run or
//! refuses it with every problem found ([`Refused`]), one line each, `file:line:
//! reason`: the manifest and every file's hash (a file not listed, missing or changed
//! is refused), the Sigma rules compiled and tried on sample events (the agent's trial,
//! [`crate::rules`]), every YARA file compiled and the set scanned over sample buffers
//! with a time budget ([`vigil_yara::trial`]), every indicator file loaded, the policy
//! parsed with the rule ids it names checked against the rules, and the memory loading
//! takes against a bound (the growth of the process's resident memory, or the bundle's
//! size if that is larger: a floor the allocator's reuse cannot hide). Nothing is partly
//! accepted: one problem refuses the bundle, and whatever runs keeps running.
//!
//! [`store`] keeps applied bundles (`versions/<version>/`) and switches the `current`
//! link atomically; [`watch`] is the agent's side: it notices a switch, loads and
//! checks the new bundle off the event thread, and hands it over.

pub mod store;
pub mod watch;

use crate::config::{line_at, ContentConfig, IntelConfig, RulesConfig};
use crate::intel::IntelReport;
use crate::rules::RuleReport;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use vigil_intel::IntelSet;
use vigil_respond::config::PolicyRule;
use vigil_sigma::Engine;
use vigil_yara::RuleSet;

/// The manifest's file name.
pub const MANIFEST: &str = "bundle.toml";
/// The optional policy file.
pub const POLICY: &str = "policy.toml";
/// The directories a bundle's content files live in.
pub const PARTS: [&str; 3] = ["sigma", "yara", "intel"];

/// A bundle's manifest (`bundle.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The bundle's version: 1 to 64 letters, digits, `.`, `_`, `-`, not starting with
    /// `.` (it names the bundle's directory once applied).
    pub version: String,
    /// What the bundle is, for people.
    #[serde(default)]
    pub description: String,
    /// Every file of the bundle but the manifest, by its path inside the bundle (`/`
    /// separated), with the SHA-256 of its content (hex).
    pub files: BTreeMap<String, String>,
}

impl Manifest {
    /// The manifest as `bundle.toml` holds it.
    pub fn to_toml(&self) -> String {
        let mut out = format!("version = {}\n", toml_string(&self.version));
        if !self.description.is_empty() {
            out.push_str(&format!(
                "description = {}\n",
                toml_string(&self.description)
            ));
        }
        out.push_str("\n[files]\n");
        for (name, hash) in &self.files {
            out.push_str(&format!("{} = {}\n", toml_string(name), toml_string(hash)));
        }
        out
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A bundle refused: why, one line per problem (`file:line: reason`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("content bundle {} refused: {}", .dir.display(), .problems.join("; "))]
pub struct Refused {
    /// The bundle.
    pub dir: PathBuf,
    /// Its version, when the manifest could be read.
    pub version: Option<String>,
    /// Every problem found.
    pub problems: Vec<String>,
}

/// Validated content, ready to run.
pub struct Content {
    /// The bundle's version; without a bundle, the rules' content version.
    pub version: String,
    /// Where the bundle was loaded from (`None`: the configured paths).
    pub dir: Option<PathBuf>,
    /// The Sigma rules (the built-in pack when configured, and the bundle's).
    pub engine: Arc<Engine>,
    /// What loading the rules came to.
    pub rules: RuleReport,
    /// The indicators.
    pub intel: Arc<IntelSet>,
    /// What loading them came to.
    pub intel_report: IntelReport,
    /// The YARA rules, if the bundle has any (taken by the agent when it starts them).
    pub yara: Option<RuleSet>,
    /// YARA rule files and rules loaded.
    pub yara_files: usize,
    /// The response policy rules, if the bundle has a policy.
    pub policy: Option<Vec<PolicyRule>>,
    /// Memory loading took, in bytes: the growth of resident memory while loading, or
    /// the bundle's size if larger.
    pub memory_bytes: u64,
    /// Milliseconds the YARA trial took on its slowest sample.
    pub yara_trial_ms: f64,
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Content")
            .field("version", &self.version)
            .field("dir", &self.dir)
            .field("rules", &self.rules.loaded)
            .field("indicators", &self.intel.len())
            .field("yara_files", &self.yara_files)
            .field("policy", &self.policy.as_ref().map(Vec::len))
            .finish()
    }
}

/// What checking a bundle needs besides the bundle: the agent's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `[rules]`: whether the built-in pack runs beside the bundle's rules, the trial's
    /// budget (its `paths` are not used).
    pub rules: RulesConfig,
    /// The level of indicator findings (`[intel]`; its `paths` are not used).
    pub intel: IntelConfig,
    /// `[content]`: the YARA trial's budget, the memory bound.
    pub content: ContentConfig,
}

impl Settings {
    /// The settings of an agent configuration.
    pub fn of(config: &crate::AgentConfig) -> Settings {
        Settings {
            rules: config.rules.clone(),
            intel: config.intel.clone(),
            content: config.content.clone(),
        }
    }
}

/// Whether a version string may name a bundle (and its directory).
pub fn valid_version(v: &str) -> bool {
    (1..=64).contains(&v.len())
        && !v.starts_with('.')
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The SHA-256 of `bytes`, in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    vigil_yara::scan::sha256_hex(bytes)
}

/// Reads and checks `dir`'s manifest and files (the manifest's syntax and version, every
/// file listed, present, a regular file, in its place, and of its hash), without
/// loading any content. Returns the manifest, or every problem.
pub fn verify(dir: &Path) -> Result<Manifest, Refused> {
    let refused = |version: Option<String>, problems| Refused {
        dir: dir.to_path_buf(),
        version,
        problems,
    };
    let path = dir.join(MANIFEST);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => return Err(refused(None, vec![format!("{MANIFEST}: cannot read: {e}")])),
    };
    let manifest: Manifest = match toml::from_str(&text) {
        Ok(m) => m,
        Err(e) => {
            let line = e.span().map_or(0, |s| line_at(&text, s.start));
            return Err(refused(
                None,
                vec![format!("{MANIFEST}:{line}: {}", e.message())],
            ));
        }
    };
    let mut problems = Vec::new();
    if !valid_version(&manifest.version) {
        problems.push(format!(
            "{MANIFEST}: version `{}` is not 1 to 64 letters, digits, `.`, `_` or `-` \
             (not starting with `.`)",
            manifest.version
        ));
    }
    for (name, hash) in &manifest.files {
        if let Err(why) = allowed_path(name) {
            problems.push(format!("{MANIFEST}: file `{name}`: {why}"));
            continue;
        }
        let hash_ok = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        if !hash_ok {
            problems.push(format!(
                "{MANIFEST}: file `{name}`: `{hash}` is not a SHA-256 (64 hex digits)"
            ));
        }
        let file = dir.join(name);
        match std::fs::symlink_metadata(&file) {
            Ok(m) if m.file_type().is_file() => {}
            Ok(_) => {
                problems.push(format!("{name}: not a regular file"));
                continue;
            }
            Err(e) => {
                problems.push(format!(
                    "{name}: listed in {MANIFEST} but cannot be read: {e}"
                ));
                continue;
            }
        }
        match std::fs::read(&file) {
            Ok(bytes) => {
                let actual = sha256_hex(&bytes);
                if hash_ok && !actual.eq_ignore_ascii_case(hash) {
                    problems.push(format!(
                        "{name}: changed: its SHA-256 is {actual}, {MANIFEST} says {hash}"
                    ));
                }
            }
            Err(e) => problems.push(format!("{name}: cannot read: {e}")),
        }
    }
    let mut found = Vec::new();
    list(dir, dir, &mut found, &mut problems);
    for name in found {
        if name != MANIFEST && !manifest.files.contains_key(&name) {
            problems.push(format!("{name}: not listed in {MANIFEST}"));
        }
    }
    if problems.is_empty() {
        Ok(manifest)
    } else {
        Err(refused(Some(manifest.version), problems))
    }
}

/// Why a manifest entry's path is not one a bundle may hold, if it is not.
fn allowed_path(name: &str) -> Result<(), &'static str> {
    let p = Path::new(name);
    if !p.components().all(|c| matches!(c, Component::Normal(_))) || name.contains('\\') {
        return Err("not a plain relative path inside the bundle");
    }
    if name == POLICY {
        return Ok(());
    }
    let part = p
        .components()
        .next()
        .and_then(|c| c.as_os_str().to_str())
        .unwrap_or("");
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
    match part {
        _ if p.components().count() < 2 => Err("not under sigma/, yara/ or intel/"),
        "sigma" if matches!(ext, "yml" | "yaml") => Ok(()),
        "sigma" => Err("files under sigma/ are Sigma rules: *.yml or *.yaml"),
        "yara" if matches!(ext, "yar" | "yara") => Ok(()),
        "yara" => Err("files under yara/ are YARA rules: *.yar or *.yara"),
        "intel" => Ok(()),
        _ => Err("not under sigma/, yara/ or intel/"),
    }
}

/// Every file under `dir`, as `/`-separated paths relative to `root`; what is neither a
/// file nor a directory (a symlink, a FIFO) is a problem.
fn list(root: &Path, dir: &Path, out: &mut Vec<String>, problems: &mut Vec<String>) {
    let rel = |p: &Path| {
        p.strip_prefix(root)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            problems.push(format!("{}: cannot list: {e}", rel(dir)));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => list(root, &p, out, problems),
            Ok(m) if m.is_file() => out.push(rel(&p)),
            Ok(_) => problems.push(format!(
                "{}: not a regular file or directory (a symlink, a device, a FIFO)",
                rel(&p)
            )),
            Err(e) => problems.push(format!("{}: {e}", rel(&p))),
        }
    }
}

/// The resident memory of this process, in bytes (0 when unknown).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// The policy file's form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    policy: Vec<PolicyRule>,
}

/// Checks the bundle at `dir` completely and returns its content, or every problem.
/// A panic while checking (a bug in Vigil or a library, hit by the bundle's content)
/// refuses the bundle too, rather than ending the agent's watcher or the command.
pub fn load(dir: &Path, settings: &Settings) -> Result<Content, Refused> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| load_checked(dir, settings)))
        .unwrap_or_else(|panic| {
            let why = panic
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(Refused {
                dir: dir.to_path_buf(),
                version: None,
                problems: vec![format!(
                    "refused: checking the bundle panicked ({why}); a bug in Vigil, to report"
                )],
            })
        })
}

fn load_checked(dir: &Path, settings: &Settings) -> Result<Content, Refused> {
    let manifest = verify(dir)?;
    let mut problems = Vec::new();
    let before = rss_bytes();
    // Sigma: the built-in pack (when configured) and the bundle's rules, compiled and
    // tried on sample events; a rule that does not load or is too slow refuses the
    // bundle.
    let sigma = dir.join("sigma");
    let rules_config = RulesConfig {
        paths: if sigma.is_dir() {
            vec![sigma]
        } else {
            Vec::new()
        },
        ..settings.rules.clone()
    };
    let (engine, rules) = crate::rules::load(&rules_config, &vigil_sigma::Config::default());
    problems.extend(rules.problems.iter().map(|p| relative(dir, p)));
    // YARA: every file compiles, and the set scans the samples within the budget.
    let yara_dir = dir.join("yara");
    let mut yara = None;
    let mut yara_files = 0;
    let mut yara_trial_ms = 0.0;
    let has_yara = manifest.files.keys().any(|f| f.starts_with("yara/"));
    if has_yara {
        match crate::yara::load_apart(&[yara_dir]) {
            Ok((set, report)) => {
                problems.extend(report.refused.iter().map(|r| relative(dir, &r.to_string())));
                yara_files = report.loaded.len();
                let own = std::fs::read("/proc/self/exe").ok();
                let samples = vigil_yara::trial::samples(own.as_deref());
                let budget = Duration::from_millis(settings.content.yara_trial_ms);
                match vigil_yara::trial(&set, &samples, budget) {
                    Ok(cost) => yara_trial_ms = cost.slowest.1,
                    Err(e) => problems.push(format!(
                        "yara/: refused: {e} (content.yara_trial_ms); a rule set this slow \
                         would hold up every scan on the host"
                    )),
                }
                yara = Some(set);
            }
            Err(vigil_yara::LoadError::NothingLoaded(refused)) => {
                problems.extend(refused.iter().map(|r| relative(dir, &r.to_string())));
            }
            Err(e) => problems.push(relative(dir, &e.to_string())),
        }
    }
    // Indicators: every file loads whole.
    let intel_dir = dir.join("intel");
    let intel_config = IntelConfig {
        paths: if intel_dir.is_dir() {
            vec![intel_dir]
        } else {
            Vec::new()
        },
        ..settings.intel.clone()
    };
    let (intel, intel_report) = crate::intel::load(&intel_config);
    problems.extend(intel_report.problems.iter().map(|p| relative(dir, p)));
    if intel_report.more_problems > 0 {
        problems.push(format!(
            "intel/: {} more problems not listed",
            intel_report.more_problems
        ));
    }
    // The policy: parsed, checked as the configuration's is, and every rule id it
    // names is one the rules have.
    let policy = if manifest.files.contains_key(POLICY) {
        check_policy(&dir.join(POLICY), &engine, &mut problems)
    } else {
        None
    };
    // The resident memory's growth can hide what loading took (memory freed earlier
    // reused), never the bundle's own size: the larger of the two.
    let size: u64 = manifest
        .files
        .keys()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum();
    let memory_bytes = rss_bytes().saturating_sub(before).max(size);
    let max = settings.content.max_memory_mib.saturating_mul(1 << 20);
    if memory_bytes > max {
        problems.push(format!(
            "refused: loading took {} MiB of memory, past the bound of {} MiB \
             (content.max_memory_mib)",
            memory_bytes >> 20,
            settings.content.max_memory_mib
        ));
    }
    if !problems.is_empty() {
        return Err(Refused {
            dir: dir.to_path_buf(),
            version: Some(manifest.version),
            problems,
        });
    }
    Ok(Content {
        version: manifest.version,
        dir: Some(dir.to_path_buf()),
        engine: Arc::new(engine),
        rules,
        intel: Arc::new(intel),
        intel_report,
        yara,
        yara_files,
        policy,
        memory_bytes,
        yara_trial_ms,
    })
}

/// The content of the agent's configuration (its rule, indicator paths; YARA is
/// started from `[yara]` by the agent itself), when no bundle runs: `engine` and
/// `rules` are the rules already loaded.
pub fn configured(config: &crate::AgentConfig, engine: Arc<Engine>, rules: RuleReport) -> Content {
    let (intel, intel_report) = crate::intel::load(&config.intel);
    Content {
        version: rules.content_version.clone(),
        dir: None,
        engine,
        rules,
        intel: Arc::new(intel),
        intel_report,
        yara: None,
        yara_files: 0,
        policy: None,
        memory_bytes: 0,
        yara_trial_ms: 0.0,
    }
}

fn check_policy(
    path: &Path,
    engine: &Engine,
    problems: &mut Vec<String>,
) -> Option<Vec<PolicyRule>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            problems.push(format!("{POLICY}: cannot read: {e}"));
            return None;
        }
    };
    let file: PolicyFile = match toml::from_str(&text) {
        Ok(f) => f,
        Err(e) => {
            let line = e.span().map_or(0, |s| line_at(&text, s.start));
            problems.push(format!("{POLICY}:{line}: {}", e.message()));
            return None;
        }
    };
    let respond = vigil_respond::RespondConfig {
        policy: file.policy,
        ..vigil_respond::RespondConfig::default()
    };
    if let Err(e) = respond.validate() {
        problems.push(format!("{POLICY}: {e}"));
        return None;
    }
    let known: std::collections::HashSet<&str> = engine
        .rules()
        .iter()
        .flat_map(|r| r.id.as_deref().into_iter().chain(r.name.as_deref()))
        .collect();
    let unknown = respond.unknown_rules(&|id| known.contains(id));
    for u in &unknown {
        let line = if u.span.is_empty() {
            0
        } else {
            line_at(&text, u.span.start)
        };
        problems.push(format!(
            "{POLICY}:{line}: the policy names rule `{}`, which no rule of the bundle \
             (or the built-in pack) has",
            u.id
        ));
    }
    unknown.is_empty().then_some(respond.policy)
}

/// A problem line with the bundle's directory taken off the paths it names.
fn relative(dir: &Path, line: &str) -> String {
    let prefix = format!("{}/", dir.display());
    line.replace(&prefix, "")
}

/// Writes `dir`'s manifest: every file under `sigma/`, `yara/`, `intel/` and
/// `policy.toml`, with its hash, under `version`. What the bundle's author runs once
/// the content is final (`vigil content seal`).
pub fn seal(dir: &Path, version: &str, description: &str) -> Result<Manifest, Refused> {
    let refused = |problems| Refused {
        dir: dir.to_path_buf(),
        version: Some(version.to_string()),
        problems,
    };
    if !valid_version(version) {
        return Err(refused(vec![format!(
            "version `{version}` is not 1 to 64 letters, digits, `.`, `_` or `-` (not \
             starting with `.`)"
        )]));
    }
    let mut found = Vec::new();
    let mut problems = Vec::new();
    list(dir, dir, &mut found, &mut problems);
    let mut files = BTreeMap::new();
    for name in found.into_iter().filter(|n| n != MANIFEST) {
        if let Err(why) = allowed_path(&name) {
            problems.push(format!("{name}: {why}"));
            continue;
        }
        match std::fs::read(dir.join(&name)) {
            Ok(bytes) => {
                files.insert(name, sha256_hex(&bytes));
            }
            Err(e) => problems.push(format!("{name}: cannot read: {e}")),
        }
    }
    if !problems.is_empty() {
        return Err(refused(problems));
    }
    let manifest = Manifest {
        version: version.to_string(),
        description: description.to_string(),
        files,
    };
    std::fs::write(dir.join(MANIFEST), manifest.to_toml())
        .map_err(|e| refused(vec![format!("{MANIFEST}: cannot write: {e}")]))?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory for one test.
    pub(crate) fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vigil-content-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    pub(crate) const RULE_ID: &str = "11111111-2222-4333-8444-555555555555";

    /// A bundle that passes: a Sigma rule, a YARA rule, indicators, a policy naming the
    /// rule; sealed as `version`.
    pub(crate) fn good(dir: &Path, version: &str) {
        for part in PARTS {
            std::fs::create_dir_all(dir.join(part)).expect("part");
        }
        std::fs::write(
            dir.join("sigma/marker.yml"),
            format!(
                "title: Bundle marker\nid: {RULE_ID}\nlevel: high\n\
                 logsource: {{product: linux, category: process_creation}}\n\
                 detection:\n    selection:\n        CommandLine|contains: 'bundle-marker-{version}'\n    condition: selection\n"
            ),
        )
        .expect("rule");
        std::fs::write(
            dir.join("yara/marker.yar"),
            "rule marker { strings: $a = \"vigil-yara-marker\" condition: $a }\n",
        )
        .expect("yara");
        std::fs::write(dir.join("intel/list.txt"), "203.0.113.77\nevil.example\n").expect("intel");
        std::fs::write(
            dir.join(POLICY),
            format!("policy = [\n  {{ rules = [\"{RULE_ID}\"], actions = [\"kill\"] }},\n]\n"),
        )
        .expect("policy");
        seal(dir, version, "a test bundle").expect("seals");
    }

    pub(crate) fn settings() -> Settings {
        Settings {
            rules: RulesConfig::default(),
            intel: IntelConfig::default(),
            content: ContentConfig::default(),
        }
    }

    fn problems(dir: &Path) -> Vec<String> {
        load(dir, &settings()).expect_err("refused").problems
    }

    /// The one problem containing `what`, or a panic listing them all.
    fn has(problems: &[String], what: &str) {
        assert!(
            problems.iter().any(|p| p.contains(what)),
            "no problem says `{what}`: {problems:#?}"
        );
    }

    #[test]
    fn a_sealed_bundle_loads_whole() {
        let dir = tmp("good");
        good(&dir, "2026.12.06-1");
        let m = verify(&dir).expect("verifies");
        assert_eq!(m.description, "a test bundle");
        assert_eq!(m.files.len(), 4);
        let c = load(&dir, &settings()).expect("passes");
        assert_eq!(c.version, "2026.12.06-1");
        assert!(c
            .engine
            .rules()
            .iter()
            .any(|r| r.id.as_deref() == Some(RULE_ID)));
        assert!(
            c.rules.builtin_files > 0,
            "the built-in pack runs beside it"
        );
        assert_eq!(c.intel.len(), 2);
        assert!(c.yara.is_some());
        assert_eq!(c.yara_files, 1);
        assert_eq!(c.policy.as_ref().map(Vec::len), Some(1));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_manifest_is_refused_with_what_is_wrong_in_it() {
        let dir = tmp("manifest");
        std::fs::write(dir.join(MANIFEST), "version = \"1\"\n[files]\nx = 3\n").expect("m");
        has(&problems(&dir), "bundle.toml:3: invalid type");
        std::fs::write(
            dir.join(MANIFEST),
            "version = \"1\"\nfiles = {}\ncolour = 1\n",
        )
        .expect("m");
        has(&problems(&dir), "bundle.toml:3: unknown field `colour`");
        std::fs::write(
            dir.join(MANIFEST),
            "version = \"../up\"\n[files]\n\"../../etc/passwd\" = \"00\"\n\"notes/a.txt\" = \"00\"\n\"sigma/r.txt\" = \"00\"\n\"intel/a.txt\" = \"00\"\n",
        )
        .expect("m");
        let p = problems(&dir);
        has(&p, "version `../up` is not");
        has(
            &p,
            "file `../../etc/passwd`: not a plain relative path inside the bundle",
        );
        has(&p, "file `notes/a.txt`: not under sigma/, yara/ or intel/");
        has(&p, "file `sigma/r.txt`: files under sigma/ are Sigma rules");
        has(&p, "`00` is not a SHA-256");
        std::fs::remove_file(dir.join(MANIFEST)).expect("rm");
        has(&problems(&dir), "bundle.toml: cannot read");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_file_changed_added_removed_or_linked_after_sealing_is_refused() {
        let dir = tmp("changed");
        good(&dir, "1");
        std::fs::write(dir.join("intel/list.txt"), "203.0.113.78\n").expect("change");
        std::fs::write(dir.join("intel/extra.txt"), "203.0.113.79\n").expect("add");
        std::fs::remove_file(dir.join("yara/marker.yar")).expect("remove");
        std::os::unix::fs::symlink("/etc/passwd", dir.join("sigma/link.yml")).expect("link");
        let p = problems(&dir);
        has(&p, "intel/list.txt: changed: its SHA-256 is ");
        has(&p, "intel/extra.txt: not listed in bundle.toml");
        has(
            &p,
            "yara/marker.yar: listed in bundle.toml but cannot be read",
        );
        has(&p, "sigma/link.yml: not a regular file or directory");
        assert_eq!(p.len(), 4, "{p:#?}");
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Adds `name` with `text` to the good bundle and seals it again.
    fn with(name: &str, text: &[u8]) -> (PathBuf, Vec<String>) {
        let dir = tmp(&name.replace('/', "-"));
        good(&dir, "1");
        std::fs::write(dir.join(name), text).expect("write");
        seal(&dir, "1", "").expect("seals");
        let p = problems(&dir);
        (dir, p)
    }

    #[test]
    fn corrupt_and_hostile_yara_files_are_refused_with_file_and_line() {
        let (dir, p) = with(
            "yara/bad.yar",
            b"rule ok { condition: true }\nrule bad {\n  condition: $missing\n}\n",
        );
        has(&p, "yara/bad.yar:3:");
        let _ = std::fs::remove_dir_all(dir);
        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let (dir, p) = with("yara/noise.yara", &noise);
        has(&p, "yara/noise.yara:");
        let _ = std::fs::remove_dir_all(dir);
        // Deep nesting overflowed yara-x's recursion (an abort): refused before it.
        let deep = format!(
            "rule deep {{ condition: {}true{} }}\n",
            "(".repeat(5000),
            ")".repeat(5000)
        );
        let (dir, p) = with("yara/deep.yar", deep.as_bytes());
        has(
            &p,
            "yara/deep.yar:1:124: nesting expressions nested more than 100 deep",
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_yara_set_that_takes_seconds_per_file_is_refused() {
        let (dir, p) = with(
            "yara/slow.yar",
            b"rule quadratic { condition: for any i in (0..filesize) : ( for any j in (0..filesize) : ( uint8(i) + uint8(j) == 600 ) ) }\n",
        );
        has(&p, "yara/: refused: scanning the executable sample");
        has(&p, "past the budget of 1000 ms per sample");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn truncated_stix_and_misp_are_refused_with_file_and_reason() {
        let stix = br#"{"type": "bundle", "objects": [{"type": "indicator", "id": "indicator--1", "pattern_type": "stix", "pattern": "[domain-name:value = 'c2.exa"#;
        let (dir, p) = with("intel/stix.json", stix);
        has(
            &p,
            "intel/stix.json:1:139: not valid JSON: EOF while parsing",
        );
        assert!(
            p.iter().all(|l| !l.contains(&dir.display().to_string())),
            "paths are the bundle's: {p:#?}"
        );
        let _ = std::fs::remove_dir_all(dir);
        let misp = br#"{"Event": {"info": "x", "Attribute": [{"type": "ip-dst", "value": "203.0"#;
        let (dir, p) = with("intel/misp.json", misp);
        has(&p, "intel/misp.json");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_broken_sigma_rule_is_refused_with_file_and_line() {
        let (dir, p) = with("sigma/bad.yml", b"title: Bad\nlogsource: {product: linux}\ndetection:\n  sel:\n    Image|nosuchmodifier: x\n  condition: sel\n");
        has(&p, "sigma/bad.yml:");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_policy_naming_an_unknown_rule_or_badly_written_is_refused_with_its_line() {
        let (dir, p) = with(POLICY, b"policy = [\n  { min_level = \"high\", actions = [\"kill\"] },\n  { rules = [\"no-such-rule\"], actions = [\"kill\"] },\n]\n");
        has(&p, "policy.toml:3: the policy names rule `no-such-rule`");
        let _ = std::fs::remove_dir_all(dir);
        let (dir, p) = with(
            POLICY,
            b"policy = [\n  { min_level = \"high\", actions = [\"kil\"] },\n]\n",
        );
        has(&p, "policy.toml:2: unknown variant `kil`");
        let _ = std::fs::remove_dir_all(dir);
        let (dir, p) = with(POLICY, b"policy = [ { actions = [\"kill\"] } ]\n");
        has(&p, "policy.toml: respond.policy rule 1: no criterion");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_bundle_past_the_memory_bound_is_refused() {
        let dir = tmp("memory");
        good(&dir, "1");
        let mut list = String::new();
        for i in 0..300_000u32 {
            list.push_str(&format!("{:064x}\n", u64::from(i) * 0x9e37_79b9));
        }
        std::fs::write(dir.join("intel/hashes.txt"), list).expect("write");
        seal(&dir, "1", "").expect("seals");
        let mut s = settings();
        s.content.max_memory_mib = 1;
        let p = load(&dir, &s).expect_err("refused").problems;
        has(
            &p,
            "MiB of memory, past the bound of 1 MiB (content.max_memory_mib)",
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
