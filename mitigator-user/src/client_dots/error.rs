//! What can go wrong for a DOTS client, in the terms an operator or the escalation
//! controller acts on (each maps to one CLI exit code, see `cli`).

use dots_proto::coap::Code;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The server answered 4.xx/5.xx. `diagnostic` is its payload (RFC 7252 5.5.2) or,
    /// for a 4.09, the conflict information.
    #[error("refused by the server: {code} {diagnostic}")]
    Refused { code: Code, diagnostic: String, max_age: Option<u32> },
    /// No session could be established, or it is down (DNS, network, timeouts).
    #[error("server unreachable: {0}")]
    Unreachable(String),
    /// The request got no answer within the retransmission schedule.
    #[error("no response from the server (timeout)")]
    Timeout,
    /// A credential is missing or unreadable, or the handshake refused it (or we refused
    /// the server's certificate).
    #[error("credentials: {0}")]
    Credentials(String),
    /// The server's answer made no sense (bad CBOR, wrong message type, RST).
    #[error("protocol: {0}")]
    Protocol(String),
    /// The local state file could not be read or written.
    #[error("state file: {0}")]
    State(String),
    /// The client was closed.
    #[error("client closed")]
    Closed,
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;
