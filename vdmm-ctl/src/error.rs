//! Errors of the vdmm control-plane library. Every variant renders as one line that names
//! the problem in the domain's words (the `vdmm-ctl` binary prints it after `error: `);
//! the variants are distinct so callers such as the daemon and the tests can match on them.

use std::{io, net::IpAddr, path::PathBuf};

use crate::addr::Prefix;

/// Result alias of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A vAP move that was refused or failed (its message says which and why).
    #[error(transparent)]
    Move(#[from] crate::handover::mover::MoveError),

    /// A cluster description (`vap move --cluster FILE`) that does not parse or check.
    #[error("cluster file {}: {reason}", path.display())]
    BadCluster { path: PathBuf, reason: String },

    /// Text that is not an IPv4 or IPv6 address.
    #[error("invalid address `{0}`: expected an IPv4 or IPv6 address")]
    BadAddress(String),

    /// Text that is not `ADDR` or `ADDR/LEN`.
    #[error("invalid prefix `{text}`: {reason}")]
    BadPrefix { text: String, reason: String },

    /// A prefix length larger than the family allows.
    #[error("invalid prefix `{text}`: length {len} is out of range (0..={max} for {family})")]
    PrefixLengthOutOfRange {
        text: String,
        len: u32,
        max: u8,
        family: &'static str,
    },

    /// `HOME/LEN` with bits set after the prefix length.
    #[error("invalid prefix `{text}`: host bits are set; did you mean {canonical}?")]
    HostBitsSet { text: String, canonical: Prefix },

    /// Locator and outer source of a binding are of different families.
    #[error("locator {locator} and source {src} are of different address families")]
    FamilyMismatch { locator: IpAddr, src: IpAddr },

    /// `--source` is not a configured local tunnel endpoint.
    #[error("source {0} is not a local tunnel endpoint; add it with `vdmm-ctl endpoint add {0}`")]
    SourceNotEndpoint(IpAddr),

    /// No `--source` and no local endpoint of the locator's family to default to.
    #[error(
        "no local {family} tunnel endpoint to use as the source toward locator {locator}; \
         add one with `vdmm-ctl endpoint add ADDR` or pass --source"
    )]
    NoEndpointOfFamily {
        family: &'static str,
        locator: IpAddr,
    },

    /// Locators and sources must be unicast addresses a tunnel can be sent to / from.
    #[error("{what} {addr} is not a usable unicast address")]
    NotUnicast { what: &'static str, addr: IpAddr },

    #[error(
        "a binding for {prefix} already exists (locator {locator}); delete it first or pass --replace"
    )]
    BindingExists { prefix: Prefix, locator: IpAddr },

    #[error("no binding for {0}")]
    NoSuchBinding(Prefix),

    #[error("{0} is already a local tunnel endpoint")]
    EndpointExists(IpAddr),

    #[error("{0} is not a local tunnel endpoint")]
    NoSuchEndpoint(IpAddr),

    #[error(
        "endpoint {addr} is the source of the binding {binding} (and {more} more); delete or change those bindings first"
    )]
    EndpointInUse {
        addr: IpAddr,
        binding: Prefix,
        more: usize,
    },

    #[error("{0} is already a tunnel peer")]
    PeerExists(IpAddr),

    #[error("{0} is not a tunnel peer")]
    NoSuchPeer(IpAddr),

    #[error("table full: {what} holds at most {max} entries")]
    Full { what: &'static str, max: u32 },

    #[error("outer hop limit {0} is out of range (1..=255, or 0 for the default 64)")]
    BadHopLimit(u32),

    /// Arguments that contradict each other.
    #[error("{0}")]
    Conflict(String),

    /// The interface name does not resolve in the current network namespace.
    #[error("unknown interface `{0}`")]
    UnknownInterface(String),

    #[error(
        "vdmm is already loaded on {iface} (link pinned at {path}); run `vdmm-ctl unload --iface {iface}` first"
    )]
    AlreadyLoaded { iface: String, path: PathBuf },

    #[error("vdmm is not loaded on {iface} (no link pinned at {path})")]
    NotLoadedOnInterface { iface: String, path: PathBuf },

    #[error("vdmm is not loaded at {0} (no pinned maps); run `vdmm-ctl load --iface IFACE` first")]
    NotLoaded(PathBuf),

    /// The agent's state file does not read back exactly; it is left as it is.
    #[error(
        "the agent's state file {path} is damaged ({detail}); refusing to start on it, and it \
         was left untouched (restore it from a backup, or move it away to start from an empty state)"
    )]
    StateFile { path: PathBuf, detail: String },

    /// The agent refused a request (its one-line message).
    #[error("{0}")]
    Agent(String),

    /// A store that others write moved on since the batch was planned.
    #[error(
        "the store moved on to revision {current} since revision {base}; plan the change again"
    )]
    StoreConflict { base: u64, current: u64 },

    #[error(
        "pinned map {name} at {path} does not have the layout this vdmm-ctl expects ({detail}); \
         it was made by another version: run `vdmm-ctl reset` and load again"
    )]
    MapLayout {
        name: &'static str,
        path: PathBuf,
        detail: String,
    },

    #[error(
        "{dir} is not on a bpffs, and this command runs in a private mount namespace \
         (e.g. under `ip netns exec`) where a bpffs mounted now would vanish with it; \
         mount one from the host first (`mkdir -p {dir} && mount -t bpf bpf {dir}`) \
         or use `vdmm-ctl --netns NAME` instead of `ip netns exec`"
    )]
    PrivateMountNamespace { dir: PathBuf },

    /// `binding add` needs the kernel's route to the locator for the slow-path route.
    #[error(
        "no usable route to locator {locator}: {detail}; nothing was changed (add a route to \
         the locator, or pass --no-route to bind without the slow-path route)"
    )]
    NoRouteToLocator { locator: IpAddr, detail: String },

    /// The slow path's device (`vdmm0`) could not be set up, or is not vdmm's.
    #[error("{0}")]
    Device(String),

    /// `binding add` routes the home prefix into `vdmm0`, which `load` creates.
    #[error(
        "the slow-path device {0} does not exist in this network namespace; run `vdmm-ctl \
         load` (it creates it), or pass --no-route to bind without the slow-path route"
    )]
    NoSlowPathDevice(&'static str),

    /// The kernel refused the slow-path route of a binding; the binding was rolled back.
    #[error(
        "cannot install the kernel route `{route}`: {detail}; the binding was not changed \
         (pass --no-route to bind without the slow-path route)"
    )]
    RouteInstall { route: String, detail: String },

    /// The kernel refused to remove vdmm's route for a home prefix.
    #[error("cannot remove the kernel route for {home}: {detail}")]
    RouteRemove { home: Prefix, detail: String },

    #[error("cannot mount bpffs on {path}: {source}")]
    Mount { path: PathBuf, source: io::Error },

    #[error("cannot enter network namespace {name}: {source}")]
    Netns { name: String, source: io::Error },

    /// The verifier (or the kernel) refused the program; `summary` is the verifier's last
    /// verdict line.
    #[error(
        "the kernel refused to load {program} ({reason}): {summary} \
         (set VDMM_VERIFIER_LOG=1 to print the whole verifier log)"
    )]
    Verifier {
        program: &'static str,
        reason: String,
        summary: String,
    },

    /// Text that is not a MAC address.
    #[error("invalid MAC address `{0}`: expected six hex bytes like 02:00:5e:10:00:01")]
    BadMac(String),

    #[error("no vAP for client {0}")]
    NoSuchVap(crate::vap::Mac),

    #[error("client {0} already has a vAP (vAP MAC {1}); delete it first")]
    VapExists(crate::vap::Mac, crate::vap::Mac),

    /// A client address or vAP MAC that another vAP already has.
    #[error("{what} {value} already belongs to the vAP of client {owner}")]
    VapTaken {
        what: &'static str,
        value: String,
        owner: crate::vap::Mac,
    },

    #[error("the eBPF object has no program `{0}`")]
    MissingProgram(&'static str),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("{context}: {source}")]
    Ebpf {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// Bad input to the load balancer (`vdmm-ctl alb`): a scenario, a report, an AP, a
    /// parameter.
    #[error("{0}")]
    Alb(String),

    /// A plot could not be drawn or written.
    #[error("cannot write the plot {path}: {detail}")]
    Plot { path: PathBuf, detail: String },
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Wraps an aya error with what was being done.
    pub fn ebpf(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Ebpf {
            context: context.into(),
            source: Box::new(source),
        }
    }
}
