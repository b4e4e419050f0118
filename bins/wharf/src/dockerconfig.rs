//! The docker CLI's `config.json` (`$DOCKER_CONFIG`, else `~/.docker`): the settings the container
//! commands read (`detachKeys`, `psFormat`, `statsFormat`, `proxies`) and registry credentials
//! (`auths`, `credsStore`, `credHelpers`), shared with the docker CLI.
//!
//! Credentials, as docker-cli keeps them: the server key is the registry host (`127.0.0.1:5000`)
//! or, for Docker Hub, `https://index.docker.io/v1/`. A key with a helper — `credHelpers[key]`,
//! else `credsStore` — lives in that helper ([`crate::credhelper`]); `auths[key]` then holds an
//! empty entry `{}` that only records the login (what `logout` looks for). A key without a
//! helper lives in `auths[key]` as `auth` = base64 `user:password` (plus `identitytoken`).
//! With a helper configured, `auths` credentials are not read for that key (docker's native
//! store does the same).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;

use base64::Engine;
use serde::Deserialize;

use crate::credhelper::{Helper, HelperCredentials, HelperError, TOKEN_USERNAME};

#[derive(Debug, Default, Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub auths: HashMap<String, AuthEntry>,
    #[serde(rename = "credsStore", default)]
    pub creds_store: String,
    #[serde(rename = "credHelpers", default)]
    pub cred_helpers: HashMap<String, String>,
    #[serde(rename = "detachKeys", default)]
    pub detach_keys: String,
    #[serde(rename = "psFormat", default)]
    pub ps_format: String,
    #[serde(rename = "statsFormat", default)]
    pub stats_format: String,
    #[serde(default)]
    pub proxies: HashMap<String, ProxyConfig>,
    #[serde(rename = "pruneFilters", default)]
    pub prune_filters: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AuthEntry {
    #[serde(default)]
    pub auth: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(rename = "identitytoken", default)]
    pub identity_token: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct ProxyConfig {
    #[serde(rename = "httpProxy", default)]
    pub http_proxy: String,
    #[serde(rename = "httpsProxy", default)]
    pub https_proxy: String,
    #[serde(rename = "noProxy", default)]
    pub no_proxy: String,
    #[serde(rename = "ftpProxy", default)]
    pub ftp_proxy: String,
    #[serde(rename = "allProxy", default)]
    pub all_proxy: String,
}

/// The directory holding `config.json`.
pub fn dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".docker")
}

/// Loads `config.json`; a missing file is an empty config, a broken one a warning (as docker).
pub fn load() -> ConfigFile {
    let path = dir().join("config.json");
    let Ok(data) = std::fs::read(&path) else {
        return ConfigFile::default();
    };
    match serde_json::from_slice(&data) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("WARNING: Error loading config file: {}: {e}", path.display());
            ConfigFile::default()
        }
    }
}

/// The key docker stores credentials under for a registry domain.
pub fn auth_key(domain: &str) -> String {
    if domain == "docker.io" || domain == "index.docker.io" || domain == "registry-1.docker.io" {
        "https://index.docker.io/v1/".into()
    } else {
        domain.to_owned()
    }
}

/// Credentials for one registry, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// A token the registry gave at login, used instead of the password.
    pub identity_token: String,
}

impl Credentials {
    pub fn is_empty(&self) -> bool {
        self.username.is_empty() && self.password.is_empty() && self.identity_token.is_empty()
    }

    /// Docker's `AuthConfig` JSON for `server` (empty fields left out).
    fn auth_config(&self, server: &str) -> serde_json::Map<String, serde_json::Value> {
        let mut doc = serde_json::Map::new();
        for (field, value) in
            [("username", &self.username), ("password", &self.password), ("identitytoken", &self.identity_token)]
        {
            if !value.is_empty() {
                doc.insert(field.into(), value.clone().into());
            }
        }
        if !doc.is_empty() {
            doc.insert("serveraddress".into(), server.into());
        }
        doc
    }
}

