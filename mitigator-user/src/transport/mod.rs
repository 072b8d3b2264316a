//! The secure transports of the DOTS signal channel (RFC 9132 section 7), without CoAP:
//! bytes in, bytes out, and who the peer is.
//!
//! ```text
//!            udp 4646                                     tcp 4646
//!               │                                            │
//!        DtlsServer (one socket, a demultiplexer        TlsServer (rustls, TLS 1.2/1.3,
//!        keyed by peer address, stateless cookie         mutual X.509 only)
//!        exchange, OpenSSL DTLS 1.2 handshakes,              │
//!        X.509 or PSK; then dtls_record)                     │
//!               │ accept()                                   │ accept()
//!        DtlsSession: recv() one datagram,             (PeerInfo, TlsStream<TcpStream>):
//!        send()/sender() for Observe notifications     RFC 8323 framing is the caller's
//! ```
//!
//! API:
//! - [`SecurityConfig`]: our certificate and key (PEM), the CA that client certificates
//!   must chain to (`None`: no certificate clients), and the PSK table (identity → key).
//! - [`DtlsServer::bind`]`(addr, &SecurityConfig, DtlsOptions)` → `accept().await` →
//!   [`DtlsSession`] with [`DtlsSession::peer`], `recv().await` (one decrypted datagram;
//!   `Err(Closed)` after close_notify, a fatal alert, or when the server stops),
//!   `send(&[u8]).await` and [`DtlsSession::sender`] (a cloneable [`DtlsSender`]).
//!   Idle sessions are dropped by the caller: dropping the session and all its senders
//!   sends close_notify and frees the peer's slot.
//! - [`TlsServer::bind`]`(addr, &SecurityConfig, TlsOptions)` → `accept().await` →
//!   `(PeerInfo, TlsStream<TcpStream>)`.
//!
//! The options carry the handshake timeout and the bounds (concurrent handshakes,
//! sessions, per-peer queue, accept queue, MTU); defaults suit a daemon.
//!
//! Handshakes run in their own tasks with a deadline, so a slow or half-open client
//! never blocks another; their number is bounded, and over DTLS no state at all is kept
//! for a peer until it has echoed a cookie (it proved it owns its address).
//!
//! Client side (for the DOTS client, `crate::client_dots`): [`ClientSecurity`] (PSK or
//! certificate, and the server's CA), [`dtls_client::connect`] and [`tls_client::connect`],
//! both giving a [`ClientLink`] of byte buffers.
//!
//! TLS is certificate-only: rustls has no (external) PSK support, so PSK clients use DTLS
//! (which is what libcoap's PSK clients do anyway).

pub mod client;
pub mod credential;
pub mod dtls;
pub mod dtls_record;
pub mod dtls_client;
pub mod tls;
pub mod tls_client;

use std::time::Duration;

pub use client::{ClientCredential, ClientLink, ClientSecurity, LocalBind};
pub use credential::{Credential, PeerInfo, SecurityConfig, Transport};
pub use dtls::{DtlsOptions, DtlsSender, DtlsServer, DtlsSession};
pub use tls::{TlsOptions, TlsServer};

/// Errors of the transports.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("OpenSSL: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
    /// The session or server is gone (close_notify, alert, shutdown).
    #[error("closed")]
    Closed,
}

pub type Result<T, E = TransportError> = std::result::Result<T, E>;

/// Default deadline for a handshake; RFC 9132 clients retransmit within seconds.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
