//! Text → logical instruction lines ("nodes"), with BuildKit's parser rules.
//!
//! - Parser directives (`# syntax=`, `# escape=`, `# check=`) are read only from the comment
//!   lines at the very top; the first blank line, other comment or instruction ends them. The
//!   key is case-insensitive; each may appear once; an unknown key ends directive parsing.
//! - A line whose first non-blank character is `#` is a comment, also inside a continuation.
//! - The escape character (`\` or `` ` ``) as the last non-blank character continues the line,
//!   unless it is itself escaped (`\\`). Continuation lines keep their leading whitespace; empty
//!   continuation lines are skipped with a warning, as Docker does.
//! - The joined line is split into keyword, leading `--flags` and the rest, and the rest is
//!   parsed per keyword: JSON-or-shell (RUN CMD ENTRYPOINT SHELL), JSON-or-list (ADD COPY
//!   VOLUME), name=value pairs (ENV LABEL, with the legacy `ENV name value`), words (ARG),
//!   whitespace-split (FROM EXPOSE), verbatim (USER WORKDIR STOPSIGNAL MAINTAINER), a nested
//!   line (ONBUILD), type + JSON-or-shell (HEALTHCHECK).
//! - ADD, COPY and RUN in shell form (also as ONBUILD triggers) collect heredocs: every word of
//!   the form `[n]<<[-]WORD` opens one, read verbatim until a line equal to the delimiter
//!   (leading tabs stripped first for `<<-`).

use crate::error::ParseError;
use crate::expand::{Lexer, NoEnv};
use crate::util::{is_space, split_ws, split_ws2};

/// A parser directive from the top of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Lower-cased: `syntax`, `escape` or `check`.
    pub name: String,
    /// As written, trailing blanks trimmed.
    pub value: String,
    /// 1-based.
    pub line: usize,
}

/// Something Docker accepts but warns about (today: empty continuation lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub line: usize,
    pub message: String,
}

/// A here-document attached to RUN, COPY or ADD.
///
/// `RUN <<EOF` … `EOF`: `name` is the delimiter word without quotes; `expand` is false when any
/// part of the delimiter was quoted (`<<"EOF"`, `<<'EOF'`), meaning the body is taken literally;
/// `chomp` is set for `<<-EOF` (leading tabs of body lines are stripped, see [`Heredoc::body`]);
/// `fd` is the optional file-descriptor prefix (`3<<EOF`), 0 when absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    pub fd: u32,
    pub expand: bool,
    pub chomp: bool,
    /// The body exactly as written, every line with its newline, without the terminator line.
    pub content: String,
}

impl Heredoc {
    /// The body with leading tabs removed from every line when `chomp` is set.
    pub fn body(&self) -> String {
        if self.chomp { chomp_heredoc_content(&self.content) } else { self.content.clone() }
    }
}

/// Leading tabs removed from every line (Docker's `ChompHeredocContent`).
pub fn chomp_heredoc_content(s: &str) -> String {
    s.split_inclusive('\n').map(|l| l.trim_start_matches('\t')).collect()
}

/// One logical line.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// The keyword as written (case kept).
    pub keyword: String,
    pub flags: Vec<String>,
    /// Arguments after the per-keyword parse.
    pub args: Vec<String>,
    /// The arguments were a JSON array.
    pub json: bool,
    /// ONBUILD's trigger.
    pub sub: Option<Box<Node>>,
    /// The joined line, trimmed.
    pub original: String,
    pub start_line: usize,
    pub end_line: usize,
    pub heredocs: Vec<Heredoc>,
}

pub(crate) struct Lexed {
    pub nodes: Vec<Node>,
    pub directives: Vec<Directive>,
    pub escape: char,
    pub warnings: Vec<Warning>,
}

struct DirectiveParser {
    line: usize,
    done: bool,
    seen: Vec<String>,
}

