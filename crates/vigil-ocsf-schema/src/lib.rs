//! The OCSF schema, loaded from its source tree, and a validator for events.
//!
//! [`Schema::load`] reads an OCSF schema source directory (`dictionary.json`,
//! `categories.json`, `objects/`, `events/`, `profiles/`), resolves every class and object
//! through its `extends` chain and `$include`d profiles, and merges each attribute's
//! definition with the dictionary's. [`Schema::validate`] then checks one event:
//!
//! * `class_uid` names a class; `category_uid` is that class's category (its only
//!   defined value);
//!   `type_uid = class_uid * 100 + activity_id`;
//! * every required attribute is present, in the event and in every object inside it,
//!   and object constraints (`at_least_one`, `just_one`) hold;
//! * no attribute is unknown to its class or object, and attributes that belong to a
//!   profile appear only when the event lists that profile in `metadata.profiles`;
//! * every value has its attribute's type (string, integer in range, long, float,
//!   boolean, object, array), IP addresses and ports are valid, enum ids are defined,
//!   and an enum's caption sibling, when present, matches the id.
//!
//! This crate reads files only in [`Schema::load`]; validation is pure.

use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

/// Why a schema directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file is not valid JSON.
    #[error("{path}:{line}:{column}: invalid JSON")]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// A file is JSON but not a schema definition the loader understands.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// How much an attribute is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Must be present.
    Required,
    /// Should be present.
    Recommended,
    /// May be present.
    Optional,
}

/// The resolved type of an attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrType {
    /// A scalar type: the dictionary type's name (`port_t`) and the primitive it is
    /// built on (`integer_t`).
    Scalar {
        /// The declared type, e.g. `ip_t`.
        name: String,
        /// The primitive type it reduces to, e.g. `string_t`.
        base: String,
    },
    /// An object, by name.
    Object(String),
}

/// One attribute of a class or object, fully resolved.
#[derive(Debug, Clone)]
pub struct Attribute {
    /// The attribute's type.
    pub ty: AttrType,
    /// Whether the value is an array of `ty`.
    pub is_array: bool,
    /// How much it is wanted.
    pub requirement: Requirement,
    /// Enum ids and their captions, when the attribute is an enum.
    pub enum_values: Option<BTreeMap<i64, String>>,
    /// The attribute holding the enum's caption.
    pub sibling: Option<String>,
    /// The profile the attribute belongs to, if any.
    pub profile: Option<String>,
}

/// Constraints over an object's attributes.
#[derive(Debug, Clone, Default)]
pub struct Constraints {
    /// At least one of these must be present.
    pub at_least_one: Vec<String>,
    /// Exactly one of these must be present.
    pub just_one: Vec<String>,
}

/// A class or object: its attributes and constraints.
#[derive(Debug, Clone, Default)]
pub struct Definition {
    /// Name (`process_activity`, `process`).
    pub name: String,
    /// Attributes by name.
    pub attributes: BTreeMap<String, Attribute>,
    /// Constraints.
    pub constraints: Constraints,
}

/// An event class.
#[derive(Debug, Clone)]
pub struct Class {
    /// `class_uid`.
    pub uid: i64,
    /// `category_uid`.
    pub category_uid: i64,
    /// Caption (`Process Activity`).
    pub caption: String,
    /// Attributes and constraints.
    pub def: Definition,
}

/// A loaded OCSF schema.
#[derive(Debug, Clone)]
pub struct Schema {
    /// The schema version (`1.8.0`).
    pub version: String,
    classes: HashMap<i64, Class>,
    objects: HashMap<String, Definition>,
}

/// One way an event breaks the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Where: a path like `process.file.hashes[0].algorithm_id` (empty for the event).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Deeper nesting than this is reported, not followed (hostile input).
const MAX_DEPTH: usize = 64;

/// Definitions by name, each with the file it came from.
type DefTable = HashMap<String, (PathBuf, Map<String, Json>)>;

/// A definition's raw attributes (after `extends` and `$include`), its constraints and
/// its category.
type RawDefinition = (
    BTreeMap<String, Map<String, Json>>,
    Constraints,
    Option<String>,
);

/// Raw JSON definitions read from disk, before resolution.
struct Source {
    root: PathBuf,
    dictionary: Map<String, Json>,
    types: Map<String, Json>,
    categories: Map<String, Json>,
    objects: DefTable,
    events: DefTable,
    observable_ids: BTreeMap<i64, String>,
}

