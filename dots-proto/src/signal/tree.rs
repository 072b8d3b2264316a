//! The neutral tree between the wire encodings and the typed model: maps
//! keyed by Table 5 ids, leaves already typed by the table. CBOR and JSON
//! each convert to and from this tree; the model converts once.

use super::decimal::Decimal;
use super::error::SignalError;
use super::keys;

/// Hostile-peer limits applied by both decoders.
pub mod limits {
    /// Largest body accepted (bytes of CBOR or JSON).
    pub const MAX_BODY: usize = 64 * 1024;
    /// The deepest legitimate message (mitigation-scope / scope / entry /
    /// conflict-information / conflict-scope / acl-list / entry / leaf) has
    /// 8 levels.
    pub const MAX_DEPTH: usize = 10;
    /// Entries of one list or leaf-list.
    pub const MAX_ITEMS: usize = 256;
    /// Bytes of one string (an URI is the longest legitimate value).
    pub const MAX_TEXT: usize = 2048;
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Map(Vec<(u16, Node)>),
    List(Vec<Node>),
    Uint(u64),
    /// Only 'lifetime' can be negative (-1).
    Int(i64),
    Text(String),
    Bool(bool),
    Decimal(Decimal),
}

/// Reads the members of one container, refusing members the container
/// does not define: "contains invalid or unknown parameters ... 4.00"
/// (section 4.4.1.3).
pub struct Fields {
    parent: &'static str,
    entries: Vec<(u16, Option<Node>)>,
}

impl Fields {
    pub fn new(parent: u16, node: Node) -> Result<Self, SignalError> {
        let parent = keys::name(parent);
        match node {
            Node::Map(m) => Ok(Fields {
                parent,
                entries: m.into_iter().map(|(k, v)| (k, Some(v))).collect(),
            }),
            _ => Err(SignalError::WrongType { field: parent, expected: "map" }),
        }
    }

    pub fn take(&mut self, id: u16) -> Option<Node> {
        self.entries.iter_mut().find(|(k, _)| *k == id).and_then(|(_, v)| v.take())
    }

    /// Fails on the first member nobody took.
    pub fn finish(self) -> Result<(), SignalError> {
        match self.entries.into_iter().find(|(_, v)| v.is_some()) {
            Some((k, _)) => Err(SignalError::UnexpectedAttribute {
                field: keys::name(k),
                parent: self.parent,
            }),
            None => Ok(()),
        }
    }

    pub fn uint(&mut self, id: u16) -> Result<Option<u64>, SignalError> {
        self.take(id).map(|n| as_uint(id, n)).transpose()
    }
    pub fn text(&mut self, id: u16) -> Result<Option<String>, SignalError> {
        self.take(id).map(|n| as_text(id, n)).transpose()
    }
    pub fn boolean(&mut self, id: u16) -> Result<Option<bool>, SignalError> {
        match self.take(id) {
            None => Ok(None),
            Some(Node::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(wrong(id, "boolean")),
        }
    }
    pub fn decimal(&mut self, id: u16) -> Result<Option<Decimal>, SignalError> {
        match self.take(id) {
            None => Ok(None),
            Some(Node::Decimal(d)) => Ok(Some(d)),
            Some(_) => Err(wrong(id, "decimal")),
        }
    }
    pub fn list(&mut self, id: u16) -> Result<Option<Vec<Node>>, SignalError> {
        match self.take(id) {
            None => Ok(None),
            Some(Node::List(l)) => Ok(Some(l)),
            Some(_) => Err(wrong(id, "array")),
        }
    }
    /// A list of containers, each read by `conv`; absent = empty.
    pub fn list_of<T>(&mut self, id: u16, conv: fn(Node) -> Result<T, SignalError>) -> Result<Vec<T>, SignalError> {
        self.list(id)?.unwrap_or_default().into_iter().map(conv).collect()
    }
    pub fn texts(&mut self, id: u16) -> Result<Vec<String>, SignalError> {
        let l = self.list(id)?.unwrap_or_default();
        l.into_iter().map(|n| as_text(id, n)).collect()
    }
    pub fn uints(&mut self, id: u16) -> Result<Vec<u64>, SignalError> {
        let l = self.list(id)?.unwrap_or_default();
        l.into_iter().map(|n| as_uint(id, n)).collect()
    }
}

fn wrong(id: u16, expected: &'static str) -> SignalError {
    SignalError::WrongType { field: keys::name(id), expected }
}

pub fn as_uint(id: u16, n: Node) -> Result<u64, SignalError> {
    match n {
        Node::Uint(v) => Ok(v),
        _ => Err(wrong(id, "unsigned integer")),
    }
}

pub fn as_text(id: u16, n: Node) -> Result<String, SignalError> {
    match n {
        Node::Text(s) => Ok(s),
        _ => Err(wrong(id, "text string")),
    }
}

/// Builds a map in key order (the order of Figure 8), skipping absent
/// optional members.
#[derive(Default)]
pub struct MapBuilder(Vec<(u16, Node)>);

impl MapBuilder {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn put(&mut self, id: u16, n: Node) -> &mut Self {
        self.0.push((id, n));
        self
    }
    pub fn opt(&mut self, id: u16, n: Option<Node>) -> &mut Self {
        if let Some(n) = n {
            self.0.push((id, n));
        }
        self
    }
    pub fn texts(&mut self, id: u16, v: &[String]) -> &mut Self {
        if !v.is_empty() {
            self.put(id, Node::List(v.iter().cloned().map(Node::Text).collect()));
        }
        self
    }
    pub fn build(&mut self) -> Node {
        let mut m = std::mem::take(&mut self.0);
        m.sort_by_key(|(k, _)| *k);
        Node::Map(m)
    }
}
