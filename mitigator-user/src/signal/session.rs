//! One signal-channel connection as a pure state machine (quinn-proto
//! style): bytes in, [`Output`]s out, timers as values. The I/O glue
//! ([`super::server`]) feeds it what arrives, executes the [`Call`]s it
//! asks for against the registry, hands back the [`Answer`]s, and sleeps
//! until [`Session::next_timer`].
//!
//! Framings:
//! - datagram (RFC 7252 over DTLS): duplicates answered from the cache
//!   (§4.5), piggybacked ACK for a CON (§5.2.1), RST for a malformed CON
//!   (§4.2) and for an Empty CON ("CoAP ping", §4.3), NON duplicates
//!   ignored, RST of a notification cancels its observation (RFC 7641 §3.6);
//! - stream (RFC 8323 over TLS): our CSM first and theirs expected first
//!   (§5.3: else Abort), Ping → Pong, Release/Abort close, the peer's
//!   Max-Message-Size bounds what we send.
//!
//! Both: 4.02 for an unknown critical option (RFC 7252 §5.4.1), Block1
//! reassembly and Block2 slicing (RFC 7959), heartbeats both ways (RFC 9132
//! 4.7: the server sends Non-confirmable PUT /hb too), Observe (4.4.2.1).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use dots_proto::coap::{
    block2_slice, content_format, datagram, stream, Block1Assembler, Block1Progress, BlockOpt, Code, Dedup,
    Message, MessageIdGen, MessageType, Seen, Signal, StreamDecoder, Token, TokenGen, TransmissionParams,
};
use dots_proto::signal::{limits, Heartbeat, MitigationScope, SignalBody};

use super::observe::{Notification, Observations};
use super::reply::Reply;
use super::route::{filter_content, observe_of, route, ObserveReq, Op, RoutePolicy};
use crate::dots::{ClientCtx, SessionParams};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// CoAP over DTLS.
    Datagram,
    /// CoAP over TLS.
    Stream,
}

/// Settings that do not change during a session.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub framing: Framing,
    pub route: RoutePolicy,
    /// Periodic notifications with counters; None: on changes only.
    pub observe_interval: Option<Duration>,
    pub notification_spacing: Duration,
    /// How long a stream may go without the peer's CSM (RFC 8323 §5.3).
    pub csm_timeout: Duration,
}

/// What the glue must do.
#[derive(Debug)]
pub enum Output {
    /// Send these bytes (one datagram, or stream bytes).
    Transmit(Vec<u8>),
    /// Execute `call.op` and hand the result to [`Session::answer`]
    /// (boxed: an op holds a whole request, a transmit only bytes).
    Call(Box<Call>),
    /// End the connection (after transmitting what came before).
    Close,
}

#[derive(Debug)]
pub struct Call {
    pub op: Op,
    kind: CallKind,
}

#[derive(Debug)]
enum CallKind {
    Request(Head),
    Notify(Token),
}

/// What a request's response needs from the request.
#[derive(Debug, Clone)]
struct Head {
    mtype: MessageType,
    message_id: u16,
    token: Token,
    block1: Option<BlockOpt>,
    block2: Option<BlockOpt>,
    observe: Option<ObserveReq>,
}

/// The result of a [`Call`].
#[derive(Debug)]
pub enum Answer {
    /// For `Op::MitigateGet`: the client's mitigations, or the refusal.
    Mitigations(Result<MitigationScope, Reply>),
    /// For every other op.
    Reply(Reply),
}

/// Our Max-Message-Size: a whole body of the largest size we decode, with
/// room for the header and options (RFC 8323 §5.3.1).
pub const MAX_MESSAGE_SIZE: usize = limits::MAX_BODY + 1024;
/// Largest Block2 size over DTLS: 1024-byte blocks fit the 1232-byte
/// records of section 7.3 with header, options and DTLS overhead.
const DATAGRAM_MAX_SZX: u8 = 6;
/// Recent notification message ids, to recognise an RST cancelling one.
const NOTIFY_IDS: usize = 64;

pub struct Session {
    settings: SessionSettings,
    client: Option<ClientCtx>,
    params: SessionParams,
    dedup: Dedup<()>,
    blocks: Block1Assembler<()>,
    ids: MessageIdGen,
    tokens: TokenGen,
    decoder: StreamDecoder,
    csm_received: bool,
    csm_deadline: Option<Instant>,
    peer_max_message_size: usize,
    observations: Observations,
    notify_ids: VecDeque<(u16, Token)>,
    last_rx: Instant,
    last_peer_hb: Option<Instant>,
    next_hb: Option<Instant>,
    closed: bool,
}

