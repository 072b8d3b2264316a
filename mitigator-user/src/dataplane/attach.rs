//! Attaching the program to interfaces through bpf_links, pinned so that
//! they survive the daemon.
//!
//! `AttachMode::Auto` chooses the mode per driver (read with the
//! ETHTOOL_GDRVINFO ioctl, which virtual devices answer too): generic on
//! the drivers listed in `GENERIC_DRIVERS`, native (falling back to
//! generic) on every other. Every attachment carries the mode it runs in
//! and why (`Attachment`), which `mitigator status` shows.

use std::{ffi::CString, fs, path::Path};

use anyhow::{bail, Context as _, Result};
use aya::{
    programs::{
        links::{FdLink, PinnedLink},
        Xdp, XdpMode,
    },
    Ebpf,
};
use mitigator_common::PROGRAM_NAME;
use serde::{Deserialize, Serialize};

/// Requested attach mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Driver (native) XDP; fails if the driver has no XDP support.
    Native,
    /// Generic (skb) XDP: works everywhere, slower.
    Generic,
    /// Per driver: generic on the drivers of `GENERIC_DRIVERS`, native
    /// (falling back to generic) on the others.
    Auto,
}

/// What `attach` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachedMode {
    Native,
    Generic,
    /// A link pinned by an earlier run was adopted and switched to this
    /// program; it keeps the mode it was created with (the kernel does not
    /// report an XDP link's mode through the link; `Attachment::mode` has
    /// what the interface reports).
    Adopted,
}

/// Drivers on which `Auto` attaches in generic mode, with the reason shown.
///
/// veth: with a native program the peer's `veth_xmit` no longer hands the
/// skb to the receiving CPU's backlog (`__netif_rx`, processed on the
/// sender's CPU, which throttles the sender); it produces into a ptr_ring
/// of 256 entries per queue that one NAPI instance drains. Under a flood
/// that NAPI falls behind (on the other CPU, or as a thread, the sender runs
/// 2-3x faster), the ring overflows and legitimate packets sharing it are
/// dropped: counted only as TX dropped on the peer (`ip -s link`), not by
/// the veth or by the program. XDP_TX from a native program also fails
/// unless the peer has an XDP program. Generic XDP runs after the backlog,
/// as an unfiltered host receives: no ring, and XDP_TX works.
///
/// Not listed, after checking: tun/tap (its native XDP runs in the writer's
/// `tun_get_user`, with no ring of its own, and frames it cannot build are
/// run through generic XDP there anyway), virtio_net and the other
/// paravirtual NICs of a VM (real queues fed by the host: native is their
/// fast path), bonding (native on the slaves' drivers). Drivers with no
/// native XDP at all (bridge, macvlan, dummy...) are refused by the kernel
/// and fall back to generic.
const GENERIC_DRIVERS: &[(&str, &str)] = &[(
    "veth",
    "native XDP on veth queues packets in a 256-entry ring drained by one NAPI; \
     under a flood it drops legitimate packets (TX dropped on the peer), and XDP_TX needs a program on the peer",
)];

/// The mode an interface runs in and why: what `mitigator status` shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// `native` or `generic` (what the kernel reports for the interface;
    /// `unknown` if it could not be read for an adopted link).
    pub mode: String,
    /// A link pinned by an earlier run was adopted (its mode is the one it
    /// was created with).
    pub adopted: bool,
    /// The driver, as `ethtool -i` names it (absent if it cannot be read).
    pub driver: Option<String>,
    /// Why it runs in that mode.
    pub reason: String,
    /// It runs native on a driver where `auto` chooses generic (forced by
    /// `attach_mode = "native"`, or an adopted link): the daemon warns.
    #[serde(default)]
    pub against_advice: bool,
}

/// An attachment we hold.
pub(super) struct Attached {
    pub ifindex: u32,
    /// Our reference to the link. When pinned, the pin keeps the link (and
    /// so the attachment) alive after this fd is closed; unpinned, closing
    /// it detaches.
    #[allow(dead_code, reason = "held for its fd: closing it releases the link")]
    link: FdLink,
    /// The mode it runs in and why.
    pub how: Attachment,
}

