//! The rule compiler: turns the registry's desired state (protections with
//! their scopes and resolved countermeasures, and the source lists) into the
//! data plane's rule set. Pure: no maps touched here; the data plane applies
//! the result as one atomic generation swap.

pub mod acl;
pub mod guard;

use mitigator_common::{policy_flags as pf, Policy, PortRange as MapPortRange};

use crate::{
    dataplane::{RuleSet, TargetRule},
    protection::{Countermeasure, Protocol},
    registry::Protection,
};

/// The rule set for these protections and lists.
///
/// A destination prefix has one policy in the data plane. Local
/// protections refuse a prefix that is already protected, but DOTS
/// mitigations of different clients may name the same prefix (RFC 9132
/// 4.4.1.3 lets the server keep both): the protection with the lowest id
/// (the older one) enforces it, the other keeps its remaining prefixes.
pub fn compile(protections: &[Protection], accept: &[ipnet::IpNet], drop: &[ipnet::IpNet]) -> RuleSet {
    let mut by_id: Vec<&Protection> = protections.iter().collect();
    by_id.sort_by_key(|p| p.id);
    let mut seen = std::collections::HashSet::new();
    let targets = by_id
        .into_iter()
        .map(|p| {
            let prefixes = p.spec.prefixes.iter().filter(|n| seen.insert(**n)).cloned().collect();
            TargetRule { id: p.id, prefixes, policy: policy(p) }
        })
        .collect();
    RuleSet { targets, accept: accept.to_vec(), drop: drop.to_vec(), acl: vec![], guard: vec![] }
}

/// The data-plane policy of one protection.
pub fn policy(p: &Protection) -> Policy {
    let mut policy = Policy::empty();
    policy.flags = pf::ACTIVE;
    policy.protos = protocol_bitmap(&p.spec.protocols);
    policy.n_ports = p.spec.ports.len() as u32;
    for (slot, r) in policy.ports.iter_mut().zip(&p.spec.ports) {
        *slot = MapPortRange { lo: r.lo, hi: r.hi };
    }
    for c in &p.countermeasures {
        apply_countermeasure(&mut policy, c);
    }
    policy
}

fn apply_countermeasure(policy: &mut Policy, c: &Countermeasure) {
    match *c {
        Countermeasure::DropAll => policy.flags |= pf::DROP_ALL,
        Countermeasure::Fragments => policy.flags |= pf::DROP_FRAGMENTS,
        Countermeasure::Reflection => policy.flags |= pf::DROP_REFLECTION,
        Countermeasure::BadTcpFlags => policy.flags |= pf::DROP_BAD_TCP_FLAGS,
        Countermeasure::SynLimit { pps, burst } => {
            policy.flags |= pf::SYN_LIMIT;
            policy.syn_pps = pps;
            policy.syn_burst = burst.max(1);
        }
        Countermeasure::RateLimit { pps, pps_burst, bps, bps_burst } => {
            policy.flags |= pf::RATE_LIMIT_SRC;
            policy.src_pps = pps;
            policy.src_pps_burst = pps_burst;
            policy.src_bps = bps;
            policy.src_bps_burst = bps_burst;
        }
        Countermeasure::SynProxy => policy.flags |= pf::SYN_PROXY,
        Countermeasure::AggregateLimit { pps, pps_burst, bps, bps_burst, ref protocols } => {
            policy.flags |= pf::AGGREGATE;
            policy.agg_pps = pps;
            policy.agg_pps_burst = pps_burst;
            policy.agg_bps = bps;
            policy.agg_bps_burst = bps_burst;
            policy.agg_protos = protocol_bitmap(protocols);
        }
    }
}

/// Bit p set for each protocol in scope; every bit when none is named.
fn protocol_bitmap(protocols: &[Protocol]) -> [u64; 4] {
    if protocols.is_empty() {
        return [u64::MAX; 4];
    }
    let mut bits = [0u64; 4];
    for Protocol(p) in protocols {
        bits[(*p as usize) >> 6] |= 1u64 << (p & 63);
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protection::{Owner, PortRange, ProtectionSpec};

    fn protection(protocols: Vec<Protocol>, cms: &[&str]) -> Protection {
        Protection {
            id: 7,
            owner: Owner::Local,
            spec: ProtectionSpec {
                prefixes: vec!["203.0.113.7/32".parse().unwrap()],
                protocols,
                ports: vec![PortRange { lo: 53, hi: 53 }, PortRange { lo: 1000, hi: 2000 }],
                countermeasures: vec![],
                profile: None,
                lifetime: None,
            },
            countermeasures: cms.iter().map(|c| c.parse().unwrap()).collect(),
            created_unix: 0,
            expires_unix: None,
        }
    }

    #[test]
    fn scope_and_countermeasures_become_policy() {
        let p = protection(vec![Protocol::UDP, Protocol::SCTP], &["drop-all", "syn-limit:pps=5,burst=9", "rate-limit:bps=1M"]);
        let pol = policy(&p);
        assert!(pol.has_proto(17) && pol.has_proto(132));
        assert!(!pol.has_proto(6) && !pol.has_proto(1));
        assert_eq!(pol.n_ports, 2);
        assert_eq!((pol.ports[1].lo, pol.ports[1].hi), (1000, 2000));
        assert_eq!(pol.flags, pf::ACTIVE | pf::DROP_ALL | pf::SYN_LIMIT | pf::RATE_LIMIT_SRC);
        assert_eq!((pol.syn_pps, pol.syn_burst), (5, 9));
        assert_eq!((pol.src_pps, pol.src_bps, pol.src_bps_burst), (0, 1_000_000, 1_000_000));
    }

    #[test]
    fn a_shared_prefix_is_enforced_by_the_older_protection() {
        let mut a = protection(vec![], &["drop-all"]);
        a.id = 3;
        let mut b = protection(vec![], &["fragments"]);
        b.id = 9;
        b.spec.prefixes.push("198.51.100.0/24".parse().unwrap());
        let rules = compile(&[b, a], &[], &[]);
        assert_eq!(rules.targets[0].id, 3);
        assert_eq!(rules.targets[0].prefixes.len(), 1);
        assert_eq!(rules.targets[1].prefixes, vec!["198.51.100.0/24".parse::<ipnet::IpNet>().unwrap()]);
    }

    #[test]
    fn no_protocol_means_every_protocol() {
        let pol = policy(&protection(vec![], &["fragments"]));
        assert!((0..=255u8).all(|p| pol.has_proto(p)));
        assert_eq!(pol.flags, pf::ACTIVE | pf::DROP_FRAGMENTS);
    }
}
