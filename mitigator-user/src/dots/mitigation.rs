//! One mitigation request as the server holds it (sections 4.4.1, 4.4.2),
//! in the form the registry stores as JSON: every time is unix
//! milliseconds, so that a restart restores the remaining lifetimes.

use dots_proto::signal::{AttackStatus, ControlAcl, Lifetime, Scope, Status, Target};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::repr;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mitigation {
    pub cuid: String,
    /// The domain of the client that created it: a 'cuid' belongs to one
    /// client (section 4.4.1.1, 'cuid' collisions).
    #[serde(default)]
    pub domain: String,
    /// Set by a server-domain gateway (section 4.4.1.2).
    pub cdid: Option<String>,
    pub mid: u32,
    /// As the client sent it: 'repeat all the other parameters' is checked
    /// against this (section 4.4.1.3).
    #[serde(with = "repr::target")]
    pub target: Target,
    /// Every address the target covers: 'target-prefix' plus what the
    /// caller resolved from 'target-fqdn', 'target-uri' and 'alias-name'.
    pub prefixes: Vec<IpNet>,
    pub trigger_mitigation: bool,
    /// The lifetime granted by the last PUT (section 4.4.1.1).
    #[serde(with = "repr::lifetime")]
    pub granted_lifetime: Lifetime,
    /// When the lifetime runs out; None for an indefinite lifetime.
    pub expires_ms: Option<u64>,
    /// Unix seconds when mitigation became active; absent while the
    /// request waits at status 8 (section 4.4.2, 'mitigation-start').
    pub mitigation_start: Option<u64>,
    #[serde(with = "repr::status")]
    pub status: Status,
    /// The last efficacy update (section 4.4.3).
    #[serde(with = "repr::attack_status", default)]
    pub attack_status: Option<AttackStatus>,
    /// End of the active-but-terminating period while at status 5.
    pub terminating_until_ms: Option<u64>,
    /// The active-but-terminating period the next DELETE starts: 120 s,
    /// doubled on each re-request during the period, at most 300 s
    /// (section 4.4.4).
    pub terminating_period_s: u32,
    /// A preconfigured request at status 7 (withdrawn) or 3 (attack
    /// stopped) moves to 8 at this time (Table 3, "transmitted four times
    /// and then transition to 8").
    pub hold_until_ms: Option<u64>,
    /// Activated by the loss of the signal channel session (section 4.7);
    /// recovery of the session does not stop it (section 4.4.4).
    #[serde(default)]
    pub activated_by_signal_loss: bool,
    /// RFC 9133 'acl-list' as the creating request sent it (already
    /// carried out on the data channel's ACLs); reported by GET.
    #[serde(with = "repr::acl_list", default, skip_serializing_if = "Vec::is_empty")]
    pub acl_list: Vec<ControlAcl>,
}

impl Mitigation {
    /// Statuses 1-5 have rules in the data plane; 6, 7 and 8 do not.
    pub fn is_enforced(&self) -> bool {
        is_enforced(self.status)
    }

    /// The remaining lifetime a response or notification reports (section
    /// 4.4.1.1: "the remaining lifetime in status messages"), rounded up.
    /// While active-but-terminating (status 5), the mitigation ends with
    /// the terminating period if that comes first (4.4.4).
    pub fn remaining_lifetime(&self, now_ms: u64) -> Lifetime {
        let end = match (self.expires_ms, self.terminating_until_ms) {
            (Some(e), Some(t)) => Some(e.min(t)),
            (e, t) => e.or(t),
        };
        match end {
            None => Lifetime::Indefinite,
            Some(e) => Lifetime::Seconds(u32::try_from(e.saturating_sub(now_ms).div_ceil(1000)).unwrap_or(u32::MAX)),
        }
    }

    /// The earliest time `tick` has something to do for this mitigation.
    pub fn deadline(&self) -> Option<u64> {
        [self.expires_ms, self.terminating_until_ms, self.hold_until_ms].into_iter().flatten().min()
    }

    /// The server-to-client 'scope' entry of a GET response or a
    /// notification (Figure 14): no 'cuid'/'cdid' in bodies (4.4.1.3), no
    /// 'mitigation-start' for status 8 (4.4.2), no client-only
    /// 'attack-status'. Counters are the registry's to fill in.
    pub fn to_scope(&self, now_ms: u64) -> Scope {
        let start = if self.status == Status::AttackMitigationSignalLoss { None } else { self.mitigation_start };
        Scope {
            mid: Some(self.mid),
            target: self.target.clone(),
            lifetime: Some(self.remaining_lifetime(now_ms)),
            trigger_mitigation: Some(self.trigger_mitigation),
            mitigation_start: start,
            status: Some(self.status),
            acl_list: self.acl_list.clone(),
            ..Scope::default()
        }
    }
}

pub fn is_enforced(s: Status) -> bool {
    (1..=5).contains(&s.code())
}

/// `now + lifetime`, or None for an indefinite lifetime.
pub fn expiry(lifetime: Lifetime, now_ms: u64) -> Option<u64> {
    match lifetime {
        Lifetime::Seconds(s) => Some(now_ms + u64::from(s) * 1000),
        Lifetime::Indefinite => None,
    }
}
