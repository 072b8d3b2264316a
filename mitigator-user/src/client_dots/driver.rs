//! The task that does the I/O for one [`super::DotsClient`]: connects (happy eyeballs,
//! [`super::connect`]), runs a [`Session`] over the link, negotiates the session
//! configuration (4.5), keeps observations and refreshes mitigations before their
//! lifetime ends (4.4.1.1), and reconnects with exponential backoff when the session is
//! lost (4.7). Commands come from the client handles over a channel.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dots_proto::coap::{Code, Message};
use dots_proto::signal::{Lifetime, Scope, SignalBody, SignalConfig, SignalPath};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::config::ClientConfig;
use super::connect::{self, EyeballsCache};
use super::error::{ClientError, Result};
use super::mitigation::{self, MitigationSpec};
use super::negotiate;
use super::session::{Event, Framing, Request, RequestError, RequestId, Session};
use crate::transport::{ClientLink, Transport};

/// Where the session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionState {
    Connecting,
    Up {
        transport: Transport,
        peer: std::net::SocketAddr,
    },
    /// Down; the driver tries again after the backoff.
    Lost {
        reason: String,
    },
    /// Closed by the client, or the first connection failed.
    Closed,
}

/// A status report from the server: the answer to an Observe registration or a
/// notification (4.4.2.1). `mid` is what was observed (None: all of our mitigations).
#[derive(Debug, Clone)]
pub struct StatusUpdate {
    pub observed: Option<u32>,
    pub code: Code,
    pub scopes: Vec<Scope>,
}

/// Counters over the client's life (all sessions).
#[derive(Debug, Default)]
pub struct ClientStats {
    pub sessions: AtomicU64,
    pub retransmissions: AtomicU64,
    pub heartbeats_sent: AtomicU64,
    pub heartbeats_answered: AtomicU64,
    pub notifications: AtomicU64,
    pub sessions_lost: AtomicU64,
}

pub(crate) type Reply = oneshot::Sender<Result<Message>>;

pub(crate) enum Command {
    Request { req: Request, reply: Reply },
    Observe { mid: Option<u32>, req: Request, reply: Reply },
    Unobserve { mid: Option<u32> },
    Track { mid: u32, spec: MitigationSpec, lifetime: Lifetime },
    Untrack { mid: u32 },
    Close { reply: oneshot::Sender<()> },
}

enum Waiter {
    Reply(Reply),
    Observe(Option<u32>, Option<Reply>),
    ConfigGet,
    ConfigPut(SignalConfig),
    Refresh(u32),
    Ignore,
}

struct Tracked {
    spec: MitigationSpec,
    refresh_at: Option<Instant>,
}

/// Why `serve` returned.
enum Ended {
    Lost(String),
    Closed,
}

pub(crate) struct Driver {
    pub cfg: ClientConfig,
    pub cuid: String,
    pub cmds: mpsc::Receiver<Command>,
    pub state: watch::Sender<SessionState>,
    pub updates: broadcast::Sender<StatusUpdate>,
    pub stats: Arc<ClientStats>,
    /// Told the outcome of the first connection attempt (for `DotsClient::connect`).
    pub first: Option<oneshot::Sender<Result<()>>>,
    cache: EyeballsCache,
    observed: BTreeMap<Option<u32>, Request>,
    tracked: HashMap<u32, Tracked>,
    negotiated: Option<SignalConfig>,
}

/// What one connected session keeps besides the [`Session`].
struct Live {
    session: Session,
    waiters: HashMap<RequestId, Waiter>,
    observations: HashMap<RequestId, Option<u32>>,
    up_reported: bool,
    transport: Transport,
    peer: std::net::SocketAddr,
    counted: super::session::SessionStats,
}

