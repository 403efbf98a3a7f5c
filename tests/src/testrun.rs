//! Running the data plane through `BPF_PROG_TEST_RUN`: load `vdmm_ctl::EBPF_OBJECT` into a
//! fresh set of maps, program the maps directly with the `vdmm_common` types, feed frames
//! to `vdmm_xdp` (or `vdmm_empty`) with a chosen ingress interface, and read back the
//! verdict, the output frame and the counters.
//!
//! The data plane declares its maps pinned by name, and aya pins such maps wherever it
//! loads them. To get maps that nothing else shares, every [`DataPlane`] mounts its own
//! private bpffs instance (a new, empty superblock) under `/run/vdmm-testrun/` and detaches
//! it again when dropped; the maps live on through the loaded programs' references.
//!
//! The FIB look-ups the program makes use the namespace of the ingress device, which the
//! kernel resolves in the namespace of the calling thread: enter the test's namespace
//! ([`crate::netns::Netns::enter`]) before [`DataPlane::run`].

use std::{
    ffi::CString,
    net::IpAddr,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use anyhow::{Context, Result, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader, TestRun, TestRunOptions,
    maps::{Array, HashMap, LpmTrie, PerCpuArray, PerCpuValues, RingBuf, lpm_trie::Key},
    programs::{SchedClassifier, Xdp},
};
use vdmm_common::{
    Action, Binding, CounterValue, IpAddrKey, Reason, TunnelConfig, TunnelKind,
    counters::{COUNTER_ENTRIES, counter_index, counter_labels},
    maps,
    vap::{
        MacKey, VAP_HAS_V4, VAP_HAS_V6, Vap, VapAddr, VapAddrSlot, VapCounters, VapEvent,
        VapMacSlot,
    },
};
use vdmm_ctl::verifier::load_retrying;

/// A private bpffs mount, detached and removed on drop.
struct PrivateBpffs {
    dir: PathBuf,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl PrivateBpffs {
    fn new() -> Result<Self> {
        let dir = PathBuf::from(format!(
            "/run/vdmm-testrun/{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let target = CString::new(dir.as_os_str().as_bytes())?;
        let fstype = CString::new("bpf")?;
        let rc = unsafe {
            libc::mount(
                fstype.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            let _ = std::fs::remove_dir(&dir);
            bail!("mount bpffs on {}: {err}", dir.display());
        }
        Ok(Self { dir })
    }
}

impl Drop for PrivateBpffs {
    fn drop(&mut self) {
        if let Ok(target) = CString::new(self.dir.as_os_str().as_bytes()) {
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// What one test run returned.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// The XDP verdict (`XDP_*` code).
    pub action: u32,
    /// The frame as the program left it.
    pub data: Vec<u8>,
    /// The kernel's average duration per repetition.
    pub duration: Duration,
}

impl RunResult {
    /// The verdict as an [`Action`], if it is one.
    pub fn action(&self) -> Option<Action> {
        Action::ALL.into_iter().find(|a| *a as u32 == self.action)
    }
}

/// Keeps the calling thread on the CPU it runs on, so that consecutive test runs see the
/// same per-CPU caches (the first-level route and vAP caches are per CPU).
pub fn stay_on_this_cpu() -> Result<usize> {
    // SAFETY: plain libc calls on the calling thread with a zeroed, then filled, set.
    unsafe {
        let cpu = libc::sched_getcpu();
        if cpu < 0 {
            bail!("sched_getcpu: {}", std::io::Error::last_os_error());
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!("sched_setaffinity: {}", std::io::Error::last_os_error());
        }
        Ok(cpu as usize)
    }
}

/// The name of an XDP verdict code.
pub fn action_name(code: u32) -> String {
    match Action::ALL.into_iter().find(|a| *a as u32 == code) {
        Some(a) => a.name().to_string(),
        None => format!("unknown({code})"),
    }
}

/// The data plane loaded into fresh, private maps.
pub struct DataPlane {
    // Field order matters: the object (programs and map fds) goes before the mount.
    ebpf: Ebpf,
    _bpffs: PrivateBpffs,
}

/// `struct xdp_md` as BPF_PROG_TEST_RUN takes it in `ctx_in`.
fn xdp_md(len: usize, ingress_ifindex: u32) -> [u8; 24] {
    let fields: [u32; 6] = [0, len as u32, 0, ingress_ifindex, 0, 0];
    let mut out = [0u8; 24];
    for (i, f) in fields.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&f.to_ne_bytes());
    }
    out
}

/// Room for any frame the program can produce (the input plus 256 bytes of headroom it
/// may grow into, rounded up generously).
const OUT_BUF: usize = 8192;

impl DataPlane {
    /// Loads the data plane object with both XDP programs and empty maps.
    pub fn load() -> Result<Self> {
        crate::netns::require_root()?;
        let bpffs = PrivateBpffs::new()?;
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(&bpffs.dir)
            .load(vdmm_ctl::EBPF_OBJECT)
            .context("load the vdmm eBPF object")?;
        for name in [maps::XDP_PROGRAM, maps::EMPTY_PROGRAM, maps::VAP_PROGRAM] {
            let prog: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or_else(|| anyhow!("program {name} missing from the eBPF object"))?
                .try_into()
                .with_context(|| format!("program {name} is not XDP"))?;
            load_retrying(|| prog.load()).with_context(|| format!("verifier rejected {name}"))?;
        }
        // The TC egress slow path, when the object has one.
        if let Some(p) = ebpf.program_mut(maps::TC_EGRESS_PROGRAM) {
            let prog: &mut SchedClassifier = p.try_into().with_context(|| {
                format!("program {} is not a classifier", maps::TC_EGRESS_PROGRAM)
            })?;
            load_retrying(|| prog.load())
                .with_context(|| format!("verifier rejected {}", maps::TC_EGRESS_PROGRAM))?;
        }
        Ok(Self {
            ebpf,
            _bpffs: bpffs,
        })
    }

    /// The directory the maps are pinned in (a private bpffs).
    pub fn pin_dir(&self) -> &Path {
        &self._bpffs.dir
    }

    fn map_mut(&mut self, name: &str) -> Result<&mut aya::maps::Map> {
        self.ebpf
            .map_mut(name)
            .ok_or_else(|| anyhow!("map {name} missing from the eBPF object"))
    }

    fn map(&self, name: &str) -> Result<&aya::maps::Map> {
        self.ebpf
            .map(name)
            .ok_or_else(|| anyhow!("map {name} missing from the eBPF object"))
    }

    /// Adds a local tunnel endpoint.
    pub fn add_endpoint(&mut self, addr: IpAddr) -> Result<()> {
        let mut m: HashMap<_, IpAddrKey, u32> = HashMap::try_from(self.map_mut(maps::ENDPOINTS)?)?;
        m.insert(IpAddrKey::from(addr), 0, 0)
            .with_context(|| format!("endpoint {addr}"))?;
        self.tunnel_addresses_changed()
    }

    /// Removes a local tunnel endpoint.
    pub fn del_endpoint(&mut self, addr: IpAddr) -> Result<()> {
        let mut m: HashMap<_, IpAddrKey, u32> = HashMap::try_from(self.map_mut(maps::ENDPOINTS)?)?;
        m.remove(&IpAddrKey::from(addr))
            .with_context(|| format!("endpoint {addr}"))?;
        self.tunnel_addresses_changed()
    }

    /// Removes a peer.
    pub fn del_peer(&mut self, addr: IpAddr) -> Result<()> {
        let mut m: HashMap<_, IpAddrKey, u32> = HashMap::try_from(self.map_mut(maps::PEERS)?)?;
        m.remove(&IpAddrKey::from(addr))
            .with_context(|| format!("peer {addr}"))?;
        self.tunnel_addresses_changed()
    }

    /// Increments the tunnel address generation, as the control plane does after every
    /// change to the endpoints and peers.
    fn tunnel_addresses_changed(&self) -> Result<()> {
        self.generation_changed(maps::TUNNEL_GEN)
    }

    /// Adds a peer allowed to send tunnel packets.
    pub fn add_peer(&mut self, addr: IpAddr) -> Result<()> {
        let mut m: HashMap<_, IpAddrKey, u32> = HashMap::try_from(self.map_mut(maps::PEERS)?)?;
        m.insert(IpAddrKey::from(addr), 0, 0)
            .with_context(|| format!("peer {addr}"))?;
        self.tunnel_addresses_changed()
    }

    /// Adds (or replaces) a binding `home/len -> locator` with outer source `source`.
    pub fn add_binding(
        &mut self,
        home: IpAddr,
        len: u8,
        locator: IpAddr,
        source: IpAddr,
    ) -> Result<()> {
        if locator.is_ipv4() != source.is_ipv4() {
            bail!("binding {home}/{len}: locator {locator} and source {source} differ in family");
        }
        let binding = Binding::new(IpAddrKey::from(locator), IpAddrKey::from(source));
        // As the control plane stores them: single addresses in the host hash.
        if u32::from(len) == if home.is_ipv4() { 32 } else { 128 } {
            let mut m: HashMap<_, IpAddrKey, Binding> =
                HashMap::try_from(self.map_mut(maps::HOST_BINDINGS)?)?;
            m.insert(IpAddrKey::from(home), binding, 0)
                .with_context(|| format!("binding {home}/{len}"))?;
            return self.generation_changed(maps::XLAT_GEN);
        }
        match home {
            IpAddr::V4(h) => {
                let mut m: LpmTrie<_, [u8; 4], Binding> =
                    LpmTrie::try_from(self.map_mut(maps::BINDINGS_V4)?)?;
                m.insert(&Key::new(len as u32, h.octets()), binding, 0)
            }
            IpAddr::V6(h) => {
                let mut m: LpmTrie<_, [u8; 16], Binding> =
                    LpmTrie::try_from(self.map_mut(maps::BINDINGS_V6)?)?;
                m.insert(&Key::new(len as u32, h.octets()), binding, 0)
            }
        }
        .with_context(|| format!("binding {home}/{len}"))?;
        // As the control plane does after every binding change (`mapping_cache`).
        self.generation_changed(maps::XLAT_GEN)
    }

    /// Writes the tunnel configuration (entry 0 of the config array).
    pub fn set_config(&mut self, config: TunnelConfig) -> Result<()> {
        let mut m: Array<_, TunnelConfig> = Array::try_from(self.map_mut(maps::CONFIG)?)?;
        m.set(0, config, 0).context("config")?;
        Ok(())
    }

    /// Adds a vAP: its entry in `VDMM_VAPS`, its addresses in `VDMM_VAP_ADDRS` and
    /// zeroed counters in slot `vap.slot`.
    pub fn add_vap(&mut self, vap: Vap) -> Result<()> {
        let ncpu = aya::util::nr_cpus().map_err(|(_, e)| anyhow!("nr_cpus: {e}"))?;
        let mut stats: PerCpuArray<_, VapCounters> =
            PerCpuArray::try_from(self.map_mut(maps::VAP_STATS)?)?;
        stats
            .set(
                vap.slot,
                PerCpuValues::try_from(vec![VapCounters::default(); ncpu])?,
                0,
            )
            .context("vAP counters")?;
        let mut vaps: HashMap<_, MacKey, Vap> = HashMap::try_from(self.map_mut(maps::VAPS)?)?;
        vaps.insert(vap.client_mac, vap, 0).context("vAP")?;
        let mut addrs: HashMap<_, IpAddrKey, VapAddr> =
            HashMap::try_from(self.map_mut(maps::VAP_ADDRS)?)?;
        let owner = VapAddr {
            client_mac: vap.client_mac,
        };
        if vap.has(VAP_HAS_V4) {
            addrs.insert(IpAddrKey::from_v4(vap.ipv4), owner, 0)?;
        }
        if vap.has(VAP_HAS_V6) {
            addrs.insert(IpAddrKey::from_v6(vap.ipv6), owner, 0)?;
        }
        self.vaps_changed()
    }

    /// Deletes the vAP of `client_mac` (its addresses first, as `vdmm-ctl vap delete`
    /// does) and returns what it was.
    pub fn del_vap(&mut self, client_mac: MacKey) -> Result<Vap> {
        let vaps: HashMap<_, MacKey, Vap> = HashMap::try_from(self.map(maps::VAPS)?)?;
        let vap = vaps.get(&client_mac, 0).context("no such vAP")?;
        let mut addrs: HashMap<_, IpAddrKey, VapAddr> =
            HashMap::try_from(self.map_mut(maps::VAP_ADDRS)?)?;
        if vap.has(VAP_HAS_V4) {
            addrs.remove(&IpAddrKey::from_v4(vap.ipv4))?;
        }
        if vap.has(VAP_HAS_V6) {
            addrs.remove(&IpAddrKey::from_v6(vap.ipv6))?;
        }
        let mut vaps: HashMap<_, MacKey, Vap> = HashMap::try_from(self.map_mut(maps::VAPS)?)?;
        vaps.remove(&client_mac).context("vAP")?;
        self.vaps_changed()?;
        Ok(vap)
    }

    /// The vAP generation (`VDMM_VAP_GEN`).
    pub fn vap_generation(&self) -> Result<u64> {
        let m: Array<_, u64> = Array::try_from(self.map(maps::VAP_GEN)?)?;
        Ok(m.get(&0, 0)?)
    }

    /// The valid slots of the first-level cache of vAPs by client MAC (`VDMM_VAP_L1`) on
    /// every CPU, as (slot index, slot): those filled in the current generation.
    pub fn cached_vaps(&self) -> Result<Vec<(u32, VapMacSlot)>> {
        let stamp = self.vap_generation()? + 1;
        let m: PerCpuArray<_, VapMacSlot> = PerCpuArray::try_from(self.map(maps::VAP_L1)?)?;
        let mut out = Vec::new();
        for i in 0..m.len() {
            out.extend(
                m.get(&i, 0)?
                    .iter()
                    .filter(|s| s.stamp == stamp)
                    .map(|s| (i, *s)),
            );
        }
        Ok(out)
    }

    /// The valid slots of the first-level cache by client address (`VDMM_VAP_ADDR_L1`),
    /// as [`DataPlane::cached_vaps`].
    pub fn cached_vap_addrs(&self) -> Result<Vec<(u32, VapAddrSlot)>> {
        let stamp = self.vap_generation()? + 1;
        let m: PerCpuArray<_, VapAddrSlot> = PerCpuArray::try_from(self.map(maps::VAP_ADDR_L1)?)?;
        let mut out = Vec::new();
        for i in 0..m.len() {
            out.extend(
                m.get(&i, 0)?
                    .iter()
                    .filter(|s| s.stamp == stamp)
                    .map(|s| (i, *s)),
            );
        }
        Ok(out)
    }

    /// Increments the vAP generation, as the control plane does after every change to the
    /// vAP tables.
    fn vaps_changed(&self) -> Result<()> {
        self.generation_changed(maps::VAP_GEN)
    }

    /// Increments the cache generation `name` (`VDMM_VAP_GEN`, `VDMM_TUNNEL_GEN`,
    /// `VDMM_XLAT_GEN`) with the control plane's own code (`vdmm_ctl::cache_gen`).
    pub fn generation_changed(&self, name: &str) -> Result<()> {
        let gen_map = vdmm_ctl::cache_gen::open(&vdmm_ctl::pin::PinDir::new(self.pin_dir()), name)?;
        vdmm_ctl::cache_gen::invalidate(&gen_map)?;
        Ok(())
    }

    /// The counters of the vAP in `slot`, summed over the CPUs.
    pub fn vap_counters(&self, slot: u32) -> Result<VapCounters> {
        let m: PerCpuArray<_, VapCounters> = PerCpuArray::try_from(self.map(maps::VAP_STATS)?)?;
        let mut sum = VapCounters::default();
        for c in m.get(&slot, 0)?.iter() {
            sum.add(c);
        }
        Ok(sum)
    }

    /// Drains the vAP reports (`VDMM_VAP_EVENTS`).
    pub fn vap_events(&mut self) -> Result<Vec<VapEvent>> {
        let mut ring: RingBuf<_> = RingBuf::try_from(self.map_mut(maps::VAP_EVENTS)?)?;
        let mut out = Vec::new();
        while let Some(item) = ring.next() {
            if item.len() >= std::mem::size_of::<VapEvent>() {
                // SAFETY: the data plane writes whole VapEvents.
                out.push(unsafe { std::ptr::read_unaligned(item.as_ptr() as *const VapEvent) });
            }
        }
        Ok(out)
    }

    /// Every counter of the XDP program, summed over the CPUs, indexed by `counter_index`.
    pub fn counters(&self) -> Result<Vec<CounterValue>> {
        self.counter_array(maps::COUNTERS)
    }

    /// Every counter of the TC egress program (same layout as [`Self::counters`]).
    pub fn tc_counters(&self) -> Result<Vec<CounterValue>> {
        self.counter_array(maps::TC_COUNTERS)
    }

    fn counter_array(&self, name: &str) -> Result<Vec<CounterValue>> {
        let m: PerCpuArray<_, CounterValue> = PerCpuArray::try_from(self.map(name)?)?;
        let mut out = Vec::with_capacity(COUNTER_ENTRIES as usize);
        for i in 0..COUNTER_ENTRIES {
            let per_cpu = m.get(&i, 0).with_context(|| format!("counter {i}"))?;
            let mut sum = CounterValue::default();
            for v in per_cpu.iter() {
                sum.packets += v.packets;
                sum.bytes += v.bytes;
            }
            out.push(sum);
        }
        Ok(out)
    }

    /// One counter, summed over the CPUs.
    pub fn counter(
        &self,
        reason: Reason,
        kind: TunnelKind,
        action: Action,
    ) -> Result<CounterValue> {
        Ok(self.counters()?[counter_index(reason, kind, action) as usize])
    }

    /// Runs `vdmm_xdp` once on `frame` as if received on `ingress_ifindex`.
    pub fn run(&self, frame: &[u8], ingress_ifindex: u32) -> Result<RunResult> {
        self.run_program(maps::XDP_PROGRAM, frame, ingress_ifindex, 1)
    }

    /// Runs an XDP program of the object (`vdmm_xdp` or `vdmm_empty`) `repeat` times on
    /// `frame` (the kernel reuses one buffer for all repetitions, so from the second one
    /// on the program sees its own output) and returns the last verdict, the output and
    /// the kernel's average time per repetition.
    pub fn run_program(
        &self,
        program: &str,
        frame: &[u8],
        ingress_ifindex: u32,
        repeat: u32,
    ) -> Result<RunResult> {
        let prog: &Xdp = self
            .ebpf
            .program(program)
            .ok_or_else(|| anyhow!("program {program} missing"))?
            .try_into()?;
        let ctx = xdp_md(frame.len(), ingress_ifindex);
        let mut out = vec![0u8; OUT_BUF];
        let opts = TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: Some(&ctx),
            repeat,
            ..TestRunOptions::default()
        };
        let r = prog.test_run(opts).with_context(|| {
            format!(
                "BPF_PROG_TEST_RUN {program} ({} byte frame, ifindex {ingress_ifindex})",
                frame.len()
            )
        })?;
        out.truncate(r.data_size_out as usize);
        Ok(RunResult {
            action: r.return_value,
            data: out,
            duration: r.duration,
        })
    }
}

impl DataPlane {
    /// Runs the TC egress program (`vdmm_tc_egress`) once on `frame` as an skb leaving
    /// through `ifindex`. The verdict is the TC code (`TC_ACT_OK` 0, `TC_ACT_SHOT` 2).
    pub fn run_tc(&self, frame: &[u8], ifindex: u32) -> Result<RunResult> {
        let prog: &SchedClassifier = self
            .ebpf
            .program(maps::TC_EGRESS_PROGRAM)
            .ok_or_else(|| anyhow!("program {} missing", maps::TC_EGRESS_PROGRAM))?
            .try_into()?;
        // struct __sk_buff up to and including `ifindex` (offset 40); the kernel zero-fills
        // the rest and accepts only a few fields, ifindex among them (it picks skb->dev).
        let mut ctx = [0u8; 44];
        ctx[40..44].copy_from_slice(&ifindex.to_ne_bytes());
        let mut out = vec![0u8; OUT_BUF];
        let opts = TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: Some(&ctx),
            repeat: 1,
            ..TestRunOptions::default()
        };
        let r = prog.test_run(opts).with_context(|| {
            format!(
                "BPF_PROG_TEST_RUN {} ({} byte frame, ifindex {ifindex})",
                maps::TC_EGRESS_PROGRAM,
                frame.len()
            )
        })?;
        out.truncate(r.data_size_out as usize);
        Ok(RunResult {
            action: r.return_value,
            data: out,
            duration: r.duration,
        })
    }
}

/// Differences between two counter snapshots: (index, packets, bytes) for every counter
/// that changed.
pub fn counter_delta(before: &[CounterValue], after: &[CounterValue]) -> Vec<(u32, u64, u64)> {
    before
        .iter()
        .zip(after)
        .enumerate()
        .filter(|(_, (b, a))| b != a)
        .map(|(i, (b, a))| {
            (
                i as u32,
                a.packets.wrapping_sub(b.packets),
                a.bytes.wrapping_sub(b.bytes),
            )
        })
        .collect()
}

/// `reason/kind/action` of a counter index, for messages.
pub fn counter_name(index: u32) -> String {
    match counter_labels(index) {
        Some((r, k, a)) => format!("{}/{}/{}", r.name(), k.name(), a.name()),
        None => format!("counter#{index}"),
    }
}

/// The interface index of `name` in the calling thread's namespace.
pub fn ifindex(name: &str) -> Result<u32> {
    let c = CString::new(name)?;
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        bail!("no interface {name}: {}", std::io::Error::last_os_error());
    }
    Ok(i)
}
