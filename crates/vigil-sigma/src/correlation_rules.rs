//! Correlation rules as the engine is built: their references resolved by id or name
//! (unknown ones, filters and cycles refused, correlations over refused rules refused in
//! turn), the fields their base rules' findings must carry, which base rules are silent,
//! and the definitions ([`CorrDef`]) the engine keeps for
//! [`CorrelationState`](crate::CorrelationState).

use crate::error::{ErrorKind, RuleError};
use crate::model::RuleMeta;
use crate::parse::{Body, CorrelationType, Parsed, Range};
use std::collections::{HashMap, HashSet};

/// A correlation after its references are resolved (indices into the parsed rules).
#[derive(Debug, Clone)]
pub(crate) struct RawDef {
    parsed: usize,
    refs: Vec<usize>,
    ctype: CorrelationType,
    timespan_ms: i64,
    range: Range,
    percentile: f64,
    group_by: Vec<String>,
    group_fields: Vec<Vec<String>>,
    value_field: Vec<Option<String>>,
    generate: bool,
}

/// The fields a detection rule's findings must carry for the correlations using it.
#[derive(Debug, Clone, Default)]
pub(crate) struct NeededFields {
    pub fields: Vec<String>,
}

/// What [`resolve`] hands the engine builder.
pub(crate) struct Resolved {
    pub defs: Vec<RawDef>,
    pub fields: HashMap<usize, NeededFields>,
    pub silent: HashSet<usize>,
}

/// What a correlation refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ref {
    /// A detection rule (metadata index).
    Rule(u32),
    /// Another correlation (index in the engine's correlations).
    Corr(u32),
}

/// A correlation in the engine.
#[derive(Debug, Clone)]
pub(crate) struct CorrDef {
    pub meta: u32,
    pub refs: Vec<Ref>,
    pub ctype: CorrelationType,
    pub timespan_ms: i64,
    pub range: Range,
    pub percentile: f64,
    pub group_by: Vec<String>,
    pub group_fields: Vec<Vec<String>>,
    pub value_field: Vec<Option<String>>,
    pub silent: bool,
}

fn err(meta: &RuleMeta, msg: String) -> RuleError {
    RuleError {
        file: meta.source.clone(),
        line: meta.line,
        rule: Some(meta.title.clone()),
        kind: ErrorKind::Reference(msg),
    }
}

