//! Data-channel ACL matching: accept-list → drop-list → **ACL** → target.
//!
//! # Design: linear bit-vector search (as in bpf-iptables)
//!
//! The ACL is an ordered list of up to `MAX_ACL_ENTRIES` (4096) entries;
//! the first entry whose every match field accepts the packet decides. A
//! linear scan would cost up to 4096 × fields comparisons per packet, and
//! a verifier walk of the same size. Instead the daemon precomputes, for
//! every *field* and every value that field can take, the set of entries
//! that value satisfies, as a bit vector (bit i = entry i, `AclBits`):
//!
//! - source / destination prefix: an LPM trie per family (`ACL_PFX_V4/V6`,
//!   key = generation, direction, address). The longest stored prefix
//!   containing the address names the vector of entries whose prefix
//!   contains that stored prefix (a `/0` is always stored for the
//!   entries without an address match);
//! - protocol, TTL, fragment bits, the 12 TCP flag bits, ICMP type, ICMP
//!   code, source port, destination port, IP length, UDP length: dense value → vector
//!   id arrays (`ACL_IDX`); ranges are pre-split by the daemon into
//!   elementary intervals, so a range costs nothing here. Packets without
//!   the header (no ports, not TCP, not UDP, not ICMP) use a "none" value whose
//!   vector holds only entries that do not constrain the field.
//!
//! A vector id names a vector in `ACL_VECS` (deduplicated by the daemon).
//! Per packet: look up one vector per field that *any* entry constrains
//! (`AclHeader::fields`; the others would return "all entries" and are
//! skipped), AND them word by word with the family vector (entries whose
//! prefixes are of the packet's family) and stop at the first non-zero
//! word: its lowest set bit is the first matching entry. The AND loop runs
//! over `ceil(n / 64)` words only, so one entry costs one word.
//!
//! Then the entry's action: accept (pass, bypassing target policies),
//! drop, or rate-limit (an aggregate byte token bucket per entry in
//! `ACL_RATE`: under the rate the packet is accepted, over it dropped).
//! Every matched packet is counted in the entry's per-CPU `ACL_STATS`
//! slot. Everything is read in the generation the caller read once, so a
//! replaced ACL is seen whole or not at all.
//!
//! A lookup that misses (a map the daemon has not filled: it always does,
//! before setting the generation's ACL flag) means "no ACL decision": the
//! packet goes on to the targets, never dropped by accident.

use aya_ebpf::{helpers::bpf_ktime_get_ns, maps::lpm_trie::Key};
use mitigator_common::{
    acl_action, acl_fields as af, acl_pfx_v4, acl_pfx_v6, AclBits, AclBucket, AclVecKey, ACL_ICMP_NONE, ACL_IDX_DPORT,
    ACL_IDX_FRAG, ACL_IDX_ICMP_CODE, ACL_IDX_ICMP_TYPE, ACL_IDX_LEN, ACL_IDX_LEN_TOTAL, ACL_IDX_PROTO, ACL_IDX_SPORT,
    ACL_IDX_TCP_FLAGS, ACL_IDX_TTL, ACL_IDX_UDP_LEN, ACL_PFX_HDR_BITS, ACL_PORT_NONE, ACL_SLOTS, ACL_TCP_FLAGS_NONE,
    ACL_UDP_LEN_NONE, ACL_VEC_START_V4, ACL_VEC_START_V6, ACL_WORDS, MAX_ACL_ENTRIES,
};

use crate::{
    maps::{ACL_HDR, ACL_IDX, ACL_PFX_V4, ACL_PFX_V6, ACL_RATE, ACL_RULES, ACL_STATS, ACL_VECS},
    parse::{Pkt, IPPROTO_UDP},
    policy::{cap_of, refill, NS},
};

/// What the ACL decided.
pub enum AclVerdict {
    /// No entry matched (or the ACL could not be read): go on.
    NoMatch,
    Accept,
    Drop,
}

/// The ACL's verdict for `p` in generation `gen` (whose flags say it has
/// an ACL); counts the matching entry. Not inlined: a BPF-to-BPF call
/// gives the ACL its own stack frame (inlined, LLVM lays the ACL's locals
/// beside the policy's and the 512-byte limit is exceeded).
#[inline(never)]
pub fn check(p: &Pkt, gen: u32, len: u64) -> AclVerdict {
    match first_match(p, gen) {
        Some(i) => act(gen, i, len),
        None => AclVerdict::NoMatch,
    }
}

