//! The session's CoAP behaviour, message by message, with no I/O.

use std::time::{Duration, Instant};

use dots_proto::coap::{datagram, stream, BlockOpt, Code, Message, MessageType, OptionNumber, Signal, Token};
use dots_proto::signal::{Heartbeat, IpPrefix, Lifetime, MitigationScope, Scope, SignalBody, Status, Target};

use super::*;
use crate::dots::ClientCtx;

fn client() -> ClientCtx {
    ClientCtx { cuid: "me".into(), domain: "d".into(), allowed: vec!["203.0.113.0/24".parse().unwrap()] }
}

fn settings(framing: Framing) -> SessionSettings {
    SessionSettings {
        framing,
        route: RoutePolicy::default(),
        observe_interval: Some(Duration::from_secs(10)),
        notification_spacing: Duration::from_secs(3),
        csm_timeout: Duration::from_secs(5),
    }
}

fn dgram(t0: Instant) -> Session {
    Session::new(settings(Framing::Datagram), Some(client()), 7, t0).0
}

fn transmitted(out: &[Output]) -> Vec<Vec<u8>> {
    out.iter().filter_map(|o| if let Output::Transmit(b) = o { Some(b.clone()) } else { None }).collect()
}

fn one_dgram(out: &[Output]) -> Message {
    let t = transmitted(out);
    assert_eq!(t.len(), 1, "{out:?}");
    datagram::decode(&t[0]).unwrap()
}

#[allow(clippy::vec_box)] // answer() takes the Box the session handed out
fn calls(out: Vec<Output>) -> Vec<Box<Call>> {
    out.into_iter().filter_map(|o| if let Output::Call(c) = o { Some(c) } else { None }).collect()
}

fn req(code: Code, mtype: MessageType, id: u16, path: &str) -> Message {
    let mut m = Message::request(code, mtype, id, Token::new(&[id as u8, 1]).unwrap());
    m.set_uri_path(path);
    m
}

fn mitigation_body() -> Vec<u8> {
    MitigationScope {
        scopes: vec![Scope {
            target: Target { target_prefix: vec![IpPrefix::new("203.0.113.10".parse().unwrap(), 32).unwrap()], ..Target::default() },
            lifetime: Some(Lifetime::Seconds(60)),
            ..Scope::default()
        }],
    }
    .to_cbor()
}

fn scope(mid: u32, status: Status) -> MitigationScope {
    MitigationScope { scopes: vec![Scope { mid: Some(mid), status: Some(status), ..Scope::default() }] }
}

#[test]
fn con_put_becomes_a_call_and_its_answer_a_piggybacked_ack_cached_for_duplicates() {
    let t0 = Instant::now();
    let mut s = dgram(t0);
    let mut m = req(Code::PUT, MessageType::Con, 100, "/.well-known/dots/mitigate/cuid=me/mid=1");
    m.set_content_format(271);
    m.payload = mitigation_body();
    let wire = datagram::encode(&m).unwrap();
    let mut c = calls(s.receive(&wire, t0));
    assert_eq!(c.len(), 1);
    assert!(matches!(c[0].op, Op::MitigatePut { .. }));
    // A retransmission while the registry works: nothing (the answer will come).
    assert!(s.receive(&wire, t0).is_empty());
    let out = s.answer(c.remove(0), Answer::Reply(Reply::empty(Code::CREATED)), t0);
    let ack = one_dgram(&out);
    assert_eq!((ack.mtype, ack.code, ack.message_id, ack.token), (MessageType::Ack, Code::CREATED, 100, m.token));
    // A later duplicate gets the cached response, not a second call.
    let again = s.receive(&wire, t0 + Duration::from_secs(1));
    assert_eq!(transmitted(&again), transmitted(&out));
}

#[test]
fn non_duplicates_are_ignored() {
    let t0 = Instant::now();
    let mut s = dgram(t0);
    let m = req(Code::GET, MessageType::Non, 5, "/.well-known/dots/mitigate/cuid=me");
    let wire = datagram::encode(&m).unwrap();
    assert_eq!(calls(s.receive(&wire, t0)).len(), 1);
    assert!(s.receive(&wire, t0).is_empty());
}

#[test]
fn malformed_con_gets_rst_malformed_non_and_garbage_nothing() {
    let t0 = Instant::now();
    let mut s = dgram(t0);
    // CON, message id 0x1234, token length 9 (invalid).
    let rst = one_dgram(&s.receive(&[0x49, 0x01, 0x12, 0x34], t0));
    assert_eq!((rst.mtype, rst.message_id, rst.code), (MessageType::Rst, 0x1234, Code::EMPTY));
    assert!(s.receive(&[0x59, 0x01, 0x12, 0x35], t0).is_empty(), "NON: silently dropped");
    assert!(s.receive(&[0xff, 0x00], t0).is_empty());
    // An Empty CON is a CoAP ping: RST (RFC 7252 4.3).
    let ping = datagram::encode(&Message::new(MessageType::Con, Code::EMPTY, 9, Token::EMPTY)).unwrap();
    assert_eq!(one_dgram(&s.receive(&ping, t0)).mtype, MessageType::Rst);
}

