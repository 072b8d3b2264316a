//! Traffic from lab hosts: exact counts of UDP datagrams, and TCP
//! request/response transactions against a small echo service.

use std::{
    io::{Read, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use crate::netlab::Host;

/// Sends `count` UDP datagrams of `payload` bytes from `from` (source port
/// `src_port`, 0 = any) to `to:port`. Returns how many the kernel accepted.
pub fn udp_burst(from: &Host, to: IpAddr, port: u16, src_port: u16, count: u64, payload: usize) -> anyhow::Result<u64> {
    let bind: SocketAddr = (from.addr(to.is_ipv6()), src_port).into();
    from.run(move || -> anyhow::Result<u64> {
        let sock = UdpSocket::bind(bind)?;
        let buf = vec![0x5au8; payload];
        let mut sent = 0;
        for _ in 0..count {
            // ENOBUFS under load: retry, so that "sent" is exact.
            loop {
                match sock.send_to(&buf, (to, port)) {
                    Ok(_) => break,
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => std::thread::sleep(Duration::from_micros(50)),
                    Err(e) => return Err(e.into()),
                }
            }
            sent += 1;
            // Paced, so that no datagram is lost in a veth ring before the
            // XDP program sees it: these bursts are for exact counting.
            if sent % 32 == 0 {
                std::thread::sleep(Duration::from_micros(300));
            }
        }
        Ok(sent)
    })?
}

/// A UDP socket in `host` counting datagrams received on `port`, and the
/// ones the socket itself dropped because its receive queue was full.
///
/// The queue is made large (8 MiB), but on a loaded machine the counting
/// thread can still fall behind a burst; those datagrams passed XDP and
/// reached the socket, and the kernel counts them, so a test can account
/// for them instead of guessing.
pub struct UdpCounter {
    count: Arc<AtomicU64>,
    sock: UdpSocket,
}

impl UdpCounter {
    pub fn start(host: &Host, v6: bool, port: u16) -> anyhow::Result<UdpCounter> {
        let addr: SocketAddr = (host.addr(v6), port).into();
        let sock = host.run(move || -> std::io::Result<UdpSocket> {
            let sock = UdpSocket::bind(addr)?;
            // FORCE needs CAP_NET_ADMIN (the tests run as root); without it
            // the kernel's rmem_max applies.
            if set_rcvbuf(&sock, libc::SO_RCVBUFFORCE).is_err() {
                set_rcvbuf(&sock, libc::SO_RCVBUF)?;
            }
            Ok(sock)
        })??;
        let count = Arc::new(AtomicU64::new(0));
        let c = count.clone();
        let reader = sock.try_clone()?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while reader.recv(&mut buf).is_ok() {
                c.fetch_add(1, Ordering::Relaxed);
            }
        });
        Ok(UdpCounter { count, sock })
    }

    pub fn received(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Datagrams this socket dropped since it was opened (receive queue
    /// full): the kernel's `sk_drops`, read with SO_MEMINFO.
    pub fn overflowed(&self) -> u64 {
        // From <linux/sock_diag.h>; the libc crate does not define them.
        const SO_MEMINFO: libc::c_int = 55;
        const SK_MEMINFO_DROPS: usize = 8;
        let mut info = [0u32; 9];
        let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
        // SAFETY: a valid socket and a buffer of `len` bytes.
        let rc = unsafe {
            libc::getsockopt(self.sock.as_raw_fd(), libc::SOL_SOCKET, SO_MEMINFO, info.as_mut_ptr().cast(), &mut len)
        };
        assert_eq!(rc, 0, "SO_MEMINFO: {}", std::io::Error::last_os_error());
        u64::from(info[SK_MEMINFO_DROPS])
    }
}

fn set_rcvbuf(sock: &UdpSocket, opt: libc::c_int) -> std::io::Result<()> {
    let bytes: libc::c_int = 8 << 20;
    // SAFETY: a valid socket and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// A UDP flood running on its own thread until stopped; returns the count.
pub struct Flood {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<anyhow::Result<u64>>,
}

impl Flood {
    pub fn start(from: &Host, to: IpAddr, port: u16, payload: usize) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let bind: SocketAddr = (from.addr(to.is_ipv6()), 0).into();
        let s = stop.clone();
        let handle = from.spawn(move || -> anyhow::Result<u64> {
            let sock = UdpSocket::bind(bind)?;
            let buf = vec![0xa5u8; payload];
            let mut sent = 0;
            while !s.load(Ordering::Relaxed) {
                if sock.send_to(&buf, (to, port)).is_ok() {
                    sent += 1;
                }
            }
            Ok(sent)
        });
        Flood { stop, handle: handle_flatten(handle) }
    }

    /// Stops the flood; returns how many datagrams were sent.
    pub fn stop(self) -> anyhow::Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().map_err(|_| anyhow::anyhow!("flood thread panicked"))?
    }
}

fn handle_flatten(h: std::thread::JoinHandle<anyhow::Result<anyhow::Result<u64>>>) -> std::thread::JoinHandle<anyhow::Result<u64>> {
    std::thread::spawn(move || h.join().map_err(|_| anyhow::anyhow!("thread panicked"))??)
}

/// A TCP echo service in `host` on `port` (both families), serving until
/// the process ends.
pub fn echo_server(host: &Host, port: u16) -> anyhow::Result<()> {
    for v6 in [false, true] {
        let addr: SocketAddr = (host.addr(v6), port).into();
        let listener = host.run(move || TcpListener::bind(addr))??;
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                std::thread::spawn(move || echo(conn));
            }
        });
    }
    Ok(())
}

