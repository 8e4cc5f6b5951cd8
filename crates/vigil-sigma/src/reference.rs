//! The reference evaluator: the oracle the [`Engine`](crate::Engine) is tested against.
//!
//! [`Reference`] evaluates the parsed rules as they are written, one event at a time: for
//! every rule whose logsource the event belongs to, it reads each field the rule names
//! through [`Event::field`] (under the names the logsource's mapping gives it), tests
//! every value against the rule's values in plain loops, and evaluates the condition
//! over the searches. It has no literal index, no trigger sets, no required literals, no
//! EventID buckets, no memo and no prefilter, and shares none of the engine's matching
//! code: it is slow, and meant to be plainly what the documented semantics say. The
//! engine must give exactly its findings on any rules and events
//! (`tests/differential.rs`); where they differ, one of the two has a bug.
//!
//! Not for production use: make it with [`Loader::build_with_reference`].
//!
//! [`Loader::build_with_reference`]: crate::Loader::build_with_reference

use crate::cond::Cond;
use crate::mapping::{RecordKeys, WinSource, WindowsMap};
use crate::model::{LogSource, RuleMeta};
use crate::parse::{Atom, Detection, FieldTest, Search};
use crate::pattern::{Anchor, StrPat, Tok};
use crate::{EventKind, Finding};
use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use vigil_event::taxonomy::Taxonomy;
use vigil_event::time::{part_of, value_time};
use vigil_event::{Event, FieldPath, Value};

/// The reference evaluator of a rule set (see the module documentation).
pub struct Reference {
    metas: Vec<RuleMeta>,
    rules: Vec<Rule>,
    /// The rules by logsource (indices into `rules`, in order): whether an event belongs
    /// to a logsource, and how its fields are read, is decided once per logsource.
    by_logsource: Vec<(LogSource, Vec<usize>)>,
    win: WindowsMap,
    linux: Taxonomy,
    win_keys: RecordKeys,
    ocsf_keys: OcsfKeys,
}

/// The paths OCSF routing reads.
struct OcsfKeys {
    class_uid: FieldPath,
    activity_id: FieldPath,
}

/// A detection rule that loaded, as the builder hands it to the reference.
pub(crate) struct ReferenceRule {
    /// Index in the engine's rules.
    pub meta: usize,
    pub silent: bool,
    pub logsource: LogSource,
    pub detection: Detection,
    /// The filters applied to it: (title, detection).
    pub filters: Vec<(String, Detection)>,
}

/// A detection rule as the reference sees it.
struct Rule {
    /// Index in the engine's rules (and in `metas`).
    meta: usize,
    silent: bool,
    logsource: LogSource,
    /// The rule's own searches and condition, then each filter's (title, detection).
    detection: Detection,
    filters: Vec<(String, Detection)>,
    /// The names findings report: the rule's searches, then each filter's as
    /// `title:name`.
    names: Vec<String>,
    /// What each atom needs prepared, per search and test.
    compiled: Vec<Vec<Vec<Prepared>>>,
}

/// What a rule's field names are mapped through for one event.
enum Mapping<'a> {
    /// Field names as they are.
    Plain,
    /// A Windows record (nested or flat) of a source (`None`: any record).
    Windows(Option<&'a WinSource>, bool),
    /// One of Vigil's OCSF events, under a Linux category (`None`: fields as they are).
    Ocsf(Option<&'a vigil_event::taxonomy::Category>),
}

/// The view of one event by the rules of one logsource: where their fields are read
/// from, and the values read so far (each field is read once).
struct View<'a, 'e> {
    reference: &'a Reference,
    event: &'e dyn Event,
    mapping: Mapping<'a>,
    values: std::cell::RefCell<HashMap<&'a str, Rc<Read<'e>>>>,
    /// The event's strings, for keywords (read once).
    strings: std::cell::OnceCell<Vec<Scalar<'e>>>,
}

/// A field as read from an event: its value (`None`: absent) and the scalars tests look
/// at (the value, or the elements of a list).
struct Read<'e> {
    value: Option<Value<'e>>,
    scalars: Vec<Scalar<'e>>,
}

