//! The CoAP message model shared by the datagram and stream codecs, with
//! typed accessors for the options DOTS uses.

use super::block::BlockOpt;
use super::code::Code;
use super::option::{encode_uint, OptionNumber, Options};
use super::reliability::MessageIdGen;

/// Message type (RFC 7252 §3). Streams (RFC 8323) have no type: stream
/// messages decode as `Non` and the stream encoder ignores the type.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum MessageType {
    Con = 0,
    Non = 1,
    Ack = 2,
    Rst = 3,
}

impl MessageType {
    pub const fn from_bits(b: u8) -> MessageType {
        match b & 3 {
            0 => MessageType::Con,
            1 => MessageType::Non,
            2 => MessageType::Ack,
            _ => MessageType::Rst,
        }
    }
}

/// A token of 0..=8 bytes; the bound is enforced at construction so a
/// `Message` can always be encoded.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Token {
    len: u8,
    bytes: [u8; 8],
}

impl Token {
    pub const EMPTY: Token = Token { len: 0, bytes: [0; 8] };
    pub const MAX_LEN: usize = 8;

    /// `None` if longer than 8 bytes.
    pub fn new(b: &[u8]) -> Option<Token> {
        if b.len() > Self::MAX_LEN {
            return None;
        }
        let mut bytes = [0; 8];
        bytes[..b.len()].copy_from_slice(b);
        Some(Token { len: b.len() as u8, bytes })
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// Registered Content-Format numbers DOTS deals with.
pub mod content_format {
    pub const TEXT_PLAIN: u16 = 0;
    pub const LINK_FORMAT: u16 = 40;
    pub const JSON: u16 = 50;
    pub const CBOR: u16 = 60;
    /// application/dots+cbor (RFC 9132).
    pub const DOTS_CBOR: u16 = 271;
}

/// A CoAP message. `mtype` and `message_id` only matter on datagrams.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Message {
    pub mtype: MessageType,
    pub message_id: u16,
    pub code: Code,
    pub token: Token,
    pub options: Options,
    pub payload: Vec<u8>,
}

impl Message {
    pub fn new(mtype: MessageType, code: Code, message_id: u16, token: Token) -> Message {
        Message { mtype, message_id, code, token, options: Options::new(), payload: Vec::new() }
    }

    /// A request (`code` GET/PUT/POST/DELETE), CON or NON.
    pub fn request(code: Code, mtype: MessageType, message_id: u16, token: Token) -> Message {
        Message::new(mtype, code, message_id, token)
    }

    /// The response to `req`: piggybacked ACK (same message id) for a CON,
    /// a NON with a fresh id from `ids` for a NON; the token is copied.
    /// On streams the type and id are ignored by the encoder.
    pub fn response_to(req: &Message, code: Code, ids: &mut MessageIdGen) -> Message {
        let (mtype, mid) = match req.mtype {
            MessageType::Con => (MessageType::Ack, req.message_id),
            _ => (MessageType::Non, ids.next_id()),
        };
        Message::new(mtype, code, mid, req.token)
    }

    /// Empty ACK (0.00) for a CON whose response will come separately.
    pub fn empty_ack(message_id: u16) -> Message {
        Message::new(MessageType::Ack, Code::EMPTY, message_id, Token::EMPTY)
    }

    /// RST for a message we cannot or will not process.
    pub fn reset_for(msg: &Message) -> Message {
        Message::reset_for_id(msg.message_id)
    }
    pub fn reset_for_id(message_id: u16) -> Message {
        Message::new(MessageType::Rst, Code::EMPTY, message_id, Token::EMPTY)
    }

    /// Builder: sets the payload.
    pub fn with_payload(mut self, payload: impl Into<Vec<u8>>) -> Message {
        self.payload = payload.into();
        self
    }

    pub fn is_empty_message(&self) -> bool {
        self.code.is_empty()
    }

    /// First critical option we cannot process (answer 4.02); see
    /// [`Options::first_bad_critical`].
    pub fn first_bad_critical_option(&self) -> Option<OptionNumber> {
        self.options.first_bad_critical()
    }

    // ---- Uri-Path / Uri-Query -------------------------------------------

