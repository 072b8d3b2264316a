//! The daemon's configuration: TOML, every setting with a documented default
//! so that no file is needed to start. Parse errors name the line and the
//! field (toml's spans), and the values are checked while parsing, with the
//! same messages as the CLI.

use std::{collections::BTreeMap, path::{Path, PathBuf}};

use anyhow::Context;
use serde::Deserialize;

use crate::protection::Countermeasure;

/// Where the daemon's local API listens by default.
pub const DEFAULT_SOCKET: &str = "/run/mitigator/mitigator.sock";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub daemon: DaemonConfig,
    pub dataplane: DataplaneConfig,
    /// Named countermeasure sets. `default` is always there (built in,
    /// replaceable): it applies to a protection that names none.
    pub profiles: BTreeMap<String, Profile>,
    /// The DOTS signal-channel server.
    pub signal: SignalServerConfig,
    /// The DOTS data-channel server (RFC 8783: RESTCONF over HTTPS).
    pub data_channel: DataChannelConfig,
}

/// `[data_channel]`: the RESTCONF server for aliases and filtering rules.
/// It uses the signal channel's certificates and client domains
/// (`signal.ca`/`cert`/`key`, `[[signal.clients]]`): the same identities,
/// over mutual X.509 (PSK does not exist for HTTPS).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataChannelConfig {
    pub enabled: bool,
    /// HTTPS listen addresses. RESTCONF usually runs on 443; the default
    /// is 4443 so as not to take a web server's port on the host.
    pub listen: Vec<std::net::SocketAddr>,
    /// Minutes aliases and ACLs are kept after the client was last seen on
    /// either channel (RFC 8783 6.1, 7.2: at least 10080, one week).
    pub lifetime_minutes: u32,
    /// Largest request body, bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Aliases and ACLs per request, ACEs per ACL.
    pub max_aliases: usize,
    pub max_acls: usize,
    pub max_aces_per_acl: usize,
    /// 7.2: a destination is "mandatory in requests with an
    /// 'activation-type' set to 'immediate'".
    pub require_destination_for_immediate: bool,
}

