//! `--mount` (docker/cli `opts.MountOpt`: CSV `type=…,source=…,target=…` with every key) and
//! `-v/--volume` (compose's `ParseVolume`: which specs are binds, which anonymous volumes).

use std::collections::HashMap;
pub use wharf_types::path::clean as clean_path;

use bollard::models::{
    Mount, MountBindOptions, MountBindOptionsPropagationEnum as Prop, MountImageOptions, MountTmpfsOptions, MountType,
    MountVolumeOptions, MountVolumeOptionsDriverConfig,
};

/// Go's `encoding/csv` reading one record (quoted fields, `""` escapes).
pub fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    loop {
        let mut field = String::new();
        if i < chars.len() && chars[i] == '"' {
            i += 1;
            loop {
                if i >= chars.len() {
                    return Err(format!(
                        "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                        i + 1
                    ));
                }
                if chars[i] == '"' {
                    if i + 1 < chars.len() && chars[i + 1] == '"' {
                        field.push('"');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                field.push(chars[i]);
                i += 1;
            }
            if i < chars.len() && chars[i] != ',' {
                return Err(format!(
                    "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                    i + 1
                ));
            }
        } else {
            while i < chars.len() && chars[i] != ',' {
                if chars[i] == '"' {
                    return Err(format!("parse error on line 1, column {}: bare \" in non-quoted-field", i + 1));
                }
                field.push(chars[i]);
                i += 1;
            }
        }
        fields.push(field);
        if i >= chars.len() {
            break;
        }
        i += 1; // the comma
    }
    Ok(fields)
}

fn abs_if_dot(p: &str) -> String {
    if !p.starts_with('/')
        && p.starts_with('.')
        && let Ok(cwd) = std::env::current_dir()
    {
        return clean_path(&cwd.join(p).to_string_lossy());
    }
    p.to_owned()
}

fn propagation(v: &str) -> Result<Prop, String> {
    Ok(match v {
        "private" => Prop::PRIVATE,
        "rprivate" => Prop::RPRIVATE,
        "shared" => Prop::SHARED,
        "rshared" => Prop::RSHARED,
        "slave" => Prop::SLAVE,
        "rslave" => Prop::RSLAVE,
        other => return Err(format!("invalid propagation mode: {other}")),
    })
}

/// `MountOpt.Set`: one `--mount` value.
pub fn parse_mount(value: &str) -> Result<Mount, String> {
    let fields = csv_fields(value)?;
    let mut typ = "volume".to_owned();
    let mut m = Mount::default();
    let mut vol: Option<MountVolumeOptions> = None;
    let mut bind: Option<MountBindOptions> = None;
    let mut tmpfs: Option<MountTmpfsOptions> = None;
    let mut image: Option<MountImageOptions> = None;
    fn vol_opts(v: &mut Option<MountVolumeOptions>) -> &mut MountVolumeOptions {
        v.get_or_insert_with(|| MountVolumeOptions {
            driver_config: Some(MountVolumeOptionsDriverConfig::default()),
            ..Default::default()
        })
    }
    let parse_bool =
        |key: &str, val: &str| super::go_parse_bool(val).map_err(|_| format!("invalid value for {key}: {val}"));
    for field in &fields {
        let (key, val, has_val) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), v.to_owned(), true),
            None => (field.to_lowercase(), String::new(), false),
        };
        if !has_val {
            match key.as_str() {
                "readonly" | "ro" => m.read_only = Some(true),
                "volume-nocopy" => vol_opts(&mut vol).no_copy = Some(true),
                "bind-nonrecursive" => bind.get_or_insert_with(Default::default).non_recursive = Some(true),
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        }
        match key.as_str() {
            "type" => typ = val.to_lowercase(),
            "source" | "src" => m.source = Some(abs_if_dot(&val)),
            "target" | "dst" | "destination" => m.target = Some(val),
            "readonly" | "ro" => m.read_only = Some(parse_bool(&key, &val)?),
            "consistency" => m.consistency = Some(val.to_lowercase()),
            "bind-propagation" => {
                bind.get_or_insert_with(Default::default).propagation = Some(propagation(&val.to_lowercase())?)
            }
            "bind-nonrecursive" => {
                bind.get_or_insert_with(Default::default).non_recursive = Some(parse_bool(&key, &val)?);
                eprintln!("WARNING: bind-nonrecursive is deprecated, use bind-recursive=disabled instead");
            }
            "bind-recursive" => {
                let b = bind.get_or_insert_with(Default::default);
                match val.as_str() {
                    "enabled" => {}
                    "disabled" => b.non_recursive = Some(true),
                    "writable" => b.read_only_non_recursive = Some(true),
                    "readonly" => b.read_only_force_recursive = Some(true),
                    _ => {
                        return Err(format!(
                            "invalid value for {key}: {val} (must be \"enabled\", \"disabled\", \"writable\", or \"readonly\")"
                        ));
                    }
                }
            }
            "volume-subpath" => vol_opts(&mut vol).subpath = Some(val),
            "volume-nocopy" => {
                vol_opts(&mut vol).no_copy =
                    Some(super::go_parse_bool(&val).map_err(|_| format!("invalid value for volume-nocopy: {val}"))?)
            }
            "volume-label" => {
                let (k, v) = val.split_once('=').unwrap_or((&val, ""));
                if !k.is_empty() {
                    vol_opts(&mut vol).labels.get_or_insert_with(HashMap::new).insert(k.to_owned(), v.to_owned());
                } else {
                    vol_opts(&mut vol);
                }
            }
            "volume-driver" => vol_opts(&mut vol).driver_config.get_or_insert_with(Default::default).name = Some(val),
            "volume-opt" => {
                let dc = vol_opts(&mut vol).driver_config.get_or_insert_with(Default::default);
                let opts = dc.options.get_or_insert_with(HashMap::new);
                let (k, v) = val.split_once('=').unwrap_or((&val, ""));
                if !k.is_empty() {
                    opts.insert(k.to_owned(), v.to_owned());
                }
            }
            "image-subpath" => image.get_or_insert_with(Default::default).subpath = Some(val),
            "tmpfs-size" => {
                let n = crate::units::ram_in_bytes(&val).map_err(|_| format!("invalid value for {key}: {val}"))?;
                tmpfs.get_or_insert_with(Default::default).size_bytes = Some(n);
            }
            "tmpfs-mode" => {
                let mode = u32::from_str_radix(&val, 8).map_err(|_| format!("invalid value for {key}: {val}"))?;
                tmpfs.get_or_insert_with(Default::default).mode = Some(i64::from(mode));
            }
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    if typ.is_empty() {
        return Err("type is required".into());
    }
    if m.target.as_deref().unwrap_or("").is_empty() {
        return Err("target is required".into());
    }
    if vol.is_some() && typ != "volume" {
        return Err(format!("cannot mix 'volume-*' options with mount type '{typ}'"));
    }
    if image.is_some() && typ != "image" {
        return Err(format!("cannot mix 'image-*' options with mount type '{typ}'"));
    }
    if bind.is_some() && typ != "bind" {
        return Err(format!("cannot mix 'bind-*' options with mount type '{typ}'"));
    }
    if tmpfs.is_some() && typ != "tmpfs" {
        return Err(format!("cannot mix 'tmpfs-*' options with mount type '{typ}'"));
    }
    if let Some(b) = &bind {
        let ro = m.read_only == Some(true);
        if b.read_only_non_recursive == Some(true) && !ro {
            return Err("option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction".into());
        }
        if b.read_only_force_recursive == Some(true) {
            if !ro {
                return Err(
                    "option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction".into()
                );
            }
            if b.propagation != Some(Prop::RPRIVATE) {
                return Err("option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be specified in conjunction".into());
            }
        }
    }
    m.typ = Some(match typ.as_str() {
        "bind" => MountType::BIND,
        "volume" => MountType::VOLUME,
        "tmpfs" => MountType::TMPFS,
        "image" => MountType::IMAGE,
        "npipe" => MountType::NPIPE,
        "cluster" => MountType::CLUSTER,
        other => {
            return Err(format!("invalid mount config for type \"{other}\": mount type unknown"));
        }
    });
    m.volume_options = vol;
    m.bind_options = bind;
    m.tmpfs_options = tmpfs;
    m.image_options = image;
    Ok(m)
}

/// compose's `ParseVolume`, reduced to what `-v` needs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct VolumeSpec {
    pub source: String,
    pub target: String,
    /// `bind` or `volume`.
    pub typ: &'static str,
}

