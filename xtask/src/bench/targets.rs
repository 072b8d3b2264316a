//! Table 5: the project's performance targets, each met or not with the
//! figures it was judged on, and (when missed) why and what would reach it.

use super::{
    control::{self, Control},
    flood::{
        shapes::{self, Shape},
        Filter, Flood, Generator,
    },
    perpacket::PerPacket,
    report::Table,
    scaling::Scaling,
    synproxy_cost,
};

pub struct Target {
    pub name: &'static str,
    /// None: not judged in this run (its section did not run).
    pub met: Option<bool>,
    pub figures: String,
    /// Why it can miss and what would reach it; printed when missed.
    pub if_missed: &'static str,
}

fn med(pp: &PerPacket, case: &str, col: &str) -> Option<u64> {
    pp.samples.get(case).and_then(|s| s.get(col)).map(|s| s.median())
}

/// `col − base` for `case`, per round, median (`Samples::paired_median`).
fn paired(pp: &PerPacket, case: &str, col: &str, base: &str) -> Option<i64> {
    let s = pp.samples.get(case)?;
    Some(s.get(col)?.paired_median(s.get(base)?))
}

fn no_match(pp: Option<&PerPacket>) -> Target {
    let mut t = Target {
        name: "no-match path within 10 ns/packet of the XDP_PASS floor",
        met: None,
        figures: "per-packet section not run".into(),
        if_missed: "A packet that matches nothing pays for parsing Ethernet and IP (the L4 header is \
            read only for a target's packets or while an ACL is installed), one CONFIG array lookup \
            (generation, flags and epoch in one word), with targets a probe of the per-CPU \
            destination cache (an inlined array lookup and a compare), and the interface counters \
            (a slot table and a per-CPU array, both inlined array lookups). A destination the \
            cache does not hold costs the host-route hash lookup (about 25-30 ns: the \
            no-match-1-target-uncached row). If this is missed, compare no-match-empty with the \
            floor first: that gap is the parse and the counters.",
    };
    let Some(pp) = pp else { return t };
    let (Some(floor), Some(empty), Some(one), Some(d0), Some(d1)) = (
        med(pp, "no-match-empty", "floor"),
        med(pp, "no-match-empty", "ours"),
        med(pp, "no-match-1-target", "ours"),
        paired(pp, "no-match-empty", "ours", "floor"),
        paired(pp, "no-match-1-target", "ours", "floor"),
    ) else {
        return t;
    };
    t.met = Some(d0 <= 10 && d1 <= 10);
    let uncached = paired(pp, "no-match-1-target-uncached", "ours", "floor")
        .map(|u| format!("; a destination the cache does not hold (cache off): +{u}"))
        .unwrap_or_default();
    t.figures = format!(
        "over the floor, per round (median): no match with empty rules +{d0} ns; with 1 target elsewhere, through the destination cache, +{d1} ns{uncached}; medians: floor {floor} ns, empty rules {empty} ns, 1 target {one} ns"
    );
    t
}

fn vs_xdp_filter(pp: Option<&PerPacket>, case: &'static str, name: &'static str, if_missed: &'static str) -> Target {
    let mut t = Target { name, met: None, figures: "per-packet section not run".into(), if_missed };
    let Some(pp) = pp else { return t };
    let (Some(ours), Some(xf), Some(d)) = (med(pp, case, "ours"), med(pp, case, "xdp-filter-ip"), paired(pp, case, "ours", "xdp-filter-ip"))
    else {
        return t;
    };
    let prog = pp.xdp_filter_progs.get("xdp-filter-ip").cloned().unwrap_or_default();
    t.met = Some(d <= 0);
    let uncached = med(pp, &format!("{case}-uncached"), "ours")
        .map(|u| format!("; ours with the destination cache off (every packet a cache miss) {u} ns"))
        .unwrap_or_default();
    t.figures = format!(
        "ours − xdp-filter {prog} (its simplest mode: IP addresses only), same packet, per round (median): {d:+} ns; medians: ours {ours} ns, xdp-filter {xf} ns{uncached}"
    );
    t
}

