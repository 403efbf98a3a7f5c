//! Test-side packets: builders for the frames the tests feed to the data plane, builders
//! for the frames they expect back, and a checksum verifier.
//!
//! Everything here is written independently of the data plane's own encoder: headers are
//! serialised with etherparse, and [`verify_checksums`] recomputes every checksum with its
//! own one's-complement sum (so a checksum bug would have to be made twice, in two
//! different code bases, to go unnoticed).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    Icmpv4Header, Icmpv4Type, Icmpv6Header, Icmpv6Type, IpDscp, IpEcn, IpFragOffset, IpNumber,
    Ipv4Header, Ipv4Options, Ipv6FlowLabel, Ipv6Header, TcpHeader, UdpHeader,
};

/// An Ethernet MAC address.
pub type Mac = [u8; 6];

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
pub const ETH_P_LLDP: u16 = 0x88cc;

pub const IPPROTO_HOPOPTS: u8 = 0;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_IPIP: u8 = 4;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_IPV6: u8 = 41;
pub const IPPROTO_ROUTING: u8 = 43;
pub const IPPROTO_FRAGMENT: u8 = 44;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_DSTOPTS: u8 = 60;

/// ECN codepoints (the two low bits of the TOS / traffic class byte).
pub const NOT_ECT: u8 = 0b00;
pub const ECT1: u8 = 0b01;
pub const ECT0: u8 = 0b10;
pub const CE: u8 = 0b11;

/// An Ethernet II frame.
pub fn ethernet(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An 802.1Q / 802.1ad tagged frame carrying `payload` of `inner_ethertype`.
pub fn ethernet_vlan(
    dst: Mac,
    src: Mac,
    tpid: u16,
    vid: u16,
    inner_ethertype: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut tagged = Vec::with_capacity(4 + payload.len());
    tagged.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    tagged.extend_from_slice(&inner_ethertype.to_be_bytes());
    tagged.extend_from_slice(payload);
    ethernet(dst, src, tpid, &tagged)
}

/// An ARP request (Ethernet / IPv4) who-has `target` from `sender`.
pub fn arp_request(src_mac: Mac, sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend_from_slice(&src_mac);
    arp.extend_from_slice(&sender.octets());
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&target.octets());
    ethernet([0xff; 6], src_mac, ETH_P_ARP, &arp)
}

/// Deterministic payload bytes (so a wrong offset shows up as a byte mismatch).
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// What an inner packet carries above IP. `len` is the transport payload length (after
/// the UDP / TCP / ICMP header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum L4 {
    Udp {
        sport: u16,
        dport: u16,
        len: usize,
    },
    Tcp {
        sport: u16,
        dport: u16,
        len: usize,
    },
    /// An ICMP (for IPv4) or ICMPv6 (for IPv6) message with a zero "rest of header".
    Icmp {
        icmp_type: u8,
        code: u8,
        len: usize,
    },
    /// Any protocol number, opaque payload, no checksum.
    Raw {
        proto: u8,
        len: usize,
    },
}

impl L4 {
    fn proto(&self, v6: bool) -> u8 {
        match self {
            L4::Udp { .. } => IPPROTO_UDP,
            L4::Tcp { .. } => IPPROTO_TCP,
            L4::Icmp { .. } if v6 => IPPROTO_ICMPV6,
            L4::Icmp { .. } => IPPROTO_ICMP,
            L4::Raw { proto, .. } => *proto,
        }
    }

    /// `sport << 16 | dport` for TCP and UDP, else 0.
    pub fn ports(&self) -> u32 {
        match self {
            L4::Udp { sport, dport, .. } | L4::Tcp { sport, dport, .. } => {
                ((*sport as u32) << 16) | *dport as u32
            }
            _ => 0,
        }
    }

