//! Building the engine from the parsed rules: filters and correlations resolved, rules
//! grouped into buckets (by logsource, and by the EventIDs they require), each bucket
//! compiled ([`crate::compile`]: programs, literal index, triggers) and routed
//! ([`crate::route`]). A rule whose literals cannot be indexed is refused and the build
//! starts again without it.

use crate::compile::{self, BucketCompiler, Group, GroupError, Lists, PatternTable, RuleProg};
use crate::cond::Cond;
use crate::correlation_rules;
use crate::engine::{Bucket, DetRule, Engine};
use crate::error::{ErrorKind, RuleError};
use crate::fields::SlotTable;
use crate::mapping::WindowsMap;
use crate::model::{LogSource, RuleMeta};
use crate::parse::{Body, Detection, FilterAst, Parsed};
use crate::route::{BucketVariants, RouteBuilder};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use vigil_event::taxonomy::Taxonomy;

/// What a build starts from (kept by the [`Loader`](crate::Loader) as it parses rules).
pub(crate) struct Input {
    pub win: WindowsMap,
    pub linux: Taxonomy,
    pub parsed: Vec<Parsed>,
    /// The rules that failed to parse, and the warnings about those that did.
    pub errors: Vec<RuleError>,
    pub warnings: Vec<RuleError>,
    pub dfa_max: usize,
    /// Builds a bucket's literal index (replaced by tests to make it fail).
    pub build_groups: BuildGroups,
}

/// Builds the literal index of a bucket's pattern table, given `dfa_max`.
pub(crate) type BuildGroups = fn(PatternTable, usize) -> Result<Vec<Group>, GroupError>;

/// What [`Loader::build`](crate::Loader::build) returns.
pub struct Built {
    /// The engine, holding every rule that loaded.
    pub engine: Engine,
    /// Every rule that did not load, in load order: parse errors first, then references.
    pub errors: Vec<RuleError>,
    /// How many rule documents loaded (detections, correlations and filters).
    pub loaded: usize,
    /// What is worth knowing about rules that loaded: a placeholder without values (in
    /// load order), then, once per logsource that neither the Windows nor the Linux
    /// mapping knows, its first rule (its rules see only [`EventKind::Declared`](crate::EventKind::Declared) events).
    pub warnings: Vec<RuleError>,
}

/// Rules refused because their literals cannot be indexed: (parsed index, reason).
type Refused = Vec<(usize, String)>;

/// A detection rule that loaded, as the engine holds it: for the
/// [`Reference`](crate::Reference).
pub(crate) struct Planned {
    /// Index in the loader's parsed documents.
    pub parsed: usize,
    /// Index in the engine's rules.
    pub meta: usize,
    pub silent: bool,
    /// The filters applied to it (parsed indices).
    pub filters: Vec<usize>,
}

/// Builds the engine. A rule whose literals the automata cannot be built for is refused
/// (an error naming it and why) and the build starts again without it, until every
/// bucket builds.
pub(crate) fn build(input: &Input) -> (Built, Vec<Planned>) {
    let mut refused: Refused = Vec::new();
    loop {
        match build_once(input, &refused) {
            Ok(built) => return built,
            Err(more) => {
                debug_assert!(!more.is_empty());
                refused.extend(more);
            }
        }
    }
}

