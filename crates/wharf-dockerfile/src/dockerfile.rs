//! The whole file: directives, global ARGs, stages; and the stage graph.

use std::collections::BTreeSet;

use crate::args::GlobalArgs;
use crate::error::ParseError;
use crate::expand::{Lexer, NoEnv};
use crate::instruction::{Instruction, InstructionKind, Parsed, parse_node};
use crate::lexer::{Directive, Warning, lex};
use crate::suggest;
use crate::util::go_quote;

/// A parsed Dockerfile.
///
/// ```text
/// # syntax=docker/dockerfile:1        ← directives
/// ARG GO=1.22                         ← global_args (before the first FROM)
/// FROM golang:${GO} AS build          ← stages[0] (name "build")
/// RUN go build -o /app .              ←   stages[0].instructions[0]
/// FROM scratch                        ← stages[1]
/// COPY --from=build /app /app         ←   stages[1].instructions[0]
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub directives: Vec<Directive>,
    /// The escape character: `\`, or `` ` `` after `# escape=```.
    pub escape: char,
    /// ARG instructions before the first FROM: usable in FROM lines, and inside a stage once
    /// redeclared there (`ARG NAME` without a value inherits the global value).
    pub global_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
    /// Things Docker warns about while parsing (empty continuation lines).
    pub warnings: Vec<Warning>,
}

/// One build stage: a FROM line and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// 0-based position, what `COPY --from=<index>` refers to.
    pub index: usize,
    /// `FROM … AS name`, lower-cased.
    pub name: Option<String>,
    /// The base as written: an image reference, `scratch`, or an earlier stage's name; may
    /// hold `$VARS` (global ARGs). Resolved by [`Dockerfile::graph`].
    pub base: String,
    /// `--platform=` as written (may hold `$VARS`).
    pub platform: Option<String>,
    /// 1-based line of the FROM.
    pub line: usize,
    /// The FROM line as written (continuations joined).
    pub original: String,
    pub instructions: Vec<Instruction>,
}

impl Stage {
    /// The name BuildKit shows for the stage: its name, or `stage-<index>`.
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| format!("stage-{}", self.index))
    }
}

/// Parse a Dockerfile. No I/O: the caller reads the file (and strips nothing).
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let lexed = lex(text)?;
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let last_line = lexed.nodes.last().map(|n| n.start_line).unwrap_or(0);
    for node in lexed.nodes {
        let parsed = parse_node(&node, lexed.escape).map_err(|m| ParseError::instruction(node.start_line, m))?;
        match parsed {
            Parsed::From(from) => {
                if let Some(name) = &from.name
                    && stages.iter().any(|s| s.name.as_deref() == Some(name))
                {
                    return Err(ParseError::instruction(node.start_line, format!("{name} stage name already used")));
                }
                stages.push(Stage {
                    index: stages.len(),
                    name: from.name,
                    base: from.image,
                    platform: from.platform,
                    line: node.start_line,
                    original: node.original,
                    instructions: Vec::new(),
                });
            }
            Parsed::Instruction(kind) => {
                let inst =
                    Instruction { line: node.start_line, end_line: node.end_line, original: node.original, kind };
                match stages.last_mut() {
                    Some(stage) => stage.instructions.push(inst),
                    None if matches!(inst.kind, InstructionKind::Arg(_)) => global_args.push(inst),
                    None => {
                        return Err(ParseError::Structure {
                            line: node.start_line,
                            message: "no build stage in current context".into(),
                        });
                    }
                }
            }
        }
    }
    if stages.is_empty() {
        return Err(ParseError::Structure {
            line: last_line,
            message: "dockerfile contains no stages to build".into(),
        });
    }
    Ok(Dockerfile { directives: lexed.directives, escape: lexed.escape, global_args, stages, warnings: lexed.warnings })
}

/// What a stage starts from, after expanding its FROM with the global ARGs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseRef {
    /// `FROM scratch`: an empty filesystem.
    Scratch,
    /// An image reference, to be resolved (and pulled) by the builder.
    Image(String),
    /// The result of an earlier stage (by index), named in FROM.
    Stage(usize),
}

/// A stage's base, platform and the global ARGs its FROM used.
pub(crate) type ResolvedBase = (BaseRef, Option<String>, BTreeSet<String>);