    /// Serialises the transport header and payload, with the checksum for `src`/`dst`.
    fn bytes(&self, src: IpAddr, dst: IpAddr) -> Vec<u8> {
        let v6 = src.is_ipv6();
        let mut out = Vec::new();
        match self {
            L4::Udp { sport, dport, len } => {
                let payload = pattern(*len, 0x11);
                let udp = match (src, dst) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => {
                        let ip = Ipv4Header::new(
                            (8 + len) as u16,
                            64,
                            IpNumber::UDP,
                            s.octets(),
                            d.octets(),
                        )
                        .expect("udp length");
                        UdpHeader::with_ipv4_checksum(*sport, *dport, &ip, &payload)
                    }
                    (IpAddr::V6(s), IpAddr::V6(d)) => {
                        let ip = ipv6_header(s, d, IPPROTO_UDP, 64, 0, 0, 8 + len);
                        UdpHeader::with_ipv6_checksum(*sport, *dport, &ip, &payload)
                    }
                    _ => unreachable!("mixed families"),
                }
                .expect("udp header");
                out.extend_from_slice(&udp.to_bytes());
                out.extend_from_slice(&payload);
            }
            L4::Tcp { sport, dport, len } => {
                let payload = pattern(*len, 0x22);
                let mut tcp = TcpHeader::new(*sport, *dport, 0x0102_0304, 64240);
                tcp.ack = true;
                tcp.psh = true;
                tcp.acknowledgment_number = 0x0a0b_0c0d;
                tcp.checksum = match (src, dst) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => {
                        tcp.calc_checksum_ipv4_raw(s.octets(), d.octets(), &payload)
                    }
                    (IpAddr::V6(s), IpAddr::V6(d)) => {
                        tcp.calc_checksum_ipv6_raw(s.octets(), d.octets(), &payload)
                    }
                    _ => unreachable!("mixed families"),
                }
                .expect("tcp checksum");
                out.extend_from_slice(&tcp.to_bytes());
                out.extend_from_slice(&payload);
            }
            L4::Icmp {
                icmp_type,
                code,
                len,
            } => {
                let payload = pattern(*len, 0x33);
                let rest = [0x12, 0x34, 0x00, 0x01];
                if v6 {
                    let (IpAddr::V6(s), IpAddr::V6(d)) = (src, dst) else {
                        unreachable!()
                    };
                    let t = Icmpv6Type::Unknown {
                        type_u8: *icmp_type,
                        code_u8: *code,
                        bytes5to8: rest,
                    };
                    let h = Icmpv6Header::with_checksum(t, s.octets(), d.octets(), &payload)
                        .expect("icmpv6");
                    out.extend_from_slice(&h.to_bytes());
                } else {
                    let t = Icmpv4Type::Unknown {
                        type_u8: *icmp_type,
                        code_u8: *code,
                        bytes5to8: rest,
                    };
                    out.extend_from_slice(&Icmpv4Header::with_checksum(t, &payload).to_bytes());
                }
                out.extend_from_slice(&payload);
            }
            L4::Raw { len, .. } => out.extend_from_slice(&pattern(*len, 0x44)),
        }
        out
    }
}

/// An IPv4 packet to build. `tos` is the whole DSCP+ECN byte; `frag_offset` is in
/// 8-byte units.
#[derive(Clone, Debug)]
pub struct Ip4 {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub tos: u8,
    pub id: u16,
    pub df: bool,
    pub mf: bool,
    pub frag_offset: u16,
    pub ttl: u8,
    pub options: Vec<u8>,
    pub l4: L4,
}

