//! Matching one event ([`Engine::match_event`]): its routes, then per bucket the literal
//! scans of its fields ([`crate::scan`]), the candidate rules their hits trigger, and
//! the evaluation of those whose required literals all hit (the `eval` module).

use crate::compile::RuleProg;
use crate::engine::{Engine, Finding, Scratch};
use crate::memo;
use crate::pattern;
use crate::route::{EventKind, Route};
use crate::scan::{self, for_each_scalar};
use std::net::IpAddr;
use vigil_event::time::value_time;
use vigil_event::{Event, Value};

/// One event being matched against one engine: its fields read once (`vals`, by slot),
/// the scratch of the thread, and the variant of the bucket being run.
pub(crate) struct Matcher<'e, 'r, 's> {
    pub engine: &'r Engine,
    pub event: &'e dyn Event,
    pub vals: Vec<Option<Value<'e>>>,
    pub s: &'s mut Scratch,
    pub variant: &'r [u32],
    /// The address last parsed for `cidr` tests, by position in `vals`: a test of eight
    /// networks reads it once.
    pub ip: Option<(usize, Option<IpAddr>)>,
}

impl Engine {
    /// Matches one event, appending a [`Finding`] per matching rule to `out` (in rule
    /// load order). Allocates only for findings.
    pub fn match_event<'r>(
        &'r self,
        scratch: &mut Scratch,
        event: &dyn Event,
        kind: EventKind<'_>,
        out: &mut Vec<Finding<'r>>,
    ) {
        if scratch.slot_epoch.len() != self.slots.len()
            || scratch.rule_epoch.len() != self.dets.len()
            || scratch.hits.len() < self.max_pat_words
            || scratch.memo.groups() != self.n_memo
            || scratch.kw_memo.groups() != self.n_kw_memo
        {
            // A scratch made by another engine: start afresh rather than misread it.
            *scratch = self.scratch();
        }
        let mut routes = std::mem::take(&mut scratch.routes);
        routes.clear();
        self.routes.route(
            &mut scratch.win_cache,
            &mut scratch.lower,
            event,
            kind,
            &mut routes,
        );
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
        let mut m = Matcher {
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
            m.run_bucket(*r, out);
        }
        if out.len() - start > 1 {
            out[start..].sort_by_key(|f| f.rule_index);
        }
        let Matcher { vals, .. } = m;
        scratch.vals = recycle(vals);
        scratch.routes = routes;
    }
}

/// Empties a vector and gives back its allocation for values of another lifetime.
fn recycle<'b>(mut v: Vec<Option<Value<'_>>>) -> Vec<Option<Value<'b>>> {
    v.clear();
    v.into_iter().map(|_| None).collect()
}

impl<'e, 'r> Matcher<'e, 'r, '_> {
    /// The position in `vals` of a local field's value, read once per event.
    pub(crate) fn fetch(&mut self, local: u32) -> usize {
        self.fetch_slot(self.variant[local as usize])
    }

    /// The position in `vals` of a slot's value, read once per event.
    pub(crate) fn fetch_slot(&mut self, slot: u32) -> usize {
        let slot = slot as usize;
        if self.s.slot_epoch[slot] == self.s.epoch {
            return self.s.slot_pos[slot] as usize;
        }
        let v = self.engine.slots[slot]
            .iter()
            .find_map(|p| p.read(self.event));
        self.vals.push(v);
        let pos = self.vals.len() - 1;
        self.s.slot_epoch[slot] = self.s.epoch;
        self.s.slot_pos[slot] = pos as u32;
        pos
    }

    pub(crate) fn hit(&self, pat: u32) -> bool {
        self.s.hits[(pat / 64) as usize] & (1u64 << (pat % 64)) != 0
    }

    #[inline(always)]
    fn run_bucket(&mut self, route: Route, out: &mut Vec<Finding<'r>>) {
        let engine = self.engine;
        let b = &engine.buckets[route.bucket as usize];
        self.variant = &b.variants[route.variant as usize].slots;
        // Clear the hits of the previous bucket.
        for pat in self.s.hit_list.drain(..) {
            self.s.hits[(pat / 64) as usize] = 0;
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
                        if let Some(pats) = s.memo.get(m, h, text) {
                            s.memo_hits += 1;
                            // The group's own pats, none of them set yet (a group is
                            // scanned once per bucket): set without testing.
                            for p in pats {
                                s.hits[(p / 64) as usize] |= 1u64 << (p % 64);
                            }
                            s.hit_list.extend_from_slice(pats);
                            continue;
                        }
                        // A group's pats are its own: what this scan adds to the hit
                        // list is what the text hits.
                        let before = s.hit_list.len();
                        scan::scan_scalar(
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
                        scan::scan_scalar(g, sv, hits, list, lower, num);
                        false
                    });
                }
                None if g.memo.is_some()
                    && g.keywords_by_string()
                    && !(g.substrings_only() && self.event.joined_strs().is_some()) =>
                {
                    // Each of the event's strings on its own, its hits from the memo
                    // when it came before (most do: host, user, program, parent).
                    let m = g.memo.unwrap_or_default();
                    let s = &mut *self.s;
                    let (hits, list, memo, lower, piece) = (
                        &mut s.hits,
                        &mut s.hit_list,
                        &mut s.kw_memo,
                        &mut s.lower,
                        &mut s.kw_piece,
                    );
                    self.event.for_each_str(&mut |h| {
                        let hash = memo::hash(h);
                        let pats = match memo.get(m, hash, h) {
                            Some(pats) => pats,
                            None => {
                                piece.clear();
                                scan::scan_piece(g, h, lower, piece);
                                memo.put(m, hash, h, piece);
                                &piece[..]
                            }
                        };
                        for p in pats {
                            scan::set_hit(hits, list, *p);
                        }
                    });
                    // The empty string after the last NUL of the joined strings, which
                    // the joined scan also looks at (an empty keyword, an event without
                    // strings).
                    piece.clear();
                    scan::scan_piece(g, "", lower, piece);
                    for p in piece.iter() {
                        scan::set_hit(hits, list, *p);
                    }
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
                    scan::scan_joined(g, &s.kw, &s.kw_lower, &mut s.hits, &mut s.hit_list);
                }
            }
        }
        // 2. Candidate rules.
        let epoch = self.s.epoch;
        let mut cand = std::mem::take(&mut self.s.cand);
        cand.clear();
        for &pat in &self.s.hit_list {
            for &(r, det) in b.triggers.get(pat as usize) {
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
}
