//! What the two progress modes print, as text, from a [`BuildModel`]: the tty mode's frames
//! ([`frame`]), redrawn in place by [`Painter`], and the plain mode's lines ([`Plain`]). Both
//! follow BuildKit's look (`[+] Building 3.2s (4/7)`, ` => CACHED [2/7] COPY …`, `#3 DONE
//! 1.3s`) and end a failed build with the failing step's whole output ([`failure_report`]).

use std::fmt::Write as _;
use std::time::Duration;

use super::model::{BuildModel, Event, Step, StepState};

/// How many output lines of the running step the tty view shows.
pub const LOG_LINES: usize = 6;

/// What is printed about the build context sent before the stream started.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Its size, human readable (`4.096kB`).
    pub size: String,
}

/// SGR colors for the tty view, or none (`NO_COLOR`, tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, text: String) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text }
    }
}

/// `1.3s`, as BuildKit shows step times.
fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The first `n` characters of `s`.
fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `left`, then `right` aligned to the last of `cols` columns; `left` is cut to fit.
fn row(left: &str, right: &str, cols: usize) -> String {
    let rlen = right.chars().count();
    if rlen == 0 {
        return truncate(left, cols).to_owned();
    }
    let left = truncate(left, cols.saturating_sub(rlen + 1));
    let pad = cols.saturating_sub(left.chars().count() + rlen).max(1);
    format!("{left}{}{right}", " ".repeat(pad))
}

/// The last output lines of a step (and the line it is writing), at most `n`.
fn tail(step: &Step, partial: Option<String>, n: usize) -> Vec<String> {
    let mut lines: Vec<String> = step.output.iter().map(|(_, l)| l.clone()).collect();
    lines.extend(partial);
    let skip = lines.len().saturating_sub(n);
    lines.split_off(skip)
}

/// The tty view of the build at `now` for a terminal `width` columns wide: the header, the
/// context, one line per step with the running step's last output lines under it, and once
/// the stream has ended (`done`) the image and its tags. Lines never reach the last column,
/// so the terminal never wraps them and the painter can count them.
pub fn frame(model: &BuildModel, ctx: &Context, now: Duration, width: usize, style: Style) -> Vec<String> {
    let cols = width.saturating_sub(1).max(10);
    let now = model.finished.unwrap_or(now);
    let finished = model.steps.iter().filter(|s| s.is_finished()).count();
    let done = model.finished.is_some();
    let mut header = format!("[+] Building {} ({finished}/{})", secs(now), model.total());
    if done {
        header.push_str(" FINISHED");
    }
    let mut lines = vec![if done { style.paint("34", row(&header, "", cols)) } else { row(&header, "", cols) }];
    let sent = model.steps.first().map(|s| s.started).unwrap_or(now);
    lines.push(style.paint("34", row(" => [internal] load build context", &secs(sent), cols)));
    lines.push(style.paint("34", row(&format!(" => => transferring context: {}", ctx.size), "", cols)));
    for step in &model.steps {
        let (prefix, color) = match step.state {
            StepState::Running => ("", None),
            StepState::Cached => ("CACHED ", Some("34")),
            StepState::Done => ("", Some("34")),
            StepState::Error => ("ERROR ", Some("31")),
        };
        let text = row(&format!(" => {prefix}{}", step.title()), &secs(step.elapsed(now)), cols);
        lines.push(match color {
            Some(c) => style.paint(c, text),
            None => text,
        });
        if step.state == StepState::Running && !done {
            for l in tail(step, model.partial_output(), LOG_LINES) {
                lines.push(style.paint("2", row(&format!(" => => # {l}"), "", cols)));
            }
        }
    }
    if done && model.error.is_none() {
        let last = model.steps.last().and_then(|s| s.finished).unwrap_or(now);
        lines.push(style.paint("34", row(" => exporting to image", &secs(now.saturating_sub(last)), cols)));
        if let Some(id) = &model.image_id {
            lines.push(style.paint("34", row(&format!(" => => writing image {id}"), "", cols)));
        }
        for t in &model.tags {
            lines.push(style.paint("34", row(&format!(" => => naming to {t}"), "", cols)));
        }
    }
    lines
}

