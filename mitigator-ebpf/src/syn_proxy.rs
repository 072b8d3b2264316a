//! The SYN proxy: SYN cookies answered in XDP, for this host's own TCP
//! listeners, after the kernel's XDP synproxy selftest
//! (tools/testing/selftests/bpf/progs/xdp_synproxy_kern.c), written anew.
//!
//! - A pure SYN to a port where the host has a listener is answered here:
//!   the frame is turned into the SYN-ACK in place, its sequence number a
//!   cookie from the kernel's own `bpf_tcp_raw_gen_syncookie_ipv4/6`, and
//!   sent back out (`XDP_TX`). A spoofed SYN costs this and nothing else:
//!   no socket, no SYN queue, no skb.
//! - A non-SYN segment to such a port passes when the host has a socket
//!   for its 4-tuple (a connection, a request, a TIME-WAIT), or when it is
//!   the ACK of a valid cookie (`bpf_tcp_raw_check_syncookie_ipv4/6`): the
//!   kernel's nftables `synproxy` (rules the daemon installs with the
//!   protection) checks the cookie again, opens the connection to the
//!   listener with the options the cookie carries and splices the two.
//!   Anything else (an ACK, RST or FIN flood) is dropped.
//! - A port without a listener is not the proxy's: forwarded traffic and
//!   closed ports go on to the other countermeasures.
//!
//! IPv4 with options and IPv6 with extension headers are not answered
//! here (they go on; nftables' synproxy answers such a SYN itself).

use aya_ebpf::{
    bindings::{bpf_sock, bpf_sock_tuple, iphdr, ipv6hdr, tcphdr},
    helpers::{
        bpf_csum_diff, bpf_ktime_get_ns, bpf_sk_release, bpf_skc_lookup_tcp, bpf_tcp_raw_check_syncookie_ipv4,
        bpf_tcp_raw_check_syncookie_ipv6, bpf_tcp_raw_gen_syncookie_ipv4, bpf_tcp_raw_gen_syncookie_ipv6,
        bpf_xdp_adjust_tail, bpf_xdp_load_bytes, bpf_xdp_store_bytes,
    },
    programs::XdpContext,
};
use mitigator_common::SynProxyConfig;

use crate::{
    maps::{SYN_PROXY, SYN_SCRATCH},
    parse::{Pkt, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN},
};

/// What the proxy made of a packet.
pub enum Proxy {
    /// Not a listener's (no socket at all): the other countermeasures decide.
    NotMine,
    /// A connection's segment or a valid cookie's ACK.
    Pass,
    /// A listener's segment of no connection and no valid cookie.
    Drop,
    /// A SYN answered: the frame is now the SYN-ACK, for `XDP_TX`.
    Answered,
}

/// Headers copied out of the packet (the cookie helpers take pointers to
/// memory of a size the verifier knows) and the SYN-ACK's headers being
/// built. A per-CPU map value: too large for the 512-byte stack beside the
/// callers' frames.
#[repr(C)]
pub struct Scratch {
    /// The IP header (IPv4: 20 bytes, IPv6: 40).
    ip: [u8; 40],
    /// The TCP header with its options.
    tcp: [u8; 60],
    /// The SYN-ACK's TCP header.
    out: [u8; 40],
    /// The Ethernet addresses (12 bytes), swapped.
    mac: [u8; 12],
    /// The client's SYN options (`syn_options`): window scale (0xf for
    /// none, the kernel's `TS_OPT_WSCALE_MASK`), SACK permitted, and the
    /// timestamp value when `opt_ts` is set.
    opt_wscale: u8,
    opt_sack: u8,
    opt_ts: u8,
    _pad: u8,
    opt_tsval: u32,
}

const TCP_LISTEN: u32 = 10;
/// `BPF_F_CURRENT_NETNS`: the lookup's network namespace is the device's.
const CURRENT_NETNS: u64 = u64::MAX;
const IPV4_HDR: u32 = 20;
const IPV6_HDR: u32 = 40;
const TCP_HDR: u32 = 20;

