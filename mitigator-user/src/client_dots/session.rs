//! The client half of one signal-channel session, sans-IO: requests in, datagrams or
//! stream frames out, bytes from the server in, events out; time is passed in and
//! timers come back as values ([`Session::poll_timeout`]). No sockets, no sleeping:
//! the driver ([`super::driver`]) does the I/O.
//!
//! What it does on its own:
//! - RFC 7252 reliability over DTLS: Confirmable requests are retransmitted with the
//!   negotiated ack-timeout / ack-random-factor / max-retransmit (RFC 9132 4.5.2: "MUST
//!   use the negotiated values"); Non-confirmable requests (mitigation requests, 4.4) are
//!   "sent at regular intervals until a response is received", never more often than one
//!   every 3 s without an RTT estimate (4.4), each with a fresh message id so that the
//!   server's deduplication does not swallow them.
//! - Heartbeats (4.7): a Non-confirmable PUT /hb every heartbeat-interval carrying
//!   'peer-hb-status' (did we hear the server's heartbeat in the last 2 intervals); the
//!   server's heartbeats are answered 2.04; after 'missing-hb-allowed' consecutive
//!   heartbeats without any answer the session is declared lost.
//! - Observe (RFC 7641, 4.4.2.1): notifications are matched by token, stale reordered
//!   ones dropped ([`ObserveFreshness`]), unknown tokens answered with RST.
//! - Over TLS (RFC 8323): CSM first, Ping answered with Pong, Release/Abort end the
//!   session; requests time out after MAX_TRANSMIT_WAIT instead of being retransmitted.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use dots_proto::coap::{
    self, content_format, datagram, stream, Code, Dedup, Message, MessageIdGen, MessageType, ObserveFreshness,
    Retransmission, RetransmitAction, Seen, Signal, Token, TokenGen, TransmissionParams,
};
use dots_proto::signal::{Heartbeat, SignalBody, SignalPath};
use tracing::{debug, trace, warn};

/// How CoAP messages are framed on the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// RFC 7252 datagrams (DTLS).
    Datagram,
    /// RFC 8323 stream frames (TLS).
    Stream,
}

/// The values the session runs with: the negotiated configuration (4.5) or defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SessionParams {
    pub transmission: TransmissionParams,
    /// Zero disables our heartbeats (a 'heartbeat-interval' of 0, 4.5.2 Figure 23).
    pub heartbeat_interval: Duration,
    pub missing_hb_allowed: u32,
    /// Floor between sends of a Non-confirmable request: 3 s (4.4, no RTT estimate).
    pub non_min_interval: Duration,
}

impl Default for SessionParams {
    /// The RECOMMENDED values of 4.5.2.
    fn default() -> Self {
        SessionParams {
            transmission: TransmissionParams::default(),
            heartbeat_interval: Duration::from_secs(30),
            missing_hb_allowed: 15,
            non_min_interval: Duration::from_secs(3),
        }
    }
}

/// A request as the DOTS layer builds it.
#[derive(Clone, Debug)]
pub struct Request {
    pub code: Code,
    pub path: SignalPath,
    pub queries: Vec<String>,
    /// application/dots+cbor body.
    pub body: Option<Vec<u8>>,
    /// CON (config, 4.5) or NON (mitigation requests, 4.4).
    pub confirmable: bool,
    /// Observe 0 registers, 1 deregisters (RFC 7641).
    pub observe: Option<u32>,
    /// An empty If-Match: "conditional on the current existence" (efficacy update, 4.4.3).
    pub if_match_empty: bool,
}

impl Request {
    pub fn new(code: Code, path: SignalPath) -> Self {
        Request { code, path, queries: Vec::new(), body: None, confirmable: true, observe: None, if_match_empty: false }
    }
}

/// Handle of a request (and of the observation it may have registered).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Why a request ended without a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// No response within the retransmission schedule or MAX_TRANSMIT_WAIT.
    Timeout,
    /// The server answered with RST: it could not process the message.
    Reset,
    /// The session ended first.
    SessionClosed,
}

/// What the session reports to its driver.
#[derive(Clone, Debug)]
pub enum Event {
    Response {
        id: RequestId,
        response: Message,
    },
    /// A notification of an observation registered by request `id`.
    Notification {
        id: RequestId,
        message: Message,
    },
    Failed {
        id: RequestId,
        error: RequestError,
    },
    /// The session is gone: heartbeats unanswered (4.7), or Release/Abort (RFC 8323).
    Lost {
        reason: String,
    },
}

