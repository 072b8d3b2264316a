//! Tables (one CSV each, and a Markdown rendering), the machine description,
//! and BENCHMARKS.md.

use std::{fmt::Write as _, path::Path, process::Command};

/// One table of results: `stem` names its CSV (`benchmarks/<stem>.csv`).
#[derive(Clone)]
pub struct Table {
    pub stem: &'static str,
    pub title: &'static str,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(stem: &'static str, title: &'static str, columns: &[&str]) -> Table {
        Table { stem, title, columns: columns.iter().map(|c| c.to_string()).collect(), rows: vec![] }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.columns.len(), "row width of {}", self.stem);
        self.rows.push(cells);
    }

    pub fn csv(&self) -> String {
        let line = |cells: &mut dyn Iterator<Item = &str>| cells.map(csv_field).collect::<Vec<_>>().join(",") + "\n";
        let mut s = line(&mut self.columns.iter().map(String::as_str));
        for r in &self.rows {
            s += &line(&mut r.iter().map(String::as_str));
        }
        s
    }

    pub fn markdown(&self) -> String {
        let mut s = format!("**{}**\n\n| {} |\n|{}\n", self.title, self.columns.join(" | "), "---|".repeat(self.columns.len()));
        for r in &self.rows {
            let _ = writeln!(s, "| {} |", r.iter().map(|c| c.replace('|', "\\|")).collect::<Vec<_>>().join(" | "));
        }
        s
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// First line of a command's output (stdout, else stderr), or "unknown".
fn first_line(program: &str, args: &[&str]) -> String {
    let Ok(o) = Command::new(program).args(args).output() else { return "unknown".into() };
    let out = if o.stdout.is_empty() { o.stderr } else { o.stdout };
    String::from_utf8_lossy(&out).lines().next().unwrap_or("unknown").trim().to_string()
}

fn proc_field(file: &str, key: &str) -> String {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split(':').nth(1)).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

fn deb_version(pkg: &str) -> String {
    first_line("dpkg-query", &["-W", "-f=${Version}", pkg])
}

/// What the numbers were measured on, as Markdown list items.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let items = [
        ("CPU", format!("{} × {}", cpus, proc_field("/proc/cpuinfo", "model name"))),
        ("memory", proc_field("/proc/meminfo", "MemTotal")),
        ("kernel", first_line("uname", &["-srv"])),
        ("load average at start (the machine is shared)", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string()),
        ("rustc", first_line("rustc", &["--version"])),
        ("bpftool", first_line("bpftool", &["version"])),
        ("xdp-tools (xdp-filter)", deb_version("xdp-tools")),
        ("nftables", first_line("nft", &["--version"])),
        ("netsniff-ng (trafgen)", deb_version("netsniff-ng")),
        ("clang (the XDP_PASS floor)", first_line("clang", &["--version"])),
        ("commit", first_line("git", &["describe", "--always", "--dirty"])),
        ("date (UTC)", first_line("date", &["-u", "+%Y-%m-%d %H:%M"])),
    ];
    items.iter().map(|(k, v)| format!("- {k}: {v}\n")).collect()
}

/// Writes `benchmarks/<stem>.csv` for each table under `root`.
pub fn write_csvs(root: &Path, tables: &[&Table]) -> anyhow::Result<()> {
    let dir = root.join("benchmarks");
    std::fs::create_dir_all(&dir)?;
    for t in tables {
        std::fs::write(dir.join(format!("{}.csv", t.stem)), t.csv())?;
    }
    Ok(())
}
