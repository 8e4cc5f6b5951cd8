//! [`CorrelationState`]: correlation rules judged over findings fed in event-time order,
//! in bounded, time-expiring state (the rules themselves are resolved when the engine is
//! built, [`crate::correlation_rules`]).
//!
//! Semantics (per correlation rule and group-by key):
//!
//! * `event_count`: number of events; `value_count`: number of distinct values of
//!   `field`; `value_sum` / `value_avg` / `value_percentile`: sum, mean or the given
//!   percentile (nearest rank) of the numeric values of `field` (non-numeric values are
//!   ignored);
//! * `temporal`: number of distinct referenced rules seen; `temporal_ordered`: length of
//!   the longest prefix of `rules` seen in that order. Both default to "all rules".
//!
//! When a condition is judged depends on its bounds:
//!
//! * With lower bounds only (`gt`, `gte`): over a sliding window of `timespan` ending at
//!   the newest event, the condition is tested each time an event enters a group; when it
//!   holds, a [`CorrelationFinding`] is emitted and the group's window is cleared (so one
//!   burst gives one finding).
//! * With an upper bound or an (in)equality (`lt`, `lte`, `eq`, `neq`, alone or with other
//!   bounds): a group's window opens with its first event and closes `timespan` later; the
//!   condition is judged once, when the window closes, over all the window's events. So a
//!   group that stays below the bound for the whole window fires, and one that reaches it
//!   within the window does not; `eq: 3` fires for a window of exactly 3 events, not for
//!   one that reaches 3 and goes on to 5.
//!   Windows close as event time passes their end: when a later finding is fed, when the
//!   caller calls [`CorrelationState::advance`], and at [`CorrelationState::finish`] (end
//!   of input).
//!
//! A correlation's own findings feed the correlations that refer to it (chaining), at the
//! time of the last event that made them.
//!
//! Bounds: at most [`Limits::max_groups`] group-by keys per correlation (the group idle
//! longest is dropped first, with its open window) and [`Limits::max_events_per_group`]
//! events per group (the oldest are dropped); groups whose newest event is older than the
//! timespan are removed.

use crate::correlation_rules::{CorrDef, Ref};
use crate::engine::{Engine, Finding};
use crate::model::RuleMeta;
use crate::parse::{Cmp, CorrelationType};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};

/// Bounds on [`CorrelationState`]'s memory.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Group-by keys kept per correlation rule (default 100,000).
    pub max_groups: usize,
    /// Events kept per group (default 10,000).
    pub max_events_per_group: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_groups: 100_000,
            max_events_per_group: 10_000,
        }
    }
}

/// A correlation rule that fired.
#[derive(Debug, Clone, PartialEq)]
pub struct CorrelationFinding<'r> {
    /// The correlation rule.
    pub rule: &'r RuleMeta,
    /// Its index in [`Engine::rules`].
    pub rule_index: usize,
    /// The group-by fields and this group's values.
    pub group: Vec<(String, Option<String>)>,
    /// The callers' references of the events that made it (in time order).
    pub events: Vec<u64>,
    /// The measured value (count, distinct count, sum, average or percentile).
    pub value: f64,
    /// Time of the first and last event in the window (ms since the epoch).
    pub first_ms: i64,
    /// See `first_ms`.
    pub last_ms: i64,
    /// True when this correlation is itself only a base of another correlation.
    pub silent: bool,
}

#[derive(Debug, Clone)]
struct Entry {
    time: i64,
    pos: usize,
    value: Option<String>,
    events: Vec<u64>,
}

#[derive(Debug, Default)]
struct Group {
    entries: VecDeque<Entry>,
    last: i64,
    /// Start of the open window of a correlation judged when its window closes.
    opened: Option<i64>,
}

/// An open window of a correlation judged at its close: (close time, correlation, start,
/// group key). Ordered by close time.
type Pending = Reverse<(i64, usize, i64, Vec<Option<String>>)>;

impl CorrDef {
    /// Whether the condition has an upper bound or tests for (in)equality, so is judged
    /// when the window closes: within the window the measure can still grow past it.
    fn judged_at_close(&self) -> bool {
        !self.range.neq.is_empty()
            || self
                .range
                .bounds
                .iter()
                .any(|(c, _)| matches!(c, Cmp::Lt | Cmp::Lte | Cmp::Eq))
    }
}

