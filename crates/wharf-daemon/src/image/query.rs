//! Reading images: the list with Docker's filters, inspect data, history, disk usage; and the
//! time and glob helpers those filters need.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use wharf_snapshot::DiffSource;
use wharf_types::image::ImageConfig;
use wharf_types::{Digest, Filters, ImageId, Reference};

use super::store::{self, ImageRow, LayerRow, now_nanos};
use super::{ImageError, ImageService};

/// Parses an RFC 3339 time (as in image configs) into Unix nanoseconds.
pub(crate) fn parse_time(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s).ok().and_then(|t| t.with_timezone(&Utc).timestamp_nanos_opt())
}

/// Go's `time.RFC3339Nano` in UTC: fractional seconds without trailing zeros.
pub(crate) fn rfc3339_nano(nanos: i64) -> String {
    let t = Utc.timestamp_nanos(nanos);
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let frac = t.timestamp_subsec_nanos();
    if frac == 0 {
        format!("{base}Z")
    } else {
        let digits = format!("{frac:09}");
        format!("{base}.{}Z", digits.trim_end_matches('0'))
    }
}

/// Docker's `timestamp.Parse` for `until` filters: a Go duration counts back from `now`; Unix
/// seconds (with optional fraction); RFC 3339 and shorter date forms (local time when no zone).
pub(crate) fn parse_filter_time(value: &str, now: i64) -> Result<i64, ImageError> {
    let bad = || {
        ImageError::Invalid(format!(
            "invalid value for 'until' filter: failed to parse value as time or duration: \"{value}\""
        ))
    };
    if let Some(d) = parse_go_duration(value) {
        return Ok(now - d);
    }
    if value.bytes().all(|b| b.is_ascii_digit() || b == b'.') && !value.is_empty() {
        let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
        let secs: i64 = secs.parse().map_err(|_| bad())?;
        let nanos: i64 = if frac.is_empty() {
            0
        } else {
            format!("{:0<9}", &frac[..frac.len().min(9)]).parse().map_err(|_| bad())?
        };
        return Ok(secs * 1_000_000_000 + nanos);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return t.timestamp_nanos_opt().ok_or_else(bad);
    }
    let local = |n: NaiveDateTime| chrono::Local.from_local_datetime(&n).single().and_then(|t| t.timestamp_nanos_opt());
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(value, f) {
            return local(n).ok_or_else(bad);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).and_then(local).ok_or_else(bad);
    }
    Err(bad())
}

/// A Go duration (`10m`, `1h30m`, `1.5s`) in nanoseconds.
fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !s.is_empty() {
        let n_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if n_end == 0 {
            return None;
        }
        let n: f64 = s[..n_end].parse().ok()?;
        s = &s[n_end..];
        let u_end = s.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(s.len());
        let mult = match &s[..u_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * mult;
        s = &s[u_end..];
    }
    Some(if neg { -(total as i64) } else { total as i64 })
}

/// Go's `path.Match`: `*` (no `/`), `?`, `[a-z]`/`[^…]` classes, `\` escapes. `Err` for a
/// malformed pattern.
pub(crate) fn glob_match(pattern: &str, name: &str) -> Result<bool, ()> {
    fn class(p: &[char], c: char) -> Result<(bool, usize), ()> {
        // p starts after '['
        let mut i = 0;
        let negate = p.first() == Some(&'^');
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        loop {
            let ch = *p.get(i).ok_or(())?;
            if ch == ']' && !first {
                i += 1;
                break;
            }
            first = false;
            let mut lo = ch;
            i += 1;
            if lo == '\\' {
                lo = *p.get(i).ok_or(())?;
                i += 1;
            }
            let mut hi = lo;
            if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|c| *c != ']') {
                hi = p[i + 1];
                i += 2;
                if hi == '\\' {
                    hi = *p.get(i).ok_or(())?;
                    i += 1;
                }
            }
            if lo <= c && c <= hi {
                matched = true;
            }
        }
        Ok((matched != negate, i))
    }
    fn rec(p: &[char], n: &[char]) -> Result<bool, ()> {
        let (mut pi, mut ni) = (0, 0);
        while pi < p.len() {
            match p[pi] {
                '*' => {
                    // Collapse stars; try every split that does not cross a '/'.
                    while pi < p.len() && p[pi] == '*' {
                        pi += 1;
                    }
                    let rest = &p[pi..];
                    let mut k = ni;
                    loop {
                        if rec(rest, &n[k..])? {
                            return Ok(true);
                        }
                        if k >= n.len() || n[k] == '/' {
                            // Validate the rest of the pattern even when it cannot match.
                            let _ = rec(rest, &[])?;
                            return Ok(false);
                        }
                        k += 1;
                    }
                }
                '?' => {
                    if ni >= n.len() || n[ni] == '/' {
                        return Ok(false);
                    }
                    pi += 1;
                    ni += 1;
                }
                '[' => {
                    if ni >= n.len() || n[ni] == '/' {
                        let _ = class(&p[pi + 1..], '\0')?;
                        return Ok(false);
                    }
                    let (ok, used) = class(&p[pi + 1..], n[ni])?;
                    if !ok {
                        return Ok(false);
                    }
                    pi += 1 + used;
                    ni += 1;
                }
                '\\' => {
                    let c = *p.get(pi + 1).ok_or(())?;
                    if ni >= n.len() || n[ni] != c {
                        return Ok(false);
                    }
                    pi += 2;
                    ni += 1;
                }
                c => {
                    if ni >= n.len() || n[ni] != c {
                        return Ok(false);
                    }
                    pi += 1;
                    ni += 1;
                }
            }
        }
        Ok(ni == n.len())
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    rec(&p, &n)
}

