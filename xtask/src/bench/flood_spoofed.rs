//! Table 3, spoofed SYN flood case (issue 23): hping3 `--rand-source
//! --flood` SYNs from an attacker namespace through the lab's bridge into
//! the host's veth (skbs, as a container gets them), while 50 client
//! addresses do TCP transactions with the host's echo service. The host
//! protects itself against UDP (`mitigator protect HOST --proto udp`, or the
//! same nftables rule as table 3's), so the SYNs pass every filter and the
//! kernel's SYN cookies answer them: what differs between the rows is only
//! the receive path each filter puts the flood on. Native XDP on a veth
//! moves it to a 256-entry ring drained by one NAPI (its overflow counted
//! as TX dropped on the bridge port); generic XDP, `auto`'s choice for veth,
//! keeps the kernel's backlog path.

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use mitigator_tests::{traffic, Daemon, Host, Lab};

use super::{
    super::{report::Table, Opts},
    ok_output,
};
use crate::step;

const PORT: u16 = 8080;
const NFT_TABLE: &str = "mtgbenchsyn";
pub(super) const CLIENTS: u8 = 50;
const CONC: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Filter {
    None,
    Nftables,
    Auto,
    Generic,
    Native,
}

impl Filter {
    const ALL: [Filter; 5] = [Filter::None, Filter::Nftables, Filter::Auto, Filter::Generic, Filter::Native];

    fn name(self) -> &'static str {
        match self {
            Filter::None => "no filter",
            Filter::Nftables => "nftables rule (netdev ingress hook)",
            Filter::Auto => "mitigator, attach_mode auto (the default)",
            Filter::Generic => "mitigator, XDP generic (skb) mode",
            Filter::Native => "mitigator, XDP native (veth driver) mode",
        }
    }
}

/// The lab both spoofed-flood tables use (this one and the attack
/// shapes'): a host, a client with `CLIENTS` addresses (203.0.113.100 on),
/// an attacker, on a bridge whose namespace holds the gateway the answers
/// to spoofed sources go to, and drops there (it does not forward).
pub(super) struct SpoofLab {
    pub lab: Lab,
    pub switch: String,
    pub host: Host,
    pub client: Host,
    pub attacker: Host,
}

pub(super) fn spoof_lab(tag: &str) -> anyhow::Result<SpoofLab> {
    let mut lab = Lab::new(tag)?;
    let switch = lab.switch_ns().to_string();
    let host = lab.add_host("host", 10)?;
    let client = lab.add_host("client", 20)?;
    let attacker = lab.add_host("attacker", 66)?;
    ok_output(Command::new("ip").args(["-n", &switch, "addr", "add", "203.0.113.254/24", "dev", "br0"]))?;
    ok_output(host.command("ip").args(["route", "add", "default", "via", "203.0.113.254"]))?;
    for i in 0..CLIENTS {
        ok_output(client.command("ip").args(["addr", "add", &format!("203.0.113.{}/24", 100 + i), "dev", "eth0"]))?;
    }
    // Fresh connections from 50 addresses for seconds on end: reuse ports.
    for kv in ["net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=1024 65000"] {
        ok_output(client.command("sysctl").args(["-q", "-w", kv]))?;
    }
    Ok(SpoofLab { lab, switch, host, client, attacker })
}

fn link_counter(ns: &str, dev: &str, dir: &str, what: &str) -> anyhow::Result<u64> {
    let out = ok_output(Command::new("ip").args(["-n", ns, "-j", "-s", "link", "show", dev]))?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    v[0]["stats64"][dir][what].as_u64().with_context(|| format!("no {dir} {what} counter on {dev}"))
}

