//! The `[natpt]` section of the agent's configuration: a transition gateway's translation
//! configuration declared in the file. Each field is checked when the file is read, with
//! the `vdmm-ctl natpt` parsers, and refused with one line naming the field and the value.
//!
//! On every start the agent makes the desired state hold what the section declares (one
//! batch, checked like an API request): the settings given replace the stored ones, and
//! the EAMT entries, pools and segments are added when missing (a segment with another
//! IPv6 prefix is replaced). Everything else, and changes made through the API
//! afterwards, stays in the store; a declared entry removed through the API comes back at
//! the next start.

use std::net::IpAddr;

use serde::Deserialize;

use super::natpt_state::{NatptDesired, NatptOp};
use crate::{
    addr::{Family, parse_addr},
    error::{Error, Result},
    natpt::{Eam, parse_mtu, parse_prefix_of, parse_prefix6},
};

/// `udp_zero_checksum`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UdpZeroPolicy {
    Compute,
    Drop,
}

/// `traffic_class`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrafficClassPolicy {
    Copy,
    Reset,
}

/// The `[natpt]` section as written (texts, parsed by [`NatptSection::ops`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatptSection {
    /// The RFC 6052 prefix.
    pub prefix: Option<String>,
    /// RFC 6791 addresses, at most one per family.
    pub rfc6791: Vec<String>,
    pub lowest_ipv6_mtu: Option<u32>,
    pub udp_zero_checksum: Option<UdpZeroPolicy>,
    pub traffic_class: Option<TrafficClassPolicy>,
    /// EAMT entries: `["PREFIX6/LEN", "PREFIX4/LEN"]`.
    pub eam: Vec<[String; 2]>,
    /// IPv4 address pool prefixes.
    pub pools: Vec<String>,
    /// Segments: `["PREFIX4/LEN", "PREFIX6/LEN"]`.
    pub segments: Vec<[String; 2]>,
}

fn invalid(field: &str, value: &str, e: Error) -> Error {
    Error::Conflict(format!(
        "invalid configuration: natpt.{field} = {value:?}: {e}"
    ))
}

impl NatptSection {
    /// Every declared item as ops (settings first), each field checked.
    pub fn ops(&self) -> Result<Vec<NatptOp>> {
        let mut ops = Vec::new();
        if let Some(p) = &self.prefix {
            ops.push(NatptOp::PrefixSet {
                prefix: parse_prefix6(p).map_err(|e| invalid("prefix", p, e))?,
            });
        }
        let mut families = Vec::new();
        for a in &self.rfc6791 {
            let addr: IpAddr = parse_addr(a).map_err(|e| invalid("rfc6791", a, e))?;
            let f = Family::of(&addr);
            if families.contains(&f) {
                return Err(invalid(
                    "rfc6791",
                    a,
                    Error::Conflict(format!("a second {} address", f.name())),
                ));
            }
            families.push(f);
            ops.push(NatptOp::Rfc6791Set { addr });
        }
        if let Some(m) = self.lowest_ipv6_mtu {
            let text = m.to_string();
            parse_mtu(&text).map_err(|e| invalid("lowest_ipv6_mtu", &text, e))?;
            ops.push(NatptOp::Mtu { mtu: Some(m) });
        }
        if let Some(p) = self.udp_zero_checksum {
            ops.push(NatptOp::UdpZeroChecksum {
                drop: p == UdpZeroPolicy::Drop,
            });
        }
        if let Some(p) = self.traffic_class {
            ops.push(NatptOp::TrafficClass {
                reset: p == TrafficClassPolicy::Reset,
            });
        }
        for p in &self.pools {
            ops.push(NatptOp::PoolAdd {
                prefix: parse_prefix_of(Family::V4, "address pool", p)
                    .map_err(|e| invalid("pools", p, e))?,
            });
        }
        for [p4, p6] in &self.segments {
            let text = format!("[{p4}, {p6}]");
            ops.push(NatptOp::SegmentAdd {
                prefix4: parse_prefix_of(Family::V4, "segment", p4)
                    .map_err(|e| invalid("segments", &text, e))?,
                prefix6: parse_prefix6(p6).map_err(|e| invalid("segments", &text, e))?,
                replace: true,
            });
        }
        for [p6, p4] in &self.eam {
            let text = format!("[{p6}, {p4}]");
            let e =
                (|| Eam::new(p6.parse()?, p4.parse()?))().map_err(|e| invalid("eam", &text, e))?;
            ops.push(NatptOp::EamAdd {
                prefix6: e.v6,
                prefix4: e.v4,
            });
        }
        Ok(ops)
    }

