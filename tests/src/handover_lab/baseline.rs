//! The break-before-make baseline, as classic Mobile IP / DMM hands over: the client
//! leaves its AP (its radio detaches), attaches to the next one, gets a new care-of
//! address there by DHCP (busybox udhcpc against dnsmasq on the AP host), and only then
//! is the anchor's binding updated (the lab plays the mobility signalling: `vdmm-ctl
//! binding add --replace` on the anchor and a host route to the care-of address on the
//! AP host, as a Proxy Mobile IPv6 access gateway would install). The client keeps its
//! home address on its interface and sends from it.
//!
//! The settings favour the baseline: dnsmasq answers at once (`--no-ping`, no address
//! conflict check) and the lab spends no time on scanning or association, so the
//! measured interruption is what addressing and signalling alone cost.

use std::{
    net::Ipv4Addr,
    process::{Child, Command, Stdio},
};

use anyhow::{Context, Result, bail};

use super::{
    AIR_CLIENT, AP_RADIO_IF, CLIENT_HOME, CLIENT_IF, HandoverLab, air::Air, air_ap_port,
    ap_locator, ap_subnet_gateway, traffic::now_ns,
};

/// Starts dnsmasq as the DHCP server of AP host `i`'s radio subnet.
pub fn start_dhcp_server(lab: &HandoverLab, i: usize) -> Result<Child> {
    let gw = ap_subnet_gateway(i);
    let o = gw.octets();
    let range = format!(
        "{}.{}.{}.100,{}.{}.{}.199,255.255.255.0,1h",
        o[0], o[1], o[2], o[0], o[1], o[2]
    );
    let log = std::fs::File::create(lab.dir.join(format!("dnsmasq-ap{}.log", i + 1)))?;
    Command::new("ip")
        .args(["netns", "exec", lab.aps[i].name(), "dnsmasq"])
        .args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--port=0",
            "--user=root",
            "--bind-interfaces",
            &format!("--interface={AP_RADIO_IF}"),
            "--except-interface=lo",
            &format!("--dhcp-range={range}"),
            &format!("--dhcp-option=option:router,{gw}"),
            "--dhcp-authoritative",
            "--no-ping",
            "--log-facility=-",
            "--log-dhcp",
        ])
        .arg(format!(
            "--dhcp-leasefile={}",
            lab.dir.join(format!("ap{}.leases", i + 1)).display()
        ))
        .arg(format!(
            "--pid-file={}",
            lab.dir.join(format!("dnsmasq-ap{}.pid", i + 1)).display()
        ))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("start dnsmasq")
}

/// The udhcpc script: on a lease, add the care-of address, route everything through the
/// AP host from the home address, and write the address to `coa` for the lab.
fn write_dhcp_script(lab: &HandoverLab) -> Result<std::path::PathBuf> {
    let path = lab.dir.join("udhcpc.sh");
    let coa = lab.dir.join("coa");
    let script = format!(
        "#!/bin/sh\ncase \"$1\" in\n  bound|renew)\n    ip addr replace \"$ip/$mask\" dev \"$interface\"\n    ip route replace default via \"$router\" dev \"$interface\" src {CLIENT_HOME}\n    echo \"$ip\" > {}\n    ;;\nesac\nexit 0\n",
        coa.display()
    );
    std::fs::write(&path, script)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// Timestamps of one break-before-make handover (ns).
#[derive(Clone, Copy, Debug)]
pub struct BaselineHandover {
    /// The radio detached from the old AP host.
    pub detached: u64,
    /// The radio attached to the new one.
    pub attached: u64,
    /// DHCP finished: the client has its care-of address and default route.
    pub addressed: u64,
    /// The anchor's binding and the AP host's route point at the new attachment.
    pub bound: u64,
    pub coa: Ipv4Addr,
}

/// Attaches the client to AP host `to` the classic way: air, DHCP, binding update.
/// `from` is the AP host it leaves (`None` at the first attachment).
pub fn attach(
    lab: &HandoverLab,
    air: &mut Air,
    from: Option<usize>,
    to: usize,
) -> Result<BaselineHandover> {
    let script = write_dhcp_script(lab)?;
    let detached = now_ns();
    let old_coa = current_coa(lab);
    if from.is_some() {
        // Break: the radio leaves, the client drops its care-of address and route.
        air.detach(AIR_CLIENT)?;
        if let Some(c) = old_coa {
            let _ = lab
                .client
                .ip(&["addr", "del", &format!("{c}/24"), "dev", CLIENT_IF]);
        }
    }
    // Make: attach to the new AP host.
    air.attach_only(AIR_CLIENT, &air_ap_port(to))?;
    let attached = now_ns();
    let out = lab.client.exec(
        "udhcpc",
        &[
            "-i",
            CLIENT_IF,
            "-f",
            "-q",
            "-n",
            "-t",
            "10",
            "-T",
            "1",
            "-s",
            &script.display().to_string(),
        ],
    )?;
    let addressed = now_ns();
    let coa: Ipv4Addr = std::fs::read_to_string(lab.dir.join("coa"))
        .context("udhcpc wrote no care-of address")?
        .trim()
        .parse()
        .with_context(|| format!("udhcpc: {}", String::from_utf8_lossy(&out.stderr)))?;
    if !is_in_subnet(coa, ap_subnet_gateway(to)) {
        bail!("care-of address {coa} is not in ap{}'s subnet", to + 1);
    }
    // Binding update: the AP host routes the home address to the care-of address, the
    // anchor tunnels it to the AP host.
    lab.aps[to].ip(&[
        "route",
        "replace",
        &format!("{CLIENT_HOME}/32"),
        "via",
        &coa.to_string(),
        "dev",
        AP_RADIO_IF,
    ])?;
    lab.ctl(
        &lab.gw1,
        &[
            "binding",
            "add",
            &format!("{CLIENT_HOME}/32"),
            "--locator",
            &ap_locator(to).to_string(),
            "--replace",
        ],
    )?;
    let bound = now_ns();
    if let Some(f) = from {
        let _ = lab.aps[f].ip(&["route", "del", &format!("{CLIENT_HOME}/32")]);
    }
    Ok(BaselineHandover {
        detached,
        attached,
        addressed,
        bound,
        coa,
    })
}

fn current_coa(lab: &HandoverLab) -> Option<Ipv4Addr> {
    std::fs::read_to_string(lab.dir.join("coa"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn is_in_subnet(a: Ipv4Addr, gw: Ipv4Addr) -> bool {
    a.octets()[..3] == gw.octets()[..3]
}
