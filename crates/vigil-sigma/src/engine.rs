//! Loading rules, building the [`Engine`], and matching events.

use crate::compile::{
    self, BucketCompiler, CAtom, CTest, Expr, Group, Lists, RuleProg, Substrings,
};
use crate::cond::Cond;
use crate::correlation::{self, CorrDef};
use crate::error::{ConfigError, ErrorKind, RuleError};
use crate::fxhash::FxMap;
use crate::mapping::{WinSource, WindowsMap, WINDOWS_MAP};
use crate::memo::{self, Memo};
use crate::model::{LogSource, RuleKind, RuleMeta};
use crate::parse::{self, Body, Detection, FilterAst, ParseCtx, Parsed};
use crate::pattern::{self, Anchor};
use crate::yaml;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use vigil_event::taxonomy::Taxonomy;
use vigil_event::time::{part_of, value_time};
use vigil_event::{Event, FieldPath, Value};

/// Engine configuration: placeholders for `expand`, and optionally replacement mappings.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `%name%` -> values, for the `expand` modifier.
    pub placeholders: HashMap<String, Vec<String>>,
    /// A Windows mapping to use instead of the embedded `data/windows.yml`.
    pub windows_map: Option<String>,
    /// A Linux mapping (the `sigma-linux.map` format) instead of `vigil_event`'s.
    pub linux_map: Option<String>,
    /// Substring sets of up to this many literals are scanned by DFAs, larger ones by an
    /// index of their 4-byte pieces (smaller, and faster than the automaton's NFA). `None`:
    /// 50, where the index scans as fast as DFAs of up to 2,000 literals did, with 25 MiB
    /// less memory over all SigmaHQ Windows rules.
    pub dfa_literals_max: Option<usize>,
}

/// Collects rules from many (name, text) pairs, recording every rule that fails, then
/// builds an [`Engine`].
pub struct Loader {
    placeholders: HashMap<String, Vec<String>>,
    win: WindowsMap,
    linux: Taxonomy,
    parsed: Vec<Parsed>,
    errors: Vec<RuleError>,
    warnings: Vec<RuleError>,
    dfa_max: usize,
}

/// What [`Loader::build`] returns.
pub struct Built {
    /// The engine, holding every rule that loaded.
    pub engine: Engine,
    /// Every rule that did not load, in load order: parse errors first, then references.
    pub errors: Vec<RuleError>,
    /// How many rule documents loaded (detections, correlations and filters).
    pub loaded: usize,
    /// What is worth knowing about rules that loaded (a placeholder without values), in
    /// load order.
    pub warnings: Vec<RuleError>,
}

impl Loader {
    /// A loader with the embedded mappings and no placeholders.
    pub fn new() -> Self {
        // The embedded mappings are checked by this crate's tests.
        match Self::with_config(Config::default()) {
            Ok(l) => l,
            Err(e) => unreachable!("embedded mapping invalid: {e}"),
        }
    }

    /// A loader with the given configuration.
    pub fn with_config(cfg: Config) -> Result<Self, ConfigError> {
        let win = WindowsMap::parse(cfg.windows_map.as_deref().unwrap_or(WINDOWS_MAP))?;
        let linux = match &cfg.linux_map {
            Some(t) => Taxonomy::parse(t),
            None => Taxonomy::linux(),
        }
        .map_err(|e| ConfigError {
            source_name: "sigma-linux.map".into(),
            line: e.line,
            reason: e.reason,
        })?;
        Ok(Loader {
            placeholders: cfg.placeholders,
            win,
            linux,
            parsed: Vec::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
            dfa_max: cfg
                .dfa_literals_max
                .unwrap_or(crate::compile::MAX_DFA_LITERALS),
        })
    }

    /// Parses every YAML document of `text` (a rule file) loaded under `name`. Returns how
    /// many documents parsed; each failure is recorded in [`Loader::errors`].
    pub fn add(&mut self, name: &str, text: &str) -> usize {
        let source: Arc<str> = Arc::from(name);
        let docs = match yaml::parse_documents(text) {
            Ok(d) => d,
            Err(e) => {
                self.errors.push(RuleError {
                    file: source,
                    line: e.line,
                    rule: None,
                    kind: ErrorKind::Yaml(e.reason),
                });
                return 0;
            }
        };
        let ctx = ParseCtx {
            placeholders: &self.placeholders,
            warnings: std::cell::RefCell::new(Vec::new()),
        };
        let mut ok = 0;
        let mut global: Option<yaml::Node> = None;
        for doc in docs {
            let action = doc
                .get("action")
                .and_then(yaml::Node::as_str)
                .map(str::to_string);
            match action.as_deref() {
                Some("global") => {
                    global = Some(doc);
                    continue;
                }
                Some("reset") => {
                    global = None;
                    continue;
                }
                _ => {}
            }
            let doc = match &global {
                Some(g) => parse::merge_global(g, &doc),
                None => doc,
            };
            let parsed = parse::parse_doc(&doc, &source, &ctx);
            let rule = parsed.as_ref().ok().map(|p| p.meta.title.clone());
            for (line, message) in ctx.warnings.take() {
                if parsed.is_ok() {
                    self.warnings.push(RuleError {
                        file: source.clone(),
                        line,
                        rule: rule.clone(),
                        kind: ErrorKind::Warning(message),
                    });
                }
            }
            match parsed {
                Ok(p) => {
                    ok += 1;
                    self.parsed.push(p);
                }
                Err((rule, e)) => self.errors.push(RuleError {
                    file: source.clone(),
                    line: e.line,
                    rule,
                    kind: e.kind,
                }),
            }
        }
        ok
    }

    /// The failures so far.
    pub fn errors(&self) -> &[RuleError] {
        &self.errors
    }

    /// Resolves correlations and filters, compiles and indexes every rule.
    pub fn build(self) -> Built {
        build(self)
    }
}

impl Default for Loader {
    fn default() -> Self {
        Self::new()
    }
}

/// A route: the rules of `bucket` read through `variant`'s field mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    bucket: u32,
    variant: u32,
}

#[derive(Debug, Clone)]
struct WinRoute {
    /// Variant for nested records; flat records use `variant + 1`.
    route: Route,
    provider: Option<String>,
}

#[derive(Debug, Default)]
struct ChannelRoutes {
    any: Vec<WinRoute>,
    by_eid: FxMap<i64, Vec<WinRoute>>,
}

/// Per variant: local field -> slot, and the time slot.
#[derive(Debug)]
struct Variant {
    slots: Box<[u32]>,
    time: Option<u32>,
}

/// Rules that share a logsource, compiled together.
struct Bucket {
    logsource: LogSource,
    progs: Vec<RuleProg>,
    fields: Vec<String>,
    variants: Vec<Variant>,
    generic_variant: u32,
    groups: Vec<Group>,
    n_pids: u32,
    /// pid -> the rules it may trigger: (local index, detection index), side by side so
    /// that collecting candidates does not visit the rules themselves.
    triggers: Lists<(u32, u32)>,
    /// Local rule indices evaluated for every routed event.
    always: Box<[u32]>,
}

/// A detection rule in the engine.
struct DetRule {
    meta: u32,
    silent: bool,
}

/// The compiled, indexed rule set. Immutable, `Send + Sync`: share it between threads and
/// give each thread its own [`Scratch`].
pub struct Engine {
    metas: Vec<RuleMeta>,
    dets: Vec<DetRule>,
    buckets: Vec<Bucket>,
    slots: Vec<Box<[FieldPath]>>,
    win_routes: FxMap<String, ChannelRoutes>,
    win_all: Vec<Route>,
    win_all_eid: FxMap<i64, Vec<Route>>,
    /// OCSF routes by (class_uid, activity_id), each with the index of its category's
    /// `unless` conditions in `ocsf_unless`.
    ocsf_routes: FxMap<(i64, i64), Vec<(Route, usize)>>,
    /// The taxonomy categories' `unless` conditions (empty for most).
    ocsf_unless: Vec<Vec<(FieldPath, i64)>>,
    ocsf_all: Vec<Route>,
    all_events: Vec<Route>,
    pub(crate) corrs: Vec<CorrDef>,
    warnings: Vec<String>,
    /// Words of hit bits the largest rule group needs.
    max_pid_words: usize,
    /// Field groups whose scans are memoized (see [`crate::memo`]).
    n_memo: usize,
    p_channel: [FieldPath; 2],
    p_eid: [FieldPath; 3],
    p_provider: [FieldPath; 2],
    p_system: FieldPath,
    p_class: FieldPath,
    p_activity: FieldPath,
}

