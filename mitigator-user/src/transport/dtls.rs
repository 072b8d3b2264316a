//! DTLS server of the DOTS signal channel (UDP 4646): many peers on one socket.
//!
//! Why OpenSSL (the `openssl` crate over Debian's libssl3) and not a pure-Rust DTLS:
//! - it is what our main peer, libcoap (`coap-client-openssl`), uses, so suites,
//!   extensions and quirks line up; this was proven against libcoap 4.3.1 before
//!   building on it (tests/transport_dtls.rs: DTLS 1.2 with PSK-AES128-CCM8 / PSK with
//!   ECDHE, and ECDHE-ECDSA-AES256-GCM-SHA384 with mutual X.509);
//! - it has everything RFC 9132 section 7 asks of us in one well-kept, audited library:
//!   PSK (RFC 4279), client-certificate verification, stateless cookies through
//!   `DTLSv1_listen`, replay detection, session tickets;
//! - `webrtc-dtls`, the pure-Rust candidate, serves through webrtc-util's UDP listener,
//!   which creates a connection (with its buffer) per source address on the first
//!   ClientHello and queues it in a 128-deep backlog: state before the cookie is
//!   verified, which spoofed hellos fill; the very thing a DDoS mitigator must not do.
//!
//! OpenSSL 3.0 has no DTLS 1.3, so this is DTLS 1.2 only (1.0 refused, RFC 9132 7.1).
//!
//! Shape:
//! ```text
//! UdpSocket ─▶ demux task ─ handshaking peer? ─▶ its channel ─▶ peer task (SslStream over DgramIo,
//!                  │                                              deadline, permit) ─┐ keys, last flight
//!                  ├─ established peer? ─▶ dtls_record::Opener ─▶ DtlsSession  ◀────┘ (the Ssl is freed)
//!                  │                         DtlsSender ─▶ dtls_record::Sealer ─▶ UdpSocket
//!                  └─ unknown: one shared Listener ─▶ DTLSv1_listen (HelloVerifyRequest
//!                     from an HMAC of the address; no per-peer state)
//! ```
//! A peer gets a task, a channel and an `Ssl` only once its ClientHello echoes a valid
//! cookie, i.e. it proved it receives packets at its source address: spoofed floods
//! cost one HMAC each and get an answer no larger than what they sent.
//!
//! Once the handshake is over the `Ssl` is dropped: an idle OpenSSL DTLS connection
//! holds tens of kilobytes (handshake buffers, retransmission queue, caches), which
//! made 10,000 sessions cost over 600 MiB. What the session still needs (its record
//! keys, epoch, sequence numbers, replay window: `dtls_record`) stays in the demux
//! (reading) and in the session's senders (writing), and the peer task ends. Our last
//! handshake flight is kept until the peer's first record of data shows it arrived:
//! a client that lost it sends its Finished again, and gets the flight again, as
//! OpenSSL would do.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::raw::c_int;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use foreign_types::ForeignTypeRef;
use openssl::ex_data::Index;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use openssl::ssl::{
    ErrorCode, Ssl, SslContext, SslContextBuilder, SslMethod, SslMode, SslOptions, SslRef, SslStream,
    SslVerifyMode, SslVersion,
};
use openssl::x509::X509;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{timeout, timeout_at, Instant};
use tracing::{debug, info, warn};

use super::credential::certificate_credential;
use super::dtls_record::{self as record, Inbound, Opener, Sealer, Suite};
use super::{Credential, PeerInfo, Result, SecurityConfig, Transport, TransportError};

/// Tunables of the DTLS server. All but `cipher_list` bound what the server keeps:
/// every one of them is a memory bound under attack.
#[derive(Debug, Clone)]
pub struct DtlsOptions {
    /// OpenSSL cipher list replacing the default (interop checks, tests); the default
    /// offers PSK suites only with a PSK table and certificate suites only with a CA.
    pub cipher_list: Option<String>,
    /// A handshake not finished by then is dropped (slow or half-open client).
    pub handshake_timeout: Duration,
    /// Concurrent handshakes (peers past the cookie, not yet authenticated).
    pub max_handshakes: usize,
    /// Peers with state (handshaking or established).
    pub max_sessions: usize,
    /// Datagrams queued per peer before newer ones are dropped.
    pub peer_queue: usize,
    /// Sessions queued for `accept()`.
    pub accept_queue: usize,
    /// Path MTU for our records; 1232 fits the IPv6 minimum MTU (RFC 9132 section 7.3).
    pub mtu: u32,
}