    /// The ops that make `current` hold what is declared: additions of entries already
    /// there (equal) are left out.
    pub fn ops_for(&self, current: &NatptDesired) -> Result<Vec<NatptOp>> {
        let eamt = current.eamt();
        let pools = current.pool_prefixes();
        let segments = current.segments();
        Ok(self
            .ops()?
            .into_iter()
            .filter(|op| match op {
                NatptOp::EamAdd { prefix6, prefix4 } => {
                    !eamt.iter().any(|e| e.v6 == *prefix6 && e.v4 == *prefix4)
                }
                NatptOp::PoolAdd { prefix } => !pools.contains(prefix),
                NatptOp::SegmentAdd {
                    prefix4, prefix6, ..
                } => !segments
                    .iter()
                    .any(|s| s.v4 == *prefix4 && s.prefix6 == *prefix6),
                _ => true,
            })
            .collect())
    }

    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::state::{DesiredState, Op};

    fn section(toml_text: &str) -> NatptSection {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn bad_fields_are_named_with_their_value() {
        for (text, want) in [
            (
                r#"prefix = "2001:db8::/33""#,
                "invalid configuration: natpt.prefix = \"2001:db8::/33\": invalid prefix",
            ),
            (
                r#"rfc6791 = ["192.0.2.1", "192.0.2.2"]"#,
                "natpt.rfc6791 = \"192.0.2.2\": a second IPv4 address",
            ),
            (
                "lowest_ipv6_mtu = 1000",
                "natpt.lowest_ipv6_mtu = \"1000\": invalid lowest IPv6 MTU",
            ),
            (
                r#"pools = ["2001:db8::/120"]"#,
                "natpt.pools = \"2001:db8::/120\": address pool `2001:db8::/120` is not an IPv4 prefix",
            ),
            (
                r#"eam = [["2001:db8::/112", "10.0.0.0/24"]]"#,
                "natpt.eam = \"[2001:db8::/112, 10.0.0.0/24]\": EAMT entry",
            ),
            (
                r#"segments = [["10.0.0.0/8", "2001:db8::/33"]]"#,
                "natpt.segments = \"[10.0.0.0/8, 2001:db8::/33]\"",
            ),
        ] {
            let e = section(text).ops().unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        assert!(toml::from_str::<NatptSection>("udp_zero_checksum = \"maybe\"").is_err());
        assert!(toml::from_str::<NatptSection>("prefixes = []").is_err());
    }

    #[test]
    fn declared_items_are_added_once_and_settings_win() {
        let s = section(
            r#"
            prefix = "2001:db8:64::/96"
            rfc6791 = ["192.0.2.254"]
            lowest_ipv6_mtu = 1400
            udp_zero_checksum = "drop"
            eam = [["2001:db8:6::/120", "198.51.100.0/24"]]
            pools = ["192.0.2.0/25"]
            segments = [["203.0.113.0/24", "2001:db8:cb00::/40"]]
            "#,
        );
        let mut state = DesiredState::default();
        let ops: Vec<Op> = s
            .ops_for(state.natpt())
            .unwrap()
            .into_iter()
            .map(Op::Natpt)
            .collect();
        assert_eq!(ops.len(), 7);
        let d = state.plan(&ops).unwrap();
        state.apply(&d);
        // A second start: nothing to add, the settings ops change nothing.
        let again: Vec<Op> = s
            .ops_for(state.natpt())
            .unwrap()
            .into_iter()
            .map(Op::Natpt)
            .collect();
        assert_eq!(again.len(), 4, "{again:?}");
        assert!(state.plan(&again).unwrap().is_empty());
        // An MTU changed through the API is set back; a pool added through it stays.
        let d = state
            .plan(&[
                serde_json::from_str(r#"{"op":"natpt","natpt":"mtu","mtu":1500}"#).unwrap(),
                serde_json::from_str(
                    r#"{"op":"natpt","natpt":"pool_add","prefix":"198.18.0.0/24"}"#,
                )
                .unwrap(),
            ])
            .unwrap();
        state.apply(&d);
        let ops: Vec<Op> = s
            .ops_for(state.natpt())
            .unwrap()
            .into_iter()
            .map(Op::Natpt)
            .collect();
        let d = state.plan(&ops).unwrap();
        state.apply(&d);
        assert_eq!(state.natpt().settings().lowest_mtu(), 1400);
        assert_eq!(state.natpt().pool_prefixes().len(), 2);
    }
}
