//! `cargo xtask setup`: everything the build and the tests need on a fresh Debian
//! machine. Every step checks first and only acts when something is missing, so a second
//! run is a quick no-op; the other xtask commands run it before they start.

use std::{fs, path::Path, process::Command, process::Stdio, time::Instant};

use anyhow::{Context, Result, bail};

use crate::workspace::{Workspace, is_root, output, run};

/// Debian packages the build, tests, labs and benchmarks use. Later issues add theirs
/// here (tayga, prometheus, etcd-server, ...).
pub const DEBIAN_PACKAGES: &[&str] = &[
    "iproute2",          // ip netns / link / route
    "iputils-ping",      // ping in the labs
    "tcpdump",           // underlay captures in the labs
    "bpftool",           // inspecting programs and maps
    "xdp-tools",         // xdp-bench, xdp-trafficgen
    "netsniff-ng",       // trafgen: 64-byte UDP load for the forwarding benchmark
    "ethtool",           // GRO / checksum offload switches on veth
    "iperf3",            // TCP transfers through the tunnels
    "python3-scapy",     // an independent packet builder for tests that want one
    "tayga",             // userspace NAT64: the translation forwarding-rate baseline
    "prometheus",        // promtool check metrics, and a server that scrapes vdmm-ctl metrics
    "dnsmasq-base",      // DHCP servers of the handover lab's break-before-make baseline
    "udhcpc",            // the baseline client's DHCP client
    "protobuf-compiler", // protoc: the etcd-client crate compiles etcd's .proto files
    "libprotobuf-dev",   // google/protobuf/*.proto, which etcd's .proto files import
    "etcd-server",       // etcd members started by the cluster tests and benchmark
    "etcd-client",       // etcdctl, to inspect a cluster's keys
    "openssl",           // certificates of the cluster's TLS test
];

/// bpf-linker release that fits the toolchain (see ../shared/toolchain.md).
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Where the data plane pins its maps on a real host.
const BPFFS: &str = "/sys/fs/bpf";

/// Runs every setup step. `verbose` also reports the steps that had nothing to do.
pub fn ensure(ws: &Workspace, verbose: bool) -> Result<()> {
    let start = Instant::now();
    let mut acted = false;
    let mut report = |step: &str, done: Outcome| {
        acted |= matches!(done, Outcome::Done(_));
        if verbose || !matches!(done, Outcome::Present) {
            eprintln!("setup: {step}: {}", done.describe());
        }
    };

    let sysroot = nightly_sysroot()?;
    report("nightly rust-src", rust_src(&sysroot)?);
    report("bpf-linker", bpf_linker(ws, &sysroot)?);
    report("Debian packages", debian_packages()?);
    report("bpffs", bpffs()?);

    if verbose || acted {
        eprintln!("setup: done in {:.1} s", start.elapsed().as_secs_f64());
    } else {
        eprintln!("setup: nothing missing (`cargo xtask setup` lists the checks)");
    }
    Ok(())
}

enum Outcome {
    /// Already there: nothing done.
    Present,
    /// Installed or changed something (what, in a word or two).
    Done(&'static str),
    /// Could not do it now; the message says why and what it means.
    Skipped(String),
}

impl Outcome {
    fn describe(&self) -> String {
        match self {
            Outcome::Present => "present, skipped".into(),
            Outcome::Done(what) => (*what).into(),
            Outcome::Skipped(why) => format!("NOT done: {why}"),
        }
    }
}

/// The nightly toolchain's sysroot. The nightly is never installed or updated here:
/// bpf-linker is tied to its LLVM, and these machines cannot download toolchains.
fn nightly_sysroot() -> Result<String> {
    let Some(out) =
        output(Command::new("rustup").args(["run", "nightly", "rustc", "--print", "sysroot"]))
    else {
        bail!(
            "no nightly Rust toolchain (`rustup run nightly rustc` failed): the eBPF crate \
             is built with the nightly's -Z build-std; install one with rustup"
        );
    };
    Ok(out.trim().to_string())
}

/// Step 1: the nightly's `rust-src` (the eBPF crate builds `core` from source).
fn rust_src(sysroot: &str) -> Result<Outcome> {
    let library = Path::new(sysroot).join("lib/rustlib/src/rust/library/core");
    if library.is_dir() {
        return Ok(Outcome::Present);
    }
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))?;
    Ok(Outcome::Done("installed"))
}