/// `GET /images/json` options.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub all: bool,
    pub filters: Filters,
    pub shared_size: bool,
}

/// One image in a list (what `ImageSummary` carries).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSummary {
    pub id: ImageId,
    pub parent: Option<ImageId>,
    /// Familiar `name:tag` strings.
    pub repo_tags: Vec<String>,
    /// Familiar `name@digest` strings.
    pub repo_digests: Vec<String>,
    /// Unix seconds (0 when the config has no `created`).
    pub created: i64,
    pub size: i64,
    /// -1 unless asked for.
    pub shared_size: i64,
    pub labels: BTreeMap<String, String>,
    pub containers: i64,
}

const LIST_FILTERS: &[&str] = &["dangling", "label", "before", "since", "reference", "until"];

/// Everything an inspect response is made of.
#[derive(Debug, Clone)]
pub struct InspectData {
    pub(crate) row: ImageRow,
    pub config: Arc<ImageConfig>,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// Storage details (`GraphDriver.Data`).
    pub driver_data: BTreeMap<String, String>,
}

/// One `history` entry as the API returns it, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryItem {
    /// The image ID for entries that are an image here, else `<missing>`.
    pub id: String,
    pub created: i64,
    pub created_by: String,
    pub tags: Vec<String>,
    pub size: i64,
    pub comment: String,
}

/// The image part of `/system/df`.
#[derive(Debug, Clone, Default)]
pub struct ImagesUsage {
    pub active_count: i64,
    pub total_count: i64,
    pub reclaimable: i64,
    pub total_size: i64,
    pub items: Vec<ImageSummary>,
}

fn familiar_tags_and_digests(refs: &[Reference]) -> (Vec<String>, Vec<String>) {
    let mut tags = Vec::new();
    let mut digests = Vec::new();
    for r in refs {
        if r.digest().is_some() {
            digests.push(r.familiar());
        } else if r.tag().is_some() {
            tags.push(r.familiar());
        }
    }
    (tags, digests)
}

impl ImageService {
    fn created_of(&self, value: &str) -> Result<Option<i64>, ImageError> {
        Ok(self.lookup(value)?.0.created)
    }