impl From<HelperCredentials> for Credentials {
    /// A helper's `<token>` user holds an identity token.
    fn from(c: HelperCredentials) -> Self {
        if c.username == TOKEN_USERNAME {
            Credentials { identity_token: c.secret, ..Default::default() }
        } else {
            Credentials { username: c.username, password: c.secret, ..Default::default() }
        }
    }
}

impl ConfigFile {
    /// The helper that holds `key`'s credentials: `credHelpers[key]`, else `credsStore`.
    pub fn helper_for(&self, key: &str) -> Option<Helper> {
        let name = self.cred_helpers.get(key).filter(|h| !h.is_empty()).unwrap_or(&self.creds_store);
        (!name.is_empty()).then(|| Helper::new(name))
    }

    /// The stored credentials for server key `key` (empty when there are none).
    pub fn credentials(&self, key: &str) -> Result<Credentials, HelperError> {
        if let Some(helper) = self.helper_for(key) {
            return match helper.get(key) {
                Ok(c) => Ok(c.into()),
                Err(HelperError::NotFound) => Ok(Credentials::default()),
                Err(e) => Err(e),
            };
        }
        let entry = self
            .auths
            .get(key)
            .or_else(|| self.auths.iter().find(|(k, _)| strip_scheme(k) == strip_scheme(key)).map(|(_, v)| v));
        let Some(e) = entry else {
            return Ok(Credentials::default());
        };
        let mut creds = Credentials {
            username: e.username.clone(),
            password: e.password.clone(),
            identity_token: e.identity_token.clone(),
        };
        if !e.auth.is_empty()
            && let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(&e.auth)
            && let Some((u, p)) = String::from_utf8_lossy(&raw).split_once(':')
        {
            creds.username = u.to_owned();
            creds.password = p.to_owned();
        }
        Ok(creds)
    }

    /// `X-Registry-Auth` for a registry domain: base64url of the auth config, `e30=` (`{}`)
    /// when there are no credentials. A failing helper means no credentials: docker's
    /// `ResolveAuthConfig` ignores the error too, and the registry's answer says the rest.
    pub fn registry_auth(&self, domain: &str) -> String {
        let key = auth_key(domain);
        let doc = self.credentials(&key).unwrap_or_default().auth_config(&key);
        base64::engine::general_purpose::URL_SAFE.encode(serde_json::Value::Object(doc).to_string())
    }

    /// Every stored login (docker's `GetAllCredentials`): `auths`, or the `credsStore`
    /// helper's `list` when one is set, then each `credHelpers` registry (those win; one that
    /// fails is left out with a warning).
    pub fn all_credentials(&self) -> Result<BTreeMap<String, Credentials>, HelperError> {
        let mut out = BTreeMap::new();
        if self.creds_store.is_empty() {
            for key in self.auths.keys() {
                out.insert(key.clone(), self.credentials(key)?);
            }
        } else {
            let store = Helper::new(&self.creds_store);
            for key in store.list()?.into_keys() {
                let creds = match store.get(&key) {
                    Ok(c) => c.into(),
                    Err(HelperError::NotFound) => continue,
                    Err(e) => return Err(e),
                };
                out.insert(key, creds);
            }
        }
        for key in self.cred_helpers.keys() {
            match self.credentials(key) {
                Ok(c) => {
                    out.insert(key.clone(), c);
                }
                Err(e) => eprintln!("WARNING: Failed to get credentials for registry {key}: {e}"),
            }
        }
        Ok(out)
    }