/// Correlation state: feed it the findings of [`Engine::match_event`] in event-time order.
///
/// The state does not hold its engine: each call is given it, and it must be the engine
/// the state was made for (so a holder of the engine, an `Arc` say, can keep the state
/// beside it and swap both at once).
pub struct CorrelationState {
    /// Correlations of the engine the state was made for.
    corrs: usize,
    limits: Limits,
    groups: Vec<HashMap<Vec<Option<String>>, Group>>,
    /// Detection rule metadata index -> (correlation, position in its `rules`).
    by_rule: HashMap<u32, Vec<(usize, usize)>>,
    by_corr: HashMap<u32, Vec<(usize, usize)>>,
    /// Open windows of correlations judged at close, soonest close first.
    pending: BinaryHeap<Pending>,
    now: i64,
    fed: u64,
}

impl CorrelationState {
    /// Empty state for an engine's correlations.
    pub fn new(engine: &Engine, limits: Limits) -> Self {
        let mut by_rule: HashMap<u32, Vec<(usize, usize)>> = HashMap::new();
        let mut by_corr: HashMap<u32, Vec<(usize, usize)>> = HashMap::new();
        for (ci, c) in engine.corrs.iter().enumerate() {
            for (pos, r) in c.refs.iter().enumerate() {
                match r {
                    Ref::Rule(m) => by_rule.entry(*m).or_default().push((ci, pos)),
                    Ref::Corr(k) => by_corr.entry(*k).or_default().push((ci, pos)),
                }
            }
        }
        CorrelationState {
            corrs: engine.corrs.len(),
            limits,
            groups: engine.corrs.iter().map(|_| HashMap::new()).collect(),
            by_rule,
            by_corr,
            pending: BinaryHeap::new(),
            now: i64::MIN,
            fed: 0,
        }
    }

    /// Whether any correlation uses the rule of this finding.
    pub fn wants(&self, f: &Finding<'_>) -> bool {
        self.by_rule.contains_key(&(f.rule_index as u32))
    }

    /// Number of group-by keys currently held, over all correlations.
    pub fn group_count(&self) -> usize {
        self.groups.iter().map(HashMap::len).sum()
    }