impl Session {
    /// A new connection of `client` (None: authenticated but in no client
    /// domain, answered 4.01). Returns what to send first (our CSM).
    pub fn new(settings: SessionSettings, client: Option<ClientCtx>, seed: u64, now: Instant) -> (Session, Vec<Output>) {
        let stream_mode = settings.framing == Framing::Stream;
        let csm_deadline = stream_mode.then(|| now + settings.csm_timeout);
        let mut s = Session {
            client,
            params: SessionParams::default(),
            dedup: Dedup::new(&TransmissionParams::default(), 1024),
            blocks: Block1Assembler::new(limits::MAX_BODY, 4, Duration::from_secs(60)),
            ids: MessageIdGen::new(seed as u16),
            tokens: TokenGen::new(seed, 8),
            decoder: StreamDecoder::new(MAX_MESSAGE_SIZE),
            csm_received: false,
            csm_deadline,
            peer_max_message_size: stream::DEFAULT_MAX_MESSAGE_SIZE,
            observations: Observations::default(),
            notify_ids: VecDeque::new(),
            last_rx: now,
            last_peer_hb: None,
            next_hb: None,
            closed: false,
            settings,
        };
        s.set_params(SessionParams::default(), now);
        let mut out = Vec::new();
        if stream_mode {
            let csm = Signal::Csm { max_message_size: Some(MAX_MESSAGE_SIZE as u32), block_wise_transfer: true };
            out.push(s.encode_out(&csm.to_message(Token::EMPTY)));
        }
        (s, out)
    }

