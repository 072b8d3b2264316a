//! Aliases and ACLs survive a daemon restart (RFC 8783: kept at least
//! 10,080 minutes after the client was last seen), and a signal-channel
//! mitigation names its target by an alias created on the data channel
//! (RFC 9132 4.4.1.3).

use std::time::Duration;

use dots_proto::coap::Code;
use dots_proto::signal::{Lifetime, MitigationScope, Scope, SignalBody, Target};
use mitigator_tests::datachannel::{acl, DROP};
use mitigator_tests::signal::{diagnostic, dots_protections, mitigate_path, wait_for, SignalLab};
use mitigator_tests::traffic::{udp_burst, UdpCounter};

const ALIAS: &str = r#"{"ietf-dots-data-channel:aliases":{"alias":[{"name":"web","target-prefix":["203.0.113.10/32"],"target-protocol":[17],"target-port-range":[{"lower-port":9999}]}]}}"#;

fn by_alias(names: &[&str]) -> MitigationScope {
    MitigationScope {
        scopes: vec![Scope {
            target: Target { alias_name: names.iter().map(|s| s.to_string()).collect(), ..Target::default() },
            lifetime: Some(Lifetime::Seconds(600)),
            ..Scope::default()
        }],
    }
}

#[test]
fn aliases_and_acls_survive_a_restart_and_an_alias_drives_a_mitigation() -> anyhow::Result<()> {
    let mut lab = SignalLab::start("mtg-dcd", "")?;
    lab.wait_data_channel()?;
    let a = lab.alice_cuid.clone();
    let me = format!("dots-client={a}");
    lab.register("alice", &a)?;
    assert_eq!(lab.curl("alice", "POST", &me, Some(ALIAS))?.status, 201);
    let rule = acl("block", "immediate", &[("d", r#"{"ipv4":{"destination-ipv4-network":"203.0.113.10/32"},"udp":{"destination-port-range-or-operator":{"port":7030}}}"#, DROP)]);
    lab.put_acl("alice", &a, &rule)?;
    let c7030 = UdpCounter::start(&lab.host, false, 7030)?;
    udp_burst(&lab.attacker, lab.host.addr(false), 7030, 0, 40, 64)?;
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c7030.received(), 0);
    let before = lab.curl("alice", "GET", &format!("{me}?content=config"), None)?.body;

    // kill -9 and start again: everything is restored from the store.
    lab.daemon.kill9();
    lab.daemon.spawn()?;
    wait_for("the restarted data channel", Duration::from_secs(20), || Ok(lab.curl("alice", "GET", "capabilities", None).ok().filter(|r| r.status == 200)))?;
    let after = lab.curl("alice", "GET", &format!("{me}?content=config"), None)?.body;
    assert_eq!(after, before, "registration, aliases and ACLs restored");
    let r = lab.curl("alice", "GET", &format!("{me}/aliases/alias=web"), None)?;
    assert!(r.json()["ietf-dots-data-channel:alias"][0]["pending-lifetime"].as_i64().unwrap() >= 10_079, "{r:?}");
    udp_burst(&lab.attacker, lab.host.addr(false), 7030, 0, 10, 64)?;
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c7030.received(), 0, "the ACL is enforced after the restart");
    assert_eq!(lab.ace_packets("alice", &a, "block", "d")?, 50, "counters carried across the restart");

    // A mitigation by alias-name: the alias's prefix, protocol and port.
    let mut s = wait_for("the restarted signal channel", Duration::from_secs(20), || Ok(lab.tls_client("alice", false).ok()))?;
    let r = s.put(&mitigate_path(&a, Some(1)), &by_alias(&["web"]), false)?;
    assert_eq!(r.code, Code::CREATED, "{}", diagnostic(&r));
    let p = dots_protections(&lab.daemon)?;
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0]["spec"]["prefixes"][0], "203.0.113.10/32", "{p:?}");
    let c9999 = UdpCounter::start(&lab.host, false, 9999)?;
    udp_burst(&lab.attacker, lab.host.addr(false), 9999, 0, 30, 64)?;
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c9999.received(), 0, "the alias's target is mitigated");
    let r = s.get(&mitigate_path(&a, Some(1)))?;
    let body = MitigationScope::from_cbor(&r.payload)?.value;
    assert_eq!(body.scopes[0].target.target_port_range[0].lower_port, 9999, "alias ports appended (4.4.1.3)");

    // An alias the client did not create: 4.00 naming it; bob cannot use alice's.
    let r = s.put(&mitigate_path(&a, Some(2)), &by_alias(&["nope"]), false)?;
    assert!(r.code == Code::BAD_REQUEST && diagnostic(&r).contains("nope"), "{}", diagnostic(&r));
    let mut b = lab.tls_client("bob", false)?;
    let r = b.put(&mitigate_path(&lab.bob_cuid, Some(1)), &by_alias(&["web"]), false)?;
    assert_eq!(r.code, Code::BAD_REQUEST, "{}", diagnostic(&r));
    Ok(())
}
