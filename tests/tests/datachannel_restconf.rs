//! The DOTS data channel's RESTCONF resources with curl and client
//! certificates (RFC 8783 draft 29 §§5-7): create, read, replace, delete
//! of registrations, aliases and ACLs; capabilities; the errors (malformed
//! JSON, unknown members, another client's resource, an ACE the XDP
//! program cannot express), each a RESTCONF error body with the right
//! status, and nothing changed by a refused request.

use mitigator_tests::datachannel::{acl, DROP, ROOT};
use mitigator_tests::signal::SignalLab;

const ALIAS: &str = r#"{"ietf-dots-data-channel:aliases":{"alias":[{"name":"https1","target-protocol":[6],"target-prefix":["203.0.113.10/32","2001:db8:113::10/128"],"target-port-range":[{"lower-port":443}]}]}}"#;

fn acls_body(acl_json: &str) -> String {
    format!(r#"{{"ietf-dots-data-channel:acls":{{"acl":[{acl_json}]}}}}"#)
}

#[test]
fn registration_aliases_acls_and_capabilities_over_https() -> anyhow::Result<()> {
    let lab = SignalLab::start("mtg-dcr", "")?;
    lab.wait_data_channel()?;
    let a = lab.alice_cuid.clone();
    let me = format!("dots-client={a}");

    // Root discovery (RFC 8040 3.1) and capabilities (7.1).
    let r = lab.curl("alice", "GET", "/.well-known/host-meta", None)?;
    assert!(r.status == 200 && r.body.contains("restconf"), "{r:?}");
    let r = lab.curl("alice", "GET", "capabilities", None)?;
    assert_eq!((r.status, r.content_type.as_str()), (200, "application/yang-data+json"), "{r:?}");
    assert_eq!(r.json()["ietf-dots-data-channel:capabilities"]["tcp"]["flags-bitmask"], true);
    assert_eq!(r.json()["ietf-dots-data-channel:capabilities"]["udp"]["length"], true, "udp length (7.1): {r:?}");

    // Not registered yet: aliases have no parent (5.1).
    assert_eq!(lab.curl("alice", "POST", &me, Some(ALIAS))?.status, 404);
    // Register (Figure 11): 201, then 409 resource-denied; PUT (Figure 14) replaces: 204.
    lab.register("alice", &a)?;
    let r = lab.curl("alice", "POST", "", Some(&format!(r#"{{"ietf-dots-data-channel:dots-client":[{{"cuid":"{a}"}}]}}"#)))?;
    assert_eq!((r.status, r.error().0.as_str()), (409, "resource-denied"), "{r:?}");
    let r = lab.curl("alice", "PUT", &me, Some(&format!(r#"{{"ietf-dots-data-channel:dots-client":[{{"cuid":"{a}"}}]}}"#)))?;
    assert_eq!(r.status, 204, "{r:?}");

    // Aliases (6.1-6.3).
    assert_eq!(lab.curl("alice", "POST", &me, Some(ALIAS))?.status, 201);
    let r = lab.curl("alice", "POST", &me, Some(ALIAS))?;
    assert_eq!((r.status, r.error().0.as_str()), (409, "resource-denied"), "an existing alias name: {r:?}");
    let r = lab.curl("alice", "GET", &format!("{me}/aliases?content=all"), None)?;
    let alias = &r.json()["ietf-dots-data-channel:aliases"]["alias"][0];
    assert_eq!(alias["name"], "https1", "{r:?}");
    assert!(alias["pending-lifetime"].as_i64().unwrap() >= 10_079, "kept a week (6.1): {alias}");
    let r = lab.curl("alice", "GET", &format!("{me}/aliases/alias=https1?content=config"), None)?;
    assert!(r.status == 200 && r.json()["ietf-dots-data-channel:alias"][0].get("pending-lifetime").is_none(), "{r:?}");
    let replaced = ALIAS.replace("[6]", "[17]");
    assert_eq!(lab.curl("alice", "PUT", &format!("{me}/aliases/alias=https1"), Some(&replaced))?.status, 204);
    let r = lab.curl("alice", "GET", &format!("{me}/aliases/alias=https1"), None)?;
    assert_eq!(r.json()["ietf-dots-data-channel:alias"][0]["target-protocol"][0], 17, "{r:?}");
    let r = lab.curl("alice", "PUT", &format!("{me}/aliases/alias=other"), Some(&replaced))?;
    assert_eq!(r.status, 400, "the key in the URI must be the body's: {r:?}");
    assert_eq!(lab.curl("alice", "DELETE", &format!("{me}/aliases/alias=https1"), None)?.status, 204);
    assert_eq!(lab.curl("alice", "GET", &format!("{me}/aliases/alias=https1"), None)?.status, 404);
    assert_eq!(lab.curl("alice", "DELETE", &format!("{me}/aliases/alias=https1"), None)?.status, 404);

    // ACLs (7.2-7.4).
    let acl1 = acl("acl1", "immediate", &[("r1", r#"{"ipv4":{"destination-ipv4-network":"203.0.113.10/32","source-ipv4-network":"192.0.2.0/24"}}"#, DROP)]);
    assert_eq!(lab.curl("alice", "POST", &me, Some(&acls_body(&acl1)))?.status, 201);
    assert_eq!(lab.curl("alice", "POST", &me, Some(&acls_body(&acl1)))?.status, 409);
    let r = lab.curl("alice", "GET", &format!("{me}/acls?content=all"), None)?;
    let got = &r.json()["ietf-dots-data-channel:acls"]["acl"][0];
    assert_eq!(got["aces"]["ace"][0]["statistics"]["matched-packets"], "0", "{r:?}");
    assert!(got["pending-lifetime"].as_i64().unwrap() >= 10_079);
    let r = lab.curl("alice", "GET", &format!("{me}/acls/acl=acl1?content=config"), None)?;
    let got = &r.json()["ietf-dots-data-channel:acl"][0];
    assert!(got["aces"]["ace"][0].get("statistics").is_none() && got["aces"]["ace"][0]["matches"].is_object(), "{r:?}");
    let r = lab.curl("alice", "GET", &format!("{me}/acls/acl=acl1?content=non-config"), None)?;
    let got = &r.json()["ietf-dots-data-channel:acl"][0];
    assert!(got["aces"]["ace"][0].get("matches").is_none() && got.get("pending-lifetime").is_some(), "Figure 31: {r:?}");
    let r = lab.curl("alice", "GET", &format!("{me}/acls/acl=acl1/aces/ace=r1"), None)?;
    assert_eq!(r.json()["ietf-dots-data-channel:ace"][0]["statistics"]["matched-octets"], "0", "per-ACE statistics: {r:?}");
    let r = lab.curl("alice", "GET", &format!("{me}/acls?depth=2"), None)?;
    assert_eq!(r.json()["ietf-dots-data-channel:acls"]["acl"][0].get("aces"), None, "depth=2: {r:?}");
    let acl1b = acl1.replace("192.0.2.0/24", "192.0.2.0/25");
    assert_eq!(lab.curl("alice", "PUT", &format!("{me}/acls/acl=acl1"), Some(&acls_body(&acl1b)))?.status, 204);
    let r = lab.curl("alice", "GET", &format!("{me}/acls/acl=acl1"), None)?;
    assert!(r.body.contains("192.0.2.0/25"), "{r:?}");

    // ---- errors: each a RESTCONF error body; nothing changes.
    let before = lab.curl("alice", "GET", &format!("{me}/acls?content=config"), None)?.body;
    let r = lab.curl("alice", "PUT", &format!("{me}/acls/acl=acl1"), Some(r#"{"ietf-dots-data-channel:acls": {"acl": [ {"name": "acl1", "#))?;
    assert_eq!((r.status, r.error().0.as_str(), r.content_type.as_str()), (400, "malformed-message", "application/yang-data+json"), "{r:?}");
    let r = lab.curl("alice", "PUT", &format!("{me}/acls/acl=acl1"), Some(&acls_body(&acl1.replace("\"activation-type\"", "\"colour\":\"red\",\"activation-type\""))))?;
    assert_eq!((r.status, r.error().0.as_str()), (400, "unknown-element"), "{r:?}");
    assert!(r.error().2.contains("colour"), "names the member: {r:?}");
    // An ACE the XDP filter cannot express: 400 naming the ACE and the field.
    let window = acl("acl1", "immediate", &[
        ("ok", r#"{"ipv4":{"destination-ipv4-network":"203.0.113.10/32"}}"#, DROP),
        ("win", r#"{"ipv4":{"destination-ipv4-network":"203.0.113.10/32"},"tcp":{"window-size":1024}}"#, DROP),
    ]);
    let r = lab.curl("alice", "PUT", &format!("{me}/acls/acl=acl1"), Some(&acls_body(&window)))?;
    let (tag, path, msg) = r.error();
    assert_eq!((r.status, tag.as_str()), (400, "invalid-value"), "{r:?}");
    assert!(path.contains("ace=win") && path.contains("window-size") && msg.contains("win"), "{r:?}");
    // A destination outside the client's domain.
    let foreign = acl("acl1", "immediate", &[("x", r#"{"ipv4":{"destination-ipv4-network":"198.51.100.7/32"}}"#, DROP)]);
    let r = lab.curl("alice", "PUT", &format!("{me}/acls/acl=acl1"), Some(&acls_body(&foreign)))?;
    assert!(r.status == 400 && r.body.contains("198.51.100.7"), "{r:?}");
    let r = lab.curl_with(Some("alice"), "PUT", &format!("{ROOT}/{me}/acls/acl=acl1"), Some(&acls_body(&acl1)), "application/json")?;
    assert_eq!(r.status, 415, "{r:?}");
    assert_eq!(lab.curl("alice", "PATCH", &format!("{me}/acls/acl=acl1"), Some(&acls_body(&acl1)))?.status, 405);
    assert_eq!(lab.curl("alice", "GET", &format!("{me}/acls?insert=first"), None)?.status, 400);
    assert_eq!(lab.curl("alice", "GET", &format!("{me}/acls?content=config"), None)?.body, before, "nothing changed");

    // ---- another client's resources: 403; its own data is separate.
    let b = lab.bob_cuid.clone();
    for (m, body) in [("GET", None), ("DELETE", None), ("PUT", Some(acls_body(&acl1)))] {
        let r = lab.curl("bob", m, &format!("{me}/acls/acl=acl1"), body.as_deref())?;
        assert_eq!((r.status, r.error().0.as_str()), (403, "access-denied"), "bob {m} alice's ACL: {r:?}");
    }
    let r = lab.curl("bob", "POST", "", Some(&format!(r#"{{"ietf-dots-data-channel:dots-client":[{{"cuid":"{a}"}}]}}"#)))?;
    assert_eq!(r.status, 403, "registering as another cuid: {r:?}");
    lab.register("bob", &b)?;
    let r = lab.curl("bob", "GET", &format!("dots-client={b}/acls"), None)?;
    assert_eq!(r.json()["ietf-dots-data-channel:acls"]["acl"].as_array().map(Vec::len), Some(0), "{r:?}");
    let r = lab.curl("bob", "GET", "", None)?;
    assert!(!r.body.contains(&a), "the root shows only the caller: {r:?}");
    // A certificate of the CA outside every domain; no certificate at all.
    assert_eq!(lab.curl("mallory", "GET", "capabilities", None)?.status, 403);
    assert!(lab.curl_with(None, "GET", "capabilities", None, "").is_err(), "no client certificate: no TLS session");

    // ---- delete the ACL, then unregister (5.2): everything goes.
    assert_eq!(lab.curl("alice", "DELETE", &format!("{me}/acls/acl=acl1"), None)?.status, 204);
    assert_eq!(lab.curl("alice", "DELETE", &format!("{me}/acls/acl=acl1"), None)?.status, 404);
    assert_eq!(lab.curl("alice", "POST", &me, Some(ALIAS))?.status, 201);
    assert_eq!(lab.curl("alice", "DELETE", &me, None)?.status, 204);
    assert_eq!(lab.curl("alice", "GET", &format!("{me}/aliases"), None)?.status, 404);
    Ok(())
}
