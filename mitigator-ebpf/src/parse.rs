//! Packet parsing: one small, bounds-checked function per header, in the
//! style of xdp-tools' `parsing_helpers.h`.
//!
//! Every read goes through [`Cursor::take`], which checks `pos + size <=
//! data_end` on the packet pointer itself (never on a scalar offset), so that
//! the verifier sees the range check on the very register later dereferenced.
//! Any failure returns `None`; the caller then passes the packet untouched,
//! counted as `Unparsed`: a packet we cannot read is never dropped.

use core::mem::size_of;

use crate::dst_cache::Dst;

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88A8;

pub const IPPROTO_HOPOPTS: u8 = 0;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ROUTING: u8 = 43;
pub const IPPROTO_FRAGMENT: u8 = 44;
pub const IPPROTO_AH: u8 = 51;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_DSTOPTS: u8 = 60;
pub const IPPROTO_SCTP: u8 = 132;
pub const IPPROTO_UDPLITE: u8 = 136;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;
pub const TCP_URG: u8 = 0x20;

/// Fragment state of a packet.
pub const FRAG_NONE: u8 = 0;
/// First fragment: carries the L4 header (MF set, offset 0).
pub const FRAG_FIRST: u8 = 1;
/// Non-first fragment: offset > 0, no L4 header.
pub const FRAG_LATER: u8 = 2;

#[repr(C)]
pub struct EthHdr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub proto: [u8; 2],
}

#[repr(C)]
pub struct VlanHdr {
    pub tci: [u8; 2],
    pub proto: [u8; 2],
}

#[repr(C)]
pub struct Ipv4Hdr {
    pub ver_ihl: u8,
    pub tos: u8,
    pub tot_len: [u8; 2],
    pub id: [u8; 2],
    pub frag_off: [u8; 2],
    pub ttl: u8,
    pub proto: u8,
    pub check: [u8; 2],
    pub src: [u8; 4],
    pub dst: [u8; 4],
}

#[repr(C)]
pub struct Ipv6Hdr {
    pub ver_tc_flow: [u8; 4],
    pub payload_len: [u8; 2],
    pub next: u8,
    pub hop_limit: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
}

/// The first two bytes every IPv6 extension header starts with.
#[repr(C)]
pub struct Ipv6ExtHdr {
    pub next: u8,
    pub len: u8,
}

#[repr(C)]
pub struct Ipv6FragHdr {
    pub next: u8,
    pub reserved: u8,
    /// Offset (13 bits, in 8-byte units) << 3 | M flag.
    pub off_m: [u8; 2],
    pub id: [u8; 4],
}

#[repr(C)]
pub struct TcpHdr {
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub seq: [u8; 4],
    pub ack: [u8; 4],
    pub doff: u8,
    pub flags: u8,
    pub window: [u8; 2],
    pub check: [u8; 2],
    pub urg: [u8; 2],
}

/// UDP and UDP-Lite share this layout.
#[repr(C)]
pub struct UdpHdr {
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub len: [u8; 2],
    pub check: [u8; 2],
}

#[repr(C)]
pub struct SctpHdr {
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub vtag: [u8; 4],
    pub check: [u8; 4],
}

/// ICMP and ICMPv6 share the first 8 bytes (type, code, checksum, rest).
#[repr(C)]
pub struct IcmpHdr {
    pub ty: u8,
    pub code: u8,
    pub check: [u8; 2],
    pub rest: [u8; 4],
}

