//! `cargo xtask demo`: a lab of network namespaces (attacker, legitimate
//! client, protected host), the daemon on the host with the built-in default
//! configuration, a protection, a flood and legitimate traffic at once, and a
//! live table until Ctrl-C. Everything created is removed at the end.

use std::{
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use mitigator_tests::{traffic, Host, Lab};

use crate::{build, setup, step};

fn mitigator_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/mitigator")
}

/// Children get their own process group, so that the terminal's Ctrl-C
/// reaches only the demo, which then cleans up in order.
fn spawn(cmd: &mut Command) -> anyhow::Result<Child> {
    cmd.process_group(0).stdin(Stdio::null()).spawn().with_context(|| format!("cannot start {:?}", cmd.get_program()))
}

fn mitigator(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(mitigator_bin()).args(args).output()?;
    if !out.status.success() {
        bail!("mitigator {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn demo(seconds: Option<u64>) -> anyhow::Result<()> {
    setup::setup()?;
    build()?;
    if mitigator(&["status"]).is_ok() {
        bail!("a mitigator daemon is already running on this machine (default socket); stop it with `mitigator stop` first");
    }
    step("creating the lab: namespaces mtg-demo-{host,attacker,client} on a bridge");
    let mut lab = Lab::new("mtg-demo")?;
    let host = lab.add_host("host", 10)?;
    let attacker = lab.add_host("attacker", 66)?;
    let client = lab.add_host("client", 20)?;
    let log = std::env::temp_dir().join("mitigator-demo.log");
    step(&format!("starting `mitigator run` on the host with the default configuration (log: {})", log.display()));
    let logf = std::fs::File::create(&log)?;
    let mut daemon = spawn(
        host.command(mitigator_bin().to_str().unwrap()).arg("run").stdout(logf.try_clone()?).stderr(logf),
    )?;
    let r = run_demo(&host, &attacker, &client, &mut daemon, seconds);
    step("cleaning up");
    let _ = mitigator(&["unprotect", "203.0.113.10"]);
    let _ = mitigator(&["stop"]);
    std::thread::sleep(Duration::from_millis(300));
    let _ = daemon.kill();
    let _ = daemon.wait();
    drop(lab);
    step("lab removed");
    r
}

fn run_demo(host: &Host, attacker: &Host, client: &Host, daemon: &mut Child, seconds: Option<u64>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while mitigator(&["status"]).is_err() {
        if let Some(st) = daemon.try_wait()? {
            bail!("the daemon exited ({st}); see its log");
        }
        if Instant::now() > deadline {
            bail!("the daemon did not start within 60 s; see its log");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    traffic::echo_server(host, 8080)?;
    step("mitigator protect 203.0.113.10   (the default countermeasure profile)");
    print!("{}", mitigator(&["protect", "203.0.113.10"])?);

    step(
        "attacker, from random spoofed sources (hping3 --rand-source): a UDP flood from source port 123 (NTP reflection) \
         and a SYN flood at the service; client: up to 100 TCP transactions/s",
    );
    let mut floods = vec![
        spawn(attacker.command("hping3").args(["--udp", "-s", "123", "-k", "-p", "40000", "-d", "400", "--rand-source", "--flood", "-q"]).arg(host.v4.to_string()).stdout(Stdio::null()).stderr(Stdio::null()))?,
        spawn(attacker.command("hping3").args(["-S", "-p", "8080", "--rand-source", "--flood", "-q"]).arg(host.v4.to_string()).stdout(Stdio::null()).stderr(Stdio::null()))?,
    ];
    let (ok, failed, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let legit = {
        let (client, to, ok, failed, stop) = (client.clone(), host.addr(false), ok.clone(), failed.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok((o, f)) = traffic::tcp_rate(&client, to, 8080, Duration::from_millis(250), Duration::from_millis(10)) {
                    ok.fetch_add(o, Ordering::Relaxed);
                    failed.fetch_add(f, Ordering::Relaxed);
                }
            }
        })
    };

    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))?;
    let start = Instant::now();
    let (mut last_ok, mut last_failed) = (0, 0);
    while !interrupted.load(Ordering::Relaxed) && seconds.is_none_or(|s| start.elapsed() < Duration::from_secs(s)) {
        std::thread::sleep(Duration::from_secs(1));
        let table = mitigator(&["status"])?;
        let (o, f) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
        print!("\x1b[2J\x1b[H");
        println!("mitigator demo — {:.0} s — Ctrl-C to stop and clean up\n", start.elapsed().as_secs_f64());
        print!("{table}");
        println!("legitimate client (203.0.113.20 → 203.0.113.10:8080): {} TCP transactions/s ok, {} failed/s", o - last_ok, f - last_failed);
        (last_ok, last_failed) = (o, f);
    }
    stop.store(true, Ordering::Relaxed);
    for f in &mut floods {
        let _ = f.kill();
        let _ = f.wait();
    }
    let _ = legit.join();
    Ok(())
}