impl Default for DtlsOptions {
    fn default() -> Self {
        DtlsOptions {
            cipher_list: None,
            handshake_timeout: super::DEFAULT_HANDSHAKE_TIMEOUT,
            max_handshakes: 256,
            max_sessions: 10_000,
            peer_queue: 64,
            accept_queue: 128,
            mtu: 1232,
        }
    }
}

/// A DTLS server on one UDP socket. Dropping it stops the demultiplexer, which closes
/// every session.
pub struct DtlsServer {
    local_addr: SocketAddr,
    accept_rx: mpsc::Receiver<DtlsSession>,
    demux: JoinHandle<()>,
}

impl DtlsServer {
    /// Binds `addr` (IPv4 or IPv6) and starts serving handshakes.
    pub async fn bind(addr: SocketAddr, cfg: &SecurityConfig, opts: DtlsOptions) -> Result<Self> {
        let ctx = build_context(cfg, opts.cipher_list.as_deref())?;
        let socket = Arc::new(UdpSocket::bind(addr).await?);
        let local_addr = socket.local_addr()?;
        let (accept_tx, accept_rx) = mpsc::channel(opts.accept_queue.max(1));
        let demux = Demux::new(socket, ctx, opts, accept_tx)?;
        info!(%local_addr, "DTLS server listening");
        Ok(DtlsServer { local_addr, accept_rx, demux: tokio::spawn(demux.run()) })
    }

