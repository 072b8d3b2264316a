//! Bench-only helper for `cargo xtask bench` (not part of the daemon): the
//! DOTS control-plane measurements, with our own DTLS client
//! (`mitigator::client_dots::DotsClient`, `mitigator::transport`). It prints
//! tab-separated lines that xtask parses; progress goes to stderr.
//!
//! ```text
//! bench_control latency --server IP:PORT --identity ID --key KEY --count N
//!         --prefix 2001:db8:113::2: --probe-from NETNS --probe-to NETNS --probe-port P --probe-us US
//!     one DOTS session (DTLS, PSK); for sample i: probe target <prefix><i> with
//!     UDP until a probe arrives, send PUT mitigate for <prefix><i>/128, wait
//!     for the 2.01 and for the probes to stop arriving; prints
//!         sample <i> <request→2.01 µs> <request→first dropped probe sent µs>
//!                <gap to the last passed probe µs> <last passed probe sent after the 2.01: 0|1>
//!         probes <sent> <received> <seconds>
//! bench_control throughput --server IP:PORT --identities ID,ID,… --key KEY
//!         --prefix 2001:db8:114: --seconds S --first F
//!     one session per identity (client numbers F, F+1, …), each sending
//!     mitigation requests back to back (a new mid and a new /128 target
//!     <prefix><client>:<mid> each); prints per request
//!         req <client> <finished ms since start> <latency µs> <ok 0|1>
//! bench_control sessions --server IP:PORT --identity-prefix P --count N --key KEY --concurrency C
//!     opens N DTLS 1.2 PSK sessions with OpenSSL directly (identities P0 … P<N-1>;
//!     see the sessions section below for why not DotsClient), prints
//!         ready <opened> <failed> <seconds> <this process's VmRSS KiB>
//!     then keeps them idle until stdin closes, and closes them.
//! ```
//!
//! The probe sender and receiver run on threads moved into the attacker's
//! and the protected host's network namespaces (setns), so that request
//! times and probe times come from one clock (this process's Instant).

use std::{
    collections::HashMap,
    fs::File,
    io::Read,
    net::{Ipv6Addr, SocketAddr, UdpSocket},
    os::fd::AsRawFd,
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use dots_proto::signal::IpPrefix;
use mitigator::client_dots::{ClientConfig, DotsClient, MitigationSpec, ServerAddr, StateFile, TransportChoice};
use mitigator::transport::{ClientCredential, ClientSecurity};
use openssl::ex_data::Index;
use openssl::ssl::{Ssl, SslContext, SslContextBuilder, SslMethod, SslMode, SslStream, SslVersion};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match args.first().map(String::as_str) {
        Some("latency") => rt.block_on(latency(&Flags(&args[1..]))),
        Some("throughput") => rt.block_on(throughput(&Flags(&args[1..]))),
        Some("sessions") => rt.block_on(sessions(&Flags(&args[1..]))),
        _ => bail!("usage: bench_control latency|throughput|sessions --flag value … (see the source)"),
    }
}

/// `--name value` pairs.
struct Flags<'a>(&'a [String]);

impl Flags<'_> {
    fn get(&self, name: &str) -> Result<&str> {
        let i = self
            .0
            .iter()
            .position(|a| a == name)
            .with_context(|| format!("missing {name}"))?;
        self.0
            .get(i + 1)
            .map(String::as_str)
            .with_context(|| format!("{name} needs a value"))
    }
    fn num<T: std::str::FromStr>(&self, name: &str) -> Result<T> {
        self.get(name)?
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}: not a number"))
    }
}

fn psk(identity: &str, key: &str) -> ClientSecurity {
    ClientSecurity {
        credential: ClientCredential::Psk {
            identity: identity.as_bytes().to_vec(),
            key: key.as_bytes().to_vec(),
        },
        ca_pem: None,
    }
}

