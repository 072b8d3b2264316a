//! Bench-only helper for `cargo xtask bench` (not part of the daemon): it
//! drives `mitigator::dataplane` the way the benchmark needs and prints
//! tab-separated lines that xtask parses. Needs root (BPF).
//!
//! ```text
//! bench_dataplane serve <pkt-dir>
//!     loads one Dataplane per rule set, writes each case's packet to
//!     <pkt-dir>/<case>.bin, prints
//!         prog  <ruleset> <kernel prog id>
//!         case  <name> <ruleset> <file> <expected action>
//!         ready
//!     then answers stdin commands until EOF (the programs stay loaded, so
//!     `bpftool prog run id …` can run them meanwhile):
//!         aya <case> <repeat>   →   <action> <avg ns>
//! bench_dataplane scale <repeat> <rounds> <size,size,…>
//!     for host routes (/32), LPM prefixes (/24), drop-list entries and
//!     data-channel ACL entries (at most MAX_ACL_ENTRIES):
//!         scale <kind> <n> <apply ms> <median ns> <min ns> <action>
//!               <median ns uncached> <min ns uncached>
//! bench_dataplane synproxy <rounds>
//!     the SYN proxy's cases against a target with the default profile's
//!     countermeasures and a real listener in this network namespace:
//!         synproxy <case> <action> <median ns> <min ns>
//!     each a single test run per round (the program rewrites a SYN into its
//!     SYN-ACK in place, and a repeated test run does not restore the
//!     frame): `no-match-single` measures the same way, to subtract what a
//!     single run costs beyond the program.
//! ```

use std::{
    collections::BTreeMap,
    io::{BufRead, Write},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{bail, Context, Result};
use ipnet::IpNet;
use mitigator::dataplane::{
    testpkt::{Ext, PacketBuilder, TCP_ACK, TCP_SYN},
    AclAction, AclEntry, AclMatch, Dataplane, DataplaneOptions, RuleSet, TargetRule,
};
use aya::maps::Array;
use mitigator_common::{policy_flags as pf, IfaceSlot, Policy, PortRange, MAX_ACL_ENTRIES};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

/// The packets of the per-packet table; addresses match `rule_sets`.
const SRC: [u8; 4] = [192, 0, 2, 1];
const LISTED_SRC: [u8; 4] = [192, 0, 2, 66];
const ELSEWHERE: [u8; 4] = [203, 0, 113, 99];
const PASS_DST: [u8; 4] = [198, 51, 100, 7];
const SCOPE_DST: [u8; 4] = [198, 51, 100, 8];
/// The drop-all target of every protocol and port.
const ALL_PORTS_DST: [u8; 4] = [198, 51, 100, 10];
const RATE_DST: [u8; 4] = [198, 51, 100, 9];
const SRC6: &str = "2001:db8:1::1";
const SCOPE_DST6: &str = "2001:db8:2::8";
/// The reflection ports of the default configuration.
const REFLECTION_PORTS: &[u16] = &[17, 19, 53, 111, 123, 137, 161, 389, 520, 1434, 1900, 3283, 3702, 5353, 5683, 10001, 11211];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["serve", dir] => serve(Path::new(dir)),
        ["synproxy", rounds] => synproxy(rounds.parse()?),
        ["scale", repeat, rounds, sizes] => {
            let sizes: Vec<u32> = sizes.split(',').map(str::parse).collect::<Result<_, _>>()?;
            scale(repeat.parse()?, rounds.parse()?, &sizes)
        }
        _ => bail!("usage: bench_dataplane serve <pkt-dir> | scale <repeat> <rounds> <sizes> | synproxy <rounds>"),
    }
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

fn net(s: &str) -> IpNet {
    s.parse().expect("constant prefix")
}

/// Drop everything TCP to port 80 of SCOPE_DST (v4 and v6).
fn scope_target(id: u32) -> TargetRule {
    TargetRule { id, prefixes: vec![net("198.51.100.8/32"), net("2001:db8:2::8/128")], policy: policy(pf::DROP_ALL, &[6], &[(80, 80)]) }
}

