//! Map keys and values shared by the XDP program (`mitigator-ebpf`) and the
//! daemon (`mitigator-user`). Everything here is `#[repr(C)]`, plain old data,
//! and `no_std`, so that both sides agree on every byte.
//!
//! # Generations
//!
//! A rule-set change must never be seen half-applied by a packet. Every rule
//! map (targets, policies, accept/drop lists) therefore holds two
//! *generations* of entries, told apart by a generation number inside the key
//! (or, for the policy array, the index). The XDP program reads the active
//! generation and its [`gen_flags`] from [`CONFIG_ACTIVE`] as one word (one
//! lookup) and looks up only entries of that generation. The daemon
//! writes a complete change into the inactive generation, then flips
//! [`CONFIG_ACTIVE`] to the new generation and its flags with one 8-byte
//! write, then (after every program run that could still see the old
//! generation has ended) brings the old generation up to date. Counters and rate-limiter state are
//! not generational: they belong to a target id, which is stable.
#![no_std]

mod acl;
mod guard;
pub use acl::*;
pub use guard::*;

/// Protected targets that can exist at once (per generation).
pub const MAX_TARGETS: u32 = 16_384;
/// Port ranges per target scope. A DOTS request with more is split.
pub const MAX_PORT_RANGES: usize = 8;
/// IPv6 extension headers walked before giving up (the packet then passes,
/// counted as unparsed: never dropped by accident).
pub const MAX_IPV6_EXT_HEADERS: usize = 6;
/// Host routes (hash) per family and generation.
pub const MAX_HOST_ROUTES: u32 = 1 << 21;
/// Prefixes shorter than a host route (LPM trie) per family and generation.
pub const MAX_PREFIXES: u32 = 1 << 21;
/// Accept-list / drop-list entries per family and generation (host
/// addresses in the list's hash map, shorter prefixes in its LPM trie: each
/// map is sized for all of them).
pub const MAX_LIST_ENTRIES: u32 = 1 << 21;
/// Per-source rate-limiter states (LRU).
pub const MAX_RATE_STATES: u32 = 1 << 20;
/// Interface counter slots (`IFACE_STATS`); slot 0 collects any ifindex
/// without a slot of its own (BPF_PROG_TEST_RUN runs, for instance).
pub const MAX_IFACES: u32 = 256;
/// Entries of `IFACE_SLOTS`, the ifindex → slot table: a power of two.
pub const IFACE_SLOT_TABLE: u32 = 1024;
/// Table entries probed from `ifindex % IFACE_SLOT_TABLE` on.
pub const IFACE_PROBES: u32 = 4;

