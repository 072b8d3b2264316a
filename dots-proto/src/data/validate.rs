//! What a DOTS server checks in a POST/PUT body before accepting it (RFC
//! 8783 draft 29, §5.1 registration, §6.1 aliases, §7.2 filtering rules),
//! plus the YANG constraints serde cannot express (ranges, list keys,
//! `when`, read-only nodes). The first failure is returned.
//!
//! What needs server state (an existing alias name: 409; a cuid unknown to
//! the server: 403/404) is the caller's job.

use std::collections::HashSet;
use std::net::IpAddr;

use crate::data::acl::*;
use crate::data::alias::{Alias, Aliases};
use crate::data::client::DotsClientBody;
use crate::data::yang::IpPrefix;
use crate::data::{DataError, DecodeLimits};

/// Server policy: decode limits, quotas per request, and the two checks
/// the text leaves configurable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub decode: DecodeLimits,
    /// Aliases per request.
    pub max_aliases: usize,
    /// ACLs per request.
    pub max_acls: usize,
    /// ACEs per ACL.
    pub max_aces_per_acl: usize,
    /// Entries in each alias leaf-list (target-prefix, target-fqdn, …).
    pub max_targets_per_alias: usize,
    /// Longest alias name (the YANG sets no bound; ACL and ACE names are
    /// 1..64 by the YANG).
    pub max_alias_name_len: usize,
    /// §7.2: `destination-ipv4-network` is "mandatory in requests with an
    /// 'activation-type' set to 'immediate'". Appendix B.1's own example
    /// breaks that rule; turn this off to accept such requests.
    pub require_destination_for_immediate: bool,
    /// Prefixes of the client's domain (§§6.1, 7.2: targets MUST be within
    /// it). Empty: not checked here.
    pub client_scope: Vec<IpPrefix>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            decode: DecodeLimits::default(),
            max_aliases: 64,
            max_acls: 64,
            max_aces_per_acl: 256,
            max_targets_per_alias: 256,
            max_alias_name_len: 255,
            require_destination_for_immediate: true,
            client_scope: Vec::new(),
        }
    }
}

const ACL_NAME_MAX: usize = 64;
const REG: &str = "ietf-dots-data-channel:dots-client";
const ALIASES: &str = "ietf-dots-data-channel:aliases";
const ACLS: &str = "ietf-dots-data-channel:acls";

// ------------------------------------------------------------ registration

/// §5.1: exactly one `dots-client`, with a non-empty `cuid`. Nested aliases
/// and ACLs, if any, are validated too.
pub fn validate_registration(body: &DotsClientBody, policy: &Policy) -> Result<(), DataError> {
    let [client] = body.dots_client.as_slice() else {
        return Err(DataError::ClientCount {
            count: body.dots_client.len(),
        });
    };
    let path = format!("{REG}={}", client.cuid);
    name_len(&path, "cuid", &client.cuid, 1, usize::MAX)?;
    if let Some(cdid) = &client.cdid {
        name_len(&path, "cdid", cdid, 1, usize::MAX)?;
    }
    if let Some(a) = &client.aliases {
        aliases_at(&format!("{path}/aliases"), a, policy)?;
    }
    if let Some(a) = &client.acls {
        acls_at(&format!("{path}/acls"), a, policy)?;
    }
    Ok(())
}

// ----------------------------------------------------------------- aliases

/// §6.1 checks on an alias request.
pub fn validate_aliases(aliases: &Aliases, policy: &Policy) -> Result<(), DataError> {
    aliases_at(ALIASES, aliases, policy)
}

fn aliases_at(base: &str, aliases: &Aliases, policy: &Policy) -> Result<(), DataError> {
    count(base, "alias", aliases.alias.len(), policy.max_aliases)?;
    unique(
        base,
        "alias name",
        aliases.alias.iter().map(|a| a.name.clone()),
    )?;
    for a in &aliases.alias {
        alias(&format!("{base}/alias={}", a.name), a, policy)?;
    }
    Ok(())
}

