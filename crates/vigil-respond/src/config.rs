//! The agent configuration's `[respond]` table: which findings trigger which actions,
//! how far each action may go, what it must never touch, and where its state lives.
//!
//! Everything here is plain data with serde; [`RespondConfig::validate`] checks what the
//! types cannot (a policy rule with no criterion, a tag that names no ATT&CK technique or
//! tactic, a management endpoint that is not an address). Rule ids are checked later,
//! against the rules the agent loaded ([`RespondConfig::unknown_rules`]).

use serde::{Deserialize, Serialize};
use serde_spanned::Spanned;
use std::path::PathBuf;

/// What an action does when a policy rule asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Nothing, not even a record.
    Off,
    /// Record what would have been done, and do nothing.
    Detect,
    /// Do it, and record how it went.
    Protect,
}

impl Mode {
    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Detect => "detect",
            Mode::Protect => "protect",
        }
    }
}

/// One of the things Vigil can do on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Freeze the flagged process and its descendants, then kill them.
    Kill,
    /// Refuse the flagged executable (by SHA-256) before it runs again.
    Block,
    /// Put back the files the story rewrote, from the rollback journal.
    Rollback,
    /// Move the flagged executable and the files its story wrote into the vault.
    Quarantine,
    /// Cut the host off the network but for loopback and the management endpoints.
    Isolate,
}

impl Action {
    /// Every action, in the order a plan runs them: the branch is killed before its
    /// files are restored or moved away, and the host isolated last.
    pub const ALL: [Action; 5] = [
        Action::Kill,
        Action::Block,
        Action::Rollback,
        Action::Quarantine,
        Action::Isolate,
    ];

    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Action::Kill => "kill",
            Action::Block => "block",
            Action::Rollback => "rollback",
            Action::Quarantine => "quarantine",
            Action::Isolate => "isolate",
        }
    }
}

/// A finding's level, as Sigma names them (the finding's `severity_id` 1 to 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Informational (severity 1).
    Informational,
    /// Low (2).
    Low,
    /// Medium (3).
    Medium,
    /// High (4).
    High,
    /// Critical (5).
    Critical,
}

impl Level {
    /// The OCSF `severity_id` of the level.
    pub fn severity_id(self) -> i32 {
        match self {
            Level::Informational => 1,
            Level::Low => 2,
            Level::Medium => 3,
            Level::High => 4,
            Level::Critical => 5,
        }
    }
}

/// The mode of each action.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Modes {
    /// Killing the flagged process's branch.
    pub kill: Mode,
    /// Refusing the flagged executable before it runs again.
    pub block: Mode,
    /// Restoring the files the story rewrote.
    pub rollback: Mode,
    /// Moving the flagged executable and the story's files into the vault.
    pub quarantine: Mode,
    /// Cutting the host off the network.
    pub isolate: Mode,
}

impl Default for Modes {
    fn default() -> Self {
        Modes {
            kill: Mode::Detect,
            block: Mode::Detect,
            rollback: Mode::Detect,
            quarantine: Mode::Detect,
            isolate: Mode::Detect,
        }
    }
}

impl Modes {
    /// The mode of one action.
    pub fn of(&self, action: Action) -> Mode {
        match action {
            Action::Kill => self.kill,
            Action::Block => self.block,
            Action::Rollback => self.rollback,
            Action::Quarantine => self.quarantine,
            Action::Isolate => self.isolate,
        }
    }

    /// Sets the mode of one action.
    pub fn set(&mut self, action: Action, mode: Mode) {
        match action {
            Action::Kill => self.kill = mode,
            Action::Block => self.block = mode,
            Action::Rollback => self.rollback = mode,
            Action::Quarantine => self.quarantine = mode,
            Action::Isolate => self.isolate = mode,
        }
    }
}

/// One policy rule: the findings it matches (every criterion given must hold; a list
/// holds when any of its entries does) and the actions it asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyRule {
    /// Rule ids (a Sigma rule's `id`, the finding's `finding_info.analytic.uid`).
    pub rules: Vec<Spanned<String>>,
    /// The lowest level matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_level: Option<Level>,
    /// ATT&CK tags: a technique (`attack.t1486`, `T1059` with its sub-techniques,
    /// `t1059.004`), a tactic by name (`attack.impact`, `defense-evasion`) or by id
    /// (`TA0040`).
    pub tags: Vec<String>,
    /// Story ids (`metadata.correlation_uid`): respond to everything found in a story.
    pub stories: Vec<String>,
    /// What to do.
    pub actions: Vec<Action>,
}

impl PolicyRule {
    /// The recommended rule: kill and quarantine on high and critical findings.
    pub fn recommended() -> Self {
        PolicyRule {
            min_level: Some(Level::High),
            actions: vec![Action::Kill, Action::Quarantine],
            ..PolicyRule::default()
        }
    }
}