/// The proxy's decision for `p`, a TCP segment in a proxied scope with a
/// whole header (`policy::wants_syn_proxy`).
#[inline(always)]
pub fn decide(ctx: &XdpContext, p: &Pkt) -> Proxy {
    let Some(s) = SYN_SCRATCH.get_ptr_mut(0) else { return Proxy::NotMine };
    // SAFETY: per-CPU, and an XDP run is not preempted.
    let s = unsafe { &mut *s };
    let Some(cfg) = SYN_PROXY.get(0) else { return Proxy::NotMine };
    if cfg.ready == 0 {
        return Proxy::NotMine;
    }
    let pure_syn = p.tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN) == TCP_SYN;
    // Copy the headers: a packet with IPv4 options or IPv6 extension
    // headers is not answered here.
    let l3 = p.l3_off as u32 & 0x3f;
    let ip_len = if p.v6 { IPV6_HDR } else { IPV4_HDR };
    if p.l4_off as u32 != l3 + ip_len {
        return Proxy::NotMine;
    }
    match socket_state(ctx, p) {
        None => return Proxy::NotMine,
        Some(TCP_LISTEN) => {}
        Some(_) => return Proxy::Pass,
    }
    if load(ctx, l3, &mut s.ip, ip_len).is_none() || load(ctx, l3 + ip_len, &mut s.tcp, TCP_HDR).is_none() {
        return Proxy::NotMine;
    }
    if !pure_syn {
        return if cookie_ok(s, p.v6) { Proxy::Pass } else { Proxy::Drop };
    }
    // The helpers need a length the verifier knows is within [20, 60]:
    // read back opaquely, then raised to 20, so that LLVM cannot fold the
    // bound into a test of the raw byte (whose range the verifier would
    // not carry over to the length). A data offset below 5 never gets
    // here (`parse_l4` marks it malformed).
    let tcp_len = ((s.tcp[12] >> 4) as u32 * 4) & 0x3c;
    let tcp_len = unsafe { core::ptr::read_volatile(&tcp_len) }.max(TCP_HDR);
    if load(ctx, l3 + ip_len, &mut s.tcp, tcp_len).is_none() {
        return Proxy::NotMine;
    }
    match answer(ctx, s, cfg, p.v6, l3, tcp_len) {
        Some(()) => Proxy::Answered,
        None => Proxy::NotMine,
    }
}

/// Copies `len` (at most the buffer's size) bytes at `off` into `buf`.
#[inline(always)]
fn load<const N: usize>(ctx: &XdpContext, off: u32, buf: &mut [u8; N], len: u32) -> Option<()> {
    if len as usize > N {
        return None;
    }
    let rc = unsafe { bpf_xdp_load_bytes(ctx.ctx, off, buf.as_mut_ptr() as *mut _, len) };
    (rc == 0).then_some(())
}

/// The state of the host's socket for the packet's 4-tuple (a connection,
/// a request or TIME-WAIT before a listener), or `None` for no socket.
#[inline(always)]
fn socket_state(ctx: &XdpContext, p: &Pkt) -> Option<u32> {
    // SAFETY: a zeroed tuple is valid; the union member written is the
    // one whose size is passed.
    let mut t: bpf_sock_tuple = unsafe { core::mem::zeroed() };
    let sport = p.sport.to_be();
    let dport = p.dport.to_be();
    let sk: *mut bpf_sock = unsafe {
        if p.v6 {
            let a = &mut t.__bindgen_anon_1.ipv6;
            a.saddr = words(&p.src);
            a.daddr = words(&p.dst);
            a.sport = sport;
            a.dport = dport;
            bpf_skc_lookup_tcp(ctx.ctx as *mut _, &mut t, 36, CURRENT_NETNS, 0)
        } else {
            let a = &mut t.__bindgen_anon_1.ipv4;
            a.saddr = words(&p.src)[0];
            a.daddr = words(&p.dst)[0];
            a.sport = sport;
            a.dport = dport;
            bpf_skc_lookup_tcp(ctx.ctx as *mut _, &mut t, 12, CURRENT_NETNS, 0)
        }
    };
    if sk.is_null() {
        return None;
    }
    // SAFETY: a socket the lookup returned, released right after.
    let state = unsafe { (*sk).state };
    unsafe { bpf_sk_release(sk as *mut _) };
    Some(state)
}

