//! The escalation controller (issue 5, DESIGN.md): measured inbound load
//! per protected target (the XDP program counts every packet toward it,
//! passed + dropped) against the host's configured capacity; with
//! hysteresis ([`super::detector`]) it asks upstream for help along the
//! multihoming chains ([`super::multihoming`], [`super::leg`]), reports
//! status 4 'attack-exceeded-capability' to the downstream DOTS client of
//! the mitigation (RFC 9132 Table 3), sends efficacy updates while the
//! upstream mitigation is active (4.4.3), and withdraws (4.4.4) once the
//! attack is over.
//!
//! One task: a tick at the registry's sampling interval reads the status,
//! feeds the detectors and starts whatever the legs ask for; requests run
//! as separate jobs so that a silent server never delays other targets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dots_proto::signal::{AttackStatus, IpPrefix, Lifetime, PortRange, Scope, Status};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{info, warn};

use super::detector::{Detector, Load, Phase, Thresholds, Transition};
use super::leg::{Action, Leg};
use super::multihoming::{chains, Domain};
use super::report::{EscalationReport, TargetReport};
use super::upstream::Upstreams;
use crate::client_dots::{ClientError, MitigationSpec};
use crate::config::{Config, EscalationConfig};
use crate::protection::Owner;
use crate::registry::{ProtectionStatus, Registry};

/// The running controller; dropping it stops the task.
pub struct Escalation {
    task: JoinHandle<()>,
}

