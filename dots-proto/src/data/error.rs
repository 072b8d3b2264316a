//! [`DataError`]: every way a data-channel body can be refused, each with
//! its HTTP status and RESTCONF error-tag (RFC 8783 draft 29 §§5.1, 6.1,
//! 7.2: 400 with `missing-attribute`, `invalid-value` or `unknown-element`;
//! 409 `resource-denied`), and a message naming the member and its value.

use crate::data::restconf::{ErrorTag, RestconfError};

/// A decode or validation failure. `path` is a RESTCONF-like path to the
/// offending member (`acl=x/aces/ace=y/matches/tcp`), empty for the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    // ---- decoding
    #[error("body of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("body nests deeper than {max} levels")]
    TooDeep { max: usize },
    #[error("malformed JSON at '{path}': {detail}")]
    Malformed { path: String, detail: String },
    #[error("missing mandatory member '{field}' at '{path}'")]
    MissingAttribute { path: String, field: String },
    #[error("unknown member '{field}' at '{path}'")]
    UnknownElement { path: String, field: String },
    #[error("invalid value at '{path}': {detail}")]
    InvalidValue { path: String, detail: String },

    // ---- validation (server rules)
    #[error("{count} dots-client entries in one request; exactly 1 is allowed (section 5.1)")]
    ClientCount { count: usize },
    #[error("'{path}': {field} {value:?} must be {min}..{max} characters long")]
    NameLength {
        path: String,
        field: &'static str,
        value: String,
        min: usize,
        max: usize,
    },
    #[error("'{path}': {field} {value:?} appears more than once")]
    Duplicate {
        path: String,
        field: &'static str,
        value: String,
    },
    #[error("'{path}': {count} {field} entries exceed the limit of {max}")]
    TooMany {
        path: String,
        field: &'static str,
        count: usize,
        max: usize,
    },
    #[error("'{path}': alias has none of target-prefix, target-fqdn, target-uri (section 6.1)")]
    NoTarget { path: String },
    #[error("'{path}': {field} {value} is invalid: {reason}")]
    BadPrefix {
        path: String,
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("'{path}': {field} {value:?} is invalid: {reason}")]
    BadName {
        path: String,
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("'{path}': lower-port {lower} is greater than upper-port {upper}")]
    PortOrder {
        path: String,
        lower: u16,
        upper: u16,
    },
    #[error("'{path}': {field} {value} is outside {range}")]
    OutOfRange {
        path: String,
        field: &'static str,
        value: u64,
        range: &'static str,
    },
    #[error("'{path}': protocol {protocol} contradicts the '{l4}' match (expects {expected})")]
    ProtocolMismatch {
        path: String,
        protocol: u8,
        l4: &'static str,
        expected: String,
    },
    #[error("'{path}': '{l3}' match in an ACL of type {acl_type}")]
    L3TypeMismatch {
        path: String,
        l3: &'static str,
        acl_type: String,
    },
    #[error("'{path}': fragment type {value:?} sets 'df', which must be 0 in an IPv6 filter")]
    DfInIpv6 { path: String, value: String },
    #[error("'{path}': '{first}' and '{second}' must not be used together (section 4.2)")]
    Conflicting {
        path: String,
        first: &'static str,
        second: &'static str,
    },
    #[error("'{path}': operator {value:?} sets both 'match' and 'any'")]
    OperatorConflict { path: String, value: String },
    #[error("'{path}': ACE has no actions (forwarding is mandatory, section 7.2)")]
    MissingActions { path: String },
    #[error("'{path}': forwarding {action} is not supported by DOTS (section 4.1)")]
    UnsupportedAction { path: String, action: String },
    #[error("'{path}': rate-limit {value} is only valid with forwarding accept, not {action}")]
    RateLimitNotAccept {
        path: String,
        value: String,
        action: String,
    },
    #[error("'{path}': rate-limit {value} is negative")]
    NegativeRateLimit { path: String, value: String },
    #[error("'{path}': read-only member '{field}' in a request")]
    ReadOnly { path: String, field: &'static str },
    #[error(
        "'{path}': ACL {acl:?} is 'immediate' but the ACE has no destination network (section 7.2)"
    )]
    MissingDestination { path: String, acl: String },
    #[error("'{path}': {field} {value} is outside the client's domain")]
    OutOfScope {
        path: String,
        field: &'static str,
        value: String,
    },
}

