//! A flood generator that models a NIC: frames reach the receiving veth as
//! xdp_frames through `ndo_xdp_xmit`, so the receiver's native XDP program
//! sees them before any skb exists.
//!
//! It uses the kernel facility xdp-trafficgen (xdp-tools) is built on:
//! BPF_PROG_TEST_RUN with `BPF_F_TEST_XDP_LIVE_FRAMES` runs an XDP program
//! on a packet `repeat` times and carries out its verdicts for real; our
//! program answers XDP_REDIRECT to the sending veth, so each run transmits
//! one frame; or, paced, XDP_DROP until the next frame is due. xdp-trafficgen 1.3.1 itself does not start on kernels without
//! the xdp_redirect_map tracepoints (removed in 2025; see the bench text), and neither bpftool nor aya passes this
//! test-run flag, hence the two raw bpf(2) calls here.

use std::{
    ffi::CString,
    net::Ipv4Addr,
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc::Sender,
        Arc,
    },
    thread::JoinHandle,
    time::Instant,
};

use anyhow::{bail, Context};
use mitigator_tests::Host;

use super::progrun::{self, PrivateBpffs};

/// The program: redirect frames out of IFINDEX (set at compile time).
/// bpf_redirect is helper 23, bpf_ktime_get_ns helper 5
/// (include/uapi/linux/bpf.h). With INTERVAL_NS non-zero it paces: it sends
/// when the clock has reached `next_send` and moves that on by one interval,
/// and drops otherwise (in live-frames mode a drop only recycles the page),
/// so the test run's loop becomes a busy-wait that emits a frame every
/// INTERVAL_NS. Behind by more than BURST intervals (the gap between two
/// calls, a preemption), it starts afresh from now instead of catching up
/// in one burst. `next_send` is global data: one run at a time uses it.
const PROG_C: &str = "/* Live-frames flood: transmit frames out of IFINDEX, one every INTERVAL_NS if non-zero. */\n\
static long (*bpf_redirect)(unsigned int ifindex, unsigned long long flags) = (void *)23;\n\
static unsigned long long (*bpf_ktime_get_ns)(void) = (void *)5;\n\
unsigned long long next_send;\n\
__attribute__((section(\"xdp\"), used)) int xdp_flood(void *ctx) {\n\
#if INTERVAL_NS\n\
  unsigned long long now = bpf_ktime_get_ns();\n\
  if ((long long)(now - next_send) < 0) return 1; /* XDP_DROP: not yet */\n\
  if (now - next_send > BURST * INTERVAL_NS) next_send = now;\n\
  next_send += INTERVAL_NS;\n\
#endif\n\
  return bpf_redirect(IFINDEX, 0);\n\
}\n\
char _license[] __attribute__((section(\"license\"), used)) = \"GPL\";\n";

/// Frames a paced flood may send back to back to catch up after a short
/// delay; later than that, it skips them.
pub const BURST: u64 = 64;

/// The interval between frames for `pps` frames/s, in whole ns (at the
/// rates here, a few hundred ns: rounding moves the rate by < 0.2%).
pub fn interval_ns(pps: f64) -> anyhow::Result<u64> {
    if !(1.0..=1e9).contains(&pps) {
        bail!("cannot pace a flood at {pps} frames/s (1 to 1e9)");
    }
    Ok((1e9 / pps).round() as u64)
}

/// clang's defines for the program: out of `ifindex`, every `interval_ns`
/// (0: unpaced).
fn cflags(ifindex: u32, interval_ns: u64) -> Vec<String> {
    vec![format!("-DIFINDEX={ifindex}"), format!("-DINTERVAL_NS={interval_ns}ULL"), format!("-DBURST={BURST}ULL")]
}

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;
/// Program runs per bpf(2) call of an unpaced flood (and the first call of
/// a paced one, whose later calls are sized by `next_repeat`). Each call costs about 24 ms on this machine
/// whatever its size (the test run's setup and teardown: 25 ms for 64
/// frames, 248 ms for 262,144, measured), during which nothing is sent:
/// calls this long keep an unpaced flood on about 90% of the time; short
/// calls would make it bursts.
pub const REPEAT: u32 = 1 << 18;

/// `union bpf_attr` for BPF_OBJ_GET.
#[repr(C)]
#[derive(Default)]
struct ObjGetAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    path_fd: i32,
    _pad: u32,
}

/// `union bpf_attr` for BPF_PROG_TEST_RUN (the `test` member). The daemon
/// crate has the same mirror (`mitigator::dataplane::test_run_fd`); xtask
/// builds before setup installs the eBPF toolchain, so it cannot use it.
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

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<i64> {
    // SAFETY: attr is a #[repr(C)] prefix of union bpf_attr, valid for the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(r) }
}