/// A DotsClient over DTLS with a PSK. Observing its own mitigations is off:
/// the bench times the mitigation requests alone (an Observe GET would
/// follow each 2.01 on the same session).
async fn dots_client(server: &str, identity: &str, key: &str) -> Result<DotsClient> {
    let mut cfg = ClientConfig::new(
        server.parse::<ServerAddr>().map_err(anyhow::Error::msg)?,
        psk(identity, key),
    );
    cfg.transport = TransportChoice::Dtls;
    // Under xtask's scratch directory (removed at the end of the bench).
    let dir = std::env::temp_dir().join("mtg-bench");
    std::fs::create_dir_all(&dir)?;
    cfg.state = StateFile::new(dir.join(format!("client-{identity}-{}.json", std::process::id())));
    cfg.observe_own = false;
    DotsClient::connect(cfg)
        .await
        .with_context(|| format!("DOTS client {identity} connecting to {server}"))
}

fn target(prefix: &str, i: u32) -> Result<Ipv6Addr> {
    format!("{prefix}{i:x}")
        .parse()
        .with_context(|| format!("target address {prefix}{i:x}"))
}

fn spec_for(addr: Ipv6Addr) -> Result<MitigationSpec> {
    let p: IpPrefix = format!("{addr}/128")
        .parse()
        .map_err(|e| anyhow::anyhow!("prefix: {e:?}"))?;
    Ok(MitigationSpec::prefixes(vec![p]))
}

// ------------------------------------------------------------ namespaces

/// Moves the calling thread into the network namespace at `path`.
fn enter_netns(path: &str) -> Result<()> {
    let f = File::open(path).with_context(|| format!("open {path}"))?;
    // SAFETY: setns on a namespace fd we own; it affects only this thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("setns {path}"));
    }
    Ok(())
}

/// A socket bound in another namespace (sockets keep their namespace).
fn socket_in(netns: &str, bind: SocketAddr) -> Result<UdpSocket> {
    let ns = netns.to_string();
    std::thread::spawn(move || -> Result<UdpSocket> {
        enter_netns(&ns)?;
        Ok(UdpSocket::bind(bind)?)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("setns thread panicked"))?
}

// ------------------------------------------------------------ probes

/// What the probe threads share. Probes carry (seq, target index); the
/// sender logs each probe's send time, the receiver what arrived last.
#[derive(Default)]
struct Probes {
    /// Index of the target probed now (0: none).
    target: AtomicU32,
    stop: AtomicBool,
    /// Send time (since `base`) and target of probe `seq`, by seq.
    sent: Mutex<Vec<(Duration, u32)>>,
    /// The last probe received: (seq, target).
    last_rx: Mutex<Option<(u64, u32)>>,
    received: Mutex<HashMap<u32, u64>>,
}

/// Sends one probe every `interval` to the current target, paced by sleep
/// (the actual gaps are logged, so pacing jitter shows in the results).
fn probe_sender(sock: UdpSocket, p: Arc<Probes>, base: Instant, prefix: String, port: u16, interval: Duration) {
    let mut next = Instant::now();
    while !p.stop.load(Ordering::Relaxed) {
        let idx = p.target.load(Ordering::Relaxed);
        if idx != 0 {
            let Ok(addr) = target(&prefix, idx) else { return };
            let mut log = p.sent.lock().unwrap();
            let seq = log.len() as u64;
            let mut buf = [0u8; 12];
            buf[..8].copy_from_slice(&seq.to_be_bytes());
            buf[8..].copy_from_slice(&idx.to_be_bytes());
            log.push((base.elapsed(), idx));
            drop(log);
            // A send error (e.g. neighbour resolution still pending) is a
            // probe that never arrives; it is logged as sent all the same,
            // and the wait for a clean path absorbs it.
            let _ = sock.send_to(&buf, SocketAddr::new(addr.into(), port));
        }
        next += interval;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}

fn probe_receiver(sock: UdpSocket, p: Arc<Probes>) {
    let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = [0u8; 64];
    while !p.stop.load(Ordering::Relaxed) {
        let Ok(n) = sock.recv(&mut buf) else { continue };
        if n < 12 {
            continue;
        }
        let seq = u64::from_be_bytes(buf[..8].try_into().unwrap());
        let idx = u32::from_be_bytes(buf[8..12].try_into().unwrap());
        *p.last_rx.lock().unwrap() = Some((seq, idx));
        *p.received.lock().unwrap().entry(idx).or_default() += 1;
    }
}

/// Waits until a probe to target `idx` arrives: the path is clean
/// (neighbour resolved, nothing dropping it yet).
async fn wait_clean(p: &Probes, idx: u32) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if p.last_rx.lock().unwrap().is_some_and(|(_, i)| i == idx) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    bail!("no probe to target {idx} arrived within 3 s (before its mitigation)")
}

/// After the request: waits until probes to `idx` have stopped arriving for
/// `quiet` while the sender kept sending; returns (last passed seq, first dropped seq).
async fn wait_dropping(p: &Probes, idx: u32, base: Instant, quiet: Duration) -> Result<(u64, u64)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let Some((last, i)) = *p.last_rx.lock().unwrap() else {
            continue;
        };
        if i != idx {
            continue;
        }
        let log = p.sent.lock().unwrap();
        let first_missing = last + 1;
        if let Some(&(t, j)) = log.get(first_missing as usize) {
            if j == idx && base.elapsed().saturating_sub(t) >= quiet {
                return Ok((last, first_missing));
            }
        }
    }
    bail!("probes to target {idx} kept arriving 5 s after its mitigation request")
}