/// Vector `id` of generation `gen`.
#[inline(always)]
fn vec(gen: u32, id: u32) -> Option<*const AclBits> {
    ACL_VECS.get_ptr(&AclVecKey { gen, id })
}

/// Vector of the dense index array entry `off + value`.
#[inline(always)]
fn idx_vec(gen: u32, off: u32, value: u32) -> Option<*const AclBits> {
    let id = *ACL_IDX.get(gen * ACL_IDX_LEN_TOTAL + off + value)?;
    vec(gen, id)
}

/// Vector of the longest stored prefix containing the source (`dst` =
/// false) or destination address.
#[inline(always)]
fn pfx_vec(p: &Pkt, gen: u32, dst: bool) -> Option<*const AclBits> {
    let a = if dst { &p.dst } else { &p.src };
    let id = if p.v6 {
        *ACL_PFX_V6.get(&Key::new(ACL_PFX_HDR_BITS + 128, acl_pfx_v6(gen, dst, a)))?
    } else {
        *ACL_PFX_V4.get(&Key::new(ACL_PFX_HDR_BITS + 32, acl_pfx_v4(gen, dst, [a[0], a[1], a[2], a[3]])))?
    };
    vec(gen, id)
}

/// Index of the lowest set bit of `x != 0`, with no branch and no table:
/// the bits below it are `(x & -x) - 1`; count them (SWAR popcount).
/// BPF has no ctz instruction, LLVM's fallback wants a table in .rodata,
/// and a binary search by masks made the verifier walk 64 paths per word
/// of the AND loop (it gave up at 1M instructions).
#[inline(always)]
fn lowest_bit(x: u64) -> u32 {
    let mut v = (x & x.wrapping_neg()).wrapping_sub(1);
    v = v - ((v >> 1) & 0x5555_5555_5555_5555);
    v = (v & 0x3333_3333_3333_3333) + ((v >> 2) & 0x3333_3333_3333_3333);
    v = (v + (v >> 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    (v.wrapping_mul(0x0101_0101_0101_0101) >> 56) as u32
}

/// The first entry matching `p`, if any.
#[inline(always)]
fn first_match(p: &Pkt, gen: u32) -> Option<u32> {
    let hdr = ACL_HDR.get(gen)?;
    let n_words = hdr.n_words;
    let f = hdr.fields;
    let start = vec(gen, if p.v6 { ACL_VEC_START_V6 } else { ACL_VEC_START_V4 })?;

    // One vector per field; a field no entry constrains reuses `start`
    // (ANDing it twice is free of effect), so the loop below has no
    // per-field branch.
    let src = if f & af::SRC != 0 { pfx_vec(p, gen, false)? } else { start };
    let dst = if f & af::DST != 0 { pfx_vec(p, gen, true)? } else { start };
    let proto = if f & af::PROTO != 0 { idx_vec(gen, ACL_IDX_PROTO, p.proto as u32)? } else { start };
    let ttl = if f & af::TTL != 0 { idx_vec(gen, ACL_IDX_TTL, p.ttl as u32)? } else { start };
    let len = if f & af::LEN != 0 { idx_vec(gen, ACL_IDX_LEN, p.ip_len as u32)? } else { start };
    let frag = if f & af::FRAG != 0 { idx_vec(gen, ACL_IDX_FRAG, (p.frag_bits & 0xf) as u32)? } else { start };
    let flags = if f & af::TCP_FLAGS != 0 {
        let v = if p.has_tcp { ((p.tcp_flags_hi as u32 & 0xf) << 8) | p.tcp_flags as u32 } else { ACL_TCP_FLAGS_NONE };
        idx_vec(gen, ACL_IDX_TCP_FLAGS, v)?
    } else {
        start
    };
    let (sp, dp) = if p.has_ports { (p.sport as u32, p.dport as u32) } else { (ACL_PORT_NONE, ACL_PORT_NONE) };
    let sport = if f & af::SPORT != 0 { idx_vec(gen, ACL_IDX_SPORT, sp)? } else { start };
    let dport = if f & af::DPORT != 0 { idx_vec(gen, ACL_IDX_DPORT, dp)? } else { start };
    let (it, ic) = if p.has_icmp { (p.icmp_type as u32, p.icmp_code as u32) } else { (ACL_ICMP_NONE, ACL_ICMP_NONE) };
    let itype = if f & af::ICMP_TYPE != 0 { idx_vec(gen, ACL_IDX_ICMP_TYPE, it)? } else { start };
    let icode = if f & af::ICMP_CODE != 0 { idx_vec(gen, ACL_IDX_ICMP_CODE, ic)? } else { start };
    // RFC 8519's udp `length` is UDP's: UDP-Lite's field means coverage.
    let ul = if p.has_ports && p.proto == IPPROTO_UDP { p.udp_len as u32 } else { ACL_UDP_LEN_NONE };
    let ulen = if f & af::UDP_LEN != 0 { idx_vec(gen, ACL_IDX_UDP_LEN, ul)? } else { start };

    // Bounded by ACL_WORDS for the verifier, by n_words for speed.
    let mut w = 0usize;
    while w < ACL_WORDS {
        if w as u32 >= n_words {
            break;
        }
        // SAFETY: every pointer is a non-null ACL_VECS value of
        // ACL_WORDS words, and w < ACL_WORDS.
        let x = unsafe {
            (*start).words[w]
                & (*src).words[w]
                & (*dst).words[w]
                & (*proto).words[w]
                & (*ttl).words[w]
                & (*len).words[w]
                & (*frag).words[w]
                & (*flags).words[w]
                & (*sport).words[w]
                & (*dport).words[w]
                & (*itype).words[w]
                & (*icode).words[w]
                & (*ulen).words[w]
        };
        if x != 0 {
            return Some(w as u32 * 64 + lowest_bit(x));
        }
        w += 1;
    }
    None
}

/// Counts entry `i` and applies its action.
#[inline(always)]
fn act(gen: u32, i: u32, len: u64) -> AclVerdict {
    if i >= MAX_ACL_ENTRIES {
        return AclVerdict::NoMatch;
    }
    let rule = match ACL_RULES.get(gen * MAX_ACL_ENTRIES + i) {
        Some(r) => r,
        None => return AclVerdict::NoMatch,
    };
    let slot = rule.slot;
    if slot >= ACL_SLOTS {
        return AclVerdict::NoMatch;
    }
    if let Some(c) = ACL_STATS.get_ptr_mut(slot) {
        unsafe { (*c).add(len) };
    }
    match rule.action {
        acl_action::ACCEPT => AclVerdict::Accept,
        acl_action::DROP => AclVerdict::Drop,
        acl_action::RATE_LIMIT => {
            let ok = match ACL_RATE.get_ptr_mut(slot) {
                Some(b) => under_rate(unsafe { &mut *b }, rule.rate_bps, len),
                None => true,
            };
            if ok {
                AclVerdict::Accept
            } else {
                AclVerdict::Drop
            }
        }
        // An action this program does not know: no decision.
        _ => AclVerdict::NoMatch,
    }
}

/// An aggregate byte bucket `b` (burst: one second of the rate; an ACL
/// entry's or a guard entry's) has room for `len` bytes; takes them if so.
/// A fresh bucket (`last_ns` 0, as the daemon zeroes it when its slot gets
/// a new entry) starts full. Concurrent CPUs update the bucket without a
/// lock: a race can let a packet or two more through, never fewer, which
/// suits a rate limit.
#[inline(always)]
pub(crate) fn under_rate(b: &mut AclBucket, rate: u64, len: u64) -> bool {
    let now = unsafe { bpf_ktime_get_ns() };
    let cap = cap_of(rate, 0);
    let tokens = if b.last_ns == 0 {
        cap
    } else {
        let elapsed = if now > b.last_ns { now - b.last_ns } else { 0 };
        refill(b.tokens, elapsed, rate, cap)
    };
    // Frames are < 2^17 bytes, so len * NS fits in a u64.
    let cost = len * NS;
    let ok = tokens >= cost;
    b.tokens = if ok { tokens - cost } else { tokens };
    b.last_ns = now;
    ok
}
