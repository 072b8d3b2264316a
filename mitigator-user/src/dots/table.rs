//! The server's mitigation requests, per client 'cuid' and 'mid'
//! (section 4.4), as a pure state machine: every method takes `now` (unix
//! milliseconds) and returns the events it caused; `next_deadline` says
//! when `tick` must run.
//!
//! Status life cycle (Table 3) as implemented here:
//!
//! ```text
//! PUT trigger=true ──▶ 1 ──confirm_enforced──▶ 2 ◀──set_status──▶ 3, 4
//!                      │                       │
//!                      └──────── DELETE ───────┴──▶ 5 ──period ends──▶ 6, removed
//! PUT trigger=false ─▶ 8 ──session_lost──▶ 1 ...      (lifetime expiry: 6, removed)
//! active trigger=false overlapped by a trigger=true PUT ──▶ 7 ──hold──▶ 8
//! ```

use std::collections::{BTreeMap, BTreeSet};

use dots_proto::signal::{
    ConflictInformation, ConflictStatus, IpPrefix, Lifetime, MitigationRequest, ResponseCode, Status, Target,
};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::conflict;
use super::event::{DotsEvent, RemovalReason};
use super::mitigation::{expiry, is_enforced, Mitigation};
use super::refusal::Refusal;
use super::scope::{all_prefixes, first_unauthorized, overlap, overlaps, EnforcedScope, Footprint};

/// What to do when a request overlaps an active request of another client
/// (section 4.4.1.3: "the DOTS server may return 2.01 (Created) or 4.09
/// (Conflict)").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OtherClientOverlap {
    /// 4.09 with 'conflict-status' 1; nothing changes.
    Reject,
    /// 2.01 with 'conflict-information' ('conflict-status' 2); both are
    /// enforced, and the other client is told (a `Conflict` event). The
    /// default: on one host both clients protect the same machine, and
    /// refusing protection during an attack is the worse failure.
    #[default]
    Accept,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePolicy {
    pub other_client_overlap: OtherClientOverlap,
    /// "The active-but-terminating period SHOULD be set by default to 120
    /// seconds" (section 4.4.4).
    pub terminating_initial_s: u32,
    /// "... up to a maximum of 300 seconds (5 minutes)" (section 4.4.4).
    pub terminating_max_s: u32,
    /// How long a preconfigured request stays at 7 (withdrawn) or 3
    /// (attack stopped) before it moves to 8. Table 3 says the status is
    /// "transmitted four times and then transition to 8"; a server without
    /// an RTT estimate "MUST NOT send more than one asynchronous
    /// notification every 3 seconds" (4.4.2.1), so four notifications
    /// take 4 x 3 s = 12 s.
    pub status_hold_ms: u64,
}

impl Default for TablePolicy {
    fn default() -> Self {
        TablePolicy {
            other_client_overlap: OtherClientOverlap::default(),
            terminating_initial_s: 120,
            terminating_max_s: 300,
            status_hold_ms: 4 * 3_000,
        }
    }
}

/// The authenticated client a request comes from (section 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCtx {
    /// The 'cuid' the request acts as (for a gateway, the rewritten one).
    pub cuid: String,
    /// The client's domain, from its credentials.
    pub domain: String,
    /// The prefixes the client may ask mitigation for (section 4.4.1.1).
    pub allowed: Vec<IpNet>,
}

/// The answer to a PUT that was not refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutResponse {
    /// 2.01: a new 'mid'. `conflict` is set when it overlaps another
    /// client's active request and the policy keeps both (4.4.1.3).
    Created { mitigation: Mitigation, conflict: Option<ConflictInformation> },
    /// 2.04: a refresh (4.4.1.3) or an efficacy update (4.4.3).
    Changed { mitigation: Mitigation },
    /// An efficacy update with If-Match for an unknown 'mid': "the PUT
    /// request is silently ignored by the DOTS server" (4.4.3).
    Ignored,
}

