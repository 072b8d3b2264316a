//! The DOTS client: the signal channel of RFC 9132 (draft 08 in `shared/reference`) from
//! the client's side, for the `mitigator client` commands and, later, the escalation
//! controller that asks upstream providers for help.
//!
//! # Library API
//!
//! ```no_run
//! # async fn demo() -> Result<(), mitigator::client_dots::ClientError> {
//! use mitigator::client_dots::{ClientConfig, DotsClient, MitigationSpec};
//! use mitigator::transport::{ClientCredential, ClientSecurity};
//! use dots_proto::signal::{AttackStatus, IpPrefix};
//!
//! let security = ClientSecurity {
//!     credential: ClientCredential::Psk { identity: b"cpe-17".to_vec(), key: b"secret".to_vec() },
//!     ca_pem: None,
//! };
//! let cfg = ClientConfig::new("dots.example.net".parse().unwrap(), security);
//! let client = DotsClient::connect(cfg).await?;        // happy eyeballs, GET+PUT /config
//! let mut updates = client.updates();                  // status notifications (Observe)
//! let m = client.mitigate(&MitigationSpec::prefixes(vec!["203.0.113.7/32".parse().unwrap()])).await?;
//! client.efficacy(m.mid, AttackStatus::UnderAttack).await?;  // PUT with If-Match (4.4.3)
//! let update = updates.recv().await;                   // e.g. status 2: successfully mitigated
//! client.withdraw(m.mid).await?;                       // DELETE (4.4.4)
//! client.close().await;
//! # Ok(()) }
//! ```
//!
//! - [`DotsClient::connect`] establishes the first session and returns once it is up (or
//!   with the error: [`ClientError::Unreachable`], [`ClientError::Credentials`], ...).
//!   From then on a background task keeps it: heartbeats (4.7), reconnection with
//!   exponential backoff after a loss, re-registration of observations, and refreshes
//!   of the client's mitigations before their lifetime ends (at 3/4 of it).
//! - [`DotsClient::state`] / [`DotsClient::state_changes`]: [`SessionState`] (up, lost,
//!   closed). Requests made while the session is down fail at once with
//!   [`ClientError::Unreachable`]: the caller decides whether to retry.
//! - [`DotsClient::mitigate`] allocates the next 'mid' from the state file (durably,
//!   before sending: mids keep increasing across restarts, 4.4.1.1), PUTs the request
//!   (Non-confirmable, re-sent until answered, 4.4) and returns the mid, the response
//!   code and the granted lifetime; a 4.xx/5.xx is [`ClientError::Refused`] with the
//!   code and diagnostic. [`DotsClient::refresh`], [`DotsClient::efficacy`],
//!   [`DotsClient::withdraw`] act on mitigations this client made;
//!   [`DotsClient::efficacy_for`] and [`DotsClient::withdraw`] also on others (mid known).
//! - [`DotsClient::status`] (GET), [`DotsClient::observe`] (GET with Observe 0; later
//!   notifications arrive on [`DotsClient::updates`]), [`DotsClient::unobserve`].
//! - [`DotsClient::server_config`] (GET /config).
//!
//! # Layout
//!
//! - [`session`]: sans-IO CoAP client session (retransmission, heartbeats, Observe).
//! - [`driver`]: the I/O task. [`connect`]: happy eyeballs (4.3).
//! - [`negotiate`]: session configuration (4.5). [`mitigation`]: request bodies.
//! - [`state`]: the mid/sid state file. [`config`]: [`ClientConfig`].
//! - [`cli`]: `mitigator client ...`.

pub mod cli;
pub mod config;
pub mod connect;
pub mod driver;
pub mod error;
pub mod mitigation;
pub mod negotiate;
pub mod session;
pub mod state;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use dots_proto::coap::{Code, Message};
use dots_proto::signal::{AttackStatus, Lifetime, Scope, SignalBody, SignalConfig, SignalPath};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::info;

pub use config::{ClientConfig, Preferences, ServerAddr, TransportChoice};
pub use driver::{ClientStats, SessionState, StatusUpdate};
pub use error::{ClientError, Result};
pub use mitigation::MitigationSpec;
pub use state::StateFile;

