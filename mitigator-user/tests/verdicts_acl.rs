//! ACL verdict tests: crafted packets through BPF_PROG_TEST_RUN against
//! data-channel ACLs, asserting the XDP action, the interface verdict
//! (which tells an ACL decision from a target's) and the per-entry
//! counters. Needs root (BPF). Each test opens its own unpinned Dataplane.

use std::{
    ops::RangeInclusive,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::Instant,
};

use ipnet::IpNet;
use mitigator::dataplane::{
    port_ranges,
    testpkt::{PacketBuilder, *},
    AclAction, AclEntry, AclError, AclFamily, AclMatch, BitmaskMatch, Dataplane, DataplaneOptions, PortOp, RuleSet,
    TargetRule,
};
use mitigator_common::{acl_frag, acl_op, policy_flags as pf, IfaceVerdict, Policy};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

const SRC4: [u8; 4] = [192, 0, 2, 1];
const DST4: [u8; 4] = [198, 51, 100, 7];
const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];

mod verdicts_common;
use verdicts_common::run;

use IfaceVerdict::{AclAccepted, AclDropped, NoMatch, TargetDropped, TargetPassed};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn dp_with(rules: &RuleSet) -> Dataplane {
    let mut d = Dataplane::open(&DataplaneOptions::default()).expect("open dataplane (root needed)");
    d.apply(rules).unwrap();
    d
}

fn acl_only(acl: Vec<AclEntry>) -> RuleSet {
    RuleSet { acl, ..Default::default() }
}

fn entry(stat_id: u64, matches: AclMatch, action: AclAction) -> AclEntry {
    AclEntry { stat_id, matches, action }
}

fn drop_if(m: AclMatch) -> RuleSet {
    acl_only(vec![entry(1, m, AclAction::Drop)])
}

/// The packet is dropped by the ACL (`true`) or not touched by it.
fn assert_acl_drop(d: &Dataplane, pkt: &PacketBuilder, dropped: bool, what: &str) {
    let got = run(d, &pkt.build());
    let want = if dropped { (XDP_DROP, AclDropped) } else { (XDP_PASS, NoMatch) };
    assert_eq!(got, want, "{what}: {pkt:?}");
}

fn v4() -> PacketBuilder {
    PacketBuilder::ipv4(SRC4, DST4)
}

fn v6() -> PacketBuilder {
    PacketBuilder::ipv6(SRC6, DST6)
}

/// `cases`: (match, packets that match, packets that do not).
fn field_cases(cases: Vec<(&str, AclMatch, Vec<PacketBuilder>, Vec<PacketBuilder>)>) {
    for (name, m, hits, misses) in cases {
        let d = dp_with(&drop_if(m));
        for p in &hits {
            assert_acl_drop(&d, p, true, name);
        }
        for p in &misses {
            assert_acl_drop(&d, p, false, name);
        }
        assert_eq!(d.acl_stats(0).unwrap().packets, hits.len() as u64, "{name}: entry counter");
    }
}

// -------------------------------------------------------------- fields ---

#[test]
fn prefixes_v4_and_v6() {
    let m =
        |src: Option<&str>, dst: Option<&str>| AclMatch { src: src.map(net), dst: dst.map(net), ..Default::default() };
    field_cases(vec![
        (
            "src v4",
            m(Some("192.0.2.0/24"), None),
            vec![v4().udp(1, 2)],
            vec![PacketBuilder::ipv4([192, 0, 3, 1], DST4), v6()],
        ),
        ("src v4 host", m(Some("192.0.2.1/32"), None), vec![v4()], vec![PacketBuilder::ipv4([192, 0, 2, 2], DST4)]),
        (
            "dst v4",
            m(None, Some("198.51.100.0/25")),
            vec![v4()],
            vec![PacketBuilder::ipv4(SRC4, [198, 51, 100, 200]), v6()],
        ),
        (
            "src+dst v4",
            m(Some("192.0.2.0/24"), Some("198.51.100.7/32")),
            vec![v4()],
            vec![PacketBuilder::ipv4(SRC4, [198, 51, 100, 8]), PacketBuilder::ipv4([10, 0, 0, 1], DST4)],
        ),
        ("src v6", m(Some("2001:db8:1::/48"), None), vec![v6()], vec![PacketBuilder::ipv6(DST6, DST6), v4()]),
        (
            "dst v6",
            m(None, Some("2001:db8:2::7/128")),
            vec![v6().tcp(1, 2, TCP_ACK)],
            vec![PacketBuilder::ipv6(SRC6, SRC6), v4()],
        ),
        // /0 in one family matches that whole family, not the other.
        ("src ::/0", m(Some("::/0"), None), vec![v6()], vec![v4()]),
    ]);
}