/// What response must never touch, whatever a policy or a person asks.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Protected {
    /// Executables (exact paths, as `/proc/PID/exe` shows them) whose processes are
    /// never killed. pid 1, kernel threads, the agent and its ancestors never are,
    /// whatever this says. (Names are not offered: any process can take any name.)
    pub executables: Vec<PathBuf>,
    /// Path prefixes (whole components) whose files are never quarantined, blocked or
    /// rolled back: the system's own programs and libraries.
    pub paths: Vec<PathBuf>,
}

impl Default for Protected {
    fn default() -> Self {
        let paths = |l: &[&str]| l.iter().map(PathBuf::from).collect();
        Protected {
            executables: paths(&[
                "/usr/lib/systemd/systemd",
                "/lib/systemd/systemd",
                "/usr/lib/systemd/systemd-journald",
                "/usr/lib/systemd/systemd-logind",
                "/usr/sbin/sshd",
            ]),
            paths: paths(&[
                "/bin",
                "/sbin",
                "/lib",
                "/lib32",
                "/lib64",
                "/usr/bin",
                "/usr/sbin",
                "/usr/lib",
                "/usr/lib32",
                "/usr/lib64",
                "/usr/libexec",
                "/boot",
                "/etc",
            ]),
        }
    }
}

/// How a branch is killed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KillConfig {
    /// How the branch is frozen before it is killed: `sigstop` (each process stopped,
    /// the tree read again until no new child appears) or `cgroup` (moved into a frozen
    /// cgroup v2 of its own and killed there at once; what cannot be moved is stopped
    /// with SIGSTOP). SIGSTOP is the default: moving a process between cgroups waits
    /// for an RCU grace period, which made the cgroup freeze 2 to 3 times slower
    /// (notes/respond.md).
    pub freeze: FreezeMethod,
    /// Milliseconds to wait for the killed processes to be gone before the action is
    /// reported as partial.
    pub settle_ms: u64,
    /// Milliseconds after a kill during which a process the sensor reports as started
    /// from the killed branch (forked just before the freeze, seen late) is killed too.
    pub watch_ms: u64,
}

impl Default for KillConfig {
    fn default() -> Self {
        KillConfig {
            freeze: FreezeMethod::Sigstop,
            settle_ms: 1000,
            watch_ms: 2000,
        }
    }
}

/// How a branch is frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FreezeMethod {
    /// A cgroup v2 of the branch's own, frozen and killed with `cgroup.kill`.
    Cgroup,
    /// SIGSTOP to each process.
    Sigstop,
}

/// The quarantine vault.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuarantineConfig {
    /// The vault: a root-only directory (made 0700) holding each quarantined file with
    /// its metadata (path, owner, mode, times, SHA-256, the finding).
    pub vault_dir: PathBuf,
    /// Files larger than this many bytes are not quarantined (the record says so).
    pub max_file_bytes: u64,
    /// Whether the files the flagged story wrote (created, rewrote, renamed into place)
    /// are quarantined with its executable.
    pub story_files: bool,
    /// Files of one story quarantined at most.
    pub max_story_files: usize,
}

impl Default for QuarantineConfig {
    fn default() -> Self {
        QuarantineConfig {
            vault_dir: PathBuf::from("/var/lib/vigil/vault"),
            max_file_bytes: 256 << 20,
            story_files: true,
            max_story_files: 64,
        }
    }
}

/// Network isolation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IsolateConfig {
    /// Management endpoints still reachable while isolated: an address (`192.0.2.10`,
    /// `2001:db8::10`), a network (`192.0.2.0/24`), either with a TCP/UDP port
    /// (`192.0.2.10:8443`, `[2001:db8::10]:8443`).
    pub management: Vec<String>,
    /// The nft program (a path, or a name looked up in PATH).
    pub nft: PathBuf,
}

impl Default for IsolateConfig {
    fn default() -> Self {
        IsolateConfig {
            management: Vec::new(),
            nft: PathBuf::from("nft"),
        }
    }
}

/// Executables refused before they run (fanotify `FAN_OPEN_EXEC_PERM`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlockConfig {
    /// SHA-256 digests (hex) of executables refused. The `block` action adds the
    /// flagged executable's to these (kept in `state_dir/blocklist.json`).
    pub sha256: Vec<String>,
    /// Executable paths refused.
    pub paths: Vec<PathBuf>,
    /// Whether every mounted filesystem (pseudo filesystems left out) is watched, so
    /// every exec on the host is checked. The watch starts when the blocklist has an
    /// entry: an empty list costs nothing.
    pub all_mounts: bool,
    /// More places watched: a mount point (its whole filesystem, through any mount) or
    /// a directory (the files directly in it).
    pub watch: Vec<PathBuf>,
    /// Milliseconds a verdict may take. A verdict that runs longer (a huge file to hash,
    /// a slow disk) lets the program run; so does a helper process when the agent stops
    /// answering for this long (stopped, stuck): a stalled agent never hangs the host.
    pub deadline_ms: u64,
    /// Executables larger than this many bytes are checked by path only, not hashed.
    pub max_hash_bytes: u64,
    /// Executables whose digest is remembered (by device, inode, size and times).
    pub hash_cache: usize,
}