async fn latency(f: &Flags<'_>) -> Result<()> {
    let (count, prefix, port): (u32, String, u16) =
        (f.num("--count")?, f.get("--prefix")?.into(), f.num("--probe-port")?);
    let interval = Duration::from_micros(f.num("--probe-us")?);
    let client = dots_client(f.get("--server")?, f.get("--identity")?, f.get("--key")?).await?;
    let tx = socket_in(f.get("--probe-from")?, "[::]:0".parse()?)?;
    let rx = socket_in(
        f.get("--probe-to")?,
        SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port),
    )?;
    let (p, base) = (Arc::new(Probes::default()), Instant::now());
    let sender = {
        let (p, prefix) = (p.clone(), prefix.clone());
        std::thread::spawn(move || probe_sender(tx, p, base, prefix, port, interval))
    };
    let receiver = {
        let p = p.clone();
        std::thread::spawn(move || probe_receiver(rx, p))
    };
    for i in 1..=count {
        p.target.store(i, Ordering::Relaxed);
        wait_clean(&p, i).await?;
        let t0 = base.elapsed();
        let ack = client
            .mitigate_as(i, &spec_for(target(&prefix, i)?)?)
            .await
            .with_context(|| format!("mitigation request {i}"))?;
        let t_ack = base.elapsed();
        if ack.code != dots_proto::coap::Code::CREATED {
            bail!("request {i}: {:?}, not 2.01", ack.code);
        }
        let (last, first) = wait_dropping(&p, i, base, Duration::from_millis(40)).await?;
        let log = p.sent.lock().unwrap();
        let (t_last, t_first) = (log[last as usize].0, log[first as usize].0);
        drop(log);
        println!(
            "sample\t{i}\t{}\t{}\t{}\t{}",
            (t_ack - t0).as_micros(),
            t_first.saturating_sub(t0).as_micros(),
            (t_first - t_last).as_micros(),
            u8::from(t_last > t_ack)
        );
        if i % 50 == 0 {
            eprintln!("bench_control: latency sample {i}/{count}");
        }
    }
    p.target.store(0, Ordering::Relaxed);
    // Let the last probes land before counting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    p.stop.store(true, Ordering::Relaxed);
    let _ = (sender.join(), receiver.join());
    let sent = p.sent.lock().unwrap().len();
    let received: u64 = p.received.lock().unwrap().values().sum();
    println!("probes\t{sent}\t{received}\t{:.1}", base.elapsed().as_secs_f64());
    client.close().await;
    Ok(())
}

// ------------------------------------------------------------ throughput

