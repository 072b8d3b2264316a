//! Rule sets, generations and diffs.
//!
//! Every rule map holds two generations (see `mitigator_common`). `apply`
//! is `prepare` then `commit`:
//! 1. `prepare` compiles the `RuleSet` into the exact map contents
//!    (`GenContents`) and assigns ACL slots: every refusal of the rule set
//!    itself (capacity, ACL) happens here, before any map is touched;
//! 2. `commit` writes the *inactive* generation as a diff against what it
//!    holds (we mirror each generation's contents, read back from the maps
//!    when pinned maps are adopted);
//! 3. flips `CONFIG_ACTIVE` to that generation, its `gen_flags` and a new
//!    epoch (one 8-byte array write: a packet sees either the old or the
//!    new set, and every CPU's destination cache goes stale at once);
//! 4. notes the time of the flip. The old generation is left as it is:
//!    the next `commit` writes into it (a diff against what it holds),
//!    after waiting out what remains of the grace period since this flip,
//!    so that no program run that read the old generation number still
//!    reads it. A change is therefore in force as soon as the flip is
//!    done, and the wait only falls on changes less than the grace apart
//!    (the registry lets those share one flip: `registry::batch`).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use anyhow::{bail, ensure, Context as _, Result};
use aya::{
    maps::{
        lpm_trie::{Key, LpmTrie},
        Array, HashMap, MapData,
    },
    Ebpf,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use mitigator_common::{
    config_word, gen_flags as gf, lpm_v4, lpm_v6, maps as m, policy_flags, HostKeyV4, HostKeyV6, LpmDataV4,
    GuardEntry, LpmDataV6, Policy, CONFIG_ACTIVE, CONFIG_EPOCH_SHIFT, CONFIG_GEN_BIT, LPM_GEN_BITS, MAX_HOST_ROUTES, MAX_LIST_ENTRIES, MAX_PREFIXES,
    MAX_TARGETS, REFLECT_WORDS,
};

use super::{
    acl::{self, AclContents, AclEntry},
    guard,
    map_mut, Dataplane,
};

/// How long `commit` waits by default after flipping the generation
/// before rewriting the old one (`DataplaneOptions::grace`). An XDP
/// program runs to completion inside one NAPI poll (or one generic-XDP
/// receive) under rcu_read_lock with preemption disabled, so a run that
/// read the old generation number ends within microseconds; this is
/// several orders of magnitude above that. (An exact alternative is a
/// synchronize_rcu() from userspace: the kernel runs one on every update
/// of a map-of-maps; it usually takes longer than this.)
pub const GRACE: Duration = Duration::from_millis(20);

/// A complete rule set: what `apply` installs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleSet {
    pub targets: Vec<TargetRule>,
    /// Sources passed without any further check.
    pub accept: Vec<IpNet>,
    /// Sources always dropped.
    pub drop: Vec<IpNet>,
    /// Data-channel ACL, in order (first match wins), after the lists and
    /// before the targets; see `acl.rs`.
    pub acl: Vec<AclEntry>,
    /// The guard of the daemon's own listeners (at most `MAX_GUARD`, see
    /// `guard.rs`): before the ACL, or before an in-scope target's
    /// countermeasures.
    pub guard: Vec<GuardEntry>,
}

/// A protected target: destination prefixes sharing one id (counters, rate
/// state) and one policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetRule {
    pub id: u32,
    pub prefixes: Vec<IpNet>,
    pub policy: Policy,
}

/// The exact contents of one generation, keyed as in the maps. A list
/// (`accept_*`, `drop_*`) holds host entries (/32, /128), which live in the
/// list's hash map, and shorter prefixes, which live in its LPM trie
/// (`list_parts`).
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct GenContents {
    host_v4: BTreeMap<[u8; 4], u32>,
    host_v6: BTreeMap<[u8; 16], u32>,
    lpm_v4: BTreeMap<([u8; 4], u8), u32>,
    lpm_v6: BTreeMap<([u8; 16], u8), u32>,
    accept_v4: BTreeSet<([u8; 4], u8)>,
    accept_v6: BTreeSet<([u8; 16], u8)>,
    drop_v4: BTreeSet<([u8; 4], u8)>,
    drop_v6: BTreeSet<([u8; 16], u8)>,
    pub(super) policies: BTreeMap<u32, Policy>,
    pub(super) acl: AclContents,
    /// What the (shared, not generational) guard map held when this
    /// generation was written; non-empty sets its `GUARD` flag.
    guard: Vec<GuardEntry>,
}

