//! A target's policy: scope, then the countermeasures in a fixed order.

use aya_ebpf::helpers::bpf_ktime_get_ns;
use mitigator_common::{policy_flags as pf, DropReason, Policy, RateKey, RateState, MAX_PORT_RANGES};

use crate::{
    maps::{AGG_RATE, RATE_STATE, REFLECT_PORTS},
    parse::*,
};

/// Nanoseconds per second: a token is worth this many token-ns.
pub(crate) const NS: u64 = 1_000_000_000;
/// Largest burst whose bucket (burst * NS token-ns) fits in a u64.
const MAX_BURST: u64 = u64::MAX / NS;

/// In scope: protocol in the bitmap and, when the policy lists ports and
/// the packet carries ports, destination port in one of the ranges.
#[inline(always)]
pub fn in_scope(pol: &Policy, p: &Pkt) -> bool {
    if !pol.has_proto(p.proto) {
        return false;
    }
    if pol.n_ports == 0 || !p.has_ports {
        return true;
    }
    let mut i = 0;
    while i < MAX_PORT_RANGES {
        if i as u32 >= pol.n_ports {
            break;
        }
        let r = &pol.ports[i];
        if p.dport >= r.lo && p.dport <= r.hi {
            return true;
        }
        i += 1;
    }
    false
}

/// Invalid TCP flag combinations (ECE/CWR ignored), after the usual
/// scanner/flood signatures and the combinations conntrack rejects:
/// - NULL: none of FIN SYN RST PSH ACK URG
/// - SYN+FIN, SYN+RST, FIN+RST
/// - FIN without ACK (covers the nmap FIN and XMAS FIN+PSH+URG scans)
/// - PSH without ACK, URG without ACK
#[inline(always)]
pub fn bad_tcp_flags(f: u8) -> bool {
    let f = f & (TCP_FIN | TCP_SYN | TCP_RST | TCP_PSH | TCP_ACK | TCP_URG);
    let ack = f & TCP_ACK != 0;
    f == 0
        || f & (TCP_SYN | TCP_FIN) == (TCP_SYN | TCP_FIN)
        || f & (TCP_SYN | TCP_RST) == (TCP_SYN | TCP_RST)
        || f & (TCP_FIN | TCP_RST) == (TCP_FIN | TCP_RST)
        || (!ack && f & (TCP_FIN | TCP_PSH | TCP_URG) != 0)
}

/// UDP source port listed in `REFLECT_PORTS` (bit p of word p/64).
#[inline(always)]
fn reflection_port(sport: u16) -> bool {
    match REFLECT_PORTS.get((sport >> 6) as u32) {
        Some(w) => *w & (1u64 << (sport & 63)) != 0,
        None => false,
    }
}

/// Bucket size in token-ns for `burst` tokens; a zero burst means one
/// second's worth of the rate.
#[inline(always)]
pub(crate) fn cap_of(rate: u64, burst: u64) -> u64 {
    let b = if burst == 0 { rate } else { burst };
    let b = if b > MAX_BURST { MAX_BURST } else { b };
    b * NS
}

/// Refills a bucket holding `tokens` (<= cap) after `elapsed` ns at `rate`
/// tokens/s, capped at `cap`, with no u64 overflow: if `elapsed` alone
/// would fill an empty bucket (elapsed >= cap / rate) the bucket is full;
/// otherwise elapsed * rate < cap fits, and the sum is compared with the
/// remaining room instead of being computed first.
#[inline(always)]
pub(crate) fn refill(tokens: u64, elapsed: u64, rate: u64, cap: u64) -> u64 {
    if rate == 0 {
        return 0;
    }
    let tokens = if tokens > cap { cap } else { tokens };
    if elapsed >= cap / rate {
        return cap;
    }
    let add = elapsed * rate;
    if add >= cap - tokens {
        cap
    } else {
        tokens + add
    }
}

/// Per-source buckets of `RATE_STATE`: SYN limit (only for pure SYNs when
/// `syn` is set) and pps/bps limits (when `rate` is set). All buckets are
/// refilled together since they share `last_ns`. A dropped packet costs no
/// tokens. Concurrent CPUs may race on one source's state: the limit is then
/// approximate by a packet or two, which is acceptable and lock-free. The
/// state is updated in place; should LRU eviction recycle the element at
/// that moment, one source's bucket is off by one update, nothing worse.
#[inline(always)]
fn limits(pol: &Policy, p: &Pkt, target: u32, len: u64, syn: bool, rate: bool) -> Option<DropReason> {
    let now = unsafe { bpf_ktime_get_ns() };
    let key = RateKey { target, src: src_key(p) };
    let pkt_cap = cap_of(pol.src_pps, pol.src_pps_burst);
    let byte_cap = cap_of(pol.src_bps, pol.src_bps_burst);
    let syn_cap = cap_of(pol.syn_pps, pol.syn_burst);

    let existing = RATE_STATE.get_ptr_mut(&key);
    let mut st = match existing {
        Some(s) => {
            let s = unsafe { &*s };
            // A clock going backwards (it does not, but be safe) refills nothing.
            let elapsed = if now > s.last_ns { now - s.last_ns } else { 0 };
            RateState {
                last_ns: now,
                pkt_tokens: refill(s.pkt_tokens, elapsed, pol.src_pps, pkt_cap),
                byte_tokens: refill(s.byte_tokens, elapsed, pol.src_bps, byte_cap),
                syn_tokens: refill(s.syn_tokens, elapsed, pol.syn_pps, syn_cap),
            }
        }
        // A new source starts with full buckets.
        None => RateState { last_ns: now, pkt_tokens: pkt_cap, byte_tokens: byte_cap, syn_tokens: syn_cap },
    };

    let mut verdict = None;
    if syn && pol.syn_pps != 0 {
        if st.syn_tokens >= NS {
            st.syn_tokens -= NS;
        } else {
            verdict = Some(DropReason::SynLimit);
        }
    }
    if verdict.is_none() && rate {
        // Bytes are bounded by the frame size (< 2^17), so len * NS fits.
        let byte_cost = len * NS;
        let pps_ok = pol.src_pps == 0 || st.pkt_tokens >= NS;
        let bps_ok = pol.src_bps == 0 || st.byte_tokens >= byte_cost;
        if pps_ok && bps_ok {
            if pol.src_pps != 0 {
                st.pkt_tokens -= NS;
            }
            if pol.src_bps != 0 {
                st.byte_tokens -= byte_cost;
            }
        } else {
            verdict = Some(DropReason::RateLimit);
        }
    }
    match existing {
        // In place: an LRU map's update allocates a new element and frees
        // the old one, which cost ~250 ns per rate-limited packet.
        Some(s) => unsafe { *s = st },
        None => {
            let _ = RATE_STATE.insert(&key, &st, 0);
        }
    }
    verdict
}

