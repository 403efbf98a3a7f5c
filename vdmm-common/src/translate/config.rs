//! Host-side translator configuration (what `vdmm-ctl natpt ...` will hold), with the
//! address mapping of RFC 7915 section 6 built from the pure `no_std` pieces.

extern crate alloc;
use alloc::vec::Vec;

use super::eamt::{self, EamEntry, MappedBy};
use super::rfc6052::{self, Prefix6};

/// IPv4 UDP datagrams with checksum zero (RFC 7915 section 4.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UdpZeroChecksum {
    /// Compute the checksum (unfragmented datagrams only; a first fragment is dropped
    /// anyway, the translator never sees the whole datagram).
    #[default]
    Compute,
    /// Drop and count.
    Drop,
}

/// Configuration of the reference translator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranslatorConfig {
    /// RFC 6052 translation prefix ("pool6"): 32, 40, 48, 56, 64 or 96 bits.
    pub pool6: Option<Prefix6>,
    /// RFC 7757 explicit address mappings.
    pub eamt: Vec<EamEntry>,
    /// RFC 6791: IPv4 source of translated ICMPv6 errors whose source has no mapping
    /// (when unset, `icmp_source_v4` is used; when both are unset they are dropped).
    pub rfc6791_v4: Option<[u8; 4]>,
    /// The same for ICMPv4 errors translated to ICMPv6 whose IPv4 source has no mapping
    /// (only possible without pool6; falls back to `icmp_source_v6`).
    pub rfc6791_v6: Option<[u8; 16]>,
    /// RFC 7915 section 4 ("lowest-ipv6-mtu"): IPv4 packets without DF are fragmented so
    /// that the IPv6 packets are no larger than this (1280 unless the operator knows
    /// better).
    pub lowest_ipv6_mtu: u32,
    /// RFC 7915 section 4.5.
    pub udp_zero_checksum: UdpZeroChecksum,
    /// RFC 7915 sections 4.1, 5.1: when true the traffic class / TOS is set to zero
    /// instead of copied.
    pub reset_traffic_class: bool,
    /// MTU of the IPv6 next hop, when known (the data plane gets it from the FIB).
    pub mtu_v6_nexthop: Option<u32>,
    /// MTU of the IPv4 next hop, when known.
    pub mtu_v4_nexthop: Option<u32>,
    /// Source of ICMPv4 errors the translator itself sends (time exceeded etc.); when
    /// unset the reference describes the error but builds no packet.
    pub icmp_source_v4: Option<[u8; 4]>,
    /// Source of ICMPv6 errors the translator itself sends.
    pub icmp_source_v6: Option<[u8; 16]>,
}

impl Default for TranslatorConfig {
    fn default() -> Self {
        Self {
            pool6: None,
            eamt: Vec::new(),
            rfc6791_v4: None,
            rfc6791_v6: None,
            lowest_ipv6_mtu: 1280,
            udp_zero_checksum: UdpZeroChecksum::Compute,
            reset_traffic_class: false,
            mtu_v6_nexthop: None,
            mtu_v4_nexthop: None,
            icmp_source_v4: None,
            icmp_source_v6: None,
        }
    }
}

/// A configuration error (one line, names the problem).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub &'static str);

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.0)
    }
}

impl TranslatorConfig {
    /// Sets the RFC 6052 prefix; the length must be 32, 40, 48, 56, 64 or 96.
    pub fn set_pool6(&mut self, prefix: [u8; 16], len: u8) -> Result<(), ConfigError> {
        self.pool6 = Some(Prefix6::new(prefix, len).ok_or(ConfigError(
            "RFC 6052 prefix length must be 32, 40, 48, 56, 64 or 96 (and bits 64-71 of a /96 zero)",
        ))?);
        Ok(())
    }

    /// Adds an EAMT entry (RFC 7757 section 3.2: same number of suffix bits on both
    /// sides); an entry whose IPv4 or IPv6 prefix is already in the table is refused.
    pub fn add_eam(
        &mut self,
        v6: [u8; 16],
        v6_len: u8,
        v4: [u8; 4],
        v4_len: u8,
    ) -> Result<(), ConfigError> {
        let e = EamEntry::new(v6, v6_len, v4, v4_len).ok_or(ConfigError(
            "EAMT entry: IPv4 and IPv6 prefixes must have the same number of suffix bits",
        ))?;
        if self
            .eamt
            .iter()
            .any(|x| (x.v4, x.v4_len) == (e.v4, e.v4_len) || (x.v6, x.v6_len) == (e.v6, e.v6_len))
        {
            return Err(ConfigError("EAMT entry: prefix already mapped"));
        }
        self.eamt.push(e);
        Ok(())
    }

