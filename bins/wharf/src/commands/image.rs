//! `images`, `image inspect`, `tag`, `rmi`, `history`, `import`, `save`, `load`,
//! `image prune`: docker's output, flags and exit codes.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};

use bollard::query_parameters::{
    CreateImageOptions, ImportImageOptions, ListImagesOptions, PruneImagesOptions, RemoveImageOptions, TagImageOptions,
};
use futures_util::StreamExt;
use serde_json::{Value as Json, json};
use wharf_types::Reference;

use super::{Ctx, parse_filters};
use crate::cli::{
    HistoryArgs, ImageInspectArgs, ImagePruneArgs, ImagesArgs, ImportArgs, LoadArgs, RmiArgs, SaveArgs, TagArgs,
};
use crate::client::{CliError, CliResult};
use crate::format::{self, Format, Tmpl, ellipsis, human_size, human_size_precision, to_value, truncate_id};
use crate::jsonmessage::display_stream;
use crate::timefmt::human_duration;

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `time.Unix(s, 0).String()` in local time: `2006-01-02 15:04:05 -0700 MST`.
fn go_time_string(secs: i64) -> String {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_opt(secs, 0)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S %z %Z").to_string())
        .unwrap_or_default()
}

fn created_since(secs: i64) -> String {
    if secs <= 0 {
        return String::new();
    }
    format!("{} ago", human_duration(now_secs() - secs))
}

/// One row of `docker images` per (repository, tag) as docker's `imageFormat` makes them.
fn image_rows(i: &bollard::models::ImageSummary, trunc: bool, digest: bool) -> Vec<Json> {
    let mut rows = Vec::new();
    let base = |repo: &str, tag: &str, dig: &str| {
        let shared = i.shared_size;
        json!({
            "Containers": if i.containers == -1 { "N/A".to_owned() } else { i.containers.to_string() },
            "CreatedAt": go_time_string(i.created),
            "CreatedSince": created_since(i.created),
            "Digest": dig,
            "ID": if trunc { truncate_id(&i.id) } else { i.id.clone() },
            "Repository": repo,
            "SharedSize": if shared == -1 { "N/A".to_owned() } else { human_size(shared as f64) },
            "Size": human_size_precision(i.size as f64, 3),
            "Tag": tag,
            "UniqueSize": if shared == -1 { "N/A".to_owned() } else { human_size((i.size - shared) as f64) },
            "VirtualSize": human_size(i.size as f64),
        })
    };
    let dangling = (i.repo_tags.is_empty() && i.repo_digests.is_empty())
        || (i.repo_tags == ["<none>:<none>"] && i.repo_digests == ["<none>@<none>"]);
    if dangling {
        rows.push(base("<none>", "<none>", "<none>"));
        return rows;
    }
    let mut tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut digests: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in &i.repo_tags {
        if let Ok(r) = Reference::parse_normalized(t)
            && let Some(tag) = r.tag()
        {
            tags.entry(r.familiar_name()).or_default().push(tag.to_owned());
        }
    }
    for d in &i.repo_digests {
        if let Ok(r) = Reference::parse_normalized(d)
            && let Some(dg) = r.digest()
        {
            digests.entry(r.familiar_name()).or_default().push(dg.to_string());
        }
    }
    for (repo, ts) in &tags {
        let ds = digests.remove(repo).filter(|_| digest).unwrap_or_default();
        for t in ts {
            if ds.is_empty() {
                rows.push(base(repo, t, "<none>"));
            }
            for d in &ds {
                rows.push(base(repo, t, d));
            }
        }
    }
    for (repo, ds) in digests {
        if digest {
            for d in ds {
                rows.push(base(&repo, "<none>", &d));
            }
        } else {
            rows.push(base(&repo, "<none>", ""));
        }
    }
    rows
}

const IMAGE_HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE ID"),
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("Containers", "CONTAINERS"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
];

