//! Bad input: every validation rule answers with its response code and a
//! diagnostic naming the field; the decoder refuses hostile shapes.

use ciborium::value::{Integer, Value};
use dots_proto::signal::*;

fn cbor(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).unwrap();
    out
}
fn int(i: i64) -> Value {
    Value::Integer(Integer::from(i))
}
fn map(entries: Vec<(i64, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (int(k), v)).collect())
}
fn text(s: &str) -> Value {
    Value::Text(s.into())
}

/// {1: {2: [scope]}}
fn mitigation(scope: Vec<(i64, Value)>) -> Vec<u8> {
    cbor(&map(vec![(1, map(vec![(2, Value::Array(vec![map(scope)]))]))]))
}

fn path(mid: Option<u32>) -> MitigatePath {
    MitigatePath { cdid: None, cuid: "dz6pHjaADkaFTbjr0JGBpw".into(), mid }
}

/// Decodes the JSON scope, validates it as a PUT and returns the error.
fn put_err(scope_json: &str) -> SignalError {
    let body = format!(r#"{{"ietf-dots-signal-channel:mitigation-scope": {{"scope": [{scope_json}]}}}}"#);
    let m = match MitigationScope::from_json(&body) {
        Ok(d) => d.value,
        Err(e) => return e,
    };
    validate_mitigation_put(&path(Some(1)), &m, &MitigationPolicy::default()).expect_err("must be refused")
}

fn assert_bad(e: &SignalError, code: &str, field: &str) {
    assert_eq!(e.code().to_string(), code, "{e:?}");
    assert!(e.diagnostic().contains(field), "diagnostic {:?} does not name {field}", e.diagnostic());
}

const OK_SCOPE: &str = r#"{"target-prefix": ["192.0.2.0/24"], "lifetime": 3600}"#;

#[test]
fn a_valid_request_passes_and_lifetime_is_granted_by_policy() {
    let body = format!(r#"{{"ietf-dots-signal-channel:mitigation-scope": {{"scope": [{OK_SCOPE}]}}}}"#);
    let m = MitigationScope::from_json(&body).unwrap().value;
    let r = validate_mitigation_put(&path(Some(7)), &m, &MitigationPolicy::default()).unwrap();
    assert_eq!((r.mid, r.trigger_mitigation, r.granted_lifetime), (7, true, Some(Lifetime::Seconds(3600))));
    let strict = MitigationPolicy { allow_indefinite: false, max_lifetime: 600 };
    assert_eq!(validate::grant(Lifetime::Seconds(3600), &strict), Lifetime::Seconds(600));
    assert_eq!(validate::grant(Lifetime::Indefinite, &strict), Lifetime::Seconds(600));
    let lax = MitigationPolicy { allow_indefinite: true, max_lifetime: 600 };
    assert_eq!(validate::grant(Lifetime::Indefinite, &lax), Lifetime::Indefinite);
}

#[test]
fn response_codes_display() {
    assert_eq!(ResponseCode::BAD_REQUEST.to_string(), "4.00");
    assert_eq!(ResponseCode::UNPROCESSABLE_ENTITY.to_string(), "4.22");
    assert_eq!(ResponseCode::SERVICE_UNAVAILABLE.to_string(), "5.03");
}

#[test]
fn one_scope_per_request() {
    let body = format!(r#"{{"ietf-dots-signal-channel:mitigation-scope": {{"scope": [{OK_SCOPE}, {OK_SCOPE}]}}}}"#);
    let m = MitigationScope::from_json(&body).unwrap().value;
    let e = validate_mitigation_put(&path(Some(1)), &m, &MitigationPolicy::default()).unwrap_err();
    assert_bad(&e, "4.00", "scope");
    let empty = MitigationScope { scopes: vec![] };
    let e = validate_mitigation_put(&path(Some(1)), &empty, &MitigationPolicy::default()).unwrap_err();
    assert_bad(&e, "4.00", "scope");
}

#[test]
fn a_target_is_required() {
    assert_bad(&put_err(r#"{"target-protocol": [6], "lifetime": 3600}"#), "4.00", "target-prefix");
}

#[test]
fn lifetime_rules() {
    assert_bad(&put_err(r#"{"target-prefix": ["192.0.2.0/24"], "lifetime": 0}"#), "4.00", "lifetime");
    assert_bad(&put_err(r#"{"target-prefix": ["192.0.2.0/24"], "lifetime": -2}"#), "4.00", "lifetime");
    assert_bad(&put_err(r#"{"target-prefix": ["192.0.2.0/24"], "lifetime": 4294967296}"#), "4.00", "lifetime");
    assert_bad(&put_err(r#"{"target-prefix": ["192.0.2.0/24"]}"#), "4.00", "lifetime");
    // -1 decodes as indefinite (CBOR major type 1).
    let m = MitigationScope::from_cbor(&mitigation(vec![(6, Value::Array(vec![text("192.0.2.0/24")])), (14, int(-1))]))
        .unwrap()
        .value;
    assert_eq!(m.scopes[0].lifetime, Some(Lifetime::Indefinite));
}

#[test]
fn uri_and_body_identifiers() {
    let m = MitigationScope::from_json(&format!(
        r#"{{"ietf-dots-signal-channel:mitigation-scope": {{"scope": [{OK_SCOPE}]}}}}"#
    ))
    .unwrap()
    .value;
    let e = validate_mitigation_put(&path(None), &m, &MitigationPolicy::default()).unwrap_err();
    assert_bad(&e, "4.00", "mid");
    assert_bad(&validate_mitigation_delete(&path(None)).unwrap_err(), "4.00", "mid");
    assert_bad(&put_err(r#"{"mid": 1, "target-prefix": ["192.0.2.0/24"], "lifetime": 3600}"#), "4.00", "mid");
    assert_bad(&put_err(r#"{"cuid": "x", "target-prefix": ["192.0.2.0/24"], "lifetime": 3600}"#), "4.00", "cuid");
    assert_bad(&put_err(r#"{"cdid": "x", "target-prefix": ["192.0.2.0/24"], "lifetime": 3600}"#), "4.00", "cdid");
}

#[test]
fn server_only_attributes_are_refused_in_requests() {
    for (attr, v) in [
        ("status", r#""attack-stopped""#),
        ("mitigation-start", r#""1507818434""#),
        ("bytes-dropped", r#""1""#),
        ("pps-dropped", r#""1""#),
        ("conflict-information", r#"{"conflict-cause": "cuid-collision"}"#),
    ] {
        let s = format!(r#"{{"{attr}": {v}, "target-prefix": ["192.0.2.0/24"], "lifetime": 3600}}"#);
        assert_bad(&put_err(&s), "4.00", attr);
    }
}

#[test]
fn empty_and_duplicate_values() {
    assert_bad(&put_err(r#"{"target-fqdn": [""], "lifetime": 3600}"#), "4.00", "target-fqdn");
    assert_bad(&put_err(r#"{"alias-name": ["a", "a"], "lifetime": 3600}"#), "4.00", "alias-name");
    assert_bad(
        &put_err(r#"{"target-prefix": ["192.0.2.0/24"], "target-port-range": [{"lower-port": 80}, {"lower-port": 80}], "lifetime": 3600}"#),
        "4.00",
        "target-port-range",
    );
}

#[test]
fn prefix_sanity() {
    for (p, why) in [
        ("127.0.0.1/32", "loopback"),
        ("::1/128", "loopback"),
        ("224.0.0.0/8", "multicast"),
        ("ff02::1/128", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("0.0.0.0/0", "loopback"),
        ("::/128", "unspecified"),
    ] {
        let e = put_err(&format!(r#"{{"target-prefix": ["{p}"], "lifetime": 3600}}"#));
        assert_bad(&e, "4.00", "target-prefix");
        assert!(e.diagnostic().contains(why), "{p}: {}", e.diagnostic());
    }
    assert_bad(&put_err(r#"{"target-prefix": ["10.0.0.0/33"], "lifetime": 3600}"#), "4.00", "target-prefix");
    assert_bad(&put_err(r#"{"target-prefix": ["2001:db8::/129"], "lifetime": 3600}"#), "4.00", "target-prefix");
    assert_bad(&put_err(r#"{"target-prefix": ["not-an-ip"], "lifetime": 3600}"#), "4.00", "target-prefix");
}

#[test]
fn port_and_protocol_ranges() {
    let e = put_err(r#"{"target-prefix": ["192.0.2.0/24"], "target-port-range": [{"lower-port": 90, "upper-port": 80}], "lifetime": 3600}"#);
    assert_bad(&e, "4.00", "target-port-range");
    let e = put_err(r#"{"target-prefix": ["192.0.2.0/24"], "target-port-range": [{"lower-port": 65536}], "lifetime": 3600}"#);
    assert_bad(&e, "4.00", "lower-port");
    let e = put_err(r#"{"target-prefix": ["192.0.2.0/24"], "target-port-range": [{"upper-port": 80}], "lifetime": 3600}"#);
    assert_bad(&e, "4.00", "lower-port");
    let e = put_err(r#"{"target-prefix": ["192.0.2.0/24"], "target-protocol": [256], "lifetime": 3600}"#);
    assert_bad(&e, "4.00", "target-protocol");
}

#[test]
fn fqdn_and_uri_syntax() {
    assert_bad(&put_err(r#"{"target-fqdn": ["bad name.example"], "lifetime": 3600}"#), "4.00", "target-fqdn");
    assert_bad(&put_err(r#"{"target-uri": ["no-scheme"], "lifetime": 3600}"#), "4.00", "target-uri");
    let body = r#"{"ietf-dots-signal-channel:mitigation-scope": {"scope": [{"target-fqdn": ["www.example.com"], "target-uri": ["https://www.example.com/x"], "lifetime": 60}]}}"#;
    let m = MitigationScope::from_json(body).unwrap().value;
    validate_mitigation_put(&path(Some(1)), &m, &MitigationPolicy::default()).unwrap();
}

#[test]
fn status_values_are_1_to_8() {
    for bad in [0, 9] {
        let e = MitigationScope::from_cbor(&mitigation(vec![(16, int(bad))])).unwrap_err();
        assert_bad(&e, "4.00", "status");
    }
    let d = MitigationScope::from_cbor(&mitigation(vec![(16, int(8))])).unwrap();
    assert_eq!(d.value.scopes[0].status, Some(Status::AttackMitigationSignalLoss));
    let e = MitigationScope::from_json(r#"{"ietf-dots-signal-channel:mitigation-scope": {"scope": [{"status": "bogus"}]}}"#)
        .unwrap_err();
    assert_bad(&e, "4.00", "status");
}

#[test]
fn unknown_keys_follow_the_comprehension_ranges() {
    let base = vec![(6, Value::Array(vec![text("192.0.2.0/24")])), (14, int(60))];
    for required in [54, 127, 256, 16383] {
        let mut s = base.clone();
        s.push((required, int(1)));
        let e = MitigationScope::from_cbor(&mitigation(s)).unwrap_err();
        assert_bad(&e, "4.00", &required.to_string());
    }
    for optional in [128, 200, 255, 16384, 40000, 65535] {
        let mut s = base.clone();
        s.push((optional, map(vec![(1, int(1))])));
        let d = MitigationScope::from_cbor(&mitigation(s)).unwrap();
        assert_eq!(d.value.scopes[0].lifetime, Some(Lifetime::Seconds(60)), "key {optional}");
    }
    for invalid in [0, -1, 65536] {
        let mut s = base.clone();
        s.push((invalid, int(1)));
        let e = MitigationScope::from_cbor(&mitigation(s)).unwrap_err();
        assert_bad(&e, "4.00", &invalid.to_string());
    }
    // A text key is not a Table 5 key.
    let v = Value::Map(vec![(text("x"), int(1))]);
    assert_eq!(SignalMessage::from_cbor(&cbor(&v)).unwrap_err().code(), ResponseCode::BAD_REQUEST);
    // JSON has no optional range: unknown names are refused.
    let e = SignalMessage::from_json(r#"{"ietf-dots-signal-channel:heartbeat": {"peer-hb-status": true, "x": 1}}"#)
        .unwrap_err();
    assert_bad(&e, "4.00", "x");
}

#[test]
fn known_keys_in_the_wrong_place_are_refused() {
    // lower-port directly in a scope.
    let e = MitigationScope::from_cbor(&mitigation(vec![(8, int(80))])).unwrap_err();
    assert_bad(&e, "4.00", "lower-port");
    // peer-hb-status inside signal-config.
    let v = map(vec![(30, map(vec![(51, Value::Bool(true))]))]);
    assert_bad(&SignalMessage::from_cbor(&cbor(&v)).unwrap_err(), "4.00", "peer-hb-status");
    // Two messages in one body.
    let v = map(vec![(49, map(vec![(51, Value::Bool(true))])), (30, map(vec![]))]);
    assert_eq!(SignalMessage::from_cbor(&cbor(&v)).unwrap_err(), SignalError::MultipleMessages);
    // Duplicate key.
    let v = Value::Map(vec![(int(49), map(vec![(51, Value::Bool(true)), (51, Value::Bool(false))]))]);
    assert_bad(&SignalMessage::from_cbor(&cbor(&v)).unwrap_err(), "4.00", "peer-hb-status");
    // Wrong message type for the resource.
    let hb = Heartbeat { peer_hb_status: true }.to_cbor();
    assert_bad(&MitigationScope::from_cbor(&hb).unwrap_err(), "4.00", "mitigation-scope");
}

#[test]
fn rfc9133_acl_list_errors() {
    // An activation type outside 1-3 (CBOR) or an unknown label (JSON).
    let target = (6, Value::Array(vec![text("192.0.2.0/24")]));
    for bad in [0, 4] {
        let acl = map(vec![(23, text("a")), (52, int(bad))]);
        let e = MitigationScope::from_cbor(&mitigation(vec![target.clone(), (53, Value::Array(vec![acl]))])).unwrap_err();
        assert_bad(&e, "4.00", "activation-type");
    }
    let e = put_err(r#"{"target-prefix": ["192.0.2.0/24"], "ietf-dots-signal-control:acl-list": [{"acl-name": "a", "activation-type": "sometimes"}]}"#);
    assert_bad(&e, "4.00", "activation-type");
    // The name is mandatory, not empty, and each ACL appears once.
    let e = put_err(r#"{"target-prefix": ["192.0.2.0/24"], "ietf-dots-signal-control:acl-list": [{"activation-type": "immediate"}]}"#);
    assert_bad(&e, "4.00", "acl-name");
    let e = put_err(r#"{"target-prefix": ["192.0.2.0/24"], "ietf-dots-signal-control:acl-list": [{"acl-name": ""}]}"#);
    assert_bad(&e, "4.00", "acl-name");
    let e = put_err(r#"{"target-prefix": ["192.0.2.0/24"], "ietf-dots-signal-control:acl-list": [{"acl-name": "a"}, {"acl-name": "a"}]}"#);
    assert_bad(&e, "4.00", "acl-name");
    // RFC 8783's 'acl-type' has no place in an RFC 9133 entry.
    let acl = map(vec![(23, text("a")), (24, text("ipv4-acl-type"))]);
    let e = MitigationScope::from_cbor(&mitigation(vec![target, (53, Value::Array(vec![acl]))])).unwrap_err();
    assert_bad(&e, "4.00", "acl-type");
}

#[test]
fn mandatory_attributes() {
    let v = map(vec![(49, map(vec![]))]);
    assert_bad(&SignalMessage::from_cbor(&cbor(&v)).unwrap_err(), "4.00", "peer-hb-status");
    let v = map(vec![(46, map(vec![(48, Value::Array(vec![text("192.0.2.1")]))]))]);
    assert_bad(&SignalMessage::from_cbor(&cbor(&v)).unwrap_err(), "4.00", "alt-server");
    let v = map(vec![(46, map(vec![(47, text("a.example")), (48, Value::Array(vec![text("nope")]))]))]);
    assert_bad(&SignalMessage::from_cbor(&cbor(&v)).unwrap_err(), "4.00", "alt-server-record");
}

#[test]
fn hostile_shapes() {
    // Nesting far deeper than any message: arrays in arrays.
    let mut deep = vec![0x81u8; 5000];
    deep.push(0x01);
    assert_eq!(SignalMessage::from_cbor(&deep).unwrap_err().code(), ResponseCode::BAD_REQUEST);
    // Deep maps under an optional key are refused too, not skipped blindly.
    let mut v = int(1);
    for _ in 0..20 {
        v = map(vec![(200, v)]);
    }
    let e = SignalMessage::from_cbor(&cbor(&map(vec![(49, v)]))).unwrap_err();
    assert!(matches!(e, SignalError::TooDeep { .. }), "{e:?}");
    // Deep JSON.
    let json = format!("{}{}", "[".repeat(100), "]".repeat(100));
    assert_eq!(SignalMessage::from_json(&json).unwrap_err().code(), ResponseCode::BAD_REQUEST);
    // Too many entries.
    let many = Value::Array((0..300).map(|i| text(&format!("a{i}"))).collect());
    let e = MitigationScope::from_cbor(&mitigation(vec![(13, many)])).unwrap_err();
    assert!(matches!(e, SignalError::TooManyItems { field: "alias-name", .. }), "{e:?}");
    // Too long a string.
    let long = text(&"a".repeat(limits::MAX_TEXT + 1));
    let e = MitigationScope::from_cbor(&mitigation(vec![(13, Value::Array(vec![long]))])).unwrap_err();
    assert!(matches!(e, SignalError::TextTooLong { field: "alias-name", .. }), "{e:?}");
    // Too large a body, a huge declared array length, truncation, trailing bytes.
    assert!(matches!(SignalMessage::from_cbor(&vec![0u8; limits::MAX_BODY + 1]), Err(SignalError::BodyTooLarge { .. })));
    assert!(SignalMessage::from_cbor(&[0xA1, 0x01, 0x9B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]).is_err());
    assert!(SignalMessage::from_cbor(&[0xA1, 0x18]).is_err());
    let mut hb = Heartbeat { peer_hb_status: false }.to_cbor();
    hb.push(0x00);
    assert!(matches!(SignalMessage::from_cbor(&hb), Err(SignalError::Malformed(_))));
    assert!(SignalMessage::from_cbor(&[]).is_err());
}

#[test]
fn wrong_types() {
    let e = MitigationScope::from_cbor(&mitigation(vec![(14, text("3600"))])).unwrap_err();
    assert_bad(&e, "4.00", "lifetime");
    let e = MitigationScope::from_cbor(&mitigation(vec![(45, int(1))])).unwrap_err();
    assert_bad(&e, "4.00", "trigger-mitigation");
    // mitigation-start with CBOR tag 1 ("MUST be omitted", 4.4.2).
    let tagged = Value::Tag(1, Box::new(int(1507818434)));
    let e = MitigationScope::from_cbor(&mitigation(vec![(15, tagged)])).unwrap_err();
    assert_bad(&e, "4.00", "mitigation-start");
    // A decimal without tag 4.
    let v = map(vec![(30, map(vec![(32, map(vec![(40, map(vec![(43, int(150))]))]))]))]);
    assert_bad(&SignalMessage::from_cbor(&cbor(&v)).unwrap_err(), "4.00", "current-value-decimal");
}

// ------------------------------------------------------------ config

fn config(json_inner: &str) -> SignalConfig {
    let body = format!(r#"{{"ietf-dots-signal-channel:signal-config": {json_inner}}}"#);
    SignalConfig::from_json(&body).unwrap().value
}

#[test]
fn config_out_of_range_is_4_22() {
    let policy = ConfigPolicy::default();
    for (attr, v) in [
        ("heartbeat-interval", r#"{"current-value": 241}"#),
        ("heartbeat-interval", r#"{"current-value": 5}"#),
        ("missing-hb-allowed", r#"{"current-value": 2}"#),
        ("probing-rate", r#"{"current-value": 21}"#),
        ("max-retransmit", r#"{"current-value": 16}"#),
        ("ack-timeout", r#"{"current-value-decimal": "0.50"}"#),
        ("ack-random-factor", r#"{"current-value-decimal": "4.01"}"#),
    ] {
        let c = config(&format!(r#"{{"idle-config": {{"{attr}": {v}}}}}"#));
        let e = validate_config_put(Some(1), &c, &policy).unwrap_err();
        assert_bad(&e, "4.22", attr);
        assert!(e.diagnostic().contains("idle-config"), "{}", e.diagnostic());
    }
    // Heartbeat 0 disables, unless the policy forbids that.
    let c = config(r#"{"mitigating-config": {"heartbeat-interval": {"current-value": 0}}}"#);
    validate_config_put(Some(1), &c, &policy).unwrap();
    let strict = ConfigPolicy { allow_heartbeat_disable: false, ..ConfigPolicy::default() };
    assert_bad(&validate_config_put(Some(1), &c, &strict).unwrap_err(), "4.22", "heartbeat-interval");
}

#[test]
fn config_protocol_errors_are_4_00() {
    let policy = ConfigPolicy::default();
    let ok = config(r#"{"mitigating-config": {"max-retransmit": {"current-value": 4}}}"#);
    assert_bad(&validate_config_put(None, &ok, &policy).unwrap_err(), "4.00", "sid");
    let out = validate_config_put(Some(9), &ok, &policy).unwrap();
    assert_eq!(out.mitigating_config.unwrap().max_retransmit.unwrap(), IntParam::range(2, 15, 4));
    assert_bad(&validate_config_put(Some(1), &config("{}"), &policy).unwrap_err(), "4.00", "signal-config");
    let c = config(r#"{"idle-config": {}}"#);
    assert_bad(&validate_config_put(Some(1), &c, &policy).unwrap_err(), "4.00", "signal-config");
    let c = config(r#"{"idle-config": {"heartbeat-interval": {"max-value": 100, "current-value": 30}}}"#);
    assert_bad(&validate_config_put(Some(1), &c, &policy).unwrap_err(), "4.00", "max-value");
    let c = config(r#"{"idle-config": {"ack-timeout": {"min-value-decimal": "1.00"}}}"#);
    assert_bad(&validate_config_put(Some(1), &c, &policy).unwrap_err(), "4.00", "min-value-decimal");
    let c = config(r#"{"idle-config": {"probing-rate": {}}}"#);
    assert_bad(&validate_config_put(Some(1), &c, &policy).unwrap_err(), "4.00", "probing-rate");
    let c = config(r#"{"sid": 2, "idle-config": {"probing-rate": {"current-value": 6}}}"#);
    assert_bad(&validate_config_put(Some(1), &c, &policy).unwrap_err(), "4.00", "sid");
    // uint16 overflow at decode.
    let e = SignalConfig::from_json(
        r#"{"ietf-dots-signal-channel:signal-config": {"idle-config": {"probing-rate": {"current-value": 65536}}}}"#,
    )
    .unwrap_err();
    assert_bad(&e, "4.00", "current-value");
}

#[test]
fn reversed_min_max_is_swapped_and_reported() {
    // {30: {32: {33: {34: 15, 35: 240, 36: 30}, 39: {41: 1.00, 42: 30.00}}}}
    let dec = |m: i64| Value::Tag(4, Box::new(Value::Array(vec![int(-2), int(m)])));
    let v = map(vec![(
        30,
        map(vec![(
            32,
            map(vec![
                (33, map(vec![(34, int(15)), (35, int(240)), (36, int(30))])),
                (39, map(vec![(41, dec(100)), (42, dec(3000))])),
            ]),
        )]),
    )]);
    let d = SignalConfig::from_cbor(&cbor(&v)).unwrap();
    let m = d.value.mitigating_config.unwrap();
    assert_eq!(m.heartbeat_interval, Some(IntParam::range(15, 240, 30)));
    let at = m.ack_timeout.unwrap();
    assert_eq!((at.min_value_decimal, at.max_value_decimal), (Some(Decimal::from_hundredths(100)), Some(Decimal::from_hundredths(3000))));
    assert_eq!(
        d.warnings,
        vec![
            Warning::SwappedMinMax { field: "mitigating-config/heartbeat-interval".into() },
            Warning::SwappedMinMax { field: "mitigating-config/ack-timeout".into() },
        ]
    );
}

#[test]
fn decimal_fractions_from_peers() {
    // 4([-1, 15]) is 1.5 too; 4([-3, 1501]) needs three digits.
    let body = |e: i64, m: i64| {
        let dec = Value::Tag(4, Box::new(Value::Array(vec![int(e), int(m)])));
        cbor(&map(vec![(30, map(vec![(44, map(vec![(40, map(vec![(43, dec)]))]))]))]))
    };
    let c = SignalConfig::from_cbor(&body(-1, 15)).unwrap().value;
    assert_eq!(c.idle_config.unwrap().ack_random_factor.unwrap().current_value_decimal, Some(Decimal::from_hundredths(150)));
    assert_bad(&SignalConfig::from_cbor(&body(-3, 1501)).unwrap_err(), "4.00", "current-value-decimal");
    assert_bad(&SignalConfig::from_cbor(&body(i64::MIN, 1)).unwrap_err(), "4.00", "current-value-decimal");
}

#[test]
fn defaults_from_the_text() {
    assert_eq!(defaults::HEARTBEAT_INTERVAL, 30);
    assert_eq!(defaults::MISSING_HB_ALLOWED, 15);
    assert_eq!(defaults::PROBING_RATE, 5);
    assert_eq!(defaults::MAX_RETRANSMIT, 3);
    assert_eq!(defaults::ACK_TIMEOUT.to_string(), "2.00");
    assert_eq!(defaults::ACK_RANDOM_FACTOR.to_string(), "1.50");
    let d = SignalConfig::server_default();
    assert_eq!(d.mitigating_config, d.idle_config);
    assert_eq!(Lifetime::RECOMMENDED, Lifetime::Seconds(3600));
}
