//! The `re` modifier's regular expressions, with a shortcut for the form that is costly
//! for an automaton and trivial to answer directly: `.{n,}` ("a run of at least `n`
//! characters", SigmaHQ's test for overlong command lines). Matched by the `regex` crate,
//! such a pattern steps its lazy DFA through every byte of every long text and thrashes
//! its cache; answered here, it is a length check per line.

use regex_syntax::hir::{Dot, Hir, HirKind};

/// A compiled `re` value.
#[derive(Debug, Clone)]
pub(crate) struct SigmaRegex {
    re: regex::Regex,
    /// `Some` when the whole pattern is `.{min,}`: answered without the automaton.
    run: Option<Run>,
}

/// `.{min,}`: some run of `min` characters, `\n` included when `dot_all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    min: usize,
    dot_all: bool,
}

impl SigmaRegex {
    /// Compiles `pattern` with the `i`, `m` and `s` flags; the error is the `regex`
    /// crate's last line (what is wrong, without the echoed pattern).
    pub(crate) fn new(pattern: &str, i: bool, m: bool, s: bool) -> Result<Self, String> {
        let re = regex::RegexBuilder::new(pattern)
            .case_insensitive(i)
            .multi_line(m)
            .dot_matches_new_line(s)
            .size_limit(1 << 22)
            // Twice the default lazy-DFA cache: with 2 MiB, patterns of Unicode classes
            // (`\w+`(\w+|-|.)`...`) thrash it on long command lines and fall back to the
            // backtracker, which clears a bitset as large as the text times the states
            // on every call (2% of the corpus's matching instructions). Grown only when
            // a pattern needs it.
            .dfa_size_limit(4 << 20)
            .build()
            .map_err(|e| {
                let msg = e.to_string();
                msg.lines().last().unwrap_or("").trim().to_string()
            })?;
        let run = regex_syntax::ParserBuilder::new()
            .case_insensitive(i)
            .multi_line(m)
            .dot_matches_new_line(s)
            .build()
            .parse(pattern)
            .ok()
            .and_then(|hir| long_run(&hir));
        Ok(SigmaRegex { re, run })
    }

    /// The compiled expression itself (without the shortcut), for the reference
    /// evaluator.
    pub(crate) fn regex(&self) -> &regex::Regex {
        &self.re
    }

    /// Whether the expression matches anywhere in `hay` (the `regex` crate's `is_match`).
    pub(crate) fn is_match(&self, hay: &str) -> bool {
        let Some(run) = self.run else {
            return self.re.is_match(hay);
        };
        // Bytes are at least as many as characters: a short text is answered at once.
        if hay.len() < run.min {
            return false;
        }
        let long = |part: &str| {
            part.len() >= run.min && (part.is_ascii() || part.chars().count() >= run.min)
        };
        if run.dot_all {
            long(hay)
        } else {
            hay.split('\n').any(long)
        }
    }
}

/// `Some` when `hir` is `.{min,}` (possibly in a capture group), with `min` at least 1.
fn long_run(hir: &Hir) -> Option<Run> {
    match hir.kind() {
        HirKind::Capture(c) => long_run(&c.sub),
        HirKind::Repetition(r) if r.max.is_none() && r.min >= 1 => {
            let dot_all = if *r.sub == Hir::dot(Dot::AnyCharExceptLF) {
                false
            } else if *r.sub == Hir::dot(Dot::AnyChar) {
                true
            } else {
                return None;
            };
            Some(Run {
                min: usize::try_from(r.min).ok()?,
                dot_all,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(pattern: &str, s: bool, hay: &str) -> (bool, bool) {
        let fast = SigmaRegex::new(pattern, false, false, s).expect("compiles");
        let slow = regex::RegexBuilder::new(pattern)
            .dot_matches_new_line(s)
            .build()
            .expect("compiles");
        (fast.is_match(hay), slow.is_match(hay))
    }

    #[test]
    fn long_runs_are_recognised() {
        for (p, s, want) in [
            (".{1000,}", false, Some((1000, false))),
            ("(.{5,})", false, Some((5, false))),
            (".{5,}", true, Some((5, true))),
            ("(?s).{5,}", false, Some((5, true))),
            (".+", false, Some((1, false))),
            (".{5,9}", false, None),
            ("a.{5,}", false, None),
            ("^.{5,}", false, None),
            ("[^x]{5,}", false, None),
            (".*", false, None),
        ] {
            let r = SigmaRegex::new(p, false, false, s).expect("compiles");
            assert_eq!(r.run.map(|r| (r.min, r.dot_all)), want, "{p}");
        }
    }

    #[test]
    fn long_runs_answer_as_the_automaton_does() {
        let lines = [
            String::new(),
            "abcd".into(),
            "abcde".into(),
            "ab\ncde".into(),
            "abcde\nf".into(),
            "ab\nabcdef\n".into(),
            "éééé".into(),
            "ééééé".into(),
            "éé\néééé".into(),
            "\n\n\n\n\n\n".into(),
            "x".repeat(1500),
            format!("{}\n{}", "y".repeat(999), "z".repeat(999)),
            format!("{}\n{}", "y".repeat(999), "z".repeat(1000)),
            "ü".repeat(600),
            "ü".repeat(1000),
        ];
        for p in [".{5,}", ".{1000,}", "(.{5,})", ".+"] {
            for s in [false, true] {
                for hay in &lines {
                    let (fast, slow) = both(p, s, hay);
                    assert_eq!(fast, slow, "{p} (s: {s}) on {hay:?}");
                }
            }
        }
    }
}
