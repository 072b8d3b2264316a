//! Errors of the signal channel: every failure maps to exactly one CoAP
//! response code and a plain-text diagnostic payload, because section 3
//! says "CoAP responses with 4.xx and 5.xx error Response Codes MUST include
//! a diagnostic payload".

use std::fmt;

/// A CoAP response code as `class.detail` (e.g. 4.22). Mapped to the CoAP
/// module's own type when the two are integrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponseCode {
    pub class: u8,
    pub detail: u8,
}

impl ResponseCode {
    pub const CREATED: Self = Self::new(2, 1);
    pub const DELETED: Self = Self::new(2, 2);
    pub const CHANGED: Self = Self::new(2, 4);
    pub const CONTENT: Self = Self::new(2, 5);
    pub const BAD_REQUEST: Self = Self::new(4, 0);
    pub const NOT_FOUND: Self = Self::new(4, 4);
    pub const CONFLICT: Self = Self::new(4, 9);
    pub const REQUEST_ENTITY_TOO_LARGE: Self = Self::new(4, 13);
    pub const UNPROCESSABLE_ENTITY: Self = Self::new(4, 22);
    pub const SERVICE_UNAVAILABLE: Self = Self::new(5, 3);

    pub const fn new(class: u8, detail: u8) -> Self {
        Self { class, detail }
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.class, self.detail)
    }
}

/// Every way a signal-channel message, URI or request can be refused.
/// Field names in the messages are the YANG names of Table 5, so that the
/// diagnostic names the offending attribute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    // ---- syntax of the body (CBOR / JSON) ----
    #[error("message body of {size} bytes exceeds the limit of {limit} bytes")]
    BodyTooLarge { size: usize, limit: usize },
    #[error("malformed body: {0}")]
    Malformed(String),
    #[error("nesting deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("'{field}' has {len} entries, more than the limit of {limit}")]
    TooManyItems { field: &'static str, len: usize, limit: usize },
    #[error("'{field}' is {len} bytes long, more than the limit of {limit}")]
    TextTooLong { field: &'static str, len: usize, limit: usize },
    #[error("unknown comprehension-required CBOR key {key}")]
    UnknownRequiredKey { key: i128 },
    #[error("invalid CBOR map key {0} (keys are integers 1-65535, section 10.6.1.1)")]
    InvalidKey(String),
    #[error("unknown attribute '{name}'")]
    UnknownAttribute { name: String },
    #[error("attribute '{field}' is not allowed in '{parent}'")]
    UnexpectedAttribute { field: &'static str, parent: &'static str },
    #[error("attribute '{field}' appears more than once")]
    DuplicateKey { field: &'static str },
    #[error("'{field}' has the wrong type: expected {expected}")]
    WrongType { field: &'static str, expected: &'static str },
    #[error("'{field}' value {value} is out of range")]
    OutOfRange { field: &'static str, value: String },
    #[error("'{field}' has an invalid value '{value}': {reason}")]
    InvalidValue { field: &'static str, value: String, reason: &'static str },
    #[error("mandatory attribute '{field}' is missing")]
    MissingAttribute { field: &'static str },
    #[error("the body holds no DOTS signal message")]
    NoMessage,
    #[error("the body holds more than one DOTS signal message")]
    MultipleMessages,
    #[error("expected a '{expected}' message")]
    WrongMessage { expected: &'static str },

    // ---- URI (section 4.2, 4.4.1, 4.5.2, 4.7) ----
    #[error("no DOTS resource at '{path}'")]
    UnknownResource { path: String },
    #[error("Uri-Path '{segment}' is not expected here")]
    UnexpectedUriPath { segment: String },
    #[error("mandatory Uri-Path parameter '{param}' is missing")]
    MissingUriParam { param: &'static str },
    #[error("Uri-Path parameter '{param}' has an empty value")]
    EmptyUriParam { param: &'static str },
    #[error("Uri-Path parameter '{param}' has an invalid value '{value}'")]
    InvalidUriParam { param: &'static str, value: String },
    #[error("invalid Uri-Query '{query}' (expected c=c, c=n or c=a)")]
    InvalidQuery { query: String },

    // ---- semantics of a request (sections 4.4.1, 4.5.2) ----
    #[error("a request carries exactly one 'scope' entry, found {count}")]
    ScopeCount { count: usize },
    #[error("at least one of 'target-prefix', 'target-fqdn', 'target-uri' or 'alias-name' must be present")]
    MissingTarget,
    #[error("'{field}' must not appear in a request body")]
    ForbiddenInRequest { field: &'static str },
    #[error("'lifetime' of 0 is invalid")]
    ZeroLifetime,
    #[error("'{field}' has an empty value")]
    EmptyValue { field: &'static str },
    #[error("'{field}' lists '{value}' more than once")]
    DuplicateValue { field: &'static str, value: String },
    #[error("'target-prefix' {prefix} is not a valid target: {reason}")]
    InvalidTargetPrefix { prefix: String, reason: &'static str },
    #[error("'target-port-range' lower-port {lower} is above upper-port {upper}")]
    PortRangeOrder { lower: u16, upper: u16 },
    #[error("the 'signal-config' request sets no parameter")]
    EmptyConfig,
    #[error("'{field}' value {value} is outside the acceptable range {min}..={max}")]
    ConfigOutOfRange { field: String, value: String, min: String, max: String },
}

impl SignalError {
    /// The CoAP response code a server answers with (section 9).
    pub fn code(&self) -> ResponseCode {
        match self {
            // "If any of the ... attribute values are not acceptable to the
            // DOTS server, 4.22 (Unprocessable Entity)" (section 4.5.2).
            SignalError::ConfigOutOfRange { .. } => ResponseCode::UNPROCESSABLE_ENTITY,
            // A path that names no DOTS resource.
            SignalError::UnknownResource { .. } => ResponseCode::NOT_FOUND,
            // Everything else "violates the DOTS protocol" (section 9):
            // missing/unknown/invalid parameters, multiple scopes, lifetime 0,
            // missing cuid/mid/sid (sections 4.4.1.3, 4.4.4, 4.5.2).
            _ => ResponseCode::BAD_REQUEST,
        }
    }

    /// The plain-text diagnostic payload (Section 5.5.2 of RFC 7252).
    pub fn diagnostic(&self) -> String {
        self.to_string()
    }
}

/// Something a decoder repaired rather than refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// A peer sent min-value > max-value: some registries list keys 34/35
    /// the other way round than Table 5 does, so the pair was swapped.
    SwappedMinMax { field: String },
}

/// A decoded value together with the repairs made while decoding it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded<T> {
    pub value: T,
    pub warnings: Vec<Warning>,
}
