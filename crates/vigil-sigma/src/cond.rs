//! The `condition` language: `and`, `or`, `not`, parentheses, `1 of` / `all of` / `N of`
//! over `them` or a wildcard pattern of search identifiers.
//!
//! Precedence, highest first: `x of`, `not`, `and`, `or` (as the specification orders them).
//! Keywords are matched case-insensitively; identifiers exactly.

/// A parsed condition over search identifiers, resolved to their indices.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cond {
    /// The search identifier with this index.
    Search(usize),
    /// All must hold.
    And(Vec<Cond>),
    /// One must hold.
    Or(Vec<Cond>),
    /// Negation.
    Not(Box<Cond>),
    /// At least `n` of these searches hold.
    AtLeast(usize, Vec<usize>),
    /// Constant (an empty `of` set, after filters are applied).
    Const(bool),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    LParen,
    RParen,
    And,
    Or,
    Not,
    Of,
    All,
    Them,
    Num(usize),
    Ident(String),
    Pipe,
}

fn tokenize(s: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        match c {
            '(' => {
                out.push(Token::LParen);
                chars.next();
            }
            ')' => {
                out.push(Token::RParen);
                chars.next();
            }
            '|' => {
                out.push(Token::Pipe);
                chars.next();
            }
            _ => {
                let start = i;
                let mut end = i;
                while let Some(&(j, d)) = chars.peek() {
                    if d.is_whitespace() || matches!(d, '(' | ')' | '|') {
                        break;
                    }
                    end = j + d.len_utf8();
                    chars.next();
                }
                let word = &s[start..end];
                let tok = match word.to_ascii_lowercase().as_str() {
                    "and" => Token::And,
                    "or" => Token::Or,
                    "not" => Token::Not,
                    "of" => Token::Of,
                    "all" => Token::All,
                    "them" => Token::Them,
                    _ if word.bytes().all(|b| b.is_ascii_digit()) => Token::Num(
                        word.parse()
                            .map_err(|_| format!("number `{word}` is too large"))?,
                    ),
                    _ => Token::Ident(word.to_string()),
                };
                out.push(tok);
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<Token>,
    pos: usize,
    names: &'a [String],
    depth: usize,
}

/// Deepest parenthesis nesting accepted.
const MAX_DEPTH: usize = 64;

fn glob_ident(pattern: &str, name: &str) -> bool {
    let toks = crate::pattern::parse_wildcards(pattern);
    crate::pattern::glob_match(&toks, name)
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn or(&mut self) -> Result<Cond, String> {
        let mut parts = vec![self.and()?];
        while self.peek() == Some(&Token::Or) {
            self.next();
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Cond::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Cond, String> {
        let mut parts = vec![self.not()?];
        while self.peek() == Some(&Token::And) {
            self.next();
            parts.push(self.not()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Cond::And(parts)
        })
    }

    fn not(&mut self) -> Result<Cond, String> {
        if self.peek() == Some(&Token::Not) {
            self.next();
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err("nested too deeply".into());
            }
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Cond::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Cond, String> {
        match self.next() {
            Some(Token::LParen) => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err("parentheses nested too deeply".into());
                }
                let inner = self.or()?;
                self.depth -= 1;
                match self.next() {
                    Some(Token::RParen) => Ok(inner),
                    _ => Err("missing `)`".into()),
                }
            }
            Some(Token::All) => self.of(None),
            Some(Token::Num(n)) => self.of(Some(n)),
            Some(Token::Ident(name)) => match self.names.iter().position(|n| *n == name) {
                Some(i) => Ok(Cond::Search(i)),
                None => Err(format!("unknown search identifier `{name}`")),
            },
            Some(Token::Pipe) => Err(
                "aggregation expressions (`| count() ...`) are Sigma 1 syntax; use a correlation rule"
                    .into(),
            ),
            Some(t) => Err(format!("unexpected {}", describe(&t))),
            None => Err("unexpected end of condition".into()),
        }
    }

    fn of(&mut self, n: Option<usize>) -> Result<Cond, String> {
        if self.next() != Some(Token::Of) {
            return Err("expected `of` after a quantifier".into());
        }
        let idx: Vec<usize> = match self.next() {
            Some(Token::Them) => (0..self.names.len())
                .filter(|&i| !self.names[i].starts_with('_'))
                .collect(),
            Some(Token::Ident(p)) => (0..self.names.len())
                .filter(|&i| glob_ident(&p, &self.names[i]))
                .collect(),
            Some(t) => {
                return Err(format!(
                    "expected `them` or a pattern, found {}",
                    describe(&t)
                ))
            }
            None => return Err("expected `them` or a pattern after `of`".into()),
        };
        if idx.is_empty() {
            return Err("`of` matches no search identifier".into());
        }
        let need = match n {
            None => idx.len(),
            Some(0) => return Err("`0 of` is not a valid quantifier".into()),
            Some(k) => k,
        };
        Ok(match (need, idx.len()) {
            (1, 1) => Cond::Search(idx[0]),
            (1, _) => Cond::Or(idx.into_iter().map(Cond::Search).collect()),
            (k, len) if k == len => Cond::And(idx.into_iter().map(Cond::Search).collect()),
            (k, _) => Cond::AtLeast(k, idx),
        })
    }
}

fn describe(t: &Token) -> String {
    match t {
        Token::LParen => "`(`".into(),
        Token::RParen => "`)`".into(),
        Token::And => "`and`".into(),
        Token::Or => "`or`".into(),
        Token::Not => "`not`".into(),
        Token::Of => "`of`".into(),
        Token::All => "`all`".into(),
        Token::Them => "`them`".into(),
        Token::Num(n) => format!("`{n}`"),
        Token::Ident(s) => format!("`{s}`"),
        Token::Pipe => "`|`".into(),
    }
}

/// Parses one condition string against the rule's search identifier names.
pub(crate) fn parse(text: &str, names: &[String]) -> Result<Cond, String> {
    let toks = tokenize(text)?;
    if toks.is_empty() {
        return Err("empty condition".into());
    }
    let mut p = Parser {
        toks,
        pos: 0,
        names,
        depth: 0,
    };
    let c = p.or()?;
    match p.peek() {
        None => Ok(c),
        Some(Token::Pipe) => Err(
            "aggregation expressions (`| count() ...`) are Sigma 1 syntax; use a correlation rule"
                .into(),
        ),
        Some(t) => Err(format!(
            "unexpected {} after a complete expression",
            describe(t)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["sel", "sel_b", "filter_1", "filter_2", "_hidden"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn precedence() {
        let c = parse("sel or sel_b and not filter_1", &names()).expect("ok");
        assert_eq!(
            c,
            Cond::Or(vec![
                Cond::Search(0),
                Cond::And(vec![Cond::Search(1), Cond::Not(Box::new(Cond::Search(2)))])
            ])
        );
    }

    #[test]
    fn quantifiers() {
        let n = names();
        assert_eq!(
            parse("all of them", &n).expect("ok"),
            Cond::And((0..4).map(Cond::Search).collect())
        );
        assert_eq!(
            parse("1 of filter_*", &n).expect("ok"),
            Cond::Or(vec![Cond::Search(2), Cond::Search(3)])
        );
        assert_eq!(
            parse("2 of sel*", &n).expect("ok"),
            Cond::And(vec![Cond::Search(0), Cond::Search(1)])
        );
        assert_eq!(
            parse("2 of them", &n).expect("ok"),
            Cond::AtLeast(2, vec![0, 1, 2, 3])
        );
        assert_eq!(parse("1 of _h*", &n).expect("ok"), Cond::Search(4));
        assert_eq!(
            parse("NOT (sel)", &n).expect("ok"),
            Cond::Not(Box::new(Cond::Search(0)))
        );
    }

    #[test]
    fn errors() {
        let n = names();
        assert!(parse("sel and", &n).unwrap_err().contains("end"));
        assert!(parse("nope", &n).unwrap_err().contains("unknown"));
        assert!(parse("(sel", &n).unwrap_err().contains(")"));
        assert!(parse("1 of x*", &n).unwrap_err().contains("no search"));
        assert!(parse("sel | count() > 5", &n)
            .unwrap_err()
            .contains("correlation"));
        assert!(parse("sel sel_b", &n).is_err());
    }
}
