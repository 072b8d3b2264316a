//! The DOTS signal channel in a lab: a daemon serving it, a dev PKI made
//! with `mitigator certs`, libcoap's `coap-client-openssl` as the real
//! third-party client, and a small test client (OpenSSL DTLS/TLS +
//! dots-proto) for what coap-client cannot express (If-Match, silence,
//! raw garbage inside an authenticated session).

use std::{
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use dots_proto::coap::{datagram, stream, Code, Message, MessageType, Signal, StreamDecoder, Token};
use dots_proto::signal::{IpPrefix, Lifetime, MitigationScope, Scope, SignalBody, Target};
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslStream, SslVerifyMode};

use crate::{daemon::mitigator_bin, netlab::Host, Daemon, Lab};

/// PSK of the `cpe1` identity in every signal lab (hex in the config).
pub const PSK_IDENTITY: &str = "cpe1";
pub const PSK_KEY: &str = "dots-lab-psk-key";

/// A lab with a host running the daemon (203.0.113.10), a DOTS client
/// (.20), an attacker (.66); clients `alice` (203.0.113.0/24 and the v6
/// lab prefix, also PSK identity `cpe1`), `bob` (198.51.100.0/24) and
/// `mallory` (a certificate of the CA, in no client domain).
pub struct SignalLab {
    pub lab: Lab,
    pub host: Host,
    pub client: Host,
    pub attacker: Host,
    pub daemon: Daemon,
    pub pki: PathBuf,
    pub alice_cuid: String,
    pub bob_cuid: String,
}

