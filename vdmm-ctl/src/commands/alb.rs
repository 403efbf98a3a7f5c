//! `vdmm-ctl alb ...`: the simulator and the controller's commands. The controller's
//! commands read and change the state file under its lock; a refused command changes
//! nothing.

use std::{
    io::{BufRead, Write},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::json;

use crate::{
    alb::{
        cli::{AlbArgs, AlbCommand, ApCommand},
        controller::{
            daemon,
            execute::Executed,
            file::StateFile,
            live::{self, collect},
            metrics,
            sample::SampleSummary,
            state::{Report, State},
        },
        decide::{Decision, Move, MoveReason},
        load::jain,
        params::Params,
        sim::{self, report, scenario::Scenario},
    },
    cluster::Cluster,
    error::{Error, Result},
    table::{Align, render},
};

/// Seconds since the epoch.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn alb(e: String) -> Error {
    Error::Alb(e)
}

pub fn run(args: AlbArgs) -> Result<String> {
    let file = StateFile::new(&args.state);
    match args.command {
        AlbCommand::Simulate {
            scenario,
            seed,
            params,
            json,
            plot,
            bound,
        } => {
            let mut s = Scenario::load(&scenario).map_err(Error::Alb)?;
            if let Some(seed) = seed {
                s.seed = seed;
            }
            for a in &params {
                s.alb = s.alb.with(a).map_err(Error::Alb)?;
            }
            let outcome = sim::simulate(&s, bound);
            if let Some(path) = plot {
                report::plot(&outcome, &path)?;
            }
            Ok(if json {
                report::json(&outcome)
            } else {
                report::table(&outcome)
            })
        }
        AlbCommand::Ap(ApCommand::Add { name, capacity }) => {
            file.update(|s| s.add_ap(&name, capacity).map_err(alb))?;
            Ok(String::new())
        }
        AlbCommand::Ap(ApCommand::Del { name }) => {
            file.update(|s| s.del_ap(&name).map_err(alb))?;
            Ok(String::new())
        }
        AlbCommand::Report {
            ap,
            client,
            rssi,
            associated,
            bytes,
            time,
        } => {
            let r = Report {
                ap,
                client,
                rssi_dbm: rssi,
                associated,
                bytes,
                time,
            };
            file.update(|s| s.report(&r, now()).map_err(alb))?;
            Ok(String::new())
        }
        AlbCommand::Feed { commit } => {
            feed(
                &file,
                std::io::stdin().lock(),
                commit,
                &mut std::io::stdout(),
            )?;
            Ok(String::new())
        }
        AlbCommand::Status { json } => {
            let s = file.read()?;
            Ok(if json {
                status_json(&s, now())
            } else {
                status_text(&s, now())
            })
        }
        AlbCommand::Rebalance {
            commit,
            apply,
            cluster,
            grace_ms,
            time,
            json,
        } => match cluster.filter(|_| apply) {
            Some(cluster) => {
                rebalance_apply(&file, &cluster, Duration::from_millis(grace_ms), time, json)
            }
            None => {
                let t = time.unwrap_or_else(now);
                let d = file.update(|s| {
                    if commit && !s.enabled {
                        return Err(disabled("--commit"));
                    }
                    let d = s.decide(t);
                    if commit {
                        s.commit(&d.moves, t);
                        s.last_round = Some(t);
                    }
                    Ok(d)
                })?;
                Ok(if json {
                    format!(
                        "{}\n",
                        serde_json::to_string_pretty(&d).expect("serialises")
                    )
                } else {
                    decision_text(&d, commit)
                })
            }
        },
        AlbCommand::Collect {
            cluster,
            time,
            json,
        } => {
            let cluster = Cluster::load(&cluster)?;
            let t = time.unwrap_or_else(now);
            let summary = file.update(|s| collect(s, &cluster, t))?;
            Ok(if json {
                format!(
                    "{}\n",
                    serde_json::to_string_pretty(&summary).expect("serialises")
                )
            } else {
                collect_text(&summary)
            })
        }
        AlbCommand::Run {
            cluster,
            grace_ms,
            intervals,
            json,
        } => run_loop(
            &file,
            &cluster,
            Duration::from_millis(grace_ms),
            intervals,
            json,
        ),
        AlbCommand::Enable | AlbCommand::Disable => {
            let on = matches!(args.command, AlbCommand::Enable);
            file.update(|s| {
                s.enabled = on;
                Ok(())
            })?;
            Ok(String::new())
        }
        AlbCommand::Params { set } => {
            let p = file.update(|s| {
                let mut p = s.params.clone();
                for a in &set {
                    p = p.with(a).map_err(alb)?;
                }
                s.params = p.clone();
                Ok(p)
            })?;
            Ok(params_text(&p))
        }
        AlbCommand::Metrics => Ok(metrics::render(&file.read()?, now())),
    }
}

