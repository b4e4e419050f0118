//! Image references with Docker's normalisation rules (distribution/reference `ParseNormalizedNamed`):
//!
//! ```text
//! busybox                     -> docker.io/library/busybox:latest
//! foo/bar:1                   -> docker.io/foo/bar:1
//! index.docker.io/foo         -> docker.io/library/foo:latest
//! localhost:5000/x@sha256:…   -> localhost:5000/x@sha256:…
//! ```
//!
//! Errors carry Docker's wording (`invalid reference format`, `… must be lowercase`).

use std::fmt;

use crate::digest::Digest;

pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const MAX_NAME_LEN: usize = 255;

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference format")]
    Format,
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexName(String),
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    #[error("repository name must have at least one component")]
    NameEmpty,
    #[error("invalid tag format")]
    Tag,
    #[error("invalid digest format")]
    Digest,
}

impl crate::error::Classify for ReferenceError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::InvalidArgument
    }
}

impl Reference {
    /// Parses a reference as the docker CLI and daemon do, filling in `docker.io` and `library/`.
    /// No tag is added; see [`Reference::with_default_tag`].
    pub fn parse_normalized(s: &str) -> Result<Self, ReferenceError> {
        if crate::id::is_full_hex_id(s) {
            return Err(ReferenceError::HexName(s.to_owned()));
        }
        // Split the name from the tag/digest first: a ':' after the last '/' starts a tag.
        let (name_part, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(d.parse::<Digest>().map_err(|_| ReferenceError::Digest)?)),
            None => (s, None),
        };
        let (name, tag) = match name_part.rfind(':') {
            Some(i) if !name_part[i + 1..].contains('/') => (&name_part[..i], Some(name_part[i + 1..].to_owned())),
            _ => (name_part, None),
        };
        if name.is_empty() {
            return Err(ReferenceError::Format);
        }
        let (domain, mut remainder) = split_docker_domain(name);
        if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
            remainder = format!("{OFFICIAL_REPO_PREFIX}{remainder}");
        }
        if remainder.to_lowercase() != remainder {
            return Err(ReferenceError::Uppercase(remainder));
        }
        if !valid_domain(&domain) || !valid_path(&remainder) {
            return Err(ReferenceError::Format);
        }
        if domain.len() + 1 + remainder.len() > MAX_NAME_LEN {
            return Err(ReferenceError::NameTooLong);
        }
        if let Some(t) = &tag
            && !valid_tag(t)
        {
            return Err(ReferenceError::Format);
        }
        Ok(Self { domain, path: remainder, tag, digest })
    }

    /// Adds `latest` when neither a tag nor a digest was given (Docker's `TagNameOnly`).
    pub fn with_default_tag(mut self) -> Self {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some("latest".to_owned());
        }
        self
    }

    /// A copy with this tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        if !valid_tag(tag) {
            return Err(ReferenceError::Tag);
        }
        Ok(Self { tag: Some(tag.to_owned()), digest: None, ..self.clone() })
    }

    /// A copy with this digest and no tag (`name@digest`).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self { tag: None, digest: Some(digest), ..self.clone() }
    }

    /// The registry host (and port), e.g. `docker.io` or `127.0.0.1:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the registry, e.g. `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The full repository name, `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The short repository name users type: `busybox`, `foo/bar`, `127.0.0.1:5000/x`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_owned(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        }
    }

    /// `busybox:latest`, `foo/bar@sha256:…`: what `docker images` shows.
    pub fn familiar(&self) -> String {
        self.render(&self.familiar_name())
    }

    fn render(&self, name: &str) -> String {
        let mut s = name.to_owned();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&self.name()))
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_normalized(s)
    }
}

fn split_docker_domain(name: &str) -> (String, String) {
    let (mut domain, remainder) = match name.find('/') {
        Some(i) => {
            let first = &name[..i];
            let looks_like_host = first.contains(['.', ':']) || first == "localhost" || first.to_lowercase() != first;
            if looks_like_host {
                (first.to_owned(), name[i + 1..].to_owned())
            } else {
                (DEFAULT_DOMAIN.to_owned(), name.to_owned())
            }
        }
        None => (DEFAULT_DOMAIN.to_owned(), name.to_owned()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_owned();
    }
    (domain, remainder)
}

fn valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        // [IPv6]:port
        let Some(end) = rest.find(']') else {
            return false;
        };
        let ip = &rest[..end];
        if ip.is_empty() || !ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return false;
        }
        let after = &rest[end + 1..];
        return match after.strip_prefix(':') {
            Some(p) => !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()),
            None => after.is_empty(),
        };
    } else {
        match domain.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    !host.is_empty()
        && host.split('.').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        })
}

