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

mod compile;
mod encode;
mod maps;
#[cfg(test)]
mod tests;

use std::ops::RangeInclusive;

use ipnet::IpNet;
use mitigator_common::acl_op;

pub(crate) use compile::{compile, AclContents};
pub(crate) use maps::{assign_slots, read_gen, reset_slots, reset_slots_of, slot_stats, slot_stats_of, write_gen};

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
    RateLimit {
        bytes_per_sec: u64,
    },
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
    /// The UDP header's length field: only UDP packets carrying the header
    /// (not non-first fragments) match.
    pub udp_length: Option<RangeInclusive<u16>>,
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

/// Whether the program can express `entries` (the checks of `compile`,
/// without maps): the data channel refuses an ACE before storing it, even
/// when its ACL is not in force yet (activate-when-mitigating, deactivate).
pub fn check(entries: &[AclEntry]) -> Result<(), AclError> {
    let slots: Vec<u32> = (0..entries.len() as u32).collect();
    compile::compile(entries, &slots).map(|_| ())
}