    /// Feeds one finding (the event is known to the caller as `event_ref`). Findings
    /// without a time take the newest time seen. Returns the correlations that fired,
    /// including chained ones, and those whose windows the finding's time closed (see
    /// [`CorrelationState::advance`]).
    pub fn feed<'r>(
        &mut self,
        engine: &'r Engine,
        f: &Finding<'_>,
        event_ref: u64,
    ) -> Vec<CorrelationFinding<'r>> {
        let mut out = Vec::new();
        if !self.made_for(engine) {
            return out;
        }
        let Some(targets) = self.by_rule.get(&(f.rule_index as u32)).cloned() else {
            return out;
        };
        let time = f.time_ms.unwrap_or(self.now);
        self.close_until(engine, time, &mut out);
        self.fed += 1;
        if self.fed.is_multiple_of(4096) {
            self.sweep(engine);
        }
        let lookup = |name: &str| -> Option<String> {
            f.fields
                .iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, v)| v.clone())
        };
        for (ci, pos) in targets {
            let def = &engine.corrs[ci];
            let key: Vec<Option<String>> =
                def.group_fields[pos].iter().map(|g| lookup(g)).collect();
            let value = def.value_field[pos].as_deref().and_then(lookup);
            self.push(engine, ci, pos, key, value, time, vec![event_ref], &mut out);
        }
        out
    }

    /// Event time has reached `now` (ms since the epoch): closes every window that ended
    /// before it and returns the correlations that fired there (conditions with `lt`,
    /// `lte`, `eq` or `neq`). Time never goes back: an earlier `now` does nothing.
    pub fn advance<'r>(&mut self, engine: &'r Engine, now: i64) -> Vec<CorrelationFinding<'r>> {
        let mut out = Vec::new();
        if self.made_for(engine) {
            self.close_until(engine, now, &mut out);
        }
        out
    }

    /// End of input: closes every open window and returns the correlations that fired
    /// there. The state stays usable; later findings open new windows.
    pub fn finish<'r>(&mut self, engine: &'r Engine) -> Vec<CorrelationFinding<'r>> {
        let mut out = Vec::new();
        if !self.made_for(engine) {
            return out;
        }
        while let Some(Reverse((_, ci, start, key))) = self.pending.pop() {
            self.close(engine, ci, start, key, &mut out);
        }
        out
    }

    /// Whether `engine` has the correlations the state was made for (given another
    /// engine, the calls do nothing rather than index out of its tables).
    fn made_for(&self, engine: &Engine) -> bool {
        engine.corrs.len() == self.corrs
    }

    fn close_until<'r>(
        &mut self,
        engine: &'r Engine,
        now: i64,
        out: &mut Vec<CorrelationFinding<'r>>,
    ) {
        self.now = self.now.max(now);
        // A window [start, start + timespan] closes once time is past its end.
        while let Some(Reverse((end, ..))) = self.pending.peek() {
            if *end >= self.now {
                break;
            }
            if let Some(Reverse((_, ci, start, key))) = self.pending.pop() {
                self.close(engine, ci, start, key, out);
            }
        }
    }

    /// Judges the window of `key` in correlation `ci` opened at `start`, if it is still open.
    fn close<'r>(
        &mut self,
        engine: &'r Engine,
        ci: usize,
        start: i64,
        key: Vec<Option<String>>,
        out: &mut Vec<CorrelationFinding<'r>>,
    ) {
        let def = &engine.corrs[ci];
        let Some(g) = self.groups[ci].get_mut(&key) else {
            return; // dropped (group limit)
        };
        if g.opened != Some(start) {
            return;
        }
        g.opened = None;
        let measured = measure(def, &g.entries);
        let entries: Vec<Entry> = g.entries.drain(..).collect();
        if def.range.test(measured) {
            self.fire(engine, ci, key, entries, measured, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push<'r>(
        &mut self,
        engine: &'r Engine,
        ci: usize,
        pos: usize,
        key: Vec<Option<String>>,
        value: Option<String>,
        time: i64,
        events: Vec<u64>,
        out: &mut Vec<CorrelationFinding<'r>>,
    ) {
        let def = &engine.corrs[ci];
        let groups = &mut self.groups[ci];
        if !groups.contains_key(&key) && groups.len() >= self.limits.max_groups {
            // Drop the group idle longest.
            if let Some(oldest) = groups
                .iter()
                .min_by_key(|(_, g)| g.last)
                .map(|(k, _)| k.clone())
            {
                groups.remove(&oldest);
            }
        }
        let g = groups.entry(key.clone()).or_default();
        let at_close = def.judged_at_close();
        if !at_close {
            let horizon = time.saturating_sub(def.timespan_ms);
            while g.entries.front().is_some_and(|e| e.time < horizon) {
                g.entries.pop_front();
            }
        }
        // Keep time order even if a finding arrives slightly late.
        let at = g.entries.partition_point(|e| e.time <= time);
        g.entries.insert(
            at,
            Entry {
                time,
                pos,
                value,
                events,
            },
        );
        while g.entries.len() > self.limits.max_events_per_group {
            g.entries.pop_front();
        }
        g.last = g.last.max(time);
        if at_close {
            if g.opened.is_none() {
                g.opened = Some(time);
                let end = time.saturating_add(def.timespan_ms);
                self.pending.push(Reverse((end, ci, time, key)));
            }
            return;
        }
        let measured = measure(def, &g.entries);
        if !def.range.test(measured) {
            return;
        }
        let entries: Vec<Entry> = g.entries.drain(..).collect();
        self.fire(engine, ci, key, entries, measured, out);
    }

    /// Emits the finding of correlation `ci` for a group's window, then feeds it to the
    /// correlations referring to `ci`.
    fn fire<'r>(
        &mut self,
        engine: &'r Engine,
        ci: usize,
        key: Vec<Option<String>>,
        entries: Vec<Entry>,
        measured: f64,
        out: &mut Vec<CorrelationFinding<'r>>,
    ) {
        let def = &engine.corrs[ci];
        let (first, last) = match (entries.first(), entries.last()) {
            (Some(f), Some(l)) => (f.time, l.time),
            _ => (self.now, self.now),
        };
        let events: Vec<u64> = entries
            .iter()
            .flat_map(|e| e.events.iter().copied())
            .collect();
        let group: Vec<(String, Option<String>)> = def
            .group_by
            .iter()
            .cloned()
            .zip(key.iter().cloned())
            .collect();
        let finding = CorrelationFinding {
            rule: &engine.rules()[def.meta as usize],
            rule_index: def.meta as usize,
            group: group.clone(),
            events: events.clone(),
            value: measured,
            first_ms: first,
            last_ms: last,
            silent: def.silent,
        };
        out.push(finding);
        // Chaining: correlations referring to this one.
        if let Some(targets) = self.by_corr.get(&(ci as u32)).cloned() {
            for (cj, p) in targets {
                let outer = &engine.corrs[cj];
                let k: Vec<Option<String>> = outer.group_fields[p]
                    .iter()
                    .map(|g| {
                        group
                            .iter()
                            .find(|(n, _)| n == g)
                            .and_then(|(_, v)| v.clone())
                    })
                    .collect();
                let v = outer.value_field[p].as_ref().and_then(|vf| {
                    group
                        .iter()
                        .find(|(n, _)| n == vf)
                        .and_then(|(_, v)| v.clone())
                });
                self.push(engine, cj, p, k, v, last, events.clone(), out);
            }
        }
    }

    /// Removes every group whose newest event is older than its correlation's timespan.
    pub fn sweep(&mut self, engine: &Engine) {
        if !self.made_for(engine) {
            return;
        }
        let now = self.now;
        for (ci, groups) in self.groups.iter_mut().enumerate() {
            let span = engine.corrs[ci].timespan_ms;
            groups.retain(|_, g| g.last >= now.saturating_sub(span) && !g.entries.is_empty());
        }
    }
}

