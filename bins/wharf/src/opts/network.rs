//! `--network` (short `name` and long `name=n,alias=a,ip=…,driver-opt=k=v,gw-priority=…`) and
//! its combination with `--network-alias`, `--link`, `--ip`, `--ip6`, `--mac-address`,
//! `--link-local-ip` into `NetworkingConfig.EndpointsConfig` (docker/cli `parseNetworkOpts`).

use std::collections::HashMap;

use bollard::models::{EndpointIpamConfig, EndpointSettings};

use super::mounts::csv_fields;
use super::{OptError, OptResult};

/// One `--network` value (`opts.NetworkAttachmentOpts`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub target: String,
    pub aliases: Vec<String>,
    pub driver_opts: HashMap<String, String>,
    pub links: Vec<String>,
    pub ipv4: String,
    pub ipv6: String,
    pub link_local_ips: Vec<String>,
    pub mac: String,
    pub gw_priority: i64,
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Go's unanchored `\w+=\w+` match: some `=` with word characters on both sides.
fn looks_long(value: &str) -> bool {
    let b: Vec<char> = value.chars().collect();
    (1..b.len().saturating_sub(1)).any(|i| b[i] == '=' && is_word(b[i - 1]) && is_word(b[i + 1]))
}

/// `NetworkOpt.Set`.
pub fn parse_network(value: &str) -> Result<Attachment, String> {
    let mut n = Attachment::default();
    if !looks_long(value) {
        n.target = value.to_owned();
        return Ok(n);
    }
    for field in csv_fields(value)? {
        let lower = field.to_lowercase();
        let Some((key, val)) = lower.split_once('=') else {
            return Err(format!("invalid field {field}"));
        };
        if key.is_empty() {
            return Err(format!("invalid field {field}"));
        }
        let (key, val) = (key.trim(), val.trim().to_owned());
        match key {
            "name" => n.target = val,
            "alias" => n.aliases.push(val),
            "ip" => n.ipv4 = val,
            "ip6" => n.ipv6 = val,
            "mac-address" => n.mac = val,
            "link-local-ip" => n.link_local_ips.push(val),
            "driver-opt" => match val.split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    n.driver_opts.insert(k.trim().to_owned(), v.trim().to_owned());
                }
                _ => return Err("invalid key value pair format in driver options".into()),
            },
            "gw-priority" => {
                n.gw_priority =
                    val.parse::<i64>().map_err(|_| format!("invalid gw-priority ({val}): invalid syntax"))?;
            }
            other => return Err(format!("invalid field key {other}")),
        }
    }
    if n.target.is_empty() {
        return Err("network name/id is not specified".into());
    }
    Ok(n)
}

/// `container.NetworkMode.IsUserDefined` on Linux.
pub fn is_user_defined(mode: &str) -> bool {
    !matches!(mode, "default" | "bridge" | "host" | "none") && !mode.starts_with("container:")
}

/// The container-wide flags that apply to the first network.
#[derive(Debug, Default, Clone)]
pub struct Common<'a> {
    pub aliases: &'a [String],
    pub links: &'a [String],
    pub ipv4: &'a str,
    pub ipv6: &'a str,
    pub mac: &'a str,
    pub link_local_ips: &'a [String],
}

