//! The detection stage: Sigma rules over every event as it arrives, correlations in event
//! time, one finding per rule and process however often it fires, and one incident per
//! story that has findings.
//!
//! Events come in with their story already assigned ([`crate::Storyline`]). For each,
//! [`Detector::process`] appends what it concludes to an output list:
//!
//! * a Detection Finding (2004, activity Create) the first time a rule fires on a
//!   process. The same rule firing again on the same process is counted, not reported
//!   again: the finding is re-emitted as an Update (same `finding_info.uid`, `count`,
//!   `finding_info.last_seen_time`) at most every [`DetectConfig::update_interval_ms`],
//!   when the process exits, and at the end;
//! * a Detection Finding for each correlation rule that fires (its group's window, the
//!   last event's process and story);
//! * an Incident Finding (2005) per story, listing each rule that fired in it once
//!   (100 rules at most; its `count` counts every finding): Create with the story's first
//!   finding; an
//!   Update at once when a finding raises its severity or adds an ATT&CK technique, and
//!   otherwise (more findings of the same kind) at most every update interval and at
//!   the end.
//!
//! Rules that a correlation uses without `generate: true` are silent: they feed the
//! correlation and report nothing themselves.

use crate::finding;
use crate::story::subject;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use vigil_event::model::{
    incident_status, priority, severity, Actor, Attack, DetectionFinding, Evidences, FindingInfo,
    Group, IncidentFinding, Process, RelatedEvent, Shared,
};
use vigil_event::OcsfEvent;
use vigil_sigma::{
    CorrelationFinding, CorrelationState, Engine, EventKind, Finding, Limits, Scratch,
};

/// Process Activity `activity_id` Terminate.
const TERMINATE: i32 = 2;
/// Finding activities.
const CREATE: i32 = 1;
const UPDATE: i32 = 2;

/// Settings of the detection stage (the agent configuration's `[detect]` table).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Milliseconds between two Updates of a finding whose rule keeps firing on its
    /// process (the count and last-seen time); the last Update also comes when the
    /// process exits and when the agent stops.
    pub update_interval_ms: i64,
    /// Findings followed for counting at most; past this, new findings are still
    /// reported, but each repeat is reported too (counted as `untracked`).
    pub max_open_findings: usize,
    /// Stories followed as incidents at most; past this, findings of new stories are
    /// reported without an incident (counted).
    pub max_incidents: usize,
    /// Matched events kept as evidence for correlation findings.
    pub correlation_events: usize,
    /// Group-by keys kept per correlation rule.
    pub correlation_groups: usize,
    /// The group new incidents are assigned to (OCSF asks for an assignee or a group).
    pub assignee_group: String,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            update_interval_ms: 10_000,
            max_open_findings: 16_384,
            max_incidents: 4_096,
            correlation_events: 4_096,
            correlation_groups: 100_000,
            assignee_group: "unassigned".into(),
        }
    }
}

/// Counters of the detection stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DetectStats {
    /// Events matched against the rules.
    pub events: u64,
    /// Times a rule fired (silent base rules of correlations included).
    pub matches: u64,
    /// Findings reported as new (Create).
    pub findings: u64,
    /// Repeats of a finding counted instead of reported.
    pub repeats: u64,
    /// Updates of findings reported.
    pub updates: u64,
    /// Correlation findings.
    pub correlations: u64,
    /// Incidents opened.
    pub incidents: u64,
    /// Findings not followed for counting because the table was full.
    pub untracked: u64,
    /// Findings with no incident because the incident table was full.
    pub untracked_incidents: u64,
}

/// What a finding is about: a rule, or an indicator (`kind:indicator`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Rule(usize),
    /// An indicator, or a finding made outside the engine (a file verdict), by handle.
    Handle(Box<str>),
}

/// A finding reported once and counted since.
struct Open {
    key: Key,
    /// The finding as created, without its evidences: what an Update repeats.
    base: DetectionFinding,
    count: u64,
    reported_count: u64,
    last_seen: i64,
    reported_at: i64,
}

/// Rules listed in an incident at most (its `finding_info_list`); its `count` counts
/// every finding.
const LISTED_RULES: usize = 100;

