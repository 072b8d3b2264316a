//! Shared by the `client_*` tests: a small DOTS responder on the real DTLS server
//! transport (enough of RFC 9132 4.4/4.5/4.7 to drive the client), a lossy UDP proxy,
//! and libcoap's generic server.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dots_proto::coap::{datagram, Code, Message, MessageIdGen, MessageType, Token};
use dots_proto::signal::{Lifetime, MitigationScope, Scope, SignalBody, SignalConfig, SignalPath, Status};
use mitigator::client_dots::{ClientConfig, ServerAddr, StateFile};
use mitigator::transport::{ClientCredential, ClientSecurity, DtlsOptions, DtlsServer, SecurityConfig};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;

pub const PSK_ID: &str = "cpe-17";
pub const PSK_KEY: &[u8] = b"correct horse battery staple";

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("mitigator=debug"))
        .with_test_writer()
        .try_init();
}

pub fn scratch(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "mitigator-client-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn server_security(dir: &std::path::Path) -> SecurityConfig {
    let pki = mitigator::certs::create_dev_pki(dir, &["dots.example.net".into()], &["alice".into()]).unwrap();
    SecurityConfig {
        ca_pem: Some(std::fs::read(&pki.ca_pem).unwrap()),
        cert_pem: std::fs::read(&pki.server_pem).unwrap(),
        key_pem: std::fs::read(&pki.server_key_pem).unwrap(),
        psk: vec![(PSK_ID.as_bytes().to_vec(), PSK_KEY.to_vec())],
    }
}

pub fn psk_security() -> ClientSecurity {
    ClientSecurity {
        credential: ClientCredential::Psk { identity: PSK_ID.into(), key: PSK_KEY.to_vec() },
        ca_pem: None,
    }
}

/// A client config for tests: PSK, DTLS, quick timers, a private state file.
pub fn client_config(server: SocketAddr, dir: &std::path::Path) -> ClientConfig {
    let mut cfg = ClientConfig::new(ServerAddr { host: server.ip().to_string(), port: server.port() }, psk_security());
    cfg.transport = mitigator::client_dots::TransportChoice::Dtls;
    cfg.state = StateFile::new(dir.join("state.json"));
    cfg.handshake_timeout = Duration::from_secs(3);
    cfg.initial.transmission.ack_timeout = Duration::from_millis(300);
    cfg.initial.non_min_interval = Duration::from_millis(300);
    cfg.reconnect_min = Duration::from_millis(200);
    cfg.reconnect_max = Duration::from_secs(1);
    cfg
}

/// What the responder saw and how it behaves.
#[derive(Default)]
pub struct Behaviour {
    /// Every request received: (code, path, mtype, observe).
    pub requests: Mutex<Vec<(Code, String, MessageType, Option<u32>)>>,
    /// Stop answering anything (but keep the DTLS session).
    pub silent: AtomicBool,
    /// Answer mitigation PUTs with this code (e.g. 4.09) instead of 2.01.
    pub refuse_put: Mutex<Option<Code>>,
    pub mitigations: Mutex<HashMap<u32, (Scope, Status)>>,
    /// Sessions accepted so far.
    pub sessions: AtomicUsize,
}

impl Behaviour {
    pub fn count(&self, code: Code, path_part: &str) -> usize {
        self.requests.lock().unwrap().iter().filter(|(c, p, _, _)| *c == code && p.contains(path_part)).count()
    }
    pub fn mids(&self) -> Vec<u32> {
        let reqs = self.requests.lock().unwrap();
        reqs.iter()
            .filter(|(c, p, _, _)| *c == Code::PUT && p.contains("mid="))
            .filter_map(|(_, p, _, _)| p.rsplit("mid=").next()?.parse().ok())
            .collect()
    }
}

pub struct FakeDots {
    pub addr: SocketAddr,
    pub behaviour: Arc<Behaviour>,
    tasks: JoinSet<()>,
}

impl FakeDots {
    pub async fn start(bind: SocketAddr, sec: &SecurityConfig, behaviour: Arc<Behaviour>) -> FakeDots {
        init_tracing();
        // A restarted server may find its port held for a moment by the old tasks.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut server = loop {
            match DtlsServer::bind(bind, sec, DtlsOptions::default()).await {
                Ok(s) => break s,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    eprintln!("bind {bind}: {e}, retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("bind {bind}: {e}"),
            }
        };
        let addr = server.local_addr();
        let mut tasks = JoinSet::new();
        let b = behaviour.clone();
        tasks.spawn(async move {
            let mut sessions = JoinSet::new();
            while let Ok(mut session) = server.accept().await {
                b.sessions.fetch_add(1, Ordering::SeqCst);
                let b = b.clone();
                sessions.spawn(async move {
                    let mut ids = MessageIdGen::new(0x100);
                    let mut observers: Vec<(Option<u32>, Token)> = Vec::new();
                    let mut seq = 2u32;
                    while let Ok(d) = session.recv().await {
                        let Ok(req) = datagram::decode(&d) else {
                            continue;
                        };
                        for out in respond(&b, &req, &mut ids, &mut observers, &mut seq) {
                            let _ = session.send(&datagram::encode(&out).unwrap()).await;
                        }
                    }
                });
            }
            drop(sessions);
        });
        FakeDots { addr, behaviour, tasks }
    }

    /// Stops the server and every session, without close_notify (a crash).
    pub async fn crash(mut self) {
        self.tasks.shutdown().await;
    }
}

