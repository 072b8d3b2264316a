//! Byte-exact RFC 7252 datagram vectors and malformed-input errors.

use dots_proto::coap::datagram::{decode, encode, encode_with_limit};
use dots_proto::coap::{content_format, BlockOpt, Code, EncodeError, FormatError, Header, Message, MessageType, OptionNumber, Token};

fn tok(b: &[u8]) -> Token {
    Token::new(b).unwrap()
}

/// Encodes `m`, checks the bytes, decodes them back to `m`.
fn vector(m: &Message, bytes: &[u8]) {
    assert_eq!(encode(m).unwrap(), bytes, "encoding of {m:?}");
    assert_eq!(&decode(bytes).unwrap(), m, "decoding of {bytes:02x?}");
}

fn get(mid: u16) -> Message {
    Message::request(Code::GET, MessageType::Con, mid, Token::EMPTY)
}

#[test]
fn empty_messages_of_each_type() {
    vector(&Message::new(MessageType::Con, Code::EMPTY, 0x1234, Token::EMPTY), &[0x40, 0x00, 0x12, 0x34]);
    vector(&Message::new(MessageType::Non, Code::EMPTY, 0x0001, Token::EMPTY), &[0x50, 0x00, 0x00, 0x01]);
    vector(&Message::empty_ack(0xabcd), &[0x60, 0x00, 0xab, 0xcd]);
    vector(&Message::reset_for(&get(0xfffe)), &[0x70, 0x00, 0xff, 0xfe]);
}

#[test]
fn tokens_zero_to_eight_bytes() {
    for n in 0..=8u8 {
        let t: Vec<u8> = (1..=n).collect();
        let m = Message::request(Code::GET, MessageType::Non, 7, tok(&t));
        let mut want = vec![0x50 | n, 0x01, 0x00, 0x07];
        want.extend_from_slice(&t);
        vector(&m, &want);
    }
}

#[test]
fn rfc7252_appendix_style_get_and_piggybacked_response() {
    let mut m = get(0x7d34);
    m.set_uri_path("temperature");
    let mut want = vec![0x40, 0x01, 0x7d, 0x34, 0xbb];
    want.extend_from_slice(b"temperature");
    vector(&m, &want);

    let r = Message::new(MessageType::Ack, Code::CONTENT, 0x7d34, Token::EMPTY).with_payload(*b"22.3 C");
    let mut want = vec![0x60, 0x45, 0x7d, 0x34, 0xff];
    want.extend_from_slice(b"22.3 C");
    vector(&r, &want);
}

#[test]
fn dots_mitigation_put_with_several_options() {
    let mut m = Message::request(Code::PUT, MessageType::Con, 0x0102, tok(&[0xaa, 0xbb]));
    m.set_uri_path("/.well-known/dots/mitigate");
    m.set_observe(0);
    m.set_content_format(content_format::DOTS_CBOR);
    m.set_accept(content_format::DOTS_CBOR);
    m.payload = vec![0xa1, 0x01, 0x02];
    let mut want = vec![0x42, 0x03, 0x01, 0x02, 0xaa, 0xbb];
    want.push(0x60); // Observe (6), empty = 0
    want.push(0x5b); // Uri-Path (11), 11 bytes
    want.extend_from_slice(b".well-known");
    want.push(0x04);
    want.extend_from_slice(b"dots");
    want.push(0x08);
    want.extend_from_slice(b"mitigate");
    want.extend_from_slice(&[0x12, 0x01, 0x0f]); // Content-Format (12) = 271
    want.extend_from_slice(&[0x52, 0x01, 0x0f]); // Accept (17) = 271
    want.extend_from_slice(&[0xff, 0xa1, 0x01, 0x02]);
    vector(&m, &want);
    assert_eq!(m.uri_path().unwrap(), [".well-known", "dots", "mitigate"]);
}

#[test]
fn extended_delta_13_form() {
    let mut m = get(1);
    m.set_size1(1024); // option 60: delta 60 = 13 + 47
    vector(&m, &[0x40, 0x01, 0x00, 0x01, 0xd2, 47, 0x04, 0x00]);
    let mut m = get(1);
    m.options.push(OptionNumber(268), vec![]); // largest 13-form delta
    vector(&m, &[0x40, 0x01, 0x00, 0x01, 0xd0, 0xff]);
    let mut m = get(1);
    m.options.push(OptionNumber(13), vec![]); // smallest
    vector(&m, &[0x40, 0x01, 0x00, 0x01, 0xd0, 0x00]);
}

#[test]
fn extended_delta_14_form() {
    let mut m = get(1);
    m.set_request_tag(&[0xaa]); // option 292: 269 + 23
    vector(&m, &[0x40, 0x01, 0x00, 0x01, 0xe1, 0x00, 23, 0xaa]);
    let mut m = get(1);
    m.options.push(OptionNumber(269), vec![]);
    vector(&m, &[0x40, 0x01, 0x00, 0x01, 0xe0, 0x00, 0x00]);
    let mut m = get(1);
    m.options.push(OptionNumber(65535), vec![]);
    vector(&m, &[0x40, 0x01, 0x00, 0x01, 0xe0, 0xfe, 0xf2]);
}

