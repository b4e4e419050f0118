//! Sizes as docker prints and parses them (`github.com/docker/go-units`):
//! - [`human_size`]: decimal units with 4 significant digits (`4.26MB`), image and container sizes;
//! - [`human_size_precision`]: the same with a chosen precision (`ps -s`, `stats` I/O use 3);
//! - [`bytes_size`]: binary units (`1.5GiB`), memory;
//! - [`ram_in_bytes`] / [`from_human_size`]: `512m`, `1.5g`, `10kb` → bytes (binary / decimal).
//!
//! Go formats these with `%.*g`; [`go_g`] reproduces that verb exactly (`1e+03kB` included).

const DECIMAL_ABBRS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY_ABBRS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

fn size_and_unit(mut size: f64, base: f64, abbrs: &[&'static str]) -> (f64, &'static str) {
    let mut i = 0;
    while size >= base && i < abbrs.len() - 1 {
        size /= base;
        i += 1;
    }
    (size, abbrs[i])
}

/// go-units `HumanSizeWithPrecision`: `%.*g` of the size in decimal units.
pub fn human_size_precision(size: f64, precision: usize) -> String {
    let (v, unit) = size_and_unit(size, 1000.0, &DECIMAL_ABBRS);
    format!("{}{unit}", go_g(v, precision))
}

/// go-units `HumanSize`: 4 significant digits, decimal units (`4.26MB`, `1.5kB`, `0B`).
pub fn human_size(size: f64) -> String {
    human_size_precision(size, 4)
}

/// go-units `BytesSize`: `%.4g` in binary units (`1.5GiB`, `868KiB`).
pub fn bytes_size(size: f64) -> String {
    let (v, unit) = size_and_unit(size, 1024.0, &BINARY_ABBRS);
    format!("{}{unit}", go_g(v, 4))
}

/// Go's `strconv.FormatFloat(v, 'g', precision, 64)` (what `%.*g` prints).
pub fn go_g(v: f64, precision: usize) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let prec = precision.max(1);
    let neg = v.is_sign_negative() && v != 0.0;
    let a = v.abs();
    // Decimal digits rounded to `prec` significant digits (round half to even, like Go).
    let (digits, dp) = if a == 0.0 {
        (String::new(), 0i32)
    } else {
        let e = format!("{:.*e}", prec - 1, a);
        let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
        (digits.trim_end_matches('0').to_owned(), exp + 1)
    };
    let nd = digits.len() as i32;
    let mut eprec = prec as i32;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    let exp = dp - 1;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let digit = |i: i32| -> char { if i >= 0 && i < nd { digits.as_bytes()[i as usize] as char } else { '0' } };
    if exp < -4 || exp >= eprec {
        // %e with prec-1 fraction digits
        let p = (prec as i32).min(nd.max(1)) - 1;
        out.push(digit(0));
        if p > 0 {
            out.push('.');
            for i in 1..=p {
                out.push(digit(i));
            }
        }
        let x = if nd == 0 { 0 } else { exp };
        out.push('e');
        out.push(if x < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", x.abs()));
        return out;
    }
    let p = if prec as i32 > dp { nd } else { prec as i32 };
    let frac = (p - dp).max(0);
    // integer part
    if dp > 0 {
        for i in 0..dp {
            out.push(digit(i));
        }
    } else {
        out.push('0');
    }
    if frac > 0 {
        out.push('.');
        for i in 0..frac {
            out.push(digit(dp + i));
        }
    }
    out
}

/// go-units `RAMInBytes`: `512m` → 536870912 (binary multipliers; `b`, `k/kb/kib`, …).
pub fn ram_in_bytes(s: &str) -> Result<i64, String> {
    parse_size(s, 1024)
}

/// go-units `FromHumanSize`: decimal multipliers.
#[allow(dead_code, reason = "shared: image commands (`build --memory`…) parse decimal sizes")]
pub fn from_human_size(s: &str) -> Result<i64, String> {
    parse_size(s, 1000)
}

fn parse_size(size_str: &str, base: i64) -> Result<i64, String> {
    let invalid = || format!("invalid size: '{size_str}'");
    let Some(sep) = size_str.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ') else {
        return Err(invalid());
    };
    let (num, sfx) = if size_str.as_bytes()[sep] != b' ' {
        (&size_str[..=sep], &size_str[sep + 1..])
    } else {
        (&size_str[..sep], &size_str[sep + 1..])
    };
    let mut size: f64 = num.parse().map_err(|_| format!("strconv.ParseFloat: parsing {num:?}: invalid syntax"))?;
    if size < 0.0 {
        return Err(invalid());
    }
    if sfx.is_empty() {
        return Ok(size as i64);
    }
    let bad = || format!("invalid suffix: '{sfx}'");
    if sfx.len() > 3 {
        return Err(bad());
    }
    let lower = sfx.to_lowercase();
    let b = lower.as_bytes();
    if b[0] == b'b' {
        if b.len() > 1 {
            return Err(bad());
        }
        return Ok(size as i64);
    }
    let mul = match b[0] {
        b'k' => base,
        b'm' => base.pow(2),
        b'g' => base.pow(3),
        b't' => base.pow(4),
        b'p' => base.pow(5),
        _ => return Err(bad()),
    };
    size *= mul as f64;
    match b.len() {
        2 if b[1] != b'b' => return Err(bad()),
        3 if &lower[1..] != "ib" => return Err(bad()),
        _ => {}
    }
    Ok(size as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_g_matches_strconv() {
        // Values checked against Go: fmt.Sprintf("%.*g", p, v)
        let cases: &[(f64, usize, &str)] = &[
            (4.26, 3, "4.26"),
            (4.2, 3, "4.2"),
            (100.0, 3, "100"),
            (999.9, 3, "1e+03"),
            (1000.0, 3, "1e+03"),
            (0.0, 3, "0"),
            (0.5, 3, "0.5"),
            (1.5, 4, "1.5"),
            (23.5353, 4, "23.54"),
            (868.0, 4, "868"),
            (1023.99, 4, "1024"),
            (12.345, 3, "12.3"),
            (0.00001234, 3, "1.23e-05"),
            (2.5, 1, "2"),
            (3.5, 1, "4"),
        ];
        for (v, p, want) in cases {
            assert_eq!(go_g(*v, *p), *want, "{v} %.{p}g");
        }
    }

    #[test]
    fn sizes_like_go_units() {
        assert_eq!(human_size(4_260_000.0), "4.26MB");
        assert_eq!(human_size(0.0), "0B");
        assert_eq!(human_size(1500.0), "1.5kB");
        assert_eq!(human_size(999.0), "999B");
        assert_eq!(human_size_precision(999_900.0, 3), "1e+03kB");
        assert_eq!(human_size_precision(876.0, 3), "876B");
        assert_eq!(human_size_precision(4_096.0, 3), "4.1kB");
        assert_eq!(bytes_size(1_610_612_736.0), "1.5GiB");
        assert_eq!(bytes_size(868_352.0), "848KiB");
        assert_eq!(bytes_size(25_276_063_744.0), "23.54GiB");
        assert_eq!(bytes_size(0.0), "0B");
    }

    #[test]
    fn parse_sizes() {
        assert_eq!(ram_in_bytes("512m"), Ok(512 * 1024 * 1024));
        assert_eq!(ram_in_bytes("1.5g"), Ok(1_610_612_736));
        assert_eq!(ram_in_bytes("10KiB"), Ok(10240));
        assert_eq!(ram_in_bytes("10kb"), Ok(10240));
        assert_eq!(ram_in_bytes("32"), Ok(32));
        assert_eq!(ram_in_bytes("32b"), Ok(32));
        assert_eq!(ram_in_bytes("1 g"), Ok(1 << 30));
        assert_eq!(ram_in_bytes("1q"), Err("invalid suffix: 'q'".into()));
        assert_eq!(ram_in_bytes("1kbb"), Err("invalid suffix: 'kbb'".into()));
        assert_eq!(ram_in_bytes("m"), Err("invalid size: 'm'".into()));
        assert_eq!(from_human_size("1k"), Ok(1000));
        assert_eq!(from_human_size("1MB"), Ok(1_000_000));
    }
}
