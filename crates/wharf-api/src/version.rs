//! API versions. Docker compares versions component by component (`1.9` < `1.24`), missing
//! components count as zero; we do the same.

use std::cmp::Ordering;
use std::fmt;

/// A `major.minor` API version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ApiVersion {
    pub major: u32,
    pub minor: u32,
}

impl ApiVersion {
    /// The newest version we speak; also what an unversioned path means.
    pub const MAX: ApiVersion = ApiVersion { major: 1, minor: 53 };
    /// The oldest version we accept.
    pub const MIN: ApiVersion = ApiVersion { major: 1, minor: 24 };

    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// True when this request speaks at least `major.minor`.
    pub fn at_least(self, major: u32, minor: u32) -> bool {
        self >= ApiVersion::new(major, minor)
    }
}

impl PartialOrd for ApiVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ApiVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor).cmp(&(other.major, other.minor))
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// What a `/v<x>/` prefix says about the request.
#[derive(Debug, PartialEq, Eq)]
pub enum PrefixCheck {
    Ok(ApiVersion),
    TooOld(String),
    TooNew(String),
}

/// Checks the version text of a `/v<text>/` prefix against the supported range, comparing as
/// moby's `versions.Compare` does. A text with more than two components (`1.24.1`) is compared
/// the same way and, when in range, treated as its first two.
pub fn check_prefix(text: &str) -> PrefixCheck {
    let parts: Vec<u64> = text.split('.').map(|p| p.parse::<u64>().unwrap_or(0)).collect();
    let cmp = |v: ApiVersion| -> Ordering {
        let other = [u64::from(v.major), u64::from(v.minor)];
        for i in 0..parts.len().max(2) {
            let a = parts.get(i).copied().unwrap_or(0);
            let b = other.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => continue,
                o => return o,
            }
        }
        Ordering::Equal
    };
    if cmp(ApiVersion::MIN) == Ordering::Less {
        return PrefixCheck::TooOld(text.to_owned());
    }
    if cmp(ApiVersion::MAX) == Ordering::Greater {
        return PrefixCheck::TooNew(text.to_owned());
    }
    let major = parts.first().copied().unwrap_or(0) as u32;
    let minor = parts.get(1).copied().unwrap_or(0) as u32;
    PrefixCheck::Ok(ApiVersion::new(major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_edges() {
        assert_eq!(check_prefix("1.24"), PrefixCheck::Ok(ApiVersion::new(1, 24)));
        assert_eq!(check_prefix("1.53"), PrefixCheck::Ok(ApiVersion::MAX));
        assert_eq!(check_prefix("1.50"), PrefixCheck::Ok(ApiVersion::new(1, 50)));
        assert_eq!(check_prefix("1.23"), PrefixCheck::TooOld("1.23".into()));
        assert_eq!(check_prefix("1.54"), PrefixCheck::TooNew("1.54".into()));
        assert_eq!(check_prefix("1.9"), PrefixCheck::TooOld("1.9".into()));
        assert_eq!(check_prefix("1"), PrefixCheck::TooOld("1".into()));
        assert_eq!(check_prefix("2"), PrefixCheck::TooNew("2".into()));
        assert_eq!(check_prefix("1.53.1"), PrefixCheck::TooNew("1.53.1".into()));
        assert_eq!(check_prefix("1.52.9"), PrefixCheck::Ok(ApiVersion::new(1, 52)));
    }

    #[test]
    fn ordering() {
        assert!(ApiVersion::new(1, 9) < ApiVersion::new(1, 24));
        assert!(ApiVersion::new(1, 52).at_least(1, 52));
        assert!(!ApiVersion::new(1, 51).at_least(1, 52));
    }
}
