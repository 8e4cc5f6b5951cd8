//! Events to columns and back: [`BatchBuilder`] turns a class's events (JSON values, as
//! the agent writes them) into one Arrow [`RecordBatch`] of the class's schema;
//! [`row_to_json`] turns a stored row back into the event's JSON (absent attributes
//! left out, as the model writes them).
//!
//! Nothing is dropped silently: an attribute the schema does not have, or a value of the
//! wrong type, is counted in [`Anomalies`] with its path, for the caller to report.

use crate::schema::{field_of, is_time, type_of, SEQ_COLUMN};
use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder, UInt32Builder, UInt64Builder,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, ListArray, RecordBatch,
    StringArray, StructArray, TimestampMillisecondArray, UInt32Array, UInt64Array,
};
use arrow_buffer::{NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, FieldRef, Fields, SchemaRef};
use serde_json::{Map, Value as Json};
use std::sync::Arc;
use vigil_event::model::Shape;

/// What did not fit the schema while building a batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Anomalies {
    /// Attributes the schema has no column for (kept nowhere): how many, and the first
    /// few paths.
    pub unknown: u64,
    /// Values of the wrong type (stored as null): how many, and the first few paths.
    pub mistyped: u64,
    /// The first paths seen of each, for the report.
    pub examples: Vec<String>,
}

impl Anomalies {
    fn note(&mut self, what: String) {
        if self.examples.len() < 8 {
            self.examples.push(what);
        }
    }

    /// Whether everything fitted.
    pub fn is_empty(&self) -> bool {
        self.unknown == 0 && self.mistyped == 0
    }
}

/// One column being built.
enum Col {
    Bool(BooleanBuilder),
    I32(Int32Builder),
    I64(Int64Builder),
    Time(TimestampMillisecondBuilder),
    U32(UInt32Builder),
    U64(UInt64Builder),
    F64(Float64Builder),
    Str(StringBuilder),
    Json(StringBuilder),
    List {
        field: FieldRef,
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
        child: Box<Col>,
    },
    Struct {
        fields: Fields,
        cols: Vec<Col>,
        nulls: NullBufferBuilder,
    },
}

impl Col {
    fn new(name: &str, shape: &Shape) -> Col {
        match shape {
            Shape::Bool => Col::Bool(BooleanBuilder::new()),
            Shape::I32 => Col::I32(Int32Builder::new()),
            Shape::I64 if is_time(name) => {
                Col::Time(TimestampMillisecondBuilder::new().with_timezone("UTC"))
            }
            Shape::I64 => Col::I64(Int64Builder::new()),
            Shape::U32 => Col::U32(UInt32Builder::new()),
            Shape::U64 => Col::U64(UInt64Builder::new()),
            Shape::F64 => Col::F64(Float64Builder::new()),
            Shape::Str => Col::Str(StringBuilder::new()),
            Shape::Json => Col::Json(StringBuilder::new()),
            Shape::List(inner) => Col::List {
                field: Arc::new(field_of("item", inner)),
                offsets: vec![0],
                nulls: NullBufferBuilder::new(0),
                child: Box::new(Col::new("item", inner)),
            },
            Shape::Struct(fields) => {
                let DataType::Struct(arrow_fields) = type_of(name, shape) else {
                    unreachable!("a struct shape is a struct type")
                };
                Col::Struct {
                    fields: arrow_fields,
                    cols: fields.iter().map(|f| Col::new(f.name, &f.shape)).collect(),
                    nulls: NullBufferBuilder::new(0),
                }
            }
        }
    }

    fn append_null(&mut self) {
        match self {
            Col::Bool(b) => b.append_null(),
            Col::I32(b) => b.append_null(),
            Col::I64(b) => b.append_null(),
            Col::Time(b) => b.append_null(),
            Col::U32(b) => b.append_null(),
            Col::U64(b) => b.append_null(),
            Col::F64(b) => b.append_null(),
            Col::Str(b) | Col::Json(b) => b.append_null(),
            Col::List { offsets, nulls, .. } => {
                let last = offsets.last().copied().unwrap_or(0);
                offsets.push(last);
                nulls.append_null();
            }
            Col::Struct { cols, nulls, .. } => {
                for c in cols {
                    c.append_null();
                }
                nulls.append_null();
            }
        }
    }

