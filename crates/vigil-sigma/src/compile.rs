//! Compiled rules: a bucket's rules as programs over its pattern ids (hit bits), the
//! pattern table that numbers their literals and builds each field's literal index
//! ([`Group`]: exact values in a hash table, prefixes and suffixes in tries, substrings in
//! a DFA or an anchor index, case-sensitive literals in an automaton, integers in a
//! table), and what each rule's condition lets matching skip: its trigger set and its
//! required literals.

use crate::anchor::Anchored;
use crate::cond::Cond;
use crate::fxhash::FxMap;
use crate::parse::{Atom, Cmp, Detection, FieldTest, IpNet, Search};
use crate::pattern::{Anchor, StrPat, Tok};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use std::collections::HashMap;
use std::sync::Arc;
use vigil_event::time::TimePart;

/// A literal's pattern id: its hit bit in a bucket (literals of a bucket are numbered
/// from 0, per field and anchor).
pub(crate) type PatternId = u32;

/// A compiled value test.
#[derive(Debug, Clone)]
pub(crate) enum CAtom {
    /// A literal answered by the automata: hit bit `pat` (its [`PatternId`]).
    Pat(PatternId),
    /// A glob; `hint` is the hit bit of its longest literal piece (a necessary condition).
    Glob {
        toks: Box<[Tok]>,
        cased: bool,
        hint: Option<PatternId>,
    },
    /// The empty string (or a present null).
    Empty,
    /// Any string value (`contains: ''`).
    AnyStr,
    /// A regular expression; `hint` are the hit bits of literals one of which every match
    /// contains.
    Re {
        re: crate::rx::SigmaRegex,
        hint: Option<Box<[PatternId]>>,
    },
    Num(Cmp, f64),
    Bool(bool),
    Null,
    Exists(bool),
    Cidr(IpNet),
    FieldRef {
        other: u32,
        anchor: Anchor,
        cased: bool,
    },
    Time(TimePart, Cmp, i64),
}

/// A compiled field test. `field` is the bucket-local field (None: keyword search).
#[derive(Debug, Clone)]
pub(crate) struct CTest {
    pub field: Option<u32>,
    /// The literal atoms first (`CAtom::Pat`, whose pattern ids `pats` lists), then the others.
    pub atoms: Box<[CAtom]>,
    pub pats: Box<[PatternId]>,
    pub all: bool,
    pub neq: bool,
}

/// A compiled search expression.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    And(Box<[Expr]>),
    Or(Box<[Expr]>),
    Test(CTest),
}

/// A compiled detection rule.
#[derive(Debug, Clone)]
pub(crate) struct RuleProg {
    /// Index into the engine's detection rules.
    pub det: u32,
    pub names: Box<[Arc<str>]>,
    pub searches: Box<[Expr]>,
    pub cond: Cond,
    /// Fields a correlation needs from the rule's events: (name, local field).
    pub corr_fields: Vec<(Arc<str>, u32)>,
    /// Whether correlations need the event time.
    pub wants_time: bool,
    /// Searches that appear un-negated in the condition (reported when they hold).
    pub positive: Box<[bool]>,
    /// Sets of pattern ids each of which must have a hit for the condition to hold
    /// (smallest first): a candidate missing one is rejected without evaluating it.
    pub required: Box<[Box<[PatternId]>]>,
}

/// Marks the searches that occur under an even number of `not`s.
fn positive(c: &Cond, negated: bool, out: &mut [bool]) {
    match c {
        Cond::Search(i) => {
            if !negated {
                if let Some(p) = out.get_mut(*i) {
                    *p = true;
                }
            }
        }
        Cond::And(parts) | Cond::Or(parts) => parts.iter().for_each(|p| positive(p, negated, out)),
        Cond::Not(inner) => positive(inner, !negated, out),
        Cond::AtLeast(_, idx) => {
            if !negated {
                for i in idx {
                    if let Some(p) = out.get_mut(*i) {
                        *p = true;
                    }
                }
            }
        }
        Cond::Const(_) => {}
    }
}

/// The (anchor, pat) pairs one automaton pattern answers.
pub(crate) type AnchorPats = Box<[(Anchor, PatternId)]>;

/// Key of a literal in a bucket: which field (None: keywords), case, text.
type LitKey = (Option<u32>, bool, String);

/// Builds the literal patterns of one bucket.
#[derive(Default)]
pub(crate) struct PatternTable {
    /// (literal, anchor) -> pat
    pats: HashMap<(LitKey, Anchor), PatternId>,
    /// (field, integer) -> pat, for numeric equality.
    nums: HashMap<(u32, i64), PatternId>,
    pub n_pats: u32,
    /// Per pat: (length of the literal, how many atoms use it).
    pub stats: Vec<(u32, u32)>,
}

