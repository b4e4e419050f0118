//! Go's string quoting, for the messages and outputs that must read like Docker's (`%q`).

/// Go's `strconv.Quote` (what `%q` prints) for the characters Docker's messages meet:
/// `"` and `\` escaped, `\a \b \f \n \r \t \v` by name, other control characters as `\xNN`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_strconv_quote() {
        assert_eq!(super::quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(super::quote("\n\t\r\u{7}\u{1b}\u{7f}é"), "\"\\n\\t\\r\\a\\x1b\\x7fé\"");
        assert_eq!(super::quote(""), "\"\"");
    }
}
