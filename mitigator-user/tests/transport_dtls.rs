//! The DTLS transport against libcoap's OpenSSL client, and against hand-made packets.

mod transport_common;

use std::net::SocketAddr;
use std::time::Duration;

use mitigator::certs::spki_der_of;
use mitigator::transport::{Credential, DtlsOptions, DtlsServer, PeerInfo, SecurityConfig, Transport};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use transport_common::*;

const PSK: &[(&str, &str)] = &[("alice-psk", "correct horse battery staple"), ("bob-psk", "secret-of-bob")];

/// A DTLS server answering every CoAP request; reports each accepted peer.
struct TestServer {
    addr: SocketAddr,
    peers: mpsc::UnboundedReceiver<PeerInfo>,
}

async fn start(bind: &str, cfg: &SecurityConfig) -> TestServer {
    start_with(bind, cfg, None).await
}

async fn start_with(bind: &str, cfg: &SecurityConfig, cipher_list: Option<&str>) -> TestServer {
    init_tracing();
    let opts = DtlsOptions {
        handshake_timeout: Duration::from_secs(3),
        cipher_list: cipher_list.map(String::from),
        ..DtlsOptions::default()
    };
    let mut server = DtlsServer::bind(bind.parse().unwrap(), cfg, opts).await.unwrap();
    let addr = server.local_addr();
    let (tx, peers) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(mut session) = server.accept().await {
            let _ = tx.send(session.peer().clone());
            tokio::spawn(async move {
                while let Ok(req) = session.recv().await {
                    if let Some(resp) = coap_udp_response(&req) {
                        session.send(&resp).await.unwrap();
                    }
                }
            });
        }
    });
    TestServer { addr, peers }
}

fn uri(addr: SocketAddr) -> String {
    format!("coaps://{}/x", addr)
}

async fn psk_get(addr: SocketAddr, identity: &str, key: &str) -> String {
    coap_client(&["-m", "get", "-B", "5", "-u", identity, "-k", key, &uri(addr)]).await
}

async fn cert_get(addr: SocketAddr, cert: &std::path::Path, key: &std::path::Path, ca: &std::path::Path) -> String {
    let (cert, key, ca) = (cert.to_str().unwrap(), key.to_str().unwrap(), ca.to_str().unwrap());
    coap_client(&["-m", "get", "-B", "5", "-c", cert, "-j", key, "-C", ca, &uri(addr)]).await
}

async fn next_peer(s: &mut TestServer) -> Option<PeerInfo> {
    tokio::time::timeout(Duration::from_secs(1), s.peers.recv()).await.ok().flatten()
}

#[tokio::test]
async fn psk_client_gets_the_payload_and_its_identity_is_known() {
    let pki = pki("dtls-psk");
    let mut s = start("127.0.0.1:0", &security_config(&pki, PSK)).await;
    let out = psk_get(s.addr, "alice-psk", "correct horse battery staple").await;
    assert!(got_payload(&out), "no payload over DTLS/PSK:\n{out}");
    let peer = next_peer(&mut s).await.expect("a session was accepted");
    assert_eq!(peer.credential, Credential::Psk { identity: b"alice-psk".to_vec() });
    assert_eq!(peer.transport, Transport::Dtls);
    assert!(peer.addr.ip().is_loopback());
}

#[tokio::test]
async fn certificate_client_gets_the_payload_and_its_spki_is_known() {
    let pki = pki("dtls-x509");
    let mut s = start("127.0.0.1:0", &security_config(&pki, &[])).await;
    let (_, cert, key) = &pki.clients[0];
    let out = cert_get(s.addr, cert, key, &pki.ca_pem).await;
    assert!(got_payload(&out), "no payload over DTLS/X.509:\n{out}");
    let peer = next_peer(&mut s).await.expect("a session was accepted");
    match peer.credential {
        Credential::Certificate { spki_der, subject } => {
            assert_eq!(spki_der, spki_der_of(&read(cert)).unwrap());
            assert!(subject.contains("CN=alice"), "{subject}");
        }
        other => panic!("expected a certificate credential, got {other:?}"),
    }
}

