//! Volume names: what the local driver accepts (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at least two
//! characters) and the 64-hex names anonymous volumes get.

use std::fmt;

use serde::{Deserialize, Serialize};
pub use wharf_types::gostr::quote as go_quote;

/// A validated local volume name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VolumeName(String);

/// Why a name was refused (the text after `create <name>: `).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("volume name is too short, names should be at least two alphanumeric characters")]
    TooShort,
    #[error(
        "{} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path",
        go_quote(.0)
    )]
    InvalidCharacters(String),
}

impl VolumeName {
    /// Checks `name` as Docker's local driver does.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        if name.chars().count() == 1 {
            return Err(NameError::TooShort);
        }
        let mut bytes = name.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
        if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
            return Err(NameError::InvalidCharacters(name.to_owned()));
        }
        Ok(Self(name.to_owned()))
    }

    /// A fresh name for an anonymous volume (64 hex digits, as Docker's).
    pub fn generate() -> Self {
        Self(wharf_types::random_hex_id())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VolumeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_like_the_local_driver() {
        for ok in ["ab", "data", "my_vol.1-x", "0123456789abcdef", "A.B"] {
            assert!(VolumeName::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(VolumeName::parse("a").unwrap_err(), NameError::TooShort);
        for bad in ["", "-ab", ".ab", "_ab", "a/b", "a b", "a:b", "../x", "é1"] {
            assert!(matches!(VolumeName::parse(bad), Err(NameError::InvalidCharacters(_))), "{bad}");
        }
        assert_eq!(
            VolumeName::parse("x/y").unwrap_err().to_string(),
            "\"x/y\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        );
        let g = VolumeName::generate();
        assert_eq!(g.as_str().len(), 64);
        assert!(VolumeName::parse(g.as_str()).is_ok());
    }
}
