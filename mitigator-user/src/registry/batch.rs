//! Group commit: the changes that arrive within one grace period share one
//! generation flip.
//!
//! `Dataplane::commit` waits until `GRACE` has passed since the last flip
//! before it writes the old generation. Flipping once per change therefore
//! caps the registry at about 50 changes per second, however many clients
//! ask. Instead, a change made within the grace period is *prepared*
//! (compiled and checked against the data plane: every refusal a rule set
//! can get comes from that step, so the command's own rollback still runs
//! on it), stored as usual, and its flip deferred: the owner goes on with
//! whatever else is queued until the grace has passed, then commits the
//! latest rule set once, which holds every change so far, and only then
//! answers. A change made when no flip is recent commits at once, so a
//! lone request is as fast as before.
//!
//! Every answer given while a commit is deferred is held, read-only ones
//! too, so that answers go out in the order the commands came and none
//! describes a state that is not yet enforced. If the deferred commit
//! fails (the kernel refuses a map write: nothing in the rule set itself,
//! `prepare` accepted it), the changes stay stored and in memory, the
//! commands that made them are answered with an internal error saying so,
//! and the commit is retried on every tick until it succeeds.
//!
//! The store takes part: while a flip is recent, its writes are not synced
//! one by one (`Store::set_lazy`); one sync makes them durable before the
//! flip, and any answer is sent only once what it reports is durable.

use anyhow::anyhow;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use dots_proto::{data::restconf::ErrorTag, data::RestconfError, signal::ResponseCode};

use super::{Owner_, RegistryError};
use crate::{
    dataplane::{AclEntry, Prepared},
    dots::{Refusal, SessionParams},
};

/// A rule set ready to commit, with what the registry learns once it is
/// in force.
pub(super) struct Plan {
    pub prepared: Prepared,
    /// The ACL entries it installs (their counters move to the base when
    /// they leave, read at commit time).
    pub acl: Vec<AclEntry>,
    /// `Owner_::guard_in_force` once it is in force.
    pub guard_in_force: Vec<bool>,
    /// The SYN proxy's nftables scopes (`synproxy::scopes`) of the rule set.
    pub synproxy: Vec<crate::synproxy::Scope>,
}

/// An answer waiting for the deferred commit: called with the reason if
/// that commit failed.
type Held = Box<dyn FnOnce(Option<&str>) + Send>;

/// The deferred commit and the answers waiting for it.
#[derive(Default)]
pub(super) struct Batch {
    /// The latest rule set prepared and not yet committed.
    pending: Option<Plan>,
    held: Vec<Held>,
    /// The command being handled changed the rule set (`defer`).
    touched: bool,
    /// A deferred commit failed: retry it on the tick.
    failed: bool,
    /// The last failure's text (logged at warn once, not every tick).
    last_error: Option<String>,
    /// Changes in the current batch, for the log.
    changes: usize,
    /// Since the daemon started (`mitigator status`).
    pub totals: Commits,
}

/// Rule-set changes and the generation flips that put them in force,
/// since the daemon started: under load, many changes share a flip.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commits {
    pub changes: u64,
    pub flips: u64,
}

impl Batch {
    /// Whether anything waits for a commit (answers are held meanwhile).
    pub fn waiting(&self) -> bool {
        self.pending.is_some() || !self.held.is_empty()
    }

    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Called before each command.
    pub fn begin_command(&mut self) {
        self.touched = false;
    }
}

/// An answer that can be turned into its protocol's internal error.
pub(super) trait Answer: Send + 'static {
    fn fail(self, text: &str) -> Self;
}

fn unenforced_text(why: &str) -> String {
    format!(
        "internal error: the change is stored but the data plane refused to enforce it ({why}); \
         the daemon retries every tick: send the request again to confirm it"
    )
}

fn unsynced_text(e: &anyhow::Error) -> String {
    format!("internal error: the state database could not make the change durable ({e:#}); send the request again")
}

impl<T: Send + 'static> Answer for Result<T, RegistryError> {
    fn fail(self, text: &str) -> Self {
        self.and_then(|_| Err(RegistryError::Internal(anyhow!(text.to_string()))))
    }
}

impl<T: Send + 'static> Answer for Result<T, Refusal> {
    fn fail(self, text: &str) -> Self {
        self.and_then(|_| Err(Refusal::new(ResponseCode::new(5, 0), text)))
    }
}

impl<T: Send + 'static> Answer for Result<T, RestconfError> {
    fn fail(self, text: &str) -> Self {
        self.and_then(|_| Err(RestconfError::new(500, ErrorTag::OperationFailed, text)))
    }
}