/// The suites libcoap's OpenSSL client is known to offer, each alone on the server:
/// the handshake can only succeed by negotiating it.
#[tokio::test]
async fn psk_suites_of_libcoap_negotiate_one_by_one() {
    let pki = pki("dtls-suites");
    for suite in ["PSK-AES128-CCM8", "PSK-AES128-GCM-SHA256", "ECDHE-PSK-CHACHA20-POLY1305"] {
        let mut s = start_with("127.0.0.1:0", &security_config(&pki, PSK), Some(suite)).await;
        let out = psk_get(s.addr, "bob-psk", "secret-of-bob").await;
        assert!(got_payload(&out), "no payload with {suite} alone:\n{out}");
        assert!(next_peer(&mut s).await.is_some());
    }
}

#[tokio::test]
async fn ecdsa_suites_negotiate_one_by_one() {
    let pki = pki("dtls-ecdsa-suites");
    for suite in ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-CCM8"] {
        let s = start_with("127.0.0.1:0", &security_config(&pki, &[]), Some(suite)).await;
        let (_, cert, key) = &pki.clients[0];
        let out = cert_get(s.addr, cert, key, &pki.ca_pem).await;
        assert!(got_payload(&out), "no payload with {suite} alone:\n{out}");
    }
}

#[tokio::test]
async fn wrong_psk_key_is_refused_while_others_are_served() {
    let pki = pki("dtls-badpsk");
    let mut s = start("127.0.0.1:0", &security_config(&pki, PSK)).await;
    let (bad, good) = tokio::join!(
        psk_get(s.addr, "alice-psk", "not the right key"),
        psk_get(s.addr, "bob-psk", "secret-of-bob"),
    );
    assert!(!got_payload(&bad), "a wrong PSK key was let in:\n{bad}");
    assert!(got_payload(&good), "the good client was not served:\n{good}");
    let peer = next_peer(&mut s).await.expect("the good client's session");
    assert_eq!(peer.credential, Credential::Psk { identity: b"bob-psk".to_vec() });
    assert!(next_peer(&mut s).await.is_none(), "the bad client got a session");
    let unknown = psk_get(s.addr, "mallory", "whatever").await;
    assert!(!got_payload(&unknown), "an unknown identity was let in:\n{unknown}");
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused() {
    let pki = pki("dtls-ca");
    let other = transport_common::pki("dtls-otherca");
    let mut s = start("127.0.0.1:0", &security_config(&pki, &[])).await;
    let (_, cert, key) = &other.clients[0];
    // The client trusts our server (our CA) but holds a certificate of another CA.
    let out = cert_get(s.addr, cert, key, &pki.ca_pem).await;
    assert!(!got_payload(&out), "a foreign client certificate was let in:\n{out}");
    assert!(next_peer(&mut s).await.is_none());
    let (_, cert, key) = &pki.clients[1];
    let out = cert_get(s.addr, cert, key, &pki.ca_pem).await;
    assert!(got_payload(&out), "a good client was not served afterwards:\n{out}");
}

#[tokio::test]
async fn ipv6_psk_client_gets_the_payload() {
    let pki = pki("dtls-v6");
    let mut s = start("[::1]:0", &security_config(&pki, PSK)).await;
    let out = psk_get(s.addr, "alice-psk", "correct horse battery staple").await;
    assert!(got_payload(&out), "no payload over DTLS/PSK on [::1]:\n{out}");
    assert!(next_peer(&mut s).await.unwrap().addr.is_ipv6());
}

/// A minimal DTLS 1.2 ClientHello without cookie, as a spoofer would send.
fn client_hello() -> Vec<u8> {
    let mut body = vec![0xfe, 0xfd];
    body.extend([0x42u8; 32]); // random
    body.push(0); // session id
    body.push(0); // cookie
    body.extend([0x00, 0x06, 0xc0, 0xa8, 0x00, 0xa8, 0xc0, 0x2b]); // PSK-CCM8, PSK-GCM, ECDHE-ECDSA-GCM
    body.extend([0x01, 0x00]); // null compression
    let len = (body.len() as u32).to_be_bytes();
    let mut hs = vec![1, len[1], len[2], len[3], 0, 0, 0, 0, 0, len[1], len[2], len[3]];
    hs.extend(body);
    let rlen = (hs.len() as u16).to_be_bytes();
    let mut rec = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, rlen[0], rlen[1]];
    rec.extend(hs);
    rec
}

