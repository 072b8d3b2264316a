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

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub daemon: DaemonConfig,
    pub dataplane: DataplaneConfig,
    /// Named countermeasure sets. `default` is always there (built in,
    /// replaceable): it applies to a protection that names none.
    pub profiles: BTreeMap<String, Profile>,
    /// The DOTS signal-channel server.
    pub signal: SignalServerConfig,
    /// Upstream DOTS servers (`[[upstream]]`), one per provisioning domain
    /// (RFC 9284 section 5.1), asked for help by the escalation controller
    /// and the gateway.
    pub upstream: Vec<UpstreamConfig>,
    /// When to ask upstream for help (`[escalation]`).
    pub escalation: EscalationConfig,
    /// Client-domain DOTS gateway (`[gateway]`).
    pub gateway: GatewayConfig,
    /// The DOTS data-channel server (RFC 8783: RESTCONF over HTTPS).
    pub data_channel: DataChannelConfig,
}

/// One upstream DOTS server and its provisioning domain (RFC 9284 5.1:
/// "The DOTS client MUST be able to associate a DOTS server with each
/// provisioning domain it serves").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Unique name, used in logs, status and `fallback` lists.
    pub name: toml::Spanned<String>,
    /// `HOST`, `HOST:PORT` or `[IPv6]:PORT` (port 4646 by default).
    pub server: crate::client_dots::ServerAddr,
    /// Provider-assigned prefixes of this domain: requests for targets
    /// inside them go to this server only (RFC 9284 5.1). Targets inside no
    /// domain's prefixes are provider-independent and go to every server
    /// that is not `fallback_only`.
    #[serde(default)]
    pub prefixes: Vec<ipnet::IpNet>,
    /// Servers (by name) tried in turn when this one refuses or cannot be
    /// reached (the use cases' "fallback upstream DDoS mitigation service").
    #[serde(default)]
    pub fallback: Vec<String>,
    /// Used only as some server's fallback, never asked first.
    #[serde(default)]
    pub fallback_only: bool,
    #[serde(default)]
    pub transport: crate::client_dots::TransportChoice,
    /// PSK identity and key (hex), DTLS only; or `cert`, `key` and `ca`.
    pub psk_identity: Option<String>,
    pub psk_key: Option<String>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    /// Source address of the sessions with this server (RFC 9284 5.1: the
    /// session "must be established using the interface from which the DOTS
    /// server was provisioned").
    pub source: Option<std::net::IpAddr>,
    pub interface: Option<String>,
}

/// The escalation controller: capacity, thresholds, hold times, retries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EscalationConfig {
    /// Ask upstream when a target's load exceeds the capacity (needs at
    /// least one `[[upstream]]`).
    pub enabled: bool,
    /// What the host and its link can take: bits/s and packets/s (passed
    /// plus dropped by XDP; the program sees every packet).
    pub capacity_bps: u64,
    pub capacity_pps: u64,
    /// A target whose inbound load exceeds `high` x capacity (pps or bps) for
    /// `hold_up_ms` is escalated; it is withdrawn after its load (local plus
    /// what the upstream reports dropping) stays under `low` x capacity (pps
    /// and bps) for `hold_down_ms`.
    pub high: f64,
    pub low: f64,
    pub hold_up_ms: u64,
    pub hold_down_ms: u64,
    /// Backoff between rounds of attempts when every server refused or was
    /// unreachable, doubling from min to max; also the client's reconnect
    /// backoff (RFC 9132 4.7 recommends minutes; tests use seconds).
    pub retry_min_ms: u64,
    pub retry_max_ms: u64,
    /// How often an active upstream mitigation's status is read and an
    /// efficacy update considered (4.4.3).
    pub efficacy_interval_ms: u64,
    /// Lifetime asked for upstream mitigations, seconds (refreshed by the client).
    pub lifetime_s: u32,
    /// Heartbeat interval to negotiate with upstream servers, seconds.
    pub heartbeat_interval_s: Option<u16>,
}

impl Default for EscalationConfig {
    fn default() -> Self {
        EscalationConfig {
            enabled: true,
            capacity_bps: 10_000_000_000,
            capacity_pps: 2_000_000,
            high: 0.8,
            low: 0.5,
            hold_up_ms: 5_000,
            hold_down_ms: 60_000,
            retry_min_ms: 5_000,
            retry_max_ms: 300_000,
            efficacy_interval_ms: 10_000,
            lifetime_s: 3600,
            heartbeat_interval_s: None,
        }
    }
}

