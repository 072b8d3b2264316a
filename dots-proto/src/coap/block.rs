//! Block-wise transfer (RFC 7959): the Block1/Block2 option value, Block1
//! reassembly on the server side, Block2 slicing of a response body, and
//! Block2 collection on the client side.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use super::code::Code;
use super::message::Message;
use super::option::{decode_uint, encode_uint, OptionNumber};

/// A Block1/Block2 value: block number, more flag, size exponent.
/// Size is `2^(szx+4)`; szx 7 is reserved on datagrams and means BERT on
/// streams (RFC 8323 §6), so it is representable but [`BlockOpt::size`]
/// reports 1024 for it and the helpers here refuse it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct BlockOpt {
    pub num: u32,
    pub more: bool,
    pub szx: u8,
}

impl BlockOpt {
    /// Largest NUM that fits the 3-byte option value.
    pub const MAX_NUM: u32 = (1 << 20) - 1;

    pub fn new(num: u32, more: bool, szx: u8) -> Option<BlockOpt> {
        (num <= Self::MAX_NUM && szx <= 7).then_some(BlockOpt { num, more, szx })
    }
    /// Block size in bytes (16..=1024).
    pub fn size(self) -> usize {
        16 << self.szx.min(6)
    }
    /// Byte offset of this block in the body.
    pub fn offset(self) -> usize {
        self.num as usize * self.size()
    }
    /// The option value: minimal uint of `num<<4 | m<<3 | szx` (0..=3 bytes).
    pub fn encode(self) -> Vec<u8> {
        encode_uint((self.num << 4) | (u32::from(self.more) << 3) | u32::from(self.szx))
    }
    /// `None` if longer than 3 bytes.
    pub fn decode(v: &[u8]) -> Option<BlockOpt> {
        if v.len() > 3 {
            return None;
        }
        let x = decode_uint(v)?;
        Some(BlockOpt { num: x >> 4, more: x & 8 != 0, szx: (x & 7) as u8 })
    }
    /// The szx for a block size in bytes, `None` unless a power of two in 16..=1024.
    pub fn szx_for_size(size: usize) -> Option<u8> {
        (size.is_power_of_two() && (16..=1024).contains(&size)).then(|| (size.trailing_zeros() - 4) as u8)
    }
}

/// Why a Block1 block was refused; each maps to the response code to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Block1Error {
    #[error("block out of sequence or transfer unknown")]
    Incomplete,
    #[error("body would exceed {limit} bytes")]
    TooLarge { limit: usize },
    #[error("malformed block (reserved szx or wrong payload size)")]
    BadRequest,
    #[error("too many transfers in progress")]
    Busy,
}

impl Block1Error {
    /// 4.08, 4.13 (send Size1 = limit with it), 4.00, 5.03.
    pub fn code(self) -> Code {
        match self {
            Block1Error::Incomplete => Code::REQUEST_ENTITY_INCOMPLETE,
            Block1Error::TooLarge { .. } => Code::REQUEST_ENTITY_TOO_LARGE,
            Block1Error::BadRequest => Code::BAD_REQUEST,
            Block1Error::Busy => Code::SERVICE_UNAVAILABLE,
        }
    }
}

/// Result of offering a request to the [`Block1Assembler`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Block1Progress {
    /// More blocks expected: answer 2.31 Continue carrying this Block1.
    Continue(BlockOpt),
    /// The whole body. `last` is the final Block1 to echo in the final
    /// response (None if the request was not block-wise).
    Complete { body: Vec<u8>, last: Option<BlockOpt> },
}

/// Which transfer a block belongs to (RFC 7959 §2.4, RFC 9175 §3.3): the
/// peer, the method, the request target and the Request-Tag.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct TransferKey<K> {
    peer: K,
    code: Code,
    target: Vec<Vec<u8>>,
    tag: Option<Vec<u8>>,
}

struct Partial {
    body: Vec<u8>,
    expires: Instant,
}

/// Server-side Block1 reassembly with a body size limit, a bound on
/// concurrent transfers and expiry of abandoned ones.
pub struct Block1Assembler<K> {
    max_body: usize,
    max_transfers: usize,
    lifetime: Duration,
    partials: HashMap<TransferKey<K>, Partial>,
}

