//! Every JSON example of the data-channel text (draft-ietf-dots-data-channel-29)
//! decodes, has the expected fields, and re-encodes to the same JSON after
//! normalisation. See tests/vectors/data/README.md for the edits made to
//! the figures.

use std::path::PathBuf;

use dots_proto::data::acl::*;
use dots_proto::data::capabilities::AddressFamily;
use dots_proto::data::restconf::{ErrorTag, ErrorType};
use dots_proto::data::yang::{Decimal2, IpPrefix, U64};
use dots_proto::data::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

fn vector(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/data")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The text writes identities bare (`"drop"`) and port containers by their
/// choice names (`"source-port"`); the encoder emits `module:identity`
/// (RFC 7951 §6.8) and the YANG container names. Rewrites a text body into
/// that form so that the comparison is exact otherwise.
fn normalise(v: &mut Value) {
    const ACL: &str = "ietf-access-control-list:";
    let qualify = |s: &mut Value| {
        if let Value::String(t) = s {
            if !t.contains(':') {
                *t = format!("{ACL}{t}");
            }
        }
    };
    match v {
        Value::Object(map) => {
            for port in ["source-port", "destination-port"] {
                if map.get(port).is_some_and(Value::is_object) {
                    let inner = map.remove(port).unwrap();
                    map.insert(format!("{port}-range-or-operator"), inner);
                }
            }
            for (k, val) in map.iter_mut() {
                match (k.as_str(), &mut *val) {
                    ("forwarding", s) => qualify(s),
                    ("type", s @ Value::String(_))
                        if s.as_str().unwrap().ends_with("-acl-type") =>
                    {
                        qualify(s)
                    }
                    ("forwarding-actions", Value::Array(a)) => a.iter_mut().for_each(qualify),
                    _ => normalise(val),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalise),
        _ => {}
    }
}

/// Decodes a vector as `T`, re-encodes it, and checks the result equals the
/// normalised original; decodes the re-encoding again and checks identity.
fn roundtrip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(name: &str) -> T {
    let bytes = vector(name);
    let body: T =
        decode(&bytes, &DecodeLimits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let out = encode(&body).unwrap();
    let mut expected: Value = serde_json::from_slice(&bytes).unwrap();
    normalise(&mut expected);
    let got: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(got, expected, "{name}: re-encoding differs");
    let again: T = decode(out.as_bytes(), &DecodeLimits::default()).unwrap();
    assert_eq!(again, body, "{name}: decode(encode(x)) != x");
    body
}

fn prefix(s: &str) -> IpPrefix {
    s.parse().unwrap()
}

fn only_ace(acls: &Acls) -> &Ace {
    assert_eq!(acls.acl.len(), 1);
    let aces = acls.acl[0].ace_list();
    assert_eq!(aces.len(), 1);
    &aces[0]
}

// ------------------------------------------------------------- section 5

#[test]
fn fig11_register_schema() {
    let b: DotsClientBody = roundtrip("fig11-register-schema.json");
    assert_eq!(b.dots_client.len(), 1);
    assert_eq!(b.dots_client[0].cuid, "string");
    assert_eq!(b.dots_client[0].cdid, None);
}

#[test]
fn fig12_register_schema_gateway() {
    let b: DotsClientBody = roundtrip("fig12-register-schema-gateway.json");
    assert_eq!(b.dots_client[0].cdid.as_deref(), Some("string"));
}

#[test]
fn fig13_register_via_gateway() {
    let b: DotsClientBody = roundtrip("fig13-register-gateway.json");
    let c = &b.dots_client[0];
    assert_eq!(c.cuid, "dz6pHjaADkaFTbjr0JGBpw");
    assert_eq!(c.cdid.as_deref(), Some("7eeaf349529eb55ed50113"));
    let c = parse_registration_request(&vector("fig13-register-gateway.json"), &Policy::default())
        .unwrap();
    assert_eq!(c.cuid, "dz6pHjaADkaFTbjr0JGBpw");
}

#[test]
fn fig14_put_register() {
    let b: DotsClientBody = roundtrip("fig14-put-register.json");
    assert_eq!(b.dots_client[0].cuid, "dz6pHjaADkaFTbjr0JGBpw");
    assert!(b.dots_client[0].aliases.is_none() && b.dots_client[0].acls.is_none());
}

// ------------------------------------------------------------- section 6

#[test]
fn fig16_alias_schema_completed() {
    let b: AliasesBody = roundtrip("fig16-create-aliases-schema.json");
    let a = &b.aliases.alias[0];
    assert_eq!(a.name, "string");
    assert_eq!(
        a.target_port_range,
        vec![PortRange {
            lower_port: 1024,
            upper_port: Some(65535)
        }]
    );
    assert_eq!(a.target_fqdn, vec!["www.example.com"]);
    assert_eq!(a.target_uri, vec!["https://www.example.com/"]);
    parse_aliases_request(
        &vector("fig16-create-aliases-schema.json"),
        &Policy::default(),
    )
    .unwrap();
}

#[test]
fn fig17_create_alias() {
    let b: AliasesBody = roundtrip("fig17-create-alias.json");
    let a = &b.aliases.alias[0];
    assert_eq!(a.name, "https1");
    assert_eq!(a.target_protocol, vec![6]);
    assert_eq!(
        a.target_prefix,
        vec![
            prefix("2001:db8:6401::1/128"),
            prefix("2001:db8:6401::2/128")
        ]
    );
    assert_eq!(
        a.target_port_range,
        vec![PortRange {
            lower_port: 443,
            upper_port: None
        }]
    );
    assert_eq!(a.target_port_range[0].upper(), 443);
    assert_eq!(a.pending_lifetime, None);
    let ok = parse_aliases_request(&vector("fig17-create-alias.json"), &Policy::default()).unwrap();
    assert_eq!(ok, b.aliases);
}

#[test]
fn fig19_aliases_response() {
    let b: AliasesBody = roundtrip("fig19-aliases-response.json");
    let names: Vec<_> = b
        .aliases
        .alias
        .iter()
        .map(|a| (a.name.as_str(), a.pending_lifetime))
        .collect();
    assert_eq!(names, [("Server1", Some(3596)), ("Server2", Some(9869))]);
    assert_eq!(b.aliases.alias[1].target_port_range[0].lower_port, 80);
    assert_eq!(
        b.aliases.alias[1].target_prefix[1],
        prefix("2001:db8:6401::20/128")
    );
    // A response is not a request: pending-lifetime is read-only.
    let e = parse_aliases_request(&vector("fig19-aliases-response.json"), &Policy::default())
        .unwrap_err();
    assert!(
        matches!(
            e,
            DataError::ReadOnly {
                field: "pending-lifetime",
                ..
            }
        ),
        "{e}"
    );
}

// ------------------------------------------------------------- section 7

#[test]
fn fig23_capabilities() {
    let b: CapabilitiesBody = roundtrip("fig23-capabilities.json");
    let c = &b.capabilities;
    assert_eq!(c.address_family, [AddressFamily::Ipv4, AddressFamily::Ipv6]);
    assert_eq!(
        c.forwarding_actions,
        [ForwardingAction::Drop, ForwardingAction::Accept]
    );
    assert_eq!(c.rate_limit, Some(true));
    assert_eq!(c.transport_protocols, [1, 6, 17, 58]);
    let v4 = c.ipv4.as_ref().unwrap();
    assert_eq!(
        (v4.length, v4.fragment, v4.dscp),
        (Some(true), Some(true), None)
    );
    assert_eq!(c.ipv6.as_ref().unwrap().source_prefix, Some(true));
    let tcp = c.tcp.as_ref().unwrap();
    assert_eq!(
        (tcp.flags_bitmask, tcp.port_range, tcp.flags),
        (Some(true), Some(true), None)
    );
    assert_eq!(c.udp.as_ref().unwrap().length, Some(true));
    let icmp = c.icmp.as_ref().unwrap();
    assert_eq!(
        (icmp.r#type, icmp.code, icmp.rest_of_header),
        (Some(true), Some(true), None)
    );
}

#[test]
fn fig24_install_ipv4_acl() {
    let b: AclsBody = roundtrip("fig24-install-acl-ipv4.json");
    let acl = &b.acls.acl[0];
    assert_eq!(acl.name, "sample-ipv4-acl");
    assert_eq!(acl.acl_type, Some(AclType::Ipv4));
    assert_eq!(
        acl.activation_type,
        Some(ActivationType::ActivateWhenMitigating)
    );
    let ace = only_ace(&b.acls);
    assert_eq!(ace.name, "rule1");
    let Some(L3Match::Ipv4(v4)) = &ace.matches.as_ref().unwrap().l3 else {
        panic!("no ipv4")
    };
    assert_eq!(
        v4.destination_ipv4_network.unwrap().0,
        prefix("198.51.100.0/24")
    );
    assert_eq!(v4.source_ipv4_network.unwrap().0, prefix("192.0.2.0/24"));
    assert_eq!(
        ace.actions.as_ref().unwrap().forwarding,
        ForwardingAction::Drop
    );
    parse_acls_request(&vector("fig24-install-acl-ipv4.json"), &Policy::default()).unwrap();
}

fn check_test_acl_ipv6_udp(b: &AclsBody) {
    let acl = &b.acls.acl[0];
    assert_eq!(acl.name, "test-acl-ipv6-udp");
    assert_eq!(acl.acl_type, Some(AclType::Ipv6));
    assert_eq!(acl.activation_type, Some(ActivationType::Immediate));
    let ace = only_ace(&b.acls);
    assert_eq!(ace.name, "my-test-ace");
    let m = ace.matches.as_ref().unwrap();
    let Some(L3Match::Ipv6(v6)) = &m.l3 else {
        panic!("no ipv6")
    };
    assert_eq!(
        v6.destination_ipv6_network.unwrap().0,
        prefix("2001:db8:6401::2/127")
    );
    assert_eq!(
        v6.source_ipv6_network.unwrap().0,
        prefix("2001:db8:1234::/96")
    );
    assert_eq!((v6.protocol, v6.flow_label), (Some(17), Some(10000)));
    let Some(L4Match::Udp(udp)) = &m.l4 else {
        panic!("no udp")
    };
    assert_eq!(
        udp.source_port_range_or_operator,
        Some(PortMatch::Operator {
            op: Some(PortOperator::Lte),
            port: 80
        })
    );
    assert_eq!(
        udp.destination_port_range_or_operator,
        Some(PortMatch::Operator {
            op: Some(PortOperator::Neq),
            port: 1010
        })
    );
    assert_eq!(
        ace.actions.as_ref().unwrap().forwarding,
        ForwardingAction::Accept
    );
    assert_eq!(ace.actions.as_ref().unwrap().rate_limit, None);
}

#[test]
fn fig25_put_ipv6_udp_acl() {
    let b: AclsBody = roundtrip("fig25-put-acl-ipv6-udp.json");
    check_test_acl_ipv6_udp(&b);
    assert_eq!(b.acls.acl[0].pending_lifetime, None);
    parse_acls_request(&vector("fig25-put-acl-ipv6-udp.json"), &Policy::default()).unwrap();
}

#[test]
fn fig27_get_all() {
    let b: AclsBody = roundtrip("fig27-acls-all.json");
    check_test_acl_ipv6_udp(&b);
    assert_eq!(b.acls.acl[0].pending_lifetime, Some(9080));
    // Announced as showing match counts, but the figure has no statistics.
    assert_eq!(only_ace(&b.acls).statistics, None);
}

#[test]
fn fig29_get_config() {
    let b: AclsBody = roundtrip("fig29-acls-config.json");
    check_test_acl_ipv6_udp(&b);
    assert_eq!(b.acls.acl[0].pending_lifetime, None);
}

#[test]
fn fig31_get_non_config() {
    let b: AclsBody = roundtrip("fig31-acls-non-config.json");
    let acl = &b.acls.acl[0];
    assert_eq!(
        (acl.name.as_str(), acl.pending_lifetime, acl.acl_type),
        ("test-acl-ipv6-udp", Some(8000), None)
    );
    // Default applies when absent (section 7.2).
    assert_eq!(
        acl.effective_activation(),
        ActivationType::ActivateWhenMitigating
    );
    let ace = only_ace(&b.acls);
    assert_eq!(ace.name, "my-test-ace");
    assert!(ace.matches.is_none() && ace.actions.is_none());
}

// ------------------------------------------------------------ appendices

fn check_dns_fragments(b: &AclsBody, v6: bool) {
    let aces = b.acls.acl[0].ace_list();
    let names: Vec<_> = aces.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["drop-all-fragments", "allow-dns-packets"]);
    let frag = match &aces[0].matches.as_ref().unwrap().l3 {
        Some(L3Match::Ipv4(m)) if !v6 => m.fragment.clone().unwrap(),
        Some(L3Match::Ipv6(m)) if v6 => m.fragment.clone().unwrap(),
        other => panic!("unexpected l3 {other:?}"),
    };
    assert!(frag.fragment_type.has("isf") && !frag.fragment_type.has("df"));
    assert_eq!(frag.fragment_type.to_string(), "isf");
    assert_eq!(frag.operator.unwrap().to_string(), "match");
    let Some(L4Match::Udp(udp)) = &aces[1].matches.as_ref().unwrap().l4 else {
        panic!("no udp")
    };
    assert_eq!(
        udp.destination_port_range_or_operator,
        Some(PortMatch::Operator {
            op: Some(PortOperator::Eq),
            port: 53
        })
    );
    assert_eq!(
        aces[1].actions.as_ref().unwrap().forwarding,
        ForwardingAction::Accept
    );
}

#[test]
fn fig34_ipv4_fragments() {
    let b: AclsBody = roundtrip("fig34-ipv4-fragments.json");
    check_dns_fragments(&b, false);
    parse_acls_request(&vector("fig34-ipv4-fragments.json"), &Policy::default()).unwrap();
}

#[test]
fn fig35_ipv6_fragments() {
    let b: AclsBody = roundtrip("fig35-ipv6-fragments.json");
    check_dns_fragments(&b, true);
    parse_acls_request(&vector("fig35-ipv6-fragments.json"), &Policy::default()).unwrap();
}

#[test]
fn figs34_35_as_printed_fail_cleanly() {
    for f in [
        "as-printed/fig34-ipv4-fragments.txt",
        "as-printed/fig35-ipv6-fragments.txt",
    ] {
        let e = decode_acls(&vector(f), &DecodeLimits::default()).unwrap_err();
        assert_eq!(
            (e.status(), e.tag()),
            (400, ErrorTag::MalformedMessage),
            "{f}: {e}"
        );
    }
    // Figure 16 as printed: the first problem met is the placeholder
    // "string" where a prefix belongs (before the bare `integer`s).
    let e = decode_aliases(
        &vector("as-printed/fig16-create-aliases-schema.txt"),
        &DecodeLimits::default(),
    )
    .unwrap_err();
    assert_eq!((e.status(), e.tag()), (400, ErrorTag::InvalidValue), "{e}");
    assert_eq!(
        e.path(),
        Some("ietf-dots-data-channel:aliases/alias[0]/target-prefix[0]"),
        "{e}"
    );
    assert!(e.to_string().contains("\"string\""), "{e}");
}

#[test]
fn fig36_tcp_null_attack() {
    let b: AclsBody = roundtrip("fig36-tcp-null.json");
    let acl = &b.acls.acl[0];
    assert_eq!(
        (acl.acl_type, acl.activation_type),
        (None, Some(ActivationType::Immediate))
    );
    let ace = only_ace(&b.acls);
    let Some(L4Match::Tcp(tcp)) = &ace.matches.as_ref().unwrap().l4 else {
        panic!("no tcp")
    };
    let fb = tcp.flags_bitmask.as_ref().unwrap();
    assert_eq!(fb.bitmask, 4095);
    let op = fb.operator.unwrap();
    assert!(op.has("not") && op.has("any") && !op.has("match"));
    assert_eq!(
        ace.actions.as_ref().unwrap().forwarding,
        ForwardingAction::Drop
    );
    // Section 7.2 makes the destination mandatory for 'immediate' ACLs, which
    // this example (non-normative) lacks: refused by default, accepted when
    // the policy relaxes that rule.
    let e = parse_acls_request(&vector("fig36-tcp-null.json"), &Policy::default()).unwrap_err();
    assert!(matches!(e, DataError::MissingDestination { .. }), "{e}");
    let relaxed = Policy {
        require_destination_for_immediate: false,
        ..Policy::default()
    };
    parse_acls_request(&vector("fig36-tcp-null.json"), &relaxed).unwrap();
}

fn check_rate_limited(name: &str, bitmask: u16, acl_type: Option<AclType>) {
    let b: AclsBody = roundtrip(name);
    let acl = &b.acls.acl[0];
    assert_eq!(acl.acl_type, acl_type);
    assert_eq!(
        acl.effective_activation(),
        ActivationType::ActivateWhenMitigating
    );
    let ace = only_ace(&b.acls);
    let Some(L4Match::Tcp(tcp)) = &ace.matches.as_ref().unwrap().l4 else {
        panic!("no tcp")
    };
    let fb = tcp.flags_bitmask.as_ref().unwrap();
    assert_eq!(
        (fb.bitmask, fb.operator.unwrap().to_string().as_str()),
        (bitmask, "match")
    );
    let actions = ace.actions.as_ref().unwrap();
    assert_eq!(actions.forwarding, ForwardingAction::Accept);
    assert_eq!(actions.rate_limit, Some(Decimal2(2000)));
    assert_eq!(actions.rate_limit.unwrap().to_string(), "20.00");
    parse_acls_request(&vector(name), &Policy::default()).unwrap();
}

#[test]
fn fig37_rate_limit_syn() {
    check_rate_limited("fig37-syn-rate-limit.json", 2, None);
}

#[test]
fn fig38_rate_limit_ack() {
    check_rate_limited("fig38-ack-rate-limit.json", 16, Some(AclType::Ipv4));
}

// ------------------------------------------------------ not from the text

#[test]
fn extra_statistics_response() {
    let b: AclsBody = roundtrip("extra-acls-statistics.json");
    let ace = only_ace(&b.acls);
    let st = ace.statistics.as_ref().unwrap();
    assert_eq!(st.matched_packets, Some(U64(u64::MAX)));
    assert_eq!(st.matched_octets, Some(U64(1_234_567_890_123)));
    assert_eq!(
        ace.actions.as_ref().unwrap().rate_limit,
        Some(Decimal2(12_500_050))
    );
    let Some(L4Match::Udp(udp)) = &ace.matches.as_ref().unwrap().l4 else {
        panic!("no udp")
    };
    assert_eq!(
        udp.destination_port_range_or_operator,
        Some(PortMatch::Range {
            lower: 1000,
            upper: 1010
        })
    );
    // Encoded counters are JSON strings (RFC 7951 section 6.1).
    let v: Value = serde_json::from_str(&encode(&b).unwrap()).unwrap();
    let stats = &v["ietf-dots-data-channel:acls"]["acl"][0]["aces"]["ace"][0]["statistics"];
    assert_eq!(
        stats["matched-packets"],
        Value::String("18446744073709551615".into())
    );
}

#[test]
fn extra_error_bodies() {
    let b: ErrorsBody = roundtrip("extra-errors-invalid-value.json");
    let e = &b.errors.error[0];
    assert_eq!(
        (e.error_type, e.error_tag),
        (ErrorType::Protocol, ErrorTag::InvalidValue)
    );
    assert!(e.error_message.as_deref().unwrap().contains("127.0.0.1/32"));

    let b: ErrorsBody = roundtrip("extra-errors-loop-detected.json");
    let e = &b.errors.error[0];
    assert_eq!(
        (e.error_type, e.error_tag),
        (ErrorType::Transport, ErrorTag::OperationFailed)
    );
    assert_eq!(e.error_app_tag.as_deref(), Some("loop-detected"));
    let built = RestconfError::loop_detected("1.1 gw1.example.com, 1.1 gw2.example.net");
    assert_eq!(built.status, 508);
    let ours: Value = serde_json::from_str(&built.to_json()).unwrap();
    let theirs: Value = serde_json::from_slice(&vector("extra-errors-loop-detected.json")).unwrap();
    assert_eq!(ours, theirs);
}