impl Driver {
    pub fn new(
        cfg: ClientConfig,
        cuid: String,
        cmds: mpsc::Receiver<Command>,
        state: watch::Sender<SessionState>,
        updates: broadcast::Sender<StatusUpdate>,
        stats: Arc<ClientStats>,
        first: oneshot::Sender<Result<()>>,
    ) -> Self {
        Driver {
            cfg,
            cuid,
            cmds,
            state,
            updates,
            stats,
            first: Some(first),
            cache: EyeballsCache::default(),
            observed: BTreeMap::new(),
            tracked: HashMap::new(),
            negotiated: None,
        }
    }

    pub async fn run(mut self) {
        let mut backoff = self.cfg.reconnect_min;
        loop {
            self.state.send_replace(SessionState::Connecting);
            let link = match connect::connect(&self.cfg, &mut self.cache).await {
                Ok(link) => link,
                Err(e) => {
                    if let Some(first) = self.first.take() {
                        // The first attempt's failure is the caller's error, not a retry.
                        self.state.send_replace(SessionState::Closed);
                        let _ = first.send(Err(e));
                        return;
                    }
                    // 4.7 note: "alert administrators about the failure to establish a (D)TLS session".
                    warn!(error = %e, retry_in = ?backoff, "cannot establish the signal channel session");
                    self.state.send_replace(SessionState::Lost { reason: e.to_string() });
                    if !self.wait(backoff, &e).await {
                        return;
                    }
                    backoff = (backoff * 2).min(self.cfg.reconnect_max);
                    continue;
                }
            };
            match self.serve(link).await {
                Ended::Closed => return,
                Ended::Lost(reason) => {
                    self.stats.sessions_lost.fetch_add(1, Ordering::Relaxed);
                    self.state.send_replace(SessionState::Lost { reason });
                    // 4.7: "The DOTS client MUST then try to reestablish": at once; the
                    // backoff applies when that fails.
                    backoff = self.cfg.reconnect_min;
                }
            }
        }
    }

