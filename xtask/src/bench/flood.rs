//! Table 3: end to end over veth. A generator floods the protected host
//! with UDP while a client does TCP request/response transactions with the
//! host's echo service; the same flood runs against no filter, an nftables
//! drop rule in the netdev ingress hook, and our daemon with the program
//! attached generic and native. Two generators, two paths into the host:
//!
//! - trafgen (the generator) from an attacker namespace on the lab's
//!   bridge (tests/src/netlab.rs): attacker veth → bridge → host eth0. Its
//!   frames are skbs from an AF_PACKET socket before any filter sees them.
//! - the live-frames generator (`xdpgen`, what xdp-trafficgen does) from an
//!   upstream namespace over a veth pair of its own straight into the host's
//!   eth1: its frames reach the host as xdp_frames, as a NIC's ring would
//!   hand them to a native program. The client sits in the same upstream
//!   namespace, so its packets share the host's eth1 receive ring and NAPI
//!   poll with the flood, as all traffic shares a NIC's.
//!
//! Generators are pinned to CPU 1; on 2 cores they compete with the
//! receive path (which for veth runs mostly on the sending CPU) and with the
//! client and server.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use mitigator_tests::{traffic, Daemon, Host, Lab};

use super::{progrun::PrivateBpffs, report::Table, xdpgen, Opts};
use crate::step;

/// The spoofed SYN flood case (issue 23): its own lab and table.
#[path = "flood_spoofed.rs"]
mod spoofed;

/// Random-source SYN, UDP and ACK floods side by side (issue 13): its own
/// lab and table.
#[path = "attack_shapes.rs"]
pub mod shapes;

/// How the flood is made and which way it enters the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generator {
    /// trafgen over the bridge into eth0: skbs.
    Trafgen,
    /// Live-frames XDP over a veth pair into eth1: xdp_frames.
    XdpFrames,
    /// The same, paced to a stated rate (`Paced`).
    XdpPaced,
}

impl Generator {
    /// In the order they run and their tables appear: the unpaced runs
    /// measure what each filter clears, which sets the paced run's rate.
    pub const ALL: [Generator; 3] = [Generator::Trafgen, Generator::XdpFrames, Generator::XdpPaced];

    pub fn name(self) -> &'static str {
        match self {
            Generator::Trafgen => "trafgen (AF_PACKET skbs, over the bridge)",
            Generator::XdpFrames => "XDP live frames (xdp_frames, veth pair straight into the host)",
            Generator::XdpPaced => "XDP live frames paced (xdp_frames at a stated rate, veth pair straight into the host)",
        }
    }

    fn live_frames(self) -> bool {
        self != Generator::Trafgen
    }
}

/// The paced run's rate and how it was chosen.
#[derive(Clone, Copy, Debug)]
pub struct Paced {
    pub pps: f64,
    /// What the nftables rule dropped/s in the unpaced live-frames run,
    /// when the rate is twice that; None when given (`--flood-pps`).
    pub nft_cleared_pps: Option<f64>,
}

/// The rule for the judged rate: an attack twice what the nftables rule
/// absorbs, as measured by its drop counter under the unpaced live-frames
/// flood of the same bench; or the rate asked for.
fn paced_rate(rows: &[Measured], fixed: Option<f64>) -> anyhow::Result<Paced> {
    if let Some(pps) = fixed {
        return Ok(Paced { pps, nft_cleared_pps: None });
    }
    let nft = rows.iter().find(|m| m.generator == Generator::XdpFrames && m.filter == Filter::Nftables).and_then(|m| m.dropped_pps);
    let nft = nft.filter(|&d| d >= 1.0).context("no nftables drop rate from the unpaced live-frames run to pace the flood by")?;
    Ok(Paced { pps: 2.0 * nft, nft_cleared_pps: Some(nft) })
}

