//! Corpus tests: every `tests/corpus/valid/*.Dockerfile` is parsed and rendered in a compact
//! summary compared with the `.summary` file next to it; every `tests/corpus/invalid/*.Dockerfile`
//! must fail with the `line N: message` in its `.error` file.
//!
//! After an intended change, regenerate with `WHARF_BLESS=1 cargo test -p wharf-dockerfile
//! --test corpus` and review the diff.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use wharf_dockerfile::*;

fn q(s: &str) -> String {
    format!("{s:?}")
}

fn opt(name: &str, v: &Option<String>) -> String {
    v.as_ref().map(|v| format!(" {name}={}", q(v))).unwrap_or_default()
}

fn cmdline(c: &CommandLine) -> String {
    let mut s = if c.prepend_shell {
        format!("shell {}", c.args.first().map(|a| q(a)).unwrap_or_else(|| "<empty>".into()))
    } else {
        format!("exec {:?}", c.args)
    };
    for h in &c.heredocs {
        let _ = write!(s, " heredoc({} fd={} expand={} chomp={} {})", h.name, h.fd, h.expand, h.chomp, q(&h.content));
    }
    s
}

fn inline(v: &[InlineSource]) -> String {
    v.iter().map(|i| format!(" inline({} expand={} {})", i.name, i.expand, q(&i.content))).collect()
}

