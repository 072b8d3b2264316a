//! Reading the per-CPU counters.

use anyhow::{Context as _, Result};
use aya::{
    maps::{MapError, PerCpuArray, PerCpuHashMap, PerCpuValues},
    util::nr_cpus,
    Ebpf,
};
use mitigator_common::{maps as m, Counter, IfaceStats, TargetStats, MAX_TARGETS, N_DROP_REASONS, N_IFACE_VERDICTS};

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

pub(super) fn reset_target_stats(ebpf: &mut Ebpf, id: u32) -> Result<()> {
    anyhow::ensure!(id < MAX_TARGETS, "target id {id} out of range");
    let mut map: PerCpuArray<_, TargetStats> = PerCpuArray::try_from(map_mut(ebpf, m::TARGET_STATS)?)?;
    let zero = PerCpuValues::try_from(vec![TargetStats::default(); ncpus()?])?;
    map.set(id, zero, 0).context("zeroing TARGET_STATS")?;
    Ok(())
}

pub(super) fn iface_stats(ebpf: &Ebpf) -> Result<Vec<(u32, IfaceStats)>> {
    let map: PerCpuHashMap<_, u32, IfaceStats> = PerCpuHashMap::try_from(map_ref(ebpf, m::IFACE_STATS)?)?;
    let mut out = Vec::new();
    for item in map.iter() {
        let (k, per_cpu) = item?;
        let mut sum = IfaceStats::default();
        for s in per_cpu.iter() {
            for v in 0..N_IFACE_VERDICTS {
                add(&mut sum.verdicts[v], &s.verdicts[v]);
            }
        }
        out.push((k, sum));
    }
    out.sort_by_key(|(k, _)| *k);
    Ok(out)
}

/// Creates a zeroed IFACE_STATS entry for `ifindex` unless one exists
/// (an adopted entry keeps counting from where it was).
pub(super) fn ensure_iface_entry(ebpf: &mut Ebpf, ifindex: u32) -> Result<()> {
    let mut map: PerCpuHashMap<_, u32, IfaceStats> = PerCpuHashMap::try_from(map_mut(ebpf, m::IFACE_STATS)?)?;
    match map.get(&ifindex, 0) {
        Ok(_) => return Ok(()),
        Err(MapError::KeyNotFound) => {}
        Err(e) => return Err(e).context("reading IFACE_STATS"),
    }
    let zero = PerCpuValues::try_from(vec![IfaceStats::default(); ncpus()?])?;
    // BPF_NOEXIST: a concurrent creator wins, which is fine.
    match map.insert(ifindex, zero, 1) {
        Ok(()) => Ok(()),
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(e).context("creating IFACE_STATS entry"),
    }
}
