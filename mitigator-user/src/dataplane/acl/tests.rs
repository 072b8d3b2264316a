//! Unit tests of the compiler: operators, refusals, vectors, encoding.

use super::{compile::compile, encode::roundtrips, *};
use mitigator_common::{
    acl_fields as af, acl_frag, ACL_IDX_DPORT, ACL_IDX_PROTO, ACL_IDX_TTL, ACL_PORT_NONE, MAX_ACL_ENTRIES,
};

fn entry(id: u64, m: AclMatch) -> AclEntry {
    AclEntry { stat_id: id, matches: m, action: AclAction::Drop }
}

#[test]
fn port_operators() {
    assert_eq!(port_ranges(PortOp::Neq, 80), vec![0..=79, 81..=65535]);
    assert_eq!(port_ranges(PortOp::Neq, 0), vec![1..=65535]);
    assert_eq!(port_ranges(PortOp::Lte, 1023), vec![0..=1023]);
    assert_eq!(port_ranges(PortOp::Gte, 1024), vec![1024..=65535]);
}

#[test]
fn bitmask_operators() {
    let b = |operator, bitmask| BitmaskMatch { operator, bitmask };
    assert!(b(acl_op::MATCH, 0x12).eval(0x12));
    assert!(!b(acl_op::MATCH, 0x12).eval(0x02));
    assert!(b(0, 0x12).eval(0x13), "no operator = match");
    assert!(b(acl_op::ANY, 0x12).eval(0x02));
    assert!(!b(acl_op::ANY, 0x12).eval(0x01));
    assert!(b(acl_op::NOT | acl_op::ANY, 0xfff).eval(0), "'not any' = none of the bits");
    assert!(!b(acl_op::NOT | acl_op::ANY, 0xfff).eval(0x10));
    assert!(b(acl_op::NOT, 0x12).eval(0x02), "'not' = not match");
}

#[test]
fn encode_roundtrips() {
    let m = AclMatch {
        family: Some(AclFamily::V6),
        src: Some("2001:db8::/32".parse().unwrap()),
        dst: Some("2001:db8:1::1/128".parse().unwrap()),
        protocol: Some(6),
        src_ports: Some(vec![0..=79, 81..=65535]),
        dst_ports: Some(vec![443..=443]),
        tcp_flags_bitmask: Some(BitmaskMatch { operator: acl_op::NOT | acl_op::ANY, bitmask: 0xfff }),
        tcp_flags: Some(2),
        fragment: Some(BitmaskMatch { operator: acl_op::MATCH, bitmask: 2 }),
        length: Some(40..=1500),
        udp_length: Some(8..=508),
        ttl: Some(1..=64),
        icmp_type: Some(8),
        icmp_code: Some(0),
    };
    assert!(roundtrips(&entry(9, m)));
    assert!(roundtrips(&entry(1, AclMatch { src: Some("10.0.0.0/8".parse().unwrap()), ..Default::default() })));
    assert!(roundtrips(&AclEntry {
        stat_id: 2,
        matches: AclMatch::default(),
        action: AclAction::RateLimit { bytes_per_sec: 1000 }
    }));
}

#[test]
fn refusals_name_entry_and_field() {
    let bad = |m: AclMatch, field: &str| {
        let e = compile(&[entry(1, AclMatch::default()), entry(2, m)], &[0, 1]).unwrap_err();
        assert_eq!((e.entry, e.field), (Some(1), field), "{e}");
    };
    bad(
        AclMatch { src: Some("10.0.0.0/8".parse().unwrap()), dst: Some("::/0".parse().unwrap()), ..Default::default() },
        "dst",
    );
    bad(AclMatch { dst_ports: Some(vec![]), ..Default::default() }, "dst_ports");
    #[allow(clippy::reversed_empty_ranges)]
    bad(AclMatch { src_ports: Some(vec![9..=1]), ..Default::default() }, "src_ports");
    bad(AclMatch { src_ports: Some(vec![1..=1, 3..=3, 5..=5, 7..=7, 9..=9]), ..Default::default() }, "src_ports");
    #[allow(clippy::reversed_empty_ranges)]
    bad(AclMatch { ttl: Some(9..=1), ..Default::default() }, "ttl");
    bad(
        AclMatch {
            tcp_flags_bitmask: Some(BitmaskMatch { operator: acl_op::MATCH | acl_op::ANY, bitmask: 1 }),
            ..Default::default()
        },
        "tcp_flags_bitmask",
    );
    bad(
        AclMatch { tcp_flags_bitmask: Some(BitmaskMatch { operator: 0, bitmask: 0x1000 }), ..Default::default() },
        "tcp_flags_bitmask",
    );
    bad(
        AclMatch {
            family: Some(AclFamily::V6),
            fragment: Some(BitmaskMatch { operator: 0, bitmask: acl_frag::DF as u16 }),
            ..Default::default()
        },
        "fragment",
    );
    let e = compile(&[entry(1, AclMatch::default()), entry(1, AclMatch::default())], &[0, 1]).unwrap_err();
    assert_eq!((e.entry, e.field), (Some(1), "stat_id"));
    let many: Vec<AclEntry> = (0..=MAX_ACL_ENTRIES as u64).map(|i| entry(i, AclMatch::default())).collect();
    assert_eq!(compile(&many, &vec![0; many.len()]).unwrap_err().field, "acl");
}

/// The compiled vectors agree with a direct evaluation of the entries.
#[test]
fn vectors_agree_with_entries() {
    let entries = vec![
        entry(1, AclMatch { dst_ports: Some(port_ranges(PortOp::Neq, 53)), ..Default::default() }),
        entry(2, AclMatch { dst_ports: Some(vec![50..=60]), protocol: Some(17), ..Default::default() }),
        entry(3, AclMatch { ttl: Some(10..=20), ..Default::default() }),
    ];
    let c = compile(&entries, &[0, 1, 2]).unwrap();
    let bits = |off: u32, v: u32| c.vecs[c.idx[(off + v) as usize] as usize].words[0];
    assert_eq!(bits(ACL_IDX_DPORT, 53) & 0b11, 0b10);
    assert_eq!(bits(ACL_IDX_DPORT, 52) & 0b11, 0b11);
    assert_eq!(bits(ACL_IDX_DPORT, 61) & 0b11, 0b01);
    assert_eq!(bits(ACL_IDX_DPORT, ACL_PORT_NONE), 0b100);
    assert_eq!(bits(ACL_IDX_TTL, 9), 0b011);
    assert_eq!(bits(ACL_IDX_TTL, 20), 0b111);
    assert_eq!(bits(ACL_IDX_PROTO, 6), 0b101);
    assert_eq!(c.hdr.fields, af::DPORT | af::TTL | af::PROTO);
}
