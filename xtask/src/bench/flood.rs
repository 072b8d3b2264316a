//! Table 3: end to end over veth. trafgen floods the protected host with
//! UDP from an attacker namespace while a client namespace does TCP
//! request/response transactions with the host's echo service; the same
//! flood runs against no filter, an nftables drop rule in the netdev
//! ingress hook, and our daemon with the program attached generic and native.
//!
//! All three namespaces sit on the lab's bridge (tests/src/netlab.rs), so a
//! flood packet crosses attacker veth → bridge → host veth; everything
//! stays inside the lab. trafgen is pinned to CPU 1 and stopped by
//! `timeout`; on 2 cores it competes with the receive path (which for veth
//! runs mostly on the sending CPU) and with the client and server.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use mitigator_tests::{traffic, Daemon, Host, Lab};

use super::{report::Table, Opts};
use crate::step;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    None,
    Nftables,
    Generic,
    Native,
}

impl Filter {
    pub const ALL: [Filter; 4] = [Filter::None, Filter::Nftables, Filter::Generic, Filter::Native];

    pub fn name(self) -> &'static str {
        match self {
            Filter::None => "no filter",
            Filter::Nftables => "nftables drop rule (netdev ingress hook)",
            Filter::Generic => "mitigator, XDP generic (skb) mode",
            Filter::Native => "mitigator, XDP native (veth driver) mode",
        }
    }
}

/// What one case measured, over the measurement window.
#[derive(Clone, Debug)]
pub struct Measured {
    pub filter: Filter,
    pub window_s: f64,
    /// Attacker eth0 TX packets/s: what trafgen got onto the wire.
    pub sent_pps: f64,
    /// Frames the bridge could not hand to the host's veth (TX drops of
    /// its bridge port): lost before any filter ran, legitimate or not.
    pub ring_drop_pps: f64,
    /// Host eth0 RX packets/s (`ip -s link`).
    pub rx_pps: f64,
    /// Drops/s by the filter's own counter (XDP counters, nft counter).
    pub dropped_pps: Option<f64>,
    pub tx_ok: u64,
    pub tx_failed: u64,
}

impl Measured {
    pub fn tps(&self) -> f64 {
        self.tx_ok as f64 / self.window_s
    }
}

pub struct Flood {
    pub table: Table,
    pub rows: Vec<Measured>,
}

const PORT: u16 = 8080;
const NFT_TABLE: &str = "mtgbench";

/// A filter in place on the host, removed on drop.
enum Installed {
    None,
    Nft(Host),
    Daemon(Box<Daemon>),
}

impl Drop for Installed {
    fn drop(&mut self) {
        if let Installed::Nft(h) = self {
            let _ = h.command("nft").args(["delete", "table", "netdev", NFT_TABLE]).output();
        }
    }
}

