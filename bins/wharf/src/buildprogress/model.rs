//! The legacy `/build` stream as a list of steps.
//!
//! The daemon's stream is text meant for a terminal (`Step 2/5 : RUN make`, ` ---> Running in
//! 4dc390b857cc`, the command's output, ` ---> Using cache`, ` ---> 281d2fa25911`), plus `aux`
//! image IDs, pull `status` messages and a final `errorDetail`. [`BuildModel::feed`] reads it
//! message by message, cuts the text into lines (a message may hold part of a line or several
//! lines) and turns each line into a change of one [`Step`], reported as an [`Event`] for
//! renderers that print as they go (plain) and kept in the model for renderers that redraw
//! (tty).
//!
//! Times are given by the caller (elapsed since the build started), so the model is the same
//! for the same input whatever the clock says.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::Value as Json;

use crate::jsonmessage::{JsonMessage, StreamError};

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    Running,
    /// Satisfied by the build cache (` ---> Using cache`).
    Cached,
    /// Finished with an image (` ---> <id>`).
    Done,
    /// The build failed during this step.
    Error,
}

/// One `Step N/M : TEXT` of the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub number: usize,
    pub total: usize,
    /// The instruction as the daemon printed it (`RUN make`).
    pub text: String,
    pub state: StepState,
    pub started: Duration,
    pub finished: Option<Duration>,
    /// The intermediate container (` ---> Running in <id>`).
    pub container: Option<String>,
    /// The step's image, short ID (empty for a stage that is still `scratch`).
    pub image: Option<String>,
    /// Output lines with the time each was complete, `\r`-rewritten lines reduced to what a
    /// terminal would show last: the last [`OUTPUT_LIMIT`] bytes of them.
    pub output: VecDeque<(Duration, String)>,
    /// Bytes in `output`.
    output_bytes: usize,
    /// Lines dropped from the front of `output` to stay under the limit.
    pub clipped: usize,
}

/// How much of a step's output is kept (BuildKit keeps 2 MiB of a step's log too).
pub const OUTPUT_LIMIT: usize = 2 << 20;

impl Step {
    /// `[N/M] TEXT`, as BuildKit names a step.
    pub fn title(&self) -> String {
        format!("[{}/{}] {}", self.number, self.total, self.text)
    }

    /// Time spent so far (running) or in all.
    pub fn elapsed(&self, now: Duration) -> Duration {
        self.finished.unwrap_or(now).saturating_sub(self.started)
    }

    pub fn is_finished(&self) -> bool {
        self.state != StepState::Running
    }

    fn push_output(&mut self, at: Duration, line: String) {
        self.output_bytes += line.len();
        self.output.push_back((at, line));
        while self.output_bytes > OUTPUT_LIMIT
            && let Some((_, old)) = self.output.pop_front()
        {
            self.output_bytes -= old.len();
            self.clipped += 1;
        }
    }
}

/// What one line of the stream changed, for renderers that print as they go. Indices are into
/// [`BuildModel::steps`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    StepStarted(usize),
    Output(usize, String),
    Cached(usize),
    Done(usize),
    /// The build failed in this step ([`BuildModel::error`] says why).
    Failed(usize),
    /// The build failed outside of any step.
    Error,
    /// A line that belongs to no step (warnings, `Successfully built`, …).
    Log(String),
}

/// The whole build as far as the stream has told.
#[derive(Debug, Default)]
pub struct BuildModel {
    pub steps: Vec<Step>,
    /// The last `aux` image ID (the target stage's: `--iidfile`).
    pub image_id: Option<String>,
    /// `Successfully tagged <ref>` lines.
    pub tags: Vec<String>,
    /// `[Warning] …` lines, without the prefix.
    pub warnings: Vec<String>,
    /// The stream's `errorDetail`.
    pub error: Option<StreamError>,
    /// When the stream ended.
    pub finished: Option<Duration>,
    /// Stream text not ended by a newline yet.
    pending: String,
}