async fn throughput(f: &Flags<'_>) -> Result<()> {
    let prefix: String = f.get("--prefix")?.into();
    let window = Duration::from_secs(f.num("--seconds")?);
    let key = f.get("--key")?;
    // Client numbers (and so target addresses) start here: runs in one
    // daemon never share a target.
    let first: usize = f.num("--first")?;
    let mut clients = vec![];
    for id in f.get("--identities")?.split(',') {
        clients.push(Arc::new(dots_client(f.get("--server")?, id, key).await?));
    }
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (c, client) in clients.iter().enumerate().map(|(i, cl)| (first + i, cl)) {
        let (client, prefix) = (client.clone(), prefix.clone());
        // Each client has a /112 of its own: targets never collide.
        tasks.spawn(async move {
            let mut lines = vec![];
            let mut mid = 0u32;
            while start.elapsed() < window {
                mid += 1;
                let addr = target(&format!("{prefix}{c:x}:"), mid)?;
                let t = Instant::now();
                let r = client.mitigate_as(mid, &spec_for(addr)?).await;
                let ok = matches!(&r, Ok(a) if a.code == dots_proto::coap::Code::CREATED);
                lines.push(format!(
                    "req\t{c}\t{}\t{}\t{}",
                    start.elapsed().as_millis(),
                    t.elapsed().as_micros(),
                    u8::from(ok)
                ));
            }
            anyhow::Ok(lines)
        });
    }
    while let Some(r) = tasks.join_next().await {
        for l in r?? {
            println!("{l}");
        }
    }
    for c in clients {
        if let Ok(c) = Arc::try_unwrap(c) {
            c.close().await;
        }
    }
    Ok(())
}

// ------------------------------------------------------------ sessions
//
// Thousands of sessions are opened with OpenSSL directly rather than with
// `transport::dtls_client::connect`: that one builds an `SslConnector` per
// connection, which loads the system CA bundle each time (about 1.3 MB and
// tens of ms of CPU per connection on this machine, measured while writing
// this bench) — fine for a DOTS client's one session, not for 10,000 from
// one process. Here one context serves every session, PSK only, with
// SSL_MODE_RELEASE_BUFFERS set (it did not make idle DTLS sessions small:
// the `ready` line reports this process's RSS). The server sees ordinary
// DTLS 1.2 clients.

/// A connected UDP socket as OpenSSL's datagram I/O.
#[derive(Debug)]
struct Udp(UdpSocket);

impl Read for Udp {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.recv(buf)
    }
}

