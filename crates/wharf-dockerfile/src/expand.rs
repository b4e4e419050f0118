//! Variable expansion and word splitting with Docker's rules (BuildKit's `shell.Lex`).
//!
//! What is understood, and nothing else (no command substitution, no arithmetic, no globbing):
//! - `$NAME`, `${NAME}`; a name is letters, digits and `_`; `$1`…`$999` are positional (read as
//!   variables named `1`…) and `$@ $* $# $? $- $$ $! $0` are special one-character names. A `$`
//!   not followed by a name is literal (`$.` stays `$.`).
//! - `${NAME:-word}` (unset or empty → word), `${NAME-word}` (unset → word), `${NAME:+word}`
//!   (set and non-empty → word), `${NAME+word}` (set → word), `${NAME:?msg}` / `${NAME?msg}`
//!   (error when unset/empty), `${NAME#pat}` `${NAME##pat}` (shortest/longest prefix removal),
//!   `${NAME%pat}` `${NAME%%pat}` (suffix removal), `${NAME/pat/repl}` and `${NAME//pat/repl}`
//!   (replace first / all, longest match). Patterns know `*`, `?` and `\` escapes, no `[...]`.
//! - single quotes keep everything literal; double quotes allow `$` expansion, and the escape
//!   character inside them escapes only `"`, `$` and itself; outside quotes the escape character
//!   (`\`, or `` ` `` under `# escape=```) makes the next character literal; a trailing escape
//!   is dropped.
//! - unset variables expand to the empty string.
//!
//! Which instructions are expanded is the builder's business, with Docker's list (see
//! [`crate::Instruction::expand`]): ADD, COPY, ENV, EXPOSE, FROM (image and `--platform`, with
//! global ARGs only), LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR, ARG, `RUN --mount` options,
//! `--chown`/`--chmod`/`--checksum`. Not RUN/CMD/ENTRYPOINT/SHELL/HEALTHCHECK command lines
//! (the shell does that), not ONBUILD (expanded when the trigger runs), not `COPY --from`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use wharf_types::{Classify, ErrorKind};

use crate::util::{go_quote, is_space};

/// Where the lexer reads variable values: an ENV/ARG scope, a map, or a closure.
pub trait Env {
    /// The value of `name`, `None` when it is unset (which differs from set-but-empty).
    fn lookup(&self, name: &str) -> Option<String>;
}

impl Env for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl Env for HashMap<String, String> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// `KEY=VALUE` strings as in a container config's `Env`; the first entry for a key wins
/// (Docker keeps keys unique, so order rarely matters).
impl Env for [String] {
    fn lookup(&self, name: &str) -> Option<String> {
        self.iter().find_map(|kv| match kv.split_once('=') {
            Some((k, v)) if k == name => Some(v.to_string()),
            None if kv == name => Some(String::new()),
            _ => None,
        })
    }
}

impl Env for Vec<String> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.as_slice().lookup(name)
    }
}

/// An [`Env`] from a closure.
pub struct FnEnv<F>(pub F);

impl<F: Fn(&str) -> Option<String>> Env for FnEnv<F> {
    fn lookup(&self, name: &str) -> Option<String> {
        (self.0)(name)
    }
}

/// The empty environment.
pub struct NoEnv;

impl Env for NoEnv {
    fn lookup(&self, _: &str) -> Option<String> {
        None
    }
}

/// Expansion failed, in BuildKit's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// A word cannot be processed, e.g.
    /// `failed to process "${FOO": syntax error: missing '}'`.
    #[error("failed to process {}: {message}", go_quote(word))]
    Process { word: String, message: String },
    /// The expanded value is not valid for the instruction, e.g. `invalid proto: xyz` for
    /// EXPOSE, a bad `RUN --mount` option, or a variable in `COPY --from`.
    #[error("{message}")]
    Validate { message: String },
}

impl ExpandError {
    /// The message without the `failed to process "…": ` prefix.
    pub fn message(&self) -> &str {
        match self {
            ExpandError::Process { message, .. } | ExpandError::Validate { message } => message,
        }
    }
}

impl Classify for ExpandError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }
}

/// The result of [`Lexer::expand_with_matches`]: the value and which variable names were
/// looked up and found (`matched`) or not found (`unmatched`) — the builder's record of which
/// build args a step used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    pub value: String,
    pub matched: BTreeSet<String>,
    pub unmatched: BTreeSet<String>,
}

