//! RESTCONF error bodies (RFC 8040 §7.1), as a DOTS server returns them on
//! the data channel (RFC 8783 draft 29, §§5–7 name the status-lines and
//! error-tags to use; §3.4 Figure 3 adds `loop-detected`).

use serde::{Deserialize, Serialize};

/// Body `{"ietf-restconf:errors": {"error": [...]}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorsBody {
    #[serde(rename = "ietf-restconf:errors")]
    pub errors: Errors,
}

/// The `errors` container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Errors {
    #[serde(default)]
    pub error: Vec<ErrorEntry>,
}

/// One `error` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ErrorEntry {
    pub error_type: ErrorType,
    pub error_tag: ErrorTag,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_app_tag: Option<String>,
    /// An instance-identifier in RFC 7951 form; here a JSON-path-like
    /// string naming the offending member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// `anydata`, e.g. the Via header for `loop-detected` (§3.4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_info: Option<serde_json::Value>,
}

/// RFC 8040 `error-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorType {
    Transport,
    Rpc,
    Protocol,
    Application,
}

/// RFC 8040 §7 `error-tag` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorTag {
    InUse,
    InvalidValue,
    TooBig,
    MissingAttribute,
    BadAttribute,
    UnknownAttribute,
    BadElement,
    UnknownElement,
    UnknownNamespace,
    AccessDenied,
    LockDenied,
    ResourceDenied,
    RollbackFailed,
    DataExists,
    DataMissing,
    OperationNotSupported,
    OperationFailed,
    PartialOperation,
    MalformedMessage,
}

impl ErrorTag {
    /// The tag as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        use ErrorTag::*;
        match self {
            InUse => "in-use",
            InvalidValue => "invalid-value",
            TooBig => "too-big",
            MissingAttribute => "missing-attribute",
            BadAttribute => "bad-attribute",
            UnknownAttribute => "unknown-attribute",
            BadElement => "bad-element",
            UnknownElement => "unknown-element",
            UnknownNamespace => "unknown-namespace",
            AccessDenied => "access-denied",
            LockDenied => "lock-denied",
            ResourceDenied => "resource-denied",
            RollbackFailed => "rollback-failed",
            DataExists => "data-exists",
            DataMissing => "data-missing",
            OperationNotSupported => "operation-not-supported",
            OperationFailed => "operation-failed",
            PartialOperation => "partial-operation",
            MalformedMessage => "malformed-message",
        }
    }

    /// The usual status for the tag (RFC 8040 §7 table; where it lists
    /// several, the first). DOTS overrides some, e.g. 404 `invalid-value`.
    pub fn default_status(self) -> u16 {
        use ErrorTag::*;
        match self {
            InUse | LockDenied | ResourceDenied | DataExists | DataMissing => 409,
            TooBig => 413,
            AccessDenied => 403,
            OperationNotSupported => 405,
            OperationFailed => 412,
            RollbackFailed | PartialOperation => 500,
            _ => 400,
        }
    }
}

impl std::fmt::Display for ErrorTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error response: HTTP status plus one RESTCONF `error` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestconfError {
    /// HTTP status code of the response.
    pub status: u16,
    /// The entry to put in the body.
    pub entry: ErrorEntry,
}

impl RestconfError {
    /// An error of type `protocol` (as in RFC 8040's examples) with a
    /// message, e.g. `RestconfError::new(409, ErrorTag::ResourceDenied, "alias
    /// \"https1\" exists")`.
    pub fn new(status: u16, tag: ErrorTag, message: impl Into<String>) -> Self {
        let entry = ErrorEntry {
            error_type: ErrorType::Protocol,
            error_tag: tag,
            error_app_tag: None,
            error_path: None,
            error_message: Some(message.into()),
            error_info: None,
        };
        Self { status, entry }
    }

    /// 404 with `invalid-value`: the named alias or ACL does not exist
    /// (§§6.2, 6.3, 7.3, 7.4).
    pub fn not_found(what: &str, name: &str) -> Self {
        Self::new(
            404,
            ErrorTag::InvalidValue,
            format!("{what} {name:?} not found"),
        )
    }

    /// 409 with `resource-denied`: conflicts with an existing resource
    /// (§§5.1, 6.1, 7.2).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, ErrorTag::ResourceDenied, message)
    }

    /// Sets `error-type`.
    pub fn with_type(mut self, t: ErrorType) -> Self {
        self.entry.error_type = t;
        self
    }

    /// Sets `error-path`.
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.entry.error_path = Some(path.into());
        self
    }

    /// Sets `error-app-tag`.
    pub fn with_app_tag(mut self, tag: impl Into<String>) -> Self {
        self.entry.error_app_tag = Some(tag.into());
        self
    }

    /// The 508 Loop Detected error of §3.4 (Figure 3).
    pub fn loop_detected(via: &str) -> Self {
        let mut e = Self::new(508, ErrorTag::OperationFailed, "loop detected")
            .with_type(ErrorType::Transport)
            .with_app_tag("loop-detected");
        e.entry.error_info = Some(serde_json::json!({ "via-header": via }));
        e
    }

    /// The response body.
    pub fn body(&self) -> ErrorsBody {
        ErrorsBody {
            errors: Errors {
                error: vec![self.entry.clone()],
            },
        }
    }

    /// The response body as JSON text (`application/yang-data+json`).
    pub fn to_json(&self) -> String {
        // Serializing these plain types cannot fail; fall back to a fixed body.
        serde_json::to_string(&self.body()).unwrap_or_else(|_| {
            r#"{"ietf-restconf:errors":{"error":[{"error-type":"application","error-tag":"operation-failed"}]}}"#.into()
        })
    }
}

impl std::fmt::Display for RestconfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.entry.error_tag)?;
        if let Some(p) = &self.entry.error_path {
            write!(f, " at {p}")?;
        }
        if let Some(m) = &self.entry.error_message {
            write!(f, ": {m}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RestconfError {}
