//! Which upstream server gets which request (RFC 9284, draft in
//! `shared/reference`; section 5.1 for a single client, 5.2-5.3 for a
//! client-domain gateway).
//!
//! - A target inside a domain's provider-assigned (PA) prefixes goes to that
//!   domain's server only: "if no appropriate DOTS server is found, the DOTS
//!   client MUST NOT send the mitigation request to any other available DOTS
//!   server" (5.1). Configured fallbacks of that server are the operator's
//!   explicit policy (the use cases' fallback mitigation services) and are
//!   tried in turn after it.
//! - A provider-independent (PI) target goes to every server: "If PI
//!   addresses/prefixes are in use, the DOTS client MUST send a mitigation
//!   request to all the DOTS servers" (5.2); servers marked `fallback_only`
//!   are only ever fallbacks.
//!
//! Pure: names in, chains of names out.

use ipnet::IpNet;

use crate::config::UpstreamConfig;

/// A provisioning domain as the selection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub name: String,
    pub prefixes: Vec<IpNet>,
    pub fallback: Vec<String>,
    pub fallback_only: bool,
}

impl From<&UpstreamConfig> for Domain {
    fn from(u: &UpstreamConfig) -> Self {
        Domain {
            name: u.name.get_ref().clone(),
            prefixes: u.prefixes.clone(),
            fallback: u.fallback.clone(),
            fallback_only: u.fallback_only,
        }
    }
}

/// Servers to ask for one group of prefixes, in order: the first is asked,
/// the next only when the previous refused or could not be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub servers: Vec<String>,
    pub prefixes: Vec<IpNet>,
    /// Provider-assigned (to `servers[0]`'s domain) or independent.
    pub pa: bool,
}

/// The domain that assigned `target`, if any.
pub fn owner<'a>(domains: &'a [Domain], target: &IpNet) -> Option<&'a Domain> {
    domains.iter().find(|d| d.prefixes.iter().any(|p| p.contains(target)))
}

fn chain_from(domains: &[Domain], head: &Domain) -> Vec<String> {
    let mut servers = vec![head.name.clone()];
    for f in &head.fallback {
        if domains.iter().any(|d| &d.name == f) && !servers.contains(f) {
            servers.push(f.clone());
        }
    }
    servers
}

/// `target` cut into the parts each domain assigned and the rest (PI): a
/// target wider than a PA prefix must not carry that prefix to another
/// provider's server (5.1, "MUST NOT send the mitigation request to any
/// other available DOTS server"). A part holding a PA prefix is halved
/// until each half is inside one domain's prefix or clear of all of them.
fn split<'a>(domains: &'a [Domain], target: IpNet, out: &mut Vec<(Option<&'a Domain>, IpNet)>) {
    if let Some(d) = owner(domains, &target) {
        return out.push((Some(d), target));
    }
    let holds_pa = domains.iter().flat_map(|d| &d.prefixes).any(|p| target.contains(p));
    if !holds_pa {
        return out.push((None, target));
    }
    // Holding a PA prefix strictly, the target is wider than a host route.
    for half in target.subnets(target.prefix_len() + 1).into_iter().flatten() {
        split(domains, half, out);
    }
}

/// The chains for a set of target prefixes: PA parts grouped by owner, PI
/// parts in one chain per primary server. Empty when there is no server
/// for them (no domain configured, or only fallbacks).
pub fn chains(domains: &[Domain], targets: &[IpNet]) -> Vec<Chain> {
    let mut parts = Vec::new();
    for t in targets {
        split(domains, *t, &mut parts);
    }
    let mut out: Vec<Chain> = Vec::new();
    let mut pi = Vec::new();
    for (owner, t) in parts {
        let t = &t;
        match owner {
            Some(d) => match out.iter_mut().find(|c| c.pa && c.servers[0] == d.name) {
                Some(c) => c.prefixes.push(*t),
                None => out.push(Chain { servers: chain_from(domains, d), prefixes: vec![*t], pa: true }),
            },
            None => pi.push(*t),
        }
    }
    if !pi.is_empty() {
        for d in domains.iter().filter(|d| !d.fallback_only) {
            out.push(Chain { servers: chain_from(domains, d), prefixes: pi.clone(), pa: false });
        }
    }
    out
}