#[test]
fn extended_length_forms() {
    for (len, head) in [(12usize, vec![0xbc]), (13, vec![0xbd, 0x00]), (268, vec![0xbd, 0xff]), (269, vec![0xbe, 0x00, 0x00]), (300, vec![0xbe, 0x00, 31])] {
        let mut m = get(9);
        m.options.push(OptionNumber::URI_PATH, vec![b'x'; len]);
        let mut want = vec![0x40, 0x01, 0x00, 0x09];
        want.extend_from_slice(&head);
        want.extend(std::iter::repeat_n(b'x', len));
        vector(&m, &want);
    }
}

#[test]
fn extended_delta_and_length_together() {
    let mut m = get(2);
    m.options.push(OptionNumber(300), vec![7; 20]);
    let mut want = vec![0x40, 0x01, 0x00, 0x02, 0xed, 0x00, 31, 7];
    want.extend_from_slice(&[7; 20]);
    vector(&m, &want);
}

#[test]
fn block_values_in_each_size() {
    let cases: [(BlockOpt, &[u8]); 6] = [
        (BlockOpt { num: 0, more: false, szx: 0 }, &[]),
        (BlockOpt { num: 0, more: false, szx: 6 }, &[0x06]),
        (BlockOpt { num: 1, more: true, szx: 6 }, &[0x1e]),
        (BlockOpt { num: 16, more: false, szx: 2 }, &[0x01, 0x02]),
        (BlockOpt { num: 4096, more: true, szx: 6 }, &[0x01, 0x00, 0x0e]),
        (BlockOpt { num: BlockOpt::MAX_NUM, more: true, szx: 6 }, &[0xff, 0xff, 0xfe]),
    ];
    for (b, value) in cases {
        assert_eq!(b.encode(), value);
        assert_eq!(BlockOpt::decode(value), Some(b));
        // Block2 = option 23 (13 + 10), Block1 = 27 (13 + 14).
        let mut m = get(3);
        m.set_block2(b);
        let mut want = vec![0x40, 0x01, 0x00, 0x03, 0xd0 | value.len() as u8, 10];
        want.extend_from_slice(value);
        vector(&m, &want);
        assert_eq!(m.block2(), Some(b));
        let mut m = get(3);
        m.set_block1(b);
        want[5] = 14;
        vector(&m, &want);
        assert_eq!(m.block1(), Some(b));
    }
    assert_eq!(BlockOpt::decode(&[1, 2, 3, 4]), None);
}

#[test]
fn observe_values() {
    for (v, value) in [(0u32, vec![]), (12, vec![12]), (0x1234, vec![0x12, 0x34]), (0xff_ffff, vec![0xff, 0xff, 0xff])] {
        let mut m = Message::new(MessageType::Non, Code::CONTENT, 5, tok(&[1]));
        m.set_observe(v);
        let mut want = vec![0x51, 0x45, 0x00, 0x05, 0x01, 0x60 | value.len() as u8];
        want.extend_from_slice(&value);
        vector(&m, &want);
        assert_eq!(m.observe(), Some(v));
    }
}

#[test]
fn remaining_known_options() {
    let mut m = Message::new(MessageType::Ack, Code::CHANGED, 4, Token::EMPTY);
    m.add_if_match(&[]); // 1, empty
    m.add_etag(&[1, 2, 3, 4]); // 4
    m.set_max_age(60); // 14
    m.set_hop_limit(16); // 16
    m.set_size2(2048); // 28
    let want = [0x60, 0x44, 0x00, 0x04, 0x10, 0x34, 1, 2, 3, 4, 0xa1, 60, 0x21, 16, 0xc2, 0x08, 0x00];
    vector(&m, &want);
    assert_eq!(m.if_match().collect::<Vec<_>>(), [&[] as &[u8]]);
    assert_eq!(m.etags().collect::<Vec<_>>(), [&[1u8, 2, 3, 4][..]]);
    assert_eq!((m.max_age(), m.hop_limit(), m.size2()), (Some(60), Some(16), Some(2048)));

    let mut q = get(5);
    q.set_uri_path("mitigate");
    q.add_uri_query("cuid=abc");
    let mut want = vec![0x40, 0x01, 0x00, 0x05, 0xb8];
    want.extend_from_slice(b"mitigate");
    want.push(0x48);
    want.extend_from_slice(b"cuid=abc");
    vector(&q, &want);
    assert_eq!(q.uri_query().unwrap(), ["cuid=abc"]);
}

#[test]
fn unknown_options_are_preserved_and_critical_ones_flagged() {
    // Elective unknown 2 and critical unknown 9, then Uri-Path.
    let bytes = [0x40, 0x03, 0x00, 0x01, 0x21, 0xaa, 0x70, 0x21, b'x'];
    let m = decode(&bytes).unwrap();
    let nums: Vec<u16> = m.options.iter().map(|o| o.number.0).collect();
    assert_eq!(nums, [2, 9, 11]);
    assert_eq!(m.options.get(OptionNumber(2)), Some(&[0xaa][..]));
    assert_eq!(m.first_bad_critical_option(), Some(OptionNumber(9)));
    assert_eq!(encode(&m).unwrap(), bytes);
}

