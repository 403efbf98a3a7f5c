//! Virtual access points (vAPs): the per-client state of an AP host. A vAP is keyed by its
//! client's MAC and holds the vAP MAC the client uses as its gateway's MAC, the client's
//! addresses, the home anchor its traffic is tunnelled to, the AP host's interface the
//! client is behind, and what to do with traffic for the client: deliver it there
//! ([`VAP_FORWARD`] clear) or tunnel it to another AP host ([`VAP_FORWARD`] set, the
//! grace period of a handover).
//!
//! MAC addresses are held as the low 48 bits of a `u64`, first byte most significant
//! ([`mac_key`]): the data plane reads a MAC from a frame into one register that way.

use crate::{Binding, CounterValue, IpAddrKey};

/// A MAC address as the low 48 bits of a `u64` (the key of `VDMM_VAPS`).
pub type MacKey = u64;

/// The [`MacKey`] of a MAC address.
#[inline(always)]
pub const fn mac_key(b: [u8; 6]) -> MacKey {
    ((b[0] as u64) << 40)
        | ((b[1] as u64) << 32)
        | ((b[2] as u64) << 24)
        | ((b[3] as u64) << 16)
        | ((b[4] as u64) << 8)
        | b[5] as u64
}

/// The bytes of a [`MacKey`].
pub const fn mac_bytes(k: MacKey) -> [u8; 6] {
    [
        (k >> 40) as u8,
        (k >> 32) as u8,
        (k >> 24) as u8,
        (k >> 16) as u8,
        (k >> 8) as u8,
        k as u8,
    ]
}

/// The locally administered, unicast vAP MAC for a client: `x2:` prefix byte (the
/// locally administered bit set, the group bit clear) followed by five bytes of a hash of
/// the client MAC and `salt` (the caller changes the salt when the result is taken).
pub const fn vap_mac_for(client: MacKey, salt: u32) -> MacKey {
    // FNV-1a over the client MAC and the salt: cheap and well spread.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < 10 {
        let byte = if i < 6 {
            (client >> (40 - 8 * i)) as u8
        } else {
            (salt >> (8 * (i - 6))) as u8
        };
        h ^= byte as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    (0x02u64 << 40) | (h & 0x00ff_ffff_ffff)
}

/// True for a locally administered unicast MAC (what a vAP MAC must be).
pub const fn is_local_unicast(mac: MacKey) -> bool {
    let first = (mac >> 40) as u8;
    first & 0x02 != 0 && first & 0x01 == 0
}

/// True for a group (multicast or broadcast) MAC.
#[inline(always)]
pub const fn is_group(mac: MacKey) -> bool {
    (mac >> 40) as u8 & 0x01 != 0
}

/// [`Vap::flags`]: the client has the IPv4 address [`Vap::ipv4`].
pub const VAP_HAS_V4: u32 = 1;
/// [`Vap::flags`]: the client has the IPv6 address [`Vap::ipv6`].
pub const VAP_HAS_V6: u32 = 2;
/// [`Vap::flags`]: the client's traffic leaves through the AP host's own routes (local
/// breakout) instead of the tunnel to its anchor.
pub const VAP_BREAKOUT: u32 = 4;
/// [`Vap::flags`]: packets for the client are tunnelled to [`Vap::forward`] (another AP
/// host, during a handover's grace period) instead of delivered here.
pub const VAP_FORWARD: u32 = 8;

/// The value of `VDMM_VAPS` (key: the client's [`MacKey`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vap {
    pub client_mac: MacKey,
    /// The MAC the vAP answers ARP and neighbour solicitations with, and sends from.
    pub vap_mac: MacKey,
    /// MAC of the AP host's client-facing interface: frames from the client handed to the
    /// kernel get it as their destination, so the kernel takes them as its own.
    pub host_mac: MacKey,
    /// The AP host's client-facing interface (where packets for the client go).
    pub ifindex: u32,
    /// `VAP_*` flags.
    pub flags: u32,
    /// The client's IPv4 address (valid with [`VAP_HAS_V4`]).
    pub ipv4: [u8; 4],
    /// Index of the vAP's entry in `VDMM_VAP_STATS`.
    pub slot: u32,
    /// The client's IPv6 address (valid with [`VAP_HAS_V6`]).
    pub ipv6: [u8; 16],
    /// Uplink tunnel: the home anchor's locator and the local endpoint to send from.
    pub anchor: Binding,
    /// Where packets for the client are tunnelled with [`VAP_FORWARD`].
    pub forward: Binding,
}

impl Vap {
    #[inline(always)]
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }
}

/// The value of `VDMM_VAP_ADDRS` (key: the client address as an [`IpAddrKey`]): whose
/// address it is.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VapAddr {
    pub client_mac: MacKey,
}

/// Per-vAP counters (`VDMM_VAP_STATS`, per CPU, indexed by [`Vap::slot`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VapCounters {
    /// Every frame received from the client.
    pub from_client: CounterValue,
    /// Sent on toward the network (tunnel to the anchor, or local breakout).
    pub uplink: CounterValue,
    /// Dropped: the client sent from an address that is not its own.
    pub spoofed: CounterValue,
    /// ARP requests and neighbour solicitations answered with the vAP MAC.
    pub replies: CounterValue,
    /// Packets for the client delivered to it.
    pub delivered: CounterValue,
    /// Packets for the client tunnelled to another AP host ([`VAP_FORWARD`]).
    pub forwarded: CounterValue,
}

