//! Scenario (issue 5, RFC 9284): a host whose attack exceeds its configured
//! capacity asks upstream for help. A provider-assigned prefix goes to its
//! owner only, a provider-independent one to both providers; the provider's
//! XDP drops the flood; efficacy updates follow; when the flood stops the
//! upstream mitigation is withdrawn. When A refuses, its fallback B is
//! asked; when A is unreachable and has no fallback, nobody else is asked
//! and the status says why.

use std::time::Duration;

use mitigator_tests::escalation::{
    dots_protections_for, inbound_packets, legs, poll, EscalationLab, Options, PacedFlood, SERVICE_PORT,
};

const FLOOD_PPS: u64 = 3000;
const FLOOD_MAX: Duration = Duration::from_secs(60);

/// Waits until protection `id` has an active leg at `server`; returns the leg.
fn active_leg(lab: &EscalationLab, id: u64, server: &str) -> anyhow::Result<serde_json::Value> {
    poll(&format!("an active upstream mitigation at {server}"), Duration::from_secs(30), || {
        let st = lab.host_d.status()?;
        Ok(legs(&st, id).into_iter().find(|l| l["state"] == "active" && l["server"] == server && l["mid"].is_u64()))
    })
    .map_err(|e| e.context(format!("host status: {}\nhost log:\n{}", lab.host_d.cli(&["status"]).unwrap_or_default(), lab.host_d.log())))
}

/// The upstream drops the flood: the host sees (almost) none of it while
/// the provider's DOTS protection counts the drops.
fn upstream_drops(lab: &EscalationLab, upstream: &mitigator_tests::Daemon, id: u64, prefix: &str) -> anyhow::Result<()> {
    poll("the provider's XDP to drop the flood", Duration::from_secs(20), || {
        let ps = dots_protections_for(upstream, prefix)?;
        Ok(ps.first().and_then(|p| p["dropped"]["packets"].as_u64()).filter(|n| *n > 1000).map(|_| ()))
    })?;
    // Over one second the host sees at most a trickle of 3000 pkt/s.
    let before = inbound_packets(&lab.host_d.status()?, id);
    std::thread::sleep(Duration::from_secs(1));
    let after = inbound_packets(&lab.host_d.status()?, id);
    assert!(after - before < FLOOD_PPS / 10, "the host still receives the flood: {} packets in 1 s", after - before);
    Ok(())
}

/// After the flood stops, every leg of `id` is withdrawn, and the
/// upstream's mitigation is gone after its terminating period.
fn withdrawn_after_the_flood(lab: &EscalationLab, upstream: &mitigator_tests::Daemon, id: u64, prefix: &str) -> anyhow::Result<()> {
    poll("the upstream mitigation to be withdrawn", Duration::from_secs(30), || {
        let l = legs(&lab.host_d.status()?, id);
        Ok((!l.is_empty() && l.iter().all(|l| l["state"] == "withdrawn")).then_some(()))
    })?;
    poll("the provider to remove the mitigation", Duration::from_secs(20), || Ok(dots_protections_for(upstream, prefix)?.is_empty().then_some(())))
}

#[test]
fn escalation_pa_prefix_goes_to_its_owner_only_and_is_withdrawn_after_the_flood() -> anyhow::Result<()> {
    let lab = EscalationLab::start("mtg-epa", Options::default())?;
    lab.wait_sessions(&["A", "B"])?;
    let id = lab.protect("198.51.100.10")?;
    // Under capacity: nothing happens.
    let small = PacedFlood::start(&lab.attacker, "198.51.100.10".parse()?, SERVICE_PORT, 300, Duration::from_secs(3));
    std::thread::sleep(Duration::from_secs(3));
    small.stop()?;
    assert!(legs(&lab.host_d.status()?, id).is_empty(), "no escalation under the threshold");

    let flood = PacedFlood::start(&lab.attacker, "198.51.100.10".parse()?, SERVICE_PORT, FLOOD_PPS, FLOOD_MAX);
    let leg = active_leg(&lab, id, "A")?;
    assert_eq!(leg["pa"], true);
    assert_eq!(legs(&lab.host_d.status()?, id).len(), 1, "a PA prefix has one leg");
    upstream_drops(&lab, &lab.a_d, id, "198.51.100.10")?;
    // Efficacy update (4.4.3): the upstream succeeds, so 'attack-status' 2.
    poll("efficacy update 'attack-successfully-mitigated'", Duration::from_secs(15), || {
        Ok(legs(&lab.host_d.status()?, id).iter().any(|l| l["attack_status"] == 2 && l["status"] == 2).then_some(()))
    })?;
    // The flood lasts longer than the withdraw hold: the upstream's drops keep it escalated.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(legs(&lab.host_d.status()?, id)[0]["state"], "active", "no flapping while the upstream drops the flood");
    assert!(dots_protections_for(&lab.b_d, "198.51.100.10")?.is_empty(), "B must not get A's PA prefix");
    let text = lab.host_d.cli(&["status"])?;
    assert!(text.contains("escalation:") && text.contains("A → B"), "{text}");

    flood.stop()?;
    withdrawn_after_the_flood(&lab, &lab.a_d, id, "198.51.100.10")?;
    assert!(lab.b_d.log().matches("mitigation PUT").count() == 0 || dots_protections_for(&lab.b_d, "198.51.100")?.is_empty());
    Ok(())
}

