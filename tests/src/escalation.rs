//! The escalation lab: a protected host, two upstream providers (A and B),
//! each a `mitigator run` with its own XDP data plane and DOTS server, and an
//! attacker whose traffic toward the host's service addresses is routed
//! through a provider, so that "the upstream drops it" happens in the
//! provider's XDP program.
//!
//! ```text
//! attacker .66 ──route 198.51.100.0/25, 192.0.2.0/24──▶ A .1 ──forward──▶ host .10
//!              ──route 198.51.100.16/28, 198.51.100.128/25──▶ B .2 ──┘
//! ```
//! All on one bridge (203.0.113.0/24); the service addresses 198.51.100.10,
//! .20, .200 and 192.0.2.10 live on the host's loopback. Providers forward
//! without ICMP redirects, so traffic keeps going through them.
//!
//! Provisioning domains (the host's `[[upstream]]`): A owns 198.51.100.0/25
//! (PA), B owns 198.51.100.128/25 (PA), 192.0.2.0/24 is provider
//! independent. A serves the host for 198.51.100.0/28 and 192.0.2.0/24 only
//! (so it refuses 198.51.100.20 with 4.00); B for all of them.

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::{netlab::Host, Daemon, Lab};

pub const PSK_IDENTITY: &str = "edge-host";
pub const PSK_KEY_HEX: &str = "6564676520686f7374206b6579"; // "edge host key"
/// UDP port of the protected service; every mitigation is narrowed to it.
pub const SERVICE_PORT: u16 = 9999;

/// What differs between scenarios.
pub struct Options {
    /// Extra keys of the host's A `[[upstream]]` (e.g. `fallback = ["B"]`).
    pub a_extra: String,
    /// A's address as the host dials it (default its lab address).
    pub a_server: Option<String>,
    /// Extra config of the host (e.g. its `[signal]`).
    pub host_extra: String,
    /// `[escalation] enabled`.
    pub escalate: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { a_extra: "fallback = [\"B\"]".into(), a_server: None, host_extra: "[signal]\nenabled = false\n".into(), escalate: true }
    }
}

pub struct EscalationLab {
    pub lab: Lab,
    pub host: Host,
    pub a: Host,
    pub b: Host,
    pub attacker: Host,
    pub host_d: Daemon,
    pub a_d: Daemon,
    pub b_d: Daemon,
}

fn provider_config(host_prefixes: &str) -> String {
    format!(
        r#"[signal]
dtls_listen = ["[::]:4646"]
tls_listen = ["[::]:4646"]
profile = "dropall"
terminating_period_s = 2
terminating_max_s = 10
observe_interval_s = 1
notification_spacing_ms = 300

[[signal.clients]]
name = "edge"
prefixes = [{host_prefixes}]
identities = ["psk:{PSK_IDENTITY}"]
psk_keys = {{ {PSK_IDENTITY} = "{PSK_KEY_HEX}" }}

[profiles.dropall]
countermeasures = ["drop-all"]
"#
    )
}

/// The host's escalation config: capacity 2000 pkt/s, escalate above 1000
/// for 1 s, withdraw under 500 (local + upstream drops) for 3 s.
pub fn host_config(o: &Options) -> String {
    let a_server = o.a_server.clone().unwrap_or_else(|| "203.0.113.1".into());
    format!(
        r#"[escalation]
enabled = {escalate}
capacity_pps = 2000
capacity_bps = 1000000000
high = 0.5
low = 0.25
hold_up_ms = 1000
hold_down_ms = 3000
retry_min_ms = 1000
retry_max_ms = 4000
efficacy_interval_ms = 500
lifetime_s = 600

[[upstream]]
name = "A"
server = "{a_server}"
transport = "dtls"
prefixes = ["198.51.100.0/25"]
psk_identity = "{PSK_IDENTITY}"
psk_key = "{PSK_KEY_HEX}"
source = "203.0.113.10"
interface = "eth0"
{a_extra}

[[upstream]]
name = "B"
server = "203.0.113.2"
transport = "dtls"
prefixes = ["198.51.100.128/25"]
psk_identity = "{PSK_IDENTITY}"
psk_key = "{PSK_KEY_HEX}"

{host_extra}
"#,
        a_extra = o.a_extra,
        escalate = o.escalate,
        host_extra = o.host_extra
    )
}

