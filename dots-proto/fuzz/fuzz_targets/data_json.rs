//! Arbitrary bytes as data-channel bodies (RFC 8783): dots-client,
//! aliases, ACLs, capabilities, RESTCONF errors. Decoding must never panic;
//! what decodes must re-encode, decode again to the same value, and
//! validation must not panic either. Seeds: fuzz/seeds/data_json/.
#![no_main]
use dots_proto::data::{self, DecodeLimits, Policy};
use libfuzzer_sys::fuzz_target;

/// A macro rather than a generic fn: the fuzz crate does not depend on
/// serde, so it cannot name the trait bounds.
macro_rules! roundtrip {
    ($t:ty, $bytes:expr) => {{
        let limits = DecodeLimits::default();
        data::decode::<$t>($bytes, &limits).ok().map(|v| {
            let json = data::encode(&v).expect("encode");
            // Re-encoding may outgrow the body limit (bare identities grow
            // to module:identity), so decode it unbounded.
            let unbounded = DecodeLimits {
                max_body_bytes: usize::MAX,
                ..limits
            };
            let again = data::decode::<$t>(json.as_bytes(), &unbounded).expect("re-decode");
            assert_eq!(v, again, "decode(encode(x)) != x for {json}");
            v
        })
    }};
}

fuzz_target!(|bytes: &[u8]| {
    let p = Policy::default();
    if let Some(b) = roundtrip!(data::DotsClientBody, bytes) {
        let _ = data::validate::validate_registration(&b, &p);
    }
    if let Some(b) = roundtrip!(data::AliasesBody, bytes) {
        let _ = data::validate::validate_aliases(&b.aliases, &p);
    }
    if let Some(b) = roundtrip!(data::AclsBody, bytes) {
        let _ = data::validate::validate_acls(&b.acls, &p);
    }
    roundtrip!(data::CapabilitiesBody, bytes);
    roundtrip!(data::DotsDataBody, bytes);
    roundtrip!(data::ErrorsBody, bytes);
    // Whatever failed must still render as a RESTCONF body.
    if let Err(e) = data::decode::<data::AclsBody>(bytes, &DecodeLimits::default()) {
        let _ = e.to_restconf().to_json();
    }
});
