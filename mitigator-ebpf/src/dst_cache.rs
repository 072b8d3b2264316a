//! The per-CPU destination cache: destination address → target id (or
//! none), tagged with the epoch of the generation it was resolved in. Why
//! it exists and why the epoch is all the invalidation it needs:
//! `mitigator_common::DstCacheEntry`.

use mitigator_common::{dst_cache_key, dst_cache_slot, DstCacheEntry};

use crate::maps::DST_CACHE;

/// An address as the cache keys it: the family and the four words in
/// memory order (IPv4: the first word, the others zero).
#[derive(Clone, Copy)]
pub struct Dst {
    pub v6: bool,
    pub w: [u32; 4],
}

/// What the cache says about a destination.
pub enum Probe {
    /// Resolved in this epoch: the target id, or `DST_NONE` for no target.
    /// A plain u32, not an `Option`: LLVM reads an `Option`'s payload even
    /// when it is `None` (undefined), and the verifier refuses a read of an
    /// uninitialised register.
    Hit(u32),
    /// Not held: resolve it, then `fill` the entry (when there is one).
    Miss(Option<&'static mut DstCacheEntry>),
}

/// `d` of either family (`decide`'s: no branch on the family before this).
#[inline(always)]
pub fn probe(d: &Dst, epoch: u32) -> Probe {
    if d.v6 {
        probe_v6(&d.w, epoch)
    } else {
        probe_v4(d.w[0], epoch)
    }
}

/// An IPv4 destination (its address as one word in memory order): its
/// entry answers with one 8-byte compare.
#[inline(always)]
pub fn probe_v4(addr: u32, epoch: u32) -> Probe {
    match entry(dst_cache_slot(false, addr)) {
        Some(e) if e.key == dst_cache_key(epoch, addr) => Probe::Hit(e.id),
        e => Probe::Miss(e),
    }
}

#[inline(always)]
pub fn probe_v6(w: &[u32; 4], epoch: u32) -> Probe {
    match entry(dst_cache_slot(true, w[0] ^ w[1] ^ w[2] ^ w[3])) {
        Some(e) if e.key == dst_cache_key(epoch, w[0]) && e.rest == [w[1], w[2], w[3]] => Probe::Hit(e.id),
        e => Probe::Miss(e),
    }
}

#[inline(always)]
fn entry(slot: u32) -> Option<&'static mut DstCacheEntry> {
    // SAFETY: per-CPU, and an XDP run is not preempted: this CPU's entry
    // is ours until the run ends.
    DST_CACHE.get_ptr_mut(slot).map(|e| unsafe { &mut *e })
}

#[inline(always)]
pub fn fill(e: &mut DstCacheEntry, d: &Dst, epoch: u32, id: u32) {
    e.key = dst_cache_key(epoch, d.w[0]);
    e.rest = [d.w[1], d.w[2], d.w[3]];
    e.id = id;
}
