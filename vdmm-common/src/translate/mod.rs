//! Stateless IPv4/IPv6 translation (SIIT): RFC 7915 with RFC 6052 (IPv4-embedded IPv6
//! addresses), RFC 7757 (explicit address mappings) and RFC 6791 (IPv4 source of
//! translated ICMPv6 errors).
//!
//! Two layers:
//!
//! * `no_std`, allocation-free, panic-free pieces over fixed-size arrays that the eBPF
//!   data plane calls directly: [`rfc6052`] (embed / extract at /32../96), [`eamt`]
//!   (prefix-to-prefix mapping, longest match, EAMT-before-RFC 6052 selection),
//!   [`checksum`] (RFC 1624 incremental updates for the pseudo-header change),
//!   [`icmp`] (type/code/pointer tables, MTU rules), [`header`] (IPv6 / fragment /
//!   IPv4 header builders).
//! * `reference` (host only, feature `std`, implied by `user`): a complete translator
//!   over byte buffers, [`reference::translate_4to6`] and [`reference::translate_6to4`],
//!   proven against the siit-pktgen conformance vectors. The data plane is compared with
//!   it byte for byte.
//!
//! # Porting to XDP
//!
//! The reference runs these steps; the XDP program can follow them with the `no_std`
//! functions named here (everything else is fixed-offset header surgery):
//!
//! | step | IPv4 -> IPv6 (RFC 7915 section 4) | IPv6 -> IPv4 (section 5) |
//! |---|---|---|
//! | parse | IHL, Total Length, header checksum | payload length, extension header walk (at most 8: hop-by-hop, destination options, routing; stop at fragment) |
//! | destination (4.6 / 5.6) | LPM in the EAMT-by-IPv4 map, then [`eamt::address_4to6`]; `None` -> pass | LPM in the EAMT-by-IPv6 map, then [`eamt::address_6to4`]; `None` -> pass |
//! | source | same; ICMP error without mapping -> RFC 6791 address; else drop + ICMP 3/13 | same; ICMPv6 error -> RFC 6791; else drop + ICMPv6 1/1 |
//! | TTL | `<= 1` -> ICMP 11/0 | `<= 1` -> ICMPv6 3/0; routing header with segments left -> ICMPv6 4/0 |
//! | transport | TCP/UDP: [`checksum::transport_4to6`] (UDP zero: compute or drop); echo: [`checksum::icmp_info_4to6`]; errors: [`icmp::icmp4_to_icmp6`], inner packet through the same steps, full checksum | [`checksum::transport_6to4`] + [`checksum::udp_mangle_zero`]; [`checksum::icmp_info_6to4`]; [`icmp::icmp6_to_icmp4`] |
//! | header | [`header::build_ipv6_header`] (+ [`header::build_fragment_header`] for a fragment) | [`header::build_ipv4_header`], DF by [`header::df_for_translated_ipv4`] unless a fragment header gives ID/MF/offset |
//! | size | DF and > next hop -> ICMP 3/4 ([`icmp::frag_needed_mtu_for_ipv6_nexthop`]); !DF (or a fragment) and > lowest IPv6 MTU -> fragments (slow path); ICMPv6 errors cut to 1280 | DF and > next hop -> ICMPv6 2/0 ([`icmp::ptb_mtu_for_ipv4_nexthop`]); ICMPv4 errors cut to 576 |

pub mod checksum;
pub mod eamt;
pub mod header;
pub mod icmp;
pub mod maps;
pub mod rfc6052;

#[cfg(any(feature = "std", test))]
pub mod config;
#[cfg(any(feature = "std", test))]
pub mod reference;

pub use eamt::{EamEntry, MappedBy};
pub use rfc6052::Prefix6;

macro_rules! xlat_reasons {
    ($( $(#[$doc:meta])* $variant:ident = $value:literal => $name:literal, )*) => {
        /// Why the translator did not (or did) translate a packet.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum XlatReason {
            $( $(#[$doc])* $variant = $value, )*
        }

        impl XlatReason {
            /// Every reason, in value order.
            pub const ALL: &'static [XlatReason] = &[ $( XlatReason::$variant, )* ];

            /// snake_case name for counters and logs.
            pub const fn name(self) -> &'static str {
                match self {
                    $( XlatReason::$variant => $name, )*
                }
            }
        }
    };
}

xlat_reasons! {
    /// Translated (one or more packets out).
    Translated = 0 => "xlat_translated",
    /// Truncated or invalid IPv4/IPv6 header, bad length fields, bad IPv4 header
    /// checksum, truncated transport header.
    Malformed = 1 => "xlat_malformed",
    /// The destination has no mapping (no EAMT entry, not under the RFC 6052 prefix):
    /// not for the translator (RFC 7915 sections 4.6, 5.6), left to normal forwarding.
    NoMapping = 2 => "xlat_no_mapping",
    /// The source has no mapping (and no RFC 6791 address applies): dropped, ICMP
    /// destination unreachable / administratively prohibited (sections 4.4, 5.4).
    SourceUntranslatable = 3 => "xlat_source_untranslatable",
    /// TTL / hop limit would reach zero: ICMP time exceeded (sections 4.1, 5.1).
    TtlExpired = 4 => "xlat_ttl_expired",
    /// IPv4 with an unexpired source route option: ICMP source route failed (4.1).
    SourceRoute = 5 => "xlat_source_route",
    /// IPv6 routing header with segments left: ICMPv6 parameter problem (5.1).
    SegmentsLeft = 6 => "xlat_segments_left",
    /// An extension header follows the fragment header (5.1.1), or too many of them.
    ExtensionHeaders = 7 => "xlat_extension_headers",
    /// A fragmented ICMP message: its checksum cannot be translated without reassembly
    /// (the ICMPv6 pseudo-header holds the full length).
    FragmentedIcmp = 8 => "xlat_fragmented_icmp",
    /// IPv4 UDP with checksum zero, dropped by configuration or because it is a
    /// fragment (4.5).
    UdpZeroChecksum = 9 => "xlat_udp_zero_checksum",
    /// ICMP type / code / pointer without a counterpart: silently dropped (4.2, 5.2).
    IcmpUntranslatable = 10 => "xlat_icmp_untranslatable",
    /// ICMP error with a wrong checksum: it would be recomputed, so it is dropped rather
    /// than laundered.
    IcmpBadChecksum = 11 => "xlat_icmp_bad_checksum",
    /// ICMP error whose inner packet is unusable: truncated header, an ICMP error inside
    /// an ICMP error (4.3, 5.3), or inner addresses without a mapping.
    IcmpInner = 12 => "xlat_icmp_inner",
    /// Would exceed the next-hop MTU with DF set: ICMP fragmentation needed / packet
    /// too big sent back (5.1.1).
    TooBig = 13 => "xlat_too_big",
    /// Source address IPv6 must not translate (unspecified, loopback, multicast; 5.1).
    IllegalSource = 14 => "xlat_illegal_source",
    /// Translated and fragmented (IPv4 without DF larger than the lowest IPv6 MTU, or
    /// IPv4 result larger than the next-hop MTU without DF).
    Fragmented = 15 => "xlat_fragmented",
    /// ICMP error whose RFC 4884 length attribute is invalid (original datagram field
    /// shorter than 128 bytes, or longer than the message).
    IcmpExtension = 16 => "xlat_icmp_extension",
}