impl<T: Send + 'static> Answer for Result<T, String> {
    fn fail(self, text: &str) -> Self {
        self.and_then(|_| Err(text.to_string()))
    }
}

/// Session parameters change no rule set.
impl Answer for SessionParams {
    fn fail(self, _text: &str) -> Self {
        self
    }
}

impl Owner_ {
    /// Answers a command now, or holds the answer until the deferred
    /// commit (see the module docs).
    pub(super) fn respond<T: Answer>(&mut self, reply: oneshot::Sender<T>, mut value: T) {
        if !self.batch.waiting() {
            // Nothing is acknowledged before it is durable.
            if let Err(e) = self.store.sync() {
                warn!(error = %format!("{e:#}"), "cannot sync the state database");
                value = value.fail(&unsynced_text(&e));
            }
            let _ = reply.send(value);
            return;
        }
        let changed = self.batch.touched;
        self.batch.held.push(Box::new(move |failed: Option<&str>| {
            let value = match failed {
                Some(text) if changed => value.fail(text),
                _ => value,
            };
            let _ = reply.send(value);
        }));
    }

    /// Enforces `plan` now (`immediately`, or when no flip is recent) or
    /// defers it to `flush`.
    pub(super) fn enforce_or_defer(&mut self, plan: Plan, immediately: bool) -> anyhow::Result<()> {
        self.batch.totals.changes += 1;
        if !immediately && !self.dp().grace_left().is_zero() {
            self.batch.pending = Some(plan);
            self.batch.touched = true;
            self.batch.changes += 1;
            return Ok(());
        }
        // This plan holds every deferred change too.
        self.batch.pending = None;
        self.enforce(plan)?;
        self.release(None);
        Ok(())
    }

    /// Commits `plan`, and records what is in force.
    fn enforce(&mut self, plan: Plan) -> anyhow::Result<()> {
        let (base, active) = self.dc_leaving(&plan.acl);
        // Durable before in force: a crash after the flip must not lose a
        // rule the maps hold (and the answers follow the flip).
        self.store.sync()?;
        // The nftables half takes a new SYN-proxy scope before the XDP
        // program answers its SYNs, and lets an old one go after.
        self.nft.before_flip(&plan.synproxy)?;
        self.dp().commit(plan.prepared)?;
        self.nft.after_flip(&plan.synproxy);
        self.batch.totals.flips += 1;
        self.dc_applied(base, active);
        self.guard_in_force = plan.guard_in_force;
        Ok(())
    }

    /// Sends the held answers; `failed` turns each change's success into
    /// that internal error.
    fn release(&mut self, failed: Option<&str>) {
        if self.batch.changes > 1 {
            debug!(changes = self.batch.changes, "changes committed in one flip");
        }
        self.batch.changes = 0;
        for answer in std::mem::take(&mut self.batch.held) {
            answer(failed);
        }
    }

    /// Makes deferred writes durable ahead of their flip, when the queue is
    /// empty: a lone client then does not wait for the fsync after the
    /// grace. (A failure is left to `enforce`, which syncs again.)
    pub(super) fn sync_while_idle(&mut self) {
        if self.batch.waiting() && self.store.unsynced() {
            if let Err(e) = self.store.sync() {
                debug!(error = %format!("{e:#}"), "cannot sync the state database yet; the flip will try again");
            }
        }
    }

    /// Time until the deferred commit is due (None: nothing deferred).
    pub(super) fn flush_due(&self) -> Option<std::time::Duration> {
        self.batch.waiting().then(|| self.dataplane.as_ref().map(|d| d.grace_left()).unwrap_or_default())
    }

    /// Commits what was deferred (or, after a failure, the current state)
    /// and answers the held commands.
    pub(super) fn flush(&mut self) {
        let plan = match self.batch.pending.take() {
            Some(p) => Ok(p),
            None => self.plan(false),
        };
        match plan.and_then(|p| self.enforce(p)) {
            Ok(()) => {
                self.batch.last_error = None;
                if std::mem::take(&mut self.batch.failed) {
                    info!("the deferred changes are in force after all");
                }
                self.release(None);
            }
            Err(e) => {
                let why = format!("{e:#}");
                // Once per distinct error: the retry runs every tick.
                if self.batch.last_error.as_deref() != Some(why.as_str()) {
                    warn!(error = %why, "cannot commit the deferred changes; they stay stored and are retried every tick");
                } else {
                    debug!(error = %why, "the deferred changes still cannot be committed");
                }
                self.batch.last_error = Some(why.clone());
                self.batch.failed = true;
                let text = match self.store.sync() {
                    Ok(()) => unenforced_text(&why),
                    Err(e) => unsynced_text(&e),
                };
                self.release(Some(&text));
            }
        }
    }
}
