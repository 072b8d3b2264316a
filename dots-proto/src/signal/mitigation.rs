//! The 'ietf-dots-signal-channel:mitigation-scope' message (sections 4.4,
//! 5.3): requests from clients and responses/notifications from servers.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::error::SignalError;
use super::keys::{self, id};
use super::tree::{Fields, MapBuilder, Node};

/// The body of a mitigation request, response or status notification.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MitigationScope {
    pub scopes: Vec<Scope>,
}

/// The targets of a scope or of a conflict-scope (`data-channel:target`
/// plus 'alias-name').
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    pub target_prefix: Vec<IpPrefix>,
    pub target_port_range: Vec<PortRange>,
    pub target_protocol: Vec<u8>,
    pub target_fqdn: Vec<String>,
    pub target_uri: Vec<String>,
    pub alias_name: Vec<String>,
}

/// One entry of 'scope'. Server-to-client-only members (mid, status,
/// counters, ...) and the client-to-server-only 'attack-status' share the
/// struct; [`super::validate`] refuses the wrong direction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope {
    /// Only in responses (Figure 10); in requests the mid is in the URI.
    pub mid: Option<u32>,
    /// Table 5 keys 3/4: never allowed in a body by this version of the
    /// text, kept so that the validator can say so.
    pub cdid: Option<String>,
    pub cuid: Option<String>,
    pub target: Target,
    pub lifetime: Option<Lifetime>,
    pub trigger_mitigation: Option<bool>,
    /// Seconds since the epoch, without CBOR tag 1 (section 4.4.2).
    pub mitigation_start: Option<u64>,
    pub status: Option<Status>,
    pub conflict_information: Option<ConflictInformation>,
    pub bytes_dropped: Option<u64>,
    pub bps_dropped: Option<u64>,
    pub pkts_dropped: Option<u64>,
    pub pps_dropped: Option<u64>,
    pub attack_status: Option<AttackStatus>,
    /// RFC 9133 'ietf-dots-signal-control:acl-list': filters the client
    /// installed over the data channel, to (de)activate with this request.
    pub acl_list: Vec<ControlAcl>,
}

/// 'lifetime': a uint32 number of seconds, or -1 (section 4.4.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    Seconds(u32),
    Indefinite,
}

impl Lifetime {
    /// "The RECOMMENDED lifetime of a mitigation request is 3600 seconds".
    pub const RECOMMENDED: Lifetime = Lifetime::Seconds(3600);
}

/// An entry of 'target-port-range' (keyed by lower-port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub lower_port: u16,
    /// "When only 'lower-port' is present, it represents a single port".
    pub upper_port: Option<u16>,
}

impl PortRange {
    pub fn upper(&self) -> u16 {
        self.upper_port.unwrap_or(self.lower_port)
    }
}

/// An inet:ip-prefix in CIDR notation (RFC 4632).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpPrefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl IpPrefix {
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        (len <= max_len(&addr)).then_some(IpPrefix { addr, len })
    }

    /// True if the two prefixes share at least one address.
    pub fn overlaps(&self, other: &IpPrefix) -> bool {
        let len = self.len.min(other.len);
        match (self.addr, other.addr) {
            (IpAddr::V4(a), IpAddr::V4(b)) => masked(u32::from(a).into(), 32, len) == masked(u32::from(b).into(), 32, len),
            (IpAddr::V6(a), IpAddr::V6(b)) => masked(u128::from(a), 128, len) == masked(u128::from(b), 128, len),
            _ => false,
        }
    }
}

fn max_len(a: &IpAddr) -> u8 {
    if a.is_ipv4() { 32 } else { 128 }
}

fn masked(v: u128, width: u32, len: u8) -> u128 {
    let len = u32::from(len);
    if len == 0 { 0 } else { v >> (width - len) }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for IpPrefix {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (a, l) = s.split_once('/').ok_or(())?;
        if l.is_empty() || l.len() > 3 || !l.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        IpPrefix::new(a.parse().map_err(|_| ())?, l.parse().map_err(|_| ())?).ok_or(())
    }
}

