//! The guard: this daemon's own DOTS listeners stay reachable under its
//! own mitigations.
//!
//! A drop-all mitigation of the host's own address (asked by a DOTS client
//! or with `mitigator protect`) would otherwise also drop the signal
//! channel (UDP/TCP 4646) and the data channel (TCP 4443) of this daemon,
//! and the client that asked for it could no longer refresh or withdraw
//! it. The signal channel is made for exactly that moment: "The DOTS
//! signal channel can be established between two DOTS agents prior to or
//! during an attack" (RFC 9132 section 3), and during link saturation "the
//! DOTS server receives heartbeat requests in addition to DOTS messages
//! sent by the DOTS client" (section 4.7).
//!
//! How: one entry per listener in the data plane's guard map (at most
//! `MAX_GUARD`): protocol, destination port and address (any for a
//! wildcard listen) → pass under an aggregate byte rate, drop over it.
//! The XDP program looks at the entries only where something could drop a
//! listener's packet: after the accept- and drop-lists and before the
//! data-channel ACL when clients have ACL entries (a client's ACE may drop
//! anything), else for a packet in the scope of a target, before the
//! target's countermeasures. So the operator's drop-list still applies,
//! the listener is never an unlimited hole, packets out of every target's
//! scope pay nothing, and each listener has its own bucket: a flood aimed
//! at other ports, or at another listener, does not use up the budget of a
//! TLS handshake to this one. The DTLS cookie exchange (RFC 6347) still
//! protects the DTLS server from spoofed sources within the rate.
//!
//! An earlier version put the entries first in the data-channel ACL, which
//! made the ACL stage run for every packet to a protected target (drop-all
//! of every port: 100 → 250 ns per packet with BPF_PROG_TEST_RUN); a walk
//! of a few entries after the scope test costs a few ns (98 → 106 ns).
//!
//! `mitigator status` calls a listener's guard "in force" while something
//! could drop its traffic: a protection whose prefix may hold the listen
//! address (any prefix, for a wildcard listen) and whose scope covers the
//! listener's protocol and port, or any client ACL entry.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use mitigator_common::GuardEntry;

use crate::{config::Config, dataplane::TargetRule};

const UDP: u8 = 17;
const TCP: u8 = 6;

/// One guarded listener, as `mitigator status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    /// `signal-dtls`, `signal-tls` or `data-channel`.
    pub channel: String,
    /// `udp` or `tcp`.
    pub protocol: String,
    pub listen: SocketAddr,
    pub bytes_per_sec: u64,
}

impl Listener {
    fn proto(&self) -> u8 {
        if self.protocol == "udp" { UDP } else { TCP }
    }

    /// Whether `t` could drop this listener's traffic: a prefix that may
    /// hold the listen address, a scope with its protocol and port.
    fn reached_by(&self, t: &TargetRule) -> bool {
        let ip = self.listen.ip();
        let holds = |n: &IpNet| match ip {
            IpAddr::V6(a) if a.is_unspecified() => true,
            IpAddr::V4(a) if a.is_unspecified() => n.addr().is_ipv4(),
            _ => n.contains(&ip),
        };
        let pol = &t.policy;
        let port = self.listen.port();
        let ranges = &pol.ports[..(pol.n_ports as usize).min(pol.ports.len())];
        let in_scope = pol.has_proto(self.proto()) && (ranges.is_empty() || ranges.iter().any(|r| r.lo <= port && port <= r.hi));
        in_scope && t.prefixes.iter().any(holds)
    }

    /// The data-plane entry: destination = the listen address, or any
    /// address of its family for a wildcard (`[::]` is dual-stack, as the
    /// daemon's sockets are: both families).
    pub fn entry(&self) -> GuardEntry {
        let mut e = GuardEntry {
            rate_bps: self.bytes_per_sec,
            port: self.listen.port(),
            proto: self.proto(),
            ..GuardEntry::default()
        };
        match self.listen.ip() {
            IpAddr::V6(a) if a.is_unspecified() => e.any_addr = 1,
            IpAddr::V4(a) if a.is_unspecified() => (e.family, e.any_addr) = (4, 1),
            IpAddr::V4(a) => {
                e.family = 4;
                e.addr[..4].copy_from_slice(&a.octets());
            }
            IpAddr::V6(a) => (e.family, e.addr) = (6, a.octets()),
        }
        e
    }
}

/// The listeners to guard: none when `signal.guard` is off; the signal
/// channel's when it is enabled, the data channel's when it is. A socket
/// address named twice (same protocol) is guarded once.
pub fn listeners(cfg: &Config) -> Vec<Listener> {
    if !cfg.signal.guard {
        return Vec::new();
    }
    let rate = cfg.signal.guard_bytes_per_s;
    let mut out: Vec<Listener> = Vec::new();
    let mut add = |channel: &str, protocol: &str, addrs: &[SocketAddr]| {
        for a in addrs {
            if !out.iter().any(|l| l.protocol == protocol && l.listen == *a) {
                out.push(Listener { channel: channel.into(), protocol: protocol.into(), listen: *a, bytes_per_sec: rate });
            }
        }
    };
    if cfg.signal.enabled {
        add("signal-dtls", "udp", &cfg.signal.dtls_listen);
        add("signal-tls", "tcp", &cfg.signal.tls_listen);
    }
    if cfg.data_channel.enabled {
        add("data-channel", "tcp", &cfg.data_channel.listen);
    }
    out
}

