//! From YAML documents to parsed rules: metadata, search identifiers with their modifiers
//! applied (values become [`Atom`]s), conditions, correlations and filters.

use crate::cond::{self, Cond};
use crate::error::{ErrorKind, LineError};
use crate::model::{Level, LogSource, RuleKind, RuleMeta};
use crate::pattern::{self, Anchor, StrPat, Tok};
use crate::yaml::{Kind, Node};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use vigil_event::time::TimePart;

/// A numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Lt,
    Lte,
    Gt,
    Gte,
}

impl Cmp {
    pub(crate) fn test<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            Cmp::Eq => a == b,
            Cmp::Lt => a < b,
            Cmp::Lte => a <= b,
            Cmp::Gt => a > b,
            Cmp::Gte => a >= b,
        }
    }
}

/// An IP network for `cidr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub(crate) fn parse(s: &str) -> Option<IpNet> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(IpNet { addr, prefix })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if self.addr.is_ipv4() => IpAddr::V4(v4),
                _ => ip,
            },
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                (u32::from(n) & mask) == (u32::from(a) & mask)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                (u128::from(n) & mask) == (u128::from(a) & mask)
            }
            _ => false,
        }
    }
}

/// One value test of a field, after its modifiers.
#[derive(Debug, Clone)]
pub(crate) enum Atom {
    /// A string test.
    Str(StrPat),
    /// `re`, with literals one of which every match contains (when they can be known).
    Re(crate::rx::SigmaRegex, Vec<String>),
    /// A number: plain YAML numbers (`Eq`) and `lt`/`lte`/`gt`/`gte`.
    Num(Cmp, f64),
    /// A plain YAML boolean.
    Bool(bool),
    /// `null`: the field is missing or null.
    Null,
    /// `exists`.
    Exists(bool),
    /// `cidr`.
    Cidr(IpNet),
    /// `fieldref`: compare with another field of the same event.
    FieldRef {
        field: String,
        anchor: Anchor,
        cased: bool,
    },
    /// `minute` .. `year`.
    Time(TimePart, Cmp, i64),
}

/// One `field|modifiers: values` entry (or a keyword list when `field` is `None`).
#[derive(Debug, Clone)]
pub(crate) struct FieldTest {
    pub field: Option<String>,
    pub atoms: Vec<Atom>,
    /// All atoms must hold (`all`); otherwise one.
    pub all: bool,
    /// `neq`: the field exists and none (or, with `all`, not all) of the atoms hold.
    pub neq: bool,
}

/// A search identifier's body.
#[derive(Debug, Clone)]
pub(crate) enum Search {
    /// A map: all entries hold.
    And(Vec<FieldTest>),
    /// A list: one element holds.
    Or(Vec<Search>),
}

/// A detection: named searches and the condition over them.
#[derive(Debug, Clone)]
pub(crate) struct Detection {
    pub names: Vec<String>,
    pub searches: Vec<Search>,
    pub cond: Cond,
}

/// A correlation type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorrelationType {
    /// `event_count`.
    EventCount,
    /// `value_count`.
    ValueCount,
    /// `temporal`.
    Temporal,
    /// `temporal_ordered`.
    TemporalOrdered,
    /// `value_sum`.
    ValueSum,
    /// `value_avg`.
    ValueAvg,
    /// `value_percentile`.
    ValuePercentile,
}

/// A correlation condition: the conjunction of the bounds given.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Range {
    pub bounds: Vec<(Cmp, f64)>,
    pub neq: Vec<f64>,
}

impl Range {
    pub(crate) fn test(&self, v: f64) -> bool {
        self.bounds.iter().all(|(c, b)| c.test(v, *b)) && self.neq.iter().all(|b| v != *b)
    }
}

/// A parsed correlation section.
#[derive(Debug, Clone)]
pub(crate) struct CorrelationAst {
    pub ctype: CorrelationType,
    pub rules: Vec<String>,
    pub group_by: Vec<String>,
    pub timespan_ms: i64,
    pub range: Range,
    pub field: Option<String>,
    pub percentile: f64,
    /// alias -> (rule reference -> field)
    pub aliases: Vec<(String, Vec<(String, String)>)>,
    pub generate: bool,
}

/// A parsed filter: the rules it applies to and the detection it adds.
#[derive(Debug, Clone)]
pub(crate) struct FilterAst {
    /// Referenced rules (ids or names); empty means every rule of the logsource.
    pub rules: Vec<String>,
    pub detection: Detection,
}

/// A parsed document.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Detection(Detection),
    Correlation(CorrelationAst),
    Filter(FilterAst),
}

/// A parsed rule document.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub meta: RuleMeta,
    pub body: Body,
}

/// What the parser needs from the engine configuration, and what it has to say that is
/// not an error.
pub(crate) struct ParseCtx<'a> {
    pub placeholders: &'a HashMap<String, Vec<String>>,
    /// Warnings (line, message) about the document being parsed.
    pub warnings: std::cell::RefCell<Vec<(usize, String)>>,
}