    /// `X-Registry-Config` for a build: base64url of `{server: AuthConfig}` for every login.
    /// A failing helper leaves them all out (`{}`), as docker's build ignores the error.
    pub fn registry_config(&self) -> String {
        let doc: serde_json::Map<String, serde_json::Value> = self
            .all_credentials()
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, c)| !c.is_empty())
            .map(|(k, c)| {
                let v = serde_json::Value::Object(c.auth_config(&k));
                (k, v)
            })
            .collect();
        base64::engine::general_purpose::URL_SAFE.encode(serde_json::Value::Object(doc).to_string())
    }

    /// `ParseProxyConfig`: proxy variables from the config for `host`, unless set by `-e`.
    pub fn proxy_env(&self, host: &str, env: &[String]) -> Vec<String> {
        let Some(p) = self.proxies.get(host).or_else(|| self.proxies.get("default")) else {
            return Vec::new();
        };
        let set: Vec<&str> = env.iter().map(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k)).collect();
        let mut out = Vec::new();
        for (val, names) in [
            (&p.http_proxy, ["HTTP_PROXY", "http_proxy"]),
            (&p.https_proxy, ["HTTPS_PROXY", "https_proxy"]),
            (&p.ftp_proxy, ["FTP_PROXY", "ftp_proxy"]),
            (&p.no_proxy, ["NO_PROXY", "no_proxy"]),
            (&p.all_proxy, ["ALL_PROXY", "all_proxy"]),
        ] {
            if val.is_empty() {
                continue;
            }
            for n in names {
                if !set.contains(&n) {
                    out.push(format!("{n}={val}"));
                }
            }
        }
        out
    }
}

fn strip_scheme(s: &str) -> &str {
    let s = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")).unwrap_or(s);
    s.split('/').next().unwrap_or(s)
}

/// Where [`store_credentials`] put them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredIn {
    /// In `config.json` itself (docker warns that this is unencrypted).
    File(PathBuf),
    /// In this credential helper program.
    Helper(String),
}

/// `config.json` as a JSON document: edits keep every key docker (or anyone) wrote.
fn read_document() -> serde_json::Value {
    std::fs::read(dir().join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|v: &serde_json::Value| v.is_object())
        .unwrap_or_else(|| serde_json::json!({}))
}

/// Writes config.json atomically (temp file, fsync, rename), mode 0600 as docker does.
fn write_document(v: &serde_json::Value) -> std::io::Result<()> {
    let dir = dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("config.json");
    let tmp = dir.join(format!(".config.json.{}", std::process::id()));
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    let mut f = std::fs::File::create(&tmp)?;
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)
}

/// The `auths` object of a config document, created when missing.
fn auths_mut(doc: &mut serde_json::Value) -> &mut serde_json::Map<String, serde_json::Value> {
    let obj = doc.as_object_mut().expect("read_document returns an object");
    let auths = obj.entry("auths").or_insert_with(|| serde_json::json!({}));
    if !auths.is_object() {
        *auths = serde_json::json!({});
    }
    auths.as_object_mut().expect("just made an object")
}

/// Saves `creds` for server key `key` (docker's `login`): in its helper when one is configured,
/// with an empty `auths[key]` entry recording the login; else in `auths[key]`.
pub fn store_credentials(key: &str, creds: &Credentials) -> Result<StoredIn, String> {
    let cfg = load();
    let mut doc = read_document();
    let (entry, stored) = match cfg.helper_for(key) {
        Some(helper) => {
            let (username, secret) = if creds.identity_token.is_empty() {
                (creds.username.clone(), creds.password.clone())
            } else {
                (TOKEN_USERNAME.to_owned(), creds.identity_token.clone())
            };
            helper
                .store(&HelperCredentials { server_url: key.to_owned(), username, secret })
                .map_err(|e| format!("Error saving credentials: {e}"))?;
            (serde_json::json!({}), StoredIn::Helper(helper.program().to_owned()))
        }
        None => {
            let auth =
                base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", creds.username, creds.password));
            let mut entry = serde_json::json!({ "auth": auth });
            if !creds.identity_token.is_empty() {
                entry["identitytoken"] = creds.identity_token.clone().into();
            }
            (entry, StoredIn::File(dir().join("config.json")))
        }
    };
    auths_mut(&mut doc).insert(key.to_owned(), entry);
    write_document(&doc).map_err(|e| format!("Error saving credentials: {e}"))?;
    Ok(stored)
}

