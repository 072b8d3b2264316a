//! `mitigator client ...` as operators and scripts use it: output, state file, and the
//! documented exit codes (0 ok, 2 usage, 3 refused, 4 unreachable, 5 credentials),
//! against the DOTS responder and against libcoap's generic CoAP server (interop of the
//! DTLS and TLS clients with an independent implementation).

mod client_common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use client_common::*;
use dots_proto::coap::Code;

const BIN: &str = env!("CARGO_BIN_EXE_mitigator");

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn run(args: &[&str]) -> Output {
    let out = tokio::process::Command::new(BIN).arg("client").args(args).kill_on_drop(true).output();
    let out = tokio::time::timeout(Duration::from_secs(60), out).await.expect("mitigator client hung").unwrap();
    eprintln!(
        "mitigator client {args:?} -> {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn psk_args(server: SocketAddr, state: &Path) -> Vec<String> {
    vec![
        "--server".into(),
        server.to_string(),
        "--psk-identity".into(),
        PSK_ID.into(),
        "--psk-key".into(),
        hex(PSK_KEY),
        "--transport".into(),
        "dtls".into(),
        "--state".into(),
        state.display().to_string(),
        "--timeout".into(),
        "3".into(),
    ]
}

fn with<'a>(cmd: &'a str, base: &'a [String], extra: &'a [&'a str]) -> Vec<&'a str> {
    let mut v = vec![cmd];
    v.extend(base.iter().map(String::as_str));
    v.extend_from_slice(extra);
    v
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn mitigate_status_withdraw_with_json_output_and_increasing_mids() {
    let dir = scratch("cli-ok");
    let b = Arc::new(Behaviour::default());
    let server = FakeDots::start("127.0.0.1:0".parse().unwrap(), &server_security(&dir), b.clone()).await;
    let base = psk_args(server.addr, &dir.join("state.json"));
    let out =
        run(&with("mitigate", &base, &["--target", "203.0.113.7", "--port", "443", "--proto", "tcp", "--json"])).await;
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(
        (v["mid"].as_u64(), v["code"].as_str(), v["status"].as_u64(), v["lifetime"].as_u64()),
        (Some(1), Some("2.01"), Some(1), Some(3600))
    );
    assert_eq!(v["scope"]["target-prefix"][0], "203.0.113.7/32");
    // A second process continues from the state file.
    let out = run(&with("mitigate", &base, &["--target", "203.0.113.8/32", "--lifetime", "60"])).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("mid 2: 2.01, lifetime 60 s, status 1"), "{out:?}");
    assert_eq!(b.mids(), [1, 2]);
    let out = run(&with("withdraw", &base, &["--mid", "1", "--json"])).await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["status"], 5);
    let out = run(&with("status", &base, &["--json"])).await;
    assert_eq!(out.status.code(), Some(0));
    let all = json(&out);
    assert_eq!(all.as_array().unwrap().len(), 2);
    let out = run(&with("config", &base, &["--show", "--json"])).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(json(&out)["ietf-dots-signal-channel:signal-config"]["mitigating-config"]["heartbeat-interval"].is_object());
}

#[tokio::test]
async fn refused_by_the_server_exits_3_with_the_code() {
    let dir = scratch("cli-refused");
    let b = Arc::new(Behaviour::default());
    *b.refuse_put.lock().unwrap() = Some(Code::CONFLICT);
    let server = FakeDots::start("127.0.0.1:0".parse().unwrap(), &server_security(&dir), b.clone()).await;
    let base = psk_args(server.addr, &dir.join("state.json"));
    let out = run(&with("mitigate", &base, &["--target", "203.0.113.7"])).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("4.09") && stderr(&out).contains("refused by the test"), "{}", stderr(&out));
}