/// Names of the maps, also their pin names under bpffs.
pub mod maps {
    pub const CONFIG: &str = "MTG_CONFIG";
    pub const HOST_V4: &str = "MTG_HOST_V4";
    pub const HOST_V6: &str = "MTG_HOST_V6";
    pub const LPM_V4: &str = "MTG_LPM_V4";
    pub const LPM_V6: &str = "MTG_LPM_V6";
    pub const ACCEPT_V4: &str = "MTG_ACCEPT_V4";
    pub const ACCEPT_V6: &str = "MTG_ACCEPT_V6";
    pub const DROP_V4: &str = "MTG_DROP_V4";
    pub const DROP_V6: &str = "MTG_DROP_V6";
    pub const ACCEPT_HOST_V4: &str = "MTG_ACCEPT_HOST_V4";
    pub const ACCEPT_HOST_V6: &str = "MTG_ACCEPT_HOST_V6";
    pub const DROP_HOST_V4: &str = "MTG_DROP_HOST_V4";
    pub const DROP_HOST_V6: &str = "MTG_DROP_HOST_V6";
    pub const POLICIES: &str = "MTG_POLICIES";
    pub const REFLECT_PORTS: &str = "MTG_REFLECT_PORTS";
    pub const RATE_STATE: &str = "MTG_RATE_STATE";
    pub const TARGET_STATS: &str = "MTG_TARGET_STATS";
    pub const IFACE_STATS: &str = "MTG_IFACE_STATS";
    pub const IFACE_SLOTS: &str = "MTG_IFACE_SLOTS";
    pub const ACL_HDR: &str = "MTG_ACL_HDR";
    pub const ACL_IDX: &str = "MTG_ACL_IDX";
    pub const ACL_PFX_V4: &str = "MTG_ACL_PFX_V4";
    pub const ACL_PFX_V6: &str = "MTG_ACL_PFX_V6";
    pub const ACL_VECS: &str = "MTG_ACL_VECS";
    pub const ACL_RULES: &str = "MTG_ACL_RULES";
    pub const ACL_RATE: &str = "MTG_ACL_RATE";
    pub const ACL_STATS: &str = "MTG_ACL_STATS";
    pub const GUARD: &str = "MTG_GUARD";
    pub const GUARD_RATE: &str = "MTG_GUARD_RATE";
    pub const GUARD_STATS: &str = "MTG_GUARD_STATS";
    pub const SYN_PROXY: &str = "MTG_SYN_PROXY";
    pub const AGG_RATE: &str = "MTG_AGG_RATE";
    /// Not pinned (not in [`ALL`]): each loaded program has its own, valid
    /// only through the epoch in `CONFIG`.
    pub const DST_CACHE: &str = "MTG_DST_CACHE";
    /// Every map, for pinning and adoption.
    pub const ALL: &[&str] = &[
        CONFIG, HOST_V4, HOST_V6, LPM_V4, LPM_V6, ACCEPT_V4, ACCEPT_V6, DROP_V4, DROP_V6,
        ACCEPT_HOST_V4, ACCEPT_HOST_V6, DROP_HOST_V4, DROP_HOST_V6, POLICIES, REFLECT_PORTS,
        RATE_STATE, TARGET_STATS, IFACE_STATS, IFACE_SLOTS, ACL_HDR, ACL_IDX,
        ACL_PFX_V4, ACL_PFX_V6, ACL_VECS, ACL_RULES, ACL_RATE, ACL_STATS, GUARD, GUARD_RATE,
        GUARD_STATS, SYN_PROXY, AGG_RATE,
    ];
}

/// Name of the XDP program in the object file.
pub const PROGRAM_NAME: &str = "mitigator";
// ------------------------------------------------------------ syn proxy ---

/// `SYN_PROXY`: `Array<SynProxyConfig>` of one entry, written at load: what
/// the SYN-ACKs answered from XDP carry. The MSS, window scale and the
/// SACK/timestamp choice must be those of the nftables `synproxy`
/// statement that completes the connections (the daemon writes both from
/// the same values).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynProxyConfig {
    /// MSS option of IPv4 and IPv6 SYN-ACKs.
    pub mss4: u16,
    pub mss6: u16,
    /// Window-scale option (only when the client sent one).
    pub wscale: u8,
    /// IPv4 TTL / IPv6 hop limit of SYN-ACKs.
    pub ttl: u8,
    /// Non-zero once the daemon wrote the entry: a zeroed one (no config)
    /// answers nothing.
    pub ready: u8,
    /// Non-zero: echo the client's timestamps, and with them (in the low
    /// bits of our timestamp value, where the cookie keeps them) its window
    /// scale and SACK. Zero: the SYN-ACK carries the MSS alone, as a
    /// syncookie without timestamps can keep nothing else.
    pub timestamps: u8,
}

/// `AGG_RATE`: `Array<AggBucket>` of [`MAX_TARGETS`], one per target id:
/// the `aggregate-limit` token buckets shared by all sources and CPUs, in
/// token-ns (as [`RateState`]). Not generational: a target's bucket
/// carries over a rule change. A stale bucket (an id reused) is refilled
/// from its old `last_ns`, which is the same as a fresh one.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AggBucket {
    pub last_ns: u64,
    pub pkt_tokens: u64,
    pub byte_tokens: u64,
    pub _pad: u64,
}

// ---------------------------------------------------------------- config ---

