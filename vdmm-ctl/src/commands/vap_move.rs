//! `vdmm-ctl vap move CLIENT --to AP --cluster FILE`: a make-before-break handover of the
//! client's vAP ([`crate::handover::mover`]) between AP hosts of the cluster file. A file
//! lock per client (beside the handover state file) makes a second command for the same
//! client refuse while the first runs; the outcome is counted in the state file.

use std::{
    fs::OpenOptions,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use crate::{
    cluster::Cluster,
    error::{Error, Result},
    handover::{
        ClientMac,
        clock::SystemClock,
        mover::{MoveError, MoveReport, Mover},
        netns_nodes,
        stats::{self, Event, Refusal},
    },
    vap::Mac,
};

pub fn run(client: &str, to: &str, cluster: &Path, grace_ms: u64, json: bool) -> Result<String> {
    let mac: Mac = client.parse()?;
    let client = ClientMac(mac.0);
    let cluster = Cluster::load(cluster)?;
    let stats_file = stats::state_file();
    let _lock = match lock_client(stats_file.path(), client)? {
        Some(l) => l,
        None => {
            if let Err(e) = stats_file.record(Event::Refused(Refusal::InProgress)) {
                tracing::warn!("handover counters not persisted: {e}");
            }
            return Err(MoveError::InProgress(client).into());
        }
    };
    let (hosts, anchors) = netns_nodes::nodes(&cluster);
    let mover =
        Mover::new(hosts, anchors, Arc::new(SystemClock::default())).with_stats_file(stats_file);
    let report = mover.move_client(client, to, Duration::from_millis(grace_ms))?;
    Ok(if json {
        format!("{}\n", report_json(&report))
    } else {
        report_text(&report)
    })
}

/// Takes `move-MAC.lock` in the state file's directory without waiting: `None` when
/// another command holds it. Released when the returned file is closed.
pub(crate) fn lock_client(state: &Path, client: ClientMac) -> Result<Option<std::fs::File>> {
    let dir = state
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let path = dir.join(format!("move-{}.lock", client.to_string().replace(':', "")));
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    // SAFETY: flock on an open descriptor.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Ok(None);
        }
        return Err(Error::io(format!("cannot lock {}", path.display()), e));
    }
    Ok(Some(f))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `{client, from, to, anchor, homes, target_locator, switch_over_ms, total_ms, grace_ms,
/// phases: {prepare_target, switch_anchor, forward_source, remove_source}}` (ms).
pub fn report_json(r: &MoveReport) -> serde_json::Value {
    let phases: serde_json::Map<String, serde_json::Value> = r
        .phases
        .iter()
        .map(|(p, d)| (p.name().to_string(), ms(*d).into()))
        .collect();
    serde_json::json!({
        "client": r.client.to_string(),
        "from": r.from,
        "to": r.to,
        "anchor": r.anchor,
        "homes": r.homes.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        "target_locator": r.target_locator.to_string(),
        "switch_over_ms": ms(r.switch_over),
        "total_ms": ms(r.total),
        "grace_ms": ms(r.grace),
        "phases": phases,
    })
}

pub fn report_text(r: &MoveReport) -> String {
    let homes: Vec<String> = r.homes.iter().map(|h| h.to_string()).collect();
    let mut s = format!(
        "moved {} from {} to {}: anchor {} binds {} to {}\n",
        r.client,
        r.from,
        r.to,
        r.anchor,
        homes.join(", "),
        r.target_locator
    );
    for (p, d) in &r.phases {
        s.push_str(&format!("  {:<15} {:>9.3} ms\n", p.name(), ms(*d)));
    }
    s.push_str(&format!(
        "switch-over {:.3} ms after the command; done after {:.3} ms (grace period {:.0} ms)\n",
        ms(r.switch_over),
        ms(r.total),
        ms(r.grace)
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handover::Phase;

    #[test]
    fn report_formats() {
        let r = MoveReport {
            client: ClientMac([2, 0, 0, 0, 0x20, 0x10]),
            from: "ap1".into(),
            to: "ap2".into(),
            anchor: "gw1".into(),
            homes: vec!["10.20.0.10/32".parse().unwrap()],
            target_locator: "192.0.2.12".parse().unwrap(),
            phases: vec![
                (Phase::Prepare, Duration::from_micros(400)),
                (Phase::SwitchAnchor, Duration::from_micros(600)),
                (Phase::ForwardSource, Duration::from_micros(50)),
                (Phase::RemoveSource, Duration::from_micros(200_300)),
            ],
            switch_over: Duration::from_micros(1000),
            total: Duration::from_micros(201_350),
            grace: Duration::from_millis(200),
        };
        let t = report_text(&r);
        assert!(t.starts_with("moved 02:00:00:00:20:10 from ap1 to ap2: anchor gw1 binds 10.20.0.10/32 to 192.0.2.12\n"), "{t}");
        assert!(t.contains("  switch_anchor       0.600 ms\n"), "{t}");
        assert!(t.ends_with("switch-over 1.000 ms after the command; done after 201.350 ms (grace period 200 ms)\n"), "{t}");
        let j = report_json(&r);
        assert_eq!(j["switch_over_ms"], 1.0);
        assert_eq!(j["phases"]["remove_source"], 200.3);
        assert_eq!(j["homes"][0], "10.20.0.10/32");
    }

    #[test]
    fn second_lock_on_a_client_is_refused() {
        let dir = std::env::temp_dir().join(format!("vdmm-move-lock-{}", std::process::id()));
        let state = dir.join("stats.json");
        let c = ClientMac([2, 0, 0, 0, 0, 1]);
        let first = lock_client(&state, c).unwrap();
        assert!(first.is_some());
        assert!(lock_client(&state, c).unwrap().is_none());
        assert!(
            lock_client(&state, ClientMac([2, 0, 0, 0, 0, 2]))
                .unwrap()
                .is_some()
        );
        drop(first);
        assert!(lock_client(&state, c).unwrap().is_some());
        let _ = std::fs::remove_dir_all(dir);
    }
}