fn scalar_string(n: &Node, what: &str) -> Result<String, LineError> {
    match &n.kind {
        Kind::Seq(_) | Kind::Map(_) => Err(LineError::schema(
            n.line,
            format!("`{what}` must be a scalar, found {}", n.type_name()),
        )),
        _ => Ok(n.as_scalar_str().unwrap_or_default()),
    }
}

fn opt_string(doc: &Node, key: &str) -> Result<Option<String>, LineError> {
    match doc.get(key) {
        None => Ok(None),
        Some(n) if n.kind == Kind::Null => Ok(None),
        Some(n) => scalar_string(n, key).map(Some),
    }
}

fn string_list(n: &Node, what: &str) -> Result<Vec<String>, LineError> {
    match &n.kind {
        Kind::Seq(items) => items.iter().map(|i| scalar_string(i, what)).collect(),
        Kind::Null => Ok(Vec::new()),
        _ => Ok(vec![scalar_string(n, what)?]),
    }
}

fn parse_meta(doc: &Node, source: &Arc<str>, kind: RuleKind) -> Result<RuleMeta, LineError> {
    let title = match doc.get("title") {
        Some(n) => scalar_string(n, "title")?,
        None => return Err(LineError::schema(doc.line, "missing `title`")),
    };
    let level = match doc.get("level") {
        None => None,
        Some(n) if n.kind == Kind::Null => None,
        Some(n) => {
            let s = scalar_string(n, "level")?;
            Some(Level::parse(&s.to_ascii_lowercase()).ok_or_else(|| {
                LineError::schema(
                    n.line,
                    format!("unknown level `{s}` (informational, low, medium, high, critical)"),
                )
            })?)
        }
    };
    let tags = match doc.get("tags") {
        Some(n) => string_list(n, "tags")?,
        None => Vec::new(),
    };
    let logsource = match doc.get("logsource") {
        None => LogSource::default(),
        Some(ls) => {
            if !matches!(ls.kind, Kind::Map(_) | Kind::Null) {
                return Err(LineError::schema(ls.line, "`logsource` must be a mapping"));
            }
            LogSource::new(
                opt_string(ls, "product")?.as_deref(),
                opt_string(ls, "category")?.as_deref(),
                opt_string(ls, "service")?.as_deref(),
            )
        }
    };
    Ok(RuleMeta {
        title,
        id: opt_string(doc, "id")?,
        name: opt_string(doc, "name")?,
        level,
        status: opt_string(doc, "status")?,
        tags,
        logsource,
        source: source.clone(),
        line: doc.line,
        kind,
    })
}

/// The top-level fields of a Sigma 2.1 rule, correlation or filter (`action` marks a
/// multi-document file's global and reset documents).
const RULE_FIELDS: &[&str] = &[
    "title",
    "id",
    "related",
    "name",
    "taxonomy",
    "status",
    "description",
    "license",
    "author",
    "references",
    "date",
    "modified",
    "logsource",
    "detection",
    "fields",
    "falsepositives",
    "level",
    "tags",
    "scope",
    "correlation",
    "filter",
    "action",
];

/// The fields of a logsource.
const LOGSOURCE_FIELDS: &[&str] = &["product", "category", "service", "definition"];

/// Warns of keys of `node` (a mapping) that look like a misspelt known field: same
/// letters in another case, or at most two edits from one (`levl`, `Level`, `tag`,
/// `prodcut`). The Sigma specification allows custom fields (SigmaHQ's rules carry
/// `regression_tests_path` and `simulation`), so other unknown keys are left alone;
/// a misspelt one would silently drop what it meant to say (a level, a logsource).
fn warn_misspelt_keys(node: &Node, known: &[&str], what: &str, ctx: &ParseCtx<'_>) {
    let Kind::Map(entries) = &node.kind else {
        return;
    };
    for (k, _) in entries {
        let Some(key) = k.as_scalar_str() else {
            continue;
        };
        if known.contains(&key.as_str()) {
            continue;
        }
        let lower = key.to_ascii_lowercase();
        let near = known.iter().find(|f| {
            **f == lower || (key.len() >= 3 && edit_distance(&lower, f) <= 2.min(f.len() / 3))
        });
        if let Some(f) = near {
            ctx.warnings.borrow_mut().push((
                k.line,
                format!("unknown {what} `{key}`, ignored: did you mean `{f}`?"),
            ));
        }
    }
}