fn ifindex(iface: &str) -> Result<u32> {
    let c = CString::new(iface).context("interface name")?;
    // SAFETY: c is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        bail!("no interface named {iface}");
    }
    Ok(idx)
}

fn link_pin(dir: &Path, iface: &str) -> std::path::PathBuf {
    dir.join("links").join(iface)
}

fn program(ebpf: &mut Ebpf) -> Result<&mut Xdp> {
    Ok(ebpf.program_mut(PROGRAM_NAME).context("program missing")?.try_into()?)
}

/// The driver of `iface` as `ethtool -i` names it, through the
/// ETHTOOL_GDRVINFO ioctl (virtual devices such as veth have no
/// /sys/class/net/IFACE/device, but they answer this).
pub fn driver_name(iface: &str) -> Result<String> {
    // <linux/ethtool.h>, <linux/sockios.h>; the libc crate does not have them.
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    const ETHTOOL_GDRVINFO: u32 = 0x3;
    #[repr(C)]
    struct EthtoolDrvinfo {
        cmd: u32,
        driver: [u8; 32],
        version: [u8; 32],
        fw_version: [u8; 32],
        bus_info: [u8; 32],
        erom_version: [u8; 32],
        reserved2: [u8; 12],
        n_priv_flags: u32,
        n_stats: u32,
        testinfo_len: u32,
        eedump_len: u32,
        regdump_len: u32,
    }
    let name = iface.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        bail!("bad interface name {iface:?}");
    }
    // SAFETY: all-zero is a valid value of these plain C structs.
    let mut info: EthtoolDrvinfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    // SAFETY: as above.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = (&mut info as *mut EthtoolDrvinfo).cast();
    // SAFETY: a socket this function owns and closes; the ioctl writes at
    // most size_of::<EthtoolDrvinfo>() bytes into `info`, which outlives it.
    let rc = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("socket for SIOCETHTOOL");
        }
        let rc = libc::ioctl(fd, SIOCETHTOOL as _, &mut ifr);
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if rc < 0 { Err(err) } else { Ok(()) }
    };
    rc.with_context(|| format!("ETHTOOL_GDRVINFO on {iface}"))?;
    let end = info.driver.iter().position(|b| *b == 0).unwrap_or(info.driver.len());
    let driver = String::from_utf8_lossy(&info.driver[..end]).into_owned();
    if driver.is_empty() {
        bail!("{iface} reports no driver name");
    }
    Ok(driver)
}

/// Why `Auto` runs generic on this driver, if it does.
pub fn generic_by_default(driver: &str) -> Option<&'static str> {
    GENERIC_DRIVERS.iter().find(|(d, _)| *d == driver).map(|(_, why)| *why)
}

/// The XDP mode the kernel reports for `ifindex` (rtnetlink IFLA_XDP,
/// IFLA_XDP_ATTACHED): `native`, `generic`, `offload`, or `None` when
/// nothing is attached or it cannot be read.
pub fn kernel_xdp_mode(ifindex: u32) -> Option<&'static str> {
    match xdp_attached(ifindex) {
        Ok(1) => Some("native"),
        Ok(2) => Some("generic"),
        Ok(3) => Some("offload"),
        _ => None,
    }
}