/// Which kind of event is being matched, which decides the logsource routing and field
/// mapping.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A Windows event record, nested (`evtx` JSON) or flat: routed by channel, provider
    /// and EventID through the Windows mapping.
    Windows,
    /// One of Vigil's OCSF events (or its JSON): routed by `class_uid`/`activity_id`
    /// through the Linux taxonomy.
    Ocsf,
    /// Any JSON whose logsource the user declared (see [`Engine::declare`]); fields are
    /// read under their Sigma names.
    Declared(&'a Declared),
}

/// The routes of a user-declared logsource, computed once by [`Engine::declare`].
#[derive(Debug, Clone)]
pub struct Declared {
    routes: Vec<Route>,
}

impl Declared {
    /// How many rule groups the declared logsource reaches.
    pub fn len(&self) -> usize {
        self.routes.len()
    }
    /// Whether no rule applies to the declared logsource.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// One rule that matched one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding<'r> {
    /// The rule.
    pub rule: &'r RuleMeta,
    /// The rule's index in [`Engine::rules`].
    pub rule_index: usize,
    /// The search identifiers that held for this event, in rule order.
    pub selections: Vec<&'r str>,
    /// True when the rule is a base rule of a correlation that does not `generate`: the
    /// finding is for [`crate::CorrelationState`] only and must not be reported.
    pub silent: bool,
    /// Event time (ms since the epoch), read when a correlation uses the rule.
    pub time_ms: Option<i64>,
    /// The event's values of the fields correlations group or aggregate by.
    pub fields: Vec<(&'r str, Option<String>)>,
}

/// Per-thread matching state, reused across events so that matching an event that
/// matches nothing allocates nothing. Made by [`Engine::scratch`]; given to another
/// engine, it is rebuilt for that engine.
pub struct Scratch {
    epoch: u32,
    slot_epoch: Vec<u32>,
    slot_pos: Vec<u32>,
    vals: Vec<Option<Value<'static>>>,
    hits: Vec<u64>,
    hit_list: Vec<u32>,
    rule_epoch: Vec<u32>,
    cand: Vec<u32>,
    routes: Vec<Route>,
    /// The Windows routes of the last record whose routing read no provider, and what
    /// they were found from: (shape, EventID, channel as written).
    win_cache: Option<(u32, Option<i64>, String, Vec<Route>)>,
    /// Buffers of a `fieldref` test: the two values as text and folded.
    fieldref: [String; 4],
    lower: String,
    num: String,
    /// Every string of the current event, each followed by a NUL (for keywords).
    kw: String,
    kw_epoch: u32,
    /// The same, lowercased (for keyword substrings).
    kw_lower: Vec<u8>,
    kw_lower_epoch: u32,
    evaluated: u64,
    /// Per search of the rule being evaluated: 0 not evaluated yet, else 1 + whether it
    /// held (a finding reports the searches that held without evaluating them again).
    searched: Vec<u8>,
    memo: Memo,
    /// Field scans answered from the memo, and scans done.
    memo_hits: u64,
    scans: u64,
}

impl Scratch {
    /// How many rule conditions this scratch has evaluated so far (rules the literal
    /// index did not rule out), for diagnostics.
    pub fn rules_evaluated(&self) -> u64 {
        self.evaluated
    }

    /// How many field scans were answered from this scratch's memo of recent texts, and
    /// how many memoizable scans there were in all, for diagnostics.
    pub fn memo_stats(&self) -> (u64, u64) {
        (self.memo_hits, self.scans)
    }
}

/// Empties a vector and gives back its allocation for values of another lifetime.
fn recycle<'b>(mut v: Vec<Option<Value<'_>>>) -> Vec<Option<Value<'b>>> {
    v.clear();
    v.into_iter().map(|_| None).collect()
}

impl Engine {
    /// Every loaded rule: detections, correlations and filters.
    pub fn rules(&self) -> &[RuleMeta] {
        &self.metas
    }

    /// Notes about rules that loaded but cannot see any event of a built-in source (a
    /// logsource the Windows or Linux mapping does not know). They still apply to
    /// [`Source::Declared`] events.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Number of detection rules.
    pub fn detection_count(&self) -> usize {
        self.dets.len()
    }

    /// Fresh per-thread state for [`Engine::match_event`].
    pub fn scratch(&self) -> Scratch {
        Scratch {
            epoch: 0,
            slot_epoch: vec![0; self.slots.len()],
            slot_pos: vec![0; self.slots.len()],
            vals: Vec::with_capacity(64),
            hits: vec![0; self.max_pid_words],
            hit_list: Vec::new(),
            rule_epoch: vec![0; self.dets.len()],
            cand: Vec::new(),
            routes: Vec::new(),
            win_cache: None,
            lower: String::new(),
            fieldref: Default::default(),
            num: String::new(),
            kw: String::new(),
            kw_epoch: 0,
            kw_lower: Vec::new(),
            kw_lower_epoch: 0,
            evaluated: 0,
            searched: Vec::new(),
            memo: Memo::new(self.n_memo),
            memo_hits: 0,
            scans: 0,
        }
    }

    /// The routes for events of a declared logsource: every rule whose logsource the
    /// declared one satisfies (each part the rule names is named the same).
    pub fn declare(&self, logsource: &LogSource) -> Declared {
        let routes = self
            .buckets
            .iter()
            .enumerate()
            .filter(|(_, b)| b.logsource.covers(logsource))
            .map(|(i, b)| Route {
                bucket: i as u32,
                variant: b.generic_variant,
            })
            .collect();
        Declared { routes }
    }

