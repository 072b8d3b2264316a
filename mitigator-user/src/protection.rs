//! What a protection is: a scope (prefixes, protocols, destination ports) and
//! the countermeasures applied to traffic in that scope. Parsing from the
//! CLI/config syntax lives here too, so that every entry point refuses bad
//! input with the same message naming the field and the value.

use std::{fmt, str::FromStr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// An inclusive destination-port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl FromStr for PortRange {
    type Err = String;
    /// `443` or `1000-2000`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("port `{s}`: expected a port (0-65535) or a range like 1000-2000");
        let (lo, hi) = match s.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (s.trim(), s.trim()),
        };
        let lo: u16 = lo.parse().map_err(|_| bad())?;
        let hi: u16 = hi.parse().map_err(|_| bad())?;
        if lo > hi {
            return Err(format!("port `{s}`: the range's lower port is above its upper port"));
        }
        Ok(PortRange { lo, hi })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// An IP protocol number, written by name where it has a common one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Protocol(pub u8);

impl Protocol {
    pub const ICMP: Protocol = Protocol(1);
    pub const TCP: Protocol = Protocol(6);
    pub const UDP: Protocol = Protocol(17);
    pub const ICMPV6: Protocol = Protocol(58);
    pub const SCTP: Protocol = Protocol(132);
    const NAMES: [(&'static str, u8); 6] =
        [("icmp", 1), ("tcp", 6), ("udp", 17), ("icmpv6", 58), ("sctp", 132), ("udplite", 136)];

    /// Whether packets of this protocol carry ports a scope can select.
    pub fn has_ports(self) -> bool {
        matches!(self.0, 6 | 17 | 132 | 136)
    }
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.trim().to_ascii_lowercase();
        if let Some((_, n)) = Self::NAMES.iter().find(|(name, _)| *name == lower) {
            return Ok(Protocol(*n));
        }
        lower.parse::<u8>().map(Protocol).map_err(|_| {
            format!("protocol `{s}`: expected tcp, udp, icmp, icmpv6, sctp, udplite or a number 0-255")
        })
    }
}

impl TryFrom<String> for Protocol {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Protocol> for String {
    fn from(p: Protocol) -> String {
        p.to_string()
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Self::NAMES.iter().find(|(_, n)| *n == self.0) {
            Some((name, _)) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

/// One countermeasure, as written on the CLI and in the config:
/// `drop-all`, `fragments`, `reflection`, `bad-tcp-flags`,
/// `syn-limit:pps=100[,burst=200]`, `rate-limit:pps=1000[,bps=10M][,burst=…][,byte-burst=…]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Countermeasure {
    /// Drop everything in scope.
    DropAll,
    /// Drop IP fragments in scope.
    Fragments,
    /// Drop UDP from well-known reflection/amplification source ports.
    Reflection,
    /// Drop TCP segments with invalid flag combinations.
    BadTcpFlags,
    /// Limit pure SYNs per source.
    SynLimit { pps: u64, burst: u64 },
    /// Limit packets/s and/or bytes/s per source.
    RateLimit { pps: u64, pps_burst: u64, bps: u64, bps_burst: u64 },
    /// Answer SYNs to this host's TCP listeners with SYN cookies from XDP;
    /// drop a listener's segments of no connection and no valid cookie.
    SynProxy,
    /// Limit packets/s and/or bytes/s of all sources together (of
    /// `protocols` only, when given).
    AggregateLimit { pps: u64, pps_burst: u64, bps: u64, bps_burst: u64, protocols: Vec<Protocol> },
}

const COUNTERMEASURE_HELP: &str =
    "expected drop-all, fragments, reflection, bad-tcp-flags, syn-proxy, syn-limit:pps=N[,burst=N], rate-limit:pps=N[,bps=N][,burst=N][,byte-burst=N] or aggregate-limit:pps=N[,bps=N][,burst=N][,byte-burst=N][,proto=P]";

impl FromStr for Countermeasure {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, args) = match s.split_once(':') {
            Some((n, a)) => (n.trim(), Some(a)),
            None => (s.trim(), None),
        };
        let simple = |c: Countermeasure| match args {
            None => Ok(c),
            Some(_) => Err(format!("countermeasure `{s}`: `{name}` takes no parameters")),
        };
        match name {
            "drop-all" => simple(Countermeasure::DropAll),
            "fragments" => simple(Countermeasure::Fragments),
            "reflection" => simple(Countermeasure::Reflection),
            "bad-tcp-flags" => simple(Countermeasure::BadTcpFlags),
            "syn-proxy" => simple(Countermeasure::SynProxy),
            "aggregate-limit" => {
                // `proto=` names a protocol (repeatable); the rest are numbers.
                let (protos, rest): (Vec<&str>, Vec<&str>) =
                    args.unwrap_or("").split(',').partition(|kv| kv.trim().starts_with("proto="));
                let protocols = protos
                    .iter()
                    .map(|kv| kv.trim()["proto=".len()..].parse::<Protocol>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("countermeasure `{s}`: {e}"))?;
                let (pps, pps_burst, bps, bps_burst) = rates(s, name, Some(&rest.join(",")))?;
                Ok(Countermeasure::AggregateLimit { pps, pps_burst, bps, bps_burst, protocols })
            }
            "syn-limit" => {
                let p = Params::parse(s, args, &["pps", "burst"])?;
                let pps = p.required(s, "pps")?;
                Ok(Countermeasure::SynLimit { pps, burst: p.get("burst").unwrap_or(pps) })
            }
            "rate-limit" => {
                let (pps, pps_burst, bps, bps_burst) = rates(s, name, args)?;
                Ok(Countermeasure::RateLimit { pps, pps_burst, bps, bps_burst })
            }
            _ => Err(format!("countermeasure `{s}`: {COUNTERMEASURE_HELP}")),
        }
    }
}

/// The rates of `rate-limit` and `aggregate-limit` (`name`): pps, its
/// burst, bps, its burst; a burst defaults to one second of its rate.
fn rates(whole: &str, name: &str, args: Option<&str>) -> Result<(u64, u64, u64, u64), String> {
    let p = Params::parse(whole, args, &["pps", "bps", "burst", "byte-burst"])?;
    let (pps, bps) = (p.get("pps").unwrap_or(0), p.get("bps").unwrap_or(0));
    if pps == 0 && bps == 0 {
        return Err(format!("countermeasure `{whole}`: {name} needs pps=N and/or bps=N"));
    }
    Ok((pps, p.get("burst").unwrap_or(pps), bps, p.get("byte-burst").unwrap_or(bps)))
}

/// `key=value` parameters of a countermeasure; values take k/M/G suffixes.
struct Params(Vec<(String, u64)>);

impl Params {
    fn parse(whole: &str, args: Option<&str>, allowed: &[&str]) -> Result<Self, String> {
        let mut out = Vec::new();
        for kv in args.unwrap_or("").split(',').filter(|kv| !kv.trim().is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("countermeasure `{whole}`: `{kv}` is not key=value"))?;
            let k = k.trim();
            if !allowed.contains(&k) {
                return Err(format!(
                    "countermeasure `{whole}`: unknown parameter `{k}` (allowed: {})",
                    allowed.join(", ")
                ));
            }
            let v = parse_quantity(v.trim())
                .ok_or_else(|| format!("countermeasure `{whole}`: `{k}={v}` is not a positive number (k, M, G suffixes allowed)"))?;
            out.push((k.to_string(), v));
        }
        Ok(Params(out))
    }