/// IFLA_XDP_ATTACHED of `ifindex` (0 none, 1 driver, 2 skb, 3 hw, 4 several).
fn xdp_attached(ifindex: u32) -> Result<u8> {
    // <linux/if_link.h>
    const IFLA_XDP: u16 = 43;
    const IFLA_XDP_ATTACHED: u16 = 2;
    const NLA_TYPE_MASK: u16 = 0x3fff;
    #[repr(C)]
    struct Req {
        nh: libc::nlmsghdr,
        ifi: libc::ifinfomsg,
    }
    // SAFETY: all-zero is a valid value of these plain C structs.
    let mut req: Req = unsafe { std::mem::zeroed() };
    req.nh.nlmsg_len = std::mem::size_of::<Req>() as u32;
    req.nh.nlmsg_type = libc::RTM_GETLINK;
    req.nh.nlmsg_flags = libc::NLM_F_REQUEST as u16;
    req.nh.nlmsg_seq = 1;
    req.ifi.ifi_family = libc::AF_UNSPEC as u8;
    req.ifi.ifi_index = ifindex as i32;
    let mut buf = vec![0u8; 65536];
    // SAFETY: a socket this function owns and closes; send reads the whole
    // `req`, recv writes at most buf.len() bytes into `buf`.
    let n = unsafe {
        let fd = libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE);
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("netlink socket");
        }
        let sent = libc::send(fd, (&req as *const Req).cast(), std::mem::size_of::<Req>(), 0);
        let n = if sent < 0 { -1 } else { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if n < 0 {
            return Err(err).context("RTM_GETLINK");
        }
        n as usize
    };
    let buf = &buf[..n];
    let u16_at = |o: usize| u16::from_ne_bytes([buf[o], buf[o + 1]]);
    let hdr = std::mem::size_of::<libc::nlmsghdr>();
    if n < hdr || u16_at(4) != libc::RTM_NEWLINK {
        bail!("RTM_GETLINK: no link message in the answer");
    }
    let msg_len = (u32::from_ne_bytes(buf[0..4].try_into().unwrap()) as usize).min(n);
    let align = |x: usize| (x + 3) & !3;
    // Walks attributes in buf[from..to]; returns the payload range of `want`.
    let find = |from: usize, to: usize, want: u16| -> Option<(usize, usize)> {
        let mut o = from;
        while o + 4 <= to {
            let len = u16_at(o) as usize;
            if len < 4 || o + len > to {
                return None;
            }
            if u16_at(o + 2) & NLA_TYPE_MASK == want {
                return Some((o + 4, o + len));
            }
            o += align(len);
        }
        None
    };
    let attrs = hdr + align(std::mem::size_of::<libc::ifinfomsg>());
    let Some((xs, xe)) = find(attrs, msg_len, IFLA_XDP) else { return Ok(0) };
    let Some((a, e)) = find(xs, xe, IFLA_XDP_ATTACHED) else { return Ok(0) };
    if e <= a {
        bail!("IFLA_XDP_ATTACHED without a value");
    }
    Ok(buf[a])
}