    /// Matches one event, appending a [`Finding`] per matching rule to `out` (in rule
    /// load order). Allocates only for findings.
    pub fn match_event<'r>(
        &'r self,
        scratch: &mut Scratch,
        event: &dyn Event,
        source: Source<'_>,
        out: &mut Vec<Finding<'r>>,
    ) {
        if scratch.slot_epoch.len() != self.slots.len()
            || scratch.rule_epoch.len() != self.dets.len()
            || scratch.hits.len() < self.max_pid_words
            || scratch.memo.groups() != self.n_memo
        {
            // A scratch made by another engine: start afresh rather than misread it.
            *scratch = self.scratch();
        }
        let mut routes = std::mem::take(&mut scratch.routes);
        routes.clear();
        self.route(scratch, event, source, &mut routes);
        if routes.is_empty() {
            scratch.routes = routes;
            return;
        }
        scratch.epoch = scratch.epoch.wrapping_add(1);
        if scratch.epoch == 0 {
            scratch.slot_epoch.iter_mut().for_each(|e| *e = 0);
            scratch.rule_epoch.iter_mut().for_each(|e| *e = 0);
            scratch.kw_epoch = 0;
            scratch.kw_lower_epoch = 0;
            scratch.epoch = 1;
        }
        let mut ctx = Ctx {
            engine: self,
            event,
            // Empty, and of a longer lifetime: usable as it is.
            vals: std::mem::take(&mut scratch.vals),
            s: scratch,
            variant: &[],
            ip: None,
        };
        let start = out.len();
        for r in &routes {
            ctx.run_bucket(*r, out);
        }
        if out.len() - start > 1 {
            out[start..].sort_by_key(|f| f.rule_index);
        }
        let Ctx { vals, .. } = ctx;
        scratch.vals = recycle(vals);
        scratch.routes = routes;
    }

    fn route(
        &self,
        s: &mut Scratch,
        event: &dyn Event,
        source: Source<'_>,
        routes: &mut Vec<Route>,
    ) {
        routes.extend_from_slice(&self.all_events);
        match source {
            Source::Declared(d) => routes.extend_from_slice(&d.routes),
            Source::Ocsf => {
                routes.extend_from_slice(&self.ocsf_all);
                let class = event.field(&self.p_class).and_then(|v| v.as_i64());
                let act = event.field(&self.p_activity).and_then(|v| v.as_i64());
                if let (Some(c), Some(a)) = (class, act) {
                    if let Some(r) = self.ocsf_routes.get(&(c, a)) {
                        for (route, ci) in r {
                            let excluded = self.ocsf_unless[*ci].iter().any(|(path, value)| {
                                event.field(path).and_then(|v| v.as_i64()) == Some(*value)
                            });
                            if !excluded {
                                routes.push(*route);
                            }
                        }
                    }
                }
            }
            Source::Windows => {
                let nested = event.field(&self.p_system).is_some();
                let shape = u32::from(!nested);
                let (ch, eid, prov) = if nested {
                    (&self.p_channel[0], &self.p_eid[..2], &self.p_provider[0])
                } else {
                    (&self.p_channel[1], &self.p_eid[2..], &self.p_provider[1])
                };
                let eid = eid
                    .iter()
                    .find_map(|p| event.field(p).and_then(|v| v.as_i64()));
                let channel = event.field(ch);
                let channel = channel.as_ref().and_then(|c| c.as_str());
                // A record routed as the last one: its routes again.
                if let (Some(c), Some((cs, ce, cc, cr))) = (channel, &s.win_cache) {
                    if *cs == shape && *ce == eid && cc == c {
                        routes.extend_from_slice(cr);
                        return;
                    }
                }
                let start = routes.len();
                let all_eid = eid.and_then(|e| self.win_all_eid.get(&e));
                for r in self.win_all.iter().chain(all_eid.into_iter().flatten()) {
                    routes.push(Route {
                        bucket: r.bucket,
                        variant: r.variant + shape,
                    });
                }
                let Some(channel) = channel else {
                    return;
                };
                s.lower.clear();
                if channel.is_ascii() {
                    s.lower.push_str(channel);
                    s.lower.make_ascii_lowercase();
                } else {
                    s.lower.extend(channel.chars().flat_map(char::to_lowercase));
                }
                let Some(cr) = self.win_routes.get(s.lower.as_str()) else {
                    return;
                };
                // The provider, read (once) only if a route of this record names one.
                let mut provider: Option<Option<String>> = None;
                let by_eid = eid.and_then(|e| cr.by_eid.get(&e));
                for wr in cr.any.iter().chain(by_eid.into_iter().flatten()) {
                    if let Some(p) = &wr.provider {
                        let have = provider.get_or_insert_with(|| {
                            event
                                .field(prov)
                                .and_then(|v| v.as_str().map(str::to_lowercase))
                        });
                        if have.as_deref() != Some(p.as_str()) {
                            continue;
                        }
                    }
                    let r = Route {
                        bucket: wr.route.bucket,
                        variant: wr.route.variant + shape,
                    };
                    if !routes.iter().any(|x| x.bucket == r.bucket) {
                        routes.push(r);
                    }
                }
                if provider.is_none() {
                    let (cs, ce, cc, cr) = s.win_cache.get_or_insert_with(Default::default);
                    (*cs, *ce) = (shape, eid);
                    cc.clear();
                    cc.push_str(channel);
                    cr.clear();
                    cr.extend_from_slice(&routes[start..]);
                }
            }
        }
    }
}

struct Ctx<'e, 'r, 's> {
    engine: &'r Engine,
    event: &'e dyn Event,
    vals: Vec<Option<Value<'e>>>,
    s: &'s mut Scratch,
    variant: &'r [u32],
    /// The address last parsed for `cidr` tests, by position in `vals`: a test of eight
    /// networks reads it once.
    ip: Option<(usize, Option<IpAddr>)>,
}

/// A `cidr` operand: an IPv4 or IPv6 address, possibly in brackets.
fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim().trim_matches(['[', ']']).parse().ok()
}

fn scalar_str<'v>(v: &'v Value<'_>, buf: &'v mut String) -> Option<&'v str> {
    match v {
        Value::Str(s) => Some(s),
        Value::Int(i) => {
            buf.clear();
            let _ = write!(buf, "{i}");
            Some(buf)
        }
        Value::Float(f) => {
            buf.clear();
            let _ = write!(buf, "{f}");
            Some(buf)
        }
        Value::Bool(b) => Some(if *b { "true" } else { "false" }),
        _ => None,
    }
}

fn for_each_scalar<'v, 'a>(v: &'v Value<'a>, f: &mut dyn FnMut(&'v Value<'a>) -> bool) -> bool {
    match v {
        Value::List(items) => items.iter().any(|i| for_each_scalar(i, f)),
        other => f(other),
    }
}

fn folded<'h>(s: &'h str, cased: bool, buf: &'h mut String) -> &'h str {
    if cased {
        s
    } else if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            buf.clear();
            buf.push_str(s);
            buf.make_ascii_lowercase();
            buf
        } else {
            s
        }
    } else {
        buf.clear();
        pattern::fold_into(s, buf);
        buf
    }
}

fn anchor_match(hay: &str, needle: &str, anchor: Anchor) -> bool {
    match anchor {
        Anchor::Exact => hay == needle,
        Anchor::Prefix => hay.starts_with(needle),
        Anchor::Suffix => hay.ends_with(needle),
        Anchor::Contains => hay.contains(needle),
    }
}

