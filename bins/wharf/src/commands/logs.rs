//! `logs`: inspect first (for `Config.Tty`), then `GET /containers/{id}/logs`, copied raw for
//! TTY containers and demultiplexed to stdout/stderr otherwise.

use futures_util::StreamExt;
use http::Method;

use super::Ctx;
use super::run::encode_query;
use crate::api::{self, Api, Demux, Frame, FrameSink};
use crate::cli_container::LogsArgs;
use crate::client::CliError;
use crate::timefmt;

/// The logs query the Go client builds (keys sorted).
pub fn logs_path(id: &str, args: &LogsArgs, now: chrono::DateTime<chrono::Utc>) -> Result<String, CliError> {
    let mut q: Vec<(&str, String)> = vec![("stdout", "1".into()), ("stderr", "1".into())];
    if let Some(s) = args.since.as_deref().filter(|s| !s.is_empty()) {
        q.push(("since", timefmt::api_timestamp(s, now)?));
    }
    if let Some(u) = args.until.as_deref().filter(|s| !s.is_empty()) {
        q.push(("until", timefmt::api_timestamp(u, now)?));
    }
    if args.timestamps {
        q.push(("timestamps", "1".into()));
    }
    if args.details {
        q.push(("details", "1".into()));
    }
    if args.follow {
        q.push(("follow", "1".into()));
    }
    q.push(("tail", args.tail.clone()));
    Ok(format!("/containers/{id}/logs?{}", encode_query(&q)))
}

pub async fn logs(ctx: &Ctx, args: LogsArgs) -> Result<(), CliError> {
    let api = Api::connect(ctx).await?;
    let c = api.docker.inspect_container(&args.container, None).await.map_err(|e| api.err(e))?;
    let id = c.id.clone().unwrap_or_else(|| args.container.clone());
    let tty = c.config.as_ref().and_then(|c| c.tty).unwrap_or(false);
    let path = logs_path(&id, &args, chrono::Utc::now())?;
    let resp = api.raw.send(Method::GET, &path, &[], api::empty()).await?;
    let mut body = api::body_stream(resp);
    let mut demux = Demux::new();
    use std::io::Write;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| CliError::Other(e.to_string()))?;
        if tty {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(&chunk);
            let _ = o.flush();
            continue;
        }
        let mut sink = FrameSink::default();
        demux
            .feed(&chunk, |f| match f {
                Frame::Stdout(p) => sink.stdout(p),
                Frame::Stderr(p) => sink.stderr(p),
                Frame::SystemErr(_) => Ok(()),
            })
            .map_err(CliError::Other)?;
        sink.flush().map_err(|e| CliError::Other(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn query_like_the_go_client() {
        let args = LogsArgs {
            details: false,
            follow: true,
            since: Some("2s".into()),
            tail: "3".into(),
            timestamps: true,
            until: None,
            container: "c".into(),
        };
        let now = chrono::Utc.timestamp_opt(1_795_400_533, 0).unwrap();
        assert_eq!(
            logs_path("abc", &args, now).unwrap(),
            "/containers/abc/logs?follow=1&since=1795400531&stderr=1&stdout=1&tail=3&timestamps=1"
        );
    }
}
