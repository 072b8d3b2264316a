//! Scenario: many mitigation requests at once. Changes that arrive within
//! one grace period share one generation flip (group commit), and each
//! request is answered only once its change is in force: a datagram sent to
//! a target right after its answer is dropped by that target's rule, and
//! survives a `kill -9` right after.

use std::{net::IpAddr, process::Command};

use mitigator_tests::{
    daemon::drop_reason,
    traffic::udp_burst,
    Daemon, Host, Lab,
};

const N: usize = 12;

fn target(i: usize) -> IpAddr {
    format!("198.51.100.{}", 10 + i).parse().unwrap()
}

#[test]
fn concurrent_requests_share_flips_and_each_answer_means_in_force() -> anyhow::Result<()> {
    let mut lab = Lab::new("mtg-gc")?;
    let host = lab.add_host("host", 10)?;
    let attacker = lab.add_host("attacker", 66)?;
    // The targets are routed to the host, whose XDP program sees them on
    // eth0 (the host does not forward: without a rule they die in its stack).
    attacker.sh(&["ip", "route", "add", "198.51.100.0/24", "via", &host.addr(false).to_string()])?;
    // A long grace (1 s instead of 20 ms), so that requests sent together
    // surely meet a deferred flip even on a slow machine.
    let mut d = Daemon::start(&host, "group-commit", "interfaces = [\"eth0\"]\nattach_mode = \"native\"\ngrace_ms = 1000", "")?;
    // One change first: the flip it makes starts a grace period.
    d.cli(&["protect", "198.51.100.200", "--countermeasure", "drop-all"])?;
    let before = d.status()?["commits"].clone();

    let ids = protect_together(&d, &attacker, 0..N)?;

    std::thread::sleep(std::time::Duration::from_millis(300));
    let st = d.status()?;
    let lost = lab.drops_between(&attacker, &host)?;
    for (i, id) in ids.iter().enumerate() {
        let dropped = drop_reason(&st, *id, "scope");
        assert!(
            dropped == 1 || (dropped == 0 && lost > 0),
            "the datagram to {} sent right after its answer was dropped by its rule (dropped {dropped}, lost before XDP {lost})",
            target(i)
        );
    }
    let changes = st["commits"]["changes"].as_u64().unwrap() - before["changes"].as_u64().unwrap();
    let flips = st["commits"]["flips"].as_u64().unwrap() - before["flips"].as_u64().unwrap();
    assert_eq!(changes, N as u64, "one change per request");
    assert!(flips < changes, "{changes} changes sent together shared flips ({flips} flips)");
    assert!(flips >= 1);
    // The text status says it too.
    let text = d.cli(&["status"])?;
    assert!(text.contains("rule-set changes since start:"), "{text}");

    // Their store writes are synced once per flip, not once each: what was
    // acknowledged survives a `kill -9` right after the answers all the
    // same (no other request in between, which would sync anything left).
    d.cli(&["protect", "198.51.100.201", "--countermeasure", "drop-all"])?;
    let more = protect_together(&d, &attacker, N..2 * N)?;
    d.kill9();
    d.spawn()?;
    let st = d.status()?;
    let back: Vec<u64> = st["protections"].as_array().unwrap().iter().map(|p| p["id"].as_u64().unwrap()).collect();
    for id in ids.iter().chain(&more) {
        assert!(back.contains(id), "protection {id} was acknowledged, so it is back after kill -9 ({back:?})");
    }
    Ok(())
}

/// Asks for one protection per target at once (a thread each); right
/// after each answer, sends one datagram to that target.
fn protect_together(d: &Daemon, attacker: &Host, targets: std::ops::Range<usize>) -> anyhow::Result<Vec<u64>> {
    std::thread::scope(|s| {
        let workers: Vec<_> = targets
            .map(|i| {
                s.spawn(move || -> anyhow::Result<u64> {
                    let t = target(i).to_string();
                    let p: serde_json::Value =
                        serde_json::from_str(&d.cli(&["protect", &t, "--proto", "udp", "--countermeasure", "drop-all", "--json"])?)?;
                    // The answer is in: the rule must be in force already.
                    let sent = udp_burst(attacker, target(i), 9000, 0, 1, 10)?;
                    anyhow::ensure!(sent == 1);
                    Ok(p["id"].as_u64().expect("id"))
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).collect()
    })
}

/// A deferred flip that the kernel refuses (here another tool froze the
/// pinned CONFIG map, so no process can write it any more) is never
/// acknowledged: the request gets an internal error saying that the change
/// is stored but not enforced, the daemon keeps answering, and the change
/// stays in its state to be retried.
#[test]
fn a_refused_deferred_flip_is_reported_not_acknowledged() -> anyhow::Result<()> {
    let mut lab = Lab::new("mtg-gf")?;
    let host = lab.add_host("host", 10)?;
    // 5 s of grace: the second request surely comes within it.
    let d = Daemon::start(&host, "group-fail", "interfaces = [\"eth0\"]\nattach_mode = \"native\"\ngrace_ms = 5000", "")?;
    d.cli(&["protect", "198.51.100.1", "--countermeasure", "drop-all"])?;
    let frozen = Command::new("bpftool").args(["map", "freeze", "pinned"]).arg(d.pin_dir.join("MTG_CONFIG")).output()?;
    anyhow::ensure!(frozen.status.success(), "bpftool map freeze: {}", String::from_utf8_lossy(&frozen.stderr));

    let out = d.cli_raw(&["protect", "198.51.100.2", "--countermeasure", "drop-all"])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a change that is not in force is not acknowledged");
    assert!(
        err.contains("stored but the data plane refused to enforce it") && err.contains("send the request again"),
        "the error says what happened and what to do: {err}"
    );
    let st = d.status()?;
    let stored: Vec<String> = st["protections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["spec"]["prefixes"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()))
        .collect();
    assert!(stored.contains(&"198.51.100.2/32".to_string()), "the change is kept to be retried: {stored:?}");
    assert!(d.log().contains("cannot commit the deferred changes"), "and logged");
    Ok(())
}
