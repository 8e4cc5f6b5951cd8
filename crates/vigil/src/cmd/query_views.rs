//! `vigil query story|process|ioc`: the questions asked most, as SQL built for the tables
//! at hand (only the tables that have the fields a question needs are asked).

use crate::cmd::query::{bad_query, run_and_print, FormatArg, InputArgs, Shortcut};
use anyhow::Result;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use vigil_query::compile::{field_sql, quote_ident, quote_str, resolve, Tables};
use vigil_query::datafusion::arrow::array::{Array, RecordBatch};
use vigil_query::datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use vigil_query::{Engine, Language};

/// Runs a shortcut.
pub fn run(s: Shortcut, engine: &mut Engine, input: &InputArgs) -> Result<ExitCode> {
    match s {
        Shortcut::Story { id, .. } => story(engine, &id, input),
        Shortcut::Process { uid, .. } => process(engine, &uid, input),
        Shortcut::Ioc { value, .. } => ioc(engine, &value, input),
    }
}

/// The SQL of a dotted path if `table` has it.
fn has(engine: &Engine, table: &str, dotted: &str) -> Option<String> {
    let schema = engine.table_schema(table)?;
    let path: Vec<String> = dotted.split('.').map(str::to_string).collect();
    resolve(&schema, &path).map(|(p, _)| field_sql(&p))
}

/// A text column of the first of `fields` that `table` has, else NULL.
fn first_of(engine: &Engine, table: &str, fields: &[&str]) -> String {
    for f in fields {
        if let Some(sql) = has(engine, table, f) {
            return format!("CAST({sql} AS VARCHAR)");
        }
    }
    "CAST(NULL AS VARCHAR)".into()
}

/// What an event is about, in a few words, for the tables that have the fields.
fn detail(engine: &Engine, table: &str) -> String {
    let mut parts = Vec::new();
    for f in [
        "process.cmd_line",
        "file.path",
        "query.hostname",
        "module.file.path",
        "finding_info.title",
    ] {
        if let Some(sql) = has(engine, table, f) {
            parts.push(format!("CAST({sql} AS VARCHAR)"));
        }
    }
    if let (Some(ip), Some(port)) = (
        has(engine, table, "dst_endpoint.ip"),
        has(engine, table, "dst_endpoint.port"),
    ) {
        parts.push(format!("concat({ip}, ':', CAST({port} AS VARCHAR))"));
    }
    if parts.is_empty() {
        "CAST(NULL AS VARCHAR)".into()
    } else {
        format!("concat_ws(' ', {})", parts.join(", "))
    }
}

/// The time column as epoch milliseconds whatever its type.
fn time_ms(engine: &Engine, table: &str) -> String {
    match engine.table_schema(table).and_then(|s| {
        s.field_with_name("time")
            .ok()
            .map(|f| f.data_type().clone())
    }) {
        Some(vigil_query::datafusion::arrow::datatypes::DataType::Timestamp(_, _)) => {
            "CAST(to_unixtime(\"time\") * 1000 AS BIGINT)".into()
        }
        Some(_) => "CAST(\"time\" AS BIGINT)".into(),
        None => "CAST(NULL AS BIGINT)".into(),
    }
}

fn union(parts: Vec<String>, tail: &str) -> Option<String> {
    if parts.is_empty() {
        return None;
    }
    Some(format!(
        "SELECT * FROM ({}) AS u {tail}",
        parts.join(" UNION ALL ")
    ))
}

fn process(engine: &mut Engine, uid: &str, input: &InputArgs) -> Result<ExitCode> {
    let mut parts = Vec::new();
    for t in engine.table_names() {
        let mut conds = Vec::new();
        for f in ["actor.process.uid", "process.uid"] {
            if let Some(sql) = has(engine, &t, f) {
                conds.push(format!("{sql} = {}", quote_str(uid)));
            }
        }
        if conds.is_empty() {
            continue;
        }
        parts.push(format!(
            "SELECT {} AS time_ms, {} AS host, {} AS class, {} AS activity, {} AS detail FROM {} WHERE {}",
            time_ms(engine, &t),
            first_of(engine, &t, &["device.hostname"]),
            quote_str(&t),
            first_of(engine, &t, &["activity_name"]),
            detail(engine, &t),
            quote_ident(&t),
            conds.join(" OR ")
        ));
    }
    let Some(sql) = union(parts, "ORDER BY time_ms") else {
        eprintln!("no table has process uids (actor.process.uid, process.uid)");
        return Ok(ExitCode::from(3));
    };
    run_and_print(engine, &sql, Language::Sql, input)
}

/// What an indicator is.
#[derive(Debug, PartialEq, Eq)]
enum Ioc {
    Hash,
    Ip,
    Domain,
}