/// Reads reports line by line; runs a round when one is due (enabled only) and writes its
/// moves as a JSON line. Each line is its own locked update, so other commands interleave.
pub fn feed(
    file: &StateFile,
    input: impl BufRead,
    commit: bool,
    out: &mut impl std::io::Write,
) -> Result<()> {
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| Error::io("cannot read standard input", e))?;
        if line.trim().is_empty() {
            continue;
        }
        let arrival = now();
        let parsed: std::result::Result<Report, String> =
            serde_json::from_str(&line).map_err(|e| format!("not a report: {e}"));
        let round = file.update(|s| {
            let r = match parsed.and_then(|r| s.report(&r, arrival).map(|()| r)) {
                Ok(r) => r,
                Err(e) => {
                    s.counters.reports_rejected += 1;
                    eprintln!("line {}: {e}", i + 1);
                    return Ok(None);
                }
            };
            let t = r.time.unwrap_or(arrival);
            if !s.enabled || !s.round_due(t) {
                return Ok(None);
            }
            let d = s.decide(t);
            s.last_round = Some(t);
            if commit {
                s.commit(&d.moves, t);
            }
            Ok(Some((t, d)))
        })?;
        if let Some((t, d)) = round.filter(|(_, d)| !d.moves.is_empty()) {
            let line = json!({"time": t, "moves": d.moves});
            writeln!(out, "{line}").map_err(|e| Error::io("cannot write standard output", e))?;
        }
    }
    Ok(())
}

fn disabled(flag: &str) -> Error {
    alb(format!(
        "the balancer is disabled; `vdmm-ctl alb enable` first (or drop {flag} for a dry run)"
    ))
}

fn collect_text(s: &SampleSummary) -> String {
    let per_ap: Vec<String> = s.vaps.iter().map(|(ap, n)| format!("{ap} {n}")).collect();
    let mut out = format!(
        "serving vAPs read: {} ({} placed anew)\n",
        if per_ap.is_empty() {
            "none".to_string()
        } else {
            per_ap.join(", ")
        },
        s.relocated
    );
    if !s.ambiguous.is_empty() {
        out.push_str(&format!(
            "served by two AP hosts (a move running), left as they were: {}\n",
            s.ambiguous.join(", ")
        ));
    }
    if !s.unbalanced_hosts.is_empty() {
        out.push_str(&format!(
            "AP hosts not balanced (no `alb ap add`), not read: {}\n",
            s.unbalanced_hosts.join(", ")
        ));
    }
    out
}

/// `rebalance --apply`: under the state's lock, read the data planes, decide, make each
/// move as a vAP handover, record the moves made and count the others.
fn rebalance_apply(
    file: &StateFile,
    cluster: &std::path::Path,
    grace: Duration,
    time: Option<f64>,
    json: bool,
) -> Result<String> {
    let cluster = Cluster::load(cluster)?;
    let r = file.update(|s| {
        if !s.enabled {
            return Err(disabled("--apply"));
        }
        let t = time.unwrap_or_else(now);
        live::round(s, &cluster, grace, t, || time.unwrap_or_else(now))
    })?;
    let (decision, executed, fairness_now) = (r.decision, r.executed, r.fairness_now);
    Ok(if json {
        let v = json!({
            "fairness_before": decision.fairness_before,
            "fairness_decided": decision.fairness_after,
            "fairness_now": fairness_now,
            "done": executed.done,
            "failed": executed.failed,
            "stranded": decision.stranded,
        });
        format!(
            "{}\n",
            serde_json::to_string_pretty(&v).expect("serialises")
        )
    } else {
        executed_text(&decision, &executed, fairness_now)
    })
}

