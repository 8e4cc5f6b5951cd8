//! A bound on how deeply a rule file's expressions nest, checked before the compiler
//! sees the file. yara-x parses and compiles expressions recursively: a condition of a
//! few thousand nested parentheses, or of a few thousand unary `-` or `~` in a row,
//! overflows a thread's stack and aborts the process (measured with yara-x 1.22.1:
//! 2,000 parentheses abort `vigil scan` on an 8 MiB main thread, 500 abort a 2 MiB
//! thread). Such a file is refused with its line and column instead.

/// The deepest nesting a rule file may have: parentheses open at once, plus unary
/// operators in a row. Real rule sets stay well below it (signature-base, 741 files:
/// under 40, regular expressions included).
pub const MAX_NESTING: usize = 100;

/// The byte offset at which `text` nests deeper than [`MAX_NESTING`], if it does.
/// Counted outside string literals, comments and regular expressions (which yara-x
/// bounds itself), so a parenthesis in them is not one.
pub fn too_deep(text: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut unary = 0usize;
    // The last significant byte and word: a `/` after `=` or `matches` opens a regex.
    let mut last = 0u8;
    let mut word: &[u8] = b"";
    let mut i = 0usize;
    let n = text.len();
    while i < n {
        let b = text[i];
        match b {
            b'"' => {
                i += 1;
                while i < n && text[i] != b'"' {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
                unary = 0;
            }
            b'/' if text.get(i + 1) == Some(&b'/') => {
                while i < n && text[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if text.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < n && !(text[i] == b'*' && text[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'/' if last == b'=' || word == b"matches" => {
                i += 1;
                let mut class = false;
                while i < n && (class || text[i] != b'/') && text[i] != b'\n' {
                    match text[i] {
                        b'\\' => i += 1,
                        b'[' => class = true,
                        b']' => class = false,
                        _ => {}
                    }
                    i += 1;
                }
                unary = 0;
            }
            b'(' => depth += 1,
            b')' => {
                depth = depth.saturating_sub(1);
                unary = 0;
            }
            b'-' | b'~' => unary += 1,
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ => unary = 0,
        }
        if depth + unary > MAX_NESTING {
            return Some(i.min(n.saturating_sub(1)));
        }
        if i < n && !text[i].is_ascii_whitespace() {
            last = text[i];
            if text[i].is_ascii_alphanumeric() || text[i] == b'_' {
                let start = text[..=i]
                    .iter()
                    .rposition(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
                    .map_or(0, |p| p + 1);
                word = &text[start..=i];
            } else {
                word = b"";
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_counted_outside_strings_comments_and_regexes() {
        let deep = |d: usize| {
            format!(
                "rule r {{ condition: {}true{} }}",
                "(".repeat(d),
                ")".repeat(d)
            )
        };
        assert_eq!(too_deep(deep(MAX_NESTING).as_bytes()), None);
        let at = too_deep(deep(MAX_NESTING + 1).as_bytes()).expect("too deep");
        assert_eq!(at, "rule r { condition: ".len() + MAX_NESTING);
        let unary = format!("rule r {{ condition: {}1 == 3 }}", "- ~".repeat(60));
        assert!(too_deep(unary.as_bytes()).is_some());
        // Parentheses that are not the condition's: in strings, comments, regexes,
        // many rules of them.
        let mut many = String::new();
        for i in 0..500 {
            many.push_str(&format!(
                "rule r{i} {{ strings: $a = \"((((\" $b = /[(]x\\(/ // ((((\n\
                 /* (((( */ condition: $a and $b and filesize - 1 > 2 and \
                 pe.sections[0].name matches /((/ }}\n"
            ));
        }
        assert_eq!(too_deep(many.as_bytes()), None);
    }

    /// Every rule file of the shared sets is within the bound (the bound refuses only
    /// what a person would not write).
    #[test]
    fn the_shared_rule_sets_are_within_the_bound() {
        let Some(root) = vigil_testdata::corpus("yara") else {
            vigil_testdata::skip("no shared YARA rule sets");
            return;
        };
        // Listed here rather than through `rules::collect`: `rules` uses this module.
        fn list(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).expect("listable").flatten() {
                let p = e.path();
                if p.is_dir() {
                    list(&p, out);
                } else if p.extension().is_some_and(|x| x == "yar" || x == "yara") {
                    out.push(p);
                }
            }
        }
        let mut files = Vec::new();
        list(&root, &mut files);
        assert!(files.len() > 100, "{}", files.len());
        for f in files {
            let text = std::fs::read(&f).expect("readable");
            assert_eq!(too_deep(&text), None, "{}", f.display());
        }
    }
}