impl PatternTable {
    fn pat(&mut self, field: Option<u32>, cased: bool, text: &str, anchor: Anchor) -> PatternId {
        let key: LitKey = (field, cased, text.to_string());
        if let Some(p) = self.pats.get(&(key.clone(), anchor)) {
            self.stats[*p as usize].1 += 1;
            return *p;
        }
        let pat = self.n_pats;
        self.n_pats += 1;
        self.pats.insert((key, anchor), pat);
        self.stats.push((text.len() as u32, 1));
        pat
    }

    /// Every string literal: its field (`None`: keywords) and text.
    #[cfg(test)]
    pub(crate) fn literals(&self) -> impl Iterator<Item = (Option<u32>, &str)> {
        self.pats
            .keys()
            .map(|((field, _, text), _)| (*field, text.as_str()))
    }

    fn num_pat(&mut self, field: u32, n: i64) -> PatternId {
        if let Some(p) = self.nums.get(&(field, n)) {
            self.stats[*p as usize].1 += 1;
            return *p;
        }
        let pat = self.n_pats;
        self.n_pats += 1;
        self.stats.push((n.to_string().len() as u32, 1));
        self.nums.insert((field, n), pat);
        pat
    }

    /// Builds one literal index per field (and one for keywords); substring sets of up to
    /// `dfa_max` literals become DFAs.
    pub(crate) fn build(self, dfa_max: usize) -> Result<Vec<Group>, GroupError> {
        let mut by_field: HashMap<Option<u32>, GroupBuilder> = HashMap::new();
        let mut entries: Vec<_> = self.pats.into_iter().collect();
        entries.sort_by_key(|(_, pat)| *pat);
        for (((field, cased, text), anchor), pat) in entries {
            let g = by_field.entry(field).or_default();
            if cased {
                let i = *g.cased_idx.entry(text.clone()).or_insert_with(|| {
                    g.cased.push((text.clone(), Vec::new()));
                    g.cased.len() - 1
                });
                g.cased[i].1.push((anchor, pat));
                continue;
            }
            match anchor {
                Anchor::Exact => g.exact.entry(text).or_default().push(pat),
                Anchor::Prefix => g.prefix.insert(text.bytes(), pat),
                Anchor::Suffix => g.suffix.insert(text.bytes().rev(), pat),
                Anchor::Contains => {
                    let i = *g.contains_idx.entry(text.clone()).or_insert_with(|| {
                        g.contains.push((text.clone(), Vec::new()));
                        g.contains.len() - 1
                    });
                    g.contains[i].1.push(pat);
                }
            }
        }
        for ((field, n), pat) in self.nums {
            by_field
                .entry(Some(field))
                .or_default()
                .nums
                .entry(n)
                .or_default()
                .push(pat);
        }
        let mut keys: Vec<_> = by_field.into_iter().collect();
        keys.sort_by_key(|(k, _)| k.map_or(-1i64, i64::from));
        keys.into_iter()
            .map(|(field, g)| {
                g.finish(field, dfa_max)
                    .map_err(|reason| GroupError { field, reason })
            })
            .collect()
    }
}

/// Why the literal index of a field (`None`: the keywords) could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupError {
    pub field: Option<u32>,
    pub reason: String,
}

/// The largest transition table a literal DFA may be built with. A DFA takes a 4-byte
/// transition per state and byte class, its states up to its literals' bytes and its
/// classes up to 256: past this bound (about 64 KiB of literals), or if the DFA cannot
/// be built at all, the automaton is an NFA instead (slower to scan, linear in size).
const DFA_BYTES_MAX: usize = 64 << 20;

/// An Aho-Corasick automaton of `lits` (overlapping matches, no prefilter): a DFA when
/// `dfa` and small enough, else (or if that fails) the crate's choice, else an NFA.
fn automaton(lits: &[&String], dfa: bool) -> Result<AhoCorasick, String> {
    let build = |kind: Option<AhoCorasickKind>| {
        AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .prefilter(false)
            .kind(kind)
            .build(lits)
    };
    let bytes: usize = lits.iter().map(|p| p.len() + 1).sum();
    let small = bytes.saturating_mul(256 * 4) <= DFA_BYTES_MAX;
    let first = match (dfa, small) {
        (true, true) => build(Some(AhoCorasickKind::DFA)),
        (false, true) => build(None),
        (_, false) => build(Some(AhoCorasickKind::ContiguousNFA)),
    };
    first
        .or_else(|_| build(Some(AhoCorasickKind::ContiguousNFA)))
        .or_else(|_| build(Some(AhoCorasickKind::NoncontiguousNFA)))
        .map_err(|e| e.to_string())
}

