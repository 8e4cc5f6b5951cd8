//! Rule sets: `.yar`/`.yara` files (named, or found in directories) compiled into one
//! `yara_x::Rules`, one namespace per file so the same rule name in two files does not
//! clash. A file that does not compile is refused whole and reported with its file, line
//! and the compiler's reason; the others still load.

use crate::externals::EXTERNALS;
use std::path::{Path, PathBuf};

/// A rule file that could not be used: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The rule file.
    pub file: PathBuf,
    /// 1-based line of the error (0 when the file could not be read at all).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// yara-x's error code (`E009`) or `io`.
    pub code: String,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {} {}",
            self.file.display(),
            self.line,
            self.column,
            self.code,
            self.reason
        )
    }
}

/// Why no rule set could be built at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A named rule path does not exist or cannot be listed.
    #[error("rules {path}: {source}")]
    Path {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No rule file was found under the paths given.
    #[error("no .yar or .yara files under {0}")]
    NoRuleFiles(String),
    /// Every rule file was refused.
    #[error("none of the {} rule files loaded (first: {})", .0.len(), .0[0])]
    NothingLoaded(Vec<RuleError>),
}

/// What loading a set did: files loaded, files refused, warnings, time taken.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Rule files that compiled.
    pub loaded: Vec<PathBuf>,
    /// Rule files refused, each with its first error.
    pub refused: Vec<RuleError>,
    /// Compiler warnings (count; they do not refuse a file).
    pub warnings: usize,
    /// Rules in the set (public and private).
    pub rules: usize,
    /// Seconds spent reading and compiling.
    pub seconds: f64,
}

/// A compiled rule set, and where its rules came from.
pub struct RuleSet {
    rules: yara_x::Rules,
    /// Namespace (index) to rule file.
    files: Vec<PathBuf>,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("files", &self.files.len())
            .field("rules", &self.rules.iter().len())
            .finish()
    }
}

/// Whether a path names a YARA rule file by its extension.
pub fn is_rule_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yar" | "yara")
    )
}

/// The rule files a list of paths names: files as given (whatever their extension), and
/// every `.yar`/`.yara` file under directories, recursively, sorted; symlinks inside
/// directories are not followed.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|source| LoadError::Path {
            path: p.clone(),
            source,
        })?;
        if meta.is_dir() {
            let mut found = Vec::new();
            collect_dir(p, &mut found).map_err(|source| LoadError::Path {
                path: p.clone(),
                source,
            })?;
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    if out.is_empty() {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(LoadError::NoRuleFiles(names.join(", ")));
    }
    Ok(out)
}

