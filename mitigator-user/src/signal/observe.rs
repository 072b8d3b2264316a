//! Observations of mitigations (RFC 7641, RFC 9132 section 4.4.2.1): who
//! watches what, when the next notification is due, and what the last one
//! said, so that a mitigation that disappears gets a final notification
//! with status 6 before its observation ends.
//!
//! Timing: a status change makes an observation "dirty"; it is notified at
//! the earliest `last_sent + spacing` ("MUST NOT send more than one
//! asynchronous notification every 3 seconds" without an RTT estimate,
//! 4.4.2.1), carrying the state at that time (several changes in one
//! spacing collapse into one notification: Observe is eventually
//! consistent, RFC 7641 §1.3). Without changes a notification with live
//! counters goes out every `interval`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use dots_proto::coap::{ObserveSequence, Token};
use dots_proto::signal::{Content, Lifetime, MitigationScope, Scope, Status};

#[derive(Debug)]
pub struct Observation {
    /// One mitigation, or all of the client's.
    pub mid: Option<u32>,
    pub content: Content,
    seq: ObserveSequence,
    last_sent: Instant,
    dirty: bool,
    in_flight: bool,
    /// The scopes last sent, by mid.
    known: BTreeMap<u32, Scope>,
}

/// What to send for a fetched state.
#[derive(Debug, PartialEq)]
pub enum Notification {
    /// A 2.05 notification with this body; `last` ends the observation.
    Scopes { body: MitigationScope, last: bool },
    /// Nothing was ever known and nothing exists: the error ends it.
    End,
}

#[derive(Debug, Default)]
pub struct Observations {
    by_token: HashMap<Token, Observation>,
}

/// Never-reused upper bound on observations per session (memory bound).
pub const MAX_OBSERVATIONS: usize = 64;

impl Observations {
    pub fn len(&self) -> usize {
        self.by_token.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }

    /// Registers (or re-registers: same token replaces, RFC 7641 §4.1)
    /// after a successful GET; returns the sequence number of that response.
    pub fn register(&mut self, token: Token, mid: Option<u32>, content: Content, sent: &MitigationScope, now: Instant) -> Option<u32> {
        if !self.by_token.contains_key(&token) && self.by_token.len() >= MAX_OBSERVATIONS {
            return None;
        }
        let mut seq = ObserveSequence::new(2);
        let first = seq.next_seq();
        let known = index(sent);
        self.by_token.insert(token, Observation { mid, content, seq, last_sent: now, dirty: false, in_flight: false, known });
        Some(first)
    }

    pub fn content(&self, token: &Token) -> Option<Content> {
        self.by_token.get(token).map(|o| o.content)
    }

    pub fn deregister(&mut self, token: &Token) -> bool {
        self.by_token.remove(token).is_some()
    }

    /// A mitigation of this client changed: its observers owe a notification.
    pub fn changed(&mut self, mid: u32) {
        for o in self.by_token.values_mut() {
            if o.mid.is_none_or(|m| m == mid) {
                o.dirty = true;
            }
        }
    }

    /// Everything may have changed (lost notices after a lag).
    pub fn all_changed(&mut self) {
        self.by_token.values_mut().for_each(|o| o.dirty = true);
    }

    /// When the next notification is due.
    pub fn next_due(&self, interval: Option<Duration>, spacing: Duration) -> Option<Instant> {
        self.by_token.values().filter_map(|o| o.due(interval, spacing)).min()
    }

    /// Observations due at `now`, marked in flight: fetch their state.
    pub fn take_due(&mut self, now: Instant, interval: Option<Duration>, spacing: Duration) -> Vec<(Token, Option<u32>, Content)> {
        let mut out = Vec::new();
        for (t, o) in &mut self.by_token {
            if o.due(interval, spacing).is_some_and(|d| d <= now) {
                o.in_flight = true;
                out.push((*t, o.mid, o.content));
            }
        }
        out
    }

