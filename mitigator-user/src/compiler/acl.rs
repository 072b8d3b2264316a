//! DOTS filtering rules (RFC 8783 draft 29, §7.2) → the data plane's ACL
//! entries (`RuleSet::acl`).
//!
//! - Order: clients in registration order, each client's ACLs and ACEs in
//!   the order the client gave (both lists are `ordered-by user`); the data
//!   plane takes the first match.
//! - Destinations: "If this attribute is not provided, the DOTS server
//!   enforces the ACL on any destination IP address that belong to the DOTS
//!   client domain" (§7.2): an ACE without a destination becomes one entry
//!   per domain prefix of its family. An ACE naming a destination outside
//!   the domain was refused when it arrived (dots-proto's validation with
//!   the client's scope), so no client can filter another's traffic.
//! - Activation (§7.2): `immediate` always, `activate-when-mitigating` only
//!   while the client has a mitigation with status 1-5, `deactivate` never.
//! - Identity: each entry's `stat_id` is a hash of (cuid, ACL, ACE, which
//!   domain prefix), so counters and rate-limit buckets follow an ACE across
//!   replacements of its ACL, whatever its position.
//!
//! Match fields the XDP program has no lookup for (DSCP, ECN, IHL, IPv4
//! flags/offset/identification, flow label, TCP sequence numbers, window,
//! options, ICMP rest-of-header) are refused here, naming the
//! ACE and the field; what it has but cannot take in some combination is
//! refused by `dataplane::acl::check` (same form, [`AceRefusal`]).

use std::net::IpAddr;

use dots_proto::data::{
    acl::{Fragment, FlagsBitmask, L3Match, L4Match, Operator, PortMatch, PortOperator},
    Ace, Acl, AclType, ActivationType, ForwardingAction,
};
use ipnet::IpNet;
use mitigator_common::{acl_frag, acl_op};

use crate::dataplane::{port_ranges, AclAction, AclEntry, AclError, AclFamily, AclMatch, BitmaskMatch, PortOp};

/// One client's filtering rules, as the compiler needs them.
pub struct ClientAcls<'a> {
    pub cuid: &'a str,
    /// The client domain's prefixes (destinations of ACEs without one).
    pub domain: &'a [IpNet],
    pub acls: &'a [Acl],
    /// Whether the client has an active mitigation (statuses 1-5).
    pub mitigating: bool,
}

/// Which ACLs to compile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Those in force now (what goes into the maps).
    InForce,
    /// Every ACL whatever its activation: what must be expressible before
    /// a request is accepted, since it may come into force later.
    All,
}

/// Where an entry came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub cuid: String,
    pub acl: String,
    pub ace: String,
}

/// An ACE this server cannot enforce: 400 naming it and the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AceRefusal {
    pub cuid: String,
    pub acl: String,
    pub ace: String,
    /// The YANG name of the field (`matches/tcp/window-size`, …).
    pub field: String,
    pub reason: String,
}

impl std::fmt::Display for AceRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ACL {:?} ACE {:?}: {}: {}", self.acl, self.ace, self.field, self.reason)
    }
}

/// The entries of `clients` (in order) and the origin of each.
pub fn compile(clients: &[ClientAcls], scope: Scope) -> Result<(Vec<AclEntry>, Vec<Origin>), AceRefusal> {
    let (mut entries, mut origins) = (Vec::new(), Vec::new());
    for c in clients {
        for acl in c.acls.iter().filter(|a| in_force(a, c.mitigating, scope)) {
            for ace in acl.ace_list() {
                let refuse = |field: &str, reason: String| AceRefusal {
                    cuid: c.cuid.into(),
                    acl: acl.name.clone(),
                    ace: ace.name.clone(),
                    field: field.into(),
                    reason,
                };
                for e in ace_entries(c, acl, ace).map_err(|(f, r)| refuse(&f, r))? {
                    entries.push(e);
                    origins.push(Origin { cuid: c.cuid.into(), acl: acl.name.clone(), ace: ace.name.clone() });
                }
            }
        }
    }
    Ok((entries, origins))
}

/// Checks that the data plane can express every ACL of `clients`, whatever
/// its activation; the refusal names the ACE.
pub fn check(clients: &[ClientAcls]) -> Result<(), AceRefusal> {
    let (entries, origins) = compile(clients, Scope::All)?;
    crate::dataplane::acl::check(&entries).map_err(|e| refusal_of(&e, &origins))
}

