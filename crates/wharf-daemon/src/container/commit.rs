//! `docker commit` (`POST /commit`): a new image from a container's writable layer, as moby's
//! `Daemon.CreateImageFromContainer` makes it:
//! - the config is the request's (or empty), with `--change` instructions applied (the same
//!   parser as `import`), then completed from the container's config (moby's `merge`);
//! - the layer is the writable layer's changes (deletions as whiteouts), without what Docker
//!   keeps in its init layer (see [`super::changes`]); no changes, no layer (`empty_layer`);
//! - one history entry: `created_by` is the container's command joined with spaces, with the
//!   author and comment;
//! - the container is paused while its layer is read, unless `pause=0`;
//! - events: the container's `commit` (with `comment`, `imageID`, `imageRef`), and the image's
//!   `tag` when a repository is given.

use std::io::{self, Read, Write};

use wharf_api::backend::CommitOptions;
use wharf_types::image::{History, RuntimeConfig};
use wharf_types::{EngineError, Event, EventType, ImageId};

use super::ContainerService;
use super::changes::{docker_changes, is_init_path};
use super::model::Status;
use super::supervisor::Op;
use crate::image::changes::apply_changes;
use crate::image::import::repo_tag_reference;
use crate::image::{LayerSource, NewImage};

/// moby's `merge`: fills what the commit's config leaves empty from the container's config.
pub fn merge(user: &mut RuntimeConfig, container: &RuntimeConfig) {
    if user.user.as_deref().unwrap_or("").is_empty() {
        user.user = container.user.clone();
    }
    match (&mut user.exposed_ports, &container.exposed_ports) {
        (Some(mine), Some(theirs)) if !mine.is_empty() => {
            for (k, v) in theirs {
                mine.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        (_, theirs) => user.exposed_ports = theirs.clone(),
    }
    match &mut user.env {
        Some(env) if !env.is_empty() => {
            for e in container.env.iter().flatten() {
                let key = e.split('=').next().unwrap_or("");
                if !env.iter().any(|u| u.split('=').next().unwrap_or("") == key) {
                    env.push(e.clone());
                }
            }
        }
        _ => user.env = container.env.clone(),
    }
    let labels = user.labels.get_or_insert_with(Default::default);
    for (k, v) in container.labels.iter().flatten() {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    if user.entrypoint.as_ref().is_none_or(Vec::is_empty) {
        if user.cmd.as_ref().is_none_or(Vec::is_empty) {
            user.cmd = container.cmd.clone();
            user.args_escaped = container.args_escaped;
        }
        if user.entrypoint.is_none() {
            user.entrypoint = container.entrypoint.clone();
        }
    }
    if let Some(theirs) = &container.healthcheck {
        match &mut user.healthcheck {
            None => user.healthcheck = Some(theirs.clone()),
            Some(mine) => {
                if mine.test.is_empty() {
                    mine.test = theirs.test.clone();
                }
                if mine.interval == 0 {
                    mine.interval = theirs.interval;
                }
                if mine.timeout == 0 {
                    mine.timeout = theirs.timeout;
                }
                if mine.start_period == 0 {
                    mine.start_period = theirs.start_period;
                }
                if mine.retries == 0 {
                    mine.retries = theirs.retries;
                }
            }
        }
    }
    if user.working_dir.as_deref().unwrap_or("").is_empty() {
        user.working_dir = container.working_dir.clone();
    }
    match &mut user.volumes {
        Some(v) if !v.is_empty() => {
            for (k, val) in container.volumes.iter().flatten() {
                v.insert(k.clone(), val.clone());
            }
        }
        _ => user.volumes = container.volumes.clone(),
    }
    if user.stop_signal.as_deref().unwrap_or("").is_empty() {
        user.stop_signal = container.stop_signal.clone();
    }
    // Fields only the container has (hostname, tty, image…) come along as Docker writes them.
    for (k, v) in &container.extra {
        user.extra.entry(k.clone()).or_insert_with(|| v.clone());
    }
    for (k, v) in [("Hostname", &container.hostname), ("Domainname", &container.domainname)] {
        if let Some(v) = v {
            user.extra.entry(k.to_owned()).or_insert_with(|| serde_json::Value::String(v.clone()));
        }
    }
}

/// Copies a layer tar, leaving out the entries of Docker's init layer and keeping each
/// entry's PAX records (xattrs).
pub fn filter_layer(input: impl Read, out: &mut dyn Write) -> io::Result<()> {
    let mut archive = tar::Archive::new(input);
    let mut b = tar::Builder::new(out);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let abs = format!("/{}", path.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/'));
        if is_init_path(&abs) {
            continue;
        }
        let mut records: Vec<(String, Vec<u8>)> = Vec::new();
        if let Ok(Some(exts)) = entry.pax_extensions() {
            for ext in exts.flatten() {
                if let Ok(k) = ext.key()
                    && k.starts_with("SCHILY.")
                {
                    records.push((k.to_owned(), ext.value_bytes().to_vec()));
                }
            }
        }
        if !records.is_empty() {
            let mut data = Vec::new();
            for (k, v) in &records {
                let body = 1 + k.len() + 1 + v.len() + 1;
                let mut len = body + 1;
                while len != body + len.to_string().len() {
                    len = body + len.to_string().len();
                }
                data.extend_from_slice(format!("{len} {k}=").as_bytes());
                data.extend_from_slice(v);
                data.push(b'\n');
            }
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::XHeader);
            h.set_path("PaxHeader")?;
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append(&h, &data[..])?;
        }
        let mut h = entry.header().clone();
        match entry.header().entry_type() {
            tar::EntryType::Link | tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
                b.append_link(&mut h, &path, std::ffi::OsStr::new(&*String::from_utf8_lossy(&target)))?;
            }
            _ => b.append_data(&mut h, &path, &mut entry)?,
        }
    }
    b.finish()
}

impl ContainerService {
    /// `POST /commit`: returns the new image's ID (`sha256:…`).
    pub async fn commit(&self, opts: CommitOptions) -> Result<String, EngineError> {
        let h = self.lookup(&opts.container)?;
        let r = h.record();
        match r.state.status {
            Status::Dead => {
                return Err(EngineError::conflict(format!("You cannot commit container {} which is Dead", r.id)));
            }
            Status::Removing => {
                return Err(EngineError::conflict(format!(
                    "You cannot commit container {} which is being removed",
                    r.id
                )));
            }
            _ => {}
        }
        let tag = repo_tag_reference(&opts.repo, &opts.tag).map_err(EngineError::from)?;
        let to_runtime = |v: serde_json::Value| -> Result<RuntimeConfig, EngineError> {
            serde_json::from_value(v).map_err(|e| EngineError::invalid(format!("invalid config: {e}")))
        };
        let mut config = match &opts.config {
            Some(c) => to_runtime(serde_json::to_value(c).map_err(|e| EngineError::internal(e.to_string()))?)?,
            None => RuntimeConfig::default(),
        };
        apply_changes(&mut config, &opts.changes).map_err(EngineError::from)?;
        let container_config =
            to_runtime(serde_json::to_value(&r.config).map_err(|e| EngineError::internal(e.to_string()))?)?;
        merge(&mut config, &container_config);
        let base: Option<ImageId> = r.image_id.parse().ok();
        let pause = opts.pause && r.state.status == Status::Running;
        if pause {
            self.ask(&h, Op::Pause).await?;
        }
        let made = self.commit_layer(&r.rw_layer, base.clone(), config, &r, &opts, tag.clone()).await;
        if pause && let Err(e) = self.ask(&h, Op::Unpause).await {
            tracing::warn!(container = %r.id, error = %e.message, "unpausing after commit failed");
        }
        let id = made?;
        let mut attrs = r.event_attributes();
        attrs.insert("comment".into(), opts.comment.clone());
        attrs.insert("imageID".into(), id.to_string());
        attrs.insert("imageRef".into(), tag.as_ref().map(|t| t.familiar()).unwrap_or_default());
        self.ctx.events.publish(Event::now(EventType::Container, "commit", r.id.as_str(), attrs));
        Ok(id.to_string())
    }

    async fn commit_layer(
        &self,
        rw_layer: &str,
        base: Option<ImageId>,
        config: RuntimeConfig,
        r: &super::model::ContainerRecord,
        opts: &CommitOptions,
        tag: Option<wharf_types::Reference>,
    ) -> Result<ImageId, EngineError> {
        let snapshotter = self.ctx.images.snapshotter();
        let images = self.ctx.images.clone();
        let key = rw_layer.to_owned();
        let created_by = r.config.cmd.clone().unwrap_or_default().join(" ");
        let (author, comment) = (opts.author.clone(), opts.comment.clone());
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        tokio::task::spawn_blocking(move || {
            let source = snapshotter.diff_source(&key).map_err(|e| EngineError::from_classified(&e))?;
            let changes =
                docker_changes(&source).map_err(|e| EngineError::internal(format!("reading changes: {e}")))?;
            let layer = (!changes.is_empty()).then(|| {
                LayerSource::Writer(Box::new(move |out: &mut dyn Write| {
                    let (rd, wr) = std::io::pipe()?;
                    let producer = std::thread::spawn(move || {
                        let mut wr = wr;
                        wharf_image::layer::diff(&source, &mut wr).map(drop).map_err(io::Error::other)
                    });
                    let filtered = filter_layer(rd, out);
                    let produced = producer.join().map_err(|_| io::Error::other("layer writer panicked"))?;
                    produced.and(filtered)
                }))
            });
            images.create_image(NewImage {
                base: base.clone(),
                layer,
                config,
                history: History {
                    created_by: Some(created_by),
                    author: non_empty(&author),
                    comment: non_empty(&comment),
                    ..Default::default()
                },
                created: None,
                author: non_empty(&author),
                comment: non_empty(&comment),
                platform: None,
                parent: base,
                tag,
            })
        })
        .await
        .map_err(|e| EngineError::internal(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_fills_what_the_commit_leaves_empty() {
        let container: RuntimeConfig = serde_json::from_value(serde_json::json!({
            "Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "Labels": {"a": "1"}, "WorkingDir": "/w",
            "ExposedPorts": {"80/tcp": {}}, "Tty": true, "Hostname": "abc"
        }))
        .unwrap();
        let mut mine: RuntimeConfig =
            serde_json::from_value(serde_json::json!({"Env": ["A=2"], "Labels": {"b": "2"}})).unwrap();
        merge(&mut mine, &container);
        assert_eq!(mine.env.unwrap(), vec!["A=2", "PATH=/bin"]);
        assert_eq!(mine.cmd.unwrap(), vec!["sh"]);
        assert_eq!(mine.labels.unwrap().len(), 2);
        assert_eq!(mine.working_dir.as_deref(), Some("/w"));
        assert!(mine.exposed_ports.unwrap().contains_key("80/tcp"));
        assert_eq!(mine.extra["Tty"], true);
        assert_eq!(mine.extra["Hostname"], "abc");
        // A CMD given by --change wins; ENTRYPOINT unset stays the container's.
        let mut mine = RuntimeConfig { cmd: Some(vec!["ls".into()]), ..Default::default() };
        merge(&mut mine, &container);
        assert_eq!(mine.cmd.unwrap(), vec!["ls"]);
    }

    #[test]
    fn init_layer_entries_are_left_out_of_layers() {
        let mut b = tar::Builder::new(Vec::new());
        for (p, kind) in [
            ("etc/", tar::EntryType::Directory),
            ("etc/hosts", tar::EntryType::Regular),
            ("etc/app.conf", tar::EntryType::Regular),
            ("proc/", tar::EntryType::Directory),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_size(0);
            h.set_mode(0o755);
            b.append_data(&mut h, p, io::empty()).unwrap();
        }
        let data = b.into_inner().unwrap();
        let mut out = Vec::new();
        filter_layer(&data[..], &mut out).unwrap();
        let names: Vec<String> = tar::Archive::new(&out[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, vec!["etc/", "etc/app.conf"]);
    }
}
