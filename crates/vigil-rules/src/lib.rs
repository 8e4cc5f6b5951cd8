//! Where Vigil's Sigma rules come from, read into a [`vigil_sigma::Loader`]:
//!
//! * rule files, and directories searched recursively for `*.yml` / `*.yaml`
//!   ([`collect`]), as `vigil hunt`, `vigil rules check` and `vigil agent --rules` take
//!   them;
//! * Vigil's own Linux rule pack (`rules/` in the repository), compiled into the binary
//!   ([`BUILTIN`]), so an agent detects with no file around it.
//!
//! Unreadable files and directories are reported ([`SourceError`], naming the path) and
//! skipped; rules that fail to parse or compile are the engine's
//! [`vigil_sigma::RuleError`]s (`file:line: reason`). Neither stops the others loading.

use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));

/// A rule source that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A file or directory could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The engine configuration (placeholders) is invalid.
    #[error("invalid rule engine configuration: {0}")]
    Config(#[from] vigil_sigma::ConfigError),
}

/// Which rules to load.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Vigil's rule pack ([`BUILTIN`]).
    pub builtin: bool,
    /// Rule files, and directories searched recursively.
    pub paths: Vec<PathBuf>,
}

/// Rules loaded and built.
pub struct Loaded {
    /// The engine, the rules that failed and the warnings.
    pub built: vigil_sigma::Built,
    /// Rule files read (the pack's included).
    pub files: usize,
    /// Files and directories that could not be read.
    pub unreadable: Vec<SourceError>,
}

fn is_rule_file(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml"))
}

/// The rule files under `paths`: a file as given, a directory walked recursively for
/// `*.yml` and `*.yaml` (sorted, symbolic links followed, a link back into a directory
/// being walked not). Paths that cannot be read are returned as errors.
pub fn collect(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<SourceError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, &mut files, &mut errors, &mut Vec::new()),
            Ok(_) => files.push(p.clone()),
            Err(source) => errors.push(SourceError::Read {
                path: p.clone(),
                source,
            }),
        }
    }
    (files, errors)
}

fn walk(
    dir: &Path,
    files: &mut Vec<PathBuf>,
    errors: &mut Vec<SourceError>,
    open: &mut Vec<PathBuf>,
) {
    let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if open.contains(&real) {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(source) => {
            errors.push(SourceError::Read {
                path: dir.to_path_buf(),
                source,
            });
            return;
        }
    };
    open.push(real);
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            walk(&p, files, errors, open);
        } else if is_rule_file(&p) {
            files.push(p);
        }
    }
    open.pop();
}

/// Rule texts read from their sources, before they are compiled.
#[derive(Debug, Default)]
pub struct Texts {
    /// (source name, text): the pack's rules by their path in the repository, files by
    /// their path as given.
    pub texts: Vec<(String, std::borrow::Cow<'static, str>)>,
    /// Files and directories that could not be read.
    pub unreadable: Vec<SourceError>,
}

/// Reads the rule texts of `sources`: the pack's first, then every file found.
pub fn read(sources: &Sources) -> Texts {
    let mut out = Texts::default();
    if sources.builtin {
        for (name, text) in BUILTIN {
            out.texts
                .push(((*name).to_string(), std::borrow::Cow::Borrowed(*text)));
        }
    }
    let (paths, unreadable) = collect(&sources.paths);
    out.unreadable = unreadable;
    for p in paths {
        match std::fs::read_to_string(&p) {
            Ok(text) => out.texts.push((p.display().to_string(), text.into())),
            Err(source) => out.unreadable.push(SourceError::Read { path: p, source }),
        }
    }
    out
}

/// Compiles rule texts into an engine built with `config`.
pub fn build<'t>(
    texts: impl IntoIterator<Item = (&'t str, &'t str)>,
    config: vigil_sigma::Config,
) -> Result<vigil_sigma::Built, SourceError> {
    let mut loader = vigil_sigma::Loader::with_config(config)?;
    for (name, text) in texts {
        loader.add(name, text);
    }
    Ok(loader.build())
}

/// Reads and compiles the rules of `sources` ([`read`], then [`build`]). Every file is
/// read and added even when others fail; what failed is in [`Loaded::unreadable`] and
/// `built.errors`.
pub fn load(sources: &Sources, config: vigil_sigma::Config) -> Result<Loaded, SourceError> {
    let Texts { texts, unreadable } = read(sources);
    let built = build(texts.iter().map(|(n, t)| (n.as_str(), &**t)), config)?;
    Ok(Loaded {
        built,
        files: texts.len(),
        unreadable,
    })
}
