//! The registry's operations, one function per endpoint; each turns a parsed request into storage
//! calls and a response.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use wharf_types::Digest;
use wharf_types::oci::{Descriptor, ImageIndex, Manifest, media_type};

use super::auth::{Access, TokenAuth};
use super::error::{ApiError, Code};
use super::name::{RepoName, valid_tag};
use super::{Authorized, MAX_MANIFEST_SIZE, Registry, empty};

/// Query parameters, percent-decoded; repeated keys kept in order.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(q: Option<&str>) -> Self {
        Self(form_urlencoded::parse(q.unwrap_or("").as_bytes()).into_owned().collect())
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, k: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(a, _)| a == k).map(|(_, v)| v.as_str())
    }
}

/// The running hash of an upload and how many bytes it covers.
#[derive(Debug, Clone)]
pub(crate) struct UploadHash {
    hasher: Sha256,
    size: u64,
}

fn upload_location(repo: &RepoName, id: &str) -> String {
    format!("/v2/{repo}/blobs/uploads/{id}")
}

fn range_header(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

fn parse_digest(s: &str) -> Result<Digest, ApiError> {
    s.parse::<Digest>().map_err(|e| {
        ApiError::new(Code::DigestInvalid)
            .message(format!("invalid digest {s}: {e}"))
            .detail(serde_json::json!({"digest": s}))
    })
}

fn upload_unknown(id: &str) -> ApiError {
    ApiError::new(Code::BlobUploadUnknown).detail(serde_json::json!({"uuid": id}))
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(Code::SizeInvalid)
        .status(StatusCode::PAYLOAD_TOO_LARGE)
        .message(format!("blob exceeds the maximum upload size of {limit} bytes"))
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

// ---- blobs ----

pub(crate) async fn get_blob(
    reg: &Registry,
    repo: &RepoName,
    digest: &str,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response, ApiError> {
    let d = parse_digest(digest)?;
    let unknown = || ApiError::new(Code::BlobUnknown).detail(serde_json::json!({"digest": digest}));
    let size = reg.storage.blob_size(repo, &d).await?.ok_or_else(unknown)?;
    let mut hdrs = vec![
        ("Docker-Content-Digest", d.to_string()),
        ("Content-Type", "application/octet-stream".to_owned()),
        ("Accept-Ranges", "bytes".to_owned()),
        ("ETag", format!("\"{d}\"")),
    ];
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map(|r| parse_range(r, size));
    let (status, start, len) = match range {
        None => (StatusCode::OK, 0, size),
        Some(None) => {
            return Ok(empty(StatusCode::RANGE_NOT_SATISFIABLE, &[("Content-Range", format!("bytes */{size}"))]));
        }
        Some(Some((a, b))) => {
            hdrs.push(("Content-Range", format!("bytes {a}-{b}/{size}")));
            (StatusCode::PARTIAL_CONTENT, a, b - a + 1)
        }
    };
    hdrs.push(("Content-Length", len.to_string()));
    if head {
        return Ok(empty(status, &hdrs));
    }
    let path = reg.storage.blob_path(&d);
    let mut f = tokio::fs::File::open(&path).await.map_err(|_| unknown())?;
    if start > 0 {
        f.seek(std::io::SeekFrom::Start(start)).await.map_err(ApiError::internal)?;
    }
    let stream = tokio_util::io::ReaderStream::with_capacity(f.take(len), 256 * 1024);
    let mut resp = empty(status, &hdrs);
    *resp.body_mut() = Body::from_stream(stream);
    Ok(resp)
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` → inclusive offsets; `None` when unsatisfiable.
fn parse_range(r: &str, size: u64) -> Option<(u64, u64)> {
    let spec = r.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return None;
        }
        (size.saturating_sub(n), size.checked_sub(1)?)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() { size.checked_sub(1)? } else { b.parse::<u64>().ok()?.min(size.checked_sub(1)?) };
        (start, end)
    };
    (start <= end && start < size).then_some((start, end))
}

pub(crate) async fn delete_blob(reg: &Registry, repo: &RepoName, digest: &str) -> Result<Response, ApiError> {
    let d = parse_digest(digest)?;
    if !reg.storage.unlink_blob(repo, &d).await? {
        return Err(ApiError::new(Code::BlobUnknown).detail(serde_json::json!({"digest": digest})));
    }
    Ok(empty(StatusCode::ACCEPTED, &[("Docker-Content-Digest", d.to_string())]))
}

// ---- uploads ----

fn hash_state(reg: &Registry, id: &str) -> Arc<tokio::sync::Mutex<Option<UploadHash>>> {
    reg.uploads.lock().expect("poisoned").entry(id.to_owned()).or_default().clone()
}

fn forget(reg: &Registry, id: &str) {
    reg.uploads.lock().expect("poisoned").remove(id);
}

/// The hash of the upload's data so far: from memory, or re-read from disk after a restart.
async fn current_hash(reg: &Registry, id: &str, slot: &mut Option<UploadHash>) -> Result<(), ApiError> {
    if slot.is_some() {
        return Ok(());
    }
    let mut f = tokio::fs::File::open(reg.storage.upload_data(id)).await.map_err(|_| upload_unknown(id))?;
    let mut h = UploadHash { hasher: Sha256::new(), size: 0 };
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).await.map_err(ApiError::internal)?;
        if n == 0 {
            break;
        }
        h.hasher.update(&buf[..n]);
        h.size += n as u64;
    }
    *slot = Some(h);
    Ok(())
}

/// Appends a request body to an upload, hashing as it goes and enforcing the size limit.
async fn append(reg: &Registry, id: &str, state: &mut UploadHash, body: Body) -> Result<(), ApiError> {
    let path = reg.storage.upload_data(id);
    let f = tokio::fs::OpenOptions::new().append(true).open(&path).await.map_err(|_| upload_unknown(id))?;
    let mut w = tokio::io::BufWriter::with_capacity(1 << 20, f);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::new(Code::BlobUploadInvalid).message(format!("reading the request body: {e}")))?;
        if let Some(limit) = reg.max_upload_size
            && state.size + chunk.len() as u64 > limit
        {
            return Err(too_large(limit));
        }
        w.write_all(&chunk).await.map_err(ApiError::internal)?;
        state.hasher.update(&chunk);
        state.size += chunk.len() as u64;
    }
    w.flush().await.map_err(ApiError::internal)?;
    Ok(())
}

/// Runs `f` on an upload's hash state; on any error the upload's state is dropped (re-hashed from
/// disk next time) and, for size and digest errors, the upload is cancelled.
async fn with_upload<T>(
    reg: &Registry,
    repo: &RepoName,
    id: &str,
    f: impl AsyncFnOnce(&mut UploadHash) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    if reg.storage.upload_size(repo, id).await.is_err() {
        forget(reg, id);
        return Err(upload_unknown(id));
    }
    let slot = hash_state(reg, id);
    let mut guard = slot.lock().await;
    current_hash(reg, id, &mut guard).await?;
    let state = guard.as_mut().expect("filled above");
    let res = f(state).await;
    if let Err(e) = &res {
        *guard = None;
        forget(reg, id);
        if matches!(e.code, Code::SizeInvalid | Code::DigestInvalid) {
            let _ = reg.storage.delete_upload(id).await;
        }
    }
    res
}

/// Checks the final digest and moves the upload into the store.
async fn finish(
    reg: &Registry,
    repo: &RepoName,
    id: &str,
    state: &UploadHash,
    digest: &str,
) -> Result<Response, ApiError> {
    let want = parse_digest(digest)?;
    if want.algorithm() != wharf_types::digest::Algorithm::Sha256 {
        return Err(ApiError::new(Code::DigestInvalid).message(format!("unsupported digest algorithm in {want}")));
    }
    let got = Digest::sha256_bytes(&state.hasher.clone().finalize().into());
    if got != want {
        return Err(ApiError::new(Code::DigestInvalid)
            .message(format!("provided digest did not match uploaded content: {want} != {got}"))
            .detail(serde_json::json!({"digest": digest})));
    }
    reg.storage.commit_upload(repo, id, &want).await?;
    forget(reg, id);
    Ok(empty(
        StatusCode::CREATED,
        &[
            ("Location", format!("/v2/{repo}/blobs/{want}")),
            ("Docker-Content-Digest", want.to_string()),
            ("Content-Length", "0".to_owned()),
        ],
    ))
}

fn check_declared_size(reg: &Registry, headers: &HeaderMap) -> Result<(), ApiError> {
    if let (Some(limit), Some(len)) = (reg.max_upload_size, content_length(headers))
        && len > limit
    {
        return Err(too_large(limit));
    }
    Ok(())
}

pub(crate) async fn start_upload(
    reg: &Registry,
    repo: &RepoName,
    q: &Query,
    authz: &Authorized,
    req: Request,
) -> Result<Response, ApiError> {
    if let (Some(mount), Some(from)) = (q.get("mount"), q.get("from")) {
        let d = parse_digest(mount)?;
        if let Some(src) = super::name::RepoName::parse(from)
            && authz.may_pull(reg, src.as_str())
            && reg.storage.blob_size(&src, &d).await?.is_some()
        {
            let _lock = reg.storage.gc_lock(false).await?;
            if reg.storage.global_blob_size(&d).await?.is_some() {
                reg.storage.link_blob(repo, &d).await?;
                return Ok(empty(
                    StatusCode::CREATED,
                    &[
                        ("Location", format!("/v2/{repo}/blobs/{d}")),
                        ("Docker-Content-Digest", d.to_string()),
                        ("Content-Length", "0".to_owned()),
                    ],
                ));
            }
        }
    }
    check_declared_size(reg, req.headers())?;
    let id = reg.storage.create_upload(repo).await?;
    if let Some(digest) = q.get("digest") {
        // Monolithic: POST ?digest= with the whole blob as the body.
        let digest = digest.to_owned();
        let body = req.into_body();
        return with_upload(reg, repo, &id, async |st| {
            append(reg, &id, st, body).await?;
            finish(reg, repo, &id, st, &digest).await
        })
        .await;
    }
    Ok(empty(
        StatusCode::ACCEPTED,
        &[
            ("Location", upload_location(repo, &id)),
            ("Range", "0-0".to_owned()),
            ("Docker-Upload-UUID", id.clone()),
            ("Content-Length", "0".to_owned()),
        ],
    ))
}

pub(crate) async fn upload_status(reg: &Registry, repo: &RepoName, id: &str) -> Result<Response, ApiError> {
    let size = reg.storage.upload_size(repo, id).await.map_err(|_| upload_unknown(id))?;
    Ok(empty(
        StatusCode::NO_CONTENT,
        &[
            ("Location", upload_location(repo, id)),
            ("Range", range_header(size)),
            ("Docker-Upload-UUID", id.to_owned()),
            ("Content-Length", "0".to_owned()),
        ],
    ))
}

/// `Content-Range: <start>-<end>` (inclusive), with or without a `bytes ` prefix.
fn parse_content_range(v: &str) -> Option<(u64, u64)> {
    let v = v.trim();
    let v = v.strip_prefix("bytes ").unwrap_or(v);
    let v = v.split('/').next()?;
    let (a, b) = v.split_once('-')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

pub(crate) async fn patch_upload(
    reg: &Registry,
    repo: &RepoName,
    id: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_content_range(v).ok_or(v.to_owned()));
    let len = content_length(&parts.headers);
    let size = with_upload(reg, repo, id, async |st| {
        match &declared {
            Some(Ok((start, end))) => {
                let (start, end) = (*start, *end);
                let bad_len = end < start || len.is_some_and(|l| end + 1 - start != l);
                if start != st.size || bad_len {
                    return Err(ApiError::new(Code::RangeInvalid)
                        .message(format!("content range {start}-{end} does not continue the upload at {}", st.size)));
                }
            }
            Some(Err(raw)) => {
                return Err(ApiError::new(Code::RangeInvalid).message(format!("malformed Content-Range {raw:?}")));
            }
            None => {}
        }
        if let (Some(limit), Some(l)) = (reg.max_upload_size, len)
            && st.size + l > limit
        {
            return Err(too_large(limit));
        }
        append(reg, id, st, body).await?;
        Ok(st.size)
    })
    .await;
    let size = match size {
        Ok(s) => s,
        Err(e) if e.code == Code::RangeInvalid => {
            let cur = reg.storage.upload_size(repo, id).await.unwrap_or(0);
            let mut r = e.into_response();
            for (k, v) in [("Location", upload_location(repo, id)), ("Range", range_header(cur))] {
                if let Ok(v) = v.parse() {
                    r.headers_mut().insert(k, v);
                }
            }
            return Ok(r);
        }
        Err(e) => return Err(e),
    };
    Ok(empty(
        StatusCode::ACCEPTED,
        &[
            ("Location", upload_location(repo, id)),
            ("Range", range_header(size)),
            ("Docker-Upload-UUID", id.to_owned()),
            ("Content-Length", "0".to_owned()),
        ],
    ))
}

pub(crate) async fn put_upload(
    reg: &Registry,
    repo: &RepoName,
    id: &str,
    q: &Query,
    req: Request,
) -> Result<Response, ApiError> {
    let Some(digest) = q.get("digest").map(str::to_owned) else {
        return Err(ApiError::new(Code::DigestInvalid).message("digest missing from the upload PUT"));
    };
    check_declared_size(reg, req.headers())?;
    let body = req.into_body();
    with_upload(reg, repo, id, async |st| {
        append(reg, id, st, body).await?;
        finish(reg, repo, id, st, &digest).await
    })
    .await
}

pub(crate) async fn cancel_upload(reg: &Registry, repo: &RepoName, id: &str) -> Result<Response, ApiError> {
    reg.storage.upload_size(repo, id).await.map_err(|_| upload_unknown(id))?;
    forget(reg, id);
    reg.storage.delete_upload(id).await?;
    Ok(empty(StatusCode::NO_CONTENT, &[("Content-Length", "0".to_owned())]))
}

// ---- manifests ----

fn manifest_unknown(reference: &str) -> ApiError {
    ApiError::new(Code::ManifestUnknown).detail(serde_json::json!({"Tag": reference}))
}

/// A tag or a digest, validated.
enum ManifestRef {
    Tag(String),
    Digest(Digest),
}

fn parse_reference(r: &str) -> Result<ManifestRef, ApiError> {
    if r.contains(':') {
        return parse_digest(r).map(ManifestRef::Digest);
    }
    if valid_tag(r) {
        Ok(ManifestRef::Tag(r.to_owned()))
    } else {
        Err(ApiError::new(Code::ManifestInvalid)
            .message(format!("invalid tag {r:?}"))
            .detail(serde_json::json!({"Tag": r})))
    }
}

pub(crate) async fn get_manifest(
    reg: &Registry,
    repo: &RepoName,
    reference: &str,
    head: bool,
) -> Result<Response, ApiError> {
    let d = match parse_reference(reference)? {
        ManifestRef::Digest(d) => d,
        ManifestRef::Tag(t) => reg.storage.resolve_tag(repo, &t).await?.ok_or_else(|| manifest_unknown(reference))?,
    };
    let (mt, bytes) = reg.storage.get_manifest(repo, &d).await?.ok_or_else(|| manifest_unknown(reference))?;
    let hdrs = [
        ("Content-Type", mt),
        ("Docker-Content-Digest", d.to_string()),
        ("ETag", format!("\"{d}\"")),
        ("Content-Length", bytes.len().to_string()),
    ];
    let mut resp = empty(StatusCode::OK, &hdrs);
    if !head {
        *resp.body_mut() = Body::from(bytes);
    }
    Ok(resp)
}

pub(crate) async fn put_manifest(
    reg: &Registry,
    repo: &RepoName,
    reference: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let reference = parse_reference(reference)?;
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = axum::body::to_bytes(req.into_body(), MAX_MANIFEST_SIZE).await.map_err(|_| {
        ApiError::new(Code::SizeInvalid)
            .status(StatusCode::PAYLOAD_TOO_LARGE)
            .message(format!("manifest exceeds {MAX_MANIFEST_SIZE} bytes"))
    })?;
    let (mt, manifest) = Manifest::parse(content_type.as_deref(), &body)
        .map_err(|e| ApiError::new(Code::ManifestInvalid).message(format!("manifest invalid: {e}")))?;
    let digest = Digest::sha256_bytes(&Sha256::digest(&body).into());
    if let ManifestRef::Digest(want) = &reference
        && *want != digest
    {
        return Err(
            ApiError::new(Code::DigestInvalid).message(format!("manifest digest {digest} does not match {want}"))
        );
    }
    let _lock = reg.storage.gc_lock(false).await?;
    for r in manifest.references() {
        let present = match &manifest {
            Manifest::Image(_) if !r.urls.is_empty() => true, // foreign layer
            Manifest::Image(_) => reg.storage.blob_size(repo, &r.digest).await?.is_some(),
            Manifest::Index(_) => reg.storage.manifest_media_type(repo, &r.digest).await?.is_some(),
        };
        if !present {
            return Err(ApiError::new(Code::ManifestBlobUnknown)
                .message(format!("blob unknown to registry: {}", r.digest))
                .detail(serde_json::json!({"digest": r.digest})));
        }
    }
    let referrer = manifest.subject().map(|s| {
        let mut d = Descriptor::new(mt.clone(), digest.clone(), body.len() as u64);
        d.artifact_type = manifest.artifact_type().map(str::to_owned);
        d.annotations = manifest.annotations().clone();
        (s.digest.clone(), d)
    });
    let subject = manifest.subject().map(|s| s.digest.to_string());
    let tag = match &reference {
        ManifestRef::Tag(t) => Some(t.as_str()),
        ManifestRef::Digest(_) => None,
    };
    reg.storage.put_manifest(repo, &digest, &mt, body, tag, referrer).await?;
    let mut hdrs = vec![
        ("Location", format!("/v2/{repo}/manifests/{digest}")),
        ("Docker-Content-Digest", digest.to_string()),
        ("Content-Length", "0".to_owned()),
    ];
    if let Some(s) = subject {
        hdrs.push(("OCI-Subject", s));
    }
    Ok(empty(StatusCode::CREATED, &hdrs))
}

pub(crate) async fn delete_manifest(reg: &Registry, repo: &RepoName, reference: &str) -> Result<Response, ApiError> {
    match parse_reference(reference)? {
        ManifestRef::Tag(t) => {
            if !reg.storage.delete_tag(repo, &t).await? {
                return Err(manifest_unknown(reference));
            }
        }
        ManifestRef::Digest(d) => {
            let subject = match reg.storage.get_manifest(repo, &d).await? {
                Some((mt, bytes)) => {
                    Manifest::parse(Some(&mt), &bytes).ok().and_then(|(_, m)| m.subject().map(|s| s.digest.clone()))
                }
                None => return Err(manifest_unknown(reference)),
            };
            if !reg.storage.delete_manifest(repo, &d, subject.as_ref()).await? {
                return Err(manifest_unknown(reference));
            }
        }
    }
    Ok(empty(StatusCode::ACCEPTED, &[("Content-Length", "0".to_owned())]))
}

// ---- listings ----

/// Applies `n` and `last` to a sorted list; returns the page and the `Link` header for the next.
fn paginate(all: Vec<String>, q: &Query, base: &str) -> (Vec<String>, Option<String>) {
    let mut items: Vec<String> = match q.get("last") {
        Some(last) => all.into_iter().filter(|t| t.as_str() > last).collect(),
        None => all,
    };
    let n = q.get("n").and_then(|n| n.parse::<usize>().ok());
    match n {
        Some(n) if items.len() > n => {
            items.truncate(n);
            let link = items.last().map(|last| {
                let qs = form_urlencoded::Serializer::new(String::new())
                    .append_pair("last", last)
                    .append_pair("n", &n.to_string())
                    .finish();
                format!("<{base}?{qs}>; rel=\"next\"")
            });
            (items, link)
        }
        _ => (items, None),
    }
}

fn json_with_link(body: serde_json::Value, link: Option<String>) -> Response {
    let mut r = axum::Json(body).into_response();
    if let Some(l) = link
        && let Ok(v) = l.parse()
    {
        r.headers_mut().insert(header::LINK, v);
    }
    r
}

pub(crate) async fn tags(reg: &Registry, repo: &RepoName, q: &Query) -> Result<Response, ApiError> {
    let all = reg.storage.tags(repo).await?.ok_or_else(|| {
        ApiError::new(Code::NameUnknown)
            .message(format!("repository name not known to registry: {repo}"))
            .detail(serde_json::json!({"name": repo.as_str()}))
    })?;
    let (page, link) = paginate(all, q, &format!("/v2/{repo}/tags/list"));
    Ok(json_with_link(serde_json::json!({"name": repo.as_str(), "tags": page}), link))
}

pub(crate) async fn catalog(reg: &Registry, q: &Query) -> Result<Response, ApiError> {
    let all = reg.storage.repositories().await?;
    let (page, link) = paginate(all, q, "/v2/_catalog");
    Ok(json_with_link(serde_json::json!({"repositories": page}), link))
}

/// `GET /v1/search?q=<term>&n=<limit>`: the v1 search API `docker search` speaks (Docker Hub's
/// index has it; distribution does not), answered from the catalog: the repositories whose
/// name contains the term, case-insensitively, at most `n` (default 25, at most 100).
pub(crate) async fn search(reg: &Registry, q: &Query) -> Result<Response, ApiError> {
    let term = q.get("q").unwrap_or("").to_owned();
    let limit = match q.get("n") {
        None | Some("") => 25,
        Some(n) => n.parse::<usize>().ok().filter(|n| (1..=100).contains(n)).ok_or_else(|| {
            ApiError::new(Code::Unsupported)
                .status(StatusCode::BAD_REQUEST)
                .message(format!("invalid search limit {n:?}: must be between 1 and 100"))
        })?,
    };
    let needle = term.to_lowercase();
    let hits: Vec<String> =
        reg.storage.repositories().await?.into_iter().filter(|r| r.to_lowercase().contains(&needle)).collect();
    let results: Vec<serde_json::Value> = hits
        .iter()
        .take(limit)
        .map(|name| {
            serde_json::json!({"name": name, "description": "", "star_count": 0, "is_official": false, "is_automated": false})
        })
        .collect();
    Ok(axum::Json(serde_json::json!({"num_results": hits.len(), "query": term, "results": results})).into_response())
}

pub(crate) async fn referrers(reg: &Registry, repo: &RepoName, digest: &str, q: &Query) -> Result<Response, ApiError> {
    let d = parse_digest(digest)?;
    let mut manifests = reg.storage.referrers(repo, &d).await?;
    let filters: Vec<&str> = q.all("artifactType").collect();
    if !filters.is_empty() {
        manifests.retain(|m| m.artifact_type.as_deref().is_some_and(|t| filters.contains(&t)));
    }
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(media_type::OCI_INDEX.to_owned()),
        artifact_type: None,
        manifests,
        subject: None,
        annotations: Default::default(),
        extra: Default::default(),
    };
    let mut r = axum::Json(index).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(media_type::OCI_INDEX));
    if !filters.is_empty() {
        r.headers_mut().insert("OCI-Filters-Applied", header::HeaderValue::from_static("artifactType"));
    }
    Ok(r)
}

// ---- the token service ----

pub(crate) async fn token(t: &TokenAuth, req: Request) -> Result<Response, ApiError> {
    let denied = || {
        ApiError::new(Code::Unauthorized)
            .message("authentication required")
            .challenge(format!("Basic realm=\"{}\"", t.realm))
    };
    let basic =
        req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(super::auth::parse_basic);
    let (params, user, offline) = if req.method() == axum::http::Method::POST {
        let body = axum::body::to_bytes(req.into_body(), 64 * 1024)
            .await
            .map_err(|_| ApiError::new(Code::Unsupported).status(StatusCode::BAD_REQUEST))?;
        let form = Query(form_urlencoded::parse(&body).into_owned().collect());
        let user = match form.get("grant_type") {
            Some("refresh_token") => form.get("refresh_token").and_then(|r| t.check_refresh(r)).ok_or_else(denied)?,
            Some("password") => {
                let creds = form.get("username").zip(form.get("password")).map(|(u, p)| (u.to_owned(), p.to_owned()));
                t.check_user(creds.as_ref()).ok_or_else(denied)?
            }
            _ => {
                return Err(ApiError::new(Code::Unsupported)
                    .status(StatusCode::BAD_REQUEST)
                    .message("unsupported grant_type"));
            }
        };
        let offline = form.get("access_type") == Some("offline");
        let scopes: Vec<String> = form.all("scope").flat_map(|s| s.split(' ')).map(str::to_owned).collect();
        (scopes, user, offline)
    } else {
        let q = Query::parse(req.uri().query());
        let user = t.check_user(basic.as_ref()).ok_or_else(denied)?;
        let offline = q.get("offline_token") == Some("true");
        let scopes: Vec<String> = q.all("scope").flat_map(|s| s.split(' ')).map(str::to_owned).collect();
        (scopes, user, offline)
    };
    let access: Vec<Access> = params.iter().filter_map(|s| Access::parse_scope(s)).collect();
    Ok(axum::Json(t.issue(&user, &access, offline)).into_response())
}
