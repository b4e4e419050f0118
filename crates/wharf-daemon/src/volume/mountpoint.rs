//! A container's mounts as Docker records them (`MountPoint`), and the parsers that make them
//! from the create request: `Binds` (`-v src:dst[:mode]`), `Mounts` (`--mount`) and
//! `VolumesFrom`, with Docker's validation and error messages (moby's linux mount parser).

use std::path::Path;

use serde::{Deserialize, Serialize};
use wharf_api::models::{
    Mount, MountBindOptions, MountBindOptionsPropagationEnum, MountPoint as ApiMountPoint, MountTmpfsOptions,
    MountType as ApiMountType, MountVolumeOptions, MountVolumeOptionsDriverConfig,
};
use wharf_types::EngineError;

use super::scope::is_local;

/// What a mount point mounts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    #[default]
    Bind,
    Volume,
    Tmpfs,
}

impl MountType {
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Volume => "volume",
            MountType::Tmpfs => "tmpfs",
        }
    }
}

/// One mount of a container, persisted in its record (moby's `MountPoint`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MountPoint {
    pub kind: MountType,
    /// Host path: the bind source, or the volume's directory.
    pub source: String,
    /// Cleaned absolute path inside the container.
    pub destination: String,
    pub rw: bool,
    /// The volume's name (volumes only).
    pub name: String,
    pub driver: String,
    /// The mode string the user gave (`ro,z`); `z` for named local volumes given without one.
    pub mode: String,
    /// Bind propagation (`rprivate` by default for binds, empty for volumes).
    pub propagation: String,
    /// The request that made this mount (the `--mount`, or its equivalent for `-v`); keeps the
    /// options (subpath, nocopy, bind recursion, tmpfs size).
    pub spec: Mount,
    /// Copy the image's content at the destination into the volume when it is empty.
    #[serde(default)]
    pub copy_data: bool,
    /// A missing bind source is an error (`--mount`), not created (`-v`).
    #[serde(default)]
    pub skip_mountpoint_creation: bool,
}

impl MountPoint {
    /// A volume made for this container alone (from `VOLUME`, `-v /path` or a `--mount` without
    /// a source): `rm -v` and `--rm` remove it.
    pub fn is_anonymous_volume(&self) -> bool {
        self.kind == MountType::Volume && self.spec.source.as_deref().unwrap_or("").is_empty()
    }

    pub fn subpath(&self) -> Option<&str> {
        self.spec.volume_options.as_ref().and_then(|o| o.subpath.as_deref()).filter(|s| !s.is_empty())
    }

    /// The tmpfs mount data (`size=64m,mode=1777`) of a tmpfs mount point.
    pub fn tmpfs_data(&self) -> Result<String, EngineError> {
        convert_tmpfs_options(self.spec.tmpfs_options.as_ref(), !self.rw).map_err(|e| mount_config_error("tmpfs", &e))
    }

    /// The entry of `Mounts` in inspect and `ps`.
    pub fn to_api(&self) -> ApiMountPoint {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        ApiMountPoint {
            typ: Some(self.kind.as_str().to_owned()),
            name: opt(&self.name),
            source: Some(self.source.clone()),
            destination: Some(self.destination.clone()),
            driver: opt(&self.driver),
            mode: Some(self.mode.clone()),
            rw: Some(self.rw),
            propagation: Some(self.propagation.clone()),
        }
    }
}

fn invalid_spec(raw: &str) -> String {
    format!("invalid volume specification: '{raw}'")
}

fn mount_config_error(kind: &str, msg: &str) -> EngineError {
    EngineError::invalid(format!("invalid mount config for type \"{kind}\": {msg}"))
}

const PROPAGATIONS: [&str; 6] = ["private", "rprivate", "shared", "rshared", "slave", "rslave"];
const RW_MODES: [&str; 5] = ["rw", "ro", "ro-non-recursive", "ro-force-recursive", "rro"];

