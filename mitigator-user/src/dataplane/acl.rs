//! Data-channel ACLs in the data plane: the entry model, its validation,
//! and the compiler to the `ACL_*` maps of one generation.
//!
//! # Design
//!
//! An ACL is an ordered list of [`AclEntry`] (first match wins), at most
//! `MAX_ACL_ENTRIES` (4096) per rule set; it runs after the accept- and
//! drop-lists and before any target (see `mitigator-ebpf/src/acl.rs` for
//! the per-packet side). The program does not scan the entries: for each
//! match field the daemon precomputes, for every value the field can take,
//! the bit vector of entries that value satisfies; the program ANDs one
//! vector per field and takes the lowest set bit (bpf-iptables' linear
//! bit-vector search). The compiler here builds those vectors:
//!
//! - prefixes: per family and direction, the set of distinct entry
//!   prefixes plus `/0`; each stored prefix P gets the entries whose prefix
//!   contains P plus the entries without a prefix in that direction. The
//!   LPM trie returns the longest stored P containing the address, and an
//!   entry's prefix contains the address iff it contains that P.
//! - ranges (protocol, ports, TTL, length, ICMP type and code — a single
//!   value is a one-value range): a sweep over the sorted range ends splits
//!   the domain into elementary intervals, each with one vector; the dense
//!   `ACL_IDX` array maps every value to its interval's vector id.
//! - predicates on few bits (the 4 fragment bits, the 12 TCP flag bits):
//!   every value of the domain is evaluated (16 and 4096 values).
//!
//! Vectors are deduplicated (ids 0 and 1 are the IPv4 and IPv6 family
//! vectors); the map holds each distinct vector once. A field that no
//! entry constrains is left out of `AclHeader::fields` and not looked up.
//!
//! Everything lands in the inactive generation and becomes visible with
//! the generation flip, like the other rule maps (`rules.rs`).
//!
//! # Counters and stable identity
//!
//! Each entry carries a caller-chosen `stat_id` (the registry derives it
//! from what identifies the ACE: client, ACL name, ACE name). The data
//! plane gives every `stat_id` a slot in `ACL_STATS` (matched packets and
//! bytes, per CPU) and `ACL_RATE` (the rate-limit bucket). A replacement
//! rule set that keeps a `stat_id` keeps its slot, so its counters and
//! bucket carry on across the swap, even when the entry moved or its
//! matches changed; a new `stat_id` gets a slot that neither generation
//! uses, zeroed before the flip. Slots of ids that left are reused only
//! by a later `apply`, once no generation refers to them.
//!
//! # What is refused
//!
//! Anything the program cannot express is refused with an [`AclError`]
//! naming the entry and the field (the data-channel server answers 400
//! with it): more than 4096 entries, a source and destination of different
//! families, an empty or reversed range, more than 4 port ranges, a
//! bitmask beyond the 12 TCP flag bits, `match` together with `any`,
//! `df` in an IPv6 fragment match, a duplicate `stat_id`.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap as StdHashMap},
    net::{Ipv4Addr, Ipv6Addr},
    ops::RangeInclusive,
};

use anyhow::{Context as _, Result};
use aya::{
    maps::{
        lpm_trie::{Key, LpmTrie},
        Array, HashMap, PerCpuArray, PerCpuValues,
    },
    Ebpf,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use mitigator_common::{
    acl_action, acl_fields as af, acl_frag, acl_op, acl_pfx_v4, acl_pfx_v6, acl_spec as sp, maps as m, AclBits,
    AclBucket, AclHeader, AclPfxV4, AclPfxV6, AclRule, AclVecKey, Counter, PortRange, ACL_ICMP_NONE, ACL_IDX_DPORT,
    ACL_IDX_FRAG, ACL_IDX_ICMP_CODE, ACL_IDX_ICMP_TYPE, ACL_IDX_LEN, ACL_IDX_LEN_TOTAL, ACL_IDX_PROTO, ACL_IDX_SPORT,
    ACL_IDX_TCP_FLAGS, ACL_IDX_TTL, ACL_PFX_HDR_BITS, ACL_PORT_NONE, ACL_SLOTS, ACL_TCP_FLAGS_NONE, ACL_WORDS,
    MAX_ACL_ENTRIES, MAX_ACL_PORT_RANGES, MAX_ACL_VECS,
};

use super::map_mut;

// ------------------------------------------------------------------ model ---

/// One ACL entry (a DOTS ACE after the data-channel compiler has resolved
/// it): matches, action, and the stable identity of its counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclEntry {
    /// Caller-chosen, unique in a rule set, stable across replacements:
    /// counters and rate-limit state follow it (see the module docs).
    pub stat_id: u64,
    pub matches: AclMatch,
    pub action: AclAction,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AclAction {
    /// Pass, bypassing target countermeasures.
    Accept,
    Drop,
    /// An aggregate token bucket for the whole entry (not per source):
    /// under the rate the packet is accepted, over it dropped. The burst is
    /// one second of the rate.
    RateLimit { bytes_per_sec: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AclFamily {
    V4,
    V6,
}

/// What an entry matches. `None` (or the default) = any value. A field of
/// a header (ports, TCP flags, ICMP type/code) only matches packets that
/// carry that header (ports: TCP, UDP, UDP-Lite, SCTP, not non-first
/// fragments).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AclMatch {
    /// Restricts the entry to one family (DOTS: the `ipv4`/`ipv6`
    /// container or the ACL type); implied by `src`/`dst`.
    pub family: Option<AclFamily>,
    pub src: Option<IpNet>,
    pub dst: Option<IpNet>,
    pub protocol: Option<u8>,
    /// Union of inclusive ranges; see [`port_ranges`] for the DOTS
    /// operators.
    pub src_ports: Option<Vec<RangeInclusive<u16>>>,
    pub dst_ports: Option<Vec<RangeInclusive<u16>>>,
    /// DOTS `flags-bitmask` over the 12 bits (byte 12 low nibble << 8 |
    /// byte 13) of the TCP header.
    pub tcp_flags_bitmask: Option<BitmaskMatch>,
    /// RFC 8519 TCP `flags`: byte 13 equal to this.
    pub tcp_flags: Option<u8>,
    /// DOTS `fragment`: `bitmask` holds `mitigator_common::acl_frag` bits.
    pub fragment: Option<BitmaskMatch>,
    /// IPv4 total length / IPv6 payload length.
    pub length: Option<RangeInclusive<u16>>,
    /// TTL / hop limit.
    pub ttl: Option<RangeInclusive<u8>>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
}

/// A DOTS `operator` applied to a bitmask: `operator` holds
/// `mitigator_common::acl_op` bits (`not`, `match`, `any`; none = `match`).
/// `match`: `(data & bitmask) == bitmask`; `any`: `(data & bitmask) != 0`;
/// `not` negates either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BitmaskMatch {
    pub operator: u8,
    pub bitmask: u16,
}

impl BitmaskMatch {
    pub fn eval(&self, data: u16) -> bool {
        let hit = if self.operator & acl_op::ANY != 0 {
            data & self.bitmask != 0
        } else {
            data & self.bitmask == self.bitmask
        };
        hit != (self.operator & acl_op::NOT != 0)
    }
}

/// RFC 8519 port operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortOp {
    Eq,
    Lte,
    Gte,
    Neq,
}