#[tokio::test]
async fn bad_input_gives_clear_errors_and_the_documented_exit_codes() {
    let dir = scratch("cli-bad");
    let state = dir.join("state.json");
    let psk = ["--psk-identity", PSK_ID, "--psk-key", "00ff"];
    // Usage: a bad server address, a bad target, a bad PSK key, lifetime 0.
    let out = run(&[&["mitigate", "--server", "dots:99999", "--target", "203.0.113.7"][..], &psk].concat()).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("bad server address \"dots:99999\""), "{}", stderr(&out));
    let out = run(&[&["mitigate", "--server", "127.0.0.1", "--target", "203.0.113.7/33"][..], &psk].concat()).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("203.0.113.7/33"), "{}", stderr(&out));
    let out = run(&[
        "mitigate",
        "--server",
        "127.0.0.1",
        "--target",
        "203.0.113.7",
        "--psk-identity",
        "x",
        "--psk-key",
        "xyz",
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
    let out =
        run(&[&["mitigate", "--server", "127.0.0.1", "--target", "203.0.113.7", "--lifetime", "0"][..], &psk].concat())
            .await;
    assert_eq!(out.status.code(), Some(2));
    // Credentials: none given, an unreadable certificate.
    let out = run(&["mitigate", "--server", "127.0.0.1", "--target", "203.0.113.7"]).await;
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("no credential"), "{}", stderr(&out));
    let out =
        run(&["status", "--server", "127.0.0.1", "--cert", "/nonexistent.pem", "--key", "/k.pem", "--ca", "/ca.pem"])
            .await;
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("/ca.pem") || stderr(&out).contains("/nonexistent.pem"), "{}", stderr(&out));
    // Unreachable: nobody listens; a name that does not resolve.
    let nobody = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let out = run(&with("status", &psk_args(nobody, &state), &[])).await;
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("unreachable"), "{}", stderr(&out));
    let out =
        run(&[&["status", "--server", "dots.invalid", "--state", state.to_str().unwrap()][..], &psk].concat()).await;
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("cannot resolve dots.invalid"), "{}", stderr(&out));
    // A silent UDP "server" (takes datagrams, never answers): handshake timeout.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let out = run(&with("status", &psk_args(silent.local_addr().unwrap(), &state), &[])).await;
    assert_eq!(out.status.code(), Some(4));
}

#[tokio::test]
async fn wrong_psk_key_exits_5() {
    let dir = scratch("cli-psk");
    let b = Arc::new(Behaviour::default());
    let server = FakeDots::start("127.0.0.1:0".parse().unwrap(), &server_security(&dir), b).await;
    let mut base = psk_args(server.addr, &dir.join("state.json"));
    base[5] = "0badc0de".into();
    let out = run(&with("status", &base, &[])).await;
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("credentials"), "{}", stderr(&out));
}

/// libcoap's generic server: no DOTS resources, so GET /config is 4.04 (the client keeps
/// its defaults) and GET /mitigate is 4.04 (exit 3) -- but the DTLS (PSK) and TLS (X.509)
/// sessions, CoAP framing and the refusal path work against an independent peer.
#[tokio::test]
async fn interop_with_libcoap_server_over_dtls_psk_and_tls_x509() {
    let dir = scratch("cli-libcoap");
    let pki = mitigator::certs::create_dev_pki(&dir, &["localhost".into()], &["alice".into()]).unwrap();
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    // -p P: coap on P, coaps (DTLS) and coaps+tcp (TLS) on P+1.
    let mut server = tokio::process::Command::new("coap-server-openssl")
        .args(["-A", "127.0.0.1", "-p", &port.to_string(), "-k", "correct horse battery staple", "-h", "hint"])
        .args([
            "-c",
            pki.server_pem.to_str().unwrap(),
            "-j",
            pki.server_key_pem.to_str().unwrap(),
            "-C",
            pki.ca_pem.to_str().unwrap(),
        ])
        .kill_on_drop(true)
        .spawn()
        .expect("coap-server-openssl (apt-get install libcoap3-bin)");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server_addr = format!("127.0.0.1:{}", port + 1);
    let state = dir.join("state.json");
    let dtls = [
        "status",
        "--server",
        &server_addr,
        "--psk-identity",
        PSK_ID,
        "--psk-key",
        &hex(PSK_KEY),
        "--transport",
        "dtls",
        "--state",
        state.to_str().unwrap(),
        "--timeout",
        "5",
    ];
    let out = run(&dtls).await;
    assert_eq!(out.status.code(), Some(3), "DTLS/PSK session and a 4.04 refusal");
    assert!(stderr(&out).contains("4.04"), "{}", stderr(&out));
    let (_, cert, key) = &pki.clients[0];
    let tls = [
        "status",
        "--server",
        &server_addr,
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--ca",
        pki.ca_pem.to_str().unwrap(),
        "--transport",
        "tls",
        "--state",
        state.to_str().unwrap(),
        "--timeout",
        "5",
    ];
    let out = run(&tls).await;
    assert_eq!(out.status.code(), Some(3), "TLS/X.509 session and a 4.04 refusal");
    assert!(stderr(&out).contains("4.04"), "{}", stderr(&out));
    // Happy eyeballs with a certificate: DTLS is tried first and wins.
    let auto = [
        "status",
        "--server",
        &server_addr,
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--ca",
        pki.ca_pem.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "--timeout",
        "5",
    ];
    let out = run(&auto).await;
    assert_eq!(out.status.code(), Some(3));
    let _ = server.kill().await;
}