/// A byte trie of literals (reversed for suffixes), built by inserting them, then frozen
/// into a [`FlatTrie`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Trie {
    /// Per node: sorted edges (byte, child).
    edges: Vec<Vec<(u8, u32)>>,
    /// Per node: pats of the literals ending there.
    pats: Vec<Vec<u32>>,
}

impl Trie {
    fn insert(&mut self, bytes: impl IntoIterator<Item = u8>, pat: u32) {
        if self.edges.is_empty() {
            self.edges.push(Vec::new());
            self.pats.push(Vec::new());
        }
        let mut node = 0usize;
        for b in bytes {
            node = match self.edges[node].binary_search_by_key(&b, |e| e.0) {
                Ok(i) => self.edges[node][i].1 as usize,
                Err(i) => {
                    let child = self.edges.len();
                    self.edges.push(Vec::new());
                    self.pats.push(Vec::new());
                    self.edges[node].insert(i, (b, child as u32));
                    child
                }
            };
        }
        self.pats[node].push(pat);
    }

    /// The trie in three flat arrays.
    fn freeze(self) -> FlatTrie {
        let mut t = FlatTrie::default();
        for (edges, pats) in self.edges.into_iter().zip(self.pats) {
            t.nodes.push([
                t.labels.len() as u32,
                edges.len() as u32,
                t.pats.len() as u32,
                pats.len() as u32,
            ]);
            for (b, child) in edges {
                t.labels.push(b);
                t.children.push(child);
            }
            t.pats.extend(pats);
        }
        t
    }
}

/// A frozen [`Trie`], answering "which literals are a prefix of this text" in one walk
/// that stops at the first missing edge.
#[derive(Debug, Clone, Default)]
pub(crate) struct FlatTrie {
    /// Per node: first edge, edge count, first pat, pat count.
    nodes: Vec<[u32; 4]>,
    /// Edge labels, sorted within each node, and the child each leads to.
    labels: Vec<u8>,
    children: Vec<u32>,
    pats: Vec<u32>,
}

