//! Datagram reliability as values (RFC 7252 §4): transmission parameters
//! and derived times, the CON retransmission schedule, message-id and token
//! generation, and duplicate detection. Time is `std::time::Instant`
//! passed in by the caller; nothing here reads a clock or sleeps.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use super::message::{MessageType, Token};

/// Transmission parameters (RFC 7252 §4.8). DOTS negotiates ack-timeout,
/// ack-random-factor and max-retransmit in its session configuration
/// (RFC 9132 §4.5.2); the defaults are the recommended 2 s, 1.5 and 3.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TransmissionParams {
    pub ack_timeout: Duration,
    pub ack_random_factor: f64,
    pub max_retransmit: u32,
    /// MAX_LATENCY (100 s): not negotiated.
    pub max_latency: Duration,
}

impl Default for TransmissionParams {
    fn default() -> Self {
        TransmissionParams {
            ack_timeout: Duration::from_secs(2),
            ack_random_factor: 1.5,
            max_retransmit: 3,
            max_latency: Duration::from_secs(100),
        }
    }
}

impl TransmissionParams {
    /// RFC 7252's own defaults (MAX_RETRANSMIT 4), for peers outside DOTS.
    pub fn rfc7252() -> Self {
        TransmissionParams { max_retransmit: 4, ..Self::default() }
    }

    /// ACK_TIMEOUT * (2^MAX_RETRANSMIT - 1) * ACK_RANDOM_FACTOR (21 s with the DOTS defaults;
    /// RFC 7252's 45 s assumes MAX_RETRANSMIT 4).
    pub fn max_transmit_span(&self) -> Duration {
        self.ack_timeout.mul_f64(self.backoff_sum() * self.ack_random_factor)
    }
    /// ACK_TIMEOUT * (2^(MAX_RETRANSMIT+1) - 1) * ACK_RANDOM_FACTOR (45 s).
    pub fn max_transmit_wait(&self) -> Duration {
        self.ack_timeout.mul_f64((self.backoff_sum() * 2.0 + 1.0) * self.ack_random_factor)
    }
    /// PROCESSING_DELAY is ACK_TIMEOUT.
    pub fn processing_delay(&self) -> Duration {
        self.ack_timeout
    }
    /// How long a CON message id must not be reused and dedup state kept:
    /// MAX_TRANSMIT_SPAN + 2 * MAX_LATENCY + PROCESSING_DELAY (223 s with DOTS defaults, 247 s
    /// with RFC 7252's).
    pub fn exchange_lifetime(&self) -> Duration {
        self.max_transmit_span() + self.max_latency * 2 + self.processing_delay()
    }
    /// The same for NON: MAX_TRANSMIT_SPAN + MAX_LATENCY (121 s; 145 s with RFC 7252's).
    pub fn non_lifetime(&self) -> Duration {
        self.max_transmit_span() + self.max_latency
    }
    /// 2^MAX_RETRANSMIT - 1, capped to keep the float finite for silly values.
    fn backoff_sum(&self) -> f64 {
        (2f64).powi(self.max_retransmit.min(30) as i32) - 1.0
    }
}

/// What to do when a CON retransmission timer fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetransmitAction {
    /// Send the message again and wait until `next_deadline`.
    Retransmit { next_deadline: Instant },
    /// MAX_RETRANSMIT reached with no ACK/RST: the exchange failed.
    GiveUp,
}

/// Retransmission timer of one outstanding CON (RFC 7252 §4.2): the first
/// timeout is random in [ACK_TIMEOUT, ACK_TIMEOUT * ACK_RANDOM_FACTOR] and
/// doubles on each retransmission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retransmission {
    timeout: Duration,
    deadline: Instant,
    retransmits: u32,
    max_retransmit: u32,
}

impl Retransmission {
    /// `random` in [0, 1] picks the initial timeout within its range;
    /// values outside are clamped. `now` is when the CON was first sent.
    pub fn new(params: &TransmissionParams, now: Instant, random: f64) -> Self {
        let r = random.clamp(0.0, 1.0);
        let factor = 1.0 + r * (params.ack_random_factor.max(1.0) - 1.0);
        let timeout = params.ack_timeout.mul_f64(factor);
        Retransmission { timeout, deadline: now + timeout, retransmits: 0, max_retransmit: params.max_retransmit }
    }
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
    pub fn retransmits(&self) -> u32 {
        self.retransmits
    }
    /// Call when `now >= deadline()`. Earlier calls return the current
    /// deadline unchanged so that spurious wakeups are harmless.
    pub fn on_timeout(&mut self, now: Instant) -> RetransmitAction {
        if now < self.deadline {
            return RetransmitAction::Retransmit { next_deadline: self.deadline };
        }
        if self.retransmits >= self.max_retransmit {
            return RetransmitAction::GiveUp;
        }
        self.retransmits += 1;
        self.timeout *= 2;
        self.deadline += self.timeout;
        RetransmitAction::Retransmit { next_deadline: self.deadline }
    }
}

