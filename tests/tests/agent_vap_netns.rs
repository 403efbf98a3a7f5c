//! vAPs through the agent, in network namespaces (needs root): the vAP lab
//! (`vdmm_tests::vap_lab`: correspondent, anchor, AP host, client) without a vAP, and an
//! agent (`vdmm-ctl daemon`) on the AP host.
//!
//! - `vdmm-ctl vap events` with the agent running reports the client while it has no
//!   vAP (the ring buffer is read directly; the agent does not consume it);
//! - `vdmm-ctl vap create` with the agent running goes through it: the vAP is in the
//!   agent's state and store, in the maps with exactly the values asked for (read behind
//!   the agent's back), and the client reaches the correspondent through it; `vap list`,
//!   `vap show` and the API's `vap_show` answer what the maps say; `vap delete` removes it
//!   from state and maps;
//! - bad vAP input (CLI and raw socket, alone and in a batch) is refused with one line and
//!   changes nothing: the desired state, the revision, the state file, the vAP map and the
//!   address table are compared before and after;
//! - a vAP removed and a stale one written into the maps while the agent was down are
//!   re-added and removed when it starts again, and a vAP switched to forwarding behind
//!   its back is switched back by a reconcile; the client reaches the correspondent after
//!   each repair.

use std::net::IpAddr;

use vdmm_ctl::{maps::Dataplane, pin::PinDir, vap::Mac};
use vdmm_tests::{
    agent::AgentProcess,
    lab,
    vap_lab::{ANCHOR, AP, CLIENT_MAC, CLIENT4, CLIENT6, CORR4, VapLab, mac_text},
};

/// A socket nobody listens on: `vdmm-ctl` with it works on the maps directly.
const NO_AGENT: &str = "/run/vdmm/avnoagent.sock";

fn lab_and_agent(prefix: &str) -> (VapLab, AgentProcess) {
    let lab = VapLab::new(prefix, false);
    let mut agent = AgentProcess::configure(
        &lab.ctl,
        lab.ap.name(),
        &VapLab::pin_dir(&lab.ap),
        "[interfaces]\nattach = [\"ap-u\"]\n",
    )
    .expect("configure the agent");
    agent.start().expect("start the agent");
    (lab, agent)
}

/// `vdmm-ctl` on the AP host's maps, bypassing the agent.
fn on_maps(lab: &VapLab, args: &[&str]) -> anyhow::Result<String> {
    let mut all = vec!["--agent-socket", NO_AGENT];
    all.extend_from_slice(args);
    lab.ctl(&lab.ap, &all)
}

/// The vAP map and the address table, read with the library behind the agent's back.
fn maps_dump(lab: &VapLab) -> String {
    let dp = Dataplane::open(&PinDir::new(VapLab::pin_dir(&lab.ap))).unwrap();
    format!(
        "{:?}\n{:?}",
        dp.vaps().unwrap(),
        dp.vap_addr_owners().unwrap()
    )
}

fn client() -> String {
    mac_text(CLIENT_MAC)
}

/// Every ping from the client to the correspondent answered.
fn assert_forwards(lab: &VapLab, what: &str) {
    let p = lab::ping(&lab.client, CORR4.into(), 5, None).unwrap();
    assert_eq!(
        (p.sent, p.received),
        (5, 5),
        "{what}: pings from the client through its vAP"
    );
}

fn create_args(client: &str, v4: &str) -> Vec<String> {
    ["vap", "create", client, "--ipv4", v4, "--anchor"]
        .iter()
        .map(|s| s.to_string())
        .chain([ANCHOR.to_string()])
        .collect()
}