fn measure(def: &CorrDef, entries: &VecDeque<Entry>) -> f64 {
    match def.ctype {
        CorrelationType::EventCount => entries.len() as f64,
        CorrelationType::ValueCount => {
            let distinct: HashSet<&str> =
                entries.iter().filter_map(|e| e.value.as_deref()).collect();
            distinct.len() as f64
        }
        CorrelationType::Temporal => {
            let distinct: HashSet<usize> = entries.iter().map(|e| e.pos).collect();
            distinct.len() as f64
        }
        CorrelationType::TemporalOrdered => {
            let mut next = 0usize;
            for e in entries {
                if e.pos == next {
                    next += 1;
                    if next == def.refs.len() {
                        break;
                    }
                }
            }
            next as f64
        }
        CorrelationType::ValueSum
        | CorrelationType::ValueAvg
        | CorrelationType::ValuePercentile => {
            let nums: Vec<f64> = entries
                .iter()
                .filter_map(|e| {
                    e.value
                        .as_deref()
                        .and_then(|v| v.trim().parse::<f64>().ok())
                })
                .collect();
            if nums.is_empty() {
                return f64::NAN;
            }
            match def.ctype {
                CorrelationType::ValueSum => nums.iter().sum(),
                CorrelationType::ValueAvg => nums.iter().sum::<f64>() / nums.len() as f64,
                _ => {
                    let mut s = nums;
                    s.sort_by(f64::total_cmp);
                    let rank = ((def.percentile / 100.0) * s.len() as f64).ceil() as usize;
                    s[rank.clamp(1, s.len()) - 1]
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventKind, Loader, LogSource};

    #[test]
    fn advance_closes_windows_after_their_end_only() {
        let mut loader = Loader::new();
        loader.add(
            "t.yml",
            "title: Beat\nname: beat\nlogsource: {product: test}\ndetection:\n  s:\n    EventID: 1\n  condition: s\n---\ntitle: Quiet\ncorrelation:\n  type: event_count\n  rules: [beat]\n  group-by: [Host]\n  timespan: 10s\n  condition:\n    lte: 1\n",
        );
        let built = loader.build();
        assert!(built.errors.is_empty(), "{:?}", built.errors);
        let engine = built.engine;
        let declared = engine.declare(&LogSource::new(Some("test"), None, None));
        let mut scratch = engine.scratch();
        let mut findings = Vec::new();
        let ev = serde_json::json!({"EventID": 1, "Host": "h", "time": 1_000});
        engine.match_event(
            &mut scratch,
            &ev,
            EventKind::Declared(&declared),
            &mut findings,
        );
        let t = findings[0].time_ms.expect("time");
        let mut state = CorrelationState::new(&engine, Limits::default());
        assert!(state.feed(&engine, &findings[0], 7).is_empty());
        // The window is [t, t + 10 s]: still open at its end, closed just after.
        assert!(state.advance(&engine, t + 10_000).is_empty());
        let fired = state.advance(&engine, t + 10_001);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].events, [7]);
        assert_eq!(fired[0].value, 1.0);
        // Closed once: neither advancing again nor finishing fires it again.
        assert!(state.advance(&engine, t + 20_000).is_empty());
        assert!(state.finish(&engine).is_empty());
    }
}