    /// The fetched state of `token` (None: 4.04, nothing left): what to
    /// send, with its sequence number. None if the observation is gone.
    pub fn fetched(&mut self, token: &Token, state: Option<MitigationScope>, now: Instant) -> Option<(Notification, u32)> {
        let o = self.by_token.get_mut(token)?;
        o.in_flight = false;
        o.dirty = false;
        o.last_sent = now;
        let seq = o.seq.next_seq();
        let current = state.map(|s| index(&s)).unwrap_or_default();
        // Mitigations that were known and are now gone: status 6 (Table 3,
        // "attack-mitigation-terminated"), once.
        let gone: Vec<Scope> = o.known.iter().filter(|(mid, _)| !current.contains_key(mid)).map(|(_, s)| terminated(s)).collect();
        let ended = current.is_empty();
        let note = if ended && gone.is_empty() {
            Notification::End
        } else {
            let mut scopes: Vec<Scope> = current.values().cloned().collect();
            scopes.extend(gone);
            Notification::Scopes { body: MitigationScope { scopes }, last: ended }
        };
        o.known = current;
        if ended {
            self.by_token.remove(token);
        }
        Some((note, seq))
    }
}

impl Observation {
    fn due(&self, interval: Option<Duration>, spacing: Duration) -> Option<Instant> {
        if self.in_flight {
            return None;
        }
        let periodic = interval.map(|i| self.last_sent + i);
        let change = self.dirty.then(|| self.last_sent + spacing);
        [periodic, change].into_iter().flatten().min()
    }
}

fn index(s: &MitigationScope) -> BTreeMap<u32, Scope> {
    s.scopes.iter().filter_map(|sc| sc.mid.map(|m| (m, sc.clone()))).collect()
}

fn terminated(s: &Scope) -> Scope {
    Scope {
        status: Some(Status::AttackMitigationTerminated),
        lifetime: Some(Lifetime::Seconds(0)),
        bps_dropped: s.bps_dropped.map(|_| 0),
        pps_dropped: s.pps_dropped.map(|_| 0),
        ..s.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(mid: u32, status: Status) -> MitigationScope {
        MitigationScope { scopes: vec![Scope { mid: Some(mid), status: Some(status), ..Scope::default() }] }
    }

    #[test]
    fn change_is_spaced_periodic_runs_and_gone_ends_with_status_6() {
        let t0 = Instant::now();
        let (iv, sp) = (Some(Duration::from_secs(10)), Duration::from_secs(3));
        let tok = Token::new(&[1]).unwrap();
        let mut obs = Observations::default();
        let first = obs.register(tok, Some(7), Content::All, &scope(7, Status::AttackSuccessfullyMitigated), t0).unwrap();
        assert_eq!(obs.next_due(iv, sp), Some(t0 + Duration::from_secs(10)));
        obs.changed(8);
        assert_eq!(obs.next_due(iv, sp), Some(t0 + Duration::from_secs(10)), "another mid is not ours");
        obs.changed(7);
        assert_eq!(obs.next_due(iv, sp), Some(t0 + sp));
        assert!(obs.take_due(t0 + Duration::from_secs(1), iv, sp).is_empty());
        let t1 = t0 + sp;
        assert_eq!(obs.take_due(t1, iv, sp).len(), 1);
        assert_eq!(obs.next_due(iv, sp), None, "in flight");
        let (n, seq) = obs.fetched(&tok, Some(scope(7, Status::DotsClientWithdrawnMitigation)), t1).unwrap();
        assert!(seq > first);
        assert!(matches!(n, Notification::Scopes { last: false, .. }));
        obs.changed(7);
        let t2 = t1 + sp;
        obs.take_due(t2, iv, sp);
        let (n, _) = obs.fetched(&tok, None, t2).unwrap();
        match n {
            Notification::Scopes { body, last } => {
                assert!(last);
                assert_eq!(body.scopes[0].status, Some(Status::AttackMitigationTerminated));
            }
            other => panic!("{other:?}"),
        }
        assert!(obs.is_empty());
    }
}