impl FlatTrie {
    /// Calls `hit` with the pats of every literal the walk over `bytes` passes.
    pub(crate) fn walk(&self, bytes: impl Iterator<Item = u8>, hit: &mut impl FnMut(u32)) {
        let Some(mut node) = self.nodes.first() else {
            return;
        };
        for b in bytes {
            let [first, count, _, _] = *node;
            let (first, count) = (first as usize, count as usize);
            let Some(labels) = self.labels.get(first..first + count) else {
                return;
            };
            let Ok(i) = labels.binary_search(&b) else {
                return;
            };
            let Some(next) = self.nodes.get(self.children[first + i] as usize) else {
                return;
            };
            node = next;
            let (p, n) = (node[2] as usize, node[3] as usize);
            for pat in self.pats.get(p..p + n).unwrap_or_default() {
                hit(*pat);
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// Substring automata with up to this many literals are built as DFAs, by default
/// ([`crate::Config::dfa_literals_max`]).
pub(crate) const MAX_DFA_LITERALS: usize = 50;

/// Lists of items stored one after the other (a list is a range of one array): reading
/// a list costs one lookup in a small array of offsets and no pointer to follow, so the
/// lists that matching reads for each hit stay few cache lines.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lists<T> {
    /// List `i` is `items[starts[i]..starts[i + 1]]`.
    starts: Box<[u32]>,
    items: Box<[T]>,
}

impl<T> Lists<T> {
    pub(crate) fn new<L: IntoIterator<Item = T>>(lists: impl IntoIterator<Item = L>) -> Self {
        let mut starts = vec![0u32];
        let mut items = Vec::new();
        for l in lists {
            items.extend(l);
            starts.push(u32::try_from(items.len()).unwrap_or(u32::MAX));
        }
        Lists {
            starts: starts.into_boxed_slice(),
            items: items.into_boxed_slice(),
        }
    }

    /// List `i` (empty past the last).
    #[inline]
    pub(crate) fn get(&self, i: usize) -> &[T] {
        match (self.starts.get(i), self.starts.get(i + 1)) {
            (Some(&a), Some(&b)) => self.items.get(a as usize..b as usize).unwrap_or_default(),
            _ => &[],
        }
    }
}

/// The substring literals of a field, folded: an automaton (a DFA), or for more than
/// `dfa_max` literals an anchor-hash index (faster to scan than the automaton's NFA, much
/// smaller than a DFA).
#[derive(Debug, Clone)]
pub(crate) enum Substrings {
    Automaton(AhoCorasick),
    Anchored(Anchored),
}

#[derive(Default)]
struct GroupBuilder {
    exact: HashMap<String, Vec<u32>>,
    prefix: Trie,
    suffix: Trie,
    contains: Vec<(String, Vec<u32>)>,
    contains_idx: HashMap<String, usize>,
    cased: Vec<(String, Vec<(Anchor, u32)>)>,
    cased_idx: HashMap<String, usize>,
    nums: HashMap<i64, Vec<u32>>,
}

impl GroupBuilder {
    fn finish(self, field: Option<u32>, dfa_max: usize) -> Result<Group, String> {
        let nul_free = !self
            .contains
            .iter()
            .map(|c| &c.0)
            .chain(self.cased.iter().map(|c| &c.0))
            .any(|l| l.contains('\0'));
        // A DFA is fast to scan but grows with its literals. Up to MAX_DFA_LITERALS (the
        // default `dfa_max`, 50) sets are DFAs; larger ones scan as fast through the anchor
        // index at a fraction of the memory (DFAs up to 2,000 literals took 25 MiB more
        // over all SigmaHQ Windows rules, for the same speed). Overlapping
        // scans gain nothing from the crate's prefilter (it is restarted at each match).
        // Larger substring sets are indexed by anchor instead of by an NFA ([`Anchored`]:
        // faster to scan, smaller); case-sensitive literals keep the automaton.
        let contains = if self.contains.is_empty() {
            None
        } else if self.contains.len() > dfa_max {
            let lits: Vec<&[u8]> = self.contains.iter().map(|c| c.0.as_bytes()).collect();
            Some(Substrings::Anchored(Anchored::new(&lits)?))
        } else {
            // Text is folded before the scan, so the automaton is case-sensitive.
            let lits: Vec<&String> = self.contains.iter().map(|c| &c.0).collect();
            Some(Substrings::Automaton(automaton(&lits, true)?))
        };
        // Keyword literals (folded, case-sensitive) get a SIMD prefilter when few: most
        // events contain none of them, and it says so much faster than the automaton or
        // the anchor index. A searcher takes up to 64 literals; up to 4 of them are
        // still faster than one pass of the anchor index (75 literals: 2 searchers).
        let packed = if field.is_none() && !self.contains.is_empty() && self.contains.len() <= 256 {
            self.contains
                .chunks(
                    self.contains
                        .len()
                        .div_ceil(self.contains.len().div_ceil(64)),
                )
                .map(|chunk| {
                    let mut b = aho_corasick::packed::Config::new().builder();
                    for c in chunk {
                        b.add(&c.0);
                    }
                    b.build()
                })
                .collect::<Option<Box<[_]>>>()
                .unwrap_or_default()
        } else {
            Box::default()
        };
        let cased = if self.cased.is_empty() {
            None
        } else {
            let lits: Vec<&String> = self.cased.iter().map(|c| &c.0).collect();
            Some(automaton(&lits, lits.len() <= dfa_max)?)
        };
        Ok(Group {
            field,
            exact: self
                .exact
                .into_iter()
                .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_slice()))
                .collect(),
            prefix: self.prefix.freeze(),
            suffix: self.suffix.freeze(),
            contains,
            packed,
            contains_pats: Lists::new(self.contains.into_iter().map(|c| c.1)),
            cased,
            cased_pats: self
                .cased
                .into_iter()
                .map(|c| c.1.into_boxed_slice())
                .collect(),
            nums: self
                .nums
                .into_iter()
                .map(|(k, v)| (k, v.into_boxed_slice()))
                .collect(),
            memo: None,
            nul_free,
        })
    }
}

/// The literal index of one field (or of the keywords): exact values by hash, prefixes
/// and suffixes by trie walks, substrings by an Aho-Corasick DFA or, for more than
/// `dfa_max` of them, an anchor index, case-sensitive literals by another automaton,
/// integers by hash.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub field: Option<u32>,
    pub exact: FxMap<Box<str>, Box<[PatternId]>>,
    pub prefix: FlatTrie,
    pub suffix: FlatTrie,
    pub contains: Option<Substrings>,
    /// A prefilter for `contains` (keyword groups with few literals): SIMD searchers
    /// for up to 64 literals each (none: no prefilter).
    pub packed: Box<[aho_corasick::packed::Searcher]>,
    pub contains_pats: Lists<PatternId>,
    pub cased: Option<AhoCorasick>,
    pub cased_pats: Box<[AnchorPats]>,
    pub nums: FxMap<i64, Box<[PatternId]>>,
    /// This group's table in [`crate::memo::Memo`], for a field whose scan is worth
    /// keeping (an automaton or a trie walk, not only hash lookups); for the keywords
    /// ([`Group::keywords_by_string`]), its table in the keyword memo.
    pub memo: Option<u32>,
    /// Whether no substring or case-sensitive literal holds a NUL byte: none can then
    /// span two of an event's NUL-joined strings, and each string can be scanned alone.
    pub nul_free: bool,
}

