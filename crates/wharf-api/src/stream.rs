//! Streamed response bodies. Each item is flushed as its own chunk so clients see it at once.

use std::convert::Infallible;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::{HeaderValue, header};

/// A `200` response whose body is `items` serialised as JSON, each followed by `sep`
/// (`"\n"` for events, `"\r\n"` for moby's stream formatter).
pub fn json_lines<S, T>(items: S, sep: &'static str) -> Response
where
    S: Stream<Item = T> + Send + 'static,
    T: serde::Serialize,
{
    let body = items.map(move |item| {
        let mut line = serde_json::to_vec(&item).unwrap_or_else(|_| b"{}".to_vec());
        line.extend_from_slice(sep.as_bytes());
        Ok::<_, Infallible>(Bytes::from(line))
    });
    let mut resp = Response::new(Body::from_stream(body));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
