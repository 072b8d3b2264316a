//! `cargo xtask bench` (issue #6): measures the data plane and writes
//! BENCHMARKS.md and `benchmarks/<table>.csv`, every figure from one run,
//! side by side with the baselines measured in the same run.
//!
//! 1. `perpacket`: ns/packet through BPF_PROG_TEST_RUN — XDP_PASS floor,
//!    ours, xdp-filter — on the same packet files; `synproxy_cost`: the SYN
//!    proxy's single-run costs beside them.
//! 2. `scaling`: ns/packet and install time at 1 … 1M entries.
//! 3. `flood`: UDP flood over veth between namespaces against no filter,
//!    nftables, ours generic and native, with TCP transactions; from trafgen
//!    (skbs) and from a live-frames XDP generator (xdp_frames, `xdpgen`),
//!    as fast as it goes, then paced to twice what nftables cleared; and
//!    (`attack_shapes`) random-source SYN, UDP and ACK floods against no
//!    filter, nftables' best equivalent and the default profile.
//! 4. `control`: the DOTS control plane — request → first drop, requests/s,
//!    RSS with 10,000 idle sessions (`control_*` modules).
//! 5. `targets`: met / not met.
//!
//! The measuring itself that needs the `mitigator::dataplane` API runs in
//! `mitigator-user/examples/bench_dataplane.rs`, and the DOTS client side in
//! `mitigator-user/examples/bench_control.rs` (xtask cannot depend on
//! mitigator-user: its build script needs bpf-linker, which `setup` installs).

mod control;
mod control_lab;
mod control_latency;
mod control_memory;
mod flood;
mod perpacket;
mod progrun;
mod report;
mod scaling;
mod synproxy_cost;
mod targets;
mod xdpfilter;
mod xdpgen;

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use report::Table;

use crate::{build, cargo, run, setup, step};

pub struct Opts {
    /// BPF_PROG_TEST_RUN repetitions per measurement.
    pub repeat: u32,
    /// Measurements per figure (median and min are reported).
    pub rounds: u32,
    /// Length of each flood case's measurement window.
    pub seconds: u64,
    /// The paced flood's rate, frames/s (default: twice what the nftables
    /// rule dropped under the unpaced live-frames flood).
    pub flood_pps: Option<f64>,
    /// Scratch directory (packet files, floor object, private bpffs mounts).
    pub work: PathBuf,
    /// The bench_dataplane example binary.
    pub example: PathBuf,
    /// The bench_control example binary (the DOTS client side).
    pub control_example: PathBuf,
}

/// Which sections to run (all by default; a subset for quick iterations).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    PerPacket,
    Scaling,
    Flood,
    Control,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// Builds the daemon (debug, as `cargo xtask test` does: the flood section
/// runs it; and release, for the control-plane section, whose figures are
/// the daemon's own userspace work) and the bench examples (release: the
/// install timings include their own userspace work).
fn build_all() -> anyhow::Result<(PathBuf, PathBuf)> {
    build()?;
    step("cargo build --release -p mitigator-user --bin mitigator --example bench_dataplane --example bench_control");
    run(cargo().args(["build", "--release", "-p", "mitigator-user", "--bin", "mitigator", "--example", "bench_dataplane", "--example", "bench_control"]))?;
    let ex = root().join("target/release/examples");
    Ok((ex.join("bench_dataplane"), ex.join("bench_control")))
}

