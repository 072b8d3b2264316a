//! A `mitigator run` daemon in a lab host, with its own socket, state and
//! bpffs pin directory, driven through the real CLI.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::netlab::Host;

/// Path of the `mitigator` binary: $MITIGATOR_BIN, or beside the test
/// executable's target directory (`cargo xtask test` builds it first).
pub fn mitigator_bin() -> PathBuf {
    if let Ok(p) = std::env::var("MITIGATOR_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> → target/<profile>/mitigator
    let bin = exe.parent().and_then(Path::parent).map(|d| d.join("mitigator")).expect("target dir");
    assert!(bin.exists(), "{} is missing: run `cargo build -p mitigator-user` first (cargo xtask test does)", bin.display());
    bin
}

pub struct Daemon {
    pub host: Host,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub pin_dir: PathBuf,
    pub config: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    /// Starts a daemon in `host` with `extra` appended to its config (which
    /// already sets [daemon] socket/state_dir and [dataplane] pin_dir, so
    /// `extra` must not repeat those tables; use `dataplane_extra` for keys of
    /// [dataplane]).
    pub fn start(host: &Host, tag: &str, dataplane_extra: &str, extra: &str) -> anyhow::Result<Daemon> {
        let dir = PathBuf::from(format!("/tmp/mitigator-test-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let pin_dir = PathBuf::from(format!("/sys/fs/bpf/mitigator-test-{tag}"));
        let socket = dir.join("api.sock");
        let config = dir.join("mitigator.toml");
        std::fs::write(
            &config,
            format!(
                "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\nlog = \"info\"\n\n[dataplane]\npin_dir = \"{}\"\nstats_interval_ms = 200\n{dataplane_extra}\n\n{extra}\n",
                socket.display(),
                dir.join("state").display(),
                pin_dir.display()
            ),
        )?;
        let mut d = Daemon { host: host.clone(), dir, socket, pin_dir, config, child: None };
        // A pin directory left by a killed run of the same test.
        let _ = d.cli_raw(&["uninstall", "--config", &d.config.display().to_string()]);
        d.spawn()?;
        Ok(d)
    }

    /// Starts the process and waits until its API answers.
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("daemon.log"))?;
        let child = self
            .host
            .command(mitigator_bin().to_str().unwrap())
            .args(["run", "--config"])
            .arg(&self.config)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawn mitigator run")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.cli_raw(&["status", "--json"])?.status.success() {
                return Ok(());
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait()? {
                bail!("daemon exited ({st}) during start:\n{}", self.log());
            }
            if Instant::now() > deadline {
                bail!("daemon did not answer within 60 s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// `kill -9`: no cleanup at all.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs the CLI against this daemon's socket.
    pub fn cli_raw(&self, args: &[&str]) -> anyhow::Result<Output> {
        Command::new(mitigator_bin())
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("run mitigator CLI")
    }

    /// Runs the CLI and requires success; returns stdout.
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.cli_raw(args)?;
        if !out.status.success() {
            bail!(
                "`mitigator {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    pub fn status(&self) -> anyhow::Result<Value> {
        Ok(serde_json::from_str(&self.cli(&["status", "--json"])?)?)
    }

    /// Stops through the API and detaches (what a user's `mitigator stop` does).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.cli(&["stop"])?;
        if let Some(mut c) = self.child.take() {
            c.wait()?;
        }
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.cli_raw(&["stop"]);
            std::thread::sleep(Duration::from_millis(200));
            self.kill9();
        }
        let _ = self.cli_raw(&["uninstall", "--config", &self.config.display().to_string()]);
        // The daemon's own consistency check (the tick compares the DOTS
        // protections with the enforced mitigations) found a bug: every
        // end-to-end test fails on it.
        let log = self.log();
        let bug = log.lines().find(|l| l.contains("out of step")).map(str::to_string);
        if std::env::var_os("MITIGATOR_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        if let Some(line) = bug {
            if !std::thread::panicking() {
                panic!("the daemon found its DOTS protections out of step with its mitigations: {line}");
            }
        }
    }
}

/// Reads a protection's counter from `status --json`:
/// `field` is `passed` or `dropped`, `what` is `packets` or `bytes`.
pub fn protection_counter(status: &Value, id: u64, field: &str, what: &str) -> u64 {
    status["protections"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["id"].as_u64() == Some(id)))
        .map(|p| p[field][what].as_u64().unwrap_or(0))
        .unwrap_or(0)
}

/// Packets dropped for `reason` by protection `id`.
pub fn drop_reason(status: &Value, id: u64, reason: &str) -> u64 {
    status["protections"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["id"].as_u64() == Some(id)))
        .map(|p| p["drop_reasons"][reason]["packets"].as_u64().unwrap_or(0))
        .unwrap_or(0)
}
