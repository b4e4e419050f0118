//! Content digests: `algorithm:encoded`, as in the OCI image spec.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A validated content digest. Only `sha256` (64 hex) and `sha512` (128 hex) are accepted for
/// content we store; other registered algorithms are rejected with a clear message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("invalid checksum digest format")]
    Format,
    #[error("unsupported digest algorithm")]
    Algorithm,
    #[error("invalid checksum digest length")]
    Length,
}

impl Digest {
    /// A sha256 digest from its 64 lowercase hex digits.
    pub fn sha256_hex(hex: &str) -> Result<Self, DigestError> {
        Self::validate(Algorithm::Sha256, hex)
    }

    /// A sha256 digest from raw hash output.
    pub fn sha256_bytes(bytes: &[u8; 32]) -> Self {
        Self { algorithm: Algorithm::Sha256, hex: hex::encode(bytes) }
    }

    fn validate(algorithm: Algorithm, hex: &str) -> Result<Self, DigestError> {
        if hex.len() != algorithm.hex_len() {
            return Err(DigestError::Length);
        }
        if !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(DigestError::Format);
        }
        Ok(Self { algorithm, hex: hex.to_owned() })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded part (hex digits).
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex digits, as shown in progress lines and tables.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (algo, hex) = s.split_once(':').ok_or(DigestError::Format)?;
        if algo.is_empty() || hex.is_empty() {
            return Err(DigestError::Format);
        }
        let algorithm = match algo {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other if other.bytes().all(|b| b.is_ascii_alphanumeric() || b"+._-".contains(&b)) => {
                return Err(DigestError::Algorithm);
            }
            _ => return Err(DigestError::Format),
        };
        Self::validate(algorithm, hex)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let s = format!("sha256:{}", "ab".repeat(32));
        let d: Digest = s.parse().unwrap();
        assert_eq!(d.to_string(), s);
        assert_eq!(d.short(), "abababababab");
    }

    #[test]
    fn rejects_bad_digests() {
        assert_eq!("sha256".parse::<Digest>(), Err(DigestError::Format));
        assert_eq!("sha256:abc".parse::<Digest>(), Err(DigestError::Length));
        assert_eq!(format!("sha256:{}", "AB".repeat(32)).parse::<Digest>(), Err(DigestError::Format));
        assert_eq!(format!("md5:{}", "ab".repeat(16)).parse::<Digest>(), Err(DigestError::Algorithm));
        assert_eq!(format!("sha256:{}/..", "ab".repeat(31)).parse::<Digest>(), Err(DigestError::Length));
    }
}
