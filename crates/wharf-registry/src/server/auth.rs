//! Server-side authentication: htpasswd (bcrypt) Basic auth, and an optional built-in token
//! service issuing signed bearer tokens.
//!
//! Token mode (`--token-realm URL`): the registry answers unauthenticated requests with
//! `401` + `WWW-Authenticate: Bearer realm="URL",service="wharf-registry",scope="repository:x:pull"`.
//! The realm is served by this same process at `/token`:
//! - `GET /token?service=&scope=…[&offline_token=true]` with Basic credentials (checked against
//!   the htpasswd file; without one, anyone gets a token),
//! - `POST /token` with a form: `grant_type=password` (`username`, `password`) or
//!   `grant_type=refresh_token` (`refresh_token`), plus `service`, `scope` (space-separated),
//!   `client_id`, `access_type=offline` for a refresh token.
//!
//! A token is `base64url(claims JSON) "." base64url(HMAC-SHA256(key, first part))`, where the
//! claims carry `sub`, `aud` (the service), `exp`, `kind` (`access` or `refresh`) and the granted
//! `access` list (`{type,name,actions}`). An authenticated user is granted every action it asks
//! for; the key is random per process unless given, so tokens die with the process.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use wharf_types::{Classify, ErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("read htpasswd file {path}")]
    ReadHtpasswd {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("htpasswd file {path}, line {line}: only bcrypt entries (htpasswd -B) are supported")]
    HtpasswdEntry { path: PathBuf, line: usize },
    #[error("read token key {path}")]
    ReadKey {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Classify for AuthError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }
}

/// Users and bcrypt hashes from an `htpasswd -B` file.
#[derive(Debug, Default)]
pub struct Htpasswd {
    users: HashMap<String, String>,
    /// sha256(user ":" password) of credentials already verified: bcrypt is slow on purpose, and
    /// a pull sends the same credentials dozens of times.
    verified: Mutex<HashSet<[u8; 32]>>,
}

impl Htpasswd {
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| AuthError::ReadHtpasswd { path: path.to_owned(), source })?;
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once(':') {
                Some((u, h)) if h.starts_with("$2") => {
                    users.insert(u.to_owned(), h.to_owned());
                }
                _ => {
                    return Err(AuthError::HtpasswdEntry { path: path.to_owned(), line: i + 1 });
                }
            }
        }
        Ok(Self { users, verified: Mutex::default() })
    }

    pub fn verify(&self, user: &str, password: &str) -> bool {
        let key: [u8; 32] = Sha256::digest(format!("{user}:{password}")).into();
        if self.verified.lock().expect("poisoned").contains(&key) {
            return true;
        }
        let ok = self.users.get(user).is_some_and(|h| bcrypt::verify(password, h).unwrap_or(false));
        if ok {
            self.verified.lock().expect("poisoned").insert(key);
        }
        ok
    }
}

