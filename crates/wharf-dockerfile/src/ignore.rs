//! `.dockerignore`: reading the file and Docker's pattern matcher (`moby/patternmatcher`).
//!
//! File rules ([`read_ignore_file`]): a UTF-8 BOM is dropped; lines starting with `#` are
//! comments; each other line is trimmed, empty ones skipped; a leading `!` makes an
//! *exclusion* (re-include) pattern; the pattern is cleaned like Go's `filepath.Clean`
//! (`./a//b/../c` → `a/c`) and a leading `/` removed (`/foo` ≡ `foo`).
//!
//! Pattern rules ([`PatternMatcher`]): `*` matches any run of non-`/` characters, `?` one
//! non-`/` character, `[a-z]` / `[^a-z]` a character class, `\` escapes the next character;
//! `**` matches any number of directories (including none) — `**/x`, `a/**/b`, `a/**`; the
//! match is against the whole slash-separated path relative to the context root. A pattern
//! also excludes everything below a directory it matches. Patterns apply in order and the
//! last one that matches a path decides: `!` re-includes, so
//! `docs` + `!docs/README.md` ships only that one file of `docs/`.
//!
//! The Dockerfile and the ignore file itself: the docker CLI always sends them, appending
//! `!.dockerignore` and `!<Dockerfile>` when the patterns would exclude them
//! ([`trim_build_files_from_excludes`]); the daemon then uses them but does not COPY them
//! unless the patterns allow. That is the caller's business; this module only matches.
//! BuildKit also reads `<Dockerfile>.dockerignore` next to the Dockerfile in preference to
//! the context's `.dockerignore` ([`ignore_file_candidates`]).

pub use wharf_types::path::clean as go_clean;
use wharf_types::{Classify, ErrorKind};

/// A pattern that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    /// Go's `filepath.ErrBadPattern`, for e.g. `[a-`, `[]`, a trailing `\`.
    #[error("syntax error in pattern")]
    BadPattern { pattern: String },
    /// A lone `!`.
    #[error("illegal exclusion pattern: \"!\"")]
    IllegalExclusion,
}

impl Classify for IgnoreError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }
}

/// The patterns of an ignore file, in order (Docker's `ignorefile.ReadAll`).
pub fn read_ignore_file(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut p = line.trim();
        if p.is_empty() {
            continue;
        }
        let invert = p.starts_with('!');
        if invert {
            p = p[1..].trim();
        }
        let mut pattern = String::new();
        if !p.is_empty() {
            pattern = go_clean(p);
            if pattern.len() > 1 && pattern.starts_with('/') {
                pattern.remove(0);
            }
        }
        if invert {
            pattern.insert(0, '!');
        }
        out.push(pattern);
    }
    out
}

/// Go's `filepath.Dir` for slash-separated paths.
fn go_dir(path: &str) -> String {
    match path.rfind('/') {
        None => ".".into(),
        Some(i) => go_clean(&path[..=i]),
    }
}

/// The ignore files to try for a Dockerfile at `dockerfile` (path relative to the context),
/// in order: `<dockerfile>.dockerignore`, then `.dockerignore`.
pub fn ignore_file_candidates(dockerfile: &str) -> Vec<String> {
    let df = dockerfile.trim_start_matches("./");
    let mut v = Vec::new();
    if !df.is_empty() {
        v.push(format!("{df}.dockerignore"));
    }
    v.push(".dockerignore".into());
    v
}

