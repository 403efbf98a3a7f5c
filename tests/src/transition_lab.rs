//! The transition lab: the two seed scenarios of issue #3 (a host moves into a network of
//! the other IP family, keeps its address and its connections, and is reachable from a
//! correspondent of the other family through translation), in five network namespaces:
//!
//! ```text
//!                 home link (family F, deleted by the move)
//!        ┌──────────────── anchor ───────────────────── host ─┐
//!  cnh ──┘ (family F)        ║ core (family F)                │ visited link (family G,
//!                            ║                                │ brought up by the move)
//!                           tgw ──────────────────────────────┘
//!                            │ (family G)
//!                           cnx
//! ```
//!
//! Scenario A ([`Scenario::V4HostIntoV6`]): F = IPv4, G = IPv6. Scenario B
//! ([`Scenario::V6HostIntoV4`]): F = IPv6, G = IPv4. Everything below is written for A,
//! with B's mirror in brackets.
//!
//! * `cnh`: the correspondent of the host's own family, behind the anchor
//!   (10.1.0.2 \[fd00:1::2\]).
//! * `anchor`: the host's home gateway (mobility anchor). Its home link carries the
//!   host's home prefix 10.2.0.0/24 \[fd00:2::/64\]; the host H = 10.2.0.2 \[fd00:2::2\].
//!   Family F only. Runs vdmm on its correspondent and core interfaces.
//! * `tgw`: the transition gateway, family F toward the anchor (core), family G toward the
//!   visited network (2001:db8:6::/64 \[198.51.100.0/24\]) and toward `cnx`. Runs vdmm
//!   (tunnels and `natpt`) on all three interfaces.
//! * `cnx`: the correspondent of the other family (2001:db8:c6::2 \[203.0.113.2\]).
//! * `host`: the mobile node. Before the move it sits on the anchor's home link (plain
//!   routing, no tunnel). After the move it sits on the visited link only, with a
//!   care-of address of family G (2001:db8:6::2 \[198.51.100.2\]); it keeps H (moved to
//!   `lo`) and runs vdmm itself: XDP on the visited link decapsulates what the transition
//!   gateway sends it, and vdmm's slow path (routes into `vdmm0`, `vdmm_tc_egress`)
//!   encapsulates what it sends, since packets a host originates never pass its own XDP.
//!
//! # The host's care-of address in family F
//!
//! The anchor speaks family F only, so it needs a locator of family F for the host:
//! * A: `tgw$ vdmm-ctl natpt pool alloc 2001:db8:6::2` hands out P4 (100.64.0.1, first
//!   address of the pool 100.64.0.0/28): the host's IPv4 care-of address, an EAMT entry
//!   P4 <-> the host's IPv6 care-of address.
//! * B: `tgw$ vdmm-ctl natpt segment add 198.51.100.0/24 --prefix6 2001:db8:5e6::/96`
//!   and `natpt segment coa 198.51.100.2` give the host's IPv6 care-of address
//!   2001:db8:5e6::c633:6402 (segment prefix + IPv4 care-of address).
//!
//! This family-F care-of address is a tunnel endpoint of the transition gateway
//! (`endpoint add`); the anchor routes it (A: the pool, B: the segment prefix) to the
//! transition gateway.
//!
//! # Set-up with the host at home (`build`)
//!
//! ```text
//! tgw$    vdmm-ctl load --iface tg-core; load --iface tg-visit; load --iface tg-cn
//!         natpt prefix set 2001:db8:64::/96; natpt pool add 100.64.0.0/28
//!   A:    natpt pool alloc 2001:db8:6::2 (-> COA_F = P4); natpt pool alloc 2001:db8:c6::2 (-> Q4)
//!   B:    natpt segment add 198.51.100.0/24 --prefix6 2001:db8:5e6::/96
//!         natpt segment coa 198.51.100.2 (-> COA_F); natpt pool alloc fd00:2::2 (-> P4)
//!         endpoint add TGW_VISIT; endpoint add COA_F; peer add ANCHOR_CORE; peer add COA_G
//!   ip:   route HOME_PREFIX via ANCHOR_CORE; route XLAT_PREFIX via ANCHOR_CORE
//! anchor$ vdmm-ctl load --iface an-cn; load --iface an-core
//!         endpoint add ANCHOR_CORE; peer add COA_F
//!   ip:   route (A: the pool; B: the segment's /96 and 2001:db8:64::/96) via TGW_CORE
//! ```
//!
//! XLAT_PREFIX is where the host's kernel finds the other-family correspondent: A: the
//! pool 100.64.0.0/28 (cnx is Q4 there), B: 2001:db8:64::/96 (cn4 embedded).
//!
//! # Tunnels after the move (the commands `move_host` runs, in this order)
//!
//! ```text
//! host$   vdmm-ctl load --iface h-visit; endpoint add COA_G; peer add TGW_VISIT
//!         binding add CNH_PREFIX        --locator TGW_VISIT --source COA_G
//!         binding add XLAT_PREFIX       --locator TGW_VISIT --source COA_G
//! tgw$    binding add H/32 [/128]       --locator COA_G     --source TGW_VISIT --no-route
//!         binding add CNH_PREFIX        --locator ANCHOR_CORE --source COA_F
//! anchor$ binding add --replace H/32 [/128] --locator COA_F --source ANCHOR_CORE
//! ```
//!
//! * cnh -> H: the anchor encapsulates 4in4 \[6in6\] toward COA_F (`encap`); the transition
//!   gateway decapsulates it (COA_F is its endpoint, the anchor its peer), finds a binding
//!   for H and re-encapsulates 4in6 \[6in4\] toward the host's care-of address (`reencap`);
//!   the host's XDP decapsulates it (COA_G is its endpoint, tgw its peer); H is local, so
//!   the inner packet goes up its stack (`fib_not_forwarded` pass, kind 4in6 \[6in4\]).
//! * H -> cnh: the host's kernel routes cnh's prefix into `vdmm0`, where the slow path
//!   encapsulates 4in6 \[6in4\] toward tgw (tc `encap`); tgw decapsulates it and, cnh's
//!   prefix being bound toward the anchor, re-encapsulates it 4in4 \[6in6\] with COA_F as
//!   the source (`reencap`: reverse tunnelling, so the anchor sees the host's traffic
//!   coming from the same care-of address it sends to); the anchor decapsulates it
//!   (`decap`).
//!   The host's bindings cover only the correspondents' prefixes, never H itself:
//!   a binding covering H (e.g. 0.0.0.0/0) would re-encapsulate every packet the host's
//!   XDP decapsulates for H straight back to tgw.
//!
//! # Translation (the other-family correspondent)
//!
//! tgw: `natpt prefix set 2001:db8:64::/96` (network-specific: 10/8 and fd00::/8 may not be
//! embedded under 64:ff9b::/96), `natpt pool add 100.64.0.0/28`.
//! * A: `natpt pool alloc 2001:db8:c6::2` gives cnx (IPv6 only) the IPv4 address Q4
//!   (100.64.0.2). cnx reaches H at 2001:db8:64::a02:2 (RFC 6052 embedding of H). tgw
//!   translates 6->4 (Q4 -> H, `translated` xlat6to4) and routes H toward its home: the
//!   anchor, which tunnels it like any packet for H (encap, then tgw's reencap). Back: the
//!   host tunnels H -> Q4 to tgw (Q4 is under its XLAT_PREFIX binding, the pool); tgw
//!   decapsulates it (`decap` 4in6, no binding for Q4) and routes the pool toward the
//!   anchor, which routes it back to tgw as a plain packet; tgw's XDP then translates it
//!   4->6 (`translated` xlat4to6) to cnx.
//! * B: `natpt pool alloc fd00:2::2` gives H the IPv4 address P4 (100.64.0.1). cn4 (IPv4
//!   only) reaches H at P4; tgw translates 4->6 (2001:db8:64::cb00:7102 -> H), routes H
//!   to the anchor, and so on as in A, mirrored.
//!
//! Why the detours through the anchor: the data plane translates only packets that arrive
//! plain on an interface, and forwards a translated packet by the kernel's FIB without
//! looking at the bindings; a decapsulated packet is re-encapsulated or forwarded, never
//! translated. So:
//! * tgw's binding for H has no slow-path route (`--no-route`) and tgw routes H's home
//!   prefix to the anchor. With the route (`H dev vdmm0`), the first translated packet for
//!   H goes through the kernel into `vdmm0` and is encapsulated by the slow path, but that
//!   creates a NOARP neighbour entry for H on `vdmm0`; from then on `bpf_fib_lookup`
//!   resolves H to `vdmm0` and the translator XDP_REDIRECTs the translated packets into
//!   that dummy device, where they are lost while counted `translated` redirect. The
//!   ignored tests `*_translated_straight_into_tunnel` (variant
//!   [`TransitionLab::translate_straight_into_tunnel`]) show it.
//! * the packets tgw decapsulates for the translated correspondent's address leave toward
//!   the anchor and come back in plain, to be translated on the way in.
//!
//! `send_redirects` is off on the anchor (it forwards those packets back out of the
//! interface they came in on).
//!
//! What the host sends into the visited network after the move is captured on its side
//! ([`OutCapture`], `tcpdump -Q out`): only tunnel packets of family G between its care-of
//! address and tgw, plus ARP/ND. (Receive-side taps run after XDP, and frames XDP
//! redirects never pass a tap, so the other direction is checked by the counters.)

