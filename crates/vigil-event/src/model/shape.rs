//! [`Shape`]: what each model type looks like as stored data, derived from the same
//! declarations as its JSON form (the `ocsf_object!` and `ocsf_class!` macros), so a
//! columnar store (`vigil-store`) builds its schema from the model and cannot drift from
//! it.
//!
//! Every attribute is optional in a stored shape (absent attributes are nulls). Free-form
//! maps (`unmapped`, `xattributes` of a file, evidence `data`) are [`Shape::Json`]: JSON
//! text. A type nested within itself (a process's `parent_process`) is described
//! structurally [`MAX_SELF_NESTING`] times; deeper, it is JSON text too, so nothing an
//! event holds is lost, however deep.

use super::{Caps, Shared, Text};
use serde_json::{Map, Value as Json};

/// The stored shape of a model type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// `true` or `false`.
    Bool,
    /// A signed 32-bit integer.
    I32,
    /// A signed 64-bit integer.
    I64,
    /// An unsigned 32-bit integer.
    U32,
    /// An unsigned 64-bit integer.
    U64,
    /// A 64-bit float.
    F64,
    /// UTF-8 text.
    Str,
    /// Free-form JSON, kept as its text.
    Json,
    /// A list of values of one shape.
    List(Box<Shape>),
    /// An object: named attributes, in declaration order.
    Struct(Vec<Field>),
}

/// One named attribute of a [`Shape::Struct`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The attribute's JSON name.
    pub name: &'static str,
    /// Its shape.
    pub shape: Shape,
}

/// How many times an object type is described inside itself before the deeper copies
/// are kept as JSON text: 2 gives `process.parent_process` its columns (the agent writes
/// the parent one level deep) and keeps a parent's parent, should a producer write one,
/// as text.
pub const MAX_SELF_NESTING: usize = 2;

/// A model type whose stored [`Shape`] is known.
pub trait Shaped {
    /// The shape, inside the object types named by `outer` (outermost first): used to
    /// cut self-nesting at [`MAX_SELF_NESTING`].
    fn shape_in(outer: &mut Vec<&'static str>) -> Shape;

    /// The shape at the top level.
    fn shape() -> Shape {
        Self::shape_in(&mut Vec::new())
    }
}

/// The shape of a declared object type named `name`, whose fields `fields` describes
/// (called by the declaring macro).
pub fn object_shape(
    name: &'static str,
    outer: &mut Vec<&'static str>,
    fields: impl FnOnce(&mut Vec<&'static str>) -> Vec<Field>,
) -> Shape {
    if outer.iter().filter(|n| **n == name).count() >= MAX_SELF_NESTING {
        return Shape::Json;
    }
    outer.push(name);
    let shape = Shape::Struct(fields(outer));
    outer.pop();
    shape
}

macro_rules! leaf_shape {
    ($($t:ty => $s:ident),* $(,)?) => {$(
        impl Shaped for $t {
            fn shape_in(_outer: &mut Vec<&'static str>) -> Shape {
                Shape::$s
            }
        }
    )*};
}
leaf_shape!(
    bool => Bool,
    i32 => I32,
    i64 => I64,
    u32 => U32,
    u64 => U64,
    f64 => F64,
    String => Str,
    Text => Str,
    // Written as hex text (`0x000001ffffffffff`), as /proc shows it.
    Caps => Str,
    Json => Json,
    Map<String, Json> => Json,
);

impl<T: Shaped> Shaped for Option<T> {
    fn shape_in(outer: &mut Vec<&'static str>) -> Shape {
        T::shape_in(outer)
    }
}

impl<T: Shaped> Shaped for Shared<T> {
    fn shape_in(outer: &mut Vec<&'static str>) -> Shape {
        T::shape_in(outer)
    }
}

impl<T: Shaped> Shaped for Box<T> {
    fn shape_in(outer: &mut Vec<&'static str>) -> Shape {
        T::shape_in(outer)
    }
}

impl<T: Shaped> Shaped for Vec<T> {
    fn shape_in(outer: &mut Vec<&'static str>) -> Shape {
        Shape::List(Box::new(T::shape_in(outer)))
    }
}

impl Shape {
    /// The attribute `name` of a struct shape.
    pub fn field(&self, name: &str) -> Option<&Shape> {
        match self {
            Shape::Struct(fields) => fields.iter().find(|f| f.name == name).map(|f| &f.shape),
            _ => None,
        }
    }

    /// The shape at a dotted path (`actor.process.file.name`), through lists.
    pub fn at(&self, path: &str) -> Option<&Shape> {
        path.split('.').try_fold(self, |s, part| {
            let mut s = s;
            while let Shape::List(inner) = s {
                s = inner;
            }
            s.field(part)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DetectionFinding, Process, ProcessActivity};

    #[test]
    fn a_process_has_its_parent_as_columns_and_the_parents_parent_as_json() {
        let p = ProcessActivity::shape();
        assert_eq!(p.at("actor.process.file.name"), Some(&Shape::Str));
        assert_eq!(p.at("process.parent_process.cmd_line"), Some(&Shape::Str));
        assert_eq!(
            p.at("process.parent_process.parent_process"),
            Some(&Shape::Json)
        );
        assert_eq!(p.at("time"), Some(&Shape::I64));
        assert_eq!(p.at("unmapped"), Some(&Shape::Json));
        assert_eq!(p.at("process.xattributes.cgroup_id"), Some(&Shape::U64));
        assert_eq!(p.at("process.xattributes.cap_effective"), Some(&Shape::Str));
        assert_eq!(p.at("process.file.xattributes"), Some(&Shape::Json));
        assert_eq!(p.at("process.ancestry.uid"), Some(&Shape::Str));
        assert!(matches!(p.at("process.ancestry"), Some(Shape::List(_))));
        assert_eq!(p.at("process.no_such_field"), None);
        // The JSON key, not the Rust name.
        assert_eq!(p.at("process.file.type"), Some(&Shape::Str));
        assert_eq!(p.at("process.file.kind"), None);
    }

    #[test]
    fn every_attribute_of_a_class_is_in_its_shape_in_declaration_order() {
        let Shape::Struct(fields) = Process::shape() else {
            panic!("a struct")
        };
        let names: Vec<_> = fields.iter().map(|f| f.name).collect();
        assert_eq!(names[..3], ["pid", "tid", "uid"]);
        assert_eq!(names.len(), 18);
        let finding = DetectionFinding::shape();
        assert_eq!(finding.at("evidences.data"), Some(&Shape::Json));
        assert_eq!(
            finding.at("evidences.process.parent_process.pid"),
            Some(&Shape::I32)
        );
    }
}