/// Levenshtein distance between two short ASCII-ish strings (by bytes).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, &ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Parses one YAML document into a rule.
pub(crate) fn parse_doc(
    doc: &Node,
    source: &Arc<str>,
    ctx: &ParseCtx<'_>,
) -> Result<Parsed, (Option<String>, LineError)> {
    if !matches!(doc.kind, Kind::Map(_)) {
        return Err((
            None,
            LineError::schema(
                doc.line,
                format!("a rule must be a mapping, found {}", doc.type_name()),
            ),
        ));
    }
    let kind = if doc.get("correlation").is_some() {
        RuleKind::Correlation
    } else if doc.get("filter").is_some() {
        RuleKind::Filter
    } else {
        RuleKind::Detection
    };
    let meta = parse_meta(doc, source, kind).map_err(|e| (None, e))?;
    warn_misspelt_keys(doc, RULE_FIELDS, "field", ctx);
    if let Some(ls) = doc.get("logsource") {
        warn_misspelt_keys(ls, LOGSOURCE_FIELDS, "logsource field", ctx);
    }
    let handle = Some(meta.title.clone());
    let body = match kind {
        RuleKind::Detection => {
            let det = doc.get("detection").ok_or_else(|| {
                (
                    handle.clone(),
                    LineError::schema(
                        doc.line,
                        "missing `detection` (or `correlation` / `filter`)",
                    ),
                )
            })?;
            if meta.logsource == LogSource::default() && doc.get("logsource").is_none() {
                return Err((handle, LineError::schema(doc.line, "missing `logsource`")));
            }
            Body::Detection(parse_detection(det, ctx, &[]).map_err(|e| (handle.clone(), e))?)
        }
        RuleKind::Correlation => {
            Body::Correlation(parse_correlation(doc).map_err(|e| (handle.clone(), e))?)
        }
        RuleKind::Filter => {
            let f = doc.get("filter").ok_or_else(|| {
                (
                    handle.clone(),
                    LineError::schema(doc.line, "missing `filter`"),
                )
            })?;
            let rules = match f.get("rules") {
                Some(n) => string_list(n, "rules").map_err(|e| (handle.clone(), e))?,
                None => Vec::new(),
            };
            let detection = parse_detection(f, ctx, &["rules"]).map_err(|e| (handle.clone(), e))?;
            Body::Filter(FilterAst { rules, detection })
        }
    };
    Ok(Parsed { meta, body })
}

/// Parses a `detection` mapping (or a filter's), skipping the keys in `skip`.
pub(crate) fn parse_detection(
    det: &Node,
    ctx: &ParseCtx<'_>,
    skip: &[&str],
) -> Result<Detection, LineError> {
    let Kind::Map(entries) = &det.kind else {
        return Err(LineError::schema(
            det.line,
            format!("`detection` must be a mapping, found {}", det.type_name()),
        ));
    };
    let mut names = Vec::new();
    let mut searches = Vec::new();
    let mut condition: Option<&Node> = None;
    for (k, v) in entries {
        let key = scalar_string(k, "search identifier")?;
        if key == "condition" {
            condition = Some(v);
            continue;
        }
        if key == "timeframe" {
            return Err(LineError {
                line: k.line,
                kind: ErrorKind::Unsupported(
                    "`timeframe` is Sigma 1 syntax; use a correlation rule".into(),
                ),
            });
        }
        if skip.contains(&key.as_str()) {
            continue;
        }
        if names.contains(&key) {
            return Err(LineError::schema(
                k.line,
                format!("search identifier `{key}` defined twice"),
            ));
        }
        searches.push(parse_search(v, ctx, 0)?);
        names.push(key);
    }
    let Some(cnode) = condition else {
        return Err(LineError::schema(det.line, "missing `condition`"));
    };
    let texts: Vec<(usize, String)> = match &cnode.kind {
        Kind::Seq(items) => items
            .iter()
            .map(|i| Ok((i.line, scalar_string(i, "condition")?)))
            .collect::<Result<_, LineError>>()?,
        Kind::Str(s) => vec![(cnode.line, s.clone())],
        _ => {
            return Err(LineError::condition(
                cnode.line,
                format!("must be a string or a list, found {}", cnode.type_name()),
            ))
        }
    };
    if texts.is_empty() {
        return Err(LineError::condition(cnode.line, "empty condition list"));
    }
    let mut conds = Vec::new();
    for (line, t) in texts {
        conds.push(cond::parse(&t, &names).map_err(|e| LineError::condition(line, e))?);
    }
    let cond = if conds.len() == 1 {
        conds.remove(0)
    } else {
        Cond::Or(conds)
    };
    Ok(Detection {
        names,
        searches,
        cond,
    })
}

fn parse_search(v: &Node, ctx: &ParseCtx<'_>, depth: usize) -> Result<Search, LineError> {
    match &v.kind {
        Kind::Map(entries) => {
            let mut tests = Vec::with_capacity(entries.len());
            for (k, val) in entries {
                let key = scalar_string(k, "field")?;
                tests.push(parse_field(&key, val, ctx, k.line)?);
            }
            Ok(Search::And(tests))
        }
        Kind::Seq(items) => {
            if items.is_empty() {
                return Err(LineError::schema(v.line, "empty search list"));
            }
            if items
                .iter()
                .all(|i| !matches!(i.kind, Kind::Map(_) | Kind::Seq(_)))
            {
                // A keyword list.
                return Ok(Search::And(vec![parse_field("", v, ctx, v.line)?]));
            }
            if depth > 0 {
                return Err(LineError::schema(v.line, "nested lists in a search"));
            }
            let mut alts = Vec::new();
            for i in items {
                alts.push(parse_search(i, ctx, depth + 1)?);
            }
            Ok(Search::Or(alts))
        }
        Kind::Str(_) | Kind::Int(_) | Kind::Float(_) | Kind::Bool(_) => {
            Ok(Search::And(vec![parse_field("", v, ctx, v.line)?]))
        }
        Kind::Null => Err(LineError::schema(v.line, "empty search identifier")),
    }
}