/// An incident: a story with findings.
struct Incident {
    /// One finding of each rule that fired in the story (the first, its last-seen time
    /// moved on by the later ones), in arrival order, [`LISTED_RULES`] at most.
    findings: Vec<FindingInfo>,
    /// Every finding of the story.
    total: usize,
    attacks: Vec<Attack>,
    severity_id: i32,
    start: i64,
    end: i64,
    actor: Option<Actor>,
    device: Option<Shared<vigil_event::model::Device>>,
    /// Findings in the last report of the incident, and when it was.
    reported: usize,
    reported_at: i64,
}

/// An event kept for correlation evidence.
struct Recent {
    seq: u64,
    event: OcsfEvent,
}

/// The detection stage. Holds the engine's per-thread scratch and all streaming state:
/// use one per event stream. It shares its rules and indicators (`Arc`s), so they can
/// be replaced while it runs ([`Detector::replace_content`]) without losing what it
/// follows (open findings, incidents).
pub struct Detector {
    engine: Arc<Engine>,
    /// Indicators matched against every event, and the severity of their findings.
    intel: Option<(Arc<vigil_intel::IntelSet>, i32)>,
    s: Streams,
}

/// Everything a [`Detector`] follows of the stream, apart from the rules (so a method
/// can hold the engine's rules and change the state at once).
struct Streams {
    config: DetectConfig,
    feature: &'static str,
    scratch: Scratch,
    correlation: CorrelationState,
    recent: VecDeque<Recent>,
    seq: u64,
    /// Open findings by process uid (most processes have none or one).
    open: HashMap<Box<str>, Vec<Open>>,
    open_count: usize,
    incidents: HashMap<Arc<str>, Incident>,
    /// Newest event time seen (ms).
    now: i64,
    stats: DetectStats,
}

fn limits(config: &DetectConfig) -> Limits {
    Limits {
        max_groups: config.correlation_groups,
        ..Limits::default()
    }
}

impl Detector {
    /// A detector over `engine`'s rules; its findings name `feature` as the reporting
    /// part of Vigil (`agent`).
    pub fn new(engine: Arc<Engine>, config: DetectConfig, feature: &'static str) -> Self {
        Detector {
            s: Streams {
                feature,
                scratch: engine.scratch(),
                correlation: CorrelationState::new(&engine, limits(&config)),
                recent: VecDeque::new(),
                seq: 0,
                open: HashMap::new(),
                open_count: 0,
                incidents: HashMap::new(),
                now: i64::MIN,
                stats: DetectStats::default(),
                config,
            },
            engine,
            intel: None,
        }
    }

    /// Also matches every event against `intel`: each indicator an event names is a
    /// finding of severity `severity_id` (one per indicator and process, counted as a
    /// rule's are), in the story's incident.
    pub fn with_intel(mut self, intel: Arc<vigil_intel::IntelSet>, severity_id: i32) -> Self {
        self.intel = Some((intel, severity_id));
        self
    }

    /// The rules it runs.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Runs `engine`'s rules and `intel`'s indicators from the next event on, in place
    /// of the ones it ran. The windows of the old rules' correlations are closed first
    /// (what fires there goes to `out`). Open findings stay open: those of a rule the
    /// new engine has too (by its handle: the id, else the name, else the title) go on
    /// counting as its findings; those of a rule it lacks are still updated and closed
    /// as before, by their handle. Incidents and storylines are untouched.
    pub fn replace_content(
        &mut self,
        engine: Arc<Engine>,
        intel: Option<(Arc<vigil_intel::IntelSet>, i32)>,
        now_ms: i64,
        out: &mut Vec<OcsfEvent>,
    ) {
        let old = std::mem::replace(&mut self.engine, engine);
        for c in self.s.correlation.finish(&old) {
            self.s.correlated(&c, now_ms, out);
        }
        let by_handle: HashMap<&str, usize> = self
            .engine
            .rules()
            .iter()
            .enumerate()
            .map(|(i, r)| (r.handle(), i))
            .collect();
        for list in self.s.open.values_mut() {
            for o in list.iter_mut() {
                if let Key::Rule(i) = o.key {
                    let handle = old.rules().get(i).map_or("", |r| r.handle());
                    o.key = match by_handle.get(handle) {
                        Some(&j) => Key::Rule(j),
                        None => Key::Handle(handle.into()),
                    };
                }
            }
        }
        self.s.scratch = self.engine.scratch();
        self.s.correlation = CorrelationState::new(&self.engine, limits(&self.s.config));
        self.intel = intel;
    }

