//! Counter slots, and writing / reading one generation of the ACL maps.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, Result};
use aya::{
    maps::{
        lpm_trie::{Key, LpmTrie},
        Array, HashMap, PerCpuArray, PerCpuValues,
    },
    Ebpf,
};
use mitigator_common::{
    acl_pfx_v4, acl_pfx_v6, maps as m, AclBits, AclBucket, AclHeader, AclPfxV4, AclPfxV6, AclRule, AclVecKey, Counter,
    ACL_IDX_LEN_TOTAL, ACL_PFX_HDR_BITS, ACL_SLOTS, MAX_ACL_ENTRIES,
};

use super::{compile::AclContents, encode::decode, *};
use crate::dataplane::map_mut;

// ----------------------------------------------------------------- slots ---

/// Slots for `entries`: a `stat_id` that either generation holds keeps its
/// slot; a new one gets the lowest slot neither generation uses. Returns
/// the slots (by entry) and the new ones, which must be zeroed before the
/// generation that uses them becomes visible.
pub(crate) fn assign_slots(held: [&AclContents; 2], entries: &[AclEntry]) -> Result<(Vec<u32>, Vec<u32>), AclError> {
    let mut by_id: BTreeMap<u64, u32> = BTreeMap::new();
    let mut taken: BTreeSet<u32> = BTreeSet::new();
    for g in held {
        for r in &g.rules {
            by_id.insert(r.stat_id, r.slot);
            taken.insert(r.slot);
        }
    }
    let mut free = (0..ACL_SLOTS).filter(|s| !taken.contains(s));
    let mut slots = vec![];
    let mut fresh = vec![];
    let mut seen = BTreeSet::new();
    for (i, e) in entries.iter().enumerate() {
        if !seen.insert(e.stat_id) {
            return Err(err(i, "stat_id", format!("{} is used by an earlier entry", e.stat_id)));
        }
        let s = match by_id.get(&e.stat_id) {
            Some(s) => *s,
            None => {
                let s = free.next().ok_or_else(|| err(i, "acl", "no free counter slot"))?;
                fresh.push(s);
                s
            }
        };
        slots.push(s);
    }
    Ok((slots, fresh))
}

/// Zeroes the counters and rate bucket of fresh slots: of the ACL
/// (`ACL_STATS`, `ACL_RATE`), or of the guard (`stats`, `rate` = its maps,
/// of the same layout).
pub(crate) fn reset_slots(ebpf: &mut Ebpf, slots: &[u32]) -> Result<()> {
    reset_slots_of(ebpf, m::ACL_STATS, m::ACL_RATE, slots)
}

pub(crate) fn reset_slots_of(ebpf: &mut Ebpf, stats: &str, rate: &str, slots: &[u32]) -> Result<()> {
    if slots.is_empty() {
        return Ok(());
    }
    let ncpus = aya::util::nr_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
    {
        let mut st: PerCpuArray<_, Counter> = PerCpuArray::try_from(map_mut(ebpf, stats)?)?;
        for &s in slots {
            st.set(s, PerCpuValues::try_from(vec![Counter::default(); ncpus])?, 0).with_context(|| format!("zeroing {stats}"))?;
        }
    }
    let mut buckets: Array<_, AclBucket> = Array::try_from(map_mut(ebpf, rate)?)?;
    for &s in slots {
        buckets.set(s, AclBucket::default(), 0).with_context(|| format!("zeroing {rate}"))?;
    }
    Ok(())
}

/// Matched packets and bytes of a slot of `ACL_STATS` (or of the guard's
/// `stats` map, `slot_stats_of`), summed over CPUs.
pub(crate) fn slot_stats(ebpf: &aya::Ebpf, slot: u32) -> Result<Counter> {
    slot_stats_of(ebpf, m::ACL_STATS, slot)
}

pub(crate) fn slot_stats_of(ebpf: &aya::Ebpf, stats: &str, slot: u32) -> Result<Counter> {
    let map: PerCpuArray<_, Counter> = PerCpuArray::try_from(crate::dataplane::map_ref(ebpf, stats)?)?;
    let per_cpu = map.get(&slot, 0).with_context(|| format!("reading {stats}"))?;
    let mut sum = Counter::default();
    for c in per_cpu.iter() {
        sum.packets += c.packets;
        sum.bytes += c.bytes;
    }
    Ok(sum)
}

// ------------------------------------------------------------ map writes ---

fn k4(gen: u32, &(dst, a, l): &(bool, [u8; 4], u8)) -> Key<AclPfxV4> {
    Key::new(ACL_PFX_HDR_BITS + l as u32, acl_pfx_v4(gen, dst, a))
}

fn k6(gen: u32, (dst, a, l): &(bool, [u8; 16], u8)) -> Key<AclPfxV6> {
    Key::new(ACL_PFX_HDR_BITS + *l as u32, acl_pfx_v6(gen, *dst, a))
}

