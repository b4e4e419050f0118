//! Rendering a daemon's JSON message stream (pull, push, build, load, import) as the docker CLI
//! does (`pkg/jsonmessage`, compat §3.6):
//!
//! - on a terminal, every message with an `id` and progress owns a line that later messages for
//!   the same id rewrite in place (cursor up, clear, print, cursor down), and progress is drawn
//!   as a bar from `progressDetail`;
//! - elsewhere, progress messages are skipped and the others print as `<id>: <status>`;
//! - `stream` text is printed verbatim; `aux` goes to the caller; an error ends the stream and
//!   becomes the command's error (exit 1, or the error's `code` for builds).

use std::collections::HashMap;
use std::io::Write;

use futures_util::{Stream, StreamExt};

use crate::client::CliError;
use crate::format::human_size;

/// One message, whatever bollard type it arrived as.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    pub id: Option<String>,
    pub status: Option<String>,
    pub stream: Option<String>,
    /// `progressDetail` (current, total); `None` when absent or empty.
    pub progress: Option<(i64, i64)>,
    pub aux: Option<serde_json::Value>,
}

impl From<bollard::models::CreateImageInfo> for Message {
    fn from(m: bollard::models::CreateImageInfo) -> Self {
        Message { id: m.id, status: m.status, stream: None, progress: detail(m.progress_detail), aux: None }
    }
}

impl From<bollard::models::BuildInfo> for Message {
    fn from(m: bollard::models::BuildInfo) -> Self {
        Message {
            id: m.id,
            status: m.status,
            stream: m.stream,
            progress: detail(m.progress_detail),
            aux: m.aux.and_then(|a| serde_json::to_value(a).ok()),
        }
    }
}

fn detail(d: Option<bollard::models::ProgressDetail>) -> Option<(i64, i64)> {
    let d = d?;
    match (d.current, d.total) {
        (None, None) => None,
        (c, t) => Some((c.unwrap_or(0), t.unwrap_or(0))),
    }
}

/// go-units `HumanDuration` used for the time-left box of a bar is left out: the daemon does
/// not send `start`. The bar itself is `JSONProgress.String()`.
pub fn progress_bar(current: i64, total: i64, width: usize) -> String {
    if current <= 0 && total <= 0 {
        return String::new();
    }
    if total <= 0 {
        return format!("{:>8}", human_size(current as f64));
    }
    let pct = ((((current as f64) / (total as f64)) * 100.0) as i64 / 2).clamp(0, 50) as usize;
    let bar = if width > 110 { format!("[{}>{}] ", "=".repeat(pct), " ".repeat(50 - pct)) } else { String::new() };
    let numbers = if current > total {
        format!("{:>8}", human_size(current as f64))
    } else {
        format!("{:>8}/{}", human_size(current as f64), human_size(total as f64))
    };
    format!("{bar}{numbers}")
}

/// Renders messages to `out` (see the module doc).
pub struct Renderer<W: Write> {
    out: W,
    terminal: bool,
    width: usize,
    ids: HashMap<String, usize>,
}

impl<W: Write> Renderer<W> {
    pub fn new(out: W, terminal: bool) -> Self {
        let width = if terminal { terminal_width() } else { 200 };
        Self { out, terminal, width, ids: HashMap::new() }
    }