/// One attempt at [`build`], with the rules of `refused` (parsed index, reason) left out;
/// `Err` with the rules that made a bucket's automata fail to build.
fn build_once(
    input: &Input,
    refused: &[(usize, String)],
) -> Result<(Built, Vec<Planned>), Refused> {
    let Input {
        win,
        linux,
        parsed,
        errors,
        warnings,
        dfa_max,
        build_groups,
    } = input;
    let (dfa_max, build_groups) = (*dfa_max, *build_groups);
    let mut errors = errors.clone();
    let mut warnings = warnings.clone();
    let by_ref = index_refs(parsed);
    let mut ok = vec![true; parsed.len()];
    for (i, reason) in refused {
        ok[*i] = false;
        errors.push(rule_err(&parsed[*i].meta, ErrorKind::Index(reason.clone())));
    }
    let filters_of = resolve_filters(parsed, &by_ref, &mut ok, &mut errors);
    let corr_result = correlation_rules::resolve(parsed, &by_ref, &mut ok, &mut errors);
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
    let Grouping {
        dets,
        det_of,
        det_parsed,
        members,
    } = group(parsed, &ok, &meta_of, &corr_result.silent);
    let mut slots = SlotTable::default();
    let mut routes = RouteBuilder::new(win, linux);
    let mut buckets = Vec::new();
    let mut n_memo = 0u32;
    let mut n_kw_memo = 0u32;
    let mut warned: HashSet<LogSource> = HashSet::new();
    for ((ls, split_eid), idxs) in members {
        let bi = buckets.len() as u32;
        let compile = |rules: &[usize]| {
            let unit = BucketUnit {
                parsed,
                filters_of: &filters_of,
                det_of: &det_of,
                corr_fields: &corr_result.fields,
            };
            unit.compile(rules, dfa_max, build_groups)
        };
        let CompiledBucket {
            progs,
            fields,
            n_pats,
            pat_stats,
            mut groups,
        } = match compile(&idxs) {
            Ok(c) => c,
            Err(_) => return Err(culprits(&idxs, compile)),
        };
        for g in groups.iter_mut() {
            if g.worth_memoizing() {
                g.memo = Some(n_memo);
                n_memo += 1;
            } else if g.keywords_by_string() {
                g.memo = Some(n_kw_memo);
                n_kw_memo += 1;
            }
        }
        // Triggers.
        let mut triggers: Vec<Vec<(u32, u32)>> = vec![Vec::new(); n_pats as usize];
        let mut always = Vec::new();
        for (li, prog) in progs.iter().enumerate() {
            match compile::trigger(prog, &pat_stats) {
                Some(set) => {
                    for p in set {
                        triggers[p as usize].push((li as u32, prog.det));
                    }
                }
                None => always.push(li as u32),
            }
        }
        // Variants (the generic one first) and routes.
        let mut variants = BucketVariants::new(&fields);
        let generic_variant = variants.generic(&mut slots, win, linux);
        let routed = routes.add(bi, &ls, split_eid, &mut variants, &mut slots);
        let product = ls.product.as_deref();
        if !routed
            && matches!(product, Some("windows") | Some("linux"))
            && warned.insert(ls.clone())
        {
            let mut rules = parsed.iter().enumerate().filter(|(i, p)| {
                ok[*i] && matches!(p.body, Body::Detection(_)) && p.meta.logsource == ls
            });
            if let Some((_, first)) = rules.next() {
                let more = rules.count();
                let kind = ErrorKind::Warning(format!(
                    "logsource {ls} is not in the {} mapping: this rule{} match{} only events of a declared logsource",
                    product.unwrap_or_default(),
                    match more {
                        0 => String::new(),
                        n => format!(" and {n} more with that logsource"),
                    },
                    if more == 0 { "es" } else { "" },
                ));
                warnings.push(rule_err(&first.meta, kind));
            }
        }
        let variants = variants.variants;
        buckets.push(Bucket {
            logsource: ls,
            progs,
            fields,
            variants,
            generic_variant,
            groups,
            n_pats,
            triggers: Lists::new(triggers),
            always: always.into_boxed_slice(),
        });
    }
    let max_pat_words = buckets
        .iter()
        .map(|b: &Bucket| b.n_pats as usize)
        .max()
        .unwrap_or(0)
        .div_ceil(64);
    let corrs = correlation_rules::finish(corr_result.defs, &det_of, &meta_of);
    let plan = dets
        .iter()
        .zip(det_parsed)
        .map(|(d, parsed)| Planned {
            parsed,
            meta: d.meta as usize,
            silent: d.silent,
            filters: filters_of[parsed].clone(),
        })
        .collect();
    let built = Built {
        engine: Engine {
            metas,
            dets,
            buckets,
            slots: slots.slots,
            routes: routes.finish(),
            corrs,
            max_pat_words,
            n_memo: n_memo as usize,
            n_kw_memo: n_kw_memo as usize,
        },
        errors,
        loaded,
        warnings,
    };
    Ok((built, plan))
}

/// Every rule by its id and by its name (the first one that has it).
fn index_refs(parsed: &[Parsed]) -> HashMap<String, usize> {
    let mut by_ref: HashMap<String, usize> = HashMap::new();
    for (i, p) in parsed.iter().enumerate() {
        if let Some(id) = &p.meta.id {
            by_ref.entry(id.clone()).or_insert(i);
        }
        if let Some(n) = &p.meta.name {
            by_ref.entry(n.clone()).or_insert(i);
        }
    }
    by_ref
}

/// The filters of each rule (parsed indices): those naming it, and those naming none
/// whose logsource covers it. A filter naming an unknown rule, one that is no detection
/// or one its logsource does not cover fails (in `ok` and `errors`).
fn resolve_filters(
    parsed: &[Parsed],
    by_ref: &HashMap<String, usize>,
    ok: &mut [bool],
    errors: &mut Vec<RuleError>,
) -> Vec<Vec<usize>> {
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
    filters_of
}

