//! Scenario: a Linux admin protects a host with `mitigator protect`; the XDP
//! program, attached natively to the host's veth in a lab of network
//! namespaces, drops traffic in scope, lets everything else through (a real
//! TCP service keeps working during a UDP flood), and counts exactly what
//! it saw.

use std::time::Duration;

use mitigator_tests::{
    daemon::{drop_reason, protection_counter},
    signal::wait_for,
    traffic::{echo_server, tcp_transactions, udp_burst, Flood, UdpCounter},
    Daemon, Lab,
};

/// Ethernet + IPv4 + UDP headers.
const UDP4_OVERHEAD: u64 = 14 + 20 + 8;
const UDP6_OVERHEAD: u64 = 14 + 40 + 8;

fn settle() {
    // Counters are read from per-CPU maps at once; the sleep only lets the
    // receiving softirq finish with the last datagrams of a burst.
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn in_scope_dropped_out_of_scope_passes_and_counters_are_exact() -> anyhow::Result<()> {
    let mut lab = Lab::new("mtg-hp")?;
    let host = lab.add_host("host", 10)?;
    let attacker = lab.add_host("attacker", 66)?;
    let d = Daemon::start(&host, "host-protection", "interfaces = [\"eth0\"]\nattach_mode = \"native\"", "")?;

    let p: serde_json::Value = serde_json::from_str(&d.cli(&[
        "protect", "203.0.113.10", "2001:db8:113::10", "--proto", "udp", "--port", "9000-9100",
        "--countermeasure", "drop-all", "--json",
    ])?)?;
    let id = p["id"].as_u64().unwrap();

    let in_scope = UdpCounter::start(&host, false, 9050)?;
    let out_of_scope = UdpCounter::start(&host, false, 9999)?;
    let in_scope6 = UdpCounter::start(&host, true, 9050)?;
    // Resolve neighbours first, so that every counted datagram goes out.
    udp_burst(&attacker, host.addr(false), 9999, 0, 3, 10)?;
    udp_burst(&attacker, host.addr(true), 9999, 0, 3, 10)?;
    settle();
    let before = d.status()?;
    let out_before = out_of_scope.received() + out_of_scope.overflowed();

    // Each burst is checked on its own: datagrams the kernel dropped before
    // XDP (see Lab::drops_between) are accounted for, never guessed.
    let lost0 = lab.drops_between(&attacker, &host)?;
    let sent = udp_burst(&attacker, host.addr(false), 9050, 0, 3000, 100)?;
    let sent6 = udp_burst(&attacker, host.addr(true), 9050, 0, 1000, 100)?;
    settle();
    let lost_in = lab.drops_between(&attacker, &host)? - lost0;
    let mid = d.status()?;
    let passed = udp_burst(&attacker, host.addr(false), 9999, 0, 500, 200)?;
    settle();
    let lost_out = lab.drops_between(&attacker, &host)? - lost0 - lost_in;
    let after = d.status()?;
    if lost_in + lost_out > 0 {
        eprintln!("note: the kernel dropped {lost_in} + {lost_out} datagrams before XDP (machine under load)");
    }

    let delta = |field, what| protection_counter(&after, id, field, what) - protection_counter(&before, id, field, what);
    let in_delta = |field, what| protection_counter(&mid, id, field, what) - protection_counter(&before, id, field, what);
    assert_eq!(
        in_delta("dropped", "packets") + lost_in,
        sent + sent6,
        "every in-scope datagram dropped and counted (v4 received {}, v6 received {}); status: {after:#}",
        in_scope.received(),
        in_scope6.received()
    );
    if lost_in == 0 {
        assert_eq!(in_delta("dropped", "bytes"), sent * (UDP4_OVERHEAD + 100) + sent6 * (UDP6_OVERHEAD + 100));
    }
    assert_eq!(drop_reason(&mid, id, "scope") - drop_reason(&before, id, "scope") + lost_in, sent + sent6);
    assert_eq!(delta("dropped", "packets"), in_delta("dropped", "packets"), "nothing out of scope was dropped");
    assert_eq!(delta("passed", "packets") - in_delta("passed", "packets") + lost_out, passed, "out-of-scope datagrams pass and are counted");
    if lost_out == 0 {
        assert_eq!(delta("passed", "bytes") - in_delta("passed", "bytes"), passed * (UDP4_OVERHEAD + 200));
    }
    assert_eq!(in_scope.received() + in_scope6.received(), 0, "nothing in scope reached the host's sockets");
    // A datagram the socket dropped (its queue full: the counting thread
    // fell behind on a loaded machine) still reached it; the kernel counts
    // those. The thread may also still be draining the queue: wait for it.
    let reached = || out_of_scope.received() + out_of_scope.overflowed() - out_before + lost_out;
    let _ = wait_for("the out-of-scope socket to drain", Duration::from_secs(10), || Ok((reached() >= passed).then_some(())));
    if out_of_scope.overflowed() > 0 {
        eprintln!("note: the out-of-scope socket's queue overflowed {} times (machine under load)", out_of_scope.overflowed());
    }
    assert_eq!(reached(), passed, "everything out of scope reached the host's socket");

    // The interface saw all of it.
    let eth0 = after["interfaces"].as_array().unwrap().iter().find(|i| i["name"] == "eth0").expect("eth0 in status");
    assert!(eth0["seen"]["packets"].as_u64().unwrap() >= sent + sent6 + passed);
    Ok(())
}

#[test]
fn tcp_service_keeps_working_during_a_udp_flood() -> anyhow::Result<()> {
    let mut lab = Lab::new("mtg-fl")?;
    let host = lab.add_host("host", 10)?;
    let attacker = lab.add_host("attacker", 66)?;
    let client = lab.add_host("client", 20)?;
    let d = Daemon::start(&host, "flood", "interfaces = [\"eth0\"]\nattach_mode = \"native\"", "")?;
    echo_server(&host, 8080)?;
    let p: serde_json::Value =
        serde_json::from_str(&d.cli(&["protect", "203.0.113.10", "--proto", "udp", "--countermeasure", "drop-all", "--json"])?)?;
    let id = p["id"].as_u64().unwrap();
    let flooded = UdpCounter::start(&host, false, 7777)?;
    assert_eq!(tcp_transactions(&client, host.addr(false), 8080, 10, Duration::from_secs(2))?, 10);

    let flood = Flood::start(&attacker, host.addr(false), 7777, 512);
    std::thread::sleep(Duration::from_millis(300));
    let done = tcp_transactions(&client, host.addr(false), 8080, 500, Duration::from_secs(5))?;
    let sent = flood.stop()?;
    settle();
    let st = d.status()?;
    assert_eq!(done, 500, "every TCP transaction completed during the flood");
    assert!(sent > 10_000, "the flood was a flood ({sent} datagrams)");
    assert_eq!(flooded.received(), 0, "no flood datagram reached the host");
    let dropped = drop_reason(&st, id, "scope");
    // Datagrams can be lost before XDP (the veth ring overflows under a
    // flood from one core to another), never counted twice.
    assert!(dropped <= sent && dropped * 10 >= sent * 9, "dropped {dropped} of {sent} sent");
    // The TCP packets to the same host are out of scope: passed and counted.
    assert!(protection_counter(&st, id, "passed", "packets") >= 500, "each request is at least one packet");
    Ok(())
}