impl PutResponse {
    /// The CoAP code to answer with; None means no response at all.
    pub fn code(&self) -> Option<ResponseCode> {
        match self {
            PutResponse::Created { .. } => Some(ResponseCode::CREATED),
            PutResponse::Changed { .. } => Some(ResponseCode::CHANGED),
            PutResponse::Ignored => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    pub response: PutResponse,
    pub events: Vec<DotsEvent>,
}

/// DELETE always answers 2.02, "even if the 'mid' parameter value
/// conveyed in the DELETE request does not exist" (section 4.4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteOutcome {
    pub existed: bool,
    pub events: Vec<DotsEvent>,
}

impl DeleteOutcome {
    pub const CODE: ResponseCode = ResponseCode::DELETED;
}

/// All mitigation requests, keyed by 'cuid' then 'mid'. Serialises as the
/// flat list of its mitigations; the policy is configuration, not state.
#[derive(Debug, Clone, Default)]
pub struct MitigationTable {
    clients: BTreeMap<String, BTreeMap<u32, Mitigation>>,
    policy: TablePolicy,
}

/// The same-client consequences of a new request (section 4.4.1.3).
#[derive(Default)]
struct Plan {
    /// Lower 'mid', same trigger type: "automatically deleted".
    replaced: Vec<u32>,
    /// Active preconfigured requests to withdraw (status 7, then 8).
    deactivated: Vec<u32>,
    /// Doubled active-but-terminating period inherited from overlapped
    /// requests at status 5 (a re-request, section 4.4.4).
    terminating_period_s: Option<u32>,
}

/// An active request of another client that the new request overlaps.
struct CrossConflict {
    cuid: String,
    mid: u32,
    /// What the new request shares with it.
    seen_by_new: Target,
    /// What it shares with the new request.
    seen_by_other: Target,
    remaining: Lifetime,
}

/// Enforcement and activity before a call, to report what changed.
struct Snapshot {
    enforced: Vec<EnforcedScope>,
    mitigating: BTreeSet<String>,
}

impl MitigationTable {
    pub fn new(policy: TablePolicy) -> Self {
        MitigationTable { clients: BTreeMap::new(), policy }
    }

    /// Rebuilds the table from stored rows (e.g. after a restart). Times
    /// are absolute, so lifetimes keep running; `tick` removes whatever
    /// expired while the daemon was down.
    pub fn restore(policy: TablePolicy, rows: impl IntoIterator<Item = Mitigation>) -> Self {
        let mut t = Self::new(policy);
        for m in rows {
            t.clients.entry(m.cuid.clone()).or_default().insert(m.mid, m);
        }
        t
    }

    pub fn policy(&self) -> &TablePolicy {
        &self.policy
    }

    pub fn set_policy(&mut self, policy: TablePolicy) {
        self.policy = policy;
    }

    pub fn iter(&self) -> impl Iterator<Item = &Mitigation> {
        self.clients.values().flat_map(BTreeMap::values)
    }

    pub fn mitigation(&self, cuid: &str, mid: u32) -> Option<&Mitigation> {
        self.clients.get(cuid)?.get(&mid)
    }

    /// True if the client has an active mitigation (statuses 1-5): its
    /// session uses 'mitigating-config', else 'idle-config' (4.5).
    pub fn is_mitigating(&self, cuid: &str) -> bool {
        self.clients.get(cuid).is_some_and(|c| c.values().any(Mitigation::is_enforced))
    }

    /// What the data plane must enforce now: statuses 1-5.
    pub fn enforced(&self) -> impl Iterator<Item = EnforcedScope> + '_ {
        self.iter().filter(|m| m.is_enforced()).map(EnforcedScope::of)
    }

    /// When `tick` must be called next, if ever.
    pub fn next_deadline(&self) -> Option<u64> {
        self.iter().filter_map(Mitigation::deadline).min()
    }

    // ------------------------------------------------------------ GET

    /// GET /mitigate/cuid=..[/mid=..] (section 4.4.2): only the client's
    /// own mitigations. 4.04 for an unknown 'mid', and also "to retrieve
    /// all mitigation records ... if the DOTS server does not find any".
    pub fn get(&self, cuid: &str, mid: Option<u32>) -> Result<Vec<&Mitigation>, Refusal> {
        let all = self.clients.get(cuid);
        let found: Vec<&Mitigation> = match mid {
            Some(mid) => all.and_then(|c| c.get(&mid)).into_iter().collect(),
            None => all.map(|c| c.values().collect()).unwrap_or_default(),
        };
        if found.is_empty() {
            let what = mid.map_or_else(|| "no mitigation".to_string(), |m| format!("no mitigation with mid {m}"));
            return Err(Refusal::not_found(format!("{what} for cuid {cuid}")));
        }
        Ok(found)
    }

    // ------------------------------------------------------------ PUT

