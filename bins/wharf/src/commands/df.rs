//! `system df`: the summary table (or `-v` tables) from `GET /system/df`, computed as the
//! docker CLI computes it from the image, container, volume and build-cache items.

use bollard::query_parameters::DataUsageOptions;
use serde_json::{Value as Json, json};
use wharf_types::Reference;

use super::Ctx;
use crate::cli::DfArgs;
use crate::client::{CliError, CliResult};
use crate::format::{self, Format, human_size, human_size_precision, to_value, truncate_id};
use crate::timefmt::human_duration;

fn num(v: &Json, k: &str) -> i64 {
    v.get(k).and_then(Json::as_i64).unwrap_or(0)
}

fn with_percent(reclaimable: i64, total: i64) -> String {
    if total > 0 {
        format!("{} ({}%)", human_size(reclaimable as f64), reclaimable * 100 / total)
    } else {
        human_size(reclaimable as f64)
    }
}

pub async fn df(ctx: &Ctx, args: DfArgs) -> Result<(), CliError> {
    let du = ctx.docker.df(Some(DataUsageOptions { _type: None, verbose: true })).await.cli(&ctx.host)?;
    let images: Vec<Json> = du.image_usage.as_ref().and_then(|u| u.items.clone()).unwrap_or_default();
    let layers_size = du.image_usage.as_ref().and_then(|u| u.total_size).unwrap_or(0);
    let containers: Vec<Json> = du.container_usage.as_ref().and_then(|u| u.items.clone()).unwrap_or_default();
    let volumes: Vec<Json> = du.volume_usage.as_ref().and_then(|u| u.items.clone()).unwrap_or_default();
    let cache: Vec<Json> = du.build_cache_usage.as_ref().and_then(|u| u.items.clone()).unwrap_or_default();
    if args.verbose && args.format.as_deref().is_none_or(|f| f == "table" || f.is_empty()) {
        return verbose(&images, &containers, &volumes, &cache);
    }
    // Images: used = size - shared of images with containers.
    let mut used = 0;
    for i in &images {
        if num(i, "Containers") != 0 && num(i, "Size") != -1 && num(i, "SharedSize") != -1 {
            used += num(i, "Size") - num(i, "SharedSize");
        }
    }
    let active = |items: &[Json], pred: &dyn Fn(&Json) -> bool| items.iter().filter(|i| pred(i)).count();
    let running = |c: &Json| matches!(c.get("State").and_then(Json::as_str), Some("running" | "paused" | "restarting"));
    let c_size: i64 = containers.iter().map(|c| num(c, "SizeRw")).sum();
    let c_reclaim: i64 = containers.iter().filter(|c| !running(c)).map(|c| num(c, "SizeRw")).sum();
    let vol_size = |v: &Json| v.pointer("/UsageData/Size").and_then(Json::as_i64).unwrap_or(-1);
    let vol_refs = |v: &Json| v.pointer("/UsageData/RefCount").and_then(Json::as_i64).unwrap_or(0);
    let v_total: i64 = volumes.iter().map(vol_size).filter(|s| *s != -1).sum();
    let v_reclaim: i64 = volumes.iter().filter(|v| vol_size(v) != -1 && vol_refs(v) == 0).map(vol_size).sum();
    let b_size: i64 = cache
        .iter()
        .filter(|b| !b.get("Shared").and_then(Json::as_bool).unwrap_or(false))
        .map(|b| num(b, "Size"))
        .sum();
    let b_in_use: i64 = cache
        .iter()
        .filter(|b| {
            b.get("InUse").and_then(Json::as_bool).unwrap_or(false)
                && !b.get("Shared").and_then(Json::as_bool).unwrap_or(false)
        })
        .map(|b| num(b, "Size"))
        .sum();
    let rows = [
        json!({
            "Type": "Images",
            "TotalCount": images.len().to_string(),
            "Active": active(&images, &|i| num(i, "Containers") > 0).to_string(),
            "Size": human_size(layers_size as f64),
            "Reclaimable": with_percent(layers_size - used, layers_size),
        }),
        json!({
            "Type": "Containers",
            "TotalCount": containers.len().to_string(),
            "Active": active(&containers, &running).to_string(),
            "Size": human_size(c_size as f64),
            "Reclaimable": with_percent(c_reclaim, c_size),
        }),
        json!({
            "Type": "Local Volumes",
            "TotalCount": volumes.len().to_string(),
            "Active": active(&volumes, &|v| vol_refs(v) > 0).to_string(),
            "Size": human_size(v_total as f64),
            "Reclaimable": with_percent(v_reclaim, v_total),
        }),
        json!({
            "Type": "Build Cache",
            "TotalCount": cache.len().to_string(),
            "Active": active(&cache, &|b| b.get("InUse").and_then(Json::as_bool).unwrap_or(false)).to_string(),
            "Size": human_size(b_size as f64),
            "Reclaimable": human_size((b_size - b_in_use) as f64),
        }),
    ];
    let rows: Vec<_> = rows.iter().map(|r| to_value(r, &[])).collect();
    format::print_rows(
        Format::new(
            args.format.as_deref(),
            "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
        ),
        &rows,
        &[
            ("Type", "TYPE"),
            ("TotalCount", "TOTAL"),
            ("Active", "ACTIVE"),
            ("Size", "SIZE"),
            ("Reclaimable", "RECLAIMABLE"),
        ],
    )?;
    Ok(())
}

