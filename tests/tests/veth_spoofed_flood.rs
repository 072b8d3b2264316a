//! Scenario (issue 23): a container host, whose interface is a veth, runs
//! the daemon with the default configuration and takes a spoofed SYN flood
//! (hping3 `--rand-source`, skbs over the lab's bridge, as a container gets
//! them) while 50 client addresses do TCP transactions with its service.
//! A protected host must never do worse than an unprotected one.
//!
//! Native XDP on a veth replaces the kernel's backlog path (`veth_xmit` →
//! `__netif_rx`, processed on the sending CPU, which throttles the sender)
//! with a 256-entry ring drained by one NAPI; under a flood the ring
//! overflows, legitimate packets with it, and the drops show only as TX
//! dropped on the veth's peer (the bridge port). So `attach_mode = "auto"`
//! attaches generic on veth. The test checks, in one run:
//!
//! 1. `mitigator status` reports generic for the veth, and why;
//! 2. legitimate transactions with the daemon attached against the same
//!    measurement without it, interleaved (without, with, ...), and fails
//!    when the protected host does clearly worse;
//! 3. the bridge port's TX dropped (the veth ring's drops) does not grow
//!    while the daemon is attached.
//!
//! `native_with_threaded_napi_does_worse` (ignored: it shows the failure
//! the checks catch, it is not a property of the product) forces native XDP
//! with threaded NAPI on the host's veth, the deterministic form of the
//! collapse, and requires the same checks to fail.

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use mitigator_tests::{
    traffic::{echo_server, tcp_rate_from_sources, SpoofedSynFlood},
    Daemon, Host, Lab,
};

const PORT: u16 = 8080;
/// Legitimate client addresses: 203.0.113.100 to .149.
const CLIENTS: u8 = 50;
/// Concurrent client connections (each uses the next source address).
const CONC: usize = 8;
/// One measurement window, and how many pairs (without, with) are taken.
const WINDOW: Duration = Duration::from_secs(3);
const PAIRS: usize = 3;
/// The protected host fails when its legitimate transactions, summed over
/// the pairs, fall below this fraction of the unprotected host's.
///
/// Why 0.6: single 3 s windows of the same configuration vary by about
/// ±30% here (6.5k to 11.8k transactions/s with no filter in one run, on 2
/// shared cores), and generic XDP, which copies each flood skb to give it
/// XDP headroom, measured 0.55-1.4x of no filter in single 10 s runs
/// (/tmp/veth-lab/FINDINGS.md). Interleaving three pairs and summing them
/// cancels most of the drift: the ratio of sums measured 1.06 in each of
/// the first runs of this test. The failure it must catch is a collapse:
/// native XDP measured 0.45-0.6x in the bench with the ring overflowing,
/// and 0.04x here with threaded NAPI. 0.6 keeps noise from failing the
/// test; ring drops (check 3) catch the milder native state on their own,
/// with no threshold.
const MIN_RATIO: f64 = 0.6;

/// Transactions completed in `window` by `CONC` connections at a time from
/// `client`, each from the next of the client's addresses.
fn legit(client: &Host, to: Ipv4Addr, window: Duration) -> anyhow::Result<u64> {
    let sources: Vec<Ipv4Addr> = (0..CLIENTS).map(|i| Ipv4Addr::new(203, 0, 113, 100 + i)).collect();
    let (ok, _failed) = tcp_rate_from_sources(client, &sources, SocketAddrV4::new(to, PORT), window, CONC, Duration::from_secs(2))?;
    Ok(ok)
}

fn link_stat(ns: &str, dev: &str, dir: &str, what: &str) -> anyhow::Result<u64> {
    let out = Command::new("ip").args(["-n", ns, "-s", "-j", "link", "show", dev]).output()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| format!("ip -s -j link show {dev} in {ns}"))?;
    v[0]["stats64"][dir][what].as_u64().with_context(|| format!("no {dir} {what} for {dev}"))
}

/// One measurement window under the flood.
#[derive(Clone, Copy, Debug)]
struct Window {
    attached: bool,
    transactions: u64,
    /// TX dropped on the host's bridge port (the veth ring was full).
    ring_drops: u64,
    /// Flood packets/s into the host's bridge port.
    flood_pps: f64,
}

struct Outcome {
    windows: Vec<Window>,
    status: serde_json::Value,
    log: String,
}

impl Outcome {
    fn total(&self, attached: bool) -> u64 {
        self.windows.iter().filter(|w| w.attached == attached).map(|w| w.transactions).sum()
    }

    fn ratio(&self) -> f64 {
        self.total(true) as f64 / self.total(false).max(1) as f64
    }

    fn ring_drops_attached(&self) -> u64 {
        self.windows.iter().filter(|w| w.attached).map(|w| w.ring_drops).sum()
    }

    fn print(&self, label: &str) {
        for w in &self.windows {
            eprintln!(
                "{label}: {:<8} {:>6} transactions in {:?} ({:>6.0}/s), ring drops {:>7}, flood {:>7.0} pps",
                if w.attached { "attached" } else { "none" },
                w.transactions,
                WINDOW,
                w.transactions as f64 / WINDOW.as_secs_f64(),
                w.ring_drops,
                w.flood_pps
            );
        }
        eprintln!(
            "{label}: with the daemon {} vs without {}: ratio {:.2} (fails below {MIN_RATIO}); ring drops while attached {}",
            self.total(true),
            self.total(false),
            self.ratio(),
            self.ring_drops_attached()
        );
    }