impl<'e, 'r> Ctx<'e, 'r, '_> {
    /// The position in `vals` of a local field's value, read once per event.
    fn fetch(&mut self, local: u32) -> usize {
        self.fetch_slot(self.variant[local as usize])
    }

    /// The position in `vals` of a slot's value, read once per event.
    fn fetch_slot(&mut self, slot: u32) -> usize {
        let slot = slot as usize;
        if self.s.slot_epoch[slot] == self.s.epoch {
            return self.s.slot_pos[slot] as usize;
        }
        let v = self.engine.slots[slot]
            .iter()
            .find_map(|p| self.event.field(p));
        self.vals.push(v);
        let pos = self.vals.len() - 1;
        self.s.slot_epoch[slot] = self.s.epoch;
        self.s.slot_pos[slot] = pos as u32;
        pos
    }

    fn hit(&self, pid: u32) -> bool {
        self.s.hits[(pid / 64) as usize] & (1u64 << (pid % 64)) != 0
    }

    fn set_hit(hits: &mut [u64], list: &mut Vec<u32>, pid: u32) {
        let w = &mut hits[(pid / 64) as usize];
        let bit = 1u64 << (pid % 64);
        if *w & bit == 0 {
            *w |= bit;
            list.push(pid);
        }
    }

    /// Sets the hit bits of every literal of `g` that `hay` satisfies.
    fn scan(g: &Group, hay: &str, hits: &mut [u64], list: &mut Vec<u32>, lower: &mut String) {
        if let Some(ac) = &g.cased {
            let len = hay.len();
            for m in ac.find_overlapping_iter(hay) {
                for (anchor, pid) in g.cased_pids[m.pattern().as_usize()].iter() {
                    let ok = match anchor {
                        Anchor::Contains => true,
                        Anchor::Prefix => m.start() == 0,
                        Anchor::Suffix => m.end() == len,
                        Anchor::Exact => m.start() == 0 && m.end() == len,
                    };
                    if ok {
                        Self::set_hit(hits, list, *pid);
                    }
                }
            }
        }
        let folded = folded(hay, false, lower);
        if !g.exact.is_empty() {
            if let Some(pids) = g.exact.get(folded) {
                for p in pids.iter() {
                    Self::set_hit(hits, list, *p);
                }
            }
        }
        let mut hit = |p: u32| Self::set_hit(hits, list, p);
        if !g.prefix.is_empty() {
            g.prefix.walk(folded.bytes(), &mut hit);
        }
        if !g.suffix.is_empty() {
            g.suffix.walk(folded.bytes().rev(), &mut hit);
        }
        if let Some(ac) = &g.contains {
            contains_scan(ac, &g.packed, &g.contains_pids, folded.as_bytes(), &mut hit);
        }
    }

    /// Scans the NUL-joined strings of an event once (keyword literals): `joined` as they
    /// are (for anchored and case-sensitive literals), `lower` lowercased (substrings).
    fn scan_joined(g: &Group, joined: &str, lower: &[u8], hits: &mut [u64], list: &mut Vec<u32>) {
        if !g.exact.is_empty() || !g.prefix.is_empty() || !g.suffix.is_empty() {
            let mut buf = String::new();
            for piece in joined.split('\0') {
                let f = folded(piece, false, &mut buf);
                if let Some(pids) = g.exact.get(f) {
                    for p in pids.iter() {
                        Self::set_hit(hits, list, *p);
                    }
                }
                let mut hit = |p: u32| Self::set_hit(hits, list, p);
                g.prefix.walk(f.bytes(), &mut hit);
                g.suffix.walk(f.bytes().rev(), &mut hit);
            }
        }
        let bytes = joined.as_bytes();
        if let Some(ac) = &g.cased {
            for m in ac.find_overlapping_iter(joined) {
                let starts = m.start() == 0 || bytes[m.start() - 1] == 0;
                let ends = m.end() == bytes.len() || bytes[m.end()] == 0;
                for (anchor, pid) in g.cased_pids[m.pattern().as_usize()].iter() {
                    let ok = match anchor {
                        Anchor::Contains => true,
                        Anchor::Prefix => starts,
                        Anchor::Suffix => ends,
                        Anchor::Exact => starts && ends,
                    };
                    if ok {
                        Self::set_hit(hits, list, *pid);
                    }
                }
            }
        }
        if let Some(ac) = &g.contains {
            // The keyword automaton is case-sensitive over folded text.
            contains_scan(ac, &g.packed, &g.contains_pids, lower, &mut |p| {
                Self::set_hit(hits, list, p)
            });
        }
    }

    /// Scans one scalar: numbers against the integer index, everything as text.
    fn scan_scalar(
        g: &Group,
        v: &Value<'_>,
        hits: &mut [u64],
        list: &mut Vec<u32>,
        lower: &mut String,
        num: &mut String,
    ) {
        if !g.nums.is_empty() {
            if let Some(f) = v.as_f64() {
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    if let Some(pids) = g.nums.get(&(f as i64)) {
                        for p in pids.iter() {
                            Self::set_hit(hits, list, *p);
                        }
                    }
                }
            }
        }
        if !g.has_strings() {
            return;
        }
        if let Some(hay) = scalar_str(v, num) {
            Self::scan(g, hay, hits, list, lower);
        }
    }

    fn run_bucket(&mut self, route: Route, out: &mut Vec<Finding<'r>>) {
        let engine = self.engine;
        let b = &engine.buckets[route.bucket as usize];
        self.variant = &b.variants[route.variant as usize].slots;
        // Clear the hits of the previous bucket.
        for pid in self.s.hit_list.drain(..) {
            self.s.hits[(pid / 64) as usize] = 0;
        }
        // 1. Literal hits: one automaton pass per field.
        for g in &b.groups {
            match g.field {
                Some(f) => {
                    let pos = self.fetch(f);
                    let Some(v) = &self.vals[pos] else { continue };
                    let s = &mut *self.s;
                    if let (Some(m), Value::Str(text)) = (g.memo, v) {
                        s.scans += 1;
                        let h = memo::hash(text);
                        if let Some(pids) = s.memo.get(m, h, text) {
                            s.memo_hits += 1;
                            // The group's own pids, none of them set yet (a group is
                            // scanned once per bucket): set without testing.
                            for p in pids {
                                s.hits[(p / 64) as usize] |= 1u64 << (p % 64);
                            }
                            s.hit_list.extend_from_slice(pids);
                            continue;
                        }
                        // A group's pids are its own: what this scan adds to the hit
                        // list is what the text hits.
                        let before = s.hit_list.len();
                        Self::scan_scalar(
                            g,
                            v,
                            &mut s.hits,
                            &mut s.hit_list,
                            &mut s.lower,
                            &mut s.num,
                        );
                        s.memo.put(m, h, text, &s.hit_list[before..]);
                        continue;
                    }
                    let (hits, list, lower, num) =
                        (&mut s.hits, &mut s.hit_list, &mut s.lower, &mut s.num);
                    for_each_scalar(v, &mut |sv| {
                        Self::scan_scalar(g, sv, hits, list, lower, num);
                        false
                    });
                }
                None => {
                    // The event's strings joined, as they are and lowercased, each made
                    // once per event and only if a keyword literal needs it.
                    let s = &mut *self.s;
                    let raw = !g.exact.is_empty()
                        || !g.prefix.is_empty()
                        || !g.suffix.is_empty()
                        || g.cased.is_some();
                    if raw && s.kw_epoch != s.epoch {
                        let kw = &mut s.kw;
                        kw.clear();
                        self.event.for_each_str(&mut |h| {
                            kw.push_str(h);
                            kw.push('\0');
                        });
                        s.kw_epoch = s.epoch;
                    }
                    if g.contains.is_some() && s.kw_lower_epoch != s.epoch {
                        // Joined, then lowercased in one sweep: records are nearly always
                        // ASCII. Otherwise each string is folded.
                        let lower = &mut s.kw_lower;
                        lower.clear();
                        match self.event.joined_strs() {
                            Some(joined) => lower.extend_from_slice(joined),
                            None if s.kw_epoch == s.epoch => {
                                lower.extend_from_slice(s.kw.as_bytes());
                            }
                            None => self.event.for_each_str(&mut |h| {
                                lower.extend_from_slice(h.as_bytes());
                                lower.push(0);
                            }),
                        }
                        if lower.is_ascii() {
                            lower.make_ascii_lowercase();
                        } else {
                            let folded = &mut s.lower;
                            folded.clear();
                            self.event.for_each_str(&mut |h| {
                                if h.is_ascii() {
                                    let start = folded.len();
                                    folded.push_str(h);
                                    folded.as_mut_str()[start..].make_ascii_lowercase();
                                } else {
                                    pattern::fold_into(h, folded);
                                }
                                folded.push('\0');
                            });
                            lower.clear();
                            lower.extend_from_slice(folded.as_bytes());
                        }
                        s.kw_lower_epoch = s.epoch;
                    }
                    Self::scan_joined(g, &s.kw, &s.kw_lower, &mut s.hits, &mut s.hit_list);
                }
            }
        }
        // 2. Candidate rules.
        let epoch = self.s.epoch;
        let mut cand = std::mem::take(&mut self.s.cand);
        cand.clear();
        for &pid in &self.s.hit_list {
            for &(r, det) in b.triggers.get(pid as usize) {
                let det = det as usize;
                if self.s.rule_epoch[det] != epoch {
                    self.s.rule_epoch[det] = epoch;
                    cand.push(r);
                }
            }
        }
        cand.extend_from_slice(&b.always);
        cand.sort_unstable();
        // 3. Evaluate.
        for &r in &cand {
            let prog = &b.progs[r as usize];
            if !prog
                .required
                .iter()
                .all(|set| set.iter().any(|p| self.hit(*p)))
            {
                continue;
            }
            self.s.evaluated += 1;
            self.s.searched.clear();
            self.s.searched.resize(prog.searches.len(), 0);
            if self.cond(&prog.cond, prog) {
                out.push(self.finding(prog, route));
            }
        }
        self.s.cand = cand;
    }

    fn finding(&mut self, prog: &'r RuleProg, route: Route) -> Finding<'r> {
        let engine = self.engine;
        let det = &engine.dets[prog.det as usize];
        let mut selections = Vec::new();
        for i in 0..prog.searches.len() {
            if prog.positive[i] && self.search(i, prog) {
                selections.push(&*prog.names[i]);
            }
        }
        let mut fields = Vec::with_capacity(prog.corr_fields.len());
        for (name, local) in &prog.corr_fields {
            let pos = self.fetch(*local);
            let v = self.vals[pos].as_ref().and_then(|v| match v {
                Value::Null | Value::Object => None,
                other => Some(other.to_string()),
            });
            fields.push((&**name, v));
        }
        let time_ms = if prog.wants_time {
            let b = &engine.buckets[route.bucket as usize];
            b.variants[route.variant as usize].time.and_then(|slot| {
                let pos = self.fetch_slot(slot);
                self.vals[pos].as_ref().and_then(value_time)
            })
        } else {
            None
        };
        Finding {
            rule: &engine.metas[det.meta as usize],
            rule_index: det.meta as usize,
            selections,
            silent: det.silent,
            time_ms,
            fields,
        }
    }

    /// Search `i` of `prog`, evaluated once per rule evaluation (a finding reads what its
    /// condition found, and evaluates only the searches the condition skipped).
    fn search(&mut self, i: usize, prog: &RuleProg) -> bool {
        if let Some(&r) = self.s.searched.get(i) {
            if r != 0 {
                return r == 2;
            }
        }
        let held = self.expr(&prog.searches[i]);
        if let Some(r) = self.s.searched.get_mut(i) {
            *r = 1 + u8::from(held);
        }
        held
    }

    fn cond(&mut self, c: &Cond, prog: &RuleProg) -> bool {
        match c {
            Cond::Search(i) => self.search(*i, prog),
            Cond::And(parts) => parts.iter().all(|p| self.cond_part(p, prog)),
            Cond::Or(parts) => parts.iter().any(|p| self.cond_part(p, prog)),
            Cond::Not(inner) => !self.cond_part(inner, prog),
            Cond::AtLeast(n, idx) => {
                let mut count = 0;
                for i in idx {
                    if self.search(*i, prog) {
                        count += 1;
                        if count >= *n {
                            return true;
                        }
                    }
                }
                false
            }
            Cond::Const(b) => *b,
        }
    }

    /// A part of a condition: a search, or a negated one, answered here (the common
    /// leaves, without a call per level), anything else by [`Ctx::cond`].
    #[inline(always)]
    fn cond_part(&mut self, c: &Cond, prog: &RuleProg) -> bool {
        match c {
            Cond::Search(i) => self.search(*i, prog),
            Cond::Not(inner) => match &**inner {
                Cond::Search(i) => !self.search(*i, prog),
                other => !self.cond(other, prog),
            },
            other => self.cond(other, prog),
        }
    }

    fn expr(&mut self, e: &Expr) -> bool {
        match e {
            Expr::And(parts) => parts.iter().all(|p| self.expr_part(p)),
            Expr::Or(parts) => parts.iter().any(|p| self.expr_part(p)),
            Expr::Test(t) => self.test(t),
        }
    }

    /// A part of a search: a test answered here, anything else by [`Ctx::expr`].
    #[inline(always)]
    fn expr_part(&mut self, e: &Expr) -> bool {
        match e {
            Expr::Test(t) => self.test(t),
            other => self.expr(other),
        }
    }

    #[inline(always)]
    fn test(&mut self, t: &CTest) -> bool {
        let rest = &t.atoms[t.pats.len()..];
        if !t.neq && rest.is_empty() {
            // Literals only: their hit bits answer, the value itself is not needed.
            return if t.all {
                t.pats.iter().all(|p| self.hit(*p))
            } else {
                t.pats.iter().any(|p| self.hit(*p))
            };
        }
        let pos = t.field.map(|f| self.fetch(f));
        if t.neq {
            let present = pos.is_some_and(|p| self.vals[p].as_ref().is_some_and(|v| !v.is_null()));
            if !present {
                return false;
            }
        }
        let res = if t.all {
            t.pats.iter().all(|p| self.hit(*p)) && rest.iter().all(|a| self.atom(a, pos))
        } else {
            t.pats.iter().any(|p| self.hit(*p)) || rest.iter().any(|a| self.atom(a, pos))
        };
        res != t.neq
    }

    fn atom(&mut self, a: &CAtom, pos: Option<usize>) -> bool {
        if let CAtom::Pat(pid) = a {
            return self.hit(*pid);
        }
        if let CAtom::Glob { hint: Some(h), .. } = a {
            if !self.hit(*h) {
                return false;
            }
        }
        if let CAtom::Re { hint: Some(h), .. } = a {
            if !h.iter().any(|p| self.hit(*p)) {
                return false;
            }
        }
        let Some(pos) = pos else {
            return self.keyword_atom(a);
        };
        if let CAtom::FieldRef {
            other,
            anchor,
            cased,
        } = a
        {
            let opos = self.fetch(*other);
            let (Some(v), Some(o)) = (&self.vals[pos], &self.vals[opos]) else {
                return false;
            };
            let [b1, b2, f1, f2] = &mut self.s.fieldref;
            return for_each_scalar(o, &mut |os| {
                let Some(os) = scalar_str(os, b2) else {
                    return false;
                };
                let needle = folded(os, *cased, f2);
                for_each_scalar(v, &mut |vs| {
                    let Some(vs) = scalar_str(vs, b1) else {
                        return false;
                    };
                    anchor_match(folded(vs, *cased, f1), needle, *anchor)
                })
            });
        }
        if let (CAtom::Cidr(net), Some(Value::Str(s))) = (a, &self.vals[pos]) {
            let ip = match self.ip {
                Some((p, ip)) if p == pos => ip,
                _ => {
                    let ip = parse_ip(s);
                    self.ip = Some((pos, ip));
                    ip
                }
            };
            return ip.is_some_and(|ip| net.contains(ip));
        }
        let v = &self.vals[pos];
        match a {
            CAtom::Exists(b) => return v.is_some() == *b,
            CAtom::Null => return v.as_ref().is_none_or(Value::is_null),
            _ => {}
        }
        let Some(v) = v else { return false };
        let s = &mut *self.s;
        let (num, lower) = (&mut s.num, &mut s.lower);
        match a {
            CAtom::Empty => {
                matches!(v, Value::Null) || for_each_scalar(v, &mut |x| x.as_str() == Some(""))
            }
            CAtom::AnyStr => for_each_scalar(v, &mut |x| matches!(x, Value::Str(_))),
            CAtom::Glob { toks, cased, .. } => for_each_scalar(v, &mut |x| {
                scalar_str(x, num)
                    .is_some_and(|h| pattern::glob_match(toks, folded(h, *cased, lower)))
            }),
            CAtom::Re { re, .. } => for_each_scalar(v, &mut |x| {
                scalar_str(x, num).is_some_and(|h| re.is_match(h))
            }),
            CAtom::Num(c, n) => {
                for_each_scalar(v, &mut |x| x.as_f64().is_some_and(|f| c.test(f, *n)))
            }
            CAtom::Bool(b) => for_each_scalar(v, &mut |x| match x {
                Value::Bool(y) => y == b,
                Value::Str(s) => s.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
                _ => false,
            }),
            CAtom::Cidr(net) => for_each_scalar(v, &mut |x| {
                x.as_str()
                    .and_then(parse_ip)
                    .is_some_and(|ip| net.contains(ip))
            }),
            CAtom::Time(part, c, n) => for_each_scalar(v, &mut |x| {
                value_time(x).is_some_and(|ms| c.test(part_of(ms, *part), *n))
            }),
            CAtom::Pat(_) | CAtom::Exists(_) | CAtom::Null | CAtom::FieldRef { .. } => false,
        }
    }

    /// Non-literal keyword atoms: tested against every string of the event.
    fn keyword_atom(&mut self, a: &CAtom) -> bool {
        let mut found = false;
        let s = &mut *self.s;
        let lower = &mut s.lower;
        match a {
            CAtom::Glob { toks, cased, .. } => self.event.for_each_str(&mut |h| {
                if !found {
                    let mut buf = std::mem::take(lower);
                    found = pattern::glob_match(toks, folded(h, *cased, &mut buf));
                    *lower = buf;
                }
            }),
            CAtom::Re { re, .. } => self.event.for_each_str(&mut |h| {
                if !found {
                    found = re.is_match(h);
                }
            }),
            CAtom::AnyStr => self.event.for_each_str(&mut |_| found = true),
            CAtom::Empty => self.event.for_each_str(&mut |h| {
                if h.is_empty() {
                    found = true;
                }
            }),
            _ => {}
        }
        found
    }
}