//! # Lab settings (as in `lab.rs`, for the same reasons)
//!
//! accept_dad=0 and rp_filter=0 everywhere; forwarding on the gateways; GRO on every veth
//! end that receives XDP-redirected frames (switched on while the link is up); tx
//! checksum offload off on the hosts (XDP sees raw bytes; the host's tunnel packets leave
//! through its visited veth, which then fills in the inner checksums). The host's `vdmm0`
//! keeps its default offloads: its TCP segments reach the slow path as GSO packets (the tc
//! `encap` counter shows ~3 KB per packet), and the kernel segments them after the outer
//! header is added (the capture of what the host sends counts the wire frames). Every vdmm
//! runs with its own pin directory `/run/vdmm/<namespace>` on a private bpffs.
//! Dropping the lab unmounts the pins and deletes the namespaces (also on panic).

use std::{
    io::{Read, Write},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::Command,
    sync::mpsc,
    thread,
    time::Duration,
};

use anyhow::{Context, Result, anyhow, bail, ensure};

use crate::{
    lab::{Counters, Family, default_ctl_path, in_netns, join, ping_once},
    netns::{Netns, addr, ethtool, mount_pin_dir, require_root, sysctl, unmount_pin_dir, veth},
};

/// Which seed scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// A: an IPv4 host moves into an IPv6-only network.
    V4HostIntoV6,
    /// B: an IPv6 host moves into an IPv4-only network.
    V6HostIntoV4,
}