fn collect_dir(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        let path = entry.path();
        if ty.is_dir() {
            collect_dir(&path, out)?;
        } else if ty.is_file() && is_rule_file(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// 1-based line and column of a byte offset in `text`.
pub fn line_col(text: &[u8], offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    (line, before.len() - start + 1)
}

fn compile_error(file: &Path, text: &[u8], err: &yara_x::errors::CompileError) -> RuleError {
    let offset = err.labels().next().map(|l| l.span().range().start);
    let (line, column) = offset.map_or((1, 1), |o| line_col(text, o));
    // The first label's text says what is wrong at that place; the title says what kind
    // of error it is. Both, on one line.
    let label = err
        .labels()
        .next()
        .map(|l| l.text().to_string())
        .unwrap_or_default();
    let title = err.title().to_string();
    let reason = if label.is_empty() || label == title {
        title
    } else {
        format!("{title}: {label}")
    };
    RuleError {
        file: file.to_path_buf(),
        line,
        column,
        code: err.code().to_string(),
        reason,
    }
}

impl RuleSet {
    /// Compiles rule sources given as (origin, text), one namespace per source, with the
    /// external variables of [`EXTERNALS`] declared as strings. Sources that do not
    /// compile are refused (reported in the [`LoadReport`]); the rest make the set.
    pub fn compile_sources(
        sources: &[(PathBuf, Vec<u8>)],
    ) -> Result<(RuleSet, LoadReport), LoadError> {
        let started = std::time::Instant::now();
        let mut report = LoadReport::default();
        let all: Vec<&(PathBuf, Vec<u8>)> = sources.iter().collect();
        let (mut compiler, refused) = Self::compile(&all);
        if !refused.is_empty() {
            // yara-x keeps the rules of a failing source that did compile; a refused file
            // must contribute nothing, so the set is compiled again without it (paid only
            // when some file is refused).
            let good: Vec<&(PathBuf, Vec<u8>)> = sources
                .iter()
                .filter(|(p, _)| !refused.iter().any(|r| &r.file == p))
                .collect();
            if good.is_empty() {
                return Err(LoadError::NothingLoaded(refused));
            }
            let (again, more) = Self::compile(&good);
            compiler = again;
            report.refused = refused;
            // Files that compiled beside a refused one compile alone too; should one not,
            // it is refused as well rather than half-loaded.
            report.refused.extend(more);
        }
        report.loaded = sources
            .iter()
            .map(|(p, _)| p.clone())
            .filter(|p| !report.refused.iter().any(|r| &r.file == p))
            .collect();
        report.warnings = compiler.0.warnings().len();
        let rules = compiler.0.build();
        report.rules = rules.iter().len();
        report.seconds = started.elapsed().as_secs_f64();
        Ok((
            RuleSet {
                rules,
                files: compiler.1,
            },
            report,
        ))
    }

    /// One compiler over `sources`, a namespace each (`f<index>` into the returned file
    /// list), and the sources it refused.
    fn compile(
        sources: &[&(PathBuf, Vec<u8>)],
    ) -> ((yara_x::Compiler<'static>, Vec<PathBuf>), Vec<RuleError>) {
        let mut compiler = yara_x::Compiler::new();
        for name in EXTERNALS {
            // Declaring a new string global cannot fail for these fixed names.
            let _ = compiler.define_global(name, "");
        }
        let mut files = Vec::new();
        let mut refused = Vec::new();
        for (i, (path, text)) in sources.iter().enumerate() {
            // A namespace per file: its index, so names need no escaping.
            compiler.new_namespace(&format!("f{i}"));
            if let Some(at) = crate::depth::too_deep(text) {
                // Refused before the compiler, whose recursion it would overflow.
                let (line, column) = line_col(text, at);
                refused.push(RuleError {
                    file: path.clone(),
                    line,
                    column,
                    code: "nesting".into(),
                    reason: format!(
                        "expressions nested more than {} deep (parentheses and unary \
                         operators)",
                        crate::depth::MAX_NESTING
                    ),
                });
                files.push(path.clone());
                continue;
            }
            let origin = path.display().to_string();
            let src = yara_x::SourceCode::from(text.as_slice()).with_origin(origin);
            if let Err(e) = compiler.add_source(src) {
                refused.push(compile_error(path, text, &e));
            }
            files.push(path.clone());
        }
        ((compiler, files), refused)
    }

    /// Reads and compiles the rule files `paths` names (see [`collect`]). A file that
    /// cannot be read is refused like one that does not compile.
    pub fn load(paths: &[PathBuf]) -> Result<(RuleSet, LoadReport), LoadError> {
        let started = std::time::Instant::now();
        let files = collect(paths)?;
        let mut sources = Vec::with_capacity(files.len());
        let mut unreadable = Vec::new();
        for f in files {
            match std::fs::read(&f) {
                Ok(text) => sources.push((f, text)),
                Err(e) => unreadable.push(RuleError {
                    file: f,
                    line: 0,
                    column: 0,
                    code: "io".into(),
                    reason: e.to_string(),
                }),
            }
        }
        let result = if sources.is_empty() {
            Err(LoadError::NothingLoaded(unreadable.clone()))
        } else {
            Self::compile_sources(&sources)
        };
        let (set, mut report) = result.map_err(|e| match e {
            LoadError::NothingLoaded(mut refused) => {
                refused.extend(unreadable.iter().cloned());
                LoadError::NothingLoaded(refused)
            }
            other => other,
        })?;
        report.refused.extend(unreadable);
        report.refused.sort_by(|a, b| a.file.cmp(&b.file));
        report.seconds = started.elapsed().as_secs_f64();
        Ok((set, report))
    }

    /// The compiled rules.
    pub fn rules(&self) -> &yara_x::Rules {
        &self.rules
    }

    /// The rule file a namespace (`f<index>`) was compiled from.
    pub fn file_of(&self, namespace: &str) -> Option<&Path> {
        let i: usize = namespace.strip_prefix('f')?.parse().ok()?;
        self.files.get(i).map(PathBuf::as_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(files: &[(&str, &str)]) -> Result<(RuleSet, LoadReport), LoadError> {
        let sources: Vec<(PathBuf, Vec<u8>)> = files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), t.as_bytes().to_vec()))
            .collect();
        RuleSet::compile_sources(&sources)
    }

    /// yara-x compiles expressions recursively: 2,000 nested parentheses aborted `vigil
    /// scan` with a stack overflow, 500 a 2 MiB thread (this test's).
    #[test]
    fn deeply_nested_conditions_are_refused_not_a_stack_overflow() {
        let parens = format!(
            "rule ok2 {{ condition: true }}\nrule deep {{\n  condition: {}true{}\n}}\n",
            "(".repeat(5000),
            ")".repeat(5000)
        );
        let unary = format!("rule neg {{ condition: {}1 == 3 }}\n", "-".repeat(3000));
        let (set, report) = compile(&[
            ("ok.yar", "rule ok { condition: true }"),
            ("parens.yar", &parens),
            ("unary.yar", &unary),
        ])
        .expect("the good file loads");
        assert_eq!(report.loaded, [PathBuf::from("ok.yar")]);
        let lines: Vec<String> = report.refused.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "parens.yar:3:114: nesting expressions nested more than 100 deep (parentheses and unary operators)",
                "unary.yar:1:123: nesting expressions nested more than 100 deep (parentheses and unary operators)",
            ]
        );
        assert_eq!(set.rules().iter().len(), 1);
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col(b"ab\ncd\nef", 0), (1, 1));
        assert_eq!(line_col(b"ab\ncd\nef", 4), (2, 2));
        assert_eq!(line_col(b"ab\ncd\nef", 6), (3, 1));
        assert_eq!(line_col(b"ab", 99), (1, 3));
    }

    #[test]
    fn same_rule_name_in_two_files_does_not_clash() {
        let (set, report) = compile(&[
            ("a.yar", "rule same { condition: true }"),
            ("b.yar", "rule same { condition: false }"),
        ])
        .expect("compiles");
        assert_eq!(report.loaded.len(), 2);
        assert!(report.refused.is_empty());
        assert_eq!(report.rules, 2);
        assert_eq!(set.file_of("f1"), Some(Path::new("b.yar")));
        assert_eq!(set.file_of("x"), None);
    }

    #[test]
    fn a_bad_file_is_refused_with_file_line_and_reason_and_the_rest_load() {
        let (_, report) = compile(&[
            ("good.yar", "rule good { condition: true }"),
            (
                "bad.yar",
                "rule ok { condition: true }\n\nrule bad {\n  condition:\n    nosuchthing\n}\n",
            ),
            (
                "syntax.yar",
                "rule s {\n  strings: $a = \"x\"\n  condition: $a and\n}\n",
            ),
        ])
        .expect("the good file loads");
        assert_eq!(report.loaded, vec![PathBuf::from("good.yar")]);
        let msgs: Vec<String> = report.refused.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            vec![
                "bad.yar:5:5: E009 unknown identifier `nosuchthing`: this identifier has not been declared",
                "syntax.yar:4:1: E001 syntax error: expecting expression or identifier, found `}`",
            ],
        );
        // A refused file contributes none of its rules, not even the good ones.
        assert_eq!(report.rules, 1);
    }

    #[test]
    fn externals_are_declared() {
        let (_, report) = compile(&[(
            "ext.yar",
            "rule e { condition: filename == \"a\" and filepath != \"\" and extension == \".x\" \
             and filetype == \"ELF\" and owner == \"root\" }",
        )])
        .expect("compiles");
        assert!(report.refused.is_empty(), "{:?}", report.refused);
    }

    #[test]
    fn nothing_loaded_is_an_error() {
        let err = compile(&[("x.yar", "rule {")]).expect_err("refused");
        assert!(
            matches!(&err, LoadError::NothingLoaded(v) if v.len() == 1 && v[0].line == 1),
            "{err}"
        );
    }

    #[test]
    fn invalid_utf8_is_refused_with_its_line() {
        let (_, report) = RuleSet::compile_sources(&[
            (
                PathBuf::from("ok.yar"),
                b"rule ok { condition: true }".to_vec(),
            ),
            (
                PathBuf::from("bin.yar"),
                b"rule a { condition: true }\n\xff".to_vec(),
            ),
        ])
        .expect("ok loads");
        assert_eq!(report.refused.len(), 1);
        assert_eq!(report.refused[0].line, 2);
    }
}