    fn get(&self, key: &str) -> Option<u64> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    fn required(&self, whole: &str, key: &str) -> Result<u64, String> {
        self.get(key).ok_or_else(|| format!("countermeasure `{whole}`: `{key}=N` is required"))
    }
}

/// `1500`, `10k`, `2M`, `1G` (decimal multipliers). Zero is refused: a zero
/// rate would silently drop everything, which `drop-all` says explicitly.
fn parse_quantity(s: &str) -> Option<u64> {
    let (num, mul) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1_000),
        (i, 'M') => (&s[..i], 1_000_000),
        (i, 'G') => (&s[..i], 1_000_000_000),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mul).filter(|v| *v > 0)
}

impl TryFrom<String> for Countermeasure {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Countermeasure> for String {
    fn from(c: Countermeasure) -> String {
        c.to_string()
    }
}

impl fmt::Display for Countermeasure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Countermeasure::DropAll => f.write_str("drop-all"),
            Countermeasure::Fragments => f.write_str("fragments"),
            Countermeasure::Reflection => f.write_str("reflection"),
            Countermeasure::BadTcpFlags => f.write_str("bad-tcp-flags"),
            Countermeasure::SynProxy => f.write_str("syn-proxy"),
            Countermeasure::AggregateLimit { pps, pps_burst, bps, bps_burst, protocols } => {
                let mut parts = rate_parts(*pps, *pps_burst, *bps, *bps_burst);
                parts.extend(protocols.iter().map(|p| format!("proto={p}")));
                write!(f, "aggregate-limit:{}", parts.join(","))
            }
            Countermeasure::SynLimit { pps, burst } => write!(f, "syn-limit:pps={pps},burst={burst}"),
            Countermeasure::RateLimit { pps, pps_burst, bps, bps_burst } => {
                write!(f, "rate-limit:{}", rate_parts(*pps, *pps_burst, *bps, *bps_burst).join(","))
            }
        }
    }
}

