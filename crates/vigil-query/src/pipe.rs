//! The pipe language: a hunter's query as a table and a chain of stages, in the shape of
//! KQL or PowerQuery, parsed here into a [`Pipeline`] that the `compile` module turns into
//! SQL for DataFusion.
//!
//! ```text
//! process_activity
//!   | where actor.process.file.name == "curl" and not device.hostname startswith "ci-"
//!   | since 24h
//!   | summarize count(), min(time), max(time) by device.hostname
//!   | sort by count desc
//!   | take 10
//! ```
//!
//! Stages: `where EXPR`, `project F, ...`, `count`, `count by F, ...`,
//! `summarize AGG, ... [by F, ...]` (AGG: `count()`, `dcount(F)`, `min(F)`, `max(F)`,
//! `sum(F)`, `avg(F)`, each optionally `as NAME`), `sort by F [asc|desc], ...`
//! (`order by` too), `take N` (`limit N`), `distinct F, ...`, `since DURATION`
//! (`30s`, `15m`, `1h`, `7d`), `between TIME and TIME` (RFC 3339 times or dates).
//! Expressions: `and`, `or`, `not`, parentheses, `==` (`=`), `!=`, `<`, `<=`, `>`, `>=`,
//! `contains`, `startswith`, `endswith`, `matches` (a regular expression), `in (..)`,
//! `not in (..)`; literals are strings in double or single quotes, integers, decimals,
//! `true`, `false`, `null`. Fields are OCSF names, nested objects by dotted path.

use std::fmt;

/// A syntax error or an error found while checking the query against the tables, with
/// the byte span of the query it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PipeError {
    /// Byte offset of the start of the offending text.
    pub start: usize,
    /// Byte offset past its end (at least `start + 1` when rendered).
    pub end: usize,
    /// What is wrong.
    pub message: String,
    /// What would be right, if known.
    pub hint: Option<String>,
}

impl PipeError {
    pub(crate) fn new(start: usize, end: usize, message: impl Into<String>) -> Self {
        PipeError {
            start,
            end,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The error as a reader sees it: `LINE:COLUMN: message`, the query's line with a
    /// caret under the offending text, and the hint.
    pub fn render(&self, query: &str) -> String {
        render_at(
            query,
            self.start,
            self.end,
            &self.message,
            self.hint.as_deref(),
        )
    }
}

/// Renders `message` about the bytes `start..end` of `text`: position (1-based line and
/// column, in characters), the line, a caret line, the hint.
pub fn render_at(
    text: &str,
    start: usize,
    end: usize,
    message: &str,
    hint: Option<&str>,
) -> String {
    let start = floor_char(text, start.min(text.len()));
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line_no = text[..start].matches('\n').count() + 1;
    let col = text[line_start..start].chars().count() + 1;
    let line = &text[line_start..line_end];
    let width = text[start..end.clamp(start, line_end)]
        .chars()
        .count()
        .max(1);
    let mut out = format!("{line_no}:{col}: {message}\n  {line}\n  ");
    out.push_str(&" ".repeat(col - 1));
    out.push_str(&"^".repeat(width));
    if let Some(h) = hint {
        out.push_str("\n  hint: ");
        out.push_str(h);
    }
    out
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A parsed query: the table and its stages in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// The table (an OCSF class's snake_case name, `process_activity`).
    pub table: Spanned<String>,
    /// The stages after it.
    pub stages: Vec<Stage>,
}

/// A value with the byte span of the query text it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Start byte offset.
    pub start: usize,
    /// End byte offset.
    pub end: usize,
}

/// A field named by dotted path (`actor.process.file.name`).
pub type Field = Spanned<Vec<String>>;

impl Field {
    /// The path as written, joined with dots.
    pub fn dotted(&self) -> String {
        self.value.join(".")
    }
}

/// One stage of a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// `where EXPR`.
    Where(Expr),
    /// `project F, ...`.
    Project(Vec<Field>),
    /// `count` (no fields) or `count by F, ...`.
    Count(Vec<Field>),
    /// `summarize AGG, ... by F, ...`.
    Summarize(Vec<Agg>, Vec<Field>),
    /// `sort by F [desc], ...`.
    Sort(Vec<(Field, bool)>),
    /// `take N`.
    Take(u64),
    /// `distinct F, ...`.
    Distinct(Vec<Field>),
    /// `since DURATION`: milliseconds back from now.
    Since(Spanned<i64>),
    /// `between T1 and T2`: milliseconds since the epoch, T2 inclusive.
    Between(Spanned<i64>, Spanned<i64>),
}

