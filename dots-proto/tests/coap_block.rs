//! Block-wise transfer (RFC 7959) with Request-Tag (RFC 9175): Block1
//! reassembly, Block2 slicing and collection.

use std::time::{Duration, Instant};

use dots_proto::coap::{block2_slice, Block1Assembler, Block1Error, Block1Progress, Block2Collector, Block2Step, BlockOpt, Code, Message, MessageType, Token};

const LIFE: Duration = Duration::from_secs(223);

fn block(num: u32, more: bool, szx: u8) -> BlockOpt {
    BlockOpt::new(num, more, szx).unwrap()
}

fn put_block(b: BlockOpt, payload: &[u8], tag: Option<&[u8]>) -> Message {
    let mut m = Message::request(Code::PUT, MessageType::Con, 1, Token::new(&[1]).unwrap());
    m.set_uri_path("/.well-known/dots/mitigate/cuid=x/mid=1");
    m.set_block1(b);
    if let Some(t) = tag {
        m.set_request_tag(t);
    }
    m.with_payload(payload.to_vec())
}

#[test]
fn three_blocks_assemble() {
    let t = Instant::now();
    let body: Vec<u8> = (0..40).collect();
    let mut a = Block1Assembler::new(1000, 10, LIFE);
    assert_eq!(a.offer("p", &put_block(block(0, true, 0), &body[..16], None), t), Ok(Block1Progress::Continue(block(0, true, 0))));
    assert_eq!(a.offer("p", &put_block(block(1, true, 0), &body[16..32], None), t), Ok(Block1Progress::Continue(block(1, true, 0))));
    assert_eq!(a.in_progress(), 1);
    let done = a.offer("p", &put_block(block(2, false, 0), &body[32..], None), t).unwrap();
    assert_eq!(done, Block1Progress::Complete { body: body.clone(), last: Some(block(2, false, 0)) });
    assert_eq!(a.in_progress(), 0);
}

#[test]
fn request_without_block1_completes_at_once() {
    let mut a: Block1Assembler<u8> = Block1Assembler::new(4, 10, LIFE);
    let m = Message::request(Code::PUT, MessageType::Con, 1, Token::EMPTY).with_payload(vec![1, 2, 3]);
    assert_eq!(a.offer(0, &m, Instant::now()), Ok(Block1Progress::Complete { body: vec![1, 2, 3], last: None }));
    let m = m.with_payload(vec![0; 5]);
    assert_eq!(a.offer(0, &m, Instant::now()), Err(Block1Error::TooLarge { limit: 4 }));
}

#[test]
fn missing_block_is_incomplete() {
    let t = Instant::now();
    let mut a = Block1Assembler::new(1000, 10, LIFE);
    a.offer(1, &put_block(block(0, true, 0), &[0; 16], None), t).unwrap();
    let e = a.offer(1, &put_block(block(2, false, 0), &[0; 4], None), t).unwrap_err();
    assert_eq!(e, Block1Error::Incomplete);
    assert_eq!(e.code(), Code::REQUEST_ENTITY_INCOMPLETE);
    // A later block with no transfer started is also incomplete.
    assert_eq!(a.offer(1, &put_block(block(1, false, 0), &[0; 4], None), t), Err(Block1Error::Incomplete));
}

#[test]
fn size_limit_gives_4_13() {
    let t = Instant::now();
    let mut a = Block1Assembler::new(20, 10, LIFE);
    a.offer(1, &put_block(block(0, true, 0), &[0; 16], None), t).unwrap();
    let e = a.offer(1, &put_block(block(1, true, 0), &[0; 16], None), t).unwrap_err();
    assert_eq!(e, Block1Error::TooLarge { limit: 20 });
    assert_eq!(e.code(), Code::REQUEST_ENTITY_TOO_LARGE);
    // Size1 announcing too much is refused on block 0.
    let mut m = put_block(block(0, true, 0), &[0; 16], None);
    m.set_size1(21);
    assert_eq!(a.offer(1, &m, t), Err(Block1Error::TooLarge { limit: 20 }));
}