impl SignalLab {
    /// `signal_extra` goes into `[signal]` (keys only).
    pub fn start(tag: &str, signal_extra: &str) -> anyhow::Result<SignalLab> {
        let mut lab = Lab::new(tag)?;
        let host = lab.add_host("host", 10)?;
        let client = lab.add_host("client", 20)?;
        let attacker = lab.add_host("attacker", 66)?;
        let pki = PathBuf::from(format!("/tmp/mitigator-pki-{tag}"));
        let _ = std::fs::remove_dir_all(&pki);
        let out = std::process::Command::new(mitigator_bin())
            .args(["certs", "--dir", pki.to_str().unwrap(), "--server-name", "203.0.113.10"])
            .args(["--client", "alice", "--client", "bob", "--client", "mallory"])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() {
            bail!("mitigator certs failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let cuid_of = |name: &str| -> anyhow::Result<String> {
            let after = text.split(&format!("client {name}:")).nth(1).context("client in certs output")?;
            let line = after.lines().find(|l| l.starts_with("cuid ")).context("cuid line")?;
            Ok(line["cuid ".len()..].trim().to_string())
        };
        let (alice_cuid, bob_cuid) = (cuid_of("alice")?, cuid_of("bob")?);
        let psk_hex: String = PSK_KEY.bytes().map(|b| format!("{b:02x}")).collect();
        let p = |f: &str| pki.join(f).display().to_string();
        let signal = format!(
            r#"[signal]
ca = "{ca}"
cert = "{cert}"
key = "{key}"
dtls_listen = ["[::]:4646"]
tls_listen = ["[::]:4646"]
profile = "dropall"
{signal_extra}

[[signal.clients]]
name = "alice-domain"
prefixes = ["203.0.113.0/24", "2001:db8:113::/64"]
identities = ["cn:alice", "psk:{PSK_IDENTITY}"]
psk_keys = {{ {PSK_IDENTITY} = "{psk_hex}" }}

[[signal.clients]]
name = "bob-domain"
prefixes = ["198.51.100.0/24"]
identities = ["cuid:{bob_cuid}"]

# DOTS mitigations drop everything in scope, so that tests count exactly.
[profiles.dropall]
countermeasures = ["drop-all"]
"#,
            ca = p("ca.pem"),
            cert = p("server.pem"),
            key = p("server-key.pem"),
        );
        let daemon = Daemon::start(&host, tag, "interfaces = [\"eth0\"]\nattach_mode = \"native\"", &signal)?;
        let me = SignalLab { lab, host, client, attacker, daemon, pki, alice_cuid, bob_cuid };
        me.wait_listening()?;
        Ok(me)
    }

    fn wait_listening(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.daemon.log().contains("DOTS signal channel ready") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("signal channel not ready:\n{}", self.daemon.log())
    }

    pub fn cert(&self, name: &str) -> (PathBuf, PathBuf) {
        (self.pki.join(format!("{name}.pem")), self.pki.join(format!("{name}-key.pem")))
    }

    pub fn ca(&self) -> PathBuf {
        self.pki.join("ca.pem")
    }

    pub fn server(&self, v6: bool) -> IpAddr {
        self.host.addr(v6)
    }

    /// coap-client-openssl with a certificate, in the client namespace.
    pub fn coap_cert(&self, name: &str, args: &[&str]) -> anyhow::Result<CoapRun> {
        let (cert, key) = self.cert(name);
        let mut all: Vec<String> = ["-c", cert.to_str().unwrap(), "-j", key.to_str().unwrap(), "-C", self.ca().to_str().unwrap()]
            .map(String::from)
            .to_vec();
        all.extend(args.iter().map(|s| s.to_string()));
        coap_client(&self.client, &all)
    }

    /// coap-client-openssl with the lab's PSK, in the client namespace.
    pub fn coap_psk(&self, args: &[&str]) -> anyhow::Result<CoapRun> {
        let mut all: Vec<String> = ["-u", PSK_IDENTITY, "-k", PSK_KEY].map(String::from).to_vec();
        all.extend(args.iter().map(|s| s.to_string()));
        coap_client(&self.client, &all)
    }

    /// Writes `body` to a file under the PKI dir (for `-f`).
    pub fn body_file(&self, name: &str, body: &[u8]) -> anyhow::Result<String> {
        let p = self.pki.join(name);
        std::fs::write(&p, body)?;
        Ok(p.display().to_string())
    }

    /// Our own client over DTLS (certificate of `name`).
    pub fn dtls_client(&self, name: &str, v6: bool) -> anyhow::Result<TestClient> {
        let (cert, key) = self.cert(name);
        let (ca, server) = (self.ca(), SocketAddr::new(self.server(v6), 4646));
        self.client.run(move || TestClient::dtls(server, &ca, Some((&cert, &key))))?
    }

    /// Our own client over TLS (certificate of `name`).
    pub fn tls_client(&self, name: &str, v6: bool) -> anyhow::Result<TestClient> {
        self.tls_client_with(name, v6, true)
    }

    pub fn tls_client_with(&self, name: &str, v6: bool, csm: bool) -> anyhow::Result<TestClient> {
        let (cert, key) = self.cert(name);
        let (ca, server) = (self.ca(), SocketAddr::new(self.server(v6), 4646));
        self.client.run(move || TestClient::tls_with(server, &ca, &cert, &key, csm))?
    }
}

// ------------------------------------------------------------ coap-client

/// What coap-client printed, with the responses it logged (`-v 7`).
#[derive(Debug)]
pub struct CoapRun {
    pub text: String,
    pub responses: Vec<CoapPdu>,
}

/// One PDU as libcoap's debug log shows it.
#[derive(Debug, Clone)]
pub struct CoapPdu {
    pub code: String,
    pub observe: Option<u32>,
    pub payload: Vec<u8>,
}

impl CoapRun {
    /// Responses and notifications from the server (codes 2.xx-5.xx).
    pub fn codes(&self) -> Vec<&str> {
        self.responses.iter().map(|r| r.code.as_str()).collect()
    }
    pub fn last(&self) -> anyhow::Result<&CoapPdu> {
        self.responses.last().with_context(|| format!("no response from the server:\n{}", self.text))
    }
    /// The decoded mitigation-scope bodies, in order.
    pub fn scopes(&self) -> Vec<MitigationScope> {
        self.responses.iter().filter_map(|r| MitigationScope::from_cbor(&r.payload).ok().map(|d| d.value)).collect()
    }
}

pub fn coap_client(from: &Host, args: &[String]) -> anyhow::Result<CoapRun> {
    let out = from
        .command("timeout")
        .arg("60")
        .arg("coap-client-openssl")
        .args(["-v", "7"])
        .args(args)
        .output()
        .context("coap-client-openssl (apt-get install libcoap3-bin)")?;
    let text = format!("{}\n--stderr--\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let responses = parse_pdus(&text);
    eprintln!("coap-client {args:?}: {:?}", responses.iter().map(|r| (&r.code, r.observe, r.payload.len())).collect::<Vec<_>>());
    Ok(CoapRun { text, responses })
}

/// Received PDUs from libcoap's debug output: lines like
/// `v:1 t:ACK c:2.01 i:1234 {01} [ Content-Format:dots+cbor ] :: binary data length 12`
/// followed by `<<a1...>>` (hex), or `:: 'text'` for printable payloads.
fn parse_pdus(text: &str) -> Vec<CoapPdu> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let Some(pos) = line.find("v:1 t:") else { continue };
        let pdu = &line[pos..];
        let Some(code) = pdu.split_whitespace().find_map(|w| w.strip_prefix("c:")) else { continue };
        let class = code.chars().next().unwrap_or('0');
        if !('2'..='5').contains(&class) {
            continue;
        }
        let observe = pdu.split("Observe:").nth(1).and_then(|r| r.split([',', ' ', ']']).next()).and_then(|v| v.parse().ok());
        let payload = if pdu.contains("binary data") {
            lines.get(i + 1).and_then(|l| l.split("<<").nth(1)).and_then(|h| h.split(">>").next()).map(hex).unwrap_or_default()
        } else if let Some(t) = pdu.split(":: '").nth(1) {
            t.trim_end_matches('\'').as_bytes().to_vec()
        } else {
            Vec::new()
        };
        out.push(CoapPdu { code: code.to_string(), observe, payload });
    }
    out
}

