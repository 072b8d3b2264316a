//! Gateway mode: the daemon as a client-domain DOTS gateway (RFC 9132
//! section 2 and 4.4.1; RFC 9284 5.2-5.3). Downstream mitigation requests
//! for prefixes an upstream manages are relayed upstream, and the
//! upstream's view (status, drop counters) is relayed back to the
//! downstream client's GET and Observe; other requests are mitigated here
//! or refused, as `[gateway] others` says.
//!
//! Identifiers (RFC 9132 4.4.1.1-4.4.1.2):
//! - 'cuid' is rewritten: upstream, the request carries the gateway's own
//!   cuid (from its credential with that server) and a fresh 'mid' from the
//!   gateway's state file. "DOTS gateways MAY rewrite the 'cuid' used by
//!   peer DOTS clients", and "Client-domain DOTS gateways MUST handle 'cuid'
//!   collision directly": downstream cuids never reach the upstream server,
//!   so they cannot collide there. The (cuid, mid) ↔ (server, mid) map is
//!   kept here.
//! - No 'cdid': it is inserted by server-domain gateways only; "The 'cdid'
//!   attribute MUST NOT be generated and included by DOTS clients" and
//!   servers "MUST ignore 'cdid' attributes ... supplied by ... client-domain
//!   DOTS gateways". A downstream 'cdid' is already refused by routing.
//!
//! Which servers (RFC 9284 5.3): "it MUST check whether the request is to be
//! forwarded upstream (if the target IP prefix is managed by the upstream
//! server) or rejected"; PA prefixes go to their owner (then its configured
//! fallbacks), PI prefixes (`relay_prefixes`) to every server ("SHOULD send
//! mitigation requests to all its DOTS servers", 5.2).
//!
//! A relayed request is also recorded (and enforced) locally, as any DOTS
//! mitigation of this server: that record carries the lifetime, DELETE and
//! Observe for the downstream client; its status and counters are overlaid
//! with the upstream's.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dots_proto::coap::Code;
use dots_proto::signal::{MitigationRequest, Scope};
use ipnet::IpNet;
use tracing::{info, warn};

use crate::client_dots::{ClientError, MitigationSpec};
use crate::config::{Config, GatewayOthers};
use crate::escalation::multihoming::{chains, managed, Chain, Domain};
use crate::escalation::Upstreams;
use crate::registry::Registry;
use crate::signal::reply::Reply;

/// What to do with a downstream request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Relay(Vec<Chain>),
    Local,
    Reject(String),
}

/// One relayed mitigation: where it went upstream and what the upstream
/// last said about it.
#[derive(Debug, Clone)]
struct Relayed {
    spec: MitigationSpec,
    /// (server, upstream mid) per chain that accepted.
    legs: Vec<(String, u32)>,
    /// The upstream's last view per leg.
    views: Vec<Option<Scope>>,
}

pub struct Gateway {
    domains: Vec<Domain>,
    relay_pi: Vec<IpNet>,
    others: GatewayOthers,
    upstreams: Arc<Upstreams>,
    registry: Registry,
    relayed: Mutex<BTreeMap<(String, u32), Relayed>>,
}

impl Gateway {
    pub fn new(cfg: &Config, upstreams: Arc<Upstreams>, registry: Registry) -> Arc<Gateway> {
        let gw = Arc::new(Gateway {
            domains: cfg.upstream.iter().map(Domain::from).collect(),
            relay_pi: cfg.gateway.relay_prefixes.clone(),
            others: cfg.gateway.others,
            upstreams,
            registry,
            relayed: Mutex::default(),
        });
        tokio::spawn(poll_upstreams(Arc::downgrade(&gw), Duration::from_millis(cfg.gateway.poll_interval_ms)));
        gw
    }

    /// Relay, handle here, or refuse (all prefixes must agree: a request
    /// half relayed and half local could not report one status).
    pub fn decide(&self, prefixes: &[IpNet]) -> Decision {
        decide(&self.domains, &self.relay_pi, self.others, prefixes)
    }

    /// Relays a PUT (new request, refresh or efficacy update) before it is
    /// recorded locally; Err is the answer to send downstream instead.
    pub async fn relay_put(&self, cuid: &str, req: &MitigationRequest, chains: Vec<Chain>) -> Result<(), Reply> {
        let key = (cuid.to_string(), req.mid);
        let existing = self.relayed.lock().unwrap().get(&key).cloned();
        if let Some(r) = existing {
            return self.relay_update(&r, req).await;
        }
        if req.attack_status.is_some() {
            return Ok(()); // an efficacy update of nothing relayed: the local record answers 4.04
        }
        let spec = spec_of(req);
        let mut legs = Vec::new();
        let mut errors: Vec<(String, ClientError)> = Vec::new();
        for chain in chains {
            for server in &chain.servers {
                match self.mitigate(server, &spec).await {
                    Ok(mid) => {
                        info!(%cuid, mid = req.mid, %server, upstream_mid = mid, "relayed a downstream mitigation request upstream");
                        legs.push((server.clone(), mid));
                        break;
                    }
                    Err(e) => {
                        warn!(%cuid, mid = req.mid, %server, error = %e, "upstream could not take the relayed request");
                        errors.push((server.clone(), e));
                    }
                }
            }
        }
        if legs.is_empty() {
            return Err(refusal_from(errors));
        }
        let views = vec![None; legs.len()];
        self.relayed.lock().unwrap().insert(key, Relayed { spec, legs, views });
        Ok(())
    }

