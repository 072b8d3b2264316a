//! The per-CPU destination cache: destination address → target id (or
//! none), tagged with the epoch of the generation it was resolved in. Why
//! it exists and why the epoch is all the invalidation it needs:
//! `mitigator_common::DstCacheEntry`.

use mitigator_common::{dst_cache_slot, DstCacheEntry, DST_NONE};

use crate::maps::DST_CACHE;

/// An address as the cache keys it: the family and the four words in
/// memory order (IPv4: the first word, the others zero).
#[derive(Clone, Copy)]
pub struct Dst {
    pub v6: bool,
    pub w: [u32; 4],
}

impl Dst {
    /// IPv4 folds to its word, IPv6 to its four words XORed.
    #[inline(always)]
    fn slot(&self) -> u32 {
        let f = if self.v6 { self.w[0] ^ self.w[1] ^ self.w[2] ^ self.w[3] } else { self.w[0] };
        dst_cache_slot(f)
    }
}

/// What the cache says about a destination.
pub enum Probe {
    /// Resolved in this epoch: the target id, or `None` for no target.
    Hit(Option<u32>),
    /// Not held: resolve it, then `fill` the entry (when there is one).
    Miss(Option<&'static mut DstCacheEntry>),
}

#[inline(always)]
pub fn probe(d: &Dst, epoch: u32) -> Probe {
    let e = match DST_CACHE.get_ptr_mut(d.slot()) {
        // SAFETY: per-CPU, and an XDP run is not preempted: this CPU's
        // entry is ours until the run ends.
        Some(e) => unsafe { &mut *e },
        None => return Probe::Miss(None),
    };
    if e.epoch == epoch && e.v6 == d.v6 as u32 && same_addr(&e.addr, d) {
        return Probe::Hit(if e.id == DST_NONE { None } else { Some(e.id) });
    }
    Probe::Miss(Some(e))
}

#[inline(always)]
pub fn fill(e: &mut DstCacheEntry, d: &Dst, epoch: u32, id: Option<u32>) {
    e.epoch = epoch;
    e.id = id.unwrap_or(DST_NONE);
    e.v6 = d.v6 as u32;
    e.addr = d.w;
}

/// Words past an IPv4 address are not compared.
#[inline(always)]
fn same_addr(a: &[u32; 4], d: &Dst) -> bool {
    a[0] == d.w[0] && (!d.v6 || (a[1] == d.w[1] && a[2] == d.w[2] && a[3] == d.w[3]))
}