#[test]
fn escalation_pi_prefix_goes_to_every_provider() -> anyhow::Result<()> {
    let lab = EscalationLab::start("mtg-epi", Options::default())?;
    lab.wait_sessions(&["A", "B"])?;
    let id = lab.protect("192.0.2.10")?;
    let flood = PacedFlood::start(&lab.attacker, "192.0.2.10".parse()?, SERVICE_PORT, FLOOD_PPS, FLOOD_MAX);
    active_leg(&lab, id, "A")?;
    let leg_b = active_leg(&lab, id, "B")?;
    assert_eq!(leg_b["pa"], false);
    assert_eq!(dots_protections_for(&lab.a_d, "192.0.2.10")?.len(), 1);
    assert_eq!(dots_protections_for(&lab.b_d, "192.0.2.10")?.len(), 1);
    // The flood enters through A, whose XDP drops it.
    upstream_drops(&lab, &lab.a_d, id, "192.0.2.10")?;
    flood.stop()?;
    withdrawn_after_the_flood(&lab, &lab.a_d, id, "192.0.2.10")?;
    poll("B to remove its mitigation", Duration::from_secs(20), || Ok(dots_protections_for(&lab.b_d, "192.0.2.10")?.is_empty().then_some(())))?;
    Ok(())
}

#[test]
fn escalation_asks_the_fallback_when_the_owner_refuses() -> anyhow::Result<()> {
    let lab = EscalationLab::start("mtg-efb", Options::default())?;
    lab.wait_sessions(&["A", "B"])?;
    // 198.51.100.20 is A's PA address, but A serves this host for .0/28 only: 4.00.
    let id = lab.protect("198.51.100.20")?;
    let flood = PacedFlood::start(&lab.attacker, "198.51.100.20".parse()?, SERVICE_PORT, FLOOD_PPS, FLOOD_MAX);
    let leg = active_leg(&lab, id, "B")?;
    let errors = leg["errors"].to_string();
    assert!(errors.contains("A: refused by the server: 4.00"), "A's refusal is reported: {errors}");
    assert!(dots_protections_for(&lab.a_d, "198.51.100.20")?.is_empty());
    upstream_drops(&lab, &lab.b_d, id, "198.51.100.20")?;
    flood.stop()?;
    withdrawn_after_the_flood(&lab, &lab.b_d, id, "198.51.100.20")?;
    Ok(())
}

#[test]
fn escalation_to_an_unreachable_owner_asks_nobody_else_and_says_so() -> anyhow::Result<()> {
    // A is dialled at an address where no server listens, and has no fallback.
    let o = Options { a_extra: String::new(), a_server: Some("203.0.113.99".into()), ..Options::default() };
    let lab = EscalationLab::start("mtg-eun", o)?;
    lab.wait_sessions(&["B"])?;
    let id = lab.protect("198.51.100.10")?;
    let flood = PacedFlood::start(&lab.attacker, "198.51.100.10".parse()?, SERVICE_PORT, FLOOD_PPS, Duration::from_secs(30));
    let leg = poll("the leg to report A unreachable", Duration::from_secs(30), || {
        let st = lab.host_d.status()?;
        Ok(legs(&st, id).into_iter().find(|l| l["state"] == "waiting" && l["errors"].to_string().contains("A: server unreachable")))
    })?;
    assert_eq!(leg["chain"], serde_json::json!(["A"]));
    let st = lab.host_d.status()?;
    let a = st["escalation"]["upstreams"].as_array().unwrap().iter().find(|u| u["name"] == "A").cloned().unwrap();
    assert_ne!(a["session"], "up");
    assert!(dots_protections_for(&lab.b_d, "198.51.100.10")?.is_empty(), "a PA prefix never goes to another provider");
    flood.stop()?;
    Ok(())
}