    /// PUT /mitigate/cuid=../mid=.. (sections 4.4.1 and 4.4.3).
    /// `prefixes` are the addresses the caller resolved from the target
    /// ('target-prefix' entries are added here); `if_match` is true when
    /// the request carried an empty If-Match option (4.4.3). A refusal
    /// changes nothing.
    pub fn put(
        &mut self,
        client: &ClientCtx,
        req: MitigationRequest,
        prefixes: Vec<IpNet>,
        if_match: bool,
        now: u64,
    ) -> Result<PutOutcome, Refusal> {
        self.check_identity(client, &req)?;
        let exists = self.mitigation(&client.cuid, req.mid).is_some();
        if if_match && !exists {
            return Ok(PutOutcome { response: PutResponse::Ignored, events: Vec::new() });
        }
        let prefixes = all_prefixes(&req.target, prefixes);
        authorize(client, &prefixes)?;
        self.check_control_filtering(&client.cuid, &req, exists)?;
        let before = self.snapshot();
        let mut events = Vec::new();
        let response = if exists {
            self.refresh(req, prefixes, now, &mut events)?
        } else {
            self.create(client, req, prefixes, now, &mut events)?
        };
        self.report_changes(before, &mut events);
        Ok(PutOutcome { response, events })
    }

    /// The request acts as the authenticated client, and its 'cuid' is
    /// not already used by a client of another domain: "DOTS servers MUST
    /// return 4.09 (Conflict) ... that the 'cuid' is already in use by
    /// another DOTS client" (4.4.1.1).
    fn check_identity(&self, client: &ClientCtx, req: &MitigationRequest) -> Result<(), Refusal> {
        if req.cuid != client.cuid {
            return Err(Refusal::bad_request(format!(
                "Uri-Path cuid {} is not the cuid of this session ({})",
                req.cuid, client.cuid
            )));
        }
        let owner = self.clients.get(&client.cuid).and_then(|c| c.values().next()).map(|m| &m.domain);
        match owner {
            Some(d) if !d.is_empty() && *d != client.domain => Err(Refusal::conflict(
                format!("cuid {} is already in use by another DOTS client", client.cuid),
                conflict::cuid_collision(),
            )),
            _ => Ok(()),
        }
    }

    /// RFC 9133 filtering control rides on a new request of a client that
    /// is already mitigating: "DOTS clients MUST NOT use the filtering
    /// control over DOTS signal channel in 'idle' time"; and a refresh
    /// must repeat its parameters (4.4.1.3), so a changed filter needs a
    /// new 'mid'. Both 4.00. The same 'acl-list' again on its own 'mid' is
    /// a repeat, not a change: a refresh, or the client re-sending a
    /// Non-confirmable request whose 2.01 was lost (it does so with a new
    /// message id, so CoAP deduplication does not catch it); it is
    /// answered as a refresh and changes no filter again.
    fn check_control_filtering(&self, cuid: &str, req: &MitigationRequest, exists: bool) -> Result<(), Refusal> {
        if req.acl_list.is_empty() {
            return Ok(());
        }
        if exists {
            if self.mitigation(cuid, req.mid).is_some_and(|m| m.acl_list == req.acl_list) {
                return Ok(());
            }
            return Err(Refusal::bad_request(format!(
                "mid {} exists: 'ietf-dots-signal-control:acl-list' needs a new mitigation request (a new 'mid'), not a refresh (RFC 9133)",
                req.mid
            )));
        }
        if !self.is_mitigating(cuid) {
            return Err(Refusal::bad_request(
                "'ietf-dots-signal-control:acl-list' while no mitigation of this client is active: filtering control is not for 'idle' time (RFC 9133)",
            ));
        }
        Ok(())
    }

    /// Same 'mid': a refresh (4.4.1.3) or an efficacy update (4.4.3); both
    /// "MUST repeat all the other parameters ... apart from ... 'lifetime'",
    /// else 4.00.
    fn refresh(
        &mut self,
        req: MitigationRequest,
        prefixes: Vec<IpNet>,
        now: u64,
        events: &mut Vec<DotsEvent>,
    ) -> Result<PutResponse, Refusal> {
        let policy = self.policy.clone();
        let m = self.clients.get_mut(&req.cuid).and_then(|c| c.get_mut(&req.mid)).expect("caller checked");
        if !same_parameters(m, &req) {
            let section = if req.attack_status.is_some() { "4.4.3" } else { "4.4.1.3" };
            return Err(Refusal::bad_request(format!(
                "mid {} exists with other parameters: a refresh must repeat all of them apart from 'lifetime' (section {section})",
                req.mid
            )));
        }
        if let Some(l) = req.granted_lifetime {
            m.granted_lifetime = l;
            m.expires_ms = expiry(l, now);
        }
        m.prefixes = prefixes;
        match req.attack_status {
            // An efficacy update only records what the client sees. It does
            // not revive a mitigation the client withdrew: 4.4.3 uses If-Match
            // precisely so that a late update does not undo a DELETE.
            Some(a) => m.attack_status = Some(a),
            None if m.status == Status::DotsClientWithdrawnMitigation => {
                rerequest_during_terminating(m, &policy, events)
            }
            None => {}
        }
        events.push(changed(m));
        Ok(PutResponse::Changed { mitigation: m.clone() })
    }

