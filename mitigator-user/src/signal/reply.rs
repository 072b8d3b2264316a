//! A response before framing: code, payload and the options DOTS responses
//! carry. Every 4.xx/5.xx has a plain-text diagnostic payload ("CoAP
//! responses with 4.xx and 5.xx error Response Codes MUST include a
//! diagnostic payload", section 3), except the two whose body the text
//! defines as CBOR: 4.09 with 'conflict-information' and 5.03 with
//! 'redirected-signal' (section 9).

use dots_proto::coap::{content_format, Code};
use dots_proto::signal::{ResponseCode, SignalBody, SignalError};

use crate::dots::Refusal;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: Code,
    pub payload: Vec<u8>,
    pub content_format: Option<u16>,
    pub max_age: Option<u32>,
}

pub fn code_of(rc: ResponseCode) -> Code {
    Code::new(rc.class, rc.detail)
}

impl Reply {
    /// No payload (2.02, 2.04 of a heartbeat, ...).
    pub fn empty(code: Code) -> Reply {
        Reply { code, payload: Vec::new(), content_format: None, max_age: None }
    }

    /// An `application/dots+cbor` body.
    pub fn cbor<T: SignalBody>(code: Code, body: &T) -> Reply {
        Reply { code, payload: body.to_cbor(), content_format: Some(content_format::DOTS_CBOR), max_age: None }
    }

    /// An error with its diagnostic payload (text/plain).
    pub fn error(code: Code, diagnostic: impl Into<String>) -> Reply {
        Reply {
            code,
            payload: diagnostic.into().into_bytes(),
            content_format: Some(content_format::TEXT_PLAIN),
            max_age: None,
        }
    }

    /// A refusal of the state machine: 4.09 carries its CBOR conflict body
    /// (Figure 11), everything else the diagnostic.
    pub fn refusal(r: &Refusal) -> Reply {
        match r.conflict_body() {
            Some(body) => Reply::cbor(code_of(r.code), &body),
            None => Reply::error(code_of(r.code), r.diagnostic.clone()),
        }
    }

    pub fn is_error(&self) -> bool {
        self.code.class() >= 4
    }
}

impl From<SignalError> for Reply {
    fn from(e: SignalError) -> Reply {
        Reply::error(code_of(e.code()), e.diagnostic())
    }
}