/// moby's `linuxValidMountMode`: comma-separated, at most one of each kind.
pub fn valid_mode(mode: &str) -> bool {
    if mode.is_empty() {
        return true;
    }
    let mut counts = [0; 5];
    for o in mode.split(',') {
        let i = if RW_MODES.contains(&o) {
            0
        } else if o == "z" || o == "Z" {
            1
        } else if PROPAGATIONS.contains(&o) {
            2
        } else if o == "nocopy" {
            3
        } else if ["consistent", "cached", "delegated"].contains(&o) {
            4
        } else {
            return false;
        };
        counts[i] += 1;
    }
    counts.iter().all(|c| *c <= 1)
}

/// False when the mode makes the mount read-only.
pub fn read_write(mode: &str) -> bool {
    valid_mode(mode) && !mode.split(',').any(|o| o != "rw" && RW_MODES.contains(&o))
}

fn mode_propagation(mode: &str) -> Option<&str> {
    mode.split(',').find(|o| PROPAGATIONS.contains(o))
}

fn propagation_enum(p: &str) -> MountBindOptionsPropagationEnum {
    p.parse().unwrap_or(MountBindOptionsPropagationEnum::EMPTY)
}

/// `-v` / `Binds`: `dst`, `src:dst` or `src:dst:mode`; an absolute `src` is a host path, any
/// other a volume name. Host paths are not checked here (Docker creates them at start).
pub fn parse_bind(raw: &str, volume_driver: &str) -> Result<MountPoint, EngineError> {
    let arr: Vec<&str> = raw.splitn(4, ':').collect();
    if arr[0].is_empty() {
        return Err(EngineError::invalid(invalid_spec(raw)));
    }
    let (source, target, mode) = match arr.as_slice() {
        [t] => ("", *t, ""),
        [s, t] => {
            if valid_mode(t) {
                return Err(EngineError::invalid(invalid_spec(raw)));
            }
            (*s, *t, "")
        }
        [s, t, m] => (*s, *t, *m),
        _ => return Err(EngineError::invalid(invalid_spec(raw))),
    };
    if !valid_mode(mode) {
        return Err(EngineError::invalid(format!("invalid mode: {mode}")));
    }
    let kind = if source.starts_with('/') { ApiMountType::BIND } else { ApiMountType::VOLUME };
    let mut spec = Mount {
        typ: Some(kind),
        source: (!source.is_empty()).then(|| source.to_owned()),
        target: Some(target.to_owned()),
        read_only: Some(!read_write(mode)),
        ..Default::default()
    };
    if kind == ApiMountType::VOLUME {
        let mut vo = MountVolumeOptions::default();
        if !volume_driver.is_empty() {
            vo.driver_config =
                Some(MountVolumeOptionsDriverConfig { name: Some(volume_driver.to_owned()), options: None });
        }
        if mode.split(',').any(|o| o == "nocopy") {
            vo.no_copy = Some(true);
        }
        if vo != MountVolumeOptions::default() {
            spec.volume_options = Some(vo);
        }
    }
    let mut bo = MountBindOptions::default();
    if let Some(p) = mode_propagation(mode) {
        bo.propagation = Some(propagation_enum(p));
    }
    for o in mode.split(',') {
        match o {
            "ro-non-recursive" => bo.read_only_non_recursive = Some(true),
            "ro-force-recursive" | "rro" => bo.read_only_force_recursive = Some(true),
            _ => {}
        }
    }
    if bo != MountBindOptions::default() {
        spec.bind_options = Some(bo);
    }
    let mut mp = parse_spec(spec, false).map_err(|e| EngineError::invalid(format!("{}: {}", invalid_spec(raw), e)))?;
    mp.mode = mode.to_owned();
    Ok(mp)
}