    /// Appends `v` (JSON `null` is absent); `path` names the column for reports.
    fn append(&mut self, v: &Json, path: &mut String, bad: &mut Anomalies) {
        if v.is_null() {
            self.append_null();
            return;
        }
        let ok = match self {
            Col::Bool(b) => v.as_bool().map(|x| b.append_value(x)).is_some(),
            Col::I32(b) => v
                .as_i64()
                .and_then(|x| i32::try_from(x).ok())
                .map(|x| b.append_value(x))
                .is_some(),
            Col::I64(b) => v.as_i64().map(|x| b.append_value(x)).is_some(),
            Col::Time(b) => v.as_i64().map(|x| b.append_value(x)).is_some(),
            Col::U32(b) => v
                .as_u64()
                .and_then(|x| u32::try_from(x).ok())
                .map(|x| b.append_value(x))
                .is_some(),
            Col::U64(b) => v.as_u64().map(|x| b.append_value(x)).is_some(),
            Col::F64(b) => v.as_f64().map(|x| b.append_value(x)).is_some(),
            Col::Str(b) => v.as_str().map(|x| b.append_value(x)).is_some(),
            Col::Json(b) => {
                b.append_value(v.to_string());
                true
            }
            Col::List {
                offsets,
                nulls,
                child,
                ..
            } => match v.as_array() {
                Some(items) => {
                    for item in items {
                        child.append(item, path, bad);
                    }
                    let last = offsets.last().copied().unwrap_or(0);
                    offsets.push(last + items.len() as i32);
                    nulls.append_non_null();
                    true
                }
                None => false,
            },
            Col::Struct {
                fields,
                cols,
                nulls,
            } => match v.as_object() {
                Some(map) => {
                    append_object(&fields[..], cols, map, path, bad);
                    nulls.append_non_null();
                    true
                }
                None => false,
            },
        };
        if !ok {
            bad.mistyped += 1;
            bad.note(format!("{path}: not a {}", self.kind()));
            self.append_null();
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Col::Bool(_) => "boolean",
            Col::I32(_) => "32-bit integer",
            Col::I64(_) => "64-bit integer",
            Col::Time(_) => "time in ms",
            Col::U32(_) => "unsigned 32-bit integer",
            Col::U64(_) => "unsigned 64-bit integer",
            Col::F64(_) => "number",
            Col::Str(_) => "string",
            Col::Json(_) => "JSON value",
            Col::List { .. } => "list",
            Col::Struct { .. } => "object",
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Bool(b) => Arc::new(b.finish()),
            Col::I32(b) => Arc::new(b.finish()),
            Col::I64(b) => Arc::new(b.finish()),
            Col::Time(b) => Arc::new(b.finish()),
            Col::U32(b) => Arc::new(b.finish()),
            Col::U64(b) => Arc::new(b.finish()),
            Col::F64(b) => Arc::new(b.finish()),
            Col::Str(b) | Col::Json(b) => Arc::new(b.finish()),
            Col::List {
                field,
                offsets,
                nulls,
                child,
            } => {
                let offs = std::mem::replace(offsets, vec![0]);
                let values = child.finish();
                Arc::new(ListArray::new(
                    Arc::clone(field),
                    OffsetBuffer::new(ScalarBuffer::from(offs)),
                    values,
                    nulls.finish(),
                ))
            }
            Col::Struct {
                fields,
                cols,
                nulls,
            } => {
                let arrays: Vec<ArrayRef> = cols.iter_mut().map(Col::finish).collect();
                let n = nulls.len();
                let nulls = nulls.finish();
                if fields.is_empty() {
                    Arc::new(StructArray::new_empty_fields(n, nulls))
                } else {
                    Arc::new(StructArray::new(fields.clone(), arrays, nulls))
                }
            }
        }
    }
}

