//! The maps, named as in `mitigator_common::maps`.
//!
//! They are declared *unpinned* on purpose: aya's loader pins a
//! `PinningType::ByName` map under /sys/fs/bpf/<name> when no pin directory
//! is given, which would make every unpinned (test) load share one set of
//! maps. The daemon instead asks the loader to pin each map by its name under
//! its own directory (`EbpfLoader::map_pin_path`), which gives the same
//! reuse-if-present / create-and-pin behaviour, and tests stay isolated.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray},
};
use mitigator_common::*;

/// Hash maps that the daemon fills grow on demand: preallocating two
/// generations of 2 Mi entries would pin hundreds of MiB per map.
const BPF_F_NO_PREALLOC: u32 = 1;

#[map(name = "MTG_CONFIG")]
pub static CONFIG: Array<u64> = Array::with_max_entries(CONFIG_LEN, 0);

#[map(name = "MTG_HOST_V4")]
pub static HOST_V4: HashMap<HostKeyV4, u32> =
    HashMap::with_max_entries(2 * MAX_HOST_ROUTES, BPF_F_NO_PREALLOC);

#[map(name = "MTG_HOST_V6")]
pub static HOST_V6: HashMap<HostKeyV6, u32> =
    HashMap::with_max_entries(2 * MAX_HOST_ROUTES, BPF_F_NO_PREALLOC);

// LPM tries are always BPF_F_NO_PREALLOC (aya-ebpf adds the flag).
#[map(name = "MTG_LPM_V4")]
pub static LPM_V4: LpmTrie<LpmDataV4, u32> = LpmTrie::with_max_entries(2 * MAX_PREFIXES, 0);

#[map(name = "MTG_LPM_V6")]
pub static LPM_V6: LpmTrie<LpmDataV6, u32> = LpmTrie::with_max_entries(2 * MAX_PREFIXES, 0);

/// Accept/drop lists: /32 and /128 entries in a hash map each (looked up
/// first: a hash lookup costs far less than an LPM walk), shorter prefixes
/// in an LPM trie each. The value is unused (reserved for an ACL id).
#[map(name = "MTG_ACCEPT_HOST_V4")]
pub static ACCEPT_HOST_V4: HashMap<HostKeyV4, u32> =
    HashMap::with_max_entries(2 * MAX_LIST_ENTRIES, BPF_F_NO_PREALLOC);

#[map(name = "MTG_ACCEPT_HOST_V6")]
pub static ACCEPT_HOST_V6: HashMap<HostKeyV6, u32> =
    HashMap::with_max_entries(2 * MAX_LIST_ENTRIES, BPF_F_NO_PREALLOC);

#[map(name = "MTG_DROP_HOST_V4")]
pub static DROP_HOST_V4: HashMap<HostKeyV4, u32> =
    HashMap::with_max_entries(2 * MAX_LIST_ENTRIES, BPF_F_NO_PREALLOC);

#[map(name = "MTG_DROP_HOST_V6")]
pub static DROP_HOST_V6: HashMap<HostKeyV6, u32> =
    HashMap::with_max_entries(2 * MAX_LIST_ENTRIES, BPF_F_NO_PREALLOC);

#[map(name = "MTG_ACCEPT_V4")]
pub static ACCEPT_V4: LpmTrie<LpmDataV4, u32> =
    LpmTrie::with_max_entries(2 * MAX_LIST_ENTRIES, 0);

#[map(name = "MTG_ACCEPT_V6")]
pub static ACCEPT_V6: LpmTrie<LpmDataV6, u32> =
    LpmTrie::with_max_entries(2 * MAX_LIST_ENTRIES, 0);

#[map(name = "MTG_DROP_V4")]
pub static DROP_V4: LpmTrie<LpmDataV4, u32> = LpmTrie::with_max_entries(2 * MAX_LIST_ENTRIES, 0);

#[map(name = "MTG_DROP_V6")]
pub static DROP_V6: LpmTrie<LpmDataV6, u32> = LpmTrie::with_max_entries(2 * MAX_LIST_ENTRIES, 0);

#[map(name = "MTG_POLICIES")]
pub static POLICIES: Array<Policy> = Array::with_max_entries(2 * MAX_TARGETS, 0);

#[map(name = "MTG_REFLECT_PORTS")]
pub static REFLECT_PORTS: Array<u64> = Array::with_max_entries(REFLECT_WORDS, 0);

/// LRU maps cannot be BPF_F_NO_PREALLOC; 1 Mi entries of ~100 bytes.
#[map(name = "MTG_RATE_STATE")]
pub static RATE_STATE: LruHashMap<RateKey, RateState> =
    LruHashMap::with_max_entries(MAX_RATE_STATES, 0);