impl Group {
    /// Whether any string literal is indexed (else only integers are).
    pub(crate) fn has_strings(&self) -> bool {
        self.cased.is_some()
            || self.contains.is_some()
            || !self.exact.is_empty()
            || !self.prefix.is_empty()
            || !self.suffix.is_empty()
    }

    /// Whether scanning a text costs more than looking it up in the memo: an automaton
    /// or a trie walk is involved.
    pub(crate) fn worth_memoizing(&self) -> bool {
        self.field.is_some()
            && (self.cased.is_some()
                || self.contains.is_some()
                || !self.prefix.is_empty()
                || !self.suffix.is_empty())
    }

    /// Whether the group's only string literals are case-insensitive substrings: a
    /// keyword group of these is scanned once over an event's joined strings lowercased
    /// when the event has them joined already ([`vigil_event::Event::joined_strs`]),
    /// which costs less than a memo lookup per string.
    pub(crate) fn substrings_only(&self) -> bool {
        self.cased.is_none()
            && self.exact.is_empty()
            && self.prefix.is_empty()
            && self.suffix.is_empty()
    }

    /// Whether this keyword group is scanned string by string with a memo of each
    /// string's hits (most of an event's strings come back event after event), not
    /// over all of the event's strings joined: what it finds is the same when no
    /// literal can span two strings.
    pub(crate) fn keywords_by_string(&self) -> bool {
        self.field.is_none() && self.has_strings() && self.nul_free
    }
}

/// Compiles detections of one bucket: assigns local fields and pattern ids.
pub(crate) struct BucketCompiler {
    pub fields: Vec<String>,
    field_idx: HashMap<String, u32>,
    pub patterns: PatternTable,
}

impl BucketCompiler {
    pub(crate) fn new() -> Self {
        BucketCompiler {
            fields: Vec::new(),
            field_idx: HashMap::new(),
            patterns: PatternTable::default(),
        }
    }

    /// The local index of a field, added if new.
    pub(crate) fn field(&mut self, name: &str) -> u32 {
        if let Some(i) = self.field_idx.get(name) {
            return *i;
        }
        let i = self.fields.len() as u32;
        self.fields.push(name.to_string());
        self.field_idx.insert(name.to_string(), i);
        i
    }

    fn atom(&mut self, field: Option<u32>, a: &Atom) -> CAtom {
        match a {
            Atom::Str(StrPat::Lit {
                text,
                anchor,
                cased,
            }) => {
                if text.is_empty() {
                    return match anchor {
                        Anchor::Exact => CAtom::Empty,
                        _ => CAtom::AnyStr,
                    };
                }
                CAtom::Pat(self.patterns.pat(field, *cased, text, *anchor))
            }
            Atom::Str(StrPat::Glob { toks, cased, hint }) => CAtom::Glob {
                toks: toks.clone().into_boxed_slice(),
                cased: *cased,
                hint: hint
                    .as_ref()
                    .filter(|h| !h.is_empty())
                    .map(|h| self.patterns.pat(field, *cased, h, Anchor::Contains)),
            },
            Atom::Re(r, hints) => CAtom::Re {
                re: r.clone(),
                hint: (!hints.is_empty()).then(|| {
                    hints
                        .iter()
                        .map(|h| self.patterns.pat(field, false, h, Anchor::Contains))
                        .collect()
                }),
            },
            Atom::Num(Cmp::Eq, n) if field.is_some() && n.fract() == 0.0 && n.abs() < 9.0e15 => {
                CAtom::Pat(self.patterns.num_pat(field.unwrap_or_default(), *n as i64))
            }
            Atom::Num(c, n) => CAtom::Num(*c, *n),
            Atom::Bool(b) => CAtom::Bool(*b),
            Atom::Null => CAtom::Null,
            Atom::Exists(b) => CAtom::Exists(*b),
            Atom::Cidr(n) => CAtom::Cidr(*n),
            Atom::FieldRef {
                field: other,
                anchor,
                cased,
            } => CAtom::FieldRef {
                other: self.field(other),
                anchor: *anchor,
                cased: *cased,
            },
            Atom::Time(p, c, n) => CAtom::Time(*p, *c, *n),
        }
    }