/// Attaches (or adopts the pinned link) and pins the new link.
pub(super) fn attach(
    ebpf: &mut Ebpf,
    pin_dir: Option<&Path>,
    iface: &str,
    mode: AttachMode,
) -> Result<(Attached, AttachedMode)> {
    let ifindex = ifindex(iface)?;
    let driver = driver_name(iface);
    let prog = program(ebpf)?;
    let drv = driver.as_deref().ok();

    if let Some(dir) = pin_dir {
        let pin = link_pin(dir, iface);
        if pin.exists() {
            // Adopt: update the existing link to this program. The swap is
            // atomic (bpf_link_update): no packet goes unfiltered.
            let pinned = PinnedLink::from_pin(&pin)
                .with_context(|| format!("opening pinned link {}", pin.display()))?;
            let fd: FdLink = pinned.into();
            let xdp_link = aya::programs::xdp::XdpLink::try_from(fd)
                .with_context(|| format!("{} is not an XDP link", pin.display()))?;
            let id = prog.attach_to_link(xdp_link).context("bpf_link_update")?;
            let link: FdLink = prog.take_link(id)?.try_into().context("XDP link is not a bpf_link")?;
            let how = adopted(kernel_xdp_mode(ifindex), drv, mode);
            return Ok((Attached { ifindex, link, how }, AttachedMode::Adopted));
        }
    }

    let generic_why = drv.and_then(generic_by_default);
    let tries: &[(XdpMode, AttachedMode)] = match (mode, generic_why) {
        (AttachMode::Native, _) => &[(XdpMode::Driver, AttachedMode::Native)],
        (AttachMode::Generic, _) | (AttachMode::Auto, Some(_)) => &[(XdpMode::Skb, AttachedMode::Generic)],
        (AttachMode::Auto, None) => &[(XdpMode::Driver, AttachedMode::Native), (XdpMode::Skb, AttachedMode::Generic)],
    };
    let mut last_err = None;
    for (xm, am) in tries {
        match prog.attach_to_if_index(ifindex, *xm) {
            Ok(id) => {
                // aya falls back to netlink when bpf_link_create is refused;
                // such an attachment cannot be pinned, which is an error for
                // us (a restart would leave the host unprotected or double
                // attached).
                let link: FdLink = prog
                    .take_link(id)?
                    .try_into()
                    .context("kernel attached XDP through netlink, not a bpf_link")?;
                let link = match pin_dir {
                    Some(dir) => {
                        let pin = link_pin(dir, iface);
                        fs::create_dir_all(pin.parent().unwrap())?;
                        let pinned = link.pin(&pin).with_context(|| format!("pinning {}", pin.display()))?;
                        pinned.into()
                    }
                    None => link,
                };
                let refused = last_err.as_ref().map(error_text);
                let how = chosen(*am, &driver, mode, generic_why, refused);
                return Ok((Attached { ifindex, link, how }, *am));
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(anyhow::Error::from(last_err.unwrap()).context(format!("attaching XDP to {iface} ({mode:?})")))
}

/// The text of an attach error with its causes, for the reason of a fallback.
fn error_text(e: &aya::programs::ProgramError) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// The reason of a fresh attachment in mode `am`.
fn chosen(
    am: AttachedMode,
    driver: &Result<String>,
    mode: AttachMode,
    generic_why: Option<&str>,
    native_refused: Option<String>,
) -> Attachment {
    let drv = driver.as_ref().ok().cloned();
    let drv_text = match driver {
        Ok(d) => format!("driver {d}"),
        Err(e) => format!("driver unknown ({e:#})"),
    };
    let (mode_s, reason) = match (am, mode) {
        (AttachedMode::Generic, AttachMode::Auto) if native_refused.is_some() => {
            ("generic", format!("generic: native refused ({drv_text}): {}", native_refused.unwrap()))
        }
        (AttachedMode::Generic, AttachMode::Auto) => (
            "generic",
            format!("generic: {} driver ({})", drv.as_deref().unwrap_or("?"), generic_why.unwrap_or("listed as generic")),
        ),
        (AttachedMode::Native, AttachMode::Auto) => match driver {
            Ok(d) => ("native", format!("native: driver {d} supports it")),
            Err(e) => ("native", format!("native: accepted by the driver (its name unknown: {e:#})")),
        },
        (AttachedMode::Native, _) => match generic_why {
            Some(why) => (
                "native",
                format!(
                    "native: set by dataplane.attach_mode (auto would choose generic for the {} driver: {why})",
                    drv.as_deref().unwrap_or("?")
                ),
            ),
            None => ("native", format!("native: set by dataplane.attach_mode ({drv_text})")),
        },
        (_, _) => ("generic", format!("generic: set by dataplane.attach_mode ({drv_text})")),
    };
    let against_advice = am == AttachedMode::Native && generic_why.is_some();
    Attachment { mode: mode_s.into(), adopted: false, driver: drv, reason, against_advice }
}

/// The reason of an adopted link, which keeps the mode it was created with.
fn adopted(kernel_mode: Option<&str>, driver: Option<&str>, mode: AttachMode) -> Attachment {
    let m = kernel_mode.unwrap_or("unknown");
    let mut reason = format!("adopted: pinned link of an earlier run, running {m} (a link keeps the mode it was created with)");
    let wanted = match (mode, driver.and_then(generic_by_default)) {
        (AttachMode::Native, _) => Some("native"),
        (AttachMode::Generic, _) | (AttachMode::Auto, Some(_)) => Some("generic"),
        (AttachMode::Auto, None) => None,
    };
    if let (Some(w), Some(k)) = (wanted, kernel_mode) {
        if w != k {
            reason.push_str(&format!(
                "; dataplane.attach_mode now chooses {w}{}: `mitigator stop`, then start the daemon to re-attach",
                driver.map(|d| format!(" for the {d} driver")).unwrap_or_default()
            ));
        }
    }
    let against_advice = kernel_mode == Some("native") && driver.and_then(generic_by_default).is_some();
    Attachment { mode: m.into(), adopted: true, driver: driver.map(str::to_string), reason, against_advice }
}

impl super::Dataplane {
    /// The mode `iface` runs in and why, if this `Dataplane` attached it.
    pub fn attachment(&self, iface: &str) -> Option<&Attachment> {
        self.links.get(iface).map(|a| &a.how)
    }

    /// The same, by interface index (for the status of counter slots).
    pub fn attachment_by_ifindex(&self, ifindex: u32) -> Option<&Attachment> {
        self.links.values().find(|a| a.ifindex == ifindex).map(|a| &a.how)
    }
}

/// Detaches: removes the pin, then closes our fd, which releases the link.
pub(super) fn detach(_ebpf: &mut Ebpf, pin_dir: Option<&Path>, iface: &str, att: Option<Attached>) -> Result<()> {
    let pinned = match pin_dir {
        Some(dir) => {
            let pin = link_pin(dir, iface);
            match fs::remove_file(&pin) {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(e) => return Err(e).with_context(|| format!("removing {}", pin.display())),
            }
        }
        None => false,
    };
    if att.is_none() && !pinned {
        bail!("not attached to {iface}");
    }
    drop(att);
    Ok(())
}

/// Removes link pins left under `dir/links` (by this or an earlier run).
pub(super) fn remove_all_link_pins(dir: &Path) -> Result<()> {
    let links = dir.join("links");
    let rd = match fs::read_dir(&links) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", links.display())),
    };
    for e in rd {
        let p = e?.path();
        fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
    }
    let _ = fs::remove_dir(&links);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_generic_on_veth_only() {
        assert!(generic_by_default("veth").is_some_and(|w| w.contains("256-entry ring")));
        for d in ["ixgbe", "i40e", "mlx5_core", "virtio_net", "tun", "bonding", "bridge"] {
            assert_eq!(generic_by_default(d), None, "{d}");
        }
    }

    #[test]
    fn reasons_say_mode_and_why() {
        let veth: Result<String> = Ok("veth".into());
        let ixgbe: Result<String> = Ok("ixgbe".into());
        let why = generic_by_default("veth");
        let a = chosen(AttachedMode::Generic, &veth, AttachMode::Auto, why, None);
        assert_eq!((a.mode.as_str(), a.driver.as_deref(), a.against_advice), ("generic", Some("veth"), false));
        assert!(a.reason.starts_with("generic: veth driver (native XDP on veth"), "{}", a.reason);
        let a = chosen(AttachedMode::Native, &ixgbe, AttachMode::Auto, None, None);
        assert_eq!(a.reason, "native: driver ixgbe supports it");
        let a = chosen(AttachedMode::Generic, &ixgbe, AttachMode::Auto, None, Some("EOPNOTSUPP".into()));
        assert_eq!(a.reason, "generic: native refused (driver ixgbe): EOPNOTSUPP");
        let a = chosen(AttachedMode::Native, &veth, AttachMode::Native, why, None);
        assert!(a.against_advice && a.reason.starts_with("native: set by dataplane.attach_mode (auto would choose generic"), "{}", a.reason);
        let a = chosen(AttachedMode::Generic, &ixgbe, AttachMode::Generic, None, None);
        assert_eq!(a.reason, "generic: set by dataplane.attach_mode (driver ixgbe)");
        let unknown: Result<String> = Err(anyhow::anyhow!("no such device"));
        let a = chosen(AttachedMode::Native, &unknown, AttachMode::Auto, None, None);
        assert_eq!((a.reason.as_str(), a.driver), ("native: accepted by the driver (its name unknown: no such device)", None));
    }

    #[test]
    fn adopted_native_veth_link_is_flagged() {
        let a = adopted(Some("native"), Some("veth"), AttachMode::Auto);
        assert!(a.adopted && a.against_advice && a.mode == "native");
        assert!(a.reason.contains("now chooses generic for the veth driver"), "{}", a.reason);
        let a = adopted(Some("generic"), Some("veth"), AttachMode::Auto);
        assert!(!a.against_advice && !a.reason.contains("now chooses"), "{}", a.reason);
        let a = adopted(Some("native"), Some("ixgbe"), AttachMode::Auto);
        assert!(!a.against_advice && !a.reason.contains("now chooses"), "{}", a.reason);
    }

    /// Needs no privilege: every process can read the driver name.
    #[test]
    fn driver_name_of_loopback_or_error() {
        // lo has no driver name; the call must fail cleanly, not panic.
        let _ = driver_name("lo");
        assert!(driver_name("").is_err());
        assert!(driver_name("a-name-far-too-long-for-ifnamsiz").is_err());
    }
}
