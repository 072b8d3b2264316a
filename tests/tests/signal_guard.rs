//! The guard (`[signal] guard`): a DOTS client asks for a drop-all
//! mitigation of the very host the daemon runs on (every port, every
//! protocol) and keeps its channels to manage it, while the attack on
//! other ports is dropped; without the guard the channel is cut; a flood
//! aimed at the DOTS port itself passes no faster than the guard's rate.

use std::time::{Duration, Instant};

use dots_proto::coap::Code;
use dots_proto::signal::{Lifetime, MitigationScope, SignalBody};
use mitigator_tests::daemon::protection_counter;
use mitigator_tests::escalation::mitigator_in;
use mitigator_tests::signal::{diagnostic, dots_protections, mitigate_path, mitigation_request, SignalLab};
use mitigator_tests::traffic::{udp_burst, Flood, UdpCounter};

/// The daemon's host, whole: its DOTS ports are in scope.
const HOST: &str = "203.0.113.10/32";
/// A service on the host that the attack aims at.
const VICTIM_PORT: u16 = 7000;

fn drop_all_of_the_host() -> MitigationScope {
    mitigation_request(&[HOST], Lifetime::Seconds(600), None)
}

/// The guarded listener `proto` `port` in `status --json`.
fn guard_entry(status: &serde_json::Value, proto: &str, port: u16) -> serde_json::Value {
    let list = status["guard"].as_array().cloned().unwrap_or_default();
    list.into_iter()
        .find(|g| g["protocol"] == proto && g["listen"].as_str().is_some_and(|l| l.ends_with(&format!(":{port}"))))
        .unwrap_or(serde_json::Value::Null)
}

/// Sum over interfaces of one verdict's counter (`packets` or `bytes`).
fn verdict(status: &serde_json::Value, name: &str, what: &str) -> u64 {
    let ifaces = status["interfaces"].as_array().cloned().unwrap_or_default();
    ifaces.iter().map(|i| i["verdicts"][name][what].as_u64().unwrap_or(0)).sum()
}

/// `mitigator client status --mid MID` with alice's certificate over DTLS,
/// from the client host: (exit code, output).
fn client_status(lab: &SignalLab, mid: u32) -> anyhow::Result<(i32, String)> {
    let (cert, key) = lab.cert("alice");
    let (ca, mid) = (lab.ca(), mid.to_string());
    let state = lab.pki.join("client-state.json");
    let p = |x: &std::path::Path| x.display().to_string();
    let args = ["client", "status", "--mid", &mid, "--server", "203.0.113.10", "--transport", "dtls"];
    let creds = ["--cert", &p(&cert), "--key", &p(&key), "--ca", &p(&ca), "--state", &p(&state), "--timeout", "5"];
    let out = mitigator_in(&lab.client, &[&args[..], &creds[..]].concat())?;
    Ok((out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))))
}

#[test]
fn dots_channels_survive_a_drop_all_mitigation_of_the_host() -> anyhow::Result<()> {
    let lab = SignalLab::start("mtg-gd1", "")?;
    lab.wait_data_channel()?;
    let a = lab.alice_cuid.clone();
    lab.register("alice", &a)?;
    let mut c = lab.dtls_client("alice", false)?;
    let path = mitigate_path(&a, Some(1));

    let r = c.put(&path, &drop_all_of_the_host(), false)?;
    assert_eq!(r.code, Code::CREATED, "{}", diagnostic(&r));
    let id = dots_protections(&lab.daemon)?[0]["id"].as_u64().expect("protection id");

    // The attack on another port of the host is dropped...
    let counter = UdpCounter::start(&lab.host, false, VICTIM_PORT)?;
    let sent = udp_burst(&lab.attacker, lab.server(false), VICTIM_PORT, 0, 50, 64)?;
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counter.received(), 0, "drop-all covers every other port");
    assert!(protection_counter(&lab.daemon.status()?, id, "dropped", "packets") >= sent);

    // ... and the same DTLS session still manages the mitigation.
    let r = c.get(&path)?;
    assert_eq!(r.code, Code::CONTENT, "GET over the signal channel: {}", diagnostic(&r));
    let got = MitigationScope::from_cbor(&r.payload)?.value;
    assert_eq!(got.scopes[0].mid, Some(1));
    let r = c.put(&path, &drop_all_of_the_host(), false)?;
    assert_eq!(r.code, Code::CHANGED, "refresh: {}", diagnostic(&r));

    // New sessions during a flood on another port: a TLS handshake (TCP
    // 4646) and the data channel (HTTPS 4443).
    let flood = Flood::start(&lab.attacker, lab.server(false), VICTIM_PORT, 512);
    let tls = lab.tls_client("alice", false).and_then(|mut t| t.get(&path));
    let dc = lab.curl("alice", "GET", &format!("dots-client={a}"), None);
    let cli = client_status(&lab, 1);
    let flooded = flood.stop()?;
    let r = tls?;
    assert_eq!(r.code, Code::CONTENT, "GET over a new TLS session during the flood: {}", diagnostic(&r));
    assert_eq!(dc?.status, 200, "the data channel answers during the flood");
    let (code, out) = cli?;
    assert_eq!(code, 0, "`mitigator client status` over a new DTLS session during the flood: {out}");
    assert!(flooded > 0);
    assert_eq!(counter.received(), 0, "the flood was dropped meanwhile");

    let st = lab.daemon.status()?;
    for (proto, port) in [("udp", 4646), ("tcp", 4646), ("tcp", 4443)] {
        let g = guard_entry(&st, proto, port);
        assert_eq!(g["in_force"], true, "{proto} {port}: {g}");
        assert!(g["matched_packets"].as_u64().unwrap_or(0) > 0, "{proto} {port} carried the channel: {g}");
    }

    // Withdrawn over the same session.
    assert_eq!(c.delete(&path)?.code, Code::DELETED);
    Ok(())
}

