//! The pipe language compiled to SQL, each field checked against the schema of the stage
//! it is used in (so a typo is reported at its place with the nearest real field).
//!
//! Stages that change the shape of the rows (`project`, `count`, `summarize`,
//! `distinct`, `take`) are wrapped as subqueries when a later stage needs the rows they
//! produce; DataFusion's optimizer flattens the nesting again, so the plan is the one
//! the equivalent hand-written SQL gets.

use crate::pipe::{
    Agg, AggFunc, CmpOp, Expr, Field, Lit, PipeError, Pipeline, Spanned, Stage, StrOp,
};
use datafusion::arrow::datatypes::{DataType, Fields, Schema};

/// What the compiler needs to know of the tables.
pub trait Tables {
    /// The schema of a table, `None` if there is no such table.
    fn table_schema(&self, name: &str) -> Option<Schema>;
    /// The names of all tables (for "did you mean").
    fn table_names(&self) -> Vec<String>;
    /// The output schema of a SQL query over the tables (to check the fields of the
    /// stages after a subquery).
    fn query_schema(&self, sql: &str) -> Result<Schema, String>;
}

/// A SQL identifier, quoted (OCSF names are lowercase, but `type` and friends are
/// keywords).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal.
pub fn quote_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The SQL for a nested field: `"actor"['process']['file']['name']`... written as the
/// nested `get_field` calls DataFusion plans struct access with.
pub fn field_sql(path: &[String]) -> String {
    let mut out = quote_ident(&path[0]);
    for part in &path[1..] {
        out = format!("get_field({out}, {})", quote_str(part));
    }
    out
}

/// Every leaf and object path of a schema, dotted (`actor.process.file.name`).
pub fn all_paths(fields: &Fields) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(prefix: &str, fields: &Fields, out: &mut Vec<String>) {
        for f in fields {
            let path = if prefix.is_empty() {
                f.name().clone()
            } else {
                format!("{prefix}.{}", f.name())
            };
            if let DataType::Struct(children) = f.data_type() {
                walk(&path, children, out);
            }
            out.push(path);
        }
    }
    walk("", fields, &mut out);
    out
}

/// The type of a dotted path in a schema: a top-level column of that exact name (a
/// projected `device.hostname`), or a walk through nested structs.
pub fn resolve(schema: &Schema, path: &[String]) -> Option<(Vec<String>, DataType)> {
    let joined = path.join(".");
    if let Ok(f) = schema.field_with_name(&joined) {
        return Some((vec![joined], f.data_type().clone()));
    }
    let mut fields = schema.fields();
    let mut ty: Option<DataType> = None;
    for part in path {
        let f = fields.iter().find(|f| f.name() == part)?;
        ty = Some(f.data_type().clone());
        fields = match f.data_type() {
            DataType::Struct(c) => c,
            _ => &EMPTY,
        };
    }
    Some((path.to_vec(), ty?))
}

static EMPTY: std::sync::LazyLock<Fields> = std::sync::LazyLock::new(Fields::empty);

/// "did you mean" for a dotted path not in `schema`: the nearest path by edit distance,
/// else one ending in the same last name.
pub fn suggest(schema: &Schema, dotted: &str) -> Option<String> {
    let paths = all_paths(schema.fields());
    if let Some(c) = crate::pipe::closest(dotted, paths.iter().map(String::as_str)) {
        return Some(c.to_string());
    }
    let last = dotted.rsplit('.').next().unwrap_or(dotted);
    let mut same_last: Vec<&String> = paths
        .iter()
        .filter(|p| p.rsplit('.').next() == Some(last))
        .collect();
    same_last.sort_by_key(|p| p.len());
    same_last.first().map(|s| s.to_string())
}

#[derive(Default)]
struct Select {
    /// The FROM clause: a table or a parenthesised subquery.
    from: String,
    /// The name the source is known by in errors.
    what: String,
    /// The schema of the FROM.
    schema: Option<Schema>,
    filters: Vec<String>,
    columns: Option<Vec<String>>,
    group_by: Vec<String>,
    distinct: bool,
    order: Vec<String>,
    limit: Option<u64>,
}

