//! A container's ports as Docker sees them: what it asks to publish (`PortBindings`, and with
//! `PublishAllPorts` every `ExposedPorts` entry on a random host port), and how the granted
//! mappings appear in inspect (`NetworkSettings.Ports`) and `ps` (`Ports`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use wharf_api::models::{PortBinding, PortMap, PortSummary, PortSummaryTypeEnum};
use wharf_network::ports::{ApiPortBinding, specs_from_api};
use wharf_network::{PortMapping, PortSpec, Proto};
use wharf_types::EngineError;

use crate::container::model::ContainerRecord;

/// `80/tcp` → (80, tcp); a key without protocol is TCP.
pub fn parse_port_key(key: &str) -> Option<(u16, Proto)> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    Some((port.parse().ok()?, proto.parse().ok()?))
}

fn key(port: u16, proto: Proto) -> String {
    format!("{port}/{proto}")
}

/// The ports a container publishes at start. Errors use Docker's port-spec messages.
pub fn requested(r: &ContainerRecord) -> Result<Vec<PortSpec>, EngineError> {
    let bindings: BTreeMap<String, Vec<ApiPortBinding>> = r
        .host_config
        .port_bindings
        .iter()
        .flatten()
        .map(|(k, v)| {
            let list = v
                .iter()
                .flatten()
                .map(|b| ApiPortBinding {
                    host_ip: b.host_ip.clone().unwrap_or_default(),
                    host_port: b.host_port.clone().unwrap_or_default(),
                })
                .collect::<Vec<_>>();
            // `{"80/tcp": null}` or `[]` publishes on a random port, as Docker treats it.
            let list = if list.is_empty() { vec![ApiPortBinding::default()] } else { list };
            (k.clone(), list)
        })
        .collect();
    let mut specs = specs_from_api(&bindings).map_err(|e| EngineError::from_classified(&e))?;
    if r.host_config.publish_all_ports == Some(true) {
        let bound: BTreeSet<(u16, Proto)> = bindings.keys().filter_map(|k| parse_port_key(k)).collect();
        for e in r.config.exposed_ports.iter().flatten() {
            if let Some((port, proto)) = parse_port_key(e)
                && !bound.contains(&(port, proto))
            {
                specs.push(PortSpec { host_ip: None, host_ports: (0, 0), container_port: port, proto });
            }
        }
    }
    Ok(specs)
}

/// Validates `PortBindings` at create time (Docker refuses bad specs before creating anything).
pub fn validate(r_bindings: Option<&PortMap>) -> Result<(), EngineError> {
    for (k, v) in r_bindings.into_iter().flatten() {
        let (port, proto) = k.split_once('/').unwrap_or((k.as_str(), "tcp"));
        if port.parse::<u16>().map(|p| p == 0).unwrap_or(true) {
            return Err(EngineError::invalid(format!("invalid port specification: \"{k}\"")));
        }
        if proto.parse::<Proto>().is_err() {
            return Err(EngineError::invalid(format!("invalid proto: {proto}")));
        }
        for b in v.iter().flatten() {
            let hp = b.host_port.clone().unwrap_or_default();
            if !hp.is_empty() {
                let ok = match hp.split_once('-') {
                    Some((a, z)) => matches!((a.parse::<u16>(), z.parse::<u16>()), (Ok(a), Ok(z)) if a <= z),
                    None => hp.parse::<u16>().is_ok(),
                };
                if !ok {
                    return Err(EngineError::invalid(format!("invalid port specification: \"{hp}\"")));
                }
            }
            let ip = b.host_ip.clone().unwrap_or_default();
            if !ip.is_empty() && ip.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_err() {
                return Err(EngineError::invalid(format!("invalid IP address: {ip}")));
            }
        }
    }
    Ok(())
}

/// Container ports the container exposes or publishes (the keys of `NetworkSettings.Ports`).
fn all_ports(r: &ContainerRecord) -> BTreeSet<(u16, Proto)> {
    let mut out: BTreeSet<(u16, Proto)> =
        r.config.exposed_ports.iter().flatten().filter_map(|e| parse_port_key(e)).collect();
    out.extend(r.host_config.port_bindings.iter().flatten().filter_map(|(k, _)| parse_port_key(k)));
    out
}

/// `NetworkSettings.Ports`: every exposed or published port; bound ones list their host
/// address and port, the others are `null`.
pub fn port_map(r: &ContainerRecord, granted: &[PortMapping]) -> PortMap {
    let mut map: HashMap<String, Option<Vec<PortBinding>>> =
        all_ports(r).into_iter().map(|(p, proto)| (key(p, proto), None)).collect();
    for m in granted {
        let list = map.entry(key(m.container_port, m.proto)).or_insert(None).get_or_insert_with(Vec::new);
        list.push(PortBinding { host_ip: Some(m.host_ip.to_string()), host_port: Some(m.host_port.to_string()) });
    }
    map
}