/// Per listener: whether its guard is in force, i.e. a target could drop
/// its traffic, or clients have ACL entries (`client_entries`: a client's
/// ACE may drop anything in its domain). For `mitigator status`: the data
/// plane decides per packet (see the module docs).
pub fn in_force(listeners: &[Listener], targets: &[TargetRule], client_entries: bool) -> Vec<bool> {
    listeners.iter().map(|l| client_entries || targets.iter().any(|t| l.reached_by(t))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Config {
        Config::parse(text).unwrap()
    }

    /// A drop-all target of `prefix` with `protos` (empty: all) and ports.
    fn target(prefix: &str, protos: &[u8], ports: &[(u16, u16)]) -> TargetRule {
        use crate::protection::{Owner, PortRange, Protocol, ProtectionSpec};
        let spec = ProtectionSpec {
            prefixes: vec![prefix.parse().unwrap()],
            protocols: protos.iter().map(|p| Protocol(*p)).collect(),
            ports: ports.iter().map(|(lo, hi)| PortRange { lo: *lo, hi: *hi }).collect(),
            countermeasures: vec![],
            profile: None,
            lifetime: None,
        };
        let p = crate::registry::Protection {
            id: 1,
            owner: Owner::Local,
            spec,
            countermeasures: vec![crate::protection::Countermeasure::DropAll],
            created_unix: 0,
            expires_unix: None,
        };
        crate::compiler::compile(&[p], &[], &[]).targets.remove(0)
    }

    fn guarded(l: &[Listener], targets: &[TargetRule], clients: bool) -> Vec<String> {
        let on = in_force(l, targets, clients);
        l.iter().zip(on).filter(|(_, on)| *on).map(|(l, _)| format!("{} {}", l.protocol, l.listen)).collect()
    }

    #[test]
    fn in_force_only_where_a_target_reaches_a_listener() {
        let l = listeners(&cfg(""));
        let all = ["udp [::]:4646", "tcp [::]:4646", "tcp [::]:4443"];
        assert!(guarded(&l, &[], false).is_empty(), "nothing drops: nothing to bypass");
        assert_eq!(guarded(&l, &[], true), all, "client ACEs may drop anything");
        assert_eq!(guarded(&l, &[target("203.0.113.10/32", &[], &[])], false), all, "drop-all of a host");
        assert_eq!(guarded(&l, &[target("2001:db8::/64", &[17], &[])], false), ["udp [::]:4646"]);
        assert_eq!(guarded(&l, &[target("203.0.113.0/24", &[6], &[(4000, 4500)])], false), ["tcp [::]:4443"]);
        assert!(guarded(&l, &[target("203.0.113.0/24", &[17], &[(53, 53)])], false).is_empty(), "scoped to other ports");

        let v4 = listeners(&cfg("[signal]\ndtls_listen = [\"0.0.0.0:4646\", \"192.0.2.1:5000\"]\ntls_listen = []\n[data_channel]\nenabled = false\n"));
        assert!(guarded(&v4, &[target("2001:db8::/64", &[], &[])], false).is_empty(), "0.0.0.0 is IPv4 only");
        assert_eq!(guarded(&v4, &[target("192.0.2.0/24", &[], &[])], false), ["udp 0.0.0.0:4646", "udp 192.0.2.1:5000"]);
        assert_eq!(guarded(&v4, &[target("198.51.100.0/24", &[], &[])], false), ["udp 0.0.0.0:4646"], "not that address");
    }

    #[test]
    fn defaults_guard_three_wildcard_listeners() {
        let l = listeners(&cfg(""));
        let names: Vec<(&str, &str, u16)> = l.iter().map(|l| (l.channel.as_str(), l.protocol.as_str(), l.listen.port())).collect();
        assert_eq!(names, [("signal-dtls", "udp", 4646), ("signal-tls", "tcp", 4646), ("data-channel", "tcp", 4443)]);
        let e: Vec<GuardEntry> = l.iter().map(Listener::entry).collect();
        // [::] is both families, any destination.
        assert_eq!((e[0].family, e[0].any_addr), (0, 1));
        assert_eq!((e[0].proto, e[0].port), (17, 4646));
        assert_eq!((e[1].proto, e[1].port), (6, 4646));
        assert_eq!((e[2].proto, e[2].port), (6, 4443));
        assert_eq!(e[2].rate_bps, crate::config::DEFAULT_GUARD_BYTES_PER_S);
    }

    #[test]
    fn addresses_rate_and_switches() {
        let c = cfg(
            "[signal]\ndtls_listen = [\"0.0.0.0:5000\", \"[2001:db8::1]:4646\"]\ntls_listen = []\nguard_bytes_per_s = 20000\n\n[data_channel]\nenabled = false\n",
        );
        let l = listeners(&c);
        assert_eq!(l.len(), 2, "{l:?}");
        let e: Vec<GuardEntry> = l.iter().map(Listener::entry).collect();
        assert_eq!((e[0].family, e[0].any_addr, e[0].port), (4, 1, 5000), "0.0.0.0: IPv4 only");
        let a: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!((e[1].family, e[1].any_addr, e[1].addr), (6, 0, a.octets()));
        assert_eq!(e[1].rate_bps, 20000);
        let v4 = listeners(&cfg("[signal]\ndtls_listen = [\"192.0.2.1:5000\"]\n")).remove(0).entry();
        assert_eq!((v4.family, v4.any_addr, &v4.addr[..4]), (4, 0, &[192, 0, 2, 1][..]));
        assert!(listeners(&cfg("[signal]\nguard = false\n")).is_empty());
        let off = listeners(&cfg("[signal]\nenabled = false\n"));
        assert_eq!(off.iter().map(|l| l.channel.as_str()).collect::<Vec<_>>(), ["data-channel"]);
    }

    #[test]
    fn same_address_twice_is_guarded_once() {
        let c = cfg("[signal]\ntls_listen = [\"[::]:4443\"]\n");
        let l = listeners(&c);
        assert_eq!(l.iter().filter(|l| l.protocol == "tcp").count(), 1, "{l:?}");
    }
}