/// The ranges a port operator stands for (`neq` is two ranges, or one at
/// the ends of the domain).
pub fn port_ranges(op: PortOp, port: u16) -> Vec<RangeInclusive<u16>> {
    match op {
        PortOp::Eq => vec![port..=port],
        PortOp::Lte => vec![0..=port],
        PortOp::Gte => vec![port..=u16::MAX],
        PortOp::Neq => {
            let mut v = vec![];
            if port > 0 {
                v.push(0..=port - 1);
            }
            if port < u16::MAX {
                v.push(port + 1..=u16::MAX);
            }
            v
        }
    }
}

/// A rule set the program cannot express. `entry` is the index in
/// `RuleSet::acl` (`None`: the ACL as a whole), `field` the `AclMatch`
/// field (or `action`, `stat_id`, `acl`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ACL entry {}: {field}: {reason}", entry.map_or("(all)".to_string(), |e| e.to_string()))]
pub struct AclError {
    pub entry: Option<usize>,
    pub field: &'static str,
    pub reason: String,
}

fn err(entry: usize, field: &'static str, reason: impl Into<String>) -> AclError {
    AclError { entry: Some(entry), field, reason: reason.into() }
}

// --------------------------------------------------------- normalisation ---

/// An entry after validation: every field in the program's terms.
struct Norm {
    family: Option<AclFamily>,
    src: Option<IpNet>,
    dst: Option<IpNet>,
    proto: Option<u32>,
    sport: Option<Vec<(u32, u32)>>,
    dport: Option<Vec<(u32, u32)>>,
    /// Predicate on the 12 TCP flag bits, if any constraint.
    flags: Option<(Option<BitmaskMatch>, Option<u8>)>,
    frag: Option<BitmaskMatch>,
    len: Option<(u32, u32)>,
    ttl: Option<(u32, u32)>,
    itype: Option<u32>,
    icode: Option<u32>,
}

impl Norm {
    fn flags_match(&self, v: u16) -> bool {
        match &self.flags {
            None => true,
            Some((bm, exact)) => {
                bm.is_none_or(|b| b.eval(v)) && exact.is_none_or(|f| (v & 0xff) as u8 == f)
            }
        }
    }
}

fn check_op(i: usize, field: &'static str, b: &BitmaskMatch, width: u32) -> Result<(), AclError> {
    if b.operator & !(acl_op::NOT | acl_op::MATCH | acl_op::ANY) != 0 {
        return Err(err(i, field, format!("unknown operator bits {:#x}", b.operator)));
    }
    if b.operator & acl_op::MATCH != 0 && b.operator & acl_op::ANY != 0 {
        return Err(err(i, field, "operator has both 'match' and 'any'"));
    }
    if (b.bitmask as u32) >> width != 0 {
        return Err(err(i, field, format!("bitmask {:#x} has bits beyond the {width} the packet has", b.bitmask)));
    }
    Ok(())
}

