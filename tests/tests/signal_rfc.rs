//! RFC 9132 behaviours of the signal channel, one test each, against a
//! daemon in a lab: our test client (OpenSSL DTLS/TLS + dots-proto) where
//! coap-client cannot express the exchange, coap-client where it can.

use std::time::Duration;

use dots_proto::coap::{Code, Message, MessageType, Token};
use dots_proto::signal::{
    AttackStatus, ConfigParameters, IntParam, Lifetime, MitigationScope, RedirectedSignal, SignalBody, SignalConfig, Status,
};
use mitigator_tests::signal::{diagnostic, dots_protections, mitigate_path, mitigation_request, udp_port, wait_for, SignalLab, TestClient};

fn scope_of(m: &Message) -> dots_proto::signal::Scope {
    MitigationScope::from_cbor(&m.payload).expect("mitigation-scope body").value.scopes.remove(0)
}

fn alice_request(lifetime: Lifetime) -> MitigationScope {
    udp_port(mitigation_request(&["203.0.113.10/32"], lifetime, None), 9999)
}

#[test]
fn lifetime_expiry_removes_the_mitigation() -> anyhow::Result<()> {
    let lab = SignalLab::start("mtg-slx", "")?;
    let mut c = lab.tls_client("alice", false)?;
    let path = mitigate_path(&lab.alice_cuid, Some(1));
    assert_eq!(c.put(&path, &alice_request(Lifetime::Seconds(2)), false)?.code, Code::CREATED);
    let ps = dots_protections(&lab.daemon)?;
    assert_eq!(ps.len(), 1, "enforced before the 2.01");
    // The local CLI cannot take a DOTS mitigation's protection away.
    let id = ps[0]["id"].to_string();
    let out = lab.daemon.cli_raw(&["unprotect", &id])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("DOTS client") && err.contains("withdraws it"), "{err}");
    assert_eq!(dots_protections(&lab.daemon)?.len(), 1, "still enforced");
    wait_for("the lifetime to run out", Duration::from_secs(10), || Ok((c.get(&path)?.code == Code::NOT_FOUND).then_some(())))?;
    assert!(dots_protections(&lab.daemon)?.is_empty(), "and no longer in the data plane");
    Ok(())
}

#[test]
fn refresh_extends_the_lifetime() -> anyhow::Result<()> {
    let lab = SignalLab::start("mtg-slr", "")?;
    let mut c = lab.dtls_client("alice", false)?;
    let path = mitigate_path(&lab.alice_cuid, Some(1));
    assert_eq!(c.put(&path, &alice_request(Lifetime::Seconds(30)), false)?.code, Code::CREATED);
    let r = c.put(&path, &alice_request(Lifetime::Seconds(600)), false)?;
    assert_eq!(r.code, Code::CHANGED, "a refresh is 2.04 (4.4.1.3)");
    match scope_of(&c.get(&path)?).lifetime {
        Some(Lifetime::Seconds(s)) => assert!(s > 500, "remaining lifetime {s}"),
        other => panic!("{other:?}"),
    }
    // A refresh that changes the scope is refused.
    let other = udp_port(mitigation_request(&["203.0.113.11/32"], Lifetime::Seconds(600), None), 9999);
    let r = c.put(&path, &other, false)?;
    assert_eq!(r.code, Code::BAD_REQUEST, "{}", diagnostic(&r));
    Ok(())
}

#[test]
fn efficacy_update_with_if_match() -> anyhow::Result<()> {
    let lab = SignalLab::start("mtg-sle", "")?;
    let mut c = lab.dtls_client("alice", false)?;
    let path = mitigate_path(&lab.alice_cuid, Some(1));
    assert_eq!(c.put(&path, &alice_request(Lifetime::Seconds(600)), false)?.code, Code::CREATED);
    let mut update = alice_request(Lifetime::Seconds(600));
    update.scopes[0].lifetime = None;
    update.scopes[0].attack_status = Some(AttackStatus::UnderAttack);
    assert_eq!(c.put(&path, &update, true)?.code, Code::CHANGED, "efficacy update (4.4.3)");
    // For an unknown mid it is silently ignored: only the CoAP-level empty ACK.
    let mut m = Message::request(Code::PUT, MessageType::Con, 0x7777, Token::new(&[7, 7]).unwrap());
    m.set_uri_path(&mitigate_path(&lab.alice_cuid, Some(99)));
    m.set_content_format(271);
    m.add_if_match(b"");
    m.payload = update.to_cbor();
    c.send(&m)?;
    let ack = wait_for("the empty ACK", Duration::from_secs(5), || Ok(c.recv(Duration::from_millis(500))?.filter(|r| r.message_id == 0x7777)))?;
    assert_eq!((ack.mtype, ack.code), (MessageType::Ack, Code::EMPTY));
    assert_eq!(c.get(&mitigate_path(&lab.alice_cuid, Some(99)))?.code, Code::NOT_FOUND, "nothing created");
    Ok(())
}