    /// The next authenticated session.
    pub async fn accept(&mut self) -> Result<DtlsSession> {
        self.accept_rx.recv().await.ok_or(TransportError::Closed)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for DtlsServer {
    fn drop(&mut self) {
        self.demux.abort();
    }
}

/// One authenticated DTLS peer.
pub struct DtlsSession {
    peer: PeerInfo,
    incoming: mpsc::Receiver<Vec<u8>>,
    sender: DtlsSender,
}

impl DtlsSession {
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    /// One decrypted datagram; `Err(Closed)` once the peer sent close_notify or an alert.
    pub async fn recv(&mut self) -> Result<Vec<u8>> {
        self.incoming.recv().await.ok_or(TransportError::Closed)
    }

    /// Sends one datagram (one DTLS record).
    pub async fn send(&self, data: &[u8]) -> Result<()> {
        self.sender.send(data).await
    }

    /// A handle that sends on this session from elsewhere (Observe notifications).
    pub fn sender(&self) -> DtlsSender {
        self.sender.clone()
    }
}

/// Sends datagrams on a session; the session closes when it and all senders are gone.
#[derive(Clone)]
pub struct DtlsSender {
    link: Arc<WriteLink>,
}

impl DtlsSender {
    pub async fn send(&self, data: &[u8]) -> Result<()> {
        self.link.send(data).await
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.link.peer
    }
}

/// The writing half of an established session, shared by its senders. The last one
/// dropped sends close_notify (RFC 5246 section 7.2.1).
struct WriteLink {
    /// None once the session is closed (the peer's close_notify or fatal alert).
    sealer: Mutex<Option<Sealer>>,
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
}

impl WriteLink {
    async fn send(&self, data: &[u8]) -> Result<()> {
        let rec = match self.sealer.lock().unwrap().as_mut() {
            Some(sealer) => sealer.seal_data(data).map_err(|_| TransportError::Closed)?,
            None => return Err(TransportError::Closed),
        };
        self.socket.send_to(&rec, self.peer).await?;
        Ok(())
    }

    /// Nothing more may be sent; answers the peer's close_notify with ours if `reply`.
    fn close(&self, reply: bool) {
        let sealer = self.sealer.lock().unwrap().take();
        if let (true, Some(mut sealer)) = (reply, sealer) {
            self.send_close_notify(&mut sealer);
        }
    }

    /// Best effort and without waiting: a full socket buffer loses it, as a lost
    /// datagram would.
    fn send_close_notify(&self, sealer: &mut Sealer) {
        if let Ok(rec) = sealer.close_notify() {
            let _ = self.socket.try_send_to(&rec, self.peer);
        }
    }
}

impl Drop for WriteLink {
    fn drop(&mut self) {
        if let Some(mut sealer) = self.sealer.get_mut().unwrap().take() {
            self.send_close_notify(&mut sealer);
        }
    }
}

// ---------------------------------------------------------------------------------
// OpenSSL context

/// DTLS 1.2 suites: what libcoap's OpenSSL build offers (PSK-AES128-CCM8 being the CoAP
/// mandatory one, RFC 7252 9.1.3.1) plus AEAD ECDHE suites. PSK suites are offered only
/// with a PSK table and certificate suites only with a CA, so that no suite lets a
/// client in without a credential.
const CERT_SUITES: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:\
ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-CCM8:ECDHE-ECDSA-AES128-CCM";
/// AEAD suites only: they are what `dtls_record` serves after the handshake (CBC's
/// MAC-then-encrypt is left out on purpose).
const PSK_SUITES: &str = "ECDHE-PSK-CHACHA20-POLY1305:\
PSK-AES128-GCM-SHA256:PSK-AES256-GCM-SHA384:PSK-CHACHA20-POLY1305:PSK-AES128-CCM8:\
PSK-AES128-CCM";

fn build_context(cfg: &SecurityConfig, cipher_list: Option<&str>) -> Result<SslContext> {
    cfg.validate()?;
    let mut b = SslContextBuilder::new(SslMethod::dtls())?;
    b.set_min_proto_version(Some(SslVersion::DTLS1_2))?;
    // The custom BIO cannot ask the kernel for the MTU; we set it per Ssl.
    b.set_options(SslOptions::NO_QUERY_MTU);
    // Read and write buffers only while a record is in flight, not for the life of the Ssl.
    b.set_mode(SslMode::RELEASE_BUFFERS);
    // The Ssl is gone after the handshake: nothing could renegotiate.
    b.set_options(SslOptions::NO_RENEGOTIATION);
    set_own_certificate(&mut b, cfg)?;
    let suites = set_client_auth(&mut b, cfg)?;
    b.set_cipher_list(cipher_list.unwrap_or(&suites))?;
    set_cookie_callbacks(&mut b)?;
    Ok(b.build())
}

fn set_own_certificate(b: &mut SslContextBuilder, cfg: &SecurityConfig) -> Result<()> {
    let mut chain = X509::stack_from_pem(&cfg.cert_pem)?.into_iter();
    let leaf = chain.next().ok_or_else(|| TransportError::Config("cert_pem is empty".into()))?;
    b.set_certificate(&leaf)?;
    for extra in chain {
        b.add_extra_chain_cert(extra)?;
    }
    let key = PKey::private_key_from_pem(&cfg.key_pem)?;
    b.set_private_key(&key)?;
    b.check_private_key()?;
    Ok(())
}

/// Installs the CA store and the PSK table; returns the cipher list they allow.
fn set_client_auth(b: &mut SslContextBuilder, cfg: &SecurityConfig) -> Result<String> {
    let cas = cfg.ca_certs()?;
    let mut suites = Vec::new();
    if !cas.is_empty() {
        for ca in cas {
            b.cert_store_mut().add_cert(ca)?;
        }
        let mode = SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT;
        b.set_verify_callback(mode, |ok, chain| {
            if !ok {
                warn!(error = %chain.error(), depth = chain.error_depth(), "DTLS client certificate refused");
            }
            ok
        });
        suites.push(CERT_SUITES);
    }
    if !cfg.psk.is_empty() {
        let table = cfg.psk.clone();
        b.set_psk_server_callback(move |_ssl, identity, out| Ok(psk_lookup(&table, identity, out)));
        suites.push(PSK_SUITES);
    }
    if suites.is_empty() {
        return Err(TransportError::Config("DTLS needs a CA or a PSK table to authenticate clients".into()));
    }
    Ok(suites.join(":"))
}

/// Copies the key of `identity` into `out`; 0 (unknown identity) fails the handshake.
fn psk_lookup(table: &[(Vec<u8>, Vec<u8>)], identity: Option<&[u8]>, out: &mut [u8]) -> usize {
    let identity = identity.unwrap_or_default();
    match table.iter().find(|(id, _)| id == identity) {
        Some((_, key)) if key.len() <= out.len() => {
            out[..key.len()].copy_from_slice(key);
            key.len()
        }
        _ => {
            warn!(identity = %String::from_utf8_lossy(identity), "DTLS PSK identity refused");
            0
        }
    }
}

// ---------------------------------------------------------------------------------
// Cookies: HMAC-SHA256(secret, peer address), secret random per server.

/// Where the cookie callbacks find the peer address: each Ssl carries a cell that the
/// demultiplexer fills before handing it a datagram.
type PeerCell = Arc<Mutex<Option<SocketAddr>>>;

fn peer_cell_index() -> Index<Ssl, PeerCell> {
    static INDEX: OnceLock<Index<Ssl, PeerCell>> = OnceLock::new();
    *INDEX.get_or_init(|| Ssl::new_ex_index().expect("OpenSSL ex_data index"))
}

const COOKIE_LEN: usize = 16;

fn set_cookie_callbacks(b: &mut SslContextBuilder) -> Result<()> {
    let mut secret = [0u8; 32];
    openssl::rand::rand_bytes(&mut secret)?;
    let key = PKey::hmac(&secret)?;
    let verify_key = key.clone();
    b.set_cookie_generate_cb(move |ssl, out| {
        let cookie = cookie_for(&key, ssl)?;
        out[..COOKIE_LEN].copy_from_slice(&cookie);
        Ok(COOKIE_LEN)
    });
    b.set_cookie_verify_cb(move |ssl, cookie| match cookie_for(&verify_key, ssl) {
        Ok(expected) => cookie.len() == COOKIE_LEN && openssl::memcmp::eq(cookie, &expected),
        Err(_) => false,
    });
    Ok(())
}

fn cookie_for(key: &PKey<openssl::pkey::Private>, ssl: &SslRef) -> Result<[u8; COOKIE_LEN], openssl::error::ErrorStack> {
    let addr = ssl
        .ex_data(peer_cell_index())
        .and_then(|cell| *cell.lock().unwrap())
        .ok_or_else(openssl::error::ErrorStack::get)?;
    let mut signer = Signer::new(MessageDigest::sha256(), key)?;
    match addr {
        SocketAddr::V4(a) => signer.update(&a.ip().octets())?,
        SocketAddr::V6(a) => signer.update(&a.ip().octets())?,
    }
    signer.update(&addr.port().to_be_bytes())?;
    let mac = signer.sign_to_vec()?;
    let mut cookie = [0u8; COOKIE_LEN];
    cookie.copy_from_slice(&mac[..COOKIE_LEN]);
    Ok(cookie)
}

// ---------------------------------------------------------------------------------
// The datagram BIO: OpenSSL reads one queued datagram per read and each write is one
// datagram, so record boundaries survive (a stream-like memory BIO would glue them).

#[derive(Default)]
pub(super) struct DgramIo {
    pub(super) inbox: VecDeque<Vec<u8>>,
    pub(super) outbox: Vec<Vec<u8>>,
}

impl Read for DgramIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let d = self.inbox.pop_front().ok_or(io::ErrorKind::WouldBlock)?;
        let n = d.len().min(buf.len());
        buf[..n].copy_from_slice(&d[..n]);
        Ok(n)
    }
}

