//! The control-plane lab: a `SignalLab` (tests/src/signal.rs: daemon on
//! 203.0.113.10 serving DTLS/TLS 4646, XDP native on its eth0, DOTS
//! mitigations drop-all) plus the bench's own client domains, the bench
//! client (`bench_control`) run inside the lab, and the daemon's memory.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, ChildStdin, Stdio},
};

use anyhow::{bail, Context};
use mitigator_tests::{
    signal::{SignalLab, PSK_KEY},
    Daemon, Host,
};

use crate::step;

/// The PSK key of every bench identity (the lab's, as the config wants it: hex).
pub fn key_hex() -> String {
    PSK_KEY.bytes().map(|b| format!("{b:02x}")).collect()
}

/// A `[[signal.clients]]` entry with `n` PSK identities `<id_prefix>0 …`,
/// allowed to protect `prefix`. Goes into `[signal]` through
/// `SignalLab::start`'s extra keys (an array-of-tables entry may appear
/// anywhere after its parent table).
pub fn domain(name: &str, prefix: &str, id_prefix: &str, n: usize) -> String {
    let ids: Vec<String> = (0..n).map(|i| format!("\"psk:{id_prefix}{i}\"")).collect();
    let keys: Vec<String> = (0..n).map(|i| format!("{id_prefix}{i} = \"{}\"", key_hex())).collect();
    format!(
        "\n[[signal.clients]]\nname = \"{name}\"\nprefixes = [\"{prefix}\"]\nidentities = [{}]\npsk_keys = {{ {} }}\n",
        ids.join(", "),
        keys.join(", ")
    )
}

pub fn start(tag: &str, extra: &str) -> anyhow::Result<SignalLab> {
    step(&format!(
        "control: starting a signal lab ({tag}-host runs `mitigator run`, XDP native on eth0)"
    ));
    SignalLab::start(tag, extra)
}

/// The daemon's pid: the process whose command line is `… run --config <its config>`
/// (the harness runs it through nsenter, which execs it, so it is a
/// process of its own; found through /proc rather than kept by the harness).
pub fn daemon_pid(d: &Daemon) -> anyhow::Result<u32> {
    let cfg = d.config.display().to_string();
    for e in std::fs::read_dir("/proc")?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        let is_run = args.contains(&b"run".as_slice()) && args.contains(&cfg.as_bytes());
        let is_daemon = args.first().is_some_and(|a| a.ends_with(b"mitigator"));
        if is_run && is_daemon {
            return Ok(pid);
        }
    }
    bail!("no `mitigator run --config {cfg}` process")
}

/// VmRSS and VmHWM of a process, in KiB (/proc/PID/status).
#[derive(Clone, Copy, Debug, Default)]
pub struct Mem {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

pub fn mem(pid: u32) -> anyhow::Result<Mem> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("/proc/{pid}/status"))?;
    let field = |k: &str| -> anyhow::Result<u64> {
        let l = s
            .lines()
            .find(|l| l.starts_with(k))
            .with_context(|| format!("{k} in /proc/{pid}/status"))?;
        Ok(l.split_whitespace().nth(1).context("value")?.parse()?)
    };
    Ok(Mem {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// `bench_control <args>` in `host`'s network namespace; stdout piped,
/// stderr (its progress) passed through.
pub fn spawn_client(example: &Path, host: &Host, args: &[String]) -> anyhow::Result<Child> {
    host.command(example.to_str().context("example path")?)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting bench_control")
}

/// Runs `bench_control` to the end and returns its tab-separated lines.
pub fn run_client(example: &Path, host: &Host, args: &[String]) -> anyhow::Result<Vec<Vec<String>>> {
    let child = spawn_client(example, host, args)?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "bench_control {} failed ({})",
            args.first().map(String::as_str).unwrap_or(""),
            out.status
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect())
}

/// Reads `bench_control`'s stdout until a line starting with `word`.
pub fn wait_line(child: &mut Child, word: &str) -> anyhow::Result<Vec<String>> {
    // Borrowed, not taken: a later line may be waited for too. The child
    // prints nothing between the lines waited for, so the reader buffers
    // nothing beyond this one.
    let out = child.stdout.as_mut().context("stdout")?;
    for line in BufReader::new(out).lines() {
        let line = line?;
        let f: Vec<String> = line.split('\t').map(str::to_owned).collect();
        if f.first().map(String::as_str) == Some(word) {
            return Ok(f);
        }
    }
    bail!("bench_control ended before printing `{word}`")
}

/// Closing its stdin tells `bench_control sessions` to ping, then close,
/// its sessions; returns how many answered the ping (`alive` line).
pub fn finish(mut child: Child) -> anyhow::Result<usize> {
    drop(child.stdin.take() as Option<ChildStdin>);
    let alive = wait_line(&mut child, "alive")?;
    let st = child.wait()?;
    if !st.success() {
        bail!("bench_control ended with {st}");
    }
    alive.get(1).and_then(|v| v.parse().ok()).context("`alive` line without a count")
}
