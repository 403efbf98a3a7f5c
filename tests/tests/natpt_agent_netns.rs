//! The transition gateway's translation configuration managed by the agent, end to end in
//! the translation lab (tests/src/xlat_lab.rs: an IPv6-only host, the translator, an
//! IPv4-only host; the translator configured with `vdmm-ctl natpt` before the agent
//! starts):
//!
//! - the agent adopts the configuration on its first start (imports it, changes
//!   nothing); `natpt` commands then go through it: a pool and an allocation made
//!   through the agent land in the maps with exact values, `--json` prints what the direct
//!   command prints, and an IPv4 host pings the IPv6 host at its allocated address (and
//!   no longer after the release);
//! - bad input through the agent (CLI and raw socket) is refused with the commands'
//!   messages and changes nothing: the desired state, the revision, the state file, the
//!   maps and vdmm's routes are compared before and after;
//! - entries written behind the agent's back (an extra EAMT entry, a removed one, a
//!   changed MTU, an extra pool) are undone by a reconcile request and by a restart after
//!   SIGKILL;
//! - a `[natpt]` section in the configuration is taken at start (beside what was
//!   adopted) and translates; a declaration that conflicts with the stored state stops
//!   the start with the rule's message.

use std::{net::IpAddr, process::Command};

use vdmm_tests::{
    agent::AgentProcess,
    lab::ping_once,
    netns::require_root,
    xlat_lab::{HOST4_AS_V6, HOST6, Translator, XL4_IF, XL6_IF, XlatLab, XlatPrefix},
};

/// The IPv6 host's address from the pool the test adds.
const POOL: &str = "192.0.2.64/29";
const ALLOCATED: &str = "192.0.2.65";

fn build() -> (XlatLab, AgentProcess) {
    build_with("")
}

/// The lab and an agent on the translator whose configuration ends with `extra`.
fn build_with(extra: &str) -> (XlatLab, AgentProcess) {
    if let Err(e) = require_root() {
        panic!("{e}");
    }
    let lab = XlatLab::build(Translator::Vdmm(XlatPrefix::Conformance))
        .unwrap_or_else(|e| panic!("building the translation lab: {e:#}"));
    let extra = format!("[interfaces]\nattach = [\"{XL6_IF}\", \"{XL4_IF}\"]\n{extra}");
    let mut a = AgentProcess::configure(&lab.ctl, lab.xlat.name(), &lab.pin, &extra)
        .expect("configure the agent");
    a.start().expect("start the agent");
    (lab, a)
}

