//! `mitigator client ...`: the DOTS client for operators and scripts.
//!
//! Exit codes (also in README.md, "DOTS client"):
//! 0 done; 2 bad arguments (the value is named); 3 refused by the server (CoAP code and
//! diagnostic printed); 4 server unreachable or no answer in time; 5 credentials missing,
//! unreadable or refused in the handshake; 1 anything else.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use dots_proto::signal::{
    ActivationType, ControlAcl, Decimal, IpPrefix, Lifetime, MitigationScope, PortRange, Scope, SignalBody,
};
use tokio::io::AsyncWriteExt;

use super::{
    ClientConfig, ClientError, DotsClient, MitigationSpec, Preferences, ServerAddr, StateFile, TransportChoice,
};
use crate::protection::Protocol;
use crate::transport::{ClientCredential, ClientSecurity};

pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const REFUSED: u8 = 3;
    pub const UNREACHABLE: u8 = 4;
    pub const CREDENTIALS: u8 = 5;
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Ask the server to mitigate attacks on a target (PUT, RFC 9132 4.4.1); prints the mid and status.
    Mitigate {
        #[command(flatten)]
        conn: ConnectArgs,
        /// Target prefixes (a bare address is a host route).
        #[arg(long = "target", required = true, value_parser = parse_prefix)]
        targets: Vec<IpPrefix>,
        /// Destination ports or ranges (443, 1000-2000); default: all.
        #[arg(long = "port", value_parser = parse_port_range)]
        ports: Vec<PortRange>,
        /// Protocols (tcp, udp, icmp, a number); default: all.
        #[arg(long = "proto")]
        protocols: Vec<Protocol>,
        /// Seconds, or -1 for indefinite (the server may refuse it).
        #[arg(long, default_value_t = 3600, allow_negative_numbers = true, value_parser = parse_lifetime)]
        lifetime: i64,
        /// RFC 9133: set the activation type of an ACL this client installed over the data
        /// channel, NAME[=activate-when-mitigating|immediate|deactivate] (default
        /// activate-when-mitigating); needs another active mitigation of this client.
        #[arg(long = "acl", value_parser = parse_control_acl)]
        acls: Vec<ControlAcl>,
    },
    /// Withdraw a mitigation (DELETE, 4.4.4).
    Withdraw {
        #[command(flatten)]
        conn: ConnectArgs,
        #[arg(long)]
        mid: u32,
    },
    /// Show the status of one or all of this client's mitigations (GET, 4.4.2).
    Status {
        #[command(flatten)]
        conn: ConnectArgs,
        #[arg(long)]
        mid: Option<u32>,
        /// Keep the session and print each notification (Observe, 4.4.2.1) until Ctrl-C.
        #[arg(long)]
        watch: bool,
    },
    /// Show the server's session configuration ranges, or negotiate values (4.5).
    Config {
        #[command(flatten)]
        conn: ConnectArgs,
        /// Only show the server's ranges and current values (GET /config).
        #[arg(long)]
        show: bool,
        #[arg(long)]
        heartbeat_interval: Option<u16>,
        #[arg(long)]
        missing_hb_allowed: Option<u16>,
        #[arg(long)]
        max_retransmit: Option<u16>,
        #[arg(long)]
        probing_rate: Option<u16>,
        /// Seconds with up to two decimals, e.g. 2.00.
        #[arg(long, value_parser = parse_decimal)]
        ack_timeout: Option<Decimal>,
        #[arg(long, value_parser = parse_decimal)]
        ack_random_factor: Option<Decimal>,
    },
}