/// Calls `hit` with the pids of every substring literal found in `hay` (folded text).
/// With a SIMD prefilter, the scan starts at the leftmost match it finds (every match
/// starts there or later) and is skipped when it finds none.
fn contains_scan(
    subs: &Substrings,
    packed: &[aho_corasick::packed::Searcher],
    pids: &Lists<u32>,
    hay: &[u8],
    hit: &mut impl FnMut(u32),
) {
    // With a prefilter: from the first place one of its literals occurs, if any does.
    let from = if packed.is_empty() {
        0
    } else {
        match packed
            .iter()
            .filter_map(|p| p.find(hay))
            .map(|m| m.start())
            .min()
        {
            Some(start) => start,
            None => return,
        }
    };
    let ac = match subs {
        Substrings::Automaton(ac) => ac,
        Substrings::Anchored(a) => {
            a.scan(&hay[from..], &mut |i| {
                for p in pids.get(i as usize) {
                    hit(*p);
                }
            });
            return;
        }
    };
    let input = aho_corasick::Input::new(hay).span(from..hay.len());
    let mut state = aho_corasick::automaton::OverlappingState::start();
    loop {
        ac.find_overlapping(input.clone(), &mut state);
        let Some(m) = state.get_match() else { break };
        for p in pids.get(m.pattern().as_usize()) {
            hit(*p);
        }
    }
}

