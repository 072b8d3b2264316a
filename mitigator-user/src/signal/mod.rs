//! The DOTS signal channel server (RFC 9132; draft 08 in
//! `shared/reference`): CoAP over DTLS (UDP 4646) and over TLS (TCP 4646),
//! serving `/.well-known/dots/{mitigate,config,hb}` from the registry.
//!
//! ```text
//! transport (DTLS/TLS) ─▶ server.rs (I/O glue) ─▶ session.rs (sans-IO CoAP session)
//!                                                   ├─ route.rs   request → Op or refusal
//!                                                   ├─ observe.rs Observe bookkeeping
//!                                                   └─ reply.rs   codes + diagnostics
//!                          handler.rs  Op → registry (resolving FQDN/URI targets)
//!                          identity.rs credential → cuid → client domain
//!                          liveness.rs session loss per client (4.7)
//! ```
//!
//! Choices where the text leaves room are documented where they are made:
//! 4.01 for an authenticated peer in no client domain (identity.rs), 4.00
//! for a foreign 'cuid' in the path and a missing Content-Format decoded as
//! dots+cbor (route.rs), FQDN/URI resolution or 4.00 (handler.rs), and
//! Observe spacing (observe.rs).

pub mod handler;
pub mod identity;
pub mod liveness;
pub mod observe;
pub mod reply;
pub mod route;
pub mod server;
pub mod session;

pub use server::{start, start_with_gateway, SignalServer};