fn alias(path: &str, a: &Alias, policy: &Policy) -> Result<(), DataError> {
    name_len(path, "name", &a.name, 1, policy.max_alias_name_len)?;
    if a.pending_lifetime.is_some() {
        return Err(DataError::ReadOnly {
            path: path.into(),
            field: "pending-lifetime",
        });
    }
    if !a.has_target() {
        return Err(DataError::NoTarget { path: path.into() });
    }
    alias_lists(path, a, policy.max_targets_per_alias)?;
    for p in &a.target_prefix {
        target_prefix(path, "target-prefix", p, policy)?;
    }
    for r in &a.target_port_range {
        if r.upper() < r.lower_port {
            return Err(DataError::PortOrder {
                path: format!("{path}/target-port-range"),
                lower: r.lower_port,
                upper: r.upper(),
            });
        }
    }
    a.target_fqdn.iter().try_for_each(|f| fqdn(path, f))?;
    a.target_uri.iter().try_for_each(|u| uri(path, u))
}

/// Leaf-list lengths and uniqueness (YANG: config leaf-list values and list
/// keys are unique).
fn alias_lists(path: &str, a: &Alias, max: usize) -> Result<(), DataError> {
    count(path, "target-prefix", a.target_prefix.len(), max)?;
    count(path, "target-port-range", a.target_port_range.len(), max)?;
    count(path, "target-protocol", a.target_protocol.len(), max)?;
    count(path, "target-fqdn", a.target_fqdn.len(), max)?;
    count(path, "target-uri", a.target_uri.len(), max)?;
    unique(
        path,
        "target-prefix",
        a.target_prefix.iter().map(|p| p.to_string()),
    )?;
    unique(
        path,
        "target-port-range lower-port",
        a.target_port_range.iter().map(|r| r.lower_port.to_string()),
    )?;
    unique(
        path,
        "target-protocol",
        a.target_protocol.iter().map(|p| p.to_string()),
    )?;
    unique(
        path,
        "target-fqdn",
        a.target_fqdn.iter().map(|f| f.to_ascii_lowercase()),
    )?;
    unique(path, "target-uri", a.target_uri.iter().cloned())
}

/// Ranges a target may never cover (§6.1: "MUST NOT include broadcast,
/// loopback, or multicast addresses"), plus the unspecified address, and
/// their IPv4-mapped IPv6 forms.
const FORBIDDEN: &[(&str, &str)] = &[
    ("127.0.0.0/8", "loopback"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("0.0.0.0/32", "unspecified address"),
    ("::1/128", "loopback"),
    ("ff00::/8", "multicast"),
    ("::/128", "unspecified address"),
    ("::ffff:127.0.0.0/104", "IPv4-mapped loopback"),
    ("::ffff:224.0.0.0/100", "IPv4-mapped multicast"),
];

/// Checks a target prefix (alias `target-prefix`, ACE destination).
fn target_prefix(
    path: &str,
    field: &'static str,
    p: &IpPrefix,
    policy: &Policy,
) -> Result<(), DataError> {
    for (range, reason) in FORBIDDEN {
        // The constants parse (tested below); a failure would skip the range.
        let Ok(r) = range.parse::<IpPrefix>() else {
            continue;
        };
        if r.overlaps(p) {
            return Err(DataError::BadPrefix {
                path: path.into(),
                field,
                value: p.to_string(),
                reason,
            });
        }
    }
    let in_scope =
        policy.client_scope.is_empty() || policy.client_scope.iter().any(|s| s.contains(p));
    if !in_scope {
        return Err(DataError::OutOfScope {
            path: path.into(),
            field,
            value: p.to_string(),
        });
    }
    Ok(())
}

/// `inet:domain-name` (RFC 6991), loosely: 1..253 octets, labels 1..63 of
/// letters, digits, '-' and '_' (RFC 6991 allows the latter), and not an
/// IP address (those belong in target-prefix).
fn fqdn(path: &str, f: &str) -> Result<(), DataError> {
    let bad = |reason| {
        Err(DataError::BadName {
            path: path.into(),
            field: "target-fqdn",
            value: f.into(),
            reason,
        })
    };
    let name = f.strip_suffix('.').unwrap_or(f);
    if name.is_empty() || name.len() > 253 {
        return bad("length must be 1..253");
    }
    if name.parse::<IpAddr>().is_ok() {
        return bad("an IP address is not a domain name");
    }
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !name.split('.').all(label_ok) {
        return bad("labels must be 1..63 letters, digits, '-' or '_'");
    }
    Ok(())
}

/// `inet:uri` (RFC 3986), loosely: a scheme, ':', then no spaces.
fn uri(path: &str, u: &str) -> Result<(), DataError> {
    let scheme = u.split_once(':').map(|(s, _)| s).unwrap_or("");
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !scheme_ok || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(DataError::BadName {
            path: path.into(),
            field: "target-uri",
            value: u.into(),
            reason: "not a URI (scheme:...)",
        });
    }
    Ok(())
}