/// The failing step's whole output, as BuildKit reports a failed step (times since the step
/// started); empty when the build did not fail in a step.
pub fn failure_report(model: &BuildModel) -> String {
    let Some(step) = model.steps.iter().find(|s| s.state == StepState::Error) else {
        return String::new();
    };
    let mut out = format!("------\n > {}:\n", step.title());
    if step.clipped > 0 {
        let _ = writeln!(out, "[output clipped: the first {} lines are not shown]", step.clipped);
    }
    for (t, l) in &step.output {
        let _ = writeln!(out, "{:.3} {l}", t.saturating_sub(step.started).as_secs_f64());
    }
    out.push_str("------\n");
    out
}

/// Redraws frames in place: up to the first line of the last frame, each line erased and
/// rewritten, what the last frame had below the new one erased.
#[derive(Debug, Default)]
pub struct Painter {
    /// Lines of the last frame still on the screen.
    drawn: usize,
}

impl Painter {
    /// The bytes that replace the last frame with `lines`. With `rows` (the terminal's
    /// height), a frame taller than the screen is cut to its header and its last lines, as
    /// lines scrolled off the screen cannot be redrawn.
    pub fn paint(&mut self, lines: &[String], rows: Option<usize>) -> String {
        let mut shown: Vec<&String> = lines.iter().collect();
        if let Some(rows) = rows.filter(|r| *r >= 3)
            && shown.len() > rows - 1
        {
            let keep = rows - 2;
            let cut = shown.len() - 1 - keep;
            shown.drain(1..=cut);
        }
        let mut out = String::new();
        if self.drawn > 0 {
            let _ = write!(out, "\x1b[{}A", self.drawn);
        }
        for l in &shown {
            let _ = write!(out, "\r\x1b[2K{l}\n");
        }
        if shown.len() < self.drawn {
            out.push_str("\x1b[J");
        }
        self.drawn = shown.len();
        out
    }
}

/// The plain mode: BuildKit's `--progress=plain` lines, `#N` being the step number (`#0` the
/// context, the step count + 1 the export), output lines prefixed with the seconds since the
/// step started.
#[derive(Debug, Default)]
pub struct Plain {
    context_done: bool,
}

impl Plain {
    /// The lines printed before the stream starts.
    pub fn start(&self, ctx: &Context) -> String {
        format!("#0 [internal] load build context\n#0 transferring context: {} done\n", ctx.size)
    }

    /// The lines for one event at `now`.
    pub fn event(&mut self, model: &BuildModel, ev: &Event, now: Duration) -> String {
        let mut out = String::new();
        if !self.context_done {
            self.context_done = true;
            let _ = write!(out, "#0 DONE {}\n\n", secs(now));
        }
        let step = |i: &usize| &model.steps[*i];
        match ev {
            Event::StepStarted(i) => {
                let s = step(i);
                let _ = writeln!(out, "#{} {}", s.number, s.title());
            }
            Event::Output(i, line) => {
                let s = step(i);
                let t = s.output.back().map_or(now, |(t, _)| *t);
                let _ = writeln!(out, "#{} {:.3} {line}", s.number, t.saturating_sub(s.started).as_secs_f64());
            }
            Event::Cached(i) => {
                let _ = write!(out, "#{} CACHED\n\n", step(i).number);
            }
            Event::Done(i) => {
                let s = step(i);
                let _ = write!(out, "#{} DONE {}\n\n", s.number, secs(s.elapsed(now)));
            }
            Event::Failed(i) => {
                let s = step(i);
                let message = model.error.as_ref().map(|e| e.message.as_str()).unwrap_or_default();
                let _ = writeln!(out, "#{} ERROR: {message}", s.number);
                out.push_str(&failure_report(model));
            }
            Event::Error => {}
            Event::Log(line) => {
                if !line.starts_with("Successfully built ") && !line.starts_with("Successfully tagged ") {
                    let _ = writeln!(out, "{line}");
                }
            }
        }
        out
    }