/// `--mount` / `Mounts`, validated as Docker does (a bind source must exist unless
/// `CreateMountpoint`).
pub fn parse_mount(m: &Mount) -> Result<MountPoint, EngineError> {
    let kind = m.typ.map(|t| t.to_string()).unwrap_or_default();
    let mut mp = parse_spec(m.clone(), true).map_err(|e| mount_config_error(&kind, &e))?;
    if mp.kind == MountType::Bind {
        let create = m.bind_options.as_ref().and_then(|b| b.create_mountpoint).unwrap_or(false);
        mp.skip_mountpoint_creation = !create;
    }
    Ok(mp)
}

/// Go's `path.Clean` for absolute paths.
fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

/// moby's `parseMountSpec`: validation, then the mount point.
fn parse_spec(m: Mount, bind_source_must_exist: bool) -> Result<MountPoint, String> {
    let target = m.target.clone().unwrap_or_default();
    if target.is_empty() {
        return Err("field Target must not be empty".into());
    }
    if target.starts_with('/') && clean(&target) == "/" {
        return Err("invalid specification: destination can't be '/'".into());
    }
    if !target.starts_with('/') {
        return Err(format!("invalid mount path: '{target}' mount path must be absolute"));
    }
    let source = m.source.clone().unwrap_or_default();
    let mut mp = MountPoint { rw: !m.read_only.unwrap_or(false), destination: clean(&target), ..Default::default() };
    match m.typ.unwrap_or_default() {
        ApiMountType::BIND => {
            if source.is_empty() {
                return Err("field Source must not be empty".into());
            }
            if m.volume_options.is_some() {
                return Err("field VolumeOptions must not be specified".into());
            }
            if !source.starts_with('/') {
                return Err(format!("invalid mount path: '{source}' mount path must be absolute"));
            }
            let create = m.bind_options.as_ref().and_then(|b| b.create_mountpoint).unwrap_or(false);
            if bind_source_must_exist && !create && std::fs::symlink_metadata(&source).is_err() {
                return Err(format!("bind source path does not exist: {source}"));
            }
            mp.kind = MountType::Bind;
            mp.source = clean(&source);
            mp.propagation = m
                .bind_options
                .as_ref()
                .and_then(|b| b.propagation)
                .map(|p| p.to_string())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "rprivate".into());
        }
        ApiMountType::VOLUME => {
            if m.bind_options.is_some() {
                return Err("field BindOptions must not be specified".into());
            }
            let anonymous = source.is_empty();
            if let Some(sub) = m.volume_options.as_ref().and_then(|v| v.subpath.as_deref()).filter(|s| !s.is_empty()) {
                if anonymous {
                    return Err("must not set Subpath when using anonymous volumes".into());
                }
                if !is_local(sub) {
                    return Err("subpath must be a relative path within the volume".into());
                }
            }
            if m.read_only.unwrap_or(false) && anonymous {
                return Err("must not set ReadOnly mode when using anonymous volumes".into());
            }
            mp.kind = MountType::Volume;
            mp.name = source.clone();
            mp.copy_data = true;
            if let Some(vo) = &m.volume_options {
                if let Some(d) = vo.driver_config.as_ref().and_then(|d| d.name.clone()) {
                    mp.driver = d;
                }
                if vo.no_copy == Some(true) {
                    mp.copy_data = false;
                }
            }
        }
        ApiMountType::TMPFS => {
            if m.bind_options.is_some() {
                return Err("field BindOptions must not be specified".into());
            }
            if !source.is_empty() {
                return Err("field Source must not be specified".into());
            }
            convert_tmpfs_options(m.tmpfs_options.as_ref(), m.read_only.unwrap_or(false))?;
            mp.kind = MountType::Tmpfs;
        }
        other => return Err(format!("mount type {other} is not supported by wharf")),
    }
    mp.spec = m;
    Ok(mp)
}