pub fn bench(repeat: u32, rounds: u32, seconds: u64, flood_pps: Option<f64>, sections: &[Section], out: Option<PathBuf>) -> anyhow::Result<()> {
    let started = Instant::now();
    setup::setup()?;
    let (example, control_example) = build_all()?;
    // The lab's Daemon helper finds the binary through this variable.
    // SAFETY (edition 2021: safe call): set before any thread is started.
    std::env::set_var("MITIGATOR_BIN", root().join("target/debug/mitigator"));
    let work = std::env::temp_dir().join("mtg-bench");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let o = Opts { repeat, rounds, seconds, flood_pps, work, example, control_example };
    let machine = report::machine();
    let all = sections.is_empty();
    let want = |s| all || sections.contains(&s);

    let pp = if want(Section::PerPacket) { Some(perpacket::run(&o)?) } else { None };
    let sc = if want(Section::Scaling) { Some(scaling::run(&o)?) } else { None };
    let fl = if want(Section::Flood) { Some(flood::run(&o)?) } else { None };
    let cp = if want(Section::Control) {
        // The control plane is the daemon's userspace: time the release build.
        // (edition 2021: safe call; the threads of earlier sections are gone.)
        std::env::set_var("MITIGATOR_BIN", root().join("target/release/mitigator"));
        Some(control::run(&o.control_example, &o.work)?)
    } else {
        None
    };
    let targets = targets::evaluate(pp.as_ref(), sc.as_ref(), fl.as_ref(), cp.as_ref());
    let ttable = targets::table(&targets);

    let out = out.unwrap_or_else(root);
    let mut tables: Vec<&Table> = vec![];
    tables.extend(pp.as_ref().map(|p| &p.table));
    tables.extend(pp.as_ref().and_then(|p| p.synproxy.as_ref().ok()).map(|s| &s.table));
    tables.extend(sc.as_ref().map(|s| &s.table));
    tables.extend(fl.iter().flat_map(|f| &f.tables));
    tables.extend(cp.iter().flat_map(|c| [&c.table, &c.samples]));
    tables.push(&ttable);
    report::write_csvs(&out, &tables)?;
    let doc = document(&o, &machine, pp.as_ref(), sc.as_ref(), fl.as_ref(), cp.as_ref(), &targets, &ttable, started.elapsed().as_secs());
    std::fs::write(out.join("BENCHMARKS.md"), doc)?;
    println!("\n{}", ttable.markdown());
    step(&format!("wrote {} and {}/benchmarks/*.csv in {} s", out.join("BENCHMARKS.md").display(), out.display(), started.elapsed().as_secs()));
    let _ = std::fs::remove_dir_all(&o.work);
    Ok(())
}

const PER_PACKET_METHOD: &str = "\
Each case's packet is built with `mitigator::dataplane::testpkt::PacketBuilder` and written to a \
file. Our program is loaded once per rule set by `bench_dataplane serve` (the example keeps the \
programs loaded and prints their kernel ids). Every program is run with \
`bpftool -j prog run id <ID> data_in <packet file> repeat N`, which is BPF_PROG_TEST_RUN: the \
kernel runs the program N times on the packet and reports the average duration per run; \
\"ours (aya)\" is the same kernel measurement through `Dataplane::test_run_repeat`, as a cross-check. \
The floor is a 3-line C program that only returns XDP_PASS, compiled with clang and loaded with \
`bpftool prog load`: it shows what the test-run harness itself costs. xdp-filter (xdp-tools) is \
loaded natively on a veth in a lab namespace (`xdp-filter load -m native -f <features> eth0`, \
with `LIBXDP_SKIP_DISPATCHER=1` so that the program run is xdp-filter's own, and a private bpffs \
through `LIBXDP_BPFFS`), with rules equivalent to ours: `ip 192.0.2.66 -m src` (the drop-list \
entry), `ip 198.51.100.8 -m dst` and `ip 2001:db8:2::8 -m dst` (the scope target), and in the \
all-features mode also `port 80 -p tcp -m dst`. xdp-filter picks a different program per feature \
set; the column heads name the program that ran. It has no rate limiting and no notion of a \
target's checks: those rows show what it does with the same packet (its verdict in brackets). \
Each round runs every case on every program in turn (floor, ours, xdp-filter ip, ours through \
aya, xdp-filter all), so machine noise hits all columns alike; the table gives the median and \
the minimum over the rounds. The machine's speed shifts for seconds at a time (every program, \
the floor included, gets up to a fifth slower, then faster again), so a difference of two \
medians can pit a fast stretch against a slow one: the comparisons the targets judge (ours − \
floor, ours − xdp-filter ip) are taken within each round, between two measurements made one \
right after the other, and the table gives the median of those per-round differences \
(\"paired\"). \
\n\nOur program resolves a packet's destination through a per-CPU destination cache (4,096 \
direct-mapped entries per CPU, tagged with the epoch of the rule set they were resolved in) before \
the host-route hash map and the prefix trie. A test run repeats one packet, so from its second run \
on the cache answers: the rows without a suffix are the cost for a destination seen before on that \
CPU (a flood's, typically), and the `-uncached` rows the same packets with the cache turned off \
(`[dataplane] dst_cache = false`), which is what every packet to a new destination pays (a miss \
also writes the entry: a few ns more).";

