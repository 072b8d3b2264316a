//! The nftables half of the SYN proxy. The XDP program answers a SYN with
//! a cookie and lets through only the ACK of a valid one
//! (`mitigator-ebpf/src/syn_proxy.rs`); the kernel's stack cannot take that
//! ACK by itself (its own cookie check only runs after its listener
//! overflowed), so netfilter's `synproxy` does, as in the kernel's XDP
//! synproxy selftest: it checks the cookie again, opens the connection to
//! the listener with the options the cookie carries, and splices the two.
//!
//! The daemon keeps one table, `inet mitigator_synproxy`, holding the
//! scopes (destination prefix . TCP port range) of the rule set's
//! `syn-proxy` targets:
//! - prerouting (raw): a scope's SYN is not tracked (were it to reach the
//!   stack, e.g. on an interface without the XDP program, `synproxy`
//!   answers it instead);
//! - input: a scope's untracked or invalid segment (the cookie ACK) goes
//!   to `synproxy`; other invalid segments of a scope are dropped.
//!
//! It is replaced whole by `nft -f` (one transaction). Why the `nft`
//! command rather than a netlink crate: the rule set is a few lines that
//! change rarely, `nft -f` applies them atomically and reports errors a
//! person can read, and the netlink crates for nftables do not cover the
//! `synproxy` statement.
//!
//! `net.netfilter.nf_conntrack_tcp_loose` is set to 0 while the table has
//! scopes: otherwise conntrack would pick up the cookie ACK as a connection
//! already open, and `synproxy` would never see it.

use std::{fmt::Write as _, io::Write as _, process::Command};

use anyhow::{bail, Context as _, Result};
use ipnet::IpNet;
use mitigator_common::{policy_flags as pf, SynProxyConfig};
use tracing::{info, warn};

use crate::dataplane::RuleSet;

/// What SYN-ACKs carry, in XDP and in nftables alike. No timestamps (and
/// so no window scale or SACK, which a cookie keeps only in the timestamp):
/// on Linux 6.18, netfilter's synproxy with timestamps leaves about one
/// connection in 200 stalled for 1.6 s, the listener rejecting the first
/// segments' echoed timestamps (`TcpExtTSEcrRejected`) until its SYN-ACK
/// times out, with our XDP half or without it (README, "The SYN proxy").
pub const SETTINGS: SynProxyConfig = SynProxyConfig { mss4: 1460, mss6: 1440, wscale: 7, ttl: 64, ready: 1, timestamps: 0 };

const TABLE: &str = "mitigator_synproxy";
const LOOSE: &str = "/proc/sys/net/netfilter/nf_conntrack_tcp_loose";

/// One scope: a destination prefix and a TCP port range.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Scope {
    pub net: IpNet,
    pub ports: (u16, u16),
}

