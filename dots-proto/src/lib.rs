//! The DOTS protocol with no I/O, in the style of quinn-proto and rustls:
//! bytes in, typed messages out, and back; timers are values, not sleeps.
//!
//! - [`coap`]: CoAP messages for datagrams (RFC 7252) and streams (RFC 8323),
//!   options, block-wise transfer, retransmission and deduplication state.
//! - [`signal`]: the DOTS signal channel (RFC 9132): mitigation requests,
//!   session configuration, heartbeats, their CBOR and JSON codecs and the
//!   validation rules a server enforces.
//! - [`data`]: the DOTS data channel (RFC 8783): clients, aliases, ACLs, in
//!   their RESTCONF JSON encoding.
#![forbid(unsafe_code)]

pub mod coap;
pub mod data;
pub mod signal;