/// Counters, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub retransmissions: u64,
    pub heartbeats_sent: u64,
    pub heartbeats_answered: u64,
    pub peer_heartbeats: u64,
    pub notifications: u64,
}

struct Pending {
    id: RequestId,
    msg: Message,
    wire: Vec<u8>,
    /// Datagram retransmission timer; None once acknowledged or over a stream.
    timer: Option<Retransmission>,
    /// Give-up time when no timer runs (stream, or CON acknowledged empty).
    deadline: Instant,
}

struct Observation {
    id: RequestId,
    request: Message,
    freshness: ObserveFreshness,
}

/// How many heartbeat tokens we remember answers for (late 2.04s still count).
const HB_TOKENS: usize = 4;

pub struct Session {
    framing: Framing,
    params: SessionParams,
    ids: MessageIdGen,
    tokens: TokenGen,
    rng: u64,
    next_request: u64,
    pending: HashMap<Token, Pending>,
    observations: HashMap<Token, Observation>,
    dedup: Dedup<()>,
    outgoing: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    /// Bytes of a partial stream frame.
    decoder: stream::StreamDecoder,
    next_hb: Option<Instant>,
    hb_tokens: VecDeque<Token>,
    hb_unanswered: bool,
    missed_hb: u32,
    last_peer_hb: Option<Instant>,
    lost: bool,
    stats: SessionStats,
}

impl Session {
    /// A new session on an established link. `seed` must be secret and random: it seeds
    /// tokens (RFC 7252 5.3.1), the first message id and the retransmission jitter.
    pub fn new(framing: Framing, params: SessionParams, now: Instant, seed: u64) -> Self {
        let mut s = Session {
            framing,
            params,
            ids: MessageIdGen::new((seed >> 48) as u16),
            tokens: TokenGen::new(seed, 8),
            rng: seed | 1,
            next_request: 1,
            pending: HashMap::new(),
            observations: HashMap::new(),
            dedup: Dedup::new(&params.transmission, 1024),
            outgoing: VecDeque::new(),
            events: VecDeque::new(),
            decoder: stream::StreamDecoder::new(stream::DEFAULT_MAX_MESSAGE_SIZE * 8),
            next_hb: None,
            hb_tokens: VecDeque::new(),
            hb_unanswered: false,
            missed_hb: 0,
            last_peer_hb: None,
            lost: false,
            stats: SessionStats::default(),
        };
        if framing == Framing::Stream {
            // RFC 8323 5.3: each side's first message is a CSM.
            let csm = Signal::Csm {
                max_message_size: Some(stream::DEFAULT_MAX_MESSAGE_SIZE as u32 * 8),
                block_wise_transfer: false,
            };
            s.push_message(&csm.to_message(Token::EMPTY));
        }
        s.schedule_heartbeat(now);
        s
    }

    pub fn params(&self) -> SessionParams {
        self.params
    }

    /// Switches to newly negotiated values (4.5.2); running timers keep their schedule.
    pub fn set_params(&mut self, params: SessionParams, now: Instant) {
        let hb_changed = params.heartbeat_interval != self.params.heartbeat_interval;
        self.params = params;
        if hb_changed {
            self.schedule_heartbeat(now);
        }
    }

    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    pub fn is_lost(&self) -> bool {
        self.lost
    }