fn append_object(
    fields: &[FieldRef],
    cols: &mut [Col],
    map: &Map<String, Json>,
    path: &mut String,
    bad: &mut Anomalies,
) {
    let mut found = 0;
    for (f, c) in fields.iter().zip(cols.iter_mut()) {
        match map.get(f.name()) {
            Some(v) => {
                found += 1;
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(f.name());
                c.append(v, path, bad);
                path.truncate(len);
            }
            None => c.append_null(),
        }
    }
    if found < map.len() {
        for k in map.keys() {
            if !fields.iter().any(|f| f.name() == k) {
                bad.unknown += 1;
                let sep = if path.is_empty() { "" } else { "." };
                bad.note(format!("{path}{sep}{k}: no such attribute"));
            }
        }
    }
}

/// Builds one [`RecordBatch`] of a class's events.
pub struct BatchBuilder {
    schema: SchemaRef,
    cols: Vec<Col>,
    seqs: UInt64Builder,
    rows: usize,
    anomalies: Anomalies,
    path: String,
}

impl BatchBuilder {
    /// A builder for `class`'s schema.
    pub fn new(class: &crate::Class) -> BatchBuilder {
        let Shape::Struct(fields) = class.shape() else {
            unreachable!("a class is an object")
        };
        BatchBuilder {
            schema: class.schema(),
            cols: fields.iter().map(|f| Col::new(f.name, &f.shape)).collect(),
            seqs: UInt64Builder::new(),
            rows: 0,
            anomalies: Anomalies::default(),
            path: String::new(),
        }
    }

    /// Adds one event (a JSON object of the class) stored with sequence `seq`.
    pub fn push(&mut self, seq: u64, event: &Map<String, Json>) {
        self.path.clear();
        let fields = self.schema.fields();
        append_object(
            &fields[..fields.len() - 1],
            &mut self.cols,
            event,
            &mut self.path,
            &mut self.anomalies,
        );
        self.seqs.append_value(seq);
        self.rows += 1;
    }

    /// Events added since the last [`BatchBuilder::finish`].
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// What did not fit, so far.
    pub fn anomalies(&self) -> &Anomalies {
        &self.anomalies
    }

    /// The batch of the events added (the builder starts empty again).
    pub fn finish(&mut self) -> RecordBatch {
        let mut arrays: Vec<ArrayRef> = self.cols.iter_mut().map(Col::finish).collect();
        arrays.push(Arc::new(self.seqs.finish()));
        let n = std::mem::take(&mut self.rows);
        let opts = arrow_array::RecordBatchOptions::new().with_row_count(Some(n));
        // The columns were built from the schema's own types, so they always fit it.
        RecordBatch::try_new_with_options(Arc::clone(&self.schema), arrays, &opts)
            .unwrap_or_else(|e| unreachable!("columns built from the schema: {e}"))
    }
}

/// The store sequence of row `row` of `batch` (its [`SEQ_COLUMN`]), if it has one.
pub fn row_seq(batch: &RecordBatch, row: usize) -> Option<u64> {
    let col = batch.column_by_name(SEQ_COLUMN)?;
    let a = col.as_any().downcast_ref::<UInt64Array>()?;
    (row < a.len() && !a.is_null(row)).then(|| a.value(row))
}

/// The event in row `row` of `batch`, as the JSON the model writes (absent attributes
/// left out, times as epoch milliseconds, JSON text columns parsed back).
pub fn row_to_json(batch: &RecordBatch, row: usize) -> Json {
    let mut text = Vec::new();
    write_row_json(batch, row, &mut text);
    // The text is JSON by construction (escaped strings, numbers, JSON text columns only
    // when they parse); should that ever not hold, the row reads back as null, not a panic.
    serde_json::from_slice(&text).unwrap_or(Json::Null)
}

