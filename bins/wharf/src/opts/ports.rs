//! `-p/--publish` and `--expose` (`go-connections/nat` and docker/cli's
//! `convertToStandardNotation`): `[ip:][hostPort[-end]:]containerPort[-end][/proto]`, IPv6 in
//! brackets, and the long form `published=8080,target=80,protocol=udp`.

use std::collections::BTreeMap;

use bollard::models::PortBinding;

use super::{OptError, OptResult};

/// `"80/tcp"` → bindings, in a stable order.
pub type Bindings = BTreeMap<String, Vec<PortBinding>>;

/// The long syntax (`published=…,target=…`) into the short one.
pub fn convert_to_standard_notation(ports: &[String]) -> OptResult<Vec<String>> {
    let mut out = Vec::new();
    for publish in ports {
        if publish.contains('=') {
            let mut params: BTreeMap<&str, &str> = BTreeMap::new();
            params.insert("protocol", "tcp");
            for param in publish.split(',') {
                match param.split_once('=') {
                    Some((k, v)) if !k.is_empty() => {
                        params.insert(k, v);
                    }
                    _ => {
                        return Err(OptError::Parse(format!(
                            "invalid publish opts format (should be name=value but got '{param}')"
                        )));
                    }
                }
            }
            let get = |k: &str| params.get(k).copied().unwrap_or("");
            out.push(format!("{}:{}/{}", get("published"), get("target"), get("protocol")));
        } else {
            out.push(publish.clone());
        }
    }
    Ok(out)
}

/// `nat.SplitProtoPort`: `"80/udp"` → `("udp", "80")`.
pub fn split_proto_port(raw: &str) -> (String, String) {
    let parts: Vec<&str> = raw.split('/').collect();
    if raw.is_empty() || parts[0].is_empty() {
        return (String::new(), String::new());
    }
    if parts.len() == 1 {
        return ("tcp".into(), raw.into());
    }
    if parts[1].is_empty() {
        return ("tcp".into(), parts[0].into());
    }
    (parts[1].into(), parts[0].into())
}

/// `nat.ParsePortRange`: `"8000-8010"` → (8000, 8010). Errors are Go's strconv messages.
pub fn parse_port_range(ports: &str) -> Result<(u64, u64), String> {
    if ports.is_empty() {
        return Err("empty string specified for ports".into());
    }
    if !ports.contains('-') {
        let v = super::go_parse_uint_dec(ports, 16)?;
        return Ok((v, v));
    }
    let mut parts = ports.split('-');
    let start = super::go_parse_uint_dec(parts.next().unwrap_or(""), 16)?;
    let end = super::go_parse_uint_dec(parts.next().unwrap_or(""), 16)?;
    if end < start {
        return Err(format!("invalid range specified for port: {ports}"));
    }
    Ok((start, end))
}

fn split_parts(raw: &str) -> (String, String, String) {
    let parts: Vec<&str> = raw.split(':').collect();
    let n = parts.len();
    let container = parts[n - 1].to_owned();
    match n {
        1 => (String::new(), String::new(), container),
        2 => (String::new(), parts[0].into(), container),
        3 => (parts[0].into(), parts[1].into(), container),
        _ => (parts[..n - 2].join(":"), parts[n - 2].into(), container),
    }
}

/// `nat.ParsePortSpec`: one spec into `(port key, binding)` pairs.
pub fn parse_port_spec(raw: &str) -> Result<Vec<(String, PortBinding)>, String> {
    let (mut ip, host_port, container) = split_parts(raw);
    let (proto, container_port) = split_proto_port(&container);
    if ip.starts_with('[') {
        // net.SplitHostPort(ip + ":")
        let Some(end) = ip.find(']') else {
            return Err(format!("invalid IP address {ip}: address {ip}:: missing ']' in address"));
        };
        if end + 1 != ip.len() {
            return Err(format!("invalid IP address {ip}: address {ip}:: too many colons in address"));
        }
        ip = ip[1..end].to_owned();
    }
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("invalid IP address: {ip}"));
    }
    if container_port.is_empty() {
        return Err(format!("no port specified: {raw}<empty>"));
    }
    let (start, end) =
        parse_port_range(&container_port).map_err(|_| format!("invalid containerPort: {container_port}"))?;
    let (mut hstart, mut hend) = (0u64, 0u64);
    if !host_port.is_empty() {
        (hstart, hend) = parse_port_range(&host_port).map_err(|_| format!("invalid hostPort: {host_port}"))?;
    }
    if !host_port.is_empty() && (end - start) != (hend - hstart) && end != start {
        return Err(format!("invalid ranges specified for container and host Ports: {container_port} and {host_port}"));
    }
    let lproto = proto.to_lowercase();
    if !matches!(lproto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let mut out = Vec::new();
    for i in 0..=(end - start) {
        let cport = start + i;
        let mut hp = String::new();
        if !host_port.is_empty() {
            hp = (hstart + i).to_string();
        }
        if start == end && hstart != hend {
            hp = format!("{hp}-{hend}");
        }
        out.push((format!("{cport}/{lproto}"), PortBinding { host_ip: Some(ip.clone()), host_port: Some(hp) }));
    }
    Ok(out)
}