impl GenContents {
    /// Compiles and validates a rule set; `acl_slots` are the counter
    /// slots of `rules.acl` (`acl::assign_slots`).
    pub(super) fn compile(rules: &RuleSet, acl_slots: &[u32]) -> Result<Self> {
        // An AclError stays the error's root cause, for callers to downcast.
        let mut g =
            GenContents { acl: acl::compile(&rules.acl, acl_slots)?, guard: rules.guard.clone(), ..Default::default() };
        for t in &rules.targets {
            ensure!(t.id < MAX_TARGETS, "target id {} out of range (max {})", t.id, MAX_TARGETS - 1);
            let mut pol = t.policy;
            pol.flags |= policy_flags::ACTIVE;
            ensure!(
                pol.n_ports as usize <= mitigator_common::MAX_PORT_RANGES,
                "target {}: {} port ranges (max {})",
                t.id,
                pol.n_ports,
                mitigator_common::MAX_PORT_RANGES
            );
            if g.policies.insert(t.id, pol).is_some() {
                bail!("target id {} appears twice", t.id);
            }
            for p in &t.prefixes {
                let dup = match p.trunc() {
                    IpNet::V4(n) if n.prefix_len() == 32 => g.host_v4.insert(n.addr().octets(), t.id),
                    IpNet::V6(n) if n.prefix_len() == 128 => g.host_v6.insert(n.addr().octets(), t.id),
                    IpNet::V4(n) => g.lpm_v4.insert((n.addr().octets(), n.prefix_len()), t.id),
                    IpNet::V6(n) => g.lpm_v6.insert((n.addr().octets(), n.prefix_len()), t.id),
                };
                if let Some(other) = dup {
                    bail!("prefix {p} belongs to targets {other} and {}", t.id);
                }
            }
        }
        for (list, v4, v6) in [
            (&rules.accept, &mut g.accept_v4, &mut g.accept_v6),
            (&rules.drop, &mut g.drop_v4, &mut g.drop_v6),
        ] {
            for p in list {
                match p.trunc() {
                    IpNet::V4(n) => v4.insert((n.addr().octets(), n.prefix_len())),
                    IpNet::V6(n) => v6.insert((n.addr().octets(), n.prefix_len())),
                };
            }
        }
        ensure!(g.host_v4.len() as u32 <= MAX_HOST_ROUTES && g.host_v6.len() as u32 <= MAX_HOST_ROUTES, "too many host routes");
        ensure!(g.lpm_v4.len() as u32 <= MAX_PREFIXES && g.lpm_v6.len() as u32 <= MAX_PREFIXES, "too many prefixes");
        for n in [g.accept_v4.len(), g.accept_v6.len(), g.drop_v4.len(), g.drop_v6.len()] {
            ensure!(n as u32 <= MAX_LIST_ENTRIES, "too many accept/drop-list entries");
        }
        Ok(g)
    }

    /// Which maps hold entries: the program skips the others.
    pub(super) fn flags(&self) -> u32 {
        let mut f = 0;
        for (nonempty, bit) in [
            (has_list_entries(&self.accept_v4, false), gf::ACCEPT_V4),
            (has_list_entries(&self.accept_v6, false), gf::ACCEPT_V6),
            (has_list_entries(&self.drop_v4, false), gf::DROP_V4),
            (has_list_entries(&self.drop_v6, false), gf::DROP_V6),
            (has_list_entries(&self.accept_v4, true), gf::ACCEPT_HOST_V4),
            (has_list_entries(&self.accept_v6, true), gf::ACCEPT_HOST_V6),
            (has_list_entries(&self.drop_v4, true), gf::DROP_HOST_V4),
            (has_list_entries(&self.drop_v6, true), gf::DROP_HOST_V6),
            (!self.host_v4.is_empty(), gf::HOST_V4),
            (!self.host_v6.is_empty(), gf::HOST_V6),
            (!self.lpm_v4.is_empty(), gf::LPM_V4),
            (!self.lpm_v6.is_empty(), gf::LPM_V6),
            (!self.acl.entries.is_empty(), gf::ACL),
            (!self.guard.is_empty(), gf::GUARD),
        ] {
            if nonempty {
                f |= bit;
            }
        }
        f
    }

