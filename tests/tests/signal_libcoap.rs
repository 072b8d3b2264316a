//! Scenario: a DOTS client (libcoap's coap-client-openssl, a real third-party
//! implementation) asks the host's mitigator for mitigation over the signal
//! channel; the XDP program drops the flood; the client watches the status
//! with Observe; it withdraws, and traffic passes again after the
//! active-but-terminating period. Over DTLS with X.509, DTLS with PSK, and
//! TLS (coaps+tcp).

use std::time::Duration;

use dots_proto::signal::{Lifetime, SignalBody, Status};
use mitigator_tests::signal::{mitigate_path, mitigation_request, udp_port, wait_for, SignalLab};
use mitigator_tests::traffic::{udp_burst, UdpCounter};

#[derive(Clone, Copy)]
enum Cred {
    Cert,
    Psk,
}

fn run(lab: &SignalLab, cred: Cred, args: &[&str]) -> anyhow::Result<mitigator_tests::signal::CoapRun> {
    match cred {
        Cred::Cert => lab.coap_cert("alice", args),
        Cred::Psk => lab.coap_psk(args),
    }
}

/// The whole life of one mitigation, through coap-client only.
fn scenario(tag: &str, cred: Cred, scheme: &str, v6: bool) -> anyhow::Result<()> {
    let lab = SignalLab::start(tag, "terminating_period_s = 3\nobserve_interval_s = 2\nnotification_spacing_ms = 500")?;
    let cuid = match cred {
        Cred::Cert => lab.alice_cuid.clone(),
        Cred::Psk => dots_proto::signal::cuid_from_psk_identity(mitigator_tests::signal::PSK_IDENTITY.as_bytes()),
    };
    let server = match lab.server(v6) {
        std::net::IpAddr::V6(a) => format!("[{a}]"),
        a => a.to_string(),
    };
    let uri = |mid: Option<u32>| format!("{scheme}://{server}:4646{}", mitigate_path(&cuid, mid));
    let target = if v6 { "2001:db8:113::10/128" } else { "203.0.113.10/32" };
    let victim = lab.host.addr(v6);

    // Before: the flood reaches the service.
    let service = UdpCounter::start(&lab.host, v6, 9999)?;
    udp_burst(&lab.attacker, victim, 9999, 0, 50, 64)?;
    wait_for("unprotected traffic to arrive", Duration::from_secs(5), || Ok((service.received() >= 50).then_some(())))?;

    // PUT → 2.01, enforced in XDP.
    let body = udp_port(mitigation_request(&[target], Lifetime::Seconds(3600), None), 9999).to_cbor();
    let file = lab.body_file(&format!("req-{tag}.cbor"), &body)?;
    let put = run(&lab, cred, &["-m", "put", "-t", "271", "-f", &file, "-B", "10", &uri(Some(1))])?;
    assert_eq!(put.last()?.code, "2.01", "{}", put.text);
    let granted = put.scopes().pop().expect("PUT response body");
    assert_eq!(granted.scopes[0].mid, Some(1));

    let before = service.received();
    let sent = udp_burst(&lab.attacker, victim, 9999, 0, 300, 64)?;
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(service.received(), before, "the flood is dropped by XDP");

    // GET shows status 2 and the counters of what was dropped.
    let got = wait_for("counters in GET", Duration::from_secs(10), || {
        let r = run(&lab, cred, &["-m", "get", "-B", "10", &uri(Some(1))])?;
        if r.responses.is_empty() { eprintln!("{}", r.text); }
        let s = r.scopes().pop().map(|s| s.scopes[0].clone());
        Ok(s.filter(|s| s.pkts_dropped.unwrap_or(0) >= sent))
    })?;
    assert_eq!(got.status, Some(Status::AttackSuccessfullyMitigated));
    assert!(got.bytes_dropped.unwrap() >= sent * 64);

    // Observe for a while (coap-client -s), withdraw meanwhile: notifications
    // show 5 (withdrawn, terminating) and then 6 (terminated).
    let observer = {
        let (args, lab_client) = (observe_args(&lab, cred, &uri(Some(1))), lab.client.clone());
        std::thread::spawn(move || mitigator_tests::signal::coap_client(&lab_client, &args))
    };
    std::thread::sleep(Duration::from_millis(1500));
    let del = run(&lab, cred, &["-m", "delete", "-B", "10", &uri(Some(1))])?;
    assert_eq!(del.last()?.code, "2.02", "{}", del.text);
    let obs = observer.join().unwrap()?;
    let statuses: Vec<Status> = obs.scopes().iter().filter_map(|s| s.scopes.first().and_then(|s| s.status)).collect();
    assert!(statuses.contains(&Status::AttackSuccessfullyMitigated), "{statuses:?}\n{}", obs.text);
    let five = statuses.iter().position(|s| *s == Status::DotsClientWithdrawnMitigation).expect("status 5 notified");
    let six = statuses.iter().position(|s| *s == Status::AttackMitigationTerminated).expect("status 6 notified");
    assert!(five < six, "{statuses:?}");
    let seqs: Vec<u32> = obs.responses.iter().filter_map(|r| r.observe).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "Observe sequence increases: {seqs:?}");

    // After the terminating period the traffic passes again.
    wait_for("traffic to pass again", Duration::from_secs(15), || {
        let before = service.received();
        udp_burst(&lab.attacker, victim, 9999, 0, 20, 64)?;
        std::thread::sleep(Duration::from_millis(200));
        Ok((service.received() >= before + 20).then_some(()))
    })?;
    Ok(())
}

fn observe_args(lab: &SignalLab, cred: Cred, uri: &str) -> Vec<String> {
    let mut v: Vec<String> = match cred {
        Cred::Cert => {
            let (c, k) = lab.cert("alice");
            vec!["-c".into(), c.display().to_string(), "-j".into(), k.display().to_string(), "-C".into(), lab.ca().display().to_string()]
        }
        Cred::Psk => vec!["-u".into(), mitigator_tests::signal::PSK_IDENTITY.into(), "-k".into(), mitigator_tests::signal::PSK_KEY.into()],
    };
    v.extend(["-m", "get", "-s", "9", "-B", "12", uri].map(String::from));
    v
}

#[test]
fn libcoap_over_dtls_with_a_certificate_mitigates_a_flood_end_to_end() -> anyhow::Result<()> {
    scenario("mtg-sgx", Cred::Cert, "coaps", false)
}

#[test]
fn libcoap_over_dtls_with_psk_over_ipv6_mitigates_a_flood_end_to_end() -> anyhow::Result<()> {
    scenario("mtg-sgp", Cred::Psk, "coaps", true)
}

#[test]
fn libcoap_over_tls_mitigates_a_flood_end_to_end() -> anyhow::Result<()> {
    scenario("mtg-sgt", Cred::Cert, "coaps+tcp", false)
}
