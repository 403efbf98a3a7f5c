//! Builds the eBPF data plane (`vdmm-ebpf`) for the BPF target with aya-build, so a plain
//! `cargo build` builds both sides. bpf-linker is looked up on PATH, with the copy that
//! `cargo xtask setup` installs under `target/tools/bin` put first.
use std::{env, path::PathBuf};

fn main() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir
        .parent()
        .expect("vdmm-ctl sits in the workspace");
    let tools = workspace.join("target/tools/bin");
    println!("cargo:rerun-if-changed={}", tools.display());
    if tools.is_dir() {
        let path = env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![tools];
        paths.extend(env::split_paths(&path));
        // SAFETY: build scripts are single-threaded at this point.
        unsafe { env::set_var("PATH", env::join_paths(paths)?) };
    }
    // aya-build watches vdmm-ebpf only; the data plane also compiles vdmm-common (the
    // counter reasons size its counter array).
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("vdmm-common/src").display()
    );
    let ebpf_dir = workspace.join("vdmm-ebpf");
    let ebpf_dir = ebpf_dir.to_str().expect("utf-8 path");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "vdmm-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
