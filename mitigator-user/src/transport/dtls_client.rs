//! DTLS 1.2 client of the signal channel (OpenSSL, like the server: RFC 9132 section 7.1
//! refuses DTLS 1.0, and OpenSSL 3.0 has no DTLS 1.3). PSK or X.509; with X.509 the
//! server certificate must chain to the configured CA and name the host we dialled
//! (an IP address or a DNS name, RFC 6125).
//!
//! One connected UDP socket per link; OpenSSL reads and writes whole datagrams through
//! the same queue BIO as the server ([`super::dtls`]), and a task moves records between
//! the socket and the link's channels.

use std::net::SocketAddr;
use std::time::Duration;

use foreign_types::ForeignTypeRef;
use openssl::ssl::{ErrorCode, SslConnector, SslMethod, SslStream, SslVersion};
use openssl::x509::X509;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use tracing::{debug, info};

use super::client::{ClientCredential, ClientLink, ClientSecurity};
use super::dtls::{DgramIo, DTLS_CTRL_HANDLE_TIMEOUT};
use super::{Result, Transport, TransportError};

/// Tunables of a DTLS client connection.
#[derive(Debug, Clone)]
pub struct DtlsClientOptions {
    pub handshake_timeout: Duration,
    /// Path MTU for our records; 1232 fits the IPv6 minimum MTU (section 7.3).
    pub mtu: u32,
    /// Replaces the default cipher list (interop tests).
    pub cipher_list: Option<String>,
    /// Source address / interface of the socket.
    pub bind: super::client::LocalBind,
}

impl Default for DtlsClientOptions {
    fn default() -> Self {
        DtlsClientOptions {
            handshake_timeout: super::DEFAULT_HANDSHAKE_TIMEOUT,
            mtu: 1232,
            cipher_list: None,
            bind: Default::default(),
        }
    }
}

/// The suites we offer: the server's lists (PSK-AES128-CCM8 is CoAP's mandatory one,
/// RFC 7252 9.1.3.1), PSK ones only with a PSK and certificate ones only with a cert.
const CERT_SUITES: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:\
ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-CCM8:ECDHE-ECDSA-AES128-CCM:\
ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384";
const PSK_SUITES: &str = "ECDHE-PSK-CHACHA20-POLY1305:PSK-AES128-CCM8:PSK-AES128-GCM-SHA256:\
PSK-AES256-GCM-SHA384:PSK-CHACHA20-POLY1305:PSK-AES128-CCM:ECDHE-PSK-AES128-CBC-SHA256:PSK-AES128-CBC-SHA256";

/// How often OpenSSL gets a chance to retransmit a lost handshake flight.
const RETRANSMIT_TICK: Duration = Duration::from_millis(300);

type Stream = SslStream<DgramIo>;

/// Connects to `server` (`host` is the name the certificate must carry: the dialled
/// host name or IP address), runs the handshake, and returns the link.
pub async fn connect(
    server: SocketAddr,
    host: &str,
    sec: &ClientSecurity,
    opts: &DtlsClientOptions,
) -> Result<ClientLink> {
    sec.validate()?;
    let mut stream = new_stream(host, sec, opts)?;
    let socket = UdpSocket::bind(opts.bind.addr_for(&server)?).await?;
    if let Some(dev) = &opts.bind.interface {
        socket.bind_device(Some(dev.as_bytes()))?;
    }
    socket.connect(server).await?;
    let deadline = Instant::now() + opts.handshake_timeout;
    let mut heard = false;
    match tokio::time::timeout_at(deadline, handshake(&mut stream, &socket, &mut heard)).await {
        // DTLS drops records it cannot authenticate (RFC 6347 4.1.2.7): with a wrong PSK
        // key the server answers our hello and then waits for a Finished it discarded.
        // A server that answered but never finished is refusing our credential.
        Err(_) if heard && past_hello(&stream) => {
            return Err(TransportError::Config("handshake stalled after the server answered: wrong key?".into()))
        }
        Err(_) => return Err(TransportError::Io(std::io::ErrorKind::TimedOut.into())),
        Ok(r) => r?,
    }
    info!(%server, version = stream.ssl().version_str(),
          cipher = stream.ssl().current_cipher().map(|c| c.name()).unwrap_or("?"), "DTLS client session established");
    let (out_tx, out_rx) = mpsc::channel(64);
    let (in_tx, in_rx) = mpsc::channel(64);
    let task = tokio::spawn(pump(stream, socket, out_rx, in_tx, server));
    Ok(ClientLink { transport: Transport::Dtls, peer: server, tx: out_tx, rx: in_rx, task })
}

