//! Verdict tests of the SYN proxy and the aggregate limit through
//! BPF_PROG_TEST_RUN. The SYN proxy looks up the host's sockets in the
//! network namespace the run happens in (this test's): each test opens a
//! real listener (or connection) on a port of its own, and the crafted
//! packets name that port. Needs root (BPF).

mod verdicts_common;

use std::net::{Ipv6Addr, TcpListener, TcpStream};

use ipnet::IpNet;
use mitigator::dataplane::{testpkt::PacketBuilder, Dataplane, DataplaneOptions, RuleSet, TargetRule};
use mitigator_common::{policy_flags as pf, DropReason, IfaceVerdict, Policy, SynProxyConfig};
use verdicts_common::run;

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

const CLIENT4: [u8; 4] = [192, 0, 2, 1];
const SERVER4: [u8; 4] = [198, 51, 100, 7];
const CLIENT6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const SERVER6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
const ID: u32 = 3;
const CFG: SynProxyConfig = SynProxyConfig { mss4: 1460, mss6: 1440, wscale: 7, ttl: 64, ready: 1, timestamps: 0 };

const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;

/// Linux's SYN options: MSS 1460, SACK permitted, timestamps (TSval
/// 0x01020304), NOP, window scale 7.
const LINUX_SYN_OPTS: [u8; 20] = [2, 4, 5, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 0, 0, 0, 0, 1, 3, 3, 7];

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn policy(flags: u32) -> Policy {
    let mut p = Policy::empty();
    p.flags = flags | pf::ACTIVE;
    p.protos = [u64::MAX; 4];
    p
}

/// A data plane with one target (SERVER4, SERVER6, 127.0.0.1, ::1) under
/// `pol`, the SYN proxy configured as the daemon does.
fn dp(pol: Policy) -> Dataplane {
    dp_with(pol, CFG)
}

/// With timestamps (and the window scale and SACK they carry) echoed.
const CFG_TS: SynProxyConfig = SynProxyConfig { timestamps: 1, ..CFG };

fn dp_with(pol: Policy, cfg: SynProxyConfig) -> Dataplane {
    let mut d = Dataplane::open(&DataplaneOptions::default()).expect("open dataplane (root needed)");
    d.set_syn_proxy(cfg).unwrap();
    d.apply(&RuleSet {
        targets: vec![TargetRule {
            id: ID,
            prefixes: vec![net("198.51.100.7/32"), net("2001:db8:2::7/128"), net("127.0.0.1/32"), net("::1/128")],
            policy: pol,
        }],
        ..Default::default()
    })
    .unwrap();
    d
}

/// A TCP segment: Ethernet, IPv4 or IPv6 (no options), TCP with `opts`.
#[allow(clippy::too_many_arguments)]
fn segment(src: &[u8], dst: &[u8], sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, opts: &[u8]) -> Vec<u8> {
    let b = match (src.len(), dst.len()) {
        (16, 16) => PacketBuilder::ipv6(src.try_into().unwrap(), dst.try_into().unwrap()),
        _ => PacketBuilder::ipv4(src.try_into().unwrap(), dst.try_into().unwrap()).dont_fragment(),
    };
    b.tcp(sport, dport, flags).tcp_seq_ack(seq, ack).tcp_options(opts).build()
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The one's-complement sum of `data` (16-bit words, odd byte padded).
fn sum(data: &[u8]) -> u32 {
    data.chunks(2).map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32).sum()
}

fn folds_to_zero(mut s: u32) -> bool {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s == 0xffff
}

/// Where a frame's IP and TCP headers start (no VLAN, no IP options).
fn offsets(frame: &[u8]) -> (usize, usize, bool) {
    let v6 = frame[12..14] == [0x86, 0xdd];
    (14, if v6 { 54 } else { 34 }, v6)
}

