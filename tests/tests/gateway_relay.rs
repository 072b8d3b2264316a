//! Scenario (issue 5 item 4, RFC 9284 5.3): the host runs as a client-domain
//! DOTS gateway. A downstream client (libcoap's coap-client-openssl, PSK over
//! DTLS) asks it to mitigate an address of provider A's prefix: the gateway
//! relays the request to A under its own cuid, A's XDP drops the flood
//! (which never reaches the gateway), and the downstream GET shows A's
//! status and drop counters. A prefix no upstream manages is refused; a
//! DELETE downstream withdraws upstream.

use std::time::Duration;

use dots_proto::signal::{Lifetime, SignalBody, Status};
use mitigator_tests::escalation::{dots_protections_for, poll, EscalationLab, Options, PacedFlood, SERVICE_PORT};
use mitigator_tests::signal::{coap_client, mitigate_path, mitigation_request, udp_port, CoapRun};

const CPE: &str = "cpe-lan";
const CPE_KEY: &str = "cpe lan secret";

fn gateway_config() -> String {
    let hex: String = CPE_KEY.bytes().map(|b| format!("{b:02x}")).collect();
    format!(
        r#"[signal]
dtls_listen = ["[::]:4646"]
tls_listen = ["[::]:4646"]
profile = "dropall"
terminating_period_s = 2
observe_interval_s = 1
notification_spacing_ms = 300

[[signal.clients]]
name = "lan"
prefixes = ["198.51.100.0/24", "192.0.2.0/24", "203.0.113.0/24"]
identities = ["psk:{CPE}"]
psk_keys = {{ {CPE} = "{hex}" }}

[gateway]
enabled = true
others = "reject"
relay_prefixes = ["192.0.2.0/24"]
poll_interval_ms = 500

[profiles.dropall]
countermeasures = ["drop-all"]
"#
    )
}

fn coap(lab: &EscalationLab, client: &mitigator_tests::Host, args: &[&str]) -> anyhow::Result<CoapRun> {
    let mut all: Vec<String> = ["-u", CPE, "-k", CPE_KEY].map(String::from).to_vec();
    all.extend(args.iter().map(|s| s.to_string()));
    let _ = lab;
    coap_client(client, &all)
}

#[test]
fn gateway_relays_a_libcoap_request_upstream_and_the_status_flows_back() -> anyhow::Result<()> {
    let o = Options { host_extra: gateway_config(), escalate: false, ..Options::default() };
    let mut lab = EscalationLab::start("mtg-gw", o)?;
    let client = lab.lab.add_host("cl", 20)?;
    lab.wait_sessions(&["A", "B"])?;
    mitigator_tests::escalation::wait_log(&lab.host_d, "DOTS signal channel ready")?;
    let cuid = dots_proto::signal::cuid_from_psk_identity(CPE.as_bytes());
    let uri = |mid: u32| format!("coaps://203.0.113.10:4646{}", mitigate_path(&cuid, Some(mid)));
    let dir = lab.host_d.dir.clone();

    // PUT for A's PA address → relayed to A (and only A), 2.01 downstream.
    let body = udp_port(mitigation_request(&["198.51.100.10/32"], Lifetime::Seconds(600), None), SERVICE_PORT).to_cbor();
    let file = dir.join("req.cbor");
    std::fs::write(&file, body)?;
    let put = coap(&lab, &client, &["-m", "put", "-t", "271", "-f", file.to_str().unwrap(), "-B", "10", &uri(1)])?;
    assert_eq!(put.last()?.code, "2.01", "{}\n{}", put.text, lab.host_d.log());
    let at_a = poll("the relayed mitigation at A", Duration::from_secs(10), || {
        Ok(dots_protections_for(&lab.a_d, "198.51.100.10")?.into_iter().next())
    })?;
    // cuid rewriting: A sees the gateway's cuid, not the downstream client's.
    let gw_cuid = dots_proto::signal::cuid_from_psk_identity(mitigator_tests::escalation::PSK_IDENTITY.as_bytes());
    assert_eq!(at_a["owner"]["cuid"], gw_cuid.as_str());
    assert!(dots_protections_for(&lab.b_d, "198.51.100.10")?.is_empty(), "PA: A only");

    // The flood goes through A, whose XDP drops it; the downstream GET
    // at the gateway shows A's status and counters.
    let flood = PacedFlood::start(&lab.attacker, "198.51.100.10".parse()?, SERVICE_PORT, 2000, Duration::from_secs(30));
    let scope = poll("upstream counters in the downstream GET", Duration::from_secs(20), || {
        let r = coap(&lab, &client, &["-m", "get", "-B", "10", &uri(1)])?;
        Ok(r.scopes().pop().map(|s| s.scopes[0].clone()).filter(|s| s.pkts_dropped.unwrap_or(0) > 1000))
    })?;
    flood.stop()?;
    assert_eq!(scope.status, Some(Status::AttackSuccessfullyMitigated));
    // The gateway itself never saw the flood: the drops are A's.
    let local = dots_protections_for(&lab.host_d, "198.51.100.10")?;
    assert!(local.iter().all(|p| p["dropped"]["packets"].as_u64().unwrap_or(0) == 0), "{local:?}");

    // A prefix no upstream manages: refused (others = "reject").
    let body = udp_port(mitigation_request(&["203.0.113.50/32"], Lifetime::Seconds(600), None), SERVICE_PORT).to_cbor();
    std::fs::write(&file, body)?;
    let put = coap(&lab, &client, &["-m", "put", "-t", "271", "-f", file.to_str().unwrap(), "-B", "10", &uri(2)])?;
    assert_eq!(put.last()?.code, "4.00", "{}", put.text);
    assert!(String::from_utf8_lossy(&put.last()?.payload).contains("managed by no upstream"), "{}", put.text);

    // DELETE downstream → withdrawn upstream.
    let del = coap(&lab, &client, &["-m", "delete", "-B", "10", &uri(1)])?;
    assert_eq!(del.last()?.code, "2.02", "{}", del.text);
    poll("A to remove the relayed mitigation", Duration::from_secs(20), || {
        Ok(dots_protections_for(&lab.a_d, "198.51.100.10")?.is_empty().then_some(()))
    })?;
    Ok(())
}