impl std::io::Write for Udp {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.send(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

type Session = SslStream<Udp>;

/// The same PSK suites our client and server offer.
const PSK_SUITES: &str = "ECDHE-PSK-CHACHA20-POLY1305:PSK-AES128-CCM8:PSK-AES128-GCM-SHA256:PSK-AES256-GCM-SHA384";

fn identity_index() -> Index<Ssl, String> {
    static INDEX: std::sync::OnceLock<Index<Ssl, String>> = std::sync::OnceLock::new();
    *INDEX.get_or_init(|| Ssl::new_ex_index().expect("OpenSSL ex_data index"))
}

/// One DTLS 1.2 PSK client context for all sessions; each session's
/// identity travels in its Ssl's ex_data.
fn psk_context(key: &[u8]) -> Result<SslContext> {
    let mut b = SslContextBuilder::new(SslMethod::dtls())?;
    b.set_min_proto_version(Some(SslVersion::DTLS1_2))?;
    b.set_cipher_list(PSK_SUITES)?;
    b.set_mode(SslMode::RELEASE_BUFFERS);
    let key = key.to_vec();
    b.set_psk_client_callback(move |ssl, _hint, id_out, key_out| {
        let id = ssl.ex_data(identity_index()).cloned().unwrap_or_default();
        if id.len() >= id_out.len() || key.len() > key_out.len() {
            return Err(openssl::error::ErrorStack::get());
        }
        id_out[..id.len()].copy_from_slice(id.as_bytes());
        id_out[id.len()] = 0;
        key_out[..key.len()].copy_from_slice(&key);
        Ok(key.len())
    });
    Ok(b.build())
}

fn handshake(ctx: &SslContext, server: SocketAddr, identity: &str) -> Result<Session> {
    let sock = UdpSocket::bind(if server.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" })?;
    sock.connect(server)?;
    // No retransmission through this BIO: a lost flight times out and the
    // caller retries with a new socket.
    sock.set_read_timeout(Some(Duration::from_secs(3)))?;
    let mut ssl = Ssl::new(ctx)?;
    ssl.set_ex_data(identity_index(), identity.to_string());
    ssl.set_mtu(1232)?;
    ssl.connect(Udp(sock))
        .map_err(|e| anyhow::anyhow!("DTLS handshake: {e}"))
}

fn open_one(ctx: &SslContext, server: SocketAddr, identity: &str) -> Result<Session> {
    let mut last = None;
    for _ in 0..3 {
        match handshake(ctx, server, identity) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .unwrap_or_else(|| anyhow::anyhow!("no attempt"))
        .context(identity.to_string()))
}

/// Raises the open-file limit to the hard limit: one UDP socket per session.
fn raise_nofile() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

async fn sessions(f: &Flags<'_>) -> Result<()> {
    raise_nofile();
    let server: SocketAddr = f.get("--server")?.parse()?;
    let (count, conc): (usize, usize) = (f.num("--count")?, f.num("--concurrency")?);
    let prefix = f.get("--identity-prefix")?.to_string();
    let ctx = psk_context(f.get("--key")?.as_bytes())?;
    let start = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let open = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // `conc` threads, one blocking handshake each at a time: as many
    // handshakes in flight as a fleet reconnecting in a burst would cause,
    // within the server's bound on concurrent handshakes.
    let workers: Vec<_> = (0..conc)
        .map(|_| {
            let (ctx, next, open, failed, prefix) =
                (ctx.clone(), next.clone(), open.clone(), failed.clone(), prefix.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return;
                }
                match open_one(&ctx, server, &format!("{prefix}{i}")) {
                    Ok(s) => open.lock().unwrap().push(s),
                    Err(e) => {
                        if failed.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("bench_control: session failed: {e:#}");
                        }
                    }
                }
                if (i + 1) % 1000 == 0 {
                    eprintln!(
                        "bench_control: {} sessions attempted, {:.1} s",
                        i + 1,
                        start.elapsed().as_secs_f64()
                    );
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let mut open = std::mem::take(&mut *open.lock().unwrap());
    // Our own RSS too: OpenSSL client sessions that release idle buffers,
    // for comparison with the server's per-session cost.
    let rss_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    println!(
        "ready\t{}\t{}\t{:.1}\t{rss_kib}",
        open.len(),
        failed.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64()
    );
    // Idle until told to stop (stdin closed by xtask after measuring).
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await?;
    // Were they still sessions, not just memory? After the memory was read,
    // one CoAP ping (Empty CON, RFC 7252 4.3) on each, which the server
    // answers with a RST through the session's keys.
    let alive = ping_all(&mut open, conc);
    println!("alive\t{alive}\t{}", open.len());
    // close_notify on each, so that the server frees their slots.
    for s in &mut open {
        let _ = s.shutdown();
    }
    Ok(())
}

/// How many sessions answer a CoAP ping, `threads` pings in flight.
fn ping_all(open: &mut [Session], threads: usize) -> usize {
    let chunk = open.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let counts: Vec<_> = open
            .chunks_mut(chunk)
            .map(|part| scope.spawn(move || part.iter_mut().enumerate().map(|(i, s)| ping(s, i as u16) as usize).sum::<usize>()))
            .collect();
        counts.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    })
}

/// One Empty CON with message id `id`; true when its RST comes back.
fn ping(s: &mut Session, id: u16) -> bool {
    let _ = s.get_ref().0.set_read_timeout(Some(Duration::from_millis(500)));
    let [hi, lo] = id.to_be_bytes();
    if s.ssl_write(&[0x40, 0x00, hi, lo]).is_err() {
        return false;
    }
    let mut buf = [0u8; 1500];
    // A few reads: a server heartbeat may come first.
    (0..3).any(|_| match s.ssl_read(&mut buf) {
        // Version 1, type RST (3), token length 0, code 0.00, our message id.
        Ok(n) => n >= 4 && buf[0] == 0x70 && buf[1] == 0 && buf[2..4] == [hi, lo],
        Err(_) => false,
    })
}