impl Paced {
    /// How the rate was chosen, in words.
    pub fn rule(&self) -> String {
        match self.nft_cleared_pps {
            Some(n) => format!("twice the {n:.0} pps the nftables rule dropped under the unpaced live-frames flood"),
            None => "fixed by --flood-pps".into(),
        }
    }
}

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
    pub generator: Generator,
    pub filter: Filter,
    pub window_s: f64,
    /// trafgen: attacker eth0 TX packets/s, what it got onto the wire;
    /// live frames: upstream eth1 TX packets + TX dropped per second (the
    /// veth counts frames its peer took and frames it could not queue).
    pub sent_pps: f64,
    /// Frames lost before any filter ran, legitimate or not. trafgen: the
    /// bridge could not hand them to the host's veth (TX drops of its
    /// bridge port); live frames: the host veth's ring was full (its RX
    /// dropped, which counts failed ndo_xdp_xmit).
    pub ring_drop_pps: f64,
    /// Host RX packets/s on the flooded interface (`ip -s link`).
    pub rx_pps: f64,
    /// Drops/s by the filter's own counter (XDP counters, nft counter).
    pub dropped_pps: Option<f64>,
    pub tx_ok: u64,
    pub tx_failed: u64,
    /// The live-frames generator's calls over the whole case.
    pub calls: Option<xdpgen::Calls>,
    /// Why the case could not run (its other fields are then zero).
    pub error: Option<String>,
}

impl Measured {
    pub fn tps(&self) -> f64 {
        self.tx_ok as f64 / self.window_s
    }

    /// A case that could not run, kept as a row with its error.
    fn failed(generator: Generator, filter: Filter, e: &anyhow::Error) -> Measured {
        Measured {
            generator,
            filter,
            window_s: 0.0,
            sent_pps: 0.0,
            ring_drop_pps: 0.0,
            rx_pps: 0.0,
            dropped_pps: None,
            tx_ok: 0,
            tx_failed: 0,
            calls: None,
            error: Some(format!("{e:#}")),
        }
    }
}

pub struct Flood {
    /// One table per generator, in `Generator::ALL` order.
    pub tables: Vec<Table>,
    pub rows: Vec<Measured>,
    /// The paced rate, or why there is none (the unpaced live-frames runs
    /// that set it could not run).
    pub paced: Result<Paced, String>,
    /// What xdp-trafficgen answered when tried on the direct link.
    pub xdp_trafficgen: String,
    /// The attack-shapes table's results (issue 13).
    pub shapes: shapes::Shapes,
}

impl Flood {
    /// TCP transactions/s of one case, if it ran.
    pub fn tps(&self, g: Generator, f: Filter) -> Option<f64> {
        self.rows.iter().find(|m| m.generator == g && m.filter == f && m.error.is_none()).map(Measured::tps)
    }
}

const PORT: u16 = 8080;
const NFT_TABLE: &str = "mtgbench";
/// The host's second interface, on the upstream link.
const LINK_DEV: &str = "eth1";
/// The spoofed source of the live-frames flood (an address of the upstream
/// namespace, so that the host's ICMP answers resolve, as trafgen's do).
const LINK_FLOOD_SRC: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 0, 2, 66);

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