impl DataError {
    /// The RESTCONF `error-tag`.
    pub fn tag(&self) -> ErrorTag {
        use DataError::*;
        match self {
            TooLarge { .. } => ErrorTag::TooBig,
            TooDeep { .. } | Malformed { .. } => ErrorTag::MalformedMessage,
            MissingAttribute { .. }
            | NoTarget { .. }
            | MissingActions { .. }
            | MissingDestination { .. } => ErrorTag::MissingAttribute,
            UnknownElement { .. } => ErrorTag::UnknownElement,
            TooMany { .. } => ErrorTag::ResourceDenied,
            _ => ErrorTag::InvalidValue,
        }
    }

    /// The HTTP status: 413 for an oversized body, 409 for a quota
    /// (`resource-denied`), 400 for everything else.
    pub fn status(&self) -> u16 {
        match self {
            DataError::TooLarge { .. } => 413,
            DataError::TooMany { .. } => 409,
            _ => 400,
        }
    }

    /// Path of the offending member, if any.
    pub fn path(&self) -> Option<&str> {
        use DataError::*;
        let p = match self {
            TooLarge { .. } | TooDeep { .. } | ClientCount { .. } => return None,
            Malformed { path, .. }
            | MissingAttribute { path, .. }
            | UnknownElement { path, .. }
            | InvalidValue { path, .. }
            | NameLength { path, .. }
            | Duplicate { path, .. }
            | TooMany { path, .. }
            | NoTarget { path }
            | BadPrefix { path, .. }
            | BadName { path, .. }
            | PortOrder { path, .. }
            | OutOfRange { path, .. }
            | ProtocolMismatch { path, .. }
            | L3TypeMismatch { path, .. }
            | DfInIpv6 { path, .. }
            | Conflicting { path, .. }
            | OperatorConflict { path, .. }
            | MissingActions { path }
            | UnsupportedAction { path, .. }
            | RateLimitNotAccept { path, .. }
            | NegativeRateLimit { path, .. }
            | ReadOnly { path, .. }
            | MissingDestination { path, .. }
            | OutOfScope { path, .. } => path,
        };
        (!p.is_empty()).then_some(p.as_str())
    }

    /// The error response for this failure.
    pub fn to_restconf(&self) -> RestconfError {
        let e = RestconfError::new(self.status(), self.tag(), self.to_string());
        match self.path() {
            Some(p) => e.with_path(p),
            None => e,
        }
    }
}

impl From<DataError> for RestconfError {
    fn from(e: DataError) -> Self {
        e.to_restconf()
    }
}

/// Turns a serde error into the matching variant: serde only reports
/// "missing field `x`" / "unknown field `x`" in its message text, so that
/// text is what tells a missing or unknown member from a bad value.
pub(crate) fn from_serde(e: serde_path_to_error::Error<serde_json::Error>) -> DataError {
    let path = render_path(e.path());
    let inner = e.into_inner();
    if !inner.is_data() {
        return DataError::Malformed {
            path,
            detail: inner.to_string(),
        };
    }
    let msg = inner.to_string();
    if let Some(field) = backticked_after(&msg, "missing field `") {
        return DataError::MissingAttribute { path, field };
    }
    if let Some(field) = backticked_after(&msg, "unknown field `") {
        return DataError::UnknownElement { path, field };
    }
    DataError::InvalidValue { path, detail: msg }
}

fn backticked_after(msg: &str, prefix: &str) -> Option<String> {
    let start = msg.find(prefix)? + prefix.len();
    let len = msg[start..].find('`')?;
    Some(msg[start..start + len].to_string())
}

/// `a.b[0].c` → `a/b[0]/c`; `.` is serde_path_to_error's root.
fn render_path(p: &serde_path_to_error::Path) -> String {
    let s = p.to_string();
    if s == "." {
        String::new()
    } else {
        s.replace('.', "/")
    }
}
