//! `cargo xtask clean-lab`: removes what a crashed lab or test run left behind: network
//! namespaces named `vdmm*`, veth interfaces named `vdmm*` in the current namespace, and
//! the per-namespace bpffs pin directories under /run/vdmm. Pins under /sys/fs/bpf/vdmm
//! (a real host's data plane) are left alone.

use std::{fs, path::Path, process::Command};

use anyhow::{Context, Result};

use crate::workspace::{output, require_root, run};

/// Parent of the labs' per-namespace pin directories.
const LAB_PIN_ROOT: &str = "/run/vdmm";

pub fn clean() -> Result<()> {
    require_root("clean-lab")?;
    let mut removed = 0;

    let namespaces = output(Command::new("ip").args(["netns", "list"])).unwrap_or_default();
    for ns in namespaces
        .lines()
        .filter_map(|l| l.split_whitespace().next())
    {
        if ns.starts_with("vdmm") {
            run(Command::new("ip").args(["netns", "del", ns]))?;
            removed += 1;
        }
    }

    let links =
        output(Command::new("ip").args(["-o", "link", "show", "type", "veth"])).unwrap_or_default();
    for line in links.lines() {
        // "12: vdmm-gw0@if11: <...>": the name ends at '@' or ':'.
        let Some(name) = line.split(": ").nth(1) else {
            continue;
        };
        let name = name.split(['@', ':']).next().unwrap_or(name);
        if name.starts_with("vdmm") {
            // The peer may have gone with its namespace a moment ago.
            let _ = run(Command::new("ip").args(["link", "del", name]));
            removed += 1;
        }
    }

    let mounts = fs::read_to_string("/proc/self/mounts").context("read /proc/self/mounts")?;
    let mut pin_mounts: Vec<&str> = mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .filter(|dir| Path::new(dir).starts_with(LAB_PIN_ROOT))
        .collect();
    // Deepest first, so nested mounts come off before their parents.
    pin_mounts.sort_by_key(|dir| std::cmp::Reverse(dir.len()));
    pin_mounts.dedup();
    for dir in pin_mounts {
        run(Command::new("umount").arg(dir))?;
        removed += 1;
    }
    if Path::new(LAB_PIN_ROOT).exists() {
        fs::remove_dir_all(LAB_PIN_ROOT).with_context(|| format!("remove {LAB_PIN_ROOT}"))?;
        eprintln!("removed {LAB_PIN_ROOT}");
        removed += 1;
    }

    if removed == 0 {
        eprintln!("clean-lab: nothing left over");
    }
    Ok(())
}
