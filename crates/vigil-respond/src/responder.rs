//! The responder: what the agent's response stage runs. It follows the event stream
//! (which process descends from which, which files each story wrote), answers each new
//! Detection Finding with the actions its policy calls for, and reports every action,
//! done or only recorded, once.

use crate::config::{Action, Mode, RespondConfig};
use crate::isolate::Isolation;
use crate::kill::{kill_branch, KillReport};
use crate::policy::{FindingFacts, Policy};
use crate::procs::{children, parse_uid, Guard, ProcInfo, Target};
use crate::record::{self, Cause, Common, Outcome};
use crate::tamper;
use crate::vault::{Provenance, Vault, VaultError};
use serde_json::{json, Map, Value as Json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vigil_event::model::{hash_algorithm, remediation_status, Fingerprint, Process, User};
use vigil_event::OcsfEvent;

/// Processes followed at most.
const MAX_TRACKED: usize = 131_072;
/// Stories whose written files are followed at most.
const MAX_STORIES: usize = 4096;
/// How long an exited process stays known, for the lineage of its children (ms).
const LINGER_MS: i64 = 60_000;

/// A process seen in the stream.
#[derive(Debug, Clone)]
struct Tracked {
    target: Target,
    parent: Option<Box<str>>,
    story: Option<Box<str>>,
    exited: bool,
}

/// Counters, for the agent's statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RespondStats {
    /// Findings the policy called for actions on.
    pub findings: u64,
    /// Actions done (protect mode), whatever their outcome.
    pub done: u64,
    /// Actions only recorded (detect mode).
    pub recorded: u64,
    /// Actions asked for again and not repeated (already done or recorded).
    pub repeats: u64,
    /// Actions that failed or were partial.
    pub failed: u64,
    /// Processes killed late: started by a killed branch, seen after the kill.
    pub late_kills: u64,
    /// Files the journal did not copy (too large, errors) and renames it could not keep.
    pub journal_skipped: u64,
    /// Findings about attempts on the agent itself.
    pub tamper_findings: u64,
}

/// The responder.
pub struct Responder {
    config: RespondConfig,
    policy: Policy,
    guard: Guard,
    boot_id: String,
    procs: HashMap<Box<str>, Tracked>,
    kids: HashMap<Box<str>, Vec<Box<str>>>,
    exits: VecDeque<(i64, Box<str>)>,
    story_files: HashMap<Box<str>, Vec<PathBuf>>,
    /// Commands already answered: each is reported once.
    done: HashSet<String>,
    /// Branches killed: process uid -> (until when late children are killed too, the
    /// finding's facts and policy rule).
    killed: HashMap<Box<str>, (Instant, FindingFacts, usize)>,
    vault: Option<Result<Vault, String>>,
    pub(crate) stats: RespondStats,
    /// The permission guard (block before exec, the journal), once started.
    pub(crate) perm: Option<crate::guard::PermGuard>,
    /// The program run as the guard's helper (the agent's own binary).
    pub(crate) helper: Option<PathBuf>,
    /// The blocklist: the configuration's and the block action's.
    pub(crate) blocklist: crate::guard::Blocklist,
    /// When the journaled directories were last scanned.
    pub(crate) last_rescan: Option<Instant>,
    /// Rollback steps taken or recorded (journal entries, renames): each once.
    pub(crate) rolled_back: HashSet<String>,
    /// Anti-tamper.
    pub(crate) tamper: tamper::TamperState,
}

/// The finding's flagged process's executable, if its path is known.
fn exe_path(p: &Process) -> Option<PathBuf> {
    p.file.as_ref()?.path.as_deref().map(PathBuf::from)
}