impl Write for DgramIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outbox.push(buf.to_vec());
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

type DtlsStream = SslStream<DgramIo>;

/// A fresh server-side stream with its peer cell and MTU.
fn new_stream(ctx: &SslContext, mtu: u32) -> Result<(DtlsStream, PeerCell)> {
    let mut ssl = Ssl::new(ctx)?;
    let cell = PeerCell::default();
    ssl.set_ex_data(peer_cell_index(), cell.clone());
    ssl.set_mtu(mtu)?;
    ssl.set_accept_state();
    Ok((SslStream::new(ssl, DgramIo::default())?, cell))
}

async fn send_outbox(stream: &mut DtlsStream, socket: &UdpSocket, peer: SocketAddr) {
    for d in stream.get_mut().outbox.drain(..) {
        if let Err(e) = socket.send_to(&d, peer).await {
            debug!(%peer, error = %e, "DTLS send failed");
        }
    }
}

// ---------------------------------------------------------------------------------
// Stateless listener

mod ffi_listen {
    use openssl_sys::SSL;
    use std::os::raw::{c_int, c_void};
    /// Opaque `BIO_ADDR` (openssl-sys does not export it).
    #[allow(non_camel_case_types)]
    pub type BIO_ADDR = c_void;
    extern "C" {
        // In libssl/libcrypto 1.1+, not bound by openssl-sys.
        pub fn DTLSv1_listen(s: *mut SSL, client: *mut BIO_ADDR) -> c_int;
        pub fn BIO_ADDR_new() -> *mut BIO_ADDR;
        pub fn BIO_ADDR_free(a: *mut BIO_ADDR);
    }
}

/// An owned `BIO_ADDR`, which `DTLSv1_listen` insists on filling.
struct BioAddr(*mut ffi_listen::BIO_ADDR);

// Owned, and only touched by the demux task.
unsafe impl Send for BioAddr {}