/// The rule sets the cases run against, by name.
fn rule_sets() -> BTreeMap<&'static str, RuleSet> {
    let all = &[1, 6, 17, 58, 132];
    // The default profile's stateless checks; TCP ACKs pass all of them.
    let checks = policy(pf::DROP_FRAGMENTS | pf::DROP_REFLECTION | pf::DROP_BAD_TCP_FLAGS, all, &[]);
    let mut rate = policy(pf::RATE_LIMIT_SRC, all, &[]);
    rate.src_pps = 1;
    rate.src_pps_burst = 1;
    let targets = vec![
        TargetRule { id: 1, prefixes: vec![net("198.51.100.7/32")], policy: checks },
        scope_target(2),
        TargetRule { id: 3, prefixes: vec![net("198.51.100.9/32")], policy: rate },
    ];
    let mut m = BTreeMap::new();
    m.insert("empty", RuleSet::default());
    // The same, left without the interface-counter entry that the others
    // get for the test run's ifindex (see `add_test_run_iface_entry`).
    m.insert("empty-no-iface-entry", RuleSet::default());
    m.insert("one-target", RuleSet { targets: vec![scope_target(2)], ..Default::default() });
    m.insert("one-target-uncached", RuleSet { targets: vec![scope_target(2)], ..Default::default() });
    m.insert("targets", RuleSet { targets: targets.clone(), ..Default::default() });
    m.insert("targets-uncached", RuleSet { targets: targets.clone(), ..Default::default() });
    m.insert("targets+drop-list", RuleSet { targets, drop: vec![net("192.0.2.66/32")], ..Default::default() });
    // A drop-all target of every protocol and port, as `mitigator protect`
    // of the host's own address makes it: alone, and with the daemon's
    // guard of its own DOTS listeners (the default configuration's; see
    // compiler/guard.rs), which the program walks for every in-scope packet.
    let mut every = policy(pf::DROP_ALL, &[], &[]);
    every.protos = [u64::MAX; 4]; // no protocol named: all of them (compiler::protocol_bitmap)
    let all_ports = vec![TargetRule { id: 4, prefixes: vec![net("198.51.100.10/32")], policy: every }];
    let cfg = mitigator::config::Config::parse("").expect("the default configuration");
    let guard: Vec<_> = mitigator::compiler::guard::listeners(&cfg).iter().map(|l| l.entry()).collect();
    assert!(!guard.is_empty(), "the default configuration guards its DOTS listeners");
    m.insert("all-ports", RuleSet { targets: all_ports.clone(), ..Default::default() });
    m.insert("all-ports+guard", RuleSet { targets: all_ports, guard, ..Default::default() });
    m
}

struct Case {
    name: &'static str,
    rules: &'static str,
    pkt: Vec<u8>,
    expect: u32,
}

fn cases() -> Vec<Case> {
    let v6 = |s: &str| s.parse::<Ipv6Addr>().expect("constant").octets();
    let c = |name, rules, b: PacketBuilder, expect| Case { name, rules, pkt: b.build(), expect };
    vec![
        c("no-match-empty", "empty", PacketBuilder::ipv4(SRC, ELSEWHERE).tcp(40000, 443, TCP_ACK), XDP_PASS),
        c("no-match-empty-raw", "empty-no-iface-entry", PacketBuilder::ipv4(SRC, ELSEWHERE).tcp(40000, 443, TCP_ACK), XDP_PASS),
        c("no-match-1-target", "one-target", PacketBuilder::ipv4(SRC, ELSEWHERE).tcp(40000, 443, TCP_ACK), XDP_PASS),
        c("no-match-1-target-uncached", "one-target-uncached", PacketBuilder::ipv4(SRC, ELSEWHERE).tcp(40000, 443, TCP_ACK), XDP_PASS),
        c("matched-passed", "targets", PacketBuilder::ipv4(SRC, PASS_DST).tcp(40000, 443, TCP_ACK), XDP_PASS),
        c("drop-scope", "targets", PacketBuilder::ipv4(SRC, SCOPE_DST).tcp(40000, 80, TCP_SYN), XDP_DROP),
        c("drop-scope-uncached", "targets-uncached", PacketBuilder::ipv4(SRC, SCOPE_DST).tcp(40000, 80, TCP_SYN), XDP_DROP),
        c("drop-all-ports", "all-ports", PacketBuilder::ipv4(SRC, ALL_PORTS_DST).tcp(40000, 80, TCP_SYN), XDP_DROP),
        c("drop-all-ports-guarded", "all-ports+guard", PacketBuilder::ipv4(SRC, ALL_PORTS_DST).tcp(40000, 80, TCP_SYN), XDP_DROP),
        c("drop-list", "targets+drop-list", PacketBuilder::ipv4(LISTED_SRC, ELSEWHERE).tcp(40000, 443, TCP_ACK), XDP_DROP),
        c("rate-limited", "targets", PacketBuilder::ipv4(SRC, RATE_DST).udp(40000, 5000).payload(64), XDP_DROP),
        c(
            "ipv6-ext-scope",
            "targets",
            PacketBuilder::ipv6(v6(SRC6), v6(SCOPE_DST6))
                .ext(Ext::HopByHop)
                .ext(Ext::Routing)
                .ext(Ext::DestOpts { extra: 0 })
                .tcp(40000, 80, TCP_SYN),
            XDP_DROP,
        ),
        c(
            "double-vlan-scope",
            "targets",
            PacketBuilder::ipv4(SRC, SCOPE_DST).vlan(0x88A8, 100).vlan(0x8100, 200).tcp(40000, 80, TCP_SYN),
            XDP_DROP,
        ),
    ]
}

