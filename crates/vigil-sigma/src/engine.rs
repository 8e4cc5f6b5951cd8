//! The compiled engine: its rules, their buckets (rules of one logsource, compiled and
//! indexed together), the slots their fields are read from and the routing tables (all
//! made by the `build` module); the per-thread [`Scratch`] and the [`Finding`]s matching
//! makes (the `matcher` module).

use crate::compile::{Group, Lists, RuleProg};
use crate::correlation_rules::CorrDef;
use crate::fields::{SlotPath, Variant};
use crate::memo::Memo;
use crate::model::{LogSource, RuleKind, RuleMeta};
use crate::route::{Declared, Route, Routes, WinCache};
use vigil_event::Value;

/// Rules that share a logsource (and, if split, a required EventID), compiled together.
pub(crate) struct Bucket {
    pub logsource: LogSource,
    pub progs: Vec<RuleProg>,
    pub fields: Vec<String>,
    pub variants: Vec<Variant>,
    pub generic_variant: u32,
    pub groups: Vec<Group>,
    pub n_pats: u32,
    /// pat -> the rules it may trigger: (local index, detection index), side by side so
    /// that collecting candidates does not visit the rules themselves.
    pub triggers: Lists<(u32, u32)>,
    /// Local rule indices evaluated for every routed event.
    pub always: Box<[u32]>,
}

/// A detection rule in the engine.
pub(crate) struct DetRule {
    pub meta: u32,
    pub silent: bool,
}

/// The compiled, indexed rule set. Immutable, `Send + Sync`: share it between threads and
/// give each thread its own [`Scratch`].
pub struct Engine {
    pub(crate) metas: Vec<RuleMeta>,
    pub(crate) dets: Vec<DetRule>,
    pub(crate) buckets: Vec<Bucket>,
    pub(crate) slots: Vec<Box<[SlotPath]>>,
    pub(crate) routes: Routes,
    pub(crate) corrs: Vec<CorrDef>,
    /// Words of hit bits the largest rule group needs.
    pub(crate) max_pat_words: usize,
    /// Field groups whose scans are memoized (see [`crate::memo`]).
    pub(crate) n_memo: usize,
    /// Keyword groups whose scans are memoized string by string.
    pub(crate) n_kw_memo: usize,
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
    pub(crate) epoch: u32,
    pub(crate) slot_epoch: Vec<u32>,
    pub(crate) slot_pos: Vec<u32>,
    pub(crate) vals: Vec<Option<Value<'static>>>,
    pub(crate) hits: Vec<u64>,
    pub(crate) hit_list: Vec<u32>,
    pub(crate) rule_epoch: Vec<u32>,
    pub(crate) cand: Vec<u32>,
    pub(crate) routes: Vec<Route>,
    /// The Windows routes of the last record whose routing read no provider.
    pub(crate) win_cache: Option<WinCache>,
    /// Buffers of a `fieldref` test: the two values as text and folded.
    pub(crate) fieldref: [String; 4],
    pub(crate) lower: String,
    pub(crate) num: String,
    /// Every string of the current event, each followed by a NUL (for keywords).
    pub(crate) kw: String,
    pub(crate) kw_epoch: u32,
    /// The same, lowercased (for keyword substrings).
    pub(crate) kw_lower: Vec<u8>,
    pub(crate) kw_lower_epoch: u32,
    pub(crate) evaluated: u64,
    /// Per search of the rule being evaluated: 0 not evaluated yet, else 1 + whether it
    /// held (a finding reports the searches that held without evaluating them again).
    pub(crate) searched: Vec<u8>,
    pub(crate) memo: Memo,
    /// The memo of keyword groups: the hits of each of an event's strings.
    pub(crate) kw_memo: Memo,
    /// The hits of one string of a keyword group's scan.
    pub(crate) kw_piece: Vec<u32>,
    /// Field scans answered from the memo, and scans done.
    pub(crate) memo_hits: u64,
    pub(crate) scans: u64,
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

impl Engine {
    /// Every loaded rule: detections, correlations and filters.
    pub fn rules(&self) -> &[RuleMeta] {
        &self.metas
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
            hits: vec![0; self.max_pat_words],
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
            kw_memo: Memo::with_slots(self.n_kw_memo, crate::memo::KEYWORD_SLOTS),
            kw_piece: Vec::new(),
            memo_hits: 0,
            scans: 0,
        }
    }

    /// The routes for events of a declared logsource: every rule whose logsource the
    /// declared one satisfies (each part the rule names is named the same). Rules
    /// without a logsource see every event already, whatever its kind.
    pub fn declare(&self, logsource: &LogSource) -> Declared {
        let routes = self
            .buckets
            .iter()
            .enumerate()
            .filter(|(_, b)| b.logsource != LogSource::default() && b.logsource.covers(logsource))
            .map(|(i, b)| Route {
                bucket: i as u32,
                variant: b.generic_variant,
            })
            .collect();
        Declared {
            routes,
            logsource: logsource.clone(),
        }
    }

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
                    b.n_pats,
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