    fn test(&mut self, t: &FieldTest) -> CTest {
        let field = t.field.as_deref().map(|f| self.field(f));
        let mut atoms: Vec<CAtom> = t.atoms.iter().map(|a| self.atom(field, a)).collect();
        // Any and all do not depend on the order: literals, mere bit tests, go first.
        atoms.sort_by_key(|a| !matches!(a, CAtom::Pat(_)));
        let pats = atoms
            .iter()
            .map_while(|a| match a {
                CAtom::Pat(p) => Some(*p),
                _ => None,
            })
            .collect();
        CTest {
            field,
            atoms: atoms.into_boxed_slice(),
            pats,
            all: t.all,
            neq: t.neq,
        }
    }

    fn search(&mut self, s: &Search) -> Expr {
        match s {
            Search::And(tests) if tests.len() == 1 => Expr::Test(self.test(&tests[0])),
            Search::And(tests) => {
                Expr::And(tests.iter().map(|t| Expr::Test(self.test(t))).collect())
            }
            Search::Or(alts) if alts.len() == 1 => self.search(&alts[0]),
            Search::Or(alts) => Expr::Or(alts.iter().map(|a| self.search(a)).collect()),
        }
    }

    /// Compiles a detection (with any filters already merged in).
    pub(crate) fn rule(&mut self, det_index: u32, d: &Detection) -> RuleProg {
        let mut pos = vec![false; d.names.len()];
        positive(&d.cond, false, &mut pos);
        let searches: Box<[Expr]> = d.searches.iter().map(|s| self.search(s)).collect();
        let mut required = Required::cond(&d.cond, &searches);
        required.sort_by_key(Vec::len);
        required.dedup();
        RuleProg {
            positive: pos.into_boxed_slice(),
            det: det_index,
            names: d.names.iter().map(|n| Arc::from(n.as_str())).collect(),
            searches,
            cond: d.cond.clone(),
            corr_fields: Vec::new(),
            wants_time: false,
            required: required.into_iter().map(Vec::into_boxed_slice).collect(),
        }
    }
}

/// The pattern ids whose hit bits answer an atom by themselves (one of them must hit
/// for it to hold): a literal, a glob's or a regular expression's hint.
fn atom_pats(a: &CAtom) -> Option<Vec<PatternId>> {
    match a {
        CAtom::Pat(p) => Some(vec![*p]),
        CAtom::Glob { hint: Some(h), .. } => Some(vec![*h]),
        CAtom::Re { hint: Some(h), .. } => Some(h.to_vec()),
        _ => None,
    }
}

/// Necessary conditions of a rule: sets of pattern ids, each of which must have a hit
/// for the condition to hold (a conjunction of disjunctions). Only what the evaluation
/// itself answers by hit bits counts: a literal, a glob's or a regular expression's hint.
struct Required;

impl Required {
    /// One set that one of `alts` (each a conjunction of sets) needs: the union of each
    /// alternative's smallest set; none if an alternative needs nothing.
    fn any(alts: impl Iterator<Item = Vec<Vec<u32>>>) -> Vec<Vec<u32>> {
        let mut set = Vec::new();
        for mut a in alts {
            a.sort_by_key(Vec::len);
            let Some(first) = a.into_iter().next() else {
                return Vec::new();
            };
            set.extend(first);
        }
        set.sort_unstable();
        set.dedup();
        vec![set]
    }

    fn expr(e: &Expr) -> Vec<Vec<u32>> {
        match e {
            Expr::And(parts) => parts.iter().flat_map(Self::expr).collect(),
            Expr::Or(parts) => Self::any(parts.iter().map(Self::expr)),
            Expr::Test(t) if t.neq => Vec::new(),
            Expr::Test(t) if t.all => t.atoms.iter().filter_map(atom_pats).collect(),
            Expr::Test(t) => match t.atoms.iter().map(atom_pats).collect::<Option<Vec<_>>>() {
                Some(sets) if !sets.is_empty() => Self::any(sets.into_iter().map(|s| vec![s])),
                _ => Vec::new(),
            },
        }
    }

    fn cond(c: &Cond, s: &[Expr]) -> Vec<Vec<u32>> {
        match c {
            Cond::Search(i) => s.get(*i).map(Self::expr).unwrap_or_default(),
            Cond::And(parts) => parts.iter().flat_map(|p| Self::cond(p, s)).collect(),
            Cond::Or(parts) if !parts.is_empty() => {
                Self::any(parts.iter().map(|p| Self::cond(p, s)))
            }
            Cond::AtLeast(n, idx) if *n >= 1 && !idx.is_empty() => Self::any(
                idx.iter()
                    .map(|i| s.get(*i).map(Self::expr).unwrap_or_default()),
            ),
            _ => Vec::new(),
        }
    }
}