    pub fn client(&self) -> Option<&ClientCtx> {
        self.client.as_ref()
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The heartbeat values in force (mitigating or idle, section 4.5);
    /// a change of interval reschedules our next heartbeat.
    pub fn set_params(&mut self, params: SessionParams, now: Instant) {
        self.params = params;
        self.next_hb = self.hb_interval().map(|i| now + i);
    }

    fn hb_interval(&self) -> Option<Duration> {
        let i = self.params.heartbeat_interval;
        (i > 0 && self.client.is_some()).then(|| Duration::from_secs(u64::from(i)))
    }

    /// Nothing from the peer for this long: the connection is dead (4.7).
    fn idle_deadline(&self) -> Option<Instant> {
        self.params.loss_timeout_ms().map(|ms| self.last_rx + Duration::from_millis(ms))
    }

    /// A mitigation of this client changed (from the registry's notices).
    pub fn mitigation_changed(&mut self, mid: u32) {
        self.observations.changed(mid);
    }

    /// Notices were lost: refresh every observation.
    pub fn everything_changed(&mut self) {
        self.observations.all_changed();
    }

    pub fn observations(&self) -> usize {
        self.observations.len()
    }

    // ------------------------------------------------------------ input

    /// Bytes from the transport: one datagram, or a chunk of the stream.
    pub fn receive(&mut self, bytes: &[u8], now: Instant) -> Vec<Output> {
        if self.closed {
            return Vec::new();
        }
        self.last_rx = now;
        match self.settings.framing {
            Framing::Datagram => self.receive_datagram(bytes, now),
            Framing::Stream => self.receive_stream(bytes, now),
        }
    }

    fn receive_datagram(&mut self, bytes: &[u8], now: Instant) -> Vec<Output> {
        let msg = match datagram::decode(bytes) {
            Ok(m) => m,
            // Format error: RST a CON, silently drop anything else (§4.2, §4.3).
            Err(e) => return e.reset().map(|rst| self.encode_out(&rst)).into_iter().collect(),
        };
        match msg.mtype {
            MessageType::Rst => {
                self.reset_received(msg.message_id);
                Vec::new()
            }
            MessageType::Ack => Vec::new(),
            _ if msg.code.is_empty() => match msg.mtype {
                MessageType::Con => vec![self.encode_out(&Message::reset_for(&msg))],
                _ => Vec::new(),
            },
            _ if msg.code.is_response() => match msg.mtype {
                // A response of the client to our heartbeat: acknowledge a CON.
                MessageType::Con => vec![self.encode_out(&Message::empty_ack(msg.message_id))],
                _ => Vec::new(),
            },
            _ if !msg.code.is_request() => match msg.mtype {
                MessageType::Con => vec![self.encode_out(&Message::reset_for(&msg))],
                _ => Vec::new(),
            },
            _ => match self.dedup.check((), msg.message_id, msg.mtype, now) {
                Seen::Duplicate(cached) => cached.map(|c| Output::Transmit(c.to_vec())).into_iter().collect(),
                Seen::New => self.request(msg, now),
            },
        }
    }

    /// RST of a notification: "the client is no longer interested" (RFC 7641 §3.6).
    fn reset_received(&mut self, message_id: u16) {
        if let Some(pos) = self.notify_ids.iter().position(|(id, _)| *id == message_id) {
            let (_, token) = self.notify_ids.remove(pos).expect("found");
            self.observations.deregister(&token);
        }
    }

    fn receive_stream(&mut self, bytes: &[u8], now: Instant) -> Vec<Output> {
        let mut msgs = Vec::new();
        let result = self.decoder.feed(bytes, &mut msgs);
        let mut out = Vec::new();
        for m in msgs {
            out.extend(self.stream_message(m, now));
            if self.closed {
                return out;
            }
        }
        if let Err(e) = result {
            out.extend(self.abort(None, &format!("malformed stream: {e}")));
        }
        out
    }

    fn stream_message(&mut self, msg: Message, now: Instant) -> Vec<Output> {
        if !self.csm_received && msg.code != Code::CSM {
            return self.abort(None, "the first message must be a CSM (RFC 8323 section 5.3)");
        }
        if msg.code.is_signaling() {
            return self.signal(&msg);
        }
        if msg.code.is_request() {
            return self.request(msg, now);
        }
        // Responses (to our heartbeats) and Empty messages need nothing.
        Vec::new()
    }

    fn signal(&mut self, msg: &Message) -> Vec<Output> {
        match Signal::from_message(msg) {
            Err(e) => {
                let bad = match e {
                    dots_proto::coap::SignalError::UnknownCriticalOption(n) if msg.code == Code::CSM => Some(n.0),
                    _ => None,
                };
                self.abort(bad, &e.to_string())
            }
            Ok(Signal::Csm { max_message_size, .. }) => {
                self.csm_received = true;
                self.csm_deadline = None;
                if let Some(n) = max_message_size {
                    self.peer_max_message_size = n as usize;
                }
                Vec::new()
            }
            Ok(Signal::Ping { .. }) => vec![self.encode_out(&Signal::pong_for(msg))],
            Ok(Signal::Pong { .. }) => Vec::new(),
            Ok(Signal::Release { .. }) | Ok(Signal::Abort { .. }) => {
                self.closed = true;
                vec![Output::Close]
            }
        }
    }

    fn abort(&mut self, bad_csm_option: Option<u16>, diagnostic: &str) -> Vec<Output> {
        self.closed = true;
        let abort = Signal::Abort { bad_csm_option, diagnostic: diagnostic.to_string() }.to_message(Token::EMPTY);
        vec![self.encode_out(&abort), Output::Close]
    }

    // --------------------------------------------------------- requests

    fn request(&mut self, msg: Message, now: Instant) -> Vec<Output> {
        let head = Head {
            mtype: msg.mtype,
            message_id: msg.message_id,
            token: msg.token,
            block1: msg.block1(),
            block2: msg.block2(),
            observe: observe_of(&msg),
        };
        if let Some(n) = msg.first_bad_critical_option() {
            let r = Reply::error(Code::BAD_OPTION, format!("unsupported critical option {}", n.0));
            return vec![self.respond(&head, r)];
        }
        let body = match self.blocks.offer((), &msg, now) {
            Ok(Block1Progress::Complete { body, .. }) => body,
            Ok(Block1Progress::Continue(b)) => {
                let mut r = Reply::empty(Code::CONTINUE);
                r.payload.clear();
                return vec![self.respond(&Head { block1: Some(b), ..head }, r)];
            }
            Err(e) => return vec![self.respond(&head, Reply::error(e.code(), format!("block-wise transfer: {e}")))],
        };
        match route(&msg, &body, self.client.as_ref(), &self.settings.route) {
            Err(reply) => vec![self.respond(&head, reply)],
            Ok(Op::Heartbeat { .. }) => {
                self.last_peer_hb = Some(now);
                vec![self.respond(&head, Reply::empty(Code::CHANGED))]
            }
            Ok(op) => vec![Output::Call(Box::new(Call { op, kind: CallKind::Request(head) }))],
        }
    }

    /// The result of a call: the response, or the notification.
    pub fn answer(&mut self, call: Box<Call>, answer: Answer, now: Instant) -> Vec<Output> {
        if self.closed {
            return Vec::new();
        }
        match call.kind {
            CallKind::Request(head) => self.answer_request(head, call.op, answer, now),
            CallKind::Notify(token) => self.answer_notify(token, answer, now),
        }
    }

    fn answer_request(&mut self, head: Head, op: Op, answer: Answer, now: Instant) -> Vec<Output> {
        let reply = match answer {
            Answer::Reply(r) => r,
            Answer::Mitigations(Err(r)) => r,
            Answer::Mitigations(Ok(mut scope)) => {
                let Op::MitigateGet { mid, content } = op else { unreachable!("only GET returns mitigations") };
                filter_content(&mut scope, content);
                let reply = Reply::cbor(Code::CONTENT, &scope);
                match head.observe {
                    Some(ObserveReq::Register) => {
                        if let Some(seq) = self.observations.register(head.token, mid, content, &scope, now) {
                            return vec![self.respond_observed(&head, reply, seq)];
                        }
                    }
                    Some(ObserveReq::Deregister) => {
                        self.observations.deregister(&head.token);
                    }
                    None => {}
                }
                reply
            }
        };
        if reply.code.is_empty() {
            return self.no_response(&head);
        }
        vec![self.respond(&head, reply)]
    }

    /// A request the text says to ignore silently (4.4.3): a CON still
    /// needs its (empty) ACK at the CoAP layer, or the client retransmits.
    fn no_response(&mut self, head: &Head) -> Vec<Output> {
        if self.settings.framing != Framing::Datagram || head.mtype != MessageType::Con {
            return Vec::new();
        }
        let ack = self.encode(&Message::empty_ack(head.message_id));
        self.dedup.record_response((), head.message_id, ack.clone());
        vec![Output::Transmit(ack)]
    }

    fn answer_notify(&mut self, token: Token, answer: Answer, now: Instant) -> Vec<Output> {
        let (state, error) = match answer {
            Answer::Mitigations(Ok(s)) => (Some(s), None),
            Answer::Mitigations(Err(r)) if r.code == Code::NOT_FOUND => (None, Some(r)),
            // A transient failure (registry busy): keep observing, send nothing.
            _ => return Vec::new(),
        };
        let content = self.observations.content(&token).unwrap_or_default();
        let Some((note, seq)) = self.observations.fetched(&token, state, now) else { return Vec::new() };
        let reply = match note {
            Notification::Scopes { mut body, .. } => {
                filter_content(&mut body, content);
                Reply::cbor(Code::CONTENT, &body)
            }
            // RFC 7641 §3.2: a non-2.xx notification ends the observation.
            Notification::End => error.unwrap_or_else(|| Reply::error(Code::NOT_FOUND, "no mitigation")),
        };
        vec![self.notification(token, reply, seq)]
    }

    // ----------------------------------------------------------- timers

    /// The earliest time [`Session::timer`] has something to do.
    pub fn next_timer(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let obs = self.observations.next_due(self.settings.observe_interval, self.settings.notification_spacing);
        [self.csm_deadline, self.idle_deadline(), self.next_hb, obs].into_iter().flatten().min()
    }

    pub fn timer(&mut self, now: Instant) -> Vec<Output> {
        if self.closed {
            return Vec::new();
        }
        if self.csm_deadline.is_some_and(|d| d <= now) {
            return self.abort(None, "no CSM received (RFC 8323 section 5.3)");
        }
        if self.idle_deadline().is_some_and(|d| d <= now) {
            self.closed = true;
            return vec![Output::Close];
        }
        let mut out = Vec::new();
        if let (Some(due), Some(iv)) = (self.next_hb, self.hb_interval()) {
            if due <= now {
                self.next_hb = Some(now + iv);
                out.push(self.heartbeat(now, iv));
            }
        }
        let (iv, sp) = (self.settings.observe_interval, self.settings.notification_spacing);
        for (token, mid, content) in self.observations.take_due(now, iv, sp) {
            out.push(Output::Call(Box::new(Call { op: Op::MitigateGet { mid, content }, kind: CallKind::Notify(token) })));
        }
        out
    }

    /// Our heartbeat: a Non-confirmable PUT /hb (4.7, Figure 27) with
    /// whether we heard the client's heartbeats in the last 2 intervals.
    fn heartbeat(&mut self, now: Instant, interval: Duration) -> Output {
        let heard = self.last_peer_hb.is_some_and(|t| now.duration_since(t) <= interval * 2);
        let mut m = Message::request(Code::PUT, MessageType::Non, self.ids.next_id(), self.tokens.next_token());
        m.set_uri_path("/.well-known/dots/hb");
        m.set_content_format(content_format::DOTS_CBOR);
        m.payload = Heartbeat { peer_hb_status: heard }.to_cbor();
        self.encode_out(&m)
    }

    // ----------------------------------------------------------- output

    fn respond(&mut self, head: &Head, reply: Reply) -> Output {
        let msg = self.response_message(head, reply);
        let bytes = self.encode(&msg);
        if self.settings.framing == Framing::Datagram && head.mtype == MessageType::Con {
            self.dedup.record_response((), head.message_id, bytes.clone());
        }
        Output::Transmit(bytes)
    }

    fn respond_observed(&mut self, head: &Head, reply: Reply, seq: u32) -> Output {
        let mut msg = self.response_message(head, reply);
        msg.set_observe(seq);
        let bytes = self.encode(&msg);
        if self.settings.framing == Framing::Datagram && head.mtype == MessageType::Con {
            self.dedup.record_response((), head.message_id, bytes.clone());
        }
        Output::Transmit(bytes)
    }

    fn response_message(&mut self, head: &Head, reply: Reply) -> Message {
        let (mtype, message_id) = match head.mtype {
            MessageType::Con => (MessageType::Ack, head.message_id),
            _ => (MessageType::Non, self.ids.next_id()),
        };
        let mut m = Message::new(mtype, reply.code, message_id, head.token);
        if let Some(cf) = reply.content_format.filter(|_| !reply.payload.is_empty()) {
            m.set_content_format(cf);
        }
        if let Some(age) = reply.max_age {
            m.set_max_age(age);
        }
        if let Some(b) = head.block1 {
            m.set_block1(b);
        }
        self.set_payload(&mut m, reply.payload, head.block2);
        m
    }

    /// The payload, sliced with Block2 when it does not fit or the client
    /// asked for a block (RFC 7959 §2.2).
    fn set_payload(&self, m: &mut Message, payload: Vec<u8>, requested: Option<BlockOpt>) {
        let max_szx = self.max_szx();
        if requested.is_none() && payload.len() <= 16 << max_szx {
            m.payload = payload;
            return;
        }
        match block2_slice(&payload, requested, max_szx) {
            Ok((b, slice)) => {
                if b.num == 0 {
                    m.set_size2(payload.len() as u32);
                }
                m.set_block2(b);
                m.payload = slice.to_vec();
            }
            Err(e) => {
                m.code = Code::BAD_REQUEST;
                m.options = Default::default();
                m.set_content_format(content_format::TEXT_PLAIN);
                m.payload = format!("Block2: {e}").into_bytes();
            }
        }
    }

    fn max_szx(&self) -> u8 {
        match self.settings.framing {
            Framing::Datagram => DATAGRAM_MAX_SZX,
            Framing::Stream => {
                // Leave room for header and options within the peer's limit.
                let room = self.peer_max_message_size.saturating_sub(128).max(16);
                (0..=6u8).rev().find(|s| 16usize << s <= room).unwrap_or(0)
            }
        }
    }

    fn notification(&mut self, token: Token, reply: Reply, seq: u32) -> Output {
        // Non-confirmable: a lost notification is superseded by the next
        // (RFC 7641 §4.5; DOTS status is resent periodically anyway).
        let id = self.ids.next_id();
        let mut m = Message::new(MessageType::Non, reply.code, id, token);
        if reply.code.is_success() {
            m.set_observe(seq);
        }
        if let Some(cf) = reply.content_format {
            m.set_content_format(cf);
        }
        m.payload = reply.payload;
        self.notify_ids.push_back((id, token));
        if self.notify_ids.len() > NOTIFY_IDS {
            self.notify_ids.pop_front();
        }
        self.encode_out(&m)
    }

    fn encode_out(&self, m: &Message) -> Output {
        Output::Transmit(self.encode(m))
    }

    fn encode(&self, m: &Message) -> Vec<u8> {
        let r = match self.settings.framing {
            Framing::Datagram => datagram::encode(m),
            Framing::Stream => stream::encode(m),
        };
        // Our messages are built from valid parts; an encoding failure is a bug.
        r.expect("server messages encode")
    }
}

#[cfg(test)]
mod tests;