/// Makes generation `gen`'s ACL maps hold `want`, given they hold `cur`.
/// Vectors first, then what names them, then the rules, then the header:
/// the generation is inactive, but the order keeps every id resolvable
/// even if it were not.
pub(crate) fn write_gen(ebpf: &mut Ebpf, gen: u32, cur: &AclContents, want: &AclContents) -> Result<()> {
    {
        let mut vecs: HashMap<_, AclVecKey, AclBits> = HashMap::try_from(map_mut(ebpf, m::ACL_VECS)?)?;
        for (id, v) in want.vecs.iter().enumerate() {
            if cur.vecs.get(id) != Some(v) {
                vecs.insert(AclVecKey { gen, id: id as u32 }, v, 0).context("writing ACL_VECS")?;
            }
        }
    }
    crate::dataplane::rules::diff_lpm(ebpf, m::ACL_PFX_V4, &cur.pfx_v4, &want.pfx_v4, |k| k4(gen, k))?;
    crate::dataplane::rules::diff_lpm(ebpf, m::ACL_PFX_V6, &cur.pfx_v6, &want.pfx_v6, |k| k6(gen, k))?;
    {
        let mut idx: Array<_, u32> = Array::try_from(map_mut(ebpf, m::ACL_IDX)?)?;
        let base = gen * ACL_IDX_LEN_TOTAL;
        for (i, (c, w)) in cur.idx.iter().zip(&want.idx).enumerate() {
            if c != w {
                idx.set(base + i as u32, w, 0).context("writing ACL_IDX")?;
            }
        }
    }
    {
        let mut rules: Array<_, AclRule> = Array::try_from(map_mut(ebpf, m::ACL_RULES)?)?;
        for (i, r) in want.rules.iter().enumerate() {
            if cur.rules.get(i) != Some(r) {
                rules.set(gen * MAX_ACL_ENTRIES + i as u32, r, 0).context("writing ACL_RULES")?;
            }
        }
    }
    if cur.hdr != want.hdr {
        let mut hdr: Array<_, AclHeader> = Array::try_from(map_mut(ebpf, m::ACL_HDR)?)?;
        hdr.set(gen, want.hdr, 0).context("writing ACL_HDR")?;
    }
    // Vectors no longer named by anything.
    let mut vecs: HashMap<_, AclVecKey, AclBits> = HashMap::try_from(map_mut(ebpf, m::ACL_VECS)?)?;
    for id in want.vecs.len()..cur.vecs.len() {
        vecs.remove(&AclVecKey { gen, id: id as u32 }).context("removing from ACL_VECS")?;
    }
    Ok(())
}

/// Reads back what generation `gen`'s ACL maps hold (adoption).
pub(crate) fn read_gen(ebpf: &mut Ebpf, gen: u32) -> Result<AclContents> {
    let hdr = Array::<_, AclHeader>::try_from(map_mut(ebpf, m::ACL_HDR)?)?.get(&gen, 0)?;
    let mut c = AclContents { hdr, ..Default::default() };
    {
        let rules: Array<_, AclRule> = Array::try_from(map_mut(ebpf, m::ACL_RULES)?)?;
        for i in 0..c.hdr.n_entries.min(MAX_ACL_ENTRIES) {
            let r = rules.get(&(gen * MAX_ACL_ENTRIES + i), 0)?;
            c.entries.push(decode(&r));
            c.rules.push(r);
        }
    }
    {
        let vecs: HashMap<_, AclVecKey, AclBits> = HashMap::try_from(map_mut(ebpf, m::ACL_VECS)?)?;
        let mut by_id = BTreeMap::new();
        for kv in vecs.iter() {
            let (k, v) = kv?;
            if k.gen == gen {
                by_id.insert(k.id, v);
            }
        }
        // Ids are dense from 0; a gap (an interrupted write) ends the
        // mirror there, and the next write rewrites the rest.
        for (n, (id, v)) in by_id.into_iter().enumerate() {
            if id as usize != n {
                break;
            }
            c.vecs.push(v);
        }
    }
    {
        let t: LpmTrie<_, AclPfxV4, u32> = LpmTrie::try_from(map_mut(ebpf, m::ACL_PFX_V4)?)?;
        for kv in t.iter() {
            let (k, v) = kv?;
            let d = k.data();
            if d[0] as u32 == gen && k.prefix_len() >= ACL_PFX_HDR_BITS {
                c.pfx_v4.insert((d[1] != 0, [d[2], d[3], d[4], d[5]], (k.prefix_len() - ACL_PFX_HDR_BITS) as u8), v);
            }
        }
    }
    {
        let t: LpmTrie<_, AclPfxV6, u32> = LpmTrie::try_from(map_mut(ebpf, m::ACL_PFX_V6)?)?;
        for kv in t.iter() {
            let (k, v) = kv?;
            let d = k.data();
            if d[0] as u32 == gen && k.prefix_len() >= ACL_PFX_HDR_BITS {
                let mut a = [0u8; 16];
                a.copy_from_slice(&d[2..]);
                c.pfx_v6.insert((d[1] != 0, a, (k.prefix_len() - ACL_PFX_HDR_BITS) as u8), v);
            }
        }
    }
    {
        let idx: Array<_, u32> = Array::try_from(map_mut(ebpf, m::ACL_IDX)?)?;
        let base = gen * ACL_IDX_LEN_TOTAL;
        for i in 0..ACL_IDX_LEN_TOTAL {
            c.idx[i as usize] = idx.get(&(base + i), 0)?;
        }
    }
    Ok(c)
}