/// A rule group: logsource, and the EventID its rules require (if split).
type BucketKey = (LogSource, Option<i64>);

/// Rules requiring more EventIDs than this are not split by EventID.
const MAX_EID_SPLIT: usize = 16;

/// The EventIDs one of which a detection requires (`EventID: 4625` or a list of them,
/// in a search the condition cannot match without); `None` when it requires none.
fn required_eids(d: &Detection) -> Option<Vec<i64>> {
    use crate::parse::{Atom, Cmp, Search};
    fn test_eids(t: &crate::parse::FieldTest) -> Option<Vec<i64>> {
        if t.field.as_deref() != Some("EventID") || t.neq || (t.all && t.atoms.len() > 1) {
            return None;
        }
        t.atoms
            .iter()
            .map(|a| match a {
                Atom::Num(Cmp::Eq, n) if n.fract() == 0.0 => Some(*n as i64),
                _ => None,
            })
            .collect()
    }
    fn search(s: &Search) -> Option<Vec<i64>> {
        match s {
            Search::And(tests) => tests.iter().filter_map(test_eids).min_by_key(Vec::len),
            Search::Or(alts) => {
                let mut out = Vec::new();
                for a in alts {
                    out.extend(search(a)?);
                }
                Some(out)
            }
        }
    }
    fn cond(c: &Cond, d: &Detection) -> Option<Vec<i64>> {
        match c {
            Cond::Search(i) => d.searches.get(*i).and_then(search),
            Cond::And(parts) => parts.iter().filter_map(|p| cond(p, d)).min_by_key(Vec::len),
            Cond::Or(parts) => {
                let mut out = Vec::new();
                for p in parts {
                    out.extend(cond(p, d)?);
                }
                Some(out)
            }
            Cond::AtLeast(_, idx) => {
                let mut out = Vec::new();
                for i in idx {
                    out.extend(d.searches.get(*i).and_then(search)?);
                }
                Some(out)
            }
            Cond::Not(_) | Cond::Const(_) => None,
        }
    }
    let mut v = cond(&d.cond, d)?;
    v.sort_unstable();
    v.dedup();
    Some(v)
}

/// Variant keys, for building each bucket's field mapping once per source.
#[derive(Debug, Clone, PartialEq)]
enum VariantKey {
    Win(Option<WinSource>, bool),
    Ocsf(Option<String>),
    Generic,
}

struct SlotTable {
    slots: Vec<Box<[FieldPath]>>,
    index: HashMap<Vec<String>, u32>,
}

impl SlotTable {
    fn slot(&mut self, paths: Vec<String>) -> u32 {
        if let Some(i) = self.index.get(&paths) {
            return *i;
        }
        let i = self.slots.len() as u32;
        self.slots
            .push(paths.iter().map(|p| FieldPath::new(p)).collect());
        self.index.insert(paths, i);
        i
    }
}

fn rule_err(meta: &RuleMeta, kind: ErrorKind) -> RuleError {
    RuleError {
        file: meta.source.clone(),
        line: meta.line,
        rule: Some(meta.title.clone()),
        kind,
    }
}

/// Appends a filter's detection to a rule's: `rule and (filter condition)`.
fn merge_filter(d: &mut Detection, f: &FilterAst, title: &str) {
    let offset = d.names.len();
    for n in &f.detection.names {
        d.names.push(format!("{title}:{n}"));
    }
    d.searches.extend(f.detection.searches.iter().cloned());
    fn shift(c: &Cond, o: usize) -> Cond {
        match c {
            Cond::Search(i) => Cond::Search(i + o),
            Cond::And(p) => Cond::And(p.iter().map(|x| shift(x, o)).collect()),
            Cond::Or(p) => Cond::Or(p.iter().map(|x| shift(x, o)).collect()),
            Cond::Not(x) => Cond::Not(Box::new(shift(x, o))),
            Cond::AtLeast(n, idx) => Cond::AtLeast(*n, idx.iter().map(|i| i + o).collect()),
            Cond::Const(b) => Cond::Const(*b),
        }
    }
    let fc = shift(&f.detection.cond, offset);
    let old = std::mem::replace(&mut d.cond, Cond::Const(true));
    d.cond = Cond::And(vec![old, fc]);
}