impl Ip4 {
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, l4: L4) -> Self {
        Self {
            src,
            dst,
            tos: 0,
            id: 0x4d2e,
            df: true,
            mf: false,
            frag_offset: 0,
            ttl: 64,
            options: Vec::new(),
            l4,
        }
    }

    /// Serialised packet with valid header and transport checksums.
    pub fn bytes(&self) -> Vec<u8> {
        let l4 = self.l4.bytes(IpAddr::V4(self.src), IpAddr::V4(self.dst));
        let mut h = Ipv4Header {
            dscp: IpDscp::try_new(self.tos >> 2).unwrap(),
            ecn: IpEcn::try_new(self.tos & 3).unwrap(),
            total_len: 0,
            identification: self.id,
            dont_fragment: self.df,
            more_fragments: self.mf,
            fragment_offset: IpFragOffset::try_new(self.frag_offset).expect("offset"),
            time_to_live: self.ttl,
            protocol: IpNumber(self.l4.proto(false)),
            header_checksum: 0,
            source: self.src.octets(),
            destination: self.dst.octets(),
            options: Ipv4Options::try_from(&self.options[..])
                .expect("options: multiple of 4, <= 40"),
        };
        h.total_len = (h.header_len() + l4.len()) as u16;
        h.header_checksum = h.calc_header_checksum();
        let mut out = h.to_bytes().to_vec();
        out.extend_from_slice(&l4);
        out
    }

    pub fn total_len(&self) -> usize {
        self.bytes().len()
    }
}

/// An IPv6 extension header to put between the IPv6 header and the transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ext {
    /// Hop-by-hop options (8 bytes, one PadN option).
    HopByHop,
    /// Destination options (8 bytes, one PadN option).
    DestOpts,
    /// Routing header of an unassigned type (253, RFC 4727 experimental) and 8 bytes.
    Routing { segments_left: u8 },
    /// Fragment header.
    Fragment { offset: u16, more: bool, id: u32 },
}

impl Ext {
    pub fn code(&self) -> u8 {
        match self {
            Ext::HopByHop => IPPROTO_HOPOPTS,
            Ext::DestOpts => IPPROTO_DSTOPTS,
            Ext::Routing { .. } => IPPROTO_ROUTING,
            Ext::Fragment { .. } => IPPROTO_FRAGMENT,
        }
    }

    fn bytes(&self, next: u8) -> [u8; 8] {
        match self {
            // PadN with 4 bytes of padding fills the 8-byte header.
            Ext::HopByHop | Ext::DestOpts => [next, 0, 1, 4, 0, 0, 0, 0],
            Ext::Routing { segments_left } => [next, 0, 253, *segments_left, 0, 0, 0, 0],
            Ext::Fragment { offset, more, id } => {
                let off = (offset << 3) | (*more as u16);
                let o = off.to_be_bytes();
                let i = id.to_be_bytes();
                [next, 0, o[0], o[1], i[0], i[1], i[2], i[3]]
            }
        }
    }
}

/// An IPv6 packet to build.
#[derive(Clone, Debug)]
pub struct Ip6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub tc: u8,
    pub flow_label: u32,
    pub hop_limit: u8,
    pub ext: Vec<Ext>,
    pub l4: L4,
}

impl Ip6 {
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr, l4: L4) -> Self {
        Self {
            src,
            dst,
            tc: 0,
            flow_label: 0x1_2345,
            hop_limit: 64,
            ext: Vec::new(),
            l4,
        }
    }

    /// Next header field of the IPv6 header itself.
    pub fn first_next_header(&self) -> u8 {
        self.ext
            .first()
            .map(Ext::code)
            .unwrap_or_else(|| self.l4.proto(true))
    }

    pub fn bytes(&self) -> Vec<u8> {
        let l4 = self.l4.bytes(IpAddr::V6(self.src), IpAddr::V6(self.dst));
        let mut exts = Vec::new();
        for (i, e) in self.ext.iter().enumerate() {
            let next = self
                .ext
                .get(i + 1)
                .map(Ext::code)
                .unwrap_or_else(|| self.l4.proto(true));
            exts.extend_from_slice(&e.bytes(next));
        }
        let h = ipv6_header(
            self.src,
            self.dst,
            self.first_next_header(),
            self.hop_limit,
            self.tc,
            self.flow_label,
            exts.len() + l4.len(),
        );
        let mut out = h.to_bytes().to_vec();
        out.extend_from_slice(&exts);
        out.extend_from_slice(&l4);
        out
    }
}

