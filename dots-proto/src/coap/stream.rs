//! RFC 8323 §3.2 framing for CoAP over TCP/TLS: `Len|TKL`, extended length,
//! code, token, options, payload. No type, no message id.

use super::code::Code;
use super::datagram::{encode_options_payload, split_token};
use super::error::{EncodeError, FormatError};
use super::message::{Message, MessageType, Token};
use super::option::Options;

/// Largest message before the peer's CSM says otherwise (RFC 8323 §5.3.1).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1152;

/// Largest Len the 32-bit extended form can carry.
const MAX_LEN: u64 = u32::MAX as u64 + 65805;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The frame announces more bytes than we accept: send Abort and close.
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: u64, limit: usize },
    #[error(transparent)]
    Format(#[from] FormatError),
    /// Only from [`decode_one`]: the buffer is not exactly one frame.
    #[error("buffer does not hold exactly one frame")]
    NotOneFrame,
}

/// Encodes `msg` as one stream frame (type and message id are ignored).
pub fn encode(msg: &Message) -> Result<Vec<u8>, EncodeError> {
    let body_len = msg.options.encoded_len() + if msg.payload.is_empty() { 0 } else { 1 + msg.payload.len() };
    if body_len as u64 > MAX_LEN {
        return Err(EncodeError::TooLarge { size: body_len, limit: MAX_LEN as usize });
    }
    let (nibble, ext) = len_field(body_len as u64);
    let mut out = Vec::with_capacity(2 + ext.len() + msg.token.len() + body_len);
    out.push((nibble << 4) | msg.token.len() as u8);
    out.extend_from_slice(&ext);
    out.push(msg.code.0);
    out.extend_from_slice(msg.token.as_bytes());
    encode_options_payload(msg, &mut out)?;
    Ok(out)
}

/// Encodes with the peer's Max-Message-Size as limit.
pub fn encode_with_limit(msg: &Message, limit: usize) -> Result<Vec<u8>, EncodeError> {
    let out = encode(msg)?;
    if out.len() > limit {
        return Err(EncodeError::TooLarge { size: out.len(), limit });
    }
    Ok(out)
}

/// The Len nibble and extended length bytes for a body length.
fn len_field(len: u64) -> (u8, Vec<u8>) {
    match len {
        0..=12 => (len as u8, vec![]),
        13..=268 => (13, vec![(len - 13) as u8]),
        269..=65804 => (14, ((len - 269) as u16).to_be_bytes().to_vec()),
        _ => (15, ((len - 65805) as u32).to_be_bytes().to_vec()),
    }
}

/// Extended-length bytes that follow a Len nibble.
fn ext_bytes(nibble: u8) -> usize {
    match nibble {
        13 => 1,
        14 => 2,
        15 => 4,
        _ => 0,
    }
}

/// Total frame size once the first `1 + ext_bytes` bytes are known.
fn frame_size(head: &[u8]) -> u64 {
    let nibble = head[0] >> 4;
    let tkl = u64::from(head[0] & 0x0f);
    let ext = &head[1..1 + ext_bytes(nibble)];
    let len = match nibble {
        13 => u64::from(ext[0]) + 13,
        14 => u64::from(u16::from_be_bytes([ext[0], ext[1]])) + 269,
        15 => u64::from(u32::from_be_bytes([ext[0], ext[1], ext[2], ext[3]])) + 65805,
        n => u64::from(n),
    };
    1 + ext.len() as u64 + 1 + tkl + len
}

/// Incremental decoder: feed bytes as they arrive, in any chunking, and get
/// complete messages. At most one frame (bounded by the limit) is buffered;
/// an oversized frame is refused from its header, before its bytes arrive.
/// After an error the decoder stays failed: the connection must be aborted.
#[derive(Debug)]
pub struct StreamDecoder {
    buf: Vec<u8>,
    max_message_size: usize,
    failed: Option<StreamError>,
}

impl StreamDecoder {
    pub fn new(max_message_size: usize) -> Self {
        StreamDecoder { buf: Vec::new(), max_message_size, failed: None }
    }

    /// Our own limit, as advertised in our CSM's Max-Message-Size.
    pub fn set_max_message_size(&mut self, limit: usize) {
        self.max_message_size = limit;
    }

    /// Bytes of an incomplete frame held back.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Consumes `data`, appending each completed message to `out`. Returns
    /// how many were added (0 = need more). Messages completed before an
    /// error are still in `out`.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<Message>) -> Result<usize, StreamError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let before = out.len();
        while !data.is_empty() {
            let want = self.wanted().inspect_err(|e| self.failed = Some(*e))?;
            let take = want.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if take == want {
                self.complete(out).inspect_err(|e| self.failed = Some(*e))?;
            }
        }
        Ok(out.len() - before)
    }

    /// Bytes needed before the next parsing step can run.
    fn wanted(&self) -> Result<usize, StreamError> {
        let Some(&first) = self.buf.first() else { return Ok(1) };
        let head = 1 + ext_bytes(first >> 4);
        if self.buf.len() < head {
            return Ok(head - self.buf.len());
        }
        let size = frame_size(&self.buf[..head]);
        if size > self.max_message_size as u64 {
            return Err(StreamError::TooLarge { size, limit: self.max_message_size });
        }
        Ok(size as usize - self.buf.len())
    }

    /// Called when a step's bytes arrived: decodes the frame if whole.
    fn complete(&mut self, out: &mut Vec<Message>) -> Result<(), StreamError> {
        if self.wanted()? == 0 {
            let msg = decode_frame(&self.buf)?;
            self.buf.clear();
            out.push(msg);
        }
        Ok(())
    }
}

/// Decodes exactly one whole frame.
fn decode_frame(frame: &[u8]) -> Result<Message, FormatError> {
    let first = frame[0];
    let tkl = usize::from(first & 0x0f);
    if tkl > Token::MAX_LEN {
        return Err(FormatError::BadTokenLength(tkl as u8));
    }
    let rest = &frame[1 + ext_bytes(first >> 4)..];
    let (&code, rest) = rest.split_first().ok_or(FormatError::TruncatedHeader)?;
    let (token, rest) = split_token(tkl, rest)?;
    let (options, payload) = Options::decode(rest)?;
    Ok(Message { mtype: MessageType::Non, message_id: 0, code: Code(code), token, options, payload: payload.to_vec() })
}

/// Decodes a buffer holding exactly one frame (handy for tests and fuzzing).
pub fn decode_one(frame: &[u8], max_message_size: usize) -> Result<Message, StreamError> {
    let mut dec = StreamDecoder::new(max_message_size);
    let mut out = Vec::new();
    dec.feed(frame, &mut out)?;
    match (out.len(), dec.buffered()) {
        (1, 0) => Ok(out.remove(0)),
        _ => Err(StreamError::NotOneFrame),
    }
}
