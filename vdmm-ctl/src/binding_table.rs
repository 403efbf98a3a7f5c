//! The binding table as the data plane stores it: host bindings (/32, /128) in the
//! `VDMM_HOSTS` hash map, shorter home prefixes in the `VDMM_BINDINGS4/6` LPM tries (see
//! the data plane's `binding.rs`: the hash is tried first). [`crate::maps::Dataplane`]
//! and the agent's reconciler both read and write bindings through this one type, which
//! increments `VDMM_XLAT_GEN` after every write: the data plane's first level
//! (`mapping_cache`) remembers which addresses have no binding.

use std::{
    net::IpAddr,
    os::fd::{AsFd, AsRawFd},
};

use aya::maps::{
    HashMap, IterableMap, MapData, MapError,
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
    /// `VDMM_XLAT_GEN` (see `crate::cache_gen`).
    xlat_gen: MapData,
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
            xlat_gen: crate::cache_gen::open(pins, names::XLAT_GEN)?,
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

    /// After a write, whether it succeeded or not (a failed one may have changed part):
    /// the data plane's cached answers must not outlive the table they came from.
    fn changed<T>(&self, r: std::result::Result<T, MapError>) -> std::result::Result<T, MapError> {
        match crate::cache_gen::increment(&self.xlat_gen) {
            Ok(_) => r,
            Err(e) => r.and(Err(MapError::IoError(e))),
        }
    }

    /// Stores the binding of `home` (`flags`: `BPF_ANY`, `BPF_NOEXIST`, ...).
    pub fn insert(
        &mut self,
        home: &Prefix,
        value: Binding,
        flags: u64,
    ) -> std::result::Result<(), MapError> {
        let r = self.insert_one(home, value, flags);
        self.changed(r)
    }

    /// [`Self::insert`] without the generation increment.
    fn insert_one(
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

    /// Stores many bindings (`BPF_ANY`), one result per item, in order. Host bindings go
    /// in `BPF_MAP_UPDATE_BATCH` calls (one syscall per few thousand instead of one
    /// each); when the kernel refuses a batch, the rest of it is written one by one, so
    /// every failure is reported against its own binding.
    pub fn insert_many(
        &mut self,
        items: &[(Prefix, Binding)],
    ) -> Vec<std::result::Result<(), MapError>> {
        let mut results: Vec<_> = items.iter().map(|_| Ok(())).collect();
        let mut hosts = Vec::new();
        for (i, (home, value)) in items.iter().enumerate() {
            if is_host(home) {
                hosts.push(i);
            } else {
                results[i] = self.insert_one(home, *value, 0);
            }
        }
        for chunk in hosts.chunks(UPDATE_BATCH) {
            let keys: Vec<IpAddrKey> = chunk
                .iter()
                .map(|&i| IpAddrKey::from(items[i].0.addr()))
                .collect();
            let values: Vec<Binding> = chunk.iter().map(|&i| items[i].1).collect();
            // aya has no batch calls: the raw syscall on the hash's own map fd.
            let done =
                update_batch(IterableMap::map(&self.hosts), &keys, &values).unwrap_or_else(|n| n);
            for &i in &chunk[done..] {
                results[i] = self.insert_one(&items[i].0, items[i].1, 0);
            }
        }
        // One increment for the whole batch.
        if let Err(e) = crate::cache_gen::increment(&self.xlat_gen) {
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(MapError::IoError(std::io::Error::new(
                    e.kind(),
                    e.to_string(),
                )));
            }
        }
        results
    }

    /// Removes the binding of exactly `home` (ENOENT when there is none).
    pub fn remove(&mut self, home: &Prefix) -> std::result::Result<(), MapError> {
        let r = self.remove_one(home);
        self.changed(r)
    }

    fn remove_one(&mut self, home: &Prefix) -> std::result::Result<(), MapError> {
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

/// Host bindings per `BPF_MAP_UPDATE_BATCH` call.
const UPDATE_BATCH: usize = 4096;

/// `BPF_MAP_UPDATE_BATCH` of `keys` -> `values` into `map`; `Err(n)` when the kernel
/// stopped after `n` elements (an old kernel, a full map, ...).
fn update_batch(
    map: &MapData,
    keys: &[IpAddrKey],
    values: &[Binding],
) -> std::result::Result<usize, usize> {
    use aya_obj::generated::{bpf_attr, bpf_cmd};
    assert_eq!(keys.len(), values.len());
    // SAFETY: bpf_attr is plain integers; all-zero is its "unset" value.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    attr.batch.keys = keys.as_ptr() as u64;
    attr.batch.values = values.as_ptr() as u64;
    attr.batch.count = keys.len() as u32;
    attr.batch.map_fd = map.fd().as_fd().as_raw_fd() as u32;
    // SAFETY: the kernel reads `count` keys and values (repr(C), the map's key and value
    // sizes) from buffers that outlive the call and writes the count done back to attr.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            bpf_cmd::BPF_MAP_UPDATE_BATCH as libc::c_long,
            &mut attr as *mut bpf_attr,
            std::mem::size_of::<bpf_attr>() as libc::c_uint,
        )
    };
    if r == 0 {
        return Ok(keys.len());
    }
    // SAFETY: reading the integer the kernel wrote into the same member.
    Err((unsafe { attr.batch.count } as usize).min(keys.len()))
}