fn kind_of(value: &str) -> Option<Ioc> {
    let v = value.trim();
    if matches!(v.len(), 32 | 40 | 64 | 128) && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some(Ioc::Hash)
    } else if v.parse::<std::net::IpAddr>().is_ok() {
        Some(Ioc::Ip)
    } else if v.contains('.')
        && !v.starts_with('.')
        && v.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    {
        Some(Ioc::Domain)
    } else {
        None
    }
}

fn ioc(engine: &mut Engine, value: &str, input: &InputArgs) -> Result<ExitCode> {
    let Some(kind) = kind_of(value) else {
        eprintln!(
            "error: {value:?} is neither a hash (32, 40, 64 or 128 hex digits), an IP address nor a domain"
        );
        return Ok(ExitCode::from(2));
    };
    let v = value.trim();
    let mut parts = Vec::new();
    for t in engine.table_names() {
        let conds: Vec<String> = match kind {
            Ioc::Hash => {
                let lower = v.to_ascii_lowercase();
                [
                    "process.file.hashes",
                    "actor.process.file.hashes",
                    "file.hashes",
                    "module.file.hashes",
                ]
                .iter()
                .filter_map(|f| has(engine, &t, f))
                // The hashes are a list of {algorithm, value}: its text holds the value.
                .map(|sql| {
                    format!(
                        "strpos(lower(CAST({sql} AS VARCHAR)), {}) > 0",
                        quote_str(&lower)
                    )
                })
                .collect()
            }
            Ioc::Ip => ["src_endpoint.ip", "dst_endpoint.ip", "device.ip"]
                .iter()
                .filter_map(|f| has(engine, &t, f))
                .map(|sql| format!("{sql} = {}", quote_str(v)))
                .collect(),
            Ioc::Domain => [
                "query.hostname",
                "dst_endpoint.hostname",
                "dst_endpoint.domain",
            ]
            .iter()
            .filter_map(|f| has(engine, &t, f))
            .map(|sql| {
                format!(
                    "(lower({sql}) = {} OR ends_with(lower({sql}), {}))",
                    quote_str(&v.to_ascii_lowercase()),
                    quote_str(&format!(".{}", v.to_ascii_lowercase()))
                )
            })
            .collect(),
        };
        if conds.is_empty() {
            continue;
        }
        let time = time_ms(engine, &t);
        parts.push(format!(
            "SELECT {host} AS host, {puid} AS process_uid, {exe} AS executable, {cls} AS class, \
             count(*) AS events, min({time}) AS first_ms, max({time}) AS last_ms FROM {tbl} WHERE {cond} \
             GROUP BY {host}, {puid}, {exe}",
            host = first_of(engine, &t, &["device.hostname"]),
            puid = first_of(engine, &t, &["actor.process.uid"]),
            exe = first_of(engine, &t, &["actor.process.file.path", "actor.process.name"]),
            cls = quote_str(&t),
            tbl = quote_ident(&t),
            cond = conds.join(" OR "),
        ));
    }
    let Some(sql) = union(parts, "ORDER BY first_ms") else {
        eprintln!("no table has fields that hold a {kind:?} indicator");
        return Ok(ExitCode::from(3));
    };
    run_and_print(engine, &sql, Language::Sql, input)
}

/// A process of a story.
#[derive(Debug, Default)]
struct Node {
    parent: Option<String>,
    pid: String,
    cmd: String,
    time_ms: i64,
    children: Vec<String>,
    events: BTreeMap<String, u64>,
}