    /// The counters.
    pub fn stats(&self) -> DetectStats {
        self.s.stats
    }

    /// Matches one event (its story already in `metadata.correlation_uid`) and appends
    /// the findings and incident changes it causes to `out`, stamped `now_ms` as their
    /// creation time.
    pub fn process(&mut self, ev: &OcsfEvent, now_ms: i64, out: &mut Vec<OcsfEvent>) {
        if ev.is_remediation()
            || matches!(
                ev,
                OcsfEvent::Finding(_) | OcsfEvent::Incident(_) | OcsfEvent::EventLog(_)
            )
        {
            return;
        }
        let engine = &*self.engine;
        let s = &mut self.s;
        s.stats.events += 1;
        s.seq += 1;
        let time = ev.time();
        s.now = s.now.max(time);
        // Allocates only when a rule fires.
        let mut matched: Vec<Finding<'_>> = Vec::new();
        engine.match_event(&mut s.scratch, ev, EventKind::Ocsf, &mut matched);
        let mut kept = false;
        for f in &matched {
            s.stats.matches += 1;
            if s.correlation.wants(f) {
                if !kept {
                    s.keep_recent(ev);
                    kept = true;
                }
                for c in s.correlation.feed(engine, f, s.seq) {
                    s.correlated(&c, now_ms, out);
                }
            }
            if !f.silent {
                s.fired(f.rule_index, f.rule, ev, time, now_ms, out);
            }
        }
        if let Some((intel, level)) = &self.intel {
            let mut hits = Vec::new();
            intel.match_event(ev, &mut hits);
            for h in &hits {
                s.stats.matches += 1;
                s.indicated(h, *level, ev, time, now_ms, out);
            }
        }
        if let OcsfEvent::Process(p) = ev {
            if p.activity_id == TERMINATE {
                if let Some(uid) = p.process.uid.as_deref() {
                    s.close_process(uid, now_ms, out);
                }
            }
        }
    }

    /// Time passes without events (event time `now`, ms): closes correlation windows
    /// that ended and reports the counts of findings not reported for a while.
    pub fn tick(&mut self, now: i64, now_ms: i64, out: &mut Vec<OcsfEvent>) {
        let s = &mut self.s;
        s.now = s.now.max(now);
        for c in s.correlation.advance(&self.engine, s.now) {
            s.correlated(&c, now_ms, out);
        }
        let interval = s.config.update_interval_ms;
        let mut updates = Vec::new();
        for list in s.open.values_mut() {
            for o in list.iter_mut() {
                if o.count > o.reported_count && now_ms - o.reported_at >= interval {
                    updates.push(update_of(o, now_ms));
                }
            }
        }
        s.stats.updates += updates.len() as u64;
        out.extend(updates);
        s.report_incidents(now_ms, false, out);
    }

    /// End of the stream: closes every correlation window and reports every count not
    /// yet reported.
    pub fn finish(&mut self, now_ms: i64, out: &mut Vec<OcsfEvent>) {
        let s = &mut self.s;
        for c in s.correlation.finish(&self.engine) {
            s.correlated(&c, now_ms, out);
        }
        let uids: Vec<Box<str>> = s.open.keys().cloned().collect();
        for uid in uids {
            s.close_process(&uid, now_ms, out);
        }
        s.report_incidents(now_ms, true, out);
    }

    /// A finding made outside the engine about `ev` (a file verdict: `f` carries its
    /// analytic, severity and evidence), under `handle` (what found it: the same
    /// handle on the same process again is a repeat, counted, as a rule's): completed
    /// as a rule's finding is (uid, process, story, device, the triggering event as
    /// evidence after `f`'s own) and joined to its story's incident. `ev` may be an
    /// event already gone through (a verdict that came later).
    pub fn report_finding(
        &mut self,
        handle: &str,
        f: DetectionFinding,
        ev: &OcsfEvent,
        now_ms: i64,
        out: &mut Vec<OcsfEvent>,
    ) {
        self.s.report_finding(handle, f, ev, now_ms, out);
    }
}

impl Streams {
    fn keep_recent(&mut self, ev: &OcsfEvent) {
        if self.config.correlation_events == 0 {
            return;
        }
        if self.recent.len() >= self.config.correlation_events {
            self.recent.pop_front();
        }
        self.recent.push_back(Recent {
            seq: self.seq,
            event: ev.clone(),
        });
    }