/// `CONFIG` is an `Array<u64>` of [`CONFIG_LEN`] entries.
/// Index of the active word: the active generation in bit [`CONFIG_GEN_BIT`],
/// that generation's [`gen_flags`] in the bits below, and the flip counter
/// (the *epoch*) in the high 32 bits. One word, so that a packet reads all
/// three with one lookup and the daemon flips them with one 8-byte write (a
/// packet never sees a generation with another's flags or epoch).
pub const CONFIG_ACTIVE: u32 = 0;
pub const CONFIG_LEN: u32 = 1;
pub const CONFIG_GEN_BIT: u32 = 31;
/// The epoch's position in the active word.
pub const CONFIG_EPOCH_SHIFT: u32 = 32;

/// The active word for generation `gen` (0 or 1) with `flags`, flipped for
/// the `epoch`-th time (never 0 once flipped: see [`DstCacheEntry`]).
#[inline(always)]
pub const fn config_word(epoch: u32, gen: u32, flags: u32) -> u64 {
    ((epoch as u64) << CONFIG_EPOCH_SHIFT) | (((gen & 1) << CONFIG_GEN_BIT) | (flags & !(1 << CONFIG_GEN_BIT))) as u64
}

// ------------------------------------------------------------ dst cache ---

/// Entries of the per-CPU destination cache (`DST_CACHE`) per family: a
/// power of two. IPv4 destinations use the first `DST_CACHE_SLOTS` entries,
/// IPv6 the next: an entry holds one family only.
pub const DST_CACHE_SLOTS: u32 = 4096;
/// `DstCacheEntry::id` of a destination that is no target.
pub const DST_NONE: u32 = u32::MAX;

/// One entry of the destination cache: which target (or none) a destination
/// address resolved to, in the generation flipped in at the epoch it holds.
///
/// Why a cache: a kernel hash-map lookup costs about 28 ns on the machines
/// we measure (any key size, preallocated or not), an LPM walk more, while
/// an array lookup is inlined and costs 1-3 ns. A flood goes to few
/// destinations, so a direct-mapped per-CPU cache in front of the host
/// routes and prefixes (as Open vSwitch's exact-match cache is in front of
/// its classifier) takes the lookup off nearly every packet. A generation's
/// contents never change while it is active, so the epoch tag is the whole
/// invalidation: a flip makes every older entry miss. Epoch 0 is never
/// flipped in, so all-zero (never written) entries always miss.
///
/// The epoch and the address's first word share `key`, so that an IPv4
/// destination (most packets) is checked with one 8-byte compare.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DstCacheEntry {
    /// [`dst_cache_key`]: the epoch and the address's first word.
    pub key: u64,
    /// IPv6: the address's other three words (in memory order); IPv4: zero,
    /// never compared.
    pub rest: [u32; 3],
    /// Target id, or [`DST_NONE`].
    pub id: u32,
}

/// [`DstCacheEntry::key`] of an address whose first word (its first four
/// bytes, read in memory order) is `first`, resolved at `epoch`.
#[inline(always)]
pub const fn dst_cache_key(epoch: u32, first: u32) -> u64 {
    ((epoch as u64) << 32) | first as u64
}

/// The cache slot of a destination: the address folded into 32 bits
/// (IPv6: its four words XORed), then a multiplicative hash, in the
/// family's half of the cache.
#[inline(always)]
pub const fn dst_cache_slot(v6: bool, folded: u32) -> u32 {
    let half = if v6 { DST_CACHE_SLOTS } else { 0 };
    half + (folded.wrapping_mul(0x9E37_79B1) >> (32 - DST_CACHE_SLOTS.trailing_zeros()))
}