    /// A new 'mid' (4.4.1.3): the overlap rules, then 2.01.
    fn create(
        &mut self,
        client: &ClientCtx,
        req: MitigationRequest,
        prefixes: Vec<IpNet>,
        now: u64,
        events: &mut Vec<DotsEvent>,
    ) -> Result<PutResponse, Refusal> {
        let lifetime = req
            .granted_lifetime
            .ok_or_else(|| Refusal::bad_request("mandatory attribute 'lifetime' is missing (section 4.4.1.1)"))?;
        let fp = Footprint { prefixes: &prefixes, target: &req.target };
        let plan = self.plan_same_client(&client.cuid, req.mid, req.trigger_mitigation, fp)?;
        let cross = match req.trigger_mitigation {
            true => self.cross_conflicts(&client.cuid, fp, now),
            // A preconfigured request is inactive (status 8): no conflict yet.
            false => Vec::new(),
        };
        let conflict = self.cross_policy(&cross)?;
        self.apply_plan(&client.cuid, req.mid, &plan, now, events);
        notify_other_clients(&cross, events);
        let m = self.new_mitigation(client, req, prefixes, lifetime, plan.terminating_period_s, now);
        events.push(DotsEvent::StatusChanged { cuid: m.cuid.clone(), mid: m.mid, status: m.status });
        events.push(changed(&m));
        self.clients.entry(m.cuid.clone()).or_default().insert(m.mid, m.clone());
        Ok(PutResponse::Created { mitigation: m, conflict })
    }

    fn new_mitigation(
        &self,
        client: &ClientCtx,
        req: MitigationRequest,
        prefixes: Vec<IpNet>,
        lifetime: Lifetime,
        terminating_period_s: Option<u32>,
        now: u64,
    ) -> Mitigation {
        let trigger = req.trigger_mitigation;
        Mitigation {
            cuid: client.cuid.clone(),
            domain: client.domain.clone(),
            cdid: req.cdid,
            mid: req.mid,
            target: req.target,
            prefixes,
            trigger_mitigation: trigger,
            granted_lifetime: lifetime,
            expires_ms: expiry(lifetime, now),
            mitigation_start: trigger.then_some(now / 1000),
            // 'trigger-mitigation' false: "DDoS mitigation will not be
            // triggered ... unless the DOTS signal channel session is lost"
            // (4.4.1.1), i.e. status 8. Otherwise 1 until the data plane
            // confirms (`confirm_enforced`).
            status: if trigger { Status::AttackMitigationInProgress } else { Status::AttackMitigationSignalLoss },
            attack_status: req.attack_status,
            terminating_until_ms: None,
            terminating_period_s: terminating_period_s.unwrap_or(self.policy.terminating_initial_s),
            hold_until_ms: None,
            activated_by_signal_loss: false,
            acl_list: req.acl_list,
        }
    }

    /// Classifies the client's other requests that overlap the new one
    /// (4.4.1.3). Refuses with 4.09 if one of the same trigger type has a
    /// higher 'mid' ("the DOTS server rejects the request").
    fn plan_same_client(&self, cuid: &str, mid: u32, trigger: bool, fp: Footprint) -> Result<Plan, Refusal> {
        let mut plan = Plan::default();
        let mut higher: Option<(&Mitigation, Target)> = None;
        let others = self.clients.get(cuid).into_iter().flat_map(|c| c.values()).filter(|m| m.mid != mid);
        for m in others {
            let Some(common) = overlap(fp, m.into()) else { continue };
            let terminating = m.status == Status::DotsClientWithdrawnMitigation;
            if terminating {
                // Asked again while active-but-terminating (4.4.4).
                let next = doubled(m.terminating_period_s, &self.policy);
                plan.terminating_period_s = plan.terminating_period_s.max(Some(next));
            }
            if m.trigger_mitigation == trigger {
                // A withdrawn request does not block a new one.
                if m.mid > mid && !terminating {
                    if higher.as_ref().is_none_or(|(h, _)| m.mid > h.mid) {
                        higher = Some((m, common));
                    }
                } else {
                    plan.replaced.push(m.mid);
                }
            } else if trigger && !m.trigger_mitigation && m.is_enforced() && !terminating {
                // "the DOTS server SHOULD deactivate ... the mitigation
                // request with 'trigger-mitigation' set to 'false'".
                plan.deactivated.push(m.mid);
            }
        }
        match higher {
            Some((m, common)) => Err(Refusal::conflict(
                format!("overlaps mitigation mid {} of this client, which has a higher mid (section 4.4.1.3)", m.mid),
                conflict::lower_mid(common, m.mid),
            )),
            None => Ok(plan),
        }
    }

