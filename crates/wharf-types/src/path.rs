//! Slash-separated paths as Go's `path.Clean` treats them: the one lexical cleaning every
//! Docker rule here is written against (mount targets, `docker cp` paths, `.dockerignore`
//! patterns, COPY sources, diff entries).

/// Go's `path.Clean`: `a//b/./../c` → `a/c`; `..` at the root stays at the root (`/../x` →
/// `/x`) and is kept in relative paths (`../x`); the empty path is `.`.
pub fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn go_path_clean_cases() {
        for (input, want) in [
            ("", "."),
            (".", "."),
            ("/", "/"),
            ("//", "/"),
            ("a/b/", "a/b"),
            ("a//b/./c", "a/b/c"),
            ("a/b/../../..", ".."),
            ("../../x", "../../x"),
            ("/../x", "/x"),
            ("/a/b/../c/.", "/a/c"),
            ("abc/def/../../..", ".."),
            ("./a", "a"),
        ] {
            assert_eq!(clean(input), want, "{input:?}");
        }
    }
}
