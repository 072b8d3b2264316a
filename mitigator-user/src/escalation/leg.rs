//! One leg of an escalation: a chain of servers asked, in turn, to mitigate
//! some of a target's prefixes (see [`super::multihoming`]). The server
//! asked first is the owner of a PA prefix (or one of the servers of a PI
//! prefix); when it refuses (4.xx/5.xx) or cannot be reached, the next in
//! the chain is asked at once; when all failed, the leg waits (doubling
//! backoff) and starts again from the head: "keeps retrying" (issue 5).
//!
//! Pure: the controller runs the I/O a leg asks for and reports the outcome.

use std::time::{Duration, Instant};

use dots_proto::signal::{AttackStatus, Scope, Status};

use super::multihoming::Chain;
use super::report::LegReport;
use crate::client_dots::ClientError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegState {
    /// Asking `chain[pos]`.
    Requesting,
    /// `server` accepted under `mid`.
    Active,
    /// Every server refused or was unreachable; starting over at `next_at`.
    Waiting,
    /// The attack is over; the DELETE has not succeeded yet.
    Withdrawing,
    Withdrawn,
}

impl LegState {
    pub fn name(self) -> &'static str {
        match self {
            LegState::Requesting => "requesting",
            LegState::Active => "active",
            LegState::Waiting => "waiting",
            LegState::Withdrawing => "withdrawing",
            LegState::Withdrawn => "withdrawn",
        }
    }
}

/// I/O a leg wants now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Request { server: String },
    Poll { server: String, mid: u32 },
    Withdraw { server: String, mid: u32 },
}

/// Consecutive failed polls of an active mitigation after which its server
/// counts as unreachable and the next in the chain is asked.
const POLL_FAILURES_TO_FAIL_OVER: u32 = 3;

#[derive(Debug, Clone)]
pub struct Leg {
    pub id: u64,
    pub chain: Chain,
    pub state: LegState,
    pos: usize,
    pub server: Option<String>,
    pub mid: Option<u32>,
    /// An action is in flight.
    pub busy: bool,
    next_at: Instant,
    backoff: Duration,
    retry: (Duration, Duration),
    poll_every: Duration,
    poll_failures: u32,
    pub errors: Vec<String>,
    pub status: Option<Status>,
    pub pps_dropped: Option<u64>,
    pub bps_dropped: Option<u64>,
    pub attack_status: Option<AttackStatus>,
}

impl Leg {
    pub fn new(id: u64, chain: Chain, now: Instant, retry: (Duration, Duration), poll_every: Duration) -> Leg {
        Leg {
            id,
            chain,
            state: LegState::Requesting,
            pos: 0,
            server: None,
            mid: None,
            busy: false,
            next_at: now,
            backoff: retry.0,
            retry,
            poll_every,
            poll_failures: 0,
            errors: Vec::new(),
            status: None,
            pps_dropped: None,
            bps_dropped: None,
            attack_status: None,
        }
    }

    /// The action due at `now`, if any (marks the leg busy).
    pub fn due(&mut self, now: Instant) -> Option<Action> {
        if self.busy || now < self.next_at {
            return None;
        }
        let action = match self.state {
            LegState::Requesting => Action::Request { server: self.chain.servers[self.pos].clone() },
            LegState::Waiting => {
                self.state = LegState::Requesting;
                self.pos = 0;
                Action::Request { server: self.chain.servers[0].clone() }
            }
            LegState::Active => Action::Poll { server: self.server.clone()?, mid: self.mid? },
            LegState::Withdrawing => Action::Withdraw { server: self.server.clone()?, mid: self.mid? },
            LegState::Withdrawn => return None,
        };
        self.busy = true;
        Some(action)
    }

    /// Upstream mitigation in place: its load counts in the detector.
    pub fn dropping(&self) -> (f64, f64) {
        match self.state {
            LegState::Active => (self.pps_dropped.unwrap_or(0) as f64, self.bps_dropped.unwrap_or(0) as f64),
            _ => (0.0, 0.0),
        }
    }

