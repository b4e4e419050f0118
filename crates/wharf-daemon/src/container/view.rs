//! How containers look from outside: inspect, the `ps` summary, Docker's status strings and
//! list filters.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use wharf_api::models::{
    ContainerInspectResponse, ContainerState, ContainerStateStatusEnum, ContainerSummary, ContainerSummaryHostConfig,
    ContainerSummaryStateEnum, DriverData, Health, HealthStatusEnum, HealthcheckResult, NetworkSettings,
};
use wharf_types::units::human_duration;
use wharf_types::{EngineError, Filters};

use super::model::{ContainerRecord, Status, ZERO_TIME};

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if s == ZERO_TIME || s.is_empty() {
        return None;
    }
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

fn since(s: &str) -> i64 {
    parse_time(s).map(|t| (Utc::now() - t).num_seconds()).unwrap_or(0)
}

/// moby's `State.String()`: `Up 5 seconds`, `Exited (0) 2 minutes ago`, `Created`…
pub fn status_text(r: &ContainerRecord) -> String {
    let s = &r.state;
    match s.status {
        Status::Paused => format!("Up {} (Paused)", human_duration(since(&s.started_at))),
        Status::Restarting => format!("Restarting ({}) {} ago", s.exit_code, human_duration(since(&s.finished_at))),
        Status::Running => match &s.health {
            Some(h) if h.status == "starting" => {
                format!("Up {} (health: starting)", human_duration(since(&s.started_at)))
            }
            Some(h) => format!("Up {} ({})", human_duration(since(&s.started_at)), h.status),
            None => format!("Up {}", human_duration(since(&s.started_at))),
        },
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
        _ if parse_time(&s.started_at).is_none() => "Created".into(),
        _ if parse_time(&s.finished_at).is_none() => String::new(),
        _ => format!("Exited ({}) {} ago", s.exit_code, human_duration(since(&s.finished_at))),
    }
}

/// `Path` and `Args` as `ps` shows them: args containing a space are single-quoted.
pub fn command_text(r: &ContainerRecord) -> String {
    let mut s = r.path.clone();
    for a in &r.args {
        s.push(' ');
        if a.contains(' ') {
            s.push_str(&format!("'{a}'"));
        } else {
            s.push_str(a);
        }
    }
    s
}

fn created_unix(r: &ContainerRecord) -> i64 {
    parse_time(&r.created).map(|t| t.timestamp()).unwrap_or(0)
}

fn state_enum(s: Status) -> ContainerStateStatusEnum {
    match s {
        Status::Created => ContainerStateStatusEnum::CREATED,
        Status::Running => ContainerStateStatusEnum::RUNNING,
        Status::Paused => ContainerStateStatusEnum::PAUSED,
        Status::Restarting => ContainerStateStatusEnum::RESTARTING,
        Status::Removing => ContainerStateStatusEnum::REMOVING,
        Status::Exited => ContainerStateStatusEnum::EXITED,
        Status::Dead => ContainerStateStatusEnum::DEAD,
    }
}

fn summary_state(s: Status) -> ContainerSummaryStateEnum {
    match s {
        Status::Created => ContainerSummaryStateEnum::CREATED,
        Status::Running => ContainerSummaryStateEnum::RUNNING,
        Status::Paused => ContainerSummaryStateEnum::PAUSED,
        Status::Restarting => ContainerSummaryStateEnum::RESTARTING,
        Status::Removing => ContainerSummaryStateEnum::REMOVING,
        Status::Exited => ContainerSummaryStateEnum::EXITED,
        Status::Dead => ContainerSummaryStateEnum::DEAD,
    }
}

fn health(r: &ContainerRecord) -> Option<Health> {
    r.state.health.as_ref().map(|h| Health {
        status: Some(match h.status.as_str() {
            "healthy" => HealthStatusEnum::HEALTHY,
            "unhealthy" => HealthStatusEnum::UNHEALTHY,
            "starting" => HealthStatusEnum::STARTING,
            _ => HealthStatusEnum::NONE,
        }),
        failing_streak: Some(h.failing_streak),
        log: Some(
            h.log
                .iter()
                .map(|l| HealthcheckResult {
                    start: Some(l.start.clone()),
                    end: Some(l.end.clone()),
                    exit_code: Some(l.exit_code),
                    output: Some(l.output.clone()),
                })
                .collect(),
        ),
    })
}

/// `Mounts` as inspect and `ps` show them, by destination.
fn mounts(r: &ContainerRecord) -> Vec<wharf_api::models::MountPoint> {
    let mut points: Vec<_> = r.mount_points.iter().collect();
    points.sort_by(|a, b| a.destination.cmp(&b.destination));
    points.into_iter().map(|m| m.to_api()).collect()
}

