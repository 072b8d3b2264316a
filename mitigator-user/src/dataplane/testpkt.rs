//! A small packet builder for tests and benchmarks (BPF_PROG_TEST_RUN):
//! Ethernet, up to any number of VLAN tags, IPv4 with options and
//! fragments, IPv6 with extension headers, TCP/UDP/UDP-Lite/SCTP/ICMP/ICMPv6.
//! Checksums are left zero: the XDP program does not verify them.
//!
//! ```
//! use mitigator::dataplane::testpkt::PacketBuilder;
//! let pkt = PacketBuilder::ipv4([192, 0, 2, 1], [198, 51, 100, 7]).vlan(0x8100, 10).tcp(1234, 80, 0x02).build();
//! assert_eq!(pkt.len(), 14 + 4 + 20 + 20);
//! ```

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;
pub const TCP_URG: u8 = 0x20;

/// An IPv6 extension header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ext {
    /// Hop-by-hop options, 8 bytes (PadN).
    HopByHop,
    /// Routing header (type 4 / segment routing shape, no segments), 8 bytes.
    Routing,
    /// Destination options, `8 * (1 + extra)` bytes.
    DestOpts { extra: u8 },
    /// Fragment header: offset in 8-byte units, M flag.
    Fragment { offset: u16, more: bool },
    /// Authentication header (RFC 4302) with a 4-byte ICV: 16 bytes.
    Ah,
}

impl Ext {
    fn proto(self) -> u8 {
        match self {
            Ext::HopByHop => 0,
            Ext::Routing => 43,
            Ext::DestOpts { .. } => 60,
            Ext::Fragment { .. } => 44,
            Ext::Ah => 51,
        }
    }
}

#[derive(Clone, Debug)]
enum Ip {
    V4 { src: [u8; 4], dst: [u8; 4], options: Vec<u8>, frag_offset: u16, more: bool },
    V6 { src: [u8; 16], dst: [u8; 16], ext: Vec<Ext> },
}

#[derive(Clone, Copy, Debug)]
enum L4 {
    Tcp { sport: u16, dport: u16, flags: u8 },
    Udp { proto: u8, sport: u16, dport: u16 },
    Sctp { sport: u16, dport: u16 },
    Icmp { proto: u8, ty: u8, code: u8 },
    Other(u8),
}

/// Builds one Ethernet frame.
#[derive(Clone, Debug)]
pub struct PacketBuilder {
    vlans: Vec<(u16, u16)>,
    ip: Ip,
    l4: L4,
    payload: usize,
    /// IPv4 TTL / IPv6 hop limit.
    ttl: u8,
    /// IPv4 Don't Fragment.
    df: bool,
    /// Low nibble of TCP byte 12 (reserved bits, NS).
    tcp_res: u8,
    /// TCP sequence and acknowledgement numbers (default 1 and 0).
    tcp_seq: u32,
    tcp_ack: u32,
    /// TCP options, a multiple of 4 bytes.
    tcp_opts: Vec<u8>,
}

impl PacketBuilder {
    pub fn ipv4(src: [u8; 4], dst: [u8; 4]) -> Self {
        PacketBuilder {
            vlans: vec![],
            ip: Ip::V4 { src, dst, options: vec![], frag_offset: 0, more: false },
            l4: L4::Other(253),
            payload: 0,
            ttl: 64,
            df: false,
            tcp_res: 0,
            tcp_seq: 1,
            tcp_ack: 0,
            tcp_opts: vec![],
        }
    }

    pub fn ipv6(src: [u8; 16], dst: [u8; 16]) -> Self {
        PacketBuilder {
            vlans: vec![],
            ip: Ip::V6 { src, dst, ext: vec![] },
            l4: L4::Other(253),
            payload: 0,
            ttl: 64,
            df: false,
            tcp_res: 0,
            tcp_seq: 1,
            tcp_ack: 0,
            tcp_opts: vec![],
        }
    }

    /// IPv4 TTL / IPv6 hop limit (default 64).
    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the IPv4 Don't Fragment flag.
    pub fn dont_fragment(mut self) -> Self {
        self.df = true;
        self
    }

    /// The low nibble of TCP header byte 12 (3 reserved bits and NS),
    /// which the DOTS flags-bitmask covers.
    pub fn tcp_reserved(mut self, bits: u8) -> Self {
        self.tcp_res = bits & 0x0f;
        self
    }

    /// TCP sequence and acknowledgement numbers.
    pub fn tcp_seq_ack(mut self, seq: u32, ack: u32) -> Self {
        self.tcp_seq = seq;
        self.tcp_ack = ack;
        self
    }

