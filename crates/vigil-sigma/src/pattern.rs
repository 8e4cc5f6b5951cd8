//! Sigma string values: wildcard parsing, the value-transforming modifiers (`windash`,
//! `base64`, `base64offset`, `utf16*`/`wide`, `expand`), and the compiled string pattern
//! (a literal tested by the automata, or a glob).

/// One piece of a Sigma string value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// Literal text.
    Lit(String),
    /// `*`: any run of characters.
    Star,
    /// `?`: exactly one character.
    One,
}

/// Splits a Sigma string into literal text and wildcards. `\*`, `\?` and `\\` are escapes;
/// a backslash before anything else is a literal backslash.
pub(crate) fn parse_wildcards(s: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(&n @ ('*' | '?' | '\\')) => {
                    lit.push(n);
                    chars.next();
                }
                _ => lit.push('\\'),
            },
            '*' | '?' => {
                if !lit.is_empty() {
                    out.push(Tok::Lit(std::mem::take(&mut lit)));
                }
                out.push(if c == '*' { Tok::Star } else { Tok::One });
            }
            _ => lit.push(c),
        }
    }
    if !lit.is_empty() {
        out.push(Tok::Lit(lit));
    }
    out
}

/// A value taken literally: wildcards become their characters again.
pub(crate) fn plain_text(toks: &[Tok]) -> String {
    let mut s = String::new();
    for t in toks {
        match t {
            Tok::Lit(l) => s.push_str(l),
            Tok::Star => s.push('*'),
            Tok::One => s.push('?'),
        }
    }
    s
}

/// The dash-like characters `windash` permutes.
const DASHES: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];
/// At most this many variants per value, so a value with many dashes cannot explode.
const MAX_WINDASH_VARIANTS: usize = 3125;

/// `windash`: every combination of `-`, `/`, en dash, em dash and horizontal bar for each
/// dash or slash that starts a word (at the value's start or after a space).
pub(crate) fn windash(toks: &[Tok]) -> Vec<Vec<Tok>> {
    let mut variants: Vec<Vec<Tok>> = vec![Vec::new()];
    let mut prev_is_boundary = true;
    for t in toks {
        match t {
            Tok::Lit(l) => {
                // Split the literal at each word-starting dash.
                let mut pieces: Vec<(String, bool)> = Vec::new();
                let mut cur = String::new();
                for c in l.chars() {
                    if prev_is_boundary && (c == '-' || c == '/') {
                        if !cur.is_empty() {
                            pieces.push((std::mem::take(&mut cur), false));
                        }
                        pieces.push((String::new(), true));
                    } else {
                        cur.push(c);
                    }
                    prev_is_boundary = c == ' ';
                }
                if !cur.is_empty() {
                    pieces.push((cur, false));
                }
                for (text, is_dash) in pieces {
                    if is_dash && variants.len() * DASHES.len() <= MAX_WINDASH_VARIANTS {
                        let mut next = Vec::with_capacity(variants.len() * DASHES.len());
                        for v in &variants {
                            for d in DASHES {
                                let mut nv = v.clone();
                                push_lit(&mut nv, &d.to_string());
                                next.push(nv);
                            }
                        }
                        variants = next;
                    } else {
                        let text = if is_dash { "-".to_string() } else { text };
                        for v in &mut variants {
                            push_lit(v, &text);
                        }
                    }
                }
            }
            other => {
                prev_is_boundary = false;
                for v in &mut variants {
                    v.push(other.clone());
                }
            }
        }
    }
    variants
}

