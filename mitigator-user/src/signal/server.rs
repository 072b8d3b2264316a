//! I/O glue: the DTLS and TLS listeners of `[signal]`, one task per
//! connection driving a [`Session`], and the session-loss monitor.
//!
//! ```text
//! DtlsServer::accept ─┐                     ┌─▶ Handler (registry calls, JoinSet)
//! TlsServer::accept ──┴▶ connection task ───┼─▶ transport send
//!                        select! { recv, notices, call results, timer }
//!                                           └─▶ Liveness (per cuid) ─▶ monitor task ─▶ registry.dots_session
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, Notify};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tracing::{debug, info, warn};

use super::handler::Handler;
use super::identity;
use super::liveness::Liveness;
use super::reply::Reply;
use super::route::RoutePolicy;
use super::session::{Answer, Call, Framing, Output, Session, SessionSettings};
use crate::config::{Config, SignalServerConfig};
use crate::dots::ClientCtx;
use crate::registry::{DotsNotice, Registry};
use crate::transport::{DtlsOptions, DtlsServer, DtlsSession, PeerInfo, SecurityConfig, TlsOptions, TlsServer};

/// Calls in flight per connection; more are answered 5.03 at once.
const MAX_CALLS: usize = 32;
/// A stream write that takes longer than this means a dead peer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The running signal-channel server; dropping it stops the listeners.
pub struct SignalServer {
    pub dtls_addrs: Vec<SocketAddr>,
    pub tls_addrs: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for SignalServer {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

/// What every connection task shares.
struct Shared {
    cfg: SignalServerConfig,
    route: RoutePolicy,
    handler: Handler,
    liveness: Mutex<Liveness>,
    liveness_changed: Notify,
}

/// Where the PEM files are: configured, or the dev PKI under the state dir.
pub struct PkiPaths {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The configured files, or `<state_dir>/pki`, created as a development
/// PKI on first start when none of `ca`, `cert`, `key` is configured.
pub fn pki_paths(cfg: &Config) -> anyhow::Result<PkiPaths> {
    let s = &cfg.signal;
    let dir = cfg.daemon.state_dir.join("pki");
    let paths = PkiPaths {
        ca: s.ca.clone().unwrap_or_else(|| dir.join("ca.pem")),
        cert: s.cert.clone().unwrap_or_else(|| dir.join("server.pem")),
        key: s.key.clone().unwrap_or_else(|| dir.join("server-key.pem")),
    };
    let all_default = s.ca.is_none() && s.cert.is_none() && s.key.is_none();
    if all_default && !(paths.ca.exists() && paths.cert.exists() && paths.key.exists()) {
        let host = hostname();
        crate::certs::create_dev_pki(&dir, &[host], &[]).context("creating the development PKI")?;
        info!(
            dir = %dir.display(),
            "created a development PKI for the DOTS signal channel (CA key included: not for production). \
             Make client credentials with `mitigator certs --dir {} --client NAME` (it reuses this CA) \
             and add the printed [[signal.clients]] entry to the config",
            dir.display()
        );
    }
    Ok(paths)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "localhost".into())
}

pub(crate) fn security_config(cfg: &Config) -> anyhow::Result<SecurityConfig> {
    let p = pki_paths(cfg)?;
    let read = |path: &PathBuf, what: &str| std::fs::read(path).with_context(|| format!("signal.{what}: cannot read {}", path.display()));
    Ok(SecurityConfig {
        ca_pem: Some(read(&p.ca, "ca")?),
        cert_pem: read(&p.cert, "cert")?,
        key_pem: read(&p.key, "key")?,
        psk: identity::psk_table(&cfg.signal.clients).map_err(anyhow::Error::msg)?,
    })
}

pub fn route_policy(s: &SignalServerConfig) -> RoutePolicy {
    RoutePolicy {
        mitigation: dots_proto::signal::MitigationPolicy {
            allow_indefinite: s.allow_indefinite_lifetime,
            max_lifetime: s.max_lifetime,
        },
        redirect: s.redirect.as_ref().map(|r| {
            let body = dots_proto::signal::RedirectedSignal {
                alt_server: r.alt_server.clone(),
                alt_server_record: r.alt_server_record.clone(),
            };
            (body, r.ttl)
        }),
    }
}

/// Binds every configured listener and starts serving.
pub async fn start(cfg: &Config, registry: Registry) -> anyhow::Result<SignalServer> {
    start_with_gateway(cfg, registry, None).await
}

/// [`start`], relaying upstream-managed requests through `gateway`.
pub async fn start_with_gateway(
    cfg: &Config,
    registry: Registry,
    gateway: Option<Arc<crate::gateway::Gateway>>,
) -> anyhow::Result<SignalServer> {
    let security = security_config(cfg)?;
    let s = &cfg.signal;
    let shared = Arc::new(Shared {
        cfg: s.clone(),
        route: route_policy(s),
        handler: Handler { registry: registry.clone(), resolve_timeout: Duration::from_millis(s.resolve_timeout_ms), gateway },
        liveness: Mutex::new(Liveness::default()),
        liveness_changed: Notify::new(),
    });
    let mut server = SignalServer { dtls_addrs: Vec::new(), tls_addrs: Vec::new(), tasks: Vec::new() };
    for addr in &s.dtls_listen {
        let dtls = DtlsServer::bind(*addr, &security, DtlsOptions::default())
            .await
            .with_context(|| format!("signal.dtls_listen: cannot serve DTLS on udp {addr}"))?;
        server.dtls_addrs.push(dtls.local_addr());
        server.tasks.push(tokio::spawn(accept_dtls(dtls, shared.clone())));
    }
    for addr in &s.tls_listen {
        let tls = TlsServer::bind(*addr, &security, TlsOptions::default())
            .await
            .with_context(|| format!("signal.tls_listen: cannot serve TLS on tcp {addr}"))?;
        server.tls_addrs.push(tls.local_addr());
        server.tasks.push(tokio::spawn(accept_tls(tls, shared.clone())));
    }
    server.tasks.push(tokio::spawn(monitor_liveness(shared.clone())));
    info!(dtls = ?server.dtls_addrs, tls = ?server.tls_addrs, clients = s.clients.len(), "DOTS signal channel ready");
    Ok(server)
}

async fn accept_dtls(mut server: DtlsServer, shared: Arc<Shared>) {
    while let Ok(session) = server.accept().await {
        let peer = session.peer().clone();
        tokio::spawn(connection(Conn::Dtls(session), peer, Framing::Datagram, shared.clone()));
    }
}

async fn accept_tls(mut server: TlsServer, shared: Arc<Shared>) {
    while let Ok((peer, stream)) = server.accept().await {
        let (rd, wr) = tokio::io::split(stream);
        tokio::spawn(connection(Conn::Tls { rd, wr }, peer, Framing::Stream, shared.clone()));
    }
}

/// Declares sessions lost when their deadline passes (section 4.7).
async fn monitor_liveness(shared: Arc<Shared>) {
    loop {
        let next = shared.liveness.lock().expect("liveness lock").next_deadline();
        let sleep_until = next.map(Instant::from_std).unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = tokio::time::sleep_until(sleep_until) => {}
            _ = shared.liveness_changed.notified() => continue,
        }
        let lost = shared.liveness.lock().expect("liveness lock").expire(std::time::Instant::now());
        for cuid in lost {
            info!(cuid, "DOTS session lost: nothing received for missing-hb-allowed heartbeat intervals (4.7)");
            shared.handler.registry.dots_session(&cuid, false);
        }
    }
}

enum Conn {
    Dtls(DtlsSession),
    Tls { rd: ReadHalf<TlsStream<TcpStream>>, wr: WriteHalf<TlsStream<TcpStream>> },
}

impl Conn {
    /// The next datagram or chunk of stream; None when the peer is gone.
    async fn recv(&mut self, buf: &mut [u8]) -> Option<Vec<u8>> {
        match self {
            Conn::Dtls(s) => s.recv().await.ok(),
            Conn::Tls { rd, .. } => match rd.read(buf).await {
                Ok(0) | Err(_) => None,
                Ok(n) => Some(buf[..n].to_vec()),
            },
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> bool {
        match self {
            Conn::Dtls(s) => s.send(bytes).await.is_ok(),
            Conn::Tls { wr, .. } => {
                let write = async {
                    wr.write_all(bytes).await?;
                    wr.flush().await
                };
                matches!(tokio::time::timeout(WRITE_TIMEOUT, write).await, Ok(Ok(())))
            }
        }
    }

    async fn close(self) {
        if let Conn::Tls { mut wr, .. } = self {
            let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
        }
    }
}

fn settings(shared: &Shared, framing: Framing) -> SessionSettings {
    let c = &shared.cfg;
    SessionSettings {
        framing,
        route: shared.route.clone(),
        observe_interval: (c.observe_interval_s > 0).then(|| Duration::from_secs(u64::from(c.observe_interval_s))),
        notification_spacing: Duration::from_millis(c.notification_spacing_ms),
        csm_timeout: crate::transport::DEFAULT_HANDSHAKE_TIMEOUT,
    }
}

/// One connection, until the peer leaves, the session closes or the server stops.
async fn connection(mut conn: Conn, peer: PeerInfo, framing: Framing, shared: Arc<Shared>) {
    let client = identity::client_of(&peer.credential, &shared.cfg.clients);
    match &client {
        Some(c) => info!(addr = %peer.addr, cuid = %c.cuid, domain = %c.domain, ?framing, "DOTS client connected"),
        None => warn!(addr = %peer.addr, credential = ?peer.credential, "authenticated peer is in no client domain: its requests get 4.01"),
    }
    let seed = seed(&peer);
    let (mut session, first) = Session::new(settings(&shared, framing), client.clone(), seed, std::time::Instant::now());
    let mut notices = shared.handler.registry.dots_notices();
    if let Some(c) = &client {
        touch(&shared, &c.cuid);
        shared.handler.registry.dots_session(&c.cuid, true);
        refresh_params(&shared, &mut session, &c.cuid).await;
    }
    let mut calls: JoinSet<(Box<Call>, Answer)> = JoinSet::new();
    // Only a stream is read into a buffer; a DTLS session hands over whole datagrams,
    // and an idle session should not hold 16 KiB for nothing.
    let mut buf = match framing {
        Framing::Stream => vec![0u8; 16 * 1024],
        Framing::Datagram => Vec::new(),
    };
    let mut pending = first;
    loop {
        if !flush(&mut conn, &mut session, &mut calls, &shared, client.as_ref(), pending).await {
            break;
        }
        let timer = session.next_timer().map(Instant::from_std);
        pending = tokio::select! {
            data = conn.recv(&mut buf) => match data {
                None => break,
                Some(bytes) => {
                    if let Some(c) = &client { touch(&shared, &c.cuid); }
                    session.receive(&bytes, std::time::Instant::now())
                }
            },
            n = notices.recv() => {
                on_notice(n, &shared, &mut session, client.as_ref()).await;
                Vec::new()
            }
            Some(done) = calls.join_next() => match done {
                Ok((call, answer)) => session.answer(call, answer, std::time::Instant::now()),
                Err(e) => { warn!(error = %e, "signal request task failed"); Vec::new() }
            },
            _ = tokio::time::sleep_until(timer.unwrap_or_else(Instant::now)), if timer.is_some() => {
                session.timer(std::time::Instant::now())
            }
        };
    }
    debug!(addr = %peer.addr, "DOTS connection closed");
    calls.abort_all();
    conn.close().await;
}

/// Sends, starts calls; false when the connection must end.
async fn flush(conn: &mut Conn, session: &mut Session, calls: &mut JoinSet<(Box<Call>, Answer)>, shared: &Arc<Shared>, client: Option<&ClientCtx>, outputs: Vec<Output>) -> bool {
    let mut queue = std::collections::VecDeque::from(outputs);
    while let Some(o) = queue.pop_front() {
        match o {
            Output::Transmit(bytes) => {
                if !conn.send(&bytes).await {
                    return false;
                }
            }
            Output::Close => return false,
            Output::Call(call) => {
                let Some(client) = client.cloned() else { continue };
                if calls.len() >= MAX_CALLS {
                    let busy = Answer::Reply(Reply::error(dots_proto::coap::Code::SERVICE_UNAVAILABLE, "too many requests in progress on this session"));
                    queue.extend(session.answer(call, busy, std::time::Instant::now()));
                    continue;
                }
                let handler = shared.handler.clone();
                calls.spawn(async move {
                    let op = call.op.clone();
                    let answer = handler.run(&client, op).await;
                    (call, answer)
                });
            }
        }
    }
    true
}

async fn on_notice(n: Result<DotsNotice, broadcast::error::RecvError>, shared: &Shared, session: &mut Session, client: Option<&ClientCtx>) {
    let Some(me) = client else { return };
    match n {
        Ok(DotsNotice::Mitigation { cuid, mid }) if cuid == me.cuid => session.mitigation_changed(mid),
        Ok(DotsNotice::Activity { cuid, .. }) | Ok(DotsNotice::Config { cuid }) if cuid == me.cuid => {
            refresh_params(shared, session, &me.cuid).await
        }
        Ok(_) => {}
        Err(broadcast::error::RecvError::Lagged(_)) => session.everything_changed(),
        Err(broadcast::error::RecvError::Closed) => {}
    }
}

/// The heartbeat values of the client's current set (mitigating or idle).
async fn refresh_params(shared: &Shared, session: &mut Session, cuid: &str) {
    let params = shared.handler.registry.dots_session_params(cuid).await;
    session.set_params(params, std::time::Instant::now());
    let timeout = params.loss_timeout_ms().map(Duration::from_millis);
    shared.liveness.lock().expect("liveness lock").set_timeout(cuid, timeout);
    shared.liveness_changed.notify_one();
}

fn touch(shared: &Shared, cuid: &str) {
    let resumed = shared.liveness.lock().expect("liveness lock").touch(cuid, std::time::Instant::now());
    shared.liveness_changed.notify_one();
    if resumed {
        info!(cuid, "DOTS session back after a loss");
        shared.handler.registry.dots_session(cuid, true);
    }
}

/// Message ids and tokens must not be predictable by an off-path attacker
/// (RFC 7252 §5.3.1 for tokens): seed from the clock and the peer.
fn seed(peer: &PeerInfo) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    peer.addr.hash(&mut h);
    std::time::SystemTime::now().hash(&mut h);
    h.finish()
}
