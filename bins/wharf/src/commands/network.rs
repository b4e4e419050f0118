//! `network create|connect|disconnect|inspect|ls|prune|rm`, with docker's flags, tables,
//! messages and exit codes.

use std::collections::HashMap;

use bollard::models::{
    EndpointIpamConfig, EndpointSettings, Ipam, IpamConfig, Network, NetworkConnectRequest, NetworkCreateRequest,
    NetworkDisconnectRequest,
};
use bollard::query_parameters::{ListNetworksOptions, PruneNetworksOptions};
use clap::{Args, Subcommand};
use serde_json::{Value as Json, json};

use super::{Ctx, parse_filters};
use crate::client::{CliError, CliResult};
use crate::format::{self, Format, to_value};

#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Create a network
    Create(CreateArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
    /// Remove one or more networks
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(value_name = "NETWORK")]
    pub name: String,
    /// Enable manual container attachment
    #[arg(long)]
    pub attachable: bool,
    /// Auxiliary IPv4 or IPv6 addresses used by Network driver
    #[arg(long, value_name = "map")]
    pub aux_address: Vec<String>,
    /// The network from which to copy the configuration
    #[arg(long, value_name = "string")]
    pub config_from: Option<String>,
    /// Create a configuration only network
    #[arg(long)]
    pub config_only: bool,
    /// Driver to manage the Network
    #[arg(short, long, value_name = "string", default_value = "bridge")]
    pub driver: String,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long, value_name = "strings", value_delimiter = ',')]
    pub gateway: Vec<String>,
    /// Create swarm routing-mesh network
    #[arg(long)]
    pub ingress: bool,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Allocate container ip from a sub-range
    #[arg(long, value_name = "strings", value_delimiter = ',')]
    pub ip_range: Vec<String>,
    /// IP Address Management Driver
    #[arg(long, value_name = "string", default_value = "default")]
    pub ipam_driver: String,
    /// Set IPAM driver specific options
    #[arg(long, value_name = "map")]
    pub ipam_opt: Vec<String>,
    /// Enable or disable IPv4 address assignment
    #[arg(long, value_name = "bool", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub ipv4: Option<bool>,
    /// Enable or disable IPv6 address assignment
    #[arg(long, value_name = "bool", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub ipv6: Option<bool>,
    /// Set metadata on a network
    #[arg(long, value_name = "list")]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short, long = "opt", value_name = "map")]
    pub opt: Vec<String>,
    /// Control the network's scope
    #[arg(long, value_name = "string")]
    pub scope: Option<String>,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long, value_name = "strings", value_delimiter = ',')]
    pub subnet: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    #[arg(value_name = "NETWORK")]
    pub network: String,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Add network-scoped alias for the container
    #[arg(long, value_name = "strings", value_delimiter = ',')]
    pub alias: Vec<String>,
    /// driver options for the network
    #[arg(long, value_name = "strings", value_delimiter = ',')]
    pub driver_opt: Vec<String>,
    /// Highest gw-priority provides the default gateway. Accepts positive and negative values.
    #[arg(long, value_name = "int", allow_negative_numbers = true)]
    pub gw_priority: Option<i64>,
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long, value_name = "string")]
    pub ip: Option<String>,
    /// IPv6 address (e.g., "2001:db8::33")
    #[arg(long, value_name = "string")]
    pub ip6: Option<String>,
    /// Add link to another container
    #[arg(long, value_name = "list")]
    pub link: Vec<String>,
    /// Add a link-local address for the container
    #[arg(long, value_name = "strings", value_delimiter = ',')]
    pub link_local_ip: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DisconnectArgs {
    #[arg(value_name = "NETWORK")]
    pub network: String,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Force the container to disconnect from a network
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a custom template: 'json' or a Go template
    #[arg(short, long, value_name = "string")]
    pub format: Option<String>,
    /// Verbose output for diagnostics
    #[arg(short, long)]
    pub verbose: bool,
    #[arg(value_name = "NETWORK", required = true)]
    pub networks: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short, long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template: 'table', 'json' or a Go template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Do not truncate the output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only display network IDs
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Do not error if the network does not exist
    #[arg(short, long)]
    pub force: bool,
    #[arg(value_name = "NETWORK", required = true)]
    pub networks: Vec<String>,
}