/// Paths and sizes inspect reports that the service knows.
pub struct InspectExtras {
    pub container_dir: std::path::PathBuf,
    pub size_rw: Option<i64>,
    pub size_root_fs: Option<i64>,
    pub graph_upper: Option<String>,
}

/// Docker's `ContainerInspectResponse`.
pub fn inspect(r: &ContainerRecord, x: &InspectExtras) -> ContainerInspectResponse {
    let s = &r.state;
    let dir = x.container_dir.display().to_string();
    ContainerInspectResponse {
        id: Some(r.id.to_string()),
        created: Some(r.created.clone()),
        path: Some(r.path.clone()),
        args: Some(r.args.clone()),
        state: Some(ContainerState {
            status: Some(state_enum(s.status)),
            running: Some(matches!(s.status, Status::Running | Status::Paused | Status::Restarting)),
            paused: Some(s.status == Status::Paused),
            restarting: Some(s.status == Status::Restarting),
            oom_killed: Some(s.oom_killed),
            dead: Some(s.status == Status::Dead),
            pid: Some(s.pid),
            exit_code: Some(s.exit_code),
            error: Some(s.error.clone()),
            started_at: Some(s.started_at.clone()),
            finished_at: Some(s.finished_at.clone()),
            health: health(r),
        }),
        image: Some(r.image_id.clone()),
        resolv_conf_path: Some(format!("{dir}/resolv.conf")),
        hostname_path: Some(format!("{dir}/hostname")),
        hosts_path: Some(format!("{dir}/hosts")),
        log_path: Some(r.log_path.clone()),
        name: Some(format!("/{}", r.name)),
        restart_count: Some(r.restart_count),
        driver: Some("overlay2".into()),
        platform: Some("linux".into()),
        mount_label: Some(String::new()),
        process_label: Some(String::new()),
        app_armor_profile: Some(String::new()),
        exec_ids: None,
        host_config: Some(r.host_config.clone()),
        graph_driver: Some(DriverData {
            name: "overlay2".into(),
            data: x.graph_upper.iter().map(|u| ("UpperDir".to_owned(), u.clone())).collect::<HashMap<_, _>>(),
        }),
        size_rw: x.size_rw,
        size_root_fs: x.size_root_fs,
        mounts: Some(mounts(r)),
        config: Some(r.config.clone()),
        network_settings: Some(NetworkSettings {
            sandbox_id: Some(String::new()),
            sandbox_key: Some(String::new()),
            ports: Some(HashMap::new()),
            networks: Some(HashMap::new()),
        }),
        ..Default::default()
    }
}

/// One `ps` row.
pub fn summary(r: &ContainerRecord, size: Option<(i64, i64)>) -> ContainerSummary {
    ContainerSummary {
        id: Some(r.id.to_string()),
        names: Some(vec![format!("/{}", r.name)]),
        image: Some(r.image.clone()),
        image_id: Some(r.image_id.clone()),
        command: Some(command_text(r)),
        created: Some(created_unix(r)),
        ports: Some(Vec::new()),
        size_rw: size.map(|s| s.0),
        size_root_fs: size.map(|s| s.1),
        labels: Some(r.config.labels.clone().unwrap_or_default()),
        state: Some(summary_state(r.state.status)),
        status: Some(status_text(r)),
        host_config: Some(ContainerSummaryHostConfig {
            network_mode: Some(r.host_config.network_mode.clone().unwrap_or_else(|| "default".into())),
            annotations: None,
        }),
        network_settings: None,
        mounts: Some(mounts(r)),
        ..Default::default()
    }
}

/// The filters `GET /containers/json` accepts.
pub const LIST_FILTERS: &[&str] = &[
    "ancestor",
    "before",
    "expose",
    "exited",
    "health",
    "id",
    "isolation",
    "is-task",
    "label",
    "name",
    "network",
    "publish",
    "since",
    "status",
    "volume",
];

/// Checks filter values Docker validates up front.
pub fn validate_filters(f: &Filters) -> Result<(), EngineError> {
    f.validate(LIST_FILTERS)?;
    for s in f.get("status") {
        if !["created", "restarting", "running", "removing", "paused", "exited", "dead"].contains(&s) {
            return Err(EngineError::invalid(format!("invalid filter 'status={s}': Invalid filter 'status={s}'")));
        }
    }
    for h in f.get("health") {
        if !["starting", "healthy", "unhealthy", "none"].contains(&h) {
            return Err(EngineError::invalid(format!("Unrecognised filter value for health: {h}")));
        }
    }
    for e in f.get("exited") {
        if e.parse::<i64>().is_err() {
            return Err(EngineError::invalid(format!("invalid filter 'exited={e}'")));
        }
    }
    Ok(())
}

