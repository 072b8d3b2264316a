//! Table 4: the DOTS control plane (issue #6 item 4), measured with a real
//! DTLS client (our `DotsClient`, in `mitigator-user/examples/bench_control.rs`)
//! against `mitigator run` in a lab of network namespaces:
//!
//! - `control_latency`: request → 2.01 and request → first dropped packet
//!   (UDP probes to each new target), and sustained requests/s;
//! - `control_memory`: the daemon's RSS with 10,000 idle DTLS sessions,
//!   beside libcoap's coap-server-openssl holding the same sessions.

use std::path::Path;

use super::{
    control_lab as cl,
    control_latency::{self as lat, Latency, Throughput, PROBE_US},
    control_memory::{self as memory, Held, Memory},
    report::Table,
};
use crate::step;

/// What the section measures; sizes are fixed so that runs compare.
pub struct Plan {
    pub warmup: usize,
    pub requests: usize,
    /// Client counts, one throughput run each (a lone client shows the
    /// grace period's bound; more clients share flips).
    pub tput_clients: &'static [usize],
    pub tput_seconds: u64,
    pub sessions: usize,
}

pub const PLAN: Plan = Plan {
    warmup: 10,
    requests: 200,
    tput_clients: &[1, 4, 16],
    tput_seconds: 10,
    sessions: 10_000,
};

