//! `vdmm-ctl config show|set`: tunnel-wide settings (entry 0 of `VDMM_CONFIG`).

use vdmm_common::TunnelConfig;

use crate::{
    addr::{Family, parse_addr},
    cli::{ConfigCommand, ConfigSetArgs, FamilyArg},
    error::{Error, Result},
    maps::{ConfigChange, Dataplane, effective_hop_limit, icmp_source},
    pin::PinDir,
};

pub fn run(pins: &PinDir, cmd: ConfigCommand) -> Result<String> {
    match cmd {
        ConfigCommand::Show { json } => Ok(format(&Dataplane::open(pins)?.config()?, json)),
        ConfigCommand::Set(args) => {
            let change = parse_change(&args)?;
            Dataplane::open(pins)?.set_config(&change)?;
            Ok(String::new())
        }
    }
}

pub(crate) fn parse_change(args: &ConfigSetArgs) -> Result<ConfigChange> {
    let outer_hop_limit = args
        .outer_hop_limit
        .as_deref()
        .map(|t| {
            t.trim().parse::<u32>().map_err(|_| {
                Error::Conflict(format!(
                    "invalid outer hop limit `{t}`: expected a number 0-255"
                ))
            })
        })
        .transpose()?;
    let mut icmp_sources = args
        .icmp_source
        .iter()
        .map(|t| parse_addr(t))
        .collect::<Result<Vec<_>>>()?;
    for (text, family, option) in [
        (&args.icmp_source_v4, Family::V4, "--icmp-source-v4"),
        (&args.icmp_source_v6, Family::V6, "--icmp-source-v6"),
    ] {
        if let Some(t) = text {
            let addr = parse_addr(t)?;
            if Family::of(&addr) != family {
                return Err(Error::Conflict(format!(
                    "{option} takes an {} address, not {addr}",
                    family.name()
                )));
            }
            icmp_sources.push(addr);
        }
    }
    let clear_icmp_sources = args
        .clear_icmp_source
        .iter()
        .map(|f| match f {
            FamilyArg::Ipv4 => Family::V4,
            FamilyArg::Ipv6 => Family::V6,
        })
        .collect();
    Ok(ConfigChange {
        outer_hop_limit,
        icmp_sources,
        clear_icmp_sources,
    })
}

/// Text (`name: value` lines) or a JSON object
/// `{outer_hop_limit, icmp_source_v4, icmp_source_v6}` (null when unset).
pub fn format(cfg: &TunnelConfig, json: bool) -> String {
    let v4 = icmp_source(cfg, Family::V4);
    let v6 = icmp_source(cfg, Family::V6);
    if json {
        let s = |a: Option<std::net::IpAddr>| a.map(|a| a.to_string());
        return format!(
            "{}\n",
            serde_json::json!({
                "outer_hop_limit": effective_hop_limit(cfg),
                "icmp_source_v4": s(v4),
                "icmp_source_v6": s(v6),
            })
        );
    }
    let unset = "unset (ICMP errors of this family are dropped)";
    let default = if cfg.outer_hop_limit == 0 {
        " (default)"
    } else {
        ""
    };
    format!(
        "outer hop limit: {}{default}\nICMP source IPv4: {}\nICMP source IPv6: {}\n",
        effective_hop_limit(cfg),
        v4.map_or(unset.to_string(), |a| a.to_string()),
        v6.map_or(unset.to_string(), |a| a.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_defaults_and_values() {
        let cfg = TunnelConfig::default();
        assert!(format(&cfg, false).starts_with("outer hop limit: 64 (default)\n"));
        assert_eq!(
            format(&cfg, true),
            "{\"icmp_source_v4\":null,\"icmp_source_v6\":null,\"outer_hop_limit\":64}\n"
        );
        let cfg = TunnelConfig {
            outer_hop_limit: 10,
            icmp_source_v4: [192, 0, 2, 1],
            ..Default::default()
        };
        assert!(format(&cfg, false).contains("outer hop limit: 10\nICMP source IPv4: 192.0.2.1\n"));
    }

    #[test]
    fn bad_hop_limit_text_is_refused() {
        let args = ConfigSetArgs {
            outer_hop_limit: Some("x".into()),
            icmp_source: vec![],
            icmp_source_v4: None,
            icmp_source_v6: None,
            clear_icmp_source: vec![],
        };
        assert!(parse_change(&args).is_err());
        let args = ConfigSetArgs {
            outer_hop_limit: None,
            icmp_source: vec![],
            icmp_source_v4: Some("2001:db8::1".into()),
            icmp_source_v6: None,
            clear_icmp_source: vec![],
        };
        assert!(matches!(parse_change(&args), Err(Error::Conflict(_))));
        let args = ConfigSetArgs {
            outer_hop_limit: None,
            icmp_source: vec![],
            icmp_source_v4: Some("192.0.2.1".into()),
            icmp_source_v6: Some("2001:db8::1".into()),
            clear_icmp_source: vec![],
        };
        assert_eq!(parse_change(&args).unwrap().icmp_sources.len(), 2);
    }
}
