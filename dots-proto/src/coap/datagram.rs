//! RFC 7252 §3 datagram encoding: 4-byte header, token, options, payload.

use super::code::Code;
use super::error::{EncodeError, FormatError};
use super::message::{Message, MessageType, Token};
use super::option::Options;

/// The header fields of a datagram that failed to decode, when they could
/// be read, so the caller can reject a CON with RST (RFC 7252 §4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub mtype: MessageType,
    pub message_id: u16,
}

/// A datagram decode failure: the format error and, if the fixed header was
/// readable and the version was 1, its type and message id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct DatagramError {
    pub error: FormatError,
    pub header: Option<Header>,
}

impl DatagramError {
    /// The RST to send: only for a CON with a readable header. NONs,
    /// unreadable headers and unknown versions are silently ignored.
    pub fn reset(&self) -> Option<Message> {
        match self.header {
            Some(Header { mtype: MessageType::Con, message_id }) => Some(Message::reset_for_id(message_id)),
            _ => None,
        }
    }
}

pub const VERSION: u8 = 1;

/// Decodes one datagram. Never panics; every malformed input is an error.
pub fn decode(buf: &[u8]) -> Result<Message, DatagramError> {
    let no_header = |error| DatagramError { error, header: None };
    let [b0, code, m0, m1, rest @ ..] = buf else {
        return Err(no_header(FormatError::TruncatedHeader));
    };
    if b0 >> 6 != VERSION {
        return Err(no_header(FormatError::BadVersion(b0 >> 6)));
    }
    let header = Header { mtype: MessageType::from_bits(b0 >> 4), message_id: u16::from_be_bytes([*m0, *m1]) };
    let with_header = |error| DatagramError { error, header: Some(header) };
    let tkl = usize::from(b0 & 0x0f);
    let code = Code(*code);
    body(code, tkl, rest).map_err(with_header).map(|(token, options, payload)| Message {
        mtype: header.mtype,
        message_id: header.message_id,
        code,
        token,
        options,
        payload: payload.to_vec(),
    })
}

/// Token, options and payload after the fixed header.
fn body(code: Code, tkl: usize, rest: &[u8]) -> Result<(Token, Options, &[u8]), FormatError> {
    if tkl > Token::MAX_LEN {
        return Err(FormatError::BadTokenLength(tkl as u8));
    }
    // RFC 7252 §4.1: an Empty message has nothing after the message id.
    if code.is_empty() && (tkl != 0 || !rest.is_empty()) {
        return Err(FormatError::NonEmptyEmptyMessage);
    }
    let (token, rest) = split_token(tkl, rest)?;
    let (options, payload) = Options::decode(rest)?;
    Ok((token, options, payload))
}

/// Splits `tkl` token bytes off `rest` (shared with the stream codec).
pub(crate) fn split_token(tkl: usize, rest: &[u8]) -> Result<(Token, &[u8]), FormatError> {
    if rest.len() < tkl {
        return Err(FormatError::TruncatedToken);
    }
    let (t, rest) = rest.split_at(tkl);
    Ok((Token::new(t).ok_or(FormatError::BadTokenLength(tkl as u8))?, rest))
}

/// Encodes `msg` as a datagram.
pub fn encode(msg: &Message) -> Result<Vec<u8>, EncodeError> {
    if msg.code.is_empty() && (!msg.token.is_empty() || !msg.options.is_empty() || !msg.payload.is_empty()) {
        return Err(EncodeError::NonEmptyEmptyMessage);
    }
    let mut out = Vec::with_capacity(4 + msg.token.len() + msg.options.encoded_len() + 1 + msg.payload.len());
    out.push((VERSION << 6) | ((msg.mtype as u8) << 4) | msg.token.len() as u8);
    out.push(msg.code.0);
    out.extend_from_slice(&msg.message_id.to_be_bytes());
    out.extend_from_slice(msg.token.as_bytes());
    encode_options_payload(msg, &mut out)?;
    Ok(out)
}

/// Encodes with a size limit (e.g. the path MTU budget for DTLS records).
pub fn encode_with_limit(msg: &Message, limit: usize) -> Result<Vec<u8>, EncodeError> {
    let out = encode(msg)?;
    if out.len() > limit {
        return Err(EncodeError::TooLarge { size: out.len(), limit });
    }
    Ok(out)
}

/// Options, then a payload marker and the payload if there is one.
pub(crate) fn encode_options_payload(msg: &Message, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    msg.options.encode(out)?;
    if !msg.payload.is_empty() {
        out.push(0xff);
        out.extend_from_slice(&msg.payload);
    }
    Ok(())
}
