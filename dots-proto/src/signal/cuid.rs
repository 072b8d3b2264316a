//! 'cuid' derivation (section 4.4.1.1): SHA-256 over the DER SPKI (or raw
//! public key, or PSK identity), "truncated to 16 bytes; truncation is done
//! by stripping off the final 16 bytes", then base64url (RFC 4648, 5)
//! "with the two trailing '=' removed" -- 22 characters.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

fn hash_id(input: &[u8]) -> String {
    let digest = Sha256::digest(input);
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// cuid of a client authenticated by an X.509 certificate or a raw public
/// key: `spki_der` is the DER SubjectPublicKeyInfo (the server extracts it).
pub fn cuid_from_spki(spki_der: &[u8]) -> String {
    hash_id(spki_der)
}

/// cuid of a client authenticated by a PSK: the PSK identity of the TLS 1.2
/// ClientKeyExchange or the TLS 1.3 "pre_shared_key" identity.
pub fn cuid_from_psk_identity(identity: &[u8]) -> String {
    hash_id(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest() {
        // SHA-256("abc") = ba7816bf 8f01cfea 414140de 5dae2223 b00361a3 ...
        let c = cuid_from_psk_identity(b"abc");
        assert_eq!(c.len(), 22);
        let raw = URL_SAFE_NO_PAD.decode(&c).unwrap();
        assert_eq!(raw, [0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23]);
        assert_eq!(c, "ungWv48Bz-pBQUDeXa4iIw");
        assert_eq!(cuid_from_spki(b"abc"), c);
    }
}