fn host_routes(sc: Option<&Scaling>) -> Target {
    let mut t = Target {
        name: "host routes 1 → 1M: cost per packet grows < 2×",
        met: None,
        figures: "scaling section not run".into(),
        if_missed: "Judged with the destination cache off (the cache would hide the table's size): a \
            hash lookup is O(1) but its bucket and element leave the CPU caches as the table grows; \
            BPF_PROG_TEST_RUN repeats one packet, so it measures the warm-cache case, and a miss here \
            points at the map's preallocation or hashing rather than at our code.",
    };
    let Some(sc) = sc else { return t };
    let (Some((ca, a)), Some((cb, b))) = (sc.ns("host-/32", 1), sc.ns("host-/32", 1_000_000)) else { return t };
    let ratio = b as f64 / a.max(1) as f64;
    t.met = Some(ratio < 2.0);
    t.figures = format!(
        "destination cache off: 1 host route {a} ns, 1,000,000 host routes {b} ns: {ratio:.2}× (cache on: {ca} and {cb} ns)"
    );
    t
}

/// Judged on the paced live-frames flood: the target is about XDP dropping
/// a flood before the kernel allocates anything for it, which is what a
/// NIC's driver does and what xdp_frames arriving on a veth model; and the
/// flood must be one a filter can win against, at a rate set by a rule (twice
/// what nftables clears) rather than as fast as the generator goes, which
/// overflows the host's ring whatever the filter. The unpaced and trafgen
/// ratios are shown beside, not judged.
fn flood(fl: Option<&Flood>) -> Target {
    let mut t = Target {
        name: "under flood, legitimate TCP transactions with XDP native ≥ 5× those with nftables (judged on the paced XDP-frame flood; unpaced and trafgen beside)",
        met: None,
        figures: "flood section not run".into(),
        if_missed: FLOOD_MISSED,
    };
    let Some(fl) = fl else { return t };
    let ratio = |g| match (fl.tps(g, Filter::Native), fl.tps(g, Filter::Nftables)) {
        (Some(n), Some(f)) => Some((n, f)),
        _ => None,
    };
    let paced = match &fl.paced {
        Ok(p) => p,
        Err(e) => {
            t.figures = format!("not judged: the paced live-frames flood could not run ({e})");
            return t;
        }
    };
    let Some((native, nft)) = ratio(Generator::XdpPaced) else {
        let why = fl.rows.iter().find_map(|m| (m.generator == Generator::XdpPaced).then_some(m.error.as_deref()).flatten());
        t.figures = format!("not judged: {}", why.unwrap_or("the paced cases did not run"));
        return t;
    };
    t.met = Some(native > 0.0 && native >= 5.0 * nft);
    let beside = |g, what| ratio(g).map(|(n, f)| format!("; {what}: native {n:.0}, nftables {f:.0}: {}", times(n, f))).unwrap_or_default();
    // How fast each took the unpaced flood off the ring: the filters'
    // capacities, which the paced rate is measured against.
    let rx = |f| fl.rows.iter().find(|m| m.generator == Generator::XdpFrames && m.filter == f).and_then(|m| m.dropped_pps).unwrap_or(0.0);
    t.figures = format!(
        "XDP frames paced at {:.0} pps ({}): native {native:.0} transactions/s, nftables {nft:.0} transactions/s: {} (dropped/s under the unpaced flood: native {:.0}, nftables {:.0}){}{}",
        paced.pps,
        paced.rule(),
        times(native, nft),
        rx(Filter::Native),
        rx(Filter::Nftables),
        beside(Generator::XdpFrames, "unpaced XDP frames"),
        beside(Generator::Trafgen, "trafgen (skbs over the bridge)"),
    );
    t
}

/// `a` as a multiple of `b`; none when `b` served nothing.
fn times(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "no ratio: nftables completed none".into()
    }
}