use driver::{Command, Driver};
use session::Request;

/// The server's answer to a mitigation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MitigationAck {
    pub mid: u32,
    /// 2.01 Created or 2.04 Changed.
    pub code: Code,
    /// "The DOTS server MUST always indicate the actual lifetime in the response".
    pub lifetime: Option<Lifetime>,
}

/// A DOTS client bound to one server. Cheap to share behind an `Arc`; all methods take
/// `&self`.
pub struct DotsClient {
    cuid: String,
    cmds: mpsc::Sender<Command>,
    state: watch::Receiver<SessionState>,
    updates: broadcast::Sender<StatusUpdate>,
    stats: Arc<ClientStats>,
    ids: StateFile,
    /// Requests of the mitigations made by this client (efficacy updates repeat them).
    specs: Mutex<HashMap<u32, MitigationSpec>>,
    observe_own: bool,
    task: JoinHandle<()>,
}

impl DotsClient {
    /// Connects and negotiates the first session; returns once it is up.
    pub async fn connect(cfg: ClientConfig) -> Result<DotsClient> {
        let cuid = cfg.security.cuid().map_err(|e| ClientError::Credentials(e.to_string()))?;
        info!(server = %cfg.server, %cuid, state = %cfg.state.path().display(), "DOTS client starting");
        let ids = cfg.state.clone();
        let observe_own = cfg.observe_own;
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let (state_tx, state_rx) = watch::channel(SessionState::Connecting);
        let (updates, _) = broadcast::channel(256);
        let stats = Arc::new(ClientStats::default());
        let (first_tx, first_rx) = oneshot::channel();
        let driver = Driver::new(cfg, cuid.clone(), cmd_rx, state_tx, updates.clone(), stats.clone(), first_tx);
        let task = tokio::spawn(driver.run());
        match first_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(ClientError::Closed),
        }
        Ok(DotsClient {
            cuid,
            cmds: cmd_tx,
            state: state_rx,
            updates,
            stats,
            ids,
            specs: Mutex::default(),
            observe_own,
            task,
        })
    }

    /// This client's 'cuid' (4.4.1.1), derived from its credential.
    pub fn cuid(&self) -> &str {
        &self.cuid
    }

    pub fn state(&self) -> SessionState {
        self.state.borrow().clone()
    }

    pub fn state_changes(&self) -> watch::Receiver<SessionState> {
        self.state.clone()
    }

    /// Status reports from every observation (see [`DotsClient::observe`]).
    pub fn updates(&self) -> broadcast::Receiver<StatusUpdate> {
        self.updates.subscribe()
    }

    pub fn stats(&self) -> &ClientStats {
        &self.stats
    }

    async fn request(&self, req: Request) -> Result<Message> {
        let (reply, rx) = oneshot::channel();
        self.cmds.send(Command::Request { req, reply }).await.map_err(|_| ClientError::Closed)?;
        rx.await.map_err(|_| ClientError::Closed)?
    }

    /// Requests mitigation (4.4.1) under a fresh 'mid'.
    pub async fn mitigate(&self, spec: &MitigationSpec) -> Result<MitigationAck> {
        let (ids, cuid) = (self.ids.clone(), self.cuid.clone());
        let mid = tokio::task::spawn_blocking(move || ids.next_mid(&cuid)).await.map_err(|_| ClientError::Closed)??;
        self.mitigate_as(mid, spec).await
    }

    /// Sends the mitigation request under a given 'mid' (a refresh when it exists).
    pub async fn mitigate_as(&self, mid: u32, spec: &MitigationSpec) -> Result<MitigationAck> {
        let resp = self.request(mitigation::put(&self.cuid, mid, spec, None)?).await?;
        mitigation::expect_success(&resp)?;
        let lifetime = mitigation::granted_lifetime(&resp);
        // An RFC 9133 'acl-list' is carried out once: refreshes and
        // efficacy updates of this mid repeat everything else.
        let spec = &spec.clone().without_acls();
        let new = self.specs.lock().unwrap().insert(mid, spec.clone()).is_none();
        if new && self.observe_own {
            // Status changes then arrive on updates() (4.4.2.1); nobody waits for the answer.
            let (reply, _) = oneshot::channel();
            let req = mitigation::get(&self.cuid, Some(mid), true);
            let _ = self.cmds.send(Command::Observe { mid: Some(mid), req, reply }).await;
        }
        let _ = self
            .cmds
            .send(Command::Track { mid, spec: spec.clone(), lifetime: lifetime.unwrap_or(spec.lifetime) })
            .await;
        Ok(MitigationAck { mid, code: resp.code, lifetime })
    }

    /// Refreshes a mitigation of this client now (the driver also does it on its own).
    pub async fn refresh(&self, mid: u32) -> Result<MitigationAck> {
        let spec = self.spec(mid)?;
        self.mitigate_as(mid, &spec).await
    }

    fn spec(&self, mid: u32) -> Result<MitigationSpec> {
        self.specs
            .lock()
            .unwrap()
            .get(&mid)
            .cloned()
            .ok_or_else(|| ClientError::Protocol(format!("mid {mid} was not requested by this client")))
    }

    /// Efficacy update (4.4.3) of a mitigation this client made.
    pub async fn efficacy(&self, mid: u32, attack_status: AttackStatus) -> Result<()> {
        let spec = self.spec(mid)?;
        self.efficacy_for(mid, &spec, attack_status).await
    }

    /// Efficacy update with the request's parameters given ("MUST include all the
    /// parameters used in the PUT request ... unchanged apart from the 'lifetime'").
    pub async fn efficacy_for(&self, mid: u32, spec: &MitigationSpec, attack_status: AttackStatus) -> Result<()> {
        let resp = self.request(mitigation::put(&self.cuid, mid, spec, Some(attack_status))?).await?;
        mitigation::expect_success(&resp)
    }

    /// Withdraws a mitigation (4.4.4); 2.02 even for an unknown mid.
    pub async fn withdraw(&self, mid: u32) -> Result<()> {
        let resp = self.request(mitigation::delete(&self.cuid, mid)).await?;
        mitigation::expect_success(&resp)?;
        self.specs.lock().unwrap().remove(&mid);
        let _ = self.cmds.send(Command::Untrack { mid }).await;
        let _ = self.cmds.send(Command::Unobserve { mid: Some(mid) }).await;
        Ok(())
    }

    /// GET of one mitigation or all of this client's (4.4.2).
    pub async fn status(&self, mid: Option<u32>) -> Result<Vec<Scope>> {
        let resp = self.request(mitigation::get(&self.cuid, mid, false)).await?;
        mitigation::expect_success(&resp)?;
        mitigation::scopes(&resp)
    }

    /// Registers an observation (4.4.2.1) and returns the current state; notifications
    /// follow on [`DotsClient::updates`]. Kept across reconnections.
    pub async fn observe(&self, mid: Option<u32>) -> Result<Vec<Scope>> {
        let (reply, rx) = oneshot::channel();
        let req = mitigation::get(&self.cuid, mid, true);
        self.cmds.send(Command::Observe { mid, req, reply }).await.map_err(|_| ClientError::Closed)?;
        let resp = rx.await.map_err(|_| ClientError::Closed)??;
        mitigation::expect_success(&resp)?;
        mitigation::scopes(&resp)
    }

    /// Deregisters an observation (Observe 1, RECOMMENDED by 4.4.2.1).
    pub async fn unobserve(&self, mid: Option<u32>) {
        let _ = self.cmds.send(Command::Unobserve { mid }).await;
    }

    /// GET /config: the server's acceptable ranges and current values (4.5.1).
    pub async fn server_config(&self) -> Result<SignalConfig> {
        let resp = self.request(Request::new(Code::GET, SignalPath::Config { sid: None })).await?;
        mitigation::expect_success(&resp)?;
        SignalConfig::from_cbor(&resp.payload)
            .map(|d| d.value)
            .map_err(|e| ClientError::Protocol(format!("configuration from the server: {e}")))
    }

    /// Ends the session (close_notify) and the background task.
    pub async fn close(self) {
        let (reply, rx) = oneshot::channel();
        if self.cmds.send(Command::Close { reply }).await.is_ok() {
            let _ = rx.await;
        }
        let _ = self.task.await;
    }
}