#[test]
fn a_vap_created_through_the_agent_is_stored_in_the_maps_and_forwards() {
    let (lab, agent) = lab_and_agent("avc");
    // Before its vAP exists the client is an unknown client: `vap events` reads the
    // data plane's reports from the pinned ring buffer also while the agent runs (the
    // agent does not consume them).
    let _ = lab::ping(&lab.client, CORR4.into(), 1, None);
    let events: serde_json::Value = serde_json::from_str(
        &agent
            .ctl(&["vap", "events", "--wait", "5", "--json"])
            .unwrap(),
    )
    .unwrap();
    let reported = events.as_array().unwrap();
    assert!(
        reported
            .iter()
            .any(|e| e["client"] == client() && e["kind"] == "unknown_client"),
        "{events}"
    );
    let created = agent
        .ctl(&[
            "vap",
            "create",
            &client(),
            "--ipv4",
            &CLIENT4.to_string(),
            "--ipv6",
            &CLIENT6.to_string(),
            "--anchor",
            &ANCHOR.to_string(),
        ])
        .unwrap();
    assert!(
        created.starts_with(&format!("client:    {}\n", client())),
        "{created}"
    );
    eprintln!("vap create through the agent printed:\n{created}");

    // In the desired state, resolved: source, interface, vAP MAC.
    let state = agent.ok(r#"{"request":"state"}"#).unwrap();
    let vaps = state["vaps"].as_array().unwrap();
    assert_eq!(vaps.len(), 1, "{state}");
    let v = &vaps[0];
    assert_eq!(v["client"], client());
    assert_eq!(v["ipv4"], CLIENT4.to_string());
    assert_eq!(v["ipv6"], CLIENT6.to_string());
    assert_eq!(v["anchor"], ANCHOR.to_string());
    assert_eq!(v["source"], AP.to_string());
    assert_eq!(v["iface"], "ap-r");
    let vap_mac = v["vap_mac"].as_str().unwrap().to_string();
    // ... and in the store's file.
    let file = std::fs::read_to_string(agent.state_file()).unwrap();
    assert!(
        file.contains(&format!("\"vap_mac\":\"{vap_mac}\"")),
        "{file}"
    );

    // In the maps with exactly these values (read without the agent).
    let shown: serde_json::Value =
        serde_json::from_str(&on_maps(&lab, &["vap", "show", &client(), "--json"]).unwrap())
            .unwrap();
    for (field, want) in [
        ("client", client()),
        ("vap_mac", vap_mac.clone()),
        ("ipv4", CLIENT4.to_string()),
        ("ipv6", CLIENT6.to_string()),
        ("anchor", ANCHOR.to_string()),
        ("source", AP.to_string()),
        ("iface", "ap-r".to_string()),
        ("mode", "local".to_string()),
    ] {
        assert_eq!(shown[field], want, "maps: {field} in {shown}");
    }
    let dp = Dataplane::open(&PinDir::new(VapLab::pin_dir(&lab.ap))).unwrap();
    let owners = dp.vap_addr_owners().unwrap();
    for a in [IpAddr::from(CLIENT4), IpAddr::from(CLIENT6)] {
        assert_eq!(
            owners.get(&a).map(|m| m.to_string()),
            Some(client()),
            "address table: {a}"
        );
    }
    assert_eq!(owners.len(), 2, "{owners:?}");

    // The client reaches the correspondent through it.
    assert_forwards(&lab, "created through the agent");

    // list and show through the agent say what the maps say.
    let through = agent.ctl(&["vap", "list", "--json"]).unwrap();
    assert_eq!(through, on_maps(&lab, &["vap", "list", "--json"]).unwrap());
    assert_eq!(
        agent.ctl(&["vap", "list"]).unwrap(),
        on_maps(&lab, &["vap", "list"]).unwrap()
    );
    let api = agent
        .ok(&format!(
            r#"{{"request":"vap_show","client":"{}"}}"#,
            client()
        ))
        .unwrap();
    assert_eq!(api["vap_mac"], vap_mac.as_str());
    assert!(
        api["counters"]["uplink"]["packets"].as_u64().unwrap() >= 5,
        "{api}"
    );
    eprintln!(
        "vap list through the agent:\n{}",
        agent.ctl(&["vap", "list"]).unwrap()
    );
    let status = agent.ok(r#"{"request":"status"}"#).unwrap();
    assert_eq!(status["vaps"], 1, "{status}");

    // Delete: gone from state and maps.
    let out = agent.ctl(&["vap", "delete", &client()]).unwrap();
    assert_eq!(
        out,
        format!("deleted the vAP of {} (vAP MAC {vap_mac})\n", client())
    );
    let state = agent.ok(r#"{"request":"state"}"#).unwrap();
    assert_eq!(state["vaps"], serde_json::json!([]), "{state}");
    assert_eq!(on_maps(&lab, &["vap", "list", "--json"]).unwrap(), "[]\n");
    assert!(dp.vap_addr_owners().unwrap().is_empty());
}

/// What "changes nothing" compares: desired state, revision, state file, vAP maps.
fn snapshot(lab: &VapLab, a: &AgentProcess) -> Vec<String> {
    vec![
        a.ok(r#"{"request":"state"}"#).unwrap().to_string(),
        a.ok(r#"{"request":"status"}"#).unwrap()["revision"].to_string(),
        std::fs::read_to_string(a.state_file()).unwrap(),
        maps_dump(lab),
    ]
}

#[test]
fn bad_vap_input_is_refused_and_changes_nothing() {
    let (lab, agent) = lab_and_agent("avb");
    let first = create_args(&client(), &CLIENT4.to_string());
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    agent.ctl(&first).unwrap();
    let vap_mac = agent.ok(r#"{"request":"state"}"#).unwrap()["vaps"][0]["vap_mac"]
        .as_str()
        .unwrap()
        .to_string();
    let before = snapshot(&lab, &agent);
    let other = "02:00:00:00:20:11";
    let anchor = ANCHOR.to_string();
    let v4 = CLIENT4.to_string();
    let cli: Vec<(Vec<&str>, &str)> = vec![
        (first.clone(), "already has a vAP"),
        (
            vec!["vap", "create", other, "--ipv4", &v4, "--anchor", &anchor],
            "address 10.20.0.10 already belongs to the vAP of client 02:00:00:00:20:10",
        ),
        (
            vec![
                "vap",
                "create",
                other,
                "--ipv4",
                "10.20.0.11",
                "--anchor",
                &anchor,
                "--vap-mac",
                &vap_mac,
            ],
            "already belongs to the vAP of client",
        ),
        (
            vec![
                "vap",
                "create",
                "02:00:00:00:20",
                "--ipv4",
                "10.20.0.11",
                "--anchor",
                &anchor,
            ],
            "invalid MAC address",
        ),
        (
            vec![
                "vap",
                "create",
                other,
                "--ipv4",
                "fd00:20::11",
                "--anchor",
                &anchor,
            ],
            "is not an IPv4 address",
        ),
        (
            vec![
                "vap",
                "create",
                other,
                "--ipv4",
                "10.20.0.11",
                "--anchor",
                &anchor,
                "--iface",
                "avnosuch0",
            ],
            "avnosuch0",
        ),
        (
            vec![
                "vap",
                "create",
                other,
                "--ipv4",
                "10.20.0.11",
                "--anchor",
                "2001:db8::1",
            ],
            "IPv6",
        ),
        (
            vec![
                "vap",
                "create",
                "ff:ff:ff:ff:ff:ff",
                "--ipv4",
                "10.20.0.11",
                "--breakout",
            ],
            "not a unicast MAC",
        ),
        (
            vec!["vap", "delete", other],
            "no vAP for client 02:00:00:00:20:11",
        ),
        (
            vec!["vap", "forward", other, "--to", &anchor],
            "no vAP for client 02:00:00:00:20:11",
        ),
    ];
    for (args, want) in &cli {
        let out = agent.ctl_raw(args).unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "vdmm-ctl {} succeeded",
            args.join(" ")
        );
        assert!(
            err.contains(want),
            "vdmm-ctl {}: {err:?} does not say {want:?}",
            args.join(" ")
        );
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "one line: {err:?} ({})",
            args.join(" ")
        );
        assert_eq!(
            snapshot(&lab, &agent),
            before,
            "after vdmm-ctl {}",
            args.join(" ")
        );
    }
    let c = client();
    let raw = [
        // The first create is valid alone; the second takes its address: neither happens.
        (
            format!(
                r#"{{"request":"apply","ops":[
                    {{"op":"vap_create","client":"{other}","ipv4":"10.20.0.11","anchor":"{anchor}"}},
                    {{"op":"vap_create","client":"02:00:00:00:20:12","ipv4":"10.20.0.11","anchor":"{anchor}"}}]}}"#
            ),
            "change 2 of 2: address 10.20.0.11 already belongs",
        ),
        (
            format!(
                r#"{{"request":"vap_create","vap":{{"client":"{other}","ipv4":"10.20.0.11","anchor":"{anchor}","colour":"red"}}}}"#
            ),
            "unknown field `colour`",
        ),
        (
            format!(
                r#"{{"request":"vap_create","vap":{{"client":"{other}","ipv6":"10.20.0.11","breakout":true}}}}"#
            ),
            "ipv6 10.20.0.11 is not an IPv6 address",
        ),
        (
            format!(r#"{{"request":"vap_create","vap":{{"client":"{other}","breakout":true}}}}"#),
            "needs the client's IPv4 or IPv6 address",
        ),
        (
            format!(
                r#"{{"request":"apply","ops":[{{"op":"vap_delete","client":"{c}"}},{{"op":"peer_del","addr":"203.0.113.9"}}]}}"#
            ),
            "change 2 of 2: 203.0.113.9 is not a tunnel peer",
        ),
        (
            format!(r#"{{"request":"vap_show","client":"{other}"}}"#),
            "no vAP for client",
        ),
        (
            r#"{"request":"vap_list","pin_dir":"/run/vdmm/elsewhere"}"#.to_string(),
            "this agent manages the data plane pinned at",
        ),
    ];
    for (line, want) in &raw {
        let v = agent.request(&line.replace('\n', " ")).unwrap();
        assert_eq!(v["ok"], false, "{line} was accepted: {v}");
        let err = v["error"].as_str().unwrap();
        assert!(err.contains(want), "{line}: {err:?} does not say {want:?}");
        assert_eq!(snapshot(&lab, &agent), before, "after {line}");
    }
    assert_forwards(&lab, "after the refused requests");
}

#[test]
fn stale_vaps_are_removed_and_missing_ones_restored_on_restart_and_reconcile() {
    let (lab, mut agent) = lab_and_agent("avr");
    let first = create_args(&client(), &CLIENT4.to_string());
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    agent.ctl(&first).unwrap();
    let desired = maps_dump(&lab);
    assert_forwards(&lab, "created through the agent");

    // Behind the stopped agent's back: its vAP deleted, another one created.
    agent.kill9().unwrap();
    on_maps(&lab, &["vap", "delete", &client()]).unwrap();
    let stale = create_args("02:00:00:00:20:99", "10.20.0.99");
    let stale: Vec<&str> = stale.iter().map(String::as_str).collect();
    on_maps(&lab, &stale).unwrap();
    assert_ne!(maps_dump(&lab), desired);
    agent.start().unwrap();
    let report = agent.ok(r#"{"request":"status"}"#).unwrap()["last_reconcile"]["report"].clone();
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    // The vAP back (with its address), the stale vAP gone (with its address).
    assert_eq!(report["added"], 1, "{report}");
    assert_eq!(report["removed"], 1, "{report}");
    let list: serde_json::Value =
        serde_json::from_str(&on_maps(&lab, &["vap", "list", "--json"]).unwrap()).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["client"], client());
    let dp = Dataplane::open(&PinDir::new(VapLab::pin_dir(&lab.ap))).unwrap();
    assert_eq!(
        dp.vap_addr_owners()
            .unwrap()
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        [IpAddr::from(CLIENT4)]
    );
    assert_forwards(&lab, "restored on restart");

    // While it runs: the vAP switched to forwarding and a stray address added behind its
    // back; a reconcile puts both right.
    on_maps(
        &lab,
        &["vap", "forward", &client(), "--to", &ANCHOR.to_string()],
    )
    .unwrap();
    let mut dp = Dataplane::open(&PinDir::new(VapLab::pin_dir(&lab.ap))).unwrap();
    dp.set_vap_addr("10.20.0.98".parse().unwrap(), Mac(CLIENT_MAC))
        .unwrap();
    let report = agent.ok(r#"{"request":"reconcile"}"#).unwrap();
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    assert_eq!(
        (report["updated"].as_u64(), report["removed"].as_u64()),
        (Some(1), Some(1)),
        "{report}"
    );
    let shown: serde_json::Value =
        serde_json::from_str(&on_maps(&lab, &["vap", "show", &client(), "--json"]).unwrap())
            .unwrap();
    assert_eq!(shown["mode"], "local", "{shown}");
    assert_forwards(&lab, "repaired by a reconcile");
    // Nothing left to change.
    let report = agent.ok(r#"{"request":"reconcile"}"#).unwrap();
    for k in ["added", "updated", "removed"] {
        assert_eq!(report[k], 0, "{k}: {report}");
    }
}
