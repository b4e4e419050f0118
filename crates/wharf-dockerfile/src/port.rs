//! EXPOSE port specs, checked as Docker's `nat.ParsePortSpecs` does:
//! `port[/proto]` or `start-end[/proto]`, proto `tcp` (default), `udp` or `sctp` in any case.
//! An `ip:hostPort:` prefix is accepted and ignored, as Docker does (only the container port is
//! exposed).

/// One exposed container port or range, e.g. `8000-8002/udp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExposedPort {
    pub start: u16,
    pub end: u16,
    pub proto: Proto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

impl ExposedPort {
    /// Docker's keys for `Config.ExposedPorts`: one `"<port>/<proto>"` per port of the range.
    pub fn keys(&self) -> Vec<String> {
        (self.start..=self.end).map(|p| format!("{p}/{}", self.proto.as_str())).collect()
    }
}

/// Parse one EXPOSE word (after expansion). Messages are Docker's.
pub fn parse_port_spec(raw: &str) -> Result<ExposedPort, String> {
    let parts: Vec<&str> = raw.split(':').collect();
    let (ip, host_port, container) = match parts.len() {
        1 => (String::new(), "", parts[0]),
        2 => (String::new(), parts[0], parts[1]),
        n => (parts[..n - 2].join(":"), parts[n - 2], parts[n - 1]),
    };
    let (port, proto) = match container.split_once('/') {
        Some((p, pr)) => (p, if pr.is_empty() { "tcp" } else { pr }),
        None => (container, "tcp"),
    };
    if port.is_empty() {
        return Err(format!("no port specified: {raw}<empty>"));
    }
    let proto = match proto.to_ascii_lowercase().as_str() {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        "sctp" => Proto::Sctp,
        other => return Err(format!("invalid proto: {other}")),
    };
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("invalid IP address: {ip}"));
    }
    let (start, end) = parse_range(port).ok_or_else(|| format!("invalid containerPort: {port}"))?;
    if !host_port.is_empty() {
        let (hs, he) = parse_range(host_port).ok_or_else(|| format!("invalid hostPort: {host_port}"))?;
        if end - start != he - hs && end != start {
            return Err(format!("invalid ranges specified for container and host Ports: {port} and {host_port}"));
        }
    }
    Ok(ExposedPort { start, end, proto })
}

fn parse_range(s: &str) -> Option<(u16, u16)> {
    match s.split_once('-') {
        None => {
            let p = s.parse().ok()?;
            Some((p, p))
        }
        Some((a, b)) => {
            let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
            (b >= a).then_some((a, b))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_specs() {
        assert_eq!(parse_port_spec("80").unwrap(), ExposedPort { start: 80, end: 80, proto: Proto::Tcp });
        assert_eq!(parse_port_spec("53/UDP").unwrap().proto, Proto::Udp);
        assert_eq!(parse_port_spec("7000-7002/tcp").unwrap().keys(), vec!["7000/tcp", "7001/tcp", "7002/tcp"]);
        assert_eq!(parse_port_spec("8080:80").unwrap().start, 80);
        assert_eq!(parse_port_spec("80/").unwrap().proto, Proto::Tcp);
    }

    #[test]
    fn docker_messages() {
        assert_eq!(parse_port_spec("80/xyz").unwrap_err(), "invalid proto: xyz");
        assert_eq!(parse_port_spec("http").unwrap_err(), "invalid containerPort: http");
        assert_eq!(parse_port_spec("70000").unwrap_err(), "invalid containerPort: 70000");
        assert_eq!(parse_port_spec("9-1").unwrap_err(), "invalid containerPort: 9-1");
        assert_eq!(parse_port_spec("/tcp").unwrap_err(), "no port specified: /tcp<empty>");
    }
}
