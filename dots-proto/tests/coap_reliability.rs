//! Retransmission schedule, derived lifetimes, id/token generation and
//! duplicate detection, all with explicit times.

use std::time::{Duration, Instant};

use dots_proto::coap::{Dedup, MessageIdGen, MessageType, RetransmitAction, Retransmission, Seen, TokenGen, TransmissionParams};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn dots_defaults_and_derived_times() {
    let p = TransmissionParams::default();
    assert_eq!((p.ack_timeout, p.ack_random_factor, p.max_retransmit), (secs(2.0), 1.5, 3));
    assert_eq!(p.max_transmit_span(), secs(21.0));
    assert_eq!(p.max_transmit_wait(), secs(45.0));
    assert_eq!(p.exchange_lifetime(), secs(223.0));
    assert_eq!(p.non_lifetime(), secs(121.0));
    // RFC 7252 §4.8.2 numbers.
    let r = TransmissionParams::rfc7252();
    assert_eq!(r.max_transmit_span(), secs(45.0));
    assert_eq!(r.max_transmit_wait(), secs(93.0));
    assert_eq!(r.exchange_lifetime(), secs(247.0));
    assert_eq!(r.non_lifetime(), secs(145.0));
}

/// Walks the schedule, returning (time of each retransmission, give-up time).
fn schedule(p: &TransmissionParams, random: f64) -> (Vec<Duration>, Duration) {
    let t0 = Instant::now();
    let mut r = Retransmission::new(p, t0, random);
    let mut sends = Vec::new();
    loop {
        let now = r.deadline();
        match r.on_timeout(now) {
            RetransmitAction::Retransmit { .. } => sends.push(now - t0),
            RetransmitAction::GiveUp => return (sends, now - t0),
        }
    }
}

#[test]
fn schedule_with_lowest_random_timeout() {
    let (sends, give_up) = schedule(&TransmissionParams::default(), 0.0);
    assert_eq!(sends, [secs(2.0), secs(6.0), secs(14.0)]);
    assert_eq!(give_up, secs(30.0));
}

#[test]
fn schedule_with_highest_random_timeout_ends_at_max_transmit_wait() {
    let p = TransmissionParams::default();
    let (sends, give_up) = schedule(&p, 1.0);
    assert_eq!(sends, [secs(3.0), secs(9.0), secs(21.0)]);
    assert_eq!(*sends.last().unwrap(), p.max_transmit_span());
    assert_eq!(give_up, p.max_transmit_wait());
}

#[test]
fn negotiated_parameters_change_the_schedule() {
    let p = TransmissionParams { ack_timeout: secs(1.0), ack_random_factor: 2.0, max_retransmit: 1, ..Default::default() };
    let (sends, give_up) = schedule(&p, 0.5); // initial timeout 1.5 s
    assert_eq!(sends, [secs(1.5)]);
    assert_eq!(give_up, secs(4.5));
}

#[test]
fn early_timer_calls_change_nothing() {
    let t0 = Instant::now();
    let mut r = Retransmission::new(&TransmissionParams::default(), t0, 0.0);
    let d = r.deadline();
    assert_eq!(r.on_timeout(t0 + secs(1.0)), RetransmitAction::Retransmit { next_deadline: d });
    assert_eq!(r.retransmits(), 0);
    assert_eq!(r.on_timeout(d), RetransmitAction::Retransmit { next_deadline: d + secs(4.0) });
    assert_eq!(r.retransmits(), 1);
}

#[test]
fn message_ids_wrap() {
    let mut g = MessageIdGen::new(0xfffe);
    assert_eq!([g.next_id(), g.next_id(), g.next_id()], [0xfffe, 0xffff, 0]);
}