impl Scenario {
    /// The host's own family (F).
    pub fn home(self) -> Family {
        match self {
            Scenario::V4HostIntoV6 => Family::V4,
            Scenario::V6HostIntoV4 => Family::V6,
        }
    }
    /// The visited network's family (G).
    pub fn visited(self) -> Family {
        match self {
            Scenario::V4HostIntoV6 => Family::V6,
            Scenario::V6HostIntoV4 => Family::V4,
        }
    }
    /// Tunnel kind name of family-`inner` packets over family-`outer`.
    pub fn kind(inner: Family, outer: Family) -> &'static str {
        crate::lab::kind_name(inner, outer)
    }
}

pub const CNH_IF: &str = "cn0";
pub const ANCHOR_CNH_IF: &str = "an-cn";
pub const ANCHOR_HOME_IF: &str = "an-home";
pub const ANCHOR_CORE_IF: &str = "an-core";
pub const HOST_HOME_IF: &str = "h-home";
pub const HOST_VISIT_IF: &str = "h-visit";
pub const TGW_CORE_IF: &str = "tg-core";
pub const TGW_VISIT_IF: &str = "tg-visit";
pub const TGW_CNX_IF: &str = "tg-cn";
pub const CNX_IF: &str = "cx0";

/// RFC 6052 prefix of the transition gateway (network-specific, /96).
pub const XLAT_PREFIX6: &str = "2001:db8:64::/96";
/// The transition gateway's IPv4 pool.
pub const POOL4: &str = "100.64.0.0/28";
/// Scenario B: the visited IPv4 segment and its IPv6 prefix.
pub const SEGMENT4: &str = "198.51.100.0/24";
pub const SEGMENT6: &str = "2001:db8:5e6::/96";

/// The address plan of one scenario (see the module doc).
#[derive(Clone, Debug)]
pub struct Plan {
    pub cnh: IpAddr,
    pub anchor_cnh: IpAddr,
    pub cnh_prefix: &'static str,
    pub anchor_home: IpAddr,
    /// H: the host's home address, kept across the move.
    pub host_home: IpAddr,
    pub home_prefix: &'static str,
    pub anchor_core: IpAddr,
    pub tgw_core: IpAddr,
    pub tgw_visit: IpAddr,
    /// The host's care-of address in the visited network (family G).
    pub host_coa: IpAddr,
    pub tgw_cnx: IpAddr,
    pub cnx: IpAddr,
}

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse::<Ipv4Addr>().unwrap())
}
fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
}

impl Plan {
    pub fn of(s: Scenario) -> Plan {
        match s {
            Scenario::V4HostIntoV6 => Plan {
                cnh: v4("10.1.0.2"),
                anchor_cnh: v4("10.1.0.1"),
                cnh_prefix: "10.1.0.0/24",
                anchor_home: v4("10.2.0.1"),
                host_home: v4("10.2.0.2"),
                home_prefix: "10.2.0.0/24",
                anchor_core: v4("192.0.2.1"),
                tgw_core: v4("192.0.2.2"),
                tgw_visit: v6("2001:db8:6::1"),
                host_coa: v6("2001:db8:6::2"),
                tgw_cnx: v6("2001:db8:c6::1"),
                cnx: v6("2001:db8:c6::2"),
            },
            Scenario::V6HostIntoV4 => Plan {
                cnh: v6("fd00:1::2"),
                anchor_cnh: v6("fd00:1::1"),
                cnh_prefix: "fd00:1::/64",
                anchor_home: v6("fd00:2::1"),
                host_home: v6("fd00:2::2"),
                home_prefix: "fd00:2::/64",
                anchor_core: v6("2001:db8:c0::1"),
                tgw_core: v6("2001:db8:c0::2"),
                tgw_visit: v4("198.51.100.1"),
                host_coa: v4("198.51.100.2"),
                tgw_cnx: v4("203.0.113.1"),
                cnx: v4("203.0.113.2"),
            },
        }
    }
}

