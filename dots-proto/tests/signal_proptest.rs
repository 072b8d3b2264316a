//! Property tests: CBOR and JSON encode -> decode is the identity for
//! generated mitigation scopes, configs, redirects and heartbeats, and
//! decoding arbitrary bytes never panics.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dots_proto::signal::*;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;

fn prefix() -> impl Strategy<Value = IpPrefix> {
    prop_oneof![
        (any::<u32>(), 0u8..=32).prop_map(|(a, l)| IpPrefix::new(IpAddr::V4(Ipv4Addr::from(a)), l).unwrap()),
        (any::<u128>(), 0u8..=128).prop_map(|(a, l)| IpPrefix::new(IpAddr::V6(Ipv6Addr::from(a)), l).unwrap()),
    ]
}

fn name() -> impl Strategy<Value = String> {
    "[a-z0-9-]{1,20}(\\.[a-z]{2,5}){0,2}"
}

fn target() -> impl Strategy<Value = Target> {
    (
        vec(prefix(), 0..4),
        vec((any::<u16>(), of(any::<u16>())).prop_map(|(l, u)| PortRange { lower_port: l, upper_port: u }), 0..4),
        vec(any::<u8>(), 0..3),
        vec(name(), 0..3),
        vec(name().prop_map(|n| format!("https://{n}/x")), 0..2),
        vec(name(), 0..3),
    )
        .prop_map(|(p, r, pr, f, u, a)| Target {
            target_prefix: p,
            target_port_range: r,
            target_protocol: pr,
            target_fqdn: f,
            target_uri: u,
            alias_name: a,
        })
}

fn lifetime() -> impl Strategy<Value = Lifetime> {
    prop_oneof![any::<u32>().prop_map(Lifetime::Seconds), Just(Lifetime::Indefinite)]
}

fn pick<T: Copy + std::fmt::Debug + 'static>(all: &'static [T]) -> impl Strategy<Value = T> {
    proptest::sample::select(all)
}

fn conflict() -> impl Strategy<Value = ConflictInformation> {
    (
        of(pick(ConflictStatus::ALL)),
        of(pick(ConflictCause::ALL)),
        of(any::<u32>()),
        of((target(), vec((name(), of(name())).prop_map(|(n, t)| AclRef { acl_name: n, acl_type: t }), 0..3), of(any::<u32>()))
            .prop_map(|(target, acl_list, mid)| ConflictScope { target, acl_list, mid })),
    )
        .prop_map(|(conflict_status, conflict_cause, retry_timer, conflict_scope)| ConflictInformation {
            conflict_status,
            conflict_cause,
            retry_timer,
            conflict_scope,
        })
}

fn scope() -> impl Strategy<Value = Scope> {
    (
        (of(any::<u32>()), of(name()), of(name()), target(), of(lifetime()), of(any::<bool>())),
        (of(any::<u64>()), of(pick(Status::ALL)), of(conflict())),
        (of(any::<u64>()), of(any::<u64>()), of(any::<u64>()), of(any::<u64>()), of(pick(AttackStatus::ALL))),
        vec(control_acl(), 0..3),
    )
        .prop_map(|((mid, cdid, cuid, target, lifetime, trigger), (start, status, ci), (b, bps, p, pps, attack), acls)| Scope {
            mid,
            cdid,
            cuid,
            target,
            lifetime,
            trigger_mitigation: trigger,
            mitigation_start: start,
            status,
            conflict_information: ci,
            bytes_dropped: b,
            bps_dropped: bps,
            pkts_dropped: p,
            pps_dropped: pps,
            attack_status: attack,
            acl_list: acls,
        })
}

/// An RFC 9133 'acl-list' entry.
fn control_acl() -> impl Strategy<Value = ControlAcl> {
    (name(), of(pick(ActivationType::ALL)))
        .prop_map(|(acl_name, activation_type)| ControlAcl { acl_name, activation_type })
}

fn int_param() -> impl Strategy<Value = IntParam> {
    (of(any::<u16>()), of(any::<u16>()), of(any::<u16>())).prop_map(|(a, b, c)| {
        // A decoder normalizes min <= max; generate normalized pairs.
        let (min, max) = match (a, b) {
            (Some(a), Some(b)) => (Some(a.min(b)), Some(a.max(b))),
            other => other,
        };
        IntParam { max_value: max, min_value: min, current_value: c }
    })
}

fn dec() -> impl Strategy<Value = Decimal> {
    (-1_000_000_000i64..1_000_000_000).prop_map(Decimal::from_hundredths)
}

fn dec_param() -> impl Strategy<Value = DecimalParam> {
    (of(dec()), of(dec()), of(dec())).prop_map(|(a, b, c)| {
        let (min, max) = match (a, b) {
            (Some(a), Some(b)) => (Some(a.min(b)), Some(a.max(b))),
            other => other,
        };
        DecimalParam { max_value_decimal: max, min_value_decimal: min, current_value_decimal: c }
    })
}

fn params() -> impl Strategy<Value = ConfigParameters> {
    (of(int_param()), of(int_param()), of(int_param()), of(int_param()), of(dec_param()), of(dec_param())).prop_map(
        |(h, m, p, r, a, f)| ConfigParameters {
            heartbeat_interval: h,
            missing_hb_allowed: m,
            probing_rate: p,
            max_retransmit: r,
            ack_timeout: a,
            ack_random_factor: f,
        },
    )
}

fn message() -> impl Strategy<Value = SignalMessage> {
    prop_oneof![
        vec(scope(), 0..3).prop_map(|scopes| SignalMessage::MitigationScope(MitigationScope { scopes })),
        (of(any::<u32>()), of(params()), of(params())).prop_map(|(sid, m, i)| SignalMessage::SignalConfig(
            SignalConfig { sid, mitigating_config: m, idle_config: i }
        )),
        (name(), vec(any::<IpAddr>(), 0..3)).prop_map(|(alt_server, alt_server_record)| {
            SignalMessage::RedirectedSignal(RedirectedSignal { alt_server, alt_server_record })
        }),
        any::<bool>().prop_map(|b| SignalMessage::Heartbeat(Heartbeat { peer_hb_status: b })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn cbor_round_trip(m in message()) {
        let d = SignalMessage::from_cbor(&m.to_cbor()).unwrap();
        prop_assert_eq!(d.value, m);
        prop_assert!(d.warnings.is_empty());
    }

    #[test]
    fn json_round_trip(m in message()) {
        let d = SignalMessage::from_json(&m.to_json_string()).unwrap();
        prop_assert_eq!(d.value, m);
    }

    #[test]
    fn mitigation_request_round_trip(s in scope()) {
        let m = MitigationScope { scopes: vec![s] };
        prop_assert_eq!(MitigationScope::from_cbor(&m.to_cbor()).unwrap().value, m);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..256)) {
        if let Ok(d) = SignalMessage::from_cbor(&bytes) {
            let again = SignalMessage::from_cbor(&d.value.to_cbor()).unwrap();
            prop_assert_eq!(again.value, d.value);
        }
    }

    /// Mutating one byte of a valid message never panics either.
    #[test]
    fn mutated_messages_never_panic(m in message(), pos in any::<usize>(), byte in any::<u8>()) {
        let mut bytes = m.to_cbor();
        let i = pos % bytes.len();
        bytes[i] = byte;
        if let Ok(d) = SignalMessage::from_cbor(&bytes) {
            let again = SignalMessage::from_cbor(&d.value.to_cbor()).unwrap();
            prop_assert_eq!(again.value, d.value);
        }
    }
}