    /// The configuration the siit-pktgen conformance vectors assume (their README):
    /// pool6 2001:db8:100::/40; EAMT 2001:db8:3::/120 <-> 1.0.0.0/24 and
    /// 2001:db8:2::/120 <-> 10.0.0.0/24; RFC 6791 203.0.113.8; lowest IPv6 MTU 1280.
    pub fn conformance() -> Self {
        let mut c = Self::default();
        let mut p = [0u8; 16];
        p[..5].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0x01]);
        c.set_pool6(p, 40).expect("valid prefix");
        let mut e3 = [0u8; 16];
        e3[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0x00, 0x03]);
        c.add_eam(e3, 120, [1, 0, 0, 0], 24).expect("valid entry");
        let mut e2 = [0u8; 16];
        e2[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0x00, 0x02]);
        c.add_eam(e2, 120, [10, 0, 0, 0], 24).expect("valid entry");
        c.rfc6791_v4 = Some([203, 0, 113, 8]);
        c.lowest_ipv6_mtu = 1280;
        c
    }

    /// RFC 7757 section 3.3: the EAMT entry with the longest IPv4 prefix covering `a`.
    pub fn eam_for_v4(&self, a: &[u8; 4]) -> Option<&EamEntry> {
        self.eamt
            .iter()
            .filter(|e| e.matches_v4(a))
            .max_by_key(|e| e.v4_len)
    }

    /// RFC 7757 section 3.3: the EAMT entry with the longest IPv6 prefix covering `a`.
    pub fn eam_for_v6(&self, a: &[u8; 16]) -> Option<&EamEntry> {
        self.eamt
            .iter()
            .filter(|e| e.matches_v6(a))
            .max_by_key(|e| e.v6_len)
    }

    /// RFC 7915 section 6 / RFC 7757: IPv4 address to IPv6 (EAMT, then RFC 6052).
    pub fn map_4to6(&self, a: &[u8; 4]) -> Option<([u8; 16], MappedBy)> {
        eamt::address_4to6(self.eam_for_v4(a), self.pool6.as_ref(), a)
    }

    /// RFC 7915 4.1 ("when translating ICMPv4 Error Messages into ICMPv6, the 'illegal'
    /// source address will be translated for the purpose of trouble shooting"): the
    /// source of an ICMPv4 error, through the EAMT, else embedded under the RFC 6052
    /// prefix whatever the address (0.0.0.0, 127.0.0.1, ...), as Jool does.
    pub fn map_4to6_icmp_source(&self, a: &[u8; 4]) -> Option<([u8; 16], MappedBy)> {
        if let Some(m) = eamt::address_4to6(self.eam_for_v4(a), None, a) {
            return Some(m);
        }
        let p = self.pool6.as_ref()?;
        Some((rfc6052::embed(p, *a)?, MappedBy::Rfc6052))
    }

    /// RFC 7915 section 6 / RFC 7757: IPv6 address to IPv4 (EAMT, then RFC 6052).
    pub fn map_6to4(&self, a: &[u8; 16]) -> Option<([u8; 4], MappedBy)> {
        eamt::address_6to4(self.eam_for_v6(a), self.pool6.as_ref(), a)
    }

    pub(crate) fn nexthop6(&self) -> u32 {
        self.mtu_v6_nexthop.unwrap_or(u32::MAX)
    }

    pub(crate) fn nexthop4(&self) -> u32 {
        self.mtu_v4_nexthop.unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;

    fn v6(s: &str) -> [u8; 16] {
        s.parse::<std::net::Ipv6Addr>().unwrap().octets()
    }

    #[test]
    fn conformance_config_maps_the_readme_hosts() {
        let c = TranslatorConfig::conformance();
        assert_eq!(
            c.map_4to6(&[192, 0, 2, 33]),
            Some((v6("2001:db8:1c0:2:21::"), MappedBy::Rfc6052))
        );
        assert_eq!(
            c.map_6to4(&v6("2001:db8:1c6:3364:2::")),
            Some(([198, 51, 100, 2], MappedBy::Rfc6052))
        );
        assert_eq!(
            c.map_4to6(&[1, 0, 0, 4]),
            Some((v6("2001:db8:3::4"), MappedBy::Eam))
        );
        assert_eq!(
            c.map_6to4(&v6("2001:db8:2::9")),
            Some(([10, 0, 0, 9], MappedBy::Eam))
        );
        assert_eq!(c.map_6to4(&v6("2001:db8:4::9")), None);
    }

    #[test]
    fn longest_eam_wins() {
        let mut c = TranslatorConfig::default();
        c.add_eam(v6("2001:db8:2::"), 120, [10, 0, 0, 0], 24)
            .unwrap();
        c.add_eam(v6("2001:db8:9::"), 128, [10, 0, 0, 5], 32)
            .unwrap();
        assert_eq!(c.map_4to6(&[10, 0, 0, 5]).unwrap().0, v6("2001:db8:9::"));
        assert_eq!(c.map_4to6(&[10, 0, 0, 6]).unwrap().0, v6("2001:db8:2::6"));
        assert!(
            c.add_eam(v6("2001:db8:7::"), 120, [10, 0, 0, 0], 24)
                .is_err()
        );
        assert!(
            c.add_eam(v6("2001:db8:7::"), 112, [10, 0, 0, 0], 24)
                .is_err()
        );
        assert!(c.set_pool6([0; 16], 44).is_err());
    }
}
