//! The typed instructions, and how one logical line becomes one of them.
//!
//! Values are kept *as written* (quotes included where Docker keeps them until expansion, e.g.
//! `ENV A="x y"` holds the value `"x y"`); [`Instruction::expand`] gives the values the builder
//! uses, with Docker's rules for which instructions are expanded.

use std::time::Duration;

use crate::duration::{go_duration_string, parse_go_duration};
use crate::expand::{Env, ExpandError, Lexer};
use crate::flags::{FlagType, FlagValues, parse_flags};
use crate::lexer::{Heredoc, Node, parse_heredoc};
use crate::mount::{Device, RunMount};
use crate::port::parse_port_spec;
use crate::suggest;
use crate::util::go_quote;

/// One instruction inside a stage (FROM starts a [`crate::Stage`] instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line where the instruction starts.
    pub line: usize,
    /// 1-based last line (continuations and heredoc bodies included).
    pub end_line: usize,
    /// The instruction as written: continuation lines joined (escape and newline removed,
    /// comment lines dropped), trimmed. What the builder prints as `Step N/M : <original>`.
    pub original: String,
    pub kind: InstructionKind,
}

/// The instructions Docker knows (FROM aside), each with its typed arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstructionKind {
    /// `ADD [--chown --chmod --link --keep-git-dir --checksum --unpack --exclude] src… dest`
    Add(Add),
    /// `ARG name[=default] …` (several per line allowed).
    Arg(Vec<ArgDecl>),
    /// `CMD` in exec (`["a","b"]`) or shell form; may be empty.
    Cmd(CommandLine),
    /// `COPY [--from --chown --chmod --link --parents --exclude] src… dest`
    Copy(Copy),
    /// `ENTRYPOINT` in exec or shell form.
    Entrypoint(CommandLine),
    /// `ENV a=b c=d` or legacy `ENV a b c` (one pair, value = rest of line).
    Env(Vec<KeyValue>),
    /// `EXPOSE 80 443/udp` — words as written, sorted as Docker sorts them.
    Expose(Vec<String>),
    /// `HEALTHCHECK NONE` or `HEALTHCHECK [options] CMD …`.
    Healthcheck(Healthcheck),
    /// `LABEL a=b …` (same forms as ENV).
    Label(Vec<KeyValue>),
    /// `MAINTAINER text` (deprecated; the text verbatim).
    Maintainer(String),
    /// `ONBUILD <instruction>`.
    Onbuild(Onbuild),
    /// `RUN [--mount --network --security --device] command`.
    Run(Run),
    /// `SHELL ["executable", "params"…]` (JSON form only).
    Shell(Vec<String>),
    /// `STOPSIGNAL signal` (verbatim).
    StopSignal(String),
    /// `USER user[:group]` (verbatim).
    User(String),
    /// `VOLUME ["/a", "/b"]` or `VOLUME /a /b`.
    Volume(Vec<String>),
    /// `WORKDIR path` (verbatim).
    Workdir(String),
}

impl InstructionKind {
    /// The keyword in upper case (`RUN`, `COPY`, …).
    pub fn keyword(&self) -> &'static str {
        match self {
            InstructionKind::Add(_) => "ADD",
            InstructionKind::Arg(_) => "ARG",
            InstructionKind::Cmd(_) => "CMD",
            InstructionKind::Copy(_) => "COPY",
            InstructionKind::Entrypoint(_) => "ENTRYPOINT",
            InstructionKind::Env(_) => "ENV",
            InstructionKind::Expose(_) => "EXPOSE",
            InstructionKind::Healthcheck(_) => "HEALTHCHECK",
            InstructionKind::Label(_) => "LABEL",
            InstructionKind::Maintainer(_) => "MAINTAINER",
            InstructionKind::Onbuild(_) => "ONBUILD",
            InstructionKind::Run(_) => "RUN",
            InstructionKind::Shell(_) => "SHELL",
            InstructionKind::StopSignal(_) => "STOPSIGNAL",
            InstructionKind::User(_) => "USER",
            InstructionKind::Volume(_) => "VOLUME",
            InstructionKind::Workdir(_) => "WORKDIR",
        }
    }
}

/// A `key=value` of ENV or LABEL, as written (quotes still in place until expansion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
    /// Written in the legacy space-separated form (`ENV key value`).
    pub legacy: bool,
}

/// One name of an ARG line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    /// `ARG name=default`; `None` for a bare `ARG name` (distinct from `ARG name=`).
    pub default: Option<String>,
}

