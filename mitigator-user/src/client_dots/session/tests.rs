use std::time::{Duration, Instant};

use dots_proto::coap::{datagram, stream, Code, Message, MessageType, Signal, Token};
use dots_proto::signal::{Heartbeat, MitigatePath, SignalBody, SignalPath};

use super::*;

fn params() -> SessionParams {
    SessionParams {
        transmission: TransmissionParams {
            ack_timeout: Duration::from_secs(2),
            ack_random_factor: 1.5,
            max_retransmit: 3,
            ..TransmissionParams::default()
        },
        heartbeat_interval: Duration::from_secs(30),
        missing_hb_allowed: 3,
        non_min_interval: Duration::from_secs(3),
    }
}

fn config_get() -> Request {
    Request::new(Code::GET, SignalPath::Config { sid: None })
}

fn drain(s: &mut Session) -> Vec<Message> {
    std::iter::from_fn(|| s.poll_transmit()).map(|w| datagram::decode(&w).unwrap()).collect()
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

#[test]
fn confirmable_request_is_retransmitted_max_retransmit_times_then_fails() {
    let t0 = Instant::now();
    let mut s =
        Session::new(Framing::Datagram, SessionParams { heartbeat_interval: Duration::ZERO, ..params() }, t0, 42);
    let id = s.send_request(config_get(), t0);
    let first = drain(&mut s);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].mtype, MessageType::Con);
    let mut now = t0;
    let mut sent = 0;
    while let Some(t) = s.poll_timeout() {
        now = t;
        s.handle_timeout(now);
        for m in drain(&mut s) {
            // Same message id every time: the server deduplicates a CON by it.
            assert_eq!(m.message_id, first[0].message_id);
            sent += 1;
        }
    }
    assert_eq!(sent, 3, "max-retransmit 3");
    assert_eq!(s.stats().retransmissions, 3);
    // Timeouts of 2..3 s doubling: the last one ends 30..45 s after the first send.
    let ev = events(&mut s);
    assert!(matches!(&ev[..], [Event::Failed { id: i, error: RequestError::Timeout }] if *i == id), "{ev:?}");
    assert!(now - t0 >= Duration::from_secs(2 + 4 + 8 + 16));
}

#[test]
fn piggybacked_ack_completes_and_stops_retransmission() {
    let t0 = Instant::now();
    let mut s = Session::new(Framing::Datagram, params(), t0, 7);
    let id = s.send_request(config_get(), t0);
    let req = drain(&mut s).remove(0);
    let mut ack = Message::new(MessageType::Ack, Code::CONTENT, req.message_id, req.token);
    ack.payload = b"x".to_vec();
    s.handle_input(&datagram::encode(&ack).unwrap(), t0 + Duration::from_millis(10));
    let ev = events(&mut s);
    assert!(matches!(&ev[..], [Event::Response { id: i, response }] if *i == id && response.code == Code::CONTENT));
    s.handle_timeout(t0 + Duration::from_secs(10));
    assert!(drain(&mut s).is_empty(), "nothing retransmitted after the ACK");
}

#[test]
fn empty_ack_then_separate_confirmable_response_is_acknowledged() {
    let t0 = Instant::now();
    let mut s = Session::new(Framing::Datagram, params(), t0, 9);
    let id = s.send_request(config_get(), t0);
    let req = drain(&mut s).remove(0);
    s.handle_input(&datagram::encode(&Message::empty_ack(req.message_id)).unwrap(), t0);
    s.handle_timeout(t0 + Duration::from_secs(5));
    assert!(drain(&mut s).is_empty(), "no retransmission after an empty ACK");
    let sep = Message::new(MessageType::Con, Code::CONTENT, 999, req.token);
    s.handle_input(&datagram::encode(&sep).unwrap(), t0 + Duration::from_secs(6));
    let out = drain(&mut s);
    assert_eq!((out[0].mtype, out[0].code, out[0].message_id), (MessageType::Ack, Code::EMPTY, 999));
    assert!(matches!(&events(&mut s)[..], [Event::Response { id: i, .. }] if *i == id));
}

