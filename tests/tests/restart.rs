//! Scenario: the daemon dies (`kill -9`) while a protection is active. The
//! pinned XDP program and maps keep enforcing, so no packet of the flood gets
//! through while it is down; the restarted daemon adopts the pinned state,
//! still has the protection (durable store) and reports the same counters.

use std::time::Duration;

use mitigator_tests::{
    daemon::drop_reason,
    traffic::{udp_burst, Flood, UdpCounter},
    Daemon, Lab,
};

#[test]
fn kill_9_leaves_the_host_protected_and_the_restart_adopts_the_state() -> anyhow::Result<()> {
    let mut lab = Lab::new("mtg-rs")?;
    let host = lab.add_host("host", 10)?;
    let attacker = lab.add_host("attacker", 66)?;
    let mut d = Daemon::start(&host, "restart", "interfaces = [\"eth0\"]", "")?;
    let p: serde_json::Value = serde_json::from_str(&d.cli(&[
        "protect", "203.0.113.10", "--proto", "udp", "--port", "5000", "--countermeasure", "drop-all", "--json",
    ])?)?;
    let id = p["id"].as_u64().unwrap();
    let received = UdpCounter::start(&host, false, 5000)?;
    udp_burst(&attacker, host.addr(false), 5001, 0, 3, 10)?; // neighbour resolution

    let first = udp_burst(&attacker, host.addr(false), 5000, 0, 1000, 64)?;
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(drop_reason(&d.status()?, id, "scope"), first);

    let flood = Flood::start(&attacker, host.addr(false), 5000, 64);
    std::thread::sleep(Duration::from_millis(200));
    d.kill9();
    assert!(d.cli_raw(&["status"])?.status.code() == Some(4), "the daemon is down");
    std::thread::sleep(Duration::from_secs(2));
    let during = flood.stop()?;
    assert!(during > 1000);
    assert_eq!(received.received(), 0, "no flood packet got through while the daemon was down");

    d.spawn()?;
    let st = d.status()?;
    let ps = st["protections"].as_array().unwrap();
    assert_eq!(ps.len(), 1, "the protection is back");
    assert_eq!(ps[0]["id"].as_u64(), Some(id));
    let dropped = drop_reason(&st, id, "scope");
    assert!(dropped >= first + during * 9 / 10 && dropped <= first + during, "adopted counters: {dropped} after {first}+{during}");

    // And it still enforces, with the counters continuing.
    let more = udp_burst(&attacker, host.addr(false), 5000, 0, 500, 64)?;
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(drop_reason(&d.status()?, id, "scope"), dropped + more);
    assert_eq!(received.received(), 0);

    // `mitigator stop` detaches: traffic passes again and no pin is left.
    d.stop()?;
    let after = udp_burst(&attacker, host.addr(false), 5000, 0, 100, 64)?;
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(received.received(), after, "after stop, traffic passes");
    assert!(!d.pin_dir.exists() || std::fs::read_dir(&d.pin_dir)?.next().is_none(), "no pins left");
    Ok(())
}