fn read_json(path: &Path) -> Result<Json, SchemaError> {
    let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| SchemaError::Json {
        path: path.to_path_buf(),
        line: source.line(),
        column: source.column(),
        source,
    })
}

fn read_object(path: &Path) -> Result<Map<String, Json>, SchemaError> {
    match read_json(path)? {
        Json::Object(m) => Ok(m),
        _ => Err(SchemaError::Invalid {
            path: path.to_path_buf(),
            reason: "top level is not a JSON object".into(),
        }),
    }
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SchemaError> {
    let entries = std::fs::read_dir(dir).map_err(|source| SchemaError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| SchemaError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.is_dir() {
            json_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    out.sort();
    Ok(())
}

fn get_map<'a>(m: &'a Map<String, Json>, key: &str) -> Option<&'a Map<String, Json>> {
    m.get(key).and_then(Json::as_object)
}

fn get_str<'a>(m: &'a Map<String, Json>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Json::as_str)
}

/// Merges attribute definition `over` into `base`: enum maps are united, every other
/// key of `over` replaces `base`'s.
fn merge_attr(base: &mut Map<String, Json>, over: &Map<String, Json>) {
    for (k, v) in over {
        match (k.as_str(), base.get_mut(k), v) {
            ("enum", Some(Json::Object(existing)), Json::Object(new)) => {
                for (ek, ev) in new {
                    existing.insert(ek.clone(), ev.clone());
                }
            }
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

fn collect_observables(v: &Json, key: Option<&str>, out: &mut BTreeMap<i64, String>) {
    if let Json::Object(m) = v {
        if let Some(id) = m.get("observable").and_then(Json::as_i64) {
            let caption = get_str(m, "caption").or(key).unwrap_or("").to_string();
            out.entry(id).or_insert(caption);
        }
        for (k, child) in m {
            collect_observables(child, Some(k), out);
        }
    }
}

impl Source {
    fn read(root: &Path) -> Result<Source, SchemaError> {
        let dict = read_object(&root.join("dictionary.json"))?;
        let dictionary = get_map(&dict, "attributes").cloned().unwrap_or_default();
        let types = get_map(&dict, "types")
            .and_then(|t| get_map(t, "attributes"))
            .cloned()
            .unwrap_or_default();
        let cats = read_object(&root.join("categories.json"))?;
        let categories = get_map(&cats, "attributes").cloned().unwrap_or_default();
        let mut observable_ids = BTreeMap::new();
        collect_observables(&Json::Object(dict.clone()), None, &mut observable_ids);
        let mut load_dir = |sub: &str| -> Result<DefTable, SchemaError> {
            let mut files = Vec::new();
            json_files(&root.join(sub), &mut files)?;
            let mut out = HashMap::new();
            for path in files {
                let m = read_object(&path)?;
                collect_observables(&Json::Object(m.clone()), None, &mut observable_ids);
                let name = get_str(&m, "name")
                    .ok_or_else(|| SchemaError::Invalid {
                        path: path.clone(),
                        reason: "definition has no `name`".into(),
                    })?
                    .to_string();
                out.insert(name, (path, m));
            }
            Ok(out)
        };
        let objects = load_dir("objects")?;
        let events = load_dir("events")?;
        observable_ids.insert(0, "Unknown".into());
        observable_ids.insert(99, "Other".into());
        Ok(Source {
            root: root.to_path_buf(),
            dictionary,
            types,
            categories,
            objects,
            events,
            observable_ids,
        })
    }

    /// The raw attribute definitions of a class or object, after `extends` and
    /// `$include`, before merging with the dictionary. The bool is whether the
    /// attribute came from a profile (and which).
    fn raw_attributes(
        &self,
        table: &DefTable,
        name: &str,
        depth: usize,
    ) -> Result<RawDefinition, SchemaError> {
        let (path, def) = table.get(name).ok_or_else(|| SchemaError::Invalid {
            path: self.root.clone(),
            reason: format!("`{name}` is extended or used but not defined"),
        })?;
        if depth > 32 {
            return Err(SchemaError::Invalid {
                path: path.clone(),
                reason: "`extends` chain too deep (a cycle?)".into(),
            });
        }
        let (mut attrs, mut constraints, mut category) = match get_str(def, "extends") {
            Some(parent) => self.raw_attributes(table, parent, depth + 1)?,
            None => (BTreeMap::new(), Constraints::default(), None),
        };
        if let Some(c) = get_str(def, "category") {
            category = Some(c.to_string());
        }
        if let Some(own) = get_map(def, "attributes") {
            // Included profiles first, then the definition's own attributes on top.
            let includes: Vec<&str> = match own.get("$include") {
                Some(Json::String(s)) => vec![s.as_str()],
                Some(Json::Array(a)) => a.iter().filter_map(Json::as_str).collect(),
                _ => Vec::new(),
            };
            for inc in includes {
                let inc_path = self.root.join(inc);
                let inc_def = read_object(&inc_path)?;
                let profile = (get_str(&inc_def, "meta") == Some("profile"))
                    .then(|| get_str(&inc_def, "name").unwrap_or(inc).to_string());
                for (k, v) in get_map(&inc_def, "attributes").into_iter().flatten() {
                    let Some(v) = v.as_object() else { continue };
                    let entry = attrs.entry(k.clone()).or_default();
                    let was_profile_free = !entry.is_empty() && !entry.contains_key("profile");
                    merge_attr(entry, v);
                    if let (Some(p), false) = (&profile, was_profile_free) {
                        entry.insert("profile".into(), Json::String(p.clone()));
                    }
                }
            }
            for (k, v) in own {
                if k == "$include" {
                    continue;
                }
                let Some(v) = v.as_object() else { continue };
                let entry = attrs.entry(k.clone()).or_default();
                merge_attr(entry, v);
            }
        }
        if let Some(c) = get_map(def, "constraints") {
            let list = |key: &str| -> Vec<String> {
                c.get(key)
                    .and_then(Json::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Json::as_str)
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            constraints = Constraints {
                at_least_one: list("at_least_one"),
                just_one: list("just_one"),
            };
        }
        Ok((attrs, constraints, category))
    }

    fn scalar_base(&self, ty: &str) -> String {
        let mut t = ty.to_string();
        for _ in 0..8 {
            match self
                .types
                .get(&t)
                .and_then(Json::as_object)
                .and_then(|m| get_str(m, "type"))
            {
                Some(next) if next != t => t = next.to_string(),
                _ => break,
            }
        }
        t
    }

    fn resolve(
        &self,
        owner: &str,
        raw: BTreeMap<String, Map<String, Json>>,
    ) -> Result<BTreeMap<String, Attribute>, SchemaError> {
        let mut out = BTreeMap::new();
        for (name, over) in raw {
            let mut def = self
                .dictionary
                .get(&name)
                .and_then(Json::as_object)
                .cloned()
                .unwrap_or_default();
            merge_attr(&mut def, &over);
            let ty_name = get_str(&def, "type").ok_or_else(|| SchemaError::Invalid {
                path: self.root.clone(),
                reason: format!("attribute `{name}` of `{owner}` has no type"),
            })?;
            let ty = if self.types.contains_key(ty_name) {
                AttrType::Scalar {
                    name: ty_name.to_string(),
                    base: self.scalar_base(ty_name),
                }
            } else {
                AttrType::Object(ty_name.to_string())
            };
            let requirement = match get_str(&def, "requirement") {
                Some("required") => Requirement::Required,
                Some("recommended") => Requirement::Recommended,
                _ => Requirement::Optional,
            };
            let mut enum_values = get_map(&def, "enum").map(|e| {
                e.iter()
                    .filter_map(|(k, v)| {
                        let caption = v
                            .as_object()
                            .and_then(|m| get_str(m, "caption"))
                            .unwrap_or("");
                        k.parse::<i64>().ok().map(|id| (id, caption.to_string()))
                    })
                    .collect::<BTreeMap<_, _>>()
            });
            let mut sibling = get_str(&def, "sibling").map(String::from);
            if owner == "observable" && name == "type_id" {
                // The observable type enum is generated from every `observable` number
                // in the schema; its captions are not the sibling's to check.
                enum_values = Some(self.observable_ids.clone());
                sibling = None;
            }
            out.insert(
                name,
                Attribute {
                    ty,
                    is_array: def.get("is_array").and_then(Json::as_bool).unwrap_or(false),
                    requirement,
                    enum_values,
                    sibling,
                    profile: get_str(&def, "profile").map(String::from),
                },
            );
        }
        Ok(out)
    }
}

impl Schema {
    /// Loads the schema source tree at `dir`.
    pub fn load(dir: &Path) -> Result<Schema, SchemaError> {
        let src = Source::read(dir)?;
        let version = read_json(&dir.join("version.json"))?
            .get("version")
            .and_then(Json::as_str)
            .unwrap_or("unknown")
            .to_string();
        let mut objects = HashMap::new();
        for name in src.objects.keys() {
            let (raw, constraints, _) = src.raw_attributes(&src.objects, name, 0)?;
            let attributes = src.resolve(name, raw)?;
            objects.insert(
                name.clone(),
                Definition {
                    name: name.clone(),
                    attributes,
                    constraints,
                },
            );
        }
        let mut classes = HashMap::new();
        for (name, (path, def)) in &src.events {
            let Some(local_uid) = def.get("uid").and_then(Json::as_i64) else {
                continue; // abstract bases (system, network, finding, ...) have no uid
            };
            let (raw, constraints, category) = src.raw_attributes(&src.events, name, 0)?;
            let category = category.unwrap_or_default();
            let category_uid = src
                .categories
                .get(&category)
                .and_then(|c| c.get("uid"))
                .and_then(Json::as_i64)
                .ok_or_else(|| SchemaError::Invalid {
                    path: path.clone(),
                    reason: format!("class `{name}` is in unknown category `{category}`"),
                })?;
            let uid = category_uid * 1000 + local_uid;
            let mut attributes = src.resolve(name, raw)?;
            // The source declares only the base event's ids; a compiled class knows its own.
            let category_caption = src
                .categories
                .get(&category)
                .and_then(|c| c.get("caption"))
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string();
            let caption = get_str(def, "caption").unwrap_or(name).to_string();
            for (attr, id, caption) in [
                ("class_uid", uid, caption.clone()),
                ("category_uid", category_uid, category_caption),
            ] {
                if let Some(a) = attributes.get_mut(attr) {
                    a.enum_values = Some(BTreeMap::from([(id, caption)]));
                }
            }
            classes.insert(
                uid,
                Class {
                    uid,
                    category_uid,
                    caption,
                    def: Definition {
                        name: name.clone(),
                        attributes,
                        constraints,
                    },
                },
            );
        }
        Ok(Schema {
            version,
            classes,
            objects,
        })
    }

    /// The class with this `class_uid`.
    pub fn class(&self, class_uid: i64) -> Option<&Class> {
        self.classes.get(&class_uid)
    }

    /// The object with this name.
    pub fn object(&self, name: &str) -> Option<&Definition> {
        self.objects.get(name)
    }

    /// Checks one event; an empty list means it is valid.
    pub fn validate(&self, event: &Json) -> Vec<Violation> {
        let mut v = Validation {
            schema: self,
            profiles: BTreeSet::new(),
            out: Vec::new(),
        };
        v.event(event);
        v.out
    }
}

struct Validation<'s> {
    schema: &'s Schema,
    profiles: BTreeSet<String>,
    out: Vec<Violation>,
}

fn child_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

fn present(m: &Map<String, Json>, key: &str) -> bool {
    m.get(key).is_some_and(|v| !v.is_null())
}

impl Validation<'_> {
    fn fail(&mut self, path: &str, message: impl Into<String>) {
        self.out.push(Violation {
            path: path.to_string(),
            message: message.into(),
        });
    }

    fn event(&mut self, event: &Json) {
        let Some(m) = event.as_object() else {
            return self.fail("", "event is not a JSON object");
        };
        let Some(class_uid) = m.get("class_uid").and_then(Json::as_i64) else {
            return self.fail("class_uid", "missing or not an integer");
        };
        let Some(class) = self.schema.class(class_uid) else {
            return self.fail("class_uid", format!("{class_uid} is not an OCSF class"));
        };
        if let Some(profiles) = m
            .get("metadata")
            .and_then(|md| md.get("profiles"))
            .and_then(Json::as_array)
        {
            self.profiles = profiles
                .iter()
                .filter_map(Json::as_str)
                .map(String::from)
                .collect();
        }
        if let (Some(t), Some(a)) = (
            m.get("type_uid").and_then(Json::as_i64),
            m.get("activity_id").and_then(Json::as_i64),
        ) {
            let want = class_uid * 100 + a;
            if t != want {
                self.fail(
                    "type_uid",
                    format!("{t} is not class_uid * 100 + activity_id ({want})"),
                );
            }
        }
        self.object(m, &class.def, "", 0);
    }

    fn object(&mut self, m: &Map<String, Json>, def: &Definition, path: &str, depth: usize) {
        if depth > MAX_DEPTH {
            return self.fail(path, "nested too deeply");
        }
        for (key, value) in m {
            let p = child_path(path, key);
            let Some(attr) = def.attributes.get(key) else {
                self.fail(&p, format!("unknown attribute of `{}`", def.name));
                continue;
            };
            if let Some(profile) = &attr.profile {
                if !self.profiles.contains(profile) {
                    self.fail(
                        &p,
                        format!(
                            "belongs to profile `{profile}`, which metadata.profiles does not list"
                        ),
                    );
                }
            }
            if value.is_null() {
                self.fail(&p, "null value (leave the attribute out instead)");
                continue;
            }
            if attr.is_array {
                match value.as_array() {
                    Some(items) => {
                        for (i, item) in items.iter().enumerate() {
                            self.value(item, attr, &format!("{p}[{i}]"), depth);
                        }
                    }
                    None => self.fail(&p, "expected an array"),
                }
            } else {
                self.value(value, attr, &p, depth);
            }
            if let (Some(values), Some(sibling)) = (&attr.enum_values, &attr.sibling) {
                if let (Some(id), Some(caption)) =
                    (value.as_i64(), m.get(sibling).and_then(Json::as_str))
                {
                    if let Some(expected) = values.get(&id) {
                        if id != 99 && caption != expected {
                            self.fail(
                                &child_path(path, sibling),
                                format!(
                                    "`{caption}` is not the caption of {key} {id} (`{expected}`)"
                                ),
                            );
                        }
                    }
                }
            }
        }
        for (key, attr) in &def.attributes {
            let active = attr
                .profile
                .as_ref()
                .is_none_or(|p| self.profiles.contains(p));
            if attr.requirement == Requirement::Required && active && !present(m, key) {
                self.fail(
                    &child_path(path, key),
                    format!("required by `{}` but missing", def.name),
                );
            }
        }
        let c = &def.constraints;
        if !c.at_least_one.is_empty() && !c.at_least_one.iter().any(|k| present(m, k)) {
            self.fail(
                path,
                format!(
                    "`{}` needs at least one of: {}",
                    def.name,
                    c.at_least_one.join(", ")
                ),
            );
        }
        if !c.just_one.is_empty() && c.just_one.iter().filter(|k| present(m, k)).count() != 1 {
            self.fail(
                path,
                format!(
                    "`{}` needs exactly one of: {}",
                    def.name,
                    c.just_one.join(", ")
                ),
            );
        }
    }

    fn value(&mut self, v: &Json, attr: &Attribute, path: &str, depth: usize) {
        match &attr.ty {
            AttrType::Object(name) => {
                let Some(m) = v.as_object() else {
                    return self.fail(path, format!("expected a `{name}` object"));
                };
                if name == "object" {
                    return; // a free-form object
                }
                match self.schema.object(name) {
                    Some(def) => self.object(m, def, path, depth + 1),
                    None => self.fail(path, format!("schema has no object `{name}`")),
                }
            }
            AttrType::Scalar { name, base } => {
                self.scalar(v, name, base, path);
                if let (Some(values), Some(id)) = (&attr.enum_values, v.as_i64()) {
                    if !values.contains_key(&id) {
                        let mut msg = format!("{id} is not a defined enum value");
                        if values.len() <= 12 {
                            let ids: Vec<String> = values.keys().map(ToString::to_string).collect();
                            msg.push_str(&format!(" (defined: {})", ids.join(", ")));
                        }
                        self.fail(path, msg);
                    }
                }
            }
        }
    }

    fn scalar(&mut self, v: &Json, name: &str, base: &str, path: &str) {
        let ok = match base {
            "string_t" => v.is_string(),
            "integer_t" => v.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
            "long_t" => v.is_i64() || v.is_u64(),
            "float_t" => v.is_number(),
            "boolean_t" => v.is_boolean(),
            "json_t" => true,
            _ => v.is_string(),
        };
        if !ok {
            return self.fail(path, format!("expected {name} ({base}), found {v}"));
        }
        match name {
            "ip_t" => {
                let s = v.as_str().unwrap_or_default();
                let addr = s.split('%').next().unwrap_or_default();
                if addr.parse::<std::net::IpAddr>().is_err() {
                    self.fail(path, format!("`{s}` is not an IP address"));
                }
            }
            "port_t" if !v.as_i64().is_some_and(|p| (0..=65535).contains(&p)) => {
                self.fail(path, format!("{v} is not a port (0-65535)"));
            }
            "subnet_t" => {
                let s = v.as_str().unwrap_or_default();
                let ok = s.split_once('/').is_some_and(|(ip, bits)| {
                    ip.parse::<std::net::IpAddr>().is_ok()
                        && bits.parse::<u8>().is_ok_and(|b| b <= 128)
                });
                if !ok {
                    self.fail(path, format!("`{s}` is not a subnet in CIDR notation"));
                }
            }
            _ => {}
        }
    }
}