impl Drop for BioAddr {
    fn drop(&mut self) {
        unsafe { ffi_listen::BIO_ADDR_free(self.0) }
    }
}

/// One Ssl reused for every datagram from unknown peers. `DTLSv1_listen` answers a
/// ClientHello without a valid cookie with a HelloVerifyRequest and forgets it; when the
/// cookie verifies, this Ssl has become that peer's and is handed over.
struct Listener {
    stream: DtlsStream,
    cell: PeerCell,
    addr: BioAddr,
}

impl Listener {
    fn new(ctx: &SslContext, mtu: u32) -> Result<Self> {
        let (stream, cell) = new_stream(ctx, mtu)?;
        let addr = unsafe { ffi_listen::BIO_ADDR_new() };
        if addr.is_null() {
            return Err(openssl::error::ErrorStack::get().into());
        }
        Ok(Listener { stream, cell, addr: BioAddr(addr) })
    }

    /// Feeds one datagram from `peer`; true if it was a ClientHello with a valid cookie.
    /// Whatever OpenSSL wants sent (a HelloVerifyRequest) is left in the outbox.
    fn offer(&mut self, peer: SocketAddr, dgram: &[u8]) -> bool {
        *self.cell.lock().unwrap() = Some(peer);
        let io = self.stream.get_mut();
        io.inbox.clear();
        io.outbox.clear();
        io.inbox.push_back(dgram.to_vec());
        let rc = unsafe { ffi_listen::DTLSv1_listen(self.stream.ssl().as_ptr(), self.addr.0) };
        if rc < 0 {
            debug!(%peer, error = %openssl::error::ErrorStack::get(), "DTLSv1_listen failed");
        }
        rc == 1
    }
}

// ---------------------------------------------------------------------------------
// Demultiplexer

/// What the demultiplexer knows of a peer with state.
enum Peer {
    /// Its task owns the `Ssl` and shakes hands.
    Handshake(mpsc::Sender<Vec<u8>>),
    Established(Box<Established>),
}

impl Peer {
    /// False once nobody is left to use this state.
    fn alive(&self) -> bool {
        match self {
            Peer::Handshake(tx) => !tx.is_closed(),
            Peer::Established(e) => !e.app_tx.is_closed() || e.link.strong_count() > 0,
        }
    }
}

/// The reading half of an established session.
struct Established {
    opener: Opener,
    app_tx: mpsc::Sender<Vec<u8>>,
    /// The writing half, owned by the session and its senders.
    link: Weak<WriteLink>,
    /// Our last handshake flight, until the peer's first data shows it arrived.
    flight: Option<Flight>,
}

struct Flight {
    datagrams: Box<[Vec<u8>]>,
    /// Forgotten after this even if the peer never sends data (an idle session).
    until: Instant,
}

/// A peer task's handshake is over: the keys and the rest move to the demultiplexer.
struct Handoff {
    addr: SocketAddr,
    established: Established,
    /// Datagrams that reached the peer task's queue after its last read.
    queued: mpsc::Receiver<Vec<u8>>,
}

/// How long our last flight is kept for a peer that does not send data; a client
/// retransmits within its handshake timeout, so this bounds what a lost flight needs.
const FLIGHT_KEPT: Duration = super::DEFAULT_HANDSHAKE_TIMEOUT;
/// How often state that nobody uses any more is swept out of the peer table.
const SWEEP: Duration = Duration::from_secs(10);

struct Demux {
    socket: Arc<UdpSocket>,
    ctx: SslContext,
    opts: DtlsOptions,
    accept_tx: mpsc::Sender<DtlsSession>,
    handoff_tx: mpsc::UnboundedSender<Handoff>,
    handoff_rx: mpsc::UnboundedReceiver<Handoff>,
    peers: HashMap<SocketAddr, Peer>,
    listener: Listener,
    handshakes: Arc<Semaphore>,
}

impl Demux {
    fn new(
        socket: Arc<UdpSocket>,
        ctx: SslContext,
        opts: DtlsOptions,
        accept_tx: mpsc::Sender<DtlsSession>,
    ) -> Result<Self> {
        let listener = Listener::new(&ctx, opts.mtu)?;
        let handshakes = Arc::new(Semaphore::new(opts.max_handshakes));
        // Unbounded, yet bounded by the handshake permits: one handoff per handshake.
        let (handoff_tx, handoff_rx) = mpsc::unbounded_channel();
        Ok(Demux { socket, ctx, opts, accept_tx, handoff_tx, handoff_rx, peers: HashMap::new(), listener, handshakes })
    }

