//! `--change` instructions (`docker import -c`, `docker commit -c`): Dockerfile lines applied to
//! an image config, as moby's `BuildFromConfig` does. Only CMD, ENTRYPOINT, ENV, EXPOSE,
//! HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME and WORKDIR are allowed; variables are
//! expanded with the config's environment as it stands at each instruction.

use std::collections::BTreeMap;

use serde_json::Value;
use wharf_dockerfile::{CommandLine, Healthcheck, InstructionKind, parse, parse_port_spec};
use wharf_types::image::{HealthConfig, RuntimeConfig};

use super::ImageError;
use wharf_types::path::clean as clean_path;

const VALID: &[&str] = &[
    "cmd",
    "entrypoint",
    "healthcheck",
    "env",
    "expose",
    "label",
    "onbuild",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

fn command(c: &CommandLine) -> Vec<String> {
    if c.prepend_shell {
        let mut v = vec!["/bin/sh".to_owned(), "-c".to_owned()];
        v.extend(c.args.iter().cloned());
        v
    } else {
        c.args.clone()
    }
}

fn set_env(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    match env.iter_mut().find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key) {
        Some(e) => *e = entry,
        None => env.push(entry),
    }
}

/// A signal as `STOPSIGNAL` accepts it: a name (`SIGTERM`, `TERM`) or a number.
fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let name = s.strip_prefix("SIG").unwrap_or(s).to_ascii_uppercase();
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL", "PIPE", "POLL",
        "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1",
        "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
    ];
    NAMES.contains(&name.as_str())
        || name
            .strip_prefix("RTMIN")
            .or_else(|| name.strip_prefix("RTMAX"))
            .is_some_and(|r| r.is_empty() || r.trim_start_matches(['+', '-']).parse::<u8>().is_ok())
}

