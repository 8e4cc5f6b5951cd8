//! DataFusion's planning errors made readable: the position of a SQL syntax error, a
//! missing field or table with the nearest real one, each rendered with a caret.

use crate::compile::{all_paths, Tables};
use crate::pipe::{closest, render_at};

/// A readable version of `msg` (a DataFusion error about `text`), if it is one of the
/// kinds this knows.
pub(crate) fn explain(tables: &dyn Tables, text: &str, msg: &str) -> Option<String> {
    if let Some(i) = msg.find(" at Line: ") {
        // sqlparser: "... at Line: L, Column: C"
        let tail = &msg[i + " at Line: ".len()..];
        let (line, rest) = tail.split_once(", Column: ")?;
        let col: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let (line, col): (usize, usize) = (line.trim().parse().ok()?, col.parse().ok()?);
        let offset = offset_of(text, line, col)?;
        let what = msg[..i]
            .trim_start_matches("SQL error: ParserError(\"")
            .trim();
        let what = what.strip_prefix("sql parser error: ").unwrap_or(what);
        let end = word_end(text, offset);
        return Some(render_at(text, offset, end, &format!("syntax error: {what}"), Some("see the SQL syntax of DataFusion; nested fields are dotted paths: actor.process.file.name")));
    }
    if let Some(rest) = msg.split("No field named ").nth(1) {
        let name = rest
            .split(['.', ' '])
            .next()
            .unwrap_or(rest)
            .trim_matches(|c| c == '"' || c == '\'' || c == '`');
        return Some(missing(tables, text, name, "field"));
    }
    if let Some(rest) = msg.split("table '").nth(1) {
        if msg.contains("not found") {
            let full = rest.split('\'').next().unwrap_or(rest);
            let name = full.rsplit('.').next().unwrap_or(full);
            return Some(missing(tables, text, name, "table"));
        }
    }
    None
}

fn missing(tables: &dyn Tables, text: &str, name: &str, kind: &str) -> String {
    let (start, end) = match find_word(text, name) {
        Some(i) => (i, i + name.len()),
        None => (0, 0),
    };
    let names = tables.table_names();
    let candidates: Vec<String> = if kind == "table" {
        names.clone()
    } else {
        names
            .iter()
            .filter_map(|t| tables.table_schema(t))
            .flat_map(|s| all_paths(s.fields()))
            .collect()
    };
    // The field as written with any dotted prefix before it in the text.
    let (written_start, written) = if end > start {
        dotted_at(text, start, end)
    } else {
        (start, name.to_string())
    };
    let guess = closest(&written, candidates.iter().map(String::as_str))
        .or_else(|| closest(name, candidates.iter().map(String::as_str)));
    let table_hint = names
        .first()
        .map(|t| format!(" in {t}"))
        .unwrap_or_default();
    let hint = match guess {
        Some(g) => format!("did you mean {g}?"),
        None if kind == "table" => format!("tables: {}", names.join(", ")),
        None => "list the fields with: DESCRIBE <table>".to_string(),
    };
    let (s, e) = (written_start, written_start + written.len());
    let _ = table_hint;
    render_at(text, s, e, &format!("no {kind} {written}"), Some(&hint))
}

/// The whole dotted path around `start..end` (`devise.hostname` around `devise`), and
/// where it starts.
fn dotted_at(text: &str, start: usize, end: usize) -> (usize, String) {
    let b = text.as_bytes();
    let part = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'.';
    let mut s = start;
    while s > 0 && part(b[s - 1]) {
        s -= 1;
    }
    let mut e = end;
    while e < b.len() && part(b[e]) {
        e += 1;
    }
    (s, text[s..e].trim_end_matches('.').to_string())
}

fn find_word(text: &str, word: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut from = 0;
    while let Some(i) = text[from..].find(word) {
        let i = from + i;
        let before_ok = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        let j = i + word.len();
        let after_ok = j >= b.len() || !(b[j].is_ascii_alphanumeric() || b[j] == b'_');
        if before_ok && after_ok {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

fn offset_of(text: &str, line: usize, col: usize) -> Option<usize> {
    let mut offset = 0;
    for (i, l) in text.split('\n').enumerate() {
        if i + 1 == line {
            let byte = l
                .char_indices()
                .nth(col.saturating_sub(1))
                .map_or(l.len(), |(b, _)| b);
            return Some(offset + byte);
        }
        offset += l.len() + 1;
    }
    None
}

fn word_end(text: &str, start: usize) -> usize {
    let rest = &text[start.min(text.len())..];
    start
        + rest
            .find(|c: char| c.is_whitespace())
            .unwrap_or(rest.len())
            .max(1)
            .min(rest.len())
}