/// What the docker CLI does before sending a context: re-include `.dockerignore` and the
/// Dockerfile when the patterns exclude them (not the Dockerfile when it came from stdin).
pub fn trim_build_files_from_excludes(
    excludes: &[String],
    dockerfile: &str,
    dockerfile_from_stdin: bool,
) -> Vec<String> {
    let mut out = excludes.to_vec();
    let deprecated_matches = |file: &str, pats: &[String]| -> bool {
        let Ok(pm) = PatternMatcher::new(pats) else {
            return false;
        };
        let file = go_clean(file);
        file != "." && pm.matches(&file)
    };
    if deprecated_matches(".dockerignore", &out) {
        out.push("!.dockerignore".into());
    }
    if deprecated_matches(dockerfile, &out) && !dockerfile_from_stdin {
        out.push(format!("!{dockerfile}"));
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchType {
    Exact,
    Prefix,
    Suffix,
    Regexp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `*`: `[^/]*`
    Star,
    /// `?`: `[^/]`
    Any,
    /// `**` followed by more: `(.*/)?`
    DirStar,
    /// trailing `**`: `.*`
    Tail,
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
}

/// One compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    cleaned: String,
    exclusion: bool,
    dirs: usize,
    match_type: MatchType,
    toks: Vec<Tok>,
}

impl Pattern {
    /// The pattern as cleaned, without `!`.
    pub fn as_str(&self) -> &str {
        &self.cleaned
    }

    /// A `!` pattern.
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    fn compile(cleaned: &str) -> Result<(MatchType, Vec<Tok>), ()> {
        let chars: Vec<char> = cleaned.chars().collect();
        let mut toks = Vec::new();
        let mut typ = MatchType::Exact;
        let mut i = 0;
        let mut iter = 0;
        while i < chars.len() {
            let ch = chars[i];
            i += 1;
            match ch {
                '*' if chars.get(i) == Some(&'*') => {
                    i += 1;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    if i >= chars.len() {
                        if typ == MatchType::Exact {
                            typ = MatchType::Prefix;
                        } else {
                            toks.push(Tok::Tail);
                            typ = MatchType::Regexp;
                        }
                    } else {
                        toks.push(Tok::DirStar);
                        typ = MatchType::Regexp;
                    }
                    if iter == 0 {
                        typ = MatchType::Suffix;
                    }
                }
                '*' => {
                    toks.push(Tok::Star);
                    typ = MatchType::Regexp;
                }
                '?' => {
                    toks.push(Tok::Any);
                    typ = MatchType::Regexp;
                }
                '\\' => {
                    if let Some(&n) = chars.get(i) {
                        i += 1;
                        toks.push(Tok::Lit(n));
                        typ = MatchType::Regexp;
                    } else {
                        toks.push(Tok::Lit('\\'));
                    }
                }
                '[' => {
                    typ = MatchType::Regexp;
                    let mut negated = false;
                    if chars.get(i) == Some(&'^') {
                        negated = true;
                        i += 1;
                    }
                    let mut items = Vec::new();
                    loop {
                        let c = *chars.get(i).ok_or(())?;
                        if c == ']' && !items.is_empty() {
                            i += 1;
                            break;
                        }
                        let mut lo = c;
                        i += 1;
                        if lo == '\\' {
                            lo = *chars.get(i).ok_or(())?;
                            i += 1;
                        }
                        let mut hi = lo;
                        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
                            hi = chars[i + 1];
                            i += 2;
                            if hi == '\\' {
                                hi = *chars.get(i).ok_or(())?;
                                i += 1;
                            }
                            if hi < lo {
                                return Err(());
                            }
                        }
                        items.push((lo, hi));
                    }
                    toks.push(Tok::Class { negated, items });
                }
                ']' => {
                    toks.push(Tok::Lit(']'));
                    typ = MatchType::Regexp;
                }
                c => toks.push(Tok::Lit(c)),
            }
            iter += 1;
        }
        Ok((typ, toks))
    }

    fn matches(&self, path: &str) -> bool {
        match self.match_type {
            MatchType::Exact => path == self.cleaned,
            MatchType::Prefix => path.starts_with(&self.cleaned[..self.cleaned.len() - 2]),
            MatchType::Suffix => {
                let suffix = &self.cleaned[2..];
                path.ends_with(suffix) || (suffix.starts_with('/') && path == &suffix[1..])
            }
            MatchType::Regexp => {
                let p: Vec<char> = path.chars().collect();
                let mut memo = vec![None; (self.toks.len() + 1) * (p.len() + 1)];
                match_toks(&self.toks, 0, &p, 0, &mut memo)
            }
        }
    }
}

