//! Shared by tests/transport_dtls.rs and tests/transport_tls.rs: a dev PKI, libcoap's
//! client as the real peer, and a tiny CoAP responder (just enough of RFC 7252 and
//! RFC 8323 to answer a GET).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mitigator::certs::{create_dev_pki, DevPki};
use mitigator::transport::SecurityConfig;

pub const PAYLOAD: &str = "mitigator-transport-ok";

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("mitigator=debug"))
        .with_test_writer()
        .try_init();
}

/// A fresh directory under the system temp dir.
pub fn scratch_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mitigator-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A dev PKI with clients "alice" and "bob".
pub fn pki(tag: &str) -> DevPki {
    create_dev_pki(&scratch_dir(tag), &["dots.example.net".into()], &["alice".into(), "bob".into()]).unwrap()
}

pub fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

/// Server keying material from a PKI, plus a PSK table.
pub fn security_config(pki: &DevPki, psk: &[(&str, &str)]) -> SecurityConfig {
    SecurityConfig {
        ca_pem: Some(read(&pki.ca_pem)),
        cert_pem: read(&pki.server_pem),
        key_pem: read(&pki.server_key_pem),
        psk: psk.iter().map(|(i, k)| (i.as_bytes().to_vec(), k.as_bytes().to_vec())).collect(),
    }
}

/// Runs `coap-client-openssl` (bounded by -B) and returns stdout + stderr: its exit code
/// is always 0, so the output is all there is to judge.
pub async fn coap_client(args: &[&str]) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("coap-client-openssl").args(args).kill_on_drop(true).output(),
    )
    .await
    .expect("coap-client-openssl hung")
    .expect("coap-client-openssl runs (apt-get install libcoap3-bin)");
    let text = format!(
        "{}\n--stderr--\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("coap-client-openssl {args:?}:\n{text}");
    text
}

/// Did the client print the payload as a response body?
pub fn got_payload(output: &str) -> bool {
    output.split("--stderr--").next().unwrap().contains(PAYLOAD)
}

// ----- CoAP over UDP (RFC 7252): answer a CON request with a piggybacked ACK 2.05.

pub fn coap_udp_response(req: &[u8]) -> Option<Vec<u8>> {
    let (ver, typ, tkl) = (req.first()? >> 6, (req[0] >> 4) & 3, (req[0] & 0x0f) as usize);
    let code = *req.get(1)?;
    if ver != 1 || typ != 0 || tkl > 8 || req.len() < 4 + tkl || code == 0 || code >> 5 != 0 {
        return None; // only CON requests (class 0, not Empty)
    }
    let mut resp = vec![(1 << 6) | (2 << 4) | tkl as u8, 0x45, req[2], req[3]];
    resp.extend_from_slice(&req[4..4 + tkl]);
    resp.push(0xff);
    resp.extend_from_slice(PAYLOAD.as_bytes());
    Some(resp)
}

// ----- CoAP over TCP (RFC 8323): Len/TKL nibble, extended length, code, token.

pub struct TcpFrame {
    pub code: u8,
    pub token: Vec<u8>,
}

/// Parses one frame from the front of `buf`: Some((frame, bytes used)) when complete.
pub fn parse_tcp_frame(buf: &[u8]) -> Option<(TcpFrame, usize)> {
    let (len_nibble, tkl) = (*buf.first()? >> 4, (buf[0] & 0x0f) as usize);
    let (ext, base) = match len_nibble {
        13 => (1, 13),
        14 => (2, 269),
        15 => (4, 65_805),
        n => (0, n as usize),
    };
    let ext_bytes = buf.get(1..1 + ext)?;
    let len = base + ext_bytes.iter().fold(0usize, |a, b| (a << 8) | *b as usize);
    let head = 1 + ext + 1 + tkl;
    if buf.len() < head + len {
        return None;
    }
    let code = buf[1 + ext];
    Some((TcpFrame { code, token: buf[2 + ext..head].to_vec() }, head + len))
}

pub fn encode_tcp_frame(code: u8, token: &[u8], body: &[u8]) -> Vec<u8> {
    let len = body.len();
    let mut out = Vec::new();
    match len {
        0..=12 => out.push(((len as u8) << 4) | token.len() as u8),
        13..=268 => out.extend([(13 << 4) | token.len() as u8, (len - 13) as u8]),
        _ => {
            let l = (len - 269) as u16;
            out.extend([(14 << 4) | token.len() as u8]);
            out.extend(l.to_be_bytes());
        }
    }
    out.push(code);
    out.extend_from_slice(token);
    out.extend_from_slice(body);
    out
}

/// CSM (7.01) with no options: RFC 8323 section 5.3, sent first by both sides.
pub fn csm() -> Vec<u8> {
    encode_tcp_frame(0xe1, &[], &[])
}

/// The answer to one frame: CSM is absorbed, Ping (7.02) gets Pong (7.03), a request
/// gets 2.05 with the payload.
pub fn coap_tcp_response(frame: &TcpFrame) -> Option<Vec<u8>> {
    match frame.code {
        0xe1 => None,
        0xe2 => Some(encode_tcp_frame(0xe3, &frame.token, &[])),
        c if c != 0 && c >> 5 == 0 => {
            let mut body = vec![0xff];
            body.extend_from_slice(PAYLOAD.as_bytes());
            Some(encode_tcp_frame(0x45, &frame.token, &body))
        }
        _ => None,
    }
}