#[test]
fn family_and_protocol() {
    field_cases(vec![
        (
            "family v4",
            AclMatch { family: Some(AclFamily::V4), ..Default::default() },
            vec![v4(), v4().udp(1, 1)],
            vec![v6()],
        ),
        ("family v6", AclMatch { family: Some(AclFamily::V6), ..Default::default() }, vec![v6()], vec![v4()]),
        (
            "protocol udp",
            AclMatch { protocol: Some(17), ..Default::default() },
            vec![v4().udp(1, 2), v6().udp(1, 2)],
            vec![v4().tcp(1, 2, TCP_SYN), v6().udplite(1, 2), v4().proto(253)],
        ),
        (
            "protocol other",
            AclMatch { protocol: Some(253), ..Default::default() },
            vec![v4().proto(253), v6().proto(253)],
            vec![v4().proto(252)],
        ),
    ]);
}

#[test]
fn ports_operators_and_ranges() {
    let dst = |r: Vec<RangeInclusive<u16>>| AclMatch { dst_ports: Some(r), ..Default::default() };
    let src = |r: Vec<RangeInclusive<u16>>| AclMatch { src_ports: Some(r), ..Default::default() };
    field_cases(vec![
        (
            "eq",
            dst(port_ranges(PortOp::Eq, 53)),
            vec![v4().udp(9, 53), v6().tcp(9, 53, TCP_SYN), v4().sctp(9, 53)],
            vec![
                v4().udp(53, 54),
                v6().udp(9, 52),
                // No ports: ICMP, other protocols, non-first fragments.
                v4().icmp(8, 0),
                v4().proto(253),
                v4().udp(9, 53).fragment(100, false),
            ],
        ),
        (
            "neq",
            dst(port_ranges(PortOp::Neq, 53)),
            vec![v4().udp(9, 52), v6().udp(9, 54), v4().udp(9, 0), v4().udp(9, 65535)],
            vec![v4().udp(9, 53), v4().icmp(8, 0)],
        ),
        ("lte", src(port_ranges(PortOp::Lte, 1023)), vec![v4().udp(0, 9), v6().udp(1023, 9)], vec![v4().udp(1024, 9)]),
        (
            "gte",
            src(port_ranges(PortOp::Gte, 1024)),
            vec![v4().udp(1024, 9), v6().tcp(65535, 9, 0)],
            vec![v4().udp(1023, 9)],
        ),
        (
            "range",
            dst(vec![1000..=2000]),
            vec![v4().udp(1, 1000), v4().udp(1, 1500), v6().udp(1, 2000)],
            vec![v4().udp(1, 999), v4().udp(1, 2001)],
        ),
        (
            "two ranges",
            dst(vec![10..=20, 30..=40]),
            vec![v4().udp(1, 10), v4().udp(1, 40)],
            vec![v4().udp(1, 25), v4().udp(1, 41)],
        ),
        (
            "src and dst",
            AclMatch { src_ports: Some(vec![123..=123]), dst_ports: Some(vec![1024..=65535]), ..Default::default() },
            vec![v4().udp(123, 40000)],
            vec![v4().udp(123, 80), v4().udp(124, 40000)],
        ),
    ]);
}

