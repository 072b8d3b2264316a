//! The DOTS client library (`DotsClient`) against a DOTS responder on the real DTLS
//! server transport: mitigate / status / observe / efficacy / withdraw, session
//! configuration, Confirmable retransmission through a lossy proxy, reconnection after
//! the server restarts, heartbeat loss, and mids that keep increasing across restarts.

mod client_common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use client_common::*;
use dots_proto::coap::{Code, MessageType};
use dots_proto::signal::{AttackStatus, Lifetime, Status};
use mitigator::client_dots::{ClientError, DotsClient, MitigationSpec, SessionState};

fn spec() -> MitigationSpec {
    MitigationSpec::prefixes(vec!["203.0.113.7/32".parse().unwrap()])
        .with_ports(vec![dots_proto::signal::PortRange { lower_port: 443, upper_port: None }])
        .with_protocols(vec![6])
        .with_lifetime(Lifetime::Seconds(600))
}

#[tokio::test]
async fn mitigate_observe_efficacy_and_withdraw_over_dtls_psk() {
    let dir = scratch("lifecycle");
    let b = Arc::new(Behaviour::default());
    let server = FakeDots::start("127.0.0.1:0".parse().unwrap(), &server_security(&dir), b.clone()).await;
    let client = DotsClient::connect(client_config(server.addr, &dir)).await.unwrap();
    assert!(matches!(client.state(), SessionState::Up { .. }));
    assert_eq!(client.cuid(), dots_proto::signal::cuid_from_psk_identity(PSK_ID.as_bytes()));
    // 4.5: GET /config then PUT /config/sid=1, both Confirmable.
    let reqs = b.requests.lock().unwrap().clone();
    assert_eq!((reqs[0].0, reqs[0].1.as_str(), reqs[0].2), (Code::GET, "/.well-known/dots/config", MessageType::Con));
    assert_eq!(
        (reqs[1].0, reqs[1].1.as_str(), reqs[1].2),
        (Code::PUT, "/.well-known/dots/config/sid=1", MessageType::Con)
    );

    let ack = client.mitigate(&spec()).await.unwrap();
    assert_eq!((ack.mid, ack.code, ack.lifetime), (1, Code::CREATED, Some(Lifetime::Seconds(600))));
    let puts: Vec<_> =
        b.requests.lock().unwrap().iter().filter(|r| r.1.contains("mid=1") && r.0 == Code::PUT).cloned().collect();
    assert_eq!(puts[0].2, MessageType::Non, "mitigation requests are Non-confirmable (4.4)");

    let mut updates = client.updates();
    // observe_own (the default) registered an observation of the new mitigation.
    eventually("own mitigation observed", Duration::from_secs(5), || {
        b.requests.lock().unwrap().iter().any(|r| r.0 == Code::GET && r.1.ends_with("mid=1") && r.3 == Some(0))
    })
    .await;
    let now = client.status(Some(1)).await.unwrap();
    assert_eq!(now[0].status, Some(Status::AttackMitigationInProgress));
    client.efficacy(1, AttackStatus::UnderAttack).await.unwrap();
    client.withdraw(1).await.unwrap();
    // The observation's first answer, then the notification of the withdrawal.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let u = tokio::time::timeout_at(deadline, updates.recv()).await.expect("a notification").unwrap();
        if u.scopes.first().and_then(|s| s.status) == Some(Status::DotsClientWithdrawnMitigation) {
            assert_eq!(u.observed, Some(1));
            break;
        }
    }
    assert!(client.stats().notifications.load(Ordering::Relaxed) >= 1);
    let st = client.status(Some(1)).await.unwrap();
    assert_eq!(st[0].status, Some(Status::DotsClientWithdrawnMitigation));
    client.close().await;
}

