//! Resident memory of the daemon with many idle DOTS sessions: `bench_control
//! sessions` opens them (DTLS 1.2 handshakes with PSK identities of a domain
//! made for it, then nothing), and the daemon's VmRSS/VmHWM is read before
//! and after. The same client against libcoap's coap-server-openssl gives a
//! floor: a plain CoAP/DTLS server keeping the same sessions.

use std::{
    path::Path,
    process::{Child, Stdio},
    time::Duration,
};

use anyhow::Context;
use mitigator_tests::{signal::PSK_KEY, Host, Lab};

use super::control_lab::{self as cl, Mem};
use crate::step;

/// How the sessions were opened, and the memory of the server holding them.
#[derive(Clone, Debug, Default)]
pub struct Held {
    pub wanted: usize,
    pub opened: usize,
    pub failed: usize,
    pub open_s: f64,
    pub before: Mem,
    pub after: Mem,
    /// After the client closed them all (close_notify).
    pub closed: Mem,
    /// The client process's own VmRSS with all sessions open (KiB).
    pub client_rss_kib: u64,
    /// Sessions that answered a CoAP ping after the memory was read.
    pub alive: usize,
}

impl Held {
    /// RSS growth per open session, in bytes.
    pub fn per_session(&self) -> f64 {
        self.after.rss_kib.saturating_sub(self.before.rss_kib) as f64 * 1024.0 / self.opened.max(1) as f64
    }
}

pub struct Memory {
    pub ours: Held,
    /// "DOTS client connected" lines in the daemon's log: sessions it served.
    pub connected: usize,
    pub libcoap: Option<Held>,
}

/// Settling time before each reading: accept queues drain, tasks start.
const SETTLE: Duration = Duration::from_secs(5);
const CONCURRENCY: &str = "32";

fn sessions_args(server: &str, n: usize) -> Vec<String> {
    [
        "sessions",
        "--server",
        server,
        "--identity-prefix",
        "idle-",
        "--count",
        &n.to_string(),
        "--key",
        PSK_KEY,
        "--concurrency",
        CONCURRENCY,
    ]
    .map(String::from)
    .to_vec()
}

/// Opens `n` sessions from `client` to `server` while reading `pid`'s memory.
fn hold(example: &Path, client: &Host, server: &str, n: usize, pid: u32) -> anyhow::Result<Held> {
    std::thread::sleep(Duration::from_secs(2));
    let before = cl::mem(pid)?;
    let mut child = cl::spawn_client(example, client, &sessions_args(server, n))?;
    let ready = cl::wait_line(&mut child, "ready")?;
    let num = |i: usize| ready.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    step(&format!(
        "control: {} sessions open ({} failed) in {:.1} s; idle for {} s",
        num(1),
        num(2),
        num(3),
        SETTLE.as_secs()
    ));
    std::thread::sleep(SETTLE);
    let after = cl::mem(pid)?;
    let alive = cl::finish(child)?;
    step(&format!("control: {alive} of {} sessions answered a CoAP ping after idling", num(1)));
    std::thread::sleep(Duration::from_secs(2));
    let closed = cl::mem(pid)?;
    let client_rss_kib = num(4) as u64;
    Ok(Held {
        wanted: n,
        opened: num(1) as usize,
        failed: num(2) as usize,
        open_s: num(3),
        before,
        after,
        closed,
        client_rss_kib,
        alive,
    })
}

pub fn run(example: &Path, n: usize) -> anyhow::Result<Memory> {
    let lab = cl::start("mtgm", &cl::domain("idle-domain", "2001:db8:115::/48", "idle-", n))?;
    let pid = cl::daemon_pid(&lab.daemon)?;
    step(&format!(
        "control: daemon pid {pid}; opening {n} idle DTLS sessions (PSK identities idle-0 …)"
    ));
    let ours = hold(example, &lab.client, "203.0.113.10:4646", n, pid)?;
    let connected = lab.daemon.log().matches("DOTS client connected").count();
    drop(lab);
    let libcoap = match libcoap_floor(example, n) {
        Ok(h) => Some(h),
        Err(e) => {
            step(&format!("control: libcoap floor not measured: {e:#}"));
            None
        }
    };
    Ok(Memory {
        ours,
        connected,
        libcoap,
    })
}

/// coap-server-openssl, killed on drop (a process this bench started).
struct CoapServer(Child);

impl Drop for CoapServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The same sessions held by libcoap's example server (DTLS on port+1 =
/// 5684, PSK key `-k`, any identity).
fn libcoap_floor(example: &Path, n: usize) -> anyhow::Result<Held> {
    let mut lab = Lab::new("mtgl")?;
    let host = lab.add_host("host", 10)?;
    let client = lab.add_host("client", 20)?;
    step(&format!(
        "control: libcoap floor: coap-server-openssl in mtgl-host, {n} idle DTLS sessions"
    ));
    let server = host
        .command("coap-server-openssl")
        .args(["-A", &host.v4.to_string(), "-p", "5683", "-k", PSK_KEY, "-v", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("coap-server-openssl (apt-get install libcoap3-bin)")?;
    let server = CoapServer(server);
    let held = hold(example, &client, &format!("{}:5684", host.v4), n, server.0.id())?;
    drop(server);
    drop(lab);
    Ok(held)
}