impl EscalationLab {
    pub fn start(tag: &str, o: Options) -> anyhow::Result<EscalationLab> {
        let mut lab = Lab::new(tag)?;
        let host = lab.add_host("host", 10)?;
        let a = lab.add_host("a", 1)?;
        let b = lab.add_host("b", 2)?;
        let attacker = lab.add_host("atk", 66)?;
        for addr in ["198.51.100.10/32", "198.51.100.20/32", "198.51.100.200/32", "192.0.2.10/32"] {
            host.sh(&["ip", "addr", "add", addr, "dev", "lo"])?;
        }
        for p in [&a, &b] {
            for key in ["net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.eth0.send_redirects=0"] {
                p.sh(&["sysctl", "-qw", key])?;
            }
            p.sh(&["ip", "route", "add", "198.51.100.0/24", "via", "203.0.113.10"])?;
            p.sh(&["ip", "route", "add", "192.0.2.0/24", "via", "203.0.113.10"])?;
        }
        attacker.sh(&["sysctl", "-qw", "net.ipv4.conf.all.accept_redirects=0"])?;
        for (net, via) in [("198.51.100.0/25", "203.0.113.1"), ("192.0.2.0/24", "203.0.113.1"), ("198.51.100.16/28", "203.0.113.2"), ("198.51.100.128/25", "203.0.113.2")] {
            attacker.sh(&["ip", "route", "add", net, "via", via])?;
        }
        let dp = "interfaces = [\"eth0\"]\nattach_mode = \"native\"";
        let a_d = Daemon::start(&a, &format!("{tag}-a"), dp, &provider_config("\"198.51.100.0/28\", \"192.0.2.0/24\""))?;
        let b_d = Daemon::start(&b, &format!("{tag}-b"), dp, &provider_config("\"198.51.100.0/24\", \"192.0.2.0/24\""))?;
        for d in [&a_d, &b_d] {
            wait_log(d, "DOTS signal channel ready")?;
        }
        let host_d = Daemon::start(&host, &format!("{tag}-h"), dp, &host_config(&o))?;
        Ok(EscalationLab { lab, host, a, b, attacker, host_d, a_d, b_d })
    }

    /// Waits until the host's sessions with the named upstreams are up.
    pub fn wait_sessions(&self, names: &[&str]) -> anyhow::Result<()> {
        poll("upstream sessions up", Duration::from_secs(30), || {
            let st = self.host_d.status()?;
            let ups = st["escalation"]["upstreams"].as_array().cloned().unwrap_or_default();
            Ok(names.iter().all(|n| ups.iter().any(|u| u["name"] == *n && u["session"] == "up")).then_some(()))
        })
        .with_context(|| format!("host log:\n{}", self.host_d.log()))
    }

    /// `mitigator protect ADDR --proto udp --port 9999 --countermeasure drop-all` on the host; its id.
    pub fn protect(&self, addr: &str) -> anyhow::Result<u64> {
        self.host_d.cli(&["protect", addr, "--proto", "udp", "--port", &SERVICE_PORT.to_string(), "--countermeasure", "drop-all"])?;
        let st = self.host_d.status()?;
        st["protections"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["spec"]["prefixes"].to_string().contains(addr)))
            .and_then(|p| p["id"].as_u64())
            .context("protection id")
    }
}

pub fn wait_log(d: &Daemon, what: &str) -> anyhow::Result<()> {
    poll(what, Duration::from_secs(20), || Ok(d.log().contains(what).then_some(())))
        .with_context(|| format!("log:\n{}", d.log()))
}

/// Polls `f` every 200 ms until it returns Some, or fails at the deadline.
pub fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> anyhow::Result<Option<T>>) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The escalation legs of protection `id` in `status --json`.
pub fn legs(status: &Value, id: u64) -> Vec<Value> {
    status["escalation"]["targets"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["protection"].as_u64() == Some(id)))
        .and_then(|t| t["legs"].as_array().cloned())
        .unwrap_or_default()
}

/// DOTS-owned protections of a daemon covering `prefix` (string match).
pub fn dots_protections_for(d: &Daemon, prefix: &str) -> anyhow::Result<Vec<Value>> {
    let st = d.status()?;
    Ok(st["protections"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter(|p| p["owner"]["kind"] == "dots" && p["spec"]["prefixes"].to_string().contains(prefix))
                .cloned()
                .collect()
        })
        .unwrap_or_default())
}

/// A UDP flood at a fixed rate (batches every 10 ms), bounded in time.
pub struct PacedFlood {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl PacedFlood {
    pub fn start(from: &Host, to: IpAddr, port: u16, pps: u64, max: Duration) -> PacedFlood {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (s, n) = (stop.clone(), sent.clone());
        let bind: SocketAddr = (from.addr(to.is_ipv6()), 0).into();
        let handle = from.spawn(move || -> anyhow::Result<()> {
            let sock = UdpSocket::bind(bind)?;
            let buf = [0x5au8; 64];
            let started = Instant::now();
            let per_batch = (pps / 100).max(1);
            let mut batch = 0u64;
            while !s.load(Ordering::Relaxed) && started.elapsed() < max {
                for _ in 0..per_batch {
                    if sock.send_to(&buf, (to, port)).is_ok() {
                        n.fetch_add(1, Ordering::Relaxed);
                    }
                }
                batch += 1;
                let next = started + Duration::from_millis(10 * batch);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            Ok(())
        });
        let handle = std::thread::spawn(move || handle.join().map_err(|_| anyhow::anyhow!("flood thread panicked"))??);
        PacedFlood { stop, sent, handle: Some(handle) }
    }

    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    pub fn stop(mut self) -> anyhow::Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().map_err(|_| anyhow::anyhow!("flood thread panicked"))??;
        }
        Ok(self.sent())
    }
}

impl Drop for PacedFlood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Packets seen toward protection `id` on the host (passed + dropped).
pub fn inbound_packets(status: &Value, id: u64) -> u64 {
    crate::daemon::protection_counter(status, id, "passed", "packets") + crate::daemon::protection_counter(status, id, "dropped", "packets")
}

/// Runs `mitigator` with arguments in `host` (the CLI as an operator uses it).
pub fn mitigator_in(host: &Host, args: &[&str]) -> anyhow::Result<std::process::Output> {
    host.command(crate::daemon::mitigator_bin().to_str().unwrap()).args(args).output().context("run mitigator")
}
