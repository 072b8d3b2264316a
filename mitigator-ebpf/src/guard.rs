//! The guard of the daemon's own DOTS listeners: accept → drop-list →
//! **guard** → ACL → target (when the generation has an ACL: a client's
//! ACE may drop anything), or target → scope → **guard** → countermeasures
//! (without an ACL: only a target can drop, and only in its scope, so
//! other packets never pay for the guard).
//!
//! At most `MAX_GUARD` entries, walked in order; the walk stops at the
//! first empty one. A match is counted and decided by the entry's
//! aggregate byte bucket, the ACL's rate-limit bucket (`acl::under_rate`).

use mitigator_common::{GuardEntry, MAX_GUARD};

use crate::{
    acl::under_rate,
    maps::{GUARD, GUARD_RATE, GUARD_STATS},
    parse::Pkt,
};

/// What the guard decided.
pub enum GuardVerdict {
    /// Not a guarded listener's packet: go on.
    NoMatch,
    /// A listener's packet within its rate.
    Pass,
    /// A listener's packet over its rate.
    Drop,
}

/// The guard's verdict for `p` (the generation's flags say it has entries).
#[inline(always)]
pub fn check(p: &Pkt, len: u64) -> GuardVerdict {
    // Fragments past the first have no ports, and so no listener.
    if !p.has_ports {
        return GuardVerdict::NoMatch;
    }
    let mut i = 0;
    while i < MAX_GUARD {
        let e = match GUARD.get(i) {
            Some(e) if e.proto != 0 => e,
            _ => return GuardVerdict::NoMatch,
        };
        if matches(e, p) {
            return decide(i, e.rate_bps, len);
        }
        i += 1;
    }
    GuardVerdict::NoMatch
}

/// Protocol, destination port, family and destination address.
#[inline(always)]
fn matches(e: &GuardEntry, p: &Pkt) -> bool {
    if e.proto != p.proto || e.port != p.dport {
        return false;
    }
    let fam = if p.v6 { 6 } else { 4 };
    if e.family != 0 && e.family != fam {
        return false;
    }
    if e.any_addr != 0 {
        return true;
    }
    let n = if p.v6 { 16 } else { 4 };
    let mut k = 0;
    while k < 16 {
        if k >= n {
            break;
        }
        if e.addr[k] != p.dst[k] {
            return false;
        }
        k += 1;
    }
    true
}

/// Counts entry `i` and takes `len` bytes from its bucket.
#[inline(always)]
fn decide(i: u32, rate: u64, len: u64) -> GuardVerdict {
    if let Some(c) = GUARD_STATS.get_ptr_mut(i) {
        unsafe { (*c).add(len) };
    }
    let ok = match GUARD_RATE.get_ptr_mut(i) {
        Some(b) => under_rate(unsafe { &mut *b }, rate, len),
        None => true,
    };
    if ok {
        GuardVerdict::Pass
    } else {
        GuardVerdict::Drop
    }
}
