//! The data plane: loads the XDP program (`mitigator-ebpf`, embedded at build
//! time), attaches it to interfaces, writes rule sets into its maps as atomic
//! generation swaps, and reads its per-CPU counters.
//!
//! # API
//!
//! ```text
//! Dataplane::open(&DataplaneOptions { pin_dir })   load; with pin_dir adopt pinned maps or create+pin them
//! dp.attach(iface, AttachMode) -> AttachedMode      pin the bpf_link under pin_dir/links/<iface>; adopt an existing pin
//! dp.detach(iface)                                  unpin + detach
//! dp.uninstall()                                    detach all, remove every pin
//! dp.apply(&RuleSet)                                atomic: (grace since the last flip) inactive generation, flags, flip
//! dp.prepare(&RuleSet) -> Prepared                   compile + refuse, maps untouched; dp.commit(p) = the write and flip
//! dp.grace_left() / dp.ids_in_force()               for group commit (registry::batch)
//! dp.active_generation() -> u32
//! dp.set_reflection_ports(&[u16])
//! dp.target_stats(id) / dp.reset_target_stats(id)   summed over CPUs / zeroed
//! dp.iface_stats() -> Vec<(ifindex, IfaceStats)>    summed over CPUs (ifindex 0 = any other ifindex)
//! dp.acl_stats(i) / dp.acl_stats_by_id(stat_id)     ACL entry's matched packets/bytes, summed over CPUs
//! dp.test_run(pkt) -> XDP action                    BPF_PROG_TEST_RUN once
//! dp.test_run_repeat(pkt, n) -> (action, avg)       for benchmarks
//! ```
//!
//! Rule sets: host routes (/32, /128) go to the hash maps, shorter prefixes
//! to the LPM tries; the ACL (`RuleSet::acl`) is compiled to bit vectors
//! (`acl`), and refused with an `AclError` (entry, field, reason; find it
//! with `err.downcast_ref::<AclError>()`) when the program cannot express it. A target id must be below `MAX_TARGETS`; its policy is
//! stored with the `ACTIVE` flag forced on.
//!
//! Restart/upgrade: with a `pin_dir`, maps and links outlive the process,
//! so the host stays protected while the daemon restarts. On `open` the
//! pinned maps are adopted (their layout checked) and each generation's
//! contents read back so the next `apply` is a correct diff; on `attach`
//! a pinned link is adopted and switched to the newly loaded program
//! (`bpf_link_update`, atomic).

pub mod acl;
mod attach;
mod guard;
mod load;
mod rules;
mod stats;
mod test_run;
pub use test_run::run_fd as test_run_fd;
pub(crate) use load::is_bpffs;
pub mod testpkt;

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use anyhow::{anyhow, Context as _, Result};
use aya::Ebpf;
use mitigator_common::{Counter, IfaceStats, TargetStats};

pub use attach::{AttachMode, AttachedMode};
pub use acl::{port_ranges, AclAction, AclEntry, AclError, AclFamily, AclMatch, BitmaskMatch, PortOp};
pub use rules::{Prepared, RuleSet, TargetRule, GRACE};

/// How to open the data plane.
#[derive(Clone, Debug)]
pub struct DataplaneOptions {
    /// bpffs directory for pinned maps and links, e.g.
    /// `/sys/fs/bpf/mitigator`. `None`: nothing pinned, everything goes away
    /// with the `Dataplane` (tests).
    pub pin_dir: Option<PathBuf>,
    /// Resolve destinations through the per-CPU destination cache
    /// (`mitigator_common::DstCacheEntry`). On by default; off only to
    /// measure (or rule out) the cache. Takes effect at the next `apply`.
    pub dst_cache: bool,
    /// How long `commit` leaves the old generation alone after a flip
    /// (`rules::GRACE` by default).
    pub grace: std::time::Duration,
}

impl Default for DataplaneOptions {
    fn default() -> Self {
        DataplaneOptions { pin_dir: None, dst_cache: true, grace: GRACE }
    }
}

/// The loaded program, its maps, and what we know they hold.
pub struct Dataplane {
    ebpf: Ebpf,
    pin_dir: Option<PathBuf>,
    /// Attached interfaces by name.
    links: BTreeMap<String, attach::Attached>,
    /// What each generation holds, mirrored from the maps.
    gens: [rules::GenContents; 2],
    /// Generation the program currently reads.
    active: u32,
    /// True if `open` found pinned maps and adopted them.
    adopted: bool,
    /// When `apply` last flipped the generation (the next `apply` waits
    /// until GRACE has passed since then before writing the old one).
    last_flip: Option<std::time::Instant>,
    /// Mirror of `IFACE_SLOTS` (interface counter slots by ifindex).
    iface_slots: Vec<mitigator_common::IfaceSlot>,
    /// The epoch of the last flip (in the active `CONFIG` word).
    epoch: u32,
    /// `DataplaneOptions::dst_cache`.
    dst_cache: bool,
    /// `DataplaneOptions::grace`.
    grace: std::time::Duration,
}