#[test]
fn tcp_flags_bitmask_semantics() {
    let bm = |operator: u8, bitmask: u16| AclMatch {
        tcp_flags_bitmask: Some(BitmaskMatch { operator, bitmask }),
        ..Default::default()
    };
    let t = |flags: u8| v4().tcp(1, 2, flags);
    field_cases(vec![
        // match: all of the bits set.
        (
            "match SYN",
            bm(acl_op::MATCH, TCP_SYN as u16),
            vec![t(TCP_SYN), t(TCP_SYN | TCP_ACK), v6().tcp(1, 2, TCP_SYN)],
            vec![
                t(TCP_ACK),
                t(0),
                // Not TCP: no flags to match.
                v4().udp(1, 2),
            ],
        ),
        (
            "match SYN+ACK",
            bm(acl_op::MATCH, (TCP_SYN | TCP_ACK) as u16),
            vec![t(TCP_SYN | TCP_ACK)],
            vec![t(TCP_SYN), t(TCP_ACK)],
        ),
        // any: at least one of the bits.
        (
            "any FIN|RST",
            bm(acl_op::ANY, (TCP_FIN | TCP_RST) as u16),
            vec![t(TCP_FIN), t(TCP_RST | TCP_ACK)],
            vec![t(TCP_SYN), t(0)],
        ),
        // not any over all 12 bits: the TCP NULL attack (RFC 8783 Figure 36).
        (
            "not any 4095",
            bm(acl_op::NOT | acl_op::ANY, 4095),
            vec![t(0)],
            vec![t(TCP_ACK), v4().tcp(1, 2, 0).tcp_reserved(1)],
        ),
        // not match: not all of the bits.
        (
            "not match SYN+ACK",
            bm(acl_op::NOT | acl_op::MATCH, 0x12),
            vec![t(TCP_SYN), t(0)],
            vec![t(TCP_SYN | TCP_ACK)],
        ),
        // The byte-12 nibble (reserved, NS) is bits 8..11.
        (
            "match NS",
            bm(acl_op::MATCH, 0x100),
            vec![t(TCP_ACK).tcp_reserved(1), v6().tcp(1, 2, 0).tcp_reserved(0xf)],
            vec![t(TCP_ACK), t(TCP_ACK).tcp_reserved(2)],
        ),
        (
            "exact flags SYN",
            AclMatch { tcp_flags: Some(TCP_SYN), ..Default::default() },
            vec![t(TCP_SYN), t(TCP_SYN).tcp_reserved(1)],
            vec![t(TCP_SYN | TCP_ACK), t(TCP_SYN | TCP_ECE_FOR_TEST), v4().udp(1, 2)],
        ),
    ]);
}

const TCP_ECE_FOR_TEST: u8 = 0x40;

#[test]
fn fragment_types() {
    let fr = |operator: u8, bits: u8| AclMatch {
        fragment: Some(BitmaskMatch { operator, bitmask: bits as u16 }),
        ..Default::default()
    };
    let first4 = || v4().udp(1, 2).fragment(0, true);
    let middle4 = || v4().udp(1, 2).fragment(10, true);
    let last4 = || v4().udp(1, 2).fragment(20, false);
    let whole4 = || v4().udp(1, 2);
    let first6 = || v6().udp(1, 2).fragment(0, true);
    let middle6 = || v6().udp(1, 2).fragment(10, true);
    let last6 = || v6().udp(1, 2).fragment(20, false);
    let atomic6 = || v6().udp(1, 2).fragment(0, false);
    field_cases(vec![
        (
            "isf",
            fr(acl_op::MATCH, acl_frag::ISF),
            vec![first4(), middle4(), last4(), first6(), middle6(), last6(), atomic6()],
            vec![whole4(), whole4().dont_fragment(), v6().udp(1, 2)],
        ),
        (
            "ff",
            fr(acl_op::MATCH, acl_frag::FF),
            vec![first4(), first6()],
            vec![middle4(), last4(), whole4(), middle6(), atomic6()],
        ),
        ("lf", fr(acl_op::MATCH, acl_frag::LF), vec![last4(), last6()], vec![first4(), middle4(), whole4(), atomic6()]),
        (
            "df",
            fr(acl_op::MATCH, acl_frag::DF),
            vec![whole4().dont_fragment(), first4().dont_fragment()],
            vec![whole4(), v6()],
        ),
        (
            "not isf",
            fr(acl_op::NOT | acl_op::MATCH, acl_frag::ISF),
            vec![whole4(), v6().udp(1, 2)],
            vec![first4(), last6()],
        ),
        (
            "any ff|lf",
            fr(acl_op::ANY, acl_frag::FF | acl_frag::LF),
            vec![first4(), last6()],
            vec![middle4(), whole4(), atomic6()],
        ),
        (
            "not any ff|lf",
            fr(acl_op::NOT | acl_op::ANY, acl_frag::FF | acl_frag::LF),
            vec![middle4(), whole4(), atomic6()],
            vec![first4(), last6()],
        ),
    ]);
}

