//! Request → first dropped packet, and sustained mitigation requests/s,
//! with `bench_control` (our DotsClient over DTLS with a PSK) in the lab's
//! client namespace against the daemon on the lab's host.

use std::{path::Path, time::Duration};

use anyhow::{bail, Context};
use mitigator_tests::{
    signal::{dots_protections, SignalLab, PSK_IDENTITY, PSK_KEY},
    Host,
};

use super::control_lab as cl;
use crate::step;

/// Probe targets: host addresses 2001:db8:113::2:<i hex>, in the lab
/// client's domain (alice-domain: 2001:db8:113::/64).
const PROBE_PREFIX: &str = "2001:db8:113::2:";
const PROBE_PORT: &str = "9999";
/// One probe every 200 µs (5,000/s): the resolution of "first dropped".
pub const PROBE_US: u64 = 200;
/// Throughput clients' targets: 2001:db8:114::<client>:<mid>, a domain of their own.
const TPUT_PREFIX: &str = "2001:db8:114::";

#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub i: u32,
    pub ack_us: u64,
    pub drop_us: u64,
    pub gap_us: u64,
    /// The last probe that passed was sent after the 2.01 had arrived.
    pub passed_after_ack: bool,
}

pub struct Latency {
    /// Measured samples (warm-up requests left out).
    pub samples: Vec<Sample>,
    pub warmup: usize,
    pub probes_sent: u64,
    pub probes_received: u64,
    /// Packets dropped by the DOTS protections, by the XDP counters.
    pub xdp_dropped: u64,
}

pub struct Throughput {
    pub clients: usize,
    pub window_s: u64,
    /// (client, finished ms since start, latency µs, 2.01 or not)
    pub requests: Vec<(usize, u64, u64, bool)>,
    /// DOTS protections in the daemon at the end (each request added one).
    pub protections_after: usize,
}

/// Gives the protected host the probe targets' addresses (one `ip -batch`).
fn add_targets(host: &Host, n: u32, dir: &Path) -> anyhow::Result<()> {
    let file = dir.join("control-addrs.batch");
    let lines: String = (1..=n)
        .map(|i| format!("addr add {PROBE_PREFIX}{i:x}/128 dev eth0 nodad\n"))
        .collect();
    std::fs::write(&file, lines)?;
    let out = std::process::Command::new("ip")
        .args(["-n", &host.ns, "-batch"])
        .arg(&file)
        .output()?;
    if !out.status.success() {
        bail!("ip -batch: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn field<T: std::str::FromStr>(f: &[String], i: usize) -> anyhow::Result<T> {
    f.get(i)
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("field {i} of {f:?}"))
}

pub fn latency(example: &Path, lab: &SignalLab, warmup: usize, count: usize, work: &Path) -> anyhow::Result<Latency> {
    let total = (warmup + count) as u32;
    add_targets(&lab.host, total, work)?;
    step(&format!(
        "control: {total} mitigation requests ({warmup} warm-up), one new /128 each, probed by UDP every {PROBE_US} µs from {}",
        lab.attacker.ns
    ));
    let args: Vec<String> = [
        "latency",
        "--server",
        "203.0.113.10:4646",
        "--identity",
        PSK_IDENTITY,
        "--key",
        PSK_KEY,
        "--count",
        &total.to_string(),
        "--prefix",
        PROBE_PREFIX,
        "--probe-from",
        &format!("/run/netns/{}", lab.attacker.ns),
        "--probe-to",
        &format!("/run/netns/{}", lab.host.ns),
        "--probe-port",
        PROBE_PORT,
        "--probe-us",
        &PROBE_US.to_string(),
    ]
    .map(String::from)
    .to_vec();
    let lines = cl::run_client(example, &lab.client, &args)?;
    let mut samples = vec![];
    let (mut sent, mut received) = (0, 0);
    for f in &lines {
        match f.first().map(String::as_str) {
            Some("sample") => samples.push(Sample {
                i: field(f, 1)?,
                ack_us: field(f, 2)?,
                drop_us: field(f, 3)?,
                gap_us: field(f, 4)?,
                passed_after_ack: field::<u8>(f, 5)? == 1,
            }),
            Some("probes") => (sent, received) = (field(f, 1)?, field(f, 2)?),
            _ => {}
        }
    }
    if samples.len() != total as usize {
        bail!("bench_control printed {} samples, wanted {total}", samples.len());
    }
    // The daemon samples its counters every stats_interval_ms (200 in the lab).
    std::thread::sleep(Duration::from_millis(600));
    let xdp_dropped = dots_protections(&lab.daemon)?
        .iter()
        .map(|p| p["dropped"]["packets"].as_u64().unwrap_or(0))
        .sum();
    let samples = samples.split_off(warmup);
    Ok(Latency {
        samples,
        warmup,
        probes_sent: sent,
        probes_received: received,
        xdp_dropped,
    })
}

/// `clients` sessions, identities `tput-<first>` on (each run its own
/// clients and targets: earlier runs' mitigations stay in the daemon).
pub fn throughput(example: &Path, lab: &SignalLab, first: usize, clients: usize, seconds: u64) -> anyhow::Result<Throughput> {
    step(&format!(
        "control: {clients} DOTS clients sending mitigation requests back to back for {seconds} s"
    ));
    let ids: Vec<String> = (first..first + clients).map(|i| format!("tput-{i}")).collect();
    let args: Vec<String> = [
        "throughput",
        "--server",
        "203.0.113.10:4646",
        "--identities",
        &ids.join(","),
        "--key",
        PSK_KEY,
        "--prefix",
        TPUT_PREFIX,
        "--seconds",
        &seconds.to_string(),
        "--first",
        &first.to_string(),
    ]
    .map(String::from)
    .to_vec();
    let lines = cl::run_client(example, &lab.client, &args)?;
    let mut requests = vec![];
    for f in lines.iter().filter(|f| f.first().map(String::as_str) == Some("req")) {
        requests.push((field(f, 1)?, field(f, 2)?, field(f, 3)?, field::<u8>(f, 4)? == 1));
    }
    let protections_after = dots_protections(&lab.daemon)?.len();
    Ok(Throughput {
        clients,
        window_s: seconds,
        requests,
        protections_after,
    })
}

/// The throughput clients' domain, for the lab's config.
pub fn tput_domain(clients: usize) -> String {
    cl::domain("tput-domain", "2001:db8:114::/48", "tput-", clients)
}