    /// TCP options (padded with end-of-options to a multiple of 4 bytes);
    /// the data offset grows with them.
    pub fn tcp_options(mut self, opts: &[u8]) -> Self {
        self.tcp_opts = opts.to_vec();
        self.tcp_opts.resize(opts.len().div_ceil(4) * 4, 0);
        self
    }

    /// Adds a VLAN tag (TPID 0x8100 or 0x88A8), outermost first.
    pub fn vlan(mut self, tpid: u16, vid: u16) -> Self {
        self.vlans.push((tpid, vid));
        self
    }

    /// IPv4 options (padded with End-of-options to a multiple of 4, at most 40).
    pub fn ipv4_options(mut self, opts: &[u8]) -> Self {
        if let Ip::V4 { options, .. } = &mut self.ip {
            *options = opts.to_vec();
            while options.len() % 4 != 0 {
                options.push(0);
            }
            assert!(options.len() <= 40);
        }
        self
    }

    /// Marks the packet as a fragment: IPv4 header fields, or an IPv6
    /// fragment header appended to the extension headers. A non-zero offset
    /// (8-byte units) means no L4 header is emitted.
    pub fn fragment(mut self, offset: u16, more: bool) -> Self {
        match &mut self.ip {
            Ip::V4 { frag_offset, more: m, .. } => {
                *frag_offset = offset;
                *m = more;
            }
            Ip::V6 { ext, .. } => ext.push(Ext::Fragment { offset, more }),
        }
        self
    }

    /// Appends an IPv6 extension header.
    pub fn ext(mut self, e: Ext) -> Self {
        if let Ip::V6 { ext, .. } = &mut self.ip {
            ext.push(e);
        }
        self
    }

    pub fn tcp(mut self, sport: u16, dport: u16, flags: u8) -> Self {
        self.l4 = L4::Tcp { sport, dport, flags };
        self
    }

    pub fn udp(mut self, sport: u16, dport: u16) -> Self {
        self.l4 = L4::Udp { proto: 17, sport, dport };
        self
    }

    pub fn udplite(mut self, sport: u16, dport: u16) -> Self {
        self.l4 = L4::Udp { proto: 136, sport, dport };
        self
    }

    pub fn sctp(mut self, sport: u16, dport: u16) -> Self {
        self.l4 = L4::Sctp { sport, dport };
        self
    }

    /// ICMP for IPv4, ICMPv6 for IPv6.
    pub fn icmp(mut self, ty: u8, code: u8) -> Self {
        let proto = if matches!(self.ip, Ip::V4 { .. }) { 1 } else { 58 };
        self.l4 = L4::Icmp { proto, ty, code };
        self
    }

    /// Another IP protocol, with no header of its own.
    pub fn proto(mut self, p: u8) -> Self {
        self.l4 = L4::Other(p);
        self
    }

    /// Payload bytes after the L4 header.
    pub fn payload(mut self, n: usize) -> Self {
        self.payload = n;
        self
    }

    fn l4_proto(&self) -> u8 {
        match self.l4 {
            L4::Tcp { .. } => 6,
            L4::Udp { proto, .. } => proto,
            L4::Sctp { .. } => 132,
            L4::Icmp { proto, .. } => proto,
            L4::Other(p) => p,
        }
    }

    /// Whether the L4 header is in this packet (not a non-first fragment).
    fn has_l4(&self) -> bool {
        match &self.ip {
            Ip::V4 { frag_offset, .. } => *frag_offset == 0,
            Ip::V6 { ext, .. } => !ext.iter().any(|e| matches!(e, Ext::Fragment { offset, .. } if *offset != 0)),
        }
    }

    fn l4_bytes(&self) -> Vec<u8> {
        if !self.has_l4() {
            return vec![];
        }
        let mut b = vec![];
        match self.l4 {
            L4::Tcp { sport, dport, flags } => {
                b.extend(sport.to_be_bytes());
                b.extend(dport.to_be_bytes());
                b.extend(self.tcp_seq.to_be_bytes());
                b.extend(self.tcp_ack.to_be_bytes());
                b.push(((5 + self.tcp_opts.len() / 4) << 4) as u8 | self.tcp_res);
                b.push(flags);
                b.extend([0xff, 0xff, 0, 0, 0, 0]);
                b.extend(&self.tcp_opts);
            }
            L4::Udp { sport, dport, .. } => {
                b.extend(sport.to_be_bytes());
                b.extend(dport.to_be_bytes());
                b.extend(((8 + self.payload) as u16).to_be_bytes());
                b.extend([0, 0]);
            }
            L4::Sctp { sport, dport } => {
                b.extend(sport.to_be_bytes());
                b.extend(dport.to_be_bytes());
                b.extend([0; 8]);
            }
            L4::Icmp { ty, code, .. } => b.extend([ty, code, 0, 0, 0, 0, 0, 0]),
            L4::Other(_) => {}
        }
        b
    }

