//! Stored rows read as events, straight from the columns: the rule engine's field lookups
//! and keyword searches over a [`RecordBatch`] with no JSON text in between (the
//! retro-hunt reads every stored row and writes the text of only those a rule fires on).
//!
//! A row answers exactly as its JSON ([`crate::write_row_json`]) read back as a
//! `serde_json::Value` would: an absent value is no field, a struct is an object (even
//! with nothing in it), times are epoch milliseconds, a JSON text column is the JSON it
//! holds (a string when it does not parse), an absent list item is `null`, the store's
//! sequence column is not there. [`RowBatch::event`] with `lineage` false leaves the
//! lineage context (`parent_process`, `ancestry`) out of keyword searches, as
//! [`vigil_event::OcsfJson`] does; field lookups reach it either way.

use crate::schema::SEQ_COLUMN;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMillisecondType, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Field, TimeUnit};
use std::borrow::Cow;
use std::collections::HashMap;
use vigil_event::access::is_lineage;
use vigil_event::{key_hash, Event, FieldPath, Fields, Value};

/// What the walk needs to know of one field of the schema: its children by name (a
/// struct's members, a list's item), whether it holds JSON text, and whether this batch
/// has any value in it.
struct Node {
    /// The children's names and nodes, in schema order.
    kids: Vec<(Box<str>, Node)>,
    /// A struct member's index by the [`key_hash`] of its name (names are checked on
    /// lookup; a clash of hashes falls back to a scan).
    by_hash: HashMap<u64, usize>,
    /// For a JSON text column: its index in [`RowBatch::json`].
    json: Option<usize>,
    /// Whether the column holds a value in some row of the batch. Most of a class's
    /// columns hold none in an agent's events: keyword searches pass them by.
    live: bool,
    /// The children that are [`Node::live`], in order.
    live_kids: Vec<usize>,
}

impl Node {
    /// A node with no children yet.
    fn new(live: bool) -> Node {
        Node {
            kids: Vec::new(),
            by_hash: HashMap::new(),
            json: None,
            live,
            live_kids: Vec::new(),
        }
    }

    /// The node of `field`, whose column in this batch is `a`.
    fn of(field: &Field, a: &dyn Array, json_columns: &mut usize) -> Node {
        let mut node = Node::new(a.null_count() < a.len());
        match field.data_type() {
            DataType::Struct(fields) => {
                let s = a.as_struct();
                for (f, c) in fields.iter().zip(s.columns()) {
                    let kid = Node::of(f, c.as_ref(), json_columns);
                    node.kids.push((f.name().as_str().into(), kid));
                }
                node.index();
            }
            DataType::List(item) => {
                let values = a.as_list::<i32>().values();
                let kid = Node::of(item, values.as_ref(), json_columns);
                node.kids.push((item.name().as_str().into(), kid));
                node.index();
            }
            DataType::Utf8 if field.metadata().contains_key("vigil.json") => {
                node.json = Some(*json_columns);
                *json_columns += 1;
            }
            _ => {}
        }
        node
    }

    fn index(&mut self) {
        for (i, (name, kid)) in self.kids.iter().enumerate() {
            self.by_hash.entry(key_hash(name.as_bytes())).or_insert(i);
            if kid.live {
                self.live_kids.push(i);
            }
        }
    }

    /// The member called `name` (whose [`key_hash`] is `hash`).
    fn member(&self, name: &str, hash: u64) -> Option<usize> {
        match self.by_hash.get(&hash) {
            Some(&i) if &*self.kids[i].0 == name => Some(i),
            _ => self.kids.iter().position(|(n, _)| &**n == name),
        }
    }
}

/// A batch of stored rows of one class, each readable as an [`Event`] ([`RowBatch::event`]).
/// Its JSON text columns are parsed once, when the batch is made.
pub struct RowBatch {
    batch: RecordBatch,
    /// The top level's columns (the store's sequence left out).
    root: Node,
    /// The column index in `batch` of each of `root`'s children.
    columns: Vec<usize>,
    /// Each JSON text column's cells, parsed, by index in its array (`None`: absent, or
    /// text that is not JSON, read as a string).
    json: Vec<Vec<Option<serde_json::Value>>>,
}

impl RowBatch {
    /// Reads `batch` (rows of one of the store's classes, or any batch of the same kind
    /// of columns).
    pub fn new(batch: RecordBatch) -> RowBatch {
        let schema = batch.schema();
        let mut json_columns = 0;
        let mut root = Node::new(true);
        let mut columns = Vec::new();
        for (i, f) in schema.fields().iter().enumerate() {
            if f.name() == SEQ_COLUMN {
                continue;
            }
            let node = Node::of(f, batch.column(i).as_ref(), &mut json_columns);
            root.kids.push((f.name().as_str().into(), node));
            columns.push(i);
        }
        root.index();
        let mut json = vec![Vec::new(); json_columns];
        for ((_, node), &c) in root.kids.iter().zip(&columns) {
            parse_json(batch.column(c).as_ref(), node, &mut json);
        }
        RowBatch {
            batch,
            root,
            columns,
            json,
        }
    }