/// The data plane's refusal, in terms of the ACE it came from.
pub fn refusal_of(e: &AclError, origins: &[Origin]) -> AceRefusal {
    let o = e.entry.and_then(|i| origins.get(i));
    AceRefusal {
        cuid: o.map(|o| o.cuid.clone()).unwrap_or_default(),
        acl: o.map(|o| o.acl.clone()).unwrap_or_default(),
        ace: o.map(|o| o.ace.clone()).unwrap_or_default(),
        field: yang_field(e.field).into(),
        reason: e.reason.clone(),
    }
}

/// The YANG name of an `AclMatch` field.
fn yang_field(field: &str) -> &str {
    match field {
        "src" => "matches/source-network",
        "dst" => "matches/destination-network",
        "src_ports" => "matches/source-port",
        "dst_ports" => "matches/destination-port",
        "tcp_flags_bitmask" => "matches/tcp/flags-bitmask",
        "tcp_flags" => "matches/tcp/flags",
        "fragment" => "matches/fragment",
        "length" => "matches/length",
        "ttl" => "matches/ttl",
        "icmp_type" => "matches/icmp/type",
        "icmp_code" => "matches/icmp/code",
        "action" => "actions/rate-limit",
        "acl" => "acls (all clients together)",
        other => other,
    }
}

fn in_force(acl: &Acl, mitigating: bool, scope: Scope) -> bool {
    match (scope, acl.effective_activation()) {
        (Scope::All, _) => true,
        (_, ActivationType::Immediate) => true,
        (_, ActivationType::ActivateWhenMitigating) => mitigating,
        (_, ActivationType::Deactivate) => false,
    }
}

type FieldError = (String, String);

fn unsupported(field: &str) -> FieldError {
    (format!("matches/{field}"), "this server's XDP filter cannot match on this field (see the capabilities)".into())
}

/// The entries of one ACE: one, or one per domain prefix of its family
/// when it names no destination.
fn ace_entries(c: &ClientAcls, acl: &Acl, ace: &Ace) -> Result<Vec<AclEntry>, FieldError> {
    let action = action(ace)?;
    let m = ace.matches.clone().unwrap_or_default();
    let mut base = AclMatch { family: family_of_type(acl.acl_type), ..AclMatch::default() };
    let dst = l3(&m.l3, &mut base)?;
    l4(&m.l4, &mut base)?;
    let dsts: Vec<IpNet> = match dst {
        Some(d) => vec![d],
        None => c.domain.iter().filter(|p| base.family.is_none_or(|f| family(p) == f)).copied().collect(),
    };
    let mut out = Vec::new();
    for (i, d) in dsts.into_iter().enumerate() {
        let mut mt = AclMatch { dst: Some(d), family: Some(family(&d)), ..base.clone() };
        if let Some(L4Match::Icmp(_)) = &m.l4 {
            // ICMP or ICMPv6, by the family of this entry.
            let proto = if family(&d) == AclFamily::V4 { 1 } else { 58 };
            if mt.protocol.is_some_and(|p| p != proto) {
                continue; // the l3 protocol names the other family's ICMP: no packet of this family matches
            }
            mt.protocol = Some(proto);
        }
        out.push(AclEntry { stat_id: stat_id(c.cuid, &acl.name, &ace.name, i), matches: mt, action });
    }
    Ok(out)
}

fn family(n: &IpNet) -> AclFamily {
    match n.addr() {
        IpAddr::V4(_) => AclFamily::V4,
        IpAddr::V6(_) => AclFamily::V6,
    }
}

fn family_of_type(t: Option<AclType>) -> Option<AclFamily> {
    match t {
        Some(AclType::Ipv4) => Some(AclFamily::V4),
        Some(AclType::Ipv6) => Some(AclFamily::V6),
        _ => None,
    }
}

/// `forwarding` and `rate-limit` (§7.2: rate-limit applies to accepted
/// traffic, in bytes per second).
fn action(ace: &Ace) -> Result<AclAction, FieldError> {
    let a = ace.actions.as_ref().ok_or_else(|| ("actions".to_string(), "missing (mandatory, section 7.2)".to_string()))?;
    match (a.forwarding, a.rate_limit) {
        (ForwardingAction::Accept, Some(r)) => Ok(AclAction::RateLimit { bytes_per_sec: r.whole().max(0) as u64 }),
        (ForwardingAction::Accept, None) => Ok(AclAction::Accept),
        (ForwardingAction::Drop, _) => Ok(AclAction::Drop),
        (ForwardingAction::Reject, _) => Err(("actions/forwarding".into(), "reject is not a DOTS action (section 4.1)".into())),
    }
}