fn ipv6_header(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next_header: u8,
    hop_limit: u8,
    tc: u8,
    flow_label: u32,
    payload_len: usize,
) -> Ipv6Header {
    Ipv6Header {
        traffic_class: tc,
        flow_label: Ipv6FlowLabel::try_new(flow_label).expect("20-bit flow label"),
        payload_length: u16::try_from(payload_len).expect("payload length"),
        next_header: IpNumber(next_header),
        hop_limit,
        source: src.octets(),
        destination: dst.octets(),
    }
}

/// An inner packet of either family.
#[derive(Clone, Debug)]
pub enum Ip {
    V4(Ip4),
    V6(Ip6),
}

impl Ip {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Ip::V4(p) => p.bytes(),
            Ip::V6(p) => p.bytes(),
        }
    }
    pub fn is_v6(&self) -> bool {
        matches!(self, Ip::V6(_))
    }
    pub fn ethertype(&self) -> u16 {
        if self.is_v6() { ETH_P_IPV6 } else { ETH_P_IP }
    }
    /// Protocol number of this packet inside an IP-in-IP tunnel (4 or 41).
    pub fn tunnel_proto(&self) -> u8 {
        if self.is_v6() {
            IPPROTO_IPV6
        } else {
            IPPROTO_IPIP
        }
    }
    pub fn src(&self) -> IpAddr {
        match self {
            Ip::V4(p) => p.src.into(),
            Ip::V6(p) => p.src.into(),
        }
    }
    pub fn dst(&self) -> IpAddr {
        match self {
            Ip::V4(p) => p.dst.into(),
            Ip::V6(p) => p.dst.into(),
        }
    }
    /// TOS / traffic class byte.
    pub fn tos(&self) -> u8 {
        match self {
            Ip::V4(p) => p.tos,
            Ip::V6(p) => p.tc,
        }
    }
    pub fn ttl(&self) -> u8 {
        match self {
            Ip::V4(p) => p.ttl,
            Ip::V6(p) => p.hop_limit,
        }
    }
    /// The same packet with another TTL / hop limit.
    pub fn with_ttl(&self, ttl: u8) -> Self {
        let mut p = self.clone();
        match &mut p {
            Ip::V4(p) => p.ttl = ttl,
            Ip::V6(p) => p.hop_limit = ttl,
        }
        p
    }
    /// The same packet with another TOS / traffic class byte.
    pub fn with_tos(&self, tos: u8) -> Self {
        let mut p = self.clone();
        match &mut p {
            Ip::V4(p) => p.tos = tos,
            Ip::V6(p) => p.tc = tos,
        }
        p
    }
}

/// The fields of an outer IPv4 header the tests choose.
#[derive(Clone, Debug)]
pub struct Outer4 {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub tos: u8,
    pub id: u16,
    pub df: bool,
    pub mf: bool,
    pub frag_offset: u16,
    pub ttl: u8,
    pub protocol: u8,
    pub options: Vec<u8>,
}

impl Outer4 {
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8) -> Self {
        Self {
            src,
            dst,
            tos: 0,
            id: 0,
            df: true,
            mf: false,
            frag_offset: 0,
            ttl: 64,
            protocol,
            options: Vec::new(),
        }
    }

    /// The outer header followed by `payload`, with a valid header checksum.
    pub fn wrap(&self, payload: &[u8]) -> Vec<u8> {
        let mut h = Ipv4Header {
            dscp: IpDscp::try_new(self.tos >> 2).unwrap(),
            ecn: IpEcn::try_new(self.tos & 3).unwrap(),
            total_len: 0,
            identification: self.id,
            dont_fragment: self.df,
            more_fragments: self.mf,
            fragment_offset: IpFragOffset::try_new(self.frag_offset).expect("offset"),
            time_to_live: self.ttl,
            protocol: IpNumber(self.protocol),
            header_checksum: 0,
            source: self.src.octets(),
            destination: self.dst.octets(),
            options: Ipv4Options::try_from(&self.options[..]).expect("options"),
        };
        h.total_len = u16::try_from(h.header_len() + payload.len()).expect("total length");
        h.header_checksum = h.calc_header_checksum();
        let mut out = h.to_bytes().to_vec();
        out.extend_from_slice(payload);
        out
    }
}