    async fn run(mut self) {
        // One buffer for every datagram of every peer.
        let mut buf = vec![0u8; 65_536];
        let mut sweep = tokio::time::interval(SWEEP);
        loop {
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => self.on_datagram(from, &buf[..n]).await,
                    Err(e) => debug!(error = %e, "DTLS recv failed"),
                },
                Some(h) = self.handoff_rx.recv() => self.on_handoff(h).await,
                _ = sweep.tick() => self.sweep(),
            }
        }
    }

    async fn on_datagram(&mut self, from: SocketAddr, dgram: &[u8]) {
        match self.peers.get(&from) {
            Some(Peer::Handshake(tx)) => match tx.try_send(dgram.to_vec()) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => return debug!(peer = %from, "peer queue full, datagram dropped"),
                // The peer's task ended: a new handshake may start from this address.
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.peers.remove(&from);
                }
            },
            // RFC 6347 section 4.2.8: a new ClientHello from a peer with a session may be
            // a client that lost its state; it gets a new handshake once it proves its
            // address with a cookie (the old session ends then), never before.
            Some(Peer::Established(_)) if looks_like_client_hello(dgram) => {}
            Some(Peer::Established(_)) => {
                if !self.on_records(from, dgram).await {
                    self.peers.remove(&from);
                }
                return;
            }
            None => {}
        }
        if looks_like_client_hello(dgram) {
            self.on_client_hello(from, dgram).await;
        }
    }

    /// The records of an established peer; false once its session is over.
    async fn on_records(&mut self, from: SocketAddr, dgram: &[u8]) -> bool {
        let Some(Peer::Established(e)) = self.peers.get_mut(&from) else { return false };
        for r in record::records(dgram) {
            // Epoch 0: the plaintext part of a retransmitted final flight; its Finished
            // (epoch 1) is what we answer.
            let opened = r.and_then(|r| if r.epoch == 0 { Ok(Inbound::Ignored) } else { e.opener.open(&r) });
            match opened {
                Ok(Inbound::Data(d)) => {
                    e.flight = None;
                    deliver(&e.app_tx, from, d);
                }
                Ok(Inbound::FinishedAgain) => {
                    if let Some(f) = &e.flight {
                        debug!(peer = %from, "peer sent its Finished again: our last flight again");
                        send_all(&self.socket, from, &f.datagrams).await;
                    }
                }
                Ok(Inbound::Closed { fatal, description }) => {
                    if fatal {
                        warn!(peer = %from, alert = description, "DTLS fatal alert received, session closed");
                    } else {
                        info!(peer = %from, "DTLS close_notify received");
                    }
                    if let Some(link) = e.link.upgrade() {
                        link.close(!fatal);
                    }
                    return false;
                }
                Ok(Inbound::Ignored) => {}
                // RFC 6347 section 4.1.2.7: invalid records are dropped, the session lives on.
                Err(err) => debug!(peer = %from, error = %err, "DTLS record dropped"),
            }
        }
        e.alive_for_input()
    }

    async fn on_handoff(&mut self, h: Handoff) {
        let Handoff { addr, established, mut queued } = h;
        if !matches!(self.peers.get(&addr), Some(Peer::Handshake(_))) {
            return; // replaced meanwhile (a newer handshake from the same address)
        }
        self.peers.insert(addr, Peer::Established(Box::new(established)));
        while let Ok(d) = queued.try_recv() {
            if !self.on_records(addr, &d).await {
                self.peers.remove(&addr);
                return;
            }
        }
    }

    fn sweep(&mut self) {
        let now = Instant::now();
        self.peers.retain(|_, p| p.alive());
        for p in self.peers.values_mut() {
            if let Peer::Established(e) = p {
                if e.flight.as_ref().is_some_and(|f| f.until <= now) {
                    e.flight = None;
                }
            }
        }
    }

    async fn on_client_hello(&mut self, from: SocketAddr, dgram: &[u8]) {
        let verified = self.listener.offer(from, dgram);
        send_outbox(&mut self.listener.stream, &self.socket, from).await;
        if !verified {
            return;
        }
        // Only now, with a proven address, may this peer cost us anything.
        let Some(permit) = self.admit(from) else { return };
        let fresh = match Listener::new(&self.ctx, self.opts.mtu) {
            Ok(l) => l,
            Err(e) => return warn!(error = %e, "cannot create DTLS listener"),
        };
        let listener = std::mem::replace(&mut self.listener, fresh);
        // DTLSv1_listen consumed the ClientHello (our BIO cannot peek): feed it again.
        let mut listener = listener;
        listener.stream.get_mut().inbox.push_back(dgram.to_vec());
        let (tx, rx) = mpsc::channel(self.opts.peer_queue.max(1));
        // Replaces an established session of this address, if any (see on_datagram).
        self.peers.insert(from, Peer::Handshake(tx));
        let peer = PeerTask {
            stream: listener.stream,
            addr: from,
            socket: self.socket.clone(),
            incoming: rx,
            flight: Vec::new(),
        };
        let ends = PeerEnds { accept_tx: self.accept_tx.clone(), handoff_tx: self.handoff_tx.clone() };
        tokio::spawn(peer.run(permit, self.opts.clone(), ends));
    }

    /// A handshake slot and a session slot, or None (logged) when the server is full.
    fn admit(&mut self, from: SocketAddr) -> Option<OwnedSemaphorePermit> {
        if self.peers.len() >= self.opts.max_sessions && !self.peers.contains_key(&from) {
            self.peers.retain(|_, p| p.alive());
            if self.peers.len() >= self.opts.max_sessions {
                warn!(peer = %from, "DTLS session table full, handshake refused");
                return None;
            }
        }
        let permit = self.handshakes.clone().try_acquire_owned().ok();
        if permit.is_none() {
            warn!(peer = %from, "too many DTLS handshakes in progress, refused");
        }
        permit
    }
}

