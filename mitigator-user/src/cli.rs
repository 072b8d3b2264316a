//! The `mitigator` command line. Every command but `run` and `uninstall`
//! goes through the daemon's local API; values are parsed with the same
//! functions the daemon uses, so a bad prefix, port or countermeasure is
//! refused here with the field and the value named, before anything is sent.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand, ValueEnum};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use ipnet::IpNet;

use crate::{
    api::{ListChange, ShutdownRequest},
    client::{ApiClient, Refused},
    config::{Config, DEFAULT_SOCKET},
    protection::{self, Countermeasure, PortRange, Protocol, ProtectionSpec},
    registry::{Protection, Status},
    stats::CounterReport,
};

#[derive(Parser, Debug)]
#[command(name = "mitigator", version, about = "On-host DDoS mitigation: an XDP data plane driven by DOTS")]
pub struct Cli {
    /// The daemon's control socket.
    #[arg(long, global = true, env = "MITIGATOR_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon (foreground).
    Run {
        /// TOML configuration; every setting has a default.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Protect a target prefix.
    Protect {
        /// Target prefixes (a bare address is a host route).
        #[arg(required = true, value_parser = protection::parse_target_prefix)]
        prefixes: Vec<IpNet>,
        /// Protocols in scope (tcp, udp, icmp, icmpv6, sctp, udplite or a number); default: all.
        #[arg(long = "proto")]
        protocols: Vec<Protocol>,
        /// Destination ports or ranges in scope (443, 1000-2000); default: all.
        #[arg(long = "port")]
        ports: Vec<PortRange>,
        /// Countermeasures (drop-all, fragments, reflection, bad-tcp-flags,
        /// syn-limit:pps=N, rate-limit:pps=N,bps=N); default: the profile's.
        #[arg(long = "countermeasure")]
        countermeasures: Vec<Countermeasure>,
        /// Countermeasure profile from the config (default: `default`).
        #[arg(long)]
        profile: Option<String>,
        /// Seconds until the protection expires; default: until removed.
        #[arg(long)]
        lifetime: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Remove a protection, by id or by one of its prefixes.
    Unprotect {
        /// Protection id, or a prefix it covers exactly.
        target: String,
        #[arg(long)]
        json: bool,
    },
    /// Show protections, counters and rates.
    Status {
        #[arg(long)]
        json: bool,
        /// Redraw every second until Ctrl-C.
        #[arg(long)]
        watch: bool,
    },
    /// Show or change the global accept-list and drop-list of sources.
    Lists {
        /// Which list; both when omitted (and nothing is changed).
        list: Option<ListArg>,
        #[arg(long, value_parser = protection::parse_list_prefix)]
        add: Vec<IpNet>,
        #[arg(long, value_parser = protection::parse_list_prefix)]
        remove: Vec<IpNet>,
        #[arg(long)]
        json: bool,
    },
    /// Stop the daemon and detach the data plane (the host is then unprotected).
    Stop {
        /// Leave the data plane enforcing (for a restart or an upgrade).
        #[arg(long)]
        keep_enforcing: bool,
    },
    /// DOTS client: ask a DOTS server (an upstream provider, or another mitigator) for
    /// mitigation over the signal channel (RFC 9132).
    Client {
        #[command(subcommand)]
        command: crate::client_dots::cli::ClientCommand,
    },
    /// Remove pinned programs and maps left by a daemon that is not running.
    Uninstall {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Create a development PKI for the DOTS signal channel (CA, server and
    /// client certificates), or add clients to the one in --dir; prints each
    /// client's cuid and its [[signal.clients]] entry.
    Certs {
        /// Where the PEM files go (the daemon's own is <state_dir>/pki).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Names (DNS or IP) of the server certificate; repeatable.
        #[arg(long = "server-name")]
        server_names: Vec<String>,
        /// A client certificate to issue (file names NAME.pem, NAME-key.pem); repeatable.
        #[arg(long = "client")]
        clients: Vec<String>,
    },
    /// Convert a DOTS signal-channel body between the JSON of RFC 9132's
    /// figures and application/dots+cbor (what `coap-client -t 271 -f` sends).
    DotsCbor {
        /// CBOR to JSON instead.
        #[arg(long)]
        decode: bool,
        /// Input file (default: stdin).
        input: Option<PathBuf>,
        /// Output file (default: stdout).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ListArg {
    Accept,
    Drop,
}

/// Exit codes scripts can rely on.
pub mod exit {
    /// The daemon refused the request (bad value, conflict, not found).
    pub const REFUSED: u8 = 3;
    /// The daemon cannot be reached.
    pub const UNREACHABLE: u8 = 4;
    /// Anything else.
    pub const FAILED: u8 = 1;
    /// Bad arguments (clap's own code for what it refuses while parsing).
    pub const BAD_ARGS: u8 = 2;
}

/// Arguments that parse one by one but not together (a protection's
/// spec): exit 2, as for what clap refuses.
#[derive(Debug)]
struct BadArgs(String);

impl std::fmt::Display for BadArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadArgs {}

pub async fn main(cli: Cli) -> ExitCode {
    // A command's output piped into `head` must end it quietly, as any Unix
    // tool does, not with a panic on EPIPE (Rust ignores SIGPIPE). Not for
    // the daemon, whose peers may close their sockets at any time.
    if !matches!(cli.command, Command::Run { .. }) {
        // SAFETY: setting a signal's disposition to its default.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    // The DOTS client talks to a DOTS server, not to the local daemon: its own exit codes.
    if let Command::Client { command } = cli.command {
        return crate::client_dots::cli::main(command).await;
    }
    let result = dispatch(cli).await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<Refused>().is_some() {
                ExitCode::from(exit::REFUSED)
            } else if e.downcast_ref::<BadArgs>().is_some() || e.downcast_ref::<crate::config::ConfigError>().is_some() {
                ExitCode::from(exit::BAD_ARGS)
            } else if format!("{e:#}").contains("cannot reach the daemon") {
                ExitCode::from(exit::UNREACHABLE)
            } else {
                ExitCode::from(exit::FAILED)
            }
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let api = ApiClient::new(&cli.socket);
    match cli.command {
        Command::Run { config } => crate::daemon::run(config.as_deref()).await,
        Command::Protect { prefixes, protocols, ports, countermeasures, profile, lifetime, json } => {
            let spec = ProtectionSpec { prefixes, protocols, ports, countermeasures, profile, lifetime };
            spec.validate().map_err(BadArgs)?;
            let p: Protection = api.post("/v1/protections", &spec).await?;
            print_protection(&p, json, "protected");
            Ok(())
        }
        Command::Unprotect { target, json } => {
            let path = match target.parse::<u32>() {
                Ok(id) => format!("/v1/protections/{id}"),
                Err(_) => {
                    let net = protection::parse_target_prefix(&target).map_err(anyhow::Error::msg)?;
                    format!("/v1/protections?prefix={}", net.to_string().replace('/', "%2F"))
                }
            };
            let p: Protection = api.delete(&path).await?;
            print_protection(&p, json, "unprotected");
            Ok(())
        }
        Command::Status { json, watch } => status(&api, json, watch).await,
        Command::Lists { list, add, remove, json } => lists(&api, list, add, remove, json).await,
        Command::Stop { keep_enforcing } => {
            let () = api.post("/v1/shutdown", &ShutdownRequest { uninstall: !keep_enforcing }).await?;
            println!("{}", if keep_enforcing { "daemon stopped; the data plane keeps enforcing" } else { "daemon stopped; data plane detached" });
            Ok(())
        }
        Command::Client { .. } => unreachable!("handled in main"),
        Command::Uninstall { config } => {
            let pin_dir = match config {
                Some(p) => Config::pin_dir_of(&p)?,
                None => Config::parse("").map_err(anyhow::Error::msg)?.dataplane.pin_dir,
            };
            crate::dataplane::remove_pins(&pin_dir)?;
            println!("removed pinned data plane under {}", pin_dir.display());
            Ok(())
        }
        Command::Certs { dir, server_names, clients } => certs(&dir, &server_names, &clients),
        Command::DotsCbor { decode, input, output } => dots_cbor(decode, input, output),
    }
}

/// `mitigator certs`: a new dev PKI, or more clients from the CA in `dir`.
fn certs(dir: &std::path::Path, server_names: &[String], clients: &[String]) -> anyhow::Result<()> {
    let existing = dir.join("ca.pem").exists() && dir.join("ca-key.pem").exists();
    let pki = if existing {
        crate::certs::add_to_dev_pki(dir, server_names, clients)?
    } else {
        crate::certs::create_dev_pki(dir, server_names, clients)?
    };
    println!("{} development CA: {}", if existing { "reused" } else { "created" }, pki.ca_pem.display());
    println!("server certificate: {} (key {})", pki.server_pem.display(), pki.server_key_pem.display());
    for (name, cert, key) in &pki.clients {
        let cuid = dots_proto::signal::cuid_from_spki(&crate::certs::spki_der_of(&std::fs::read(cert)?)?);
        println!("\nclient {name}: {} (key {})\ncuid {cuid}", cert.display(), key.display());
        println!("[[signal.clients]]\nname = \"{name}\"\nprefixes = [\"203.0.113.0/24\"]   # what {name} may ask mitigation for: edit\nidentities = [\"cuid:{cuid}\"]");
    }
    Ok(())
}

/// `mitigator dots-cbor`: JSON (RFC 7951, as in RFC 9132's figures) ⇄ CBOR.
fn dots_cbor(decode: bool, input: Option<PathBuf>, output: Option<PathBuf>) -> anyhow::Result<()> {
    use dots_proto::signal::SignalMessage;
    use std::io::{Read, Write};
    let mut data = Vec::new();
    match &input {
        Some(p) => data = std::fs::read(p)?,
        None => {
            std::io::stdin().read_to_end(&mut data)?;
        }
    }
    let out = if decode {
        let m = SignalMessage::from_cbor(&data).map_err(|e| anyhow::anyhow!("not a DOTS signal body: {e}"))?;
        (m.value.to_json_string() + "\n").into_bytes()
    } else {
        let text = String::from_utf8(data)?;
        let m = SignalMessage::from_json(&text).map_err(|e| anyhow::anyhow!("not a DOTS signal body: {e}"))?;
        m.value.to_cbor()
    };
    match output {
        Some(p) => std::fs::write(p, out)?,
        None => std::io::stdout().write_all(&out)?,
    }
    Ok(())
}

fn print_protection(p: &Protection, json: bool, verb: &str) {
    if json {
        println!("{}", serde_json::to_string_pretty(p).expect("serializable"));
        return;
    }
    println!(
        "{verb} {} (id {}): {} — {}",
        join(&p.spec.prefixes),
        p.id,
        scope(p),
        join(&p.countermeasures)
    );
}

async fn status(api: &ApiClient, json: bool, watch: bool) -> anyhow::Result<()> {
    loop {
        let st: Status = api.get("/v1/status").await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&st)?);
        } else {
            if watch {
                print!("\x1b[2J\x1b[H");
            }
            println!("{}", render_status(&st));
        }
        if !watch {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// The status as tables: protections, then interfaces, then lists.
pub fn render_status(st: &Status) -> String {
    let mut out = String::new();
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["id", "target", "scope", "passed pkt/s", "passed bit/s", "dropped pkt/s", "dropped bit/s", "dropped total", "drop reasons (pkt/s)"]);
    for p in &st.protections {
        let reasons: Vec<String> = p.drop_reasons.iter().map(|(k, v)| format!("{k} {}", human(v.pps))).collect();
        t.add_row([
            p.protection.id.to_string(),
            join(&p.protection.spec.prefixes),
            scope(&p.protection),
            human(p.passed.pps),
            human(p.passed.bps),
            human(p.dropped.pps),
            human(p.dropped.bps),
            p.dropped.packets.to_string(),
            reasons.join(", "),
        ]);
    }
    if st.protections.is_empty() {
        out.push_str("no protections (add one with `mitigator protect PREFIX`)\n");
    } else {
        out.push_str(&format!("{t}\n"));
    }
    // A DOTS client's mitigation: its phase and the lifetime the client is
    // told (active-but-terminating ends with its period).
    for p in &st.protections {
        if let (Some(d), crate::protection::Owner::Dots { cuid, mid }) = (&p.dots, &p.protection.owner) {
            let left = if d.lifetime < 0 { "indefinite".to_string() } else { format!("{} s left", d.lifetime) };
            out.push_str(&format!("{}: DOTS {cuid} mid {mid}, status {} ({}), {left}\n", p.protection.id, d.status, d.status_label));
        }
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["interface", "XDP mode", "seen pkt/s", "seen bit/s", "seen total", "dropped pkt/s", "passed pkt/s"]);
    for i in &st.interfaces {
        let dropped = sum(&i.verdicts, &["drop-list", "guard-dropped", "acl-dropped", "target-dropped"]);
        t.add_row([
            i.name.clone(),
            i.mode.clone().unwrap_or_default(),
            human(i.seen.pps),
            human(i.seen.bps),
            i.seen.packets.to_string(),
            human(dropped.pps),
            human(i.seen.pps - dropped.pps),
        ]);
    }
    out.push_str(&format!("{t}\n"));
    // Why each interface runs in its mode (`dataplane.attach_mode`).
    for i in &st.interfaces {
        if let Some(r) = &i.mode_reason {
            let drv = i.driver.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
            out.push_str(&format!("{}{drv}: {r}\n", i.name));
        }
    }
    out.push_str(&format!("accept-list: {}\ndrop-list: {}\n", list_or_empty(&st.accept_list), list_or_empty(&st.drop_list)));
    out.push_str(&render_guard(&st.guard));
    let c = st.commits;
    out.push_str(&format!("rule-set changes since start: {} in {} generation flips\n", c.changes, c.flips));
    if let Some(e) = &st.escalation {
        out.push_str(&render_escalation(e));
    }
    out
}

/// The daemon's own DOTS listeners that drops do not reach (`signal.guard`).
fn render_guard(guard: &[crate::registry::GuardStatus]) -> String {
    if guard.is_empty() {
        return "guard: off (signal.guard = false): mitigations of this host can cut its own DOTS channels\n".into();
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["guarded listener", "channel", "limit B/s", "in force", "matched pkts", "matched bytes"]);
    for g in guard {
        let l = &g.listener;
        t.add_row([
            format!("{} {}", l.protocol, l.listen),
            l.channel.clone(),
            l.bytes_per_sec.to_string(),
            if g.in_force { "yes".into() } else { "no (nothing to bypass)".into() },
            g.matched_packets.to_string(),
            g.matched_bytes.to_string(),
        ]);
    }
    format!("{t}\n")
}

/// Per target: which servers were asked, the upstream mid and status; per
/// upstream: its session.
fn render_escalation(e: &crate::escalation::EscalationReport) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["id", "phase", "load pkt/s", "load bit/s", "prefixes", "servers (in turn)", "state", "server", "mid", "status", "upstream drops pkt/s", "last errors"]);
    for target in &e.targets {
        for leg in &target.legs {
            t.add_row([
                target.protection.to_string(),
                target.phase.clone(),
                human(target.load_pps),
                human(target.load_bps),
                format!("{} ({})", join(&leg.prefixes), if leg.pa { "PA" } else { "PI" }),
                leg.chain.join(" → "),
                leg.state.clone(),
                leg.server.clone().unwrap_or_default(),
                leg.mid.map(|m| m.to_string()).unwrap_or_default(),
                leg.status.map(|s| s.to_string()).unwrap_or_default(),
                leg.upstream_pps_dropped.map(|p| human(p as f64)).unwrap_or_default(),
                leg.errors.join("; "),
            ]);
        }
        if target.legs.is_empty() {
            t.add_row([target.protection.to_string(), target.phase.clone(), human(target.load_pps), human(target.load_bps)].map(String::from).to_vec());
        }
    }
    let mut out = String::from("\nescalation:\n");
    if !e.targets.is_empty() {
        out.push_str(&format!("{t}\n"));
    }
    for u in &e.upstreams {
        let err = u.last_error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default();
        out.push_str(&format!("upstream {} {}: session {}{err}\n", u.name, u.server, u.session));
    }
    out
}

fn sum(v: &std::collections::BTreeMap<String, CounterReport>, keys: &[&str]) -> CounterReport {
    let mut total = CounterReport::default();
    for k in keys {
        if let Some(c) = v.get(*k) {
            total.add(c);
        }
    }
    total
}

fn list_or_empty(l: &[IpNet]) -> String {
    if l.is_empty() { "(empty)".into() } else { join(l) }
}

fn scope(p: &Protection) -> String {
    let protos = if p.spec.protocols.is_empty() { "any protocol".into() } else { join(&p.spec.protocols) };
    let ports = if p.spec.ports.is_empty() { "any port".into() } else { format!("port {}", join(&p.spec.ports)) };
    format!("{protos}, {ports}")
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(" ")
}

/// 1234567 → "1.23M".
fn human(v: f64) -> String {
    let (v, unit) = if v >= 1e9 {
        (v / 1e9, "G")
    } else if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    if unit.is_empty() { format!("{v:.0}") } else { format!("{v:.2}{unit}") }
}

async fn lists(api: &ApiClient, list: Option<ListArg>, add: Vec<IpNet>, remove: Vec<IpNet>, json: bool) -> anyhow::Result<()> {
    let Some(list) = list else {
        anyhow::ensure!(add.is_empty() && remove.is_empty(), "name the list to change: `mitigator lists accept|drop --add …`");
        let st: Status = api.get("/v1/status").await?;
        if json {
            println!("{}", serde_json::json!({"accept": st.accept_list, "drop": st.drop_list}));
        } else {
            println!("accept-list: {}\ndrop-list: {}", list_or_empty(&st.accept_list), list_or_empty(&st.drop_list));
        }
        return Ok(());
    };
    let name = match list {
        ListArg::Accept => "accept",
        ListArg::Drop => "drop",
    };
    let path = format!("/v1/lists/{name}");
    let entries: Vec<IpNet> = if add.is_empty() && remove.is_empty() {
        api.get(&path).await?
    } else {
        api.post(&path, &ListChange { add, remove }).await?
    };
    if json {
        println!("{}", serde_json::to_string(&entries)?);
    } else {
        println!("{name}-list: {}", list_or_empty(&entries));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("mitigator").chain(args.iter().copied()))
    }

    #[test]
    fn bad_values_are_named() {
        for (args, needle) in [
            (&["protect", "203.0.113.300"][..], "203.0.113.300"),
            (&["protect", "203.0.113.7", "--port", "70000"][..], "70000"),
            (&["protect", "203.0.113.7", "--countermeasure", "nuke"][..], "nuke"),
            (&["protect", "203.0.113.7", "--proto", "tcpx"][..], "tcpx"),
            (&["protect", "127.0.0.1"][..], "loopback"),
            (&["lists", "drop", "--add", "0.0.0.0/0"][..], "every source"),
        ] {
            let e = parse(args).unwrap_err().to_string();
            assert!(e.contains(needle), "{args:?}: {e}");
        }
    }

    #[test]
    fn good_protect_parses() {
        let cli = parse(&["protect", "203.0.113.7", "2001:db8::/48", "--proto", "udp", "--port", "53", "--countermeasure", "rate-limit:pps=1k"]).unwrap();
        match cli.command {
            Command::Protect { prefixes, ports, countermeasures, .. } => {
                assert_eq!(prefixes.len(), 2);
                assert_eq!(ports, vec![PortRange { lo: 53, hi: 53 }]);
                assert_eq!(countermeasures.len(), 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn human_units() {
        assert_eq!(human(999.0), "999");
        assert_eq!(human(1_234_567.0), "1.23M");
    }
}