/// A set of pattern ids at least one of which must hit for the rule to match; `None` when
/// no such set exists (the rule is then evaluated for every routed event).
pub(crate) fn trigger(prog: &RuleProg, stats: &[(u32, u32)]) -> Option<Vec<PatternId>> {
    Trigger { stats }.cond(&prog.cond, &prog.searches)
}

/// Chooses trigger sets: of the sets one of which a conjunction needs, the one most likely
/// to be absent from an event. A literal many rules use is likely common in events too,
/// and a short one more so: a set costs the sum of its literals' uses / length².
struct Trigger<'a> {
    /// Per pat: (literal length, uses).
    stats: &'a [(u32, u32)],
}

impl Trigger<'_> {
    fn cost(&self, set: &[u32]) -> f64 {
        set.iter()
            .map(|p| {
                let (len, uses) = self.stats.get(*p as usize).copied().unwrap_or((1, 1));
                f64::from(uses) / f64::from(len.max(1)).powi(2)
            })
            .sum()
    }
    fn cheapest(&self, sets: impl Iterator<Item = Option<Vec<u32>>>) -> Option<Vec<u32>> {
        sets.flatten()
            .min_by(|a, b| self.cost(a).total_cmp(&self.cost(b)))
    }
    fn union(sets: impl Iterator<Item = Option<Vec<u32>>>) -> Option<Vec<u32>> {
        let mut out = Vec::new();
        for s in sets {
            out.extend(s?);
        }
        out.sort_unstable();
        out.dedup();
        Some(out)
    }
    fn expr(&self, e: &Expr) -> Option<Vec<u32>> {
        match e {
            Expr::And(parts) => self.cheapest(parts.iter().map(|p| self.expr(p))),
            Expr::Or(parts) => Self::union(parts.iter().map(|p| self.expr(p))),
            Expr::Test(t) if t.neq => None,
            Expr::Test(t) if t.all => self.cheapest(t.atoms.iter().map(atom_pats)),
            Expr::Test(t) => Self::union(t.atoms.iter().map(atom_pats)),
        }
    }
    fn cond(&self, c: &Cond, s: &[Expr]) -> Option<Vec<u32>> {
        match c {
            Cond::Search(i) => s.get(*i).and_then(|e| self.expr(e)),
            Cond::And(parts) => self.cheapest(parts.iter().map(|p| self.cond(p, s))),
            Cond::Or(parts) => Self::union(parts.iter().map(|p| self.cond(p, s))),
            Cond::Not(_) => None,
            Cond::AtLeast(_, idx) => {
                Self::union(idx.iter().map(|i| s.get(*i).and_then(|e| self.expr(e))))
            }
            Cond::Const(false) => Some(Vec::new()),
            Cond::Const(true) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{EventKind, Loader, LogSource};

    /// Three rules need `Image|endswith: '\cmd.exe'` (a literal many rules share) and each a
    /// long command-line literal of its own: their trigger sets are the command-line
    /// literals, so a cmd.exe event without them evaluates no rule.
    #[test]
    fn triggers_prefer_rare_literals() {
        let mut loader = Loader::new();
        for i in 0..3 {
            loader.add(
                &format!("r{i}.yml"),
                &format!(
                    "title: R{i}\nlogsource: {{product: test}}\ndetection:\n  s:\n    Image|endswith: '\\cmd.exe'\n    CommandLine|contains: 'some long argument {i}'\n  condition: s\n"
                ),
            );
        }
        let built = loader.build();
        assert!(built.errors.is_empty(), "{:?}", built.errors);
        let engine = built.engine;
        let declared = engine.declare(&LogSource::new(Some("test"), None, None));
        let mut scratch = engine.scratch();
        let mut out = Vec::new();
        let ev = serde_json::json!({"Image": "C:\\Windows\\cmd.exe", "CommandLine": "cmd /c dir"});
        engine.match_event(&mut scratch, &ev, EventKind::Declared(&declared), &mut out);
        assert!(out.is_empty());
        assert_eq!(scratch.rules_evaluated(), 0);
        let ev = serde_json::json!({"Image": "C:\\Windows\\cmd.exe",
            "CommandLine": "cmd /c x some long argument 1"});
        engine.match_event(&mut scratch, &ev, EventKind::Declared(&declared), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(scratch.rules_evaluated(), 1);
    }

    /// A candidate whose hits lack a literal every match needs is rejected before its
    /// condition is evaluated; negated searches and alternatives are required only as
    /// far as the condition needs them.
    #[test]
    fn required_literals_reject_candidates() {
        let mut loader = Loader::new();
        let rules = [
            // Triggered by the command line; the image is required too.
            "s1:\n    Image|endswith: '\\a.exe'\n  s2:\n    CommandLine|contains: 'rare argument one'\n  condition: s1 and s2",
            // One of the images (or the glob's hint) is required.
            "s1:\n    Image|endswith: '\\a.exe'\n  s3:\n    Image|contains: 'dir*b.exe'\n  s2:\n    CommandLine|contains: 'rare argument two'\n  condition: (s1 or s3) and s2",
            // A negated search requires nothing.
            "s1:\n    Image|endswith: '\\a.exe'\n  s2:\n    CommandLine|contains: 'rare argument three'\n  condition: s2 and not s1",
        ];
        for (i, r) in rules.iter().enumerate() {
            loader.add(
                &format!("r{i}.yml"),
                &format!("title: R{i}\nlogsource: {{product: test}}\ndetection:\n  {r}\n"),
            );
        }
        let built = loader.build();
        assert!(built.errors.is_empty(), "{:?}", built.errors);
        let engine = built.engine;
        let declared = engine.declare(&LogSource::new(Some("test"), None, None));
        let mut scratch = engine.scratch();
        let mut run = |image: &str, cl: &str| {
            let mut out = Vec::new();
            let before = scratch.rules_evaluated();
            let ev = serde_json::json!({"Image": image, "CommandLine": cl});
            engine.match_event(&mut scratch, &ev, EventKind::Declared(&declared), &mut out);
            let titles: Vec<String> = out.iter().map(|f| f.rule.title.clone()).collect();
            (titles, scratch.rules_evaluated() - before)
        };
        // The command line of R0 without its image: not evaluated.
        assert_eq!(run("c:\\x.exe", "rare argument one"), (vec![], 0));
        assert_eq!(
            run("c:\\a.exe", "rare argument one"),
            (vec!["R0".into()], 1)
        );
        // R1 with neither image, then with the glob's hint but not the glob, then a match.
        assert_eq!(run("c:\\x.exe", "rare argument two"), (vec![], 0));
        assert_eq!(run("c:\\b.exe dir", "rare argument two"), (vec![], 1));
        assert_eq!(
            run("c:\\dir\\b.exe", "rare argument two"),
            (vec!["R1".into()], 1)
        );
        assert_eq!(
            run("c:\\a.exe", "rare argument two"),
            (vec!["R1".into()], 1)
        );
        // R2 matches without the image, and is evaluated (and fails) with it.
        assert_eq!(
            run("c:\\x.exe", "rare argument three"),
            (vec!["R2".into()], 1)
        );
        assert_eq!(run("c:\\a.exe", "rare argument three"), (vec![], 1));
    }

    /// A finding reports every un-negated search that holds, whether the condition
    /// evaluated it (and kept its result) or short-circuited past it.
    #[test]
    fn findings_report_searches_the_condition_skipped() {
        let mut loader = Loader::new();
        loader.add(
            "r.yml",
            "title: R\nlogsource: {product: test}\ndetection:\n  a:\n    Image|endswith: '\\a.exe'\n  b:\n    CommandLine|re: 'x+y'\n  c:\n    CommandLine|contains: 'zzz'\n  f:\n    User: 'sys'\n  condition: (a or b or c) and not f\n",
        );
        let built = loader.build();
        assert!(built.errors.is_empty(), "{:?}", built.errors);
        let engine = built.engine;
        let declared = engine.declare(&LogSource::new(Some("test"), None, None));
        let mut scratch = engine.scratch();
        let mut run = |image: &str, cl: &str, user: &str| {
            let mut out = Vec::new();
            let ev = serde_json::json!({"Image": image, "CommandLine": cl, "User": user});
            engine.match_event(&mut scratch, &ev, EventKind::Declared(&declared), &mut out);
            out.iter()
                .map(|f| f.selections.join(","))
                .collect::<Vec<_>>()
        };
        assert_eq!(run("c:\\a.exe", "xxy zzz", "u"), ["a,b,c"]);
        assert_eq!(run("c:\\a.exe", "xy", "u"), ["a,b"]);
        assert_eq!(run("c:\\b.exe", "xy zzz", "u"), ["b,c"]);
        assert_eq!(run("c:\\b.exe", "zzz", "u"), ["c"]);
        assert_eq!(run("c:\\a.exe", "zzz", "sys"), Vec::<String>::new());
        // The same event twice: the kept results are the rule's, event by event.
        assert_eq!(run("c:\\a.exe", "zzz", "u"), ["a,c"]);
        assert_eq!(run("c:\\a.exe", "zzz", "u"), ["a,c"]);
    }
}