/// An address's four words in memory order.
#[inline(always)]
fn words(a: &[u8; 16]) -> [u32; 4] {
    let w = |i: usize| u32::from_ne_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
    [w(0), w(4), w(8), w(12)]
}

/// The ACK in `s` acknowledges a cookie this host sent (within the
/// kernel's two-minute validity).
#[inline(always)]
fn cookie_ok(s: &mut Scratch, v6: bool) -> bool {
    let ip = s.ip.as_mut_ptr();
    let th = s.tcp.as_mut_ptr() as *mut tcphdr;
    let rc = unsafe {
        if v6 {
            bpf_tcp_raw_check_syncookie_ipv6(ip as *mut ipv6hdr, th)
        } else {
            bpf_tcp_raw_check_syncookie_ipv4(ip as *mut iphdr, th)
        }
    };
    rc == 0
}

/// Option kinds (RFC 9293, RFC 7323, RFC 2018).
const OPT_EOL: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_WSCALE: u8 = 3;
const OPT_SACK_PERM: u8 = 4;
const OPT_TIMESTAMP: u8 = 8;
/// Options walked in a SYN: Linux sends 5 (NOP included), other stacks up
/// to 9; a longer list keeps what was read so far.
const MAX_OPTIONS: usize = 12;

/// Walks the SYN's options (`tcp[20..len]`) into `s.opt_*`. The results go
/// to the map value, not to registers: the verifier does not track what a
/// map holds, so the paths through the walk (which option came first) do
/// not multiply its states. Every read is a `get`.
#[inline(never)]
fn syn_options(s: &mut Scratch, len: u32) {
    let t = &s.tcp;
    // Linux's own layout (MSS, SACK permitted, timestamps, NOP, window
    // scale), most SYNs on the Internet: read in place, without the walk.
    if len == 40 && t[20] == 2 && t[21] == 4 && t[24..28] == [4, 2, 8, 10] && t[36..39] == [1, 3, 3] {
        s.opt_tsval = u32::from_be_bytes([t[28], t[29], t[30], t[31]]);
        s.opt_wscale = t[39].min(14);
        s.opt_sack = 1;
        s.opt_ts = 1;
        return;
    }
    s.opt_wscale = 0xf;
    s.opt_sack = 0;
    s.opt_ts = 0;
    let len = (len as usize).min(60);
    let mut i = TCP_HDR as usize;
    let mut n = 0;
    while n < MAX_OPTIONS {
        n += 1;
        if i >= len {
            break;
        }
        let kind = s.tcp.get(i).copied().unwrap_or(OPT_EOL);
        if kind == OPT_EOL {
            break;
        }
        if kind == OPT_NOP {
            i += 1;
            continue;
        }
        let olen = s.tcp.get(i + 1).copied().unwrap_or(0) as usize;
        if olen < 2 || i + olen > len {
            break;
        }
        if kind == OPT_WSCALE && olen == 3 {
            s.opt_wscale = s.tcp.get(i + 2).copied().unwrap_or(0xf).min(14);
        } else if kind == OPT_SACK_PERM && olen == 2 {
            s.opt_sack = 1;
        } else if kind == OPT_TIMESTAMP && olen == 10 {
            if let Some(v) = s.tcp.get(i + 2..i + 6) {
                s.opt_tsval = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
                s.opt_ts = 1;
            }
        }
        i += olen;
    }
}

