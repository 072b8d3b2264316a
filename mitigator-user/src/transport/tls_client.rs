//! TLS client of the signal channel (rustls, TLS 1.3 or 1.2, X.509 only: rustls has no
//! external PSK). The server certificate must chain to the configured CA and name the
//! dialled host. ALPN "coap" (RFC 8323 section 4.3). The link carries raw stream bytes;
//! RFC 8323 framing is the caller's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tracing::{debug, info};

use super::client::{ClientCredential, ClientLink, ClientSecurity};
use super::{Result, Transport, TransportError};

/// Connects over TCP and runs the TLS handshake within `handshake_timeout`.
pub async fn connect(
    server: SocketAddr,
    host: &str,
    sec: &ClientSecurity,
    handshake_timeout: Duration,
    bind: &super::client::LocalBind,
) -> Result<ClientLink> {
    sec.validate()?;
    let config = client_config(sec)?;
    let name = server_name(host)?;
    let attempt = async {
        let local = bind.addr_for(&server)?;
        let sock = if server.is_ipv6() { tokio::net::TcpSocket::new_v6()? } else { tokio::net::TcpSocket::new_v4()? };
        if let Some(dev) = &bind.interface {
            sock.bind_device(Some(dev.as_bytes()))?;
        }
        sock.bind(local)?;
        let tcp: TcpStream = sock.connect(server).await?;
        let _ = tcp.set_nodelay(true);
        TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(unwrap_rustls)
    };
    let stream = match timeout(handshake_timeout, attempt).await {
        Err(_) => return Err(TransportError::Io(std::io::ErrorKind::TimedOut.into())),
        Ok(r) => r?,
    };
    info!(%server, version = ?stream.get_ref().1.protocol_version(), "TLS client session established");
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(64);
    let (in_tx, in_rx) = mpsc::channel(64);
    let task = tokio::spawn(async move {
        let reader = async {
            let mut buf = vec![0u8; 16_384];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) => return debug!(%server, "TLS server closed the connection"),
                    Err(e) => return debug!(%server, error = %e, "TLS client read failed"),
                    Ok(n) => {
                        if in_tx.send(buf[..n].to_vec()).await.is_err() {
                            return;
                        }
                    }
                }
            }
        };
        let writer = async {
            while let Some(m) = out_rx.recv().await {
                if wr.write_all(&m).await.is_err() {
                    return;
                }
            }
            // The link was dropped: close_notify, then FIN.
            let _ = wr.shutdown().await;
        };
        tokio::select! { _ = reader => {}, _ = writer => {} }
    });
    Ok(ClientLink { transport: Transport::Tls, peer: server, tx: out_tx, rx: in_rx, task })
}

fn client_config(sec: &ClientSecurity) -> Result<rustls::ClientConfig> {
    let ClientCredential::Certificate { cert_pem, key_pem } = &sec.credential else {
        return Err(TransportError::Config("TLS needs a certificate: PSK is DTLS only".into()));
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(sec.ca_pem.as_deref().unwrap_or_default()) {
        roots.add(cert.map_err(|e| TransportError::Config(format!("CA PEM: {e}")))?)?;
    }
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| TransportError::Config(format!("client certificate PEM: {e}")))?;
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TransportError::Config(format!("client key PEM: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![b"coap".to_vec()];
    Ok(config)
}

fn server_name(host: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(host.to_string()).map_err(|e| TransportError::Config(format!("server name {host:?}: {e}")))
}

/// tokio-rustls reports handshake failures as io::Error wrapping a rustls::Error: keep
/// them apart from network failures (a refused credential is not an unreachable server).
fn unwrap_rustls(e: std::io::Error) -> TransportError {
    if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
        let inner = e.into_inner().expect("checked above");
        return TransportError::Rustls(*inner.downcast::<rustls::Error>().expect("checked above"));
    }
    TransportError::Io(e)
}
