//! ARG scoping, as Docker does it.
//!
//! - ARGs before the first FROM are *global*: [`GlobalArgs::evaluate`] gives their values
//!   (a `--build-arg` wins over the default; defaults may use earlier global ARGs). Only FROM
//!   lines (image and `--platform`) see them.
//! - Inside a stage an ARG is in scope from its declaration to the end of the stage
//!   ([`StageArgs::declare`]). Its value is the `--build-arg` if given, else its default
//!   (expanded with the stage's ENV and earlier ARGs), else the global ARG of that name
//!   (`ARG VERSION` re-declares a global one), else it is declared without a value.
//! - ENV always wins over an ARG of the same name ([`ScopeEnv`]).
//! - RUN gets the ARGs with values as environment variables (not persisted in the image), and
//!   their `KEY=VALUE`s are part of the legacy builder's cache key
//!   ([`StageArgs::run_env`], [`StageArgs::cache_key_prefix`]).
//! - The proxy variables ([`BUILTIN_ARGS`]) need no ARG: given as build args they reach RUN, but
//!   stay out of the cache key unless declared.
//! - Build args that no ARG declared are reported as "not consumed"
//!   ([`unused_build_args`], Docker's `[Warning] One or more build-args [X] were not consumed`).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use crate::error::ParseError;
use crate::expand::{Env, ExpandError, Lexer};
use crate::instruction::{ArgDecl, Instruction, InstructionKind};

/// Build args Docker passes without an ARG declaration, and keeps out of the cache key.
pub const BUILTIN_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The values of the global (pre-FROM) ARGs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobalArgs {
    /// Every global ARG that has a value, plus the `predefined` ones.
    pub values: BTreeMap<String, String>,
    /// Every name declared by a global ARG, with or without a value.
    pub declared: BTreeSet<String>,
}

impl GlobalArgs {
    /// Evaluate the global ARG instructions in order. `predefined` are values available to FROM
    /// without a declaration (BuildKit's `TARGETPLATFORM`, `BUILDPLATFORM`…; empty for the
    /// legacy builder); declared ARGs override them.
    pub fn evaluate(
        global_args: &[Instruction],
        build_args: &BTreeMap<String, String>,
        predefined: &BTreeMap<String, String>,
        lex: &Lexer,
    ) -> Result<GlobalArgs, ParseError> {
        let mut g = GlobalArgs { values: predefined.clone(), declared: BTreeSet::new() };
        for inst in global_args {
            let InstructionKind::Arg(decls) = &inst.kind else {
                continue;
            };
            for d in decls {
                g.declared.insert(d.name.clone());
                let value = match (build_args.get(&d.name), &d.default) {
                    (Some(v), _) => Some(v.clone()),
                    (None, Some(def)) => Some(
                        lex.expand(def, &g.values)
                            .map_err(|e| ParseError::Instruction { line: inst.line, message: e.to_string() })?,
                    ),
                    (None, None) => None,
                };
                if let Some(v) = value {
                    g.values.insert(d.name.clone(), v);
                }
            }
        }
        Ok(g)
    }

    /// The environment FROM lines are expanded with.
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.values
    }
}

/// The ARGs in scope in one stage.
#[derive(Debug, Clone)]
pub struct StageArgs<'a> {
    globals: &'a GlobalArgs,
    build_args: &'a BTreeMap<String, String>,
    /// Declared names with their value, in declaration order (a re-declaration replaces).
    declared: Vec<(String, Option<String>)>,
}

impl<'a> StageArgs<'a> {
    /// An empty scope at the start of a stage.
    pub fn new(globals: &'a GlobalArgs, build_args: &'a BTreeMap<String, String>) -> Self {
        Self { globals, build_args, declared: Vec::new() }
    }

    /// Apply one `ARG` declaration. `stage_env` is the stage's current ENV (`KEY=VALUE`), used
    /// with the ARGs already in scope to expand a default value.
    pub fn declare(&mut self, decl: &ArgDecl, lex: &Lexer, stage_env: &[String]) -> Result<(), ExpandError> {
        let value = if let Some(v) = self.build_args.get(&decl.name) {
            Some(v.clone())
        } else if let Some(def) = &decl.default {
            Some(lex.expand(def, &ScopeEnv { env: stage_env, args: self })?)
        } else {
            self.globals.values.get(&decl.name).cloned()
        };
        self.declared.retain(|(n, _)| n != &decl.name);
        self.declared.push((decl.name.clone(), value));
        Ok(())
    }

