#![no_main]
//! Arbitrary bytes as a signal-channel CBOR body: decoding never panics,
//! and whatever decodes re-encodes to something that decodes to the same
//! value (mitigation scope, config, redirect or heartbeat alike).
use dots_proto::signal::SignalMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(first) = SignalMessage::from_cbor(data) else { return };
    let bytes = first.value.to_cbor();
    let second = SignalMessage::from_cbor(&bytes).expect("own encoding decodes");
    assert_eq!(first.value, second.value);
    assert!(second.warnings.is_empty(), "repairs are applied once");
    assert_eq!(second.value.to_cbor(), bytes);
    // JSON must agree too.
    let json = first.value.to_json_string();
    let third = SignalMessage::from_json(&json).expect("own JSON decodes");
    assert_eq!(first.value, third.value);
});
