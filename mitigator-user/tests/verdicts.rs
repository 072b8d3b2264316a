//! Verdict tests: crafted packets through BPF_PROG_TEST_RUN, asserting the
//! XDP action and the counters (TARGET_STATS of the target, IFACE_STATS
//! slot 0, reported as ifindex 0, where test runs are counted). Needs root (BPF). Each test opens
//! its own unpinned Dataplane, so tests run in parallel without sharing maps.

use ipnet::IpNet;
use mitigator::dataplane::{
    testpkt::{Ext, PacketBuilder, *},
    Dataplane, DataplaneOptions, RuleSet, TargetRule,
};
use mitigator_common::{
    policy_flags as pf, DropReason, IfaceStats, IfaceVerdict, Policy, PortRange, TargetStats, MAX_IPV6_EXT_HEADERS,
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

const SRC4: [u8; 4] = [192, 0, 2, 1];
const DST4: [u8; 4] = [198, 51, 100, 7];
const OTHER4: [u8; 4] = [203, 0, 113, 9];
const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
const ID: u32 = 7;

fn dp() -> Dataplane {
    Dataplane::open(&DataplaneOptions::default()).expect("open dataplane (root needed)")
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn policy(flags: u32, protos: &[u8], ports: &[(u16, u16)]) -> Policy {
    let mut p = Policy::empty();
    p.flags = flags | pf::ACTIVE;
    for &pr in protos {
        p.protos[(pr >> 6) as usize] |= 1 << (pr & 63);
    }
    for (i, &(lo, hi)) in ports.iter().enumerate() {
        p.ports[i] = PortRange { lo, hi };
    }
    p.n_ports = ports.len() as u32;
    p
}

const ALL_PROTOS: &[u8] = &[1, 6, 17, 58, 132, 136, 253];

/// One target (id 7) covering DST4/32 and DST6/128 (host routes) plus
/// 198.51.100.128/25 and 2001:db8:3::/48 (LPM).
fn one_target(p: Policy) -> RuleSet {
    RuleSet {
        targets: vec![TargetRule {
            id: ID,
            prefixes: vec![net("198.51.100.7/32"), net("2001:db8:2::7/128"), net("198.51.100.128/25"), net("2001:db8:3::/48")],
            policy: p,
        }],
        accept: vec![],
        drop: vec![],
        acl: vec![],
        guard: vec![],
    }
}

fn iface0(dp: &Dataplane) -> IfaceStats {
    dp.iface_stats().unwrap().into_iter().find(|(k, _)| *k == 0).map(|(_, s)| s).unwrap_or_default()
}

/// Asserts the interface counters: exactly `n` packets (and `bytes`) per
/// listed verdict, zero elsewhere.
fn assert_iface(dp: &Dataplane, expect: &[(IfaceVerdict, u64, u64)]) {
    let s = iface0(dp);
    for v in IfaceVerdict::ALL {
        let (p, b) = expect.iter().find(|e| e.0 == v).map(|e| (e.1, e.2)).unwrap_or((0, 0));
        assert_eq!(
            (s.verdicts[v as usize].packets, s.verdicts[v as usize].bytes),
            (p, b),
            "IFACE_STATS[0] {} (all: {s:?})",
            v.name()
        );
    }
}

/// Asserts a target's counters: `passed` and one drop reason.
fn assert_target(dp: &Dataplane, id: u32, passed: (u64, u64), dropped: &[(DropReason, u64, u64)]) {
    let s: TargetStats = dp.target_stats(id).unwrap();
    assert_eq!((s.passed.packets, s.passed.bytes), passed, "TARGET_STATS[{id}].passed ({s:?})");
    for r in DropReason::ALL {
        let (p, b) = dropped.iter().find(|e| e.0 == r).map(|e| (e.1, e.2)).unwrap_or((0, 0));
        assert_eq!((s.dropped[r as usize].packets, s.dropped[r as usize].bytes), (p, b), "TARGET_STATS[{id}].dropped[{}] ({s:?})", r.name());
    }
}

fn dp_with(rules: &RuleSet) -> Dataplane {
    let mut d = dp();
    d.apply(rules).unwrap();
    d
}

fn sub(a: &mut mitigator_common::Counter, b: &mitigator_common::Counter) {
    a.packets -= b.packets;
    a.bytes -= b.bytes;
}

/// Runs one packet expecting `action`, then checks that exactly this
/// packet was counted: under `verdict` on the interface and, for target
/// verdicts, in the target's `passed` or `dropped[drop]` (counter deltas,
/// so one Dataplane serves many cases: opening one costs ~0.7 s).
fn check(d: &Dataplane, pkt: &[u8], action: u32, verdict: IfaceVerdict, drop: Option<DropReason>) {
    let i0 = iface0(d);
    let t0 = d.target_stats(ID).unwrap();
    assert_eq!(d.test_run(pkt).unwrap(), action, "action for {verdict:?} packet {pkt:02x?}");
    let len = pkt.len() as u64;
    let mut i = iface0(d);
    for v in 0..i.verdicts.len() {
        sub(&mut i.verdicts[v], &i0.verdicts[v]);
    }
    for v in IfaceVerdict::ALL {
        let want = if v == verdict { (1, len) } else { (0, 0) };
        let c = i.verdicts[v as usize];
        assert_eq!((c.packets, c.bytes), want, "IFACE_STATS[0] {} delta for {pkt:02x?}", v.name());
    }
    let mut t = d.target_stats(ID).unwrap();
    sub(&mut t.passed, &t0.passed);
    for r in 0..t.dropped.len() {
        sub(&mut t.dropped[r], &t0.dropped[r]);
    }
    let passed = if verdict == IfaceVerdict::TargetPassed { (1, len) } else { (0, 0) };
    assert_eq!((t.passed.packets, t.passed.bytes), passed, "TARGET_STATS passed delta");
    for r in DropReason::ALL {
        let want = if verdict == IfaceVerdict::TargetDropped && drop == Some(r) { (1, len) } else { (0, 0) };
        let c = t.dropped[r as usize];
        assert_eq!((c.packets, c.bytes), want, "TARGET_STATS dropped[{}] delta", r.name());
    }
}

thread_local! {
    /// One Dataplane per rule set and test: libtest runs each test on its
    /// own thread, so tests stay isolated while their cases share a load.
    static CACHE: std::cell::RefCell<Vec<(RuleSet, Dataplane)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `check` on a Dataplane holding `rules`.
fn check_one(rules: &RuleSet, pkt: &[u8], action: u32, verdict: IfaceVerdict, drop: Option<DropReason>) {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if !c.iter().any(|(r, _)| r == rules) {
            c.push((rules.clone(), dp_with(rules)));
        }
        let d = &c.iter().find(|(r, _)| r == rules).unwrap().1;
        check(d, pkt, action, verdict, drop);
    })
}

fn drop_all() -> RuleSet {
    one_target(policy(pf::DROP_ALL, ALL_PROTOS, &[]))
}

// ------------------------------------------------------------- parsing ---

/// Every header combination reaches the target (DROP_ALL drops it).
#[test]
fn header_combinations_reach_target() {
    let mut cases: Vec<(&str, PacketBuilder)> = vec![];
    let l4s4: Vec<(&str, fn(PacketBuilder) -> PacketBuilder)> = vec![
        ("tcp", |b| b.tcp(1000, 80, TCP_ACK)),
        ("udp", |b| b.udp(1000, 53)),
        ("udplite", |b| b.udplite(1000, 53)),
        ("sctp", |b| b.sctp(1000, 3868)),
        ("icmp", |b| b.icmp(8, 0)),
        ("other", |b| b.proto(253)),
    ];
    for (n, f) in &l4s4 {
        cases.push((n, f(PacketBuilder::ipv4(SRC4, DST4))));
        cases.push((n, f(PacketBuilder::ipv4(SRC4, DST4).vlan(0x8100, 5))));
        cases.push((n, f(PacketBuilder::ipv4(SRC4, DST4).vlan(0x88A8, 5).vlan(0x8100, 6))));
        cases.push((n, f(PacketBuilder::ipv4(SRC4, DST4).ipv4_options(&[0x94, 4, 0, 0]))));
        cases.push((n, f(PacketBuilder::ipv4(SRC4, DST4).ipv4_options(&[1; 40]))));
        // LPM route.
        cases.push((n, f(PacketBuilder::ipv4(SRC4, [198, 51, 100, 200])).payload(100)));
        cases.push((n, f(PacketBuilder::ipv6(SRC6, DST6))));
        cases.push((n, f(PacketBuilder::ipv6(SRC6, DST6).vlan(0x8100, 5).vlan(0x8100, 6))));
        cases.push((n, f(PacketBuilder::ipv6(SRC6, DST6).ext(Ext::HopByHop).ext(Ext::Routing).ext(Ext::DestOpts { extra: 2 }))));
        cases.push((n, f(PacketBuilder::ipv6(SRC6, DST6).ext(Ext::Ah))));
        let mut lpm6 = DST6;
        lpm6[5] = 3;
        cases.push((n, f(PacketBuilder::ipv6(SRC6, lpm6)).payload(7)));
    }
    // ICMPv6 (icmp() on an IPv6 builder).
    cases.push(("icmpv6", PacketBuilder::ipv6(SRC6, DST6).icmp(128, 0)));
    for (name, b) in cases {
        let pkt = b.build();
        check_one(&drop_all(), &pkt, XDP_DROP, IfaceVerdict::TargetDropped, Some(DropReason::Scope));
        let _ = name;
    }
}

/// Cutting a packet anywhere before the end of its IP headers: PASS,
/// unparsed, no target counter touched. Cutting it inside its L4 header
/// (the packet goes to a drop-all target): DROP as malformed, which no
/// countermeasure could otherwise see. (The kernel refuses test runs
/// shorter than 14 bytes, so cuts start after the Ethernet header.)
#[test]
fn truncated_at_every_boundary() {
    let builders = vec![
        PacketBuilder::ipv4(SRC4, DST4).tcp(1, 80, TCP_SYN),
        PacketBuilder::ipv4(SRC4, DST4).vlan(0x88A8, 1).vlan(0x8100, 2).ipv4_options(&[1; 8]).udp(1, 53),
        PacketBuilder::ipv4(SRC4, DST4).sctp(1, 2),
        PacketBuilder::ipv4(SRC4, DST4).icmp(8, 0),
        PacketBuilder::ipv4(SRC4, DST4).fragment(0, true).udplite(1, 2),
        PacketBuilder::ipv6(SRC6, DST6).vlan(0x8100, 3).ext(Ext::HopByHop).ext(Ext::DestOpts { extra: 1 }).ext(Ext::Ah).tcp(1, 80, TCP_ACK),
        PacketBuilder::ipv6(SRC6, DST6).fragment(0, true).icmp(128, 0),
    ];
    let mut d = dp();
    d.apply(&drop_all()).unwrap();
    let (mut unparsed, mut malformed, mut whole) = ((0, 0), (0, 0), (0, 0));
    for b in builders {
        let (pkt, ends) = b.build_with_boundaries();
        let (l4_start, l4_end) = (ends[ends.len() - 2], ends[ends.len() - 1]);
        for cut in 14..l4_end {
            let (want, count) = if cut < l4_start { (XDP_PASS, &mut unparsed) } else { (XDP_DROP, &mut malformed) };
            assert_eq!(d.test_run(&pkt[..cut]).unwrap(), want, "cut at {cut} of {pkt:02x?} (boundaries {ends:?})");
            count.0 += 1;
            count.1 += cut as u64;
        }
        // The whole headers parse (and are dropped by the target's scope).
        assert_eq!(d.test_run(&pkt[..l4_end]).unwrap(), XDP_DROP);
        whole.0 += 1;
        whole.1 += l4_end as u64;
        let s = iface0(&d);
        assert_eq!(s.verdicts[IfaceVerdict::Unparsed as usize].packets, unparsed.0);
        assert_eq!(s.verdicts[IfaceVerdict::Unparsed as usize].bytes, unparsed.1);
    }
    assert_target(&d, ID, (0, 0), &[(DropReason::Malformed, malformed.0, malformed.1), (DropReason::Scope, whole.0, whole.1)]);
}

/// Headers are read only as far as a rule needs them. A packet to no
/// target, with no list and no ACL installed, is decided on its
/// destination alone once the destination cache knows it: a cut L4 header
/// or too many IPv6 extension headers make it no match (passed). A
/// target's packet is read in full: too many extension headers make it
/// unparsed (passed), a cut L4 header malformed (dropped). With a list
/// installed, every packet's IP header is read, and a drop-listed source
/// is dropped whatever its L4 header.
#[test]
fn headers_are_read_only_as_far_as_a_rule_needs() {
    let cut = |dst: [u8; 4], src: [u8; 4]| {
        let p = PacketBuilder::ipv4(src, dst).tcp(1, 80, TCP_SYN).build();
        p[..p.len() - 4].to_vec()
    };
    let other6 = [0x20, 0x01, 0x0d, 0xb8, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
    let deep = |dst: [u8; 16]| {
        let mut b = PacketBuilder::ipv6(SRC6, dst);
        for _ in 0..=MAX_IPV6_EXT_HEADERS {
            b = b.ext(Ext::DestOpts { extra: 0 });
        }
        b.udp(1, 53).build()
    };
    let rules = drop_all();
    check_one(&rules, &cut(DST4, SRC4), XDP_DROP, IfaceVerdict::TargetDropped, Some(DropReason::Malformed));
    check_one(&rules, &cut(OTHER4, SRC4), XDP_PASS, IfaceVerdict::NoMatch, None);
    check_one(&rules, &deep(DST6), XDP_PASS, IfaceVerdict::Unparsed, None);
    // Not yet known to this CPU's cache: read in full.
    pin_to_cpu0();
    check_one(&rules, &deep(other6), XDP_PASS, IfaceVerdict::Unparsed, None);
    check_one(&rules, &PacketBuilder::ipv6(SRC6, other6).udp(1, 53).build(), XDP_PASS, IfaceVerdict::NoMatch, None);
    check_one(&rules, &deep(other6), XDP_PASS, IfaceVerdict::NoMatch, None);
    let mut listed = drop_all();
    listed.drop = vec![net("192.0.2.66/32")];
    check_one(&listed, &cut(DST4, [192, 0, 2, 66]), XDP_DROP, IfaceVerdict::DropListed, None);
    check_one(&listed, &cut(OTHER4, SRC4), XDP_PASS, IfaceVerdict::NoMatch, None);
    check_one(&listed, &deep(other6), XDP_PASS, IfaceVerdict::Unparsed, None);
}

#[test]
fn non_ip_and_bad_headers_pass_unparsed() {
    let arp = {
        let mut p = PacketBuilder::ipv4(SRC4, DST4).udp(1, 2).build();
        p[12] = 0x08;
        p[13] = 0x06;
        p
    };
    check_one(&drop_all(), &arp, XDP_PASS, IfaceVerdict::Unparsed, None);
    // IHL < 5.
    let mut p = PacketBuilder::ipv4(SRC4, DST4).udp(1, 2).build();
    p[14] = 0x44;
    check_one(&drop_all(), &p, XDP_PASS, IfaceVerdict::Unparsed, None);
    // Wrong IP version.
    let mut p = PacketBuilder::ipv4(SRC4, DST4).udp(1, 2).build();
    p[14] = 0x65;
    check_one(&drop_all(), &p, XDP_PASS, IfaceVerdict::Unparsed, None);
    // TCP data offset < 5: a malformed L4 header, dropped by a target
    // with countermeasures, passed by one that only counts.
    let mut p = PacketBuilder::ipv4(SRC4, DST4).tcp(1, 2, TCP_ACK).build();
    p[14 + 20 + 12] = 0x40;
    check_one(&drop_all(), &p, XDP_DROP, IfaceVerdict::TargetDropped, Some(DropReason::Malformed));
    check_one(&one_target(policy(0, ALL_PROTOS, &[])), &p, XDP_PASS, IfaceVerdict::TargetPassed, None);
    // Three VLAN tags: the third is not looked into.
    let p = PacketBuilder::ipv4(SRC4, DST4).vlan(0x8100, 1).vlan(0x8100, 2).vlan(0x8100, 3).udp(1, 2).build();
    check_one(&drop_all(), &p, XDP_PASS, IfaceVerdict::Unparsed, None);
}

#[test]
fn ipv6_extension_header_limit() {
    let exts = [Ext::HopByHop, Ext::DestOpts { extra: 0 }, Ext::Routing, Ext::Ah, Ext::DestOpts { extra: 3 }, Ext::Fragment { offset: 0, more: true }, Ext::DestOpts { extra: 1 }];
    for n in 0..=MAX_IPV6_EXT_HEADERS + 1 {
        let mut b = PacketBuilder::ipv6(SRC6, DST6);
        for e in exts.iter().cycle().take(n) {
            b = b.ext(*e);
        }
        let pkt = b.udp(1, 53).build();
        if n <= MAX_IPV6_EXT_HEADERS {
            check_one(&drop_all(), &pkt, XDP_DROP, IfaceVerdict::TargetDropped, Some(DropReason::Scope));
        } else {
            check_one(&drop_all(), &pkt, XDP_PASS, IfaceVerdict::Unparsed, None);
        }
    }
}

// ----------------------------------------------------------- fragments ---

#[test]
fn non_first_fragments_scope() {
    // Non-first fragments carry no ports: in scope by protocol alone.
    let udp53 = one_target(policy(pf::DROP_ALL, &[17], &[(53, 53)]));
    for pkt in [
        PacketBuilder::ipv4(SRC4, DST4).fragment(100, true).udp(1, 9999).payload(64).build(),
        PacketBuilder::ipv6(SRC6, DST6).ext(Ext::HopByHop).fragment(100, false).udp(1, 9999).payload(64).build(),
    ] {
        check_one(&udp53, &pkt, XDP_DROP, IfaceVerdict::TargetDropped, Some(DropReason::Scope));
    }
    // Out of scope: protocol not listed.
    let tcp_only = one_target(policy(pf::DROP_ALL, &[6], &[]));
    for pkt in [
        PacketBuilder::ipv4(SRC4, DST4).fragment(100, false).udp(1, 53).payload(64).build(),
        PacketBuilder::ipv6(SRC6, DST6).fragment(100, true).udp(1, 53).payload(64).build(),
    ] {
        check_one(&tcp_only, &pkt, XDP_PASS, IfaceVerdict::TargetPassed, None);
    }
}

#[test]
fn drop_fragments() {
    let rules = one_target(policy(pf::DROP_FRAGMENTS, ALL_PROTOS, &[]));
    for pkt in [
        PacketBuilder::ipv4(SRC4, DST4).fragment(0, true).udp(1, 53).build(),
        PacketBuilder::ipv4(SRC4, DST4).fragment(10, false).udp(1, 53).payload(8).build(),
        PacketBuilder::ipv6(SRC6, DST6).fragment(0, true).tcp(1, 80, TCP_ACK).build(),
        PacketBuilder::ipv6(SRC6, DST6).fragment(3, false).tcp(1, 80, TCP_ACK).payload(8).build(),
    ] {
        check_one(&rules, &pkt, XDP_DROP, IfaceVerdict::TargetDropped, Some(DropReason::Fragment));
    }
    // Unfragmented (an IPv6 atomic fragment header with offset 0 and no M
    // is not a fragment either).
    for pkt in [
        PacketBuilder::ipv4(SRC4, DST4).udp(1, 53).build(),
        PacketBuilder::ipv6(SRC6, DST6).fragment(0, false).udp(1, 53).build(),
    ] {
        check_one(&rules, &pkt, XDP_PASS, IfaceVerdict::TargetPassed, None);
    }
}

// ------------------------------------------------------- countermeasures ---

#[test]
fn bad_tcp_flags() {
    let rules = one_target(policy(pf::DROP_BAD_TCP_FLAGS, &[6], &[]));
    let bad = [
        0,
        TCP_SYN | TCP_FIN,
        TCP_SYN | TCP_RST,
        TCP_FIN | TCP_RST | TCP_ACK,
        TCP_FIN,
        TCP_FIN | TCP_PSH | TCP_URG,
        TCP_PSH,
        TCP_URG,
        TCP_SYN | TCP_FIN | TCP_PSH | TCP_URG | TCP_ACK | TCP_RST,
    ];
    let good = [TCP_SYN, TCP_SYN | TCP_ACK, TCP_ACK, TCP_RST, TCP_RST | TCP_ACK, TCP_FIN | TCP_ACK, TCP_PSH | TCP_ACK, TCP_ACK | TCP_URG];
    for f in bad {
        for b in [PacketBuilder::ipv4(SRC4, DST4), PacketBuilder::ipv6(SRC6, DST6)] {
            check_one(&rules, &b.tcp(1, 80, f).build(), XDP_DROP, IfaceVerdict::TargetDropped, Some(DropReason::BadTcpFlags));
        }
    }
    for f in good {
        check_one(&rules, &PacketBuilder::ipv4(SRC4, DST4).tcp(1, 80, f).build(), XDP_PASS, IfaceVerdict::TargetPassed, None);
    }
}

#[test]
fn reflection_ports() {
    let rules = one_target(policy(pf::DROP_REFLECTION, ALL_PROTOS, &[]));
    let mut d = dp();
    d.apply(&rules).unwrap();
    d.set_reflection_ports(&[19, 123, 1900, 11211, 65535]).unwrap();
    let refl = [
        PacketBuilder::ipv4(SRC4, DST4).udp(123, 4444).build(),
        PacketBuilder::ipv6(SRC6, DST6).udp(11211, 4444).build(),
        PacketBuilder::ipv4(SRC4, DST4).udp(65535, 4444).build(),
    ];
    let not = [
        PacketBuilder::ipv4(SRC4, DST4).udp(124, 123).build(),
        // TCP from port 123 is not UDP reflection.
        PacketBuilder::ipv4(SRC4, DST4).tcp(123, 80, TCP_ACK).build(),
    ];
    for p in &refl {
        assert_eq!(d.test_run(p).unwrap(), XDP_DROP);
    }
    for p in &not {
        assert_eq!(d.test_run(p).unwrap(), XDP_PASS);
    }
    let rb: u64 = refl.iter().map(|p| p.len() as u64).sum();
    let nb: u64 = not.iter().map(|p| p.len() as u64).sum();
    assert_target(&d, ID, (2, nb), &[(DropReason::Reflection, 3, rb)]);
    assert_iface(&d, &[(IfaceVerdict::TargetDropped, 3, rb), (IfaceVerdict::TargetPassed, 2, nb)]);
    // Clearing the list lets them through.
    d.set_reflection_ports(&[]).unwrap();
    assert_eq!(d.test_run(&refl[0]).unwrap(), XDP_PASS);
}

/// Rate 1/s, burst 5, 20 packets back to back: exactly 5 pass (a refill
/// of one token would need a whole second between two runs).
#[test]
fn syn_limit_per_source() {
    let mut p = policy(pf::SYN_LIMIT, &[6], &[]);
    p.syn_pps = 1;
    p.syn_burst = 5;
    let mut d = dp();
    d.apply(&one_target(p)).unwrap();
    let syn = PacketBuilder::ipv4(SRC4, DST4).tcp(1, 80, TCP_SYN).build();
    let mut passed = 0;
    for _ in 0..20 {
        if d.test_run(&syn).unwrap() == XDP_PASS {
            passed += 1;
        }
    }
    assert_eq!(passed, 5);
    // SYN+ACK and ACK are not limited; another source has its own bucket.
    let ack = PacketBuilder::ipv4(SRC4, DST4).tcp(1, 80, TCP_ACK).build();
    let synack = PacketBuilder::ipv4(SRC4, DST4).tcp(1, 80, TCP_SYN | TCP_ACK).build();
    assert_eq!(d.test_run(&ack).unwrap(), XDP_PASS);
    assert_eq!(d.test_run(&synack).unwrap(), XDP_PASS);
    let other = PacketBuilder::ipv4(OTHER4, DST4).tcp(1, 80, TCP_SYN).build();
    assert_eq!(d.test_run(&other).unwrap(), XDP_PASS);
    let l = syn.len() as u64;
    assert_target(&d, ID, (8, 8 * l), &[(DropReason::SynLimit, 15, 15 * l)]);
    assert_iface(&d, &[(IfaceVerdict::TargetPassed, 8, 8 * l), (IfaceVerdict::TargetDropped, 15, 15 * l)]);
}

#[test]
fn rate_limit_pps_per_source() {
    let mut p = policy(pf::RATE_LIMIT_SRC, ALL_PROTOS, &[]);
    p.src_pps = 1;
    p.src_pps_burst = 5;
    let mut d = dp();
    d.apply(&one_target(p)).unwrap();
    let pkt = PacketBuilder::ipv6(SRC6, DST6).udp(1, 53).payload(10).build();
    let passed = (0..20).filter(|_| d.test_run(&pkt).unwrap() == XDP_PASS).count();
    assert_eq!(passed, 5);
    let l = pkt.len() as u64;
    assert_target(&d, ID, (5, 5 * l), &[(DropReason::RateLimit, 15, 15 * l)]);
    assert_iface(&d, &[(IfaceVerdict::TargetPassed, 5, 5 * l), (IfaceVerdict::TargetDropped, 15, 15 * l)]);
}

#[test]
fn rate_limit_bps_per_source() {
    // 1 byte/s with a burst of 3 frames' worth: exactly 3 frames pass.
    let pkt = PacketBuilder::ipv4(SRC4, DST4).udp(1, 53).payload(58).build();
    let l = pkt.len() as u64;
    let mut p = policy(pf::RATE_LIMIT_SRC, ALL_PROTOS, &[]);
    p.src_bps = 1;
    p.src_bps_burst = 3 * l + l / 2;
    let mut d = dp();
    d.apply(&one_target(p)).unwrap();
    let passed = (0..10).filter(|_| d.test_run(&pkt).unwrap() == XDP_PASS).count();
    assert_eq!(passed, 3);
    assert_target(&d, ID, (3, 3 * l), &[(DropReason::RateLimit, 7, 7 * l)]);
}

#[test]
fn rate_limit_huge_rate_never_overflows() {
    // A rate near u64::MAX must not wrap the refill arithmetic into drops.
    let mut p = policy(pf::RATE_LIMIT_SRC, ALL_PROTOS, &[]);
    p.src_pps = u64::MAX;
    p.src_pps_burst = u64::MAX;
    p.src_bps = u64::MAX / 3;
    p.src_bps_burst = 0;
    let mut d = dp();
    d.apply(&one_target(p)).unwrap();
    let pkt = PacketBuilder::ipv4(SRC4, DST4).udp(1, 53).build();
    for _ in 0..50 {
        assert_eq!(d.test_run(&pkt).unwrap(), XDP_PASS);
    }
}

#[test]
fn scope_ports_and_protocols() {
    let rules = one_target(policy(pf::DROP_ALL, &[6, 17], &[(53, 53), (8000, 8080)]));
    check_one(&rules, &PacketBuilder::ipv4(SRC4, DST4).udp(1, 53).build(), XDP_DROP, IfaceVerdict::TargetDropped, Some(DropReason::Scope));
    check_one(&rules, &PacketBuilder::ipv4(SRC4, DST4).tcp(1, 8080, TCP_ACK).build(), XDP_DROP, IfaceVerdict::TargetDropped, Some(DropReason::Scope));
    check_one(&rules, &PacketBuilder::ipv4(SRC4, DST4).tcp(1, 8081, TCP_ACK).build(), XDP_PASS, IfaceVerdict::TargetPassed, None);
    check_one(&rules, &PacketBuilder::ipv6(SRC6, DST6).udp(1, 54).build(), XDP_PASS, IfaceVerdict::TargetPassed, None);
    check_one(&rules, &PacketBuilder::ipv4(SRC4, DST4).sctp(1, 53).build(), XDP_PASS, IfaceVerdict::TargetPassed, None);
    check_one(&rules, &PacketBuilder::ipv4(SRC4, DST4).icmp(8, 0).build(), XDP_PASS, IfaceVerdict::TargetPassed, None);
}

#[test]
fn policy_without_countermeasures_passes() {
    let rules = one_target(policy(0, ALL_PROTOS, &[]));
    check_one(&rules, &PacketBuilder::ipv4(SRC4, DST4).udp(1, 53).build(), XDP_PASS, IfaceVerdict::TargetPassed, None);
}

// --------------------------------------------------------------- lists ---

#[test]
fn accept_list_bypasses_drop_all() {
    let mut rules = drop_all();
    rules.accept = vec![net("192.0.2.0/24"), net("2001:db8:1::/48")];
    check_one(&rules, &PacketBuilder::ipv4(SRC4, DST4).udp(1, 53).build(), XDP_PASS, IfaceVerdict::Accepted, None);
    check_one(&rules, &PacketBuilder::ipv6(SRC6, DST6).udp(1, 53).build(), XDP_PASS, IfaceVerdict::Accepted, None);
    check_one(&rules, &PacketBuilder::ipv4(OTHER4, DST4).udp(1, 53).build(), XDP_DROP, IfaceVerdict::TargetDropped, Some(DropReason::Scope));
}

#[test]
fn drop_list() {
    let mut rules = one_target(policy(0, ALL_PROTOS, &[]));
    rules.drop = vec![net("192.0.2.1/32"), net("2001:db8:1::/64")];
    // Drop-listed even towards no target.
    check_one(&rules, &PacketBuilder::ipv4(SRC4, OTHER4).udp(1, 53).build(), XDP_DROP, IfaceVerdict::DropListed, None);
    check_one(&rules, &PacketBuilder::ipv6(SRC6, DST6).udp(1, 53).build(), XDP_DROP, IfaceVerdict::DropListed, None);
    check_one(&rules, &PacketBuilder::ipv4(OTHER4, DST4).udp(1, 53).build(), XDP_PASS, IfaceVerdict::TargetPassed, None);
}

/// A list keeps hosts (/32, /128) in a hash map and shorter prefixes in a
/// trie: an address listed both ways, or either way, is on the list, and
/// removing one kind leaves the other in force (accept-list: same maps,
/// same rules).
#[test]
fn list_hosts_and_prefixes() {
    let mut d = dp();
    let from = |src: [u8; 4]| PacketBuilder::ipv4(src, OTHER4).udp(1, 53).build();
    let from6 = |last: u8| {
        let mut s = SRC6;
        s[15] = last;
        PacketBuilder::ipv6(s, DST6).udp(1, 53).build()
    };
    let host = [203, 0, 113, 7]; // also inside the /24 below
    let in_pfx = [203, 0, 113, 5];
    let lone = [192, 0, 2, 66]; // only as a host entry
    let outside = [192, 0, 2, 67];
    let both = vec![net("203.0.113.7/32"), net("203.0.113.0/24"), net("192.0.2.66/32"), net("2001:db8:1::1/128"), net("2001:db8:1::/64")];
    let verdict = |d: &Dataplane, pkt: &[u8], want: u32| assert_eq!(d.test_run(pkt).unwrap(), want, "{pkt:02x?}");

    d.apply(&RuleSet { drop: both.clone(), ..Default::default() }).unwrap();
    for src in [host, in_pfx, lone] {
        verdict(&d, &from(src), XDP_DROP);
    }
    verdict(&d, &from(outside), XDP_PASS);
    verdict(&d, &from6(1), XDP_DROP);
    verdict(&d, &from6(2), XDP_DROP);
    let mut sorted = both.clone();
    sorted.sort();
    let mut cur = d.current_rules().drop;
    cur.sort();
    assert_eq!(cur, sorted, "read back from both maps");

    // Prefixes removed: the hosts stay listed, the rest of the /24 is not.
    let hosts = vec![net("203.0.113.7/32"), net("192.0.2.66/32"), net("2001:db8:1::1/128")];
    d.apply(&RuleSet { drop: hosts, ..Default::default() }).unwrap();
    verdict(&d, &from(host), XDP_DROP);
    verdict(&d, &from(lone), XDP_DROP);
    verdict(&d, &from(in_pfx), XDP_PASS);
    verdict(&d, &from6(1), XDP_DROP);
    verdict(&d, &from6(2), XDP_PASS);

    // Hosts removed: the prefixes alone still cover their addresses.
    let pfx = vec![net("203.0.113.0/24"), net("2001:db8:1::/64")];
    d.apply(&RuleSet { drop: pfx, ..Default::default() }).unwrap();
    verdict(&d, &from(host), XDP_DROP);
    verdict(&d, &from(in_pfx), XDP_DROP);
    verdict(&d, &from(lone), XDP_PASS);
    verdict(&d, &from6(1), XDP_DROP);
    verdict(&d, &from6(3), XDP_DROP);

    // The accept-list, both kinds, in front of a drop-all target.
    let mut rules = drop_all();
    rules.accept = vec![net("192.0.2.1/32"), net("192.0.2.128/25"), net("2001:db8:1::1/128")];
    d.apply(&rules).unwrap();
    let to_dst = |src: [u8; 4]| PacketBuilder::ipv4(src, DST4).udp(1, 53).build();
    verdict(&d, &to_dst(SRC4), XDP_PASS);
    verdict(&d, &to_dst([192, 0, 2, 200]), XDP_PASS);
    verdict(&d, &to_dst([192, 0, 2, 2]), XDP_DROP);
    verdict(&d, &PacketBuilder::ipv6(SRC6, DST6).udp(1, 53).build(), XDP_PASS);
    rules.accept = vec![net("192.0.2.128/25")];
    d.apply(&rules).unwrap();
    verdict(&d, &to_dst(SRC4), XDP_DROP);
    verdict(&d, &to_dst([192, 0, 2, 200]), XDP_PASS);
    verdict(&d, &PacketBuilder::ipv6(SRC6, DST6).udp(1, 53).build(), XDP_DROP);

    // Nothing listed any more: nothing of the lists survives in the maps.
    d.apply(&RuleSet::default()).unwrap();
    d.apply(&RuleSet::default()).unwrap();
    verdict(&d, &from(host), XDP_PASS);
    assert_eq!(d.current_rules(), RuleSet::default());
}

#[test]
fn matches_nothing() {
    check_one(&drop_all(), &PacketBuilder::ipv4(SRC4, OTHER4).udp(1, 53).build(), XDP_PASS, IfaceVerdict::NoMatch, None);
    let mut v6 = DST6;
    v6[15] = 8;
    check_one(&drop_all(), &PacketBuilder::ipv6(SRC6, v6).udp(1, 53).build(), XDP_PASS, IfaceVerdict::NoMatch, None);
    // Empty rule set.
    check_one(&RuleSet::default(), &PacketBuilder::ipv4(SRC4, DST4).udp(1, 53).build(), XDP_PASS, IfaceVerdict::NoMatch, None);
}

// -------------------------------------------------------- generations ---

#[test]
fn apply_swaps_rule_sets() {
    let mut d = dp();
    let to_dst = PacketBuilder::ipv4(SRC4, DST4).udp(1, 53).build();
    let to_other = PacketBuilder::ipv4(SRC4, OTHER4).udp(1, 53).build();
    assert_eq!(d.active_generation(), 0);
    d.apply(&drop_all()).unwrap();
    assert_eq!(d.active_generation(), 1);
    assert_eq!(d.test_run(&to_dst).unwrap(), XDP_DROP);
    assert_eq!(d.test_run(&to_other).unwrap(), XDP_PASS);

    // New set: target 9 on OTHER4 only; target 7 is gone.
    let second = RuleSet {
        targets: vec![TargetRule { id: 9, prefixes: vec![net("203.0.113.0/24")], policy: policy(pf::DROP_ALL, ALL_PROTOS, &[]) }],
        accept: vec![],
        drop: vec![],
        acl: vec![],
        guard: vec![],
    };
    d.apply(&second).unwrap();
    assert_eq!(d.active_generation(), 0);
    assert_eq!(d.test_run(&to_dst).unwrap(), XDP_PASS);
    assert_eq!(d.test_run(&to_other).unwrap(), XDP_DROP);
    let cur = d.current_rules();
    assert_eq!(cur.targets.len(), 1);
    assert_eq!(cur.targets[0].id, 9);
    assert_eq!(cur.targets[0].prefixes, vec![net("203.0.113.0/24")]);
    assert_target(&d, 9, (0, 0), &[(DropReason::Scope, 1, to_other.len() as u64)]);

    // And back to empty.
    d.apply(&RuleSet::default()).unwrap();
    assert_eq!(d.test_run(&to_other).unwrap(), XDP_PASS);
    assert_eq!(d.current_rules(), RuleSet::default());
    assert_iface(
        &d,
        &[
            (IfaceVerdict::TargetDropped, 2, 2 * to_dst.len() as u64),
            (IfaceVerdict::NoMatch, 3, 3 * to_dst.len() as u64),
        ],
    );

    // Counters reset when an id is reused.
    d.reset_target_stats(9).unwrap();
    assert_target(&d, 9, (0, 0), &[]);
}

/// `prepare` checks without touching the maps; `commit` puts it in force;
/// a rule set prepared before another flip is refused (its ACL slots were
/// assigned against other contents) and changes nothing.
#[test]
fn prepare_touches_nothing_and_a_stale_plan_is_refused() {
    let mut d = dp();
    let to_dst = PacketBuilder::ipv4(SRC4, DST4).udp(1, 53).build();
    let plan = d.prepare(&drop_all()).unwrap();
    assert_eq!(d.active_generation(), 0);
    assert_eq!(d.test_run(&to_dst).unwrap(), XDP_PASS, "prepared, not in force");
    d.commit(plan).unwrap();
    assert_eq!(d.active_generation(), 1);
    assert_eq!(d.test_run(&to_dst).unwrap(), XDP_DROP);

    let stale = d.prepare(&RuleSet::default()).unwrap();
    d.apply(&drop_all()).unwrap();
    let e = d.commit(stale).unwrap_err().to_string();
    assert!(e.contains("prepare it again"), "{e}");
    assert_eq!(d.active_generation(), 0, "the refused plan did not flip");
    assert_eq!(d.test_run(&to_dst).unwrap(), XDP_DROP);
}

/// Pins the calling thread to CPU 0: test runs then use one CPU's
/// destination cache, so a repeated destination is served from it.
fn pin_to_cpu0() {
    // SAFETY: a zeroed cpu_set_t with one bit set, for this thread (0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        assert_eq!(libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set), 0, "sched_setaffinity");
    }
}

/// The destination cache never changes a verdict: across flips (an entry
/// of the previous epoch is never used), between an IPv4 address and the
/// IPv6 address with the same first bytes (the same slot in each family's
/// half of the cache), and between two
/// addresses that share a slot; and it does hold what it resolved.
#[test]
fn dst_cache_follows_every_flip() {
    pin_to_cpu0();
    let word = |a: [u8; 4]| u32::from_ne_bytes(a);
    let slot_of = |a: [u8; 4]| mitigator_common::dst_cache_slot(false, word(a));
    // An address in 203.0.113.0/24 sharing DST4's slot.
    let twin = (0..=255u8).map(|b| [203, 0, 113, b]).find(|a| slot_of(*a) == slot_of(DST4)).unwrap_or([0; 4]);
    let mut alias6 = [0u8; 16];
    alias6[..4].copy_from_slice(&DST4);
    let pkt = |dst: [u8; 4]| PacketBuilder::ipv4(SRC4, dst).udp(1, 53).build();
    let to_dst = pkt(DST4);
    let to_alias6 = PacketBuilder::ipv6(SRC6, alias6).udp(1, 53).build();
    // Every set also has an IPv6 target elsewhere, so that IPv6 packets
    // go through the cache too (a family without targets skips it).
    let drop_on = |id: u32, p: &str| RuleSet {
        targets: vec![TargetRule {
            id,
            prefixes: vec![net(p), net("2001:db8:2::7/128")],
            policy: policy(pf::DROP_ALL, ALL_PROTOS, &[]),
        }],
        ..Default::default()
    };

    for cached in [true, false] {
        let mut d = dp();
        d.set_dst_cache(cached);
        d.apply(&drop_on(ID, "198.51.100.7/32")).unwrap();
        for _ in 0..3 {
            assert_eq!(d.test_run(&to_dst).unwrap(), XDP_DROP, "cached {cached}");
            assert_eq!(d.test_run(&to_alias6).unwrap(), XDP_PASS, "IPv6 alias of the IPv4 target, cached {cached}");
        }
        if cached {
            // Each family has its half of the cache: the alias (same
            // folded word) has its own entry and leaves DST4's alone.
            let e6 = d.dst_cache_slot(mitigator_common::dst_cache_slot(true, word(DST4))).unwrap()[0];
            assert_eq!((e6.key as u32, e6.rest, e6.id), (word(DST4), [0; 3], mitigator_common::DST_NONE), "{e6:?}");
            let e = d.dst_cache_slot(slot_of(DST4)).unwrap()[0];
            assert_eq!((e.key as u32, e.id), (word(DST4), ID), "{e:?}");
            assert_eq!(e.key >> 32, e6.key >> 32, "both resolved in the same epoch");
            assert_ne!(e.key >> 32, 0, "an epoch is never 0");
        }
        // A twin sharing the slot, when the /24 has one: each evicts the other.
        if twin != [0; 4] {
            d.apply(&drop_on(ID, &format!("{}/32", std::net::Ipv4Addr::from(twin)))).unwrap();
            for _ in 0..3 {
                assert_eq!(d.test_run(&pkt(twin)).unwrap(), XDP_DROP, "twin {twin:?}");
                assert_eq!(d.test_run(&to_dst).unwrap(), XDP_PASS, "DST4 after the flip");
            }
        }
        // The target moves to another id with another policy, then goes,
        // then comes back unchanged by a flip that changes nothing.
        let mut moved = drop_on(9, "198.51.100.0/24");
        moved.targets[0].policy = policy(0, ALL_PROTOS, &[]);
        d.apply(&moved).unwrap();
        assert_eq!(d.test_run(&to_dst).unwrap(), XDP_PASS);
        d.apply(&drop_on(ID, "198.51.100.7/32")).unwrap();
        assert_eq!(d.test_run(&to_dst).unwrap(), XDP_DROP);
        d.apply(&RuleSet::default()).unwrap();
        assert_eq!(d.test_run(&to_dst).unwrap(), XDP_PASS);
        d.apply(&drop_on(ID, "198.51.100.7/32")).unwrap();
        d.apply(&drop_on(ID, "198.51.100.7/32")).unwrap();
        assert_eq!(d.test_run(&to_dst).unwrap(), XDP_DROP);
        assert_target(&d, 9, (1, to_dst.len() as u64), &[]);
        if !cached {
            let e = d.dst_cache_slot(slot_of(DST4)).unwrap()[0];
            assert_eq!(e, mitigator_common::DstCacheEntry::default(), "the cache stays unused when off");
        }
    }
}

/// A target's packet found in the destination cache by the shortcut hands
/// its target id on to the full path (`Pkt::hint`); the next packet,
/// whatever it is, must not inherit it. Each packet after a drop goes to a
/// destination the cache has not seen (a full-path lookup): a leftover
/// hint would drop it.
#[test]
fn a_cached_target_id_is_used_for_its_own_packet_only() {
    pin_to_cpu0();
    let d = {
        let mut d = dp();
        d.apply(&drop_all()).unwrap();
        d
    };
    let to_target = PacketBuilder::ipv4(SRC4, DST4).udp(1, 53).build();
    for i in 0..64u8 {
        assert_eq!(d.test_run(&to_target).unwrap(), XDP_DROP);
        assert_eq!(d.test_run(&to_target).unwrap(), XDP_DROP, "from the cache");
        let fresh4 = PacketBuilder::ipv4(SRC4, [203, 0, 113, i]).udp(1, 53).build();
        assert_eq!(d.test_run(&fresh4).unwrap(), XDP_PASS, "new IPv4 destination {i} after a target's packet");
        assert_eq!(d.test_run(&to_target).unwrap(), XDP_DROP);
        let mut dst6 = DST6;
        dst6[15] = 100 + i;
        let fresh6 = PacketBuilder::ipv6(SRC6, dst6).udp(1, 53).build();
        assert_eq!(d.test_run(&fresh6).unwrap(), XDP_PASS, "new IPv6 destination {i} after a target's packet");
    }
}

#[test]
fn invalid_rule_sets_are_refused() {
    let mut d = dp();
    let mut r = drop_all();
    r.targets[0].id = mitigator_common::MAX_TARGETS;
    assert!(d.apply(&r).is_err());
    let mut r = drop_all();
    let mut t2 = r.targets[0].clone();
    t2.id = 8;
    r.targets.push(t2);
    assert!(d.apply(&r).is_err(), "same prefix in two targets");
    assert_eq!(d.active_generation(), 0, "a refused set does not flip");
}

/// Re-opening with the same pin_dir adopts the maps and what each
/// generation holds; uninstall leaves nothing behind.
#[test]
fn reopen_adopts_pinned_maps() {
    let dir = std::path::PathBuf::from(format!("/sys/fs/bpf/mitigator-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = DataplaneOptions { pin_dir: Some(dir.clone()), ..Default::default() };
    let pkt = PacketBuilder::ipv4(SRC4, DST4).udp(1, 53).build();
    {
        let mut d = Dataplane::open(&opts).unwrap();
        assert!(!d.adopted());
        d.apply(&drop_all()).unwrap();
        assert_eq!(d.test_run(&pkt).unwrap(), XDP_DROP);
    }
    let mut d = Dataplane::open(&opts).unwrap();
    assert!(d.adopted());
    assert_eq!(d.active_generation(), 1);
    let mut expect = drop_all();
    expect.targets[0].prefixes.sort();
    assert_eq!(d.current_rules(), expect);
    // The counters survived the restart.
    assert_target(&d, ID, (0, 0), &[(DropReason::Scope, 1, pkt.len() as u64)]);
    assert_eq!(d.test_run(&pkt).unwrap(), XDP_DROP);
    // A diff against the adopted state: the old target disappears.
    d.apply(&RuleSet::default()).unwrap();
    assert_eq!(d.test_run(&pkt).unwrap(), XDP_PASS);
    drop(d);
    let d = Dataplane::open(&opts).unwrap();
    assert_eq!(d.current_rules(), RuleSet::default());
    d.uninstall().unwrap();
    assert!(!dir.exists(), "uninstall removes every pin");
}

/// Pins of another build are refused, not misread: a map whose kind
/// changed with the same sizes (the per-CPU hash IFACE_STATS of earlier
/// builds), and a set of pins that lacks one of this build's maps.
#[test]
fn pins_of_another_layout_are_refused() {
    let dir = std::path::PathBuf::from(format!("/sys/fs/bpf/mitigator-test-layout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = DataplaneOptions { pin_dir: Some(dir.clone()), ..Default::default() };
    let mut d = Dataplane::open(&opts).unwrap();
    let mut rules = drop_all();
    rules.drop = vec![net("203.0.113.66/32"), net("203.0.113.128/25")];
    d.apply(&rules).unwrap();
    drop(d);
    // Adopted with both kinds of list entries read back.
    let d = Dataplane::open(&opts).unwrap();
    assert!(d.adopted());
    let mut want = rules.drop.clone();
    want.sort();
    assert_eq!(d.current_rules().drop, want);
    drop(d);

    let stats = dir.join(mitigator_common::maps::IFACE_STATS);
    std::fs::remove_file(&stats).unwrap();
    let size = std::mem::size_of::<IfaceStats>().to_string();
    let st = std::process::Command::new("bpftool")
        .args(["map", "create"])
        .arg(&stats)
        .args(["type", "percpu_hash", "key", "4", "value", &size, "entries", "256", "name", "MTG_IFACE_STATS"])
        .status()
        .unwrap();
    assert!(st.success(), "bpftool map create");
    let err = Dataplane::open(&opts).err().expect("a per-CPU hash IFACE_STATS is refused");
    assert!(format!("{err:#}").contains("uninstall"), "{err:#}");

    std::fs::remove_file(&stats).unwrap();
    let err = Dataplane::open(&opts).err().expect("a pin set without IFACE_STATS is refused");
    assert!(format!("{err:#}").contains("MTG_IFACE_STATS"), "{err:#}");
    mitigator::dataplane::remove_pins(&dir).unwrap();
    assert!(!dir.exists());
}

/// Not a test: prints what opening costs and what the kernel says about
/// the program (`cargo test --test verdicts open_cost -- --ignored --nocapture`).
#[test]
#[ignore]
fn open_cost() {
    let t = std::time::Instant::now();
    let d = dp();
    eprintln!("open: {:?}", t.elapsed());
    let out = std::process::Command::new("bpftool").args(["prog", "show", "name", "mitigator"]).output();
    if let Ok(o) = out {
        eprintln!("{}", String::from_utf8_lossy(&o.stdout));
    }
    let pkt = PacketBuilder::ipv4(SRC4, OTHER4).udp(1, 53).build();
    let (_, per_run) = d.test_run_repeat(&pkt, 100_000).unwrap();
    eprintln!("no-match IPv4 UDP, empty rule set: {per_run:?} per run");
}
