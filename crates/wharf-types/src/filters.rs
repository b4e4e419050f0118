//! Docker's filter arguments. Clients send them as JSON in one of two shapes, both accepted:
//! `{"label":{"a=b":true}}` (the docker CLI) and `{"label":["a=b"]}` (docker-py, older clients).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::error::{EngineError, ErrorKind};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(BTreeMap<String, BTreeSet<String>>);

impl Filters {
    /// Parses the `filters` query parameter. An empty string means no filters.
    pub fn parse(json: &str) -> Result<Self, EngineError> {
        let mut out = BTreeMap::new();
        if json.trim().is_empty() {
            return Ok(Self(out));
        }
        let bad = || EngineError::invalid(format!("invalid filter: {json}"));
        let value: Value = serde_json::from_str(json).map_err(|_| bad())?;
        let Value::Object(map) = value else {
            return Err(bad());
        };
        for (key, values) in map {
            let set: &mut BTreeSet<String> = out.entry(key).or_default();
            match values {
                Value::Object(m) => {
                    for (v, on) in m {
                        if on != Value::Bool(false) {
                            set.insert(v);
                        }
                    }
                }
                Value::Array(items) => {
                    for v in items {
                        match v {
                            Value::String(s) => {
                                set.insert(s);
                            }
                            _ => return Err(bad()),
                        }
                    }
                }
                Value::String(s) => {
                    set.insert(s);
                }
                _ => return Err(bad()),
            }
        }
        Ok(Self(out))
    }

    /// Adds one value (used by clients building filters, and in tests).
    pub fn add(&mut self, key: &str, value: &str) {
        self.0.entry(key.to_owned()).or_default().insert(value.to_owned());
    }

    /// Rejects keys outside `allowed` with Docker's `invalid filter 'x'` (400).
    pub fn validate(&self, allowed: &[&str]) -> Result<(), EngineError> {
        for key in self.0.keys() {
            if !allowed.contains(&key.as_str()) {
                return Err(EngineError::new(ErrorKind::InvalidArgument, format!("invalid filter '{key}'")));
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when the key was given at all.
    pub fn contains(&self, key: &str) -> bool {
        self.0.get(key).is_some_and(|s| !s.is_empty())
    }

    /// The values given for a key.
    pub fn get(&self, key: &str) -> impl Iterator<Item = &str> {
        self.0.get(key).into_iter().flat_map(|s| s.iter().map(String::as_str))
    }

    /// True when the key is absent, or one of its values equals `value`.
    pub fn exact_match(&self, key: &str, value: &str) -> bool {
        match self.0.get(key) {
            None => true,
            Some(set) if set.is_empty() => true,
            Some(set) => set.contains(value),
        }
    }

    /// True when the key is absent, or any value passes `pred`.
    pub fn any(&self, key: &str, mut pred: impl FnMut(&str) -> bool) -> bool {
        match self.0.get(key) {
            None => true,
            Some(set) if set.is_empty() => true,
            Some(set) => set.iter().any(|v| pred(v)),
        }
    }

    /// Docker's label filter: every `label` value (`key` or `key=value`) must be present
    /// on the object. `label!=` values must not match.
    pub fn match_labels(&self, labels: &BTreeMap<String, String>) -> bool {
        let has = |spec: &str| match spec.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(spec),
        };
        self.get("label").all(has) && !self.get("label!").any(has)
    }

    /// Parses a boolean filter value (`dangling=true`) with Docker's wording on failure.
    pub fn bool_value(&self, key: &str) -> Result<Option<bool>, EngineError> {
        let mut result = None;
        for v in self.get(key) {
            let b = match v.to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(EngineError::invalid(format!(
                        "invalid filter '{key}={v}': value must be either 'true' or 'false'"
                    )));
                }
            };
            result = Some(b);
        }
        Ok(result)
    }

    /// Serialises in the CLI's form, `{"key":{"value":true}}`.
    pub fn to_json(&self) -> String {
        let map: serde_json::Map<String, Value> = self
            .0
            .iter()
            .map(|(k, vs)| (k.clone(), Value::Object(vs.iter().map(|v| (v.clone(), Value::Bool(true))).collect())))
            .collect();
        Value::Object(map).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_parse_the_same() {
        let a = Filters::parse(r#"{"label":{"a=b":true},"type":{"container":true}}"#).unwrap();
        let b = Filters::parse(r#"{"label":["a=b"],"type":["container"]}"#).unwrap();
        assert_eq!(a, b);
        assert!(a.exact_match("type", "container"));
        assert!(!a.exact_match("type", "image"));
        assert!(a.exact_match("event", "anything"));
    }

    #[test]
    fn malformed_filters_are_invalid_argument() {
        for bad in ["{", "[1]", r#"{"a":1}"#, r#"{"a":[1]}"#] {
            assert_eq!(Filters::parse(bad).unwrap_err().kind, ErrorKind::InvalidArgument, "{bad}");
        }
        assert!(Filters::parse("").unwrap().is_empty());
    }

    #[test]
    fn validate_names_the_bad_key() {
        let f = Filters::parse(r#"{"nope":["x"]}"#).unwrap();
        assert_eq!(f.validate(&["label"]).unwrap_err().message, "invalid filter 'nope'");
    }

    #[test]
    fn labels() {
        let labels: BTreeMap<String, String> = [("a".into(), "b".into()), ("c".into(), "".into())].into();
        let f = |s: &str| Filters::parse(s).unwrap().match_labels(&labels);
        assert!(f(r#"{"label":["a=b"]}"#));
        assert!(f(r#"{"label":["a"]}"#));
        assert!(f(r#"{"label":["a","c"]}"#));
        assert!(!f(r#"{"label":["a=c"]}"#));
        assert!(!f(r#"{"label":["x"]}"#));
        assert!(!f(r#"{"label!":["a=b"]}"#));
    }

    #[test]
    fn round_trip_json() {
        let f = Filters::parse(r#"{"label":["a=b"]}"#).unwrap();
        assert_eq!(Filters::parse(&f.to_json()).unwrap(), f);
    }
}
