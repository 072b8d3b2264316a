//! What a DOTS client needs to know: the server, its credential, which transports to
//! try, the session parameters it would like (negotiated within the server's ranges,
//! 4.5), and the timings of reconnection.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use dots_proto::signal::{Decimal, DEFAULT_PORT};

use super::session::SessionParams;
use super::state::StateFile;
use crate::transport::ClientSecurity;

/// A server as the operator writes it: `host`, `host:port`, `[v6]:port` or a bare IPv6
/// address; the port defaults to 4646 (section 10.1).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct ServerAddr {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for ServerAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("bad server address {s:?}: {why} (expected HOST, HOST:PORT or [IPv6]:PORT)");
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.parse::<std::net::Ipv6Addr>().is_ok() {
            return Ok(ServerAddr { host: s.to_string(), port: DEFAULT_PORT });
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            h.parse::<std::net::Ipv6Addr>().map_err(|_| bad("not an IPv6 address inside []"))?;
            match after {
                "" => (h, None),
                p => (h, Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?)),
            }
        } else {
            match s.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad("port must be 1-65535"))?,
        };
        let valid_host = !host.is_empty()
            && host.len() <= 253
            && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
        if !valid_host {
            return Err(bad("not a host name or address"));
        }
        Ok(ServerAddr { host: host.to_string(), port })
    }
}

impl TryFrom<String> for ServerAddr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// Which secure transports to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportChoice {
    /// Happy eyeballs over both, DTLS preferred (4.3).
    #[default]
    Auto,
    Dtls,
    Tls,
}

/// Values the client would like for the session (4.5.2); each is clamped into the
/// server's acceptable range, and absent ones take the server's current value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Preferences {
    pub heartbeat_interval: Option<u16>,
    pub missing_hb_allowed: Option<u16>,
    pub probing_rate: Option<u16>,
    pub max_retransmit: Option<u16>,
    pub ack_timeout: Option<Decimal>,
    pub ack_random_factor: Option<Decimal>,
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub server: ServerAddr,
    pub security: ClientSecurity,
    pub transport: TransportChoice,
    /// Where 'mid' and 'sid' are kept; default per server (see [`StateFile`]).
    pub state: StateFile,
    pub preferences: Preferences,
    /// GET /config then PUT /config at the start of each session (4.5).
    pub negotiate: bool,
    /// Parameters before (or without) negotiation.
    pub initial: SessionParams,
    /// Bound on one (D)TLS handshake attempt.
    pub handshake_timeout: Duration,
    /// RFC 8305 "Connection Attempt Delay" between happy-eyeballs attempts (4.3: 100 ms
    /// during an attack; 250 ms is RFC 8305's default).
    pub attempt_delay: Duration,
    /// How long the outcome of happy eyeballs is remembered (4.3: "e.g., 10 min").
    pub eyeballs_cache: Duration,
    /// First wait after a failed reconnection, doubling up to `reconnect_max`. 4.7: "SHOULD
    /// NOT retry ... more frequently than every 300 seconds ... MUST NOT ... every 60".
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Observe each mitigation this client creates (4.4.2.1), so that [`super::DotsClient::updates`]
    /// reports its status changes.
    pub observe_own: bool,
    /// Source address and interface of the sessions (RFC 9284 5.1).
    pub bind: crate::transport::LocalBind,
}

impl ClientConfig {
    pub fn new(server: ServerAddr, security: ClientSecurity) -> Self {
        let state = StateFile::default_for(&server.to_string());
        ClientConfig {
            server,
            security,
            transport: TransportChoice::Auto,
            state,
            preferences: Preferences::default(),
            negotiate: true,
            initial: SessionParams::default(),
            handshake_timeout: Duration::from_secs(10),
            attempt_delay: Duration::from_millis(250),
            eyeballs_cache: Duration::from_secs(600),
            reconnect_min: Duration::from_secs(60),
            reconnect_max: Duration::from_secs(300),
            observe_own: true,
            bind: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        let p = |s: &str| s.parse::<ServerAddr>();
        assert_eq!(p("dots.example.net").unwrap(), ServerAddr { host: "dots.example.net".into(), port: 4646 });
        assert_eq!(p("192.0.2.1:5000").unwrap(), ServerAddr { host: "192.0.2.1".into(), port: 5000 });
        assert_eq!(p("[2001:db8::1]:7").unwrap(), ServerAddr { host: "2001:db8::1".into(), port: 7 });
        assert_eq!(p("2001:db8::1").unwrap(), ServerAddr { host: "2001:db8::1".into(), port: 4646 });
        assert_eq!(p("[::1]").unwrap().to_string(), "[::1]:4646");
        for bad in ["", "host:", "host:0", "host:70000", "host:x", "[::1", "[nope]:1", "a b", "h/x:1"] {
            let e = p(bad).unwrap_err();
            assert!(e.contains("bad server address"), "{bad}: {e}");
        }
    }
}