    fn apply_plan(&mut self, cuid: &str, by_mid: u32, plan: &Plan, now: u64, events: &mut Vec<DotsEvent>) {
        for &mid in &plan.replaced {
            self.remove(cuid, mid, RemovalReason::Replaced { by_mid }, events);
        }
        let hold = self.policy.status_hold_ms;
        for &mid in &plan.deactivated {
            if let Some(m) = self.clients.get_mut(cuid).and_then(|c| c.get_mut(&mid)) {
                withdraw_preconfigured(m, now + hold, events);
            }
        }
    }

    /// Active requests (statuses 1-4) of other clients that the new one
    /// overlaps. Requests at 5 are on their way out and do not count.
    fn cross_conflicts(&self, cuid: &str, fp: Footprint, now: u64) -> Vec<CrossConflict> {
        let active = |m: &&Mitigation| m.cuid != cuid && (1..=4).contains(&m.status.code());
        self.iter()
            .filter(active)
            .filter_map(|m| {
                Some(CrossConflict {
                    cuid: m.cuid.clone(),
                    mid: m.mid,
                    seen_by_new: overlap(fp, m.into())?,
                    seen_by_other: overlap(m.into(), fp)?,
                    remaining: m.remaining_lifetime(now),
                })
            })
            .collect()
    }

    /// Applies `OtherClientOverlap`: Err(4.09) or the 'conflict-information'
    /// of the 2.01 response.
    fn cross_policy(&self, cross: &[CrossConflict]) -> Result<Option<ConflictInformation>, Refusal> {
        if cross.is_empty() {
            return Ok(None);
        }
        let common = merge_targets(cross.iter().map(|c| &c.seen_by_new));
        match self.policy.other_client_overlap {
            OtherClientOverlap::Reject => {
                let longest = cross.iter().map(|c| c.remaining).max_by_key(lifetime_order).expect("not empty");
                let info = conflict::other_client(ConflictStatus::RequestInactiveOtherActive, common, longest);
                Err(Refusal::conflict(
                    "overlaps an active mitigation request of another DOTS client (section 4.4.1.3)",
                    info,
                ))
            }
            OtherClientOverlap::Accept => {
                Ok(Some(conflict::other_client(ConflictStatus::RequestActive, common, Lifetime::Indefinite)))
            }
        }
    }

    // --------------------------------------------------------- DELETE

    /// DELETE /mitigate/cuid=../mid=.. (section 4.4.4). An enforced
    /// mitigation goes to 5 and stays enforced for the active-but-
    /// terminating period; one that is not enforced (a preconfigured
    /// request at 7 or 8) is removed at once. Always 2.02.
    pub fn delete(&mut self, cuid: &str, mid: u32, now: u64) -> DeleteOutcome {
        let before = self.snapshot();
        let mut events = Vec::new();
        let Some(m) = self.clients.get_mut(cuid).and_then(|c| c.get_mut(&mid)) else {
            return DeleteOutcome { existed: false, events };
        };
        match m.status {
            // Already terminating: a repeated DELETE changes nothing.
            Status::DotsClientWithdrawnMitigation => {}
            s if is_enforced(s) => {
                m.terminating_until_ms = Some(now + u64::from(m.terminating_period_s) * 1000);
                m.hold_until_ms = None;
                set_status(m, Status::DotsClientWithdrawnMitigation, &mut events);
            }
            _ => self.remove(cuid, mid, RemovalReason::Deleted, &mut events),
        }
        self.report_changes(before, &mut events);
        DeleteOutcome { existed: true, events }
    }

    // ------------------------------------------------ status, signal loss