impl Responder {
    /// A responder with this configuration; `own_paths` are the agent's own files
    /// (binary, configuration) besides the vault, journal and state directories.
    pub fn new(config: RespondConfig, mut own_paths: Vec<PathBuf>) -> Responder {
        own_paths.extend([
            config.quarantine.vault_dir.clone(),
            config.rollback.journal_dir.clone(),
            config.state_dir.clone(),
        ]);
        Responder {
            policy: Policy::new(&config),
            guard: Guard::new(config.protected.clone(), own_paths),
            boot_id: crate::procs::boot_id(),
            config,
            procs: HashMap::new(),
            kids: HashMap::new(),
            exits: VecDeque::new(),
            story_files: HashMap::new(),
            done: HashSet::new(),
            killed: HashMap::new(),
            vault: None,
            stats: RespondStats::default(),
            perm: None,
            helper: None,
            blocklist: crate::guard::Blocklist::default(),
            last_rescan: None,
            rolled_back: HashSet::new(),
            tamper: tamper::TamperState::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RespondConfig {
        &self.config
    }

    /// Answers findings with these policy rules from now on (a content bundle's; the
    /// modes stay the configuration's). What was set up at start for an action
    /// (the exec guard, the rollback journal) is not: a policy that newly asks for
    /// block or rollback acts from what is there.
    pub fn set_policy(&mut self, policy: Vec<crate::config::PolicyRule>) {
        self.config.policy = policy;
        self.policy = Policy::new(&self.config);
    }

    /// The boot id process uids start with.
    pub(crate) fn boot_id(&self) -> &str {
        &self.boot_id
    }

    /// The guard rails.
    pub(crate) fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Live processes the stream placed in `story`.
    pub(crate) fn story_members(&self, story: &str) -> HashSet<String> {
        self.procs
            .iter()
            .filter(|(_, t)| t.story.as_deref() == Some(story))
            .map(|(u, _)| u.to_string())
            .collect()
    }

    /// What the agent does when it starts: puts back an isolation that was asked for
    /// and lost (a reboot), removes freeze cgroups a crash left behind.
    pub fn startup(&mut self, now_ms: i64, out: &mut Vec<OcsfEvent>) {
        let iso = Isolation::new(&self.config.isolate.nft, &self.config.state_dir);
        let restored = iso.restore_if_lost();
        let mut extra = Map::new();
        let outcome = match restored {
            Ok(None) => None,
            Ok(Some(state)) => {
                extra.insert("management".into(), json!(state.management));
                extra.insert("since_ms".into(), json!(state.since_ms));
                Some(Outcome::success(format!(
                    "put back the isolation asked for at {} ({}), lost from the kernel",
                    vigil_event::time::format_ms(state.since_ms),
                    state.reason
                )))
            }
            Err(e) => Some(Outcome::failed(
                remediation_status::ERROR,
                format!("cannot check or put back the host's isolation: {e}"),
            )),
        };
        if let Some(outcome) = outcome {
            let line = "vigil agent (start)";
            out.push(record::network(self.common(
                Action::Isolate,
                Mode::Protect,
                &Cause::Manual(line),
                "isolate:host".into(),
                outcome,
                extra,
                now_ms,
            )));
        }
        self.start_guard(now_ms, out);
        self.tamper_start(now_ms, out);
        if let Some(root) = crate::kill::cgroup2_root() {
            for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
                let p = e.path();
                if crate::kill::is_freeze_group(&p) {
                    // Thawed and removed if empty; one still holding processes is left
                    // thawed, reported in the log.
                    let _ = std::fs::write(p.join("cgroup.freeze"), "0");
                    if let Err(err) = std::fs::remove_dir(&p) {
                        tracing::warn!(
                            "a freeze cgroup from an earlier run stays: {}: {err}",
                            p.display()
                        );
                    }
                }
            }
        }
    }

    /// At start: the gap since the last run (anti-tamper).
    pub(crate) fn tamper_start(&mut self, now_ms: i64, out: &mut Vec<OcsfEvent>) {
        let cx = tamper::Context {
            config: &self.config,
            boot_id: &self.boot_id,
            guard: &self.guard,
        };
        self.tamper.start(&cx, now_ms, out);
    }

    /// Each tick: signals, stalls, eBPF links, the heartbeat (anti-tamper).
    pub(crate) fn tamper_tick(&mut self, now_ms: i64, out: &mut Vec<OcsfEvent>) {
        let cx = tamper::Context {
            config: &self.config,
            boot_id: &self.boot_id,
            guard: &self.guard,
        };
        self.tamper.tick(&cx, now_ms, out);
    }

    /// An event that may touch the agent's process or files (anti-tamper).
    fn tamper_event(&mut self, ev: &OcsfEvent, out: &mut Vec<OcsfEvent>) {
        let cx = tamper::Context {
            config: &self.config,
            boot_id: &self.boot_id,
            guard: &self.guard,
        };
        self.tamper.event(&cx, ev, out);
    }

    /// The clean stop, noted for the next start.
    pub fn tamper_stop(&mut self) {
        let cx = tamper::Context {
            config: &self.config,
            boot_id: &self.boot_id,
            guard: &self.guard,
        };
        self.tamper.stop(&cx);
    }

    /// The counters.
    pub fn stats(&self) -> RespondStats {
        RespondStats {
            tamper_findings: self.tamper.findings,
            ..self.stats
        }
    }

    /// The guard rails, to add the agent's helper processes.
    pub fn guard_mut(&mut self) -> &mut Guard {
        &mut self.guard
    }

    /// Follows one event of the stream; returns records of late kills (a process
    /// started by a branch killed moments ago).
    pub fn observe(&mut self, ev: &OcsfEvent, now_ms: i64, out: &mut Vec<OcsfEvent>) {
        self.tamper_event(ev, out);
        match ev {
            OcsfEvent::Process(p) => {
                let Some(uid) = p.process.uid.as_deref() else {
                    return;
                };
                if p.activity_id == 2 {
                    if let Some(t) = self.procs.get_mut(uid) {
                        if !t.exited {
                            t.exited = true;
                            self.exits.push_back((now_ms, uid.into()));
                        }
                    }
                    self.expire(now_ms);
                    return;
                }
                if p.activity_id != 1 || self.procs.contains_key(uid) {
                    return;
                }
                let Some((pid, start_ticks)) = parse_uid(uid) else {
                    return;
                };
                let parent: Option<Box<str>> = p
                    .process
                    .parent_process
                    .as_ref()
                    .and_then(|pp| pp.uid.as_deref())
                    .map(Into::into);
                if self.procs.len() >= MAX_TRACKED {
                    self.expire(i64::MAX);
                    if self.procs.len() >= MAX_TRACKED {
                        return;
                    }
                }
                if let Some(par) = &parent {
                    self.kids.entry(par.clone()).or_default().push(uid.into());
                }
                self.procs.insert(
                    uid.into(),
                    Tracked {
                        target: Target { pid, start_ticks },
                        parent: parent.clone(),
                        story: p.metadata.correlation_uid.as_deref().map(Into::into),
                        exited: false,
                    },
                );
                if !self.killed.is_empty() {
                    self.late_kill(uid, out);
                }
            }
            OcsfEvent::File(f) => {
                let Some(story) = f.metadata.correlation_uid.as_deref() else {
                    return;
                };
                let path = match f.activity_id {
                    1 | 3 => f.file.path.as_deref(),
                    5 => f.file_result.as_ref().and_then(|r| r.path.as_deref()),
                    _ => None,
                };
                let Some(path) = path else { return };
                if f.activity_id == 5 {
                    self.journal_rename(f, story);
                }
                if self.story_files.len() >= MAX_STORIES && !self.story_files.contains_key(story) {
                    return;
                }
                let list = self.story_files.entry(story.into()).or_default();
                let cap = self.config.quarantine.max_story_files * 4;
                if list.len() < cap && !list.iter().any(|p| p.as_os_str() == path) {
                    list.push(PathBuf::from(path));
                }
            }
            _ => {}
        }
    }

    fn expire(&mut self, now_ms: i64) {
        while let Some((t, _)) = self.exits.front() {
            if now_ms.saturating_sub(*t) < LINGER_MS {
                break;
            }
            let Some((_, uid)) = self.exits.pop_front() else {
                break;
            };
            if let Some(tr) = self.procs.remove(&uid) {
                if let Some(par) = tr.parent {
                    if let Some(list) = self.kids.get_mut(&par) {
                        list.retain(|k| *k != uid);
                        if list.is_empty() {
                            self.kids.remove(&par);
                        }
                    }
                }
            }
        }
    }

    /// Live processes the stream says descend from `uid` (through exited ones too).
    fn tracked_descendants(&self, uid: &str) -> Vec<Target> {
        let mut out = Vec::new();
        let mut stack: Vec<&str> = vec![uid];
        let mut seen = HashSet::new();
        while let Some(u) = stack.pop() {
            if !seen.insert(u) || seen.len() > 100_000 {
                continue;
            }
            for k in self.kids.get(u).into_iter().flatten() {
                if let Some(t) = self.procs.get(k) {
                    if !t.exited {
                        out.push(t.target);
                    }
                }
                stack.push(k);
            }
        }
        out
    }

    /// A process just seen whose ancestor was killed moments ago: killed as well.
    fn late_kill(&mut self, uid: &str, out: &mut Vec<OcsfEvent>) {
        let now = Instant::now();
        self.killed.retain(|_, (until, _, _)| *until > now);
        let mut cur = self.procs.get(uid).and_then(|t| t.parent.clone());
        let mut hops = 0;
        let mut hit = None;
        while let Some(p) = cur {
            if let Some(k) = self.killed.get(&p) {
                hit = Some(k.clone());
                break;
            }
            hops += 1;
            if hops > 64 {
                break;
            }
            cur = self.procs.get(&p).and_then(|t| t.parent.clone());
        }
        let Some((until, facts, rule)) = hit else {
            return;
        };
        let Some(t) = self.procs.get(uid).map(|t| t.target) else {
            return;
        };
        let start = Instant::now();
        let more = self.tracked_descendants(uid);
        let report = kill_branch(
            t,
            &more,
            &self.guard,
            self.config.kill.freeze,
            self.settle(),
        );
        self.killed.insert(uid.into(), (until, facts.clone(), rule));
        if report.killed.is_empty() && report.spared.is_empty() {
            return;
        }
        self.stats.late_kills += 1;
        let process = record::process_of(t.pid, &self.boot_id);
        let target = Process {
            uid: Some(uid.to_string()),
            ..process
        };
        let ev = self.kill_record(
            &Cause::Finding(&facts, rule),
            Mode::Protect,
            target,
            &report,
            start.elapsed(),
            true,
        );
        out.push(ev);
    }

    fn settle(&self) -> Duration {
        Duration::from_millis(self.config.kill.settle_ms)
    }

    /// Answers a finding: the plan's actions, done or recorded, each reported once.
    pub fn on_finding(&mut self, ev: &OcsfEvent, now_ms: i64, out: &mut Vec<OcsfEvent>) {
        let Some(facts) = FindingFacts::of_event(ev) else {
            return;
        };
        let plan = self.policy.plan(&facts);
        if plan.is_empty() {
            return;
        }
        self.stats.findings += 1;
        for p in plan {
            let cause = Cause::Finding(&facts, p.rule);
            let before = out.len();
            match p.action {
                Action::Kill if facts.process.is_none() => {
                    self.no_process(Action::Kill, p.mode, &cause, &facts, now_ms, out);
                }
                Action::Kill => {
                    if let Some(proc_) = &facts.process {
                        let started = self.kill_process(proc_.clone(), p.mode, &cause, now_ms, out);
                        if started && p.mode == Mode::Protect {
                            if let Some(uid) = proc_.uid.as_deref() {
                                let until = Instant::now()
                                    + Duration::from_millis(self.config.kill.watch_ms);
                                self.killed
                                    .insert(uid.into(), (until, facts.clone(), p.rule));
                            }
                        }
                    }
                }
                Action::Quarantine => {
                    let mut paths = Vec::new();
                    // A file verdict flags its file (the process that wrote it may be
                    // a shell or a download tool); any other finding, the executable.
                    let flagged = match &facts.file {
                        Some(f) => f.path.as_deref().map(PathBuf::from),
                        None => facts.process.as_ref().and_then(exe_path),
                    };
                    paths.extend(flagged);
                    if self.config.quarantine.story_files {
                        if let Some(files) =
                            facts.story.as_deref().and_then(|s| self.story_files.get(s))
                        {
                            for f in files.iter().take(self.config.quarantine.max_story_files) {
                                if !paths.contains(f) {
                                    paths.push(f.clone());
                                }
                            }
                        }
                    }
                    for path in paths {
                        self.quarantine(&path, p.mode, &cause, now_ms, out);
                    }
                }
                Action::Isolate => self.isolate(p.mode, &cause, now_ms, out),
                Action::Block => self.block(&facts, p.mode, &cause, now_ms, out),
                Action::Rollback => match facts.story.clone() {
                    Some(story) => self.rollback_story(&story, p.mode, &cause, now_ms, out),
                    None => self.no_process(Action::Rollback, p.mode, &cause, &facts, now_ms, out),
                },
            }
            self.count(p.mode, &out[before..]);
        }
    }

    /// A finding that names no process (a correlation over several): nothing to kill
    /// or block, and a record that says so.
    pub(crate) fn no_process(
        &mut self,
        action: Action,
        mode: Mode,
        cause: &Cause<'_>,
        facts: &FindingFacts,
        now_ms: i64,
        out: &mut Vec<OcsfEvent>,
    ) {
        let key = format!("{}:finding-{}", action.name(), facts.uid);
        if !self.once(&key) {
            return;
        }
        // The record's process is the story's first one: the finding's only process.
        let target = Process {
            uid: Some(facts.story.clone().unwrap_or_else(|| facts.uid.clone())),
            ..Process::default()
        };
        let outcome = Outcome::failed(
            remediation_status::UNSUPPORTED,
            format!("the finding names no process: nothing to {}", action.name()),
        );
        out.push(record::process(
            self.common(action, mode, cause, key, outcome, Map::new(), now_ms),
            target,
        ));
    }

    fn count(&mut self, mode: Mode, records: &[OcsfEvent]) {
        for r in records {
            match mode {
                Mode::Detect => self.stats.recorded += 1,
                _ => self.stats.done += 1,
            }
            let status = match r {
                OcsfEvent::FileRemediation(e) => e.status_id,
                OcsfEvent::ProcessRemediation(e) => e.status_id,
                OcsfEvent::NetworkRemediation(e) => e.status_id,
                _ => None,
            };
            if mode == Mode::Protect && status != Some(remediation_status::SUCCESS) {
                self.stats.failed += 1;
            }
        }
    }

    /// Whether `command` is new (then it is remembered): every command is answered once.
    pub(crate) fn once(&mut self, command: &str) -> bool {
        if self.done.contains(command) {
            self.stats.repeats += 1;
            return false;
        }
        if self.done.len() > 1_000_000 {
            self.done.clear();
        }
        self.done.insert(command.to_string());
        true
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn common<'a>(
        &self,
        action: Action,
        mode: Mode,
        cause: &Cause<'a>,
        command_uid: String,
        outcome: Outcome,
        extra: Map<String, Json>,
        now_ms: i64,
    ) -> Common<'a> {
        Common {
            action,
            restore: false,
            mode,
            cause: cause.clone(),
            command_uid,
            outcome,
            extra,
            time: now_ms,
        }
    }

