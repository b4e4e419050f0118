//! The OCI image-layout documents (descriptors, manifests, indexes) and Docker's media types,
//! as read from and written to archives and registries. Unknown fields are kept in `extra` so a
//! document read and written again loses nothing, but a document whose digest matters is never
//! re-serialised: its bytes are kept as received.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use wharf_types::Digest;

use crate::layer::Compression;

pub const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_TYPE_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_TYPE_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const MEDIA_TYPE_DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_TYPE_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MEDIA_TYPE_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const MEDIA_TYPE_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// containerd's annotation with the full image name (`docker.io/library/busybox:latest`).
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// The OCI annotation with the reference name (a tag, or a whole reference for some tools).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The content of `oci-layout`.
pub const OCI_LAYOUT: &str = r#"{"imageLayoutVersion": "1.0.0"}"#;

/// True for the media types of image indexes (OCI index, Docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_OCI_INDEX || media_type == MEDIA_TYPE_DOCKER_MANIFEST_LIST
}

/// True for the media types of single-platform image manifests.
pub fn is_manifest(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_OCI_MANIFEST || media_type == MEDIA_TYPE_DOCKER_MANIFEST
}

/// The media type of a layer with this compression, in the OCI family.
pub fn layer_media_type(c: Compression) -> &'static str {
    c.oci_media_type()
}

/// The platform of a descriptor in an index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Self {
            media_type: media_type.to_owned(),
            digest,
            size: size as i64,
            urls: None,
            annotations: None,
            platform: None,
            extra: Map::new(),
        }
    }

    /// An annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref().and_then(|a| a.get(key)).map(String::as_str)
    }
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An image index (OCI) or manifest list (Docker), and `index.json` of a layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One entry of a docker-archive's `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ArchiveManifestItem {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    #[serde(default)]
    pub layers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_sources: Option<BTreeMap<String, Descriptor>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_with_unknown_fields() {
        let d = format!("sha256:{}", "a".repeat(64));
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MEDIA_TYPE_OCI_MANIFEST}","config":{{"mediaType":"{MEDIA_TYPE_OCI_CONFIG}","digest":"{d}","size":3}},"layers":[{{"mediaType":"{MEDIA_TYPE_OCI_LAYER_GZIP}","digest":"{d}","size":9,"annotations":{{"a":"b"}}}}],"subject":{{"x":1}}}}"#
        );
        let m: Manifest = serde_json::from_str(&json).unwrap();
        assert_eq!(m.layers[0].annotation("a"), Some("b"));
        assert_eq!(m.config.size, 3);
        let back: Value = serde_json::to_value(&m).unwrap();
        assert_eq!(back["subject"]["x"], 1);
        assert!(is_manifest(m.media_type.as_deref().unwrap()));
    }

    #[test]
    fn archive_manifest_item_reads_docker_output() {
        let json = r#"[{"Config":"blobs/sha256/abc","RepoTags":["busybox:latest"],"Layers":["blobs/sha256/def"]},{"Config":"x.json","RepoTags":null,"Layers":[]}]"#;
        let items: Vec<ArchiveManifestItem> = serde_json::from_str(json).unwrap();
        assert_eq!(items[0].repo_tags.as_deref(), Some(&["busybox:latest".to_owned()][..]));
        assert_eq!(items[1].repo_tags, None);
    }
}