/// Step 2: bpf-linker, built against the nightly's own libLLVM (Debian's LLVM is too
/// old), installed under `target/tools` where `vdmm-ctl/build.rs` finds it.
fn bpf_linker(ws: &Workspace, sysroot: &str) -> Result<Outcome> {
    let linker = ws.bpf_linker();
    let version = output(Command::new(&linker).arg("--version"));
    if version.is_some_and(|v| v.contains(BPF_LINKER_VERSION)) {
        return Ok(Outcome::Present);
    }

    // Link the nightly's libLLVM into LLVM_PREFIX/lib; stale links (an older nightly) go.
    let lib_dir = Path::new(sysroot).join("lib");
    let prefix_lib = ws.llvm_prefix().join("lib");
    if prefix_lib.exists() {
        fs::remove_dir_all(&prefix_lib)
            .with_context(|| format!("remove {}", prefix_lib.display()))?;
    }
    fs::create_dir_all(&prefix_lib).with_context(|| format!("create {}", prefix_lib.display()))?;
    let mut major = None;
    let mut versioned = None;
    for entry in fs::read_dir(&lib_dir).with_context(|| format!("read {}", lib_dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("libLLVM") {
            continue;
        }
        std::os::unix::fs::symlink(entry.path(), prefix_lib.join(&name))
            .with_context(|| format!("link {name} into {}", prefix_lib.display()))?;
        // libLLVM.so.22.1-rust-1.97.0-nightly: the soname bpf-linker links against.
        if let Some(rest) = name.strip_prefix("libLLVM.so.") {
            major = rest.split('.').next().and_then(|m| m.parse::<u32>().ok());
            versioned = Some(entry.path());
        }
    }
    let (Some(major), Some(versioned)) = (major, versioned) else {
        bail!(
            "no libLLVM.so.<version> in {}: cannot build bpf-linker",
            lib_dir.display()
        );
    };
    std::os::unix::fs::symlink(&versioned, prefix_lib.join("libLLVM.so"))
        .context("link libLLVM.so")?;

    eprintln!(
        "setup: building bpf-linker {BPF_LINKER_VERSION} against the nightly's LLVM {major} (about a minute)"
    );
    run(ws
        .cargo([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--locked",
        ])
        .args([
            "--no-default-features",
            "--features",
            &format!("llvm-{major}"),
        ])
        .arg("--force")
        .arg("--root")
        .arg(ws.tools_root())
        // cargo install builds in a temporary directory it removes afterwards (~300 MB).
        .env_remove("CARGO_TARGET_DIR")
        .env("LLVM_PREFIX", ws.llvm_prefix()))?;
    if output(Command::new(&linker).arg("--version")).is_none() {
        bail!("{} was installed but does not run", linker.display());
    }
    Ok(Outcome::Done("built and installed"))
}

/// Step 3: Debian packages, checked with dpkg-query; `apt-get update` once, then only the
/// missing ones are installed.
fn debian_packages() -> Result<Outcome> {
    let missing = missing_packages();
    if missing.is_empty() {
        return Ok(Outcome::Present);
    }
    if !is_root() {
        bail!(
            "missing Debian packages {}; run `cargo xtask setup` as root to install them",
            missing.join(" ")
        );
    }
    eprintln!("setup: installing {}", missing.join(" "));
    run(Command::new("apt-get")
        .args(["update", "-q"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null()))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null()))?;
    let still = missing_packages();
    if !still.is_empty() {
        bail!("apt-get did not install {}", still.join(" "));
    }
    Ok(Outcome::Done("installed"))
}

fn missing_packages() -> Vec<&'static str> {
    // dpkg-query exits 1 when a package is unknown but still lists the others.
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Package}\t${db:Status-Abbrev}\n"])
        .args(DEBIAN_PACKAGES)
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let installed: Vec<&str> = out
        .lines()
        .filter_map(|line| {
            let (name, status) = line.split_once('\t')?;
            status
                .starts_with("ii")
                .then_some(name.split(':').next().unwrap_or(name))
        })
        .collect();
    DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|p| !installed.contains(p))
        .collect()
}

/// Step 4: bpffs at /sys/fs/bpf, where `vdmm-ctl` pins by default. (vdmm-ctl mounts its
/// own pin directory too; the labs pin under /run/vdmm instead.)
fn bpffs() -> Result<Outcome> {
    let mounts = fs::read_to_string("/proc/self/mounts").context("read /proc/self/mounts")?;
    let mounted = mounts.lines().any(|line| {
        let mut fields = line.split_whitespace();
        let (_, dir, fstype) = (fields.next(), fields.next(), fields.next());
        dir == Some(BPFFS) && fstype == Some("bpf")
    });
    if mounted {
        return Ok(Outcome::Present);
    }
    if !is_root() {
        return Ok(Outcome::Skipped(format!(
            "{BPFFS} is not a bpffs and mounting needs root"
        )));
    }
    fs::create_dir_all(BPFFS).with_context(|| format!("create {BPFFS}"))?;
    run(Command::new("mount").args(["-t", "bpf", "bpf", BPFFS]))?;
    Ok(Outcome::Done("mounted"))
}
