//! `vdmm-ctl alb ...`: the simulator and the controller's commands.

use crate::{
    alb::{
        cli::{AlbArgs, AlbCommand},
        sim::{self, report, scenario::Scenario},
    },
    error::{Error, Result},
};

pub fn run(args: AlbArgs) -> Result<String> {
    match args.command {
        AlbCommand::Simulate {
            scenario,
            seed,
            params,
            json,
            plot,
        } => {
            let mut s = Scenario::load(&scenario).map_err(Error::Alb)?;
            if let Some(seed) = seed {
                s.seed = seed;
            }
            for a in &params {
                s.alb = s.alb.with(a).map_err(Error::Alb)?;
            }
            let outcome = sim::simulate(&s);
            if let Some(path) = plot {
                report::plot(&outcome, &path)?;
            }
            Ok(if json {
                report::json(&outcome)
            } else {
                report::table(&outcome)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    fn run(args: &[&str]) -> crate::error::Result<String> {
        let c = Cli::try_parse_from(["vdmm-ctl", "alb"].iter().chain(args)).unwrap();
        match c.command {
            Command::Alb(a) => super::run(a),
            other => panic!("{other:?}"),
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
