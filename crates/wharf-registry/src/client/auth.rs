//! Registry authentication as the Docker daemon does it: ping `/v2/`, read the
//! `WWW-Authenticate` challenge, then send Basic credentials or fetch a bearer token for the
//! scopes a request needs (GET with Basic credentials, or POST with an identity/refresh token),
//! caching tokens per scope until shortly before they expire.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, header};
use serde::{Deserialize, Serialize};

use super::error::{ClientError, render_errors};
use super::transport::{ReqBody, Transport, read_body, read_errors};

/// Credentials as Docker's `AuthConfig` carries them (`X-Registry-Auth`, `POST /auth`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// base64 of `username:password`, as stored in `config.json`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub serveraddress: String,
    /// A refresh token from an earlier login: used with the OAuth2 POST.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identitytoken: String,
    /// A bearer token sent to the registry as is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub registrytoken: String,
}

impl AuthConfig {
    pub fn basic(username: &str, password: &str) -> Self {
        Self { username: username.to_owned(), password: password.to_owned(), ..Default::default() }
    }

    /// Decodes an `X-Registry-Auth` header: URL-safe base64 (padded or not), falling back to
    /// standard base64; empty or `e30=` means no credentials.
    pub fn from_header(value: &str) -> Option<Self> {
        let v = value.trim();
        if v.is_empty() {
            return Some(Self::default());
        }
        let raw = URL_SAFE
            .decode(v)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v.trim_end_matches('=')))
            .or_else(|_| STANDARD.decode(v))
            .ok()?;
        serde_json::from_slice(&raw).ok()
    }

    /// Username and password, from the fields or from `auth`.
    pub fn user_password(&self) -> Option<(String, String)> {
        if !self.username.is_empty() {
            return Some((self.username.clone(), self.password.clone()));
        }
        if self.auth.is_empty() {
            return None;
        }
        let raw = STANDARD.decode(self.auth.trim()).ok()?;
        let s = String::from_utf8(raw).ok()?;
        let (u, p) = s.split_once(':')?;
        Some((u.to_owned(), p.to_owned()))
    }

    pub fn is_empty(&self) -> bool {
        self.user_password().is_none() && self.identitytoken.is_empty() && self.registrytoken.is_empty()
    }

    /// `Basic <base64 user:password>`, when there is a username and password.
    pub(crate) fn basic_header(&self) -> Option<HeaderValue> {
        let (u, p) = self.user_password()?;
        HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(format!("{u}:{p}")))).ok()
    }

    /// A key telling credential sets apart in the token cache, without holding secrets.
    fn cache_key(&self) -> String {
        use sha2::Digest as _;
        let material = format!("{:?}|{}|{}", self.user_password(), self.identitytoken, self.registrytoken);
        hex::encode(&sha2::Sha256::digest(material)[..8])
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic {
        realm: String,
    },
    Bearer {
        realm: String,
        service: String,
        /// The scope the registry named, if any (e.g. on `insufficient_scope`).
        scope: Option<String>,
    },
}

/// Parses the first Basic or Bearer challenge among `WWW-Authenticate` headers.
pub fn parse_challenges(headers: &HeaderMap) -> Option<Challenge> {
    let mut basic = None;
    for v in headers.get_all(header::WWW_AUTHENTICATE) {
        let Ok(v) = v.to_str() else { continue };
        let (scheme, rest) = v.trim().split_once(' ').unwrap_or((v.trim(), ""));
        let params = parse_params(rest);
        let get = |k: &str| params.get(k).cloned().unwrap_or_default();
        match scheme.to_ascii_lowercase().as_str() {
            "bearer" => {
                return Some(Challenge::Bearer {
                    realm: get("realm"),
                    service: get("service"),
                    scope: params.get("scope").cloned(),
                });
            }
            "basic" if basic.is_none() => basic = Some(Challenge::Basic { realm: get("realm") }),
            _ => {}
        }
    }
    basic
}

/// `k="v", k2=v2` with quoted-string escapes; keys lowercased.
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b' ' || b[i] == b',') {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let key = s[ks..i].trim().to_ascii_lowercase();
        if i >= b.len() || b[i] != b'=' {
            continue;
        }
        i += 1;
        let mut val = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                let ch = s[i..].chars().next().expect("in bounds");
                val.push(ch);
                i += ch.len_utf8();
            }
            i += 1;
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            val = s[vs..i].trim().to_owned();
        }
        if !key.is_empty() {
            out.insert(key, val);
        }
    }
    out
}

#[derive(Deserialize)]
struct TokenBody {
    #[serde(default)]
    token: String,
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
}

/// A bearer token and, from a login, a refresh token to keep.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) token: String,
    pub(crate) refresh_token: Option<String>,
    valid_until: Instant,
}

/// Tokens by (realm, service, scopes, credentials).
#[derive(Default)]
pub(crate) struct TokenCache {
    tokens: Mutex<HashMap<String, Token>>,
}

fn cache_key(realm: &str, service: &str, scopes: &[String], creds: &AuthConfig) -> String {
    let mut s = scopes.to_vec();
    s.sort();
    s.dedup();
    format!("{realm}|{service}|{}|{}", s.join(" "), creds.cache_key())
}