pub async fn run(ctx: &Ctx, cmd: NetworkCmd) -> Result<(), CliError> {
    match cmd {
        NetworkCmd::Connect(a) => connect(ctx, a).await,
        NetworkCmd::Create(a) => create(ctx, a).await,
        NetworkCmd::Disconnect(a) => disconnect(ctx, a).await,
        NetworkCmd::Inspect(a) => inspect(ctx, a).await,
        NetworkCmd::Ls(a) => ls(ctx, a).await,
        NetworkCmd::Prune(a) => prune(ctx, a).await,
        NetworkCmd::Rm(a) => rm(ctx, a).await,
    }
}

use super::volume::key_values;

/// docker CLI's `convertDriverOpt` for `connect --driver-opt`: `key=value`, spaces trimmed.
fn driver_opts(items: &[String]) -> Result<HashMap<String, String>, CliError> {
    let mut out = HashMap::new();
    for opt in items {
        let (k, v) = match opt.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => (k.trim(), v.trim()),
            _ => return Err(CliError::Other("invalid key/value pair format in driver options".into())),
        };
        out.insert(k.to_owned(), v.to_owned());
    }
    Ok(out)
}

/// Whether `data` (an address or a CIDR) lies in `subnet` (docker CLI's `subnetMatches`).
fn subnet_matches(subnet: &str, data: &str) -> Result<bool, CliError> {
    let net: ipnet::IpNet =
        subnet.parse().map_err(|_| CliError::Other(format!("invalid subnet: invalid CIDR address: {subnet}")))?;
    // Go's `net.ParseIP` gives nil (contained nowhere) for a bad address; `ParseCIDR` an error.
    let ip: Option<std::net::IpAddr> = if data.contains('/') {
        let (addr, bits) = data.split_once('/').unwrap_or((data, ""));
        match (addr.parse::<std::net::IpAddr>(), bits.parse::<u8>()) {
            (Ok(ip), Ok(b)) if b <= if ip.is_ipv4() { 32 } else { 128 } => Some(ip),
            _ => return Err(CliError::Other(format!("invalid CIDR address: {data}"))),
        }
    } else {
        data.parse().ok()
    };
    Ok(ip.is_some_and(|ip| net.contains(&ip)))
}

/// docker CLI's `consolidateIpam`: pairs every `--ip-range`, `--gateway` and `--aux-address`
/// with its `--subnet`, with the CLI's own messages.
fn consolidate_ipam(
    subnets: &[String],
    ranges: &[String],
    gateways: &[String],
    aux: &HashMap<String, String>,
) -> Result<Vec<IpamConfig>, CliError> {
    if subnets.len() < ranges.len() || subnets.len() < gateways.len() {
        return Err(CliError::Other("every ip-range or gateway must have a corresponding subnet".into()));
    }
    let mut data: Vec<IpamConfig> = Vec::new();
    for s in subnets {
        for d in &data {
            let k = d.subnet.as_deref().unwrap_or("");
            if subnet_matches(s, k)? || subnet_matches(k, s)? {
                return Err(CliError::Other("multiple overlapping subnet configuration is not supported".into()));
            }
        }
        data.push(IpamConfig {
            subnet: Some(s.clone()),
            auxiliary_addresses: Some(HashMap::new()),
            ..Default::default()
        });
    }
    for r in ranges {
        let mut matched = false;
        for d in data.iter_mut() {
            let s = d.subnet.clone().unwrap_or_default();
            if !subnet_matches(&s, r)? {
                continue;
            }
            if let Some(prev) = &d.ip_range {
                return Err(CliError::Other(format!(
                    "cannot configure multiple ranges ({r}, {prev}) on the same subnet ({s})"
                )));
            }
            d.ip_range = Some(r.clone());
            matched = true;
        }
        if !matched {
            return Err(CliError::Other(format!("no matching subnet for range {r}")));
        }
    }
    for g in gateways {
        let mut matched = false;
        for d in data.iter_mut() {
            let s = d.subnet.clone().unwrap_or_default();
            if !subnet_matches(&s, g)? {
                continue;
            }
            if let Some(prev) = &d.gateway {
                return Err(CliError::Other(format!(
                    "cannot configure multiple gateways ({g}, {prev}) for the same subnet ({s})"
                )));
            }
            d.gateway = Some(g.clone());
            matched = true;
        }
        if !matched {
            return Err(CliError::Other(format!("no matching subnet for gateway {g}")));
        }
    }
    for (key, addr) in aux {
        let mut matched = false;
        for d in data.iter_mut() {
            let s = d.subnet.clone().unwrap_or_default();
            if subnet_matches(&s, addr)? {
                d.auxiliary_addresses.get_or_insert_with(HashMap::new).insert(key.clone(), addr.clone());
                matched = true;
            }
        }
        if !matched {
            return Err(CliError::Other(format!("no matching subnet for aux-address {addr}")));
        }
    }
    Ok(data)
}

