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

/// One message of a JSON message stream (pull, push, build, load, import): moby's
/// `jsonmessage.JSONMessage`. Clients print `status`/`stream` text, draw bars from
/// `progressDetail`, and stop with an error at `errorDetail`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JsonMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    pub progress_detail: Option<ProgressDetail>,
    /// Deprecated pre-rendered bar (`[==>   ] 1.2MB/4.5MB`); still sent, as moby does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "errorDetail", skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<ErrorDetail>,
    /// Deprecated copy of `errorDetail.message`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProgressDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ErrorDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    pub message: String,
}

impl JsonMessage {
    /// `{"status": text}`, printed as a line.
    pub fn status(text: impl Into<String>) -> Self {
        Self { status: Some(text.into()), ..Default::default() }
    }

    /// `{"stream": text}`, printed verbatim (the text carries its own newline).
    pub fn stream(text: impl Into<String>) -> Self {
        Self { stream: Some(text.into()), ..Default::default() }
    }

    /// The message that ends a stream with an error.
    pub fn error(message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            error_detail: Some(ErrorDetail { code: None, message: message.clone() }),
            error: Some(message),
            ..Default::default()
        }
    }

    /// A layer's state without a bar (`Waiting`, `Pull complete`): moby sends an empty
    /// `progressDetail` with it.
    pub fn layer(id: impl Into<String>, status: impl Into<String>) -> Self {
        Self {
            status: Some(status.into()),
            id: Some(id.into()),
            progress_detail: Some(ProgressDetail::default()),
            ..Default::default()
        }
    }

    /// A progress update for `id` (`Loading layer 1.2MB/4.5MB`).
    pub fn progress(id: impl Into<String>, status: impl Into<String>, current: u64, total: u64) -> Self {
        Self {
            status: Some(status.into()),
            progress_detail: Some(ProgressDetail { current: Some(current as i64), total: Some(total as i64) }),
            progress: Some(progress_bar(current, total)),
            id: Some(id.into()),
            ..Default::default()
        }
    }
}

/// go-units `HumanSize`: decimal units, 4 significant digits (`1.235MB`).
pub fn human_size(n: f64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut v = n;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    // Go's `%.4g`: four significant digits, no trailing zeros.
    let before = if v >= 1.0 { v.log10().floor() as usize + 1 } else { 1 };
    let decimals = 4usize.saturating_sub(before);
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_owned();
    }
    format!("{s}{}", UNITS[i])
}

/// moby's server-side `JSONProgress.String()` with no terminal (width 200): the bar, then the
/// counts.
pub fn progress_bar(current: u64, total: u64) -> String {
    if total == 0 {
        return format!("{:>8}", human_size(current as f64));
    }
    let pct = (((current as f64 / total as f64) * 100.0) as usize / 2).min(50);
    let bar = format!("[{}>{}] ", "=".repeat(pct), " ".repeat(50 - pct));
    let numbers = if current > total {
        format!("{:>8}", human_size(current as f64))
    } else {
        format!("{:>8}/{}", human_size(current as f64), human_size(total as f64))
    };
    format!("{bar}{numbers}")
}

/// Sends the messages of a stream in progress (see [`message_stream`]).
#[derive(Clone)]
pub struct ProgressSender(tokio::sync::mpsc::UnboundedSender<StreamItem>);

impl ProgressSender {
    /// Queues one message; a client that went away is not an error for the operation.
    pub fn send(&self, m: JsonMessage) {
        let _ = self.0.send(StreamItem::Message(m));
    }

    /// A sender whose messages are kept for the caller (to filter or hold them back, as
    /// `docker build -q` does) rather than sent.
    pub fn buffer() -> (ProgressSender, MessageBuffer) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (ProgressSender(tx), MessageBuffer(rx))
    }
}

/// The messages of a [`ProgressSender::buffer`] sender.
pub struct MessageBuffer(tokio::sync::mpsc::UnboundedReceiver<StreamItem>);

impl MessageBuffer {
    /// The next message; `None` once every sender is gone and all messages were read.
    pub async fn recv(&mut self) -> Option<JsonMessage> {
        loop {
            match self.0.recv().await? {
                StreamItem::Message(m) => return Some(m),
                StreamItem::Done(_) => continue,
            }
        }
    }

    /// A message already queued, if any.
    pub fn try_recv(&mut self) -> Option<JsonMessage> {
        loop {
            match self.0.try_recv().ok()? {
                StreamItem::Message(m) => return Some(m),
                StreamItem::Done(_) => continue,
            }
        }
    }
}

#[doc(hidden)]
pub enum StreamItem {
    Message(JsonMessage),
    Done(Result<(), wharf_types::EngineError>),
}