#[test]
fn overlapping_request_with_a_lower_mid_is_a_4_09_conflict() -> anyhow::Result<()> {
    let lab = SignalLab::start("mtg-slc", "")?;
    let mut c = lab.tls_client("alice", false)?;
    assert_eq!(c.put(&mitigate_path(&lab.alice_cuid, Some(5)), &alice_request(Lifetime::Seconds(600)), false)?.code, Code::CREATED);
    let r = c.put(&mitigate_path(&lab.alice_cuid, Some(3)), &alice_request(Lifetime::Seconds(600)), false)?;
    assert_eq!(r.code, Code::CONFLICT);
    assert_eq!(r.content_format(), Some(271), "4.09 carries a CBOR body (section 9)");
    let info = scope_of(&r).conflict_information.expect("conflict-information");
    assert_eq!(info.conflict_scope.and_then(|s| s.mid), Some(5));
    Ok(())
}

#[test]
fn config_ranges_and_4_22_for_values_outside() -> anyhow::Result<()> {
    let lab = SignalLab::start("mtg-slg", "heartbeat_interval = { min = 5, max = 120, default = 30 }")?;
    let mut c = lab.dtls_client("alice", false)?;
    let r = c.get("/.well-known/dots/config")?;
    assert_eq!(r.code, Code::CONTENT);
    let cfg = SignalConfig::from_cbor(&r.payload)?.value;
    let hb = cfg.mitigating_config.unwrap().heartbeat_interval.unwrap();
    assert_eq!((hb.min_value, hb.max_value, hb.current_value), (Some(5), Some(120), Some(30)));
    let put = |hb: u16| SignalConfig {
        sid: None,
        mitigating_config: Some(ConfigParameters { heartbeat_interval: Some(IntParam::current(hb)), ..Default::default() }),
        idle_config: None,
    };
    let r = c.put("/.well-known/dots/config/sid=1", &put(500), false)?;
    assert_eq!(r.code, Code::UNPROCESSABLE_ENTITY);
    assert!(diagnostic(&r).contains("heartbeat-interval"), "{}", diagnostic(&r));
    assert_eq!(c.put("/.well-known/dots/config/sid=1", &put(60), false)?.code, Code::CREATED);
    let cfg = SignalConfig::from_cbor(&c.get("/.well-known/dots/config/sid=1")?.payload)?.value;
    assert_eq!(cfg.mitigating_config.unwrap().heartbeat_interval.unwrap().current_value, Some(60));
    assert_eq!(c.get("/.well-known/dots/config/sid=7")?.code, Code::NOT_FOUND);
    assert_eq!(c.delete("/.well-known/dots/config/sid=1")?.code, Code::DELETED);
    Ok(())
}

