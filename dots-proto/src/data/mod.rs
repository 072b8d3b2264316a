//! The DOTS data channel (RFC 8783; reference text: draft-ietf-dots-data-channel-29)
//! in its RESTCONF JSON encoding (RFC 8040, RFC 7951), with no I/O.
//!
//! - [`client`]: `dots-client` registration (§5) and the `dots-data` tree.
//! - [`alias`]: aliases (§6).
//! - [`acl`]: filtering rules, ACLs and ACEs (§7), with [`acl::matches`].
//! - [`capabilities`]: the server's filtering capabilities (§7.1).
//! - [`restconf`]: RESTCONF error bodies (RFC 8040 §7.1).
//! - [`validate`]: what a DOTS server checks before accepting a request.
//! - [`yang`]: YANG types in RFC 7951 JSON (uint64 and decimal64 as strings,
//!   bits, identityref, IP prefixes).
//!
//! Decoding ([`decode`] and the `decode_*` helpers) bounds the body size and
//! nesting depth before serde sees the bytes, rejects unknown members by
//! name (400 `unknown-element`, §§6.1, 7.2) and never panics. The
//! `parse_*_request` helpers decode and validate in one go: what the HTTPS
//! server calls on a POST or PUT body.

pub mod acl;
pub mod alias;
pub mod capabilities;
pub mod client;
mod error;
pub mod restconf;
pub mod validate;
pub mod yang;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use acl::{
    Ace, Aces, Acl, AclType, Acls, AclsBody, Actions, ActivationType, ForwardingAction, Statistics,
};
pub use alias::{Alias, Aliases, AliasesBody, PortRange};
pub use capabilities::{Capabilities, CapabilitiesBody};
pub use client::{DotsClient, DotsClientBody, DotsData, DotsDataBody};
pub use error::DataError;
pub use restconf::{ErrorTag, ErrorsBody, RestconfError};
pub use validate::Policy;

/// Media type of every data-channel body (RFC 8040 §11.3.2).
pub const MEDIA_TYPE: &str = "application/yang-data+json";

/// Bounds applied before and during decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted body (413 `too-big` beyond).
    pub max_body_bytes: usize,
    /// Deepest accepted nesting of objects and arrays. The deepest valid
    /// body (an ACE port match inside `dots-data`) nests 11 levels.
    pub max_depth: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 256 * 1024,
            max_depth: 32,
        }
    }
}

/// Decodes a body of type `T` (one of the `*Body` types) within `limits`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limits: &DecodeLimits) -> Result<T, DataError> {
    if bytes.len() > limits.max_body_bytes {
        return Err(DataError::TooLarge {
            len: bytes.len(),
            max: limits.max_body_bytes,
        });
    }
    check_depth(bytes, limits.max_depth)?;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(error::from_serde)?;
    // Trailing garbage after the document.
    de.end().map_err(|e| DataError::Malformed {
        path: String::new(),
        detail: e.to_string(),
    })?;
    Ok(value)
}

/// Scans the raw bytes for nesting deeper than `max`, so that a hostile
/// body is refused before any recursion (serde_json alone stops at 128).
fn check_depth(bytes: &[u8], max: usize) -> Result<(), DataError> {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return Err(DataError::TooDeep { max });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Encodes a body as compact JSON.
pub fn encode<T: Serialize>(body: &T) -> Result<String, DataError> {
    serde_json::to_string(body).map_err(|e| DataError::InvalidValue {
        path: String::new(),
        detail: e.to_string(),
    })
}

/// Encodes a body as indented JSON (for humans and logs).
pub fn encode_pretty<T: Serialize>(body: &T) -> Result<String, DataError> {
    serde_json::to_string_pretty(body).map_err(|e| DataError::InvalidValue {
        path: String::new(),
        detail: e.to_string(),
    })
}

/// Decodes `{"ietf-dots-data-channel:dots-client": [...]}`.
pub fn decode_dots_client(
    bytes: &[u8],
    limits: &DecodeLimits,
) -> Result<DotsClientBody, DataError> {
    decode(bytes, limits)
}

/// Decodes `{"ietf-dots-data-channel:aliases": {...}}`.
pub fn decode_aliases(bytes: &[u8], limits: &DecodeLimits) -> Result<AliasesBody, DataError> {
    decode(bytes, limits)
}

/// Decodes `{"ietf-dots-data-channel:acls": {...}}`.
pub fn decode_acls(bytes: &[u8], limits: &DecodeLimits) -> Result<AclsBody, DataError> {
    decode(bytes, limits)
}

/// Decodes `{"ietf-dots-data-channel:capabilities": {...}}`.
pub fn decode_capabilities(
    bytes: &[u8],
    limits: &DecodeLimits,
) -> Result<CapabilitiesBody, DataError> {
    decode(bytes, limits)
}

/// Decodes `{"ietf-restconf:errors": {...}}`.
pub fn decode_errors(bytes: &[u8], limits: &DecodeLimits) -> Result<ErrorsBody, DataError> {
    decode(bytes, limits)
}

/// Decodes and validates a registration (POST/PUT of §5.1); returns the
/// single client.
pub fn parse_registration_request(bytes: &[u8], policy: &Policy) -> Result<DotsClient, DataError> {
    let body = decode_dots_client(bytes, &policy.decode)?;
    validate::validate_registration(&body, policy)?;
    Ok(body.dots_client.into_iter().next().unwrap_or_default())
}

/// Decodes and validates an alias creation or update (POST/PUT of §6.1).
pub fn parse_aliases_request(bytes: &[u8], policy: &Policy) -> Result<Aliases, DataError> {
    let body = decode_aliases(bytes, &policy.decode)?;
    validate::validate_aliases(&body.aliases, policy)?;
    Ok(body.aliases)
}

/// Decodes and validates a filtering-rule installation (POST/PUT of §7.2).
pub fn parse_acls_request(bytes: &[u8], policy: &Policy) -> Result<Acls, DataError> {
    let body = decode_acls(bytes, &policy.decode)?;
    validate::validate_acls(&body.acls, policy)?;
    Ok(body.acls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_scan_ignores_brackets_in_strings() {
        assert!(check_depth(br#"{"a": "[[[[[[[[[[[\"[[[["}"#, 2).is_ok());
        assert!(matches!(
            check_depth(b"[[[", 2),
            Err(DataError::TooDeep { max: 2 })
        ));
    }

    #[test]
    fn trailing_garbage_is_malformed() {
        let e = decode_aliases(
            br#"{"ietf-dots-data-channel:aliases":{}} x"#,
            &DecodeLimits::default(),
        )
        .unwrap_err();
        assert_eq!(e.tag(), ErrorTag::MalformedMessage);
    }
}
