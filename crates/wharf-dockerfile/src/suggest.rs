//! "did you mean X?" suggestions, as BuildKit's `util/suggest` makes them: the closest option
//! by Levenshtein distance, if that distance is below 3 and the value is not an exact match.

/// The option closest to `value` (distance < 3), with `value`'s case applied when the search is
/// case-insensitive. `None` when nothing is close or `value` is itself an option.
pub(crate) fn search(value: &str, options: &[&str], case_sensitive: bool) -> Option<String> {
    let wanted = if case_sensitive { value.to_string() } else { value.to_lowercase() };
    let mut best: Option<String> = None;
    let mut min = 3;
    for opt in options {
        let opt = if case_sensitive { opt.to_string() } else { opt.to_lowercase() };
        if opt == wanted {
            return None;
        }
        let d = levenshtein(&wanted, &opt);
        if d < min {
            min = d;
            best = Some(if case_sensitive { opt } else { match_case(&opt, value) });
        }
    }
    best
}

/// `message` with ` (did you mean X?)` appended when [`search`] finds a suggestion.
pub(crate) fn wrap(message: String, value: &str, options: &[&str], case_sensitive: bool) -> String {
    match search(value, options, case_sensitive) {
        Some(m) => format!("{message} (did you mean {m}?)"),
        None => message,
    }
}

fn match_case(val: &str, orig: &str) -> String {
    if orig == orig.to_lowercase() {
        val.to_lowercase()
    } else if orig == orig.to_uppercase() {
        val.to_uppercase()
    } else {
        val.to_string()
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let sub = prev[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            cur[j] = sub.min(prev[j] + 1).min(cur[j - 1] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_in_the_callers_case() {
        let opts = ["ADD", "COPY", "FROM", "RUN"];
        assert_eq!(search("FORM", &opts, false).as_deref(), Some("FROM"));
        assert_eq!(search("form", &opts, false).as_deref(), Some("from"));
        assert_eq!(search("COPPY", &opts, false).as_deref(), Some("COPY"));
        assert_eq!(search("WHATEVER", &opts, false), None);
        assert_eq!(search("run", &opts, false), None);
    }

    #[test]
    fn distance() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("abc", "abc"), 0);
    }
}