impl DirectiveParser {
    /// `Some(directive)` when `line` is a directive; errors on repeats.
    fn parse_line(&mut self, line: &str) -> Result<Option<(String, String)>, String> {
        self.line += 1;
        if self.done {
            return Ok(None);
        }
        let Some(rest) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(None);
        };
        let rest = rest.trim_start_matches(is_space);
        let Some((k, v)) = match_directive(rest) else {
            self.done = true;
            return Ok(None);
        };
        let k = k.to_ascii_lowercase();
        if !matches!(k.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(None);
        }
        if self.seen.contains(&k) {
            return Err(format!("only one {k} parser directive can be used"));
        }
        self.seen.push(k.clone());
        Ok(Some((k, v)))
    }
}

/// `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`
fn match_directive(s: &str) -> Option<(String, String)> {
    let re_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\u{c}' | '\r');
    let mut chars = s.char_indices();
    let (_, first) = chars.next()?;
    if !first.is_ascii_alphabetic() {
        return None;
    }
    let key_end = s.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(s.len());
    let key = &s[..key_end];
    let rest = s[key_end..].trim_start_matches(re_space);
    let rest = rest.strip_prefix('=')?;
    let value = rest.trim_start_matches(re_space).trim_end_matches(re_space);
    if value.is_empty() || value.contains('\n') {
        return None;
    }
    Some((key.to_string(), value.to_string()))
}

/// Lines with their endings kept (Docker's `scanLines`).
fn lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(s: &str) -> bool {
    s.trim_start_matches(is_space).starts_with('#')
}

/// `(line without the continuation escape, is_end_of_line)`.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    if let Some(before) = t.strip_suffix(escape) {
        match before.chars().last() {
            None => return ("", false),
            Some(c) if c != escape => return (before, false),
            Some(_) => {}
        }
    }
    (line, true)
}

/// Docker's `processLine`: newline trimmed, directive detection, comments blanked.
fn process_line<'a>(
    dp: &mut DirectiveParser,
    raw: &'a str,
    strip_left: bool,
    line_no: usize,
    escape: &mut char,
    directives: &mut Vec<Directive>,
) -> Result<&'a str, ParseError> {
    let mut tok = trim_newline(raw);
    if strip_left {
        tok = tok.trim_start_matches(is_space);
    }
    if !dp.done {
        match dp.parse_line(tok) {
            Err(message) => {
                return Err(ParseError::Directive { line: line_no, message });
            }
            Ok(Some((name, value))) => {
                if name == "escape" {
                    if value != "`" && value != "\\" {
                        return Err(ParseError::Directive {
                            line: line_no,
                            message: format!("invalid escape token '{value}' does not match ` or \\"),
                        });
                    }
                    *escape = value.chars().next().unwrap_or('\\');
                }
                directives.push(Directive { name, value, line: line_no });
            }
            Ok(None) => {}
        }
    }
    Ok(if is_comment(tok) { "" } else { tok })
}

pub(crate) fn lex(text: &str) -> Result<Lexed, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let all = lines(text);
    let mut escape = '\\';
    let mut dp = DirectiveParser { line: 0, done: false, seen: Vec::new() };
    let mut directives = Vec::new();
    let mut warnings = Vec::new();
    let mut nodes = Vec::new();
    let mut i = 0;
    let mut current_line = 0;

    while i < all.len() {
        let raw = all[i];
        i += 1;
        let first = process_line(&mut dp, raw, true, current_line + 1, &mut escape, &mut directives)?;
        current_line += 1;
        let start_line = current_line;
        let (first, mut end) = trim_continuation(first, escape);
        if end && first.is_empty() {
            continue;
        }
        let mut buf = first.to_string();
        let mut empty_continuation = false;
        while !end && i < all.len() {
            let raw = all[i];
            i += 1;
            let cont = process_line(&mut dp, raw, false, current_line + 1, &mut escape, &mut directives)?;
            current_line += 1;
            if is_comment(raw) {
                continue;
            }
            if cont.trim_start_matches(is_space).is_empty() {
                empty_continuation = true;
                continue;
            }
            let (c, e) = trim_continuation(cont, escape);
            end = e;
            buf.push_str(c);
        }
        if empty_continuation {
            warnings.push(Warning { line: current_line, message: format!("Empty continuation line found in: {buf}") });
        }
        let mut node = node_from_line(&buf, escape).map_err(|m| ParseError::instruction(start_line, m))?;
        if can_contain_heredoc(&node) && buf.contains("<<") {
            let docs = heredocs_from_line(&buf).map_err(|m| ParseError::instruction(start_line, m))?;
            for mut doc in docs {
                let mut content = String::new();
                let mut terminated = false;
                while i < all.len() {
                    let raw = all[i];
                    i += 1;
                    current_line += 1;
                    let mut candidate = trim_newline(raw);
                    if doc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == doc.name {
                        terminated = true;
                        break;
                    }
                    content.push_str(raw);
                }
                if !terminated {
                    return Err(ParseError::Heredoc { line: start_line, message: "unterminated heredoc".into() });
                }
                doc.content = content;
                node.heredocs.push(doc);
            }
        }
        node.start_line = start_line;
        node.end_line = current_line;
        nodes.push(node);
    }
    if nodes.is_empty() {
        return Err(ParseError::Structure { line: current_line, message: "file with no instructions".into() });
    }
    Ok(Lexed { nodes, directives, escape, warnings })
}

