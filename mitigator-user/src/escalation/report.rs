//! What `mitigator status` shows of escalation: per target, which servers
//! were asked, under which 'mid', and what they answered; per upstream, its
//! session.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EscalationReport {
    pub targets: Vec<TargetReport>,
    pub upstreams: Vec<UpstreamReport>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetReport {
    /// The protection (its id, as in `protections`).
    pub protection: u32,
    /// normal, rising, escalated, falling.
    pub phase: String,
    /// Inbound load toward it (passed + dropped here).
    pub load_pps: f64,
    pub load_bps: f64,
    pub legs: Vec<LegReport>,
}

/// One chain of servers for some of the target's prefixes (see multihoming).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LegReport {
    pub prefixes: Vec<ipnet::IpNet>,
    /// Provider-assigned (to the first server's domain) or independent.
    pub pa: bool,
    /// The servers in the order they are tried.
    pub chain: Vec<String>,
    /// requesting, active, waiting (all refused or unreachable; retrying),
    /// withdrawing, withdrawn.
    pub state: String,
    /// The server that accepted, with the mitigation's 'mid' there.
    pub server: Option<String>,
    pub mid: Option<u32>,
    /// The upstream's status (RFC 9132 Table 3) and what it drops for us.
    pub status: Option<u8>,
    pub upstream_pps_dropped: Option<u64>,
    pub upstream_bps_dropped: Option<u64>,
    /// The last efficacy update sent ('attack-status', 4.4.3).
    pub attack_status: Option<u8>,
    /// Why the last attempt failed, per server.
    pub errors: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpstreamReport {
    pub name: String,
    pub server: String,
    /// connecting, up, lost, closed.
    pub session: String,
    pub cuid: Option<String>,
    pub last_error: Option<String>,
}