/// What the policy needs to know about a packet. Aligned to 8 so that
/// [`Pkt::clear`] can zero it with whole-word stores.
#[repr(C, align(8))]
pub struct Pkt {
    /// IPv4 addresses use the first 4 bytes. Network byte order. First in
    /// the struct, so 4-byte aligned: the destination cache reads them as
    /// words (`dst_word`).
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub v6: bool,
    /// L4 protocol (for IPv6: the header after the extension headers).
    pub proto: u8,
    pub frag: u8,
    /// The L4 header was read (`parse_l4`): the fields below it are valid
    /// as their own flags say.
    pub l4_done: bool,
    /// `parse_l4` found a known L4 header cut short or malformed.
    pub l4_bad: bool,
    /// Offset of the L4 header from the start of the packet (`parse_l4`
    /// reads it only when a rule needs it: the no-match path does not).
    pub l4_off: u16,
    /// Offset of the IP header from the start of the packet (after the
    /// VLAN tags): where the SYN proxy rewrites it.
    pub l3_off: u16,
    /// `sport`/`dport` are valid (TCP, UDP, UDP-Lite, SCTP with L4 header).
    pub has_ports: bool,
    /// `tcp_flags` is valid (TCP with L4 header).
    pub has_tcp: bool,
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    // ---- read only by the ACL (acl.rs) ----
    /// `icmp_type`/`icmp_code` are valid (ICMP or ICMPv6 with L4 header).
    pub has_icmp: bool,
    /// Low nibble of TCP header byte 12 (reserved bits and NS), which the
    /// DOTS `flags-bitmask` covers together with `tcp_flags`.
    pub tcp_flags_hi: u8,
    /// IPv4 TTL / IPv6 hop limit.
    pub ttl: u8,
    /// IPv4 total length / IPv6 payload length, from the header.
    pub ip_len: u16,
    /// The UDP (or UDP-Lite) header's length field, when `has_ports`.
    pub udp_len: u16,
    /// `mitigator_common::acl_frag` bits (df, isf, ff, lf).
    pub frag_bits: u8,
    /// The shortcut's answer for this packet, handed to `decide`: the
    /// epoch it was resolved in (high 32 bits) and the target id, or 0.
    /// Set only by the shortcut, read once and cleared by `decide` in the
    /// same run, so it never outlives its packet.
    pub hint: u64,
    /// The target and generation `decide` found, for the SYN proxy's
    /// program it may tail-call (which reads this scratch on the same CPU).
    pub target: u32,
    pub gen: u32,
}

impl Pkt {
    /// The destination as the destination cache keys it.
    #[inline(always)]
    pub fn dst(&self) -> Dst {
        // SAFETY: `dst` sits at offset 16 of an 8-aligned struct: its four
        // words are 4-aligned and inside it. An IPv4 packet's last three
        // are zero (`clear`). No branch on the family here: values that
        // differ per family (constants on one side) would keep the
        // verifier's IPv4 and IPv6 states apart for the rest of `decide`.
        Dst { v6: self.v6, w: unsafe { *(self.dst.as_ptr() as *const [u32; 4]) } }
    }

    /// Zeroes `self` (which lives in a map, see main.rs) with one 8-byte
    /// store per word. `*self = Pkt::new()` makes LLVM call a byte-wise
    /// memset subprogram: a 56-iteration loop on every packet.
    #[inline(always)]
    pub fn clear(&mut self) {
        const WORDS: usize = size_of::<Pkt>() / 8;
        let w = self as *mut Pkt as *mut u64;
        let mut i = 0;
        while i < WORDS {
            // SAFETY: Pkt is 8-aligned and WORDS * 8 bytes long; all zero
            // is a valid Pkt (false, 0, FRAG_NONE). Volatile keeps LLVM
            // from merging the stores back into a memset call.
            unsafe { core::ptr::write_volatile(w.add(i), 0) };
            i += 1;
        }
    }
}

/// A read position inside the packet: absolute addresses, like `nh->pos`
/// in parsing_helpers.h.
pub struct Cursor {
    pub pos: usize,
    pub end: usize,
}

impl Cursor {
    /// Returns a pointer to a `T` at the cursor and advances past it, or
    /// `None` if the packet is too short.
    #[inline(always)]
    pub fn take<T>(&mut self) -> Option<*const T> {
        let p = self.pos;
        if p + size_of::<T>() > self.end {
            return None;
        }
        self.pos = p + size_of::<T>();
        Some(p as *const T)
    }