/// Checks that `out` is the SYN-ACK for `syn` with the options the
/// client asked for, valid checksums included; returns its cookie.
fn check_syn_ack(syn: &[u8], out: &[u8], want_opts: &[u8]) -> u32 {
    let (l3, l4, v6) = offsets(syn);
    assert_eq!(&out[0..6], &syn[6..12], "Ethernet destination is the SYN's source");
    assert_eq!(&out[6..12], &syn[0..6], "Ethernet source is the SYN's destination");
    let (alen, src_at, dst_at) = if v6 { (16, 8, 24) } else { (4, 12, 16) };
    assert_eq!(&out[l3 + src_at..l3 + src_at + alen], &syn[l3 + dst_at..l3 + dst_at + alen], "IP source");
    assert_eq!(&out[l3 + dst_at..l3 + dst_at + alen], &syn[l3 + src_at..l3 + src_at + alen], "IP destination");
    let t = &out[l4..];
    let tcp_len = ((t[12] >> 4) as usize) * 4;
    assert_eq!(out.len(), l4 + tcp_len, "the frame is exactly the SYN-ACK (payload cut)");
    if v6 {
        assert_eq!(u16::from_be_bytes([out[l3 + 4], out[l3 + 5]]) as usize, tcp_len, "IPv6 payload length");
        assert_eq!(out[l3 + 7], CFG.ttl, "hop limit");
    } else {
        assert_eq!(u16::from_be_bytes([out[l3 + 2], out[l3 + 3]]) as usize, 20 + tcp_len, "IPv4 total length");
        assert_eq!(out[l3 + 8], CFG.ttl, "TTL");
        assert!(folds_to_zero(sum(&out[l3..l3 + 20])), "IPv4 header checksum");
    }
    let s = &syn[l4..];
    assert_eq!(&t[0..2], &s[2..4], "source port");
    assert_eq!(&t[2..4], &s[0..2], "destination port");
    assert_eq!(be32(&t[8..12]), be32(&s[4..8]).wrapping_add(1), "ACK number = the SYN's sequence + 1");
    assert_eq!(t[13], SYN | ACK, "flags");
    // Pseudo-header: addresses, protocol, TCP length.
    let pseudo = sum(&out[l3 + src_at..l3 + dst_at + alen]) + 6 + tcp_len as u32;
    assert!(folds_to_zero(pseudo + sum(&out[l4..])), "TCP checksum");
    let opts = &t[20..tcp_len];
    // The timestamp value is ours: compare everything else.
    let mut got = opts.to_vec();
    if let Some(i) = got.windows(2).position(|w| w == [8, 10]) {
        got[i + 2..i + 6].copy_from_slice(&[0; 4]);
    }
    assert_eq!(got, want_opts, "SYN-ACK options {opts:02x?}");
    be32(&t[4..8])
}