    /// Kills a story: its first process's branch and every live process the stream
    /// placed in it (those re-parented away included).
    pub fn kill_story(
        &mut self,
        story: &str,
        mode: Mode,
        cause: &Cause<'_>,
        now_ms: i64,
        out: &mut Vec<OcsfEvent>,
    ) {
        let members: Vec<(Box<str>, Target)> = self
            .procs
            .iter()
            .filter(|(_, t)| !t.exited && t.story.as_deref() == Some(story))
            .map(|(u, t)| (u.clone(), t.target))
            .collect();
        let root = Process {
            uid: Some(story.to_string()),
            pid: parse_uid(story).map(|(p, _)| p),
            ..Process::default()
        };
        let mut records = Vec::new();
        self.kill_process(root, mode, cause, now_ms, &mut records);
        for (uid, t) in members {
            let p = Process {
                uid: Some(uid.to_string()),
                pid: Some(t.pid),
                ..Process::default()
            };
            let mut more = Vec::new();
            self.kill_process(p, mode, cause, now_ms, &mut more);
            // A member killed with an earlier branch was reported there, not again here
            // as gone.
            records.extend(more.into_iter().filter(|e| {
                !matches!(e, OcsfEvent::ProcessRemediation(r)
                    if r.status_id == Some(remediation_status::DOES_NOT_EXIST))
            }));
        }
        out.extend(records);
    }

