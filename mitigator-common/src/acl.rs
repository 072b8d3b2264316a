//! Data-channel ACL maps: the layout shared by the XDP program
//! (`mitigator-ebpf/src/acl.rs`, which explains the lookup) and the daemon
//! (`mitigator-user/src/dataplane/acl.rs`, which explains the compiler).
//!
//! In short: an ordered list of up to [`MAX_ACL_ENTRIES`] entries, first
//! match wins. Each match field of a packet is turned into a *vector id*
//! (LPM tries for prefixes, dense index arrays for protocol, TTL, fragment
//! bits, TCP flags, ICMP type/code, ports, IP length and UDP length), each id names a bit
//! vector of the entries that field value satisfies ([`AclBits`], in
//! `ACL_VECS`), the program ANDs the vectors and the lowest set bit is the
//! matching entry. All rule maps are generational like the others.

use crate::{Counter, PortRange};

/// Entries per generation: a multiple of 64 (one bit per entry).
pub const MAX_ACL_ENTRIES: u32 = 4096;
/// 64-bit words of a bit vector.
pub const ACL_WORDS: usize = (MAX_ACL_ENTRIES / 64) as usize;
/// Counter / rate-limiter slots. A slot belongs to a caller-given stable
/// `stat_id`; during a replacement the old and the new generation may hold
/// disjoint sets of ids, hence twice the entries.
pub const ACL_SLOTS: u32 = 2 * MAX_ACL_ENTRIES;
/// Distinct bit vectors per generation (hash map, grows on demand).
pub const MAX_ACL_VECS: u32 = 1 << 16;
/// Prefix-trie entries per family (src and dst together, both generations).
pub const MAX_ACL_PREFIXES: u32 = 4 * (MAX_ACL_ENTRIES + 1);
/// Port ranges per port field of an entry (`neq` needs two).
pub const MAX_ACL_PORT_RANGES: usize = 4;

/// A bit vector over the entries: bit `i % 64` of word `i / 64` = entry `i`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AclBits {
    pub words: [u64; ACL_WORDS],
}

/// Key of `ACL_VECS` (hash): vector `id` of generation `gen`. Ids
/// [`ACL_VEC_START_V4`] and [`ACL_VEC_START_V6`] are the entries that may
/// match an IPv4 / IPv6 packet at all (the family of their prefixes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclVecKey {
    pub gen: u32,
    pub id: u32,
}
pub const ACL_VEC_START_V4: u32 = 0;
pub const ACL_VEC_START_V6: u32 = 1;

/// Bits of [`AclHeader::fields`]: which match fields any entry of the
/// generation constrains. The program looks up only those (an unused field
/// would return "every entry").
pub mod acl_fields {
    pub const SRC: u32 = 1 << 0;
    pub const DST: u32 = 1 << 1;
    pub const PROTO: u32 = 1 << 2;
    pub const SPORT: u32 = 1 << 3;
    pub const DPORT: u32 = 1 << 4;
    pub const TCP_FLAGS: u32 = 1 << 5;
    pub const FRAG: u32 = 1 << 6;
    pub const LEN: u32 = 1 << 7;
    pub const TTL: u32 = 1 << 8;
    pub const ICMP_TYPE: u32 = 1 << 9;
    pub const ICMP_CODE: u32 = 1 << 10;
    pub const UDP_LEN: u32 = 1 << 11;
}

/// `ACL_HDR`: `Array<AclHeader>` of 2 entries, one per generation.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AclHeader {
    pub n_entries: u32,
    /// Words of the bit vectors in use: `ceil(n_entries / 64)`; the
    /// program's AND loop stops there.
    pub n_words: u32,
    pub fields: u32,
    pub _pad: u32,
}

// --------------------------------------------------------- index arrays ---
//
// `ACL_IDX` is an `Array<u32>` of `2 * ACL_IDX_LEN` vector ids: for
// generation g and field F, index `g * ACL_IDX_LEN + F_OFF + value`.
// Each field has a dense domain; the value past the domain ("_NONE")
// stands for a packet without that header (no ports, not TCP, not ICMP),
// whose vector holds only the entries that do not constrain the field.

