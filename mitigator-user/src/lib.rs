//! The mitigator daemon: data plane, registry, control API, CLI.
//!
//! ```text
//! CLI / scripts ──local API (HTTP+JSON, Unix socket)──▶ registry ──▶ compiler ──▶ dataplane (XDP maps)
//!                                                          │
//!                                                        store (redb)
//! ```

pub mod api;
pub mod certs;
pub mod cli;
pub mod client;
pub mod client_dots;
pub mod compiler;
pub mod config;
pub mod daemon;
pub mod datachannel;
pub mod dataplane;
pub mod dots;
pub mod escalation;
pub mod gateway;
pub mod protection;
pub mod registry;
pub mod signal;
pub mod stats;
pub mod store;
pub mod synproxy;
pub mod transport;