#[derive(Default)]
struct Mods {
    anchor: Option<(Anchor, &'static str)>,
    all: bool,
    cased: bool,
    neq: bool,
    exists: bool,
    re: bool,
    re_i: bool,
    re_m: bool,
    re_s: bool,
    base64: bool,
    base64offset: bool,
    utf16: Option<&'static str>,
    windash: bool,
    cmp: Option<Cmp>,
    time: Option<TimePart>,
    cidr: bool,
    expand: bool,
    fieldref: bool,
}

fn parse_mods(mods: &[&str], line: usize) -> Result<Mods, LineError> {
    let mut m = Mods::default();
    let set_anchor = |m: &mut Mods, a: Anchor, name: &'static str| {
        if let Some((_, prev)) = m.anchor {
            return Err(LineError::modifier(
                line,
                format!("`{name}` cannot be combined with `{prev}`"),
            ));
        }
        m.anchor = Some((a, name));
        Ok(())
    };
    for raw in mods {
        let lower = raw.to_ascii_lowercase();
        match lower.as_str() {
            "contains" => set_anchor(&mut m, Anchor::Contains, "contains")?,
            "startswith" => set_anchor(&mut m, Anchor::Prefix, "startswith")?,
            "endswith" => set_anchor(&mut m, Anchor::Suffix, "endswith")?,
            "all" => m.all = true,
            "cased" => m.cased = true,
            "neq" => m.neq = true,
            "exists" => m.exists = true,
            "re" => m.re = true,
            "i" | "m" | "s" if !m.re => {
                return Err(LineError::modifier(
                    line,
                    format!("regular expression flag `{raw}` without `re`"),
                ))
            }
            "i" => m.re_i = true,
            "m" => m.re_m = true,
            "s" => m.re_s = true,
            "base64" => m.base64 = true,
            "base64offset" => m.base64offset = true,
            "utf16le" | "wide" => m.utf16 = Some("utf16le"),
            "utf16be" => m.utf16 = Some("utf16be"),
            "utf16" => m.utf16 = Some("utf16"),
            "windash" => m.windash = true,
            "lt" => m.cmp = Some(Cmp::Lt),
            "lte" => m.cmp = Some(Cmp::Lte),
            "gt" => m.cmp = Some(Cmp::Gt),
            "gte" => m.cmp = Some(Cmp::Gte),
            "minute" => m.time = Some(TimePart::Minute),
            "hour" => m.time = Some(TimePart::Hour),
            "day" => m.time = Some(TimePart::Day),
            "week" => m.time = Some(TimePart::Week),
            "month" => m.time = Some(TimePart::Month),
            "year" => m.time = Some(TimePart::Year),
            "cidr" => m.cidr = true,
            "expand" => m.expand = true,
            "fieldref" => m.fieldref = true,
            "" => return Err(LineError::modifier(line, "empty modifier (`||`)")),
            _ => {
                return Err(LineError::modifier(
                    line,
                    format!("unknown modifier `{raw}`"),
                ))
            }
        }
    }
    if m.utf16.is_some() && !(m.base64 || m.base64offset) {
        return Err(LineError::modifier(
            line,
            "`utf16*`/`wide` must be followed by `base64` or `base64offset`",
        ));
    }
    if m.base64 && m.base64offset {
        return Err(LineError::modifier(
            line,
            "`base64` and `base64offset` exclude each other",
        ));
    }
    let kinds = [
        m.re,
        m.cidr,
        m.exists,
        m.cmp.is_some() && m.time.is_none(),
        m.time.is_some(),
        m.fieldref,
    ];
    if kinds.iter().filter(|k| **k).count() > 1 {
        return Err(LineError::modifier(
            line,
            "only one of `re`, `cidr`, `exists`, `lt`/`lte`/`gt`/`gte`, time parts, `fieldref` may be used",
        ));
    }
    let stringy = m.base64 || m.base64offset || m.windash || m.expand;
    if (m.re || m.cidr || m.exists || m.cmp.is_some() || m.time.is_some())
        && (stringy || m.anchor.is_some())
    {
        return Err(LineError::modifier(
            line,
            "string modifiers cannot be combined with `re`, `cidr`, `exists` or comparisons",
        ));
    }
    if m.fieldref && stringy {
        return Err(LineError::modifier(
            line,
            "`fieldref` takes a field name, not a transformed value",
        ));
    }
    Ok(m)
}

fn expand(s: &str, ctx: &ParseCtx<'_>, line: usize) -> Result<Vec<String>, LineError> {
    // Replace each %name% by each of its values (cartesian product).
    let mut out = vec![String::new()];
    let mut rest = s;
    while let Some(start) = rest.find('%') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('%') else { break };
        let name = &after[..end];
        // A placeholder without values stands for itself: its text, `%name%`, which no
        // event holds, so a selection on it matches nothing (and a filter on it excludes
        // nothing: the rule still fires). The rule loads, with a warning.
        let unset = [format!("%{name}%")];
        let values: &[String] = match ctx.placeholders.get(name) {
            Some(v) => v,
            None => {
                ctx.warnings.borrow_mut().push((
                    line,
                    format!(
                        "placeholder `%{name}%` has no values (give them with --placeholder \
                         {name}=VALUE,...): it matches nothing"
                    ),
                ));
                &unset
            }
        };
        let prefix = &rest[..start];
        let mut next = Vec::new();
        for o in &out {
            for v in values {
                next.push(format!("{o}{prefix}{v}"));
            }
        }
        out = next;
        rest = &after[end + 1..];
    }
    for o in &mut out {
        o.push_str(rest);
    }
    Ok(out)
}