const SCALING_METHOD: &str = "\
`bench_dataplane scale`: for each kind and size, a fresh `Dataplane` (unpinned) gets one \
`RuleSet` with that many entries, installed by one `Dataplane::apply` call, timed. `apply` writes \
the inactive generation and flips (a fresh data plane has no earlier flip to wait for): the install \
time is what a rule-set change of that size costs. Host routes are /32s (hash map), prefixes are /24s (LPM \
trie), drop-list entries are /32 sources (the drop-list's hash map; its LPM trie holds only shorter prefixes and is skipped when empty); all entries of a kind belong to one drop-all \
target. ACL entries are one data-channel ACL of up to 4,096 ordered entries (its maximum), each \
a source prefix and a destination port, the packet matching only the last one (accept): the \
lookup ANDs one precomputed bit vector per field, so its cost should not grow with the entries. The packet (UDP) hits the middle entry, and is measured with `Dataplane::test_run_repeat` \
(BPF_PROG_TEST_RUN), first with the destination cache on (it answers from the second run on, \
whatever the table's size), then, after the same rule set is applied again with the cache off, \
without it: the second pair of columns is the lookup structure's own cost, and the growth factor \
is computed on it. The drop-list is looked up by source, which the cache does not cover. One \
repeated packet keeps the entry it hits in the CPU caches: this is the warm-cache cost; a flood \
from random sources over a 1M-entry map would see cache misses on top.";

const FLOOD_METHOD: &str = "\
Two generators, two ways into the protected host; the first table is trafgen's, the second the \
live-frames generator's as fast as it goes, the third the same generator paced to a stated rate, \
and the target in section 5 is judged on the third (it says why). \
\n\n**trafgen.** A lab of three network namespaces on a bridge (`mitigator_tests::Lab`): the protected host \
203.0.113.10 with a TCP echo service on port 8080, an attacker 203.0.113.66 and a client \
203.0.113.20. trafgen (netsniff-ng) floods the host with 64-byte UDP frames to port 9 from the \
attacker (`timeout -s INT … taskset -c 1 trafgen --dev eth0 --cpus 1`), pinned to CPU 1. After \
1 s of warm-up, the client does TCP transactions for the measurement window, each on a fresh \
connection (connect, 64 bytes each way, close; 500 ms timeouts), as fast as it can \
(`mitigator_tests::traffic::tcp_rate`). Counters are read at both ends of the window: the host's \
eth0 RX packets (`ip -s link`), and the filter's own drop counter (the daemon's per-target XDP \
counters through `mitigator status --json`; the nft rule's counter). Cases: no filter; an \
nftables rule `ip daddr 203.0.113.10 meta l4proto udp counter drop` in a `netdev` table's \
`ingress` hook on the host's eth0; `mitigator run` on the host (attach_mode generic, then \
native) with `mitigator protect 203.0.113.10 --proto udp --countermeasure drop-all`. The machine \
has 2 cores: trafgen takes one; veth transmits run the receiver's path on the sending CPU, so the \
flood's receive cost is largely paid on trafgen's core, and the client, the echo server and the \
daemon share the other. trafgen sends as fast as it can, so a cheaper receive path lets it send \
more: the offered load differs between cases (sent pps), and transactions/s should be read \
together with it. Nothing is lost between the bridge and the host's veth in these runs unless the \
\"lost\" column says so.";