#[tokio::test]
async fn cookieless_client_hello_gets_a_small_hello_verify_request_and_no_session() {
    let pki = pki("dtls-cookie");
    let mut s = start("127.0.0.1:0", &security_config(&pki, PSK)).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let hello = client_hello();
    sock.send_to(&hello, s.addr).await.unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
        .await
        .expect("a HelloVerifyRequest")
        .unwrap();
    let hvr = &buf[..n];
    assert_eq!(hvr[0], 22, "handshake record");
    assert_eq!(hvr[13], 3, "HelloVerifyRequest");
    assert!(n <= hello.len(), "HVR of {n} bytes amplifies a {}-byte ClientHello", hello.len());
    assert!(next_peer(&mut s).await.is_none(), "a session without cookie");
    // Nothing else comes back: no ServerHello, no certificate, no state.
    let more = tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut buf)).await;
    assert!(more.is_err(), "the server sent more than a HelloVerifyRequest");
}

#[tokio::test]
async fn garbage_flood_does_not_stop_a_following_client() {
    let pki = pki("dtls-flood");
    let mut s = start("127.0.0.1:0", &security_config(&pki, PSK)).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let hello = client_hello();
    for i in 0..10_000u32 {
        let d: Vec<u8> = match i % 4 {
            0 => hello.clone(),                                     // cookieless hellos
            1 => i.to_be_bytes().repeat(1 + (i as usize % 50)),     // noise
            2 => { let mut h = hello.clone(); h[60] ^= 0xff; h }  // mangled hellos
            _ => { let mut h = hello.clone(); h.truncate(30); h }   // truncated hellos
        };
        let _ = sock.send_to(&d, s.addr).await;
    }
    assert!(next_peer(&mut s).await.is_none());
    let out = psk_get(s.addr, "alice-psk", "correct horse battery staple").await;
    assert!(got_payload(&out), "the legit client was not served after the flood:\n{out}");
}

// ----- A DTLS client of our own (OpenSSL, blocking, PSK) to drive the session API.

/// A connected UDP socket as the Read/Write that OpenSSL's DTLS client wants.
#[derive(Debug)]
struct UdpIo(std::net::UdpSocket);

impl std::io::Read for UdpIo {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.recv(buf)
    }
}