pub async fn list(ctx: &Ctx, args: ImagesArgs) -> Result<(), CliError> {
    let mut filters = parse_filters(&args.filter)?;
    if let Some(r) = &args.reference {
        filters.entry("reference".into()).or_default().push(r.clone());
    }
    let opts =
        ListImagesOptions { all: args.all, filters: (!filters.is_empty()).then_some(filters), ..Default::default() };
    let images = ctx.docker.list_images(Some(opts)).await.cli(&ctx.host)?;
    let trunc = !args.no_trunc;
    let user = args.format.as_deref().filter(|f| !f.is_empty());
    let wants_digest = args.digests || user.is_some_and(|f| f.contains("{{.Digest}}"));
    let rows: Vec<_> =
        images.iter().flat_map(|i| image_rows(i, trunc, wants_digest)).map(|r| to_value(&r, &[])).collect();
    let with_digest;
    let format = if args.quiet && user.is_none_or(|f| f == "table") {
        Format::Raw("{{.ID}}")
    } else {
        let default = if args.digests {
            "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
        } else {
            "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
        };
        match user {
            Some(f) if f.starts_with("table") && args.digests && !f.contains("{{.Digest}}") => {
                with_digest = format!("{f}\t{{{{.Digest}}}}");
                Format::new(Some(&with_digest), default)
            }
            other => Format::new(other, default),
        }
    };
    format::print_rows(format, &rows, IMAGE_HEADERS)?;
    Ok(())
}