/// The fields of an outer IPv6 header (plus extension headers) the tests choose.
#[derive(Clone, Debug)]
pub struct Outer6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub tc: u8,
    pub flow_label: u32,
    pub hop_limit: u8,
    /// The upper-layer protocol after the extension headers (4 or 41 for tunnels).
    pub next_header: u8,
    pub ext: Vec<Ext>,
}

impl Outer6 {
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8) -> Self {
        Self {
            src,
            dst,
            tc: 0,
            flow_label: 0,
            hop_limit: 64,
            next_header,
            ext: Vec::new(),
        }
    }

    pub fn wrap(&self, payload: &[u8]) -> Vec<u8> {
        let mut exts = Vec::new();
        for (i, e) in self.ext.iter().enumerate() {
            let next = self
                .ext
                .get(i + 1)
                .map(Ext::code)
                .unwrap_or(self.next_header);
            exts.extend_from_slice(&e.bytes(next));
        }
        let first = self.ext.first().map(Ext::code).unwrap_or(self.next_header);
        let h = ipv6_header(
            self.src,
            self.dst,
            first,
            self.hop_limit,
            self.tc,
            self.flow_label,
            exts.len() + payload.len(),
        );
        let mut out = h.to_bytes().to_vec();
        out.extend_from_slice(&exts);
        out.extend_from_slice(payload);
        out
    }
}

/// An ICMPv4 error as the data plane must build it (brief, "ICMP errors"): TOS 0xc0, ID 0,
/// no DF, TTL 64, then type, code, the 4-byte `rest` (unused / next-hop MTU) and the
/// quoted packet.
pub fn icmpv4_error(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    icmp_type: u8,
    code: u8,
    rest: [u8; 4],
    quoted: &[u8],
) -> Vec<u8> {
    let t = match (icmp_type, code) {
        (11, 0) => {
            Icmpv4Type::TimeExceeded(etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit)
        }
        (3, 4) if rest[..2] == [0, 0] => Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                next_hop_mtu: u16::from_be_bytes([rest[2], rest[3]]),
            },
        ),
        _ => Icmpv4Type::Unknown {
            type_u8: icmp_type,
            code_u8: code,
            bytes5to8: rest,
        },
    };
    let icmp = Icmpv4Header::with_checksum(t, quoted);
    let mut body = icmp.to_bytes().to_vec();
    body.extend_from_slice(quoted);
    let mut outer = Outer4::new(src, dst, IPPROTO_ICMP);
    outer.tos = 0xc0;
    outer.id = 0;
    outer.df = false;
    outer.ttl = 64;
    outer.wrap(&body)
}

/// An ICMPv6 error as the data plane must build it: traffic class 0, flow label 0, hop
/// limit 64, next header 58.
pub fn icmpv6_error(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    icmp_type: u8,
    code: u8,
    rest: [u8; 4],
    quoted: &[u8],
) -> Vec<u8> {
    let t = match (icmp_type, code) {
        (2, 0) => Icmpv6Type::PacketTooBig {
            mtu: u32::from_be_bytes(rest),
        },
        (3, 0) if rest == [0; 4] => {
            Icmpv6Type::TimeExceeded(etherparse::icmpv6::TimeExceededCode::HopLimitExceeded)
        }
        _ => Icmpv6Type::Unknown {
            type_u8: icmp_type,
            code_u8: code,
            bytes5to8: rest,
        },
    };
    let icmp = Icmpv6Header::with_checksum(t, src.octets(), dst.octets(), quoted).expect("icmpv6");
    let mut body = icmp.to_bytes().to_vec();
    body.extend_from_slice(quoted);
    let mut outer = Outer6::new(src, dst, IPPROTO_ICMPV6);
    outer.hop_limit = 64;
    outer.wrap(&body)
}

