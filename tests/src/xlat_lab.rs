//! The translation lab: an IPv6-only host and an IPv4-only host on either side of a
//! translator namespace, for end-to-end SIIT tests (tests/translate_netns.rs) and the
//! translation forwarding-rate benchmark against TAYGA (vdmm-xlat-bench).
//!
//! ```text
//!  host6                          xlat (vdmm_xdp on xl6 and xl4, or TAYGA)            host4
//!  h6 2001:db8:1c0:2:21::/64 ── xl6 2001:db8:1c0:2::1/64   xl4 198.51.100.1/24 ── h4 198.51.100.2/24
//!  routes 2001:db8:100::/40,      routes 192.0.2.0/24, 1.0.0.0/24, 10.0.0.0/24     routes 192.0.2.0/24,
//!  2001:db8:2::/120, :3::/120,    dev xl6 (the IPv4 space of the IPv6 side, which  1.0.0.0/24, 10.0.0.0/24,
//!  2001:db8:64::/96 via xl6           the kernel's FIB must forward for 4->6)          203.0.113.0/24 via xl4
//! ```
//!
//! The translator configuration is the conformance README's (RFC 6052 prefix
//! 2001:db8:100::/40, EAMT 2001:db8:3::/120 <-> 1.0.0.0/24 and 2001:db8:2::/120 <->
//! 10.0.0.0/24, RFC 6791 source 203.0.113.8, lowest IPv6 MTU 1280), or, for the
//! comparison with TAYGA, the /96 prefix 2001:db8:64::/96 with the IPv6 host mapped
//! explicitly to 192.0.2.33 (EAMT entry /128 <-> /32; TAYGA `map`). Not the well-known
//! 64:ff9b::/96: RFC 6052 forbids it for non-global IPv4 addresses, and TAYGA refuses
//! 198.51.100.2 (documentation space) under it ("Destination unreachable: No route").
//!
//! vdmm is driven through the real vdmm-ctl binary (`--pin-dir /run/vdmm/<ns> --netns
//! <ns>`, the pin directory a private bpffs mounted from the host). The `natpt` commands
//! are used when the binary has them; otherwise the maps are written through their pins
//! with aya (the contract in `vdmm_common::translate::maps`).
//!
//! Neighbours are static everywhere (no ARP / ND during measurements), GRO is on on every
//! veth end (XDP_REDIRECT into a veth needs its peer in NAPI mode) and tx checksum
//! offload is off (XDP sees the raw bytes). Dropping the lab unmounts the pins and
//! deletes the namespaces (also on panic).

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use aya::maps::{Array, LpmTrie, Map, MapData, lpm_trie::Key};
use vdmm_common::{
    maps as names,
    translate::{EamEntry, Prefix6, maps::XlatConfig},
};

use crate::{
    lab::{Counters, default_ctl_path, in_netns, join},
    netns::{Netns, is_bpffs, require_root, run},
    packet::Mac,
};

pub const HOST6_IF: &str = "h6";
pub const XL6_IF: &str = "xl6";
pub const XL4_IF: &str = "xl4";
pub const HOST4_IF: &str = "h4";

pub const HOST6_MAC: Mac = [0x02, 0, 0, 0, 0x06, 0x02];
pub const XL6_MAC: Mac = [0x02, 0, 0, 0, 0x06, 0x01];
pub const XL4_MAC: Mac = [0x02, 0, 0, 0, 0x04, 0x01];
pub const HOST4_MAC: Mac = [0x02, 0, 0, 0, 0x04, 0x02];

pub const HOST6: &str = "2001:db8:1c0:2:21::";
pub const XL6: &str = "2001:db8:1c0:2::1";
pub const XL4: &str = "198.51.100.1";
pub const HOST4: &str = "198.51.100.2";
/// The IPv6 host as the IPv4 host sees it (pool6 /40 or the /96 run's explicit mapping).
pub const HOST6_AS_V4: &str = "192.0.2.33";
/// The IPv4 host as the IPv6 host sees it under the conformance prefix 2001:db8:100::/40.
pub const HOST4_AS_V6: &str = "2001:db8:1c6:3364:2::";
/// ... and under the /96 prefix of the TAYGA comparison.
pub const HOST4_AS_V6_96: &str = "2001:db8:64::c633:6402";
pub const PREFIX96: &str = "2001:db8:64::";

/// Which translator configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XlatPrefix {
    /// The conformance README: 2001:db8:100::/40 plus its EAMT and RFC 6791 address.
    Conformance,
    /// 2001:db8:64::/96, the IPv6 host mapped to 192.0.2.33 (the TAYGA comparison).
    Wkp96,
}

