//! The JSON message streams of pull, push, import, load and build (`jsonmessage` in moby), rendered
//! as the docker CLI renders them:
//! - on a terminal: one line per layer `id`, redrawn in place (cursor up/down, erase line) with a
//!   progress bar drawn from `progressDetail` (`[=====>    ]  1.2MB/4.3MB 3s`);
//! - elsewhere: no bars; messages that carry a non-empty `progressDetail` are skipped, the others
//!   print as `<id>: <status>`; `stream` text (build output) is copied verbatim;
//! - `errorDetail` ends the stream with an error ([`StreamError`], whose `code` build uses as the
//!   exit status); `aux` messages go to a callback (build's image ID, push's digest).
//!
//! Use [`Renderer`] message by message, or [`render_stream`] on a response body.

use std::collections::HashMap;
use std::io::Write;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::Value as Json;

use crate::units;

/// One message of the stream (moby `jsonmessage.JSONMessage`).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct JsonMessage {
    #[serde(default)]
    pub stream: String,
    #[serde(default)]
    pub status: String,
    #[serde(rename = "progressDetail", default)]
    pub progress_detail: Option<Progress>,
    /// The daemon's pre-rendered bar (deprecated, still sent).
    #[serde(rename = "progress", default)]
    pub progress_message: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub time: i64,
    #[serde(rename = "timeNano", default)]
    pub time_nano: i64,
    #[serde(rename = "errorDetail", default)]
    pub error_detail: Option<JsonError>,
    /// Deprecated copy of `errorDetail.message` (docker ignores it too).
    #[allow(dead_code, reason = "part of the wire format; docker reads errorDetail")]
    #[serde(rename = "error", default)]
    pub error_message: String,
    #[serde(default)]
    pub aux: Option<Json>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct Progress {
    #[serde(default)]
    pub current: i64,
    #[serde(default)]
    pub total: i64,
    #[serde(default)]
    pub start: i64,
    #[serde(rename = "hidecounts", default)]
    pub hide_counts: bool,
    #[serde(default)]
    pub units: String,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct JsonError {
    #[serde(default)]
    pub code: i32,
    #[serde(default)]
    pub message: String,
}

/// The stream reported an error (`errorDetail`), or could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError {
    /// `errorDetail.code` when the daemon set one (build: the failed step's exit code).
    pub code: Option<i32>,
    pub message: String,
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Progress {
    /// `JSONProgress.String()` for a terminal `width` columns wide; `now` is Unix seconds.
    pub fn render(&self, width: usize, now: i64) -> String {
        if self.current <= 0 && self.total <= 0 {
            return String::new();
        }
        if self.total <= 0 {
            return if self.units.is_empty() {
                format!("{:>8}", units::human_size(self.current as f64))
            } else {
                format!("{} {}", self.current, self.units)
            };
        }
        let percentage = (((self.current as f64 / self.total as f64) * 100.0) as i64 / 2).clamp(i64::MIN, 50);
        let mut bar = String::new();
        if width > 110 {
            let spaces = (50 - percentage).max(0) as usize;
            bar = format!("[{}>{}] ", "=".repeat(percentage.max(0) as usize), " ".repeat(spaces));
        }
        let numbers = if self.hide_counts {
            String::new()
        } else if self.units.is_empty() {
            let current = units::human_size(self.current as f64);
            if self.current > self.total {
                format!("{current:>8}")
            } else {
                format!("{current:>8}/{}", units::human_size(self.total as f64))
            }
        } else if self.current > self.total {
            format!("{} {}", self.current, self.units)
        } else {
            format!("{}/{} {}", self.current, self.total, self.units)
        };
        let mut left = String::new();
        if width > 50 && self.current > 0 && self.start > 0 && percentage < 50 {
            // Go's integer Duration arithmetic, rounded to the second
            let from_start_ns = i128::from((now - self.start).max(0)) * 1_000_000_000;
            let per_entry_ns = from_start_ns / i128::from(self.current);
            let left_ns = i128::from(self.total - self.current) * per_entry_ns;
            let secs = ((left_ns + 500_000_000) / 1_000_000_000) as i64;
            left = format!(" {}", go_duration_secs(secs));
        }
        format!("{bar}{numbers}{left}")
    }
}

/// Go's `time.Duration.String()` for whole seconds: `0s`, `45s`, `1m30s`, `2h0m5s`.
pub fn go_duration_secs(secs: i64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let (neg, s) = (secs < 0, secs.unsigned_abs());
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let body = if h > 0 {
        format!("{h}h{m}m{sec}s")
    } else if m > 0 {
        format!("{m}m{sec}s")
    } else {
        format!("{sec}s")
    };
    if neg { format!("-{body}") } else { body }
}

/// Renders messages one by one, keeping the per-`id` line bookkeeping of a terminal.
pub struct Renderer<W: Write> {
    out: W,
    terminal: bool,
    width: usize,
    ids: HashMap<String, usize>,
    now: fn() -> i64,
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl<W: Write> Renderer<W> {
    /// `terminal`: whether `out` is a terminal; its width is read from stderr/stdout when so.
    pub fn new(out: W, terminal: bool) -> Self {
        let width = if terminal { crate::term::size_of_any().map_or(200, |(_, w)| w as usize) } else { 200 };
        Self { out, terminal, width, ids: HashMap::new(), now: unix_now }
    }

    /// Fixes the terminal width (tests; `docker` reads it from the terminal).
    #[allow(dead_code, reason = "shared renderer: used by tests and the image commands")]
    pub fn with_width(mut self, width: usize) -> Self {
        self.width = width;
        self
    }

    #[cfg(test)]
    fn with_clock(mut self, now: fn() -> i64) -> Self {
        self.now = now;
        self
    }

    #[allow(dead_code, reason = "shared renderer: used by tests and the image commands")]
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Displays one message (`DisplayJSONMessagesStream`'s loop body). `aux` messages must be
    /// handled by the caller; they are ignored here.
    pub fn message(&mut self, jm: &JsonMessage) -> Result<(), StreamError> {
        if jm.aux.is_some() {
            return Ok(());
        }
        let mut diff = 0usize;
        if !jm.id.is_empty() && (jm.progress_detail.is_some() || !jm.progress_message.is_empty()) {
            let line = match self.ids.get(&jm.id) {
                Some(l) => *l,
                None => {
                    let l = self.ids.len();
                    self.ids.insert(jm.id.clone(), l);
                    if self.terminal {
                        let _ = self.out.write_all(b"\n");
                    }
                    l
                }
            };
            diff = self.ids.len() - line;
            if self.terminal && diff > 0 {
                let _ = write!(self.out, "\x1b[{diff}A");
            }
        } else {
            self.ids.clear();
        }
        let res = self.display(jm);
        if !jm.id.is_empty() && self.terminal && diff > 0 {
            let _ = write!(self.out, "\x1b[{diff}B");
        }
        let _ = self.out.flush();
        res
    }

    /// `JSONMessage.Display`.
    fn display(&mut self, jm: &JsonMessage) -> Result<(), StreamError> {
        if let Some(e) = &jm.error_detail {
            return Err(StreamError { code: (e.code != 0).then_some(e.code), message: e.message.clone() });
        }
        let now = (self.now)();
        let bar = jm.progress_detail.as_ref().map(|p| p.render(self.width, now)).unwrap_or_default();
        let mut endl = "";
        let o = &mut self.out;
        if self.terminal && jm.stream.is_empty() && jm.progress_detail.is_some() {
            let _ = o.write_all(b"\x1b[2K\r");
            endl = "\r";
        } else if jm.progress_detail.is_some() && !bar.is_empty() {
            // progress bars are for terminals only
            return Ok(());
        }
        if jm.time_nano != 0 {
            let _ = write!(o, "{} ", crate::timefmt::rfc3339_nano_fixed(jm.time_nano));
        } else if jm.time != 0 {
            let _ = write!(o, "{} ", crate::timefmt::rfc3339_nano_fixed(jm.time.saturating_mul(1_000_000_000)));
        }
        if !jm.id.is_empty() {
            let _ = write!(o, "{}: ", jm.id);
        }
        if !jm.from.is_empty() {
            let _ = write!(o, "(from {}) ", jm.from);
        }
        if jm.progress_detail.is_some() && self.terminal {
            let _ = write!(o, "{} {bar}{endl}", jm.status);
        } else if !jm.progress_message.is_empty() {
            let _ = write!(o, "{} {}{endl}", jm.status, jm.progress_message);
        } else if !jm.stream.is_empty() {
            let _ = write!(o, "{}{endl}", jm.stream);
        } else {
            let _ = writeln!(o, "{}{endl}", jm.status);
        }
        Ok(())
    }
}

/// Splits a byte stream into JSON messages (any whitespace between them, like Go's decoder).
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<JsonMessage>, StreamError> {
        let start = self.buf.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(self.buf.len());
        self.buf.drain(..start);
        if self.buf.is_empty() {
            return Ok(None);
        }
        let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<JsonMessage>();
        match it.next() {
            Some(Ok(m)) => {
                let used = it.byte_offset();
                self.buf.drain(..used);
                Ok(Some(m))
            }
            Some(Err(e)) if e.is_eof() => Ok(None),
            Some(Err(e)) => Err(StreamError { code: None, message: e.to_string() }),
            None => Ok(None),
        }
    }

    /// Whatever is left at the end of the stream must be whitespace.
    pub fn finish(&mut self) -> Result<(), StreamError> {
        if self.buf.iter().all(u8::is_ascii_whitespace) {
            Ok(())
        } else {
            Err(StreamError { code: None, message: "unexpected EOF".into() })
        }
    }
}

/// Renders a whole response body; `aux` messages go to `on_aux`. Returns the first error.
pub async fn render_stream<S, E, W>(
    mut body: S,
    renderer: &mut Renderer<W>,
    mut on_aux: impl FnMut(&Json),
) -> Result<(), StreamError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
    W: Write,
{
    let mut dec = Decoder::default();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| StreamError { code: None, message: e.to_string() })?;
        dec.push(&chunk);
        while let Some(m) = dec.next_message()? {
            if let Some(aux) = &m.aux {
                on_aux(aux);
                continue;
            }
            renderer.message(&m)?;
        }
    }
    dec.finish()
}