/// Writes the event in row `row` of `batch` as one line of JSON text to `out` (no
/// newline), members in column order, straight from the columns with no value tree in
/// between (the retro-hunt reads every stored row); [`row_to_json`] parses it.
pub fn write_row_json(batch: &RecordBatch, row: usize, out: &mut Vec<u8>) {
    out.push(b'{');
    let mut first = true;
    for (f, col) in batch.schema().fields().iter().zip(batch.columns()) {
        if f.name() == SEQ_COLUMN {
            continue;
        }
        write_member(
            f.name(),
            col.as_ref(),
            f.metadata().contains_key("vigil.json"),
            row,
            &mut first,
            out,
        );
    }
    out.push(b'}');
}

/// `"name":value` (after a comma unless `first`), or nothing when the value is absent.
fn write_member(
    name: &str,
    col: &dyn Array,
    json: bool,
    row: usize,
    first: &mut bool,
    out: &mut Vec<u8>,
) {
    let at = out.len();
    if !*first {
        out.push(b',');
    }
    write_str(name, out);
    out.push(b':');
    if write_value(col, json, row, out) {
        *first = false;
    } else {
        out.truncate(at);
    }
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Writes the value at `row` (times as epoch ms, JSON text columns as the JSON they hold
/// when it parses, lists with absent items as null); false (nothing written) when it is
/// absent.
fn write_value(col: &dyn Array, json: bool, row: usize, out: &mut Vec<u8>) -> bool {
    use std::io::Write as _;
    if col.is_null(row) {
        return false;
    }
    let any = col.as_any();
    macro_rules! prim {
        ($t:ty) => {
            if let Some(a) = any.downcast_ref::<$t>() {
                let _ = write!(out, "{}", a.value(row));
                return true;
            }
        };
    }
    prim!(BooleanArray);
    prim!(Int32Array);
    prim!(Int64Array);
    prim!(TimestampMillisecondArray);
    prim!(UInt32Array);
    prim!(UInt64Array);
    if let Some(a) = any.downcast_ref::<Float64Array>() {
        return match serde_json::Number::from_f64(a.value(row)) {
            Some(n) => {
                let _ = write!(out, "{n}");
                true
            }
            None => false,
        };
    }
    if let Some(a) = any.downcast_ref::<StringArray>() {
        let s = a.value(row);
        let raw = json
            .then(|| serde_json::from_str::<&serde_json::value::RawValue>(s).ok())
            .flatten();
        match raw {
            // Valid JSON text goes in as it is: the object the model had.
            Some(r) => out.extend_from_slice(r.get().trim().as_bytes()),
            None => write_str(s, out),
        }
        return true;
    }
    if let Some(a) = any.downcast_ref::<ListArray>() {
        let items = a.value(row);
        let is_json = match a.data_type() {
            DataType::List(f) => f.metadata().contains_key("vigil.json"),
            _ => false,
        };
        out.push(b'[');
        for i in 0..items.len() {
            if i > 0 {
                out.push(b',');
            }
            if !write_value(items.as_ref(), is_json, i, out) {
                out.extend_from_slice(b"null");
            }
        }
        out.push(b']');
        return true;
    }
    if let Some(a) = any.downcast_ref::<StructArray>() {
        out.push(b'{');
        let mut first = true;
        for (f, c) in a.fields().iter().zip(a.columns()) {
            write_member(
                f.name(),
                c.as_ref(),
                f.metadata().contains_key("vigil.json"),
                row,
                &mut first,
                out,
            );
        }
        out.push(b'}');
        return true;
    }
    false
}

// ---------------------------------------------------------------------------------------
// The direct path: a JSON line parsed straight into the columns, with no JSON tree in
// between (what compaction runs; `BatchBuilder::push` over a parsed object is the same
// mapping, for callers that hold one).

/// Where a value sits, for reports: built only when something does not fit.
#[derive(Clone, Copy)]
struct At<'a> {
    parent: Option<&'a At<'a>>,
    name: &'a str,
}

impl At<'_> {
    fn path(&self) -> String {
        let mut parts = vec![self.name];
        let mut p = self.parent;
        while let Some(a) = p {
            if !a.name.is_empty() {
                parts.push(a.name);
            }
            p = a.parent;
        }
        parts.reverse();
        parts.join(".")
    }
}