fn parse_field(
    key: &str,
    val: &Node,
    ctx: &ParseCtx<'_>,
    line: usize,
) -> Result<FieldTest, LineError> {
    let mut parts = key.split('|');
    let field = parts.next().unwrap_or("").to_string();
    let mods_raw: Vec<&str> = parts.collect();
    let m = parse_mods(&mods_raw, line)?;
    let values: Vec<&Node> = match &val.kind {
        Kind::Seq(items) => items.iter().collect(),
        Kind::Map(_) => {
            return Err(LineError::schema(
                val.line,
                format!("value of `{key}` must be a scalar or a list, found a mapping"),
            ))
        }
        _ => vec![val],
    };
    if values.is_empty() {
        return Err(LineError::schema(
            val.line,
            format!("`{key}` has an empty value list"),
        ));
    }
    for v in &values {
        if matches!(v.kind, Kind::Seq(_) | Kind::Map(_)) {
            return Err(LineError::schema(
                v.line,
                format!("values of `{key}` must be scalars, found {}", v.type_name()),
            ));
        }
    }
    let field_opt = if field.is_empty() { None } else { Some(field) };
    if field_opt.is_none() && (m.exists || m.fieldref || m.neq) {
        return Err(LineError::modifier(
            line,
            "`exists`, `fieldref` and `neq` need a field name",
        ));
    }
    let mut atoms = Vec::new();
    for v in values {
        value_atoms(v, &m, ctx, field_opt.is_none(), &mut atoms)?;
    }
    Ok(FieldTest {
        field: field_opt,
        atoms,
        all: m.all,
        neq: m.neq,
    })
}

