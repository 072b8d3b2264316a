//! Shared by the `verdicts_acl` and `verdicts_guard` tests: one packet
//! through BPF_PROG_TEST_RUN and the interface verdict it was counted under.
#![allow(dead_code)]

use mitigator::dataplane::Dataplane;
use mitigator_common::{IfaceStats, IfaceVerdict};

pub fn iface0(d: &Dataplane) -> IfaceStats {
    d.iface_stats().unwrap().into_iter().find(|(k, _)| *k == 0).map(|(_, s)| s).unwrap_or_default()
}

/// Runs `pkt` once; returns the action and the interface verdict it was
/// counted under (exactly one counter must move, by this packet's length).
pub fn run(d: &Dataplane, pkt: &[u8]) -> (u32, IfaceVerdict) {
    let before = iface0(d);
    let action = d.test_run(pkt).unwrap();
    let after = iface0(d);
    let moved: Vec<IfaceVerdict> = IfaceVerdict::ALL
        .into_iter()
        .filter(|v| after.verdicts[*v as usize].packets != before.verdicts[*v as usize].packets)
        .collect();
    assert_eq!(moved.len(), 1, "exactly one interface verdict per packet: {moved:?}");
    let v = moved[0];
    assert_eq!(after.verdicts[v as usize].packets - before.verdicts[v as usize].packets, 1);
    assert_eq!(after.verdicts[v as usize].bytes - before.verdicts[v as usize].bytes, pkt.len() as u64);
    (action, v)
}