fn plen(a: IpAddr) -> u8 {
    if a.is_ipv4() { 24 } else { 64 }
}

fn host_len(a: IpAddr) -> u8 {
    if a.is_ipv4() { 32 } else { 128 }
}

/// RFC 6052 /96 embedding of `a` under [`XLAT_PREFIX6`].
pub fn embed96(a: Ipv4Addr) -> Ipv6Addr {
    let p: Ipv6Addr = XLAT_PREFIX6.split('/').next().unwrap().parse().unwrap();
    let mut o = p.octets();
    o[12..].copy_from_slice(&a.octets());
    Ipv6Addr::from(o)
}

/// A vdmm instance in a namespace: `ip netns exec NS vdmm-ctl --pin-dir DIR ...`.
pub struct Vdmm {
    pub ns_name: String,
    pub pin: PathBuf,
    pub ctl: PathBuf,
}

impl Vdmm {
    pub fn ctl(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns_name])
            .arg(&self.ctl)
            .arg("--pin-dir")
            .arg(&self.pin)
            .args(args)
            .output()
            .with_context(|| format!("spawn {}", self.ctl.display()))?;
        if !out.status.success() {
            bail!(
                "{}: vdmm-ctl {} failed ({}): {}",
                self.ns_name,
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn stats(&self) -> Result<Counters> {
        let out = self.ctl(&["stats", "--json"])?;
        Counters::parse_json(&out).with_context(|| format!("stats --json: {out}"))
    }
}

fn route(ns: &Netns, prefix: &str, via: IpAddr) -> Result<()> {
    let fam = if via.is_ipv6() { "-6" } else { "-4" };
    ns.ip(&[fam, "route", "add", prefix, "via", &via.to_string()])?;
    Ok(())
}

/// Link up, then its features (GRO only registers for NAPI on an up veth).
fn link_up(ns: &Netns, dev: &str, features: &[&str]) -> Result<()> {
    ns.ip(&["link", "set", dev, "up"])?;
    ethtool(ns, dev, features)
}

/// A built transition lab; dropping it tears everything down.
pub struct TransitionLab {
    pub scenario: Scenario,
    pub plan: Plan,
    /// The host's care-of address of family F (A: pool address, B: segment prefix + CoA).
    pub host_coa_home_family: IpAddr,
    /// Where cnx reaches H (A: RFC 6052 embedding of H; B: H's pool address).
    pub host_as_seen_by_cnx: IpAddr,
    /// Where H sees cnx (A: cnx's pool address; B: RFC 6052 embedding of cnx).
    pub cnx_as_seen_by_host: IpAddr,
    pub anchor_vdmm: Vdmm,
    pub tgw_vdmm: Vdmm,
    pub host_vdmm: Vdmm,
    pub moved: bool,
    /// See [`TransitionLab::translate_straight_into_tunnel`].
    pub straight: bool,
    pins: Vec<PathBuf>,
    // Namespaces last: dropped after the pins are unmounted in Drop::drop.
    pub cnh: Netns,
    pub anchor: Netns,
    pub tgw: Netns,
    pub host: Netns,
    pub cnx: Netns,
}

impl Drop for TransitionLab {
    fn drop(&mut self) {
        for p in &self.pins {
            unmount_pin_dir(p);
        }
    }
}

fn json_field(text: &str, field: &str) -> Result<IpAddr> {
    let v: serde_json::Value =
        serde_json::from_str(text.trim()).with_context(|| format!("not JSON: {text}"))?;
    let s = v
        .get(field)
        .and_then(|x| x.as_str())
        .ok_or_else(|| anyhow!("no {field:?} in {text}"))?;
    s.parse().with_context(|| format!("{field} = {s:?}"))
}

impl TransitionLab {
    /// Builds the lab with the host at home (see the module doc); on error everything
    /// built so far is removed.
    pub fn build(scenario: Scenario) -> Result<TransitionLab> {
        require_root()?;
        let ctl = default_ctl_path()?;
        ensure!(
            ctl.is_file(),
            "vdmm-ctl not found at {} (build it with `cargo build -p vdmm-ctl`, or set VDMM_CTL)",
            ctl.display()
        );
        let plan = Plan::of(scenario);
        let cnh = Netns::new("cnh")?;
        let anchor = Netns::new("anchor")?;
        let tgw = Netns::new("tgw")?;
        let host = Netns::new("mn")?;
        let cnx = Netns::new("cnx")?;
        let vdmm = |ns: &Netns| Vdmm {
            ns_name: ns.name().to_owned(),
            pin: PathBuf::from("/run/vdmm").join(ns.name()),
            ctl: ctl.clone(),
        };
        let (anchor_vdmm, tgw_vdmm, host_vdmm) = (vdmm(&anchor), vdmm(&tgw), vdmm(&host));
        let pins = vec![
            anchor_vdmm.pin.clone(),
            tgw_vdmm.pin.clone(),
            host_vdmm.pin.clone(),
        ];
        let unspecified = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let mut lab = TransitionLab {
            scenario,
            plan,
            host_coa_home_family: unspecified,
            host_as_seen_by_cnx: unspecified,
            cnx_as_seen_by_host: unspecified,
            anchor_vdmm,
            tgw_vdmm,
            host_vdmm,
            moved: false,
            straight: false,
            pins,
            cnh,
            anchor,
            tgw,
            host,
            cnx,
        };
        lab.wire().context("wiring the transition lab")?;
        lab.program()
            .context("programming anchor and tgw with vdmm-ctl")?;
        lab.warm_up().context("warming up neighbours")?;
        Ok(lab)
    }

    fn all_ns(&self) -> [&Netns; 5] {
        [&self.cnh, &self.anchor, &self.tgw, &self.host, &self.cnx]
    }

    fn wire(&self) -> Result<()> {
        let p = &self.plan;
        for ns in self.all_ns() {
            sysctl(
                ns,
                &[
                    "net.ipv6.conf.all.accept_dad=0",
                    "net.ipv6.conf.default.accept_dad=0",
                    "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0",
                ],
            )?;
        }
        for gw in [&self.anchor, &self.tgw] {
            sysctl(
                gw,
                &[
                    "net.ipv4.ip_forward=1",
                    "net.ipv6.conf.all.forwarding=1",
                    "net.ipv6.conf.default.forwarding=1",
                    "net.ipv4.conf.all.send_redirects=0",
                    "net.ipv4.conf.default.send_redirects=0",
                ],
            )?;
        }
        veth(&self.cnh, CNH_IF, &self.anchor, ANCHOR_CNH_IF)?;
        veth(&self.anchor, ANCHOR_HOME_IF, &self.host, HOST_HOME_IF)?;
        veth(&self.anchor, ANCHOR_CORE_IF, &self.tgw, TGW_CORE_IF)?;
        veth(&self.tgw, TGW_VISIT_IF, &self.host, HOST_VISIT_IF)?;
        veth(&self.tgw, TGW_CNX_IF, &self.cnx, CNX_IF)?;
        let host_feat: &[&str] = &["gro", "on", "tx", "off"];
        let gw_feat: &[&str] = &["gro", "on"];
        for (ns, dev, a, feat) in [
            (&self.cnh, CNH_IF, p.cnh, host_feat),
            (&self.anchor, ANCHOR_CNH_IF, p.anchor_cnh, gw_feat),
            (&self.anchor, ANCHOR_HOME_IF, p.anchor_home, gw_feat),
            (&self.host, HOST_HOME_IF, p.host_home, host_feat),
            (&self.anchor, ANCHOR_CORE_IF, p.anchor_core, gw_feat),
            (&self.tgw, TGW_CORE_IF, p.tgw_core, gw_feat),
            (&self.tgw, TGW_VISIT_IF, p.tgw_visit, gw_feat),
            (&self.tgw, TGW_CNX_IF, p.tgw_cnx, gw_feat),
            (&self.cnx, CNX_IF, p.cnx, host_feat),
        ] {
            addr(ns, dev, a, plen(a))?;
            link_up(ns, dev, feat)?;
        }
        // The visited link exists from the start but the host's end stays down (and
        // unaddressed) until the move.
        route(&self.cnh, "default", p.anchor_cnh)?;
        route(&self.host, "default", p.anchor_home)?;
        route(&self.cnx, "default", p.tgw_cnx)?;
        Ok(())
    }

    fn program(&mut self) -> Result<()> {
        for pin in &self.pins {
            mount_pin_dir(pin)?;
        }
        let p = self.plan.clone();
        let t = &self.tgw_vdmm;
        for dev in [TGW_CORE_IF, TGW_VISIT_IF, TGW_CNX_IF] {
            t.ctl(&["load", "--iface", dev])?;
        }
        t.ctl(&["natpt", "prefix", "set", XLAT_PREFIX6])?;
        t.ctl(&["natpt", "pool", "add", POOL4])?;
        let (coa_f, h_seen, cnx_seen, back_prefix) = match self.scenario {
            Scenario::V4HostIntoV6 => {
                let out = t.ctl(&["natpt", "pool", "alloc", &p.host_coa.to_string(), "--json"])?;
                let p4 = json_field(&out, "ipv4")?;
                let out = t.ctl(&["natpt", "pool", "alloc", &p.cnx.to_string(), "--json"])?;
                let q4 = json_field(&out, "ipv4")?;
                let IpAddr::V4(h4) = p.host_home else {
                    unreachable!()
                };
                (p4, IpAddr::V6(embed96(h4)), q4, POOL4)
            }
            Scenario::V6HostIntoV4 => {
                t.ctl(&["natpt", "segment", "add", SEGMENT4, "--prefix6", SEGMENT6])?;
                let out = t.ctl(&["natpt", "segment", "coa", &p.host_coa.to_string(), "--json"])?;
                let coa6 = json_field(&out, "ipv6")?;
                let out = t.ctl(&["natpt", "pool", "alloc", &p.host_home.to_string(), "--json"])?;
                let h4 = json_field(&out, "ipv4")?;
                let IpAddr::V4(c4) = p.cnx else {
                    unreachable!()
                };
                (coa6, h4, IpAddr::V6(embed96(c4)), XLAT_PREFIX6)
            }
        };
        self.host_coa_home_family = coa_f;
        self.host_as_seen_by_cnx = h_seen;
        self.cnx_as_seen_by_host = cnx_seen;
        let t = &self.tgw_vdmm;
        t.ctl(&["endpoint", "add", &p.tgw_visit.to_string()])?;
        t.ctl(&["endpoint", "add", &coa_f.to_string()])?;
        t.ctl(&["peer", "add", &p.anchor_core.to_string()])?;
        t.ctl(&["peer", "add", &p.host_coa.to_string()])?;
        // H's home prefix lives behind the anchor (translated packets for H go there), and
        // so do, as far as tgw's kernel is concerned, the translated correspondents'
        // addresses (the anchor sends them back in, plain, to be translated).
        route(&self.tgw, p.home_prefix, p.anchor_core)?;
        route(&self.tgw, back_prefix, p.anchor_core)?;

        let a = &self.anchor_vdmm;
        for dev in [ANCHOR_CNH_IF, ANCHOR_CORE_IF] {
            a.ctl(&["load", "--iface", dev])?;
        }
        a.ctl(&["endpoint", "add", &p.anchor_core.to_string()])?;
        a.ctl(&["peer", "add", &coa_f.to_string()])?;
        // The host's family-F care-of addresses (pool / segment prefix) are at tgw, and so
        // are the translated correspondents.
        match self.scenario {
            Scenario::V4HostIntoV6 => route(&self.anchor, POOL4, p.tgw_core)?,
            Scenario::V6HostIntoV4 => {
                route(&self.anchor, SEGMENT6, p.tgw_core)?;
                route(&self.anchor, XLAT_PREFIX6, p.tgw_core)?;
            }
        }
        Ok(())
    }

    fn warm_up(&self) -> Result<()> {
        let p = &self.plan;
        ping_once(&self.cnh, p.anchor_cnh, 5)?;
        ping_once(&self.anchor, p.cnh, 5)?;
        ping_once(&self.anchor, p.tgw_core, 5)?;
        ping_once(&self.tgw, p.anchor_core, 5)?;
        ping_once(&self.tgw, p.cnx, 5)?;
        ping_once(&self.cnx, p.tgw_cnx, 5)?;
        if !self.moved {
            ping_once(&self.host, p.anchor_home, 5)?;
            ping_once(&self.anchor, p.host_home, 5)?;
        } else {
            ping_once(&self.host, p.tgw_visit, 5)?;
            ping_once(&self.tgw, p.host_coa, 5)?;
        }
        Ok(())
    }

    /// Variant without the detour through the anchor for translated packets toward H:
    /// tgw's binding for H keeps its slow-path route (`H dev vdmm0`) and tgw no longer
    /// routes H's home prefix to the anchor, so a packet tgw translates for H must be
    /// encapsulated by tgw itself (toward the host's care-of address). Call before
    /// [`TransitionLab::move_host`].
    pub fn translate_straight_into_tunnel(&mut self) -> Result<()> {
        let p = &self.plan;
        let fam = if p.anchor_core.is_ipv6() { "-6" } else { "-4" };
        self.tgw.ip(&[fam, "route", "del", p.home_prefix])?;
        self.straight = true;
        Ok(())
    }

    /// The move: the host leaves the home link (its veth is deleted), comes up on the
    /// visited link with a care-of address, keeps H on `lo`, starts its own vdmm; then
    /// the transition gateway and the anchor update their bindings (see the module doc
    /// for the exact commands).
    pub fn move_host(&mut self) -> Result<()> {
        let p = self.plan.clone();
        let h = &self.host;
        let home = p.host_home;
        // Keep the home address: on lo, as a host address.
        h.ip(&[
            "addr",
            "add",
            &format!("{home}/{}", host_len(home)),
            "dev",
            "lo",
        ])?;
        // Leave home.
        h.ip(&["link", "del", HOST_HOME_IF])?;
        // Arrive in the visited network.
        addr(h, HOST_VISIT_IF, p.host_coa, plen(p.host_coa))?;
        link_up(h, HOST_VISIT_IF, &["gro", "on", "tx", "off"])?;
        route(h, "default", p.tgw_visit)?;
        // The host's own vdmm.
        let mv = &self.host_vdmm;
        mv.ctl(&["load", "--iface", HOST_VISIT_IF])?;
        // The slow path encapsulates what the host sends: whole packets with their
        // checksums filled in, no GSO super-packets.

        mv.ctl(&["endpoint", "add", &p.host_coa.to_string()])?;
        mv.ctl(&["peer", "add", &p.tgw_visit.to_string()])?;
        let back_prefix = match self.scenario {
            Scenario::V4HostIntoV6 => POOL4,
            Scenario::V6HostIntoV4 => XLAT_PREFIX6,
        };
        for prefix in [p.cnh_prefix, back_prefix] {
            mv.ctl(&[
                "binding",
                "add",
                prefix,
                "--locator",
                &p.tgw_visit.to_string(),
                "--source",
                &p.host_coa.to_string(),
            ])?;
        }
        // Transition gateway: H toward the host's care-of address (re-encapsulation into
        // family G), the correspondent's prefix back toward the anchor from COA_F.
        let hbind = format!("{home}/{}", host_len(home));
        let coa_f = self.host_coa_home_family.to_string();
        let (locator, source) = (p.host_coa.to_string(), p.tgw_visit.to_string());
        let mut args = vec![
            "binding",
            "add",
            &hbind,
            "--locator",
            &locator,
            "--source",
            &source,
        ];
        if !self.straight {
            args.push("--no-route");
        }
        self.tgw_vdmm.ctl(&args)?;
        self.tgw_vdmm.ctl(&[
            "binding",
            "add",
            p.cnh_prefix,
            "--locator",
            &p.anchor_core.to_string(),
            "--source",
            &coa_f,
        ])?;
        self.moved = true;
        ping_once(&self.tgw, p.host_coa, 5)?;
        ping_once(&self.host, p.tgw_visit, 5)?;
        // Anchor last: from now on H's traffic is tunnelled.
        self.anchor_vdmm.ctl(&[
            "binding",
            "add",
            "--replace",
            &hbind,
            "--locator",
            &coa_f,
            "--source",
            &p.anchor_core.to_string(),
        ])?;
        Ok(())
    }

    /// Counters of all three vdmm instances, for failure messages.
    pub fn all_stats(&self) -> String {
        let mut s = String::new();
        for (name, v) in [
            ("anchor", &self.anchor_vdmm),
            ("tgw", &self.tgw_vdmm),
            ("host", &self.host_vdmm),
        ] {
            match v.stats() {
                Ok(c) => s.push_str(&format!("{name}:\n{c}")),
                Err(e) => s.push_str(&format!("{name}: {e:#}\n")),
            }
        }
        s
    }
}

// ---------------------------------------------------------------------------------------
// A TCP echo session that survives across calls (and across the move)
// ---------------------------------------------------------------------------------------

fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

/// An echo server in `ns` bound to `bind`: accepts ONE connection, checks every byte
/// against the pattern and echoes it. The handle returns (bytes, peer address).
pub fn echo_server(
    ns: &Netns,
    bind: SocketAddr,
    timeout: Duration,
) -> Result<thread::JoinHandle<Result<(u64, SocketAddr)>>> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let h = in_netns(ns, move || {
        let l = TcpListener::bind(bind).with_context(|| format!("bind tcp {bind}"))?;
        let _ = ready_tx.send(());
        let (mut s, peer) = l.accept()?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        let mut buf = vec![0u8; 16384];
        let mut got = 0u64;
        loop {
            let n = match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => bail!("echo server {bind}: {e} after {got} bytes"),
            };
            for (i, b) in buf[..n].iter().enumerate() {
                let want = pattern(got + i as u64);
                ensure!(
                    *b == want,
                    "echo server: byte {} is {b:#x}, expected {want:#x}",
                    got + i as u64
                );
            }
            s.write_all(&buf[..n])
                .map_err(|e| anyhow!("echo server {bind}: {e} after {got} bytes"))?;
            got += n as u64;
        }
        Ok((got, peer))
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| anyhow!("echo server in {} did not start", ns.name()))?;
    Ok(h)
}