/// A command line of RUN, CMD or ENTRYPOINT, as Docker's `ShellDependantCmdLine`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// Exec form: the argv. Shell form: one element, the command text (none when the
    /// instruction had no argument; for ENTRYPOINT that means "reset").
    pub args: Vec<String>,
    /// Shell form: run `args[0]` through the stage's SHELL (default `/bin/sh -c`).
    pub prepend_shell: bool,
    /// Heredocs the command line opened (RUN only), in order.
    pub heredocs: Vec<Heredoc>,
}

impl CommandLine {
    /// Written in exec (JSON) form.
    pub fn is_exec(&self) -> bool {
        !self.prepend_shell
    }

    /// What a shell-form RUN with heredocs runs, as BuildKit does: a line that is only one
    /// heredoc (`RUN <<EOF`) runs that body — as a script file when it starts with `#!`, else
    /// as the shell command; otherwise the line and every body, each followed by its delimiter,
    /// are joined with newlines and given to the shell. `None` without heredocs.
    pub fn heredoc_script(&self) -> Option<HeredocScript> {
        if self.heredocs.is_empty() || self.args.len() != 1 || !self.prepend_shell {
            return None;
        }
        if let Ok(Some(_)) = parse_heredoc(&self.args[0]) {
            let first = &self.heredocs[0];
            let data = first.body();
            if data.starts_with("#!") {
                return Some(HeredocScript::File { name: first.name.clone(), content: data });
            }
            return Some(HeredocScript::Command(data));
        }
        let mut b = self.args[0].clone();
        for h in &self.heredocs {
            b.push('\n');
            b.push_str(&h.content);
            b.push_str(&h.name);
        }
        Some(HeredocScript::Command(b))
    }
}

/// See [`CommandLine::heredoc_script`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeredocScript {
    /// Write `content` to an executable file named `name` and run it.
    File { name: String, content: String },
    /// Run this text through the shell.
    Command(String),
}

/// RUN's network sandbox (`--network`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Network {
    #[default]
    Default,
    None,
    Host,
}

/// RUN's security mode (`--security`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Security {
    #[default]
    Sandbox,
    Insecure,
}

/// A RUN instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub command: CommandLine,
    pub mounts: Vec<RunMount>,
    pub network: Network,
    pub security: Security,
    pub devices: Vec<Device>,
    /// Flag names given (`mount`, `network`, …), in order: the legacy builder refuses any
    /// ("the --mount option requires BuildKit").
    pub flags_used: Vec<String>,
}

/// A heredoc used as a COPY/ADD source: a file named `name` with `content` (already
/// tab-stripped for `<<-`); `expand` says whether variables in it are expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineSource {
    pub name: String,
    pub content: String,
    pub expand: bool,
}

/// A COPY instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// Paths (or patterns) in the context or in `from`, as written.
    pub sources: Vec<String>,
    /// Heredoc sources (`COPY <<EOF /dest`).
    pub inline: Vec<InlineSource>,
    pub dest: String,
    /// `--from=<stage name|stage index|image>`; never variable-expanded.
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub excludes: Vec<String>,
    /// Written in JSON form.
    pub json: bool,
}

/// An ADD instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    /// Paths, URLs or git refs, as written.
    pub sources: Vec<String>,
    pub inline: Vec<InlineSource>,
    pub dest: String,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    /// `--keep-git-dir[=bool]`; `None` when not given.
    pub keep_git_dir: Option<bool>,
    pub checksum: Option<String>,
    /// `--unpack[=bool]`; `None` when not given (archives from the context are unpacked,
    /// remote ones not).
    pub unpack: Option<bool>,
    pub excludes: Vec<String>,
    pub json: bool,
}

/// `HEALTHCHECK NONE` or a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// Disable any check inherited from the base image (`Test: ["NONE"]`).
    None,
    Check(HealthConfig),
}

/// A container health check, as stored in the image config. Zero durations and retries mean
/// "use the default".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// `["CMD", arg…]` for exec form, `["CMD-SHELL", command]` for shell form.
    pub test: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: u32,
}

/// An ONBUILD trigger: stored in the image as `expression` and run when a later build uses
/// the image as its base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Onbuild {
    /// The trigger text (`original` without `ONBUILD `, heredoc bodies appended).
    pub expression: String,
    /// The trigger, parsed (never FROM, MAINTAINER or ONBUILD).
    pub trigger: Box<Instruction>,
}