impl Select {
    fn sql(&self) -> String {
        let mut s = String::from("SELECT ");
        if self.distinct {
            s.push_str("DISTINCT ");
        }
        match &self.columns {
            Some(c) => s.push_str(&c.join(", ")),
            None => s.push('*'),
        }
        s.push_str(" FROM ");
        s.push_str(&self.from);
        if !self.filters.is_empty() {
            s.push_str(" WHERE ");
            s.push_str(&self.filters.join(" AND "));
        }
        if !self.group_by.is_empty() {
            s.push_str(" GROUP BY ");
            s.push_str(&self.group_by.join(", "));
        }
        if !self.order.is_empty() {
            s.push_str(" ORDER BY ");
            s.push_str(&self.order.join(", "));
        }
        if let Some(n) = self.limit {
            s.push_str(&format!(" LIMIT {n}"));
        }
        s
    }

    fn shaped(&self) -> bool {
        self.columns.is_some() || !self.group_by.is_empty() || self.distinct || self.limit.is_some()
    }
}

/// The result of compiling: the SQL, and the time range the query is bounded to (for
/// pruning the store's partitions), as epoch milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    /// The SQL text.
    pub sql: String,
    /// The table read.
    pub table: String,
    /// The earliest time the query can see, if bounded.
    pub from_ms: Option<i64>,
    /// The latest time the query can see, if bounded.
    pub to_ms: Option<i64>,
}

/// Compiles a parsed pipeline to SQL over `tables`; `now_ms` is what `since` counts back
/// from.
pub fn compile(p: &Pipeline, tables: &dyn Tables, now_ms: i64) -> Result<Compiled, PipeError> {
    let table = &p.table;
    let Some(schema) = tables.table_schema(&table.value) else {
        let names = tables.table_names();
        let mut e = PipeError::new(
            table.start,
            table.end,
            format!("no table `{}`", table.value),
        );
        e = match crate::pipe::closest(&table.value, names.iter().map(String::as_str)) {
            Some(g) => e.hint(format!("did you mean `{g}`?")),
            None if names.is_empty() => e.hint("no tables: is the store empty?"),
            None => e.hint(format!("tables: {}", names.join(", "))),
        };
        return Err(e);
    };
    let mut sel = Select {
        from: quote_ident(&table.value),
        what: table.value.clone(),
        schema: Some(schema),
        ..Select::default()
    };
    let (mut from_ms, mut to_ms) = (None::<i64>, None::<i64>);
    for stage in &p.stages {
        match stage {
            Stage::Where(e) => {
                if sel.shaped() {
                    sel = wrap(sel, tables)?;
                }
                let cond = expr_sql(e, &sel)?;
                sel.filters.push(cond);
            }
            Stage::Since(d) => {
                if sel.shaped() {
                    sel = wrap(sel, tables)?;
                }
                let from = now_ms.saturating_sub(d.value);
                from_ms = Some(from_ms.map_or(from, |f| f.max(from)));
                sel.filters
                    .push(time_cmp(&sel, d.start, d.end, ">=", from)?);
            }
            Stage::Between(a, b) => {
                if sel.shaped() {
                    sel = wrap(sel, tables)?;
                }
                if b.value < a.value {
                    return Err(
                        PipeError::new(a.start, b.end, "the range ends before it starts")
                            .hint("between EARLIER and LATER"),
                    );
                }
                from_ms = Some(from_ms.map_or(a.value, |f| f.max(a.value)));
                to_ms = Some(to_ms.map_or(b.value, |t| t.min(b.value)));
                sel.filters
                    .push(time_cmp(&sel, a.start, a.end, ">=", a.value)?);
                sel.filters
                    .push(time_cmp(&sel, b.start, b.end, "<=", b.value)?);
            }
            Stage::Project(fields) | Stage::Distinct(fields) => {
                if sel.shaped() {
                    sel = wrap(sel, tables)?;
                }
                let mut cols = Vec::new();
                for f in fields {
                    cols.push(format!(
                        "{} AS {}",
                        check(f, &sel)?,
                        quote_ident(&f.dotted())
                    ));
                }
                sel.columns = Some(cols);
                sel.distinct = matches!(stage, Stage::Distinct(_));
            }
            Stage::Count(by) => {
                if sel.shaped() || !sel.order.is_empty() {
                    sel = wrap(sel, tables)?;
                }
                let aggs = [Agg {
                    func: AggFunc::Count,
                    field: None,
                    name: "count".into(),
                }];
                group(&mut sel, &aggs, by)?;
            }
            Stage::Summarize(aggs, by) => {
                if sel.shaped() || !sel.order.is_empty() {
                    sel = wrap(sel, tables)?;
                }
                group(&mut sel, aggs, by)?;
            }
            Stage::Sort(keys) => {
                if sel.shaped() {
                    sel = wrap(sel, tables)?;
                }
                let mut order = Vec::new();
                for (f, desc) in keys {
                    let dir = if *desc { "DESC" } else { "ASC" };
                    order.push(format!("{} {dir}", check(f, &sel)?));
                }
                sel.order = order;
            }
            Stage::Take(n) => {
                sel.limit = Some(sel.limit.map_or(*n, |l| l.min(*n)));
            }
        }
    }
    Ok(Compiled {
        sql: sel.sql(),
        table: table.value.clone(),
        from_ms,
        to_ms,
    })
}

