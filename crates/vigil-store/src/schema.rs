//! The stored classes and their Arrow schemas, derived from the event model's
//! [`Shape`]s (`vigil_event::model::Shaped`): one table per OCSF class, nested objects as
//! nested struct columns (`actor.process.file.name` is a real nested column), lists as
//! list columns, free-form maps as JSON text.
//!
//! **Time.** `time` and every other `*_time` attribute (all milliseconds since the Unix
//! epoch in OCSF and in the model) are `Timestamp(Millisecond, "UTC")` columns: the same
//! 64-bit integer on disk (Parquet `TIMESTAMP(MILLIS, isAdjustedToUTC=true)`), but every
//! reader (DuckDB, Spark, Athena, DataFusion) shows it as a time and compares it with
//! time literals and intervals (`time > now() - interval '1 hour'`) without a cast; as a
//! plain integer each query would have to convert it. Reading back to JSON gives the
//! epoch milliseconds again.

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use std::sync::{Arc, OnceLock};
use vigil_event::model::{self, Shape, Shaped};
use vigil_event::OcsfClass;

/// One stored OCSF class.
#[derive(Debug, Clone, Copy)]
pub struct Class {
    /// `class_uid`.
    pub uid: i32,
    /// The table name: the class's snake_case OCSF name (`process_activity`), also the
    /// directory `class=<table>` of its Parquet files.
    pub table: &'static str,
    /// The class's caption (`Process Activity`).
    pub caption: &'static str,
    shape: fn() -> Shape,
}

impl PartialEq for Class {
    fn eq(&self, other: &Self) -> bool {
        self.uid == other.uid
    }
}

impl Eq for Class {}

macro_rules! classes {
    ($($ty:ident => $table:literal),* $(,)?) => {
        /// Every class the store keeps, by `class_uid`.
        pub const CLASSES: &[Class] = &[$(
            Class {
                uid: <model::$ty as OcsfClass>::CLASS_UID,
                table: $table,
                caption: <model::$ty as OcsfClass>::CLASS_NAME,
                shape: <model::$ty as Shaped>::shape,
            },
        )*];
    };
}

// OCSF's own name for 1008 is spelt `event_log_actvity` in the 1.8 schema; the table
// uses the correct spelling.
classes!(
    ProcessActivity => "process_activity",
    FileActivity => "file_activity",
    ModuleActivity => "module_activity",
    EventLogActivity => "event_log_activity",
    NetworkActivity => "network_activity",
    DnsActivity => "dns_activity",
    Authentication => "authentication",
    DetectionFinding => "detection_finding",
    IncidentFinding => "incident_finding",
    FileRemediationActivity => "file_remediation_activity",
    ProcessRemediationActivity => "process_remediation_activity",
    NetworkRemediationActivity => "network_remediation_activity",
);

impl Class {
    /// The class of a `class_uid`.
    pub fn by_uid(uid: i64) -> Option<&'static Class> {
        CLASSES.iter().find(|c| i64::from(c.uid) == uid)
    }

    /// The class of a table name (`process_activity`).
    pub fn by_table(table: &str) -> Option<&'static Class> {
        CLASSES.iter().find(|c| c.table == table)
    }

    /// The class's model shape.
    pub fn shape(&self) -> Shape {
        (self.shape)()
    }

    /// The class's Arrow schema (built once, shared).
    pub fn schema(&self) -> SchemaRef {
        static SCHEMAS: OnceLock<Vec<SchemaRef>> = OnceLock::new();
        let all =
            SCHEMAS.get_or_init(|| CLASSES.iter().map(|c| build_schema(&c.shape())).collect());
        let i = CLASSES.iter().position(|c| c.uid == self.uid).unwrap_or(0);
        Arc::clone(&all[i])
    }
}

/// The Arrow schema of a class, by table name (`process_activity`).
pub fn schema_of(table: &str) -> Option<SchemaRef> {
    Class::by_table(table).map(Class::schema)
}

/// The store's own column, last in every table: the event's sequence number in the
/// store (increasing, never reused; the log's and the file names' numbers).
pub const SEQ_COLUMN: &str = "vigil_seq";

fn build_schema(shape: &Shape) -> SchemaRef {
    let Shape::Struct(fields) = shape else {
        return Arc::new(Schema::empty());
    };
    let mut cols: Vec<Field> = fields.iter().map(|f| field_of(f.name, &f.shape)).collect();
    cols.push(Field::new(SEQ_COLUMN, DataType::UInt64, false));
    Arc::new(Schema::new(cols))
}

/// Whether an attribute named `name` holds milliseconds since the epoch.
pub(crate) fn is_time(name: &str) -> bool {
    name == "time" || name.ends_with("_time")
}

/// The Arrow type of the attribute `name` of shape `shape`.
pub(crate) fn type_of(name: &str, shape: &Shape) -> DataType {
    match shape {
        Shape::Bool => DataType::Boolean,
        Shape::I32 => DataType::Int32,
        Shape::I64 if is_time(name) => {
            DataType::Timestamp(TimeUnit::Millisecond, Some(Arc::from("UTC")))
        }
        Shape::I64 => DataType::Int64,
        Shape::U32 => DataType::UInt32,
        Shape::U64 => DataType::UInt64,
        Shape::F64 => DataType::Float64,
        Shape::Str | Shape::Json => DataType::Utf8,
        Shape::List(inner) => DataType::List(Arc::new(field_of("item", inner))),
        Shape::Struct(fields) => DataType::Struct(Fields::from(
            fields
                .iter()
                .map(|f| field_of(f.name, &f.shape))
                .collect::<Vec<_>>(),
        )),
    }
}

/// The Arrow field of an attribute: always nullable (an absent attribute is a null).
/// JSON text columns say so in their metadata (`vigil.json = true`).
pub(crate) fn field_of(name: &str, shape: &Shape) -> Field {
    let f = Field::new(name, type_of(name, shape), true);
    if matches!(shape, Shape::Json) {
        f.with_metadata([("vigil.json".to_owned(), "true".to_owned())].into())
    } else {
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_objects_are_nested_columns_and_time_is_a_utc_timestamp() {
        let s = schema_of("process_activity").expect("known");
        let actor = s.field_with_name("actor").expect("actor");
        let DataType::Struct(a) = actor.data_type() else {
            panic!("{actor:?}")
        };
        let process = a.find("process").expect("process").1;
        let DataType::Struct(p) = process.data_type() else {
            panic!()
        };
        let file = p.find("file").expect("file").1;
        let DataType::Struct(f) = file.data_type() else {
            panic!()
        };
        assert_eq!(f.find("name").expect("name").1.data_type(), &DataType::Utf8);
        assert_eq!(
            s.field_with_name("time").expect("time").data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
        assert_eq!(
            s.field_with_name("unmapped")
                .expect("unmapped")
                .metadata()
                .get("vigil.json")
                .map(String::as_str),
            Some("true")
        );
    }

    #[test]
    fn table_names_are_unique_and_found_both_ways() {
        for c in CLASSES {
            assert_eq!(Class::by_table(c.table), Some(c));
            assert_eq!(Class::by_uid(i64::from(c.uid)), Some(c));
            assert!(!c.schema().fields().is_empty());
        }
    }
}