/// What the last full reconcile changed, from `status`.
fn last_reconcile(a: &AgentProcess) -> serde_json::Value {
    a.ok(r#"{"request":"status"}"#).unwrap()["last_reconcile"]["report"].clone()
}

fn changes(report: &serde_json::Value) -> u64 {
    [
        "added",
        "updated",
        "removed",
        "routes_installed",
        "routes_removed",
    ]
    .iter()
    .map(|k| report[k].as_u64().unwrap_or(0))
    .sum()
}

/// `natpt list --json` read from the maps (bypassing nothing: reading commands always
/// read the maps).
fn maps(a: &AgentProcess) -> serde_json::Value {
    serde_json::from_str(&a.ctl(&["natpt", "list", "--json"]).unwrap()).unwrap()
}

/// Everything a refused change must leave alone.
fn snapshot(lab: &XlatLab, a: &AgentProcess) -> Vec<String> {
    let mut v = vec![
        a.ok(r#"{"request":"state"}"#).unwrap().to_string(),
        a.ok(r#"{"request":"status"}"#).unwrap()["revision"].to_string(),
        std::fs::read_to_string(a.state_file()).unwrap(),
        a.ctl(&["natpt", "list", "--json"]).unwrap(),
        a.ctl(&["config", "show", "--json"]).unwrap(),
    ];
    for f in ["-4", "-6"] {
        let out = lab.xlat.ip(&[f, "route", "show", "proto", "118"]).unwrap();
        v.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    v
}

/// Runs a command expected to fail; returns its error line.
fn refused(a: &AgentProcess, args: &[&str]) -> String {
    let out = a.ctl_raw(args).unwrap();
    assert!(
        !out.status.success(),
        "vdmm-ctl {} was accepted",
        args.join(" ")
    );
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// `vdmm-ctl` on the maps directly while the agent runs (no agent at that socket).
fn behind_the_agents_back(a: &AgentProcess, args: &[&str]) -> String {
    let out = Command::new(&a.ctl)
        .args(["--netns", &a.netns, "--pin-dir"])
        .arg(&a.pin_dir)
        .args(["--agent-socket", "/nonexistent"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vdmm-ctl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pings(lab: &XlatLab, to: &str) -> bool {
    ping_once(&lab.host4, to.parse::<IpAddr>().unwrap(), 2).is_ok()
}

#[test]
fn natpt_changes_go_through_the_agent_into_the_maps_and_translate() {
    let (lab, a) = build();
    // Adopted on the first start: the desired state is what `vdmm-ctl natpt` wrote, and
    // the first reconcile had nothing to change.
    let state = a.ok(r#"{"request":"state"}"#).unwrap();
    let n = &state["natpt"];
    assert_eq!(n["settings"]["prefix"], "2001:db8:100::/40", "{state}");
    assert_eq!(n["settings"]["rfc6791_v4"], "203.0.113.8", "{state}");
    assert_eq!(n["settings"]["lowest_ipv6_mtu"], 1280, "{state}");
    assert_eq!(
        n["eamt"],
        serde_json::json!([
            {"ipv6": "2001:db8:3::/120", "ipv4": "1.0.0.0/24"},
            {"ipv6": "2001:db8:2::/120", "ipv4": "10.0.0.0/24"},
        ]),
        "{state}"
    );
    let r = last_reconcile(&a);
    assert_eq!(
        changes(&r),
        0,
        "the adopting reconcile changed something: {r}"
    );
    // The translator works as configured (the IPv4 host reaches the IPv6 host at its
    // RFC 6052 address); the pool address is not the IPv6 host yet.
    assert!(
        pings(&lab, "192.0.2.33"),
        "no ping through the adopted translator"
    );
    assert!(
        !pings(&lab, ALLOCATED),
        "{ALLOCATED} answered before it was allocated"
    );

    // Through the agent: the outputs are the direct commands' outputs.
    let rev0 = a.ok(r#"{"request":"status"}"#).unwrap()["revision"]
        .as_u64()
        .unwrap();
    assert_eq!(a.ctl(&["natpt", "pool", "add", POOL]).unwrap(), "");
    assert_eq!(
        a.ctl(&["natpt", "pool", "alloc", HOST6, "--json"]).unwrap(),
        format!("{{\"ipv4\":\"{ALLOCATED}\",\"ipv6\":\"{HOST6}\"}}\n")
    );
    assert_eq!(a.ctl(&["natpt", "mtu", "set", "1400"]).unwrap(), "");
    let rev = a.ok(r#"{"request":"status"}"#).unwrap()["revision"]
        .as_u64()
        .unwrap();
    assert_eq!(
        rev,
        rev0 + 3,
        "the three changes were not committed by the agent"
    );
    // Exact values in the maps (both EAMT tries agree: no `eamt_inconsistent`).
    let m = maps(&a);
    assert_eq!(m["lowest_ipv6_mtu"], 1400, "{m}");
    assert!(m.get("eamt_inconsistent").is_none(), "{m}");
    assert_eq!(
        m["pools"],
        serde_json::json!([{
            "prefix": POOL, "size": 6, "allocated": 1, "mapped_otherwise": 0, "free": 5,
            "allocations": [{"ipv4": ALLOCATED, "ipv6": HOST6}],
        }]),
        "{m}"
    );
    assert!(
        m["eamt"].as_array().unwrap().contains(&serde_json::json!({
            "ipv6": format!("{HOST6}/128"), "ipv4": format!("{ALLOCATED}/32"), "pool": POOL,
        })),
        "{m}"
    );
    // The agent's state says the same.
    let state = a.ok(r#"{"request":"state"}"#).unwrap();
    assert_eq!(
        state["natpt"]["pools"],
        serde_json::json!([POOL]),
        "{state}"
    );
    assert_eq!(state["natpt"]["settings"]["lowest_ipv6_mtu"], 1400);
    // The fragmentation route of the allocation, with the MTU for 1400 (1400 - 28).
    let routes = lab
        .xlat
        .ip(&["-4", "route", "show", "proto", "118"])
        .unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
    assert!(
        routes.lines().any(|l| l.starts_with(ALLOCATED)
            && l.contains("dev vdmmx0")
            && l.contains("mtu 1372")),
        "{routes}"
    );
    // Translation: the IPv4 host reaches the IPv6 host at its pool address.
    assert!(
        pings(&lab, ALLOCATED),
        "no ping to the allocated address {ALLOCATED}"
    );
    // IPv6 to IPv4 still translates (the RFC 6052 prefix).
    assert!(
        ping_once(&lab.host6, HOST4_AS_V6.parse().unwrap(), 2).is_ok(),
        "no ping from the IPv6 host"
    );
    // Release: the address stops answering and is free again.
    assert_eq!(
        a.ctl(&["natpt", "pool", "release", ALLOCATED]).unwrap(),
        format!("released {ALLOCATED} (was {HOST6})\n")
    );
    assert!(
        !pings(&lab, ALLOCATED),
        "{ALLOCATED} answered after its release"
    );
    let m = maps(&a);
    assert_eq!(m["pools"][0]["free"], 6, "{m}");
    // `natpt list` shows what the direct command shows (the agent keeps the maps in step).
    let direct = behind_the_agents_back(&a, &["natpt", "list", "--json"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&direct).unwrap(),
        m
    );
}

#[test]
fn bad_natpt_input_through_the_agent_changes_nothing() {
    let (lab, a) = build();
    a.ctl(&["natpt", "pool", "add", POOL]).unwrap();
    a.ctl(&["natpt", "pool", "alloc", HOST6]).unwrap();
    let before = snapshot(&lab, &a);
    let cases: [(&[&str], &str); 8] = [
        (
            &["natpt", "eam", "add", "2001:db8:9::/120", "10.0.0.0/24"],
            "error: 10.0.0.0/24 already has an EAMT entry (2001:db8:2::/120 <-> 10.0.0.0/24); \
             delete it first (`vdmm-ctl natpt eam del 2001:db8:2::/120 10.0.0.0/24`)",
        ),
        (
            &["natpt", "eam", "add", "2001:db8:9::/112", "10.9.0.0/24"],
            "error: EAMT entry 2001:db8:9::/112 <-> 10.9.0.0/24: the suffix lengths differ",
        ),
        (
            &["natpt", "pool", "add", "127.0.0.0/24"],
            "error: pool 127.0.0.0/24 overlaps the loopback range 127.0.0.0/8 (RFC 6890)",
        ),
        (
            &["natpt", "pool", "add", "192.0.2.0/24"],
            "error: pool 192.0.2.0/24 overlaps the existing pool 192.0.2.64/29",
        ),
        (
            &["natpt", "pool", "del", POOL],
            "error: pool 192.0.2.64/29 has 1 allocation(s): 192.0.2.65 -> 2001:db8:1c0:2:21::",
        ),
        (
            &["natpt", "prefix", "set", "2001:db8::/33"],
            "error: invalid prefix `2001:db8::/33`: length /33 is not allowed",
        ),
        (
            &["natpt", "mtu", "set", "1000"],
            "error: invalid lowest IPv6 MTU `1000`",
        ),
        (
            &["natpt", "pool", "alloc", HOST6],
            "error: 2001:db8:1c0:2:21:: already has the pool address 192.0.2.65",
        ),
    ];
    for (args, want) in cases {
        let e = refused(&a, args);
        assert!(e.starts_with(want), "vdmm-ctl {}: {e}", args.join(" "));
        assert_eq!(
            snapshot(&lab, &a),
            before,
            "vdmm-ctl {} changed something",
            args.join(" ")
        );
    }
    // A raw batch whose last change fails: the first ones are not applied either.
    let r = a
        .request(
            r#"{"request":"apply","ops":[
                {"op":"natpt","natpt":"segment_add","prefix4":"10.8.0.0/16","prefix6":"2001:db8:8::/96"},
                {"op":"natpt","natpt":"prefix_clear"},
                {"op":"natpt","natpt":"pool_release","addr":"192.0.2.66"}]}"#
                .replace('\n', " ")
                .as_str(),
        )
        .unwrap();
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(
        r["error"],
        "change 3 of 3: 192.0.2.66 is not an allocated address of an address pool"
    );
    let r = a
        .request(r#"{"request":"apply","ops":[{"op":"natpt","natpt":"mtu","mtu":"x"}]}"#)
        .unwrap();
    assert_eq!(r["ok"], false, "{r}");
    assert!(
        r["error"].as_str().unwrap().starts_with("invalid request"),
        "{r}"
    );
    assert_eq!(
        snapshot(&lab, &a),
        before,
        "a refused batch changed something"
    );
}

#[test]
fn entries_written_behind_the_agents_back_are_undone() {
    let (lab, mut a) = build();
    a.ctl(&["natpt", "pool", "add", POOL]).unwrap();
    a.ctl(&["natpt", "pool", "alloc", HOST6]).unwrap();
    let want = maps(&a);
    let tamper = |a: &AgentProcess| {
        // Stale: an EAMT entry and a pool nobody asked for; missing: a desired EAMT
        // entry; differing: the lowest IPv6 MTU.
        for args in [
            &["natpt", "eam", "add", "2001:db8:9::/120", "203.0.113.0/24"][..],
            &["natpt", "eam", "del", "2001:db8:2::/120", "10.0.0.0/24"],
            &["natpt", "pool", "add", "198.18.0.0/24"],
            &["natpt", "mtu", "set", "1500"],
        ] {
            behind_the_agents_back(a, args);
        }
        let m = maps(a);
        assert_ne!(m, want, "tampering changed nothing");
        assert_eq!(m["lowest_ipv6_mtu"], 1500);
    };
    // Repaired by a reconcile request.
    tamper(&a);
    let r = a.ok(r#"{"request":"reconcile"}"#).unwrap();
    assert_eq!(maps(&a), want, "after reconcile {r}");
    // Exactly the four differences (the stale entry's route goes with it, the restored
    // entry's route comes back).
    assert_eq!(
        (
            r["added"].as_u64(),
            r["removed"].as_u64(),
            r["updated"].as_u64()
        ),
        (Some(1), Some(2), Some(1)),
        "{r}"
    );
    let routes = lab
        .xlat
        .ip(&["-4", "route", "show", "proto", "118"])
        .unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
    assert!(routes.contains("10.0.0.0/24 via"), "{routes}");
    assert!(!routes.contains("203.0.113.0/24"), "{routes}");
    // Repaired by a restart after SIGKILL (the store is not empty: nothing is imported).
    a.kill9().unwrap();
    tamper(&a);
    a.start().unwrap();
    assert_eq!(maps(&a), want, "after restart: {}", a.log_tail());
    let r = last_reconcile(&a);
    assert!(changes(&r) >= 4, "{r}");
    // Translation still works with the repaired configuration.
    assert!(
        pings(&lab, ALLOCATED),
        "no ping to {ALLOCATED} after the repair"
    );
}

#[test]
fn the_configured_natpt_section_is_taken_at_start() {
    let (lab, mut a) = build_with(&format!(
        "[natpt]\nlowest_ipv6_mtu = 1400\npools = [\"{POOL}\"]\n\
         eam = [[\"{HOST6}/128\", \"{ALLOCATED}/32\"]]\n"
    ));
    // Adopted (the lab's prefix and EAMT) and declared (MTU, pool, mapping) together.
    let m = maps(&a);
    assert_eq!(m["prefix"], "2001:db8:100::/40", "{m}");
    assert_eq!(m["lowest_ipv6_mtu"], 1400, "{m}");
    assert_eq!(m["pools"][0]["prefix"], POOL, "{m}");
    assert_eq!(m["pools"][0]["allocated"], 1, "{m}");
    assert_eq!(m["eamt"].as_array().unwrap().len(), 3, "{m}");
    assert!(
        pings(&lab, ALLOCATED),
        "no ping to the declared mapping {ALLOCATED}"
    );
    // Removed through the API, the declared mapping comes back at the next start.
    assert_eq!(
        a.ctl(&["natpt", "pool", "release", ALLOCATED]).unwrap(),
        format!("released {ALLOCATED} (was {HOST6})\n")
    );
    a.stop().unwrap();
    a.start().unwrap();
    assert_eq!(maps(&a)["pools"][0]["allocated"], 1, "{}", a.log_tail());
    // A declaration that conflicts with the stored state: the start is refused.
    a.stop().unwrap();
    let text = std::fs::read_to_string(&a.config).unwrap();
    std::fs::write(
        &a.config,
        text.replace(
            &format!("[[\"{HOST6}/128\", \"{ALLOCATED}/32\"]]"),
            &format!(
                "[[\"{HOST6}/128\", \"{ALLOCATED}/32\"], [\"2001:db8:9::/120\", \"10.0.0.0/24\"]]"
            ),
        ),
    )
    .unwrap();
    let (status, log) = a.start_expecting_failure().unwrap();
    assert!(!status.success());
    assert!(
        log.contains(
            "the configuration's [natpt] section does not fit the stored desired state: change 2 \
             of 2: 10.0.0.0/24 already has an EAMT entry (2001:db8:2::/120 <-> 10.0.0.0/24)"
        ),
        "{log}"
    );
    // ... and the maps are as they were.
    assert_eq!(maps(&a)["eamt"].as_array().unwrap().len(), 3);
}
