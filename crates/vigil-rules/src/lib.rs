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
    /// A path named as a rule file is not a regular file (a FIFO or a device would
    /// block or never end).
    #[error("{}: not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
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
/// being walked not). Paths that cannot be read, and rule files that are not regular
/// files, are returned as errors.
pub fn collect(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<SourceError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, &mut files, &mut errors, &mut Vec::new()),
            Ok(m) if m.is_file() => files.push(p.clone()),
            Ok(_) => errors.push(SourceError::NotAFile { path: p.clone() }),
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
            if p.is_file() {
                files.push(p);
            } else {
                errors.push(SourceError::NotAFile { path: p });
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "vigil-rules-{}-{name}-{}",
            std::process::id(),
            nonce()
        ));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    /// A counter: distinct directories for the tests of this process.
    fn nonce() -> u64 {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    const RULE: &str = "title: T\nlogsource: {product: linux, category: process_creation}\n\
                        detection: {s: {Image: /x}, condition: s}\n";

    #[test]
    fn directories_are_walked_sorted_and_odd_entries_reported() {
        let d = tmp("walk");
        std::fs::create_dir_all(d.join("b/c")).expect("dirs");
        std::fs::write(d.join("b/c/z.yml"), RULE).expect("write");
        std::fs::write(d.join("a.yaml"), RULE).expect("write");
        std::fs::write(d.join("notes.txt"), "not a rule").expect("write");
        // A FIFO named like a rule would block a reader forever.
        let fifo = d.join("pipe.yml");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        // A link back up must not loop.
        std::os::unix::fs::symlink(&d, d.join("b/loop")).expect("symlink");
        let missing = d.join("missing");
        let (files, errors) = collect(&[d.clone(), missing.clone()]);
        let rel: Vec<String> = files
            .iter()
            .map(|f| f.strip_prefix(&d).unwrap_or(f).display().to_string())
            .collect();
        assert_eq!(rel, ["a.yaml", "b/c/z.yml"]);
        let msgs: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert_eq!(msgs[0], format!("{}: not a regular file", fifo.display()));
        assert!(msgs[1].starts_with(&format!("{}: cannot read: ", missing.display())));
        let loaded = load(
            &Sources {
                builtin: false,
                paths: vec![d.clone()],
            },
            vigil_sigma::Config::default(),
        )
        .expect("loads");
        assert_eq!((loaded.files, loaded.built.loaded), (2, 2));
        assert_eq!(loaded.unreadable.len(), 1);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn the_builtin_pack_is_embedded_with_its_repository_paths_and_loads_cleanly() {
        assert!(BUILTIN.len() >= 50, "the pack: {} files", BUILTIN.len());
        let loaded = load(
            &Sources {
                builtin: true,
                paths: Vec::new(),
            },
            vigil_sigma::Config::default(),
        )
        .expect("loads");
        assert!(loaded.built.errors.is_empty(), "{:?}", loaded.built.errors);
        assert!(
            loaded.built.warnings.is_empty(),
            "{:?}",
            loaded.built.warnings
        );
        assert!(loaded.built.engine.warnings().is_empty());
        assert!(loaded.built.loaded >= BUILTIN.len());
        for (name, text) in BUILTIN {
            assert!(name.starts_with("rules/"), "{name}");
            assert!(!name.contains("/tests/"), "{name}");
            let on_disk = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(name);
            assert_eq!(
                std::fs::read_to_string(&on_disk).expect("the pack file"),
                *text,
                "{name} embedded as it is"
            );
        }
    }
}