fn hex(h: &str) -> Vec<u8> {
    let h: String = h.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..h.len() / 2).filter_map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).ok()).collect()
}

// ------------------------------------------------------------ bodies

/// A mitigation request body for `prefixes` (Figure 7 shape).
pub fn mitigation_request(prefixes: &[&str], lifetime: Lifetime, trigger: Option<bool>) -> MitigationScope {
    MitigationScope {
        scopes: vec![Scope {
            target: Target {
                target_prefix: prefixes.iter().map(|p| p.parse::<IpPrefix>().expect("prefix")).collect(),
                ..Target::default()
            },
            lifetime: Some(lifetime),
            trigger_mitigation: trigger,
            ..Scope::default()
        }],
    }
}

/// Narrows the request to UDP to `port`: the signal channel itself (UDP
/// and TCP 4646 to the same host) must stay out of a drop-all scope.
pub fn udp_port(mut m: MitigationScope, port: u16) -> MitigationScope {
    for s in &mut m.scopes {
        s.target.target_protocol = vec![17];
        s.target.target_port_range = vec![dots_proto::signal::PortRange { lower_port: port, upper_port: None }];
    }
    m
}

pub fn mitigate_path(cuid: &str, mid: Option<u32>) -> String {
    match mid {
        Some(m) => format!("/.well-known/dots/mitigate/cuid={cuid}/mid={m}"),
        None => format!("/.well-known/dots/mitigate/cuid={cuid}"),
    }
}

// ------------------------------------------------------------ test client

/// A UDP socket as a Read/Write of datagrams, for OpenSSL's DTLS.
#[derive(Debug)]
struct Udp(UdpSocket);