/// The written form of the rates `rates` parses.
fn rate_parts(pps: u64, pps_burst: u64, bps: u64, bps_burst: u64) -> Vec<String> {
    let mut parts = Vec::new();
    if pps > 0 {
        parts.push(format!("pps={pps},burst={pps_burst}"));
    }
    if bps > 0 {
        parts.push(format!("bps={bps},byte-burst={bps_burst}"));
    }
    parts
}

/// Parses a target prefix and refuses what cannot be a protected target.
/// A bare address is a host route.
pub fn parse_target_prefix(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    let net: IpNet = match s.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => s
            .parse::<std::net::IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("prefix `{s}`: expected an IPv4 or IPv6 prefix like 203.0.113.0/24 or 2001:db8::1"))?,
    };
    if net != net.trunc() {
        return Err(format!("prefix `{s}`: host bits are set; did you mean {}?", net.trunc()));
    }
    let addr = net.network();
    let why = if addr.is_unspecified() {
        Some("the unspecified address")
    } else if addr.is_loopback() {
        Some("a loopback address")
    } else if addr.is_multicast() {
        Some("a multicast address")
    } else if net.prefix_len() == 0 {
        Some("the whole address space")
    } else {
        None
    };
    match why {
        Some(why) => Err(format!("prefix `{s}`: {why} cannot be a protected target")),
        None => Ok(net),
    }
}

/// Parses a source prefix for the accept/drop lists (any unicast or
/// multicast source, but not the whole address space by accident).
pub fn parse_list_prefix(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    let net: IpNet = s
        .parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("prefix `{s}`: expected an IPv4 or IPv6 prefix like 198.51.100.0/24"))?;
    if net != net.trunc() {
        return Err(format!("prefix `{s}`: host bits are set; did you mean {}?", net.trunc()));
    }
    if net.prefix_len() == 0 {
        return Err(format!("prefix `{s}`: a /0 list entry would match every source"));
    }
    Ok(net)
}

/// Who asked for a protection: the local operator or a DOTS client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Owner {
    /// The CLI or the local API.
    Local,
    /// A DOTS client's mitigation (cuid, mid).
    Dots { cuid: String, mid: u32 },
}

/// The longest lifetime a protection may ask for: ten years. Longer is
/// refused rather than carried into time arithmetic.
pub const MAX_LIFETIME_S: u64 = 10 * 365 * 24 * 3600;

/// What is asked: the scope and the countermeasures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectionSpec {
    pub prefixes: Vec<IpNet>,
    /// Empty: every protocol.
    #[serde(default)]
    pub protocols: Vec<Protocol>,
    /// Empty: every port.
    #[serde(default)]
    pub ports: Vec<PortRange>,
    /// Empty: the countermeasures of `profile` (or of the default profile).
    #[serde(default)]
    pub countermeasures: Vec<Countermeasure>,
    #[serde(default)]
    pub profile: Option<String>,
    /// Seconds; none: until removed.
    #[serde(default)]
    pub lifetime: Option<u64>,
}

