//! CoAP options: numbers, the sorted option list, and the delta/length
//! codec shared by datagrams (RFC 7252 §3.1) and streams (RFC 8323 §3.2).

use super::error::FormatError;

/// An option number (RFC 7252 §5.4.6 properties are derived from its bits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct OptionNumber(pub u16);

impl OptionNumber {
    pub const IF_MATCH: OptionNumber = OptionNumber(1);
    pub const URI_HOST: OptionNumber = OptionNumber(3);
    pub const ETAG: OptionNumber = OptionNumber(4);
    pub const IF_NONE_MATCH: OptionNumber = OptionNumber(5);
    pub const OBSERVE: OptionNumber = OptionNumber(6);
    pub const URI_PORT: OptionNumber = OptionNumber(7);
    pub const LOCATION_PATH: OptionNumber = OptionNumber(8);
    pub const URI_PATH: OptionNumber = OptionNumber(11);
    pub const CONTENT_FORMAT: OptionNumber = OptionNumber(12);
    pub const MAX_AGE: OptionNumber = OptionNumber(14);
    pub const URI_QUERY: OptionNumber = OptionNumber(15);
    pub const HOP_LIMIT: OptionNumber = OptionNumber(16);
    pub const ACCEPT: OptionNumber = OptionNumber(17);
    pub const LOCATION_QUERY: OptionNumber = OptionNumber(20);
    pub const BLOCK2: OptionNumber = OptionNumber(23);
    pub const BLOCK1: OptionNumber = OptionNumber(27);
    pub const SIZE2: OptionNumber = OptionNumber(28);
    pub const PROXY_URI: OptionNumber = OptionNumber(35);
    pub const PROXY_SCHEME: OptionNumber = OptionNumber(39);
    pub const SIZE1: OptionNumber = OptionNumber(60);
    pub const REQUEST_TAG: OptionNumber = OptionNumber(292);

    /// Odd numbers are critical: a receiver that does not understand one
    /// must reject the message (4.02 for a CON/NON request).
    pub const fn is_critical(self) -> bool {
        self.0 & 1 == 1
    }
    pub const fn is_unsafe_to_forward(self) -> bool {
        self.0 & 2 == 2
    }
    pub const fn is_no_cache_key(self) -> bool {
        self.0 & 0x1e == 0x1c
    }
}

/// Value format of a known option (RFC 7252 §3.2).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OptionFormat {
    Empty,
    Opaque,
    Uint,
    String,
}

/// What this implementation knows about an option (RFC 7252 §5.10 table
/// plus RFC 7641, 7959, 8768, 9175).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct OptionSpec {
    pub number: OptionNumber,
    pub name: &'static str,
    pub format: OptionFormat,
    pub min_len: usize,
    pub max_len: usize,
    pub repeatable: bool,
}

const fn spec(n: u16, name: &'static str, format: OptionFormat, min: usize, max: usize, rep: bool) -> OptionSpec {
    OptionSpec { number: OptionNumber(n), name, format, min_len: min, max_len: max, repeatable: rep }
}

use OptionFormat::{Empty, Opaque, String as Str, Uint};
const KNOWN: &[OptionSpec] = &[
    spec(1, "If-Match", Opaque, 0, 8, true),
    spec(3, "Uri-Host", Str, 1, 255, false),
    spec(4, "ETag", Opaque, 1, 8, true),
    spec(5, "If-None-Match", Empty, 0, 0, false),
    spec(6, "Observe", Uint, 0, 3, false),
    spec(7, "Uri-Port", Uint, 0, 2, false),
    spec(8, "Location-Path", Str, 0, 255, true),
    spec(11, "Uri-Path", Str, 0, 255, true),
    spec(12, "Content-Format", Uint, 0, 2, false),
    spec(14, "Max-Age", Uint, 0, 4, false),
    spec(15, "Uri-Query", Str, 0, 255, true),
    spec(16, "Hop-Limit", Uint, 1, 1, false),
    spec(17, "Accept", Uint, 0, 2, false),
    spec(20, "Location-Query", Str, 0, 255, true),
    spec(23, "Block2", Uint, 0, 3, false),
    spec(27, "Block1", Uint, 0, 3, false),
    spec(28, "Size2", Uint, 0, 4, false),
    spec(35, "Proxy-Uri", Str, 1, 1034, false),
    spec(39, "Proxy-Scheme", Str, 1, 255, false),
    spec(60, "Size1", Uint, 0, 4, false),
    spec(292, "Request-Tag", Opaque, 0, 8, true),
];

/// The spec of a known request/response option, `None` if unknown.
pub fn known_option(number: OptionNumber) -> Option<&'static OptionSpec> {
    KNOWN.iter().find(|s| s.number == number)
}

/// One option instance: number and raw value bytes (kept raw so that unknown
/// options survive decode/encode unchanged).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct CoapOption {
    pub number: OptionNumber,
    pub value: Vec<u8>,
}