/// What the gateway does with downstream requests no upstream manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayOthers {
    /// Mitigate here, as a DOTS server.
    Local,
    /// 4.00 naming the prefix (RFC 9284 5.3: "forwarded upstream ... or rejected").
    Reject,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Relay downstream requests for prefixes an upstream manages.
    pub enabled: bool,
    /// Provider-independent prefixes relayed to every upstream (PA prefixes
    /// are those of each `[[upstream]]`).
    pub relay_prefixes: Vec<ipnet::IpNet>,
    pub others: GatewayOthers,
    /// How often relayed mitigations' upstream status is read, ms.
    pub poll_interval_ms: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig { enabled: false, relay_prefixes: Vec::new(), others: GatewayOthers::Local, poll_interval_ms: 2000 }
    }
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
    /// Resolve packet destinations through the XDP program's per-CPU
    /// destination cache (see README, Architecture). `false` only to measure
    /// or rule out the cache: every packet then pays the full lookup.
    pub dst_cache: bool,
    /// How long after a generation flip the old generation is left alone
    /// before it is rewritten, in milliseconds (see README, Architecture:
    /// changes within it share one flip). An XDP run ends within
    /// microseconds on an ordinary kernel; raise it on PREEMPT_RT kernels,
    /// where a run can be preempted.
    #[serde(deserialize_with = "grace_ms")]
    pub grace_ms: u64,
}

fn grace_ms<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = u64::deserialize(d)?;
    if !(1..=10_000).contains(&v) {
        return Err(serde::de::Error::custom(format!(
            "{v} ms: must be from 1 to 10000 (the default, 20, is far above an XDP run on an ordinary kernel)"
        )));
    }
    Ok(v)
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
    /// Keep traffic to this daemon's own DOTS listeners (`dtls_listen`,
    /// `tls_listen`, `data_channel.listen`) out of reach of drop
    /// countermeasures and client ACLs, rate-limited (`compiler::guard`).
    pub guard: bool,
    /// The guard's limit per listener: bytes/s of frames as XDP sees them
    /// (Ethernet header included); the burst is one second of it.
    #[serde(deserialize_with = "guard_rate")]
    pub guard_bytes_per_s: u64,
}

/// Default guard rate: 1 Mbit/s per listener. A few hundred clients need
/// far less in steady state (a heartbeat of ~150 bytes every 30 s each,
/// RFC 9132 4.5.2's default interval), and reconnecting all at once (a
/// DTLS handshake with a client certificate is ~3-4 kB) takes seconds.
pub const DEFAULT_GUARD_BYTES_PER_S: u64 = 125_000;

/// The smallest guard rate: its one-second burst must hold a full-size
/// Ethernet frame, or such frames would never pass.
pub const MIN_GUARD_BYTES_PER_S: u64 = 1514;

fn guard_rate<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = u64::deserialize(d)?;
    // The data plane's bucket holds rate * 1e9 byte-ns in a u64.
    let max = u64::MAX / 1_000_000_000;
    if v < MIN_GUARD_BYTES_PER_S {
        return Err(serde::de::Error::custom(format!(
            "{v} bytes/s: must be at least {MIN_GUARD_BYTES_PER_S} (one full-size frame per second; use guard = false to turn the guard off)"
        )));
    }
    if v > max {
        return Err(serde::de::Error::custom(format!("{v} bytes/s: must be at most {max}")));
    }
    Ok(v)
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
            guard: true,
            guard_bytes_per_s: DEFAULT_GUARD_BYTES_PER_S,
        }
    }
}

/// chargen, DNS, NTP, SNMP, CLDAP, SSDP, memcached, plus portmap, NetBIOS,
/// QOTD, RIPv1, MS-SQL browser, OpenVPN, WS-Discovery, ARD, CoAP, Ubiquiti
/// discovery and mDNS: services commonly abused for amplification.
pub const DEFAULT_REFLECTION_PORTS: &[u16] =
    &[17, 19, 53, 111, 123, 137, 161, 389, 520, 1434, 1900, 3283, 3702, 5353, 5683, 10001, 11211];

