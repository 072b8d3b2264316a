//! Loading the object, pinning and adopting maps.

use std::{
    fs,
    mem::size_of,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _, Result};
use aya::{
    maps::{MapData, MapType},
    programs::Xdp,
    Ebpf, EbpfLoader,
};
use mitigator_common::{maps as m, *};

/// The XDP object built by build.rs (aya-build).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/mitigator"));

/// Type, key size, value size and max entries of a map.
type Layout = (MapType, u32, u32, u32);

/// The layout of every map, as the program declares it. A pinned map is
/// adopted only if it matches: a pinned map left by a build with another
/// layout would otherwise be silently reused (aya does not compare) and
/// misread. The type is compared too: a map that changed kind but kept its
/// sizes (a hash that became an array) would pass the sizes alone.
fn expected_layout(name: &str) -> Option<Layout> {
    use MapType::{Array, Hash, LpmTrie, LruHash, PerCpuArray};
    let lpm4 = (4 + size_of::<LpmDataV4>()) as u32;
    let lpm6 = (4 + size_of::<LpmDataV6>()) as u32;
    let host4 = size_of::<HostKeyV4>() as u32;
    let host6 = size_of::<HostKeyV6>() as u32;
    Some(match name {
        m::CONFIG => (Array, 4, 8, CONFIG_LEN),
        m::HOST_V4 => (Hash, host4, 4, 2 * MAX_HOST_ROUTES),
        m::HOST_V6 => (Hash, host6, 4, 2 * MAX_HOST_ROUTES),
        m::LPM_V4 => (LpmTrie, lpm4, 4, 2 * MAX_PREFIXES),
        m::LPM_V6 => (LpmTrie, lpm6, 4, 2 * MAX_PREFIXES),
        m::ACCEPT_V4 | m::DROP_V4 => (LpmTrie, lpm4, 4, 2 * MAX_LIST_ENTRIES),
        m::ACCEPT_V6 | m::DROP_V6 => (LpmTrie, lpm6, 4, 2 * MAX_LIST_ENTRIES),
        m::ACCEPT_HOST_V4 | m::DROP_HOST_V4 => (Hash, host4, 4, 2 * MAX_LIST_ENTRIES),
        m::ACCEPT_HOST_V6 | m::DROP_HOST_V6 => (Hash, host6, 4, 2 * MAX_LIST_ENTRIES),
        m::POLICIES => (Array, 4, size_of::<Policy>() as u32, 2 * MAX_TARGETS),
        m::REFLECT_PORTS => (Array, 4, 8, REFLECT_WORDS),
        m::RATE_STATE => (LruHash, size_of::<RateKey>() as u32, size_of::<RateState>() as u32, MAX_RATE_STATES),
        m::TARGET_STATS => (PerCpuArray, 4, size_of::<TargetStats>() as u32, MAX_TARGETS),
        m::IFACE_STATS => (PerCpuArray, 4, size_of::<IfaceStats>() as u32, MAX_IFACES),
        m::IFACE_SLOTS => (Array, 4, size_of::<IfaceSlot>() as u32, IFACE_SLOT_TABLE),
        m::ACL_HDR => (Array, 4, size_of::<AclHeader>() as u32, 2),
        m::ACL_IDX => (Array, 4, 4, 2 * ACL_IDX_LEN_TOTAL),
        m::ACL_PFX_V4 => (LpmTrie, (4 + size_of::<AclPfxV4>()) as u32, 4, MAX_ACL_PREFIXES),
        m::ACL_PFX_V6 => (LpmTrie, (4 + size_of::<AclPfxV6>()) as u32, 4, MAX_ACL_PREFIXES),
        m::ACL_VECS => (Hash, size_of::<AclVecKey>() as u32, size_of::<AclBits>() as u32, 2 * MAX_ACL_VECS),
        m::ACL_RULES => (Array, 4, size_of::<AclRule>() as u32, 2 * MAX_ACL_ENTRIES),
        m::ACL_RATE => (Array, 4, size_of::<AclBucket>() as u32, ACL_SLOTS),
        m::ACL_STATS => (PerCpuArray, 4, size_of::<Counter>() as u32, ACL_SLOTS),
        m::GUARD => (Array, 4, size_of::<GuardEntry>() as u32, MAX_GUARD),
        m::GUARD_RATE => (Array, 4, size_of::<AclBucket>() as u32, MAX_GUARD),
        m::GUARD_STATS => (PerCpuArray, 4, size_of::<Counter>() as u32, MAX_GUARD),
        m::SYN_PROXY => (Array, 4, size_of::<SynProxyConfig>() as u32, 1),
        m::AGG_RATE => (Array, 4, size_of::<AggBucket>() as u32, MAX_TARGETS),
        _ => return None,
    })
}

