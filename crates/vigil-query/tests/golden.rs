//! The parser's error messages, pinned: each `tests/golden/*.pipe` query (one per file)
//! must fail with exactly the text in the `.err` file beside it. `UPDATE_GOLDEN=1`
//! rewrites the `.err` files (then review the diff).

use std::path::Path;

#[test]
fn parser_errors_match_the_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("golden dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pipe"))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "golden files missing");
    let mut wrong = Vec::new();
    for p in names {
        let query = std::fs::read_to_string(&p).expect("read");
        let query = query.strip_suffix('\n').unwrap_or(&query);
        let got = match vigil_query::pipe::parse(query) {
            Ok(parsed) => format!("parsed: {parsed:?}"),
            Err(e) => e.render(query),
        };
        let err = p.with_extension("err");
        if update {
            std::fs::write(&err, format!("{got}\n")).expect("write");
            continue;
        }
        let want = std::fs::read_to_string(&err).unwrap_or_default();
        if want.trim_end_matches('\n') != got {
            wrong.push(format!(
                "{}:\n--- want\n{want}\n--- got\n{got}\n",
                p.display()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
