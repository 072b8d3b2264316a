//! Scenario: an operator's everyday mistakes meet clear answers (issue 15,
//! operator surface): a daemon started with `ip netns exec` warns that its
//! pins are private; `mitigator uninstall --config` works with a file whose
//! `[[upstream]]` is broken; a CLI command piped into `head` ends quietly.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use mitigator_tests::{daemon::mitigator_bin, Daemon, Lab};

#[test]
fn ip_netns_exec_is_warned_about_uninstall_needs_only_the_pin_dir_and_epipe_is_quiet() -> anyhow::Result<()> {
    let mut lab = Lab::new("mtg-ops")?;
    let host = lab.add_host("host", 10)?;
    let mut d = Daemon::start(&host, "operator-surface", "interfaces = [\"eth0\"]", "")?;
    assert!(!d.log().contains("private to this process"), "started with nsenter, the machine's bpffs is used:\n{}", d.log());

    // A closed pipe ends the CLI quietly (SIGPIPE), without a panic.
    let mut child = Command::new(mitigator_bin())
        .args(["--socket"])
        .arg(&d.socket)
        .args(["status", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    drop(child.stdout.take());
    let out = child.wait_with_output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
    d.stop()?;

    // The same daemon under `ip netns exec`: a private /sys, a private bpffs.
    let log = d.dir.join("netns-exec.log");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &host.ns, mitigator_bin().to_str().unwrap(), "run", "--config"])
        .arg(&d.config)
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::create(d.dir.join("netns-exec.err"))?)
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = std::fs::read_to_string(&log)? + &std::fs::read_to_string(d.dir.join("netns-exec.err"))?;
        if text.contains("local API ready") || Instant::now() > deadline || child.try_wait()?.is_some() {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = d.cli_raw(&["stop"]);
    let _ = child.wait();
    assert!(text.contains("private to this process") && text.contains("nsenter"), "the daemon warns and says what to do:\n{text}");

    // uninstall reads only [dataplane] pin_dir: a broken [[upstream]] does
    // not stop it.
    let bad = d.dir.join("bad-upstream.toml");
    std::fs::write(
        &bad,
        format!(
            "[dataplane]\npin_dir = \"{}\"\n\n[[upstream]]\nname = \"A\"\nserver = \"192.0.2.1\"\ncert = \"/nonexistent.pem\"\n",
            d.pin_dir.display()
        ),
    )?;
    let out = Command::new(mitigator_bin()).args(["uninstall", "--config"]).arg(&bad).output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&d.pin_dir.display().to_string()));
    Ok(())
}