/// The detection rules that loaded, and their buckets.
struct Grouping {
    dets: Vec<DetRule>,
    /// Per parsed document: its index in `dets` (`u32::MAX` if none).
    det_of: Vec<u32>,
    /// Per detection rule: its parsed index.
    det_parsed: Vec<usize>,
    /// The buckets: key, and the parsed indices of their rules.
    members: Vec<(BucketKey, Vec<usize>)>,
}

/// Groups the detection rules that loaded by logsource, and within it by the EventIDs a
/// rule requires (so that a Security 4625 record only meets the rules that can match
/// 4625).
fn group(parsed: &[Parsed], ok: &[bool], meta_of: &[u32], silent: &HashSet<usize>) -> Grouping {
    let mut dets: Vec<DetRule> = Vec::new();
    let mut det_of = vec![u32::MAX; parsed.len()];
    let mut det_parsed = Vec::new();
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
        det_parsed.push(i);
        dets.push(DetRule {
            meta: meta_of[i],
            silent: silent.contains(&i),
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
    Grouping {
        dets,
        det_of,
        det_parsed,
        members,
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

/// What compiling a bucket's rules needs besides the rules.
struct BucketUnit<'a> {
    parsed: &'a [Parsed],
    filters_of: &'a [Vec<usize>],
    det_of: &'a [u32],
    corr_fields: &'a HashMap<usize, correlation_rules::NeededFields>,
}

/// A bucket's rules compiled: their programs, local fields, pattern statistics and
/// literal index.
struct CompiledBucket {
    progs: Vec<RuleProg>,
    fields: Vec<String>,
    n_pats: u32,
    pat_stats: Vec<(u32, u32)>,
    groups: Vec<Group>,
}

impl BucketUnit<'_> {
    /// Compiles the detection rules `rules` (parsed indices), their filters merged in,
    /// into one bucket; `Err` (the reason) when its automata cannot be built.
    fn compile(
        &self,
        rules: &[usize],
        dfa_max: usize,
        build_groups: BuildGroups,
    ) -> Result<CompiledBucket, String> {
        let mut bc = BucketCompiler::new();
        let mut progs = Vec::new();
        for &pi in rules {
            let Body::Detection(d) = &self.parsed[pi].body else {
                continue;
            };
            let mut d = d.clone();
            for &fi in &self.filters_of[pi] {
                if let Body::Filter(f) = &self.parsed[fi].body {
                    merge_filter(&mut d, f, &self.parsed[fi].meta.title);
                }
            }
            let mut prog = bc.rule(self.det_of[pi], &d);
            if let Some(cf) = self.corr_fields.get(&pi) {
                for f in &cf.fields {
                    let local = bc.field(f);
                    prog.corr_fields.push((Arc::from(f.as_str()), local));
                }
                prog.wants_time = true;
            }
            progs.push(prog);
        }
        let fields = bc.fields;
        let n_pats = bc.patterns.n_pats;
        let pat_stats = bc.patterns.stats.clone();
        let groups = build_groups(bc.patterns, dfa_max).map_err(|e| {
            let field = e.field.and_then(|f| fields.get(f as usize));
            match field {
                Some(f) => format!(
                    "the literal index of field `{f}` cannot be built: {}",
                    e.reason
                ),
                None => format!(
                    "the literal index of the keywords cannot be built: {}",
                    e.reason
                ),
            }
        })?;
        Ok(CompiledBucket {
            progs,
            fields,
            n_pats,
            pat_stats,
            groups,
        })
    }
}

/// The rules of a bucket that make its literal index fail to build (by `compile`), with
/// the reason: each rule that fails on its own, then, while the others still fail
/// together, the rule whose addition makes them fail (the shortest failing prefix, by
/// bisection). Every rule not named compiles.
fn culprits<T>(
    rules: &[usize],
    compile: impl Fn(&[usize]) -> Result<T, String>,
) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut rest = Vec::new();
    for &r in rules {
        match compile(&[r]) {
            Ok(_) => rest.push(r),
            Err(e) => out.push((r, e)),
        }
    }
    while let Err(e) = compile(&rest) {
        // `rest[..hi]` fails and `rest[..lo]` does not (an empty bucket builds).
        let (mut lo, mut hi) = (0, rest.len());
        let mut reason = e;
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            match compile(&rest[..mid]) {
                Ok(_) => lo = mid,
                Err(e) => {
                    hi = mid;
                    reason = e;
                }
            }
        }
        if hi == 0 {
            break;
        }
        out.push((rest.remove(hi - 1), reason));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{culprits, GroupError, PatternTable};
    use crate::compile::Group;
    use crate::{ErrorKind, EventKind, Loader, LogSource};

    /// A literal index builder that fails on a literal holding `poison`, and on three or
    /// more literals holding `heavy` (too large together).
    fn poisoned(t: PatternTable, dfa_max: usize) -> Result<Vec<Group>, GroupError> {
        if let Some((field, _)) = t.literals().find(|(_, l)| l.contains("poison")) {
            return Err(GroupError {
                field,
                reason: "poisoned".into(),
            });
        }
        let heavy: Vec<_> = t.literals().filter(|(_, l)| l.contains("heavy")).collect();
        if heavy.len() >= 3 {
            return Err(GroupError {
                field: heavy[0].0,
                reason: "too heavy together".into(),
            });
        }
        t.build(dfa_max)
    }

    /// Regression: an automaton that failed to build became an engine warning and an
    /// empty literal index, so every literal rule of its logsource silently never fired.
    /// Now the rules whose literals make it fail are refused (`file:line: reason`), and
    /// the others of the logsource load and fire.
    #[test]
    fn automaton_build_failure_refuses_only_its_rules() {
        let mut loader = Loader::new();
        loader.input.build_groups = poisoned;
        let rules = [
            ("test", "Image|endswith: '\\a.exe'"),
            ("test", "CommandLine|contains: 'poison pill'"),
            ("test", "CommandLine|contains: 'heavy one'"),
            ("test", "CommandLine|contains: 'heavy two'"),
            ("test", "CommandLine|contains: 'heavy three'"),
            ("other", "CommandLine|contains: 'heavy four'"),
            ("test", "'|contains': 'poisoned keyword'"),
        ];
        for (i, (product, sel)) in rules.iter().enumerate() {
            loader.add(
                &format!("r{i}.yml"),
                &format!(
                    "title: R{i}\nid: r{i}\nlogsource: {{product: {product}}}\n\
                     detection:\n  s:\n    {sel}\n  condition: s\n"
                ),
            );
        }
        loader.add(
            "c.yml",
            "title: C\ncorrelation:\n  type: event_count\n  rules: [r1]\n  timespan: 1m\n  \
             condition: {gte: 2}\n",
        );
        let built = loader.build();
        let errors: Vec<String> = built.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            [
                "r1.yml:1: the literal index of field `CommandLine` cannot be built: poisoned",
                "r6.yml:1: the literal index of the keywords cannot be built: poisoned",
                "r4.yml:1: the literal index of field `CommandLine` cannot be built: too heavy together",
                "c.yml:1: correlation refers to `r1`, which failed to load",
            ]
        );
        assert!(built
            .errors
            .iter()
            .take(3)
            .all(|e| matches!(e.kind, ErrorKind::Index(_))));
        assert_eq!(built.loaded, 4);
        let engine = built.engine;
        let mut fired = Vec::new();
        for product in ["test", "other"] {
            let d = engine.declare(&LogSource::new(Some(product), None, None));
            let ev = serde_json::json!({"Image": "c:\\a.exe",
                "CommandLine": "heavy one heavy two heavy three heavy four poison pill"});
            let mut out = Vec::new();
            engine.match_event(
                &mut engine.scratch(),
                &ev,
                EventKind::Declared(&d),
                &mut out,
            );
            fired.extend(out.iter().map(|f| f.rule.title.clone()));
        }
        assert_eq!(fired, ["R0", "R2", "R3", "R5"]);
    }

    /// The culprits are the rules failing alone, then the one whose addition makes the
    /// rest fail, until the rest builds.
    #[test]
    fn culprits_are_found_alone_then_by_bisection() {
        // Rule r fails alone if r % 10 == 7; any set holding three of 20, 21, 22, 23 fails.
        let compile = |rules: &[usize]| -> Result<(), String> {
            if rules.iter().any(|r| r % 10 == 7) {
                return Err("alone".into());
            }
            match rules.iter().filter(|r| (20..24).contains(*r)).count() {
                n if n >= 3 => Err(format!("{n} together")),
                _ => Ok(()),
            }
        };
        let rules: Vec<usize> = (0..30).collect();
        let found = culprits(&rules, compile);
        let want: Vec<(usize, String)> = vec![
            (7, "alone".into()),
            (17, "alone".into()),
            (27, "alone".into()),
            (22, "3 together".into()),
            (23, "3 together".into()),
        ];
        assert_eq!(found, want);
        assert_eq!(culprits(&rules[..20], compile).len(), 2);
        assert!(culprits(&[1, 2, 3], compile).is_empty());
    }
}