pub const ACL_IDX_PROTO: u32 = 0; // 256 protocol numbers
pub const ACL_IDX_TTL: u32 = ACL_IDX_PROTO + 256; // 256 TTL / hop limit values
/// 16 fragment-bit combinations ([`acl_frag`]).
pub const ACL_IDX_FRAG: u32 = ACL_IDX_TTL + 256;
/// 4096 values of the 12 TCP flag bits (byte 12 low nibble << 8 | byte 13),
/// then 1 for "not TCP".
pub const ACL_IDX_TCP_FLAGS: u32 = ACL_IDX_FRAG + 16;
pub const ACL_TCP_FLAGS_NONE: u32 = 4096;
/// 256 ICMP types, then "not ICMP".
pub const ACL_IDX_ICMP_TYPE: u32 = ACL_IDX_TCP_FLAGS + 4097;
pub const ACL_ICMP_NONE: u32 = 256;
pub const ACL_IDX_ICMP_CODE: u32 = ACL_IDX_ICMP_TYPE + 257;
/// 65536 ports, then "no ports".
pub const ACL_IDX_SPORT: u32 = ACL_IDX_ICMP_CODE + 257;
pub const ACL_PORT_NONE: u32 = 65536;
pub const ACL_IDX_DPORT: u32 = ACL_IDX_SPORT + 65537;
/// 65536 lengths (IPv4 total length, IPv6 payload length).
pub const ACL_IDX_LEN: u32 = ACL_IDX_DPORT + 65537;
/// 65536 values of the UDP header's length field (RFC 8783 7.1, the
/// mandatory udp `length`), then 1 for "not UDP, or a non-first fragment".
pub const ACL_IDX_UDP_LEN: u32 = ACL_IDX_LEN + 65536;
pub const ACL_UDP_LEN_NONE: u32 = 65536;
pub const ACL_IDX_LEN_TOTAL: u32 = ACL_IDX_UDP_LEN + 65537;

/// Fragment bits of a packet (the DOTS `fragment-type` bits, same
/// positions): the `fragment` match is a predicate on these 4 bits.
pub mod acl_frag {
    /// IPv4 Don't Fragment set.
    pub const DF: u8 = 1 << 0;
    /// Is a fragment: IPv4 MF set or offset > 0; IPv6 has a Fragment
    /// header (atomic fragments included, RFC 8783 Figure 35).
    pub const ISF: u8 = 1 << 1;
    /// First fragment: offset 0 and MF/M set.
    pub const FF: u8 = 1 << 2;
    /// Last fragment: offset > 0 and MF/M clear.
    pub const LF: u8 = 1 << 3;
}

// ---------------------------------------------------------------- rules ---

/// `AclRule::action`.
pub mod acl_action {
    pub const ACCEPT: u32 = 1;
    pub const DROP: u32 = 2;
    pub const RATE_LIMIT: u32 = 3;
}

/// Which optional fields of an [`AclRule`]'s spec are set.
pub mod acl_spec {
    pub const SRC: u32 = 1 << 0;
    pub const DST: u32 = 1 << 1;
    pub const PROTO: u32 = 1 << 2;
    pub const SPORT: u32 = 1 << 3;
    pub const DPORT: u32 = 1 << 4;
    pub const BITMASK: u32 = 1 << 5;
    pub const TCP_FLAGS: u32 = 1 << 6;
    pub const FRAG: u32 = 1 << 7;
    pub const LEN: u32 = 1 << 8;
    pub const TTL: u32 = 1 << 9;
    pub const ICMP_TYPE: u32 = 1 << 10;
    pub const ICMP_CODE: u32 = 1 << 11;
    pub const FAMILY_V4: u32 = 1 << 12;
    pub const FAMILY_V6: u32 = 1 << 13;
    /// `src` / `dst` is an IPv6 prefix (else IPv4).
    pub const SRC_V6: u32 = 1 << 14;
    pub const DST_V6: u32 = 1 << 15;
    pub const UDP_LEN: u32 = 1 << 16;
}

