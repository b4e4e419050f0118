//! OCI and Docker image-manifest data: media types, descriptors, image manifests and indexes
//! (manifest lists). Plain serde data, no I/O.
//!
//! Fields we do not model are kept in `extra` (flattened), so a manifest parsed and serialised
//! again keeps them; but a manifest's digest is always the digest of the bytes the registry sent,
//! never of a re-serialisation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::platform::Platform;

/// Media types of manifests, indexes, configs and layers.
pub mod media_type {
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_MANIFEST_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    pub const DOCKER_MANIFEST_V1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_LAYER_FOREIGN_GZIP: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";

    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const OCI_LAYER_NONDIST_GZIP: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    /// The empty JSON blob `{}` used as the config of artifacts (image-spec 1.1).
    pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

    /// Every manifest or index media type Wharf can read, in the order sent in `Accept`.
    pub const ACCEPTED_MANIFESTS: [&str; 4] = [OCI_INDEX, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST, OCI_MANIFEST];

    /// True for an image manifest (Docker schema 2 or OCI).
    pub fn is_image_manifest(mt: &str) -> bool {
        mt == DOCKER_MANIFEST || mt == OCI_MANIFEST
    }

    /// True for an index (OCI index or Docker manifest list).
    pub fn is_index(mt: &str) -> bool {
        mt == OCI_INDEX || mt == DOCKER_MANIFEST_LIST
    }

    /// True for any manifest media type Wharf understands.
    pub fn is_manifest(mt: &str) -> bool {
        is_image_manifest(mt) || is_index(mt)
    }
}

/// A reference to content: its media type, digest and size, as in every manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<DescriptorPlatform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Base64 of the content, embedded (image-spec 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Descriptor {
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Self {
            media_type: media_type.into(),
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
            artifact_type: None,
            data: None,
            extra: serde_json::Map::new(),
        }
    }
}

/// The platform of an index entry, with the OCI fields `wharf_types::Platform` leaves out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescriptorPlatform {
    pub architecture: String,
    pub os: String,
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

impl DescriptorPlatform {
    /// The normalised platform (`aarch64` → `arm64`, …); `None` when os/arch is unknown.
    pub fn to_platform(&self) -> Option<Platform> {
        let mut s = format!("{}/{}", self.os, self.architecture);
        if let Some(v) = &self.variant {
            s.push('/');
            s.push_str(v);
        }
        Platform::parse(&s).ok()
    }
}

impl From<&Platform> for DescriptorPlatform {
    fn from(p: &Platform) -> Self {
        Self {
            architecture: p.architecture.clone(),
            os: p.os.clone(),
            os_version: None,
            os_features: Vec::new(),
            variant: p.variant.clone(),
            features: Vec::new(),
        }
    }
}

/// An image manifest: Docker schema 2 (`mediaType` required) or OCI (`mediaType` optional).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// An OCI image index or a Docker manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ImageIndex {
    /// The entry for `want`: the first whose platform matches (variant-insensitive when one side
    /// leaves it out), preferring an exact variant match, as containerd's platform matcher does.
    pub fn select(&self, want: &Platform) -> Option<&Descriptor> {
        let candidates = || {
            self.manifests.iter().filter_map(|d| {
                let p = d.platform.as_ref()?.to_platform()?;
                media_type::is_manifest(&d.media_type).then_some((d, p)).filter(|(_, p)| p.matches(want))
            })
        };
        candidates().find(|(_, p)| p.variant == want.variant).or_else(|| candidates().next()).map(|(d, _)| d)
    }
}

/// A parsed manifest of either kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    Image(ImageManifest),
    Index(ImageIndex),
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("unsupported manifest media type and no default available: {0}")]
    UnknownMediaType(String),
    #[error("schema 1 manifests are not supported: {0}")]
    Schema1(String),
    #[error("invalid manifest")]
    Json(#[source] serde_json::Error),
    #[error("mediaType in manifest should be '{declared}' not '{body}'")]
    MediaTypeMismatch { declared: String, body: String },
    #[error("unsupported manifest schemaVersion {0}")]
    SchemaVersion(u32),
}

impl crate::error::Classify for ManifestError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::InvalidArgument
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    config: Option<serde_json::Value>,
    #[serde(default)]
    fs_layers: Option<serde_json::Value>,
}