/// Whether `r` passes the filters that need only the record. `ancestor` is matched by the
/// caller (it needs image lookups) and passed in as the set of matching image IDs.
pub fn matches(r: &ContainerRecord, f: &Filters, ancestors: Option<&[String]>) -> bool {
    let status = r.state.status.as_str();
    f.any("id", |v| r.id.as_str().starts_with(v))
        && f.any("name", |v| r.name.contains(v.trim_start_matches('/')))
        && f.match_labels(&r.labels())
        && f.exact_match("status", status)
        && f.any("exited", |v| r.state.status == Status::Exited && v.parse::<i64>().ok() == Some(r.state.exit_code))
        && f.any("health", |v| match &r.state.health {
            None => v == "none",
            Some(h) => h.status == v,
        })
        && ancestors.is_none_or(|ids| ids.contains(&r.image_id))
        && f.any("is-task", |v| v == "false")
        && f.any("isolation", |v| v == "default" || v.is_empty())
        && f.any("volume", |v| {
            // moby: a volume's name (a bind's source) or a mount's destination.
            r.mount_points.iter().any(|m| {
                let key = if m.name.is_empty() { &m.source } else { &m.name };
                key == v || m.destination == v
            })
        })
        && f.any("expose", |v| {
            let want = if v.contains('/') { v.to_owned() } else { format!("{v}/tcp") };
            r.config.exposed_ports.as_ref().is_some_and(|p| p.contains(&want))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> ContainerRecord {
        serde_json::from_value(serde_json::json!({
            "id": "a".repeat(64), "name": "web", "created": "2026-01-01T00:00:00Z", "image": "busybox",
            "image_id": "sha256:x", "config": {"Labels": {"a": "b"}}, "host_config": {}, "path": "sh",
            "args": ["-c", "echo hi there"], "state": {"status": "exited", "pid": 0, "exit_code": 3, "error": "",
            "started_at": "2026-01-01T00:00:01Z", "finished_at": "2026-01-01T00:00:02Z", "oom_killed": false},
            "restart_count": 0, "manually_stopped": false, "has_been_started": true, "runtime": "wharf",
            "log_path": "", "rw_layer": "k"
        }))
        .unwrap()
    }

    #[test]
    fn status_and_command_like_docker() {
        let r = rec();
        assert!(status_text(&r).starts_with("Exited (3) "), "{}", status_text(&r));
        assert!(status_text(&r).ends_with(" ago"));
        assert_eq!(command_text(&r), "sh -c 'echo hi there'");
        let mut c = rec();
        c.state.status = Status::Created;
        c.state.started_at = ZERO_TIME.into();
        assert_eq!(status_text(&c), "Created");
    }

    #[test]
    fn filters() {
        let r = rec();
        let f = |s: &str| Filters::parse(s).unwrap();
        assert!(matches(&r, &f(r#"{"status":["exited"]}"#), None));
        assert!(!matches(&r, &f(r#"{"status":["running"]}"#), None));
        assert!(matches(&r, &f(r#"{"exited":["3"]}"#), None));
        assert!(!matches(&r, &f(r#"{"exited":["0"]}"#), None));
        assert!(matches(&r, &f(r#"{"name":["we"]}"#), None));
        assert!(matches(&r, &f(r#"{"id":["aaa"]}"#), None));
        assert!(matches(&r, &f(r#"{"label":["a=b"]}"#), None));
        assert!(matches(&r, &f(r#"{"health":["none"]}"#), None));
        assert!(validate_filters(&f(r#"{"status":["bogus"]}"#)).is_err());
        assert!(validate_filters(&f(r#"{"nope":["x"]}"#)).is_err());
        let mut v = rec();
        v.mount_points = vec![
            crate::volume::mountpoint::parse_bind("data:/data", "").unwrap(),
            crate::volume::mountpoint::parse_bind("/srv:/srv", "").unwrap(),
        ];
        assert!(matches(&v, &f(r#"{"volume":["data"]}"#), None));
        assert!(matches(&v, &f(r#"{"volume":["/data"]}"#), None));
        assert!(matches(&v, &f(r#"{"volume":["/srv"]}"#), None));
        assert!(!matches(&v, &f(r#"{"volume":["other"]}"#), None));
        assert!(!matches(&r, &f(r#"{"volume":["data"]}"#), None));
        let shown = mounts(&v);
        assert_eq!(shown[0].destination.as_deref(), Some("/data"));
        assert_eq!(shown[0].typ.as_deref(), Some("volume"));
        assert_eq!(shown[1].propagation.as_deref(), Some("rprivate"));
    }
}
