//! RFC 3339 timestamps as Go's `time.RFC3339Nano` writes them in UTC (`…05.123456789Z`,
//! trailing zeros of the fraction trimmed, no fraction when it is zero), without allocation on
//! the hot path of the log writer and reader.

/// Nanoseconds since the Unix epoch, now.
pub fn now_nanos() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    d.as_nanos() as i64
}

// Howard Hinnant's civil-from-days.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Appends `nanos` formatted as RFC3339Nano UTC to `out`.
pub fn format_rfc3339_nano(nanos: i64, out: &mut Vec<u8>) {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000) as u32;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400) as u32;
    let (h, mi, s) = (sod / 3600, sod / 60 % 60, sod % 60);
    let mut buf = [0u8; 19];
    let put = |b: &mut [u8], v: u32| {
        let n = b.len();
        let mut v = v;
        for i in (0..n).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(&mut buf[0..4], y as u32);
    buf[4] = b'-';
    put(&mut buf[5..7], mo);
    buf[7] = b'-';
    put(&mut buf[8..10], d);
    buf[10] = b'T';
    put(&mut buf[11..13], h);
    buf[13] = b':';
    put(&mut buf[14..16], mi);
    buf[16] = b':';
    put(&mut buf[17..19], s);
    out.extend_from_slice(&buf);
    if frac != 0 {
        let mut f = [0u8; 9];
        put(&mut f, frac);
        let mut n = 9;
        while f[n - 1] == b'0' {
            n -= 1;
        }
        out.push(b'.');
        out.extend_from_slice(&f[..n]);
    }
    out.push(b'Z');
}

/// Formats `nanos` as an RFC3339Nano UTC string.
pub fn rfc3339_nano(nanos: i64) -> String {
    let mut v = Vec::with_capacity(30);
    format_rfc3339_nano(nanos, &mut v);
    String::from_utf8(v).unwrap_or_default()
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

/// Parses RFC 3339 (`Z` or `±hh:mm` offset, any fraction length) into nanoseconds since the
/// epoch.
pub fn parse_rfc3339(s: &[u8]) -> Option<i64> {
    if s.len() < 20
        || s[4] != b'-'
        || s[7] != b'-'
        || (s[10] != b'T' && s[10] != b't')
        || s[13] != b':'
        || s[16] != b':'
    {
        return None;
    }
    let y = digits(&s[0..4])? as i64;
    let mo = digits(&s[5..7])?;
    let d = digits(&s[8..10])?;
    let h = digits(&s[11..13])? as i64;
    let mi = digits(&s[14..16])? as i64;
    let se = digits(&s[17..19])? as i64;
    let mut i = 19;
    let mut frac: i64 = 0;
    if s.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            if i - start < 9 {
                frac = frac * 10 + (s[i] - b'0') as i64;
            }
            i += 1;
        }
        for _ in (i - start).min(9)..9 {
            frac *= 10;
        }
    }
    let offset = match s.get(i)? {
        b'Z' | b'z' => 0,
        sign @ (b'+' | b'-') => {
            let rest = s.get(i + 1..i + 6)?;
            if rest[2] != b':' {
                return None;
            }
            let o = (digits(&rest[0..2])? as i64 * 60 + digits(&rest[3..5])? as i64) * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset;
    Some(secs * 1_000_000_000 + frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go_rfc3339nano() {
        assert_eq!(rfc3339_nano(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_nano(1_700_000_000_120_000_000), "2023-11-14T22:13:20.12Z");
        assert_eq!(rfc3339_nano(1_700_000_000_000_000_001), "2023-11-14T22:13:20.000000001Z");
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        for n in [0i64, 1_700_000_000_123_456_789, 951_782_400_500_000_000] {
            assert_eq!(parse_rfc3339(rfc3339_nano(n).as_bytes()), Some(n));
        }
        assert_eq!(parse_rfc3339(b"1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_rfc3339(b"garbage"), None);
    }
}
