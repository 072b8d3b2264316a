//! ACE match criteria (RFC 8783 draft 29, §4.2, Figures 6–9): the RFC 8519
//! packet fields plus the DOTS `fragment` (IPv4/IPv6) and `flags-bitmask`
//! (TCP) containers.
//!
//! The YANG `choice l3` (ipv4 | ipv6) and `choice l4` (tcp | udp | icmp) are
//! enums here; a body naming two cases of one choice is rejected at decode.

use serde::{Deserialize, Serialize};

use crate::data::yang::{BitNames, Bits, Ipv4Prefix, Ipv6Prefix};

// ------------------------------------------------------------ bit types

/// Names of the DOTS `operator` bits type (§4.3): `not` (position 0),
/// `match` (1), `any` (3; there is no position 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperatorNames;
impl BitNames for OperatorNames {
    const TYPE: &'static str = "operator";
    const NAMES: &'static [&'static str] = &["not", "match", "any"];
}
/// The DOTS `operator` (bits): how a bitmask is applied; default `match`.
pub type Operator = Bits<OperatorNames>;

/// Names of the DOTS `fragment-type` bits (§4.3): `df` (don't fragment, IPv4
/// only), `isf` (is a fragment), `ff` (first fragment), `lf` (last fragment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentTypeNames;
impl BitNames for FragmentTypeNames {
    const TYPE: &'static str = "fragment-type";
    const NAMES: &'static [&'static str] = &["df", "isf", "ff", "lf"];
}
/// The DOTS `fragment-type` (bits).
pub type FragmentType = Bits<FragmentTypeNames>;

/// Names of the RFC 8519 IPv4 `flags` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4FlagNames;
impl BitNames for Ipv4FlagNames {
    const TYPE: &'static str = "ipv4 flags";
    const NAMES: &'static [&'static str] = &["reserved", "fragment", "more"];
}
/// The RFC 8519 IPv4 `flags` (bits).
pub type Ipv4Flags = Bits<Ipv4FlagNames>;

/// Names of the RFC 8519 TCP `flags` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpFlagNames;
impl BitNames for TcpFlagNames {
    const TYPE: &'static str = "tcp flags";
    const NAMES: &'static [&'static str] =
        &["cwr", "ece", "urg", "ack", "psh", "rst", "syn", "fin"];
}
/// The RFC 8519 TCP `flags` (bits).
pub type TcpFlags = Bits<TcpFlagNames>;

// ------------------------------------------------------------- binary

/// A YANG `binary` leaf: base64 in JSON (RFC 7951 §6.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binary(pub Vec<u8>);

impl Serialize for Binary {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Binary {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine;
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(&s)
            .map(Binary)
            .map_err(|e| serde::de::Error::custom(format!("invalid base64 {s:?}: {e}")))
    }
}

// ---------------------------------------------------------- containers

/// `fragment` container (§4.3 `fragment-fields`), in `ipv4` or `ipv6`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fragment {
    /// How to apply `type`; absent means `match`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<Operator>,
    /// Fragment kinds to look for (mandatory).
    #[serde(rename = "type")]
    pub fragment_type: FragmentType,
}

/// IPv4 header match (Figure 6).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Ipv4Match {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dscp: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecn: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ihl: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<Ipv4Flags>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identification: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_ipv4_network: Option<Ipv4Prefix>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ipv4_network: Option<Ipv4Prefix>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fragment: Option<Fragment>,
}

/// IPv6 header match (Figure 7). The hop limit is the RFC 8519 `ttl` leaf
/// (the tree has no `hoplimit` leaf; only the capabilities use that name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Ipv6Match {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dscp: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecn: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_ipv6_network: Option<Ipv6Prefix>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ipv6_network: Option<Ipv6Prefix>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_label: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fragment: Option<Fragment>,
}

/// DOTS `flags-bitmask` container (§4.3 `tcp-flags`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagsBitmask {
    /// How to apply `bitmask`; absent means `match`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<Operator>,
    /// Last 4 bits of TCP header byte 12 and byte 13 (mandatory).
    pub bitmask: u16,
}

/// RFC 8519 port `operator` enumeration; default `eq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortOperator {
    Lte,
    Gte,
    Eq,
    Neq,
}

/// RFC 8519 `port-range-or-operator`: a closed range, or an operator and a
/// port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawPortMatch", into = "RawPortMatch")]
pub enum PortMatch {
    /// `lower-port` ..= `upper-port` (both mandatory in this case).
    Range { lower: u16, upper: u16 },
    /// `operator` (`None` = absent, meaning `eq`) applied to `port`.
    Operator { op: Option<PortOperator>, port: u16 },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPortMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    lower_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upper_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    operator: Option<PortOperator>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
}