#[test]
fn length_and_ttl_ranges() {
    // IPv4 total length = 20 + 8 (UDP) + payload; IPv6 payload length = 8 + payload.
    let len = |r: RangeInclusive<u16>| AclMatch { length: Some(r), ..Default::default() };
    let ttl = |r: RangeInclusive<u8>| AclMatch { ttl: Some(r), ..Default::default() };
    field_cases(vec![
        (
            "len v4",
            len(100..=200),
            vec![v4().udp(1, 2).payload(72), v4().udp(1, 2).payload(172)],
            vec![v4().udp(1, 2).payload(71), v4().udp(1, 2).payload(173)],
        ),
        (
            "len v6",
            len(100..=200),
            vec![v6().udp(1, 2).payload(92), v6().udp(1, 2).payload(192)],
            vec![v6().udp(1, 2).payload(91), v6().udp(1, 2).payload(193)],
        ),
        (
            "ttl",
            ttl(1..=10),
            vec![v4().ttl(1), v4().ttl(10), v6().ttl(5)],
            vec![v4().ttl(0), v4().ttl(11), v6().ttl(64)],
        ),
        ("ttl one", ttl(255..=255), vec![v4().ttl(255), v6().ttl(255)], vec![v4().ttl(254)]),
    ]);
}

#[test]
fn udp_length_exact_and_range() {
    // The UDP header's length field = 8 + payload (RFC 8783 7.1: udp `length`).
    let ulen = |r: RangeInclusive<u16>| AclMatch { udp_length: Some(r), ..Default::default() };
    field_cases(vec![
        (
            "udp len exact",
            ulen(100..=100),
            vec![v4().udp(1, 2).payload(92), v6().udp(1, 2).payload(92), v4().fragment(0, true).udp(1, 2).payload(92)],
            vec![
                v4().udp(1, 2).payload(91),
                v4().udp(1, 2).payload(93),
                // Same sizes, no UDP length field: TCP, UDP-Lite (its field
                // is the checksum coverage), a non-first fragment.
                v4().tcp(1, 2, 0x10).payload(80),
                v4().udplite(1, 2).payload(92),
                v4().fragment(8, false).udp(1, 2).payload(92),
                v4(),
            ],
        ),
        (
            "udp len range",
            ulen(8..=512),
            vec![v4().udp(1, 2), v6().udp(1, 2).payload(504)],
            vec![v4().udp(1, 2).payload(505), v6().icmp(128, 0)],
        ),
    ]);
}

#[test]
fn truncated_udp_header_is_never_matched_on_udp_length() {
    // An entry matching every UDP length: a UDP header cut short has no
    // length, so the entry never matches it; to no target, it passes as
    // no match (a target's policy would drop it as malformed).
    let d = dp_with(&drop_if(AclMatch { udp_length: Some(0..=65535), ..Default::default() }));
    let (pkt, ends) = v4().udp(1, 2).payload(92).build_with_boundaries();
    let l4_end = *ends.last().unwrap();
    for cut in l4_end - 8..l4_end {
        assert_eq!(run(&d, &pkt[..cut]), (XDP_PASS, IfaceVerdict::NoMatch), "cut at {cut}");
    }
    // The whole header is enough: the field says 100 whatever follows.
    assert_eq!(run(&d, &pkt[..l4_end]), (XDP_DROP, AclDropped));
    assert_eq!(run(&d, &pkt), (XDP_DROP, AclDropped));
    assert_eq!(d.acl_stats(0).unwrap().packets, 2);
}

