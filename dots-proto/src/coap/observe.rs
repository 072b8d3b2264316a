//! Observe (RFC 7641): notification freshness on the client and sequence
//! numbers on the server.

use std::time::{Duration, Instant};

/// Observe option values in requests.
pub const REGISTER: u32 = 0;
pub const DEREGISTER: u32 = 1;

/// After this long any notification counts as newer (RFC 7641 §3.4).
pub const FRESHNESS_WINDOW: Duration = Duration::from_secs(128);

const HALF: u32 = 1 << 23;

/// RFC 7641 §3.4: is notification (v2 received at t2) newer than (v1, t1)?
/// Sequence numbers are 24-bit and compared in serial-number arithmetic.
pub fn is_newer(v1: u32, t1: Instant, v2: u32, t2: Instant) -> bool {
    let (v1, v2) = (v1 & 0xff_ffff, v2 & 0xff_ffff);
    (v1 < v2 && v2 - v1 < HALF) || (v1 > v2 && v1 - v2 > HALF) || t2 > t1 + FRESHNESS_WINDOW
}

/// Client-side state of one observation: drop stale, reordered notifications.
#[derive(Clone, Copy, Debug, Default)]
pub struct ObserveFreshness {
    last: Option<(u32, Instant)>,
}

impl ObserveFreshness {
    pub fn new() -> Self {
        Self::default()
    }
    /// True (and remembered) if the notification is fresher than the last
    /// accepted one; false means discard it.
    pub fn accept(&mut self, seq: u32, now: Instant) -> bool {
        let fresh = match self.last {
            None => true,
            Some((v1, t1)) => is_newer(v1, t1, seq, now),
        };
        if fresh {
            self.last = Some((seq & 0xff_ffff, now));
        }
        fresh
    }
}

/// Server-side 24-bit notification sequence, wrapping.
#[derive(Clone, Copy, Debug)]
pub struct ObserveSequence {
    next: u32,
}

impl ObserveSequence {
    /// Start anywhere in 2..; 0 and 1 are fine too but some clients treat
    /// them specially in logs. Masked to 24 bits.
    pub fn new(start: u32) -> Self {
        ObserveSequence { next: start & 0xff_ffff }
    }
    pub fn next_seq(&mut self) -> u32 {
        let v = self.next;
        self.next = (self.next + 1) & 0xff_ffff;
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_rule() {
        let t = Instant::now();
        let s = Duration::from_secs;
        assert!(is_newer(5, t, 6, t));
        assert!(!is_newer(6, t, 5, t));
        assert!(!is_newer(5, t, 5, t));
        // Wrap-around: 0xffffff then 2 is newer.
        assert!(is_newer(0xff_ffff, t, 2, t));
        assert!(!is_newer(2, t, 0xff_ffff, t));
        // Exactly half apart is not newer either way.
        assert!(!is_newer(0, t, HALF, t));
        // Old number but more than 128 s later: newer.
        assert!(is_newer(6, t, 5, t + s(129)));
        assert!(!is_newer(6, t, 5, t + s(128)));
    }

    #[test]
    fn client_state_drops_reordered() {
        let t = Instant::now();
        let mut f = ObserveFreshness::new();
        assert!(f.accept(10, t));
        assert!(f.accept(12, t));
        assert!(!f.accept(11, t));
        assert!(f.accept(13, t));
    }

    #[test]
    fn sequence_wraps_at_24_bits() {
        let mut s = ObserveSequence::new(0xff_ffff);
        assert_eq!(s.next_seq(), 0xff_ffff);
        assert_eq!(s.next_seq(), 0);
    }
}
