//! The filtering capabilities this server advertises (RFC 8783 draft 29
//! §7.1): exactly what `compiler::acl` and the XDP program can match, so
//! that a client that reads them "SHOULD NOT request for filtering actions
//! that are not supported" and will not be refused.

use dots_proto::data::capabilities::{
    AddressFamily, Capabilities, IcmpCapabilities, Ipv4Capabilities, Ipv6Capabilities, TcpCapabilities,
    UdpCapabilities,
};
use dots_proto::data::{CapabilitiesBody, ForwardingAction};

pub fn capabilities() -> CapabilitiesBody {
    let t = Some(true);
    CapabilitiesBody {
        capabilities: Capabilities {
            address_family: vec![AddressFamily::Ipv4, AddressFamily::Ipv6],
            forwarding_actions: vec![ForwardingAction::Drop, ForwardingAction::Accept],
            rate_limit: t,
            // Any protocol number matches; these have their own fields.
            transport_protocols: vec![1, 6, 17, 58],
            ipv4: Some(Ipv4Capabilities {
                length: t,
                ttl: t,
                protocol: t,
                source_prefix: t,
                destination_prefix: t,
                fragment: t,
                ..Ipv4Capabilities::default()
            }),
            ipv6: Some(Ipv6Capabilities {
                length: t,
                hoplimit: t,
                protocol: t,
                source_prefix: t,
                destination_prefix: t,
                fragment: t,
                ..Ipv6Capabilities::default()
            }),
            tcp: Some(TcpCapabilities {
                flags: t,
                flags_bitmask: t,
                source_port: t,
                destination_port: t,
                port_range: t,
                ..TcpCapabilities::default()
            }),
            udp: Some(UdpCapabilities { length: t, source_port: t, destination_port: t, port_range: t }),
            icmp: Some(IcmpCapabilities { r#type: t, code: t, ..IcmpCapabilities::default() }),
        },
    }
}
