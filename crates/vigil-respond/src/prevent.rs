//! The responder's prevention and repair: the blocklist and the permission guard it
//! feeds, the journal it fills, and rollback of a story's writes from it.

use crate::config::{Action, Mode};
use crate::guard::{Blocklist, GuardEvent, PermGuard};
use crate::journal::{self, Journal, Rename};
use crate::policy::FindingFacts;
use crate::record::{self, Cause, Common, Outcome};
use crate::responder::Responder;
use crate::vault::sha256_of;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vigil_event::model::{hash_algorithm, remediation_status, FileActivity, Fingerprint, User};
use vigil_event::OcsfEvent;

/// The blocklist file in the state directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct BlocklistFile {
    sha256: Vec<String>,
    paths: Vec<PathBuf>,
}

fn sha_fingerprint(sha: &str) -> Fingerprint {
    Fingerprint {
        algorithm_id: hash_algorithm::SHA256,
        algorithm: Some(hash_algorithm::name(hash_algorithm::SHA256).into()),
        value: sha.to_string(),
    }
}

impl Responder {
    /// The program the permission guard runs as its helper (the agent's binary, which
    /// answers to `vigil perm-watchdog`).
    pub fn set_helper(&mut self, program: PathBuf) {
        self.helper = Some(program);
    }

    fn blocklist_file(&self) -> PathBuf {
        self.config().state_dir.join("blocklist.json")
    }

