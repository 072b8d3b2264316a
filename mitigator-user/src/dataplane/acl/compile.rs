//! Validation and normalisation of entries, and the bit-vector compiler
//! (see the module docs of `acl`).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap as StdHashMap},
    ops::RangeInclusive,
};

use anyhow::Result;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use mitigator_common::{
    acl_fields as af, acl_frag, acl_op, AclBits, AclHeader, AclRule, ACL_ICMP_NONE, ACL_IDX_DPORT, ACL_IDX_FRAG,
    ACL_IDX_ICMP_CODE, ACL_IDX_ICMP_TYPE, ACL_IDX_LEN, ACL_IDX_LEN_TOTAL, ACL_IDX_PROTO, ACL_IDX_SPORT,
    ACL_IDX_TCP_FLAGS, ACL_IDX_TTL, ACL_IDX_UDP_LEN, ACL_PORT_NONE, ACL_TCP_FLAGS_NONE, ACL_UDP_LEN_NONE, ACL_WORDS,
    MAX_ACL_ENTRIES, MAX_ACL_PORT_RANGES, MAX_ACL_VECS,
};

use super::*;

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
    ulen: Option<(u32, u32)>,
    ttl: Option<(u32, u32)>,
    itype: Option<u32>,
    icode: Option<u32>,
}

impl Norm {
    fn flags_match(&self, v: u16) -> bool {
        match &self.flags {
            None => true,
            Some((bm, exact)) => bm.is_none_or(|b| b.eval(v)) && exact.is_none_or(|f| (v & 0xff) as u8 == f),
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
        ulen: m.udp_length.as_ref().map(|r| norm_range(i, "udp_length", r)).transpose()?,
        ttl: m.ttl.as_ref().map(|r| norm_range(i, "ttl", r)).transpose()?,
        itype: m.icmp_type.map(u32::from),
        icode: m.icmp_code.map(u32::from),
    })
}

// -------------------------------------------------------------- compiled ---

/// The exact ACL contents of one generation, keyed as in the maps.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AclContents {
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

/// Compiles `entries` with their slots (from `assign_slots`).
pub(crate) fn compile(entries: &[AclEntry], slots: &[u32]) -> Result<AclContents, AclError> {
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
        (af::UDP_LEN, ACL_IDX_UDP_LEN, ACL_UDP_LEN_NONE, true, Box::new(|n: &Norm| n.ulen.map(|r| vec![r]))),
    ];
    for (bit, off, domain, none, get) in ranges {
        if norm.iter().any(|n| get(n).is_some()) {
            fields |= bit;
            range_field(&norm, &mut store, idx, off, domain, none, get);
        }
    }
    if norm.iter().any(|n| n.frag.is_some()) {
        fields |= af::FRAG;
        pred_field(
            &norm,
            &mut store,
            idx,
            ACL_IDX_FRAG,
            16,
            |n| n.frag.is_some(),
            |n, v| n.frag.is_some_and(|f| f.eval(v)),
        );
    }
    if norm.iter().any(|n| n.flags.is_some()) {
        fields |= af::TCP_FLAGS;
        pred_field(&norm, &mut store, idx, ACL_IDX_TCP_FLAGS, 4096, |n| n.flags.is_some(), |n, v| n.flags_match(v));
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
    c.rules = entries.iter().zip(slots).map(|(e, &s)| super::encode::encode(e, s)).collect();
    Ok(c)
}
