//! A lab: a switch namespace with a bridge, and hosts (namespaces) each with
//! an `eth0` plugged into it. Addresses come from the documentation ranges
//! (203.0.113.0/24 and 2001:db8:113::/64), which exist only inside the lab.

use std::{
    fs::File,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::AsRawFd,
    process::{Command, Output},
};

use anyhow::{bail, Context};

/// One host of the lab.
#[derive(Clone, Debug)]
pub struct Host {
    /// Network namespace name (under /run/netns).
    pub ns: String,
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
}

impl Host {
    /// `nsenter --net=…` so that the command runs in this host's network
    /// namespace but keeps the machine's mount namespace (and so the real
    /// bpffs: pins made there outlive the process, unlike `ip netns exec`,
    /// which gives each command a private /sys).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.ns)).arg("--").arg(program);
        c
    }

    /// Runs a command in this host's network namespace; fails with its
    /// stderr if it fails.
    pub fn sh(&self, args: &[&str]) -> anyhow::Result<()> {
        let out = self.command(args[0]).args(&args[1..]).output().with_context(|| format!("{args:?}"))?;
        if !out.status.success() {
            bail!("{args:?} in {}: {}", self.ns, String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// Runs `f` on a thread inside this host's network namespace: sockets it
    /// opens belong to the host.
    pub fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> anyhow::Result<R> {
        let path = format!("/run/netns/{}", self.ns);
        let handle = std::thread::spawn(move || -> anyhow::Result<R> {
            enter(&path)?;
            Ok(f())
        });
        handle.join().map_err(|_| anyhow::anyhow!("thread in {} panicked", self.ns))?
    }

    /// Spawns a thread that stays in this namespace (for servers).
    pub fn spawn<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> std::thread::JoinHandle<anyhow::Result<R>> {
        let path = format!("/run/netns/{}", self.ns);
        std::thread::spawn(move || {
            enter(&path)?;
            Ok(f())
        })
    }

    pub fn addr(&self, v6: bool) -> IpAddr {
        if v6 { IpAddr::V6(self.v6) } else { IpAddr::V4(self.v4) }
    }
}

/// Moves the calling thread into a network namespace.
fn enter(path: &str) -> anyhow::Result<()> {
    let f = File::open(path).with_context(|| format!("open {path}"))?;
    // SAFETY: setns on a valid namespace fd affects only this thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("setns {path}"));
    }
    Ok(())
}

pub struct Lab {
    pub tag: String,
    switch: String,
    hosts: Vec<Host>,
}

fn run(args: &[&str]) -> anyhow::Result<Output> {
    let out = Command::new(args[0]).args(&args[1..]).output().with_context(|| format!("run {}", args[0]))?;
    if !out.status.success() {
        bail!("`{}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out)
}

impl Lab {
    /// Creates the switch namespace for a lab tagged `tag` (short: it is
    /// part of namespace names). A lab left by a killed run is removed first.
    pub fn new(tag: &str) -> anyhow::Result<Lab> {
        if unsafe { libc::geteuid() } != 0 {
            bail!("the lab needs root (network namespaces, XDP): run the tests as root");
        }
        let lab = Lab { tag: tag.to_string(), switch: format!("{tag}-sw"), hosts: Vec::new() };
        lab.remove_leftovers();
        run(&["ip", "netns", "add", &lab.switch])?;
        lab.sw(&["ip", "link", "add", "br0", "type", "bridge"])?;
        lab.sw(&["ip", "link", "set", "br0", "up"])?;
        Ok(lab)
    }

    /// The switch namespace's name (its bridge port for host `name` is
    /// `p-<name>`): for reading the bridge side's counters.
    pub fn switch_ns(&self) -> &str {
        &self.switch
    }

    /// Datagrams the kernel dropped on the way from `from` to `to` before
    /// `to`'s XDP program could see them: the sender's veth (its peer's
    /// backlog was full) and `to`'s switch port (the veth ring of a native
    /// XDP program was full). Under load these are the only places a
    /// counted-out packet can go missing, so tests account for them
    /// instead of hoping they stay zero.
    pub fn drops_between(&self, from: &Host, to: &Host) -> anyhow::Result<u64> {
        let sender = tx_dropped(&["ip", "netns", "exec", &from.ns, "ip", "-s", "-j", "link", "show", "eth0"])?;
        let port = format!("p-{}", to.ns.strip_prefix(&format!("{}-", self.tag)).unwrap_or(&to.ns));
        let switch = tx_dropped(&["ip", "netns", "exec", &self.switch, "ip", "-s", "-j", "link", "show", &port])?;
        Ok(sender + switch)
    }

    /// Datagrams the kernel dropped on `from`'s `dev` before the far end's
    /// XDP program saw them (its peer's ring or backlog was full): the
    /// `drops_between` of a link made by `add_link_host`.
    pub fn link_drops(&self, from: &Host, dev: &str) -> anyhow::Result<u64> {
        tx_dropped(&["ip", "-n", &from.ns, "-s", "-j", "link", "show", dev])
    }

    fn sw(&self, args: &[&str]) -> anyhow::Result<Output> {
        let mut full = vec!["ip", "netns", "exec", self.switch.as_str()];
        full.extend_from_slice(args);
        run(&full)
    }

    fn remove_leftovers(&self) {
        let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
        let prefix = format!("{}-", self.tag);
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if name.starts_with(&prefix) {
                let _ = Command::new("ip").args(["netns", "del", name]).output();
            }
        }
    }

    /// Adds a host `name` with the given last address byte (203.0.113.N,
    /// 2001:db8:113::N).
    pub fn add_host(&mut self, name: &str, n: u8) -> anyhow::Result<Host> {
        let ns = format!("{}-{name}", self.tag);
        let port = format!("p-{name}");
        run(&["ip", "netns", "add", &ns])?;
        run(&["ip", "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port, "netns", &self.switch])?;
        self.sw(&["ip", "link", "set", &port, "master", "br0", "up"])?;
        let host = Host { ns: ns.clone(), v4: Ipv4Addr::new(203, 0, 113, n), v6: format!("2001:db8:113::{n}").parse()? };
        let h = |args: &[&str]| {
            let mut full = vec!["ip", "netns", "exec", ns.as_str()];
            full.extend_from_slice(args);
            run(&full)
        };
        h(&["ip", "link", "set", "lo", "up"])?;
        h(&["ip", "addr", "add", &format!("{}/24", host.v4), "dev", "eth0"])?;
        h(&["ip", "addr", "add", &format!("{}/64", host.v6), "dev", "eth0", "nodad"])?;
        h(&["ip", "link", "set", "eth0", "up"])?;
        self.hosts.push(host.clone());
        Ok(host)
    }

    /// Adds a host `name` joined to `to` by a veth pair of its own, named
    /// `dev` at both ends, outside the bridge: a point-to-point link in
    /// 192.0.2.0/24 and 2001:db8:2::/64 (TEST-NET-1), where the new host is
    /// .`n` and `to` is .`to_n`. Returns the new host and `to` as seen on
    /// that link (same namespace, the link's addresses).
    pub fn add_link_host(&mut self, name: &str, n: u8, to: &Host, dev: &str, to_n: u8) -> anyhow::Result<(Host, Host)> {
        let ns = format!("{}-{name}", self.tag);
        run(&["ip", "netns", "add", &ns])?;
        run(&["ip", "link", "add", dev, "netns", &ns, "type", "veth", "peer", "name", dev, "netns", &to.ns])?;
        let new = Host { ns: ns.clone(), v4: Ipv4Addr::new(192, 0, 2, n), v6: format!("2001:db8:2::{n}").parse()? };
        let far = Host { ns: to.ns.clone(), v4: Ipv4Addr::new(192, 0, 2, to_n), v6: format!("2001:db8:2::{to_n}").parse()? };
        self.hosts.push(new.clone());
        for h in [&new, &far] {
            let ip = |args: &[&str]| run(&[&["ip", "-n", h.ns.as_str()], args].concat());
            ip(&["link", "set", "lo", "up"])?;
            ip(&["addr", "add", &format!("{}/24", h.v4), "dev", dev])?;
            ip(&["addr", "add", &format!("{}/64", h.v6), "dev", dev, "nodad"])?;
            ip(&["link", "set", dev, "up"])?;
        }
        Ok((new, far))
    }
}

/// The tx "dropped" counter of the one link `ip -s -j link show` prints.
fn tx_dropped(args: &[&str]) -> anyhow::Result<u64> {
    let out = run(args)?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    v[0]["stats64"]["tx"]["dropped"].as_u64().context("no tx dropped counter in `ip -s -j link`")
}

impl Drop for Lab {
    fn drop(&mut self) {
        for h in &self.hosts {
            let _ = Command::new("ip").args(["netns", "del", &h.ns]).output();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.switch]).output();
    }
}