    /// The rows.
    pub fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// The batch.
    pub fn batch(&self) -> &RecordBatch {
        &self.batch
    }

    /// Row `row` as an event; with `lineage`, its keyword search sees the lineage context
    /// too (as for a JSON record that is not one of Vigil's OCSF events).
    pub fn event(&self, row: usize, lineage: bool) -> RowEvent<'_> {
        RowEvent {
            rows: self,
            row,
            lineage,
        }
    }

    /// The value of `a` at `row` (not null) as the JSON of it would give it, for parts
    /// `i..` of `path`.
    fn at<'a>(
        &'a self,
        a: &'a dyn Array,
        node: &'a Node,
        row: usize,
        path: &FieldPath,
        i: usize,
    ) -> Option<Value<'a>> {
        let end = i == path.len();
        match a.data_type() {
            DataType::Struct(_) => {
                if end {
                    return Some(Value::Object);
                }
                let s = a.as_struct();
                let k = node.member(path.part(i)?, path.part_hash(i))?;
                let (child, kid) = (s.column(k).as_ref(), &node.kids[k].1);
                if !kid.live || child.is_null(row) {
                    return None;
                }
                self.at(child, kid, row, path, i + 1)
            }
            DataType::List(_) => {
                let l = a.as_list::<i32>();
                let items = l.values().as_ref();
                let item = &node.kids.first()?.1;
                let offsets = l.value_offsets();
                let (from, to) = (offsets[row] as usize, offsets[row + 1] as usize);
                let found: Vec<Value<'a>> = (from..to)
                    .filter_map(|j| match items.is_null(j) {
                        true => end.then_some(Value::Null),
                        // An item written as nothing (a float that is not finite) is a
                        // `null` in the list's JSON.
                        false => self
                            .at(items, item, j, path, i)
                            .or_else(|| end.then_some(Value::Null)),
                    })
                    .collect();
                (end || !found.is_empty()).then_some(Value::List(found))
            }
            DataType::Utf8 => {
                if let Some(v) = self.json_cell(node, row) {
                    return v.field_at(path, i);
                }
                end.then(|| Value::Str(Cow::Borrowed(a.as_string::<i32>().value(row))))
            }
            _ if !end => None,
            _ => scalar(a, row),
        }
    }

    /// The parsed JSON of a JSON text column's cell, if it is one and parses.
    fn json_cell(&self, node: &Node, j: usize) -> Option<&serde_json::Value> {
        self.json.get(node.json?)?.get(j)?.as_ref()
    }

    /// Calls `f` with every string in `a` at `row` (not null), in the order of its JSON.
    fn strs<'a>(
        &'a self,
        a: &'a dyn Array,
        node: &'a Node,
        row: usize,
        lineage: bool,
        f: &mut dyn FnMut(&'a str),
    ) {
        match a.data_type() {
            DataType::Struct(_) => {
                let s = a.as_struct();
                for &k in &node.live_kids {
                    let (name, kid) = &node.kids[k];
                    let child = s.column(k).as_ref();
                    if (lineage || !is_lineage(name)) && !child.is_null(row) {
                        self.strs(child, kid, row, lineage, f);
                    }
                }
            }
            DataType::List(_) => {
                let l = a.as_list::<i32>();
                let items = l.values().as_ref();
                let Some((_, item)) = node.kids.first().filter(|(_, i)| i.live) else {
                    return;
                };
                let offsets = l.value_offsets();
                for j in offsets[row] as usize..offsets[row + 1] as usize {
                    if !items.is_null(j) {
                        self.strs(items, item, j, lineage, f);
                    }
                }
            }
            DataType::Utf8 => match self.json_cell(node, row) {
                Some(v) => json_strs(v, lineage, f),
                None => f(a.as_string::<i32>().value(row)),
            },
            _ => {}
        }
    }
}

/// Parses the JSON text cells under `a` into `out`, by JSON column.
fn parse_json(a: &dyn Array, node: &Node, out: &mut [Vec<Option<serde_json::Value>>]) {
    if !node.live {
        return;
    }
    match a.data_type() {
        DataType::Struct(_) => {
            for (c, (_, kid)) in a.as_struct().columns().iter().zip(&node.kids) {
                parse_json(c.as_ref(), kid, out);
            }
        }
        DataType::List(_) => {
            if let Some((_, item)) = node.kids.first() {
                parse_json(a.as_list::<i32>().values().as_ref(), item, out);
            }
        }
        DataType::Utf8 => {
            let Some(slot) = node.json.and_then(|n| out.get_mut(n)) else {
                return;
            };
            let s = a.as_string::<i32>();
            *slot = (0..s.len())
                .map(|j| match s.is_null(j) {
                    true => None,
                    false => serde_json::from_str(s.value(j)).ok(),
                })
                .collect();
        }
        _ => {}
    }
}