const FLOOD_MISSED: &str = "Judged on the paced XDP-frame flood, whose frames reach the host's native \
    program before any skb exists, as a NIC's would, at twice what the nftables rule dropped under the unpaced \
    flood: by design more than nftables can take, and less than native XDP took off the ring unpaced. \
    Unpaced, the generator alone on CPU 1 offers several times what any filter takes off the host eth1's \
    256-frame veth ring, so the ring is full in all four cases and their transactions/s are noise; that is \
    why the paced table is the one judged. Where a miss comes from shows in the paced table: (1) \"sent\" \
    below \"requested\": the generator did not hold the rate (it busy-waits on CPU 1, which it shares with \
    the client and with the work of handing frames to the veth, and skips frames rather than bursting when \
    it falls 64 intervals behind); (2) \"lost\" well above zero with native XDP although the rate is below \
    what it dropped unpaced: the ring overflows at moments though the average fits. Frames arrive in groups \
    (one flush per 64 program runs), and the ring is polled by an ordinary kernel thread on CPU 0, which \
    shares that CPU with the client, the echo server and the daemon and sleeps whenever the ring is empty, \
    where a NIC's interrupt would preempt them (not verified here: a hypothesis). The client's segments share \
    the ring and are lost with the flood's, and each loss costs TCP a retransmission timeout (200 ms at \
    least), so a few percent lost already divides transactions/s. What would show the 5× if it is there: \
    a receive path that keeps up at this rate without losing at the ring (a NIC with a ring per CPU, RSS, \
    whose interrupts preempt), on hardware rather than two shared virtual cores.";

fn request_to_drop(cp: Option<&Control>) -> Target {
    let mut t = Target {
        name: "DOTS mitigation request → first dropped packet p99 < 20 ms (loopback/lab)",
        met: None,
        figures: "control section not run".into(),
        if_missed: REQUEST_TO_DROP_MISSED,
    };
    let Some(cp) = cp else { return t };
    let d = control::drops(&cp.latency);
    let (p50, p99) = (control::pct(&d, 0.5), control::pct(&d, 0.99));
    t.met = Some(p99 < 20_000);
    t.figures = format!("p50 {:.2} ms, p99 {:.2} ms over {} requests", control::ms(p50), control::ms(p99), d.len());
    t
}

fn sessions_memory(cp: Option<&Control>) -> Target {
    let mut t = Target {
        name: "10,000 idle DOTS sessions < 100 MiB",
        met: None,
        figures: "control section not run".into(),
        if_missed: SESSIONS_MISSED,
    };
    let Some(cp) = cp else { return t };
    let h = &cp.memory.ours;
    let mib = h.after.rss_kib as f64 / 1024.0;
    // The whole daemon's RSS with the sessions open, all of them open, and
    // all of them still answering afterwards (sessions, not just memory).
    t.met = Some(mib < 100.0 && h.opened == h.wanted && h.alive == h.opened);
    let floor = cp.memory.libcoap.as_ref().map(|l| format!("; libcoap coap-server-openssl, same sessions: {:.0} bytes/session", l.per_session())).unwrap_or_default();
    t.figures = format!(
        "daemon RSS {mib:.1} MiB with {} sessions open, {} of them answering a CoAP ping afterwards ({:.1} MiB before them, {:.0} bytes/session{floor})",
        h.opened,
        h.alive,
        h.before.rss_kib as f64 / 1024.0,
        h.per_session()
    );
    t
}

const REQUEST_TO_DROP_MISSED: &str = "The rules reach the maps only after the registry's single owner \
    thread has stored the request (redb commits on disk), compiled the whole rule set (every protection, so \
    the cost grows with the number of mitigations) and written the inactive generation; requests queue behind \
    each other there, and a change less than 20 ms after the previous flip waits for the grace period. On 2 \
    shared cores the tail is also scheduling. What would reach it: apply several queued requests in one \
    generation flip and compile incrementally (only the changed target).";

