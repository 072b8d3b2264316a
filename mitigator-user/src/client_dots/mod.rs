//! DOTS client (RFC 9132 signal channel).

pub mod session;