fn apply_common(n: &mut Attachment, c: &Common<'_>) -> OptResult<()> {
    let conflict = |what: &str| OptError::Parse(format!("conflicting options: cannot specify both {what}"));
    if !n.aliases.is_empty() && !c.aliases.is_empty() {
        return Err(conflict("--network-alias and per-network alias"));
    }
    if !n.links.is_empty() && !c.links.is_empty() {
        return Err(conflict("--link and per-network links"));
    }
    if !n.ipv4.is_empty() && !c.ipv4.is_empty() {
        return Err(conflict("--ip and per-network IPv4 address"));
    }
    if !n.ipv6.is_empty() && !c.ipv6.is_empty() {
        return Err(conflict("--ip6 and per-network IPv6 address"));
    }
    if !n.mac.is_empty() && !c.mac.is_empty() {
        return Err(conflict("--mac-address and per-network MAC address"));
    }
    if !n.link_local_ips.is_empty() && !c.link_local_ips.is_empty() {
        return Err(conflict("--link-local-ip and per-network link-local IP addresses"));
    }
    if !c.aliases.is_empty() {
        n.aliases = c.aliases.to_vec();
    }
    if is_user_defined(&n.target) && !c.links.is_empty() {
        n.links = c.links.to_vec();
    }
    if !c.ipv4.is_empty() {
        n.ipv4 = c.ipv4.to_owned();
    }
    if !c.ipv6.is_empty() {
        n.ipv6 = c.ipv6.to_owned();
    }
    if !c.mac.is_empty() {
        n.mac = c.mac.to_owned();
    }
    if !c.link_local_ips.is_empty() {
        n.link_local_ips = c.link_local_ips.to_vec();
    }
    Ok(())
}

/// The endpoint settings docker sends (its Go zero values included, so the request body
/// matches the docker CLI's).
pub fn empty_endpoint() -> EndpointSettings {
    EndpointSettings {
        mac_address: Some(String::new()),
        gw_priority: Some(0),
        network_id: Some(String::new()),
        endpoint_id: Some(String::new()),
        gateway: Some(String::new()),
        ip_address: Some(String::new()),
        ip_prefix_len: Some(0),
        ipv6_gateway: Some(String::new()),
        global_ipv6_address: Some(String::new()),
        global_ipv6_prefix_len: Some(0),
        ..Default::default()
    }
}

fn is_empty_endpoint(e: &EndpointSettings) -> bool {
    *e == empty_endpoint()
}

/// `parseNetworkAttachmentOpt`.
fn endpoint(n: &Attachment) -> OptResult<EndpointSettings> {
    if n.target.trim().is_empty() {
        return Err(OptError::Parse("no name set for network".into()));
    }
    if !is_user_defined(&n.target) {
        if !n.aliases.is_empty() {
            return Err(OptError::Parse("network-scoped aliases are only supported for user-defined networks".into()));
        }
        if !n.links.is_empty() {
            return Err(OptError::Parse("links are only supported for user-defined networks".into()));
        }
    }
    let mut ep = empty_endpoint();
    ep.gw_priority = Some(n.gw_priority);
    if !n.aliases.is_empty() {
        ep.aliases = Some(n.aliases.clone());
    }
    if !n.driver_opts.is_empty() {
        ep.driver_opts = Some(n.driver_opts.clone());
    }
    if !n.links.is_empty() {
        ep.links = Some(n.links.clone());
    }
    if !n.ipv4.is_empty() || !n.ipv6.is_empty() || !n.link_local_ips.is_empty() {
        ep.ipam_config = Some(EndpointIpamConfig {
            ipv4_address: (!n.ipv4.is_empty()).then(|| n.ipv4.clone()),
            ipv6_address: (!n.ipv6.is_empty()).then(|| n.ipv6.clone()),
            link_local_ips: (!n.link_local_ips.is_empty()).then(|| n.link_local_ips.clone()),
        });
    }
    if !n.mac.is_empty() {
        if !super::validate_mac(&n.mac) {
            return Err(OptError::Parse(format!("{} is not a valid mac address", n.mac)));
        }
        ep.mac_address = Some(n.mac.clone());
    }
    Ok(ep)
}

