//! The XDP program: parse → accept-list → drop-list → data-channel ACL →
//! target lookup (destination cache, dst_cache.rs, then the maps) → the
//! target's policy → verdict, every packet counted exactly once per
//! interface and (when a target's policy decided it) per target. The guard
//! of the daemon's own listeners (guard.rs) goes before the ACL when the
//! generation has one, else before an in-scope target's countermeasures.
//! Before all that, a shortcut (`to_no_target`) passes a packet the cache
//! knows is no target's on its destination alone, when no list or ACL is
//! installed.
//!
//! Each decision reads the active generation, its flags and its epoch
//! (`CONFIG[CONFIG_ACTIVE]`) as one word and uses only that word; see
//! `mitigator_common` for why.
#![no_std]
#![no_main]

mod acl;
mod count;
mod dst_cache;
mod guard;
mod maps;
mod parse;
mod policy;
mod syn_proxy;

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS, XDP_TX},
    macros::xdp,
    maps::lpm_trie::Key,
    programs::XdpContext,
};
use mitigator_common::{
    gen_flags as gf, lpm_v4, lpm_v6, policy_flags, DropReason, HostKeyV4, HostKeyV6, IfaceVerdict, CONFIG_ACTIVE,
    CONFIG_EPOCH_SHIFT, CONFIG_GEN_BIT, DST_NONE, LPM_GEN_BITS, MAX_TARGETS,
};

use count::{count_iface, count_iface_index, count_target, iface_slot};
use maps::*;
use parse::{DstAddr, Pkt};

/// What `decide` leaves to its caller.
enum Outcome {
    Done(u32, IfaceVerdict),
    /// A TCP packet in the scope of a target with `syn-proxy` that passed
    /// the earlier countermeasures (the target and generation are in the
    /// scratch `Pkt`): the SYN proxy decides it.
    SynProxy,
}

#[xdp]
pub fn mitigator(ctx: XdpContext) -> u32 {
    let (data, data_end) = packet(&ctx);
    let len = (data_end - data) as u64;
    let (action, verdict) = if to_no_target(data, data_end, config_word()) {
        (XDP_PASS, IfaceVerdict::NoMatch)
    } else {
        // Everything `decide` knows it reads afresh (the packet's bounds,
        // the config word): to the verifier, what the shortcut learnt on
        // its way out (packet ranges, flag bits, the family) is then dead,
        // so `decide` is verified once, not once per way out, which went
        // past the verifier's 1M-instruction limit.
        let (data, data_end) = packet(&ctx);
        match decide(data, data_end, len, config_word()) {
            Outcome::Done(a, v) => (a, v),
            Outcome::SynProxy => {
                let (action, verdict) = syn_proxy_decide(&ctx, len);
                count_iface_index(iface_slot(unsafe { (*ctx.ctx).ingress_ifindex }), verdict, len);
                return action;
            }
        }
    };
    count_iface(iface_slot(unsafe { (*ctx.ctx).ingress_ifindex }), verdict, len);
    action
}

/// The scratch packet and its target's policy, as `decide` left them.
#[inline(always)]
fn handed_over() -> Option<(&'static Pkt, &'static mitigator_common::Policy)> {
    // SAFETY: per-CPU, and filled earlier in this run.
    let p = unsafe { &*PKT.get_ptr_mut(0)? };
    let pol = POLICIES.get(p.gen * MAX_TARGETS + p.target)?;
    Some((p, pol))
}

/// The SYN proxy (syn_proxy.rs) for the packet `decide` handed over:
/// answers a SYN with a cookie (`XDP_TX`), checks an ACK's cookie, and
/// lets the target's remaining countermeasures decide what it passes.
/// Not inlined: a BPF-to-BPF call with its own stack frame, which keeps
/// its locals (and its verification) apart from `decide`'s.
/// Returns the action and the interface verdict's index.
#[inline(never)]
fn syn_proxy_decide(ctx: &XdpContext, len: u64) -> (u32, u32) {
    let Some((p, pol)) = handed_over() else { return (XDP_PASS, IfaceVerdict::Unparsed as u32) };
    let id = p.target;
    let verdict = match syn_proxy::decide(ctx, p) {
        syn_proxy::Proxy::Answered => {
            count_target(id, Some(DropReason::SynCookie), len);
            return (XDP_TX, IfaceVerdict::SynCookieSent as u32);
        }
        syn_proxy::Proxy::Drop => Some(DropReason::SynProxy),
        // A listener's connection, a valid cookie, or no listener at all:
        // the remaining countermeasures decide.
        syn_proxy::Proxy::Pass | syn_proxy::Proxy::NotMine => policy::late(pol, p, id, len),
    };
    let (action, v) = finish(id, verdict, len);
    (action, v as u32)
}