fn pin_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// Checks that every map already pinned under `dir` has our layout, and
/// that either all or none of our maps are pinned (a build with fewer maps
/// left the others out: its rules would be misread). Returns whether any
/// map was pinned (adoption).
fn check_pinned(dir: &Path) -> Result<bool> {
    let mut missing = vec![];
    for name in m::ALL {
        let p = pin_path(dir, name);
        if !p.exists() {
            missing.push(*name);
            continue;
        }
        let map = MapData::from_pin(&p).with_context(|| format!("opening pinned map {}", p.display()))?;
        let info = map.info()?;
        let got = (info.map_type()?, info.key_size(), info.value_size(), info.max_entries());
        let want = expected_layout(name).expect("every map has a layout");
        if got != want {
            bail!(
                "pinned map {} has layout (type {:?}, key {}, value {}, entries {}), this build expects \
                 (type {:?}, key {}, value {}, entries {}): remove the pins (`uninstall`) before upgrading",
                p.display(), got.0, got.1, got.2, got.3, want.0, want.1, want.2, want.3
            );
        }
    }
    if !missing.is_empty() && missing.len() < m::ALL.len() {
        bail!(
            "maps pinned under {} by another build lack {}: remove the pins (`uninstall`) before upgrading",
            dir.display(),
            missing.join(", ")
        );
    }
    Ok(missing.is_empty())
}

/// Loads the object and the program into the kernel. With `pin_dir`, each
/// map is reused from `pin_dir/<name>` or created and pinned there.
pub(super) fn load(pin_dir: Option<&Path>) -> Result<(Ebpf, bool)> {
    if OBJECT.is_empty() {
        bail!("the XDP object is empty: this binary was built with AYA_BUILD_SKIP");
    }
    let mut loader = EbpfLoader::new();
    let mut adopted = false;
    if let Some(dir) = pin_dir {
        ensure_bpffs(dir)?;
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        adopted = check_pinned(dir)?;
        for name in m::ALL {
            loader.map_pin_path(*name, pin_path(dir, name));
        }
    }
    let mut ebpf = loader.load(OBJECT).context("loading the XDP object (maps)")?;
    let prog: &mut Xdp = ebpf
        .program_mut(PROGRAM_NAME)
        .context("program missing from the object")?
        .try_into()?;
    // The SYN proxy's helpers (bpf_tcp_raw_gen_syncookie_ipv4/6 and
    // bpf_tcp_raw_check_syncookie_ipv4/6) came with Linux 6.0.
    prog.load().context("loading the XDP program (verifier; Linux 6.0 or later is needed)")?;
    Ok((ebpf, adopted))
}

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// `p` is on a bpf filesystem.
pub(crate) fn is_bpffs(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else { return false };
    // SAFETY: c is NUL-terminated, st is written by the kernel.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC }
}

/// Pins need a bpffs. Systemd mounts one at /sys/fs/bpf; minimal hosts
/// (containers, VMs booted by virtme-ng) may not, so mount it there if the
/// pin directory is below it, as `bpftool` and libbpf users expect.
fn ensure_bpffs(dir: &Path) -> Result<()> {
    let root = Path::new("/sys/fs/bpf");
    if dir.starts_with(root) && root.is_dir() && !is_bpffs(root) {
        let src = c"bpf";
        let target = c"/sys/fs/bpf";
        // SAFETY: constant NUL-terminated strings, no data argument.
        let rc = unsafe { libc::mount(src.as_ptr(), target.as_ptr(), src.as_ptr(), 0, std::ptr::null()) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).context("mounting bpffs on /sys/fs/bpf");
        }
    }
    // The nearest existing ancestor must be on bpffs.
    let mut a = dir;
    while !a.exists() {
        a = a.parent().unwrap_or(Path::new("/"));
    }
    if !is_bpffs(a) {
        bail!("{} is not on a bpf filesystem (mount -t bpf bpf <dir>)", dir.display());
    }
    Ok(())
}

/// Removes the map pins and, if then empty, the directory.
pub(super) fn remove_map_pins(dir: &Path) -> Result<()> {
    for name in m::ALL {
        let p = pin_path(dir, name);
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", p.display())),
        }
    }
    let _ = fs::remove_dir(dir.join("links"));
    let _ = fs::remove_dir(dir);
    Ok(())
}