    /// The frame, and the offsets where each header ends (Ethernet, each
    /// VLAN tag, IP header, each extension header, L4 header), so tests can
    /// cut the packet at every boundary.
    pub fn build_with_boundaries(&self) -> (Vec<u8>, Vec<usize>) {
        let mut b = vec![];
        let mut ends = vec![];
        b.extend([0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]);
        let ethertype: u16 = match self.ip {
            Ip::V4 { .. } => 0x0800,
            Ip::V6 { .. } => 0x86DD,
        };
        // Each TPID is written where the previous EtherType goes: the
        // Ethernet header ends at 14, each tag 4 bytes later.
        for (tpid, vid) in &self.vlans {
            b.extend(tpid.to_be_bytes());
            b.extend((vid & 0x0fff).to_be_bytes());
        }
        b.extend(ethertype.to_be_bytes());
        for i in 0..=self.vlans.len() {
            ends.push(14 + 4 * i);
        }
        let l4 = self.l4_bytes();
        let proto = self.l4_proto();
        let payload = vec![0xabu8; self.payload];
        match &self.ip {
            Ip::V4 { src, dst, options, frag_offset, more } => {
                let ihl = 5 + options.len() / 4;
                let tot = ihl * 4 + l4.len() + payload.len();
                b.push(0x40 | ihl as u8);
                b.push(0);
                b.extend((tot as u16).to_be_bytes());
                b.extend([0x12, 0x34]);
                let frag = (frag_offset & 0x1fff) | if *more { 0x2000 } else { 0 } | if self.df { 0x4000 } else { 0 };
                b.extend(frag.to_be_bytes());
                b.push(self.ttl);
                b.push(proto);
                b.extend([0, 0]);
                b.extend(src);
                b.extend(dst);
                b.extend(options);
                ends.push(b.len());
            }
            Ip::V6 { src, dst, ext } => {
                let mut exts = vec![];
                for (i, e) in ext.iter().enumerate() {
                    let next = ext.get(i + 1).map(|n| n.proto()).unwrap_or(proto);
                    let h: Vec<u8> = match e {
                        Ext::HopByHop | Ext::Routing => {
                            let mut h = vec![next, 0];
                            if *e == Ext::Routing {
                                h.extend([4, 0, 0, 0, 0, 0]);
                            } else {
                                h.extend([1, 4, 0, 0, 0, 0]); // PadN
                            }
                            h
                        }
                        Ext::DestOpts { extra } => {
                            let mut h = vec![next, *extra, 1, 4, 0, 0, 0, 0];
                            h.extend(vec![0; 8 * *extra as usize]);
                            h
                        }
                        Ext::Fragment { offset, more } => {
                            let om = (offset << 3) | u16::from(*more);
                            let mut h = vec![next, 0];
                            h.extend(om.to_be_bytes());
                            h.extend([0, 0, 0x56, 0x78]);
                            h
                        }
                        // Payload length 2 = (16 / 4) - 2.
                        Ext::Ah => vec![next, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0],
                    };
                    exts.push(h);
                }
                let plen: usize = exts.iter().map(|h| h.len()).sum::<usize>() + l4.len() + payload.len();
                b.extend([0x60, 0, 0, 0]);
                b.extend((plen as u16).to_be_bytes());
                b.push(ext.first().map(|e| e.proto()).unwrap_or(proto));
                b.push(self.ttl);
                b.extend(src);
                b.extend(dst);
                ends.push(b.len());
                for h in exts {
                    b.extend(h);
                    ends.push(b.len());
                }
            }
        }
        if !l4.is_empty() {
            b.extend(&l4);
            ends.push(b.len());
        }
        b.extend(payload);
        (b, ends)
    }

    pub fn build(&self) -> Vec<u8> {
        self.build_with_boundaries().0
    }

    /// Length of the headers the program must be able to read (everything
    /// up to and including the L4 header when it is present).
    pub fn headers_len(&self) -> usize {
        *self.build_with_boundaries().1.last().unwrap()
    }
}
