//! Query strings as Docker clients send them: repeated keys (`t=a&t=b`), booleans as
//! `1|true|True|0|false|False`, JSON-encoded maps and filters.

use axum::extract::FromRequestParts;
use http::request::Parts;
use wharf_types::Filters;

use crate::error::ApiError;

/// All query pairs in order.
#[derive(Debug, Clone, Default)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(raw: &str) -> Self {
        Self(form_urlencoded(raw))
    }

    /// The last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value given for `key`, in order.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    /// Docker's boolean: absent or empty → `default`; `0`, `false`, `False`… → false; else true.
    pub fn bool(&self, key: &str, default: bool) -> bool {
        match self.get(key) {
            None | Some("") => default,
            Some(v) => !matches!(v.to_ascii_lowercase().as_str(), "0" | "false" | "no" | "off"),
        }
    }

    /// An integer parameter, 400 with the parameter named when it is not a number.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .map(Some)
                .map_err(|_| ApiError::invalid(format!("invalid value for {key}: {v:?}: must be an integer"))),
        }
    }

    /// The `filters` parameter.
    pub fn filters(&self) -> Result<Filters, ApiError> {
        Ok(Filters::parse(self.get("filters").unwrap_or(""))?)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::parse(parts.uri.query().unwrap_or("")))
    }
}

fn form_urlencoded(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_and_decoding() {
        let q = Query::parse("t=spy%2Fbuilt%3Av1&t=b&buildargs=%7B%22A%22%3A%221%22%7D&x=a+b&bad=%zz&end=%4");
        assert_eq!(q.all("t"), vec!["spy/built:v1", "b"]);
        assert_eq!(q.get("buildargs"), Some(r#"{"A":"1"}"#));
        assert_eq!(q.get("x"), Some("a b"));
        assert_eq!(q.get("bad"), Some("%zz"));
        assert_eq!(q.get("end"), Some("%4"));
    }

    #[test]
    fn docker_booleans() {
        let q = Query::parse("a=1&b=True&c=0&d=False&e=&f=true");
        assert!(q.bool("a", false));
        assert!(q.bool("b", false));
        assert!(!q.bool("c", true));
        assert!(!q.bool("d", true));
        assert!(q.bool("e", true));
        assert!(q.bool("f", false));
        assert!(!q.bool("missing", false));
    }

    #[test]
    fn ints() {
        let q = Query::parse("t=10&u=x");
        assert_eq!(q.int("t").unwrap(), Some(10));
        assert!(q.int("u").is_err());
        assert_eq!(q.int("v").unwrap(), None);
    }
}