fn build(loader: Loader) -> Built {
    let Loader {
        win,
        linux,
        parsed,
        mut errors,
        warnings: rule_warnings,
        dfa_max,
        ..
    } = loader;
    // Index rules by id and name.
    let mut by_ref: HashMap<String, usize> = HashMap::new();
    for (i, p) in parsed.iter().enumerate() {
        if let Some(id) = &p.meta.id {
            by_ref.entry(id.clone()).or_insert(i);
        }
        if let Some(n) = &p.meta.name {
            by_ref.entry(n.clone()).or_insert(i);
        }
    }
    let mut ok = vec![true; parsed.len()];
    // Filters: resolve targets.
    let mut filters_of: Vec<Vec<usize>> = vec![Vec::new(); parsed.len()];
    for (fi, p) in parsed.iter().enumerate() {
        let Body::Filter(f) = &p.body else { continue };
        if f.rules.is_empty() {
            for (ti, t) in parsed.iter().enumerate() {
                if matches!(t.body, Body::Detection(_))
                    && p.meta.logsource.covers(&t.meta.logsource)
                {
                    filters_of[ti].push(fi);
                }
            }
            continue;
        }
        let mut targets = Vec::new();
        for r in &f.rules {
            match by_ref.get(r) {
                Some(&ti) if matches!(parsed[ti].body, Body::Detection(_)) => {
                    if !p.meta.logsource.covers(&parsed[ti].meta.logsource) {
                        errors.push(rule_err(
                            &p.meta,
                            ErrorKind::Reference(format!(
                                "filter logsource {} does not cover rule `{r}` ({})",
                                p.meta.logsource, parsed[ti].meta.logsource
                            )),
                        ));
                        ok[fi] = false;
                        break;
                    }
                    targets.push(ti);
                }
                Some(_) => {
                    errors.push(rule_err(
                        &p.meta,
                        ErrorKind::Reference(format!(
                            "filter target `{r}` is not a detection rule"
                        )),
                    ));
                    ok[fi] = false;
                    break;
                }
                None => {
                    errors.push(rule_err(
                        &p.meta,
                        ErrorKind::Reference(format!("filter refers to unknown rule `{r}`")),
                    ));
                    ok[fi] = false;
                    break;
                }
            }
        }
        if ok[fi] {
            for t in targets {
                filters_of[t].push(fi);
            }
        }
    }
    // Correlations.
    let corr_result = correlation::resolve(&parsed, &by_ref, &mut ok, &mut errors);
    // Metadata of everything loaded.
    let mut metas = Vec::new();
    let mut meta_of = vec![u32::MAX; parsed.len()];
    for (i, p) in parsed.iter().enumerate() {
        if ok[i] {
            meta_of[i] = metas.len() as u32;
            metas.push(p.meta.clone());
        }
    }
    let loaded = metas.len();
    // Group detection rules by logsource, and within it by the EventIDs a rule requires
    // (so that a Security 4625 record only meets the rules that can match 4625).
    let mut dets: Vec<DetRule> = Vec::new();
    let mut det_of = vec![u32::MAX; parsed.len()];
    let mut bucket_of: HashMap<BucketKey, usize> = HashMap::new();
    let mut members: Vec<(BucketKey, Vec<usize>)> = Vec::new();
    for (i, p) in parsed.iter().enumerate() {
        let Body::Detection(d) = &p.body else {
            continue;
        };
        if !ok[i] {
            continue;
        }
        det_of[i] = dets.len() as u32;
        dets.push(DetRule {
            meta: meta_of[i],
            silent: corr_result.silent.contains(&i),
        });
        let eids = match required_eids(d) {
            Some(set) if !set.is_empty() && set.len() <= MAX_EID_SPLIT => {
                set.into_iter().map(Some).collect()
            }
            _ => vec![None],
        };
        for eid in eids {
            let key = (p.meta.logsource.clone(), eid);
            let b = *bucket_of.entry(key.clone()).or_insert_with(|| {
                members.push((key, Vec::new()));
                members.len() - 1
            });
            members[b].1.push(i);
        }
    }
    let mut slots = SlotTable {
        slots: Vec::new(),
        index: HashMap::new(),
    };
    let mut buckets = Vec::new();
    let mut n_memo = 0u32;
    let mut warned: std::collections::HashSet<LogSource> = Default::default();
    let mut warnings = Vec::new();
    let mut win_routes: FxMap<String, ChannelRoutes> = FxMap::default();
    let mut win_all = Vec::new();
    let mut win_all_eid: FxMap<i64, Vec<Route>> = FxMap::default();
    let mut ocsf_routes: FxMap<(i64, i64), Vec<(Route, usize)>> = FxMap::default();
    let ocsf_unless: Vec<Vec<(FieldPath, i64)>> =
        linux.categories.iter().map(|c| c.unless.clone()).collect();
    let mut ocsf_all = Vec::new();
    let mut all_events = Vec::new();
    for ((ls, split_eid), idxs) in members {
        let bi = buckets.len() as u32;
        let mut bc = BucketCompiler::new();
        let mut progs = Vec::new();
        for &pi in &idxs {
            let Body::Detection(d) = &parsed[pi].body else {
                continue;
            };
            let mut d = d.clone();
            for &fi in &filters_of[pi] {
                if let Body::Filter(f) = &parsed[fi].body {
                    merge_filter(&mut d, f, &parsed[fi].meta.title);
                }
            }
            let mut prog = bc.rule(det_of[pi], &d);
            if let Some(cf) = corr_result.fields.get(&pi) {
                for f in &cf.fields {
                    let local = bc.field(f);
                    prog.corr_fields.push((Arc::from(f.as_str()), local));
                }
                prog.wants_time = true;
            }
            progs.push(prog);
        }
        let fields = bc.fields.clone();
        let n_pids = bc.patterns.n_pids;
        let pid_stats = bc.patterns.stats.clone();
        let mut groups = match bc.patterns.build(dfa_max) {
            Ok(g) => g,
            Err(e) => {
                warnings.push(format!("automaton for {ls} failed: {e}"));
                Vec::new()
            }
        };
        for g in groups.iter_mut().filter(|g| g.worth_memoizing()) {
            g.memo = Some(n_memo);
            n_memo += 1;
        }
        // Triggers.
        let mut triggers: Vec<Vec<(u32, u32)>> = vec![Vec::new(); n_pids as usize];
        let mut always = Vec::new();
        for (li, prog) in progs.iter().enumerate() {
            match compile::trigger(prog, &pid_stats) {
                Some(set) => {
                    for p in set {
                        triggers[p as usize].push((li as u32, prog.det));
                    }
                }
                None => always.push(li as u32),
            }
        }
        // Variants and routes.
        let mut variants: Vec<Variant> = Vec::new();
        let mut keys: Vec<VariantKey> = Vec::new();
        let mut variant = |key: VariantKey, slots: &mut SlotTable| -> u32 {
            if let Some(i) = keys.iter().position(|k| *k == key) {
                return i as u32;
            }
            let mut s = Vec::with_capacity(fields.len());
            for f in &fields {
                let paths = match &key {
                    VariantKey::Win(src, nested) => win.paths(f, src.as_ref(), *nested),
                    VariantKey::Ocsf(cat) => match cat
                        .as_deref()
                        .and_then(|c| linux.category(c))
                        .and_then(|c| c.field(f))
                    {
                        Some(p) => vec![p.as_str().to_string()],
                        None => vec![f.clone()],
                    },
                    VariantKey::Generic => vec![f.clone()],
                };
                s.push(slots.slot(paths));
            }
            let time = match &key {
                VariantKey::Win(_, nested) => slots.slot(win.time_paths(*nested)),
                VariantKey::Ocsf(_) => slots.slot(vec!["time".into()]),
                VariantKey::Generic => slots.slot(
                    vigil_event::time::DEFAULT_TIME_FIELDS
                        .iter()
                        .map(|s| s.to_string())
                        .collect(),
                ),
            };
            variants.push(Variant {
                slots: s.into_boxed_slice(),
                time: Some(time),
            });
            keys.push(key);
            (variants.len() - 1) as u32
        };
        let generic_variant = variant(VariantKey::Generic, &mut slots);
        let product = ls.product.as_deref();
        let mut routed = false;
        if ls == LogSource::default() {
            all_events.push(Route {
                bucket: bi,
                variant: generic_variant,
            });
            routed = true;
        }
        // Windows.
        if matches!(product, None | Some("windows")) && ls != LogSource::default() {
            let cat_sources = ls.category.as_ref().map(|c| win.categories.get(c));
            let svc_sources = ls.service.as_ref().map(|s| win.services.get(s));
            let sources: Option<Vec<WinSource>> = match (cat_sources, svc_sources) {
                (None, None) => None,
                (Some(Some(c)), None) => Some(c.clone()),
                (None, Some(Some(s))) => Some(s.clone()),
                (Some(Some(c)), Some(Some(s))) => Some(
                    c.iter()
                        .filter(|src| {
                            src.channels
                                .iter()
                                .any(|ch| s.iter().any(|ss| ss.channels.contains(ch)))
                        })
                        .cloned()
                        .collect(),
                ),
                _ => Some(Vec::new()),
            };
            match sources {
                None => {
                    // product: windows only: every Windows record.
                    let v = variant(VariantKey::Win(None, true), &mut slots);
                    let v2 = variant(VariantKey::Win(None, false), &mut slots);
                    debug_assert_eq!(v + 1, v2);
                    let r = Route {
                        bucket: bi,
                        variant: v,
                    };
                    match split_eid {
                        Some(e) => win_all_eid.entry(e).or_default().push(r),
                        None => win_all.push(r),
                    }
                    routed = true;
                }
                Some(list) => {
                    for src in list {
                        let v = variant(VariantKey::Win(Some(src.clone()), true), &mut slots);
                        let v2 = variant(VariantKey::Win(Some(src.clone()), false), &mut slots);
                        debug_assert_eq!(v + 1, v2);
                        let wr = WinRoute {
                            route: Route {
                                bucket: bi,
                                variant: v,
                            },
                            provider: src.provider.clone(),
                        };
                        for ch in &src.channels {
                            let cr = win_routes.entry(ch.clone()).or_default();
                            if let Some(e) = split_eid {
                                if src.event_ids.is_empty() || src.event_ids.contains(&e) {
                                    cr.by_eid.entry(e).or_default().push(wr.clone());
                                }
                            } else if src.event_ids.is_empty() {
                                cr.any.push(wr.clone());
                            } else {
                                for e in &src.event_ids {
                                    cr.by_eid.entry(*e).or_default().push(wr.clone());
                                }
                            }
                        }
                        routed = true;
                    }
                }
            }
        }
        // Linux (Vigil's OCSF events).
        if matches!(product, None | Some("linux")) && ls != LogSource::default() {
            match (&ls.category, &ls.service) {
                (Some(c), None) => {
                    if let Some(ci) = linux.categories.iter().position(|k| &k.name == c) {
                        let cat = &linux.categories[ci];
                        let v = variant(VariantKey::Ocsf(Some(c.clone())), &mut slots);
                        for a in &cat.activity_ids {
                            ocsf_routes
                                .entry((i64::from(cat.class_uid), i64::from(*a)))
                                .or_default()
                                .push((
                                    Route {
                                        bucket: bi,
                                        variant: v,
                                    },
                                    ci,
                                ));
                        }
                        routed = true;
                    }
                }
                (None, None) if product == Some("linux") => {
                    let v = variant(VariantKey::Ocsf(None), &mut slots);
                    ocsf_all.push(Route {
                        bucket: bi,
                        variant: v,
                    });
                    routed = true;
                }
                _ => {}
            }
        }
        if !routed
            && matches!(product, Some("windows") | Some("linux"))
            && warned.insert(ls.clone())
        {
            let n = parsed
                .iter()
                .enumerate()
                .filter(|(i, p)| {
                    ok[*i] && matches!(p.body, Body::Detection(_)) && p.meta.logsource == ls
                })
                .count();
            warnings.push(format!(
                "{n} rule(s) with logsource {ls} match only declared events (the {} mapping has no such logsource)",
                product.unwrap_or_default()
            ));
        }
        buckets.push(Bucket {
            logsource: ls,
            progs,
            fields,
            variants,
            generic_variant,
            groups,
            n_pids,
            triggers: Lists::new(triggers),
            always: always.into_boxed_slice(),
        });
    }
    let max_pid_words = buckets
        .iter()
        .map(|b: &Bucket| b.n_pids as usize)
        .max()
        .unwrap_or(0)
        .div_ceil(64);
    let corrs = correlation::finish(corr_result.defs, &det_of, &meta_of);
    Built {
        engine: Engine {
            metas,
            dets,
            buckets,
            slots: slots.slots,
            win_routes,
            win_all,
            win_all_eid,
            ocsf_routes,
            ocsf_unless,
            ocsf_all,
            all_events,
            corrs,
            warnings,
            max_pid_words,
            n_memo: n_memo as usize,
            p_channel: [
                FieldPath::new(&format!("{}.Channel", win.system)),
                FieldPath::new("Channel"),
            ],
            p_eid: [
                FieldPath::new(&format!("{}.EventID.#text", win.system)),
                FieldPath::new(&format!("{}.EventID", win.system)),
                FieldPath::new("EventID"),
            ],
            p_provider: [
                FieldPath::new(&format!("{}.Provider.#attributes.Name", win.system)),
                FieldPath::new("Provider_Name"),
            ],
            p_system: FieldPath::new(&win.system),
            p_class: FieldPath::new("class_uid"),
            p_activity: FieldPath::new("activity_id"),
        },
        errors,
        loaded,
        warnings: rule_warnings,
    }
}