const SESSIONS_MISSED: &str = "An OpenSSL `SSL` per DTLS connection costs about 42-45 KB when idle: \
    libcoap's example server and this bench's own client process (one shared context, \
    SSL_MODE_RELEASE_BUFFERS) hold the same sessions at that cost (the table), 400 MiB for 10,000. The \
    daemon keeps none: OpenSSL runs the handshake, then the `SSL` is freed and the established session runs \
    on our own record layer (`transport/dtls_record.rs`: keys, epochs, sequence numbers, replay window), \
    with no peer task, no per-peer queue and no receive buffer of its own. If this target is missed, look \
    at what else grew with the sessions: the signal layer's per-session task and state, handshakes still \
    in progress when the reading was taken, and sessions that did not answer the ping (the table).";

/// The SYN proxy's per-packet cost (table 1b): (case − no-match-single,
/// single runs) + table 1's no-match cost.
fn synproxy_cost(pp: Option<&PerPacket>, case: &'static str, name: &'static str, if_missed: &'static str) -> Target {
    let mut t = Target { name, met: None, figures: "per-packet section not run".into(), if_missed };
    let Some(pp) = pp else { return t };
    let c = match &pp.synproxy {
        Ok(c) => c,
        Err(e) => {
            t.figures = format!("not judged: bench_dataplane synproxy failed: {e}");
            return t;
        }
    };
    let (Some(est), Some(extra), Some(s), Some(base), Some(nm), Some(limit)) =
        (c.estimate(case), c.extra(case), c.cases.get(case), c.cases.get(synproxy_cost::BASE), c.no_match, synproxy_cost::target(case))
    else {
        return t;
    };
    t.met = Some(est <= limit);
    let xf = c.drop.as_ref().map(|(_, xf, prog)| format!("; xdp-filter {prog}'s simplest drop: {xf} ns")).unwrap_or_default();
    t.figures = format!(
        "{est} ns/packet = {extra:+} ns over no-match-single in single test runs (medians {} vs {} ns, {} runs each) + table 1's no-match-1-target {nm} ns{xf}",
        s.median,
        base.median,
        c.runs,
    );
    t
}

const SYN_ANSWERED_MISSED: &str = "The SYN answered from XDP does far more than a drop: after the \
    target's lookup and checks it looks up a listening socket (`bpf_skc_lookup_tcp`), has the kernel \
    compute the cookie (`bpf_tcp_raw_gen_syncookie_ipv4`: a SipHash of the 4-tuple and a counter, and \
    the MSS table), rewrites the frame into the SYN-ACK (addresses and ports swapped, options \
    rebuilt: MSS, SACK, timestamps, window scale) with both checksums recomputed, and returns \
    XDP_TX. The single-run method adds noise of its own (one run per syscall, the harness's cost \
    cancelled by subtracting a no-match single run, which is only as good as that cost is \
    constant). What would bring it down: skip the socket lookup for SYNs (the target's port list \
    already says which ports are proxied) and compute the TCP checksum incrementally over the \
    rebuilt options; but the cookie helper's own cost stays.";

const COOKIE_CHECK_MISSED: &str = "An ACK of no connection pays a socket lookup for its 4-tuple \
    (`bpf_skc_lookup_tcp`: the established hash, then the listener) and, with none found, the \
    kernel's cookie check (`bpf_tcp_raw_check_syncookie_ipv4`: the same SipHash); a drop by scope \
    pays neither. The lookup is what lets the ACKs of real connections through, so it cannot go; \
    checking the cookie first (a pure computation) and looking up only the ACKs that fail would \
    not help a flood, whose ACKs all fail.";

