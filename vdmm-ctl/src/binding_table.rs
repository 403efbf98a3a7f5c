//! The binding table as the data plane stores it: host bindings (/32, /128) in the
//! `VDMM_HOSTS` hash map, shorter home prefixes in the `VDMM_BINDINGS4/6` LPM tries (see
//! the data plane's `binding.rs`: the hash is tried first). [`crate::maps::Dataplane`]
//! and the agent's reconciler both read and write bindings through this one type.

use std::net::IpAddr;

use aya::maps::{
    HashMap, MapData, MapError,
    lpm_trie::{Key, LpmTrie},
};
use vdmm_common::{Binding, IpAddrKey, maps as names};

use crate::{
    addr::Prefix,
    error::{Error, Result},
    maps::{errno, open_map},
    pin::PinDir,
};

pub struct BindingTable {
    hosts: HashMap<MapData, IpAddrKey, Binding>,
    prefixes4: LpmTrie<MapData, [u8; 4], Binding>,
    prefixes6: LpmTrie<MapData, [u8; 16], Binding>,
}

/// Whether `home` is a single address (kept in the host hash).
pub fn is_host(home: &Prefix) -> bool {
    u32::from(home.prefix_len()) == if home.addr().is_ipv4() { 32 } else { 128 }
}

impl BindingTable {
    pub fn open(pins: &PinDir) -> Result<Self> {
        Ok(Self {
            hosts: open_map(pins, names::HOST_BINDINGS)?,
            prefixes4: open_map(pins, names::BINDINGS_V4)?,
            prefixes6: open_map(pins, names::BINDINGS_V6)?,
        })
    }

    /// Every binding, in no particular order.
    pub fn entries(&self) -> Result<Vec<(Prefix, Binding)>> {
        let mut v = Vec::new();
        for item in self.hosts.iter() {
            let (k, b) = item.map_err(|e| Error::ebpf("cannot read the host bindings", e))?;
            let addr = IpAddr::from(k);
            let len = if addr.is_ipv4() { 32 } else { 128 };
            v.push((Prefix::new(addr, len)?, b));
        }
        for item in self.prefixes4.iter() {
            let (k, b) = item.map_err(|e| Error::ebpf("cannot read the IPv4 bindings", e))?;
            v.push((Prefix::new(IpAddr::from(k.data()), k.prefix_len())?, b));
        }
        for item in self.prefixes6.iter() {
            let (k, b) = item.map_err(|e| Error::ebpf("cannot read the IPv6 bindings", e))?;
            v.push((Prefix::new(IpAddr::from(k.data()), k.prefix_len())?, b));
        }
        Ok(v)
    }

    /// Stores the binding of `home` (`flags`: `BPF_ANY`, `BPF_NOEXIST`, ...).
    pub fn insert(
        &mut self,
        home: &Prefix,
        value: Binding,
        flags: u64,
    ) -> std::result::Result<(), MapError> {
        if is_host(home) {
            return self
                .hosts
                .insert(IpAddrKey::from(home.addr()), value, flags);
        }
        let len = u32::from(home.prefix_len());
        match home.addr() {
            IpAddr::V4(a) => self
                .prefixes4
                .insert(&Key::new(len, a.octets()), value, flags),
            IpAddr::V6(a) => self
                .prefixes6
                .insert(&Key::new(len, a.octets()), value, flags),
        }
    }

    /// Removes the binding of exactly `home` (ENOENT when there is none).
    pub fn remove(&mut self, home: &Prefix) -> std::result::Result<(), MapError> {
        if is_host(home) {
            match self.hosts.remove(&IpAddrKey::from(home.addr())) {
                // A host binding written into a trie by a build before the host hash.
                Err(e) if errno(&e) == Some(libc::ENOENT) => {}
                r => return r,
            }
        }
        let len = u32::from(home.prefix_len());
        match home.addr() {
            IpAddr::V4(a) => self.prefixes4.remove(&Key::new(len, a.octets())),
            IpAddr::V6(a) => self.prefixes6.remove(&Key::new(len, a.octets())),
        }
    }
}