#[test]
fn icmp_type_and_code() {
    let ic = |t: Option<u8>, c: Option<u8>| AclMatch { icmp_type: t, icmp_code: c, ..Default::default() };
    field_cases(vec![
        (
            "type 8",
            ic(Some(8), None),
            vec![v4().icmp(8, 0), v4().icmp(8, 5)],
            vec![v4().icmp(0, 0), v4().udp(8, 8), v4().proto(253)],
        ),
        ("type 3 code 4", ic(Some(3), Some(4)), vec![v4().icmp(3, 4)], vec![v4().icmp(3, 3), v4().icmp(4, 4)]),
        ("v6 type 128", ic(Some(128), None), vec![v6().icmp(128, 0)], vec![v6().icmp(129, 0), v6().udp(128, 128)]),
        // Type 0 matches only ICMP: other packets have no type at all.
        ("type 0", ic(Some(0), None), vec![v4().icmp(0, 0)], vec![v4().tcp(0, 0, 0), v4().proto(253)]),
        (
            "code 0 only",
            ic(None, Some(0)),
            vec![v4().icmp(8, 0), v6().icmp(1, 0)],
            vec![v4().icmp(8, 1), v4().udp(1, 2)],
        ),
    ]);
}

// -------------------------------------------------------- order, actions ---

#[test]
fn first_match_wins_in_order() {
    let dns = AclMatch { dst: Some(net("198.51.100.0/24")), dst_ports: Some(vec![53..=53]), ..Default::default() };
    let all = AclMatch { dst: Some(net("198.51.100.0/24")), ..Default::default() };
    let accept_first = acl_only(vec![entry(1, dns.clone(), AclAction::Accept), entry(2, all.clone(), AclAction::Drop)]);
    let d = dp_with(&accept_first);
    assert_eq!(run(&d, &v4().udp(1, 53).build()), (XDP_PASS, AclAccepted));
    assert_eq!(run(&d, &v4().udp(1, 54).build()), (XDP_DROP, AclDropped));
    assert_eq!(d.acl_stats(0).unwrap().packets, 1);
    assert_eq!(d.acl_stats(1).unwrap().packets, 1);

    let drop_first = acl_only(vec![entry(2, all, AclAction::Drop), entry(1, dns, AclAction::Accept)]);
    let d = dp_with(&drop_first);
    assert_eq!(run(&d, &v4().udp(1, 53).build()), (XDP_DROP, AclDropped));
    assert_eq!(d.acl_stats_by_id(2).unwrap().packets, 1);
    assert_eq!(d.acl_stats_by_id(1).unwrap().packets, 0);
}

fn target(flags: u32) -> TargetRule {
    let mut p = Policy::empty();
    p.flags = flags | pf::ACTIVE;
    p.protos = [u64::MAX; 4];
    TargetRule { id: 3, prefixes: vec![net("198.51.100.7/32"), net("2001:db8:2::7/128")], policy: p }
}

#[test]
fn accept_bypasses_drop_all_target() {
    let rules = RuleSet {
        targets: vec![target(pf::DROP_ALL)],
        acl: vec![entry(1, AclMatch { src: Some(net("192.0.2.0/24")), ..Default::default() }, AclAction::Accept)],
        ..Default::default()
    };
    let d = dp_with(&rules);
    assert_eq!(run(&d, &v4().udp(1, 2).build()), (XDP_PASS, AclAccepted));
    assert_eq!(run(&d, &PacketBuilder::ipv4([203, 0, 113, 1], DST4).udp(1, 2).build()), (XDP_DROP, TargetDropped));
    assert_eq!(run(&d, &v6().build()), (XDP_DROP, TargetDropped));
    assert_eq!(d.target_stats(3).unwrap().passed.packets, 0);
}

#[test]
fn drop_before_target() {
    let rules = RuleSet {
        targets: vec![target(0)],
        acl: vec![entry(
            1,
            AclMatch { protocol: Some(6), dst_ports: Some(vec![23..=23]), ..Default::default() },
            AclAction::Drop,
        )],
        ..Default::default()
    };
    let d = dp_with(&rules);
    assert_eq!(run(&d, &v4().tcp(1, 23, TCP_SYN).build()), (XDP_DROP, AclDropped));
    assert_eq!(run(&d, &v6().tcp(1, 23, TCP_SYN).build()), (XDP_DROP, AclDropped));
    assert_eq!(run(&d, &v4().tcp(1, 22, TCP_SYN).build()), (XDP_PASS, TargetPassed));
    // The target never saw the dropped packets.
    let s = d.target_stats(3).unwrap();
    assert_eq!(s.passed.packets, 1);
    assert!(s.dropped.iter().all(|c| c.packets == 0));
}