impl TokenCache {
    pub(crate) fn get(&self, realm: &str, service: &str, scopes: &[String], creds: &AuthConfig) -> Option<String> {
        let key = cache_key(realm, service, scopes, creds);
        let mut map = self.tokens.lock().expect("poisoned");
        match map.get(&key) {
            Some(t) if t.valid_until > Instant::now() => Some(t.token.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    pub(crate) fn put(&self, realm: &str, service: &str, scopes: &[String], creds: &AuthConfig, t: &Token) {
        let key = cache_key(realm, service, scopes, creds);
        self.tokens.lock().expect("poisoned").insert(key, t.clone());
    }

    pub(crate) fn forget(&self, realm: &str, service: &str, scopes: &[String], creds: &AuthConfig) {
        let key = cache_key(realm, service, scopes, creds);
        self.tokens.lock().expect("poisoned").remove(&key);
    }
}

/// Client id sent to token servers (Docker sends `docker`).
pub const CLIENT_ID: &str = "wharf";

/// Fetches a token from a Bearer realm. With an identity token: OAuth2 POST
/// (`grant_type=refresh_token`); otherwise GET with Basic credentials (if any). `offline` asks
/// for a refresh token (login).
pub(crate) async fn fetch_token(
    transport: &Transport,
    realm: &str,
    service: &str,
    scopes: &[String],
    creds: &AuthConfig,
    offline: bool,
    user_agent: &str,
) -> Result<Token, ClientError> {
    let token_err = |message: String| ClientError::Token { realm: realm.to_owned(), message };
    if !realm.starts_with("http://") && !realm.starts_with("https://") {
        return Err(token_err(format!("invalid realm {realm:?}")));
    }
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(user_agent) {
        headers.insert(header::USER_AGENT, v);
    }
    let (method, url, mut body) = if !creds.identitytoken.is_empty() {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", &creds.identitytoken)
            .append_pair("service", service)
            .append_pair("client_id", CLIENT_ID);
        if !scopes.is_empty() {
            form.append_pair("scope", &scopes.join(" "));
        }
        if offline {
            form.append_pair("access_type", "offline");
        }
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
        (Method::POST, realm.to_owned(), ReqBody::Full(Bytes::from(form.finish())))
    } else {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if !service.is_empty() {
            q.append_pair("service", service);
        }
        for s in scopes {
            q.append_pair("scope", s);
        }
        if let Some((u, _)) = creds.user_password() {
            q.append_pair("account", &u);
        }
        if offline {
            q.append_pair("offline_token", "true").append_pair("client_id", CLIENT_ID);
        }
        if let Some(b) = creds.basic_header() {
            headers.insert(header::AUTHORIZATION, b);
        }
        let sep = if realm.contains('?') { '&' } else { '?' };
        (Method::GET, format!("{realm}{sep}{}", q.finish()), ReqBody::Empty)
    };
    let (resp, final_url) = transport.send(&method, &url, &headers, &mut body).await?;
    let status = resp.status();
    if !status.is_success() {
        let errors = read_errors(resp).await;
        let message = render_errors(&errors, status);
        return Err(if status == http::StatusCode::UNAUTHORIZED {
            ClientError::Unauthorized { method: super::transport::go_method(&method), url: realm.to_owned(), message }
        } else {
            token_err(message)
        });
    }
    let started = Instant::now();
    let bytes = read_body(resp, 1 << 20, &method, &final_url)
        .await?
        .map_err(|_| token_err("token response too large".to_owned()))?;
    let body: TokenBody =
        serde_json::from_slice(&bytes).map_err(|e| token_err(format!("decode token response: {e}")))?;
    let token = if body.access_token.is_empty() { body.token } else { body.access_token };
    if token.is_empty() {
        return Err(token_err("no token in the response".to_owned()));
    }
    // Docker assumes 60 s when the server does not say; renew a little early.
    let ttl = Duration::from_secs(body.expires_in.unwrap_or(60).max(1));
    let margin = (ttl / 2).min(Duration::from_secs(5));
    Ok(Token {
        token,
        refresh_token: body.refresh_token.filter(|r| !r.is_empty()),
        valid_until: started + ttl - margin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let mut h = HeaderMap::new();
        h.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push",error="insufficient_scope""#,
            ),
        );
        assert_eq!(
            parse_challenges(&h),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: "registry.docker.io".into(),
                scope: Some("repository:samalba/my-app:pull,push".into()),
            })
        );
        let mut h = HeaderMap::new();
        h.append(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Basic realm="Registry \"Realm\"""#));
        assert_eq!(parse_challenges(&h), Some(Challenge::Basic { realm: "Registry \"Realm\"".into() }));
    }

    #[test]
    fn registry_auth_header() {
        let c = AuthConfig::from_header(
            "eyJ1c2VybmFtZSI6InNweXVzZXIiLCJwYXNzd29yZCI6InNweXBhc3MiLCJzZXJ2ZXJhZGRyZXNzIjoiMTI3LjAuMC4xOjUwMDAifQ==",
        )
        .unwrap();
        assert_eq!(c.username, "spyuser");
        assert_eq!(c.serveraddress, "127.0.0.1:5000");
        assert!(AuthConfig::from_header("e30=").unwrap().is_empty());
        let a = AuthConfig { auth: "c3B5dXNlcjpzcHlwYXNz".into(), ..Default::default() };
        assert_eq!(a.user_password(), Some(("spyuser".into(), "spypass".into())));
    }
}