impl Established {
    /// Input is still wanted while the session is held, or while senders may need the
    /// peer's close_notify to end.
    fn alive_for_input(&self) -> bool {
        !self.app_tx.is_closed() || self.link.strong_count() > 0
    }
}

/// Hands a decrypted datagram to the session without waiting: the demultiplexer serves
/// every peer, so a session that does not read loses its newest datagrams (CoAP
/// retransmits), not everybody else's.
fn deliver(app_tx: &mpsc::Sender<Vec<u8>>, peer: SocketAddr, d: Vec<u8>) {
    match app_tx.try_send(d) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => debug!(%peer, "session queue full, datagram dropped"),
        // A dropped session with live senders still sends; its input is dropped.
        Err(mpsc::error::TrySendError::Closed(_)) => {}
    }
}

async fn send_all(socket: &UdpSocket, peer: SocketAddr, datagrams: &[Vec<u8>]) {
    for d in datagrams {
        if let Err(e) = socket.send_to(d, peer).await {
            debug!(%peer, error = %e, "DTLS send failed");
        }
    }
}

/// Cheap filter before any crypto: a DTLS 1.x handshake record of epoch 0 carrying a
/// ClientHello. Everything else from an unknown address is dropped silently.
fn looks_like_client_hello(d: &[u8]) -> bool {
    d.len() >= 13 + 12 && d[0] == 22 && d[1] == 0xfe && d[3] == 0 && d[4] == 0 && d[13] == 1
}

// ---------------------------------------------------------------------------------
// Per-peer task: the handshake

/// How often to give OpenSSL a chance to retransmit a lost handshake flight.
const RETRANSMIT_TICK: Duration = Duration::from_millis(500);
pub(super) const DTLS_CTRL_HANDLE_TIMEOUT: c_int = 74;

struct PeerTask {
    stream: DtlsStream,
    addr: SocketAddr,
    socket: Arc<UdpSocket>,
    incoming: mpsc::Receiver<Vec<u8>>,
    /// The datagrams of our latest flight.
    flight: Vec<Vec<u8>>,
}

/// Where a finished handshake goes.
struct PeerEnds {
    accept_tx: mpsc::Sender<DtlsSession>,
    handoff_tx: mpsc::UnboundedSender<Handoff>,
}