/// The live-frames generator's method, with what xdp-trafficgen answered.
fn flood_xdp_method(xdp_trafficgen: &str) -> String {
    format!(
        "**XDP live frames.** The same host has a second interface, eth1 (192.0.2.10), joined by a veth \
pair of its own, with no bridge, to an upstream namespace (192.0.2.20 and 192.0.2.66), which holds both \
the flood's generator and the legitimate client: as on a NIC, the flood and the client's packets share \
the host's eth1 receive ring and its NAPI poll. The generator is what xdp-trafficgen (xdp-tools) does, \
in `xtask/src/bench/xdpgen.rs`: an XDP program that redirects every frame out of the upstream's eth1 \
(`bpf_redirect`), run by BPF_PROG_TEST_RUN with `BPF_F_TEST_XDP_LIVE_FRAMES` ({} frames a call, in a \
loop, on a thread pinned to CPU 1 as trafgen is; each call also costs about 24 ms of setup and teardown \
whatever its size, during which nothing is sent, so the flood is on about 90% of the time); the veth driver's ndo_xdp_xmit puts each frame on the \
host eth1's ring as an xdp_frame, so a native program on eth1 sees it before any skb exists, as a NIC \
driver's program does, while the other cases get it as an skb built from that frame. The frame is the \
same 64-byte UDP datagram to port 9 (from 192.0.2.66 to 192.0.2.10). A veth accepts xdp_frames only \
while its NAPI is on (a native program attached, or GRO): GRO is on on the host's eth1 in all four cases \
(`ethtool -K eth1 gro on`), so the cases differ only by the filter; TSO is off on the upstream's eth1, \
since with it on the veth driver would send the client's TCP segments to the backlog instead of the \
ring (attaching a native program turns the peer's TSO off anyway). The host eth1's ring is polled by a \
NAPI kernel thread (threaded NAPI, `/sys/class/net/eth1/threaded`) pinned to CPU 0: without it the veth \
polls in softirq on the CPU that queued the frames, the generator's, so the host's receive would be paid \
by the attacker's CPU; here CPU 1 plays the attacker's machine and CPU 0 the host's (receive, client, \
echo server and daemon). Sent is the upstream eth1's TX \
packets plus TX dropped (the veth counts there the frames its peer took and those ndo_xdp_xmit could not \
queue; the client's few thousand packets/s are in it too); lost is the host eth1's RX dropped (the \
frames ndo_xdp_xmit could not queue: ring full); \
host rx counts every frame the eth1 ring took, dropped by XDP or not; the run stops with an error if \
fewer than half the sent frames reach the host's eth1. The daemon attaches to eth0 and eth1 and \
protects both addresses; the nftables rule is on eth1, for 192.0.2.10. The client is the same \
(`tcp_rate`, fresh connection per transaction), from the upstream namespace to 192.0.2.10.\n\n\
xdp-trafficgen itself (Debian's xdp-tools 1.3.1) does not start on this kernel; asked for a \
flood out of the upstream's eth1 it answered: `{}`. Its BPF object holds programs for the \
`xdp_redirect_map` and `xdp_redirect_map_err` tracepoints, which Linux removed in mid-2025 \
(commit a9a5f41b04dd, \"xdp: Remove unused events xdp_redirect_map and xdp_redirect_map_err\"; this \
kernel's /sys/kernel/tracing/events/xdp has xdp_redirect and xdp_redirect_err only), so libbpf cannot \
resolve their BTF ids and the whole object fails to load. The generator here uses the \
same kernel facility without those tracepoints.",
        xdpgen::REPEAT,
        xdp_trafficgen.replace('`', "'")
    )
}