/// Source as an IPv6 address (IPv4 mapped to ::ffff:a.b.c.d).
#[inline(always)]
fn src_key(p: &Pkt) -> [u8; 16] {
    if p.v6 {
        p.src
    } else {
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, p.src[0], p.src[1], p.src[2], p.src[3]]
    }
}

/// The countermeasures that look at one packet alone, before the SYN
/// proxy: `None` = go on (to `late`, or to the SYN proxy first when
/// `wants_syn_proxy`).
#[inline(always)]
pub fn early(pol: &Policy, p: &Pkt) -> Option<DropReason> {
    let f = pol.flags;
    // Any countermeasure at all (not a policy that only counts).
    if p.l4_bad && f & !pf::ACTIVE != 0 {
        return Some(DropReason::Malformed);
    }
    if f & pf::DROP_FRAGMENTS != 0 && p.frag != FRAG_NONE {
        return Some(DropReason::Fragment);
    }
    if f & pf::DROP_BAD_TCP_FLAGS != 0 && p.has_tcp && bad_tcp_flags(p.tcp_flags) {
        return Some(DropReason::BadTcpFlags);
    }
    if f & pf::DROP_REFLECTION != 0 && p.has_ports && p.proto == IPPROTO_UDP && reflection_port(p.sport) {
        return Some(DropReason::Reflection);
    }
    None
}

/// The SYN proxy takes the packet: the target has it, and the packet is
/// an unfragmented TCP segment with a whole header.
#[inline(always)]
pub fn wants_syn_proxy(pol: &Policy, p: &Pkt) -> bool {
    pol.flags & pf::SYN_PROXY != 0 && p.has_tcp && p.frag == FRAG_NONE
}

/// The rate countermeasures and `drop-all`, after `early` (and the SYN
/// proxy, which answers SYNs itself: a SYN it passes on is one it could
/// not take): `None` = pass.
#[inline(always)]
pub fn late(pol: &Policy, p: &Pkt, target: u32, len: u64) -> Option<DropReason> {
    let f = pol.flags;
    let syn = f & pf::SYN_LIMIT != 0 && p.has_tcp && p.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
    let rate = f & pf::RATE_LIMIT_SRC != 0 && (pol.src_pps != 0 || pol.src_bps != 0);
    if syn || rate {
        if let Some(r) = limits(pol, p, target, len, syn, rate) {
            return Some(r);
        }
    }
    if f & pf::AGGREGATE != 0 && pol.agg_has_proto(p.proto) && !under_aggregate(pol, target, len) {
        return Some(DropReason::Aggregate);
    }
    if f & pf::DROP_ALL != 0 {
        return Some(DropReason::Scope);
    }
    None
}

/// The target's aggregate buckets (`AGG_RATE`, shared by every source and
/// CPU) have room for the packet; takes it if so. One bucket per target
/// in an array, updated in place without a lock: two CPUs racing on it
/// can let a packet or two more through, never fewer. Shared rather than
/// per-CPU because a per-CPU share of the rate (rate / CPUs) would cut a
/// flood that the NIC's hashing puts on one CPU to a fraction of the
/// limit; the price is one cache line bouncing between the CPUs that
/// carry the flood (measured in the bench).
#[inline(always)]
fn under_aggregate(pol: &Policy, target: u32, len: u64) -> bool {
    let b = match AGG_RATE.get_ptr_mut(target) {
        Some(b) => unsafe { &mut *b },
        None => return true,
    };
    let now = unsafe { bpf_ktime_get_ns() };
    let pkt_cap = cap_of(pol.agg_pps, pol.agg_pps_burst);
    let byte_cap = cap_of(pol.agg_bps, pol.agg_bps_burst);
    let elapsed = if now > b.last_ns { now - b.last_ns } else { 0 };
    let pkts = refill(b.pkt_tokens, elapsed, pol.agg_pps, pkt_cap);
    let bytes = refill(b.byte_tokens, elapsed, pol.agg_bps, byte_cap);
    // Frames are < 2^17 bytes, so len * NS fits in a u64.
    let byte_cost = len * NS;
    let ok = (pol.agg_pps == 0 || pkts >= NS) && (pol.agg_bps == 0 || bytes >= byte_cost);
    b.last_ns = now;
    b.pkt_tokens = if ok && pol.agg_pps != 0 { pkts - NS } else { pkts };
    b.byte_tokens = if ok && pol.agg_bps != 0 { bytes - byte_cost } else { bytes };
    ok
}
