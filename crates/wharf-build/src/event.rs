//! What a build reports while it runs ([`BuildEvent`]), and the rendering of events and errors
//! into the legacy `/build` JSON stream ([`render`], [`render_error`]), so the daemon only
//! serialises [`LegacyMessage`]s and writes them with `\r\n` after each.
//!
//! The events of one build arrive in Docker's order even when stages run in parallel: the
//! builder holds back a stage's events until the stages before it (in file order) are done.
//!
//! ```text
//! Step { 1, 4, "FROM busybox" }     {"stream":"Step 1/4 : FROM busybox"} {"stream":"\n"}
//! StepImage { Some(id) }            {"stream":" ---> 991ddad84e5f\n"}
//! RunningIn { id }                  {"stream":" ---> Running in 4dc390b857cc\n"}
//! Output { b"hi\n" }                {"stream":"hi\n"}
//! RemovingContainer { id }          {"stream":"Removing intermediate container 4dc390b857cc\n"}
//! UsingCache                        {"stream":" ---> Using cache\n"}
//! StageImage { id }                 {"aux":{"ID":"sha256:…"}}
//! Warning { msg }                   {"stream":"[Warning] msg\n"}
//! Built { id }                      {"stream":"Successfully built d84325e96369\n"}
//! Tagged { r }                      {"stream":"Successfully tagged spy/built:v1\n"}
//! error                             {"errorDetail":{"code":3,"message":"…"},"error":"…"}
//! ```

use serde::Serialize;
use wharf_types::{ContainerId, Digest, Reference};

/// One thing that happened during a build, in display order.
#[derive(Debug, Clone, PartialEq)]
pub enum BuildEvent {
    /// A step starts: `Step N/M : <instruction as written>`.
    Step { number: usize, total: usize, text: String },
    /// ONBUILD triggers of the base image are about to run.
    Triggers { count: usize },
    /// A step's container was created (also for metadata-only steps, as Docker prints it).
    RunningIn { container: ContainerId },
    /// Process output of a RUN step, or other step output (download notes), as raw bytes.
    Output { data: Vec<u8> },
    /// The step's container was removed.
    RemovingContainer { container: ContainerId },
    /// The step was satisfied from the build cache.
    UsingCache,
    /// A step finished with this image (`None` only after `FROM scratch`).
    StepImage { image: Option<Digest> },
    /// A stage finished with this image (Docker's per-stage `aux` ID).
    StageImage { image: Digest },
    /// A progress message passed through as it is (pull progress).
    Progress(serde_json::Value),
    /// A warning line (`One or more build-args [X] were not consumed`).
    Warning { message: String },
    /// The build's result.
    Built { image: Digest },
    /// A `-t` tag now points at the result.
    Tagged { reference: Reference },
}

/// One object of the legacy build stream (moby's `jsonmessage.JSONMessage`, the fields a
/// build uses). Serialise it with `serde_json` and write `\r\n` after it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LegacyMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux: Option<serde_json::Value>,
    #[serde(rename = "errorDetail", skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<ErrorDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Passed-through progress messages are kept whole here and serialised as they are.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub raw: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `errorDetail`: the CLI exits with `code` when it is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    pub message: String,
}

impl LegacyMessage {
    pub fn stream(text: impl Into<String>) -> Self {
        Self { stream: Some(text.into()), ..Self::default() }
    }

    /// The object as JSON, without the trailing `\r\n`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a legacy message always serialises")
    }
}

fn short(d: &Digest) -> &str {
    d.short()
}