impl Drop for Escalation {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the controller; with `escalation.enabled` false it only reports
/// the upstream sessions (for the gateway).
pub fn start(cfg: &Config, registry: Registry, upstreams: Arc<Upstreams>) -> Escalation {
    let c = Controller {
        cfg: cfg.escalation.clone(),
        th: Thresholds::from_config(&cfg.escalation),
        domains: cfg.upstream.iter().map(Domain::from).collect(),
        tick: Duration::from_millis(cfg.dataplane.stats_interval_ms),
        registry,
        upstreams,
        targets: BTreeMap::new(),
        next_leg: 1,
    };
    info!(
        enabled = c.cfg.enabled, high_pps = c.th.high.pps, high_bps = c.th.high.bps, low_pps = c.th.low.pps, low_bps = c.th.low.bps,
        hold_up = ?c.th.hold_up, hold_down = ?c.th.hold_down, "escalation controller running"
    );
    Escalation { task: tokio::spawn(c.run()) }
}

/// The targets no longer present as they were seen: removed, or their id
/// given to another protection (an id is reused as soon as it is free, so
/// `unprotect` then `protect` within one tick hands the new prefixes the
/// old id), or their scope changed. Their legs are withdrawn; a protection
/// present under such an id starts afresh, with its own prefixes.
fn gone(targets: &BTreeMap<u32, Target>, present: &[ProtectionStatus]) -> Vec<u32> {
    targets
        .iter()
        .filter(|(id, t)| {
            !present.iter().any(|p| p.protection.id == **id && p.protection.owner == t.owner && p.protection.spec == t.spec)
        })
        .map(|(id, _)| *id)
        .collect()
}

struct Target {
    owner: Owner,
    spec: crate::protection::ProtectionSpec,
    detector: Detector,
    load: Load,
    legs: Vec<Leg>,
    /// Status 4 was reported to the downstream client.
    reported_exceeded: bool,
}

/// What a finished job reports.
enum Done {
    Requested { leg: u64, server: String, outcome: Result<u32, ClientError> },
    Polled { leg: u64, outcome: Result<Vec<Scope>, ClientError> },
    Efficacy { leg: u64, sent: AttackStatus, outcome: Result<(), ClientError> },
    Withdrawn { leg: u64, outcome: Result<(), ClientError> },
}

struct Controller {
    cfg: EscalationConfig,
    th: Thresholds,
    domains: Vec<Domain>,
    tick: Duration,
    registry: Registry,
    upstreams: Arc<Upstreams>,
    targets: BTreeMap<u32, Target>,
    next_leg: u64,
}

impl Controller {
    async fn run(mut self) {
        let mut jobs: JoinSet<Done> = JoinSet::new();
        let mut tick = tokio::time::interval(self.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    self.on_tick(&mut jobs).await;
                    self.publish();
                }
                Some(done) = jobs.join_next(), if !jobs.is_empty() => {
                    if let Ok(done) = done {
                        self.on_done(done, &mut jobs);
                    }
                }
            }
        }
    }

    async fn on_tick(&mut self, jobs: &mut JoinSet<Done>) {
        let status = match self.registry.status().await {
            Ok(s) => s,
            Err(e) => return warn!(error = %e, "escalation: cannot read the registry's status"),
        };
        let now = Instant::now();
        if !self.cfg.enabled {
            return; // sessions only (gateway mode): nothing is escalated
        }
        self.forget_removed(&status.protections, now, jobs);
        for p in &status.protections {
            let id = p.protection.id;
            let t = self.targets.entry(id).or_insert_with(|| Target {
                owner: p.protection.owner.clone(),
                spec: p.protection.spec.clone(),
                detector: Detector::default(),
                load: Load::default(),
                legs: Vec::new(),
                reported_exceeded: false,
            });
            // Inbound load toward the target: what passed plus what XDP dropped.
            t.load = Load { pps: p.passed.pps + p.dropped.pps, bps: p.passed.bps + p.dropped.bps };
            let upstream = t.legs.iter().map(Leg::dropping).fold(Load::default(), |a, (pps, bps)| a.plus(Load { pps, bps }));
            match t.detector.observe(&self.th, now, t.load.plus(upstream)) {
                Some(Transition::Escalate) => self.escalate(id, now).await,
                Some(Transition::Withdraw) => self.withdraw(id, now).await,
                None => {}
            }
        }
        self.drive(now, jobs);
    }

    /// Protections that were removed: their upstream mitigations go too.
    fn forget_removed(&mut self, present: &[ProtectionStatus], now: Instant, jobs: &mut JoinSet<Done>) {
        for id in gone(&self.targets, present) {
            let t = self.targets.remove(&id).expect("listed");
            for mut leg in t.legs {
                leg.withdraw(now);
                if let Some(Action::Withdraw { server, mid }) = leg.due(now) {
                    info!(protection = id, %server, mid, "protection removed: withdrawing its upstream mitigation");
                    let up = self.upstreams.clone();
                    jobs.spawn(async move { Done::Withdrawn { leg: 0, outcome: withdraw(&up, &server, mid).await } });
                }
            }
        }
    }

    async fn escalate(&mut self, id: u32, now: Instant) {
        let retry = (Duration::from_millis(self.cfg.retry_min_ms), Duration::from_millis(self.cfg.retry_max_ms));
        let poll = Duration::from_millis(self.cfg.efficacy_interval_ms);
        let t = self.targets.get_mut(&id).expect("present");
        let chains = chains(&self.domains, &t.spec.prefixes);
        info!(
            protection = id, prefixes = ?t.spec.prefixes, load_pps = t.load.pps, load_bps = t.load.bps,
            servers = ?chains.iter().map(|c| c.servers.clone()).collect::<Vec<_>>(),
            "load above the host's capacity: asking upstream for help"
        );
        if chains.is_empty() {
            warn!(protection = id, "no upstream server for this target: nobody to ask");
        }
        t.legs = chains
            .into_iter()
            .map(|c| {
                self.next_leg += 1;
                Leg::new(self.next_leg, c, now, retry, poll)
            })
            .collect();
        // Table 3, status 4: "Attack has exceeded the mitigation provider capability".
        if let Owner::Dots { cuid, mid } = t.owner.clone() {
            match self.registry.dots_set_status(&cuid, mid, Status::AttackExceededCapability).await {
                Ok(()) => t.reported_exceeded = true,
                Err(e) => warn!(%cuid, mid, error = %e.diagnostic, "cannot report status 4 downstream"),
            }
        }
    }

    async fn withdraw(&mut self, id: u32, now: Instant) {
        let t = self.targets.get_mut(&id).expect("present");
        info!(protection = id, load_pps = t.load.pps, "attack over: withdrawing the upstream mitigations");
        t.legs.iter_mut().for_each(|l| l.withdraw(now));
        if let (true, Owner::Dots { cuid, mid }) = (t.reported_exceeded, t.owner.clone()) {
            t.reported_exceeded = false;
            // Back to what this host achieves alone.
            if let Err(e) = self.registry.dots_set_status(&cuid, mid, Status::AttackSuccessfullyMitigated).await {
                warn!(%cuid, mid, error = %e.diagnostic, "cannot clear status 4 downstream");
            }
        }
    }

    /// Starts every action the legs want now.
    fn drive(&mut self, now: Instant, jobs: &mut JoinSet<Done>) {
        let lifetime = Lifetime::Seconds(self.cfg.lifetime_s);
        for (id, t) in &mut self.targets {
            for leg in &mut t.legs {
                let Some(action) = leg.due(now) else { continue };
                let (up, lid) = (self.upstreams.clone(), leg.id);
                match action {
                    Action::Request { server } => {
                        let spec = upstream_spec(&leg.chain.prefixes, &t.spec, lifetime);
                        info!(protection = id, %server, prefixes = ?leg.chain.prefixes, pa = leg.chain.pa, "requesting mitigation upstream");
                        jobs.spawn(async move {
                            let outcome = request(&up, &server, &spec).await;
                            Done::Requested { leg: lid, server, outcome }
                        });
                    }
                    Action::Poll { server, mid } => {
                        jobs.spawn(async move {
                            let outcome = match up.client(&server) {
                                Ok(c) => c.status(Some(mid)).await,
                                Err(e) => Err(e),
                            };
                            Done::Polled { leg: lid, outcome }
                        });
                    }
                    Action::Withdraw { server, mid } => {
                        jobs.spawn(async move { Done::Withdrawn { leg: lid, outcome: withdraw(&up, &server, mid).await } });
                    }
                }
            }
        }
    }

    fn leg(&mut self, id: u64) -> Option<(&mut Leg, Load)> {
        self.targets.values_mut().find_map(|t| {
            let load = t.load;
            t.legs.iter_mut().find(|l| l.id == id).map(|l| (l, load))
        })
    }

    fn on_done(&mut self, done: Done, jobs: &mut JoinSet<Done>) {
        let now = Instant::now();
        let th = self.th;
        let ups = self.upstreams.clone();
        match done {
            Done::Requested { leg, server, outcome } => {
                let Some((l, _)) = self.leg(leg) else {
                    return withdraw_orphan(&ups, &server, outcome, jobs);
                };
                match &outcome {
                    Ok(mid) => info!(%server, mid, prefixes = ?l.chain.prefixes, "upstream accepted the mitigation request"),
                    Err(e) => warn!(%server, error = %e, prefixes = ?l.chain.prefixes, "upstream could not help; trying the next server"),
                }
                if l.state != super::leg::LegState::Requesting {
                    if let Ok(mid) = outcome {
                        // Withdrawn while the request was in flight.
                        let up = ups.clone();
                        jobs.spawn(async move { Done::Withdrawn { leg: 0, outcome: withdraw(&up, &server, mid).await } });
                    }
                    l.busy = false;
                    return;
                }
                l.requested(now, &server, outcome);
            }
            Done::Polled { leg, outcome } => {
                let Some((l, local)) = self.leg(leg) else { return };
                l.polled(now, outcome);
                // Efficacy update (4.4.3): what still reaches the host says
                // whether the upstream mitigation works.
                let want = if th.below_low(local) { AttackStatus::AttackSuccessfullyMitigated } else { AttackStatus::UnderAttack };
                if l.state == super::leg::LegState::Active && l.attack_status != Some(want) {
                    let (Some(server), Some(mid)) = (l.server.clone(), l.mid) else { return };
                    l.busy = true;
                    let up = ups.clone();
                    info!(%server, mid, attack_status = %want, "efficacy update");
                    jobs.spawn(async move {
                        let outcome = match up.client(&server) {
                            Ok(c) => c.efficacy(mid, want).await,
                            Err(e) => Err(e),
                        };
                        Done::Efficacy { leg, sent: want, outcome }
                    });
                }
            }
            Done::Efficacy { leg, sent, outcome } => {
                let Some((l, _)) = self.leg(leg) else { return };
                l.busy = false;
                match outcome {
                    Ok(()) => l.efficacy_sent(sent),
                    Err(e) => warn!(error = %e, "efficacy update failed; will retry at the next poll"),
                }
            }
            Done::Withdrawn { leg, outcome } => {
                if let Err(e) = &outcome {
                    warn!(error = %e, "withdrawing an upstream mitigation failed");
                }
                if let Some((l, _)) = self.leg(leg) {
                    info!(server = ?l.server, mid = ?l.mid, ok = outcome.is_ok(), "upstream mitigation withdrawn");
                    l.withdrawn(now, outcome);
                }
            }
        }
    }

    fn publish(&self) {
        let targets = self
            .targets
            .iter()
            .filter(|(_, t)| !t.legs.is_empty() || t.detector.phase != Phase::Normal)
            .map(|(id, t)| TargetReport {
                protection: *id,
                phase: match t.detector.phase {
                    Phase::Normal => "normal",
                    Phase::Rising(_) => "rising",
                    Phase::Escalated => "escalated",
                    Phase::Falling(_) => "falling",
                }
                .into(),
                load_pps: t.load.pps,
                load_bps: t.load.bps,
                legs: t.legs.iter().map(Leg::report).collect(),
            })
            .collect();
        self.registry.set_escalation(EscalationReport { targets, upstreams: self.upstreams.report() });
    }
}