const SYNPROXY_METHOD: &str = "\
**The SYN proxy's cost** (issue 13). A SYN answered from XDP is rewritten in place into its \
SYN-ACK, and a repeated BPF_PROG_TEST_RUN does not restore the frame between runs (the second run \
would see a SYN-ACK), so these cases are measured with single runs (`repeat` 1): `bench_dataplane \
synproxy N` loads our program with one target under the default profile (its countermeasures \
compiled by the daemon's own compiler, `syn-proxy` among them), opens a real TCP listener in its \
network namespace (the program looks the listener up), and runs each packet N times, one test run \
each: a SYN with Linux's options to the listener's port (`syn-answered`, XDP_TX), an ACK of no \
connection with a wrong cookie to the same port (`ack-bad-cookie`, dropped after the socket \
lookup and the cookie check), and an ACK to an address outside the target (`no-match-single`). A \
single run's duration includes the harness's own per-call cost (timer reads, setup), which a \
repeated run spreads over a million runs; measured the same way, `no-match-single` carries the \
same overhead, so the difference to it is the program's own extra cost, and adding table 1's \
no-match cost for the same rule-set shape (`no-match-1-target`, repeated runs) gives the \
per-packet estimate that the targets judge. Table 1's drop by scope, ours and xdp-filter's \
simplest mode, is shown beside for comparison. Medians and minima are over the N runs; N is 200 \
per round asked (`--rounds`).";

