//! CBOR (RFC 8949) to and from the key-resolved tree, with Table 5's keys
//! (section 6) and the comprehension rules of section 10.6.1.1.

use ciborium::value::{Integer, Value};

use super::decimal::Decimal;
use super::error::SignalError;
use super::keys::{self, Elem, Kind, KeyDef};
use super::tree::{limits, Node};

/// CBOR tag of a decimal fraction (RFC 8949, 3.4.4), used for decimal64.
const TAG_DECIMAL_FRACTION: u64 = 4;

/// Decodes a message body into a tree whose root is the body map.
pub fn decode(bytes: &[u8]) -> Result<Node, SignalError> {
    if bytes.len() > limits::MAX_BODY {
        return Err(SignalError::BodyTooLarge { size: bytes.len(), limit: limits::MAX_BODY });
    }
    let mut rest = bytes;
    // ciborium recurses while parsing: its own limit stops a stack
    // overflow before our depth check sees the value.
    let v: Value = ciborium::de::from_reader_with_recursion_limit(&mut rest, limits::MAX_DEPTH)
        .map_err(|e| match e {
            ciborium::de::Error::RecursionLimitExceeded => {
                SignalError::TooDeep { limit: limits::MAX_DEPTH }
            }
            e => SignalError::Malformed(e.to_string()),
        })?;
    if !rest.is_empty() {
        return Err(SignalError::Malformed(format!("{} trailing bytes", rest.len())));
    }
    container(&v, keys::BODY, 1)
}

/// Encodes a tree (root = body map) into CBOR.
pub fn encode(n: &Node) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    ciborium::ser::into_writer(&to_value(n), &mut out).expect("CBOR into Vec");
    out
}

fn container(v: &Value, parent: u16, depth: usize) -> Result<Node, SignalError> {
    check_depth(depth)?;
    let Value::Map(entries) = v else {
        return Err(SignalError::WrongType { field: keys::name(parent), expected: "map" });
    };
    let mut out: Vec<(u16, Node)> = Vec::with_capacity(entries.len().min(64));
    for (k, val) in entries {
        let Some(def) = known_key(k)? else { continue };
        if out.iter().any(|(id, _)| *id == def.id) {
            return Err(SignalError::DuplicateKey { field: def.name });
        }
        out.push((def.id, value(val, def, depth + 1)?));
    }
    Ok(Node::Map(out))
}

/// `Ok(None)` for an unknown comprehension-optional key, which is ignored.
fn known_key(k: &Value) -> Result<Option<&'static KeyDef>, SignalError> {
    let Value::Integer(i) = k else {
        return Err(SignalError::InvalidKey(format!("{k:?}")));
    };
    let i = i128::from(*i);
    let key = u16::try_from(i)
        .ok()
        .filter(|k| *k >= 1)
        .ok_or_else(|| SignalError::InvalidKey(i.to_string()))?;
    match keys::by_id(key) {
        Some(d) => Ok(Some(d)),
        None if keys::is_comprehension_optional(key) => Ok(None),
        None => Err(SignalError::UnknownRequiredKey { key: i }),
    }
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
            let n = uint(v, def, u64::MAX)?;
            keys::label(labels, n).ok_or_else(|| out_of_range(def, n))?;
            Ok(Node::Uint(n))
        }
        Kind::Lifetime => lifetime(v, def),
        Kind::Text => text(v, def).map(Node::Text),
        Kind::Bool => match v {
            Value::Bool(b) => Ok(Node::Bool(*b)),
            _ => Err(wrong(def, "boolean")),
        },
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

fn uint(v: &Value, def: &'static KeyDef, max: u64) -> Result<u64, SignalError> {
    let Value::Integer(i) = v else { return Err(wrong(def, "unsigned integer")) };
    let i = i128::from(*i);
    u64::try_from(i)
        .ok()
        .filter(|n| *n <= max)
        .ok_or_else(|| SignalError::OutOfRange { field: def.name, value: i.to_string() })
}

/// uint32, or -1 for an indefinite lifetime (Table 5: major types 0 and 1).
fn lifetime(v: &Value, def: &'static KeyDef) -> Result<Node, SignalError> {
    let Value::Integer(i) = v else { return Err(wrong(def, "integer")) };
    match i128::from(*i) {
        -1 => Ok(Node::Int(-1)),
        n if (0..=i128::from(u32::MAX)).contains(&n) => Ok(Node::Uint(n as u64)),
        n => Err(SignalError::OutOfRange { field: def.name, value: n.to_string() }),
    }
}

fn text(v: &Value, def: &'static KeyDef) -> Result<String, SignalError> {
    let Value::Text(s) = v else { return Err(wrong(def, "text string")) };
    if s.len() > limits::MAX_TEXT {
        return Err(SignalError::TextTooLong { field: def.name, len: s.len(), limit: limits::MAX_TEXT });
    }
    Ok(s.clone())
}

/// Tag 4 [exponent, mantissa] (Table 5: "6 tag 4 [-2, integer]").
fn decimal(v: &Value, def: &'static KeyDef) -> Result<Decimal, SignalError> {
    let bad = || wrong(def, "decimal fraction (tag 4)");
    let Value::Tag(TAG_DECIMAL_FRACTION, inner) = v else { return Err(bad()) };
    let Value::Array(pair) = inner.as_ref() else { return Err(bad()) };
    let [Value::Integer(e), Value::Integer(m)] = pair.as_slice() else { return Err(bad()) };
    let (e, m) = (i128::from(*e), i128::from(*m));
    let out = || SignalError::OutOfRange { field: def.name, value: format!("{m}e{e}") };
    let (e, m) = (i64::try_from(e).map_err(|_| out())?, i64::try_from(m).map_err(|_| out())?);
    Decimal::from_fraction(e, m).ok_or_else(out)
}

fn wrong(def: &'static KeyDef, expected: &'static str) -> SignalError {
    SignalError::WrongType { field: def.name, expected }
}

fn out_of_range(def: &'static KeyDef, n: u64) -> SignalError {
    SignalError::OutOfRange { field: def.name, value: n.to_string() }
}

fn to_value(n: &Node) -> Value {
    match n {
        Node::Map(m) => Value::Map(
            m.iter().map(|(k, v)| (Value::Integer(Integer::from(*k)), to_value(v))).collect(),
        ),
        Node::List(l) => Value::Array(l.iter().map(to_value).collect()),
        Node::Uint(u) => Value::Integer(Integer::from(*u)),
        Node::Int(i) => Value::Integer(Integer::from(*i)),
        Node::Text(s) => Value::Text(s.clone()),
        Node::Bool(b) => Value::Bool(*b),
        Node::Decimal(d) => Value::Tag(
            TAG_DECIMAL_FRACTION,
            Box::new(Value::Array(vec![
                Value::Integer(Integer::from(-2)),
                Value::Integer(Integer::from(d.hundredths())),
            ])),
        ),
    }
}
