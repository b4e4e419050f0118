//! Registry search: the v1 search API (`GET /v1/search?q=<term>&n=<limit>`) that Docker Hub's
//! index (`index.docker.io`) offers and `docker search` uses. Distribution registries have no
//! search; ours answers it from its catalog (see `server`). Credentials go as Basic, or as a
//! token when the index answers with a Bearer challenge.

use http::{HeaderValue, Method, StatusCode, header};
use serde::{Deserialize, Serialize};

use super::Client;
use super::auth::{AuthConfig, Challenge, fetch_token, parse_challenges};
use super::config::{self, DOCKER_HUB_REGISTRY};
use super::error::{ClientError, render_errors};
use super::transport::{ReqBody, read_body, read_errors};

/// Docker Hub's index, where searches of unqualified terms go.
const HUB_INDEX: &str = "https://index.docker.io";
/// A search answer larger than this is refused.
const MAX_ANSWER: usize = 8 << 20;

/// One search hit, as the v1 API and the Engine API spell it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResult {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub star_count: i64,
    #[serde(default)]
    pub is_official: bool,
    #[serde(default)]
    pub is_automated: bool,
}

/// The v1 search answer.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SearchResults {
    #[serde(default)]
    pub num_results: i64,
    #[serde(default)]
    pub query: String,
    #[serde(default)]
    pub results: Vec<SearchResult>,
}

impl Client {
    /// Searches `index` (a registry host; `docker.io` is Docker Hub's index) for `term`, at
    /// most `limit` results.
    pub async fn search(
        &self,
        index: &str,
        term: &str,
        limit: usize,
        creds: &AuthConfig,
    ) -> Result<SearchResults, ClientError> {
        let bases: Vec<String> = if config::registry_host(index) == DOCKER_HUB_REGISTRY {
            vec![HUB_INDEX.to_owned()]
        } else {
            self.inner.config.endpoints(index, false, None).into_iter().map(|e| e.base).collect()
        };
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("q", term)
            .append_pair("n", &limit.to_string())
            .finish();
        let mut last = None;
        for (i, base) in bases.iter().enumerate() {
            let url = format!("{base}/v1/search?{query}");
            match self.search_at(&url, creds).await {
                Err(e @ (ClientError::Connect { .. } | ClientError::Transport { .. })) if i + 1 < bases.len() => {
                    last = Some(e);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| ClientError::InvalidReference(index.to_owned())))
    }

    async fn search_at(&self, url: &str, creds: &AuthConfig) -> Result<SearchResults, ClientError> {
        let mut authorization = creds.user_password().map(|(u, p)| basic(&u, &p));
        for _ in 0..2 {
            let mut headers = self.base_headers();
            if let Some(v) = authorization.as_deref().and_then(|a| HeaderValue::from_str(a).ok()) {
                headers.insert(header::AUTHORIZATION, v);
            }
            let (resp, _) = self.inner.transport.send(&Method::GET, url, &headers, &mut ReqBody::Empty).await?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED
                && authorization.as_deref().is_none_or(|a| a.starts_with("Basic "))
                && let Some(Challenge::Bearer { realm, service, .. }) = parse_challenges(resp.headers())
            {
                let scopes = ["registry:catalog:*".to_owned()];
                let ua = &self.inner.config.user_agent;
                let t = fetch_token(&self.inner.transport, &realm, &service, &scopes, creds, false, ua).await?;
                authorization = Some(format!("Bearer {}", t.token));
                continue;
            }
            if !status.is_success() {
                let errors = read_errors(resp).await;
                let mut message = format!("Unexpected status code {}", status.as_u16());
                if !errors.is_empty() {
                    message = format!("{message}: {}", render_errors(&errors, status));
                }
                return Err(ClientError::Status {
                    method: "Get".to_owned(),
                    url: url.to_owned(),
                    status: status.as_u16(),
                    message,
                });
            }
            let body =
                read_body(resp, MAX_ANSWER, &Method::GET, url).await?.map_err(|_| ClientError::InvalidResponse {
                    method: "Get".to_owned(),
                    url: url.to_owned(),
                    what: format!("search answer larger than {MAX_ANSWER} bytes"),
                })?;
            return serde_json::from_slice(&body).map_err(|e| ClientError::InvalidResponse {
                method: "Get".to_owned(),
                url: url.to_owned(),
                what: format!("invalid search answer: {e}"),
            });
        }
        Err(ClientError::Status {
            method: "Get".to_owned(),
            url: url.to_owned(),
            status: 401,
            message: "Unexpected status code 401: unauthorized".to_owned(),
        })
    }
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_with_missing_fields() {
        let r: SearchResults =
            serde_json::from_str(r#"{"num_results":1,"query":"bu","results":[{"name":"busybox","star_count":3}]}"#)
                .unwrap();
        assert_eq!(r.results[0], SearchResult { name: "busybox".into(), star_count: 3, ..Default::default() });
    }
}