fn can_contain_heredoc(node: &Node) -> bool {
    let n = match (&node.sub, node.keyword.eq_ignore_ascii_case("onbuild")) {
        (Some(sub), true) => sub.as_ref(),
        _ => node,
    };
    matches!(n.keyword.to_ascii_lowercase().as_str(), "add" | "copy" | "run") && !n.json
}

/// Keyword, flags and per-keyword arguments of one joined line (BuildKit's `newNodeFromLine`).
pub(crate) fn node_from_line(line: &str, escape: char) -> Result<Node, String> {
    let (cmd, rest) = split_ws2(line.trim_matches(is_space));
    let (args_text, flags) = match rest {
        Some(r) => extract_flags(&r, escape),
        None => (String::new(), Vec::new()),
    };
    let args_text = args_text.trim_matches(is_space).to_string();
    let mut node = Node {
        keyword: cmd.clone(),
        flags,
        args: Vec::new(),
        json: false,
        sub: None,
        original: line.trim_matches(is_space).to_string(),
        start_line: 0,
        end_line: 0,
        heredocs: Vec::new(),
    };
    let lower = cmd.to_ascii_lowercase();
    match lower.as_str() {
        "add" | "copy" | "volume" => (node.args, node.json) = maybe_json_to_list(&args_text)?,
        "cmd" | "entrypoint" | "run" | "shell" => (node.args, node.json) = maybe_json(&args_text)?,
        "arg" => node.args = parse_words(&args_text, escape),
        "env" | "label" => node.args = parse_name_val(&args_text, &lower.to_ascii_uppercase(), escape)?,
        "expose" | "from" => node.args = whitespace_list(&args_text),
        "maintainer" | "stopsignal" | "user" | "workdir" if !args_text.is_empty() => node.args = vec![args_text],
        "onbuild" if !args_text.is_empty() => {
            let child = node_from_line(&args_text, escape)?;
            node.args = vec![child.keyword.clone()];
            node.args.extend(child.args.iter().cloned());
            node.sub = Some(Box::new(child));
        }
        "healthcheck" => {
            let sep = args_text.find(is_space).unwrap_or(args_text.len());
            if sep > 0 {
                let typ = args_text[..sep].to_string();
                let rest = args_text[sep..].trim_start_matches(is_space);
                let (more, json) = maybe_json(rest)?;
                node.args = std::iter::once(typ).chain(more).collect();
                node.json = json;
            }
        }
        _ => {}
    }
    Ok(node)
}

fn whitespace_list(rest: &str) -> Vec<String> {
    if rest.is_empty() { Vec::new() } else { split_ws(rest) }
}

const NOT_STRING_ARRAY: &str = "when using JSON array syntax, arrays must be comprised of strings only";

