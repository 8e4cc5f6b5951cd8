//! Sigma's Linux field names, mapped onto Vigil's OCSF events.
//!
//! The mapping is data ([`SIGMA_LINUX`], embedded from `data/sigma-linux.map`), read by
//! [`Taxonomy::parse`]. The rule engine resolves each Sigma field once, when it compiles
//! a rule, to the [`FieldPath`] it then looks up in every event of that logsource.

use crate::value::FieldPath;
use std::fmt;

/// The embedded Linux mapping.
pub const SIGMA_LINUX: &str = include_str!("../data/sigma-linux.map");

/// One Sigma logsource category and the OCSF events that belong to it.
#[derive(Debug, Clone)]
pub struct Category {
    /// Sigma category name (`process_creation`).
    pub name: String,
    /// The OCSF class of its events.
    pub class_uid: i32,
    /// The activities of that class that belong to the category.
    pub activity_ids: Vec<i32>,
    /// Sigma field name to OCSF attribute path, in file order.
    pub fields: Vec<(String, FieldPath)>,
    /// Events of the class and activity that still do not belong: those whose field
    /// has this integer value (`unless launch_type_id=2`: a fork is not a
    /// `process_creation`).
    pub unless: Vec<(FieldPath, i64)>,
}

impl Category {
    /// The OCSF path of a Sigma field: exact name first, then case-insensitively.
    pub fn field(&self, sigma_name: &str) -> Option<&FieldPath> {
        self.fields
            .iter()
            .find(|(n, _)| n == sigma_name)
            .or_else(|| {
                self.fields
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(sigma_name))
            })
            .map(|(_, p)| p)
    }

    /// Whether an event of this class and activity belongs to the category (before the
    /// `unless` conditions, which [`Category::admits`] checks).
    pub fn covers(&self, class_uid: i32, activity_id: i32) -> bool {
        self.class_uid == class_uid && self.activity_ids.contains(&activity_id)
    }

    /// Whether an event of a covered class and activity passes the `unless` conditions.
    pub fn admits(&self, event: &dyn crate::Event) -> bool {
        !self
            .unless
            .iter()
            .any(|(path, value)| event.field(path).and_then(|v| v.as_i64()) == Some(*value))
    }
}

/// A whole mapping: categories by name.
#[derive(Debug, Clone)]
pub struct Taxonomy {
    /// The categories, in file order.
    pub categories: Vec<Category>,
}

/// A line of a mapping file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxonomyError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for TaxonomyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for TaxonomyError {}

impl Taxonomy {
    /// The embedded Linux mapping. It is checked by this crate's tests, so this cannot fail
    /// in a released build; an error is still returned rather than a panic.
    pub fn linux() -> Result<Self, TaxonomyError> {
        Self::parse(SIGMA_LINUX)
    }

    /// Reads a mapping in the `sigma-linux.map` format.
    pub fn parse(text: &str) -> Result<Self, TaxonomyError> {
        let mut categories: Vec<Category> = Vec::new();
        for (idx, raw) in text.lines().enumerate() {
            let line = idx + 1;
            let err = |reason: String| TaxonomyError { line, reason };
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let words: Vec<&str> = content.split_whitespace().collect();
            if words[0] == "category" {
                let (head, unless_words) = match words.iter().position(|w| *w == "unless") {
                    Some(i) => (&words[..i], &words[i + 1..]),
                    None => (&words[..], &[][..]),
                };
                let [_, name, class, acts @ ..] = head else {
                    return Err(err("`category` needs a name and a class_uid".into()));
                };
                if words.contains(&"unless") && unless_words.is_empty() {
                    return Err(err("`unless` needs FIELD=INTEGER conditions".into()));
                }
                let unless = unless_words
                    .iter()
                    .map(|w| {
                        let (f, v) = w
                            .split_once('=')
                            .ok_or_else(|| err(format!("`{w}` is not FIELD=INTEGER")))?;
                        let v = v
                            .parse::<i64>()
                            .map_err(|_| err(format!("`{v}` in `{w}` is not an integer")))?;
                        Ok((FieldPath::new(f), v))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if acts.is_empty() {
                    return Err(err(format!("category `{name}` names no activity_id")));
                }
                if categories.iter().any(|c| c.name == *name) {
                    return Err(err(format!("category `{name}` is defined twice")));
                }
                let class_uid = class
                    .parse()
                    .map_err(|_| err(format!("class_uid `{class}` is not a number")))?;
                let activity_ids = acts
                    .iter()
                    .map(|a| {
                        a.parse()
                            .map_err(|_| err(format!("activity_id `{a}` is not a number")))
                    })
                    .collect::<Result<_, _>>()?;
                categories.push(Category {
                    name: name.to_string(),
                    class_uid,
                    activity_ids,
                    fields: Vec::new(),
                    unless,
                });
                continue;
            }
            let [sigma, path] = words.as_slice() else {
                return Err(err(format!(
                    "expected `SigmaField ocsf.path`, found {} words",
                    words.len()
                )));
            };
            let Some(cat) = categories.last_mut() else {
                return Err(err("field mapping before any `category` line".into()));
            };
            if cat.fields.iter().any(|(n, _)| n == sigma) {
                return Err(err(format!(
                    "field `{sigma}` mapped twice in `{}`",
                    cat.name
                )));
            }
            cat.fields.push((sigma.to_string(), FieldPath::new(path)));
        }
        Ok(Taxonomy { categories })
    }

    /// A category by its Sigma name.
    pub fn category(&self, name: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.name == name)
    }

    /// The categories an event of this class and activity belongs to.
    pub fn categories_of(
        &self,
        class_uid: i32,
        activity_id: i32,
    ) -> impl Iterator<Item = &Category> {
        self.categories
            .iter()
            .filter(move |c| c.covers(class_uid, activity_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_linux_mapping_parses() {
        let t = Taxonomy::linux().expect("embedded mapping");
        let pc = t.category("process_creation").expect("process_creation");
        assert_eq!(pc.class_uid, 1007);
        assert_eq!(
            pc.field("Image").map(FieldPath::as_str),
            Some("process.file.path")
        );
        assert_eq!(
            pc.field("image").map(FieldPath::as_str),
            Some("process.file.path")
        );
        assert!(pc.field("NoSuchField").is_none());
        assert_eq!(
            t.categories_of(4001, 1).next().map(|c| c.name.as_str()),
            Some("network_connection")
        );
    }

    #[test]
    fn bad_mapping_lines_name_the_line() {
        let e = Taxonomy::parse("Image process.file.path\n").unwrap_err();
        assert_eq!(e.line, 1);
        let e = Taxonomy::parse("category a 1007 1\n\nImage x y\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.reason.contains("3 words"), "{e}");
        let e = Taxonomy::parse("category a x 1\n").unwrap_err();
        assert!(e.reason.contains("not a number"));
        let e = Taxonomy::parse("category a 1007 1 unless launch_type_id\n").unwrap_err();
        assert!(e.reason.contains("FIELD=INTEGER"), "{e}");
        let e = Taxonomy::parse("category a 1007 1 unless\n").unwrap_err();
        assert!(e.reason.contains("needs FIELD=INTEGER"), "{e}");
        let e = Taxonomy::parse("category a 1\n").unwrap_err();
        assert!(
            e.reason.contains("needs a name") || e.reason.contains("no activity"),
            "{e}"
        );
    }
}