    /// Back to a (normalised, sorted) `RuleSet`.
    pub(super) fn to_rule_set(&self) -> RuleSet {
        let mut targets: BTreeMap<u32, TargetRule> = self
            .policies
            .iter()
            .map(|(id, p)| (*id, TargetRule { id: *id, prefixes: vec![], policy: *p }))
            .collect();
        let mut add = |id: u32, net: IpNet| {
            targets
                .entry(id)
                .or_insert_with(|| TargetRule { id, prefixes: vec![], policy: Policy::empty() })
                .prefixes
                .push(net)
        };
        for (a, id) in &self.host_v4 {
            add(*id, v4net(*a, 32));
        }
        for (a, id) in &self.host_v6 {
            add(*id, v6net(*a, 128));
        }
        for ((a, l), id) in &self.lpm_v4 {
            add(*id, v4net(*a, *l));
        }
        for ((a, l), id) in &self.lpm_v6 {
            add(*id, v6net(*a, *l));
        }
        let list = |v4: &BTreeSet<([u8; 4], u8)>, v6: &BTreeSet<([u8; 16], u8)>| {
            v4.iter().map(|(a, l)| v4net(*a, *l)).chain(v6.iter().map(|(a, l)| v6net(*a, *l))).collect()
        };
        let mut targets: Vec<TargetRule> = targets.into_values().collect();
        for t in &mut targets {
            t.prefixes.sort();
        }
        RuleSet {
            targets,
            accept: list(&self.accept_v4, &self.accept_v6),
            drop: list(&self.drop_v4, &self.drop_v6),
            acl: self.acl.entries.clone(),
            guard: self.guard.clone(),
        }
    }
}

fn v4net(a: [u8; 4], l: u8) -> IpNet {
    IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), l).expect("prefix length from our own maps"))
}

fn v6net(a: [u8; 16], l: u8) -> IpNet {
    IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), l).expect("prefix length from our own maps"))
}

// ------------------------------------------------------------ map access ---

fn config(ebpf: &mut Ebpf) -> Result<Array<&mut MapData, u64>> {
    Ok(Array::try_from(map_mut(ebpf, m::CONFIG)?)?)
}

/// The active generation and the epoch it was flipped in at.
pub(super) fn read_active(ebpf: &mut Ebpf) -> Result<(u32, u32)> {
    let word = config(ebpf)?.get(&CONFIG_ACTIVE, 0)?;
    Ok(((word as u32) >> CONFIG_GEN_BIT, (word >> CONFIG_EPOCH_SHIFT) as u32))
}

/// Writes the difference `cur` → `want` into generation `gen` of a hash map.
fn diff_hash<K: aya::Pod + Ord, MK: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &str,
    cur: &BTreeMap<K, u32>,
    want: &BTreeMap<K, u32>,
    key: impl Fn(&K) -> MK,
) -> Result<()> {
    let mut map: HashMap<_, MK, u32> = HashMap::try_from(map_mut(ebpf, name)?)?;
    for (k, v) in want {
        if cur.get(k) != Some(v) {
            map.insert(key(k), v, 0).with_context(|| format!("inserting into {name}"))?;
        }
    }
    for k in cur.keys() {
        if !want.contains_key(k) {
            map.remove(&key(k)).with_context(|| format!("removing from {name}"))?;
        }
    }
    Ok(())
}

/// Same for an LPM trie; `key` gives (prefix_len, data). Also used by the
/// ACL prefix tries (`acl/maps.rs`).
pub(super) fn diff_lpm<K: Ord, D: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &str,
    cur: &BTreeMap<K, u32>,
    want: &BTreeMap<K, u32>,
    key: impl Fn(&K) -> Key<D>,
) -> Result<()> {
    let mut map: LpmTrie<_, D, u32> = LpmTrie::try_from(map_mut(ebpf, name)?)?;
    for (k, v) in want {
        if cur.get(k) != Some(v) {
            map.insert(&key(k), v, 0).with_context(|| format!("inserting into {name}"))?;
        }
    }
    for k in cur.keys() {
        if !want.contains_key(k) {
            map.remove(&key(k)).with_context(|| format!("removing from {name}"))?;
        }
    }
    Ok(())
}

/// A list's entries as its two maps hold them: host addresses (prefix
/// length `N * 8`) for the hash map, shorter prefixes for the trie.
type ListParts<const N: usize> = (BTreeMap<[u8; N], u32>, BTreeMap<([u8; N], u8), u32>);