impl Default for DataChannelConfig {
    fn default() -> Self {
        DataChannelConfig {
            enabled: true,
            listen: vec!["[::]:4443".parse().expect("literal")],
            lifetime_minutes: 10_080,
            max_body_bytes: 1 << 20,
            max_aliases: 64,
            max_acls: 64,
            max_aces_per_acl: 4096,
            require_destination_for_immediate: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Unix socket of the local control API (HTTP+JSON).
    pub socket: PathBuf,
    /// Where the durable state (protections, lists) is kept.
    pub state_dir: PathBuf,
    /// Log filter (tracing's EnvFilter syntax); RUST_LOG overrides it.
    pub log: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachModeConfig {
    /// Native (driver) mode, falling back to generic (skb) mode.
    Auto,
    Native,
    Generic,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataplaneConfig {
    /// Interfaces to attach to; empty: every non-loopback interface that is
    /// up in the daemon's network namespace.
    pub interfaces: Vec<String>,
    pub attach_mode: AttachModeConfig,
    /// bpffs directory where maps and links are pinned, so that the data
    /// plane keeps enforcing while the daemon is down.
    pub pin_dir: PathBuf,
    /// UDP source ports of well-known reflection/amplification services,
    /// dropped by the `reflection` countermeasure.
    pub reflection_ports: Vec<u16>,
    /// How often counters are sampled for rates, in milliseconds.
    pub stats_interval_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub countermeasures: Vec<Countermeasure>,
}

/// What another client's overlapping request gets (RFC 9132 4.4.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverlapPolicy {
    /// 2.01 with conflict-information: both are mitigated.
    Accept,
    /// 4.09 Conflict.
    Reject,
}

/// One rule choosing the countermeasure profile of a DOTS mitigation by
/// its scope: the first rule whose every given field matches wins.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileRule {
    /// Matches when a target prefix of the mitigation lies inside one of these.
    #[serde(default)]
    pub prefixes: Vec<ipnet::IpNet>,
    /// Matches when the mitigation names one of these protocols.
    #[serde(default)]
    pub protocols: Vec<crate::protection::Protocol>,
    /// Matches when a port range of the mitigation includes one of these ports.
    #[serde(default)]
    pub ports: Vec<u16>,
    pub profile: String,
}

/// A DOTS client domain: who may ask mitigation for what (RFC 9132 4.4.1.1).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientDomain {
    pub name: String,
    /// Prefixes the domain's clients may ask mitigation for.
    pub prefixes: Vec<ipnet::IpNet>,
    /// Client identities of the domain: `cn:NAME` (X.509 subject common
    /// name, certificate issued by `signal.ca`), `cuid:CUID` (the RFC's
    /// cuid derived from the certificate's public key) or `psk:IDENTITY`.
    pub identities: Vec<String>,
    /// PSK keys by identity, hex (`psk:IDENTITY` identities need one).
    #[serde(default)]
    pub psk_keys: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignalServerConfig {
    /// Serve the signal channel.
    pub enabled: bool,
    /// CoAP over DTLS (UDP) listen addresses.
    pub dtls_listen: Vec<std::net::SocketAddr>,
    /// CoAP over TLS (TCP) listen addresses.
    pub tls_listen: Vec<std::net::SocketAddr>,
    /// CA that issues client certificates, the server's certificate and
    /// key (PEM). Default: `<state_dir>/pki/{ca,server,server-key}.pem`,
    /// created as a development PKI on first start when absent.
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub clients: Vec<ClientDomain>,
    /// Countermeasure profile of DOTS mitigations that no rule matches.
    pub profile: String,
    pub profile_rules: Vec<ProfileRule>,
    /// Longest lifetime granted, seconds; longer requests are shortened.
    pub max_lifetime: u32,
    /// Grant indefinite (-1) lifetimes.
    pub allow_indefinite_lifetime: bool,
    pub other_client_overlap: OverlapPolicy,
    /// Active-but-terminating period after a DELETE, and its cap (4.4.4).
    pub terminating_period_s: u32,
    pub terminating_max_s: u32,
    /// Acceptable range and default of 'heartbeat-interval' (seconds) and
    /// 'missing-hb-allowed' that clients may negotiate (RFC 9132 4.5.2;
    /// the defaults are the text's 15-240 s / 30 s and 3-20 / 15).
    pub heartbeat_interval: ParamRange,
    pub missing_hb_allowed: ParamRange,
    /// Periodic Observe notifications carrying live counters, seconds
    /// (0: only on status changes). Status changes are always notified.
    pub observe_interval_s: u32,
    /// Least time between two notifications of one observation: "MUST NOT
    /// send more than one asynchronous notification every 3 seconds"
    /// without an RTT estimate (4.4.2.1).
    pub notification_spacing_ms: u64,
    /// Deadline for resolving a 'target-fqdn' or 'target-uri' host with the
    /// system resolver (4.4.1.1); past it the request is refused.
    pub resolve_timeout_ms: u64,
    /// Send every client to another server (5.03 + redirected-signal, 4.6).
    pub redirect: Option<Redirect>,
}

/// A negotiable uint16 parameter: acceptable range and default current value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamRange {
    pub min: u16,
    pub max: u16,
    pub default: u16,
}

/// Redirection to an alternate DOTS server (RFC 9132 4.6).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    /// FQDN of the alternate server ('alt-server').
    pub alt_server: String,
    /// Its addresses ('alt-server-record').
    #[serde(default)]
    pub alt_server_record: Vec<std::net::IpAddr>,
    /// Seconds the client should keep using it (the Max-Age option; 0 =
    /// this request only, 4294967295 = forever).
    #[serde(default = "default_redirect_ttl")]
    pub ttl: u32,
}

fn default_redirect_ttl() -> u32 {
    3600
}

impl Default for SignalServerConfig {
    fn default() -> Self {
        let any: std::net::SocketAddr = "[::]:4646".parse().expect("literal");
        SignalServerConfig {
            enabled: true,
            dtls_listen: vec![any],
            tls_listen: vec![any],
            ca: None,
            cert: None,
            key: None,
            clients: Vec::new(),
            profile: "default".into(),
            profile_rules: Vec::new(),
            max_lifetime: 86_400,
            allow_indefinite_lifetime: false,
            other_client_overlap: OverlapPolicy::Accept,
            terminating_period_s: 120,
            terminating_max_s: 300,
            heartbeat_interval: ParamRange { min: 15, max: 240, default: 30 },
            missing_hb_allowed: ParamRange { min: 3, max: 20, default: 15 },
            observe_interval_s: 10,
            notification_spacing_ms: 3000,
            resolve_timeout_ms: 2000,
            redirect: None,
        }
    }
}

/// chargen, DNS, NTP, SNMP, CLDAP, SSDP, memcached, plus portmap, NetBIOS,
/// QOTD, RIPv1, MS-SQL browser, OpenVPN, WS-Discovery, ARD, CoAP, Ubiquiti
/// discovery and mDNS: services commonly abused for amplification.
pub const DEFAULT_REFLECTION_PORTS: &[u16] =
    &[17, 19, 53, 111, 123, 137, 161, 389, 520, 1434, 1900, 3283, 3702, 5353, 5683, 10001, 11211];

