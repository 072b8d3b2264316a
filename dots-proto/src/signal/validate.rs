//! The rules a DOTS server enforces on requests (sections 4.4.1, 4.4.4,
//! 4.5.2). Decoding (syntax, types, key table) happens before; these are
//! the semantic checks. Each failure is a [`SignalError`] with its code.

use std::collections::HashSet;
use std::fmt::Display;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::config::{ConfigParameters, DecimalParam, IntParam, SignalConfig};
use super::error::SignalError;
use super::mitigation::{AttackStatus, ControlAcl, IpPrefix, Lifetime, MitigationScope, Scope, Target};
use super::uri::MitigatePath;

/// Server policy for mitigation requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MitigationPolicy {
    /// "The DOTS server MAY refuse an indefinite lifetime, for policy
    /// reasons; the granted lifetime value is returned in the response."
    pub allow_indefinite: bool,
    /// Longest lifetime granted; longer requests are shortened, not refused.
    pub max_lifetime: u32,
}

impl Default for MitigationPolicy {
    fn default() -> Self {
        MitigationPolicy { allow_indefinite: false, max_lifetime: 86_400 }
    }
}

/// A mitigation request that passed every check of this module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MitigationRequest {
    pub cdid: Option<String>,
    pub cuid: String,
    pub mid: u32,
    pub target: Target,
    /// As sent; None only in an efficacy update (Figure 16 has none).
    pub requested_lifetime: Option<Lifetime>,
    /// After the policy; what the response must report (section 4.4.1.1).
    pub granted_lifetime: Option<Lifetime>,
    /// Default true (section 4.4.1.1).
    pub trigger_mitigation: bool,
    /// Present in an efficacy update (section 4.4.3).
    pub attack_status: Option<AttackStatus>,
    /// RFC 9133 filtering control: names checked non-empty and unique;
    /// whether they exist and may be used now is the server's to decide.
    pub acl_list: Vec<ControlAcl>,
}

/// Validates a PUT to `/mitigate/cuid=../mid=..` with its decoded body.
pub fn validate_mitigation_put(
    path: &MitigatePath,
    body: &MitigationScope,
    policy: &MitigationPolicy,
) -> Result<MitigationRequest, SignalError> {
    let mid = path.require_mid()?;
    // "a DOTS client MUST NOT include multiple entries in the 'scope'
    // array of the same PUT request" (4.4.1.1); 4.00 per 4.4.1.3.
    let [scope] = body.scopes.as_slice() else {
        return Err(SignalError::ScopeCount { count: body.scopes.len() });
    };
    check_direction(scope)?;
    check_target(&scope.target)?;
    check_acl_list(&scope.acl_list)?;
    let requested = check_lifetime(scope)?;
    Ok(MitigationRequest {
        cdid: path.cdid.clone(),
        cuid: path.cuid.clone(),
        mid,
        target: scope.target.clone(),
        requested_lifetime: requested,
        granted_lifetime: requested.map(|l| grant(l, policy)),
        trigger_mitigation: scope.trigger_mitigation.unwrap_or(true),
        attack_status: scope.attack_status,
        acl_list: scope.acl_list.clone(),
    })
}

/// RFC 9133 'acl-list': every entry names an ACL, each ACL at most once
/// (the list is keyed by 'acl-name').
fn check_acl_list(acls: &[ControlAcl]) -> Result<(), SignalError> {
    let names: Vec<String> = acls.iter().map(|a| a.acl_name.clone()).collect();
    non_empty("acl-name", &names)?;
    unique("acl-name", &names)
}

/// A DELETE needs both 'cuid' and 'mid' (section 4.4.4).
pub fn validate_mitigation_delete(path: &MitigatePath) -> Result<u32, SignalError> {
    path.require_mid()
}

/// 'cuid'/'cdid'/'mid' never go in a request body (4.4.1.1, 4.4.1.2), nor
/// do the server-to-client-only members of the YANG 'direction' choice.
fn check_direction(s: &Scope) -> Result<(), SignalError> {
    let forbidden = [
        ("cuid", s.cuid.is_some()),
        ("cdid", s.cdid.is_some()),
        ("mid", s.mid.is_some()),
        ("mitigation-start", s.mitigation_start.is_some()),
        ("status", s.status.is_some()),
        ("conflict-information", s.conflict_information.is_some()),
        ("bytes-dropped", s.bytes_dropped.is_some()),
        ("bps-dropped", s.bps_dropped.is_some()),
        ("pkts-dropped", s.pkts_dropped.is_some()),
        ("pps-dropped", s.pps_dropped.is_some()),
    ];
    match forbidden.iter().find(|(_, present)| *present) {
        Some((field, _)) => Err(SignalError::ForbiddenInRequest { field }),
        None => Ok(()),
    }
}

