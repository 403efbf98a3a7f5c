//! The `vdmm-ctl` command line (clap derive). Addresses and prefixes are taken as text
//! and parsed by [`crate::addr`], so bad input gets vdmm's one-line errors.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::pin::DEFAULT_PIN_DIR;

/// vdmm control plane: load the XDP tunnel data plane and program its tables.
///
/// vdmm is a distributed mobility management gateway. Its data plane (an XDP program)
/// encapsulates packets addressed to a mobile node's home address or home prefix toward
/// the node's current locator (IPv4-in-IPv4, IPv6-in-IPv4, IPv4-in-IPv6, IPv6-in-IPv6),
/// and decapsulates tunnel packets arriving at a local tunnel endpoint from a known peer.
/// Everything vdmm-ctl sets up is pinned under the pin directory and keeps working after
/// vdmm-ctl exits.
///
/// Typical set-up of a gateway:
///
///   vdmm-ctl load --iface eth0
///   vdmm-ctl endpoint add 192.0.2.1
///   vdmm-ctl peer add 198.51.100.1
///   vdmm-ctl binding add 10.1.0.0/16 --locator 198.51.100.1
#[derive(Debug, Parser)]
#[command(name = "vdmm-ctl", version, about, long_about, verbatim_doc_comment)]
pub struct Cli {
    /// Where vdmm's maps, program and links are pinned (one directory per gateway).
    ///
    /// Must be on a bpffs; one is mounted when needed: at /sys/fs/bpf for a directory under
    /// it, on DIR itself otherwise. Network-namespace labs use /run/vdmm/NAME.
    #[arg(long, global = true, env = "VDMM_PIN_DIR", default_value = DEFAULT_PIN_DIR, value_name = "DIR")]
    pub pin_dir: PathBuf,

    /// Work in this named network namespace (see `ip netns`).
    ///
    /// Interface names are looked up there, while the pin directory stays in the caller's
    /// mount namespace. Prefer this to `ip netns exec`, whose private mount namespace loses
    /// a bpffs mounted inside it (with that, mount the pin directory beforehand).
    #[arg(long, global = true, value_name = "NAME")]
    pub netns: Option<String>,

    /// The control socket of the agent (`vdmm-ctl daemon`).
    ///
    /// When an agent listens there, the commands that change endpoints, peers, bindings,
    /// tunnel settings, vAPs and the translation configuration (`natpt`, except `natpt
    /// route`), and `apply`, go through it: it checks them as one batch, records them in
    /// its store and programs the maps; `vap list` and `vap show` ask it too. When none
    /// listens (no socket file, or nobody accepting), they work on the pinned maps
    /// directly.
    #[arg(long, global = true, env = "VDMM_AGENT_SOCKET", default_value = crate::agent::config::DEFAULT_SOCKET, value_name = "PATH")]
    pub agent_socket: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the data plane and attach it to an interface.
    ///
    /// Creates the maps (or reuses those pinned in the pin directory, so configuration
    /// survives), loads and pins the programs (reusing pinned ones built from the same
    /// code), sets up the slow path, and attaches the XDP program to what IFACE receives
    /// through a pinned BPF link, so it keeps running after vdmm-ctl exits.
    ///
    /// The slow path: the device vdmm0 in the current network namespace (a dummy device,
    /// or ifb where the kernel has no dummy driver; NOARP, mtu 65535, up, no IPv6
    /// link-local address, IPv4 and IPv6 forwarding on), with the TC egress program
    /// vdmm_tc_egress on its egress (a tcx link pinned as link_tc_vdmm0). `binding add`
    /// routes home prefixes into vdmm0; the program encapsulates what the kernel sends
    /// there and redirects it toward the locator. vdmm0 carries the alias "vdmm slow path,
    /// pins DIR": load adopts a vdmm0 with this pin directory's alias and refuses any
    /// other. Every load (with or without --iface) creates or repairs it.
    ///
    /// If a step fails, what this command did is undone (the device it created, the links
    /// it attached, and, when the pin directory held nothing of vdmm's before, the maps
    /// and programs). Without --iface, only the maps, the programs and the slow path are
    /// set up: the tables can then be filled before any interface is touched.
    Load {
        /// Interface whose received packets the data plane handles.
        #[arg(long, value_name = "IFACE", conflicts_with = "client_facing")]
        iface: Option<String>,
        /// Client-facing interface of an AP host: attach the vAP program vdmm_vap instead
        /// (link pinned as link_vap_IFACE; see `vdmm-ctl vap`).
        #[arg(long, value_name = "IFACE")]
        client_facing: Option<String>,
        /// XDP attach mode.
        #[arg(long, value_enum, default_value_t = ModeArg::Native)]
        mode: ModeArg,
    },

    /// Detach the data plane from an interface.
    ///
    /// Removes the interface's XDP link pin. The maps, the programs and the slow path
    /// (vdmm0 with its TC egress link) stay even when no interface is left: endpoints,
    /// peers, bindings (and their kernel routes into vdmm0), settings and counters survive
    /// until `vdmm-ctl reset`.
    Unload {
        /// Interface to detach from.
        #[arg(long, value_name = "IFACE")]
        iface: String,
    },

