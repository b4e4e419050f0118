//! Small helpers shared by the modules: Go's `%q` quoting (Docker's messages use it) and
//! Go's `unicode.IsSpace`.

pub(crate) use wharf_types::gostr::quote as go_quote;

/// Go's `unicode.IsSpace`: what the Dockerfile parser treats as whitespace.
pub(crate) fn is_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}')
        || (c as u32 > 0xff && c.is_whitespace())
}

/// The whitespace of the parser's `[\t\v\f\r ]+` splitting regex.
pub(crate) fn is_split_space(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// `s` split on runs of `[\t\v\f\r ]`, like Go's `regexp.Split(s, -1)` on that regex: a leading
/// run yields an empty first field and a trailing run an empty last field.
pub(crate) fn split_ws(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_space = false;
    for c in s.chars() {
        if is_split_space(c) {
            if !in_space {
                out.push(std::mem::take(&mut cur));
                in_space = true;
            }
        } else {
            in_space = false;
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

/// `s` split at the first run of `[\t\v\f\r ]` into at most two fields (Go's `Split(s, 2)`).
pub(crate) fn split_ws2(s: &str) -> (String, Option<String>) {
    match s.char_indices().find(|(_, c)| is_split_space(*c)) {
        None => (s.to_string(), None),
        Some((i, _)) => {
            let rest = s[i..].trim_start_matches(is_split_space);
            (s[..i].to_string(), Some(rest.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(go_quote("a\"b\\c\n"), r#""a\"b\\c\n""#);
    }

    #[test]
    fn splitting() {
        assert_eq!(split_ws("a  b\tc"), vec!["a", "b", "c"]);
        assert_eq!(split_ws2("a  b c"), ("a".to_string(), Some("b c".to_string())));
        assert_eq!(split_ws2("abc"), ("abc".to_string(), None));
    }
}