    /// Apply every declaration of an ARG instruction.
    pub fn declare_all(&mut self, decls: &[ArgDecl], lex: &Lexer, stage_env: &[String]) -> Result<(), ExpandError> {
        decls.iter().try_for_each(|d| self.declare(d, lex, stage_env))
    }

    /// The value of a declared ARG (`None` when undeclared or declared without a value).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.declared.iter().find(|(n, _)| n == name).and_then(|(_, v)| v.as_deref())
    }

    /// Whether `name` is declared in this stage.
    pub fn is_declared(&self, name: &str) -> bool {
        self.declared.iter().any(|(n, _)| n == name)
    }

    /// Names declared in this stage, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.declared.iter().map(|(n, _)| n.as_str())
    }

    /// The expansion environment for an instruction: `stage_env` first, then the ARGs.
    pub fn env<'e>(&'e self, stage_env: &'e [String]) -> ScopeEnv<'e> {
        ScopeEnv { env: stage_env, args: self }
    }

    /// `KEY=VALUE` for every ARG with a value that ENV does not shadow, plus builtin proxy
    /// build args, sorted: the extra environment of a RUN (Docker's `FilterAllowed`).
    pub fn run_env(&self, stage_env: &[String]) -> Vec<String> {
        let env_keys: BTreeSet<&str> =
            stage_env.iter().map(|kv| kv.split_once('=').map_or(kv.as_str(), |(k, _)| k)).collect();
        let mut out = BTreeMap::new();
        for (n, v) in &self.declared {
            if let Some(v) = v
                && !env_keys.contains(n.as_str())
            {
                out.insert(n.clone(), v.clone());
            }
        }
        for b in BUILTIN_ARGS {
            if let Some(v) = self.build_args.get(*b)
                && !env_keys.contains(b)
                && !out.contains_key(*b)
            {
                out.insert(b.to_string(), v.clone());
            }
        }
        out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    /// The legacy builder's cache-key prefix for RUN: `["|N", "K=V"…]` over [`Self::run_env`]
    /// minus undeclared builtin args, or empty when there are none. Docker stores the RUN's
    /// `Cmd` as this prefix followed by the command.
    pub fn cache_key_prefix(&self, stage_env: &[String]) -> Vec<String> {
        let vars: Vec<String> = self
            .run_env(stage_env)
            .into_iter()
            .filter(|kv| {
                let k = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
                self.is_declared(k) || !BUILTIN_ARGS.contains(&k)
            })
            .collect();
        if self.run_env(stage_env).is_empty() {
            return Vec::new();
        }
        std::iter::once(format!("|{}", vars.len())).chain(vars).collect()
    }
}

/// ENV first, then ARGs: the environment an instruction is expanded with.
pub struct ScopeEnv<'e> {
    env: &'e [String],
    args: &'e StageArgs<'e>,
}

impl Env for ScopeEnv<'_> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.env.lookup(name).or_else(|| self.args.get(name).map(str::to_string))
    }
}

/// Wraps an [`Env`] and records which names were found. Intersected with
/// [`StageArgs::names`], that is the build args a (non-RUN) step used; a RUN uses all of
/// [`StageArgs::run_env`].
pub struct Recording<'e> {
    inner: &'e dyn Env,
    seen: RefCell<BTreeSet<String>>,
}

impl<'e> Recording<'e> {
    pub fn new(inner: &'e dyn Env) -> Self {
        Self { inner, seen: RefCell::new(BTreeSet::new()) }
    }

    /// Names looked up and found so far.
    pub fn used(&self) -> BTreeSet<String> {
        self.seen.borrow().clone()
    }
}

impl Env for Recording<'_> {
    fn lookup(&self, name: &str) -> Option<String> {
        let v = self.inner.lookup(name);
        if v.is_some() {
            self.seen.borrow_mut().insert(name.to_string());
        }
        v
    }
}