/// A TCP client connection held by a thread in a namespace; `exchange` sends bytes of the
/// pattern and reads them back, verified.
pub struct TcpSession {
    cmd: mpsc::Sender<u64>,
    res: mpsc::Receiver<Result<u64>>,
    handle: Option<thread::JoinHandle<Result<u64>>>,
    timeout: Duration,
}

impl TcpSession {
    /// Connects from `ns` to `to` (returns the local address it got).
    pub fn open(ns: &Netns, to: SocketAddr, timeout: Duration) -> Result<(TcpSession, SocketAddr)> {
        let (cmd_tx, cmd_rx) = mpsc::channel::<u64>();
        let (res_tx, res_rx) = mpsc::channel::<Result<u64>>();
        let (local_tx, local_rx) = mpsc::channel();
        let handle = in_netns(ns, move || {
            let mut s = match TcpStream::connect_timeout(&to, timeout) {
                Ok(s) => s,
                Err(e) => {
                    let _ = local_tx.send(Err(anyhow!("connect {to}: {e}")));
                    bail!("connect {to}: {e}");
                }
            };
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            let _ = local_tx.send(Ok(s.local_addr()?));
            let mut offset = 0u64;
            let mut buf = vec![0u8; 16384];
            while let Ok(n) = cmd_rx.recv() {
                if n == 0 {
                    break;
                }
                let r = (|| -> Result<u64> {
                    let mut done = 0u64;
                    while done < n {
                        let k = (n - done).min(buf.len() as u64) as usize;
                        let chunk: Vec<u8> = (0..k as u64).map(|i| pattern(offset + i)).collect();
                        s.write_all(&chunk).map_err(|e| {
                            anyhow!("TCP client: write: {e} at byte {offset} of the connection")
                        })?;
                        s.read_exact(&mut buf[..k]).map_err(|e| {
                            anyhow!("TCP client: echo read: {e} at byte {offset} of the connection")
                        })?;
                        ensure!(
                            buf[..k] == chunk[..],
                            "TCP client: echoed bytes at {offset} differ"
                        );
                        offset += k as u64;
                        done += k as u64;
                    }
                    Ok(done)
                })();
                let failed = r.is_err();
                let _ = res_tx.send(r);
                if failed {
                    break;
                }
            }
            s.shutdown(std::net::Shutdown::Write)?;
            let mut b = [0u8; 1];
            let _ = s.read(&mut b);
            Ok(offset)
        });
        let local = local_rx
            .recv_timeout(timeout + Duration::from_secs(2))
            .map_err(|_| anyhow!("TCP client thread gave no answer"))??;
        Ok((
            TcpSession {
                cmd: cmd_tx,
                res: res_rx,
                handle: Some(handle),
                timeout,
            },
            local,
        ))
    }