fn to_net(p: &dots_proto::data::yang::IpPrefix) -> IpNet {
    IpNet::new(p.addr, p.len).map(|n| n.trunc()).unwrap_or_else(|_| IpNet::from(p.addr))
}

/// The l3 match into `m`; returns the destination, if any.
fn l3(l3: &Option<L3Match>, m: &mut AclMatch) -> Result<Option<IpNet>, FieldError> {
    match l3 {
        None => Ok(None),
        Some(L3Match::Ipv4(v4)) => {
            let none = |o: bool, f: &str| if o { Err(unsupported(&format!("ipv4/{f}"))) } else { Ok(()) };
            none(v4.dscp.is_some(), "dscp")?;
            none(v4.ecn.is_some(), "ecn")?;
            none(v4.ihl.is_some(), "ihl")?;
            none(v4.flags.is_some(), "flags")?;
            none(v4.offset.is_some(), "offset")?;
            none(v4.identification.is_some(), "identification")?;
            m.family = Some(AclFamily::V4);
            m.length = v4.length.map(|l| l..=l);
            m.ttl = v4.ttl.map(|t| t..=t);
            m.protocol = v4.protocol;
            m.src = v4.source_ipv4_network.as_ref().map(|p| to_net(&p.0));
            m.fragment = v4.fragment.as_ref().map(fragment);
            Ok(v4.destination_ipv4_network.as_ref().map(|p| to_net(&p.0)))
        }
        Some(L3Match::Ipv6(v6)) => {
            let none = |o: bool, f: &str| if o { Err(unsupported(&format!("ipv6/{f}"))) } else { Ok(()) };
            none(v6.dscp.is_some(), "dscp")?;
            none(v6.ecn.is_some(), "ecn")?;
            none(v6.flow_label.is_some(), "flow-label")?;
            m.family = Some(AclFamily::V6);
            m.length = v6.length.map(|l| l..=l);
            m.ttl = v6.ttl.map(|t| t..=t);
            m.protocol = v6.protocol;
            m.src = v6.source_ipv6_network.as_ref().map(|p| to_net(&p.0));
            m.fragment = v6.fragment.as_ref().map(fragment);
            Ok(v6.destination_ipv6_network.as_ref().map(|p| to_net(&p.0)))
        }
    }
}

/// The l4 match into `m`; the protocol follows from it (6, 17; ICMP's is
/// set per family by the caller).
fn l4(l4: &Option<L4Match>, m: &mut AclMatch) -> Result<(), FieldError> {
    match l4 {
        None => Ok(()),
        Some(L4Match::Tcp(t)) => {
            let none = |o: bool, f: &str| if o { Err(unsupported(&format!("tcp/{f}"))) } else { Ok(()) };
            none(t.sequence_number.is_some(), "sequence-number")?;
            none(t.acknowledgement_number.is_some(), "acknowledgement-number")?;
            none(t.data_offset.is_some(), "data-offset")?;
            none(t.reserved.is_some(), "reserved")?;
            none(t.window_size.is_some(), "window-size")?;
            none(t.urgent_pointer.is_some(), "urgent-pointer")?;
            none(t.options.is_some(), "options")?;
            m.protocol = Some(6);
            m.tcp_flags_bitmask = t.flags_bitmask.as_ref().map(flags_bitmask);
            m.tcp_flags = t.flags.map(|f| tcp_flags_byte(&f));
            m.src_ports = t.source_port_range_or_operator.map(ports);
            m.dst_ports = t.destination_port_range_or_operator.map(ports);
            Ok(())
        }
        Some(L4Match::Udp(u)) => {
            m.protocol = Some(17);
            m.udp_length = u.length.map(|l| l..=l);
            m.src_ports = u.source_port_range_or_operator.map(ports);
            m.dst_ports = u.destination_port_range_or_operator.map(ports);
            Ok(())
        }
        Some(L4Match::Icmp(i)) => {
            if i.rest_of_header.is_some() {
                return Err(unsupported("icmp/rest-of-header"));
            }
            m.icmp_type = i.icmp_type;
            m.icmp_code = i.code;
            Ok(())
        }
    }
}