/// Random-source SYN flood: transactions with mitigator's default profile
/// against the same run's no-flood figure and against no filter.
fn shapes_syn(fl: Option<&Flood>) -> Target {
    let mut t = Target {
        name: "random-source SYN flood: TCP transactions/s with syn-proxy ≥ 80% of the same run's no-flood figure and ≥ 5× no filter",
        met: None,
        figures: "flood section not run".into(),
        if_missed: SHAPES_MISSED,
    };
    let Some(sh) = fl.map(|f| &f.shapes) else { return t };
    let (Some(syn), Some(quiet), Some(none)) =
        (sh.tps(Shape::Syn, shapes::Filter::Mitigator), sh.tps(Shape::NoFlood, shapes::Filter::Mitigator), sh.tps(Shape::Syn, shapes::Filter::None))
    else {
        t.figures = format!("not judged: a case did not run ({})", shape_errors(sh));
        return t;
    };
    t.met = Some(syn > 0.0 && syn >= 0.8 * quiet && syn >= 5.0 * none);
    t.figures = format!(
        "under a {} pps SYN flood (trafgen; the kernel's own SYN cookies answered {} SYNs/s with no filter: {}): mitigator {syn:.0} transactions/s, {} of its {quiet:.0} without a flood; no filter {none:.0}: {}{}",
        opt0(sh.syn_sent_pps()),
        opt0(sh.kernel_cookies_pps()),
        match (sh.syn_sent_pps(), sh.kernel_cookies_pps()) {
            (Some(a), Some(b)) if b > 0.0 => format!("the flood is {:.1}× that", a / b),
            _ => "no ratio".into(),
        },
        pct(syn, quiet),
        times_of(syn, none, "no filter"),
        sh.tps(Shape::Syn, shapes::Filter::Nftables).map(|n| format!("; nftables synproxy {n:.0}")).unwrap_or_default(),
    );
    t
}

/// Random-source UDP flood at the listening port: the aggregate limit.
fn shapes_udp(fl: Option<&Flood>) -> Target {
    let mut t = Target {
        name: "random-source UDP flood at a listening port with an aggregate limit: TCP transactions/s ≥ 5× no filter",
        met: None,
        figures: "flood section not run".into(),
        if_missed: SHAPES_MISSED,
    };
    let Some(sh) = fl.map(|f| &f.shapes) else { return t };
    let (Some(ours), Some(none)) = (sh.tps(Shape::Udp, shapes::Filter::Mitigator), sh.tps(Shape::Udp, shapes::Filter::None)) else {
        t.figures = format!("not judged: a case did not run ({})", shape_errors(sh));
        return t;
    };
    t.met = Some(ours > 0.0 && ours >= 5.0 * none);
    let sent = sh.row(Shape::Udp, shapes::Filter::None).map(|r| r.sent_pps);
    t.figures = format!(
        "under a {} pps UDP flood (trafgen): mitigator {ours:.0} transactions/s, no filter {none:.0}: {}{}",
        opt0(sent),
        times_of(ours, none, "no filter"),
        sh.tps(Shape::Udp, shapes::Filter::Nftables).map(|n| format!("; nftables limit {n:.0}")).unwrap_or_default(),
    );
    t
}

fn opt0(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.0}")).unwrap_or("?".into())
}

fn pct(a: f64, b: f64) -> String {
    if b > 0.0 { format!("{:.0}%", 100.0 * a / b) } else { "-".into() }
}

fn times_of(a: f64, b: f64, what: &str) -> String {
    if b > 0.0 { format!("{:.2}×", a / b) } else { format!("no ratio: {what} completed none") }
}

fn shape_errors(sh: &shapes::Shapes) -> String {
    let e: Vec<String> = sh.rows.iter().filter_map(|r| r.error.as_ref().map(|e| format!("{} / {}: {e}", r.shape.name(), r.filter.name()))).collect();
    if e.is_empty() { "no error recorded".into() } else { e.join("; ") }
}

