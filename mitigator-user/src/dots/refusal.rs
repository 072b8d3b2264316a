//! A refused request: the CoAP response code, the diagnostic payload that
//! "4.xx and 5.xx error Response Codes MUST include" (section 3), and for
//! 4.09 the 'conflict-information' body (sections 4.4.1.3, 9).

use std::fmt;

use dots_proto::signal::{ConflictInformation, MitigationScope, ResponseCode, Scope, SignalError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ResponseCode,
    pub diagnostic: String,
    /// Boxed: a conflict body is rare and large, a refusal is common.
    pub conflict: Option<Box<ConflictInformation>>,
}

impl Refusal {
    pub fn new(code: ResponseCode, diagnostic: impl Into<String>) -> Self {
        Refusal { code, diagnostic: diagnostic.into(), conflict: None }
    }

    /// 4.00: the request "violates the DOTS protocol" (section 9).
    pub fn bad_request(diagnostic: impl Into<String>) -> Self {
        Self::new(ResponseCode::BAD_REQUEST, diagnostic)
    }

    /// 4.04: "a 'mid' or 'sid' that is not valid" (section 9).
    pub fn not_found(diagnostic: impl Into<String>) -> Self {
        Self::new(ResponseCode::NOT_FOUND, diagnostic)
    }

    /// 4.09 with its 'conflict-information' (section 4.4.1.3).
    pub fn conflict(diagnostic: impl Into<String>, info: ConflictInformation) -> Self {
        Refusal { code: ResponseCode::CONFLICT, diagnostic: diagnostic.into(), conflict: Some(Box::new(info)) }
    }

    /// The body of a 4.09 response: one 'scope' holding only the
    /// 'conflict-information' (Figure 11).
    pub fn conflict_body(&self) -> Option<MitigationScope> {
        let info = *self.conflict.clone()?;
        Some(MitigationScope { scopes: vec![Scope { conflict_information: Some(info), ..Scope::default() }] })
    }
}

impl From<SignalError> for Refusal {
    fn from(e: SignalError) -> Self {
        Refusal::new(e.code(), e.diagnostic())
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.diagnostic)
    }
}

impl std::error::Error for Refusal {}
