//! Counting verdicts: every packet once per interface (`IFACE_STATS`) and,
//! when a target's policy decided it, once per target (`TARGET_STATS`).
//! Shared by the main program and the SYN proxy it tail-calls, which
//! counts the packets it decides itself.

use mitigator_common::{DropReason, IfaceVerdict, IFACE_PROBES, IFACE_SLOT_TABLE};

use crate::maps::{IFACE_SLOTS, IFACE_STATS, TARGET_STATS};

/// The interface's counter slot (see `IfaceSlot`): 0 for an ifindex the
/// daemon gave none. Array lookups only, which the kernel inlines.
#[inline(always)]
pub fn iface_slot(ifindex: u32) -> u32 {
    let mut i = 0;
    while i < IFACE_PROBES {
        match IFACE_SLOTS.get((ifindex + i) & (IFACE_SLOT_TABLE - 1)) {
            Some(e) if e.ifindex == ifindex => return e.slot,
            Some(e) if e.ifindex != 0 => {}
            // An empty entry ends the walk.
            _ => return 0,
        }
        i += 1;
    }
    0
}

/// Counts the packet under its interface verdict in `slot`.
#[inline(always)]
pub fn count_iface(slot: u32, v: IfaceVerdict, len: u64) {
    let s = match IFACE_STATS.get_ptr_mut(slot) {
        Some(s) => unsafe { &mut *s },
        None => return,
    };
    // The verdict is the counter's index (IfaceVerdict's discriminants).
    if let Some(c) = s.verdicts.get_mut(v as usize) {
        c.add(len);
    }
}

/// `count_iface` for a verdict that comes back from a BPF-to-BPF call (the
/// SYN proxy's) as a plain index: LLVM knows an `IfaceVerdict`'s range and
/// drops the bounds check, but the verifier sees a returned value as
/// unbounded, so the index stays a number whose check LLVM must keep.
#[inline(always)]
pub fn count_iface_index(slot: u32, index: u32, len: u64) {
    let s = match IFACE_STATS.get_ptr_mut(slot) {
        Some(s) => unsafe { &mut *s },
        None => return,
    };
    if let Some(c) = s.verdicts.get_mut(index as usize) {
        c.add(len);
    }
}

/// Counts a target's packet: passed (`None`) or under its drop reason.
#[inline(always)]
pub fn count_target(id: u32, verdict: Option<DropReason>, len: u64) {
    let stats = match TARGET_STATS.get_ptr_mut(id) {
        Some(s) => unsafe { &mut *s },
        None => return,
    };
    match verdict {
        None => stats.passed.add(len),
        Some(r) => {
            // `match` rather than indexing by `r as usize`: no bounds
            // check (and no panic path) for the verifier to see.
            let c = match r {
                DropReason::Scope => &mut stats.dropped[0],
                DropReason::Fragment => &mut stats.dropped[1],
                DropReason::Reflection => &mut stats.dropped[2],
                DropReason::BadTcpFlags => &mut stats.dropped[3],
                DropReason::SynLimit => &mut stats.dropped[4],
                DropReason::RateLimit => &mut stats.dropped[5],
                DropReason::Malformed => &mut stats.dropped[6],
                DropReason::SynProxy => &mut stats.dropped[7],
                DropReason::SynCookie => &mut stats.dropped[8],
                DropReason::Aggregate => &mut stats.dropped[9],
            };
            c.add(len);
        }
    }
}
