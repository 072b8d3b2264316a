//! Table 1: cost per packet through BPF_PROG_TEST_RUN, for the XDP_PASS
//! floor, our program (through bpftool and through aya) and xdp-filter in
//! two of its modes, on the same packet files, interleaved round by round
//! so that machine noise hits every column alike.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
};

use anyhow::{bail, Context};
use mitigator_tests::Lab;

use super::{
    progrun::{self, action_name, PrivateBpffs, Prog, Samples},
    report::Table,
    synproxy_cost::{self, SynCost},
    xdpfilter::XdpFilter,
    Opts,
};
use crate::step;

/// xdp-filter rules equivalent to our rule sets: the drop-list source and
/// the scope target's addresses (IPv4 and IPv6); the all-features mode also
/// gets the scope's port.
const RULES_IP: &[&[&str]] =
    &[&["ip", "192.0.2.66", "-m", "src"], &["ip", "198.51.100.8", "-m", "dst"], &["ip", "2001:db8:2::8", "-m", "dst"]];
const RULES_PORT: &[&str] = &["port", "80", "-p", "tcp", "-m", "dst"];

/// What each case's packet is (the example builds them; see
/// mitigator-user/examples/bench_dataplane.rs).
fn describe(case: &str) -> &'static str {
    match case {
        "no-match-empty" => "no match, empty rules (IPv4 TCP ACK to an unprotected address)",
        "no-match-empty-raw" => "same, but the test run's ifindex has no interface-counter entry (a bare test run; attached interfaces have one)",
        "no-match-1-target" => "no match, 1 target (host route) elsewhere; the destination cache answers (the test run repeats one packet)",
        "no-match-1-target-uncached" => "same, with the destination cache off (`[dataplane] dst_cache = false`): the host-route hash lookup on every packet, what a cache miss costs",
        "matched-passed" => "matched a target, passed its checks (fragments, reflection, bad TCP flags)",
        "drop-scope" => "dropped by scope (IPv4 TCP SYN to port 80 of a drop-all target)",
        "drop-scope-uncached" => "same, with the destination cache off: the host-route hash lookup on every packet",
        "drop-all-ports" => "dropped by scope: IPv4 TCP SYN to a drop-all target of every protocol and port (as `mitigator protect` of the host's own address)",
        "drop-all-ports-guarded" => "same, with the guard of the daemon's own DOTS listeners in force (its entries walked before the target's countermeasures)",
        "drop-list" => "dropped by the source drop-list (1 entry)",
        "rate-limited" => "dropped by the per-source rate limit (UDP, 1 pps)",
        "ipv6-ext-scope" => "IPv6 with hop-by-hop, routing, destination options; dropped by scope",
        "double-vlan-scope" => "double VLAN (802.1ad + 802.1Q) IPv4; dropped by scope",
        _ => "?",
    }
}

/// The bench example, serving its loaded programs while we measure.
struct Server {
    child: Child,
    /// Closed (taken) on drop: EOF ends the example.
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    progs: BTreeMap<String, u32>,
    /// (case, rule set, packet file), in the example's order.
    cases: Vec<(String, String, PathBuf)>,
}