fn valid_path(path: &str) -> bool {
    !path.is_empty() && path.split('/').all(valid_path_component)
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() {
        return false;
    }
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        // a separator
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
    }
}

/// `[\w][\w.-]{0,127}`
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty() && b.len() <= 128 && word(b[0]) && b[1..].iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

/// The index a search term names and the term to send it, as moby splits them: the first
/// component when it looks like a host (`.`, `:` or `localhost`), else Docker Hub's index.
pub fn split_search_term(term: &str) -> (&str, &str) {
    match term.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => (host, rest),
        _ => ("docker.io", term),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms_name_their_index() {
        assert_eq!(split_search_term("busybox"), ("docker.io", "busybox"));
        assert_eq!(split_search_term("library/busybox"), ("docker.io", "library/busybox"));
        assert_eq!(split_search_term("127.0.0.1:5000/tools/x"), ("127.0.0.1:5000", "tools/x"));
        assert_eq!(split_search_term("localhost/x"), ("localhost", "x"));
    }

    fn norm(s: &str) -> String {
        Reference::parse_normalized(s).unwrap().with_default_tag().to_string()
    }

    #[test]
    fn docker_normalisation() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("foo/bar"), "docker.io/foo/bar:latest");
        assert_eq!(norm("index.docker.io/foo"), "docker.io/library/foo:latest");
        assert_eq!(norm("docker.io/library/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("localhost/x"), "localhost/x:latest");
        assert_eq!(norm("127.0.0.1:5000/spy/built:v1"), "127.0.0.1:5000/spy/built:v1");
        assert_eq!(norm("[::1]:5000/a"), "[::1]:5000/a:latest");
        assert_eq!(norm("a__b/c-d--e/f.g_h"), "docker.io/a__b/c-d--e/f.g_h:latest");
    }

    #[test]
    fn digest_references_get_no_default_tag() {
        let d = format!("sha256:{}", "1".repeat(64));
        let r = Reference::parse_normalized(&format!("busybox@{d}")).unwrap().with_default_tag();
        assert_eq!(r.tag(), None);
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{d}"));
        assert_eq!(r.familiar(), format!("busybox@{d}"));
        let both = Reference::parse_normalized(&format!("reg:5000/x:v1@{d}")).unwrap();
        assert_eq!(both.tag(), Some("v1"));
        assert_eq!(both.digest().unwrap().to_string(), d);
    }

    #[test]
    fn familiar_names() {
        let f = |s: &str| Reference::parse_normalized(s).unwrap().with_default_tag().familiar();
        assert_eq!(f("docker.io/library/busybox"), "busybox:latest");
        assert_eq!(f("docker.io/foo/bar:1"), "foo/bar:1");
        assert_eq!(f("docker.io/library/a/b"), "library/a/b:latest");
        assert_eq!(f("127.0.0.1:5000/x"), "127.0.0.1:5000/x:latest");
    }

    #[test]
    fn docker_errors() {
        let e = |s: &str| Reference::parse_normalized(s).unwrap_err().to_string();
        assert_eq!(e("Busybox"), "invalid reference format: repository name (library/Busybox) must be lowercase");
        assert_eq!(e("foo/Bar"), "invalid reference format: repository name (foo/Bar) must be lowercase");
        assert_eq!(
            e(&"a".repeat(64)),
            format!("invalid repository name ({}), cannot specify 64-byte hexadecimal strings", "a".repeat(64))
        );
        assert_eq!(e("busybox:"), "invalid reference format");
        assert_eq!(e("busy box"), "invalid reference format");
        assert_eq!(e("-busybox"), "invalid reference format");
        assert_eq!(e("busybox:-x"), "invalid reference format");
        assert_eq!(e("a//b"), "invalid reference format");
        assert_eq!(e(""), "invalid reference format");
        assert_eq!(e("a/../b"), "invalid reference format");
        assert_eq!(e("x@sha256:123"), "invalid digest format");
        assert_eq!(
            e(&format!("{}/{}", "a".repeat(200), "b".repeat(100))),
            "repository name must not be more than 255 characters"
        );
        // An uppercase first component is a host name, which may be uppercase; the path may not.
        assert_eq!(norm("Example.com/x"), "Example.com/x:latest");
    }

    #[test]
    fn tag_rules() {
        assert!(valid_tag("v1.2-rc_3"));
        assert!(valid_tag("_x"));
        assert!(!valid_tag(".x"));
        assert!(!valid_tag(&"a".repeat(129)));
        assert!(valid_tag(&"a".repeat(128)));
    }
}