fn push_lit(v: &mut Vec<Tok>, s: &str) {
    if let Some(Tok::Lit(l)) = v.last_mut() {
        l.push_str(s);
    } else {
        v.push(Tok::Lit(s.to_string()));
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub(crate) fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `base64offset`: the three encodings of `data` as it may appear at any byte offset
/// inside a longer base64 text, with the characters that depend on the neighbours removed.
pub(crate) fn base64_offsets(data: &[u8]) -> Vec<String> {
    let mut out = Vec::with_capacity(3);
    for shift in 0..3usize {
        let mut padded = vec![b' '; shift];
        padded.extend_from_slice(data);
        let enc = base64(&padded);
        // Leading characters that encode the filler bytes (and are mixed with them).
        let start = [0, 2, 3][shift];
        // Trailing characters mixed with whatever follows the value, and the padding.
        let end = enc.len() - [0, 3, 2][(data.len() + shift) % 3];
        if start < end {
            if let Some(s) = enc.get(start..end) {
                out.push(s.to_string());
            }
        }
    }
    out
}

/// UTF-16 little endian bytes of `s`.
pub(crate) fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// UTF-16 big endian bytes of `s`.
pub(crate) fn utf16be(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// How a literal must sit in the field value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Anchor {
    /// The whole value.
    Exact,
    /// At the start.
    Prefix,
    /// At the end.
    Suffix,
    /// Anywhere.
    Contains,
}

impl Anchor {
    /// Whether `needle` sits in `hay` as this anchor says.
    pub(crate) fn matches(self, hay: &str, needle: &str) -> bool {
        match self {
            Anchor::Exact => hay == needle,
            Anchor::Prefix => hay.starts_with(needle),
            Anchor::Suffix => hay.ends_with(needle),
            Anchor::Contains => hay.contains(needle),
        }
    }
}

/// A string test after all modifiers: either a literal with an anchor (answered by the
/// multi-pattern automata) or a glob with inner wildcards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StrPat {
    /// Literal text (lowercased unless `cased`).
    Lit {
        text: String,
        anchor: Anchor,
        cased: bool,
    },
    /// Wildcards inside: matched by [`glob_match`]; `hint` is its longest literal piece, a
    /// necessary condition the automata test first.
    Glob {
        toks: Vec<Tok>,
        cased: bool,
        hint: Option<String>,
    },
}

/// Lowercases for case-insensitive comparison.
pub(crate) fn fold(s: &str) -> String {
    if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        s.to_lowercase()
    }
}

/// Appends the lowercase of `s` to `out`, as `str::to_lowercase` gives it: ASCII runs a
/// word at a time, other characters one by one (a capital sigma, whose lowercase depends
/// on its neighbours, sends the whole text through `str::to_lowercase`).
pub(crate) fn fold_into(s: &str, out: &mut String) {
    if s.contains('Σ') {
        out.push_str(&s.to_lowercase());
        return;
    }
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest
            .bytes()
            .position(|b| !b.is_ascii())
            .unwrap_or(rest.len());
        let start = out.len();
        out.push_str(&rest[..n]);
        out.as_mut_str()[start..].make_ascii_lowercase();
        rest = &rest[n..];
        if let Some(c) = rest.chars().next() {
            out.extend(c.to_lowercase());
            rest = &rest[c.len_utf8()..];
        }
    }
}

/// Builds the pattern of a token list once the match kind has added its wildcards.
pub(crate) fn compile_str(mut toks: Vec<Tok>, cased: bool) -> StrPat {
    if !cased {
        for t in &mut toks {
            if let Tok::Lit(l) = t {
                *l = fold(l);
            }
        }
    }
    // Merge adjacent stars.
    toks.dedup_by(|a, b| *a == Tok::Star && *b == Tok::Star);
    let lead = toks.first() == Some(&Tok::Star);
    let trail = toks.len() > 1 && toks.last() == Some(&Tok::Star);
    let inner = &toks[usize::from(lead)..toks.len() - usize::from(trail)];
    if inner.iter().all(|t| matches!(t, Tok::Lit(_))) {
        let text: String = inner
            .iter()
            .map(|t| match t {
                Tok::Lit(l) => l.as_str(),
                _ => "",
            })
            .collect();
        if !text.is_empty() || (!lead && !trail) {
            let anchor = match (lead, trail) {
                (false, false) => Anchor::Exact,
                (false, true) => Anchor::Prefix,
                (true, false) => Anchor::Suffix,
                (true, true) => Anchor::Contains,
            };
            return StrPat::Lit {
                text,
                anchor,
                cased,
            };
        }
    }
    let hint = toks
        .iter()
        .filter_map(|t| match t {
            Tok::Lit(l) => Some(l),
            _ => None,
        })
        .max_by_key(|l| l.len())
        .cloned();
    StrPat::Glob { toks, cased, hint }
}