#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// The DOTS server: HOST, HOST:PORT or [IPv6]:PORT (port 4646 by default).
    #[arg(long)]
    pub server: String,
    /// Client certificate (PEM); with --key and --ca.
    #[arg(long, requires_all = ["key", "ca"], conflicts_with = "psk_identity")]
    pub cert: Option<PathBuf>,
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// CA that the server certificate must chain to (PEM).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// PSK identity (DTLS only); with --psk-key.
    #[arg(long, requires = "psk_key")]
    pub psk_identity: Option<String>,
    /// PSK key in hex.
    #[arg(long, requires = "psk_identity", value_parser = parse_hex)]
    pub psk_key: Option<HexKey>,
    #[arg(long, value_enum, default_value_t = TransportArg::Auto)]
    pub transport: TransportArg,
    /// mid/sid state file (default ~/.local/state/mitigator/client-<server>.json).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Seconds allowed for connecting (each handshake attempt).
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// Skip the session configuration exchange (GET+PUT /config) at connection.
    #[arg(long)]
    pub no_negotiate: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TransportArg {
    Auto,
    Dtls,
    Tls,
}

fn parse_prefix(s: &str) -> Result<IpPrefix, String> {
    let net = crate::protection::parse_target_prefix(s)?;
    IpPrefix::new(net.addr(), net.prefix_len()).ok_or_else(|| format!("prefix `{s}`: bad length"))
}

fn parse_port_range(s: &str) -> Result<PortRange, String> {
    let bad = || format!("port `{s}`: expected N or N-M with 0 <= N <= M <= 65535");
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (a.parse::<u16>().map_err(|_| bad())?, Some(b.parse::<u16>().map_err(|_| bad())?)),
        None => (s.parse::<u16>().map_err(|_| bad())?, None),
    };
    if hi.is_some_and(|h| h < lo) {
        return Err(bad());
    }
    Ok(PortRange { lower_port: lo, upper_port: hi.filter(|h| *h != lo) })
}

fn parse_control_acl(s: &str) -> Result<ControlAcl, String> {
    let (name, kind) = match s.split_once('=') {
        Some((n, k)) => (n, Some(k)),
        None => (s, None),
    };
    if name.is_empty() {
        return Err(format!("acl `{s}`: expected NAME[=activation-type]"));
    }
    let activation_type = kind
        .map(|k| {
            ActivationType::ALL.iter().copied().find(|a| a.label() == k).ok_or_else(|| {
                format!("acl `{s}`: activation type `{k}` is not activate-when-mitigating, immediate or deactivate")
            })
        })
        .transpose()?;
    Ok(ControlAcl { acl_name: name.to_string(), activation_type })
}

fn parse_lifetime(s: &str) -> Result<i64, String> {
    match s.parse::<i64>() {
        Ok(-1) => Ok(-1),
        Ok(n) if n > 0 && n <= i64::from(u32::MAX) => Ok(n),
        _ => Err(format!("lifetime `{s}`: seconds (1..=4294967295) or -1 for indefinite; 0 is invalid (4.4.1.1)")),
    }
}

/// A key given in hex (a newtype: clap would read a `Vec<u8>` as many values).
#[derive(Clone, Debug)]
pub struct HexKey(pub Vec<u8>);

fn parse_hex(s: &str) -> Result<HexKey, String> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.is_empty() || s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("PSK key `{s}`: expected an even number of hex digits"));
    }
    Ok(HexKey((0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("checked")).collect()))
}

fn parse_decimal(s: &str) -> Result<Decimal, String> {
    s.parse::<Decimal>().map_err(|_| format!("`{s}`: expected a decimal with up to two digits, e.g. 2.00"))
}

/// A failure with its exit code.
struct Failure {
    code: u8,
    message: String,
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        let code = match &e {
            ClientError::Refused { .. } => exit::REFUSED,
            ClientError::Unreachable(_) | ClientError::Timeout => exit::UNREACHABLE,
            ClientError::Credentials(_) => exit::CREDENTIALS,
            _ => exit::FAILED,
        };
        Failure { code, message: e.to_string() }
    }
}

fn usage(message: String) -> Failure {
    Failure { code: exit::USAGE, message }
}