/// A filter in place on the host, removed on drop; the XDP mode the daemon
/// reported for eth0 and why.
enum Installed {
    None,
    Nft(Host),
    Daemon(#[allow(dead_code, reason = "held: dropping it stops the daemon")] Box<Daemon>, String),
}

impl Drop for Installed {
    fn drop(&mut self) {
        if let Installed::Nft(h) = self {
            let _ = h.command("nft").args(["delete", "table", "netdev", NFT_TABLE]).output();
        }
    }
}

fn install(f: Filter, host: &Host) -> anyhow::Result<Installed> {
    let mode = match f {
        Filter::None => return Ok(Installed::None),
        Filter::Nftables => {
            let rules = format!(
                "table netdev {NFT_TABLE} {{\n  chain ingress {{\n    type filter hook ingress device \"eth0\" priority 0;\n    \
                 ip daddr {} meta l4proto udp counter drop\n  }}\n}}\n",
                host.v4
            );
            let path = std::env::temp_dir().join(format!("mtg-bench-syn-{}.nft", std::process::id()));
            std::fs::write(&path, rules)?;
            let r = ok_output(host.command("nft").arg("-f").arg(&path));
            let _ = std::fs::remove_file(&path);
            r?;
            return Ok(Installed::Nft(host.clone()));
        }
        Filter::Auto => "",
        Filter::Generic => "attach_mode = \"generic\"",
        Filter::Native => "attach_mode = \"native\"",
    };
    let d = Daemon::start(host, "bench-syn", &format!("interfaces = [\"eth0\"]\n{mode}"), "")?;
    d.cli(&["protect", &host.v4.to_string(), "--proto", "udp", "--countermeasure", "drop-all"])?;
    let st = d.status()?;
    let eth0 = st["interfaces"].as_array().into_iter().flatten().find(|i| i["name"] == "eth0");
    let how = eth0.map(|i| i["mode"].as_str().unwrap_or("?").to_string()).unwrap_or_else(|| "?".into());
    Ok(Installed::Daemon(Box::new(d), how))
}

struct Measured {
    filter: Filter,
    mode: String,
    window_s: f64,
    /// SYNs/s handed to the host's bridge port (TX packets + TX dropped).
    flood_pps: f64,
    /// Of those, dropped because the host veth's ring was full.
    ring_drop_pps: f64,
    tx_ok: u64,
    tx_failed: u64,
}

fn one(f: Filter, host: &Host, attacker: &Host, client: &Host, switch: &str, o: &Opts) -> anyhow::Result<Measured> {
    let inst = install(f, host)?;
    let warmup = Duration::from_secs(1);
    let mut flood = traffic::SpoofedSynFlood::start(attacker, host.v4, PORT, warmup + Duration::from_secs(o.seconds + 4))?;
    std::thread::sleep(warmup);
    let counters = || -> anyhow::Result<(u64, u64)> {
        let dropped = link_counter(switch, "p-host", "tx", "dropped")?;
        Ok((link_counter(switch, "p-host", "tx", "packets")? + dropped, dropped))
    };
    let (sent0, drop0) = counters()?;
    let t0 = Instant::now();
    let sources: Vec<Ipv4Addr> = (0..CLIENTS).map(|i| Ipv4Addr::new(203, 0, 113, 100 + i)).collect();
    let (tx_ok, tx_failed) =
        traffic::tcp_rate_from_sources(client, &sources, SocketAddrV4::new(host.v4, PORT), Duration::from_secs(o.seconds), CONC, Duration::from_secs(2))?;
    let (sent1, drop1) = counters()?;
    let window_s = t0.elapsed().as_secs_f64();
    if !flood.running() {
        bail!("hping3 stopped before the end of the window");
    }
    drop(flood);
    let mode = match &inst {
        Installed::Daemon(_, how) => how.clone(),
        _ => "-".into(),
    };
    drop(inst);
    Ok(Measured {
        filter: f,
        mode,
        window_s,
        flood_pps: (sent1 - sent0) as f64 / window_s,
        ring_drop_pps: (drop1 - drop0) as f64 / window_s,
        tx_ok,
        tx_failed,
    })
}

/// Runs the five cases in a lab of its own; returns the table.
pub fn run(o: &Opts) -> anyhow::Result<Table> {
    step("flood: spoofed SYN flood lab (namespaces mtgfs-{host,client,attacker} on a bridge)");
    let SpoofLab { lab, switch, host, client, attacker } = spoof_lab("mtgfs")?;
    traffic::echo_server(&host, PORT)?;
    let mut rows = vec![];
    for f in Filter::ALL {
        step(&format!("flood: spoofed SYN flood, {} ({} s)", f.name(), o.seconds));
        let m = one(f, &host, &attacker, &client, &switch, o)?;
        step(&format!(
            "flood: XDP mode {}, SYNs {:.0} pps, lost at the host veth's ring {:.0} pps, {:.0} transactions/s ({} failed)",
            m.mode,
            m.flood_pps,
            m.ring_drop_pps,
            m.tx_ok as f64 / m.window_s,
            m.tx_failed
        ));
        rows.push(m);
    }
    drop(lab);
    Ok(table(&rows))
}

fn table(rows: &[Measured]) -> Table {
    let mut t = Table::new(
        "flood_spoofed_syn",
        "Spoofed SYN flood over veth (hping3 --rand-source, skbs through the bridge into eth0; the SYNs pass every filter), with TCP transactions from 50 client addresses",
        &[
            "filter",
            "XDP mode on eth0 (status)",
            "SYNs pps (bridge port TX + TX dropped)",
            "lost at the host veth's ring pps (bridge port TX dropped)",
            "TCP transactions/s",
            "vs no filter",
            "failed transactions",
            "window s",
        ],
    );
    let base = rows.iter().find(|m| m.filter == Filter::None).map(|m| m.tx_ok as f64 / m.window_s);
    for m in rows {
        let tps = m.tx_ok as f64 / m.window_s;
        t.row(vec![
            m.filter.name().into(),
            m.mode.clone(),
            format!("{:.0}", m.flood_pps),
            format!("{:.0}", m.ring_drop_pps),
            format!("{tps:.0}"),
            base.filter(|b| *b > 0.0).map(|b| format!("{:.2}x", tps / b)).unwrap_or("-".into()),
            m.tx_failed.to_string(),
            format!("{:.1}", m.window_s),
        ]);
    }
    t
}
