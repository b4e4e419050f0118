//! The `VolumeBackend` of the API: Docker's volume shapes and filters over [`VolumeService`],
//! and the volume part of `/system/df`.

use std::sync::Arc;

use async_trait::async_trait;
use wharf_api::backend::VolumeBackend;
use wharf_api::models::{
    Volume, VolumeCreateRequest, VolumeListResponse, VolumePruneResponse, VolumeScopeEnum, VolumeUsageData,
    VolumesDiskUsage,
};
use wharf_types::{EngineError, Event, EventType, Filters};

use super::{ANONYMOUS_LABEL, CreateOptions, LOCAL_DRIVER, Listed, VolumeRecord, VolumeService};

/// The filters `GET /volumes` accepts.
pub const LIST_FILTERS: &[&str] = &["dangling", "driver", "label", "name"];
/// The filters `POST /volumes/prune` accepts.
pub const PRUNE_FILTERS: &[&str] = &["label", "label!", "all"];

impl VolumeService {
    /// Docker's `Volume` for a record.
    pub fn to_api(&self, rec: &VolumeRecord) -> Volume {
        Volume {
            name: rec.name.to_string(),
            driver: rec.driver.clone(),
            mountpoint: self.mountpoint(rec.name.as_str()).display().to_string(),
            created_at: Some(rec.created_at.clone()),
            labels: rec.labels.clone().into_iter().collect(),
            scope: Some(VolumeScopeEnum::LOCAL),
            options: rec.options.clone().into_iter().collect(),
            ..Default::default()
        }
    }

    /// Every volume with `UsageData` (`Size`, `RefCount`), for `/system/df`.
    pub async fn volumes_usage(self: &Arc<Self>) -> Vec<Volume> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            me.list()
                .into_iter()
                .map(|l| {
                    let size = me.size(l.rec.name.as_str());
                    Volume {
                        usage_data: Some(VolumeUsageData { size, ref_count: l.ref_count as i64 }),
                        ..me.to_api(&l.rec)
                    }
                })
                .collect()
        })
        .await
        .unwrap_or_default()
    }

    /// The volume part of `/system/df` (API 1.52+ `VolumesDiskUsage`), items included.
    pub async fn disk_usage(self: &Arc<Self>) -> VolumesDiskUsage {
        let items = self.volumes_usage().await;
        let usage = |v: &Volume| v.usage_data.as_ref().map_or((0, 0), |u| (u.size, u.ref_count));
        let total_size = items.iter().map(|v| usage(v).0.max(0)).sum();
        let reclaimable = items.iter().filter(|v| usage(v).1 == 0).map(|v| usage(v).0.max(0)).sum();
        let active = items.iter().filter(|v| usage(v).1 > 0).count() as i64;
        VolumesDiskUsage {
            active_count: Some(active),
            total_count: Some(items.len() as i64),
            reclaimable: Some(reclaimable),
            total_size: Some(total_size),
            items: Some(items.iter().map(|v| serde_json::to_value(v).unwrap_or_default()).collect()),
        }
    }

    fn arc(&self) -> Result<Arc<Self>, EngineError> {
        self.me.upgrade().ok_or_else(|| EngineError::internal("the volume service is shutting down"))
    }
}

/// Go's `strconv.ParseBool`.
fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Docker matches `name=` as a regular expression; this covers what people type: a substring,
/// optionally anchored with `^` and `$`.
fn name_matches(pattern: &str, name: &str) -> bool {
    if pattern == name {
        return true;
    }
    let (start, p) = pattern.strip_prefix('^').map_or((false, pattern), |p| (true, p));
    let (end, p) = p.strip_suffix('$').map_or((false, p), |p| (true, p));
    match (start, end) {
        (true, true) => name == p,
        (true, false) => name.starts_with(p),
        (false, true) => name.ends_with(p),
        (false, false) => name.contains(p),
    }
}

fn list_matches(l: &Listed, f: &Filters, dangling: Option<bool>) -> bool {
    dangling.is_none_or(|d| (l.ref_count == 0) == d)
        && f.any("name", |v| name_matches(v, l.rec.name.as_str()))
        && f.exact_match("driver", &l.rec.driver)
        && f.match_labels(&l.rec.labels)
}

