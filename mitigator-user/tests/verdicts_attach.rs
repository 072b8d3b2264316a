//! Attaching to a real interface: a veth pair in a network namespace that
//! the test thread creates for itself (network namespaces are per thread,
//! and the `ip` children inherit it). Checks pinning of the link, adoption
//! of the pinned link by a second `Dataplane`, detach and uninstall.

use std::process::Command;

use mitigator::dataplane::{AttachMode, AttachedMode, Dataplane, DataplaneOptions};

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("run ip");
    assert!(st.success(), "ip {args:?}");
}

/// Number of XDP programs attached to `iface` (as `ip link` shows them).
fn xdp_attached(iface: &str) -> bool {
    let out = Command::new("ip").args(["-d", "link", "show", iface]).output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    s.contains("prog/xdp")
}

#[test]
fn attach_pin_adopt_detach_uninstall() {
    // SAFETY: plain syscall; only this thread changes namespace.
    assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare(CLONE_NEWNET): root needed");
    ip(&["link", "add", "mtg0", "type", "veth", "peer", "name", "mtg1"]);
    ip(&["link", "set", "mtg0", "up"]);
    ip(&["link", "set", "mtg1", "up"]);

    let dir = std::path::PathBuf::from(format!("/sys/fs/bpf/mitigator-attach-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = DataplaneOptions { pin_dir: Some(dir.clone()) };
    {
        let mut d = Dataplane::open(&opts).unwrap();
        assert_eq!(d.attach("mtg0", AttachMode::Auto).unwrap(), AttachedMode::Native);
        assert!(dir.join("links/mtg0").exists());
        assert!(xdp_attached("mtg0"));
        // The interface got its own counters entry.
        let c = std::ffi::CString::new("mtg0").unwrap();
        let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
        assert!(d.iface_stats().unwrap().iter().any(|(k, _)| *k == ifindex));
        assert!(d.attach("nonexistent0", AttachMode::Generic).is_err());
    }
    // The process's Dataplane is gone: the pinned link keeps XDP attached.
    assert!(xdp_attached("mtg0"), "pinned link survives the Dataplane");
    {
        let mut d = Dataplane::open(&opts).unwrap();
        assert!(d.adopted());
        // Adopted, not attached twice (a second attach would fail with EBUSY).
        assert_eq!(d.attach("mtg0", AttachMode::Auto).unwrap(), AttachedMode::Adopted);
        assert!(xdp_attached("mtg0"));
        d.detach("mtg0").unwrap();
        assert!(!xdp_attached("mtg0"), "detach releases the link");
        assert!(!dir.join("links/mtg0").exists());
        assert!(d.detach("mtg0").is_err(), "detaching twice is an error");
        assert_eq!(d.attach("mtg0", AttachMode::Generic).unwrap(), AttachedMode::Generic);
        assert!(xdp_attached("mtg0"));
        d.uninstall().unwrap();
    }
    assert!(!xdp_attached("mtg0"), "uninstall detaches");
    assert!(!dir.exists(), "uninstall removes every pin");
    ip(&["link", "del", "mtg0"]);
}