/// Options of a message, always sorted by number; repeated options keep
/// their relative order (it is significant, e.g. Uri-Path segments).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct Options(Vec<CoapOption>);

impl Options {
    pub fn new() -> Options {
        Options(Vec::new())
    }
    pub fn iter(&self) -> std::slice::Iter<'_, CoapOption> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Appends after any existing instance of the same number.
    pub fn push(&mut self, number: OptionNumber, value: Vec<u8>) {
        let at = self.0.partition_point(|o| o.number <= number);
        self.0.insert(at, CoapOption { number, value });
    }
    /// Replaces all instances of `number` by one.
    pub fn set(&mut self, number: OptionNumber, value: Vec<u8>) {
        self.remove(number);
        self.push(number, value);
    }
    pub fn remove(&mut self, number: OptionNumber) {
        self.0.retain(|o| o.number != number);
    }
    /// The first instance's value.
    pub fn get(&self, number: OptionNumber) -> Option<&[u8]> {
        self.all(number).next()
    }
    /// All values of `number` in order.
    pub fn all(&self, number: OptionNumber) -> impl Iterator<Item = &[u8]> {
        self.0.iter().filter(move |o| o.number == number).map(|o| o.value.as_slice())
    }
    pub fn get_uint(&self, number: OptionNumber) -> Option<u32> {
        self.get(number).and_then(decode_uint)
    }
    pub fn set_uint(&mut self, number: OptionNumber, value: u32) {
        self.set(number, encode_uint(value));
    }

    /// The first critical option this implementation cannot process: an
    /// unknown critical number, a non-repeatable critical option repeated, or
    /// a known critical option with a length outside its range (RFC 7252
    /// §5.4.1, §5.4.3, §5.4.5). A server answers a request carrying one
    /// with 4.02 Bad Option. Elective problems are meant to be ignored.
    pub fn first_bad_critical(&self) -> Option<OptionNumber> {
        self.0.iter().enumerate().find_map(|(i, o)| {
            if !o.number.is_critical() {
                return None;
            }
            let bad = match known_option(o.number) {
                None => true,
                Some(s) => {
                    let repeated = !s.repeatable && i > 0 && self.0[i - 1].number == o.number;
                    repeated || o.value.len() < s.min_len || o.value.len() > s.max_len
                }
            };
            bad.then_some(o.number)
        })
    }

    /// Writes the options in wire form (deltas from the previous number).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), FormatError> {
        let mut prev = 0u16;
        for o in &self.0 {
            encode_option(o.number.0 - prev, &o.value, out)?;
            prev = o.number.0;
        }
        Ok(())
    }

    /// Bytes `encode` would write (used for stream length fields).
    pub fn encoded_len(&self) -> usize {
        let mut prev = 0u16;
        let mut n = 0;
        for o in &self.0 {
            n += 1 + ext_len(u32::from(o.number.0 - prev)) + ext_len(o.value.len() as u32) + o.value.len();
            prev = o.number.0;
        }
        n
    }

    /// Parses options up to the end of `buf` or a payload marker; returns the
    /// options and the payload (empty if there is no marker).
    pub fn decode(buf: &[u8]) -> Result<(Options, &[u8]), FormatError> {
        let mut opts = Vec::new();
        let mut rest = buf;
        let mut number = 0u16;
        while let Some((&first, tail)) = rest.split_first() {
            if first == 0xff {
                return payload_after_marker(tail).map(|p| (Options(opts), p));
            }
            let (delta, tail) = read_ext(first >> 4, tail)?;
            let (len, tail) = read_ext(first & 0x0f, tail)?;
            number = u16::try_from(u32::from(number) + delta).map_err(|_| FormatError::OptionNumberTooLarge)?;
            let len = len as usize;
            if tail.len() < len {
                return Err(FormatError::TruncatedOption);
            }
            opts.push(CoapOption { number: OptionNumber(number), value: tail[..len].to_vec() });
            rest = &tail[len..];
        }
        Ok((Options(opts), &[]))
    }
}