/// Ids of the BPF programs this process holds open, read from
/// /proc/self/fdinfo: how we name our loaded program to `bpftool` without
/// touching the dataplane's internals.
fn own_prog_ids() -> Result<Vec<u32>> {
    let mut ids = vec![];
    for e in std::fs::read_dir("/proc/self/fd")? {
        let fd = e?.file_name();
        let link = std::fs::read_link(Path::new("/proc/self/fd").join(&fd)).unwrap_or_default();
        if link.to_string_lossy() != "anon_inode:bpf-prog" {
            continue;
        }
        let info = std::fs::read_to_string(Path::new("/proc/self/fdinfo").join(&fd)).unwrap_or_default();
        if let Some(id) = info.lines().find_map(|l| l.strip_prefix("prog_id:")) {
            ids.push(id.trim().parse()?);
        }
    }
    Ok(ids)
}

/// Test runs see the loopback device's ifindex (1), which has no slot in
/// the interface-counter table, so the program counts them under slot 0
/// after one probe of the table. An attached interface's packets find
/// their own entry instead: this gives ifindex 1 an entry (slot 1), as
/// `attach` would, so that test runs cost what attached runs do.
fn add_test_run_iface_entry(prog_id: u32) -> Result<()> {
    let prog = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == prog_id)
        .with_context(|| format!("program {prog_id} not loaded"))?;
    for id in prog.map_ids()?.unwrap_or_default() {
        if aya::maps::MapInfo::from_id(id)?.name_as_str() != Some("MTG_IFACE_SLOTS") {
            continue;
        }
        let map = aya::maps::Map::from_map_data(aya::maps::MapData::from_id(id)?)?;
        let mut slots: Array<_, IfaceSlot> = Array::try_from(map)?;
        slots.set(1, IfaceSlot { ifindex: 1, slot: 1 }, 0)?;
        return Ok(());
    }
    bail!("program {prog_id} has no MTG_IFACE_SLOTS map")
}

/// Opens a Dataplane holding `rules`; returns it with its program id.
/// With `iface_entry`, test runs count as on an attached interface.
/// With `dst_cache` false, every packet pays the full destination lookup
/// (the cost of a cache miss, measured without the miss's cache write).
fn open_with(rules: &RuleSet, iface_entry: bool, dst_cache: bool) -> Result<(Dataplane, u32)> {
    let before = own_prog_ids()?;
    let opts = DataplaneOptions { dst_cache, ..Default::default() };
    let mut dp = Dataplane::open(&opts).context("open dataplane (root needed)")?;
    dp.set_reflection_ports(REFLECTION_PORTS)?;
    dp.apply(rules)?;
    let new: Vec<u32> = own_prog_ids()?.into_iter().filter(|id| !before.contains(id)).collect();
    let [id] = new.as_slice() else { bail!("expected one new BPF program, found {new:?}") };
    if iface_entry {
        add_test_run_iface_entry(*id)?;
    }
    Ok((dp, *id))
}