/// Expand `word` with the default escape character `\`.
pub fn expand(word: &str, env: &dyn Env) -> Result<String, ExpandError> {
    Lexer::new('\\').expand(word, env)
}

/// Expand `word` and split it into words (quotes and escapes keep spaces inside a word; the
/// result of a `$VAR` is split on whitespace) — for EXPOSE and other multi-word arguments.
pub fn expand_words(word: &str, env: &dyn Env) -> Result<Vec<String>, ExpandError> {
    Lexer::new('\\').expand_words(word, env)
}

/// A configured shell-word processor. [`Lexer::new`] gives Docker's behaviour for instruction
/// arguments; the other switches exist for heredoc handling and are documented on each field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    /// `\` or `` ` `` (from `# escape=`).
    pub escape: char,
    /// Keep quote characters in the output (quotes still group).
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Treat quotes as ordinary characters (heredoc bodies).
    pub skip_process_quotes: bool,
    /// Leave references to unset variables as written (`$X`, `${X}` …).
    pub skip_unset_env: bool,
}

impl Lexer {
    pub fn new(escape: char) -> Self {
        Self { escape, raw_quotes: false, raw_escapes: false, skip_process_quotes: false, skip_unset_env: false }
    }

    /// The lexer used to expand heredoc bodies (`COPY <<EOF` with an unquoted delimiter):
    /// escape `\`, quotes literal.
    pub fn for_heredoc() -> Self {
        Self { skip_process_quotes: true, ..Self::new('\\') }
    }

    /// `word` with variables substituted and quotes/escapes removed; spaces are kept.
    pub fn expand(&self, word: &str, env: &dyn Env) -> Result<String, ExpandError> {
        self.run(word, env).map(|(v, _, _)| v.value)
    }

    /// `word` expanded and split into words.
    pub fn expand_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ExpandError> {
        self.run(word, env).map(|(_, w, _)| w)
    }

    /// Like [`Lexer::expand`], also reporting which variable names were looked up.
    pub fn expand_with_matches(&self, word: &str, env: &dyn Env) -> Result<Expansion, ExpandError> {
        self.run(word, env).map(|(v, _, _)| v)
    }

    fn run(&self, word: &str, env: &dyn Env) -> Result<(Expansion, Vec<String>, ()), ExpandError> {
        let mut sw = ShellWord {
            lex: *self,
            chars: word.chars().collect(),
            pos: 0,
            env,
            raw_escapes: self.raw_escapes,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        let raw = self.raw_escapes;
        match sw.process_stop_on(None, raw) {
            Ok((value, words)) => Ok((Expansion { value, matched: sw.matched, unmatched: sw.unmatched }, words, ())),
            Err(message) => Err(ExpandError::Process { word: word.to_string(), message }),
        }
    }
}

struct ShellWord<'a> {
    lex: Lexer,
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn Env,
    raw_escapes: bool,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

/// Word accumulation with BuildKit's rules: whitespace from expansions and unquoted text splits
/// words; quoted text and escaped characters never split.
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if is_space(c) {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }
    fn add_raw_char(&mut self, c: char) {
        self.buf.push(c);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        for c in s.chars() {
            self.add_char(c);
        }
    }
    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(std::mem::take(&mut self.buf));
        }
        self.words
    }
}