// -------------------------------------------------------------------- ACLs

/// §7.2 checks on a filtering-rule request.
pub fn validate_acls(acls: &Acls, policy: &Policy) -> Result<(), DataError> {
    acls_at(ACLS, acls, policy)
}

fn acls_at(base: &str, acls: &Acls, policy: &Policy) -> Result<(), DataError> {
    count(base, "acl", acls.acl.len(), policy.max_acls)?;
    unique(base, "acl name", acls.acl.iter().map(|a| a.name.clone()))?;
    for a in &acls.acl {
        acl(&format!("{base}/acl={}", a.name), a, policy)?;
    }
    Ok(())
}

fn acl(path: &str, a: &Acl, policy: &Policy) -> Result<(), DataError> {
    name_len(path, "name", &a.name, 1, ACL_NAME_MAX)?;
    if a.pending_lifetime.is_some() {
        return Err(DataError::ReadOnly {
            path: path.into(),
            field: "pending-lifetime",
        });
    }
    let aces = a.ace_list();
    count(path, "ace", aces.len(), policy.max_aces_per_acl)?;
    unique(path, "ace name", aces.iter().map(|e| e.name.clone()))?;
    for e in aces {
        ace(&format!("{path}/aces/ace={}", e.name), a, e, policy)?;
    }
    Ok(())
}

fn ace(path: &str, acl: &Acl, e: &Ace, policy: &Policy) -> Result<(), DataError> {
    name_len(path, "name", &e.name, 1, ACL_NAME_MAX)?;
    if e.statistics.is_some() {
        return Err(DataError::ReadOnly {
            path: path.into(),
            field: "statistics",
        });
    }
    actions(path, e.actions.as_ref())?;
    let m = e.matches.clone().unwrap_or_default();
    let mpath = format!("{path}/matches");
    if let Some(l3) = &m.l3 {
        l3_match(&mpath, acl.acl_type, l3, policy)?;
    }
    if let Some(l4) = &m.l4 {
        l4_match(&mpath, l4)?;
    }
    protocol_consistency(&mpath, &m)?;
    if policy.require_destination_for_immediate
        && acl.effective_activation() == ActivationType::Immediate
    {
        immediate_destination(path, acl, &m)?;
    }
    Ok(())
}

/// §7.2: actions are mandatory; §4.1: no `reject`; YANG `when`: rate-limit
/// only with accept; a negative rate makes no sense.
fn actions(path: &str, a: Option<&Actions>) -> Result<(), DataError> {
    let Some(a) = a else {
        return Err(DataError::MissingActions { path: path.into() });
    };
    let path = format!("{path}/actions");
    if a.forwarding == ForwardingAction::Reject {
        return Err(DataError::UnsupportedAction {
            path,
            action: a.forwarding.to_string(),
        });
    }
    let Some(rate) = a.rate_limit else {
        return Ok(());
    };
    if a.forwarding != ForwardingAction::Accept {
        return Err(DataError::RateLimitNotAccept {
            path,
            value: rate.to_string(),
            action: a.forwarding.to_string(),
        });
    }
    if rate.0 < 0 {
        return Err(DataError::NegativeRateLimit {
            path,
            value: rate.to_string(),
        });
    }
    Ok(())
}

