//! Dockerfiles: text → typed AST, Docker's variable expansion, ARG scoping, the stage graph,
//! and `.dockerignore` matching. Tier 0: no I/O, no async; the builder (`wharf-build`) reads
//! files and calls in here.
//!
//! Map (start at [`parse`]):
//! - [`lexer`]: physical lines → logical instruction lines: parser directives, comments,
//!   continuations, heredocs, `--flags`, JSON-vs-shell arguments. Rules in the module doc.
//! - [`instruction`]: the typed instructions ([`Instruction`], [`InstructionKind`]) with each
//!   one's validation and Docker's messages, and [`Instruction::expand`].
//! - [`mount`]: `RUN --mount=…` / `--device=…` parsed into [`RunMount`] / [`Device`].
//! - [`dockerfile`]: [`parse`] → [`Dockerfile`] (directives, global ARGs, [`Stage`]s), and
//!   [`Dockerfile::graph`] → [`StageGraph`] (bases, `--from` dependencies, `--target`).
//! - [`mod@expand`]: the shell-word lexer ([`Lexer`], [`expand()`], [`expand_words`]) with
//!   BuildKit's semantics, and the [`Env`] trait it reads variables through.
//! - [`args`]: ARG scoping ([`GlobalArgs`], [`StageArgs`]), RUN's build-arg environment, the
//!   legacy cache-key prefix, used/unused build args.
//! - [`port`]: EXPOSE port specs. [`ignore`]: `.dockerignore` files and Docker's pattern matcher.
//! - [`error`]: [`ParseError`] (line + message, classified InvalidArgument); expansion errors
//!   are [`ExpandError`], ignore-file errors [`ignore::IgnoreError`].
//!
//! How the builder uses it, per build:
//! 1. `let df = parse(&text)?;` — syntax errors name their line.
//! 2. `let globals = GlobalArgs::evaluate(&df.global_args, &build_args, &predefined, &df.lexer())?;`
//! 3. `let graph = df.graph(&globals)?; let target = df.target_stage(opt_target)?;`
//!    `graph.needed_for(target)` — the stages to build.
//! 4. Per stage: a [`StageArgs`]; per instruction: `inst.expand(&df.lexer(), &args.env(&env))`
//!    (declaring ARGs with [`StageArgs::declare_all`]), RUN with [`StageArgs::run_env`].

pub mod args;
pub mod dockerfile;
mod duration;
pub mod error;
pub mod expand;
mod flags;
pub mod ignore;
pub mod instruction;
pub mod lexer;
pub mod mount;
pub mod port;
mod suggest;
mod util;

pub use args::{BUILTIN_ARGS, GlobalArgs, Recording, ScopeEnv, StageArgs, unused_build_args};
pub use dockerfile::{BaseRef, Dockerfile, Stage, StageGraph, StageNode, parse};
pub use error::ParseError;
pub use expand::{Env, ExpandError, Expansion, FnEnv, Lexer, NoEnv, expand, expand_words};
pub use instruction::{
    Add, ArgDecl, CommandLine, Copy, HealthConfig, Healthcheck, HeredocScript, InlineSource, Instruction,
    InstructionKind, KeyValue, Network, Onbuild, Run, Security,
};
pub use lexer::{Directive, Heredoc, Warning};
pub use mount::{Device, MountKind, RunMount, Sharing};
pub use port::{ExposedPort, Proto, parse_port_spec};