pub async fn create(ctx: &Ctx, a: CreateArgs) -> Result<(), CliError> {
    let config = consolidate_ipam(&a.subnet, &a.ip_range, &a.gateway, &key_values(&a.aux_address))?;
    let req = NetworkCreateRequest {
        name: a.name,
        driver: Some(a.driver),
        scope: Some(a.scope.unwrap_or_default()),
        internal: Some(a.internal),
        attachable: Some(a.attachable),
        ingress: Some(a.ingress),
        config_only: Some(a.config_only),
        config_from: a.config_from.map(|n| bollard::models::ConfigReference { network: Some(n) }),
        ipam: Some(Ipam { driver: Some(a.ipam_driver), config: Some(config), options: Some(key_values(&a.ipam_opt)) }),
        enable_ipv4: a.ipv4,
        enable_ipv6: a.ipv6,
        options: Some(key_values(&a.opt)),
        labels: Some(key_values(&a.label)),
    };
    let resp = ctx.docker.create_network(req).await.cli(&ctx.host)?;
    if !resp.warning.is_empty() {
        eprintln!("{}", resp.warning);
    }
    println!("{}", resp.id);
    Ok(())
}

pub async fn connect(ctx: &Ctx, a: ConnectArgs) -> Result<(), CliError> {
    let ipam = EndpointIpamConfig {
        ipv4_address: a.ip,
        ipv6_address: a.ip6,
        link_local_ips: (!a.link_local_ip.is_empty()).then_some(a.link_local_ip),
    };
    let settings = EndpointSettings {
        ipam_config: Some(ipam),
        links: (!a.link.is_empty()).then_some(a.link),
        aliases: (!a.alias.is_empty()).then_some(a.alias),
        driver_opts: Some(driver_opts(&a.driver_opt)?),
        gw_priority: a.gw_priority,
        ..Default::default()
    };
    let req = NetworkConnectRequest { container: a.container, endpoint_config: Some(settings) };
    ctx.docker.connect_network(&a.network, req).await.cli(&ctx.host)
}

pub async fn disconnect(ctx: &Ctx, a: DisconnectArgs) -> Result<(), CliError> {
    let req = NetworkDisconnectRequest { container: a.container, force: Some(a.force) };
    ctx.docker.disconnect_network(&a.network, req).await.cli(&ctx.host)
}

pub async fn inspect(ctx: &Ctx, a: InspectArgs) -> Result<(), CliError> {
    super::inspect::network_inspect(ctx, a.format.as_deref(), &a.networks, a.verbose).await
}

/// Go's `time.Time.String()` of an RFC 3339 timestamp (`2026-01-02 03:04:05.123 +0000 UTC`).
fn go_time(rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => {
            let t = t.with_timezone(&chrono::Utc);
            let frac = t.format("%f").to_string();
            let frac = frac.trim_end_matches('0');
            let frac = if frac.is_empty() { String::new() } else { format!(".{frac}") };
            format!("{}{frac} +0000 UTC", t.format("%Y-%m-%d %H:%M:%S"))
        }
        Err(_) => rfc3339.to_owned(),
    }
}