fn value_atoms(
    v: &Node,
    m: &Mods,
    ctx: &ParseCtx<'_>,
    keyword: bool,
    atoms: &mut Vec<Atom>,
) -> Result<(), LineError> {
    let line = v.line;
    if m.exists {
        let Kind::Bool(b) = v.kind else {
            return Err(LineError::value(line, "`exists` takes `true` or `false`"));
        };
        atoms.push(Atom::Exists(b));
        return Ok(());
    }
    let as_num = |v: &Node| -> Option<f64> {
        match &v.kind {
            Kind::Int(i) => Some(*i as f64),
            Kind::Float(f) => Some(*f),
            Kind::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    };
    if let Some(part) = m.time {
        let n = as_num(v)
            .filter(|n| n.fract() == 0.0)
            .ok_or_else(|| LineError::value(line, "time part modifiers take an integer"))?;
        atoms.push(Atom::Time(part, m.cmp.unwrap_or(Cmp::Eq), n as i64));
        return Ok(());
    }
    if let Some(cmp) = m.cmp {
        let n = as_num(v).ok_or_else(|| {
            LineError::value(
                line,
                format!("comparison needs a number, found {}", v.type_name()),
            )
        })?;
        atoms.push(Atom::Num(cmp, n));
        return Ok(());
    }
    if m.cidr {
        let s = scalar_string(v, "cidr")?;
        let net = IpNet::parse(&s)
            .ok_or_else(|| LineError::value(line, format!("invalid CIDR network `{s}`")))?;
        atoms.push(Atom::Cidr(net));
        return Ok(());
    }
    if m.re {
        let s = scalar_string(v, "re")?;
        let re = crate::rx::SigmaRegex::new(&s, m.re_i, m.re_m, m.re_s).map_err(|last| {
            LineError::value(line, format!("invalid regular expression `{s}`: {last}"))
        })?;
        let hints = regex_hints(&s, m.re_i, m.re_m, m.re_s);
        atoms.push(Atom::Re(re, hints));
        return Ok(());
    }
    if m.fieldref {
        let f = scalar_string(v, "fieldref")?;
        atoms.push(Atom::FieldRef {
            field: f,
            anchor: m.anchor.map_or(Anchor::Exact, |a| a.0),
            cased: m.cased,
        });
        return Ok(());
    }
    let has_string_mods = keyword
        || m.anchor.is_some()
        || m.base64
        || m.base64offset
        || m.windash
        || m.expand
        || m.cased;
    match &v.kind {
        Kind::Null => {
            if has_string_mods {
                return Err(LineError::value(
                    line,
                    "`null` cannot take string modifiers",
                ));
            }
            atoms.push(Atom::Null);
            return Ok(());
        }
        Kind::Int(i) if !has_string_mods => {
            atoms.push(Atom::Num(Cmp::Eq, *i as f64));
            return Ok(());
        }
        Kind::Float(f) if !has_string_mods => {
            atoms.push(Atom::Num(Cmp::Eq, *f));
            return Ok(());
        }
        Kind::Bool(b) if !has_string_mods => {
            atoms.push(Atom::Bool(*b));
            return Ok(());
        }
        _ => {}
    }
    let raw = scalar_string(v, "value")?;
    let texts = if m.expand {
        expand(&raw, ctx, line)?
    } else {
        vec![raw]
    };
    for text in texts {
        let toks = pattern::parse_wildcards(&text);
        let mut variants = if m.windash {
            pattern::windash(&toks)
        } else {
            vec![toks]
        };
        if m.base64 || m.base64offset {
            let mut enc = Vec::new();
            for var in &variants {
                let plain = pattern::plain_text(var);
                let bytes = match m.utf16 {
                    Some("utf16le") => pattern::utf16le(&plain),
                    Some("utf16be") => pattern::utf16be(&plain),
                    Some(_) => {
                        let mut b = vec![0xFF, 0xFE];
                        b.extend(pattern::utf16le(&plain));
                        b
                    }
                    None => plain.into_bytes(),
                };
                if m.base64 {
                    enc.push(vec![Tok::Lit(pattern::base64(&bytes))]);
                } else {
                    for s in pattern::base64_offsets(&bytes) {
                        enc.push(vec![Tok::Lit(s)]);
                    }
                }
            }
            variants = enc;
        }
        for mut toks in variants {
            // Keywords without a match-kind modifier are substring searches.
            let anchor = match (m.anchor, keyword) {
                (None, true) => Some(Anchor::Contains),
                (a, _) => a.map(|a| a.0),
            };
            match anchor {
                Some(Anchor::Contains) => {
                    toks.insert(0, Tok::Star);
                    toks.push(Tok::Star);
                }
                Some(Anchor::Prefix) => toks.push(Tok::Star),
                Some(Anchor::Suffix) => toks.insert(0, Tok::Star),
                Some(Anchor::Exact) | None => {}
            }
            atoms.push(Atom::Str(pattern::compile_str(toks, m.cased)));
        }
    }
    Ok(())
}

/// Most literals a regular expression's hint may have.
const MAX_REGEX_HINTS: usize = 64;

/// Literals one of which every match of the regular expression contains (so a text
/// without any of them cannot match), lowercased; empty when none can be given. Every
/// part a match must contain (the whole expression, each element of a concatenation and
/// the rest of the concatenation from it, the body of a repetition of at least one) gives
/// a candidate set, the literals one of which starts each of its matches; the set whose shortest literal is longest is taken (fewest
/// literals on a tie), so `\.exe\s+.*werfaultsecure\.exe` is hinted by
/// `werfaultsecure.exe`, not by `.exe`. A case-insensitive word is cut where its case
/// variants become too many for the extractor.
fn regex_hints(pattern: &str, i: bool, m: bool, s: bool) -> Vec<String> {
    use regex_syntax::hir::{Hir, HirKind};
    fn candidates(hir: &Hir, out: &mut Vec<Vec<String>>) {
        if let Some(set) = prefix_literals(hir) {
            out.push(set);
        }
        match hir.kind() {
            HirKind::Concat(parts) => {
                // What a match must contain from each element on.
                for k in 1..parts.len() {
                    if let Some(set) = prefix_literals(&Hir::concat(parts[k..].to_vec())) {
                        out.push(set);
                    }
                }
                parts.iter().for_each(|p| candidates(p, out));
            }
            HirKind::Capture(c) => candidates(&c.sub, out),
            HirKind::Repetition(r) if r.min >= 1 => candidates(&r.sub, out),
            _ => {}
        }
    }
    let Ok(hir) = regex_syntax::ParserBuilder::new()
        .case_insensitive(i)
        .multi_line(m)
        .dot_matches_new_line(s)
        .build()
        .parse(pattern)
    else {
        return Vec::new();
    };
    let mut sets = Vec::new();
    candidates(&hir, &mut sets);
    let shortest = |set: &Vec<String>| set.iter().map(String::len).min().unwrap_or(0);
    sets.into_iter()
        .max_by(|a, b| {
            shortest(a)
                .cmp(&shortest(b))
                .then_with(|| b.len().cmp(&a.len()))
        })
        .unwrap_or_default()
}

/// The literals one of which starts every match of `hir`, lowercased; `None` when they
/// cannot be given (none, too many, or an empty one).
fn prefix_literals(hir: &regex_syntax::hir::Hir) -> Option<Vec<String>> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let seq = Extractor::new().kind(ExtractKind::Prefix).extract(hir);
    let lits = seq.literals()?;
    if lits.is_empty() || lits.len() > MAX_REGEX_HINTS * 4 {
        return None;
    }
    let mut out: Vec<String> = Vec::new();
    for l in lits {
        let text = std::str::from_utf8(l.as_bytes()).ok()?;
        if text.is_empty() {
            return None;
        }
        let f = pattern::fold(text);
        if !out.contains(&f) {
            out.push(f);
        }
    }
    (out.len() <= MAX_REGEX_HINTS).then_some(out)
}