pub async fn main(cmd: ClientCommand) -> ExitCode {
    init_logging();
    match run(cmd).await {
        Ok(()) => ExitCode::from(exit::OK),
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
}

async fn run(cmd: ClientCommand) -> Result<(), Failure> {
    match cmd {
        ClientCommand::Mitigate { conn, targets, ports, protocols, lifetime, acls } => {
            let lifetime = if lifetime == -1 { Lifetime::Indefinite } else { Lifetime::Seconds(lifetime as u32) };
            let spec = MitigationSpec::prefixes(targets)
                .with_ports(ports)
                .with_protocols(protocols.iter().map(|p| p.0).collect())
                .with_lifetime(lifetime)
                .with_acls(acls);
            let client = connect(&conn, Preferences::default()).await?;
            let ack = client.mitigate(&spec).await;
            let result = match ack {
                Ok(ack) => {
                    let scopes = client.status(Some(ack.mid)).await.unwrap_or_default();
                    print_ack(ack.mid, &ack.code.to_string(), ack.lifetime, scopes.first(), conn.json);
                    Ok(())
                }
                Err(e) => Err(e.into()),
            };
            client.close().await;
            result
        }
        ClientCommand::Withdraw { conn, mid } => {
            let client = connect(&conn, Preferences::default()).await?;
            let r = client.withdraw(mid).await;
            // Active-but-terminating (4.4.4): the server may still report it, with status 5.
            let after = if r.is_ok() { client.status(Some(mid)).await.ok() } else { None };
            client.close().await;
            r?;
            print_withdrawn(mid, after.as_ref().and_then(|s| s.first()), conn.json);
            Ok(())
        }
        ClientCommand::Status { conn, mid, watch } => {
            let client = connect(&conn, Preferences::default()).await?;
            let r = if watch {
                watch_status(&client, mid, conn.json).await
            } else {
                show_status(&client, mid, conn.json).await
            };
            client.close().await;
            r
        }
        ClientCommand::Config {
            conn,
            show,
            heartbeat_interval,
            missing_hb_allowed,
            max_retransmit,
            probing_rate,
            ack_timeout,
            ack_random_factor,
        } => {
            let prefs = Preferences {
                heartbeat_interval,
                missing_hb_allowed,
                probing_rate,
                max_retransmit,
                ack_timeout,
                ack_random_factor,
            };
            let mut conn = conn;
            if show {
                conn.no_negotiate = true;
            }
            let client = connect(&conn, prefs).await?;
            let r = client.server_config().await;
            client.close().await;
            let cfg = r?;
            println!(
                "{}",
                if conn.json {
                    cfg.to_json().to_string()
                } else {
                    serde_json::to_string_pretty(&cfg.to_json()).expect("JSON")
                }
            );
            Ok(())
        }
    }
}

fn read_file(what: &str, p: &PathBuf) -> Result<Vec<u8>, Failure> {
    std::fs::read(p).map_err(|e| Failure { code: exit::CREDENTIALS, message: format!("{what} {}: {e}", p.display()) })
}

fn security(conn: &ConnectArgs) -> Result<ClientSecurity, Failure> {
    let ca_pem = conn.ca.as_ref().map(|p| read_file("CA", p)).transpose()?;
    let credential = match (&conn.cert, &conn.key, &conn.psk_identity, &conn.psk_key) {
        (Some(c), Some(k), None, None) => {
            ClientCredential::Certificate { cert_pem: read_file("certificate", c)?, key_pem: read_file("key", k)? }
        }
        (None, None, Some(i), Some(k)) => ClientCredential::Psk { identity: i.as_bytes().to_vec(), key: k.0.clone() },
        _ => {
            return Err(Failure {
                code: exit::CREDENTIALS,
                message: "no credential: give --cert, --key and --ca, or --psk-identity and --psk-key".into(),
            })
        }
    };
    Ok(ClientSecurity { credential, ca_pem })
}

async fn connect(conn: &ConnectArgs, preferences: Preferences) -> Result<DotsClient, Failure> {
    let server: ServerAddr = conn.server.parse().map_err(usage)?;
    let security = security(conn)?;
    let mut cfg = ClientConfig::new(server, security);
    cfg.transport = match conn.transport {
        TransportArg::Auto => TransportChoice::Auto,
        TransportArg::Dtls => TransportChoice::Dtls,
        TransportArg::Tls => TransportChoice::Tls,
    };
    if let Some(p) = &conn.state {
        cfg.state = StateFile::new(p);
    }
    cfg.handshake_timeout = Duration::from_secs(conn.timeout.max(1));
    cfg.negotiate = !conn.no_negotiate;
    cfg.preferences = preferences;
    // A one-shot command only watches what it asked for.
    cfg.observe_own = false;
    Ok(DotsClient::connect(cfg).await?)
}

fn scope_json(s: &Scope) -> serde_json::Value {
    let v = MitigationScope { scopes: vec![s.clone()] }.to_json();
    v["ietf-dots-signal-channel:mitigation-scope"]["scope"][0].clone()
}

fn status_text(s: &Scope) -> String {
    match s.status {
        Some(st) => format!("status {} ({})", st.code(), st.label()),
        None => "status unknown".into(),
    }
}

fn lifetime_text(l: Option<Lifetime>) -> String {
    match l {
        Some(Lifetime::Seconds(s)) => format!("{s} s"),
        Some(Lifetime::Indefinite) => "indefinite".into(),
        None => "?".into(),
    }
}

fn print_ack(mid: u32, code: &str, lifetime: Option<Lifetime>, scope: Option<&Scope>, json: bool) {
    if json {
        let mut v = serde_json::json!({ "mid": mid, "code": code });
        v["lifetime"] = match lifetime {
            Some(Lifetime::Seconds(s)) => s.into(),
            Some(Lifetime::Indefinite) => (-1).into(),
            None => serde_json::Value::Null,
        };
        v["status"] = scope.and_then(|s| s.status).map(|s| s.code().into()).unwrap_or(serde_json::Value::Null);
        v["scope"] = scope.map(scope_json).unwrap_or(serde_json::Value::Null);
        println!("{v}");
    } else {
        let st = scope.map(status_text).unwrap_or_else(|| "status unknown".into());
        println!("mid {mid}: {code}, lifetime {}, {st}", lifetime_text(lifetime));
    }
}

fn print_withdrawn(mid: u32, after: Option<&Scope>, json: bool) {
    if json {
        let status = after.and_then(|s| s.status).map(|s| s.code());
        println!("{}", serde_json::json!({ "mid": mid, "withdrawn": true, "status": status }));
    } else {
        match after {
            Some(s) => println!("mid {mid}: withdrawn, {}", status_text(s)),
            None => println!("mid {mid}: withdrawn"),
        }
    }
}

fn print_scopes(scopes: &[Scope], json: bool) {
    if json {
        println!("{}", serde_json::Value::Array(scopes.iter().map(scope_json).collect()));
        return;
    }
    if scopes.is_empty() {
        println!("no mitigations");
    }
    for s in scopes {
        let targets: Vec<String> = s.target.target_prefix.iter().map(|p| p.to_string()).collect();
        let dropped = s.pkts_dropped.map(|p| format!(", {p} packets dropped")).unwrap_or_default();
        println!(
            "mid {}: {}, lifetime {}, targets {}{dropped}",
            s.mid.map_or("?".into(), |m| m.to_string()),
            status_text(s),
            lifetime_text(s.lifetime),
            targets.join(" ")
        );
    }
}

async fn show_status(client: &DotsClient, mid: Option<u32>, json: bool) -> Result<(), Failure> {
    let scopes = client.status(mid).await?;
    print_scopes(&scopes, json);
    Ok(())
}

/// Observe until Ctrl-C or the session closes for good; one line per report.
async fn watch_status(client: &DotsClient, mid: Option<u32>, json: bool) -> Result<(), Failure> {
    let mut updates = client.updates();
    let first = client.observe(mid).await?;
    print_scopes(&first, json);
    let mut stdout = tokio::io::stdout();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            u = updates.recv() => match u {
                Ok(u) if u.code.is_success() => {
                    print_scopes(&u.scopes, json);
                    let _ = stdout.flush().await;
                }
                Ok(u) => return Err(Failure { code: exit::REFUSED, message: format!("observation ended by the server: {}", u.code) }),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return Ok(()),
            }
        }
    }
}
