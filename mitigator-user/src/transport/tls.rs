//! TLS server of the DOTS signal channel (TCP 4646): rustls, TLS 1.2 and 1.3, mutual
//! X.509 (client certificates must chain to the configured CA).
//!
//! Certificate-only: rustls has no external-PSK support, and libcoap's PSK clients use
//! DTLS anyway. CoAP over TCP framing (RFC 8323, CSM first) is the caller's business:
//! `accept()` hands over the stream right after the handshake.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::credential::certificate_credential;
use super::{PeerInfo, Result, SecurityConfig, Transport, TransportError};

/// Bounds of the TLS server.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// A TCP connection whose handshake is not done by then is closed.
    pub handshake_timeout: Duration,
    /// Concurrent handshakes; connections beyond it are closed at once.
    pub max_handshakes: usize,
    /// Established connections queued for `accept()`.
    pub accept_queue: usize,
    /// ALPN protocols offered: "coap" for the signal channel (RFC 8323
    /// 4.3), "http/1.1" for the data channel's HTTPS.
    pub alpn: Vec<Vec<u8>>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            handshake_timeout: super::DEFAULT_HANDSHAKE_TIMEOUT,
            max_handshakes: 256,
            accept_queue: 128,
            alpn: vec![b"coap".to_vec()],
        }
    }
}

type Accepted = (PeerInfo, TlsStream<TcpStream>);

/// A TLS server. Dropping it stops accepting; established streams live on.
pub struct TlsServer {
    local_addr: SocketAddr,
    accept_rx: mpsc::Receiver<Accepted>,
    acceptor_task: JoinHandle<()>,
}

impl TlsServer {
    pub async fn bind(addr: SocketAddr, cfg: &SecurityConfig, opts: TlsOptions) -> Result<Self> {
        let acceptor = TlsAcceptor::from(Arc::new(server_config(cfg, &opts.alpn)?));
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let (tx, accept_rx) = mpsc::channel(opts.accept_queue.max(1));
        info!(%local_addr, "TLS server listening");
        let acceptor_task = tokio::spawn(accept_loop(listener, acceptor, opts, tx));
        Ok(TlsServer { local_addr, accept_rx, acceptor_task })
    }

    /// The next authenticated connection.
    pub async fn accept(&mut self) -> Result<Accepted> {
        self.accept_rx.recv().await.ok_or(TransportError::Closed)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.acceptor_task.abort();
    }
}

fn server_config(cfg: &SecurityConfig, alpn: &[Vec<u8>]) -> Result<rustls::ServerConfig> {
    cfg.validate()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(ca_roots(cfg)?), provider.clone())
        .build()
        .map_err(|e| TransportError::Config(format!("client verifier: {e}")))?;
    let chain = CertificateDer::pem_slice_iter(&cfg.cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TransportError::Config(format!("cert_pem: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(&cfg.key_pem)
        .map_err(|e| TransportError::Config(format!("key_pem: {e}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    // RFC 8323 section 4.3: ALPN "coap" for CoAP over TLS; "http/1.1" for HTTPS
    // (clients that offer none still connect).
    config.alpn_protocols = alpn.to_vec();
    Ok(config)
}

fn ca_roots(cfg: &SecurityConfig) -> Result<RootCertStore> {
    let pem = cfg
        .ca_pem
        .as_ref()
        .ok_or_else(|| TransportError::Config("TLS needs a CA for client certificates (no PSK over TLS)".into()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| TransportError::Config(format!("ca_pem: {e}")))?;
        roots.add(cert)?;
    }
    Ok(roots)
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, opts: TlsOptions, tx: mpsc::Sender<Accepted>) {
    let handshakes = Arc::new(Semaphore::new(opts.max_handshakes));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            warn!(%peer, "too many TLS handshakes in progress, connection closed");
            continue;
        };
        let (acceptor, tx, deadline) = (acceptor.clone(), tx.clone(), opts.handshake_timeout);
        tokio::spawn(async move {
            let accepted = handshake(acceptor, tcp, peer, deadline).await;
            drop(permit);
            if let Some(accepted) = accepted {
                if tx.try_send(accepted).is_err() {
                    warn!(%peer, "TLS accept queue full, connection closed");
                }
            }
        });
    }
}

/// Runs one handshake under its deadline; None (logged) if the peer is refused.
async fn handshake(acceptor: TlsAcceptor, tcp: TcpStream, peer: SocketAddr, deadline: Duration) -> Option<Accepted> {
    let _ = tcp.set_nodelay(true);
    let stream = match timeout(deadline, acceptor.accept(tcp)).await {
        Err(_) => {
            warn!(%peer, "TLS handshake timed out, connection closed");
            return None;
        }
        Ok(Err(e)) => {
            warn!(%peer, error = %e, "TLS handshake refused");
            return None;
        }
        Ok(Ok(s)) => s,
    };
    match peer_info(&stream, peer) {
        Ok(info) => {
            let (_, conn) = stream.get_ref();
            info!(%peer, credential = ?info.credential, version = ?conn.protocol_version(),
                  suite = ?conn.negotiated_cipher_suite().map(|s| s.suite()), "TLS session established");
            Some((info, stream))
        }
        Err(e) => {
            debug!(%peer, error = %e, "TLS peer without usable certificate");
            None
        }
    }
}

fn peer_info(stream: &TlsStream<TcpStream>, addr: SocketAddr) -> Result<PeerInfo> {
    let (_, conn) = stream.get_ref();
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| TransportError::Config("no client certificate".into()))?;
    let cert = openssl::x509::X509::from_der(leaf)?;
    Ok(PeerInfo { addr, credential: certificate_credential(&cert)?, transport: Transport::Tls })
}
