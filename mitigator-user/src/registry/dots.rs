//! The registry's DOTS side: the owner thread holds the [`DotsState`] (the
//! RFC 9132 state machine) next to the local protections. Every enforced
//! DOTS mitigation becomes a [`Protection`] owned by its (cuid, mid), so the
//! same compiler, data plane, counters and status serve both. After each
//! call the state machine's events are applied in order: rows persisted,
//! protections synchronised and applied, then observers told; a reply is
//! sent only after all of that succeeded.

use std::collections::{BTreeMap, BTreeSet};

use dots_proto::signal::{
    Lifetime, MitigationRequest, MitigationScope, ResponseCode, Scope, SignalConfig, Status,
};
use ipnet::IpNet;
use mitigator_common::MAX_PORT_RANGES;
use tokio::sync::broadcast;
use tracing::{info, warn};

use super::{now_unix, Owner_, Protection};
use crate::{
    config::Config,
    dots::{ClientCtx, DotsEvent, DotsPolicy, DotsState, EnforcedScope, PutResponse, Refusal, SessionParams},
    dots::{OtherClientOverlap, TablePolicy},
    protection::{Countermeasure, Owner, PortRange, Protocol, ProtectionSpec},
    store::Store,
};

/// What changed, for the signal-channel sessions (Observe, section 4.4.2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DotsNotice {
    /// A mitigation's status, lifetime or conflict changed, or it is gone.
    Mitigation { cuid: String, mid: u32 },
    /// A client's session configuration changed.
    Config { cuid: String },
    /// A client went from no active mitigation to some, or back: its
    /// session switches between mitigating-config and idle-config.
    Activity { cuid: String, mitigating: bool },
}

/// The answer to a mitigation PUT: its code (none: silently ignored, 4.4.3)
/// and body (Figure 10: mid and granted lifetime, plus conflict-information
/// when another client's request overlaps).
#[derive(Clone, Debug)]
pub struct DotsPutReply {
    pub code: Option<ResponseCode>,
    pub body: Option<MitigationScope>,
}

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(super) fn policy(cfg: &Config) -> DotsPolicy {
    let s = &cfg.signal;
    DotsPolicy {
        mitigation: TablePolicy {
            other_client_overlap: match s.other_client_overlap {
                crate::config::OverlapPolicy::Accept => OtherClientOverlap::Accept,
                crate::config::OverlapPolicy::Reject => OtherClientOverlap::Reject,
            },
            terminating_initial_s: s.terminating_period_s,
            terminating_max_s: s.terminating_max_s,
            ..TablePolicy::default()
        },
        config: config_policy(s),
    }
}

/// The acceptable session-configuration ranges (4.5.2): the defaults of
/// the text, with the heartbeat ranges from `[signal]`.
fn config_policy(s: &crate::config::SignalServerConfig) -> dots_proto::signal::ConfigPolicy {
    use dots_proto::signal::IntParam;
    let mut policy = dots_proto::signal::ConfigPolicy::default();
    let hb = IntParam::range(s.heartbeat_interval.min, s.heartbeat_interval.max, s.heartbeat_interval.default);
    let missing = IntParam::range(s.missing_hb_allowed.min, s.missing_hb_allowed.max, s.missing_hb_allowed.default);
    for set in [&mut policy.acceptable.mitigating_config, &mut policy.acceptable.idle_config] {
        let set = set.get_or_insert_with(dots_proto::signal::ConfigParameters::server_default);
        set.heartbeat_interval = Some(hb);
        set.missing_hb_allowed = Some(missing);
    }
    policy
}

/// The DOTS state as stored (rows and configs), under the config's policy.
pub(super) fn restore(cfg: &Config, store: &Store) -> anyhow::Result<DotsState> {
    let p = policy(cfg);
    let table = crate::dots::MitigationTable::restore(p.mitigation.clone(), store.dots_mitigations()?);
    Ok(DotsState::restore(p, table, store.dots_configs()?))
}