/// Counts a target's verdict; the action and interface verdict for it.
#[inline(always)]
fn finish(id: u32, verdict: Option<DropReason>, len: u64) -> (u32, IfaceVerdict) {
    count_target(id, verdict, len);
    match verdict {
        None => (XDP_PASS, IfaceVerdict::TargetPassed),
        Some(_) => (XDP_DROP, IfaceVerdict::TargetDropped),
    }
}

/// The packet's bounds, loaded from the context each time (volatile: LLVM
/// must not reuse an earlier load, see `mitigator`).
#[inline(always)]
fn packet(ctx: &XdpContext) -> (usize, usize) {
    // SAFETY: the context the kernel passed in, valid for the whole run.
    unsafe {
        (
            core::ptr::read_volatile(&(*ctx.ctx).data) as usize,
            core::ptr::read_volatile(&(*ctx.ctx).data_end) as usize,
        )
    }
}

/// The generation, its flags and its epoch, read together (one word).
#[inline(always)]
fn config_word() -> u64 {
    match CONFIG.get(CONFIG_ACTIVE) {
        Some(w) => *w,
        None => 0,
    }
}

/// The shortcut for most of a host's packets: with no list and no ACL in
/// the generation, a packet whose destination is known to be no target's
/// (its family has no targets, or the destination cache says none) needs
/// only its destination read. Any doubt (a cache miss, a header `dst_only`
/// does not take) goes the full way through `decide`.
#[inline(always)]
fn to_no_target(data: usize, data_end: usize, word: u64) -> bool {
    let flags = word as u32;
    if flags & (gf::LISTS | gf::ACL) != 0 {
        return false;
    }
    let epoch = (word >> CONFIG_EPOCH_SHIFT) as u32;
    let cached = flags & gf::DST_CACHE != 0;
    // One arm per family, so that each family's probe is its own code.
    let probe = match parse::dst_only(data, data_end) {
        Some(DstAddr::V4(_)) if flags & (gf::HOST_V4 | gf::LPM_V4) == 0 => return true,
        Some(DstAddr::V4(ip)) if cached => dst_cache::probe_v4(DstAddr::v4(ip), epoch),
        Some(DstAddr::V6(_)) if flags & (gf::HOST_V6 | gf::LPM_V6) == 0 => return true,
        Some(DstAddr::V6(ip)) if cached => dst_cache::probe_v6(&DstAddr::v6(ip), epoch),
        _ => return false,
    };
    match probe {
        dst_cache::Probe::Hit(DST_NONE) => true,
        // A target's packet: `decide` takes the id rather than probing again.
        dst_cache::Probe::Hit(id) => {
            if let Some(p) = PKT.get_ptr_mut(0) {
                // SAFETY: per-CPU, not preempted (see `decide`).
                unsafe { (*p).hint = hint(epoch, id) };
            }
            false
        }
        dst_cache::Probe::Miss(_) => false,
    }
}

/// `Pkt::hint`: the target `id` resolved at `epoch`.
#[inline(always)]
fn hint(epoch: u32, id: u32) -> u64 {
    ((epoch as u64) << 32) | id as u64
}