// ---------------------------------------------------------------------------------------
// Checksum verification (own implementation, deliberately not etherparse's).

/// One's-complement sum of 16-bit big-endian words (odd trailing byte padded with zero),
/// not yet folded or inverted.
fn sum16(data: &[u8]) -> u64 {
    let mut s = 0u64;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        s += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [last] = chunks.remainder() {
        s += (*last as u64) << 8;
    }
    s
}

fn fold(mut s: u64) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// True when the one's-complement sum over `parts` is 0xffff (a valid checksum inside).
fn sums_to_ffff(parts: &[&[u8]]) -> bool {
    fold(parts.iter().map(|p| sum16(p)).sum()) == 0xffff
}

/// The RFC 1071 checksum of `data` (what belongs in a zeroed checksum field).
pub fn internet_checksum(data: &[u8]) -> u16 {
    !fold(sum16(data))
}

/// Walks an Ethernet frame and verifies every checksum it can: IPv4 header checksums at
/// every level of IP-in-IP nesting, and UDP / TCP / ICMP / ICMPv6 checksums of the
/// innermost transport (skipped for non-first fragments and for packets truncated
/// inside an ICMP error quote). Returns a list of what was checked, or what failed.
pub fn verify_checksums(frame: &[u8]) -> Result<Vec<String>, String> {
    if frame.len() < 14 {
        return Err(format!(
            "frame of {} bytes has no Ethernet header",
            frame.len()
        ));
    }
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let mut checked = Vec::new();
    match ethertype {
        ETH_P_IP => verify_ip(&frame[14..], false, 0, &mut checked)?,
        ETH_P_IPV6 => verify_ip(&frame[14..], true, 0, &mut checked)?,
        _ => {}
    }
    Ok(checked)
}

fn verify_ip(pkt: &[u8], v6: bool, depth: usize, checked: &mut Vec<String>) -> Result<(), String> {
    let at = format!("level {depth}");
    if !v6 {
        if pkt.len() < 20 || pkt[0] >> 4 != 4 {
            return Err(format!("{at}: not an IPv4 header"));
        }
        let ihl = (pkt[0] & 0x0f) as usize * 4;
        let tot = u16::from_be_bytes([pkt[2], pkt[3]]) as usize;
        if ihl < 20 || pkt.len() < ihl || tot < ihl || tot > pkt.len() {
            return Err(format!(
                "{at}: bad IPv4 lengths ihl {ihl} total {tot} have {}",
                pkt.len()
            ));
        }
        if !sums_to_ffff(&[&pkt[..ihl]]) {
            return Err(format!(
                "{at}: IPv4 header checksum {:#06x} wrong (expected {:#06x})",
                u16::from_be_bytes([pkt[10], pkt[11]]),
                {
                    let mut h = pkt[..ihl].to_vec();
                    h[10] = 0;
                    h[11] = 0;
                    internet_checksum(&h)
                }
            ));
        }
        checked.push(format!("{at}: ipv4 header"));
        let frag = u16::from_be_bytes([pkt[6], pkt[7]]);
        let (more, offset) = (frag & 0x2000 != 0, frag & 0x1fff);
        if offset != 0 {
            return Ok(());
        }
        let proto = pkt[9];
        let payload = &pkt[ihl..tot];
        if more && !matches!(proto, IPPROTO_IPIP | IPPROTO_IPV6) {
            return Ok(()); // the transport checksum covers the whole datagram
        }
        let pseudo = |len: usize| -> Vec<u8> {
            let mut p = Vec::with_capacity(12);
            p.extend_from_slice(&pkt[12..20]);
            p.extend_from_slice(&[0, proto]);
            p.extend_from_slice(&(len as u16).to_be_bytes());
            p
        };
        verify_transport(proto, payload, &pseudo, false, depth, checked)
    } else {
        if pkt.len() < 40 || pkt[0] >> 4 != 6 {
            return Err(format!("{at}: not an IPv6 header"));
        }
        let plen = u16::from_be_bytes([pkt[4], pkt[5]]) as usize;
        if 40 + plen > pkt.len() {
            return Err(format!(
                "{at}: IPv6 payload length {plen} beyond {} bytes",
                pkt.len()
            ));
        }
        let end = 40 + plen;
        let mut next = pkt[6];
        let mut off = 40;
        loop {
            match next {
                IPPROTO_HOPOPTS | IPPROTO_DSTOPTS | IPPROTO_ROUTING => {
                    if off + 8 > end {
                        return Err(format!("{at}: truncated extension header"));
                    }
                    let len = (pkt[off + 1] as usize + 1) * 8;
                    next = pkt[off];
                    off += len;
                }
                IPPROTO_FRAGMENT => {
                    if off + 8 > end {
                        return Err(format!("{at}: truncated fragment header"));
                    }
                    let fo = u16::from_be_bytes([pkt[off + 2], pkt[off + 3]]);
                    if fo != 0 {
                        // Fragments: transport checksum covers the reassembled datagram.
                        return Ok(());
                    }
                    next = pkt[off];
                    off += 8;
                }
                _ => break,
            }
        }
        if off > end {
            return Err(format!("{at}: extension headers beyond the packet"));
        }
        let payload = &pkt[off..end];
        let pseudo = |len: usize| -> Vec<u8> {
            let mut p = Vec::with_capacity(40);
            p.extend_from_slice(&pkt[8..40]);
            p.extend_from_slice(&(len as u32).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, next]);
            p
        };
        verify_transport(next, payload, &pseudo, true, depth, checked)
    }
}