fn l3_match(
    path: &str,
    acl_type: Option<AclType>,
    l3: &L3Match,
    policy: &Policy,
) -> Result<(), DataError> {
    // The YANG `when` on ipv4/ipv6 ties them to the ACL type. An absent type
    // is let through: the draft's own examples omit it (Appendix B).
    let (name, allowed) = match l3 {
        L3Match::Ipv4(_) => ("ipv4", acl_type.is_none_or(AclType::allows_ipv4)),
        L3Match::Ipv6(_) => ("ipv6", acl_type.is_none_or(AclType::allows_ipv6)),
    };
    if !allowed {
        let acl_type = acl_type.map(|t| t.to_string()).unwrap_or_default();
        return Err(DataError::L3TypeMismatch {
            path: path.into(),
            l3: name,
            acl_type,
        });
    }
    match l3 {
        L3Match::Ipv4(m) => ipv4_match(&format!("{path}/ipv4"), m, policy),
        L3Match::Ipv6(m) => ipv6_match(&format!("{path}/ipv6"), m, policy),
    }
}

fn ipv4_match(path: &str, m: &Ipv4Match, policy: &Policy) -> Result<(), DataError> {
    range(path, "dscp", m.dscp, 63, "0..63")?;
    range(path, "ecn", m.ecn, 3, "0..3")?;
    range(path, "offset", m.offset, 16383, "0..16383")?;
    if let Some(ihl) = m.ihl.filter(|v| !(5..=60).contains(v)) {
        return Err(DataError::OutOfRange {
            path: path.into(),
            field: "ihl",
            value: ihl.into(),
            range: "5..60",
        });
    }
    // §4.2: a client MUST NOT send 'fragment' and 'flags' together.
    if m.fragment.is_some() && m.flags.is_some() {
        return Err(DataError::Conflicting {
            path: path.into(),
            first: "fragment",
            second: "flags",
        });
    }
    if let Some(f) = &m.fragment {
        operator(&format!("{path}/fragment"), f.operator)?;
    }
    if let Some(d) = &m.destination_ipv4_network {
        target_prefix(path, "destination-ipv4-network", &d.0, policy)?;
    }
    Ok(())
}

fn ipv6_match(path: &str, m: &Ipv6Match, policy: &Policy) -> Result<(), DataError> {
    range(path, "dscp", m.dscp, 63, "0..63")?;
    range(path, "ecn", m.ecn, 3, "0..3")?;
    range(path, "flow-label", m.flow_label, 0xF_FFFF, "0..1048575")?;
    if let Some(f) = &m.fragment {
        // §4.3 fragment-type: df "Must be set to 0 when it appears in an
        // IPv6 filter".
        if f.fragment_type.has("df") {
            return Err(DataError::DfInIpv6 {
                path: format!("{path}/fragment"),
                value: f.fragment_type.to_string(),
            });
        }
        operator(&format!("{path}/fragment"), f.operator)?;
    }
    if let Some(d) = &m.destination_ipv6_network {
        target_prefix(path, "destination-ipv6-network", &d.0, policy)?;
    }
    Ok(())
}

fn l4_match(path: &str, l4: &L4Match) -> Result<(), DataError> {
    let path = format!("{path}/{}", l4.name());
    let (src, dst) = match l4 {
        L4Match::Tcp(t) => {
            tcp_match(&path, t)?;
            (
                t.source_port_range_or_operator,
                t.destination_port_range_or_operator,
            )
        }
        L4Match::Udp(u) => (
            u.source_port_range_or_operator,
            u.destination_port_range_or_operator,
        ),
        L4Match::Icmp(_) => (None, None),
    };
    port_match(&path, "source-port-range-or-operator", src)?;
    port_match(&path, "destination-port-range-or-operator", dst)
}

fn tcp_match(path: &str, t: &TcpMatch) -> Result<(), DataError> {
    if let Some(d) = t.data_offset.filter(|v| !(5..=15).contains(v)) {
        return Err(DataError::OutOfRange {
            path: path.into(),
            field: "data-offset",
            value: d.into(),
            range: "5..15",
        });
    }
    // §4.2: 'flags-bitmask' and 'flags' MUST NOT be set together.
    if t.flags_bitmask.is_some() && t.flags.is_some() {
        return Err(DataError::Conflicting {
            path: path.into(),
            first: "flags-bitmask",
            second: "flags",
        });
    }
    if let Some(fb) = &t.flags_bitmask {
        operator(&format!("{path}/flags-bitmask"), fb.operator)?;
        // §4.3: the bitmask covers the last 4 bits of byte 12 and byte 13.
        range(
            path,
            "flags-bitmask/bitmask",
            Some(fb.bitmask),
            0x0FFF,
            "0..4095",
        )?;
    }
    Ok(())
}