impl Default for BlockConfig {
    fn default() -> Self {
        BlockConfig {
            sha256: Vec::new(),
            paths: Vec::new(),
            all_mounts: true,
            watch: Vec::new(),
            deadline_ms: 100,
            max_hash_bytes: 64 << 20,
            hash_cache: 4096,
        }
    }
}

/// The rollback journal: the content of files as they were before an untrusted process
/// first opened them for writing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RollbackConfig {
    /// Directories whose files are journaled (each directory and those below it, as
    /// found at start and re-scanned every `rescan_secs`). Empty: no journal.
    pub paths: Vec<PathBuf>,
    /// Where the copies are kept (root-only; must not be under a journaled path).
    pub journal_dir: PathBuf,
    /// Bytes of copies kept at most; the oldest go first.
    pub max_bytes: u64,
    /// Seconds a copy is kept at most.
    pub max_age_secs: u64,
    /// Files larger than this many bytes are not copied (the journal notes the skip).
    pub max_file_bytes: u64,
    /// Directories watched at most.
    pub max_dirs: usize,
    /// Seconds between scans for new directories under the journaled paths.
    pub rescan_secs: u64,
    /// Executable path prefixes trusted to write: their writes are not journaled
    /// (package managers).
    pub trusted: Vec<PathBuf>,
}

impl Default for RollbackConfig {
    fn default() -> Self {
        RollbackConfig {
            paths: Vec::new(),
            journal_dir: PathBuf::from("/var/lib/vigil/journal"),
            max_bytes: 1 << 30,
            max_age_secs: 86_400,
            max_file_bytes: 64 << 20,
            max_dirs: 10_000,
            rescan_secs: 10,
            trusted: [
                "/usr/bin/dpkg",
                "/usr/bin/apt",
                "/usr/bin/rpm",
                "/usr/bin/dnf",
            ]
            .iter()
            .map(PathBuf::from)
            .collect(),
        }
    }
}

/// Response: the `[respond]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RespondConfig {
    /// The mode of each action (`[respond.modes]`).
    pub modes: Modes,
    /// Which findings trigger which actions: a finding gets every action of every rule
    /// it matches.
    pub policy: Vec<PolicyRule>,
    /// Where response keeps its state (the isolation state, the blocklist, the agent's
    /// heartbeat for anti-tamper). Root-only.
    pub state_dir: PathBuf,
    /// What is never acted on (`[respond.protected]`).
    pub protected: Protected,
    /// Killing (`[respond.kill]`).
    pub kill: KillConfig,
    /// The quarantine vault (`[respond.quarantine]`).
    pub quarantine: QuarantineConfig,
    /// Network isolation (`[respond.isolate]`).
    pub isolate: IsolateConfig,
    /// Blocking before exec (`[respond.block]`).
    pub block: BlockConfig,
    /// The rollback journal (`[respond.rollback]`).
    pub rollback: RollbackConfig,
    /// Whether the agent reports attempts on itself: stop signals, long stalls, changes
    /// to its binary, configuration, vault and state, the gap after a restart.
    pub tamper: bool,
}

impl Default for RespondConfig {
    fn default() -> Self {
        RespondConfig {
            modes: Modes::default(),
            policy: vec![PolicyRule::recommended()],
            state_dir: PathBuf::from("/var/lib/vigil"),
            protected: Protected::default(),
            kill: KillConfig::default(),
            quarantine: QuarantineConfig::default(),
            isolate: IsolateConfig::default(),
            block: BlockConfig::default(),
            rollback: RollbackConfig::default(),
            tamper: true,
        }
    }
}

/// A policy rule naming a rule id that no loaded rule has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownRule {
    /// The id.
    pub id: String,
    /// Its byte range in the configuration text (empty when not read from a file).
    pub span: std::ops::Range<usize>,
}

impl RespondConfig {
    /// The `--policy` switch: `off` and `detect` set every action's mode; `protect`
    /// is the recommended set: kill and quarantine do it (the policy's rules are those
    /// configured, the recommended rule when none is).
    pub fn apply_switch(&mut self, mode: Mode) {
        match mode {
            Mode::Off | Mode::Detect => {
                for a in Action::ALL {
                    self.modes.set(a, mode);
                }
            }
            Mode::Protect => {
                self.modes.kill = Mode::Protect;
                self.modes.quarantine = Mode::Protect;
                if self.policy.is_empty() {
                    self.policy.push(PolicyRule::recommended());
                }
            }
        }
    }

