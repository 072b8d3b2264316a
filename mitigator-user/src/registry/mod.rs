//! The mitigation registry: the one owner of the desired protection state.
//!
//! Every entry point (the local API and CLI now, the DOTS server later) sends
//! it commands through a [`Registry`] handle. The owner runs on its own thread
//! because everything it does is blocking and must be sequential: validate,
//! make the change durable in the [`Store`], apply the whole rule set to the
//! data plane as one atomic swap, and only then answer. It also samples the
//! data plane's counters on a tick (for rates) and expires lifetimes.

mod batch;
mod control;
mod datachannel;
mod dots;

pub use datachannel::{Content, DcClient, DcOp, DcReply};

pub use batch::Commits;
pub use dots::{DotsNotice, DotsPutReply};

use std::{
    collections::BTreeMap,
    sync::mpsc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use ipnet::IpNet;
use mitigator_common::{DropReason, IfaceStats, IfaceVerdict, MAX_TARGETS};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tracing::{info, warn};

use dots_proto::signal::{MitigationRequest, MitigationScope, ResponseCode, SignalConfig};

use crate::{
    compiler,
    dots::{ClientCtx, DotsState, Refusal, SessionParams},
    config::Config,
    dataplane::Dataplane,
    protection::{Countermeasure, Owner, ProtectionSpec},
    stats::{CounterReport, RateTracker},
    store::Store,
};

/// A protection as held and stored: what was asked, resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protection {
    /// Also the data plane's target id (stable across restarts, so the
    /// pinned counters stay attached to it).
    pub id: u32,
    pub owner: Owner,
    pub spec: ProtectionSpec,
    /// The countermeasures in force: the spec's own, or its profile's.
    pub countermeasures: Vec<Countermeasure>,
    pub created_unix: u64,
    pub expires_unix: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListKind {
    Accept,
    Drop,
}

impl ListKind {
    pub fn name(self) -> &'static str {
        match self {
            ListKind::Accept => "accept",
            ListKind::Drop => "drop",
        }
    }
}

/// Why a command was refused; each maps to one HTTP status of the local API.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Full(String),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl RegistryError {
    pub fn http_status(&self) -> u16 {
        match self {
            RegistryError::Invalid(_) => 400,
            RegistryError::NotFound(_) => 404,
            RegistryError::Conflict(_) => 409,
            RegistryError::Full(_) => 507,
            RegistryError::Internal(_) => 500,
        }
    }
}

pub type Reply<T> = oneshot::Sender<Result<T, RegistryError>>;

/// Which protection a command is about.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Selector {
    Id(u32),
    Prefix(IpNet),
}

enum Command {
    Protect(Owner, ProtectionSpec, Reply<Protection>),
    Unprotect(Selector, Reply<Protection>),
    Status(Reply<Status>),
    ChangeList { kind: ListKind, add: Vec<IpNet>, remove: Vec<IpNet>, reply: Reply<Vec<IpNet>> },
    DotsPut { client: ClientCtx, req: MitigationRequest, prefixes: Vec<IpNet>, if_match: bool, reply: oneshot::Sender<Result<DotsPutReply, Refusal>> },
    DotsGet { cuid: String, mid: Option<u32>, reply: oneshot::Sender<Result<MitigationScope, Refusal>> },
    DotsDelete { cuid: String, mid: u32, reply: oneshot::Sender<Result<bool, Refusal>> },
    DotsSession { cuid: String, up: bool },
    DotsConfigPut { cuid: String, sid: Option<u32>, body: SignalConfig, reply: oneshot::Sender<Result<(ResponseCode, SignalConfig), Refusal>> },
    DotsConfigGet { cuid: String, sid: Option<u32>, reply: oneshot::Sender<Result<SignalConfig, Refusal>> },
    DotsConfigDelete { cuid: String, reply: oneshot::Sender<Result<(), Refusal>> },
    DotsSessionParams { cuid: String, reply: oneshot::Sender<SessionParams> },
    /// The escalation controller sets a status (1-4, e.g. 4 when the attack
    /// exceeds this host's capability, Table 3).
    DotsSetStatus { cuid: String, mid: u32, status: dots_proto::signal::Status, reply: oneshot::Sender<Result<(), Refusal>> },
    /// The escalation controller's latest state, shown by `status`.
    SetEscalation(crate::escalation::EscalationReport),
    /// A data-channel operation of an authenticated client (RFC 8783).
    DataChannel { client: ClientCtx, op: DcOp, reply: oneshot::Sender<Result<DcReply, dots_proto::data::RestconfError>> },
    /// Aliases of a client named in a signal-channel request.
    ResolveAliases { cuid: String, names: Vec<String>, reply: oneshot::Sender<Result<Vec<dots_proto::data::Alias>, String>> },
    /// Stop the owner; with `uninstall`, detach the data plane and remove
    /// its pins (otherwise it keeps enforcing without the daemon).
    Shutdown { uninstall: bool, reply: Reply<()> },
}

