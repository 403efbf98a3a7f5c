//! Data-plane counters: every exit of every program adds one packet to exactly one
//! counter, named by (reason, tunnel kind, XDP action). The counters live in a per-CPU
//! array indexed by [`counter_index`]; the control plane sums the CPUs.

/// The XDP verdict a packet left with. The values are the kernel's `XDP_*` codes.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Aborted = 0,
    Drop = 1,
    Pass = 2,
    Tx = 3,
    Redirect = 4,
}

impl Action {
    pub const COUNT: u32 = 5;
    pub const ALL: [Action; 5] = [
        Action::Aborted,
        Action::Drop,
        Action::Pass,
        Action::Tx,
        Action::Redirect,
    ];

    /// Lower-case name, as used in `vdmm-ctl stats` and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            Action::Aborted => "aborted",
            Action::Drop => "drop",
            Action::Pass => "pass",
            Action::Tx => "tx",
            Action::Redirect => "redirect",
        }
    }
}

/// Which tunnel a packet belongs to: `Ip4in6` is an IPv4 packet inside an IPv6 header.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelKind {
    /// Not a tunnel packet (or not yet known to be one).
    None = 0,
    Ip4in4 = 1,
    Ip6in4 = 2,
    Ip4in6 = 3,
    Ip6in6 = 4,
    /// Stateless translation (SIIT, RFC 7915) of an IPv4 packet to IPv6.
    Xlat4to6 = 5,
    /// Stateless translation of an IPv6 packet to IPv4.
    Xlat6to4 = 6,
}

impl TunnelKind {
    pub const COUNT: u32 = 7;
    pub const ALL: [TunnelKind; 7] = [
        TunnelKind::None,
        TunnelKind::Ip4in4,
        TunnelKind::Ip6in4,
        TunnelKind::Ip4in6,
        TunnelKind::Ip6in6,
        TunnelKind::Xlat4to6,
        TunnelKind::Xlat6to4,
    ];

    /// The kind for an inner and an outer family (`true` = IPv6).
    #[inline(always)]
    pub const fn of(inner_v6: bool, outer_v6: bool) -> Self {
        match (inner_v6, outer_v6) {
            (false, false) => TunnelKind::Ip4in4,
            (true, false) => TunnelKind::Ip6in4,
            (false, true) => TunnelKind::Ip4in6,
            (true, true) => TunnelKind::Ip6in6,
        }
    }

    /// Name as used in `vdmm-ctl stats` and the `kind` metric label.
    pub const fn name(self) -> &'static str {
        match self {
            TunnelKind::None => "none",
            TunnelKind::Ip4in4 => "4in4",
            TunnelKind::Ip6in4 => "6in4",
            TunnelKind::Ip4in6 => "4in6",
            TunnelKind::Ip6in6 => "6in6",
            TunnelKind::Xlat4to6 => "xlat4to6",
            TunnelKind::Xlat6to4 => "xlat6to4",
        }
    }
}