    /// Sleeps out a backoff while refusing requests; false if closed meanwhile.
    async fn wait(&mut self, d: Duration, why: &ClientError) -> bool {
        let until = Instant::now() + d;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return true,
                c = self.cmds.recv() => match c {
                    None => return false,
                    Some(Command::Close { reply }) => {
                        self.state.send_replace(SessionState::Closed);
                        let _ = reply.send(());
                        return false;
                    }
                    Some(c) => self.refuse_offline(c, why),
                }
            }
        }
    }

    fn refuse_offline(&mut self, c: Command, why: &ClientError) {
        let err = || ClientError::Unreachable(format!("no session: {why}"));
        match c {
            Command::Request { reply, .. } => drop(reply.send(Err(err()))),
            Command::Observe { mid, req, reply } => {
                // Remembered: registered once the session is back.
                self.observed.insert(mid, req);
                let _ = reply.send(Err(err()));
            }
            Command::Unobserve { mid } => drop(self.observed.remove(&mid)),
            Command::Track { mid, spec, lifetime } => self.track(mid, spec, lifetime),
            Command::Untrack { mid } => drop(self.tracked.remove(&mid)),
            Command::Close { .. } => unreachable!("handled by the caller"),
        }
    }

    fn track(&mut self, mid: u32, spec: MitigationSpec, lifetime: Lifetime) {
        let refresh_at = refresh_time(lifetime);
        self.tracked.insert(mid, Tracked { spec, refresh_at });
    }

    async fn serve(&mut self, mut link: ClientLink) -> Ended {
        let framing = if link.transport == Transport::Dtls { Framing::Datagram } else { Framing::Stream };
        let session = Session::new(framing, self.cfg.initial, std::time::Instant::now(), seed());
        let mut live = Live {
            session,
            waiters: HashMap::new(),
            observations: HashMap::new(),
            up_reported: false,
            transport: link.transport,
            peer: link.peer,
            counted: Default::default(),
        };
        self.start_session(&mut live);
        let ended = loop {
            if let Some(e) = self.pump(&mut live, &link).await {
                break e;
            }
            let timer = live.session.poll_timeout().map(Instant::from_std);
            let refresh = self.tracked.values().filter_map(|t| t.refresh_at).min();
            let wake = [timer, refresh].into_iter().flatten().min();
            tokio::select! {
                b = link.recv() => match b {
                    Some(b) => live.session.handle_input(&b, std::time::Instant::now()),
                    None => break Ended::Lost("the server closed the connection".into()),
                },
                _ = sleep_until(wake) => {
                    live.session.handle_timeout(std::time::Instant::now());
                    self.refresh_due(&mut live);
                }
                c = self.cmds.recv() => match c {
                    None => break Ended::Closed,
                    Some(Command::Close { reply }) => {
                        self.finish(&mut live, "client closed");
                        link.close().await;
                        self.state.send_replace(SessionState::Closed);
                        let _ = reply.send(());
                        return Ended::Closed;
                    }
                    Some(c) => self.command(&mut live, c),
                },
            }
        };
        let reason = match &ended {
            Ended::Lost(r) => r.clone(),
            Ended::Closed => "client closed".into(),
        };
        self.finish(&mut live, &reason);
        if let Some(first) = self.first.take() {
            let _ = first.send(Err(ClientError::Unreachable(format!("session ended during setup: {reason}"))));
            self.state.send_replace(SessionState::Closed);
            return Ended::Closed;
        }
        ended
    }

    fn start_session(&mut self, live: &mut Live) {
        let now = std::time::Instant::now();
        if self.cfg.negotiate {
            let id = live.session.send_request(Request::new(Code::GET, SignalPath::Config { sid: None }), now);
            live.waiters.insert(id, Waiter::ConfigGet);
        } else {
            self.report_up(live);
        }
        for (mid, req) in self.observed.clone() {
            let id = live.session.send_request(req, now);
            live.waiters.insert(id, Waiter::Observe(mid, None));
        }
    }

    /// Sends what the session queued and handles its events; Some when it is over.
    async fn pump(&mut self, live: &mut Live, link: &ClientLink) -> Option<Ended> {
        loop {
            while let Some(ev) = live.session.poll_event() {
                self.event(live, ev);
            }
            let mut sent = false;
            while let Some(w) = live.session.poll_transmit() {
                sent = true;
                if link.send(w).await.is_err() {
                    return Some(Ended::Lost("link closed".into()));
                }
            }
            self.count(live);
            if live.session.is_lost() {
                return Some(Ended::Lost("heartbeats unanswered or session aborted".into()));
            }
            if !sent {
                return None;
            }
        }
    }

    fn count(&self, live: &mut Live) {
        let s = live.session.stats();
        let c = &mut live.counted;
        let add = |a: &AtomicU64, now: u64, before: &mut u64| {
            a.fetch_add(now - *before, Ordering::Relaxed);
            *before = now;
        };
        add(&self.stats.retransmissions, s.retransmissions, &mut c.retransmissions);
        add(&self.stats.heartbeats_sent, s.heartbeats_sent, &mut c.heartbeats_sent);
        add(&self.stats.heartbeats_answered, s.heartbeats_answered, &mut c.heartbeats_answered);
        add(&self.stats.notifications, s.notifications, &mut c.notifications);
    }

    fn report_up(&mut self, live: &mut Live) {
        if live.up_reported {
            return;
        }
        live.up_reported = true;
        self.stats.sessions.fetch_add(1, Ordering::Relaxed);
        info!(transport = ?live.transport, peer = %live.peer, params = ?live.session.params(), "DOTS session up");
        self.state.send_replace(SessionState::Up { transport: live.transport, peer: live.peer });
        if let Some(first) = self.first.take() {
            let _ = first.send(Ok(()));
        }
    }

    fn finish(&mut self, live: &mut Live, reason: &str) {
        live.session.close();
        while let Some(ev) = live.session.poll_event() {
            self.event(live, ev);
        }
        for (_, w) in live.waiters.drain() {
            fail(w, ClientError::Unreachable(format!("session ended: {reason}")));
        }
    }

    fn command(&mut self, live: &mut Live, c: Command) {
        let now = std::time::Instant::now();
        match c {
            Command::Request { req, reply } => {
                let id = live.session.send_request(req, now);
                live.waiters.insert(id, Waiter::Reply(reply));
            }
            Command::Observe { mid, req, reply } => {
                self.observed.insert(mid, req.clone());
                let id = live.session.send_request(req, now);
                live.waiters.insert(id, Waiter::Observe(mid, Some(reply)));
            }
            Command::Unobserve { mid } => {
                self.observed.remove(&mid);
                let ids: Vec<RequestId> =
                    live.observations.iter().filter(|(_, m)| **m == mid).map(|(id, _)| *id).collect();
                for id in ids {
                    live.observations.remove(&id);
                    if let Some(dereg) = live.session.cancel_observation(id, now) {
                        live.waiters.insert(dereg, Waiter::Ignore);
                    }
                }
            }
            Command::Track { mid, spec, lifetime } => {
                self.track(mid, spec, lifetime);
                self.apply_params(live);
            }
            Command::Untrack { mid } => {
                self.tracked.remove(&mid);
                self.apply_params(live);
            }
            Command::Close { .. } => unreachable!("handled in serve"),
        }
    }

    /// 4.5: "DOTS agents MUST follow the appropriate configuration set as a function of
    /// the mitigation activity" and switch automatically.
    fn apply_params(&mut self, live: &mut Live) {
        let Some(cfg) = &self.negotiated else { return };
        let set = if self.tracked.is_empty() { cfg.idle_config.as_ref() } else { cfg.mitigating_config.as_ref() };
        let p = negotiate::session_params(set, self.cfg.initial);
        if p != live.session.params() {
            debug!(mitigating = !self.tracked.is_empty(), ?p, "session parameters switched");
            live.session.set_params(p, std::time::Instant::now());
        }
    }

    /// Re-sends the request of each mitigation whose refresh time came (4.4.1.1: "The
    /// request can be refreshed by sending the same request again").
    fn refresh_due(&mut self, live: &mut Live) {
        let now = Instant::now();
        for (mid, t) in self.tracked.iter_mut() {
            if t.refresh_at.is_none_or(|r| r > now) {
                continue;
            }
            // Until the answer comes, retry no sooner than a minute.
            t.refresh_at = Some(now + Duration::from_secs(60));
            match mitigation::put(&self.cuid, *mid, &t.spec, None) {
                Ok(req) => {
                    debug!(mid, "refreshing the mitigation");
                    let id = live.session.send_request(req, now.into_std());
                    live.waiters.insert(id, Waiter::Refresh(*mid));
                }
                Err(e) => warn!(mid, error = %e, "cannot refresh"),
            }
        }
    }

    fn event(&mut self, live: &mut Live, ev: Event) {
        match ev {
            Event::Response { id, response } => match live.waiters.remove(&id) {
                Some(w) => self.response(live, id, w, response),
                None => debug!(?id, "response nobody waits for"),
            },
            Event::Notification { id, message } => {
                let Some(mid) = live.observations.get(&id).copied() else {
                    return;
                };
                self.publish(mid, &message);
            }
            Event::Failed { id, error } => {
                let Some(w) = live.waiters.remove(&id) else {
                    return;
                };
                match w {
                    Waiter::ConfigGet | Waiter::ConfigPut(_) => {
                        warn!(?error, "session configuration failed; keeping the defaults");
                        self.report_up(live);
                    }
                    w => fail(w, request_error(error)),
                }
            }
            Event::Lost { reason } => debug!(%reason, "session reported lost"),
        }
    }

    fn response(&mut self, live: &mut Live, id: RequestId, w: Waiter, resp: Message) {
        match w {
            Waiter::Reply(tx) => drop(tx.send(Ok(resp))),
            Waiter::Ignore => {}
            Waiter::Observe(mid, reply) => {
                if resp.code.is_success() && resp.observe().is_some() {
                    live.observations.insert(id, mid);
                }
                self.publish(mid, &resp);
                if let Some(tx) = reply {
                    let _ = tx.send(Ok(resp));
                }
            }
            Waiter::ConfigGet => self.config_got(live, resp),
            Waiter::ConfigPut(chosen) => {
                if resp.code.is_success() {
                    info!(code = %resp.code, "session configuration accepted");
                    self.negotiated = Some(chosen);
                    self.apply_params(live);
                } else {
                    warn!(code = %resp.code, diagnostic = %mitigation::diagnostic(&resp), "session configuration refused; keeping the defaults");
                }
                self.report_up(live);
            }
            Waiter::Refresh(mid) => self.refreshed(mid, &resp),
        }
    }

    /// GET /config answered: PUT our choice within the server's ranges (4.5.2).
    fn config_got(&mut self, live: &mut Live, resp: Message) {
        let server = match resp.code.is_success().then(|| SignalConfig::from_cbor(&resp.payload)) {
            Some(Ok(d)) => d.value,
            other => {
                warn!(code = %resp.code, error = ?other.map(|r| r.err()), "no usable session configuration from the server; keeping the defaults");
                return self.report_up(live);
            }
        };
        let chosen = negotiate::choose(&server, &self.cfg.preferences);
        let sid = match self.cfg.state.next_sid(&self.cuid) {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cannot allocate a sid; keeping the defaults");
                return self.report_up(live);
            }
        };
        let mut req = Request::new(Code::PUT, SignalPath::Config { sid: Some(sid) });
        req.body = Some(chosen.to_cbor());
        let id = live.session.send_request(req, std::time::Instant::now());
        live.waiters.insert(id, Waiter::ConfigPut(chosen));
    }

    fn refreshed(&mut self, mid: u32, resp: &Message) {
        if !resp.code.is_success() {
            warn!(mid, code = %resp.code, diagnostic = %mitigation::diagnostic(resp), "refresh refused; no longer refreshing");
            self.tracked.remove(&mid);
            return;
        }
        let lifetime = mitigation::granted_lifetime(resp).unwrap_or(Lifetime::RECOMMENDED);
        if let Some(t) = self.tracked.get_mut(&mid) {
            t.refresh_at = refresh_time(lifetime);
            debug!(mid, ?lifetime, "mitigation refreshed");
        }
    }

    fn publish(&self, observed: Option<u32>, msg: &Message) {
        let scopes = if msg.code.is_success() { mitigation::scopes(msg).unwrap_or_default() } else { Vec::new() };
        let _ = self.updates.send(StatusUpdate { observed, code: msg.code, scopes });
    }
}

/// Refresh at 3/4 of the granted lifetime: early enough for a few retransmissions and
/// a lost response, late enough not to be chatty. None for an indefinite lifetime.
fn refresh_time(lifetime: Lifetime) -> Option<Instant> {
    match lifetime {
        Lifetime::Indefinite => None,
        Lifetime::Seconds(s) => {
            Some(Instant::now() + Duration::from_millis(u64::from(s) * 750).max(Duration::from_secs(1)))
        }
    }
}

fn request_error(e: RequestError) -> ClientError {
    match e {
        RequestError::Timeout => ClientError::Timeout,
        RequestError::Reset => ClientError::Protocol("the server reset the request (RST)".into()),
        RequestError::SessionClosed => ClientError::Unreachable("session ended before the answer".into()),
    }
}

fn fail(w: Waiter, e: ClientError) {
    match w {
        Waiter::Reply(tx) | Waiter::Observe(_, Some(tx)) => drop(tx.send(Err(e))),
        _ => {}
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// A secret random seed for tokens and message ids (RFC 7252 5.3.1).
fn seed() -> u64 {
    let mut b = [0u8; 8];
    openssl::rand::rand_bytes(&mut b).expect("OpenSSL RNG");
    u64::from_le_bytes(b)
}
