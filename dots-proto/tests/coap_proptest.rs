//! Property tests: encode→decode identity for datagrams and streams, and
//! chunking-independence of the stream decoder.

use dots_proto::coap::{datagram, stream, Code, Message, MessageType, OptionNumber, Options, StreamDecoder, Token};
use proptest::prelude::*;

fn option_number() -> impl Strategy<Value = u16> {
    // Bias towards small numbers but reach both extended delta forms.
    prop_oneof![0u16..=20, 13u16..=300, any::<u16>()]
}

fn option_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..=14),
        2 => prop::collection::vec(any::<u8>(), 12..=280),
        1 => prop::collection::vec(any::<u8>(), 268..=600),
    ]
}

fn options() -> impl Strategy<Value = Options> {
    prop::collection::vec((option_number(), option_value()), 0..6).prop_map(|v| {
        let mut o = Options::new();
        for (n, val) in v {
            o.push(OptionNumber(n), val);
        }
        o
    })
}

fn token() -> impl Strategy<Value = Token> {
    prop::collection::vec(any::<u8>(), 0..=8).prop_map(|t| Token::new(&t).unwrap())
}

fn mtype() -> impl Strategy<Value = MessageType> {
    (0u8..4).prop_map(MessageType::from_bits)
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(vec![]), prop::collection::vec(any::<u8>(), 1..400)]
}

/// Datagram messages: any non-empty code with anything, or a bare Empty.
fn datagram_message() -> impl Strategy<Value = Message> {
    let full = (mtype(), any::<u16>(), 1u8..=255, token(), options(), payload())
        .prop_map(|(t, mid, c, tok, opts, p)| Message { mtype: t, message_id: mid, code: Code(c), token: tok, options: opts, payload: p });
    let empty = (mtype(), any::<u16>()).prop_map(|(t, mid)| Message::new(t, Code::EMPTY, mid, Token::EMPTY));
    prop_oneof![9 => full, 1 => empty]
}

/// Stream messages have no type or id: normalised as the decoder yields them.
fn stream_message() -> impl Strategy<Value = Message> {
    (any::<u8>(), token(), options(), payload()).prop_map(|(c, tok, opts, p)| Message {
        mtype: MessageType::Non,
        message_id: 0,
        code: Code(c),
        token: tok,
        options: opts,
        payload: p,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn datagram_round_trip(m in datagram_message()) {
        let bytes = datagram::encode(&m).unwrap();
        prop_assert_eq!(datagram::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn stream_round_trip(m in stream_message()) {
        let bytes = stream::encode(&m).unwrap();
        prop_assert_eq!(stream::decode_one(&bytes, 1 << 20).unwrap(), m);
    }

    #[test]
    fn stream_chunking_does_not_matter(
        msgs in prop::collection::vec(stream_message(), 1..5),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let wire: Vec<u8> = msgs.iter().flat_map(|m| stream::encode(m).unwrap()).collect();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.push(0);
        points.push(wire.len());
        points.sort_unstable();
        let mut dec = StreamDecoder::new(1 << 20);
        let mut out = Vec::new();
        for w in points.windows(2) {
            dec.feed(&wire[w[0]..w[1]], &mut out).unwrap();
        }
        prop_assert_eq!(out, msgs);
        prop_assert_eq!(dec.buffered(), 0);
    }

    /// Arbitrary bytes never panic; if they decode, they re-encode to
    /// something that decodes to the same message.
    #[test]
    fn datagram_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(m) = datagram::decode(&bytes) {
            let again = datagram::encode(&m).unwrap();
            prop_assert_eq!(datagram::decode(&again).unwrap(), m);
        }
    }

    #[test]
    fn stream_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut out = Vec::new();
        let _ = StreamDecoder::new(256).feed(&bytes, &mut out);
        for m in out {
            let again = stream::encode(&m).unwrap();
            prop_assert_eq!(stream::decode_one(&again, 1 << 20).unwrap(), m);
        }
    }
}

fn signal() -> impl Strategy<Value = dots_proto::coap::Signal> {
    use dots_proto::coap::Signal;
    prop_oneof![
        (prop::option::of(any::<u32>()), any::<bool>()).prop_map(|(m, b)| Signal::Csm { max_message_size: m, block_wise_transfer: b }),
        any::<bool>().prop_map(|custody| Signal::Ping { custody }),
        any::<bool>().prop_map(|custody| Signal::Pong { custody }),
        (prop::collection::vec("[a-z:/.0-9]{1,30}", 0..3), prop::option::of(any::<u32>()), "[ -~]{0,20}")
            .prop_map(|(a, h, d)| Signal::Release { alternative_addresses: a, hold_off: h, diagnostic: d }),
        (prop::option::of(any::<u16>()), "[ -~]{0,20}").prop_map(|(b, d)| Signal::Abort { bad_csm_option: b, diagnostic: d }),
    ]
}

proptest! {
    #[test]
    fn signal_round_trip_over_stream(s in signal(), t in token()) {
        let bytes = stream::encode(&s.to_message(t)).unwrap();
        let m = stream::decode_one(&bytes, 1 << 20).unwrap();
        prop_assert_eq!(m.token, t);
        prop_assert_eq!(dots_proto::coap::Signal::from_message(&m).unwrap(), s);
    }
}
