//! Hysteresis on a target's load: when to ask upstream for help and when to
//! withdraw. Two thresholds and two hold times, so that a load hovering
//! around one threshold never makes the request flap (issue 5).
//!
//! While escalated, the load that counts is what reaches the host plus what
//! the upstream reports dropping for us (4.4.2: 'pps-dropped', 'bps-dropped'):
//! the upstream's success makes the local load fall, and withdrawing on
//! that alone would bring the attack straight back.
//!
//! Pure: the caller passes the time.

use std::time::{Duration, Instant};

use crate::config::EscalationConfig;

/// Packets/s and bits/s.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Load {
    pub pps: f64,
    pub bps: f64,
}

impl Load {
    pub fn plus(self, o: Load) -> Load {
        Load { pps: self.pps + o.pps, bps: self.bps + o.bps }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub high: Load,
    pub low: Load,
    pub hold_up: Duration,
    pub hold_down: Duration,
}

impl Thresholds {
    /// Per-target thresholds from the host's capacity: a single target
    /// taking `high` of what the host and its link can absorb is more than
    /// the host should try to handle alone.
    pub fn from_config(c: &EscalationConfig) -> Self {
        let of = |r: f64| Load { pps: c.capacity_pps as f64 * r, bps: c.capacity_bps as f64 * r };
        Thresholds {
            high: of(c.high),
            low: of(c.low),
            hold_up: Duration::from_millis(c.hold_up_ms),
            hold_down: Duration::from_millis(c.hold_down_ms),
        }
    }

    fn above_high(&self, l: Load) -> bool {
        l.pps > self.high.pps || l.bps > self.high.bps
    }

    pub fn below_low(&self, l: Load) -> bool {
        l.pps < self.low.pps && l.bps < self.low.bps
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Normal,
    /// Above the high threshold since then.
    Rising(Instant),
    Escalated,
    /// Escalated, below the low threshold since then.
    Falling(Instant),
}

/// What the controller must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Escalate,
    Withdraw,
}

#[derive(Debug, Clone)]
pub struct Detector {
    pub phase: Phase,
}

impl Default for Detector {
    fn default() -> Self {
        Detector { phase: Phase::Normal }
    }
}

impl Detector {
    pub fn escalated(&self) -> bool {
        matches!(self.phase, Phase::Escalated | Phase::Falling(_))
    }

    /// Feeds one sample: `load` toward the target (for an escalated target,
    /// including what the upstream drops for it).
    pub fn observe(&mut self, t: &Thresholds, now: Instant, load: Load) -> Option<Transition> {
        let (next, out) = match self.phase {
            Phase::Normal if t.above_high(load) => (Phase::Rising(now), None),
            Phase::Normal => (Phase::Normal, None),
            Phase::Rising(_) if !t.above_high(load) => (Phase::Normal, None),
            Phase::Rising(since) if now.duration_since(since) >= t.hold_up => (Phase::Escalated, Some(Transition::Escalate)),
            Phase::Rising(since) => (Phase::Rising(since), None),
            Phase::Escalated if t.below_low(load) => (Phase::Falling(now), None),
            Phase::Escalated => (Phase::Escalated, None),
            Phase::Falling(_) if !t.below_low(load) => (Phase::Escalated, None),
            Phase::Falling(since) if now.duration_since(since) >= t.hold_down => (Phase::Normal, Some(Transition::Withdraw)),
            Phase::Falling(since) => (Phase::Falling(since), None),
        };
        self.phase = next;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn th() -> Thresholds {
        Thresholds {
            high: Load { pps: 1000.0, bps: 1e9 },
            low: Load { pps: 500.0, bps: 5e8 },
            hold_up: Duration::from_secs(2),
            hold_down: Duration::from_secs(5),
        }
    }

    fn pps(p: f64) -> Load {
        Load { pps: p, bps: 0.0 }
    }

    #[test]
    fn escalates_after_the_hold_and_withdraws_after_the_other() {
        let (t, t0, mut d) = (th(), Instant::now(), Detector::default());
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        assert_eq!(d.observe(&t, at(0.0), pps(2000.0)), None);
        assert_eq!(d.observe(&t, at(1.0), pps(2000.0)), None);
        assert_eq!(d.observe(&t, at(2.0), pps(2000.0)), Some(Transition::Escalate));
        assert!(d.escalated());
        assert_eq!(d.observe(&t, at(3.0), pps(100.0)), None);
        assert_eq!(d.observe(&t, at(7.9), pps(100.0)), None);
        assert_eq!(d.observe(&t, at(8.0), pps(100.0)), Some(Transition::Withdraw));
        assert!(!d.escalated());
    }

    #[test]
    fn no_flapping_between_the_thresholds() {
        let (t, t0, mut d) = (th(), Instant::now(), Detector::default());
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        // A spike shorter than the hold does nothing.
        d.observe(&t, at(0.0), pps(5000.0));
        d.observe(&t, at(1.0), pps(900.0));
        assert_eq!(d.observe(&t, at(3.0), pps(5000.0)), None);
        assert_eq!(d.observe(&t, at(5.0), pps(5000.0)), Some(Transition::Escalate));
        // Between low and high: stays escalated however long it lasts.
        for s in 6..60 {
            assert_eq!(d.observe(&t, at(s as f64), pps(700.0)), None);
        }
        // A dip under low shorter than the hold resets.
        d.observe(&t, at(60.0), pps(100.0));
        d.observe(&t, at(64.0), pps(600.0));
        assert_eq!(d.observe(&t, at(66.0), pps(100.0)), None);
        assert!(d.escalated());
        // Bits/s alone can trigger.
        let mut d2 = Detector::default();
        d2.observe(&t, at(0.0), Load { pps: 1.0, bps: 2e9 });
        assert_eq!(d2.observe(&t, at(2.0), Load { pps: 1.0, bps: 2e9 }), Some(Transition::Escalate));
    }
}