#[test]
fn non_confirmable_request_is_resent_no_faster_than_3s_with_fresh_ids() {
    let t0 = Instant::now();
    let mut s = Session::new(Framing::Datagram, params(), t0, 11);
    let mut req =
        Request::new(Code::PUT, SignalPath::Mitigate(MitigatePath { cdid: None, cuid: "c".into(), mid: Some(1) }));
    req.confirmable = false;
    s.send_request(req, t0);
    let first = drain(&mut s).remove(0);
    assert_eq!(first.mtype, MessageType::Non);
    let next = s.poll_timeout().unwrap();
    assert!(next - t0 >= Duration::from_secs(3), "first re-send after {:?}", next - t0);
    s.handle_timeout(next);
    let again = drain(&mut s).remove(0);
    assert_eq!(again.token, first.token);
    assert_ne!(again.message_id, first.message_id);
}

#[test]
fn heartbeats_are_sent_and_unanswered_ones_lose_the_session() {
    let t0 = Instant::now();
    let mut s = Session::new(Framing::Datagram, params(), t0, 13);
    let mut now = t0;
    for n in 1..=3 {
        now += Duration::from_secs(30);
        s.handle_timeout(now);
        let hb = drain(&mut s);
        assert_eq!(hb.len(), 1, "heartbeat {n}");
        assert_eq!((hb[0].code, hb[0].mtype), (Code::PUT, MessageType::Non));
        assert_eq!(hb[0].uri_path().unwrap(), [".well-known", "dots", "hb"]);
        assert_eq!(Heartbeat::from_cbor(&hb[0].payload).unwrap().value, Heartbeat { peer_hb_status: false });
        assert!(events(&mut s).is_empty());
    }
    now += Duration::from_secs(30);
    s.handle_timeout(now);
    assert!(matches!(&events(&mut s)[..], [Event::Lost { .. }]));
    assert!(s.is_lost());
}

#[test]
fn answered_heartbeats_keep_the_session_and_server_heartbeats_get_2_04() {
    let t0 = Instant::now();
    let mut s = Session::new(Framing::Datagram, params(), t0, 17);
    // The server's heartbeat: NON PUT /hb.
    let mut shb = Message::request(Code::PUT, MessageType::Non, 500, Token::new(&[1, 2]).unwrap());
    shb.set_uri_path("/.well-known/dots/hb");
    shb.payload = Heartbeat { peer_hb_status: true }.to_cbor();
    s.handle_input(&datagram::encode(&shb).unwrap(), t0 + Duration::from_secs(1));
    let resp = drain(&mut s).remove(0);
    assert_eq!((resp.code, resp.mtype, resp.token), (Code::CHANGED, MessageType::Non, shb.token));
    let mut now = t0;
    for _ in 0..10 {
        now += Duration::from_secs(30);
        s.handle_timeout(now);
        let hb = drain(&mut s).remove(0);
        let ack = Message::new(MessageType::Non, Code::CHANGED, 1, hb.token);
        s.handle_input(&datagram::encode(&ack).unwrap(), now);
    }
    assert!(!s.is_lost());
    assert_eq!(s.stats().heartbeats_answered, 10);
}

#[test]
fn peer_hb_status_is_true_after_a_server_heartbeat() {
    let t0 = Instant::now();
    let mut s = Session::new(Framing::Datagram, params(), t0, 19);
    let mut shb = Message::request(Code::PUT, MessageType::Non, 500, Token::new(&[1]).unwrap());
    shb.set_uri_path("/.well-known/dots/hb");
    s.handle_input(&datagram::encode(&shb).unwrap(), t0 + Duration::from_secs(20));
    drain(&mut s);
    s.handle_timeout(t0 + Duration::from_secs(30));
    let hb = drain(&mut s).remove(0);
    assert_eq!(Heartbeat::from_cbor(&hb.payload).unwrap().value, Heartbeat { peer_hb_status: true });
}