#[test]
fn lists_come_before_the_acl() {
    let rules = RuleSet {
        accept: vec![net("192.0.2.0/24")],
        drop: vec![net("203.0.113.0/24")],
        acl: vec![entry(1, AclMatch::default(), AclAction::Drop)],
        ..Default::default()
    };
    let d = dp_with(&rules);
    assert_eq!(run(&d, &v4().build()), (XDP_PASS, IfaceVerdict::Accepted));
    assert_eq!(run(&d, &PacketBuilder::ipv4([203, 0, 113, 1], DST4).build()), (XDP_DROP, IfaceVerdict::DropListed));
    assert_eq!(run(&d, &PacketBuilder::ipv4([10, 0, 0, 1], DST4).build()), (XDP_DROP, AclDropped));
}

/// A bucket of one second of the rate = exactly 3 packets: the first 3
/// pass, the rest drop, as long as less than a third of a second (the
/// time to earn one more packet) passes between the first and the last.
#[test]
fn rate_limit_aggregate_bytes_per_second() {
    let pkt = v4().udp(1, 53).payload(58).build();
    let l = pkt.len() as u64;
    for attempt in 0..3 {
        let rules = acl_only(vec![entry(
            7,
            AclMatch { dst_ports: Some(vec![53..=53]), ..Default::default() },
            AclAction::RateLimit { bytes_per_sec: 3 * l },
        )]);
        let d = dp_with(&rules);
        let t0 = Instant::now();
        // Different sources: the bucket is per entry, not per source.
        let verdicts: Vec<_> = (0..10u8)
            .map(|i| run(&d, &PacketBuilder::ipv4([192, 0, 2, i], DST4).udp(1, 53).payload(58).build()))
            .collect();
        if t0.elapsed().as_millis() > 300 {
            eprintln!("attempt {attempt}: too slow to be exact ({:?}), again", t0.elapsed());
            continue;
        }
        let want: Vec<_> =
            (0..10).map(|i| if i < 3 { (XDP_PASS, AclAccepted) } else { (XDP_DROP, AclDropped) }).collect();
        assert_eq!(verdicts, want);
        // Every matched packet is counted, passed or not.
        let c = d.acl_stats(0).unwrap();
        assert_eq!((c.packets, c.bytes), (10, 10 * l));
        // Unmatched traffic is not limited.
        assert_eq!(run(&d, &v4().udp(1, 54).payload(58).build()), (XDP_PASS, NoMatch));
        return;
    }
    panic!("three attempts too slow");
}

#[test]
fn counters_per_entry_equal_what_was_sent() {
    let e = |id, port: u16, action| {
        entry(id, AclMatch { dst_ports: Some(vec![port..=port]), ..Default::default() }, action)
    };
    let rules = acl_only(vec![e(10, 1, AclAction::Accept), e(20, 2, AclAction::Drop), e(30, 3, AclAction::Drop)]);
    let mut d = dp_with(&rules);
    let mut want = [(0u64, 0u64); 3];
    for (i, port) in [1u16, 2, 2, 1, 2, 9, 2].iter().enumerate() {
        let pkt = v4().udp(1, *port).payload(i * 10).build();
        d.test_run(&pkt).unwrap();
        if *port <= 3 {
            let w = &mut want[*port as usize - 1];
            w.0 += 1;
            w.1 += pkt.len() as u64;
        }
    }
    for (i, w) in want.iter().enumerate() {
        let c = d.acl_stats(i).unwrap();
        assert_eq!((c.packets, c.bytes), *w, "entry {i}");
    }
    // A replacement that keeps stat_id 20 (moved, matches changed) keeps
    // its counters; 30 is gone; 40 is new and starts at zero even if it
    // takes a slot that 30 held before.
    let next = acl_only(vec![e(40, 3, AclAction::Drop), e(20, 4, AclAction::Drop)]);
    d.apply(&next).unwrap();
    assert_eq!(d.acl_stats_by_id(20).unwrap().packets, want[1].0);
    assert_eq!(d.acl_stats(0).unwrap().packets, 0);
    d.test_run(&v4().udp(1, 3).build()).unwrap();
    assert_eq!(d.acl_stats(0).unwrap().packets, 1);
    assert!(d.acl_stats_by_id(30).is_err());
    d.apply(&acl_only(vec![e(50, 3, AclAction::Drop), e(20, 4, AclAction::Drop)])).unwrap();
    assert_eq!(d.acl_stats_by_id(50).unwrap().packets, 0, "a new id starts at zero");
}