/// Live view of one protection.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProtectionStatus {
    #[serde(flatten)]
    pub protection: Protection,
    pub passed: CounterReport,
    pub dropped: CounterReport,
    /// Per drop reason, only those that dropped something.
    pub drop_reasons: BTreeMap<String, CounterReport>,
    /// A DOTS client's mitigation: its state as the client sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dots: Option<DotsView>,
}

/// What an operator needs to tell a DOTS mitigation's phases apart: its
/// RFC 9132 status and the remaining lifetime the client is told, which
/// ends with the active-but-terminating period while at status 5.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DotsView {
    /// Table 3's code (1-8).
    pub status: u64,
    /// Table 3's label, e.g. "dots-client-withdrawn-mitigation".
    pub status_label: String,
    /// Seconds left, or -1 for an indefinite lifetime.
    pub lifetime: i64,
}

/// Live view of one interface: every packet the program saw, by verdict.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IfaceStatus {
    pub ifindex: u32,
    pub name: String,
    /// XDP mode the program runs in here (`native`, `generic`; absent for
    /// the "(other)" slot), the driver, and why that mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode_reason: Option<String>,
    pub seen: CounterReport,
    pub verdicts: BTreeMap<String, CounterReport>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    pub protections: Vec<ProtectionStatus>,
    pub interfaces: Vec<IfaceStatus>,
    pub accept_list: Vec<IpNet>,
    pub drop_list: Vec<IpNet>,
    /// Upstream escalation (absent when no `[[upstream]]` is configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<crate::escalation::EscalationReport>,
    /// The daemon's own DOTS listeners kept out of reach of drops
    /// (`signal.guard`); empty when the guard is off.
    #[serde(default)]
    pub guard: Vec<GuardStatus>,
    /// Rule-set changes and generation flips since the daemon started.
    #[serde(default)]
    pub commits: Commits,
}

/// One guarded listener and what its entry matched since the daemon first
/// put it in the data plane (passed under the rate and dropped over it;
/// kept across restarts with the same listener in the same place).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GuardStatus {
    #[serde(flatten)]
    pub listener: compiler::guard::Listener,
    /// Something could drop its traffic: a protection reaching it, or a
    /// client ACL entry (only then does the data plane consult it).
    pub in_force: bool,
    pub matched_packets: u64,
    pub matched_bytes: u64,
}

/// Handle to the registry owner; cheap to clone.
#[derive(Clone)]
pub struct Registry {
    tx: mpsc::Sender<Command>,
    notices: dots::Notices,
}