/// Turns the SYN (headers in `s`, TCP header `tcp_len` bytes) into its
/// cookie SYN-ACK in the frame.
#[inline(always)]
fn answer(ctx: &XdpContext, s: &mut Scratch, cfg: &SynProxyConfig, v6: bool, l3: u32, tcp_len: u32) -> Option<()> {
    let ip = s.ip.as_mut_ptr();
    let th = s.tcp.as_mut_ptr() as *mut tcphdr;
    // Low 32 bits: the cookie (the MSS it encodes is the client's).
    let cookie = unsafe {
        if v6 {
            bpf_tcp_raw_gen_syncookie_ipv6(ip as *mut ipv6hdr, th, tcp_len)
        } else {
            bpf_tcp_raw_gen_syncookie_ipv4(ip as *mut iphdr, th, tcp_len)
        }
    };
    if cookie < 0 {
        return None;
    }
    syn_options(s, tcp_len);
    let out_len = synack_tcp(s, cfg, v6, cookie as u32);
    let ip_len = if v6 { IPV6_HDR } else { IPV4_HDR };
    if v6 {
        synack_ipv6(&mut s.ip, cfg.ttl, out_len);
    } else {
        synack_ipv4(&mut s.ip, cfg.ttl, out_len);
    }
    tcp_checksum(s, v6, out_len);

    // The frame becomes Ethernet (tags kept) + IP + the SYN-ACK's header.
    let old = unsafe { (*ctx.ctx).data_end - (*ctx.ctx).data } as i32;
    let new = (l3 + ip_len + out_len) as i32;
    if new != old && unsafe { bpf_xdp_adjust_tail(ctx.ctx, new - old) } != 0 {
        return None;
    }
    load(ctx, 0, &mut s.mac, 12)?;
    let mut i = 0;
    while i < 6 {
        s.mac.swap(i, i + 6);
        i += 1;
    }
    store(ctx, 0, &mut s.mac, 12)?;
    store(ctx, l3, &mut s.ip, ip_len)?;
    store(ctx, l3 + ip_len, &mut s.out, out_len)
}

#[inline(always)]
fn store<const N: usize>(ctx: &XdpContext, off: u32, buf: &mut [u8; N], len: u32) -> Option<()> {
    if len as usize > N {
        return None;
    }
    let rc = unsafe { bpf_xdp_store_bytes(ctx.ctx, off, buf.as_mut_ptr() as *mut _, len) };
    (rc == 0).then_some(())
}

/// Writes the SYN-ACK's TCP header into `s.out` (checksum zero); returns
/// its length. Options, as Linux lays them out: MSS; timestamps (with SACK
/// permitted in front, or two NOPs); SACK permitted alone; window scale.
/// The window is 0: the client sends no data before the nftables synproxy
/// has opened the connection to the listener and announced its window.
#[inline(always)]
fn synack_tcp(s: &mut Scratch, cfg: &SynProxyConfig, v6: bool, cookie: u32) -> u32 {
    // Without timestamps nothing but the MSS can come back through the
    // cookie: window scale and SACK are not offered either.
    let with_ts = cfg.timestamps != 0 && s.opt_ts != 0;
    let (wscale, sack, ts, tsecr) =
        if with_ts { (s.opt_wscale, s.opt_sack != 0, true, s.opt_tsval) } else { (0xf, false, false, 0) };
    let t = &s.tcp;
    let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
    let out = &mut s.out;
    // Ports swapped.
    out[0] = t[2];
    out[1] = t[3];
    out[2] = t[0];
    out[3] = t[1];
    out[4..8].copy_from_slice(&cookie.to_be_bytes());
    out[8..12].copy_from_slice(&seq.wrapping_add(1).to_be_bytes());
    out[13] = TCP_SYN | TCP_ACK;
    out[14..20].copy_from_slice(&[0; 6]);
    let mss = if v6 { cfg.mss6 } else { cfg.mss4 };
    out[20..24].copy_from_slice(&[2, 4, (mss >> 8) as u8, mss as u8]);
    let mut len = 24;
    if ts {
        // The timestamp carries the client's window scale and SACK (as the
        // kernel's cookie_init_timestamp lays them in the low 6 bits), for
        // nftables' synproxy to read back from the ACK's echo.
        let now_ms = (unsafe { bpf_ktime_get_ns() } / 1_000_000) as u32;
        let tsval = (now_ms & !0x3f) | wscale as u32 | if sack { 1 << 4 } else { 0 };
        let head = if sack { [4, 2, 8, 10] } else { [1, 1, 8, 10] };
        out[24..28].copy_from_slice(&head);
        out[28..32].copy_from_slice(&tsval.to_be_bytes());
        out[32..36].copy_from_slice(&tsecr.to_be_bytes());
        len = 36;
    } else if sack {
        out[24..28].copy_from_slice(&[1, 1, 4, 2]);
        len = 28;
    }
    if wscale != 0xf {
        let w = [1, 3, 3, cfg.wscale];
        if len == 36 {
            out[36..40].copy_from_slice(&w);
        } else if len == 28 {
            out[28..32].copy_from_slice(&w);
        } else {
            out[24..28].copy_from_slice(&w);
        }
        len += 4;
    }
    out[12] = ((len / 4) << 4) as u8;
    len
}

