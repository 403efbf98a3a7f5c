//! `vdmm-ctl binding add|del|list`: home address or prefix -> locator.

use crate::{
    addr::{Prefix, parse_addr},
    cli::BindingCommand,
    error::Result,
    maps::{BindingEntry, Dataplane},
    pin::PinDir,
    routes::{self, RouteOutcome},
    table::{Align, render},
};

pub fn run(pins: &PinDir, cmd: BindingCommand) -> Result<String> {
    match cmd {
        BindingCommand::Add {
            home,
            locator,
            source,
            replace,
            no_route,
        } => {
            // Parse everything before opening the maps: bad input changes nothing.
            let home: Prefix = home.parse()?;
            let locator = parse_addr(&locator)?;
            let source = source.as_deref().map(parse_addr).transpose()?;
            let mut dp = Dataplane::open(pins)?;
            let outcome = routes::bind(&mut dp, home, locator, source, replace, !no_route)?;
            Ok(describe_route(&outcome.route))
        }
        BindingCommand::Del { home } => {
            let home: Prefix = home.parse()?;
            let removed = routes::unbind(&mut Dataplane::open(pins)?, home)?;
            Ok(if removed {
                format!("removed the kernel route for {home}\n")
            } else {
                String::new()
            })
        }
        BindingCommand::List { json } => Ok(format_list(&Dataplane::open(pins)?.bindings()?, json)),
    }
}

/// What `binding add` says about the route.
pub fn describe_route(route: &RouteOutcome) -> String {
    match route {
        RouteOutcome::Installed(r) => format!("route {r}\n"),
        RouteOutcome::Skipped => String::new(),
        RouteOutcome::Unsupported(why) => format!("note: {why}\n"),
    }
}

/// A table HOME LOCATOR SOURCE KIND, or a JSON array of
/// `{home, locator, source, outer, kind}`.
pub fn format_list(bindings: &[BindingEntry], json: bool) -> String {
    if json {
        let v: Vec<serde_json::Value> = bindings
            .iter()
            .map(|b| {
                serde_json::json!({
                    "home": b.home.to_string(),
                    "locator": b.locator.to_string(),
                    "source": b.source.to_string(),
                    "outer": b.outer().key(),
                    "kind": b.kind().name(),
                })
            })
            .collect();
        return format!("{}\n", serde_json::Value::from(v));
    }
    let rows: Vec<Vec<String>> = bindings
        .iter()
        .map(|b| {
            vec![
                b.home.to_string(),
                b.locator.to_string(),
                b.source.to_string(),
                b.kind().name().to_string(),
            ]
        })
        .collect();
    render(
        &[
            ("HOME", Align::Left),
            ("LOCATOR", Align::Left),
            ("SOURCE", Align::Left),
            ("KIND", Align::Left),
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(home: &str, loc: &str, src: &str) -> BindingEntry {
        BindingEntry {
            home: home.parse().unwrap(),
            locator: loc.parse().unwrap(),
            source: src.parse().unwrap(),
        }
    }

    #[test]
    fn table_and_json() {
        let bs = [
            b("10.1.0.0/16", "192.0.2.2", "192.0.2.1"),
            b("2001:db8:1::/48", "192.0.2.2", "192.0.2.1"),
        ];
        assert_eq!(
            format_list(&bs, false),
            "HOME             LOCATOR    SOURCE     KIND\n\
             10.1.0.0/16      192.0.2.2  192.0.2.1  4in4\n\
             2001:db8:1::/48  192.0.2.2  192.0.2.1  6in4\n"
        );
        assert_eq!(
            format_list(&bs[..1], true),
            "[{\"home\":\"10.1.0.0/16\",\"kind\":\"4in4\",\"locator\":\"192.0.2.2\",\"outer\":\"ipv4\",\"source\":\"192.0.2.1\"}]\n"
        );
        assert_eq!(format_list(&[], false), "HOME  LOCATOR  SOURCE  KIND\n");
    }
}