#[inline(always)]
fn decide(data: usize, data_end: usize, len: u64, word: u64) -> Outcome {
    // The parsed packet lives in a per-CPU map, not on the stack. The
    // verifier does not track what a map value holds, so after parsing all
    // the parse paths (v4/v6, each extension header, each L4 protocol)
    // reach the rules in one state and are verified once. On the stack, the
    // fields were constants per path and everything after the parse (the
    // ACL's AND loop above all) was re-verified per path: over 1M
    // instructions.
    let p = match PKT.get_ptr_mut(0) {
        // SAFETY: per-CPU, and an XDP run is not preempted: no one else
        // touches this CPU's value during the run.
        Some(p) => unsafe { &mut *p },
        None => return Outcome::Done(XDP_PASS, IfaceVerdict::Unparsed),
    };
    let epoch = (word >> CONFIG_EPOCH_SHIFT) as u32;
    let flags = word as u32;
    let gen = flags >> CONFIG_GEN_BIT;

    // Read before `clear`, which ends it.
    let hint = p.hint;
    p.clear();
    // The fields only the ACL reads are filled only when it is installed.
    if parse::parse(data, data_end, p, flags & gf::ACL != 0).is_none() {
        return Outcome::Done(XDP_PASS, IfaceVerdict::Unparsed);
    }

    if flags & gf::LISTS != 0 {
        if on_list(true, p, gen, flags) {
            return Outcome::Done(XDP_PASS, IfaceVerdict::Accepted);
        }
        if on_list(false, p, gen, flags) {
            return Outcome::Done(XDP_DROP, IfaceVerdict::DropListed);
        }
    }
    let guard = flags & gf::GUARD != 0;
    // One flag test when no ACL is installed: the no-ACL path stays as fast.
    if flags & gf::ACL != 0 {
        parse::parse_l4(data, data_end, p);
        // A client's ACE may drop anything: the guard goes first.
        if guard {
            if let Some((a, v)) = guard_verdict(p, len) {
                return Outcome::Done(a, v);
            }
        }
        match acl::check(p, gen, len) {
            acl::AclVerdict::NoMatch => {}
            acl::AclVerdict::Accept => return Outcome::Done(XDP_PASS, IfaceVerdict::AclAccepted),
            acl::AclVerdict::Drop => return Outcome::Done(XDP_DROP, IfaceVerdict::AclDropped),
        }
    }

    // DST_NONE (no target) is out of range too.
    let id = target_of(p, gen, flags, epoch, hint);
    if id >= MAX_TARGETS {
        return Outcome::Done(XDP_PASS, IfaceVerdict::NoMatch);
    }
    // Only now, for a target's packet, is its L4 header read.
    parse::parse_l4(data, data_end, p);
    // For the SYN proxy, should the policy hand the packet over.
    p.target = id;
    p.gen = gen;
    let p: &Pkt = p;

    let verdict = match POLICIES.get(gen * MAX_TARGETS + id) {
        Some(pol) if pol.flags & policy_flags::ACTIVE != 0 && policy::in_scope(pol, p) => {
            // Only here can a target drop a listener's packet: the guard
            // costs nothing to packets out of every target's scope.
            if guard && flags & gf::ACL == 0 {
                if let Some((a, v)) = guard_verdict(p, len) {
                    return Outcome::Done(a, v);
                }
            }
            match policy::early(pol, p) {
                Some(r) => Some(r),
                None if policy::wants_syn_proxy(pol, p) => return Outcome::SynProxy,
                None => policy::late(pol, p, id, len),
            }
        }
        // Out of scope, or a target without an active policy: passes
        // (counted as passed).
        _ => None,
    };
    let (a, v) = finish(id, verdict, len);
    Outcome::Done(a, v)
}

/// The guard's decision, if `p` is a guarded listener's packet.
#[inline(always)]
fn guard_verdict(p: &Pkt, len: u64) -> Option<(u32, IfaceVerdict)> {
    match guard::check(p, len) {
        guard::GuardVerdict::NoMatch => None,
        guard::GuardVerdict::Pass => Some((XDP_PASS, IfaceVerdict::GuardPassed)),
        guard::GuardVerdict::Drop => Some((XDP_DROP, IfaceVerdict::GuardDropped)),
    }
}