fn match_toks(toks: &[Tok], t: usize, p: &[char], i: usize, memo: &mut [Option<bool>]) -> bool {
    let key = t * (p.len() + 1) + i;
    if let Some(r) = memo[key] {
        return r;
    }
    let r = match toks.get(t) {
        None => i == p.len(),
        Some(Tok::Lit(c)) => p.get(i) == Some(c) && match_toks(toks, t + 1, p, i + 1, memo),
        Some(Tok::Any) => p.get(i).is_some_and(|c| *c != '/') && match_toks(toks, t + 1, p, i + 1, memo),
        Some(Tok::Star) => {
            let mut j = i;
            loop {
                if match_toks(toks, t + 1, p, j, memo) {
                    break true;
                }
                if j < p.len() && p[j] != '/' {
                    j += 1;
                } else {
                    break false;
                }
            }
        }
        Some(Tok::Tail) => true,
        Some(Tok::DirStar) => {
            // (.*/)? : nothing, or anything ending with '/'
            match_toks(toks, t + 1, p, i, memo)
                || (i..p.len()).any(|j| p[j] == '/' && match_toks(toks, t + 1, p, j + 1, memo))
        }
        Some(Tok::Class { negated, items }) => {
            p.get(i).is_some_and(|c| items.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated)
                && match_toks(toks, t + 1, p, i + 1, memo)
        }
    };
    memo[key] = Some(r);
    r
}

/// Go's `filepath.Match` syntax check.
fn validate_go_pattern(p: &str) -> bool {
    let c: Vec<char> = p.chars().collect();
    let mut i = 0;
    let esc = |i: &mut usize| -> bool {
        match c.get(*i) {
            None | Some('-' | ']') => false,
            Some('\\') => {
                *i += 1;
                if c.get(*i).is_none() {
                    return false;
                }
                *i += 1;
                true
            }
            Some(_) => {
                *i += 1;
                true
            }
        }
    };
    while i < c.len() {
        match c[i] {
            '\\' => {
                i += 1;
                if i >= c.len() {
                    return false;
                }
                i += 1;
            }
            '[' => {
                i += 1;
                if c.get(i) == Some(&'^') {
                    i += 1;
                }
                let mut n = 0;
                loop {
                    if i >= c.len() {
                        return false;
                    }
                    if c[i] == ']' && n > 0 {
                        i += 1;
                        break;
                    }
                    if !esc(&mut i) {
                        return false;
                    }
                    if c.get(i) == Some(&'-') {
                        i += 1;
                        if !esc(&mut i) {
                            return false;
                        }
                    }
                    n += 1;
                }
            }
            _ => i += 1,
        }
    }
    true
}

/// Which patterns matched a directory, for [`PatternMatcher::matches_using_parent_results`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

/// Docker's pattern matcher over a list of patterns (see the module doc for the rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