/// The built-in default profile, made to hold the attacks real hosts get,
/// from spoofed random sources (README, "Countermeasures"): SYN floods are
/// answered with cookies from XDP (no per-source SYN cap, which a NATed
/// office or a proxy would hit); ACK/RST/FIN floods at listeners die for
/// want of a cookie or a connection; a UDP flood is cut to what a host's
/// stack takes in its stride whatever the number of sources; one source
/// alone is held to 20k packets/s.
pub fn default_profile() -> Profile {
    let c = |s: &str| s.parse::<Countermeasure>().expect("built-in countermeasure");
    Profile {
        countermeasures: vec![
            c("fragments"),
            c("reflection"),
            c("bad-tcp-flags"),
            c("syn-proxy"),
            c("rate-limit:pps=20k,burst=40k"),
            c("aggregate-limit:pps=50k,burst=100k,proto=udp"),
        ],
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
            dst_cache: true,
            grace_ms: crate::dataplane::GRACE.as_millis() as u64,
        }
    }
}

impl Config {
    /// Reads a config file; errors name the file, the line and the field.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
        Ok(Config::parse(&text).map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))?)
    }

    /// The pin directory a config file names, and nothing else read:
    /// `mitigator uninstall` needs only it, and a file whose other sections
    /// are broken (a missing credential of an `[[upstream]]`) must not keep
    /// the pins from being removed.
    pub fn pin_dir_of(path: &Path) -> anyhow::Result<PathBuf> {
        #[derive(Deserialize)]
        struct Only {
            #[serde(default)]
            dataplane: OnlyDataplane,
        }
        #[derive(Deserialize, Default)]
        struct OnlyDataplane {
            pin_dir: Option<PathBuf>,
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let only: Only = toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
        Ok(only.dataplane.pin_dir.unwrap_or_else(|| DataplaneConfig::default().pin_dir))
    }

    /// Parses and checks a config text.
    pub fn parse(text: &str) -> Result<Config, String> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        cfg.check()?;
        cfg.check_upstreams(text)?;
        cfg.profiles.entry("default".into()).or_insert_with(default_profile);
        Ok(cfg)
    }

    fn check(&self) -> Result<(), String> {
        let guarded = crate::compiler::guard::listeners(self).len();
        if guarded > mitigator_common::MAX_GUARD as usize {
            return Err(format!(
                "signal.guard: {guarded} listen addresses to guard (signal dtls_listen, tls_listen, data_channel listen): \
                 at most {}",
                mitigator_common::MAX_GUARD
            ));
        }
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

    /// `[[upstream]]`, `[escalation]`, `[gateway]`: errors name the line of
    /// the upstream's `name` and the field.
    fn check_upstreams(&self, text: &str) -> Result<(), String> {
        let at = |u: &UpstreamConfig| format!("line {}, upstream \"{}\"", line_of(text, u.name.span().start), u.name.get_ref());
        // The line of one of the upstream's own keys (the name's if absent).
        let at_field = |u: &UpstreamConfig, field: &str| {
            let line = field_line(text, u.name.span().start, field).unwrap_or_else(|| line_of(text, u.name.span().start));
            format!("line {line}, upstream \"{}\"", u.name.get_ref())
        };
        for (i, u) in self.upstream.iter().enumerate() {
            let name = u.name.get_ref();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(format!("{}: name: use letters, digits, '-' and '_'", at(u)));
            }
            if self.upstream[..i].iter().any(|o| o.name.get_ref() == name) {
                return Err(format!("{}: name: another [[upstream]] has this name", at(u)));
            }
            let psk = (u.psk_identity.is_some(), u.psk_key.is_some());
            let cert = (u.cert.is_some(), u.key.is_some(), u.ca.is_some());
            match (psk, cert) {
                ((true, true), (false, false, _)) => {
                    crate::signal::identity::decode_hex(u.psk_key.as_deref().unwrap_or_default())
                        .map_err(|e| format!("{}: psk_key: {e}", at_field(u, "psk_key")))?;
                }
                ((false, false), (true, true, true)) => {
                    // Read now, so that a missing file names its line and
                    // field, and nothing is touched before.
                    for (field, path) in [("cert", &u.cert), ("key", &u.key), ("ca", &u.ca)] {
                        let path = path.as_deref().expect("set");
                        std::fs::File::open(path).map_err(|e| {
                            format!("{}: {field}: cannot read {}: {e}", at_field(u, field), path.display())
                        })?;
                    }
                }
                ((false, false), (false, false, _)) => {
                    return Err(format!("{}: no credential: set psk_identity and psk_key, or cert, key and ca", at(u)))
                }
                ((true, false), _) => return Err(format!("{}: psk_key: missing (psk_identity is set)", at(u))),
                ((false, true), _) => return Err(format!("{}: psk_identity: missing (psk_key is set)", at(u))),
                ((true, true), _) => return Err(format!("{}: give either psk_identity/psk_key or cert/key/ca, not both", at(u))),
                (_, (c, k, ca)) => {
                    let missing = [(c, "cert"), (k, "key"), (ca, "ca")].iter().find(|(set, _)| !set).map(|(_, f)| *f).unwrap_or("cert");
                    return Err(format!("{}: {missing}: missing (a certificate credential needs cert, key and ca)", at(u)));
                }
            }
            for f in &u.fallback {
                if f == name || !self.upstream.iter().any(|o| o.name.get_ref() == f) {
                    return Err(format!("{}: fallback: \"{f}\" is not the name of another [[upstream]]", at(u)));
                }
            }
            // A prefix is assigned by one provider: which would own an
            // address in two overlapping ones is refused, not guessed.
            for o in &self.upstream[..i] {
                for p in &u.prefixes {
                    if let Some(q) = o.prefixes.iter().find(|q| q.contains(p) || p.contains(*q)) {
                        return Err(format!(
                            "{}: prefixes: {p} overlaps {q} of upstream \"{}\" (a prefix is provider-assigned by one provider only)",
                            at_field(u, "prefixes"),
                            o.name.get_ref()
                        ));
                    }
                }
            }
            if u.transport == crate::client_dots::TransportChoice::Tls && u.psk_identity.is_some() {
                return Err(format!("{}: transport: PSK works over DTLS only (use \"dtls\" or \"auto\")", at(u)));
            }
        }
        let e = &self.escalation;
        if !(0.0 < e.low && e.low < e.high && e.high <= 1.0) {
            return Err(format!("escalation.low = {}, escalation.high = {}: need 0 < low < high <= 1", e.low, e.high));
        }
        if e.capacity_bps == 0 || e.capacity_pps == 0 {
            return Err("escalation.capacity_bps, capacity_pps: must be positive".into());
        }
        if e.retry_min_ms == 0 || e.retry_min_ms > e.retry_max_ms {
            return Err(format!("escalation.retry_min_ms = {}: need 1 <= retry_min_ms <= retry_max_ms", e.retry_min_ms));
        }
        if e.efficacy_interval_ms < 100 {
            return Err(format!("escalation.efficacy_interval_ms = {}: must be at least 100", e.efficacy_interval_ms));
        }
        if e.lifetime_s == 0 {
            return Err("escalation.lifetime_s: must be positive".into());
        }
        if self.gateway.enabled && self.upstream.is_empty() {
            return Err("gateway.enabled: a gateway needs at least one [[upstream]]".into());
        }
        Ok(())
    }

    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }
}