impl ShellWord<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        match self.env.lookup(name) {
            Some(v) => {
                self.matched.insert(name.to_string());
                Some(v)
            }
            None => {
                self.unmatched.insert(name.to_string());
                None
            }
        }
    }

    fn process_stop_on(&mut self, stop: Option<char>, raw_escapes: bool) -> Result<(String, Vec<String>), String> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.process_stop_on_inner(stop);
        self.raw_escapes = saved;
        r
    }

    fn process_stop_on_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words { buf: String::new(), words: Vec::new(), in_word: false };
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            let special = match ch {
                '$' => Some(self.process_dollar()?),
                '<' => Some(self.process_possible_heredoc()),
                '\'' if !self.lex.skip_process_quotes => Some(self.process_single_quote()?),
                '"' if !self.lex.skip_process_quotes => Some(self.process_double_quote()?),
                _ => None,
            };
            if let Some(tmp) = special {
                result.push_str(&tmp);
                if ch == '$' {
                    words.add_string(&tmp);
                } else {
                    words.add_raw_string(&tmp);
                }
                continue;
            }
            let mut ch = self.next().unwrap_or_default();
            if ch == self.lex.escape {
                if self.raw_escapes {
                    words.add_raw_char(ch);
                    result.push(ch);
                }
                match self.next() {
                    None => break,
                    Some(c) => ch = c,
                }
                words.add_raw_char(ch);
            } else {
                words.add_char(ch);
            }
            result.push(ch);
        }
        if let Some(stop) = stop {
            return Err(format!("unexpected end of statement while looking for matching {stop}"));
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let q = self.next().unwrap_or('\'');
        if self.lex.raw_quotes {
            out.push(q);
        }
        loop {
            match self.next() {
                None => {
                    return Err("unexpected end of statement while looking for matching single-quote".into());
                }
                Some('\'') => {
                    if self.lex.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let q = self.next().unwrap_or('"');
        if self.lex.raw_quotes {
            out.push(q);
        }
        loop {
            match self.peek() {
                None => {
                    return Err("unexpected end of statement while looking for matching double-quote".into());
                }
                Some('"') => {
                    self.next();
                    if self.lex.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    out.push_str(&v);
                }
                Some(_) => {
                    let mut ch = self.next().unwrap_or_default();
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.lex.escape => {
                                ch = c;
                                self.next();
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    fn process_possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.next();
        let mut out = String::from("<<");
        while let Some(c) = self.peek() {
            if matches!(c, '\t' | '\r' | ' ') {
                out.push(c);
                self.next();
            } else {
                break;
            }
        }
        out
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_numeric() {
                while let Some(c) = self.peek() {
                    if !c.is_numeric() {
                        break;
                    }
                    name.push(c);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !(ch.is_alphabetic() || ch.is_numeric() || ch == '_') {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }

    fn process_dollar(&mut self) -> Result<String, String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            _ => {}
        }
        let name = self.process_name();
        let ch = self.next();
        let mut chs: String = ch.map(String::from).unwrap_or_else(|| "\u{fffd}".into());
        match ch {
            Some('}') => {
                return Ok(match self.get_env(&name) {
                    Some(v) => v,
                    None if self.lex.skip_unset_env => format!("${{{name}}}"),
                    None => String::new(),
                });
            }
            Some('/') => return self.process_replace(&name),
            Some(':' | '+' | '-' | '?' | '#' | '%') => {}
            _ => return Err(format!("unsupported modifier ({chs}) in substitution")),
        }
        let mut op = ch.unwrap_or_default();
        let mut null_is_unset = false;
        if op == ':' {
            null_is_unset = true;
            let next = self.next();
            chs.push_str(&next.map(String::from).unwrap_or_else(|| "\u{fffd}".into()));
            op = next.unwrap_or('\u{fffd}');
        }
        let raw = op == '#' || op == '%';
        if null_is_unset && raw {
            return Err(format!("unsupported modifier ({chs}) in substitution"));
        }
        let word = match self.process_stop_on(Some('}'), raw) {
            Ok((w, _)) => w,
            Err(e) => {
                if self.peek().is_none() {
                    return Err("syntax error: missing '}'".into());
                }
                return Err(e);
            }
        };
        let value = self.get_env(&name);
        if self.lex.skip_unset_env && value.is_none() {
            return Ok(format!("${{{name}{chs}{word}}}"));
        }
        let set = value.is_some();
        let value = value.unwrap_or_default();
        match op {
            '-' => Ok(if !set || (null_is_unset && value.is_empty()) { word } else { value }),
            '+' => Ok(if !set || (null_is_unset && value.is_empty()) { String::new() } else { word }),
            '?' => {
                if !set {
                    let m = if word.is_empty() { "is not allowed to be unset".to_string() } else { word };
                    return Err(format!("{name}: {m}"));
                }
                if null_is_unset && value.is_empty() {
                    let m = if word.is_empty() { "is not allowed to be empty".to_string() } else { word };
                    return Err(format!("{name}: {m}"));
                }
                Ok(value)
            }
            '%' | '#' => {
                let (greedy, pat) = match word.strip_prefix(op) {
                    Some(rest) => (true, rest.to_string()),
                    None => (false, word),
                };
                let glob = Glob::parse(&pat).map_err(|e| format!("invalid pattern ({pat}) in substitution: {e}"))?;
                if op == '%' { Ok(glob.trim_suffix(&value, greedy)) } else { Ok(glob.trim_prefix(&value, greedy)) }
            }
            _ => Err(format!("unsupported modifier ({chs}) in substitution")),
        }
    }

    fn process_replace(&mut self, name: &str) -> Result<String, String> {
        let all = self.peek() == Some('/');
        if all {
            self.next();
        }
        let pattern = match self.process_stop_on(Some('/'), true) {
            Ok((p, _)) => p,
            Err(e) => {
                if self.peek().is_none() {
                    return Err("syntax error: missing '/' in ${}".into());
                }
                return Err(e);
            }
        };
        let replacement = match self.process_stop_on(Some('}'), true) {
            Ok((r, _)) => r,
            Err(e) => {
                if self.peek().is_none() {
                    return Err("syntax error: missing '}'".into());
                }
                return Err(e);
            }
        };
        let value = self.get_env(name);
        let Some(value) = value else {
            if self.lex.skip_unset_env {
                return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
            }
            return Ok(String::new());
        };
        let glob = Glob::parse(&pattern).map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
        Ok(glob.replace(&value, &replacement, all))
    }
}

/// A shell pattern of `${VAR#pat}` and friends: `*` any run, `?` any one character, the rest
/// literal (`\*`, `\?`, `\\` literal; `\}` and `\/` drop the backslash).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Star,
    Any,
    Lit(char),
}

struct Glob(Vec<Tok>);

impl Glob {
    fn parse(pattern: &str) -> Result<Glob, String> {
        let mut toks = Vec::new();
        let mut it = pattern.chars().peekable();
        while let Some(c) = it.next() {
            match c {
                '*' => toks.push(Tok::Star),
                '?' => toks.push(Tok::Any),
                '\\' => {
                    if matches!(it.peek(), Some('}' | '/')) {
                        continue;
                    }
                    match it.next() {
                        Some(e @ ('*' | '?' | '\\')) => toks.push(Tok::Lit(e)),
                        Some(e) => return Err(format!("invalid escape '\\{e}'")),
                        None => return Err("invalid escape '\\'".into()),
                    }
                }
                c => toks.push(Tok::Lit(c)),
            }
        }
        Ok(Glob(toks))
    }

    /// Every end position `e` such that the pattern matches `s[start..e]` (as char indices).
    fn match_ends(&self, s: &[char], start: usize) -> Vec<usize> {
        // NFA simulation over pattern positions.
        let n = self.0.len();
        let mut states = vec![false; n + 1];
        states[0] = true;
        let close = |states: &mut Vec<bool>| {
            for i in 0..n {
                if states[i] && self.0[i] == Tok::Star {
                    states[i + 1] = true;
                }
            }
        };
        close(&mut states);
        let mut ends = Vec::new();
        if states[n] {
            ends.push(start);
        }
        for (pos, &c) in s.iter().enumerate().skip(start) {
            let mut next = vec![false; n + 1];
            for i in 0..n {
                if !states[i] {
                    continue;
                }
                match &self.0[i] {
                    Tok::Star => next[i] = true,
                    Tok::Any => next[i + 1] = true,
                    Tok::Lit(l) if *l == c => next[i + 1] = true,
                    Tok::Lit(_) => {}
                }
            }
            close(&mut next);
            if !next.iter().any(|b| *b) {
                break;
            }
            states = next;
            if states[n] {
                ends.push(pos + 1);
            }
        }
        ends
    }

    fn trim_prefix(&self, value: &str, greedy: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let ends = self.match_ends(&chars, 0);
        let end = if greedy { ends.last() } else { ends.first() };
        match end {
            Some(&e) => chars[e..].iter().collect(),
            None => value.to_string(),
        }
    }

    fn trim_suffix(&self, value: &str, greedy: bool) -> String {
        let rev = Glob(self.0.iter().rev().cloned().collect());
        let chars: Vec<char> = value.chars().rev().collect();
        let ends = rev.match_ends(&chars, 0);
        let end = if greedy { ends.last() } else { ends.first() };
        match end {
            Some(&e) => chars[e..].iter().rev().collect(),
            None => value.to_string(),
        }
    }

    /// The leftmost match at or after `from`, longest at that start.
    fn find(&self, s: &[char], from: usize) -> Option<(usize, usize)> {
        (from..=s.len()).find_map(|st| self.match_ends(s, st).last().map(|&e| (st, e)))
    }

    fn replace(&self, value: &str, repl: &str, all: bool) -> String {
        let s: Vec<char> = value.chars().collect();
        if !all {
            return match self.find(&s, 0) {
                Some((a, b)) => {
                    let mut out: String = s[..a].iter().collect();
                    out.push_str(repl);
                    out.extend(&s[b..]);
                    out
                }
                None => value.to_string(),
            };
        }
        // Go's regexp ReplaceAll: non-overlapping matches; an empty match right after a
        // previous match is not replaced; always advance.
        let mut out = String::new();
        let mut last_end = 0;
        let mut search = 0;
        let mut first = true;
        while search <= s.len() {
            let Some((a, b)) = self.find(&s, search) else {
                break;
            };
            out.extend(&s[last_end..a]);
            if b > last_end || a == 0 && first {
                out.push_str(repl);
            }
            first = false;
            last_end = b;
            search = if search + 1 > b { search + 1 } else { b };
        }
        out.extend(&s[last_end.min(s.len())..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [("PWD", "/home"), ("SHELL", "bash"), ("NULL", ""), ("PATHX", "/usr/local/bin:/usr/bin"), ("F", "a.tar.gz")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn x(w: &str) -> Result<String, String> {
        Lexer::new('\\').expand(w, &env()).map_err(|e| e.message().to_string())
    }

    #[test]
    fn plain_and_braced() {
        assert_eq!(x("he$PWD").unwrap(), "he/home");
        assert_eq!(x("he${PWD}x").unwrap(), "he/homex");
        assert_eq!(x("$UNSET-x").unwrap(), "-x");
        assert_eq!(x("$.").unwrap(), "$.");
        assert_eq!(x("a$").unwrap(), "a$");
        assert_eq!(x("$1x").unwrap(), "x");
        assert_eq!(x("$$").unwrap(), "");
        assert_eq!(x("${aaa}}").unwrap(), "}");
    }

    #[test]
    fn defaults_and_alternatives() {
        assert_eq!(x("${X:-def}").unwrap(), "def");
        assert_eq!(x("${NULL:-def}").unwrap(), "def");
        assert_eq!(x("${NULL-def}").unwrap(), "");
        assert_eq!(x("${X-def}").unwrap(), "def");
        assert_eq!(x("${PWD:+alt}").unwrap(), "alt");
        assert_eq!(x("${NULL:+alt}").unwrap(), "");
        assert_eq!(x("${NULL+alt}").unwrap(), "alt");
        assert_eq!(x("${X+alt}").unwrap(), "");
        assert_eq!(x("${X:-${Y:-${PWD}}}").unwrap(), "/home");
        assert_eq!(x("${X:-a b}").unwrap(), "a b");
        assert_eq!(x("${X:-\\$PWD:}").unwrap(), "$PWD:");
    }

    #[test]
    fn required_values() {
        assert_eq!(x("${X?}").unwrap_err(), "X: is not allowed to be unset");
        assert_eq!(x("${NULL:?}").unwrap_err(), "NULL: is not allowed to be empty");
        assert_eq!(x("${X:?give it}").unwrap_err(), "X: give it");
        assert_eq!(x("${NULL?}").unwrap(), "");
    }

    #[test]
    fn pattern_removal() {
        assert_eq!(x("${F#*.}").unwrap(), "tar.gz");
        assert_eq!(x("${F##*.}").unwrap(), "gz");
        assert_eq!(x("${F%.*}").unwrap(), "a.tar");
        assert_eq!(x("${F%%.*}").unwrap(), "a");
        assert_eq!(x("${PATHX%%:*}").unwrap(), "/usr/local/bin");
        assert_eq!(x("${PATHX#nomatch}").unwrap(), "/usr/local/bin:/usr/bin");
        assert_eq!(x("${F#a?t}").unwrap(), "ar.gz");
        assert_eq!(x("${F:#x}").unwrap_err(), "unsupported modifier (:#) in substitution");
        assert_eq!(x("${F#\\x}").unwrap_err(), "invalid pattern (\\x) in substitution: invalid escape '\\x'");
    }

    #[test]
    fn replacement() {
        assert_eq!(x("${F/./-}").unwrap(), "a-tar.gz");
        assert_eq!(x("${F//./-}").unwrap(), "a-tar-gz");
        assert_eq!(x("${PATHX//:/ }").unwrap(), "/usr/local/bin /usr/bin");
        assert_eq!(x("${F/t*r/X}").unwrap(), "a.X.gz");
        assert_eq!(x("${F/zz/X}").unwrap(), "a.tar.gz");
        assert_eq!(x("${X/a/b}").unwrap(), "");
        assert_eq!(x("${F/a").unwrap_err(), "syntax error: missing '/' in ${}");
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(x("${}").unwrap_err(), "syntax error: bad substitution");
        assert_eq!(x("${:-x}").unwrap_err(), "syntax error: bad substitution");
        assert_eq!(x("${PWD").unwrap_err(), "unsupported modifier (\u{fffd}) in substitution");
        assert_eq!(x("${PWD:-x").unwrap_err(), "syntax error: missing '}'");
        assert_eq!(x("${PWD:=x}").unwrap_err(), "unsupported modifier (:=) in substitution");
        assert_eq!(x("${.}").unwrap_err(), "unsupported modifier (.) in substitution");
        let e = Lexer::new('\\').expand("${", &NoEnv).unwrap_err();
        assert_eq!(e.to_string(), "failed to process \"${\": syntax error: missing '}'");
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(x("he'll'o").unwrap(), "hello");
        assert_eq!(x("'$PWD'").unwrap(), "$PWD");
        assert_eq!(x("\"$PWD\"").unwrap(), "/home");
        assert_eq!(x("\"he'$PWD'\"").unwrap(), "he'/home'");
        assert_eq!(x("he\\$PWD").unwrap(), "he$PWD");
        assert_eq!(x("he\\\\$PWD").unwrap(), "he\\/home");
        assert_eq!(x("\"a\\tb\"").unwrap(), "a\\tb");
        assert_eq!(x("a\\tb").unwrap(), "atb");
        assert_eq!(x("hello\\").unwrap(), "hello");
        assert_eq!(x("'a\\'").unwrap(), "a\\");
        assert_eq!(x("he'llo").unwrap_err(), "unexpected end of statement while looking for matching single-quote");
        assert_eq!(x("\"hello").unwrap_err(), "unexpected end of statement while looking for matching double-quote");
    }

    #[test]
    fn backtick_escape() {
        let lex = Lexer::new('`');
        assert_eq!(lex.expand("c:\\dir`$PWD", &env()).unwrap(), "c:\\dir$PWD");
        assert_eq!(lex.expand("c:\\$PWD", &env()).unwrap(), "c:\\/home");
    }

    #[test]
    fn words() {
        let mut e = env();
        e.insert("PORTS".into(), "80 443/udp".into());
        let w = |s: &str| Lexer::new('\\').expand_words(s, &e).unwrap();
        assert_eq!(w("$PORTS 22"), vec!["80", "443/udp", "22"]);
        assert_eq!(w("\"$PORTS\" 22"), vec!["80 443/udp", "22"]);
        assert_eq!(w("a\\ b c"), vec!["a b", "c"]);
        assert_eq!(w("  a   b  "), vec!["a", "b"]);
        assert_eq!(w("'' x"), vec!["x"]);
        assert_eq!(w("x${NULL}y"), vec!["xy"]);
    }

    #[test]
    fn matches_are_recorded() {
        let r = Lexer::new('\\').expand_with_matches("$PWD ${NOPE:-x} ${SHELL}", &env()).unwrap();
        assert_eq!(r.value, "/home x bash");
        assert_eq!(r.matched.into_iter().collect::<Vec<_>>(), vec!["PWD", "SHELL"]);
        assert_eq!(r.unmatched.into_iter().collect::<Vec<_>>(), vec!["NOPE"]);
    }

    #[test]
    fn skip_unset_keeps_references() {
        let lex = Lexer { skip_unset_env: true, ..Lexer::new('\\') };
        assert_eq!(lex.expand("$X ${Y} ${Z:-d} $PWD", &env()).unwrap(), "$X ${Y} ${Z:-d} /home");
    }

    #[test]
    fn heredoc_lexer_keeps_quotes() {
        let lex = Lexer::for_heredoc();
        assert_eq!(lex.expand("echo \"$PWD\" '$SHELL'\n", &env()).unwrap(), "echo \"/home\" 'bash'\n");
    }

    #[test]
    fn env_impls() {
        let v = vec!["A=1".to_string(), "B=".to_string()];
        assert_eq!(expand("$A-$B-$C", &v).unwrap(), "1--");
        let f = FnEnv(|k: &str| (k == "Z").then(|| "zz".to_string()));
        assert_eq!(expand("${Z}", &f).unwrap(), "zz");
    }
}