macro_rules! iana_enum {
    ($(#[$m:meta])* $name:ident, $labels:path, { $($variant:ident = $v:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant = $v),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            pub fn from_code(c: u64) -> Option<Self> {
                match c { $($v => Some($name::$variant),)* _ => None }
            }
            pub fn code(self) -> u64 { self as u64 }
            /// The IANA label, also the JSON encoding.
            pub fn label(self) -> &'static str {
                keys::label($labels, self.code()).unwrap_or("?")
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.label())
            }
        }
    };
}

iana_enum!(
    /// 'status' (Table 3, section 10.6.2).
    Status, keys::STATUS_LABELS, {
    AttackMitigationInProgress = 1,
    AttackSuccessfullyMitigated = 2,
    AttackStopped = 3,
    AttackExceededCapability = 4,
    DotsClientWithdrawnMitigation = 5,
    AttackMitigationTerminated = 6,
    AttackMitigationWithdrawn = 7,
    AttackMitigationSignalLoss = 8,
});
iana_enum!(
    /// 'conflict-status' (section 10.6.3).
    ConflictStatus, keys::CONFLICT_STATUS_LABELS, {
    RequestInactiveOtherActive = 1,
    RequestActive = 2,
    AllRequestsInactive = 3,
});
iana_enum!(
    /// 'conflict-cause' (section 10.6.4).
    ConflictCause, keys::CONFLICT_CAUSE_LABELS, {
    OverlappingTargets = 1,
    ConflictWithAcceptlist = 2,
    CuidCollision = 3,
});
iana_enum!(
    /// 'attack-status' of an efficacy update (Table 4, section 10.6.5).
    AttackStatus, keys::ATTACK_STATUS_LABELS, {
    UnderAttack = 1,
    AttackSuccessfullyMitigated = 2,
});

iana_enum!(
    /// RFC 9133 'activation-type' of a [`ControlAcl`] (RFC 8783's three
    /// values; keys::ACTIVATION_TYPE_LABELS).
    ActivationType, keys::ACTIVATION_TYPE_LABELS, {
    ActivateWhenMitigating = 1,
    Immediate = 2,
    Deactivate = 3,
});

/// An RFC 9133 'acl-list' entry: "acl-name" (key 23) and
/// "activation-type" (key 52; absent means activate-when-mitigating).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlAcl {
    pub acl_name: String,
    pub activation_type: Option<ActivationType>,
}

impl ControlAcl {
    /// The activation type with RFC 9133's default applied.
    pub fn effective_activation(&self) -> ActivationType {
        self.activation_type.unwrap_or(ActivationType::ActivateWhenMitigating)
    }
}

/// 'conflict-information' (section 4.4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConflictInformation {
    pub conflict_status: Option<ConflictStatus>,
    pub conflict_cause: Option<ConflictCause>,
    pub retry_timer: Option<u32>,
    pub conflict_scope: Option<ConflictScope>,
}

/// 'conflict-scope': the conflicting targets, ACLs or mid.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConflictScope {
    pub target: Target,
    pub acl_list: Vec<AclRef>,
    pub mid: Option<u32>,
}

/// An 'acl-list' entry: a reference to a data-channel ACL (RFC 8783).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclRef {
    pub acl_name: String,
    pub acl_type: Option<String>,
}

// ---------------------------------------------------------------- tree

impl MitigationScope {
    pub(crate) fn from_node(n: Node) -> Result<Self, SignalError> {
        let mut f = Fields::new(id::MITIGATION_SCOPE, n)?;
        let scopes = f.list(id::SCOPE)?.unwrap_or_default();
        f.finish()?;
        let scopes = scopes.into_iter().map(Scope::from_node).collect::<Result<_, _>>()?;
        Ok(MitigationScope { scopes })
    }