impl TryFrom<RawPortMatch> for PortMatch {
    type Error = String;
    fn try_from(r: RawPortMatch) -> Result<Self, String> {
        let range = r.lower_port.is_some() || r.upper_port.is_some();
        let op = r.operator.is_some() || r.port.is_some();
        match (range, op) {
            (true, true) => Err("port-range-or-operator mixes the 'range' case \
                (lower-port/upper-port) with the 'operator' case (operator/port)"
                .into()),
            (true, false) => match (r.lower_port, r.upper_port) {
                (Some(lower), Some(upper)) => Ok(PortMatch::Range { lower, upper }),
                (None, _) => Err("missing field `lower-port` in port range".into()),
                (_, None) => Err("missing field `upper-port` in port range".into()),
            },
            (false, true) => match r.port {
                Some(port) => Ok(PortMatch::Operator {
                    op: r.operator,
                    port,
                }),
                None => Err("missing field `port` in port operator".into()),
            },
            (false, false) => Err("empty port-range-or-operator: needs lower-port and \
                upper-port, or port"
                .into()),
        }
    }
}

impl From<PortMatch> for RawPortMatch {
    fn from(p: PortMatch) -> Self {
        let mut r = RawPortMatch {
            lower_port: None,
            upper_port: None,
            operator: None,
            port: None,
        };
        match p {
            PortMatch::Range { lower, upper } => {
                (r.lower_port, r.upper_port) = (Some(lower), Some(upper))
            }
            PortMatch::Operator { op, port } => (r.operator, r.port) = (op, Some(port)),
        }
        r
    }
}

/// TCP header match (Figure 8). The source/destination containers are
/// named `source-port-range-or-operator` in the YANG (§4.3 `ports`), but the
/// draft's examples (Figures 25, 27, 29, 34, 35) write `source-port` and
/// `destination-port` (the names of the enclosing choices): both are
/// accepted, the YANG names are emitted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TcpMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledgement_number: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_offset: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserved: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<TcpFlags>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_size: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub urgent_pointer: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<Binary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags_bitmask: Option<FlagsBitmask>,
    #[serde(alias = "source-port", skip_serializing_if = "Option::is_none")]
    pub source_port_range_or_operator: Option<PortMatch>,
    #[serde(alias = "destination-port", skip_serializing_if = "Option::is_none")]
    pub destination_port_range_or_operator: Option<PortMatch>,
}

/// UDP header match (Figure 9); port container names as in [`TcpMatch`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UdpMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length: Option<u16>,
    #[serde(alias = "source-port", skip_serializing_if = "Option::is_none")]
    pub source_port_range_or_operator: Option<PortMatch>,
    #[serde(alias = "destination-port", skip_serializing_if = "Option::is_none")]
    pub destination_port_range_or_operator: Option<PortMatch>,
}

/// ICMP/ICMPv6 header match (Figure 9); which one follows from the l3
/// match or the ACL type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IcmpMatch {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rest_of_header: Option<Binary>,
}

/// `choice l3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L3Match {
    Ipv4(Ipv4Match),
    Ipv6(Ipv6Match),
}

/// `choice l4`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L4Match {
    Tcp(TcpMatch),
    Udp(UdpMatch),
    Icmp(IcmpMatch),
}

impl L4Match {
    /// The member name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            L4Match::Tcp(_) => "tcp",
            L4Match::Udp(_) => "udp",
            L4Match::Icmp(_) => "icmp",
        }
    }
}

/// The `matches` container. Both parts optional: an ACE without matches
/// matches every packet (§4.3, `matches` description).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawMatches", into = "RawMatches")]
pub struct Matches {
    pub l3: Option<L3Match>,
    pub l4: Option<L4Match>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatches {
    #[serde(skip_serializing_if = "Option::is_none")]
    ipv4: Option<Ipv4Match>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ipv6: Option<Ipv6Match>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp: Option<TcpMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    udp: Option<UdpMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icmp: Option<IcmpMatch>,
}

impl TryFrom<RawMatches> for Matches {
    type Error = String;
    fn try_from(r: RawMatches) -> Result<Self, String> {
        let l3 = match (r.ipv4, r.ipv6) {
            (Some(_), Some(_)) => {
                return Err("matches: choice 'l3' has both 'ipv4' and 'ipv6'".into())
            }
            (Some(v4), None) => Some(L3Match::Ipv4(v4)),
            (None, Some(v6)) => Some(L3Match::Ipv6(v6)),
            (None, None) => None,
        };
        let l4: Vec<L4Match> = [
            r.tcp.map(L4Match::Tcp),
            r.udp.map(L4Match::Udp),
            r.icmp.map(L4Match::Icmp),
        ]
        .into_iter()
        .flatten()
        .collect();
        if l4.len() > 1 {
            let names: Vec<_> = l4.iter().map(L4Match::name).collect();
            return Err(format!(
                "matches: choice 'l4' has several cases: {}",
                names.join(", ")
            ));
        }
        Ok(Matches {
            l3,
            l4: l4.into_iter().next(),
        })
    }
}

impl From<Matches> for RawMatches {
    fn from(m: Matches) -> Self {
        let mut r = RawMatches {
            ipv4: None,
            ipv6: None,
            tcp: None,
            udp: None,
            icmp: None,
        };
        match m.l3 {
            Some(L3Match::Ipv4(v)) => r.ipv4 = Some(v),
            Some(L3Match::Ipv6(v)) => r.ipv6 = Some(v),
            None => {}
        }
        match m.l4 {
            Some(L4Match::Tcp(v)) => r.tcp = Some(v),
            Some(L4Match::Udp(v)) => r.udp = Some(v),
            Some(L4Match::Icmp(v)) => r.icmp = Some(v),
            None => {}
        }
        r
    }
}