fn wrap(sel: Select, tables: &dyn Tables) -> Result<Select, PipeError> {
    let sql = sel.sql();
    let schema = tables
        .query_schema(&sql)
        .map_err(|e| PipeError::new(0, 0, format!("planning the stages so far: {e}")))?;
    Ok(Select {
        from: format!("({sql}) AS s"),
        what: format!("the output of the stages before (from {})", sel.what),
        schema: Some(schema),
        ..Select::default()
    })
}

fn group(sel: &mut Select, aggs: &[Agg], by: &[Field]) -> Result<(), PipeError> {
    let mut cols = Vec::new();
    let mut group_by = Vec::new();
    for f in by {
        let e = check(f, sel)?;
        cols.push(format!("{e} AS {}", quote_ident(&f.dotted())));
        group_by.push(e);
    }
    for a in aggs {
        let arg = match &a.field {
            Some(f) => check(f, sel)?,
            None => String::new(),
        };
        let call = match a.func {
            AggFunc::Count => "count(*)".to_string(),
            AggFunc::DCount => format!("count(DISTINCT {arg})"),
            AggFunc::Min => format!("min({arg})"),
            AggFunc::Max => format!("max({arg})"),
            AggFunc::Sum => format!("sum({arg})"),
            AggFunc::Avg => format!("avg({arg})"),
        };
        cols.push(format!("{call} AS {}", quote_ident(&a.name)));
    }
    sel.columns = Some(cols);
    sel.group_by = group_by;
    Ok(())
}

/// Checks that a field exists where it is used and returns its SQL.
fn check(f: &Field, sel: &Select) -> Result<String, PipeError> {
    Ok(field_sql(&check_typed(f, sel)?.0))
}