/// The FROM line that starts a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FromLine {
    pub image: String,
    pub name: Option<String>,
    pub platform: Option<String>,
}

pub(crate) enum Parsed {
    From(FromLine),
    Instruction(InstructionKind),
}

/// All instruction names, for "did you mean".
const INSTRUCTIONS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

fn at_least_one(cmd: &str) -> String {
    format!("{cmd} requires at least one argument")
}

fn exactly_one(cmd: &str) -> String {
    format!("{cmd} requires exactly one argument")
}

fn no_flags(node: &Node) -> Result<FlagValues, String> {
    parse_flags(&node.flags, &[])
}

/// Turn a node into a typed instruction (BuildKit's `ParseInstruction`).
pub(crate) fn parse_node(node: &Node, escape: char) -> Result<Parsed, String> {
    let args = &node.args;
    let kind = match node.keyword.to_ascii_lowercase().as_str() {
        "env" => {
            no_flags(node)?;
            InstructionKind::Env(parse_kvps(args, "ENV")?)
        }
        "maintainer" => {
            if args.len() != 1 {
                return Err(exactly_one("MAINTAINER"));
            }
            no_flags(node)?;
            InstructionKind::Maintainer(args[0].clone())
        }
        "label" => {
            no_flags(node)?;
            InstructionKind::Label(parse_kvps(args, "LABEL")?)
        }
        "add" => {
            if args.len() < 2 {
                return Err(no_destination("ADD"));
            }
            let f = parse_flags(
                &node.flags,
                &[
                    ("chown", FlagType::String),
                    ("chmod", FlagType::String),
                    ("link", FlagType::Bool),
                    ("keep-git-dir", FlagType::Bool),
                    ("checksum", FlagType::String),
                    ("unpack", FlagType::Bool),
                    ("exclude", FlagType::Strings),
                ],
            )?;
            let (sources, inline, dest) = sources_and_dest(node, "ADD")?;
            InstructionKind::Add(Add {
                sources,
                inline,
                dest,
                chown: f.string("chown"),
                chmod: f.string("chmod"),
                link: f.bool("link").unwrap_or(false),
                keep_git_dir: f.bool("keep-git-dir"),
                checksum: f.string("checksum"),
                unpack: f.bool("unpack"),
                excludes: f.strings("exclude"),
                json: node.json,
            })
        }
        "copy" => {
            if args.len() < 2 {
                return Err(no_destination("COPY"));
            }
            let f = parse_flags(
                &node.flags,
                &[
                    ("chown", FlagType::String),
                    ("from", FlagType::String),
                    ("chmod", FlagType::String),
                    ("link", FlagType::Bool),
                    ("exclude", FlagType::Strings),
                    ("parents", FlagType::Bool),
                ],
            )?;
            let (sources, inline, dest) = sources_and_dest(node, "COPY")?;
            InstructionKind::Copy(Copy {
                sources,
                inline,
                dest,
                from: f.string("from").filter(|s| !s.is_empty()),
                chown: f.string("chown"),
                chmod: f.string("chmod"),
                link: f.bool("link").unwrap_or(false),
                parents: f.bool("parents").unwrap_or(false),
                excludes: f.strings("exclude"),
                json: node.json,
            })
        }
        "from" => {
            let name = match args.len() {
                3 if args[1].eq_ignore_ascii_case("as") => {
                    let name = args[2].to_lowercase();
                    if !valid_stage_name(&name) {
                        return Err(format!(
                            "invalid name for build stage: {}, name can't start with a number or contain symbols",
                            go_quote(&args[2])
                        ));
                    }
                    Some(name)
                }
                1 => None,
                _ => return Err("FROM requires either one or three arguments".into()),
            };
            let f = parse_flags(&node.flags, &[("platform", FlagType::String)])?;
            return Ok(Parsed::From(FromLine {
                image: args[0].clone(),
                name,
                platform: f.string("platform").filter(|s| !s.is_empty()),
            }));
        }
        "onbuild" => {
            if args.is_empty() {
                return Err(at_least_one("ONBUILD"));
            }
            no_flags(node)?;
            let trigger = args[0].trim().to_ascii_uppercase();
            match trigger.as_str() {
                "ONBUILD" => {
                    return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into());
                }
                "MAINTAINER" | "FROM" => {
                    return Err(format!("{trigger} isn't allowed as an ONBUILD trigger"));
                }
                _ => {}
            }
            let mut expression = strip_onbuild(&node.original).to_string();
            for h in &node.heredocs {
                expression.push('\n');
                expression.push_str(&h.content);
                expression.push_str(&h.name);
            }
            let Some(sub) = node.sub.as_ref() else {
                return Err(at_least_one("ONBUILD"));
            };
            let mut sub = sub.as_ref().clone();
            sub.heredocs = node.heredocs.clone();
            sub.original = strip_onbuild(&node.original).to_string();
            let kind = match parse_node(&sub, escape)? {
                Parsed::Instruction(k) => k,
                Parsed::From(_) => return Err("FROM isn't allowed as an ONBUILD trigger".into()),
            };
            InstructionKind::Onbuild(Onbuild {
                expression,
                trigger: Box::new(Instruction {
                    line: node.start_line,
                    end_line: node.end_line,
                    original: sub.original,
                    kind,
                }),
            })
        }
        "workdir" => {
            if args.len() != 1 {
                return Err(exactly_one("WORKDIR"));
            }
            no_flags(node)?;
            InstructionKind::Workdir(args[0].clone())
        }
        "run" => {
            let f = parse_flags(
                &node.flags,
                &[
                    ("device", FlagType::Strings),
                    ("mount", FlagType::Strings),
                    ("network", FlagType::String),
                    ("security", FlagType::String),
                ],
            )?;
            let command = command_line(node);
            let devices = f.strings("device").iter().map(|d| Device::parse(d)).collect::<Result<Vec<_>, _>>()?;
            let mounts = f.strings("mount").iter().map(|m| RunMount::parse(m, None)).collect::<Result<Vec<_>, _>>()?;
            let network = match f.string("network").as_deref().unwrap_or("default") {
                "default" => Network::Default,
                "none" => Network::None,
                "host" => Network::Host,
                other => return Err(format!("invalid network mode {}", go_quote(other))),
            };
            let security = match f.string("security").as_deref().unwrap_or("sandbox") {
                "sandbox" => Security::Sandbox,
                "insecure" => Security::Insecure,
                other => return Err(format!("security {} is not valid", go_quote(other))),
            };
            InstructionKind::Run(Run { command, mounts, network, security, devices, flags_used: f.used })
        }
        "cmd" => {
            no_flags(node)?;
            InstructionKind::Cmd(command_line(node))
        }
        "entrypoint" => {
            no_flags(node)?;
            InstructionKind::Entrypoint(command_line(node))
        }
        "healthcheck" => InstructionKind::Healthcheck(parse_healthcheck(node)?),
        "expose" => {
            if args.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            no_flags(node)?;
            for a in args {
                let literal = !a.contains(['$', '\'', '"', escape]);
                if literal {
                    parse_port_spec(a)?;
                }
            }
            let mut ports = args.clone();
            ports.sort();
            InstructionKind::Expose(ports)
        }
        "user" => {
            if args.len() != 1 {
                return Err(exactly_one("USER"));
            }
            no_flags(node)?;
            InstructionKind::User(args[0].clone())
        }
        "volume" => {
            if args.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            no_flags(node)?;
            let mut vols = Vec::new();
            for v in args {
                let v = v.trim();
                if v.is_empty() {
                    return Err("VOLUME specified can not be an empty string".into());
                }
                vols.push(v.to_string());
            }
            InstructionKind::Volume(vols)
        }
        "stopsignal" => {
            if args.len() != 1 {
                return Err(exactly_one("STOPSIGNAL"));
            }
            InstructionKind::StopSignal(args[0].clone())
        }
        "arg" => {
            if args.is_empty() {
                return Err(at_least_one("ARG"));
            }
            let mut decls = Vec::new();
            for a in args {
                let decl = match a.split_once('=') {
                    Some(("", _)) => return Err("ARG names can not be blank".into()),
                    Some((k, v)) => ArgDecl { name: k.to_string(), default: Some(v.to_string()) },
                    None => ArgDecl { name: a.clone(), default: None },
                };
                decls.push(decl);
            }
            InstructionKind::Arg(decls)
        }
        "shell" => {
            no_flags(node)?;
            let line = command_line(node);
            if line.args.is_empty() {
                return Err(at_least_one("SHELL"));
            }
            if !node.json {
                return Err("SHELL requires the arguments to be in JSON form".into());
            }
            InstructionKind::Shell(line.args)
        }
        _ => {
            return Err(suggest::wrap(
                format!("unknown instruction: {}", node.keyword),
                &node.keyword,
                INSTRUCTIONS,
                false,
            ));
        }
    };
    Ok(Parsed::Instruction(kind))
}