/// A scalar with its text as string comparisons see it, as it is and lowercased.
struct Scalar<'e> {
    value: Value<'e>,
    text: Option<String>,
    lower: Option<String>,
}

impl<'e> Scalar<'e> {
    fn new(value: Value<'e>) -> Self {
        let text = text_of(&value).map(Cow::into_owned);
        let lower = text.as_deref().map(str::to_lowercase);
        Scalar { value, text, lower }
    }

    /// The text, lowercased unless `cased`.
    fn text(&self, cased: bool) -> Option<&str> {
        if cased {
            self.text.as_deref()
        } else {
            self.lower.as_deref()
        }
    }
}

impl Reference {
    pub(crate) fn new(
        metas: Vec<RuleMeta>,
        rules: Vec<ReferenceRule>,
        win: WindowsMap,
        linux: Taxonomy,
    ) -> Self {
        let win_keys = win.record_keys();
        let ocsf_keys = OcsfKeys {
            class_uid: FieldPath::new("class_uid"),
            activity_id: FieldPath::new("activity_id"),
        };
        let rules: Vec<Rule> = rules
            .into_iter()
            .map(|r| {
                let ReferenceRule {
                    meta,
                    silent,
                    logsource,
                    detection,
                    filters,
                } = r;
                let compiled = std::iter::once(&detection)
                    .chain(filters.iter().map(|(_, d)| d))
                    .flat_map(|d| d.searches.iter())
                    .map(compile_search)
                    .collect();
                let mut names = detection.names.clone();
                for (title, d) in &filters {
                    names.extend(d.names.iter().map(|n| format!("{title}:{n}")));
                }
                Rule {
                    meta,
                    silent,
                    logsource,
                    detection,
                    filters,
                    names,
                    compiled,
                }
            })
            .collect();
        let mut by_logsource: Vec<(LogSource, Vec<usize>)> = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            match by_logsource.iter_mut().find(|(ls, _)| *ls == r.logsource) {
                Some((_, list)) => list.push(i),
                None => by_logsource.push((r.logsource.clone(), vec![i])),
            }
        }
        Reference {
            metas,
            rules,
            by_logsource,
            win,
            linux,
            win_keys,
            ocsf_keys,
        }
    }

    /// Every loaded rule, as [`Engine::rules`](crate::Engine::rules) lists them.
    pub fn rules(&self) -> &[RuleMeta] {
        &self.metas
    }

    /// Appends a [`Finding`] per rule that matches `event` to `out`, in rule order, as
    /// [`Engine::match_event`](crate::Engine::match_event) does (without the event time
    /// and the fields correlations read: `time_ms` is `None`, `fields` empty).
    pub fn match_event<'r>(
        &'r self,
        event: &dyn Event,
        kind: EventKind<'_>,
        out: &mut Vec<Finding<'r>>,
    ) {
        let windows = match kind {
            EventKind::Windows => Some(self.windows_record(event)),
            _ => None,
        };
        let ocsf = match kind {
            EventKind::Ocsf => Some((
                event
                    .field(&self.ocsf_keys.class_uid)
                    .and_then(|v| v.as_i64()),
                event
                    .field(&self.ocsf_keys.activity_id)
                    .and_then(|v| v.as_i64()),
            )),
            _ => None,
        };
        let start = out.len();
        for (logsource, rules) in &self.by_logsource {
            let mapping = if *logsource == LogSource::default() {
                Some(Mapping::Plain)
            } else {
                match kind {
                    EventKind::Declared(d) => {
                        logsource.covers(d.logsource()).then_some(Mapping::Plain)
                    }
                    EventKind::Windows => windows
                        .as_ref()
                        .and_then(|w| self.windows_mapping(logsource, w)),
                    EventKind::Ocsf => {
                        ocsf.and_then(|(c, a)| self.ocsf_mapping(logsource, event, c, a))
                    }
                }
            };
            let Some(mapping) = mapping else { continue };
            let view = View {
                reference: self,
                event,
                mapping,
                values: Default::default(),
                strings: Default::default(),
            };
            for rule in rules.iter().map(|&i| &self.rules[i]) {
                if let Some(selections) = view.rule(rule) {
                    out.push(Finding {
                        rule: &self.metas[rule.meta],
                        rule_index: rule.meta,
                        selections,
                        silent: rule.silent,
                        time_ms: None,
                        fields: Vec::new(),
                    });
                }
            }
        }
        out[start..].sort_by_key(|f| f.rule_index);
    }

    /// A Windows record's shape, channel, EventID and provider (both lowercased).
    fn windows_record(&self, event: &dyn Event) -> WinRecordKeys {
        let k = &self.win_keys;
        let nested = event.field(&k.system).is_some();
        let i = usize::from(!nested);
        let lower = |p: &FieldPath| {
            event
                .field(p)
                .and_then(|v| v.as_str().map(str::to_lowercase))
        };
        // The first whole number (or string of one) at the paths of the `EventID` field.
        let eid = k.event_id[i].iter().find_map(|p| {
            let f = event.field(p)?.as_f64()?;
            (f.fract() == 0.0).then_some(f as i64)
        });
        WinRecordKeys {
            nested,
            channel: lower(&k.channel[i]),
            eid,
            provider: lower(&k.provider[i]),
        }
    }

    /// How a rule of `ls` reads a Windows record, if the record belongs to `ls`: the first
    /// source of the logsource the record's channel, EventID and provider fit.
    fn windows_mapping<'a>(&'a self, ls: &LogSource, r: &WinRecordKeys) -> Option<Mapping<'a>> {
        if !matches!(ls.product.as_deref(), None | Some("windows")) {
            return None;
        }
        let win = &self.win;
        let sources: Vec<&WinSource> = match (&ls.category, &ls.service) {
            (None, None) => return Some(Mapping::Windows(None, r.nested)),
            (Some(c), None) => win.categories.get(c)?.iter().collect(),
            (None, Some(s)) => win.services.get(s)?.iter().collect(),
            (Some(c), Some(s)) => {
                let service = win.services.get(s)?;
                win.categories
                    .get(c)?
                    .iter()
                    .filter(|src| {
                        src.channels
                            .iter()
                            .any(|ch| service.iter().any(|s| s.channels.contains(ch)))
                    })
                    .collect()
            }
        };
        let channel = r.channel.as_ref()?;
        sources
            .into_iter()
            .find(|s| {
                s.channels.contains(channel)
                    && (s.event_ids.is_empty() || r.eid.is_some_and(|e| s.event_ids.contains(&e)))
                    && s.provider
                        .as_ref()
                        .is_none_or(|p| r.provider.as_ref() == Some(p))
            })
            .map(|s| Mapping::Windows(Some(s), r.nested))
    }

    /// How a rule of `ls` reads an OCSF event of `class_uid`/`activity_id`, if the event
    /// belongs to `ls`.
    fn ocsf_mapping<'a>(
        &'a self,
        ls: &LogSource,
        event: &dyn Event,
        class: Option<i64>,
        activity: Option<i64>,
    ) -> Option<Mapping<'a>> {
        if !matches!(ls.product.as_deref(), None | Some("linux")) {
            return None;
        }
        match (&ls.category, &ls.service) {
            (None, None) => Some(Mapping::Ocsf(None)),
            (Some(c), None) => {
                let cat = self.linux.categories.iter().find(|k| &k.name == c)?;
                let fits = class == Some(i64::from(cat.class_uid))
                    && activity
                        .is_some_and(|a| cat.activity_ids.iter().any(|x| i64::from(*x) == a));
                let excluded = cat
                    .unless
                    .iter()
                    .any(|(p, v)| event.field(p).and_then(|x| x.as_i64()) == Some(*v));
                (fits && !excluded).then_some(Mapping::Ocsf(Some(cat)))
            }
            _ => None,
        }
    }
}

