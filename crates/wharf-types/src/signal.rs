//! Signal names as Docker accepts them: `SIGTERM`, `TERM`, `term`, `15`, `RTMIN+3`.

const SIGNALS: &[(&str, i32)] = &[
    ("ABRT", 6),
    ("ALRM", 14),
    ("BUS", 7),
    ("CHLD", 17),
    ("CLD", 17),
    ("CONT", 18),
    ("FPE", 8),
    ("HUP", 1),
    ("ILL", 4),
    ("INT", 2),
    ("IO", 29),
    ("IOT", 6),
    ("KILL", 9),
    ("PIPE", 13),
    ("POLL", 29),
    ("PROF", 27),
    ("PWR", 30),
    ("QUIT", 3),
    ("SEGV", 11),
    ("STKFLT", 16),
    ("STOP", 19),
    ("SYS", 31),
    ("TERM", 15),
    ("TRAP", 5),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("USR1", 10),
    ("USR2", 12),
    ("VTALRM", 26),
    ("WINCH", 28),
    ("XCPU", 24),
    ("XFSZ", 25),
];
const RTMIN: i32 = 34;
const RTMAX: i32 = 64;

/// Parses a signal; `None` for anything Docker would call `Invalid signal`.
pub fn parse(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=RTMAX).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some(&(_, n)) = SIGNALS.iter().find(|(k, _)| *k == name) {
        return Some(n);
    }
    let rt = |base: i32, rest: &str| -> Option<i32> {
        if rest.is_empty() {
            return Some(base);
        }
        let (sign, num) = rest.split_at(1);
        let off: i32 = num.parse().ok()?;
        let n = if sign == "+" {
            base + off
        } else if sign == "-" {
            base - off
        } else {
            return None;
        };
        (RTMIN..=RTMAX).contains(&n).then_some(n)
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(RTMIN, rest);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(RTMAX, rest);
    }
    None
}

/// The conventional name of a signal number (`SIGTERM`), for messages.
pub fn name(n: i32) -> String {
    match SIGNALS.iter().find(|(k, v)| *v == n && !matches!(*k, "CLD" | "IOT" | "POLL")) {
        Some((k, _)) => format!("SIG{k}"),
        None => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_forms() {
        assert_eq!(parse("SIGTERM"), Some(15));
        assert_eq!(parse("term"), Some(15));
        assert_eq!(parse("KILL"), Some(9));
        assert_eq!(parse("9"), Some(9));
        assert_eq!(parse("USR1"), Some(10));
        assert_eq!(parse("RTMIN+3"), Some(37));
        assert_eq!(parse("SIGRTMAX-1"), Some(63));
        assert_eq!(parse("0"), None);
        assert_eq!(parse("65"), None);
        assert_eq!(parse("NOPE"), None);
        assert_eq!(name(15), "SIGTERM");
        assert_eq!(name(17), "SIGCHLD");
    }
}