/// Which rule maps hold entries in a generation, so that a packet skips the
/// lookups of empty maps (the no-match path costs only what is configured).
/// `ACCEPT_*`/`DROP_*` are the lists' LPM tries (prefixes shorter than a
/// host), `*_HOST_*` their hash maps (/32 and /128 entries).
pub mod gen_flags {
    pub const ACCEPT_V4: u32 = 1 << 0;
    pub const ACCEPT_V6: u32 = 1 << 1;
    pub const DROP_V4: u32 = 1 << 2;
    pub const DROP_V6: u32 = 1 << 3;
    pub const HOST_V4: u32 = 1 << 4;
    pub const HOST_V6: u32 = 1 << 5;
    pub const LPM_V4: u32 = 1 << 6;
    pub const LPM_V6: u32 = 1 << 7;
    /// The generation has data-channel ACL entries (`ACL_*` maps). Without
    /// it the program does no ACL work at all.
    pub const ACL: u32 = 1 << 8;
    pub const ACCEPT_HOST_V4: u32 = 1 << 9;
    pub const ACCEPT_HOST_V6: u32 = 1 << 10;
    pub const DROP_HOST_V4: u32 = 1 << 11;
    pub const DROP_HOST_V6: u32 = 1 << 12;
    /// The `GUARD` map holds entries: consulted before the ACL (when the
    /// generation has one) or before an in-scope target's countermeasures.
    pub const GUARD: u32 = 1 << 13;
    /// Resolve destinations through the per-CPU cache (`DST_CACHE`,
    /// [`super::DstCacheEntry`]); off only for measuring the uncached cost.
    pub const DST_CACHE: u32 = 1 << 14;
    /// Any accept-list or drop-list entry: one test skips both lists.
    pub const LISTS: u32 =
        ACCEPT_V4 | ACCEPT_V6 | DROP_V4 | DROP_V6 | ACCEPT_HOST_V4 | ACCEPT_HOST_V6 | DROP_HOST_V4 | DROP_HOST_V6;
}

// ------------------------------------------------------------------ keys ---

/// Key of `HOST_V4` (hash): a /32 target. Value: target id (`u32`). Also
/// the key of the lists' host maps (`ACCEPT_HOST_V4`, `DROP_HOST_V4`; value
/// unused).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HostKeyV4 {
    pub gen: u32,
    /// Address in network byte order, as on the wire.
    pub addr: [u8; 4],
}

/// Key of `HOST_V6` (hash): a /128 target. Value: target id (`u32`). Also
/// the key of `ACCEPT_HOST_V6` and `DROP_HOST_V6`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HostKeyV6 {
    pub gen: u32,
    pub addr: [u8; 16],
}

/// Data of an LPM-trie key for IPv4 (`LPM_V4`, `ACCEPT_V4`, `DROP_V4`):
/// the generation byte followed by the address. The trie's prefix length is
/// `8 + prefix length`, so that a match always includes the generation.
pub type LpmDataV4 = [u8; 5];
/// Same for IPv6.
pub type LpmDataV6 = [u8; 17];
/// Bits of the generation byte that precede the address in LPM keys.
pub const LPM_GEN_BITS: u32 = 8;

/// Builds LPM key data for `gen` and an IPv4 address (network order).
#[inline(always)]
pub fn lpm_v4(gen: u32, addr: [u8; 4]) -> LpmDataV4 {
    [gen as u8, addr[0], addr[1], addr[2], addr[3]]
}

/// Builds LPM key data for `gen` and an IPv6 address (network order).
#[inline(always)]
pub fn lpm_v6(gen: u32, addr: [u8; 16]) -> LpmDataV6 {
    let mut d = [0u8; 17];
    d[0] = gen as u8;
    let mut i = 0;
    while i < 16 {
        d[i + 1] = addr[i];
        i += 1;
    }
    d
}

/// Key of `RATE_STATE` (LRU hash): one source seen by one target.
/// IPv4 sources are stored as IPv4-mapped IPv6 addresses.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateKey {
    pub target: u32,
    pub src: [u8; 16],
}

/// Value of `RATE_STATE`: token buckets, in token-nanoseconds (a token is a
/// packet or a byte; a bucket of rate r gains r tokens per second, that is r
/// token-ns per ns), so that no division is needed per packet.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateState {
    pub last_ns: u64,
    pub pkt_tokens: u64,
    pub byte_tokens: u64,
    pub syn_tokens: u64,
}

// ---------------------------------------------------------------- policy ---

/// Inclusive destination-port range.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