/// What xdp-trafficgen says when asked for one second of flood out of
/// `dev` in `ns`: its last lines of output and whether it sent anything.
/// Kept in the report, since the bench uses our generator instead.
pub fn probe_xdp_trafficgen(from: &Host, dev: &str, dst_mac: &str, dst: Ipv4Addr) -> String {
    let out = from
        .command("timeout")
        .args(["-s", "INT", "2", "xdp-trafficgen", "udp", "-m", dst_mac, "-a", &dst.to_string(), "-p", "9", "-n", "1000", dev])
        .output();
    match out {
        Err(e) => format!("could not run xdp-trafficgen: {e}"),
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stderr).to_string() + &String::from_utf8_lossy(&o.stdout);
            let tail: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            let tail = tail[tail.len().saturating_sub(3)..].join(" / ");
            format!("exit status {}: {tail}", o.status.code().map_or("signal".into(), |c| c.to_string()))
        }
    }
}

/// A 60-byte UDP frame (64 on a wire with FCS, as trafgen's): built by hand,
/// since one fixed frame needs only the IPv4 header checksum (RFC 791) and
/// not a packet crate.
pub fn udp_frame(dst_mac: [u8; 6], src_mac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let payload = [0x41u8; 18];
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let ip_len = (20 + 8 + payload.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[8] = 64; // TTL
    ip[9] = 17; // UDP
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let sum = ip.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum::<u32>();
    let sum = (sum & 0xffff) + (sum >> 16);
    ip[10..12].copy_from_slice(&(!((sum & 0xffff) + (sum >> 16)) as u16).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&4444u16.to_be_bytes());
    f.extend_from_slice(&9u16.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]); // no UDP checksum (allowed for IPv4)
    f.extend_from_slice(&payload);
    f
}

/// The generator's program, compiled for one interface (and rate) and pinned.
pub struct Program {
    pin: std::path::PathBuf,
    paced: bool,
}

impl Program {
    /// Compiles and loads the program that sends out of `ifindex`, as fast
    /// as it can (`pps` None) or `pps` frames/s.
    pub fn load(work: &Path, bpffs: &PrivateBpffs, ifindex: u32, pps: Option<f64>) -> anyhow::Result<Program> {
        let interval = pps.map(interval_ns).transpose()?.unwrap_or(0);
        let name = if pps.is_some() { "xdp_flood_paced" } else { "xdp_flood" };
        let flags = cflags(ifindex, interval);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        Ok(Program { pin: progrun::load_c(work, bpffs, name, PROG_C, &flags)?, paced: pps.is_some() })
    }

    fn fd(&self) -> anyhow::Result<i32> {
        let path = CString::new(self.pin.as_os_str().as_encoded_bytes())?;
        let mut attr = ObjGetAttr { pathname: path.as_ptr() as u64, ..Default::default() };
        Ok(bpf(BPF_OBJ_GET, &mut attr).with_context(|| format!("BPF_OBJ_GET {}", self.pin.display()))? as i32)
    }
}

/// A running flood: a thread in the sender's namespace, pinned to one CPU,
/// looping live-frames test runs until stopped.
pub struct Flood {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<anyhow::Result<anyhow::Result<Calls>>>,
}

/// What the generator's bpf(2) calls did: program runs (a run that drops
/// sends nothing) and time spent in the calls.
#[derive(Clone, Copy, Debug, Default)]
pub struct Calls {
    pub calls: u64,
    pub runs: u64,
    pub secs: f64,
}

impl Calls {
    /// Program runs per second in the calls, the generator's busy-wait
    /// speed when paced.
    pub fn runs_per_s(&self) -> f64 {
        self.runs as f64 / self.secs.max(1e-9)
    }

    pub fn secs_per_call(&self) -> f64 {
        self.secs / self.calls.max(1) as f64
    }
}

impl Flood {
    /// Starts sending `frame` from `from` (whose namespace holds the
    /// interface the program redirects to) on CPU `cpu`. Fails at once if
    /// the kernel refuses the first run.
    pub fn start(prog: &Program, from: &Host, frame: Vec<u8>, cpu: usize) -> anyhow::Result<Flood> {
        let fd = prog.fd()?;
        let paced = prog.paced;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let s = stop.clone();
        let thread = from.spawn(move || send_loop(fd, &frame, cpu, paced, &s, tx));
        match rx.recv() {
            Ok(Ok(())) => Ok(Flood { stop, thread }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => bail!("the flood thread ended before its first run"),
        }
    }

    /// Stops the flood (after the call under way); returns what its calls did.
    pub fn stop(self) -> anyhow::Result<Calls> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().map_err(|_| anyhow::anyhow!("flood thread panicked"))??
    }
}

/// How long a paced call should last. A paced program drops most runs, and
/// those count toward `repeat` too, so a fixed `repeat` would make short
/// calls, each followed by the 24 ms gap; at 1 s the gaps take about 2.5%
/// of the time, and stopping waits for at most one call.
const PACED_CALL_S: f64 = 1.0;