    /// The data plane has the rules of this mitigation: 1 → 2.
    pub fn confirm_enforced(&mut self, cuid: &str, mid: u32) -> Vec<DotsEvent> {
        let mut events = Vec::new();
        if let Some(m) = self.clients.get_mut(cuid).and_then(|c| c.get_mut(&mid)) {
            if m.status == Status::AttackMitigationInProgress {
                set_status(m, Status::AttackSuccessfullyMitigated, &mut events);
            }
        }
        events
    }

    /// For the escalation controller: statuses 1-4 on an active (1-4)
    /// mitigation. 5-8 belong to this state machine. A preconfigured
    /// request set to 3 moves to 8 after the hold (Table 3).
    pub fn set_status(&mut self, cuid: &str, mid: u32, status: Status, now: u64) -> Result<Vec<DotsEvent>, Refusal> {
        let hold = self.policy.status_hold_ms;
        let m = self
            .clients
            .get_mut(cuid)
            .and_then(|c| c.get_mut(&mid))
            .ok_or_else(|| Refusal::not_found(format!("no mitigation with mid {mid} for cuid {cuid}")))?;
        let settable = |s: Status| (1..=4).contains(&s.code());
        if !settable(status) || !settable(m.status) {
            return Err(Refusal::bad_request(format!("cannot move mid {mid} from status {} to {status}", m.status)));
        }
        let mut events = Vec::new();
        let stopped_preconfigured = status == Status::AttackStopped && !m.trigger_mitigation;
        m.hold_until_ms = stopped_preconfigured.then_some(now + hold);
        set_status(m, status, &mut events);
        Ok(events)
    }

    /// The client's session is lost (section 4.7, "The DOTS server can
    /// then trigger preconfigured mitigation requests"): its requests with
    /// 'trigger-mitigation' false become active, and its active requests
    /// that overlap them are withdrawn (7) and removed at once, "the
    /// active-but-terminating period is not observed for mitigations
    /// withdrawn at the initiative of the DOTS server" (4.4.1.3).
    pub fn session_lost(&mut self, cuid: &str, now: u64) -> Vec<DotsEvent> {
        let before = self.snapshot();
        let mut events = Vec::new();
        let Some(client) = self.clients.get_mut(cuid) else { return events };
        let activated: Vec<u32> =
            client.values().filter(|m| !m.trigger_mitigation && !m.is_enforced()).map(|m| m.mid).collect();
        for mid in &activated {
            let m = client.get_mut(mid).expect("listed above");
            m.mitigation_start = Some(now / 1000);
            m.hold_until_ms = None;
            m.activated_by_signal_loss = true;
            set_status(m, Status::AttackMitigationInProgress, &mut events);
        }
        let withdrawn: Vec<u32> = client
            .values()
            .filter(|m| m.trigger_mitigation && m.is_enforced())
            .filter(|m| activated.iter().any(|a| overlaps((*m).into(), (&client[a]).into())))
            .map(|m| m.mid)
            .collect();
        for mid in withdrawn {
            if let Some(m) = self.clients.get_mut(cuid).and_then(|c| c.get_mut(&mid)) {
                set_status(m, Status::AttackMitigationWithdrawn, &mut events);
            }
            self.remove(cuid, mid, RemovalReason::WithdrawnOnSignalLoss, &mut events);
        }
        self.report_changes(before, &mut events);
        events
    }

    /// The session is back. Nothing changes: "the DOTS server MUST NOT
    /// consider the signal channel recovery as a trigger to stop the
    /// mitigation" (4.4.4); mitigations triggered by the loss end by
    /// DELETE, lifetime expiry or a status the controller sets.
    pub fn session_resumed(&mut self, _cuid: &str, _now: u64) -> Vec<DotsEvent> {
        Vec::new()
    }

    // ----------------------------------------------------------- time

    /// Runs every deadline at or before `now`: lifetime expiry ("the
    /// mitigation request is removed", 4.4.1.1) and the end of the active-
    /// but-terminating period ("MUST treat the mitigation as terminated",
    /// 4.4.4) report 6 and remove; the end of a 7/3 hold moves a
    /// preconfigured request to 8 (Table 3).
    pub fn tick(&mut self, now: u64) -> Vec<DotsEvent> {
        let before = self.snapshot();
        let mut events = Vec::new();
        let due: Vec<(String, u32)> =
            self.iter().filter(|m| m.deadline().is_some_and(|d| d <= now)).map(|m| (m.cuid.clone(), m.mid)).collect();
        for (cuid, mid) in due {
            self.run_deadline(&cuid, mid, now, &mut events);
        }
        self.report_changes(before, &mut events);
        events
    }

