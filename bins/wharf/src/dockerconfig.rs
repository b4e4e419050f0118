//! The docker CLI's `config.json` (`$DOCKER_CONFIG`, else `~/.docker`): the settings the container
//! commands read (`detachKeys`, `psFormat`, `statsFormat`, `proxies`) and registry credentials for
//! `X-Registry-Auth` (`auths`, `credsStore`, `credHelpers`).

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use base64::Engine;
use serde::Deserialize;

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

impl ConfigFile {
    /// `X-Registry-Auth` for a registry domain: base64url of the auth config, `e30=` (`{}`)
    /// when there are no credentials.
    pub fn registry_auth(&self, domain: &str) -> String {
        let key = auth_key(domain);
        let mut doc = serde_json::Map::new();
        let helper = self
            .cred_helpers
            .get(&key)
            .or_else(|| self.cred_helpers.get(domain))
            .cloned()
            .or_else(|| (!self.creds_store.is_empty()).then(|| self.creds_store.clone()));
        let mut found = false;
        if let Some(h) = helper
            && let Some((user, secret)) = helper_get(&h, &key)
        {
            if user == "<token>" {
                doc.insert("identitytoken".into(), secret.into());
            } else {
                doc.insert("username".into(), user.into());
                doc.insert("password".into(), secret.into());
            }
            found = true;
        }
        if !found {
            let entry = self
                .auths
                .get(&key)
                .or_else(|| self.auths.iter().find(|(k, _)| strip_scheme(k) == strip_scheme(&key)).map(|(_, v)| v));
            if let Some(e) = entry {
                let (mut user, mut pass) = (e.username.clone(), e.password.clone());
                if !e.auth.is_empty()
                    && let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(&e.auth)
                    && let Some((u, p)) = String::from_utf8_lossy(&raw).split_once(':')
                {
                    user = u.to_owned();
                    pass = p.to_owned();
                }
                if !user.is_empty() {
                    doc.insert("username".into(), user.into());
                }
                if !pass.is_empty() {
                    doc.insert("password".into(), pass.into());
                }
                if !e.identity_token.is_empty() {
                    doc.insert("identitytoken".into(), e.identity_token.clone().into());
                }
                found = !doc.is_empty();
            }
        }
        if found {
            doc.insert("serveraddress".into(), key.into());
        }
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

/// `docker-credential-<helper> get`.
fn helper_get(helper: &str, server: &str) -> Option<(String, String)> {
    let mut child = std::process::Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(server.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some((v.get("Username")?.as_str()?.to_owned(), v.get("Secret")?.as_str()?.to_owned()))
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