fn echo(mut conn: TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = conn.read(&mut buf) {
        if n == 0 || conn.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}

/// Opens a connection to `to:port` from `from` and does `n` request/response
/// round trips of 64 bytes. Returns the transactions that completed.
pub fn tcp_transactions(from: &Host, to: IpAddr, port: u16, n: u32, timeout: Duration) -> anyhow::Result<u32> {
    from.run(move || -> anyhow::Result<u32> {
        let mut s = TcpStream::connect_timeout(&(to, port).into(), timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_nodelay(true)?;
        let req = [0x42u8; 64];
        let mut resp = [0u8; 64];
        let mut done = 0;
        for _ in 0..n {
            if s.write_all(&req).is_err() || s.read_exact(&mut resp).is_err() || resp != req {
                break;
            }
            done += 1;
        }
        Ok(done)
    })?
}

/// Transactions over `duration`, each on a fresh connection (what a web
/// client does), one every `pace` at most: (completed, failed).
pub fn tcp_rate(from: &Host, to: IpAddr, port: u16, duration: Duration, pace: Duration) -> anyhow::Result<(u64, u64)> {
    from.run(move || {
        let end = Instant::now() + duration;
        let (mut ok, mut failed) = (0, 0);
        while Instant::now() < end {
            let started = Instant::now();
            let r = (|| -> std::io::Result<()> {
                let mut s = TcpStream::connect_timeout(&(to, port).into(), Duration::from_millis(500))?;
                s.set_read_timeout(Some(Duration::from_millis(500)))?;
                let mut resp = [0u8; 64];
                s.write_all(&[7u8; 64])?;
                s.read_exact(&mut resp)
            })();
            if r.is_ok() { ok += 1 } else { failed += 1 }
            std::thread::sleep(pace.saturating_sub(started.elapsed()));
        }
        (ok, failed)
    })
}

/// `hping3 -S --rand-source --flood` at `to:port` from `from` (spoofed SYNs,
/// as skbs from a raw socket), bounded by `timeout max`; stopped on drop
/// (SIGTERM to `timeout`, which passes it on to hping3).
pub struct SpoofedSynFlood(std::process::Child);

impl SpoofedSynFlood {
    pub fn start(from: &Host, to: Ipv4Addr, port: u16, max: Duration) -> anyhow::Result<SpoofedSynFlood> {
        use anyhow::Context as _;
        let child = from
            .command("timeout")
            .args([&max.as_secs().max(1).to_string(), "hping3", "-S", "--rand-source", "--flood", "-q", "-p", &port.to_string()])
            .arg(to.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting hping3 (cargo xtask setup installs it)")?;
        Ok(SpoofedSynFlood(child))
    }

    /// Still flooding (hping3 did not stop, `max` has not passed).
    pub fn running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for SpoofedSynFlood {
    fn drop(&mut self) {
        // SAFETY: signals our own child by its pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// One transaction from source address `src`: connect, 64 bytes each way,
/// close; `timeout` bounds the connect (SO_SNDTIMEO) and the read.
pub fn tcp_transaction_from(src: Ipv4Addr, to: SocketAddrV4, timeout: Duration) -> std::io::Result<()> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on an fd this function owns (handed to
    // TcpStream at once, which closes it); the sockaddr and timeval are
    // valid for the sizes given.
    let mut s = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let s = TcpStream::from_raw_fd(fd);
        let tv = libc::timeval { tv_sec: timeout.as_secs() as _, tv_usec: timeout.subsec_micros() as _ };
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDTIMEO, (&tv as *const libc::timeval).cast(), size_of_val(&tv) as u32);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as u16;
        sa.sin_addr.s_addr = u32::from(src).to_be();
        if libc::bind(fd, (&sa as *const libc::sockaddr_in).cast(), size_of_val(&sa) as u32) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        sa.sin_addr.s_addr = u32::from(*to.ip()).to_be();
        sa.sin_port = to.port().to_be();
        if libc::connect(fd, (&sa as *const libc::sockaddr_in).cast(), size_of_val(&sa) as u32) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        s
    };
    s.set_read_timeout(Some(timeout))?;
    s.set_nodelay(true)?;
    let req = [0x42u8; 64];
    let mut resp = [0u8; 64];
    s.write_all(&req)?;
    s.read_exact(&mut resp)?;
    if resp != req {
        return Err(std::io::Error::other("echo mismatch"));
    }
    Ok(())
}

/// Transactions over `window` from `from`, `conc` at a time, each on a fresh
/// connection from the next of `sources` (addresses of `from`), as many
/// clients behind one link: (completed within the window, failed).
pub fn tcp_rate_from_sources(
    from: &Host,
    sources: &[Ipv4Addr],
    to: SocketAddrV4,
    window: Duration,
    conc: usize,
    timeout: Duration,
) -> anyhow::Result<(u64, u64)> {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let sources: Arc<Vec<Ipv4Addr>> = Arc::new(sources.to_vec());
    anyhow::ensure!(!sources.is_empty(), "no source address");
    let end = Instant::now() + window;
    let workers: Vec<_> = (0..conc.max(1))
        .map(|_| {
            let (ok, failed, next, sources) = (ok.clone(), failed.clone(), next.clone(), sources.clone());
            from.spawn(move || {
                while Instant::now() < end {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize % sources.len();
                    let r = tcp_transaction_from(sources[i], to, timeout);
                    if Instant::now() >= end {
                        break; // finished after the window: not counted either way
                    }
                    if r.is_ok() { &ok } else { &failed }.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().map_err(|_| anyhow::anyhow!("client thread panicked"))??;
    }
    Ok((ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed)))
}