/// The attack-shapes method: generator, filters, counters, and why the
/// floods are not live frames.
fn shapes_method(f: &flood::Flood) -> String {
    let sh = &f.shapes;
    let live_error = f.rows.iter().find_map(|m| m.error.clone()).map(|e| e.replace('`', "'"));
    let why_not_live = match &live_error {
        Some(e) => format!(
            "The issue asks for these floods as XDP frames from the live-frames generator, at a stated rate. On this \
machine's current kernel that generator's test run fails (the live-frames rows of the tables above: `{e}`); it \
worked on an earlier build of the same kernel version. What was tried: the same failure from the root network \
namespace, for frames of 60 to 1,500 bytes, with a program that only returns XDP_DROP or XDP_PASS (so not the \
redirect's target), and with or without an `xdp_md` context (`ingress_ifindex`); plain test runs of the same \
programs succeed. One difference found: this process's capability sets lack CAP_SYS_RESOURCE (CapEff \
000001fffeffffff, bit 24 clear); whether the kernel's live-frames path needs it was not confirmed (ftrace's \
function list is not readable here, so the failing call could not be traced). So the floods are trafgen's skbs, \
as fast as trafgen goes rather than at a stated rate."
        ),
        None => "The live-frames generator ran in this run (tables above); these floods are still trafgen's, which \
randomizes the source per packet, as fast as it goes."
            .into(),
    };
    let rate = match (sh.syn_sent_pps(), sh.kernel_cookies_pps()) {
        (Some(a), Some(b)) if b > 0.0 => format!(
            "In this run the SYN flood reached {a:.0} pps, and the kernel's own SYN cookies (no filter) answered {b:.0} \
SYNs/s (TcpExtSyncookiesSent over the window): the flood is {:.1}× that{}.",
            a / b,
            if a >= 2.0 * b { "" } else { ", short of the twice the issue asks for: trafgen on one shared core does not reach it" }
        ),
        (Some(a), _) => format!("In this run the SYN flood reached {a:.0} pps; the kernel sent no SYN cookies of its own."),
        _ => "The no-filter SYN-flood case did not run.".into(),
    };
    format!(
        "### Attack shapes (issue 13)\n\n\
The same kind of lab as the spoofed-SYN table (protected host 203.0.113.10 with a TCP echo service on port {PORT} \
and a UDP socket on the same port, read by a thread; a client namespace with 50 addresses; an attacker; the answers \
to spoofed sources go to a gateway on the bridge that drops them). Three attacks at the listening port, each from a \
random source per packet: trafgen (netsniff-ng) with one packet template whose IPv4 source, source port and sequence \
(and acknowledgement) numbers are `drnd()` (drawn per packet; trafgen recomputes the IPv4 and TCP/UDP checksums \
per packet), a TCP SYN (window 64240, no options), a 60-byte UDP datagram, a TCP ACK, sent from the attacker's \
eth0 through the bridge into the host's eth0 (`taskset -c 1 trafgen --cpus 1`, unpaced). {why_not_live} {rate}\n\n\
Filters, each installed once and run through the four cases (no flood first, then SYN, UDP, ACK, 0.5 s apart): \
**no filter** (the kernel's defaults: `tcp_syncookies=1`, SYN cookies once the listener's SYN queue is full); \
**nftables**, its best equivalent: the `synproxy` recipe of nft(8) for the TCP port (in an `ip` table, SYNs to the \
port `notrack` in raw prerouting; in input, untracked and invalid segments to `synproxy mss 1460 wscale 7 timestamp \
sack-perm`, other invalid ones dropped; `nf_conntrack_tcp_loose` 0, as the daemon sets it), which answers SYNs with \
the kernel's cookies without a socket and drops ACKs whose cookie fails, and for UDP `limit rate over 50000/second \
burst 100000 packets drop` in the netdev ingress hook on eth0 (the default profile's aggregate); **mitigator**: \
`mitigator run` (attach_mode auto: generic XDP on a veth) and `mitigator protect 203.0.113.10`, the default profile \
(`syn-proxy`, `aggregate-limit:pps=50k,burst=100k,proto=udp`, ...). After 1 s of flood, the client does TCP \
transactions for the window, each on a fresh connection from the next of its 50 addresses (connect, 64 bytes each \
way, close; 8 at a time, 2 s timeouts), as the spoofed-SYN table's. \"vs no flood\" divides by the same filter's \
no-flood row of this run, \"vs no filter\" by the same attack's no-filter row. The stack columns are the host \
namespace's own counters (`nstat`) over the window: SyncookiesSent, the SYNs the kernel itself answered with a \
cookie; SyncookiesRecv / Failed, cookie ACKs it accepted / rejected; ListenDrops. The XDP column is the daemon's \
per-reason counters: SYNs answered with a cookie from XDP (`syn-cookie`), segments dropped by the SYN proxy (no \
socket, no valid cookie), datagrams dropped by the aggregate limit. Flood pps is the attacker's eth0 TX (trafgen \
alone sends there); lost is the bridge port's TX dropped into the host.",
        PORT = 8080
    )
}

/// How the paced flood is made and how its rate was chosen.
fn flood_paced_method(p: &flood::Paced) -> String {
    format!(
        "**Paced live frames.** Unpaced, the generator offers several times what any filter here takes off \
the host eth1's 256-frame ring, so the ring stays full and legitimate packets are lost at it whatever the \
filter. The third table runs the same four cases with the generator paced: its program reads the clock \
(`bpf_ktime_get_ns`) and keeps the time the next frame is due in global data; a run that reaches it \
redirects the frame and moves it on by 1e9/rate ns, any other run answers XDP_DROP (in live-frames mode \
that only recycles the page), so the test run's loop is a busy-wait that emits one frame per interval. \
After more than {} intervals without a send (the gap between two calls, a preemption) it starts afresh \
from the current time rather than catching up in a burst. Since dropped runs count toward `repeat` too, \
each call's `repeat` is sized from the last call's duration so that a call lasts about 1 s, and the 24 ms \
between calls costs about 2.5% of the rate. Frames still leave in small groups: the kernel flushes \
redirected frames to the veth after each batch of 64 runs. The rate rule: twice what the nftables rule \
dropped per second (its counter) under the unpaced flood of the same run, that is an attack twice what \
nftables can absorb, the same rate for all four filters; `--flood-pps N` sets it instead. This run: {:.0} \
frames/s requested ({}); \"sent\" is what the generator achieved, measured as in the second table.",
        xdpgen::BURST,
        p.pps,
        p.rule()
    )
}

