//! Compiled rules: expressions over field tests whose literal strings are answered by one
//! multi-pattern automaton per field and bucket, and the pattern table that builds them.

use crate::cond::Cond;
use crate::parse::{Atom, Cmp, Detection, FieldTest, IpNet, Search};
use crate::pattern::{Anchor, StrPat, Tok};
use crate::time::TimePart;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use std::collections::HashMap;
use std::sync::Arc;

/// A compiled value test.
#[derive(Debug, Clone)]
pub(crate) enum CAtom {
    /// A literal answered by the automata: hit bit `pid`.
    Pat(u32),
    /// A glob; `hint` is the hit bit of its longest literal piece (a necessary condition).
    Glob {
        toks: Box<[Tok]>,
        cased: bool,
        hint: Option<u32>,
    },
    /// The empty string (or a present null).
    Empty,
    /// Any string value (`contains: ''`).
    AnyStr,
    Re(regex::Regex),
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
    pub atoms: Box<[CAtom]>,
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

/// The (anchor, pid) pairs one automaton pattern answers.
pub(crate) type AnchorPids = Box<[(Anchor, u32)]>;

/// An automaton: which field (None: keywords), and whether case matters.
type GroupKey = (Option<u32>, bool);
/// An automaton's literals and what each answers.
type GroupPatterns = (Vec<String>, Vec<AnchorPids>);

/// Key of a literal in a bucket: which field (None: keywords), case, text.
type LitKey = (Option<u32>, bool, String);

/// Builds the literal patterns of one bucket.
#[derive(Default)]
pub(crate) struct PatternTable {
    /// (literal, anchor) -> pid
    pids: HashMap<(LitKey, Anchor), u32>,
    /// literal -> (group key, index of the literal in its group)
    lits: HashMap<LitKey, usize>,
    /// Per literal: its anchors and pids.
    lit_pids: Vec<Vec<(Anchor, u32)>>,
    lit_keys: Vec<LitKey>,
    pub n_pids: u32,
}

impl PatternTable {
    fn pid(&mut self, field: Option<u32>, cased: bool, text: &str, anchor: Anchor) -> u32 {
        let key: LitKey = (field, cased, text.to_string());
        if let Some(p) = self.pids.get(&(key.clone(), anchor)) {
            return *p;
        }
        let pid = self.n_pids;
        self.n_pids += 1;
        let li = match self.lits.get(&key) {
            Some(i) => *i,
            None => {
                self.lit_pids.push(Vec::new());
                self.lit_keys.push(key.clone());
                self.lits.insert(key.clone(), self.lit_keys.len() - 1);
                self.lit_keys.len() - 1
            }
        };
        self.lit_pids[li].push((anchor, pid));
        self.pids.insert((key, anchor), pid);
        pid
    }

    /// Builds one automaton group per (field, case).
    pub(crate) fn build(self) -> Result<Vec<Group>, String> {
        let mut by_group: HashMap<GroupKey, GroupPatterns> = HashMap::new();
        for (key, pids) in self.lit_keys.into_iter().zip(self.lit_pids) {
            let e = by_group.entry((key.0, key.1)).or_default();
            e.0.push(key.2);
            e.1.push(pids.into_boxed_slice());
        }
        let mut groups: Vec<Group> = Vec::new();
        let mut keys: Vec<_> = by_group.into_iter().collect();
        keys.sort_by_key(|(k, _)| (k.0.map_or(-1i64, i64::from), k.1));
        for ((field, cased), (pats, map)) in keys {
            let ac = AhoCorasickBuilder::new()
                .match_kind(MatchKind::Standard)
                .ascii_case_insensitive(!cased)
                .build(&pats)
                .map_err(|e| e.to_string())?;
            groups.push(Group {
                field,
                cased,
                ac,
                map: map.into_boxed_slice(),
                lens: pats.iter().map(|p| p.len() as u32).collect(),
            });
        }
        Ok(groups)
    }
}

/// One automaton: all literals of one field (or of the keywords) in one case mode.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub field: Option<u32>,
    pub cased: bool,
    pub ac: AhoCorasick,
    /// Per automaton pattern: the (anchor, pid) pairs it answers.
    pub map: Box<[AnchorPids]>,
    #[allow(dead_code)]
    pub lens: Box<[u32]>,
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
                CAtom::Pat(self.patterns.pid(field, *cased, text, *anchor))
            }
            Atom::Str(StrPat::Glob { toks, cased, hint }) => CAtom::Glob {
                toks: toks.clone().into_boxed_slice(),
                cased: *cased,
                hint: hint
                    .as_ref()
                    .filter(|h| !h.is_empty())
                    .map(|h| self.patterns.pid(field, *cased, h, Anchor::Contains)),
            },
            Atom::Re(r) => CAtom::Re(r.clone()),
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
        let atoms = t.atoms.iter().map(|a| self.atom(field, a)).collect();
        CTest {
            field,
            atoms,
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
        RuleProg {
            positive: pos.into_boxed_slice(),
            det: det_index,
            names: d.names.iter().map(|n| Arc::from(n.as_str())).collect(),
            searches: d.searches.iter().map(|s| self.search(s)).collect(),
            cond: d.cond.clone(),
            corr_fields: Vec::new(),
            wants_time: false,
        }
    }
}

/// A set of pattern ids at least one of which must hit for the rule to match; `None` when
/// no such set exists (the rule is then evaluated for every routed event).
pub(crate) fn trigger(prog: &RuleProg) -> Option<Vec<u32>> {
    fn smallest(sets: impl Iterator<Item = Option<Vec<u32>>>) -> Option<Vec<u32>> {
        sets.flatten().min_by_key(Vec::len)
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
    fn atom(a: &CAtom) -> Option<Vec<u32>> {
        match a {
            CAtom::Pat(p) => Some(vec![*p]),
            CAtom::Glob { hint: Some(h), .. } => Some(vec![*h]),
            _ => None,
        }
    }
    fn expr(e: &Expr) -> Option<Vec<u32>> {
        match e {
            Expr::And(parts) => smallest(parts.iter().map(expr)),
            Expr::Or(parts) => union(parts.iter().map(expr)),
            Expr::Test(t) if t.neq => None,
            Expr::Test(t) if t.all => smallest(t.atoms.iter().map(atom)),
            Expr::Test(t) => union(t.atoms.iter().map(atom)),
        }
    }
    fn cond(c: &Cond, s: &[Expr]) -> Option<Vec<u32>> {
        match c {
            Cond::Search(i) => s.get(*i).and_then(expr),
            Cond::And(parts) => smallest(parts.iter().map(|p| cond(p, s))),
            Cond::Or(parts) => union(parts.iter().map(|p| cond(p, s))),
            Cond::Not(_) => None,
            Cond::AtLeast(_, idx) => union(idx.iter().map(|i| s.get(*i).and_then(expr))),
            Cond::Const(false) => Some(Vec::new()),
            Cond::Const(true) => None,
        }
    }
    cond(&prog.cond, &prog.searches)
}
