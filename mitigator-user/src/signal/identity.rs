//! Who a DOTS client is: the authenticated credential (transport layer)
//! mapped to its 'cuid' (section 4.4.1.1) and to the client domain of the
//! configuration, which says what the client may ask mitigation for.
//!
//! Identities in `[[signal.clients]]`:
//! - `cn:NAME`: a certificate (issued by `signal.ca`) whose subject CN is NAME;
//! - `cuid:CUID`: a certificate whose public key hashes to CUID (pins the key);
//! - `psk:IDENTITY`: a DTLS PSK identity (its key in `psk_keys`, hex).
//!
//! A peer that authenticated (its certificate chains to our CA) but matches
//! no domain gets 4.01 (Unauthorized) on every request: "If the DOTS client
//! is not authorized, a 4.01 (Unauthorized) is returned" (section 8). An
//! unknown PSK identity has no key, so its handshake fails.

use dots_proto::signal::{cuid_from_psk_identity, cuid_from_spki};
use ipnet::IpNet;

use crate::config::ClientDomain;
use crate::dots::ClientCtx;
use crate::transport::Credential;

/// One entry of `identities`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    CommonName(String),
    Cuid(String),
    Psk(String),
}

impl Identity {
    pub fn parse(s: &str) -> Result<Identity, String> {
        let (kind, value) = s.split_once(':').ok_or_else(|| format!("\"{s}\": expected cn:NAME, cuid:CUID or psk:IDENTITY"))?;
        if value.is_empty() {
            return Err(format!("\"{s}\": empty {kind}"));
        }
        match kind {
            "cn" => Ok(Identity::CommonName(value.into())),
            "cuid" => Ok(Identity::Cuid(value.into())),
            "psk" => Ok(Identity::Psk(value.into())),
            _ => Err(format!("\"{s}\": unknown kind '{kind}' (expected cn, cuid or psk)")),
        }
    }

    fn matches(&self, cred: &Credential, cuid: &str) -> bool {
        match (self, cred) {
            (Identity::CommonName(cn), Credential::Certificate { subject, .. }) => common_name(subject) == Some(cn),
            (Identity::Cuid(c), Credential::Certificate { .. }) => c == cuid,
            (Identity::Psk(id), Credential::Psk { identity }) => id.as_bytes() == identity.as_slice(),
            _ => false,
        }
    }
}

/// The CN of a subject printed as `CN=alice,O=example`.
fn common_name(subject: &str) -> Option<&str> {
    subject.split(',').find_map(|part| part.trim().strip_prefix("CN="))
}

/// The 'cuid' bound to a credential (section 4.4.1.1).
pub fn cuid_of(cred: &Credential) -> String {
    match cred {
        Credential::Certificate { spki_der, .. } => cuid_from_spki(spki_der),
        Credential::Psk { identity } => cuid_from_psk_identity(identity),
    }
}

/// The authenticated client, when its credential belongs to a domain.
pub fn client_of(cred: &Credential, domains: &[ClientDomain]) -> Option<ClientCtx> {
    let cuid = cuid_of(cred);
    let domain = domains.iter().find(|d| {
        d.identities.iter().filter_map(|i| Identity::parse(i).ok()).any(|i| i.matches(cred, &cuid))
    })?;
    let allowed: Vec<IpNet> = domain.prefixes.clone();
    Some(ClientCtx { cuid, domain: domain.name.clone(), allowed })
}

/// The PSK table of the DTLS server: every `psk:` identity with its key.
/// (identity, key) pairs, as `SecurityConfig::psk` takes them.
pub type PskTable = Vec<(Vec<u8>, Vec<u8>)>;

pub fn psk_table(domains: &[ClientDomain]) -> Result<PskTable, String> {
    let mut out = Vec::new();
    for d in domains {
        for id in d.identities.iter().filter_map(|i| i.strip_prefix("psk:")) {
            let key = d.psk_keys.get(id).ok_or_else(|| format!("client domain {}: no psk_keys entry for {id}", d.name))?;
            out.push((id.as_bytes().to_vec(), decode_hex(key)?));
        }
    }
    Ok(out)
}

/// Hex to bytes (PSK keys are binary; hex keeps them printable in TOML).
pub fn decode_hex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    if let Some((i, c)) = s.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(format!("`{c}` at position {} is not a hex digit (a PSK key is written in hex, e.g. 0123abcd)", i + 1));
    }
    if s.is_empty() {
        return Err("empty (a PSK key is written in hex, e.g. 0123abcd)".into());
    }
    if !s.len().is_multiple_of(2) {
        return Err(format!("{} hex digits: a PSK key is whole bytes, two hex digits each", s.len()));
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| e.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(ids: &[&str]) -> ClientDomain {
        ClientDomain {
            name: "d".into(),
            prefixes: vec!["203.0.113.0/24".parse().unwrap()],
            identities: ids.iter().map(|s| s.to_string()).collect(),
            psk_keys: [("cpe1".to_string(), "73656372657431".to_string())].into(),
        }
    }

    #[test]
    fn identities_match_their_credentials_only() {
        let cert = Credential::Certificate { spki_der: b"spki".to_vec(), subject: "CN=alice,O=x".into() };
        let psk = Credential::Psk { identity: b"cpe1".to_vec() };
        let d = [domain(&["cn:alice", "psk:cpe1"])];
        assert_eq!(client_of(&cert, &d).unwrap().cuid, cuid_from_spki(b"spki"));
        assert_eq!(client_of(&psk, &d).unwrap().cuid, cuid_from_psk_identity(b"cpe1"));
        let bob = Credential::Certificate { spki_der: b"spki".to_vec(), subject: "CN=bob".into() };
        assert!(client_of(&bob, &d).is_none());
        let pinned = [domain(&[&format!("cuid:{}", cuid_from_spki(b"spki"))])];
        assert!(client_of(&bob, &pinned).is_some());
        assert!(client_of(&psk, &pinned).is_none());
    }

    #[test]
    fn psk_keys_are_hex() {
        assert_eq!(psk_table(&[domain(&["psk:cpe1"])]).unwrap(), vec![(b"cpe1".to_vec(), b"secret1".to_vec())]);
        assert!(decode_hex("abc").is_err());
        assert!(Identity::parse("dn:x").is_err());
        assert!(Identity::parse("cn:").is_err());
    }
}