/// Build args not declared by any ARG (global or in a stage) and not builtin, sorted: what
/// Docker warns about as "not consumed".
pub fn unused_build_args(build_args: &BTreeMap<String, String>, declared: &BTreeSet<String>) -> Vec<String> {
    build_args.keys().filter(|k| !declared.contains(*k) && !BUILTIN_ARGS.contains(&k.as_str())).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn globals_feed_from_and_need_redeclaring() {
        let df = parse("ARG BASE=alpine\nARG TAG=${BASE}-3\nFROM $BASE:$TAG\nARG TAG\nARG OTHER\nRUN x\n").unwrap();
        let lex = df.lexer();
        let g = GlobalArgs::evaluate(&df.global_args, &BTreeMap::new(), &BTreeMap::new(), &lex).unwrap();
        assert_eq!(g.values, map(&[("BASE", "alpine"), ("TAG", "alpine-3")]));
        let graph = df.graph(&g).unwrap();
        assert_eq!(graph.stages[0].base, crate::BaseRef::Image("alpine:alpine-3".into()));
        assert_eq!(graph.stages[0].used_args, ["BASE", "TAG"].iter().map(|s| s.to_string()).collect());

        let build_args = BTreeMap::new();
        let mut s = StageArgs::new(&g, &build_args);
        assert_eq!(s.get("BASE"), None, "globals are not visible until redeclared");
        let InstructionKind::Arg(d) = &df.stages[0].instructions[0].kind else { panic!() };
        s.declare_all(d, &lex, &[]).unwrap();
        assert_eq!(s.get("TAG"), Some("alpine-3"));
        let InstructionKind::Arg(d) = &df.stages[0].instructions[1].kind else { panic!() };
        s.declare_all(d, &lex, &[]).unwrap();
        assert!(s.is_declared("OTHER"));
        assert_eq!(s.get("OTHER"), None);
    }

    #[test]
    fn build_args_override_defaults() {
        let df = parse("ARG V=1\nFROM a:$V\nARG V\nARG W=$V-w\n").unwrap();
        let lex = df.lexer();
        let ba = map(&[("V", "2"), ("UNUSED", "x"), ("HTTP_PROXY", "p")]);
        let g = GlobalArgs::evaluate(&df.global_args, &ba, &BTreeMap::new(), &lex).unwrap();
        assert_eq!(g.values["V"], "2");
        let mut s = StageArgs::new(&g, &ba);
        for inst in &df.stages[0].instructions {
            let InstructionKind::Arg(d) = &inst.kind else { panic!() };
            s.declare_all(d, &lex, &[]).unwrap();
        }
        assert_eq!(s.get("W"), Some("2-w"));
        assert_eq!(s.run_env(&[]), vec!["HTTP_PROXY=p", "V=2", "W=2-w"]);
        assert_eq!(s.cache_key_prefix(&[]), vec!["|2", "V=2", "W=2-w"]);
        let declared: BTreeSet<String> = ["V", "W"].iter().map(|s| s.to_string()).collect();
        assert_eq!(unused_build_args(&ba, &declared), vec!["UNUSED"]);
    }

    #[test]
    fn env_wins_over_arg() {
        let g = GlobalArgs::default();
        let ba = BTreeMap::new();
        let mut s = StageArgs::new(&g, &ba);
        let lex = Lexer::new('\\');
        s.declare(&ArgDecl { name: "X".into(), default: Some("arg".into()) }, &lex, &[]).unwrap();
        let env = vec!["X=env".to_string()];
        assert_eq!(lex.expand("$X", &s.env(&env)).unwrap(), "env");
        assert_eq!(lex.expand("$X", &s.env(&[])).unwrap(), "arg");
        assert!(s.run_env(&env).is_empty());
        assert!(s.cache_key_prefix(&env).is_empty());
    }

    #[test]
    fn arg_default_uses_env() {
        let g = GlobalArgs::default();
        let ba = BTreeMap::new();
        let mut s = StageArgs::new(&g, &ba);
        let lex = Lexer::new('\\');
        s.declare(&ArgDecl { name: "P".into(), default: Some("${HOME}/bin".into()) }, &lex, &["HOME=/root".into()])
            .unwrap();
        assert_eq!(s.get("P"), Some("/root/bin"));
    }

    #[test]
    fn recording_tracks_used_args() {
        let g = GlobalArgs::default();
        let ba = map(&[("A", "1")]);
        let mut s = StageArgs::new(&g, &ba);
        let lex = Lexer::new('\\');
        s.declare(&ArgDecl { name: "A".into(), default: None }, &lex, &[]).unwrap();
        s.declare(&ArgDecl { name: "B".into(), default: Some("b".into()) }, &lex, &[]).unwrap();
        let scope = s.env(&[]);
        let rec = Recording::new(&scope);
        let df = parse("FROM x\nWORKDIR /$A/$NOPE\n").unwrap();
        let out = df.stages[0].instructions[0].expand(&lex, &rec).unwrap();
        assert_eq!(out.kind, InstructionKind::Workdir("/1/".into()));
        assert_eq!(rec.used().into_iter().collect::<Vec<_>>(), vec!["A"]);
    }
}