    fn run_deadline(&mut self, cuid: &str, mid: u32, now: u64, events: &mut Vec<DotsEvent>) {
        let Some(m) = self.clients.get_mut(cuid).and_then(|c| c.get_mut(&mid)) else { return };
        let past = |t: Option<u64>| t.is_some_and(|t| t <= now);
        let reason = if past(m.terminating_until_ms) {
            RemovalReason::Terminated
        } else if past(m.expires_ms) {
            RemovalReason::Expired
        } else {
            // Only the hold is due.
            m.hold_until_ms = None;
            set_status(m, Status::AttackMitigationSignalLoss, events);
            return;
        };
        set_status(m, Status::AttackMitigationTerminated, events);
        self.remove(cuid, mid, reason, events);
    }

    // -------------------------------------------------------- helpers

    fn remove(&mut self, cuid: &str, mid: u32, reason: RemovalReason, events: &mut Vec<DotsEvent>) {
        let Some(client) = self.clients.get_mut(cuid) else { return };
        if client.remove(&mid).is_some() {
            events.push(DotsEvent::Removed { cuid: cuid.to_string(), mid, reason });
        }
        if client.is_empty() {
            self.clients.remove(cuid);
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            enforced: self.enforced().collect(),
            mitigating: self.clients.keys().filter(|c| self.is_mitigating(c)).cloned().collect(),
        }
    }

    /// Appends `EnforcementChanged` and `ActivityChanged` as needed.
    /// Also drops repeated `Changed` events for the same mitigation.
    fn report_changes(&self, before: Snapshot, events: &mut Vec<DotsEvent>) {
        let mut seen = BTreeSet::new();
        events.retain(|e| match e {
            DotsEvent::Changed { cuid, mid } => seen.insert((cuid.clone(), *mid)),
            _ => true,
        });
        let after = self.snapshot();
        let keys = changed_keys(&before.enforced, &after.enforced);
        if !keys.is_empty() {
            events.push(DotsEvent::EnforcementChanged { keys });
        }
        for cuid in before.mitigating.symmetric_difference(&after.mitigating) {
            let mitigating = after.mitigating.contains(cuid);
            events.push(DotsEvent::ActivityChanged { cuid: cuid.clone(), mitigating });
        }
    }
}

/// The (cuid, mid) whose enforced scope differs between two `enforced()`
/// sets: the registry syncs only those.
fn changed_keys(before: &[EnforcedScope], after: &[EnforcedScope]) -> Vec<(String, u32)> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    fn key(s: &EnforcedScope) -> (&str, u32) {
        (s.cuid.as_str(), s.mid)
    }
    fn owned(s: &EnforcedScope) -> (String, u32) {
        (s.cuid.clone(), s.mid)
    }
    // Both come from `enforced()`, in (cuid, mid) order: one merge pass.
    debug_assert!(before.windows(2).chain(after.windows(2)).all(|w| key(&w[0]) < key(&w[1])));
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    loop {
        let ord = match (before.get(i), after.get(j)) {
            (Some(b), Some(a)) => key(b).cmp(&key(a)),
            (Some(_), None) => Less,
            (None, Some(_)) => Greater,
            (None, None) => return out,
        };
        match ord {
            Less => out.push(owned(&before[i])),
            Greater => out.push(owned(&after[j])),
            Equal if before[i] != after[j] => out.push(owned(&after[j])),
            Equal => {}
        }
        i += usize::from(ord != Greater);
        j += usize::from(ord != Less);
    }
}

/// "the DOTS server MUST validate that target prefixes are within the
/// scope of the DOTS client domain" (4.4.1.1). The text names no code for
/// a failure. Section 4.4.1.3 answers the closest case, aliases "not
/// created by the DOTS client", with 4.00, and section 9 keeps 4.01 for a
/// client "not authorized to access the DOTS server" at all; 4.03 is not
/// in the text. So: 4.00, naming the prefix.
fn authorize(client: &ClientCtx, prefixes: &[IpNet]) -> Result<(), Refusal> {
    if prefixes.is_empty() {
        return Err(Refusal::bad_request("the target resolves to no IP address (section 4.4.1.1)"));
    }
    match first_unauthorized(prefixes, &client.allowed) {
        Some(p) => Err(Refusal::bad_request(format!(
            "target prefix {p} is not within the scope of the DOTS client domain {} (section 4.4.1.1)",
            client.domain
        ))),
        None => Ok(()),
    }
}