    /// Kills (or, in detect mode, lists) the branch of `target` (a process with its
    /// pid and uid). Returns whether a kill was attempted on a live process.
    pub fn kill_process(
        &mut self,
        target: Process,
        mode: Mode,
        cause: &Cause<'_>,
        now_ms: i64,
        out: &mut Vec<OcsfEvent>,
    ) -> bool {
        let Some((pid, start_ticks)) = target
            .uid
            .as_deref()
            .and_then(parse_uid)
            .or_else(|| Some((target.pid?, ProcInfo::read(target.pid?)?.start_ticks)))
        else {
            let key = format!("kill:pid-{}", target.pid.unwrap_or(0));
            if self.once(&key) {
                let outcome = Outcome::failed(
                    remediation_status::DOES_NOT_EXIST,
                    "the process has no pid or uid to act on",
                );
                out.push(record::process(
                    self.common(Action::Kill, mode, cause, key, outcome, Map::new(), now_ms),
                    target,
                ));
            }
            return false;
        };
        let uid = crate::procs::process_uid(&self.boot_id, pid, start_ticks);
        let key = format!("kill:{uid}");
        if !self.once(&key) {
            return false;
        }
        let root = Target { pid, start_ticks };
        let more = self.tracked_descendants(&uid);
        if mode == Mode::Detect {
            let (outcome, extra) = self.would_kill(root, &more);
            out.push(record::process(
                self.common(Action::Kill, mode, cause, key, outcome, extra, now_ms),
                target,
            ));
            return false;
        }
        let start = Instant::now();
        let report = kill_branch(
            root,
            &more,
            &self.guard,
            self.config.kill.freeze,
            self.settle(),
        );
        let elapsed = start.elapsed();
        let attempted = !report.gone && !report.killed.is_empty();
        out.push(self.kill_record(cause, mode, target, &report, elapsed, false));
        attempted
    }