    /// Uri-Path segments; `None` if a segment is not UTF-8.
    pub fn uri_path(&self) -> Option<Vec<&str>> {
        strings(&self.options, OptionNumber::URI_PATH)
    }

    /// Sets Uri-Path from "/a/b/c" (a leading '/' is optional; "/" alone
    /// means no Uri-Path option, RFC 7252 §6.4). No percent-decoding.
    pub fn set_uri_path(&mut self, path: &str) {
        self.options.remove(OptionNumber::URI_PATH);
        let path = path.strip_prefix('/').unwrap_or(path);
        if path.is_empty() {
            return;
        }
        for seg in path.split('/') {
            self.options.push(OptionNumber::URI_PATH, seg.as_bytes().to_vec());
        }
    }

    /// Uri-Query items ("key=value" strings); `None` if one is not UTF-8.
    pub fn uri_query(&self) -> Option<Vec<&str>> {
        strings(&self.options, OptionNumber::URI_QUERY)
    }
    pub fn add_uri_query(&mut self, item: &str) {
        self.options.push(OptionNumber::URI_QUERY, item.as_bytes().to_vec());
    }

    // ---- uint options ---------------------------------------------------

    pub fn content_format(&self) -> Option<u16> {
        self.uint16(OptionNumber::CONTENT_FORMAT)
    }
    pub fn set_content_format(&mut self, cf: u16) {
        self.options.set_uint(OptionNumber::CONTENT_FORMAT, u32::from(cf));
    }
    pub fn accept(&self) -> Option<u16> {
        self.uint16(OptionNumber::ACCEPT)
    }
    pub fn set_accept(&mut self, cf: u16) {
        self.options.set_uint(OptionNumber::ACCEPT, u32::from(cf));
    }
    pub fn max_age(&self) -> Option<u32> {
        self.options.get_uint(OptionNumber::MAX_AGE)
    }
    pub fn set_max_age(&mut self, secs: u32) {
        self.options.set_uint(OptionNumber::MAX_AGE, secs);
    }
    /// Observe value (RFC 7641): 0 = register, 1 = deregister in requests;
    /// a 24-bit sequence number in notifications. `None` if absent or over
    /// 3 bytes.
    pub fn observe(&self) -> Option<u32> {
        self.options.get(OptionNumber::OBSERVE).filter(|v| v.len() <= 3).and_then(super::option::decode_uint)
    }
    /// Sets Observe; only the low 24 bits are sent.
    pub fn set_observe(&mut self, v: u32) {
        self.options.set_uint(OptionNumber::OBSERVE, v & 0x00ff_ffff);
    }
    pub fn size1(&self) -> Option<u32> {
        self.options.get_uint(OptionNumber::SIZE1)
    }
    pub fn set_size1(&mut self, v: u32) {
        self.options.set_uint(OptionNumber::SIZE1, v);
    }
    pub fn size2(&self) -> Option<u32> {
        self.options.get_uint(OptionNumber::SIZE2)
    }
    pub fn set_size2(&mut self, v: u32) {
        self.options.set_uint(OptionNumber::SIZE2, v);
    }
    /// Hop-Limit (RFC 8768): one byte, 1..=255 on the wire.
    pub fn hop_limit(&self) -> Option<u8> {
        match self.options.get(OptionNumber::HOP_LIMIT) {
            Some([v]) => Some(*v),
            _ => None,
        }
    }
    pub fn set_hop_limit(&mut self, v: u8) {
        // Sent as exactly one byte (not a minimal uint): RFC 8768 §3.
        self.options.set(OptionNumber::HOP_LIMIT, vec![v]);
    }

    // ---- Block-wise (RFC 7959) -----------------------------------------

    pub fn block1(&self) -> Option<BlockOpt> {
        self.options.get(OptionNumber::BLOCK1).and_then(BlockOpt::decode)
    }
    pub fn set_block1(&mut self, b: BlockOpt) {
        self.options.set(OptionNumber::BLOCK1, b.encode());
    }
    pub fn block2(&self) -> Option<BlockOpt> {
        self.options.get(OptionNumber::BLOCK2).and_then(BlockOpt::decode)
    }
    pub fn set_block2(&mut self, b: BlockOpt) {
        self.options.set(OptionNumber::BLOCK2, b.encode());
    }