fn strip_onbuild(original: &str) -> &str {
    let t = original.trim_start();
    if t.len() >= 7 && t[..7].eq_ignore_ascii_case("onbuild") { t[7..].trim_start() } else { t }
}

fn no_destination(cmd: &str) -> String {
    format!("{cmd} requires at least two arguments, but only one was provided. Destination could not be determined")
}

/// `^[a-z][a-z0-9-_.]*$`
pub(crate) fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

fn parse_kvps(args: &[String], cmd: &str) -> Result<Vec<KeyValue>, String> {
    if args.is_empty() {
        return Err(at_least_one(cmd));
    }
    if !args.len().is_multiple_of(3) {
        return Err(format!("Bad input to {cmd}, too many arguments"));
    }
    args.chunks(3)
        .map(|c| {
            if c[0].is_empty() {
                return Err(format!("{cmd} names can not be blank"));
            }
            Ok(KeyValue { key: c[0].clone(), value: c[1].clone(), legacy: c[2].is_empty() })
        })
        .collect()
}

type SourcesAndDest = (Vec<String>, Vec<InlineSource>, String);

fn sources_and_dest(node: &Node, cmd: &str) -> Result<SourcesAndDest, String> {
    let (dest, srcs) = node.args.split_last().ok_or_else(|| no_destination(cmd))?;
    if parse_heredoc(dest).ok().flatten().is_some() {
        return Err(format!("{cmd} cannot accept a heredoc as a destination"));
    }
    let mut sources = Vec::new();
    let mut inline = Vec::new();
    for src in srcs {
        match parse_heredoc(src).ok().flatten() {
            Some(h) => {
                let found = node.heredocs.iter().find(|d| d.name == h.name);
                let mut content = found.map(|d| d.content.clone()).unwrap_or_default();
                if h.chomp {
                    content = crate::lexer::chomp_heredoc_content(&content);
                }
                inline.push(InlineSource { name: h.name, content, expand: h.expand });
            }
            None => sources.push(src.clone()),
        }
    }
    Ok((sources, inline, dest.clone()))
}