/// Sorted, merged port ranges; refused if empty, reversed or too many.
fn norm_ports(i: usize, field: &'static str, r: &[RangeInclusive<u16>]) -> Result<Vec<(u32, u32)>, AclError> {
    if r.is_empty() {
        return Err(err(i, field, "no port range (would match nothing)"));
    }
    let mut v: Vec<(u32, u32)> = vec![];
    for x in r {
        if x.start() > x.end() {
            return Err(err(i, field, format!("range {}..={} is reversed", x.start(), x.end())));
        }
        v.push((*x.start() as u32, *x.end() as u32));
    }
    v.sort();
    let mut out: Vec<(u32, u32)> = vec![];
    for (lo, hi) in v {
        match out.last_mut() {
            Some(last) if lo <= last.1 + 1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    if out.len() > MAX_ACL_PORT_RANGES {
        return Err(err(i, field, format!("{} disjoint ranges (max {MAX_ACL_PORT_RANGES})", out.len())));
    }
    Ok(out)
}

fn norm_range<T: Copy + PartialOrd + Into<u32> + std::fmt::Display>(
    i: usize,
    field: &'static str,
    r: &RangeInclusive<T>,
) -> Result<(u32, u32), AclError> {
    if r.start() > r.end() {
        return Err(err(i, field, format!("range {}..={} is reversed", r.start(), r.end())));
    }
    Ok(((*r.start()).into(), (*r.end()).into()))
}

fn family_of(n: &IpNet) -> AclFamily {
    match n {
        IpNet::V4(_) => AclFamily::V4,
        IpNet::V6(_) => AclFamily::V6,
    }
}

fn normalise(i: usize, e: &AclEntry) -> Result<Norm, AclError> {
    let m = &e.matches;
    let mut family = m.family;
    for (field, p) in [("src", &m.src), ("dst", &m.dst)] {
        if let Some(p) = p {
            let f = family_of(p);
            if family.is_some_and(|g| g != f) {
                return Err(err(i, field, format!("{p} is not of the entry's family {:?}", family.unwrap())));
            }
            family = Some(f);
        }
    }
    if let Some(b) = &m.tcp_flags_bitmask {
        check_op(i, "tcp_flags_bitmask", b, 12)?;
    }
    if let Some(b) = &m.fragment {
        check_op(i, "fragment", b, 4)?;
        if family == Some(AclFamily::V6) && b.bitmask & acl_frag::DF as u16 != 0 {
            return Err(err(i, "fragment", "'df' is an IPv4 flag: not allowed in an IPv6 match"));
        }
    }
    if let AclAction::RateLimit { bytes_per_sec } = e.action {
        // The bucket holds rate * 1e9 byte-ns in a u64.
        if bytes_per_sec > u64::MAX / 1_000_000_000 {
            return Err(err(i, "action", format!("rate {bytes_per_sec} bytes/s is too large")));
        }
    }
    let flags = if m.tcp_flags_bitmask.is_some() || m.tcp_flags.is_some() {
        Some((m.tcp_flags_bitmask, m.tcp_flags))
    } else {
        None
    };
    Ok(Norm {
        family,
        src: m.src.map(|p| p.trunc()),
        dst: m.dst.map(|p| p.trunc()),
        proto: m.protocol.map(u32::from),
        sport: m.src_ports.as_deref().map(|r| norm_ports(i, "src_ports", r)).transpose()?,
        dport: m.dst_ports.as_deref().map(|r| norm_ports(i, "dst_ports", r)).transpose()?,
        flags,
        frag: m.fragment,
        len: m.length.as_ref().map(|r| norm_range(i, "length", r)).transpose()?,
        ttl: m.ttl.as_ref().map(|r| norm_range(i, "ttl", r)).transpose()?,
        itype: m.icmp_type.map(u32::from),
        icode: m.icmp_code.map(u32::from),
    })
}

// -------------------------------------------------------------- compiled ---

/// The exact ACL contents of one generation, keyed as in the maps.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct AclContents {
    /// The source entries, for `current_rules`.
    pub entries: Vec<AclEntry>,
    pub hdr: AclHeader,
    /// `ACL_RULES[gen][i]`, i < entries.len().
    pub rules: Vec<AclRule>,
    /// `ACL_VECS[gen][id]`, id < vecs.len().
    pub vecs: Vec<AclBits>,
    /// (direction is dst, address, prefix length) → vector id.
    pub pfx_v4: BTreeMap<(bool, [u8; 4], u8), u32>,
    pub pfx_v6: BTreeMap<(bool, [u8; 16], u8), u32>,
    /// `ACL_IDX[gen]`, always `ACL_IDX_LEN_TOTAL` long: all zeros without
    /// an ACL (as a fresh map is), so removing an ACL is a diff too.
    pub idx: Vec<u32>,
}

impl Default for AclContents {
    fn default() -> Self {
        AclContents {
            entries: vec![],
            hdr: AclHeader::default(),
            rules: vec![],
            vecs: vec![],
            pfx_v4: BTreeMap::new(),
            pfx_v6: BTreeMap::new(),
            idx: vec![0; ACL_IDX_LEN_TOTAL as usize],
        }
    }
}

/// A bit vector while compiling.
type Bits = [u64; ACL_WORDS];

fn set(b: &mut Bits, i: usize) {
    b[i / 64] |= 1 << (i % 64);
}

fn or(a: &Bits, b: &Bits) -> Bits {
    std::array::from_fn(|w| a[w] | b[w])
}

/// Deduplicating vector store: ids in insertion order.
struct VecStore {
    vecs: Vec<AclBits>,
    ids: StdHashMap<Bits, u32>,
}

impl VecStore {
    fn id(&mut self, b: Bits) -> u32 {
        if let Some(id) = self.ids.get(&b) {
            return *id;
        }
        let id = self.vecs.len() as u32;
        self.vecs.push(AclBits { words: b });
        self.ids.insert(b, id);
        id
    }

    /// A vector under a fixed id (the family vectors), even if equal to
    /// another.
    fn push(&mut self, b: Bits) -> u32 {
        let id = self.vecs.len() as u32;
        self.vecs.push(AclBits { words: b });
        self.ids.entry(b).or_insert(id);
        id
    }
}

/// Entries whose constraint (from `get`) is absent.
fn wild(norm: &[Norm], get: impl Fn(&Norm) -> bool) -> Bits {
    let mut b = [0u64; ACL_WORDS];
    for (i, n) in norm.iter().enumerate() {
        if !get(n) {
            set(&mut b, i);
        }
    }
    b
}

/// A range field over `0..domain`: sweeps the range ends, one vector per
/// elementary interval, written into `idx[off..off + domain]`. With
/// `none`, `idx[off + domain]` gets the vector of packets without the
/// header: only entries that do not constrain the field.
fn range_field(
    norm: &[Norm],
    store: &mut VecStore,
    idx: &mut [u32],
    off: u32,
    domain: u32,
    none: bool,
    get: impl Fn(&Norm) -> Option<Vec<(u32, u32)>>,
) {
    let w = wild(norm, |n| get(n).is_some());
    // (position, entry, starts): a range [lo, hi] starts at lo, ends at hi + 1.
    let mut events: Vec<(u32, usize, bool)> = vec![];
    for (i, n) in norm.iter().enumerate() {
        for (lo, hi) in get(n).unwrap_or_default() {
            events.push((lo, i, true));
            events.push((hi + 1, i, false));
        }
    }
    events.sort();
    let mut cur = [0u64; ACL_WORDS];
    let mut pos = 0u32;
    let mut k = 0;
    while pos < domain {
        // Apply every event at `pos` (an entry's own ranges are disjoint
        // and non-adjacent after normalisation, so set/clear is exact).
        while k < events.len() && events[k].0 == pos {
            let (_, i, start) = events[k];
            if start {
                set(&mut cur, i);
            } else {
                cur[i / 64] &= !(1 << (i % 64));
            }
            k += 1;
        }
        let next = if k < events.len() { events[k].0.min(domain) } else { domain };
        let id = store.id(or(&w, &cur));
        for v in pos..next {
            idx[(off + v) as usize] = id;
        }
        pos = next;
    }
    if none {
        idx[(off + domain) as usize] = store.id(w);
    }
}

/// A predicate field: every value of `0..domain` evaluated.
fn pred_field(
    norm: &[Norm],
    store: &mut VecStore,
    idx: &mut [u32],
    off: u32,
    domain: u32,
    constrained: impl Fn(&Norm) -> bool,
    eval: impl Fn(&Norm, u16) -> bool,
) {
    let w = wild(norm, &constrained);
    for v in 0..domain {
        let mut b = w;
        for (i, n) in norm.iter().enumerate() {
            if constrained(n) && eval(n, v as u16) {
                set(&mut b, i);
            }
        }
        idx[(off + v) as usize] = store.id(b);
    }
}

fn contains(outer: &IpNet, inner: &IpNet) -> bool {
    outer.prefix_len() <= inner.prefix_len() && outer.contains(&inner.network())
}

/// Prefix vectors of one family and direction (see the module docs).
fn prefix_field(norm: &[Norm], store: &mut VecStore, v6: bool, dst: bool) -> Vec<(IpNet, u32)> {
    let get = |n: &Norm| if dst { n.dst } else { n.src };
    let w = wild(norm, |n| get(n).is_some());
    let mut stored: BTreeSet<IpNet> = norm.iter().filter_map(get).filter(|p| p.addr().is_ipv6() == v6).collect();
    stored.insert(if v6 { IpNet::V6(Ipv6Net::default()) } else { IpNet::V4(Ipv4Net::default()) });
    let mut out = vec![];
    for p in stored {
        let mut b = w;
        for (i, n) in norm.iter().enumerate() {
            if get(n).is_some_and(|q| q.addr().is_ipv6() == v6 && contains(&q, &p)) {
                set(&mut b, i);
            }
        }
        out.push((p, store.id(b)));
    }
    out
}

/// Whether the program can express `entries` (the checks of `compile`,
/// without maps): the data channel refuses an ACE before storing it, even
/// when its ACL is not in force yet (activate-when-mitigating, deactivate).
pub fn check(entries: &[AclEntry]) -> Result<(), AclError> {
    let slots: Vec<u32> = (0..entries.len() as u32).collect();
    compile(entries, &slots).map(|_| ())
}

/// Compiles `entries` with their slots (from `assign_slots`).
pub(super) fn compile(entries: &[AclEntry], slots: &[u32]) -> Result<AclContents, AclError> {
    if entries.len() > MAX_ACL_ENTRIES as usize {
        return Err(AclError {
            entry: Some(MAX_ACL_ENTRIES as usize),
            field: "acl",
            reason: format!("{} entries (max {MAX_ACL_ENTRIES})", entries.len()),
        });
    }
    let mut ids = BTreeSet::new();
    for (i, e) in entries.iter().enumerate() {
        if !ids.insert(e.stat_id) {
            return Err(err(i, "stat_id", format!("{} is used by an earlier entry", e.stat_id)));
        }
    }
    let norm: Vec<Norm> = entries.iter().enumerate().map(|(i, e)| normalise(i, e)).collect::<Result<_, _>>()?;
    let mut c = AclContents { entries: entries.to_vec(), ..Default::default() };
    if entries.is_empty() {
        return Ok(c);
    }
    let mut store = VecStore { vecs: vec![], ids: StdHashMap::new() };
    store.push(wild(&norm, |n| n.family == Some(AclFamily::V6)));
    store.push(wild(&norm, |n| n.family == Some(AclFamily::V4)));

    let mut fields = 0;
    let used = |f: &dyn Fn(&Norm) -> bool| norm.iter().any(f);
    if used(&|n| n.src.is_some()) {
        fields |= af::SRC;
    }
    if used(&|n| n.dst.is_some()) {
        fields |= af::DST;
    }
    for v6 in [false, true] {
        for dst in [false, true] {
            for (p, id) in prefix_field(&norm, &mut store, v6, dst) {
                match p {
                    IpNet::V4(n) => c.pfx_v4.insert((dst, n.addr().octets(), n.prefix_len()), id),
                    IpNet::V6(n) => c.pfx_v6.insert((dst, n.addr().octets(), n.prefix_len()), id),
                };
            }
        }
    }
    let idx = &mut c.idx;
    let one = |v: Option<u32>| v.map(|x| vec![(x, x)]);
    // (field bit, used, offset, domain, has a "none" value, constraint)
    type Get<'a> = Box<dyn Fn(&Norm) -> Option<Vec<(u32, u32)>> + 'a>;
    let ranges: Vec<(u32, u32, u32, bool, Get)> = vec![
        (af::PROTO, ACL_IDX_PROTO, 256, false, Box::new(|n: &Norm| one(n.proto))),
        (af::TTL, ACL_IDX_TTL, 256, false, Box::new(|n: &Norm| n.ttl.map(|r| vec![r]))),
        (af::ICMP_TYPE, ACL_IDX_ICMP_TYPE, ACL_ICMP_NONE, true, Box::new(|n: &Norm| one(n.itype))),
        (af::ICMP_CODE, ACL_IDX_ICMP_CODE, ACL_ICMP_NONE, true, Box::new(|n: &Norm| one(n.icode))),
        (af::SPORT, ACL_IDX_SPORT, ACL_PORT_NONE, true, Box::new(|n: &Norm| n.sport.clone())),
        (af::DPORT, ACL_IDX_DPORT, ACL_PORT_NONE, true, Box::new(|n: &Norm| n.dport.clone())),
        (af::LEN, ACL_IDX_LEN, 65536, false, Box::new(|n: &Norm| n.len.map(|r| vec![r]))),
    ];
    for (bit, off, domain, none, get) in ranges {
        if norm.iter().any(|n| get(n).is_some()) {
            fields |= bit;
            range_field(&norm, &mut store, idx, off, domain, none, get);
        }
    }
    if norm.iter().any(|n| n.frag.is_some()) {
        fields |= af::FRAG;
        pred_field(&norm, &mut store, idx, ACL_IDX_FRAG, 16, |n| n.frag.is_some(), |n, v| {
            n.frag.is_some_and(|f| f.eval(v))
        });
    }
    if norm.iter().any(|n| n.flags.is_some()) {
        fields |= af::TCP_FLAGS;
        pred_field(&norm, &mut store, idx, ACL_IDX_TCP_FLAGS, 4096, |n| n.flags.is_some(), |n, v| {
            n.flags_match(v)
        });
        idx[(ACL_IDX_TCP_FLAGS + ACL_TCP_FLAGS_NONE) as usize] = store.id(wild(&norm, |n| n.flags.is_some()));
    }
    if store.vecs.len() > MAX_ACL_VECS as usize {
        return Err(AclError {
            entry: None,
            field: "acl",
            reason: format!("{} distinct match vectors (max {MAX_ACL_VECS})", store.vecs.len()),
        });
    }
    c.vecs = store.vecs;
    let n = entries.len() as u32;
    c.hdr = AclHeader { n_entries: n, n_words: n.div_ceil(64), fields, _pad: 0 };
    c.rules = entries.iter().zip(slots).map(|(e, &s)| encode(e, s)).collect();
    Ok(c)
}

// ------------------------------------------------------ rule (de)coding ---

fn encode_ports(r: &Option<Vec<RangeInclusive<u16>>>, out: &mut [PortRange; MAX_ACL_PORT_RANGES]) -> u8 {
    let r = r.as_deref().unwrap_or_default();
    for (o, x) in out.iter_mut().zip(r) {
        *o = PortRange { lo: *x.start(), hi: *x.end() };
    }
    r.len() as u8
}

/// The map form of an entry (already validated, so port lists fit).
fn encode(e: &AclEntry, slot: u32) -> AclRule {
    let m = &e.matches;
    let mut r = AclRule::empty();
    (r.action, r.rate_bps) = match e.action {
        AclAction::Accept => (acl_action::ACCEPT, 0),
        AclAction::Drop => (acl_action::DROP, 0),
        AclAction::RateLimit { bytes_per_sec } => (acl_action::RATE_LIMIT, bytes_per_sec),
    };
    r.slot = slot;
    r.stat_id = e.stat_id;
    let mut s = 0;
    match m.family {
        Some(AclFamily::V4) => s |= sp::FAMILY_V4,
        Some(AclFamily::V6) => s |= sp::FAMILY_V6,
        None => {}
    }
    for (dst, p) in [(false, &m.src), (true, &m.dst)] {
        let Some(p) = p else { continue };
        let (addr, len) = match p {
            IpNet::V4(n) => {
                let mut a = [0u8; 16];
                a[..4].copy_from_slice(&n.addr().octets());
                (a, n.prefix_len())
            }
            IpNet::V6(n) => (n.addr().octets(), n.prefix_len()),
        };
        // Bit 7 of the length byte marks IPv6 (0x80 | 0..=127); /128, which
        // would collide with /0, is 0xff. IPv4 lengths are ≤ 32.
        let len = match (p.addr().is_ipv6(), len) {
            (true, 128) => 0xff,
            (true, l) => l | 0x80,
            (false, l) => l,
        };
        if dst {
            (r.dst, r.dst_len) = (addr, len);
            s |= sp::DST;
        } else {
            (r.src, r.src_len) = (addr, len);
            s |= sp::SRC;
        }
    }
    if let Some(p) = m.protocol {
        r.proto = p;
        s |= sp::PROTO;
    }
    if m.src_ports.is_some() {
        r.n_sport = encode_ports(&m.src_ports, &mut r.sport);
        s |= sp::SPORT;
    }
    if m.dst_ports.is_some() {
        r.n_dport = encode_ports(&m.dst_ports, &mut r.dport);
        s |= sp::DPORT;
    }
    if let Some(b) = m.tcp_flags_bitmask {
        (r.bitmask_op, r.bitmask) = (b.operator, b.bitmask);
        s |= sp::BITMASK;
    }
    if let Some(f) = m.tcp_flags {
        r.tcp_flags = f;
        s |= sp::TCP_FLAGS;
    }
    if let Some(f) = m.fragment {
        (r.frag_op, r.frag_type) = (f.operator, f.bitmask as u8);
        s |= sp::FRAG;
    }
    if let Some(l) = &m.length {
        r.len = PortRange { lo: *l.start(), hi: *l.end() };
        s |= sp::LEN;
    }
    if let Some(t) = &m.ttl {
        (r.ttl_lo, r.ttl_hi) = (*t.start(), *t.end());
        s |= sp::TTL;
    }
    if let Some(t) = m.icmp_type {
        r.icmp_type = t;
        s |= sp::ICMP_TYPE;
    }
    if let Some(c) = m.icmp_code {
        r.icmp_code = c;
        s |= sp::ICMP_CODE;
    }
    r.spec = s;
    r
}

fn decode_net(addr: [u8; 16], len: u8) -> Option<IpNet> {
    if len == 0xff {
        Ipv6Net::new(Ipv6Addr::from(addr), 128).ok().map(IpNet::V6)
    } else if len & 0x80 != 0 {
        Ipv6Net::new(Ipv6Addr::from(addr), len & 0x7f).ok().map(IpNet::V6)
    } else {
        Ipv4Net::new(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]), len).ok().map(IpNet::V4)
    }
}

