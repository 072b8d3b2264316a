//! Scenario (issue 5 item 2): a DOTS client asked this host for mitigation;
//! the attack then exceeds the host's capacity. The host reports status 4
//! (attack-exceeded-capability, RFC 9132 Table 3) to that client, asks its
//! upstream (A) for help, and after the attack clears to 2 again and
//! withdraws upstream.

use std::time::Duration;

use mitigator_tests::escalation::{dots_protections_for, legs, mitigator_in, poll, wait_log, EscalationLab, Options, PacedFlood, SERVICE_PORT};
use serde_json::Value;

const CPE: &str = "cpe-dn";
const CPE_KEY_HEX: &str = "6370652d646e2d6b6579";

fn host_signal() -> String {
    format!(
        r#"[signal]
dtls_listen = ["[::]:4646"]
tls_listen = ["[::]:4646"]
profile = "dropall"

[[signal.clients]]
name = "lan"
prefixes = ["198.51.100.0/24"]
identities = ["psk:{CPE}"]
psk_keys = {{ {CPE} = "{CPE_KEY_HEX}" }}

[profiles.dropall]
countermeasures = ["drop-all"]
"#
    )
}

fn client(host: &mitigator_tests::Host, dir: &std::path::Path, args: &[&str]) -> anyhow::Result<Value> {
    let state = dir.join("downstream-state.json");
    let mut full = vec!["client"];
    full.extend_from_slice(args);
    full.extend(["--server", "203.0.113.10", "--psk-identity", CPE, "--psk-key", CPE_KEY_HEX, "--transport", "dtls"]);
    full.extend(["--state", state.to_str().unwrap(), "--json"]);
    let out = mitigator_in(host, &full)?;
    anyhow::ensure!(out.status.success(), "mitigator {full:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn status_label(v: &Value) -> String {
    v[0]["status"].as_str().unwrap_or_default().to_string()
}

#[test]
fn escalation_reports_status_4_downstream_and_clears_it_after_the_attack() -> anyhow::Result<()> {
    let o = Options { host_extra: host_signal(), ..Options::default() };
    let mut lab = EscalationLab::start("mtg-edn", o)?;
    let cl = lab.lab.add_host("cl", 20)?;
    lab.wait_sessions(&["A", "B"])?;
    wait_log(&lab.host_d, "DOTS signal channel ready")?;
    let dir = lab.host_d.dir.clone();
    let ack = client(&cl, &dir, &["mitigate", "--target", "198.51.100.10/32", "--proto", "udp", "--port", &SERVICE_PORT.to_string(), "--lifetime", "600"])?;
    let mid = ack["mid"].as_u64().expect("mid").to_string();
    let id = poll("the DOTS protection on the host", Duration::from_secs(10), || {
        Ok(dots_protections_for(&lab.host_d, "198.51.100.10")?.first().and_then(|p| p["id"].as_u64()))
    })?;

    let flood = PacedFlood::start(&lab.attacker, "198.51.100.10".parse()?, SERVICE_PORT, 3000, Duration::from_secs(60));
    poll("status 4 downstream", Duration::from_secs(20), || {
        Ok((status_label(&client(&cl, &dir, &["status", "--mid", &mid])?) == "attack-exceeded-capability").then_some(()))
    })?;
    poll("the upstream request at A", Duration::from_secs(20), || {
        Ok(legs(&lab.host_d.status()?, id).iter().any(|l| l["state"] == "active" && l["server"] == "A").then_some(()))
    })?;
    flood.stop()?;
    poll("withdrawn upstream", Duration::from_secs(30), || {
        Ok(legs(&lab.host_d.status()?, id).iter().all(|l| l["state"] == "withdrawn").then_some(()))
    })?;
    let st = client(&cl, &dir, &["status", "--mid", &mid])?;
    assert_eq!(status_label(&st), "attack-successfully-mitigated", "{st}");
    Ok(())
}
