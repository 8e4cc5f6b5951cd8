//! Embeds Vigil's rule pack (`rules/` at the workspace root) into the crate: every
//! `.yml` file under it, except in directories named `tests`, as (path, text) pairs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "tests") {
                continue;
            }
            // A directory's own time changes when files are added to or removed from it.
            println!("cargo::rerun-if-changed={}", p.display());
            walk(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
            out.push(p);
        }
    }
    Ok(())
}

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let workspace = manifest.join("../..");
    let pack = workspace.join("rules");
    println!("cargo::rerun-if-changed={}", pack.display());
    let mut files = Vec::new();
    if pack.is_dir() {
        walk(&pack, &mut files).expect("the rule pack directory is readable");
    }
    let mut code = String::from("/// Vigil's rule pack: (path from the workspace root, text).\n");
    code.push_str("pub static BUILTIN: &[(&str, &str)] = &[\n");
    for f in &files {
        println!("cargo::rerun-if-changed={}", f.display());
        let name = f
            .strip_prefix(&workspace)
            .unwrap_or(f)
            .to_string_lossy()
            .replace('\\', "/");
        let abs = f.canonicalize().expect("rule file path");
        writeln!(
            code,
            "    ({name:?}, include_str!({:?})),",
            abs.display().to_string()
        )
        .expect("writing to a String");
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    std::fs::write(out.join("builtin_rules.rs"), code).expect("OUT_DIR is writable");
}