/// The `repeat` for the next paced call, so that it lasts about
/// PACED_CALL_S given that the last, `repeat` runs, took `secs` (the fixed
/// cost included, so this converges on calls of PACED_CALL_S).
pub fn next_repeat(repeat: u32, secs: f64) -> u32 {
    let want = f64::from(repeat) * PACED_CALL_S / secs.max(1e-3);
    want.clamp(f64::from(REPEAT), f64::from(u32::MAX / 2)) as u32
}

fn pin_to(cpu: usize) -> anyhow::Result<()> {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET stays within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error()).context("sched_setaffinity");
        }
    }
    Ok(())
}

fn send_loop(fd: i32, frame: &[u8], cpu: usize, paced: bool, stop: &AtomicBool, started: Sender<anyhow::Result<()>>) -> anyhow::Result<Calls> {
    let mut done = Calls::default();
    let mut repeat = REPEAT;
    let mut run = || -> anyhow::Result<()> {
        let mut attr = TestRunAttr {
            prog_fd: fd as u32,
            data_size_in: frame.len() as u32,
            data_in: frame.as_ptr() as u64,
            repeat,
            flags: BPF_F_TEST_XDP_LIVE_FRAMES,
            ..Default::default()
        };
        let t = Instant::now();
        bpf(BPF_PROG_TEST_RUN, &mut attr).context("BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES")?;
        let secs = t.elapsed().as_secs_f64();
        done = Calls { calls: done.calls + 1, runs: done.runs + u64::from(repeat), secs: done.secs + secs };
        if paced {
            repeat = next_repeat(repeat, secs);
        }
        Ok(())
    };
    let first = pin_to(cpu).and_then(|_| run());
    let ok = first.is_ok();
    let _ = started.send(first);
    let mut result = Ok(());
    while ok && result.is_ok() && !stop.load(Ordering::Relaxed) {
        result = run();
    }
    // SAFETY: fd came from BPF_OBJ_GET and is ours alone.
    unsafe { libc::close(fd) };
    result.map(|_| done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_the_rounded_period_and_silly_rates_are_refused() {
        assert_eq!(interval_ns(1_000_000.0).unwrap(), 1000);
        assert_eq!(interval_ns(1_660_000.0).unwrap(), 602, "602.4 ns rounds down");
        assert_eq!(interval_ns(3.0).unwrap(), 333_333_333);
        for bad in [0.0, -5.0, 0.5, f64::NAN, f64::INFINITY, 2e9] {
            assert!(interval_ns(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defines_are_the_ones_the_program_uses() {
        let f = cflags(7, 602);
        assert_eq!(f, ["-DIFINDEX=7", "-DINTERVAL_NS=602ULL", &format!("-DBURST={BURST}ULL")]);
        for name in ["IFINDEX", "INTERVAL_NS", "BURST"] {
            assert!(PROG_C.contains(name), "{name}");
        }
        // Unpaced: the pacing block is compiled out.
        assert_eq!(cflags(7, 0)[1], "-DINTERVAL_NS=0ULL");
        assert!(PROG_C.contains("#if INTERVAL_NS"));
    }

    #[test]
    fn paced_calls_are_sized_to_last_about_a_second() {
        // 262,144 runs took 50 ms: 20× that lasts about 1 s.
        assert_eq!(next_repeat(REPEAT, 0.05), REPEAT * 20);
        // Never shorter than the unpaced call, never past u32 (a stalled clock).
        assert_eq!(next_repeat(REPEAT, 10.0), REPEAT);
        assert_eq!(next_repeat(u32::MAX / 2, 0.0), u32::MAX / 2);
        // A call of the right length keeps its size.
        assert_eq!(next_repeat(5_000_000, PACED_CALL_S), 5_000_000);
    }

    #[test]
    fn frame_is_64_bytes_on_the_wire_with_a_valid_ipv4_header() {
        let f = udp_frame([2; 6], [4; 6], Ipv4Addr::new(192, 0, 2, 66), Ipv4Addr::new(192, 0, 2, 10));
        assert_eq!(f.len() + 4, 64, "60 bytes + FCS, as trafgen's frame");
        // A header with its checksum sums to 0xffff in one's complement (RFC 1071).
        let mut sum: u32 = f[14..34].chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff, "IPv4 header checksum");
        assert_eq!(u16::from_be_bytes([f[16], f[17]]) as usize, f.len() - 14, "IPv4 total length");
        assert_eq!(u16::from_be_bytes([f[38], f[39]]) as usize, f.len() - 34, "UDP length");
        assert_eq!(&f[26..34], &[192, 0, 2, 66, 192, 0, 2, 10]);
    }
}