/// An aggregate of `summarize`.
#[derive(Debug, Clone, PartialEq)]
pub struct Agg {
    /// The function.
    pub func: AggFunc,
    /// Its field (none for `count()`).
    pub field: Option<Field>,
    /// The output column's name (`as NAME`, else the function's name and field).
    pub name: String,
}

/// Aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    /// Rows.
    Count,
    /// Distinct values.
    DCount,
    /// Smallest.
    Min,
    /// Largest.
    Max,
    /// Sum.
    Sum,
    /// Mean.
    Avg,
}

impl AggFunc {
    fn name(self) -> &'static str {
        match self {
            AggFunc::Count => "count",
            AggFunc::DCount => "dcount",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::Sum => "sum",
            AggFunc::Avg => "avg",
        }
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// Text.
    Str(String),
    /// An integer.
    Int(i64),
    /// A decimal.
    Float(f64),
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

/// String operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrOp {
    /// Substring (case-sensitive).
    Contains,
    /// Prefix.
    StartsWith,
    /// Suffix.
    EndsWith,
    /// Regular expression.
    Matches,
}

/// A `where` expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Both.
    And(Box<Expr>, Box<Expr>),
    /// Either.
    Or(Box<Expr>, Box<Expr>),
    /// Negation.
    Not(Box<Expr>),
    /// A field compared with a value (`null` compares as `IS [NOT] NULL`).
    Cmp(Field, CmpOp, Spanned<Lit>),
    /// A string operator on a field.
    Str(Field, StrOp, Spanned<String>),
    /// Membership (`negated` for `not in`).
    In(Field, Vec<Spanned<Lit>>, bool),
    /// A boolean field alone.
    Truthy(Field),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    /// A number with a unit (`1h`, `30s`).
    Duration(i64, char),
    Pipe,
    Comma,
    Dot,
    LParen,
    RParen,
    Op(CmpOp),
    End,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) => write!(f, "`{s}`"),
            Tok::Str(s) => write!(f, "the string {s:?}"),
            Tok::Int(n) => write!(f, "the number {n}"),
            Tok::Float(n) => write!(f, "the number {n}"),
            Tok::Duration(n, u) => write!(f, "the duration {n}{u}"),
            Tok::Pipe => f.write_str("`|`"),
            Tok::Comma => f.write_str("`,`"),
            Tok::Dot => f.write_str("`.`"),
            Tok::LParen => f.write_str("`(`"),
            Tok::RParen => f.write_str("`)`"),
            Tok::Op(op) => f.write_str(match op {
                CmpOp::Eq => "`==`",
                CmpOp::Ne => "`!=`",
                CmpOp::Lt => "`<`",
                CmpOp::Le => "`<=`",
                CmpOp::Gt => "`>`",
                CmpOp::Ge => "`>=`",
            }),
            Tok::End => f.write_str("the end of the query"),
        }
    }
}

struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

