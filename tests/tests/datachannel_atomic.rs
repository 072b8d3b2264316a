//! A 1,000-ACE ACL replaced while traffic runs: the data plane swaps the
//! whole rule set at once (generation flip), so every packet is counted
//! under the old set or the new one, and under the ACE that matches it.
//!
//! ACE r<i> matches UDP from source port 20000+i. The old set accepts, the
//! new one (same ACEs, reversed order) drops. Each of 1,000 sockets sends
//! the same number of datagrams throughout the replacement; afterwards
//! every ACE has counted exactly what its socket sent (stable ids carry the
//! counters across the swap), some datagrams arrived (old set) and some did
//! not (new set).

use std::{net::UdpSocket, time::Duration};

use mitigator_tests::datachannel::acl;
use mitigator_tests::traffic::UdpCounter;
use mitigator_tests::signal::SignalLab;

const N: usize = 1000;
const ROUNDS: u64 = 300;

fn bulk(action: &str, reversed: bool) -> String {
    let mut aces: Vec<(String, String)> = (0..N)
        .map(|i| {
            let m = format!(
                r#"{{"ipv4":{{"destination-ipv4-network":"203.0.113.10/32","source-ipv4-network":"203.0.113.66/32"}},"udp":{{"source-port-range-or-operator":{{"port":{}}}}}}}"#,
                20000 + i
            );
            (format!("r{i}"), m)
        })
        .collect();
    if reversed {
        aces.reverse();
    }
    let refs: Vec<(&str, &str, &str)> = aces.iter().map(|(n, m)| (n.as_str(), m.as_str(), action)).collect();
    acl("bulk", "immediate", &refs)
}

#[test]
fn thousand_ace_set_replaced_atomically_under_traffic() -> anyhow::Result<()> {
    let lab = SignalLab::start("mtg-dcb", "")?;
    lab.wait_data_channel()?;
    let a = lab.alice_cuid.clone();
    lab.register("alice", &a)?;
    lab.put_acl("alice", &a, &bulk(r#"{"forwarding":"accept"}"#, false))?;
    let counter = UdpCounter::start(&lab.host, false, 7100)?;

    let to = lab.host.addr(false);
    let sender = lab.attacker.spawn(move || -> anyhow::Result<u64> {
        let socks: Vec<UdpSocket> = (0..N).map(|i| UdpSocket::bind(("203.0.113.66", 20000 + i as u16))).collect::<Result<_, _>>()?;
        let mut sent = 0u64;
        for _ in 0..ROUNDS {
            for s in &socks {
                loop {
                    match s.send_to(&[0u8; 32], (to, 7100)) {
                        Ok(_) => break,
                        Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => std::thread::sleep(Duration::from_micros(50)),
                        Err(e) => return Err(e.into()),
                    }
                }
                sent += 1;
                if sent % 32 == 0 {
                    std::thread::sleep(Duration::from_micros(300));
                }
            }
        }
        Ok(sent)
    });
    std::thread::sleep(Duration::from_millis(800));
    let put = std::time::Instant::now();
    lab.put_acl("alice", &a, &bulk(r#"{"forwarding":"drop"}"#, true))?;
    eprintln!("replacement of {N} ACEs answered in {:?}", put.elapsed());
    let sent = sender.join().map_err(|_| anyhow::anyhow!("sender panicked"))???;
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sent, N as u64 * ROUNDS);

    let stats = lab.ace_stats("alice", &a, "bulk")?;
    assert_eq!(stats.len(), N);
    let wrong: Vec<_> = stats.iter().filter(|(_, p, _)| *p != ROUNDS).take(10).collect();
    assert!(wrong.is_empty(), "every ACE counts exactly its socket's {ROUNDS} datagrams: {wrong:?}");
    let total: u64 = stats.iter().map(|(_, p, _)| p).sum();
    assert_eq!(total, sent, "every datagram counted once");
    let received = counter.received();
    eprintln!("{received} of {sent} arrived under the old set");
    assert!(received > 0 && received < sent, "the swap happened during the traffic ({received} of {sent})");
    Ok(())
}