    /// Counts a repeat of an open finding about `key` on `ev`'s process; false if there
    /// is none (the finding is new).
    fn repeated(&mut self, key: &Key, ev: &OcsfEvent, time: i64) -> bool {
        let Some(uid) = subject(ev).and_then(|p| p.uid.as_deref()) else {
            return false;
        };
        let Some(o) = self
            .open
            .get_mut(uid)
            .and_then(|l| l.iter_mut().find(|o| o.key == *key))
        else {
            return false;
        };
        o.count += 1;
        o.last_seen = o.last_seen.max(time);
        self.stats.repeats += 1;
        true
    }

    /// The uid of a new finding about `handle` on `ev`: per process, else per event.
    fn finding_uid(&self, handle: &str, ev: &OcsfEvent, time: i64) -> String {
        match subject(ev).and_then(|p| p.uid.as_deref()) {
            Some(p) => format!("{handle}@{p}"),
            None => format!("{handle}@{}#{}", time, self.seq),
        }
    }

    /// A non-silent rule fired on `ev`.
    #[allow(
        clippy::too_many_arguments,
        reason = "the rule, what it fired on, and where its finding goes"
    )]
    fn fired(
        &mut self,
        rule_index: usize,
        rule: &vigil_sigma::RuleMeta,
        ev: &OcsfEvent,
        time: i64,
        now_ms: i64,
        out: &mut Vec<OcsfEvent>,
    ) {
        let key = Key::Rule(rule_index);
        if self.repeated(&key, ev, time) {
            return;
        }
        let uid = self.finding_uid(rule.handle(), ev, time);
        let f = finding::detection_finding(rule, uid, time, now_ms, self.feature);
        self.report_new(key, f, &rule.title, ev, time, now_ms, out);
    }

    fn report_finding(
        &mut self,
        handle: &str,
        mut f: DetectionFinding,
        ev: &OcsfEvent,
        now_ms: i64,
        out: &mut Vec<OcsfEvent>,
    ) {
        self.stats.matches += 1;
        let time = ev.time();
        let key = Key::Handle(handle.into());
        if self.repeated(&key, ev, time) {
            return;
        }
        f.finding_info.uid = self.finding_uid(handle, ev, time);
        f.time = time;
        let title = f.finding_info.title.clone().unwrap_or_default();
        self.report_new(key, f, &title, ev, time, now_ms, out);
    }

    /// An event named an indicator.
    fn indicated(
        &mut self,
        hit: &vigil_intel::Hit<'_>,
        level: i32,
        ev: &OcsfEvent,
        time: i64,
        now_ms: i64,
        out: &mut Vec<OcsfEvent>,
    ) {
        let handle = format!("intel:{}:{}", hit.kind.name(), hit.indicator);
        let key = Key::Handle(handle.as_str().into());
        if self.repeated(&key, ev, time) {
            return;
        }
        let uid = self.finding_uid(&handle, ev, time);
        let f = finding::indicator_finding(hit, uid, level, time, now_ms, self.feature);
        let title = f.finding_info.title.clone().unwrap_or_default();
        self.report_new(key, f, &title, ev, time, now_ms, out);
    }

    /// Completes a new finding with what it was found in (process, story, device, the
    /// event as evidence), reports it and its incident, and keeps it open for counting.
    #[allow(
        clippy::too_many_arguments,
        reason = "the parts of one new finding, each needed"
    )]
    fn report_new(
        &mut self,
        key: Key,
        mut f: DetectionFinding,
        title: &str,
        ev: &OcsfEvent,
        time: i64,
        now_ms: i64,
        out: &mut Vec<OcsfEvent>,
    ) {
        let process = subject(ev);
        let process_uid = process.and_then(|p| p.uid.as_deref());
        f.finding_info.first_seen_time = Some(time);
        f.finding_info.last_seen_time = Some(time);
        f.count = Some(1);
        f.metadata.correlation_uid = story_of(ev).map(str::to_string);
        f.device = device_of(ev);
        f.actor = process.map(|p| Actor {
            process: Some(Shared::new(p.clone())),
            user: p.user.clone(),
            ..Actor::default()
        });
        f.message = Some(match process {
            Some(p) => format!(
                "{title}: {}",
                p.cmd_line
                    .as_deref()
                    .or(p.name.as_deref())
                    .unwrap_or_default()
            ),
            None => title.to_string(),
        });
        f.finding_info.related_events = vec![related(ev)];
        // What the finding brought (a file verdict's file) stays first, in its Updates
        // too; the triggering event follows.
        let base = f.clone();
        f.evidences.push(evidence(ev));
        self.stats.findings += 1;
        self.join_incident(&f, now_ms, out);
        out.push(OcsfEvent::from(f));
        let Some(uid) = process_uid else { return };
        if self.open_count >= self.config.max_open_findings {
            self.stats.untracked += 1;
            return;
        }
        self.open_count += 1;
        self.open.entry(uid.into()).or_default().push(Open {
            key,
            base,
            count: 1,
            reported_count: 1,
            last_seen: time,
            reported_at: now_ms,
        });
    }

    /// A correlation rule fired.
    fn correlated(&mut self, c: &CorrelationFinding<'_>, now_ms: i64, out: &mut Vec<OcsfEvent>) {
        self.stats.matches += 1;
        if c.silent {
            return;
        }
        self.stats.correlations += 1;
        let rule = c.rule;
        let mut key = String::new();
        for (_, v) in &c.group {
            key.push('/');
            key.push_str(v.as_deref().unwrap_or(""));
        }
        let uid = format!("{}@{}{key}", rule.handle(), c.first_ms);
        let mut f = finding::detection_finding(rule, uid, c.last_ms, now_ms, self.feature);
        f.finding_info.first_seen_time = Some(c.first_ms);
        f.finding_info.last_seen_time = Some(c.last_ms);
        f.finding_info.related_events_count =
            Some(i32::try_from(c.events.len()).unwrap_or(i32::MAX));
        f.count = Some(i32::try_from(c.events.len()).unwrap_or(i32::MAX));
        let group: serde_json::Map<String, serde_json::Value> = c
            .group
            .iter()
            .map(|(k, v)| {
                let v = v
                    .clone()
                    .map_or(serde_json::Value::Null, serde_json::Value::String);
                (k.clone(), v)
            })
            .collect();
        let mut evidences = vec![Evidences {
            name: Some("group_by".into()),
            data: Some(serde_json::Value::Object(group)),
            ..Evidences::default()
        }];
        let mut last: Option<&OcsfEvent> = None;
        for seq in &c.events {
            if let Some(r) = self.recent.iter().find(|r| r.seq == *seq) {
                f.finding_info.related_events.push(related(&r.event));
                evidences.push(evidence(&r.event));
                last = Some(&r.event);
            }
        }
        f.evidences = evidences;
        if let Some(ev) = last {
            f.metadata.correlation_uid = story_of(ev).map(str::to_string);
            f.device = device_of(ev);
            f.actor = subject(ev).map(|p| Actor {
                process: Some(Shared::new(p.clone())),
                user: p.user.clone(),
                ..Actor::default()
            });
        }
        f.message = Some(format!("{}: {} events", rule.title, c.events.len()));
        self.join_incident(&f, now_ms, out);
        out.push(OcsfEvent::from(f));
    }

    /// Reports the unreported count of a process's findings, and forgets them.
    fn close_process(&mut self, uid: &str, now_ms: i64, out: &mut Vec<OcsfEvent>) {
        let Some(list) = self.open.remove(uid) else {
            return;
        };
        self.open_count -= list.len();
        for o in &list {
            if o.count > o.reported_count {
                self.stats.updates += 1;
                out.push(update_of_closed(o, now_ms));
            }
        }
    }

    /// Adds a new finding to its story's incident and reports the incident.
    fn join_incident(&mut self, f: &DetectionFinding, now_ms: i64, out: &mut Vec<OcsfEvent>) {
        let Some(story) = f.metadata.correlation_uid.as_deref() else {
            return;
        };
        let time = f.time;
        let created = !self.incidents.contains_key(story);
        if created {
            if self.incidents.len() >= self.config.max_incidents {
                self.stats.untracked_incidents += 1;
                return;
            }
            self.stats.incidents += 1;
            self.incidents.insert(
                Arc::from(story),
                Incident {
                    findings: Vec::new(),
                    attacks: Vec::new(),
                    severity_id: severity::UNKNOWN,
                    start: time,
                    end: time,
                    actor: f.actor.clone(),
                    device: f.device.clone(),
                    total: 0,
                    reported: 0,
                    reported_at: now_ms,
                },
            );
        }
        let Some(inc) = self.incidents.get_mut(story) else {
            return;
        };
        inc.start = inc.start.min(time);
        inc.end = inc.end.max(time);
        let worse = f.severity_id > inc.severity_id;
        inc.severity_id = inc.severity_id.max(f.severity_id);
        let mut new_technique = false;
        for a in &f.finding_info.attacks {
            if !inc.attacks.contains(a) {
                inc.attacks.push(a.clone());
                new_technique = true;
            }
        }
        inc.total += 1;
        let rule = f
            .finding_info
            .analytic
            .as_ref()
            .and_then(|a| a.uid.as_deref());
        let listed = inc.findings.iter().position(|l| {
            l.analytic.as_ref().and_then(|a| a.uid.as_deref()) == rule
                && l.title == f.finding_info.title
        });
        match listed {
            Some(i) => {
                let l = &mut inc.findings[i];
                l.last_seen_time = l.last_seen_time.max(f.finding_info.last_seen_time);
            }
            None if inc.findings.len() < LISTED_RULES => inc.findings.push(FindingInfo {
                related_events: Vec::new(),
                ..f.finding_info.clone()
            }),
            None => {}
        }
        // News an analyst must see at once (a new incident, a worse severity, a new
        // technique) is reported now; more of the same waits for the next update.
        if created || worse || new_technique || self.config.update_interval_ms == 0 {
            let activity = if created { CREATE } else { UPDATE };
            out.push(incident_event(
                story,
                inc,
                activity,
                now_ms,
                self.feature,
                &self.config,
            ));
            inc.reported = inc.total;
            inc.reported_at = now_ms;
        }
    }

    /// Reports the incidents changed since their last report, if `due` says so.
    fn report_incidents(&mut self, now_ms: i64, all: bool, out: &mut Vec<OcsfEvent>) {
        let interval = self.config.update_interval_ms;
        for (story, inc) in &mut self.incidents {
            if inc.total > inc.reported && (all || now_ms - inc.reported_at >= interval) {
                out.push(incident_event(
                    story,
                    inc,
                    UPDATE,
                    now_ms,
                    self.feature,
                    &self.config,
                ));
                inc.reported = inc.total;
                inc.reported_at = now_ms;
            }
        }
    }
}