/// Whether an upstream manages `target` (gateway relay rule, RFC 9284 5.3:
/// "forwarded upstream (if the target IP prefix is managed by the upstream
/// server) or rejected"): a domain's PA prefixes or a configured PI prefix.
pub fn managed(domains: &[Domain], relay_pi: &[IpNet], target: &IpNet) -> bool {
    owner(domains, target).is_some() || relay_pi.iter().any(|p| p.contains(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn domains() -> Vec<Domain> {
        vec![
            Domain { name: "A".into(), prefixes: vec![n("198.51.100.0/25")], fallback: vec!["B".into()], fallback_only: false },
            Domain { name: "B".into(), prefixes: vec![n("198.51.100.128/25")], fallback: vec![], fallback_only: false },
            Domain { name: "S".into(), prefixes: vec![], fallback: vec![], fallback_only: true },
        ]
    }

    #[test]
    fn pa_goes_to_the_owner_then_its_fallbacks_only() {
        let c = chains(&domains(), &[n("198.51.100.10/32")]);
        assert_eq!(c, vec![Chain { servers: vec!["A".into(), "B".into()], prefixes: vec![n("198.51.100.10/32")], pa: true }]);
        let c = chains(&domains(), &[n("198.51.100.200/32")]);
        assert_eq!(c[0].servers, vec!["B".to_string()]);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn pi_goes_to_every_primary_server() {
        let c = chains(&domains(), &[n("192.0.2.10/32")]);
        let heads: Vec<&str> = c.iter().map(|c| c.servers[0].as_str()).collect();
        assert_eq!(heads, ["A", "B"]);
        assert!(c.iter().all(|c| !c.pa));
    }

    #[test]
    fn mixed_targets_split_by_owner() {
        let c = chains(&domains(), &[n("198.51.100.10/32"), n("198.51.100.200/32"), n("192.0.2.1/32")]);
        assert_eq!(c.len(), 4);
        assert_eq!(c[0].prefixes, vec![n("198.51.100.10/32")]);
        assert_eq!(c[1].prefixes, vec![n("198.51.100.200/32")]);
        // A prefix wider than a domain's is not provider-assigned to it.
        assert!(owner(&domains(), &n("198.51.100.0/24")).is_none());
    }

    #[test]
    fn a_target_wider_than_pa_prefixes_is_split_and_each_part_goes_to_its_owner() {
        // Issue 15 item 7: the /24 holds A's /25 and B's /25.
        let c = chains(&domains(), &[n("198.51.100.0/24")]);
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!((c[0].servers[0].as_str(), c[0].prefixes.clone(), c[0].pa), ("A", vec![n("198.51.100.0/25")], true));
        assert_eq!((c[1].servers[0].as_str(), c[1].prefixes.clone(), c[1].pa), ("B", vec![n("198.51.100.128/25")], true));
        // A /16 holding A's /25: the /25 to A only, the rest (PI) to every
        // primary server, in parts that leave the /25 out.
        let only_a = vec![Domain { name: "A".into(), prefixes: vec![n("198.51.100.0/25")], fallback: vec![], fallback_only: false },
            Domain { name: "C".into(), prefixes: vec![], fallback: vec![], fallback_only: false }];
        let c = chains(&only_a, &[n("198.51.0.0/16")]);
        let a = c.iter().find(|c| c.pa).unwrap();
        assert_eq!((a.servers.clone(), a.prefixes.clone()), (vec!["A".to_string()], vec![n("198.51.100.0/25")]));
        let pi: Vec<&Chain> = c.iter().filter(|c| !c.pa).collect();
        assert_eq!(pi.len(), 2, "PI parts to A and C: {c:?}");
        for chain in pi {
            assert!(chain.prefixes.iter().all(|p| !p.contains(&n("198.51.100.1/32"))), "{chain:?}");
            let covered: u64 = chain.prefixes.iter().map(|p| 1u64 << (32 - p.prefix_len())).sum();
            assert_eq!(covered, 65536 - 128, "the PI parts are the /16 less the /25");
        }
    }

    #[test]
    fn no_server_means_no_chain() {
        assert!(chains(&[], &[n("192.0.2.1/32")]).is_empty());
        assert!(managed(&domains(), &[n("192.0.2.0/24")], &n("192.0.2.7/32")));
        assert!(!managed(&domains(), &[], &n("192.0.2.7/32")));
    }
}
