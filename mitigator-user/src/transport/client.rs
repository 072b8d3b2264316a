//! The client side of the signal-channel transports: what a DOTS client proves itself
//! with, and the link a connected transport hands to the CoAP layer.
//!
//! A [`ClientLink`] is the same shape for DTLS and TLS: a channel of outgoing byte
//! buffers and a channel of incoming ones. Over DTLS each buffer is one datagram (one
//! CoAP message); over TLS buffers are arbitrary chunks of the RFC 8323 byte stream.
//! The link's task ends (and `recv` returns `None`) when the peer closes, an alert
//! arrives, or the socket fails; dropping the link sends close_notify.

use std::fmt;
use std::net::SocketAddr;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Result, Transport, TransportError};

/// How a DOTS client authenticates (RFC 9132 section 8: mutual authentication).
#[derive(Clone)]
pub enum ClientCredential {
    /// A pre-shared key (DTLS only: rustls has no external PSK).
    Psk { identity: Vec<u8>, key: Vec<u8> },
    /// An X.509 certificate (leaf first) and its private key, PEM.
    Certificate { cert_pem: Vec<u8>, key_pem: Vec<u8> },
}

impl fmt::Debug for ClientCredential {
    // Never print keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientCredential::Psk { identity, .. } => {
                write!(f, "Psk({})", String::from_utf8_lossy(identity))
            }
            ClientCredential::Certificate { .. } => write!(f, "Certificate"),
        }
    }
}

/// Where a client's sockets are bound: a source address and/or an interface
/// (SO_BINDTODEVICE). RFC 9284 5.1: a session with a provisioning domain's
/// server "must be established using the interface from which the DOTS
/// server was provisioned", with that domain's source address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalBind {
    pub source: Option<std::net::IpAddr>,
    pub interface: Option<String>,
}

impl LocalBind {
    /// The local address for a socket toward `server` (port 0: any).
    pub fn addr_for(&self, server: &SocketAddr) -> Result<SocketAddr> {
        match self.source {
            Some(ip) if ip.is_ipv6() != server.is_ipv6() => Err(TransportError::Config(format!(
                "source address {ip} and server {server} are of different address families"
            ))),
            Some(ip) => Ok(SocketAddr::new(ip, 0)),
            None if server.is_ipv6() => Ok("[::]:0".parse().expect("literal")),
            None => Ok("0.0.0.0:0".parse().expect("literal")),
        }
    }
}

/// Keying material of a DOTS client.
#[derive(Debug, Clone)]
pub struct ClientSecurity {
    pub credential: ClientCredential,
    /// CA the server certificate must chain to. Required with a certificate credential
    /// (section 7.1: the client validates the server, RFC 6125); unused with a PSK.
    pub ca_pem: Option<Vec<u8>>,
}

impl ClientSecurity {
    /// The 'cuid' this credential yields (section 4.4.1.1): SHA-256 of the certificate's
    /// SPKI or of the PSK identity, truncated and base64url-encoded.
    pub fn cuid(&self) -> Result<String> {
        match &self.credential {
            ClientCredential::Psk { identity, .. } => Ok(dots_proto::signal::cuid_from_psk_identity(identity)),
            ClientCredential::Certificate { cert_pem, .. } => {
                let spki = crate::certs::spki_der_of(cert_pem)
                    .map_err(|e| TransportError::Config(format!("client certificate: {e:#}")))?;
                Ok(dots_proto::signal::cuid_from_spki(&spki))
            }
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        match &self.credential {
            ClientCredential::Psk { identity, key } => {
                if identity.is_empty() || identity.len() > 128 || key.is_empty() || key.len() > 64 {
                    return Err(TransportError::Config("PSK identity must be 1..=128 bytes and key 1..=64".into()));
                }
            }
            ClientCredential::Certificate { .. } => {
                if self.ca_pem.is_none() {
                    return Err(TransportError::Config("a certificate credential needs the CA of the server".into()));
                }
            }
        }
        Ok(())
    }
}

/// A connected, authenticated transport to a DOTS server.
pub struct ClientLink {
    pub transport: Transport,
    pub peer: SocketAddr,
    pub(super) tx: mpsc::Sender<Vec<u8>>,
    pub(super) rx: mpsc::Receiver<Vec<u8>>,
    pub(super) task: JoinHandle<()>,
}

impl ClientLink {
    /// Sends one datagram (DTLS) or some stream bytes (TLS).
    pub async fn send(&self, data: Vec<u8>) -> Result<()> {
        self.tx.send(data).await.map_err(|_| TransportError::Closed)
    }

    /// The next datagram or stream chunk; `None` once the link is down.
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        self.rx.recv().await
    }

    /// True once the link's task has ended.
    pub fn is_closed(&self) -> bool {
        self.task.is_finished()
    }

    /// Closes gracefully (close_notify), waiting a little for it to be sent. Dropping
    /// the link does the same without waiting: its task sees the closed channel.
    pub async fn close(self) {
        let ClientLink { tx, task, .. } = self;
        drop(tx);
        let _ = tokio::time::timeout(std::time::Duration::from_millis(500), task).await;
    }
}

/// Whether a failed connection attempt means the peer refused our credentials (or we
/// refused its certificate) rather than that it could not be reached.
pub fn is_credentials_error(e: &TransportError) -> bool {
    matches!(e, TransportError::OpenSsl(_) | TransportError::Rustls(_) | TransportError::Config(_))
}