fn command_line(node: &Node) -> CommandLine {
    let args = if node.json || node.args.is_empty() { node.args.clone() } else { vec![node.args.join(" ")] };
    CommandLine { args, prepend_shell: !node.json, heredocs: node.heredocs.clone() }
}

fn parse_healthcheck(node: &Node) -> Result<Healthcheck, String> {
    let args = &node.args;
    if args.is_empty() {
        return Err(at_least_one("HEALTHCHECK"));
    }
    let typ = args[0].to_uppercase();
    let rest = &args[1..];
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok(Healthcheck::None);
    }
    let f = parse_flags(
        &node.flags,
        &[
            ("interval", FlagType::String),
            ("timeout", FlagType::String),
            ("start-period", FlagType::String),
            ("start-interval", FlagType::String),
            ("retries", FlagType::String),
        ],
    )?;
    let test = match typ.as_str() {
        "CMD" => {
            let cmd: Vec<String> = if node.json || rest.is_empty() { rest.to_vec() } else { vec![rest.join(" ")] };
            if cmd.is_empty() {
                return Err("Missing command after HEALTHCHECK CMD".into());
            }
            let t = if node.json { "CMD" } else { "CMD-SHELL" };
            std::iter::once(t.to_string()).chain(cmd).collect()
        }
        _ => {
            return Err(format!("Unknown type {} in HEALTHCHECK (try CMD)", go_quote(&typ)));
        }
    };
    let interval = |name: &str| -> Result<Duration, String> {
        let Some(v) = f.string(name).filter(|v| !v.is_empty()) else {
            return Ok(Duration::ZERO);
        };
        let ns = parse_go_duration(&v)?;
        if ns == 0 {
            return Ok(Duration::ZERO);
        }
        if ns < 1_000_000 {
            return Err(format!("Interval {} cannot be less than {}", go_quote(name), go_duration_string(1_000_000)));
        }
        Ok(Duration::from_nanos(ns as u64))
    };
    let retries = match f.string("retries").filter(|v| !v.is_empty()) {
        None => 0,
        Some(v) => {
            let n = parse_go_int32(&v)?;
            if n < 0 {
                return Err(format!("--retries cannot be negative ({n})"));
            }
            n as u32
        }
    };
    Ok(Healthcheck::Check(HealthConfig {
        test,
        interval: interval("interval")?,
        timeout: interval("timeout")?,
        start_period: interval("start-period")?,
        start_interval: interval("start-interval")?,
        retries,
    }))
}

