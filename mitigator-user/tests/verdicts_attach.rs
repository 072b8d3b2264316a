//! Attaching to a real interface: a veth pair in a network namespace that
//! the test thread creates for itself (network namespaces are per thread,
//! and the `ip` children inherit it). Checks pinning of the link, adoption
//! of the pinned link by a second `Dataplane`, detach and uninstall.

use std::{mem::size_of, process::Command};

use ipnet::IpNet;
use mitigator::dataplane::{testpkt::PacketBuilder, AttachMode, AttachedMode, Dataplane, DataplaneOptions, RuleSet, TargetRule};
use mitigator_common::{policy_flags as pf, IfaceStats, IfaceVerdict, Policy};

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

fn ifindex(iface: &str) -> u32 {
    let c = std::ffi::CString::new(iface).unwrap();
    // SAFETY: c is a valid NUL-terminated string.
    unsafe { libc::if_nametoindex(c.as_ptr()) }
}

/// Sends `frame` `n` times out of `iface` (AF_PACKET): its veth peer
/// receives it, through the XDP program attached there.
fn send(iface: &str, frame: &[u8], n: usize) {
    // SAFETY: plain syscalls on a socket this function owns; `addr` is a
    // valid sockaddr_ll of the size passed.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        assert!(fd >= 0, "AF_PACKET socket");
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = ifindex(iface) as i32;
        addr.sll_halen = 6;
        for _ in 0..n {
            let sa = &addr as *const libc::sockaddr_ll as *const libc::sockaddr;
            let r = libc::sendto(fd, frame.as_ptr().cast(), frame.len(), 0, sa, size_of::<libc::sockaddr_ll>() as u32);
            assert_eq!(r, frame.len() as isize, "sendto on {iface}");
        }
        libc::close(fd);
    }
}

fn iface(d: &Dataplane, ifindex: u32) -> IfaceStats {
    d.iface_stats().unwrap().into_iter().find(|(k, _)| *k == ifindex).map(|(_, s)| s).unwrap_or_default()
}

fn seen(s: &IfaceStats) -> u64 {
    s.verdicts.iter().map(|c| c.packets).sum()
}

/// With two interfaces attached, each counts exactly its own packets, per
/// verdict, and test runs go to ifindex 0 ("(other)"), not to either.
#[test]
fn interface_counters_per_interface() {
    // SAFETY: plain syscall; only this thread changes namespace.
    assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare(CLONE_NEWNET): root needed");
    // No IPv6 autoconfiguration traffic: the counts below must be exact.
    for k in ["all", "default"] {
        let st = Command::new("sysctl").args(["-qw", &format!("net.ipv6.conf.{k}.disable_ipv6=1")]).status().unwrap();
        assert!(st.success());
    }
    for (a, b) in [("cnt0", "cnt1"), ("cnt2", "cnt3")] {
        ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        ip(&["link", "set", a, "up"]);
        ip(&["link", "set", b, "up"]);
    }
    let mut d = Dataplane::open(&DataplaneOptions::default()).unwrap();
    d.attach("cnt0", AttachMode::Native).unwrap();
    d.attach("cnt2", AttachMode::Native).unwrap();
    let mut pol = Policy::empty();
    pol.flags = pf::ACTIVE | pf::DROP_ALL;
    pol.protos[0] = 1 << 17;
    let net = |s: &str| s.parse::<IpNet>().unwrap();
    d.apply(&RuleSet {
        targets: vec![TargetRule { id: 3, prefixes: vec![net("198.51.100.7/32")], policy: pol }],
        drop: vec![net("192.0.2.66/32")],
        ..Default::default()
    })
    .unwrap();

    let to_target = PacketBuilder::ipv4([192, 0, 2, 1], [198, 51, 100, 7]).udp(1, 53).build();
    let listed = PacketBuilder::ipv4([192, 0, 2, 66], [203, 0, 113, 9]).udp(1, 53).payload(10).build();
    let no_match = PacketBuilder::ipv4([192, 0, 2, 1], [203, 0, 113, 9]).udp(1, 53).payload(20).build();
    send("cnt1", &to_target, 7);
    send("cnt3", &listed, 5);
    send("cnt3", &no_match, 3);
    assert_eq!(d.test_run(&no_match).unwrap(), 2);
    assert_eq!(d.test_run(&to_target).unwrap(), 1);

    // veth delivers through the receiver's NAPI: wait for the packets to
    // be counted (the bound only keeps a broken run from hanging).
    let (a, b) = (ifindex("cnt0"), ifindex("cnt2"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while (seen(&iface(&d, a)) < 7 || seen(&iface(&d, b)) < 8) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let expect = |ifx: u32, want: &[(IfaceVerdict, u64, u64)]| {
        let s = iface(&d, ifx);
        for v in IfaceVerdict::ALL {
            let (p, by) = want.iter().find(|w| w.0 == v).map(|w| (w.1, w.2)).unwrap_or((0, 0));
            let c = s.verdicts[v as usize];
            assert_eq!((c.packets, c.bytes), (p, by), "ifindex {ifx} {} ({s:?})", v.name());
        }
    };
    let len = |p: &[u8]| p.len() as u64;
    expect(a, &[(IfaceVerdict::TargetDropped, 7, 7 * len(&to_target))]);
    expect(b, &[(IfaceVerdict::DropListed, 5, 5 * len(&listed)), (IfaceVerdict::NoMatch, 3, 3 * len(&no_match))]);
    expect(0, &[(IfaceVerdict::NoMatch, 1, len(&no_match)), (IfaceVerdict::TargetDropped, 1, len(&to_target))]);
    // The target's own counters hold both the interface's and the test run's drops.
    assert_eq!(d.target_stats(3).unwrap().dropped[0].packets, 8);
    drop(d);
    ip(&["link", "del", "cnt0"]);
    ip(&["link", "del", "cnt2"]);
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
    let opts = DataplaneOptions { pin_dir: Some(dir.clone()), ..Default::default() };
    {
        let mut d = Dataplane::open(&opts).unwrap();
        // Native when asked for; `Auto` would pick generic on a veth (see
        // attach.rs).
        assert_eq!(d.attach("mtg0", AttachMode::Native).unwrap(), AttachedMode::Native);
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
        d.detach("mtg0").unwrap();
        assert_eq!(d.attach("mtg0", AttachMode::Auto).unwrap(), AttachedMode::Generic, "auto on a veth: generic");
        d.uninstall().unwrap();
    }
    assert!(!xdp_attached("mtg0"), "uninstall detaches");
    assert!(!dir.exists(), "uninstall removes every pin");
    ip(&["link", "del", "mtg0"]);
}
