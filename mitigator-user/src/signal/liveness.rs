//! Session loss per client (section 4.7): "If the DOTS server does not
//! receive any traffic from the peer DOTS client during the time span
//! required to exhaust the maximum 'missing-hb-allowed' threshold, the
//! DOTS server concludes the session is disconnected." Any traffic counts
//! (a client under attack may only get its requests through), on any of
//! the client's connections, and the clock keeps running after a
//! connection closes: a client that went away is a lost session too.
//! Pure: the server's monitor task asks for [`Liveness::next_deadline`]
//! and calls [`Liveness::expire`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Entry {
    last_rx: Instant,
    /// None: heartbeats disabled, never lost.
    timeout: Option<Duration>,
    lost: bool,
}

#[derive(Debug, Default)]
pub struct Liveness {
    clients: HashMap<String, Entry>,
}

impl Liveness {
    /// Traffic from `cuid`. True if its session had been declared lost
    /// (a new session: the caller tells the registry it is back).
    pub fn touch(&mut self, cuid: &str, now: Instant) -> bool {
        match self.clients.get_mut(cuid) {
            Some(e) => {
                e.last_rx = now;
                std::mem::replace(&mut e.lost, false)
            }
            None => {
                self.clients.insert(cuid.to_string(), Entry { last_rx: now, timeout: None, lost: false });
                false
            }
        }
    }

    /// The loss timeout of the client's current configuration set.
    pub fn set_timeout(&mut self, cuid: &str, timeout: Option<Duration>) {
        if let Some(e) = self.clients.get_mut(cuid) {
            e.timeout = timeout;
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.clients.values().filter(|e| !e.lost).filter_map(|e| e.timeout.map(|t| e.last_rx + t)).min()
    }

    /// Clients whose session is lost as of `now` (each reported once).
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        for (cuid, e) in &mut self.clients {
            if !e.lost && e.timeout.is_some_and(|t| e.last_rx + t <= now) {
                e.lost = true;
                out.push(cuid.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_once_after_silence_and_back_on_traffic() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut l = Liveness::default();
        assert!(!l.touch("a", t0));
        l.set_timeout("a", Some(s(3)));
        assert_eq!(l.next_deadline(), Some(t0 + s(3)));
        assert!(!l.touch("a", t0 + s(2)), "traffic of any kind pushes the deadline");
        assert!(l.expire(t0 + s(4)).is_empty());
        assert_eq!(l.expire(t0 + s(5)), vec!["a".to_string()]);
        assert!(l.expire(t0 + s(9)).is_empty(), "reported once");
        assert_eq!(l.next_deadline(), None);
        assert!(l.touch("a", t0 + s(10)), "a new session after the loss");
        l.set_timeout("a", None);
        assert!(l.expire(t0 + s(100)).is_empty(), "heartbeats disabled: never lost");
    }
}