fn is_host<const N: usize>(prefix_len: u8) -> bool {
    prefix_len as usize == N * 8
}

/// The list has host entries (`host`) or shorter prefixes.
fn has_list_entries<const N: usize>(s: &BTreeSet<([u8; N], u8)>, host: bool) -> bool {
    s.iter().any(|(_, l)| is_host::<N>(*l) == host)
}

fn list_parts<const N: usize>(s: &BTreeSet<([u8; N], u8)>) -> ListParts<N> {
    let host = s.iter().filter(|(_, l)| is_host::<N>(*l)).map(|(a, _)| (*a, 0)).collect();
    let pfx = s.iter().filter(|(_, l)| !is_host::<N>(*l)).map(|k| (*k, 0)).collect();
    (host, pfx)
}

/// Writes the difference `cur` → `want` of one list into generation `gen`
/// of its hash map `host_map` and trie `pfx_map`.
#[allow(clippy::too_many_arguments)]
fn diff_list<const N: usize, HK: aya::Pod, D: aya::Pod>(
    ebpf: &mut Ebpf,
    host_map: &str,
    pfx_map: &str,
    cur: &BTreeSet<([u8; N], u8)>,
    want: &BTreeSet<([u8; N], u8)>,
    host_key: impl Fn(&[u8; N]) -> HK,
    pfx_key: impl Fn(&([u8; N], u8)) -> Key<D>,
) -> Result<()> {
    let (cur_host, cur_pfx) = list_parts(cur);
    let (want_host, want_pfx) = list_parts(want);
    diff_hash(ebpf, host_map, &cur_host, &want_host, host_key)?;
    diff_lpm(ebpf, pfx_map, &cur_pfx, &want_pfx, pfx_key)
}

fn k4(gen: u32, (a, l): &([u8; 4], u8)) -> Key<LpmDataV4> {
    Key::new(LPM_GEN_BITS + *l as u32, lpm_v4(gen, *a))
}

fn k6(gen: u32, (a, l): &([u8; 16], u8)) -> Key<LpmDataV6> {
    Key::new(LPM_GEN_BITS + *l as u32, lpm_v6(gen, *a))
}

/// Makes generation `gen` hold `want`, given that it holds `cur`.
fn write_gen(ebpf: &mut Ebpf, gen: u32, cur: &GenContents, want: &GenContents) -> Result<()> {
    // Policies first: a packet never sees this generation while we write,
    // but keeping "policy before route" makes the order safe even then.
    {
        let mut pols: Array<_, Policy> = Array::try_from(map_mut(ebpf, m::POLICIES)?)?;
        for (id, p) in &want.policies {
            if cur.policies.get(id) != Some(p) {
                pols.set(gen * MAX_TARGETS + id, p, 0).context("writing POLICIES")?;
            }
        }
        for id in cur.policies.keys() {
            if !want.policies.contains_key(id) {
                pols.set(gen * MAX_TARGETS + id, Policy::empty(), 0).context("clearing POLICIES")?;
            }
        }
    }
    diff_hash(ebpf, m::HOST_V4, &cur.host_v4, &want.host_v4, |a| HostKeyV4 { gen, addr: *a })?;
    diff_hash(ebpf, m::HOST_V6, &cur.host_v6, &want.host_v6, |a| HostKeyV6 { gen, addr: *a })?;
    diff_lpm(ebpf, m::LPM_V4, &cur.lpm_v4, &want.lpm_v4, |k| k4(gen, k))?;
    diff_lpm(ebpf, m::LPM_V6, &cur.lpm_v6, &want.lpm_v6, |k| k6(gen, k))?;
    let h4 = |a: &[u8; 4]| HostKeyV4 { gen, addr: *a };
    let h6 = |a: &[u8; 16]| HostKeyV6 { gen, addr: *a };
    diff_list(ebpf, m::ACCEPT_HOST_V4, m::ACCEPT_V4, &cur.accept_v4, &want.accept_v4, h4, |k| k4(gen, k))?;
    diff_list(ebpf, m::ACCEPT_HOST_V6, m::ACCEPT_V6, &cur.accept_v6, &want.accept_v6, h6, |k| k6(gen, k))?;
    diff_list(ebpf, m::DROP_HOST_V4, m::DROP_V4, &cur.drop_v4, &want.drop_v4, h4, |k| k4(gen, k))?;
    diff_list(ebpf, m::DROP_HOST_V6, m::DROP_V6, &cur.drop_v6, &want.drop_v6, h6, |k| k6(gen, k))?;
    acl::write_gen(ebpf, gen, &cur.acl, &want.acl)

}