    /// What a kill would take, without touching anything.
    fn would_kill(&self, root: Target, more: &[Target]) -> (Outcome, Map<String, Json>) {
        let mut extra = Map::new();
        let Some(info) = root.live() else {
            return (
                Outcome::failed(
                    remediation_status::DOES_NOT_EXIST,
                    format!("process {} had already exited", root.pid),
                ),
                extra,
            );
        };
        if let Some(why) = self.guard.spare(&info) {
            return (
                Outcome::failed(
                    remediation_status::FAILURE,
                    format!("process {}: {why}", root.pid),
                ),
                extra,
            );
        }
        let mut branch = vec![json!({"pid": root.pid, "name": info.comm})];
        let mut stack: Vec<i32> = vec![root.pid];
        stack.extend(more.iter().map(|t| t.pid));
        let mut seen: HashSet<i32> = HashSet::from([root.pid]);
        while let Some(p) = stack.pop() {
            for c in children(p) {
                if seen.insert(c) && seen.len() < 10_000 {
                    if let Some(ci) = ProcInfo::read(c) {
                        branch.push(json!({"pid": c, "name": ci.comm}));
                    }
                    stack.push(c);
                }
            }
        }
        let n = branch.len();
        extra.insert("branch".into(), Json::Array(branch));
        (
            Outcome::success(format!(
                "freeze and kill process {} and its branch ({n} processes)",
                root.pid
            )),
            extra,
        )
    }