#[test]
fn request_tags_keep_transfers_apart() {
    let t = Instant::now();
    let mut a = Block1Assembler::new(1000, 10, LIFE);
    a.offer(1, &put_block(block(0, true, 0), &[b'a'; 16], Some(b"A")), t).unwrap();
    a.offer(1, &put_block(block(0, true, 0), &[b'b'; 16], Some(b"B")), t).unwrap();
    assert_eq!(a.in_progress(), 2);
    let a_done = a.offer(1, &put_block(block(1, false, 0), b"a", Some(b"A")), t).unwrap();
    let b_done = a.offer(1, &put_block(block(1, false, 0), b"b", Some(b"B")), t).unwrap();
    let body = |p: Block1Progress| match p {
        Block1Progress::Complete { body, .. } => body,
        other => panic!("{other:?}"),
    };
    assert_eq!(body(a_done), [[b'a'; 16].as_slice(), b"a"].concat());
    assert_eq!(body(b_done), [[b'b'; 16].as_slice(), b"b"].concat());
}

#[test]
fn wrong_payload_size_and_bert_are_bad_requests() {
    let t = Instant::now();
    let mut a = Block1Assembler::new(1000, 10, LIFE);
    assert_eq!(a.offer(1, &put_block(block(0, true, 0), &[0; 15], None), t), Err(Block1Error::BadRequest));
    assert_eq!(a.offer(1, &put_block(block(0, false, 0), &[0; 17], None), t), Err(Block1Error::BadRequest));
    assert_eq!(a.offer(1, &put_block(block(0, true, 7), &[0; 1024], None), t), Err(Block1Error::BadRequest));
}

#[test]
fn smaller_blocks_mid_transfer_line_up_by_offset() {
    let t = Instant::now();
    let mut a = Block1Assembler::new(1000, 10, LIFE);
    a.offer(1, &put_block(block(0, true, 1), &[1; 32], None), t).unwrap();
    // 16-byte blocks: block 2 starts at offset 32.
    let r = a.offer(1, &put_block(block(2, false, 0), &[2; 3], None), t).unwrap();
    assert!(matches!(r, Block1Progress::Complete { ref body, .. } if body.len() == 35));
}

#[test]
fn abandoned_transfers_expire_and_capacity_is_bounded() {
    let t = Instant::now();
    let mut a = Block1Assembler::new(1000, 1, LIFE);
    a.offer(1, &put_block(block(0, true, 0), &[0; 16], None), t).unwrap();
    let e = a.offer(2, &put_block(block(0, true, 0), &[0; 16], None), t).unwrap_err();
    assert_eq!((e, e.code()), (Block1Error::Busy, Code::SERVICE_UNAVAILABLE));
    // After the lifetime, peer 1's transfer is gone and peer 2 gets the slot.
    assert!(a.offer(2, &put_block(block(0, true, 0), &[0; 16], None), t + LIFE).is_ok());
    assert_eq!(a.offer(1, &put_block(block(1, false, 0), &[0; 1], None), t + LIFE), Err(Block1Error::Incomplete));
}

#[test]
fn block2_split_and_collect_round_trip() {
    let body: Vec<u8> = (0..=255).cycle().take(1000).collect();
    let mut c = Block2Collector::new(4096);
    let mut req: Option<BlockOpt> = None;
    let mut rounds = 0;
    let got = loop {
        rounds += 1;
        let (b, chunk) = block2_slice(&body, req, 2).unwrap(); // 64-byte blocks
        let mut resp = Message::new(MessageType::Ack, Code::CONTENT, 1, Token::EMPTY).with_payload(chunk.to_vec());
        resp.set_block2(b);
        resp.add_etag(b"v1");
        match c.push(&resp).unwrap() {
            Block2Step::Request(next) => req = Some(next),
            Block2Step::Complete(all) => break all,
        }
    };
    assert_eq!(got, body);
    assert_eq!(rounds, 16);
}

#[test]
fn block2_collector_detects_change_and_gaps() {
    let resp = |num, more, tag: &[u8]| {
        let mut m = Message::new(MessageType::Ack, Code::CONTENT, 1, Token::EMPTY).with_payload(vec![0; 16]);
        m.set_block2(block(num, more, 0));
        m.add_etag(tag);
        m
    };
    let mut c = Block2Collector::new(100);
    c.push(&resp(0, true, b"a")).unwrap();
    assert_eq!(c.push(&resp(1, true, b"b")), Err(dots_proto::coap::block::Block2CollectError::Changed));
    let mut c = Block2Collector::new(100);
    c.push(&resp(0, true, b"a")).unwrap();
    assert_eq!(c.push(&resp(2, true, b"a")), Err(dots_proto::coap::block::Block2CollectError::OutOfSequence));
    let mut c = Block2Collector::new(20);
    c.push(&resp(0, true, b"a")).unwrap();
    assert_eq!(c.push(&resp(1, true, b"a")), Err(dots_proto::coap::block::Block2CollectError::TooLarge { limit: 20 }));
}
