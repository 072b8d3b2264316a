//! Request target → resource (RFC 8783 draft 29 §§5-7, RFC 8040 §3.5.3
//! for the `list=key` path syntax with percent-encoded keys), and the query
//! parameters the text uses (`content`, RFC 8040 §4.8.1; `depth`, §4.8.2).

use dots_proto::data::{restconf::ErrorTag, RestconfError};

use crate::registry::Content;

/// The RESTCONF data resource of the DOTS data channel (§4.1 Figure 4).
pub const ROOT: &str = "/restconf/data/ietf-dots-data-channel:dots-data";

/// What a request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// RFC 8040 §3.1 root discovery (`/.well-known/host-meta`).
    HostMeta,
    /// The `dots-data` container.
    Root,
    /// `capabilities` (§7.1).
    Capabilities,
    /// `dots-client=cuid` (§5).
    Client(String),
    /// `dots-client=cuid/aliases[/alias=name]` (§6).
    Aliases(String, Option<String>),
    /// `dots-client=cuid/acls[/acl=name[/aces/ace=name]]` (§7).
    Acls(String, Option<String>, Option<String>),
}

impl Resource {
    /// The cuid in the path, if any.
    pub fn cuid(&self) -> Option<&str> {
        match self {
            Resource::Client(c) | Resource::Aliases(c, _) | Resource::Acls(c, _, _) => Some(c),
            _ => None,
        }
    }
}

/// Query parameters of a GET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    pub content: Content,
    /// None: unbounded.
    pub depth: Option<u32>,
}

fn bad(msg: String) -> RestconfError {
    RestconfError::new(400, ErrorTag::InvalidValue, msg)
}

fn not_found(path: &str) -> RestconfError {
    RestconfError::new(404, ErrorTag::InvalidValue, format!("no resource at {path} (the data channel is under {ROOT})"))
}

/// Parses the path of a request.
pub fn resource(path: &str) -> Result<Resource, RestconfError> {
    if path == "/.well-known/host-meta" {
        return Ok(Resource::HostMeta);
    }
    let rest = path.strip_prefix(ROOT).ok_or_else(|| not_found(path))?;
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        return Ok(Resource::Root);
    }
    let rest = rest.strip_prefix('/').ok_or_else(|| not_found(path))?;
    let segs: Vec<String> = rest.split('/').map(decode).collect::<Result<_, _>>()?;
    let seg: Vec<&str> = segs.iter().map(String::as_str).collect();
    let key = |s: &str, list: &str| s.strip_prefix(list).and_then(|k| k.strip_prefix('=')).filter(|k| !k.is_empty()).map(String::from);
    let client = seg.first().and_then(|s| key(s, "dots-client"));
    match (seg.as_slice(), client) {
        (["capabilities"], _) => Ok(Resource::Capabilities),
        ([_], Some(c)) => Ok(Resource::Client(c)),
        ([_, "aliases"], Some(c)) => Ok(Resource::Aliases(c, None)),
        ([_, "aliases", a], Some(c)) => key(a, "alias").map(|a| Resource::Aliases(c, Some(a))).ok_or_else(|| not_found(path)),
        ([_, "acls"], Some(c)) => Ok(Resource::Acls(c, None, None)),
        ([_, "acls", a], Some(c)) => key(a, "acl").map(|a| Resource::Acls(c, Some(a), None)).ok_or_else(|| not_found(path)),
        ([_, "acls", a, "aces", e], Some(c)) => match (key(a, "acl"), key(e, "ace")) {
            (Some(a), Some(e)) => Ok(Resource::Acls(c, Some(a), Some(e))),
            _ => Err(not_found(path)),
        },
        _ => Err(not_found(path)),
    }
}

/// Percent-decoding of one path segment (RFC 3986 §2.1).
fn decode(s: &str) -> Result<String, RestconfError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(hex.ok_or_else(|| bad(format!("bad percent-encoding in path segment {s:?}")))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad(format!("path segment {s:?} is not UTF-8")))
}