/// Source on the accept-list (`accept`) or drop-list: its host map (hash)
/// first, then its prefix trie, each skipped when the generation has none.
#[inline(always)]
fn on_list(accept: bool, p: &Pkt, gen: u32, flags: u32) -> bool {
    if p.v6 {
        let (host_bit, pfx_bit) = if accept { (gf::ACCEPT_HOST_V6, gf::ACCEPT_V6) } else { (gf::DROP_HOST_V6, gf::DROP_V6) };
        if flags & host_bit != 0 {
            let m = if accept { &ACCEPT_HOST_V6 } else { &DROP_HOST_V6 };
            if m.get_ptr(&HostKeyV6 { gen, addr: p.src }).is_some() {
                return true;
            }
        }
        if flags & pfx_bit != 0 {
            let m = if accept { &ACCEPT_V6 } else { &DROP_V6 };
            return m.get(&Key::new(LPM_GEN_BITS + 128, lpm_v6(gen, p.src))).is_some();
        }
    } else {
        let (host_bit, pfx_bit) = if accept { (gf::ACCEPT_HOST_V4, gf::ACCEPT_V4) } else { (gf::DROP_HOST_V4, gf::DROP_V4) };
        let addr = [p.src[0], p.src[1], p.src[2], p.src[3]];
        if flags & host_bit != 0 {
            let m = if accept { &ACCEPT_HOST_V4 } else { &DROP_HOST_V4 };
            if m.get_ptr(&HostKeyV4 { gen, addr }).is_some() {
                return true;
            }
        }
        if flags & pfx_bit != 0 {
            let m = if accept { &ACCEPT_V4 } else { &DROP_V4 };
            return m.get(&Key::new(LPM_GEN_BITS + 32, lpm_v4(gen, addr))).is_some();
        }
    }
    false
}

/// Destination → target id: the shortcut's `hint` when it found one in
/// this epoch, else through the per-CPU cache when it is on (see
/// `DstCacheEntry` for why). A family without targets skips both.
/// `DST_NONE` for no target: ids are plain u32s here, see `Probe::Hit`.
#[inline(always)]
fn target_of(p: &Pkt, gen: u32, flags: u32, epoch: u32, hint: u64) -> u32 {
    let any = if p.v6 { gf::HOST_V6 | gf::LPM_V6 } else { gf::HOST_V4 | gf::LPM_V4 };
    if flags & any == 0 {
        return DST_NONE;
    }
    // A flip between the shortcut and here changes the epoch: the hint is
    // then ignored. (Epoch 0 is never flipped in, and a generation with
    // targets has been: a hint of 0 never matches.)
    if hint >> 32 == epoch as u64 {
        return hint as u32;
    }
    if flags & gf::DST_CACHE == 0 {
        return find_target(p, gen, flags);
    }
    let d = p.dst();
    match dst_cache::probe(&d, epoch) {
        dst_cache::Probe::Hit(id) => id,
        dst_cache::Probe::Miss(e) => {
            let found = find_target(p, gen, flags);
            if let Some(e) = e {
                dst_cache::fill(e, &d, epoch, found);
            }
            found
        }
    }
}

/// Destination → target id: host routes (hash) first, then prefixes (LPM),
/// each skipped when the generation has none; `DST_NONE` for none.
#[inline(always)]
fn find_target(p: &Pkt, gen: u32, flags: u32) -> u32 {
    if p.v6 {
        if flags & gf::HOST_V6 != 0 {
            if let Some(id) = HOST_V6.get_ptr(&HostKeyV6 { gen, addr: p.dst }) {
                return unsafe { *id };
            }
        }
        if flags & gf::LPM_V6 != 0 {
            let key = Key::new(LPM_GEN_BITS + 128, lpm_v6(gen, p.dst));
            if let Some(id) = LPM_V6.get(&key) {
                return *id;
            }
        }
    } else {
        let addr = [p.dst[0], p.dst[1], p.dst[2], p.dst[3]];
        if flags & gf::HOST_V4 != 0 {
            if let Some(id) = HOST_V4.get_ptr(&HostKeyV4 { gen, addr }) {
                return unsafe { *id };
            }
        }
        if flags & gf::LPM_V4 != 0 {
            let key = Key::new(LPM_GEN_BITS + 32, lpm_v4(gen, addr));
            if let Some(id) = LPM_V4.get(&key) {
                return *id;
            }
        }
    }
    DST_NONE
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // No panic path should survive optimisation; if one does, the verifier
    // rejects the unbounded loop and we find out at load time.
    loop {}
}
