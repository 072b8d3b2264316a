//! Byte-exact RFC 8323 framing vectors, signaling messages, the incremental
//! decoder and its size limit.

use dots_proto::coap::signaling::{BAD_CSM_OPTION, MAX_MESSAGE_SIZE};
use dots_proto::coap::stream::{decode_one, encode, encode_with_limit, DEFAULT_MAX_MESSAGE_SIZE};
use dots_proto::coap::{Code, EncodeError, FormatError, Message, MessageType, OptionNumber, Signal, SignalError, StreamDecoder, StreamError, Token};

const BIG: usize = 1 << 20;

fn tok(b: &[u8]) -> Token {
    Token::new(b).unwrap()
}

/// Stream messages decode as NON with id 0.
fn msg(code: Code, token: &[u8]) -> Message {
    Message::new(MessageType::Non, code, 0, tok(token))
}

fn vector(m: &Message, bytes: &[u8]) {
    assert_eq!(encode(m).unwrap(), bytes, "encoding of {m:?}");
    assert_eq!(&decode_one(bytes, BIG).unwrap(), m, "decoding");
}

fn payload_frame(len_field: &[u8], payload_len: usize) -> (Message, Vec<u8>) {
    let m = msg(Code::CONTENT, &[]).with_payload(vec![0x5a; payload_len]);
    let mut want = len_field.to_vec();
    want.push(0x45);
    want.push(0xff);
    want.extend(std::iter::repeat_n(0x5a, payload_len));
    (m, want)
}

#[test]
fn len_nibble_0_to_12() {
    // Len counts options + marker + payload, not the code or token.
    vector(&msg(Code::GET, &[]), &[0x00, 0x01]);
    vector(&msg(Code::GET, &[9, 8]), &[0x02, 0x01, 9, 8]);
    for p in 1..=11usize {
        let (m, want) = payload_frame(&[((p as u8 + 1) << 4)], p);
        vector(&m, &want);
    }
    let mut m = msg(Code::GET, &[1]);
    m.set_uri_path("abcdefghijk"); // 1 + 11 = 12
    let mut want = vec![0xc1, 0x01, 0x01, 0xbb];
    want.extend_from_slice(b"abcdefghijk");
    vector(&m, &want);
}

#[test]
fn len_13_form() {
    let (m, w) = payload_frame(&[0xd0, 0x00], 12); // Len 13
    vector(&m, &w);
    let (m, w) = payload_frame(&[0xd0, 0xff], 267); // Len 268
    vector(&m, &w);
}

#[test]
fn len_14_form() {
    let (m, w) = payload_frame(&[0xe0, 0x00, 0x00], 268); // Len 269
    vector(&m, &w);
    let (m, w) = payload_frame(&[0xe0, 0xff, 0xff], 65803); // Len 65804
    vector(&m, &w);
}

#[test]
fn len_15_form() {
    let (m, w) = payload_frame(&[0xf0, 0, 0, 0, 0], 65804); // Len 65805
    vector(&m, &w);
    let (m, w) = payload_frame(&[0xf0, 0x00, 0x00, 0x10, 0x63], 69999); // Len 70000
    vector(&m, &w);
}

#[test]
fn tokens_zero_to_eight_bytes() {
    for n in 0..=8u8 {
        let t: Vec<u8> = (1..=n).collect();
        let mut want = vec![n, 0x02];
        want.extend_from_slice(&t);
        vector(&msg(Code::POST, &t), &want);
    }
}

#[test]
fn csm_vectors() {
    let empty = Signal::Csm { max_message_size: None, block_wise_transfer: false };
    vector(&empty.to_message(Token::EMPTY), &[0x00, 0xe1]);
    let csm = Signal::Csm { max_message_size: Some(1152), block_wise_transfer: true };
    let m = csm.to_message(Token::EMPTY);
    vector(&m, &[0x40, 0xe1, 0x22, 0x04, 0x80, 0x20]);
    assert_eq!(Signal::from_message(&m), Ok(csm));
}

