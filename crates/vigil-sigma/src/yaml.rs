//! A small YAML document tree that remembers the line of every node, built from
//! `yaml-rust2`'s event parser, so that every rule error can name its line.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A YAML node with the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// 1-based line of the node's first token.
    pub line: usize,
    /// The node itself.
    pub kind: Kind,
    /// The source text of a plain scalar that was typed as null, bool or number.
    pub raw: Option<Box<str>>,
}

/// The shape of a node. Plain scalars are typed (null, bool, int, float) the way YAML 1.2's
/// core schema does; quoted scalars are always strings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_scalar_str().as_deref() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string of a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Any scalar rendered as text (numbers and booleans as YAML wrote them, roughly).
    pub fn as_scalar_str(&self) -> Option<String> {
        if let Some(r) = &self.raw {
            return Some(r.to_string());
        }
        match &self.kind {
            Kind::Str(s) => Some(s.clone()),
            Kind::Int(i) => Some(i.to_string()),
            Kind::Float(f) => Some(f.to_string()),
            Kind::Bool(b) => Some(b.to_string()),
            Kind::Null => Some(String::new()),
            Kind::Seq(_) | Kind::Map(_) => None,
        }
    }

    /// A short name of the node's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

/// A YAML syntax error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlError {
    pub line: usize,
    pub reason: String,
}

/// Deepest nesting accepted; deeper documents are rejected rather than risking the stack.
const MAX_DEPTH: usize = 64;
/// Most nodes an alias may expand a document to (guards against "billion laughs").
const MAX_NODES: usize = 1_000_000;

enum Frame {
    Seq(usize, Vec<Node>, usize),
    Map(usize, Vec<(Node, Node)>, Option<Node>, usize),
}

#[derive(Default)]
struct Builder {
    docs: Vec<Node>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    error: Option<YamlError>,
    nodes: usize,
}

fn resolve_plain(s: String, tag: Option<&Tag>) -> Kind {
    if let Some(t) = tag {
        if t.suffix == "str" {
            return Kind::Str(s);
        }
    }
    match s.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Kind::Null,
        "true" | "True" | "TRUE" => return Kind::Bool(true),
        "false" | "False" | "FALSE" => return Kind::Bool(false),
        _ => {}
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(&s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = s.parse::<i64>() {
            return Kind::Int(i);
        }
    }
    if let Some(hex) = s.strip_prefix("0x") {
        if let Ok(i) = i64::from_str_radix(hex, 16) {
            return Kind::Int(i);
        }
    }
    if let Some(oct) = s.strip_prefix("0o") {
        if let Ok(i) = i64::from_str_radix(oct, 8) {
            return Kind::Int(i);
        }
    }
    let looks_float = digits.bytes().any(|b| b.is_ascii_digit())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if looks_float {
        if let Ok(f) = s.parse::<f64>() {
            return Kind::Float(f);
        }
    }
    Kind::Str(s)
}

impl Builder {
    fn fail(&mut self, line: usize, reason: &str) {
        if self.error.is_none() {
            self.error = Some(YamlError {
                line,
                reason: reason.to_string(),
            });
        }
    }

    fn push_node(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq(_, items, _)) => items.push(node),
            Some(Frame::Map(_, entries, key, _)) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }
}

fn count_nodes(n: &Node) -> usize {
    match &n.kind {
        Kind::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Kind::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| count_nodes(k) + count_nodes(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let line = mark.line();
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            self.fail(line, "document too large");
            return;
        }
        match ev {
            Event::Scalar(value, style, anchor, tag) => {
                let (kind, raw) = if style == TScalarStyle::Plain {
                    let raw: Box<str> = value.as_str().into();
                    match resolve_plain(value, tag.as_ref()) {
                        Kind::Str(s) => (Kind::Str(s), None),
                        other => (other, Some(raw)),
                    }
                } else {
                    (Kind::Str(value), None)
                };
                self.push_node(Node { line, kind, raw }, anchor);
            }
            Event::SequenceStart(anchor, _) => {
                if self.stack.len() >= MAX_DEPTH {
                    self.fail(line, "nesting too deep");
                    return;
                }
                self.stack.push(Frame::Seq(line, Vec::new(), anchor));
            }
            Event::MappingStart(anchor, _) => {
                if self.stack.len() >= MAX_DEPTH {
                    self.fail(line, "nesting too deep");
                    return;
                }
                self.stack.push(Frame::Map(line, Vec::new(), None, anchor));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Seq(l, items, anchor)) => (
                        Node {
                            line: l,
                            kind: Kind::Seq(items),
                            raw: None,
                        },
                        anchor,
                    ),
                    Some(Frame::Map(l, entries, _, anchor)) => (
                        Node {
                            line: l,
                            kind: Kind::Map(entries),
                            raw: None,
                        },
                        anchor,
                    ),
                    None => {
                        self.fail(line, "unbalanced collection end");
                        return;
                    }
                };
                self.push_node(node.0, node.1);
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(mut n) => {
                    self.nodes += count_nodes(&n);
                    if self.nodes > MAX_NODES {
                        self.fail(line, "alias expansion too large");
                        return;
                    }
                    n.line = line;
                    self.push_node(n, 0);
                }
                None => self.fail(line, "alias to an unknown anchor"),
            },
            Event::DocumentEnd => {
                self.anchors.clear();
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart => {}
        }
    }
}

/// Parses every document of a YAML stream. Empty documents are skipped.
pub(crate) fn parse_documents(text: &str) -> Result<Vec<Node>, YamlError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        return Err(YamlError {
            line: e.marker().line(),
            reason: format!("invalid YAML: {}", e.info()),
        });
    }
    if let Some(e) = builder.error {
        return Err(e);
    }
    Ok(builder
        .docs
        .into_iter()
        .filter(|d| d.kind != Kind::Null)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_types_and_documents() {
        let docs =
            parse_documents("a: 1\nb:\n  - 'x'\n  - y\n  - null\n---\nc: true\n").expect("parses");
        assert_eq!(docs.len(), 2);
        let b = docs[0].get("b").expect("b");
        assert_eq!(b.line, 3);
        let Kind::Seq(items) = &b.kind else {
            panic!("seq")
        };
        assert_eq!(items[0].kind, Kind::Str("x".into()));
        assert_eq!(items[2].kind, Kind::Null);
        assert_eq!(docs[0].get("a").map(|n| &n.kind), Some(&Kind::Int(1)));
        assert_eq!(docs[1].get("c").map(|n| n.line), Some(7));
    }

    #[test]
    fn syntax_error_has_line() {
        let e = parse_documents("a: 1\nb: [\n").unwrap_err();
        assert!(e.line >= 2, "{e:?}");
    }

    #[test]
    fn quoted_numbers_stay_strings() {
        let d = parse_documents("a: '4688'\nb: 4688\n").expect("parses");
        assert_eq!(
            d[0].get("a").map(|n| &n.kind),
            Some(&Kind::Str("4688".into()))
        );
        assert_eq!(d[0].get("b").map(|n| &n.kind), Some(&Kind::Int(4688)));
    }
}
