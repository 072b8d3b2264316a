//! Upstream escalation (issue 5): when an attack exceeds what this host can
//! absorb, ask upstream DOTS servers for help, following the multihoming
//! rules of RFC 9284 (draft in `shared/reference`).
//!
//! - [`detector`]: hysteresis on the measured load (thresholds from the
//!   configured capacity, hold times).
//! - [`multihoming`]: which server gets which prefixes (PA to the owner,
//!   PI to all, configured fallbacks in turn).
//! - [`leg`]: one chain of servers asked in turn, with backoff.
//! - [`upstream`]: the sessions with every server, kept from the start.
//! - [`controller`]: the task tying them to the registry's counters.
//! - [`report`]: what `mitigator status` shows.

pub mod controller;
pub mod detector;
pub mod leg;
pub mod multihoming;
pub mod report;
pub mod upstream;

pub use controller::{start, Escalation};
pub use report::{EscalationReport, LegReport, TargetReport, UpstreamReport};
pub use upstream::Upstreams;