impl PeerTask {
    async fn run(mut self, permit: OwnedSemaphorePermit, opts: DtlsOptions, ends: PeerEnds) {
        let deadline = Instant::now() + opts.handshake_timeout;
        let outcome = timeout_at(deadline, self.handshake()).await;
        drop(permit);
        let peer = self.addr;
        let info = match outcome {
            Err(_) => return warn!(%peer, "DTLS handshake timed out, peer dropped"),
            Ok(Err(e)) => return warn!(%peer, error = %e, "DTLS handshake refused"),
            Ok(Ok(info)) => info,
        };
        let ssl = self.stream.ssl();
        let cipher = ssl.current_cipher().map(|c| c.name()).unwrap_or("?");
        info!(%peer, credential = ?info.credential, version = ssl.version_str(), cipher, "DTLS session established");
        let (opener, sealer) = match self.record_keys() {
            Ok(halves) => halves,
            Err(e) => return warn!(%peer, cipher, error = %e, "DTLS session cannot leave OpenSSL, dropped"),
        };
        let link = Arc::new(WriteLink { sealer: Mutex::new(Some(sealer)), socket: self.socket.clone(), peer });
        let (app_tx, app_rx) = mpsc::channel(opts.peer_queue.max(1));
        let established = Established {
            opener,
            app_tx,
            link: Arc::downgrade(&link),
            flight: Some(Flight { datagrams: std::mem::take(&mut self.flight).into(), until: Instant::now() + FLIGHT_KEPT }),
        };
        let session = DtlsSession { peer: info, incoming: app_rx, sender: DtlsSender { link } };
        if ends.accept_tx.try_send(session).is_err() {
            return warn!(%peer, "DTLS accept queue full, session dropped");
        }
        // From here on, the Ssl (dropped with self) is no longer needed.
        let _ = ends.handoff_tx.send(Handoff { addr: peer, established, queued: self.incoming });
    }

    async fn handshake(&mut self) -> Result<PeerInfo> {
        loop {
            let r = self.stream.do_handshake();
            self.send_flight().await;
            match r {
                Ok(()) => return self.peer_info(),
                Err(e) if e.code() == ErrorCode::WANT_READ => self.wait_handshake_datagram().await?,
                Err(e) => return Err(handshake_error(e)),
            }
        }
    }

    /// Sends what OpenSSL wrote, remembering it as our latest flight.
    async fn send_flight(&mut self) {
        let out = std::mem::take(&mut self.stream.get_mut().outbox);
        if out.is_empty() {
            return;
        }
        send_all(&self.socket, self.addr, &out).await;
        self.flight = out;
    }

    async fn wait_handshake_datagram(&mut self) -> Result<()> {
        match timeout(RETRANSMIT_TICK, self.incoming.recv()).await {
            Ok(Some(d)) => self.stream.get_mut().inbox.push_back(d),
            Ok(None) => return Err(TransportError::Closed),
            Err(_) => unsafe {
                // DTLSv1_handle_timeout: retransmits our last flight if its timer expired.
                openssl_sys::SSL_ctrl(self.stream.ssl().as_ptr(), DTLS_CTRL_HANDLE_TIMEOUT, 0, std::ptr::null_mut());
            },
        }
        Ok(())
    }

    fn peer_info(&self) -> Result<PeerInfo> {
        let ssl = self.stream.ssl();
        let credential = if let Some(cert) = ssl.peer_certificate() {
            certificate_credential(&cert)?
        } else if let Some(identity) = ssl.psk_identity() {
            Credential::Psk { identity: identity.to_vec() }
        } else {
            return Err(TransportError::Config("peer presented no credential".into()));
        };
        Ok(PeerInfo { addr: self.addr, credential, transport: Transport::Dtls })
    }

    /// The established session's record keys, from the master secret and randoms
    /// OpenSSL negotiated; our writer continues after our Finished, in its epoch.
    fn record_keys(&self) -> Result<(Opener, Sealer)> {
        let ssl = self.stream.ssl();
        let name = ssl.current_cipher().map(|c| c.name()).unwrap_or("?");
        let suite = Suite::from_openssl_name(name)
            .ok_or_else(|| TransportError::Config(format!("cipher suite {name} has no record layer here")))?;
        let (mut client_random, mut server_random) = ([0u8; 32], [0u8; 32]);
        ssl.client_random(&mut client_random);
        ssl.server_random(&mut server_random);
        let session = ssl.session().ok_or_else(|| TransportError::Config("no session after the handshake".into()))?;
        let mut master = [0u8; 48];
        let n = session.master_key(&mut master);
        let (epoch, seq) = record::last_record(&self.flight)
            .filter(|(epoch, _)| *epoch > 0)
            .ok_or_else(|| TransportError::Config("our Finished was not seen in the last flight".into()))?;
        let halves = record::server_halves(suite, &master[..n], &client_random, &server_random, epoch, seq + 1);
        master.fill(0);
        Ok(halves)
    }
}

fn handshake_error(e: openssl::ssl::Error) -> TransportError {
    match e.ssl_error() {
        Some(stack) => TransportError::OpenSsl(stack.clone()),
        None => TransportError::Config(format!("handshake: {e}")),
    }
}
