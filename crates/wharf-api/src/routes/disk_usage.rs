//! `GET /system/df`. Each service fills in its part through `SystemBackend::disk_usage`;
//! this module only shapes the answer for the client's version.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::query::Query;
use crate::router::AppState;
use crate::version::ApiVersion;

type Version = axum::Extension<ApiVersion>;

/// The object types `GET /system/df?type=` accepts.
fn df_types(query: &Query, v: ApiVersion) -> Result<crate::backend::DiskUsageOptions, ApiError> {
    let types = query.all("type");
    if !v.at_least(1, 42) || types.is_empty() {
        return Ok(crate::backend::DiskUsageOptions {
            containers: true,
            images: true,
            volumes: true,
            build_cache: true,
        });
    }
    let mut o =
        crate::backend::DiskUsageOptions { containers: false, images: false, volumes: false, build_cache: false };
    for t in types {
        match t {
            "container" => o.containers = true,
            "image" => o.images = true,
            "volume" => o.volumes = true,
            "build-cache" => o.build_cache = true,
            other => return Err(ApiError::invalid(format!("unknown object type: {other}"))),
        }
    }
    Ok(o)
}

/// `GET /system/df`, shaped per compat §1.4: up to 1.51 the legacy fields (`LayersSize`,
/// `Images`, `Containers`, `Volumes`, `BuildCache`); 1.52 those and the `*Usage` fields (the
/// legacy ones dropped when `verbose` is set); from 1.53 only the `*Usage` fields, with `Items`
/// when `verbose`.
pub async fn disk_usage(State(st): State<AppState>, version: Version, query: Query) -> Result<Response, ApiError> {
    let v = version.0;
    let opts = df_types(&query, v)?;
    let verbose = v.at_least(1, 52) && query.bool("verbose", false);
    let usage = st.backends.system.disk_usage(opts).await?;
    let legacy = !(v.at_least(1, 53) || v.at_least(1, 52) && verbose);
    let current = v.at_least(1, 52);
    let mut out = Map::new();
    if legacy {
        let items = |i: Option<&Option<Vec<Value>>>| -> Option<Value> {
            i.map(|items| Value::Array(items.clone().unwrap_or_default()))
        };
        if let Some(img) = &usage.image_usage {
            out.insert("LayersSize".into(), json!(img.total_size.unwrap_or(0)));
            let mut list = img.items.clone().unwrap_or_default();
            if !v.at_least(1, 44) {
                for i in &mut list {
                    let size = i.get("Size").cloned().unwrap_or(json!(0));
                    i["VirtualSize"] = size;
                }
            }
            out.insert("Images".into(), Value::Array(list));
        }
        if let Some(c) = items(usage.container_usage.as_ref().map(|c| &c.items)) {
            out.insert("Containers".into(), c);
        }
        if let Some(c) = items(usage.volume_usage.as_ref().map(|c| &c.items)) {
            out.insert("Volumes".into(), c);
        }
        if let Some(c) = items(usage.build_cache_usage.as_ref().map(|c| &c.items)) {
            out.insert("BuildCache".into(), c);
        }
    }
    if current {
        let mut current = usage.clone();
        if !verbose {
            if let Some(u) = current.image_usage.as_mut() {
                u.items = None;
            }
            if let Some(u) = current.container_usage.as_mut() {
                u.items = None;
            }
            if let Some(u) = current.volume_usage.as_mut() {
                u.items = None;
            }
            if let Some(u) = current.build_cache_usage.as_mut() {
                u.items = None;
            }
        }
        if let Value::Object(m) = serde_json::to_value(current).unwrap_or_default() {
            out.extend(m);
        }
    }
    Ok(Json(Value::Object(out)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types() {
        let q = Query::parse("type=image&type=volume");
        let o = df_types(&q, ApiVersion::MAX).unwrap();
        assert!(o.images && o.volumes && !o.containers && !o.build_cache);
        assert!(df_types(&Query::parse("type=x"), ApiVersion::MAX).is_err());
        assert!(df_types(&Query::parse("type=x"), ApiVersion::new(1, 41)).unwrap().containers);
    }
}