    fn kill_record(
        &self,
        cause: &Cause<'_>,
        mode: Mode,
        target: Process,
        r: &KillReport,
        elapsed: Duration,
        late: bool,
    ) -> OcsfEvent {
        let pid = target.pid.unwrap_or(0);
        let mut extra = Map::new();
        let killed: Vec<Json> = r
            .killed
            .iter()
            .map(|k| {
                json!({
                    "pid": k.target.pid,
                    "uid": crate::procs::process_uid(&self.boot_id, k.target.pid, k.target.start_ticks),
                    "ppid": k.ppid,
                    "name": k.comm,
                    "frozen_by": k.how,
                })
            })
            .collect();
        extra.insert("killed".into(), Json::Array(killed));
        if !r.spared.is_empty() {
            let spared: Vec<Json> = r
                .spared
                .iter()
                .map(|(p, why)| json!({"pid": p.pid, "name": p.comm, "why": why.to_string()}))
                .collect();
            extra.insert("spared".into(), Json::Array(spared));
        }
        if !r.survivors.is_empty() {
            let s: Vec<i32> = r.survivors.iter().map(|t| t.pid).collect();
            extra.insert("survivors".into(), json!(s));
        }
        if !r.errors.is_empty() {
            extra.insert("errors".into(), json!(r.errors));
        }
        if late {
            extra.insert("late".into(), json!(true));
        }
        extra.insert("passes".into(), json!(r.passes));
        extra.insert("frozen_us".into(), json!(r.frozen_after.as_micros() as u64));
        extra.insert("killed_us".into(), json!(r.killed_after.as_micros() as u64));
        if let Some(g) = r.gone_after {
            extra.insert("gone_us".into(), json!(g.as_micros() as u64));
        }
        extra.insert("elapsed_us".into(), json!(elapsed.as_micros() as u64));
        let n = r.killed.len();
        let outcome = if r.gone && n == 0 {
            Outcome::failed(
                remediation_status::DOES_NOT_EXIST,
                format!("process {pid} had already exited; nothing was killed"),
            )
        } else if n == 0 {
            let why = r
                .spared
                .first()
                .map_or_else(|| r.errors.join("; "), |(_, w)| w.to_string());
            Outcome::failed(
                remediation_status::FAILURE,
                format!("process {pid} was not killed: {why}"),
            )
        } else if r.complete() {
            Outcome::success(format!(
                "froze and killed process {pid} and its branch: {n} processes{}",
                if late {
                    " (started by a killed branch, seen late)"
                } else {
                    ""
                }
            ))
        } else {
            Outcome::failed(
                remediation_status::PARTIAL,
                format!(
                    "froze and killed {n} processes of the branch of {pid}; {} spared, {} still alive{}",
                    r.spared.len(),
                    r.survivors.len(),
                    if r.errors.is_empty() {
                        String::new()
                    } else {
                        format!("; {}", r.errors.join("; "))
                    }
                ),
            )
        };
        let key = format!(
            "kill:{}",
            target.uid.clone().unwrap_or_else(|| format!("pid-{pid}"))
        );
        record::process(
            Common {
                action: Action::Kill,
                restore: false,
                mode,
                cause: cause.clone(),
                command_uid: key,
                outcome,
                extra,
                time: vigil_event::time::now_ms(),
            },
            target,
        )
    }