impl Manifest {
    /// Parses a manifest body. `declared` is the media type the transport named (the registry's
    /// `Content-Type`, or the client's on a push); when absent or generic the body's `mediaType`
    /// decides, and an OCI body without `mediaType` is told apart by `manifests` vs `config`.
    /// Returns the effective media type too.
    pub fn parse(declared: Option<&str>, body: &[u8]) -> Result<(String, Manifest), ManifestError> {
        let probe: Probe = serde_json::from_slice(body).map_err(ManifestError::Json)?;
        let declared = declared
            .map(|d| d.split(';').next().unwrap_or("").trim())
            .filter(|d| !d.is_empty() && *d != "application/json" && *d != "text/plain");
        if let (Some(d), Some(b)) = (declared, probe.media_type.as_deref())
            && d != b
        {
            return Err(ManifestError::MediaTypeMismatch { declared: d.to_owned(), body: b.to_owned() });
        }
        let mt = match declared.or(probe.media_type.as_deref()) {
            Some(mt) => mt.to_owned(),
            None if probe.fs_layers.is_some() => {
                return Err(ManifestError::Schema1(media_type::DOCKER_MANIFEST_V1.to_owned()));
            }
            None if probe.manifests.is_some() => media_type::OCI_INDEX.to_owned(),
            None if probe.config.is_some() => media_type::OCI_MANIFEST.to_owned(),
            None => return Err(ManifestError::UnknownMediaType(String::new())),
        };
        if mt == media_type::DOCKER_MANIFEST_V1 || mt == media_type::DOCKER_MANIFEST_V1_SIGNED {
            return Err(ManifestError::Schema1(mt));
        }
        if let Some(v) = probe.schema_version
            && v != 2
        {
            return Err(ManifestError::SchemaVersion(v));
        }
        let manifest = if media_type::is_image_manifest(&mt) {
            Manifest::Image(serde_json::from_slice(body).map_err(ManifestError::Json)?)
        } else if media_type::is_index(&mt) {
            Manifest::Index(serde_json::from_slice(body).map_err(ManifestError::Json)?)
        } else {
            return Err(ManifestError::UnknownMediaType(mt));
        };
        Ok((mt, manifest))
    }

    /// The manifest this one refers to as its subject (referrers API).
    pub fn subject(&self) -> Option<&Descriptor> {
        match self {
            Manifest::Image(m) => m.subject.as_ref(),
            Manifest::Index(i) => i.subject.as_ref(),
        }
    }

    /// The artifact type as the referrers API reports it: `artifactType`, else the config's
    /// media type for an image manifest.
    pub fn artifact_type(&self) -> Option<&str> {
        match self {
            Manifest::Image(m) => m.artifact_type.as_deref().or(Some(m.config.media_type.as_str())),
            Manifest::Index(i) => i.artifact_type.as_deref(),
        }
    }

    pub fn annotations(&self) -> &BTreeMap<String, String> {
        match self {
            Manifest::Image(m) => &m.annotations,
            Manifest::Index(i) => &i.annotations,
        }
    }

    /// Every descriptor this manifest references (config, layers or child manifests), but not
    /// its subject.
    pub fn references(&self) -> Vec<&Descriptor> {
        match self {
            Manifest::Image(m) => std::iter::once(&m.config).chain(&m.layers).collect(),
            Manifest::Index(i) => i.manifests.iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn docker_manifest_round_trips_unknown_fields() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":7,"x-extra":1}},"layers":[{{"mediaType":"{}","digest":"{}","size":9}}],"foo":{{"bar":true}}}}"#,
            media_type::DOCKER_MANIFEST,
            media_type::DOCKER_CONFIG,
            d('a'),
            media_type::DOCKER_LAYER_GZIP,
            d('b')
        );
        let (mt, m) = Manifest::parse(None, body.as_bytes()).unwrap();
        assert_eq!(mt, media_type::DOCKER_MANIFEST);
        let Manifest::Image(im) = &m else { panic!() };
        assert_eq!(im.layers[0].size, 9);
        let again = serde_json::to_value(im).unwrap();
        assert_eq!(again["foo"]["bar"], true);
        assert_eq!(again["config"]["x-extra"], 1);
        assert_eq!(m.references().len(), 2);
    }

    #[test]
    fn oci_without_media_type_is_told_apart() {
        let idx = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{}","size":1,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}},{{"mediaType":"{}","digest":"{}","size":1,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
            media_type::OCI_MANIFEST,
            d('a'),
            media_type::OCI_MANIFEST,
            d('b')
        );
        let (mt, m) = Manifest::parse(Some("application/json"), idx.as_bytes()).unwrap();
        assert_eq!(mt, media_type::OCI_INDEX);
        let Manifest::Index(i) = m else { panic!() };
        let amd = i.select(&Platform::parse("linux/amd64").unwrap()).unwrap();
        assert_eq!(amd.digest.to_string(), d('b'));
        let arm = i.select(&Platform::parse("linux/arm64").unwrap()).unwrap();
        assert_eq!(arm.digest.to_string(), d('a'));
        assert!(i.select(&Platform::parse("linux/s390x").unwrap()).is_none());
    }

    #[test]
    fn rejects_mismatch_schema1_and_unknown() {
        let body = format!(r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[]}}"#, media_type::OCI_INDEX);
        assert!(matches!(
            Manifest::parse(Some(media_type::DOCKER_MANIFEST), body.as_bytes()),
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
        assert!(matches!(
            Manifest::parse(None, br#"{"schemaVersion":1,"fsLayers":[]}"#),
            Err(ManifestError::Schema1(_))
        ));
        assert!(matches!(
            Manifest::parse(Some("application/x-foo"), br#"{"schemaVersion":2}"#),
            Err(ManifestError::UnknownMediaType(_))
        ));
        assert!(matches!(Manifest::parse(None, b"not json"), Err(ManifestError::Json(_))));
    }
}