/// `Ok(Some(args))` for a JSON array of strings, `Ok(None)` when `rest` is not JSON.
fn parse_json(rest: &str) -> Result<Option<Vec<String>>, String> {
    let rest = rest.trim_start_matches(is_space);
    if !rest.starts_with('[') {
        return Ok(None);
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(rest) else {
        return Ok(None);
    };
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(NOT_STRING_ARRAY.to_string()),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn maybe_json(rest: &str) -> Result<(Vec<String>, bool), String> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    Ok(match parse_json(rest)? {
        Some(v) => (v, true),
        None => (vec![rest.to_string()], false),
    })
}

fn maybe_json_to_list(rest: &str) -> Result<(Vec<String>, bool), String> {
    Ok(match parse_json(rest)? {
        Some(v) => (v, true),
        None => (whitespace_list(rest), false),
    })
}

/// Leading `--flag[=value]` words (quotes and escapes processed), and the rest of the line.
fn extract_flags(line: &str, escape: char) -> (String, Vec<String>) {
    let first = line.trim_start_matches(is_space);
    if !first.starts_with("--") {
        return (first.to_string(), Vec::new());
    }
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut p = 0;
    loop {
        let at_end = p >= chars.len();
        let (byte, ch) = if at_end { (line.len(), '\0') } else { chars[p] };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if is_space(ch) {
                p += 1;
                continue;
            }
            let next_dash = chars.get(p + 1).map(|c| c.1) == Some('-');
            if ch != '-' || !next_dash {
                return (line[byte..].to_string(), words);
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if is_space(ch) {
                phase = Phase::Spaces;
                if word == "--" {
                    return (line[byte..].to_string(), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                p += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                p += 1;
                continue;
            }
            let mut c = ch;
            if ch == escape {
                if p + 1 == chars.len() {
                    p += 1;
                    continue;
                }
                p += 1;
                c = chars[p].1;
            }
            word.push(c);
            p += 1;
            continue;
        }
        // in quote
        if ch == quote {
            phase = Phase::Word;
            p += 1;
            continue;
        }
        let mut c = ch;
        if ch == escape {
            if p + 1 == chars.len() {
                phase = Phase::Word;
                p += 1;
                continue;
            }
            p += 1;
            c = chars[p].1;
        }
        word.push(c);
        p += 1;
    }
    (String::new(), words)
}

/// Space-separated words with quotes kept (they are removed by expansion later).
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut buf = String::new();
    let mut p = 0;
    loop {
        let at_end = p >= chars.len();
        let ch = if at_end { '\0' } else { chars[p] };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if is_space(ch) {
                p += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if at_end {
            if blank_ok || !buf.is_empty() {
                words.push(buf);
            }
            break;
        }
        if phase == Phase::Word {
            if is_space(ch) {
                phase = Phase::Spaces;
                if blank_ok || !buf.is_empty() {
                    words.push(std::mem::take(&mut buf));
                }
                blank_ok = false;
                p += 1;
                continue;
            }
            let mut c = ch;
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if p + 1 == chars.len() {
                    p += 1;
                    continue;
                }
                buf.push(ch);
                p += 1;
                c = chars[p];
            }
            buf.push(c);
            p += 1;
            continue;
        }
        // in quote
        if ch == quote {
            phase = Phase::Word;
        }
        let mut c = ch;
        if ch == escape && quote != '\'' {
            if p + 1 == chars.len() {
                phase = Phase::Word;
                p += 1;
                continue;
            }
            p += 1;
            buf.push(ch);
            c = chars[p];
        }
        buf.push(c);
        p += 1;
    }
    words
}

/// ENV/LABEL arguments as `[key, value, sep]` triples; `sep` is "=" for `k=v` and "" for the
/// legacy `ENV k v` form.
fn parse_name_val(rest: &str, key: &str, escape: char) -> Result<Vec<String>, String> {
    let words = parse_words(rest, escape);
    if words.is_empty() {
        return Ok(Vec::new());
    }
    if !words[0].contains('=') {
        let (k, v) = split_ws2(rest);
        let Some(v) = v else {
            return Err(format!("{key} must have two arguments"));
        };
        return Ok(vec![k, v, String::new()]);
    }
    let mut out = Vec::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                crate::util::go_quote(&w)
            ));
        };
        out.extend([k.to_string(), v.to_string(), "=".to_string()]);
    }
    Ok(out)
}