impl Engine {
    /// One line per rule group: logsource, rules, fields, automata, literals, rules
    /// evaluated for every event (diagnostics for benchmarks).
    pub fn describe(&self) -> Vec<String> {
        self.buckets
            .iter()
            .map(|b| {
                format!(
                    "{}: rules {}, fields {}, automata {}, literals {}, always-evaluated {}",
                    b.logsource,
                    b.progs.len(),
                    b.fields.len(),
                    b.groups.len(),
                    b.n_pids,
                    b.always.len()
                )
            })
            .collect()
    }

    /// The kind of rule at a metadata index.
    pub fn rule_kind(&self, index: usize) -> Option<RuleKind> {
        self.metas.get(index).map(|m| m.kind)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Loader, Source};

    /// Records routed as the one before reuse its routes: the findings of every record
    /// of a stream (channels, EventIDs and shapes alternating and repeating) are those
    /// of the record matched alone with a fresh scratch.
    #[test]
    fn repeated_routes_match_as_fresh_ones() {
        let mut loader = Loader::new();
        let rules = [
            "logsource: {product: windows, service: security}\ndetection:\n  s:\n    TargetUserName: admin\n  condition: s",
            "logsource: {product: windows, category: process_creation}\ndetection:\n  s:\n    Image|endswith: '\\cmd.exe'\n  condition: s",
            "logsource: {product: windows}\ndetection:\n  s:\n    EventID: 4625\n  condition: s",
            "logsource: {product: windows, service: sysmon}\ndetection:\n  s:\n    EventID: 3\n  condition: s",
        ];
        for (i, r) in rules.iter().enumerate() {
            loader.add(&format!("r{i}.yml"), &format!("title: R{i}\n{r}\n"));
        }
        let built = loader.build();
        assert!(built.errors.is_empty(), "{:?}", built.errors);
        let engine = built.engine;
        let flat = |ch: &str, eid: i64| {
            serde_json::json!({"Channel": ch, "EventID": eid, "TargetUserName": "admin",
                "Image": "C:\\Windows\\cmd.exe"})
        };
        let nested = |ch: &str, eid: i64| {
            serde_json::json!({"Event": {"System": {"Channel": ch, "EventID": eid},
                "EventData": {"TargetUserName": "admin", "Image": "C:\\Windows\\cmd.exe"}}})
        };
        let mut stream = Vec::new();
        for (ch, eid) in [
            ("Security", 4688),
            ("Security", 4688),
            ("Security", 4625),
            ("security", 4625),
            ("Microsoft-Windows-Sysmon/Operational", 1),
            ("Microsoft-Windows-Sysmon/Operational", 1),
            ("Microsoft-Windows-Sysmon/Operational", 3),
            ("Security", 4688),
            ("Other", 4625),
            ("Other", 4625),
            ("Security", 4688),
        ] {
            stream.push(flat(ch, eid));
            stream.push(nested(ch, eid));
            stream.push(nested(ch, eid));
            stream.push(flat(ch, eid));
        }
        stream.push(serde_json::json!({"EventID": 4625}));
        stream.push(serde_json::json!({"EventID": 4625}));
        let titles = |out: &[crate::Finding<'_>]| -> Vec<String> {
            out.iter().map(|f| f.rule.title.clone()).collect()
        };
        let mut scratch = engine.scratch();
        let mut matched = 0;
        for ev in &stream {
            let mut out = Vec::new();
            engine.match_event(&mut scratch, ev, Source::Windows, &mut out);
            let mut alone = Vec::new();
            engine.match_event(&mut engine.scratch(), ev, Source::Windows, &mut alone);
            assert_eq!(titles(&out), titles(&alone), "{ev}");
            matched += out.len();
        }
        assert!(matched > stream.len());
    }
}