#[test]
fn refused_with_entry_and_field() {
    let mut d = Dataplane::open(&DataplaneOptions::default()).unwrap();
    let bad = acl_only(vec![
        entry(1, AclMatch::default(), AclAction::Drop),
        entry(
            2,
            AclMatch { src: Some(net("10.0.0.0/8")), dst: Some(net("2001:db8::/32")), ..Default::default() },
            AclAction::Drop,
        ),
    ]);
    let e = d.apply(&bad).unwrap_err();
    let acl = e.downcast_ref::<AclError>().expect("an AclError");
    assert_eq!((acl.entry, acl.field), (Some(1), "dst"));
    assert!(e.to_string().contains("entry 1"), "{e}");
    // Nothing changed.
    assert_eq!(d.current_rules(), RuleSet::default());
    assert_eq!(run(&d, &v4().build()), (XDP_PASS, NoMatch));
}

// --------------------------------------------------------------- scale ---

/// 4,096 entries; the packet matches only the last (entry 80 has its port
/// but not its source), through the AND of the last vector word.
#[test]
fn entries_4096_last_one_matches() {
    let mut acl: Vec<AclEntry> = (0..4095u16)
        .map(|i| {
            entry(
                i as u64,
                AclMatch { src: Some(net("203.0.113.0/24")), dst_ports: Some(vec![i..=i]), ..Default::default() },
                AclAction::Accept,
            )
        })
        .collect();
    acl.push(entry(
        4095,
        AclMatch { protocol: Some(17), dst_ports: Some(vec![80..=80]), ..Default::default() },
        AclAction::Drop,
    ));
    let d = dp_with(&acl_only(acl));
    assert_eq!(run(&d, &v4().udp(1, 80).build()), (XDP_DROP, AclDropped));
    assert_eq!(run(&d, &v4().tcp(1, 80, TCP_SYN).build()), (XDP_PASS, NoMatch));
    assert_eq!(run(&d, &PacketBuilder::ipv4([203, 0, 113, 5], DST4).udp(1, 80).build()), (XDP_PASS, AclAccepted));
    assert_eq!(run(&d, &PacketBuilder::ipv4([203, 0, 113, 5], DST4).udp(1, 4094).build()), (XDP_PASS, AclAccepted));
    assert_eq!(d.acl_stats(4095).unwrap().packets, 1);
    assert_eq!(d.acl_stats(80).unwrap().packets, 1);
    assert_eq!(d.acl_stats(4094).unwrap().packets, 1);
    assert_eq!(d.acl_stats(0).unwrap().packets, 0);
}

/// One run on a duplicated program fd, from a thread other than the
/// Dataplane's.
fn raw_test_run(fd: &std::os::fd::OwnedFd, pkt: &[u8]) -> u32 {
    use std::os::fd::AsFd as _;
    mitigator::dataplane::test_run_fd(fd.as_fd(), pkt).unwrap()
}

