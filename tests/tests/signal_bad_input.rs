//! Bad input on the signal channel: each is answered as the RFCs say (or
//! dropped), a valid client keeps being served meanwhile, and nothing
//! changes in the state.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use dots_proto::coap::{BlockOpt, Code, Message, MessageType, Token};
use dots_proto::signal::{Lifetime, SignalBody};
use mitigator_tests::signal::{diagnostic, dots_protections, mitigate_path, mitigation_request, SignalLab};

fn put_raw(path: &str, payload: Vec<u8>) -> Message {
    let mut m = Message::request(Code::PUT, MessageType::Con, 0, Token::EMPTY);
    m.set_uri_path(path);
    m.set_content_format(271);
    m.payload = payload;
    m
}

#[test]
fn malformed_coap_cbor_unknown_keys_and_oversized_bodies() -> anyhow::Result<()> {
    let lab = SignalLab::start("mtg-sbm", "")?;
    let path = mitigate_path(&lab.alice_cuid, Some(1));
    let mut c = lab.dtls_client("alice", false)?;
    // Malformed CoAP in a CON (token length 9): RST (RFC 7252 4.2).
    c.send_raw(&[0x49, 0x03, 0xbe, 0xef])?;
    let rst = mitigator_tests::signal::wait_for("RST", Duration::from_secs(5), || Ok(c.recv(Duration::from_millis(500))?.filter(|m| m.message_id == 0xbeef)))?;
    assert_eq!(rst.mtype, MessageType::Rst);
    // Malformed CBOR: 4.00 with a diagnostic.
    let r = c.request(put_raw(&path, vec![0xa1, 0x19, 0x03]))?;
    assert_eq!(r.code, Code::BAD_REQUEST);
    assert!(!diagnostic(&r).is_empty());
    // An unknown comprehension-required key (section 10.6.1.1: 256-16383 are).
    let mut body = mitigation_request(&["203.0.113.10/32"], Lifetime::Seconds(60), None).to_cbor();
    assert_eq!(body[0], 0xa1);
    body[0] = 0xa2; // one more member in the outer map: key 1000 => 1
    body.extend_from_slice(&[0x19, 0x03, 0xe8, 0x01]);
    let r = c.request(put_raw(&path, body))?;
    assert_eq!(r.code, Code::BAD_REQUEST);
    assert!(diagnostic(&r).contains("comprehension-required"), "{}", diagnostic(&r));
    // Oversized through Block1: Size1 announces more than we take, 4.13.
    let mut m = put_raw(&path, vec![0u8; 1024]);
    m.set_block1(BlockOpt::new(0, true, 6).unwrap());
    m.set_size1(10_000_000);
    assert_eq!(c.request(m)?.code, Code::REQUEST_ENTITY_TOO_LARGE);
    // Over TLS, a frame bigger than our Max-Message-Size: Abort, connection closed.
    let mut t = lab.tls_client("alice", false)?;
    let huge = put_raw(&path, vec![0u8; 200_000]);
    // The server refuses from the frame header and closes while we still
    // write: the write may fail (EPIPE), and the Abort may be lost in the
    // TCP reset of unread data. Either way the connection ends.
    let _ = t.send_raw(&dots_proto::coap::stream::encode(&huge)?);
    let ended = mitigator_tests::signal::wait_for("Abort or close", Duration::from_secs(5), || match t.recv(Duration::from_millis(500)) {
        Ok(Some(m)) if m.code == Code::ABORT => Ok(Some(())),
        Ok(_) => Ok(None),
        Err(_) => Ok(Some(())),
    });
    assert!(ended.is_ok(), "an oversized frame ends the connection");
    // Nothing changed; a fresh client is served.
    assert!(dots_protections(&lab.daemon)?.is_empty());
    let mut fresh = lab.tls_client("alice", false)?;
    assert_eq!(fresh.get(&mitigate_path(&lab.alice_cuid, None))?.code, Code::NOT_FOUND);
    Ok(())
}

#[test]
fn garbage_floods_and_half_open_connections_do_not_stop_valid_clients() -> anyhow::Result<()> {
    let lab = SignalLab::start("mtg-sbg", "")?;
    let server = SocketAddr::new(lab.server(false), 4646);
    // Half-open: TCP connections that never start TLS, and a TLS session
    // that never sends its CSM.
    let half_open: Vec<TcpStream> = lab.attacker.run(move || (0..20).filter_map(|_| TcpStream::connect(server).ok()).collect())?;
    let mut no_csm = lab.tls_client_with("alice", false, false)?;
    // 10,000 garbage datagrams to the DTLS port from the attacker ...
    lab.attacker.run(move || -> anyhow::Result<()> {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        for i in 0..10_000u32 {
            let mut g = i.to_be_bytes().to_vec();
            g.extend_from_slice(&[0x16, 0xfe, 0xfd, 0, 0, (i % 251) as u8]);
            let _ = s.send_to(&g, server);
        }
        Ok(())
    })??;
    // ... and 10,000 garbage CoAP messages inside an authenticated session.
    let mut inside = lab.dtls_client("alice", false)?;
    for i in 0..10_000u32 {
        let garbage = [0x50 | (i % 16) as u8, 0xff, (i >> 8) as u8, i as u8, 0xff, 0xff];
        inside.send_raw(&garbage)?;
    }
    // A valid client (coap-client) is served meanwhile.
    let body = lab.body_file(
        "req.cbor",
        &mitigator_tests::signal::udp_port(mitigation_request(&["203.0.113.10/32"], Lifetime::Seconds(600), None), 9999).to_cbor(),
    )?;
    let uri = format!("coaps://203.0.113.10:4646{}", mitigate_path(&lab.alice_cuid, Some(1)));
    let r = lab.coap_cert("alice", &["-m", "put", "-t", "271", "-f", &body, "-B", "10", &uri])?;
    assert_eq!(r.last()?.code, "2.01", "{}", r.text);
    assert_eq!(dots_protections(&lab.daemon)?.len(), 1, "exactly the valid request changed the state");
    // The session without CSM is aborted at the deadline (RFC 8323 5.3).
    let abort = mitigator_tests::signal::wait_for("Abort for the missing CSM", Duration::from_secs(20), || {
        Ok(no_csm.recv(Duration::from_millis(500))?.filter(|m| m.code == Code::ABORT))
    })?;
    assert!(String::from_utf8_lossy(&abort.payload).contains("CSM"));
    // The half-open connections are still open (the transport times them
    // out on its own); valid clients never waited for them.
    assert_eq!(half_open.len(), 20);
    let mut ok = lab.tls_client("alice", false)?;
    assert_eq!(ok.get(&mitigate_path(&lab.alice_cuid, Some(1)))?.code, Code::CONTENT);
    Ok(())
}