impl PatternMatcher {
    /// Compile patterns (already read with [`read_ignore_file`], or raw: they are trimmed and
    /// cleaned again here, as Docker does).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, IgnoreError> {
        let mut out = Vec::new();
        let mut exclusions = false;
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let mut p = go_clean(p);
            let mut exclusion = false;
            if let Some(rest) = p.strip_prefix('!') {
                if rest.is_empty() {
                    return Err(IgnoreError::IllegalExclusion);
                }
                exclusion = true;
                exclusions = true;
                p = rest.to_string();
            }
            if !validate_go_pattern(&p) {
                return Err(IgnoreError::BadPattern { pattern: p });
            }
            let (match_type, toks) =
                Pattern::compile(&p).map_err(|_| IgnoreError::BadPattern { pattern: p.clone() })?;
            out.push(Pattern { dirs: p.split('/').count(), cleaned: p, exclusion, match_type, toks });
        }
        Ok(Self { patterns: out, exclusions })
    }

    /// Parse an ignore file's text and compile it.
    pub fn from_ignore_file(text: &str) -> Result<Self, IgnoreError> {
        Self::new(&read_ignore_file(text))
    }

    /// Whether any pattern is a `!` exclusion.
    pub fn exclusions(&self) -> bool {
        self.exclusions
    }

    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether `file` (clean, slash-separated, relative to the context root) is excluded:
    /// the last pattern matching it or one of its parent directories decides
    /// (Docker's `MatchesOrParentMatches`).
    pub fn matches_or_parent_matches(&self, file: &str) -> bool {
        let parent = go_dir(file);
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for pat in &self.patterns {
            if pat.exclusion != matched {
                continue;
            }
            let mut m = pat.matches(file);
            if !m && parent != "." {
                m = (0..parent_dirs.len()).any(|i| pat.matches(&parent_dirs[..=i].join("/")));
            }
            if m {
                matched = !pat.exclusion;
            }
        }
        matched
    }

    /// Docker's deprecated `Matches`: like [`Self::matches_or_parent_matches`] but checks only
    /// the parent directory as deep as the pattern. The CLI still uses it to decide whether to
    /// re-include the Dockerfile; kept for that.
    pub fn matches(&self, file: &str) -> bool {
        let parent = go_dir(file);
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for pat in &self.patterns {
            if pat.exclusion != matched {
                continue;
            }
            let mut m = pat.matches(file);
            if !m && parent != "." && pat.dirs <= parent_dirs.len() {
                m = pat.matches(&parent_dirs[..pat.dirs].join("/"));
            }
            if m {
                matched = !pat.exclusion;
            }
        }
        matched
    }

    /// The walking form: `parent` is the [`MatchInfo`] of `file`'s directory (default for
    /// entries of the root). Returns whether `file` is excluded and its own [`MatchInfo`] to
    /// pass to its children.
    pub fn matches_using_parent_results(&self, file: &str, parent: &MatchInfo) -> (bool, MatchInfo) {
        let mut info = MatchInfo { parent_matched: vec![false; self.patterns.len()] };
        let have_parent = parent.parent_matched.len() == self.patterns.len();
        let mut matched = false;
        for (i, pat) in self.patterns.iter().enumerate() {
            let mut m = have_parent && parent.parent_matched[i];
            if !m {
                if pat.exclusion != matched {
                    continue;
                }
                m = pat.matches(file);
                if !m && !have_parent {
                    let dir = go_dir(file);
                    if dir != "." {
                        let dirs: Vec<&str> = dir.split('/').collect();
                        m = (0..dirs.len()).any(|j| pat.matches(&dirs[..=j].join("/")));
                    }
                }
            }
            info.parent_matched[i] = m;
            if m {
                matched = !pat.exclusion;
            }
        }
        (matched, info)
    }

    /// For an excluded directory: whether a walk may skip it entirely. Not when some `!`
    /// pattern starts with the directory's path (Docker's archive walker rule; `!` patterns
    /// with wildcards in the directory part do not keep a directory open, as in Docker).
    pub fn can_skip_dir(&self, dir: &str) -> bool {
        if !self.exclusions {
            return true;
        }
        let dir_slash = format!("{dir}/");
        !self.patterns.iter().any(|p| p.exclusion && format!("{}/", p.cleaned).starts_with(&dir_slash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(patterns: &[&str], file: &str) -> bool {
        PatternMatcher::new(patterns).unwrap().matches_or_parent_matches(file)
    }

    #[test]
    fn reads_files_like_docker() {
        let text = "\u{feff}# comment\n  *.md  \n\n/abs/path\n! keep.md\n./a//b/../c/\n #not a comment\n";
        assert_eq!(read_ignore_file(text), vec!["*.md", "abs/path", "!keep.md", "a/c", "#not a comment"]);
    }

    #[test]
    fn go_clean_cases() {
        for (i, o) in [
            ("", "."),
            ("a/../..", ".."),
            ("/../a", "/a"),
            ("a/./b/", "a/b"),
            ("//a", "/a"),
            ("/", "/"),
            ("../../x", "../../x"),
        ] {
            assert_eq!(go_clean(i), o, "{i}");
        }
    }

    #[test]
    fn docker_documented_examples() {
        // From the .dockerignore documentation.
        let pats = ["*/temp*", "*/*/temp*", "temp?"];
        assert!(m(&pats, "somedir/temporary.txt"));
        assert!(m(&pats, "somedir/temp"));
        assert!(m(&pats, "somedir/subdir/temporary.txt"));
        assert!(m(&pats, "tempa"));
        assert!(m(&pats, "tempb"));
        assert!(!m(&pats, "temp"));
        assert!(!m(&pats, "temporary.txt"));
        assert!(!m(&pats, "a/b/c/temp.txt"));
        // ** matches any number of directories
        assert!(m(&["**/*.go"], "main.go"));
        assert!(m(&["**/*.go"], "a/b/c/main.go"));
        assert!(!m(&["**/*.go"], "main.golang"));
        // exceptions, in order
        assert!(!m(&["*.md", "!README.md"], "README.md"));
        assert!(m(&["*.md", "!README.md"], "CHANGES.md"));
        assert!(!m(&["*.md", "!README*.md", "README-secret.md"], "README.md"));
        assert!(m(&["*.md", "!README*.md", "README-secret.md"], "README-secret.md"));
        assert!(m(&["*.md", "README-secret.md", "!README*.md"], "CHANGES.md"));
        assert!(!m(&["*.md", "README-secret.md", "!README*.md"], "README-secret.md"));
    }

    #[test]
    fn directories_and_children() {
        assert!(m(&["node_modules"], "node_modules/x/index.js"));
        assert!(PatternMatcher::from_ignore_file("/build\n").unwrap().matches_or_parent_matches("build/out.o"));
        assert!(!m(&["/build"], "build/out.o"), "only the file reader strips the leading slash");
        assert!(!m(&["build"], "src/build/out.o"));
        assert!(m(&["**/build"], "src/build/out.o"));
        // a directory excluded, one child re-included
        let pats = ["docs", "!docs/README.md"];
        assert!(!m(&pats, "docs/README.md"));
        assert!(m(&pats, "docs/other.md"));
        assert!(m(&pats, "docs"));
        let pm = PatternMatcher::new(&pats).unwrap();
        assert!(!pm.can_skip_dir("docs"));
        assert!(pm.can_skip_dir("other"));
        let pm = PatternMatcher::new(&["docs"]).unwrap();
        assert!(pm.can_skip_dir("docs"));
    }

    #[test]
    fn double_star_forms() {
        assert!(m(&["a/**/b"], "a/b"));
        assert!(m(&["a/**/b"], "a/x/y/b"));
        assert!(!m(&["a/**/b"], "a/xb"));
        assert!(m(&["a/**"], "a/x/y"));
        assert!(m(&["**"], "anything/at/all"));
        assert!(m(&["foo**bar"], "foo/x/bar"));
        assert!(!m(&["foo**bar"], "fooxbar"));
        // Docker's literal-suffix shortcut for a leading **
        assert!(m(&["**foo"], "xfoo"));
        assert!(m(&["**/foo"], "foo"));
        assert!(!m(&["**/foo"], "xfoo"));
    }

    #[test]
    fn classes_escapes_and_wildcards() {
        assert!(m(&["file[0-9].txt"], "file3.txt"));
        assert!(!m(&["file[0-9].txt"], "filex.txt"));
        assert!(m(&["file[^0-9].txt"], "filex.txt"));
        assert!(m(&["a\\*b"], "a*b"));
        assert!(!m(&["a\\*b"], "axb"));
        assert!(!m(&["*.txt"], "dir/a.txt"));
        assert!(m(&["*/a.txt"], "dir/a.txt"));
        assert!(m(&["?.txt"], "a.txt"));
        assert!(!m(&["?.txt"], "ab.txt"));
        assert!(m(&["a.b"], "a.b"));
        assert!(!m(&["a.b"], "axb"));
    }

    #[test]
    fn bad_patterns() {
        assert_eq!(PatternMatcher::new(&["[a-"]).unwrap_err().to_string(), "syntax error in pattern");
        assert_eq!(PatternMatcher::new(&["[]"]).unwrap_err().to_string(), "syntax error in pattern");
        assert_eq!(PatternMatcher::new(&["a\\"]).unwrap_err().to_string(), "syntax error in pattern");
        assert_eq!(PatternMatcher::new(&["!"]).unwrap_err().to_string(), "illegal exclusion pattern: \"!\"");
    }

    #[test]
    fn walking_with_parent_results() {
        let pm = PatternMatcher::new(&["docs", "!docs/keep"]).unwrap();
        let (ex, info) = pm.matches_using_parent_results("docs", &MatchInfo::default());
        assert!(ex);
        let (ex, _) = pm.matches_using_parent_results("docs/keep", &info);
        assert!(!ex);
        let (ex, _) = pm.matches_using_parent_results("docs/drop", &info);
        assert!(ex);
    }

    #[test]
    fn build_files_are_re_included() {
        let ex = vec!["*".to_string()];
        assert_eq!(
            trim_build_files_from_excludes(&ex, "Dockerfile", false),
            vec!["*", "!.dockerignore", "!Dockerfile"]
        );
        assert_eq!(trim_build_files_from_excludes(&ex, "Dockerfile", true), vec!["*", "!.dockerignore"]);
        let ex = vec!["*.md".to_string()];
        assert_eq!(trim_build_files_from_excludes(&ex, "Dockerfile", false), vec!["*.md"]);
    }

    #[test]
    fn candidates() {
        assert_eq!(
            ignore_file_candidates("build/app.Dockerfile"),
            vec!["build/app.Dockerfile.dockerignore", ".dockerignore"]
        );
    }
}