impl VapCounters {
    /// Adds `other` field by field (summing CPUs).
    pub fn add(&mut self, o: &VapCounters) {
        for (a, b) in [
            (&mut self.from_client, &o.from_client),
            (&mut self.uplink, &o.uplink),
            (&mut self.spoofed, &o.spoofed),
            (&mut self.replies, &o.replies),
            (&mut self.delivered, &o.delivered),
            (&mut self.forwarded, &o.forwarded),
        ] {
            a.packets = a.packets.wrapping_add(b.packets);
            a.bytes = a.bytes.wrapping_add(b.bytes);
        }
    }
}

/// Which [`VapCounters`] field a packet is counted in (the data plane's index into the
/// struct, in units of one `CounterValue`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VapCounter {
    FromClient = 0,
    Uplink = 1,
    Spoofed = 2,
    Replies = 3,
    Delivered = 4,
    Forwarded = 5,
}

/// Slots per CPU of the data plane's first-level cache of vAPs by client MAC
/// (`VDMM_VAP_L1`, see [`crate::maps::VAP_L1`]); a power of two.
pub const VAP_L1_SLOTS: u32 = 256;
/// Slots per CPU of the first-level cache by client address (`VDMM_VAP_ADDR_L1`); a power
/// of two, larger, as it also remembers addresses without a vAP.
pub const VAP_ADDR_L1_SLOTS: u32 = 1024;

/// A slot of `VDMM_VAP_L1`: a vAP as the data plane cached it on one CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VapMacSlot {
    pub client: MacKey,
    /// The vAP generation (`VDMM_VAP_GEN`) + 1 when filled; 0 in a slot never filled.
    pub stamp: u64,
    pub vap: Vap,
}

/// A slot of `VDMM_VAP_ADDR_L1`: whose address it is, as the data plane cached it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VapAddrSlot {
    /// The [`IpAddrKey`] as four native-order words.
    pub addr: [u32; 4],
    /// As in [`VapMacSlot`].
    pub stamp: u64,
    /// 1 when the address has a vAP (`vap`), 0 when it has none.
    pub found: u64,
    pub vap: Vap,
}

/// Slot index in a first-level cache of `slots` slots (a power of two) of a key mixed
/// into one word (multiplicative hashing, top bits).
#[inline(always)]
pub const fn cache_slot(mix: u32, slots: u32) -> u32 {
    mix.wrapping_mul(0x9e37_79b1) >> (32 - slots.trailing_zeros())
}

/// The `VDMM_VAP_L1` slot of a client MAC.
#[inline(always)]
pub const fn mac_slot(client: MacKey) -> u32 {
    cache_slot((client as u32) ^ (client >> 32) as u32, VAP_L1_SLOTS)
}

/// The `VDMM_VAP_ADDR_L1` slot of an address given as the four native-order words of its
/// [`IpAddrKey`].
#[inline(always)]
pub const fn addr_slot(w: [u32; 4]) -> u32 {
    cache_slot(w[0] ^ w[1] ^ w[2] ^ w[3], VAP_ADDR_L1_SLOTS)
}

/// [`VapEvent::kind`]: a frame from a MAC without a vAP arrived on a client-facing
/// interface.
pub const VAP_EVENT_UNKNOWN_CLIENT: u32 = 1;

/// A ring-buffer record (`VDMM_VAP_EVENTS`): what the data plane reports to the agent.
/// Reports of one MAC are at most one per [`VAP_REPORT_INTERVAL_NS`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VapEvent {
    /// `bpf_ktime_get_ns` of the frame (monotonic clock).
    pub time_ns: u64,
    pub client_mac: MacKey,
    /// `VAP_EVENT_*`.
    pub kind: u32,
    /// Interface the frame arrived on.
    pub ifindex: u32,
    /// The frame's ethertype.
    pub ethertype: u32,
    pub _reserved: u32,
    /// The sender's IP address (IPv4 or ARP sender, IPv6 source), unset when none.
    pub addr: IpAddrKey,
}

/// Least time between two reports of one unknown MAC.
pub const VAP_REPORT_INTERVAL_NS: u64 = 1_000_000_000;

#[cfg(feature = "user")]
mod user {
    unsafe impl aya::Pod for super::Vap {}
    unsafe impl aya::Pod for super::VapAddr {}
    unsafe impl aya::Pod for super::VapCounters {}
    unsafe impl aya::Pod for super::VapEvent {}
    unsafe impl aya::Pod for super::VapMacSlot {}
    unsafe impl aya::Pod for super::VapAddrSlot {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_keys_round_trip() {
        let m = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
        assert_eq!(mac_key(m), 0x0211_2233_4455);
        assert_eq!(mac_bytes(mac_key(m)), m);
        assert!(is_group(mac_key([0xff; 6])));
        assert!(is_group(mac_key([0x33, 0x33, 0, 0, 0, 1])));
        assert!(!is_group(mac_key(m)));
    }

    #[test]
    fn vap_macs_are_local_unicast_and_depend_on_client_and_salt() {
        let a = vap_mac_for(0x0011_2233_4455, 0);
        let b = vap_mac_for(0x0011_2233_4456, 0);
        let c = vap_mac_for(0x0011_2233_4455, 1);
        for m in [a, b, c] {
            assert!(is_local_unicast(m), "{m:x}");
            assert_eq!(m >> 48, 0);
        }
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, vap_mac_for(0x0011_2233_4455, 0));
        assert!(!is_local_unicast(0x0011_2233_4455));
    }

    #[test]
    fn vap_layout_is_fixed() {
        assert_eq!(core::mem::size_of::<Vap>(), 136);
        assert_eq!(core::mem::size_of::<VapEvent>(), 48);
        assert_eq!(core::mem::size_of::<VapMacSlot>(), 152);
        assert_eq!(core::mem::size_of::<VapAddrSlot>(), 168);
        assert_eq!(
            core::mem::size_of::<VapCounters>(),
            6 * core::mem::size_of::<CounterValue>()
        );
    }
}