/// An Update of an open finding: its count and last-seen time so far.
fn update_of(o: &mut Open, now_ms: i64) -> OcsfEvent {
    o.reported_count = o.count;
    o.reported_at = now_ms;
    update_of_closed(o, now_ms)
}

fn update_of_closed(o: &Open, now_ms: i64) -> OcsfEvent {
    let mut f = o.base.clone();
    f.activity_id = UPDATE;
    f.activity_name = None;
    f.time = o.last_seen;
    f.count = Some(i32::try_from(o.count).unwrap_or(i32::MAX));
    f.finding_info.last_seen_time = Some(o.last_seen);
    f.finding_info.modified_time = Some(now_ms);
    OcsfEvent::from(f)
}

/// The story id the storyline put on an event.
fn story_of(ev: &OcsfEvent) -> Option<&str> {
    ev.metadata().correlation_uid.as_deref()
}

fn device_of(ev: &OcsfEvent) -> Option<Shared<vigil_event::model::Device>> {
    match ev {
        OcsfEvent::Process(e) => e.device.clone(),
        OcsfEvent::File(e) => e.device.clone(),
        OcsfEvent::Module(e) => e.device.clone(),
        OcsfEvent::Network(e) => e.device.clone(),
        OcsfEvent::Dns(e) => e.device.clone(),
        OcsfEvent::Authentication(e) => e.device.clone(),
        OcsfEvent::EventLog(e) => e.device.clone(),
        OcsfEvent::Finding(e) => e.device.clone(),
        OcsfEvent::Incident(e) => e.device.clone(),
        OcsfEvent::FileRemediation(e) => e.device.clone(),
        OcsfEvent::ProcessRemediation(e) => e.device.clone(),
        OcsfEvent::NetworkRemediation(e) => e.device.clone(),
    }
}