impl<'a> IntoIterator for &'a Options {
    type Item = &'a CoapOption;
    type IntoIter = std::slice::Iter<'a, CoapOption>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

fn payload_after_marker(tail: &[u8]) -> Result<&[u8], FormatError> {
    // RFC 7252 §3: a marker followed by a zero-length payload is a format error.
    if tail.is_empty() {
        Err(FormatError::EmptyPayloadAfterMarker)
    } else {
        Ok(tail)
    }
}

/// Largest option value or delta the 14-form can carry: 65535 + 269.
pub const MAX_OPTION_VALUE_LEN: usize = 65535 + 269;

/// Extra bytes after the nibble for a delta or length of `v`.
fn ext_len(v: u32) -> usize {
    match v {
        0..=12 => 0,
        13..=268 => 1,
        _ => 2,
    }
}

fn nibble(v: u32) -> u8 {
    match v {
        0..=12 => v as u8,
        13..=268 => 13,
        _ => 14,
    }
}

fn write_ext(v: u32, out: &mut Vec<u8>) {
    match v {
        0..=12 => {}
        13..=268 => out.push((v - 13) as u8),
        _ => out.extend_from_slice(&((v - 269) as u16).to_be_bytes()),
    }
}

fn encode_option(delta: u16, value: &[u8], out: &mut Vec<u8>) -> Result<(), FormatError> {
    if value.len() > MAX_OPTION_VALUE_LEN {
        return Err(FormatError::OptionTooLong);
    }
    let (d, l) = (u32::from(delta), value.len() as u32);
    out.push((nibble(d) << 4) | nibble(l));
    write_ext(d, out);
    write_ext(l, out);
    out.extend_from_slice(value);
    Ok(())
}

/// Reads the extension of a delta/length nibble (RFC 7252 §3.1).
fn read_ext(nib: u8, buf: &[u8]) -> Result<(u32, &[u8]), FormatError> {
    match nib {
        0..=12 => Ok((u32::from(nib), buf)),
        13 => match buf.split_first() {
            Some((&b, rest)) => Ok((u32::from(b) + 13, rest)),
            None => Err(FormatError::TruncatedOption),
        },
        14 if buf.len() >= 2 => Ok((u32::from(u16::from_be_bytes([buf[0], buf[1]])) + 269, &buf[2..])),
        14 => Err(FormatError::TruncatedOption),
        _ => Err(FormatError::ReservedOptionNibble),
    }
}

/// Minimal big-endian uint encoding (RFC 7252 §3.2: no leading zeros; 0 is
/// the empty string).
pub fn encode_uint(v: u32) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = (v.leading_zeros() / 8) as usize;
    bytes[skip..].to_vec()
}

/// Decodes a uint value of up to 4 bytes (leading zeros accepted).
pub fn decode_uint(b: &[u8]) -> Option<u32> {
    if b.len() > 4 {
        return None;
    }
    Some(b.iter().fold(0u32, |acc, &x| (acc << 8) | u32::from(x)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint_minimal() {
        assert_eq!(encode_uint(0), Vec::<u8>::new());
        assert_eq!(encode_uint(1), vec![1]);
        assert_eq!(encode_uint(256), vec![1, 0]);
        assert_eq!(encode_uint(0x0100_0000), vec![1, 0, 0, 0]);
        assert_eq!(decode_uint(&[0, 0, 1]), Some(1));
        assert_eq!(decode_uint(&[1, 2, 3, 4, 5]), None);
    }

    #[test]
    fn push_keeps_sorted_and_stable() {
        let mut o = Options::new();
        o.push(OptionNumber::URI_QUERY, b"q".to_vec());
        o.push(OptionNumber::URI_PATH, b"a".to_vec());
        o.push(OptionNumber::URI_PATH, b"b".to_vec());
        o.push(OptionNumber::IF_MATCH, vec![]);
        let nums: Vec<u16> = o.iter().map(|x| x.number.0).collect();
        assert_eq!(nums, [1, 11, 11, 15]);
        assert_eq!(o.all(OptionNumber::URI_PATH).collect::<Vec<_>>(), [b"a", b"b"]);
    }

    #[test]
    fn critical_detection() {
        let mut o = Options::new();
        o.push(OptionNumber(2), vec![]); // unknown elective: fine
        assert_eq!(o.first_bad_critical(), None);
        o.push(OptionNumber(9), vec![]); // unknown critical
        assert_eq!(o.first_bad_critical(), Some(OptionNumber(9)));

        let mut o = Options::new();
        o.set_uint(OptionNumber::BLOCK1, 5);
        o.push(OptionNumber::BLOCK1, vec![6]); // non-repeatable critical repeated
        assert_eq!(o.first_bad_critical(), Some(OptionNumber::BLOCK1));

        let mut o = Options::new();
        o.push(OptionNumber::URI_HOST, vec![]); // below min length
        assert_eq!(o.first_bad_critical(), Some(OptionNumber::URI_HOST));
    }

    #[test]
    fn encoded_len_matches_encode() {
        let mut o = Options::new();
        for (n, len) in [(1u16, 0usize), (14, 13), (300, 268), (1000, 269), (65535, 3)] {
            o.push(OptionNumber(n), vec![7; len]);
        }
        let mut out = Vec::new();
        o.encode(&mut out).unwrap();
        assert_eq!(out.len(), o.encoded_len());
        assert_eq!(Options::decode(&out).unwrap(), (o, &[][..]));
    }

    #[test]
    fn number_overflow_is_error() {
        // delta 65535+269 on top of option 1 would exceed u16.
        let buf = [0x10, 0xe0, 0xff, 0xff];
        assert_eq!(Options::decode(&buf), Err(FormatError::OptionNumberTooLarge));
    }
}