/// The heredocs a line opens, in order.
fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let lex = Lexer { raw_quotes: true, raw_escapes: true, skip_unset_env: true, ..Lexer::new('\\') };
    let words = lex.expand_words(line, &NoEnv).unwrap_or_default();
    let mut docs = Vec::new();
    for w in words {
        if let Some(doc) = parse_heredoc(&w)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// `^(\d*)<<(-?)\s*([^<]*)$` → a heredoc, if `word` is one.
pub(crate) fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, String> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let Some(rest) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let rest = rest.trim_start_matches([' ', '\t', '\n', '\u{c}', '\r']);
    if rest.contains('<') || rest.is_empty() {
        return Ok(None);
    }
    let fd = word[..digits].parse::<u32>().unwrap_or(0);
    let lex = Lexer { skip_unset_env: true, ..Lexer::new('\\') };
    let words = lex.expand_words(rest, &NoEnv).map_err(|e| e.to_string())?;
    if words.len() != 1 {
        return Ok(None);
    }
    let raw_lex = Lexer { raw_quotes: true, ..lex };
    let raw = raw_lex.expand_words(rest, &NoEnv).map_err(|e| e.to_string())?;
    if raw.len() != words.len() {
        return Err(format!("internal lexing of heredoc produced inconsistent results: {rest}"));
    }
    let quotes = |s: &str| s.matches(['\'', '"']).count();
    Ok(Some(Heredoc {
        name: words[0].clone(),
        fd,
        expand: quotes(&words[0]) == quotes(&raw[0]),
        chomp,
        content: String::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        let l = lex(text).unwrap();
        assert_eq!(l.nodes.len(), 1, "{text}");
        l.nodes.into_iter().next().unwrap()
    }

    #[test]
    fn continuation_and_comments() {
        let n =
            one("RUN apt-get update \\\n  # a comment\n  && apt-get install -y curl \\\n\n  && rm -rf /var/lib/apt\n");
        assert_eq!(n.args, vec!["apt-get update   && apt-get install -y curl   && rm -rf /var/lib/apt"]);
        assert_eq!((n.start_line, n.end_line), (1, 5));
        let l = lex("FROM a\nRUN a \\\n\n b\n").unwrap();
        assert_eq!(l.warnings.len(), 1);
        assert_eq!(l.warnings[0].line, 4);
    }

    #[test]
    fn escaped_escape_is_not_a_continuation() {
        let l = lex("FROM a\nRUN echo \\\\\nRUN b\n").unwrap();
        assert_eq!(l.nodes.len(), 3);
        assert_eq!(l.nodes[1].args, vec!["echo \\\\"]);
    }

    #[test]
    fn continuation_at_eof() {
        let n = one("RUN echo \\");
        assert_eq!(n.args, vec!["echo"]);
        let n = one("RUN echo \\\n");
        assert_eq!(n.args, vec!["echo"]);
    }

    #[test]
    fn directives_only_at_top() {
        let l = lex("# syntax=docker/dockerfile:1\n# ESCAPE = `\nFROM a\nRUN a `\n b\n").unwrap();
        assert_eq!(l.escape, '`');
        assert_eq!(l.directives.len(), 2);
        assert_eq!(l.directives[0].value, "docker/dockerfile:1");
        assert_eq!(l.nodes[1].args, vec!["a  b"]);
        let l = lex("# hello\n# escape=`\nFROM a\n").unwrap();
        assert_eq!(l.escape, '\\');
        assert!(l.directives.is_empty());
        let l = lex("\n# escape=`\nFROM a\n").unwrap();
        assert_eq!(l.escape, '\\');
        let l = lex("# unknown=1\n# escape=`\nFROM a\n").unwrap();
        assert_eq!(l.escape, '\\');
    }

    #[test]
    fn directive_errors() {
        let e = lex("# escape=x\nFROM a\n").err().unwrap();
        assert_eq!(e.message(), "invalid escape token 'x' does not match ` or \\");
        assert_eq!(e.line(), 1);
        let e = lex("# escape=`\n# escape=\\\nFROM a\n").err().unwrap();
        assert_eq!(e.message(), "only one escape parser directive can be used");
        assert_eq!(e.line(), 2);
    }

    #[test]
    fn flags_are_extracted() {
        let n = one("COPY --from=build --chown=\"a b\" src dst");
        assert_eq!(n.flags, vec!["--from=build", "--chown=a b"]);
        assert_eq!(n.args, vec!["src", "dst"]);
        let n = one("RUN -- --not-a-flag");
        assert!(n.flags.is_empty());
        assert_eq!(n.args, vec!["--not-a-flag"]);
    }

    #[test]
    fn json_and_fallback() {
        let n = one("CMD [\"a\", \"b c\"]");
        assert!(n.json);
        assert_eq!(n.args, vec!["a", "b c"]);
        let n = one("CMD [\"a\", 'b']");
        assert!(!n.json);
        assert_eq!(n.args, vec!["[\"a\", 'b']"]);
        let e = lex("CMD [\"a\", 1]").err().unwrap();
        assert_eq!(e.message(), NOT_STRING_ARRAY);
        let n = one("COPY [\"a b\", \"/c\"]");
        assert_eq!(n.args, vec!["a b", "/c"]);
    }

    #[test]
    fn env_forms() {
        let n = one("ENV A=1 B=\"x y\" C=a\\ b");
        assert_eq!(n.args, vec!["A", "1", "=", "B", "\"x y\"", "=", "C", "a\\ b", "="]);
        let n = one("ENV A  hello world");
        assert_eq!(n.args, vec!["A", "hello world", ""]);
        assert_eq!(lex("ENV A").err().unwrap().message(), "ENV must have two arguments");
        assert_eq!(
            lex("ENV A=1 B").err().unwrap().message(),
            "Syntax error - can't find = in \"B\". Must be of the form: name=value"
        );
    }

    #[test]
    fn heredocs() {
        let n = one("RUN <<EOF\necho hi\nEOF\n");
        assert_eq!(n.heredocs.len(), 1);
        assert_eq!(n.heredocs[0].content, "echo hi\n");
        assert!(n.heredocs[0].expand);
        assert_eq!(n.end_line, 3);
        let n = one("RUN <<-\"EOT\" cat\n\tline $X\n\tEOT\n");
        assert!(!n.heredocs[0].expand && n.heredocs[0].chomp);
        assert_eq!(n.heredocs[0].body(), "line $X\n");
        let n = one("RUN 3<<A 4<<'B' cmd\na\nA\nb\nB\n");
        assert_eq!(n.heredocs.iter().map(|h| (h.fd, h.name.as_str())).collect::<Vec<_>>(), vec![(3, "A"), (4, "B")]);
        let e = lex("RUN <<EOF\necho\n").err().unwrap();
        assert_eq!((e.line(), e.message()), (1, "unterminated heredoc"));
        // JSON form does not read heredocs
        let l = lex("RUN [\"<<EOF\"]\nFROM x\n").unwrap();
        assert_eq!(l.nodes.len(), 2);
    }

    #[test]
    fn onbuild_trigger() {
        let n = one("ONBUILD COPY <<EOF /x\nhi\nEOF\n");
        let sub = n.sub.as_ref().unwrap();
        assert_eq!(sub.keyword, "COPY");
        assert_eq!(n.heredocs.len(), 1);
    }

    #[test]
    fn empty_file() {
        let e = lex("# just a comment\n\n").err().unwrap();
        assert_eq!(e.message(), "file with no instructions");
    }

    #[test]
    fn words() {
        assert_eq!(parse_words("a \"b c\" 'd\\' e\\ f", '\\'), vec!["a", "\"b c\"", "'d\\'", "e\\ f"]);
    }
}