#[test]
fn heartbeat_loss_activates_a_preconfigured_request() -> anyhow::Result<()> {
    let lab = SignalLab::start(
        "mtg-slh",
        "heartbeat_interval = { min = 1, max = 240, default = 30 }\nmissing_hb_allowed = { min = 2, max = 20, default = 15 }",
    )?;
    let mut c = lab.tls_client("alice", false)?;
    let fast = ConfigParameters {
        heartbeat_interval: Some(IntParam::current(1)),
        missing_hb_allowed: Some(IntParam::current(2)),
        ..Default::default()
    };
    let cfg = SignalConfig { sid: None, mitigating_config: Some(fast.clone()), idle_config: Some(fast) };
    assert_eq!(c.put("/.well-known/dots/config/sid=1", &cfg, false)?.code, Code::CREATED);
    let pre = udp_port(mitigation_request(&["203.0.113.10/32"], Lifetime::Seconds(600), Some(false)), 9999);
    let path = mitigate_path(&lab.alice_cuid, Some(1));
    assert_eq!(c.put(&path, &pre, false)?.code, Code::CREATED);
    assert_eq!(scope_of(&c.get(&path)?).status, Some(Status::AttackMitigationSignalLoss), "waits at 8");
    assert!(dots_protections(&lab.daemon)?.is_empty(), "not enforced while the session lives");
    // The server's heartbeats arrive (NON PUT /hb, 4.7) ...
    let hb = wait_for("a server heartbeat", Duration::from_secs(5), || {
        Ok(c.recv(Duration::from_millis(500))?.filter(|m| m.code == Code::PUT))
    })?;
    assert_eq!(hb.uri_path().unwrap(), [".well-known", "dots", "hb"]);
    // ... and the client falls silent (it reads nothing and sends nothing):
    // after 2 x 1 s the session is lost and the request is enforced.
    let p = wait_for("activation on signal loss", Duration::from_secs(10), || {
        Ok(dots_protections(&lab.daemon)?.pop())
    })?;
    assert!(p.to_string().contains("203.0.113.10"), "{p}");
    assert!(lab.daemon.log().contains("DOTS session lost"));
    drop(c);
    Ok(())
}

