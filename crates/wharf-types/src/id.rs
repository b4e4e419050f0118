//! Typed identifiers. An ID is 64 lowercase hex digits, displayed shortened to 12 in tables.

use std::fmt;

use serde::{Deserialize, Serialize};

/// 32 random bytes as 64 hex digits, as Docker's IDs are.
pub fn random_hex_id() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the kernel's random source is available");
    hex::encode(bytes)
}

/// True when `s` is exactly 64 lowercase hex digits.
pub fn is_full_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A new random ID.
            pub fn random() -> Self {
                Self(random_hex_id())
            }
            /// Wraps a string that must already be a full 64-hex ID.
            pub fn parse(s: &str) -> Option<Self> {
                is_full_hex_id(s).then(|| Self(s.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// The 12-digit form shown in tables.
            pub fn short(&self) -> &str {
                &self.0[..12]
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

hex_id!(
    /// A container's ID.
    ContainerId
);
hex_id!(
    /// An exec instance's ID.
    ExecId
);
hex_id!(
    /// A network's ID.
    NetworkId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_64_hex_and_distinct() {
        let a = ContainerId::random();
        let b = ContainerId::random();
        assert!(is_full_hex_id(a.as_str()));
        assert_ne!(a, b);
        assert_eq!(a.short().len(), 12);
    }

    #[test]
    fn parse_rejects_non_ids() {
        assert!(ContainerId::parse("abc").is_none());
        assert!(ContainerId::parse(&"A".repeat(64)).is_none());
        assert!(ContainerId::parse(&"a".repeat(64)).is_some());
    }
}