impl Dataplane {
    /// Loads the program. With `pin_dir`, reuses the maps pinned there
    /// (adopt: their contents are read back) or creates and pins them.
    pub fn open(opts: &DataplaneOptions) -> Result<Self> {
        let (ebpf, adopted) = load::load(opts.pin_dir.as_deref())?;
        let mut dp = Dataplane {
            ebpf,
            pin_dir: opts.pin_dir.clone(),
            links: BTreeMap::new(),
            gens: Default::default(),
            active: 0,
            adopted,
            last_flip: None,
            iface_slots: vec![],
            epoch: 0,
            dst_cache: opts.dst_cache,
            grace: opts.grace,
        };
        (dp.active, dp.epoch) = rules::read_active(&mut dp.ebpf)?;
        if adopted {
            for g in 0..2 {
                dp.gens[g] = rules::read_gen(&mut dp.ebpf, g as u32)
                    .with_context(|| format!("reading generation {g} of the pinned maps"))?;
            }
        }
        dp.iface_slots = stats::read_iface_slots(&dp.ebpf)?;
        Ok(dp)
    }

    /// Turns the destination cache on or off (`DataplaneOptions::dst_cache`)
    /// from the next `apply` on.
    pub fn set_dst_cache(&mut self, on: bool) {
        self.dst_cache = on;
    }

    /// Whether `open` adopted maps pinned by an earlier run.
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    /// The generation the program reads now (0 or 1).
    pub fn active_generation(&self) -> u32 {
        self.active
    }

    /// What the active generation holds (as written by `apply` or read back
    /// on adoption), in the normalised form of `RuleSet`.
    pub fn current_rules(&self) -> RuleSet {
        self.gens[self.active as usize].to_rule_set()
    }

    /// Attaches to `iface`; see the module docs for pinning and adoption.
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<AttachedMode> {
        let (attached, how) = attach::attach(&mut self.ebpf, self.pin_dir.as_deref(), iface, mode)?;
        stats::ensure_iface_slot(&mut self.ebpf, &mut self.iface_slots, attached.ifindex)?;
        self.links.insert(iface.to_string(), attached);
        Ok(how)
    }

    /// Detaches from `iface` and removes its link pin.
    pub fn detach(&mut self, iface: &str) -> Result<()> {
        let att = self.links.remove(iface);
        attach::detach(&mut self.ebpf, self.pin_dir.as_deref(), iface, att)
    }

    /// Interfaces attached by this `Dataplane`.
    pub fn attached(&self) -> Vec<String> {
        self.links.keys().cloned().collect()
    }

    /// Detaches everywhere and removes every pin: nothing is left behind.
    pub fn uninstall(mut self) -> Result<()> {
        let names: Vec<String> = self.links.keys().cloned().collect();
        for n in names {
            self.detach(&n)?;
        }
        if let Some(dir) = self.pin_dir.clone() {
            attach::remove_all_link_pins(&dir)?;
            load::remove_map_pins(&dir)?;
        }
        Ok(())
    }

    /// Installs `rules` atomically: `prepare`, then `commit`.
    pub fn apply(&mut self, rules: &RuleSet) -> Result<()> {
        let p = self.prepare(rules)?;
        self.commit(p)
    }

    /// Compiles `rules` and refuses what cannot be installed, without
    /// touching the maps (see `rules::Prepared`).
    pub fn prepare(&self, rules: &RuleSet) -> Result<Prepared> {
        rules::prepare(self, rules)
    }

    /// Writes a prepared rule set into the inactive generation and flips
    /// to it, first waiting out `grace_left` (see `rules`).
    pub fn commit(&mut self, prepared: Prepared) -> Result<()> {
        rules::commit(self, prepared)
    }

    /// How long a `commit` now would wait (the rest of `GRACE` since the
    /// last flip): changes prepared meanwhile can share one flip.
    pub fn grace_left(&self) -> std::time::Duration {
        rules::grace_left(self)
    }