/// A request granted after its leg was dropped (protection removed).
fn withdraw_orphan(up: &Arc<Upstreams>, server: &str, outcome: Result<u32, ClientError>, jobs: &mut JoinSet<Done>) {
    if let Ok(mid) = outcome {
        let (up, server) = (up.clone(), server.to_string());
        jobs.spawn(async move { Done::Withdrawn { leg: 0, outcome: withdraw(&up, &server, mid).await } });
    }
}

async fn request(up: &Upstreams, server: &str, spec: &MitigationSpec) -> Result<u32, ClientError> {
    let client = up.client(server)?;
    Ok(client.mitigate(spec).await?.mid)
}

async fn withdraw(up: &Upstreams, server: &str, mid: u32) -> Result<(), ClientError> {
    up.client(server)?.withdraw(mid).await
}

/// The upstream request: the leg's prefixes with the protection's
/// protocols and ports (the same scope, 4.4.1.1).
fn upstream_spec(prefixes: &[ipnet::IpNet], spec: &crate::protection::ProtectionSpec, lifetime: Lifetime) -> MitigationSpec {
    let prefixes = prefixes.iter().filter_map(|p| IpPrefix::new(p.network(), p.prefix_len())).collect();
    MitigationSpec::prefixes(prefixes)
        .with_protocols(spec.protocols.iter().map(|p| p.0).collect())
        .with_ports(
            spec.ports.iter().map(|r| PortRange { lower_port: r.lo, upper_port: (r.hi != r.lo).then_some(r.hi) }).collect(),
        )
        .with_lifetime(lifetime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        protection::ProtectionSpec,
        registry::{Protection, ProtectionStatus},
    };

    fn spec(prefix: &str) -> ProtectionSpec {
        ProtectionSpec {
            prefixes: vec![prefix.parse().unwrap()],
            protocols: vec![],
            ports: vec![],
            countermeasures: vec![],
            profile: None,
            lifetime: None,
        }
    }

    fn present(id: u32, prefix: &str) -> ProtectionStatus {
        ProtectionStatus {
            protection: Protection {
                id,
                owner: Owner::Local,
                spec: spec(prefix),
                countermeasures: vec![],
                created_unix: 0,
                expires_unix: None,
            },
            passed: Default::default(),
            dropped: Default::default(),
            drop_reasons: Default::default(),
            dots: None,
        }
    }

    fn target(prefix: &str) -> Target {
        Target {
            owner: Owner::Local,
            spec: spec(prefix),
            detector: Detector::default(),
            load: Load::default(),
            legs: vec![],
            reported_exceeded: false,
        }
    }

    #[test]
    fn an_id_given_to_another_protection_is_a_new_target() {
        let targets: BTreeMap<u32, Target> = [(3, target("198.51.100.0/24")), (4, target("203.0.113.7/32"))].into();
        // 3 kept as it was; 4 removed and its id reused for other prefixes
        // within one tick (`unprotect` then `protect`).
        let now = [present(3, "198.51.100.0/24"), present(4, "192.0.2.0/24")];
        assert_eq!(gone(&targets, &now), vec![4]);
        assert_eq!(gone(&targets, &now[..1]), vec![4]);
        assert!(gone(&targets, &[present(3, "198.51.100.0/24"), present(4, "203.0.113.7/32")]).is_empty());
    }
}