fn port_match(path: &str, field: &'static str, p: Option<PortMatch>) -> Result<(), DataError> {
    match p {
        Some(PortMatch::Range { lower, upper }) if lower > upper => Err(DataError::PortOrder {
            path: format!("{path}/{field}"),
            lower,
            upper,
        }),
        _ => Ok(()),
    }
}

/// The DOTS operator bits: `match` ((data & v) == v) and `any`
/// ((data & v) != 0) are alternatives; both at once is meaningless.
fn operator(path: &str, op: Option<Operator>) -> Result<(), DataError> {
    match op {
        Some(op) if op.has("match") && op.has("any") => Err(DataError::OperatorConflict {
            path: path.into(),
            value: op.to_string(),
        }),
        _ => Ok(()),
    }
}

/// An l3 `protocol` must name the l4 match's protocol: 6 for tcp, 17 for
/// udp, 1 (IPv4) or 58 (IPv6) for icmp.
fn protocol_consistency(path: &str, m: &Matches) -> Result<(), DataError> {
    let (Some(l3), Some(l4)) = (&m.l3, &m.l4) else {
        return Ok(());
    };
    let (protocol, v6) = match l3 {
        L3Match::Ipv4(v4) => (v4.protocol, false),
        L3Match::Ipv6(v6) => (v6.protocol, true),
    };
    let Some(protocol) = protocol else {
        return Ok(());
    };
    let expected = match (l4, v6) {
        (L4Match::Tcp(_), _) => 6,
        (L4Match::Udp(_), _) => 17,
        (L4Match::Icmp(_), false) => 1,
        (L4Match::Icmp(_), true) => 58,
    };
    if protocol != expected {
        let l3 = if v6 { "ipv6" } else { "ipv4" };
        return Err(DataError::ProtocolMismatch {
            path: format!("{path}/{l3}/protocol"),
            protocol,
            l4: l4.name(),
            expected: expected.to_string(),
        });
    }
    Ok(())
}

/// §7.2: the destination network is mandatory when activation-type is
/// `immediate` (an immediate rule would otherwise apply to the whole
/// client domain at once).
fn immediate_destination(path: &str, acl: &Acl, m: &Matches) -> Result<(), DataError> {
    let has = match &m.l3 {
        Some(L3Match::Ipv4(v4)) => v4.destination_ipv4_network.is_some(),
        Some(L3Match::Ipv6(v6)) => v6.destination_ipv6_network.is_some(),
        None => false,
    };
    if has {
        Ok(())
    } else {
        Err(DataError::MissingDestination {
            path: path.into(),
            acl: acl.name.clone(),
        })
    }
}

// ----------------------------------------------------------------- helpers

fn name_len(
    path: &str,
    field: &'static str,
    v: &str,
    min: usize,
    max: usize,
) -> Result<(), DataError> {
    let n = v.chars().count();
    if n < min || n > max {
        return Err(DataError::NameLength {
            path: path.into(),
            field,
            value: v.into(),
            min,
            max,
        });
    }
    Ok(())
}

fn count(path: &str, field: &'static str, n: usize, max: usize) -> Result<(), DataError> {
    if n > max {
        return Err(DataError::TooMany {
            path: path.into(),
            field,
            count: n,
            max,
        });
    }
    Ok(())
}

fn unique(
    path: &str,
    field: &'static str,
    values: impl Iterator<Item = String>,
) -> Result<(), DataError> {
    let mut seen = HashSet::new();
    for v in values {
        if !seen.insert(v.clone()) {
            return Err(DataError::Duplicate {
                path: path.into(),
                field,
                value: v,
            });
        }
    }
    Ok(())
}

fn range<T: Into<u64> + Copy>(
    path: &str,
    field: &'static str,
    v: Option<T>,
    max: u64,
    text: &'static str,
) -> Result<(), DataError> {
    match v.map(Into::into) {
        Some(v) if v > max => Err(DataError::OutOfRange {
            path: path.into(),
            field,
            value: v,
            range: text,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_ranges_parse() {
        for (r, _) in FORBIDDEN {
            assert!(r.parse::<IpPrefix>().is_ok(), "{r}");
        }
    }
}