pub fn default_profile() -> Profile {
    let c = |s: &str| s.parse::<Countermeasure>().expect("built-in countermeasure");
    Profile {
        countermeasures: vec![
            c("fragments"),
            c("reflection"),
            c("bad-tcp-flags"),
            c("syn-limit:pps=200,burst=400"),
            c("rate-limit:pps=20k,burst=40k"),
        ],
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            daemon: DaemonConfig::default(),
            dataplane: DataplaneConfig::default(),
            profiles: BTreeMap::new(),
            signal: SignalServerConfig::default(),
            data_channel: DataChannelConfig::default(),
        }
    }
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            socket: DEFAULT_SOCKET.into(),
            state_dir: "/var/lib/mitigator".into(),
            log: "info".into(),
        }
    }
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            interfaces: Vec::new(),
            attach_mode: AttachModeConfig::Auto,
            pin_dir: "/sys/fs/bpf/mitigator".into(),
            reflection_ports: DEFAULT_REFLECTION_PORTS.to_vec(),
            stats_interval_ms: 1000,
        }
    }
}

impl Config {
    /// Reads a config file; errors name the file, the line and the field.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Config::parse(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
    }

    /// Parses and checks a config text.
    pub fn parse(text: &str) -> Result<Config, String> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        cfg.check()?;
        cfg.profiles.entry("default".into()).or_insert_with(default_profile);
        Ok(cfg)
    }

    fn check(&self) -> Result<(), String> {
        if self.dataplane.stats_interval_ms < 100 {
            return Err(format!(
                "dataplane.stats_interval_ms = {}: must be at least 100",
                self.dataplane.stats_interval_ms
            ));
        }
        for (name, p) in &self.profiles {
            if p.countermeasures.is_empty() {
                return Err(format!("profiles.{name}.countermeasures: must not be empty"));
            }
        }
        let known = |p: &str| p == "default" || self.profiles.contains_key(p);
        if !known(&self.signal.profile) {
            return Err(format!("signal.profile = \"{}\": no such profile", self.signal.profile));
        }
        for (i, r) in self.signal.profile_rules.iter().enumerate() {
            if !known(&r.profile) {
                return Err(format!("signal.profile_rules[{i}].profile = \"{}\": no such profile", r.profile));
            }
        }
        if self.signal.terminating_period_s > self.signal.terminating_max_s {
            return Err("signal.terminating_period_s: must not exceed signal.terminating_max_s".into());
        }
        for (name, r) in [("heartbeat_interval", self.signal.heartbeat_interval), ("missing_hb_allowed", self.signal.missing_hb_allowed)] {
            if r.min == 0 || r.min > r.default || r.default > r.max {
                return Err(format!("signal.{name} = {{ min = {}, max = {}, default = {} }}: need 1 <= min <= default <= max", r.min, r.max, r.default));
            }
        }
        if self.data_channel.lifetime_minutes < 10_080 {
            return Err(format!(
                "data_channel.lifetime_minutes = {}: RFC 8783 (6.1, 7.2) asks for at least 10080 (one week)",
                self.data_channel.lifetime_minutes
            ));
        }
        for (i, c) in self.signal.clients.iter().enumerate() {
            for id in &c.identities {
                crate::signal::identity::Identity::parse(id).map_err(|e| format!("signal.clients[{i}].identities: {e}"))?;
                if let Some(psk) = id.strip_prefix("psk:") {
                    let key = c.psk_keys.get(psk).ok_or_else(|| format!("signal.clients[{i}].psk_keys: no key for identity \"{psk}\""))?;
                    crate::signal::identity::decode_hex(key).map_err(|e| format!("signal.clients[{i}].psk_keys.{psk}: {e}"))?;
                }
            }
        }
        Ok(())
    }

    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        let cfg = Config::parse("").unwrap();
        assert_eq!(cfg.daemon.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(cfg.dataplane.attach_mode, AttachModeConfig::Auto);
        assert!(cfg.dataplane.reflection_ports.contains(&11211));
        assert_eq!(cfg.profile("default"), Some(&default_profile()));
    }

    #[test]
    fn profiles_parse() {
        let cfg = Config::parse(
            "[profiles.web]\ncountermeasures = [\"syn-limit:pps=50\", \"drop-all\"]\n",
        )
        .unwrap();
        assert_eq!(cfg.profile("web").unwrap().countermeasures.len(), 2);
    }

    #[test]
    fn bad_values_name_line_and_field() {
        let e = Config::parse("[dataplane]\nattach_mode = \"auto\"\nreflection_ports = [53, 70000]\n")
            .unwrap_err();
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("reflection_ports"), "{e}");

        let e = Config::parse("[profiles.web]\ncountermeasures = [\"drop-everything\"]\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("`drop-everything`"), "{e}");

        let e = Config::parse("[dataplane]\ninterface = [\"eth0\"]\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("unknown field `interface`"), "{e}");

        let e = Config::parse("[dataplane]\nattach_mode = \"turbo\"\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("turbo"), "{e}");

        let e = Config::parse("[dataplane]\nstats_interval_ms = 5\n").unwrap_err();
        assert!(e.contains("dataplane.stats_interval_ms = 5"), "{e}");
    }
}
