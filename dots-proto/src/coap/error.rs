//! Typed CoAP errors. A `FormatError` is a "message format error" in the
//! sense of RFC 7252 §4.2/§4.3 (datagrams: RST a CON, ignore a NON) and
//! RFC 8323 §5.6 (streams: send Abort and close).

use thiserror::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum FormatError {
    #[error("message shorter than its fixed header")]
    TruncatedHeader,
    #[error("unsupported CoAP version {0}")]
    BadVersion(u8),
    #[error("token length {0} is reserved (must be 0..=8)")]
    BadTokenLength(u8),
    #[error("message ends inside the token")]
    TruncatedToken,
    #[error("empty message (0.00) with token, options or payload")]
    NonEmptyEmptyMessage,
    #[error("option delta or length nibble 15 is reserved")]
    ReservedOptionNibble,
    #[error("message ends inside an option")]
    TruncatedOption,
    #[error("option number exceeds 65535")]
    OptionNumberTooLarge,
    #[error("payload marker followed by an empty payload")]
    EmptyPayloadAfterMarker,
    #[error("option value longer than 65804 bytes")]
    OptionTooLong,
}

/// Errors while encoding a message we built ourselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("token longer than 8 bytes")]
    TokenTooLong,
    #[error("option value longer than 65804 bytes")]
    OptionTooLong,
    #[error("empty message (0.00) must have no token, options or payload")]
    NonEmptyEmptyMessage,
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
}

impl From<FormatError> for EncodeError {
    fn from(_: FormatError) -> Self {
        // The only FormatError the option encoder produces.
        EncodeError::OptionTooLong
    }
}
