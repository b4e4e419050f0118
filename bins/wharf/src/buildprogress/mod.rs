//! `wharf build --progress`: the legacy `/build` stream shown as BuildKit shows a build.
//!
//! - `tty`: a live view on stderr, redrawn in place at most ten times a second: a header
//!   (`[+] Building 3.2s (4/7)`), one line per step (`=> [2/5] RUN make  1.3s`, `CACHED`,
//!   `ERROR`), the running step's last output lines dimmed under it, everything cut to the
//!   terminal's width. The final frame stays on the screen.
//! - `plain`: BuildKit's plain lines on stderr (`#3 [3/5] RUN make`, `#3 0.512 output`,
//!   `#3 DONE 1.3s`, `#2 CACHED`), one per event, for logs and CI. We chose this over the
//!   legacy stream because `--progress` users know it from BuildKit; the daemon's own text is
//!   what `docker build` (legacy builder) prints.
//! - `auto`: `tty` when stderr is a terminal, else `plain`.
//! - `quiet` (or `-q`): only the image ID, handled by the build command.
//!
//! A failed build ends with the failing step's whole output (`------ > [3/5] RUN …:`); the
//! command then prints the daemon's error (`The command '…' returned a non-zero code: 3`) and
//! exits with the step's code, as the docker CLI does for the legacy builder.
//!
//! Map: [`model`] parses the stream into steps; [`render`] turns the steps into frames and
//! lines; [`show`] drives them over a response body.

pub mod model;
pub mod render;

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::client::CliError;
use crate::jsonmessage::{Decoder, StreamError};
use model::BuildModel;
use render::{Context, Painter, Plain, Style};

/// How progress is shown (`--progress`), after `auto` and `quiet` are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Tty,
    Plain,
}

/// Resolves `--progress` (and `-q`): `None` means quiet. `auto` looks at stderr.
pub fn mode(flag: &str, quiet: bool) -> Result<Option<Mode>, CliError> {
    if quiet {
        return Ok(None);
    }
    match flag {
        "quiet" => Ok(None),
        "tty" => Ok(Some(Mode::Tty)),
        "plain" => Ok(Some(Mode::Plain)),
        "auto" | "" => Ok(Some(if crate::term::stderr_is_tty() { Mode::Tty } else { Mode::Plain })),
        other => Err(CliError::Usage(format!(
            "invalid progress mode {other:?}: use \"auto\", \"plain\", \"tty\" or \"quiet\""
        ))),
    }
}

/// Redraws per second at most, in tty mode.
const FRAME_INTERVAL: Duration = Duration::from_millis(100);

/// The terminal's `(rows, cols)` on stderr, else a common default.
fn terminal_size() -> (usize, usize) {
    match crate::term::size(rustix::stdio::stderr()) {
        Some((r, c)) if r > 0 && c > 0 => (usize::from(r), usize::from(c)),
        _ => (24, 80),
    }
}

fn style() -> Style {
    Style { color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) }
}

/// Shows the build stream `body` in `mode` on stderr; `context_size` is what was sent.
/// Returns the model of the whole build: its `error` is the stream's, if any.
pub async fn show<S, E>(mut body: S, mode: Mode, context_size: String) -> BuildModel
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let start = Instant::now();
    let ctx = Context { size: context_size };
    let mut model = BuildModel::default();
    let mut dec = Decoder::default();
    let mut err = std::io::stderr();
    let mut plain = Plain::default();
    let mut painter = Painter::default();
    let style = style();
    if mode == Mode::Plain {
        let _ = err.write_all(plain.start(&ctx).as_bytes());
    }
    let mut ticks = tokio::time::interval(FRAME_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let chunk = tokio::select! {
            chunk = body.next() => chunk,
            _ = ticks.tick(), if mode == Mode::Tty => {
                let (rows, cols) = terminal_size();
                let f = render::frame(&model, &ctx, start.elapsed(), cols, style);
                let _ = err.write_all(painter.paint(&f, Some(rows)).as_bytes());
                let _ = err.flush();
                continue;
            }
        };
        let chunk = match chunk {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                model.error.get_or_insert(StreamError { code: None, message: e.to_string() });
                break;
            }
            None => break,
        };
        dec.push(&chunk);
        let mut text = String::new();
        loop {
            let m = match dec.next_message() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    model.error.get_or_insert(e);
                    break;
                }
            };
            let now = start.elapsed();
            for ev in model.feed(&m, now) {
                if mode == Mode::Plain {
                    text.push_str(&plain.event(&model, &ev, now));
                }
            }
        }
        if !text.is_empty() {
            let _ = err.write_all(text.as_bytes());
        }
        if model.error.is_some() {
            break;
        }
    }
    if model.error.is_none()
        && let Err(e) = dec.finish()
    {
        model.error = Some(e);
    }
    let now = start.elapsed();
    let mut text = String::new();
    for ev in model.finish(now) {
        if mode == Mode::Plain {
            text.push_str(&plain.event(&model, &ev, now));
        }
    }
    match mode {
        Mode::Plain => text.push_str(&plain.finish(&model, now)),
        Mode::Tty => {
            // The final frame in full: it is not redrawn again, so it may scroll.
            let (_, cols) = terminal_size();
            text.push_str(&painter.paint(&render::frame(&model, &ctx, now, cols, style), None));
            for w in &model.warnings {
                text.push_str(&format!("[Warning] {w}\n"));
            }
            text.push_str(&render::failure_report(&model));
        }
    }
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
    model
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_modes() {
        assert_eq!(mode("plain", false).unwrap(), Some(Mode::Plain));
        assert_eq!(mode("tty", false).unwrap(), Some(Mode::Tty));
        assert_eq!(mode("tty", true).unwrap(), None);
        assert_eq!(mode("quiet", false).unwrap(), None);
        assert!(mode("auto", false).unwrap().is_some());
        let e = mode("fancy", false).unwrap_err();
        assert!(e.to_string().contains("invalid progress mode \"fancy\""), "{e}");
    }
}