/// The entry an `AclRule` was encoded from (adoption of pinned maps).
fn decode(r: &AclRule) -> AclEntry {
    let s = r.spec;
    let on = |bit: u32| s & bit != 0;
    let ports = |p: &[PortRange; MAX_ACL_PORT_RANGES], n: u8| {
        p.iter().take(n as usize).map(|x| x.lo..=x.hi).collect::<Vec<_>>()
    };
    let matches = AclMatch {
        family: if on(sp::FAMILY_V4) {
            Some(AclFamily::V4)
        } else if on(sp::FAMILY_V6) {
            Some(AclFamily::V6)
        } else {
            None
        },
        src: if on(sp::SRC) { decode_net(r.src, r.src_len) } else { None },
        dst: if on(sp::DST) { decode_net(r.dst, r.dst_len) } else { None },
        protocol: on(sp::PROTO).then_some(r.proto),
        src_ports: on(sp::SPORT).then(|| ports(&r.sport, r.n_sport)),
        dst_ports: on(sp::DPORT).then(|| ports(&r.dport, r.n_dport)),
        tcp_flags_bitmask: on(sp::BITMASK).then_some(BitmaskMatch { operator: r.bitmask_op, bitmask: r.bitmask }),
        tcp_flags: on(sp::TCP_FLAGS).then_some(r.tcp_flags),
        fragment: on(sp::FRAG).then_some(BitmaskMatch { operator: r.frag_op, bitmask: r.frag_type as u16 }),
        length: on(sp::LEN).then_some(r.len.lo..=r.len.hi),
        ttl: on(sp::TTL).then_some(r.ttl_lo..=r.ttl_hi),
        icmp_type: on(sp::ICMP_TYPE).then_some(r.icmp_type),
        icmp_code: on(sp::ICMP_CODE).then_some(r.icmp_code),
    };
    let action = match r.action {
        acl_action::ACCEPT => AclAction::Accept,
        acl_action::RATE_LIMIT => AclAction::RateLimit { bytes_per_sec: r.rate_bps },
        _ => AclAction::Drop,
    };
    AclEntry { stat_id: r.stat_id, matches, action }
}

