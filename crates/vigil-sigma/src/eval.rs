//! Evaluating a candidate rule for the event being matched: its condition over its
//! searches, a search's field tests, and each value test (literals by their hit bits,
//! the others against the field's value).

use crate::compile::{CAtom, CTest, Expr, RuleProg};
use crate::cond::Cond;
use crate::matcher::Matcher;
use crate::pattern;
use crate::scan::{folded, for_each_scalar, scalar_str};
use std::borrow::Cow;
use std::net::IpAddr;
use vigil_event::time::{part_of, value_time};
use vigil_event::Value;

impl Matcher<'_, '_, '_> {
    /// Search `i` of `prog`, evaluated once per rule evaluation (a finding reads what its
    /// condition found, and evaluates only the searches the condition skipped).
    pub(crate) fn search(&mut self, i: usize, prog: &RuleProg) -> bool {
        if let Some(&r) = self.s.searched.get(i) {
            if r != 0 {
                return r == 2;
            }
        }
        let held = self.expr(&prog.searches[i]);
        if let Some(r) = self.s.searched.get_mut(i) {
            *r = 1 + u8::from(held);
        }
        held
    }

    pub(crate) fn cond(&mut self, c: &Cond, prog: &RuleProg) -> bool {
        match c {
            Cond::Search(i) => self.search(*i, prog),
            Cond::And(parts) => parts.iter().all(|p| self.cond_part(p, prog)),
            Cond::Or(parts) => parts.iter().any(|p| self.cond_part(p, prog)),
            Cond::Not(inner) => !self.cond_part(inner, prog),
            Cond::AtLeast(n, idx) => {
                let mut count = 0;
                for i in idx {
                    if self.search(*i, prog) {
                        count += 1;
                        if count >= *n {
                            return true;
                        }
                    }
                }
                false
            }
            Cond::Const(b) => *b,
        }
    }

    /// A part of a condition: a search, or a negated one, answered here (the common
    /// leaves, without a call per level), anything else by [`Matcher::cond`].
    #[inline(always)]
    fn cond_part(&mut self, c: &Cond, prog: &RuleProg) -> bool {
        match c {
            Cond::Search(i) => self.search(*i, prog),
            Cond::Not(inner) => match &**inner {
                Cond::Search(i) => !self.search(*i, prog),
                other => !self.cond(other, prog),
            },
            other => self.cond(other, prog),
        }
    }

    fn expr(&mut self, e: &Expr) -> bool {
        match e {
            Expr::And(parts) => parts.iter().all(|p| self.expr_part(p)),
            Expr::Or(parts) => parts.iter().any(|p| self.expr_part(p)),
            Expr::Test(t) => self.test(t),
        }
    }

    /// A part of a search: a test answered here, anything else by [`Matcher::expr`].
    #[inline(always)]
    fn expr_part(&mut self, e: &Expr) -> bool {
        match e {
            Expr::Test(t) => self.test(t),
            other => self.expr(other),
        }
    }

    #[inline(always)]
    fn test(&mut self, t: &CTest) -> bool {
        let rest = &t.atoms[t.pats.len()..];
        if !t.neq && rest.is_empty() {
            // Literals only: their hit bits answer, the value itself is not needed.
            return if t.all {
                t.pats.iter().all(|p| self.hit(*p))
            } else {
                t.pats.iter().any(|p| self.hit(*p))
            };
        }
        let pos = t.field.map(|f| self.fetch(f));
        if t.neq {
            let present = pos.is_some_and(|p| self.vals[p].as_ref().is_some_and(|v| !v.is_null()));
            if !present {
                return false;
            }
        }
        let res = if t.all {
            t.pats.iter().all(|p| self.hit(*p)) && rest.iter().all(|a| self.atom(a, pos))
        } else {
            t.pats.iter().any(|p| self.hit(*p)) || rest.iter().any(|a| self.atom(a, pos))
        };
        res != t.neq
    }

    fn atom(&mut self, a: &CAtom, pos: Option<usize>) -> bool {
        if let CAtom::Pat(pat) = a {
            return self.hit(*pat);
        }
        if let CAtom::Glob { hint: Some(h), .. } = a {
            if !self.hit(*h) {
                return false;
            }
        }
        if let CAtom::Re { hint: Some(h), .. } = a {
            if !h.iter().any(|p| self.hit(*p)) {
                return false;
            }
        }
        let Some(pos) = pos else {
            return self.keyword_atom(a);
        };
        if let CAtom::FieldRef {
            other,
            anchor,
            cased,
        } = a
        {
            let opos = self.fetch(*other);
            let (Some(v), Some(o)) = (&self.vals[pos], &self.vals[opos]) else {
                return false;
            };
            let [b1, b2, f1, f2] = &mut self.s.fieldref;
            return for_each_scalar(o, &mut |os| {
                let Some(os) = scalar_str(os, b2) else {
                    return false;
                };
                let needle = folded(os, *cased, f2);
                for_each_scalar(v, &mut |vs| {
                    let Some(vs) = scalar_str(vs, b1) else {
                        return false;
                    };
                    anchor.matches(folded(vs, *cased, f1), needle)
                })
            });
        }
        if let (CAtom::Cidr(net), Some(Value::Str(s))) = (a, &self.vals[pos]) {
            let ip = match self.ip {
                Some((p, ip)) if p == pos => ip,
                _ => {
                    let ip = parse_ip(s);
                    self.ip = Some((pos, ip));
                    ip
                }
            };
            return ip.is_some_and(|ip| net.contains(ip));
        }
        let v = &self.vals[pos];
        match a {
            CAtom::Exists(b) => return v.is_some() == *b,
            CAtom::Null => return v.as_ref().is_none_or(Value::is_null),
            _ => {}
        }
        let Some(v) = v else { return false };
        let s = &mut *self.s;
        present_atom(a, v, &mut s.num, &mut s.lower)
    }

    /// Non-literal keyword atoms: tested against every string of the event (as the
    /// value of a field would be).
    fn keyword_atom(&mut self, a: &CAtom) -> bool {
        let mut found = false;
        let s = &mut *self.s;
        let (num, lower) = (&mut s.num, &mut s.lower);
        match a {
            CAtom::Glob { toks, cased, .. } => self.event.for_each_str(&mut |h| {
                if !found {
                    let mut buf = std::mem::take(lower);
                    found = pattern::glob_match(toks, folded(h, *cased, &mut buf));
                    *lower = buf;
                }
            }),
            CAtom::Re { re, .. } => self.event.for_each_str(&mut |h| {
                if !found {
                    found = re.is_match(h);
                }
            }),
            CAtom::AnyStr => self.event.for_each_str(&mut |_| found = true),
            _ => self.event.for_each_str(&mut |h| {
                if !found {
                    found = present_atom(a, &Value::Str(Cow::Borrowed(h)), num, lower);
                }
            }),
        }
        found
    }
}

