//! Where things are in the checkout, and how xtask runs other programs: every command it
//! runs is printed first, and a non-zero exit is an error naming the command.

use std::{
    borrow::BorrowMut,
    env,
    ffi::OsStr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

/// Paths of one checkout.
pub struct Workspace {
    /// The repository root (the directory holding the workspace `Cargo.toml`).
    pub root: PathBuf,
    /// Cargo's target directory: `CARGO_TARGET_DIR` if set, else `<root>/target`.
    pub target: PathBuf,
}

impl Workspace {
    pub fn locate() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask sits in the workspace")
            .to_path_buf();
        let target = match env::var_os("CARGO_TARGET_DIR") {
            Some(dir) if !dir.is_empty() => root.join(dir),
            _ => root.join("target"),
        };
        Self { root, target }
    }

    /// `cargo install --root` of the tools the build needs (bpf-linker). Always under the
    /// checkout's own `target/`, whatever `CARGO_TARGET_DIR` says: `vdmm-ctl/build.rs`
    /// looks for `target/tools/bin`.
    pub fn tools_root(&self) -> PathBuf {
        self.root.join("target/tools")
    }

    pub fn bpf_linker(&self) -> PathBuf {
        self.tools_root().join("bin/bpf-linker")
    }

    /// The `LLVM_PREFIX` bpf-linker is built against: links to the nightly's own libLLVM.
    /// bpf-linker's RUNPATH points into it, so it must stay.
    pub fn llvm_prefix(&self) -> PathBuf {
        self.root.join("target/llvm-rust")
    }

    /// A binary cargo built in `profile` ("debug" or "release").
    pub fn binary(&self, profile: &str, name: &str) -> PathBuf {
        self.target.join(profile).join(name)
    }

    /// A `cargo` command (the cargo that runs xtask) working in the repository root.
    pub fn cargo<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.args(args).current_dir(&self.root);
        cmd
    }
}

/// Runs `cmd` with inherited output, printing it first; a failure is an error.
pub fn run(mut cmd: impl BorrowMut<Command>) -> Result<()> {
    let cmd = cmd.borrow_mut();
    eprintln!("$ {}", display(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("could not start {}", display(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", display(cmd));
    }
    Ok(())
}

/// Runs `cmd` quietly and returns its stdout, or `None` if it could not start or failed.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `VAR=value ... program args...` as a shell would show it.
fn display(cmd: &Command) -> String {
    let mut parts: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), v?.to_string_lossy())))
        .collect();
    parts.push(cmd.get_program().to_string_lossy().into_owned());
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Fails with a clear message unless xtask runs as root.
pub fn require_root(what: &str) -> Result<()> {
    if !is_root() {
        bail!(
            "{what} needs root: the tests and labs create network namespaces, attach XDP \
             programs and run BPF_PROG_TEST_RUN (try `sudo -E cargo xtask ...`)"
        );
    }
    Ok(())
}

/// Whether `program` is found on PATH.
pub fn on_path(program: &str) -> bool {
    env::var_os("PATH")
        .map(|path| env::split_paths(&path).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}