    /// Checks what the types do not: every policy rule has a criterion and an action,
    /// its tags name ATT&CK techniques or tactics, management endpoints parse, limits
    /// are positive, the journal is not under a journaled path.
    pub fn validate(&self) -> Result<(), String> {
        for (i, r) in self.policy.iter().enumerate() {
            let n = i + 1;
            if r.actions.is_empty() {
                return Err(format!("respond.policy rule {n}: no actions"));
            }
            if r.rules.is_empty()
                && r.min_level.is_none()
                && r.tags.is_empty()
                && r.stories.is_empty()
            {
                return Err(format!(
                    "respond.policy rule {n}: no criterion (rules, min_level, tags or stories); \
                     min_level = \"informational\" matches every finding"
                ));
            }
            for t in &r.tags {
                if Tag::parse(t).is_none() {
                    return Err(format!(
                        "respond.policy rule {n}: tag `{t}` names no ATT&CK technique \
                         (t1059, t1059.004) or tactic (impact, ta0040)"
                    ));
                }
            }
        }
        for m in &self.isolate.management {
            crate::isolate::Endpoint::parse(m)
                .map_err(|e| format!("respond.isolate.management: `{m}`: {e}"))?;
        }
        for h in &self.block.sha256 {
            if !is_sha256(h) {
                return Err(format!(
                    "respond.block.sha256: `{h}` is not 64 hexadecimal digits"
                ));
            }
        }
        if self.block.deadline_ms == 0 {
            return Err("respond.block.deadline_ms must be positive".into());
        }
        if self.kill.settle_ms == 0 {
            return Err("respond.kill.settle_ms must be positive".into());
        }
        for p in &self.rollback.paths {
            if self.rollback.journal_dir.starts_with(p) {
                return Err(format!(
                    "respond.rollback.journal_dir {} is under the journaled path {}",
                    self.rollback.journal_dir.display(),
                    p.display()
                ));
            }
        }
        if !self.rollback.paths.is_empty() && self.rollback.rescan_secs == 0 {
            return Err("respond.rollback.rescan_secs must be positive".into());
        }
        Ok(())
    }

    /// The policy's rule ids that `known` does not know, with where they are written.
    pub fn unknown_rules(&self, known: &dyn Fn(&str) -> bool) -> Vec<UnknownRule> {
        self.policy
            .iter()
            .flat_map(|r| &r.rules)
            .filter(|id| !known(id.get_ref()))
            .map(|id| UnknownRule {
                id: id.get_ref().clone(),
                span: id.span(),
            })
            .collect()
    }

    /// Whether any policy rule asks for `action` (with the action not off).
    pub fn wants(&self, action: Action) -> bool {
        self.modes.of(action) != Mode::Off
            && self.policy.iter().any(|r| r.actions.contains(&action))
    }
}

/// An ATT&CK tag of a policy rule, normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tag {
    /// A technique or sub-technique id, upper case (`T1059`, `T1059.004`). A technique
    /// matches its sub-techniques too.
    Technique(String),
    /// A tactic id (`TA0040`).
    TacticId(String),
    /// A tactic name, lower case with spaces (`defense evasion`).
    TacticName(String),
}

/// The tactics of ATT&CK Enterprise, by name (lower case, spaces).
const TACTIC_NAMES: [&str; 14] = [
    "reconnaissance",
    "resource development",
    "initial access",
    "execution",
    "persistence",
    "privilege escalation",
    "defense evasion",
    "credential access",
    "discovery",
    "lateral movement",
    "collection",
    "command and control",
    "exfiltration",
    "impact",
];

impl Tag {
    /// Parses `attack.t1059.004`, `T1059`, `ta0040`, `attack.defense-evasion`,
    /// `Defense Evasion`; `None` when the tag names nothing ATT&CK knows.
    pub fn parse(tag: &str) -> Option<Tag> {
        let t = tag.trim();
        let t = t.strip_prefix("attack.").unwrap_or(t);
        let lower = t.to_ascii_lowercase();
        if let Some(digits) = lower.strip_prefix("ta") {
            if digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit()) {
                return Some(Tag::TacticId(lower.to_ascii_uppercase()));
            }
        }
        if let Some(rest) = lower.strip_prefix('t') {
            let (main, sub) = match rest.split_once('.') {
                Some((m, s)) => (m, Some(s)),
                None => (rest, None),
            };
            let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
            if digits(main, 4) && sub.is_none_or(|s| digits(s, 3)) {
                return Some(Tag::Technique(lower.to_ascii_uppercase()));
            }
        }
        let name = lower.replace(['-', '_'], " ");
        TACTIC_NAMES
            .contains(&name.as_str())
            .then_some(Tag::TacticName(name))
    }
}

/// Whether `s` is a SHA-256 digest in hex.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}