    pub(crate) fn to_node(&self) -> Node {
        let scopes = self.scopes.iter().map(Scope::to_node).collect();
        MapBuilder::new().put(id::SCOPE, Node::List(scopes)).build()
    }
}

impl Target {
    fn take(f: &mut Fields) -> Result<Self, SignalError> {
        Ok(Target {
            target_prefix: f.texts(id::TARGET_PREFIX)?.iter().map(|s| prefix(s)).collect::<Result<_, _>>()?,
            target_port_range: f.list_of(id::TARGET_PORT_RANGE, PortRange::from_node)?,
            target_protocol: f.uints(id::TARGET_PROTOCOL)?.into_iter().map(|p| p as u8).collect(),
            target_fqdn: f.texts(id::TARGET_FQDN)?,
            target_uri: f.texts(id::TARGET_URI)?,
            alias_name: f.texts(id::ALIAS_NAME)?,
        })
    }

    fn put(&self, b: &mut MapBuilder) {
        let prefixes: Vec<String> = self.target_prefix.iter().map(|p| p.to_string()).collect();
        b.texts(id::TARGET_PREFIX, &prefixes);
        if !self.target_port_range.is_empty() {
            let l = self.target_port_range.iter().map(|r| r.to_node()).collect();
            b.put(id::TARGET_PORT_RANGE, Node::List(l));
        }
        if !self.target_protocol.is_empty() {
            let l = self.target_protocol.iter().map(|p| Node::Uint((*p).into())).collect();
            b.put(id::TARGET_PROTOCOL, Node::List(l));
        }
        b.texts(id::TARGET_FQDN, &self.target_fqdn);
        b.texts(id::TARGET_URI, &self.target_uri);
        b.texts(id::ALIAS_NAME, &self.alias_name);
    }

    pub fn is_empty(&self) -> bool {
        self == &Target::default()
    }
}

fn prefix(s: &str) -> Result<IpPrefix, SignalError> {
    s.parse().map_err(|_| SignalError::InvalidValue {
        field: "target-prefix",
        value: s.to_string(),
        reason: "not an IP prefix in CIDR notation with a length of at most 32 (IPv4) or 128 (IPv6)",
    })
}

impl PortRange {
    fn from_node(n: Node) -> Result<Self, SignalError> {
        let mut f = Fields::new(id::TARGET_PORT_RANGE, n)?;
        let lower = f.uint(id::LOWER_PORT)?.ok_or(SignalError::MissingAttribute { field: "lower-port" })?;
        let upper = f.uint(id::UPPER_PORT)?;
        f.finish()?;
        // The table bounds both to u16 already.
        Ok(PortRange { lower_port: lower as u16, upper_port: upper.map(|u| u as u16) })
    }

    fn to_node(self) -> Node {
        MapBuilder::new()
            .put(id::LOWER_PORT, Node::Uint(self.lower_port.into()))
            .opt(id::UPPER_PORT, self.upper_port.map(|u| Node::Uint(u.into())))
            .build()
    }
}

fn lifetime(n: Node) -> Result<Lifetime, SignalError> {
    match n {
        Node::Int(-1) => Ok(Lifetime::Indefinite),
        Node::Uint(s) => u32::try_from(s)
            .map(Lifetime::Seconds)
            .map_err(|_| SignalError::OutOfRange { field: "lifetime", value: s.to_string() }),
        _ => Err(SignalError::WrongType { field: "lifetime", expected: "integer" }),
    }
}

fn enum_of<T>(f: &mut Fields, key: u16, conv: fn(u64) -> Option<T>) -> Result<Option<T>, SignalError> {
    match f.uint(key)? {
        None => Ok(None),
        Some(v) => conv(v)
            .map(Some)
            .ok_or(SignalError::OutOfRange { field: keys::name(key), value: v.to_string() }),
    }
}

fn u32_of(f: &mut Fields, key: u16) -> Result<Option<u32>, SignalError> {
    // The table bounds these keys to uint32 already.
    Ok(f.uint(key)?.map(|v| v as u32))
}

