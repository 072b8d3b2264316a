//! The guard's maps (`GUARD`, `GUARD_RATE`, `GUARD_STATS`; layout in
//! `mitigator_common::guard`, meaning in `compiler::guard`). Not
//! generational: the entries change only with the configuration, so a
//! rewrite is seen by whichever generation is active (the generation's
//! `GUARD` flag alone says whether the program looks at them).

use anyhow::{ensure, Context as _, Result};
use aya::{maps::Array, Ebpf};
use mitigator_common::{maps as m, Counter, GuardEntry, MAX_GUARD};

use super::{acl, map_mut};

/// Puts `entries` in slots 0.. and empties the rest. A slot whose entry
/// changes starts with zero counters and a full bucket; an unchanged one
/// keeps both (a restart with the same configuration loses nothing).
pub(super) fn write(ebpf: &mut Ebpf, entries: &[GuardEntry]) -> Result<()> {
    ensure!(entries.len() <= MAX_GUARD as usize, "{} guarded listeners: the data plane holds at most {MAX_GUARD}", entries.len());
    ensure!(entries.iter().all(|e| e.proto != 0), "a guard entry needs a protocol");
    for i in 0..MAX_GUARD {
        let want = entries.get(i as usize).copied().unwrap_or_default();
        let mut map: Array<_, GuardEntry> = Array::try_from(map_mut(ebpf, m::GUARD)?)?;
        if map.get(&i, 0).context("reading GUARD")? == want {
            continue;
        }
        // Empty first, so no packet counts into the new entry's fresh slot
        // under the old entry.
        map.set(i, GuardEntry::default(), 0).context("writing GUARD")?;
        acl::reset_slots_of(ebpf, m::GUARD_STATS, m::GUARD_RATE, &[i])?;
        let mut map: Array<_, GuardEntry> = Array::try_from(map_mut(ebpf, m::GUARD)?)?;
        map.set(i, want, 0).context("writing GUARD")?;
    }
    Ok(())
}

/// The entries in the map (on adoption).
pub(super) fn read(ebpf: &mut Ebpf) -> Result<Vec<GuardEntry>> {
    let map: Array<_, GuardEntry> = Array::try_from(map_mut(ebpf, m::GUARD)?)?;
    let mut out = Vec::new();
    for i in 0..MAX_GUARD {
        let e = map.get(&i, 0).context("reading GUARD")?;
        if e.proto == 0 {
            break;
        }
        out.push(e);
    }
    Ok(out)
}

/// Matched packets and bytes of entry `i`, summed over CPUs.
pub(super) fn stats(ebpf: &Ebpf, i: usize) -> Result<Counter> {
    ensure!(i < MAX_GUARD as usize, "no guard entry {i}");
    acl::slot_stats_of(ebpf, m::GUARD_STATS, i as u32)
}