/// The checks on the targets of a request.
pub fn check_target(t: &Target) -> Result<(), SignalError> {
    // "at least one of the attributes 'target-prefix', 'target-fqdn',
    // 'target-uri', or 'alias-name' MUST be present" (4.4.1.1).
    if t.target_prefix.is_empty() && t.target_fqdn.is_empty() && t.target_uri.is_empty() && t.alias_name.is_empty()
    {
        return Err(SignalError::MissingTarget);
    }
    // "Attributes ... with empty values MUST NOT be present" (4.4.1.1).
    non_empty("target-fqdn", &t.target_fqdn)?;
    non_empty("target-uri", &t.target_uri)?;
    non_empty("alias-name", &t.alias_name)?;
    // Leaf-list and list keys are unique (RFC 7950, 7.7 and 7.8).
    unique("target-prefix", &t.target_prefix)?;
    unique("target-protocol", &t.target_protocol)?;
    unique("target-fqdn", &t.target_fqdn)?;
    unique("target-uri", &t.target_uri)?;
    unique("alias-name", &t.alias_name)?;
    let lowers: Vec<u16> = t.target_port_range.iter().map(|r| r.lower_port).collect();
    unique("target-port-range", &lowers)?;
    for r in &t.target_port_range {
        if r.upper() < r.lower_port {
            return Err(SignalError::PortRangeOrder { lower: r.lower_port, upper: r.upper() });
        }
    }
    t.target_prefix.iter().try_for_each(check_prefix)?;
    t.target_fqdn.iter().try_for_each(|f| check_fqdn(f))?;
    t.target_uri.iter().try_for_each(|u| check_uri(u))
}

fn non_empty(field: &'static str, v: &[String]) -> Result<(), SignalError> {
    match v.iter().any(|s| s.trim().is_empty()) {
        true => Err(SignalError::EmptyValue { field }),
        false => Ok(()),
    }
}

fn unique<T: Eq + std::hash::Hash + Display>(field: &'static str, v: &[T]) -> Result<(), SignalError> {
    let mut seen = HashSet::new();
    match v.iter().find(|x| !seen.insert(*x)) {
        Some(d) => Err(SignalError::DuplicateValue { field, value: d.to_string() }),
        None => Ok(()),
    }
}

/// Ranges a target prefix may not overlap: "The prefix list MUST NOT
/// include broadcast, loopback, or multicast addresses" (4.4.1.1); we add
/// the unspecified/"this network" addresses, which name no host.
fn forbidden_ranges() -> [(IpPrefix, &'static str); 6] {
    let p = |a: IpAddr, l| IpPrefix { addr: a, len: l };
    [
        (p(Ipv4Addr::new(127, 0, 0, 0).into(), 8), "loopback"),
        (p(Ipv4Addr::new(224, 0, 0, 0).into(), 4), "multicast"),
        (p(Ipv4Addr::BROADCAST.into(), 32), "broadcast"),
        (p(Ipv4Addr::UNSPECIFIED.into(), 8), "unspecified (this network)"),
        (p(Ipv6Addr::LOCALHOST.into(), 128), "loopback"),
        (p(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0).into(), 8), "multicast"),
    ]
}

fn check_prefix(p: &IpPrefix) -> Result<(), SignalError> {
    let unspecified6 = IpPrefix { addr: Ipv6Addr::UNSPECIFIED.into(), len: 128 };
    let hit = forbidden_ranges()
        .into_iter()
        .chain([(unspecified6, "unspecified")])
        .find(|(r, _)| r.overlaps(p));
    match hit {
        Some((_, reason)) => Err(SignalError::InvalidTargetPrefix { prefix: p.to_string(), reason }),
        None => Ok(()),
    }
}

/// inet:domain-name: 1-253 characters, labels of 1-63 letters, digits,
/// hyphens or underscores, optionally ending with a dot.
fn check_fqdn(f: &str) -> Result<(), SignalError> {
    let name = f.strip_suffix('.').unwrap_or(f);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(SignalError::InvalidValue { field: "target-fqdn", value: f.to_string(), reason: "not a domain name" });
    }
    Ok(())
}

/// inet:uri (RFC 3986): a scheme, ':' and no whitespace. The host is
/// checked like an FQDN once resolved, by the server (4.4.1.1).
fn check_uri(u: &str) -> Result<(), SignalError> {
    let bad = |reason| SignalError::InvalidValue { field: "target-uri", value: u.to_string(), reason };
    let (scheme, rest) = u.split_once(':').ok_or_else(|| bad("no scheme"))?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !scheme_ok {
        return Err(bad("invalid scheme"));
    }
    if rest.is_empty() || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("empty or contains whitespace"));
    }
    Ok(())
}

fn check_lifetime(s: &Scope) -> Result<Option<Lifetime>, SignalError> {
    match s.lifetime {
        // "A lifetime of '0' in a mitigation request is an invalid value".
        Some(Lifetime::Seconds(0)) => Err(SignalError::ZeroLifetime),
        Some(l) => Ok(Some(l)),
        // Mandatory in a request, but the efficacy update of Figure 16
        // (a refresh carrying 'attack-status') has none.
        None if s.attack_status.is_some() => Ok(None),
        None => Err(SignalError::MissingAttribute { field: "lifetime" }),
    }
}

