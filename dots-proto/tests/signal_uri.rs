//! Uri-Path and Uri-Query handling (Table 1, sections 4.4-4.7).

use dots_proto::signal::*;

fn parse(p: &str) -> Result<SignalPath, SignalError> {
    let segs: Vec<&str> = p.trim_start_matches('/').split('/').collect();
    SignalPath::parse(&segs)
}

#[test]
fn mitigate_paths() {
    let p = parse("/.well-known/dots/mitigate/cdid=7eeaf349529eb55ed50113/cuid=dz6pHjaADkaFTbjr0JGBpw/mid=123").unwrap();
    let want = MitigatePath {
        cdid: Some("7eeaf349529eb55ed50113".into()),
        cuid: "dz6pHjaADkaFTbjr0JGBpw".into(),
        mid: Some(123),
    };
    assert_eq!(p, SignalPath::Mitigate(want));
    assert_eq!(p.to_string(), "/.well-known/dots/mitigate/cdid=7eeaf349529eb55ed50113/cuid=dz6pHjaADkaFTbjr0JGBpw/mid=123");
    // GET of all mitigations: no mid.
    let all = parse("/.well-known/dots/mitigate/cuid=dz6pHjaADkaFTbjr0JGBpw").unwrap();
    let SignalPath::Mitigate(m) = &all else { panic!() };
    assert_eq!(m.mid, None);
    assert_eq!(m.require_mid().unwrap_err().code(), ResponseCode::BAD_REQUEST);
    assert_eq!(parse("/.well-known/dots/mitigate/cuid=a/mid=4294967295").unwrap().to_string(), "/.well-known/dots/mitigate/cuid=a/mid=4294967295");
}

#[test]
fn bad_mitigate_paths() {
    let bad = |p: &str, field: &str| {
        let e = parse(p).unwrap_err();
        assert_eq!(e.code(), ResponseCode::BAD_REQUEST, "{p}: {e:?}");
        assert!(e.diagnostic().contains(field), "{p}: {}", e.diagnostic());
    };
    bad("/.well-known/dots/mitigate", "cuid");
    bad("/.well-known/dots/mitigate/mid=1", "cuid");
    bad("/.well-known/dots/mitigate/cuid=", "cuid");
    bad("/.well-known/dots/mitigate/cuid=a/mid=", "mid");
    bad("/.well-known/dots/mitigate/cuid=a/mid=-1", "mid");
    bad("/.well-known/dots/mitigate/cuid=a/mid=+1", "mid");
    bad("/.well-known/dots/mitigate/cuid=a/mid=4294967296", "mid");
    bad("/.well-known/dots/mitigate/cuid=a/mid=1/x", "x");
    // 'mid' MUST follow 'cuid'; 'cdid' MUST precede it.
    bad("/.well-known/dots/mitigate/mid=1/cuid=a", "cuid");
    bad("/.well-known/dots/mitigate/cuid=a/cdid=b", "cdid");
}

#[test]
fn config_and_heartbeat_paths() {
    assert_eq!(parse("/.well-known/dots/config").unwrap(), SignalPath::Config { sid: None });
    assert_eq!(parse("/.well-known/dots/config/sid=123").unwrap(), SignalPath::Config { sid: Some(123) });
    assert_eq!(SignalPath::Config { sid: Some(123) }.to_segments(), [".well-known", "dots", "config", "sid=123"]);
    assert_eq!(parse("/.well-known/dots/hb").unwrap(), SignalPath::Heartbeat);
    assert_eq!(SignalPath::Heartbeat.to_string(), "/.well-known/dots/hb");
    for p in ["/.well-known/dots/config/cuid=a", "/.well-known/dots/config/sid=1/x", "/.well-known/dots/hb/cuid=a", "/.well-known/dots/config/sid=x"] {
        assert_eq!(parse(p).unwrap_err().code(), ResponseCode::BAD_REQUEST, "{p}");
    }
    for p in ["/.well-known/dots/telemetry", "/.well-known/core", "/dots/hb", "/"] {
        assert_eq!(parse(p).unwrap_err().code(), ResponseCode::NOT_FOUND, "{p}");
    }
}

#[test]
fn content_query() {
    assert_eq!(Content::from_queries(&[]).unwrap(), Content::All);
    assert_eq!(Content::from_queries(&["c=c"]).unwrap(), Content::Config);
    assert_eq!(Content::from_queries(&["c=n", "other=1"]).unwrap(), Content::NonConfig);
    assert_eq!(Content::from_queries(&["c=a"]).unwrap(), Content::All);
    assert_eq!(Content::from_queries(&["c=x"]).unwrap_err().code(), ResponseCode::BAD_REQUEST);
    assert!(Content::from_queries(&["c=c", "c=n"]).is_err());
    assert_eq!(Content::NonConfig.as_query(), "c=n");
}

#[test]
fn cuid_is_22_base64url_chars_of_the_sha256_prefix() {
    let c = cuid_from_spki(&[0x30, 0x59, 0x30, 0x13]);
    assert_eq!(c.len(), 22);
    assert!(c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_ne!(c, cuid_from_psk_identity(b"client1"));
    assert_eq!(cuid_from_psk_identity(b"abc"), "ungWv48Bz-pBQUDeXa4iIw");
}
