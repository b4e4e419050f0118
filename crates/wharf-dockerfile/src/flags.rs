//! Instruction flags (`--from=x`, `--link`, `--mount=…` repeated) with BuildKit's `BFlags`
//! rules: bool flags take no value or `=true`/`=false`; string flags need `=value`; strings
//! flags may repeat; everything else may appear once; `--` ends the flags.

use std::collections::BTreeMap;

use crate::suggest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagType {
    Bool,
    String,
    Strings,
}

#[derive(Debug, Default)]
pub(crate) struct FlagValues {
    values: BTreeMap<&'static str, Vec<String>>,
    bools: BTreeMap<&'static str, bool>,
    /// Names of the flags given, in order of first use.
    pub used: Vec<String>,
}

impl FlagValues {
    pub fn string(&self, name: &str) -> Option<String> {
        self.values.get(name).and_then(|v| v.last().cloned())
    }
    pub fn strings(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }
    /// `None` when the flag was not given.
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.bools.get(name).copied()
    }
    pub fn is_used(&self, name: &str) -> bool {
        self.used.iter().any(|u| u == name)
    }
}

pub(crate) fn parse_flags(args: &[String], defs: &[(&'static str, FlagType)]) -> Result<FlagValues, String> {
    let mut out = FlagValues::default();
    for a in args {
        if a == "--" {
            break;
        }
        let Some(body) = a.strip_prefix("--") else {
            return Err(format!("arg should start with -- : {a}"));
        };
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let flag_name = format!("--{name}");
        let Some(&(key, typ)) = defs.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = defs.iter().map(|(n, _)| *n).collect();
            return Err(suggest::wrap(format!("unknown flag: {flag_name}"), name, &names, true));
        };
        if out.is_used(key) && typ != FlagType::Strings {
            return Err(format!("duplicate flag specified: {flag_name}"));
        }
        if !out.is_used(key) {
            out.used.push(key.to_string());
        }
        match typ {
            FlagType::Bool => {
                if value == Some("") {
                    return Err(format!("missing a value on flag: {flag_name}"));
                }
                let v = match value.map(str::to_ascii_lowercase).as_deref() {
                    None | Some("true") => true,
                    Some("false") => false,
                    Some(_) => {
                        return Err(format!(
                            "expecting boolean value for flag {flag_name}, not: {}",
                            value.unwrap_or_default()
                        ));
                    }
                };
                out.bools.insert(key, v);
            }
            FlagType::String | FlagType::Strings => {
                let Some(v) = value else {
                    return Err(format!("missing a value on flag: {flag_name}"));
                };
                out.values.entry(key).or_default().push(v.to_string());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFS: &[(&str, FlagType)] =
        &[("from", FlagType::String), ("link", FlagType::Bool), ("exclude", FlagType::Strings)];

    fn p(args: &[&str]) -> Result<FlagValues, String> {
        parse_flags(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>(), DEFS)
    }

    #[test]
    fn values() {
        let f = p(&["--from=a", "--link", "--exclude=x", "--exclude=y"]).unwrap();
        assert_eq!(f.string("from").as_deref(), Some("a"));
        assert_eq!(f.bool("link"), Some(true));
        assert_eq!(f.strings("exclude"), vec!["x", "y"]);
        assert_eq!(p(&["--link=FALSE"]).unwrap().bool("link"), Some(false));
    }

    #[test]
    fn errors() {
        assert_eq!(p(&["--form=a"]).err().unwrap(), "unknown flag: --form (did you mean from?)");
        assert_eq!(p(&["--chown=a"]).err().unwrap(), "unknown flag: --chown");
        assert_eq!(p(&["--from"]).err().unwrap(), "missing a value on flag: --from");
        assert_eq!(p(&["--link="]).err().unwrap(), "missing a value on flag: --link");
        assert_eq!(p(&["--link=maybe"]).err().unwrap(), "expecting boolean value for flag --link, not: maybe");
        assert_eq!(p(&["--from=a", "--from=b"]).err().unwrap(), "duplicate flag specified: --from");
    }
}