fn parse_timespan(s: &str) -> Option<i64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: i64 = num.parse().ok().filter(|n| *n > 0)?;
    let mul = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        "M" => 30 * 86_400_000,
        "y" => 365 * 86_400_000,
        _ => return None,
    };
    n.checked_mul(mul)
}

fn parse_correlation(doc: &Node) -> Result<CorrelationAst, LineError> {
    let Some(c) = doc.get("correlation") else {
        return Err(LineError::schema(doc.line, "missing `correlation`"));
    };
    if !matches!(c.kind, Kind::Map(_)) {
        return Err(LineError::schema(c.line, "`correlation` must be a mapping"));
    }
    let tnode = c
        .get("type")
        .ok_or_else(|| LineError::schema(c.line, "correlation without `type`"))?;
    let ctype = match scalar_string(tnode, "type")?.as_str() {
        "event_count" => CorrelationType::EventCount,
        "value_count" => CorrelationType::ValueCount,
        "temporal" => CorrelationType::Temporal,
        "temporal_ordered" => CorrelationType::TemporalOrdered,
        "value_sum" => CorrelationType::ValueSum,
        "value_avg" => CorrelationType::ValueAvg,
        "value_percentile" => CorrelationType::ValuePercentile,
        other => {
            return Err(LineError::schema(
                tnode.line,
                format!("unknown correlation type `{other}`"),
            ))
        }
    };
    let rules = match c.get("rules") {
        Some(n) => string_list(n, "rules")?,
        None => Vec::new(),
    };
    if rules.is_empty() {
        return Err(LineError::schema(c.line, "correlation without `rules`"));
    }
    let group_by = match c.get("group-by") {
        Some(n) => string_list(n, "group-by")?,
        None => Vec::new(),
    };
    let tsnode = c
        .get("timespan")
        .or_else(|| c.get("timeframe"))
        .ok_or_else(|| LineError::schema(c.line, "correlation without `timespan`"))?;
    let ts = scalar_string(tsnode, "timespan")?;
    let timespan_ms = parse_timespan(&ts).ok_or_else(|| {
        LineError::value(
            tsnode.line,
            format!("invalid timespan `{ts}` (a number then s, m, h, d, w, M or y)"),
        )
    })?;
    let mut range = Range::default();
    let mut field = c
        .get("field")
        .map(|n| scalar_string(n, "field"))
        .transpose()?;
    let mut percentile = None;
    match c.get("condition") {
        Some(cn) => {
            let Kind::Map(entries) = &cn.kind else {
                return Err(LineError::schema(
                    cn.line,
                    "correlation `condition` must be a mapping (`gte: 10`)",
                ));
            };
            for (k, v) in entries {
                let key = scalar_string(k, "condition")?;
                if key == "field" {
                    field = Some(scalar_string(v, "field")?);
                    continue;
                }
                let n = match &v.kind {
                    Kind::Int(i) => *i as f64,
                    Kind::Float(f) => *f,
                    _ => {
                        return Err(LineError::value(
                            v.line,
                            format!("condition `{key}` needs a number"),
                        ))
                    }
                };
                match key.as_str() {
                    "gt" => range.bounds.push((Cmp::Gt, n)),
                    "gte" => range.bounds.push((Cmp::Gte, n)),
                    "lt" => range.bounds.push((Cmp::Lt, n)),
                    "lte" => range.bounds.push((Cmp::Lte, n)),
                    "eq" => range.bounds.push((Cmp::Eq, n)),
                    "neq" => range.neq.push(n),
                    "percentile" => percentile = Some(n),
                    _ => {
                        return Err(LineError::schema(
                            k.line,
                            format!("unknown correlation condition `{key}`"),
                        ))
                    }
                }
            }
        }
        None => {
            if !matches!(
                ctype,
                CorrelationType::Temporal | CorrelationType::TemporalOrdered
            ) {
                return Err(LineError::schema(c.line, "correlation without `condition`"));
            }
        }
    }
    if percentile.is_none() {
        if let Some(p) = c.get("percentile") {
            percentile = match p.kind {
                Kind::Int(i) => Some(i as f64),
                Kind::Float(f) => Some(f),
                _ => return Err(LineError::value(p.line, "`percentile` needs a number")),
            };
        }
    }
    let needs_field = matches!(
        ctype,
        CorrelationType::ValueCount
            | CorrelationType::ValueSum
            | CorrelationType::ValueAvg
            | CorrelationType::ValuePercentile
    );
    if needs_field && field.is_none() {
        return Err(LineError::schema(
            c.line,
            "this correlation type needs `field` in its condition",
        ));
    }
    if matches!(
        ctype,
        CorrelationType::Temporal | CorrelationType::TemporalOrdered
    ) && range.bounds.is_empty()
        && range.neq.is_empty()
    {
        range.bounds.push((Cmp::Gte, rules.len() as f64));
    }
    let percentile = match (ctype, percentile) {
        (CorrelationType::ValuePercentile, None) => {
            return Err(LineError::schema(
                c.line,
                "`value_percentile` needs `percentile` (1-100) in its condition",
            ))
        }
        (_, Some(p)) if !(0.0..=100.0).contains(&p) => {
            return Err(LineError::value(
                c.line,
                "`percentile` must be within 0..100",
            ))
        }
        (_, p) => p.unwrap_or(50.0),
    };
    let mut aliases = Vec::new();
    if let Some(an) = c.get("aliases") {
        let Kind::Map(entries) = &an.kind else {
            return Err(LineError::schema(an.line, "`aliases` must be a mapping"));
        };
        for (k, v) in entries {
            let alias = scalar_string(k, "alias")?;
            let Kind::Map(per_rule) = &v.kind else {
                return Err(LineError::schema(
                    v.line,
                    format!("alias `{alias}` must map rule names to fields"),
                ));
            };
            let mut m = Vec::new();
            for (r, f) in per_rule {
                m.push((scalar_string(r, "rule")?, scalar_string(f, "field")?));
            }
            aliases.push((alias, m));
        }
    }
    let generate = match c.get("generate").or_else(|| doc.get("generate")) {
        None => false,
        Some(n) => match n.kind {
            Kind::Bool(b) => b,
            _ => return Err(LineError::value(n.line, "`generate` must be true or false")),
        },
    };
    Ok(CorrelationAst {
        ctype,
        rules,
        group_by,
        timespan_ms,
        range,
        field,
        percentile,
        aliases,
        generate,
    })
}

