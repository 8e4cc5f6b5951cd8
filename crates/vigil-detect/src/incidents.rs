//! Incidents read back from the agent's output: each story with findings, as a process
//! tree with the flagged branch marked, its ATT&CK techniques and its time span.
//!
//! Fed the agent's JSON lines in any order ([`Incidents::add`]): process events place
//! processes in their story's tree; findings (class 2004) mark their process, and carry
//! its lineage, so a findings file alone still gives each flagged branch; Incident
//! Findings (2005) give the story's summary. Updates of a finding (same
//! `finding_info.uid`) replace its count and last-seen time.

use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

/// One process of a story.
#[derive(Debug, Clone, Default)]
struct Proc {
    pid: Option<i64>,
    name: Option<String>,
    cmd: Option<String>,
    parent: Option<String>,
    start: Option<i64>,
}

/// One finding, as the latest of its Create and Updates says.
#[derive(Debug, Clone)]
struct Found {
    uid: String,
    title: String,
    rule: Option<String>,
    severity_id: i64,
    process: Option<String>,
    count: i64,
    first: i64,
    last: i64,
    techniques: Vec<String>,
}

#[derive(Debug, Default)]
struct StoryData {
    procs: HashMap<String, Proc>,
    findings: BTreeMap<String, Found>,
    host: Option<String>,
    incident_desc: Option<String>,
}

/// Incidents being read back.
#[derive(Debug, Default)]
pub struct Incidents {
    stories: HashMap<String, StoryData>,
}

/// The severity name of an OCSF `severity_id`.
fn severity_name(id: i64) -> &'static str {
    match id {
        1 => "informational",
        2 => "low",
        3 => "medium",
        4 => "high",
        5 => "critical",
        6 => "fatal",
        _ => "unknown",
    }
}

fn s(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

impl Incidents {
    /// An empty set.
    pub fn new() -> Self {
        Incidents::default()
    }

    /// Reads one event of the agent's output. Events without a story are ignored.
    pub fn add(&mut self, ev: &Value) {
        let Some(story) = ev["metadata"]["correlation_uid"].as_str() else {
            return;
        };
        let class = ev["class_uid"].as_i64().unwrap_or(0);
        let data = self.stories.entry(story.to_string()).or_default();
        if data.host.is_none() {
            data.host = s(&ev["device"]["hostname"]);
        }
        let subject = if class == 1007 {
            &ev["process"]
        } else {
            &ev["actor"]["process"]
        };
        place(data, subject);
        match class {
            2004 => add_finding(data, ev, subject),
            2005 => data.incident_desc = s(&ev["desc"]),
            _ => {}
        }
    }

    /// Stories with findings, worst first (then earliest).
    pub fn incidents(&self) -> Vec<Incident<'_>> {
        let mut out: Vec<Incident<'_>> = self
            .stories
            .iter()
            .filter(|(_, d)| !d.findings.is_empty())
            .map(|(id, d)| Incident { story: id, data: d })
            .collect();
        out.sort_by_key(|i| (std::cmp::Reverse(i.severity_id()), i.first(), i.story));
        out
    }
}

/// Puts a process, and what its lineage says of its ancestors, in the story.
fn place(data: &mut StoryData, p: &Value) {
    let Some(uid) = p["uid"].as_str() else { return };
    let parent = p["parent_process"]["uid"]
        .as_str()
        .or_else(|| p["ancestry"][0]["uid"].as_str());
    let e = data.procs.entry(uid.to_string()).or_default();
    e.pid = e.pid.or(p["pid"].as_i64());
    e.name = e
        .name
        .take()
        .or_else(|| s(&p["file"]["path"]))
        .or_else(|| s(&p["name"]));
    e.cmd = e.cmd.take().or_else(|| s(&p["cmd_line"]));
    e.parent = e.parent.take().or_else(|| parent.map(str::to_string));
    e.start = e.start.or(p["created_time"].as_i64());
    // Ancestors (nearest first): each one's parent is the next.
    if let Some(list) = p["ancestry"].as_array() {
        for (i, a) in list.iter().enumerate() {
            let Some(auid) = a["uid"].as_str() else { break };
            let next = list.get(i + 1).and_then(|n| n["uid"].as_str());
            let e = data.procs.entry(auid.to_string()).or_default();
            e.pid = e.pid.or(a["pid"].as_i64());
            e.name = e
                .name
                .take()
                .or_else(|| s(&a["path"]))
                .or_else(|| s(&a["name"]));
            e.cmd = e.cmd.take().or_else(|| s(&a["cmd_line"]));
            e.parent = e.parent.take().or_else(|| next.map(str::to_string));
            e.start = e.start.or(a["created_time"].as_i64());
        }
    }
}