    /// Checks 2 and 3: Err says which failed.
    fn check(&self) -> anyhow::Result<()> {
        if self.total(false) == 0 {
            bail!("no transaction completed without the daemon: the lab does not work");
        }
        if self.ratio() < MIN_RATIO {
            bail!(
                "the protected host did worse: {} transactions with the daemon, {} without (ratio {:.2} < {MIN_RATIO})",
                self.total(true),
                self.total(false),
                self.ratio()
            );
        }
        if self.ring_drops_attached() > 0 {
            bail!(
                "the host's veth dropped {} packets at its ring (TX dropped on the bridge port) while the daemon was attached",
                self.ring_drops_attached()
            );
        }
        Ok(())
    }
}

/// The lab, the flood and the interleaved windows. `dataplane_extra` goes
/// into the daemon's [dataplane]; `threaded` turns threaded NAPI on for the
/// host's veth.
fn measure(tag: &str, dataplane_extra: &str, threaded: bool) -> anyhow::Result<Outcome> {
    let mut lab = Lab::new(tag)?;
    let host = lab.add_host("host", 10)?;
    let client = lab.add_host("client", 20)?;
    let attacker = lab.add_host("attacker", 66)?;
    let sw = lab.switch_ns().to_string();
    // The host answers the spoofed SYNs (SYN cookies) through a gateway on
    // the bridge that drops them (no forwarding in the switch namespace), as
    // a real gateway would send them off to addresses that never answer.
    Command::new("ip").args(["-n", &sw, "addr", "add", "203.0.113.254/24", "dev", "br0"]).status()?;
    host.sh(&["ip", "route", "add", "default", "via", "203.0.113.254"])?;
    for i in 0..CLIENTS {
        client.sh(&["ip", "addr", "add", &format!("203.0.113.{}/24", 100 + i), "dev", "eth0"])?;
    }
    echo_server(&host, PORT)?;
    // The lab works and every neighbour is resolved before the flood.
    let warm = legit(&client, host.v4, Duration::from_millis(500))?;
    if warm == 0 {
        bail!("no transaction completed before the flood");
    }

    let mut d = Daemon::start(&host, tag, dataplane_extra, "")?;
    let status = d.status()?;
    eprintln!("{}", d.cli(&["status"])?);
    let log = d.log();
    d.stop()?; // detaches: the first window is without

    let port = "p-host";
    let budget = WINDOW.as_secs() * 2 * PAIRS as u64 + 40;
    let mut flood = SpoofedSynFlood::start(&attacker, host.v4, PORT, Duration::from_secs(budget))?;
    std::thread::sleep(Duration::from_secs(1));
    let mut windows = Vec::new();
    for i in 0..2 * PAIRS {
        let attached = i % 2 == 1;
        if attached {
            d.spawn()?;
            if threaded {
                // A veth has a NAPI instance only while a native program is
                // attached (or GRO is on): set it each time. `ip netns exec`
                // mounts the namespace's own /sys.
                let ok = Command::new("ip")
                    .args(["netns", "exec", &host.ns, "sh", "-c", "echo 1 > /sys/class/net/eth0/threaded"])
                    .status()?
                    .success();
                if !ok {
                    bail!("cannot turn on threaded NAPI for the host's eth0");
                }
            }
        }
        // Let the flood settle into the new receive path.
        std::thread::sleep(Duration::from_millis(500));
        if !flood.running() {
            bail!("hping3 stopped early");
        }
        let drops0 = link_stat(&sw, port, "tx", "dropped")?;
        let pkts0 = link_stat(&sw, port, "tx", "packets")? + drops0;
        let t0 = Instant::now();
        let transactions = legit(&client, host.v4, WINDOW)?;
        let drops1 = link_stat(&sw, port, "tx", "dropped")?;
        let pkts1 = link_stat(&sw, port, "tx", "packets")? + drops1;
        let flood_pps = (pkts1 - pkts0) as f64 / t0.elapsed().as_secs_f64();
        windows.push(Window { attached, transactions, ring_drops: drops1 - drops0, flood_pps });
        if attached {
            d.stop()?;
        }
    }
    drop(flood);
    Ok(Outcome { windows, status, log })
}

fn eth0(status: &serde_json::Value) -> Option<&serde_json::Value> {
    status["interfaces"].as_array()?.iter().find(|i| i["name"] == "eth0")
}

#[test]
fn protected_veth_host_does_no_worse_under_a_spoofed_syn_flood() -> anyhow::Result<()> {
    let started = Instant::now();
    let out = measure("mtg-vf", "", false)?;
    out.print("default (auto)");
    eprintln!("test took {:?}", started.elapsed());

    // 1. The default chose generic on the veth, and says why.
    let i = eth0(&out.status).with_context(|| format!("no eth0 in the status: {:#}", out.status))?;
    assert_eq!(i["mode"], "generic", "status: {i:#}\nlog:\n{}", out.log);
    assert_eq!(i["driver"], "veth", "status: {i:#}");
    let reason = i["mode_reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("generic: veth driver") && reason.contains("ring"), "reason: {reason}");

    // 2 and 3.
    out.check()
}

/// The failure the checks above catch: native XDP forced on the veth, with
/// threaded NAPI (its poll runs in a kthread, away from the flooding CPU).
/// Ignored: run with `cargo test -p mitigator-tests --test
/// veth_spoofed_flood -- --ignored`.
#[test]
#[ignore = "shows the checks failing on the broken configuration; not a product property"]
fn native_with_threaded_napi_does_worse() -> anyhow::Result<()> {
    let out = measure("mtg-vn", "attach_mode = \"native\"", true)?;
    out.print("native + threaded NAPI");
    let i = eth0(&out.status).context("no eth0 in the status")?;
    assert_eq!(i["mode"], "native", "status: {i:#}");
    let err = out.check().expect_err("native XDP with threaded NAPI on veth should do worse under the flood");
    eprintln!("as expected: {err}");
    Ok(())
}