impl Owner_ {
    pub(super) fn dots_put(
        &mut self,
        client: ClientCtx,
        req: MitigationRequest,
        prefixes: Vec<IpNet>,
        if_match: bool,
    ) -> Result<DotsPutReply, Refusal> {
        if req.target.target_port_range.len() > MAX_PORT_RANGES {
            return Err(Refusal::bad_request(format!(
                "target-port-range: {} ranges given; this server enforces at most {MAX_PORT_RANGES} per request",
                req.target.target_port_range.len()
            )));
        }
        // A signal-channel request is a sign of life for the data channel too (RFC 8783 3.5).
        self.dc_touch(&client.cuid);
        // RFC 9133 control happens once, when its 'mid' is created: a repeat
        // of that request (a refresh, or a re-send whose 2.01 was lost) must
        // not undo a change the client made since over the data channel.
        let is_new = self.dots.get_mitigations(&client.cuid, Some(req.mid)).is_err();
        let control = if is_new { self.control_plan(&client.cuid, &req.acl_list)? } else { None };
        let now = now_ms();
        let snapshot = self.dots.clone();
        let outcome = self.dots.put_mitigation(&client, req, prefixes, if_match, now)?;
        // The state machine accepted the request (in memory only so far):
        // now the ACL change, then the mitigation's own effects; a failure
        // of either undoes both.
        let control = control.filter(|_| matches!(outcome.response, PutResponse::Created { .. }));
        if let Some(plan) = &control {
            if let Err(r) = self.control_commit(&client.cuid, plan, false) {
                self.dots = snapshot;
                return Err(r);
            }
            info!(cuid = %client.cuid, acls = %plan.summary, "ACL activation changed over the signal channel (RFC 9133)");
        }
        if let Err(e) = self.dots_effects(outcome.events) {
            self.dots_rollback(snapshot);
            if let Some(plan) = &control {
                if let Err(r) = self.control_commit(&client.cuid, plan, true) {
                    warn!(error = %r, "cannot undo an RFC 9133 ACL change after a failure");
                }
            }
            return Err(internal(e));
        }
        let body = match &outcome.response {
            PutResponse::Created { mitigation, conflict } => Some(reply_scope(mitigation.mid, mitigation.remaining_lifetime(now), conflict.clone())),
            PutResponse::Changed { mitigation } => Some(reply_scope(mitigation.mid, mitigation.remaining_lifetime(now), None)),
            PutResponse::Ignored => None,
        };
        Ok(DotsPutReply { code: outcome.response.code(), body })
    }

    /// GET: the client's mitigations (all, or one), with live counters.
    pub(super) fn dots_get(&mut self, cuid: &str, mid: Option<u32>) -> Result<MitigationScope, Refusal> {
        self.sample_if_stale();
        let now = now_ms();
        let rows: Vec<_> = self.dots.get_mitigations(cuid, mid)?.into_iter().cloned().collect();
        let scopes = rows
            .iter()
            .map(|m| {
                let mut scope = m.to_scope(now);
                self.fill_counters(&mut scope, cuid, m.mid);
                scope
            })
            .collect();
        Ok(MitigationScope { scopes })
    }

    /// bytes-dropped, pkts-dropped, bps-dropped, pps-dropped (section 4.4.2)
    /// from the XDP counters of the mitigation's protection.
    fn fill_counters(&self, scope: &mut Scope, cuid: &str, mid: u32) {
        let Some(p) = self.dots_protection(cuid, mid) else { return };
        let st = self.protection_status(p);
        scope.bytes_dropped = Some(st.dropped.bytes);
        scope.pkts_dropped = Some(st.dropped.packets);
        scope.bps_dropped = Some(st.dropped.bps as u64);
        scope.pps_dropped = Some(st.dropped.pps as u64);
    }

    pub(super) fn dots_delete(&mut self, cuid: &str, mid: u32) -> Result<bool, Refusal> {
        let snapshot = self.dots.clone();
        let outcome = self.dots.delete_mitigation(cuid, mid, now_ms());
        if let Err(e) = self.dots_effects(outcome.events) {
            self.dots_rollback(snapshot);
            return Err(internal(e));
        }
        Ok(outcome.existed)
    }