fn add_finding(data: &mut StoryData, ev: &Value, subject: &Value) {
    let info = &ev["finding_info"];
    let Some(uid) = info["uid"].as_str() else {
        return;
    };
    let time = ev["time"].as_i64().unwrap_or(0);
    let first = info["first_seen_time"].as_i64().unwrap_or(time);
    let last = info["last_seen_time"].as_i64().unwrap_or(time);
    let count = ev["count"].as_i64().unwrap_or(1);
    let techniques = info["attacks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let id = a["sub_technique"]["uid"]
                .as_str()
                .or_else(|| a["technique"]["uid"].as_str())?;
            Some(match a["tactic"]["name"].as_str() {
                Some(t) => format!("{id} ({t})"),
                None => id.to_string(),
            })
        })
        .collect();
    let f = data.findings.entry(uid.to_string()).or_insert(Found {
        uid: uid.to_string(),
        title: s(&info["title"]).unwrap_or_default(),
        rule: s(&info["analytic"]["uid"]),
        severity_id: ev["severity_id"].as_i64().unwrap_or(0),
        process: s(&subject["uid"]),
        count,
        first,
        last,
        techniques,
    });
    f.count = f.count.max(count);
    f.first = f.first.min(first);
    f.last = f.last.max(last);
}

/// One incident: a story with findings.
#[derive(Debug, Clone, Copy)]
pub struct Incident<'a> {
    story: &'a str,
    data: &'a StoryData,
}