/// The scopes of the rule set's `syn-proxy` targets (those whose scope
/// includes TCP), sorted.
pub fn scopes(rules: &RuleSet) -> Vec<Scope> {
    let mut out = vec![];
    for t in &rules.targets {
        let p = &t.policy;
        if p.flags & pf::SYN_PROXY == 0 || !p.has_proto(6) {
            continue;
        }
        let ranges: Vec<(u16, u16)> = if p.n_ports == 0 {
            vec![(0, 65535)]
        } else {
            p.ports[..p.n_ports as usize].iter().map(|r| (r.lo, r.hi)).collect()
        };
        for net in &t.prefixes {
            out.extend(ranges.iter().map(|&ports| Scope { net: *net, ports }));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The table as installed, owned by the registry's owner.
#[derive(Default)]
pub struct Nft {
    applied: Vec<Scope>,
    /// The loose setting found before we changed it.
    saved_loose: Option<String>,
}

impl Nft {
    /// Before the flip to a rule set with `want`: the table must hold the
    /// new scopes already (and the old ones still: a flip is not yet made).
    pub fn before_flip(&mut self, want: &[Scope]) -> Result<()> {
        let mut union: Vec<Scope> = self.applied.iter().chain(want).cloned().collect();
        union.sort();
        union.dedup();
        if union == self.applied {
            return Ok(());
        }
        self.apply(union)
    }

    /// After the flip: scopes no longer proxied leave the table. A failure
    /// only leaves extra scopes (netfilter's synproxy then keeps answering
    /// them), so it is logged, not returned.
    pub fn after_flip(&mut self, want: &[Scope]) {
        if self.applied == want {
            return;
        }
        if let Err(e) = self.apply(want.to_vec()) {
            warn!(error = %format!("{e:#}"), "cannot remove SYN-proxy scopes from the nftables table; they stay until the next change");
        }
    }

    /// Removes the table (daemon stop without `--keep-enforcing`).
    pub fn remove(&mut self) {
        if self.applied.is_empty() {
            return;
        }
        let _ = self.apply(vec![]);
    }

    fn apply(&mut self, scopes: Vec<Scope>) -> Result<()> {
        run_nft(&render(&scopes, &SETTINGS))?;
        if scopes.is_empty() {
            self.restore_loose();
        } else {
            self.set_loose()?;
        }
        info!(scopes = scopes.len(), "nftables SYN-proxy table updated");
        self.applied = scopes;
        Ok(())
    }

    fn set_loose(&mut self) -> Result<()> {
        let cur = std::fs::read_to_string(LOOSE)
            .with_context(|| format!("reading {LOOSE} (is nf_conntrack loaded?)"))?;
        if cur.trim() != "0" {
            self.saved_loose.get_or_insert(cur.trim().to_string());
            std::fs::write(LOOSE, "0").with_context(|| format!("writing 0 to {LOOSE}"))?;
        }
        Ok(())
    }

    fn restore_loose(&mut self) {
        if let Some(v) = self.saved_loose.take() {
            let _ = std::fs::write(LOOSE, v);
        }
    }
}

/// Checks that this host can run the SYN proxy's nftables half (the `nft`
/// command, nf_tables with `synproxy` and conntrack), without changing
/// anything: `nft --check` on a table using all of it.
pub fn available() -> Result<()> {
    let probe = vec![Scope { net: "192.0.2.1/32".parse().unwrap(), ports: (9, 9) }];
    run_nft_args(&["--check", "-f", "-"], &render(&probe, &SETTINGS))
}

fn run_nft(script: &str) -> Result<()> {
    run_nft_args(&["-f", "-"], script)
}

fn run_nft_args(args: &[&str], script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running `nft` (the SYN proxy needs nftables: apt-get install nftables)")?;
    child.stdin.take().expect("piped").write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "nft refused the SYN proxy's table (the kernel needs nf_tables, CONFIG_NFT_SYNPROXY and \
             CONFIG_NF_CONNTRACK): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The script that replaces the table with one for `scopes` (an empty
/// list: no table).
pub fn render(scopes: &[Scope], s: &SynProxyConfig) -> String {
    // Declaring the table first makes the delete succeed when it is absent.
    let mut out = format!("table inet {TABLE}\ndelete table inet {TABLE}\n");
    if scopes.is_empty() {
        return out;
    }
    let elems = |v6: bool| {
        scopes
            .iter()
            .filter(|sc| matches!(sc.net, IpNet::V6(_)) == v6)
            .map(|sc| {
                let ports = if sc.ports.0 == sc.ports.1 { sc.ports.0.to_string() } else { format!("{}-{}", sc.ports.0, sc.ports.1) };
                format!("{} . {ports}", sc.net)
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "table inet {TABLE} {{");
    for (name, ty, v6) in [("v4", "ipv4_addr", false), ("v6", "ipv6_addr", true)] {
        let e = elems(v6);
        let _ = write!(out, "  set {name} {{ type {ty} . inet_service; flags interval; ");
        if !e.is_empty() {
            let _ = write!(out, "elements = {{ {e} }} ");
        }
        let _ = writeln!(out, "}}");
    }
    let syn = "tcp flags & (fin | syn | rst | ack) == syn";
    let _ = writeln!(out, "  chain prerouting {{ type filter hook prerouting priority raw; policy accept;");
    let _ = writeln!(out, "    {syn} ip daddr . tcp dport @v4 notrack");
    let _ = writeln!(out, "    {syn} ip6 daddr . tcp dport @v6 notrack");
    let _ = writeln!(out, "  }}");
    let _ = writeln!(out, "  chain input {{ type filter hook input priority filter; policy accept;");
    for (fam, set, mss) in [("ip", "v4", s.mss4), ("ip6", "v6", s.mss6)] {
        // The options the XDP SYN-ACK offered, no more: netfilter must
        // open the listener's side with what the client was told.
        let opts = if s.timestamps != 0 { format!(" wscale {} timestamp sack-perm", s.wscale) } else { String::new() };
        let _ = writeln!(out, "    {fam} daddr . tcp dport @{set} ct state invalid,untracked synproxy mss {mss}{opts}");
        let _ = writeln!(out, "    {fam} daddr . tcp dport @{set} ct state invalid drop");
    }
    let _ = writeln!(out, "  }}\n}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::TargetRule;
    use mitigator_common::{Policy, PortRange};

    fn target(id: u32, nets: &[&str], flags: u32, tcp: bool, ports: &[(u16, u16)]) -> TargetRule {
        let mut p = Policy::empty();
        p.flags = pf::ACTIVE | flags;
        if tcp {
            p.protos[0] |= 1 << 6;
        }
        p.protos[0] |= 1 << 17;
        for (i, &(lo, hi)) in ports.iter().enumerate() {
            p.ports[i] = PortRange { lo, hi };
        }
        p.n_ports = ports.len() as u32;
        TargetRule { id, prefixes: nets.iter().map(|n| n.parse().unwrap()).collect(), policy: p }
    }

    #[test]
    fn scopes_are_the_syn_proxy_targets_with_tcp() {
        let rules = RuleSet {
            targets: vec![
                target(1, &["203.0.113.7/32", "2001:db8::/64"], pf::SYN_PROXY, true, &[(80, 80), (8000, 8080)]),
                target(2, &["203.0.113.8/32"], pf::SYN_PROXY, false, &[]),
                target(3, &["203.0.113.9/32"], pf::RATE_LIMIT_SRC, true, &[]),
                target(4, &["198.51.100.0/24"], pf::SYN_PROXY, true, &[]),
            ],
            ..Default::default()
        };
        let got: Vec<String> = scopes(&rules).iter().map(|s| format!("{} {}-{}", s.net, s.ports.0, s.ports.1)).collect();
        assert_eq!(
            got,
            ["198.51.100.0/24 0-65535", "203.0.113.7/32 80-80", "203.0.113.7/32 8000-8080", "2001:db8::/64 80-80", "2001:db8::/64 8000-8080"]
        );
    }

    #[test]
    fn render_names_every_scope_and_the_settings() {
        let sc = vec![
            Scope { net: "203.0.113.7/32".parse().unwrap(), ports: (80, 80) },
            Scope { net: "2001:db8::/64".parse().unwrap(), ports: (1000, 2000) },
        ];
        let s = render(&sc, &SETTINGS);
        assert!(s.contains("elements = { 203.0.113.7/32 . 80 }"), "{s}");
        assert!(s.contains("elements = { 2001:db8::/64 . 1000-2000 }"), "{s}");
        assert!(s.contains("synproxy mss 1460\n"), "{s}");
        assert!(s.contains("synproxy mss 1440\n"), "{s}");
        let ts = render(&sc, &SynProxyConfig { timestamps: 1, ..SETTINGS });
        assert!(ts.contains("synproxy mss 1460 wscale 7 timestamp sack-perm"), "{ts}");
        assert_eq!(render(&[], &SETTINGS), "table inet mitigator_synproxy\ndelete table inet mitigator_synproxy\n");
    }
}