/// Go's `strconv.ParseInt(s, 10, 32)` with its messages.
fn parse_go_int32(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseInt: parsing {}: invalid syntax", go_quote(s)));
    }
    match s.parse::<i32>() {
        Ok(n) => Ok(i64::from(n)),
        Err(_) => Err(format!("strconv.ParseInt: parsing {}: value out of range", go_quote(s))),
    }
}

impl Instruction {
    /// A copy with variables expanded as Docker expands this instruction, using `env` (the
    /// stage's ENV plus the ARGs in scope; see [`crate::args`]). Expanded: ENV and LABEL keys and
    /// values, ADD/COPY sources, destination, `--chown`, `--chmod`, ADD `--checksum` and the
    /// bodies of unquoted heredoc sources, WORKDIR, USER, STOPSIGNAL, VOLUME, EXPOSE (split
    /// into words and checked as ports), `RUN --mount` options. Left as written:
    /// RUN/CMD/ENTRYPOINT/SHELL/HEALTHCHECK commands, MAINTAINER, ONBUILD, `COPY --from`, and
    /// ARG (its default is expanded once, by [`crate::StageArgs::declare`]; pass it the
    /// declarations as parsed). Each COPY/ADD source and VOLUME path stays one word even when a
    /// variable holds spaces, as in Docker; only EXPOSE re-splits.
    pub fn expand(&self, lex: &Lexer, env: &dyn Env) -> Result<Instruction, ExpandError> {
        let x = |s: &str| lex.expand(s, env);
        let xo = |s: &Option<String>| s.as_deref().map(|v| lex.expand(v, env)).transpose();
        let inline = |v: &[InlineSource]| -> Result<Vec<InlineSource>, ExpandError> {
            v.iter()
                .map(|s| {
                    let mut s = s.clone();
                    if s.expand {
                        s.content = Lexer::for_heredoc().expand(&s.content, env)?;
                    }
                    Ok(s)
                })
                .collect()
        };
        let kvs = |v: &[KeyValue]| -> Result<Vec<KeyValue>, ExpandError> {
            v.iter().map(|kv| Ok(KeyValue { key: x(&kv.key)?, value: x(&kv.value)?, legacy: kv.legacy })).collect()
        };
        let kind = match &self.kind {
            InstructionKind::Env(v) => InstructionKind::Env(kvs(v)?),
            InstructionKind::Label(v) => InstructionKind::Label(kvs(v)?),
            InstructionKind::Add(a) => InstructionKind::Add(Add {
                sources: a.sources.iter().map(|s| x(s)).collect::<Result<_, _>>()?,
                inline: inline(&a.inline)?,
                dest: x(&a.dest)?,
                chown: xo(&a.chown)?,
                chmod: xo(&a.chmod)?,
                checksum: xo(&a.checksum)?,
                ..a.clone()
            }),
            InstructionKind::Copy(c) => InstructionKind::Copy(Copy {
                sources: c.sources.iter().map(|s| x(s)).collect::<Result<_, _>>()?,
                inline: inline(&c.inline)?,
                dest: x(&c.dest)?,
                chown: xo(&c.chown)?,
                chmod: xo(&c.chmod)?,
                ..c.clone()
            }),
            InstructionKind::Workdir(p) => InstructionKind::Workdir(x(p)?),
            InstructionKind::User(u) => InstructionKind::User(x(u)?),
            InstructionKind::StopSignal(s) => InstructionKind::StopSignal(x(s)?),
            InstructionKind::Volume(v) => InstructionKind::Volume(v.iter().map(|s| x(s)).collect::<Result<_, _>>()?),
            InstructionKind::Expose(v) => {
                let mut ports = Vec::new();
                for p in v {
                    ports.extend(lex.expand_words(p, env)?);
                }
                for p in &ports {
                    parse_port_spec(p).map_err(|message| ExpandError::Validate { message })?;
                }
                InstructionKind::Expose(ports)
            }
            InstructionKind::Run(r) => {
                let exp = |s: &str| lex.expand(s, env).map_err(|e| e.to_string());
                let mounts = r
                    .mounts
                    .iter()
                    .map(|m| RunMount::parse(&m.spec, Some(&exp)))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|message| ExpandError::Validate { message })?;
                InstructionKind::Run(Run { mounts, ..r.clone() })
            }
            other => other.clone(),
        };
        Ok(Instruction { kind, ..self.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::lex;

    fn parse_one(text: &str) -> Result<InstructionKind, String> {
        let l = lex(text).map_err(|e| e.message().to_string())?;
        match parse_node(&l.nodes[0], l.escape)? {
            Parsed::Instruction(k) => Ok(k),
            Parsed::From(_) => Err("from".into()),
        }
    }

    #[test]
    fn copy_flags_and_heredoc_sources() {
        let k = parse_one("COPY --from=build --chown=app:app --chmod=755 --link a b /dst/").unwrap();
        let InstructionKind::Copy(c) = k else { panic!() };
        assert_eq!(c.from.as_deref(), Some("build"));
        assert_eq!(c.sources, vec!["a", "b"]);
        assert!(c.link);
        let k = parse_one("COPY <<-EOF /etc/motd\n\thello\nEOF\n").unwrap();
        let InstructionKind::Copy(c) = k else { panic!() };
        assert_eq!(c.inline, vec![InlineSource { name: "EOF".into(), content: "hello\n".into(), expand: true }]);
        assert!(c.sources.is_empty());
        assert_eq!(parse_one("COPY a <<EOF\nx\nEOF\n").unwrap_err(), "COPY cannot accept a heredoc as a destination");
        assert_eq!(
            parse_one("COPY a").unwrap_err(),
            "COPY requires at least two arguments, but only one was provided. Destination could not be determined"
        );
    }

    #[test]
    fn healthcheck_options() {
        let k = parse_one("HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --start-interval=1s --retries=3 CMD curl -f http://localhost/ || exit 1").unwrap();
        let InstructionKind::Healthcheck(Healthcheck::Check(h)) = k else { panic!() };
        assert_eq!(h.test, vec!["CMD-SHELL", "curl -f http://localhost/ || exit 1"]);
        assert_eq!(h.interval, Duration::from_secs(30));
        assert_eq!(h.start_interval, Duration::from_secs(1));
        assert_eq!(h.retries, 3);
        let k = parse_one("HEALTHCHECK CMD [\"/bin/check\", \"-q\"]").unwrap();
        let InstructionKind::Healthcheck(Healthcheck::Check(h)) = k else { panic!() };
        assert_eq!(h.test, vec!["CMD", "/bin/check", "-q"]);
        assert_eq!(parse_one("HEALTHCHECK none").unwrap(), InstructionKind::Healthcheck(Healthcheck::None));
        assert_eq!(parse_one("HEALTHCHECK NONE x").unwrap_err(), "HEALTHCHECK NONE takes no arguments");
        assert_eq!(parse_one("HEALTHCHECK CMD").unwrap_err(), "Missing command after HEALTHCHECK CMD");
        assert_eq!(parse_one("HEALTHCHECK RUN x").unwrap_err(), "Unknown type \"RUN\" in HEALTHCHECK (try CMD)");
        assert_eq!(parse_one("HEALTHCHECK --interval=10 CMD x").unwrap_err(), "time: missing unit in duration \"10\"");
        assert_eq!(
            parse_one("HEALTHCHECK --timeout=1us CMD x").unwrap_err(),
            "Interval \"timeout\" cannot be less than 1ms"
        );
        assert_eq!(parse_one("HEALTHCHECK --retries=-1 CMD x").unwrap_err(), "--retries cannot be negative (-1)");
        assert_eq!(
            parse_one("HEALTHCHECK --retries=x CMD x").unwrap_err(),
            "strconv.ParseInt: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            parse_one("HEALTHCHECK --intervl=1s CMD x").unwrap_err(),
            "unknown flag: --intervl (did you mean interval?)"
        );
    }

    #[test]
    fn onbuild() {
        let k = parse_one("ONBUILD RUN --mount=type=cache,target=/c make").unwrap();
        let InstructionKind::Onbuild(o) = k else { panic!() };
        assert_eq!(o.expression, "RUN --mount=type=cache,target=/c make");
        assert!(matches!(o.trigger.kind, InstructionKind::Run(_)));
        assert_eq!(
            parse_one("ONBUILD ONBUILD RUN x").unwrap_err(),
            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
        );
        assert_eq!(parse_one("onbuild from x").unwrap_err(), "FROM isn't allowed as an ONBUILD trigger");
        assert_eq!(parse_one("ONBUILD MAINTAINER me").unwrap_err(), "MAINTAINER isn't allowed as an ONBUILD trigger");
    }

    #[test]
    fn shell_needs_json() {
        assert_eq!(parse_one("SHELL /bin/bash -c").unwrap_err(), "SHELL requires the arguments to be in JSON form");
        assert_eq!(parse_one("SHELL []").unwrap_err(), "SHELL requires at least one argument");
        assert_eq!(
            parse_one("SHELL [\"bash\", \"-c\"]").unwrap(),
            InstructionKind::Shell(vec!["bash".into(), "-c".into()])
        );
    }

    #[test]
    fn unknown_instruction_suggests() {
        assert_eq!(parse_one("FORM busybox").unwrap_err(), "unknown instruction: FORM (did you mean FROM?)");
        assert_eq!(parse_one("cpy a b").unwrap_err(), "unknown instruction: cpy (did you mean copy?)");
        assert_eq!(parse_one("FROBNICATE x").unwrap_err(), "unknown instruction: FROBNICATE");
    }

    #[test]
    fn run_flags() {
        let k = parse_one("RUN --network=none --security=insecure --mount=type=secret,id=x echo").unwrap();
        let InstructionKind::Run(r) = k else { panic!() };
        assert_eq!(r.network, Network::None);
        assert_eq!(r.security, Security::Insecure);
        assert_eq!(r.flags_used, vec!["network", "security", "mount"]);
        assert_eq!(parse_one("RUN --network=bridge x").unwrap_err(), "invalid network mode \"bridge\"");
        assert_eq!(parse_one("RUN --security=x y").unwrap_err(), "security \"x\" is not valid");
    }

    #[test]
    fn heredoc_scripts() {
        let k = parse_one("RUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n").unwrap();
        let InstructionKind::Run(r) = k else { panic!() };
        assert!(matches!(r.command.heredoc_script(), Some(HeredocScript::File { .. })));
        let k = parse_one("RUN cat <<A >/x\nhi\nA\n").unwrap();
        let InstructionKind::Run(r) = k else { panic!() };
        assert_eq!(r.command.heredoc_script(), Some(HeredocScript::Command("cat <<A >/x\nhi\nA".into())));
    }

    #[test]
    fn expose_literal_ports_checked() {
        assert_eq!(parse_one("EXPOSE 80/xyz").unwrap_err(), "invalid proto: xyz");
        assert_eq!(parse_one("EXPOSE 443 80").unwrap(), InstructionKind::Expose(vec!["443".into(), "80".into()]));
        assert!(parse_one("EXPOSE $PORT").is_ok());
    }

    #[test]
    fn expansion() {
        let env: std::collections::BTreeMap<String, String> =
            [("P", "8080 9090"), ("U", "app"), ("D", "/srv")].map(|(k, v)| (k.into(), v.into())).into();
        let lex = Lexer::new('\\');
        let l = lex_inst("EXPOSE $P");
        assert_eq!(l.expand(&lex, &env).unwrap().kind, InstructionKind::Expose(vec!["8080".into(), "9090".into()]));
        let l = lex_inst("COPY --chown=$U:$U <<EOF src $D/\nhome=$D\nEOF\n");
        let InstructionKind::Copy(c) = l.expand(&lex, &env).unwrap().kind else { panic!() };
        assert_eq!(c.chown.as_deref(), Some("app:app"));
        assert_eq!(c.dest, "/srv/");
        assert_eq!(c.inline[0].content, "home=/srv\n");
        let l = lex_inst("ENV A=\"x y\" B=${D}/bin");
        let InstructionKind::Env(kv) = l.expand(&lex, &env).unwrap().kind else { panic!() };
        assert_eq!((kv[0].value.as_str(), kv[1].value.as_str()), ("x y", "/srv/bin"));
        let l = lex_inst("EXPOSE $U");
        assert_eq!(l.expand(&lex, &env).unwrap_err().to_string(), "invalid containerPort: app");
    }

    fn lex_inst(text: &str) -> Instruction {
        let l = lex(text).unwrap();
        let n = &l.nodes[0];
        let Parsed::Instruction(kind) = parse_node(n, '\\').unwrap() else { panic!() };
        Instruction { line: n.start_line, end_line: n.end_line, original: n.original.clone(), kind }
    }
}