fn progress_of(d: Option<bollard::models::ProgressDetail>) -> Option<Progress> {
    d.map(|d| Progress { current: d.current.unwrap_or(0), total: d.total.unwrap_or(0), ..Default::default() })
}

fn error_of(d: Option<bollard::models::ErrorDetail>) -> Option<JsonError> {
    d.map(|e| JsonError { code: e.code.unwrap_or(0) as i32, message: e.message.unwrap_or_default() })
}

impl From<bollard::models::CreateImageInfo> for JsonMessage {
    fn from(m: bollard::models::CreateImageInfo) -> Self {
        JsonMessage {
            id: m.id.unwrap_or_default(),
            status: m.status.unwrap_or_default(),
            progress_detail: progress_of(m.progress_detail),
            error_detail: error_of(m.error_detail),
            ..Default::default()
        }
    }
}

impl From<bollard::models::BuildInfo> for JsonMessage {
    fn from(m: bollard::models::BuildInfo) -> Self {
        JsonMessage {
            id: m.id.unwrap_or_default(),
            stream: m.stream.unwrap_or_default(),
            status: m.status.unwrap_or_default(),
            progress_detail: progress_of(m.progress_detail),
            error_detail: error_of(m.error_detail),
            aux: m.aux.and_then(|a| serde_json::to_value(a).ok()),
            ..Default::default()
        }
    }
}

