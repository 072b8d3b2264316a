//! 'conflict-information' bodies (sections 4.4.1.3 and 4.4.2.1).

use dots_proto::signal::{ConflictCause, ConflictInformation, ConflictScope, ConflictStatus, Lifetime, Target};

/// Same client, same 'trigger-mitigation' type, the new request has the
/// lower 'mid': 4.09 "with only the relevant nodes listed": the cause
/// "MUST be returned: 1: Overlapping targets", and the conflict-scope
/// with the shared targets and the overriding 'mid'. 'conflict-status'
/// is defined for conflicts "from different DOTS clients" only, so it is
/// left out here (4.4.1.3).
pub fn lower_mid(overlap: Target, existing_mid: u32) -> ConflictInformation {
    ConflictInformation {
        conflict_status: None,
        conflict_cause: Some(ConflictCause::OverlappingTargets),
        retry_timer: None,
        conflict_scope: Some(ConflictScope { target: overlap, acl_list: Vec::new(), mid: Some(existing_mid) }),
    }
}

/// A request of another client overlaps (4.4.1.3). `status` is 1 when the
/// new request is refused ("currently inactive ... Another mitigation
/// request is active"), 2 when it is kept ("currently active"). The other
/// client's 'mid' is not named: mids are per client and mean nothing to
/// the requester. 'retry-timer' "SHOULD be equal to the lifetime of the
/// active mitigation request resulting in the deactivation", so it is
/// given only with status 1 and a finite remaining lifetime.
pub fn other_client(status: ConflictStatus, overlap: Target, other_remaining: Lifetime) -> ConflictInformation {
    let retry_timer = match (status, other_remaining) {
        (ConflictStatus::RequestInactiveOtherActive, Lifetime::Seconds(s)) => Some(s),
        _ => None,
    };
    ConflictInformation {
        conflict_status: Some(status),
        conflict_cause: Some(ConflictCause::OverlappingTargets),
        retry_timer,
        conflict_scope: Some(ConflictScope { target: overlap, acl_list: Vec::new(), mid: None }),
    }
}

/// The 'cuid' is in use by another client: only the cause; "Note that
/// 'conflict-status', 'conflict-scope', and 'retry-timer' MUST NOT be
/// returned in the error response" (4.4.1.3, Figure 11).
pub fn cuid_collision() -> ConflictInformation {
    ConflictInformation { conflict_cause: Some(ConflictCause::CuidCollision), ..ConflictInformation::default() }
}
