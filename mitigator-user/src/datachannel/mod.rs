//! The DOTS data channel server (RFC 8783; draft 29 in `shared/reference`):
//! RESTCONF (RFC 8040) with JSON bodies over HTTPS with mutual X.509, for
//! client registration, aliases and filtering rules.
//!
//! ```text
//! TlsServer (transport/tls.rs, ALPN http/1.1) ─▶ server.rs: hyper HTTP/1.1 per connection,
//!                                                 the certificate's cuid and domain (signal/identity.rs)
//!                                              ─▶ route.rs    path → resource, content/depth
//!                                              ─▶ handler.rs  method × resource → registry operation
//!                                                             (bodies decoded and validated by dots-proto)
//!                                              ─▶ registry/datachannel.rs  state, store, rule set
//! capabilities.rs: what the XDP filter can match (7.1)
//! ```

pub mod capabilities;
pub mod handler;
pub mod route;
pub mod server;

pub use server::{start, DataChannelServer};