    pub(super) fn dots_session(&mut self, cuid: &str, up: bool) {
        let now = now_ms();
        if up {
            self.dc_touch(cuid); // a signal-channel session keeps data-channel entries alive (RFC 8783 3.5)
        }
        let events = if up { self.dots.session_resumed(cuid, now) } else { self.dots.session_lost(cuid, now) };
        if !up {
            info!(cuid, "DOTS signal channel session lost");
        }
        if let Err(e) = self.dots_effects(events) {
            warn!(cuid, error = %format!("{e:#}"), "cannot apply the consequences of a session change; will retry at the next tick");
        }
    }

    pub(super) fn dots_config_put(&mut self, cuid: &str, sid: Option<u32>, body: &SignalConfig) -> Result<(ResponseCode, SignalConfig), Refusal> {
        let snapshot = self.dots.clone();
        let outcome = self.dots.put_config(cuid, sid, body, now_ms())?;
        if let Err(e) = self.dots_effects(outcome.events) {
            self.dots_rollback(snapshot);
            return Err(internal(e));
        }
        Ok((outcome.code, outcome.config))
    }

    pub(super) fn dots_config_get(&self, cuid: &str, sid: Option<u32>) -> Result<SignalConfig, Refusal> {
        self.dots.get_config(cuid, sid)
    }

    pub(super) fn dots_config_delete(&mut self, cuid: &str) -> Result<(), Refusal> {
        let events = self.dots.delete_config(cuid);
        self.dots_effects(events).map_err(internal)
    }

    pub(super) fn dots_set_status(&mut self, cuid: &str, mid: u32, status: Status) -> Result<(), Refusal> {
        let snapshot = self.dots.clone();
        let events = self.dots.set_status(cuid, mid, status, now_ms())?;
        if let Err(e) = self.dots_effects(events) {
            self.dots_rollback(snapshot);
            return Err(internal(e));
        }
        Ok(())
    }

    pub(super) fn dots_session_params(&self, cuid: &str) -> SessionParams {
        self.dots.session_params(cuid)
    }

    /// Lifetimes, terminating periods, status holds.
    pub(super) fn dots_tick(&mut self) {
        if self.dots.next_deadline().is_some_and(|d| d <= now_ms()) {
            let events = self.dots.tick(now_ms());
            if let Err(e) = self.dots_effects(events) {
                warn!(error = %format!("{e:#}"), "cannot apply DOTS lifetimes; will retry");
            }
        }
    }

    /// Persists, enforces and announces what a state-machine call changed.
    /// Enforcing new mitigations moves them from status 1 to 2, whose
    /// events go through here again.
    pub(super) fn dots_effects(&mut self, events: Vec<DotsEvent>) -> anyhow::Result<()> {
        let mut pending = events;
        while !pending.is_empty() {
            let events = std::mem::take(&mut pending);
            self.persist_dots(&events)?;
            let changed: Vec<(String, u32)> = events
                .iter()
                .filter_map(|e| match e {
                    DotsEvent::EnforcementChanged { keys } => Some(keys.iter().cloned()),
                    _ => None,
                })
                .flatten()
                .collect();
            if !changed.is_empty() {
                self.sync_dots_keys(&changed)?;
                for m in self.dots.mitigations.iter().filter(|m| m.status == Status::AttackMitigationInProgress).map(|m| (m.cuid.clone(), m.mid)).collect::<Vec<_>>() {
                    pending.extend(self.dots.confirm_enforced(&m.0, m.1));
                }
            }
            self.announce(&events);
        }
        Ok(())
    }

    fn persist_dots(&self, events: &[DotsEvent]) -> anyhow::Result<()> {
        for e in events {
            match e {
                DotsEvent::Changed { cuid, mid } | DotsEvent::StatusChanged { cuid, mid, .. } => {
                    if let Some(m) = self.dots.mitigations.mitigation(cuid, *mid) {
                        self.store.put_dots_mitigation(m)?;
                    }
                }
                DotsEvent::Removed { cuid, mid, .. } => self.store.remove_dots_mitigation(cuid, *mid)?,
                DotsEvent::ConfigChanged { .. } => self.store.put_dots_configs(&self.dots.configs)?,
                DotsEvent::Conflict { .. } | DotsEvent::EnforcementChanged { .. } | DotsEvent::ActivityChanged { .. } => {}
            }
        }
        Ok(())
    }