/// Sequential message ids from a caller-chosen (ideally random) start,
/// as RFC 7252 §4.4 suggests.
#[derive(Clone, Debug)]
pub struct MessageIdGen {
    next: u16,
}

impl MessageIdGen {
    pub fn new(start: u16) -> Self {
        MessageIdGen { next: start }
    }
    pub fn next_id(&mut self) -> u16 {
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        id
    }
}

/// Tokens from a secret seed: splitmix64 over a counter. splitmix64 is a
/// bijection on u64, so 8-byte tokens never repeat within 2^64 draws, and
/// without the seed they are not guessable off-path (RFC 7252 §5.3.1).
#[derive(Clone, Debug)]
pub struct TokenGen {
    seed: u64,
    counter: u64,
    len: usize,
}

impl TokenGen {
    /// `len` is clamped to 1..=8 bytes.
    pub fn new(seed: u64, len: usize) -> Self {
        TokenGen { seed, counter: 0, len: len.clamp(1, 8) }
    }
    pub fn next_token(&mut self) -> Token {
        self.counter = self.counter.wrapping_add(1);
        let v = splitmix64(self.seed.wrapping_add(self.counter.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        Token::new(&v.to_be_bytes()[..self.len]).unwrap_or_default()
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Verdict of [`Dedup::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen<'a> {
    /// First time: process it (and call `record_response` for a CON).
    New,
    /// Duplicate: for a CON resend this cached response if any (RFC 7252
    /// §4.5), otherwise ignore; ignore a duplicate NON.
    Duplicate(Option<&'a [u8]>),
}

struct Entry {
    expires: Instant,
    response: Option<Vec<u8>>,
}

/// Duplicate detection by (peer, message id), kept EXCHANGE_LIFETIME for
/// CON and NON_LIFETIME for NON. Bounded: when full, the oldest entry is
/// evicted (a duplicate of it would then be processed again, which the
/// idempotent DOTS requests tolerate, rather than growing without limit).
pub struct Dedup<K> {
    con_lifetime: Duration,
    non_lifetime: Duration,
    capacity: usize,
    entries: HashMap<(K, u16), Entry>,
    /// Insertion order for eviction and expiry.
    order: VecDeque<(Instant, (K, u16))>,
}

impl<K: Eq + Hash + Clone> Dedup<K> {
    pub fn new(params: &TransmissionParams, capacity: usize) -> Self {
        Dedup {
            con_lifetime: params.exchange_lifetime(),
            non_lifetime: params.non_lifetime(),
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records a received CON/NON or reports it as a duplicate. ACK and RST
    /// are not deduplicated here (they match outstanding CONs instead) and
    /// always return `New`.
    pub fn check(&mut self, peer: K, message_id: u16, mtype: MessageType, now: Instant) -> Seen<'_> {
        let lifetime = match mtype {
            MessageType::Con => self.con_lifetime,
            MessageType::Non => self.non_lifetime,
            _ => return Seen::New,
        };
        self.expire(now);
        let key = (peer, message_id);
        if self.entries.get(&key).is_some_and(|e| e.expires > now) {
            return Seen::Duplicate(self.entries[&key].response.as_deref());
        }
        self.insert(key, now + lifetime);
        Seen::New
    }

    /// Caches the encoded response to a CON so that duplicates get it again.
    pub fn record_response(&mut self, peer: K, message_id: u16, response: Vec<u8>) {
        if let Some(e) = self.entries.get_mut(&(peer, message_id)) {
            e.response = Some(response);
        }
    }

    fn insert(&mut self, key: (K, u16), expires: Instant) {
        // Re-inserting an expired key overwrites it: no eviction needed.
        while !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            let Some((exp, old)) = self.order.pop_front() else { break };
            self.remove_if_current(&old, exp);
        }
        if self.order.len() >= self.capacity * 2 {
            // Drop queue items left behind by re-inserted keys.
            let entries = &self.entries;
            self.order.retain(|(exp, k)| entries.get(k).is_some_and(|e| e.expires == *exp));
        }
        self.order.push_back((expires, key.clone()));
        self.entries.insert(key, Entry { expires, response: None });
    }

    /// Forgets entries whose lifetime has passed. NON entries behind a
    /// longer-lived CON entry wait for it; `check` still treats them as
    /// expired by looking at their own deadline.
    pub fn expire(&mut self, now: Instant) {
        while let Some((exp, _)) = self.order.front() {
            if *exp > now {
                break;
            }
            if let Some((exp, key)) = self.order.pop_front() {
                self.remove_if_current(&key, exp);
            }
        }
    }

    /// A key may be queued twice (expired, then seen again): only the queue
    /// item matching the live entry's deadline may remove it.
    fn remove_if_current(&mut self, key: &(K, u16), exp: Instant) {
        if self.entries.get(key).is_some_and(|e| e.expires == exp) {
            self.entries.remove(key);
        }
    }
}