/// One stage's place in the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageNode {
    pub base: BaseRef,
    /// `--platform` after expansion.
    pub platform: Option<String>,
    /// Global ARGs the FROM line used (for the cache key).
    pub used_args: BTreeSet<String>,
    /// Stages this one reads from with `COPY --from` or `RUN --mount=from=` (including
    /// through ONBUILD triggers of its base stage); the base stage is in `base`, not here.
    pub deps: BTreeSet<usize>,
    /// Images (not stages) named by `COPY --from` / `RUN --mount=from=`.
    pub images: BTreeSet<String>,
}

/// The stages as a DAG. Build with [`Dockerfile::graph`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageGraph {
    pub stages: Vec<StageNode>,
}

impl Dockerfile {
    /// The lexer for this file's instructions (its escape character).
    pub fn lexer(&self) -> Lexer {
        Lexer::new(self.escape)
    }

    /// The total the legacy builder prints in `Step N/M`: global ARGs, FROMs and instructions.
    pub fn step_count(&self) -> usize {
        self.global_args.len() + self.stages.iter().map(|s| 1 + s.instructions.len()).sum::<usize>()
    }

    /// The stage with this name (case-insensitive) or, failing that, this decimal index.
    pub fn find_stage(&self, name_or_index: &str) -> Option<usize> {
        let lower = name_or_index.to_lowercase();
        if let Some(s) = self.stages.iter().find(|s| s.name.as_deref() == Some(lower.as_str())) {
            return Some(s.index);
        }
        name_or_index.parse::<usize>().ok().filter(|i| *i < self.stages.len())
    }

    /// The stage a `--target` names, or the last stage for `None`. Error (BuildKit's wording,
    /// with a suggestion): `target stage "bulid" could not be found (did you mean build?)`.
    pub fn target_stage(&self, target: Option<&str>) -> Result<usize, ParseError> {
        let Some(t) = target.filter(|t| !t.is_empty()) else {
            return Ok(self.stages.len() - 1);
        };
        let lower = t.to_lowercase();
        if let Some(s) = self.stages.iter().find(|s| s.name.as_deref() == Some(lower.as_str())) {
            return Ok(s.index);
        }
        let names: Vec<&str> = self.stages.iter().filter_map(|s| s.name.as_deref()).collect();
        Err(ParseError::Target {
            message: suggest::wrap(format!("target stage {} could not be found", go_quote(t)), t, &names, true),
        })
    }

    /// Expand every FROM with the global ARGs and resolve it to scratch, an image or an
    /// earlier stage (by name, case-insensitive).
    pub(crate) fn resolve_bases(&self, globals: &GlobalArgs) -> Result<Vec<ResolvedBase>, ParseError> {
        let lex = self.lexer();
        let env = globals.env();
        let env: &dyn crate::expand::Env = env;
        let mut out = Vec::with_capacity(self.stages.len());
        for st in &self.stages {
            let err = |m: String| ParseError::Structure { line: st.line, message: m };
            let r = lex.expand_with_matches(&st.base, env).map_err(|e| err(e.to_string()))?;
            if r.value.is_empty() {
                return Err(err(format!("base name ({}) should not be blank", st.base)));
            }
            let mut used = r.matched;
            let lower = r.value.to_lowercase();
            let base = match self.stages[..st.index].iter().find(|s| s.name.as_deref() == Some(lower.as_str())) {
                Some(s) => BaseRef::Stage(s.index),
                None if r.value == "scratch" => BaseRef::Scratch,
                None => BaseRef::Image(r.value),
            };
            let platform = match &st.platform {
                None => None,
                Some(p) => {
                    let r = lex
                        .expand_with_matches(p, env)
                        .map_err(|e| err(format!("failed to process arguments for platform {p}: {e}")))?;
                    if r.value.is_empty() {
                        return Err(err(format!("empty platform value from expression {p}")));
                    }
                    used.extend(r.matched);
                    Some(r.value)
                }
            };
            out.push((base, platform, used));
        }
        Ok(out)
    }