    fn announce(&self, events: &[DotsEvent]) {
        for e in events {
            let notice = match e {
                DotsEvent::StatusChanged { cuid, mid, .. }
                | DotsEvent::Changed { cuid, mid }
                | DotsEvent::Removed { cuid, mid, .. }
                | DotsEvent::Conflict { cuid, mid, .. } => DotsNotice::Mitigation { cuid: cuid.clone(), mid: *mid },
                DotsEvent::ConfigChanged { cuid } => DotsNotice::Config { cuid: cuid.clone() },
                DotsEvent::ActivityChanged { cuid, mitigating } => DotsNotice::Activity { cuid: cuid.clone(), mitigating: *mitigating },
                DotsEvent::EnforcementChanged { .. } => continue,
            };
            // No receiver (no session running) is fine.
            let _ = self.notices.send(notice);
        }
    }

    /// Restores the state machine and its rows after a failed call.
    fn dots_rollback(&mut self, snapshot: DotsState) {
        self.dots = snapshot;
        let rows: Vec<_> = self.dots.mitigations.iter().cloned().collect();
        for m in &rows {
            if let Err(e) = self.store.put_dots_mitigation(m) {
                warn!(error = %e, "cannot restore a DOTS row after a failure");
            }
        }
        if let Err(e) = self.sync_dots_protections() {
            warn!(error = %format!("{e:#}"), "cannot restore the data plane after a failure");
        }
    }

    fn dots_protection(&self, cuid: &str, mid: u32) -> Option<&Protection> {
        self.protections.values().find(|p| matches!(&p.owner, Owner::Dots { cuid: c, mid: m } if c == cuid && *m == mid))
    }

    /// Makes the DOTS-owned protections equal the enforced set, durably,
    /// and applies the result to the data plane. Every mitigation is
    /// compared: for a start, a rollback, and the tick's check.
    pub(super) fn sync_dots_protections(&mut self) -> anyhow::Result<()> {
        let stale = self.stale_dots_keys();
        self.sync_dots_keys(&stale)
    }

    /// The (cuid, mid) whose DOTS-owned protection differs from the
    /// enforced set (missing, left over, or another scope).
    pub(super) fn stale_dots_keys(&self) -> Vec<(String, u32)> {
        let wanted: BTreeMap<(String, u32), EnforcedScope> = self.dots.enforced().map(|s| ((s.cuid.clone(), s.mid), s)).collect();
        let mut stale = Vec::new();
        let mut have = BTreeSet::new();
        for p in self.protections.values() {
            if let Owner::Dots { cuid, mid } = &p.owner {
                let key = (cuid.clone(), *mid);
                if !wanted.get(&key).is_some_and(|s| self.dots_spec(s) == p.spec) {
                    stale.push(key.clone());
                }
                have.insert(key);
            }
        }
        stale.extend(wanted.into_keys().filter(|k| !have.contains(k)));
        stale
    }

    /// The tick's check that the changes named by the state machine were
    /// all there was. Anything else out of step (a session or lifetime
    /// change that failed half-way and is not rolled back, or a bug) is
    /// fixed and told.
    pub(super) fn check_dots_protections(&mut self) {
        let stale = self.stale_dots_keys();
        if stale.is_empty() {
            return;
        }
        warn!(mitigations = ?stale, "DOTS protections out of step with the enforced mitigations (after a change that failed half-way, or a bug); syncing them");
        if let Err(e) = self.sync_dots_keys(&stale) {
            warn!(error = %format!("{e:#}"), "cannot sync the DOTS protections; will retry");
        }
    }

    /// Syncs the DOTS-owned protections of `keys` (the state machine names
    /// the mitigations whose enforced scope changed) and applies the result:
    /// work in proportion to the change, not to the number of mitigations.
    pub(super) fn sync_dots_keys(&mut self, keys: &[(String, u32)]) -> anyhow::Result<()> {
        // Removals first, as their slots may be taken by the additions.
        for removals in [true, false] {
            for (cuid, mid) in keys {
                let wanted = self.dots.mitigations.mitigation(cuid, *mid).filter(|m| m.is_enforced()).map(EnforcedScope::of);
                if wanted.is_none() != removals {
                    continue;
                }
                let current = self.dots_protection(cuid, *mid).map(|p| p.id);
                self.sync_dots_one(cuid, *mid, wanted.as_ref(), current)?;
            }
        }
        self.apply()
    }