fn is_windows_drive(buffer: &[char], c: char) -> bool {
    c == ':' && buffer.len() == 1 && buffer[0].is_alphabetic()
}

pub fn parse_volume(spec: &str) -> Result<VolumeSpec, String> {
    let mut v = VolumeSpec::default();
    match spec.chars().count() {
        0 => return Err("invalid empty volume spec".into()),
        1 | 2 => {
            v.target = spec.to_owned();
            v.typ = "volume";
            return Ok(v);
        }
        _ => {}
    }
    let mut buffer: Vec<char> = Vec::new();
    let chars: Vec<char> = spec.chars().chain(std::iter::once('\0')).collect();
    for c in chars {
        if is_windows_drive(&buffer, c) {
            buffer.push(c);
        } else if c == ':' || c == '\0' {
            let s: String = buffer.iter().collect();
            let res = if buffer.is_empty() {
                Err("empty section between colons")
            } else if v.source.is_empty() && c == '\0' {
                v.target = s;
                Ok(())
            } else if v.source.is_empty() {
                v.source = s;
                Ok(())
            } else if v.target.is_empty() {
                v.target = s;
                Ok(())
            } else if c == ':' {
                Err("too many colons")
            } else {
                Ok(()) // mode options: ro, rw, nocopy, propagation; the daemon reads them
            };
            if let Err(e) = res {
                return Err(format!("invalid spec: {spec}: {e}"));
            }
            buffer.clear();
        } else {
            buffer.push(c);
        }
    }
    v.typ = if v.source.is_empty() {
        "volume"
    } else if is_file_path(&v.source) {
        "bind"
    } else {
        "volume"
    };
    Ok(v)
}

