//! RFC 9133, signal-channel control of filtering: while the data channel
//! is unusable, a DOTS client changes the activation type of an ACL it
//! installed over the data channel with the 'acl-list' of a new
//! mitigation request. The change is the data channel's (GET shows it,
//! it survives a restart), enforced by XDP; errors change nothing.

use std::time::Duration;

use dots_proto::coap::{Code, Message, MessageType, Token};
use dots_proto::signal::{ActivationType, ControlAcl, Lifetime, MitigationScope, SignalBody};
use mitigator_tests::datachannel::{acl, DROP};
use mitigator_tests::signal::{diagnostic, mitigate_path, mitigation_request, udp_port, wait_for, SignalLab, TestClient};
use mitigator_tests::traffic::{udp_burst, UdpCounter};

const HOST: &str = "203.0.113.10/32";
/// The ACL's port; the mitigations cover other ports (9998, 9999).
const PORT: u16 = 7040;

fn lab(tag: &str) -> anyhow::Result<(SignalLab, String)> {
    let lab = SignalLab::start(tag, "terminating_period_s = 2")?;
    lab.wait_data_channel()?;
    let cuid = lab.alice_cuid.clone();
    lab.register("alice", &cuid)?;
    let block = format!(r#"{{"ipv4":{{"destination-ipv4-network":"{HOST}"}},"udp":{{"destination-port-range-or-operator":{{"port":{PORT}}}}}}}"#);
    lab.put_acl("alice", &cuid, &acl("block", "deactivate", &[("d", &block, DROP)]))?;
    Ok((lab, cuid))
}

/// Datagrams to PORT that reach the host out of `n` from the attacker.
fn arrivals(lab: &SignalLab, counter: &UdpCounter, n: u64) -> anyhow::Result<u64> {
    let before = counter.received();
    udp_burst(&lab.attacker, lab.host.addr(false), PORT, 0, n, 64)?;
    std::thread::sleep(Duration::from_millis(300));
    Ok(counter.received() - before)
}

/// The ACL's activation type as a data-channel GET reports it.
fn activation(lab: &SignalLab, cuid: &str) -> anyhow::Result<String> {
    let r = lab.curl("alice", "GET", &format!("dots-client={cuid}/acls/acl=block?content=config"), None)?;
    anyhow::ensure!(r.status == 200, "GET acl: {r:?}");
    Ok(r.json()["ietf-dots-data-channel:acl"][0]["activation-type"].as_str().unwrap_or("").to_string())
}

/// A mitigation of UDP `port` on the host carrying `acls`.
fn request(port: u16, acls: &[(&str, Option<ActivationType>)]) -> MitigationScope {
    let mut m = udp_port(mitigation_request(&[HOST], Lifetime::Seconds(600), None), port);
    m.scopes[0].acl_list =
        acls.iter().map(|(n, a)| ControlAcl { acl_name: n.to_string(), activation_type: *a }).collect();
    m
}

fn put_raw(s: &mut TestClient, path: &str, payload: Vec<u8>) -> anyhow::Result<Message> {
    let mut m = Message::request(Code::PUT, MessageType::Con, 0, Token::EMPTY);
    m.set_uri_path(path);
    m.set_content_format(271);
    m.payload = payload;
    s.request(m)
}

#[test]
fn acl_list_activates_a_deactivated_acl_durably() -> anyhow::Result<()> {
    let (mut lab, a) = lab("mtg-scf")?;
    let counter = UdpCounter::start(&lab.host, false, PORT)?;
    assert_eq!(arrivals(&lab, &counter, 20)?, 20, "a deactivated ACL lets traffic pass");

    let mut s = lab.tls_client("alice", false)?;
    let r = s.put(&mitigate_path(&a, Some(1)), &request(9999, &[]), false)?;
    assert_eq!(r.code, Code::CREATED, "{}", diagnostic(&r));
    let r = s.put(&mitigate_path(&a, Some(2)), &request(9998, &[("block", Some(ActivationType::Immediate))]), false)?;
    assert_eq!(r.code, Code::CREATED, "{}", diagnostic(&r));

    assert_eq!(arrivals(&lab, &counter, 30)?, 0, "the ACL is in force");
    assert_eq!(lab.ace_packets("alice", &a, "block", "d")?, 30);
    assert_eq!(activation(&lab, &a)?, "immediate", "the data channel shows the change");
    let got = MitigationScope::from_cbor(&s.get(&mitigate_path(&a, Some(2)))?.payload)?.value;
    let acls = &got.scopes[0].acl_list;
    assert_eq!(acls.len(), 1, "{got:?}");
    assert_eq!((acls[0].acl_name.as_str(), acls[0].activation_type), ("block", Some(ActivationType::Immediate)));

    // 'immediate' does not depend on the mitigations: withdraw both.
    for mid in [1, 2] {
        assert_eq!(s.delete(&mitigate_path(&a, Some(mid)))?.code, Code::DELETED);
    }
    wait_for("the mitigations to end", Duration::from_secs(15), || {
        Ok((s.get(&mitigate_path(&a, None))?.code == Code::NOT_FOUND).then_some(()))
    })?;
    assert_eq!(arrivals(&lab, &counter, 10)?, 0, "still in force without mitigation");

    // kill -9: the stored ACL comes back immediate, and so does the GET.
    lab.daemon.kill9();
    lab.daemon.spawn()?;
    wait_for("the restarted data channel", Duration::from_secs(20), || {
        Ok(lab.curl("alice", "GET", "capabilities", None).ok().filter(|r| r.status == 200))
    })?;
    assert_eq!(activation(&lab, &a)?, "immediate", "durable");
    assert_eq!(arrivals(&lab, &counter, 10)?, 0, "enforced after the restart");
    assert_eq!(lab.ace_packets("alice", &a, "block", "d")?, 50);
    Ok(())
}

#[test]
fn refused_acl_lists_change_nothing() -> anyhow::Result<()> {
    let (lab, a) = lab("mtg-sce")?;
    let counter = UdpCounter::start(&lab.host, false, PORT)?;
    let mut s = lab.tls_client("alice", false)?;
    let immediate = Some(ActivationType::Immediate);
    let unchanged = |what: &str| -> anyhow::Result<()> {
        assert_eq!(activation(&lab, &a)?, "deactivate", "{what}: the ACL is unchanged");
        assert_eq!(arrivals(&lab, &counter, 10)?, 10, "{what}: the ACL is not in force");
        Ok(())
    };

    // Idle time: no active mitigation of this client.
    let r = s.put(&mitigate_path(&a, Some(1)), &request(9998, &[("block", immediate)]), false)?;
    assert_eq!(r.code, Code::BAD_REQUEST, "{}", diagnostic(&r));
    assert!(diagnostic(&r).contains("idle"), "{}", diagnostic(&r));
    assert_eq!(s.get(&mitigate_path(&a, Some(1)))?.code, Code::NOT_FOUND, "the request was not stored");
    unchanged("idle")?;

    let r = s.put(&mitigate_path(&a, Some(2)), &request(9999, &[]), false)?;
    assert_eq!(r.code, Code::CREATED, "{}", diagnostic(&r));

    // An ACL this client did not install: 4.04 naming it; all-or-nothing.
    let r = s.put(&mitigate_path(&a, Some(3)), &request(9998, &[("block", immediate), ("nope", immediate)]), false)?;
    assert_eq!(r.code, Code::NOT_FOUND, "{}", diagnostic(&r));
    assert!(diagnostic(&r).contains("'nope'"), "{}", diagnostic(&r));
    assert_eq!(s.get(&mitigate_path(&a, Some(3)))?.code, Code::NOT_FOUND);
    unchanged("unknown name")?;

    // An activation type outside the enumeration (CBOR 52: 7).
    let mut body = request(9998, &[("block", immediate)]).to_cbor();
    let at = body.windows(3).position(|w| w == [0x18, 0x34, 0x02]).expect("activation-type in the body");
    body[at + 2] = 0x07;
    let r = put_raw(&mut s, &mitigate_path(&a, Some(4)), body)?;
    assert_eq!(r.code, Code::BAD_REQUEST, "{}", diagnostic(&r));
    assert!(diagnostic(&r).contains("activation-type"), "{}", diagnostic(&r));
    unchanged("bad activation type")?;

    // On an existing mid (a refresh must repeat; control needs a new mid).
    let r = s.put(&mitigate_path(&a, Some(2)), &request(9999, &[("block", immediate)]), false)?;
    assert_eq!(r.code, Code::BAD_REQUEST, "{}", diagnostic(&r));
    assert!(diagnostic(&r).contains("new"), "{}", diagnostic(&r));
    unchanged("existing mid")?;
    Ok(())
}

#[test]
fn libcoap_client_sends_an_acl_list() -> anyhow::Result<()> {
    let (lab, a) = lab("mtg-scl")?;
    let counter = UdpCounter::start(&lab.host, false, PORT)?;
    let uri = |mid: u32| format!("coaps://203.0.113.10:4646{}", mitigate_path(&a, Some(mid)));
    let put = |mid: u32, m: &MitigationScope| -> anyhow::Result<String> {
        let file = lab.body_file(&format!("scl-{mid}.cbor"), &m.to_cbor())?;
        let run = lab.coap_cert("alice", &["-m", "put", "-t", "271", "-f", &file, "-B", "10", &uri(mid)])?;
        Ok(run.last()?.code.clone())
    };
    assert_eq!(put(1, &request(9999, &[]))?, "2.01");
    assert_eq!(put(2, &request(9998, &[("block", Some(ActivationType::Immediate))]))?, "2.01");
    assert_eq!(activation(&lab, &a)?, "immediate");
    assert_eq!(arrivals(&lab, &counter, 20)?, 0, "the ACL is in force");
    // Back to deactivate, by another new request.
    assert_eq!(put(3, &request(9997, &[("block", Some(ActivationType::Deactivate))]))?, "2.01");
    assert_eq!(activation(&lab, &a)?, "deactivate");
    assert_eq!(arrivals(&lab, &counter, 20)?, 20, "the ACL is out of force");
    Ok(())
}

#[test]
fn mitigator_client_sends_acl_options() -> anyhow::Result<()> {
    let (lab, a) = lab("mtg-scc")?;
    let counter = UdpCounter::start(&lab.host, false, PORT)?;
    let (cert, key) = lab.cert("alice");
    let state = lab.pki.join("scc-client-state.json");
    let client = |extra: &[&str]| -> anyhow::Result<(i32, String)> {
        let mut args = vec!["client", "mitigate", "--target", HOST, "--proto", "udp", "--lifetime", "600"];
        args.extend(extra);
        let ca = lab.ca();
        args.extend(["--server", "203.0.113.10", "--transport", "dtls", "--timeout", "3"]);
        args.extend(["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap(), "--ca", ca.to_str().unwrap()]);
        args.extend(["--state", state.to_str().unwrap()]);
        let out = mitigator_tests::escalation::mitigator_in(&lab.client, &args)?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        Ok((out.status.code().unwrap_or(-1), text))
    };
    let (code, text) = client(&["--port", "9999", "--acl", "block=sometimes"])?;
    assert!(code == 2 && text.contains("sometimes"), "a bad activation type is a usage error: {text}");
    let (code, text) = client(&["--port", "9999"])?;
    assert_eq!(code, 0, "{text}");
    let (code, text) = client(&["--port", "9998", "--acl", "nope=immediate"])?;
    assert!(code == 3 && text.contains("4.04") && text.contains("nope"), "refused, naming the ACL: {text}");
    assert_eq!(activation(&lab, &a)?, "deactivate");
    let (code, text) = client(&["--port", "9998", "--acl", "block=immediate"])?;
    assert_eq!(code, 0, "{text}");
    assert_eq!(activation(&lab, &a)?, "immediate");
    assert_eq!(arrivals(&lab, &counter, 20)?, 0, "the ACL is in force");
    Ok(())
}