/// `alb run`: the loop until SIGTERM or SIGINT (or `intervals`), printing its rounds.
fn run_loop(
    file: &StateFile,
    cluster: &std::path::Path,
    grace: Duration,
    intervals: Option<u64>,
    json: bool,
) -> Result<String> {
    let cluster = Cluster::load(cluster)?;
    let stop = daemon::stop_on_signals();
    let opts = daemon::Options { grace, intervals };
    let mut out = std::io::stdout();
    let totals = daemon::run(file, &cluster, &opts, stop, now, |i| {
        let text = match i {
            daemon::Interval::Idle => return,
            daemon::Interval::Error(e) => {
                eprintln!("alb run: interval failed, nothing changed: {e}");
                return;
            }
            daemon::Interval::Round(r) if json => format!(
                "{}\n",
                json!({
                    "time": r.time,
                    "fairness_before": r.decision.fairness_before,
                    "fairness_now": r.fairness_now,
                    "done": r.executed.done,
                    "failed": r.executed.failed,
                    "stranded": r.decision.stranded,
                })
            ),
            daemon::Interval::Round(r) if r.decision.moves.is_empty() => return,
            daemon::Interval::Round(r) => format!(
                "round at {:.1}:\n{}",
                r.time,
                executed_text(&r.decision, &r.executed, r.fairness_now)
            ),
        };
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    })?;
    Ok(format!(
        "alb run stopped: {} rounds ({} with moves), moves done {}, failed {}; {} intervals disabled, {} failed\n",
        totals.rounds,
        totals.rounds_with_moves,
        totals.moves_done,
        totals.moves_failed,
        totals.idle,
        totals.errors
    ))
}

fn executed_text(d: &Decision, e: &Executed, fairness_now: f64) -> String {
    let mut out = String::new();
    if d.moves.is_empty() {
        out.push_str("no moves\n");
    }
    for m in &e.done {
        out.push_str(&move_text(&m.decided));
        match m.switch_over_ms {
            Some(ms) => out.push_str(&format!(": done, switch-over {ms:.1} ms\n")),
            None => out.push_str(": done (already there)\n"),
        }
    }
    for f in &e.failed {
        out.push_str(&format!("{}: FAILED: {}\n", move_text(&f.decided), f.error));
    }
    for c in &d.stranded {
        out.push_str(&format!("{c}: stranded (no AP hears it well enough)\n"));
    }
    out.push_str(&format!(
        "moves done {}, failed {}; fairness {:.3} -> {:.3}\n",
        e.done.len(),
        e.failed.len(),
        d.fairness_before,
        fairness_now
    ));
    out
}

fn move_text(m: &Move) -> String {
    let from = m
        .rssi_from
        .map_or("gone".to_string(), |r| format!("{r:.1}"));
    format!(
        "{}: {} -> {} ({}; signal {} -> {:.1} dBm)",
        m.client,
        m.from,
        m.to,
        m.reason.name(),
        from,
        m.rssi_to
    )
}

fn decision_text(d: &Decision, committed: bool) -> String {
    let mut out = String::new();
    if d.moves.is_empty() {
        out.push_str("no moves\n");
    }
    for m in &d.moves {
        out.push_str(&move_text(m));
        out.push('\n');
    }
    for c in &d.stranded {
        out.push_str(&format!("{c}: stranded (no AP hears it well enough)\n"));
    }
    out.push_str(&format!(
        "fairness {:.3} -> {:.3}{}\n",
        d.fairness_before,
        d.fairness_after,
        if committed || d.moves.is_empty() {
            ""
        } else {
            " (dry run: add --commit to record the moves)"
        }
    ));
    out
}

