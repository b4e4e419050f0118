//! MAC addresses: Docker's `02:42:<ipv4 bytes>` derivation, random locally administered ones,
//! and parsing/formatting of the `aa:bb:cc:dd:ee:ff` form.

use std::net::Ipv4Addr;

/// Docker's MAC for an IPv4 address: `02:42` followed by the four address bytes
/// (`172.17.0.2` → `02:42:ac:11:00:02`).
pub fn from_ipv4(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// A random unicast, locally administered MAC (for IPv6-only endpoints and bridges).
pub fn random() -> [u8; 6] {
    let hex = wharf_types::random_hex_id();
    let mut mac = [0u8; 6];
    for (i, b) in mac.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap_or(0);
    }
    mac[0] = (mac[0] & 0xfe) | 0x02;
    mac
}

/// Formats as lowercase colon-separated hex.
pub fn format(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff` (or `-` separated).
pub fn parse(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return None;
        }
        mac[i] = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_mac_from_ip() {
        assert_eq!(format(&from_ipv4("172.17.0.2".parse().unwrap())), "02:42:ac:11:00:02");
    }

    #[test]
    fn parse_roundtrip_and_random_is_local_unicast() {
        assert_eq!(parse("02:42:AC:11:00:02"), Some([2, 0x42, 0xac, 0x11, 0, 2]));
        assert_eq!(parse("02:42:ac:11:00"), None);
        let m = random();
        assert_eq!(m[0] & 0x03, 0x02);
    }
}