fn kind(k: &InstructionKind) -> String {
    match k {
        InstructionKind::Add(a) => format!(
            "ADD {:?} -> {}{}{}{}{}{}{}{}{}{}",
            a.sources,
            q(&a.dest),
            inline(&a.inline),
            opt("chown", &a.chown),
            opt("chmod", &a.chmod),
            opt("checksum", &a.checksum),
            if a.link { " link" } else { "" },
            a.keep_git_dir.map(|b| format!(" keep-git-dir={b}")).unwrap_or_default(),
            a.unpack.map(|b| format!(" unpack={b}")).unwrap_or_default(),
            if a.excludes.is_empty() { String::new() } else { format!(" exclude={:?}", a.excludes) },
            if a.json { " json" } else { "" },
        ),
        InstructionKind::Copy(c) => format!(
            "COPY {:?} -> {}{}{}{}{}{}{}{}{}",
            c.sources,
            q(&c.dest),
            inline(&c.inline),
            opt("from", &c.from),
            opt("chown", &c.chown),
            opt("chmod", &c.chmod),
            if c.link { " link" } else { "" },
            if c.parents { " parents" } else { "" },
            if c.excludes.is_empty() { String::new() } else { format!(" exclude={:?}", c.excludes) },
            if c.json { " json" } else { "" },
        ),
        InstructionKind::Arg(d) => format!(
            "ARG {}",
            d.iter()
                .map(|d| match &d.default {
                    Some(v) => format!("{}={}", d.name, q(v)),
                    None => d.name.clone(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        ),
        InstructionKind::Cmd(c) => format!("CMD {}", cmdline(c)),
        InstructionKind::Entrypoint(c) => format!("ENTRYPOINT {}", cmdline(c)),
        InstructionKind::Env(kv) | InstructionKind::Label(kv) => format!(
            "{} {}",
            k.keyword(),
            kv.iter()
                .map(|kv| format!("{}{}{}", q(&kv.key), if kv.legacy { " " } else { "=" }, q(&kv.value)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        InstructionKind::Expose(p) => format!("EXPOSE {p:?}"),
        InstructionKind::Healthcheck(Healthcheck::None) => "HEALTHCHECK NONE".into(),
        InstructionKind::Healthcheck(Healthcheck::Check(h)) => format!(
            "HEALTHCHECK {:?} interval={:?} timeout={:?} start-period={:?} start-interval={:?} retries={}",
            h.test, h.interval, h.timeout, h.start_period, h.start_interval, h.retries
        ),
        InstructionKind::Maintainer(m) => format!("MAINTAINER {}", q(m)),
        InstructionKind::Onbuild(o) => {
            format!("ONBUILD {} => {}", q(&o.expression), kind(&o.trigger.kind))
        }
        InstructionKind::Run(r) => {
            let mut s = format!("RUN {}", cmdline(&r.command));
            for m in &r.mounts {
                let _ = write!(
                    s,
                    " mount({}{}{}{}{}{}{}{}{}{}{})",
                    m.kind.as_str(),
                    opt("from", &m.from),
                    opt("source", &m.source),
                    opt("target", &m.target),
                    opt("id", &m.id),
                    opt("env", &m.env),
                    m.sharing.map(|x| format!(" sharing={}", x.as_str())).unwrap_or_default(),
                    if m.read_only { " ro" } else { " rw" },
                    if m.required { " required" } else { "" },
                    m.mode.map(|x| format!(" mode={x:o}")).unwrap_or_default(),
                    m.size_limit.map(|x| format!(" size={x}")).unwrap_or_default(),
                );
            }
            for d in &r.devices {
                let _ = write!(s, " device({}{})", q(&d.name), if d.required { " required" } else { "" });
            }
            if r.network != Network::Default {
                let _ = write!(s, " network={:?}", r.network);
            }
            if r.security != Security::Sandbox {
                let _ = write!(s, " security={:?}", r.security);
            }
            s
        }
        InstructionKind::Shell(v) => format!("SHELL {v:?}"),
        InstructionKind::StopSignal(v) => format!("STOPSIGNAL {}", q(v)),
        InstructionKind::User(v) => format!("USER {}", q(v)),
        InstructionKind::Volume(v) => format!("VOLUME {v:?}"),
        InstructionKind::Workdir(v) => format!("WORKDIR {}", q(v)),
    }
}

fn lines(i: &Instruction) -> String {
    if i.end_line == i.line { format!("{}", i.line) } else { format!("{}-{}", i.line, i.end_line) }
}

fn summary(df: &Dockerfile) -> String {
    let mut s = String::new();
    for d in &df.directives {
        let _ = writeln!(s, "directive {}={} @{}", d.name, q(&d.value), d.line);
    }
    if df.escape != '\\' {
        let _ = writeln!(s, "escape {}", df.escape);
    }
    for a in &df.global_args {
        let _ = writeln!(s, "global {} {}", lines(a), kind(&a.kind));
    }
    for st in &df.stages {
        let _ = writeln!(
            s,
            "stage {}{} from {}{} @{}",
            st.index,
            st.name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default(),
            q(&st.base),
            opt("platform", &st.platform),
            st.line
        );
        for i in &st.instructions {
            let _ = writeln!(s, "  {} {}", lines(i), kind(&i.kind));
        }
    }
    for w in &df.warnings {
        let _ = writeln!(s, "warning @{}: {}", w.line, w.message);
    }
    // The graph with default ARG values and BuildKit's predefined platform args.
    let predefined: BTreeMap<String, String> = [
        ("BUILDPLATFORM", "linux/amd64"),
        ("TARGETPLATFORM", "linux/amd64"),
        ("TARGETOS", "linux"),
        ("TARGETARCH", "amd64"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let globals = GlobalArgs::evaluate(&df.global_args, &BTreeMap::new(), &predefined, &df.lexer()).unwrap();
    match df.graph(&globals) {
        Ok(g) => {
            for (i, n) in g.stages.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "graph {i}: base={:?}{}{}{}{}",
                    n.base,
                    n.platform.as_ref().map(|p| format!(" platform={p}")).unwrap_or_default(),
                    if n.deps.is_empty() { String::new() } else { format!(" deps={:?}", n.deps) },
                    if n.images.is_empty() { String::new() } else { format!(" images={:?}", n.images) },
                    if n.used_args.is_empty() { String::new() } else { format!(" args={:?}", n.used_args) },
                );
            }
            let target = df.target_stage(None).unwrap();
            let _ = writeln!(s, "needed for last stage: {:?}", g.needed_for(target));
        }
        Err(e) => {
            let _ = writeln!(s, "graph error: {e}");
        }
    }
    let _ = writeln!(s, "steps {}", df.step_count());
    s
}

fn files(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "Dockerfile"))
        .collect();
    v.sort();
    v
}

fn check(path: &Path, ext: &str, got: &str, failures: &mut Vec<String>) {
    let expected_path = path.with_extension(ext);
    if std::env::var_os("WHARF_BLESS").is_some() {
        std::fs::write(&expected_path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&expected_path).unwrap_or_default();
    if want != got {
        failures.push(format!("{}:\n--- want\n{want}--- got\n{got}", path.display()));
    }
}

#[test]
fn valid_corpus_matches_summaries() {
    let all = files("valid");
    assert!(all.len() >= 40, "corpus has {} valid files", all.len());
    let mut failures = Vec::new();
    for path in &all {
        let text = std::fs::read_to_string(path).unwrap();
        let got = match parse(&text) {
            Ok(df) => summary(&df),
            Err(e) => format!("unexpected error: {e}\n"),
        };
        check(path, "summary", &got, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_corpus_fails_with_expected_errors() {
    let all = files("invalid");
    assert!(all.len() >= 15, "corpus has {} invalid files", all.len());
    let mut failures = Vec::new();
    for path in &all {
        let text = std::fs::read_to_string(path).unwrap();
        let got = match parse(&text) {
            Ok(df) => {
                // Some errors only show when the stage graph is built.
                let globals = GlobalArgs::evaluate(&df.global_args, &BTreeMap::new(), &BTreeMap::new(), &df.lexer());
                match globals.and_then(|g| df.graph(&g)) {
                    Ok(_) => "no error\n".to_string(),
                    Err(e) => format!("line {}: {}\n", e.line(), e.message()),
                }
            }
            Err(e) => format!("line {}: {}\n", e.line(), e.message()),
        };
        check(path, "error", &got, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_thousand_lines_parse_quickly() {
    let mut text = String::from("# syntax=docker/dockerfile:1\nARG BASE=debian:12\nFROM $BASE AS build\n");
    for i in 0..330 {
        let _ = write!(
            text,
            "RUN apt-get update \\\n    && apt-get install -y pkg{i} \\\n    && rm -rf /var/lib/apt/lists/*\n"
        );
    }
    text.push_str("COPY --from=build /out /out\n");
    assert!(text.lines().count() >= 990);
    let start = std::time::Instant::now();
    let n = 20;
    for _ in 0..n {
        let df = parse(&text).unwrap();
        assert_eq!(df.stages[0].instructions.len(), 331);
    }
    let per = start.elapsed() / n;
    eprintln!("parsed {} lines in {per:?}", text.lines().count());
    // Generous bound for unoptimised test builds on a shared machine; release is far below.
    assert!(per.as_millis() < 50, "parse took {per:?}");
}