/// Two 1,000-entry ACLs that both accept the packet, through different
/// entries: entry i matches source 10.x.y.0/24 (x.y = i) and destination
/// ports 1000+i..=1001+i; A has them in order, B rotated by one (A's entry
/// 500 is B's 499). The packet (i = 500, port 1500) has source vector
/// {500} and port vector {499, 500} in A, {499} and {498, 499} in B:
/// A's source vector with B's port vector matches nothing, and the packet
/// would fall to the DROP_ALL target. A thread runs the packet all along
/// while the sets are swapped back and forth: it must never be dropped.
/// (Checked: writing the active generation in place makes this fail.)
#[test]
fn atomic_replacement_of_1000_entries() {
    let make = |rotate: bool| {
        let mut acl: Vec<AclEntry> = (0..1000u16)
            .map(|i| {
                let src: IpNet = format!("10.{}.{}.0/24", i / 256, i % 256).parse().unwrap();
                entry(
                    i as u64 + if rotate { 10_000 } else { 0 },
                    AclMatch { src: Some(src), dst_ports: Some(vec![1000 + i..=1001 + i]), ..Default::default() },
                    AclAction::Accept,
                )
            })
            .collect();
        if rotate {
            acl.rotate_left(1);
        }
        RuleSet { targets: vec![target(pf::DROP_ALL)], acl, ..Default::default() }
    };
    let (a, b) = (make(false), make(true));
    let pkt = PacketBuilder::ipv4([10, 1, 244, 9], DST4).udp(1, 1500).build(); // i = 500
    let mut d = dp_with(&a);
    assert_eq!(run(&d, &pkt), (XDP_PASS, AclAccepted));
    assert_eq!(d.acl_stats(500).unwrap().packets, 1);

    let fd = d.program_fd().unwrap();
    let stop = AtomicBool::new(false);
    let (runs, drops) = (AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                if raw_test_run(&fd, &pkt) != XDP_PASS {
                    drops.fetch_add(1, Ordering::Relaxed);
                }
                runs.fetch_add(1, Ordering::Relaxed);
            }
        });
        // Stops the runner however this thread leaves the scope (a failed
        // assertion included), or the scope would wait for it forever.
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = Stop(&stop);
        for round in 0..4 {
            let (set, idx) = if round % 2 == 0 { (&b, 499) } else { (&a, 500) };
            let gen = d.active_generation();
            d.apply(set).unwrap();
            assert_ne!(d.active_generation(), gen, "the generation flipped");
            assert_eq!(d.current_rules().acl, set.acl);
            let before = d.acl_stats(idx).unwrap().packets;
            d.test_run(&pkt).unwrap();
            // At least: the runner thread's packets match the same entry.
            assert!(d.acl_stats(idx).unwrap().packets > before, "round {round}: entry {idx} matched");
        }
    });
    let runs = runs.load(Ordering::Relaxed);
    eprintln!("{runs} runs during 4 swaps of 1000 entries");
    assert!(runs > 100, "the runner thread ran ({runs})");
    assert_eq!(drops.load(Ordering::Relaxed), 0, "a packet saw a mix of generations");
    assert_eq!(d.target_stats(3).unwrap().dropped.iter().map(|c| c.packets).sum::<u64>(), 0);
}

#[test]
fn adopted_pins_keep_the_acl() {
    let dir = std::path::PathBuf::from(format!("/sys/fs/bpf/mitigator-acl-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = DataplaneOptions { pin_dir: Some(dir.clone()), ..Default::default() };
    let rules = acl_only(vec![
        entry(
            5,
            AclMatch { dst_ports: Some(port_ranges(PortOp::Neq, 53)), protocol: Some(17), ..Default::default() },
            AclAction::Drop,
        ),
        entry(
            6,
            AclMatch { family: Some(AclFamily::V6), dst: Some(net("2001:db8:2::7/128")), ..Default::default() },
            AclAction::RateLimit { bytes_per_sec: 1_000_000 },
        ),
    ]);
    {
        let mut d = Dataplane::open(&opts).unwrap();
        d.apply(&rules).unwrap();
        d.test_run(&v4().udp(1, 54).build()).unwrap();
    }
    let mut d = Dataplane::open(&opts).unwrap();
    assert!(d.adopted());
    assert_eq!(d.current_rules(), rules);
    assert_eq!(d.acl_stats_by_id(5).unwrap().packets, 1, "counters survive the restart");
    assert_eq!(run(&d, &v4().udp(1, 54).build()), (XDP_DROP, AclDropped));
    // The mirror is exact: a change diffs correctly.
    d.apply(&acl_only(vec![rules.acl[1].clone()])).unwrap();
    assert_eq!(run(&d, &v4().udp(1, 54).build()), (XDP_PASS, NoMatch));
    d.uninstall().unwrap();
}