    /// The stage graph: bases resolved, `COPY --from` / `RUN --mount=from=` dependencies, and a
    /// check for cycles (`circular dependency detected on stage: NAME`). Stage references by
    /// name may point forward, as in BuildKit; `COPY --from=<n>` takes any index in range.
    pub fn graph(&self, globals: &GlobalArgs) -> Result<StageGraph, ParseError> {
        let bases = self.resolve_bases(globals)?;
        let mut nodes: Vec<StageNode> = bases
            .into_iter()
            .map(|(base, platform, used_args)| StageNode {
                base,
                platform,
                used_args,
                deps: BTreeSet::new(),
                images: BTreeSet::new(),
            })
            .collect();
        for st in &self.stages {
            let mut deps = BTreeSet::new();
            let mut images = BTreeSet::new();
            for inst in &st.instructions {
                self.sources_of(inst, &mut deps, &mut images)?;
            }
            // ONBUILD triggers of a base stage run here.
            if let BaseRef::Stage(b) = nodes[st.index].base {
                for inst in &self.stages[b].instructions {
                    if let InstructionKind::Onbuild(o) = &inst.kind {
                        self.sources_of(&o.trigger, &mut deps, &mut images)?;
                    }
                }
            }
            nodes[st.index].deps = deps;
            nodes[st.index].images = images;
        }
        let graph = StageGraph { stages: nodes };
        if let Some(i) = graph.find_cycle() {
            return Err(ParseError::Structure {
                line: self.stages[i].line,
                message: format!("circular dependency detected on stage: {}", self.stages[i].display_name()),
            });
        }
        Ok(graph)
    }