impl Server {
    fn spawn(bin: &Path, pkt_dir: &Path) -> anyhow::Result<Server> {
        let mut child = Command::new(bin)
            .arg("serve")
            .arg(pkt_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut s = Server { child, stdin, stdout, progs: BTreeMap::new(), cases: vec![] };
        loop {
            let line = s.line()?;
            let w: Vec<&str> = line.split('\t').collect();
            match w.as_slice() {
                ["prog", name, id] => drop(s.progs.insert(name.to_string(), id.parse()?)),
                ["case", name, rules, file, _expect] => s.cases.push((name.to_string(), rules.to_string(), file.into())),
                ["ready"] => return Ok(s),
                _ => bail!("bench_dataplane said {line:?}"),
            }
        }
    }

    fn line(&mut self) -> anyhow::Result<String> {
        let mut l = String::new();
        if self.stdout.read_line(&mut l)? == 0 {
            bail!("bench_dataplane exited early (see its error above)");
        }
        Ok(l.trim_end().to_string())
    }

    /// `test_run_repeat` through aya, in the example.
    fn aya(&mut self, case: &str, repeat: u32) -> anyhow::Result<(u32, u64)> {
        writeln!(self.stdin.as_mut().context("closed")?, "aya {case} {repeat}")?;
        let l = self.line()?;
        let (a, ns) = l.split_once('\t').with_context(|| format!("bench_dataplane said {l:?}"))?;
        Ok((a.parse()?, ns.parse()?))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // EOF on stdin ends it; its programs and maps go with it.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// Columns measured for each case, in run order.
/// Ours right after the floor and xdp-filter's simplest mode right after
/// ours: the pairs the targets compare (`Samples::paired_median`).
pub const COLUMNS: [&str; 5] = ["floor", "ours", "xdp-filter-ip", "ours-aya", "xdp-filter-all"];

/// Every case's samples, by column.
pub struct PerPacket {
    pub table: Table,
    pub samples: BTreeMap<String, BTreeMap<&'static str, Samples>>,
    /// xdp-filter's program names (which variant ran), by column.
    pub xdp_filter_progs: BTreeMap<&'static str, String>,
    /// The SYN proxy's single-run costs (issue 13), or why they are missing.
    pub synproxy: Result<SynCost, String>,
}

pub fn run(o: &Opts) -> anyhow::Result<PerPacket> {
    let work = o.work.join("per-packet");
    std::fs::create_dir_all(&work)?;
    step("per packet: loading our program with each rule set (bench_dataplane serve)");
    let mut server = Server::spawn(&o.example, &work.join("pkts"))?;
    step("per packet: compiling and loading the XDP_PASS floor (clang, bpftool prog load)");
    let bpffs = PrivateBpffs::mount(&work.join("bpffs-floor"))?;
    let floor = progrun::load_floor(&work, &bpffs)?;
    step("per packet: loading xdp-filter (features ipv4,ipv6 and all) on veths in lab namespaces");
    let mut lab = Lab::new("mtgb-xf")?;
    let (h_ip, h_all) = (lab.add_host("ip", 1)?, lab.add_host("all", 2)?);
    let xf_ip = XdpFilter::load(&h_ip, &work.join("bpffs-xf-ip"), "ipv4,ipv6", RULES_IP)?;
    let rules_all: Vec<&[&str]> = RULES_IP.iter().copied().chain([RULES_PORT]).collect();
    let xf_all = XdpFilter::load(&h_all, &work.join("bpffs-xf-all"), "all", &rules_all)?;

    let mut samples: BTreeMap<String, BTreeMap<&'static str, Samples>> = BTreeMap::new();
    let cases = server.cases.clone();
    for round in 1..=o.rounds {
        let t = std::time::Instant::now();
        for (case, rules, file) in &cases {
            let ours = Prog::Id(server.progs[rules]);
            let s = samples.entry(case.clone()).or_default();
            s.entry("floor").or_default().push(progrun::run(&floor, file, o.repeat)?);
            s.entry("ours").or_default().push(progrun::run(&ours, file, o.repeat)?);
            s.entry("xdp-filter-ip").or_default().push(progrun::run(&xf_ip.prog, file, o.repeat)?);
            s.entry("ours-aya").or_default().push(server.aya(case, o.repeat)?);
            s.entry("xdp-filter-all").or_default().push(progrun::run(&xf_all.prog, file, o.repeat)?);
        }
        step(&format!("per packet: round {round}/{} done ({} cases × {} programs, {:.1} s)", o.rounds, cases.len(), COLUMNS.len(), t.elapsed().as_secs_f64()));
    }
    let xdp_filter_progs = BTreeMap::from([("xdp-filter-ip", xf_ip.prog_name.clone()), ("xdp-filter-all", xf_all.prog_name.clone())]);
    let table = table(&cases, &samples, &xdp_filter_progs);
    drop((xf_ip, xf_all));
    drop(lab);
    drop(server);
    // After the server's programs are gone: the example loads its own.
    let synproxy = synproxy_cost::run(o, &samples, &xdp_filter_progs["xdp-filter-ip"]).map_err(|e| format!("{e:#}"));
    if let Err(e) = &synproxy {
        step(&format!("per packet: the SYN proxy's cases could not run: {e}"));
    }
    Ok(PerPacket { table, samples, xdp_filter_progs, synproxy })
}

fn table(
    cases: &[(String, String, PathBuf)],
    samples: &BTreeMap<String, BTreeMap<&'static str, Samples>>,
    xf: &BTreeMap<&'static str, String>,
) -> Table {
    let ip_head = format!("xdp-filter {} median / min", xf["xdp-filter-ip"]);
    let all_head = format!("xdp-filter {} median / min", xf["xdp-filter-all"]);
    let mut t = Table::new(
        "per_packet",
        "Cost per packet (ns, BPF_PROG_TEST_RUN average per run)",
        &[
            "case", "packet", "our rule set", "floor median", "ours median", "ours min", "ours − floor (paired)",
            "ours (aya) median / min", "our verdict", &ip_head, "ours − xdp-filter ip (paired)", &all_head,
        ],
    );
    for (case, rules, _) in cases {
        let s = &samples[case];
        let xf = |c: &str| format!("{} / {} ({})", s[c].median(), s[c].min(), action_name(s[c].action));
        t.row(vec![
            case.clone(),
            describe(case).into(),
            rules.clone(),
            s["floor"].median().to_string(),
            s["ours"].median().to_string(),
            s["ours"].min().to_string(),
            s["ours"].paired_median(&s["floor"]).to_string(),
            format!("{} / {}", s["ours-aya"].median(), s["ours-aya"].min()),
            action_name(s["ours"].action).into(),
            xf("xdp-filter-ip"),
            s["ours"].paired_median(&s["xdp-filter-ip"]).to_string(),
            xf("xdp-filter-all"),
        ]);
    }
    t
}