/// The fields docker's network formatter offers (`{{json .}}` prints them all).
fn row(n: &Network, trunc: bool) -> Json {
    let id = n.id.clone().unwrap_or_default();
    let mut labels: Vec<String> = n.labels.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    json!({
        "CreatedAt": go_time(n.created.as_deref().unwrap_or("")),
        "Driver": n.driver.clone().unwrap_or_default(),
        "ID": if trunc { id.chars().take(12).collect() } else { id },
        "IPv4": n.enable_ipv4.unwrap_or(false).to_string(),
        "IPv6": n.enable_ipv6.unwrap_or(false).to_string(),
        "Internal": n.internal.unwrap_or(false).to_string(),
        "Labels": labels.join(","),
        "Name": n.name.clone().unwrap_or_default(),
        "Scope": n.scope.clone().unwrap_or_default(),
    })
}

const LS_HEADERS: &[(&str, &str)] = &[
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("IPv4", "IPV4"),
    ("IPv6", "IPV6"),
    ("Internal", "INTERNAL"),
    ("Labels", "LABELS"),
    ("CreatedAt", "CREATED AT"),
];

/// `--filter` values, refused at flag parsing as docker does (with the command's usage).
fn filters(flags: &[String], flag: &str, command: &str, usage: &str) -> Result<HashMap<String, Vec<String>>, CliError> {
    use crate::opts::PROG;
    parse_filters(flags).map_err(|e| match e {
        CliError::Usage(m) => CliError::Usage(format!(
            "{}\n\nUsage:  {PROG} {usage}\n\nRun '{PROG} {command} --help' for more information",
            m.replace("\"-f, --filter\"", &format!("\"{flag}\""))
        )),
        other => other,
    })
}

pub async fn ls(ctx: &Ctx, a: LsArgs) -> Result<(), CliError> {
    let filters = filters(&a.filter, "-f, --filter", "network ls", "network ls [OPTIONS]")?;
    let opts = ListNetworksOptions { filters: (!filters.is_empty()).then_some(filters) };
    let mut nets = ctx.docker.list_networks(Some(opts)).await.cli(&ctx.host)?;
    nets.sort_by(|x, y| super::volume::natural_cmp(x.name.as_deref().unwrap_or(""), y.name.as_deref().unwrap_or("")));
    print!("{}", render(&nets, a.format.as_deref().unwrap_or(""), a.quiet, !a.no_trunc)?);
    Ok(())
}

/// docker's `NewFormat` and `FormatWrite`: `-q` only replaces the table and `raw` layouts;
/// `.Label "key"` reads one label.
fn render(nets: &[Network], format: &str, quiet: bool, trunc: bool) -> Result<String, CliError> {
    let rows: Vec<Json> = nets.iter().map(|n| row(n, trunc)).collect();
    let text = match format.trim() {
        "" | "table" if quiet => "{{.ID}}".to_owned(),
        "" | "table" => DEFAULT_TABLE.to_owned(),
        "raw" if quiet => "network_id: {{.ID}}".to_owned(),
        "raw" => "network_id: {{.ID}}\nname: {{.Name}}\ndriver: {{.Driver}}\nscope: {{.Scope}}\n".to_owned(),
        "json" => {
            return Ok(format::render_rows(
                Format::Json,
                &rows.iter().map(|r| to_value(r, &[])).collect::<Vec<_>>(),
                LS_HEADERS,
            )?);
        }
        other => other.to_owned(),
    };
    let asked = super::ps::label_keys(&text);
    let values: Vec<gtmpl::Value> = rows
        .iter()
        .zip(nets)
        .map(|(r, n)| {
            let mut labels = n.labels.clone().unwrap_or_default();
            for k in &asked {
                labels.entry(k.clone()).or_default();
            }
            let mut v = to_value(r, &[]);
            if let gtmpl::Value::Object(m) = &mut v {
                m.insert("LabelMap".into(), to_value(&json!(labels), &[]));
            }
            v
        })
        .collect();
    let body = super::ps::rewrite_label_calls(&text);
    if let Some(user_body) = text.trim_start().strip_prefix("table")
        && text.contains(".Label ")
    {
        let header = super::ps::label_headers(user_body.trim_start());
        let body = super::ps::rewrite_label_calls(user_body.trim_start());
        return Ok(format::render_table_with(&body, &header, &values, LS_HEADERS)?);
    }
    let f = if body.trim_start().starts_with("table") {
        Format::new(Some(&body), DEFAULT_TABLE)
    } else {
        Format::Raw(&body)
    };
    Ok(format::render_rows(f, &values, LS_HEADERS)?)
}