    /// Sends `bytes` and reads them back (16 KiB at a time), verified.
    pub fn exchange(&self, bytes: u64) -> Result<u64> {
        self.cmd
            .send(bytes)
            .map_err(|_| anyhow!("TCP client thread is gone"))?;
        let wait = self.timeout * 4 + Duration::from_secs(bytes / 100_000);
        self.res
            .recv_timeout(wait)
            .map_err(|_| anyhow!("TCP exchange of {bytes} bytes: no result in {wait:?}"))?
    }

    /// Closes the connection; returns the bytes exchanged over its life.
    pub fn close(mut self) -> Result<u64> {
        let _ = self.cmd.send(0);
        join(self.handle.take().unwrap())
    }
}

impl Drop for TcpSession {
    fn drop(&mut self) {
        let _ = self.cmd.send(0);
    }
}

/// `0.0.0.0:port` or `[::]:port` for `family`.
pub fn any_addr(family: Family, port: u16) -> SocketAddr {
    match family {
        Family::V4 => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
        Family::V6 => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
    }
}

// ---------------------------------------------------------------------------------------
// What the host sends into the visited network
// ---------------------------------------------------------------------------------------

/// `tcpdump -Q out` on one interface: the frames it sends. (Frames an interface
/// receives are tapped only after its XDP program, so a receive-side capture would show
/// the host's decapsulated packets, not what was on the wire.)
pub struct OutCapture {
    child: Option<std::process::Child>,
    file: PathBuf,
}

static OUT_SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl OutCapture {
    pub fn start(ns: &Netns, dev: &str) -> Result<OutCapture> {
        use std::io::BufRead;
        let file = std::env::temp_dir().join(format!(
            "vdmm-transition-{}-{}.pcap",
            std::process::id(),
            OUT_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns.name(), "tcpdump", "-n", "-i", dev])
            .args(["-Q", "out", "-s", "256", "-U", "--immediate-mode", "-w"])
            .arg(&file)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("spawn tcpdump")?;
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(|l| l.ok())
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let cap = OutCapture {
            child: Some(child),
            file,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains("listening on") => break,
                Ok(_) => {}
                Err(_) => bail!("tcpdump on {dev} did not start"),
            }
        }
        thread::sleep(Duration::from_millis(200));
        Ok(cap)
    }

    pub fn stop(mut self) -> Result<crate::lab::CaptureSummary> {
        thread::sleep(Duration::from_millis(300));
        let mut child = self.child.take().expect("running");
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        child.wait()?;
        let data = std::fs::read(&self.file)
            .with_context(|| format!("read capture {}", self.file.display()))?;
        crate::lab::CaptureSummary::from_pcap(&data)
    }
}

impl Drop for OutCapture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.file);
    }
}