    pub fn requested(&mut self, now: Instant, server: &str, outcome: Result<u32, ClientError>) {
        self.busy = false;
        if self.state != LegState::Requesting {
            return; // withdrawn meanwhile: the controller withdraws what was granted
        }
        match outcome {
            Ok(mid) => {
                self.state = LegState::Active;
                self.server = Some(server.to_string());
                self.mid = Some(mid);
                // Kept: why the servers before this one could not help.
                self.errors.retain(|m| !m.starts_with(&format!("{server}: ")));
                self.backoff = self.retry.0;
                self.poll_failures = 0;
                self.next_at = now;
            }
            Err(e) => self.fail_over(now, server, &e),
        }
    }

    /// `server` could not help: the next in the chain, or wait and start over.
    fn fail_over(&mut self, now: Instant, server: &str, e: &ClientError) {
        self.errors.retain(|m| !m.starts_with(&format!("{server}: ")));
        self.errors.push(format!("{server}: {e}"));
        self.server = None;
        self.mid = None;
        self.status = None;
        self.pps_dropped = None;
        self.bps_dropped = None;
        self.attack_status = None;
        let next = self.chain.servers.iter().position(|s| s == server).map_or(0, |p| p + 1);
        if next < self.chain.servers.len() {
            self.state = LegState::Requesting;
            self.pos = next;
            self.next_at = now;
        } else {
            self.state = LegState::Waiting;
            self.pos = 0;
            self.next_at = now + self.backoff;
            self.backoff = (self.backoff * 2).min(self.retry.1);
        }
    }

    /// The upstream's view of the mitigation (GET, 4.4.2).
    pub fn polled(&mut self, now: Instant, outcome: Result<Vec<Scope>, ClientError>) {
        self.busy = false;
        if self.state != LegState::Active {
            return;
        }
        self.next_at = now + self.poll_every;
        let server = self.server.clone().unwrap_or_default();
        match outcome {
            Ok(scopes) => {
                self.poll_failures = 0;
                let Some(s) = scopes.into_iter().find(|s| s.mid == self.mid) else {
                    return self.fail_over_same(now, &server, "the mitigation is gone upstream");
                };
                self.status = s.status;
                self.pps_dropped = s.pps_dropped;
                self.bps_dropped = s.bps_dropped;
                // Ended upstream (terminated, withdrawn by the server, ...): ask again.
                if s.status.is_some_and(|st| st.code() >= 5) {
                    self.fail_over_same(now, &server, &format!("upstream ended the mitigation (status {})", s.status.unwrap()));
                }
            }
            Err(ClientError::Refused { code, .. }) if code.class() == 4 => {
                self.fail_over_same(now, &server, &format!("the mitigation is gone upstream ({code})"))
            }
            Err(e) => {
                self.poll_failures += 1;
                if self.poll_failures >= POLL_FAILURES_TO_FAIL_OVER {
                    self.fail_over(now, &server, &e);
                }
            }
        }
    }

    /// The mitigation ended upstream: ask the same server again first.
    fn fail_over_same(&mut self, now: Instant, server: &str, why: &str) {
        self.errors.push(format!("{server}: {why}"));
        self.state = LegState::Requesting;
        self.pos = self.chain.servers.iter().position(|s| s == server).unwrap_or(0);
        self.mid = None;
        self.next_at = now;
    }

    pub fn efficacy_sent(&mut self, a: AttackStatus) {
        self.attack_status = Some(a);
    }

    /// The attack is over: withdraw what was granted.
    pub fn withdraw(&mut self, now: Instant) {
        self.state = match self.state {
            LegState::Active | LegState::Withdrawing => LegState::Withdrawing,
            _ => LegState::Withdrawn,
        };
        self.next_at = now;
        self.backoff = self.retry.0;
    }

    pub fn withdrawn(&mut self, now: Instant, outcome: Result<(), ClientError>) {
        self.busy = false;
        match outcome {
            // 2.02, or a 4.xx (nothing to withdraw there any more).
            Ok(()) | Err(ClientError::Refused { .. }) => {
                self.state = LegState::Withdrawn;
                self.status = Some(Status::DotsClientWithdrawnMitigation);
                self.pps_dropped = None;
                self.bps_dropped = None;
            }
            Err(e) => {
                self.errors.push(format!("{}: withdraw: {e}", self.server.as_deref().unwrap_or("?")));
                self.next_at = now + self.backoff;
                self.backoff = (self.backoff * 2).min(self.retry.1);
            }
        }
    }