/// What runs in the translator namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Translator {
    /// vdmm_xdp on xl6 and xl4, configured for the prefix.
    Vdmm(XlatPrefix),
    /// Nothing (the caller starts its own, e.g. TAYGA).
    None,
}

pub struct XlatLab {
    pub translator: Translator,
    /// The vdmm-ctl binary.
    pub ctl: PathBuf,
    /// The translator's pin directory (a bpffs mounted on /run/vdmm/<xlat ns>).
    pub pin: PathBuf,
    /// How the translator maps were written: "vdmm-ctl natpt" or "aya (maps)".
    pub configured_with: String,
    mounted: bool,
    /// Programs and links that live as long as the lab ([`XlatLab::silence_hosts`]).
    keep: Vec<OwnedFd>,
    // Namespaces last: dropped after Drop::drop unmounted the pins.
    pub host6: Netns,
    pub xlat: Netns,
    pub host4: Netns,
}

fn mac_str(m: Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn ip(ns: &Netns, args: &str) -> Result<()> {
    let v: Vec<&str> = args.split_whitespace().collect();
    ns.ip(&v)?;
    Ok(())
}

impl XlatLab {
    pub fn build(translator: Translator) -> Result<XlatLab> {
        require_root()?;
        let ctl = default_ctl_path()?;
        if matches!(translator, Translator::Vdmm(_)) && !ctl.is_file() {
            bail!(
                "vdmm-ctl not found at {} (build it with `cargo build -p vdmm-ctl`, or set VDMM_CTL)",
                ctl.display()
            );
        }
        let host6 = Netns::new("x6h")?;
        let xlat = Netns::new("xgw")?;
        let host4 = Netns::new("x4h")?;
        let pin = PathBuf::from("/run/vdmm").join(xlat.name());
        let mut lab = XlatLab {
            translator,
            ctl,
            pin,
            configured_with: String::new(),
            mounted: false,
            keep: vec![],
            host6,
            xlat,
            host4,
        };
        lab.wire()?;
        if let Translator::Vdmm(prefix) = translator {
            lab.load_vdmm(prefix)?;
        }
        Ok(lab)
    }

    fn wire(&self) -> Result<()> {
        for (n1, if1, n2, if2) in [
            (&self.host6, HOST6_IF, &self.xlat, XL6_IF),
            (&self.xlat, XL4_IF, &self.host4, HOST4_IF),
        ] {
            run(Command::new("ip").args([
                "link",
                "add",
                if1,
                "netns",
                n1.name(),
                "type",
                "veth",
                "peer",
                "name",
                if2,
                "netns",
                n2.name(),
            ]))?;
        }
        for (ns, dev, mac) in [
            (&self.host6, HOST6_IF, HOST6_MAC),
            (&self.xlat, XL6_IF, XL6_MAC),
            (&self.xlat, XL4_IF, XL4_MAC),
            (&self.host4, HOST4_IF, HOST4_MAC),
        ] {
            ip(ns, &format!("link set {dev} address {}", mac_str(mac)))?;
            ip(ns, &format!("link set {dev} up"))?;
            // GRO: redirected / XDP_TX'd frames are only delivered to a veth in NAPI mode.
            // tx off: XDP must see complete checksums.
            ns.exec("ethtool", &["-K", dev, "gro", "on", "tx", "off"])?;
        }
        ip(
            &self.host6,
            &format!("addr add {HOST6}/64 dev {HOST6_IF} nodad"),
        )?;
        ip(&self.xlat, &format!("addr add {XL6}/64 dev {XL6_IF} nodad"))?;
        ip(&self.xlat, &format!("addr add {XL4}/24 dev {XL4_IF}"))?;
        ip(&self.host4, &format!("addr add {HOST4}/24 dev {HOST4_IF}"))?;
        for s in ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"] {
            self.xlat.exec("sysctl", &["-qw", s])?;
        }
        // Static neighbours: nothing waits for ARP / ND, and ND never meets the translator.
        ip(
            &self.xlat,
            &format!(
                "neigh add {HOST4} lladdr {} dev {XL4_IF} nud permanent",
                mac_str(HOST4_MAC)
            ),
        )?;
        ip(
            &self.xlat,
            &format!(
                "neigh add {HOST6} lladdr {} dev {XL6_IF} nud permanent",
                mac_str(HOST6_MAC)
            ),
        )?;
        ip(
            &self.host6,
            &format!(
                "neigh add {XL6} lladdr {} dev {HOST6_IF} nud permanent",
                mac_str(XL6_MAC)
            ),
        )?;
        ip(
            &self.host4,
            &format!(
                "neigh add {XL4} lladdr {} dev {HOST4_IF} nud permanent",
                mac_str(XL4_MAC)
            ),
        )?;
        // Hosts: the other family's space (as seen through the translator) via it.
        for p in [
            "192.0.2.0/24",
            "1.0.0.0/24",
            "10.0.0.0/24",
            "203.0.113.0/24",
        ] {
            ip(&self.host4, &format!("route add {p} via {XL4}"))?;
        }
        for p in [
            "2001:db8:100::/40",
            "2001:db8:2::/120",
            "2001:db8:3::/120",
            "2001:db8:64::/96",
        ] {
            ip(&self.host6, &format!("-6 route add {p} via {XL6}"))?;
        }
        // Translator: the IPv4 space of the IPv6 side is forwarded toward the IPv6 side
        // (vdmm translates an IPv4 destination under pool6 only when the kernel would
        // forward it); the EAMT's IPv6 prefixes live there too. (TAYGA replaces the
        // 192.0.2.0/24 route with its tun device.)
        if matches!(self.translator, Translator::Vdmm(_)) {
            for p in ["192.0.2.0/24", "1.0.0.0/24", "10.0.0.0/24"] {
                ip(&self.xlat, &format!("route add {p} dev {XL6_IF}"))?;
            }
        }
        for p in ["2001:db8:2::/120", "2001:db8:3::/120"] {
            ip(&self.xlat, &format!("-6 route add {p} dev {XL6_IF}"))?;
        }
        Ok(())
    }

    fn load_vdmm(&mut self, prefix: XlatPrefix) -> Result<()> {
        std::fs::create_dir_all(&self.pin)
            .with_context(|| format!("mkdir {}", self.pin.display()))?;
        if !is_bpffs(&self.pin) {
            run(Command::new("mount")
                .args(["-t", "bpf", "bpf"])
                .arg(&self.pin))?;
        }
        self.mounted = true;
        for dev in [XL6_IF, XL4_IF] {
            self.ctl(&["load", "--iface", dev])
                .with_context(|| format!("vdmm-ctl load --iface {dev}"))?;
        }
        self.ctl(&[
            "config",
            "set",
            "--icmp-source-v4",
            XL4,
            "--icmp-source-v6",
            XL6,
        ])?;
        self.configured_with = self.configure(prefix)?;
        Ok(())
    }

    /// Whether this vdmm-ctl has the `natpt` commands.
    pub fn ctl_has_natpt(&self) -> bool {
        Command::new(&self.ctl)
            .args(["natpt", "--help"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    fn configure(&self, prefix: XlatPrefix) -> Result<String> {
        let (pool6, eamt) = prefix_config(prefix);
        if self.ctl_has_natpt() && std::env::var_os("VDMM_XLAT_LAB_AYA").is_none() {
            self.ctl(&["natpt", "prefix", "set", pool6])?;
            for (p6, p4) in &eamt {
                self.ctl(&["natpt", "eam", "add", p6, p4])?;
            }
            if prefix == XlatPrefix::Conformance {
                self.ctl(&["natpt", "rfc6791", "set", "203.0.113.8"])?;
            }
            self.ctl(&["natpt", "mtu", "set", "1280"])?;
            // The fragmentation slow path: the IPv4 space of the IPv6 side into vdmmx0
            // (the EAMT prefixes got theirs from `eam add`).
            self.ctl(&["natpt", "route", "add", "192.0.2.0/24"])?;
            return Ok("vdmm-ctl natpt".into());
        }
        write_translator_maps(&self.pin, prefix)?;
        for p in ["192.0.2.0/24", "1.0.0.0/24", "10.0.0.0/24"] {
            ip(
                &self.xlat,
                &format!(
                    "route replace {p} via 169.254.118.1 dev vdmmx0 onlink mtu 1252 proto 118"
                ),
            )?;
        }
        Ok("aya (maps written through their pins: VDMM_XLAT_LAB_AYA set, or vdmm-ctl without natpt commands)".into())
    }

    /// Drops everything the two hosts receive right after AF_PACKET sockets saw it (a tcx
    /// ingress program returning TC_ACT_SHOT runs after the packet taps), so the hosts
    /// never answer (no echo replies, port unreachables or RSTs crossing the translator
    /// during a test that counts what it translates). Lasts as long as the lab.
    pub fn silence_hosts(&mut self) -> Result<()> {
        for (ns, dev) in [(&self.host6, HOST6_IF), (&self.host4, HOST4_IF)] {
            let dev = dev.to_owned();
            let fds = join(in_netns(ns, move || {
                let prog = load_tc_drop()?;
                let link = tcx_ingress(&prog, &dev)?;
                Ok((prog, link))
            }))?;
            self.keep.push(fds.0);
            self.keep.push(fds.1);
        }
        Ok(())
    }

    /// Runs `vdmm-ctl --pin-dir PIN --netns XLAT args...`; returns stdout.
    pub fn ctl(&self, args: &[&str]) -> Result<String> {
        let out = self.ctl_raw(args)?;
        if !out.status.success() {
            bail!(
                "vdmm-ctl {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn ctl_raw(&self, args: &[&str]) -> Result<Output> {
        Command::new(&self.ctl)
            .arg("--pin-dir")
            .arg(&self.pin)
            .arg("--netns")
            .arg(self.xlat.name())
            .args(args)
            .output()
            .with_context(|| format!("spawn {}", self.ctl.display()))
    }

    /// The translator's counters (`vdmm-ctl stats --json`).
    pub fn stats(&self) -> Result<Counters> {
        Counters::parse_json(&self.ctl(&["stats", "--json"])?)
    }
}

/// The translator configuration of `prefix` as (RFC 6052 prefix, EAMT (IPv6, IPv4)).
pub fn prefix_config(prefix: XlatPrefix) -> (&'static str, Vec<(&'static str, &'static str)>) {
    match prefix {
        XlatPrefix::Conformance => (
            "2001:db8:100::/40",
            vec![
                ("2001:db8:3::/120", "1.0.0.0/24"),
                ("2001:db8:2::/120", "10.0.0.0/24"),
            ],
        ),
        XlatPrefix::Wkp96 => (
            "2001:db8:64::/96",
            vec![("2001:db8:1c0:2:21::/128", "192.0.2.33/32")],
        ),
    }
}

/// Writes the translator maps pinned in `pin` with aya (what `vdmm-ctl natpt` does), per
/// the contract in `vdmm_common::translate::maps`.
pub fn write_translator_maps(pin: &Path, prefix: XlatPrefix) -> Result<()> {
    let (pool6, eamt) = prefix_config(prefix);
    let parse6 = |s: &str| -> Result<([u8; 16], u8)> {
        let (a, l) = s.split_once('/').ok_or_else(|| anyhow!("{s}: no length"))?;
        Ok((a.parse::<Ipv6Addr>()?.octets(), l.parse()?))
    };
    let parse4 = |s: &str| -> Result<([u8; 4], u8)> {
        let (a, l) = s.split_once('/').ok_or_else(|| anyhow!("{s}: no length"))?;
        Ok((a.parse::<Ipv4Addr>()?.octets(), l.parse()?))
    };
    let (p, plen) = parse6(pool6)?;
    let cfg = XlatConfig {
        pool6: Prefix6::new(p, plen).ok_or_else(|| anyhow!("bad prefix {pool6}"))?,
        flags: 0,
        lowest_ipv6_mtu: 1280,
        rfc6791_v4: if prefix == XlatPrefix::Conformance {
            [203, 0, 113, 8]
        } else {
            [0; 4]
        },
        rfc6791_v6: [0; 16],
        frag_ifindex: 0,
    };
    let open = |name: &str| -> Result<Map> {
        let data = MapData::from_pin(pin.join(name))
            .map_err(|e| anyhow!("open pinned map {name}: {e}"))?;
        Ok(Map::from_map_data(data)?)
    };
    let mut c: Array<MapData, XlatConfig> = Array::try_from(open(names::XLAT_CONFIG)?)?;
    // `load` recorded the fragmentation slow path's vdmmx1: keep it.
    let cfg = XlatConfig {
        frag_ifindex: c.get(&0, 0)?.frag_ifindex,
        ..cfg
    };
    c.set(0, cfg, 0)?;
    let mut t4: LpmTrie<MapData, [u8; 4], EamEntry> = LpmTrie::try_from(open(names::EAMT_V4)?)?;
    let mut t6: LpmTrie<MapData, [u8; 16], EamEntry> = LpmTrie::try_from(open(names::EAMT_V6)?)?;
    for (p6, p4) in &eamt {
        let (a6, l6) = parse6(p6)?;
        let (a4, l4) = parse4(p4)?;
        let e = EamEntry::new(a6, l6, a4, l4).ok_or_else(|| anyhow!("bad EAM {p6} {p4}"))?;
        t4.insert(&Key::new(e.v4_len as u32, e.v4), e, 0)?;
        t6.insert(&Key::new(e.v6_len as u32, e.v6), e, 0)?;
    }
    // As `vdmm-ctl natpt` does after every change: the data plane caches EAMT answers.
    let pins = vdmm_ctl::pin::PinDir::new(pin);
    vdmm_ctl::cache_gen::invalidate(&vdmm_ctl::cache_gen::open(&pins, names::XLAT_GEN)?)?;
    Ok(())
}

impl Drop for XlatLab {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg("-l").arg(&self.pin).output();
            let _ = std::fs::remove_dir(&self.pin);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Raw frames: AF_PACKET sockets opened inside a namespace

/// An AF_PACKET socket bound to one interface of a namespace (all protocols), for
/// injecting raw frames and capturing what the interface receives.
pub struct RawSocket {
    fd: OwnedFd,
    ifindex: i32,
}

impl RawSocket {
    pub fn open(ns: &Netns, dev: &str) -> Result<RawSocket> {
        let dev = dev.to_owned();
        // The socket belongs to the namespace it is created in, whatever thread uses it.
        join(in_netns(ns, move || {
            let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
            let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto) };
            if fd < 0 {
                bail!("socket(AF_PACKET): {}", std::io::Error::last_os_error());
            }
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let name = std::ffi::CString::new(dev.clone())?;
            let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
            if ifindex == 0 {
                bail!("no interface {dev}");
            }
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto as u16;
            sll.sll_ifindex = ifindex;
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    &sll as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if rc != 0 {
                bail!(
                    "bind AF_PACKET to {dev}: {}",
                    std::io::Error::last_os_error()
                );
            }
            Ok(RawSocket { fd, ifindex })
        }))
    }

    /// Sends one complete Ethernet frame out of the interface.
    pub fn send(&self, frame: &[u8]) -> Result<()> {
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                0,
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n != frame.len() as isize {
            bail!("sendto: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// The next frame the interface RECEIVED (frames it sent are skipped), or None after
    /// `timeout`.
    pub fn recv(&self, timeout: Duration) -> Result<Option<Vec<u8>>> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let rc = unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as i32) };
            if rc < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                bail!("poll: {e}");
            }
            if rc == 0 {
                continue;
            }
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut sl = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    &mut sll as *mut _ as *mut libc::sockaddr,
                    &mut sl,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::Interrupted
                {
                    continue;
                }
                bail!("recvfrom: {e}");
            }
            if sll.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            return Ok(Some(buf[..n as usize].to_vec()));
        }
    }

    /// Discards every frame already queued.
    pub fn drain(&self) -> Result<()> {
        while self.recv(Duration::from_millis(1))?.is_some() {}
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// A tc (tcx) ingress program that drops everything, loaded through bpf(2) directly

fn bpf_sys(cmd: libc::c_long, attr: &mut [u8]) -> Result<OwnedFd> {
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 {
        bail!("bpf({cmd}): {}", std::io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(rc as i32) })
}

/// `r0 = TC_ACT_SHOT; exit` as a BPF_PROG_TYPE_SCHED_CLS program.
fn load_tc_drop() -> Result<OwnedFd> {
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
    const TC_ACT_SHOT: i32 = 2;
    let mut insns = Vec::new();
    // mov r0, imm (0xb7); exit (0x95)
    insns.extend_from_slice(&[0xb7, 0, 0, 0]);
    insns.extend_from_slice(&TC_ACT_SHOT.to_le_bytes());
    insns.extend_from_slice(&[0x95, 0, 0, 0, 0, 0, 0, 0]);
    let license = std::ffi::CString::new("GPL").unwrap();
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&BPF_PROG_TYPE_SCHED_CLS.to_le_bytes());
    attr[4..8].copy_from_slice(&((insns.len() / 8) as u32).to_le_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_le_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_le_bytes());
    attr[48..55].copy_from_slice(b"xlat_rx");
    bpf_sys(BPF_PROG_LOAD, &mut attr).context("load the tc drop program")
}

/// Attaches `prog` to `dev`'s tcx ingress (calling thread's namespace) through a link.
fn tcx_ingress(prog: &OwnedFd, dev: &str) -> Result<OwnedFd> {
    const BPF_LINK_CREATE: libc::c_long = 28;
    const BPF_TCX_INGRESS: u32 = 46;
    let name = std::ffi::CString::new(dev)?;
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        bail!("no interface {dev}");
    }
    let mut attr = [0u8; 64];
    attr[0..4].copy_from_slice(&(prog.as_raw_fd() as u32).to_le_bytes());
    attr[4..8].copy_from_slice(&ifindex.to_le_bytes());
    attr[8..12].copy_from_slice(&BPF_TCX_INGRESS.to_le_bytes());
    bpf_sys(BPF_LINK_CREATE, &mut attr).with_context(|| format!("tcx ingress link on {dev}"))
}