/// The SYN's IPv4 header (20 bytes) turned into the SYN-ACK's.
#[inline(never)]
fn synack_ipv4(ip: &mut [u8; 40], ttl: u8, tcp_len: u32) {
    let total = (IPV4_HDR + tcp_len) as u16;
    let mut i = 0;
    while i < 4 {
        ip.swap(12 + i, 16 + i);
        i += 1;
    }
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    // Identification 0 and Don't Fragment, as Linux sends a SYN-ACK.
    ip[4..8].copy_from_slice(&[0, 0, 0x40, 0]);
    ip[8] = ttl;
    ip[9] = 6;
    ip[10] = 0;
    ip[11] = 0;
    let sum = csum(ip.as_mut_ptr(), IPV4_HDR, 0);
    ip[10..12].copy_from_slice(&fold(sum).to_ne_bytes());
}

/// The SYN's IPv6 header turned into the SYN-ACK's.
#[inline(always)]
fn synack_ipv6(ip: &mut [u8; 40], hop_limit: u8, tcp_len: u32) {
    let mut i = 0;
    while i < 16 {
        ip.swap(8 + i, 24 + i);
        i += 1;
    }
    ip[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
    ip[4..6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
    ip[6] = 6;
    ip[7] = hop_limit;
}

/// The one's complement of a 64-bit sum of 32-bit words folded to 16 bits.
#[inline(always)]
fn fold(mut sum: u64) -> u16 {
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    let mut x = sum as u32;
    x = (x & 0xffff) + (x >> 16);
    x = (x & 0xffff) + (x >> 16);
    !(x as u16)
}

/// The one's-complement sum of `len` bytes (a multiple of 4) at `p`, added
/// to `seed`, by the kernel's `csum_partial` (`bpf_csum_diff`): one helper
/// call instead of a loop of 16-bit adds. The words are summed as they lie
/// in memory: the result is stored back as it comes (`to_ne_bytes`), which
/// is the checksum in network order whatever the CPU's byte order.
#[inline(always)]
fn csum(p: *mut u8, len: u32, seed: u32) -> u64 {
    let r = unsafe { bpf_csum_diff(core::ptr::null_mut(), 0, p as *mut u32, len, seed) };
    if r < 0 {
        0
    } else {
        r as u64
    }
}

/// A 4-byte word of `b` at `i` as it lies in memory.
#[inline(always)]
fn word(b: &[u8; 40], i: usize) -> u32 {
    match b.get(i..i + 4) {
        Some(w) => u32::from_ne_bytes([w[0], w[1], w[2], w[3]]),
        None => 0,
    }
}

/// The SYN-ACK's TCP checksum (pseudo-header from the SYN-ACK's IP header
/// in `s.ip`), written into `s.out`. Not inlined: its own small frame
/// keeps the caller's under the 512-byte limit of the whole call chain.
#[inline(never)]
fn tcp_checksum(s: &mut Scratch, v6: bool, tcp_len: u32) {
    // Pseudo-header: the addresses, then zero, protocol and TCP length.
    let mut seed = u32::from_ne_bytes([0, 6, (tcp_len >> 8) as u8, tcp_len as u8]) as u64;
    if v6 {
        let mut i = 8;
        while i < 40 {
            seed += word(&s.ip, i) as u64;
            i += 4;
        }
    } else {
        seed += word(&s.ip, 12) as u64 + word(&s.ip, 16) as u64;
    }
    // Folded to 32 bits: the helper's seed is a 32-bit partial sum.
    let seed = (seed & 0xffff_ffff) + (seed >> 32);
    let seed = ((seed & 0xffff_ffff) + (seed >> 32)) as u32;
    let sum = csum(s.out.as_mut_ptr(), tcp_len.min(40) & !3, seed);
    s.out[16..18].copy_from_slice(&fold(sum).to_ne_bytes());
}