fn status_json(s: &State, now: f64) -> String {
    let snap = s.snapshot(now);
    let util = crate::alb::load::utilisation(&snap, &s.params);
    let aps: Vec<_> = s
        .aps
        .iter()
        .map(|(name, a)| {
            json!({
                "name": name,
                "capacity_mbps": a.capacity_mbps,
                "utilisation": util[name],
                "clients": snap.clients.values().filter(|c| &c.ap == name).count(),
            })
        })
        .collect();
    let v = json!({
        "enabled": s.enabled,
        "aps": aps,
        "clients": s.clients.len(),
        "clients_associated": snap.clients.len(),
        "fairness": jain(util.values().copied()),
        "counters": s.counters,
        "last_round": s.last_round,
    });
    format!(
        "{}\n",
        serde_json::to_string_pretty(&v).expect("serialises")
    )
}

fn status_text(s: &State, now: f64) -> String {
    let snap = s.snapshot(now);
    let util = crate::alb::load::utilisation(&snap, &s.params);
    let mean = crate::alb::load::mean(util.values().copied());
    let p = &s.params;
    let rows: Vec<Vec<String>> = s
        .aps
        .iter()
        .map(|(name, a)| {
            let u = util[name];
            let over = u > p.high_util || u > mean + p.imbalance_gap;
            vec![
                name.clone(),
                format!("{}", a.capacity_mbps),
                snap.clients
                    .values()
                    .filter(|c| &c.ap == name)
                    .count()
                    .to_string(),
                format!("{u:.2}"),
                if over {
                    "overloaded".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    let mut out = format!(
        "balancer {}\n\n",
        if s.enabled { "enabled" } else { "disabled" }
    );
    out.push_str(&render(
        &[
            ("ap", Align::Left),
            ("capacity_mbps", Align::Right),
            ("clients", Align::Right),
            ("utilisation", Align::Right),
            ("", Align::Left),
        ],
        &rows,
    ));
    let c = &s.counters;
    let moves: Vec<String> = MoveReason::ALL
        .iter()
        .map(|r| format!("{} {}", r.name(), c.moves.get(r).copied().unwrap_or(0)))
        .collect();
    out.push_str(&format!(
        "\nclients: {} ({} with a serving AP); fairness {:.3}\nreports {} (rejected {}), vAP samples {}, rounds {}, moves: {} (failed {})\n",
        s.clients.len(),
        snap.clients.len(),
        jain(util.values().copied()),
        c.reports,
        c.reports_rejected,
        c.vap_samples,
        c.decisions,
        moves.join(", "),
        c.moves_failed
    ));
    out
}

fn params_text(p: &Params) -> String {
    let v = serde_json::to_value(p).expect("serialises");
    let d = serde_json::to_value(Params::default()).expect("serialises");
    let rows: Vec<Vec<String>> = Params::names()
        .into_iter()
        .map(|n| {
            vec![
                n.clone(),
                v[&n].to_string(),
                if v[&n] == d[&n] {
                    String::new()
                } else {
                    format!("(default {})", d[&n])
                },
            ]
        })
        .collect();
    render(
        &[
            ("parameter", Align::Left),
            ("value", Align::Right),
            ("", Align::Left),
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::State;
    use crate::cli::{Cli, Command};

    fn run(args: &[&str]) -> crate::error::Result<String> {
        let c = Cli::try_parse_from(["vdmm-ctl", "alb"].iter().chain(args)).unwrap();
        match c.command {
            Command::Alb(a) => super::run(a),
            other => panic!("{other:?}"),
        }
    }

    /// A state file of its own for one test, removed at the end.
    struct TempState(std::path::PathBuf);

    impl TempState {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("vdmm-alb-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            Self(dir)
        }
        fn path(&self) -> String {
            self.0.join("alb.json").display().to_string()
        }
        fn run(&self, args: &[&str]) -> crate::error::Result<String> {
            let p = self.path();
            let mut all = vec!["--state", p.as_str()];
            all.extend_from_slice(args);
            run(&all)
        }
    }

    impl Drop for TempState {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn controller_commands_end_to_end() {
        let st = TempState::new("ctl");
        st.run(&["ap", "add", "ap1", "--capacity", "10"]).unwrap();
        st.run(&["ap", "add", "ap2", "--capacity", "10"]).unwrap();
        let e = st
            .run(&["ap", "add", "ap2", "--capacity", "5"])
            .unwrap_err();
        assert!(e.to_string().starts_with("AP ap2 already exists"), "{e}");
        let mut input = String::new();
        for i in 1..=6 {
            input.push_str(&format!(
                "{{\"ap\":\"ap1\",\"client\":\"c{i}\",\"rssi_dbm\":-50,\"associated\":true,\"bytes\":0,\"time\":100}}\n\
                 {{\"ap\":\"ap2\",\"client\":\"c{i}\",\"rssi_dbm\":-5{i},\"time\":100}}\n"
            ));
        }
        input.push_str("not json\n{\"ap\":\"ap9\",\"client\":\"x\",\"rssi_dbm\":-50}\n");
        for i in 1..=6 {
            input.push_str(&format!(
                "{{\"ap\":\"ap1\",\"client\":\"c{i}\",\"rssi_dbm\":-50,\"associated\":true,\"bytes\":250000,\"time\":101}}\n"
            ));
        }
        input.push_str("{\"ap\":\"ap2\",\"client\":\"c1\",\"rssi_dbm\":-51,\"time\":106}\n");

        // Disabled: reports are taken in, no round runs.
        let file = super::StateFile::new(st.path());
        let mut out = Vec::new();
        super::feed(&file, input.as_bytes(), true, &mut out).unwrap();
        assert!(out.is_empty());
        let s = file.read().unwrap();
        assert_eq!(
            (
                s.counters.reports,
                s.counters.reports_rejected,
                s.counters.decisions
            ),
            (19, 2, 0)
        );
        let e = st
            .run(&["rebalance", "--commit", "--time", "106"])
            .unwrap_err();
        assert!(e.to_string().starts_with("the balancer is disabled"), "{e}");
        let dry = st.run(&["rebalance", "--time", "106"]).unwrap();
        assert!(
            dry.starts_with("c1: ap1 -> ap2 (balance; signal -50.0 -> -51.0 dBm)\n"),
            "{dry}"
        );
        assert!(dry.contains("dry run"), "{dry}");

        // Enabled: the same stream moves clients, one JSON line per round with moves.
        // From a fresh state, enabled.
        std::fs::remove_file(st.path()).unwrap();
        st.run(&["ap", "add", "ap1", "--capacity", "10"]).unwrap();
        st.run(&["ap", "add", "ap2", "--capacity", "10"]).unwrap();
        st.run(&["enable"]).unwrap();
        let mut out = Vec::new();
        super::feed(&file, input.as_bytes(), true, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{out}");
        assert_eq!(lines[0]["time"], 106.0);
        let moves = lines[0]["moves"].as_array().unwrap();
        assert!(!moves.is_empty() && moves.iter().all(|m| m["from"] == "ap1" && m["to"] == "ap2"));
        let status = st.run(&["status"]).unwrap();
        assert!(status.starts_with("balancer enabled\n"), "{status}");
        let s = file.read().unwrap();
        let moved = s
            .clients
            .values()
            .filter(|c| c.ap.as_deref() == Some("ap2"))
            .count();
        assert_eq!(moved, moves.len());
        let m = st.run(&["metrics"]).unwrap();
        assert!(
            m.contains(&format!(
                "vdmm_alb_moves_total{{reason=\"balance\"}} {}\n",
                moves.len()
            )),
            "{m}"
        );
        assert!(m.contains("vdmm_alb_enabled 1.0\n"), "{m}");

        let p = st.run(&["params", "--set", "high_util=0.7"]).unwrap();
        assert!(
            p.lines().any(|l| l.starts_with("high_util")
                && l.contains("0.7")
                && l.contains("(default 0.8)")),
            "{p}"
        );
        let e = st
            .run(&["params", "--set", "high_util=0.7", "--set", "bogus=1"])
            .unwrap_err();
        assert!(e.to_string().starts_with("unknown parameter `bogus`"));
        st.run(&["disable"]).unwrap();
        let s = file.read().unwrap();
        assert!(!s.enabled && s.params.high_util == 0.7);
        st.run(&["ap", "del", "ap2"]).unwrap();
        assert_eq!(
            st.run(&["ap", "del", "ap2"]).unwrap_err().to_string(),
            "no AP ap2"
        );
        st.run(&[
            "report",
            "--ap",
            "ap1",
            "--client",
            "c9",
            "--rssi",
            "-60",
            "--associated",
        ])
        .unwrap();
        let e = st
            .run(&["report", "--ap", "ap1", "--client", "c9", "--rssi", "-130"])
            .unwrap_err();
        assert!(e.to_string().contains("out of range"));
    }

    #[test]
    fn apply_refusals_change_nothing() {
        let st = TempState::new("apply");
        st.run(&["ap", "add", "ap1", "--capacity", "10"]).unwrap();
        let before = std::fs::read_to_string(st.path()).unwrap();
        let e = st
            .run(&["rebalance", "--apply", "--cluster", "/nonexistent.toml"])
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read cluster file /nonexistent.toml"),
            "{e}"
        );
        let cluster = st.0.join("cluster.toml");
        std::fs::write(
            &cluster,
            "[[ap_host]]\nname = \"ap1\"\nlocator = \"192.0.2.11\"\npin_dir = \"/nonexistent\"\n",
        )
        .unwrap();
        let c = cluster.display().to_string();
        let e = st
            .run(&["rebalance", "--apply", "--cluster", &c])
            .unwrap_err();
        assert!(e.to_string().starts_with("the balancer is disabled"), "{e}");
        st.run(&["enable"]).unwrap();
        // An AP host whose data plane is not there: the round stops before deciding.
        let e = st
            .run(&["rebalance", "--apply", "--cluster", &c])
            .unwrap_err();
        assert!(e.to_string().starts_with("AP host ap1: "), "{e}");
        let e = st.run(&["collect", "--cluster", &c]).unwrap_err();
        assert!(e.to_string().starts_with("AP host ap1: "), "{e}");
        let after: State =
            serde_json::from_str(&std::fs::read_to_string(st.path()).unwrap()).unwrap();
        let mut expected: State = serde_json::from_str(&before).unwrap();
        expected.enabled = true;
        assert_eq!(after, expected);
        // --cluster without --apply, --apply with --commit: usage errors.
        for args in [
            &["vdmm-ctl", "alb", "rebalance", "--cluster", "x"][..],
            &[
                "vdmm-ctl",
                "alb",
                "rebalance",
                "--apply",
                "--commit",
                "--cluster",
                "x",
            ][..],
            &["vdmm-ctl", "alb", "rebalance", "--apply"][..],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn simulate_errors_are_one_line() {
        let e = run(&["simulate", "--scenario", "/nonexistent.toml"]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read scenario /nonexistent.toml: "),
            "{e}"
        );
        let hotspot = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/alb/hotspot.toml");
        let e = run(&["simulate", "--scenario", hotspot, "--param", "rssi_alpha=3"]).unwrap_err();
        assert_eq!(e.to_string(), "parameter rssi_alpha must be in (0, 1]");
    }

    #[test]
    fn simulate_prints_a_table_or_json() {
        let hotspot = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/alb/hotspot.toml");
        let out = run(&["simulate", "--scenario", hotspot, "--seed", "3"]).unwrap();
        assert!(
            out.starts_with("scenario hotspot (seed 3): 60 clients, 6 APs\n"),
            "{out}"
        );
        for p in ["alb ", "strongest ", "least-loaded ", "empower "] {
            assert!(out.lines().any(|l| l.starts_with(p)), "no row {p}: {out}");
        }
        let out = run(&["simulate", "--scenario", hotspot, "--json"]).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["figures"].as_array().unwrap().len(), 4);
        assert_eq!(v["seed"], 7);
    }
}
