//! Table 1b: the SYN proxy's cost per packet (issue 13), from
//! `bench_dataplane synproxy`: single BPF_PROG_TEST_RUN runs (the program
//! rewrites a SYN into its SYN-ACK in place, and a repeated test run does
//! not restore the frame), beside a no-match packet measured the same way.
//! A single run's duration includes the test-run harness's own per-call
//! cost, which the difference to `no-match-single` cancels; adding table
//! 1's no-match cost (repeated runs, whose harness cost is spread over 1M
//! runs) gives the per-packet estimate the targets judge.

use std::{collections::BTreeMap, process::Command};

use anyhow::{bail, Context};

use super::{
    progrun::{action_name, Samples},
    report::Table,
    Opts,
};
use crate::step;

/// Single runs per case: many, since one run is a few hundred ns and the
/// harness's own noise is of that order.
pub fn single_runs(o: &Opts) -> u32 {
    (o.rounds * 200).max(200)
}

/// The case the others are compared with, and table 1's case that has the
/// same rule-set shape (one target, the packet to another address).
pub const BASE: &str = "no-match-single";
pub const TABLE1_NO_MATCH: &str = "no-match-1-target";
/// Table 1's simplest drop, for comparison (xdp-filter's ip mode on it).
pub const TABLE1_DROP: &str = "drop-scope";

fn describe(case: &str) -> &'static str {
    match case {
        "no-match-single" => "IPv4 TCP ACK to an address outside the target (one target installed): the single-run baseline",
        "syn-answered" => "IPv4 TCP SYN (MSS, SACK, timestamps, window scale) to a listening port of a default-profile target: answered from XDP with a cookie SYN-ACK",
        "ack-bad-cookie" => "IPv4 TCP ACK of no connection, with a wrong cookie, to the same port: the socket lookup and the cookie check fail, dropped",
        _ => "?",
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Single {
    pub action: u32,
    pub median: u64,
    pub min: u64,
}

pub struct SynCost {
    pub table: Table,
    pub cases: BTreeMap<String, Single>,
    /// Table 1's no-match cost (ours, median) the estimates add.
    pub no_match: Option<u64>,
    /// Table 1's drop-scope: (ours median, xdp-filter ip median, its program).
    pub drop: Option<(u64, u64, String)>,
    /// Single runs per case.
    pub runs: u32,
}

impl SynCost {
    /// `case − no-match-single` (medians): the program's own extra cost.
    pub fn extra(&self, case: &str) -> Option<i64> {
        Some(self.cases.get(case)?.median as i64 - self.cases.get(BASE)?.median as i64)
    }

    /// Per-packet estimate: the extra cost plus table 1's no-match cost.
    pub fn estimate(&self, case: &str) -> Option<i64> {
        Some(self.extra(case)? + self.no_match? as i64)
    }
}

/// Targets (ns/packet), by case.
pub fn target(case: &str) -> Option<i64> {
    match case {
        "syn-answered" => Some(150),
        "ack-bad-cookie" => Some(100),
        _ => None,
    }
}

pub fn run(o: &Opts, samples: &BTreeMap<String, BTreeMap<&'static str, Samples>>, xf_prog: &str) -> anyhow::Result<SynCost> {
    let n = single_runs(o);
    step(&format!("per packet: the SYN proxy's cases, {n} single test runs each (bench_dataplane synproxy)"));
    let out = Command::new(&o.example).args(["synproxy", &n.to_string()]).output().with_context(|| format!("running {}", o.example.display()))?;
    if !out.status.success() {
        bail!("bench_dataplane synproxy: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let mut cases = BTreeMap::new();
    let mut order = vec![];
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let w: Vec<&str> = l.split('\t').collect();
        let ["synproxy", case, action, median, min] = w[..] else { bail!("bench_dataplane synproxy said {l:?}") };
        cases.insert(case.to_string(), Single { action: action.parse()?, median: median.parse()?, min: min.parse()? });
        order.push(case.to_string());
    }
    if !cases.contains_key(BASE) {
        bail!("bench_dataplane synproxy printed no {BASE} row");
    }
    let med = |case: &str, col: &str| samples.get(case).and_then(|s| s.get(col)).map(Samples::median);
    let no_match = med(TABLE1_NO_MATCH, "ours");
    let drop = med(TABLE1_DROP, "ours").zip(med(TABLE1_DROP, "xdp-filter-ip")).map(|(a, b)| (a, b, xf_prog.to_string()));
    let mut c = SynCost { table: Table::new("per_packet_synproxy", "", &[]), cases, no_match, drop, runs: n };
    c.table = table(&c, &order);
    Ok(c)
}

fn table(c: &SynCost, order: &[String]) -> Table {
    let mut t = Table::new(
        "per_packet_synproxy",
        "SYN proxy cost per packet (ns; single BPF_PROG_TEST_RUN runs, median / min over the runs), with table 1's figures for comparison",
        &[
            "case",
            "packet",
            "our verdict",
            "single run median (ns)",
            "single run min",
            "− no-match-single (the program's own extra cost)",
            "per-packet estimate (extra + table 1's no-match-1-target)",
            "target",
        ],
    );
    let nm = c.no_match.map(|v| v.to_string()).unwrap_or("-".into());
    for case in order {
        let s = &c.cases[case];
        let est = c.estimate(case);
        let target = match (target(case), est) {
            (Some(tg), Some(e)) => format!("≤ {tg}: {}", if e <= tg { "met" } else { "NOT met" }),
            (Some(tg), None) => format!("≤ {tg}: not judged (table 1 not run)"),
            (None, _) => "-".into(),
        };
        t.row(vec![
            case.clone(),
            describe(case).into(),
            action_name(s.action).into(),
            s.median.to_string(),
            s.min.to_string(),
            if case == BASE { "0".into() } else { c.extra(case).map(|e| format!("{e:+}")).unwrap_or("-".into()) },
            if case == BASE { format!("{nm} (table 1's no-match-1-target)") } else { est.map(|e| e.to_string()).unwrap_or("-".into()) },
            target,
        ]);
    }
    if let Some((ours, xf, prog)) = &c.drop {
        let row = |name: String, what: &str, v: u64| vec![name, what.into(), "DROP".into(), "-".into(), "-".into(), "-".into(), format!("{v} (table 1, repeated runs)"), "-".into()];
        t.row(row(format!("table 1 {TABLE1_DROP}, xdp-filter {prog}"), "xdp-filter's simplest drop (by destination address), for comparison", *xf));
        t.row(row(format!("table 1 {TABLE1_DROP}, ours"), "our drop by scope, for comparison", *ours));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_is_the_extra_cost_plus_the_repeated_no_match_cost() {
        let mut cases = BTreeMap::new();
        cases.insert(BASE.to_string(), Single { action: 2, median: 77, min: 70 });
        cases.insert("syn-answered".to_string(), Single { action: 3, median: 393, min: 380 });
        cases.insert("ack-bad-cookie".to_string(), Single { action: 1, median: 211, min: 200 });
        let c = SynCost { table: Table::new("x", "", &[]), cases, no_match: Some(40), drop: None, runs: 1000 };
        assert_eq!(c.extra("syn-answered"), Some(316));
        assert_eq!(c.estimate("syn-answered"), Some(356));
        assert_eq!(c.estimate("ack-bad-cookie"), Some(174));
        assert_eq!(c.estimate("nope"), None);
        let none = SynCost { no_match: None, ..c };
        assert_eq!(none.estimate("syn-answered"), None);
    }
}