    async fn mitigate(&self, server: &str, spec: &MitigationSpec) -> Result<u32, ClientError> {
        Ok(self.upstreams.client(server)?.mitigate(spec).await?.mid)
    }

    /// A refresh (same 'mid', 4.4.1) or an efficacy update (4.4.3) of a
    /// relayed mitigation goes to the same upstream mitigations.
    async fn relay_update(&self, r: &Relayed, req: &MitigationRequest) -> Result<(), Reply> {
        for (server, mid) in &r.legs {
            let client = self.upstreams.client(server).map_err(|e| unavailable(server, &e))?;
            let outcome = match req.attack_status {
                Some(a) => client.efficacy_for(*mid, &r.spec, a).await,
                None => client.mitigate_as(*mid, &spec_of(req)).await.map(|_| ()),
            };
            if let Err(e) = outcome {
                warn!(%server, mid, error = %e, "relaying an update upstream failed");
            }
        }
        Ok(())
    }

    /// DELETE downstream: withdraw upstream too (4.4.4).
    pub async fn relay_delete(&self, cuid: &str, mid: u32) {
        let Some(r) = self.relayed.lock().unwrap().remove(&(cuid.to_string(), mid)) else { return };
        withdraw_all(&self.upstreams, &r).await;
    }

    /// Overlays the upstream's status and drop counters on the local view
    /// of relayed mitigations (GET and Observe notifications, 4.4.2).
    pub fn overlay(&self, cuid: &str, scopes: &mut [Scope]) {
        let relayed = self.relayed.lock().unwrap();
        for s in scopes.iter_mut() {
            let Some(r) = s.mid.and_then(|mid| relayed.get(&(cuid.to_string(), mid))) else { continue };
            let views: Vec<&Scope> = r.views.iter().flatten().collect();
            // The best status any upstream reports (2 beats 1 beats 4 ...):
            // the lowest code among 1-4, else the first one's.
            if let Some(st) = views.iter().filter_map(|v| v.status).min_by_key(|st| (st.code() > 4, st.code() == 4, st.code())) {
                s.status = Some(st);
            }
            let sum = |f: fn(&Scope) -> Option<u64>| views.iter().filter_map(|v| f(v)).sum::<u64>();
            let add = |local: Option<u64>, up: u64| Some(local.unwrap_or(0) + up);
            s.bytes_dropped = add(s.bytes_dropped, sum(|v| v.bytes_dropped));
            s.pkts_dropped = add(s.pkts_dropped, sum(|v| v.pkts_dropped));
            s.bps_dropped = add(s.bps_dropped, sum(|v| v.bps_dropped));
            s.pps_dropped = add(s.pps_dropped, sum(|v| v.pps_dropped));
        }
    }

    /// Reads every relayed mitigation's upstream view; notifies downstream
    /// observers of changes; withdraws upstream what ended downstream
    /// (lifetime expired, removed).
    async fn poll_once(&self) {
        let entries: Vec<((String, u32), Relayed)> =
            self.relayed.lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for ((cuid, mid), r) in entries {
            let gone = match self.registry.dots_get(&cuid, Some(mid)).await {
                Ok(m) => m.scopes.first().and_then(|s| s.status).is_some_and(|st| st.code() >= 6),
                Err(_) => true,
            };
            if gone {
                info!(%cuid, mid, "downstream mitigation ended: withdrawing it upstream");
                self.relayed.lock().unwrap().remove(&(cuid.clone(), mid));
                withdraw_all(&self.upstreams, &r).await;
                continue;
            }
            let mut views = Vec::new();
            for (server, up_mid) in &r.legs {
                let view = match self.upstreams.client(server) {
                    Ok(c) => c.status(Some(*up_mid)).await.ok().and_then(|v| v.into_iter().find(|s| s.mid == Some(*up_mid))),
                    Err(_) => None,
                };
                views.push(view);
            }
            let changed = {
                let mut relayed = self.relayed.lock().unwrap();
                match relayed.get_mut(&(cuid.clone(), mid)) {
                    Some(e) => {
                        let old: Vec<_> = e.views.iter().map(|v| v.as_ref().map(|v| (v.status, v.pkts_dropped))).collect();
                        let new: Vec<_> = views.iter().map(|v| v.as_ref().map(|v| (v.status, v.pkts_dropped))).collect();
                        e.views = views;
                        old != new
                    }
                    None => false,
                }
            };
            if changed {
                self.registry.dots_touch(&cuid, mid);
            }
        }
    }
}

