//! Records the git commit and compiler version for `/version`.
use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() {
    let commit = output("git", &["rev-parse", "--short=12", "HEAD"]).unwrap_or_default();
    let time = output("git", &["log", "-1", "--format=%cI"]).unwrap_or_default();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc = output(&rustc, &["--version"]).unwrap_or_default();
    println!("cargo:rustc-env=WHARF_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=WHARF_BUILD_TIME={time}");
    println!("cargo:rustc-env=WHARF_RUSTC={rustc}");
    if let Some(git_dir) = output("git", &["rev-parse", "--absolute-git-dir"]) {
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        println!("cargo:rerun-if-changed={git_dir}/logs/HEAD");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