struct WinRecordKeys {
    nested: bool,
    channel: Option<String>,
    eid: Option<i64>,
    provider: Option<String>,
}

/// What an atom needs prepared once: a regular expression (`re`, or a glob written as
/// one), or the searcher of a substring.
enum Prepared {
    Nothing,
    Re(regex::Regex),
    Find(Box<memchr::memmem::Finder<'static>>),
}

impl Prepared {
    fn re(&self) -> Option<&regex::Regex> {
        match self {
            Prepared::Re(re) => Some(re),
            _ => None,
        }
    }
}

/// What a search's atoms need, per test and atom.
fn compile_search(s: &Search) -> Vec<Vec<Prepared>> {
    let tests: Vec<&FieldTest> = search_tests(s);
    tests
        .into_iter()
        .map(|t| {
            t.atoms
                .iter()
                .map(|a| match a {
                    Atom::Re(r, _) => Prepared::Re(r.regex().clone()),
                    Atom::Str(StrPat::Glob { toks, .. }) => Prepared::Re(glob_regex(toks)),
                    Atom::Str(StrPat::Lit {
                        text,
                        anchor: Anchor::Contains,
                        ..
                    }) => Prepared::Find(Box::new(
                        memchr::memmem::Finder::new(text.as_bytes()).into_owned(),
                    )),
                    _ => Prepared::Nothing,
                })
                .collect()
        })
        .collect()
}

/// The tests of a search in document order.
fn search_tests(s: &Search) -> Vec<&FieldTest> {
    match s {
        Search::And(tests) => tests.iter().collect(),
        Search::Or(alts) => alts.iter().flat_map(search_tests).collect(),
    }
}

/// A glob as a regular expression over the whole text: `*` any run of characters, `?`
/// one character, the rest literally.
fn glob_regex(toks: &[Tok]) -> regex::Regex {
    let mut re = String::from("(?s)^");
    for t in toks {
        match t {
            Tok::Lit(l) => re.push_str(&regex::escape(l)),
            Tok::Star => re.push_str(".*"),
            Tok::One => re.push('.'),
        }
    }
    re.push('$');
    match regex::Regex::new(&re) {
        Ok(r) => r,
        // An escaped literal and wildcards always make a valid expression.
        Err(e) => unreachable!("glob as regex `{re}`: {e}"),
    }
}

/// A value and, if it is a list, its elements (recursively): the values a test looks at.
fn scalars<'v, 'a>(v: &'v Value<'a>, out: &mut Vec<&'v Value<'a>>) {
    match v {
        Value::List(items) => items.iter().for_each(|i| scalars(i, out)),
        other => out.push(other),
    }
}

/// A scalar as text, as a string comparison sees it.
fn text_of<'v>(v: &'v Value<'_>) -> Option<Cow<'v, str>> {
    match v {
        Value::Str(s) => Some(Cow::Borrowed(s)),
        Value::Int(i) => Some(Cow::Owned(i.to_string())),
        Value::Float(f) => Some(Cow::Owned(f.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Null | Value::List(_) | Value::Object => None,
    }
}

/// An IP address in a `cidr` test's value (possibly in brackets).
fn ip_of(s: &str) -> Option<IpAddr> {
    s.trim().trim_matches(['[', ']']).parse().ok()
}

impl<'a, 'e> View<'a, 'e> {
    /// The record paths of a Sigma field under this view's mapping, tried in order.
    fn paths(&self, field: &str) -> Vec<String> {
        match &self.mapping {
            Mapping::Plain | Mapping::Ocsf(None) => vec![field.to_string()],
            Mapping::Windows(src, nested) => self.reference.win.paths(field, *src, *nested),
            Mapping::Ocsf(Some(cat)) => match cat.field(field) {
                Some(p) => vec![p.as_str().to_string()],
                None => vec![field.to_string()],
            },
        }
    }

    /// A field, read once per event.
    fn value(&self, field: &'a str) -> Rc<Read<'e>> {
        if let Some(r) = self.values.borrow().get(field) {
            return r.clone();
        }
        let value = self.read(field);
        let mut xs = Vec::new();
        if let Some(v) = &value {
            scalars(v, &mut xs);
        }
        let scalars = xs.into_iter().map(|x| Scalar::new(x.clone())).collect();
        let r = Rc::new(Read { value, scalars });
        self.values.borrow_mut().insert(field, r.clone());
        r
    }

    /// A field's value: at the first of its paths the event has; an object holding
    /// `#text` (an XML element as `evtx` renders it) stands for that text.
    fn read(&self, field: &str) -> Option<Value<'e>> {
        for p in self.paths(field) {
            let Some(v) = self.event.field(&FieldPath::new(&p)) else {
                continue;
            };
            if v == Value::Object {
                let text = self.event.field(&FieldPath::new(&format!("{p}.#text")));
                return Some(text.unwrap_or(Value::Object));
            }
            return Some(v);
        }
        None
    }

    /// The rule's selections that held, if the rule matches: its condition and every
    /// filter's hold.
    fn rule(&self, rule: &'a Rule) -> Option<Vec<&'a str>> {
        let parts: Vec<&Detection> = std::iter::once(&rule.detection)
            .chain(rule.filters.iter().map(|(_, d)| d))
            .collect();
        // Search `i` of the parts in order (the rule's, then each filter's), evaluated
        // once, when first needed.
        let mut held: Vec<Option<bool>> = vec![None; rule.names.len()];
        let mut search = |i: usize, s: &'a Search| -> bool {
            *held[i].get_or_insert_with(|| {
                self.search(s, rule.compiled.get(i).map_or(&[][..], Vec::as_slice))
            })
        };
        let mut first = 0;
        for d in &parts {
            let at = first;
            if !cond(&d.cond, &mut |i| search(at + i, &d.searches[i])) {
                return None;
            }
            first += d.searches.len();
        }
        // A match reports every search that holds and is not negated.
        let mut selections = Vec::new();
        let mut first = 0;
        for d in &parts {
            let mut positive = vec![false; d.searches.len()];
            mark_positive(&d.cond, false, &mut positive);
            for (i, s) in d.searches.iter().enumerate() {
                if positive[i] && search(first + i, s) {
                    selections.push(rule.names[first + i].as_str());
                }
            }
            first += d.searches.len();
        }
        Some(selections)
    }

    fn search(&self, s: &'a Search, compiled: &[Vec<Prepared>]) -> bool {
        let mut tests = compiled.iter();
        self.search_with(s, &mut tests)
    }

    fn search_with<'c>(
        &self,
        s: &'a Search,
        compiled: &mut impl Iterator<Item = &'c Vec<Prepared>>,
    ) -> bool {
        match s {
            Search::And(tests) => {
                let mut all = true;
                for t in tests {
                    let c = compiled.next().map_or(&[][..], Vec::as_slice);
                    all &= self.test(t, c);
                }
                all
            }
            Search::Or(alts) => {
                let mut any = false;
                for a in alts {
                    any |= self.search_with(a, compiled);
                }
                any
            }
        }
    }

    fn test(&self, t: &'a FieldTest, compiled: &[Prepared]) -> bool {
        let read = t.field.as_deref().map(|f| self.value(f));
        let holds = |(i, a): (usize, &'a Atom)| -> bool {
            let re = compiled.get(i).unwrap_or(&Prepared::Nothing);
            match &read {
                Some(r) => self.field_atom(r, a, re),
                None => self.keyword_atom(a, re),
            }
        };
        let held = if t.all {
            t.atoms.iter().enumerate().all(holds)
        } else {
            t.atoms.iter().enumerate().any(holds)
        };
        if t.neq {
            let present = read
                .as_ref()
                .and_then(|r| r.value.as_ref())
                .is_some_and(|v| !v.is_null());
            present && !held
        } else {
            held
        }
    }

    /// A keyword value: some string of the event satisfies it, as a field value would.
    fn keyword_atom(&self, a: &Atom, re: &Prepared) -> bool {
        let strings = self.strings.get_or_init(|| {
            let mut v = Vec::new();
            self.event
                .for_each_str(&mut |s| v.push(Scalar::new(Value::Str(Cow::Borrowed(s)))));
            v
        });
        strings.iter().any(|s| atom(std::slice::from_ref(s), a, re))
    }

    fn field_atom(&self, r: &Read<'e>, a: &'a Atom, re: &Prepared) -> bool {
        match a {
            Atom::Exists(b) => r.value.is_some() == *b,
            Atom::Null => r.value.as_ref().is_none_or(|v| v.is_null()),
            Atom::FieldRef {
                field: other,
                anchor,
                cased,
            } => {
                let o = self.value(other);
                if r.value.is_none() || o.value.is_none() {
                    return false;
                }
                o.scalars
                    .iter()
                    .filter_map(|o| o.text(*cased))
                    .any(|needle| {
                        r.scalars
                            .iter()
                            .filter_map(|v| v.text(*cased))
                            .any(|v| anchor.matches(v, needle))
                    })
            }
            _ => r.value.is_some() && atom(&r.scalars, a, re),
        }
    }
}

/// Whether a present value (its scalars: the value, or the elements of a list)
/// satisfies `a` (not a presence test or a field reference).
fn atom(xs: &[Scalar<'_>], a: &Atom, re: &Prepared) -> bool {
    match a {
        Atom::Str(StrPat::Lit {
            text,
            anchor: Anchor::Exact,
            ..
        }) if text.is_empty() => xs
            .iter()
            .any(|x| matches!(x.value, Value::Null) || x.text.as_deref() == Some("")),
        Atom::Str(StrPat::Lit {
            text,
            anchor,
            cased,
        }) => xs.iter().filter_map(|x| x.text(*cased)).any(|t| match re {
            Prepared::Find(f) => f.find(t.as_bytes()).is_some(),
            _ => anchor.matches(t, text),
        }),
        Atom::Str(StrPat::Glob { cased, .. }) => xs
            .iter()
            .filter_map(|x| x.text(*cased))
            .any(|t| re.re().is_some_and(|re| re.is_match(t))),
        Atom::Re(..) => xs
            .iter()
            .filter_map(|x| x.text(true))
            .any(|t| re.re().is_some_and(|re| re.is_match(t))),
        Atom::Num(c, n) => xs
            .iter()
            .any(|x| x.value.as_f64().is_some_and(|f| c.test(f, *n))),
        Atom::Bool(b) => xs.iter().any(|x| match &x.value {
            Value::Bool(y) => y == b,
            Value::Str(s) => s.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
            _ => false,
        }),
        Atom::Cidr(net) => xs.iter().any(|x| {
            x.value
                .as_str()
                .and_then(ip_of)
                .is_some_and(|ip| net.contains(ip))
        }),
        Atom::Time(part, c, n) => xs
            .iter()
            .any(|x| value_time(&x.value).is_some_and(|ms| c.test(part_of(ms, *part), *n))),
        // Keywords: a string is present, and not null.
        Atom::Exists(b) => *b,
        Atom::Null => false,
        Atom::FieldRef { .. } => false,
    }
}

/// The condition over the searches' results.
fn cond(c: &Cond, held: &mut dyn FnMut(usize) -> bool) -> bool {
    match c {
        Cond::Search(i) => held(*i),
        Cond::And(parts) => parts.iter().all(|p| cond(p, held)),
        Cond::Or(parts) => parts.iter().any(|p| cond(p, held)),
        Cond::Not(inner) => !cond(inner, held),
        Cond::AtLeast(n, idx) => idx.iter().filter(|i| held(**i)).count() >= *n,
        Cond::Const(b) => *b,
    }
}

/// Marks the searches that occur under an even number of `not`s.
fn mark_positive(c: &Cond, negated: bool, out: &mut [bool]) {
    let mut mark = |i: &usize| {
        if let Some(p) = out.get_mut(*i) {
            *p |= !negated;
        }
    };
    match c {
        Cond::Search(i) => mark(i),
        Cond::AtLeast(_, idx) => idx.iter().for_each(mark),
        Cond::And(parts) | Cond::Or(parts) => {
            parts.iter().for_each(|p| mark_positive(p, negated, out))
        }
        Cond::Not(inner) => mark_positive(inner, !negated, out),
        Cond::Const(_) => {}
    }
}
