//! Guard verdict tests: the daemon's own DOTS listeners (compiler::guard)
//! through BPF_PROG_TEST_RUN: a drop-all target of the host passes a
//! listener's packets within the listener's byte bucket and drops them
//! above it; the drop-list still comes first, a client's ACL after; a
//! packet that no target would drop never meets the guard. Needs root
//! (BPF). Each test opens its own unpinned Dataplane.

use std::time::Instant;

use ipnet::IpNet;
use mitigator::{
    compiler::guard::{listeners, Listener},
    config::Config,
    dataplane::{testpkt::*, AclAction, AclEntry, AclMatch, Dataplane, DataplaneOptions, RuleSet, TargetRule},
};
use mitigator_common::{policy_flags as pf, GuardEntry, IfaceVerdict, Policy};

mod verdicts_common;
use verdicts_common::run;

use IfaceVerdict::{AclDropped, DropListed, GuardDropped, GuardPassed, NoMatch, TargetDropped, TargetPassed};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

const DST4: [u8; 4] = [198, 51, 100, 7];
const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// UDP payload making a 512-byte IPv4 frame: three of them are 1536
/// bytes, just over the smallest guard rate (1514).
const PAYLOAD: usize = 512 - 14 - 20 - 8;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// The entries of the listeners `config` guards, as the daemon puts them.
fn guard_of(config: &str) -> Vec<GuardEntry> {
    listeners(&Config::parse(config).unwrap()).iter().map(Listener::entry).collect()
}

/// A drop-all target of DST4 and DST6 for `protos` (empty: all) and
/// destination ports `ports` (empty: all).
fn drop_all(protos: &[u8], ports: &[(u16, u16)]) -> TargetRule {
    let mut p = Policy::empty();
    p.flags = pf::DROP_ALL | pf::ACTIVE;
    p.protos = if protos.is_empty() { [u64::MAX; 4] } else { [0; 4] };
    for &x in protos {
        p.protos[x as usize / 64] |= 1 << (x % 64);
    }
    for (i, &(lo, hi)) in ports.iter().enumerate() {
        p.ports[i] = mitigator_common::PortRange { lo, hi };
    }
    p.n_ports = ports.len() as u32;
    TargetRule { id: 3, prefixes: vec![net("198.51.100.7/32"), net("2001:db8:2::7/128")], policy: p }
}

fn dp_with(rules: &RuleSet) -> Dataplane {
    let mut d = Dataplane::open(&DataplaneOptions::default()).expect("open dataplane (root needed)");
    d.apply(rules).unwrap();
    d
}

fn to_dst(src_last: u8, dport: u16) -> Vec<u8> {
    PacketBuilder::ipv4([192, 0, 2, src_last], DST4).udp(40000, dport).payload(PAYLOAD).build()
}

/// The default listeners (UDP 4646, TCP 4646, TCP 4443, any address) at
/// three frames a second: on a drop-all target of every port, the first 3
/// packets to UDP 4646 pass, whatever their sources, the rest drop, as long
/// as less than a third of a second (the time to earn one more frame)
/// passes between the first and the last. Other ports stay dropped by the
/// target, and each listener has its own bucket.
#[test]
fn guarded_port_on_drop_all_target_passes_within_the_bucket_only() {
    let l = to_dst(1, 4646).len() as u64;
    assert_eq!(l, 512);
    let guard = guard_of(&format!("[signal]\nguard_bytes_per_s = {}\n", 3 * l));
    assert_eq!(guard.len(), 3);
    for attempt in 0..3 {
        let d = dp_with(&RuleSet { targets: vec![drop_all(&[], &[])], guard: guard.clone(), ..Default::default() });
        let t0 = Instant::now();
        let verdicts: Vec<_> = (0..10u8).map(|i| run(&d, &to_dst(i, 4646))).collect();
        if t0.elapsed().as_millis() > 300 {
            eprintln!("attempt {attempt}: too slow to be exact ({:?}), again", t0.elapsed());
            continue;
        }
        let want: Vec<_> =
            (0..10).map(|i| if i < 3 { (XDP_PASS, GuardPassed) } else { (XDP_DROP, GuardDropped) }).collect();
        assert_eq!(verdicts, want);
        // Every matched packet is counted, passed or not; the others' not.
        let c = d.guard_stats(0).unwrap();
        assert_eq!((c.packets, c.bytes), (10, 10 * l));
        assert_eq!(d.guard_stats(1).unwrap().packets, 0);
        // Another port: the target's drop, untouched by the guard.
        assert_eq!(run(&d, &to_dst(1, 4647)), (XDP_DROP, TargetDropped));
        // TCP 4443 (data channel) has a full bucket of its own, over IPv6 too.
        let tls = PacketBuilder::ipv6(SRC6, DST6).tcp(40000, 4443, TCP_SYN).build();
        assert_eq!(run(&d, &tls), (XDP_PASS, GuardPassed));
        assert_eq!(d.guard_stats(2).unwrap().packets, 1);
        return;
    }
    panic!("three attempts too slow");
}