    /// Skips `n` bytes (already bounded by the caller). The next `take`
    /// checks them against the end of the packet.
    #[inline(always)]
    pub fn skip(&mut self, n: usize) {
        self.pos += n;
    }
}

#[inline(always)]
fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

/// Ethernet plus up to two VLAN tags (802.1Q / 802.1ad, in either order).
/// Returns the EtherType of the payload.
#[inline(always)]
pub fn parse_eth(c: &mut Cursor) -> Option<u16> {
    let eth = c.take::<EthHdr>()?;
    let mut proto = be16(unsafe { (*eth).proto });
    // Unrolled on purpose: at most two tags, a third is left as the
    // EtherType (unknown, so the packet passes as unparsed).
    if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        let v = c.take::<VlanHdr>()?;
        proto = be16(unsafe { (*v).proto });
        if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
            let v = c.take::<VlanHdr>()?;
            proto = be16(unsafe { (*v).proto });
        }
    }
    Some(proto)
}

/// IPv4 header including options (via IHL). Fills addresses, protocol and
/// fragment state.
#[inline(always)]
pub fn parse_ipv4(c: &mut Cursor, pkt: &mut Pkt, acl: bool) -> Option<()> {
    let ip = c.take::<Ipv4Hdr>()?;
    let ver_ihl = unsafe { (*ip).ver_ihl };
    if ver_ihl >> 4 != 4 {
        return None;
    }
    let ihl = (ver_ihl & 0x0f) as usize;
    if ihl < 5 {
        return None;
    }
    // Options: (ihl - 5) * 4 bytes, at most 40; bounded so the verifier
    // knows the new cursor's range.
    c.skip((ihl - 5) * 4);
    let src = unsafe { (*ip).src };
    let dst = unsafe { (*ip).dst };
    pkt.src[..4].copy_from_slice(&src);
    pkt.dst[..4].copy_from_slice(&dst);
    pkt.proto = unsafe { (*ip).proto };
    let frag = be16(unsafe { (*ip).frag_off });
    pkt.frag = if frag & 0x1fff != 0 {
        FRAG_LATER
    } else if frag & 0x2000 != 0 {
        FRAG_FIRST
    } else {
        FRAG_NONE
    };
    if acl {
        pkt.ttl = unsafe { (*ip).ttl };
        pkt.ip_len = be16(unsafe { (*ip).tot_len });
        pkt.frag_bits = frag_bits(frag & 0x4000 != 0, frag & 0x2000 != 0, frag & 0x1fff, frag & 0x3fff != 0);
    }
    // The options must lie inside the packet even when no L4 header
    // follows (non-first fragment): compare the cursor with the end.
    if c.pos > c.end {
        return None;
    }
    Some(())
}

/// The DOTS fragment-type bits of a packet (`mitigator_common::acl_frag`).
/// `is_frag`: the packet is a fragment at all (IPv4: MF or offset; IPv6: it
/// has a Fragment header, atomic fragments included).
#[inline(always)]
fn frag_bits(df: bool, more: bool, offset: u16, is_frag: bool) -> u8 {
    use mitigator_common::acl_frag as af;
    let mut b = 0;
    if df {
        b |= af::DF;
    }
    if is_frag {
        b |= af::ISF;
    }
    if offset == 0 && more {
        b |= af::FF;
    }
    if offset != 0 && !more {
        b |= af::LF;
    }
    b
}

#[inline(always)]
fn is_ext_hdr(n: u8) -> bool {
    n == IPPROTO_HOPOPTS
        || n == IPPROTO_ROUTING
        || n == IPPROTO_FRAGMENT
        || n == IPPROTO_DSTOPTS
        || n == IPPROTO_AH
}