/// The lifetime a server grants: shortened to the policy maximum, and an
/// indefinite one refused by policy becomes the maximum.
pub fn grant(requested: Lifetime, policy: &MitigationPolicy) -> Lifetime {
    match requested {
        Lifetime::Indefinite if policy.allow_indefinite => Lifetime::Indefinite,
        Lifetime::Indefinite => Lifetime::Seconds(policy.max_lifetime),
        Lifetime::Seconds(s) => Lifetime::Seconds(s.min(policy.max_lifetime)),
    }
}

// ------------------------------------------------------------ config

/// Server policy for session configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPolicy {
    /// Acceptable ranges and current values (what GET /config returns).
    pub acceptable: SignalConfig,
    /// "'0' is used to disable the heartbeat mechanism" (4.5.1), even when
    /// 0 is below min-value (Figure 23 sends 0 against Figure 20's 15).
    pub allow_heartbeat_disable: bool,
}

impl Default for ConfigPolicy {
    fn default() -> Self {
        ConfigPolicy { acceptable: SignalConfig::server_default(), allow_heartbeat_disable: true }
    }
}

/// Validates a PUT to `/config/sid=..` and returns the resulting session
/// configuration (the acceptable ranges with the requested currents).
pub fn validate_config_put(
    sid: Option<u32>,
    body: &SignalConfig,
    policy: &ConfigPolicy,
) -> Result<SignalConfig, SignalError> {
    // "does not include a 'sid' Uri-Path ... 4.00" (4.5.2).
    let sid = sid.ok_or(SignalError::MissingUriParam { param: "sid" })?;
    if body.sid.is_some_and(|s| s != sid) {
        return Err(SignalError::InvalidValue { field: "sid", value: format!("{:?}", body.sid), reason: "differs from the Uri-Path 'sid'" });
    }
    let sets = [("mitigating-config", &body.mitigating_config), ("idle-config", &body.idle_config)];
    // "At least one of the attributes ... MUST be present".
    if sets.iter().all(|(_, p)| p.as_ref().is_none_or(ConfigParameters::is_empty)) {
        return Err(SignalError::EmptyConfig);
    }
    let mut out = policy.acceptable.clone();
    out.sid = None;
    let targets = [&mut out.mitigating_config, &mut out.idle_config];
    for ((set, req), acc) in sets.into_iter().zip(targets) {
        if let Some(req) = req {
            let acc = acc.get_or_insert_with(ConfigParameters::server_default);
            apply_set(set, req, acc, policy.allow_heartbeat_disable)?;
        }
    }
    Ok(out)
}

fn apply_set(set: &str, req: &ConfigParameters, acc: &mut ConfigParameters, hb_off: bool) -> Result<(), SignalError> {
    let int_slots = [
        &mut acc.heartbeat_interval,
        &mut acc.missing_hb_allowed,
        &mut acc.probing_rate,
        &mut acc.max_retransmit,
    ];
    for ((name, r), slot) in req.int_params().into_iter().zip(int_slots) {
        let Some(r) = r else { continue };
        let v = requested_int(set, name, r)?;
        let a = slot.get_or_insert_with(IntParam::default);
        let disable = name == "heartbeat-interval" && v == 0 && hb_off;
        if !disable {
            in_range(set, name, v, a.min_value, a.max_value)?;
        }
        a.current_value = Some(v);
    }
    let dec_slots = [&mut acc.ack_timeout, &mut acc.ack_random_factor];
    for ((name, r), slot) in req.decimal_params().into_iter().zip(dec_slots) {
        let Some(r) = r else { continue };
        if r.max_value_decimal.is_some() || r.min_value_decimal.is_some() {
            return Err(SignalError::ForbiddenInRequest { field: if r.max_value_decimal.is_some() { "max-value-decimal" } else { "min-value-decimal" } });
        }
        let v = r.current_value_decimal.ok_or(SignalError::EmptyValue { field: name })?;
        let a = slot.get_or_insert_with(DecimalParam::default);
        in_range(set, name, v, a.min_value_decimal, a.max_value_decimal)?;
        a.current_value_decimal = Some(v);
    }
    Ok(())
}

/// max-value/min-value are server-to-client only (section 5.3 tree).
fn requested_int(_set: &str, name: &'static str, r: &IntParam) -> Result<u16, SignalError> {
    if r.max_value.is_some() {
        return Err(SignalError::ForbiddenInRequest { field: "max-value" });
    }
    if r.min_value.is_some() {
        return Err(SignalError::ForbiddenInRequest { field: "min-value" });
    }
    r.current_value.ok_or(SignalError::EmptyValue { field: name })
}

fn in_range<T: PartialOrd + Display + Copy>(
    set: &str,
    name: &str,
    v: T,
    min: Option<T>,
    max: Option<T>,
) -> Result<(), SignalError> {
    let below = min.is_some_and(|m| v < m);
    let above = max.is_some_and(|m| v > m);
    if below || above {
        let show = |x: Option<T>| x.map_or_else(|| "-".to_string(), |x| x.to_string());
        return Err(SignalError::ConfigOutOfRange {
            field: format!("{set}/{name}"),
            value: v.to_string(),
            min: show(min),
            max: show(max),
        });
    }
    Ok(())
}