    /// Target ids the program enforces now (the active generation's
    /// policies). A registry must not hand such an id to a new target
    /// before the flip that retires it.
    pub fn ids_in_force(&self) -> impl Iterator<Item = u32> + '_ {
        self.gens[self.active as usize].policies.keys().copied()
    }

    /// What the SYN-ACKs answered from XDP carry (`SynProxyConfig`); until
    /// it is set, the SYN proxy answers nothing.
    pub fn set_syn_proxy(&mut self, cfg: mitigator_common::SynProxyConfig) -> Result<()> {
        let mut m: aya::maps::Array<&mut aya::maps::MapData, mitigator_common::SynProxyConfig> =
            map_mut(&mut self.ebpf, mitigator_common::maps::SYN_PROXY)?.try_into()?;
        m.set(0, mitigator_common::SynProxyConfig { ready: 1, ..cfg }, 0)?;
        Ok(())
    }

    /// Sets the UDP source ports that `DROP_REFLECTION` drops.
    pub fn set_reflection_ports(&mut self, ports: &[u16]) -> Result<()> {
        rules::set_reflection_ports(&mut self.ebpf, ports)
    }

    /// Counters of a target, summed over CPUs.
    pub fn target_stats(&self, id: u32) -> Result<TargetStats> {
        stats::target_stats(&self.ebpf, id)
    }

    /// Zeroes a target's counters (when its id is (re)allocated).
    pub fn reset_target_stats(&mut self, id: u32) -> Result<()> {
        stats::reset_target_stats(&mut self.ebpf, id)
    }

    /// Matched packets and bytes of entry `index` of the active rule set's
    /// ACL, summed over CPUs. They count from when the entry's `stat_id`
    /// first appeared (see `acl.rs`).
    pub fn acl_stats(&self, index: usize) -> Result<Counter> {
        let rules = &self.gens[self.active as usize].acl.rules;
        let r = rules.get(index).ok_or_else(|| anyhow!("no ACL entry {index} (the ACL has {})", rules.len()))?;
        acl::slot_stats(&self.ebpf, r.slot)
    }

    /// Same as `acl_stats`, by the entry's `stat_id`.
    pub fn acl_stats_by_id(&self, stat_id: u64) -> Result<Counter> {
        let rules = &self.gens[self.active as usize].acl.rules;
        let r = rules.iter().find(|r| r.stat_id == stat_id).ok_or_else(|| anyhow!("no ACL entry with stat_id {stat_id}"))?;
        acl::slot_stats(&self.ebpf, r.slot)
    }

    /// Matched packets and bytes of guard entry `i` (`RuleSet::guard`),
    /// summed over CPUs, since the entry was put in that slot.
    pub fn guard_stats(&self, i: usize) -> Result<Counter> {
        guard::stats(&self.ebpf, i)
    }

    /// Interface counters by ifindex (0 = interfaces without their own
    /// entry), summed over CPUs.
    pub fn iface_stats(&self) -> Result<Vec<(u32, IfaceStats)>> {
        stats::iface_stats(&self.ebpf, &self.iface_slots)
    }

    /// Runs the program once on `packet` (BPF_PROG_TEST_RUN); returns the
    /// XDP action (1 = XDP_DROP, 2 = XDP_PASS).
    pub fn test_run(&self, packet: &[u8]) -> Result<u32> {
        Ok(test_run::run(&self.ebpf, packet, 1)?.0)
    }

    /// A slot of the destination cache, one entry per CPU (diagnostics and
    /// tests: which destination each CPU resolved last in that slot).
    pub fn dst_cache_slot(&self, slot: u32) -> Result<Vec<mitigator_common::DstCacheEntry>> {
        stats::dst_cache_slot(&self.ebpf, slot)
    }

    /// A duplicate of the program's fd, for running it from another thread
    /// (BPF_PROG_TEST_RUN) while this `Dataplane` applies rule sets.
    pub fn program_fd(&self) -> Result<std::os::fd::OwnedFd> {
        test_run::program_fd(&self.ebpf)
    }

    /// Runs the program once on `packet`; returns the action and the
    /// packet as the program left it (a SYN proxy's SYN-ACK, for instance).
    pub fn test_run_out(&self, packet: &[u8]) -> Result<(u32, Vec<u8>)> {
        test_run::run_out(&self.ebpf, packet)
    }

    /// Runs the program `repeat` times on `packet`; returns the last action
    /// and the average duration per run as the kernel reports it.
    pub fn test_run_repeat(&self, packet: &[u8], repeat: u32) -> Result<(u32, Duration)> {
        test_run::run(&self.ebpf, packet, repeat)
    }
}

/// Looks a map up by name (they all exist in our own object).
fn map_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut aya::maps::Map> {
    ebpf.map_mut(name).ok_or_else(|| anyhow!("map {name} missing from the object"))
}

fn map_ref<'a>(ebpf: &'a Ebpf, name: &str) -> Result<&'a aya::maps::Map> {
    ebpf.map(name).ok_or_else(|| anyhow!("map {name} missing from the object"))
}

/// Removes every pin under `dir` (links, then maps) without loading
/// anything: `mitigator uninstall` after a daemon that is not running. The
/// programs detach when their last link pin goes.
pub fn remove_pins(dir: &std::path::Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    attach::remove_all_link_pins(dir)?;
    load::remove_map_pins(dir)?;
    Ok(())
}