fn is_file_path(source: &str) -> bool {
    let chars: Vec<char> = source.chars().collect();
    if matches!(chars.first(), Some('.' | '/' | '~')) {
        return true;
    }
    if chars.len() == 1 {
        return false;
    }
    if source.starts_with("\\\\") {
        return true;
    }
    is_windows_drive(&chars[..1], chars[1])
}

/// `-v` values into (`Binds`, anonymous `Volumes`), as docker's `parse` splits them.
pub fn split_volumes(specs: &[String]) -> Result<(Vec<String>, Vec<String>), String> {
    let mut binds = Vec::new();
    let mut volumes: Vec<String> = Vec::new();
    for spec in specs {
        if binds.contains(spec) || volumes.contains(spec) {
            continue;
        }
        let parsed = parse_volume(spec)?;
        if parsed.source.is_empty() {
            volumes.push(spec.clone());
            continue;
        }
        let mut to_bind = spec.clone();
        if parsed.typ == "bind"
            && let Some((host, target)) = spec.split_once(':')
        {
            to_bind = format!("{}:{target}", abs_if_dot(host));
        }
        binds.push(to_bind);
    }
    Ok((binds, volumes))
}

/// `--tmpfs /run:rw,size=64m` → `{"/run": "rw,size=64m"}`.
pub fn parse_tmpfs(values: &[String]) -> HashMap<String, String> {
    values
        .iter()
        .map(|t| match t.split_once(':') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (t.clone(), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv() {
        assert_eq!(csv_fields("a,b=c").unwrap(), vec!["a", "b=c"]);
        assert_eq!(csv_fields("\"src=a,b\",dst=/x").unwrap(), vec!["src=a,b", "dst=/x"]);
        assert!(csv_fields("x=\"\"\"q\"\"\"").unwrap_err().contains("bare"));
        assert_eq!(csv_fields("\"a\"\"b\"").unwrap(), vec!["a\"b"]);
    }

    #[test]
    fn mounts_all_keys() {
        let m = parse_mount("type=bind,source=/src,target=/dst,readonly,bind-propagation=rshared,consistency=cached")
            .unwrap();
        assert_eq!(m.typ, Some(MountType::BIND));
        assert_eq!(m.source.as_deref(), Some("/src"));
        assert_eq!(m.target.as_deref(), Some("/dst"));
        assert_eq!(m.read_only, Some(true));
        assert_eq!(m.consistency.as_deref(), Some("cached"));
        assert_eq!(m.bind_options.unwrap().propagation, Some(Prop::RSHARED));

        let m = parse_mount("src=myvol,dst=/data,volume-driver=local,volume-opt=type=tmpfs,volume-label=a=b,volume-nocopy,volume-subpath=sub").unwrap();
        assert_eq!(m.typ, Some(MountType::VOLUME));
        let v = m.volume_options.unwrap();
        assert_eq!(v.no_copy, Some(true));
        assert_eq!(v.subpath.as_deref(), Some("sub"));
        assert_eq!(v.labels.unwrap()["a"], "b");
        let dc = v.driver_config.unwrap();
        assert_eq!(dc.name.as_deref(), Some("local"));
        assert_eq!(dc.options.unwrap()["type"], "tmpfs");

        let m = parse_mount("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770").unwrap();
        let t = m.tmpfs_options.unwrap();
        assert_eq!(t.size_bytes, Some(64 << 20));
        assert_eq!(t.mode, Some(0o1770));

        let m = parse_mount("type=image,source=busybox,target=/img,image-subpath=bin").unwrap();
        assert_eq!(m.image_options.unwrap().subpath.as_deref(), Some("bin"));

        let m =
            parse_mount("type=bind,src=/a,dst=/b,ro=true,bind-recursive=readonly,bind-propagation=rprivate").unwrap();
        assert_eq!(m.bind_options.unwrap().read_only_force_recursive, Some(true));

        let cwd = std::env::current_dir().unwrap();
        let m = parse_mount("type=bind,src=./rel,dst=/b").unwrap();
        assert_eq!(m.source.unwrap(), format!("{}/rel", cwd.display()));
    }

    #[test]
    fn mount_errors() {
        let e = |s: &str| parse_mount(s).unwrap_err();
        assert_eq!(e("type=bind,src=/a"), "target is required");
        assert_eq!(e("type=,dst=/a"), "type is required");
        assert_eq!(e("type=tmpfs,dst=/a,volume-nocopy"), "cannot mix 'volume-*' options with mount type 'tmpfs'");
        assert_eq!(e("type=volume,dst=/a,tmpfs-size=1m"), "cannot mix 'tmpfs-*' options with mount type 'volume'");
        assert_eq!(e("dst=/a,bogus=1"), "unexpected key 'bogus' in 'bogus=1'");
        assert_eq!(e("dst=/a,bogus"), "invalid field 'bogus' must be a key=value pair");
        assert_eq!(e("dst=/a,ro=maybe"), "invalid value for ro: maybe");
        assert_eq!(e("type=tmpfs,dst=/a,tmpfs-mode=999"), "invalid value for tmpfs-mode: 999");
        assert_eq!(
            e("type=bind,src=/a,dst=/b,bind-recursive=writable"),
            "option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction"
        );
        assert_eq!(e("type=weird,dst=/a"), "invalid mount config for type \"weird\": mount type unknown");
    }

    #[test]
    fn volume_specs() {
        let p = |s: &str| parse_volume(s).unwrap();
        assert_eq!(p("/data"), VolumeSpec { source: "".into(), target: "/data".into(), typ: "volume" });
        assert_eq!(p("vol:/data:ro"), VolumeSpec { source: "vol".into(), target: "/data".into(), typ: "volume" });
        assert_eq!(
            p("/host:/data:rw,rshared"),
            VolumeSpec { source: "/host".into(), target: "/data".into(), typ: "bind" }
        );
        assert_eq!(p("./rel:/d").typ, "bind");
        assert_eq!(p("~/x:/d").typ, "bind");
        assert_eq!(parse_volume("ab:cd:ef:gh").unwrap_err(), "invalid spec: ab:cd:ef:gh: too many colons");
        assert_eq!(parse_volume("ab::c").unwrap_err(), "invalid spec: ab::c: empty section between colons");
        assert!(parse_volume("").is_err());
        // a one-letter source is a Windows drive, as in compose's parser
        assert_eq!(p("c:\\x:/d").source, "c:\\x");
    }

    #[test]
    fn binds_and_anonymous_volumes() {
        let cwd = std::env::current_dir().unwrap();
        let (binds, vols) =
            split_volumes(&["/data".into(), "named:/n".into(), "./here:/h:ro".into(), "/data".into()]).unwrap();
        assert_eq!(vols, vec!["/data"]);
        assert_eq!(binds, vec!["named:/n".to_string(), format!("{}/here:/h:ro", cwd.display())]);
        let t = parse_tmpfs(&["/run:rw,size=64m".into(), "/tmp".into()]);
        assert_eq!(t["/run"], "rw,size=64m");
        assert_eq!(t["/tmp"], "");
    }

    #[test]
    fn clean_paths() {
        assert_eq!(clean_path("/a/./b/../c/"), "/a/c");
        assert_eq!(clean_path("a/../../b"), "../b");
        assert_eq!(clean_path(""), ".");
        assert_eq!(clean_path("/.."), "/");
    }
}