/// Renders bollard's typed message streams (import, load, pull, build) through the same
/// renderer; returns the `aux` payloads.
pub async fn display_stream<S, T>(mut stream: S, host: &str) -> Result<Vec<Json>, crate::client::CliError>
where
    S: Stream<Item = Result<T, bollard::errors::Error>> + Unpin,
    T: Into<JsonMessage>,
{
    use std::io::IsTerminal;
    let stdout = std::io::stdout();
    let terminal = stdout.is_terminal();
    let mut r = Renderer::new(stdout.lock(), terminal);
    let mut aux = Vec::new();
    while let Some(item) = stream.next().await {
        let m: JsonMessage = match item {
            Ok(m) => m.into(),
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                return Err(crate::client::CliError::Other(error));
            }
            Err(e) => return Err(crate::client::CliError::from_bollard(e, host)),
        };
        if let Some(a) = &m.aux {
            aux.push(a.clone());
            continue;
        }
        r.message(&m).map_err(|e| match e.code {
            Some(code) => {
                eprintln!("{}", e.message);
                crate::client::CliError::Status(code)
            }
            None => crate::client::CliError::Other(e.message),
        })?;
    }
    Ok(aux)
}

/// Every message of a whole stream's text (tests of what renders streams).
#[cfg(test)]
pub(crate) fn decode_all(text: &str) -> Vec<JsonMessage> {
    let mut d = Decoder::default();
    d.push(text.as_bytes());
    let mut v = Vec::new();
    while let Some(m) = d.next_message().unwrap() {
        v.push(m);
    }
    d.finish().unwrap();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(lines: &str) -> Vec<JsonMessage> {
        decode_all(lines)
    }

    const PULL: &str = r#"{"status":"Pulling from library/busybox","id":"latest"}
{"status":"Already exists","progressDetail":{},"id":"51d5c3a11353"}
{"status":"Pulling fs layer","progressDetail":{},"id":"fbe4e913f855"}
{"status":"Downloading","progressDetail":{"current":57,"total":114},"progress":"[=====>]     57B/114B","id":"fbe4e913f855"}
{"status":"Download complete","progressDetail":{},"id":"fbe4e913f855"}
{"status":"Pull complete","progressDetail":{},"id":"fbe4e913f855"}
{"status":"Digest: sha256:3d0c83"}
{"status":"Status: Downloaded newer image for busybox:latest"}
"#;

    fn render(terminal: bool, input: &str) -> (String, Result<(), StreamError>) {
        let mut r = Renderer::new(Vec::new(), terminal).with_width(120).with_clock(|| 100);
        let mut res = Ok(());
        for m in msgs(input) {
            if let Err(e) = r.message(&m) {
                res = Err(e);
                break;
            }
        }
        (String::from_utf8(r.into_inner()).unwrap(), res)
    }

    #[test]
    fn plain_output_skips_progress() {
        let (out, res) = render(false, PULL);
        res.unwrap();
        assert_eq!(
            out,
            "latest: Pulling from library/busybox\n\
             51d5c3a11353: Already exists\n\
             fbe4e913f855: Pulling fs layer\n\
             fbe4e913f855: Download complete\n\
             fbe4e913f855: Pull complete\n\
             Digest: sha256:3d0c83\n\
             Status: Downloaded newer image for busybox:latest\n"
        );
    }

    #[test]
    fn terminal_output_redraws_lines_per_layer() {
        let (out, res) = render(true, PULL);
        res.unwrap();
        let bar = format!("[{}>{}]      57B/114B", "=".repeat(25), " ".repeat(25));
        let want = [
            "latest: Pulling from library/busybox\n",
            // first layer: new line, up 1, erase, draw, down 1
            "\n\x1b[1A\x1b[2K\r51d5c3a11353: Already exists \r\x1b[1B",
            // second layer: new line, up 1 (it is the last line)
            "\n\x1b[1A\x1b[2K\rfbe4e913f855: Pulling fs layer \r\x1b[1B",
            &format!("\x1b[1A\x1b[2K\rfbe4e913f855: Downloading {bar} \r\x1b[1B").replace(" \r\x1b[1B", "\r\x1b[1B"),
            "\x1b[1A\x1b[2K\rfbe4e913f855: Download complete \r\x1b[1B",
            "\x1b[1A\x1b[2K\rfbe4e913f855: Pull complete \r\x1b[1B",
            "Digest: sha256:3d0c83\n",
            "Status: Downloaded newer image for busybox:latest\n",
        ]
        .concat();
        assert_eq!(out, want);
    }

    #[test]
    fn errors_end_the_stream_with_their_code() {
        let (out, res) = render(
            false,
            r#"{"stream":"Step 1/2 : RUN exit 3\n"}
{"errorDetail":{"code":3,"message":"The command '/bin/sh -c exit 3' returned a non-zero code: 3"},"error":"The command '/bin/sh -c exit 3' returned a non-zero code: 3"}"#,
        );
        assert_eq!(out, "Step 1/2 : RUN exit 3\n");
        assert_eq!(
            res,
            Err(StreamError {
                code: Some(3),
                message: "The command '/bin/sh -c exit 3' returned a non-zero code: 3".into()
            })
        );
        let (_, res) = render(false, r#"{"errorDetail":{"message":"manifest unknown"}}"#);
        assert_eq!(res.unwrap_err().code, None);
    }

    #[test]
    fn progress_bar_rendering() {
        let p = Progress { current: 1_200_000, total: 4_300_000, start: 90, ..Default::default() };
        // 27% → 13 '=' ; 10s elapsed for 1.2MB → 3.1MB left ≈ 26s
        assert_eq!(p.render(120, 100), format!("[{}>{}]    1.2MB/4.3MB 26s", "=".repeat(13), " ".repeat(37)));
        assert_eq!(p.render(80, 100), "   1.2MB/4.3MB 26s");
        assert_eq!(p.render(40, 100), "   1.2MB/4.3MB");
        let unknown_total = Progress { current: 2048, ..Default::default() };
        assert_eq!(unknown_total.render(120, 0), " 2.048kB");
        assert_eq!(Progress::default().render(120, 0), "");
    }

    #[test]
    fn decoder_handles_split_chunks_and_crlf() {
        let mut d = Decoder::default();
        d.push(b"{\"status\":\"a\"}\r\n{\"stat");
        assert_eq!(d.next_message().unwrap().unwrap().status, "a");
        assert!(d.next_message().unwrap().is_none());
        d.push(b"us\":\"b\",\"aux\":{\"ID\":\"sha256:x\"}}\r\n");
        let m = d.next_message().unwrap().unwrap();
        assert_eq!(m.aux.unwrap()["ID"], "sha256:x");
        assert!(d.next_message().unwrap().is_none());
        d.finish().unwrap();
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration_secs(0), "0s");
        assert_eq!(go_duration_secs(45), "45s");
        assert_eq!(go_duration_secs(90), "1m30s");
        assert_eq!(go_duration_secs(7205), "2h0m5s");
    }
}
