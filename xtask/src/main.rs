//! `cargo xtask`: the project's tasks.
//!
//! - `setup`: install what is missing (Debian packages, nightly rust-src,
//!   bpf-linker); idempotent.
//! - `demo`: set up, build, and run the lab demo until Ctrl-C.
//! - `test`: set up, build, run the whole suite (what `.ci/run` calls).
//! - `fuzz --seconds N`: run every fuzz target for N seconds each.
//! - `bench`: measure the data plane and the DOTS control plane, write
//!   BENCHMARKS.md and benchmarks/*.csv.

mod bench;
mod demo;
mod setup;

use std::process::Command;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what the project needs and is missing.
    Setup,
    /// Set up, build, and show the data plane protecting a host in a lab.
    Demo {
        /// Stop after this many seconds (default: until Ctrl-C).
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// Set up, build, and run the whole test suite (as root).
    Test {
        /// Extra arguments for `cargo test` (a test name filter, say).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run every fuzz target for a while.
    Fuzz {
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Set up, build, benchmark the data and control planes (as root); writes
    /// BENCHMARKS.md and benchmarks/*.csv.
    Bench {
        /// BPF_PROG_TEST_RUN repetitions per measurement.
        #[arg(long, default_value_t = 1_000_000)]
        repeat: u32,
        /// Measurements per figure (median and min are reported).
        #[arg(long, default_value_t = 9)]
        rounds: u32,
        /// Measurement window of each flood case.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Rate of the paced live-frames flood, frames/s (default: twice what
        /// the nftables rule dropped under the unpaced one).
        #[arg(long)]
        flood_pps: Option<f64>,
        /// Run only these sections (default: all).
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<bench::Section>,
        /// Write BENCHMARKS.md and benchmarks/ here (default: the repository).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.task {
        Task::Setup => setup::setup(),
        Task::Demo { seconds } => demo::demo(seconds),
        Task::Test { args } => test(&args),
        Task::Fuzz { seconds } => fuzz(seconds),
        Task::Bench { repeat, rounds, seconds, flood_pps, only, out } => bench::bench(repeat, rounds, seconds, flood_pps, &only, out),
    };
    if let Err(e) = r {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

/// Prints a progress line.
pub fn step(msg: &str) {
    eprintln!("==> {msg}");
}

/// Runs a command, inheriting output; fails on a non-zero exit.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{:?} failed ({status})", cmd);
    }
    Ok(())
}

/// Whether a program runs.
pub fn have(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).output().map(|o| o.status.success()).unwrap_or(false)
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

pub fn build() -> anyhow::Result<()> {
    step("cargo build (the XDP program is built by mitigator-user's build script)");
    run(cargo().arg("build"))
}

fn test(args: &[String]) -> anyhow::Result<()> {
    setup::setup()?;
    build()?;
    step("cargo test (every default member: all but the eBPF crate, which the build script builds)");
    let totals = run_counting(cargo().args(["test", "--no-fail-fast"]).args(args))?;
    step("fuzz smoke run (every target, 10 s each)");
    fuzz(10)?;
    // The closing line CI reads: every test of every crate, summed.
    println!("tests: {} passed, {} failed, {} skipped", totals.passed, totals.failed, totals.ignored);
    Ok(())
}

#[derive(Default)]
struct Totals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

/// Runs `cargo test`, echoing its output, and sums its `test result:`
/// lines; fails if the command failed.
fn run_counting(cmd: &mut Command) -> anyhow::Result<Totals> {
    use std::io::{BufRead, BufReader};
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().context("cannot run cargo test")?;
    let mut totals = Totals::default();
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            let num = |word: &str| {
                rest.split(';')
                    .find_map(|part| part.trim().strip_suffix(word).and_then(|n| n.trim().rsplit(' ').next()?.parse::<u64>().ok()))
                    .unwrap_or(0)
            };
            totals.passed += num("passed");
            totals.failed += num("failed");
            totals.ignored += num("ignored");
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo test failed ({status}): {} passed, {} failed", totals.passed, totals.failed);
    }
    Ok(totals)
}

fn fuzz(seconds: u64) -> anyhow::Result<()> {
    if !have("cargo-fuzz", &["--version"]) && !have("cargo", &["fuzz", "--version"]) {
        step("cargo install cargo-fuzz");
        run(cargo().args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dots-proto");
    let list = Command::new("cargo").args(["+nightly", "fuzz", "list"]).current_dir(&dir).output()?;
    let targets: Vec<String> = String::from_utf8(list.stdout)?.lines().map(str::to_owned).collect();
    if targets.is_empty() {
        bail!("no fuzz targets found under dots-proto/fuzz");
    }
    for t in &targets {
        step(&format!("fuzz {t} for {seconds} s"));
        let seeds = dir.join("fuzz/seeds").join(t);
        let corpus = std::env::temp_dir().join(format!("mitigator-fuzz-{t}"));
        std::fs::create_dir_all(&corpus)?;
        let mut cmd = Command::new("cargo");
        cmd.args(["+nightly", "fuzz", "run", t]).current_dir(&dir).arg(&corpus);
        if seeds.exists() {
            cmd.arg(&seeds);
        }
        cmd.arg("--").arg(format!("-max_total_time={seconds}")).arg("-rss_limit_mb=1024").arg("-max_len=65536");
        run(&mut cmd).with_context(|| format!("fuzz target {t} found a failure (see the artifact path above)"))?;
    }
    Ok(())
}
