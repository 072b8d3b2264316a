//! The DOTS signal channel (RFC 9132, draft 08 in `shared/reference`):
//! messages, their CBOR (Table 5) and JSON (RFC 7951) codecs, URIs, the
//! validation rules of a server, and 'cuid' derivation. No I/O.
//!
//! Decoding: [`SignalMessage::from_cbor`] / [`SignalBody::from_cbor`]
//! check the key table, comprehension ranges, types and size/depth
//! limits. Semantics: [`validate`]. Every failure is a [`SignalError`]
//! with [`SignalError::code`] and [`SignalError::diagnostic`].

mod cbor;
pub mod config;
pub mod cuid;
mod decimal;
pub mod error;
pub mod heartbeat;
mod json;
pub mod keys;
mod message;
pub mod mitigation;
pub mod redirect;
mod tree;
pub mod uri;
pub mod validate;

pub use config::{defaults, ConfigParameters, DecimalParam, IntParam, SignalConfig};
pub use cuid::{cuid_from_psk_identity, cuid_from_spki};
pub use decimal::Decimal;
pub use error::{Decoded, ResponseCode, SignalError, Warning};
pub use heartbeat::Heartbeat;
pub use message::{SignalBody, SignalMessage};
pub use mitigation::{
    AclRef, ActivationType, AttackStatus, ConflictCause, ConflictInformation, ConflictScope, ConflictStatus, ControlAcl,
    IpPrefix, Lifetime, MitigationScope, PortRange, Scope, Status, Target,
};
pub use redirect::RedirectedSignal;
pub use tree::limits;
pub use uri::{Content, MitigatePath, SignalPath};
pub use validate::{
    validate_config_put, validate_mitigation_delete, validate_mitigation_put, ConfigPolicy, MitigationPolicy,
    MitigationRequest,
};

/// Content-Format of `application/dots+cbor` (section 10.4).
pub const CONTENT_FORMAT_DOTS_CBOR: u16 = 271;
/// UDP and TCP port of the signal channel (section 10.1).
pub const DEFAULT_PORT: u16 = 4646;
