//! What a mutating call of the state machine tells its owner (quinn-proto
//! style): the registry persists and recompiles, the session layer turns
//! status changes into Observe notifications (section 4.4.2.1).

use dots_proto::signal::{ConflictInformation, Status};

/// Why a mitigation left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalReason {
    /// Its lifetime reached 0 without a refresh (section 4.4.1.1).
    Expired,
    /// Its active-but-terminating period ended (section 4.4.4).
    Terminated,
    /// Deleted by its client while not enforced (a preconfigured request
    /// at status 7 or 8 has no mitigation to keep running, section 4.4.4).
    Deleted,
    /// Overridden by an overlapping request of the same client and
    /// 'trigger-mitigation' type with a higher 'mid' (section 4.4.1.3).
    Replaced { by_mid: u32 },
    /// Withdrawn by the server (status 7) because the loss of the session
    /// activated an overlapping preconfigured request (section 4.4.1.3).
    WithdrawnOnSignalLoss,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DotsEvent {
    /// The 'status' of a mitigation changed: notify its observers.
    StatusChanged { cuid: String, mid: u32, status: Status },
    /// The stored form of a mitigation changed (created, refreshed, new
    /// status, efficacy update): persist it.
    Changed { cuid: String, mid: u32 },
    /// The mitigation is gone: delete its row, end its observations.
    Removed { cuid: String, mid: u32, reason: RemovalReason },
    /// A request of another client now conflicts with this active
    /// mitigation: notify its client (section 4.4.2.1, "the DOTS server
    /// sends a notification message(s) to the DOTS client(s) at the origin
    /// of the conflict").
    Conflict { cuid: String, mid: u32, info: ConflictInformation },
    /// The set returned by `enforced()` differs: recompile the rules. `keys`
    /// are the (cuid, mid) whose enforced scope appeared, went or changed.
    EnforcementChanged { keys: Vec<(String, u32)> },
    /// The client went from no active mitigation to some, or back: the
    /// session layer switches between 'mitigating-config' and
    /// 'idle-config' (section 4.5, "MUST automatically switch").
    ActivityChanged { cuid: String, mitigating: bool },
    /// A client's session configuration changed (PUT or DELETE /config):
    /// notify observers of 'config' (section 4.5.3).
    ConfigChanged { cuid: String },
}