/// The text a terminal shows for a line that rewrites itself with `\r`, with control
/// characters and escape sequences removed and tabs expanded to one space.
pub fn printable(line: &str) -> String {
    let last = line.trim_end_matches('\r').rsplit('\r').next().unwrap_or_default();
    let mut out = String::with_capacity(last.len());
    let mut chars = last.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                // CSI: ESC [ params final-byte; other escapes: ESC + one char.
                if chars.next_if_eq(&'[').is_some() {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// `Step 2/5 : RUN make` → (2, 5, "RUN make").
fn parse_step(line: &str) -> Option<(usize, usize, &str)> {
    let rest = line.strip_prefix("Step ")?;
    let (counts, text) = rest.split_once(" : ")?;
    let (n, m) = counts.split_once('/')?;
    Some((n.parse().ok()?, m.parse().ok()?, text))
}

fn is_short_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl BuildModel {
    /// The step being run, if the last one is still running.
    pub fn running(&self) -> Option<usize> {
        self.steps.last().filter(|s| s.state == StepState::Running).map(|_| self.steps.len() - 1)
    }

    /// The number of steps the build has (`M` of the last `Step N/M`).
    pub fn total(&self) -> usize {
        self.steps.last().map_or(0, |s| s.total.max(self.steps.len()))
    }

    /// The partial output line of the running step (not ended by a newline yet).
    pub fn partial_output(&self) -> Option<String> {
        self.running()?;
        let p = printable(&self.pending);
        (!p.trim().is_empty() && !self.pending.starts_with("Step ")).then_some(p)
    }

    /// Reads one message received at `now`.
    pub fn feed(&mut self, m: &JsonMessage, now: Duration) -> Vec<Event> {
        let mut events = Vec::new();
        if let Some(aux) = &m.aux {
            if let Some(id) = aux.get("ID").and_then(Json::as_str) {
                self.image_id = Some(id.to_owned());
            }
            return events;
        }
        if let Some(e) = &m.error_detail {
            self.flush(now, &mut events);
            self.error = Some(StreamError { code: (e.code != 0).then_some(e.code), message: e.message.clone() });
            match self.running() {
                Some(i) => {
                    let s = &mut self.steps[i];
                    s.state = StepState::Error;
                    s.finished = Some(now);
                    events.push(Event::Failed(i));
                }
                None => events.push(Event::Error),
            }
            return events;
        }
        if !m.stream.is_empty() {
            self.pending.push_str(&m.stream);
            while let Some(end) = self.pending.find('\n') {
                let line: String = self.pending.drain(..=end).collect();
                self.line(line.trim_end_matches('\n'), now, &mut events);
            }
        } else if !m.status.is_empty() {
            // Pull progress of a FROM: the messages the CLI prints when not on a terminal.
            let counting = m.progress_detail.as_ref().is_some_and(|p| p.current > 0 || p.total > 0);
            if !counting {
                let line = if m.id.is_empty() { m.status.clone() } else { format!("{}: {}", m.id, m.status) };
                self.line(&line, now, &mut events);
            }
        }
        events
    }

    /// The stream ended at `now`: a last line without a newline is still a line.
    pub fn finish(&mut self, now: Duration) -> Vec<Event> {
        let mut events = Vec::new();
        self.flush(now, &mut events);
        self.finished = Some(now);
        events
    }

    fn flush(&mut self, now: Duration, events: &mut Vec<Event>) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.line(&line, now, events);
        }
    }

    fn line(&mut self, line: &str, now: Duration, events: &mut Vec<Event>) {
        if let Some((number, total, text)) = parse_step(line) {
            if let Some(i) = self.running() {
                // A step without its ` ---> id` line (a build trigger's, or an old daemon's).
                self.steps[i].state = StepState::Done;
                self.steps[i].finished = Some(now);
                events.push(Event::Done(i));
            }
            self.steps.push(Step {
                number,
                total,
                text: text.to_owned(),
                state: StepState::Running,
                started: now,
                finished: None,
                container: None,
                image: None,
                output: VecDeque::new(),
                output_bytes: 0,
                clipped: 0,
            });
            events.push(Event::StepStarted(self.steps.len() - 1));
            return;
        }
        if let Some(i) = self.running() {
            let step = &mut self.steps[i];
            if line == " ---> Using cache" {
                step.state = StepState::Cached;
                step.finished = Some(now);
                events.push(Event::Cached(i));
                return;
            }
            if let Some(id) = line.strip_prefix(" ---> Running in ") {
                step.container = Some(id.trim().to_owned());
                return;
            }
            if line.starts_with("Removing intermediate container ") {
                return;
            }
            if let Some(id) = line.strip_prefix(" ---> ")
                && (id.is_empty() || is_short_id(id))
            {
                step.image = Some(id.to_owned());
                step.state = StepState::Done;
                step.finished = Some(now);
                events.push(Event::Done(i));
                return;
            }
            if !line.starts_with("Successfully built ") && !line.starts_with("[Warning] ") {
                let text = printable(line);
                step.push_output(now, text.clone());
                events.push(Event::Output(i, text));
                return;
            }
        }
        if let Some(step) = self.steps.last_mut()
            && step.state == StepState::Cached
            && let Some(id) = line.strip_prefix(" ---> ")
            && is_short_id(id)
        {
            // The image of a cached step.
            step.image = Some(id.to_owned());
            return;
        }
        if let Some(t) = line.strip_prefix("Successfully tagged ") {
            self.tags.push(t.to_owned());
        } else if let Some(w) = line.strip_prefix("[Warning] ") {
            self.warnings.push(w.to_owned());
        }
        events.push(Event::Log(line.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(text: &str) -> Vec<JsonMessage> {
        crate::jsonmessage::decode_all(text)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// A rebuild with one cached step, one run step with output split across messages, as
    /// the daemon sends it.
    const STREAM: &str = r#"{"stream":"Step 1/4 : FROM busybox"}
{"stream":"\n"}
{"stream":" ---\u003e 991ddad84e5f\n"}
{"stream":"Step 2/4 : COPY f.txt /f.txt"}
{"stream":"\n"}
{"stream":" ---\u003e Using cache\n"}
{"stream":" ---\u003e 7d2910a01e35\n"}
{"stream":"Step 3/4 : RUN make"}
{"stream":"\n"}
{"stream":" ---\u003e Running in 9b788c4d42f7\n"}
{"stream":"compiling a\ncompil"}
{"stream":"ing b\n\u001b[1mbold\u001b[0m\tx\r\n"}
{"stream":"Removing intermediate container 9b788c4d42f7\n"}
{"stream":" ---\u003e 281d2fa25911\n"}
{"stream":"Step 4/4 : LABEL a=b"}
{"stream":"\n"}
{"stream":" ---\u003e Running in 4dc390b857cc\n"}
{"stream":"Removing intermediate container 4dc390b857cc\n"}
{"stream":" ---\u003e d4f977b374c0\n"}
{"aux":{"ID":"sha256:d84325e9636960cc84b69e13453e1d1065c6c4aab25adc311ac57716bff695e2"}}
{"stream":"[Warning] One or more build-args [X] were not consumed\n"}
{"stream":"Successfully built d84325e96369\n"}
{"stream":"Successfully tagged x:latest\n"}
"#;

    #[test]
    fn stream_becomes_steps() {
        let mut m = BuildModel::default();
        let mut events = Vec::new();
        for (i, msg) in msgs(STREAM).iter().enumerate() {
            events.extend(m.feed(msg, secs(i as u64)));
        }
        events.extend(m.finish(secs(100)));
        let states: Vec<_> = m.steps.iter().map(|s| (s.number, s.total, s.text.as_str(), s.state)).collect();
        assert_eq!(
            states,
            vec![
                (1, 4, "FROM busybox", StepState::Done),
                (2, 4, "COPY f.txt /f.txt", StepState::Cached),
                (3, 4, "RUN make", StepState::Done),
                (4, 4, "LABEL a=b", StepState::Done),
            ]
        );
        let run = &m.steps[2];
        assert_eq!(run.container.as_deref(), Some("9b788c4d42f7"));
        assert_eq!(run.image.as_deref(), Some("281d2fa25911"));
        assert_eq!((run.started, run.finished), (secs(8), Some(secs(13))));
        let out: Vec<_> = run.output.iter().map(|(t, l)| (t.as_secs(), l.as_str())).collect();
        assert_eq!(out, vec![(10, "compiling a"), (11, "compiling b"), (11, "bold x")]);
        assert!(m.steps[3].output.is_empty(), "container lines are not output");
        assert_eq!(
            m.image_id.as_deref(),
            Some("sha256:d84325e9636960cc84b69e13453e1d1065c6c4aab25adc311ac57716bff695e2")
        );
        assert_eq!(m.tags, vec!["x:latest"]);
        assert_eq!(m.warnings, vec!["One or more build-args [X] were not consumed"]);
        assert_eq!(m.total(), 4);
        assert!(m.error.is_none());
        assert_eq!(
            events,
            vec![
                Event::StepStarted(0),
                Event::Done(0),
                Event::StepStarted(1),
                Event::Cached(1),
                Event::StepStarted(2),
                Event::Output(2, "compiling a".into()),
                Event::Output(2, "compiling b".into()),
                Event::Output(2, "bold x".into()),
                Event::Done(2),
                Event::StepStarted(3),
                Event::Done(3),
                Event::Log("[Warning] One or more build-args [X] were not consumed".into()),
                Event::Log("Successfully built d84325e96369".into()),
                Event::Log("Successfully tagged x:latest".into()),
            ]
        );
    }

    #[test]
    fn a_failing_step_keeps_its_output_and_the_code() {
        let stream = r#"{"stream":"Step 1/2 : FROM busybox\n"}
{"stream":" ---\u003e 991ddad84e5f\n"}
{"stream":"Step 2/2 : RUN echo before; exit 3\n"}
{"stream":" ---\u003e Running in 9b788c4d42f7\n"}
{"stream":"before\nno newline"}
{"errorDetail":{"code":3,"message":"The command '/bin/sh -c echo before; exit 3' returned a non-zero code: 3"},"error":"x"}
"#;
        let mut m = BuildModel::default();
        let mut events = Vec::new();
        for msg in msgs(stream) {
            events.extend(m.feed(&msg, secs(1)));
        }
        assert_eq!(m.steps[1].state, StepState::Error);
        let out: Vec<_> = m.steps[1].output.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(out, vec!["before", "no newline"]);
        assert_eq!(m.error.as_ref().unwrap().code, Some(3));
        assert_eq!(events.last(), Some(&Event::Failed(1)));
        // An error before any step is the build's.
        let mut m = BuildModel::default();
        let ev = m.feed(&msgs(r#"{"errorDetail":{"message":"No such image: x"}}"#)[0], secs(0));
        assert_eq!(ev, vec![Event::Error]);
        assert_eq!(m.error.unwrap().code, None);
    }

    #[test]
    fn partial_lines_and_pull_messages() {
        let mut m = BuildModel::default();
        for msg in msgs(
            r#"{"stream":"Step 1/2 : FROM nosuch\n"}
{"status":"Pulling from library/nosuch","id":"latest"}
{"status":"Downloading","progressDetail":{"current":5,"total":10},"id":"abc"}
{"status":"Pull complete","progressDetail":{},"id":"abc"}
{"stream":"50% done\r"}"#,
        ) {
            m.feed(&msg, secs(0));
        }
        let out: Vec<_> = m.steps[0].output.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(out, vec!["latest: Pulling from library/nosuch", "abc: Pull complete"]);
        assert_eq!(m.partial_output().as_deref(), Some("50% done"));
        m.feed(&msgs(r#"{"stream":"\r60% done"}"#)[0], secs(0));
        assert_eq!(m.partial_output().as_deref(), Some("60% done"));
    }

    #[test]
    fn output_is_kept_up_to_a_limit() {
        let mut m = BuildModel::default();
        m.feed(&msgs(r#"{"stream":"Step 1/1 : RUN yes\n"}"#)[0], secs(0));
        let line = "y".repeat(1024);
        let chunk = format!("{line}\n").repeat(1024);
        let msg = JsonMessage { stream: chunk, ..JsonMessage::default() };
        for _ in 0..3 {
            m.feed(&msg, secs(1));
        }
        let s = &m.steps[0];
        assert_eq!((s.output.len(), s.clipped), (2048, 1024));
        assert_eq!(s.output_bytes, OUTPUT_LIMIT);
    }

    #[test]
    fn printable_text() {
        assert_eq!(printable("a\rb\r"), "b");
        assert_eq!(printable("\x1b[31mred\x1b[0m\tx\x07"), "red x");
        assert_eq!(parse_step("Step 12/30 : RUN a : b"), Some((12, 30, "RUN a : b")));
        assert_eq!(parse_step("Step x/3 : RUN"), None);
    }
}