    /// Show what is pinned, where the XDP program is attached, and the slow path.
    ///
    /// The slow path is the device vdmm0 (kind, index, MTU, up, NOARP, forwarding, whose
    /// it is) and its TC egress programs; anything wrong is named with the command that
    /// repairs it.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },

    /// Remove everything vdmm pinned: detach from every interface and delete all
    /// configuration and counters.
    ///
    /// The kernel routes of the bindings (`binding add`) are removed first, then the pins
    /// (which detaches the programs, vdmm0's TC link included), then vdmm0 itself when its
    /// alias names this pin directory (a vdmm0 that vdmm-ctl did not create for it stays).
    Reset,

    /// Local tunnel endpoints: this gateway's addresses that tunnel packets are sent to.
    ///
    /// A tunnel packet (IP protocol 4 or 41) whose outer destination is a local endpoint
    /// and whose outer source is a peer is decapsulated and forwarded. Endpoints are also
    /// the outer source addresses of bindings. The first endpoint of a family becomes the
    /// source of ICMP errors of that family (see `config`).
    #[command(subcommand)]
    Endpoint(AddrCommand),

    /// Tunnel peers: the remote gateways allowed to send tunnel packets to this one.
    ///
    /// Tunnel packets from any other source are dropped and counted (reason not_peer): an
    /// open decapsulator lets anyone inject packets behind it (CVE-2020-10136).
    #[command(subcommand)]
    Peer(AddrCommand),

    /// Bindings: home address or prefix -> locator.
    ///
    /// Packets whose destination falls in a binding's home prefix (longest prefix match)
    /// are encapsulated toward its locator, the address the mobile node is reachable
    /// through now, with a local endpoint of the locator's family as the outer source.
    /// The home prefix's family and the locator's family give the tunnel kind (4in4, 6in4,
    /// 4in6, 6in6).
    #[command(subcommand)]
    Binding(BindingCommand),

    /// Tunnel-wide settings: outer hop limit and the sources of ICMP errors.
    #[command(subcommand)]
    Config(ConfigCommand),

    /// IPv4/IPv6 transition gateway: SIIT translation, address pool, segment prefixes.
    ///
    /// Stateless IP/ICMP translation (SIIT, RFC 7915) with RFC 6052 addresses, RFC 7757
    /// explicit address mappings and RFC 6791 ICMP sources; the IPv4 address pool; the
    /// IPv6 prefixes of IPv4 segments.
    ///
    /// The XDP data plane translates IPv6 packets whose destination is under an RFC 7757
    /// explicit address mapping (EAMT) or under the RFC 6052 prefix into IPv4, and IPv4
    /// packets whose destination is under an EAMT entry (or, with an RFC 6052 prefix set,
    /// any IPv4 destination the kernel would forward) into IPv6. EAMT entries win over the
    /// RFC 6052 prefix, the longest prefix wins among them. Source addresses map the same
    /// way; ICMP errors from unmapped sources get the RFC 6791 address. Changes apply to the
    /// next packet. Everything lives in pinned maps (VDMM_XLAT_CFG, VDMM_EAMT4/6,
    /// VDMM_POOL4, VDMM_SEGMENTS) and survives vdmm-ctl and reloads. With an agent
    /// running (--agent-socket), the changes go through it: it keeps them in its desired
    /// state and repairs the maps when they drift.
    ///
    /// Typical set-up of a NAT64-style translator and a pool:
    ///
    ///   vdmm-ctl natpt prefix set 64:ff9b::/96
    ///   vdmm-ctl natpt eam add 2001:db8:6::/120 198.51.100.0/24
    ///   vdmm-ctl natpt pool add 192.0.2.0/24
    ///   vdmm-ctl natpt pool alloc 2001:db8:1::7
    ///   vdmm-ctl natpt list
    #[command(subcommand, verbatim_doc_comment)]
    Natpt(NatptCommand),

    /// Show the data plane's counters.
    ///
    /// Every packet a program sees is counted once, by program (xdp: received packets;
    /// tc: sent packets, the slow path), reason (why it left the way it did), tunnel kind
    /// and action (XDP action; for tc, pass is TC_ACT_OK and drop TC_ACT_SHOT), summed
    /// over CPUs. Only non-zero counters are shown, with a total per program.
    Stats {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },

    /// Virtual access points (vAPs) of an AP host.
    ///
    /// A vAP holds one client's state on the AP host it is attached to: the client MAC
    /// (its key), a locally administered vAP MAC the client resolves its gateway to, the
    /// client's IPv4 and/or IPv6 address, its home anchor (the locator its traffic is
    /// tunnelled to, from a local endpoint), the client-facing interface, and counters.
    /// The vAP program (attached with `load --client-facing IFACE`) answers the client's
    /// ARP requests and neighbour solicitations for any address but its own with the vAP
    /// MAC, drops what the client sends from an address that is not its own, and
    /// tunnels frames sent to the vAP MAC toward the anchor (or routes them locally with
    /// --breakout). vdmm_xdp delivers packets for the client's addresses (also from the
    /// anchor's tunnel) to the client with the vAP MAC as source. Frames from a MAC
    /// without a vAP are reported (`vap events`) and passed.
    ///
    /// Typical set-up of an AP host:
    ///
    ///   vdmm-ctl load --iface eth0
    ///   vdmm-ctl load --client-facing wlan0
    ///   vdmm-ctl endpoint add 192.0.2.11
    ///   vdmm-ctl peer add 192.0.2.1
    ///   vdmm-ctl vap create 00:16:3e:00:00:01 --ipv4 10.1.0.5 --anchor 192.0.2.1
    ///
    /// With an agent running (--agent-socket), create, delete, forward, list and show go
    /// through it: it stores the vAPs and keeps them in the maps (a vAP changed behind its
    /// back is put back by its next reconcile); `move` goes through the agents the
    /// cluster file names; `events` reads the data plane's reports directly.
    #[command(subcommand, verbatim_doc_comment)]
    Vap(VapCommand),

    /// Prometheus metrics: the counters of `stats` and the sizes of the tables.
    ///
    /// Counters vdmm_packets_total and vdmm_bytes_total (labels program, reason, kind,
    /// action, family; only non-zero ones), gauges vdmm_bindings{family},
    /// vdmm_endpoints, vdmm_peers, vdmm_eamt_entries, vdmm_pool_addresses{pool},
    /// vdmm_pool_allocated{pool}, vdmm_interfaces_attached, vdmm_vaps, and
    /// vdmm_build_info{version}; per vAP, counters vdmm_vap_packets_total and
    /// vdmm_vap_bytes_total (labels client, counter: the counters of `vap show`). Read
    /// from the pinned maps on every scrape; the data plane does not need it.
    ///
    /// Handovers (`vap move`): counters vdmm_handovers_started_total,
    /// vdmm_handovers_completed_total, vdmm_handovers_failed_total{phase},
    /// vdmm_handovers_refused_total{reason} and histograms
    /// vdmm_handover_switchover_seconds and vdmm_handover_duration_seconds, read from the
    /// handover state file ($VDMM_HANDOVER_STATS, default /run/vdmm/handover-stats.json;
    /// zeros while no move ran).
    #[command(subcommand)]
    Metrics(MetricsCommand),