/// Whether a present value (a scalar, or any element of a list) satisfies a value test
/// that is not a literal's hit bit, a field reference or a presence test.
fn present_atom(a: &CAtom, v: &Value<'_>, num: &mut String, lower: &mut String) -> bool {
    match a {
        CAtom::Empty => for_each_scalar(v, &mut |x| {
            matches!(x, Value::Null) || x.as_str() == Some("")
        }),
        CAtom::AnyStr => for_each_scalar(v, &mut |x| matches!(x, Value::Str(_))),
        CAtom::Glob { toks, cased, .. } => for_each_scalar(v, &mut |x| {
            scalar_str(x, num).is_some_and(|h| pattern::glob_match(toks, folded(h, *cased, lower)))
        }),
        CAtom::Re { re, .. } => for_each_scalar(v, &mut |x| {
            scalar_str(x, num).is_some_and(|h| re.is_match(h))
        }),
        CAtom::Num(c, n) => for_each_scalar(v, &mut |x| x.as_f64().is_some_and(|f| c.test(f, *n))),
        CAtom::Bool(b) => for_each_scalar(v, &mut |x| match x {
            Value::Bool(y) => y == b,
            Value::Str(s) => s.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
            _ => false,
        }),
        CAtom::Cidr(net) => for_each_scalar(v, &mut |x| {
            x.as_str()
                .and_then(parse_ip)
                .is_some_and(|ip| net.contains(ip))
        }),
        CAtom::Time(part, c, n) => for_each_scalar(v, &mut |x| {
            value_time(x).is_some_and(|ms| c.test(part_of(ms, *part), *n))
        }),
        CAtom::Pat(_) | CAtom::Exists(_) | CAtom::Null | CAtom::FieldRef { .. } => false,
    }
}

/// A `cidr` operand: an IPv4 or IPv6 address, possibly in brackets.
fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim().trim_matches(['[', ']']).parse().ok()
}