pub async fn inspect(ctx: &Ctx, args: ImageInspectArgs) -> Result<(), CliError> {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for name in &args.images {
        // The raw JSON, as docker prints it (bollard's typed model would drop fields).
        match raw_inspect(ctx, name).await {
            Ok(doc) => docs.push(doc),
            Err(e) => errors.push(e.to_string()),
        }
    }
    match args.format.as_deref().filter(|f| !f.is_empty()) {
        None => println!("{}", format::go_json_indent(&Json::Array(docs))),
        Some("json") => {
            for d in &docs {
                println!("{}", format::go_json(d));
            }
        }
        Some(t) => {
            let tmpl = Tmpl::parse(t)?;
            for d in &docs {
                let mut d = d.clone();
                if let Some(id) = d.get("Id").cloned() {
                    d["ID"] = id;
                }
                println!("{}", tmpl.render(&to_value(&d, &[]))?);
            }
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(CliError::Other(errors.join("\n"))) }
}

/// `GET /images/{name}/json` as raw JSON.
async fn raw_inspect(ctx: &Ctx, name: &str) -> Result<Json, CliError> {
    let image = ctx.docker.inspect_image(name).await.cli(&ctx.host)?;
    Ok(serde_json::to_value(image).unwrap_or(Json::Null))
}

pub async fn tag(ctx: &Ctx, args: TagArgs) -> Result<(), CliError> {
    let target = Reference::parse_normalized(&args.target).map_err(|e| {
        CliError::Other(format!("Error parsing reference: {:?} is not a valid repository/tag: {e}", args.target))
    })?;
    if target.digest().is_some() {
        return Err(CliError::Other("refusing to create a tag with a digest reference".into()));
    }
    let target = target.with_default_tag();
    ctx.docker
        .tag_image(
            &args.source,
            Some(TagImageOptions { repo: Some(target.name()), tag: target.tag().map(str::to_owned) }),
        )
        .await
        .cli(&ctx.host)?;
    Ok(())
}

pub async fn remove(ctx: &Ctx, args: RmiArgs) -> Result<(), CliError> {
    let opts = RemoveImageOptions { force: args.force, noprune: args.no_prune, ..Default::default() };
    let mut errors = Vec::new();
    let mut fatal = false;
    for name in &args.images {
        match ctx.docker.remove_image(name, Some(opts.clone()), None).await.cli(&ctx.host) {
            Ok(records) => {
                for r in records {
                    match (r.deleted, r.untagged) {
                        (Some(d), _) => println!("Deleted: {d}"),
                        (None, Some(u)) => println!("Untagged: {u}"),
                        (None, None) => {}
                    }
                }
            }
            Err(e) => {
                if !matches!(e, CliError::Daemon { status: 404, .. }) {
                    fatal = true;
                }
                errors.push(e.to_string());
            }
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    if !args.force || fatal {
        return Err(CliError::Other(errors.join("\n")));
    }
    eprintln!("{}", errors.join("\n"));
    Ok(())
}

pub async fn history(ctx: &Ctx, args: HistoryArgs) -> Result<(), CliError> {
    let items = ctx.docker.image_history(&args.image).await.cli(&ctx.host)?;
    let trunc = !args.no_trunc;
    let human = args.human;
    const EPOCH_2000: i64 = 946_684_800;
    let rows: Vec<_> = items
        .iter()
        .map(|h| {
            let created_at = chrono::DateTime::from_timestamp(h.created, 0)
                .map(|t| {
                    t.with_timezone(&chrono::Local)
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                })
                .unwrap_or_default();
            let created_by = h.created_by.replace('\t', " ");
            json!({
                "ID": if trunc { truncate_id(&h.id) } else { h.id.clone() },
                "CreatedAt": created_at,
                "CreatedSince": if !human { created_at.clone() } else if h.created <= EPOCH_2000 { "N/A".to_owned() } else { format!("{} ago", human_duration(now_secs() - h.created)) },
                "CreatedBy": if trunc { ellipsis(&created_by, 45) } else { created_by },
                "Size": if human { human_size_precision(h.size as f64, 3) } else { h.size.to_string() },
                "Comment": h.comment,
            })
        })
        .map(|r| to_value(&r, &[]))
        .collect();
    let format = if args.quiet && args.format.as_deref().is_none_or(|f| f == "table") {
        Format::Raw("{{.ID}}")
    } else if human {
        Format::new(args.format.as_deref(), "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}")
    } else {
        Format::new(args.format.as_deref(), "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}")
    };
    format::print_rows(
        format,
        &rows,
        &[
            ("ID", "IMAGE"),
            ("CreatedSince", "CREATED"),
            ("CreatedAt", "CREATED AT"),
            ("CreatedBy", "CREATED BY"),
            ("Size", "SIZE"),
            ("Comment", "COMMENT"),
        ],
    )?;
    Ok(())
}

/// A file (or stdin) as a stream of chunks.
async fn body_from(
    path: Option<&str>,
) -> Result<tokio_util::io::ReaderStream<Box<dyn tokio::io::AsyncRead + Send + Unpin>>, CliError> {
    let reader: Box<dyn tokio::io::AsyncRead + Send + Unpin> = match path {
        None | Some("-") => Box::new(tokio::io::stdin()),
        Some(p) => Box::new(tokio::fs::File::open(p).await.map_err(|e| CliError::Other(format!("open {p}: {e}")))?),
    };
    Ok(tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024))
}

pub async fn import(ctx: &Ctx, args: ImportArgs) -> Result<(), CliError> {
    if args.source.starts_with("http://") || args.source.starts_with("https://") {
        return Err(CliError::Other(
            "importing from a URL is not supported by wharf: download the file and import it".into(),
        ));
    }
    let (repo, tag) = match &args.reference {
        Some(r) => {
            let r = Reference::parse_normalized(r).map_err(|e| CliError::Other(e.to_string()))?;
            (Some(r.name()), r.tag().map(str::to_owned))
        }
        None => (None, None),
    };
    let opts = CreateImageOptions {
        from_src: Some("-".into()),
        repo,
        tag,
        message: args.message.clone(),
        changes: args.change.clone(),
        platform: args.platform.clone().unwrap_or_default(),
        ..Default::default()
    };
    let body = bollard::body_try_stream(body_from(Some(&args.source)).await?);
    let stream = ctx.docker.create_image(Some(opts), Some(body), None);
    display_stream(stream, &ctx.host).await?;
    Ok(())
}

pub async fn save(ctx: &Ctx, args: SaveArgs) -> Result<(), CliError> {
    let to_stdout = args.output.as_deref().is_none_or(str::is_empty);
    if to_stdout && std::io::stdout().is_terminal() {
        return Err(CliError::Other("cowardly refusing to save to a terminal. Use the -o flag or redirect".into()));
    }
    let names: Vec<&str> = args.images.iter().map(String::as_str).collect();
    let mut stream = ctx.docker.export_images(&names);
    let (mut out, tmp): (Box<dyn Write>, Option<(std::path::PathBuf, std::path::PathBuf)>) =
        match args.output.as_deref().filter(|o| !o.is_empty()) {
            None => (Box::new(std::io::stdout().lock()), None),
            Some(path) => {
                let target = std::path::PathBuf::from(path);
                let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
                if !dir.is_dir() {
                    return Err(CliError::Other(format!(
                        "failed to save image: invalid output path: directory {:?} does not exist",
                        dir.display().to_string()
                    )));
                }
                let tmp = dir.join(format!(".docker_temp_{}", std::process::id()));
                let f =
                    std::fs::File::create(&tmp).map_err(|e| CliError::Other(format!("failed to save image: {e}")))?;
                (Box::new(std::io::BufWriter::new(f)), Some((tmp, target)))
            }
        };
    let result: Result<(), CliError> = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.cli(&ctx.host)?;
            out.write_all(&chunk).map_err(|e| CliError::Other(format!("write: {e}")))?;
        }
        out.flush().map_err(|e| CliError::Other(format!("write: {e}")))
    }
    .await;
    drop(out);
    match (result, tmp) {
        (Ok(()), Some((tmp, target))) => {
            std::fs::rename(&tmp, &target).map_err(|e| CliError::Other(format!("failed to save image: {e}")))
        }
        (Err(e), Some((tmp, _))) => {
            let _ = std::fs::remove_file(tmp);
            Err(e)
        }
        (r, None) => r,
    }
}