async fn poll_upstreams(gw: std::sync::Weak<Gateway>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(gw) = gw.upgrade() else { return };
        gw.poll_once().await;
    }
}

async fn withdraw_all(up: &Upstreams, r: &Relayed) {
    for (server, mid) in &r.legs {
        match up.client(server) {
            Ok(c) => match c.withdraw(*mid).await {
                Ok(()) => info!(%server, mid, "relayed mitigation withdrawn upstream"),
                Err(e) => warn!(%server, mid, error = %e, "cannot withdraw a relayed mitigation upstream (it ends with its lifetime)"),
            },
            Err(e) => warn!(%server, mid, error = %e, "cannot withdraw a relayed mitigation upstream (it ends with its lifetime)"),
        }
    }
}

pub fn decide(domains: &[Domain], relay_pi: &[IpNet], others: GatewayOthers, prefixes: &[IpNet]) -> Decision {
    let relayed: Vec<bool> = prefixes.iter().map(|p| managed(domains, relay_pi, p)).collect();
    if !prefixes.is_empty() && relayed.iter().all(|r| *r) {
        return Decision::Relay(chains(domains, prefixes));
    }
    if relayed.iter().any(|r| *r) {
        let (up, here): (Vec<&IpNet>, Vec<&IpNet>) = prefixes.iter().partition(|p| managed(domains, relay_pi, p));
        return Decision::Reject(format!(
            "target-prefix: {} managed upstream but {} not; send them in separate requests",
            join(&up),
            join(&here)
        ));
    }
    match others {
        GatewayOthers::Local => Decision::Local,
        GatewayOthers::Reject => Decision::Reject(format!(
            "target-prefix: {} is managed by no upstream DOTS server of this gateway",
            join(&prefixes.iter().collect::<Vec<_>>())
        )),
    }
}

fn join(p: &[&IpNet]) -> String {
    p.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
}

/// The request as the gateway sends it upstream: same scope and lifetime.
fn spec_of(req: &MitigationRequest) -> MitigationSpec {
    let mut spec = MitigationSpec::prefixes(Vec::new());
    spec.target = req.target.clone();
    spec.target.alias_name.clear();
    if let Some(l) = req.granted_lifetime.or(req.requested_lifetime) {
        spec.lifetime = l;
    }
    spec.trigger_mitigation = (!req.trigger_mitigation).then_some(false);
    spec
}

fn unavailable(server: &str, e: &ClientError) -> Reply {
    Reply::error(Code::SERVICE_UNAVAILABLE, format!("upstream {server}: {e}"))
}

/// The downstream answer when no upstream took the request: the upstream's
/// own refusal (code and diagnostic) when one refused, else 5.03.
fn refusal_from(errors: Vec<(String, ClientError)>) -> Reply {
    if let Some((server, ClientError::Refused { code, diagnostic, .. })) =
        errors.iter().find(|(_, e)| matches!(e, ClientError::Refused { .. }))
    {
        return Reply::error(*code, format!("upstream {server} refused: {diagnostic}"));
    }
    let why: Vec<String> = errors.iter().map(|(s, e)| format!("{s}: {e}")).collect();
    Reply::error(Code::SERVICE_UNAVAILABLE, format!("no upstream DOTS server could take the request ({})", why.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn relay_local_or_reject() {
        let d = vec![Domain { name: "A".into(), prefixes: vec![n("198.51.100.0/25")], fallback: vec![], fallback_only: false }];
        let pi = vec![n("192.0.2.0/24")];
        assert!(matches!(decide(&d, &pi, GatewayOthers::Local, &[n("198.51.100.7/32")]), Decision::Relay(c) if c[0].servers == ["A"]));
        assert!(matches!(decide(&d, &pi, GatewayOthers::Local, &[n("192.0.2.7/32")]), Decision::Relay(c) if !c[0].pa));
        assert_eq!(decide(&d, &pi, GatewayOthers::Local, &[n("203.0.113.7/32")]), Decision::Local);
        assert!(matches!(decide(&d, &pi, GatewayOthers::Reject, &[n("203.0.113.7/32")]), Decision::Reject(m) if m.contains("203.0.113.7/32")));
        assert!(matches!(decide(&d, &pi, GatewayOthers::Local, &[n("203.0.113.7/32"), n("192.0.2.1/32")]), Decision::Reject(m) if m.contains("separate")));
    }

    #[test]
    fn refusals_are_relayed_with_their_code() {
        let r = refusal_from(vec![
            ("A".into(), ClientError::Unreachable("down".into())),
            ("B".into(), ClientError::Refused { code: Code::BAD_REQUEST, diagnostic: "not yours".into(), max_age: None }),
        ]);
        assert_eq!(r.code, Code::BAD_REQUEST);
        assert!(String::from_utf8(r.payload).unwrap().contains("upstream B refused: not yours"));
        let r = refusal_from(vec![("A".into(), ClientError::Timeout)]);
        assert_eq!(r.code, Code::SERVICE_UNAVAILABLE);
    }
}