impl Scope {
    fn from_node(n: Node) -> Result<Self, SignalError> {
        let mut f = Fields::new(id::SCOPE, n)?;
        let s = Scope {
            mid: u32_of(&mut f, id::MID)?,
            cdid: f.text(id::CDID)?,
            cuid: f.text(id::CUID)?,
            target: Target::take(&mut f)?,
            lifetime: f.take(id::LIFETIME).map(lifetime).transpose()?,
            trigger_mitigation: f.boolean(id::TRIGGER_MITIGATION)?,
            mitigation_start: f.uint(id::MITIGATION_START)?,
            status: enum_of(&mut f, id::STATUS, Status::from_code)?,
            conflict_information: f
                .take(id::CONFLICT_INFORMATION)
                .map(ConflictInformation::from_node)
                .transpose()?,
            bytes_dropped: f.uint(id::BYTES_DROPPED)?,
            bps_dropped: f.uint(id::BPS_DROPPED)?,
            pkts_dropped: f.uint(id::PKTS_DROPPED)?,
            pps_dropped: f.uint(id::PPS_DROPPED)?,
            attack_status: enum_of(&mut f, id::ATTACK_STATUS, AttackStatus::from_code)?,
            acl_list: f.list_of(id::CONTROL_ACL_LIST, ControlAcl::from_node)?,
        };
        f.finish()?;
        Ok(s)
    }

    fn to_node(&self) -> Node {
        let mut b = MapBuilder::new();
        let u = |v: Option<u64>| v.map(Node::Uint);
        b.opt(id::CDID, self.cdid.clone().map(Node::Text))
            .opt(id::CUID, self.cuid.clone().map(Node::Text))
            .opt(id::MID, u(self.mid.map(u64::from)));
        self.target.put(&mut b);
        b.opt(id::LIFETIME, self.lifetime.map(|l| match l {
            Lifetime::Seconds(s) => Node::Uint(s.into()),
            Lifetime::Indefinite => Node::Int(-1),
        }))
        .opt(id::MITIGATION_START, u(self.mitigation_start))
        .opt(id::STATUS, u(self.status.map(Status::code)))
        .opt(id::CONFLICT_INFORMATION, self.conflict_information.as_ref().map(ConflictInformation::to_node))
        .opt(id::BYTES_DROPPED, u(self.bytes_dropped))
        .opt(id::BPS_DROPPED, u(self.bps_dropped))
        .opt(id::PKTS_DROPPED, u(self.pkts_dropped))
        .opt(id::PPS_DROPPED, u(self.pps_dropped))
        .opt(id::ATTACK_STATUS, u(self.attack_status.map(AttackStatus::code)))
        .opt(id::TRIGGER_MITIGATION, self.trigger_mitigation.map(Node::Bool));
        if !self.acl_list.is_empty() {
            b.put(id::CONTROL_ACL_LIST, Node::List(self.acl_list.iter().map(ControlAcl::to_node).collect()));
        }
        b.build()
    }
}

impl ControlAcl {
    fn from_node(n: Node) -> Result<Self, SignalError> {
        let mut f = Fields::new(id::CONTROL_ACL_LIST, n)?;
        let acl_name = f.text(id::ACL_NAME)?.ok_or(SignalError::MissingAttribute { field: "acl-name" })?;
        let activation_type = enum_of(&mut f, id::ACTIVATION_TYPE, ActivationType::from_code)?;
        f.finish()?;
        Ok(ControlAcl { acl_name, activation_type })
    }

    fn to_node(&self) -> Node {
        MapBuilder::new()
            .put(id::ACL_NAME, Node::Text(self.acl_name.clone()))
            .opt(id::ACTIVATION_TYPE, self.activation_type.map(|a| Node::Uint(a.code())))
            .build()
    }
}