/// Resolves every correlation's references; marks failures in `ok` and `errors`.
pub(crate) fn resolve(
    parsed: &[Parsed],
    by_ref: &HashMap<String, usize>,
    ok: &mut [bool],
    errors: &mut Vec<RuleError>,
) -> Resolved {
    // Referenced indices per correlation, failing unknown references.
    let mut refs: HashMap<usize, Vec<usize>> = HashMap::new();
    for (ci, p) in parsed.iter().enumerate() {
        let Body::Correlation(c) = &p.body else {
            continue;
        };
        let mut list = Vec::new();
        for r in &c.rules {
            match by_ref.get(r) {
                Some(&t) if matches!(parsed[t].body, Body::Filter(_)) => {
                    errors.push(err(&p.meta, format!("correlation refers to filter `{r}`")));
                    ok[ci] = false;
                    break;
                }
                Some(&t) => list.push(t),
                None => {
                    errors.push(err(
                        &p.meta,
                        format!("correlation refers to unknown rule `{r}`"),
                    ));
                    ok[ci] = false;
                    break;
                }
            }
        }
        refs.insert(ci, list);
    }
    // Cycles.
    for (&ci, _) in refs.iter() {
        if !ok[ci] {
            continue;
        }
        let mut stack = vec![(ci, 0usize)];
        let mut seen = HashSet::new();
        let mut cyclic = false;
        while let Some((n, depth)) = stack.pop() {
            if depth > 64 {
                cyclic = true;
                break;
            }
            for &t in refs.get(&n).map(Vec::as_slice).unwrap_or(&[]) {
                if t == ci {
                    cyclic = true;
                }
                if matches!(parsed[t].body, Body::Correlation(_)) && seen.insert(t) {
                    stack.push((t, depth + 1));
                }
            }
        }
        if cyclic {
            ok[ci] = false;
            errors.push(err(
                &parsed[ci].meta,
                "correlation refers to itself through a cycle".into(),
            ));
        }
    }
    // Correlations whose references failed fail too (until nothing changes).
    loop {
        let mut changed = false;
        for (&ci, list) in &refs {
            if ok[ci] {
                if let Some(&bad) = list.iter().find(|&&t| !ok[t]) {
                    ok[ci] = false;
                    changed = true;
                    errors.push(err(
                        &parsed[ci].meta,
                        format!(
                            "correlation refers to `{}`, which failed to load",
                            parsed[bad].meta.handle()
                        ),
                    ));
                }
            }
        }
        if !changed {
            break;
        }
    }
    let mut defs = Vec::new();
    let mut fields: HashMap<usize, NeededFields> = HashMap::new();
    let mut referenced = HashSet::new();
    let mut generated = HashSet::new();
    let mut cis: Vec<usize> = refs.keys().copied().filter(|&c| ok[c]).collect();
    cis.sort_unstable();
    for ci in cis {
        let Body::Correlation(c) = &parsed[ci].body else {
            continue;
        };
        let list = &refs[&ci];
        let mut group_fields = Vec::new();
        let mut value_field = Vec::new();
        for (pos, &t) in list.iter().enumerate() {
            let written = &c.rules[pos];
            let tm = &parsed[t].meta;
            let alias_for = |name: &str| -> String {
                for (alias, per_rule) in &c.aliases {
                    if alias == name {
                        for (rname, field) in per_rule {
                            if rname == written
                                || Some(rname) == tm.name.as_ref()
                                || Some(rname) == tm.id.as_ref()
                            {
                                return field.clone();
                            }
                        }
                    }
                }
                name.to_string()
            };
            let gf: Vec<String> = c.group_by.iter().map(|g| alias_for(g)).collect();
            let vf = c.field.as_deref().map(alias_for);
            if matches!(parsed[t].body, Body::Detection(_)) {
                let nf = fields.entry(t).or_default();
                for f in gf.iter().chain(vf.iter()) {
                    if !nf.fields.contains(f) {
                        nf.fields.push(f.clone());
                    }
                }
            }
            group_fields.push(gf);
            value_field.push(vf);
            referenced.insert(t);
            if c.generate {
                generated.insert(t);
            }
        }
        defs.push(RawDef {
            parsed: ci,
            refs: list.clone(),
            ctype: c.ctype,
            timespan_ms: c.timespan_ms,
            range: c.range.clone(),
            percentile: c.percentile,
            group_by: c.group_by.clone(),
            group_fields,
            value_field,
            generate: c.generate,
        });
    }
    let silent = referenced.difference(&generated).copied().collect();
    Resolved {
        defs,
        fields,
        silent,
    }
}

/// Converts resolved definitions to engine indices.
pub(crate) fn finish(defs: Vec<RawDef>, _det_of: &[u32], meta_of: &[u32]) -> Vec<CorrDef> {
    let corr_index: HashMap<usize, u32> = defs
        .iter()
        .enumerate()
        .map(|(i, d)| (d.parsed, i as u32))
        .collect();
    let referenced_corrs: HashSet<usize> = defs
        .iter()
        .flat_map(|d| d.refs.iter().copied())
        .filter(|r| corr_index.contains_key(r))
        .collect();
    let generated_corrs: HashSet<usize> = defs
        .iter()
        .filter(|d| d.generate)
        .flat_map(|d| d.refs.iter().copied())
        .collect();
    defs.into_iter()
        .map(|d| CorrDef {
            meta: meta_of[d.parsed],
            refs: d
                .refs
                .iter()
                .map(|r| match corr_index.get(r) {
                    Some(ci) => Ref::Corr(*ci),
                    None => Ref::Rule(meta_of[*r]),
                })
                .collect(),
            silent: referenced_corrs.contains(&d.parsed) && !generated_corrs.contains(&d.parsed),
            ctype: d.ctype,
            timespan_ms: d.timespan_ms,
            range: d.range,
            percentile: d.percentile,
            group_by: d.group_by,
            group_fields: d.group_fields,
            value_field: d.value_field,
        })
        .collect()
}