fn verbose(images: &[Json], containers: &[Json], volumes: &[Json], cache: &[Json]) -> Result<(), CliError> {
    let now = chrono::Utc::now().timestamp();
    let image_rows: Vec<_> = images
        .iter()
        .map(|i| {
            let (mut repo, mut tag) = ("<none>".to_owned(), "<none>".to_owned());
            if let Some(first) = i.get("RepoTags").and_then(|t| t.get(0)).and_then(Json::as_str)
                && first != "<none>:<none>"
                && let Ok(r) = Reference::parse_normalized(first)
                && let Some(t) = r.tag()
            {
                repo = r.familiar_name();
                tag = t.to_owned();
            }
            let size = num(i, "Size");
            let shared = num(i, "SharedSize");
            let created = num(i, "Created");
            to_value(
                &json!({
                    "Repository": repo,
                    "Tag": tag,
                    "ID": truncate_id(i.get("Id").and_then(Json::as_str).unwrap_or("")),
                    "CreatedSince": format!("{} ago", human_duration(now - created)),
                    "Size": human_size_precision(size as f64, 3),
                    "SharedSize": if shared == -1 { "N/A".to_owned() } else { human_size(shared as f64) },
                    "UniqueSize": if shared == -1 { "N/A".to_owned() } else { human_size((size - shared) as f64) },
                    "Containers": num(i, "Containers").to_string(),
                }),
                &[],
            )
        })
        .collect();
    println!("Images space usage:\n");
    format::print_rows(
        Format::new(
            None,
            "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
        ),
        &image_rows,
        &[
            ("ID", "IMAGE ID"),
            ("Repository", "REPOSITORY"),
            ("Tag", "TAG"),
            ("CreatedSince", "CREATED"),
            ("Size", "SIZE"),
            ("SharedSize", "SHARED SIZE"),
            ("UniqueSize", "UNIQUE SIZE"),
            ("Containers", "CONTAINERS"),
        ],
    )?;
    println!("\nContainers space usage:\n");
    let container_rows: Vec<_> = containers.iter().map(|c| to_value(c, &[])).collect();
    format::print_rows(
        Format::new(
            None,
            "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}",
        ),
        &container_rows,
        &[("ID", "CONTAINER ID"), ("LocalVolumes", "LOCAL VOLUMES"), ("RunningFor", "CREATED")],
    )?;
    println!("\nLocal Volumes space usage:\n");
    let volume_rows: Vec<_> = volumes.iter().map(|v| to_value(v, &[])).collect();
    format::print_rows(
        Format::new(None, "table {{.Name}}\t{{.Links}}\t{{.Size}}"),
        &volume_rows,
        &[("Name", "VOLUME NAME")],
    )?;
    let b_size: i64 = cache
        .iter()
        .filter(|b| !b.get("Shared").and_then(Json::as_bool).unwrap_or(false))
        .map(|b| num(b, "Size"))
        .sum();
    println!("\nBuild cache usage: {}\n", human_size(b_size as f64));
    let cache_rows: Vec<_> = cache.iter().map(|c| to_value(c, &[])).collect();
    format::print_rows(
        Format::new(
            None,
            "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}",
        ),
        &cache_rows,
        &[
            ("ID", "CACHE ID"),
            ("CacheType", "CACHE TYPE"),
            ("CreatedSince", "CREATED"),
            ("LastUsedSince", "LAST USED"),
            ("UsageCount", "USAGE"),
        ],
    )?;
    Ok(())
}