/// Matches a glob against a haystack that is already folded if the glob is caseless.
pub(crate) fn glob_match(toks: &[Tok], hay: &str) -> bool {
    // Classic wildcard matching with one backtrack point for the last star. A star
    // followed by a literal jumps to the literal's next occurrence (the positions before
    // it would fail on the literal at once), instead of trying one character at a time.
    let mut ti = 0usize; // token index
    let mut hi = 0usize; // byte index in hay
                         // The last star's token index, and where what follows it is tried next.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if ti < toks.len() {
            match &toks[ti] {
                Tok::Star => {
                    ti += 1;
                    match next_try(toks.get(ti), hay, hi) {
                        Some(h) => hi = h,
                        None => return false,
                    }
                    star = Some((ti - 1, hi));
                    continue;
                }
                Tok::One => {
                    if let Some(c) = hay[hi..].chars().next() {
                        hi += c.len_utf8();
                        ti += 1;
                        continue;
                    }
                }
                Tok::Lit(l) => {
                    if hay[hi..].starts_with(l.as_str()) {
                        hi += l.len();
                        ti += 1;
                        continue;
                    }
                }
            }
        } else if hi == hay.len() {
            return true;
        }
        // Mismatch: let the last star swallow one more character (and then up to where
        // the token after it can match).
        let Some((sti, sh)) = star else {
            return false;
        };
        let Some(c) = hay[sh..].chars().next() else {
            return false;
        };
        let Some(nh) = next_try(toks.get(sti + 1), hay, sh + c.len_utf8()) else {
            return false;
        };
        star = Some((sti, nh));
        ti = sti + 1;
        hi = nh;
    }
}