#[test]
fn tokens_are_distinct_and_seed_dependent() {
    let mut a = TokenGen::new(42, 8);
    let toks: std::collections::HashSet<_> = (0..10_000).map(|_| a.next_token()).collect();
    assert_eq!(toks.len(), 10_000);
    let mut b = TokenGen::new(43, 8);
    let mut a = TokenGen::new(42, 8);
    assert_ne!(a.next_token(), b.next_token());
    assert_eq!(TokenGen::new(1, 4).next_token().len(), 4);
    assert_eq!(TokenGen::new(1, 0).next_token().len(), 1);
    assert_eq!(TokenGen::new(1, 99).next_token().len(), 8);
}

#[test]
fn con_duplicates_until_exchange_lifetime() {
    let p = TransmissionParams::default();
    let t0 = Instant::now();
    let mut d = Dedup::new(&p, 100);
    assert_eq!(d.check("peer", 7, MessageType::Con, t0), Seen::New);
    assert_eq!(d.check("peer", 7, MessageType::Con, t0 + secs(1.0)), Seen::Duplicate(None));
    d.record_response("peer", 7, vec![0x60, 0x44, 0, 7]);
    assert_eq!(d.check("peer", 7, MessageType::Con, t0 + secs(222.9)), Seen::Duplicate(Some(&[0x60, 0x44, 0, 7][..])));
    // Another peer or id is new.
    assert_eq!(d.check("other", 7, MessageType::Con, t0 + secs(2.0)), Seen::New);
    assert_eq!(d.check("peer", 8, MessageType::Con, t0 + secs(2.0)), Seen::New);
    // At EXCHANGE_LIFETIME the entry is gone.
    assert_eq!(d.check("peer", 7, MessageType::Con, t0 + secs(223.0)), Seen::New);
}

#[test]
fn non_duplicates_until_non_lifetime() {
    let p = TransmissionParams::default();
    let t0 = Instant::now();
    let mut d = Dedup::new(&p, 100);
    assert_eq!(d.check(1u32, 5, MessageType::Non, t0), Seen::New);
    assert_eq!(d.check(1u32, 5, MessageType::Non, t0 + secs(120.0)), Seen::Duplicate(None));
    assert_eq!(d.check(1u32, 5, MessageType::Non, t0 + secs(121.0)), Seen::New);
}

#[test]
fn non_behind_a_con_still_expires_on_time() {
    let p = TransmissionParams::default();
    let t0 = Instant::now();
    let mut d = Dedup::new(&p, 100);
    d.check(1u32, 1, MessageType::Con, t0);
    d.check(1u32, 2, MessageType::Non, t0);
    assert_eq!(d.check(1u32, 2, MessageType::Non, t0 + secs(121.0)), Seen::New);
    // The re-inserted NON must survive the stale queue item of its first copy.
    d.expire(t0 + secs(223.0));
    assert_eq!(d.check(1u32, 2, MessageType::Non, t0 + secs(223.5)), Seen::Duplicate(None));
    assert_eq!(d.len(), 1);
}

#[test]
fn ack_and_rst_are_not_deduplicated() {
    let t0 = Instant::now();
    let mut d = Dedup::new(&TransmissionParams::default(), 10);
    assert_eq!(d.check(1u8, 1, MessageType::Ack, t0), Seen::New);
    assert_eq!(d.check(1u8, 1, MessageType::Ack, t0), Seen::New);
    assert_eq!(d.check(1u8, 1, MessageType::Rst, t0), Seen::New);
    assert!(d.is_empty());
}

#[test]
fn capacity_evicts_oldest() {
    let t0 = Instant::now();
    let mut d = Dedup::new(&TransmissionParams::default(), 3);
    for mid in 0..4u16 {
        assert_eq!(d.check(0u8, mid, MessageType::Con, t0 + secs(f64::from(mid))), Seen::New);
    }
    assert_eq!(d.len(), 3);
    assert_eq!(d.check(0u8, 0, MessageType::Con, t0 + secs(5.0)), Seen::New); // evicted
    assert_eq!(d.check(0u8, 3, MessageType::Con, t0 + secs(5.0)), Seen::Duplicate(None));
}