macro_rules! reasons {
    ($( $(#[$doc:meta])* $variant:ident = $value:literal => $name:literal, )*) => {
        /// Why a packet left the program the way it did.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Reason {
            $( $(#[$doc])* $variant = $value, )*
        }

        impl Reason {
            /// Every reason, in index order.
            pub const ALL: &'static [Reason] = &[ $( Reason::$variant, )* ];

            /// snake_case name, as used in `vdmm-ctl stats` and the `reason` metric label.
            pub const fn name(self) -> &'static str {
                match self {
                    $( Reason::$variant => $name, )*
                }
            }
        }
    };
}

reasons! {
    /// Not IPv4 or IPv6 (ARP, LLDP, ...): left to the kernel.
    NotIp = 0 => "not_ip",
    /// 802.1Q / 802.1ad tagged frame: vdmm does not look inside VLANs; left to the kernel.
    VlanTagged = 1 => "vlan_tagged",
    /// Truncated or invalid header (Ethernet, IPv4 version/IHL/length, IPv6 length, inner
    /// header of a tunnel packet that does not match the tunnel protocol).
    Malformed = 2 => "malformed",
    /// Nothing for vdmm to do (no binding, not a tunnel packet for a local endpoint):
    /// left to the kernel.
    NoMatch = 3 => "no_match",
    /// Encapsulated toward a binding's locator.
    Encap = 4 => "encap",
    /// Decapsulated and forwarded.
    Decap = 5 => "decap",
    /// Tunnel packet for a local endpoint from a source that is not a configured peer
    /// (an open decapsulator lets anyone inject packets behind it; CVE-2020-10136).
    NotPeer = 6 => "not_peer",
    /// Tunnel packet that is an IP fragment (the data plane does not reassemble).
    OuterFragment = 7 => "outer_fragment",
    /// IPv6 extension headers the data plane does not walk (too many, or a routing header
    /// with segments left) in front of the tunnel header.
    Ipv6ExtensionHeaders = 8 => "ipv6_extension_headers",
    /// RFC 6040: outer header says CE but the inner packet is not ECN-capable.
    EcnCeNotEct = 9 => "ecn_ce_not_ect",
    /// Inner TTL / hop limit would reach zero: ICMP time exceeded sent (tx) or dropped.
    TtlExpired = 10 => "ttl_expired",
    /// Encapsulated packet larger than the egress MTU: ICMP fragmentation needed /
    /// packet too big sent back (tx) or dropped.
    TooBig = 11 => "too_big",
    /// IPv4 without DF larger than the egress MTU after encapsulation: encapsulated with
    /// the outer DF clear and passed to the kernel, which fragments the outer packet.
    FragmentedByKernel = 12 => "fragmented_by_kernel",
    /// `bpf_fib_lookup` has no neighbour entry for the next hop: passed to the kernel,
    /// which resolves it and forwards the (already rewritten) packet.
    FibNoNeighbour = 13 => "fib_no_neighbour",
    /// No route, or a blackhole / unreachable / prohibit route.
    FibUnreachable = 14 => "fib_unreachable",
    /// The kernel would not forward (forwarding disabled on the interface, local
    /// destination, unsupported route type): passed to the kernel.
    FibNotForwarded = 15 => "fib_not_forwarded",
    /// `bpf_xdp_adjust_head` / `bpf_xdp_adjust_tail` refused to resize the packet.
    AdjustFailed = 16 => "adjust_failed",
    /// ICMP error needed but no local address of that family to send it from.
    NoIcmpSource = 17 => "no_icmp_source",
    /// Translated (SIIT, RFC 7915; kind `xlat4to6` / `xlat6to4`) and forwarded. Exits of
    /// translated packets the FIB cannot finish reuse the FIB reasons above with the
    /// translation kind.
    Translated = 18 => "translated",
    /// IPv4 packet without DF (or an IPv4 fragment) whose translation exceeds the lowest
    /// IPv6 MTU or the next hop's: it must be split into IPv6 fragments, which XDP cannot
    /// do. Passed to the kernel's fragmentation slow path instead
    /// (`xlat_fragmented_by_kernel`); dropped when it arrives on that slow path's
    /// `vdmmx1` and still does not fit (no loop).
    XlatNeedsFragmentation = 19 => "xlat_needs_fragmentation",
    /// The source address has no mapping (no EAMT entry, not under the RFC 6052 prefix,
    /// or an address that must not be translated) and the packet is not an ICMP error
    /// that could take the RFC 6791 address (RFC 7915 4.1, 5.1): not translated; ICMP
    /// 3/13 / ICMPv6 1/1 (administratively prohibited, 4.4 / 5.4) sent back (tx), or
    /// dropped when it must not be answered (drop).
    XlatSourceUntranslatable = 20 => "xlat_source_untranslatable",
    /// ICMP message that cannot be translated: type/code without a counterpart
    /// (RFC 7915 4.2, 5.2), a fragmented ICMP message, an error inside an error, an inner
    /// packet without mappings, an RFC 4884 length attribute longer than the message.
    /// Dropped.
    XlatIcmpUntranslatable = 21 => "xlat_icmp_untranslatable",
    /// ICMP error with a wrong checksum: its checksum would be recomputed, so it is
    /// dropped rather than laundered.
    XlatIcmpBadChecksum = 22 => "xlat_icmp_bad_checksum",
    /// IPv4 UDP with checksum zero that cannot or may not get one (a fragment, or the
    /// configuration says drop; RFC 7915 4.5): not translated; ICMP 3/13 sent back (tx,
    /// RFC 7915 4.4), or dropped (drop).
    XlatUdpZeroChecksum = 23 => "xlat_udp_zero_checksum",
    /// IPv6 extension headers the translator does not pass on: an extension header after
    /// the fragment header (RFC 7915 5.1.1), or more than four in front of the upper
    /// layer. Dropped; ICMPv6 destination unreachable, administratively prohibited (1/1,
    /// RFC 7915 5.4) sent back (tx) unless the packet must not be answered (drop).
    XlatUnsupportedHeader = 24 => "xlat_unsupported_header",
    /// Tunnel packet for a local endpoint whose inner destination has a binding itself:
    /// decapsulated and encapsulated again toward that binding's locator (the transition
    /// gateway's re-encapsulation between tunnel families, e.g. 4in4 in, 4in6 out). The
    /// kind is the outgoing tunnel's.
    Reencap = 25 => "reencap",
    /// IPv4 packet without DF (or an IPv4 fragment) whose translation would need IPv6
    /// fragmentation (`xlat_needs_fragmentation`), arriving on any interface other than
    /// the translator's fragmentation veth `vdmmx1`: passed to the kernel unchanged, which
    /// fragments it along its route into `vdmmx0` (MTU = lowest IPv6 MTU - 28); each
    /// fragment comes back on `vdmmx1` and is translated there (kind `xlat4to6`).
    XlatFragmentedByKernel = 26 => "xlat_fragmented_by_kernel",
    /// IPv4 packet arriving on the translator's fragmentation veth `vdmmx1` that the
    /// translator does not take (its destination does not map): dropped. Passed on, the
    /// kernel would route it into `vdmmx0` again and it would circle until its TTL ran
    /// out.
    XlatFragPathUntranslated = 27 => "xlat_frag_path_untranslated",
    /// IPv4 packet with an unexpired loose or strict source route option (RFC 7915 4.1):
    /// not translated; ICMP destination unreachable, source route failed (3/5) sent back
    /// (tx), or dropped when it must not be answered (drop).
    XlatSourceRoute = 28 => "xlat_source_route",
    /// IPv6 packet with a routing header whose Segments Left is not zero (RFC 7915 5.1):
    /// not translated; ICMPv6 parameter problem 4/0 pointing at the Segments Left field
    /// sent back (tx), or dropped when it must not be answered (drop).
    XlatSegmentsLeft = 29 => "xlat_segments_left",
    /// vAP program (client-facing interface): a frame from a MAC that has no vAP on this
    /// AP host. Reported to the agent (ring buffer, at most once a second per MAC) and
    /// passed to the kernel.
    VapUnknownClient = 30 => "vap_unknown_client",
    /// ARP request from a client for any address but its own, answered with the vAP MAC
    /// (`tx`).
    VapArpReply = 31 => "vap_arp_reply",
    /// IPv6 neighbour solicitation from a client for any address but its own, answered
    /// with a neighbour advertisement carrying the vAP MAC (`tx`).
    VapNdReply = 32 => "vap_nd_reply",
    /// A client sent from an address that is not its own (IPv4 or ARP sender, IPv6
    /// source): dropped.
    VapSpoofed = 33 => "vap_spoofed",
    /// Sent by a client to its vAP: encapsulated toward the client's home anchor (the kind
    /// is the tunnel's). The exits of this path that the FIB or the packet decide reuse
    /// the tunnel reasons (`too_big`, `ttl_expired`, `fib_*`).
    VapUplink = 34 => "vap_uplink",
    /// Sent by a client to its vAP with local breakout: routed by the AP host itself
    /// (`bpf_fib_lookup`) and redirected.
    VapBreakout = 35 => "vap_breakout",
    /// Packet for a vAP's client (also after decapsulation): source MAC set to the vAP
    /// MAC, destination to the client's, redirected to the client's interface.
    VapDeliver = 36 => "vap_deliver",
    /// Packet for a vAP's client while the vAP forwards (handover grace period):
    /// encapsulated toward the AP host the client moved to.
    VapForward = 37 => "vap_forward",
    /// Multicast or broadcast frame from a client (other than ARP and neighbour
    /// solicitations): passed to the kernel.
    VapMulticast = 38 => "vap_multicast",
    /// Frame from a client that is neither IP nor ARP: passed to the kernel.
    VapNotIp = 39 => "vap_not_ip",
    /// Unicast frame from a client to a MAC other than its vAP's, or ARP / ICMPv6
    /// neighbour discovery the vAP does not answer (replies, probes for the client's own
    /// address): passed to the kernel.
    VapPassed = 40 => "vap_passed",
    /// IPv6 packet to the vAP with a link-local or unspecified source or a link-local
    /// destination (not routable): dropped.
    VapLinkLocal = 41 => "vap_link_local",
}

impl Reason {
    /// Number of reasons (the counter array is sized by it).
    pub const COUNT: u32 = Reason::ALL.len() as u32;
}

/// Number of entries in the counter array.
pub const COUNTER_ENTRIES: u32 = Reason::COUNT * TunnelKind::COUNT * Action::COUNT;

/// Index of the counter for one (reason, kind, action).
#[inline(always)]
pub const fn counter_index(reason: Reason, kind: TunnelKind, action: Action) -> u32 {
    ((reason as u32) * TunnelKind::COUNT + kind as u32) * Action::COUNT + action as u32
}

/// The (reason, kind, action) of a counter index, for reading the array back.
pub fn counter_labels(index: u32) -> Option<(Reason, TunnelKind, Action)> {
    let action = *Action::ALL.get((index % Action::COUNT) as usize)?;
    let rest = index / Action::COUNT;
    let kind = *TunnelKind::ALL.get((rest % TunnelKind::COUNT) as usize)?;
    let reason = *Reason::ALL.get((rest / TunnelKind::COUNT) as usize)?;
    Some((reason, kind, action))
}

/// One counter: packets and bytes (the frame length the program saw on entry).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterValue {
    pub packets: u64,
    pub bytes: u64,
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for CounterValue {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_indexed_in_order() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as u32, i as u32, "{}", r.name());
        }
    }

    #[test]
    fn counter_index_round_trips() {
        for r in Reason::ALL {
            for k in TunnelKind::ALL {
                for a in Action::ALL {
                    let i = counter_index(*r, k, a);
                    assert!(i < COUNTER_ENTRIES);
                    assert_eq!(counter_labels(i), Some((*r, k, a)));
                }
            }
        }
        assert_eq!(counter_labels(COUNTER_ENTRIES), None);
    }

    #[test]
    fn kinds_are_indexed_in_order_with_unique_names() {
        assert_eq!(TunnelKind::ALL.len() as u32, TunnelKind::COUNT);
        for (i, k) in TunnelKind::ALL.iter().enumerate() {
            assert_eq!(*k as u32, i as u32, "{}", k.name());
            for other in &TunnelKind::ALL[..i] {
                assert_ne!(other.name(), k.name());
            }
        }
        assert_eq!(TunnelKind::Xlat4to6.name(), "xlat4to6");
        assert_eq!(TunnelKind::Xlat6to4.name(), "xlat6to4");
    }

    #[test]
    fn reason_names_are_unique() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            for other in &Reason::ALL[..i] {
                assert_ne!(other.name(), r.name());
            }
        }
    }
}