    /// The configuration's blocklist and the one the block action kept.
    fn load_blocklist(&self) -> Result<Blocklist, String> {
        let mut list = Blocklist {
            sha256: self
                .config()
                .block
                .sha256
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
            paths: self.config().block.paths.iter().cloned().collect(),
        };
        let path = self.blocklist_file();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let f: BlocklistFile = serde_json::from_str(&text)
                    .map_err(|e| format!("{}: unreadable: {e}", path.display()))?;
                list.sha256.extend(f.sha256);
                list.paths.extend(f.paths);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
        }
        Ok(list)
    }

    fn save_blocklist(&self, added_sha: &str) -> Result<(), String> {
        let path = self.blocklist_file();
        let mut f: BlocklistFile = match std::fs::read_to_string(&path) {
            Ok(t) => serde_json::from_str(&t).unwrap_or_default(),
            Err(_) => BlocklistFile::default(),
        };
        if !f.sha256.iter().any(|s| s == added_sha) {
            f.sha256.push(added_sha.to_string());
        }
        crate::vault::private_dir(&self.config().state_dir)
            .map_err(|e| format!("{}: {e}", self.config().state_dir.display()))?;
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(&f).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, text + "\n")
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("{}: cannot write: {e}", path.display()))
    }

    /// Starts the permission guard when it has work: a blocklist (or a policy that
    /// blocks) with block not off, or journaled directories. A guard that cannot start
    /// is reported with a record, never silently missing.
    pub(crate) fn start_guard(&mut self, now_ms: i64, out: &mut Vec<OcsfEvent>) {
        let block_mode = self.config().modes.block;
        let list = match self.load_blocklist() {
            Ok(l) => l,
            Err(e) => {
                self.guard_failed(Action::Block, e, now_ms, out);
                Blocklist::default()
            }
        };
        let blocking =
            block_mode != Mode::Off && (!list.is_empty() || self.config().wants(Action::Block));
        let journaling = !self.config().rollback.paths.is_empty();
        if !blocking && !journaling {
            return;
        }
        let journal = if journaling {
            match Journal::open(&self.config().rollback) {
                Ok(j) => Some(j),
                Err(e) => {
                    self.guard_failed(Action::Rollback, e.to_string(), now_ms, out);
                    None
                }
            }
        } else {
            None
        };
        let journaling = journal.is_some();
        let started = PermGuard::start(
            &self.config().block,
            if blocking { block_mode } else { Mode::Off },
            Blocklist::default(),
            journal,
            self.helper.as_deref(),
            self.boot_id().to_string(),
        );
        let mut perm = match started {
            Ok(p) => p,
            Err(e) => {
                let action = if blocking {
                    Action::Block
                } else {
                    Action::Rollback
                };
                self.guard_failed(action, e.to_string(), now_ms, out);
                return;
            }
        };
        if let Some(pid) = perm.helper_pid() {
            self.guard_mut().add_own(pid as i32);
        }
        if blocking {
            if let Err(e) = perm.set_blocklist(list.clone()) {
                self.guard_failed(Action::Block, e.to_string(), now_ms, out);
            }
        }
        self.blocklist = list;
        self.perm = Some(perm);
        if journaling {
            self.rescan_journal(now_ms, out);
        }
    }

    fn guard_failed(&mut self, action: Action, why: String, now_ms: i64, out: &mut Vec<OcsfEvent>) {
        tracing::error!("{}: {why}", action.name());
        let key = format!("{}:guard", action.name());
        if !self.once(&key) {
            return;
        }
        let cause = Cause::Manual("vigil agent (start)");
        let outcome = Outcome::failed(
            remediation_status::ERROR,
            format!(
                "{} is unavailable: {why}",
                if action == Action::Block {
                    "blocking before exec"
                } else {
                    "the rollback journal"
                }
            ),
        );
        let target = record::process_of(std::process::id() as i32, self.boot_id());
        let c = self.common(
            action,
            Mode::Protect,
            &cause,
            key,
            outcome,
            Map::new(),
            now_ms,
        );
        out.push(record::process(c, target));
    }

    fn rescan_journal(&mut self, now_ms: i64, out: &mut Vec<OcsfEvent>) {
        self.last_rescan = Some(Instant::now());
        let rb = self.config().rollback.clone();
        let dirs = journal::dirs_under(&rb.paths, rb.max_dirs);
        if dirs.len() >= rb.max_dirs {
            tracing::warn!(
                "the journaled paths hold more than {} directories: the rest are not journaled (respond.rollback.max_dirs)",
                rb.max_dirs
            );
        }
        if let Some(perm) = self.perm.as_mut() {
            if let Err(e) = perm.watch_journal_dirs(&dirs) {
                self.guard_failed(Action::Rollback, e.to_string(), now_ms, out);
            }
        }
    }

    /// Time passes: what the guard saw becomes records; the journaled directories are
    /// scanned for new ones.
    pub fn tick(&mut self, now_ms: i64, out: &mut Vec<OcsfEvent>) {
        self.drain_guard(now_ms, out);
        self.tamper_tick(now_ms, out);
        let every = Duration::from_secs(self.config().rollback.rescan_secs.max(1));
        if self.perm.is_some()
            && !self.config().rollback.paths.is_empty()
            && self.last_rescan.is_none_or(|t| t.elapsed() >= every)
        {
            self.rescan_journal(now_ms, out);
        }
    }

    /// Records of what the guard saw since the last call.
    pub fn drain_guard(&mut self, now_ms: i64, out: &mut Vec<OcsfEvent>) {
        let Some(perm) = self.perm.as_ref() else {
            return;
        };
        for ev in perm.drain() {
            match ev {
                GuardEvent::Exec {
                    pid,
                    path,
                    sha256,
                    matched,
                    refused,
                } => {
                    let key = format!("block-exec:{pid}:{}", path.display());
                    if !self.once(&key) {
                        continue;
                    }
                    let mode = if refused { Mode::Protect } else { Mode::Detect };
                    let mut extra = Map::new();
                    extra.insert("executable".into(), json!(path));
                    if let Some(s) = &sha256 {
                        extra.insert("sha256".into(), json!(s));
                    }
                    extra.insert("matched".into(), json!(matched));
                    let outcome = Outcome::success(format!(
                        "refuse the exec of {} (blocklisted by {matched})",
                        path.display()
                    ));
                    let cause = Cause::Manual("blocklist");
                    let c = self.common(Action::Block, mode, &cause, key, outcome, extra, now_ms);
                    let target = record::process_of(pid, self.boot_id());
                    if refused {
                        self.stats.done += 1;
                    } else {
                        self.stats.recorded += 1;
                    }
                    out.push(record::process(c, target));
                }
                GuardEvent::Deadline { path, elapsed } => {
                    let key = format!("block-deadline:{}", path.display());
                    if !self.once(&key) {
                        continue;
                    }
                    let mut extra = Map::new();
                    extra.insert("executable".into(), json!(path));
                    extra.insert("elapsed_us".into(), json!(elapsed.as_micros() as u64));
                    let outcome = Outcome::failed(
                        remediation_status::ERROR,
                        format!(
                            "the verdict on {} took {} ms, past respond.block.deadline_ms: it ran unchecked",
                            path.display(),
                            elapsed.as_millis()
                        ),
                    );
                    let cause = Cause::Manual("blocklist");
                    let c = self.common(
                        Action::Block,
                        Mode::Protect,
                        &cause,
                        key,
                        outcome,
                        extra,
                        now_ms,
                    );
                    let target = record::process_of(std::process::id() as i32, self.boot_id());
                    self.stats.failed += 1;
                    out.push(record::process(c, target));
                }
                GuardEvent::JournalSkip { why } => {
                    self.stats.journal_skipped += 1;
                    if self.stats.journal_skipped <= 20
                        || self.stats.journal_skipped.is_multiple_of(1000)
                    {
                        tracing::warn!(
                            skipped = self.stats.journal_skipped,
                            "not journaled: {why}"
                        );
                    }
                }
            }
        }
    }

    /// The guard's counters for the agent's statistics.
    pub fn guard_counters(&self) -> Vec<(&'static str, u64)> {
        let Some(p) = &self.perm else {
            return Vec::new();
        };
        let s = p.stats();
        let h = p.histogram();
        vec![
            ("block_exec_verdicts", s.exec_verdicts),
            ("block_refused", s.refused),
            ("block_would_refuse", s.would_refuse),
            ("block_past_deadline", s.past_deadline),
            ("block_hashed", s.hashed),
            ("block_verdict_us_p50", h.quantile(0.5)),
            ("block_verdict_us_p99", h.quantile(0.99)),
            ("block_verdict_us_max", s.exec_verdict_us_max),
            ("journal_open_verdicts", s.open_verdicts),
        ]
    }

    /// The block action: the flagged executable's SHA-256 joins the blocklist; the
    /// next exec of it is refused.
    pub(crate) fn block(
        &mut self,
        facts: &FindingFacts,
        mode: Mode,
        cause: &Cause<'_>,
        now_ms: i64,
        out: &mut Vec<OcsfEvent>,
    ) {
        // A file verdict blocks the file it judged (written now, executed perhaps
        // later: its first exec is refused); any other finding, the process's
        // executable.
        let target = match (&facts.file, &facts.process) {
            (Some(file), _) => Some(file.clone()),
            (None, Some(p)) => p.file.clone(),
            (None, None) => {
                self.no_process(Action::Block, mode, cause, facts, now_ms, out);
                return;
            }
        };
        let path = target
            .as_ref()
            .and_then(|f| f.path.as_deref())
            .map(PathBuf::from);
        let known = target.as_ref().and_then(|f| {
            f.hashes
                .iter()
                .find(|h| h.algorithm_id == hash_algorithm::SHA256)
                .map(|h| h.value.to_ascii_lowercase())
        });
        let sha = known.or_else(|| {
            let p = path.as_ref()?;
            sha256_of(std::fs::File::open(p).ok()?).ok()
        });
        let key = format!(
            "block:{}",
            sha.clone().unwrap_or_else(|| path
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string()))
        );
        if !self.once(&key) {
            return;
        }
        let mut extra = Map::new();
        if let Some(p) = &path {
            extra.insert("executable".into(), json!(p));
        }
        let outcome = match (&sha, &path) {
            (None, _) => Outcome::failed(
                remediation_status::DOES_NOT_EXIST,
                "the flagged executable has no known SHA-256 and cannot be read: nothing to block",
            ),
            (Some(_), Some(p)) if self.guard().spare_path(p).is_some() => Outcome::failed(
                remediation_status::FAILURE,
                self.guard().spare_path(p).unwrap_or_default(),
            ),
            (Some(s), _) => {
                extra.insert("sha256".into(), json!(s));
                if mode == Mode::Detect {
                    Outcome::success(format!("add SHA-256 {s} to the blocklist"))
                } else {
                    self.add_to_blocklist(s)
                }
            }
        };
        let c = self.common(Action::Block, mode, cause, key, outcome, extra, now_ms);
        match (&facts.file, facts.process.clone()) {
            (Some(file), _) => out.push(record::file(c, file.clone())),
            (None, Some(process)) => out.push(record::process(c, process)),
            (None, None) => {}
        }
    }

    fn add_to_blocklist(&mut self, sha: &str) -> Outcome {
        if let Err(e) = self.save_blocklist(sha) {
            return Outcome::failed(remediation_status::ERROR, e);
        }
        self.blocklist.sha256.insert(sha.to_string());
        if self.perm.is_none() {
            let mut out = Vec::new();
            self.start_guard(vigil_event::time::now_ms(), &mut out);
            if self.perm.is_none() {
                return Outcome::failed(
                    remediation_status::ERROR,
                    format!("SHA-256 {sha} kept in the blocklist, but the exec guard cannot start"),
                );
            }
        }
        let list = self.blocklist.clone();
        match self.perm.as_mut().map(|p| {
            p.set_mode(Mode::Protect);
            p.set_blocklist(list)
        }) {
            Some(Ok(())) => Outcome::success(format!(
                "added SHA-256 {sha} to the blocklist: its next exec is refused"
            )),
            Some(Err(e)) => Outcome::failed(remediation_status::ERROR, e.to_string()),
            None => Outcome::failed(remediation_status::ERROR, "the exec guard is not running"),
        }
    }

    /// A rename the sensor reported, kept in the journal when both paths are journaled.
    pub(crate) fn journal_rename(&mut self, f: &FileActivity, story: &str) {
        let rb = &self.config().rollback;
        if rb.paths.is_empty() {
            return;
        }
        let (Some(from), Some(to)) = (
            f.file.path.as_deref(),
            f.file_result.as_ref().and_then(|r| r.path.as_deref()),
        ) else {
            return;
        };
        let under = |p: &str| rb.paths.iter().any(|r| Path::new(p).starts_with(r));
        if !under(from) && !under(to) {
            return;
        }
        let r = Rename {
            time_ms: f.time,
            story: Some(story.to_string()),
            process_uid: f
                .actor
                .as_ref()
                .and_then(|a| a.process.as_ref())
                .and_then(|p| p.uid.clone()),
            from: PathBuf::from(from),
            to: PathBuf::from(to),
        };
        if let Err(e) = journal::append_rename(&rb.journal_dir, &r) {
            self.stats.journal_skipped += 1;
            tracing::warn!("cannot keep a rename in the journal: {e}");
        }
    }

    /// The rollback action: the story's journaled files put back (protect) or listed
    /// (detect), a record per file.
    pub(crate) fn rollback_story(
        &mut self,
        story: &str,
        mode: Mode,
        cause: &Cause<'_>,
        now_ms: i64,
        out: &mut Vec<OcsfEvent>,
    ) {
        let members = self.story_members(story);
        let mut done = std::mem::take(&mut self.rolled_back);
        let records = rollback_records(
            &self.config().rollback,
            story,
            &members,
            mode,
            cause,
            false,
            now_ms,
            &mut done,
        );
        self.rolled_back = done;
        out.extend(records);
    }
}

