//! `os/arch[/variant]` platforms, normalised as containerd's platforms package does.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\": unknown operating system or architecture: invalid argument")]
pub struct PlatformError(pub String);

impl crate::error::Classify for PlatformError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::InvalidArgument
    }
}

/// Go's GOARCH for the machine this was compiled for.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

impl Platform {
    /// The platform of this host (`linux/amd64` here).
    pub fn host() -> Self {
        let architecture = host_arch().to_owned();
        let variant = (architecture == "arm64").then(|| "v8".to_owned());
        Self { os: "linux".to_owned(), architecture, variant }
    }

    /// Parses `linux/amd64`, `amd64`, `linux/arm/v7`, with containerd's aliases
    /// (`x86_64`→`amd64`, `aarch64`→`arm64`).
    pub fn parse(s: &str) -> Result<Self, PlatformError> {
        let lower = s.to_lowercase();
        let parts: Vec<&str> = lower.split('/').collect();
        let bad = || PlatformError(s.to_owned());
        let (os, arch, variant) = match parts.as_slice() {
            [one] if known_os(one) => ((*one).to_owned(), host_arch().to_owned(), None),
            [one] => ("linux".to_owned(), (*one).to_owned(), None),
            [os, arch] => ((*os).to_owned(), (*arch).to_owned(), None),
            [os, arch, variant] => ((*os).to_owned(), (*arch).to_owned(), Some((*variant).to_owned())),
            _ => return Err(bad()),
        };
        if !known_os(&os) {
            return Err(bad());
        }
        let (architecture, variant) = normalize_arch(&arch, variant);
        if architecture.is_empty() {
            return Err(bad());
        }
        Ok(Self { os, architecture, variant })
    }

    /// True when an image for `self` runs on a host asking for `want` (variant-insensitive
    /// when either side leaves it out).
    pub fn matches(&self, want: &Platform) -> bool {
        self.os == want.os
            && self.architecture == want.architecture
            && match (&self.variant, &want.variant) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

fn known_os(os: &str) -> bool {
    matches!(
        os,
        "linux" | "windows" | "darwin" | "freebsd" | "netbsd" | "openbsd" | "solaris" | "illumos" | "aix" | "android"
    )
}

fn normalize_arch(arch: &str, variant: Option<String>) -> (String, Option<String>) {
    match arch {
        "i386" => ("386".into(), None),
        "x86_64" | "x86-64" | "amd64" => ("amd64".into(), variant.filter(|v| v != "v1")),
        "aarch64" | "arm64" => ("arm64".into(), variant.map(|v| if v == "8" { "v8".into() } else { v })),
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v6".into())),
        "arm" => ("arm".into(), Some(variant.unwrap_or_else(|| "v7".into()))),
        other => (other.to_owned(), variant),
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_normalise() {
        assert_eq!(Platform::parse("linux/amd64").unwrap().to_string(), "linux/amd64");
        assert_eq!(Platform::parse("linux/x86_64").unwrap().to_string(), "linux/amd64");
        assert_eq!(Platform::parse("linux/aarch64").unwrap().to_string(), "linux/arm64");
        assert_eq!(Platform::parse("linux/arm").unwrap().to_string(), "linux/arm/v7");
        assert_eq!(Platform::parse("arm64").unwrap().to_string(), "linux/arm64");
        assert!(Platform::parse("plan9/amd64").is_err());
        assert!(Platform::parse("a/b/c/d").is_err());
    }

    #[test]
    fn matching_ignores_missing_variant() {
        let img = Platform::parse("linux/arm64/v8").unwrap();
        assert!(img.matches(&Platform::parse("linux/arm64").unwrap()));
        assert!(!img.matches(&Platform::parse("linux/amd64").unwrap()));
    }
}