    /// Makes the protection of one DOTS mitigation match `wanted` (none:
    /// not enforced), durably; `current` is its protection now.
    fn sync_dots_one(&mut self, cuid: &str, mid: u32, wanted: Option<&EnforcedScope>, current: Option<u32>) -> anyhow::Result<()> {
        let Some(scope) = wanted else {
            if let Some(id) = current {
                self.store.remove_protection(id)?;
                self.protections.remove(&id);
            }
            return Ok(());
        };
        let spec = self.dots_spec(scope);
        match current {
            Some(id) if self.protections[&id].spec == spec => {}
            Some(id) => {
                let p = Protection { spec, ..self.protections[&id].clone() };
                self.store.put_protection(&p)?;
                self.protections.insert(id, p);
            }
            None => {
                let id = self.allocate_id().map_err(|e| anyhow::anyhow!("{e}"))?;
                let countermeasures = self.dots_countermeasures(&spec);
                let p = Protection {
                    id,
                    owner: Owner::Dots { cuid: cuid.to_string(), mid },
                    spec,
                    countermeasures,
                    created_unix: now_unix(),
                    expires_unix: None, // the DOTS state machine owns the lifetime
                };
                self.store.put_protection(&p)?;
                self.dp().reset_target_stats(id)?;
                self.rates.forget(id);
                self.protections.insert(id, p);
            }
        }
        Ok(())
    }

    fn dots_spec(&self, s: &EnforcedScope) -> ProtectionSpec {
        let mut prefixes = s.prefixes.clone();
        prefixes.sort();
        prefixes.dedup();
        ProtectionSpec {
            prefixes,
            protocols: s.protocols.iter().map(|p| Protocol(*p)).collect(),
            ports: s.ports.iter().map(|r| PortRange { lo: *r.start(), hi: *r.end() }).collect(),
            countermeasures: Vec::new(),
            profile: Some(self.dots_profile(s).to_string()),
            lifetime: None,
        }
    }

    /// The countermeasure profile of a DOTS mitigation: the first matching
    /// `signal.profile_rules` entry, else `signal.profile`.
    fn dots_profile(&self, s: &EnforcedScope) -> &str {
        let sig = &self.cfg.signal;
        let rule = sig.profile_rules.iter().find(|r| {
            let prefix_ok = r.prefixes.is_empty() || s.prefixes.iter().any(|p| r.prefixes.iter().any(|rp| rp.contains(p)));
            let proto_ok = r.protocols.is_empty() || s.protocols.iter().any(|p| r.protocols.contains(&Protocol(*p)));
            let port_ok = r.ports.is_empty() || s.ports.iter().any(|range| r.ports.iter().any(|port| range.contains(port)));
            prefix_ok && proto_ok && port_ok
        });
        rule.map(|r| r.profile.as_str()).unwrap_or(&sig.profile)
    }

    fn dots_countermeasures(&self, spec: &ProtectionSpec) -> Vec<Countermeasure> {
        let name = spec.profile.as_deref().unwrap_or("default");
        let cms = self.cfg.profile(name).or_else(|| self.cfg.profile("default")).map(|p| p.countermeasures.clone());
        // A DOTS request is not refused for what the host lacks: the
        // profile's syn-proxy is left out (the daemon warned at start).
        cms.unwrap_or_default()
            .into_iter()
            .filter(|c| self.syn_proxy_ok.is_ok() || *c != Countermeasure::SynProxy)
            .collect()
    }
}

fn reply_scope(mid: u32, lifetime: Lifetime, conflict: Option<dots_proto::signal::ConflictInformation>) -> MitigationScope {
    MitigationScope {
        scopes: vec![Scope { mid: Some(mid), lifetime: Some(lifetime), conflict_information: conflict, ..Scope::default() }],
    }
}

fn internal(e: anyhow::Error) -> Refusal {
    warn!(error = %format!("{e:#}"), "DOTS request failed inside the server");
    Refusal::new(ResponseCode::new(5, 0), format!("internal error: {e:#}; the request was not applied"))
}

pub(super) type Notices = broadcast::Sender<DotsNotice>;
