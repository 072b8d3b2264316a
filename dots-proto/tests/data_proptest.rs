//! Property tests: decode(encode(x)) == x for generated aliases, ACLs,
//! clients and capabilities (any field values the types can hold, valid or
//! not for a server), and the decoder never panics on mutated bodies.

use std::net::IpAddr;

use dots_proto::data::acl::*;
use dots_proto::data::alias::*;
use dots_proto::data::capabilities::*;
use dots_proto::data::yang::{BitNames, Bits, Decimal2, IpPrefix, Ipv4Prefix, Ipv6Prefix, U64};
use dots_proto::data::*;
use proptest::option::of;
use proptest::prelude::*;

fn roundtrip<T>(v: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug + 'static,
{
    let json = encode(v).unwrap();
    // Decoding must fit a small stack (the server may run it on a task).
    let j2 = json.clone();
    std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(move || {
            let _ = decode::<T>(
                j2.as_bytes(),
                &DecodeLimits {
                    max_body_bytes: 1 << 24,
                    max_depth: 32,
                },
            );
        })
        .unwrap()
        .join()
        .expect("decode overflowed a 512 KiB stack");
    let back: T = decode(
        json.as_bytes(),
        &DecodeLimits {
            max_body_bytes: 1 << 24,
            max_depth: 32,
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{json}"));
    assert_eq!(&back, v, "{json}");
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-zA-Z0-9_-]{1,16}"]
}

fn bits<N: BitNames>() -> impl Strategy<Value = Bits<N>> {
    any::<u16>().prop_map(Bits::from_mask)
}

fn ip_prefix() -> impl Strategy<Value = IpPrefix> {
    prop_oneof![
        (any::<[u8; 4]>(), 0u8..=32).prop_map(|(a, l)| IpPrefix::new(IpAddr::from(a), l).unwrap()),
        (any::<[u8; 16]>(), 0u8..=128)
            .prop_map(|(a, l)| IpPrefix::new(IpAddr::from(a), l).unwrap()),
    ]
}

fn v4_prefix() -> impl Strategy<Value = Ipv4Prefix> {
    (any::<[u8; 4]>(), 0u8..=32)
        .prop_map(|(a, l)| Ipv4Prefix(IpPrefix::new(IpAddr::from(a), l).unwrap()))
}

fn v6_prefix() -> impl Strategy<Value = Ipv6Prefix> {
    (any::<[u8; 16]>(), 0u8..=128)
        .prop_map(|(a, l)| Ipv6Prefix(IpPrefix::new(IpAddr::from(a), l).unwrap()))
}

fn binary() -> impl Strategy<Value = Binary> {
    proptest::collection::vec(any::<u8>(), 0..12).prop_map(Binary)
}

fn fragment() -> impl Strategy<Value = Fragment> {
    (of(bits()), bits()).prop_map(|(operator, fragment_type)| Fragment {
        operator,
        fragment_type,
    })
}

prop_compose! {
    fn ipv4()(dscp in of(any::<u8>()), ecn in of(any::<u8>()), length in of(any::<u16>()),
              ttl in of(any::<u8>()), protocol in of(any::<u8>()), ihl in of(any::<u8>()),
              flags in of(bits()), offset in of(any::<u16>()), identification in of(any::<u16>()),
              dst in of(v4_prefix()), src in of(v4_prefix()), fragment in of(fragment())) -> Ipv4Match {
        Ipv4Match { dscp, ecn, length, ttl, protocol, ihl, flags, offset, identification,
            destination_ipv4_network: dst, source_ipv4_network: src, fragment }
    }
}

prop_compose! {
    fn ipv6()(dscp in of(any::<u8>()), ecn in of(any::<u8>()), length in of(any::<u16>()),
              ttl in of(any::<u8>()), protocol in of(any::<u8>()), dst in of(v6_prefix()),
              src in of(v6_prefix()), flow_label in of(any::<u32>()), fragment in of(fragment())) -> Ipv6Match {
        Ipv6Match { dscp, ecn, length, ttl, protocol, destination_ipv6_network: dst,
            source_ipv6_network: src, flow_label, fragment }
    }
}

fn port_operator() -> impl Strategy<Value = PortOperator> {
    prop_oneof![
        Just(PortOperator::Lte),
        Just(PortOperator::Gte),
        Just(PortOperator::Eq),
        Just(PortOperator::Neq)
    ]
}

fn port_match() -> impl Strategy<Value = PortMatch> {
    prop_oneof![
        (any::<u16>(), any::<u16>()).prop_map(|(lower, upper)| PortMatch::Range { lower, upper }),
        (of(port_operator()), any::<u16>()).prop_map(|(op, port)| PortMatch::Operator { op, port }),
    ]
}

prop_compose! {
    fn tcp()(seq in of(any::<u32>()), ack in of(any::<u32>()), data_offset in of(any::<u8>()),
             reserved in of(any::<u8>()), flags in of(bits()), window_size in of(any::<u16>()),
             urgent_pointer in of(any::<u16>()), options in of(binary()),
             fb in of((of(bits()), any::<u16>())), src in of(port_match()), dst in of(port_match())) -> TcpMatch {
        TcpMatch { sequence_number: seq, acknowledgement_number: ack, data_offset, reserved, flags,
            window_size, urgent_pointer, options,
            flags_bitmask: fb.map(|(operator, bitmask)| FlagsBitmask { operator, bitmask }),
            source_port_range_or_operator: src, destination_port_range_or_operator: dst }
    }
}

fn matches() -> impl Strategy<Value = Matches> {
    let l3 = of(prop_oneof![
        ipv4().boxed().prop_map(L3Match::Ipv4),
        ipv6().boxed().prop_map(L3Match::Ipv6)
    ]);
    let udp = (of(any::<u16>()), of(port_match()), of(port_match())).prop_map(|(length, s, d)| {
        UdpMatch {
            length,
            source_port_range_or_operator: s,
            destination_port_range_or_operator: d,
        }
    });
    let icmp = (of(any::<u8>()), of(any::<u8>()), of(binary())).prop_map(
        |(icmp_type, code, rest_of_header)| IcmpMatch {
            icmp_type,
            code,
            rest_of_header,
        },
    );
    let l4 = of(prop_oneof![
        tcp().boxed().prop_map(L4Match::Tcp),
        udp.prop_map(L4Match::Udp),
        icmp.prop_map(L4Match::Icmp)
    ]);
    (l3.boxed(), l4.boxed())
        .prop_map(|(l3, l4)| Matches { l3, l4 })
        .boxed()
}

fn forwarding() -> impl Strategy<Value = ForwardingAction> {
    prop_oneof![
        Just(ForwardingAction::Accept),
        Just(ForwardingAction::Drop),
        Just(ForwardingAction::Reject)
    ]
}

prop_compose! {
    fn ace()(name in name(), matches in of(matches()).boxed(),
             actions in of((forwarding(), of(any::<i64>().prop_map(Decimal2)))),
             stats in of((of(any::<u64>().prop_map(U64)), of(any::<u64>().prop_map(U64))))) -> Ace {
        Ace {
            name,
            matches,
            actions: actions.map(|(forwarding, rate_limit)| Actions { forwarding, rate_limit }),
            statistics: stats.map(|(p, o)| Statistics { matched_packets: p, matched_octets: o }),
        }
    }
}

fn acl_type() -> impl Strategy<Value = AclType> {
    prop_oneof![
        Just(AclType::Ipv4),
        Just(AclType::Ipv6),
        Just(AclType::Eth),
        Just(AclType::MixedEthIpv4),
        Just(AclType::MixedEthIpv6),
        Just(AclType::MixedEthIpv4Ipv6)
    ]
}

fn activation() -> impl Strategy<Value = ActivationType> {
    prop_oneof![
        Just(ActivationType::ActivateWhenMitigating),
        Just(ActivationType::Immediate),
        Just(ActivationType::Deactivate)
    ]
}

prop_compose! {
    fn acl()(name in name(), acl_type in of(acl_type()), activation_type in of(activation()),
             pending_lifetime in of(any::<i32>()),
             aces in of(proptest::collection::vec(ace().boxed(), 0..4)).boxed()) -> Acl {
        Acl { name, acl_type, activation_type, pending_lifetime, aces: aces.map(|ace| Aces { ace }) }
    }
}

fn acls() -> impl Strategy<Value = Acls> {
    proptest::collection::vec(acl().boxed(), 0..3).prop_map(|acl| Acls { acl })
}

prop_compose! {
    fn alias()(name in name(),
               target_prefix in proptest::collection::vec(ip_prefix(), 0..4),
               ranges in proptest::collection::vec((any::<u16>(), of(any::<u16>())), 0..3),
               target_protocol in proptest::collection::vec(any::<u8>(), 0..3),
               target_fqdn in proptest::collection::vec(name(), 0..3),
               target_uri in proptest::collection::vec(any::<String>(), 0..2),
               pending_lifetime in of(any::<i32>())) -> Alias {
        Alias {
            name, target_prefix, target_protocol, target_fqdn, target_uri, pending_lifetime,
            target_port_range: ranges.into_iter().map(|(lower_port, upper_port)| PortRange { lower_port, upper_port }).collect(),
        }
    }
}

fn aliases() -> impl Strategy<Value = Aliases> {
    proptest::collection::vec(alias(), 0..4).prop_map(|alias| Aliases { alias })
}

fn capabilities() -> impl Strategy<Value = Capabilities> {
    let fam = proptest::collection::vec(
        prop_oneof![Just(AddressFamily::Ipv4), Just(AddressFamily::Ipv6)],
        0..3,
    );
    let acts = proptest::collection::vec(forwarding(), 0..3);
    let b = || of(any::<bool>());
    let v4 = of(
        (b(), b(), b(), b()).prop_map(|(dscp, ttl, fragment, flags)| Ipv4Capabilities {
            dscp,
            ttl,
            fragment,
            flags,
            ..Default::default()
        }),
    );
    let v6 = of(
        (b(), b(), b()).prop_map(|(hoplimit, flow_label, fragment)| Ipv6Capabilities {
            hoplimit,
            flow_label,
            fragment,
            ..Default::default()
        }),
    );
    let tcp = of(
        (b(), b(), b()).prop_map(|(flags_bitmask, port_range, options)| TcpCapabilities {
            flags_bitmask,
            port_range,
            options,
            ..Default::default()
        }),
    );
    let icmp = of(
        (b(), b(), b()).prop_map(|(t, code, rest_of_header)| IcmpCapabilities {
            r#type: t,
            code,
            rest_of_header,
        }),
    );
    (
        fam,
        acts,
        b(),
        proptest::collection::vec(any::<u8>(), 0..4),
        v4,
        v6,
        tcp,
        icmp,
    )
        .prop_map(
            |(
                address_family,
                forwarding_actions,
                rate_limit,
                transport_protocols,
                ipv4,
                ipv6,
                tcp,
                icmp,
            )| Capabilities {
                address_family,
                forwarding_actions,
                rate_limit,
                transport_protocols,
                ipv4,
                ipv6,
                tcp,
                udp: None,
                icmp,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn acls_roundtrip(acls in acls()) {
        roundtrip(&AclsBody { acls });
    }

    #[test]
    fn aliases_roundtrip(aliases in aliases()) {
        roundtrip(&AliasesBody { aliases });
    }

    #[test]
    fn clients_roundtrip(cuid in name(), cdid in of(name()), aliases in of(aliases()), acls in of(acls())) {
        roundtrip(&DotsClientBody { dots_client: vec![DotsClient { cuid, cdid, aliases, acls }] });
    }

    #[test]
    fn capabilities_roundtrip(capabilities in capabilities()) {
        roundtrip(&CapabilitiesBody { capabilities });
    }

    /// Whatever validation says, it says it without panicking, and an
    /// accepted request re-encodes to something that is accepted again.
    #[test]
    fn validation_is_total_and_stable(acls in acls(), aliases in aliases()) {
        let p = Policy::default();
        if validate::validate_acls(&acls, &p).is_ok() {
            let json = encode(&AclsBody { acls }).unwrap();
            prop_assert!(parse_acls_request(json.as_bytes(), &p).is_ok());
        }
        if validate::validate_aliases(&aliases, &p).is_ok() {
            let json = encode(&AliasesBody { aliases }).unwrap();
            prop_assert!(parse_aliases_request(json.as_bytes(), &p).is_ok());
        }
    }

    /// Truncated or byte-flipped encodings never panic the decoder.
    #[test]
    fn mutated_bodies_never_panic(acls in acls(), cut in any::<prop::sample::Index>(), flip in any::<(prop::sample::Index, u8)>()) {
        let mut bytes = encode(&AclsBody { acls }).unwrap().into_bytes();
        let i = flip.0.index(bytes.len());
        bytes[i] ^= flip.1;
        let _ = decode_acls(&bytes, &DecodeLimits::default());
        let _ = decode_acls(&bytes[..cut.index(bytes.len())], &DecodeLimits::default());
    }
}