struct Seed<'c, 'a> {
    col: &'c mut Col,
    bad: &'c mut Anomalies,
    at: At<'a>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Seed<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if let Col::Json(b) = self.col {
            // The value's own text, as written: no second serialization.
            let raw = <&serde_json::value::RawValue>::deserialize(d)?;
            match raw.get() {
                "null" => b.append_null(),
                text => b.append_value(text),
            }
            return Ok(());
        }
        d.deserialize_any(self)
    }
}

use serde::Deserialize as _;

impl Seed<'_, '_> {
    fn mismatch(self) {
        self.bad.mistyped += 1;
        let what = format!("{}: not a {}", self.at.path(), self.col.kind());
        self.bad.note(what);
        self.col.append_null();
    }

    fn int(self, v: i128) {
        let ok = match &mut *self.col {
            Col::I32(b) => i32::try_from(v).map(|x| b.append_value(x)).is_ok(),
            Col::I64(b) => i64::try_from(v).map(|x| b.append_value(x)).is_ok(),
            Col::Time(b) => i64::try_from(v).map(|x| b.append_value(x)).is_ok(),
            Col::U32(b) => u32::try_from(v).map(|x| b.append_value(x)).is_ok(),
            Col::U64(b) => u64::try_from(v).map(|x| b.append_value(x)).is_ok(),
            Col::F64(b) => {
                b.append_value(v as f64);
                true
            }
            _ => false,
        };
        if !ok {
            self.mismatch();
        }
    }
}

/// Reads an object key as the index of the field of that name (`hint`: where to look
/// first, the field after the last one found: the model writes them in order).
struct KeySeed<'f> {
    fields: &'f [FieldRef],
    hint: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Result<usize, String>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeySeed<'_> {
    type Value = Result<usize, String>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an attribute name")
    }
    fn visit_str<E: serde::de::Error>(self, k: &str) -> Result<Self::Value, E> {
        let n = self.fields.len();
        let kb = k.as_bytes();
        for j in 0..n {
            let i = (self.hint + j) % n;
            let name = self.fields[i].name().as_bytes();
            // Length and first byte first: most names differ there, without a call to
            // compare the rest.
            if name.len() == kb.len() && name.first() == kb.first() && name == kb {
                return Ok(Ok(i));
            }
        }
        Ok(Err(k.to_string()))
    }
}

fn visit_fields<'de, A: serde::de::MapAccess<'de>>(
    fields: &[FieldRef],
    cols: &mut [Col],
    map: &mut A,
    bad: &mut Anomalies,
    at: At<'_>,
) -> Result<(), A::Error> {
    let mut seen = Seen::new(cols.len());
    let mut hint = 0;
    while let Some(key) = map.next_key_seed(KeySeed { fields, hint })? {
        match key {
            Ok(i) if !seen.get(i) => {
                seen.set(i);
                hint = i + 1;
                map.next_value_seed(Seed {
                    col: &mut cols[i],
                    bad,
                    at: At {
                        parent: Some(&at),
                        name: fields[i].name(),
                    },
                })?;
            }
            Ok(i) => {
                map.next_value::<serde::de::IgnoredAny>()?;
                bad.unknown += 1;
                let name = At {
                    parent: Some(&at),
                    name: fields[i].name(),
                }
                .path();
                bad.note(format!("{name}: given twice, the first kept"));
            }
            Err(k) => {
                map.next_value::<serde::de::IgnoredAny>()?;
                bad.unknown += 1;
                let name = At {
                    parent: Some(&at),
                    name: &k,
                }
                .path();
                bad.note(format!("{name}: no such attribute"));
            }
        }
    }
    for (i, c) in cols.iter_mut().enumerate() {
        if !seen.get(i) {
            c.append_null();
        }
    }
    Ok(())
}

/// The attributes of an object found so far: bits on the stack (no allocation per
/// object of every event) unless it has more than 128.
enum Seen {
    Bits(u128),
    Many(Vec<bool>),
}