    /// `GET /images/json`, sorted newest first.
    pub fn list(&self, opts: &ListOptions) -> Result<Vec<ImageSummary>, ImageError> {
        let f = &opts.filters;
        f.validate(LIST_FILTERS).map_err(|e| ImageError::Invalid(e.message))?;
        let dangling_only = f.bool_value("dangling").map_err(|e| ImageError::Invalid(e.message))?.unwrap_or(false);
        let mut before: Option<i64> = None;
        for v in f.get("before") {
            if let Some(c) = self.created_of(v)? {
                before = Some(before.map_or(c, |b: i64| b.min(c)));
            }
        }
        let now = now_nanos();
        for v in f.get("until") {
            let t = parse_filter_time(v, now)?;
            before = Some(before.map_or(t, |b| b.min(t)));
        }
        let mut since: Option<i64> = None;
        for v in f.get("since") {
            if let Some(c) = self.created_of(v)? {
                since = Some(since.map_or(c, |s: i64| s.max(c)));
            }
        }
        let patterns: Vec<&str> = f.get("reference").collect();
        for p in &patterns {
            glob_match(p, "").map_err(|()| ImageError::Invalid("syntax error in pattern".into()))?;
        }
        let (images, refs, layers) = {
            let c = self.db.conn();
            (store::images_all(&c)?, store::refs_all(&c)?, store::layers_all(&c)?)
        };
        let mut children: HashMap<&ImageId, usize> = HashMap::new();
        for i in &images {
            if let Some(p) = &i.parent {
                *children.entry(p).or_default() += 1;
            }
        }
        let mut refs_by_image: HashMap<&ImageId, Vec<&Reference>> = HashMap::new();
        for (r, id) in &refs {
            refs_by_image.entry(id).or_default().push(r);
        }
        let mut containers: HashMap<ImageId, i64> = HashMap::new();
        for u in self.users() {
            *containers.entry(u.image).or_default() += 1;
        }
        let mut out = Vec::new();
        for img in &images {
            let has_children = children.get(&img.id).copied().unwrap_or(0) > 0;
            if dangling_only && has_children {
                continue;
            }
            if let Some(b) = before
                && img.created.is_none_or(|c| c >= b)
            {
                continue;
            }
            if let Some(s) = since
                && img.created.is_none_or(|c| c <= s)
            {
                continue;
            }
            if f.contains("label") && !f.match_labels(&img.labels) {
                continue;
            }
            let mut repo_tags = Vec::new();
            let mut repo_digests = Vec::new();
            for r in refs_by_image.get(&img.id).into_iter().flatten() {
                if !patterns.is_empty() {
                    let tagged = (*r).clone().with_default_tag();
                    let targets = [r.familiar(), r.familiar_name(), tagged.to_string(), r.name()];
                    let found = patterns.iter().any(|p| targets.iter().any(|t| glob_match(p, t).unwrap_or(false)));
                    if !found {
                        continue;
                    }
                }
                if r.digest().is_some() {
                    repo_digests.push(r.familiar());
                } else if r.tag().is_some() {
                    repo_tags.push(r.familiar());
                }
            }
            if repo_tags.is_empty() && repo_digests.is_empty() {
                if opts.all || !has_children {
                    if f.contains("dangling") && !dangling_only {
                        continue;
                    }
                    if !patterns.is_empty() {
                        continue;
                    }
                } else {
                    continue;
                }
            } else if dangling_only && !repo_tags.is_empty() {
                continue;
            }
            out.push(ImageSummary {
                id: img.id.clone(),
                parent: img.parent.clone(),
                repo_tags,
                repo_digests,
                created: img.created.map_or(0, |n| n.div_euclid(1_000_000_000)),
                size: img.size,
                shared_size: -1,
                labels: img.labels.clone(),
                containers: containers.get(&img.id).copied().unwrap_or(0),
            });
        }
        if opts.shared_size {
            let by_chain: HashMap<&Digest, &LayerRow> = layers.iter().map(|l| (&l.chain_id, l)).collect();
            let chain_of_image = |top: Option<&Digest>| {
                let mut v = Vec::new();
                let mut cur = top;
                while let Some(c) = cur {
                    match by_chain.get(c) {
                        Some(l) => {
                            v.push(*l);
                            cur = l.parent.as_ref();
                        }
                        None => break,
                    }
                }
                v
            };
            let mut refcount: HashMap<&Digest, usize> = HashMap::new();
            for img in &images {
                for l in chain_of_image(img.top_layer.as_ref()) {
                    *refcount.entry(&l.chain_id).or_default() += 1;
                }
            }
            let tops: HashMap<&ImageId, Option<&Digest>> =
                images.iter().map(|i| (&i.id, i.top_layer.as_ref())).collect();
            for s in &mut out {
                let top = tops.get(&s.id).copied().flatten();
                s.shared_size = chain_of_image(top)
                    .iter()
                    .filter(|l| refcount.get(&l.chain_id).copied().unwrap_or(0) > 1)
                    .map(|l| l.size)
                    .sum();
            }
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// `GET /images/{name}/json`.
    pub fn inspect(&self, name: &str) -> Result<InspectData, ImageError> {
        let (row, _) = self.lookup(name)?;
        let config = self.config(&row.id)?;
        let refs = store::refs_of(&self.db.conn(), &row.id)?;
        let (repo_tags, repo_digests) = familiar_tags_and_digests(&refs);
        let mut driver_data = BTreeMap::new();
        if let Some(top) = &row.top_layer
            && let Ok(source) = self.snapshotter.diff_source(&top.to_string())
        {
            match source {
                DiffSource::Overlay { upper, lowers } => {
                    let dir = upper.parent().unwrap_or(&upper).to_path_buf();
                    if !lowers.is_empty() {
                        let l: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
                        driver_data.insert("LowerDir".to_owned(), l.join(":"));
                    }
                    driver_data.insert("MergedDir".to_owned(), dir.join("merged").display().to_string());
                    driver_data.insert("UpperDir".to_owned(), upper.display().to_string());
                    driver_data.insert("WorkDir".to_owned(), dir.join("work").display().to_string());
                }
                DiffSource::Trees { upper, .. } => {
                    driver_data.insert("Dir".to_owned(), upper.display().to_string());
                }
            }
        }
        Ok(InspectData { row, config, repo_tags, repo_digests, driver_data })
    }

    /// `GET /images/{name}/history`, newest first (moby's algorithm: sizes from the layers,
    /// IDs and tags along the chain of local parents, `<missing>` beyond).
    pub fn history(&self, name: &str) -> Result<Vec<HistoryItem>, ImageError> {
        let (row, _) = self.lookup(name)?;
        let config = self.config(&row.id)?;
        let layers = self.layer_chain(&self.db.conn(), row.top_layer.as_ref())?;
        let mut items = Vec::new();
        let mut layer_i = 0;
        for h in &config.history {
            let mut size = 0;
            if !h.empty_layer {
                let l = layers
                    .get(layer_i)
                    .ok_or_else(|| ImageError::Invalid("too many non-empty layers in History section".into()))?;
                size = l.size;
                layer_i += 1;
            }
            items.push(HistoryItem {
                id: "<missing>".to_owned(),
                created: h.created.as_deref().and_then(parse_time).map_or(0, |n| n.div_euclid(1_000_000_000)),
                created_by: h.created_by.clone().unwrap_or_default(),
                tags: Vec::new(),
                size,
                comment: h.comment.clone().unwrap_or_default(),
            });
        }
        items.reverse();
        let c = self.db.conn();
        let mut id = Some(row.id.clone());
        let mut seen = HashSet::new();
        for item in &mut items {
            let Some(cur) = id.take() else { break };
            if !seen.insert(cur.clone()) {
                break;
            }
            item.id = cur.to_string();
            item.tags = store::refs_of(&c, &cur)?
                .into_iter()
                .filter(|r| r.digest().is_none() && r.tag().is_some())
                .map(|r| r.familiar())
                .collect();
            id = store::image_get(&c, &cur)?.and_then(|r| r.parent);
        }
        Ok(items)
    }

    /// The image part of `/system/df`: all top images with shared sizes and container counts,
    /// and the size of every layer an image uses.
    pub fn disk_usage(&self) -> Result<ImagesUsage, ImageError> {
        let items = self.list(&ListOptions { all: false, filters: Filters::default(), shared_size: true })?;
        let (images, refs, layers) = {
            let c = self.db.conn();
            (store::images_all(&c)?, store::refs_all(&c)?, store::layers_all(&c)?)
        };
        let referenced: HashSet<&ImageId> = refs.iter().map(|(_, id)| id).collect();
        let parents: HashSet<&ImageId> = images.iter().filter_map(|i| i.parent.as_ref()).collect();
        let by_chain: HashMap<&Digest, &LayerRow> = layers.iter().map(|l| (&l.chain_id, l)).collect();
        let mut counted: HashSet<&Digest> = HashSet::new();
        let mut total_size = 0;
        for img in &images {
            // moby skips untagged intermediate images here.
            if !referenced.contains(&img.id) && parents.contains(&img.id) {
                continue;
            }
            let mut cur = img.top_layer.as_ref();
            while let Some(c) = cur {
                let Some(l) = by_chain.get(c) else { break };
                if counted.insert(c) {
                    total_size += l.size;
                }
                cur = l.parent.as_ref();
            }
        }
        let mut usage = ImagesUsage { total_count: items.len() as i64, total_size, ..Default::default() };
        for i in &items {
            if i.containers > 0 {
                usage.active_count += 1;
            } else if i.containers == 0 && i.size != -1 && i.shared_size != -1 {
                usage.reclaimable += i.size - i.shared_size;
            }
        }
        usage.items = items;
        Ok(usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_path_match() {
        let m = |p: &str, n: &str| glob_match(p, n).unwrap();
        assert!(m("busybox", "busybox"));
        assert!(m("busy*", "busybox"));
        assert!(m("*box:*", "busybox:latest"));
        assert!(!m("*", "a/b"));
        assert!(m("*/*", "a/b"));
        assert!(m("b?sybox", "busybox"));
        assert!(m("[a-c]usybox", "busybox"));
        assert!(!m("[^a-c]usybox", "busybox"));
        assert!(m("docker.io/library/*", "docker.io/library/busybox"));
        assert!(m("\\*", "*"));
        assert!(glob_match("[", "x").is_err());
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339_nano(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_nano(1_500_000_000), "1970-01-01T00:00:01.5Z");
        assert_eq!(parse_time("1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
        assert_eq!(parse_time("2024-01-02T03:04:05.123456789+01:00"), Some(1_704_161_045_123_456_789));
        let now = 1_000_000_000_000;
        assert_eq!(parse_filter_time("10s", now).unwrap(), now - 10_000_000_000);
        assert_eq!(parse_filter_time("1h30m", now).unwrap(), now - 5_400_000_000_000);
        assert_eq!(parse_filter_time("12.5", now).unwrap(), 12_500_000_000);
        assert_eq!(parse_filter_time("1970-01-01T00:00:02Z", now).unwrap(), 2_000_000_000);
        assert!(parse_filter_time("yesterday", now).is_err());
    }
}
