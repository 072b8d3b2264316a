//! BPF_PROG_TEST_RUN: aya 0.14 exposes it (`aya::programs::TestRun`), so no
//! raw syscall is needed.
//!
//! Notes on the kernel side: the packet must be at least 14 bytes (an
//! Ethernet header) and at most a page minus headroom, or the kernel
//! refuses it (EINVAL); the run sees the ingress ifindex of the loopback
//! device, which has no interface-counter slot unless attached, so test
//! runs are counted under slot 0 (ifindex 0 in `iface_stats`); the
//! timestamp (`bpf_ktime_get_ns`) is real time.

use std::time::Duration;

use anyhow::{Context as _, Result};
use aya::{
    programs::{TestRun, TestRunOptions, Xdp},
    Ebpf,
};
use mitigator_common::PROGRAM_NAME;

pub(super) fn run(ebpf: &Ebpf, packet: &[u8], repeat: u32) -> Result<(u32, Duration)> {
    let prog: &Xdp = ebpf.program(PROGRAM_NAME).context("program missing")?.try_into()?;
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(packet);
    opts.repeat = repeat.max(1);
    let r = prog.test_run(opts).context("BPF_PROG_TEST_RUN")?;
    Ok((r.return_value, r.duration))
}

pub(super) fn program_fd(ebpf: &Ebpf) -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsFd as _;
    let prog: &Xdp = ebpf.program(PROGRAM_NAME).context("program missing")?.try_into()?;
    Ok(prog.fd()?.as_fd().try_clone_to_owned()?)
}
