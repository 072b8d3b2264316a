#![no_main]
//! Stream decoder: never panics; results do not depend on how the bytes
//! are chunked; decoded messages round-trip through the encoder.
use dots_proto::coap::stream::{decode_one, encode};
use dots_proto::coap::{Signal, StreamDecoder};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, data)) = data.split_first() else { return };
    let chunk = usize::from(chunk).max(1);

    let mut whole = Vec::new();
    let whole_res = StreamDecoder::new(LIMIT).feed(data, &mut whole);

    let mut dec = StreamDecoder::new(LIMIT);
    let mut parts = Vec::new();
    let mut parts_res = Ok(0);
    for c in data.chunks(chunk) {
        parts_res = dec.feed(c, &mut parts);
        if parts_res.is_err() {
            break;
        }
    }
    assert_eq!(whole, parts);
    assert_eq!(whole_res.is_err(), parts_res.is_err());
    if let (Err(a), Err(b)) = (whole_res, parts_res) {
        assert_eq!(a, b);
    }

    for m in whole {
        let bytes = encode(&m).expect("a decoded message must encode");
        assert_eq!(decode_one(&bytes, LIMIT).expect("our own encoding must decode"), m);
        let _ = Signal::from_message(&m);
    }
});