/// `user:password` from an `Authorization: Basic …` header value.
pub fn parse_basic(value: &str) -> Option<(String, String)> {
    let b64 = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic "))?;
    let raw = STANDARD.decode(b64.trim()).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// One access entry: `repository:foo/bar:pull,push` or `registry:catalog:*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl Access {
    pub fn repository(name: &str, actions: &[&str]) -> Self {
        Self {
            kind: "repository".to_owned(),
            name: name.to_owned(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    pub fn catalog() -> Self {
        Self { kind: "registry".to_owned(), name: "catalog".to_owned(), actions: vec!["*".to_owned()] }
    }

    /// Parses a scope string. The name may contain ':' only in a registry host, which is never
    /// in a repository scope, so the first and last ':' split it.
    pub fn parse_scope(s: &str) -> Option<Self> {
        let (kind, rest) = s.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        Some(Self {
            kind: kind.to_owned(),
            name: name.to_owned(),
            actions: actions.split(',').filter(|a| !a.is_empty()).map(str::to_owned).collect(),
        })
    }

    pub fn scope(&self) -> String {
        format!("{}:{}:{}", self.kind, self.name, self.actions.join(","))
    }

    fn covers(&self, want: &Access) -> bool {
        self.kind == want.kind
            && self.name == want.name
            && want.actions.iter().all(|a| self.actions.iter().any(|g| g == a || g == "*"))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    iat: u64,
    kind: String,
    #[serde(default)]
    access: Vec<Access>,
}

/// The built-in token service and verifier.
#[derive(Debug)]
pub struct TokenAuth {
    pub realm: String,
    pub service: String,
    pub ttl: Duration,
    key: Vec<u8>,
    pub htpasswd: Option<Htpasswd>,
}

/// What the token endpoint answers.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub token: String,
    pub access_token: String,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// Why a bearer token was refused.
pub enum TokenRejection {
    /// No usable token: authenticate first.
    Missing,
    /// A valid token without the needed access.
    InsufficientScope,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl TokenAuth {
    /// `key_file`: a file whose bytes are the HMAC key; a random key when absent.
    pub fn new(
        realm: String,
        service: String,
        ttl: Duration,
        key_file: Option<&Path>,
        htpasswd: Option<Htpasswd>,
    ) -> Result<Self, AuthError> {
        let key = match key_file {
            Some(p) => std::fs::read(p).map_err(|source| AuthError::ReadKey { path: p.to_owned(), source })?,
            None => {
                let mut k = vec![0u8; 32];
                getrandom::fill(&mut k).expect("the OS has randomness");
                k
            }
        };
        Ok(Self { realm, service, ttl, key, htpasswd })
    }

    /// True when these credentials may get tokens (anyone may when there is no htpasswd).
    pub fn check_user(&self, creds: Option<&(String, String)>) -> Option<String> {
        match (&self.htpasswd, creds) {
            (None, c) => Some(c.map(|c| c.0.clone()).unwrap_or_default()),
            (Some(h), Some((u, p))) if h.verify(u, p) => Some(u.clone()),
            _ => None,
        }
    }

    fn sign(&self, claims: &Claims) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialise"));
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("hmac takes any key");
        mac.update(body.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{body}.{sig}")
    }

    fn verify(&self, token: &str) -> Option<Claims> {
        let (body, sig) = token.split_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("hmac takes any key");
        mac.update(body.as_bytes());
        mac.verify_slice(&sig).ok()?;
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        (claims.exp > now_secs() && claims.aud == self.service).then_some(claims)
    }

    /// Issues an access token for `user` with the requested scopes (and a refresh token when
    /// `offline`).
    pub fn issue(&self, user: &str, scopes: &[Access], offline: bool) -> TokenResponse {
        let now = now_secs();
        let known = ["pull", "push", "delete", "*"];
        let access = scopes
            .iter()
            .map(|a| Access {
                actions: a.actions.iter().filter(|x| known.contains(&x.as_str())).cloned().collect(),
                ..a.clone()
            })
            .collect();
        let claims = Claims {
            iss: "wharf-registry".to_owned(),
            sub: user.to_owned(),
            aud: self.service.clone(),
            exp: now + self.ttl.as_secs().max(1),
            iat: now,
            kind: "access".to_owned(),
            access,
        };
        let token = self.sign(&claims);
        let refresh_token = offline.then(|| {
            self.sign(&Claims {
                exp: now + 30 * 24 * 3600,
                kind: "refresh".to_owned(),
                access: Vec::new(),
                ..claims.clone()
            })
        });
        TokenResponse { access_token: token.clone(), token, expires_in: self.ttl.as_secs().max(1), refresh_token }
    }

    /// The user a refresh token was issued to.
    pub fn check_refresh(&self, token: &str) -> Option<String> {
        self.verify(token).filter(|c| c.kind == "refresh").map(|c| c.sub)
    }

    /// Checks a bearer token against the access a request needs.
    pub fn authorize(&self, header: Option<&str>, need: &[Access]) -> Result<(), TokenRejection> {
        let token = header
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .ok_or(TokenRejection::Missing)?;
        let claims = self.verify(token.trim()).filter(|c| c.kind == "access").ok_or(TokenRejection::Missing)?;
        if need.iter().all(|n| claims.access.iter().any(|g| g.covers(n))) {
            Ok(())
        } else {
            Err(TokenRejection::InsufficientScope)
        }
    }

    /// The `WWW-Authenticate` value for a request needing `need`.
    pub fn challenge(&self, need: &[Access], insufficient: bool) -> String {
        let mut c = format!("Bearer realm=\"{}\",service=\"{}\"", self.realm, self.service);
        if !need.is_empty() {
            let scopes: Vec<String> = need.iter().map(Access::scope).collect();
            c.push_str(&format!(",scope=\"{}\"", scopes.join(" ")));
        }
        if insufficient {
            c.push_str(",error=\"insufficient_scope\"");
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_sign_verify_and_scope() {
        let t = TokenAuth::new("http://x/token".into(), "svc".into(), Duration::from_secs(60), None, None).unwrap();
        let pull = Access::repository("a/b", &["pull"]);
        let push = Access::repository("a/b", &["pull", "push"]);
        let r = t.issue("u", std::slice::from_ref(&pull), true);
        let h = format!("Bearer {}", r.token);
        assert!(t.authorize(Some(&h), std::slice::from_ref(&pull)).is_ok());
        assert!(matches!(t.authorize(Some(&h), std::slice::from_ref(&push)), Err(TokenRejection::InsufficientScope)));
        let mut forged = r.token.clone();
        forged.push('x');
        assert!(t.authorize(Some(&format!("Bearer {forged}")), std::slice::from_ref(&pull)).is_err());
        assert_eq!(t.check_refresh(r.refresh_token.as_ref().unwrap()).as_deref(), Some("u"));
        assert!(t.check_refresh(&r.token).is_none());
        assert_eq!(Access::parse_scope("repository:a/b:pull,push"), Some(push.clone()));
        assert!(t.challenge(&[push], false).contains("scope=\"repository:a/b:pull,push\""));
    }
}
