//! DOTS data-channel filtering rules enforced by the XDP program, with
//! traffic between lab namespaces: a source drop, an accept that bypasses
//! a protection's countermeasures, a rate limit measured on the wire, each
//! activation type (activate-when-mitigating coupled to a DOTS mitigation
//! requested over the signal channel), fragment and TCP-flag matches, and
//! statistics equal to what was sent.

use std::time::{Duration, Instant};

use dots_proto::coap::Code;
use dots_proto::signal::Lifetime;
use mitigator_tests::datachannel::{acl, ACCEPT, DROP};
use mitigator_tests::signal::{mitigate_path, mitigation_request, udp_port, wait_for, SignalLab};
use mitigator_tests::traffic::{udp_burst, Flood, UdpCounter};

const HOST: &str = "203.0.113.10/32";

fn v4(extra: &str) -> String {
    format!(r#"{{"destination-ipv4-network":"{HOST}"{extra}}}"#)
}

fn udp_to(port: u16) -> String {
    format!(r#"{{"ipv4":{},"udp":{{"destination-port-range-or-operator":{{"port":{port}}}}}}}"#, v4(""))
}

fn lab(tag: &str) -> anyhow::Result<(SignalLab, String)> {
    let lab = SignalLab::start(tag, "terminating_period_s = 2")?;
    lab.wait_data_channel()?;
    let cuid = lab.alice_cuid.clone();
    lab.register("alice", &cuid)?;
    Ok((lab, cuid))
}

/// Datagrams that reach `port` on the host out of `n` sent by `from`.
fn arrivals(lab: &SignalLab, counter: &UdpCounter, from: &mitigator_tests::Host, port: u16, n: u64, payload: usize) -> anyhow::Result<u64> {
    let before = counter.received();
    udp_burst(from, lab.host.addr(false), port, 0, n, payload)?;
    std::thread::sleep(Duration::from_millis(300));
    Ok(counter.received() - before)
}

#[test]
fn source_drop_and_accept_bypassing_countermeasures_with_exact_statistics() -> anyhow::Result<()> {
    let (lab, a) = lab("mtg-dct")?;
    // A local protection drops everything to UDP 9999.
    lab.daemon.cli(&["protect", "203.0.113.10", "--proto", "udp", "--port", "9999", "--countermeasure", "drop-all"])?;
    let (c9998, c9999) = (UdpCounter::start(&lab.host, false, 9998)?, UdpCounter::start(&lab.host, false, 9999)?);
    assert_eq!(arrivals(&lab, &c9999, &lab.client, 9999, 20, 64)?, 0, "the protection drops the client too");
    assert_eq!(arrivals(&lab, &c9998, &lab.attacker, 9998, 20, 64)?, 20, "no ACL yet");

    let rules = acl("lists", "immediate", &[
        ("drop-attacker", &format!(r#"{{"ipv4":{}}}"#, v4(r#","source-ipv4-network":"203.0.113.66/32""#)), DROP),
        ("accept-client", &format!(r#"{{"ipv4":{},"udp":{{}}}}"#, v4(r#","source-ipv4-network":"203.0.113.20/32""#)), ACCEPT),
    ]);
    lab.put_acl("alice", &a, &rules)?;
    assert_eq!(arrivals(&lab, &c9998, &lab.attacker, 9998, 100, 64)?, 0, "the attacker is dropped");
    assert_eq!(arrivals(&lab, &c9999, &lab.client, 9999, 100, 64)?, 100, "the client bypasses drop-all");
    let frame = 64 + 8 + 20 + 14; // UDP payload + headers + Ethernet: what XDP counts
    let stats = lab.ace_stats("alice", &a, "lists")?;
    assert_eq!(stats[0], ("drop-attacker".into(), 100, 100 * frame), "{stats:?}");
    assert_eq!(stats[1], ("accept-client".into(), 100, 100 * frame), "{stats:?}");
    // Replacing the ACL keeps each ACE's counters (stable identity), even reordered.
    let reordered = acl("lists", "immediate", &[
        ("accept-client", &format!(r#"{{"ipv4":{},"udp":{{}}}}"#, v4(r#","source-ipv4-network":"203.0.113.20/32""#)), ACCEPT),
        ("drop-attacker", &format!(r#"{{"ipv4":{}}}"#, v4(r#","source-ipv4-network":"203.0.113.66/32""#)), DROP),
    ]);
    lab.put_acl("alice", &a, &reordered)?;
    assert_eq!(arrivals(&lab, &c9998, &lab.attacker, 9998, 10, 64)?, 0);
    assert_eq!(lab.ace_packets("alice", &a, "lists", "drop-attacker")?, 110);
    assert_eq!(lab.ace_packets("alice", &a, "lists", "accept-client")?, 100);
    Ok(())
}

#[test]
fn rate_limit_ace_holds_the_configured_rate() -> anyhow::Result<()> {
    let (lab, a) = lab("mtg-dcl")?;
    let rate = 125_000u64; // bytes/s
    let rule = acl("limit", "immediate", &[("udp-7000", &udp_to(7000), &format!(r#"{{"forwarding":"accept","rate-limit":"{rate}.00"}}"#))]);
    lab.put_acl("alice", &a, &rule)?;
    let counter = UdpCounter::start(&lab.host, false, 7000)?;
    let payload = 1000 - 42; // 1000-byte frames
    let flood = Flood::start(&lab.attacker, lab.host.addr(false), 7000, payload);
    // Past the one-second burst, measure over 4 s.
    std::thread::sleep(Duration::from_millis(2000));
    let (r1, t1) = (counter.received(), Instant::now());
    std::thread::sleep(Duration::from_secs(4));
    let (r2, t2) = (counter.received(), Instant::now());
    let sent = flood.stop()?;
    let measured = (r2 - r1) as f64 * 1000.0 / (t2 - t1).as_secs_f64();
    eprintln!("sent {sent} datagrams; {measured:.0} bytes/s passed against {rate} configured");
    assert!(sent > 6 * rate / 1000 * 3, "the flood exceeded the rate ({sent} sent)");
    assert!((measured - rate as f64).abs() <= rate as f64 * 0.10, "measured {measured:.0} B/s vs {rate} B/s");
    Ok(())
}

#[test]
fn activation_types_immediate_when_mitigating_and_deactivate() -> anyhow::Result<()> {
    let (lab, a) = lab("mtg-dca")?;
    lab.put_acl("alice", &a, &acl("imm", "immediate", &[("d", &udp_to(7001), DROP)]))?;
    lab.put_acl("alice", &a, &acl("awm", "activate-when-mitigating", &[("d", &udp_to(7002), DROP)]))?;
    lab.put_acl("alice", &a, &acl("off", "deactivate", &[("d", &udp_to(7003), DROP)]))?;
    let c: Vec<UdpCounter> = [7001, 7002, 7003].iter().map(|p| UdpCounter::start(&lab.host, false, *p)).collect::<Result<_, _>>()?;
    let pass = |i: usize| arrivals(&lab, &c[i], &lab.attacker, 7001 + i as u16, 20, 64);
    assert_eq!((pass(0)?, pass(1)?, pass(2)?), (0, 20, 20), "idle: only the immediate ACL");

    // A DOTS mitigation over the signal channel (elsewhere: UDP 9999).
    let mut s = lab.tls_client("alice", false)?;
    let path = mitigate_path(&a, Some(1));
    let r = s.put(&path, &udp_port(mitigation_request(&[HOST], Lifetime::Seconds(600), None), 9999), false)?;
    assert_eq!(r.code, Code::CREATED);
    assert_eq!((pass(0)?, pass(1)?, pass(2)?), (0, 0, 20), "mitigating: activate-when-mitigating is in force");
    assert_eq!(lab.ace_packets("alice", &a, "awm", "d")?, 20);

    // Withdrawn: status 5 for terminating_period_s, then gone.
    assert_eq!(s.delete(&path)?.code, Code::DELETED);
    wait_for("the mitigation to end", Duration::from_secs(15), || Ok((s.get(&path)?.code == Code::NOT_FOUND).then_some(())))?;
    assert_eq!((pass(0)?, pass(1)?, pass(2)?), (0, 20, 20), "after the mitigation: not in force again");
    assert_eq!(lab.ace_packets("alice", &a, "awm", "d")?, 20, "its statistics are kept");

    // A deactivated ACL activated through the data channel.
    lab.put_acl("alice", &a, &acl("off", "immediate", &[("d", &udp_to(7003), DROP)]))?;
    assert_eq!(pass(2)?, 0);
    Ok(())
}

#[test]
fn fragment_and_tcp_flag_matches() -> anyhow::Result<()> {
    let (lab, a) = lab("mtg-dcf")?;
    let rules = acl("shape", "immediate", &[
        ("frag", &format!(r#"{{"ipv4":{}}}"#, v4(r#","protocol":17,"fragment":{"type":"isf"}"#)), DROP),
        ("syn", &format!(r#"{{"ipv4":{},"tcp":{{"flags-bitmask":{{"bitmask":2}},"destination-port-range-or-operator":{{"port":7020}}}}}}"#, v4("")), DROP),
    ]);
    lab.put_acl("alice", &a, &rules)?;
    let c = UdpCounter::start(&lab.host, false, 7010)?;
    assert_eq!(arrivals(&lab, &c, &lab.attacker, 7010, 10, 64)?, 10, "whole datagrams pass");
    assert_eq!(arrivals(&lab, &c, &lab.attacker, 7010, 10, 3000)?, 0, "fragmented ones do not");
    // 3008 bytes of UDP in 1480 + 1480 + 48: frames of 1514, 1514, 82.
    let stats = lab.ace_stats("alice", &a, "shape")?;
    assert_eq!(stats[0], ("frag".into(), 30, 10 * (1514 + 1514 + 82)), "{stats:?}");

    let hping = |flag: &str, n: u32| -> anyhow::Result<()> {
        let out = lab.attacker.command("hping3").args([flag, "-p", "7020", "-c", &n.to_string(), "-i", "u2000", "203.0.113.10"]).output()?;
        anyhow::ensure!(String::from_utf8_lossy(&out.stderr).contains("packets transmitted") || out.status.code().is_some(), "hping3: {out:?}");
        Ok(())
    };
    hping("-S", 20)?;
    hping("-A", 15)?;
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lab.ace_packets("alice", &a, "shape", "syn")?, 20, "SYNs match the bitmask, ACKs do not");
    Ok(())
}
