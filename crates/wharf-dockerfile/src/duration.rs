//! Go's `time.ParseDuration`, for HEALTHCHECK's `--interval`, `--timeout`, `--start-period`
//! and `--start-interval`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` with units ns, us (µs, μs), ms,
//! s, m, h; the bare string `0` is allowed. Errors use Go's wording.

/// Nanoseconds, signed as in Go (`-1s` parses; the caller rejects it).
pub(crate) fn parse_go_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration \"{orig}\"");
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next()
        && (c == '-' || c == '+')
    {
        neg = c == '-';
        s = &s[1..];
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // integer part
        let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let pre = digits > 0;
        let mut v: u64 = 0;
        for &c in &b[..digits] {
            v = v.checked_mul(10).and_then(|v| v.checked_add(u64::from(c - b'0'))).ok_or_else(invalid)?;
        }
        s = &s[digits..];
        // fraction
        let mut frac: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if s.starts_with('.') {
            s = &s[1..];
            let fd = s.bytes().take_while(|c| c.is_ascii_digit()).count();
            post = fd > 0;
            let mut overflow = false;
            for c in s[..fd].bytes() {
                if overflow {
                    continue;
                }
                match frac.checked_mul(10).and_then(|f| f.checked_add(u64::from(c - b'0'))) {
                    Some(f) if f < (1 << 63) => {
                        frac = f;
                        scale *= 10.0;
                    }
                    _ => overflow = true,
                }
            }
            s = &s[fd..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        let ul = s.bytes().take_while(|c| !(*c == b'.' || c.is_ascii_digit())).count();
        if ul == 0 {
            return Err(format!("time: missing unit in duration \"{orig}\""));
        }
        let unit_str = &s[..ul];
        s = &s[ul..];
        let unit: u64 = match unit_str {
            "ns" => 1,
            "us" | "\u{00b5}s" | "\u{03bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3600 * 1_000_000_000,
            _ => {
                return Err(format!("time: unknown unit \"{unit_str}\" in duration \"{orig}\""));
            }
        };
        let mut part = v.checked_mul(unit).ok_or_else(invalid)?;
        if frac > 0 {
            part = part.checked_add((frac as f64 * (unit as f64 / scale)) as u64).ok_or_else(invalid)?;
        }
        total = total.checked_add(part).ok_or_else(invalid)?;
        if total > i64::MAX as u64 {
            return Err(invalid());
        }
    }
    let total = total as i64;
    Ok(if neg { -total } else { total })
}

/// Go's `Duration.String()` for the few values the error messages print.
pub(crate) fn go_duration_string(ns: i64) -> String {
    match ns {
        0 => "0s".into(),
        n if n % 3_600_000_000_000 == 0 => format!("{}h0m0s", n / 3_600_000_000_000),
        n if n % 60_000_000_000 == 0 => format!("{}m0s", n / 60_000_000_000),
        n if n % 1_000_000_000 == 0 => format!("{}s", n / 1_000_000_000),
        n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
        n if n % 1_000 == 0 => format!("{}µs", n / 1_000),
        n => format!("{n}ns"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_go_duration("30s"), Ok(30_000_000_000));
        assert_eq!(parse_go_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_go_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("500ms"), Ok(500_000_000));
        assert_eq!(parse_go_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_go_duration("10us"), Ok(10_000));
        assert_eq!(parse_go_duration("10µs"), Ok(10_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("-2s"), Ok(-2_000_000_000));
        assert_eq!(parse_go_duration("+2s"), Ok(2_000_000_000));
    }

    #[test]
    fn go_error_wording() {
        assert_eq!(parse_go_duration("10").unwrap_err(), "time: missing unit in duration \"10\"");
        assert_eq!(parse_go_duration("10x").unwrap_err(), "time: unknown unit \"x\" in duration \"10x\"");
        assert_eq!(parse_go_duration("abc").unwrap_err(), "time: invalid duration \"abc\"");
        assert_eq!(parse_go_duration("").unwrap_err(), "time: invalid duration \"\"");
        assert_eq!(parse_go_duration(".s").unwrap_err(), "time: invalid duration \".s\"");
    }

    #[test]
    fn prints_like_go() {
        assert_eq!(go_duration_string(1_000_000), "1ms");
        assert_eq!(go_duration_string(30_000_000_000), "30s");
    }
}
