#![no_main]
//! Datagram decoder: never panics; whatever decodes re-encodes to bytes
//! that decode to the same message, and the re-encoding is stable.
use dots_proto::coap::datagram::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = decode(data) else { return };
    let bytes = encode(&msg).expect("a decoded message must encode");
    let again = decode(&bytes).expect("our own encoding must decode");
    assert_eq!(again, msg);
    assert_eq!(encode(&again).unwrap(), bytes);
    // Typed accessors must not panic either.
    let _ = (msg.uri_path(), msg.uri_query(), msg.observe(), msg.block1(), msg.block2());
    let _ = (msg.content_format(), msg.first_bad_critical_option());
});
