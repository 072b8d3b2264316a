//! Reading the per-CPU counters (and the per-CPU destination cache).

use anyhow::{Context as _, Result};
use aya::{
    maps::{Array, PerCpuArray, PerCpuValues},
    util::nr_cpus,
    Ebpf,
};
use mitigator_common::{
    maps as m, Counter, DstCacheEntry, IfaceSlot, IfaceStats, TargetStats, DST_CACHE_SLOTS, IFACE_PROBES, IFACE_SLOT_TABLE, MAX_IFACES, MAX_TARGETS,
    N_DROP_REASONS, N_IFACE_VERDICTS,
};

use super::{map_mut, map_ref};

fn add(a: &mut Counter, b: &Counter) {
    a.packets += b.packets;
    a.bytes += b.bytes;
}

fn ncpus() -> Result<usize> {
    nr_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))
}

pub(super) fn target_stats(ebpf: &Ebpf, id: u32) -> Result<TargetStats> {
    anyhow::ensure!(id < MAX_TARGETS, "target id {id} out of range");
    let map: PerCpuArray<_, TargetStats> = PerCpuArray::try_from(map_ref(ebpf, m::TARGET_STATS)?)?;
    let per_cpu = map.get(&id, 0).context("reading TARGET_STATS")?;
    let mut sum = TargetStats::default();
    for s in per_cpu.iter() {
        add(&mut sum.passed, &s.passed);
        for r in 0..N_DROP_REASONS {
            add(&mut sum.dropped[r], &s.dropped[r]);
        }
    }
    Ok(sum)
}

pub(super) fn dst_cache_slot(ebpf: &Ebpf, slot: u32) -> Result<Vec<DstCacheEntry>> {
    anyhow::ensure!(slot < 2 * DST_CACHE_SLOTS, "destination cache slot {slot} out of range");
    let map: PerCpuArray<_, DstCacheEntry> = PerCpuArray::try_from(map_ref(ebpf, m::DST_CACHE)?)?;
    Ok(map.get(&slot, 0).context("reading DST_CACHE")?.iter().copied().collect())
}

pub(super) fn reset_target_stats(ebpf: &mut Ebpf, id: u32) -> Result<()> {
    anyhow::ensure!(id < MAX_TARGETS, "target id {id} out of range");
    let mut map: PerCpuArray<_, TargetStats> = PerCpuArray::try_from(map_mut(ebpf, m::TARGET_STATS)?)?;
    let zero = PerCpuValues::try_from(vec![TargetStats::default(); ncpus()?])?;
    map.set(id, zero, 0).context("zeroing TARGET_STATS")?;
    Ok(())
}

/// Counters of every interface with a slot in `table` (the mirror of
/// `IFACE_SLOTS`), and slot 0 as ifindex 0, summed over CPUs.
pub(super) fn iface_stats(ebpf: &Ebpf, table: &[IfaceSlot]) -> Result<Vec<(u32, IfaceStats)>> {
    let map: PerCpuArray<_, IfaceStats> = PerCpuArray::try_from(map_ref(ebpf, m::IFACE_STATS)?)?;
    let slots = std::iter::once(IfaceSlot::default()).chain(table.iter().copied().filter(|e| e.ifindex != 0));
    let mut out = Vec::new();
    for e in slots {
        let per_cpu = map.get(&e.slot, 0).context("reading IFACE_STATS")?;
        let mut sum = IfaceStats::default();
        for s in per_cpu.iter() {
            for v in 0..N_IFACE_VERDICTS {
                add(&mut sum.verdicts[v], &s.verdicts[v]);
            }
        }
        out.push((e.ifindex, sum));
    }
    out.sort_by_key(|(k, _)| *k);
    Ok(out)
}

/// Reads `IFACE_SLOTS` whole (on open: the daemon keeps a mirror).
pub(super) fn read_iface_slots(ebpf: &Ebpf) -> Result<Vec<IfaceSlot>> {
    let map: Array<_, IfaceSlot> = Array::try_from(map_ref(ebpf, m::IFACE_SLOTS)?)?;
    (0..IFACE_SLOT_TABLE).map(|i| map.get(&i, 0).context("reading IFACE_SLOTS")).collect()
}

fn iface_exists(ifindex: u32) -> bool {
    let mut buf = [0u8; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE bytes, as if_indextoname requires.
    !unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr().cast()) }.is_null()
}

/// Gives `ifindex` a counter slot in `IFACE_SLOTS` (and `table`, its
/// mirror) unless it has one: an adopted entry keeps counting from where it
/// was. The entry goes to the first empty probe position (see `IfaceSlot`),
/// or takes over in place the entry of an interface that no longer exists
/// (entries are never emptied, so that the program's walk has no holes).
pub(super) fn ensure_iface_slot(ebpf: &mut Ebpf, table: &mut [IfaceSlot], ifindex: u32) -> Result<()> {
    let probes: Vec<usize> =
        (0..IFACE_PROBES).map(|i| (ifindex.wrapping_add(i) & (IFACE_SLOT_TABLE - 1)) as usize).collect();
    for &p in &probes {
        match table[p].ifindex {
            i if i == ifindex => return Ok(()),
            0 => break,
            _ => {}
        }
    }
    let pos = *probes
        .iter()
        .find(|&&p| table[p].ifindex == 0 || !iface_exists(table[p].ifindex))
        .with_context(|| format!("no interface-counter entry left for ifindex {ifindex} (IFACE_SLOTS)"))?;
    let slot = if table[pos].ifindex != 0 {
        table[pos].slot
    } else {
        (1..MAX_IFACES)
            .find(|s| !table.iter().any(|e| e.ifindex != 0 && e.slot == *s))
            .with_context(|| format!("all {} interface-counter slots are taken", MAX_IFACES - 1))?
    };
    // Zero the counters before publishing the slot: they are the new
    // interface's from the first packet on.
    let mut stats: PerCpuArray<_, IfaceStats> = PerCpuArray::try_from(map_mut(ebpf, m::IFACE_STATS)?)?;
    stats.set(slot, PerCpuValues::try_from(vec![IfaceStats::default(); ncpus()?])?, 0).context("zeroing IFACE_STATS")?;
    let entry = IfaceSlot { ifindex, slot };
    let mut slots: Array<_, IfaceSlot> = Array::try_from(map_mut(ebpf, m::IFACE_SLOTS)?)?;
    slots.set(pos as u32, entry, 0).context("writing IFACE_SLOTS")?;
    table[pos] = entry;
    Ok(())
}