impl Seen {
    fn new(n: usize) -> Seen {
        if n <= 128 {
            Seen::Bits(0)
        } else {
            Seen::Many(vec![false; n])
        }
    }

    fn get(&self, i: usize) -> bool {
        match self {
            Seen::Bits(b) => b >> i & 1 == 1,
            Seen::Many(v) => v[i],
        }
    }

    fn set(&mut self, i: usize) {
        match self {
            Seen::Bits(b) => *b |= 1 << i,
            Seen::Many(v) => v[i] = true,
        }
    }
}

impl<'de> serde::de::Visitor<'de> for Seed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        match self.col {
            Col::Bool(b) => b.append_value(v),
            _ => self.mismatch(),
        }
        Ok(())
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.int(i128::from(v));
        Ok(())
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.int(i128::from(v));
        Ok(())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        match self.col {
            Col::F64(b) => b.append_value(v),
            _ => self.mismatch(),
        }
        Ok(())
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        match self.col {
            Col::Str(b) => b.append_value(v),
            _ => self.mismatch(),
        }
        Ok(())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.col.append_null();
        Ok(())
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.col.append_null();
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Col::List {
            offsets,
            nulls,
            child,
            ..
        } = self.col
        {
            let mut n = 0;
            while seq
                .next_element_seed(Seed {
                    col: child,
                    bad: self.bad,
                    at: self.at,
                })?
                .is_some()
            {
                n += 1;
            }
            let last = offsets.last().copied().unwrap_or(0);
            offsets.push(last + n);
            nulls.append_non_null();
        } else {
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            self.mismatch();
        }
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if let Col::Struct {
            fields,
            cols,
            nulls,
        } = self.col
        {
            visit_fields(&fields[..], cols, &mut map, self.bad, self.at)?;
            nulls.append_non_null();
        } else {
            while map
                .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                .is_some()
            {}
            self.mismatch();
        }
        Ok(())
    }
}

/// The top of an event: its attributes straight into the batch's columns.
struct Top<'c> {
    fields: &'c [FieldRef],
    cols: &'c mut [Col],
    bad: &'c mut Anomalies,
}

impl<'de> serde::de::DeserializeSeed<'de> for Top<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Top<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        visit_fields(
            self.fields,
            self.cols,
            &mut map,
            self.bad,
            At {
                parent: None,
                name: "",
            },
        )
    }
}

/// What every stored event has at its top, read first (and the line checked to be
/// whole JSON) before its attributes go into the columns.
#[derive(serde::Deserialize)]
pub struct Head {
    /// The event's class.
    pub class_uid: i64,
    /// Its time (ms since the epoch).
    pub time: i64,
}

impl Head {
    /// The head of a JSON line, or why it is not a storable event (the whole line is
    /// parsed).
    pub fn of(line: &[u8]) -> Result<Head, String> {
        serde_json::from_slice(line).map_err(|e| format!("not a stored event: {e}"))
    }

    /// The head of a JSON line read from its start only as far as `class_uid` and
    /// `time` (both near the start in every event the model writes), without reading
    /// the rest: `None` when the line does not look like that (then [`Head::of`] says
    /// what is wrong). The rest of the line is not checked here: [`BatchBuilder::
    /// push_json`] reads all of it and fails on malformed JSON.
    pub fn quick(line: &[u8]) -> Option<Head> {
        let mut r = Scanner { b: line, at: 0 };
        r.ws();
        r.eat(b'{')?;
        let (mut class_uid, mut time) = (None, None);
        loop {
            r.ws();
            let key = r.plain_string()?;
            r.ws();
            r.eat(b':')?;
            r.ws();
            match key {
                b"class_uid" if class_uid.is_none() => class_uid = Some(r.int()?),
                b"time" if time.is_none() => time = Some(r.int()?),
                b"class_uid" | b"time" => return None,
                _ => r.skip_value()?,
            }
            if let (Some(class_uid), Some(time)) = (class_uid, time) {
                return Some(Head { class_uid, time });
            }
            r.ws();
            r.eat(b',')?;
        }
    }
}

