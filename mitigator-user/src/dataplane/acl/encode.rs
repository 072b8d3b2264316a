//! `AclRule`: the map form of an entry, and back (adoption).

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    ops::RangeInclusive,
};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use mitigator_common::{acl_action, acl_spec as sp, AclRule, PortRange, MAX_ACL_PORT_RANGES};

use super::*;

// ------------------------------------------------------ rule (de)coding ---

fn encode_ports(r: &Option<Vec<RangeInclusive<u16>>>, out: &mut [PortRange; MAX_ACL_PORT_RANGES]) -> u8 {
    let r = r.as_deref().unwrap_or_default();
    for (o, x) in out.iter_mut().zip(r) {
        *o = PortRange { lo: *x.start(), hi: *x.end() };
    }
    r.len() as u8
}

/// The map form of an entry (already validated, so port lists fit).
pub(super) fn encode(e: &AclEntry, slot: u32) -> AclRule {
    let m = &e.matches;
    let mut r = AclRule::empty();
    (r.action, r.rate_bps) = match e.action {
        AclAction::Accept => (acl_action::ACCEPT, 0),
        AclAction::Drop => (acl_action::DROP, 0),
        AclAction::RateLimit { bytes_per_sec } => (acl_action::RATE_LIMIT, bytes_per_sec),
    };
    r.slot = slot;
    r.stat_id = e.stat_id;
    let mut s = 0;
    match m.family {
        Some(AclFamily::V4) => s |= sp::FAMILY_V4,
        Some(AclFamily::V6) => s |= sp::FAMILY_V6,
        None => {}
    }
    for (dst, p) in [(false, &m.src), (true, &m.dst)] {
        let Some(p) = p else { continue };
        let (addr, len) = match p {
            IpNet::V4(n) => {
                let mut a = [0u8; 16];
                a[..4].copy_from_slice(&n.addr().octets());
                (a, n.prefix_len())
            }
            IpNet::V6(n) => (n.addr().octets(), n.prefix_len()),
        };
        let v6 = p.addr().is_ipv6();
        if dst {
            (r.dst, r.dst_len) = (addr, len);
            s |= sp::DST | if v6 { sp::DST_V6 } else { 0 };
        } else {
            (r.src, r.src_len) = (addr, len);
            s |= sp::SRC | if v6 { sp::SRC_V6 } else { 0 };
        }
    }
    if let Some(p) = m.protocol {
        r.proto = p;
        s |= sp::PROTO;
    }
    if m.src_ports.is_some() {
        r.n_sport = encode_ports(&m.src_ports, &mut r.sport);
        s |= sp::SPORT;
    }
    if m.dst_ports.is_some() {
        r.n_dport = encode_ports(&m.dst_ports, &mut r.dport);
        s |= sp::DPORT;
    }
    if let Some(b) = m.tcp_flags_bitmask {
        (r.bitmask_op, r.bitmask) = (b.operator, b.bitmask);
        s |= sp::BITMASK;
    }
    if let Some(f) = m.tcp_flags {
        r.tcp_flags = f;
        s |= sp::TCP_FLAGS;
    }
    if let Some(f) = m.fragment {
        (r.frag_op, r.frag_type) = (f.operator, f.bitmask as u8);
        s |= sp::FRAG;
    }
    if let Some(l) = &m.length {
        r.len = PortRange { lo: *l.start(), hi: *l.end() };
        s |= sp::LEN;
    }
    if let Some(l) = &m.udp_length {
        r.udp_len = PortRange { lo: *l.start(), hi: *l.end() };
        s |= sp::UDP_LEN;
    }
    if let Some(t) = &m.ttl {
        (r.ttl_lo, r.ttl_hi) = (*t.start(), *t.end());
        s |= sp::TTL;
    }
    if let Some(t) = m.icmp_type {
        r.icmp_type = t;
        s |= sp::ICMP_TYPE;
    }
    if let Some(c) = m.icmp_code {
        r.icmp_code = c;
        s |= sp::ICMP_CODE;
    }
    r.spec = s;
    r
}

fn decode_net(addr: [u8; 16], len: u8, v6: bool) -> Option<IpNet> {
    if v6 {
        Ipv6Net::new(Ipv6Addr::from(addr), len).ok().map(IpNet::V6)
    } else {
        Ipv4Net::new(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]), len).ok().map(IpNet::V4)
    }
}

/// The entry an `AclRule` was encoded from (adoption of pinned maps).
pub(super) fn decode(r: &AclRule) -> AclEntry {
    let s = r.spec;
    let on = |bit: u32| s & bit != 0;
    let ports = |p: &[PortRange; MAX_ACL_PORT_RANGES], n: u8| {
        p.iter().take(n as usize).map(|x| x.lo..=x.hi).collect::<Vec<_>>()
    };
    let matches = AclMatch {
        family: if on(sp::FAMILY_V4) {
            Some(AclFamily::V4)
        } else if on(sp::FAMILY_V6) {
            Some(AclFamily::V6)
        } else {
            None
        },
        src: if on(sp::SRC) { decode_net(r.src, r.src_len, on(sp::SRC_V6)) } else { None },
        dst: if on(sp::DST) { decode_net(r.dst, r.dst_len, on(sp::DST_V6)) } else { None },
        protocol: on(sp::PROTO).then_some(r.proto),
        src_ports: on(sp::SPORT).then(|| ports(&r.sport, r.n_sport)),
        dst_ports: on(sp::DPORT).then(|| ports(&r.dport, r.n_dport)),
        tcp_flags_bitmask: on(sp::BITMASK).then_some(BitmaskMatch { operator: r.bitmask_op, bitmask: r.bitmask }),
        tcp_flags: on(sp::TCP_FLAGS).then_some(r.tcp_flags),
        fragment: on(sp::FRAG).then_some(BitmaskMatch { operator: r.frag_op, bitmask: r.frag_type as u16 }),
        length: on(sp::LEN).then_some(r.len.lo..=r.len.hi),
        udp_length: on(sp::UDP_LEN).then_some(r.udp_len.lo..=r.udp_len.hi),
        ttl: on(sp::TTL).then_some(r.ttl_lo..=r.ttl_hi),
        icmp_type: on(sp::ICMP_TYPE).then_some(r.icmp_type),
        icmp_code: on(sp::ICMP_CODE).then_some(r.icmp_code),
    };
    let action = match r.action {
        acl_action::ACCEPT => AclAction::Accept,
        acl_action::RATE_LIMIT => AclAction::RateLimit { bytes_per_sec: r.rate_bps },
        _ => AclAction::Drop,
    };
    AclEntry { stat_id: r.stat_id, matches, action }
}

/// Whether `encode` keeps an entry exactly (port lists longer than the
/// map holds are refused by `compile` first, so this is about the rest).
#[cfg(test)]
pub(super) fn roundtrips(e: &AclEntry) -> bool {
    decode(&encode(e, 0)) == *e
}