#[async_trait]
impl VolumeBackend for VolumeService {
    async fn create(&self, req: VolumeCreateRequest) -> Result<Volume, EngineError> {
        let me = self.arc()?;
        tokio::task::spawn_blocking(move || {
            let (rec, _) = me.create(CreateOptions {
                name: req.name.as_deref().unwrap_or(""),
                driver: req.driver.as_deref().unwrap_or(""),
                driver_opts: req.driver_opts.unwrap_or_default().into_iter().collect(),
                labels: req.labels.unwrap_or_default().into_iter().collect(),
                reference: None,
            })?;
            Ok(me.to_api(&rec))
        })
        .await
        .map_err(|e| EngineError::internal(e.to_string()))?
    }

    async fn list(&self, filters: Filters) -> Result<VolumeListResponse, EngineError> {
        filters.validate(LIST_FILTERS)?;
        let mut dangling = None;
        for v in filters.get("dangling") {
            dangling = Some(match v.to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => return Err(EngineError::invalid(format!("invalid filter 'dangling={v}'"))),
            });
        }
        let volumes =
            self.list().iter().filter(|l| list_matches(l, &filters, dangling)).map(|l| self.to_api(&l.rec)).collect();
        Ok(VolumeListResponse { volumes: Some(volumes), warnings: None })
    }

    async fn inspect(&self, name: &str) -> Result<Volume, EngineError> {
        Ok(self.to_api(&self.get(name)?))
    }

    async fn remove(&self, name: &str, force: bool) -> Result<(), EngineError> {
        let me = self.arc()?;
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || me.remove(&name, force).map_err(EngineError::from))
            .await
            .map_err(|e| EngineError::internal(e.to_string()))?
    }

    async fn prune(&self, filters: Filters) -> Result<VolumePruneResponse, EngineError> {
        filters.validate(PRUNE_FILTERS)?;
        let all: Vec<&str> = filters.get("all").collect();
        let all = match all.as_slice() {
            [] => false,
            [v] => go_bool(v).ok_or_else(|| EngineError::invalid(format!("invalid filter 'all=[{v}]'")))?,
            many => return Err(EngineError::invalid(format!("invalid filter 'all=[{}]'", many.join(" ")))),
        };
        let me = self.arc()?;
        let (deleted, reclaimed) = tokio::task::spawn_blocking(move || {
            let mut deleted = Vec::new();
            let mut reclaimed: i64 = 0;
            for l in me.list() {
                if l.ref_count > 0
                    || l.rec.driver != LOCAL_DRIVER
                    || (!all && !l.rec.labels.contains_key(ANONYMOUS_LABEL))
                    || !filters.match_labels(&l.rec.labels)
                {
                    continue;
                }
                let name = l.rec.name.to_string();
                let size = me.size(&name);
                match me.remove(&name, false) {
                    Ok(()) => {
                        reclaimed += size;
                        deleted.push(name);
                    }
                    Err(e) => tracing::warn!(volume = %name, error = %e, "prune skipped a volume"),
                }
            }
            (deleted, reclaimed)
        })
        .await
        .map_err(|e| EngineError::internal(e.to_string()))?;
        self.events.publish(Event::now(
            EventType::Volume,
            "prune",
            "",
            [("reclaimed".to_owned(), reclaimed.to_string())].into_iter().collect(),
        ));
        Ok(VolumePruneResponse { volumes_deleted: Some(deleted), space_reclaimed: Some(reclaimed) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventBus;
    use wharf_store::Db;

    fn service() -> (tempfile::TempDir, Arc<VolumeService>) {
        let tmp = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(&tmp.path().join("wharf.db")).unwrap());
        let svc = VolumeService::open(tmp.path(), db, Arc::new(EventBus::new())).unwrap();
        (tmp, svc)
    }

    fn f(json: &str) -> Filters {
        Filters::parse(json).unwrap()
    }

    fn names(r: VolumeListResponse) -> Vec<String> {
        r.volumes.unwrap().into_iter().map(|v| v.name).collect()
    }

    #[tokio::test]
    async fn list_filters_and_prune_rules() {
        let (_tmp, svc) = service();
        let b: &dyn VolumeBackend = &*svc;
        let req = |name: &str, labels: &[(&str, &str)]| VolumeCreateRequest {
            name: Some(name.into()),
            labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Default::default()
        };
        let web = b.create(req("web-data", &[("tier", "web")])).await.unwrap();
        assert_eq!(web.scope, Some(VolumeScopeEnum::LOCAL));
        assert!(web.mountpoint.ends_with("/volumes/web-data/_data"));
        assert!(web.created_at.as_deref().unwrap().ends_with('Z'));
        b.create(req("db-data", &[("tier", "db")])).await.unwrap();
        let anon = b.create(VolumeCreateRequest::default()).await.unwrap();
        assert_eq!(anon.labels.get(ANONYMOUS_LABEL).map(String::as_str), Some(""));
        svc.acquire("db-data", "c1").unwrap();

        assert_eq!(names(b.list(f("")).await.unwrap()).len(), 3);
        assert_eq!(names(b.list(f(r#"{"name":["data"]}"#)).await.unwrap()), vec!["db-data", "web-data"]);
        assert_eq!(names(b.list(f(r#"{"name":["^web"]}"#)).await.unwrap()), vec!["web-data"]);
        assert_eq!(names(b.list(f(r#"{"label":["tier=db"]}"#)).await.unwrap()), vec!["db-data"]);
        assert_eq!(names(b.list(f(r#"{"dangling":["false"]}"#)).await.unwrap()), vec!["db-data"]);
        assert_eq!(b.list(f(r#"{"dangling":["true"]}"#)).await.unwrap().volumes.unwrap().len(), 2);
        assert_eq!(b.list(f(r#"{"driver":["local"]}"#)).await.unwrap().volumes.unwrap().len(), 3);
        assert_eq!(b.list(f(r#"{"driver":["nfs"]}"#)).await.unwrap().volumes.unwrap().len(), 0);
        assert_eq!(
            b.list(f(r#"{"dangling":["maybe"]}"#)).await.unwrap_err().message,
            "invalid filter 'dangling=maybe'"
        );
        assert_eq!(b.list(f(r#"{"bogus":["x"]}"#)).await.unwrap_err().message, "invalid filter 'bogus'");

        // Default prune: anonymous, unreferenced volumes only.
        let r = b.prune(f("")).await.unwrap();
        assert_eq!(r.volumes_deleted.unwrap(), vec![anon.name.clone()]);
        // all=true: named ones too, but never a referenced one; label filters apply.
        let r = b.prune(f(r#"{"all":["true"],"label!":["tier=web"]}"#)).await.unwrap();
        assert!(r.volumes_deleted.unwrap().is_empty());
        let r = b.prune(f(r#"{"all":["1"]}"#)).await.unwrap();
        assert_eq!(r.volumes_deleted.unwrap(), vec!["web-data"]);
        assert_eq!(names(b.list(f("")).await.unwrap()), vec!["db-data"]);
        assert_eq!(b.prune(f(r#"{"all":["x"]}"#)).await.unwrap_err().message, "invalid filter 'all=[x]'");
        assert_eq!(b.prune(f(r#"{"until":["1h"]}"#)).await.unwrap_err().message, "invalid filter 'until'");

        let e = b.remove("db-data", true).await.unwrap_err();
        assert_eq!(e.message, "remove db-data: volume is in use - [c1]");
        assert_eq!(b.inspect("nope").await.unwrap_err().kind, wharf_types::ErrorKind::NotFound);
        b.remove("nope", true).await.unwrap();
    }

    #[tokio::test]
    async fn disk_usage_counts_references_and_sizes() {
        let (_tmp, svc) = service();
        svc.create(CreateOptions { name: "used", reference: Some("c"), ..Default::default() }).unwrap();
        svc.create(CreateOptions { name: "idle", ..Default::default() }).unwrap();
        std::fs::write(svc.mountpoint("idle").join("f"), vec![0u8; 1000]).unwrap();
        std::fs::write(svc.mountpoint("used").join("f"), vec![0u8; 10]).unwrap();
        let du = svc.disk_usage().await;
        assert_eq!((du.active_count, du.total_count), (Some(1), Some(2)));
        assert_eq!((du.total_size, du.reclaimable), (Some(1010), Some(1000)));
        let items = du.items.unwrap();
        let used = items.iter().find(|v| v["Name"] == "used").unwrap();
        assert_eq!(used["UsageData"], serde_json::json!({"Size": 10, "RefCount": 1}));
    }
}
