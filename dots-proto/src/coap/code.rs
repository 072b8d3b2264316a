//! CoAP codes (RFC 7252 §3, §12.1; RFC 8323 §5 for 7.xx signaling codes).

use std::fmt;

/// A CoAP code: 3-bit class, 5-bit detail, shown as `c.dd` (e.g. 2.05).
///
/// Any byte is representable so that decoding never fails on an unknown
/// code; the receiver decides what to do with reserved classes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(pub u8);

impl Code {
    /// Builds `class.detail`; class is 0..=7 and detail 0..=31 (higher bits
    /// are masked off, so this cannot produce an unintended class).
    pub const fn new(class: u8, detail: u8) -> Code {
        Code(((class & 0x07) << 5) | (detail & 0x1f))
    }
    pub const fn class(self) -> u8 {
        self.0 >> 5
    }
    pub const fn detail(self) -> u8 {
        self.0 & 0x1f
    }

    pub const EMPTY: Code = Code::new(0, 0);
    pub const GET: Code = Code::new(0, 1);
    pub const POST: Code = Code::new(0, 2);
    pub const PUT: Code = Code::new(0, 3);
    pub const DELETE: Code = Code::new(0, 4);

    pub const CREATED: Code = Code::new(2, 1);
    pub const DELETED: Code = Code::new(2, 2);
    pub const VALID: Code = Code::new(2, 3);
    pub const CHANGED: Code = Code::new(2, 4);
    pub const CONTENT: Code = Code::new(2, 5);
    /// 2.31 Continue (RFC 7959 §2.9.1), sent for each non-final Block1 block.
    pub const CONTINUE: Code = Code::new(2, 31);

    pub const BAD_REQUEST: Code = Code::new(4, 0);
    pub const UNAUTHORIZED: Code = Code::new(4, 1);
    pub const BAD_OPTION: Code = Code::new(4, 2);
    pub const FORBIDDEN: Code = Code::new(4, 3);
    pub const NOT_FOUND: Code = Code::new(4, 4);
    pub const METHOD_NOT_ALLOWED: Code = Code::new(4, 5);
    pub const NOT_ACCEPTABLE: Code = Code::new(4, 6);
    pub const REQUEST_ENTITY_INCOMPLETE: Code = Code::new(4, 8);
    pub const CONFLICT: Code = Code::new(4, 9);
    pub const PRECONDITION_FAILED: Code = Code::new(4, 12);
    pub const REQUEST_ENTITY_TOO_LARGE: Code = Code::new(4, 13);
    pub const UNSUPPORTED_CONTENT_FORMAT: Code = Code::new(4, 15);
    pub const UNPROCESSABLE_ENTITY: Code = Code::new(4, 22);
    pub const TOO_MANY_REQUESTS: Code = Code::new(4, 29);

    pub const INTERNAL_SERVER_ERROR: Code = Code::new(5, 0);
    pub const SERVICE_UNAVAILABLE: Code = Code::new(5, 3);

    pub const CSM: Code = Code::new(7, 1);
    pub const PING: Code = Code::new(7, 2);
    pub const PONG: Code = Code::new(7, 3);
    pub const RELEASE: Code = Code::new(7, 4);
    pub const ABORT: Code = Code::new(7, 5);

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub const fn is_request(self) -> bool {
        self.class() == 0 && self.detail() != 0
    }
    pub const fn is_response(self) -> bool {
        matches!(self.class(), 2..=5)
    }
    pub const fn is_success(self) -> bool {
        self.class() == 2
    }
    /// 7.xx: RFC 8323 signaling (only meaningful on streams).
    pub const fn is_signaling(self) -> bool {
        self.class() == 7
    }
    /// Classes 1 and 6 are reserved everywhere; 7 is reserved on datagrams.
    pub const fn is_reserved_on_datagram(self) -> bool {
        matches!(self.class(), 1 | 6 | 7)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.class(), self.detail())
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_class_dot_two_digit_detail() {
        assert_eq!(Code::CREATED.to_string(), "2.01");
        assert_eq!(Code::TOO_MANY_REQUESTS.to_string(), "4.29");
        assert_eq!(Code::ABORT.to_string(), "7.05");
        assert_eq!(Code::GET.to_string(), "0.01");
        assert_eq!(Code::CONTINUE.0, 0x5f);
    }

    #[test]
    fn raw_values_match_rfc7252_registry() {
        assert_eq!(Code::CONTENT.0, 69);
        assert_eq!(Code::BAD_OPTION.0, 130);
        assert_eq!(Code::SERVICE_UNAVAILABLE.0, 163);
        assert_eq!(Code::CSM.0, 225);
    }

    #[test]
    fn kinds() {
        assert!(Code::PUT.is_request());
        assert!(!Code::EMPTY.is_request());
        assert!(Code::CONFLICT.is_response());
        assert!(Code::PING.is_signaling());
        assert!(Code::PONG.is_reserved_on_datagram());
    }
}
