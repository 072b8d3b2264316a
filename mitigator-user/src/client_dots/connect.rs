//! Finding a working transport to the server: the DOTS happy eyeballs of 4.3. The order
//! of preference is "UDP over IPv6, UDP over IPv4, TCP over IPv6, and finally TCP over
//! IPv4"; attempts start one "Connection Attempt Delay" apart (RFC 8305) or as soon as
//! the previous one failed; the first handshake to finish wins and the others are
//! dropped. The winner is cached ("MUST cache information regarding the outcome ... for
//! a specific time period", e.g. 10 min) and tried alone first next time, so that a
//! reconnection during an attack does not thrash the network.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tracing::{debug, info};

use super::config::{ClientConfig, TransportChoice};
use super::error::ClientError;
use crate::transport::client::is_credentials_error;
use crate::transport::dtls_client::{self, DtlsClientOptions};
use crate::transport::{tls_client, ClientCredential, ClientLink, Transport, TransportError};

/// One way to reach the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// The remembered winner of the last race.
#[derive(Clone, Copy, Debug, Default)]
pub struct EyeballsCache {
    winner: Option<(Candidate, Instant)>,
}

impl EyeballsCache {
    fn fresh(&self, max_age: Duration) -> Option<Candidate> {
        self.winner.filter(|(_, at)| at.elapsed() < max_age).map(|(c, _)| c)
    }
}

/// The 4.3 order over the resolved addresses: DTLS before TLS, IPv6 before IPv4.
pub fn order(addrs: &[SocketAddr], choice: TransportChoice, psk: bool) -> Vec<Candidate> {
    let mut transports = match choice {
        TransportChoice::Auto => vec![Transport::Dtls, Transport::Tls],
        TransportChoice::Dtls => vec![Transport::Dtls],
        TransportChoice::Tls => vec![Transport::Tls],
    };
    if psk && choice == TransportChoice::Auto {
        // No PSK over our TLS (rustls): trying it would only fail.
        transports.retain(|t| *t == Transport::Dtls);
    }
    let mut v6: Vec<SocketAddr> = addrs.iter().copied().filter(SocketAddr::is_ipv6).collect();
    let v4: Vec<SocketAddr> = addrs.iter().copied().filter(SocketAddr::is_ipv4).collect();
    v6.extend(v4);
    transports.iter().flat_map(|t| v6.iter().map(move |a| Candidate { transport: *t, addr: *a })).collect()
}

/// Resolves the server name.
pub async fn resolve(cfg: &ClientConfig) -> Result<Vec<SocketAddr>, ClientError> {
    let target = (cfg.server.host.as_str(), cfg.server.port);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(target)
        .await
        .map_err(|e| ClientError::Unreachable(format!("cannot resolve {}: {e}", cfg.server.host)))?
        .collect();
    if addrs.is_empty() {
        return Err(ClientError::Unreachable(format!("{} has no address", cfg.server.host)));
    }
    Ok(addrs)
}

/// Connects by happy eyeballs (or the cached winner first).
pub async fn connect(cfg: &ClientConfig, cache: &mut EyeballsCache) -> Result<ClientLink, ClientError> {
    let psk = matches!(cfg.security.credential, ClientCredential::Psk { .. });
    if cfg.transport == TransportChoice::Tls && psk {
        return Err(ClientError::Credentials(
            "TLS needs a certificate (PSK is DTLS only): use --transport dtls".into(),
        ));
    }
    if let Some(c) = cache.fresh(cfg.eyeballs_cache) {
        debug!(?c, "trying the cached happy-eyeballs winner");
        match attempt(cfg, c).await {
            Ok(link) => return Ok(link),
            Err(e) => debug!(?c, error = %e, "cached winner failed, racing again"),
        }
    }
    let addrs = resolve(cfg).await?;
    let candidates = order(&addrs, cfg.transport, psk);
    let link = race(cfg, &candidates).await?;
    let winner = Candidate { transport: link.transport, addr: link.peer };
    info!(transport = ?winner.transport, addr = %winner.addr, "signal channel connected");
    cache.winner = Some((winner, Instant::now()));
    Ok(link)
}

async fn attempt(cfg: &ClientConfig, c: Candidate) -> Result<ClientLink, TransportError> {
    match c.transport {
        Transport::Dtls => {
            let opts = DtlsClientOptions {
                handshake_timeout: cfg.handshake_timeout,
                bind: cfg.bind.clone(),
                ..DtlsClientOptions::default()
            };
            dtls_client::connect(c.addr, &cfg.server.host, &cfg.security, &opts).await
        }
        Transport::Tls => tls_client::connect(c.addr, &cfg.server.host, &cfg.security, cfg.handshake_timeout, &cfg.bind).await,
    }
}

/// RFC 8305-style race: start candidate i+1 after the attempt delay or when i fails.
async fn race(cfg: &ClientConfig, candidates: &[Candidate]) -> Result<ClientLink, ClientError> {
    let mut running: JoinSet<(Candidate, Result<ClientLink, TransportError>)> = JoinSet::new();
    let mut next = 0;
    let mut errors: Vec<(Candidate, TransportError)> = Vec::new();
    loop {
        if next < candidates.len() && (running.is_empty() || next == 0) {
            spawn(&mut running, cfg, candidates[next]);
            next += 1;
            continue;
        }
        if running.is_empty() {
            return Err(summarize(errors));
        }
        let delay = tokio::time::sleep(cfg.attempt_delay);
        tokio::select! {
            done = running.join_next() => match done {
                Some(Ok((_, Ok(link)))) => return Ok(link), // dropping the set aborts the rest
                Some(Ok((c, Err(e)))) => {
                    debug!(?c, error = %e, "connection attempt failed");
                    errors.push((c, e));
                }
                _ => {}
            },
            _ = delay, if next < candidates.len() => {
                spawn(&mut running, cfg, candidates[next]);
                next += 1;
            }
        }
    }
}

fn spawn(set: &mut JoinSet<(Candidate, Result<ClientLink, TransportError>)>, cfg: &ClientConfig, c: Candidate) {
    debug!(?c, "connection attempt");
    let cfg = cfg.clone();
    set.spawn(async move { (c, attempt(&cfg, c).await) });
}

/// A refused credential anywhere says more than timeouts elsewhere.
fn summarize(errors: Vec<(Candidate, TransportError)>) -> ClientError {
    let text = |(c, e): &(Candidate, TransportError)| format!("{:?} {}: {e}", c.transport, c.addr);
    if let Some(e) = errors.iter().find(|(_, e)| is_credentials_error(e)) {
        return ClientError::Credentials(format!("handshake refused ({})", text(e)));
    }
    ClientError::Unreachable(errors.iter().map(text).collect::<Vec<_>>().join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_udp6_udp4_tcp6_tcp4() {
        let a4: SocketAddr = "192.0.2.1:4646".parse().unwrap();
        let a6: SocketAddr = "[2001:db8::1]:4646".parse().unwrap();
        let o = order(&[a4, a6], TransportChoice::Auto, false);
        let got: Vec<(Transport, SocketAddr)> = o.iter().map(|c| (c.transport, c.addr)).collect();
        assert_eq!(got, [(Transport::Dtls, a6), (Transport::Dtls, a4), (Transport::Tls, a6), (Transport::Tls, a4)]);
        assert!(order(&[a4, a6], TransportChoice::Auto, true).iter().all(|c| c.transport == Transport::Dtls));
        assert!(order(&[a4], TransportChoice::Tls, false).iter().all(|c| c.transport == Transport::Tls));
    }
}