fn lex(src: &str) -> Result<Vec<Token>, PipeError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let simple = |tok, len| Token {
            tok,
            start,
            end: start + len,
        };
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                // A comment to the end of the line.
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'|' => out.push(simple(Tok::Pipe, 1)),
            b',' => out.push(simple(Tok::Comma, 1)),
            b'.' => out.push(simple(Tok::Dot, 1)),
            b'(' => out.push(simple(Tok::LParen, 1)),
            b')' => out.push(simple(Tok::RParen, 1)),
            b'=' => {
                let len = if bytes.get(i + 1) == Some(&b'=') {
                    2
                } else {
                    1
                };
                out.push(simple(Tok::Op(CmpOp::Eq), len));
            }
            b'!' if bytes.get(i + 1) == Some(&b'=') => out.push(simple(Tok::Op(CmpOp::Ne), 2)),
            b'<' if bytes.get(i + 1) == Some(&b'>') => out.push(simple(Tok::Op(CmpOp::Ne), 2)),
            b'<' if bytes.get(i + 1) == Some(&b'=') => out.push(simple(Tok::Op(CmpOp::Le), 2)),
            b'>' if bytes.get(i + 1) == Some(&b'=') => out.push(simple(Tok::Op(CmpOp::Ge), 2)),
            b'<' => out.push(simple(Tok::Op(CmpOp::Lt), 1)),
            b'>' => out.push(simple(Tok::Op(CmpOp::Gt), 1)),
            b'"' | b'\'' => {
                let quote = c;
                let mut text = String::new();
                let mut j = i + 1;
                loop {
                    let Some(&b) = bytes.get(j) else {
                        return Err(PipeError::new(start, src.len(), "unterminated string")
                            .hint(format!("close it with {}", quote as char)));
                    };
                    if b == quote {
                        break;
                    }
                    if b == b'\\' {
                        match bytes.get(j + 1) {
                            Some(&e @ (b'\\' | b'"' | b'\'')) => {
                                text.push(e as char);
                                j += 2;
                                continue;
                            }
                            Some(b'n') => {
                                text.push('\n');
                                j += 2;
                                continue;
                            }
                            Some(b't') => {
                                text.push('\t');
                                j += 2;
                                continue;
                            }
                            _ => {}
                        }
                    }
                    let ch_end = next_char(src, j);
                    text.push_str(&src[j..ch_end]);
                    j = ch_end;
                }
                out.push(Token {
                    tok: Tok::Str(text),
                    start,
                    end: j + 1,
                });
                i = j + 1;
                continue;
            }
            b'0'..=b'9' | b'-' if c != b'-' || bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let mut j = i + 1;
                while j < bytes.len() && (bytes[j].is_ascii_digit() || bytes[j] == b'.') {
                    j += 1;
                }
                let num = &src[i..j];
                let unit = bytes.get(j).copied().filter(u8::is_ascii_alphabetic);
                let bad = || {
                    PipeError::new(start, j, format!("`{num}` is not a number"))
                        .hint("integers like 42, decimals like 0.5")
                };
                let tok = if let Some(u) = unit {
                    let n: i64 = num.parse().map_err(|_| bad())?;
                    let end = j + 1;
                    if !matches!(u, b's' | b'm' | b'h' | b'd')
                        || bytes.get(end).is_some_and(|b| b.is_ascii_alphanumeric())
                    {
                        let word_end = src[j..]
                            .find(|c: char| !c.is_ascii_alphanumeric())
                            .map_or(src.len(), |k| j + k);
                        return Err(PipeError::new(
                            start,
                            word_end,
                            format!("`{}` is not a number or a duration", &src[start..word_end]),
                        )
                        .hint("durations are a whole number and s, m, h or d: 30s, 15m, 1h, 7d"));
                    }
                    j = end;
                    Tok::Duration(n, u as char)
                } else if num.contains('.') {
                    Tok::Float(num.parse().map_err(|_| bad())?)
                } else {
                    Tok::Int(num.parse().map_err(|_| bad())?)
                };
                out.push(Token { tok, start, end: j });
                i = j;
                continue;
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b'`' => {
                if c == b'`' {
                    // A quoted name: anything up to the next backtick.
                    let Some(close) = src[i + 1..].find('`') else {
                        return Err(PipeError::new(start, src.len(), "unterminated `name`")
                            .hint("close it with `"));
                    };
                    out.push(Token {
                        tok: Tok::Ident(src[i + 1..i + 1 + close].to_string()),
                        start,
                        end: i + close + 2,
                    });
                    i += close + 2;
                    continue;
                }
                let mut j = i + 1;
                while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                    j += 1;
                }
                out.push(Token {
                    tok: Tok::Ident(src[i..j].to_string()),
                    start,
                    end: j,
                });
                i = j;
                continue;
            }
            _ => {
                let end = next_char(src, i);
                return Err(PipeError::new(
                    start,
                    end,
                    format!("unexpected character `{}`", &src[i..end]),
                )
                .hint("strings go in quotes: \"...\""));
            }
        }
        i = out.last().map_or(i + 1, |t| t.end);
    }
    out.push(Token {
        tok: Tok::End,
        start: src.len(),
        end: src.len(),
    });
    Ok(out)
}