/// moby's `ConvertTmpfsOptions`: `ro`, `mode=<octal>`, `size=<n>[kmg]`, then `exec`/`noexec`.
pub fn convert_tmpfs_options(o: Option<&MountTmpfsOptions>, read_only: bool) -> Result<String, String> {
    let mut data = wharf_runtime::spec::tmpfs_data(
        read_only,
        o.and_then(|o| o.mode).map(|m| m as u32),
        o.and_then(|o| o.size_bytes),
    );
    for opt in o.and_then(|o| o.options.as_ref()).into_iter().flatten() {
        if opt.is_empty() || opt.len() > 2 {
            return Err("invalid option array length".into());
        }
        if !["exec", "noexec"].contains(&opt[0].as_str()) {
            return Err(format!("invalid option: {}", opt[0]));
        }
        if !data.is_empty() {
            data.push(',');
        }
        data.push_str(&opt.join("="));
    }
    Ok(data)
}

/// `VolumesFrom`: `container[:ro|rw]`.
pub fn parse_volumes_from(spec: &str) -> Result<(String, String), EngineError> {
    if spec.is_empty() {
        return Err(EngineError::invalid("volumes-from specification cannot be an empty string"));
    }
    let (id, mode) = spec.split_once(':').unwrap_or((spec, ""));
    if mode.is_empty() {
        return Ok((id.to_owned(), "rw".to_owned()));
    }
    if !valid_mode(mode) || mode_propagation(mode).is_some() || mode.split(',').any(|o| o == "nocopy") {
        return Err(EngineError::invalid(format!("invalid mode: {mode}")));
    }
    Ok((id.to_owned(), mode.to_owned()))
}

/// The mount points another container lends through `--volumes-from` (its volumes and binds,
/// read-only if asked).
pub fn inherit(from: &[MountPoint], mode: &str) -> Vec<MountPoint> {
    from.iter()
        .map(|m| MountPoint { rw: m.rw && read_write(mode), copy_data: false, mode: m.mode.clone(), ..m.clone() })
        .collect()
}