#[map(name = "MTG_TARGET_STATS")]
pub static TARGET_STATS: PerCpuArray<TargetStats> = PerCpuArray::with_max_entries(MAX_TARGETS, 0);

/// Arrays, not hash maps: the kernel inlines array lookups (see
/// `IfaceSlot` for the numbers).
#[map(name = "MTG_IFACE_STATS")]
pub static IFACE_STATS: PerCpuArray<IfaceStats> = PerCpuArray::with_max_entries(MAX_IFACES, 0);

#[map(name = "MTG_IFACE_SLOTS")]
pub static IFACE_SLOTS: Array<IfaceSlot> = Array::with_max_entries(IFACE_SLOT_TABLE, 0);

// ------------------------------------------------------------------ ACL ---
// Layout and meaning: mitigator_common::acl; lookup: acl.rs.

#[map(name = "MTG_ACL_HDR")]
pub static ACL_HDR: Array<AclHeader> = Array::with_max_entries(2, 0);

/// Dense value → vector id arrays, both generations (~1.6 MB).
#[map(name = "MTG_ACL_IDX")]
pub static ACL_IDX: Array<u32> = Array::with_max_entries(2 * ACL_IDX_LEN_TOTAL, 0);

#[map(name = "MTG_ACL_PFX_V4")]
pub static ACL_PFX_V4: LpmTrie<AclPfxV4, u32> = LpmTrie::with_max_entries(MAX_ACL_PREFIXES, 0);

#[map(name = "MTG_ACL_PFX_V6")]
pub static ACL_PFX_V6: LpmTrie<AclPfxV6, u32> = LpmTrie::with_max_entries(MAX_ACL_PREFIXES, 0);

/// Bit vectors (512 bytes each) grow on demand: an installed ACL costs
/// what its distinct vectors need, an empty one nothing.
#[map(name = "MTG_ACL_VECS")]
pub static ACL_VECS: HashMap<AclVecKey, AclBits> =
    HashMap::with_max_entries(2 * MAX_ACL_VECS, BPF_F_NO_PREALLOC);

#[map(name = "MTG_ACL_RULES")]
pub static ACL_RULES: Array<AclRule> = Array::with_max_entries(2 * MAX_ACL_ENTRIES, 0);

#[map(name = "MTG_ACL_RATE")]
pub static ACL_RATE: Array<AclBucket> = Array::with_max_entries(ACL_SLOTS, 0);

#[map(name = "MTG_ACL_STATS")]
pub static ACL_STATS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(ACL_SLOTS, 0);

/// The packet being decided (see main.rs for why not on the stack). Not
/// pinned: it holds nothing between packets.
#[map(name = "MTG_SCRATCH_PKT")]
pub static PKT: PerCpuArray<crate::parse::Pkt> = PerCpuArray::with_max_entries(1, 0);

/// Destination → target id cache (see `mitigator_common::DstCacheEntry`).
/// Per CPU, so a packet writes its entry without atomics; not pinned.
#[map(name = "MTG_DST_CACHE")]
pub static DST_CACHE: PerCpuArray<DstCacheEntry> = PerCpuArray::with_max_entries(2 * DST_CACHE_SLOTS, 0);

// ---------------------------------------------------------------- guard ---
// Layout and meaning: mitigator_common::guard; lookup: guard.rs.

#[map(name = "MTG_GUARD")]
pub static GUARD: Array<GuardEntry> = Array::with_max_entries(MAX_GUARD, 0);

#[map(name = "MTG_GUARD_RATE")]
pub static GUARD_RATE: Array<AclBucket> = Array::with_max_entries(MAX_GUARD, 0);

#[map(name = "MTG_GUARD_STATS")]
pub static GUARD_STATS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(MAX_GUARD, 0);

// ------------------------------------------------------------ syn proxy ---

#[map(name = "MTG_SYN_PROXY")]
pub static SYN_PROXY: Array<SynProxyConfig> = Array::with_max_entries(1, 0);

/// Where the SYN proxy copies headers for the cookie helpers and builds
/// the SYN-ACK's TCP header (syn_proxy.rs). Not pinned.
#[map(name = "MTG_SCRATCH_SYN")]
pub static SYN_SCRATCH: PerCpuArray<crate::syn_proxy::Scratch> = PerCpuArray::with_max_entries(1, 0);

// ------------------------------------------------------------ aggregate ---

#[map(name = "MTG_AGG_RATE")]
pub static AGG_RATE: Array<AggBucket> = Array::with_max_entries(MAX_TARGETS, 0);
