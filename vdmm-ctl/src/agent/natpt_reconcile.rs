//! Keeps the translator's pinned maps (`VDMM_XLAT_CFG`, the two EAMT tries, the pool
//! and the segments) in step with the translation part of the desired state, with the
//! fragmentation routes `vdmm-ctl natpt` installs beside them (each EAMT entry's IPv4
//! prefix into `vdmmx0`, with the MTU of the lowest IPv6 MTU).
//!
//! [`NatptMaps::full`] adds what is missing, removes what is stale and overwrites what
//! differs (an EAMT entry counts as present only when both tries hold it); equal entries
//! are not touched. [`NatptMaps::apply`] writes the deltas of one committed batch.
//! Fragmentation routes are added and re-MTU'd, and removed with their EAMT entry; routes
//! of other prefixes (`natpt route add`) are left alone.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    natpt_state::{NatptDesired, NatptEntry, NatptKey, NatptOp, XlatSettings},
    reconcile::Report,
    state::{Delta, Entry, Key},
};
use crate::{
    addr::Prefix,
    error::Result,
    natpt::{Eam, Segment, Translator},
    pin::PinDir,
    routes::{Netlink, frag_route_add, frag_route_del, frag_route_mtu, frag_routes_set_mtu},
};

/// What the translator's maps hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NatptActual {
    pub settings: XlatSettings,
    pub frag_ifindex: u32,
    /// Entries in both tries.
    pub eamt: BTreeSet<Eam>,
    /// Entries in one trie only (or malformed): rewritten or removed.
    pub eamt_partial: BTreeSet<Eam>,
    pub pools: BTreeSet<Prefix>,
    pub segments: BTreeMap<Prefix, Segment>,
}

impl NatptActual {
    /// The desired-state form of what the maps hold (partial EAMT entries left out).
    pub fn desired(&self) -> NatptDesired {
        let mut d = NatptDesired::default();
        d.put(NatptEntry::Settings(self.settings));
        for e in &self.eamt {
            d.put(NatptEntry::Eam {
                ipv6: e.v6,
                ipv4: e.v4,
            });
        }
        for p in &self.pools {
            d.put(NatptEntry::Pool { prefix: *p });
        }
        for s in self.segments.values() {
            d.put(NatptEntry::Segment {
                ipv4: s.v4,
                prefix6: s.prefix6,
            });
        }
        d
    }
}

/// The translator's maps, opened from the pins.
pub struct NatptMaps {
    pins: PinDir,
    t: Translator,
}

impl NatptMaps {
    pub fn open(pins: &PinDir) -> Result<Self> {
        Ok(Self {
            pins: pins.clone(),
            t: Translator::open(pins)?,
        })
    }

    /// Reads the maps.
    pub fn actual(&self) -> Result<NatptActual> {
        let cfg = self.t.config()?;
        let (by4, by6, _malformed) = self.t.eamt_tries()?;
        let (by4, by6): (BTreeSet<Eam>, BTreeSet<Eam>) =
            (by4.into_iter().collect(), by6.into_iter().collect());
        Ok(NatptActual {
            settings: XlatSettings::from_config(&cfg),
            frag_ifindex: cfg.frag_ifindex,
            eamt: by4.intersection(&by6).copied().collect(),
            eamt_partial: by4.symmetric_difference(&by6).copied().collect(),
            pools: self.t.pool_prefixes()?.into_iter().collect(),
            segments: self.t.segments()?.into_iter().map(|s| (s.v4, s)).collect(),
        })
    }

    /// The ops that make an empty configuration equal to what the maps hold.
    pub fn import_ops(&self) -> Result<Vec<NatptOp>> {
        Ok(self.actual()?.desired().ops())
    }

    /// Writes the settings when they differ; true when written.
    fn write_settings(&mut self, s: &XlatSettings) -> Result<bool> {
        let current = self.t.config()?;
        let want = s.to_config(current.frag_ifindex);
        if want == current {
            return Ok(false);
        }
        self.t.put_config(want)?;
        if want.lowest_mtu() != current.lowest_mtu() {
            frag_routes_set_mtu(&self.pins, want.lowest_mtu())?;
        }
        Ok(true)
    }

    /// Writes one EAMT entry into both tries, replacing entries that hold either of its
    /// prefixes, and its fragmentation route.
    fn put_eam(&mut self, e: Eam, actual: &[Eam]) -> Result<()> {
        for old in actual.iter().filter(|o| o.v4 == e.v4 || o.v6 == e.v6) {
            self.t.remove_eam(*old)?;
        }
        self.t.remove_eam(e)?;
        self.t.insert_eam(e)?;
        let lowest = self.t.config()?.lowest_mtu();
        frag_route_add(&self.pins, e.v4, lowest)?;
        Ok(())
    }

    fn del_eam(&mut self, e: Eam) -> Result<()> {
        self.t.remove_eam(e)?;
        frag_route_del(&self.pins, e.v4)?;
        Ok(())
    }