impl Registry {
    /// Restores the stored state into the data plane and starts the owner.
    pub fn start(cfg: Config, store: Store, dataplane: Dataplane) -> anyhow::Result<Registry> {
        let (notices, _) = tokio::sync::broadcast::channel(1024);
        let mut owner = Owner_::restore(cfg, store, dataplane, notices.clone())?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new().name("registry".into()).spawn(move || {
            // Every request goes through this thread: a daemon without it
            // only answers errors. A bug that panics here ends the process
            // instead, so that the service manager restarts it (the pinned
            // data plane keeps enforcing meanwhile, and the store has
            // everything acknowledged).
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| owner.run(rx))).is_err() {
                tracing::error!("the registry thread panicked (a bug: please report it with the log); exiting with status 70 so that the daemon is restarted");
                std::process::exit(70);
            }
        })?;
        Ok(Registry { tx, notices })
    }

    /// Changes of DOTS state, for Observe notifications. A receiver that
    /// lags loses the oldest notices (`RecvError::Lagged`): it should then
    /// refresh everything it observes.
    pub fn dots_notices(&self) -> tokio::sync::broadcast::Receiver<DotsNotice> {
        self.notices.subscribe()
    }

    async fn ask_dots<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T, Refusal>>) -> Command) -> Result<T, Refusal> {
        let (reply, rx) = oneshot::channel();
        let stopped = || Refusal::new(ResponseCode::SERVICE_UNAVAILABLE, "the mitigation registry has stopped");
        self.tx.send(make(reply)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// A validated mitigation PUT (section 4.4.1) with the prefixes its
    /// targets resolved to. Answered after it is durable and enforced.
    pub async fn dots_put(&self, client: ClientCtx, req: MitigationRequest, prefixes: Vec<IpNet>, if_match: bool) -> Result<DotsPutReply, Refusal> {
        self.ask_dots(|reply| Command::DotsPut { client, req, prefixes, if_match, reply }).await
    }

    /// GET of one mitigation or all of a client's, with live counters.
    pub async fn dots_get(&self, cuid: &str, mid: Option<u32>) -> Result<MitigationScope, Refusal> {
        let cuid = cuid.to_string();
        self.ask_dots(|reply| Command::DotsGet { cuid, mid, reply }).await
    }

    /// DELETE (section 4.4.4): true if the mid existed (2.02 either way).
    pub async fn dots_delete(&self, cuid: &str, mid: u32) -> Result<bool, Refusal> {
        let cuid = cuid.to_string();
        self.ask_dots(|reply| Command::DotsDelete { cuid, mid, reply }).await
    }

    /// The signal channel session of `cuid` was lost (`up` false) or is
    /// back (section 4.7).
    pub fn dots_session(&self, cuid: &str, up: bool) {
        let _ = self.tx.send(Command::DotsSession { cuid: cuid.to_string(), up });
    }

    pub async fn dots_config_put(&self, cuid: &str, sid: Option<u32>, body: SignalConfig) -> Result<(ResponseCode, SignalConfig), Refusal> {
        let cuid = cuid.to_string();
        self.ask_dots(|reply| Command::DotsConfigPut { cuid, sid, body, reply }).await
    }

    pub async fn dots_config_get(&self, cuid: &str, sid: Option<u32>) -> Result<SignalConfig, Refusal> {
        let cuid = cuid.to_string();
        self.ask_dots(|reply| Command::DotsConfigGet { cuid, sid, reply }).await
    }

    pub async fn dots_config_delete(&self, cuid: &str) -> Result<(), Refusal> {
        let cuid = cuid.to_string();
        self.ask_dots(|reply| Command::DotsConfigDelete { cuid, reply }).await
    }

    /// Sets a DOTS mitigation's status (1-4), persisted and notified to its
    /// observers like any other change.
    pub async fn dots_set_status(&self, cuid: &str, mid: u32, status: dots_proto::signal::Status) -> Result<(), Refusal> {
        let cuid = cuid.to_string();
        self.ask_dots(|reply| Command::DotsSetStatus { cuid, mid, status, reply }).await
    }

    /// Tells the observers of a mitigation that it changed (its view is
    /// overlaid by the gateway with the upstream's status).
    pub fn dots_touch(&self, cuid: &str, mid: u32) {
        let _ = self.notices.send(DotsNotice::Mitigation { cuid: cuid.to_string(), mid });
    }

    /// Publishes the escalation controller's state for `status`.
    pub fn set_escalation(&self, report: crate::escalation::EscalationReport) {
        let _ = self.tx.send(Command::SetEscalation(report));
    }

    /// The heartbeat and retransmission values of `cuid`'s session now.
    pub async fn dots_session_params(&self, cuid: &str) -> SessionParams {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(Command::DotsSessionParams { cuid: cuid.to_string(), reply });
        rx.await.unwrap_or_default()
    }

    /// A data-channel operation; answered once stored and enforced.
    pub async fn data_channel(&self, client: ClientCtx, op: DcOp) -> Result<DcReply, dots_proto::data::RestconfError> {
        let (reply, rx) = oneshot::channel();
        let stopped = || dots_proto::data::RestconfError::new(503, dots_proto::data::ErrorTag::OperationFailed, "the registry has stopped");
        self.tx.send(Command::DataChannel { client, op, reply }).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// The client's aliases of these names; Err(name) for the first one the
    /// client did not create.
    pub async fn resolve_aliases(&self, cuid: &str, names: Vec<String>) -> Result<Vec<dots_proto::data::Alias>, String> {
        let (reply, rx) = oneshot::channel();
        let first = names.first().cloned().unwrap_or_default();
        let _ = self.tx.send(Command::ResolveAliases { cuid: cuid.to_string(), names, reply });
        rx.await.unwrap_or(Err(first))
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, RegistryError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .map_err(|_| RegistryError::Internal(anyhow::anyhow!("the registry has stopped")))?;
        rx.await
            .map_err(|_| RegistryError::Internal(anyhow::anyhow!("the registry has stopped")))?
    }

    pub async fn protect(&self, owner: Owner, spec: ProtectionSpec) -> Result<Protection, RegistryError> {
        self.ask(|r| Command::Protect(owner, spec, r)).await
    }

    pub async fn unprotect(&self, sel: Selector) -> Result<Protection, RegistryError> {
        self.ask(|r| Command::Unprotect(sel, r)).await
    }

    pub async fn status(&self) -> Result<Status, RegistryError> {
        self.ask(Command::Status).await
    }

    pub async fn change_list(&self, kind: ListKind, add: Vec<IpNet>, remove: Vec<IpNet>) -> Result<Vec<IpNet>, RegistryError> {
        self.ask(|reply| Command::ChangeList { kind, add, remove, reply }).await
    }

    pub async fn shutdown(&self, uninstall: bool) -> Result<(), RegistryError> {
        self.ask(|reply| Command::Shutdown { uninstall, reply }).await
    }
}

/// The owner's state. (Named apart from [`Owner`], who asked for a
/// protection.)
struct Owner_ {
    cfg: Config,
    store: Store,
    dataplane: Option<Dataplane>,
    protections: BTreeMap<u32, Protection>,
    accept: Vec<IpNet>,
    drop: Vec<IpNet>,
    rates: RateTracker,
    dots: DotsState,
    notices: dots::Notices,
    escalation: Option<crate::escalation::EscalationReport>,
    dc: datachannel::DcState,
    /// Per guarded listener (`compiler::guard::listeners`): whether
    /// something could drop its traffic, as of the last rule set applied.
    guard_in_force: Vec<bool>,
    /// The deferred commit and the answers waiting for it.
    batch: batch::Batch,
    /// The SYN proxy's nftables table.
    nft: crate::synproxy::Nft,
    /// Whether this host can run the SYN proxy (`synproxy::available`).
    syn_proxy_ok: Result<(), String>,
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Owner_ {
    fn restore(cfg: Config, store: Store, mut dataplane: Dataplane, notices: dots::Notices) -> anyhow::Result<Owner_> {
        let protections: BTreeMap<u32, Protection> =
            store.protections()?.into_iter().map(|p| (p.id, p)).collect();
        let (accept, drop) = (store.list(ListKind::Accept)?, store.list(ListKind::Drop)?);
        dataplane.set_reflection_ports(&cfg.dataplane.reflection_ports)?;
        dataplane.set_syn_proxy(crate::synproxy::SETTINGS)?;
        let syn_proxy_ok = crate::synproxy::available().map_err(|e| format!("{e:#}"));
        if let Err(e) = &syn_proxy_ok {
            warn!(error = %e, "the SYN proxy cannot run on this host: protections asking for syn-proxy will be refused");
        }
        let dots = dots::restore(&cfg, &store)?;
        let dc = datachannel::restore(&store, &cfg)?;
        let mut owner = Owner_ {
            cfg,
            store,
            dataplane: Some(dataplane),
            protections,
            accept,
            drop,
            rates: RateTracker::default(),
            dots,
            notices,
            escalation: None,
            dc,
            guard_in_force: Default::default(),
            batch: Default::default(),
            nft: Default::default(),
            syn_proxy_ok,
        };
        owner.sync_dots_protections()?;
        info!(protections = owner.protections.len(), accept = owner.accept.len(), drop = owner.drop.len(), "restored state");
        owner.expire();
        owner.dots_tick();
        Ok(owner)
    }

    /// Time until the DOTS state machine's next deadline (lifetimes,
    /// terminating periods), so that the tick comes in time.
    fn until_dots_deadline(&self) -> Duration {
        match self.dots.next_deadline() {
            Some(d) => Duration::from_millis(d.saturating_sub(dots::now_ms())),
            None => Duration::MAX,
        }
    }

    fn dp(&mut self) -> &mut Dataplane {
        self.dataplane.as_mut().expect("data plane present until shutdown")
    }

    fn run(&mut self, rx: mpsc::Receiver<Command>) {
        let interval = Duration::from_millis(self.cfg.dataplane.stats_interval_ms);
        let mut next_tick = Instant::now();
        loop {
            let until_tick = next_tick.saturating_duration_since(Instant::now());
            let wait = self.flush_due().map_or(until_tick, |due| due.min(until_tick));
            let next = match rx.try_recv() {
                Ok(cmd) => Ok(cmd),
                Err(mpsc::TryRecvError::Disconnected) => Err(mpsc::RecvTimeoutError::Disconnected),
                Err(mpsc::TryRecvError::Empty) => {
                    // Nothing queued: sync the deferred writes now, while
                    // the grace runs, rather than after it.
                    self.sync_while_idle();
                    rx.recv_timeout(wait)
                }
            };
            match next {
                Ok(Command::Shutdown { uninstall, reply }) => {
                    if self.batch.waiting() {
                        self.flush();
                    }
                    let r = self.shutdown(uninstall);
                    let _ = reply.send(r);
                    return;
                }
                Ok(cmd) => {
                    self.batch.begin_command();
                    // Within the grace of a flip, a change will wait for the
                    // next one: its writes need not be synced one by one.
                    let recent_flip = !self.dp().grace_left().is_zero();
                    self.store.set_lazy(recent_flip);
                    self.handle(cmd);
                    self.store.set_lazy(false);
                    if !self.batch.waiting() {
                        // A command without an answer (a session event).
                        if let Err(e) = self.store.sync() {
                            warn!(error = %format!("{e:#}"), "cannot sync the state database");
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    if self.batch.waiting() {
                        self.flush();
                    }
                    return;
                }
            }
            if self.flush_due().is_some_and(|due| due.is_zero()) {
                self.flush();
            }
            // Checked after every command too, so that a steady stream of
            // requests cannot hold the tick off.
            if Instant::now() >= next_tick {
                if self.batch.failed() && !self.batch.waiting() {
                    self.flush();
                }
                self.sample();
                self.expire();
                self.dots_tick();
                self.check_dots_protections();
                next_tick = Instant::now() + interval.min(self.until_dots_deadline());
            }
        }
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Protect(owner, spec, reply) => {
                let r = self.protect(owner, spec);
                self.respond(reply, r);
            }
            Command::Unprotect(sel, reply) => {
                let r = self.unprotect(&sel);
                self.respond(reply, r);
            }
            Command::Status(reply) => {
                let r = Ok(self.status());
                self.respond(reply, r);
            }
            Command::ChangeList { kind, add, remove, reply } => {
                let r = self.change_list(kind, add, remove);
                self.respond(reply, r);
            }
            Command::DotsPut { client, req, prefixes, if_match, reply } => {
                let r = self.dots_put(client, req, prefixes, if_match);
                self.respond(reply, r);
            }
            Command::DotsGet { cuid, mid, reply } => {
                let r = self.dots_get(&cuid, mid);
                self.respond(reply, r);
            }
            Command::DotsDelete { cuid, mid, reply } => {
                let r = self.dots_delete(&cuid, mid);
                self.respond(reply, r);
            }
            Command::DotsSession { cuid, up } => self.dots_session(&cuid, up),
            Command::DotsConfigPut { cuid, sid, body, reply } => {
                let r = self.dots_config_put(&cuid, sid, &body);
                self.respond(reply, r);
            }
            Command::DotsConfigGet { cuid, sid, reply } => {
                let r = self.dots_config_get(&cuid, sid);
                self.respond(reply, r);
            }
            Command::DotsConfigDelete { cuid, reply } => {
                let r = self.dots_config_delete(&cuid);
                self.respond(reply, r);
            }
            Command::DotsSessionParams { cuid, reply } => {
                let r = self.dots_session_params(&cuid);
                self.respond(reply, r);
            }
            Command::DotsSetStatus { cuid, mid, status, reply } => {
                let r = self.dots_set_status(&cuid, mid, status);
                self.respond(reply, r);
            }
            Command::SetEscalation(report) => self.escalation = Some(report),
            Command::DataChannel { client, op, reply } => {
                let r = self.dc_op(&client, op);
                self.respond(reply, r);
            }
            Command::ResolveAliases { cuid, names, reply } => {
                self.dc_touch(&cuid);
                let r = self.dc_resolve_aliases(&cuid, &names);
                self.respond(reply, r);
            }
            Command::Shutdown { .. } => unreachable!("handled in run"),
        }
    }

    /// Applies the whole desired state to the data plane (one atomic swap,
    /// possibly shared with other changes: see `batch`).
    fn apply(&mut self) -> anyhow::Result<()> {
        self.apply_with(false)
    }

    /// `apply`, where `strict_acl` makes a refused ACL set an error (a
    /// data-channel change is then refused and rolled back) instead of a
    /// rule set applied without ACLs (everything else). A strict change
    /// commits at once: it is rolled back on any failure.
    fn apply_with(&mut self, strict_acl: bool) -> anyhow::Result<()> {
        let plan = self.plan(strict_acl)?;
        self.enforce_or_defer(plan, strict_acl)
    }

    /// Compiles the whole desired state and prepares it on the data plane.
    fn plan(&mut self, strict_acl: bool) -> anyhow::Result<batch::Plan> {
        let protections: Vec<Protection> = self.protections.values().cloned().collect();
        let mut rules = compiler::compile(&protections, &self.accept, &self.drop);
        // Data-channel requests are checked before they are stored, so this
        // only fails for a stored set that no longer fits (the domains in
        // the config changed): protections must not wait on ACLs, so the
        // rule set goes in without them, loudly.
        let clients = match self.dc_entries() {
            Ok(entries) => entries,
            Err(e) if strict_acl => return Err(e),
            Err(e) => {
                warn!(error = %format!("{e:#}"), "data-channel ACLs cannot be compiled; applying the rule set without them");
                Vec::new()
            }
        };
        // The guard's entries: the data plane consults them before the
        // ACL and before in-scope targets' countermeasures.
        let listeners = compiler::guard::listeners(&self.cfg);
        rules.guard = listeners.iter().map(compiler::guard::Listener::entry).collect();
        rules.acl = clients;
        let synproxy = crate::synproxy::scopes(&rules);
        let e = match self.dp().prepare(&rules) {
            Ok(prepared) => {
                let guard_in_force = compiler::guard::in_force(&listeners, &rules.targets, !rules.acl.is_empty());
                return Ok(batch::Plan { prepared, acl: rules.acl, guard_in_force, synproxy });
            }
            Err(e) => e,
        };
        let acl_refused = e.chain().any(|c| c.downcast_ref::<crate::dataplane::AclError>().is_some());
        if strict_acl || !acl_refused || rules.acl.is_empty() {
            return Err(e);
        }
        warn!(error = %format!("{e:#}"), "the data plane refuses the data-channel ACLs; applying the rule set without them");
        rules.acl = vec![];
        let prepared = self.dp().prepare(&rules)?;
        let guard_in_force = compiler::guard::in_force(&listeners, &rules.targets, false);
        Ok(batch::Plan { prepared, acl: vec![], guard_in_force, synproxy })
    }

    fn resolve_countermeasures(&self, spec: &ProtectionSpec) -> Result<Vec<Countermeasure>, RegistryError> {
        if !spec.countermeasures.is_empty() {
            return Ok(spec.countermeasures.clone());
        }
        let name = spec.profile.as_deref().unwrap_or("default");
        self.cfg
            .profile(name)
            .map(|p| p.countermeasures.clone())
            .ok_or_else(|| {
                let known: Vec<&str> = self.cfg.profiles.keys().map(String::as_str).collect();
                RegistryError::Invalid(format!("profile `{name}`: no such profile (configured: {})", known.join(", ")))
            })
    }

    /// Refuses `syn-proxy` on a host that cannot run it, naming what is
    /// missing.
    fn check_runnable(&self, cms: &[Countermeasure], profile: Option<&str>) -> Result<(), RegistryError> {
        match (&self.syn_proxy_ok, cms.contains(&Countermeasure::SynProxy)) {
            (Err(why), true) => Err(RegistryError::Invalid(format!(
                "countermeasure `syn-proxy`{}: this host cannot run it: {why}",
                profile.map(|p| format!(" (of profile `{p}`)")).unwrap_or_default()
            ))),
            _ => Ok(()),
        }
    }

    /// Refuses a prefix that another protection already covers exactly: a
    /// destination can have one policy only.
    fn check_conflicts(&self, spec: &ProtectionSpec) -> Result<(), RegistryError> {
        for prefix in &spec.prefixes {
            if let Some(other) = self.protections.values().find(|p| p.spec.prefixes.contains(prefix)) {
                return Err(RegistryError::Conflict(format!(
                    "prefix {prefix}: already protected by protection {}; unprotect it first or protect a different prefix",
                    other.id
                )));
            }
        }
        Ok(())
    }

    fn allocate_id(&self) -> Result<u32, RegistryError> {
        // Not an id the data plane still enforces for a protection removed
        // in a deferred batch (see `batch`): its counters would mix.
        let retiring: Vec<u32> = match &self.dataplane {
            Some(dp) => dp.ids_in_force().filter(|id| !self.protections.contains_key(id)).collect(),
            None => vec![],
        };
        (0..MAX_TARGETS).find(|id| !self.protections.contains_key(id) && !retiring.contains(id)).ok_or_else(|| {
            RegistryError::Full(format!("all {MAX_TARGETS} protection slots are in use; remove some first"))
        })
    }

    fn protect(&mut self, owner: Owner, mut spec: ProtectionSpec) -> Result<Protection, RegistryError> {
        spec.validate().map_err(RegistryError::Invalid)?;
        spec.prefixes.sort();
        spec.prefixes.dedup();
        let countermeasures = self.resolve_countermeasures(&spec)?;
        let profile = spec.countermeasures.is_empty().then(|| spec.profile.as_deref().unwrap_or("default"));
        self.check_runnable(&countermeasures, profile)?;
        self.check_conflicts(&spec)?;
        let id = self.allocate_id()?;
        let created_unix = now_unix();
        let p = Protection {
            id,
            owner,
            expires_unix: spec.lifetime.map(|l| created_unix.saturating_add(l)),
            spec,
            countermeasures,
            created_unix,
        };
        self.store.put_protection(&p)?;
        self.dp().reset_target_stats(id)?;
        self.rates.forget(id);
        self.protections.insert(id, p.clone());
        if let Err(e) = self.apply() {
            // Undo, so that what is stored is what is enforced.
            self.protections.remove(&id);
            self.store.remove_protection(id)?;
            return Err(e.into());
        }
        info!(id, prefixes = ?p.spec.prefixes, countermeasures = %join(&p.countermeasures), "protection added");
        Ok(p)
    }

    fn find(&self, sel: &Selector) -> Result<u32, RegistryError> {
        let found = match sel {
            Selector::Id(id) => self.protections.get(id).map(|p| p.id),
            Selector::Prefix(net) => self.protections.values().find(|p| p.spec.prefixes.contains(net)).map(|p| p.id),
        };
        found.ok_or_else(|| match sel {
            Selector::Id(id) => RegistryError::NotFound(format!("protection {id}: no such protection")),
            Selector::Prefix(net) => RegistryError::NotFound(format!("prefix {net}: no protection covers it exactly")),
        })
    }

    fn unprotect(&mut self, sel: &Selector) -> Result<Protection, RegistryError> {
        let id = self.find(sel)?;
        // A DOTS mitigation's protection follows the state machine: removed
        // here, it would come back at the next DOTS change.
        if let Owner::Dots { cuid, mid } = &self.protections[&id].owner {
            return Err(RegistryError::Conflict(format!(
                "protection {id} enforces DOTS client {cuid}'s mitigation {mid}: it ends when the client withdraws it \
                 or its lifetime runs out; to stop that client, remove it from [[signal.clients]]"
            )));
        }
        self.remove(id)
    }

    fn remove(&mut self, id: u32) -> Result<Protection, RegistryError> {
        let p = self.protections.remove(&id).expect("found");
        if let Err(e) = self.apply() {
            self.protections.insert(id, p);
            return Err(e.into());
        }
        // Removed from the maps first: if the store write fails, the stored
        // protection comes back on restart, which errs on the protected side.
        self.store.remove_protection(id)?;
        info!(id, prefixes = ?p.spec.prefixes, "protection removed");
        Ok(p)
    }

    fn expire(&mut self) {
        self.dc_expire();
        let now = now_unix();
        let expired: Vec<u32> = self
            .protections
            .values()
            .filter(|p| p.expires_unix.is_some_and(|e| e <= now))
            .map(|p| p.id)
            .collect();
        for id in expired {
            match self.remove(id) {
                Ok(_) => info!(id, "protection expired"),
                Err(e) => warn!(id, error = %e, "cannot remove an expired protection; will retry"),
            }
        }
    }

    fn change_list(&mut self, kind: ListKind, add: Vec<IpNet>, remove: Vec<IpNet>) -> Result<Vec<IpNet>, RegistryError> {
        let current = match kind {
            ListKind::Accept => &self.accept,
            ListKind::Drop => &self.drop,
        };
        let mut next: Vec<IpNet> = current.iter().filter(|n| !remove.contains(n)).cloned().collect();
        for n in add {
            if !next.contains(&n) {
                next.push(n);
            }
        }
        next.sort();
        let previous = std::mem::replace(self.list_mut(kind), next.clone());
        self.store.put_list(kind, &next)?;
        if let Err(e) = self.apply() {
            *self.list_mut(kind) = previous.clone();
            self.store.put_list(kind, &previous)?;
            return Err(e.into());
        }
        info!(list = kind.name(), entries = next.len(), "list changed");
        Ok(next)
    }

    fn list_mut(&mut self, kind: ListKind) -> &mut Vec<IpNet> {
        match kind {
            ListKind::Accept => &mut self.accept,
            ListKind::Drop => &mut self.drop,
        }
    }

    /// Reads the counters once and updates the rates.
    fn sample(&mut self) {
        let now = Instant::now();
        let ids: Vec<u32> = self.protections.keys().copied().collect();
        for id in ids {
            match self.dp().target_stats(id) {
                Ok(s) => self.rates.record_target(id, now, &s),
                Err(e) => warn!(id, error = %e, "cannot read target counters"),
            }
        }
        match self.dp().iface_stats() {
            Ok(list) => {
                for (ifindex, s) in list {
                    self.rates.record_iface(ifindex, now, &s);
                }
            }
            Err(e) => warn!(error = %e, "cannot read interface counters"),
        }
    }

    fn status(&mut self) -> Status {
        self.sample_if_stale();
        let protections = self.protections.values().map(|p| self.protection_status(p)).collect();
        let interfaces = self
            .rates
            .ifaces()
            // Key 0 collects interfaces without an entry: shown only when used.
            .filter(|(ifindex, cur)| *ifindex != 0 || cur.verdicts.iter().any(|c| c.packets > 0))
            .map(|(ifindex, cur)| {
                let how = self.dataplane.as_ref().and_then(|dp| dp.attachment_by_ifindex(ifindex));
                let how = how.map(|h| (h.mode.clone(), h.driver.clone(), h.reason.clone()));
                iface_status(ifindex, cur, &self.rates, how)
            })
            .collect();
        Status {
            protections,
            interfaces,
            accept_list: self.accept.clone(),
            drop_list: self.drop.clone(),
            escalation: self.escalation.clone(),
            guard: self.guard_status(),
            commits: self.batch.totals,
        }
    }

    fn guard_status(&mut self) -> Vec<GuardStatus> {
        compiler::guard::listeners(&self.cfg)
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                let in_force = self.guard_in_force.get(i).copied().unwrap_or(false);
                // Slot i holds listener i (`apply_with`).
                let c = self.dp().guard_stats(i).unwrap_or_default();
                GuardStatus { listener: l, in_force, matched_packets: c.packets, matched_bytes: c.bytes }
            })
            .collect()
    }

    /// Status reports current totals even between ticks.
    fn sample_if_stale(&mut self) {
        if self.rates.age() > Duration::from_millis(200) {
            self.sample();
        }
    }

    fn protection_status(&self, p: &Protection) -> ProtectionStatus {
        let (cur, rates) = self.rates.target(p.id);
        let mut dropped = CounterReport::default();
        let mut drop_reasons = BTreeMap::new();
        for r in DropReason::ALL {
            let c = CounterReport::new(&cur.dropped[r as usize], rates.map(|x| &x.dropped[r as usize]));
            if c.packets > 0 {
                dropped.add(&c);
                drop_reasons.insert(r.name().to_string(), c);
            }
        }
        let mut protection = p.clone();
        let dots = self.dots_view(&mut protection);
        ProtectionStatus {
            protection,
            passed: CounterReport::new(&cur.passed, rates.map(|x| &x.passed)),
            dropped,
            drop_reasons,
            dots,
        }
    }

    /// The DOTS side of a DOTS client's protection; its `expires_unix` set
    /// to when the mitigation ends (the DOTS table keeps the lifetime, not
    /// the protection).
    fn dots_view(&self, p: &mut Protection) -> Option<DotsView> {
        let Owner::Dots { cuid, mid } = &p.owner else { return None };
        let m = self.dots.mitigations.mitigation(cuid, *mid)?;
        let now = dots::now_ms();
        let lifetime = match m.remaining_lifetime(now) {
            dots_proto::signal::Lifetime::Seconds(s) => {
                p.expires_unix = Some(now / 1000 + u64::from(s));
                i64::from(s)
            }
            dots_proto::signal::Lifetime::Indefinite => -1,
        };
        Some(DotsView { status: m.status.code(), status_label: m.status.label().to_string(), lifetime })
    }

    fn shutdown(&mut self, uninstall: bool) -> Result<(), RegistryError> {
        let dp = self.dataplane.take().expect("data plane present");
        if uninstall {
            self.nft.remove();
            dp.uninstall()?;
            info!("data plane detached and unpinned");
        } else {
            info!("stopping; the pinned data plane keeps enforcing");
        }
        Ok(())
    }
}

/// `how`: the XDP mode, driver and reason of the interface's attachment.
fn iface_status(
    ifindex: u32,
    cur: &IfaceStats,
    rates: &RateTracker,
    how: Option<(String, Option<String>, String)>,
) -> IfaceStatus {
    let r = rates.iface_rates(ifindex);
    let mut seen = CounterReport::default();
    let mut verdicts = BTreeMap::new();
    for v in IfaceVerdict::ALL {
        let c = CounterReport::new(&cur.verdicts[v as usize], r.map(|x| &x.verdicts[v as usize]));
        seen.add(&c);
        verdicts.insert(v.name().to_string(), c);
    }
    let (mode, driver, mode_reason) = match how {
        Some((m, d, r)) => (Some(m), d, Some(r)),
        None => (None, None, None),
    };
    IfaceStatus {
        ifindex,
        name: ifname(ifindex),
        mode,
        driver,
        mode_reason,
        seen,
        verdicts,
    }
}

/// The interface's name, or `if<N>` (index 0 collects other interfaces).
fn ifname(ifindex: u32) -> String {
    if ifindex == 0 {
        return "(other)".into();
    }
    let mut buf = [0u8; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr().cast()) };
    if p.is_null() {
        return format!("if{ifindex}");
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn join(cms: &[Countermeasure]) -> String {
    cms.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(" ")
}