fn op_bits(op: Option<Operator>) -> u8 {
    let Some(op) = op else { return acl_op::MATCH };
    let mut bits = 0;
    for (name, bit) in [("not", acl_op::NOT), ("match", acl_op::MATCH), ("any", acl_op::ANY)] {
        if op.has(name) {
            bits |= bit;
        }
    }
    bits
}

/// §4.3 `fragment-type` bits → `acl_frag` bits.
fn fragment(f: &Fragment) -> BitmaskMatch {
    let mut mask = 0u16;
    for (name, bit) in [("df", acl_frag::DF), ("isf", acl_frag::ISF), ("ff", acl_frag::FF), ("lf", acl_frag::LF)] {
        if f.fragment_type.has(name) {
            mask |= u16::from(bit);
        }
    }
    BitmaskMatch { operator: op_bits(f.operator), bitmask: mask }
}

fn flags_bitmask(f: &FlagsBitmask) -> BitmaskMatch {
    BitmaskMatch { operator: op_bits(f.operator), bitmask: f.bitmask }
}

/// RFC 8519 TCP `flags` → the value of TCP header byte 13.
fn tcp_flags_byte(f: &dots_proto::data::acl::TcpFlags) -> u8 {
    let names = [("cwr", 0x80), ("ece", 0x40), ("urg", 0x20), ("ack", 0x10), ("psh", 0x08), ("rst", 0x04), ("syn", 0x02), ("fin", 0x01)];
    names.iter().filter(|(n, _)| f.has(n)).fold(0u8, |acc, (_, b)| acc | b)
}

/// RFC 8519 `port-range-or-operator` → inclusive ranges.
fn ports(p: PortMatch) -> Vec<std::ops::RangeInclusive<u16>> {
    match p {
        PortMatch::Range { lower, upper } => vec![lower..=upper],
        PortMatch::Operator { op, port } => {
            let op = match op.unwrap_or(PortOperator::Eq) {
                PortOperator::Eq => PortOp::Eq,
                PortOperator::Lte => PortOp::Lte,
                PortOperator::Gte => PortOp::Gte,
                PortOperator::Neq => PortOp::Neq,
            };
            port_ranges(op, port)
        }
    }
}