#[test]
fn ping_pong_vectors() {
    let ping = Signal::Ping { custody: false }.to_message(tok(&[0x01]));
    vector(&ping, &[0x01, 0xe2, 0x01]);
    let pong = Signal::pong_for(&ping);
    vector(&pong, &[0x01, 0xe3, 0x01]);
    let custody = Signal::Ping { custody: true }.to_message(Token::EMPTY);
    vector(&custody, &[0x10, 0xe2, 0x20]);
    assert_eq!(Signal::from_message(&custody), Ok(Signal::Ping { custody: true }));
    assert_eq!(Signal::from_message(&pong), Ok(Signal::Pong { custody: false }));
}

#[test]
fn release_vector() {
    let rel = Signal::Release { alternative_addresses: vec!["a".into()], hold_off: Some(30), diagnostic: String::new() };
    let m = rel.to_message(Token::EMPTY);
    vector(&m, &[0x40, 0xe4, 0x21, b'a', 0x21, 30]);
    assert_eq!(Signal::from_message(&m), Ok(rel));
}

#[test]
fn abort_vector() {
    let abort = Signal::Abort { bad_csm_option: Some(9), diagnostic: "no".into() };
    let m = abort.to_message(Token::EMPTY);
    vector(&m, &[0x50, 0xe5, 0x21, 0x09, 0xff, b'n', b'o']);
    assert_eq!(Signal::from_message(&m), Ok(abort));
}

#[test]
fn signaling_errors() {
    let mut m = Signal::Csm { max_message_size: None, block_wise_transfer: false }.to_message(Token::EMPTY);
    m.options.push(OptionNumber(3), vec![]);
    assert_eq!(Signal::from_message(&m), Err(SignalError::UnknownCriticalOption(OptionNumber(3))));
    let mut m = Signal::Csm { max_message_size: None, block_wise_transfer: false }.to_message(Token::EMPTY);
    m.options.push(OptionNumber(6), vec![]); // unknown elective: ignored
    assert!(Signal::from_message(&m).is_ok());
    let mut m = msg(Code::CSM, &[]);
    m.options.push(MAX_MESSAGE_SIZE, vec![1, 2, 3, 4, 5]);
    assert_eq!(Signal::from_message(&m), Err(SignalError::BadOptionValue(MAX_MESSAGE_SIZE)));
    let mut m = msg(Code::ABORT, &[]);
    m.options.push(BAD_CSM_OPTION, vec![1, 0, 0]);
    assert_eq!(Signal::from_message(&m), Err(SignalError::BadOptionValue(BAD_CSM_OPTION)));
    let m = msg(Code::ABORT, &[]).with_payload(vec![0xff]);
    assert_eq!(Signal::from_message(&m), Err(SignalError::BadDiagnostic));
    assert_eq!(Signal::from_message(&msg(Code::GET, &[])), Err(SignalError::NotSignaling(Code::GET)));
}

#[test]
fn request_options_over_stream() {
    let mut m = msg(Code::PUT, &[0xaa]);
    m.set_uri_path("/.well-known/dots/hb");
    m.set_content_format(271);
    m.payload = vec![0xa0];
    let bytes = encode(&m).unwrap();
    assert_eq!(bytes[0] >> 4, 13); // 12+5+3+3 + 2 = 25 bytes of options+payload
    assert_eq!(bytes[1], 25 - 13);
    assert_eq!(decode_one(&bytes, BIG).unwrap(), m);
}

// ---- incremental decoding ---------------------------------------------

#[test]
fn byte_by_byte_and_batched() {
    let frames = [
        Signal::Csm { max_message_size: Some(4096), block_wise_transfer: true }.to_message(Token::EMPTY),
        msg(Code::GET, &[1, 2]).with_payload(vec![7; 300]),
        Signal::Ping { custody: false }.to_message(tok(&[3])),
    ];
    let wire: Vec<u8> = frames.iter().flat_map(|m| encode(m).unwrap()).collect();

    let mut dec = StreamDecoder::new(DEFAULT_MAX_MESSAGE_SIZE);
    let mut out = Vec::new();
    let mut yields = Vec::new();
    for b in &wire {
        yields.push(dec.feed(std::slice::from_ref(b), &mut out).unwrap());
    }
    assert_eq!(out, frames);
    assert_eq!(yields.iter().sum::<usize>(), 3);
    assert_eq!(dec.buffered(), 0);

    let mut dec = StreamDecoder::new(DEFAULT_MAX_MESSAGE_SIZE);
    let mut out = Vec::new();
    assert_eq!(dec.feed(&wire, &mut out), Ok(3));
    assert_eq!(out, frames);
}

