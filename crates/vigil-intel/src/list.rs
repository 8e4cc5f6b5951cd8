//! Plain lists: one indicator per line, its kind recognised from its form. A line may
//! carry more after the indicator (separated by a space, tab, `,` or `;`: a CSV export's
//! other columns, a note); `#` starts a comment; blank lines are skipped.

use crate::error::IntelError;
use crate::value::{parse_domain, parse_hash, parse_ip, Collect, Meta};

/// Longest indicator shown whole in an error.
const SHOWN: usize = 80;

pub(crate) fn load(into: &mut dyn Collect, source: &str, text: &str) {
    let meta = into.meta(Meta {
        source: source.to_string(),
        ..Meta::default()
    });
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        let token = line
            .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
            .next()
            .unwrap_or_default()
            .trim_matches(|c| c == '"' || c == '\'');
        if token.is_empty() {
            continue;
        }
        match parse_token(token) {
            Ok(v) => into.value(v, meta),
            Err(message) => into.problem(IntelError::Line {
                source_name: source.to_string(),
                line: i + 1,
                message,
            }),
        }
    }
}

/// One indicator of a list: a hash, an address or network, or a domain.
pub(crate) fn parse_token(token: &str) -> Result<crate::value::Value, String> {
    let lower = token.to_ascii_lowercase();
    if let Some(v) = parse_hash(&lower) {
        return Ok(v);
    }
    if let Some(v) = parse_ip(token)? {
        return Ok(v);
    }
    let shown = || {
        let mut s: String = token.chars().take(SHOWN).collect();
        if token.chars().count() > SHOWN {
            s.push('…');
        }
        s
    };
    if token.contains("://") {
        return Err(format!(
            "{:?}: URL indicators are not matched (no event carries a URL); list its host as a domain instead",
            shown()
        ));
    }
    if lower.len() > 64 && lower.bytes().all(|b| b.is_ascii_hexdigit()) || lower.len() == 128 {
        return Err(format!(
            "{:?}: a hash of {} hex digits is not SHA-256, SHA-1 or MD5",
            shown(),
            lower.len()
        ));
    }
    parse_domain(token).map_err(|_| {
        format!(
            "{:?} is not a hash (SHA-256, SHA-1, MD5), an address, a network or a domain",
            shown()
        )
    })
}

#[cfg(test)]
mod tests {
    use crate::{Format, IntelSet};

    #[test]
    fn comments_columns_and_blank_lines_are_skipped() {
        let mut s = IntelSet::new();
        let text = "\u{feff}# feed v1\n\n203.0.113.9  # c2\nevil.example,2024-01-01,botnet\n\"198.51.100.0/24\";x\n";
        let r = s.add("feed.csv", text, Format::List);
        assert_eq!(r.added, 3, "{:?}", r.problems);
        assert!(r.problems.is_empty());
        assert!(s.match_domain("www.evil.example").is_some());
        assert!(s.match_ip("198.51.100.77".parse().expect("ip")).is_some());
    }

    #[test]
    fn bad_lines_are_reported_with_their_line_and_the_rest_loads() {
        let mut s = IntelSet::new();
        let text = "1.2.3.4\nhttp://x.example/a\n10.0.0.0/33\ncom\nbad!.example\nevil.example\n";
        let r = s.add("bad.txt", text, Format::List);
        assert_eq!(r.added, 2, "{:?}", r.problems);
        let lines: Vec<String> = r.problems.iter().map(ToString::to_string).collect();
        assert!(
            lines[0].starts_with("bad.txt:2: \"http://x.example/a\": URL indicators"),
            "{lines:?}"
        );
        assert!(
            lines[1].starts_with("bad.txt:3: bad prefix length /33"),
            "{lines:?}"
        );
        assert!(
            lines[2].starts_with("bad.txt:4: \"com\" is not a hash"),
            "{lines:?}"
        );
        assert!(
            lines[3].starts_with("bad.txt:5: \"bad!.example\" is not a hash"),
            "{lines:?}"
        );
        assert_eq!(r.problem_count(), 4, "{lines:?}");
    }

    #[test]
    fn a_hostile_line_is_reported_short() {
        let mut s = IntelSet::new();
        let long = "x/".repeat(100_000);
        let r = s.add("h.txt", &long, Format::List);
        assert_eq!(r.added, 0);
        assert!(r.problems[0].to_string().len() < 300, "{}", r.problems[0]);
    }
}