/// IPv6 header and up to `MAX_IPV6_EXT_HEADERS` extension headers
/// (hop-by-hop, routing, destination options, fragment, AH). More than that
/// is `None` (unparsed). A fragment header with a non-zero offset ends the
/// walk: what follows is payload of the fragmented packet.
#[inline(always)]
pub fn parse_ipv6(c: &mut Cursor, pkt: &mut Pkt, acl: bool) -> Option<()> {
    let ip = c.take::<Ipv6Hdr>()?;
    if unsafe { (*ip).ver_tc_flow[0] } >> 4 != 6 {
        return None;
    }
    pkt.v6 = true;
    if acl {
        pkt.ttl = unsafe { (*ip).hop_limit };
        pkt.ip_len = be16(unsafe { (*ip).payload_len });
    }
    pkt.src = unsafe { (*ip).src };
    pkt.dst = unsafe { (*ip).dst };
    let mut next = unsafe { (*ip).next };
    let mut i = 0;
    // Bounded loop: the verifier walks it at most MAX + 1 times.
    while i < mitigator_common::MAX_IPV6_EXT_HEADERS {
        if !is_ext_hdr(next) {
            break;
        }
        if next == IPPROTO_FRAGMENT {
            let f = c.take::<Ipv6FragHdr>()?;
            let off_m = be16(unsafe { (*f).off_m });
            next = unsafe { (*f).next };
            pkt.frag_bits = frag_bits(false, off_m & 1 != 0, off_m >> 3, true);
            if off_m & 0xfff8 != 0 {
                pkt.frag = FRAG_LATER;
                pkt.proto = next;
                return Some(());
            }
            if off_m & 1 != 0 {
                pkt.frag = FRAG_FIRST;
            }
        } else {
            let h = c.take::<Ipv6ExtHdr>()?;
            let len = unsafe { (*h).len } as usize;
            // Length units: AH counts 4-byte words minus 2, the others
            // 8-byte words not counting the first 8 bytes.
            let total = if next == IPPROTO_AH {
                (len + 2) * 4
            } else {
                (len + 1) * 8
            };
            next = unsafe { (*h).next };
            // Already consumed 2 bytes; total >= 8.
            c.skip(total - 2);
        }
        i += 1;
    }
    if is_ext_hdr(next) {
        // More extension headers than we walk: give up, pass.
        return None;
    }
    if c.pos > c.end {
        return None;
    }
    pkt.proto = next;
    Some(())
}

/// L4 header of the first fragment / an unfragmented packet: ports, TCP
/// flags, ICMP type and code. A protocol we do not look into is fine
/// (`Some`); a known header cut short is `None` (unparsed).
#[inline(always)]
fn l4_header(c: &mut Cursor, pkt: &mut Pkt) -> Option<()> {
    match pkt.proto {
        IPPROTO_TCP => {
            let t = c.take::<TcpHdr>()?;
            // Data offset below 5 words is malformed.
            if unsafe { (*t).doff } >> 4 < 5 {
                return None;
            }
            pkt.sport = be16(unsafe { (*t).sport });
            pkt.dport = be16(unsafe { (*t).dport });
            pkt.tcp_flags = unsafe { (*t).flags };
            pkt.tcp_flags_hi = unsafe { (*t).doff } & 0x0f;
            pkt.has_ports = true;
            pkt.has_tcp = true;
        }
        IPPROTO_UDP | IPPROTO_UDPLITE => {
            let u = c.take::<UdpHdr>()?;
            pkt.sport = be16(unsafe { (*u).sport });
            pkt.dport = be16(unsafe { (*u).dport });
            pkt.udp_len = be16(unsafe { (*u).len });
            pkt.has_ports = true;
        }
        IPPROTO_SCTP => {
            let s = c.take::<SctpHdr>()?;
            pkt.sport = be16(unsafe { (*s).sport });
            pkt.dport = be16(unsafe { (*s).dport });
            pkt.has_ports = true;
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            let i = c.take::<IcmpHdr>()?;
            pkt.icmp_type = unsafe { (*i).ty };
            pkt.icmp_code = unsafe { (*i).code };
            pkt.has_icmp = true;
        }
        _ => {}
    }
    Some(())
}