    /// Writes the translation deltas of a committed batch (others are skipped); counts
    /// into `report`.
    pub fn apply(&mut self, deltas: &[&Delta], report: &mut Report) {
        let natpt: Vec<&&Delta> = deltas
            .iter()
            .filter(|d| matches!(d.key(), Key::Natpt(_)))
            .collect();
        if natpt.is_empty() {
            return;
        }
        let mut eamt: Vec<Eam> = match self.t.eamt() {
            Ok(e) => e,
            Err(e) => {
                report.errors.push(format!("natpt: {e}"));
                return;
            }
        };
        for d in natpt {
            let r = match d {
                Delta::Put {
                    entry: Entry::Natpt(e),
                } => match e {
                    NatptEntry::Settings(s) => self.write_settings(s).map(drop),
                    NatptEntry::Eam { ipv6, ipv4 } => {
                        let e = Eam {
                            v4: *ipv4,
                            v6: *ipv6,
                        };
                        let r = self.put_eam(e, &eamt);
                        eamt.retain(|o| o.v4 != e.v4 && o.v6 != e.v6);
                        eamt.push(e);
                        r
                    }
                    NatptEntry::Pool { prefix } => self.t.put_pool(prefix),
                    NatptEntry::Segment { ipv4, prefix6 } => self.t.put_segment(&Segment {
                        v4: *ipv4,
                        prefix6: *prefix6,
                    }),
                },
                Delta::Delete { key: Key::Natpt(k) } => match k {
                    NatptKey::Settings => self.write_settings(&XlatSettings::default()).map(drop),
                    NatptKey::Eam(p) => match eamt.iter().position(|o| o.v4 == *p) {
                        Some(i) => {
                            let old = eamt.remove(i);
                            self.del_eam(old)
                        }
                        None => Ok(()),
                    },
                    NatptKey::Pool(p) => self.t.remove_pool(p),
                    NatptKey::Segment(p) => self.t.remove_segment(p),
                },
                _ => continue,
            };
            match (r, d) {
                (Ok(()), Delta::Put { .. }) => report.added += 1,
                (Ok(()), Delta::Delete { .. }) => report.removed += 1,
                (Err(e), _) => report.errors.push(format!("{}: {e}", d.key())),
            }
        }
    }

    /// Compares the maps with `desired` and changes what differs; errors go to `errors`.
    pub fn full(&mut self, desired: &NatptDesired, report: &mut Report, errors: &mut Vec<String>) {
        let actual = match self.actual() {
            Ok(a) => a,
            Err(e) => {
                errors.push(format!("natpt: {e}"));
                return;
            }
        };
        match self.write_settings(desired.settings()) {
            Ok(true) => report.updated += 1,
            Ok(false) => {}
            Err(e) => errors.push(format!("natpt/settings: {e}")),
        }
        let mut note = |r: Result<()>, counter: &mut u64, what: String| match r {
            Ok(()) => *counter += 1,
            Err(e) => errors.push(format!("{what}: {e}")),
        };
        // Stale and half-written EAMT entries go first, so what replaces them fits.
        let want: BTreeSet<Eam> = desired.eamt().into_iter().collect();
        for e in actual.eamt.iter().chain(&actual.eamt_partial) {
            if !want.contains(e) || actual.eamt_partial.contains(e) {
                let r = if want.contains(e) {
                    self.t.remove_eam(*e)
                } else {
                    self.del_eam(*e)
                };
                note(r, &mut report.removed, format!("natpt/eamt/{}", e.v4));
            }
        }
        for e in &want {
            if !actual.eamt.contains(e) {
                let r = self.t.insert_eam(*e);
                note(r, &mut report.added, format!("natpt/eamt/{}", e.v4));
            }
        }
        let pools: BTreeSet<Prefix> = desired.pool_prefixes().into_iter().collect();
        for p in actual.pools.difference(&pools) {
            note(
                self.t.remove_pool(p),
                &mut report.removed,
                format!("natpt/pools/{p}"),
            );
        }
        for p in pools.difference(&actual.pools) {
            note(
                self.t.put_pool(p),
                &mut report.added,
                format!("natpt/pools/{p}"),
            );
        }
        let segments = desired.segments();
        for v4 in actual.segments.keys() {
            if !segments.iter().any(|s| s.v4 == *v4) {
                note(
                    self.t.remove_segment(v4),
                    &mut report.removed,
                    format!("natpt/segments/{v4}"),
                );
            }
        }
        for s in &segments {
            match actual.segments.get(&s.v4) {
                Some(have) if have == s => {}
                Some(_) => note(
                    self.t.put_segment(s),
                    &mut report.updated,
                    format!("natpt/segments/{}", s.v4),
                ),
                None => note(
                    self.t.put_segment(s),
                    &mut report.added,
                    format!("natpt/segments/{}", s.v4),
                ),
            }
        }
        self.full_routes(desired, report, errors);
    }

    /// Installs the fragmentation routes of the desired EAMT entries that are missing or
    /// have another MTU (when the fragmentation slow path exists).
    fn full_routes(
        &mut self,
        desired: &NatptDesired,
        report: &mut Report,
        errors: &mut Vec<String>,
    ) {
        if desired.eamt().is_empty() {
            return;
        }
        let tx = match crate::device::find_frag_tx(&self.pins) {
            Ok(Some(tx)) => tx,
            Ok(None) => return,
            Err(e) => {
                errors.push(format!("natpt routes: {e}"));
                return;
            }
        };
        let mtu = frag_route_mtu(desired.settings().lowest_mtu());
        let result = (|| -> Result<u64> {
            let mut nl = Netlink::open()?;
            let have: BTreeMap<Prefix, Option<u32>> = nl
                .vdmm_routes()?
                .into_iter()
                .filter(|r| r.oif == Some(tx.index))
                .map(|r| (r.home, r.mtu))
                .collect();
            let mut n = 0;
            for e in desired.eamt() {
                if have.get(&e.v4) != Some(&Some(mtu)) {
                    nl.install_frag_route(e.v4, tx.index, mtu)?;
                    n += 1;
                }
            }
            Ok(n)
        })();
        match result {
            Ok(n) => report.routes_installed += n,
            Err(e) => errors.push(format!("natpt routes: {e}")),
        }
    }
}
