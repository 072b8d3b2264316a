//! The DOTS server's state (RFC 9132 signal channel, draft 08 in
//! `shared/reference`): mitigation requests (section 4.4) and session
//! configuration (section 4.5), as a pure state machine in the style of
//! quinn-proto. No I/O, no clock: every call takes `now` in unix
//! milliseconds and returns an outcome plus [`DotsEvent`]s;
//! [`DotsState::next_deadline`] says when [`DotsState::tick`] is due.
//!
//! The registry thread owns one [`DotsState`]. Requests arrive already
//! decoded and validated by `dots_proto::signal` (`validate_mitigation_put`,
//! `validate_config_put` is called here); targets arrive with the prefixes
//! the caller resolved from FQDNs, URIs and aliases. The session layer
//! turns outcomes into CoAP responses ([`Refusal`] for 4.xx) and events
//! into Observe notifications.
//!
//! - [`table`]: [`MitigationTable`], PUT/GET/DELETE, overlap rules, status
//!   life cycle, signal loss, lifetimes.
//! - [`scope`]: overlap and authorization arithmetic, [`EnforcedScope`].
//! - [`conflict`]: 'conflict-information' bodies.
//! - [`config`]: [`ConfigTable`], per-client session configuration.
//! - [`mitigation`]: the stored [`Mitigation`] record.
//!
//! Choices where the text leaves room (details at each function):
//! - Status 1 on creation, 2 once the caller reports the rules are in the
//!   data plane ([`MitigationTable::confirm_enforced`]); Table 3.
//! - A target prefix outside the client's domain is 4.00 naming the
//!   prefix: 4.4.1.1 requires the check but names no code, 4.4.1.3 uses
//!   4.00 for foreign aliases, 4.03 is not in the text.
//! - DELETE of an unknown 'mid' is 2.02 ("even if the 'mid' ... does not
//!   exist", 4.4.4); a preconfigured request at 7/8 is removed at once.
//! - Lifetime expiry reports 6 then removes (4.4.1.1, Table 3).
//! - Another client's overlap: [`OtherClientOverlap::Accept`] by default
//!   (2.01 with conflict-status 2), `Reject` gives 4.09 with
//!   conflict-status 1 and retry-timer (4.4.1.3).
//! - Same-client 4.09 carries conflict-cause and conflict-scope (mid)
//!   only; conflict-status is defined for conflicts between clients.
//! - "transmitted four times and then transition to 8" (Table 3, statuses
//!   3 and 7 of preconfigured requests) is a hold of 4 x 3 s (4.4.2.1's
//!   notification spacing), then 8 at `tick`.
//! - Re-requests during the active-but-terminating period (same 'mid', or
//!   a new overlapping one) double the next period up to 300 s (4.4.4).
//!   An efficacy update never revives a withdrawn mitigation (4.4.3).
//! - A config PUT with a lower 'sid' than the installed one is 4.00 (4.5.2
//!   "MUST increase monotonically"); DELETE /config clears the 'sid'.

pub mod config;
pub mod conflict;
pub mod event;
pub mod mitigation;
pub mod refusal;
mod repr;
pub mod scope;
pub mod table;

use dots_proto::signal::{ConfigPolicy, MitigationRequest, SignalConfig, Status};
use ipnet::IpNet;

pub use config::{ConfigPutOutcome, ConfigTable, SessionConfig, SessionParams};
pub use event::{DotsEvent, RemovalReason};
pub use mitigation::Mitigation;
pub use refusal::Refusal;
pub use scope::EnforcedScope;
pub use table::{ClientCtx, DeleteOutcome, MitigationTable, OtherClientOverlap, PutOutcome, PutResponse, TablePolicy};

/// Server policy: how mitigations and session configurations are handled.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DotsPolicy {
    pub mitigation: TablePolicy,
    pub config: ConfigPolicy,
}

/// Both tables, and the glue between them: which configuration set a
/// client's session uses depends on whether it has an active mitigation.
#[derive(Debug, Clone, Default)]
pub struct DotsState {
    pub mitigations: MitigationTable,
    pub configs: ConfigTable,
    config_policy: ConfigPolicy,
}

impl DotsState {
    pub fn new(policy: DotsPolicy) -> Self {
        DotsState {
            mitigations: MitigationTable::new(policy.mitigation),
            configs: ConfigTable::new(),
            config_policy: policy.config,
        }
    }

    /// From stored tables (e.g. after a restart).
    pub fn restore(policy: DotsPolicy, mut mitigations: MitigationTable, configs: ConfigTable) -> Self {
        mitigations.set_policy(policy.mitigation);
        DotsState { mitigations, configs, config_policy: policy.config }
    }

    pub fn put_mitigation(
        &mut self,
        client: &ClientCtx,
        req: MitigationRequest,
        prefixes: Vec<IpNet>,
        if_match: bool,
        now: u64,
    ) -> Result<PutOutcome, Refusal> {
        self.mitigations.put(client, req, prefixes, if_match, now)
    }

    pub fn get_mitigations(&self, cuid: &str, mid: Option<u32>) -> Result<Vec<&Mitigation>, Refusal> {
        self.mitigations.get(cuid, mid)
    }

    pub fn delete_mitigation(&mut self, cuid: &str, mid: u32, now: u64) -> DeleteOutcome {
        self.mitigations.delete(cuid, mid, now)
    }

    pub fn confirm_enforced(&mut self, cuid: &str, mid: u32) -> Vec<DotsEvent> {
        self.mitigations.confirm_enforced(cuid, mid)
    }

    pub fn set_status(&mut self, cuid: &str, mid: u32, status: Status, now: u64) -> Result<Vec<DotsEvent>, Refusal> {
        self.mitigations.set_status(cuid, mid, status, now)
    }

    pub fn session_lost(&mut self, cuid: &str, now: u64) -> Vec<DotsEvent> {
        self.mitigations.session_lost(cuid, now)
    }

    pub fn session_resumed(&mut self, cuid: &str, now: u64) -> Vec<DotsEvent> {
        self.mitigations.session_resumed(cuid, now)
    }

    pub fn put_config(
        &mut self,
        cuid: &str,
        sid: Option<u32>,
        body: &SignalConfig,
        now: u64,
    ) -> Result<ConfigPutOutcome, Refusal> {
        self.configs.put(cuid, sid, body, &self.config_policy, now)
    }

    pub fn get_config(&self, cuid: &str, sid: Option<u32>) -> Result<SignalConfig, Refusal> {
        self.configs.get(cuid, sid, &self.config_policy)
    }

    pub fn delete_config(&mut self, cuid: &str) -> Vec<DotsEvent> {
        self.configs.delete(cuid)
    }

    /// The heartbeat and transmission values for this client's session
    /// now: 'mitigating-config' while it has an active mitigation
    /// (statuses 1-5), else 'idle-config' (section 4.5).
    pub fn session_params(&self, cuid: &str) -> SessionParams {
        let mitigating = self.mitigations.is_mitigating(cuid);
        self.configs.session_params(cuid, mitigating, &self.config_policy)
    }

    pub fn enforced(&self) -> impl Iterator<Item = EnforcedScope> + '_ {
        self.mitigations.enforced()
    }

    pub fn next_deadline(&self) -> Option<u64> {
        self.mitigations.next_deadline()
    }

    pub fn tick(&mut self, now: u64) -> Vec<DotsEvent> {
        self.mitigations.tick(now)
    }
}
