//! BPF_PROG_TEST_RUN: aya 0.14 exposes it (`aya::programs::TestRun`) for a
//! program it holds; `run_fd` is the raw syscall, for a bare program fd
//! (another thread's, see `Dataplane::program_fd`), which aya cannot run.
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

/// One run; the action and the packet as the program left it.
pub(super) fn run_out(ebpf: &Ebpf, packet: &[u8]) -> Result<(u32, Vec<u8>)> {
    let prog: &Xdp = ebpf.program(PROGRAM_NAME).context("program missing")?.try_into()?;
    let mut out = vec![0u8; 4096];
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(packet);
    opts.data_out = Some(&mut out);
    let r = prog.test_run(opts).context("BPF_PROG_TEST_RUN")?;
    out.truncate(r.data_size_out as usize);
    Ok((r.return_value, out))
}

pub(super) fn program_fd(ebpf: &Ebpf) -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsFd as _;
    let prog: &Xdp = ebpf.program(PROGRAM_NAME).context("program missing")?.try_into()?;
    Ok(prog.fd()?.as_fd().try_clone_to_owned()?)
}

/// `union bpf_attr` for BPF_PROG_TEST_RUN (its `test` member), as in
/// include/uapi/linux/bpf.h. xtask's live-frames generator keeps its own
/// copy: xtask must build before setup installs the eBPF toolchain, so it
/// does not depend on this crate.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// Runs the XDP program behind `fd` once on `packet`; returns its action.
pub fn run_fd(fd: std::os::fd::BorrowedFd<'_>, packet: &[u8]) -> Result<u32> {
    use std::os::fd::AsRawFd as _;
    let mut a = TestRunAttr {
        prog_fd: fd.as_raw_fd() as u32,
        data_size_in: packet.len() as u32,
        data_in: packet.as_ptr() as u64,
        repeat: 1,
        ..Default::default()
    };
    const BPF_PROG_TEST_RUN: libc::c_long = 10;
    // SAFETY: `a` is a valid bpf_attr prefix for this command, and the
    // packet it points to outlives the call.
    let rc = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_PROG_TEST_RUN, &mut a as *mut TestRunAttr, std::mem::size_of::<TestRunAttr>())
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("BPF_PROG_TEST_RUN");
    }
    Ok(a.retval)
}