const SHAPES_MISSED: &str = "The floods are trafgen's skbs through the lab's bridge, not xdp_frames \
    (the live-frames generator cannot run on this kernel, see section 3): every flood packet has \
    had an skb allocated, and crossed a veth and the bridge, before any filter runs, and generic \
    XDP (what `attach_mode` auto picks on a veth) runs after that. On 2 shared cores, trafgen's \
    CPU also pays most of that receive path (a veth transmit runs the receiver's path on the \
    sending CPU), and the clients, the echo server, the daemon and the host's softirqs share the \
    other. So the rows compare what each filter does with packets the host has already paid to \
    receive; where the SYN-flood figure falls short of 80% of no flood, look at the host rx and \
    the lost-at-the-bridge columns (the backlog overflowing drops the clients' packets with the \
    flood's, before XDP) before the filter; where no filter does well, the flood (at what trafgen \
    reaches) is within what the kernel's own SYN cookies absorb, and the 5× cannot show: compare \
    the flood rate with the kernel's SyncookiesSent per second in the no-filter row. A NIC \
    driver's native XDP on hardware, with a generator that reaches several times what the \
    kernel's cookies absorb, is what would show the difference. Where mitigator's (and nftables') \
    no-flood figure is itself far below no filter's, the difference is not the flood's: with \
    `syn-proxy` every legitimate connection is completed through nftables' `synproxy` (the \
    client's handshake answered with a cookie, then a second handshake to the listener), and the \
    \"counters' window\" running past the clients' window shows transactions that were still \
    waiting at its end (up to the 2 s timeout): a sign that some wait for a retransmission \
    (a hypothesis, not verified: the client's first data segment, sent right after its ACK, \
    arriving before that second handshake completes and dropped as invalid).";

pub fn evaluate(pp: Option<&PerPacket>, sc: Option<&Scaling>, fl: Option<&Flood>, cp: Option<&Control>) -> Vec<Target> {
    vec![
        no_match(pp),
        vs_xdp_filter(
            pp,
            "drop-scope",
            "drop by scope at least as fast as xdp-filter's simplest mode",
            "Our scope drop does what a DOTS mitigation scope needs and xdp-filter does not: after \
             parsing up to L4 and reading the generation, flags and epoch (one array lookup), it \
             resolves the destination through the per-CPU destination cache (or, on a miss, the \
             host-route hash lookup, about 25-30 ns: the -uncached row), reads the target's policy \
             (protocol bitmap, port ranges, countermeasure flags) and updates two per-CPU counters \
             (per target and reason, per interface; array lookups); xdp-filter's ip mode does \
             exact-match lookups of the source and destination addresses in a small per-CPU hash \
             and bumps one per-CPU counter. With no list and no ACL, a target's packet is first \
             seen by the no-match shortcut, which reads its destination and probes the cache; the \
             target id it finds is handed to the full path (`Pkt::hint`), which does not probe \
             again. Our program touches more memory per packet (the per-CPU scratch, the cache \
             entry, the policy, two counters) than xdp-filter's, and on these shared cores its \
             figure has moved by up to 20 ns between runs (and between loads of one build) while \
             xdp-filter's moved less: compare several runs before reading a miss as a regression. \
             What would widen the margin: fewer cache lines per packet (the counters of a target \
             and of the interface in one per-CPU record, the policy's hot fields beside the cache \
             entry).",
        ),
        vs_xdp_filter(
            pp,
            "drop-list",
            "drop by source drop-list at least as fast as xdp-filter's simplest mode",
            "/32 and /128 drop-list entries are in a hash map looked up first, shorter prefixes \
             in an LPM trie that is skipped when the generation has none; what remains is the \
             cost of one hash lookup of the source plus parsing and counting.",
        ),
        synproxy_cost(
            pp,
            "syn-answered",
            "SYN answered from XDP (SYN proxy) ≤ 150 ns/packet (BPF_PROG_TEST_RUN)",
            SYN_ANSWERED_MISSED,
        ),
        synproxy_cost(pp, "ack-bad-cookie", "cookie check of an ACK ≤ 100 ns/packet (BPF_PROG_TEST_RUN)", COOKIE_CHECK_MISSED),
        host_routes(sc),
        flood(fl),
        shapes_syn(fl),
        shapes_udp(fl),
        request_to_drop(cp),
        sessions_memory(cp),
    ]
}

pub fn table(ts: &[Target]) -> Table {
    let mut t = Table::new("targets", "Targets", &["target", "result", "figures"]);
    for x in ts {
        let r = match x.met {
            Some(true) => "met",
            Some(false) => "NOT MET",
            None => "not judged",
        };
        t.row(vec![x.name.into(), r.into(), x.figures.clone()]);
    }
    t
}