/// The event a finding was made from, as a related event.
fn related(ev: &OcsfEvent) -> RelatedEvent {
    let m = ev.metadata();
    RelatedEvent {
        uid: m
            .uid
            .clone()
            .unwrap_or_else(|| format!("{}@{}", ev.class_uid(), ev.time())),
        type_uid: Some(type_uid(ev)),
        ..RelatedEvent::default()
    }
}

fn type_uid(ev: &OcsfEvent) -> i64 {
    match ev {
        OcsfEvent::Process(e) => e.type_uid,
        OcsfEvent::File(e) => e.type_uid,
        OcsfEvent::Module(e) => e.type_uid,
        OcsfEvent::Network(e) => e.type_uid,
        OcsfEvent::Dns(e) => e.type_uid,
        OcsfEvent::Authentication(e) => e.type_uid,
        OcsfEvent::EventLog(e) => e.type_uid,
        OcsfEvent::Finding(e) => e.type_uid,
        OcsfEvent::Incident(e) => e.type_uid,
        OcsfEvent::FileRemediation(e) => e.type_uid,
        OcsfEvent::ProcessRemediation(e) => e.type_uid,
        OcsfEvent::NetworkRemediation(e) => e.type_uid,
    }
}

/// The triggering event as evidence: its process, file, endpoints or query where it has
/// them, and the whole event as `data`.
fn evidence(ev: &OcsfEvent) -> Evidences {
    let mut e = Evidences {
        name: Some("triggering event".into()),
        process: subject(ev).cloned(),
        data: Some(ev.to_json()),
        ..Evidences::default()
    };
    match ev {
        OcsfEvent::File(f) => e.file = Some(f.file.clone()),
        OcsfEvent::Module(m) => e.file = m.module.file.clone(),
        OcsfEvent::Network(n) => {
            e.src_endpoint = n.src_endpoint.clone();
            e.dst_endpoint = n.dst_endpoint.clone();
        }
        OcsfEvent::Dns(d) => {
            e.src_endpoint = d.src_endpoint.clone();
            e.dst_endpoint = d.dst_endpoint.clone();
            e.query = d.query.clone();
        }
        _ => {}
    }
    e
}