/// `ACL_RULES`: `Array<AclRule>` of `2 * MAX_ACL_ENTRIES`, index
/// `gen * MAX_ACL_ENTRIES + entry`. The program reads the first three
/// fields; the rest is the entry as the daemon gave it, so that a restarted
/// daemon that adopts pinned maps can rebuild (and diff against) the exact
/// generation contents.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AclRule {
    pub action: u32,
    /// Index into `ACL_STATS` and `ACL_RATE`.
    pub slot: u32,
    /// Bytes per second (RATE_LIMIT); the burst is one second of it.
    pub rate_bps: u64,
    // ---- the spec (daemon only) ----
    pub stat_id: u64,
    /// [`acl_spec`] bits.
    pub spec: u32,
    pub src_len: u8,
    pub dst_len: u8,
    pub proto: u8,
    pub n_sport: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: [PortRange; MAX_ACL_PORT_RANGES],
    pub dport: [PortRange; MAX_ACL_PORT_RANGES],
    pub n_dport: u8,
    /// `flags-bitmask` operator bits (not = 1, match = 2, any = 8).
    pub bitmask_op: u8,
    pub bitmask: u16,
    pub tcp_flags: u8,
    pub frag_op: u8,
    pub frag_type: u8,
    pub ttl_lo: u8,
    pub ttl_hi: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub _pad: u8,
    pub len: PortRange,
    /// The UDP header's length field.
    pub udp_len: PortRange,
}

impl AclRule {
    pub const fn empty() -> Self {
        AclRule {
            action: 0,
            slot: 0,
            rate_bps: 0,
            stat_id: 0,
            spec: 0,
            src_len: 0,
            dst_len: 0,
            proto: 0,
            n_sport: 0,
            src: [0; 16],
            dst: [0; 16],
            sport: [PortRange { lo: 0, hi: 0 }; MAX_ACL_PORT_RANGES],
            dport: [PortRange { lo: 0, hi: 0 }; MAX_ACL_PORT_RANGES],
            n_dport: 0,
            bitmask_op: 0,
            bitmask: 0,
            tcp_flags: 0,
            frag_op: 0,
            frag_type: 0,
            ttl_lo: 0,
            ttl_hi: 0,
            icmp_type: 0,
            icmp_code: 0,
            _pad: 0,
            len: PortRange { lo: 0, hi: 0 },
            udp_len: PortRange { lo: 0, hi: 0 },
        }
    }
}

/// Operator bits of `flags-bitmask` and `fragment` (RFC 8783 `operator`).
pub mod acl_op {
    pub const NOT: u8 = 1 << 0;
    pub const MATCH: u8 = 1 << 1;
    pub const ANY: u8 = 1 << 3;
}

/// `ACL_RATE`: `Array<AclBucket>` of [`ACL_SLOTS`]: one aggregate token
/// bucket per rate-limited entry, in byte-nanoseconds (as `RateState`).
/// `last_ns == 0` means fresh: the bucket starts full.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AclBucket {
    pub last_ns: u64,
    pub tokens: u64,
}

/// `ACL_STATS`: `PerCpuArray<Counter>` of [`ACL_SLOTS`]: packets and bytes
/// matched by the entry holding the slot (whatever its action did).
pub type AclCounter = Counter;

/// LPM key data of `ACL_PFX_V4`: generation, direction (0 = source,
/// 1 = destination), address. Prefix length = 16 + the prefix's.
pub type AclPfxV4 = [u8; 6];
pub type AclPfxV6 = [u8; 18];
pub const ACL_PFX_HDR_BITS: u32 = 16;

#[inline(always)]
pub fn acl_pfx_v4(gen: u32, dst: bool, addr: [u8; 4]) -> AclPfxV4 {
    [gen as u8, dst as u8, addr[0], addr[1], addr[2], addr[3]]
}

#[inline(always)]
pub fn acl_pfx_v6(gen: u32, dst: bool, addr: &[u8; 16]) -> AclPfxV6 {
    let mut d = [0u8; 18];
    d[0] = gen as u8;
    d[1] = dst as u8;
    let mut i = 0;
    while i < 16 {
        d[i + 2] = addr[i];
        i += 1;
    }
    d
}
