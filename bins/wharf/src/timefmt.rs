//! Time as the docker CLI reads and prints it: Go durations (`1h30m`), `--since/--until`
//! values (durations, RFC 3339 dates, Unix timestamps) and human durations (`2 hours ago`).

use anyhow::{Result, bail};
use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// Parses a Go duration (`300ms`, `1.5h`, `1h2m3s`, `-5m`) into nanoseconds.
pub fn parse_go_duration(s: &str) -> Result<i64> {
    let orig = s;
    let (neg, mut s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        bail!("time: invalid duration {orig:?}");
    }
    let mut total: f64 = 0.0;
    while !s.is_empty() {
        let num_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
        if num_end == 0 {
            bail!("time: invalid duration {orig:?}");
        }
        let n: f64 = s[..num_end].parse().map_err(|_| anyhow::anyhow!("time: invalid duration {orig:?}"))?;
        s = &s[num_end..];
        let unit_end = s.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(s.len());
        let mult = match &s[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => bail!("time: missing unit in duration {orig:?}"),
            u => bail!("time: unknown unit {u:?} in duration {orig:?}"),
        };
        total += n * mult;
        s = &s[unit_end..];
    }
    let v = total as i64;
    Ok(if neg { -v } else { v })
}

/// docker's `GetTimestamp`: turns a user's `--since`/`--until` into what the API expects
/// (`<seconds>` or `<seconds>.<nanoseconds>`). Durations count back from `now`.
pub fn api_timestamp(value: &str, now: DateTime<Utc>) -> Result<String> {
    if let Ok(d) = parse_go_duration(value) {
        let t = now - chrono::Duration::nanoseconds(d);
        return Ok(t.timestamp().to_string());
    }
    if value.bytes().all(|b| b.is_ascii_digit() || b == b'.') && !value.is_empty() {
        return Ok(value.to_owned());
    }
    let t: Option<DateTime<Utc>> = DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .and_then(|n| Local.from_local_datetime(&n).single())
                .map(|t| t.with_timezone(&Utc))
        })
        .or_else(|| {
            NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M")
                .ok()
                .and_then(|n| Local.from_local_datetime(&n).single())
                .map(|t| t.with_timezone(&Utc))
        })
        .or_else(|| {
            NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .and_then(|n| Local.from_local_datetime(&n).single())
                .map(|t| t.with_timezone(&Utc))
        });
    match t {
        Some(t) => Ok(format!("{}.{:09}", t.timestamp(), t.timestamp_subsec_nanos())),
        None => bail!("failed to parse value as time or duration: \"{value}\""),
    }
}

/// `2006-01-02T15:04:05.000000000Z07:00` in local time, as `docker events` prints.
pub fn rfc3339_nano_fixed(nanos: i64) -> String {
    let t = Local.timestamp_nanos(nanos);
    t.format("%Y-%m-%dT%H:%M:%S%.9f%:z").to_string().replace("+00:00", "Z")
}

/// go-units `HumanDuration`: `Less than a second`, `3 seconds`, `About a minute`, `2 hours`…
pub fn human_duration(secs: i64) -> String {
    let s = secs;
    let minutes = s / 60;
    let hours = (s as f64 / 3600.0).round() as i64;
    if s < 1 {
        "Less than a second".into()
    } else if s == 1 {
        "1 second".into()
    } else if s < 60 {
        format!("{s} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours / 24 / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1h30m").unwrap(), 5_400_000_000_000);
        assert_eq!(parse_go_duration("1.5s").unwrap(), 1_500_000_000);
        assert_eq!(parse_go_duration("300ms").unwrap(), 300_000_000);
        assert_eq!(parse_go_duration("-2m").unwrap(), -120_000_000_000);
        assert_eq!(parse_go_duration("0").unwrap(), 0);
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("1x").is_err());
        assert!(parse_go_duration("").is_err());
    }

    #[test]
    fn api_timestamps() {
        let now = Utc.timestamp_opt(1_000_000, 0).unwrap();
        assert_eq!(api_timestamp("10m", now).unwrap(), "999400");
        assert_eq!(api_timestamp("1795400529", now).unwrap(), "1795400529");
        assert_eq!(api_timestamp("1795400529.5", now).unwrap(), "1795400529.5");
        assert_eq!(api_timestamp("2026-11-23T02:22:03Z", now).unwrap(), "1795400523.000000000");
        assert!(api_timestamp("yesterday", now).is_err());
    }

    #[test]
    fn human() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(29), "29 seconds");
        assert_eq!(human_duration(60), "About a minute");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(3 * 86400), "3 days");
    }
}
