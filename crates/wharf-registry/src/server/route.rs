//! Parsing `/v2/…` paths into routes. Repository names contain slashes, so a path is read from
//! its end: `<name>/manifests/<ref>`, `<name>/blobs/uploads/[<id>]`, `<name>/blobs/<digest>`,
//! `<name>/tags/list`, `<name>/referrers/<digest>`.

use super::name::RepoName;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`: the API version check.
    Base,
    Catalog,
    Tags(RepoName),
    Manifest(RepoName, String),
    Blob(RepoName, String),
    UploadStart(RepoName),
    Upload(RepoName, String),
    Referrers(RepoName, String),
}

/// Why a path is not a route.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteError {
    /// Not an API path at all (404).
    NotFound,
    /// The shape is right but the repository name breaks the grammar (400 NAME_INVALID).
    NameInvalid(String),
}

pub fn parse(path: &str) -> Result<Route, RouteError> {
    let rest = path.strip_prefix("/v2").ok_or(RouteError::NotFound)?;
    if rest.is_empty() || rest == "/" {
        return Ok(Route::Base);
    }
    let rest = rest.strip_prefix('/').ok_or(RouteError::NotFound)?;
    if rest == "_catalog" {
        return Ok(Route::Catalog);
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let name = |k: usize| -> Result<RepoName, RouteError> {
        if n <= k {
            return Err(RouteError::NotFound);
        }
        let raw = segs[..n - k].join("/");
        RepoName::parse(&raw).ok_or(RouteError::NameInvalid(raw))
    };
    if n >= 3 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
        return Ok(if segs[n - 1].is_empty() {
            Route::UploadStart(name(3)?)
        } else {
            Route::Upload(name(3)?, segs[n - 1].to_owned())
        });
    }
    if n >= 2 && segs[n - 2] == "blobs" && segs[n - 1] == "uploads" {
        return Ok(Route::UploadStart(name(2)?));
    }
    if n >= 2 && !segs[n - 1].is_empty() {
        let last = segs[n - 1].to_owned();
        match segs[n - 2] {
            "manifests" => return Ok(Route::Manifest(name(2)?, last)),
            "blobs" => return Ok(Route::Blob(name(2)?, last)),
            "referrers" => return Ok(Route::Referrers(name(2)?, last)),
            "tags" if last == "list" => return Ok(Route::Tags(name(2)?)),
            _ => {}
        }
    }
    Err(RouteError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> RepoName {
        RepoName::parse(s).unwrap()
    }

    #[test]
    fn routes() {
        assert_eq!(parse("/v2/"), Ok(Route::Base));
        assert_eq!(parse("/v2"), Ok(Route::Base));
        assert_eq!(parse("/v2/_catalog"), Ok(Route::Catalog));
        assert_eq!(parse("/v2/a/b/manifests/latest"), Ok(Route::Manifest(n("a/b"), "latest".into())));
        assert_eq!(parse("/v2/x/blobs/uploads/"), Ok(Route::UploadStart(n("x"))));
        assert_eq!(parse("/v2/x/blobs/uploads/abc"), Ok(Route::Upload(n("x"), "abc".into())));
        assert_eq!(parse("/v2/x/blobs/sha256:00"), Ok(Route::Blob(n("x"), "sha256:00".into())));
        assert_eq!(parse("/v2/x/y/tags/list"), Ok(Route::Tags(n("x/y"))));
        assert_eq!(parse("/v2/blobs/manifests/t"), Ok(Route::Manifest(n("blobs"), "t".into())));
        assert_eq!(parse("/v2/../etc/manifests/t"), Err(RouteError::NameInvalid("../etc".into())));
        assert_eq!(parse("/v2//a/manifests/t"), Err(RouteError::NameInvalid("/a".into())));
        assert_eq!(parse("/v2/manifests/t"), Err(RouteError::NotFound));
        assert_eq!(parse("/v3/x"), Err(RouteError::NotFound));
    }
}
