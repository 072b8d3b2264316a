//! Who a peer is, and what we accept as proof.

use std::fmt;
use std::net::SocketAddr;

use openssl::x509::X509;

use super::{Result, TransportError};

/// How a peer authenticated. This, not its address, identifies a DOTS client
/// (RFC 9132 section 4.4.1: the cuid is derived from the SPKI or the PSK identity).
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// An X.509 client certificate that chains to the configured CA.
    Certificate {
        /// SubjectPublicKeyInfo, DER.
        spki_der: Vec<u8>,
        /// Subject as `CN=...,O=...`, for logs.
        subject: String,
    },
    /// A pre-shared key found in the configured table under this identity.
    Psk { identity: Vec<u8> },
}

impl fmt::Debug for Credential {
    // SPKI bytes are noise in logs; the subject says who it is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Certificate { subject, spki_der } => {
                write!(f, "Certificate({subject}, spki {} bytes)", spki_der.len())
            }
            Credential::Psk { identity } => {
                write!(f, "Psk({})", String::from_utf8_lossy(identity))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Dtls,
    Tls,
}

/// An authenticated peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub addr: SocketAddr,
    pub credential: Credential,
    pub transport: Transport,
}

/// Keying material of a server, PEM as read from config files.
#[derive(Clone, Default)]
pub struct SecurityConfig {
    /// CA certificate(s) that client certificates must chain to; `None` refuses all
    /// certificate clients (PSK only).
    pub ca_pem: Option<Vec<u8>>,
    /// Our certificate chain (leaf first).
    pub cert_pem: Vec<u8>,
    /// Our private key.
    pub key_pem: Vec<u8>,
    /// PSK table: (identity, key). Used over DTLS only.
    pub psk: Vec<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for SecurityConfig {
    // Never print keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityConfig")
            .field("ca", &self.ca_pem.is_some())
            .field("psk_identities", &self.psk.len())
            .finish_non_exhaustive()
    }
}

impl SecurityConfig {
    /// The key for a PSK identity, if known.
    pub fn psk_key(&self, identity: &[u8]) -> Option<&[u8]> {
        self.psk.iter().find(|(id, _)| id == identity).map(|(_, key)| key.as_slice())
    }

    /// The CA certificates, parsed.
    pub(crate) fn ca_certs(&self) -> Result<Vec<X509>> {
        let Some(pem) = &self.ca_pem else { return Ok(Vec::new()) };
        let certs = X509::stack_from_pem(pem)?;
        if certs.is_empty() {
            return Err(TransportError::Config("ca_pem holds no certificate".into()));
        }
        Ok(certs)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.cert_pem.is_empty() || self.key_pem.is_empty() {
            return Err(TransportError::Config("server certificate and key are required".into()));
        }
        if self.psk.iter().any(|(id, key)| id.is_empty() || key.is_empty() || key.len() > 256) {
            return Err(TransportError::Config("PSK identities and keys must be 1..=256 bytes".into()));
        }
        Ok(())
    }
}

/// The credential of a peer that presented `cert`.
pub(crate) fn certificate_credential(cert: &openssl::x509::X509Ref) -> Result<Credential> {
    let spki_der = crate::certs::spki_der_of_x509(cert)
        .map_err(|e| TransportError::Config(format!("peer certificate: {e}")))?;
    Ok(Credential::Certificate { spki_der, subject: crate::certs::subject_of_x509(cert) })
}