impl<K: Eq + Hash + Clone> Block1Assembler<K> {
    /// `lifetime`: how long a partial body waits for its next block
    /// (EXCHANGE_LIFETIME is a sensible choice).
    pub fn new(max_body: usize, max_transfers: usize, lifetime: Duration) -> Self {
        Block1Assembler { max_body, max_transfers, lifetime, partials: HashMap::new() }
    }

    pub fn in_progress(&self) -> usize {
        self.partials.len()
    }

    /// Offers a request. Requests without Block1 complete at once (still
    /// subject to the size limit).
    pub fn offer(&mut self, peer: K, req: &Message, now: Instant) -> Result<Block1Progress, Block1Error> {
        self.expire(now);
        let Some(block) = req.block1() else {
            return self.whole(req);
        };
        if req.options.get(OptionNumber::BLOCK1).is_some_and(|v| v.len() > 3) || block.szx == 7 {
            return Err(Block1Error::BadRequest);
        }
        if req.size1().is_some_and(|s| s as usize > self.max_body) {
            return Err(Block1Error::TooLarge { limit: self.max_body });
        }
        let key = transfer_key(peer, req);
        let result = self.add_block(&key, block, &req.payload, now);
        if !matches!(result, Ok(Block1Progress::Continue(_))) {
            self.partials.remove(&key);
        }
        result
    }

    fn whole(&self, req: &Message) -> Result<Block1Progress, Block1Error> {
        if req.payload.len() > self.max_body {
            return Err(Block1Error::TooLarge { limit: self.max_body });
        }
        Ok(Block1Progress::Complete { body: req.payload.clone(), last: None })
    }

    fn add_block(&mut self, key: &TransferKey<K>, block: BlockOpt, payload: &[u8], now: Instant) -> Result<Block1Progress, Block1Error> {
        if block.more && payload.len() != block.size() || payload.len() > block.size() {
            return Err(Block1Error::BadRequest);
        }
        if block.num == 0 {
            self.start(key.clone(), now)?;
        }
        let partial = self.partials.get_mut(key).ok_or(Block1Error::Incomplete)?;
        // The client may lower szx mid-transfer; the offset must still line up.
        if block.offset() != partial.body.len() {
            return Err(Block1Error::Incomplete);
        }
        if partial.body.len() + payload.len() > self.max_body {
            return Err(Block1Error::TooLarge { limit: self.max_body });
        }
        partial.body.extend_from_slice(payload);
        partial.expires = now + self.lifetime;
        if block.more {
            return Ok(Block1Progress::Continue(block));
        }
        let body = std::mem::take(&mut partial.body);
        Ok(Block1Progress::Complete { body, last: Some(block) })
    }

    /// Block 0 (re)starts a transfer, replacing any earlier one with the key.
    fn start(&mut self, key: TransferKey<K>, now: Instant) -> Result<(), Block1Error> {
        if !self.partials.contains_key(&key) && self.partials.len() >= self.max_transfers {
            return Err(Block1Error::Busy);
        }
        self.partials.insert(key, Partial { body: Vec::new(), expires: now + self.lifetime });
        Ok(())
    }

    /// Drops transfers whose next block is overdue.
    pub fn expire(&mut self, now: Instant) {
        self.partials.retain(|_, p| p.expires > now);
    }
}

