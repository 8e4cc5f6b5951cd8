//! Loading rules: [`Loader`] parses rule texts (name, text) one file at a time, keeping
//! every failure, then builds the [`Engine`](crate::Engine) ([`crate::build`]).

use crate::build::{self, Built, Input};
use crate::compile::PatternTable;
use crate::error::{ConfigError, ErrorKind, RuleError};
use crate::mapping::{WindowsMap, WINDOWS_MAP};
use crate::parse::{self, Body, ParseCtx};
use crate::reference::{Reference, ReferenceRule};
use crate::yaml;
use std::collections::HashMap;
use std::sync::Arc;
use vigil_event::taxonomy::Taxonomy;

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
/// builds an [`Engine`](crate::Engine).
pub struct Loader {
    placeholders: HashMap<String, Vec<String>>,
    /// What the build starts from: the mappings, the rules parsed and the failures.
    pub(crate) input: Input,
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
            input: Input {
                win,
                linux,
                parsed: Vec::new(),
                errors: Vec::new(),
                warnings: Vec::new(),
                dfa_max: cfg
                    .dfa_literals_max
                    .unwrap_or(crate::compile::MAX_DFA_LITERALS),
                build_groups: PatternTable::build,
            },
        })
    }

    /// Parses every YAML document of `text` (a rule file) loaded under `name`. Returns how
    /// many documents parsed; each failure is recorded in [`Loader::errors`].
    pub fn add(&mut self, name: &str, text: &str) -> usize {
        let source: Arc<str> = Arc::from(name);
        let docs = match yaml::parse_documents(text) {
            Ok(d) => d,
            Err(e) => {
                self.input.errors.push(RuleError {
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
                    self.input.warnings.push(RuleError {
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
                    self.input.parsed.push(p);
                }
                Err((rule, e)) => self.input.errors.push(RuleError {
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
        &self.input.errors
    }

    /// Resolves correlations and filters, compiles and indexes every rule.
    pub fn build(self) -> Built {
        build::build(&self.input).0
    }

    /// [`Loader::build`], and the [`Reference`] evaluator of the same rules: the oracle
    /// the engine is tested against (slow; for tests).
    pub fn build_with_reference(self) -> (Built, Reference) {
        let (built, plan) = build::build(&self.input);
        let parsed = &self.input.parsed;
        let body = |i: usize| match &parsed[i].body {
            Body::Detection(d) => Some(d.clone()),
            Body::Filter(f) => Some(f.detection.clone()),
            Body::Correlation(_) => None,
        };
        let rules = plan
            .into_iter()
            .filter_map(|p| {
                let filters = p
                    .filters
                    .iter()
                    .filter_map(|&f| Some((parsed[f].meta.title.clone(), body(f)?)))
                    .collect();
                Some(ReferenceRule {
                    meta: p.meta,
                    silent: p.silent,
                    logsource: parsed[p.parsed].meta.logsource.clone(),
                    detection: body(p.parsed)?,
                    filters,
                })
            })
            .collect();
        let metas = built.engine.rules().to_vec();
        let (win, linux) = (self.input.win.clone(), self.input.linux.clone());
        let reference = Reference::new(metas, rules, win, linux);
        (built, reference)
    }
}

impl Default for Loader {
    fn default() -> Self {
        Self::new()
    }
}