/// The stream objects Docker's legacy builder writes for an event.
pub fn render(event: &BuildEvent) -> Vec<LegacyMessage> {
    fn s(t: impl Into<String>) -> LegacyMessage {
        LegacyMessage::stream(t)
    }
    match event {
        BuildEvent::Step { number, total, text } => vec![s(format!("Step {number}/{total} : {text}")), s("\n")],
        BuildEvent::Triggers { count } => {
            vec![s(format!("# Executing {count} build trigger{}\n", if *count > 1 { "s" } else { "" }))]
        }
        BuildEvent::RunningIn { container } => {
            vec![s(format!(" ---> Running in {}\n", container.short()))]
        }
        BuildEvent::Output { data } => vec![s(String::from_utf8_lossy(data).into_owned())],
        BuildEvent::RemovingContainer { container } => {
            vec![s(format!("Removing intermediate container {}\n", container.short()))]
        }
        BuildEvent::UsingCache => vec![s(" ---> Using cache\n")],
        BuildEvent::StepImage { image } => vec![s(format!(" ---> {}\n", image.as_ref().map(short).unwrap_or("")))],
        BuildEvent::StageImage { image } => vec![LegacyMessage {
            aux: Some(serde_json::json!({ "ID": image.to_string() })),
            ..LegacyMessage::default()
        }],
        BuildEvent::Progress(v) => vec![LegacyMessage { raw: v.as_object().cloned(), ..LegacyMessage::default() }],
        BuildEvent::Warning { message } => vec![s(format!("[Warning] {message}\n"))],
        BuildEvent::Built { image } => vec![s(format!("Successfully built {}\n", short(image)))],
        BuildEvent::Tagged { reference } => {
            vec![s(format!("Successfully tagged {}\n", reference.familiar()))]
        }
    }
}

/// The object that ends a failed build: `errorDetail` (with the exit code of a failed RUN)
/// and the deprecated `error` copy.
pub fn render_error(message: &str, code: Option<i32>) -> LegacyMessage {
    LegacyMessage {
        error_detail: Some(ErrorDetail { code, message: message.to_string() }),
        error: Some(message.to_string()),
        ..LegacyMessage::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64)).parse().unwrap()
    }

    fn json(e: &BuildEvent) -> Vec<String> {
        render(e).iter().map(LegacyMessage::to_json).collect()
    }

    #[test]
    fn renders_docker_stream_text() {
        assert_eq!(
            json(&BuildEvent::Step { number: 1, total: 7, text: "FROM busybox".into() }),
            vec![r#"{"stream":"Step 1/7 : FROM busybox"}"#, r#"{"stream":"\n"}"#]
        );
        assert_eq!(
            json(&BuildEvent::StepImage { image: Some(digest('a')) }),
            vec![r#"{"stream":" ---> aaaaaaaaaaaa\n"}"#]
        );
        assert_eq!(json(&BuildEvent::StepImage { image: None }), vec![r#"{"stream":" ---> \n"}"#]);
        assert_eq!(
            json(&BuildEvent::StageImage { image: digest('b') }),
            vec![format!(r#"{{"aux":{{"ID":"sha256:{}"}}}}"#, "b".repeat(64))]
        );
        assert_eq!(json(&BuildEvent::Triggers { count: 2 }), vec![r##"{"stream":"# Executing 2 build triggers\n"}"##]);
        let r = Reference::parse_normalized("spy/built:v1").unwrap();
        assert_eq!(
            json(&BuildEvent::Tagged { reference: r }),
            vec![r#"{"stream":"Successfully tagged spy/built:v1\n"}"#]
        );
        assert_eq!(
            json(&BuildEvent::Warning { message: "One or more build-args [X] were not consumed".into() }),
            vec![r#"{"stream":"[Warning] One or more build-args [X] were not consumed\n"}"#]
        );
    }

    #[test]
    fn renders_errors_with_codes() {
        let m = render_error("The command '/bin/sh -c exit 3' returned a non-zero code: 3", Some(3));
        assert_eq!(
            m.to_json(),
            r#"{"errorDetail":{"code":3,"message":"The command '/bin/sh -c exit 3' returned a non-zero code: 3"},"error":"The command '/bin/sh -c exit 3' returned a non-zero code: 3"}"#
        );
        let m = render_error("COPY failed: x", None);
        assert_eq!(m.to_json(), r#"{"errorDetail":{"message":"COPY failed: x"},"error":"COPY failed: x"}"#);
    }

    #[test]
    fn progress_passes_through() {
        let v = serde_json::json!({"status":"Pulling fs layer","progressDetail":{},"id":"abc"});
        assert_eq!(
            json(&BuildEvent::Progress(v)),
            vec![r#"{"id":"abc","progressDetail":{},"status":"Pulling fs layer"}"#]
        );
    }
}