impl Incident<'_> {
    /// The story id.
    pub fn story(&self) -> &str {
        self.story
    }

    /// The worst severity of its findings (OCSF `severity_id`).
    pub fn severity_id(&self) -> i64 {
        self.data
            .findings
            .values()
            .map(|f| f.severity_id)
            .max()
            .unwrap_or(0)
    }

    /// Time of its first finding's first event (ms).
    pub fn first(&self) -> i64 {
        self.data
            .findings
            .values()
            .map(|f| f.first)
            .min()
            .unwrap_or(0)
    }

    /// Time of its last finding's last event (ms).
    pub fn last(&self) -> i64 {
        self.data
            .findings
            .values()
            .map(|f| f.last)
            .max()
            .unwrap_or(0)
    }

    /// Whether a process with this pid is on the incident's flagged branch (a flagged
    /// process or one of its ancestors in the story).
    pub fn involves_pid(&self, pid: i64) -> bool {
        self.branch()
            .iter()
            .any(|(_, uid)| self.data.procs.get(uid).and_then(|p| p.pid) == Some(pid))
    }

    /// Its ATT&CK techniques, sorted, each once.
    pub fn techniques(&self) -> Vec<&str> {
        let mut t: Vec<&str> = self
            .data
            .findings
            .values()
            .flat_map(|f| f.techniques.iter().map(String::as_str))
            .collect();
        t.sort_unstable();
        t.dedup();
        t
    }

    /// The processes of the flagged branches: each flagged process and its ancestors
    /// within the story, as (depth, uid) in tree order.
    fn branch(&self) -> Vec<(usize, String)> {
        let procs = &self.data.procs;
        let flagged: Vec<&str> = self
            .data
            .findings
            .values()
            .filter_map(|f| f.process.as_deref())
            .collect();
        // Everything on a path from a flagged process up to the story's root (or the
        // farthest known ancestor).
        let mut on_branch: HashMap<&str, ()> = HashMap::new();
        for f in &flagged {
            let mut cur = Some(*f);
            let mut guard = 0;
            while let Some(u) = cur {
                if on_branch.insert(u, ()).is_some() || guard > 4096 {
                    break;
                }
                guard += 1;
                if u == self.story {
                    break;
                }
                cur = procs.get(u).and_then(|p| p.parent.as_deref());
            }
        }
        let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut roots = Vec::new();
        for u in on_branch.keys() {
            let parent = procs
                .get(*u)
                .and_then(|p| p.parent.as_deref())
                .filter(|p| on_branch.contains_key(p) && *u != self.story);
            match parent {
                Some(p) => children.entry(p).or_default().push(u),
                None => roots.push(*u),
            }
        }
        let start_of = |u: &str| procs.get(u).and_then(|p| p.start).unwrap_or(i64::MAX);
        roots.sort_by_key(|u| (start_of(u), u.to_string()));
        for c in children.values_mut() {
            c.sort_by_key(|u| (start_of(u), u.to_string()));
        }
        let mut out = Vec::new();
        let mut stack: Vec<(usize, &str)> = roots.iter().rev().map(|u| (0, *u)).collect();
        while let Some((d, u)) = stack.pop() {
            out.push((d, u.to_string()));
            if let Some(c) = children.get(u) {
                stack.extend(c.iter().rev().map(|c| (d + 1, *c)));
            }
        }
        out
    }

    fn findings_of(&self, uid: &str) -> Vec<&Found> {
        self.data
            .findings
            .values()
            .filter(|f| f.process.as_deref() == Some(uid))
            .collect()
    }

    /// The incident as text: a header, its techniques, and the flagged branch of its
    /// process tree (`!` marks a process with findings, listed under it).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let host = self.data.host.as_deref().unwrap_or("?");
        let n = self.data.findings.len();
        let _ = writeln!(
            out,
            "incident {} on {host}: {}, {n} finding{}, {} .. {} ({})",
            self.story,
            severity_name(self.severity_id()),
            if n == 1 { "" } else { "s" },
            vigil_event::time::format_ms(self.first()),
            vigil_event::time::format_ms(self.last()),
            span(self.last() - self.first()),
        );
        let t = self.techniques();
        if !t.is_empty() {
            let _ = writeln!(out, "  techniques: {}", t.join(", "));
        }
        for (depth, uid) in self.branch() {
            let p = self.data.procs.get(&uid);
            let found = self.findings_of(&uid);
            let mark = if found.is_empty() { ' ' } else { '!' };
            let what = p
                .and_then(|p| p.cmd.as_deref().or(p.name.as_deref()))
                .unwrap_or(&uid);
            let what: String = what.chars().take(120).collect();
            let pid = p
                .and_then(|p| p.pid)
                .map_or(String::new(), |p| format!(" [{p}]"));
            let _ = writeln!(out, "  {mark} {}{what}{pid}", "  ".repeat(depth));
            for f in found {
                let repeats = if f.count > 1 {
                    format!(" x{}", f.count)
                } else {
                    String::new()
                };
                let _ = writeln!(
                    out,
                    "    {}  -> {} ({}){repeats}",
                    "  ".repeat(depth),
                    f.title,
                    severity_name(f.severity_id)
                );
            }
        }
        out
    }

    /// The incident as one JSON object: story, host, severity, times, techniques,
    /// findings and the flagged branch as a nested tree.
    pub fn to_json(&self) -> Value {
        let branch = self.branch();
        // Nested tree from the (depth, uid) list in tree order.
        fn node(inc: &Incident<'_>, uid: &str) -> Value {
            let p = inc.data.procs.get(uid);
            let findings: Vec<Value> = inc
                .findings_of(uid)
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "uid": f.uid, "title": f.title, "rule": f.rule,
                        "severity": severity_name(f.severity_id), "count": f.count,
                        "first_seen_time": f.first, "last_seen_time": f.last,
                    })
                })
                .collect();
            serde_json::json!({
                "uid": uid,
                "pid": p.and_then(|p| p.pid),
                "name": p.and_then(|p| p.name.clone()),
                "cmd_line": p.and_then(|p| p.cmd.clone()),
                "flagged": !findings.is_empty(),
                "findings": findings,
                "children": [],
            })
        }
        let mut stack: Vec<(usize, Value)> = Vec::new();
        let mut roots: Vec<Value> = Vec::new();
        let pop_into = |stack: &mut Vec<(usize, Value)>, roots: &mut Vec<Value>| {
            if let Some((_, done)) = stack.pop() {
                match stack.last_mut() {
                    Some((_, parent)) => {
                        if let Some(c) = parent["children"].as_array_mut() {
                            c.push(done);
                        }
                    }
                    None => roots.push(done),
                }
            }
        };
        for (depth, uid) in &branch {
            while stack.last().is_some_and(|(d, _)| d >= depth) {
                pop_into(&mut stack, &mut roots);
            }
            stack.push((*depth, node(self, uid)));
        }
        while !stack.is_empty() {
            pop_into(&mut stack, &mut roots);
        }
        serde_json::json!({
            "story": self.story,
            "host": self.data.host,
            "severity": severity_name(self.severity_id()),
            "severity_id": self.severity_id(),
            "first_time": self.first(),
            "last_time": self.last(),
            "findings": self.data.findings.len(),
            "techniques": self.techniques(),
            "desc": self.data.incident_desc,
            "tree": roots,
        })
    }
}

/// A duration as `1h2m3s`, `2m3s`, `3.5s`.
fn span(ms: i64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}h{}m{}s", s / 3600, s / 60 % 60, s % 60)
    } else if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{}.{}s", s, ms % 1000 / 100)
    }
}