fn story(engine: &mut Engine, id: &str, input: &InputArgs) -> Result<ExitCode> {
    // The story's processes (each launch), then what each did (counts per class).
    let mut launches = Vec::new();
    let mut activity = Vec::new();
    for t in engine.table_names() {
        let Some(corr) = has(engine, &t, "metadata.correlation_uid") else {
            continue;
        };
        let cond = format!("{corr} = {}", quote_str(id));
        if let Some(uid) = has(engine, &t, "process.uid") {
            launches.push(format!(
                "SELECT {uid} AS uid, {} AS parent, {} AS pid, {} AS cmd, {} AS time_ms FROM {} WHERE {cond}",
                first_of(engine, &t, &["process.parent_process.uid"]),
                first_of(engine, &t, &["process.pid"]),
                first_of(engine, &t, &["process.cmd_line", "process.name"]),
                time_ms(engine, &t),
                quote_ident(&t)
            ));
        }
        if let Some(actor) = has(engine, &t, "actor.process.uid") {
            activity.push(format!(
                "SELECT {actor} AS uid, {} AS class, count(*) AS n FROM {} WHERE {cond} GROUP BY {actor}",
                quote_str(&t),
                quote_ident(&t)
            ));
        }
    }
    if input.format != FormatArg::Table {
        // The story's events as rows: the launches, for a machine to read.
        let Some(sql) = union(launches, "ORDER BY time_ms") else {
            eprintln!("no table has story ids (metadata.correlation_uid)");
            return Ok(ExitCode::from(3));
        };
        return run_and_print(engine, &sql, Language::Sql, input);
    }
    let Some(sql) = union(launches, "ORDER BY time_ms") else {
        eprintln!("no table has story ids (metadata.correlation_uid)");
        return Ok(ExitCode::from(3));
    };
    let timeout = (input.timeout > 0.0).then(|| std::time::Duration::from_secs_f64(input.timeout));
    let rows = match engine.run(&sql, Language::Sql, None, timeout) {
        Ok(o) => o,
        Err(e) => return bad_query(e),
    };
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    let mut order = Vec::new();
    for b in &rows.batches {
        for r in 0..b.num_rows() {
            let uid = text(b, 0, r);
            if uid.is_empty() {
                continue;
            }
            let n = nodes.entry(uid.clone()).or_default();
            if n.cmd.is_empty() {
                order.push(uid.clone());
                n.parent = Some(text(b, 1, r)).filter(|p| !p.is_empty());
                n.pid = text(b, 2, r);
                n.cmd = text(b, 3, r);
                n.time_ms = text(b, 4, r).parse().unwrap_or(0);
            }
        }
    }
    if let Some(sql) = union(activity, "") {
        match engine.run(&sql, Language::Sql, None, timeout) {
            Ok(o) => {
                for b in &o.batches {
                    for r in 0..b.num_rows() {
                        if let Some(n) = nodes.get_mut(&text(b, 0, r)) {
                            *n.events.entry(text(b, 1, r)).or_default() +=
                                text(b, 2, r).parse::<u64>().unwrap_or(0);
                        }
                    }
                }
            }
            Err(e) => return bad_query(e),
        }
    }
    if nodes.is_empty() {
        eprintln!("no process of story {id} in the events");
        return Ok(ExitCode::from(1));
    }
    let mut roots = Vec::new();
    for uid in &order {
        let parent = nodes[uid].parent.clone();
        match parent.filter(|p| nodes.contains_key(p) && p != uid) {
            Some(p) => {
                if let Some(n) = nodes.get_mut(&p) {
                    n.children.push(uid.clone());
                }
            }
            None => roots.push(uid.clone()),
        }
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "story {id}: {} processes", nodes.len())?;
    for r in &roots {
        print_tree(&mut out, &nodes, r, "", true, 0)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_tree(
    out: &mut dyn Write,
    nodes: &BTreeMap<String, Node>,
    uid: &str,
    prefix: &str,
    last: bool,
    depth: usize,
) -> std::io::Result<()> {
    let n = &nodes[uid];
    let branch = if depth == 0 {
        ""
    } else if last {
        "└─ "
    } else {
        "├─ "
    };
    let did: Vec<String> = n.events.iter().map(|(c, k)| format!("{c} {k}")).collect();
    let did = if did.is_empty() {
        String::new()
    } else {
        format!("  [{}]", did.join(", "))
    };
    writeln!(
        out,
        "{prefix}{branch}{} (pid {}, {}) {}{did}",
        n.cmd,
        n.pid,
        vigil_event::time::format_ms(n.time_ms),
        uid
    )?;
    let child_prefix = if depth == 0 {
        prefix.to_string()
    } else {
        format!("{prefix}{}", if last { "   " } else { "│  " })
    };
    if depth > 64 {
        return Ok(());
    }
    for (i, c) in n.children.iter().enumerate() {
        print_tree(
            out,
            nodes,
            c,
            &child_prefix,
            i + 1 == n.children.len(),
            depth + 1,
        )?;
    }
    Ok(())
}

fn text(b: &RecordBatch, col: usize, row: usize) -> String {
    let c = b.column(col);
    if c.is_null(row) {
        return String::new();
    }
    let opts = FormatOptions::default();
    ArrayFormatter::try_new(c.as_ref(), &opts)
        .map_or_else(|_| String::new(), |f| f.value(row).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indicators_are_told_apart_by_shape() {
        assert_eq!(kind_of("d41d8cd98f00b204e9800998ecf8427e"), Some(Ioc::Hash));
        assert_eq!(kind_of(&"a".repeat(64)), Some(Ioc::Hash));
        assert_eq!(kind_of("198.51.100.23"), Some(Ioc::Ip));
        assert_eq!(kind_of("2001:db8::1"), Some(Ioc::Ip));
        assert_eq!(kind_of("updates.example-cdn.net"), Some(Ioc::Domain));
        assert_eq!(kind_of("curl"), None);
        assert_eq!(kind_of("a..b"), None);
    }
}
