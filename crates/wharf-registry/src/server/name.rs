//! Repository names and tags, validated by the distribution grammar before they touch a path.
//!
//! ```text
//! name       := component ('/' component)*          (at most 255 bytes)
//! component  := [a-z0-9]+ (separator [a-z0-9]+)*
//! separator  := '.' | '_' | '__' | '-'+
//! tag        := [A-Za-z0-9_][A-Za-z0-9._-]{0,127}
//! ```
//!
//! Components start and end with `[a-z0-9]`, so `..`, `.`, empty components, a leading `/` and
//! our own `_uploads`-style directory names can never be spelled.

use std::fmt;

const MAX_NAME_LEN: usize = 255;

/// A repository name that passed the grammar (safe to join under the storage root).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() <= MAX_NAME_LEN && !s.is_empty() && s.split('/').all(valid_component)).then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__' or '-'+, followed by an alphanumeric.
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !alnum(b[i]) {
            return false;
        }
    }
    true
}

/// True for a valid tag.
pub fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..].iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_grammar() {
        for ok in ["a", "library/busybox", "a.b_c__d---e/f0", "x/y/z/w", "0", "foo-bar"] {
            assert!(RepoName::parse(ok).is_some(), "{ok}");
        }
    }

    #[test]
    fn rejects_path_tricks() {
        for bad in [
            "",
            "..",
            "../etc",
            "a/../b",
            "/a",
            "a/",
            "a//b",
            "A",
            "a/B",
            "a..b",
            "a___b",
            ".a",
            "a.",
            "-a",
            "_uploads",
            "a/_manifests",
            "a%2f..",
            "a b",
            "a\\b",
            &"a".repeat(256),
        ] {
            assert!(RepoName::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn tags() {
        assert!(valid_tag("latest"));
        assert!(valid_tag("_v1.2-rc"));
        assert!(!valid_tag(".x"));
        assert!(!valid_tag("-x"));
        assert!(!valid_tag("a/b"));
        assert!(!valid_tag(&"a".repeat(129)));
    }
}