/// `parseNetworkOpts`: the endpoints to send, and the `NetworkMode`.
pub fn endpoints(
    networks: &[Attachment],
    common: &Common<'_>,
) -> OptResult<(HashMap<String, EndpointSettings>, String)> {
    let mut out = HashMap::new();
    if networks.is_empty() {
        let mut n = Attachment { target: "default".into(), ..Default::default() };
        apply_common(&mut n, common)?;
        out.insert("default".to_owned(), endpoint(&n)?);
        return Ok((out, "default".into()));
    }
    let (mut user, mut non_user) = (false, false);
    for (i, n) in networks.iter().enumerate() {
        if is_user_defined(&n.target) {
            user = true;
        } else {
            non_user = true;
        }
        let mut n = n.clone();
        if i == 0 {
            apply_common(&mut n, common)?;
        }
        let ep = endpoint(&n)?;
        if out.contains_key(&n.target) {
            return Err(OptError::Parse(format!("network {} is specified multiple times", super::go_quote(&n.target))));
        }
        if i == 0 && networks.len() == 1 && is_empty_endpoint(&ep) {
            continue;
        }
        out.insert(n.target.clone(), ep);
    }
    if user && non_user {
        return Err(OptError::Parse(
            "conflicting options: cannot attach both user-defined and non-user-defined network-modes".into(),
        ));
    }
    Ok((out, networks[0].target.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_values() {
        assert_eq!(parse_network("mynet").unwrap().target, "mynet");
        let n = parse_network("name=web,alias=a1,alias=a2,ip=10.0.0.5,driver-opt=k=v,gw-priority=5").unwrap();
        assert_eq!(n.target, "web");
        assert_eq!(n.aliases, vec!["a1", "a2"]);
        assert_eq!(n.ipv4, "10.0.0.5");
        assert_eq!(n.driver_opts["k"], "v");
        assert_eq!(n.gw_priority, 5);
        assert_eq!(parse_network("alias=x").unwrap_err(), "network name/id is not specified");
        assert_eq!(parse_network("name=a,foo=b").unwrap_err(), "invalid field key foo");
    }

    #[test]
    fn default_network_endpoint() {
        let (eps, mode) = endpoints(&[], &Common::default()).unwrap();
        assert_eq!(mode, "default");
        assert_eq!(eps["default"], empty_endpoint());
    }

    #[test]
    fn single_network_without_options_is_omitted() {
        let n = parse_network("mynet").unwrap();
        let (eps, mode) = endpoints(&[n], &Common::default()).unwrap();
        assert_eq!(mode, "mynet");
        assert!(eps.is_empty());
    }

    #[test]
    fn common_flags_apply_to_the_first_network() {
        let aliases = vec!["web".to_string()];
        let c = Common { aliases: &aliases, ipv4: "172.20.0.5", ..Default::default() };
        let (eps, _) = endpoints(&[parse_network("mynet").unwrap()], &c).unwrap();
        let ep = &eps["mynet"];
        assert_eq!(ep.aliases.as_deref(), Some(&["web".to_string()][..]));
        assert_eq!(ep.ipam_config.as_ref().unwrap().ipv4_address.as_deref(), Some("172.20.0.5"));
        // aliases on the default bridge are refused
        assert_eq!(
            endpoints(&[], &c).unwrap_err(),
            OptError::Parse("network-scoped aliases are only supported for user-defined networks".into())
        );
    }

    #[test]
    fn conflicts() {
        let nets = [parse_network("a").unwrap(), parse_network("host").unwrap()];
        assert!(
            endpoints(&nets, &Common::default()).unwrap_err().to_string().contains("user-defined and non-user-defined")
        );
        let nets = [parse_network("a").unwrap(), parse_network("a").unwrap()];
        assert_eq!(
            endpoints(&nets, &Common::default()).unwrap_err(),
            OptError::Parse("network \"a\" is specified multiple times".into())
        );
        let nets = [parse_network("name=a,ip=1.2.3.4").unwrap()];
        let c = Common { ipv4: "1.2.3.5", ..Default::default() };
        assert_eq!(
            endpoints(&nets, &c).unwrap_err(),
            OptError::Parse("conflicting options: cannot specify both --ip and per-network IPv4 address".into())
        );
    }
}