fn serve(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut out = std::io::stdout().lock();
    let mut dps = BTreeMap::new();
    for (name, rules) in rule_sets() {
        let (dp, id) = open_with(&rules, name != "empty-no-iface-entry", !name.ends_with("-uncached"))?;
        writeln!(out, "prog\t{name}\t{id}")?;
        dps.insert(name, dp);
    }
    let cases = cases();
    let mut files: BTreeMap<&str, (PathBuf, &str)> = BTreeMap::new();
    for c in &cases {
        let f = dir.join(format!("{}.bin", c.name));
        std::fs::write(&f, &c.pkt)?;
        // A wrong verdict would make every figure of the row meaningless.
        let got = dps[c.rules].test_run(&c.pkt)?;
        if got != c.expect && c.name != "rate-limited" {
            bail!("case {}: action {got}, expected {}", c.name, c.expect);
        }
        writeln!(out, "case\t{}\t{}\t{}\t{}", c.name, c.rules, f.display(), c.expect)?;
        files.insert(c.name, (f, c.rules));
    }
    writeln!(out, "ready")?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let ["aya", case, repeat] = words.as_slice() else { bail!("unknown command {line:?}") };
        let c = cases.iter().find(|c| c.name == *case).with_context(|| format!("no case {case}"))?;
        let (action, avg) = dps[c.rules].test_run_repeat(&c.pkt, repeat.parse()?)?;
        writeln!(out, "{action}\t{}", avg.as_nanos())?;
        out.flush()?;
    }
    Ok(())
}

// ---------------------------------------------------------------- scale ---

/// The action and the (median, min) ns/packet of `rounds` test runs.
fn median_min(dp: &Dataplane, pkt: &[u8], repeat: u32, rounds: u32) -> Result<(u32, (u64, u64))> {
    let mut ns = vec![];
    let mut action = 0;
    for _ in 0..rounds {
        let (a, d) = dp.test_run_repeat(pkt, repeat)?;
        action = a;
        ns.push(d.as_nanos() as u64);
    }
    ns.sort_unstable();
    Ok((action, (ns[ns.len() / 2], ns[0])))
}

/// The i-th address of a synthetic range starting at `base`, `step` apart.
fn nth_v4(base: u32, step: u32, i: u32) -> Ipv4Addr {
    Ipv4Addr::from(base.wrapping_add(i.wrapping_mul(step)))
}

/// A rule set with `n` entries of `kind`, and a packet that hits the middle one.
fn scale_case(kind: &str, n: u32) -> Result<(RuleSet, Vec<u8>)> {
    let drop_scope = policy(pf::DROP_ALL, &[6, 17], &[]);
    let mid = n / 2;
    // 10.0.0.0/8 for /32s (up to 16M), 16.0.0.0 upwards for /24s.
    let (rules, pkt) = match kind {
        "host-/32" => {
            let prefixes = (0..n).map(|i| IpNet::new(IpAddr::V4(nth_v4(0x0a00_0000, 1, i)), 32).unwrap()).collect();
            let rules = RuleSet { targets: vec![TargetRule { id: 1, prefixes, policy: drop_scope }], ..Default::default() };
            (rules, PacketBuilder::ipv4(SRC, nth_v4(0x0a00_0000, 1, mid).octets()).udp(40000, 53).payload(64))
        }
        "lpm-/24" => {
            let prefixes = (0..n).map(|i| IpNet::new(IpAddr::V4(nth_v4(0x1000_0000, 256, i)), 24).unwrap()).collect();
            let rules = RuleSet { targets: vec![TargetRule { id: 1, prefixes, policy: drop_scope }], ..Default::default() };
            let dst = nth_v4(0x1000_0000, 256, mid).octets();
            (rules, PacketBuilder::ipv4(SRC, [dst[0], dst[1], dst[2], 77]).udp(40000, 53).payload(64))
        }
        "acl" => {
            // n ordered entries; the packet matches only the last (accept),
            // so the lookup has every entry's bits to AND.
            let mut acl: Vec<AclEntry> = (0..n - 1)
                .map(|i| AclEntry {
                    stat_id: i as u64,
                    matches: AclMatch {
                        src: Some(IpNet::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 0)), 24).unwrap()),
                        dst_ports: Some(vec![i as u16..=i as u16]),
                        ..Default::default()
                    },
                    action: AclAction::Drop,
                })
                .collect();
            let last = AclMatch { dst_ports: Some(vec![80..=80]), ..Default::default() };
            acl.push(AclEntry { stat_id: n as u64, matches: last, action: AclAction::Accept });
            (RuleSet { acl, ..Default::default() }, PacketBuilder::ipv4(SRC, ELSEWHERE).udp(40000, 80).payload(64))
        }
        "drop-list-/32" => {
            let drop = (0..n).map(|i| IpNet::new(IpAddr::V4(nth_v4(0x0a00_0000, 1, i)), 32).unwrap()).collect();
            let rules = RuleSet { drop, ..Default::default() };
            (rules, PacketBuilder::ipv4(nth_v4(0x0a00_0000, 1, mid).octets(), ELSEWHERE).udp(40000, 53).payload(64))
        }
        _ => bail!("unknown kind {kind}"),
    };
    Ok((rules, pkt.build()))
}