/// A scalar column's value at `row` as its JSON reads back; `None` for a float that is
/// not finite (written as nothing) or a type the store does not write.
fn scalar(a: &dyn Array, row: usize) -> Option<Value<'_>> {
    Some(match a.data_type() {
        DataType::Boolean => Value::Bool(a.as_boolean().value(row)),
        DataType::Int32 => Value::Int(a.as_primitive::<Int32Type>().value(row).into()),
        DataType::Int64 => Value::Int(a.as_primitive::<Int64Type>().value(row)),
        DataType::UInt32 => Value::Int(a.as_primitive::<UInt32Type>().value(row).into()),
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            Value::Int(a.as_primitive::<TimestampMillisecondType>().value(row))
        }
        DataType::UInt64 => {
            let v = a.as_primitive::<UInt64Type>().value(row);
            match i64::try_from(v) {
                Ok(i) => Value::Int(i),
                Err(_) => Value::Float(v as f64),
            }
        }
        DataType::Float64 => {
            let v = a
                .as_primitive::<arrow_array::types::Float64Type>()
                .value(row);
            if !v.is_finite() {
                return None;
            }
            Value::Float(v)
        }
        _ => return None,
    })
}

/// Every string of a JSON value, in order; without `lineage`, leaving out the members
/// named as lineage context (as [`vigil_event::OcsfJson`] does).
fn json_strs<'a>(v: &'a serde_json::Value, lineage: bool, f: &mut dyn FnMut(&'a str)) {
    use serde_json::Value as J;
    match v {
        J::String(s) => f(s),
        J::Array(a) => a.iter().for_each(|e| json_strs(e, lineage, f)),
        J::Object(m) => m
            .iter()
            .filter(|(k, _)| lineage || !is_lineage(k))
            .for_each(|(_, e)| json_strs(e, lineage, f)),
        J::Null | J::Bool(_) | J::Number(_) => {}
    }
}

/// One stored row as an [`Event`] ([`RowBatch::event`]).
#[derive(Clone, Copy)]
pub struct RowEvent<'b> {
    rows: &'b RowBatch,
    row: usize,
    lineage: bool,
}

impl Event for RowEvent<'_> {
    fn field(&self, path: &FieldPath) -> Option<Value<'_>> {
        let r = self.rows;
        let k = r.root.member(path.part(0)?, path.part_hash(0))?;
        let (col, node) = (r.batch.column(r.columns[k]).as_ref(), &r.root.kids[k].1);
        if !node.live || col.is_null(self.row) {
            return None;
        }
        r.at(col, node, self.row, path, 1)
    }

    fn for_each_str<'a>(&'a self, f: &mut dyn FnMut(&'a str)) {
        let r = self.rows;
        for &k in &r.root.live_kids {
            let (name, node) = &r.root.kids[k];
            let col = r.batch.column(r.columns[k]).as_ref();
            if (self.lineage || !is_lineage(name)) && !col.is_null(self.row) {
                r.strs(col, node, self.row, self.lineage, f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::builder::{Float64Builder, ListBuilder};
    use arrow_schema::Schema;
    use std::sync::Arc;

    /// A float that is not finite is written as nothing: absent as a member, `null` as a
    /// list item, as the row's JSON reads back.
    #[test]
    fn a_float_that_is_not_finite_reads_as_its_json_does() {
        let mut list = ListBuilder::new(Float64Builder::new());
        list.values().append_value(1.5);
        list.values().append_value(f64::NAN);
        list.values().append_null();
        list.append(true);
        let list = list.finish();
        let scalar = arrow_array::Float64Array::from(vec![f64::INFINITY]);
        let schema = Schema::new(vec![
            Field::new("l", list.data_type().clone(), true),
            Field::new("f", DataType::Float64, true),
        ]);
        let batch = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(list), Arc::new(scalar)])
            .expect("batch");
        let json = crate::row_to_json(&batch, 0);
        let rows = RowBatch::new(batch);
        for p in ["l", "f"] {
            let path = FieldPath::new(p);
            assert_eq!(
                rows.event(0, false).field(&path),
                json.field(&path),
                "{p} in {json}"
            );
        }
        assert_eq!(
            rows.event(0, false).field(&FieldPath::new("l")),
            Some(Value::List(vec![
                Value::Float(1.5),
                Value::Null,
                Value::Null
            ]))
        );
    }
}
