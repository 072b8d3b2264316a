//! Filtering capabilities a DOTS server advertises (RFC 8783 draft 29,
//! §4.2 Figure 10, §7.1 Figure 23). Read-only: servers build it, clients
//! decode it.

use serde::{Deserialize, Serialize};

use crate::data::acl::ForwardingAction;

/// Body `{"ietf-dots-data-channel:capabilities": {...}}` (Figure 23).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilitiesBody {
    #[serde(rename = "ietf-dots-data-channel:capabilities")]
    pub capabilities: Capabilities,
}

/// The `capabilities` container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Capabilities {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub address_family: Vec<AddressFamily>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwarding_actions: Vec<ForwardingAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transport_protocols: Vec<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<Ipv4Capabilities>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Capabilities>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCapabilities>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp: Option<UdpCapabilities>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp: Option<IcmpCapabilities>,
}

/// `address-family` enumeration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressFamily {
    Ipv4,
    Ipv6,
}

/// Declares a capability container: every leaf an optional boolean.
macro_rules! bool_leaves {
    ($(#[$m:meta])* $name:ident { $($field:ident),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "kebab-case")]
        pub struct $name {
            $(
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $field: Option<bool>,
            )*
        }
    };
}

bool_leaves!(
    /// IPv4 header fields the server can filter on.
    Ipv4Capabilities { dscp, ecn, length, ttl, protocol, ihl, flags, offset, identification,
    source_prefix, destination_prefix, fragment });
bool_leaves!(
    /// IPv6 header fields the server can filter on (`hoplimit` here, while
    /// the match leaf is `ttl`).
    Ipv6Capabilities { dscp, ecn, length, hoplimit, protocol, destination_prefix, source_prefix,
    flow_label, fragment });
bool_leaves!(
    /// TCP header fields the server can filter on.
    TcpCapabilities { sequence_number, acknowledgement_number, data_offset, reserved, flags,
    window_size, urgent_pointer, options, flags_bitmask, source_port, destination_port,
    port_range });
bool_leaves!(
    /// UDP header fields the server can filter on.
    UdpCapabilities { length, source_port, destination_port, port_range });
bool_leaves!(
    /// ICMP/ICMPv6 fields the server can filter on.
    IcmpCapabilities { r#type, code, rest_of_header });