/// Whether `encode` keeps an entry exactly (port lists longer than the
/// map holds are refused by `compile` first, so this is about the rest).
#[cfg(test)]
fn roundtrips(e: &AclEntry) -> bool {
    decode(&encode(e, 0)) == *e
}

// ----------------------------------------------------------------- slots ---

/// Slots for `entries`: a `stat_id` that either generation holds keeps its
/// slot; a new one gets the lowest slot neither generation uses. Returns
/// the slots (by entry) and the new ones, which must be zeroed before the
/// generation that uses them becomes visible.
pub(super) fn assign_slots(held: [&AclContents; 2], entries: &[AclEntry]) -> Result<(Vec<u32>, Vec<u32>), AclError> {
    let mut by_id: BTreeMap<u64, u32> = BTreeMap::new();
    let mut taken: BTreeSet<u32> = BTreeSet::new();
    for g in held {
        for r in &g.rules {
            by_id.insert(r.stat_id, r.slot);
            taken.insert(r.slot);
        }
    }
    let mut free = (0..ACL_SLOTS).filter(|s| !taken.contains(s));
    let mut slots = vec![];
    let mut fresh = vec![];
    let mut seen = BTreeSet::new();
    for (i, e) in entries.iter().enumerate() {
        if !seen.insert(e.stat_id) {
            return Err(err(i, "stat_id", format!("{} is used by an earlier entry", e.stat_id)));
        }
        let s = match by_id.get(&e.stat_id) {
            Some(s) => *s,
            None => {
                let s = free.next().ok_or_else(|| err(i, "acl", "no free counter slot"))?;
                fresh.push(s);
                s
            }
        };
        slots.push(s);
    }
    Ok((slots, fresh))
}

