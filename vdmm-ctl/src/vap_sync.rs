//! Writing [`VapRecord`]s into the vAP maps as they are, for the agent: where
//! [`Dataplane::add_vap`] checks a request against the maps and refuses, these make the
//! maps say what the agent's desired state says (it was checked as a whole already).
//!
//! A vAP that exists is rewritten in place (one map update: no gap in its traffic, its
//! counters and slot kept); a new one gets the lowest free slot and zeroed counters. The
//! address table (`VDMM_VAP_ADDRS`) is written after the vAP, so an address is never
//! delivered to a vAP that is not there yet.

use std::{collections::BTreeMap, net::IpAddr};

use vdmm_common::{IpAddrKey, maps as names, vap::VapAddr};

use crate::{
    error::{Error, Result},
    loader::if_index,
    maps::{Dataplane, errno},
    vap::{Mac, VapEntry, free_slot, if_mac, update_err, vap_value},
    vap_record::VapRecord,
};

/// Index and MAC of each client-facing interface, looked up once per batch.
#[derive(Default)]
pub struct Interfaces(BTreeMap<String, (u32, Mac)>);

impl Interfaces {
    pub fn get(&mut self, name: &str) -> Result<(u32, Mac)> {
        if let Some(v) = self.0.get(name) {
            return Ok(*v);
        }
        let v = (if_index(name)?, if_mac(name)?);
        self.0.insert(name.to_string(), v);
        Ok(v)
    }
}

/// True when the vAP `have` read from the maps is what `want` says, on the interface
/// `iface` (its index and MAC now).
pub fn matches(want: &VapRecord, have: &VapEntry, iface: (u32, Mac)) -> bool {
    VapRecord::of_entry(have) == Some(*want) && (have.ifindex, have.host_mac) == iface
}

impl Dataplane {
    /// Writes `records` (see the module documentation); returns one result per record.
    /// `existing` is what the maps held before (from [`Dataplane::vaps`]).
    pub fn put_vaps(
        &mut self,
        records: &[VapRecord],
        existing: &[VapEntry],
        ifaces: &mut Interfaces,
    ) -> Vec<Result<()>> {
        let mut slots: Vec<VapEntry> = existing.to_vec();
        let results: Vec<Result<()>> = records
            .iter()
            .map(|r| {
                let old = slots.iter().find(|e| e.client == r.client).cloned();
                let res = self.put_vap(r, old.as_ref(), &slots, ifaces);
                if let Ok(slot) = res
                    && old.is_none()
                {
                    // Keep the new slot taken for the next records of the batch.
                    slots.push(VapEntry {
                        slot,
                        ..existing_stub(r)
                    });
                }
                res.map(drop)
            })
            .collect();
        // The data plane's vAP caches must not keep what the batch changed.
        match crate::cache_gen::invalidate(&self.vap_gen) {
            Ok(_) => results,
            Err(e) => results
                .into_iter()
                .map(|r| {
                    r.and_then(|()| {
                        Err(Error::Conflict(format!(
                            "written, but the vAP caches were not invalidated: {e}"
                        )))
                    })
                })
                .collect(),
        }
    }

    fn put_vap(
        &mut self,
        r: &VapRecord,
        old: Option<&VapEntry>,
        slots: &[VapEntry],
        ifaces: &mut Interfaces,
    ) -> Result<u32> {
        let (ifindex, host_mac) = ifaces.get(r.iface.as_str())?;
        let slot = match old {
            Some(e) => e.slot,
            None => {
                let slot = free_slot(slots).ok_or(Error::Full {
                    what: "the vAP table",
                    max: names::MAX_VAPS,
                })?;
                self.zero_vap_counters(slot)?;
                slot
            }
        };
        let value = vap_value(r, ifindex, host_mac, slot);
        self.vaps
            .insert(r.client.key(), value, 0)
            .map_err(|e| match errno(&e) {
                Some(libc::E2BIG) | Some(libc::ENOSPC) => Error::Full {
                    what: "the vAP table",
                    max: names::MAX_VAPS,
                },
                _ => update_err("the vAPs")(e),
            })?;
        for a in r.addrs() {
            self.set_vap_addr(a, r.client)?;
        }
        if let Some(old) = old {
            for a in old.addrs() {
                if !r.addrs().contains(&a) && self.vap_addr_owner(a)? == Some(r.client) {
                    self.del_vap_addr(a)?;
                }
            }
        }
        Ok(slot)
    }

    /// Who each address of the address table is delivered to.
    pub fn vap_addr_owners(&self) -> Result<BTreeMap<IpAddr, Mac>> {
        let mut out = BTreeMap::new();
        for item in self.vap_addrs.iter() {
            let (k, v) = item.map_err(|e| Error::ebpf("cannot read the vAP addresses", e))?;
            out.insert(IpAddr::from(k), Mac::from_key(v.client_mac));
        }
        Ok(out)
    }

    fn vap_addr_owner(&self, a: IpAddr) -> Result<Option<Mac>> {
        match self.vap_addrs.get(&IpAddrKey::from(a), 0) {
            Ok(v) => Ok(Some(Mac::from_key(v.client_mac))),
            Err(e)
                if matches!(&e, aya::maps::MapError::KeyNotFound)
                    || errno(&e) == Some(libc::ENOENT) =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::ebpf("cannot read the vAP addresses", e)),
        }
    }

    /// Delivers address `a` to the vAP of `client`.
    pub fn set_vap_addr(&mut self, a: IpAddr, client: Mac) -> Result<()> {
        let owner = VapAddr {
            client_mac: client.key(),
        };
        let r = self
            .vap_addrs
            .insert(IpAddrKey::from(a), owner, 0)
            .map_err(|e| match errno(&e) {
                Some(libc::E2BIG) | Some(libc::ENOSPC) => Error::Full {
                    what: "the vAP address table",
                    max: names::MAX_VAPS * 2,
                },
                _ => update_err("the vAP addresses")(e),
            });
        self.vaps_changed(r)
    }

    /// Removes address `a` from the address table (gone already is fine).
    pub fn del_vap_addr(&mut self, a: IpAddr) -> Result<()> {
        let r = match self.vap_addrs.remove(&IpAddrKey::from(a)) {
            Err(e) if errno(&e) != Some(libc::ENOENT) => Err(update_err("the vAP addresses")(e)),
            _ => Ok(()),
        };
        self.vaps_changed(r)
    }
}

/// A placeholder entry holding a slot a batch just took.
fn existing_stub(r: &VapRecord) -> VapEntry {
    VapEntry {
        client: r.client,
        vap_mac: r.vap_mac,
        ipv4: r.ipv4,
        ipv6: r.ipv6,
        anchor: r.uplink(),
        breakout: r.breakout,
        forward: r.forwarding(),
        ifindex: 0,
        iface: None,
        host_mac: Mac::default(),
        slot: 0,
    }
}