#[allow(clippy::too_many_arguments)]
fn document(
    o: &Opts,
    machine: &str,
    pp: Option<&perpacket::PerPacket>,
    sc: Option<&scaling::Scaling>,
    fl: Option<&flood::Flood>,
    cp: Option<&control::Control>,
    targets: &[targets::Target],
    ttable: &Table,
    secs: u64,
) -> String {
    let section = |t: Option<&Table>, method: &str| match t {
        Some(t) => format!("{method}\n\n{}\nCSV: `benchmarks/{}.csv`\n", t.markdown(), t.stem),
        None => "Not run in this invocation.\n".to_string(),
    };
    let mut d = String::new();
    d += "# Benchmarks\n\nGenerated by `cargo xtask bench` (issue #6); every figure below comes from one run, \
          baselines measured side by side in the same run. Regenerate with `cargo xtask bench` (as root, \
          3 to 6 minutes after the builds, with the machine shared; `--help` for options). The machine is shared with other work while this runs, \
          so figures are noisy: compare columns of one run, not runs.\n\n";
    d += &format!("## Machine\n\n{machine}- run: {} rounds of {} repetitions per figure, flood window {} s, whole bench {} s\n\n", o.rounds, o.repeat, o.seconds, secs);
    d += "## 1. Cost per packet (BPF_PROG_TEST_RUN)\n\n";
    d += &section(pp.map(|p| &p.table), PER_PACKET_METHOD);
    if let Some(p) = pp {
        d += &match &p.synproxy {
            Ok(s) => format!("\n{SYNPROXY_METHOD}\n\n{}\nCSV: `benchmarks/{}.csv`\n", s.table.markdown(), s.table.stem),
            Err(e) => format!("\n{SYNPROXY_METHOD}\n\nNot measured in this run: {}\n", e.replace('`', "'")),
        };
    }
    d += "\n## 2. Scaling with the number of entries\n\n";
    d += &section(sc.map(|s| &s.table), SCALING_METHOD);
    d += "\n## 3. End to end: floods over veth\n\n";
    d += &match fl {
        Some(f) => {
            let tables: String = f
                .tables
                .iter()
                .filter(|t| t.stem != f.shapes.table.stem)
                .map(|t| format!("{}\nCSV: `benchmarks/{}.csv`\n\n", t.markdown(), t.stem))
                .collect();
            let paced = match &f.paced {
                Ok(p) => flood_paced_method(p),
                Err(e) => format!("**Paced live frames.** Not run: {}", e.replace('`', "'")),
            };
            format!(
                "{FLOOD_METHOD}\n\n{}\n\n{paced}\n\n{}\n\n{}\n\n{}\nCSV: `benchmarks/{}.csv`\n",
                flood_xdp_method(&f.xdp_trafficgen),
                tables.trim_end(),
                shapes_method(f),
                f.shapes.table.markdown(),
                f.shapes.table.stem
            )
        }
        None => "Not run in this invocation.\n".to_string(),
    };
    d += "\n## 4. Control plane\n\n";
    d += &match cp {
        Some(c) => format!("{}\n\n{}\nCSV: `benchmarks/{}.csv`; every latency sample: `benchmarks/{}.csv`\n", control::method(), c.table.markdown(), c.table.stem, c.samples.stem),
        None => "Not run in this invocation.\n".to_string(),
    };
    d += "\n## 5. Targets\n\n";
    d += &format!("{}\nCSV: `benchmarks/{}.csv`\n", ttable.markdown(), ttable.stem);
    for t in targets.iter().filter(|t| t.met == Some(false)) {
        d += &format!("\n**Not met: {}.** {}\n", t.name, t.if_missed);
    }
    d
}