impl ProtectionSpec {
    /// Checks what parsing alone cannot: the whole spec's consistency.
    pub fn validate(&self) -> Result<(), String> {
        if self.prefixes.is_empty() {
            return Err("prefixes: at least one target prefix is required".into());
        }
        for p in &self.prefixes {
            parse_target_prefix(&p.to_string())?;
        }
        if self.ports.len() > mitigator_common::MAX_PORT_RANGES {
            return Err(format!(
                "ports: {} ranges given, at most {} per protection",
                self.ports.len(),
                mitigator_common::MAX_PORT_RANGES
            ));
        }
        if !self.ports.is_empty()
            && !self.protocols.is_empty()
            && !self.protocols.iter().any(|p| p.has_ports())
        {
            return Err("ports: given, but none of the protocols carries ports (use tcp, udp, sctp or udplite)".into());
        }
        if let Some(r) = self.ports.iter().find(|r| r.lo > r.hi) {
            return Err(format!("ports: range {}-{} has its lower port above its upper port", r.lo, r.hi));
        }
        if self.lifetime == Some(0) {
            return Err("lifetime: must be positive (omit it for a protection that lasts until removed)".into());
        }
        if let Some(l) = self.lifetime.filter(|l| *l > MAX_LIFETIME_S) {
            return Err(format!(
                "lifetime: {l} s is more than {MAX_LIFETIME_S} s (ten years; omit it for a protection that lasts until removed)"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_and_refuse() {
        assert_eq!("443".parse::<PortRange>().unwrap(), PortRange { lo: 443, hi: 443 });
        assert_eq!("1000-2000".parse::<PortRange>().unwrap(), PortRange { lo: 1000, hi: 2000 });
        let e = "70000".parse::<PortRange>().unwrap_err();
        assert!(e.contains("`70000`"), "{e}");
        let e = "20-10".parse::<PortRange>().unwrap_err();
        assert!(e.contains("lower port is above"), "{e}");
    }

    #[test]
    fn protocols_by_name_and_number() {
        assert_eq!("TCP".parse::<Protocol>().unwrap(), Protocol::TCP);
        assert_eq!("47".parse::<Protocol>().unwrap(), Protocol(47));
        assert_eq!(Protocol(17).to_string(), "udp");
        assert!("tcpp".parse::<Protocol>().unwrap_err().contains("`tcpp`"));
    }

    #[test]
    fn countermeasures_round_trip() {
        for s in [
            "drop-all",
            "fragments",
            "reflection",
            "bad-tcp-flags",
            "syn-limit:pps=100,burst=200",
            "syn-proxy",
            "aggregate-limit:pps=50000,burst=100000,proto=udp",
            "aggregate-limit:bps=1000000000,byte-burst=2000000000",
        ] {
            let c: Countermeasure = s.parse().unwrap();
            assert_eq!(c.to_string(), s);
        }
        let c: Countermeasure = "rate-limit:pps=10k,bps=2M".parse().unwrap();
        assert_eq!(c, Countermeasure::RateLimit { pps: 10_000, pps_burst: 10_000, bps: 2_000_000, bps_burst: 2_000_000 });
        assert_eq!(c.to_string().parse::<Countermeasure>().unwrap(), c);
    }

    #[test]
    fn countermeasures_refused_with_value_named() {
        for (s, needle) in [
            ("drop-everything", "`drop-everything`"),
            ("syn-limit", "`pps=N` is required"),
            ("rate-limit:pps=0", "not a positive number"),
            ("rate-limit:ppps=5", "unknown parameter `ppps`"),
            ("fragments:x=1", "takes no parameters"),
            ("rate-limit:", "needs pps=N"),
            ("syn-proxy:x=1", "takes no parameters"),
            ("aggregate-limit:proto=udp", "needs pps=N"),
            ("aggregate-limit:pps=5,proto=udpp", "`udpp`"),
        ] {
            let e = s.parse::<Countermeasure>().unwrap_err();
            assert!(e.contains(needle), "{s}: {e}");
        }
    }

    #[test]
    fn target_prefixes_sanity() {
        assert_eq!(parse_target_prefix("203.0.113.7").unwrap().to_string(), "203.0.113.7/32");
        assert_eq!(parse_target_prefix("2001:db8::/32").unwrap().to_string(), "2001:db8::/32");
        for (s, needle) in [
            ("127.0.0.1", "loopback"),
            ("::1", "loopback"),
            ("224.0.0.1", "multicast"),
            ("0.0.0.0/0", "unspecified"),
            ("::/0", "unspecified"),
            ("203.0.113.7/24", "host bits"),
            ("203.0.113.300", "`203.0.113.300`"),
        ] {
            let e = parse_target_prefix(s).unwrap_err();
            assert!(e.contains(needle), "{s}: {e}");
        }
    }

    #[test]
    fn spec_consistency() {
        let mut spec = ProtectionSpec {
            prefixes: vec!["203.0.113.7/32".parse().unwrap()],
            protocols: vec![Protocol::ICMP],
            ports: vec![PortRange { lo: 53, hi: 53 }],
            countermeasures: vec![],
            profile: None,
            lifetime: None,
        };
        assert!(spec.validate().unwrap_err().contains("ports"));
        spec.protocols.push(Protocol::UDP);
        spec.validate().unwrap();
        spec.lifetime = Some(0);
        assert!(spec.validate().unwrap_err().contains("lifetime"));
        spec.lifetime = Some(u64::MAX);
        assert!(spec.validate().unwrap_err().contains("ten years"));
        spec.lifetime = Some(MAX_LIFETIME_S);
        spec.validate().unwrap();
    }
}
