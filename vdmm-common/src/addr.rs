//! One address type for both families in map keys: IPv6 as is, IPv4 as an IPv4-mapped
//! IPv6 address (`::ffff:a.b.c.d`, RFC 4291 2.5.5.2), so one hash map holds both.

/// An IPv4 or IPv6 address as stored in the endpoint and peer maps and in bindings.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct IpAddrKey {
    /// Network byte order; IPv4 is `[0; 10] ++ [0xff, 0xff] ++ a.b.c.d`.
    pub addr: [u8; 16],
}

const V4_MAPPED_PREFIX: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

impl IpAddrKey {
    /// The key of an IPv4 address given in network byte order.
    #[inline(always)]
    pub const fn from_v4(octets: [u8; 4]) -> Self {
        let mut addr = [0u8; 16];
        addr[10] = 0xff;
        addr[11] = 0xff;
        addr[12] = octets[0];
        addr[13] = octets[1];
        addr[14] = octets[2];
        addr[15] = octets[3];
        Self { addr }
    }

    /// The key of an IPv6 address given in network byte order.
    #[inline(always)]
    pub const fn from_v6(octets: [u8; 16]) -> Self {
        Self { addr: octets }
    }

    /// True when this key holds an IPv4 address.
    #[inline(always)]
    pub fn is_v4(&self) -> bool {
        self.addr[..12] == V4_MAPPED_PREFIX
    }

    /// The IPv4 octets, when this key holds an IPv4 address.
    #[inline(always)]
    pub fn v4(&self) -> Option<[u8; 4]> {
        if self.is_v4() {
            Some([self.addr[12], self.addr[13], self.addr[14], self.addr[15]])
        } else {
            None
        }
    }

    /// True for the all-zero key, which the data plane reads as "not set".
    #[inline(always)]
    pub fn is_unset(&self) -> bool {
        self.addr == [0u8; 16]
    }
}

#[cfg(feature = "user")]
mod user {
    extern crate std;
    use super::IpAddrKey;
    use std::net::IpAddr;

    impl From<IpAddr> for IpAddrKey {
        fn from(ip: IpAddr) -> Self {
            match ip {
                IpAddr::V4(v4) => IpAddrKey::from_v4(v4.octets()),
                IpAddr::V6(v6) => IpAddrKey::from_v6(v6.octets()),
            }
        }
    }

    impl From<IpAddrKey> for IpAddr {
        fn from(key: IpAddrKey) -> Self {
            match key.v4() {
                Some(o) => IpAddr::from(o),
                None => IpAddr::from(key.addr),
            }
        }
    }

    unsafe impl aya::Pod for IpAddrKey {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_round_trip() {
        let k = IpAddrKey::from_v4([192, 0, 2, 1]);
        assert!(k.is_v4());
        assert_eq!(k.v4(), Some([192, 0, 2, 1]));
        let v6 = IpAddrKey::from_v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert!(!v6.is_v4());
        assert_eq!(v6.v4(), None);
        assert!(IpAddrKey::default().is_unset());
    }
}