fn scale(repeat: u32, rounds: u32, sizes: &[u32]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for kind in ["host-/32", "lpm-/24", "drop-list-/32", "acl"] {
        // An ACL holds at most MAX_ACL_ENTRIES: its sizes stop there.
        let mut kind_sizes: Vec<u32> =
            sizes.iter().map(|&n| if kind == "acl" { n.min(MAX_ACL_ENTRIES) } else { n }).collect();
        kind_sizes.dedup();
        for n in kind_sizes {
            let (rules, pkt) = scale_case(kind, n)?;
            let (mut dp, _) = open_with(&RuleSet::default(), true, true)?;
            let t = Instant::now();
            dp.apply(&rules)?;
            let apply_ms = t.elapsed().as_secs_f64() * 1e3;
            let (action, cached) = median_min(&dp, &pkt, repeat, rounds)?;
            // The same entries without the destination cache: the lookup
            // structure's own scaling (a flood to many destinations).
            dp.set_dst_cache(false);
            dp.apply(&rules)?;
            let (_, uncached) = median_min(&dp, &pkt, repeat, rounds)?;
            writeln!(
                out,
                "scale\t{kind}\t{n}\t{apply_ms:.1}\t{}\t{}\t{action}\t{}\t{}",
                cached.0, cached.1, uncached.0, uncached.1
            )?;
            out.flush()?;
        }
    }
    Ok(())
}

// ------------------------------------------------------------ synproxy ---

/// A TCP segment from `src`:40000 to 198.51.100.11:`dport` with Linux's SYN
/// options when `syn` (MSS, SACK permitted, timestamps, window scale).
fn segment(src: [u8; 4], dport: u16, seq: u32, ack: u32, flags: u8, syn: bool) -> Vec<u8> {
    let opts: &[u8] = if syn { &[2, 4, 5, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 0, 0, 0, 0, 1, 3, 3, 7] } else { &[] };
    PacketBuilder::ipv4(src, [198, 51, 100, 11]).tcp(40000, dport, flags).tcp_seq_ack(seq, ack).tcp_options(opts).build()
}

/// Median and minimum ns of `rounds` single test runs (repeat 1).
fn single_runs(dp: &Dataplane, pkt: &[u8], rounds: u32) -> Result<(u32, (u64, u64))> {
    median_min(dp, pkt, 1, rounds)
}

fn synproxy(rounds: u32) -> Result<()> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    let port = listener.local_addr()?.port();
    let cfg = mitigator::config::Config::parse("").expect("the default configuration");
    let profile = cfg.profile("default").expect("built in").countermeasures.clone();
    let prot = mitigator::registry::Protection {
        id: 5,
        owner: mitigator::protection::Owner::Local,
        spec: mitigator::protection::ProtectionSpec {
            prefixes: vec![net("198.51.100.11/32")],
            protocols: vec![],
            ports: vec![],
            countermeasures: vec![],
            profile: None,
            lifetime: None,
        },
        countermeasures: profile,
        created_unix: 0,
        expires_unix: None,
    };
    let p = mitigator::compiler::policy(&prot);
    assert!(p.flags & pf::SYN_PROXY != 0, "the default profile has syn-proxy");
    let rules = RuleSet { targets: vec![TargetRule { id: 5, prefixes: vec![net("198.51.100.11/32")], policy: p }], ..Default::default() };
    let (mut dp, _) = open_with(&rules, true, true)?;
    dp.set_syn_proxy(mitigator::synproxy::SETTINGS)?;
    let syn = segment(SRC, port, 1000, 0, TCP_SYN, true);
    let ack = segment(SRC, port, 1001, 12345, TCP_ACK, false);
    let no_match = PacketBuilder::ipv4(SRC, ELSEWHERE).tcp(40000, 443, TCP_ACK).build();
    let mut out = std::io::stdout().lock();
    for (name, pkt) in [("no-match-single", &no_match), ("syn-answered", &syn), ("ack-bad-cookie", &ack)] {
        let (action, (median, min)) = single_runs(&dp, pkt, rounds)?;
        writeln!(out, "synproxy\t{name}\t{action}\t{median}\t{min}")?;
    }
    out.flush()?;
    drop(listener);
    Ok(())
}
