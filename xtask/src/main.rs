//! vdmm developer workflows, run as `cargo xtask <command>` from anywhere in the checkout.
//!
//! Every command except `setup` and `clean-lab` first runs the setup checks and installs
//! what is missing, so a fresh machine needs no other step.

mod docs;
mod setup;
mod workspace;

use std::{
    ffi::OsString,
    process::{Command, ExitCode},
    time::Instant,
};

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

use workspace::{Workspace, on_path, require_root, run};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "vdmm developer workflows"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what the build and tests need: nightly rust-src, bpf-linker (under
    /// target/tools), Debian packages, bpffs at /sys/fs/bpf. Idempotent.
    Setup,
    /// Set up, build everything, and run every test (as root). Extra arguments go to
    /// cargo-nextest (e.g. a test name filter).
    Test {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Set up, build, and run the lab demo in network namespaces (as root): traffic
    /// through each of the four tunnel kinds, then the handover scenarios (a client
    /// walks ap1 -> ap2 -> ap3 and a VM migrates, with vAPs and with the break-before-make
    /// baseline), a table per handover and an SVG chart in the target directory, then the
    /// balancer scenario (six stations on ap1, ALB moves clients by vAP handovers, a
    /// table of the AP hosts' load before and after). Extra arguments go to `vdmm-lab
    /// demo` (e.g. --no-handover, --no-tunnels, --no-alb).
    Demo {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Set up, build in release, and run the benchmarks (as root): ns/packet through
    /// BPF_PROG_TEST_RUN, forwarding rate between namespaces, the handover interruption
    /// of vAPs against the break-before-make baseline, the agent's bindings/s and
    /// ns/packet at 1k vs 1M bindings, and the convergence of binding changes through
    /// etcd to many AP hosts.
    Bench {
        /// Only the ns/packet benchmark (vdmm-bench).
        #[arg(long, conflicts_with_all = ["forward_only", "handover_only", "agent_only", "cluster_only"])]
        prog_only: bool,
        /// Only the forwarding-rate benchmarks (vdmm-lab bench-forward, vdmm-xlat-bench).
        #[arg(long, conflicts_with_all = ["handover_only", "agent_only", "cluster_only"])]
        forward_only: bool,
        /// Only the handover benchmark (vdmm-lab handover --strict).
        #[arg(long, conflicts_with_all = ["agent_only", "cluster_only"])]
        handover_only: bool,
        /// Only the agent benchmark (vdmm-agent-bench).
        #[arg(long, conflicts_with = "cluster_only")]
        agent_only: bool,
        /// Only the cluster benchmark (vdmm-cluster-bench): convergence of binding
        /// changes through etcd to 100 simulated AP hosts with 10,000 clients.
        #[arg(long)]
        cluster_only: bool,
    },
    /// Delete what a crashed lab or test left behind (namespaces, /run/vdmm pin mounts):
    /// runs `vdmm-lab cleanup`.
    CleanLab,
    /// Write docs/cli.md from the `--help` output of every vdmm-ctl command.
    Docs {
        /// Only check that docs/cli.md is up to date.
        #[arg(long)]
        check: bool,
    },
    /// rustfmt check, clippy (warnings are errors) on the host crates, docs/cli.md
    /// up to date.
    Lint,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run_command(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The error only: a backtrace of xtask itself (RUST_BACKTRACE=1) helps nobody.
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_command(command: Cmd) -> Result<()> {
    let ws = Workspace::locate();
    match command {
        Cmd::Setup => setup::ensure(&ws, true),
        Cmd::Test { args } => test(&ws, &args),
        Cmd::Demo { args } => demo(&ws, &args),
        Cmd::Bench {
            prog_only,
            forward_only,
            handover_only,
            agent_only,
            cluster_only,
        } => {
            let only = [
                prog_only,
                forward_only,
                handover_only,
                agent_only,
                cluster_only,
            ];
            let selected = |i: usize| only.iter().all(|o| !o) || only[i];
            bench(&ws, [0, 1, 2, 3, 4].map(selected))
        }
        Cmd::CleanLab => clean_lab(&ws),
        Cmd::Docs { check } => {
            setup::ensure(&ws, false)?;
            docs::cli_doc(&ws, check)
        }
        Cmd::Lint => lint(&ws),
    }
}

/// Host packages of the workspace: everything except `vdmm-ebpf`, which only builds for
/// the BPF target (vdmm-ctl's build.rs does that).
const HOST_PACKAGES: &[&str] = &["--workspace", "--exclude", "vdmm-ebpf"];

fn test(ws: &Workspace, args: &[OsString]) -> Result<()> {
    setup::ensure(ws, false)?;
    let start = Instant::now();
    // Binaries (vdmm-ctl, vdmm-lab, ...) and test binaries, so a build error shows up
    // before anything runs.
    run(ws.cargo(["build"]).args(HOST_PACKAGES).arg("--all-targets"))?;
    eprintln!("xtask: built in {:.0} s", start.elapsed().as_secs_f64());
    require_root("cargo xtask test")?;

    let vdmm_ctl = ws.binary("debug", "vdmm-ctl");
    if on_path("cargo-nextest") {
        // nextest does not run doctests: they go first, so nextest's summary closes the
        // run, and a doctest failure does not keep the other tests from running. A filter
        // (extra arguments) means a subset: no doctests then.
        let doctests = if args.is_empty() {
            run(ws
                .cargo(["test", "--doc"])
                .args(HOST_PACKAGES)
                .env("VDMM_CTL", &vdmm_ctl))
        } else {
            Ok(())
        };
        // Profile and parallelism limits (the netns group) live in .config/nextest.toml.
        run(ws
            .cargo(["nextest", "run", "--no-fail-fast"])
            .args(HOST_PACKAGES)
            .args(args)
            .env("VDMM_CTL", &vdmm_ctl))?;
        doctests
    } else {
        eprintln!("xtask: cargo-nextest not found, using cargo test");
        run(ws
            .cargo(["test", "--no-fail-fast"])
            .args(HOST_PACKAGES)
            .args(args)
            .env("VDMM_CTL", &vdmm_ctl))
    }
}

fn demo(ws: &Workspace, args: &[OsString]) -> Result<()> {
    setup::ensure(ws, false)?;
    run(ws.cargo(["build", "-p", "vdmm-ctl", "-p", "vdmm-tests", "--bins"]))?;
    require_root("cargo xtask demo")?;
    let lab = existing_binary(ws, "debug", "vdmm-lab")?;
    run(Command::new(lab)
        .arg("demo")
        .args(args)
        .env("VDMM_CTL", ws.binary("debug", "vdmm-ctl")))
}

/// Runs the benchmarks selected in `[prog, forward, handover, agent, cluster]`.
fn bench(ws: &Workspace, [prog, forward, handover, agent, cluster]: [bool; 5]) -> Result<()> {
    setup::ensure(ws, false)?;
    run(ws.cargo([
        "build",
        "--release",
        "-p",
        "vdmm-ctl",
        "-p",
        "vdmm-tests",
        "--bins",
    ]))?;
    require_root("cargo xtask bench")?;
    let vdmm_ctl = ws.binary("release", "vdmm-ctl");
    // Both benchmarks run even when the first misses its target; the exit status says
    // whether any did.
    let mut failed = Vec::new();
    if prog {
        eprintln!("\n== ns/packet via BPF_PROG_TEST_RUN (vdmm-bench) ==");
        let bench = existing_binary(ws, "release", "vdmm-bench")?;
        // --strict: exit 3 when a row misses its target, like the other two.
        if let Err(e) = run(Command::new(bench)
            .arg("--strict")
            .env("VDMM_CTL", &vdmm_ctl))
        {
            failed.push(e.to_string());
        }
    }
    if forward {
        eprintln!("\n== forwarding rate between namespaces (vdmm-lab bench-forward) ==");
        let lab = existing_binary(ws, "release", "vdmm-lab")?;
        // vdmm-lab exits 3 when the benchmark ran but missed its target.
        if let Err(e) = run(Command::new(lab)
            .arg("bench-forward")
            .env("VDMM_CTL", &vdmm_ctl))
        {
            failed.push(e.to_string());
        }
        eprintln!("\n== translated packets/s, vdmm XDP vs TAYGA (vdmm-xlat-bench) ==");
        // Exits 3 when it ran but vdmm missed the 10x target.
        let xlat = existing_binary(ws, "release", "vdmm-xlat-bench")?;
        if let Err(e) = run(Command::new(xlat).env("VDMM_CTL", &vdmm_ctl)) {
            failed.push(e.to_string());
        }
    }
    if handover {
        eprintln!("\n== handover interruption, vAP vs break-before-make (vdmm-lab handover) ==");
        // Exits 3 when it ran but a target was missed (vAP loss, gap, RTO, ratio).
        let lab = existing_binary(ws, "release", "vdmm-lab")?;
        if let Err(e) = run(Command::new(lab)
            .args(["handover", "--strict", "--plot"])
            .arg(ws.target.join("handover-bench.svg"))
            .env("VDMM_CTL", &vdmm_ctl))
        {
            failed.push(e.to_string());
        }
    }
    if agent {
        eprintln!(
            "\n== bindings/s through the agent, ns/packet at 1k vs 1M bindings (vdmm-agent-bench) =="
        );
        // Exits 3 when it ran but missed a target.
        let bench = existing_binary(ws, "release", "vdmm-agent-bench")?;
        if let Err(e) = run(Command::new(bench).env("VDMM_CTL", &vdmm_ctl)) {
            failed.push(e.to_string());
        }
    }
    if cluster {
        eprintln!(
            "\n== binding changes through etcd to 100 AP hosts, 10,000 clients (vdmm-cluster-bench) =="
        );
        // Exits 3 when it ran but missed the p99 target.
        let bench = existing_binary(ws, "release", "vdmm-cluster-bench")?;
        if let Err(e) = run(&mut Command::new(bench)) {
            failed.push(e.to_string());
        }
    }
    if !failed.is_empty() {
        bail!(
            "benchmarks that failed or missed their target:\n  {}",
            failed.join("\n  ")
        );
    }
    Ok(())
}

fn clean_lab(ws: &Workspace) -> Result<()> {
    require_root("cargo xtask clean-lab")?;
    setup::ensure(ws, false)?;
    run(ws.cargo(["build", "-p", "vdmm-tests", "--bin", "vdmm-lab"]))?;
    run(Command::new(existing_binary(ws, "debug", "vdmm-lab")?).arg("cleanup"))
}

fn lint(ws: &Workspace) -> Result<()> {
    setup::ensure(ws, false)?;
    // Every check runs; the failures are listed together at the end.
    let checks = [
        ("rustfmt", run(ws.cargo(["fmt", "--all", "--check"]))),
        (
            "clippy",
            run(ws.cargo(["clippy"]).args(HOST_PACKAGES).args([
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])),
        ),
        ("docs/cli.md", docs::cli_doc(ws, true)),
    ];
    let failed: Vec<String> = checks
        .into_iter()
        .filter_map(|(name, result)| result.err().map(|e| format!("{name}: {e:#}")))
        .collect();
    if !failed.is_empty() {
        bail!("lint failed:\n  {}", failed.join("\n  "));
    }
    Ok(())
}

/// A binary of the vdmm-tests package, with a clear error while it does not exist yet.
fn existing_binary(ws: &Workspace, profile: &str, name: &str) -> Result<std::path::PathBuf> {
    let path = ws.binary(profile, name);
    if !path.is_file() {
        bail!(
            "{} was not built: the vdmm-tests package has no `{name}` binary yet",
            path.display()
        );
    }
    Ok(path)
}