impl ConflictInformation {
    fn from_node(n: Node) -> Result<Self, SignalError> {
        let mut f = Fields::new(id::CONFLICT_INFORMATION, n)?;
        let c = ConflictInformation {
            conflict_status: enum_of(&mut f, id::CONFLICT_STATUS, ConflictStatus::from_code)?,
            conflict_cause: enum_of(&mut f, id::CONFLICT_CAUSE, ConflictCause::from_code)?,
            retry_timer: u32_of(&mut f, id::RETRY_TIMER)?,
            conflict_scope: f.take(id::CONFLICT_SCOPE).map(ConflictScope::from_node).transpose()?,
        };
        f.finish()?;
        Ok(c)
    }

    fn to_node(&self) -> Node {
        MapBuilder::new()
            .opt(id::CONFLICT_STATUS, self.conflict_status.map(|s| Node::Uint(s.code())))
            .opt(id::CONFLICT_CAUSE, self.conflict_cause.map(|s| Node::Uint(s.code())))
            .opt(id::RETRY_TIMER, self.retry_timer.map(|t| Node::Uint(t.into())))
            .opt(id::CONFLICT_SCOPE, self.conflict_scope.as_ref().map(ConflictScope::to_node))
            .build()
    }
}

impl ConflictScope {
    fn from_node(n: Node) -> Result<Self, SignalError> {
        let mut f = Fields::new(id::CONFLICT_SCOPE, n)?;
        let acls = f.list(id::ACL_LIST)?.unwrap_or_default();
        let c = ConflictScope {
            target: Target::take(&mut f)?,
            acl_list: acls.into_iter().map(AclRef::from_node).collect::<Result<_, _>>()?,
            mid: u32_of(&mut f, id::MID)?,
        };
        f.finish()?;
        Ok(c)
    }

    fn to_node(&self) -> Node {
        let mut b = MapBuilder::new();
        self.target.put(&mut b);
        if !self.acl_list.is_empty() {
            b.put(id::ACL_LIST, Node::List(self.acl_list.iter().map(AclRef::to_node).collect()));
        }
        b.opt(id::MID, self.mid.map(|m| Node::Uint(m.into()))).build()
    }
}

impl AclRef {
    fn from_node(n: Node) -> Result<Self, SignalError> {
        let mut f = Fields::new(id::ACL_LIST, n)?;
        let acl_name = f.text(id::ACL_NAME)?.ok_or(SignalError::MissingAttribute { field: "acl-name" })?;
        let acl_type = f.text(id::ACL_TYPE)?;
        f.finish()?;
        Ok(AclRef { acl_name, acl_type })
    }

    fn to_node(&self) -> Node {
        MapBuilder::new()
            .put(id::ACL_NAME, Node::Text(self.acl_name.clone()))
            .opt(id::ACL_TYPE, self.acl_type.clone().map(Node::Text))
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        let p: IpPrefix = "2001:db8:6401::1/128".parse().unwrap();
        assert_eq!(p.len, 128);
        assert_eq!(p.to_string(), "2001:db8:6401::1/128");
        assert!("10.0.0.0/33".parse::<IpPrefix>().is_err());
        assert!("10.0.0.0".parse::<IpPrefix>().is_err());
        assert!("10.0.0.0/".parse::<IpPrefix>().is_err());
        let a: IpPrefix = "10.0.0.0/8".parse().unwrap();
        let b: IpPrefix = "10.1.2.3/32".parse().unwrap();
        let c: IpPrefix = "11.0.0.0/8".parse().unwrap();
        let all: IpPrefix = "0.0.0.0/0".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a) && !a.overlaps(&c) && all.overlaps(&c));
    }

    #[test]
    fn enum_labels() {
        assert_eq!(Status::AttackStopped.label(), "attack-stopped");
        assert_eq!(Status::from_code(9), None);
        assert_eq!(Status::ALL.len(), 8);
        assert_eq!(ConflictCause::CuidCollision.to_string(), "cuid-collision");
    }
}
