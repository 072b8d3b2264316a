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
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    os::fd::FromRawFd,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use mitigator_tests::{traffic::echo_server, Daemon, Host, Lab};

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
/// Why 0.6: on this 2-core machine the same configuration measured 10-13.5k
/// transactions/s from run to run with no filter, and generic XDP (which
/// also costs a copy of each flood skb to give it XDP headroom) measured
/// 0.55-1.4x of no filter in single 10 s runs (/tmp/veth-lab, FINDINGS.md);
/// interleaving three pairs and summing them brings the ratio's spread to
/// about ±25% in this test's runs (0.84-1.25 observed; see the report of
/// issue 23). The failure it must catch is a collapse: native XDP with the
/// ring overflowing measured 0.45-0.6x, with threaded NAPI 0.06-0.1x. 0.6
/// keeps noise from failing the test; ring drops (check 3) catch the
/// milder native state on their own, without any threshold.
const MIN_RATIO: f64 = 0.6;

/// `hping3 --rand-source --flood` SYNs at the host's service, bounded by
/// `timeout`; stopped (SIGTERM to `timeout`, which passes it on) on drop.
struct SynFlood(Child);

impl SynFlood {
    fn start(from: &Host, to: Ipv4Addr, port: u16, max: Duration) -> anyhow::Result<SynFlood> {
        let child = from
            .command("timeout")
            .args([&max.as_secs().to_string(), "hping3", "-S", "--rand-source", "--flood", "-q", "-p", &port.to_string()])
            .arg(to.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("hping3 (cargo xtask setup installs it)")?;
        Ok(SynFlood(child))
    }

    fn running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for SynFlood {
    fn drop(&mut self) {
        // SAFETY: signals our own child by its pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// One transaction from `src`: connect, 64 bytes each way, close.
fn transaction(src: Ipv4Addr, to: SocketAddr, timeout: Duration) -> std::io::Result<()> {
    // SAFETY: plain socket calls on an fd this function owns (handed to
    // TcpStream, which closes it); the sockaddr and timeval are valid for
    // the sizes given.
    let mut s = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let s = TcpStream::from_raw_fd(fd);
        let tv = libc::timeval { tv_sec: timeout.as_secs() as _, tv_usec: timeout.subsec_micros() as _ };
        // SO_SNDTIMEO bounds connect() too.
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDTIMEO, (&tv as *const libc::timeval).cast(), size_of_val(&tv) as u32);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as u16;
        sa.sin_addr.s_addr = u32::from(src).to_be();
        if libc::bind(fd, (&sa as *const libc::sockaddr_in).cast(), size_of_val(&sa) as u32) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let SocketAddr::V4(to4) = to else { unreachable!("IPv4 only") };
        sa.sin_addr.s_addr = u32::from(*to4.ip()).to_be();
        sa.sin_port = to4.port().to_be();
        if libc::connect(fd, (&sa as *const libc::sockaddr_in).cast(), size_of_val(&sa) as u32) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        s
    };
    s.set_read_timeout(Some(timeout))?;
    s.set_nodelay(true)?;
    let req = [0x42u8; 64];
    let mut resp = [0u8; 64];
    s.write_all(&req)?;
    s.read_exact(&mut resp)?;
    Ok(())
}

/// Transactions completed in `window` by `CONC` connections at a time from
/// `client`, each from the next of the client's addresses.
fn legit(client: &Host, to: Ipv4Addr, window: Duration) -> anyhow::Result<u64> {
    let done = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let end = Instant::now() + window;
    let workers: Vec<_> = (0..CONC)
        .map(|_| {
            let (done, next, stop) = (done.clone(), next.clone(), stop.clone());
            client.spawn(move || {
                while Instant::now() < end && !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed) % u64::from(CLIENTS);
                    let src = Ipv4Addr::new(203, 0, 113, 100 + i as u8);
                    if transaction(src, (to, PORT).into(), Duration::from_secs(2)).is_ok() && Instant::now() < end {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().map_err(|_| anyhow::anyhow!("client thread panicked"))??;
    }
    Ok(done.load(Ordering::Relaxed))
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
    if threaded {
        // `ip netns exec` mounts the namespace's own /sys.
        let ok = Command::new("ip")
            .args(["netns", "exec", &host.ns, "sh", "-c", "echo 1 > /sys/class/net/eth0/threaded"])
            .status()?
            .success();
        if !ok {
            bail!("cannot turn on threaded NAPI for the host's eth0");
        }
    }
    echo_server(&host, PORT)?;
    // The lab works and every neighbour is resolved before the flood.
    let warm = legit(&client, host.v4, Duration::from_millis(500))?;
    if warm == 0 {
        bail!("no transaction completed before the flood");
    }

    let mut d = Daemon::start(&host, tag, dataplane_extra, "")?;
    let status = d.status()?;
    let log = d.log();
    d.stop()?; // detaches: the first window is without

    let port = "p-host";
    let budget = WINDOW.as_secs() * 2 * PAIRS as u64 + 40;
    let mut flood = SynFlood::start(&attacker, host.v4, PORT, Duration::from_secs(budget))?;
    std::thread::sleep(Duration::from_secs(1));
    let mut windows = Vec::new();
    for i in 0..2 * PAIRS {
        let attached = i % 2 == 1;
        if attached {
            d.spawn()?;
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
