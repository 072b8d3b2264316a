//! Scope arithmetic: when two requests overlap (section 4.4.1.3: "if
//! there is a common IP address, IP prefix, FQDN, URI, or alias"), what
//! exactly they share (the 'conflict-scope'), whether a client may ask
//! for a prefix, and what the data plane enforces.

use std::ops::RangeInclusive;

use dots_proto::signal::{IpPrefix, PortRange, Target};
use ipnet::IpNet;

use super::mitigation::Mitigation;

/// What a request covers: its resolved prefixes and the target as sent.
#[derive(Debug, Clone, Copy)]
pub struct Footprint<'a> {
    pub prefixes: &'a [IpNet],
    pub target: &'a Target,
}

impl<'a> From<&'a Mitigation> for Footprint<'a> {
    fn from(m: &'a Mitigation) -> Self {
        Footprint { prefixes: &m.prefixes, target: &m.target }
    }
}

/// Two CIDR prefixes share an address iff one contains the other.
pub fn prefixes_overlap(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}

pub fn to_ipnet(p: &IpPrefix) -> IpNet {
    // IpPrefix::new already bounds the length to the family.
    IpNet::new(p.addr, p.len).expect("IpPrefix has a valid length").trunc()
}

pub fn to_prefix(n: &IpNet) -> IpPrefix {
    IpPrefix { addr: n.addr(), len: n.prefix_len() }
}

/// The union of 'target-prefix' and the caller's resolved prefixes,
/// truncated to their networks, sorted, without duplicates.
pub fn all_prefixes(target: &Target, resolved: Vec<IpNet>) -> Vec<IpNet> {
    let mut v: Vec<IpNet> =
        target.target_prefix.iter().map(to_ipnet).chain(resolved.iter().map(IpNet::trunc)).collect();
    v.sort();
    v.dedup();
    v
}

/// The first prefix not inside any of the client's allowed prefixes
/// (section 4.4.1.1: "validate that target prefixes are within the scope
/// of the DOTS client domain").
pub fn first_unauthorized<'a>(prefixes: &'a [IpNet], allowed: &[IpNet]) -> Option<&'a IpNet> {
    prefixes.iter().find(|p| !allowed.iter().any(|a| a.contains(*p)))
}

/// What `a` and `b` have in common, as a 'conflict-scope' target, or None
/// if they do not overlap. Port ranges and protocols are included only
/// once the targets share an address, FQDN, URI or alias (4.4.1.3).
pub fn overlap(a: Footprint, b: Footprint) -> Option<Target> {
    let mut t = Target {
        target_prefix: common_prefixes(a.prefixes, b.prefixes),
        target_fqdn: common(&a.target.target_fqdn, &b.target.target_fqdn, |x, y| x.eq_ignore_ascii_case(y)),
        target_uri: common(&a.target.target_uri, &b.target.target_uri, |x, y| x == y),
        alias_name: common(&a.target.alias_name, &b.target.alias_name, |x, y| x == y),
        ..Target::default()
    };
    if t.is_empty() {
        return None;
    }
    t.target_port_range = common_ports(&a.target.target_port_range, &b.target.target_port_range);
    t.target_protocol = common_any(&a.target.target_protocol, &b.target.target_protocol);
    Some(t)
}

pub fn overlaps(a: Footprint, b: Footprint) -> bool {
    overlap(a, b).is_some()
}

/// For each overlapping pair, the more specific prefix (the intersection
/// of two CIDR blocks is the longer one).
fn common_prefixes(a: &[IpNet], b: &[IpNet]) -> Vec<IpPrefix> {
    let mut out: Vec<IpNet> = Vec::new();
    for x in a {
        for y in b.iter().filter(|y| prefixes_overlap(x, y)) {
            let narrow = if x.prefix_len() >= y.prefix_len() { x } else { y };
            if !out.contains(narrow) {
                out.push(*narrow);
            }
        }
    }
    out.iter().map(to_prefix).collect()
}

fn common(a: &[String], b: &[String], eq: impl Fn(&str, &str) -> bool) -> Vec<String> {
    a.iter().filter(|x| b.iter().any(|y| eq(x, y))).cloned().collect()
}