/// A cursor over the start of a JSON line, for [`Head::quick`]: every step returns
/// `None` on anything unexpected.
struct Scanner<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.b.get(self.at) == Some(&c)).then(|| self.at += 1)
    }

    /// A string without escapes (a key), its bytes.
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let rest = &self.b[self.at..];
        let end = rest.iter().position(|&c| c == b'"' || c == b'\\')?;
        if rest[end] != b'"' {
            return None;
        }
        self.at += end + 1;
        Some(&rest[..end])
    }

    /// A JSON integer that fits an i64 (no fraction, no exponent).
    fn int(&mut self) -> Option<i64> {
        let start = self.at;
        if self.b.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        let digits = self.at;
        while self.b.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        let n = self.at - digits;
        // JSON has no leading zeros; a fraction or exponent is not an integer.
        if n == 0 || (n > 1 && self.b[digits] == b'0') {
            return None;
        }
        if matches!(self.b.get(self.at), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        std::str::from_utf8(&self.b[start..self.at])
            .ok()?
            .parse()
            .ok()
    }

    /// Steps over one value (not checked to be valid JSON: only strings, and the
    /// nesting of objects and lists, are followed).
    fn skip_value(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            match *self.b.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    loop {
                        let rest = &self.b[self.at..];
                        let i = rest.iter().position(|&c| c == b'"' || c == b'\\')?;
                        self.at += i + 1;
                        if rest[i] == b'"' {
                            break;
                        }
                        // An escape: the next byte is part of it.
                        self.at += 1;
                    }
                    if depth == 0 {
                        return Some(());
                    }
                    continue;
                }
                b'{' | b'[' => depth += 1,
                // The end of the object holding a scalar: the scalar is over.
                b'}' | b']' if depth == 0 => return Some(()),
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        self.at += 1;
                        return Some(());
                    }
                }
                b',' if depth == 0 => return Some(()),
                _ => {}
            }
            self.at += 1;
        }
    }
}

impl BatchBuilder {
    /// Adds one event, given as its JSON text (checked by [`Head::of`] first), stored
    /// with sequence `seq`; the same columns as [`BatchBuilder::push`] of the parsed
    /// object, without building it.
    pub fn push_json(&mut self, seq: u64, line: &[u8]) -> Result<(), String> {
        let fields = self.schema.fields();
        let mut d = serde_json::Deserializer::from_slice(line);
        serde::de::DeserializeSeed::deserialize(
            Top {
                fields: &fields[..fields.len() - 1],
                cols: &mut self.cols,
                bad: &mut self.anomalies,
            },
            &mut d,
        )
        .map_err(|e| format!("cannot store (after its head was read): {e}"))?;
        self.seqs.append_value(seq);
        self.rows += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quick_head_agrees_with_the_whole_parse_or_gives_way_to_it() {
        let cases: &[&[u8]] = &[
            br#"{"activity_id":1,"class_uid":1007,"x":{"a":[1,"}"]},"time":-5,"y":2}"#,
            br#" { "time" : 12 , "s":"a\"b", "class_uid":3002}"#,
            br#"{"class_uid":1007,"time":1.5}"#,
            br#"{"class_uid":1007,"time":05}"#,
            br#"{"class_uid":"1007","time":5}"#,
            br#"{"class_uid":1007,"class_uid":1001,"time":5}"#,
            br#"{"cl\u0061ss_uid":1007,"time":5}"#,
            br#"{"class_uid":1007}"#,
            br#"[1,2]"#,
            b"",
        ];
        for (i, line) in cases.iter().enumerate() {
            let quick = Head::quick(line).map(|h| (h.class_uid, h.time));
            let whole = Head::of(line).map(|h| (h.class_uid, h.time)).ok();
            match i {
                0 => assert_eq!(quick, Some((1007, -5))),
                1 => assert_eq!(quick, Some((3002, 12))),
                _ => assert_eq!(quick, None, "case {i}"),
            }
            if let Some(q) = quick {
                assert_eq!(Some(q), whole, "case {i}");
            }
        }
    }
}
