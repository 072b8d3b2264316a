//! JSON encoding of YANG data (RFC 7951) with the YANG names of Table 5,
//! for the CLI, logs and web pages. Top-level containers carry the module
//! name ("ietf-dots-signal-channel:mitigation-scope"); inner members do not.

use serde_json::{Map, Value};

use super::decimal::Decimal;
use super::error::SignalError;
use super::keys::{self, Elem, JsonNum, Kind, KeyDef};
use super::tree::{limits, Node};

pub fn decode(text: &str) -> Result<Node, SignalError> {
    if text.len() > limits::MAX_BODY {
        return Err(SignalError::BodyTooLarge { size: text.len(), limit: limits::MAX_BODY });
    }
    // serde_json stops at 128 levels itself; ours is checked below.
    let v: Value = serde_json::from_str(text).map_err(|e| SignalError::Malformed(e.to_string()))?;
    container(&v, keys::BODY, 1)
}

pub fn encode(n: &Node) -> Value {
    to_value(n, None)
}

fn container(v: &Value, parent: u16, depth: usize) -> Result<Node, SignalError> {
    check_depth(depth)?;
    let Value::Object(members) = v else {
        return Err(SignalError::WrongType { field: keys::name(parent), expected: "object" });
    };
    // serde_json keeps the last of duplicate names, so duplicates are
    // not visible here; JSON has no comprehension-optional names.
    let mut out = Vec::with_capacity(members.len());
    for (name, val) in members {
        let def = keys::by_name(name)
            .ok_or_else(|| SignalError::UnknownAttribute { name: name.clone() })?;
        out.push((def.id, value(val, def, depth + 1)?));
    }
    out.sort_by_key(|(k, _)| *k);
    Ok(Node::Map(out))
}

fn check_depth(depth: usize) -> Result<(), SignalError> {
    if depth > limits::MAX_DEPTH {
        return Err(SignalError::TooDeep { limit: limits::MAX_DEPTH });
    }
    Ok(())
}

fn value(v: &Value, def: &'static KeyDef, depth: usize) -> Result<Node, SignalError> {
    check_depth(depth)?;
    match def.kind {
        Kind::Container => container(v, def.id, depth),
        Kind::List(elem) => list(v, def, elem, depth),
        Kind::Uint { max, .. } => uint(v, def, max).map(Node::Uint),
        Kind::Enum(labels) => {
            let Value::String(s) = v else { return Err(wrong(def, "enumeration label")) };
            keys::value_of(labels, s).map(Node::Uint).ok_or_else(|| SignalError::InvalidValue {
                field: def.name,
                value: s.clone(),
                reason: "unknown enumeration label",
            })
        }
        Kind::Lifetime => match v.as_i64() {
            Some(-1) => Ok(Node::Int(-1)),
            Some(n) if (0..=i64::from(u32::MAX)).contains(&n) => Ok(Node::Uint(n as u64)),
            _ => Err(SignalError::OutOfRange { field: def.name, value: v.to_string() }),
        },
        Kind::Text => text(v, def).map(Node::Text),
        Kind::Bool => v.as_bool().map(Node::Bool).ok_or_else(|| wrong(def, "boolean")),
        Kind::Decimal => decimal(v, def).map(Node::Decimal),
    }
}

fn list(v: &Value, def: &'static KeyDef, elem: Elem, depth: usize) -> Result<Node, SignalError> {
    let Value::Array(items) = v else { return Err(wrong(def, "array")) };
    if items.len() > limits::MAX_ITEMS {
        return Err(SignalError::TooManyItems {
            field: def.name,
            len: items.len(),
            limit: limits::MAX_ITEMS,
        });
    }
    let one = |item: &Value| match elem {
        Elem::Container => container(item, def.id, depth + 1),
        Elem::Text => text(item, def).map(Node::Text),
        Elem::Uint(max) => uint(item, def, max).map(Node::Uint),
    };
    items.iter().map(one).collect::<Result<_, _>>().map(Node::List)
}

/// A number, or a string of digits for the 64-bit types (RFC 7951, 6.1).
fn uint(v: &Value, def: &'static KeyDef, max: u64) -> Result<u64, SignalError> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        _ => return Err(wrong(def, "unsigned integer")),
    };
    n.filter(|n| *n <= max)
        .ok_or_else(|| SignalError::OutOfRange { field: def.name, value: v.to_string() })
}

fn text(v: &Value, def: &'static KeyDef) -> Result<String, SignalError> {
    let Value::String(s) = v else { return Err(wrong(def, "string")) };
    if s.len() > limits::MAX_TEXT {
        return Err(SignalError::TextTooLong { field: def.name, len: s.len(), limit: limits::MAX_TEXT });
    }
    Ok(s.clone())
}

/// decimal64 is a JSON string ("1.50", RFC 7951 6.1).
fn decimal(v: &Value, def: &'static KeyDef) -> Result<Decimal, SignalError> {
    let Value::String(s) = v else { return Err(wrong(def, "decimal string")) };
    s.parse().map_err(|_| SignalError::InvalidValue {
        field: def.name,
        value: s.clone(),
        reason: "not a decimal with at most two fraction digits",
    })
}

fn wrong(def: &'static KeyDef, expected: &'static str) -> SignalError {
    SignalError::WrongType { field: def.name, expected }
}

/// `def` is the attribute the node is the value of (None for list items
/// and the body).
fn to_value(n: &Node, def: Option<&'static KeyDef>) -> Value {
    match n {
        Node::Map(m) => {
            let mut o = Map::new();
            for (k, v) in m {
                let d = keys::by_id(*k);
                o.insert(keys::name(*k).to_string(), to_value(v, d));
            }
            Value::Object(o)
        }
        Node::List(l) => Value::Array(l.iter().map(|x| to_value(x, def)).collect()),
        Node::Uint(u) => uint_json(*u, def),
        Node::Int(i) => Value::from(*i),
        Node::Text(s) => Value::String(s.clone()),
        Node::Bool(b) => Value::Bool(*b),
        Node::Decimal(d) => Value::String(d.to_string()),
    }
}

fn uint_json(u: u64, def: Option<&'static KeyDef>) -> Value {
    match def.map(|d| d.kind) {
        Some(Kind::Enum(labels)) => match keys::label(labels, u) {
            Some(l) => Value::String(l.to_string()),
            None => Value::from(u),
        },
        Some(Kind::Uint { json: JsonNum::String, .. }) => Value::String(u.to_string()),
        _ => Value::from(u),
    }
}
