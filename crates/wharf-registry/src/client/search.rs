//! Registry search: the v1 search API (`GET /v1/search?q=<term>&n=<limit>`) that Docker Hub's
//! index (`index.docker.io`) offers and `docker search` uses. Distribution registries have no
//! search; ours answers it from its catalog (see `server`). Credentials go as Basic, or as a
//! token when the index answers with a Bearer challenge.

use http::{HeaderValue, Method, Response, StatusCode, header};
use hyper::body::Incoming;
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
        let mut resp = self.get_with(url, creds.basic_header()).await?;
        // A Bearer challenge: once more with a catalog token.
        if resp.status() == StatusCode::UNAUTHORIZED
            && let Some(Challenge::Bearer { realm, service, .. }) = parse_challenges(resp.headers())
        {
            let scopes = ["registry:catalog:*".to_owned()];
            let ua = &self.inner.config.user_agent;
            let t = fetch_token(&self.inner.transport, &realm, &service, &scopes, creds, false, ua).await?;
            resp = self.get_with(url, HeaderValue::from_str(&format!("Bearer {}", t.token)).ok()).await?;
        }
        let status = resp.status();
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
        let invalid =
            |what: String| ClientError::InvalidResponse { method: "Get".to_owned(), url: url.to_owned(), what };
        let body = read_body(resp, MAX_ANSWER, &Method::GET, url)
            .await?
            .map_err(|_| invalid(format!("search answer larger than {MAX_ANSWER} bytes")))?;
        serde_json::from_slice(&body).map_err(|e| invalid(format!("invalid search answer: {e}")))
    }

    /// `GET url` with an `Authorization` value, if any.
    async fn get_with(&self, url: &str, authorization: Option<HeaderValue>) -> Result<Response<Incoming>, ClientError> {
        let mut headers = self.base_headers();
        if let Some(v) = authorization {
            headers.insert(header::AUTHORIZATION, v);
        }
        Ok(self.inner.transport.send(&Method::GET, url, &headers, &mut ReqBody::Empty).await?.0)
    }
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