impl std::io::Write for UdpIo {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.send(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn psk_client(server: SocketAddr, identity: &'static str, key: &'static str) -> openssl::ssl::SslStream<UdpIo> {
    use openssl::ssl::{SslConnector, SslMethod};
    let mut b = SslConnector::builder(SslMethod::dtls()).unwrap();
    b.set_cipher_list("PSK-AES128-CCM8").unwrap();
    b.set_psk_client_callback(move |_, _, id_out, key_out| {
        id_out[..identity.len()].copy_from_slice(identity.as_bytes());
        id_out[identity.len()] = 0;
        key_out[..key.len()].copy_from_slice(key.as_bytes());
        Ok(key.len())
    });
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(server).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut cfg = b.build().configure().unwrap();
    cfg.set_verify_hostname(false);
    cfg.connect("localhost", UdpIo(sock)).expect("DTLS client handshake")
}

/// The session API itself: recv() one datagram, a cloned sender pushes unsolicited
/// datagrams (Observe notifications), and close_notify ends recv() with Closed.
#[tokio::test]
async fn session_recv_sender_and_close_notify() {
    init_tracing();
    let pki = pki("dtls-session");
    let mut server = DtlsServer::bind("127.0.0.1:0".parse().unwrap(), &security_config(&pki, PSK), DtlsOptions::default())
        .await
        .unwrap();
    let addr = server.local_addr();
    let client = tokio::task::spawn_blocking(move || {
        let mut c = psk_client(addr, "alice-psk", "correct horse battery staple");
        std::io::Write::write_all(&mut c, b"ping-1").unwrap();
        let mut buf = [0u8; 256];
        let n = c.ssl_read(&mut buf).unwrap();
        let first = buf[..n].to_vec();
        let n = c.ssl_read(&mut buf).unwrap();
        let second = buf[..n].to_vec();
        c.shutdown().unwrap();
        (first, second)
    });
    let mut session = tokio::time::timeout(Duration::from_secs(5), server.accept()).await.unwrap().unwrap();
    assert_eq!(session.peer().credential, Credential::Psk { identity: b"alice-psk".to_vec() });
    assert_eq!(session.recv().await.unwrap(), b"ping-1");
    session.send(b"reply").await.unwrap();
    let notifier = session.sender();
    tokio::spawn(async move { notifier.send(b"notification").await.unwrap() });
    let (first, second) = client.await.unwrap();
    assert_eq!((first.as_slice(), second.as_slice()), (&b"reply"[..], &b"notification"[..]));
    let end = tokio::time::timeout(Duration::from_secs(3), session.recv()).await.unwrap();
    assert!(end.is_err(), "recv after close_notify: {end:?}");
    assert!(session.send(b"late").await.is_err(), "send after close_notify");
}

/// `client_hello()` with the cookie of a HelloVerifyRequest, as message 1.
fn client_hello_with_cookie(hvr: &[u8]) -> Vec<u8> {
    let cookie = &hvr[28..28 + hvr[27] as usize];
    let plain = client_hello();
    let mut body = plain[25..25 + 35].to_vec(); // version, random, session id len (0)
    body.push(cookie.len() as u8);
    body.extend_from_slice(cookie);
    body.extend_from_slice(&plain[25 + 36..]); // suites, compression
    let len = (body.len() as u32).to_be_bytes();
    let mut hs = vec![1, len[1], len[2], len[3], 0, 1, 0, 0, 0, len[1], len[2], len[3]];
    hs.extend(body);
    let rlen = (hs.len() as u16).to_be_bytes();
    let mut rec = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, rlen[0], rlen[1]];
    rec.extend(hs);
    rec
}

/// Passes the cookie exchange from a fresh socket; returns the socket and whether the
/// server went on with a ServerHello.
async fn echo_cookie_and_stall(server: SocketAddr) -> (UdpSocket, bool) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut buf = [0u8; 4096];
    sock.send_to(&client_hello(), server).await.unwrap();
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf)).await.unwrap().unwrap();
    assert_eq!(buf[13], 3, "HelloVerifyRequest");
    sock.send_to(&client_hello_with_cookie(&buf[..n]), server).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_millis(700), sock.recv_from(&mut buf)).await;
    let server_hello = matches!(answer, Ok(Ok((n, _))) if n > 13 && buf[0] == 22 && buf[13] == 2);
    (sock, server_hello)
}

/// Past the cookie a peer costs a handshake slot: the slots are bounded, and a peer
/// that stalls mid-handshake loses its slot at the deadline.
#[tokio::test]
async fn stalled_handshakes_are_bounded_and_time_out() {
    init_tracing();
    let pki = pki("dtls-stall");
    let opts = DtlsOptions { handshake_timeout: Duration::from_secs(2), max_handshakes: 1, ..DtlsOptions::default() };
    let mut server = DtlsServer::bind("127.0.0.1:0".parse().unwrap(), &security_config(&pki, PSK), opts).await.unwrap();
    let addr = server.local_addr();
    let (_staller, went_on) = echo_cookie_and_stall(addr).await;
    assert!(went_on, "a valid cookie echo must get a ServerHello");
    let (_second, went_on) = echo_cookie_and_stall(addr).await;
    assert!(!went_on, "a second handshake got a slot beyond max_handshakes = 1");
    tokio::time::sleep(Duration::from_secs(2)).await; // the staller's deadline passes
    let (_third, went_on) = echo_cookie_and_stall(addr).await;
    assert!(went_on, "the stalled handshake's slot was not freed by its deadline");
    let accepted = tokio::time::timeout(Duration::from_millis(200), server.accept()).await;
    assert!(accepted.is_err(), "an unfinished handshake produced a session");
}