pub async fn load(ctx: &Ctx, args: LoadArgs) -> Result<(), CliError> {
    let input = args.input.as_deref().filter(|i| !i.is_empty());
    if input.is_none() && std::io::stdin().is_terminal() {
        return Err(CliError::Other("requested load from stdin, but stdin is empty".into()));
    }
    let quiet = args.quiet || !std::io::stdout().is_terminal();
    let reader: Box<dyn tokio::io::AsyncRead + Send + Unpin> = match input {
        None => Box::new(tokio::io::stdin()),
        Some(p) => Box::new(tokio::fs::File::open(p).await.map_err(|e| CliError::Other(format!("open {p}: {e}")))?),
    };
    let stream = tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024);
    let opts = ImportImageOptions { quiet, ..Default::default() };
    let out = ctx.docker.import_image_stream(opts, stream, None);
    display_stream(out, &ctx.host).await?;
    Ok(())
}

/// docker's `prompt.Confirm`: `<message> [y/N] `, yes only for `y`/`Y`.
pub fn confirm(message: &str) -> bool {
    print!("{message} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim(), "y" | "Y")
}

pub async fn prune(ctx: &Ctx, args: ImagePruneArgs) -> Result<(), CliError> {
    let mut filters: HashMap<String, Vec<String>> = parse_filters(&args.filter)?;
    filters.insert("dangling".into(), vec![(!args.all).to_string()]);
    let warning = if args.all {
        "WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue?"
    } else {
        "WARNING! This will remove all dangling images.\nAre you sure you want to continue?"
    };
    if !args.force && !confirm(warning) {
        return Ok(());
    }
    let report = ctx.docker.prune_images(Some(PruneImagesOptions { filters: Some(filters) })).await.cli(&ctx.host)?;
    let deleted = report.images_deleted.unwrap_or_default();
    let mut reclaimed = 0;
    if !deleted.is_empty() {
        let mut out = String::from("Deleted Images:\n");
        for d in deleted {
            match (d.untagged, d.deleted) {
                (Some(u), _) if !u.is_empty() => out.push_str(&format!("untagged: {u}\n")),
                (_, Some(d)) => out.push_str(&format!("deleted: {d}\n")),
                _ => {}
            }
        }
        println!("{out}");
        reclaimed = report.space_reclaimed.unwrap_or(0);
    }
    println!("Total reclaimed space: {}", human_size(reclaimed as f64));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(tags: &[&str], digests: &[&str]) -> bollard::models::ImageSummary {
        bollard::models::ImageSummary {
            id: format!("sha256:{}", "a".repeat(64)),
            repo_tags: tags.iter().map(|s| s.to_string()).collect(),
            repo_digests: digests.iter().map(|s| s.to_string()).collect(),
            size: 1_982_256,
            shared_size: -1,
            containers: -1,
            ..Default::default()
        }
    }

    #[test]
    fn rows_per_tag_and_dangling() {
        let rows = image_rows(&summary(&["busybox:latest", "foo/bar:v1"], &[]), true, false);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["Repository"], "busybox");
        assert_eq!(rows[0]["Tag"], "latest");
        assert_eq!(rows[0]["ID"], "aaaaaaaaaaaa");
        assert_eq!(rows[0]["Size"], "1.98MB");
        let rows = image_rows(&summary(&[], &[]), true, false);
        assert_eq!(rows[0]["Repository"], "<none>");
        let d = format!("busybox@sha256:{}", "b".repeat(64));
        let rows = image_rows(&summary(&[], &[&d]), true, true);
        assert_eq!(rows[0]["Tag"], "<none>");
        assert!(rows[0]["Digest"].as_str().unwrap().starts_with("sha256:b"));
    }
}