    pub fn report(&self) -> LegReport {
        LegReport {
            prefixes: self.chain.prefixes.clone(),
            pa: self.chain.pa,
            chain: self.chain.servers.clone(),
            state: self.state.name().into(),
            server: self.server.clone(),
            mid: self.mid,
            status: self.status.map(|s| s.code() as u8),
            upstream_pps_dropped: self.pps_dropped,
            upstream_bps_dropped: self.bps_dropped,
            attack_status: self.attack_status.map(|a| a.code() as u8),
            errors: self.errors.iter().rev().take(4).rev().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dots_proto::coap::Code;

    fn leg(now: Instant) -> Leg {
        let chain = Chain { servers: vec!["A".into(), "B".into()], prefixes: vec!["198.51.100.10/32".parse().unwrap()], pa: true };
        Leg::new(1, chain, now, (Duration::from_secs(1), Duration::from_secs(4)), Duration::from_secs(2))
    }

    fn refused() -> ClientError {
        ClientError::Refused { code: Code::BAD_REQUEST, diagnostic: "no".into(), max_age: None }
    }

    #[test]
    fn refusal_moves_to_the_fallback_then_waits_with_backoff() {
        let t0 = Instant::now();
        let mut l = leg(t0);
        assert_eq!(l.due(t0), Some(Action::Request { server: "A".into() }));
        assert_eq!(l.due(t0), None, "busy");
        l.requested(t0, "A", Err(refused()));
        assert_eq!(l.due(t0), Some(Action::Request { server: "B".into() }));
        l.requested(t0, "B", Err(ClientError::Unreachable("down".into())));
        assert_eq!(l.state, LegState::Waiting);
        assert_eq!(l.due(t0), None);
        assert_eq!(l.due(t0 + Duration::from_secs(1)), Some(Action::Request { server: "A".into() }));
        l.requested(t0, "A", Err(refused()));
        l.due(t0);
        l.requested(t0, "B", Err(refused()));
        // Doubled backoff.
        assert_eq!(l.due(t0 + Duration::from_secs(1)), None);
        assert!(l.due(t0 + Duration::from_secs(2)).is_some());
        assert_eq!(l.errors.len(), 2, "one line per server: {:?}", l.errors);
    }

    #[test]
    fn active_polls_and_withdraws() {
        let t0 = Instant::now();
        let mut l = leg(t0);
        l.due(t0);
        l.requested(t0, "A", Ok(7));
        assert_eq!((l.state, l.server.as_deref(), l.mid), (LegState::Active, Some("A"), Some(7)));
        assert_eq!(l.due(t0), Some(Action::Poll { server: "A".into(), mid: 7 }));
        let scope = Scope { mid: Some(7), status: Some(Status::AttackSuccessfullyMitigated), pps_dropped: Some(900), ..Scope::default() };
        l.polled(t0, Ok(vec![scope]));
        assert_eq!(l.dropping().0, 900.0);
        assert_eq!(l.due(t0 + Duration::from_secs(1)), None);
        l.withdraw(t0);
        assert_eq!(l.due(t0), Some(Action::Withdraw { server: "A".into(), mid: 7 }));
        l.withdrawn(t0, Err(ClientError::Timeout));
        assert_eq!(l.state, LegState::Withdrawing);
        assert!(l.due(t0 + Duration::from_secs(1)).is_some());
        l.withdrawn(t0, Ok(()));
        assert_eq!(l.state, LegState::Withdrawn);
    }

    #[test]
    fn a_mitigation_that_vanished_upstream_is_asked_again() {
        let t0 = Instant::now();
        let mut l = leg(t0);
        l.due(t0);
        l.requested(t0, "B", Ok(3));
        l.due(t0);
        l.polled(t0, Err(ClientError::Refused { code: Code::NOT_FOUND, diagnostic: String::new(), max_age: None }));
        assert_eq!(l.due(t0), Some(Action::Request { server: "B".into() }));
    }
}