    /// Queues a request; its outcome comes back as an [`Event`] with this id.
    pub fn send_request(&mut self, req: Request, now: Instant) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let token = self.tokens.next_token();
        let msg = self.build(&req, token);
        self.start_exchange(id, msg, now);
        id
    }

    /// Deregisters an observation (Observe 1 with the same token, RFC 7641 3.6: "more
    /// deterministic and, thus, RECOMMENDED", 4.4.2.1). The answer comes as a response.
    pub fn cancel_observation(&mut self, id: RequestId, now: Instant) -> Option<RequestId> {
        let token = *self.observations.iter().find(|(_, o)| o.id == id)?.0;
        let obs = self.observations.remove(&token)?;
        let mut msg = obs.request;
        msg.set_observe(1);
        let new_id = RequestId(self.next_request);
        self.next_request += 1;
        self.start_exchange(new_id, msg, now);
        Some(new_id)
    }

    /// Ids of the live observations.
    pub fn observations(&self) -> Vec<RequestId> {
        self.observations.values().map(|o| o.id).collect()
    }

    fn build(&self, req: &Request, token: Token) -> Message {
        let mtype = if req.confirmable { MessageType::Con } else { MessageType::Non };
        let mut msg = Message::request(req.code, mtype, 0, token);
        for seg in req.path.to_segments() {
            msg.options.push(coap::OptionNumber::URI_PATH, seg.into_bytes());
        }
        for q in &req.queries {
            msg.add_uri_query(q);
        }
        if let Some(o) = req.observe {
            msg.set_observe(o);
        }
        if req.if_match_empty {
            msg.add_if_match(&[]);
        }
        if let Some(body) = &req.body {
            msg.set_content_format(content_format::DOTS_CBOR);
            msg.payload = body.clone();
        }
        if req.code == Code::GET {
            msg.set_accept(content_format::DOTS_CBOR);
        }
        msg
    }

    fn start_exchange(&mut self, id: RequestId, mut msg: Message, now: Instant) {
        msg.message_id = self.ids.next_id();
        let wire = self.encode(&msg);
        let timer = match self.framing {
            Framing::Datagram => Some(self.timer_for(msg.mtype, now)),
            Framing::Stream => None,
        };
        let deadline = now + self.params.transmission.max_transmit_wait();
        debug!(?id, code = %msg.code, mid = msg.message_id, token = ?msg.token, "request sent");
        self.outgoing.push_back(wire.clone());
        self.pending.insert(msg.token, Pending { id, msg, wire, timer, deadline });
    }

    /// CON: RFC 7252 4.2 schedule. NON: the same doubling, but never faster than the
    /// 3 s floor of 4.4.
    fn timer_for(&mut self, mtype: MessageType, now: Instant) -> Retransmission {
        let mut p = self.params.transmission;
        if mtype == MessageType::Non {
            p.ack_timeout = p.ack_timeout.max(self.params.non_min_interval);
        }
        let r = self.random();
        Retransmission::new(&p, now, r)
    }

    fn random(&mut self) -> f64 {
        // xorshift64*: jitter only, not a secret.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn encode(&self, msg: &Message) -> Vec<u8> {
        let r = match self.framing {
            Framing::Datagram => datagram::encode(msg),
            Framing::Stream => stream::encode(msg),
        };
        // Our own messages are built within the codec's limits.
        r.expect("client messages encode")
    }

    fn push_message(&mut self, msg: &Message) {
        let wire = self.encode(msg);
        self.outgoing.push_back(wire);
    }

    // ------------------------------------------------------------------ output

    /// The next datagram or stream frame to send.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outgoing.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let pending = self.pending.values().map(|p| p.timer.map_or(p.deadline, |t| t.deadline()));
        pending.chain(self.next_hb).min()
    }

    // ------------------------------------------------------------------ timers

    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<Token> = self
            .pending
            .iter()
            .filter(|(_, p)| p.timer.map_or(p.deadline, |t| t.deadline()) <= now)
            .map(|(t, _)| *t)
            .collect();
        for token in due {
            self.pending_timeout(token, now);
        }
        if self.next_hb.is_some_and(|t| t <= now) {
            self.heartbeat_due(now);
        }
    }

    fn pending_timeout(&mut self, token: Token, now: Instant) {
        let Some(p) = self.pending.get_mut(&token) else {
            return;
        };
        let action = match p.timer.as_mut() {
            Some(t) => t.on_timeout(now),
            None => RetransmitAction::GiveUp,
        };
        match action {
            RetransmitAction::GiveUp => {
                let p = self.pending.remove(&token).expect("present");
                warn!(id = ?p.id, code = %p.msg.code, "request timed out");
                self.events.push_back(Event::Failed { id: p.id, error: RequestError::Timeout });
            }
            RetransmitAction::Retransmit { .. } => {
                if p.msg.mtype == MessageType::Non {
                    // A fresh message id: the server drops duplicate NONs (RFC 7252 4.5),
                    // and the previous response may be the one that got lost.
                    p.msg.message_id = self.ids.next_id();
                    p.wire = match self.framing {
                        Framing::Datagram => datagram::encode(&p.msg).expect("encodes"),
                        Framing::Stream => stream::encode(&p.msg).expect("encodes"),
                    };
                }
                self.stats.retransmissions += 1;
                debug!(id = ?p.id, mid = p.msg.message_id, n = p.timer.map(|t| t.retransmits()), "retransmission");
                self.outgoing.push_back(p.wire.clone());
            }
        }
    }

    fn schedule_heartbeat(&mut self, now: Instant) {
        let i = self.params.heartbeat_interval;
        self.next_hb = (!i.is_zero()).then(|| now + i);
    }

    /// 4.7: count the previous heartbeat if it went unanswered, declare the session
    /// lost after missing-hb-allowed of them, else send the next one.
    fn heartbeat_due(&mut self, now: Instant) {
        if self.hb_unanswered {
            self.missed_hb += 1;
            debug!(missed = self.missed_hb, allowed = self.params.missing_hb_allowed, "heartbeat unanswered");
        }
        if self.missed_hb >= self.params.missing_hb_allowed.max(1) {
            self.declare_lost(format!("{} consecutive heartbeats unanswered", self.missed_hb));
            self.next_hb = None;
            return;
        }
        let interval = self.params.heartbeat_interval;
        let peer_hb_status = self.last_peer_hb.is_some_and(|t| now.duration_since(t) <= interval * 2);
        let token = self.tokens.next_token();
        let mut req = Request::new(Code::PUT, SignalPath::Heartbeat);
        req.confirmable = false;
        req.body = Some(Heartbeat { peer_hb_status }.to_cbor());
        let mut msg = self.build(&req, token);
        msg.message_id = self.ids.next_id();
        self.push_message(&msg);
        self.hb_tokens.push_back(token);
        if self.hb_tokens.len() > HB_TOKENS {
            self.hb_tokens.pop_front();
        }
        self.hb_unanswered = true;
        self.stats.heartbeats_sent += 1;
        trace!(peer_hb_status, "heartbeat sent");
        self.schedule_heartbeat(now);
    }

    fn declare_lost(&mut self, reason: String) {
        if self.lost {
            return;
        }
        warn!(%reason, "DOTS signal channel session lost");
        self.lost = true;
        self.events.push_back(Event::Lost { reason });
    }

    /// Fails every outstanding request (the link is gone).
    pub fn close(&mut self) {
        for (_, p) in self.pending.drain() {
            self.events.push_back(Event::Failed { id: p.id, error: RequestError::SessionClosed });
        }
        self.observations.clear();
        self.next_hb = None;
    }

    // ------------------------------------------------------------------ input

    /// One datagram (DTLS) or a chunk of the byte stream (TLS) from the server.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        match self.framing {
            Framing::Datagram => match datagram::decode(bytes) {
                Ok(msg) => self.on_message(msg, now),
                Err(e) => {
                    debug!(error = %e, "undecodable datagram from the server");
                    if let Some(rst) = e.reset() {
                        self.push_message(&rst);
                    }
                }
            },
            Framing::Stream => {
                let mut msgs = Vec::new();
                let r = self.decoder.feed(bytes, &mut msgs);
                for m in msgs {
                    self.on_message(m, now);
                }
                if let Err(e) = r {
                    let abort = Signal::Abort { bad_csm_option: None, diagnostic: e.to_string() };
                    self.push_message(&abort.to_message(Token::EMPTY));
                    self.declare_lost(format!("bad stream from the server: {e}"));
                }
            }
        }
    }

    fn on_message(&mut self, msg: Message, now: Instant) {
        // Anything authentic from the server shows the session is alive (4.7).
        self.missed_hb = 0;
        match (self.framing, msg.mtype) {
            (Framing::Datagram, MessageType::Ack | MessageType::Rst) => self.on_ack_or_reset(msg, now),
            _ if msg.code.class() == 7 => self.on_signal(msg),
            _ if msg.code.is_empty() => {
                // CoAP ping (empty CON): answer RST (RFC 7252 4.3).
                if self.framing == Framing::Datagram && msg.mtype == MessageType::Con {
                    self.push_message(&Message::reset_for(&msg));
                }
            }
            _ if msg.code.class() == 0 => self.on_server_request(msg, now),
            _ => self.on_response(msg, now),
        }
    }

    fn on_ack_or_reset(&mut self, msg: Message, now: Instant) {
        let Some(token) = self
            .pending
            .iter()
            .find(|(_, p)| p.msg.mtype == MessageType::Con && p.msg.message_id == msg.message_id)
            .map(|(t, _)| *t)
        else {
            return trace!(mid = msg.message_id, "ACK/RST for no outstanding request");
        };
        if msg.mtype == MessageType::Rst {
            let p = self.pending.remove(&token).expect("present");
            return self.events.push_back(Event::Failed { id: p.id, error: RequestError::Reset });
        }
        if msg.code.is_empty() {
            // Empty ACK: stop retransmitting, the response will come separately (4.5).
            let p = self.pending.get_mut(&token).expect("present");
            p.timer = None;
            p.deadline = now + self.params.transmission.max_transmit_wait();
            return;
        }
        if msg.token == token {
            self.complete(token, msg, now);
        }
    }

    fn on_signal(&mut self, msg: Message) {
        match Signal::from_message(&msg) {
            Ok(Signal::Ping { .. }) => self.push_message(&Signal::pong_for(&msg)),
            Ok(Signal::Csm { max_message_size, .. }) => debug!(?max_message_size, "server CSM"),
            Ok(Signal::Pong { .. }) => {}
            Ok(Signal::Release { diagnostic, .. }) => self.declare_lost(format!("server sent Release: {diagnostic}")),
            Ok(Signal::Abort { diagnostic, .. }) => self.declare_lost(format!("server sent Abort: {diagnostic}")),
            Err(e) => debug!(error = %e, "bad signaling message"),
        }
    }

    /// Server-initiated requests: only heartbeats are defined (4.7).
    fn on_server_request(&mut self, msg: Message, now: Instant) {
        if self.framing == Framing::Datagram {
            match self.dedup.check((), msg.message_id, msg.mtype, now) {
                Seen::Duplicate(cached) => {
                    if let Some(c) = cached {
                        self.outgoing.push_back(c.to_vec());
                    }
                    return;
                }
                Seen::New => {}
            }
        }
        let path = msg.uri_path().unwrap_or_default();
        let is_hb = msg.code == Code::PUT && SignalPath::parse(&path).is_ok_and(|p| p == SignalPath::Heartbeat);
        let code = if is_hb {
            self.last_peer_hb = Some(now);
            self.stats.peer_heartbeats += 1;
            Code::CHANGED
        } else {
            debug!(code = %msg.code, ?path, "unexpected request from the server");
            Code::NOT_FOUND
        };
        let resp = Message::response_to(&msg, code, &mut self.ids);
        let wire = self.encode(&resp);
        if self.framing == Framing::Datagram && msg.mtype == MessageType::Con {
            self.dedup.record_response((), msg.message_id, wire.clone());
        }
        self.outgoing.push_back(wire);
    }

    fn on_response(&mut self, msg: Message, now: Instant) {
        if self.framing == Framing::Datagram && msg.mtype == MessageType::Con {
            // A separate response or a CON notification: acknowledge it (RFC 7252 5.2.2),
            // once per message id.
            self.push_message(&Message::empty_ack(msg.message_id));
            if matches!(self.dedup.check((), msg.message_id, msg.mtype, now), Seen::Duplicate(_)) {
                return;
            }
        }
        let token = msg.token;
        if self.hb_tokens.contains(&token) {
            self.hb_unanswered = false;
            self.stats.heartbeats_answered += 1;
            return;
        }
        if self.pending.contains_key(&token) {
            return self.complete(token, msg, now);
        }
        if let Some(obs) = self.observations.get_mut(&token) {
            let fresh = msg.observe().is_none_or(|seq| obs.freshness.accept(seq, now));
            if fresh {
                self.stats.notifications += 1;
                let id = obs.id;
                if msg.observe().is_none() || !msg.code.is_success() {
                    // RFC 7641 3.2: a notification without Observe, or an error, ends it.
                    self.observations.remove(&token);
                }
                self.events.push_back(Event::Notification { id, message: msg });
            } else {
                debug!(seq = ?msg.observe(), "stale notification dropped");
            }
            return;
        }
        // Unknown token: RST so the server forgets the observation (4.4.2.1).
        debug!(?token, "response for no request: RST");
        if self.framing == Framing::Datagram && msg.mtype != MessageType::Ack {
            self.push_message(&Message::reset_for(&msg));
        }
    }

    fn complete(&mut self, token: Token, msg: Message, now: Instant) {
        let p = self.pending.remove(&token).expect("present");
        let registers = p.msg.observe() == Some(0) && msg.code.is_success();
        if let (true, Some(seq)) = (registers, msg.observe()) {
            let mut freshness = ObserveFreshness::new();
            freshness.accept(seq, now);
            self.observations.insert(token, Observation { id: p.id, request: p.msg.clone(), freshness });
        }
        debug!(id = ?p.id, code = %msg.code, "response");
        self.events.push_back(Event::Response { id: p.id, response: msg });
    }
}

#[cfg(test)]
mod tests;