#[test]
fn unknown_critical_option_is_4_02_with_a_diagnostic() {
    let t0 = Instant::now();
    let mut s = dgram(t0);
    let mut m = req(Code::GET, MessageType::Con, 8, "/.well-known/dots/mitigate/cuid=me");
    m.options.push(OptionNumber(65001), vec![1]);
    let r = one_dgram(&s.receive(&datagram::encode(&m).unwrap(), t0));
    assert_eq!(r.code, Code::BAD_OPTION);
    assert!(String::from_utf8(r.payload).unwrap().contains("65001"));
}

#[test]
fn unauthorized_client_gets_4_01() {
    let t0 = Instant::now();
    let (mut s, _) = Session::new(settings(Framing::Datagram), None, 1, t0);
    let m = req(Code::GET, MessageType::Con, 8, "/.well-known/dots/mitigate/cuid=me");
    assert_eq!(one_dgram(&s.receive(&datagram::encode(&m).unwrap(), t0)).code, Code::UNAUTHORIZED);
}

#[test]
fn block1_transfer_continues_then_routes_the_whole_body() {
    let t0 = Instant::now();
    let mut s = dgram(t0);
    let body = mitigation_body();
    let (first, rest) = body.split_at(16);
    let mut b0 = req(Code::PUT, MessageType::Con, 20, "/.well-known/dots/mitigate/cuid=me/mid=3");
    b0.set_block1(BlockOpt::new(0, true, 0).unwrap());
    b0.payload = first.to_vec();
    let cont = one_dgram(&s.receive(&datagram::encode(&b0).unwrap(), t0));
    assert_eq!(cont.code, Code::CONTINUE);
    assert_eq!(cont.block1(), Some(BlockOpt::new(0, true, 0).unwrap()));
    let mut b1 = req(Code::PUT, MessageType::Con, 21, "/.well-known/dots/mitigate/cuid=me/mid=3");
    b1.set_block1(BlockOpt::new(1, false, 0).unwrap());
    b1.payload = rest.to_vec();
    let c = calls(s.receive(&datagram::encode(&b1).unwrap(), t0));
    assert!(matches!(&c[0].op, Op::MitigatePut { req, .. } if req.mid == 3));
}

#[test]
fn large_responses_are_sliced_with_block2() {
    let t0 = Instant::now();
    let mut s = dgram(t0);
    let m = req(Code::GET, MessageType::Con, 30, "/.well-known/dots/config");
    let c = calls(s.receive(&datagram::encode(&m).unwrap(), t0)).remove(0);
    let big = Reply::error(Code::CONTENT, "x".repeat(3000));
    let r = one_dgram(&s.answer(c, Answer::Reply(big), t0));
    assert_eq!(r.block2(), Some(BlockOpt::new(0, true, 6).unwrap()));
    assert_eq!((r.payload.len(), r.size2()), (1024, Some(3000)));
}

#[test]
fn observe_registers_notifies_non_and_ends_with_status_6() {
    let t0 = Instant::now();
    let mut s = dgram(t0);
    let mut m = req(Code::GET, MessageType::Con, 40, "/.well-known/dots/mitigate/cuid=me/mid=1");
    m.set_observe(0);
    let c = calls(s.receive(&datagram::encode(&m).unwrap(), t0)).remove(0);
    let r = one_dgram(&s.answer(c, Answer::Mitigations(Ok(scope(1, Status::AttackSuccessfullyMitigated))), t0));
    let first_seq = r.observe().expect("registration response carries Observe");
    assert_eq!(s.observations(), 1);
    s.mitigation_changed(1);
    let due = s.next_timer().unwrap();
    assert_eq!(due, t0 + Duration::from_secs(3), "spaced by 3 s after the last one (4.4.2.1)");
    let c = calls(s.timer(due)).into_iter().find(|c| matches!(c.op, Op::MitigateGet { .. })).unwrap();
    let n = one_dgram(&s.answer(c, Answer::Mitigations(Ok(scope(1, Status::DotsClientWithdrawnMitigation))), due));
    assert_eq!((n.mtype, n.token), (MessageType::Non, m.token));
    assert!(n.observe().unwrap() > first_seq);
    s.mitigation_changed(1);
    let due = s.next_timer().unwrap();
    let c = calls(s.timer(due)).into_iter().find(|c| matches!(c.op, Op::MitigateGet { .. })).unwrap();
    let gone = Reply::error(Code::NOT_FOUND, "no mitigation");
    let last = one_dgram(&s.answer(c, Answer::Mitigations(Err(gone)), due));
    let body = MitigationScope::from_cbor(&last.payload).unwrap().value;
    assert_eq!(body.scopes[0].status, Some(Status::AttackMitigationTerminated));
    assert_eq!(s.observations(), 0);
}

