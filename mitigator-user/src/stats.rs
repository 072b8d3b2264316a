//! Counters as totals and rates. The data plane's counters only grow; rates
//! come from the difference between the last two samples, which the
//! registry takes on its tick.

use std::{collections::BTreeMap, time::{Duration, Instant}};

use mitigator_common::{Counter, IfaceStats, TargetStats, N_DROP_REASONS, N_IFACE_VERDICTS};
use serde::{Deserialize, Serialize};

/// Totals and per-second rates of one counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CounterReport {
    pub packets: u64,
    pub bytes: u64,
    pub pps: f64,
    /// Bits per second.
    pub bps: f64,
}

/// Per-second rates of a counter (packets/s, bits/s).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rate {
    pub pps: f64,
    pub bps: f64,
}

impl CounterReport {
    pub fn new(total: &Counter, rate: Option<&Rate>) -> Self {
        let r = rate.copied().unwrap_or_default();
        CounterReport { packets: total.packets, bytes: total.bytes, pps: r.pps, bps: r.bps }
    }

    pub fn add(&mut self, other: &CounterReport) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.pps += other.pps;
        self.bps += other.bps;
    }
}

fn rate(prev: &Counter, cur: &Counter, dt: Duration) -> Rate {
    let secs = dt.as_secs_f64();
    if secs <= 0.0 {
        return Rate::default();
    }
    // Saturating: a counter that went backwards (a target id reset) gives 0.
    Rate {
        pps: cur.packets.saturating_sub(prev.packets) as f64 / secs,
        bps: cur.bytes.saturating_sub(prev.bytes) as f64 * 8.0 / secs,
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct TargetRates {
    pub passed: Rate,
    pub dropped: [Rate; N_DROP_REASONS],
}

#[derive(Clone, Copy, Debug, Default)]
pub struct IfaceRates {
    pub verdicts: [Rate; N_IFACE_VERDICTS],
}

struct Sampled<T, R> {
    at: Instant,
    cur: T,
    rates: Option<R>,
}

/// Last sample and rates of every target and interface.
#[derive(Default)]
pub struct RateTracker {
    targets: BTreeMap<u32, Sampled<TargetStats, TargetRates>>,
    ifaces: BTreeMap<u32, Sampled<IfaceStats, IfaceRates>>,
    last: Option<Instant>,
}

impl RateTracker {
    pub fn record_target(&mut self, id: u32, at: Instant, cur: &TargetStats) {
        let rates = self.targets.get(&id).map(|prev| {
            let dt = at - prev.at;
            let mut r = TargetRates { passed: rate(&prev.cur.passed, &cur.passed, dt), ..Default::default() };
            for i in 0..N_DROP_REASONS {
                r.dropped[i] = rate(&prev.cur.dropped[i], &cur.dropped[i], dt);
            }
            r
        });
        self.targets.insert(id, Sampled { at, cur: *cur, rates });
        self.last = Some(at);
    }

    pub fn record_iface(&mut self, ifindex: u32, at: Instant, cur: &IfaceStats) {
        let rates = self.ifaces.get(&ifindex).map(|prev| {
            let dt = at - prev.at;
            let mut r = IfaceRates::default();
            for i in 0..N_IFACE_VERDICTS {
                r.verdicts[i] = rate(&prev.cur.verdicts[i], &cur.verdicts[i], dt);
            }
            r
        });
        self.ifaces.insert(ifindex, Sampled { at, cur: *cur, rates });
        self.last = Some(at);
    }

    /// Forgets a target whose id is being reused.
    pub fn forget(&mut self, id: u32) {
        self.targets.remove(&id);
    }

    /// Totals and rates of a target (zeros before its first sample).
    pub fn target(&self, id: u32) -> (TargetStats, Option<&TargetRates>) {
        match self.targets.get(&id) {
            Some(s) => (s.cur, s.rates.as_ref()),
            None => (TargetStats::default(), None),
        }
    }

    pub fn ifaces(&self) -> impl Iterator<Item = (u32, &IfaceStats)> {
        self.ifaces.iter().map(|(k, s)| (*k, &s.cur))
    }

    pub fn iface_rates(&self, ifindex: u32) -> Option<&IfaceRates> {
        self.ifaces.get(&ifindex).and_then(|s| s.rates.as_ref())
    }

    /// Time since the last sample (forever when none yet).
    pub fn age(&self) -> Duration {
        self.last.map(|t| t.elapsed()).unwrap_or(Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_from_two_samples() {
        let mut t = RateTracker::default();
        let t0 = Instant::now();
        let mut s = TargetStats::default();
        t.record_target(1, t0, &s);
        assert!(t.target(1).1.is_none());
        s.passed = Counter { packets: 100, bytes: 1000 };
        s.dropped[2] = Counter { packets: 50, bytes: 5000 };
        t.record_target(1, t0 + Duration::from_millis(500), &s);
        let (cur, r) = t.target(1);
        assert_eq!(cur.passed.packets, 100);
        let r = r.unwrap();
        assert_eq!(r.passed.pps, 200.0);
        assert_eq!(r.dropped[2].bps, 80_000.0);
        // A reset counter yields zero, not a huge number.
        t.record_target(1, t0 + Duration::from_secs(1), &TargetStats::default());
        assert_eq!(t.target(1).1.unwrap().passed.pps, 0.0);
    }
}