// ---- malformed input ------------------------------------------------------

fn err(bytes: &[u8]) -> (FormatError, Option<Header>) {
    let e = decode(bytes).unwrap_err();
    (e.error, e.header)
}

const CON1: Option<Header> = Some(Header { mtype: MessageType::Con, message_id: 1 });

#[test]
fn truncated_header() {
    for b in [&[][..], &[0x40], &[0x40, 0x01], &[0x40, 0x01, 0x00]] {
        assert_eq!(err(b), (FormatError::TruncatedHeader, None));
        assert_eq!(decode(b).unwrap_err().reset(), None);
    }
}

#[test]
fn bad_version_is_ignored_not_reset() {
    assert_eq!(err(&[0x00, 0x01, 0x00, 0x01]), (FormatError::BadVersion(0), None));
    assert_eq!(err(&[0x80, 0x01, 0x00, 0x01]), (FormatError::BadVersion(2), None));
    assert_eq!(err(&[0xc0, 0x01, 0x00, 0x01]), (FormatError::BadVersion(3), None));
}

#[test]
fn token_length_9_to_15_is_format_error_with_header() {
    for tkl in 9..=15u8 {
        let mut b = vec![0x40 | tkl, 0x01, 0x00, 0x01];
        b.extend_from_slice(&[0; 15]);
        assert_eq!(err(&b), (FormatError::BadTokenLength(tkl), CON1));
        assert_eq!(decode(&b).unwrap_err().reset(), Some(Message::reset_for_id(1)));
    }
    // NON: no RST.
    assert_eq!(decode(&[0x59, 0x01, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap_err().reset(), None);
}

#[test]
fn truncated_token_and_options() {
    assert_eq!(err(&[0x44, 0x01, 0x00, 0x01, 1, 2]), (FormatError::TruncatedToken, CON1));
    assert_eq!(err(&[0x40, 0x01, 0x00, 0x01, 0xb5, b'a']), (FormatError::TruncatedOption, CON1));
    assert_eq!(err(&[0x40, 0x01, 0x00, 0x01, 0xd0]), (FormatError::TruncatedOption, CON1));
    assert_eq!(err(&[0x40, 0x01, 0x00, 0x01, 0xe0, 0x00]), (FormatError::TruncatedOption, CON1));
    assert_eq!(err(&[0x40, 0x01, 0x00, 0x01, 0x0d]), (FormatError::TruncatedOption, CON1));
}

#[test]
fn reserved_option_nibbles() {
    assert_eq!(err(&[0x40, 0x01, 0x00, 0x01, 0xf0]), (FormatError::ReservedOptionNibble, CON1));
    assert_eq!(err(&[0x40, 0x01, 0x00, 0x01, 0x1f]), (FormatError::ReservedOptionNibble, CON1));
    assert_eq!(err(&[0x40, 0x01, 0x00, 0x01, 0xf1, 0]), (FormatError::ReservedOptionNibble, CON1));
}

#[test]
fn payload_marker_without_payload() {
    assert_eq!(err(&[0x40, 0x01, 0x00, 0x01, 0xff]), (FormatError::EmptyPayloadAfterMarker, CON1));
    assert_eq!(err(&[0x40, 0x01, 0x00, 0x01, 0xb1, b'a', 0xff]), (FormatError::EmptyPayloadAfterMarker, CON1));
}

#[test]
fn empty_message_with_content() {
    assert_eq!(err(&[0x41, 0x00, 0x00, 0x01, 0xaa]), (FormatError::NonEmptyEmptyMessage, CON1));
    assert_eq!(err(&[0x40, 0x00, 0x00, 0x01, 0xff, 0x01]), (FormatError::NonEmptyEmptyMessage, CON1));
    let bad = Message::new(MessageType::Con, Code::EMPTY, 1, tok(&[1]));
    assert_eq!(encode(&bad), Err(EncodeError::NonEmptyEmptyMessage));
}

#[test]
fn option_number_overflow() {
    // Option 65535 then delta 1.
    assert_eq!(err(&[0x40, 0x01, 0x00, 0x01, 0xe0, 0xfe, 0xf2, 0x10]), (FormatError::OptionNumberTooLarge, CON1));
}

#[test]
fn encode_limit() {
    let m = get(1).with_payload(vec![0; 100]);
    assert_eq!(encode_with_limit(&m, 100), Err(EncodeError::TooLarge { size: 105, limit: 100 }));
    assert_eq!(encode_with_limit(&m, 105).unwrap().len(), 105);
}

#[test]
fn option_too_long_to_encode() {
    let mut m = get(1);
    m.options.push(OptionNumber(2), vec![0; 65805]);
    assert_eq!(encode(&m), Err(EncodeError::OptionTooLong));
}