    /// Renders one message.
    pub fn display(&mut self, m: &Message) -> std::io::Result<()> {
        let mut diff = 0;
        let id = m.id.as_deref().filter(|i| !i.is_empty());
        if let (Some(id), Some(_)) = (id, m.progress) {
            let line = match self.ids.get(id) {
                Some(l) => *l,
                None => {
                    let l = self.ids.len();
                    self.ids.insert(id.to_owned(), l);
                    if self.terminal {
                        writeln!(self.out)?;
                    }
                    l
                }
            };
            diff = self.ids.len() - line;
            if self.terminal && diff > 0 {
                write!(self.out, "\x1b[{diff}A")?;
            }
        } else {
            self.ids.clear();
        }
        let mut endl = "";
        if let Some((current, total)) = m.progress {
            if !self.terminal {
                // Progress makes no sense without a terminal to redraw it on.
                return Ok(());
            }
            if m.stream.is_none() {
                write!(self.out, "\x1b[2K\r")?;
                endl = "\r";
            }
            if let Some(id) = id {
                write!(self.out, "{id}: ")?;
            }
            write!(
                self.out,
                "{} {}{endl}",
                m.status.as_deref().unwrap_or(""),
                progress_bar(current, total, self.width)
            )?;
        } else {
            if let Some(id) = id {
                write!(self.out, "{id}: ")?;
            }
            match &m.stream {
                Some(s) => write!(self.out, "{s}")?,
                None => writeln!(self.out, "{}", m.status.as_deref().unwrap_or(""))?,
            }
        }
        if self.terminal && diff > 0 {
            write!(self.out, "\x1b[{diff}B")?;
        }
        self.out.flush()
    }
}

/// The terminal's width (docker asks the terminal; 200 when it cannot tell).
fn terminal_width() -> usize {
    rustix::termios::tcgetwinsize(std::io::stdout()).ok().map(|w| w.ws_col as usize).filter(|w| *w > 0).unwrap_or(200)
}

/// Renders a whole bollard stream to stdout; returns the `aux` values. A stream error is the
/// command's error: its text printed as docker prints it.
pub async fn display_stream<S, T>(mut stream: S, host: &str) -> Result<Vec<serde_json::Value>, CliError>
where
    S: Stream<Item = Result<T, bollard::errors::Error>> + Unpin,
    T: Into<Message>,
{
    use std::io::IsTerminal;
    let stdout = std::io::stdout();
    let terminal = stdout.is_terminal();
    let mut r = Renderer::new(stdout.lock(), terminal);
    let mut aux = Vec::new();
    while let Some(item) = stream.next().await {
        let m: Message = match item {
            Ok(m) => m.into(),
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                return Err(CliError::Other(error));
            }
            Err(e) => return Err(CliError::from_bollard(e, host)),
        };
        if let Some(a) = m.aux {
            aux.push(a);
            continue;
        }
        r.display(&m).map_err(|e| CliError::Other(format!("write output: {e}")))?;
    }
    Ok(aux)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(msgs: &[Message], terminal: bool) -> String {
        let mut out = Vec::new();
        let mut r = Renderer::new(&mut out, terminal);
        r.width = 200;
        for m in msgs {
            r.display(m).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    fn status(id: Option<&str>, s: &str) -> Message {
        Message { id: id.map(str::to_owned), status: Some(s.to_owned()), ..Default::default() }
    }

    #[test]
    fn non_terminal_skips_progress_and_prefixes_ids() {
        let mut p = status(Some("abc"), "Loading layer");
        p.progress = Some((5, 10));
        let out = render(
            &[
                p,
                status(Some("abc"), "Pull complete"),
                Message { stream: Some("Loaded image: x:y\n".into()), ..Default::default() },
                status(None, "sha256:123"),
            ],
            false,
        );
        assert_eq!(out, "abc: Pull complete\nLoaded image: x:y\nsha256:123\n");
    }

    #[test]
    fn terminal_redraws_lines_in_place() {
        let mut a = status(Some("a"), "Loading layer");
        a.progress = Some((1, 2));
        let mut b = status(Some("b"), "Loading layer");
        b.progress = Some((1, 4));
        let mut a2 = a.clone();
        a2.progress = Some((2, 2));
        let out = render(&[a, b, a2], true);
        // a's first line, b's line, then up 2 to a, rewrite, down 2.
        assert!(out.contains("\x1b[2A\x1b[2K\ra: Loading layer [="), "{out:?}");
        assert!(out.ends_with("2B/2B\r\x1b[2B"), "{out:?}");
    }

    #[test]
    fn bars_like_docker() {
        let b = progress_bar(50, 100, 200);
        assert_eq!(b, format!("[{}>{}]      50B/100B", "=".repeat(25), " ".repeat(25)));
        assert_eq!(progress_bar(5, 0, 200), "      5B");
        assert_eq!(progress_bar(1, 2, 80), "      1B/2B");
    }
}