/// Accept-list → drop-list → guard → client ACL → target: a drop-listed
/// source stays dropped, a client's drop-everything ACE does not cut the
/// listener (whether or not a target covers the destination), and it
/// still drops everything else.
#[test]
fn guard_after_the_drop_list_and_before_client_acls() {
    let rules = RuleSet {
        targets: vec![drop_all(&[], &[])],
        drop: vec![net("192.0.2.66/32")],
        acl: vec![AclEntry { stat_id: 1, matches: AclMatch::default(), action: AclAction::Drop }],
        guard: guard_of(""),
        ..Default::default()
    };
    let d = dp_with(&rules);
    assert_eq!(run(&d, &to_dst(66, 4646)), (XDP_DROP, DropListed));
    assert_eq!(run(&d, &to_dst(1, 4646)), (XDP_PASS, GuardPassed));
    let elsewhere = PacketBuilder::ipv4([192, 0, 2, 1], [203, 0, 113, 9]).udp(40000, 4646).build();
    assert_eq!(run(&d, &elsewhere), (XDP_PASS, GuardPassed), "no target, but the ACL could drop it");
    assert_eq!(run(&d, &to_dst(1, 53)), (XDP_DROP, AclDropped));
    assert_eq!(d.guard_stats(0).unwrap().packets, 2);
}

/// Without client ACLs only a target can drop, and only in its scope: a
/// listener's packet out of every target's scope (or to no target) passes
/// as before, without meeting the guard; a listener of another address
/// or family does not cover the target's address.
#[test]
fn guard_only_where_a_target_would_drop() {
    // Scoped to UDP 53: UDP 4646 is out of scope.
    let d = dp_with(&RuleSet { targets: vec![drop_all(&[17], &[(53, 53)])], guard: guard_of(""), ..Default::default() });
    assert_eq!(run(&d, &to_dst(1, 4646)), (XDP_PASS, TargetPassed));
    let elsewhere = PacketBuilder::ipv4([192, 0, 2, 1], [203, 0, 113, 9]).udp(40000, 4646).build();
    assert_eq!(run(&d, &elsewhere), (XDP_PASS, NoMatch));
    assert_eq!(run(&d, &to_dst(1, 53)), (XDP_DROP, TargetDropped));
    assert_eq!(d.guard_stats(0).unwrap().packets, 0, "never consulted");

    // UDP listeners on 0.0.0.0 (IPv4 only) and 192.0.2.1 only.
    let guard = guard_of("[signal]\ndtls_listen = [\"0.0.0.0:5000\", \"192.0.2.1:4646\"]\ntls_listen = []\n[data_channel]\nenabled = false\n");
    assert_eq!(guard.len(), 2);
    let d = dp_with(&RuleSet { targets: vec![drop_all(&[], &[])], guard, ..Default::default() });
    assert_eq!(run(&d, &to_dst(1, 4646)), (XDP_DROP, TargetDropped), "not the listener's address");
    assert_eq!(run(&d, &to_dst(1, 5000)), (XDP_PASS, GuardPassed));
    let v6 = PacketBuilder::ipv6(SRC6, DST6).udp(40000, 5000).build();
    assert_eq!(run(&d, &v6), (XDP_DROP, TargetDropped), "0.0.0.0 is IPv4 only");
    let tcp = PacketBuilder::ipv4([192, 0, 2, 1], DST4).tcp(40000, 5000, TCP_SYN).build();
    assert_eq!(run(&d, &tcp), (XDP_DROP, TargetDropped), "a UDP listener's port over TCP");
}

/// Entries are kept across rule changes (the daemon puts the same list on
/// every apply), with their counters; a changed list starts its changed
/// slots afresh, and an empty one turns the guard off.
#[test]
fn entries_follow_the_list_and_keep_their_counters() {
    let guard = guard_of("");
    let mut d = dp_with(&RuleSet { targets: vec![drop_all(&[], &[])], guard: guard.clone(), ..Default::default() });
    assert_eq!(run(&d, &to_dst(1, 4646)), (XDP_PASS, GuardPassed));
    d.apply(&RuleSet { targets: vec![drop_all(&[], &[]), TargetRule { id: 4, prefixes: vec![net("203.0.113.0/24")], ..drop_all(&[], &[]) }], guard: guard.clone(), ..Default::default() }).unwrap();
    assert_eq!(d.guard_stats(0).unwrap().packets, 1, "same entry, same counters");
    assert_eq!(d.current_rules().guard, guard);

    let other = guard_of("[signal]\ndtls_listen = [\"[::]:5000\"]\n");
    d.apply(&RuleSet { targets: vec![drop_all(&[], &[])], guard: other, ..Default::default() }).unwrap();
    assert_eq!(d.guard_stats(0).unwrap().packets, 0, "another listener in slot 0");
    assert_eq!(run(&d, &to_dst(1, 4646)), (XDP_DROP, TargetDropped));
    assert_eq!(run(&d, &to_dst(1, 5000)), (XDP_PASS, GuardPassed));

    d.apply(&RuleSet { targets: vec![drop_all(&[], &[])], ..Default::default() }).unwrap();
    assert_eq!(run(&d, &to_dst(1, 5000)), (XDP_DROP, TargetDropped), "guard off");
    // More than the data plane holds is refused.
    let nine = vec![guard_of("")[0]; 9];
    assert!(d.apply(&RuleSet { guard: nine, ..Default::default() }).is_err());
}
