//! Attaching the program to interfaces through bpf_links, pinned so that
//! they survive the daemon.

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

/// Requested attach mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Driver (native) XDP; fails if the driver has no XDP support.
    Native,
    /// Generic (skb) XDP: works everywhere, slower.
    Generic,
    /// Native, falling back to generic.
    Auto,
}

/// What `attach` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachedMode {
    Native,
    Generic,
    /// A link pinned by an earlier run was adopted and switched to this
    /// program; it keeps the mode it was created with (the kernel does not
    /// report an XDP link's mode through the link).
    Adopted,
}

/// An attachment we hold.
pub(super) struct Attached {
    pub ifindex: u32,
    /// Our reference to the link. When pinned, the pin keeps the link (and
    /// so the attachment) alive after this fd is closed; unpinned, closing
    /// it detaches.
    #[allow(dead_code, reason = "held for its fd: closing it releases the link")]
    link: FdLink,
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

/// Attaches (or adopts the pinned link) and pins the new link.
pub(super) fn attach(
    ebpf: &mut Ebpf,
    pin_dir: Option<&Path>,
    iface: &str,
    mode: AttachMode,
) -> Result<(Attached, AttachedMode)> {
    let ifindex = ifindex(iface)?;
    let prog = program(ebpf)?;

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
            return Ok((Attached { ifindex, link }, AttachedMode::Adopted));
        }
    }

    let tries: &[(XdpMode, AttachedMode)] = match mode {
        AttachMode::Native => &[(XdpMode::Driver, AttachedMode::Native)],
        AttachMode::Generic => &[(XdpMode::Skb, AttachedMode::Generic)],
        AttachMode::Auto => &[(XdpMode::Driver, AttachedMode::Native), (XdpMode::Skb, AttachedMode::Generic)],
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
                return Ok((Attached { ifindex, link }, *am));
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(anyhow::Error::from(last_err.unwrap()).context(format!("attaching XDP to {iface} ({mode:?})")))
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