fn respond(
    b: &Behaviour,
    req: &Message,
    ids: &mut MessageIdGen,
    observers: &mut Vec<(Option<u32>, Token)>,
    seq: &mut u32,
) -> Vec<Message> {
    if !req.code.is_request() {
        return Vec::new();
    }
    let segs = req.uri_path().unwrap_or_default();
    let path = format!("/{}", segs.join("/"));
    b.requests.lock().unwrap().push((req.code, path.clone(), req.mtype, req.observe()));
    if b.silent.load(Ordering::SeqCst) {
        return Vec::new();
    }
    let reply = |code: Code, body: Option<Vec<u8>>, ids: &mut MessageIdGen| {
        let mut m = Message::response_to(req, code, ids);
        if let Some(body) = body {
            m.set_content_format(271);
            m.payload = body;
        }
        m
    };
    let Ok(p) = SignalPath::parse(&segs) else {
        return vec![reply(Code::NOT_FOUND, None, ids)];
    };
    match (req.code, p) {
        (Code::PUT, SignalPath::Heartbeat) => vec![reply(Code::CHANGED, None, ids)],
        (Code::GET, SignalPath::Config { .. }) => {
            vec![reply(Code::CONTENT, Some(SignalConfig::server_default().to_cbor()), ids)]
        }
        (Code::PUT, SignalPath::Config { .. }) => vec![reply(Code::CREATED, None, ids)],
        (Code::PUT, SignalPath::Mitigate(m)) => {
            if let Some(code) = *b.refuse_put.lock().unwrap() {
                return vec![reply(code, Some(b"refused by the test".to_vec()), ids)];
            }
            let mid = m.mid.unwrap();
            let scope = MitigationScope::from_cbor(&req.payload).unwrap().value.scopes.remove(0);
            let lifetime = scope.lifetime.unwrap_or(Lifetime::RECOMMENDED);
            let existed =
                b.mitigations.lock().unwrap().insert(mid, (scope, Status::AttackMitigationInProgress)).is_some();
            let body = MitigationScope {
                scopes: vec![Scope { mid: Some(mid), lifetime: Some(lifetime), ..Scope::default() }],
            };
            vec![reply(if existed { Code::CHANGED } else { Code::CREATED }, Some(body.to_cbor()), ids)]
        }
        (Code::GET, SignalPath::Mitigate(m)) => {
            if req.observe() == Some(0) {
                observers.push((m.mid, req.token));
            }
            let mut resp = reply(Code::CONTENT, Some(status_body(b, m.mid)), ids);
            if req.observe() == Some(0) {
                resp.set_observe(*seq);
                *seq += 1;
            }
            vec![resp]
        }
        (Code::DELETE, SignalPath::Mitigate(m)) => {
            let mid = m.mid.unwrap();
            if let Some(e) = b.mitigations.lock().unwrap().get_mut(&mid) {
                e.1 = Status::DotsClientWithdrawnMitigation;
            }
            let mut out = vec![reply(Code::DELETED, None, ids)];
            // Notify observers of this mid (4.4.2.1: status change).
            for (obs_mid, token) in observers.iter().filter(|(o, _)| *o == Some(mid) || o.is_none()) {
                let mut n = Message::new(MessageType::Non, Code::CONTENT, ids.next_id(), *token);
                n.set_observe(*seq);
                *seq += 1;
                n.set_content_format(271);
                n.payload = status_body(b, *obs_mid);
                out.push(n);
            }
            out
        }
        _ => vec![reply(Code::METHOD_NOT_ALLOWED, None, ids)],
    }
}

fn status_body(b: &Behaviour, mid: Option<u32>) -> Vec<u8> {
    let m = b.mitigations.lock().unwrap();
    let scopes = m
        .iter()
        .filter(|(k, _)| mid.is_none_or(|x| x == **k))
        .map(|(k, (s, st))| Scope {
            mid: Some(*k),
            status: Some(*st),
            lifetime: s.lifetime,
            target: s.target.clone(),
            ..Scope::default()
        })
        .collect();
    MitigationScope { scopes }.to_cbor()
}

/// A UDP proxy in front of `server` that drops the first `drop_app` DTLS application-data
/// records (content type 23) going to the server: CoAP messages, not the handshake.
pub struct LossyProxy {
    pub addr: SocketAddr,
    pub dropped: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl LossyProxy {
    pub async fn start(server: SocketAddr, drop_app: usize) -> LossyProxy {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        back.connect(server).await.unwrap();
        let addr = front.local_addr().unwrap();
        let dropped = Arc::new(AtomicUsize::new(0));
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let (f2, b2, c2, d2) = (front.clone(), back.clone(), client.clone(), dropped.clone());
        let up = async move {
            let mut buf = vec![0u8; 65536];
            loop {
                let (n, from) = f2.recv_from(&mut buf).await.unwrap();
                *c2.lock().unwrap() = Some(from);
                if buf[0] == 23 && d2.load(Ordering::SeqCst) < drop_app {
                    d2.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let _ = b2.send(&buf[..n]).await;
            }
        };
        let down = async move {
            let mut buf = vec![0u8; 65536];
            loop {
                let Ok(n) = back.recv(&mut buf).await else {
                    continue;
                };
                let to = *client.lock().unwrap();
                if let Some(to) = to {
                    let _ = front.send_to(&buf[..n], to).await;
                }
            }
        };
        let task = tokio::spawn(async move {
            tokio::join!(up, down);
        });
        LossyProxy { addr, dropped, task }
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `f` until it is true or the deadline passes.
pub async fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