/// Zeroes the counters and rate bucket of fresh slots.
pub(super) fn reset_slots(ebpf: &mut Ebpf, slots: &[u32]) -> Result<()> {
    if slots.is_empty() {
        return Ok(());
    }
    let ncpus = aya::util::nr_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
    {
        let mut st: PerCpuArray<_, Counter> = PerCpuArray::try_from(map_mut(ebpf, m::ACL_STATS)?)?;
        for &s in slots {
            st.set(s, PerCpuValues::try_from(vec![Counter::default(); ncpus])?, 0).context("zeroing ACL_STATS")?;
        }
    }
    let mut rate: Array<_, AclBucket> = Array::try_from(map_mut(ebpf, m::ACL_RATE)?)?;
    for &s in slots {
        rate.set(s, AclBucket::default(), 0).context("zeroing ACL_RATE")?;
    }
    Ok(())
}

/// Matched packets and bytes of a slot, summed over CPUs.
pub(super) fn slot_stats(ebpf: &aya::Ebpf, slot: u32) -> Result<Counter> {
    let map: PerCpuArray<_, Counter> = PerCpuArray::try_from(super::map_ref(ebpf, m::ACL_STATS)?)?;
    let per_cpu = map.get(&slot, 0).context("reading ACL_STATS")?;
    let mut sum = Counter::default();
    for c in per_cpu.iter() {
        sum.packets += c.packets;
        sum.bytes += c.bytes;
    }
    Ok(sum)
}

// ------------------------------------------------------------ map writes ---

fn k4(gen: u32, &(dst, a, l): &(bool, [u8; 4], u8)) -> Key<AclPfxV4> {
    Key::new(ACL_PFX_HDR_BITS + l as u32, acl_pfx_v4(gen, dst, a))
}

fn k6(gen: u32, (dst, a, l): &(bool, [u8; 16], u8)) -> Key<AclPfxV6> {
    Key::new(ACL_PFX_HDR_BITS + *l as u32, acl_pfx_v6(gen, *dst, a))
}

fn diff_pfx<K: Ord, D: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &str,
    cur: &BTreeMap<K, u32>,
    want: &BTreeMap<K, u32>,
    key: impl Fn(&K) -> Key<D>,
) -> Result<()> {
    let mut map: LpmTrie<_, D, u32> = LpmTrie::try_from(map_mut(ebpf, name)?)?;
    for (k, v) in want {
        if cur.get(k) != Some(v) {
            map.insert(&key(k), v, 0).with_context(|| format!("inserting into {name}"))?;
        }
    }
    for k in cur.keys() {
        if !want.contains_key(k) {
            map.remove(&key(k)).with_context(|| format!("removing from {name}"))?;
        }
    }
    Ok(())
}