fn install(f: Filter, lab: &Hosts, path: &Path) -> anyhow::Result<Installed> {
    Ok(match f {
        Filter::None => Installed::None,
        Filter::Nftables => {
            let rules = format!(
                "table netdev {NFT_TABLE} {{\n  chain ingress {{\n    type filter hook ingress device \"{}\" priority 0;\n    \
                 ip daddr {} meta l4proto udp counter drop\n  }}\n}}\n",
                path.dev, path.target.v4
            );
            ok_output(lab.host.command("nft").args(["-f", "-"]).stdin(write_stdin(&rules)?))?;
            Installed::Nft(lab.host.clone())
        }
        Filter::Generic | Filter::Native => {
            // One daemon on both of the host's interfaces, protecting its
            // address on each, whichever path is flooded.
            let mode = if f == Filter::Native { "native" } else { "generic" };
            let d = Daemon::start(&lab.host, &format!("bench-{mode}"), &format!("interfaces = [\"eth0\", \"{LINK_DEV}\"]\nattach_mode = \"{mode}\""), "")?;
            d.cli(&["protect", &lab.host.v4.to_string(), &lab.host_link.v4.to_string(), "--proto", "udp", "--countermeasure", "drop-all"])?;
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

fn link_show(h: &Host, dev: &str) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::from_str(&ok_output(h.command("ip").args(["-j", "link", "show", dev]))?)?)
}

fn mac(h: &Host, dev: &str) -> anyhow::Result<String> {
    link_show(h, dev)?[0]["address"].as_str().map(str::to_owned).with_context(|| format!("{dev} has no MAC"))
}

fn mac_bytes(h: &Host, dev: &str) -> anyhow::Result<[u8; 6]> {
    let m = mac(h, dev)?;
    let v: Vec<u8> = m.split(':').map(|x| u8::from_str_radix(x, 16)).collect::<Result<_, _>>()?;
    v.try_into().map_err(|_| anyhow::anyhow!("bad MAC {m}"))
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

fn snapshot(h: &Hosts, path: &Path, gen: &Running, inst: &Installed) -> anyhow::Result<Snapshot> {
    let (sent, rx, ring_drops) = link_counters(h, path, gen)?;
    // Stamped with the link counters, which the rates divide: the filter's
    // counter comes after, and reading it can take a tenth of a second or
    // more (`mitigator status` is a process), which would skew the window.
    let at = Instant::now();
    Ok(Snapshot { at, sent, rx, ring_drops, dropped: dropped(inst)? })
}

/// Sent, host rx and lost (see `Measured`), read back to back.
fn link_counters(h: &Hosts, path: &Path, gen: &Running) -> anyhow::Result<(u64, u64, u64)> {
    Ok((
        match gen {
            Running::Trafgen(_) => link_counter(&h.attacker.ns, "eth0", "tx", "packets")?,
            // Every frame handed to the veth, queued or not (its count of
            // frames run moves by whole calls, too coarse for a window).
            Running::Xdp(_) => link_counter(&h.upstream.ns, path.dev, "tx", "packets")? + link_counter(&h.upstream.ns, path.dev, "tx", "dropped")?,
        },
        link_counter(&h.host.ns, path.dev, "rx", "packets")?,
        match gen {
            Running::Trafgen(_) => link_counter(&h.switch, "p-host", "tx", "dropped")?,
            Running::Xdp(_) => link_counter(&h.host.ns, path.dev, "rx", "dropped")?,
        },
    ))
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
fn trafgen_conf_text(attacker: &Host, host: &Host) -> anyhow::Result<String> {
    Ok(format!(
        "{{ eth(da={}, sa={}), ipv4(saddr={}, daddr={}, ttl=64), udp(sp=4444, dp=9), fill(0x41, 18) }}\n",
        mac(host, "eth0")?,
        mac(attacker, "eth0")?,
        attacker.v4,
        host.v4
    ))
}


/// A flood in progress.
enum Running {
    Trafgen(std::process::Child),
    Xdp(xdpgen::Flood),
}

/// What each generator needs to start: trafgen's config file, or the
/// live-frames program and frame.
struct Sources {
    trafgen_conf: std::path::PathBuf,
    xdp_prog: xdpgen::Program,
    /// Loaded once the unpaced runs have set its rate.
    xdp_paced: Option<xdpgen::Program>,
    xdp_frame: Vec<u8>,
}

fn start(lab: &Hosts, path: &Path, src: &Sources, run_s: u64) -> anyhow::Result<Running> {
    Ok(match path.gen {
        Generator::Trafgen => Running::Trafgen(
            lab.attacker
                .command("timeout")
                .args(["-s", "INT", &run_s.to_string(), "taskset", "-c", "1", "trafgen", "--dev", "eth0", "--cpus", "1", "--no-sock-mem", "--conf"])
                .arg(&src.trafgen_conf)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .context("starting trafgen")?,
        ),
        Generator::XdpFrames => Running::Xdp(xdpgen::Flood::start(&src.xdp_prog, &lab.upstream, src.xdp_frame.clone(), 1)?),
        Generator::XdpPaced => {
            let prog = src.xdp_paced.as_ref().context("the paced generator is not loaded")?;
            Running::Xdp(xdpgen::Flood::start(prog, &lab.upstream, src.xdp_frame.clone(), 1)?)
        }
    })
}

/// Waits for trafgen or stops the live-frames generator, which says what
/// its calls did.
fn finish(gen: Running) -> anyhow::Result<Option<xdpgen::Calls>> {
    match gen {
        Running::Trafgen(child) => {
            let out = child.wait_with_output()?;
            if !String::from_utf8_lossy(&out.stdout).contains("packets outgoing") {
                bail!("trafgen did not run: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
        }
        Running::Xdp(f) => return Ok(Some(f.stop()?)),
    }
    Ok(None)
}

fn one(f: Filter, lab: &Hosts, path: &Path, src: &Sources, o: &Opts) -> anyhow::Result<Measured> {
    let inst = install(f, lab, path)?;
    let warmup = Duration::from_secs(1);
    // Long enough to cover warm-up, window and the client's last timeout.
    let gen = start(lab, path, src, warmup.as_secs() + o.seconds + 2)?;
    std::thread::sleep(warmup);
    if let Some(pid) = lab.napi_pid.filter(|_| path.gen.live_frames()) {
        // Attaching or detaching a program must not have replaced the poller.
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if !comm.starts_with(&format!("napi/{LINK_DEV}-")) {
            bail!("the NAPI thread {pid} of the host's {LINK_DEV} is gone ({})", f.name());
        }
    }
    let a = snapshot(lab, path, &gen, &inst)?;
    let (tx_ok, tx_failed) = traffic::tcp_rate(&path.client, path.target.v4.into(), PORT, Duration::from_secs(o.seconds), Duration::ZERO)?;
    let b = snapshot(lab, path, &gen, &inst)?;
    let calls = finish(gen)?;
    drop(inst);
    let window_s = (b.at - a.at).as_secs_f64();
    let rate = |x: u64, y: u64| y.saturating_sub(x) as f64 / window_s;
    let m = Measured {
        generator: path.gen,
        filter: f,
        window_s,
        sent_pps: rate(a.sent, b.sent),
        ring_drop_pps: rate(a.ring_drops, b.ring_drops),
        rx_pps: rate(a.rx, b.rx),
        dropped_pps: a.dropped.zip(b.dropped).map(|(x, y)| rate(x, y)),
        tx_ok,
        tx_failed,
        calls,
        error: None,
    };
    // The comparison means nothing if the flood never reached the host.
    if m.rx_pps + m.ring_drop_pps < 0.5 * m.sent_pps {
        bail!("{} with {}: the host's {} saw {:.0} of {:.0} frames/s sent", path.gen.name(), f.name(), path.dev, m.rx_pps + m.ring_drop_pps, m.sent_pps);
    }
    Ok(m)
}

struct Hosts {
    host: Host,
    attacker: Host,
    client: Host,
    /// The bridge's namespace.
    switch: String,
    /// The far end of the host's direct link: the live-frames generator
    /// and the client of that path.
    upstream: Host,
    /// The host as seen on that link (its eth1 address).
    host_link: Host,
    /// The kernel thread polling the host eth1's ring, pinned to CPU 0.
    napi_pid: Option<u32>,
}

/// One generator's way into the host.
struct Path {
    gen: Generator,
    /// The host's address on this path.
    target: Host,
    /// The host's interface the flood arrives on.
    dev: &'static str,
    /// Where the legitimate client runs.
    client: Host,
}

impl Hosts {
    fn path(&self, gen: Generator) -> Path {
        match gen {
            Generator::Trafgen => Path { gen, target: self.host.clone(), dev: "eth0", client: self.client.clone() },
            Generator::XdpFrames | Generator::XdpPaced => Path { gen, target: self.host_link.clone(), dev: LINK_DEV, client: self.upstream.clone() },
        }
    }
}

/// The upstream link's settings that make it model a NIC's receive ring.
/// Returns the pid of the kernel thread that polls the host eth1's ring.
fn prepare_link(h: &Hosts) -> anyhow::Result<u32> {
    // A veth takes xdp_frames only while its NAPI is on: with a native
    // program attached, or with GRO on. On for every case, so that the
    // four cases differ only by the filter.
    ok_output(h.host.command("ethtool").args(["-K", LINK_DEV, "gro", "on"]))?;
    // A native program turns TSO off on the sending peer, which sends every
    // skb through the receiver's NAPI ring; with TSO on, the client's TCP
    // segments would bypass that ring (veth_xmit sends them to the backlog)
    // in the other cases, and not share it with the flood as they must.
    ok_output(h.upstream.command("ethtool").args(["-K", LINK_DEV, "tso", "off"]))?;
    ok_output(h.upstream.command("ip").args(["addr", "add", &format!("{LINK_FLOOD_SRC}/24"), "dev", LINK_DEV]))?;
    // The ring is polled by a kernel thread pinned to CPU 0, the host's CPU,
    // rather than in softirq on whichever CPU queued the frames (the
    // generator's): on a real host the attacker's CPU is another machine's.
    // `ip netns exec` mounts the namespace's own /sys.
    let before = napi_threads()?;
    ok_output(Command::new("ip").args(["netns", "exec", &h.host.ns, "sh", "-c", &format!("echo 1 > /sys/class/net/{LINK_DEV}/threaded")]))?;
    let new: Vec<u32> = napi_threads()?.into_iter().filter(|p| !before.contains(p)).collect();
    let [pid] = new[..] else { bail!("expected one new NAPI thread for the host's {LINK_DEV}, found {new:?}") };
    ok_output(Command::new("taskset").args(["-pc", "0", &pid.to_string()]))?;
    Ok(pid)
}

/// Pids of the kernel's threaded-NAPI pollers of `LINK_DEV` interfaces.
fn napi_threads() -> anyhow::Result<Vec<u32>> {
    let prefix = format!("napi/{LINK_DEV}-");
    let mut pids = vec![];
    for e in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.starts_with(&prefix)) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// A directory of this process's own, removed on drop.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("mtg-bench-flood-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ifindex(h: &Host, dev: &str) -> anyhow::Result<u32> {
    link_show(h, dev)?[0]["ifindex"].as_u64().map(|i| i as u32).with_context(|| format!("{dev} has no ifindex"))
}

pub fn run(o: &Opts) -> anyhow::Result<Flood> {
    // Issue 23: skbs from random sources over veth, the container case. In
    // a lab of its own, first; its table comes last.
    let syn = spoofed::run(o)?;
    // Issue 13: the attack shapes, in a lab of their own too.
    let shapes = shapes::run(o)?;
    step("flood: creating the lab (namespaces mtgfl-{host,attacker,client} on a bridge, mtgfl-upstream on the host's eth1)");
    // "mtgfl", not a prefix of another section's lab tag ("mtgb-xf"): a lab
    // removes the leftovers of its tag's prefix when it starts.
    let mut lab = Lab::new("mtgfl")?;
    let switch = lab.switch_ns().to_string();
    let host = lab.add_host("host", 10)?;
    let (upstream, host_link) = lab.add_link_host("upstream", 20, &host, LINK_DEV, 10)?;
    let mut hosts =
        Hosts { attacker: lab.add_host("attacker", 66)?, client: lab.add_host("client", 20)?, host, switch, upstream, host_link, napi_pid: None };
    hosts.napi_pid = Some(prepare_link(&hosts)?);
    // A fresh connection per transaction: let the client reuse TIME_WAIT
    // ports, or thousands of transactions per second exhaust them.
    for client in [&hosts.client, &hosts.upstream] {
        for kv in ["net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=1024 65000"] {
            ok_output(client.command("sysctl").args(["-q", "-w", kv]))?;
        }
    }
    traffic::echo_server(&hosts.host, PORT)?;
    traffic::echo_server(&hosts.host_link, PORT)?;
    // A scratch directory of this process: benches of other worktrees share
    // `o.work`'s name and remove it when they start.
    let work = Scratch::new()?;
    let trafgen_conf = work.0.join("flood.trafgen");
    std::fs::write(&trafgen_conf, trafgen_conf_text(&hosts.attacker, &hosts.host)?)?;
    let xdp_trafficgen = xdpgen::probe_xdp_trafficgen(&hosts.upstream, LINK_DEV, &mac(&hosts.host, LINK_DEV)?, hosts.host_link.v4);
    step(&format!("flood: xdp-trafficgen on {LINK_DEV}: {xdp_trafficgen}"));
    let bpffs = PrivateBpffs::mount(&work.0.join("bpffs"))?;
    let mut src = Sources {
        trafgen_conf,
        xdp_prog: xdpgen::Program::load(&work.0, &bpffs, ifindex(&hosts.upstream, LINK_DEV)?, None)?,
        xdp_paced: None,
        xdp_frame: xdpgen::udp_frame(mac_bytes(&hosts.host, LINK_DEV)?, mac_bytes(&hosts.upstream, LINK_DEV)?, LINK_FLOOD_SRC, hosts.host_link.v4),
    };
    let mut rows = vec![];
    for g in [Generator::Trafgen, Generator::XdpFrames] {
        for f in Filter::ALL {
            rows.push(case(g, f, &hosts, &src, o)?);
        }
    }
    // A live-frames case that cannot run (the kernel refusing the test
    // run) is a row with its error, and the others still run.
    let paced = paced_rate(&rows, o.flood_pps).map_err(|e| format!("{e:#}"));
    match &paced {
        Ok(p) => {
            step(&format!("flood: paced rate {:.0} pps ({})", p.pps, p.rule()));
            src.xdp_paced = Some(xdpgen::Program::load(&work.0, &bpffs, ifindex(&hosts.upstream, LINK_DEV)?, Some(p.pps))?);
            for f in Filter::ALL {
                rows.push(case(Generator::XdpPaced, f, &hosts, &src, o)?);
            }
        }
        Err(e) => {
            step(&format!("flood: no paced rate: {e}"));
            let e = anyhow::anyhow!("no paced rate: {e}");
            rows.extend(Filter::ALL.iter().map(|&f| Measured::failed(Generator::XdpPaced, f, &e)));
        }
    }
    drop(src);
    drop(bpffs);
    drop(lab);
    let mut tables: Vec<Table> = Generator::ALL.iter().map(|&g| table(g, paced.as_ref().ok(), rows.iter().filter(|m| m.generator == g))).collect();
    tables.push(syn);
    tables.push(shapes.table.clone());
    Ok(Flood { tables, rows, paced, xdp_trafficgen, shapes })
}

/// Runs one case and says what it measured.
fn case(g: Generator, f: Filter, hosts: &Hosts, src: &Sources, o: &Opts) -> anyhow::Result<Measured> {
    let path = hosts.path(g);
    step(&format!("flood: {}, {} ({} s of UDP flood and TCP transactions)", g.name(), f.name(), o.seconds));
    let m = match one(f, hosts, &path, src, o) {
        Ok(m) => m,
        Err(e) if g.live_frames() => {
            step(&format!("flood: could not run: {e:#}"));
            return Ok(Measured::failed(g, f, &e));
        }
        Err(e) => return Err(e),
    };
    let gen = m
        .calls
        .map(|c| format!("; generator: {:.0} program runs/s in its calls, {:.2} s a call", c.runs_per_s(), c.secs_per_call()))
        .unwrap_or_default();
    step(&format!(
        "flood: sent {:.0} pps, lost before the host's filter {:.0} pps, host {} rx {:.0} pps, dropped {}, {:.0} transactions/s ({} failed){gen}",
        m.sent_pps,
        m.ring_drop_pps,
        path.dev,
        m.rx_pps,
        m.dropped_pps.map(|d| format!("{d:.0} pps")).unwrap_or("-".into()),
        m.tps(),
        m.tx_failed
    ));
    Ok(m)
}

fn table<'a>(g: Generator, paced: Option<&Paced>, rows: impl Iterator<Item = &'a Measured>) -> Table {
    const XDP_COLS: [&str; 3] =
        ["sent pps (upstream eth1 TX packets + TX dropped)", "lost before the host's filter pps (host eth1 RX dropped: veth ring full)", "host eth1 rx pps (ip -s link)"];
    let (stem, title, cols) = match g {
        Generator::Trafgen => (
            "flood",
            "UDP flood over veth (trafgen, through the bridge into eth0), with legitimate TCP transactions",
            ["sent pps (attacker eth0 TX)", "lost before the host's veth pps (bridge port TX drops)", "host eth0 rx pps (ip -s link)"],
        ),
        Generator::XdpFrames => (
            "flood_xdp",
            "UDP flood as XDP frames (live-frames generator, veth pair straight into eth1), with legitimate TCP transactions",
            XDP_COLS,
        ),
        Generator::XdpPaced => (
            "flood_paced",
            "UDP flood as XDP frames paced to a stated rate (live-frames generator, veth pair straight into eth1), with legitimate TCP transactions",
            XDP_COLS,
        ),
    };
    let requested = g == Generator::XdpPaced;
    let mut cols = vec!["filter", cols[0], cols[1], cols[2], "dropped pps (filter's counter)", "TCP transactions/s", "failed transactions", "window s"];
    if requested {
        cols.insert(1, "requested pps");
    }
    let mut t = Table::new(stem, title, &cols);
    for m in rows {
        if let Some(e) = &m.error {
            let mut cells = vec![m.filter.name().into(), format!("could not run: {e}")];
            cells.resize(t.columns.len(), "-".into());
            t.row(cells);
            continue;
        }
        let mut cells = vec![
            m.filter.name().into(),
            format!("{:.0}", m.sent_pps),
            format!("{:.0}", m.ring_drop_pps),
            format!("{:.0}", m.rx_pps),
            m.dropped_pps.map(|d| format!("{d:.0}")).unwrap_or("n/a (no filter)".into()),
            format!("{:.0}", m.tps()),
            m.tx_failed.to_string(),
            format!("{:.1}", m.window_s),
        ];
        if requested {
            cells.insert(1, paced.map(|p| format!("{:.0}", p.pps)).unwrap_or("-".into()));
        }
        t.row(cells);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(generator: Generator, filter: Filter, dropped_pps: Option<f64>) -> Measured {
        Measured {
            generator,
            filter,
            window_s: 5.0,
            sent_pps: 3e6,
            ring_drop_pps: 0.0,
            rx_pps: 0.0,
            dropped_pps,
            tx_ok: 0,
            tx_failed: 0,
            calls: None,
            error: None,
        }
    }

    #[test]
    fn paced_rate_is_twice_what_nftables_dropped_under_the_unpaced_live_frames() {
        let rows = [
            row(Generator::Trafgen, Filter::Nftables, Some(1e6)),
            row(Generator::XdpFrames, Filter::None, None),
            row(Generator::XdpFrames, Filter::Nftables, Some(830_000.0)),
            row(Generator::XdpFrames, Filter::Native, Some(3.1e6)),
        ];
        let p = paced_rate(&rows, None).unwrap();
        assert_eq!(p.pps, 1_660_000.0);
        assert_eq!(p.nft_cleared_pps, Some(830_000.0));
        let fixed = paced_rate(&rows, Some(500_000.0)).unwrap();
        assert_eq!((fixed.pps, fixed.nft_cleared_pps), (500_000.0, None));
        assert!(paced_rate(&rows[..2], None).is_err(), "no nftables row");
    }
}