/// Where, from `from` on, the token after a star can match: the next occurrence of a
/// literal (`None` if there is none), or `from` itself for anything else.
fn next_try(next: Option<&Tok>, hay: &str, from: usize) -> Option<usize> {
    match next {
        Some(Tok::Lit(l)) => hay[from..].find(l.as_str()).map(|o| from + o),
        _ => Some(from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_into_is_to_lowercase() {
        for s in [
            "",
            "PLAIN ascii",
            "Microsoft® Windows® Operating System",
            "ÀÉÎÕÜ straße İstanbul",
            "ΟΔΥΣΣΕΥΣ Σ ΣΑ aΣ",
            "ǅ ῼ K Å ﬃ",
            "mixed\0NUL\0ÉTÉ",
        ] {
            let mut out = String::from("kept:");
            fold_into(s, &mut out);
            assert_eq!(out, format!("kept:{}", s.to_lowercase()), "{s}");
        }
    }

    fn lit(s: &str) -> Tok {
        Tok::Lit(s.into())
    }

    #[test]
    fn wildcards_and_escapes() {
        assert_eq!(
            parse_wildcards(r"a*b?c\*d\?e\\f\g"),
            vec![lit("a"), Tok::Star, lit("b"), Tok::One, lit(r"c*d?e\f\g")]
        );
        // `\*` is an escaped star; a backslash before a wildcard is written `\\`.
        assert_eq!(parse_wildcards(r"C:\Windows\*"), vec![lit(r"C:\Windows*")]);
        assert_eq!(
            parse_wildcards(r"C:\Windows\\*"),
            vec![lit(r"C:\Windows\"), Tok::Star]
        );
        assert_eq!(parse_wildcards(r"\\*"), vec![lit("\\"), Tok::Star]);
    }

    #[test]
    fn base64_and_offsets() {
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"f"), "Zg==");
        // Reference values from the Sigma specification's example.
        assert_eq!(
            base64_offsets(b"/bin/bash"),
            vec!["L2Jpbi9iYXNo", "9iaW4vYmFza", "vYmluL2Jhc2"]
        );
        assert_eq!(
            base64_offsets(b"/bin/sh"),
            vec!["L2Jpbi9za", "9iaW4vc2", "vYmluL3No"]
        );
    }

    #[test]
    fn windash_permutes_word_start_dashes() {
        let v = windash(&[lit("cmd -a /b x-y")]);
        assert_eq!(v.len(), 25);
        assert!(v.contains(&vec![lit("cmd /a -b x-y")]));
        assert!(v.contains(&vec![lit("cmd \u{2013}a \u{2015}b x-y")]));
    }

    /// The glob matcher before stars jumped to their literal: one character at a time.
    fn glob_match_stepwise(toks: &[Tok], hay: &str) -> bool {
        let mut ti = 0usize;
        let mut hi = 0usize;
        let mut star: Option<(usize, usize)> = None;
        loop {
            if ti < toks.len() {
                match &toks[ti] {
                    Tok::Star => {
                        star = Some((ti, hi));
                        ti += 1;
                        continue;
                    }
                    Tok::One => {
                        if let Some(c) = hay[hi..].chars().next() {
                            hi += c.len_utf8();
                            ti += 1;
                            continue;
                        }
                    }
                    Tok::Lit(l) => {
                        if hay[hi..].starts_with(l.as_str()) {
                            hi += l.len();
                            ti += 1;
                            continue;
                        }
                    }
                }
            } else if hi == hay.len() {
                return true;
            }
            match star {
                Some((sti, sh)) => match hay[sh..].chars().next() {
                    Some(c) => {
                        let nh = sh + c.len_utf8();
                        star = Some((sti, nh));
                        ti = sti + 1;
                        hi = nh;
                    }
                    None => return false,
                },
                None => return false,
            }
        }
    }

    /// Every glob of up to five tokens over a small alphabet (with multi-byte
    /// characters), against every text of up to five characters of it and some longer
    /// ones: the jumping matcher answers as the stepwise one.
    #[test]
    fn glob_match_is_the_stepwise_matcher() {
        let pieces: Vec<Tok> = vec![
            Tok::Star,
            Tok::One,
            lit("a"),
            lit("ab"),
            lit("é"),
            lit("aé"),
            lit("ba"),
        ];
        let mut globs: Vec<Vec<Tok>> = vec![Vec::new()];
        let mut level: Vec<Vec<Tok>> = vec![Vec::new()];
        for _ in 0..5 {
            let mut next = Vec::new();
            for g in &level {
                for p in &pieces {
                    // As compile_str and parse_wildcards make them: no adjacent stars,
                    // no adjacent literals.
                    let adjacent = matches!(
                        (g.last(), p),
                        (Some(Tok::Star), Tok::Star) | (Some(Tok::Lit(_)), Tok::Lit(_))
                    );
                    if !adjacent {
                        let mut n = g.clone();
                        n.push(p.clone());
                        next.push(n);
                    }
                }
            }
            globs.extend(next.iter().cloned());
            level = next;
        }
        let alphabet = ["a", "b", "é", "€"];
        let mut texts: Vec<String> = vec![String::new()];
        let mut level: Vec<String> = vec![String::new()];
        for _ in 0..5 {
            let mut next = Vec::new();
            for t in &level {
                for c in alphabet {
                    next.push(format!("{t}{c}"));
                }
            }
            texts.extend(next.iter().cloned());
            level = next;
        }
        texts.push("ab".repeat(20) + "aé");
        texts.push("b€".repeat(15) + "ab" + &"é".repeat(9));
        let mut matched = 0usize;
        for g in &globs {
            for t in &texts {
                let want = glob_match_stepwise(g, t);
                assert_eq!(glob_match(g, t), want, "{g:?} on {t:?}");
                matched += usize::from(want);
            }
        }
        // Both answers occur in plenty.
        assert!(matched > 10_000 && matched < globs.len() * texts.len() / 2);
    }

    #[test]
    fn compile_and_glob() {
        let p = compile_str(vec![Tok::Star, lit("Foo"), Tok::Star], false);
        assert_eq!(
            p,
            StrPat::Lit {
                text: "foo".into(),
                anchor: Anchor::Contains,
                cased: false
            }
        );
        let StrPat::Glob { toks, hint, .. } =
            compile_str(parse_wildcards(r"c:\\*\sys?em32\cmd.exe"), false)
        else {
            panic!("glob")
        };
        assert_eq!(hint.as_deref(), Some(r"em32\cmd.exe"));
        assert!(glob_match(&toks, r"c:\windows\system32\cmd.exe"));
        assert!(!glob_match(&toks, r"c:\windows\system32\cmd.exe2"));
        assert!(glob_match(&[Tok::Star], ""));
        assert!(glob_match(&[lit("a"), Tok::Star, lit("a")], "aba"));
        assert!(!glob_match(&[lit("a"), Tok::Star, lit("a")], "a"));
        assert!(glob_match(&[Tok::One, Tok::One], "é€"));
    }
}