pub struct Control {
    pub table: Table,
    /// Every latency sample (CSV only).
    pub samples: Table,
    pub latency: Latency,
    pub memory: Memory,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn run(example: &Path, work: &Path) -> anyhow::Result<Control> {
    let load_start = loadavg();
    // Memory first, in a daemon of its own: nothing else has run in it.
    let memory = memory::run(example, PLAN.sessions)?;
    let lab = cl::start("mtgc", &lat::tput_domain(PLAN.tput_clients.iter().sum()))?;
    let latency = lat::latency(example, &lab, PLAN.warmup, PLAN.requests, work)?;
    step(&format!(
        "control: request → first drop p50 {:.2} ms p99 {:.2} ms; request → 2.01 p50 {:.2} ms p99 {:.2} ms",
        ms(pct(&drops(&latency), 0.5)),
        ms(pct(&drops(&latency), 0.99)),
        ms(pct(&acks(&latency), 0.5)),
        ms(pct(&acks(&latency), 0.99))
    ));
    let mut throughput = vec![];
    let mut first = 0;
    for &clients in PLAN.tput_clients {
        let tp = lat::throughput(example, &lab, first, clients, PLAN.tput_seconds)?;
        step(&format!("control: {clients} clients: {:.1} mitigations/s (2.01s) sustained", rate(&tp)));
        first += clients;
        throughput.push(tp);
    }
    drop(lab);
    let mut table = table(&latency, &throughput, &memory);
    table.row(vec![
        "load average (1, 5, 15 min) at the start and end of this section".into(),
        format!("{load_start} → {}", loadavg()),
        "2 cores, shared with other builds".into(),
    ]);
    Ok(Control {
        table,
        samples: samples_table(&latency),
        latency,
        memory,
    })
}

// ------------------------------------------------------------ statistics

/// Nearest-rank percentile (p in 0..=1) of unsorted values; 0 when empty.
pub fn pct(v: &[u64], p: f64) -> u64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    if s.is_empty() {
        return 0;
    }
    let rank = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

pub fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

pub fn drops(l: &Latency) -> Vec<u64> {
    l.samples.iter().map(|s| s.drop_us).collect()
}

fn acks(l: &Latency) -> Vec<u64> {
    l.samples.iter().map(|s| s.ack_us).collect()
}

fn ok_requests(t: &Throughput) -> impl Iterator<Item = &(usize, u64, u64, bool)> {
    t.requests.iter().filter(|r| r.3)
}

/// 2.01s per second over the window.
pub fn rate(t: &Throughput) -> f64 {
    ok_requests(t).count() as f64 / t.window_s.max(1) as f64
}

/// 2.01s completed in each whole second of the window.
fn per_second(t: &Throughput) -> Vec<u64> {
    let mut buckets = vec![0u64; t.window_s as usize];
    for r in ok_requests(t) {
        if let Some(b) = buckets.get_mut((r.1 / 1000) as usize) {
            *b += 1;
        }
    }
    buckets
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ------------------------------------------------------------ tables

fn latency_rows(t: &mut Table, l: &Latency) {
    let (d, a) = (drops(l), acks(l));
    let n = l.samples.len();
    let stat = |v: &[u64]| {
        format!(
            "p50 {:.2} ms, p99 {:.2} ms (min {:.2}, max {:.2})",
            ms(pct(v, 0.5)),
            ms(pct(v, 0.99)),
            ms(pct(v, 0.0)),
            ms(pct(v, 1.0))
        )
    };
    t.row(vec![
        "mitigation request → first dropped packet (ours: DotsClient, DTLS 1.2 PSK)".into(),
        stat(&d),
        format!(
            "{n} requests after {} warm-up, one session, each a new /128 target",
            l.warmup
        ),
    ]);
    t.row(vec![
        "mitigation request → 2.01 received".into(),
        stat(&a),
        format!("same {n} requests"),
    ]);
    let before = l.samples.iter().filter(|s| s.drop_us <= s.ack_us).count();
    let after = l.samples.iter().filter(|s| s.passed_after_ack).count();
    t.row(vec![
        "rules in the maps before the 2.01 (probe check)".into(),
        format!("{before} of {n}: first dropped probe sent before the 2.01 arrived; {after} of {n}: a probe sent after the 2.01 passed"),
        "design: 2.01 only after the rules are in the maps".into(),
    ]);
    let gaps: Vec<u64> = l.samples.iter().map(|s| s.gap_us).collect();
    t.row(vec![
        "probe resolution (gap between the last passed and the first dropped probe)".into(),
        format!("median {} µs, max {} µs", pct(&gaps, 0.5), pct(&gaps, 1.0)),
        format!("probes every {PROBE_US} µs, paced by sleep"),
    ]);
    let lost = l
        .probes_sent
        .saturating_sub(l.probes_received)
        .saturating_sub(l.xdp_dropped);
    t.row(vec![
        "probe accounting".into(),
        format!(
            "sent {}, received {}, dropped by XDP (DOTS protections' counters) {}, missing otherwise {lost}",
            l.probes_sent, l.probes_received, l.xdp_dropped
        ),
        "missing otherwise: lost before the rule (neighbour resolution of a new address) or in flight".into(),
    ]);
}

fn throughput_rows(t: &mut Table, tp: &Throughput) {
    let ps = per_second(tp);
    let lat: Vec<u64> = ok_requests(tp).map(|r| r.2).collect();
    let failed = tp.requests.len() - lat.len();
    t.row(vec![
        format!("mitigation requests/s, {} client{} (sustained, 2.01s per second)", tp.clients, if tp.clients == 1 { "" } else { "s" }),
        format!("{:.1}/s (per second: min {}, median {}, max {})", rate(tp), pct(&ps, 0.0), pct(&ps, 0.5), pct(&ps, 1.0)),
        format!("{} clients (sessions), back to back, each request a new mid and /128 target; {} s; {} 2.01s, {failed} failed", tp.clients, tp.window_s, lat.len()),
    ]);
    t.row(vec![
        format!("latency under that load, {} client{} (request → 2.01)", tp.clients, if tp.clients == 1 { "" } else { "s" }),
        format!("p50 {:.2} ms, p99 {:.2} ms", ms(pct(&lat, 0.5)), ms(pct(&lat, 0.99))),
        format!("DOTS protections at the end: {}", tp.protections_after),
    ]);
}

fn memory_row(t: &mut Table, who: &str, h: &Held, note: &str) {
    t.row(vec![
        format!("RSS with {} idle DTLS sessions: {who}", h.wanted),
        format!(
            "{:.1} MiB → {:.1} MiB (+{:.1} MiB, {:.0} bytes/session); VmHWM {:.1} MiB; after closing them {:.1} MiB",
            mib(h.before.rss_kib),
            mib(h.after.rss_kib),
            mib(h.after.rss_kib.saturating_sub(h.before.rss_kib)),
            h.per_session(),
            mib(h.after.hwm_kib),
            mib(h.closed.rss_kib)
        ),
        format!(
            "{} opened, {} failed, in {:.1} s; {} of them answered a CoAP ping after the reading; the client process held them in {:.1} MiB (OpenSSL, one context, SSL_MODE_RELEASE_BUFFERS); {note}",
            h.opened,
            h.failed,
            h.open_s,
            h.alive,
            mib(h.client_rss_kib)
        ),
    ]);
}

fn table(l: &Latency, tps: &[Throughput], m: &Memory) -> Table {
    let mut t = Table::new(
        "control_plane",
        "Control plane (DOTS)",
        &["measure", "result", "details"],
    );
    latency_rows(&mut t, l);
    for tp in tps {
        throughput_rows(&mut t, tp);
    }
    memory_row(
        &mut t,
        "mitigator (ours)",
        &m.ours,
        &format!("daemon log: {} DOTS client connections", m.connected),
    );
    match &m.libcoap {
        Some(h) => memory_row(
            &mut t,
            "libcoap coap-server-openssl (floor, not a DOTS server)",
            h,
            "same client, same PSK",
        ),
        None => t.row(vec![
            "RSS: libcoap coap-server-openssl (floor)".into(),
            "not measured (see the run's output)".into(),
            String::new(),
        ]),
    }
    t
}

fn samples_table(l: &Latency) -> Table {
    let mut t = Table::new(
        "control_latency",
        "Control plane: every request→first drop sample",
        &[
            "request",
            "request→2.01 µs",
            "request→first dropped probe sent µs",
            "gap to last passed probe µs",
            "a probe sent after the 2.01 passed",
        ],
    );
    for s in &l.samples {
        t.row(vec![
            s.i.to_string(),
            s.ack_us.to_string(),
            s.drop_us.to_string(),
            s.gap_us.to_string(),
            s.passed_after_ack.to_string(),
        ]);
    }
    t
}

/// How section 4 was measured, for BENCHMARKS.md.
pub fn method() -> String {
    format!(
        "A lab of network namespaces on a bridge (`mitigator_tests::signal::SignalLab`): `mitigator run` on the \
protected host 203.0.113.10 (XDP native on its eth0, the signal channel on DTLS/TLS 4646, DOTS mitigations \
drop-all, the state store on this machine's ext4 disk), a DOTS client namespace 203.0.113.20 and an attacker \
namespace 203.0.113.66. Traffic crosses veth pairs and a bridge, not `lo`: the figures are \"loopback/lab\" \
figures, with no real network in between. The client is `bench_control` \
(`mitigator-user/examples/bench_control.rs`), which uses our own DOTS client, `mitigator::client_dots::DotsClient`, \
over DTLS 1.2 with a PSK (OpenSSL, the same code as `mitigator client`), session configuration negotiated at \
connect (GET+PUT /config), Observe of its own mitigations turned off so that each figure is the mitigation \
request alone; every request is `DotsClient::mitigate_as` (a PUT with a new mid, its mid chosen by the bench \
so that the client's durable mid allocation is not timed) for one new /128 target.\n\n\
**Request → first dropped packet.** The bench process has three threads in three namespaces (setns), on one \
clock: a UDP sender in the attacker namespace sends a probe (sequence number, target) every {PROBE_US} µs \
(paced by sleep) to the current target, a receiver in the host namespace records the last probe that arrived, \
and the DOTS client. For each of {w} + {n} requests ({w} warm-up requests are left out): the target is a new \
address of the host, 2001:db8:113::2:<i>; the probes switch to it, and once one arrives (the path is clean), \
the time t0 is taken and the mitigation request for <address>/128 is sent; the time of the 2.01 is taken when \
`mitigate_as` returns; then the bench waits until no probe has arrived for 40 ms while the sender kept sending. \
The first dropped probe is the one after the last probe that arrived; \"request → first dropped packet\" is the \
time that probe was sent minus t0. It is exact up to the gap between two probes (the resolution row gives the \
gaps that occurred) plus the time a probe takes to reach the host's XDP hook. The probe check row verifies the \
design rule that a 2.01 is sent only once the rules are in the maps: the first dropped probe must have been sent \
before the 2.01 arrived, and no probe sent after the 2.01 may pass. Probe accounting cross-checks that the \
missing probes are the ones the XDP program counted as dropped for these mitigations (`mitigator status --json`).\n\n\
**Requests per second.** Runs with {c} DOTS clients in turn (PSK identities of a client domain of their own, \
one DTLS session each, new clients in each run): each client sends mitigation requests back to back for {s} s, \
one outstanding request per session, each a new mid and a new /128 target (2001:db8:114::<client>:<mid>), in \
the daemon that served the latency requests; the 2.01s are counted per second of the window, with their \
latency. Every request adds a protection and earlier runs' protections stay, so the daemon's rule set grows \
during the runs (the number at the end of each is given).\n\n\
**Memory with {m} idle DOTS sessions.** A fresh daemon whose config has a client domain with {m} PSK \
identities (idle-0 …; the DTLS server keeps at most 10,000 peers, `DtlsOptions::max_sessions`'s default, \
so exactly {m} fit and nothing else may connect meanwhile). `bench_control sessions` opens {m} DTLS sessions \
(one UDP socket each, at most 32 handshakes at a time, each a distinct identity and so a distinct DOTS \
client), then sends nothing; the daemon's VmRSS and VmHWM (/proc/PID/status) are read before (2 s after \
start) and after ({settle} s after the last handshake); then the client sends a CoAP ping (Empty CON, RFC 7252 \
4.3) on every session and counts the RSTs that come back, to show they were still sessions; the RSS is read \
again 2 s after the client closed them all. \
Per-session bytes are (RSS after − RSS before) / sessions. The floor beside it is libcoap's example server \
`coap-server-openssl -k <key>` (DTLS on port 5684) holding the same sessions from the same client: a plain \
CoAP/DTLS server with no DOTS state, no heartbeats and no per-client registry, not an alternative DOTS server \
(the issue names no side-by-side for the control plane). Numbers are noisy: 2 cores shared with other builds \
(load averages in the table).\n\n\
**Reading the figures** (from the code, not measured separately). One registry thread owns the state and \
handles one request at a time: it stores the request (redb commits; within a group commit without fsync, all \
made durable by one fsync before the flip), compiles the whole rule set and checks it against the data plane \
(`Dataplane::prepare`). After a generation flip the old generation is left alone for \
the 20 ms grace period; a change made within it is not flipped at once: the registry handles whatever else is \
queued until the grace has passed, then writes and flips once for all of them (`Dataplane::commit`), and only \
then sends their 2.01s (group commit, `registry::batch`), so packets are still dropped from before the 2.01 on. \
A lone client, which sends its next request only after the 2.01, always lands within the grace of its own \
last flip: about 50 requests/s. More clients share flips, up to the time the registry spends per request \
(store and compile, which grows with the rule set).",
        w = PLAN.warmup,
        n = PLAN.requests,
        c = PLAN.tput_clients.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", "),
        s = PLAN.tput_seconds,
        m = PLAN.sessions,
        settle = 5,
    )
}