/// "MUST repeat all the other parameters as sent in the original
/// mitigation request apart from a possible change to the 'lifetime'"
/// (4.4.1.3): the target (order aside) and 'trigger-mitigation'.
fn same_parameters(m: &Mitigation, req: &MitigationRequest) -> bool {
    m.trigger_mitigation == req.trigger_mitigation && normalized(&m.target) == normalized(&req.target)
}

fn normalized(t: &Target) -> Target {
    let mut t = t.clone();
    t.target_prefix.sort_by_key(|p: &IpPrefix| (p.addr, p.len));
    t.target_port_range.sort();
    t.target_protocol.sort();
    t.target_fqdn.iter_mut().for_each(|f| f.make_ascii_lowercase());
    t.target_fqdn.sort();
    t.target_uri.sort();
    t.alias_name.sort();
    t
}

/// "the DOTS server MAY exponentially increase (the base of the exponent
/// is 2) the active-but-terminating period up to a maximum of 300
/// seconds" (4.4.4).
fn doubled(period_s: u32, policy: &TablePolicy) -> u32 {
    period_s.saturating_mul(2).min(policy.terminating_max_s)
}

/// The same 'mid' asked for again during its terminating period: active
/// again (its rules never left the data plane, so 2), and the next
/// terminating period doubles.
fn rerequest_during_terminating(m: &mut Mitigation, policy: &TablePolicy, events: &mut Vec<DotsEvent>) {
    m.terminating_until_ms = None;
    m.terminating_period_s = doubled(m.terminating_period_s, policy);
    set_status(m, Status::AttackSuccessfullyMitigated, events);
}

/// An active preconfigured request overlapped by an immediate one: "the
/// DOTS server withdraws the mitigation request (i.e., status code is set
/// to '7' ...) and transitions the status ... to '8'" (4.4.1.3).
fn withdraw_preconfigured(m: &mut Mitigation, hold_until: u64, events: &mut Vec<DotsEvent>) {
    m.hold_until_ms = Some(hold_until);
    m.activated_by_signal_loss = false;
    set_status(m, Status::AttackMitigationWithdrawn, events);
}

fn set_status(m: &mut Mitigation, status: Status, events: &mut Vec<DotsEvent>) {
    if m.status != status {
        m.status = status;
        events.push(DotsEvent::StatusChanged { cuid: m.cuid.clone(), mid: m.mid, status });
        events.push(changed(m));
    }
}

fn changed(m: &Mitigation) -> DotsEvent {
    DotsEvent::Changed { cuid: m.cuid.clone(), mid: m.mid }
}

fn notify_other_clients(cross: &[CrossConflict], events: &mut Vec<DotsEvent>) {
    for c in cross {
        let info = conflict::other_client(ConflictStatus::RequestActive, c.seen_by_other.clone(), c.remaining);
        events.push(DotsEvent::Conflict { cuid: c.cuid.clone(), mid: c.mid, info });
    }
}

/// The union of several conflict scopes' targets, without duplicates.
fn merge_targets<'a>(targets: impl Iterator<Item = &'a Target>) -> Target {
    let mut out = Target::default();
    for t in targets {
        extend_unique(&mut out.target_prefix, &t.target_prefix);
        extend_unique(&mut out.target_port_range, &t.target_port_range);
        extend_unique(&mut out.target_protocol, &t.target_protocol);
        extend_unique(&mut out.target_fqdn, &t.target_fqdn);
        extend_unique(&mut out.target_uri, &t.target_uri);
        extend_unique(&mut out.alias_name, &t.alias_name);
    }
    out
}

fn extend_unique<T: Clone + PartialEq>(to: &mut Vec<T>, from: &[T]) {
    for x in from {
        if !to.contains(x) {
            to.push(x.clone());
        }
    }
}

/// Orders lifetimes with indefinite as the longest.
fn lifetime_order(l: &Lifetime) -> u64 {
    match l {
        Lifetime::Seconds(s) => u64::from(*s),
        Lifetime::Indefinite => u64::MAX,
    }
}

impl Serialize for MitigationTable {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// Deserialises with the default policy; see [`MitigationTable::set_policy`].
impl<'de> Deserialize<'de> for MitigationTable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::restore(TablePolicy::default(), Vec::<Mitigation>::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests;