fn ok_output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!("{:?} failed: {}", cmd, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn install(f: Filter, host: &Host) -> anyhow::Result<Installed> {
    Ok(match f {
        Filter::None => Installed::None,
        Filter::Nftables => {
            let rules = format!(
                "table netdev {NFT_TABLE} {{\n  chain ingress {{\n    type filter hook ingress device \"eth0\" priority 0;\n    \
                 ip daddr {} meta l4proto udp counter drop\n  }}\n}}\n",
                host.v4
            );
            ok_output(host.command("nft").args(["-f", "-"]).stdin(write_stdin(&rules)?))?;
            Installed::Nft(host.clone())
        }
        Filter::Generic | Filter::Native => {
            let mode = if f == Filter::Native { "native" } else { "generic" };
            let d = Daemon::start(host, &format!("bench-{mode}"), &format!("interfaces = [\"eth0\"]\nattach_mode = \"{mode}\""), "")?;
            d.cli(&["protect", &host.v4.to_string(), "--proto", "udp", "--countermeasure", "drop-all"])?;
            Installed::Daemon(Box::new(d))
        }
    })
}

/// A file holding `s`, opened for reading, as a child's stdin.
fn write_stdin(s: &str) -> anyhow::Result<Stdio> {
    let p = std::env::temp_dir().join(format!("mtgb-stdin-{}", std::process::id()));
    std::fs::write(&p, s)?;
    let f = std::fs::File::open(&p)?;
    let _ = std::fs::remove_file(&p);
    Ok(Stdio::from(f))
}

fn mac(h: &Host) -> anyhow::Result<String> {
    let v: serde_json::Value = serde_json::from_str(&ok_output(h.command("ip").args(["-j", "link", "show", "eth0"]))?)?;
    v[0]["address"].as_str().map(str::to_owned).context("eth0 has no MAC")
}

/// A counter of `ip -s link`: `dir` is rx or tx, `what` packets or dropped.
fn link_counter(ns: &str, dev: &str, dir: &str, what: &str) -> anyhow::Result<u64> {
    let out = ok_output(Command::new("ip").args(["-n", ns, "-j", "-s", "link", "show", dev]))?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    v[0]["stats64"][dir][what].as_u64().with_context(|| format!("no {dir} {what} counter on {dev}"))
}

/// The counters read at both ends of the measurement window.
#[derive(Clone, Copy)]
struct Snapshot {
    at: Instant,
    sent: u64,
    rx: u64,
    ring_drops: u64,
    dropped: Option<u64>,
}

fn snapshot(h: &Hosts, inst: &Installed) -> anyhow::Result<Snapshot> {
    Ok(Snapshot {
        sent: link_counter(&h.attacker.ns, "eth0", "tx", "packets")?,
        rx: link_counter(&h.host.ns, "eth0", "rx", "packets")?,
        ring_drops: link_counter(&h.switch, "p-host", "tx", "dropped")?,
        dropped: dropped(inst)?,
        at: Instant::now(),
    })
}

/// Packets the filter dropped so far, by its own counter.
fn dropped(inst: &Installed) -> anyhow::Result<Option<u64>> {
    Ok(match inst {
        Installed::None => None,
        Installed::Nft(h) => {
            let out = ok_output(h.command("nft").args(["list", "table", "netdev", NFT_TABLE]))?;
            let n = out.split("counter packets ").nth(1).and_then(|r| r.split_whitespace().next()).context("no nft counter")?;
            Some(n.parse()?)
        }
        Installed::Daemon(d) => {
            let st = d.status()?;
            Some(st["protections"].as_array().into_iter().flatten().map(|p| p["dropped"]["packets"].as_u64().unwrap_or(0)).sum())
        }
    })
}

/// trafgen's packet config: UDP from the attacker to the host's discard
/// port, 64-byte frames on the wire before FCS (14 + 20 + 8 + 18).
fn trafgen_conf(attacker: &Host, host: &Host) -> anyhow::Result<String> {
    Ok(format!(
        "{{ eth(da={}, sa={}), ipv4(saddr={}, daddr={}, ttl=64), udp(sp=4444, dp=9), fill(0x41, 18) }}\n",
        mac(host)?,
        mac(attacker)?,
        attacker.v4,
        host.v4
    ))
}


fn one(f: Filter, lab: &Hosts, conf: &std::path::Path, o: &Opts) -> anyhow::Result<Measured> {
    let inst = install(f, &lab.host)?;
    let warmup = Duration::from_secs(1);
    // Long enough to cover warm-up, window and the client's last timeout.
    let run_s = warmup.as_secs() + o.seconds + 2;
    let gen = lab
        .attacker
        .command("timeout")
        .args(["-s", "INT", &run_s.to_string(), "taskset", "-c", "1", "trafgen", "--dev", "eth0", "--cpus", "1", "--no-sock-mem", "--conf"])
        .arg(conf)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting trafgen")?;
    std::thread::sleep(warmup);
    let a = snapshot(lab, &inst)?;
    let (tx_ok, tx_failed) = traffic::tcp_rate(&lab.client, lab.host.v4.into(), PORT, Duration::from_secs(o.seconds), Duration::ZERO)?;
    let b = snapshot(lab, &inst)?;
    let out = gen.wait_with_output()?;
    if !String::from_utf8_lossy(&out.stdout).contains("packets outgoing") {
        bail!("trafgen did not run: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    drop(inst);
    let window_s = (b.at - a.at).as_secs_f64();
    let rate = |x: u64, y: u64| y.saturating_sub(x) as f64 / window_s;
    Ok(Measured {
        filter: f,
        window_s,
        sent_pps: rate(a.sent, b.sent),
        ring_drop_pps: rate(a.ring_drops, b.ring_drops),
        rx_pps: rate(a.rx, b.rx),
        dropped_pps: a.dropped.zip(b.dropped).map(|(x, y)| rate(x, y)),
        tx_ok,
        tx_failed,
    })
}

struct Hosts {
    host: Host,
    attacker: Host,
    client: Host,
    /// The bridge's namespace.
    switch: String,
}

pub fn run(o: &Opts) -> anyhow::Result<Flood> {
    step("flood: creating the lab (namespaces mtgb-{host,attacker,client} on a bridge)");
    let mut lab = Lab::new("mtgb")?;
    let switch = lab.switch_ns().to_string();
    let hosts = Hosts { host: lab.add_host("host", 10)?, attacker: lab.add_host("attacker", 66)?, client: lab.add_host("client", 20)?, switch };
    // A fresh connection per transaction: let the client reuse TIME_WAIT
    // ports, or thousands of transactions per second exhaust them.
    for kv in ["net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=1024 65000"] {
        ok_output(hosts.client.command("sysctl").args(["-q", "-w", kv]))?;
    }
    traffic::echo_server(&hosts.host, PORT)?;
    let conf = o.work.join("flood.trafgen");
    std::fs::write(&conf, trafgen_conf(&hosts.attacker, &hosts.host)?)?;
    let mut rows = vec![];
    for f in Filter::ALL {
        step(&format!("flood: {} ({} s of UDP flood and TCP transactions)", f.name(), o.seconds));
        let m = one(f, &hosts, &conf, o)?;
        step(&format!(
            "flood: {}: sent {:.0} pps, lost at the host's veth {:.0} pps, host rx {:.0} pps, dropped {}, {:.0} transactions/s ({} failed)",
            f.name(),
            m.sent_pps,
            m.ring_drop_pps,
            m.rx_pps,
            m.dropped_pps.map(|d| format!("{d:.0} pps")).unwrap_or("-".into()),
            m.tps(),
            m.tx_failed
        ));
        rows.push(m);
    }
    drop(lab);
    Ok(Flood { table: table(&rows), rows })
}

fn table(rows: &[Measured]) -> Table {
    let mut t = Table::new(
        "flood",
        "UDP flood over veth, with legitimate TCP transactions",
        &["filter", "sent pps (attacker eth0 TX)", "lost before the host's veth pps (bridge port TX drops)", "host eth0 rx pps (ip -s link)", "dropped pps (filter's counter)", "TCP transactions/s", "failed transactions", "window s"],
    );
    for m in rows {
        t.row(vec![
            m.filter.name().into(),
            format!("{:.0}", m.sent_pps),
            format!("{:.0}", m.ring_drop_pps),
            format!("{:.0}", m.rx_pps),
            m.dropped_pps.map(|d| format!("{d:.0}")).unwrap_or("n/a (no filter)".into()),
            format!("{:.0}", m.tps()),
            m.tx_failed.to_string(),
            format!("{:.1}", m.window_s),
        ]);
    }
    t
}
