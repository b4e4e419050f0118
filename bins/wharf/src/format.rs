//! The output layer every command shares, matching the docker CLI:
//! - `--format table …`: a header row and aligned columns (Go's tabwriter with docker's
//!   settings: minimum width 10, padding 3);
//! - `--format json`: one JSON object per line;
//! - `--format '{{…}}'`: a Go template per item, with docker's template functions (`json`,
//!   `join`, `split`, `title`, `lower`, `upper`, `pad`, `truncate`, `println`);
//! - no `--format`: the command's default table.
//!
//! Template contexts are JSON values with Go's field names (what templates address), carrying
//! the original JSON so that `{{json .}}` prints what docker prints.

use std::collections::HashMap;

use anyhow::{Result, anyhow};
use gtmpl::{Context, FuncError, Template, Value};
use serde_json::Value as Json;

/// The hidden key under which an object keeps its wire JSON for `{{json .}}`. It cannot be
/// addressed from a template (not an identifier).
const RAW_KEY: &str = "\u{0}json";

/// Converts JSON to a template value. `renames` maps wire keys to Go field names at a path
/// (`("Client.ApiVersion", "APIVersion")`; `*` matches any key or array index); maps
/// (`Details`, `Labels`) keep their keys. The original JSON stays available to `json`.
pub fn to_value(json: &Json, renames: &[(&str, &str)]) -> Value {
    to_value_at(json, renames, "")
}

fn path_matches(pattern: &str, path: &str) -> bool {
    let mut p = pattern.split('.');
    let mut q = path.split('.');
    loop {
        match (p.next(), q.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a == "*" || a == b => continue,
            _ => return false,
        }
    }
}

fn to_value_at(json: &Json, renames: &[(&str, &str)], path: &str) -> Value {
    let child = |k: &str| {
        if path.is_empty() { k.to_owned() } else { format!("{path}.{k}") }
    };
    match json {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::Array(
            items.iter().enumerate().map(|(i, v)| to_value_at(v, renames, &child(&i.to_string()))).collect(),
        ),
        Json::Object(map) => {
            let mut out: HashMap<String, Value> = HashMap::with_capacity(map.len() + 1);
            for (k, v) in map {
                let here = child(k);
                let name = renames.iter().find(|(from, _)| path_matches(from, &here)).map_or(k.as_str(), |(_, to)| to);
                out.insert(name.to_owned(), to_value_at(v, renames, &here));
            }
            out.insert(RAW_KEY.to_owned(), Value::String(json.to_string()));
            Value::Object(out)
        }
    }
}

/// JSON for a template value: the wire JSON when the value came from [`to_value`].
fn value_to_json(v: &Value) -> Json {
    match v {
        Value::NoValue | Value::Nil | Value::Function(_) => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::String(s) => Json::String(s.clone()),
        Value::Number(n) => serde_json::from_str(&n.to_string()).unwrap_or(Json::Null),
        Value::Array(a) => Json::Array(a.iter().map(value_to_json).collect()),
        Value::Object(m) | Value::Map(m) => {
            if let Some(Value::String(raw)) = m.get(RAW_KEY)
                && let Ok(j) = serde_json::from_str(raw)
            {
                return j;
            }
            let mut keys: Vec<&String> = m.keys().filter(|k| k.as_str() != RAW_KEY).collect();
            keys.sort();
            Json::Object(keys.into_iter().map(|k| (k.clone(), value_to_json(&m[k]))).collect())
        }
    }
}

fn as_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::NoValue | Value::Nil => String::new(),
        other => other.to_string(),
    }
}

fn arg<'a>(args: &'a [Value], i: usize, name: &str) -> Result<&'a Value, FuncError> {
    args.get(i).ok_or_else(|| FuncError::ExactlyXArgs(name.into(), i + 1))
}

fn f_json(args: &[Value]) -> Result<Value, FuncError> {
    let v = arg(args, 0, "json")?;
    // An object built by `raw_value` prints exactly as the daemon sent it (key order kept).
    if let Value::Object(m) = v
        && let Some(Value::String(raw)) = m.get(RAW_KEY)
        && m.contains_key(RAW_ORDERED_KEY)
    {
        return Ok(Value::String(raw.clone()));
    }
    Ok(Value::String(go_json(&value_to_json(v))))
}