/// Parses the query string: `content` (config, nonconfig — the draft's
/// figures write non-config — or all; default all) and `depth`
/// (1..65535 or unbounded). Anything else is refused (RFC 8040 §4.8:
/// "400 Bad Request" for an unsupported parameter).
pub fn query(q: Option<&str>) -> Result<Query, RestconfError> {
    let mut out = Query { content: Content::All, depth: None };
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "content" => {
                out.content = match v {
                    "config" => Content::Config,
                    "nonconfig" | "non-config" => Content::NonConfig,
                    "all" => Content::All,
                    _ => return Err(bad(format!("content={v}: expected config, nonconfig or all (RFC 8040 4.8.1)"))),
                }
            }
            "depth" => {
                out.depth = match v {
                    "unbounded" => None,
                    n => Some(n.parse::<u32>().ok().filter(|d| (1..=65535).contains(d)).ok_or_else(|| {
                        bad(format!("depth={v}: expected 1..65535 or unbounded (RFC 8040 4.8.2)"))
                    })?),
                }
            }
            _ => return Err(bad(format!("query parameter {k:?} is not supported here (content and depth are)"))),
        }
    }
    Ok(out)
}

/// Cuts a response body to `depth` levels of data nodes (RFC 8040 §4.8.2):
/// the top-level node is level 1; list entries are at their list's level.
pub fn prune(v: &mut serde_json::Value, depth: u32) {
    fn walk(v: &mut serde_json::Value, level: u32, depth: u32) {
        match v {
            serde_json::Value::Object(m) => {
                if level >= depth {
                    m.retain(|_, x| !x.is_object() && !x.is_array());
                    if level > depth {
                        m.clear();
                    }
                }
                m.values_mut().for_each(|x| walk(x, level + 1, depth));
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| walk(x, level, depth)),
            _ => {}
        }
    }
    if let serde_json::Value::Object(m) = v {
        m.values_mut().for_each(|x| walk(x, 1, depth));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_the_draft_figures() {
        assert_eq!(resource(ROOT).unwrap(), Resource::Root);
        assert_eq!(resource(&format!("{ROOT}/capabilities")).unwrap(), Resource::Capabilities);
        assert_eq!(resource(&format!("{ROOT}/dots-client=dz6pHjaADkaFTbjr0JGBpw")).unwrap(), Resource::Client("dz6pHjaADkaFTbjr0JGBpw".into()));
        assert_eq!(
            resource(&format!("{ROOT}/dots-client=c/aliases/alias=Server%201")).unwrap(),
            Resource::Aliases("c".into(), Some("Server 1".into()))
        );
        assert_eq!(resource(&format!("{ROOT}/dots-client=c/acls/")).unwrap(), Resource::Acls("c".into(), None, None));
        assert_eq!(
            resource(&format!("{ROOT}/dots-client=c/acls/acl=a/aces/ace=e")).unwrap(),
            Resource::Acls("c".into(), Some("a".into()), Some("e".into()))
        );
        for bad in ["/restconf/data/x", &format!("{ROOT}/dots-client="), &format!("{ROOT}/dots-client=c/zz"), &format!("{ROOT}/dots-client=c/acls/acl=%zz")] {
            assert!(resource(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_parameters() {
        assert_eq!(query(Some("content=non-config")).unwrap().content, Content::NonConfig);
        assert_eq!(query(None).unwrap(), Query { content: Content::All, depth: None });
        assert_eq!(query(Some("depth=2&content=config")).unwrap(), Query { content: Content::Config, depth: Some(2) });
        assert_eq!(query(Some("insert=first")).unwrap_err().status, 400);
        assert_eq!(query(Some("depth=0")).unwrap_err().status, 400);
    }

    #[test]
    fn depth_prunes_nested_nodes() {
        let mut v = serde_json::json!({"m:acls": {"acl": [{"name": "a", "aces": {"ace": [{"name": "e"}]}}]}});
        prune(&mut v, 2);
        assert_eq!(v, serde_json::json!({"m:acls": {"acl": [{"name": "a"}]}}));
        let mut v = serde_json::json!({"m:acls": {"acl": [{"name": "a"}]}});
        prune(&mut v, 1);
        assert_eq!(v, serde_json::json!({"m:acls": {}}));
    }
}