/// Applies `changes` to `config`. Errors are 400s with Docker's messages.
pub fn apply_changes(config: &mut RuntimeConfig, changes: &[String]) -> Result<(), ImageError> {
    let changes: Vec<&str> = changes.iter().map(|c| c.as_str()).filter(|c| !c.trim().is_empty()).collect();
    if changes.is_empty() {
        return Ok(());
    }
    let text = format!("FROM scratch\n{}\n", changes.join("\n"));
    let df = parse(&text).map_err(|e| {
        ImageError::Invalid(format!("dockerfile parse error on line {}: {}", e.line().saturating_sub(1), e.message()))
    })?;
    if let Some(second) = df.stages.get(1) {
        let _ = second;
        return Err(ImageError::Invalid("from is not a valid change command".to_owned()));
    }
    let lexer = df.lexer();
    let mut cmd_set = false;
    for inst in df.stages.first().map(|s| s.instructions.as_slice()).unwrap_or(&[]) {
        let keyword = inst.kind.keyword().to_ascii_lowercase();
        if !VALID.contains(&keyword.as_str()) {
            return Err(ImageError::Invalid(format!("{keyword} is not a valid change command")));
        }
        let env: Vec<String> = config.env.clone().unwrap_or_default();
        let inst = inst.expand(&lexer, &env).map_err(|e| ImageError::Invalid(e.to_string()))?;
        match inst.kind {
            InstructionKind::Cmd(c) => {
                config.cmd = Some(command(&c));
                cmd_set = true;
            }
            InstructionKind::Entrypoint(c) => {
                config.entrypoint = if c.args.is_empty() { None } else { Some(command(&c)) };
                if !cmd_set {
                    config.cmd = None;
                }
            }
            InstructionKind::Env(kvs) => {
                let env = config.env.get_or_insert_with(Vec::new);
                for kv in kvs {
                    set_env(env, &kv.key, &kv.value);
                }
            }
            InstructionKind::Expose(words) => {
                let ports = config.exposed_ports.get_or_insert_with(BTreeMap::new);
                for w in words {
                    let p = parse_port_spec(&w).map_err(ImageError::Invalid)?;
                    for k in p.keys() {
                        ports.insert(k, Value::Object(Default::default()));
                    }
                }
            }
            InstructionKind::Healthcheck(h) => {
                config.healthcheck = Some(match h {
                    Healthcheck::None => HealthConfig { test: vec!["NONE".to_owned()], ..Default::default() },
                    Healthcheck::Check(c) => HealthConfig {
                        test: c.test,
                        interval: c.interval.as_nanos() as i64,
                        timeout: c.timeout.as_nanos() as i64,
                        start_period: c.start_period.as_nanos() as i64,
                        start_interval: c.start_interval.as_nanos() as i64,
                        retries: i64::from(c.retries),
                    },
                });
            }
            InstructionKind::Label(kvs) => {
                let labels = config.labels.get_or_insert_with(BTreeMap::new);
                for kv in kvs {
                    labels.insert(kv.key, kv.value);
                }
            }
            InstructionKind::Onbuild(o) => {
                config.on_build.get_or_insert_with(Vec::new).push(o.expression);
            }
            InstructionKind::StopSignal(s) => {
                if !valid_signal(&s) {
                    return Err(ImageError::Invalid(format!("Invalid signal: {s}")));
                }
                config.stop_signal = Some(s);
            }
            InstructionKind::User(u) => config.user = Some(u),
            InstructionKind::Volume(paths) => {
                let volumes = config.volumes.get_or_insert_with(BTreeMap::new);
                for p in paths {
                    if p.trim().is_empty() {
                        return Err(ImageError::Invalid("VOLUME specified can not be an empty string".to_owned()));
                    }
                    volumes.insert(p, Value::Object(Default::default()));
                }
            }
            InstructionKind::Workdir(w) => {
                let w = if w.starts_with('/') {
                    clean_path(&w)
                } else {
                    let base = config.working_dir.clone().unwrap_or_else(|| "/".to_owned());
                    clean_path(&format!("{base}/{w}"))
                };
                config.working_dir = Some(w);
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(changes: &[&str]) -> Result<RuntimeConfig, String> {
        let mut c = RuntimeConfig::default();
        let v: Vec<String> = changes.iter().map(|s| s.to_string()).collect();
        apply_changes(&mut c, &v).map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn docker_change_commands() {
        let c = apply(&[
            "ENV A=1 B=two",
            "ENV PATH=/bin:$A",
            "CMD [\"/bin/sh\", \"-c\", \"echo hi\"]",
            "WORKDIR /app",
            "WORKDIR sub/../x",
            "USER 1000:1000",
            "EXPOSE 80 53/udp",
            "LABEL a=b \"c d\"=e",
            "VOLUME /data /logs",
            "STOPSIGNAL SIGINT",
            "ONBUILD RUN echo built",
            "HEALTHCHECK --interval=5s CMD true",
        ])
        .unwrap();
        assert_eq!(
            c.env.unwrap(),
            vec!["A=1", "B=two", "PATH=/bin:1"].into_iter().map(String::from).collect::<Vec<_>>()
        );
        assert_eq!(c.cmd.unwrap(), vec!["/bin/sh", "-c", "echo hi"]);
        assert_eq!(c.working_dir.as_deref(), Some("/app/x"));
        assert_eq!(c.user.as_deref(), Some("1000:1000"));
        let ports: Vec<String> = c.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, vec!["53/udp", "80/tcp"]);
        assert_eq!(c.labels.unwrap()["c d"], "e");
        assert_eq!(c.volumes.unwrap().len(), 2);
        assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(c.on_build.unwrap(), vec!["RUN echo built"]);
        let h = c.healthcheck.unwrap();
        assert_eq!(h.test, vec!["CMD-SHELL", "true"]);
        assert_eq!(h.interval, 5_000_000_000);
    }

    #[test]
    fn shell_forms_and_entrypoint_resets_cmd() {
        let c = apply(&["CMD echo hi", "ENTRYPOINT top -b"]).unwrap();
        assert_eq!(c.cmd.unwrap(), vec!["/bin/sh", "-c", "echo hi"]);
        assert_eq!(c.entrypoint.unwrap(), vec!["/bin/sh", "-c", "top -b"]);
        let c = apply(&["ENTRYPOINT [\"sh\"]"]).unwrap();
        assert_eq!(c.cmd, None);
    }

    #[test]
    fn refused_changes() {
        assert_eq!(apply(&["RUN echo x"]).unwrap_err(), "run is not a valid change command");
        assert_eq!(apply(&["FROM busybox"]).unwrap_err(), "from is not a valid change command");
        assert!(apply(&["NOPE x"]).unwrap_err().contains("line 1"));
        assert_eq!(apply(&["STOPSIGNAL SIGFOO"]).unwrap_err(), "Invalid signal: SIGFOO");
        assert!(apply(&["EXPOSE 80/xyz"]).is_err());
    }

    #[test]
    fn paths_clean_like_go() {
        assert_eq!(clean_path("/a/../../b/./c/"), "/b/c");
        assert_eq!(clean_path("a/.."), ".");
    }
}