/// Merges a legacy `action: global` document into a following one (the later wins).
pub(crate) fn merge_global(global: &Node, doc: &Node) -> Node {
    match (&global.kind, &doc.kind) {
        (Kind::Map(g), Kind::Map(d)) => {
            let mut out: Vec<(Node, Node)> = Vec::new();
            for (gk, gv) in g {
                if gk.as_str() == Some("action") {
                    continue;
                }
                match d.iter().find(|(dk, _)| dk.kind == gk.kind) {
                    Some((_, dv)) => out.push((gk.clone(), merge_global(gv, dv))),
                    None => out.push((gk.clone(), gv.clone())),
                }
            }
            for (dk, dv) in d {
                if !g.iter().any(|(gk, _)| gk.kind == dk.kind) {
                    out.push((dk.clone(), dv.clone()));
                }
            }
            Node {
                line: doc.line,
                kind: Kind::Map(out),
                raw: None,
            }
        }
        _ => doc.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr() {
        let n = IpNet::parse("10.0.0.0/8").expect("net");
        assert!(n.contains("10.1.2.3".parse().expect("ip")));
        assert!(!n.contains("11.1.2.3".parse().expect("ip")));
        assert!(n.contains("::ffff:10.1.2.3".parse().expect("ip")));
        let n6 = IpNet::parse("fe80::/10").expect("net");
        assert!(n6.contains("fe80::1".parse().expect("ip")));
        assert!(!n6.contains("2001::1".parse().expect("ip")));
        assert!(IpNet::parse("0.0.0.0/0")
            .expect("net")
            .contains("1.2.3.4".parse().expect("ip")));
        assert!(IpNet::parse("1.2.3.4/33").is_none());
    }

    #[test]
    fn regex_hints_are_necessary_literals() {
        assert_eq!(
            regex_hints(r"^cmd\.exe /c", false, false, false),
            vec!["cmd.exe /c"]
        );
        let mut h = regex_hints(r"(?:foo|Bar)baz\d", false, false, false);
        h.sort();
        assert_eq!(h, vec!["barbaz", "foobaz"]);
        assert_eq!(regex_hints("FOO", true, false, false), vec!["foo"]);
        assert_eq!(regex_hints(r"\s+x", false, false, false), vec!["x"]);
        assert!(regex_hints(r"\s+\d", false, false, false).is_empty());
        assert!(
            regex_hints("a*b", false, false, false).is_empty()
                || !regex_hints("a*b", false, false, false)
                    .iter()
                    .any(String::is_empty)
        );
        assert!(regex_hints("(", false, false, false).is_empty());
        // The longest necessary literal, wherever it stands (case-insensitive words are
        // cut where their case variants become too many).
        let h = regex_hints(
            r#"(?i)\.exe["']?\s+[^"]{0,64}werfaultsecure\.exe["']?\s+\d{2,10}"#,
            false,
            false,
            false,
        );
        assert!(
            h.len() == 1 && h[0].len() >= 8 && "werfaultsecure.exe".contains(h[0].as_str()),
            "{h:?}"
        );
        assert_eq!(
            regex_hints(r"\.exe\s+.*werfaultsecure\.exe", false, false, false),
            vec!["werfaultsecure.exe"]
        );
        assert_eq!(regex_hints(r"\d+(abc)+x", false, false, false), vec!["abc"]);
        // Optional parts give nothing: `(abc)?` need not occur.
        assert_eq!(regex_hints(r"x(abcdef)?", false, false, false), vec!["x"]);
    }

    #[test]
    fn timespans() {
        assert_eq!(parse_timespan("90m"), Some(5_400_000));
        assert_eq!(parse_timespan("1d"), Some(86_400_000));
        assert_eq!(parse_timespan("1x"), None);
        assert_eq!(parse_timespan("m"), None);
        assert_eq!(parse_timespan(""), None);
    }
}