/// Countermeasure bits of [`Policy::flags`].
pub mod policy_flags {
    /// The slot holds a target (a zeroed slot passes everything).
    pub const ACTIVE: u32 = 1 << 0;
    /// Drop every packet in scope that the countermeasures below let through.
    pub const DROP_ALL: u32 = 1 << 1;
    /// Drop IPv4/IPv6 fragments (first and non-first) in scope.
    pub const DROP_FRAGMENTS: u32 = 1 << 2;
    /// Drop UDP whose source port is in `REFLECT_PORTS`.
    pub const DROP_REFLECTION: u32 = 1 << 3;
    /// Drop TCP with an invalid flag combination.
    pub const DROP_BAD_TCP_FLAGS: u32 = 1 << 4;
    /// Per-source packets/s and bytes/s token buckets.
    pub const RATE_LIMIT_SRC: u32 = 1 << 5;
    /// Per-source SYN (SYN without ACK) token bucket.
    pub const SYN_LIMIT: u32 = 1 << 6;
    /// SYN proxy: a pure SYN to one of this host's TCP listeners is answered
    /// from XDP with a SYN cookie; a non-SYN TCP packet to a listener that is
    /// neither a connection's nor a valid cookie's is dropped.
    pub const SYN_PROXY: u32 = 1 << 7;
    /// Aggregate (all sources together) packets/s and bytes/s token buckets
    /// over the packets of `Policy::agg_protos`.
    pub const AGGREGATE: u32 = 1 << 8;
}

/// What a target protects and how: `POLICIES` is an `Array<Policy>` of
/// `2 * MAX_TARGETS` entries, index `gen * MAX_TARGETS + target id`.
///
/// A packet is *in scope* when its IP protocol is in `protos` and, if
/// `n_ports > 0` and the packet carries ports (TCP, UDP, SCTP, UDP-Lite
/// first fragments), its destination port is in one of `ports`. Non-first
/// fragments carry no ports and are in scope when their protocol is.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub flags: u32,
    pub n_ports: u32,
    /// Bitmap of IP protocol numbers (bit p of word p/64).
    pub protos: [u64; 4],
    pub ports: [PortRange; MAX_PORT_RANGES],
    /// Per-source packets per second and burst (packets); 0 = no limit.
    pub src_pps: u64,
    pub src_pps_burst: u64,
    /// Per-source bytes per second and burst (bytes); 0 = no limit.
    pub src_bps: u64,
    pub src_bps_burst: u64,
    /// Per-source SYNs per second and burst.
    pub syn_pps: u64,
    pub syn_burst: u64,
    /// Aggregate (all sources) packets per second and burst; 0 = no limit.
    pub agg_pps: u64,
    pub agg_pps_burst: u64,
    /// Aggregate bytes per second and burst; 0 = no limit.
    pub agg_bps: u64,
    pub agg_bps_burst: u64,
    /// Protocols the aggregate limit counts and limits (bitmap as `protos`).
    pub agg_protos: [u64; 4],
}

impl Policy {
    pub const fn empty() -> Self {
        Policy {
            flags: 0,
            n_ports: 0,
            protos: [0; 4],
            ports: [PortRange { lo: 0, hi: 0 }; MAX_PORT_RANGES],
            src_pps: 0,
            src_pps_burst: 0,
            src_bps: 0,
            src_bps_burst: 0,
            syn_pps: 0,
            syn_burst: 0,
            agg_pps: 0,
            agg_pps_burst: 0,
            agg_bps: 0,
            agg_bps_burst: 0,
            agg_protos: [0; 4],
        }
    }

    #[inline(always)]
    pub fn has_proto(&self, proto: u8) -> bool {
        bit(&self.protos, proto)
    }

    /// The aggregate limit counts packets of `proto`.
    #[inline(always)]
    pub fn agg_has_proto(&self, proto: u8) -> bool {
        bit(&self.agg_protos, proto)
    }
}

#[inline(always)]
fn bit(map: &[u64; 4], proto: u8) -> bool {
    let p = proto as usize;
    map[(p >> 6) & 3] & (1u64 << (p & 63)) != 0
}

/// Number of 64-bit words of the `REFLECT_PORTS` bitmap (`Array<u64>`):
/// bit p of word p/64 set = UDP source port p is a reflection port.
pub const REFLECT_WORDS: u32 = 1024;