#[test]
fn rst_to_a_notification_deregisters() {
    let t0 = Instant::now();
    let mut s = dgram(t0);
    let mut m = req(Code::GET, MessageType::Con, 50, "/.well-known/dots/mitigate/cuid=me");
    m.set_observe(0);
    let c = calls(s.receive(&datagram::encode(&m).unwrap(), t0)).remove(0);
    s.answer(c, Answer::Mitigations(Ok(scope(1, Status::AttackSuccessfullyMitigated))), t0);
    let due = t0 + Duration::from_secs(10);
    let c = calls(s.timer(due)).into_iter().find(|c| matches!(c.op, Op::MitigateGet { .. })).unwrap();
    let n = one_dgram(&s.answer(c, Answer::Mitigations(Ok(scope(1, Status::AttackSuccessfullyMitigated))), due));
    let rst = datagram::encode(&Message::reset_for(&n)).unwrap();
    s.receive(&rst, due);
    assert_eq!(s.observations(), 0);
}

#[test]
fn server_heartbeat_is_a_non_put_to_hb_and_silence_closes() {
    let t0 = Instant::now();
    let mut s = dgram(t0);
    let params = SessionParams { heartbeat_interval: 2, missing_hb_allowed: 3, ..SessionParams::default() };
    s.set_params(params, t0);
    let hb_at = s.next_timer().unwrap();
    assert_eq!(hb_at, t0 + Duration::from_secs(2));
    let hb = one_dgram(&s.timer(hb_at));
    assert_eq!((hb.mtype, hb.code), (MessageType::Non, Code::PUT));
    assert_eq!(hb.uri_path().unwrap(), [".well-known", "dots", "hb"]);
    assert!(!Heartbeat::from_cbor(&hb.payload).unwrap().value.peer_hb_status, "no client heartbeat heard");
    // A client heartbeat is answered 2.04 and reported in our next one.
    let mut chb = req(Code::PUT, MessageType::Non, 60, "/.well-known/dots/hb");
    chb.set_content_format(271);
    chb.payload = Heartbeat { peer_hb_status: true }.to_cbor();
    let t1 = t0 + Duration::from_secs(3);
    assert_eq!(one_dgram(&s.receive(&datagram::encode(&chb).unwrap(), t1)).code, Code::CHANGED);
    let hb = one_dgram(&s.timer(t0 + Duration::from_secs(4)));
    assert!(Heartbeat::from_cbor(&hb.payload).unwrap().value.peer_hb_status);
    // 3 x 2 s of silence after t1: the connection is dead.
    let out = s.timer(t1 + Duration::from_secs(6));
    assert!(matches!(out.last(), Some(Output::Close)), "{out:?}");
}

fn stream_msgs(out: &[Output]) -> Vec<Message> {
    transmitted(out).iter().map(|b| stream::decode_one(b, 1 << 20).unwrap()).collect()
}

#[test]
fn stream_sends_csm_first_requires_theirs_and_answers_ping() {
    let t0 = Instant::now();
    let (mut s, first) = Session::new(settings(Framing::Stream), Some(client()), 3, t0);
    let csm = stream_msgs(&first);
    assert_eq!(csm[0].code, Code::CSM);
    assert!(matches!(Signal::from_message(&csm[0]).unwrap(), Signal::Csm { max_message_size: Some(_), block_wise_transfer: true }));
    let theirs = stream::encode(&Signal::Csm { max_message_size: Some(1152), block_wise_transfer: false }.to_message(Token::EMPTY)).unwrap();
    let ping = stream::encode(&Signal::Ping { custody: false }.to_message(Token::new(&[9]).unwrap())).unwrap();
    let mut both = theirs.clone();
    both.extend_from_slice(&ping);
    let pong = stream_msgs(&s.receive(&both, t0));
    assert_eq!((pong[0].code, pong[0].token), (Code::PONG, Token::new(&[9]).unwrap()));
    let release = stream::encode(&Signal::Release { alternative_addresses: vec![], hold_off: None, diagnostic: String::new() }.to_message(Token::EMPTY)).unwrap();
    assert!(matches!(s.receive(&release, t0).last(), Some(Output::Close)));
}

#[test]
fn stream_without_csm_first_is_aborted() {
    let t0 = Instant::now();
    let (mut s, _) = Session::new(settings(Framing::Stream), Some(client()), 3, t0);
    let get = stream::encode(&req(Code::GET, MessageType::Non, 0, "/.well-known/dots/config")).unwrap();
    let out = s.receive(&get, t0);
    assert_eq!(stream_msgs(&out)[0].code, Code::ABORT);
    assert!(matches!(out.last(), Some(Output::Close)));
    // And a stream that never sends its CSM is aborted at the deadline.
    let (mut s, _) = Session::new(settings(Framing::Stream), Some(client()), 3, t0);
    let out = s.timer(s.next_timer().unwrap());
    assert_eq!(stream_msgs(&out)[0].code, Code::ABORT);
}

#[test]
fn stream_frame_over_our_limit_is_aborted() {
    let t0 = Instant::now();
    let (mut s, _) = Session::new(settings(Framing::Stream), Some(client()), 3, t0);
    // Len nibble 15: a 32-bit extended length announcing ~4 GB.
    let out = s.receive(&[0xf0, 0xff, 0xff, 0xff, 0x00], t0);
    assert_eq!(stream_msgs(&out)[0].code, Code::ABORT);
}