#[test]
fn need_more_keeps_partial() {
    let wire = encode(&msg(Code::GET, &[1]).with_payload(vec![1; 20])).unwrap();
    let mut dec = StreamDecoder::new(DEFAULT_MAX_MESSAGE_SIZE);
    let mut out = Vec::new();
    assert_eq!(dec.feed(&wire[..wire.len() - 1], &mut out), Ok(0));
    assert_eq!(dec.buffered(), wire.len() - 1);
    assert_eq!(dec.feed(&wire[wire.len() - 1..], &mut out), Ok(1));
}

#[test]
fn oversized_frame_is_refused_from_its_header() {
    let mut dec = StreamDecoder::new(1152);
    let mut out = Vec::new();
    // Len 15 form announcing ~4 GiB: refused after 5 bytes, nothing allocated.
    let e = dec.feed(&[0xf0, 0xff, 0xff, 0xff, 0xff], &mut out).unwrap_err();
    assert_eq!(e, StreamError::TooLarge { size: 1 + 4 + 1 + 0xffff_ffff + 65805, limit: 1152 });
    assert!(dec.buffered() <= 5);
    // The decoder stays failed.
    assert_eq!(dec.feed(&[0x00, 0x01], &mut out), Err(e));
}

#[test]
fn limit_is_inclusive_and_counts_whole_frame() {
    let m = msg(Code::CONTENT, &[1, 2]).with_payload(vec![0; 100]);
    let wire = encode(&m).unwrap();
    assert_eq!(wire.len(), 1 + 1 + 1 + 2 + 1 + 100);
    let mut out = Vec::new();
    assert_eq!(StreamDecoder::new(wire.len()).feed(&wire, &mut out), Ok(1));
    assert_eq!(
        StreamDecoder::new(wire.len() - 1).feed(&wire, &mut out),
        Err(StreamError::TooLarge { size: wire.len() as u64, limit: wire.len() - 1 })
    );
    assert_eq!(encode_with_limit(&m, wire.len() - 1), Err(EncodeError::TooLarge { size: wire.len(), limit: wire.len() - 1 }));
}

#[test]
fn messages_before_an_error_are_delivered() {
    let mut wire = encode(&msg(Code::GET, &[])).unwrap();
    wire.extend_from_slice(&[0x10, 0x01, 0xff]); // marker, no payload
    let mut out = Vec::new();
    let e = StreamDecoder::new(BIG).feed(&wire, &mut out);
    assert_eq!(e, Err(StreamError::Format(FormatError::EmptyPayloadAfterMarker)));
    assert_eq!(out.len(), 1);
}

#[test]
fn malformed_frames() {
    let bad = |b: &[u8]| decode_one(b, BIG).unwrap_err();
    let mut tkl9 = vec![0x09, 0x01];
    tkl9.extend_from_slice(&[0; 9]);
    assert_eq!(bad(&tkl9), StreamError::Format(FormatError::BadTokenLength(9)));
    let mut tkl15 = vec![0x0f, 0x01];
    tkl15.extend_from_slice(&[0; 15]);
    assert_eq!(bad(&tkl15), StreamError::Format(FormatError::BadTokenLength(15)));
    assert_eq!(bad(&[0x10, 0x01, 0xf0]), StreamError::Format(FormatError::ReservedOptionNibble));
    assert_eq!(bad(&[0x10, 0x01, 0x1f]), StreamError::Format(FormatError::ReservedOptionNibble));
    assert_eq!(bad(&[0x20, 0x01, 0xb5, b'a']), StreamError::Format(FormatError::TruncatedOption));
    // Incomplete frame and trailing bytes.
    assert_eq!(bad(&[0x20, 0x01, 0xb1]), StreamError::NotOneFrame);
    assert_eq!(bad(&[0x00, 0x01, 0x00]), StreamError::NotOneFrame);
    assert_eq!(bad(&[]), StreamError::NotOneFrame);
}
