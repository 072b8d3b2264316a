//! Refused input: each validation rule, unknown members, malformed JSON and
//! the decode bounds. Every case checks the HTTP status, the RESTCONF
//! error-tag and that the message names the member (and value).

use dots_proto::data::*;
use serde_json::{json, Value};

fn policy() -> Policy {
    Policy::default()
}

/// Asserts `r` failed with `status`/`tag` and a message containing every
/// `needle`; returns the error.
fn refused<T: std::fmt::Debug>(
    r: Result<T, DataError>,
    status: u16,
    tag: ErrorTag,
    needles: &[&str],
) -> DataError {
    let e = r.expect_err("accepted");
    assert_eq!((e.status(), e.tag()), (status, tag), "{e}");
    let rest = e.to_restconf();
    assert_eq!(rest.status, status);
    let msg = rest.entry.error_message.clone().unwrap();
    for n in needles {
        assert!(
            msg.contains(n) || e.path().unwrap_or("").contains(n),
            "{n:?} not in {msg:?} / {:?}",
            e.path()
        );
    }
    // The response body is a valid RESTCONF error body naming the same tag.
    let body: ErrorsBody = serde_json::from_str(&rest.to_json()).unwrap();
    assert_eq!(body.errors.error[0].error_tag, tag);
    e
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn aliases(list: Value) -> Vec<u8> {
    bytes(&json!({ "ietf-dots-data-channel:aliases": { "alias": list } }))
}

fn alias(extra: Value) -> Value {
    let mut a = json!({ "name": "a1", "target-prefix": ["2001:db8::/64"] });
    merge(&mut a, extra);
    a
}

fn merge(a: &mut Value, extra: Value) {
    if let (Value::Object(a), Value::Object(b)) = (a, extra) {
        for (k, v) in b {
            if v.is_null() {
                a.remove(&k);
            } else {
                a.insert(k, v);
            }
        }
    }
}

/// One ACL `acl1` (ipv4 type unless `acl_extra` overrides) holding `aces`.
fn acls_with(acl_extra: Value, aces: Value) -> Vec<u8> {
    let mut acl = json!({ "name": "acl1", "type": "ipv4-acl-type", "aces": { "ace": aces } });
    merge(&mut acl, acl_extra);
    bytes(&json!({ "ietf-dots-data-channel:acls": { "acl": [acl] } }))
}

fn ace(matches: Value) -> Value {
    json!({ "name": "e1", "matches": matches, "actions": { "forwarding": "drop" } })
}

fn one_ace(matches: Value) -> Vec<u8> {
    acls_with(json!({}), json!([ace(matches)]))
}

// ------------------------------------------------------------ registration

#[test]
fn registration_needs_cuid() {
    let r = parse_registration_request(
        br#"{"ietf-dots-data-channel:dots-client":[{"cdid":"x"}]}"#,
        &policy(),
    );
    refused(r, 400, ErrorTag::MissingAttribute, &["cuid"]);
}

#[test]
fn registration_one_client_only() {
    let body = br#"{"ietf-dots-data-channel:dots-client":[{"cuid":"a"},{"cuid":"b"}]}"#;
    refused(
        parse_registration_request(body, &policy()),
        400,
        ErrorTag::InvalidValue,
        &["2 dots-client"],
    );
    let body = br#"{"ietf-dots-data-channel:dots-client":[]}"#;
    refused(
        parse_registration_request(body, &policy()),
        400,
        ErrorTag::InvalidValue,
        &["0 dots-client"],
    );
}

#[test]
fn registration_empty_cuid() {
    let body = br#"{"ietf-dots-data-channel:dots-client":[{"cuid":""}]}"#;
    refused(
        parse_registration_request(body, &policy()),
        400,
        ErrorTag::InvalidValue,
        &["cuid"],
    );
}

#[test]
fn registration_validates_nested_aliases() {
    let body = br#"{"ietf-dots-data-channel:dots-client":[{"cuid":"c1","aliases":{"alias":[{"name":"x"}]}}]}"#;
    refused(
        parse_registration_request(body, &policy()),
        400,
        ErrorTag::MissingAttribute,
        &["dots-client=c1/aliases/alias=x"],
    );
}

// ----------------------------------------------------------------- aliases

#[test]
fn alias_names_unique_in_request() {
    let r = parse_aliases_request(
        &aliases(json!([alias(json!({})), alias(json!({}))])),
        &policy(),
    );
    refused(
        r,
        400,
        ErrorTag::InvalidValue,
        &["alias name", "\"a1\"", "more than once"],
    );
}

#[test]
fn alias_name_present_and_non_empty() {
    let r = parse_aliases_request(&aliases(json!([alias(json!({ "name": null }))])), &policy());
    refused(r, 400, ErrorTag::MissingAttribute, &["name"]);
    let r = parse_aliases_request(&aliases(json!([alias(json!({ "name": "" }))])), &policy());
    refused(r, 400, ErrorTag::InvalidValue, &["name", "1..255"]);
}

#[test]
fn alias_needs_a_target() {
    let a =
        json!({ "name": "a1", "target-protocol": [6], "target-port-range": [{"lower-port": 80}] });
    refused(
        parse_aliases_request(&aliases(json!([a])), &policy()),
        400,
        ErrorTag::MissingAttribute,
        &["alias=a1", "target-prefix"],
    );
    // Empty lists are no targets either.
    let a = json!({ "name": "a1", "target-prefix": [], "target-fqdn": [] });
    refused(
        parse_aliases_request(&aliases(json!([a])), &policy()),
        400,
        ErrorTag::MissingAttribute,
        &["alias=a1"],
    );
    // An fqdn alone is enough.
    parse_aliases_request(
        &aliases(json!([{ "name": "a1", "target-fqdn": ["www.example.com"] }])),
        &policy(),
    )
    .unwrap();
}

#[test]
fn alias_prefix_sanity() {
    for (p, why) in [
        ("127.0.0.1/32", "loopback"),
        ("126.0.0.0/7", "loopback"),
        ("224.0.0.1/32", "multicast"),
        ("239.1.0.0/16", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("0.0.0.0/32", "unspecified"),
        ("0.0.0.0/0", "loopback"),
        ("::1/128", "loopback"),
        ("ff02::1/128", "multicast"),
        ("::/128", "unspecified"),
        ("::ffff:127.0.0.1/128", "IPv4-mapped loopback"),
    ] {
        let r = parse_aliases_request(
            &aliases(json!([alias(json!({ "target-prefix": [p] }))])),
            &policy(),
        );
        refused(r, 400, ErrorTag::InvalidValue, &["target-prefix", p, why]);
    }
    for ok in [
        "192.0.2.0/24",
        "198.51.100.7/32",
        "2001:db8::/32",
        "10.0.0.0/8",
    ] {
        parse_aliases_request(
            &aliases(json!([alias(json!({ "target-prefix": [ok] }))])),
            &policy(),
        )
        .unwrap();
    }
}

#[test]
fn alias_prefix_syntax() {
    for p in [
        "192.0.2.0/33",
        "2001:db8::/129",
        "192.0.2.0",
        "not-a-prefix/8",
        "192.0.2.0/-1",
    ] {
        let r = parse_aliases_request(
            &aliases(json!([alias(json!({ "target-prefix": [p] }))])),
            &policy(),
        );
        let e = refused(r, 400, ErrorTag::InvalidValue, &[p]);
        assert_eq!(
            e.path(),
            Some("ietf-dots-data-channel:aliases/alias[0]/target-prefix[0]")
        );
    }
}

#[test]
fn alias_prefix_in_client_scope() {
    let scoped = Policy {
        client_scope: vec!["2001:db8:6401::/48".parse().unwrap()],
        ..policy()
    };
    let ok = aliases(json!([alias(
        json!({ "target-prefix": ["2001:db8:6401::1/128"] })
    )]));
    parse_aliases_request(&ok, &scoped).unwrap();
    let r = parse_aliases_request(&aliases(json!([alias(json!({}))])), &scoped);
    refused(
        r,
        400,
        ErrorTag::InvalidValue,
        &["target-prefix", "2001:db8::/64", "outside"],
    );
}

#[test]
fn alias_port_range_ordered() {
    let a = alias(json!({ "target-port-range": [{ "lower-port": 443, "upper-port": 80 }] }));
    refused(
        parse_aliases_request(&aliases(json!([a])), &policy()),
        400,
        ErrorTag::InvalidValue,
        &["lower-port 443", "upper-port 80"],
    );
    let a = alias(
        json!({ "target-port-range": [{ "lower-port": 80 }, { "lower-port": 80, "upper-port": 90 }] }),
    );
    refused(
        parse_aliases_request(&aliases(json!([a])), &policy()),
        400,
        ErrorTag::InvalidValue,
        &["lower-port", "\"80\""],
    );
    let a = alias(json!({ "target-port-range": [{ "lower-port": 70000 }] }));
    refused(
        parse_aliases_request(&aliases(json!([a])), &policy()),
        400,
        ErrorTag::InvalidValue,
        &["70000", "lower-port"],
    );
}

#[test]
fn alias_leaf_lists_unique() {
    let a = alias(json!({ "target-prefix": ["2001:db8::/64", "2001:db8::/64"] }));
    refused(
        parse_aliases_request(&aliases(json!([a])), &policy()),
        400,
        ErrorTag::InvalidValue,
        &["target-prefix", "2001:db8::/64"],
    );
    let a = alias(json!({ "target-protocol": [6, 6] }));
    refused(
        parse_aliases_request(&aliases(json!([a])), &policy()),
        400,
        ErrorTag::InvalidValue,
        &["target-protocol", "6"],
    );
}

#[test]
fn alias_fqdn_and_uri_syntax() {
    for f in ["", "exa mple.com", "192.0.2.1", "a..b"] {
        let a = alias(json!({ "target-fqdn": [f] }));
        refused(
            parse_aliases_request(&aliases(json!([a])), &policy()),
            400,
            ErrorTag::InvalidValue,
            &["target-fqdn", &format!("{f:?}")],
        );
    }
    for u in ["no-scheme", "https://exa mple.com/", ":x"] {
        let a = alias(json!({ "target-uri": [u] }));
        refused(
            parse_aliases_request(&aliases(json!([a])), &policy()),
            400,
            ErrorTag::InvalidValue,
            &["target-uri", &format!("{u:?}")],
        );
    }
}

#[test]
fn alias_read_only_lifetime_refused_in_request() {
    let a = alias(json!({ "pending-lifetime": 10 }));
    refused(
        parse_aliases_request(&aliases(json!([a])), &policy()),
        400,
        ErrorTag::InvalidValue,
        &["pending-lifetime", "alias=a1"],
    );
}

#[test]
fn alias_count_bounded() {
    let list: Vec<Value> = (0..5)
        .map(|i| alias(json!({ "name": format!("a{i}") })))
        .collect();
    let small = Policy {
        max_aliases: 4,
        ..policy()
    };
    refused(
        parse_aliases_request(&aliases(json!(list)), &small),
        409,
        ErrorTag::ResourceDenied,
        &["5 alias", "limit of 4"],
    );
    let small = Policy {
        max_targets_per_alias: 1,
        ..policy()
    };
    let a = alias(json!({ "target-prefix": ["2001:db8::/64", "2001:db8:1::/64"] }));
    refused(
        parse_aliases_request(&aliases(json!([a])), &small),
        409,
        ErrorTag::ResourceDenied,
        &["target-prefix", "limit of 1"],
    );
}

// -------------------------------------------------------------------- ACLs

#[test]
fn acl_and_ace_names() {
    let two = acls_with(json!({}), json!([ace(json!({})), ace(json!({}))]));
    refused(
        parse_acls_request(&two, &policy()),
        400,
        ErrorTag::InvalidValue,
        &["ace name", "\"e1\"", "acl=acl1"],
    );
    let long = "x".repeat(65);
    refused(
        parse_acls_request(&acls_with(json!({ "name": long }), json!([])), &policy()),
        400,
        ErrorTag::InvalidValue,
        &["name", "1..64"],
    );
    let mut e = ace(json!({}));
    e["name"] = json!("");
    refused(
        parse_acls_request(&acls_with(json!({}), json!([e])), &policy()),
        400,
        ErrorTag::InvalidValue,
        &["name", "1..64"],
    );
    let body = br#"{"ietf-dots-data-channel:acls":{"acl":[{"name":"a"},{"name":"a"}]}}"#;
    refused(
        parse_acls_request(body, &policy()),
        400,
        ErrorTag::InvalidValue,
        &["acl name", "\"a\""],
    );
}

#[test]
fn ace_count_bounded() {
    let list: Vec<Value> = (0..3)
        .map(|i| json!({ "name": format!("e{i}"), "actions": { "forwarding": "drop" } }))
        .collect();
    let small = Policy {
        max_aces_per_acl: 2,
        ..policy()
    };
    refused(
        parse_acls_request(&acls_with(json!({}), json!(list)), &small),
        409,
        ErrorTag::ResourceDenied,
        &["3 ace", "limit of 2", "acl=acl1"],
    );
    let acls: Vec<Value> = (0..3).map(|i| json!({ "name": format!("a{i}") })).collect();
    let body = bytes(&json!({ "ietf-dots-data-channel:acls": { "acl": acls } }));
    let small = Policy {
        max_acls: 2,
        ..policy()
    };
    refused(
        parse_acls_request(&body, &small),
        409,
        ErrorTag::ResourceDenied,
        &["3 acl", "limit of 2"],
    );
}

#[test]
fn actions_required() {
    let e = json!({ "name": "e1", "matches": {} });
    refused(
        parse_acls_request(&acls_with(json!({}), json!([e])), &policy()),
        400,
        ErrorTag::MissingAttribute,
        &["ace=e1", "actions"],
    );
    let e = json!({ "name": "e1", "actions": {} });
    refused(
        parse_acls_request(&acls_with(json!({}), json!([e])), &policy()),
        400,
        ErrorTag::MissingAttribute,
        &["forwarding"],
    );
}

#[test]
fn reject_is_not_a_dots_action() {
    let e = json!({ "name": "e1", "actions": { "forwarding": "ietf-access-control-list:reject" } });
    refused(
        parse_acls_request(&acls_with(json!({}), json!([e])), &policy()),
        400,
        ErrorTag::InvalidValue,
        &["forwarding", "reject"],
    );
}

#[test]
fn unknown_identities_refused() {
    let e = json!({ "name": "e1", "actions": { "forwarding": "shred" } });
    refused(
        parse_acls_request(&acls_with(json!({}), json!([e])), &policy()),
        400,
        ErrorTag::InvalidValue,
        &["forwarding-action", "\"shred\""],
    );
    let e = json!({ "name": "e1", "actions": { "forwarding": "other-module:drop" } });
    refused(
        parse_acls_request(&acls_with(json!({}), json!([e])), &policy()),
        400,
        ErrorTag::InvalidValue,
        &["other-module"],
    );
    refused(
        parse_acls_request(
            &acls_with(json!({ "type": "ipv5-acl-type" }), json!([])),
            &policy(),
        ),
        400,
        ErrorTag::InvalidValue,
        &["acl-type", "ipv5"],
    );
    refused(
        parse_acls_request(
            &acls_with(json!({ "activation-type": "sometimes" }), json!([])),
            &policy(),
        ),
        400,
        ErrorTag::InvalidValue,
        &["sometimes"],
    );
}

#[test]
fn rate_limit_rules() {
    let e = json!({ "name": "e1", "actions": { "forwarding": "drop", "rate-limit": "10.00" } });
    refused(
        parse_acls_request(&acls_with(json!({}), json!([e])), &policy()),
        400,
        ErrorTag::InvalidValue,
        &["rate-limit 10.00", "drop"],
    );
    let e = json!({ "name": "e1", "actions": { "forwarding": "accept", "rate-limit": "-1.50" } });
    refused(
        parse_acls_request(&acls_with(json!({}), json!([e])), &policy()),
        400,
        ErrorTag::InvalidValue,
        &["rate-limit -1.50"],
    );
    // decimal64 is a string in RFC 7951, with at most 2 fraction digits here.
    for bad in [json!(20), json!("20.001"), json!("1e3")] {
        let e = json!({ "name": "e1", "actions": { "forwarding": "accept", "rate-limit": bad } });
        refused(
            parse_acls_request(&acls_with(json!({}), json!([e])), &policy()),
            400,
            ErrorTag::InvalidValue,
            &["rate-limit"],
        );
    }
}

#[test]
fn statistics_read_only_in_request() {
    let e = json!({ "name": "e1", "actions": { "forwarding": "drop" }, "statistics": { "matched-packets": "1" } });
    refused(
        parse_acls_request(&acls_with(json!({}), json!([e])), &policy()),
        400,
        ErrorTag::InvalidValue,
        &["statistics"],
    );
    refused(
        parse_acls_request(
            &acls_with(json!({ "pending-lifetime": 5 }), json!([])),
            &policy(),
        ),
        400,
        ErrorTag::InvalidValue,
        &["pending-lifetime"],
    );
    // counter64 must be a string.
    let e = json!({ "name": "e1", "statistics": { "matched-packets": 1 } });
    refused(
        decode_acls(&acls_with(json!({}), json!([e])), &DecodeLimits::default()),
        400,
        ErrorTag::InvalidValue,
        &["matched-packets"],
    );
}

#[test]
fn protocol_consistent_with_l4() {
    let r = parse_acls_request(
        &one_ace(json!({ "ipv4": { "protocol": 17 }, "tcp": {} })),
        &policy(),
    );
    refused(
        r,
        400,
        ErrorTag::InvalidValue,
        &["ipv4/protocol", "protocol 17", "tcp", "expects 6"],
    );
    let r = parse_acls_request(
        &one_ace(json!({ "ipv4": { "protocol": 6 }, "udp": {} })),
        &policy(),
    );
    refused(
        r,
        400,
        ErrorTag::InvalidValue,
        &["protocol 6", "udp", "expects 17"],
    );
    let v6 = acls_with(
        json!({ "type": "ipv6-acl-type" }),
        json!([ace(
            json!({ "ipv6": { "protocol": 1 }, "icmp": { "type": 128 } })
        )]),
    );
    refused(
        parse_acls_request(&v6, &policy()),
        400,
        ErrorTag::InvalidValue,
        &["protocol 1", "icmp", "expects 58"],
    );
    parse_acls_request(
        &one_ace(json!({ "ipv4": { "protocol": 1 }, "icmp": { "type": 8 } })),
        &policy(),
    )
    .unwrap();
}

#[test]
fn l3_match_follows_acl_type() {
    let r = parse_acls_request(&one_ace(json!({ "ipv6": { "protocol": 17 } })), &policy());
    refused(r, 400, ErrorTag::InvalidValue, &["'ipv6'", "ipv4-acl-type"]);
    // Without a type, either family is accepted (Appendix B omits it).
    let untyped = acls_with(json!({ "type": null }), json!([ace(json!({ "ipv6": {} }))]));
    parse_acls_request(&untyped, &policy()).unwrap();
}

#[test]
fn choices_are_exclusive() {
    let r = decode_acls(
        &one_ace(json!({ "ipv4": {}, "ipv6": {} })),
        &DecodeLimits::default(),
    );
    refused(r, 400, ErrorTag::InvalidValue, &["'l3'", "ipv4", "ipv6"]);
    let r = decode_acls(
        &one_ace(json!({ "tcp": {}, "udp": {} })),
        &DecodeLimits::default(),
    );
    refused(r, 400, ErrorTag::InvalidValue, &["'l4'", "tcp", "udp"]);
    let both = json!({ "udp": { "source-port": { "lower-port": 1, "upper-port": 2, "port": 3 } } });
    refused(
        decode_acls(&one_ace(both), &DecodeLimits::default()),
        400,
        ErrorTag::InvalidValue,
        &["range", "operator"],
    );
}

#[test]
fn port_match_rules() {
    let r = parse_acls_request(
        &one_ace(json!({ "tcp": { "destination-port": { "lower-port": 90, "upper-port": 80 } } })),
        &policy(),
    );
    refused(
        r,
        400,
        ErrorTag::InvalidValue,
        &[
            "destination-port-range-or-operator",
            "lower-port 90",
            "upper-port 80",
        ],
    );
    let r = decode_acls(
        &one_ace(json!({ "udp": { "source-port": { "lower-port": 90 } } })),
        &DecodeLimits::default(),
    );
    refused(r, 400, ErrorTag::MissingAttribute, &["upper-port"]);
    let r = decode_acls(
        &one_ace(json!({ "udp": { "source-port": { "operator": "gte" } } })),
        &DecodeLimits::default(),
    );
    refused(r, 400, ErrorTag::MissingAttribute, &["port"]);
    let r = decode_acls(
        &one_ace(json!({ "udp": { "source-port": { "operator": "lt", "port": 3 } } })),
        &DecodeLimits::default(),
    );
    refused(r, 400, ErrorTag::InvalidValue, &["lt"]);
    let r = decode_acls(
        &one_ace(json!({ "udp": { "source-port": {} } })),
        &DecodeLimits::default(),
    );
    refused(
        r,
        400,
        ErrorTag::InvalidValue,
        &["empty port-range-or-operator"],
    );
    // Both names of the container are accepted, but not twice.
    let dup = br#"{"ietf-dots-data-channel:acls":{"acl":[{"name":"a","aces":{"ace":[{"name":"e","matches":{"udp":{"source-port":{"port":1},"source-port-range-or-operator":{"port":2}}}}]}}]}}"#;
    refused(
        decode_acls(dup, &DecodeLimits::default()),
        400,
        ErrorTag::InvalidValue,
        &["duplicate field"],
    );
}

#[test]
fn fragment_rules() {
    let v6 = |frag: Value| {
        acls_with(
            json!({ "type": "ipv6-acl-type" }),
            json!([ace(json!({ "ipv6": { "fragment": frag } }))]),
        )
    };
    let r = parse_acls_request(&v6(json!({ "type": "df isf" })), &policy());
    refused(
        r,
        400,
        ErrorTag::InvalidValue,
        &["ipv6/fragment", "\"df isf\"", "df"],
    );
    parse_acls_request(&v6(json!({ "type": "ff lf" })), &policy()).unwrap();
    // IPv4 allows df.
    parse_acls_request(
        &one_ace(json!({ "ipv4": { "fragment": { "type": "df" } } })),
        &policy(),
    )
    .unwrap();
    // 'fragment' and 'flags' together (section 4.2).
    let r = parse_acls_request(
        &one_ace(json!({ "ipv4": { "fragment": { "type": "isf" }, "flags": "more" } })),
        &policy(),
    );
    refused(r, 400, ErrorTag::InvalidValue, &["'fragment'", "'flags'"]);
    // Unknown and repeated bits; missing mandatory type.
    let r = decode_acls(
        &one_ace(json!({ "ipv4": { "fragment": { "type": "first" } } })),
        &DecodeLimits::default(),
    );
    refused(
        r,
        400,
        ErrorTag::InvalidValue,
        &["\"first\"", "fragment-type"],
    );
    let r = decode_acls(
        &one_ace(json!({ "ipv4": { "fragment": { "type": "isf isf" } } })),
        &DecodeLimits::default(),
    );
    refused(r, 400, ErrorTag::InvalidValue, &["repeated"]);
    let r = decode_acls(
        &one_ace(json!({ "ipv4": { "fragment": { "operator": "match" } } })),
        &DecodeLimits::default(),
    );
    refused(r, 400, ErrorTag::MissingAttribute, &["type"]);
}

#[test]
fn tcp_flag_rules() {
    let r = parse_acls_request(
        &one_ace(json!({ "tcp": { "flags-bitmask": { "bitmask": 2 }, "flags": "syn" } })),
        &policy(),
    );
    refused(
        r,
        400,
        ErrorTag::InvalidValue,
        &["'flags-bitmask'", "'flags'"],
    );
    let r = parse_acls_request(
        &one_ace(json!({ "tcp": { "flags-bitmask": { "operator": "match any", "bitmask": 2 } } })),
        &policy(),
    );
    refused(
        r,
        400,
        ErrorTag::InvalidValue,
        &["operator", "\"match any\""],
    );
    let r = parse_acls_request(
        &one_ace(json!({ "tcp": { "flags-bitmask": { "bitmask": 4096 } } })),
        &policy(),
    );
    refused(r, 400, ErrorTag::InvalidValue, &["bitmask", "4096"]);
    let r = decode_acls(
        &one_ace(json!({ "tcp": { "flags-bitmask": { "bitmask": 70000 } } })),
        &DecodeLimits::default(),
    );
    refused(r, 400, ErrorTag::InvalidValue, &["70000"]);
    let r = decode_acls(
        &one_ace(json!({ "tcp": { "flags": "syn bogus" } })),
        &DecodeLimits::default(),
    );
    refused(r, 400, ErrorTag::InvalidValue, &["\"bogus\"", "tcp flags"]);
}

#[test]
fn yang_ranges() {
    for (m, field) in [
        (json!({ "ipv4": { "dscp": 64 } }), "dscp 64"),
        (json!({ "ipv4": { "ecn": 4 } }), "ecn 4"),
        (json!({ "ipv4": { "ihl": 4 } }), "ihl 4"),
        (json!({ "ipv4": { "offset": 16384 } }), "offset 16384"),
        (json!({ "tcp": { "data-offset": 16 } }), "data-offset 16"),
    ] {
        refused(
            parse_acls_request(&one_ace(m), &policy()),
            400,
            ErrorTag::InvalidValue,
            &[field],
        );
    }
    let v6 = acls_with(
        json!({ "type": "ipv6-acl-type" }),
        json!([ace(json!({ "ipv6": { "flow-label": 1048576 } }))]),
    );
    refused(
        parse_acls_request(&v6, &policy()),
        400,
        ErrorTag::InvalidValue,
        &["flow-label 1048576"],
    );
}

#[test]
fn destination_prefix_sanity_and_family() {
    let r = parse_acls_request(
        &one_ace(json!({ "ipv4": { "destination-ipv4-network": "127.0.0.0/8" } })),
        &policy(),
    );
    refused(
        r,
        400,
        ErrorTag::InvalidValue,
        &["destination-ipv4-network", "127.0.0.0/8", "loopback"],
    );
    let r = decode_acls(
        &one_ace(json!({ "ipv4": { "source-ipv4-network": "2001:db8::/32" } })),
        &DecodeLimits::default(),
    );
    refused(
        r,
        400,
        ErrorTag::InvalidValue,
        &["source-ipv4-network", "not an IPv4 prefix"],
    );
}

#[test]
fn immediate_needs_destination() {
    let body = acls_with(
        json!({ "activation-type": "immediate" }),
        json!([ace(
            json!({ "ipv4": { "source-ipv4-network": "192.0.2.0/24" } })
        )]),
    );
    refused(
        parse_acls_request(&body, &policy()),
        400,
        ErrorTag::MissingAttribute,
        &["immediate", "destination", "ace=e1"],
    );
    // The default activation type is activate-when-mitigating: no such need.
    let body = acls_with(
        json!({}),
        json!([ace(
            json!({ "ipv4": { "source-ipv4-network": "192.0.2.0/24" } })
        )]),
    );
    parse_acls_request(&body, &policy()).unwrap();
}

// ------------------------------------------------ unknown members, syntax

#[test]
fn unknown_members_are_named() {
    let cases: [(&[u8], &str); 6] = [
        (br#"{"ietf-dots-data-channel:aliases":{"alias":[{"name":"a","target-prefix":["2001:db8::/64"],"colour":"red"}]}}"#, "colour"),
        (br#"{"ietf-dots-data-channel:aliases":{"alias":[],"extra":1}}"#, "extra"),
        (br#"{"aliases":{"alias":[]}}"#, "aliases"),
        (br#"{"ietf-dots-data-channel:acls":{"acl":[{"name":"a","aces":{"ace":[{"name":"e","matches":{"ipv4":{"hoplimit":3}}}]}}]}}"#, "hoplimit"),
        (br#"{"ietf-dots-data-channel:acls":{"acl":[{"name":"a","aces":{"ace":[{"name":"e","matches":{"sctp":{}}}]}}]}}"#, "sctp"),
        (br#"{"ietf-dots-data-channel:acls":{"acl":[{"name":"a","aces":{"ace":[{"name":"e","actions":{"forwarding":"drop","log":true}}]}}]}}"#, "log"),
    ];
    for (body, field) in cases {
        let r = if body.starts_with(br#"{"ietf-dots-data-channel:acls""#) {
            decode_acls(body, &DecodeLimits::default()).map(|_| ())
        } else {
            decode_aliases(body, &DecodeLimits::default()).map(|_| ())
        };
        let e = refused(r, 400, ErrorTag::UnknownElement, &[field]);
        assert!(
            matches!(&e, DataError::UnknownElement { field: f, .. } if f == field),
            "{e:?}"
        );
    }
    let r = decode_capabilities(
        br#"{"ietf-dots-data-channel:capabilities":{"ipv4":{"wings":true}}}"#,
        &DecodeLimits::default(),
    );
    refused(r, 400, ErrorTag::UnknownElement, &["wings", "ipv4"]);
    let r = decode_dots_client(
        br#"{"ietf-dots-data-channel:dots-client":[{"cuid":"a","cdid":"b","x-vendor":1}]}"#,
        &DecodeLimits::default(),
    );
    refused(r, 400, ErrorTag::UnknownElement, &["x-vendor"]);
}

#[test]
fn malformed_json_is_a_clean_error() {
    for body in [
        &b""[..],
        b"{",
        b"nul",
        b"{\"ietf-dots-data-channel:aliases\":",
        b"\xff\xfe",
        b"{}}",
        b"[1,]",
    ] {
        let e = decode_aliases(body, &DecodeLimits::default()).unwrap_err();
        assert_eq!(e.status(), 400, "{body:?}: {e}");
        assert!(
            matches!(
                e.tag(),
                ErrorTag::MalformedMessage | ErrorTag::InvalidValue | ErrorTag::MissingAttribute
            ),
            "{body:?}: {e}"
        );
    }
    let e = decode_aliases(
        b"{\"ietf-dots-data-channel:aliases\":{\"alias\":[",
        &DecodeLimits::default(),
    )
    .unwrap_err();
    assert_eq!(e.tag(), ErrorTag::MalformedMessage);
    // Wrong types name the member.
    let r = decode_aliases(
        br#"{"ietf-dots-data-channel:aliases":{"alias":[{"name":5}]}}"#,
        &DecodeLimits::default(),
    );
    refused(r, 400, ErrorTag::InvalidValue, &["alias[0]/name"]);
    let r = decode_aliases(
        br#"{"ietf-dots-data-channel:aliases":{"alias":[{"name":"a","target-protocol":[256]}]}}"#,
        &DecodeLimits::default(),
    );
    refused(
        r,
        400,
        ErrorTag::InvalidValue,
        &["target-protocol[0]", "256"],
    );
}

#[test]
fn decode_bounds() {
    let limits = DecodeLimits {
        max_body_bytes: 100,
        max_depth: 8,
    };
    let big = aliases(json!([alias(json!({ "name": "x".repeat(200) }))]));
    refused(
        decode_aliases(&big, &limits),
        413,
        ErrorTag::TooBig,
        &["exceeds the limit of 100"],
    );
    let deep = format!("{}{}", "[".repeat(9), "]".repeat(9));
    refused(
        decode_aliases(deep.as_bytes(), &limits),
        400,
        ErrorTag::MalformedMessage,
        &["deeper than 8"],
    );
    // Far beyond serde_json's own recursion limit: still a clean error.
    let deeper = "[".repeat(100_000);
    refused(
        decode_acls(
            deeper.as_bytes(),
            &DecodeLimits {
                max_body_bytes: 1 << 20,
                max_depth: 32,
            },
        ),
        400,
        ErrorTag::MalformedMessage,
        &["deeper"],
    );
    // The deepest valid body fits the default depth.
    let ok = br#"{"ietf-dots-data-channel:dots-data":{"dots-client":[{"cuid":"c","acls":{"acl":[{"name":"a","aces":{"ace":[{"name":"e","matches":{"tcp":{"source-port":{"port":1}}}}]}}]}}]}}"#;
    decode::<DotsDataBody>(ok, &DecodeLimits::default()).unwrap();
}

#[test]
fn restconf_error_helpers() {
    let e = RestconfError::new(409, ErrorTag::DataExists, "alias \"https1\" exists");
    let v: Value = serde_json::from_str(&e.to_json()).unwrap();
    assert_eq!(
        v,
        json!({ "ietf-restconf:errors": { "error": [{
            "error-type": "protocol", "error-tag": "data-exists", "error-message": "alias \"https1\" exists"
        }] } })
    );
    let nf = RestconfError::not_found("alias", "Server3");
    assert_eq!(
        (nf.status, nf.entry.error_tag),
        (404, ErrorTag::InvalidValue)
    );
    assert!(nf.to_json().contains("Server3"));
    let c = RestconfError::conflict("overlaps acl x of another client")
        .with_path("ietf-dots-data-channel:acls/acl=y");
    assert_eq!(
        (c.status, c.entry.error_tag),
        (409, ErrorTag::ResourceDenied)
    );
    assert!(c
        .to_json()
        .contains("\"error-path\":\"ietf-dots-data-channel:acls/acl=y\""));
    assert_eq!(ErrorTag::ResourceDenied.default_status(), 409);
    assert_eq!(ErrorTag::MalformedMessage.as_str(), "malformed-message");
}
