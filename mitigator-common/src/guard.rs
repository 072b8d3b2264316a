//! The guard of the daemon's own DOTS listeners (see the daemon's
//! `compiler::guard` for why): up to [`MAX_GUARD`] entries, not
//! generational (they change only with the configuration).

/// Most listeners the guard holds: a few per channel is plenty, and the
/// program walks them all for a packet to a guarded target.
pub const MAX_GUARD: u32 = 8;

/// `GUARD`: `Array<GuardEntry>` of [`MAX_GUARD`]. The entries in use come
/// first; the first with `proto == 0` ends the list. The bucket of entry i
/// is `GUARD_RATE[i]` (an [`AclBucket`](crate::AclBucket): same refill),
/// its matched packets and bytes `GUARD_STATS[i]` (per CPU).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuardEntry {
    /// Aggregate bytes per second; the burst is one second of it.
    pub rate_bps: u64,
    /// Destination address (IPv4 in the first 4 bytes) unless `any_addr`.
    pub addr: [u8; 16],
    /// Destination port.
    pub port: u16,
    /// IP protocol (6, 17); 0: an empty entry, the end of the list.
    pub proto: u8,
    /// 4 or 6: only that family; 0: both (a wildcard `[::]` listen).
    pub family: u8,
    /// Any destination address (a wildcard listen).
    pub any_addr: u8,
    pub _pad: [u8; 3],
}