#[test]
fn restart_keeps_the_mitigation_with_its_remaining_lifetime() -> anyhow::Result<()> {
    let mut lab = SignalLab::start("mtg-sld", "")?;
    let path = mitigate_path(&lab.alice_cuid, Some(1));
    {
        let mut c = lab.tls_client("alice", false)?;
        assert_eq!(c.put(&path, &alice_request(Lifetime::Seconds(600)), false)?.code, Code::CREATED);
    }
    lab.daemon.kill9();
    lab.daemon.spawn()?;
    let mut c = wait_for("the restarted signal channel", Duration::from_secs(20), || Ok(lab.tls_client("alice", false).ok()))?;
    let s = scope_of(&c.get(&path)?);
    assert_eq!(s.status, Some(Status::AttackSuccessfullyMitigated));
    match s.lifetime {
        Some(Lifetime::Seconds(l)) => assert!((500..=600).contains(&l), "remaining lifetime {l}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(dots_protections(&lab.daemon)?.len(), 1);
    Ok(())
}

#[test]
fn wrong_credentials_are_rejected() -> anyhow::Result<()> {
    let lab = SignalLab::start("mtg-slw", "")?;
    // Mallory's certificate is from our CA but in no client domain: 4.01.
    let mut m = lab.tls_client("mallory", false)?;
    let r = m.get(&mitigate_path(&lab.alice_cuid, None))?;
    assert_eq!(r.code, Code::UNAUTHORIZED, "{}", diagnostic(&r));
    // A certificate of another CA: no handshake.
    let other = lab.pki.join("other-ca");
    let out = std::process::Command::new(mitigator_tests::daemon::mitigator_bin())
        .args(["certs", "--dir", other.to_str().unwrap(), "--client", "alice"])
        .output()?;
    assert!(out.status.success());
    let (cert, key, ca) = (other.join("alice.pem"), other.join("alice-key.pem"), lab.ca());
    let server = std::net::SocketAddr::new(lab.server(false), 4646);
    // (With TLS 1.3 the client learns of the refusal only at its first read.)
    let get = mitigate_path(&lab.alice_cuid, None);
    let tls = lab.client.run(move || TestClient::tls(server, &ca, &cert, &key).and_then(|mut c| c.get(&get)).map(|_| ()))?;
    assert!(tls.is_err(), "a foreign CA's certificate must not get a session");
    // A wrong PSK key: coap-client gets nothing back.
    let uri = format!("coaps://203.0.113.10:4646{}", mitigate_path(&lab.alice_cuid, None));
    let run = mitigator_tests::signal::coap_client(&lab.client, &["-u", "cpe1", "-k", "not-the-key", "-m", "get", "-B", "3", &uri].map(String::from))?;
    assert!(run.responses.is_empty(), "{}", run.text);
    Ok(())
}

#[test]
fn a_foreign_prefix_is_refused() -> anyhow::Result<()> {
    let lab = SignalLab::start("mtg-slf", "")?;
    let mut c = lab.dtls_client("alice", false)?;
    let req = mitigation_request(&["198.51.100.7/32"], Lifetime::Seconds(600), None);
    let r = c.put(&mitigate_path(&lab.alice_cuid, Some(1)), &req, false)?;
    assert_eq!(r.code, Code::BAD_REQUEST);
    assert!(diagnostic(&r).contains("198.51.100.7"), "{}", diagnostic(&r));
    assert!(dots_protections(&lab.daemon)?.is_empty());
    Ok(())
}

#[test]
fn a_client_cannot_see_or_delete_another_clients_mitigation() -> anyhow::Result<()> {
    let lab = SignalLab::start("mtg-sli", "")?;
    let mut alice = lab.tls_client("alice", false)?;
    let mut bob = lab.dtls_client("bob", false)?;
    let alice_path = mitigate_path(&lab.alice_cuid, Some(1));
    assert_eq!(alice.put(&alice_path, &alice_request(Lifetime::Seconds(600)), false)?.code, Code::CREATED);
    let r = bob.get(&alice_path)?;
    assert_eq!(r.code, Code::BAD_REQUEST, "{}", diagnostic(&r));
    assert_eq!(bob.get(&mitigate_path(&lab.bob_cuid, Some(1)))?.code, Code::NOT_FOUND, "bob's own table is empty");
    assert_eq!(bob.delete(&alice_path)?.code, Code::BAD_REQUEST);
    assert_eq!(bob.delete(&mitigate_path(&lab.bob_cuid, Some(1)))?.code, Code::DELETED, "2.02 even if absent (4.4.4)");
    assert_eq!(scope_of(&alice.get(&alice_path)?).status, Some(Status::AttackSuccessfullyMitigated));
    Ok(())
}

#[test]
fn redirect_answers_5_03_with_the_alternate_server() -> anyhow::Result<()> {
    let lab = SignalLab::start("mtg-slz", "redirect = { alt_server = \"alt.example.net\", alt_server_record = [\"192.0.2.7\"], ttl = 600 }")?;
    let mut c = lab.tls_client("alice", false)?;
    let r = c.put(&mitigate_path(&lab.alice_cuid, Some(1)), &alice_request(Lifetime::Seconds(60)), false)?;
    assert_eq!((r.code, r.max_age()), (Code::SERVICE_UNAVAILABLE, Some(600)));
    let body = RedirectedSignal::from_cbor(&r.payload)?.value;
    assert_eq!(body.alt_server, "alt.example.net");
    assert_eq!(body.alt_server_record, vec!["192.0.2.7".parse::<std::net::IpAddr>()?]);
    Ok(())
}

#[test]
fn unknown_resource_wrong_method_and_content_format_with_coap_client() -> anyhow::Result<()> {
    let lab = SignalLab::start("mtg-slu", "")?;
    let base = "coaps://203.0.113.10:4646/.well-known/dots";
    let r = lab.coap_cert("alice", &["-m", "get", "-B", "5", &format!("{base}/nothing")])?;
    assert_eq!(r.last()?.code, "4.04", "{}", r.text);
    let r = lab.coap_cert("alice", &["-m", "post", "-B", "5", &format!("{base}/hb")])?;
    assert_eq!(r.last()?.code, "4.05", "{}", r.text);
    let body = lab.body_file("json.txt", b"{}")?;
    let uri = format!("{base}{}", &mitigate_path(&lab.alice_cuid, Some(1))["/.well-known/dots".len()..]);
    let r = lab.coap_cert("alice", &["-m", "put", "-t", "50", "-f", &body, "-B", "5", &uri])?;
    assert_eq!(r.last()?.code, "4.15", "{}", r.text);
    assert!(!r.last()?.payload.is_empty(), "diagnostic payload");
    // The heartbeat of a client is answered 2.04 (4.7).
    let hb = lab.body_file("hb.cbor", &dots_proto::signal::Heartbeat { peer_hb_status: true }.to_cbor())?;
    let r = lab.coap_cert("alice", &["-m", "put", "-t", "271", "-f", &hb, "-B", "5", &format!("{base}/hb")])?;
    assert_eq!(r.last()?.code, "2.04", "{}", r.text);
    Ok(())
}