    /// The export lines once the stream has ended without an error.
    pub fn finish(&mut self, model: &BuildModel, now: Duration) -> String {
        if model.error.is_some() {
            return String::new();
        }
        let n = model.total() + 1;
        let mut out = format!("#{n} exporting to image\n");
        if let Some(id) = &model.image_id {
            let _ = writeln!(out, "#{n} writing image {id} done");
        }
        for t in &model.tags {
            let _ = writeln!(out, "#{n} naming to {t} done");
        }
        let last = model.steps.last().and_then(|s| s.finished).unwrap_or(now);
        let _ = write!(out, "#{n} DONE {}\n\n", secs(now.saturating_sub(last)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonmessage::JsonMessage;

    fn msgs(text: &str) -> Vec<JsonMessage> {
        crate::jsonmessage::decode_all(text)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    const PLAIN: Style = Style { color: false };

    fn ctx() -> Context {
        Context { size: "4.096kB".into() }
    }

    /// Feeds `stream` one message per 100 ms, starting at 100 ms.
    fn model_of(stream: &str) -> (BuildModel, Vec<(Duration, Event)>) {
        let mut m = BuildModel::default();
        let mut events = Vec::new();
        for (i, msg) in msgs(stream).iter().enumerate() {
            let now = ms(100 * (i as u64 + 1));
            events.extend(m.feed(msg, now).into_iter().map(|e| (now, e)));
        }
        (m, events)
    }

    const RUNNING: &str = r#"{"stream":"Step 1/3 : FROM busybox\n"}
{"stream":" ---\u003e 991ddad84e5f\n"}
{"stream":"Step 2/3 : COPY f.txt /f.txt\n"}
{"stream":" ---\u003e Using cache\n ---\u003e 7d2910a01e35\n"}
{"stream":"Step 3/3 : RUN for i in 1 2 3 4 5 6 7 8; do echo line $i; done; echo a very long line that will not fit\n"}
{"stream":" ---\u003e Running in 9b788c4d42f7\n"}
{"stream":"line 1\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\nline 8\n"}
{"stream":"a very long line that will not fit in sixty columns at all"}
"#;

    #[test]
    fn tty_frame_while_running() {
        let (m, _) = model_of(RUNNING);
        let f = frame(&m, &ctx(), ms(1000), 60, PLAIN);
        let want = [
            "[+] Building 1.0s (2/3)",
            " => [internal] load build context                      0.1s",
            " => => transferring context: 4.096kB",
            " => [1/3] FROM busybox                                 0.1s",
            " => CACHED [2/3] COPY f.txt /f.txt                     0.1s",
            " => [3/3] RUN for i in 1 2 3 4 5 6 7 8; do echo line $ 0.5s",
            " => => # line 4",
            " => => # line 5",
            " => => # line 6",
            " => => # line 7",
            " => => # line 8",
            " => => # a very long line that will not fit in sixty column",
        ];
        assert_eq!(f, want);
        assert!(f.iter().all(|l| l.chars().count() <= 59), "the last column stays free");
    }

    #[test]
    fn tty_frame_when_finished_and_failed() {
        let ok = format!(
            "{RUNNING}{}",
            r#"{"stream":"\n ---\u003e 281d2fa25911\n"}
{"aux":{"ID":"sha256:d84325e9636960cc84b69e13453e1d1065c6c4aab25adc311ac57716bff695e2"}}
{"stream":"Successfully built d84325e96369\nSuccessfully tagged x:latest\n"}"#
        );
        let (mut m, _) = model_of(&ok);
        m.finish(ms(1200));
        let f = frame(&m, &ctx(), ms(5000), 60, PLAIN);
        let want = [
            "[+] Building 1.2s (3/3) FINISHED",
            " => [internal] load build context                      0.1s",
            " => => transferring context: 4.096kB",
            " => [1/3] FROM busybox                                 0.1s",
            " => CACHED [2/3] COPY f.txt /f.txt                     0.1s",
            " => [3/3] RUN for i in 1 2 3 4 5 6 7 8; do echo line $ 0.4s",
            " => exporting to image                                 0.3s",
            " => => writing image sha256:d84325e9636960cc84b69e13453e1d1",
            " => => naming to x:latest",
        ];
        assert_eq!(f, want);

        let failed = format!(
            "{RUNNING}{}",
            r#"{"errorDetail":{"code":3,"message":"The command '/bin/sh -c x' returned a non-zero code: 3"}}"#
        );
        let (mut m, _) = model_of(&failed);
        m.finish(ms(1000));
        let f = frame(&m, &ctx(), ms(1000), 60, PLAIN);
        assert_eq!(f[0], "[+] Building 1.0s (3/3) FINISHED");
        assert_eq!(f[5], " => ERROR [3/3] RUN for i in 1 2 3 4 5 6 7 8; do echo  0.4s");
        assert_eq!(f.len(), 6, "no logs and no export: {f:#?}");
        let report = failure_report(&m);
        assert!(report.starts_with("------\n > [3/3] RUN for i in"), "{report}");
        assert!(report.contains("\n0.200 line 1\n"), "{report}");
        assert!(
            report.ends_with("0.400 a very long line that will not fit in sixty columns at all\n------\n"),
            "{report}"
        );
    }

    #[test]
    fn colors_wrap_whole_lines() {
        let (m, _) = model_of(RUNNING);
        let f = frame(&m, &ctx(), ms(1000), 60, Style { color: true });
        assert_eq!(f[0], "[+] Building 1.0s (2/3)");
        assert!(f[3].starts_with("\x1b[34m => [1/3] FROM busybox") && f[3].ends_with("\x1b[0m"));
        assert!(!f[5].contains('\x1b'), "the running step is not colored");
        assert_eq!(f[6], "\x1b[2m => => # line 4\x1b[0m");
    }

    #[test]
    fn painter_redraws_in_place() {
        let mut p = Painter::default();
        let a: Vec<String> = vec!["h".into(), "1".into(), "2".into()];
        assert_eq!(p.paint(&a, None), "\r\x1b[2Kh\n\r\x1b[2K1\n\r\x1b[2K2\n");
        let b: Vec<String> = vec!["h".into(), "1".into()];
        assert_eq!(p.paint(&b, None), "\x1b[3A\r\x1b[2Kh\n\r\x1b[2K1\n\x1b[J");
        // Taller than the screen: the header and the last lines.
        let c: Vec<String> = (0..6).map(|i| i.to_string()).collect();
        assert_eq!(p.paint(&c, Some(4)), "\x1b[2A\r\x1b[2K0\n\r\x1b[2K4\n\r\x1b[2K5\n");
    }

    #[test]
    fn plain_lines() {
        let stream = r#"{"stream":"Step 1/3 : FROM busybox\n"}
{"stream":" ---\u003e 991ddad84e5f\n"}
{"stream":"Step 2/3 : COPY f.txt /f.txt\n"}
{"stream":" ---\u003e Using cache\n ---\u003e 7d2910a01e35\n"}
{"stream":"Step 3/3 : RUN make\n"}
{"stream":" ---\u003e Running in 9b788c4d42f7\n"}
{"stream":"compiling\n"}
{"stream":"Removing intermediate container 9b788c4d42f7\n ---\u003e 281d2fa25911\n"}
{"aux":{"ID":"sha256:d843"}}
{"stream":"[Warning] One or more build-args [X] were not consumed\n"}
{"stream":"Successfully built d84325e96369\nSuccessfully tagged x:latest\n"}"#;
        let (mut m, events) = model_of(stream);
        let mut p = Plain::default();
        let mut out = p.start(&ctx());
        for (now, e) in &events {
            out.push_str(&p.event(&m, e, *now));
        }
        m.finish(ms(1200));
        out.push_str(&p.finish(&m, ms(1200)));
        let want = "#0 [internal] load build context\n\
                    #0 transferring context: 4.096kB done\n\
                    #0 DONE 0.1s\n\n\
                    #1 [1/3] FROM busybox\n\
                    #1 DONE 0.1s\n\n\
                    #2 [2/3] COPY f.txt /f.txt\n\
                    #2 CACHED\n\n\
                    #3 [3/3] RUN make\n\
                    #3 0.200 compiling\n\
                    #3 DONE 0.3s\n\n\
                    [Warning] One or more build-args [X] were not consumed\n\
                    #4 exporting to image\n\
                    #4 writing image sha256:d843 done\n\
                    #4 naming to x:latest done\n\
                    #4 DONE 0.4s\n\n";
        assert_eq!(out, want);
    }

    #[test]
    fn plain_failure() {
        let stream = r#"{"stream":"Step 1/1 : RUN echo before; exit 3\n"}
{"stream":" ---\u003e Running in 9b788c4d42f7\n"}
{"stream":"before\n"}
{"errorDetail":{"code":3,"message":"The command '/bin/sh -c echo before; exit 3' returned a non-zero code: 3"}}"#;
        let (mut m, events) = model_of(stream);
        let mut p = Plain::default();
        let mut out = String::new();
        for (now, e) in &events {
            out.push_str(&p.event(&m, e, *now));
        }
        m.finish(ms(500));
        out.push_str(&p.finish(&m, ms(500)));
        let want = "#0 DONE 0.1s\n\n\
                    #1 [1/1] RUN echo before; exit 3\n\
                    #1 0.200 before\n\
                    #1 ERROR: The command '/bin/sh -c echo before; exit 3' returned a non-zero code: 3\n\
                    ------\n > [1/1] RUN echo before; exit 3:\n0.200 before\n------\n";
        assert_eq!(out, want);
    }
}