/// The Incident Finding of a story as it stands.
fn incident_event(
    story: &str,
    inc: &Incident,
    activity: i32,
    now_ms: i64,
    feature: &str,
    config: &DetectConfig,
) -> OcsfEvent {
    let mut e = IncidentFinding::new(activity, inc.end, feature);
    e.metadata.correlation_uid = Some(story.to_string());
    e.metadata.uid = Some(format!("incident@{story}#{}", inc.total));
    e.severity_id = inc.severity_id;
    e.status_id = Some(incident_status::NEW);
    e.start_time = Some(inc.start);
    e.end_time = Some(inc.end);
    e.count = Some(i32::try_from(inc.total).unwrap_or(i32::MAX));
    let p = match inc.severity_id {
        severity::CRITICAL | severity::FATAL => priority::CRITICAL,
        severity::HIGH => priority::HIGH,
        severity::MEDIUM => priority::MEDIUM,
        severity::LOW | severity::INFORMATIONAL => priority::LOW,
        _ => priority::UNKNOWN,
    };
    e.priority_id = Some(p);
    e.priority = Some(priority::name(p).into());
    e.finding_info_list = inc.findings.clone();
    e.attacks = inc.attacks.clone();
    e.assignee_group = Some(Group {
        name: Some(config.assignee_group.clone()),
        ..Group::default()
    });
    e.actor = inc.actor.clone();
    e.device = inc.device.clone();
    let mut titles: Vec<&str> = Vec::new();
    for f in &inc.findings {
        if let Some(t) = f.title.as_deref() {
            if !titles.contains(&t) {
                titles.push(t);
            }
        }
    }
    let root = inc
        .actor
        .as_ref()
        .and_then(|a| a.process.as_deref())
        .and_then(process_name)
        .unwrap_or("an unknown process");
    e.desc = Some(format!(
        "{} finding{} in the story of {root}: {}",
        inc.total,
        if inc.total == 1 { "" } else { "s" },
        titles.join("; ")
    ));
    e.finding_info_list.iter_mut().for_each(|f| {
        f.created_time = f.created_time.or(Some(now_ms));
    });
    OcsfEvent::from(e)
}

fn process_name(p: &Process) -> Option<&str> {
    p.name
        .as_deref()
        .or_else(|| p.file.as_ref().and_then(|f| f.path.as_deref()))
}