fn transfer_key<K>(peer: K, req: &Message) -> TransferKey<K> {
    let target = req
        .options
        .iter()
        .filter(|o| matches!(o.number, OptionNumber::URI_HOST | OptionNumber::URI_PORT | OptionNumber::URI_PATH | OptionNumber::URI_QUERY))
        .map(|o| {
            let mut v = o.number.0.to_be_bytes().to_vec();
            v.extend_from_slice(&o.value);
            v
        })
        .collect();
    TransferKey { peer, code: req.code, target, tag: req.request_tag().map(<[u8]>::to_vec) }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Block2Error {
    #[error("requested block lies beyond the end of the body")]
    OutOfRange,
    #[error("reserved block size exponent")]
    BadSzx,
}

/// The Block2 slice of `body` to send for `requested` (the request's Block2,
/// or `None` for a first request), using at most `max_szx`. If we use a
/// smaller size than requested the block number is scaled (RFC 7959 §2.4).
/// Returns the Block2 value to put in the response and the payload.
pub fn block2_slice(body: &[u8], requested: Option<BlockOpt>, max_szx: u8) -> Result<(BlockOpt, &[u8]), Block2Error> {
    let req = requested.unwrap_or(BlockOpt { num: 0, more: false, szx: max_szx });
    if req.szx > 6 || max_szx > 6 {
        return Err(Block2Error::BadSzx);
    }
    let szx = req.szx.min(max_szx);
    let num = req.num.checked_shl(u32::from(req.szx - szx)).ok_or(Block2Error::OutOfRange)?;
    let size = 16usize << szx;
    let start = (num as usize).checked_mul(size).ok_or(Block2Error::OutOfRange)?;
    // Block 0 of an empty body is the (empty) body itself.
    if start > body.len() || (start == body.len() && num > 0) || num > BlockOpt::MAX_NUM {
        return Err(Block2Error::OutOfRange);
    }
    let end = (start + size).min(body.len());
    Ok((BlockOpt { num, more: end < body.len(), szx }, &body[start..end]))
}

/// Client side of a Block2 transfer: feed each response, get the next
/// block number to ask for or the whole body.
#[derive(Debug)]
pub struct Block2Collector {
    body: Vec<u8>,
    max_body: usize,
    etag: Option<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Block2Step {
    /// Send the same request again with this Block2.
    Request(BlockOpt),
    Complete(Vec<u8>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Block2CollectError {
    #[error("block does not continue the body")]
    OutOfSequence,
    #[error("representation changed during the transfer (ETag)")]
    Changed,
    #[error("body would exceed {limit} bytes")]
    TooLarge { limit: usize },
}

impl Block2Collector {
    pub fn new(max_body: usize) -> Self {
        Block2Collector { body: Vec::new(), max_body, etag: None }
    }

    pub fn push(&mut self, resp: &Message) -> Result<Block2Step, Block2CollectError> {
        let Some(b) = resp.block2() else {
            return self.append(&resp.payload).map(|()| Block2Step::Complete(std::mem::take(&mut self.body)));
        };
        if b.offset() != self.body.len() || b.szx == 7 {
            return Err(Block2CollectError::OutOfSequence);
        }
        self.check_etag(resp)?;
        self.append(&resp.payload)?;
        if !b.more {
            return Ok(Block2Step::Complete(std::mem::take(&mut self.body)));
        }
        let next = BlockOpt::new(b.num + 1, false, b.szx).ok_or(Block2CollectError::TooLarge { limit: self.max_body })?;
        Ok(Block2Step::Request(next))
    }

    fn check_etag(&mut self, resp: &Message) -> Result<(), Block2CollectError> {
        let tag = resp.etags().next().map(<[u8]>::to_vec);
        if self.body.is_empty() {
            self.etag = tag;
            Ok(())
        } else if self.etag == tag {
            Ok(())
        } else {
            Err(Block2CollectError::Changed)
        }
    }

    fn append(&mut self, p: &[u8]) -> Result<(), Block2CollectError> {
        if self.body.len() + p.len() > self.max_body {
            return Err(Block2CollectError::TooLarge { limit: self.max_body });
        }
        self.body.extend_from_slice(p);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn szx_sizes() {
        assert_eq!(BlockOpt::new(0, false, 0).unwrap().size(), 16);
        assert_eq!(BlockOpt::new(0, false, 6).unwrap().size(), 1024);
        assert_eq!(BlockOpt::szx_for_size(64), Some(2));
        assert_eq!(BlockOpt::szx_for_size(100), None);
        assert_eq!(BlockOpt::new(1 << 20, false, 0), None);
    }

    #[test]
    fn block2_slicing_and_scaling() {
        let body: Vec<u8> = (0..100).collect();
        let (b, p) = block2_slice(&body, None, 1).unwrap();
        assert_eq!((b, p.len()), (BlockOpt { num: 0, more: true, szx: 1 }, 32));
        let (b, p) = block2_slice(&body, Some(BlockOpt { num: 3, more: false, szx: 1 }), 6).unwrap();
        assert_eq!((b, p), (BlockOpt { num: 3, more: false, szx: 1 }, &body[96..]));
        // Client asks for 64-byte block 1, we only do 32: block 2 of 32.
        let (b, p) = block2_slice(&body, Some(BlockOpt { num: 1, more: false, szx: 2 }), 1).unwrap();
        assert_eq!((b, p), (BlockOpt { num: 2, more: true, szx: 1 }, &body[64..96]));
        assert_eq!(block2_slice(&body, Some(BlockOpt { num: 4, more: false, szx: 1 }), 6), Err(Block2Error::OutOfRange));
        assert_eq!(block2_slice(&[], None, 6).unwrap().1, &[] as &[u8]);
    }
}