    fn sources_of(
        &self,
        inst: &Instruction,
        deps: &mut BTreeSet<usize>,
        images: &mut BTreeSet<String>,
    ) -> Result<(), ParseError> {
        let err = |m: String| ParseError::Instruction { line: inst.line, message: m };
        match &inst.kind {
            InstructionKind::Copy(c) => {
                if let Some(from) = &c.from {
                    let plain = Lexer::new(self.escape).expand(from, &NoEnv).map_err(|e| err(e.to_string()))?;
                    if &plain != from {
                        return Err(err(
                            "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround".into(),
                        ));
                    }
                    if let Ok(i) = go_atoi(from) {
                        if i < 0 || i as usize >= self.stages.len() {
                            return Err(err(format!("invalid stage index {i}")));
                        }
                        deps.insert(i as usize);
                    } else {
                        let lower = from.to_lowercase();
                        match self.stages.iter().find(|s| s.name.as_deref() == Some(lower.as_str())) {
                            Some(s) => {
                                deps.insert(s.index);
                            }
                            None => {
                                images.insert(from.clone());
                            }
                        }
                    }
                }
            }
            InstructionKind::Run(r) => {
                for m in &r.mounts {
                    if let Some(from) = m.from.as_deref().filter(|f| !f.is_empty()) {
                        let lower = from.to_lowercase();
                        match self.stages.iter().find(|s| s.name.as_deref() == Some(lower.as_str())) {
                            Some(s) => {
                                deps.insert(s.index);
                            }
                            None => {
                                images.insert(from.to_string());
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Go's `strconv.Atoi`: optional sign, decimal digits.
fn go_atoi(s: &str) -> Result<i64, ()> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    s.parse::<i64>().map_err(|_| ())
}

impl StageGraph {
    /// The stages `target` needs: itself, its base stage and every stage it reads from,
    /// transitively; in file order. What BuildKit builds for `--target` (the legacy builder
    /// instead builds every stage up to the target).
    pub fn needed_for(&self, target: usize) -> Vec<usize> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            if !seen.insert(i) {
                continue;
            }
            if let BaseRef::Stage(b) = self.stages[i].base {
                todo.push(b);
            }
            todo.extend(self.stages[i].deps.iter().copied());
        }
        seen.into_iter().collect()
    }

    /// A stage from which a dependency cycle is reachable (BuildKit reports the first such
    /// stage in file order).
    fn find_cycle(&self) -> Option<usize> {
        let n = self.stages.len();
        let mut visited = vec![false; n];
        let mut on_path = vec![false; n];
        fn visit(g: &StageGraph, i: usize, visited: &mut [bool], on_path: &mut [bool]) -> bool {
            if visited[i] {
                return false;
            }
            visited[i] = true;
            on_path[i] = true;
            for &d in &g.stages[i].deps {
                if on_path[d] || visit(g, d, visited, on_path) {
                    return true;
                }
            }
            on_path[i] = false;
            false
        }
        (0..n).find(|&i| visit(self, i, &mut visited, &mut on_path))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn graph(text: &str) -> (Dockerfile, Result<StageGraph, ParseError>) {
        let df = parse(text).unwrap();
        let g = GlobalArgs::evaluate(&df.global_args, &BTreeMap::new(), &BTreeMap::new(), &df.lexer()).unwrap();
        let r = df.graph(&g);
        (df, r)
    }

    const MULTI: &str = "FROM golang AS build\nRUN make\nFROM alpine AS test\nCOPY --from=build /b /b\nRUN test\nFROM build AS dev\nFROM scratch\nCOPY --from=build /b /b\n";

    #[test]
    fn targets_and_needed_stages() {
        let (df, g) = graph(MULTI);
        let g = g.unwrap();
        assert_eq!(g.stages[2].base, BaseRef::Stage(0));
        assert_eq!(g.stages[3].base, BaseRef::Scratch);
        assert_eq!(df.target_stage(None).unwrap(), 3);
        assert_eq!(df.target_stage(Some("TEST")).unwrap(), 1);
        assert_eq!(g.needed_for(3), vec![0, 3]);
        assert_eq!(g.needed_for(1), vec![0, 1]);
        assert_eq!(g.needed_for(2), vec![0, 2]);
        let e = df.target_stage(Some("tset")).unwrap_err();
        assert_eq!(e.to_string(), "target stage \"tset\" could not be found (did you mean test?)");
        assert_eq!(e.line(), 0);
        assert_eq!(df.find_stage("dev"), Some(2));
        assert_eq!(df.find_stage("3"), Some(3));
        assert_eq!(df.find_stage("9"), None);
        assert_eq!(df.step_count(), 4 + 4);
    }

    #[test]
    fn run_mount_from_and_images() {
        let (_, g) = graph(
            "FROM a AS deps\nFROM b\nRUN --mount=from=deps,target=/d --mount=type=bind,from=tools:1,target=/t x\n",
        );
        let g = g.unwrap();
        assert_eq!(g.stages[1].deps, BTreeSet::from([0]));
        assert_eq!(g.stages[1].images, BTreeSet::from(["tools:1".to_string()]));
    }

    #[test]
    fn onbuild_triggers_of_a_base_stage_add_dependencies() {
        let (_, g) = graph("FROM a AS assets\nFROM b AS base\nONBUILD COPY --from=assets /x /x\nFROM base\n");
        assert_eq!(g.unwrap().stages[2].deps, BTreeSet::from([0]));
    }

    #[test]
    fn later_stage_names_in_from_are_images() {
        let (_, g) = graph("FROM later\nFROM alpine AS later\n");
        assert_eq!(g.unwrap().stages[0].base, BaseRef::Image("later".into()));
    }

    #[test]
    fn cycles_are_reported_on_the_first_stage() {
        let (_, g) = graph("FROM busybox AS stage0\nCOPY --from=stage0 f1 /sub/\n");
        assert_eq!(g.unwrap_err().message(), "circular dependency detected on stage: stage0");
        let (_, g) = graph(
            "FROM busybox AS stage0\nCOPY --from=stage2 f1 /sub/\nFROM busybox AS stage1\nCOPY --from=stage0 f2 /sub/\nFROM busybox AS stage2\nCOPY --from=stage1 f2 /sub/\n",
        );
        assert_eq!(g.unwrap_err().message(), "circular dependency detected on stage: stage0");
        let (_, g) = graph("FROM a\nCOPY --from=0 / /\n");
        assert_eq!(g.unwrap_err().message(), "circular dependency detected on stage: stage-0");
    }

    #[test]
    fn build_args_reach_from() {
        let df = parse("ARG TAG=1\nFROM img:$TAG\n").unwrap();
        let ba = BTreeMap::from([("TAG".to_string(), "2".to_string())]);
        let g = GlobalArgs::evaluate(&df.global_args, &ba, &BTreeMap::new(), &df.lexer()).unwrap();
        assert_eq!(df.graph(&g).unwrap().stages[0].base, BaseRef::Image("img:2".into()));
    }

    #[test]
    fn instruction_lines_and_original_text() {
        let df = parse("FROM a\n\nRUN echo a \\\n  b\nCOPY x y\n").unwrap();
        let i = &df.stages[0].instructions;
        assert_eq!((i[0].line, i[0].end_line, i[0].original.as_str()), (3, 4, "RUN echo a   b"));
        assert_eq!((i[1].line, i[1].original.as_str()), (5, "COPY x y"));
        assert_eq!(df.stages[0].original, "FROM a");
    }
}
