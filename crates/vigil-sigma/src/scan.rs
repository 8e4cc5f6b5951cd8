//! Literal scans: one pass over a field's value (or over the event's joined strings, for
//! keywords) sets the hit bits of every literal of a field group it holds, through the
//! group's exact-value table, prefix and suffix tries, substring automaton or anchor
//! index, case-sensitive automaton and integer table. Also the text forms of values the
//! scans and tests share.

use crate::compile::{Group, Lists, PatternId, Substrings};
use crate::pattern::{self, Anchor};
use std::fmt::Write as _;
use vigil_event::Value;

/// Sets hit bit `pat`, listing it the first time.
#[inline(always)]
pub(crate) fn set_hit(hits: &mut [u64], list: &mut Vec<PatternId>, pat: u32) {
    let w = &mut hits[(pat / 64) as usize];
    let bit = 1u64 << (pat % 64);
    if *w & bit == 0 {
        *w |= bit;
        list.push(pat);
    }
}

/// Sets the hit bits of every literal of `g` that `hay` satisfies.
pub(crate) fn scan(
    g: &Group,
    hay: &str,
    hits: &mut [u64],
    list: &mut Vec<PatternId>,
    lower: &mut String,
) {
    if let Some(ac) = &g.cased {
        let len = hay.len();
        for m in ac.find_overlapping_iter(hay) {
            for (anchor, pat) in g.cased_pats[m.pattern().as_usize()].iter() {
                let ok = match anchor {
                    Anchor::Contains => true,
                    Anchor::Prefix => m.start() == 0,
                    Anchor::Suffix => m.end() == len,
                    Anchor::Exact => m.start() == 0 && m.end() == len,
                };
                if ok {
                    set_hit(hits, list, *pat);
                }
            }
        }
    }
    let folded = folded(hay, false, lower);
    if !g.exact.is_empty() {
        if let Some(pats) = g.exact.get(folded) {
            for p in pats.iter() {
                set_hit(hits, list, *p);
            }
        }
    }
    let mut hit = |p: u32| set_hit(hits, list, p);
    if !g.prefix.is_empty() {
        g.prefix.walk(folded.bytes(), &mut hit);
    }
    if !g.suffix.is_empty() {
        g.suffix.walk(folded.bytes().rev(), &mut hit);
    }
    if let Some(ac) = &g.contains {
        contains_scan(ac, &g.packed, &g.contains_pats, folded.as_bytes(), &mut hit);
    }
}

/// Scans the NUL-joined strings of an event once (keyword literals): `joined` as they
/// are (for anchored and case-sensitive literals), `lower` lowercased (substrings).
pub(crate) fn scan_joined(
    g: &Group,
    joined: &str,
    lower: &[u8],
    hits: &mut [u64],
    list: &mut Vec<PatternId>,
) {
    if !g.exact.is_empty() || !g.prefix.is_empty() || !g.suffix.is_empty() {
        let mut buf = String::new();
        let mut hit = |p: u32| set_hit(hits, list, p);
        whole_pieces(g, joined, &mut buf, &mut hit);
    }
    cased_scan(g, joined, &mut |p| set_hit(hits, list, p));
    if let Some(ac) = &g.contains {
        // The keyword automaton is case-sensitive over folded text.
        contains_scan(ac, &g.packed, &g.contains_pats, lower, &mut |p| {
            set_hit(hits, list, p)
        });
    }
}

/// Pushes to `out` the pats of keyword group `g` found in `piece`, one of an event's
/// strings: what [`scan_joined`] finds in that string of the joined text (anchored
/// literals at its ends, substrings within it), some pats maybe more than once.
pub(crate) fn scan_piece(g: &Group, piece: &str, buf: &mut String, out: &mut Vec<PatternId>) {
    let mut push = |p: u32| out.push(p);
    whole_pieces(g, piece, buf, &mut push);
    if let Some(ac) = &g.contains {
        let f = folded(piece, false, buf);
        contains_scan(ac, &g.packed, &g.contains_pats, f.as_bytes(), &mut push);
    }
    cased_scan(g, piece, &mut push);
}

/// The exact, prefix and suffix keyword literals of `g` that a NUL-separated piece of
/// `text` (folded) is, starts or ends with.
fn whole_pieces(g: &Group, text: &str, buf: &mut String, hit: &mut impl FnMut(u32)) {
    for piece in text.split('\0') {
        let f = folded(piece, false, buf);
        if let Some(pats) = g.exact.get(f) {
            pats.iter().for_each(|p| hit(*p));
        }
        g.prefix.walk(f.bytes(), hit);
        g.suffix.walk(f.bytes().rev(), hit);
    }
}

/// The case-sensitive keyword literals of `g` found in `text`, those anchored to a
/// string's start or end where a NUL (or the text's end) is.
fn cased_scan(g: &Group, text: &str, hit: &mut impl FnMut(u32)) {
    let Some(ac) = &g.cased else { return };
    let bytes = text.as_bytes();
    for m in ac.find_overlapping_iter(text) {
        let starts = m.start() == 0 || bytes[m.start() - 1] == 0;
        let ends = m.end() == bytes.len() || bytes[m.end()] == 0;
        for (anchor, pat) in g.cased_pats[m.pattern().as_usize()].iter() {
            let ok = match anchor {
                Anchor::Contains => true,
                Anchor::Prefix => starts,
                Anchor::Suffix => ends,
                Anchor::Exact => starts && ends,
            };
            if ok {
                hit(*pat);
            }
        }
    }
}

/// Scans one scalar: numbers against the integer index, everything as text.
pub(crate) fn scan_scalar(
    g: &Group,
    v: &Value<'_>,
    hits: &mut [u64],
    list: &mut Vec<PatternId>,
    lower: &mut String,
    num: &mut String,
) {
    if !g.nums.is_empty() {
        if let Some(f) = v.as_f64() {
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                if let Some(pats) = g.nums.get(&(f as i64)) {
                    for p in pats.iter() {
                        set_hit(hits, list, *p);
                    }
                }
            }
        }
    }
    if !g.has_strings() {
        return;
    }
    if let Some(hay) = scalar_str(v, num) {
        scan(g, hay, hits, list, lower);
    }
}

/// Calls `hit` with the pats of every substring literal found in `hay` (folded text).
/// With a SIMD prefilter, the scan starts at the leftmost match it finds (every match
/// starts there or later) and is skipped when it finds none.
pub(crate) fn contains_scan(
    subs: &Substrings,
    packed: &[aho_corasick::packed::Searcher],
    pats: &Lists<u32>,
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
                for p in pats.get(i as usize) {
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
        for p in pats.get(m.pattern().as_usize()) {
            hit(*p);
        }
    }
}

/// A scalar as the text a string test sees (numbers in decimal, booleans as words);
/// `buf` holds a rendered one.
pub(crate) fn scalar_str<'v>(v: &'v Value<'_>, buf: &'v mut String) -> Option<&'v str> {
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

/// Calls `f` on each scalar of `v` (the value, or the elements of a list, recursively)
/// until it returns true; whether it did.
pub(crate) fn for_each_scalar<'v, 'a>(
    v: &'v Value<'a>,
    f: &mut dyn FnMut(&'v Value<'a>) -> bool,
) -> bool {
    match v {
        Value::List(items) => items.iter().any(|i| for_each_scalar(i, f)),
        other => f(other),
    }
}

/// `s` lowercased unless `cased` (in `buf` when that changes it).
pub(crate) fn folded<'h>(s: &'h str, cased: bool, buf: &'h mut String) -> &'h str {
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
