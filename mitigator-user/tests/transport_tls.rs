//! The TLS transport against libcoap's OpenSSL client (CoAP over TLS, RFC 8323).

mod transport_common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use mitigator::certs::spki_der_of;
use mitigator::transport::{Credential, PeerInfo, SecurityConfig, TlsOptions, TlsServer, Transport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use transport_common::*;

struct TestServer {
    addr: SocketAddr,
    peers: mpsc::UnboundedReceiver<PeerInfo>,
}

async fn start(bind: &str, cfg: &SecurityConfig, handshake_timeout: Duration) -> TestServer {
    init_tracing();
    let opts = TlsOptions { handshake_timeout, ..TlsOptions::default() };
    let mut server = TlsServer::bind(bind.parse().unwrap(), cfg, opts).await.unwrap();
    let addr = server.local_addr();
    let (tx, peers) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((peer, stream)) = server.accept().await {
            let _ = tx.send(peer);
            tokio::spawn(serve_coap_tcp(stream));
        }
    });
    TestServer { addr, peers }
}

/// RFC 8323: our CSM first, then answer each request frame.
async fn serve_coap_tcp<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    if stream.write_all(&csm()).await.is_err() {
        return;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some((frame, used)) = parse_tcp_frame(&buf) {
            buf.drain(..used);
            if let Some(resp) = coap_tcp_response(&frame) {
                if stream.write_all(&resp).await.is_err() {
                    return;
                }
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn tls_get(uri: &str, cert: &Path, key: &Path, ca: &Path) -> String {
    let (cert, key, ca) = (cert.to_str().unwrap(), key.to_str().unwrap(), ca.to_str().unwrap());
    coap_client(&["-m", "get", "-B", "5", "-c", cert, "-j", key, "-C", ca, uri]).await
}

async fn next_peer(s: &mut TestServer) -> Option<PeerInfo> {
    tokio::time::timeout(Duration::from_secs(1), s.peers.recv()).await.ok().flatten()
}

#[tokio::test]
async fn certificate_client_gets_the_payload_over_tls() {
    let pki = pki("tls-x509");
    let mut s = start("127.0.0.1:0", &security_config(&pki, &[]), Duration::from_secs(5)).await;
    let (_, cert, key) = &pki.clients[0];
    let out = tls_get(&format!("coaps+tcp://{}/x", s.addr), cert, key, &pki.ca_pem).await;
    assert!(got_payload(&out), "no payload over TLS:\n{out}");
    let peer = next_peer(&mut s).await.expect("a connection was accepted");
    assert_eq!(peer.transport, Transport::Tls);
    match peer.credential {
        Credential::Certificate { spki_der, subject } => {
            assert_eq!(spki_der, spki_der_of(&read(cert)).unwrap());
            assert!(subject.contains("CN=alice"), "{subject}");
        }
        other => panic!("expected a certificate credential, got {other:?}"),
    }
}

#[tokio::test]
async fn ipv6_certificate_client_gets_the_payload_over_tls() {
    let pki = pki("tls-v6");
    let mut s = start("[::1]:0", &security_config(&pki, &[]), Duration::from_secs(5)).await;
    let (_, cert, key) = &pki.clients[1];
    let out = tls_get(&format!("coaps+tcp://{}/x", s.addr), cert, key, &pki.ca_pem).await;
    assert!(got_payload(&out), "no payload over TLS on [::1]:\n{out}");
    assert!(next_peer(&mut s).await.unwrap().addr.is_ipv6());
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused_over_tls() {
    let pki = pki("tls-ca");
    let other = transport_common::pki("tls-otherca");
    let mut s = start("127.0.0.1:0", &security_config(&pki, &[]), Duration::from_secs(5)).await;
    let (_, cert, key) = &other.clients[0];
    let out = tls_get(&format!("coaps+tcp://{}/x", s.addr), cert, key, &pki.ca_pem).await;
    assert!(!got_payload(&out), "a foreign client certificate was let in:\n{out}");
    assert!(next_peer(&mut s).await.is_none());
}

/// A client that connects and says nothing must not hold up others, and is dropped
/// after the handshake timeout.
#[tokio::test]
async fn silent_client_does_not_block_others_and_is_dropped() {
    let pki = pki("tls-slow");
    let mut s = start("127.0.0.1:0", &security_config(&pki, &[]), Duration::from_secs(1)).await;
    let mut silent = TcpStream::connect(s.addr).await.unwrap();
    let (_, cert, key) = &pki.clients[0];
    let out = tls_get(&format!("coaps+tcp://{}/x", s.addr), cert, key, &pki.ca_pem).await;
    assert!(got_payload(&out), "a silent client blocked a good one:\n{out}");
    assert!(next_peer(&mut s).await.is_some());
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(3), silent.read(&mut byte)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "the silent client was not dropped: {closed:?}");
}

#[test]
fn tls_without_a_ca_is_a_configuration_error() {
    let pki = pki("tls-noca");
    let mut cfg = security_config(&pki, &[("alice", "key")]);
    cfg.ca_pem = None;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt.block_on(TlsServer::bind("127.0.0.1:0".parse().unwrap(), &cfg, TlsOptions::default()));
    assert!(r.is_err(), "TLS must refuse to run without client authentication");
}

/// libcoap negotiates TLS 1.3; TLS 1.2 is checked with a rustls client held to 1.2
/// that speaks RFC 8323 itself: CSM, then a GET, and expects CSM then 2.05.
#[tokio::test]
async fn tls12_client_is_served() {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName};
    use std::sync::Arc;

    let pki = pki("tls12");
    let mut s = start("127.0.0.1:0", &security_config(&pki, &[]), Duration::from_secs(5)).await;
    let (_, cert, key) = &pki.clients[0];
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(&read(&pki.ca_pem)).unwrap()).unwrap();
    let chain = CertificateDer::pem_slice_iter(&read(cert)).collect::<Result<Vec<_>, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_slice(&read(key)).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let tcp = TcpStream::connect(s.addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));

    tls.write_all(&csm()).await.unwrap();
    tls.write_all(&encode_tcp_frame(0x01, &[7, 7], &[0xb1, b'x'])).await.unwrap(); // GET /x
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    while frames.len() < 2 {
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(3), tls.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "server closed early");
        buf.extend_from_slice(&chunk[..n]);
        while let Some((frame, used)) = parse_tcp_frame(&buf) {
            frames.push((frame.code, frame.token, buf[..used].to_vec()));
            buf.drain(..used);
        }
    }
    assert_eq!(frames[0].0, 0xe1, "CSM first");
    assert_eq!((frames[1].0, frames[1].1.as_slice()), (0x45, &[7u8, 7][..]), "2.05 with our token");
    assert!(String::from_utf8_lossy(&frames[1].2).contains(PAYLOAD));
    assert!(next_peer(&mut s).await.is_some());
}