    /// Run the agent: keep the data plane in step with the desired state (see
    /// docs/agent.md).
    ///
    /// Loads the data plane or adopts what is pinned (nothing is detached or reloaded),
    /// attaches it to the configured interfaces, loads the desired state from its store
    /// (a damaged state file stops the start, untouched), reconciles the maps and the
    /// bindings' routes with it, and then serves the control socket (the other vdmm-ctl
    /// commands use it), Prometheus metrics (the data plane's and its own), link and
    /// address changes and a periodic reconcile until SIGTERM or SIGINT. Stopping or
    /// killing it does not stop forwarding.
    Daemon {
        /// The configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },

    /// Run the cluster watchdog: mark AP hosts whose liveness lease expired down and hand
    /// their clients to neighbours (see docs/cluster.md).
    ///
    /// Reads the [etcd] section of an agent configuration (store = "etcd"), watches the
    /// nodes' registrations, liveness keys and vAP locations, and after every change marks
    /// a node without its liveness key down and moves the vAP locations on it to a node
    /// that is up (one of its neighbours when one is, the least loaded). Every write is a
    /// transaction, so a node registering again or a concurrent handover wins. Runs until
    /// SIGTERM or SIGINT and prints what it did.
    Watchdog {
        /// An agent configuration file (TOML) with store = "etcd".
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },

    /// Apply a batch of changes, all of them or none.
    ///
    /// FILE (or `-` for standard input) holds a JSON array of changes, or an object
    /// {"ops": [...]}. Each change is an object with an `op`: endpoint_add, endpoint_del,
    /// peer_add, peer_del ({"addr"}), binding_add ({"home", "locator", "source"?,
    /// "replace"?, "route"?: default true}), binding_del ({"home"}), config_set
    /// ({"outer_hop_limit"?, "icmp_sources"?: [ADDR], "clear_icmp_sources"?: ["ipv4"|
    /// "ipv6"]}). The rules are those of the commands of the same names; the batch is
    /// checked as a whole (a binding may use an endpoint the same batch adds), and the
    /// error of a refused batch names the change that failed. Through the agent when one
    /// listens, else on the pinned maps directly.
    ///
    ///   echo '[{"op":"peer_add","addr":"192.0.2.2"},
    ///          {"op":"binding_add","home":"10.1.0.0/16","locator":"192.0.2.2"}]' | vdmm-ctl apply -
    #[command(verbatim_doc_comment)]
    Apply {
        #[arg(value_name = "FILE")]
        file: String,
    },

    /// Ask the running agent: its status, its desired state, a reconcile now.
    #[command(subcommand)]
    Agent(AgentCommand),

    /// Adaptive load balancing: move clients off overloaded APs to APs with less load and
    /// good enough signal. See docs/alb.md.
    Alb(crate::alb::cli::AlbArgs),
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Pin directory, store and revision, table sizes, interfaces, the last reconcile.
    Status,
    /// The desired state as JSON: endpoints, peers, bindings, tunnel settings.
    State,
    /// Compare the maps and routes with the desired state now and repair what differs;
    /// prints what changed.
    Reconcile,
}

#[derive(Debug, Subcommand)]
pub enum VapCommand {
    /// Create the vAP of a client.
    ///
    /// Refused when the client has a vAP, when an address or the vAP MAC belongs to
    /// another vAP, or when the anchor has no local endpoint of its family to send from;
    /// nothing is changed then. Prints the vAP as `vap show` does.
    Create {
        /// The client's MAC address.
        #[arg(value_name = "CLIENT_MAC")]
        client: String,
        /// The client's IPv4 address.
        #[arg(long, value_name = "ADDR")]
        ipv4: Option<String>,
        /// The client's IPv6 address (not link-local).
        #[arg(long, value_name = "ADDR")]
        ipv6: Option<String>,
        /// The client's home anchor: the locator its traffic is tunnelled to (required
        /// unless --breakout).
        #[arg(long, value_name = "LOCATOR")]
        anchor: Option<String>,
        /// Outer source toward the anchor (a local endpoint; default: the lowest one of
        /// the anchor's family).
        #[arg(long, value_name = "ADDR")]
        source: Option<String>,
        /// The vAP MAC (default: a locally administered MAC derived from the client MAC,
        /// unique on this host).
        #[arg(long, value_name = "MAC")]
        vap_mac: Option<String>,
        /// The client-facing interface (default: the one `load --client-facing` attached).
        #[arg(long, value_name = "IFACE")]
        iface: Option<String>,
        /// Route the client's traffic locally instead of tunnelling it to the anchor.
        #[arg(long)]
        breakout: bool,
    },
    /// Delete the vAP of a client (its addresses are no longer delivered here).
    Delete {
        #[arg(value_name = "CLIENT_MAC")]
        client: String,
    },
    /// List the vAPs.
    List {
        /// Print a JSON array of vAP objects.
        #[arg(long)]
        json: bool,
    },
    /// Show one vAP with its counters.
    ///
    /// Counters (packets and bytes, summed over CPUs): from_client (every frame received
    /// from it), uplink (sent on toward the network), spoofed (dropped: foreign source),
    /// replies (ARP / neighbour solicitations answered), delivered (packets for the
    /// client sent to it), forwarded (tunnelled to another AP host while forwarding).
    Show {
        #[arg(value_name = "CLIENT_MAC")]
        client: String,
        /// Print a JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Forward the client's packets to another AP host, or (with --off) deliver them
    /// here again.
    ///
    /// While forwarding, packets for the client's addresses are tunnelled to LOCATOR (the
    /// AP host the client moved to) instead of delivered here: a handover's grace period.
    Forward {
        #[arg(value_name = "CLIENT_MAC")]
        client: String,
        /// The AP host's locator.
        #[arg(
            long,
            value_name = "LOCATOR",
            required_unless_present = "off",
            conflicts_with = "off"
        )]
        to: Option<String>,
        /// Outer source (a local endpoint; default: the lowest one of LOCATOR's family).
        #[arg(long, value_name = "ADDR", requires = "to")]
        source: Option<String>,
        /// Stop forwarding: deliver to the client here.
        #[arg(long)]
        off: bool,
    },
    /// Print the data plane's reports of unknown clients, oldest first, and consume
    /// them.
    ///
    /// A frame from a MAC without a vAP on a client-facing interface is reported at most
    /// once a second per MAC, with the sender's address when the frame has one (ARP
    /// sender, IPv4 or IPv6 source). The reports are read from the pinned ring buffer
    /// directly, also while an agent runs (the agent does not read them); each report
    /// goes to one reader, so two commands at once share them.
    /// Move the client's vAP to another AP host: a make-before-break handover.
    ///
    /// Reads the cluster file (TOML: every AP host and anchor with its name, locator, pin
    /// directory, network namespace and, when an agent manages it, its agent's socket;
    /// see docs/handover.md), then installs the vAP on the target (same vAP MAC, same
    /// addresses), resolves the neighbour entries of the new paths (anchor and source
    /// toward the target, target toward the anchor), binds the client's home addresses to
    /// the target's locator on the client's anchor, makes the source forward what still
    /// arrives for the client to the target for the grace period, and removes the
    /// source's vAP. A failure before the removal rolls every step back: the client stays
    /// on the source. Refused without a change when the client is already on the target,
    /// the target or the client is unknown, or another move of the client runs. Every
    /// outcome is counted in the handover state file ($VDMM_HANDOVER_STATS, default
    /// /run/vdmm/handover-stats.json), which `vdmm-ctl metrics` exports. The global
    /// --pin-dir, --netns and --agent-socket do not apply: the cluster file names each
    /// node's. A node with an agent is changed through the agent's API (so the agent's
    /// reconciles keep the move); one without, on its maps.
    ///
    /// In cluster mode (agents with store = "etcd", see docs/cluster.md) a vAP is its
    /// location key in etcd: the move is one write of it, made by the target's agent
    /// (after the new paths' neighbour entries are resolved), and the anchor and the
    /// source follow by themselves; the command waits until the target serves, the
    /// anchor's binding points at the target, the source forwards and, after its agent's
    /// vap_grace_ms (instead of --grace-ms), has removed the vAP, and reports the same
    /// phases. A failure after the write moves the location back to the source. Refused
    /// when the target's and the source's agents keep vAPs differently.
    Move {
        /// The client's MAC address.
        #[arg(value_name = "CLIENT_MAC")]
        client: String,
        /// The target AP host's name in the cluster file.
        #[arg(long, value_name = "AP")]
        to: String,
        /// The cluster file.
        #[arg(long, value_name = "FILE")]
        cluster: std::path::PathBuf,
        /// Milliseconds the source forwards to the target before its vAP is removed
        /// (agents on etcd: their vap_grace_ms instead).
        #[arg(long, value_name = "MS", default_value_t = 200)]
        grace_ms: u64,
        /// Print the report as JSON (phases and times in milliseconds).
        #[arg(long)]
        json: bool,
    },
    Events {
        /// Wait up to this many seconds for a first report when there is none.
        #[arg(long, value_name = "SECONDS", default_value_t = 0)]
        wait: u64,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
}

/// XDP attach mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// In the driver (fast; veth and most physical NICs).
    Native,
    /// In the generic network stack (any interface, slower).
    Generic,
}

