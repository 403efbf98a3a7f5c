//! Unit tests of the reference translator beyond the conformance vectors: each RFC 7915
//! rule the vectors do not exercise. Input packets are built with etherparse and every
//! output checksum is verified with etherparse, independently of this crate's code.

extern crate std;
use std::vec::Vec;

use etherparse::{
    Icmpv4Header, Icmpv4Type, Icmpv6Header, Icmpv6Type, NetHeaders, PacketBuilder, PacketHeaders,
    TransportHeader,
};

use super::conformance::{load_cases, run_case, vectors_dir};
use super::{Outcome, translate_4to6, translate_6to4};
use crate::translate::XlatReason;
use crate::translate::checksum;
use crate::translate::config::{TranslatorConfig, UdpZeroChecksum};

fn v6(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

/// The README's hosts: IPv4 host 198.51.100.2 (2001:db8:1c6:3364:2:: through pool6) and
/// IPv6 host 2001:db8:1c0:2:21:: (192.0.2.33).
const H4: [u8; 4] = [198, 51, 100, 2];
const H6_AS_V4: [u8; 4] = [192, 0, 2, 33];
fn h6() -> [u8; 16] {
    v6("2001:db8:1c0:2:21::")
}
fn h4_as_v6() -> [u8; 16] {
    v6("2001:db8:1c6:3364:2::")
}

fn cfg() -> TranslatorConfig {
    let mut c = TranslatorConfig::conformance();
    c.icmp_source_v4 = Some([192, 0, 2, 1]);
    c.icmp_source_v6 = Some(v6("2001:db8:1c0:2::1"));
    c
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| i as u8).collect()
}

/// Sets the IPv4 flags/offset word and the identification, and fixes the checksum.
fn set_v4_frag(p: &mut [u8], id: u16, df: bool, mf: bool, offset8: u16) {
    p[4..6].copy_from_slice(&id.to_be_bytes());
    let ff = (df as u16) << 14 | (mf as u16) << 13 | offset8;
    p[6..8].copy_from_slice(&ff.to_be_bytes());
    fix_v4_checksum(p);
}