fn f_join(args: &[Value]) -> Result<Value, FuncError> {
    let sep = as_string(arg(args, 1, "join")?);
    let items = match arg(args, 0, "join")? {
        Value::Array(a) => a.iter().map(as_string).collect::<Vec<_>>(),
        other => vec![as_string(other)],
    };
    Ok(Value::String(items.join(&sep)))
}

fn f_split(args: &[Value]) -> Result<Value, FuncError> {
    let s = as_string(arg(args, 0, "split")?);
    let sep = as_string(arg(args, 1, "split")?);
    Ok(Value::Array(s.split(sep.as_str()).map(|p| Value::String(p.to_owned())).collect()))
}

fn f_lower(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(as_string(arg(args, 0, "lower")?).to_lowercase()))
}

fn f_upper(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(as_string(arg(args, 0, "upper")?).to_uppercase()))
}

fn f_title(args: &[Value]) -> Result<Value, FuncError> {
    let s = as_string(arg(args, 0, "title")?);
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    Ok(Value::String(out))
}

fn number(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

/// `pad s left right`: spaces around `s`.
fn f_pad(args: &[Value]) -> Result<Value, FuncError> {
    let s = as_string(arg(args, 0, "pad")?);
    let l = number(arg(args, 1, "pad")?).max(0) as usize;
    let r = number(arg(args, 2, "pad")?).max(0) as usize;
    Ok(Value::String(format!("{}{}{}", " ".repeat(l), s, " ".repeat(r))))
}

fn f_truncate(args: &[Value]) -> Result<Value, FuncError> {
    let s = as_string(arg(args, 0, "truncate")?);
    let n = number(arg(args, 1, "truncate")?).max(0) as usize;
    Ok(Value::String(s.chars().take(n).collect()))
}

fn f_println(args: &[Value]) -> Result<Value, FuncError> {
    let parts: Vec<String> = args.iter().map(as_string).collect();
    Ok(Value::String(format!("{}\n", parts.join(" "))))
}

pub use crate::units::{human_size, human_size_precision};

/// docker's `TruncateID`: the algorithm prefix dropped, 12 characters kept.
pub fn truncate_id(id: &str) -> String {
    let id = id.split_once(':').map_or(id, |(_, h)| h);
    id.chars().take(12).collect()
}

/// docker's `formatter.Ellipsis`: at most `max` characters, the last one `…` when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Go's `json.MarshalIndent(v, "", "    ")` with its HTML escaping, as `docker inspect` prints.
pub fn go_json_indent(v: &Json) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    let _ = serde::Serialize::serialize(v, &mut ser);
    String::from_utf8_lossy(&buf).replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

/// JSON as docker's templates print it: the `json` function encodes with
/// `SetEscapeHTML(false)`, so `<`, `>` and `&` stay as they are.
pub fn go_json(v: &Json) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// `json.Marshal`'s output (`<`, `>`, `&` escaped), which docker prints for formatter contexts
/// that marshal themselves (`ps --format json`, `stats --format json`).
pub fn go_json_escaped(v: &Json) -> String {
    go_json(v).replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

/// Marks objects from [`raw_value`], whose `RAW_KEY` text is the daemon's own bytes.
const RAW_ORDERED_KEY: &str = "\u{0}ordered";

/// Like [`to_value`] for a JSON document given as text, keeping each object's original text so
/// `{{json .X}}` prints it in the daemon's key order (as docker, which re-marshals the Go
/// struct the daemon marshalled). `None` if the text is not JSON.
pub fn raw_value(raw: &str) -> Option<Value> {
    let v: Json = serde_json::from_str(raw).ok()?;
    Some(raw_value_at(raw.trim(), &v))
}

fn raw_value_at(raw: &str, v: &Json) -> Value {
    match v {
        Json::Object(map) => {
            let mut out: HashMap<String, Value> = HashMap::with_capacity(map.len() + 2);
            for (k, span) in object_spans(raw) {
                if let Some(child) = map.get(&k) {
                    out.insert(k, raw_value_at(span, child));
                }
            }
            out.insert(RAW_KEY.to_owned(), Value::String(compact(raw)));
            out.insert(RAW_ORDERED_KEY.to_owned(), Value::Bool(true));
            Value::Object(out)
        }
        Json::Array(items) => {
            let spans = array_spans(raw);
            Value::Array(items.iter().zip(spans).map(|(item, span)| raw_value_at(span, item)).collect())
        }
        other => to_value(other, &[]),
    }
}

/// The end (exclusive) of the JSON value starting at byte `i` of `s`.
fn value_end(s: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut esc = false;
    let start = i;
    while i < s.len() {
        let c = s[i];
        if in_str {
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
                if depth == 0 {
                    return i + 1;
                }
            }
        } else {
            match c {
                b'"' => in_str = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    if depth == 0 {
                        return i;
                    }
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                b',' | b':' if depth == 0 => return i,
                c if depth == 0 && c.is_ascii_whitespace() && i > start => return i,
                _ => {}
            }
        }
        i += 1;
    }
    i
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && s[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// `(key, value text)` of an object's members, in order.
fn object_spans(raw: &str) -> Vec<(String, &str)> {
    let s = raw.as_bytes();
    let mut out = Vec::new();
    let mut i = skip_ws(s, 0) + 1; // past '{'
    loop {
        i = skip_ws(s, i);
        if i >= s.len() || s[i] == b'}' {
            break;
        }
        let kend = value_end(s, i);
        let key: String = serde_json::from_str(&raw[i..kend]).unwrap_or_default();
        i = skip_ws(s, kend);
        if i < s.len() && s[i] == b':' {
            i += 1;
        }
        i = skip_ws(s, i);
        let vend = value_end(s, i);
        out.push((key, &raw[i..vend]));
        i = skip_ws(s, vend);
        if i < s.len() && s[i] == b',' {
            i += 1;
        }
    }
    out
}

/// The text of an array's elements, in order.
fn array_spans(raw: &str) -> Vec<&str> {
    let s = raw.as_bytes();
    let mut out = Vec::new();
    let mut i = skip_ws(s, 0) + 1; // past '['
    loop {
        i = skip_ws(s, i);
        if i >= s.len() || s[i] == b']' {
            break;
        }
        let end = value_end(s, i);
        out.push(&raw[i..end]);
        i = skip_ws(s, end);
        if i < s.len() && s[i] == b',' {
            i += 1;
        }
    }
    out
}

/// Go's `json.Compact` (whitespace outside strings removed).
fn compact(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let (mut in_str, mut esc) = (false, false);
    for c in raw.chars() {
        if in_str {
            out.push(c);
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if !c.is_ascii_whitespace() {
            if c == '"' {
                in_str = true;
            }
            out.push(c);
        }
    }
    out
}

/// A parsed `--format` template with docker's functions.
pub struct Tmpl {
    inner: Template,
}

impl Tmpl {
    pub fn parse(text: &str) -> Result<Self> {
        let mut t = Template::default();
        t.add_funcs(&[
            ("json", f_json as gtmpl::Func),
            ("join", f_join as gtmpl::Func),
            ("split", f_split as gtmpl::Func),
            ("lower", f_lower as gtmpl::Func),
            ("upper", f_upper as gtmpl::Func),
            ("title", f_title as gtmpl::Func),
            ("pad", f_pad as gtmpl::Func),
            ("truncate", f_truncate as gtmpl::Func),
            ("println", f_println as gtmpl::Func),
        ]);
        // Go templates treat `\t`/`\n` typed on a shell command line as literal escapes.
        let text = text.replace("\\t", "\t").replace("\\n", "\n");
        t.parse(text).map_err(|e| anyhow!("template parsing error: {e}"))?;
        Ok(Self { inner: t })
    }

    pub fn render(&self, ctx: &Value) -> Result<String> {
        let out = self.inner.render(&Context::from(ctx.clone())).map_err(|e| anyhow!("template: {e}"))?;
        Ok(out)
    }
}

/// What the user asked for with `--format`.
pub enum Format<'a> {
    /// `table …` (or the default): header + aligned rows.
    Table(&'a str),
    /// `json`: one JSON object per line.
    Json,
    /// Any other template: one rendering per item.
    Raw(&'a str),
}

impl<'a> Format<'a> {
    /// Interprets `--format`; `default` is the command's default table template.
    pub fn new(user: Option<&'a str>, default: &'a str) -> Self {
        match user.map(str::trim) {
            None | Some("") | Some("table") => {
                Format::Table(default.strip_prefix("table").unwrap_or(default).trim_start())
            }
            Some("json") => Format::Json,
            Some(t) if t.starts_with("table") => Format::Table(t["table".len()..].trim_start()),
            Some(t) => Format::Raw(t),
        }
    }
}

/// Prints `rows` (each a template context built with [`to_value`]) as docker does. `headers`
/// maps field names to column titles (`ID` → `CONTAINER ID`); unknown fields get their name
/// upper-cased, as docker's header context does for fields it does not know.
pub fn print_rows(format: Format<'_>, rows: &[Value], headers: &[(&str, &str)]) -> Result<()> {
    let out = render_rows(format, rows, headers)?;
    print!("{out}");
    Ok(())
}

pub fn render_rows(format: Format<'_>, rows: &[Value], headers: &[(&str, &str)]) -> Result<String> {
    match format {
        Format::Json => {
            let mut s = String::new();
            for r in rows {
                s.push_str(&go_json(&value_to_json(r)));
                s.push('\n');
            }
            Ok(s)
        }
        Format::Raw(t) => {
            let tmpl = Tmpl::parse(t)?;
            let mut s = String::new();
            for r in rows {
                s.push_str(&tmpl.render(r)?);
                s.push('\n');
            }
            Ok(s)
        }
        Format::Table(t) => render_table_with(t, t, rows, headers),
    }
}

/// A table whose header line comes from its own template (`header_t`), for row templates that
/// call methods the header cannot (docker's `.Label "key"` header is the key's last part).
pub fn render_table_with(t: &str, header_t: &str, rows: &[Value], headers: &[(&str, &str)]) -> Result<String> {
    {
        {
            let tmpl = Tmpl::parse(t)?;
            let header_tmpl = Tmpl::parse(header_t)?;
            let mut lines = Vec::with_capacity(rows.len() + 1);
            let header_ctx = Value::Object(
                template_fields(header_t)
                    .into_iter()
                    .map(|f| {
                        let title = headers
                            .iter()
                            .find(|(k, _)| *k == f)
                            .map_or_else(|| f.to_uppercase(), |(_, v)| v.to_string());
                        (f, Value::String(title))
                    })
                    .collect(),
            );
            lines.push(header_tmpl.render(&header_ctx).unwrap_or_default());
            for r in rows {
                lines.push(tmpl.render(r)?);
            }
            Ok(tabwrite(&lines.join("\n"), 10, 3) + "\n")
        }
    }
}

/// Field names a template addresses at the top level (`{{.ID}}`, `{{json .Labels}}`).
fn template_fields(t: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = t.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'.' && (i == 0 || !b[i - 1].is_ascii_alphanumeric() && b[i - 1] != b'.' && b[i - 1] != b'$') {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            if j > start {
                out.push(t[start..j].to_owned());
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// Go's `text/tabwriter` as the docker CLI configures it (`minwidth`, tabwidth 1, `padding`,
/// padchar ' ', no flags): cells end with a tab; a column's width is its widest cell plus
/// padding, at least `minwidth`; consecutive lines that have a cell in a column form one
/// aligned block; the text after a line's last tab is not aligned.
pub fn tabwrite(text: &str, minwidth: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    // widths[line][col] for every terminated cell
    let mut widths: Vec<Vec<usize>> = lines.iter().map(|cells| vec![0; cells.len().saturating_sub(1)]).collect();
    let ncols = widths.iter().map(Vec::len).max().unwrap_or(0);
    for col in 0..ncols {
        let mut line = 0;
        while line < lines.len() {
            if widths[line].len() <= col {
                line += 1;
                continue;
            }
            let start = line;
            let mut w = minwidth;
            while line < lines.len() && widths[line].len() > col {
                w = w.max(lines[line][col].chars().count() + padding);
                line += 1;
            }
            for row in widths.iter_mut().take(line).skip(start) {
                row[col] = w;
            }
        }
    }
    let mut out = String::new();
    for (i, cells) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        for (c, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if c + 1 < cells.len() {
                let pad = widths[i][c].saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tabwriter_matches_go() {
        // Go: tabwriter.NewWriter(w, 10, 1, 3, ' ', 0) on these lines.
        let got = tabwrite("CONTAINER ID\tIMAGE\tNAMES\nabc\tbusybox\tx", 10, 3);
        assert_eq!(got, "CONTAINER ID   IMAGE     NAMES\nabc            busybox   x");
    }

    #[test]
    fn tables_have_headers_and_rows() {
        let rows = vec![
            to_value(&json!({"ID": "abc", "Image": "busybox"}), &[]),
            to_value(&json!({"ID": "defghi", "Image": "alpine:3"}), &[]),
        ];
        let out =
            render_rows(Format::new(None, "table {{.ID}}\t{{.Image}}"), &rows, &[("ID", "CONTAINER ID")]).unwrap();
        assert_eq!(out, "CONTAINER ID   IMAGE\nabc            busybox\ndefghi         alpine:3\n");
    }

    #[test]
    fn json_and_raw_formats() {
        let rows = vec![to_value(&json!({"ID": "abc", "Labels": {"a": "<b>"}}), &[])];
        // docker's templates encode JSON with SetEscapeHTML(false)
        assert_eq!(
            render_rows(Format::new(Some("json"), ""), &rows, &[]).unwrap(),
            "{\"ID\":\"abc\",\"Labels\":{\"a\":\"<b>\"}}\n"
        );
        assert_eq!(render_rows(Format::new(Some("{{.ID}}!"), ""), &rows, &[]).unwrap(), "abc!\n");
        assert_eq!(render_rows(Format::new(Some("{{json .Labels}}"), ""), &rows, &[]).unwrap(), "{\"a\":\"<b>\"}\n");
        assert_eq!(render_rows(Format::new(Some(r"{{.ID}}\t{{.ID}}"), ""), &rows, &[]).unwrap(), "abc\tabc\n");
    }

    #[test]
    fn go_field_names_and_wire_json() {
        let v = to_value(
            &json!({"ApiVersion": "1.53", "Os": "linux", "Details": {"ApiVersion": "x"}}),
            &[("ApiVersion", "APIVersion")],
        );
        let t = Tmpl::parse("{{.APIVersion}} {{index .Details \"ApiVersion\"}} {{json .}}").unwrap();
        assert_eq!(
            t.render(&v).unwrap(),
            "1.53 x {\"ApiVersion\":\"1.53\",\"Details\":{\"ApiVersion\":\"x\"},\"Os\":\"linux\"}"
        );
        assert!(path_matches("Server.Components.*.Name", "Server.Components.0.Name"));
        assert!(!path_matches("Server.Name", "Server.Components.0.Name"));
    }

    #[test]
    fn docker_functions() {
        let v = to_value(&json!({"Names": ["a", "b"], "S": "hello world", "N": "abcdef"}), &[]);
        let r = |t: &str| Tmpl::parse(t).unwrap().render(&v).unwrap();
        assert_eq!(r("{{join .Names \",\"}}"), "a,b");
        assert_eq!(r("{{title .S}}"), "Hello World");
        assert_eq!(r("{{upper .S}}"), "HELLO WORLD");
        assert_eq!(r("{{truncate .N 3}}"), "abc");
        assert_eq!(r("{{pad .N 1 2}}"), " abcdef  ");
        assert_eq!(r("{{range .Names}}{{.}};{{end}}"), "a;b;");
        assert_eq!(r("{{index (split .S \" \") 1}}"), "world");
        assert_eq!(r("{{if eq .N \"abcdef\"}}yes{{end}}"), "yes");
    }

    #[test]
    fn go_units_sizes() {
        assert_eq!(human_size_precision(1_982_256.0, 3), "1.98MB");
        assert_eq!(human_size_precision(4_261_000.0, 3), "4.26MB");
        assert_eq!(human_size_precision(123_456_789.0, 3), "123MB");
        assert_eq!(human_size_precision(0.0, 3), "0B");
        assert_eq!(human_size(1_982_256.0), "1.982MB");
        assert_eq!(truncate_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(truncate_id("<missing>"), "<missing>");
        assert_eq!(ellipsis("abcdef", 4), "abc…");
    }

    #[test]
    fn raw_values_keep_the_daemons_key_order() {
        let raw = r#"{"Id":"x","Config":{"Hostname":"h", "Env":["A=<b>"],"Cmd":null},"Args":[{"z":1,"a":2}],"N":1.50}"#;
        let v = raw_value(raw).unwrap();
        let r = |t: &str| Tmpl::parse(t).unwrap().render(&v).unwrap();
        assert_eq!(r("{{json .Config}}"), r#"{"Hostname":"h","Env":["A=<b>"],"Cmd":null}"#);
        assert_eq!(r("{{.Config.Hostname}} {{index .Config.Env 0}}"), "h A=<b>");
        assert_eq!(r("{{json (index .Args 0)}}"), r#"{"z":1,"a":2}"#);
        assert_eq!(r("{{.Id}}"), "x");
        assert!(raw_value("{").is_none());
    }

    #[test]
    fn bad_templates_are_errors() {
        assert!(Tmpl::parse("{{.ID").is_err());
    }
}