/// What [`erase_credentials`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Erased {
    /// Whether `auths` recorded a login for the server (else: `Not logged in to …`).
    pub was_logged_in: bool,
    /// Helpers that failed to erase: docker's `WARNING: could not erase credentials: …`.
    pub warnings: Vec<String>,
}

/// Forgets the login for server key `key` (docker's `logout`): the `auths` entries naming that
/// server, and the credentials in their helper.
pub fn erase_credentials(key: &str) -> Result<Erased, String> {
    let cfg = load();
    let mut doc = read_document();
    let auths = auths_mut(&mut doc);
    let keys: Vec<String> =
        auths.keys().filter(|k| *k == key || strip_scheme(k) == strip_scheme(key)).cloned().collect();
    let mut out = Erased { was_logged_in: !keys.is_empty(), warnings: Vec::new() };
    if keys.is_empty() {
        return Ok(out);
    }
    for k in &keys {
        auths.remove(k);
        if let Some(helper) = cfg.helper_for(k) {
            match helper.erase(k) {
                Ok(()) | Err(HelperError::NotFound) => {}
                Err(e) => out.warnings.push(format!("WARNING: could not erase credentials: {k}: {e}")),
            }
        }
    }
    write_document(&doc).map_err(|e| format!("write {}: {e}", dir().join("config.json").display()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_auth_from_auths() {
        let c: ConfigFile = serde_json::from_str(
            r#"{"auths":{"127.0.0.1:5000":{"auth":"c3B5dXNlcjpzcHlwYXNz"}},"detachKeys":"ctrl-a,a"}"#,
        )
        .unwrap();
        let h = c.registry_auth("127.0.0.1:5000");
        let raw = base64::engine::general_purpose::URL_SAFE.decode(h).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(v, serde_json::json!({"username":"spyuser","password":"spypass","serveraddress":"127.0.0.1:5000"}));
        assert_eq!(c.registry_auth("docker.io"), "e30=");
        assert_eq!(c.detach_keys, "ctrl-a,a");
    }

    #[test]
    fn helpers_per_registry_win_over_the_store() {
        let c: ConfigFile =
            serde_json::from_str(r#"{"credsStore":"desktop","credHelpers":{"h:1":"pass","h:2":""}}"#).unwrap();
        assert_eq!(c.helper_for("h:1"), Some(Helper::new("pass")));
        assert_eq!(c.helper_for("h:2"), Some(Helper::new("desktop")));
        assert_eq!(c.helper_for("https://index.docker.io/v1/"), Some(Helper::new("desktop")));
        assert_eq!(ConfigFile::default().helper_for("h:1"), None);
    }

    #[test]
    fn registry_config_lists_every_login_in_auths() {
        let c: ConfigFile = serde_json::from_str(
            r#"{"auths":{"h:1":{"auth":"dTpw"},"h:2":{},"https://index.docker.io/v1/":{"auth":"eDp5","identitytoken":"t"}}}"#,
        )
        .unwrap();
        let raw = base64::engine::general_purpose::URL_SAFE.decode(c.registry_config()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "h:1": {"username": "u", "password": "p", "serveraddress": "h:1"},
                "https://index.docker.io/v1/": {
                    "username": "x", "password": "y", "identitytoken": "t",
                    "serveraddress": "https://index.docker.io/v1/"
                }
            })
        );
    }

    #[test]
    fn proxies() {
        let c: ConfigFile =
            serde_json::from_str(r#"{"proxies":{"default":{"httpProxy":"http://p:3128","noProxy":"localhost"}}}"#)
                .unwrap();
        assert_eq!(
            c.proxy_env("unix:///x", &["http_proxy=mine".into()]),
            vec!["HTTP_PROXY=http://p:3128", "NO_PROXY=localhost", "no_proxy=localhost"]
        );
    }
}
