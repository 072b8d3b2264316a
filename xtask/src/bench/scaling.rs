//! Table 2: cost per packet and install time as the rule maps grow. The
//! example does the work (a fresh Dataplane per row, `apply` timed, then
//! `test_run_repeat` rounds on a packet that hits the middle entry); we
//! relay its lines as progress and tabulate them.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use anyhow::{bail, Context};

use super::{report::Table, Opts};
use crate::step;

pub const SIZES: [u32; 4] = [1, 1_000, 100_000, 1_000_000];

/// One row: entries of one kind, what installing them took, ns/packet.
#[derive(Clone, Debug)]
pub struct Row {
    pub kind: String,
    pub n: u32,
    pub apply_ms: f64,
    pub median_ns: u64,
    pub min_ns: u64,
    pub action: u32,
    /// The same with the destination cache off.
    pub uncached_median_ns: u64,
    pub uncached_min_ns: u64,
}

pub struct Scaling {
    pub table: Table,
    pub rows: Vec<Row>,
}

impl Scaling {
    /// Median ns/packet of `kind` at `n` entries: (with the destination
    /// cache, without).
    pub fn ns(&self, kind: &str, n: u32) -> Option<(u64, u64)> {
        self.rows.iter().find(|r| r.kind == kind && r.n == n).map(|r| (r.median_ns, r.uncached_median_ns))
    }
}

fn parse(line: &str) -> anyhow::Result<Row> {
    let w: Vec<&str> = line.split('\t').collect();
    let ["scale", kind, n, ms, med, min, action, umed, umin] = w.as_slice() else { bail!("bench_dataplane said {line:?}") };
    Ok(Row {
        kind: kind.to_string(),
        n: n.parse()?,
        apply_ms: ms.parse()?,
        median_ns: med.parse()?,
        min_ns: min.parse()?,
        action: action.parse()?,
        uncached_median_ns: umed.parse()?,
        uncached_min_ns: umin.parse()?,
    })
}

pub fn run(o: &Opts) -> anyhow::Result<Scaling> {
    let sizes: Vec<String> = SIZES.iter().map(u32::to_string).collect();
    step(&format!("scaling: host routes, /24 prefixes, drop-list entries at {} entries", sizes.join(", ")));
    let mut child = Command::new(&o.example)
        .args(["scale", &o.repeat.to_string(), &o.rounds.to_string(), &sizes.join(",")])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting bench_dataplane scale")?;
    let mut rows = vec![];
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let r = parse(&line?)?;
        step(&format!(
            "scaling: {} × {}: installed in {:.0} ms, {} ns/packet ({} without the destination cache)",
            r.n, r.kind, r.apply_ms, r.median_ns, r.uncached_median_ns
        ));
        rows.push(r);
    }
    if !child.wait()?.success() {
        bail!("bench_dataplane scale failed");
    }
    Ok(Scaling { table: table(&rows), rows })
}

fn table(rows: &[Row]) -> Table {
    let mut t = Table::new(
        "scaling",
        "Scaling with the number of entries",
        &[
            "entries",
            "kind",
            "install (Dataplane::apply) ms",
            "entries/s",
            "ns/packet median (dst cache on)",
            "ns/packet min (dst cache on)",
            "ns/packet median (dst cache off)",
            "ns/packet min (dst cache off)",
            "× the 1-entry cost (dst cache off)",
            "verdict",
        ],
    );
    for r in rows {
        let base = rows.iter().find(|b| b.kind == r.kind && b.n == 1).map(|b| b.uncached_median_ns).unwrap_or(0);
        t.row(vec![
            r.n.to_string(),
            r.kind.clone(),
            format!("{:.1}", r.apply_ms),
            format!("{:.0}", r.n as f64 / (r.apply_ms / 1e3)),
            r.median_ns.to_string(),
            r.min_ns.to_string(),
            r.uncached_median_ns.to_string(),
            r.uncached_min_ns.to_string(),
            if base > 0 { format!("{:.2}", r.uncached_median_ns as f64 / base as f64) } else { "-".into() },
            super::progrun::action_name(r.action).into(),
        ]);
    }
    t
}