/// Commands over a set of addresses (endpoints, peers).
#[derive(Debug, Subcommand)]
pub enum AddrCommand {
    /// Add an address (IPv4 or IPv6).
    Add {
        #[arg(value_name = "ADDR")]
        addr: String,
    },
    /// Remove an address.
    Del {
        #[arg(value_name = "ADDR")]
        addr: String,
    },
    /// List the addresses, IPv4 first.
    List {
        /// Print a JSON array of strings.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BindingCommand {
    /// Bind a home address or prefix to a locator, and route the home prefix into the
    /// slow path.
    ///
    /// HOME is an address (a /32 or /128 binding) or a canonical prefix (no bits set after
    /// LEN). Refused when a binding for exactly this prefix exists, unless --replace.
    ///
    /// Unless --no-route, also installs a kernel route for the slow path, as
    /// `ip route replace HOME dev vdmm0 mtu MTU proto 118` would (all four tunnel kinds):
    /// MTU is the MTU of the interface the kernel routes the locator through (`ip route
    /// get LOCATOR`) less the tunnel overhead (20 for an IPv4 locator, 40 for IPv6). Why:
    /// XDP hands the kernel the packets it cannot finish, IPv4 without DF that must be
    /// fragmented and packets whose next hop has no neighbour entry yet; the kernel routes
    /// them into vdmm0, fragmenting them to the route's MTU (or answering "fragmentation
    /// needed" / "packet too big"), and vdmm_tc_egress on vdmm0 adds the outer header and
    /// sends the packet toward the locator, resolving its next hop's neighbour entry.
    /// Traffic this host itself sends to the home prefix takes the same route. vdmm0 must
    /// exist (`vdmm-ctl load` creates it). The route is installed in the network namespace
    /// vdmm-ctl runs in, marked with protocol 118 (`ip route show proto 118`), replaced by
    /// --replace and removed by `binding del` and `reset`. If it cannot be installed, the
    /// binding is not changed.
    Add {
        /// Home address or prefix: ADDR or ADDR/LEN.
        #[arg(value_name = "HOME[/LEN]")]
        home: String,
        /// Outer destination: where the mobile node is reachable now.
        #[arg(long, value_name = "ADDR")]
        locator: String,
        /// Outer source: a local endpoint of the locator's family. Default: the lowest
        /// such endpoint.
        #[arg(long, value_name = "ADDR")]
        source: Option<String>,
        /// Replace an existing binding for the same prefix (a handover) instead of failing;
        /// its route's MTU follows the new locator.
        #[arg(long)]
        replace: bool,
        /// Do not install the kernel route for the slow path (with --replace, the old
        /// binding's route is removed).
        #[arg(long)]
        no_route: bool,
    },
    /// Remove the binding for exactly this home address or prefix, and its kernel route.
    Del {
        #[arg(value_name = "HOME[/LEN]")]
        home: String,
    },
    /// List the bindings, sorted by home prefix, with their kernel routes.
    ///
    /// The ROUTE column shows vdmm's route for the home prefix, e.g. `vdmm0 mtu 1480`
    /// (`via ADDR dev DEV mtu M` for a route an older vdmm-ctl made), or `none`.
    List {
        /// Print a JSON array of {home, locator, source, outer, kind, route}, route being
        /// {dev, via, mtu} (via null for routes into vdmm0) or null.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Show the tunnel-wide settings.
    Show {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Change tunnel-wide settings; settings not named stay as they are.
    Set(ConfigSetArgs),
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("change").required(true).multiple(true))]
pub struct ConfigSetArgs {
    /// TTL / hop limit of outer headers (1-255; 0 restores the default, 64).
    #[arg(long, value_name = "N", group = "change")]
    pub outer_hop_limit: Option<String>,
    /// Source address of the ICMP errors the data plane sends (time exceeded, packet too
    /// big) for that address's family. May be given once per family.
    #[arg(long, value_name = "ADDR", group = "change")]
    pub icmp_source: Vec<String>,
    /// Source of ICMPv4 errors (same as --icmp-source with an IPv4 address).
    #[arg(long, value_name = "ADDR", group = "change")]
    pub icmp_source_v4: Option<String>,
    /// Source of ICMPv6 errors (same as --icmp-source with an IPv6 address).
    #[arg(long, value_name = "ADDR", group = "change")]
    pub icmp_source_v6: Option<String>,
    /// Clear the ICMP error source of a family: such errors are then dropped and counted
    /// (reason no_icmp_source).
    #[arg(long, value_enum, value_name = "FAMILY", group = "change")]
    pub clear_icmp_source: Vec<FamilyArg>,
}

#[derive(Debug, Subcommand)]
pub enum NatptCommand {
    /// The RFC 6052 translation prefix ("pool6"): IPv4 addresses embedded in IPv6.
    ///
    /// With a prefix P set, the IPv4 address A is represented in IPv6 as P with A embedded
    /// at the position RFC 6052 section 2.2 gives for P's length (/96: the last 32 bits),
    /// e.g. 192.0.2.33 under 64:ff9b::/96 is 64:ff9b::c000:221. Without a prefix, only EAMT
    /// entries translate.
    #[command(subcommand)]
    Prefix(PrefixCommand),

    /// Explicit address mappings (EAMT, RFC 7757): IPv6 prefix <-> IPv4 prefix.
    ///
    /// An address under one prefix maps to the address under the other with the same
    /// suffix bits, so both prefixes need suffixes of the same length (128 - LEN6 = 32 -
    /// LEN4, e.g. /120 <-> /24, /128 <-> /32). Every entry goes into both tries, VDMM_EAMT4
    /// and VDMM_EAMT6. The longest matching prefix wins, and an EAMT match wins over the
    /// RFC 6052 prefix. Pool allocations (`natpt pool alloc`) are EAMT entries too.
    #[command(subcommand)]
    Eam(EamCommand),

    /// RFC 6791 source address of translated ICMP errors whose source has no mapping.
    ///
    /// An ICMPv6 error from an IPv6 router with no IPv4 mapping (say, a hop on the IPv6
    /// path answering a traceroute from IPv4) leaves as ICMPv4 from this IPv4 address. An
    /// IPv6 address here is the same for ICMPv4 errors translated to ICMPv6 (used only
    /// without an RFC 6052 prefix). Unset: the tunnel config's ICMP source of that family
    /// (`vdmm-ctl config`); both unset: such errors are dropped and counted.
    #[command(subcommand)]
    Rfc6791(Rfc6791Command),

    /// The "lowest IPv6 MTU" of RFC 7915 section 4 (default 1280).
    ///
    /// IPv4 packets without DF are translated only while the IPv6 packet fits this MTU;
    /// larger ones are fragmented after translation (the slow path, counted). Set it to
    /// the smallest MTU of the IPv6 side when that is known to be larger than 1280.
    #[command(subcommand)]
    Mtu(MtuCommand),

    /// IPv4 UDP with checksum zero (RFC 7915 section 4.5): compute (default) or drop.
    ///
    /// compute: the translated IPv6 datagram gets a computed UDP checksum (IPv6 forbids
    /// zero). drop: such datagrams are dropped and counted (xlat_udp_zero_checksum).
    /// Fragments with checksum zero are always dropped: XDP does not reassemble.
    UdpZeroChecksum {
        #[arg(value_enum)]
        action: UdpZeroArg,
    },

    /// Traffic class / TOS of translated packets: copy (default) or reset to zero.
    ///
    /// RFC 7915 sections 4.1 and 5.1 make this configurable; copying keeps DSCP and ECN.
    TrafficClass {
        #[arg(value_enum)]
        action: TrafficClassArg,
    },

    /// The IPv4 address pool: IPv4 (care-of) addresses handed out to IPv6 hosts.
    ///
    /// A host that arrived in the IPv6 network, or an IPv6-only host that must be reachable
    /// from IPv4, gets an IPv4 address from the pool (`alloc`): an EAMT entry ADDR4/32 <->
    /// IPV6ADDR/128 in both tries, so the translator maps the two both ways. `release` makes
    /// the address free again. Pool prefixes live in VDMM_POOL4; which addresses are taken
    /// is read from the EAMT (the only record of allocations). In pools shorter than /31 the
    /// network and broadcast addresses are not handed out.
    #[command(subcommand)]
    Pool(PoolCommand),

    /// IPv6 prefixes of IPv4 segments, for the IPv6 care-of addresses of hosts there.
    ///
    /// A host that moved into an IPv4 segment gets the IPv6 care-of address made of the
    /// segment's IPv6 prefix and its IPv4 care-of address. The IPv6 care-of address is the RFC 6052 embedding of the IPv4 care-of address
    /// under the prefix of the longest segment that contains it (`segment coa`). Stored in
    /// VDMM_SEGMENTS (IPv4 segment prefix -> IPv6 prefix) for tunnel re-encapsulation.
    #[command(subcommand)]
    Segment(SegmentCommand),

    /// Kernel routes into the translator's fragmentation slow path (`vdmmx0`).
    ///
    /// An IPv4 packet without DF whose IPv6 translation would not fit the lowest IPv6 MTU
    /// is passed to the kernel (xlat_fragmented_by_kernel), which must route it into
    /// `vdmmx0` with MTU = lowest IPv6 MTU - 28, fragmenting it; `vdmm_xdp` on `vdmmx1`
    /// translates each fragment. `eam add` and `pool alloc` install such a route for their
    /// IPv4 prefix themselves; for the RFC 6052 prefix, route the IPv4 space of the IPv6
    /// side with `route add`. It is `ip route replace PREFIX4 via 169.254.118.1 dev vdmmx0
    /// onlink mtu MTU proto 118` (169.254.118.1 is a permanent neighbour with vdmmx1's MAC).
    #[command(subcommand)]
    Route(RouteCommand),

    /// Show everything: settings, EAMT, pools with their usage, segments.
    ///
    /// The settings are the RFC 6052 prefix, the RFC 6791 addresses, the lowest IPv6 MTU
    /// and the flags (UDP checksum zero, traffic class).
    List {
        /// Print one JSON object {prefix, rfc6791_v4, rfc6791_v6, lowest_ipv6_mtu,
        /// udp_zero_checksum, traffic_class, flags, eamt, pools, segments} (see the list
        /// commands of each table for their elements).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RouteCommand {
    /// Route PREFIX4/LEN into `vdmmx0` (MTU = lowest IPv6 MTU - 28); prints the route.
    Add {
        #[arg(value_name = "PREFIX4/LEN")]
        prefix: String,
    },
    /// Remove that route.
    Del {
        #[arg(value_name = "PREFIX4/LEN")]
        prefix: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PrefixCommand {
    /// Set (or replace) the RFC 6052 prefix.
    ///
    /// Lengths 32, 40, 48, 56, 64 or 96 (RFC 6052 section 2.2); bits 64..71 (the "u"
    /// octet) zero; no bits set after the length. The Well-Known Prefix 64:ff9b::/96 does
    /// not embed private IPv4 addresses (RFC 6052 section 3.1).
    Set {
        #[arg(value_name = "PREFIX6/LEN")]
        prefix: String,
    },
    /// Remove the RFC 6052 prefix (only EAMT entries translate afterwards).
    ///
    /// With PREFIX6/LEN, only if it is the prefix set.
    Clear {
        #[arg(value_name = "PREFIX6/LEN")]
        prefix: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum EamCommand {
    /// Add an EAMT entry, in both tries.
    ///
    /// Refused when either prefix already has an entry (delete it first); nested prefixes
    /// are fine (the longest match wins). The two prefixes may be given in either order.
    Add {
        #[arg(value_name = "PREFIX6/LEN")]
        prefix6: String,
        #[arg(value_name = "PREFIX4/LEN")]
        prefix4: String,
    },
    /// Remove an EAMT entry; both prefixes must match an existing entry exactly.
    Del {
        #[arg(value_name = "PREFIX6/LEN")]
        prefix6: String,
        #[arg(value_name = "PREFIX4/LEN")]
        prefix4: String,
    },
    /// List the EAMT entries, by IPv4 prefix; POOL names the pool of an allocation.
    List {
        /// Print a JSON array of {ipv6, ipv4, pool} (pool null unless the entry is a pool
        /// allocation).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum Rfc6791Command {
    /// Set the RFC 6791 address of the address's family.
    ///
    /// IPv4: the source of ICMPv6 errors translated to ICMPv4. IPv6: the source of ICMPv4
    /// errors translated to ICMPv6.
    Set {
        #[arg(value_name = "ADDR4|ADDR6")]
        addr: String,
    },
    /// Clear the RFC 6791 address(es).
    ///
    /// With ADDR, the one of its family, if it is ADDR; without, both.
    Clear {
        #[arg(value_name = "ADDR4|ADDR6")]
        addr: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MtuCommand {
    /// Set the lowest IPv6 MTU: 1280 (the IPv6 minimum link MTU) to 65535.
    Set {
        #[arg(value_name = "MTU")]
        mtu: String,
    },
    /// Back to the default, 1280.
    Clear,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum UdpZeroArg {
    /// Compute the UDP checksum of the translated datagram.
    Compute,
    /// Drop the datagram (counted).
    Drop,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TrafficClassArg {
    /// Copy the IPv4 TOS to the IPv6 traffic class and back.
    Copy,
    /// Set it to zero.
    Reset,
}

#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Add an IPv4 prefix to the pool.
    ///
    /// Pools must be disjoint and outside 0/8, 127/8, 169.254/16 and 224/3 (RFC 6890).
    Add {
        #[arg(value_name = "PREFIX4/LEN")]
        prefix: String,
    },
    /// Remove a pool prefix (refused while it has allocations, unless --force).
    ///
    /// The refusal lists the allocations; --force releases them first.
    Del {
        #[arg(value_name = "PREFIX4/LEN")]
        prefix: String,
        /// Release the pool's allocations (their EAMT entries) too.
        #[arg(long)]
        force: bool,
    },
    /// List the pools with their usage and allocations.
    ///
    /// SIZE counts the addresses handed out (without network and broadcast below /31),
    /// MAPPED those other EAMT entries already cover (never handed out).
    List {
        /// Print a JSON array of {prefix, size, allocated, mapped_otherwise, free,
        /// allocations: [{ipv4, ipv6}]}.
        #[arg(long)]
        json: bool,
    },
    /// Hand out the lowest free pool address to an IPv6 address; prints the address.
    ///
    /// Installs the EAMT entry ADDR4/32 <-> IPV6ADDR/128 (both tries). Pools are tried in address order unless --from names one. Refused when IPV6ADDR
    /// already has an allocation (or another /128 EAMT entry), and when every address is
    /// taken ("pool exhausted").
    Alloc {
        #[arg(value_name = "IPV6ADDR")]
        ipv6: String,
        /// Allocate from this pool only.
        #[arg(long, value_name = "PREFIX4/LEN")]
        from: Option<String>,
        /// Print {"ipv4": ..., "ipv6": ...}.
        #[arg(long)]
        json: bool,
    },
    /// Release an allocation, by its IPv4 or its IPv6 address.
    ///
    /// Removes its EAMT entry (both tries); the IPv4 address is free again.
    Release {
        #[arg(value_name = "ADDR4|IPV6ADDR")]
        addr: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SegmentCommand {
    /// Give an IPv4 segment its IPv6 prefix.
    ///
    /// PREFIX6 must be a valid RFC 6052 prefix (/32, /40, /48, /56, /64 or /96, bits
    /// 64..71 zero) that no other segment uses. Refused when the segment exists, unless
    /// --replace.
    Add {
        #[arg(value_name = "PREFIX4/LEN")]
        prefix4: String,
        /// The IPv6 prefix of the segment's hosts' care-of addresses.
        #[arg(long, value_name = "PREFIX6/LEN")]
        prefix6: String,
        /// Replace the IPv6 prefix of an existing segment.
        #[arg(long)]
        replace: bool,
    },
    /// Remove the segment for exactly this IPv4 prefix.
    Del {
        #[arg(value_name = "PREFIX4/LEN")]
        prefix4: String,
    },
    /// List the segments, by IPv4 prefix.
    List {
        /// Print a JSON array of {ipv4, prefix6}.
        #[arg(long)]
        json: bool,
    },
    /// Print the IPv6 care-of address of a host with IPv4 care-of address ADDR4.
    ///
    /// ADDR4 embedded (RFC 6052 section 2.2) in the IPv6 prefix of the longest segment
    /// that contains it.
    Coa {
        #[arg(value_name = "ADDR4")]
        addr: String,
        /// Print {"ipv4": ..., "segment": ..., "prefix6": ..., "ipv6": ...}.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum MetricsCommand {
    /// Serve the metrics over HTTP at /metrics (Prometheus text format) until killed.
    ///
    /// Every scrape reads the pinned maps afresh; while the data plane is not loaded a
    /// scrape gets 503 with the error. The default listens on loopback only; the metrics
    /// name the gateway's tables' sizes, so think before listening on other addresses.
    Serve {
        /// Address and port to listen on.
        #[arg(long, value_name = "ADDR:PORT", default_value = crate::commands::metrics::DEFAULT_LISTEN)]
        listen: std::net::SocketAddr,
    },
    /// Print the metrics once, as a scrape would get them.
    Dump,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FamilyArg {
    Ipv4,
    Ipv6,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_the_issue_commands() {
        let c = Cli::try_parse_from([
            "vdmm-ctl",
            "--pin-dir",
            "/run/vdmm/x",
            "load",
            "--iface",
            "v0",
            "--mode",
            "generic",
        ])
        .unwrap();
        assert_eq!(c.pin_dir, PathBuf::from("/run/vdmm/x"));
        assert!(matches!(
            c.command,
            Command::Load {
                mode: ModeArg::Generic,
                ..
            }
        ));
        let c = Cli::try_parse_from([
            "vdmm-ctl",
            "binding",
            "add",
            "10.0.0.0/8",
            "--locator",
            "192.0.2.1",
        ])
        .unwrap();
        assert!(matches!(
            c.command,
            Command::Binding(BindingCommand::Add { source: None, .. })
        ));
        assert!(Cli::try_parse_from(["vdmm-ctl", "config", "set"]).is_err());
        let c = Cli::try_parse_from(["vdmm-ctl", "stats", "--json", "--pin-dir", "/x"]).unwrap();
        assert!(matches!(c.command, Command::Stats { json: true }));
    }
}