#[test]
fn without_the_guard_the_mitigation_cuts_its_own_channel() -> anyhow::Result<()> {
    let lab = SignalLab::start("mtg-gd0", "guard = false")?;
    let mut c = lab.dtls_client("alice", false)?;
    let path = mitigate_path(&lab.alice_cuid, Some(1));
    let r = c.put(&path, &drop_all_of_the_host(), false)?;
    assert_eq!(r.code, Code::CREATED, "{}", diagnostic(&r));

    assert!(c.get(&path).is_err(), "the GET is dropped with everything else");
    assert!(lab.tls_client("alice", false).is_err(), "no new TLS session either");
    assert!(lab.daemon.status()?["guard"].as_array().is_some_and(|g| g.is_empty()));
    Ok(())
}

#[test]
fn a_flood_at_the_dots_port_passes_at_the_guard_rate() -> anyhow::Result<()> {
    const RATE: u64 = 20_000;
    let lab = SignalLab::start("mtg-gdf", &format!("guard_bytes_per_s = {RATE}"))?;
    // A protection scoped to other ports cannot drop DOTS traffic: the
    // guard is not in force (the data plane never consults it).
    lab.daemon.cli(&["protect", HOST, "--proto", "udp", "--port", "53", "--countermeasure", "drop-all"])?;
    let st = lab.daemon.status()?;
    assert_eq!(guard_entry(&st, "udp", 4646)["in_force"], false, "{}", st["guard"]);
    lab.daemon.cli(&["unprotect", HOST])?;
    // A local protection of the whole host puts the guard in force.
    lab.daemon.cli(&["protect", HOST, "--countermeasure", "drop-all"])?;
    let g = guard_entry(&lab.daemon.status()?, "udp", 4646);
    assert_eq!((g["in_force"].as_bool(), g["bytes_per_sec"].as_u64()), (Some(true), Some(RATE)), "{g}");
    let table = lab.daemon.cli(&["status"])?;
    let row = table.lines().find(|l| l.contains("udp [::]:4646")).unwrap_or_default();
    assert!(row.contains("signal-dtls") && row.contains(&RATE.to_string()) && row.contains("yes"), "operator's view:\n{table}");

    let start = Instant::now();
    let before = lab.daemon.status()?;
    let flood = Flood::start(&lab.attacker, lab.server(false), 4646, 200);
    std::thread::sleep(Duration::from_secs(2));
    flood.stop()?;
    // Counters are sampled every 200 ms: let the last sample include the end.
    std::thread::sleep(Duration::from_millis(600));
    let after = lab.daemon.status()?;
    let window = start.elapsed().as_secs_f64();

    let delta = |name: &str, what: &str| verdict(&after, name, what) - verdict(&before, name, what);
    let accepted = delta("guard-passed", "bytes");
    let matched = guard_entry(&after, "udp", 4646)["matched_bytes"].as_u64().unwrap_or(0)
        - guard_entry(&before, "udp", 4646)["matched_bytes"].as_u64().unwrap_or(0);
    // The bucket starts full (one second of the rate), then refills at the
    // rate; a generous margin for lock-free races between CPUs.
    let bound = (RATE as f64 * (window + 1.0) * 1.5) as u64 + 2_000;
    eprintln!("window {window:.2} s: matched {matched} B, accepted {accepted} B, bound {bound} B");
    assert!(matched > 3 * bound, "the flood exceeded the rate (or the check below proves nothing): {matched} B");
    assert!(accepted <= bound, "{accepted} B passed in {window:.2} s at {RATE} B/s");
    assert!(accepted > 0, "the port stays open under the rate");
    assert!(delta("guard-dropped", "packets") > 0, "the excess is dropped");
    Ok(())
}
