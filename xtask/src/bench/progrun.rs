//! BPF_PROG_TEST_RUN through `bpftool prog run`: the same measurement for
//! every program (ours, the XDP_PASS floor, xdp-filter), so they compare.
//! Also the floor program itself and the private bpffs that holds its pin.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context};

/// A loaded program, as `bpftool` names it.
#[derive(Clone, Debug)]
pub enum Prog {
    Id(u32),
    Pinned(PathBuf),
}

/// Runs `prog` `repeat` times on the packet in `pkt`; returns the XDP
/// action and the kernel's average duration per run, in ns.
pub fn run(prog: &Prog, pkt: &Path, repeat: u32) -> anyhow::Result<(u32, u64)> {
    let mut cmd = Command::new("bpftool");
    cmd.args(["-j", "prog", "run"]);
    match prog {
        Prog::Id(id) => cmd.args(["id", &id.to_string()]),
        Prog::Pinned(p) => cmd.arg("pinned").arg(p),
    };
    cmd.arg("data_in").arg(pkt).args(["repeat", &repeat.to_string()]);
    let out = cmd.output().context("running bpftool")?;
    if !out.status.success() {
        bail!("bpftool prog run {prog:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    // {"retval":2,"duration":74}
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("bpftool -j output")?;
    match (v["retval"].as_u64(), v["duration"].as_u64()) {
        (Some(r), Some(d)) => Ok((r as u32, d)),
        _ => bail!("unexpected bpftool output {v}"),
    }
}

/// Samples of one measurement (ns per packet, one per round).
#[derive(Clone, Debug, Default)]
pub struct Samples {
    pub ns: Vec<u64>,
    /// XDP action of the last run.
    pub action: u32,
}

impl Samples {
    pub fn push(&mut self, (action, ns): (u32, u64)) {
        self.action = action;
        self.ns.push(ns);
    }

    pub fn median(&self) -> u64 {
        let mut v = self.ns.clone();
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    }

    pub fn min(&self) -> u64 {
        self.ns.iter().copied().min().unwrap_or(0)
    }

    /// Median over the rounds of `self − other`, each round's two samples
    /// taken one right after the other. This machine's speed shifts for
    /// seconds at a time (every program's cost moves together, by up to a
    /// fifth): a difference of medians can take one from a fast stretch
    /// and the other from a slow one, a difference within a round cannot.
    pub fn paired_median(&self, other: &Samples) -> i64 {
        let mut d: Vec<i64> = self.ns.iter().zip(&other.ns).map(|(a, b)| *a as i64 - *b as i64).collect();
        d.sort_unstable();
        d.get(d.len() / 2).copied().unwrap_or(0)
    }
}

pub fn action_name(a: u32) -> &'static str {
    match a {
        0 => "ABORTED",
        1 => "DROP",
        2 => "PASS",
        3 => "TX",
        4 => "REDIRECT",
        _ => "?",
    }
}

/// A bpffs instance of our own, mounted on a temporary directory: pins
/// made there (the floor, xdp-filter's maps) meet nobody else's, and go
/// when it is unmounted.
pub struct PrivateBpffs {
    pub dir: PathBuf,
}

impl PrivateBpffs {
    pub fn mount(dir: &Path) -> anyhow::Result<PrivateBpffs> {
        let _ = Command::new("umount").arg("-l").arg(dir).output(); // left by a killed run
        std::fs::create_dir_all(dir)?;
        crate::run(Command::new("mount").args(["-t", "bpf", "bpf"]).arg(dir))?;
        Ok(PrivateBpffs { dir: dir.to_path_buf() })
    }
}

impl Drop for PrivateBpffs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).output();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The floor: the cheapest XDP program there is, so that the table shows
/// what BPF_PROG_TEST_RUN itself costs per run.
const FLOOR_C: &str = "/* The floor: an XDP program that only returns XDP_PASS (2). */\n\
__attribute__((section(\"xdp\"), used)) int xdp_pass(void *ctx) { return 2; }\n\
char _license[] __attribute__((section(\"license\"), used)) = \"GPL\";\n";

/// Compiles the floor with clang and loads it, pinned in `bpffs`.
pub fn load_floor(work: &Path, bpffs: &PrivateBpffs) -> anyhow::Result<Prog> {
    Ok(Prog::Pinned(load_c(work, bpffs, "xdp_pass", FLOOR_C, &[]).context("the XDP_PASS floor")?))
}

/// Compiles an XDP program's C source `src` with clang (extra `cflags`),
/// loads it and pins it in `bpffs` as `name`; returns the pin's path.
pub fn load_c(work: &Path, bpffs: &PrivateBpffs, name: &str, src: &str, cflags: &[&str]) -> anyhow::Result<PathBuf> {
    let c = work.join(format!("{name}.c"));
    let o = work.join(format!("{name}.o"));
    std::fs::write(&c, src)?;
    crate::run(Command::new("clang").args(["-O2", "-target", "bpf"]).args(cflags).arg("-c").arg(&c).arg("-o").arg(&o))
        .with_context(|| format!("compiling {name} (needs clang)"))?;
    let pin = bpffs.dir.join(name);
    let _ = std::fs::remove_file(&pin);
    crate::run(Command::new("bpftool").args(["prog", "load"]).arg(&o).arg(&pin).args(["type", "xdp"]))?;
    Ok(pin)
}