    // ---- opaque options -------------------------------------------------

    pub fn etags(&self) -> impl Iterator<Item = &[u8]> {
        self.options.all(OptionNumber::ETAG)
    }
    pub fn add_etag(&mut self, tag: &[u8]) {
        self.options.push(OptionNumber::ETAG, tag.to_vec());
    }
    pub fn if_match(&self) -> impl Iterator<Item = &[u8]> {
        self.options.all(OptionNumber::IF_MATCH)
    }
    pub fn add_if_match(&mut self, tag: &[u8]) {
        self.options.push(OptionNumber::IF_MATCH, tag.to_vec());
    }
    /// Request-Tag (RFC 9175); absent and zero-length are distinct values.
    pub fn request_tag(&self) -> Option<&[u8]> {
        self.options.get(OptionNumber::REQUEST_TAG)
    }
    pub fn set_request_tag(&mut self, tag: &[u8]) {
        self.options.set(OptionNumber::REQUEST_TAG, tag.to_vec());
    }

    fn uint16(&self, n: OptionNumber) -> Option<u16> {
        self.options.get_uint(n).and_then(|v| u16::try_from(v).ok())
    }
}

fn strings(opts: &Options, n: OptionNumber) -> Option<Vec<&str>> {
    opts.all(n).map(|v| std::str::from_utf8(v).ok()).collect()
}

/// Encodes `v` as a uint option value (re-exported for callers building
/// unknown or signaling options by hand).
pub fn uint_value(v: u32) -> Vec<u8> {
    encode_uint(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(b: &[u8]) -> Token {
        Token::new(b).unwrap()
    }

    #[test]
    fn uri_path_round_trip() {
        let mut m = Message::request(Code::PUT, MessageType::Con, 1, tok(b"t"));
        m.set_uri_path("/.well-known/dots/mitigate/cuid=x/mid=1");
        assert_eq!(m.uri_path().unwrap(), [".well-known", "dots", "mitigate", "cuid=x", "mid=1"]);
        m.set_uri_path("/");
        assert_eq!(m.uri_path().unwrap(), Vec::<&str>::new());
        m.set_uri_path("a//b/");
        assert_eq!(m.uri_path().unwrap(), ["a", "", "b", ""]);
    }

    #[test]
    fn non_utf8_path_is_none() {
        let mut m = Message::request(Code::GET, MessageType::Con, 1, Token::EMPTY);
        m.options.push(OptionNumber::URI_PATH, vec![0xff]);
        assert_eq!(m.uri_path(), None);
    }

    #[test]
    fn response_to_con_is_piggybacked_ack() {
        let mut ids = MessageIdGen::new(100);
        let req = Message::request(Code::GET, MessageType::Con, 7, tok(b"abc"));
        let r = Message::response_to(&req, Code::CONTENT, &mut ids);
        assert_eq!((r.mtype, r.message_id, r.token), (MessageType::Ack, 7, req.token));
        let req = Message::request(Code::GET, MessageType::Non, 7, tok(b"abc"));
        let r = Message::response_to(&req, Code::CONTENT, &mut ids);
        assert_eq!((r.mtype, r.message_id, r.token), (MessageType::Non, 100, req.token));
    }

    #[test]
    fn typed_options() {
        let mut m = Message::request(Code::GET, MessageType::Con, 1, Token::EMPTY);
        m.set_content_format(content_format::DOTS_CBOR);
        m.set_accept(content_format::DOTS_CBOR);
        m.set_observe(0x1ff_ffff);
        m.set_max_age(60);
        m.set_hop_limit(16);
        m.set_request_tag(b"");
        assert_eq!(m.content_format(), Some(271));
        assert_eq!(m.accept(), Some(271));
        assert_eq!(m.observe(), Some(0xff_ffff));
        assert_eq!(m.max_age(), Some(60));
        assert_eq!(m.hop_limit(), Some(16));
        assert_eq!(m.request_tag(), Some(&[][..]));
        assert_eq!(Token::new(&[0; 9]), None);
    }
}