/// A stable 64-bit id of (cuid, ACL, ACE, expansion): FNV-1a, with a
/// separator byte that names cannot contain confusion-free (lengths are
/// hashed too).
pub fn stat_id(cuid: &str, acl: &str, ace: &str, expansion: usize) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for part in [cuid.as_bytes(), acl.as_bytes(), ace.as_bytes()] {
        eat(&(part.len() as u32).to_le_bytes());
        eat(part);
    }
    eat(&(expansion as u32).to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use dots_proto::data::AclsBody;

    fn acls(json: &str) -> Vec<Acl> {
        serde_json::from_str::<AclsBody>(json).unwrap().acls.acl
    }

    fn domain() -> Vec<IpNet> {
        vec!["203.0.113.0/24".parse().unwrap(), "2001:db8:113::/64".parse().unwrap()]
    }

    const TWO: &str = r#"{"ietf-dots-data-channel:acls":{"acl":[
      {"name":"a","activation-type":"immediate","aces":{"ace":[
        {"name":"r1","matches":{"ipv4":{"destination-ipv4-network":"203.0.113.10/32","source-ipv4-network":"198.51.100.0/24"}},"actions":{"forwarding":"drop"}},
        {"name":"r2","matches":{"udp":{"destination-port-range-or-operator":{"operator":"neq","port":53}}},"actions":{"forwarding":"accept","rate-limit":"1000.00"}}]}},
      {"name":"w","aces":{"ace":[{"name":"x","matches":{"tcp":{"flags-bitmask":{"bitmask":2}}},"actions":{"forwarding":"drop"}}]}},
      {"name":"d","activation-type":"deactivate","aces":{"ace":[{"name":"y","actions":{"forwarding":"drop"}}]}}]}}"#;

    #[test]
    fn order_expansion_and_activation() {
        let (a, d) = (acls(TWO), domain());
        let c = |mitigating| ClientAcls { cuid: "c1", domain: &d, acls: &a, mitigating };
        let (idle, origins) = compile(&[c(false)], Scope::InForce).unwrap();
        // r1 once; r2 once per domain prefix; w not mitigating; d never.
        assert_eq!(idle.len(), 3);
        assert_eq!(origins.iter().map(|o| o.ace.as_str()).collect::<Vec<_>>(), ["r1", "r2", "r2"]);
        assert_eq!(idle[0].matches.src, Some("198.51.100.0/24".parse().unwrap()));
        assert_eq!(idle[1].matches.dst, Some(d[0]));
        assert_eq!(idle[2].matches.dst, Some(d[1]));
        assert_eq!(idle[1].matches.dst_ports, Some(vec![0..=52, 54..=65535]));
        assert_eq!(idle[1].action, AclAction::RateLimit { bytes_per_sec: 1000 });
        let (mitigating, _) = compile(&[c(true)], Scope::InForce).unwrap();
        assert_eq!(mitigating.len(), 5);
        assert_eq!(mitigating[3].matches.tcp_flags_bitmask, Some(BitmaskMatch { operator: acl_op::MATCH, bitmask: 2 }));
        assert_eq!(compile(&[c(false)], Scope::All).unwrap().0.len(), 7);
        // Stable ids: the same ACE keeps its id wherever it is.
        assert_eq!(idle[0].stat_id, stat_id("c1", "a", "r1", 0));
        assert_ne!(idle[1].stat_id, idle[2].stat_id);
    }

    #[test]
    fn unsupported_fields_name_the_ace() {
        let a = acls(r#"{"ietf-dots-data-channel:acls":{"acl":[{"name":"a","aces":{"ace":[
          {"name":"ok","actions":{"forwarding":"drop"}},
          {"name":"bad","matches":{"tcp":{"window-size":10}},"actions":{"forwarding":"drop"}}]}}]}}"#);
        let d = domain();
        let e = check(&[ClientAcls { cuid: "c", domain: &d, acls: &a, mitigating: false }]).unwrap_err();
        assert_eq!((e.acl.as_str(), e.ace.as_str(), e.field.as_str()), ("a", "bad", "matches/tcp/window-size"));
    }

    #[test]
    fn data_plane_refusals_name_the_ace() {
        // 'match' and 'any' together: valid JSON, refused by the data plane.
        let a = acls(r#"{"ietf-dots-data-channel:acls":{"acl":[{"name":"a","aces":{"ace":[
          {"name":"first","actions":{"forwarding":"drop"}},
          {"name":"many","matches":{"tcp":{"flags-bitmask":{"operator":"match any","bitmask":2}}},"actions":{"forwarding":"drop"}}]}}]}}"#);
        let d = domain();
        let c = ClientAcls { cuid: "c", domain: &d, acls: &a, mitigating: false };
        let e = check(&[c]).unwrap_err();
        assert_eq!((e.ace.as_str(), e.field.as_str()), ("many", "matches/tcp/flags-bitmask"), "{e}");
    }

    #[test]
    fn fragment_and_flags_translate() {
        let a = acls(r#"{"ietf-dots-data-channel:acls":{"acl":[{"name":"a","aces":{"ace":[
          {"name":"f","matches":{"ipv4":{"fragment":{"operator":"not any","type":"isf ff"}}},"actions":{"forwarding":"drop"}},
          {"name":"t","matches":{"tcp":{"flags":"syn ack"}},"actions":{"forwarding":"drop"}},
          {"name":"i","matches":{"icmp":{"type":8}},"actions":{"forwarding":"drop"}}]}}]}}"#);
        let d = domain();
        let (e, _) = compile(&[ClientAcls { cuid: "c", domain: &d, acls: &a, mitigating: true }], Scope::InForce).unwrap();
        assert_eq!(e[0].matches.fragment, Some(BitmaskMatch { operator: acl_op::NOT | acl_op::ANY, bitmask: (acl_frag::ISF | acl_frag::FF) as u16 }));
        assert_eq!(e[0].matches.family, Some(AclFamily::V4));
        assert_eq!(e.len(), 5, "f: v4 only; t and i: both families");
        assert_eq!(e[1].matches.tcp_flags, Some(0x12));
        assert_eq!((e[3].matches.protocol, e[4].matches.protocol), (Some(1), Some(58)));
    }

    #[test]
    fn udp_length_translates() {
        let a = acls(r#"{"ietf-dots-data-channel:acls":{"acl":[{"name":"a","aces":{"ace":[
          {"name":"u","matches":{"ipv4":{},"udp":{"length":100}},"actions":{"forwarding":"drop"}}]}}]}}"#);
        let d = domain();
        let (e, _) = compile(&[ClientAcls { cuid: "c", domain: &d, acls: &a, mitigating: true }], Scope::InForce).unwrap();
        assert_eq!((e[0].matches.protocol, e[0].matches.udp_length.clone()), (Some(17), Some(100..=100)));
    }
}