// -------------------------------------------------------------- counters ---

/// Packets and bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

impl Counter {
    #[inline(always)]
    pub fn add(&mut self, bytes: u64) {
        self.packets += 1;
        self.bytes += bytes;
    }
}

/// Why a packet aimed at a target was dropped (index into
/// [`TargetStats::dropped`]).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// In scope and the policy drops everything in scope.
    Scope = 0,
    Fragment = 1,
    Reflection = 2,
    BadTcpFlags = 3,
    SynLimit = 4,
    RateLimit = 5,
    /// The L4 header (TCP, UDP, UDP-Lite, SCTP, ICMP) is cut short or
    /// malformed (TCP data offset < 5): no host would accept it, and
    /// passing it would let a flood of such packets past every
    /// countermeasure. Dropped for targets with any countermeasure.
    Malformed = 6,
    /// SYN proxy: a TCP packet to a listener of this host that belongs to
    /// no connection and is not the valid cookie ACK of one (an ACK, RST or
    /// FIN flood, spoofed or not).
    SynProxy = 7,
    /// SYN proxy: a SYN answered from XDP with a SYN-ACK carrying a cookie
    /// (`XDP_TX`): not passed to the stack, which sees the connection only
    /// once the client's ACK proves its address. Legitimate SYNs are
    /// counted here too.
    SynCookie = 8,
    /// Over the protection's aggregate (all sources) rate.
    Aggregate = 9,
}
pub const N_DROP_REASONS: usize = 10;

impl DropReason {
    pub const ALL: [DropReason; N_DROP_REASONS] = [
        DropReason::Scope,
        DropReason::Fragment,
        DropReason::Reflection,
        DropReason::BadTcpFlags,
        DropReason::SynLimit,
        DropReason::RateLimit,
        DropReason::Malformed,
        DropReason::SynProxy,
        DropReason::SynCookie,
        DropReason::Aggregate,
    ];

    /// Stable name, used in status output and the API.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Scope => "scope",
            DropReason::Fragment => "fragment",
            DropReason::Reflection => "reflection",
            DropReason::BadTcpFlags => "bad-tcp-flags",
            DropReason::SynLimit => "syn-limit",
            DropReason::RateLimit => "rate-limit",
            DropReason::Malformed => "malformed",
            DropReason::SynProxy => "syn-proxy",
            DropReason::SynCookie => "syn-cookie",
            DropReason::Aggregate => "aggregate-limit",
        }
    }
}

/// `TARGET_STATS`: `PerCpuArray<TargetStats>` of `MAX_TARGETS` entries,
/// index = target id. Every packet whose destination matched the target is
/// counted exactly once: in `passed` or in one `dropped` reason.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TargetStats {
    pub passed: Counter,
    pub dropped: [Counter; N_DROP_REASONS],
}

/// What happened to a packet, at interface level (index into
/// [`IfaceStats::verdicts`]).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfaceVerdict {
    /// Not IPv4/IPv6, or truncated / malformed in a header the program had
    /// to read: passed to the kernel untouched (it drops what is really
    /// broken). Headers are read only as far as a rule needs them: with no
    /// list and no ACL, a packet to a destination that the CPU's
    /// destination cache knows is no target's (or of a family without
    /// targets) is decided on its IP destination alone, and the L4 header
    /// is read only for a target's packets or while an ACL is installed; a
    /// defect past what was read counts as NoMatch.
    Unparsed = 0,
    /// Source on the accept-list: passed, bypassing everything.
    Accepted = 1,
    /// Source on the drop-list: dropped.
    DropListed = 2,
    /// Matched no target and no list: passed.
    NoMatch = 3,
    /// Matched a target and passed its policy.
    TargetPassed = 4,
    /// Matched a target and dropped by its policy.
    TargetDropped = 5,
    /// Matched an ACL entry that accepts (or rate-limits, under the rate):
    /// passed, bypassing target policies.
    AclAccepted = 6,
    /// Matched an ACL entry that drops (or rate-limits, over the rate).
    AclDropped = 7,
    /// Matched a guard entry (a listener of this daemon) under its rate:
    /// passed, bypassing the ACL and target countermeasures.
    GuardPassed = 8,
    /// Matched a guard entry over its rate: dropped.
    GuardDropped = 9,
    /// A target's SYN answered with a SYN cookie (`XDP_TX`, the SYN proxy).
    SynCookieSent = 10,
}
pub const N_IFACE_VERDICTS: usize = 11;