#[tokio::test]
async fn a_refusal_carries_the_code_and_diagnostic() {
    let dir = scratch("refused");
    let b = Arc::new(Behaviour::default());
    *b.refuse_put.lock().unwrap() = Some(Code::CONFLICT);
    let server = FakeDots::start("127.0.0.1:0".parse().unwrap(), &server_security(&dir), b.clone()).await;
    let client = DotsClient::connect(client_config(server.addr, &dir)).await.unwrap();
    match client.mitigate(&spec()).await {
        Err(ClientError::Refused { code, diagnostic, .. }) => {
            assert_eq!(code, Code::CONFLICT);
            assert!(diagnostic.contains("refused by the test"), "{diagnostic}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    client.close().await;
}

/// The proxy drops the first two CoAP datagrams to the server: the GET /config (CON) is
/// retransmitted twice with the same message id and the session still comes up.
#[tokio::test]
async fn confirmable_request_is_retransmitted_through_loss_and_completes() {
    let dir = scratch("loss");
    let b = Arc::new(Behaviour::default());
    let server = FakeDots::start("127.0.0.1:0".parse().unwrap(), &server_security(&dir), b.clone()).await;
    let proxy = LossyProxy::start(server.addr, 2).await;
    let client = DotsClient::connect(client_config(proxy.addr, &dir)).await.unwrap();
    assert_eq!(proxy.dropped.load(Ordering::SeqCst), 2);
    assert_eq!(client.stats().retransmissions.load(Ordering::Relaxed), 2);
    assert_eq!(b.count(Code::GET, "/config"), 1, "the server saw only the surviving copy");
    assert_eq!(b.count(Code::PUT, "/config/sid="), 1);
    // A mitigation request (NON) through the same proxy, no loss left.
    assert_eq!(client.mitigate(&spec()).await.unwrap().mid, 1);
    client.close().await;
}

/// NON mitigation requests are re-sent until answered (4.4).
#[tokio::test]
async fn non_confirmable_mitigation_request_is_resent_until_answered() {
    let dir = scratch("non-loss");
    let b = Arc::new(Behaviour::default());
    let server = FakeDots::start("127.0.0.1:0".parse().unwrap(), &server_security(&dir), b.clone()).await;
    let mut cfg = client_config(server.addr, &dir);
    cfg.negotiate = false;
    let proxy = LossyProxy::start(server.addr, 1).await;
    cfg.server.port = proxy.addr.port();
    let client = DotsClient::connect(cfg).await.unwrap();
    let ack = client.mitigate(&spec()).await.unwrap();
    assert_eq!(ack.mid, 1);
    assert_eq!(proxy.dropped.load(Ordering::SeqCst), 1);
    assert_eq!(client.stats().retransmissions.load(Ordering::Relaxed), 1);
    client.close().await;
}

#[tokio::test]
async fn the_client_reconnects_after_the_server_restarts() {
    let dir = scratch("restart");
    let sec = server_security(&dir);
    let b = Arc::new(Behaviour::default());
    let server = FakeDots::start("127.0.0.1:0".parse().unwrap(), &sec, b.clone()).await;
    let addr = server.addr;
    let mut cfg = client_config(addr, &dir);
    cfg.preferences.heartbeat_interval = Some(1); // clamped to the server's minimum 15 s...
    cfg.negotiate = false; // ...so keep our own quick heartbeats instead.
    cfg.initial.heartbeat_interval = Duration::from_millis(300);
    cfg.initial.missing_hb_allowed = 3;
    let client = DotsClient::connect(cfg).await.unwrap();
    client.mitigate(&spec()).await.unwrap();
    client.observe(Some(1)).await.unwrap();
    let mut states = client.state_changes();
    server.crash().await;
    // Heartbeats go unanswered: the session is declared lost...
    let lost =
        tokio::time::timeout(Duration::from_secs(10), states.wait_for(|s| matches!(s, SessionState::Lost { .. })))
            .await
            .expect("session loss detected")
            .is_ok();
    assert!(lost);
    // While down, requests fail at once, saying why.
    assert!(matches!(client.status(None).await, Err(ClientError::Unreachable(_))));
    // ...and re-established with the restarted server on the same port.
    let b2 = Arc::new(Behaviour::default());
    let _server = FakeDots::start(addr, &sec, b2.clone()).await;
    tokio::time::timeout(Duration::from_secs(15), states.wait_for(|s| matches!(s, SessionState::Up { .. })))
        .await
        .expect("session back up")
        .unwrap();
    assert_eq!(client.stats().sessions.load(Ordering::Relaxed), 2);
    // The observation is registered again on the new session.
    eventually("observation re-registered", Duration::from_secs(5), || {
        b2.requests.lock().unwrap().iter().any(|r| r.0 == Code::GET && r.1.ends_with("mid=1") && r.3 == Some(0))
    })
    .await;
    assert_eq!(client.mitigate(&spec()).await.unwrap().mid, 2);
    client.close().await;
}

#[tokio::test]
async fn a_silent_server_is_declared_lost_after_missing_hb_allowed_heartbeats() {
    let dir = scratch("silent");
    let b = Arc::new(Behaviour::default());
    let server = FakeDots::start("127.0.0.1:0".parse().unwrap(), &server_security(&dir), b.clone()).await;
    let mut cfg = client_config(server.addr, &dir);
    cfg.negotiate = false;
    cfg.initial.heartbeat_interval = Duration::from_millis(200);
    cfg.initial.missing_hb_allowed = 3;
    let client = DotsClient::connect(cfg).await.unwrap();
    eventually("heartbeats answered", Duration::from_secs(5), || {
        client.stats().heartbeats_answered.load(Ordering::Relaxed) >= 2
    })
    .await;
    assert!(matches!(client.state(), SessionState::Up { .. }));
    b.silent.store(true, Ordering::SeqCst);
    let sent_before = b.count(Code::PUT, "/hb");
    // The Lost state is brief (4.7: the client "MUST then try to reestablish" at once),
    // so watch the counters rather than the state.
    eventually("loss detected", Duration::from_secs(10), || client.stats().sessions_lost.load(Ordering::Relaxed) == 1)
        .await;
    // Exactly missing-hb-allowed heartbeats went unanswered before the verdict (one more
    // may have been in flight when the server went silent).
    let unanswered = b.count(Code::PUT, "/hb") - sent_before;
    assert!((3..=4).contains(&unanswered), "{unanswered} heartbeats before loss");
    // A new session was established right away.
    eventually("new session", Duration::from_secs(10), || b.sessions.load(Ordering::SeqCst) == 2).await;
    client.close().await;
}

#[tokio::test]
async fn mids_keep_increasing_across_client_restarts() {
    let dir = scratch("mids");
    let b = Arc::new(Behaviour::default());
    let server = FakeDots::start("127.0.0.1:0".parse().unwrap(), &server_security(&dir), b.clone()).await;
    let mut mids = Vec::new();
    for _ in 0..3 {
        let client = DotsClient::connect(client_config(server.addr, &dir)).await.unwrap();
        mids.push(client.mitigate(&spec()).await.unwrap().mid);
        client.close().await;
    }
    assert_eq!(mids, [1, 2, 3]);
    assert_eq!(b.mids(), [1, 2, 3]);
    // And sids, one per session (4.5.2: MUST increase monotonically).
    let sids: Vec<String> = b
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.0 == Code::PUT && r.1.contains("sid="))
        .map(|r| r.1.clone())
        .collect();
    assert_eq!(sids.iter().map(|s| s.rsplit('=').next().unwrap().to_string()).collect::<Vec<_>>(), ["1", "2", "3"]);
    assert_eq!(b.sessions.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn wrong_psk_is_a_credentials_error_and_no_server_is_unreachable() {
    let dir = scratch("creds");
    let b = Arc::new(Behaviour::default());
    let server = FakeDots::start("127.0.0.1:0".parse().unwrap(), &server_security(&dir), b.clone()).await;
    let mut cfg = client_config(server.addr, &dir);
    // An unknown identity (the server alerts) and a wrong key (DTLS drops the bad
    // Finished silently, so the handshake stalls after the server answered).
    for (identity, key) in [("mallory", PSK_KEY), (PSK_ID, &b"wrong"[..])] {
        cfg.security.credential =
            mitigator::transport::ClientCredential::Psk { identity: identity.into(), key: key.to_vec() };
        match DotsClient::connect(cfg.clone()).await {
            Err(ClientError::Credentials(m)) => eprintln!("as expected: {m}"),
            Err(e) => panic!("{identity}: expected a credentials error, got {e}"),
            Ok(_) => panic!("{identity}: connected with a bad credential"),
        }
    }
    let nobody = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    match DotsClient::connect(client_config(nobody, &dir)).await {
        Err(ClientError::Unreachable(m)) => eprintln!("as expected: {m}"),
        Err(e) => panic!("expected unreachable, got {e}"),
        Ok(_) => panic!("connected to nobody"),
    }
}