impl Read for Udp {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.recv(buf)
    }
}
impl Write for Udp {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.send(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Wire {
    Dtls(SslStream<Udp>),
    Tls(SslStream<TcpStream>, StreamDecoder),
}

/// A minimal DOTS client: requests out, messages in, nothing automatic
/// (no heartbeats, no retransmissions), so tests control every byte.
pub struct TestClient {
    wire: Wire,
    next_id: u16,
    pending: Vec<Message>,
}

fn connector(method: SslMethod, ca: &Path, cert: Option<(&Path, &Path)>) -> anyhow::Result<SslConnector> {
    let mut b = SslConnector::builder(method)?;
    b.set_ca_file(ca)?;
    b.set_verify(SslVerifyMode::PEER);
    if let Some((cert, key)) = cert {
        b.set_certificate_file(cert, SslFiletype::PEM)?;
        b.set_private_key_file(key, SslFiletype::PEM)?;
    }
    Ok(b.build())
}

impl TestClient {
    pub fn dtls(server: SocketAddr, ca: &Path, cert: Option<(&Path, &Path)>) -> anyhow::Result<TestClient> {
        let sock = UdpSocket::bind(if server.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" })?;
        sock.connect(server)?;
        sock.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut cfg = connector(SslMethod::dtls(), ca, cert)?.configure()?;
        cfg.set_verify_hostname(false);
        let ssl = cfg.into_ssl("dots")?;
        let s = ssl.connect(Udp(sock)).map_err(|e| anyhow::anyhow!("DTLS handshake: {e}"))?;
        Ok(TestClient { wire: Wire::Dtls(s), next_id: 0x100, pending: Vec::new() })
    }

    pub fn tls(server: SocketAddr, ca: &Path, cert: &Path, key: &Path) -> anyhow::Result<TestClient> {
        Self::tls_with(server, ca, cert, key, true)
    }

    /// `csm`: send our CSM first, as RFC 8323 requires (false: to test the server's reaction).
    pub fn tls_with(server: SocketAddr, ca: &Path, cert: &Path, key: &Path, csm: bool) -> anyhow::Result<TestClient> {
        let tcp = TcpStream::connect_timeout(&server, Duration::from_secs(5))?;
        tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut cfg = connector(SslMethod::tls_client(), ca, Some((cert, key)))?.configure()?;
        cfg.set_verify_hostname(false);
        let s = cfg.connect("dots", tcp).map_err(|e| anyhow::anyhow!("TLS handshake: {e}"))?;
        let mut c = TestClient { wire: Wire::Tls(s, StreamDecoder::new(1 << 20)), next_id: 0, pending: Vec::new() };
        if csm {
            c.send(&Signal::Csm { max_message_size: Some(1 << 20), block_wise_transfer: true }.to_message(Token::EMPTY))?;
        }
        Ok(c)
    }

    pub fn is_stream(&self) -> bool {
        matches!(self.wire, Wire::Tls(..))
    }

    /// Raw bytes inside the secure channel (one datagram or stream bytes).
    pub fn send_raw(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        match &mut self.wire {
            Wire::Dtls(s) => s.ssl_write(bytes).map(|_| ()).map_err(|e| anyhow::anyhow!("{e}")),
            Wire::Tls(s, _) => s.write_all(bytes).map_err(Into::into),
        }
    }

    pub fn send(&mut self, m: &Message) -> anyhow::Result<()> {
        let bytes = if self.is_stream() { stream::encode(m)? } else { datagram::encode(m)? };
        self.send_raw(&bytes)
    }

    /// The next message from the server, within `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> anyhow::Result<Option<Message>> {
        if !self.pending.is_empty() {
            return Ok(Some(self.pending.remove(0)));
        }
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 70_000];
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            let n = match &mut self.wire {
                Wire::Dtls(s) => {
                    s.get_ref().0.set_read_timeout(Some(left))?;
                    s.ssl_read(&mut buf)
                }
                Wire::Tls(s, _) => {
                    s.get_ref().set_read_timeout(Some(left))?;
                    s.ssl_read(&mut buf)
                }
            };
            let n = match n {
                Ok(0) => bail!("connection closed by the server"),
                Ok(n) => n,
                Err(e) if e.io_error().is_some_and(|io| matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)) => return Ok(None),
                Err(e) if e.code() == openssl::ssl::ErrorCode::ZERO_RETURN => bail!("connection closed by the server"),
                Err(e) => bail!("read: {e}"),
            };
            match &mut self.wire {
                Wire::Dtls(_) => return Ok(Some(datagram::decode(&buf[..n]).map_err(|e| anyhow::anyhow!("{e}"))?)),
                Wire::Tls(_, dec) => {
                    let mut msgs = Vec::new();
                    dec.feed(&buf[..n], &mut msgs).map_err(|e| anyhow::anyhow!("{e}"))?;
                    self.pending.extend(msgs);
                    if !self.pending.is_empty() {
                        return Ok(Some(self.pending.remove(0)));
                    }
                }
            }
        }
        Ok(None)
    }

    /// A request (CON over DTLS) and its response, skipping anything else
    /// the server sends meanwhile (heartbeats, CSM, notifications).
    pub fn request(&mut self, mut m: Message) -> anyhow::Result<Message> {
        self.next_id = self.next_id.wrapping_add(1);
        m.message_id = self.next_id;
        m.mtype = MessageType::Con;
        if m.token.is_empty() {
            m.token = Token::new(&self.next_id.to_be_bytes()).unwrap();
        }
        self.send(&m)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(r) = self.recv(Duration::from_secs(1))? {
                if r.token == m.token && r.code.is_response() {
                    return Ok(r);
                }
            }
        }
        bail!("no response to {:?} {:?}", m.code, m.uri_path())
    }

    pub fn put<T: SignalBody>(&mut self, path: &str, body: &T, if_match: bool) -> anyhow::Result<Message> {
        let mut m = Message::request(Code::PUT, MessageType::Con, 0, Token::EMPTY);
        m.set_uri_path(path);
        m.set_content_format(271);
        if if_match {
            m.add_if_match(b"");
        }
        m.payload = body.to_cbor();
        self.request(m)
    }

    pub fn get(&mut self, path: &str) -> anyhow::Result<Message> {
        let mut m = Message::request(Code::GET, MessageType::Con, 0, Token::EMPTY);
        m.set_uri_path(path);
        self.request(m)
    }

    pub fn delete(&mut self, path: &str) -> anyhow::Result<Message> {
        let mut m = Message::request(Code::DELETE, MessageType::Con, 0, Token::EMPTY);
        m.set_uri_path(path);
        self.request(m)
    }
}

/// The diagnostic payload of an error response.
pub fn diagnostic(m: &Message) -> String {
    String::from_utf8_lossy(&m.payload).to_string()
}

/// Polls `f` until it returns Some, or fails at the deadline.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> anyhow::Result<Option<T>>) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The DOTS-owned protections in `mitigator status --json`.
pub fn dots_protections(d: &Daemon) -> anyhow::Result<Vec<serde_json::Value>> {
    let st = d.status()?;
    Ok(st["protections"]
        .as_array()
        .map(|ps| ps.iter().filter(|p| p["owner"].to_string().contains("dots") || p["owner"].to_string().contains("Dots")).cloned().collect())
        .unwrap_or_default())
}