/// Makes generation `gen`'s ACL maps hold `want`, given they hold `cur`.
/// Vectors first, then what names them, then the rules, then the header:
/// the generation is inactive, but the order keeps every id resolvable
/// even if it were not.
pub(super) fn write_gen(ebpf: &mut Ebpf, gen: u32, cur: &AclContents, want: &AclContents) -> Result<()> {
    {
        let mut vecs: HashMap<_, AclVecKey, AclBits> = HashMap::try_from(map_mut(ebpf, m::ACL_VECS)?)?;
        for (id, v) in want.vecs.iter().enumerate() {
            if cur.vecs.get(id) != Some(v) {
                vecs.insert(AclVecKey { gen, id: id as u32 }, v, 0).context("writing ACL_VECS")?;
            }
        }
    }
    diff_pfx(ebpf, m::ACL_PFX_V4, &cur.pfx_v4, &want.pfx_v4, |k| k4(gen, k))?;
    diff_pfx(ebpf, m::ACL_PFX_V6, &cur.pfx_v6, &want.pfx_v6, |k| k6(gen, k))?;
    {
        let mut idx: Array<_, u32> = Array::try_from(map_mut(ebpf, m::ACL_IDX)?)?;
        let base = gen * ACL_IDX_LEN_TOTAL;
        for (i, (c, w)) in cur.idx.iter().zip(&want.idx).enumerate() {
            if c != w {
                idx.set(base + i as u32, w, 0).context("writing ACL_IDX")?;
            }
        }
    }
    {
        let mut rules: Array<_, AclRule> = Array::try_from(map_mut(ebpf, m::ACL_RULES)?)?;
        for (i, r) in want.rules.iter().enumerate() {
            if cur.rules.get(i) != Some(r) {
                rules.set(gen * MAX_ACL_ENTRIES + i as u32, r, 0).context("writing ACL_RULES")?;
            }
        }
    }
    if cur.hdr != want.hdr {
        let mut hdr: Array<_, AclHeader> = Array::try_from(map_mut(ebpf, m::ACL_HDR)?)?;
        hdr.set(gen, want.hdr, 0).context("writing ACL_HDR")?;
    }
    // Vectors no longer named by anything.
    let mut vecs: HashMap<_, AclVecKey, AclBits> = HashMap::try_from(map_mut(ebpf, m::ACL_VECS)?)?;
    for id in want.vecs.len()..cur.vecs.len() {
        vecs.remove(&AclVecKey { gen, id: id as u32 }).context("removing from ACL_VECS")?;
    }
    Ok(())
}