/// 1-based line of a byte offset.
/// The line of key `field` in the table that holds byte `offset` (from the
/// table's header to the next one).
fn field_line(text: &str, offset: usize, field: &str) -> Option<usize> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind("\n[").map(|i| i + 1).unwrap_or(0);
    let end = text[offset..].find("\n[").map(|i| offset + i).unwrap_or(text.len());
    let mut pos = start;
    for line in text[start..end].split_inclusive('\n') {
        let key = line.trim_start();
        if key.strip_prefix(field).is_some_and(|rest| rest.trim_start().starts_with('=')) {
            return Some(line_of(text, pos));
        }
        pos += line.len();
    }
    None
}

/// A configuration refused: the file, line and field are in the text. The
/// CLI exits 2 for it, as for any bad argument.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_parse_and_bad_ones_name_line_and_field() {
        let ok = "[[upstream]]\nname = \"A\"\nserver = \"192.0.2.1\"\nprefixes = [\"198.51.100.0/25\"]\npsk_identity = \"h\"\npsk_key = \"00ff\"\nfallback = [\"B\"]\n\n[[upstream]]\nname = \"B\"\nserver = \"[2001:db8::1]:5000\"\ncert = \"/dev/null\"\nkey = \"/dev/null\"\nca = \"/dev/null\"\n";
        let cfg = Config::parse(ok).unwrap();
        // A credential file is opened at parse: a missing one names its line.
        let e = Config::parse(&ok.replace("ca = \"/dev/null\"", "ca = \"/nonexistent/ca.pem\"")).unwrap_err();
        assert!(e.contains("line 14, upstream \"B\": ca: cannot read /nonexistent/ca.pem"), "{e}");
        assert_eq!(cfg.upstream.len(), 2);
        assert_eq!(cfg.upstream[1].server.port, 5000);

        let e = Config::parse("\n[[upstream]]\nname = \"A\"\nserver = \"host:99999\"\npsk_identity = \"h\"\npsk_key = \"00\"\n").unwrap_err();
        assert!(e.contains("line 4") && e.contains("server") && e.contains("bad server address"), "{e}");
        let e = Config::parse("\n\n[[upstream]]\nname = \"A\"\nserver = \"192.0.2.1\"\n").unwrap_err();
        assert!(e.contains("line 4") && e.contains("no credential"), "{e}");
        let e = Config::parse("[[upstream]]\nname = \"A\"\nserver = \"192.0.2.1\"\ncert = \"c\"\nkey = \"k\"\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("ca: missing"), "{e}");
        let e = Config::parse("[[upstream]]\nname = \"A\"\nserver = \"192.0.2.1\"\npsk_identity = \"h\"\npsk_key = \"00\"\nfallback = [\"Z\"]\n").unwrap_err();
        assert!(e.contains("fallback") && e.contains("\"Z\""), "{e}");
        let psk = "psk_identity = \"h\"\npsk_key = \"00\"\n";
        let e = Config::parse(&format!(
            "[[upstream]]\nname = \"A\"\nserver = \"192.0.2.1\"\nprefixes = [\"198.51.100.0/24\"]\n{psk}\n[[upstream]]\nname = \"B\"\nserver = \"192.0.2.2\"\n{psk}prefixes = [\"198.51.100.128/25\"]\n"
        ))
        .unwrap_err();
        assert!(e.contains("line 13") && e.contains("198.51.100.128/25 overlaps 198.51.100.0/24 of upstream \"A\""), "{e}");
        let e = Config::parse("[[upstream]]\nname = \"A\"\nsrever = \"192.0.2.1\"\n").unwrap_err();
        assert!(e.contains("line 3") && e.contains("srever"), "{e}");
        let e = Config::parse("[escalation]\nhigh = 0.4\nlow = 0.5\n").unwrap_err();
        assert!(e.contains("escalation.low"), "{e}");
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let cfg = Config::parse("").unwrap();
        assert_eq!(cfg.daemon.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(cfg.dataplane.attach_mode, AttachModeConfig::Auto);
        assert!(cfg.dataplane.reflection_ports.contains(&11211));
        assert_eq!(cfg.profile("default"), Some(&default_profile()));
        assert!(cfg.signal.guard);
        assert_eq!(cfg.signal.guard_bytes_per_s, DEFAULT_GUARD_BYTES_PER_S);
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

        let e = Config::parse("[dataplane]\ndst_cache = true\ngrace_ms = 0\n").unwrap_err();
        assert!(e.contains("line 3") && e.contains("grace_ms") && e.contains("from 1 to 10000"), "{e}");
        let e = Config::parse("[signal]\nguard = true\nguard_bytes_per_s = 0\n").unwrap_err();
        assert!(e.contains("line 3") && e.contains("guard_bytes_per_s") && e.contains("at least 1514"), "{e}");
        let e = Config::parse("[signal]\nguard_bytes_per_s = 99999999999\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("at most"), "{e}");
        let many: Vec<String> = (0..9).map(|i| format!("\"192.0.2.{i}:4646\"")).collect();
        let e = Config::parse(&format!("[signal]\ndtls_listen = [{}]\n", many.join(", "))).unwrap_err();
        assert!(e.contains("signal.guard") && e.contains("at most 8"), "{e}");
        let e = Config::parse("[signal]\nguard = \"yes\"\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("guard"), "{e}");
    }
}