/// The shortcut's view of a packet: its IP header, family by family, whose
/// destination is read only if the family has targets (`dst`).
pub enum DstAddr {
    V4(*const Ipv4Hdr),
    V6(*const Ipv6Hdr),
}

/// An address's 4-byte word `i` (memory order).
#[inline(always)]
fn word(a: &[u8], i: usize) -> u32 {
    u32::from_ne_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]])
}

impl DstAddr {
    /// IPv4: the address as one word (memory order).
    #[inline(always)]
    pub fn v4(ip: *const Ipv4Hdr) -> u32 {
        // SAFETY: `dst_only` checked the fixed header lies in the packet.
        word(unsafe { &(*ip).dst }, 0)
    }

    /// IPv6: the address's four words (memory order).
    #[inline(always)]
    pub fn v6(ip: *const Ipv6Hdr) -> [u32; 4] {
        // SAFETY: as for `v4`.
        let d = unsafe { &(*ip).dst };
        [word(d, 0), word(d, 4), word(d, 8), word(d, 12)]
    }
}

/// Just the destination: Ethernet, then the fixed IPv4 header (with its
/// options inside the packet) or the fixed IPv6 header. For the shortcut
/// of packets to no target (main.rs); anything else is `parse`'s.
#[inline(always)]
pub fn dst_only(data: usize, data_end: usize) -> Option<DstAddr> {
    let mut c = Cursor { pos: data, end: data_end };
    let ethertype = parse_eth(&mut c)?;
    if ethertype == ETH_P_IP {
        let start = c.pos;
        let ip = c.take::<Ipv4Hdr>()?;
        let ver_ihl = unsafe { (*ip).ver_ihl };
        if ver_ihl >> 4 != 4 || ver_ihl & 0x0f < 5 || start + (ver_ihl & 0x0f) as usize * 4 > data_end {
            return None;
        }
        Some(DstAddr::V4(ip))
    } else if ethertype == ETH_P_IPV6 {
        let ip = c.take::<Ipv6Hdr>()?;
        if unsafe { (*ip).ver_tc_flow[0] } >> 4 != 6 {
            return None;
        }
        Some(DstAddr::V6(ip))
    } else {
        None
    }
}

/// Ethernet and IP (the L4 header is `parse_l4`'s, on demand), with the
/// fields only the ACL reads when `acl`. `None` = pass as unparsed.
#[inline(always)]
pub fn parse(data: usize, data_end: usize, pkt: &mut Pkt, acl: bool) -> Option<()> {
    let mut c = Cursor { pos: data, end: data_end };
    let ethertype = parse_eth(&mut c)?;
    // At most 14 + 2 * 4 bytes.
    pkt.l3_off = (c.pos - data) as u16;
    if ethertype == ETH_P_IP {
        parse_ipv4(&mut c, pkt, acl)?;
    } else if ethertype == ETH_P_IPV6 {
        parse_ipv6(&mut c, pkt, acl)?;
    } else {
        return None;
    }
    // Both IP parsers checked pos <= end, and headers end well before 64 KiB.
    pkt.l4_off = (c.pos - data) as u16;
    Some(())
}

/// The L4 header, once: only for packets a rule looks at (a target's, or
/// any while the data-channel ACL is installed). A non-first fragment has
/// none. A known header cut short or malformed sets `l4_bad` (its fields
/// stay unset): the target's policy drops it (`DropReason::Malformed`).
#[inline(always)]
pub fn parse_l4(data: usize, data_end: usize, pkt: &mut Pkt) {
    if pkt.l4_done || pkt.frag == FRAG_LATER {
        return;
    }
    pkt.l4_done = true;
    // Bounded for the verifier; `parse` never stores more than 0x7fff.
    let mut c = Cursor { pos: data + (pkt.l4_off & 0x7fff) as usize, end: data_end };
    if l4_header(&mut c, pkt).is_none() {
        pkt.l4_bad = true;
        pkt.has_ports = false;
        pkt.has_tcp = false;
        pkt.has_icmp = false;
    }
}