/// Reads back what generation `gen`'s ACL maps hold (adoption).
pub(super) fn read_gen(ebpf: &mut Ebpf, gen: u32) -> Result<AclContents> {
    let mut c = AclContents::default();
    c.hdr = Array::<_, AclHeader>::try_from(map_mut(ebpf, m::ACL_HDR)?)?.get(&gen, 0)?;
    {
        let rules: Array<_, AclRule> = Array::try_from(map_mut(ebpf, m::ACL_RULES)?)?;
        for i in 0..c.hdr.n_entries.min(MAX_ACL_ENTRIES) {
            let r = rules.get(&(gen * MAX_ACL_ENTRIES + i), 0)?;
            c.entries.push(decode(&r));
            c.rules.push(r);
        }
    }
    {
        let vecs: HashMap<_, AclVecKey, AclBits> = HashMap::try_from(map_mut(ebpf, m::ACL_VECS)?)?;
        let mut by_id = BTreeMap::new();
        for kv in vecs.iter() {
            let (k, v) = kv?;
            if k.gen == gen {
                by_id.insert(k.id, v);
            }
        }
        // Ids are dense from 0; a gap (an interrupted write) ends the
        // mirror there, and the next write rewrites the rest.
        for (n, (id, v)) in by_id.into_iter().enumerate() {
            if id as usize != n {
                break;
            }
            c.vecs.push(v);
        }
    }
    {
        let t: LpmTrie<_, AclPfxV4, u32> = LpmTrie::try_from(map_mut(ebpf, m::ACL_PFX_V4)?)?;
        for kv in t.iter() {
            let (k, v) = kv?;
            let d = k.data();
            if d[0] as u32 == gen && k.prefix_len() >= ACL_PFX_HDR_BITS {
                c.pfx_v4.insert((d[1] != 0, [d[2], d[3], d[4], d[5]], (k.prefix_len() - ACL_PFX_HDR_BITS) as u8), v);
            }
        }
    }
    {
        let t: LpmTrie<_, AclPfxV6, u32> = LpmTrie::try_from(map_mut(ebpf, m::ACL_PFX_V6)?)?;
        for kv in t.iter() {
            let (k, v) = kv?;
            let d = k.data();
            if d[0] as u32 == gen && k.prefix_len() >= ACL_PFX_HDR_BITS {
                let mut a = [0u8; 16];
                a.copy_from_slice(&d[2..]);
                c.pfx_v6.insert((d[1] != 0, a, (k.prefix_len() - ACL_PFX_HDR_BITS) as u8), v);
            }
        }
    }
    {
        let idx: Array<_, u32> = Array::try_from(map_mut(ebpf, m::ACL_IDX)?)?;
        let base = gen * ACL_IDX_LEN_TOTAL;
        for i in 0..ACL_IDX_LEN_TOTAL {
            c.idx[i as usize] = idx.get(&(base + i), 0)?;
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64, m: AclMatch) -> AclEntry {
        AclEntry { stat_id: id, matches: m, action: AclAction::Drop }
    }

    #[test]
    fn port_operators() {
        assert_eq!(port_ranges(PortOp::Neq, 80), vec![0..=79, 81..=65535]);
        assert_eq!(port_ranges(PortOp::Neq, 0), vec![1..=65535]);
        assert_eq!(port_ranges(PortOp::Lte, 1023), vec![0..=1023]);
        assert_eq!(port_ranges(PortOp::Gte, 1024), vec![1024..=65535]);
    }

    #[test]
    fn bitmask_operators() {
        let b = |operator, bitmask| BitmaskMatch { operator, bitmask };
        assert!(b(acl_op::MATCH, 0x12).eval(0x12));
        assert!(!b(acl_op::MATCH, 0x12).eval(0x02));
        assert!(b(0, 0x12).eval(0x13), "no operator = match");
        assert!(b(acl_op::ANY, 0x12).eval(0x02));
        assert!(!b(acl_op::ANY, 0x12).eval(0x01));
        assert!(b(acl_op::NOT | acl_op::ANY, 0xfff).eval(0), "'not any' = none of the bits");
        assert!(!b(acl_op::NOT | acl_op::ANY, 0xfff).eval(0x10));
        assert!(b(acl_op::NOT, 0x12).eval(0x02), "'not' = not match");
    }

    #[test]
    fn encode_roundtrips() {
        let m = AclMatch {
            family: Some(AclFamily::V6),
            src: Some("2001:db8::/32".parse().unwrap()),
            dst: Some("2001:db8:1::1/128".parse().unwrap()),
            protocol: Some(6),
            src_ports: Some(vec![0..=79, 81..=65535]),
            dst_ports: Some(vec![443..=443]),
            tcp_flags_bitmask: Some(BitmaskMatch { operator: acl_op::NOT | acl_op::ANY, bitmask: 0xfff }),
            tcp_flags: Some(2),
            fragment: Some(BitmaskMatch { operator: acl_op::MATCH, bitmask: 2 }),
            length: Some(40..=1500),
            ttl: Some(1..=64),
            icmp_type: Some(8),
            icmp_code: Some(0),
        };
        assert!(roundtrips(&entry(9, m)));
        assert!(roundtrips(&entry(1, AclMatch { src: Some("10.0.0.0/8".parse().unwrap()), ..Default::default() })));
        assert!(roundtrips(&AclEntry {
            stat_id: 2,
            matches: AclMatch::default(),
            action: AclAction::RateLimit { bytes_per_sec: 1000 }
        }));
    }

    #[test]
    fn refusals_name_entry_and_field() {
        let bad = |m: AclMatch, field: &str| {
            let e = compile(&[entry(1, AclMatch::default()), entry(2, m)], &[0, 1]).unwrap_err();
            assert_eq!((e.entry, e.field), (Some(1), field), "{e}");
        };
        bad(
            AclMatch { src: Some("10.0.0.0/8".parse().unwrap()), dst: Some("::/0".parse().unwrap()), ..Default::default() },
            "dst",
        );
        bad(AclMatch { dst_ports: Some(vec![]), ..Default::default() }, "dst_ports");
        #[allow(clippy::reversed_empty_ranges)]
        bad(AclMatch { src_ports: Some(vec![9..=1]), ..Default::default() }, "src_ports");
        bad(AclMatch { src_ports: Some(vec![1..=1, 3..=3, 5..=5, 7..=7, 9..=9]), ..Default::default() }, "src_ports");
        #[allow(clippy::reversed_empty_ranges)]
        bad(AclMatch { ttl: Some(9..=1), ..Default::default() }, "ttl");
        bad(
            AclMatch {
                tcp_flags_bitmask: Some(BitmaskMatch { operator: acl_op::MATCH | acl_op::ANY, bitmask: 1 }),
                ..Default::default()
            },
            "tcp_flags_bitmask",
        );
        bad(
            AclMatch { tcp_flags_bitmask: Some(BitmaskMatch { operator: 0, bitmask: 0x1000 }), ..Default::default() },
            "tcp_flags_bitmask",
        );
        bad(
            AclMatch {
                family: Some(AclFamily::V6),
                fragment: Some(BitmaskMatch { operator: 0, bitmask: acl_frag::DF as u16 }),
                ..Default::default()
            },
            "fragment",
        );
        let e = compile(&[entry(1, AclMatch::default()), entry(1, AclMatch::default())], &[0, 1]).unwrap_err();
        assert_eq!((e.entry, e.field), (Some(1), "stat_id"));
        let many: Vec<AclEntry> = (0..=MAX_ACL_ENTRIES as u64).map(|i| entry(i, AclMatch::default())).collect();
        assert_eq!(compile(&many, &vec![0; many.len()]).unwrap_err().field, "acl");
    }

    /// The compiled vectors agree with a direct evaluation of the entries.
    #[test]
    fn vectors_agree_with_entries() {
        let entries = vec![
            entry(1, AclMatch { dst_ports: Some(port_ranges(PortOp::Neq, 53)), ..Default::default() }),
            entry(2, AclMatch { dst_ports: Some(vec![50..=60]), protocol: Some(17), ..Default::default() }),
            entry(3, AclMatch { ttl: Some(10..=20), ..Default::default() }),
        ];
        let c = compile(&entries, &[0, 1, 2]).unwrap();
        let bits = |off: u32, v: u32| c.vecs[c.idx[(off + v) as usize] as usize].words[0];
        assert_eq!(bits(ACL_IDX_DPORT, 53) & 0b11, 0b10);
        assert_eq!(bits(ACL_IDX_DPORT, 52) & 0b11, 0b11);
        assert_eq!(bits(ACL_IDX_DPORT, 61) & 0b11, 0b01);
        assert_eq!(bits(ACL_IDX_DPORT, ACL_PORT_NONE), 0b100);
        assert_eq!(bits(ACL_IDX_TTL, 9), 0b011);
        assert_eq!(bits(ACL_IDX_TTL, 20), 0b111);
        assert_eq!(bits(ACL_IDX_PROTO, 6), 0b101);
        assert_eq!(c.hdr.fields, af::DPORT | af::TTL | af::PROTO);
    }
}