fn verify_transport(
    proto: u8,
    payload: &[u8],
    pseudo: &dyn Fn(usize) -> Vec<u8>,
    v6: bool,
    depth: usize,
    checked: &mut Vec<String>,
) -> Result<(), String> {
    let at = format!("level {depth}");
    match proto {
        IPPROTO_IPIP => verify_ip(payload, false, depth + 1, checked),
        IPPROTO_IPV6 => verify_ip(payload, true, depth + 1, checked),
        IPPROTO_UDP => {
            if payload.len() < 8 {
                return Err(format!("{at}: truncated UDP"));
            }
            let ulen = u16::from_be_bytes([payload[4], payload[5]]) as usize;
            if ulen != payload.len() {
                return Err(format!(
                    "{at}: UDP length {ulen} != IP payload {}",
                    payload.len()
                ));
            }
            let ck = u16::from_be_bytes([payload[6], payload[7]]);
            if ck == 0 && !v6 {
                checked.push(format!("{at}: udp (no checksum)"));
                return Ok(());
            }
            if !sums_to_ffff(&[&pseudo(payload.len()), payload]) {
                return Err(format!("{at}: UDP checksum {ck:#06x} wrong"));
            }
            checked.push(format!("{at}: udp"));
            Ok(())
        }
        IPPROTO_TCP => {
            if payload.len() < 20 {
                return Err(format!("{at}: truncated TCP"));
            }
            if !sums_to_ffff(&[&pseudo(payload.len()), payload]) {
                return Err(format!("{at}: TCP checksum wrong"));
            }
            checked.push(format!("{at}: tcp"));
            Ok(())
        }
        IPPROTO_ICMP if !v6 => {
            if payload.len() < 8 {
                return Err(format!("{at}: truncated ICMP"));
            }
            if !sums_to_ffff(&[payload]) {
                return Err(format!("{at}: ICMP checksum wrong"));
            }
            checked.push(format!("{at}: icmp"));
            Ok(())
        }
        IPPROTO_ICMPV6 if v6 => {
            if payload.len() < 8 {
                return Err(format!("{at}: truncated ICMPv6"));
            }
            if !sums_to_ffff(&[&pseudo(payload.len()), payload]) {
                return Err(format!("{at}: ICMPv6 checksum wrong"));
            }
            checked.push(format!("{at}: icmpv6"));
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Hex dump with offsets, 16 bytes a line, marking bytes that differ from `other`.
pub fn hexdump_diff(data: &[u8], other: &[u8]) -> String {
    let mut s = String::new();
    for (line, chunk) in data.chunks(16).enumerate() {
        s.push_str(&format!("  {:04x}:", line * 16));
        for (i, b) in chunk.iter().enumerate() {
            let idx = line * 16 + i;
            let mark = if other.get(idx) != Some(b) { '*' } else { ' ' };
            s.push_str(&format!(" {b:02x}{mark}"));
        }
        s.push('\n');
    }
    s
}

/// Compares two frames, ignoring the byte ranges in `ignore`; on a mismatch returns a
/// message with the first differing offset and annotated dumps of both.
pub fn compare_frames(
    got: &[u8],
    expected: &[u8],
    ignore: &[std::ops::Range<usize>],
) -> Result<(), String> {
    let ignored = |i: usize| ignore.iter().any(|r| r.contains(&i));
    let first =
        (0..got.len().max(expected.len())).find(|&i| !ignored(i) && got.get(i) != expected.get(i));
    match first {
        None => Ok(()),
        Some(i) => Err(format!(
            "frames differ at byte {i} (got {} bytes, expected {}{})\n got:\n{}expected:\n{}",
            got.len(),
            expected.len(),
            if ignore.is_empty() {
                String::new()
            } else {
                format!(", ignoring {ignore:?}")
            },
            hexdump_diff(got, expected),
            hexdump_diff(expected, got)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_packets_have_valid_checksums() {
        let v4 = Ip4::new(
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            L4::Udp {
                sport: 1,
                dport: 2,
                len: 33,
            },
        );
        let mut v6 = Ip6::new(
            "fd00::1".parse().unwrap(),
            "fd00::2".parse().unwrap(),
            L4::Tcp {
                sport: 1,
                dport: 2,
                len: 10,
            },
        );
        v6.ext = vec![Ext::HopByHop, Ext::DestOpts];
        let outer = Outer4::new(
            "192.0.2.1".parse().unwrap(),
            "192.0.2.2".parse().unwrap(),
            IPPROTO_IPV6,
        );
        let frame = ethernet([1; 6], [2; 6], ETH_P_IP, &outer.wrap(&v6.bytes()));
        let checked = verify_checksums(&frame).unwrap();
        assert_eq!(checked.len(), 2, "{checked:?}");
        let frame = ethernet([1; 6], [2; 6], ETH_P_IP, &v4.bytes());
        assert_eq!(verify_checksums(&frame).unwrap().len(), 2);
        let mut bad = frame.clone();
        bad[14 + 8] ^= 1; // TTL changed, checksum not updated
        assert!(verify_checksums(&bad).is_err());
        let icmp = icmpv6_error(v6.src, v6.dst, 2, 0, 1280u32.to_be_bytes(), &v6.bytes());
        let frame = ethernet([1; 6], [2; 6], ETH_P_IPV6, &icmp);
        assert!(
            verify_checksums(&frame)
                .unwrap()
                .iter()
                .any(|c| c.contains("icmpv6"))
        );
        let icmp = icmpv4_error(v4.src, v4.dst, 3, 4, [0, 0, 5, 0x78], &v4.bytes());
        let frame = ethernet([1; 6], [2; 6], ETH_P_IP, &icmp);
        assert!(
            verify_checksums(&frame)
                .unwrap()
                .iter()
                .any(|c| c.contains("icmp"))
        );
        assert_eq!(internet_checksum(&[0x45, 0, 0, 0x1c]), !0x451c);
    }
}