fn fix_v4_checksum(p: &mut [u8]) {
    let ihl = (p[0] & 15) as usize * 4;
    p[10] = 0;
    p[11] = 0;
    let mut s = 0u32;
    for c in p[..ihl].chunks(2) {
        s += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    let c = checksum::finish(s);
    p[10..12].copy_from_slice(&c.to_be_bytes());
}

fn udp4(src: [u8; 4], dst: [u8; 4], ttl: u8, data: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv4(src, dst, ttl).udp(4000, 2000);
    let mut v = Vec::new();
    b.write(&mut v, data).unwrap();
    set_v4_frag(&mut v, 0x1234, true, false, 0);
    v
}

fn udp6(src: [u8; 16], dst: [u8; 16], hop: u8, data: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv6(src, dst, hop).udp(2000, 4000);
    let mut v = Vec::new();
    b.write(&mut v, data).unwrap();
    v
}

fn icmp4(src: [u8; 4], dst: [u8; 4], ty: u8, code: u8, rest: [u8; 4], data: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv4(src, dst, 64).icmpv4_raw(ty, code, rest);
    let mut v = Vec::new();
    b.write(&mut v, data).unwrap();
    set_v4_frag(&mut v, 0x5555, false, false, 0);
    v
}

fn icmp6(src: [u8; 16], dst: [u8; 16], ty: u8, code: u8, rest: [u8; 4], data: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv6(src, dst, 64).icmpv6_raw(ty, code, rest);
    let mut v = Vec::new();
    b.write(&mut v, data).unwrap();
    v
}

/// Every checksum of `p` is right, as etherparse computes it (not for fragments).
fn assert_checksums(p: &[u8]) {
    let h = PacketHeaders::from_ip_slice(p).expect("etherparse parses the output");
    let data = h.payload.slice();
    // ICMP: etherparse rebuilds bytes 4..8 from the type it recognised (dropping e.g. an
    // RFC 4884 length), so the raw header bytes are checked as an "unknown" type.
    let raw = &p[p.len() - data.len() - 8..p.len() - data.len()];
    let rest: [u8; 4] = raw[4..8].try_into().unwrap();
    match (&h.net, &h.transport) {
        (Some(NetHeaders::Ipv4(ip, _)), t) => {
            assert_eq!(
                ip.header_checksum,
                ip.calc_header_checksum(),
                "IPv4 header checksum"
            );
            match t {
                Some(TransportHeader::Udp(u)) => {
                    assert_eq!(u.checksum, u.calc_checksum_ipv4(ip, data).unwrap())
                }
                Some(TransportHeader::Tcp(t)) => {
                    assert_eq!(t.checksum, t.calc_checksum_ipv4(ip, data).unwrap())
                }
                Some(TransportHeader::Icmpv4(i)) => {
                    let ty = Icmpv4Type::Unknown {
                        type_u8: raw[0],
                        code_u8: raw[1],
                        bytes5to8: rest,
                    };
                    let mut c = Icmpv4Header {
                        icmp_type: ty,
                        checksum: 0,
                    };
                    c.update_checksum(data);
                    assert_eq!(i.checksum, c.checksum, "ICMPv4 checksum");
                }
                _ => {}
            }
        }
        (Some(NetHeaders::Ipv6(ip, _)), t) => match t {
            Some(TransportHeader::Udp(u)) => {
                assert_eq!(u.checksum, u.calc_checksum_ipv6(ip, data).unwrap())
            }
            Some(TransportHeader::Tcp(t)) => {
                assert_eq!(t.checksum, t.calc_checksum_ipv6(ip, data).unwrap())
            }
            Some(TransportHeader::Icmpv6(i)) => {
                let ty = Icmpv6Type::Unknown {
                    type_u8: raw[0],
                    code_u8: raw[1],
                    bytes5to8: rest,
                };
                let mut c = Icmpv6Header {
                    icmp_type: ty,
                    checksum: 0,
                };
                c.update_checksum(ip.source, ip.destination, data).unwrap();
                assert_eq!(i.checksum, c.checksum, "ICMPv6 checksum");
            }
            _ => {}
        },
        _ => panic!("not IP"),
    }
}

fn one(o: &Outcome) -> &[u8] {
    match o.packets() {
        Some([p]) => p,
        _ => panic!("expected one packet, got {o}"),
    }
}

fn icmp_reply(o: &Outcome) -> (XlatReason, u8, u8, [u8; 4], Vec<u8>) {
    match o {
        Outcome::Drop {
            reason,
            icmp: Some(i),
        } => (
            *reason,
            i.ty,
            i.code,
            i.rest,
            i.packet.clone().expect("packet"),
        ),
        other => panic!("expected a drop with ICMP, got {other}"),
    }
}

#[test]
fn a_wrong_configuration_fails_the_vectors() {
    // Guards the comparison itself: with another pool6 length every vector must fail.
    let dir = vectors_dir();
    let mut c = TranslatorConfig::conformance();
    c.set_pool6(v6("2001:db8:100::"), 48).unwrap();
    for case in load_cases(&dir) {
        assert!(
            run_case(&dir, &c, &case).is_err(),
            "{} passed with a wrong pool6",
            case.sender
        );
    }
}

#[test]
fn plain_udp_both_ways_with_valid_checksums() {
    let p = udp4(H4, H6_AS_V4, 64, &payload(100));
    let o = translate_4to6(&p, &cfg());
    let out = one(&o);
    assert_eq!(&out[8..24], &h4_as_v6());
    assert_eq!(&out[24..40], &h6());
    assert_eq!(out[7], 63);
    assert_checksums(out);
    let p = udp6(h6(), h4_as_v6(), 64, &payload(100));
    let o = translate_6to4(&p, &cfg());
    let out = one(&o);
    assert_eq!((&out[12..16], &out[16..20]), (&H6_AS_V4[..], &H4[..]));
    assert_eq!(out[6] & 0x40, 0, "small packet: DF clear (5.1)");
    assert_checksums(out);
}

#[test]
fn traffic_class_copied_or_reset() {
    let mut p = udp4(H4, H6_AS_V4, 64, &payload(20));
    p[1] = 0xb9;
    fix_v4_checksum(&mut p);
    let o = translate_4to6(&p, &cfg());
    assert_eq!(&one(&o)[..2], &[0x6b, 0x90]);
    let mut c = cfg();
    c.reset_traffic_class = true;
    let o = translate_4to6(&p, &c);
    assert_eq!(&one(&o)[..2], &[0x60, 0x00]);
    let mut p6 = udp6(h6(), h4_as_v6(), 64, &payload(20));
    p6[0] = 0x6b;
    p6[1] = 0x9f; // traffic class 0xb9, flow label bits dropped
    assert_eq!(one(&translate_6to4(&p6, &cfg()))[1], 0xb9);
}

#[test]
fn eam_addresses() {
    let p = udp4([10, 0, 0, 7], [1, 0, 0, 9], 64, &payload(30));
    let o = translate_4to6(&p, &cfg());
    let out = one(&o);
    assert_eq!(&out[8..24], &v6("2001:db8:2::7"));
    assert_eq!(&out[24..40], &v6("2001:db8:3::9"));
    assert_checksums(out);
    let p = udp6(v6("2001:db8:3::9"), v6("2001:db8:2::7"), 64, &payload(30));
    let out = translate_6to4(&p, &cfg());
    assert_eq!(
        (&one(&out)[12..16], &one(&out)[16..20]),
        (&[1, 0, 0, 9][..], &[10, 0, 0, 7][..])
    );
}

#[test]
fn destination_without_mapping_is_passed() {
    let p = udp6(h6(), v6("2001:db8:4::1"), 64, &payload(10));
    assert_eq!(
        translate_6to4(&p, &cfg()),
        Outcome::Pass(XlatReason::NoMapping)
    );
    let mut c = cfg();
    c.pool6 = None;
    let p = udp4(H4, [192, 0, 2, 200], 64, &payload(10));
    assert_eq!(translate_4to6(&p, &c), Outcome::Pass(XlatReason::NoMapping));
}

#[test]
fn special_ipv4_addresses_are_not_translated() {
    // Multicast / loopback have no RFC 6052 twin: not for the translator.
    let p = udp4(H4, [224, 0, 0, 5], 64, &payload(10));
    assert_eq!(
        translate_4to6(&p, &cfg()),
        Outcome::Pass(XlatReason::NoMapping)
    );
    let p = udp4([127, 0, 0, 1], H6_AS_V4, 64, &payload(10));
    assert_eq!(
        translate_4to6(&p, &cfg()).reason(),
        XlatReason::SourceUntranslatable
    );
}

#[test]
fn source_without_mapping_is_refused() {
    // 5.4: ICMPv6 destination unreachable, administratively prohibited.
    let p = udp6(v6("2001:db8:ff00::1"), h4_as_v6(), 64, &payload(10));
    let (r, ty, code, _, reply) = icmp_reply(&translate_6to4(&p, &cfg()));
    assert_eq!((r, ty, code), (XlatReason::SourceUntranslatable, 1, 1));
    assert_eq!(&reply[24..40], &v6("2001:db8:ff00::1"));
    assert_checksums(&reply);
    // 4.4: ICMPv4 destination unreachable, communication administratively prohibited.
    let mut c = cfg();
    c.pool6 = None;
    let p = udp4([192, 0, 2, 200], [1, 0, 0, 1], 64, &payload(10));
    let (r, ty, code, _, reply) = icmp_reply(&translate_4to6(&p, &c));
    assert_eq!((r, ty, code), (XlatReason::SourceUntranslatable, 3, 13));
    assert_checksums(&reply);
}

#[test]
fn illegal_ipv6_sources_are_dropped() {
    for s in ["::", "::1", "ff02::1"] {
        let p = udp6(v6(s), h4_as_v6(), 64, &payload(10));
        assert_eq!(
            translate_6to4(&p, &cfg()),
            Outcome::drop(XlatReason::IllegalSource),
            "{s}"
        );
    }
}

#[test]
fn ttl_and_hop_limit_expiry() {
    let p = udp4(H4, H6_AS_V4, 1, &payload(10));
    let (r, ty, code, _, reply) = icmp_reply(&translate_4to6(&p, &cfg()));
    assert_eq!((r, ty, code), (XlatReason::TtlExpired, 11, 0));
    assert_eq!(&reply[16..20], &H4);
    assert_eq!(&reply[28..], &p[..], "the whole (small) original follows");
    assert_checksums(&reply);
    let p = udp6(h6(), h4_as_v6(), 1, &payload(10));
    let (r, ty, code, _, reply) = icmp_reply(&translate_6to4(&p, &cfg()));
    assert_eq!((r, ty, code), (XlatReason::TtlExpired, 3, 0));
    assert_eq!(&reply[48..], &p[..]);
    assert_checksums(&reply);
    // TTL 2 goes through as 1.
    let p = udp4(H4, H6_AS_V4, 2, &payload(10));
    assert_eq!(one(&translate_4to6(&p, &cfg()))[7], 1);
}

#[test]
fn no_icmp_error_about_an_icmp_error() {
    // A time exceeded whose TTL runs out: dropped without an answer.
    let inner = udp6(h6(), h4_as_v6(), 5, &payload(8));
    let mut p = icmp6(v6("2001:db8:1c0:2::9"), h4_as_v6(), 3, 0, [0; 4], &inner);
    p[7] = 1;
    assert_eq!(
        translate_6to4(&p, &cfg()),
        Outcome::drop(XlatReason::TtlExpired)
    );
}

#[test]
fn ipv4_options_are_dropped_and_source_route_refused() {
    // IHL 7 with NOPs and an end of options: translated, options gone.
    let base = udp4(H4, H6_AS_V4, 64, &payload(40));
    let mut p = Vec::new();
    p.extend_from_slice(&base[..20]);
    p.extend_from_slice(&[1, 1, 1, 1, 1, 1, 1, 0]);
    p.extend_from_slice(&base[20..]);
    p[0] = 0x47;
    let tl = (p.len() as u16).to_be_bytes();
    p[2..4].copy_from_slice(&tl);
    fix_v4_checksum(&mut p);
    let o = translate_4to6(&p, &cfg());
    let out = one(&o);
    assert_eq!(out.len(), 40 + base.len() - 20);
    assert_checksums(out);
    // A loose source route with one address left: 3/5 back (4.1).
    p[20..28].copy_from_slice(&[131, 7, 4, 192, 0, 2, 99, 0]);
    fix_v4_checksum(&mut p);
    let (r, ty, code, _, _) = icmp_reply(&translate_4to6(&p, &cfg()));
    assert_eq!((r, ty, code), (XlatReason::SourceRoute, 3, 5));
    // Once the route is used up (pointer 8 > length 7) the option is just ignored.
    p[22] = 8;
    fix_v4_checksum(&mut p);
    assert_checksums(one(&translate_4to6(&p, &cfg())));
}

#[test]
fn bad_ipv4_header_checksum_is_malformed() {
    let mut p = udp4(H4, H6_AS_V4, 64, &payload(10));
    p[10] ^= 1;
    assert_eq!(
        translate_4to6(&p, &cfg()),
        Outcome::drop(XlatReason::Malformed)
    );
    assert_eq!(
        translate_4to6(&p[..19], &cfg()),
        Outcome::drop(XlatReason::Malformed)
    );
}

#[test]
fn udp_zero_checksum() {
    let mut p = udp4(H4, H6_AS_V4, 64, &payload(33));
    p[26] = 0;
    p[27] = 0;
    // Compute (default): a valid IPv6 UDP checksum.
    let o = translate_4to6(&p, &cfg());
    assert_checksums(one(&o));
    assert_ne!(&one(&o)[46..48], &[0, 0]);
    // Drop by configuration: 3/13 back (4.4, 4.5).
    let mut c = cfg();
    c.udp_zero_checksum = UdpZeroChecksum::Drop;
    let (r, ty, code, _, _) = icmp_reply(&translate_4to6(&p, &c));
    assert_eq!((r, ty, code), (XlatReason::UdpZeroChecksum, 3, 13));
    // A first fragment cannot be summed: dropped whatever the configuration.
    set_v4_frag(&mut p, 7, false, true, 0);
    let (r, ..) = icmp_reply(&translate_4to6(&p, &cfg()));
    assert_eq!(r, XlatReason::UdpZeroChecksum);
}

#[test]
fn ipv4_without_df_is_fragmented_to_the_lowest_ipv6_mtu() {
    let data = payload(2000);
    let mut p = udp4(H4, H6_AS_V4, 64, &data);
    set_v4_frag(&mut p, 0xabcd, false, false, 0);
    let o = translate_4to6(&p, &cfg());
    let frags = o.packets().expect("translated");
    assert_eq!(o.reason(), XlatReason::Fragmented);
    assert_eq!(frags.len(), 2);
    let mut whole = Vec::new();
    for (i, f) in frags.iter().enumerate() {
        assert!(f.len() <= 1280);
        assert_eq!(f[6], 44, "fragment header");
        assert_eq!(u16::from_be_bytes([f[4], f[5]]) as usize, f.len() - 40);
        assert_eq!(f[40], 17);
        let fo = u16::from_be_bytes([f[42], f[43]]);
        assert_eq!(
            (fo >> 3) as usize * 8,
            whole.len(),
            "offset of fragment {i}"
        );
        assert_eq!(fo & 1 == 1, i == 0, "M flag of fragment {i}");
        assert_eq!(&f[44..48], &[0, 0, 0xab, 0xcd]);
        whole.extend_from_slice(&f[48..]);
    }
    // Reassembled, it is the translated datagram with a valid checksum.
    let mut re = frags[0][..40].to_vec();
    re[6] = 17;
    re[4..6].copy_from_slice(&(whole.len() as u16).to_be_bytes());
    re.extend_from_slice(&whole);
    assert_checksums(&re);
    // With a larger lowest MTU it goes whole; with DF it goes whole too (PMTUD's job).
    let mut c = cfg();
    c.lowest_ipv6_mtu = 2100;
    assert!(
        translate_4to6(&p, &c)
            .packets()
            .is_some_and(|f| f.len() == 1)
    );
    set_v4_frag(&mut p, 0xabcd, true, false, 0);
    assert!(
        translate_4to6(&p, &cfg())
            .packets()
            .is_some_and(|f| f.len() == 1 && f[0].len() == 2048)
    );
}

#[test]
fn ipv4_fragments_too_big_for_the_ipv6_next_hop() {
    // Jool graybox "cf": a 1261-byte IPv4 fragment (MF, DF clear) becomes two IPv6
    // fragments of 1280 and 57 bytes with the same identification.
    let mut p = udp4(H4, H6_AS_V4, 64, &payload(1233));
    set_v4_frag(&mut p, 4321, false, true, 0);
    let mut c = cfg();
    c.mtu_v6_nexthop = Some(1280);
    let o = translate_4to6(&p, &c);
    let f = o.packets().expect("fragments");
    assert_eq!((f.len(), f[0].len(), f[1].len()), (2, 1280, 57));
    assert_eq!(
        &f[1][42..48],
        &[0x04, 0xd1, 0, 0, 0x10, 0xe1],
        "offset 1232, M, id 4321"
    );
    // Graybox "ca": the same fragment with DF: fragmentation needed, MTU 1280 - 20.
    set_v4_frag(&mut p, 4321, true, true, 0);
    let (r, ty, code, rest, _) = icmp_reply(&translate_4to6(&p, &c));
    assert_eq!((r, ty, code), (XlatReason::TooBig, 3, 4));
    assert_eq!(u16::from_be_bytes([rest[2], rest[3]]), 1260);
    // Graybox "ce": a DF fragment that fits (1252 + 20 + 8 = 1280) is translated whole,
    // whatever the lowest IPv6 MTU.
    let mut p = udp4(H4, H6_AS_V4, 64, &payload(1224));
    set_v4_frag(&mut p, 1234, true, true, 0);
    c.lowest_ipv6_mtu = 1280;
    assert!(
        translate_4to6(&p, &c)
            .packets()
            .is_some_and(|f| f.len() == 1 && f[0].len() == 1280)
    );
}

#[test]
fn illegal_source_of_an_icmp4_error_is_embedded() {
    // RFC 7915 4.1 / Jool graybox "ha": an ICMPv4 error from 127.0.0.1 or 0.0.0.0 is
    // translated with that address under the prefix.
    let inner = udp4(H6_AS_V4, H4, 63, &payload(4));
    for (src, want) in [
        ([127, 0, 0, 1], v6("2001:db8:17f:0:1::")),
        ([0, 0, 0, 0], v6("2001:db8:100::")),
    ] {
        let p = icmp4(src, H6_AS_V4, 3, 3, [0; 4], &inner);
        let o = translate_4to6(&p, &cfg());
        let out = one(&o);
        assert_eq!(&out[8..24], &want, "source {src:?}");
        assert_checksums(out);
    }
    // Not for anything else: a UDP packet from 127.0.0.1 is refused (not answered).
    let mut p = udp4(H4, H6_AS_V4, 64, &payload(4));
    p[12..16].copy_from_slice(&[127, 0, 0, 1]);
    p[10] = 0;
    p[11] = 0;
    let c = checksum::ipv4_header_checksum(&p[..20].try_into().unwrap());
    p[10..12].copy_from_slice(&c.to_be_bytes());
    assert_eq!(
        translate_4to6(&p, &cfg()),
        Outcome::drop(XlatReason::SourceUntranslatable)
    );
}

#[test]
fn df_packet_larger_than_the_ipv6_next_hop() {
    let p = udp4(H4, H6_AS_V4, 64, &payload(1400));
    let mut c = cfg();
    c.mtu_v6_nexthop = Some(1400);
    let (r, ty, code, rest, reply) = icmp_reply(&translate_4to6(&p, &c));
    assert_eq!((r, ty, code), (XlatReason::TooBig, 3, 4));
    assert_eq!(u16::from_be_bytes([rest[2], rest[3]]), 1380);
    assert_checksums(&reply);
}

#[test]
fn ipv6_larger_than_the_ipv4_next_hop() {
    // No fragment header: DF set (> 1260), so packet too big with MTU + 20.
    let p = udp6(h6(), h4_as_v6(), 64, &payload(1400));
    let mut c = cfg();
    c.mtu_v4_nexthop = Some(1300);
    let (r, ty, code, rest, reply) = icmp_reply(&translate_6to4(&p, &c));
    assert_eq!((r, ty, code), (XlatReason::TooBig, 2, 0));
    assert_eq!(u32::from_be_bytes(rest), 1320);
    assert_checksums(&reply);
    // With a fragment header: DF clear, so IPv4 fragments.
    let mut f = p[..40].to_vec();
    f[6] = 44;
    f.extend_from_slice(&[17, 0, 0, 0, 0x11, 0x22, 0x33, 0x44]);
    f.extend_from_slice(&p[40..]);
    let pl = (f.len() - 40) as u16;
    f[4..6].copy_from_slice(&pl.to_be_bytes());
    let o = translate_6to4(&f, &c);
    let frags = o.packets().expect("fragments");
    assert_eq!(frags.len(), 2);
    assert!(
        frags
            .iter()
            .all(|x| x.len() <= 1300 && x[4..6] == [0x33, 0x44] && x[6] & 0x40 == 0)
    );
    assert_eq!(frags[0][6] & 0x20, 0x20);
    assert_eq!(frags[1][6] & 0x20, 0);
}

#[test]
fn extension_headers() {
    let base = udp6(h6(), h4_as_v6(), 64, &payload(24));
    let with = |ext: &[u8], first: u8| {
        let mut p = base[..40].to_vec();
        p[6] = first;
        p.extend_from_slice(ext);
        p.extend_from_slice(&base[40..]);
        let pl = (p.len() - 40) as u16;
        p[4..6].copy_from_slice(&pl.to_be_bytes());
        p
    };
    // Hop-by-hop and destination options are skipped (5.1).
    let p = with(&[60, 0, 1, 4, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0], 0);
    let o = translate_6to4(&p, &cfg());
    let out = one(&o);
    assert_eq!((out[9], out.len()), (17, 20 + 32));
    assert_checksums(out);
    // Routing header with segments left 2: parameter problem pointing at it (43 = 40 + 3).
    let p = with(
        &[
            17, 2, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
        43,
    );
    let (r, ty, code, rest, _) = icmp_reply(&translate_6to4(&p, &cfg()));
    assert_eq!(
        (r, ty, code, u32::from_be_bytes(rest)),
        (XlatReason::SegmentsLeft, 4, 0, 43)
    );
    // Segments left 0: skipped.
    let p = with(&[17, 0, 0, 0, 0, 0, 0, 0], 43);
    assert_checksums(one(&translate_6to4(&p, &cfg())));
    // An extension header after the fragment header (5.1.1): dropped, with the default
    // ICMPv6 error of 5.4 holding the packet as received.
    for ext in [60u8, 0, 43] {
        let p = with(&[ext, 0, 0, 0, 1, 2, 3, 4, 17, 0, 0, 0, 0, 0, 0, 0], 44);
        let (r, ty, code, _, reply) = icmp_reply(&translate_6to4(&p, &cfg()));
        assert_eq!((r, ty, code), (XlatReason::ExtensionHeaders, 1, 1));
        assert_eq!(&reply[48..], &p[..]);
        assert_checksums(&reply);
    }
}

#[test]
fn echo_both_ways() {
    let p = icmp4(H4, H6_AS_V4, 8, 0, [0x12, 0x34, 0, 1], &payload(56));
    let o = translate_4to6(&p, &cfg());
    let out = one(&o);
    assert_eq!((out[6], out[40], out[41]), (58, 128, 0));
    assert_checksums(out);
    let p = icmp6(h6(), h4_as_v6(), 129, 0, [0x12, 0x34, 0, 1], &payload(56));
    let o = translate_6to4(&p, &cfg());
    let out = one(&o);
    assert_eq!((out[9], out[20], out[21]), (1, 0, 0));
    assert_checksums(out);
    // Untranslatable informational messages are dropped silently.
    let p = icmp4(H4, H6_AS_V4, 13, 0, [0; 4], &payload(12));
    assert_eq!(
        translate_4to6(&p, &cfg()),
        Outcome::drop(XlatReason::IcmpUntranslatable)
    );
    let p = icmp6(h6(), h4_as_v6(), 135, 0, [0; 4], &payload(20));
    assert_eq!(
        translate_6to4(&p, &cfg()),
        Outcome::drop(XlatReason::IcmpUntranslatable)
    );
}

#[test]
fn fragmented_icmp_is_dropped() {
    let mut p = icmp4(H4, H6_AS_V4, 8, 0, [0, 1, 0, 1], &payload(56));
    set_v4_frag(&mut p, 9, false, true, 0);
    assert_eq!(
        translate_4to6(&p, &cfg()),
        Outcome::drop(XlatReason::FragmentedIcmp)
    );
}

/// An ICMPv4 error from the IPv4 side about an IPv6 host's (translated) packet.
fn icmp4_error(ty: u8, code: u8, rest: [u8; 4], inner_len: usize) -> Vec<u8> {
    let inner = udp4(H6_AS_V4, H4, 63, &payload(inner_len));
    icmp4([203, 0, 113, 1], H6_AS_V4, ty, code, rest, &inner)
}

#[test]
fn icmp4_errors() {
    // Frag needed, MTU 1400 -> packet too big 1420, inner packet translated.
    let p = icmp4_error(3, 4, [0, 0, 0x05, 0x78], 1000);
    let o = translate_4to6(&p, &cfg());
    let out = one(&o);
    assert_eq!(
        (
            out[40],
            out[41],
            u32::from_be_bytes(out[44..48].try_into().unwrap())
        ),
        (2, 0, 1420)
    );
    assert_eq!(
        &out[8..24],
        &crate::translate::rfc6052::embed(&cfg().pool6.unwrap(), [203, 0, 113, 1]).unwrap()
    );
    assert_eq!(&out[48 + 8..48 + 24], &h6(), "inner source translated");
    assert_eq!(
        &out[48 + 24..48 + 40],
        &h4_as_v6(),
        "inner destination translated"
    );
    assert_eq!(out[48 + 7], 63, "inner hop limit not decremented");
    assert_checksums(out);
    // MTU 0 (pre-RFC 1191 router): plateau below the inner Total Length (1028 -> 1006),
    // +20, at least 1280.
    let p = icmp4_error(3, 4, [0; 4], 1000);
    assert_eq!(
        &one(&translate_4to6(&p, &cfg()))[44..48],
        &1280u32.to_be_bytes()
    );
    // Protocol unreachable -> parameter problem code 1 pointer 6.
    let p = icmp4_error(3, 2, [0; 4], 20);
    let o = translate_4to6(&p, &cfg());
    assert_eq!(&one(&o)[40..42], &[4, 1]);
    assert_eq!(&one(&o)[44..48], &[0, 0, 0, 6]);
    assert_checksums(one(&o));
    // Parameter problem pointer 8 (TTL) -> 7 (hop limit).
    let p = icmp4_error(12, 0, [8, 0, 0, 0], 20);
    let o = translate_4to6(&p, &cfg());
    assert_eq!(
        &one(&o)[40..48],
        &[4, 0, one(&o)[42], one(&o)[43], 0, 0, 0, 7]
    );
    // A corrupted error is not laundered.
    let mut p = icmp4_error(11, 0, [0; 4], 20);
    let n = p.len();
    p[n - 1] ^= 0xff;
    assert_eq!(
        translate_4to6(&p, &cfg()),
        Outcome::drop(XlatReason::IcmpBadChecksum)
    );
    // An error inside an error is dropped (4.3).
    let inner = icmp4(H6_AS_V4, H4, 3, 3, [0; 4], &payload(28));
    let p = icmp4([203, 0, 113, 1], H6_AS_V4, 11, 0, [0; 4], &inner);
    assert_eq!(
        translate_4to6(&p, &cfg()),
        Outcome::drop(XlatReason::IcmpInner)
    );
}

#[test]
fn icmp6_errors_and_rfc6791() {
    // Packet too big 1400 from a router without an IPv4 mapping: RFC 6791 source,
    // MTU - 20.
    let inner = udp6(h4_as_v6(), h6(), 60, &payload(100));
    let router = v6("2001:db8:ff00::1"); // outside pool6 and the EAMT
    let p = icmp6(router, h4_as_v6(), 2, 0, 1400u32.to_be_bytes(), &inner);
    let o = translate_6to4(&p, &cfg());
    let out = one(&o);
    assert_eq!(&out[12..16], &[203, 0, 113, 8]);
    assert_eq!(&out[16..20], &H4);
    assert_eq!(
        (out[20], out[21], u16::from_be_bytes([out[26], out[27]])),
        (3, 4, 1380)
    );
    assert_eq!(&out[28 + 12..28 + 20], &[198, 51, 100, 2, 192, 0, 2, 33]);
    assert_eq!(out[28 + 8], 60, "inner TTL not decremented");
    assert_checksums(out);
    // Without RFC 6791 the translator's own address; without either the error cannot be
    // translated (and gets no answer).
    let mut c = cfg();
    c.rfc6791_v4 = None;
    assert_eq!(&one(&translate_6to4(&p, &c))[12..16], &[192, 0, 2, 1]);
    c.icmp_source_v4 = None;
    assert_eq!(
        translate_6to4(&p, &c),
        Outcome::drop(XlatReason::SourceUntranslatable)
    );
    // Parameter problem, unrecognized next header -> protocol unreachable.
    let p = icmp6(router, h4_as_v6(), 4, 1, [0, 0, 0, 6], &inner);
    assert_eq!(&one(&translate_6to4(&p, &cfg()))[20..22], &[3, 2]);
    // Parameter problem pointer 24 (destination) -> 16.
    let p = icmp6(router, h4_as_v6(), 4, 0, [0, 0, 0, 24], &inner);
    let o = translate_6to4(&p, &cfg());
    assert_eq!((one(&o)[20], one(&o)[24]), (12, 16));
    assert_checksums(one(&o));
    // Inner addresses without mapping: dropped.
    let stray = udp6(v6("2001:db8:ff00::5"), h6(), 60, &payload(10));
    let p = icmp6(router, h4_as_v6(), 1, 4, [0; 4], &stray);
    assert_eq!(
        translate_6to4(&p, &cfg()),
        Outcome::drop(XlatReason::IcmpInner)
    );
}

#[test]
fn icmp_errors_are_truncated() {
    // ICMPv6 error -> at most 576 bytes of ICMPv4 (RFC 1812 4.3.2.3).
    let inner = udp6(h4_as_v6(), h6(), 60, &payload(1200));
    let p = icmp6(v6("2001:db8:1c0:2::9"), h4_as_v6(), 1, 4, [0; 4], &inner);
    let o = translate_6to4(&p, &cfg());
    let out = one(&o);
    assert_eq!(out.len(), 576);
    assert_eq!(u16::from_be_bytes([out[2], out[3]]), 576);
    assert_eq!(
        u16::from_be_bytes([out[30], out[31]]),
        1228,
        "inner Total Length as sent"
    );
    // ICMPv4 error -> at most 1280 bytes of ICMPv6 (RFC 4443 2.4 (c)).
    let p = icmp4_error(3, 3, [0; 4], 1400);
    let o = translate_4to6(&p, &cfg());
    let out = one(&o);
    assert_eq!(out.len(), 1280);
    assert_eq!(
        u16::from_be_bytes([out[52], out[53]]),
        1408,
        "inner Payload Length as sent"
    );
}

/// An ICMP error body with an RFC 4884 extension: `inner` zero-padded to `padded`
/// bytes, then `ext`.
fn with_extension(inner: &[u8], padded: usize, ext: &[u8]) -> Vec<u8> {
    let mut b = inner.to_vec();
    b.resize(padded, 0);
    b.extend_from_slice(ext);
    b
}

/// An RFC 4884 extension structure: version 2 header (checksum not checked by the
/// translator) and one 8-byte object.
const EXT: [u8; 12] = [0x20, 0, 0, 0, 0, 8, 1, 1, 0xde, 0xad, 0xbe, 0xef];

#[test]
fn icmp_extensions_4to6() {
    // Time exceeded, original datagram 100 bytes padded to 128 (length 32 words).
    let inner = udp4(H6_AS_V4, H4, 63, &payload(72));
    let body = with_extension(&inner, 128, &EXT);
    let p = icmp4([203, 0, 113, 1], H6_AS_V4, 11, 0, [0, 32, 0, 0], &body);
    let o = translate_4to6(&p, &cfg());
    let out = one(&o);
    // 128 bytes grow by 20 to 148, cut to a multiple of 8: 144 (18 words), then EXT.
    assert_eq!((out[40], out[44]), (3, 18));
    assert_eq!(out.len(), 40 + 8 + 144 + EXT.len());
    assert_eq!(&out[out.len() - EXT.len()..], &EXT);
    assert_eq!(&out[48 + 8..48 + 24], &h6(), "inner packet translated");
    assert_checksums(out);
    // Parameter problem becomes ICMPv6 parameter problem, which has no length: the
    // extension is dropped.
    let p = icmp4([203, 0, 113, 1], H6_AS_V4, 12, 0, [8, 32, 0, 0], &body);
    let o = translate_4to6(&p, &cfg());
    let out = one(&o);
    assert_eq!(&out[40..48], &[4, 0, out[42], out[43], 0, 0, 0, 7]);
    assert_eq!(out.len(), 40 + 8 + 148);
    assert_checksums(out);
    // A length attribute below the 128 bytes RFC 4884 asks for (80 bytes) is accepted
    // (Jool issue 396): the 80 bytes grow to 100, are cut to 96 and padded to 128 (16
    // words); everything after them (padding and EXT, 60 bytes) is the extension.
    let p = icmp4([203, 0, 113, 1], H6_AS_V4, 11, 0, [0, 20, 0, 0], &body);
    let o = translate_4to6(&p, &cfg());
    let out = one(&o);
    assert_eq!((out[40], out[44]), (3, 16));
    assert_eq!(out.len(), 40 + 8 + 128 + 60);
    assert_eq!(&out[out.len() - EXT.len()..], &EXT);
    assert_checksums(out);
    // A length attribute longer than the message is invalid.
    let p = icmp4([203, 0, 113, 1], H6_AS_V4, 11, 0, [0, 40, 0, 0], &body);
    assert_eq!(
        translate_4to6(&p, &cfg()),
        Outcome::drop(XlatReason::IcmpExtension)
    );
}

#[test]
fn icmp_extensions_6to4() {
    // Destination unreachable, original datagram 128 bytes (16 words) and EXT.
    let inner = udp6(h4_as_v6(), h6(), 60, &payload(52));
    let body = with_extension(&inner, 128, &EXT);
    let router = v6("2001:db8:1c0:2::9");
    let p = icmp6(router, h4_as_v6(), 1, 4, [16, 0, 0, 0], &body);
    let o = translate_6to4(&p, &cfg());
    let out = one(&o);
    // 128 bytes shrink by 20 to 108, padded back to 128 (32 words), then EXT.
    assert_eq!((out[20], out[21], out[25]), (3, 3, 32));
    assert_eq!(out.len(), 20 + 8 + 128 + EXT.len());
    assert_eq!(&out[out.len() - EXT.len()..], &EXT);
    assert_eq!(&out[28 + 12..28 + 20], &[198, 51, 100, 2, 192, 0, 2, 33]);
    assert_checksums(out);
    // An extension that cannot fit in 576 bytes beside 128 of datagram is removed, and
    // the length zeroed; nothing is padded (Jool graybox ic5).
    let big = [7u8; 480];
    let body = with_extension(&inner, 128, &big);
    let p = icmp6(router, h4_as_v6(), 3, 0, [16, 0, 0, 0], &body);
    let o = translate_6to4(&p, &cfg());
    let out = one(&o);
    assert_eq!((out[20], out[25]), (11, 0));
    assert_eq!(out.len(), 20 + 8 + 108);
    assert_checksums(out);
    // Length longer than the message: invalid.
    let p = icmp6(router, h4_as_v6(), 1, 4, [200, 0, 0, 0], &body);
    assert_eq!(
        translate_6to4(&p, &cfg()),
        Outcome::drop(XlatReason::IcmpExtension)
    );
}