    fn vault(&mut self) -> Result<&Vault, String> {
        let dir = self.config.quarantine.vault_dir.clone();
        self.vault
            .get_or_insert_with(|| Vault::open(&dir).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Quarantines one file (or records that it would have).
    pub fn quarantine(
        &mut self,
        path: &Path,
        mode: Mode,
        cause: &Cause<'_>,
        now_ms: i64,
        out: &mut Vec<OcsfEvent>,
    ) {
        let meta = std::fs::symlink_metadata(path).ok();
        let key = match &meta {
            Some(m) => {
                use std::os::unix::fs::MetadataExt;
                format!("quarantine:{}:{}:{}", m.dev(), m.ino(), path.display())
            }
            None => format!("quarantine:{}", path.display()),
        };
        if !self.once(&key) {
            return;
        }
        let mut file = record::file_of(path);
        if let Some(m) = &meta {
            use std::os::unix::fs::MetadataExt;
            file.size = Some(m.size() as i64);
            file.attributes = Some((m.mode() & 0o7777) as i32);
            file.owner = Some(User {
                uid: Some(m.uid().to_string()),
                ..User::default()
            });
        }
        let mut extra = Map::new();
        let outcome = if let Some(why) = self.guard.spare_path(path) {
            Outcome::failed(remediation_status::FAILURE, why)
        } else if meta.is_none() {
            Outcome::failed(
                remediation_status::DOES_NOT_EXIST,
                format!(
                    "{} does not exist (gone before it could be quarantined)",
                    path.display()
                ),
            )
        } else if mode == Mode::Detect {
            Outcome::success(format!("move {} into the vault", path.display()))
        } else {
            let provenance = match cause {
                Cause::Finding(f, _) => Provenance {
                    finding_uid: Some(f.uid.clone()),
                    rule_uid: f.rule_uid.clone(),
                    story: f.story.clone(),
                    requested_by: None,
                },
                Cause::Manual(c) => Provenance {
                    requested_by: Some(c.to_string()),
                    ..Provenance::default()
                },
            };
            let max = self.config.quarantine.max_file_bytes;
            let result = match self.vault() {
                Ok(v) => v
                    .quarantine(path, provenance, max, now_ms)
                    .map_err(|e| e.to_string_with_kind()),
                Err(e) => Err((remediation_status::ERROR, e)),
            };
            match result {
                Ok(item) => {
                    file.hashes = vec![Fingerprint {
                        algorithm_id: hash_algorithm::SHA256,
                        algorithm: Some(hash_algorithm::name(hash_algorithm::SHA256).into()),
                        value: item.sha256.clone(),
                    }];
                    extra.insert("vault_id".into(), json!(item.id));
                    extra.insert("vault".into(), json!(self.config.quarantine.vault_dir));
                    if item.other_links > 0 {
                        extra.insert("other_links".into(), json!(item.other_links));
                    }
                    Outcome::success(format!(
                        "moved {} into the vault as {}{}",
                        path.display(),
                        item.id,
                        if item.other_links > 0 {
                            format!("; {} other hard links remain", item.other_links)
                        } else {
                            String::new()
                        }
                    ))
                }
                Err((status, msg)) => Outcome::failed(status, msg),
            }
        };
        out.push(record::file(
            self.common(Action::Quarantine, mode, cause, key, outcome, extra, now_ms),
            file,
        ));
    }

    /// Isolates the host (or records that it would have).
    pub fn isolate(
        &mut self,
        mode: Mode,
        cause: &Cause<'_>,
        now_ms: i64,
        out: &mut Vec<OcsfEvent>,
    ) {
        let key = "isolate:host".to_string();
        if !self.once(&key) {
            return;
        }
        let mgmt = self.config.isolate.management.clone();
        let mut extra = Map::new();
        extra.insert("management".into(), json!(mgmt));
        let outcome = if mode == Mode::Detect {
            Outcome::success(format!(
                "isolate the host but for loopback and {} management endpoints",
                mgmt.len()
            ))
        } else {
            let reason = match cause {
                Cause::Finding(f, _) => format!(
                    "finding {} ({})",
                    f.uid,
                    f.title.as_deref().unwrap_or("untitled")
                ),
                Cause::Manual(c) => c.to_string(),
            };
            let iso = Isolation::new(&self.config.isolate.nft, &self.config.state_dir);
            match iso.on(&mgmt, &reason, now_ms) {
                Ok(()) => Outcome::success(format!(
                    "isolated the host: only loopback and {} management endpoint{} reachable",
                    mgmt.len(),
                    if mgmt.len() == 1 { "" } else { "s" }
                )),
                Err(e) => Outcome::failed(remediation_status::ERROR, e.to_string()),
            }
        };
        out.push(record::network(self.common(
            Action::Isolate,
            mode,
            cause,
            key,
            outcome,
            extra,
            now_ms,
        )));
    }
}

impl Responder {
    /// Lifts the host's isolation (asked by a person: a manual cause), and records it.
    pub fn lift(&mut self, cause: &Cause<'_>, now_ms: i64, out: &mut Vec<OcsfEvent>) {
        let iso = Isolation::new(&self.config.isolate.nft, &self.config.state_dir);
        let outcome = match iso.off() {
            Ok(true) => Outcome::success("lifted the isolation: the network is open again"),
            Ok(false) => Outcome::success("the host was not isolated"),
            Err(e) => Outcome::failed(remediation_status::ERROR, e.to_string()),
        };
        // Isolating again after a lift is a new action, not a repeat.
        self.done.remove("isolate:host");
        let mut c = self.common(
            Action::Isolate,
            Mode::Protect,
            cause,
            "isolate:off".into(),
            outcome,
            Map::new(),
            now_ms,
        );
        c.restore = true;
        out.push(record::network(c));
    }

    /// Carries out an action a person asked for from the server (`kind` `kill`,
    /// `quarantine`, `isolate` or `lift`, with its target), in protect mode whatever
    /// the policy's modes, and records it. Returns whether it was done, and what
    /// happened.
    pub fn remote(
        &mut self,
        kind: &str,
        target: &str,
        cause: &Cause<'_>,
        now_ms: i64,
        out: &mut Vec<OcsfEvent>,
    ) -> (bool, String) {
        let first = out.len();
        // A person's request is carried out each time it is made: what the policy did
        // before (or an earlier request) does not make it a repeat.
        match kind {
            "kill" => {
                if let Ok(pid) = target.parse::<i32>() {
                    if pid <= 0 {
                        return (false, format!("{target}: not a process id"));
                    }
                    let process = record::process_of(pid, &self.boot_id);
                    if let Some(uid) = &process.uid {
                        self.done.remove(&format!("kill:{uid}"));
                    }
                    self.kill_process(process, Mode::Protect, cause, now_ms, out);
                } else if parse_uid(target).is_some() {
                    self.done.remove(&format!("kill:{target}"));
                    self.kill_story(target, Mode::Protect, cause, now_ms, out);
                } else {
                    return (false, format!("{target}: neither a pid nor a story id"));
                }
            }
            "quarantine" => {
                let path = Path::new(target);
                if !path.is_absolute() {
                    return (false, format!("{target}: not an absolute path"));
                }
                self.done.retain(|k| {
                    !(k.starts_with("quarantine:") && k.ends_with(&format!(":{target}")))
                        && k != &format!("quarantine:{target}")
                });
                self.quarantine(path, Mode::Protect, cause, now_ms, out);
            }
            "isolate" => {
                self.done.remove("isolate:host");
                self.isolate(Mode::Protect, cause, now_ms, out);
            }
            "lift" => self.lift(cause, now_ms, out),
            other => return (false, format!("`{other}` is no action this agent knows")),
        }
        let records = &out[first..];
        if records.is_empty() {
            return (false, "nothing was done (no record)".into());
        }
        let mut ok = true;
        let mut details = Vec::new();
        for r in records {
            let json = r.to_json();
            let status = json["status_id"].as_i64().unwrap_or(0) as i32;
            ok &= status == remediation_status::SUCCESS;
            if let Some(d) = json["status_detail"].as_str() {
                details.push(d.to_string());
            }
        }
        (ok, details.join("; "))
    }
}

impl VaultError {
    /// The record's status for this error, and its sentence.
    pub fn to_string_with_kind(&self) -> (i32, String) {
        let status = match self {
            VaultError::Missing { .. } => remediation_status::DOES_NOT_EXIST,
            VaultError::Refused { .. } => remediation_status::UNSUPPORTED,
            _ => remediation_status::ERROR,
        };
        (status, self.to_string())
    }
}