fn check_typed(f: &Field, sel: &Select) -> Result<(Vec<String>, DataType), PipeError> {
    let schema = sel
        .schema
        .as_ref()
        .expect("every select has its source's schema");
    resolve(schema, &f.value).ok_or_else(|| {
        let dotted = f.dotted();
        let e = PipeError::new(f.start, f.end, format!("no field {dotted} in {}", sel.what));
        match suggest(schema, &dotted) {
            Some(s) => e.hint(format!("did you mean {s}?")),
            None => e.hint(format!(
                "fields: {}",
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    })
}

fn time_cmp(
    sel: &Select,
    start: usize,
    end: usize,
    op: &str,
    ms: i64,
) -> Result<String, PipeError> {
    let f = Spanned {
        value: vec!["time".to_string()],
        start,
        end,
    };
    let (path, ty) = check_typed(&f, sel).map_err(|e| {
        PipeError::new(
            start,
            end,
            format!("{}: time filters need a `time` column", e.message),
        )
    })?;
    let col = field_sql(&path);
    Ok(match ty {
        DataType::Timestamp(_, _) => format!("{col} {op} to_timestamp_millis({ms})"),
        _ => format!("{col} {op} {ms}"),
    })
}

fn lit_sql(l: &Lit) -> String {
    match l {
        Lit::Str(s) => quote_str(s),
        Lit::Int(n) => n.to_string(),
        Lit::Float(f) => format!("{f:?}"),
        Lit::Bool(b) => b.to_string(),
        Lit::Null => "NULL".into(),
    }
}

fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn expr_sql(e: &Expr, sel: &Select) -> Result<String, PipeError> {
    Ok(match e {
        Expr::And(a, b) => format!("({} AND {})", expr_sql(a, sel)?, expr_sql(b, sel)?),
        Expr::Or(a, b) => format!("({} OR {})", expr_sql(a, sel)?, expr_sql(b, sel)?),
        Expr::Not(a) => format!("(NOT {})", expr_sql(a, sel)?),
        Expr::Truthy(f) => format!("({} = true)", check(f, sel)?),
        Expr::Cmp(f, op, lit) => {
            let col = check(f, sel)?;
            match (&lit.value, op) {
                (Lit::Null, CmpOp::Eq) => format!("({col} IS NULL)"),
                (Lit::Null, CmpOp::Ne) => format!("({col} IS NOT NULL)"),
                (Lit::Null, _) => {
                    return Err(PipeError::new(
                        lit.start,
                        lit.end,
                        "null compares only with == and !=",
                    )
                    .hint(format!(
                        "{} == null, {} != null",
                        f.dotted(),
                        f.dotted()
                    )))
                }
                _ => {
                    let op = match op {
                        CmpOp::Eq => "=",
                        CmpOp::Ne => "<>",
                        CmpOp::Lt => "<",
                        CmpOp::Le => "<=",
                        CmpOp::Gt => ">",
                        CmpOp::Ge => ">=",
                    };
                    format!("({col} {op} {})", lit_sql(&lit.value))
                }
            }
        }
        Expr::Str(f, op, s) => {
            let col = check(f, sel)?;
            match op {
                StrOp::Contains => format!(
                    "({col} LIKE {})",
                    quote_str(&format!("%{}%", like_escape(&s.value)))
                ),
                StrOp::StartsWith => format!("starts_with({col}, {})", quote_str(&s.value)),
                StrOp::EndsWith => format!("ends_with({col}, {})", quote_str(&s.value)),
                StrOp::Matches => {
                    if let Err(err) = regex_check(&s.value) {
                        return Err(PipeError::new(
                            s.start,
                            s.end,
                            format!("not a regular expression: {err}"),
                        )
                        .hint("the syntax of Rust's regex crate: \\d, [a-z]+, (a|b), ^...$"));
                    }
                    format!("({col} ~ {})", quote_str(&s.value))
                }
            }
        }
        Expr::In(f, items, negated) => {
            let col = check(f, sel)?;
            let list: Vec<String> = items.iter().map(|l| lit_sql(&l.value)).collect();
            let not = if *negated { "NOT " } else { "" };
            format!("({col} {not}IN ({}))", list.join(", "))
        }
    })
}

fn regex_check(re: &str) -> Result<(), String> {
    regex::Regex::new(re).map(|_| ()).map_err(|e| {
        e.to_string()
            .lines()
            .last()
            .unwrap_or("")
            .trim()
            .to_string()
    })
}