const DEFAULT_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";

const PRUNE_WARNING: &str = "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?";

pub async fn prune(ctx: &Ctx, a: PruneArgs) -> Result<(), CliError> {
    let filters = filters(&a.filter, "--filter", "network prune", "network prune [OPTIONS]")?;
    if !a.force && !super::container::confirm(PRUNE_WARNING) {
        return Ok(());
    }
    let opts = PruneNetworksOptions { filters: (!filters.is_empty()).then_some(filters) };
    let report = ctx.docker.prune_networks(Some(opts)).await.cli(&ctx.host)?;
    let deleted = report.networks_deleted.unwrap_or_default();
    if !deleted.is_empty() {
        println!("Deleted Networks:");
        for n in &deleted {
            println!("{n}");
        }
        println!();
    }
    Ok(())
}

pub async fn rm(ctx: &Ctx, a: RmArgs) -> Result<(), CliError> {
    let mut failed = false;
    for name in &a.networks {
        match ctx.docker.remove_network(name).await.cli(&ctx.host) {
            Ok(()) => println!("{name}"),
            Err(CliError::Daemon { status: 404, .. }) if a.force => {}
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    // docker returns a bare `StatusError{StatusCode: 1}`, which its main prints as `exit status 1`.
    if failed { Err(CliError::Other("exit status 1".into())) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn ipam_consolidation_like_the_docker_cli() {
        let c = consolidate_ipam(
            &s(&["10.1.0.0/16", "10.2.0.0/24"]),
            &s(&["10.1.1.0/24"]),
            &s(&["10.2.0.254"]),
            &HashMap::new(),
        )
        .unwrap();
        assert_eq!(c[0].ip_range.as_deref(), Some("10.1.1.0/24"));
        assert_eq!(c[1].gateway.as_deref(), Some("10.2.0.254"));
        let e = |r: Result<Vec<IpamConfig>, CliError>| r.unwrap_err().to_string();
        assert_eq!(
            e(consolidate_ipam(&[], &[], &s(&["10.0.0.1"]), &HashMap::new())),
            "every ip-range or gateway must have a corresponding subnet"
        );
        assert_eq!(
            e(consolidate_ipam(&s(&["10.0.0.0/8", "10.1.0.0/16"]), &[], &[], &HashMap::new())),
            "multiple overlapping subnet configuration is not supported"
        );
        assert_eq!(
            e(consolidate_ipam(&s(&["10.0.0.0/24"]), &[], &s(&["10.9.0.1"]), &HashMap::new())),
            "no matching subnet for gateway 10.9.0.1"
        );
    }

    #[test]
    fn rows_and_times() {
        let n: Network = serde_json::from_value(json!({
            "Name": "n1", "Id": "0123456789abcdef0123", "Driver": "bridge", "Scope": "local",
            "Created": "2026-01-02T03:04:05.5Z", "Labels": {"b": "2", "a": "1"}, "Internal": true
        }))
        .unwrap();
        let r = row(&n, true);
        assert_eq!(r["ID"], "0123456789ab");
        assert_eq!(r["Labels"], "a=1,b=2");
        assert_eq!(r["Internal"], "true");
        assert_eq!(r["CreatedAt"], "2026-01-02 03:04:05.5 +0000 UTC");
    }
}