/// Whether `source` (a bind source) contains `root` (the daemon's data root): Docker then
/// needs the bind to propagate unmounts into the container (`rslave`), or refuses it.
pub fn covers_daemon_root(source: &str, root: &Path) -> bool {
    let source = Path::new(source);
    root.starts_with(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_like_moby() {
        let b = parse_bind("/src:/dst", "").unwrap();
        assert_eq!((b.kind, b.source.as_str(), b.destination.as_str(), b.rw), (MountType::Bind, "/src", "/dst", true));
        assert_eq!((b.mode.as_str(), b.propagation.as_str()), ("", "rprivate"));
        let b = parse_bind("/src/../x:/dst/:ro,rslave", "").unwrap();
        assert_eq!((b.source.as_str(), b.destination.as_str(), b.rw), ("/x", "/dst", false));
        assert_eq!(b.propagation, "rslave");
        let v = parse_bind("data:/data:nocopy", "").unwrap();
        assert_eq!((v.kind, v.name.as_str(), v.copy_data, v.rw), (MountType::Volume, "data", false, true));
        assert!(!v.is_anonymous_volume());
        let a = parse_bind("/anon", "").unwrap();
        assert!(a.is_anonymous_volume());
        assert!(a.copy_data);
        let e = |s: &str| parse_bind(s, "").unwrap_err().message;
        assert_eq!(e(":/x"), "invalid volume specification: ':/x'");
        assert_eq!(e("/x:ro"), "invalid volume specification: '/x:ro'");
        assert_eq!(e("a:b:c:d"), "invalid volume specification: 'a:b:c:d'");
        assert_eq!(e("/a:/b:bogus"), "invalid mode: bogus");
        assert_eq!(e("/a:/b:ro,rw"), "invalid mode: ro,rw");
        assert_eq!(e("/a:/"), "invalid volume specification: '/a:/': invalid specification: destination can't be '/'");
        assert_eq!(
            e("/a:rel"),
            "invalid volume specification: '/a:rel': invalid mount path: 'rel' mount path must be absolute"
        );
        assert!(parse_bind("/nonexistent-wharf-src:/x", "").is_ok(), "-v creates missing host paths later");
    }

    fn mount(json: serde_json::Value) -> Mount {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn mounts_like_moby() {
        let e = |j| parse_mount(&mount(j)).unwrap_err().message;
        assert_eq!(
            e(serde_json::json!({"Type":"bind","Source":"/nonexistent-wharf","Target":"/x"})),
            "invalid mount config for type \"bind\": bind source path does not exist: /nonexistent-wharf"
        );
        assert_eq!(
            e(serde_json::json!({"Type":"bind","Source":"rel","Target":"/x"})),
            "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute"
        );
        assert_eq!(
            e(serde_json::json!({"Type":"volume","Target":"/x","VolumeOptions":{"Subpath":"a"}})),
            "invalid mount config for type \"volume\": must not set Subpath when using anonymous volumes"
        );
        assert_eq!(
            e(serde_json::json!({"Type":"volume","Source":"v","Target":"/x","VolumeOptions":{"Subpath":"../a"}})),
            "invalid mount config for type \"volume\": subpath must be a relative path within the volume"
        );
        assert_eq!(
            e(serde_json::json!({"Type":"volume","Target":"/x","ReadOnly":true})),
            "invalid mount config for type \"volume\": must not set ReadOnly mode when using anonymous volumes"
        );
        assert_eq!(
            e(serde_json::json!({"Type":"tmpfs","Source":"x","Target":"/x"})),
            "invalid mount config for type \"tmpfs\": field Source must not be specified"
        );
        assert_eq!(
            e(serde_json::json!({"Type":"tmpfs","Target":""})),
            "invalid mount config for type \"tmpfs\": field Target must not be empty"
        );
        let b = parse_mount(&mount(
            serde_json::json!({"Type":"bind","Source":"/tmp","Target":"/t","BindOptions":{"Propagation":"rshared"}}),
        ))
        .unwrap();
        assert_eq!((b.propagation.as_str(), b.skip_mountpoint_creation), ("rshared", true));
        let t = parse_mount(&mount(
            serde_json::json!({"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":1048576,"Mode":448,"Options":[["exec"]]}}),
        ))
        .unwrap();
        assert_eq!(t.tmpfs_data().unwrap(), "mode=700,size=1m,exec");
        let v = parse_mount(&mount(serde_json::json!({"Type":"volume","Source":"v","Target":"/v","VolumeOptions":{"NoCopy":true,"Subpath":"sub/dir"}})))
            .unwrap();
        assert_eq!((v.copy_data, v.subpath()), (false, Some("sub/dir")));
    }

    #[test]
    fn volumes_from_modes() {
        assert_eq!(parse_volumes_from("c").unwrap(), ("c".into(), "rw".into()));
        assert_eq!(parse_volumes_from("c:ro").unwrap(), ("c".into(), "ro".into()));
        assert_eq!(parse_volumes_from("c:rshared").unwrap_err().message, "invalid mode: rshared");
        assert_eq!(parse_volumes_from("c:nocopy").unwrap_err().message, "invalid mode: nocopy");
        assert!(parse_volumes_from("").is_err());
        let src = vec![parse_bind("v:/v", "").unwrap()];
        let got = inherit(&src, "ro");
        assert!(!got[0].rw);
        assert!(!got[0].copy_data);
        assert!(inherit(&src, "rw")[0].rw);
    }

    #[test]
    fn modes() {
        assert!(valid_mode("ro,z,rshared,nocopy"));
        assert!(!valid_mode("ro,Z,z"));
        assert!(!read_write("ro"));
        assert!(!read_write("rro"));
        assert!(read_write("z"));
        assert!(covers_daemon_root("/", Path::new("/var/lib/wharf")));
        assert!(!covers_daemon_root("/srv", Path::new("/var/lib/wharf")));
    }
}