/// Runs an operation that reports through a [`ProgressSender`] and answers as moby does: an
/// error before the first message is an ordinary error response (status from its kind); once
/// messages flow the status is 200 and a later error becomes the last message
/// (`{"errorDetail":…,"error":…}`). Messages are separated by `\r\n`.
pub async fn message_stream<F, Fut>(op: F) -> Result<Response, crate::error::ApiError>
where
    F: FnOnce(ProgressSender) -> Fut,
    Fut: std::future::Future<Output = Result<(), wharf_types::EngineError>> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let fut = op(ProgressSender(tx.clone()));
    tokio::spawn(async move {
        let r = fut.await;
        let _ = tx.send(StreamItem::Done(r));
    });
    let first = match rx.recv().await {
        None => return Err(wharf_types::EngineError::internal("operation vanished").into()),
        Some(StreamItem::Done(Err(e))) => return Err(e.into()),
        Some(StreamItem::Done(Ok(()))) => None,
        Some(StreamItem::Message(m)) => Some(m),
    };
    let rest = futures_util::stream::unfold((rx, first.is_none()), |(mut rx, done)| async move {
        if done {
            return None;
        }
        match rx.recv().await {
            None | Some(StreamItem::Done(Ok(()))) => None,
            Some(StreamItem::Done(Err(e))) => Some((JsonMessage::error(e.message), (rx, true))),
            Some(StreamItem::Message(m)) => Some((m, (rx, false))),
        }
    });
    let items = futures_util::stream::iter(first).chain(rest);
    Ok(json_lines(items, "\r\n"))
}

/// How long a cancellable stream may stay silent before it writes a bare `\r\n`.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(1);

/// [`message_stream`] for operations that must stop when the client goes away (builds):
/// `cancel` fires when the response body is dropped (hyper drops it when the connection
/// closes), and while the operation is silent a bare `\r\n` is written every second, so a
/// closed connection is noticed even when there is nothing to say (every client skips
/// whitespace between messages). The body ends with the operation's last message; nothing
/// is written after it.
pub async fn cancellable_message_stream<F, Fut>(
    cancel: tokio_util::sync::CancellationToken,
    op: F,
) -> Result<Response, crate::error::ApiError>
where
    F: FnOnce(ProgressSender) -> Fut,
    Fut: std::future::Future<Output = Result<(), wharf_types::EngineError>> + Send + 'static,
{
    let guard = cancel.clone().drop_guard();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let fut = op(ProgressSender(tx.clone()));
    tokio::spawn(async move {
        let r = fut.await;
        let _ = tx.send(StreamItem::Done(r));
    });
    // Nothing to say yet: the status line is not sent, so the client cannot be probed; a
    // disconnect is noticed once the stream starts.
    let first = tokio::select! {
        item = rx.recv() => item,
        _ = cancel.cancelled() => None,
    };
    let first = match first {
        None => return Err(wharf_types::EngineError::new(wharf_types::ErrorKind::Cancelled, "cancelled").into()),
        Some(StreamItem::Done(Err(e))) => return Err(e.into()),
        Some(StreamItem::Done(Ok(()))) => None,
        Some(StreamItem::Message(m)) => Some(m),
    };
    let line = |m: &JsonMessage| {
        let mut line = serde_json::to_vec(m).unwrap_or_else(|_| b"{}".to_vec());
        line.extend_from_slice(b"\r\n");
        Bytes::from(line)
    };
    let head = first.as_ref().map(line);
    let done = first.is_none();
    let rest = futures_util::stream::unfold((rx, done, guard), move |(mut rx, done, guard)| async move {
        if done {
            return None;
        }
        let item = match tokio::time::timeout(KEEPALIVE, rx.recv()).await {
            Err(_) => return Some((Bytes::from_static(b"\r\n"), (rx, false, guard))),
            Ok(item) => item,
        };
        match item {
            None | Some(StreamItem::Done(Ok(()))) => None,
            Some(StreamItem::Done(Err(e))) => Some((line(&JsonMessage::error(e.message)), (rx, true, guard))),
            Some(StreamItem::Message(m)) => Some((line(&m), (rx, false, guard))),
        }
    });
    let body = futures_util::stream::iter(head).chain(rest).map(Ok::<_, Infallible>);
    let mut resp = Response::new(Body::from_stream(body));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_go_units() {
        assert_eq!(human_size(0.0), "0B");
        assert_eq!(human_size(999.0), "999B");
        assert_eq!(human_size(1000.0), "1kB");
        assert_eq!(human_size(4_261_000.0), "4.261MB");
        assert_eq!(human_size(1_234_567.0), "1.235MB");
        assert_eq!(human_size(12_345_678.0), "12.35MB");
    }

    #[test]
    fn bars() {
        let b = progress_bar(50, 100);
        assert!(b.starts_with("[=========================>"), "{b}");
        assert!(b.ends_with("50B/100B"), "{b}");
    }

    #[tokio::test]
    async fn early_errors_are_responses_late_ones_messages() {
        let r = message_stream(|_tx| async { Err(wharf_types::EngineError::invalid("bad")) }).await;
        assert_eq!(r.unwrap_err().0.message, "bad");
        let r = message_stream(|tx| async move {
            tx.send(JsonMessage::status("one"));
            Err(wharf_types::EngineError::invalid("late"))
        })
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        let body = http_body_util::BodyExt::collect(r.into_body()).await.unwrap().to_bytes();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            "{\"status\":\"one\"}\r\n{\"errorDetail\":{\"message\":\"late\"},\"error\":\"late\"}\r\n"
        );
    }
}