/// `ps`'s `Ports`: one entry per granted mapping, plus exposed ports that are not published.
pub fn summary(r: &ContainerRecord, granted: &[PortMapping], running: bool) -> Vec<PortSummary> {
    let typ = |p: Proto| match p {
        Proto::Tcp => PortSummaryTypeEnum::TCP,
        Proto::Udp => PortSummaryTypeEnum::UDP,
        Proto::Sctp => PortSummaryTypeEnum::SCTP,
    };
    let mut out: Vec<PortSummary> = granted
        .iter()
        .map(|m| PortSummary {
            ip: Some(m.host_ip.to_string()),
            private_port: m.container_port,
            public_port: Some(m.host_port),
            typ: Some(typ(m.proto)),
        })
        .collect();
    if running {
        let published: BTreeSet<(u16, Proto)> = granted.iter().map(|m| (m.container_port, m.proto)).collect();
        for (p, proto) in r.config.exposed_ports.iter().flatten().filter_map(|e| parse_port_key(e)) {
            if !published.contains(&(p, proto)) {
                out.push(PortSummary { ip: None, private_port: p, public_port: None, typ: Some(typ(proto)) });
            }
        }
    }
    out
}

/// Docker's port filter values: `80`, `80/udp`, `8000-8080/tcp`.
fn filter_matches(value: &str, port: u16, proto: Proto) -> bool {
    let (ports, p) = value.split_once('/').unwrap_or((value, "tcp"));
    if p.parse::<Proto>().ok() != Some(proto) {
        return false;
    }
    match ports.split_once('-') {
        Some((a, z)) => matches!((a.parse::<u16>(), z.parse::<u16>()), (Ok(a), Ok(z)) if (a..=z).contains(&port)),
        None => ports.parse::<u16>().ok() == Some(port),
    }
}

/// `ps --filter publish=…`: a container port the container publishes.
pub fn publishes(r: &ContainerRecord, value: &str) -> bool {
    let mut published: BTreeSet<(u16, Proto)> =
        r.host_config.port_bindings.iter().flatten().filter_map(|(k, _)| parse_port_key(k)).collect();
    if r.host_config.publish_all_ports == Some(true) {
        published.extend(r.config.exposed_ports.iter().flatten().filter_map(|e| parse_port_key(e)));
    }
    published.iter().any(|(p, proto)| filter_matches(value, *p, *proto))
}

/// `ps --filter expose=…`: a container port the container exposes or publishes.
pub fn exposes(r: &ContainerRecord, value: &str) -> bool {
    all_ports(r).iter().any(|(p, proto)| filter_matches(value, *p, *proto))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(host_config: serde_json::Value, config: serde_json::Value) -> ContainerRecord {
        serde_json::from_value(serde_json::json!({
            "id": "a".repeat(64), "name": "web", "created": "2026-01-01T00:00:00Z", "image": "busybox",
            "image_id": "sha256:x", "config": config, "host_config": host_config, "path": "sh",
            "args": [], "state": {"status": "running", "pid": 1, "exit_code": 0, "error": "",
            "started_at": "2026-01-01T00:00:01Z", "finished_at": "0001-01-01T00:00:00Z", "oom_killed": false},
            "restart_count": 0, "manually_stopped": false, "has_been_started": true, "runtime": "wharf",
            "log_path": "", "rw_layer": "k"
        }))
        .unwrap()
    }

    #[test]
    fn publish_all_adds_random_ports_for_exposed_ones() {
        let r = rec(
            serde_json::json!({"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
                               "PublishAllPorts": true}),
            serde_json::json!({"ExposedPorts": {"80/tcp": {}, "53/udp": {}}}),
        );
        let specs = requested(&r).unwrap();
        assert_eq!(specs.len(), 2, "{specs:?}");
        assert!(specs.iter().any(|s| s.container_port == 80 && s.host_ports == (8080, 8080)));
        assert!(specs.iter().any(|s| s.container_port == 53 && s.proto == Proto::Udp && s.host_ports == (0, 0)));
        assert!(publishes(&r, "53/udp") && publishes(&r, "80") && !publishes(&r, "81"));
        assert!(exposes(&r, "50-60/udp") && !exposes(&r, "53"));
    }

    #[test]
    fn inspect_and_ps_shapes() {
        let r = rec(
            serde_json::json!({"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": ""}]}}),
            serde_json::json!({"ExposedPorts": {"80/tcp": {}, "443/tcp": {}}}),
        );
        let m = PortMapping {
            proto: Proto::Tcp,
            host_ip: "0.0.0.0".parse().unwrap(),
            host_port: 32768,
            container_ip: "10.0.0.2".parse().unwrap(),
            container_port: 80,
        };
        let map = port_map(&r, std::slice::from_ref(&m));
        assert_eq!(map["443/tcp"], None);
        assert_eq!(map["80/tcp"].as_ref().unwrap()[0].host_port.as_deref(), Some("32768"));
        let ps = summary(&r, &[m], true);
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[1].private_port, 443);
        assert!(validate(Some(&serde_json::from_value(serde_json::json!({"x/tcp": null})).unwrap())).is_err());
        assert!(
            validate(Some(&serde_json::from_value(serde_json::json!({"80/tcp": [{"HostPort": "99999"}]})).unwrap()))
                .is_err()
        );
    }
}