impl IfaceVerdict {
    pub const ALL: [IfaceVerdict; N_IFACE_VERDICTS] = [
        IfaceVerdict::Unparsed,
        IfaceVerdict::Accepted,
        IfaceVerdict::DropListed,
        IfaceVerdict::NoMatch,
        IfaceVerdict::TargetPassed,
        IfaceVerdict::TargetDropped,
        IfaceVerdict::AclAccepted,
        IfaceVerdict::AclDropped,
        IfaceVerdict::GuardPassed,
        IfaceVerdict::GuardDropped,
        IfaceVerdict::SynCookieSent,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            IfaceVerdict::Unparsed => "unparsed",
            IfaceVerdict::Accepted => "accept-list",
            IfaceVerdict::DropListed => "drop-list",
            IfaceVerdict::NoMatch => "no-match",
            IfaceVerdict::TargetPassed => "target-passed",
            IfaceVerdict::TargetDropped => "target-dropped",
            IfaceVerdict::AclAccepted => "acl-accepted",
            IfaceVerdict::AclDropped => "acl-dropped",
            IfaceVerdict::GuardPassed => "guard-passed",
            IfaceVerdict::GuardDropped => "guard-dropped",
            IfaceVerdict::SynCookieSent => "syn-cookie-sent",
        }
    }
}

/// `IFACE_STATS`: `PerCpuArray<IfaceStats>` of [`MAX_IFACES`] slots. The
/// daemon gives each attached interface a slot (in `IFACE_SLOTS`); slot 0
/// counts any other ifindex (BPF_PROG_TEST_RUN runs, for instance). Every
/// packet the program sees is counted exactly once, so the sum of
/// `verdicts` is all packets seen.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfaceStats {
    pub verdicts: [Counter; N_IFACE_VERDICTS],
}

/// `IFACE_SLOTS`: `Array<IfaceSlot>` of [`IFACE_SLOT_TABLE`] entries, an
/// open-addressing table written by the daemon at attach: the entry of an
/// ifindex is the first of `IFACE_PROBES` entries from `ifindex %
/// IFACE_SLOT_TABLE` on whose `ifindex` matches; the walk stops at an empty
/// entry (`ifindex` 0). Entries are never emptied (an interface that is gone
/// has its entry taken over in place), so a walk never stops early at a
/// hole. Why not a hash map: an array lookup is inlined by the kernel and
/// costs a few instructions, a hash lookup about 20 ns per packet.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfaceSlot {
    pub ifindex: u32,
    pub slot: u32,
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all are #[repr(C)] plain data with no padding-dependent
    // invariants; any bit pattern is valid.
    unsafe impl aya::Pod for HostKeyV4 {}
    unsafe impl aya::Pod for DstCacheEntry {}
    unsafe impl aya::Pod for HostKeyV6 {}
    unsafe impl aya::Pod for RateKey {}
    unsafe impl aya::Pod for RateState {}
    unsafe impl aya::Pod for PortRange {}
    unsafe impl aya::Pod for Policy {}
    unsafe impl aya::Pod for Counter {}
    unsafe impl aya::Pod for TargetStats {}
    unsafe impl aya::Pod for IfaceStats {}
    unsafe impl aya::Pod for IfaceSlot {}
    unsafe impl aya::Pod for AclBits {}
    unsafe impl aya::Pod for AclVecKey {}
    unsafe impl aya::Pod for AclHeader {}
    unsafe impl aya::Pod for AclRule {}
    unsafe impl aya::Pod for AclBucket {}
    unsafe impl aya::Pod for GuardEntry {}
    unsafe impl aya::Pod for SynProxyConfig {}
    unsafe impl aya::Pod for AggBucket {}
}