/// Reads back what generation `gen` holds (adoption of pinned maps).
pub(super) fn read_gen(ebpf: &mut Ebpf, gen: u32) -> Result<GenContents> {
    let mut g = GenContents::default();
    fn host4(ebpf: &mut Ebpf, name: &str, gen: u32) -> Result<BTreeMap<[u8; 4], u32>> {
        let map: HashMap<_, HostKeyV4, u32> = HashMap::try_from(map_mut(ebpf, name)?)?;
        let mut out = BTreeMap::new();
        for kv in map.iter() {
            let (k, v) = kv?;
            if k.gen == gen {
                out.insert(k.addr, v);
            }
        }
        Ok(out)
    }
    fn host6(ebpf: &mut Ebpf, name: &str, gen: u32) -> Result<BTreeMap<[u8; 16], u32>> {
        let map: HashMap<_, HostKeyV6, u32> = HashMap::try_from(map_mut(ebpf, name)?)?;
        let mut out = BTreeMap::new();
        for kv in map.iter() {
            let (k, v) = kv?;
            if k.gen == gen {
                out.insert(k.addr, v);
            }
        }
        Ok(out)
    }
    g.host_v4 = host4(ebpf, m::HOST_V4, gen)?;
    g.host_v6 = host6(ebpf, m::HOST_V6, gen)?;
    fn lpm4(ebpf: &mut Ebpf, name: &str, gen: u32) -> Result<BTreeMap<([u8; 4], u8), u32>> {
        let map: LpmTrie<_, LpmDataV4, u32> = LpmTrie::try_from(map_mut(ebpf, name)?)?;
        let mut out = BTreeMap::new();
        for kv in map.iter() {
            let (k, v) = kv?;
            let d = k.data();
            if d[0] as u32 == gen && k.prefix_len() >= LPM_GEN_BITS {
                out.insert(([d[1], d[2], d[3], d[4]], (k.prefix_len() - LPM_GEN_BITS) as u8), v);
            }
        }
        Ok(out)
    }
    fn lpm6(ebpf: &mut Ebpf, name: &str, gen: u32) -> Result<BTreeMap<([u8; 16], u8), u32>> {
        let map: LpmTrie<_, LpmDataV6, u32> = LpmTrie::try_from(map_mut(ebpf, name)?)?;
        let mut out = BTreeMap::new();
        for kv in map.iter() {
            let (k, v) = kv?;
            let d = k.data();
            if d[0] as u32 == gen && k.prefix_len() >= LPM_GEN_BITS {
                let mut a = [0u8; 16];
                a.copy_from_slice(&d[1..]);
                out.insert((a, (k.prefix_len() - LPM_GEN_BITS) as u8), v);
            }
        }
        Ok(out)
    }
    g.lpm_v4 = lpm4(ebpf, m::LPM_V4, gen)?;
    g.lpm_v6 = lpm6(ebpf, m::LPM_V6, gen)?;
    // A list: its trie's prefixes and its hash map's hosts.
    let hosts4 = |h: BTreeMap<[u8; 4], u32>| h.into_keys().map(|a| (a, 32));
    let hosts6 = |h: BTreeMap<[u8; 16], u32>| h.into_keys().map(|a| (a, 128));
    g.accept_v4 = lpm4(ebpf, m::ACCEPT_V4, gen)?.into_keys().chain(hosts4(host4(ebpf, m::ACCEPT_HOST_V4, gen)?)).collect();
    g.accept_v6 = lpm6(ebpf, m::ACCEPT_V6, gen)?.into_keys().chain(hosts6(host6(ebpf, m::ACCEPT_HOST_V6, gen)?)).collect();
    g.drop_v4 = lpm4(ebpf, m::DROP_V4, gen)?.into_keys().chain(hosts4(host4(ebpf, m::DROP_HOST_V4, gen)?)).collect();
    g.drop_v6 = lpm6(ebpf, m::DROP_V6, gen)?.into_keys().chain(hosts6(host6(ebpf, m::DROP_HOST_V6, gen)?)).collect();
    {
        let pols: Array<_, Policy> = Array::try_from(map_mut(ebpf, m::POLICIES)?)?;
        for id in 0..MAX_TARGETS {
            let p = pols.get(&(gen * MAX_TARGETS + id), 0)?;
            if p.flags & policy_flags::ACTIVE != 0 {
                g.policies.insert(id, p);
            }
        }
    }
    g.acl = acl::read_gen(ebpf, gen)?;
    g.guard = guard::read(ebpf)?;
    Ok(g)
}