/// An empty list means "any" ('target-protocol': "If not specified, then
/// the request applies to any protocol"; the same for ports).
fn common_any(a: &[u8], b: &[u8]) -> Vec<u8> {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_vec(),
        (_, true) => a.to_vec(),
        _ => a.iter().filter(|x| b.contains(x)).copied().collect(),
    }
}

fn common_ports(a: &[PortRange], b: &[PortRange]) -> Vec<PortRange> {
    if a.is_empty() || b.is_empty() {
        return if a.is_empty() { b.to_vec() } else { a.to_vec() };
    }
    let mut out = Vec::new();
    for x in a {
        for y in b {
            let (lo, hi) = (x.lower_port.max(y.lower_port), x.upper().min(y.upper()));
            if lo <= hi {
                out.push(PortRange { lower_port: lo, upper_port: (hi != lo).then_some(hi) });
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// What the data plane must enforce for one mitigation (statuses 1-5).
/// Empty `ports` or `protocols` mean any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnforcedScope {
    pub cuid: String,
    pub mid: u32,
    pub prefixes: Vec<IpNet>,
    pub ports: Vec<RangeInclusive<u16>>,
    pub protocols: Vec<u8>,
}

impl EnforcedScope {
    pub fn of(m: &Mitigation) -> Self {
        EnforcedScope {
            cuid: m.cuid.clone(),
            mid: m.mid,
            prefixes: m.prefixes.clone(),
            ports: m.target.target_port_range.iter().map(|r| r.lower_port..=r.upper()).collect(),
            protocols: m.target.target_protocol.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn target(prefixes: &[&str], fqdn: &[&str]) -> Target {
        Target {
            target_prefix: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
            target_fqdn: fqdn.iter().map(|s| s.to_string()).collect(),
            ..Target::default()
        }
    }

    #[test]
    fn prefixes_overlap_only_when_one_contains_the_other() {
        assert!(prefixes_overlap(&net("10.0.0.0/8"), &net("10.1.2.3/32")));
        assert!(prefixes_overlap(&net("10.1.2.3/32"), &net("10.0.0.0/8")));
        assert!(!prefixes_overlap(&net("10.0.0.0/24"), &net("10.0.1.0/24")));
        assert!(!prefixes_overlap(&net("10.0.0.0/8"), &net("::/0")));
    }

    #[test]
    fn overlap_reports_the_narrower_prefix_and_common_names() {
        let (ta, tb) = (target(&["10.0.0.0/8"], &["www.example.com"]), target(&["10.1.0.0/16"], &["WWW.example.com"]));
        let (pa, pb) = (all_prefixes(&ta, vec![]), all_prefixes(&tb, vec![]));
        let o = overlap(Footprint { prefixes: &pa, target: &ta }, Footprint { prefixes: &pb, target: &tb }).unwrap();
        assert_eq!(o.target_prefix, vec!["10.1.0.0/16".parse().unwrap()]);
        assert_eq!(o.target_fqdn, vec!["www.example.com".to_string()]);
    }

    #[test]
    fn ports_alone_do_not_make_an_overlap() {
        let mut ta = target(&["10.0.0.0/24"], &[]);
        let mut tb = target(&["10.0.1.0/24"], &[]);
        ta.target_port_range = vec![PortRange { lower_port: 80, upper_port: None }];
        tb.target_port_range = ta.target_port_range.clone();
        let (pa, pb) = (all_prefixes(&ta, vec![]), all_prefixes(&tb, vec![]));
        assert!(!overlaps(Footprint { prefixes: &pa, target: &ta }, Footprint { prefixes: &pb, target: &tb }));
    }

    #[test]
    fn port_ranges_intersect() {
        let r = |l, u| PortRange { lower_port: l, upper_port: u };
        let got = common_ports(&[r(0, Some(1023))], &[r(80, None), r(1000, Some(2000))]);
        assert_eq!(got, vec![r(80, None), r(1000, Some(1023))]);
    }

    #[test]
    fn authorization_needs_containment() {
        let allowed = [net("192.0.2.0/24"), net("2001:db8::/32")];
        let ok = [net("192.0.2.8/29"), net("2001:db8:6401::1/128")];
        assert_eq!(first_unauthorized(&ok, &allowed), None);
        let bad = [net("192.0.2.0/23")];
        assert_eq!(first_unauthorized(&bad, &allowed), Some(&bad[0]));
    }
}