/// `nat.ParsePortSpecs`: exposed ports and bindings for all `-p` values.
pub fn parse_port_specs(specs: &[String]) -> OptResult<(Vec<String>, Bindings)> {
    let mut exposed: Vec<String> = Vec::new();
    let mut bindings = Bindings::new();
    for raw in specs {
        let mappings = parse_port_spec(raw).map_err(OptError::Parse)?;
        for (port, binding) in mappings {
            if !exposed.contains(&port) {
                exposed.push(port.clone());
            }
            bindings.entry(port).or_default().push(binding);
        }
    }
    Ok((exposed, bindings))
}

/// `--expose` values merged into the exposed ports.
pub fn add_exposed(exposed: &mut Vec<String>, expose: &[String]) -> OptResult<()> {
    for e in expose {
        if e.contains(':') {
            return Err(OptError::Parse(format!("invalid port format for --expose: {e}")));
        }
        let (proto, port) = split_proto_port(e);
        let (start, end) = parse_port_range(&port)
            .map_err(|err| OptError::Parse(format!("invalid range format for --expose: {e}, error: {err}")))?;
        for p in start..=end {
            let key = format!("{p}/{proto}");
            if !exposed.contains(&key) {
                exposed.push(key);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(ip: &str, port: &str) -> PortBinding {
        PortBinding { host_ip: Some(ip.into()), host_port: Some(port.into()) }
    }

    #[test]
    fn port_specs() {
        let specs: Vec<String> = [
            "80",
            "8080:81",
            "127.0.0.1:9090:90/udp",
            "[::1]:7070:70",
            "1000-1001:2000-2001",
            "8000-8010:3000",
            "127.0.0.1::53/udp",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (exposed, bindings) = parse_port_specs(&specs).unwrap();
        assert_eq!(exposed, vec!["80/tcp", "81/tcp", "90/udp", "70/tcp", "2000/tcp", "2001/tcp", "3000/tcp", "53/udp"]);
        assert_eq!(bindings["80/tcp"], vec![b("", "")]);
        assert_eq!(bindings["81/tcp"], vec![b("", "8080")]);
        assert_eq!(bindings["90/udp"], vec![b("127.0.0.1", "9090")]);
        assert_eq!(bindings["70/tcp"], vec![b("::1", "7070")]);
        assert_eq!(bindings["2000/tcp"], vec![b("", "1000")]);
        assert_eq!(bindings["2001/tcp"], vec![b("", "1001")]);
        assert_eq!(bindings["3000/tcp"], vec![b("", "8000-8010")]);
        assert_eq!(bindings["53/udp"], vec![b("127.0.0.1", "")]);
    }

    #[test]
    fn port_errors() {
        let e = |s: &str| parse_port_spec(s).unwrap_err();
        assert_eq!(e("abc"), "invalid containerPort: abc");
        assert_eq!(e("x:80"), "invalid hostPort: x");
        assert_eq!(e("1.2.3:80:80"), "invalid IP address: 1.2.3");
        assert_eq!(e("80/xyz"), "invalid proto: xyz");
        assert_eq!(e("8080:"), "no port specified: 8080:<empty>");
        assert_eq!(e("1-3:1-2"), "invalid ranges specified for container and host Ports: 1-2 and 1-3");
        assert_eq!(e("70000"), "invalid containerPort: 70000");
    }

    #[test]
    fn long_syntax() {
        let v = convert_to_standard_notation(&[
            "published=8080,target=80".into(),
            "target=53,protocol=udp".into(),
            "8443:443".into(),
        ])
        .unwrap();
        assert_eq!(v, vec!["8080:80/tcp", ":53/udp", "8443:443"]);
        assert!(convert_to_standard_notation(&["published=1,bad".into()]).is_err());
    }

    #[test]
    fn expose() {
        let mut exposed = vec!["80/tcp".to_string()];
        add_exposed(&mut exposed, &["80".into(), "7000-7001/udp".into()]).unwrap();
        assert_eq!(exposed, vec!["80/tcp", "7000/udp", "7001/udp"]);
        assert_eq!(
            add_exposed(&mut exposed, &["1:2".into()]).unwrap_err(),
            OptError::Parse("invalid port format for --expose: 1:2".into())
        );
        assert_eq!(
            add_exposed(&mut exposed, &["x".into()]).unwrap_err(),
            OptError::Parse(
                "invalid range format for --expose: x, error: strconv.ParseUint: parsing \"x\": invalid syntax".into()
            )
        );
    }
}