/// A listener on a free port of every address (IPv4 and IPv6).
fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind((Ipv6Addr::UNSPECIFIED, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

#[test]
fn syn_to_a_listener_is_answered_with_a_cookie_and_its_ack_checked_ipv4() {
    let d = dp(policy(pf::SYN_PROXY));
    let (_l, port) = listener();
    let syn = segment(&CLIENT4, &SERVER4, 40000, port, 1000, 0, SYN, &LINUX_SYN_OPTS);
    let (action, out) = d.test_run_out(&syn).unwrap();
    assert_eq!(action, XDP_TX);
    // Without timestamps (the default): our MSS alone.
    let cookie = check_syn_ack(&syn, &out, &[2, 4, 0x05, 0xb4]);
    let stats = d.target_stats(ID).unwrap();
    assert_eq!(stats.dropped[DropReason::SynCookie as usize].packets, 1, "{stats:?}");

    // The ACK completing it passes (to nftables' synproxy), as does data
    // sent right behind it; a wrong cookie is dropped.
    let good = segment(&CLIENT4, &SERVER4, 40000, port, 1001, cookie.wrapping_add(1), ACK, &[]);
    assert_eq!(run(&d, &good), (XDP_PASS, IfaceVerdict::TargetPassed));
    let data = segment(&CLIENT4, &SERVER4, 40000, port, 1001, cookie.wrapping_add(1), ACK | PSH, &[]);
    assert_eq!(run(&d, &data), (XDP_PASS, IfaceVerdict::TargetPassed));
    let bad = segment(&CLIENT4, &SERVER4, 40000, port, 1001, cookie.wrapping_add(2), ACK, &[]);
    assert_eq!(run(&d, &bad), (XDP_DROP, IfaceVerdict::TargetDropped));
    let other_client = segment(&[192, 0, 2, 99], &SERVER4, 40000, port, 1001, cookie.wrapping_add(1), ACK, &[]);
    assert_eq!(run(&d, &other_client), (XDP_DROP, IfaceVerdict::TargetDropped), "a cookie is bound to its 4-tuple");
    for flags in [RST, RST | ACK, FIN | ACK, SYN | ACK] {
        let p = segment(&CLIENT4, &SERVER4, 40001, port, 5, 6, flags, &[]);
        assert_eq!(run(&d, &p), (XDP_DROP, IfaceVerdict::TargetDropped), "flags {flags:#x} of no connection");
    }
    let stats = d.target_stats(ID).unwrap();
    assert_eq!(stats.dropped[DropReason::SynProxy as usize].packets, 6, "{stats:?}");
    assert_eq!(stats.passed.packets, 2, "{stats:?}");
}

#[test]
fn syn_to_a_listener_is_answered_with_a_cookie_and_its_ack_checked_ipv6() {
    let d = dp(policy(pf::SYN_PROXY));
    let (_l, port) = listener();
    // No options at all (as hping3 sends): MSS alone comes back.
    let syn = segment(&CLIENT6, &SERVER6, 40000, port, 77, 0, SYN, &[]);
    let (action, out) = d.test_run_out(&syn).unwrap();
    assert_eq!(action, XDP_TX);
    let cookie = check_syn_ack(&syn, &out, &[2, 4, 0x05, 0xa0]);
    let good = segment(&CLIENT6, &SERVER6, 40000, port, 78, cookie.wrapping_add(1), ACK, &[]);
    assert_eq!(run(&d, &good), (XDP_PASS, IfaceVerdict::TargetPassed));
    let bad = segment(&CLIENT6, &SERVER6, 40000, port, 78, cookie ^ 0x100, ACK, &[]);
    assert_eq!(run(&d, &bad), (XDP_DROP, IfaceVerdict::TargetDropped));

}

#[test]
fn with_timestamps_the_syn_ack_echoes_them_with_window_scale_and_sack() {
    let d = dp_with(policy(pf::SYN_PROXY), CFG_TS);
    let (_l, port) = listener();
    let syn = segment(&CLIENT4, &SERVER4, 40000, port, 1000, 0, SYN, &LINUX_SYN_OPTS);
    let (action, out) = d.test_run_out(&syn).unwrap();
    assert_eq!(action, XDP_TX);
    // MSS ours; SACK permitted and timestamps (TSecr = the client's TSval);
    // window scale ours.
    let cookie = check_syn_ack(&syn, &out, &[2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 0, 1, 2, 3, 4, 1, 3, 3, 7]);
    // The client's window scale (7) and SACK sit in our timestamp's low
    // bits, where netfilter's synproxy reads them back.
    let tsval = be32(&out[34 + 28..34 + 32]);
    assert_eq!(tsval & 0x3f, 7 | 1 << 4, "options in the timestamp value {tsval:#x}");
    let good = segment(&CLIENT4, &SERVER4, 40000, port, 1001, cookie.wrapping_add(1), ACK, &[]);
    assert_eq!(run(&d, &good), (XDP_PASS, IfaceVerdict::TargetPassed));

    // IPv6: window scale without timestamps, SACK alone: nothing but the
    // MSS can come back through a cookie without timestamps.
    let syn = segment(&CLIENT6, &SERVER6, 40002, port, 9, 0, SYN, &[2, 4, 5, 0x8c, 1, 3, 3, 9, 4, 2, 1, 1]);
    let (action, out) = d.test_run_out(&syn).unwrap();
    assert_eq!(action, XDP_TX);
    check_syn_ack(&syn, &out, &[2, 4, 0x05, 0xa0]);
}

#[test]
fn segments_of_established_connections_pass_untouched() {
    let d = dp(policy(pf::SYN_PROXY));
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _s = l.accept().unwrap();
    let cport = c.local_addr().unwrap().port();
    let lo = [127, 0, 0, 1];
    for flags in [ACK, ACK | PSH, FIN | ACK, RST] {
        let p = segment(&lo, &lo, cport, port, 123, 456, flags, &[]);
        assert_eq!(run(&d, &p), (XDP_PASS, IfaceVerdict::TargetPassed), "flags {flags:#x} of a connection");
    }
    // The same port from a port with no connection: dropped.
    let p = segment(&lo, &lo, cport.wrapping_add(1), port, 123, 456, ACK, &[]);
    assert_eq!(run(&d, &p), (XDP_DROP, IfaceVerdict::TargetDropped));
}

#[test]
fn ports_without_a_listener_are_not_the_proxys() {
    let d = dp(policy(pf::SYN_PROXY));
    // A port nobody listens on (bound and closed: free for a moment).
    let port = listener().1;
    for flags in [SYN, ACK, RST] {
        let p = segment(&CLIENT4, &SERVER4, 40000, port, 1, 2, flags, &[]);
        assert_eq!(run(&d, &p), (XDP_PASS, IfaceVerdict::TargetPassed), "flags {flags:#x}");
    }
    // Nor UDP.
    let mut udp = segment(&CLIENT4, &SERVER4, 40000, port, 1, 2, SYN, &[]);
    udp[23] = 17;
    assert_eq!(run(&d, &udp), (XDP_PASS, IfaceVerdict::TargetPassed));
}

#[test]
fn syn_proxy_answers_nothing_until_configured() {
    let mut d = Dataplane::open(&DataplaneOptions::default()).unwrap();
    d.apply(&RuleSet {
        targets: vec![TargetRule { id: ID, prefixes: vec![net("198.51.100.7/32")], policy: policy(pf::SYN_PROXY) }],
        ..Default::default()
    })
    .unwrap();
    let (_l, port) = listener();
    let syn = segment(&CLIENT4, &SERVER4, 40000, port, 1, 0, SYN, &[]);
    assert_eq!(run(&d, &syn), (XDP_PASS, IfaceVerdict::TargetPassed));
}

#[test]
fn aggregate_limit_caps_all_sources_together_for_its_protocols() {
    let mut pol = policy(pf::AGGREGATE);
    pol.agg_pps = 1;
    pol.agg_pps_burst = 5;
    pol.agg_protos[0] = 1 << 17; // UDP
    let d = dp(pol);
    let udp = |src: u8| {
        let mut p = segment(&[192, 0, 2, src], &SERVER4, 1000, 53, 0, 0, 0, &[]);
        p[23] = 17;
        p
    };
    // Five sources, one packet each: the burst.
    for src in 1..=5 {
        assert_eq!(run(&d, &udp(src)), (XDP_PASS, IfaceVerdict::TargetPassed), "source {src}");
    }
    // A sixth source is over the aggregate, whoever it is.
    assert_eq!(run(&d, &udp(6)), (XDP_DROP, IfaceVerdict::TargetDropped));
    let stats = d.target_stats(ID).unwrap();
    assert_eq!(stats.dropped[DropReason::Aggregate as usize].packets, 1, "{stats:?}");
    // TCP is not counted against it.
    let tcp = segment(&CLIENT4, &SERVER4, 1000, 80, 0, 0, ACK, &[]);
    assert_eq!(run(&d, &tcp), (XDP_PASS, IfaceVerdict::TargetPassed));
}
