//! `vdmm-ctl binding add|del|list`: home address or prefix -> locator.

use crate::{
    addr::{Prefix, parse_addr},
    cli::BindingCommand,
    error::Result,
    maps::{BindingEntry, Dataplane},
    pin::PinDir,
    routes::{self, InstalledRoute, Netlink, RouteOutcome},
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
        BindingCommand::List { json } => {
            let bindings = Dataplane::open(pins)?.bindings()?;
            let routes = if bindings.is_empty() {
                Vec::new()
            } else {
                Netlink::open()?.vdmm_routes()?
            };
            Ok(format_list(&bindings, &routes, json))
        }
    }
}

/// What `binding add` says about the route.
pub fn describe_route(route: &RouteOutcome) -> String {
    match route {
        RouteOutcome::Installed(r) => format!(
            "route {r} (the locator is reached through {}, mtu {})\n",
            r.egress, r.egress_mtu
        ),
        RouteOutcome::Skipped => String::new(),
    }
}

/// The ROUTE column: `vdmm0 mtu 1480` (or `via ADDR dev DEV mtu M` for a route an older
/// vdmm-ctl made through a next hop).
fn route_text(r: &InstalledRoute) -> String {
    let dev = r
        .dev
        .clone()
        .or_else(|| r.oif.map(|i| format!("if{i}")))
        .unwrap_or_else(|| "?".into());
    let mut s = match r.via {
        Some(v) => format!("via {v} dev {dev}"),
        None => dev,
    };
    if let Some(m) = r.mtu {
        s.push_str(&format!(" mtu {m}"));
    }
    s
}

/// A table HOME LOCATOR SOURCE KIND ROUTE, or a JSON array of
/// `{home, locator, source, outer, kind, route}` (`route`: `{dev, via, mtu}` of vdmm's
/// kernel route for the home prefix, `via` being null for vdmm's device routes; or null
/// when there is no route).
pub fn format_list(bindings: &[BindingEntry], routes: &[InstalledRoute], json: bool) -> String {
    let route_of = |b: &BindingEntry| routes.iter().find(|r| r.home == b.home);
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
                    "route": route_of(b).map(|r| serde_json::json!({
                        "dev": r.dev,
                        "via": r.via.map(|v| v.to_string()),
                        "mtu": r.mtu,
                    })),
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
                route_of(b).map_or_else(|| "none".to_string(), route_text),
            ]
        })
        .collect();
    render(
        &[
            ("HOME", Align::Left),
            ("LOCATOR", Align::Left),
            ("SOURCE", Align::Left),
            ("KIND", Align::Left),
            ("ROUTE", Align::Left),
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
        let routes = [
            InstalledRoute {
                home: "10.1.0.0/16".parse().unwrap(),
                via: None,
                oif: Some(3),
                dev: Some("vdmm0".into()),
                mtu: Some(1480),
            },
            InstalledRoute {
                home: "10.2.0.0/16".parse().unwrap(),
                via: Some("192.0.2.2".parse().unwrap()),
                oif: Some(2),
                dev: None,
                mtu: Some(1480),
            },
        ];
        let bs = [bs[0], b("10.2.0.0/16", "192.0.2.2", "192.0.2.1"), bs[1]];
        assert_eq!(
            format_list(&bs, &routes, false),
            "HOME             LOCATOR    SOURCE     KIND  ROUTE\n\
             10.1.0.0/16      192.0.2.2  192.0.2.1  4in4  vdmm0 mtu 1480\n\
             10.2.0.0/16      192.0.2.2  192.0.2.1  4in4  via 192.0.2.2 dev if2 mtu 1480\n\
             2001:db8:1::/48  192.0.2.2  192.0.2.1  6in4  none\n"
        );
        assert_eq!(
            format_list(&[bs[0], bs[2]], &routes, true),
            "[{\"home\":\"10.1.0.0/16\",\"kind\":\"4in4\",\"locator\":\"192.0.2.2\",\"outer\":\"ipv4\",\"route\":{\"dev\":\"vdmm0\",\"mtu\":1480,\"via\":null},\"source\":\"192.0.2.1\"},\
             {\"home\":\"2001:db8:1::/48\",\"kind\":\"6in4\",\"locator\":\"192.0.2.2\",\"outer\":\"ipv4\",\"route\":null,\"source\":\"192.0.2.1\"}]\n"
        );
        assert_eq!(
            format_list(&[], &[], false),
            "HOME  LOCATOR  SOURCE  KIND  ROUTE\n"
        );
    }
}