fn next_char(s: &str, i: usize) -> usize {
    let mut j = i + 1;
    while j < s.len() && !s.is_char_boundary(j) {
        j += 1;
    }
    j.min(s.len())
}

const STAGES: &str = "where, project, count, summarize, sort by, take, distinct, since, between";

/// Parses a pipe-language query.
pub fn parse(src: &str) -> Result<Pipeline, PipeError> {
    let toks = lex(src)?;
    let mut p = Parser { toks, pos: 0 };
    let table = p.ident("a table name (process_activity, file_activity, ...)")?;
    let mut stages = Vec::new();
    loop {
        match p.peek() {
            Tok::End => break,
            Tok::Pipe => {
                p.pos += 1;
                stages.push(p.stage()?);
            }
            _ => {
                let t = p.cur();
                return Err(PipeError::new(
                    t.start,
                    t.end,
                    format!("expected `|`, found {}", t.tok),
                )
                .hint("stages are separated by `|`: process_activity | where ... | take 10"));
            }
        }
    }
    Ok(Pipeline { table, stages })
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn cur(&self) -> &Token {
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn peek(&self) -> &Tok {
        &self.cur().tok
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s.eq_ignore_ascii_case(w))
    }

    fn eat_word(&mut self, w: &str) -> bool {
        let yes = self.is_word(w);
        if yes {
            self.pos += 1;
        }
        yes
    }

    fn unexpected(&self, want: &str) -> PipeError {
        let t = self.cur();
        PipeError::new(t.start, t.end, format!("expected {want}, found {}", t.tok))
    }

    fn expect_word(&mut self, w: &str, hint: &str) -> Result<(), PipeError> {
        if self.eat_word(w) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{w}`")).hint(hint))
        }
    }

    fn ident(&mut self, want: &str) -> Result<Spanned<String>, PipeError> {
        let t = self.cur();
        match &t.tok {
            Tok::Ident(s) => {
                let out = Spanned {
                    value: s.clone(),
                    start: t.start,
                    end: t.end,
                };
                self.pos += 1;
                Ok(out)
            }
            _ => Err(self.unexpected(want)),
        }
    }

    fn field(&mut self) -> Result<Field, PipeError> {
        let first = self.ident("a field name").map_err(|e| {
            e.hint("fields are OCSF names, nested by dots: actor.process.file.name")
        })?;
        let mut path = vec![first.value];
        let mut end = first.end;
        while matches!(self.peek(), Tok::Dot) {
            self.pos += 1;
            let part = self
                .ident("a field name after `.`")
                .map_err(|e| e.hint("a dotted path: actor.process.file.name"))?;
            end = part.end;
            path.push(part.value);
        }
        Ok(Spanned {
            value: path,
            start: first.start,
            end,
        })
    }

    fn fields(&mut self) -> Result<Vec<Field>, PipeError> {
        let mut out = vec![self.field()?];
        while matches!(self.peek(), Tok::Comma) {
            self.pos += 1;
            out.push(self.field()?);
        }
        Ok(out)
    }

    fn stage(&mut self) -> Result<Stage, PipeError> {
        let t = self.cur();
        let (start, end) = (t.start, t.end);
        let Tok::Ident(word) = &t.tok else {
            return Err(self.unexpected("a stage").hint(format!("stages: {STAGES}")));
        };
        let word = word.to_ascii_lowercase();
        self.pos += 1;
        match word.as_str() {
            "where" | "filter" => Ok(Stage::Where(self.expr()?)),
            "project" | "select" => Ok(Stage::Project(self.fields()?)),
            "count" => {
                if self.eat_word("by") {
                    Ok(Stage::Count(self.fields()?))
                } else {
                    Ok(Stage::Count(Vec::new()))
                }
            }
            "summarize" => {
                let mut aggs = vec![self.agg()?];
                while matches!(self.peek(), Tok::Comma) {
                    self.pos += 1;
                    aggs.push(self.agg()?);
                }
                let by = if self.eat_word("by") {
                    self.fields()?
                } else {
                    Vec::new()
                };
                Ok(Stage::Summarize(aggs, by))
            }
            "sort" | "order" => {
                self.expect_word("by", "sort by FIELD [asc|desc]")?;
                let mut keys = Vec::new();
                loop {
                    let f = self.field()?;
                    let desc = if self.eat_word("desc") {
                        true
                    } else {
                        self.eat_word("asc");
                        false
                    };
                    keys.push((f, desc));
                    if !matches!(self.peek(), Tok::Comma) {
                        break;
                    }
                    self.pos += 1;
                }
                Ok(Stage::Sort(keys))
            }
            "take" | "limit" | "head" => match *self.peek() {
                Tok::Int(n) if n >= 0 => {
                    self.pos += 1;
                    Ok(Stage::Take(n as u64))
                }
                _ => Err(self.unexpected("a row count").hint("take 10")),
            },
            "distinct" => Ok(Stage::Distinct(self.fields()?)),
            "since" | "last" => {
                let t = self.cur();
                match t.tok {
                    Tok::Duration(n, u) => {
                        let ms = n.saturating_mul(match u {
                            's' => 1_000,
                            'm' => 60_000,
                            'h' => 3_600_000,
                            _ => 86_400_000,
                        });
                        let out = Spanned {
                            value: ms,
                            start: t.start,
                            end: t.end,
                        };
                        self.pos += 1;
                        Ok(Stage::Since(out))
                    }
                    _ => Err(self
                        .unexpected("a duration")
                        .hint("since 30m, since 1h, since 7d (s, m, h, d)")),
                }
            }
            "between" => {
                let a = self.time()?;
                self.expect_word("and", "between 2026-01-01 and 2026-01-02T12:00:00Z")?;
                let b = self.time()?;
                Ok(Stage::Between(a, b))
            }
            _ => {
                let guess = closest(
                    &word,
                    STAGES.split(", ").map(|s| s.split(' ').next().unwrap_or(s)),
                );
                let mut e = PipeError::new(start, end, format!("unknown stage `{word}`"));
                e = match guess {
                    Some(g) => e.hint(format!("did you mean `{g}`? stages: {STAGES}")),
                    None => e.hint(format!("stages: {STAGES}")),
                };
                Err(e)
            }
        }
    }

    fn time(&mut self) -> Result<Spanned<i64>, PipeError> {
        let t = self.cur();
        let text = match &t.tok {
            Tok::Str(s) => s.clone(),
            _ => {
                // An unquoted date: the tokens up to whitespace, as written.
                return Err(self
                    .unexpected("a time in quotes")
                    .hint("between \"2026-01-01\" and \"2026-01-02T12:00:00Z\""));
            }
        };
        let (start, end) = (t.start, t.end);
        let ms = parse_time(&text).ok_or_else(|| {
            PipeError::new(start, end, format!("{text:?} is not a time"))
                .hint("RFC 3339 (2026-01-02T12:00:00Z), a date (2026-01-02), or epoch milliseconds")
        })?;
        self.pos += 1;
        Ok(Spanned {
            value: ms,
            start,
            end,
        })
    }

    fn agg(&mut self) -> Result<Agg, PipeError> {
        let name =
            self.ident("an aggregate (count(), min(F), max(F), dcount(F), sum(F), avg(F))")?;
        let func = match name.value.to_ascii_lowercase().as_str() {
            "count" => AggFunc::Count,
            "dcount" => AggFunc::DCount,
            "min" => AggFunc::Min,
            "max" => AggFunc::Max,
            "sum" => AggFunc::Sum,
            "avg" => AggFunc::Avg,
            other => {
                return Err(PipeError::new(
                    name.start,
                    name.end,
                    format!("unknown aggregate `{other}`"),
                )
                .hint("count(), dcount(F), min(F), max(F), sum(F), avg(F)"))
            }
        };
        if !matches!(self.peek(), Tok::LParen) {
            return Err(self.unexpected("`(`").hint(format!("{}(...)", func.name())));
        }
        self.pos += 1;
        let field = if func == AggFunc::Count {
            None
        } else {
            Some(self.field()?)
        };
        if !matches!(self.peek(), Tok::RParen) {
            return Err(self.unexpected("`)`"));
        }
        self.pos += 1;
        let out_name = if self.eat_word("as") {
            self.ident("a column name")?.value
        } else {
            match &field {
                None => "count".to_string(),
                Some(f) => format!("{}_{}", func.name(), f.value.join("_")),
            }
        };
        Ok(Agg {
            func,
            field,
            name: out_name,
        })
    }

    fn expr(&mut self) -> Result<Expr, PipeError> {
        let mut left = self.and()?;
        while self.eat_word("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, PipeError> {
        let mut left = self.not()?;
        while self.eat_word("and") {
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, PipeError> {
        if self.eat_word("not") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        if matches!(self.peek(), Tok::LParen) {
            self.pos += 1;
            let e = self.expr()?;
            if !matches!(self.peek(), Tok::RParen) {
                return Err(self.unexpected("`)`").hint("close the parenthesis"));
            }
            self.pos += 1;
            return Ok(e);
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Expr, PipeError> {
        let field = self.field()?;
        let t = self.cur();
        match &t.tok {
            Tok::Op(op) => {
                let op = *op;
                self.pos += 1;
                let lit = self.lit()?;
                Ok(Expr::Cmp(field, op, lit))
            }
            Tok::Ident(w) => {
                let w = w.to_ascii_lowercase();
                let op = match w.as_str() {
                    "contains" => Some(StrOp::Contains),
                    "startswith" => Some(StrOp::StartsWith),
                    "endswith" => Some(StrOp::EndsWith),
                    "matches" => Some(StrOp::Matches),
                    _ => None,
                };
                if let Some(op) = op {
                    self.pos += 1;
                    let t = self.cur();
                    let Tok::Str(s) = &t.tok else {
                        return Err(self
                            .unexpected("a string in quotes")
                            .hint(format!("{} {w} \"text\"", field.dotted())));
                    };
                    let s = Spanned {
                        value: s.clone(),
                        start: t.start,
                        end: t.end,
                    };
                    self.pos += 1;
                    return Ok(Expr::Str(field, op, s));
                }
                if w == "in"
                    || (w == "not"
                        && matches!(self.toks.get(self.pos + 1).map(|t| &t.tok), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("in")))
                {
                    let negated = w == "not";
                    self.pos += if negated { 2 } else { 1 };
                    if !matches!(self.peek(), Tok::LParen) {
                        return Err(self.unexpected("`(`").hint("in (\"a\", \"b\")"));
                    }
                    self.pos += 1;
                    let mut items = vec![self.lit()?];
                    while matches!(self.peek(), Tok::Comma) {
                        self.pos += 1;
                        items.push(self.lit()?);
                    }
                    if !matches!(self.peek(), Tok::RParen) {
                        return Err(self.unexpected("`,` or `)`").hint("in (\"a\", \"b\")"));
                    }
                    self.pos += 1;
                    return Ok(Expr::In(field, items, negated));
                }
                if matches!(w.as_str(), "and" | "or") {
                    return Ok(Expr::Truthy(field));
                }
                Err(self.unexpected("an operator").hint(
                    "==, !=, <, <=, >, >=, contains, startswith, endswith, matches, in (...)",
                ))
            }
            Tok::End | Tok::Pipe | Tok::RParen => Ok(Expr::Truthy(field)),
            _ => Err(self
                .unexpected("an operator")
                .hint("==, !=, <, <=, >, >=, contains, startswith, endswith, matches, in (...)")),
        }
    }

    fn lit(&mut self) -> Result<Spanned<Lit>, PipeError> {
        let t = self.cur();
        let value = match &t.tok {
            Tok::Str(s) => Lit::Str(s.clone()),
            Tok::Int(n) => Lit::Int(*n),
            Tok::Float(f) => Lit::Float(*f),
            Tok::Ident(w) if w.eq_ignore_ascii_case("true") => Lit::Bool(true),
            Tok::Ident(w) if w.eq_ignore_ascii_case("false") => Lit::Bool(false),
            Tok::Ident(w) if w.eq_ignore_ascii_case("null") => Lit::Null,
            Tok::Ident(w) => {
                return Err(PipeError::new(
                    t.start,
                    t.end,
                    format!("expected a value, found `{w}`"),
                )
                .hint(format!("text goes in quotes: \"{w}\"")))
            }
            _ => {
                return Err(self
                    .unexpected("a value")
                    .hint("\"text\", 42, 0.5, true, false, null"))
            }
        };
        let out = Spanned {
            value,
            start: t.start,
            end: t.end,
        };
        self.pos += 1;
        Ok(out)
    }
}

/// Milliseconds since the epoch of a time: RFC 3339 (`2026-01-02T03:04:05Z`, with an
/// optional fraction and offset), a date (`2026-01-02`, midnight UTC) or an epoch number
/// (the event model's own parser).
pub fn parse_time(s: &str) -> Option<i64> {
    vigil_event::time::parse_timestamp(s)
}

/// The candidate nearest to `word` by edit distance, if it is near enough to be a typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(word, c);
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .map(|(_, c)| c)
}

/// Edit distance with adjacent transpositions counting as one edit (a typo's `nmae`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        d[i * w] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_issue_example() {
        let p = parse(
            r#"process_activity | where actor.process.file.name == "curl" | count by device.hostname"#,
        )
        .expect("parses");
        assert_eq!(p.table.value, "process_activity");
        assert_eq!(p.stages.len(), 2);
        let Stage::Where(Expr::Cmp(f, CmpOp::Eq, lit)) = &p.stages[0] else {
            panic!("not a comparison: {:?}", p.stages[0]);
        };
        assert_eq!(f.dotted(), "actor.process.file.name");
        assert_eq!(lit.value, Lit::Str("curl".into()));
        let Stage::Count(by) = &p.stages[1] else {
            panic!("not a count");
        };
        assert_eq!(by[0].dotted(), "device.hostname");
    }

    #[test]
    fn and_binds_tighter_than_or_and_not_tightest() {
        let p = parse("t | where not a == 1 or b == 2 and c == 3").expect("parses");
        let Stage::Where(Expr::Or(l, r)) = &p.stages[0] else {
            panic!("{:?}", p.stages[0]);
        };
        assert!(matches!(**l, Expr::Not(_)));
        assert!(matches!(**r, Expr::And(_, _)));
    }

    #[test]
    fn times_parse() {
        assert_eq!(parse_time("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_time("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(parse_time("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_time("2026-12-06T22:00:00Z"), Some(1_796_594_400_000));
        assert_eq!(parse_time("1796594400000"), Some(1_796_594_400_000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2026-13-01"), None);
    }

    #[test]
    fn closest_finds_typos_only() {
        let c = ["name", "path", "cmd_line"];
        assert_eq!(closest("nmae", c), Some("name"));
        assert_eq!(closest("cmdline", c), Some("cmd_line"));
        assert_eq!(closest("zzzzzz", c), None);
    }

    #[test]
    fn durations_and_takes() {
        let p =
            parse("t | since 2h | take 5 | between '2026-01-01' and '2026-01-02'").expect("parses");
        assert_eq!(
            p.stages[0],
            Stage::Since(Spanned {
                value: 7_200_000,
                start: 10,
                end: 12
            })
        );
        assert_eq!(p.stages[1], Stage::Take(5));
        assert!(matches!(p.stages[2], Stage::Between(_, _)));
    }

    #[test]
    fn render_points_at_the_second_line() {
        let e = parse("process_activity\n| wher x == 1").expect_err("bad stage");
        assert_eq!(
            e.render("process_activity\n| wher x == 1"),
            "2:3: unknown stage `wher`\n  | wher x == 1\n    ^^^^\n  hint: did you mean `where`? stages: where, project, count, summarize, sort by, take, distinct, since, between"
        );
    }
}
