//! Scenario: an operator's `mitigator client` (the DOTS client of this
//! project) asks a `mitigator run` daemon for mitigation over the signal
//! channel: the target's traffic is dropped by XDP, `client status` shows 2
//! (attack-successfully-mitigated), `client withdraw` gives 5
//! (withdrawn, active-but-terminating), and the traffic passes again. Plus
//! the errors an operator meets: bad server address (exit 2), missing
//! credential (5), unreachable server (4), refused request (3).

use std::time::Duration;

use mitigator_tests::escalation::mitigator_in;
use mitigator_tests::signal::{wait_for, SignalLab, PSK_IDENTITY, PSK_KEY};
use mitigator_tests::traffic::{udp_burst, UdpCounter};
use serde_json::Value;

fn client(lab: &SignalLab, args: &[&str]) -> anyhow::Result<(i32, Value, String)> {
    let key: String = PSK_KEY.bytes().map(|b| format!("{b:02x}")).collect();
    let state = lab.pki.join("client-state.json");
    let mut all = args.to_vec();
    all.extend(["--server", "203.0.113.10", "--psk-identity", PSK_IDENTITY, "--psk-key", &key, "--transport", "dtls"]);
    all.extend(["--state", state.to_str().unwrap(), "--timeout", "3", "--json"]);
    let mut full = vec!["client"];
    full.extend(all);
    let out = mitigator_in(&lab.client, &full)?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    Ok((out.status.code().unwrap_or(-1), json, format!("{stdout}\n{stderr}")))
}

fn status_code(v: &Value) -> Option<u64> {
    match &v["status"] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => dots_proto::signal::Status::ALL.iter().find(|st| st.label() == s).map(|st| st.code()),
        _ => None,
    }
}

/// RFC 7951: uint64 values are JSON strings.
fn u64_of(v: &Value) -> u64 {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap_or(0)
}

#[test]
fn client_mitigate_status_withdraw_against_the_daemon() -> anyhow::Result<()> {
    let lab = SignalLab::start("mtg-cle", "terminating_period_s = 3\nobserve_interval_s = 1")?;
    let service = UdpCounter::start(&lab.host, false, 9999)?;
    udp_burst(&lab.attacker, lab.host.addr(false), 9999, 0, 50, 64)?;
    wait_for("traffic before", Duration::from_secs(5), || Ok((service.received() >= 50).then_some(())))?;

    let (code, ack, text) = client(&lab, &["mitigate", "--target", "203.0.113.10/32", "--proto", "udp", "--port", "9999", "--lifetime", "600"])?;
    assert_eq!(code, 0, "{text}");
    let mid = ack["mid"].as_u64().expect("mid in the JSON answer");
    assert_eq!(ack["code"], "2.01", "{text}");

    let before = service.received();
    let sent = udp_burst(&lab.attacker, lab.host.addr(false), 9999, 0, 200, 64)?;
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(service.received(), before, "XDP drops the target's traffic");

    let mid_s = mid.to_string();
    let scope = wait_for("status 2 with the drops counted", Duration::from_secs(10), || {
        let (code, v, text) = client(&lab, &["status", "--mid", &mid_s])?;
        assert_eq!(code, 0, "{text}");
        let s = v.get(0).cloned().unwrap_or(Value::Null);
        Ok((status_code(&s) == Some(2) && u64_of(&s["pkts-dropped"]) >= sent).then_some(s))
    })?;
    assert!(u64_of(&scope["bytes-dropped"]) >= sent * 64, "{scope}");

    let (code, v, text) = client(&lab, &["withdraw", "--mid", &mid_s])?;
    assert_eq!(code, 0, "{text}");
    assert_eq!(v["withdrawn"], true);
    let (_, v, text) = client(&lab, &["status", "--mid", &mid_s])?;
    assert_eq!(status_code(&v[0]), Some(5), "active-but-terminating after withdraw: {text}");
    // The lifetime left is the terminating period's (3 s here), not the
    // request's 600 s (RFC 9132 4.4.4).
    assert!(v[0]["lifetime"].as_i64().is_some_and(|l| (0..=3).contains(&l)), "lifetime while terminating: {text}");
    // The operator sees the same phase and when it ends.
    let st = lab.daemon.status()?;
    let p = &st["protections"][0];
    assert_eq!(p["dots"]["status"], 5, "{p:#}");
    assert!(p["dots"]["lifetime"].as_i64().is_some_and(|l| (0..=3).contains(&l)), "{p:#}");
    assert!(p["expires_unix"].as_u64().is_some(), "the operator can tell when it ends: {p:#}");
    assert!(lab.daemon.cli(&["status"])?.contains("status 5 (dots-client-withdrawn-mitigation)"));

    wait_for("traffic to pass again", Duration::from_secs(15), || {
        let before = service.received();
        udp_burst(&lab.attacker, lab.host.addr(false), 9999, 0, 20, 64)?;
        std::thread::sleep(Duration::from_millis(200));
        Ok((service.received() >= before + 20).then_some(()))
    })?;

    // A target outside the client's domain: refused by the server, exit 3.
    let (code, _, text) = client(&lab, &["mitigate", "--target", "192.0.2.1/32"])?;
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("4.00"), "{text}");
    Ok(())
}

#[test]
fn client_bad_server_missing_credential_and_unreachable_server_exit_codes() -> anyhow::Result<()> {
    let lab = SignalLab::start("mtg-clx", "")?;
    let run = |args: &[&str]| -> anyhow::Result<(i32, String)> {
        let mut full = vec!["client"];
        full.extend_from_slice(args);
        let out = mitigator_in(&lab.client, &full)?;
        Ok((out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))))
    };
    let (code, text) = run(&["mitigate", "--server", "203.0.113.10:99999", "--psk-identity", "x", "--psk-key", "00", "--target", "203.0.113.10"])?;
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("bad server address"), "{text}");
    let (code, text) = run(&["mitigate", "--server", "203.0.113.10", "--target", "203.0.113.10"])?;
    assert_eq!(code, 5, "credentials missing: {text}");
    assert!(text.contains("credential"), "{text}");
    // Nothing listens at .99: unreachable, exit 4, within the timeout.
    let key: String = PSK_KEY.bytes().map(|b| format!("{b:02x}")).collect();
    let state = lab.pki.join("unreachable-state.json");
    let (code, text) = run(&[
        "mitigate", "--server", "203.0.113.99", "--psk-identity", PSK_IDENTITY, "--psk-key", &key, "--transport", "dtls",
        "--timeout", "2", "--state", state.to_str().unwrap(), "--target", "203.0.113.10",
    ])?;
    assert_eq!(code, 4, "{text}");
    assert!(text.contains("unreachable"), "{text}");
    Ok(())
}
