//! Scenario: a host with two interfaces (one on the lab's bridge, one on a
//! link of its own to an upstream router) runs one daemon attached to both;
//! a protection of each address drops the flood arriving on either
//! interface, counted exactly per protection, while TCP keeps working on
//! both.

use std::time::Duration;

use mitigator_tests::{
    daemon::protection_counter,
    traffic::{echo_server, tcp_transactions, udp_burst, UdpCounter},
    Daemon, Lab,
};

#[test]
fn one_daemon_on_two_interfaces_drops_on_both() -> anyhow::Result<()> {
    let mut lab = Lab::new("mtg-2if")?;
    let host = lab.add_host("host", 10)?;
    let attacker = lab.add_host("attacker", 66)?;
    let (upstream, host_link) = lab.add_link_host("upstream", 20, &host, "eth1", 10)?;
    let d = Daemon::start(&host, "two-interfaces", "interfaces = [\"eth0\", \"eth1\"]\nattach_mode = \"native\"", "")?;
    let protect = |addr: String| -> anyhow::Result<u64> {
        let p: serde_json::Value =
            serde_json::from_str(&d.cli(&["protect", &addr, "--proto", "udp", "--countermeasure", "drop-all", "--json"])?)?;
        p["id"].as_u64().ok_or_else(|| anyhow::anyhow!("no id in {p}"))
    };
    let (on_eth0, on_eth1) = (protect(host.v4.to_string())?, protect(host_link.v4.to_string())?);
    let sockets = [UdpCounter::start(&host, false, 9000)?, UdpCounter::start(&host_link, false, 9000)?];
    echo_server(&host, 8080)?;
    echo_server(&host_link, 8080)?;
    // Neighbours resolved by TCP first, so that every datagram goes out.
    assert_eq!(tcp_transactions(&attacker, host.addr(false), 8080, 5, Duration::from_secs(2))?, 5);
    assert_eq!(tcp_transactions(&upstream, host_link.addr(false), 8080, 5, Duration::from_secs(2))?, 5);
    let before = d.status()?;
    let (lost0, lost1) = (lab.drops_between(&attacker, &host)?, lab.link_drops(&upstream, "eth1")?);

    let sent0 = udp_burst(&attacker, host.addr(false), 9000, 0, 2000, 100)?;
    let sent1 = udp_burst(&upstream, host_link.addr(false), 9000, 0, 3000, 100)?;
    std::thread::sleep(Duration::from_millis(300)); // the last datagrams' softirq
    let after = d.status()?;
    let (lost0, lost1) = (lab.drops_between(&attacker, &host)? - lost0, lab.link_drops(&upstream, "eth1")? - lost1);

    let dropped = |id| protection_counter(&after, id, "dropped", "packets") - protection_counter(&before, id, "dropped", "packets");
    assert_eq!(dropped(on_eth0) + lost0, sent0, "the flood on eth0 dropped and counted by its protection; status: {after:#}");
    assert_eq!(dropped(on_eth1) + lost1, sent1, "the flood on eth1 dropped and counted by its protection; status: {after:#}");
    assert_eq!(sockets.iter().map(UdpCounter::received).sum::<u64>(), 0, "no datagram reached the host's sockets");
    for dev in ["eth0", "eth1"] {
        let i = after["interfaces"].as_array().and_then(|a| a.iter().find(|i| i["name"] == dev));
        assert!(i.is_some(), "{dev} in status: {after:#}");
    }
    // TCP is out of scope on both interfaces.
    assert_eq!(tcp_transactions(&attacker, host.addr(false), 8080, 20, Duration::from_secs(2))?, 20);
    assert_eq!(tcp_transactions(&upstream, host_link.addr(false), 8080, 20, Duration::from_secs(2))?, 20);
    Ok(())
}