/// Rolls `story` back (or, in detect mode, says what would be put back) from the journal
/// configured in `rb`: a File Remediation record per file, and one for a journal that
/// cannot be read or holds nothing of the story. `done` holds the steps already taken
/// (or recorded), which are not repeated, and gains this call's.
#[allow(clippy::too_many_arguments)]
pub fn rollback_records(
    rb: &crate::config::RollbackConfig,
    story: &str,
    members: &HashSet<String>,
    mode: Mode,
    cause: &Cause<'_>,
    remove_created: bool,
    now_ms: i64,
    done: &mut HashSet<String>,
) -> Vec<OcsfEvent> {
    let common = |key: String, outcome: Outcome, extra: Map<String, serde_json::Value>| Common {
        action: Action::Rollback,
        restore: true,
        mode,
        cause: cause.clone(),
        command_uid: key,
        outcome,
        extra,
        time: now_ms,
    };
    let journal = match journal::open_existing(rb) {
        Ok(j) => j,
        Err(e) => {
            let c = common(
                format!("rollback:{story}"),
                Outcome::failed(remediation_status::DOES_NOT_EXIST, e.to_string()),
                Map::new(),
            );
            return vec![record::file(c, record::file_of(&rb.journal_dir))];
        }
    };
    let mut plan = journal.plan(story, members);
    let mut out = Vec::new();
    for u in &plan.unreadable {
        tracing::warn!("journal: {u}");
    }
    let empty = |p: &journal::RollbackPlan| {
        p.restores.is_empty() && p.unrename.is_empty() && p.created.is_empty()
    };
    let nothing = empty(&plan);
    let rename_key = |a: &Path, b: &Path| format!("rename:{}>{}", a.display(), b.display());
    let created_key = |c: &Path| format!("new:{}", c.display());
    plan.restores.retain(|(e, _)| !done.contains(&e.id));
    plan.unrename
        .retain(|(a, b)| !done.contains(&rename_key(a, b)));
    plan.created.retain(|c| !done.contains(&created_key(c)));
    done.extend(plan.restores.iter().map(|(e, _)| e.id.clone()));
    done.extend(plan.unrename.iter().map(|(a, b)| rename_key(a, b)));
    done.extend(plan.created.iter().map(|c| created_key(c)));
    if !nothing && empty(&plan) {
        // Rolled back (or recorded) already.
        return out;
    }
    if nothing {
        if !done.insert(format!("nothing:{story}")) {
            return out;
        }
        let c = common(
            format!("rollback:{story}"),
            Outcome::failed(
                remediation_status::DOES_NOT_EXIST,
                format!("the journal holds nothing story {story} wrote"),
            ),
            Map::new(),
        );
        out.push(record::file(c, record::file_of(&rb.journal_dir)));
        return out;
    }
    if mode == Mode::Detect {
        for (e, cur) in &plan.restores {
            let mut extra = Map::new();
            extra.insert("journal_entry".into(), json!(e.id));
            extra.insert("now_at".into(), json!(cur));
            let mut f = record::file_of(&e.path);
            f.hashes = vec![sha_fingerprint(&e.sha256)];
            let c = common(
                format!("rollback:{story}:{}", e.dev_ino),
                Outcome::success(format!(
                    "put back {} ({} bytes) as it was before story {story} wrote it",
                    e.path.display(),
                    e.size
                )),
                extra,
            );
            out.push(record::file(c, f));
        }
        return out;
    }
    for step in journal.rollback(&plan, remove_created) {
        let mut extra = Map::new();
        let mut f = record::file_of(&step.path);
        let key = match &step.entry {
            Some(e) => {
                extra.insert("journal_entry".into(), json!(e.id));
                f.size = Some(e.size as i64);
                f.attributes = Some(e.mode as i32);
                f.owner = Some(User {
                    uid: Some(e.uid.to_string()),
                    ..User::default()
                });
                f.hashes = vec![sha_fingerprint(&e.sha256)];
                format!("rollback:{story}:{}", e.dev_ino)
            }
            None => format!("rollback:{story}:{}", step.path.display()),
        };
        let outcome = match &step.outcome {
            Ok(what) => Outcome::success(format!("{}: {what}", step.path.display())),
            Err(why) => Outcome::failed(
                remediation_status::ERROR,
                format!("{}: {why}", step.path.display()),
            ),
        };
        out.push(record::file(common(key, outcome, extra), f));
    }
    out
}
