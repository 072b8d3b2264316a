//! Every JSON example of the signal-channel text (draft 08 of RFC 9132) as
//! a test vector: parse, check fields one by one, and round-trip through
//! JSON and CBOR. Figure 8's CBOR dump is checked byte for byte.

use dots_proto::signal::*;

fn vector(name: &str) -> String {
    let path = format!("{}/tests/vectors/signal/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// JSON -> model -> JSON -> model and model -> CBOR -> model are identity.
fn round_trips(m: &SignalMessage) {
    let json = m.to_json_string();
    let again = SignalMessage::from_json(&json).expect("re-parse own JSON");
    assert_eq!(&again.value, m, "JSON round trip:\n{json}");
    let cbor = m.to_cbor();
    let back = SignalMessage::from_cbor(&cbor).expect("decode own CBOR");
    assert_eq!(&back.value, m, "CBOR round trip");
    assert!(back.warnings.is_empty());
    assert_eq!(back.value.to_cbor(), cbor, "CBOR encoding is deterministic");
}

fn parse<T: SignalBody>(name: &str) -> T {
    let text = vector(name);
    let d = T::from_json(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(d.warnings.is_empty(), "{name}: {:?}", d.warnings);
    round_trips(&d.value.clone().wrap());
    // The file itself and our re-encoding describe the same JSON value.
    let original: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(d.value.to_json(), original, "{name}: JSON re-encoding differs");
    d.value
}

fn prefixes(v: &[&str]) -> Vec<IpPrefix> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

const FIG8_HEX: &str = "A101A10281A4068274323030313A6462383A363430313A3A312F31323874323030313A6462383A363430313A3A322F3132380783A1081850A1081901BBA108191F900A81060E190E10";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn figure_7_mitigation_request() {
    let m: MitigationScope = parse("fig07-mitigation-request.json");
    assert_eq!(m.scopes.len(), 1);
    let s = &m.scopes[0];
    assert_eq!(s.target.target_prefix, prefixes(&["2001:db8:6401::1/128", "2001:db8:6401::2/128"]));
    let ports: Vec<PortRange> =
        [80, 443, 8080].iter().map(|p| PortRange { lower_port: *p, upper_port: None }).collect();
    assert_eq!(s.target.target_port_range, ports);
    assert_eq!(s.target.target_protocol, vec![6]);
    assert_eq!(s.lifetime, Some(Lifetime::Seconds(3600)));
    assert!(s.target.target_fqdn.is_empty() && s.target.target_uri.is_empty() && s.target.alias_name.is_empty());
    assert_eq!(s.trigger_mitigation, None);
    assert_eq!((s.mid, s.status, s.attack_status), (None, None, None));
}

#[test]
fn figure_8_cbor_is_byte_exact() {
    let m: MitigationScope = parse("fig07-mitigation-request.json");
    assert_eq!(m.to_cbor(), hex(FIG8_HEX));
    let d = MitigationScope::from_cbor(&hex(FIG8_HEX)).unwrap();
    assert_eq!(d.value, m);
}

#[test]
fn figure_10_response() {
    let m: MitigationScope = parse("fig10-mitigation-response.json");
    let s = &m.scopes[0];
    assert_eq!(s.mid, Some(123));
    assert_eq!(s.lifetime, Some(Lifetime::Seconds(3600)));
    assert!(s.target.is_empty());
}

#[test]
fn figure_11_cuid_collision() {
    let m: MitigationScope = parse("fig11-conflict-cuid-collision.json");
    let c = m.scopes[0].conflict_information.as_ref().unwrap();
    assert_eq!(c.conflict_cause, Some(ConflictCause::CuidCollision));
    assert_eq!((c.conflict_status, c.retry_timer, c.conflict_scope.as_ref()), (None, None, None));
}

#[test]
fn figure_14_get_response_with_status() {
    let m: MitigationScope = parse("fig14-get-response-status.json");
    assert_eq!(m.scopes.len(), 2);
    let (a, b) = (&m.scopes[0], &m.scopes[1]);
    assert_eq!(a.mid, Some(12332));
    assert_eq!(a.mitigation_start, Some(1507818434));
    assert_eq!(a.target.target_prefix, prefixes(&["2001:db8:6401::1/128", "2001:db8:6401::2/128"]));
    assert_eq!(a.target.target_protocol, vec![17]);
    assert_eq!(a.lifetime, Some(Lifetime::Seconds(1756)));
    assert_eq!(a.status, Some(Status::AttackSuccessfullyMitigated));
    assert_eq!(a.bytes_dropped, Some(134334555));
    assert_eq!(a.bps_dropped, Some(43344));
    assert_eq!(a.pkts_dropped, Some(333334444));
    assert_eq!(a.pps_dropped, Some(432432));
    assert_eq!(b.mid, Some(12333));
    assert_eq!(b.mitigation_start, Some(1507818393));
    assert_eq!(b.target.target_protocol, vec![6]);
    assert_eq!(b.lifetime, Some(Lifetime::Seconds(1755)));
    assert_eq!(b.status, Some(Status::AttackStopped));
    assert_eq!((b.bytes_dropped, b.bps_dropped, b.pkts_dropped, b.pps_dropped), (Some(0), Some(0), Some(0), Some(0)));
}

#[test]
fn figure_16_efficacy_update() {
    let m: MitigationScope = parse("fig16-efficacy-update.json");
    let s = &m.scopes[0];
    assert_eq!(s.attack_status, Some(AttackStatus::UnderAttack));
    assert_eq!(s.lifetime, None);
    assert_eq!(s.target.target_port_range.len(), 3);
    assert_eq!(s.target.target_protocol, vec![6]);
    // And the server accepts it as a refresh without a lifetime.
    let path = SignalPath::parse(&[".well-known", "dots", "mitigate", "cuid=dz6pHjaADkaFTbjr0JGBpw", "mid=123"]).unwrap();
    let SignalPath::Mitigate(p) = path else { panic!() };
    let r = validate_mitigation_put(&p, &m, &MitigationPolicy::default()).unwrap();
    assert_eq!((r.mid, r.attack_status, r.granted_lifetime), (123, Some(AttackStatus::UnderAttack), None));
}

fn check_fig20_set(p: &ConfigParameters) {
    let d = Decimal::from_hundredths;
    assert_eq!(p.heartbeat_interval, Some(IntParam::range(15, 240, 30)));
    assert_eq!(p.missing_hb_allowed, Some(IntParam::range(3, 20, 15)));
    assert_eq!(p.probing_rate, Some(IntParam::range(5, 20, 15)));
    assert_eq!(p.max_retransmit, Some(IntParam::range(2, 15, 3)));
    assert_eq!(p.ack_timeout, Some(DecimalParam::range(d(100), d(3000), d(200))));
    assert_eq!(p.ack_random_factor, Some(DecimalParam::range(d(110), d(400), d(150))));
}

#[test]
fn figure_20_config_response() {
    let c: SignalConfig = parse("fig20-config-response.json");
    assert_eq!(c.sid, None);
    check_fig20_set(c.mitigating_config.as_ref().unwrap());
    check_fig20_set(c.idle_config.as_ref().unwrap());
}

#[test]
fn figure_23_config_request() {
    let c: SignalConfig = parse("fig23-config-request.json");
    let d = Decimal::from_hundredths;
    let m = c.mitigating_config.as_ref().unwrap();
    assert_eq!(m.heartbeat_interval, Some(IntParam::current(30)));
    assert_eq!(m.missing_hb_allowed, Some(IntParam::current(15)));
    assert_eq!(m.probing_rate, Some(IntParam::current(15)));
    assert_eq!(m.max_retransmit, Some(IntParam::current(3)));
    assert_eq!(m.ack_timeout, Some(DecimalParam::current(d(200))));
    assert_eq!(m.ack_random_factor, Some(DecimalParam::current(d(150))));
    let i = c.idle_config.as_ref().unwrap();
    assert_eq!(i.heartbeat_interval, Some(IntParam::current(0)));
    assert_eq!((i.missing_hb_allowed, i.probing_rate), (None, None));
    assert_eq!(i.max_retransmit, Some(IntParam::current(3)));
    assert_eq!(i.ack_timeout, Some(DecimalParam::current(d(200))));
    assert_eq!(i.ack_random_factor, Some(DecimalParam::current(d(150))));
    // A server with Figure 20's ranges accepts it (0 disables heartbeats).
    let out = validate_config_put(Some(123), &c, &ConfigPolicy::default()).unwrap();
    assert_eq!(out.idle_config.unwrap().heartbeat_interval.unwrap().current_value, Some(0));
    assert_eq!(out.mitigating_config.unwrap().probing_rate.unwrap().current_value, Some(15));
}

#[test]
fn figure_26_redirected_signal() {
    let r: RedirectedSignal = parse("fig26-redirected-signal.json");
    assert_eq!(r.alt_server, "alt-server.example");
    let addrs: Vec<std::net::IpAddr> = vec!["2001:db8:6401::1".parse().unwrap(), "2001:db8:6401::2".parse().unwrap()];
    assert_eq!(r.alt_server_record, addrs);
}

#[test]
fn figure_27_heartbeat() {
    let h: Heartbeat = parse("fig27-heartbeat.json");
    assert!(h.peer_hb_status);
    // {49: {51: true}}
    assert_eq!(h.to_cbor(), vec![0xA1, 0x18, 0x31, 0xA1, 0x18, 0x33, 0xF5]);
}

#[test]
fn decimals_are_tag_4_with_exponent_minus_2() {
    let c: SignalConfig = parse("fig23-config-request.json");
    let bytes = c.to_cbor();
    // ack-random-factor 1.50: key 40 {43: 4([-2, 150])}
    let needle = [0x18, 0x2B, 0xC4, 0x82, 0x21, 0x18, 0x96];
    assert!(bytes.windows(needle.len()).any(|w| w == needle), "{bytes:02x?}");
}

#[test]
fn rfc9133_acl_list_in_a_mitigation_request() {
    // Our own example (RFC 9133's text is not in shared/reference): keys
    // 53 and 52 as nttdots/go-dots encodes them, 'acl-name' is key 23.
    let m: MitigationScope = parse("rfc9133-control-filtering.json");
    let acls = &m.scopes[0].acl_list;
    assert_eq!(acls.len(), 2);
    assert_eq!((acls[0].acl_name.as_str(), acls[0].activation_type), ("an-accept-list", Some(ActivationType::Immediate)));
    assert_eq!((acls[1].acl_name.as_str(), acls[1].activation_type), ("a-drop-list", None));
    assert_eq!(acls[1].effective_activation(), ActivationType::ActivateWhenMitigating);
    // 53: [{23: "an-accept-list", 52: 2}, ...]
    let bytes = m.to_cbor();
    let mut needle = vec![0x18, 0x35, 0x82, 0xA2, 0x17, 0x6E];
    needle.extend_from_slice(b"an-accept-list");
    needle.extend_from_slice(&[0x18, 0x34, 0x02]);
    assert!(bytes.windows(needle.len()).any(|w| w == needle), "{bytes:02x?}");
    let r = validate_mitigation_put(
        &MitigatePath { cdid: None, cuid: "c".into(), mid: Some(1) },
        &m,
        &MitigationPolicy::default(),
    )
    .unwrap();
    assert_eq!(r.acl_list, m.scopes[0].acl_list);
}

#[test]
fn vectors_as_fuzz_seeds_are_current() {
    // The fuzz seeds are the CBOR of these vectors; regenerate them when
    // the encoder changes (run with DOTS_WRITE_SEEDS=1).
    let dir = format!("{}/fuzz/seeds/signal_cbor", env!("CARGO_MANIFEST_DIR"));
    let names = [
        "fig07-mitigation-request", "fig10-mitigation-response", "fig11-conflict-cuid-collision",
        "fig14-get-response-status", "fig16-efficacy-update", "fig20-config-response",
        "fig23-config-request", "fig26-redirected-signal", "fig27-heartbeat", "rfc9133-control-filtering",
    ];
    for n in names {
        let m = SignalMessage::from_json(&vector(&format!("{n}.json"))).unwrap().value;
        let path = format!("{dir}/{n}.cbor");
        if std::env::var_os("DOTS_WRITE_SEEDS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, m.to_cbor()).unwrap();
        }
        let seed = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(seed, m.to_cbor(), "{path} is stale");
    }
}