fn new_stream(host: &str, sec: &ClientSecurity, opts: &DtlsClientOptions) -> Result<Stream> {
    let mut b = SslConnector::builder(SslMethod::dtls())?;
    b.set_min_proto_version(Some(SslVersion::DTLS1_2))?;
    let suites = match &sec.credential {
        ClientCredential::Psk { identity, key } => {
            let (identity, key) = (identity.clone(), key.clone());
            b.set_psk_client_callback(move |_ssl, _hint, id_out, key_out| {
                // OpenSSL wants a NUL-terminated identity.
                if identity.len() >= id_out.len() || key.len() > key_out.len() {
                    return Err(openssl::error::ErrorStack::get());
                }
                id_out[..identity.len()].copy_from_slice(&identity);
                id_out[identity.len()] = 0;
                key_out[..key.len()].copy_from_slice(&key);
                Ok(key.len())
            });
            PSK_SUITES
        }
        ClientCredential::Certificate { cert_pem, key_pem } => {
            let mut chain = X509::stack_from_pem(cert_pem)?.into_iter();
            let leaf = chain.next().ok_or_else(|| TransportError::Config("client certificate PEM is empty".into()))?;
            b.set_certificate(&leaf)?;
            for extra in chain {
                b.add_extra_chain_cert(extra)?;
            }
            let key = openssl::pkey::PKey::private_key_from_pem(key_pem)?;
            b.set_private_key(&key)?;
            b.check_private_key()?;
            CERT_SUITES
        }
    };
    if let Some(ca) = &sec.ca_pem {
        for cert in X509::stack_from_pem(ca)? {
            b.cert_store_mut().add_cert(cert)?;
        }
    }
    b.set_cipher_list(opts.cipher_list.as_deref().unwrap_or(suites))?;
    // The queue BIO cannot ask the kernel for the MTU; we set it below.
    b.set_options(openssl::ssl::SslOptions::NO_QUERY_MTU);
    let mut cfg = b.build().configure()?;
    if matches!(sec.credential, ClientCredential::Psk { .. }) {
        // PSK suites carry no certificate: nothing to check a name against.
        cfg.set_verify_hostname(false);
        cfg.set_use_server_name_indication(false);
    }
    // into_ssl checks `host` as an IP address (X509_VERIFY_PARAM_set1_ip) or a DNS name.
    let mut ssl = cfg.into_ssl(host)?;
    ssl.set_mtu(opts.mtu)?;
    ssl.set_connect_state();
    Ok(SslStream::new(ssl, DgramIo::default())?)
}

async fn flush(stream: &mut Stream, socket: &UdpSocket) -> Result<()> {
    for d in stream.get_mut().outbox.drain(..) {
        socket.send(&d).await?;
    }
    Ok(())
}

/// True once the server's hello arrived (we are past the cookie exchange).
fn past_hello(stream: &Stream) -> bool {
    stream.ssl().version2().is_some() || stream.ssl().current_cipher().is_some()
}

async fn handshake(stream: &mut Stream, socket: &UdpSocket, heard: &mut bool) -> Result<()> {
    let mut buf = vec![0u8; 65_536];
    loop {
        let r = stream.do_handshake();
        flush(stream, socket).await?;
        match r {
            Ok(()) => return Ok(()),
            Err(e) if e.code() == ErrorCode::WANT_READ => {}
            Err(e) => {
                return Err(match e.ssl_error() {
                    Some(stack) => TransportError::OpenSsl(stack.clone()),
                    None => TransportError::Config(format!("DTLS handshake: {e}")),
                })
            }
        }
        match timeout(RETRANSMIT_TICK, socket.recv(&mut buf)).await {
            // ECONNREFUSED (ICMP port unreachable) surfaces here: nobody listens.
            Ok(r) => {
                let n = r?;
                *heard = true;
                stream.get_mut().inbox.push_back(buf[..n].to_vec());
            }
            Err(_) => handle_timeout(stream),
        }
    }
}

/// DTLSv1_handle_timeout: retransmits our last flight if its timer expired.
fn handle_timeout(stream: &Stream) {
    unsafe {
        openssl_sys::SSL_ctrl(stream.ssl().as_ptr(), DTLS_CTRL_HANDLE_TIMEOUT, 0, std::ptr::null_mut());
    }
}

/// Moves records between the socket and the link until either side ends.
async fn pump(
    mut stream: Stream,
    socket: UdpSocket,
    mut out_rx: mpsc::Receiver<Vec<u8>>,
    in_tx: mpsc::Sender<Vec<u8>>,
    server: SocketAddr,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        tokio::select! {
            r = socket.recv(&mut buf) => {
                let n = match r {
                    Ok(n) => n,
                    Err(e) => return debug!(%server, error = %e, "DTLS client socket failed"),
                };
                stream.get_mut().inbox.push_back(buf[..n].to_vec());
                let open = read_records(&mut stream, &in_tx, server).await;
                let _ = flush(&mut stream, &socket).await;
                if !open { return }
            }
            m = out_rx.recv() => {
                let Some(m) = m else {
                    let _ = stream.shutdown();
                    let _ = flush(&mut stream, &socket).await;
                    return;
                };
                if let Err(e) = stream.ssl_write(&m) {
                    return debug!(%server, error = %e, "DTLS client write failed");
                }
                if flush(&mut stream, &socket).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Decrypts what is queued; false once the session is over.
async fn read_records(stream: &mut Stream, in_tx: &mpsc::Sender<Vec<u8>>, server: SocketAddr) -> bool {
    let mut buf = vec![0u8; 65_536];
    loop {
        match stream.ssl_read(&mut buf) {
            Ok(n) => {
                if in_tx.send(buf[..n].to_vec()).await.is_err() {
                    return false;
                }
            }
            Err(e) if e.code() == ErrorCode::WANT_READ => return true,
            Err(e) if e.code() == ErrorCode::ZERO_RETURN => {
                info!(%server, "DTLS close_notify from the server");
                return false;
            }
            Err(e) => {
                info!(%server, error = %e, "DTLS client session failed");
                return false;
            }
        }
    }
}