#[test]
fn observe_registers_delivers_fresh_notifications_and_drops_stale_ones() {
    let t0 = Instant::now();
    let mut s = Session::new(Framing::Datagram, params(), t0, 23);
    let mut req =
        Request::new(Code::GET, SignalPath::Mitigate(MitigatePath { cdid: None, cuid: "c".into(), mid: Some(5) }));
    req.observe = Some(0);
    let id = s.send_request(req, t0);
    let get = drain(&mut s).remove(0);
    assert_eq!(get.observe(), Some(0));
    let mut first = Message::new(MessageType::Ack, Code::CONTENT, get.message_id, get.token);
    first.set_observe(10);
    s.handle_input(&datagram::encode(&first).unwrap(), t0);
    assert!(matches!(&events(&mut s)[..], [Event::Response { .. }]));
    for (seq, mid) in [(12, 1), (11, 2), (13, 3)] {
        let mut n = Message::new(MessageType::Non, Code::CONTENT, mid, get.token);
        n.set_observe(seq);
        s.handle_input(&datagram::encode(&n).unwrap(), t0);
    }
    let seqs: Vec<u32> = events(&mut s)
        .into_iter()
        .map(|e| match e {
            Event::Notification { id: i, message } if i == id => message.observe().unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(seqs, [12, 13], "11 arrived after 12 and is stale");
    // An unknown token gets RST.
    let stray = Message::new(MessageType::Non, Code::CONTENT, 77, Token::new(&[9, 9]).unwrap());
    s.handle_input(&datagram::encode(&stray).unwrap(), t0);
    let out = drain(&mut s);
    assert_eq!((out[0].mtype, out[0].message_id), (MessageType::Rst, 77));
    // Deregistration reuses the token with Observe 1.
    s.cancel_observation(id, t0).unwrap();
    let dereg = drain(&mut s).remove(0);
    assert_eq!((dereg.token, dereg.observe()), (get.token, Some(1)));
}

#[test]
fn reset_fails_the_request() {
    let t0 = Instant::now();
    let mut s = Session::new(Framing::Datagram, params(), t0, 29);
    let id = s.send_request(config_get(), t0);
    let req = drain(&mut s).remove(0);
    s.handle_input(&datagram::encode(&Message::reset_for(&req)).unwrap(), t0);
    assert!(matches!(&events(&mut s)[..], [Event::Failed { id: i, error: RequestError::Reset }] if *i == id));
}

#[test]
fn stream_session_sends_csm_first_answers_ping_and_times_out_without_retransmitting() {
    let t0 = Instant::now();
    let mut s = Session::new(Framing::Stream, SessionParams { heartbeat_interval: Duration::ZERO, ..params() }, t0, 31);
    let id = s.send_request(config_get(), t0);
    let frames: Vec<Message> =
        std::iter::from_fn(|| s.poll_transmit()).map(|w| stream::decode_one(&w, 1 << 16).unwrap()).collect();
    assert_eq!(frames[0].code, Code::CSM);
    assert_eq!(frames[1].code, Code::GET);
    let ping = Signal::Ping { custody: false }.to_message(Token::new(&[4]).unwrap());
    // Split across two chunks: the decoder reassembles.
    let wire = stream::encode(&ping).unwrap();
    s.handle_input(&wire[..1], t0);
    s.handle_input(&wire[1..], t0);
    let pong = stream::decode_one(&s.poll_transmit().unwrap(), 1 << 16).unwrap();
    assert_eq!((pong.code, pong.token), (Code::PONG, ping.token));
    let deadline = s.poll_timeout().unwrap();
    assert!(deadline - t0 >= Duration::from_secs(29), "MAX_TRANSMIT_WAIT, not ACK_TIMEOUT");
    s.handle_timeout(deadline);
    assert!(s.poll_transmit().is_none());
    let ev = events(&mut s);
    assert!(matches!(&ev[..], [Event::Failed { id: i, error: RequestError::Timeout }] if *i == id), "{ev:?}");
    let abort = Signal::Abort { bad_csm_option: None, diagnostic: "bye".into() }.to_message(Token::EMPTY);
    s.handle_input(&stream::encode(&abort).unwrap(), t0);
    assert!(matches!(&events(&mut s)[..], [Event::Lost { .. }]));
}