/// A rule set compiled against the generations as they are: everything
/// `apply` can refuse for the rule set itself (capacity, ACL slots) is
/// refused here. `commit` then only writes and flips.
pub struct Prepared {
    want: GenContents,
    guard: Vec<GuardEntry>,
    /// ACL slots that no generation uses yet (reset before use).
    fresh: Vec<u32>,
    /// The epoch the slots were assigned against.
    epoch: u32,
}

pub(super) fn prepare(dp: &Dataplane, rules: &RuleSet) -> Result<Prepared> {
    let (slots, fresh) = acl::assign_slots([&dp.gens[0].acl, &dp.gens[1].acl], &rules.acl)?;
    let want = GenContents::compile(rules, &slots)?;
    Ok(Prepared { want, guard: rules.guard.clone(), fresh, epoch: dp.epoch })
}

/// See the module docs.
pub(super) fn commit(dp: &mut Dataplane, p: Prepared) -> Result<()> {
    // ACL slots were assigned against the generations as they were.
    ensure!(p.epoch == dp.epoch, "the rule set was prepared before the last flip: prepare it again");
    let next = dp.active ^ 1;
    // `next` was read by packets until the last flip: let their runs end.
    std::thread::sleep(grace_left(dp));
    // New ACL entries start from zero (no generation uses these slots yet).
    acl::reset_slots(&mut dp.ebpf, &p.fresh)?;
    guard::write(&mut dp.ebpf, &p.guard)?;
    write_gen_tracked(dp, next, &p.want)?;
    // The flip: from here new packets read `next`, its flags and a new
    // epoch (which also empties every CPU's destination cache; never 0).
    let epoch = match dp.epoch.wrapping_add(1) {
        0 => 1,
        e => e,
    };
    let flags = p.want.flags() | if dp.dst_cache { gf::DST_CACHE } else { 0 };
    config(&mut dp.ebpf)?.set(CONFIG_ACTIVE, config_word(epoch, next, flags), 0).context("flipping CONFIG_ACTIVE")?;
    dp.active = next;
    dp.epoch = epoch;
    dp.last_flip = Some(std::time::Instant::now());
    Ok(())
}

/// What remains of the grace period since the last flip: a `commit` now
/// would wait this long before writing.
pub(super) fn grace_left(dp: &Dataplane) -> Duration {
    dp.last_flip.map_or(Duration::ZERO, |flipped| dp.grace.saturating_sub(flipped.elapsed()))
}

/// `write_gen` keeping the mirror right: on failure the generation is read
/// back from the maps, so a retry diffs against the truth.
fn write_gen_tracked(dp: &mut Dataplane, gen: u32, want: &GenContents) -> Result<()> {
    let g = gen as usize;
    if dp.gens[g] == *want {
        return Ok(());
    }
    let cur = std::mem::take(&mut dp.gens[g]);
    match write_gen(&mut dp.ebpf, gen, &cur, want) {
        Ok(()) => {
            dp.gens[g] = want.clone();
            Ok(())
        }
        Err(e) => {
            dp.gens[g] = read_gen(&mut dp.ebpf, gen).unwrap_or(cur);
            Err(e.context(format!("writing generation {gen}")))
        }
    }
}

/// Writes the reflection-port bitmap (not generational: a port bit flips
/// atomically on its own).
pub(super) fn set_reflection_ports(ebpf: &mut Ebpf, ports: &[u16]) -> Result<()> {
    let mut words = vec![0u64; REFLECT_WORDS as usize];
    for &p in ports {
        words[(p >> 6) as usize] |= 1 << (p & 63);
    }
    let mut map: Array<_, u64> = Array::try_from(map_mut(ebpf, m::REFLECT_PORTS)?)?;
    for (i, w) in words.iter().enumerate() {
        if map.get(&(i as u32), 0)? != *w {
            map.set(i as u32, w, 0)?;
        }
    }
    Ok(())
}
